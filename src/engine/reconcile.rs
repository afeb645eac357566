//! Reconciliation, claim and completion activation: deciding what is active.
//!
//! Decision 2: no work is ever stranded. Whatever the snapshot and the `active/` folders
//! disagree about is repaired here, at startup and on every tick, with an event each time.
//! After a crash or a stop the snapshot still names the item and its stage, and the daemon
//! simply resumes that stage (no detour through a recovery stage).

use serde_json::json;

use super::closure;
use super::transition::{Counting, Next, Transition};
use super::Engine;
use crate::error::Result;
use crate::model::{Plane, WorkItemKind};
use crate::state::closure::ClosureTarget;
use crate::state::event::EventKind;
use crate::state::markers;
use crate::state::runtime::Subject;
use crate::workspace::Folder;

const ORPHAN_REASON: &str =
    "runtime stale-state clear: item was active but not owned by the runtime";

impl Engine {
    pub(crate) fn reconciled(&self, signal: &str, data: serde_json::Value) -> Result<()> {
        let mut data = data;
        data["signal"] = json!(signal);
        self.events.emit(EventKind::RuntimeReconciled, data)?;
        Ok(())
    }

    /// Nothing is active any more; both markers idle.
    pub(crate) fn clear_active_state(&mut self) -> Result<()> {
        if self.lanes.is_some() {
            self.state.go_idle(None, false);
            self.idle_free_planes()?;
            return self.save_snapshot();
        }
        for plane in Plane::ALL {
            markers::write(&self.ws.status_path(plane), plane, markers::IDLE)?;
        }
        self.state.go_idle(None, true);
        self.save_snapshot()
    }

    /// The work items the runtime owns (one, or with lanes one per lane and the planning
    /// plane's), with the runs that hold them.
    fn owned_items(&self) -> Vec<(String, WorkItemKind, String)> {
        self.state
            .activations()
            .iter()
            .filter_map(|a| {
                let (k, i) = a.subject.item()?;
                Some((a.run_id.clone(), k, i.to_string()))
            })
            .collect()
    }

    /// Repair disagreements between the snapshot, the queue folders and the counters.
    pub(crate) fn reconcile(&mut self, startup: bool) -> Result<()> {
        for (run_id, kind, id) in self.owned_items() {
            // A running stage's item is looked at when its result comes in: its harness may
            // still be writing in the lane's worktree.
            if self.busy_runs.contains(&run_id) {
                continue;
            }
            if !self.ws.item_path(kind, Folder::Active, &id).exists() {
                let found = self
                    .queue
                    .locate(kind, &id)
                    .map(|(f, _)| self.queue.folder_label(kind, f));
                self.reconciled(
                    "snapshot_without_active_artifact",
                    json!({"kind": kind, "id": id, "found_in": found, "action": "cleared active state"}),
                )?;
                self.state.focus_on(&run_id);
                let lane = self.lane_of(&run_id);
                let mut t = Transition::new((kind, id.clone()), Next::Idle { idle_markers: true });
                t.counting = Counting::Reset;
                self.commit(t)?;
                self.after_lane_stage(lane, &run_id)?;
            }
        }
        let owned: Vec<(WorkItemKind, String)> = self
            .owned_items()
            .into_iter()
            .map(|(_, k, i)| (k, i))
            .collect();
        for plane in Plane::ALL {
            for (kind, id) in self.queue.active_items(plane) {
                if owned.contains(&(kind, id.clone())) {
                    continue;
                }
                let mut requeued = self.queue.requeue(kind, &id, ORPHAN_REASON).is_ok();
                if !requeued && self.ws.item_path(kind, Folder::Queue, &id).exists() {
                    // The same id waits in the queue as well (dropped in twice): that copy
                    // yields, as a duplicate does at a claim. Left there, the orphan could
                    // never go back, and an item in active/ stops every claim.
                    self.queue.quarantine_duplicate(kind, &id, Folder::Active)?;
                    requeued = self.queue.requeue(kind, &id, ORPHAN_REASON).is_ok();
                }
                if requeued {
                    self.reconciled(
                        "active_without_snapshot",
                        json!({"kind": kind, "id": id, "action": "requeued"}),
                    )?;
                }
            }
        }
        let closure = self
            .state
            .activations()
            .iter()
            .find_map(|a| Some((a.stage, a.run_id.clone(), a.subject.closure()?.to_string())));
        if let Some((stage, run_id, root)) = closure {
            let open = ClosureTarget::load(&self.ws.closure_target_path(&root))
                .map(|t| t.closure_open)
                .unwrap_or(false);
            if !open {
                self.reconciled(
                    "missing_active_work_item_identity",
                    json!({"stage": stage, "action": "cleared active state"}),
                )?;
                self.state.focus_on(&run_id);
                self.clear_active_state()?;
            }
        }
        let subjects: Vec<(WorkItemKind, String)> = self
            .state
            .activations()
            .iter()
            .map(|a| {
                let (k, i) = a.subject.identity();
                (k, i.to_string())
            })
            .collect();
        let before = self.counters.entries.len();
        self.counters.entries.retain(|e| {
            subjects
                .iter()
                .any(|(k, i)| *k == e.work_item_kind && *i == e.work_item_id)
        });
        if self.counters.entries.len() != before {
            self.counters.save(&self.ws.counters_path())?;
            self.reconciled(
                "orphaned_recovery_counters",
                json!({"removed": before - self.counters.entries.len()}),
            )?;
        }
        let keys: Vec<String> = subjects
            .iter()
            .map(|(k, i)| crate::state::usage::item_key(k, i))
            .collect();
        // Usage entries of subjects no activation holds any more (a transition leaves them
        // until the snapshot that ends the activation is written; `clear-stale-state` leaves
        // them too): bookkeeping only, so no event, and saved with the next stage's count
        // (a start that runs none drops them again).
        self.ledger
            .retain_items(|key| keys.iter().any(|k| k == key));
        if startup {
            self.recover_usage()?;
            for a in self.state.activations() {
                let item = a.subject.item();
                self.reconciled(
                    "resumed_active_stage",
                    json!({"stage": a.stage, "run_id": a.run_id,
                           "work_item_kind": item.map(|(k, _)| k),
                           "work_item_id": item.map(|(_, i)| i),
                           "lane": a.lane.as_ref().map(|l| l.index),
                           "integrating": a.lane.as_ref().map(|l| l.integrating)}),
                )?;
            }
        }
        Ok(())
    }

