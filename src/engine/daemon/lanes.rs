//! The daemon with parallel lanes: a pool of stage workers, one per running stage, all
//! reporting on the one wait point. The engine's thread alone applies results, claims and
//! integrates, so every state change stays in one place and in one order.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use serde_json::json;

use super::{Daemon, DaemonExit, Flow, Progress};
use crate::config::StopMode;
use crate::engine::lanes::LanesOutcome;
use crate::engine::{Prepared, TickOutcome};
use crate::error::Result;
use crate::runners::{CancelToken, RawResult};
use crate::state::event::EventKind;
use crate::watch::Wake;

/// A stage running on a worker thread.
struct Running {
    prepared: Prepared,
    cancel: CancelToken,
    result: Receiver<RawResult>,
}

/// The stages running now.
#[derive(Default)]
pub(super) struct Pool {
    running: Vec<Running>,
}

impl Pool {
    pub(super) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    fn busy(&self) -> HashSet<String> {
        self.running
            .iter()
            .map(|r| r.prepared.request.run_id.clone())
            .collect()
    }

    /// One stage whose worker has returned, with its result (`None`: the worker died).
    fn take_finished(&mut self) -> Option<(Running, Option<RawResult>)> {
        for i in 0..self.running.len() {
            match self.running[i].result.try_recv() {
                Ok(raw) => return Some((self.running.remove(i), Some(raw))),
                Err(TryRecvError::Disconnected) => return Some((self.running.remove(i), None)),
                Err(TryRecvError::Empty) => {}
            }
        }
        None
    }

    /// End the stages of these runs (an operator's `retry-active`, `clear-stale-state`).
    fn cancel(&self, runs: &[String]) {
        for r in &self.running {
            if runs.contains(&r.prepared.request.run_id) {
                r.cancel.cancel();
            }
        }
    }

    fn cancel_all(&self) {
        for r in &self.running {
            r.cancel.cancel();
        }
    }

    /// Cancel every stage and wait for its worker: the daemon stops at once, and no harness
    /// may outlive it.
    pub(super) fn abandon(&mut self) {
        self.cancel_all();
        for r in self.running.drain(..) {
            let _ = r.result.recv();
        }
    }
}

