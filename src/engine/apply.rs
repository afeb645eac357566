//! Applying a stage result: persist it, route it through the frozen plan, and turn the
//! route into a [`Transition`] (applied by `transition.rs` in its fixed order).

use serde_json::{json, Value};

use super::incidents::{self, Lineage};
use super::request::RuntimeErrorContext;
use super::transition::{Counting, Move, Next, Transition};
use super::Engine;
use crate::compiler::{Consequence, Route};
use crate::error::{Error, Result};
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};
use crate::queue::ActiveDocument;
use crate::runners::{self, FailureClass, RawResult, StageRequest, StageResult};
use crate::state::closure::ClosureTarget;
use crate::state::counters::RUNTIME_REPAIR;
use crate::state::event::EventKind;
use crate::state::snapshot::PauseCause;
use crate::workspace::{atomic, Folder};

/// The failure class of an item blocked because its active document was replaced.
const DOCUMENT_REPLACED: &str = "document_replaced";

/// Lower-case, runs of other characters as `_` (spec 06 §6.3).
fn normalize_class(raw: &str) -> String {
    let mut out = String::new();
    let mut last_us = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            last_us = false;
        } else if !last_us {
            out.push('_');
            last_us = true;
        }
    }
    out.trim_matches('_').to_string()
}

/// Blocking the active item: its history line and the `work_item_blocked` event's failure
/// fields (the harness's diagnosis and what it refused, when a stage result says so).
pub(crate) fn block(why: String, result: Option<&StageResult>) -> Move {
    let failure = result.and_then(|r| r.diagnosis.as_ref());
    let refused = result.map(|r| r.refused.clone()).unwrap_or_default();
    let mut history = format!("blocked by the runtime: {why}");
    if let Some(d) = failure {
        history.push_str(&format!("; {}: {}", d.kind, d.message));
    }
    if !refused.is_empty() {
        history.push_str(&format!("; the harness refused: {}", refused.join(" | ")));
    }
    Move::Block {
        failure: json!({"failure_class": failure.map(|d| d.kind.as_str()),
                        "failure_message": failure.map(|d| d.message.as_str()),
                        "refused": refused}),
        why,
        history,
        document: None,
    }
}

/// `stage_completed`: what the stage answered, and for a failure its class and the harness's
/// own words (what `watch` prints).
fn stage_completed(
    req: &StageRequest,
    result: &StageResult,
    result_rel: &str,
    kind: WorkItemKind,
    id: &str,
) -> (EventKind, Value) {
    let failure = result.diagnosis.as_ref();
    (
        EventKind::StageCompleted,
        json!({"request_id": req.request_id, "stage": req.stage, "plane": req.plane,
               "run_id": req.run_id, "work_item_kind": kind, "work_item_id": id,
               "terminal_result": result.terminal_result,
               "failure_class": failure.map(|d| d.kind.as_str()),
               "failure_message": failure.map(|d| d.message.as_str()),
               "normalization_failure": result.metadata.failure_class,
               "refused": result.refused,
               "last_line": result.last_line,
               "request_kind": req.request_kind.as_str(),
               "stage_result_path": result_rel,
               "duration_seconds": result.duration_seconds,
               "token_usage": result.token_usage}),
    )
}

impl Engine {
    /// Validate the task documents a manager run wrote into `tasks/queue/` (files changed
    /// since `since`): bad ones are quarantined with their reason and named in the result.
    fn check_manager_output(&self, since: std::time::SystemTime) -> Result<Vec<String>> {
        let mut bad = Vec::new();
        for entry in self.queue.entries(WorkItemKind::Task, Folder::Queue) {
            let fresh = std::fs::metadata(&entry.path)
                .and_then(|m| m.modified())
                .map(|m| m >= since)
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let problem = match &entry.parsed {
                Err(e) => Some((e.to_string(), e.line)),
                Ok(doc) if doc.id != entry.stem => Some((
                    format!(
                        "filename stem does not match task_id: expected {:?}, found {:?}",
                        doc.id, entry.stem
                    ),
                    None,
                )),
                Ok(_) => None,
            };
            if let Some((message, line)) = problem {
                self.queue.quarantine(&entry.path, &message, line)?;
                bad.push(format!("{}.md: {message}", entry.stem));
            }
        }
        Ok(bad)
    }

