//! The engine: startup, the tick, routing results through the frozen plan, recovery.
//!
//! A tick is, in order: drain the mailbox → take in ideas → stop gate → pause gate →
//! reconcile → claim → completion (arbiter) → build the stage request. The stage then runs
//! (on the caller's thread for `run once`, on a worker for the daemon), and
//! [`Engine::finish_stage`] normalizes its result, routes it through the compiled loop
//! graph and applies the decision. See `tick.rs` for the order in one place.

mod apply;
pub mod closure;
pub mod daemon;
mod incidents;
pub mod intake;
pub mod lanes;
mod mailbox;
mod reconcile;
mod request;
pub mod retention;
mod tick;
mod transition;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::workspace::atomic::Durability;

use serde_json::json;

use crate::compiler::{self, FrozenRunPlan};
use crate::config::Config;
use crate::control::lock::{self, DaemonLock, LockError};
use crate::error::{Error, Result};
use crate::queue::{Prefetch, QueueStore};
use crate::runners::{self, Registry};
use crate::state::counters::Counters;
use crate::state::event::EventKind;
use crate::state::events::EventLog;
use crate::state::runtime::{Attempts, PlanIdentity, RuntimeState};
use crate::state::snapshot::{Snapshot, WatcherMode};
use crate::state::usage::Ledger;
use crate::state::StateError;
use crate::workspace::Workspace;

pub use tick::{Prepared, TickOutcome};

/// How the engine was started.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--config`, when given (must exist); else the workspace's `millrace.yaml`.
    pub config_path: Option<PathBuf>,
    /// `--mode`, when given (wins over `runtime.default_mode`, also after reloads).
    pub mode: Option<String>,
    /// `once` or `daemon`, recorded in the lock.
    pub run_mode: &'static str,
}

/// One workspace's runtime, holding its lock for as long as it lives.
pub struct Engine {
    ws: Workspace,
    options: EngineOptions,
    config: Config,
    plan: FrozenRunPlan,
    /// What is active, paused or stopped; saved as `state/runtime_snapshot.yaml`.
    state: RuntimeState,
    counters: Counters,
    /// What the harnesses have spent (`state/usage_ledger.yaml`).
    ledger: Ledger,
    queue: QueueStore,
    events: EventLog,
    registry: Arc<Registry>,
    intake: intake::Intake,
    lock: DaemonLock,
    watcher_mode: WatcherMode,
    /// Closure targets seen closed; they never reopen, so idle ticks skip their files.
    closed_targets: std::collections::HashSet<String>,
    /// The shutdown was recorded (snapshot, lock `released_at`).
    released: bool,
    /// Another daemon owns the workspace now, or it is gone: write nothing more.
    ownership_lost: bool,
    retention_clock: retention::RetentionClock,
    /// Parallel lanes, when `execution.lanes` > 1.
    lanes: Option<lanes::Lanes>,
    /// With lanes: the runs whose stage runs now (reconciliation leaves them alone).
    busy_runs: std::collections::HashSet<String>,
}

/// A state file that no longer parses (edited by hand, say) is moved to `quarantine/` with
/// its reason and started afresh: reconciliation then requeues any item it owned, so the
/// daemon starts without a manual step and nothing is lost.
fn set_aside(
    queue: &QueueStore,
    events: &EventLog,
    path: &std::path::Path,
    error: &str,
) -> Result<()> {
    tracing::warn!(file = %path.display(), %error, "state file unreadable; starting it afresh");
    queue.quarantine(path, error, None)?;
    events.emit(
        EventKind::StateFileReset,
        json!({"file": path.display().to_string(), "error": error}),
    )?;
    Ok(())
}

/// Decisions 7 and 15: an unknown mode (`--mode` or `runtime.default_mode`) stops startup
/// before anything is written; running the last-known-good plan instead would hide the typo.
fn check_mode_known(
    ws: &Workspace,
    config: &Config,
    options: &EngineOptions,
    config_path: &std::path::Path,
) -> Result<()> {
    let mode_id = compiler::resolve_mode_id(config, options.mode.as_deref());
    match compiler::load_mode(ws.rt(), &mode_id) {
        Err(diag) if diag.code == compiler::Code::ModeUnknown => {
            let hint = match &options.mode {
                Some(_) => "pass a mode `millrace modes list` shows".to_string(),
                None => format!(
                    "set runtime.default_mode in {} to a mode `millrace modes list` shows",
                    config_path.display()
                ),
            };
            Err(Error::refused(diag.to_string(), Some(hint)))
        }
        _ => Ok(()),
    }
}

