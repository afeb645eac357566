//! Transitions: what a stage's result, or a runtime decision about the active subject,
//! changes — decided first as a value, then applied by [`Engine::commit`] in one fixed order.
//!
//! The order is what makes a crash at any instant recoverable:
//! 1. the usage ledger's count of the stage — before the item can leave `active/`, after
//!    which startup no longer looks at its runs to recover a lost count;
//! 2. queue and document changes (an item into `done/` or `blocked/`, a new incident, a
//!    closure target, a report the next stage reads) — the point of no return; a crash
//!    before it leaves the item active, and the next start re-runs the stage;
//! 3. the recovery counters, then the ledger's release of the item;
//! 4. the plane status markers (not forced to disk: every start rewrites them from the
//!    snapshot);
//! 5. the runtime snapshot, durably — after it, the next start sees the new stage or idle.
//!    Its folder fsync also makes steps 1 and 3 durable (written [`Durability::Batched`]):
//!    one folder fsync for the whole batch;
//! 6. the events, in the order they were decided, with one append and one fsync (which also
//!    makes the stage start's unsynced events durable) — a crash before them loses lines of
//!    the log, never work, and never writes one twice.
//!
//! [`Durability::Batched`]: crate::workspace::atomic::Durability::Batched

use std::path::PathBuf;

use serde_json::{json, Value};

use super::Engine;
use crate::documents::Document;
use crate::error::Result;
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};
use crate::state::closure::ClosureTarget;
use crate::state::event::EventKind;
use crate::state::markers;
use crate::workspace::atomic;

/// One queue or document change.
pub(crate) enum Move {
    /// The active item into `done/`, with a line for its `## Runtime History`.
    Complete { history: Option<String> },
    /// The active item into `blocked/`, with why (its history line and the event).
    Block {
        why: String,
        /// The `work_item_blocked` event's failure fields (class, message, refused).
        failure: Value,
        history: String,
        /// The item's document to write there, when its active file is not the item any
        /// more (that file is then quarantined by a [`Move::Quarantine`] after this move).
        document: Option<Vec<u8>>,
    },
    /// A file that is not what millrace keeps there, into `quarantine/` with the reason.
    Quarantine { path: PathBuf, reason: String },
    /// A new incident into the planning queue; `after` names the failpoint that follows it.
    Enqueue {
        incident: Document,
        source_kind: WorkItemKind,
        root_spec_id: Option<String>,
        after: &'static str,
    },
    /// A closure target's file; `after` names the failpoint that follows it.
    SaveTarget {
        target: ClosureTarget,
        after: Option<&'static str>,
    },
    /// A file the next stage reads (the runtime error report and context of a repair).
    Write { path: PathBuf, bytes: Vec<u8> },
}

/// What happens to the subject's recovery counters.
pub(crate) enum Counting {
    Keep,
    /// A budgeted step was taken.
    Increment(String),
    /// The counters go: the subject left `active/` (or its activation ended). Its usage entry
    /// is not dropped here but once no activation holds it (reconcile) or a new activation
    /// of it starts: the snapshot that ends the activation is written after the ledger, and
    /// a crash in between must still find the run's counted request ids at the restart.
    Reset,
}

/// What is active afterwards.
pub(crate) enum Next {
    /// The same subject, in another stage of the same run.
    Advance(Stage),
    /// Nothing; `idle_markers` resets both planes' markers to `### IDLE` (with lanes, those
    /// of the planes where nothing else runs).
    Idle { idle_markers: bool },
    /// A lane's task finished its loop: its branch is to land before it is done.
    Integrate,
}

/// A change to the active subject, decided before anything is written.
pub(crate) struct Transition {
    /// The (kind, id) the counters and usage are kept under.
    pub identity: (WorkItemKind, String),
    pub moves: Vec<Move>,
    pub counting: Counting,
    pub next: Next,
    /// The failure the subject carries on with (or ended with).
    pub failure_class: Option<String>,
    /// A plane's new status marker (overridden when going idle with idle markers).
    pub marker: Option<(Plane, String)>,
    /// The stage result this transition applies: its answer and file.
    pub result: Option<(TerminalResult, String)>,
    /// Events logged before those of the moves (the stage's result, the routing decision).
    pub events: Vec<(EventKind, Value)>,
}

impl Transition {
    pub fn new(identity: (WorkItemKind, String), next: Next) -> Transition {
        Transition {
            identity,
            moves: Vec::new(),
            counting: Counting::Keep,
            next,
            failure_class: None,
            marker: None,
            result: None,
            events: Vec::new(),
        }
    }
}