    /// The (kind, id) a result's budgets are counted against.
    fn identity(&self, req: &StageRequest) -> Result<(WorkItemKind, String)> {
        if let Some(root) = &req.closure_target_root_spec_id {
            return Ok((WorkItemKind::Spec, root.clone()));
        }
        match (req.active_work_item_kind, req.active_work_item_id.clone()) {
            (Some(k), Some(i)) => Ok((k, i)),
            _ => Err(Error::internal("stage request has no work item identity")),
        }
    }

    pub(crate) fn lineage_of(&self, kind: WorkItemKind, id: &str) -> Lineage {
        self.queue
            .find(id)
            .into_iter()
            .filter(|(s, _)| s.kind == kind)
            .find_map(|(_, doc)| doc)
            .map(|doc| Lineage {
                root_spec_id: doc.effective_root_spec.clone(),
                root_idea_id: doc.root_idea_id.clone(),
            })
            .unwrap_or_default()
    }

    /// Normalize, persist, route and apply one stage's raw result; `document` is the active
    /// item's document as the stage began.
    pub(crate) fn apply_result(
        &mut self,
        req: &StageRequest,
        raw: RawResult,
        document: Option<&[u8]>,
    ) -> Result<StageResult> {
        let active = self.state.active().map(|a| (a.stage, a.run_id.as_str()));
        if active != Some((req.stage, req.run_id.as_str())) {
            return Err(Error::internal(
                "stage result does not match the runtime snapshot's active stage and run",
            ));
        }
        let (result, result_rel) = self.persist_result(req, &raw)?;
        let (kind, id) = self.identity(req)?;
        self.count_run_usage(&req.run_id, kind, &id)?;
        crate::workspace::failpoint::transition("stage_result.after_usage")?;
        if req.active_work_item_path.is_some() {
            if let ActiveDocument::Replaced(what) = self.queue.active_document(kind, &id) {
                self.block_replaced(req, &result, result_rel, (kind, id), &what, document)?;
                return Ok(result);
            }
        }
        if let Some(diagnosis) = result
            .diagnosis
            .as_ref()
            .filter(|d| d.kind.is_environment())
        {
            self.hold_for_environment(req, &result, diagnosis, result_rel, kind, &id)?;
            return Ok(result);
        }
        self.state.rate_limit_cleared();
        let counters = &self.counters;
        let route = self
            .plan
            .route(req.plane, req.stage, result.terminal_result, |key| {
                counters.count(key, kind, &id)
            })?;
        crate::workspace::failpoint::transition("stage_result.after_route")?;
        let class = result
            .metadata
            .failure_class
            .map(|c| normalize_class(c.as_str()))
            .or_else(|| {
                (result.terminal_result == TerminalResult::Blocked)
                    .then(|| format!("{}_blocked", req.stage))
            });
        let identity = (kind, id.clone());
        let (mut t, action, reason) = match route {
            Route::Stage {
                next,
                budget_key,
                reason,
            } => {
                let mut t = Transition::new(identity, Next::Advance(next));
                if let Some(key) = budget_key {
                    t.counting = Counting::Increment(key);
                }
                t.failure_class = if result.success { None } else { class };
                (t, "run_stage", reason)
            }
            Route::Terminal {
                consequence,
                reason,
                ..
            } => {
                let (t, action) =
                    self.terminal(req, &result, consequence, identity, class, &reason)?;
                (t, action, reason)
            }
        };
        let next_stage = match t.next {
            Next::Advance(stage) => Some(stage),
            Next::Idle { .. } | Next::Integrate => None,
        };
        t.marker = Some((req.plane, result.summary_status_marker.clone()));
        t.result = Some((result.terminal_result, result_rel.clone()));
        let mut completed = stage_completed(req, &result, &result_rel, kind, &id);
        if let Some(lane) = self.state.active().and_then(|a| a.lane.as_ref()) {
            completed.1["lane"] = json!(lane.index);
        }
        t.events.push(completed);
        t.events.push((
            EventKind::RouterDecision,
            json!({"action": action, "plane": req.plane, "run_id": req.run_id,
                   "work_item_kind": kind, "work_item_id": id, "stage": req.stage,
                   "terminal_result": result.terminal_result,
                   "failure_class": result.metadata.failure_class.map(|c| c.as_str().to_string()),
                   "next_stage": next_stage, "reason": reason}),
        ));
        self.commit(t)?;
        Ok(result)
    }