/// Take the workspace lock (waiting out a control command that holds it), or fail naming
/// the owner; the log records which.
fn take_lock(ws: &Workspace, mode: &'static str, events: &EventLog) -> Result<DaemonLock> {
    let mut busy = |held: &LockError| {
        if let LockError::Held { pid, .. } = held {
            let _ = events.emit(
                EventKind::RuntimeDaemonLockBusy,
                json!({"holder_pid": pid, "holder_mode": "control",
                       "action": "waiting for the control command to finish"}),
            );
        }
    };
    let lock = match lock::acquire_waiting(ws, mode, &mut busy) {
        Ok(lock) => lock,
        Err(LockError::Held {
            pid, host, since, ..
        }) => {
            let message = format!("workspace is owned by pid {pid} on {host} since {since}");
            events.emit(
                EventKind::RuntimeDaemonLockDenied,
                json!({"reason": message}),
            )?;
            return Err(Error::locked(
                message,
                "stop it with `millrace control stop`, or use another workspace",
            ));
        }
        Err(LockError::Io(e)) => return Err(e.into()),
    };
    let mut acquired = vec![(
        EventKind::RuntimeDaemonLockAcquired,
        json!({"session_id": lock.info.owner_session_id, "pid": lock.info.owner_pid}),
    )];
    if let Some(previous) = lock.took_over() {
        acquired.push((
            EventKind::RuntimeLockTakenOver,
            json!({"previous_pid": previous.owner_pid,
                   "previous_session_id": previous.owner_session_id,
                   "previous_acquired_at": previous.acquired_at}),
        ));
    }
    // Not forced to disk on its own: `runtime_started` (or the first transition) is, and
    // makes these durable with it; a start that dies before that left nothing to record.
    events.emit_all(acquired, false)?;
    Ok(lock)
}

/// The state files a start reads. One that no longer parses is set aside and started
/// afresh; one a newer millrace wrote stops the start instead.
struct StateFiles {
    state: RuntimeState,
    /// An active stage the snapshot named without what it works on.
    dropped_stage: Option<crate::model::Stage>,
    counters: Counters,
    /// `None`: the ledger no longer parsed and was set aside (it is rebuilt from the runs).
    ledger: Option<Ledger>,
}

impl StateFiles {
    fn load(ws: &Workspace, queue: &QueueStore, events: &EventLog) -> Result<StateFiles> {
        fn or_reset<T>(
            loaded: std::result::Result<T, StateError>,
            path: &std::path::Path,
            queue: &QueueStore,
            events: &EventLog,
        ) -> Result<Option<T>> {
            // Bytes that are not text are as unreadable as text that is not YAML: set aside
            // too. Other read errors (permissions, a failing disk) stop the start instead.
            let garbled = |e: &StateError| {
                matches!(e, StateError::Io(crate::workspace::atomic::IoError::Path { source, .. })
                    if source.kind() == std::io::ErrorKind::InvalidData)
            };
            match loaded {
                Ok(value) => Ok(Some(value)),
                Err(e @ (StateError::Io(_) | StateError::Newer { .. })) if !garbled(&e) => {
                    Err(e.into())
                }
                Err(e) => set_aside(queue, events, path, &e.to_string()).map(|()| None),
            }
        }
        let snapshot_path = ws.snapshot_path();
        let (state, dropped_stage) = match or_reset(
            Snapshot::load(&snapshot_path),
            &snapshot_path,
            queue,
            events,
        )? {
            Some(snapshot) => {
                let dropped = RuntimeState::dropped_activation(&snapshot)
                    .then_some(snapshot.active_stage)
                    .flatten();
                (
                    RuntimeState::from_snapshot(snapshot).map_err(Error::internal)?,
                    dropped,
                )
            }
            None => (RuntimeState::bootstrap(), None),
        };
        let path = ws.counters_path();
        let counters = or_reset(Counters::load(&path), &path, queue, events)?.unwrap_or_default();
        let path = ws.usage_ledger_path();
        let ledger = or_reset(Ledger::load(&path), &path, queue, events)?;
        Ok(StateFiles {
            state,
            dropped_stage,
            counters,
            ledger,
        })
    }
}

impl Engine {
    fn config_path(ws: &Workspace, options: &EngineOptions) -> PathBuf {
        options
            .config_path
            .clone()
            .unwrap_or_else(|| ws.config_path())
    }

