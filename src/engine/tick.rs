//! The tick, in order. Each step is a call into the module that owns it.

use serde_json::json;

use super::Engine;
use crate::error::{Error, Result};
use crate::runners::{RawResult, StageRequest, StageResult};
use crate::state::event::EventKind;

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
    /// The normalized result, once the stage ran and its result was applied.
    pub finished: Option<StageResult>,
    /// The active item's document as the stage began: put back if the stage leaves
    /// something else in its place.
    pub(crate) document: Option<Vec<u8>>,
}

impl Engine {
    /// Steps 1–14 of a tick: everything up to running a stage. `complete` tells intake
    /// which inbox files arrived whole (the watcher saw them renamed in or closed).
    pub fn prepare(&mut self, complete: &dyn Fn(&std::path::Path) -> bool) -> Result<TickOutcome> {
        self.queue.begin_tick();
        self.queue.settle().take_next();
        self.drain_mailbox()?;
        self.take_in(complete)?;
        if self.state.stop_requested() {
            self.process_stop("stop requested")?;
            return Ok(TickOutcome::Stopped);
        }
        self.resume_when_due()?;
        self.enforce_workspace_budget()?;
        if self.state.is_paused() {
            return Ok(TickOutcome::Paused);
        }
        self.reconcile(false)?;
        loop {
            if self.state.active().is_none() {
                self.claim()?;
            }
            if self.state.active().is_none() {
                self.activate_completion()?;
            }
            if self.state.active().is_none() {
                self.refresh_depths()?;
                self.queue.flush_index();
                return Ok(TickOutcome::Idle);
            }
            if self.block_replaced_before_stage()? {
                continue;
            }
            if !self.enforce_item_budget()? {
                break;
            }
        }
        Ok(TickOutcome::Stage(Box::new(self.start_stage_request()?)))
    }

    /// The active stage's request, marked running, with the item's document as it is now.
    pub(crate) fn start_stage_request(&mut self) -> Result<Prepared> {
        let mut request = self.build_request()?;
        self.apply_runner_override(&mut request);
        self.mark_running(&request)?;
        let document = match (request.active_work_item_kind, &request.active_work_item_id) {
            (Some(kind), Some(id)) => match self.queue.active_document(kind, id) {
                crate::queue::ActiveDocument::Item(bytes) => Some(bytes),
                _ => None,
            },
            _ => None,
        };
        Ok(Prepared {
            request,
            finished: None,
            document,
        })
    }

    /// Steps 15–19: normalize the runner's result, route it, apply the decision. Returns the
    /// result when it was applied (`None`: applying failed and a repair was scheduled).
    pub fn finish_stage(
        &mut self,
        prepared: &Prepared,
        raw: RawResult,
    ) -> Result<Option<StageResult>> {
        let before = (self.state.clone(), self.counters.clone());
        let applied = match self.apply_result(&prepared.request, raw, prepared.document.as_deref())
        {
            Ok(result) => Ok(Some(result)),
            Err(err) if err.is_fatal() => Err(err),
            Err(err) if err.blames_no_item() => Err(err),
            Err(err) => self
                .post_stage_recovery(&prepared.request, &err.to_string())
                .map(|()| None),
        };
        if applied.as_ref().is_err_and(Error::blames_no_item) {
            // A full disk or a linked folder is not the item's fault: forget the half-applied
            // result, keep the item active at this stage and let the daemon retry (the stage
            // runs again) once the fault clears, without spending the item's repair budget.
            (self.state, self.counters) = before;
        }
        applied
    }

    /// When a file this tick left alone because it was still within its settle window will
    /// have settled, so the daemon can look again then.
    pub fn next_settled(&self) -> Option<std::time::Instant> {
        self.queue.settle().take_next()
    }

    /// Pause for a fault of the workspace (see [`Error::is_workspace_fault`]): retrying
    /// would fail the same way on every pass, so nothing runs until a person fixes it and
    /// resumes. The item that met it stays active at its stage.
    pub(crate) fn pause_for_fault(&mut self, err: &Error) -> Result<()> {
        let reason = format!("{err}; then `millrace resume`");
        self.state.pause_self(
            crate::state::snapshot::PauseCause::Workspace,
            reason.clone(),
            None,
        );
        self.save_snapshot()?;
        self.events.emit(
            EventKind::RuntimePaused,
            json!({"reason": reason, "failure_class": "workspace_link",
                   "action": "nothing runs until the link is replaced and `millrace resume`"}),
        )?;
        Ok(())
    }

    /// End a self-pause whose reset time has passed (a provider's rate-limit window).
    pub(crate) fn resume_when_due(&mut self) -> Result<()> {
        let Some(due) = self.resume_due_in() else {
            return Ok(());
        };
        if !due.is_zero() {
            return Ok(());
        }
        let why = match self.state.paused_for() {
            Some(crate::state::snapshot::PauseCause::Budget) => {
                "the time the workspace budget frees up has come"
            }
            _ => "the provider's reset time passed",
        };
        let reason = self.state.unpause();
        self.save_snapshot()?;
        self.events.emit(
            EventKind::RuntimeResumed,
            json!({"reason": why, "paused_for": reason}),
        )?;
        Ok(())
    }

    /// How long until a self-pause ends by itself; `None` when nothing will end it.
    pub fn resume_due_in(&self) -> Option<std::time::Duration> {
        let at = self.state.resume_at()?;
        let at = crate::runners::result::stamp::parse(at).ok()?;
        let left = at.duration_since(crate::time::now());
        Some(std::time::Duration::try_from(left).unwrap_or_default())
    }

    /// Take in new ideas; `complete` tells which files arrived whole.
    pub fn take_in(&mut self, complete: &dyn Fn(&std::path::Path) -> bool) -> Result<()> {
        if !self.config.watchers.enabled || !self.config.watchers.watch_ideas_inbox {
            return Ok(());
        }
        crate::workspace::failpoint::transition("intake.before_scan")?;
        let report = self
            .intake
            .ideas(&self.ws, &self.queue, &self.events, complete)?;
        if !report.specs.is_empty() {
            self.events.emit(
                EventKind::WatcherEventsConsumed,
                json!({"count": report.specs.len()}),
            )?;
            self.refresh_depths()?;
        }
        Ok(())
    }

    pub(crate) fn refresh_depths(&mut self) -> Result<()> {
        self.state.set_depths(self.queue.depths());
        self.save_snapshot()
    }

    /// One whole tick on the current thread (`run once`): returns what happened.
    pub fn tick_inline(&mut self) -> Result<TickOutcome> {
        if self.has_lanes() {
            return self.tick_inline_lanes();
        }
        // Decision 5: `run once` processes the inbox. Nothing tells it which files arrived
        // whole, so a file still within its settle window (an `add-idea` just before, an
        // idea an `add_idea` command stages) is waited for, once and at most the window,
        // instead of being left for a later run.
        self.queue.settle().take_next();
        self.drain_mailbox()?;
        self.take_in(&|_| false)?;
        if let Some(settled) = self.next_settled() {
            std::thread::sleep(settled.saturating_duration_since(std::time::Instant::now()));
        }
        let mut outcome = self.prepare(&|_| false)?;
        if let TickOutcome::Stage(prepared) = &mut outcome {
            let cancel = crate::runners::CancelToken::new();
            let raw = self.registry.dispatch(&prepared.request, &cancel);
            prepared.finished = self.finish_stage(prepared, raw)?;
        }
        Ok(outcome)
    }
}