    /// The active item's document was replaced while its stage ran (garbage, another item,
    /// a folder): the document as the stage began goes to `blocked/`, whatever is in its
    /// place to `quarantine/`, and the item is blocked whatever the stage answered, for a
    /// person to look at. Its usage counts; no budget is spent.
    fn block_replaced(
        &mut self,
        req: &StageRequest,
        result: &StageResult,
        result_rel: String,
        (kind, id): (WorkItemKind, String),
        what: &str,
        document: Option<&[u8]>,
    ) -> Result<()> {
        let path = self.ws.item_path(kind, Folder::Active, &id);
        let replaced = format!(
            "{} was replaced while the {} stage ran ({what})",
            self.ws.rel(&path),
            req.stage
        );
        let blocked_rel = self.ws.rel(&self.ws.item_path(kind, Folder::Blocked, &id));
        let why = match document {
            Some(_) => format!(
                "{replaced}; what the stage left there is in quarantine/, and the document as \
                 the stage began is {blocked_rel}"
            ),
            None => format!("{replaced}; what the stage left there is in quarantine/"),
        };
        let mut t = Transition::new((kind, id.clone()), Next::Idle { idle_markers: true });
        t.counting = Counting::Reset;
        t.failure_class = Some(DOCUMENT_REPLACED.into());
        let mut blocked = block(why.clone(), None);
        let quarantine = Move::Quarantine {
            path,
            reason: format!("{replaced}; {kind} {id} is blocked"),
        };
        // Nothing to put back without the document: the item's block is only its event.
        let kept = match (&mut blocked, document) {
            (Move::Block { document: kept, .. }, Some(bytes)) => {
                *kept = Some(bytes.to_vec());
                t.moves.extend([blocked, quarantine]);
                true
            }
            _ => {
                t.moves.push(quarantine);
                false
            }
        };
        t.result = Some((result.terminal_result, result_rel.clone()));
        t.events
            .push(stage_completed(req, result, &result_rel, kind, &id));
        t.events.push((
            EventKind::RouterDecision,
            json!({"action": "blocked", "plane": req.plane, "run_id": req.run_id,
                   "work_item_kind": kind, "work_item_id": id, "stage": req.stage,
                   "terminal_result": result.terminal_result,
                   "failure_class": DOCUMENT_REPLACED, "next_stage": null, "reason": why}),
        ));
        if !kept {
            t.events.push((
                EventKind::WorkItemBlocked,
                json!({"kind": kind, "id": id, "reason": why, "failure_class": DOCUMENT_REPLACED}),
            ));
        }
        self.commit(t)
    }