    /// Startup (spec 06 §2): config, lock, compile, load state, reconcile, mark running.
    pub fn start(
        ws: &Workspace,
        options: EngineOptions,
        watcher_mode: WatcherMode,
    ) -> Result<Engine> {
        let prefetch = Self::prefetch(ws, watcher_mode);
        let config = Config::load(
            &Self::config_path(ws, &options),
            options.config_path.is_some(),
        )?;
        Self::start_prefetched(ws, options, config, watcher_mode, prefetch)
    }

    /// The first look at the task queue, started on another thread while the engine starts
    /// (see [`Prefetch::start`]); not under file events, which would trust the look for good.
    fn prefetch(ws: &Workspace, watcher_mode: WatcherMode) -> Option<Prefetch> {
        (watcher_mode != WatcherMode::Watch)
            .then(|| Prefetch::start(ws, crate::model::WorkItemKind::Task))
    }

    /// [`Engine::start`] with the config already loaded (the daemon reads it once, for its
    /// file watches and the engine).
    pub fn start_with(
        ws: &Workspace,
        options: EngineOptions,
        config: Config,
        watcher_mode: WatcherMode,
    ) -> Result<Engine> {
        let prefetch = Self::prefetch(ws, watcher_mode);
        Self::start_prefetched(ws, options, config, watcher_mode, prefetch)
    }

    fn start_prefetched(
        ws: &Workspace,
        options: EngineOptions,
        config: Config,
        watcher_mode: WatcherMode,
        prefetch: Option<Prefetch>,
    ) -> Result<Engine> {
        let config_path = Self::config_path(ws, &options);
        check_mode_known(ws, &config, &options, &config_path)?;
        let events = EventLog::new(ws.events_path());
        let mut lock = take_lock(ws, options.run_mode, &events)?;
        // A start refused after the lock was taken lets it go as it found it, so neither
        // `status` nor `doctor` take the refused process for a daemon that died.
        let parts = (|| {
            let lanes = lanes::Lanes::open(ws, &config.execution)?;
            let registry = Registry::for_workspace(ws, &config)?;
            runners::validate_stage_runners(&config, &registry.names())?;
            let outcome = compiler::compile_and_persist(ws, &config, options.mode.as_deref())?;
            let errors = outcome.diagnostics.errors.join(", ");
            let Some(plan) = outcome.plan else {
                return Err(Error::refused(
                    format!("compile failed: {errors}"),
                    Some(
                        "fix the mode or loop assets, then run `millrace compile validate`".into(),
                    ),
                ));
            };
            if outcome.used_last_known_good {
                tracing::warn!(%errors, "compile failed; running the last-known-good plan");
            }
            let queue = QueueStore::new(ws)
                .with_settle(Duration::from_millis(config.watchers.settle_ms))
                .with_index()
                .with_prefetch(prefetch);
            let files = StateFiles::load(ws, &queue, &events)?;
            let in_lanes: Vec<&str> = files
                .state
                .activations()
                .iter()
                .filter_map(|a| a.lane_task().map(|(_, id)| id))
                .collect();
            if lanes.is_none() && !in_lanes.is_empty() {
                return Err(Error::refused(
                    format!(
                        "execution.lanes is 1 but tasks {} are running in parallel lanes",
                        in_lanes.join(", ")
                    ),
                    Some(format!(
                        "set execution.lanes back to {} or more so they finish, or run `millrace clear-stale-state` to requeue them (what their worktrees hold is committed to their branches by the next daemon with lanes; `millrace doctor` lists them)",
                        in_lanes.len().max(2)
                    )),
                ));
            }
            let last_known_good = outcome.used_last_known_good;
            Ok((lanes, registry, plan, last_known_good, errors, queue, files))
        })();
        let (lanes, registry, plan, last_known_good, errors, queue, files) = match parts {
            Ok(parts) => parts,
            Err(err) => {
                if let Err(e) = lock.release_keeping_crash(&ws.lock_path()) {
                    tracing::warn!(%e, "the refused start could not let the lock go");
                }
                return Err(err);
            }
        };
        let ledger_set_aside = files.ledger.is_none();
        let mut engine = Engine {
            ws: ws.clone(),
            options,
            config,
            plan,
            state: files.state,
            counters: files.counters,
            ledger: files.ledger.unwrap_or_default(),
            queue,
            events,
            registry: Arc::new(registry),
            intake: intake::Intake::default(),
            lock,
            watcher_mode,
            closed_targets: std::collections::HashSet::new(),
            released: false,
            ownership_lost: false,
            retention_clock: Default::default(),
            lanes,
            busy_runs: Default::default(),
        };
        if let Some(lanes) = &engine.lanes {
            engine.state.place_lanes(|id| lanes.place(id));
        }
        if ledger_set_aside {
            engine.rebuild_usage()?;
        }
        engine.recover(files.dropped_stage)?;
        // The queue depths are not counted here (a listing of every queue folder): the first
        // tick counts them with the listing its claim takes anyway.
        let plan = engine.plan_identity();
        engine.state.started(
            engine.config.runtime.run_style,
            plan,
            engine.config.fingerprint(),
            engine.watcher_mode,
            last_known_good.then_some(errors),
        );
        // Not forced to disk: it adds only this process's identity (pid, start time, plan) to
        // what recovery already committed durably; a power loss that drops it leaves the
        // previous snapshot, which the next start recovers from all the same.
        engine
            .state
            .save_with(&engine.ws.snapshot_path(), Durability::Relaxed)?;
        engine.events.emit(
            EventKind::RuntimeStarted,
            json!({"mode_id": engine.plan.mode_id, "compiled_plan_id": engine.plan.compiled_plan_id,
                   "process_running": true, "pid": std::process::id()}),
        )?;
        Ok(engine)
    }

