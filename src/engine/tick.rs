//! The tick, in order. Each step is a call into the module that owns it.

use serde_json::json;

use super::Engine;
use crate::error::{Error, ExitCode, Result};
use crate::runners::{RawResult, StageRequest};

/// What a tick did when it ran no stage, or the stage it prepared.
#[derive(Debug)]
pub enum TickOutcome {
    /// A stage request is ready to run.
    Stage(Box<Prepared>),
    /// Nothing to do.
    Idle,
    Paused,
    /// A stop was processed; the caller should exit.
    Stopped,
}

/// A stage about to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: StageRequest,
}

/// Stop after a failed fsync anywhere in the process, even one a runner turned into a stage
/// failure: the stage's result is not applied, so the next start re-runs it.
fn stop_on_failed_fsync() -> Result<()> {
    match crate::workspace::atomic::fsync_failure() {
        Some(message) => Err(Error::with(
            message,
            Some("check the disk and the kernel log; once it is healthy, start the daemon again and it resumes the active stage".into()),
            ExitCode::Fatal,
        )),
        None => Ok(()),
    }
}

impl Engine {
    /// Steps 1–14 of a tick: everything up to running a stage. `complete` tells intake
    /// which inbox files arrived whole (the watcher saw them renamed in or closed).
    pub fn prepare(&mut self, complete: &dyn Fn(&std::path::Path) -> bool) -> Result<TickOutcome> {
        stop_on_failed_fsync()?;
        self.queue.settle().take_next();
        self.drain_mailbox()?;
        self.take_in(complete)?;
        if self.snapshot.stop_requested {
            self.process_stop("stop requested")?;
            return Ok(TickOutcome::Stopped);
        }
        if self.snapshot.paused {
            return Ok(TickOutcome::Paused);
        }
        self.reconcile(false)?;
        if self.snapshot.active_stage.is_none() {
            self.claim()?;
        }
        if self.snapshot.active_stage.is_none() {
            self.activate_completion()?;
        }
        if self.snapshot.active_stage.is_none() {
            self.refresh_depths()?;
            self.queue.flush_index();
            return Ok(TickOutcome::Idle);
        }
        let request = self.build_request()?;
        self.mark_running(&request)?;
        Ok(TickOutcome::Stage(Box::new(Prepared { request })))
    }

    /// Steps 15–19: normalize the runner's result, route it, apply the decision.
    pub fn finish_stage(&mut self, prepared: &Prepared, raw: RawResult) -> Result<()> {
        stop_on_failed_fsync()?;
        match self.apply_result(&prepared.request, raw) {
            Ok(()) => Ok(()),
            Err(err) if err.exit_code() == crate::error::ExitCode::Fatal => Err(err),
            Err(err) => self.post_stage_recovery(&prepared.request, &err.to_string()),
        }
    }

    /// When a file this tick left alone because it was still within its settle window will
    /// have settled, so the daemon can look again then.
    pub fn next_settled(&self) -> Option<std::time::Instant> {
        self.queue.settle().take_next()
    }

    /// Take in new ideas; `complete` tells which files arrived whole.
    pub fn take_in(&mut self, complete: &dyn Fn(&std::path::Path) -> bool) -> Result<()> {
        if !self.config.watchers.enabled || !self.config.watchers.watch_ideas_inbox {
            return Ok(());
        }
        let report = self
            .intake
            .ideas(&self.ws, &self.queue, &self.events, complete)?;
        if !report.specs.is_empty() {
            self.events.emit(
                "watcher_events_consumed",
                json!({"count": report.specs.len()}),
            )?;
            self.refresh_depths()?;
        }
        Ok(())
    }

    pub(crate) fn refresh_depths(&mut self) -> Result<()> {
        let (exec, plan) = self.queue.depths();
        self.snapshot.queue_depth_execution = exec;
        self.snapshot.queue_depth_planning = plan;
        self.save_snapshot()
    }

    /// One whole tick on the current thread (`run once`): returns what happened.
    pub fn tick_inline(&mut self) -> Result<TickOutcome> {
        // Decision 5: `run once` processes the inbox. Nothing tells it which files arrived
        // whole, so an idea still within its settle window (an `add-idea` just before) is
        // waited for, once and at most the window, instead of being left for a later run.
        self.queue.settle().take_next();
        self.take_in(&|_| false)?;
        if let Some(settled) = self.next_settled() {
            std::thread::sleep(settled.saturating_duration_since(std::time::Instant::now()));
        }
        let outcome = self.prepare(&|_| false)?;
        if let TickOutcome::Stage(prepared) = &outcome {
            let cancel = crate::runners::CancelToken::new();
            let raw = self.registry.dispatch(&prepared.request, &cancel);
            self.finish_stage(prepared, raw)?;
        }
        Ok(outcome)
    }
}