    /// Before the active stage starts: an item whose document in `active/` is no longer its
    /// own is blocked instead of handing the stage the replacement to work on (and spending a
    /// harness run on it). Either a block [`Engine::block_replaced`] began was interrupted
    /// (a linked `quarantine/` paused the runtime: the item's document is in `blocked/` and
    /// what the agent left is still in `active/`), or the document was replaced between
    /// stages: what is there now goes to `quarantine/` and the item is blocked without its
    /// document, which is lost. True when it did (the caller claims the next item).
    pub(crate) fn block_replaced_before_stage(&mut self) -> Result<bool> {
        let Some((kind, id)) = self.active_item() else {
            return Ok(false);
        };
        let ActiveDocument::Replaced(what) = self.queue.active_document(kind, &id) else {
            return Ok(false);
        };
        let blocked = self.ws.item_path(kind, Folder::Blocked, &id);
        let interrupted = self
            .queue
            .load(kind, &blocked)
            .is_some_and(|doc| doc.is_ok_and(|doc| doc.id() == id));
        let path = self.ws.item_path(kind, Folder::Active, &id);
        let why = if interrupted {
            format!(
                "{} was replaced while a stage ran; what the stage left there is in \
                 quarantine/, and the document as the stage began is {}",
                self.ws.rel(&path),
                self.ws.rel(&blocked)
            )
        } else {
            let stage = self
                .state
                .active()
                .map_or_else(|| "next".to_string(), |a| a.stage.to_string());
            format!(
                "{} was replaced before the {stage} stage ({what}); the stage did not run, and \
                 what is there now is in quarantine/",
                self.ws.rel(&path)
            )
        };
        let mut t = Transition::new((kind, id.clone()), Next::Idle { idle_markers: true });
        t.counting = Counting::Reset;
        t.failure_class = Some(DOCUMENT_REPLACED.into());
        t.moves.push(Move::Quarantine {
            path,
            reason: format!("{why}; {kind} {id} is blocked"),
        });
        t.events.push((
            EventKind::WorkItemBlocked,
            json!({"kind": kind, "id": id, "reason": why, "failure_class": DOCUMENT_REPLACED}),
        ));
        self.commit(t)?;
        Ok(true)
    }

    /// An environment failure (harness missing, not logged in, refused our command line, out
    /// of quota) is not the item's fault: spend none of its budgets, keep it active at this
    /// stage, and pause the runtime with the reason and the fix. `resume` (or the provider's
    /// reset time) re-runs the same stage.
    fn hold_for_environment(
        &mut self,
        req: &StageRequest,
        result: &StageResult,
        diagnosis: &runners::harness::Diagnosis,
        result_rel: String,
        kind: WorkItemKind,
        id: &str,
    ) -> Result<()> {
        let completed = stage_completed(req, result, &result_rel, kind, id);
        self.save_usage()?;
        self.state.record_result(result.terminal_result, result_rel);
        if let Some(next) = self.next_fallback(req, &result.runner_name, diagnosis) {
            self.state
                .switch_runner(next.clone(), diagnosis.kind.as_str().to_string());
            self.save_snapshot()?;
            let fallback = json!({"from": result.runner_name, "to": next, "stage": req.stage,
                   "run_id": req.run_id, "work_item_kind": kind, "work_item_id": id,
                   "failure_class": diagnosis.kind.as_str(),
                   "failure_message": diagnosis.message,
                   "action": "the same stage runs again on the fallback runner"});
            self.events
                .emit_all(vec![completed, (EventKind::RunnerFallback, fallback)], true)?;
            return Ok(());
        }
        let rate_limited = diagnosis.kind == runners::harness::FailureKind::RateLimited;
        let resume_at = match diagnosis.reset_at {
            Some(at) => Some(at),
            None if rate_limited => {
                let wait =
                    jiff::SignedDuration::try_from(self.rate_limit_backoff()).unwrap_or_default();
                crate::time::now().checked_add(wait).ok()
            }
            None => None,
        };
        let mut shown = diagnosis.clone();
        shown.reset_at = resume_at;
        let reason = runners::harness::pause_reason(&result.runner_name, &shown);
        let cause = if rate_limited {
            PauseCause::RateLimit
        } else {
            PauseCause::Harness
        };
        if rate_limited && diagnosis.reset_at.is_none() {
            self.state.rate_limited();
        }
        let resume_at = resume_at.map(crate::time::format);
        self.state
            .pause_self(cause, reason.clone(), resume_at.clone());
        self.state.note_failure(diagnosis.kind.as_str().to_string());
        self.save_snapshot()?;
        let paused = json!({"reason": reason, "failure_class": diagnosis.kind.as_str(),
               "failure_message": diagnosis.message, "runner": result.runner_name,
               "stage": req.stage, "run_id": req.run_id,
               "work_item_kind": kind, "work_item_id": id,
               "resume_at": resume_at,
               "action": "the item stays active; `millrace resume` re-runs this stage"});
        self.events
            .emit_all(vec![completed, (EventKind::RuntimePaused, paused)], true)?;
        Ok(())
    }