    /// What a start repairs before the first tick: an orphaned harness, an activation the
    /// snapshot could not keep, every disagreement reconciliation finds, the
    /// markers, closure targets a crash kept from opening.
    fn recover(&mut self, dropped_stage: Option<crate::model::Stage>) -> Result<()> {
        self.kill_orphaned_harness()?;
        if let Some(stage) = dropped_stage {
            self.reconciled(
                "missing_active_work_item_identity",
                json!({"stage": stage, "action": "cleared active state"}),
            )?;
            self.clear_active_state()?;
        }
        self.reconcile(true)?;
        self.tidy_lanes()?;
        self.rewrite_markers();
        closure::backfill(&self.ws, &self.queue)?;
        Ok(())
    }

    /// A harness left running by a daemon that died must not keep writing into the
    /// workspace: kill its process group if it is still the same process.
    fn kill_orphaned_harness(&self) -> Result<()> {
        if self.lock.took_over().is_none() {
            return Ok(());
        }
        for a in self.state.activations() {
            self.kill_orphans_of(&a.run_id)?;
        }
        Ok(())
    }

    /// Kill the harness groups a dead daemon's run left (every lane's, with lanes).
    fn kill_orphans_of(&self, run_id: &str) -> Result<()> {
        let run_dir = self.ws.run_dir(run_id);
        let Ok(read) = std::fs::read_dir(&run_dir) else {
            return Ok(());
        };
        for entry in read.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("runner_process.") && name.ends_with(".yaml") {
                let record = self.ws.rel(&entry.path());
                match runners::kill_orphaned_group(&entry.path()) {
                    Ok(runners::Takeover::Killed(processes)) => self.events.emit(
                        EventKind::OrphanedHarnessKilled,
                        json!({"run_id": run_id, "record": record, "processes": processes}),
                    )?,
                    Ok(runners::Takeover::NothingLeft) => {}
                    Ok(runners::Takeover::Refused(reason)) => {
                        tracing::warn!(%record, %reason, "process record refused; nothing signalled");
                        self.events.emit(
                            EventKind::ProcessRecordRefused,
                            json!({"run_id": run_id, "record": record, "reason": reason}),
                        )?
                    }
                    Err(err) => tracing::warn!(%record, %err, "cannot read the process record"),
                }
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Check that this engine still owns the workspace: the file at the lock path must be the
    /// one it locked. When the file or `state/` was deleted, the missing folders and files
    /// are recreated and the lock is taken again; `Ok(true)` says so (file watches on the
    /// recreated folders must be renewed). When another daemon locked a new file in the
    /// meantime, the error (exit 4) tells the caller to stop without writing anything more.
    pub fn keep_ownership(&mut self) -> Result<bool> {
        let lock_path = self.ws.lock_path();
        if self.lock.is_at(&lock_path) {
            return Ok(false);
        }
        if !self.ws.rt().is_dir() {
            // Moved or deleted as a whole: recreating it at the old path would scatter the
            // work between two places.
            self.ownership_lost = true;
            return Err(Error::fatal(
                format!(
                    "the workspace folder {} is gone (moved or deleted); this daemon stops \
                     without writing anything more",
                    self.ws.rt().display()
                ),
                "start millrace again where the workspace is now",
            ));
        }
        let state_recreated = !self.ws.state_dir().is_dir();
        crate::workspace::atomic::create_dir_all(&self.ws.state_dir())?;
        match self.lock.reestablish(&self.ws) {
            Ok(()) => {}
            Err(LockError::Held {
                pid, host, since, ..
            }) => {
                self.ownership_lost = true;
                return Err(Error::locked(format!(
                        "the lock file was deleted and pid {pid} on {host} has owned the workspace since {since}; this daemon stops without writing anything more"
                    ), "keep the lock file: it is how daemons tell each other apart; check `millrace status`"));
            }
            Err(LockError::Io(e)) => return Err(e.into()),
        }
        self.ws.bootstrap()?;
        self.save_snapshot()?;
        self.counters.save(&self.ws.counters_path())?;
        for plane in [
            crate::model::Plane::Execution,
            crate::model::Plane::Planning,
        ] {
            crate::state::markers::write(
                &self.ws.status_path(plane),
                plane,
                self.state.marker(plane),
            )?;
        }
        tracing::warn!(
            state_recreated,
            "the lock file was gone; ownership re-established"
        );
        self.events.emit(
            EventKind::RuntimeLockReestablished,
            json!({"session_id": self.lock.info.owner_session_id, "state_recreated": state_recreated}),
        )?;
        Ok(true)
    }

    /// The status markers mirror the snapshot and are written without fsync, so a power
    /// loss may leave them behind it: every start writes them from the snapshot. A marker the
    /// snapshot holds that is not legal for its plane (a hand edit) is left for `doctor`.
    fn rewrite_markers(&self) {
        for plane in crate::model::Plane::ALL {
            let marker = self.state.marker(plane);
            if let Err(err) =
                crate::state::markers::write(&self.ws.status_path(plane), plane, marker)
            {
                tracing::warn!(%plane, %err, "status marker not rewritten from the snapshot");
            }
        }
    }

    /// The workspace this engine owns.
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// The runtime state (saved at each step that changes it).
    pub fn state(&self) -> &RuntimeState {
        &self.state
    }

    /// The config in effect (reloads replace it).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The runners, shared with the stage worker thread.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub(crate) fn save_snapshot(&mut self) -> Result<()> {
        self.state.save(&self.ws.snapshot_path())?;
        Ok(())
    }

    /// The compiled plan in force, as the snapshot names it.
    fn plan_identity(&self) -> PlanIdentity {
        PlanIdentity {
            mode_id: self.plan.mode_id.clone(),
            execution_loop_id: self.plan.execution_loop_id.clone(),
            planning_loop_id: self.plan.planning_loop_id.clone(),
            compiled_plan_id: self.plan.compiled_plan_id.clone(),
            compiled_plan_path: self.ws.rel(&self.ws.compiled_plan_path()),
        }
    }

    /// The work item the focused activation works on (`None` for a closure target).
    pub(crate) fn active_item(&self) -> Option<(crate::model::WorkItemKind, String)> {
        self.state
            .active()
            .and_then(|a| a.subject.item())
            .map(|(k, i)| (k, i.to_string()))
    }

    /// Mirror the active item's budget counters into the snapshot (display only).
    pub(crate) fn mirror_counters(&mut self) {
        let Some((kind, id)) = self.active_item() else {
            return;
        };
        let c = &self.counters;
        self.state.set_attempts(Attempts {
            troubleshoot: c.count("troubleshoot", kind, &id),
            mechanic: c.count("mechanic", kind, &id),
            fix_cycle: c.count("fix_cycle", kind, &id),
            consultant: c.count("consultant", kind, &id),
        });
    }

    /// Leave the workspace: mark the process stopped and release the lock.
    pub fn shutdown(mut self, reason: &str) -> Result<()> {
        self.release_workspace(reason)
    }

    /// Record the shutdown once: the snapshot says no process runs, the event log says why
    /// and the lock file gets its `released_at`. Every step is tried even when one before it
    /// failed (the disk may be failing); the first error is returned.
    fn release_workspace(&mut self, reason: &str) -> Result<()> {
        if self.released || self.ownership_lost {
            return Ok(());
        }
        self.released = true;
        self.queue.flush_index();
        self.state.shut_down();
        let saved = self.save_snapshot();
        let logged = self
            .events
            .emit(
                EventKind::RuntimeDaemonLockReleased,
                json!({"session_id": self.lock.info.owner_session_id, "reason": reason}),
            )
            .map_err(Error::from);
        let released = self.lock.release(&self.ws.lock_path()).map_err(Error::from);
        saved.and(logged).and(released)
    }
}

impl Drop for Engine {
    /// Every way out records the shutdown — an error returned through `?`, a panic — unless
    /// another daemon owns the workspace now.
    fn drop(&mut self) {
        if let Err(err) = self.release_workspace("the runtime ended on an error") {
            tracing::warn!(%err, "the shutdown could not be recorded");
        }
    }
}