impl Daemon<'_> {
    /// One pass with lanes: apply a finished stage's result, or stop once the running
    /// stages ended, or prepare what can start and start it, then wait for the next wake.
    pub(super) fn pass_lanes(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<Flow> {
        self.tail.forward(progress);
        // Every result that came in is applied first (each a few milliseconds), so the lanes
        // they free start again in this pass.
        while let Some((running, raw)) = self.pool.take_finished() {
            self.finish_lane(running, raw, progress)?;
        }
        if self.pending_stop.is_none() && self.engine.state().stop_requested() {
            self.pending_stop = Some("stop requested".into());
        }
        if self
            .engine
            .state()
            .stop_interrupts(self.engine.config.runtime.stop_mode)
        {
            self.pool.cancel_all();
        }
        if let Some(reason) = self.pending_stop.clone() {
            if self.pool.is_empty() {
                return self.stop(reason);
            }
            return self.wait_lanes();
        }
        // A changed config is reloaded once the running stages have ended (their results are
        // routed through the plan they started under).
        if self.pool.is_empty() {
            self.reload_if_changed(progress)?;
        }
        if self.engine.keep_ownership()? {
            self.waker.rewatch(self.ws);
        }
        self.tail.forward(progress);
        if self.engine.roll_events_if_due()? {
            self.tail.forward(progress);
        }
        let at_max = self.options.max_ticks.is_some_and(|max| self.ticks >= max);
        if at_max {
            if self.pool.is_empty() {
                return Ok(Flow::Exit(DaemonExit::MaxTicks));
            }
            return self.wait_lanes();
        }
        if self.pool.is_empty() {
            self.engine.sweep_if_due(false)?;
        }
        let busy = self.pool.busy();
        if !busy.is_empty() && super::config_stamp(&self.config_path) != self.config_seen {
            // The config changed: no new stage starts until it is reloaded.
            return self.wait_lanes();
        }
        if !busy.is_empty() {
            // A command that cannot be applied beside the running stages: end the stages it
            // needs ended (or let them finish) and start nothing new until it is applied.
            if let Some(runs) = self.engine.mailbox_barrier(&busy) {
                self.pool.cancel(&runs);
                return self.wait_lanes();
            }
        }
        self.ticks += 1;
        self.engine
            .queue
            .note_file_events(self.waker.take_touched());
        let waker = &self.waker;
        let outcome = self
            .engine
            .prepare_lanes(&|p| waker.is_complete(p), &busy)?;
        self.recovered();
        let idle = match outcome {
            LanesOutcome::Stopping => {
                self.pending_stop = Some("stop requested".into());
                if self.engine.config.runtime.stop_mode == StopMode::Interrupt {
                    self.pool.cancel_all();
                }
                return Ok(Flow::Continue);
            }
            LanesOutcome::Paused => TickOutcome::Paused,
            LanesOutcome::Stages(stages) => {
                for prepared in stages {
                    self.spawn(prepared)?;
                }
                TickOutcome::Idle
            }
        };
        self.tail.forward(progress);
        if matches!(idle, TickOutcome::Idle) && self.engine.landing_due() {
            // The stages just started; land the finished branches now, not at the next wake.
            return Ok(Flow::Continue);
        }
        if self.pool.is_empty() {
            return self.idle(&idle, progress);
        }
        self.wait_lanes()
    }

    /// Start a prepared stage on a worker thread.
    fn spawn(&mut self, prepared: Prepared) -> Result<()> {
        let cancel = CancelToken::new();
        let rx = self.start_worker(&prepared.request, &cancel)?;
        self.pool.running.push(Running {
            prepared,
            cancel,
            result: rx,
        });
        Ok(())
    }

    /// Apply a finished stage's result on the engine's thread. A stage cancelled by a stop
    /// is not applied: its task stays active at that stage for the next start.
    fn finish_lane(
        &mut self,
        running: Running,
        raw: Option<RawResult>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let req = &running.prepared.request;
        let Some(raw) = raw.filter(|_| !running.cancel.is_cancelled()) else {
            let lane = self.engine.lane_of(&req.run_id).map(|(l, _)| l.index);
            self.engine.events.emit(
                EventKind::StageInterrupted,
                json!({"stage": req.stage, "run_id": req.run_id, "request_id": req.request_id,
                       "work_item_id": req.active_work_item_id, "lane": lane,
                       "action": "the stage was ended; the item stays active and runs this stage again unless a command requeued it"}),
            )?;
            return Ok(());
        };
        if self.engine.keep_ownership()? {
            self.waker.rewatch(self.ws);
        }
        self.engine.finish_lane_stage(&running.prepared, raw)?;
        self.recovered();
        self.tail.forward(progress);
        Ok(())
    }

    /// Wait for the next wake while stages run: a stage's end, a file event, a signal (the
    /// first lets the stages finish, unless `stop_mode: interrupt`; a second cancels them),
    /// a settle window ending or the scheduled rescan. The lock is checked at every wake.
    fn wait_lanes(&mut self) -> Result<Flow> {
        let scheduled_check =
            Duration::from_secs_f64(self.engine.config.runtime.idle_sleep_seconds);
        let timeout = self
            .engine
            .next_settled()
            .map(|at| at.saturating_duration_since(std::time::Instant::now()))
            .filter(|left| *left < scheduled_check)
            .unwrap_or(scheduled_check);
        let timeout = self
            .engine
            .integration_retry_in()
            .map_or(timeout, |retry| timeout.min(retry));
        let wake = self.waker.wait(timeout);
        match self.engine.keep_ownership() {
            Ok(true) => self.waker.rewatch(self.ws),
            Ok(false) => {}
            Err(err) if err.is_fatal() => {
                self.pool.abandon();
                return Err(err);
            }
            Err(err) => tracing::warn!(%err, "cannot check the workspace lock"),
        }
        match wake {
            Some(Wake::Signal(name)) => {
                if self.pending_stop.is_some()
                    || self.engine.config.runtime.stop_mode == StopMode::Interrupt
                {
                    self.pool.cancel_all();
                }
                self.pending_stop = Some(format!("{name} received"));
            }
            None => self.waker.forget_touched(),
            _ => {}
        }
        Ok(Flow::Continue)
    }
}