    /// Block the active item because a budget is spent, and free the runtime for the next.
    pub(crate) fn block_for_budget(
        &mut self,
        kind: WorkItemKind,
        id: &str,
        why: &str,
    ) -> Result<()> {
        let mut t = Transition::new((kind, id.to_string()), Next::Idle { idle_markers: true });
        t.moves.push(block(why.to_string(), None));
        t.counting = Counting::Reset;
        t.failure_class = Some("budget_exhausted".into());
        self.commit(t)
    }

    /// The transition a route's final target makes, and the `router_decision` action.
    fn terminal(
        &self,
        req: &StageRequest,
        result: &StageResult,
        consequence: Consequence,
        identity: (WorkItemKind, String),
        class: Option<String>,
        reason: &str,
    ) -> Result<(Transition, &'static str)> {
        if let Some(root) = &req.closure_target_root_spec_id {
            return self.judge_closure(req, result, consequence, root, class);
        }
        let (kind, id) = identity.clone();
        let leave = |idle_markers: bool, class: Option<String>| {
            let mut t = Transition::new(identity.clone(), Next::Idle { idle_markers });
            t.counting = Counting::Reset;
            t.failure_class = class;
            t
        };
        Ok(match consequence {
            Consequence::Complete if self.state.active().is_some_and(|a| a.lane.is_some()) => {
                // A lane's task is done only once its branch has landed.
                (
                    Transition::new(identity.clone(), Next::Integrate),
                    "integrate",
                )
            }
            Consequence::Complete => {
                let mut t = leave(true, None);
                t.moves.push(Move::Complete { history: None });
                (t, "idle")
            }
            Consequence::Handoff => {
                let lineage = self.lineage_of(kind, &id);
                // With lanes the last result recorded may be another lane's.
                let previous = self
                    .state
                    .last_stage_result_path()
                    .filter(|_| self.lanes.is_none())
                    .map(str::to_string);
                let incident = incidents::handoff(kind, &id, result, &lineage, previous);
                let why = format!("handed off to planning as incident {}", incident.id());
                let mut t = leave(false, class);
                t.moves.push(Move::Enqueue {
                    incident,
                    source_kind: kind,
                    root_spec_id: lineage.root_spec_id,
                    after: "handoff.after_incident",
                });
                t.moves.push(block(why, Some(result)));
                (t, "handoff")
            }
            Consequence::Block | Consequence::Remediation | Consequence::CloseTarget => {
                let why = format!("{reason} (last result {})", result.terminal_result);
                let mut t = leave(false, class);
                t.moves.push(block(why, Some(result)));
                (t, "blocked")
            }
        })
    }

    /// The arbiter's outcomes on its closure target (spec 07 §8).
    fn judge_closure(
        &self,
        req: &StageRequest,
        result: &StageResult,
        consequence: Consequence,
        root: &str,
        class: Option<String>,
    ) -> Result<(Transition, &'static str)> {
        let mut target = ClosureTarget::load(&self.ws.closure_target_path(root))?;
        let mut t = Transition::new(
            (WorkItemKind::Spec, root.to_string()),
            Next::Idle {
                idle_markers: false,
            },
        );
        t.counting = Counting::Reset;
        target.latest_verdict_path = req
            .preferred_verdict_path
            .as_ref()
            .filter(|p| p.is_file())
            .map(|p| self.ws.rel(p));
        target.latest_report_path = None;
        if let Some(report) = result.report_artifact.as_ref().filter(|p| p.is_file()) {
            let path = self.ws.arbiter_report_path(&req.run_id);
            let bytes = atomic::read_regular(report)
                .map_err(|e| crate::workspace::atomic::IoError::path("read", report, e))?;
            target.latest_report_path = Some(self.ws.rel(&path));
            t.moves.push(Move::Write { path, bytes });
        }
        target.last_arbiter_run_id = Some(req.run_id.clone());
        target.closure_blocked_by_lineage_work = false;
        target.blocking_work_ids.clear();
        target.latest_outcome = Some(result.terminal_result.as_str().to_string());
        let action = match consequence {
            Consequence::CloseTarget | Consequence::Complete => {
                target.closure_open = false;
                target.closed_at = Some(crate::time::now_string());
                t.moves.push(Move::SaveTarget {
                    target,
                    after: Some("closure.after_close"),
                });
                t.next = Next::Idle { idle_markers: true };
                t.events.push((
                    EventKind::ClosureTargetClosed,
                    json!({"root_spec_id": root, "run_id": req.run_id}),
                ));
                "idle"
            }
            Consequence::Remediation | Consequence::Handoff => {
                let incident = incidents::remediation(root, target.root_idea_id.as_deref(), result);
                t.moves.push(Move::SaveTarget {
                    target,
                    after: None,
                });
                t.moves.push(Move::Enqueue {
                    incident,
                    source_kind: WorkItemKind::Spec,
                    root_spec_id: Some(root.to_string()),
                    after: "remediation.after_incident",
                });
                t.failure_class = Some("arbiter_parity_gap".into());
                "handoff"
            }
            Consequence::Block => {
                t.events.push((
                    EventKind::ClosureTargetBlocked,
                    json!({"root_spec_id": root, "run_id": req.run_id, "failure_class": class,
                           "arbiter_runs": target.arbiter_runs}),
                ));
                t.moves.push(Move::SaveTarget {
                    target,
                    after: None,
                });
                t.failure_class = class;
                "blocked"
            }
        };
        Ok((t, action))
    }

