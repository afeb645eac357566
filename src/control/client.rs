//! The one control client: a command is applied directly under the workspace lock when no
//! daemon runs, or handed to the running daemon through the mailbox, with a typed reply.
//!
//! Taking the lock for the direct path is what keeps a command from being lost: a daemon
//! starting at the same moment either holds the lock first (and the command goes through its
//! mailbox) or waits for it and then loads the state the command wrote.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::actions::{self, Action, Mode, Outcome, Target};
use super::lock::{self, LockError};
use super::mailbox;
use crate::error::Result;
use crate::queue::QueueStore;
use crate::state::counters::Counters;
use crate::state::event::EventKind;
use crate::state::events::EventLog;
use crate::state::runtime::RuntimeState;
use crate::watch::{Wake, Waker};
use crate::workspace::Workspace;

/// How a submitted command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// No daemon ran: applied (or found nothing to do) directly, under the workspace lock.
    Direct(Outcome),
    /// The running daemon applied it (or found nothing to do).
    Daemon {
        outcome: Outcome,
        /// The command's file in the mailbox, relative to the workspace.
        mailbox_path: String,
    },
    /// The running daemon refused it; the reason is also in `error_path`.
    Refused {
        error: String,
        mailbox_path: String,
        error_path: String,
    },
    /// The daemon has not answered within the wait; the command stays queued.
    Queued {
        mailbox_path: String,
        /// The stage the daemon is running, which it finishes first.
        running_stage: Option<crate::model::Stage>,
    },
}

impl Reply {
    /// Whether the command took effect.
    pub fn applied(&self) -> bool {
        match self {
            Reply::Direct(o) | Reply::Daemon { outcome: o, .. } => o.applied,
            Reply::Refused { .. } | Reply::Queued { .. } => false,
        }
    }
}

/// Submits control commands to one workspace.
pub struct Client<'a> {
    ws: &'a Workspace,
}

impl<'a> Client<'a> {
    pub fn new(ws: &'a Workspace) -> Client<'a> {
        Client { ws }
    }

    /// Apply `action` directly under the lock, or through the daemon's mailbox, waiting up to
    /// `wait` for its reply.
    pub fn submit(&self, action: &Action, wait: Duration) -> Result<Reply> {
        match lock::acquire_waiting(self.ws, "control", &mut |_| {}) {
            Ok(mut held) => {
                let outcome = self.apply_locked(action);
                let released = held.release_keeping_crash(&self.ws.lock_path());
                let outcome = outcome?;
                released?;
                Ok(Reply::Direct(outcome))
            }
            Err(LockError::Held { .. }) => self.through_daemon(action, wait),
            Err(LockError::Io(e)) => Err(e.into()),
        }
    }

    /// The action on the workspace files; the caller holds the lock.
    fn apply_locked(&self, action: &Action) -> Result<Outcome> {
        let ws = self.ws;
        let mut state = RuntimeState::load(&ws.snapshot_path())?;
        crate::workspace::failpoint::transition("control.before_apply")?;
        let mut counters = Counters::load(&ws.counters_path())?;
        let queue = QueueStore::new(ws);
        let events = EventLog::new(ws.events_path());
        let mut target = Target {
            ws,
            state: &mut state,
            counters: &mut counters,
            queue: &queue,
            events: &events,
            stop_mode: Default::default(),
        };
        let outcome = actions::apply(action, &mut target, Mode::Direct)?;
        events.emit(
            EventKind::ControlApplied,
            serde_json::json!({"action": outcome.action, "mode": "direct",
                               "applied": outcome.applied, "detail": outcome.detail}),
        )?;
        Ok(outcome)
    }

    /// Deliver to the mailbox and wait on the mailbox folders for the daemon's answer.
    fn through_daemon(&self, action: &Action, wait: Duration) -> Result<Reply> {
        let ws = self.ws;
        let delivered = mailbox::deliver(ws, &action.to_envelope())?;
        let mailbox_path = ws.rel(&delivered);
        let (result_path, error_path) = answer_paths(ws, &delivered);
        let waker = Waker::on_folders(
            &[ws.mailbox_dir("processed"), ws.mailbox_dir("failed")],
            false,
            Duration::from_millis(100),
        );
        let deadline = Instant::now() + wait;
        loop {
            if let Some((applied, detail, artifact_path)) = mailbox::read_result(&result_path) {
                return Ok(Reply::Daemon {
                    outcome: Outcome {
                        action: action.name(),
                        applied,
                        detail,
                        artifact_path,
                    },
                    mailbox_path,
                });
            }
            if let Some(error) = mailbox::read_error(&error_path) {
                return Ok(Reply::Refused {
                    error,
                    mailbox_path,
                    error_path: ws.rel(&error_path),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(Wake::Signal(_)) = waker.wait(left) {
                break;
            }
        }
        let running_stage = RuntimeState::load(&ws.snapshot_path())
            .ok()
            .and_then(|s| s.active().map(|a| a.stage));
        Ok(Reply::Queued {
            mailbox_path,
            running_stage,
        })
    }
}

/// Where the daemon answers a delivered command: `processed/<name>.result.yaml`, or
/// `failed/<name>.error.yaml`.
fn answer_paths(ws: &Workspace, delivered: &std::path::Path) -> (PathBuf, PathBuf) {
    let name = delivered
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        ws.mailbox_dir("processed")
            .join(format!("{name}.result.yaml")),
        ws.mailbox_dir("failed").join(format!("{name}.error.yaml")),
    )
}