    /// Claim the next item (planning before execution) and activate its entry stage.
    pub(crate) fn claim(&mut self) -> Result<()> {
        let claimed = match self.queue.claim_planning()? {
            Some(c) => Some(c),
            None => self.queue.claim_execution()?,
        };
        let Some(claimed) = claimed else {
            return Ok(());
        };
        self.activate_claimed(claimed, None)
    }

    /// Activate a claimed item's entry stage (with lanes, in `lane`).
    pub(crate) fn activate_claimed(
        &mut self,
        claimed: crate::queue::Claimed,
        lane: Option<crate::state::runtime::Lane>,
    ) -> Result<()> {
        let stage = self.plan.entry_stage(claimed.kind);
        self.forget_item_usage(claimed.kind, &claimed.id);
        let run_id = crate::time::new_run_id();
        self.state.activate(
            stage,
            run_id.clone(),
            Subject::Item {
                kind: claimed.kind,
                id: claimed.id.clone(),
            },
            lane,
        );
        self.mirror_counters();
        // Not saved here: the stage start (`mark_running`) saves it moments later, and a
        // crash in between leaves an unowned item in `active/`, which reconcile requeues.
        // Made durable with the stage's end (see `mark_running`).
        self.events.emit_all(
            vec![(
                EventKind::WorkItemClaimed,
                json!({"kind": claimed.kind, "id": claimed.id, "stage": stage, "run_id": run_id,
                       "root_spec_id": claimed.document.root_spec_id(),
                       "root_idea_id": claimed.document.root_idea_id()}),
            )],
            false,
        )?;
        crate::workspace::failpoint::transition("closure.before_open")?;
        if claimed.kind == WorkItemKind::Spec {
            if let Some(target) =
                closure::open_for_spec(&self.ws, &claimed.document, &claimed.path)?
            {
                self.events.emit(
                    EventKind::ClosureTargetOpened,
                    json!({"root_spec_id": target.root_spec_id, "root_idea_id": target.root_idea_id,
                           "seed_idea_path": target.root_idea_path}),
                )?;
            }
        }
        Ok(())
    }

    /// When a root lineage has drained, dispatch the completion stage (the arbiter) for it.
    pub(crate) fn activate_completion(&mut self) -> Result<()> {
        let Some(stage) = self.plan.completion_behavior().map(|cb| cb.stage) else {
            return Ok(());
        };
        let (targets, problems) =
            crate::state::closure::list_except(&self.ws, &self.closed_targets);
        for problem in problems {
            tracing::warn!("unreadable closure target: {problem}");
        }
        for mut target in targets {
            if !target.closure_open {
                self.closed_targets.insert(target.root_spec_id.clone());
                continue;
            }
            if target.closure_held.is_some() {
                continue;
            }
            if !closure::refresh_readiness(&self.ws, &self.queue, &mut target)? {
                continue;
            }
            let limit = self.config.recovery.max_arbiter_attempts;
            if target.arbiter_runs >= limit {
                target.closure_held = Some(format!(
                    "the arbiter ran {} times without closing this target (recovery.max_arbiter_attempts = {limit}); read {} and the latest report, then reset arbiter_runs and closure_held in this file to try again",
                    target.arbiter_runs, target.rubric_path
                ));
                target.save(&self.ws)?;
                self.events.emit(
                    EventKind::ClosureTargetHeld,
                    json!({"root_spec_id": target.root_spec_id, "arbiter_runs": target.arbiter_runs}),
                )?;
                continue;
            }
            target.arbiter_runs += 1;
            target.save(&self.ws)?;
            crate::workspace::failpoint::transition("arbiter.after_target_save")?;
            self.forget_item_usage(WorkItemKind::Spec, &target.root_spec_id);
            let run_id = crate::time::new_run_id();
            self.state.activate(
                stage,
                run_id.clone(),
                Subject::Closure {
                    root_spec_id: target.root_spec_id.clone(),
                },
                None,
            );
            self.events.emit_all(
                vec![(
                    EventKind::ClosureTargetReady,
                    json!({"root_spec_id": target.root_spec_id, "run_id": run_id,
                           "arbiter_run": target.arbiter_runs}),
                )],
                false,
            )?;
            return Ok(());
        }
        Ok(())
    }

    /// The stop gate: leave the active item where it is (the next start resumes it).
    pub(crate) fn process_stop(&mut self, reason: &str) -> Result<()> {
        crate::workspace::failpoint::transition("stop.before_record")?;
        self.state.shut_down();
        self.save_snapshot()?;
        let active = self.state.active();
        self.events.emit(
            EventKind::RuntimeTickStopped,
            json!({"reason": reason,
                   "active_work_item_id": active.and_then(|a| a.subject.item()).map(|(_, i)| i),
                   "active_stage": active.map(|a| a.stage)}),
        )?;
        Ok(())
    }
}
