//! The daemon loop: run ticks back to back while work is claimable, sleep on file events
//! when idle, and keep listening (mailbox `stop`, signals) while a stage runs.

mod lanes;

use std::sync::mpsc::channel;
use std::time::Duration;

use serde_json::json;

use std::path::PathBuf;

use super::{Engine, EngineOptions, Prepared, TickOutcome};
use crate::config::{Config, StopMode};
use crate::error::Result;
use crate::runners::harness::FailureKind;
use crate::runners::{CancelToken, RawResult};
use crate::state::event::EventKind;
use crate::watch::{self, Wake, Waker};
use crate::workspace::Workspace;

/// What the daemon reports as it goes (the CLI prints it).
#[derive(Debug, Clone)]
pub enum Progress {
    Started {
        plan_id: String,
        watcher: String,
    },
    /// An event the runtime recorded (stage started or finished, a command applied, a file
    /// rejected, ...), in log order.
    Event(Box<crate::state::events::Event>),
    Idle,
    Warning(String),
}

impl DaemonExit {
    /// Why the daemon ended, for people and for the lock-release event.
    pub fn describe(&self) -> String {
        match self {
            DaemonExit::Stopped(reason) => reason.clone(),
            DaemonExit::MaxTicks => "max ticks reached".into(),
            DaemonExit::Idle => "no work left".into(),
            DaemonExit::Paused { resumes_at: None } => {
                "paused; nothing runs until `millrace resume`".into()
            }
            DaemonExit::Paused {
                resumes_at: Some(at),
            } => format!(
                "paused until {at}, when the runtime resumes by itself (`--until-idle` does not \
                 wait for it; `millrace resume` ends the pause now)"
            ),
        }
    }
}

/// Daemon settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    pub max_ticks: Option<u64>,
    pub force_poll: bool,
    /// Stop once nothing is left to do (used by `demo`).
    pub exit_when_idle: bool,
}

/// Why the daemon ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonExit {
    Stopped(String),
    MaxTicks,
    Idle,
    /// `--until-idle` found the workspace paused, until this time when it ends by itself.
    Paused {
        resumes_at: Option<String>,
    },
}

/// Follows the event log from where it stood at startup, so the operator sees what the
/// daemon (or `run once`) did in the order the log records it (one source for both).
pub struct EventTail {
    path: std::path::PathBuf,
    offset: u64,
    /// The log file followed; a new one (rolled by retention) is read from its start.
    inode: Option<u64>,
}

impl EventTail {
    pub fn at_end(path: &std::path::Path) -> EventTail {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok();
        EventTail {
            path: path.to_path_buf(),
            offset: meta.as_ref().map_or(0, |m| m.len()),
            inode: meta.map(|m| m.ino()),
        }
    }

    /// Report every complete line appended since the last call.
    pub fn forward(&mut self, progress: &mut dyn FnMut(Progress)) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = crate::workspace::atomic::open_regular(&self.path) else {
            return;
        };
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = file.metadata() else {
            return;
        };
        if self.inode != Some(meta.ino()) {
            self.inode = Some(meta.ino());
            self.offset = 0;
        }
        // A log cut shorter by hand is followed from its new end.
        self.offset = self.offset.min(meta.len());
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return;
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in bytes[..end].split(|b| *b == b'\n') {
            if let Ok(event) = serde_json::from_slice(line) {
                progress(Progress::Event(Box::new(event)));
            }
        }
    }
}

/// The config file's modification time and size, to notice edits however they arrive
/// (file event, polling, or an edit made while a stage ran).
fn config_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Wait for the next wake (at most `timeout`); a signal returns the stop reason.
fn wait_for_signal(waker: &Waker, timeout: Duration) -> Option<String> {
    match waker.wait(timeout) {
        Some(Wake::Signal(name)) => Some(format!("{name} received")),
        _ => None,
    }
}

fn age(modified: std::time::SystemTime) -> Duration {
    std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
}

/// What one pass of the loop decided.
enum Flow {
    Continue,
    Exit(DaemonExit),
}

/// How a running stage ended.
enum StageEnd {
    /// The runner returned; a signal that came meanwhile stops the daemon after the stage.
    Done(Box<RawResult>, Option<String>),
    /// The stage was cancelled (`stop_mode: interrupt`, a second signal) with this reason.
    Interrupted(String),
}

