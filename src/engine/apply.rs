//! Applying a stage result: persist it, route it through the frozen plan, act on the route.

use std::path::Path;

use serde_json::json;

use super::closure::ClosureTarget;
use super::incidents::{self, Lineage};
use super::request::RuntimeErrorContext;
use super::Engine;
use crate::compiler::{Consequence, Route};
use crate::error::{Error, Result};
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};
use crate::queue::QueueError;
use crate::runners::{self, FailureClass, RawResult, StageRequest, StageResult};
use crate::state::counters::RUNTIME_REPAIR;
use crate::state::markers;
use crate::state::snapshot::PauseCause;
use crate::workspace::{atomic, Folder};

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

/// Append a dated line under a `## Runtime History` heading at the end of a document.
fn append_history(path: &Path, line: &str) -> Result<()> {
    let Ok(mut text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.contains("\n## Runtime History\n") {
        text.push_str("\n## Runtime History\n\n");
    }
    text.push_str(&format!(
        "- {} {}\n",
        crate::time::now_string(),
        line.replace('\n', " ")
    ));
    atomic::write_atomic(path, text.as_bytes())?;
    Ok(())
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
                        "filename stem does not match task_id: expected {}, found {}",
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
            _ => Err(Error::msg("stage request has no work item identity")),
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

    /// Normalize, persist, route and apply one stage's raw result.
    pub(crate) fn apply_result(
        &mut self,
        req: &StageRequest,
        raw: RawResult,
    ) -> Result<StageResult> {
        if self.snapshot.active_stage != Some(req.stage)
            || self.snapshot.active_run_id.as_deref() != Some(req.run_id.as_str())
        {
            return Err(Error::msg(
                "stage result does not match the runtime snapshot's active stage and run",
            ));
        }
        if matches!(req.stage, Stage::Troubleshooter | Stage::Mechanic) {
            let _ = std::fs::remove_file(self.ws.error_context_path());
        }
        let mut result = runners::normalize(req, &raw).map_err(|e| Error::msg(e.to_string()))?;
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
        crate::failpoint::transition("stage_result.after_persist")?;
        let result_rel = self.ws.rel(&result_path);
        let (kind, id) = self.identity(req)?;
        self.count_run_usage(&req.run_id, kind, &id)?;
        crate::failpoint::transition("stage_result.after_usage")?;
        if let Some(diagnosis) = result
            .diagnosis
            .as_ref()
            .filter(|d| d.kind.is_environment())
        {
            self.hold_for_environment(req, &result, diagnosis, result_rel, kind, &id)?;
            return Ok(result);
        }
        self.snapshot.rate_limit_strikes = 0;
        let counters = &self.counters;
        let route = self
            .plan
            .route(req.plane, req.stage, result.terminal_result, |key| {
                counters.count(key, kind, &id)
            })
            .map_err(|e| Error::msg(e.to_string()))?;
        markers::write(
            &self.ws.status_path(req.plane),
            req.plane,
            &result.summary_status_marker,
        )?;
        *self.snapshot.marker_mut(req.plane) = result.summary_status_marker.clone();
        crate::failpoint::transition("stage_result.after_route")?;
        let class = result
            .metadata
            .failure_class
            .map(|c| normalize_class(c.as_str()))
            .or_else(|| {
                (result.terminal_result == TerminalResult::Blocked)
                    .then(|| format!("{}_blocked", req.stage))
            });
        let previous_result = self.snapshot.last_stage_result_path.clone();
        let (action, next_stage, reason) = match &route {
            Route::Stage {
                next,
                budget_key,
                reason,
            } => {
                if let Some(key) = budget_key {
                    self.counters.increment(key, kind, &id);
                    self.counters.save(&self.ws.counters_path())?;
                }
                let s = &mut self.snapshot;
                s.active_plane = Some(next.plane());
                s.active_stage = Some(*next);
                s.active_since = Some(crate::time::now_string());
                s.current_failure_class = if result.success { None } else { class.clone() };
                self.mirror_counters();
                ("run_stage", Some(*next), reason.clone())
            }
            Route::Terminal {
                consequence,
                reason,
                ..
            } => {
                let action = self.apply_terminal(
                    req,
                    &result,
                    *consequence,
                    kind,
                    &id,
                    class.clone(),
                    previous_result,
                    reason,
                )?;
                (action, None, reason.clone())
            }
        };
        let depths = self.queue.depths();
        let s = &mut self.snapshot;
        s.last_terminal_result = Some(result.terminal_result);
        s.last_stage_result_path = Some(result_rel.clone());
        s.queue_depth_execution = depths.0;
        s.queue_depth_planning = depths.1;
        crate::failpoint::transition("stage_result.before_snapshot")?;
        self.save_snapshot()?;
        let failure = result
            .metadata
            .failure_class
            .map(|c| c.as_str().to_string());
        self.emit_stage_completed(req, &result, &result_rel, kind, &id)?;
        self.events.emit(
            "router_decision",
            json!({"action": action, "plane": req.plane, "run_id": req.run_id,
                   "work_item_kind": kind, "work_item_id": id, "stage": req.stage,
                   "terminal_result": result.terminal_result, "failure_class": failure,
                   "next_stage": next_stage, "reason": reason}),
        )?;
        Ok(result)
    }

    /// `stage_completed`: what the stage answered, and for a failure its class and the
    /// harness's own words (what `watch` prints).
    fn emit_stage_completed(
        &self,
        req: &StageRequest,
        result: &StageResult,
        result_rel: &str,
        kind: WorkItemKind,
        id: &str,
    ) -> Result<()> {
        let failure = result.diagnosis.as_ref();
        self.events.emit(
            "stage_completed",
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
        )?;
        Ok(())
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
        if let Some(next) = self.next_fallback(req, &result.runner_name, diagnosis) {
            self.snapshot.runner_override = Some(next.clone());
            self.snapshot.current_failure_class = Some(diagnosis.kind.as_str().to_string());
            self.snapshot.last_terminal_result = Some(result.terminal_result);
            self.snapshot.last_stage_result_path = Some(result_rel.clone());
            self.save_snapshot()?;
            self.emit_stage_completed(req, result, &result_rel, kind, id)?;
            self.events.emit(
                "runner_fallback",
                json!({"from": result.runner_name, "to": next, "stage": req.stage,
                       "run_id": req.run_id, "work_item_kind": kind, "work_item_id": id,
                       "failure_class": diagnosis.kind.as_str(),
                       "failure_message": diagnosis.message,
                       "action": "the same stage runs again on the fallback runner"}),
            )?;
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
        let s = &mut self.snapshot;
        s.paused = true;
        s.paused_for = Some(if rate_limited {
            PauseCause::RateLimit
        } else {
            PauseCause::Harness
        });
        if rate_limited && diagnosis.reset_at.is_none() {
            s.rate_limit_strikes = s.rate_limit_strikes.saturating_add(1);
        }
        s.pause_reason = Some(reason.clone());
        s.resume_at = resume_at.map(crate::time::format);
        s.current_failure_class = Some(diagnosis.kind.as_str().to_string());
        s.last_terminal_result = Some(result.terminal_result);
        s.last_stage_result_path = Some(result_rel.clone());
        self.save_snapshot()?;
        self.emit_stage_completed(req, result, &result_rel, kind, id)?;
        self.events.emit(
            "runtime_paused",
            json!({"reason": reason, "failure_class": diagnosis.kind.as_str(),
                   "failure_message": diagnosis.message, "runner": result.runner_name,
                   "stage": req.stage, "run_id": req.run_id,
                   "work_item_kind": kind, "work_item_id": id,
                   "resume_at": self.snapshot.resume_at,
                   "action": "the item stays active; `millrace resume` re-runs this stage"}),
        )?;
        Ok(())
    }

    /// Clear the active part of the snapshot after an item left `active/`.
    fn release_item(
        &mut self,
        kind: WorkItemKind,
        id: &str,
        class: Option<String>,
        idle_markers: bool,
    ) -> Result<()> {
        self.counters.reset_item(kind, id);
        self.counters.save(&self.ws.counters_path())?;
        self.forget_item_usage(kind, id)?;
        self.snapshot.clear_active();
        self.snapshot.current_failure_class = class;
        if idle_markers {
            for plane in Plane::ALL {
                markers::write(&self.ws.status_path(plane), plane, markers::IDLE)?;
                *self.snapshot.marker_mut(plane) = markers::IDLE.into();
            }
        }
        Ok(())
    }

    /// Block the active item because a budget is spent, and free the runtime for the next.
    pub(crate) fn block_for_budget(
        &mut self,
        kind: WorkItemKind,
        id: &str,
        why: &str,
    ) -> Result<()> {
        self.block_item(kind, id, why, None)?;
        self.release_item(kind, id, Some("budget_exhausted".into()), true)?;
        self.save_snapshot()
    }

    /// Move the active item to `blocked/`, recording why in its history and the event log.
    fn block_item(
        &mut self,
        kind: WorkItemKind,
        id: &str,
        why: &str,
        result: Option<&StageResult>,
    ) -> Result<()> {
        let failure = result.and_then(|r| r.diagnosis.as_ref());
        let refused = result.map(|r| r.refused.as_slice()).unwrap_or_default();
        let mut history = format!("blocked by the runtime: {why}");
        if let Some(d) = failure {
            history.push_str(&format!("; {}: {}", d.kind, d.message));
        }
        if !refused.is_empty() {
            history.push_str(&format!("; the harness refused: {}", refused.join(" | ")));
        }
        match self.queue.block(kind, id) {
            Ok(path) => append_history(&path, &history)?,
            Err(e) => {
                self.events.emit(
                    "runtime_blocked_mark_failed",
                    json!({"reason": why, "work_item_kind": kind, "work_item_id": id, "error": e.to_string()}),
                )?;
            }
        }
        self.events.emit(
            "work_item_blocked",
            json!({"kind": kind, "id": id, "reason": why,
                   "failure_class": failure.map(|d| d.kind.as_str()),
                   "failure_message": failure.map(|d| d.message.as_str()),
                   "refused": refused}),
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_terminal(
        &mut self,
        req: &StageRequest,
        result: &StageResult,
        consequence: Consequence,
        kind: WorkItemKind,
        id: &str,
        class: Option<String>,
        previous_result: Option<String>,
        reason: &str,
    ) -> Result<&'static str> {
        if req.closure_target_root_spec_id.is_some() {
            return self.apply_closure(req, result, consequence, class);
        }
        match consequence {
            Consequence::Complete => {
                match self.queue.complete(kind, id) {
                    Ok(_) => {}
                    Err(QueueError::NotActive { .. })
                        if self.ws.item_path(kind, Folder::Done, id).exists() => {}
                    Err(e) => return Err(e.into()),
                }
                self.events
                    .emit("work_item_completed", json!({"kind": kind, "id": id}))?;
                self.release_item(kind, id, None, true)?;
                Ok("idle")
            }
            Consequence::Handoff => {
                let lineage = self.lineage_of(kind, id);
                let incident = incidents::handoff(kind, id, result, &lineage, previous_result);
                let path = self.queue.enqueue(&incident)?;
                crate::failpoint::transition("handoff.after_incident")?;
                self.events.emit(
                    "runtime_handoff_incident_enqueued",
                    json!({"incident_id": incident.id(), "source_work_item_kind": kind,
                           "source_work_item_id": id, "destination": self.ws.rel(&path),
                           "root_spec_id": lineage.root_spec_id}),
                )?;
                self.block_item(
                    kind,
                    id,
                    &format!("handed off to planning as incident {}", incident.id()),
                    Some(result),
                )?;
                self.release_item(kind, id, class, false)?;
                Ok("handoff")
            }
            Consequence::Block | Consequence::Remediation | Consequence::CloseTarget => {
                let why = format!("{reason} (last result {})", result.terminal_result);
                self.block_item(kind, id, &why, Some(result))?;
                self.release_item(kind, id, class, false)?;
                Ok("blocked")
            }
        }
    }

    /// The arbiter's outcomes on its closure target (spec 07 §8).
    fn apply_closure(
        &mut self,
        req: &StageRequest,
        result: &StageResult,
        consequence: Consequence,
        class: Option<String>,
    ) -> Result<&'static str> {
        let root = req.closure_target_root_spec_id.clone().unwrap_or_default();
        let path = ClosureTarget::path(&self.ws, &root);
        let mut target = ClosureTarget::load(&path)?;
        target.latest_verdict_path = req
            .preferred_verdict_path
            .as_ref()
            .filter(|p| p.is_file())
            .map(|p| self.ws.rel(p));
        target.latest_report_path = None;
        if let Some(report) = result.report_artifact.as_ref().filter(|p| p.is_file()) {
            let dest = self
                .ws
                .arbiter_dir()
                .join("reports")
                .join(format!("{}.md", req.run_id));
            let text = std::fs::read(report)
                .map_err(|e| crate::workspace::atomic::IoError::path("read", report, e))?;
            atomic::write_atomic(&dest, &text)?;
            target.latest_report_path = Some(self.ws.rel(&dest));
        }
        target.last_arbiter_run_id = Some(req.run_id.clone());
        target.closure_blocked_by_lineage_work = false;
        target.blocking_work_ids.clear();
        target.latest_outcome = Some(result.terminal_result.as_str().to_string());
        let action = match consequence {
            Consequence::CloseTarget | Consequence::Complete => {
                target.closure_open = false;
                target.closed_at = Some(crate::time::now_string());
                target.save(&self.ws)?;
                crate::failpoint::transition("closure.after_close")?;
                self.events.emit(
                    "closure_target_closed",
                    json!({"root_spec_id": root, "run_id": req.run_id}),
                )?;
                self.release_item(WorkItemKind::Spec, &root, None, true)?;
                "idle"
            }
            Consequence::Remediation | Consequence::Handoff => {
                target.save(&self.ws)?;
                let incident =
                    incidents::remediation(&root, target.root_idea_id.as_deref(), result);
                let dest = self.queue.enqueue(&incident)?;
                crate::failpoint::transition("remediation.after_incident")?;
                self.events.emit(
                    "runtime_handoff_incident_enqueued",
                    json!({"incident_id": incident.id(), "source_work_item_kind": "spec",
                           "source_work_item_id": root, "destination": self.ws.rel(&dest),
                           "root_spec_id": root}),
                )?;
                self.release_item(
                    WorkItemKind::Spec,
                    &root,
                    Some("arbiter_parity_gap".into()),
                    false,
                )?;
                "handoff"
            }
            Consequence::Block => {
                target.save(&self.ws)?;
                self.events.emit(
                    "closure_target_blocked",
                    json!({"root_spec_id": root, "run_id": req.run_id, "failure_class": class,
                           "arbiter_runs": target.arbiter_runs}),
                )?;
                self.release_item(WorkItemKind::Spec, &root, class, false)?;
                "blocked"
            }
        };
        Ok(action)
    }

    /// A failure after the stage produced its result: send the item to its plane's repair
    /// stage with a report, bounded by `recovery.max_runtime_repairs` (spec 06 §8).
    pub(crate) fn post_stage_recovery(&mut self, req: &StageRequest, message: &str) -> Result<()> {
        tracing::warn!(stage = %req.stage, %message, "post-stage failure");
        let code = format!("{}_post_stage_apply_failed", req.plane);
        if req.closure_target_root_spec_id.is_some() {
            self.events.emit(
                "runtime_post_stage_recovery_scheduled",
                json!({"error_code": code, "plane": req.plane, "failed_stage": req.stage,
                       "repair_stage": null, "exception_message": message,
                       "closure_target_root_spec_id": req.closure_target_root_spec_id}),
            )?;
            self.snapshot.clear_active();
            self.snapshot.current_failure_class = Some(code);
            return self.save_snapshot();
        }
        let Ok((kind, id)) = self.identity(req) else {
            self.snapshot.clear_active();
            return self.save_snapshot();
        };
        if !self.ws.item_path(kind, Folder::Active, &id).exists() {
            self.events.emit(
                "runtime_post_stage_recovery_scheduled",
                json!({"error_code": code, "plane": req.plane, "failed_stage": req.stage,
                       "repair_stage": null, "work_item_kind": kind, "work_item_id": id,
                       "exception_message": message, "action": "item is no longer active; cleared"}),
            )?;
            self.release_item(kind, &id, Some(code), true)?;
            return self.save_snapshot();
        }
        let used = self.counters.count(RUNTIME_REPAIR, kind, &id);
        if used >= self.config.recovery.max_runtime_repairs {
            let why = format!(
                "runtime repair budget spent ({used}/{}) after: {message}",
                self.config.recovery.max_runtime_repairs
            );
            self.block_item(kind, &id, &why, None)?;
            self.release_item(kind, &id, Some(code), false)?;
            return self.save_snapshot();
        }
        self.counters.increment(RUNTIME_REPAIR, kind, &id);
        self.counters.save(&self.ws.counters_path())?;
        let repair = match req.plane {
            Plane::Execution => Stage::Troubleshooter,
            Plane::Planning => Stage::Mechanic,
        };
        let report_path = req.run_dir.join("runtime_error_report.md");
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
        atomic::write_atomic(&report_path, report.as_bytes())?;
        let ctx = RuntimeErrorContext {
            schema_version: "1.0".into(),
            kind: "runtime_error_context".into(),
            error_code: code.clone(),
            plane: req.plane,
            failed_stage: req.stage,
            repair_stage: repair,
            work_item_kind: kind,
            work_item_id: id.clone(),
            run_id: req.run_id.clone(),
            terminal_result: None,
            stage_result_path: stage_result_rel,
            report_path: report_path.display().to_string(),
            exception_message: message.to_string(),
            captured_at: crate::time::now_string(),
        };
        atomic::write_atomic(
            &self.ws.error_context_path(),
            crate::yaml::to_string(&ctx).as_bytes(),
        )?;
        markers::write(&self.ws.status_path(req.plane), req.plane, "### BLOCKED")?;
        let s = &mut self.snapshot;
        *s.marker_mut(req.plane) = "### BLOCKED".into();
        s.active_plane = Some(req.plane);
        s.active_stage = Some(repair);
        s.active_since = Some(crate::time::now_string());
        s.current_failure_class = Some(code.clone());
        self.save_snapshot()?;
        self.events.emit(
            "runtime_post_stage_recovery_scheduled",
            json!({"error_code": code, "plane": req.plane, "failed_stage": req.stage,
                   "repair_stage": repair, "work_item_kind": kind, "work_item_id": id,
                   "exception_message": message, "report_path": report_path.display().to_string()}),
        )?;
        Ok(())
    }
}