    /// A failure after the stage produced its result: send the item to its plane's repair
    /// stage with a report, bounded by `recovery.max_runtime_repairs` (spec 06 §8).
    pub(crate) fn post_stage_recovery(&mut self, req: &StageRequest, message: &str) -> Result<()> {
        tracing::warn!(stage = %req.stage, %message, "post-stage failure");
        // With lanes, only this run's activation may be repaired (none, if it already left).
        self.state.focus_on(&req.run_id);
        let code = format!("{}_post_stage_apply_failed", req.plane);
        let scheduled = |repair: Option<Stage>, extra: Value| {
            let mut data = json!({"error_code": code, "plane": req.plane,
                                  "failed_stage": req.stage, "repair_stage": repair,
                                  "exception_message": message});
            if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
                data.extend(extra);
            }
            (EventKind::RuntimePostStageRecoveryScheduled, data)
        };
        let identity = match (&req.closure_target_root_spec_id, self.identity(req)) {
            (Some(root), _) => {
                let mut t = Transition::new(
                    (WorkItemKind::Spec, root.clone()),
                    Next::Idle {
                        idle_markers: false,
                    },
                );
                t.failure_class = Some(code.clone());
                t.events.push(scheduled(
                    None,
                    json!({"closure_target_root_spec_id": root}),
                ));
                return self.commit(t);
            }
            (None, Ok(identity)) => identity,
            (None, Err(_)) => {
                self.state.go_idle(None, false);
                return self.save_snapshot();
            }
        };
        let (kind, id) = identity.clone();
        if !self.ws.item_path(kind, Folder::Active, &id).exists() {
            let mut t = Transition::new(identity, Next::Idle { idle_markers: true });
            t.counting = Counting::Reset;
            t.failure_class = Some(code.clone());
            t.events.push(scheduled(
                None,
                json!({"work_item_kind": kind, "work_item_id": id,
                       "action": "item is no longer active; cleared"}),
            ));
            return self.commit(t);
        }
        let used = self.counters.count(RUNTIME_REPAIR, kind, &id);
        let limit = self.config.recovery.max_runtime_repairs;
        if used >= limit {
            let why = format!("runtime repair budget spent ({used}/{limit}) after: {message}");
            let mut t = Transition::new(
                identity,
                Next::Idle {
                    idle_markers: false,
                },
            );
            t.moves.push(block(why, None));
            t.counting = Counting::Reset;
            t.failure_class = Some(code);
            return self.commit(t);
        }
        let repair = match req.plane {
            Plane::Execution => Stage::Troubleshooter,
            Plane::Planning => Stage::Mechanic,
        };
        let report_path = runners::report_path(&req.run_dir, runners::RunReport::RuntimeError);
        let mut t = Transition::new(identity, Next::Advance(repair));
        t.events.push(scheduled(
            Some(repair),
            json!({"work_item_kind": kind, "work_item_id": id,
                   "report_path": report_path.display().to_string()}),
        ));
        t.moves
            .extend(self.repair_files(req, &code, repair, (kind, &id), message));
        t.counting = Counting::Increment(RUNTIME_REPAIR.to_string());
        t.marker = Some((req.plane, "### BLOCKED".into()));
        t.failure_class = Some(code);
        self.commit(t)
    }

    /// The runtime error report and context the repair stage reads.
    fn repair_files(
        &self,
        req: &StageRequest,
        code: &str,
        repair: Stage,
        (kind, id): (WorkItemKind, &str),
        message: &str,
    ) -> Vec<Move> {
        let report_path = runners::report_path(&req.run_dir, runners::RunReport::RuntimeError);
        let stage_result = runners::stage_result_path(&req.run_dir, &req.request_id);
        let stage_result_rel = stage_result.is_file().then(|| self.ws.rel(&stage_result));
        let report = format!(
            "# Runtime Error Report\n\nError-Code: {code}\nPlane: {}\nFailed-Stage: {}\nRepair-Stage: {repair}\nRun-ID: {}\nWork-Item: {kind} {id}\nStage-Result-Path: {}\nException-Message: {}\nCaptured-At: {}\n\nSummary:\n- The stage finished, but the runtime could not apply its result.\n- Instead of stopping, the runtime handed the item to the {repair} with this report.\n- Fix the cause named above, then end with one of your legal markers.\n",
            req.plane,
            req.stage,
            req.run_id,
            stage_result_rel.clone().unwrap_or_else(|| "none".into()),
            message.replace('\n', " "),
            crate::time::now_string(),
        );
        let ctx = RuntimeErrorContext {
            schema_version: "1.0".into(),
            kind: "runtime_error_context".into(),
            error_code: code.to_string(),
            plane: req.plane,
            failed_stage: req.stage,
            repair_stage: repair,
            work_item_kind: kind,
            work_item_id: id.to_string(),
            run_id: req.run_id.clone(),
            terminal_result: None,
            stage_result_path: stage_result_rel,
            report_path: report_path.display().to_string(),
            exception_message: message.to_string(),
            captured_at: crate::time::now_string(),
        };
        vec![
            Move::Write {
                path: report_path,
                bytes: report.into_bytes(),
            },
            Move::Write {
                path: self.error_context_path(&req.run_id),
                bytes: crate::yaml::to_string(&ctx).into_bytes(),
            },
        ]
    }

    /// Normalize the raw result (a manager's invalid task documents demote it to blocked)
    /// and persist it in the run's `stage_results/`; returns it and its workspace path.
    fn persist_result(&self, req: &StageRequest, raw: &RawResult) -> Result<(StageResult, String)> {
        if matches!(req.stage, Stage::Troubleshooter | Stage::Mechanic) {
            let _ = std::fs::remove_file(self.error_context_path(&req.run_id));
        }
        let mut result = runners::normalize(req, raw)?;
        if req.stage == Stage::Manager && result.terminal_result == TerminalResult::ManagerComplete
        {
            let since =
                std::time::SystemTime::try_from(raw.started_at).unwrap_or(std::time::UNIX_EPOCH);
            let bad = self.check_manager_output(since)?;
            if !bad.is_empty() {
                result.demote_to_blocked(
                    FailureClass::InvalidStageOutput,
                    format!(
                        "the manager wrote invalid task documents (quarantined): {}",
                        bad.join("; ")
                    ),
                );
            }
        }
        let result_path = runners::stage_result_path(&req.run_dir, &req.request_id);
        atomic::create_dir_all(result_path.parent().expect("has parent"))?;
        atomic::write_atomic(&result_path, crate::yaml::to_string(&result).as_bytes())?;
        crate::workspace::failpoint::transition("stage_result.after_persist")?;
        let result_rel = self.ws.rel(&result_path);
        Ok((result, result_rel))
    }
}
