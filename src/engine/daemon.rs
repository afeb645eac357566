//! The daemon loop: run ticks back to back while work is claimable, sleep on file events
//! when idle, and keep listening (mailbox `stop`, signals) while a stage runs.

use std::sync::mpsc::channel;
use std::time::Duration;

use serde_json::json;

use super::{Engine, EngineOptions, TickOutcome};
use crate::config::{Config, StopMode};
use crate::error::Result;
use crate::runners::harness::FailureKind;
use crate::runners::CancelToken;
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
            DaemonExit::Paused => "paused; nothing runs until `millrace resume`".into(),
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
    /// `--until-idle` found the workspace paused.
    Paused,
}

/// Follows the event log from where it stood at startup, so the operator sees what the
/// daemon did in the order the log records it (one source for both).
struct EventTail {
    path: std::path::PathBuf,
    offset: u64,
}

impl EventTail {
    fn at_end(path: &std::path::Path) -> EventTail {
        EventTail {
            path: path.to_path_buf(),
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// Report every complete line appended since the last call.
    fn forward(&mut self, progress: &mut dyn FnMut(Progress)) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        // A log cut shorter (rotated by hand) is followed from its new end.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.offset = self.offset.min(len);
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

/// Decision 14: a tick that fails on a non-fatal error (a full disk, an I/O error on one
/// file) does not end the daemon; it is logged and retried after a growing pause. A fatal
/// error (a failed fsync) is returned and stops the daemon.
fn contain(
    engine: &mut Engine,
    err: crate::error::Error,
    failures: &mut u32,
    progress: &mut dyn FnMut(Progress),
) -> Result<Duration> {
    if matches!(
        err.exit_code(),
        crate::error::ExitCode::Fatal | crate::error::ExitCode::Locked
    ) {
        return Err(err);
    }
    *failures += 1;
    if err.is_environmental() {
        let path = engine.ws.lock_path();
        if let Err(e) = engine.lock.set_fault(&path, Some(err.to_string())) {
            tracing::warn!(%e, "cannot record the fault in the lock file");
        }
    }
    let pause = Duration::from_millis(100 * 2u64.saturating_pow((*failures).min(9)))
        .min(Duration::from_secs(60));
    let message = err.to_string();
    tracing::error!(%message, retry_in_ms = pause.as_millis() as u64, "tick failed");
    progress(Progress::Warning(format!(
        "tick failed: {message} (retrying in {} ms)",
        pause.as_millis()
    )));
    let _ = engine.events.emit(
        "runtime_tick_failed",
        json!({"error": message, "consecutive": *failures}),
    );
    Ok(pause)
}

/// A step succeeded after failures: the fault has cleared.
fn recovered(engine: &mut Engine, failures: &mut u32) {
    let failed = std::mem::take(failures);
    if failed > 0 {
        let path = engine.ws.lock_path();
        if let Err(e) = engine.lock.set_fault(&path, None) {
            tracing::warn!(%e, "cannot clear the fault in the lock file");
        }
        let _ = engine.events.emit(
            "runtime_fault_cleared",
            json!({"consecutive_failures": failed}),
        );
    }
}

/// Run the daemon until stopped.
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
    let mut config_seen = config_stamp(&config_path);
    let config = Config::load(&config_path, options.config_path.is_some())?;
    let mut waker = Waker::new(ws, &config, daemon.force_poll);
    watch::forward_signals(waker.sender());
    let mut engine = Engine::start(ws, options, waker.mode())?;
    if let Some(reason) = &waker.fallback_reason {
        engine
            .events
            .emit("watcher_fallback_to_polling", json!({"reason": reason}))?;
        progress(Progress::Warning(reason.clone()));
    }
    for link in engine.ws.links_in_layout() {
        let path = engine.ws.rel(&link);
        engine
            .events
            .emit("runtime_symlink_refused", json!({"path": path}))?;
        progress(Progress::Warning(format!(
            "{path} is a symbolic link where millrace keeps its own file or folder; \
             nothing is written through it until it is replaced by a real one"
        )));
    }
    for problem in crate::runners::preflight::check(&engine.config) {
        let warning = format!(
            "runner {}: {} — {}; the first stage that needs it will pause the runtime",
            problem.runner, problem.message, problem.fix
        );
        let event = if problem.failure_class == FailureKind::NotInstalled {
            "runner_executable_missing"
        } else {
            "runner_preflight_failed"
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
    let mut tail = EventTail::at_end(engine.events.path());
    progress(Progress::Started {
        plan_id: engine.plan.compiled_plan_id.clone(),
        watcher: format!("{:?}", waker.mode()).to_lowercase(),
    });
    let mut ticks = 0u64;
    let mut failures = 0u32;
    let exit = loop {
        tail.forward(progress);
        let scheduled_check = Duration::from_secs_f64(engine.config.runtime.idle_sleep_seconds);
        let debounce = Duration::from_millis(engine.config.watchers.debounce_ms);
        let mut config_settling = false;
        let stamp = config_stamp(&config_path);
        if stamp != config_seen {
            if stamp
                .as_ref()
                .is_some_and(|(modified, _)| age(*modified) < debounce)
            {
                config_settling = true;
            } else {
                config_seen = stamp;
                let outcome = engine.reload_config()?;
                if !outcome.applied {
                    progress(Progress::Warning(outcome.detail));
                }
            }
        }
        if daemon.max_ticks.is_some_and(|max| ticks >= max) {
            break DaemonExit::MaxTicks;
        }
        match engine.keep_ownership() {
            Ok(true) => waker.rewatch(ws),
            Ok(false) => {}
            Err(err) => {
                let pause = contain(&mut engine, err, &mut failures, progress)?;
                if let Some(reason) = wait_for_signal(&waker, pause) {
                    engine.process_stop(&reason)?;
                    break DaemonExit::Stopped(reason);
                }
                continue;
            }
        }
        ticks += 1;
        engine.queue.set_change_hint(waker.take_touched());
        let outcome = match engine.prepare(&|p| waker.is_complete(p)) {
            Ok(outcome) => {
                recovered(&mut engine, &mut failures);
                outcome
            }
            Err(err) => {
                let pause = contain(&mut engine, err, &mut failures, progress)?;
                if let Some(reason) = wait_for_signal(&waker, pause) {
                    engine.process_stop(&reason)?;
                    break DaemonExit::Stopped(reason);
                }
                continue;
            }
        };
        match outcome {
            TickOutcome::Stopped => break DaemonExit::Stopped("stop requested".into()),
            TickOutcome::Stage(prepared) => {
                let req = prepared.request.clone();
                tail.forward(progress);
                let cancel = CancelToken::new();
                let (tx, rx) = channel();
                let registry = engine.registry();
                let wake = waker.sender();
                let worker_cancel = cancel.clone();
                let worker_req = req.clone();
                std::thread::Builder::new()
                    .name("millrace-stage".into())
                    .spawn(move || {
                        let raw = registry.dispatch(&worker_req, &worker_cancel);
                        let _ = tx.send(raw);
                        let _ = wake.send(Wake::StageDone);
                    })
                    .map_err(|e| {
                        crate::error::Error::msg(format!("cannot start stage worker: {e}"))
                    })?;
                let mut stop_after: Option<String> = None;
                let mut lost: Option<crate::error::Error> = None;
                let raw = loop {
                    if let Ok(raw) = rx.try_recv() {
                        break raw;
                    }
                    let timeout = engine
                        .next_settled()
                        .map(|at| at.saturating_duration_since(std::time::Instant::now()))
                        .filter(|left| *left < scheduled_check)
                        .unwrap_or(scheduled_check);
                    let wake = waker.wait(timeout);
                    if lost.is_none() {
                        match engine.keep_ownership() {
                            Ok(true) => waker.rewatch(ws),
                            Ok(false) => {}
                            // Another daemon owns the workspace now, or it is gone: end this
                            // stage's harness.
                            Err(err)
                                if matches!(
                                    err.exit_code(),
                                    crate::error::ExitCode::Locked | crate::error::ExitCode::Fatal
                                ) =>
                            {
                                cancel.cancel();
                                lost = Some(err);
                            }
                            Err(err) => tracing::warn!(%err, "cannot check the workspace lock"),
                        }
                    }
                    match wake {
                        Some(Wake::Signal(name)) => {
                            if stop_after.is_some()
                                || engine.config.runtime.stop_mode == StopMode::Interrupt
                            {
                                cancel.cancel();
                            }
                            stop_after = Some(format!("{name} received"));
                        }
                        Some(Wake::StageDone) => {}
                        _ => {
                            if let Err(err) = engine.drain_mailbox_during_stage() {
                                if err.exit_code() == crate::error::ExitCode::Fatal {
                                    return Err(err);
                                }
                                progress(Progress::Warning(format!(
                                    "mailbox not applied while the stage runs: {err}"
                                )));
                            }
                            tail.forward(progress);
                            if engine.state().stop_requested()
                                && engine.config.runtime.stop_mode == StopMode::Interrupt
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
                    engine.events.emit(
                        "stage_interrupted",
                        json!({"stage": req.stage, "run_id": req.run_id, "request_id": req.request_id,
                               "action": "the item stays active; the next start re-runs this stage"}),
                    )?;
                    let reason = stop_after.unwrap_or_else(|| "stop requested".into());
                    engine.drain_mailbox()?;
                    engine.process_stop(&reason)?;
                    break DaemonExit::Stopped(reason);
                }
                let finished = engine.keep_ownership().and_then(|recreated| {
                    if recreated {
                        waker.rewatch(ws);
                    }
                    engine.finish_stage(&prepared, raw)
                });
                if let Err(err) = finished {
                    let pause = contain(&mut engine, err, &mut failures, progress)?;
                    if let Some(reason) = wait_for_signal(&waker, pause) {
                        engine.process_stop(&reason)?;
                        break DaemonExit::Stopped(reason);
                    }
                    continue;
                }
                recovered(&mut engine, &mut failures);
                if let Some(reason) = stop_after {
                    engine.process_stop(&reason)?;
                    break DaemonExit::Stopped(reason);
                }
            }
            TickOutcome::Idle | TickOutcome::Paused => {
                if daemon.exit_when_idle {
                    // Paused, nothing will run until a `resume`: waiting would never end.
                    break match outcome {
                        TickOutcome::Paused => DaemonExit::Paused,
                        _ => DaemonExit::Idle,
                    };
                }
                progress(Progress::Idle);
                // Spec 10 §3.2: under `--max-ticks` there is no sleep between ticks.
                if daemon.max_ticks.is_some() {
                    if let Some(Wake::Signal(name)) = waker.try_take() {
                        let reason = format!("{name} received");
                        engine.process_stop(&reason)?;
                        break DaemonExit::Stopped(reason);
                    }
                    continue;
                }
                // A file left alone because it was still within its settle window is looked
                // at again as soon as the window ends, not at the next scheduled rescan.
                let settled = engine
                    .next_settled()
                    .map(|at| at.saturating_duration_since(std::time::Instant::now()));
                let timeout = if config_settling {
                    debounce
                } else if let Some(left) = settled.filter(|left| *left < scheduled_check) {
                    left
                } else {
                    scheduled_check
                };
                let timeout = engine
                    .resume_due_in()
                    .map_or(timeout, |due| timeout.min(due));
                match waker.wait(timeout) {
                    Some(Wake::Signal(name)) => {
                        let reason = format!("{name} received");
                        engine.process_stop(&reason)?;
                        break DaemonExit::Stopped(reason);
                    }
                    // The scheduled rescan: check every file, whatever the events said.
                    None if timeout == scheduled_check => waker.forget_touched(),
                    _ => {}
                }
            }
        }
    };
    tail.forward(progress);
    let reason = exit.describe();
    engine.shutdown(&reason)?;
    Ok(exit)
}