impl Engine {
    /// Apply a transition in the fixed order above.
    pub(crate) fn commit(&mut self, t: Transition) -> Result<()> {
        let (kind, id) = (t.identity.0, t.identity.1.as_str());
        let mut events = Vec::new();
        // This stage's usage, before the point of no return: once the item has left
        // `active/`, startup no longer looks at its runs to recover the count.
        self.save_usage()?;
        for m in t.moves {
            self.apply_move(kind, id, m, &mut events)?;
        }
        match t.counting {
            Counting::Keep => {}
            Counting::Increment(key) => {
                self.counters.increment(&key, kind, id);
                self.counters.save_batched(&self.ws.counters_path())?;
            }
            Counting::Reset => {
                self.counters.reset_item(kind, id);
                self.counters.save_batched(&self.ws.counters_path())?;
            }
        }
        let lanes = self.lanes.is_some();
        let idle_markers = matches!(t.next, Next::Idle { idle_markers: true }) && !lanes;
        if idle_markers {
            for plane in Plane::ALL {
                markers::write(&self.ws.status_path(plane), plane, markers::IDLE)?;
            }
        } else if let Some((plane, marker)) = &t.marker {
            markers::write(&self.ws.status_path(*plane), *plane, marker)?;
            self.state.set_marker(*plane, marker.clone());
        }
        match t.next {
            Next::Advance(stage) => {
                self.state.advance(stage, t.failure_class);
                if let Some(lane) = self.state.lane_mut() {
                    lane.integrating = false;
                    lane.waiting = None;
                }
                self.mirror_counters();
            }
            Next::Idle { idle_markers } => {
                self.state.go_idle(t.failure_class, idle_markers && !lanes);
                if lanes {
                    self.idle_free_planes()?;
                }
            }
            Next::Integrate => {
                if let Some(lane) = self.state.lane_mut() {
                    lane.integrating = true;
                }
            }
        }
        if let Some((terminal, path)) = t.result {
            self.state.record_result(terminal, path);
        }
        self.state.set_depths(self.queue.depths());
        crate::workspace::failpoint::transition("stage_result.before_snapshot")?;
        // Durable, and with it every batched write before it in `state/`.
        self.save_snapshot()?;
        // The stage's own events (its result, the routing decision) before what the moves
        // did with the item: the log reads in the order things were decided.
        let mut all = t.events;
        all.extend(events);
        self.events.emit_all(all, true)?;
        Ok(())
    }

    /// With lanes: the marker of each plane where nothing runs any more is `### IDLE`.
    pub(crate) fn idle_free_planes(&mut self) -> Result<()> {
        crate::state::idle_free_planes(&self.ws, &mut self.state)?;
        Ok(())
    }

    fn apply_move(
        &mut self,
        kind: WorkItemKind,
        id: &str,
        m: Move,
        events: &mut Vec<(EventKind, Value)>,
    ) -> Result<()> {
        match m {
            Move::Complete { history } => {
                match self.queue.complete(kind, id) {
                    Ok(path) => {
                        if let Some(line) = history {
                            self.queue.append_history(&path, &line)?;
                        }
                    }
                    Err(crate::queue::QueueError::NotActive { .. })
                        if self
                            .ws
                            .item_path(kind, crate::workspace::Folder::Done, id)
                            .exists() => {}
                    Err(e) => return Err(e.into()),
                }
                events.push((
                    EventKind::WorkItemCompleted,
                    json!({"kind": kind, "id": id}),
                ));
            }
            Move::Block {
                why,
                failure,
                history,
                document,
            } => {
                let blocked = match document {
                    Some(bytes) => self.queue.block_as(kind, id, &bytes),
                    None => self.queue.block(kind, id),
                };
                match blocked {
                    Ok(path) => self.queue.append_history(&path, &history)?,
                    Err(e) => events.push((
                        EventKind::RuntimeBlockedMarkFailed,
                        json!({"reason": why, "work_item_kind": kind, "work_item_id": id,
                               "error": e.to_string()}),
                    )),
                }
                let mut data = json!({"kind": kind, "id": id, "reason": why});
                if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), failure) {
                    data.extend(extra);
                }
                events.push((EventKind::WorkItemBlocked, data));
            }
            Move::Enqueue {
                incident,
                source_kind,
                root_spec_id,
                after,
            } => {
                let path = self.queue.enqueue(&incident)?;
                crate::workspace::failpoint::transition(after)?;
                events.push((
                    EventKind::RuntimeHandoffIncidentEnqueued,
                    json!({"incident_id": incident.id(), "source_work_item_kind": source_kind,
                           "source_work_item_id": id, "destination": self.ws.rel(&path),
                           "root_spec_id": root_spec_id}),
                ));
            }
            Move::SaveTarget { target, after } => {
                target.save(&self.ws)?;
                if let Some(point) = after {
                    crate::workspace::failpoint::transition(point)?;
                }
            }
            Move::Write { path, bytes } => atomic::write_atomic(&path, &bytes)?,
            Move::Quarantine { path, reason } => {
                self.queue.quarantine(&path, &reason, None)?;
            }
        }
        Ok(())
    }
}