/// The running daemon: the engine, the one wait point, and the loop's own bookkeeping.
struct Daemon<'a> {
    ws: &'a Workspace,
    engine: Engine,
    waker: Waker,
    tail: EventTail,
    options: DaemonOptions,
    config_path: PathBuf,
    /// The config file as last reloaded, to notice edits however they arrive.
    config_seen: Option<(std::time::SystemTime, u64)>,
    /// The config was changed moments ago and is left to settle before it is reloaded.
    config_settling: bool,
    ticks: u64,
    /// Passes that failed in a row (decision 14's back-off).
    failures: u32,
    /// A stop that could not be completed yet (its writes failed); the next pass retries it.
    pending_stop: Option<String>,
    /// With lanes: the stages running now.
    pool: lanes::Pool,
}

/// Run the daemon until stopped. The config is read once, here; every way out records the
/// shutdown (the engine's drop guard covers the ones that return an error).
pub fn run(
    ws: &Workspace,
    options: EngineOptions,
    daemon: DaemonOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<DaemonExit> {
    let config_path = options
        .config_path
        .clone()
        .unwrap_or_else(|| ws.config_path());
    // Stamped before the config is read, so a change made while the daemon starts up is
    // still noticed (and reloaded) afterwards.
    let config_seen = config_stamp(&config_path);
    let config = Config::load(&config_path, options.config_path.is_some())?;
    let waker = Waker::new(ws, &config, daemon.force_poll);
    watch::forward_signals(waker.sender());
    let engine = Engine::start_with(ws, options, config, waker.mode())?;
    let tail = EventTail::at_end(engine.events.path());
    let mut d = Daemon {
        ws,
        engine,
        waker,
        tail,
        options: daemon,
        config_path,
        config_seen,
        config_settling: false,
        ticks: 0,
        failures: 0,
        pending_stop: None,
        pool: lanes::Pool::default(),
    };
    let exit = d.announce(progress).and_then(|()| d.serve(progress));
    d.tail.forward(progress);
    let exit = exit?;
    d.engine.shutdown(&exit.describe())?;
    Ok(exit)
}

impl Daemon<'_> {
    /// What the operator should know before the first tick: polling instead of file events,
    /// symbolic links in the layout, harnesses that are not ready.
    fn announce(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        let engine = &self.engine;
        if let Some(reason) = &self.waker.fallback_reason {
            engine.events.emit(
                EventKind::WatcherFallbackToPolling,
                json!({"reason": reason}),
            )?;
            progress(Progress::Warning(reason.clone()));
        }
        let active_run = engine.state().active().map(|a| a.run_id.clone());
        for link in engine.ws.links_in_layout(Some(active_run.as_slice())) {
            let path = engine.ws.rel(&link);
            engine
                .events
                .emit(EventKind::RuntimeSymlinkRefused, json!({"path": path}))?;
            progress(Progress::Warning(format!(
                "{path} is a symbolic link where millrace keeps its own file or folder; \
                 nothing is written through it until it is replaced by a real one"
            )));
        }
        if let Some(problem) = crate::runners::scripted::script_problem(&engine.ws, &engine.config)
        {
            engine.events.emit(
                EventKind::RunnerPreflightFailed,
                json!({"runner": crate::runners::scripted::SCRIPTED_RUNNER,
                       "config_key": "runners.scripted.script",
                       "failure_class": FailureKind::BadInvocation.as_str(),
                       "message": problem}),
            )?;
            progress(Progress::Warning(format!(
                "runner scripted: {problem}; the first stage that needs it will pause the runtime"
            )));
        }
        for problem in crate::runners::preflight::check(&engine.config) {
            let warning = format!(
                "runner {}: {} — {}; the first stage that needs it will pause the runtime",
                problem.runner, problem.message, problem.fix
            );
            let event = if problem.failure_class == FailureKind::NotInstalled {
                EventKind::RunnerExecutableMissing
            } else {
                EventKind::RunnerPreflightFailed
            };
            engine.events.emit(
                event,
                json!({"runner": problem.runner, "program": problem.program,
                       "config_key": problem.config_key,
                       "failure_class": problem.failure_class.as_str(),
                       "message": problem.message, "fix": problem.fix}),
            )?;
            progress(Progress::Warning(warning));
        }
        // The lines above were shown as warnings; the log is followed from here.
        self.tail = EventTail::at_end(engine.events.path());
        progress(Progress::Started {
            plan_id: engine.plan.compiled_plan_id.clone(),
            watcher: format!("{:?}", self.waker.mode()).to_lowercase(),
        });
        Ok(())
    }

    /// The loop, and its one containment point (decision 14): whatever step of a pass fails
    /// on a non-fatal error — reload, intake, mailbox, claim, a stage's result, a stop — is
    /// logged (`runtime_tick_failed`) and retried after a growing pause. Only a fatal error
    /// (a failed fsync, a lost workspace lock), a stop, a signal or `--max-ticks` ends it.
    fn serve(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<DaemonExit> {
        loop {
            let pass = if self.engine.has_lanes() {
                self.pass_lanes(progress)
            } else {
                self.pass(progress)
            };
            match pass {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit(exit)) => return Ok(exit),
                Err(err) if err.is_fatal() => {
                    self.pool.abandon();
                    return Err(err);
                }
                Err(err)
                    if err.is_workspace_fault() && self.engine.pause_for_fault(&err).is_ok() =>
                {
                    self.tail.forward(progress);
                }
                Err(err) => {
                    let pause = self.contain(err, progress);
                    if let Some(reason) = wait_for_signal(&self.waker, pause) {
                        if self.pending_stop.is_some() {
                            // A second signal while a stop cannot be recorded: leave now;
                            // the shutdown records what it can.
                            self.pool.abandon();
                            return Ok(DaemonExit::Stopped(reason));
                        }
                        self.pending_stop = Some(reason);
                    }
                }
            }
        }
    }

    /// One pass: reload a changed config, check the lock, tick, and run the stage it
    /// prepared or wait for the next wake.
    fn pass(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<Flow> {
        self.tail.forward(progress);
        if let Some(reason) = self.pending_stop.clone() {
            return self.stop(reason);
        }
        self.reload_if_changed(progress)?;
        if self.options.max_ticks.is_some_and(|max| self.ticks >= max) {
            return Ok(Flow::Exit(DaemonExit::MaxTicks));
        }
        if self.engine.keep_ownership()? {
            self.waker.rewatch(self.ws);
        }
        // Only once the workspace is known to be still ours: rolling renames the shared log.
        // Show what is in the log before it may roll to a new file.
        self.tail.forward(progress);
        if self.engine.roll_events_if_due()? {
            self.tail.forward(progress);
        }
        self.engine.sweep_if_due(false)?;
        self.ticks += 1;
        self.engine
            .queue
            .note_file_events(self.waker.take_touched());
        let waker = &self.waker;
        let outcome = self.engine.prepare(&|p| waker.is_complete(p))?;
        self.recovered();
        match outcome {
            TickOutcome::Stopped => Ok(Flow::Exit(DaemonExit::Stopped("stop requested".into()))),
            TickOutcome::Stage(prepared) => self.run_stage(&prepared, progress),
            TickOutcome::Idle | TickOutcome::Paused => self.idle(&outcome, progress),
        }
    }

    /// Stop at a tick boundary: the active item stays where it is for the next start. If the
    /// stop's own writes fail, the next pass tries again.
    fn stop(&mut self, reason: String) -> Result<Flow> {
        self.pending_stop = Some(reason.clone());
        self.engine.process_stop(&reason)?;
        self.pending_stop = None;
        Ok(Flow::Exit(DaemonExit::Stopped(reason)))
    }

    /// Reload the config when its file changed and has held still for the debounce window.
    fn reload_if_changed(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        let debounce = Duration::from_millis(self.engine.config.watchers.debounce_ms);
        let stamp = config_stamp(&self.config_path);
        self.config_settling = false;
        if stamp == self.config_seen {
            return Ok(());
        }
        if stamp
            .as_ref()
            .is_some_and(|(modified, _)| age(*modified) < debounce)
        {
            self.config_settling = true;
            return Ok(());
        }
        let outcome = self.engine.reload_config()?;
        // Only once the reload ran: one that failed on I/O is tried again.
        self.config_seen = stamp;
        if !outcome.applied {
            progress(Progress::Warning(outcome.detail));
        }
        Ok(())
    }

    /// Run a prepared stage on a worker thread while listening for signals, the mailbox and
    /// the lock, then apply its result.
    fn run_stage(
        &mut self,
        prepared: &Prepared,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Flow> {
        self.tail.forward(progress);
        let (raw, stop_after) = match self.wait_for_stage(prepared, progress)? {
            StageEnd::Done(raw, stop_after) => (*raw, stop_after),
            StageEnd::Interrupted(reason) => {
                let req = &prepared.request;
                self.pending_stop = Some(reason.clone());
                self.engine.events.emit(
                    EventKind::StageInterrupted,
                    json!({"stage": req.stage, "run_id": req.run_id, "request_id": req.request_id,
                           "action": "the item stays active; the next start re-runs this stage"}),
                )?;
                self.engine.drain_mailbox()?;
                return self.stop(reason);
            }
        };
        // A signal during the stage stops the daemon once its result is applied, even if
        // applying it has to be retried.
        self.pending_stop = stop_after;
        if self.engine.keep_ownership()? {
            self.waker.rewatch(self.ws);
        }
        self.engine.finish_stage(prepared, raw)?;
        self.recovered();
        match self.pending_stop.clone() {
            Some(reason) => self.stop(reason),
            None => Ok(Flow::Continue),
        }
    }

    /// Run a stage on a worker thread of its own; its result comes on the returned channel,
    /// and a `StageDone` wake says it has come.
    fn start_worker(
        &self,
        request: &crate::runners::StageRequest,
        cancel: &CancelToken,
    ) -> Result<std::sync::mpsc::Receiver<RawResult>> {
        let (tx, rx) = channel();
        let registry = self.engine.registry();
        let wake = self.waker.sender();
        let cancel = cancel.clone();
        let request = request.clone();
        std::thread::Builder::new()
            .name(format!("millrace-stage-{}", request.stage))
            .spawn(move || {
                let raw = registry.dispatch(&request, &cancel);
                let _ = tx.send(raw);
                let _ = wake.send(Wake::StageDone);
            })
            .map_err(|e| crate::error::Error::system("cannot start a stage worker thread", e))?;
        Ok(rx)
    }

    /// Wait for the stage's worker, applying the mailbox commands that leave a running
    /// stage alone and checking the lock at every wake.
    fn wait_for_stage(
        &mut self,
        prepared: &Prepared,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<StageEnd> {
        let scheduled_check =
            Duration::from_secs_f64(self.engine.config.runtime.idle_sleep_seconds);
        let cancel = CancelToken::new();
        let rx = self.start_worker(&prepared.request, &cancel)?;
        let mut stop_after: Option<String> = None;
        let mut lost: Option<crate::error::Error> = None;
        let raw = loop {
            if let Ok(raw) = rx.try_recv() {
                break raw;
            }
            let timeout = self
                .engine
                .next_settled()
                .map(|at| at.saturating_duration_since(std::time::Instant::now()))
                .filter(|left| *left < scheduled_check)
                .unwrap_or(scheduled_check);
            let wake = self.waker.wait(timeout);
            if lost.is_none() {
                match self.engine.keep_ownership() {
                    Ok(true) => self.waker.rewatch(self.ws),
                    Ok(false) => {}
                    // Another daemon owns the workspace now, or it is gone: end this stage's
                    // harness and stop once it has.
                    Err(err) if err.is_fatal() => {
                        cancel.cancel();
                        lost = Some(err);
                    }
                    Err(err) => tracing::warn!(%err, "cannot check the workspace lock"),
                }
            }
            match wake {
                Some(Wake::Signal(name)) => {
                    if stop_after.is_some()
                        || self.engine.config.runtime.stop_mode == StopMode::Interrupt
                    {
                        cancel.cancel();
                    }
                    stop_after = Some(format!("{name} received"));
                }
                Some(Wake::StageDone) => {}
                _ => {
                    if let Err(err) = self.engine.drain_mailbox_during_stage() {
                        if err.is_fatal() {
                            return Err(err);
                        }
                        progress(Progress::Warning(format!(
                            "mailbox not applied while the stage runs: {err}"
                        )));
                    }
                    self.tail.forward(progress);
                    if self
                        .engine
                        .state()
                        .stop_interrupts(self.engine.config.runtime.stop_mode)
                    {
                        cancel.cancel();
                    }
                }
            }
        };
        if let Some(err) = lost {
            return Err(err);
        }
        if cancel.is_cancelled() {
            return Ok(StageEnd::Interrupted(
                stop_after.unwrap_or_else(|| "stop requested".into()),
            ));
        }
        Ok(StageEnd::Done(Box::new(raw), stop_after))
    }

    /// Nothing to run: exit (`--until-idle`), or sleep until a file event, a signal, a
    /// settle window ending, a self-pause ending or the scheduled rescan.
    fn idle(&mut self, outcome: &TickOutcome, progress: &mut dyn FnMut(Progress)) -> Result<Flow> {
        if self.engine.sweep_if_due(true)?.is_some() {
            self.tail.forward(progress);
        }
        if self.options.exit_when_idle {
            // A hand-written file still within its settle window (an idea just dropped in the
            // inbox, a task being saved) is work not yet taken: wait for the window to end and
            // look again, as `run once` does, before saying there is none.
            if let (TickOutcome::Idle, Some(at)) = (outcome, self.engine.next_settled()) {
                let left = at.saturating_duration_since(std::time::Instant::now());
                if let Some(Wake::Signal(name)) = self.waker.wait(left) {
                    return self.stop(format!("{name} received"));
                }
                return Ok(Flow::Continue);
            }
            // Paused: waiting could last hours (a budget) or never end (an operator's pause).
            return Ok(Flow::Exit(match outcome {
                TickOutcome::Paused => DaemonExit::Paused {
                    resumes_at: self.engine.state().resume_at().map(str::to_string),
                },
                _ => DaemonExit::Idle,
            }));
        }
        progress(Progress::Idle);
        // Spec 10 §3.2: under `--max-ticks` there is no sleep between ticks.
        if self.options.max_ticks.is_some() {
            if let Some(Wake::Signal(name)) = self.waker.try_take() {
                return self.stop(format!("{name} received"));
            }
            return Ok(Flow::Continue);
        }
        let scheduled_check =
            Duration::from_secs_f64(self.engine.config.runtime.idle_sleep_seconds);
        let debounce = Duration::from_millis(self.engine.config.watchers.debounce_ms);
        // A file left alone because it was still within its settle window is looked at
        // again as soon as the window ends, not at the next scheduled rescan.
        let settled = self
            .engine
            .next_settled()
            .map(|at| at.saturating_duration_since(std::time::Instant::now()));
        let timeout = if self.config_settling {
            debounce
        } else if let Some(left) = settled.filter(|left| *left < scheduled_check) {
            left
        } else {
            scheduled_check
        };
        let timeout = self
            .engine
            .resume_due_in()
            .map_or(timeout, |due| timeout.min(due));
        let timeout = self
            .engine
            .integration_retry_in()
            .map_or(timeout, |retry| timeout.min(retry));
        match self.waker.wait(timeout) {
            Some(Wake::Signal(name)) => self.stop(format!("{name} received")),
            // The scheduled rescan: check every file, whatever the events said.
            None if timeout == scheduled_check => {
                self.waker.forget_touched();
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Continue),
        }
    }

    /// Log a failed pass and say how long to wait before the next (0.2 s doubling to 60 s);
    /// a fault of the machine is also kept in the lock file for `status`.
    fn contain(
        &mut self,
        err: crate::error::Error,
        progress: &mut dyn FnMut(Progress),
    ) -> Duration {
        self.failures += 1;
        if err.is_environmental() {
            let path = self.engine.ws.lock_path();
            if let Err(e) = self.engine.lock.set_fault(&path, Some(err.to_string())) {
                tracing::warn!(%e, "cannot record the fault in the lock file");
            }
        }
        let pause = Duration::from_millis(100 * 2u64.saturating_pow(self.failures.min(9)))
            .min(Duration::from_secs(60));
        let message = err.to_string();
        tracing::error!(%message, retry_in_ms = pause.as_millis() as u64, "tick failed");
        progress(Progress::Warning(format!(
            "tick failed: {message} (retrying in {} ms)",
            pause.as_millis()
        )));
        let _ = self.engine.events.emit(
            EventKind::RuntimeTickFailed,
            json!({"error": message, "consecutive": self.failures}),
        );
        pause
    }

    /// A tick went through after failures: the fault has cleared.
    fn recovered(&mut self) {
        let failed = std::mem::take(&mut self.failures);
        if failed > 0 {
            let path = self.engine.ws.lock_path();
            if let Err(e) = self.engine.lock.set_fault(&path, None) {
                tracing::warn!(%e, "cannot clear the fault in the lock file");
            }
            let _ = self.engine.events.emit(
                EventKind::RuntimeFaultCleared,
                json!({"consecutive_failures": failed}),
            );
        }
    }
}
