//! Building the stage request from the snapshot and the frozen plan.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Engine;
use crate::error::{Error, Result};
use crate::model::{Plane, Stage, WorkItemKind};
use crate::runners::{report_path, RequestKind, RunReport, StageRequest};
use crate::state::closure::ClosureTarget;
use crate::state::event::EventKind;
use crate::state::markers;
use crate::state::runtime::Subject;
use crate::workspace::{atomic, Folder};

/// `state/runtime_error_context.yaml`: why the runtime sent an item to its repair stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeErrorContext {
    pub schema_version: String,
    pub kind: String,
    pub error_code: String,
    pub plane: Plane,
    pub failed_stage: Stage,
    pub repair_stage: Stage,
    pub work_item_kind: WorkItemKind,
    pub work_item_id: String,
    pub run_id: String,
    pub terminal_result: Option<String>,
    pub stage_result_path: Option<String>,
    pub report_path: String,
    pub exception_message: String,
    pub captured_at: String,
}

impl Engine {
    /// Build the request for the active stage (spec 08 §2, 07 §7).
    pub(crate) fn build_request(&mut self) -> Result<StageRequest> {
        let Some(active) = self.state.active().cloned() else {
            return Err(Error::internal("no active stage to run"));
        };
        let (stage, run_id) = (active.stage, active.run_id.clone());
        let plan = self
            .plan
            .stage_plan(stage)
            .ok_or_else(|| {
                Error::internal(format!("the compiled plan has no stage plan for {stage}"))
            })?
            .clone();
        let rt = self.ws.rt().to_path_buf();
        let run_dir = self.ws.run_dir(&run_id);
        atomic::create_dir_all(&run_dir)?;
        let mut req = StageRequest {
            request_id: crate::time::new_request_id(),
            run_id: run_id.clone(),
            plane: stage.plane(),
            stage,
            request_kind: RequestKind::ActiveWorkItem,
            mode_id: self.state.plan().mode_id.clone(),
            compiled_plan_id: self.state.plan().compiled_plan_id.clone(),
            entrypoint_path: rt.join(&plan.entrypoint_path),
            entrypoint_contract_id: plan.entrypoint_contract_id.clone(),
            required_skill_paths: plan.required_skills.iter().map(|p| rt.join(p)).collect(),
            attached_skill_paths: plan
                .attached_skill_additions
                .iter()
                .map(|p| rt.join(p))
                .collect(),
            active_work_item_kind: None,
            active_work_item_id: None,
            active_work_item_path: None,
            closure_target_path: None,
            closure_target_root_spec_id: None,
            closure_target_root_idea_id: None,
            canonical_root_spec_path: None,
            canonical_seed_idea_path: None,
            preferred_rubric_path: None,
            preferred_verdict_path: None,
            preferred_report_path: None,
            run_dir: run_dir.clone(),
            summary_status_path: self.ws.status_path(stage.plane()),
            runtime_snapshot_path: self.ws.snapshot_path(),
            recovery_counters_path: self.ws.counters_path(),
            preferred_troubleshoot_report_path: None,
            runtime_error_code: None,
            runtime_error_report_path: None,
            runtime_error_catalog_path: None,
            runner_name: plan.runner_name.clone(),
            model_name: plan.model_name.clone(),
            timeout_seconds: plan.timeout_seconds,
            idle_timeout_seconds: self.config.stage(stage).idle_timeout_seconds,
            working_directory: None,
            working_branch: None,
        };
        if let (Some(lanes), Some(lane)) = (&self.lanes, &active.lane) {
            req.working_directory = Some(lanes.working_directory(&lane.worktree));
            req.working_branch = Some(lane.branch.clone());
        }
        if let Subject::Closure { root_spec_id: root } = &active.subject {
            let target_path = self.ws.closure_target_path(root);
            let target = ClosureTarget::load(&target_path)?;
            let root_path = self.ws.root();
            req.request_kind = RequestKind::ClosureTarget;
            req.closure_target_path = Some(target_path);
            req.closure_target_root_spec_id = Some(root.clone());
            req.closure_target_root_idea_id = target.root_idea_id.clone();
            req.canonical_root_spec_path = Some(root_path.join(&target.root_spec_path));
            req.canonical_seed_idea_path =
                target.root_idea_path.as_ref().map(|p| root_path.join(p));
            req.preferred_rubric_path = Some(root_path.join(&target.rubric_path));
            req.preferred_verdict_path = Some(self.ws.arbiter_verdict_path(root));
            req.preferred_report_path = Some(report_path(&run_dir, RunReport::Arbiter));
        } else if let Subject::Item { kind, id } = &active.subject {
            req.active_work_item_path = Some(self.ws.item_path(*kind, Folder::Active, id));
            req.active_work_item_kind = Some(*kind);
            req.active_work_item_id = Some(id.clone());
            req.preferred_troubleshoot_report_path =
                Some(report_path(&run_dir, RunReport::Troubleshoot));
            let conflict = run_dir.join(super::lanes::CONFLICT_REPORT);
            if stage == Stage::Fixer
                && active.failure_class.as_deref() == Some(super::lanes::CONFLICT_BUDGET)
                && conflict.is_file()
            {
                req.runtime_error_code = Some(super::lanes::CONFLICT_BUDGET.into());
                req.runtime_error_report_path = Some(conflict);
            } else if matches!(stage, Stage::Troubleshooter | Stage::Mechanic) {
                if let Some(ctx) = self.matching_error_context(stage) {
                    req.runtime_error_code = Some(ctx.error_code);
                    req.runtime_error_report_path = Some(std::path::PathBuf::from(ctx.report_path));
                    let catalog = self.ws.error_catalog_path();
                    req.runtime_error_catalog_path = catalog.is_file().then_some(catalog);
                }
            }
        }
        Ok(req)
    }

    /// Where a run's repair context goes: `state/runtime_error_context.yaml`, or with lanes
    /// the run's own folder, so two lanes' repairs never share (or delete) one file.
    pub(crate) fn error_context_path(&self, run_id: &str) -> std::path::PathBuf {
        match self.lanes {
            Some(_) => self.ws.run_dir(run_id).join("runtime_error_context.yaml"),
            None => self.ws.error_context_path(),
        }
    }

    fn matching_error_context(&self, stage: Stage) -> Option<RuntimeErrorContext> {
        let active = self.state.active()?;
        let ctx: RuntimeErrorContext =
            crate::state::load_yaml(&self.error_context_path(&active.run_id)).ok()?;
        let matches = ctx.repair_stage == stage
            && ctx.run_id == active.run_id
            && active.subject.item() == Some((ctx.work_item_kind, ctx.work_item_id.as_str()))
            && self.state.failure_class() == Some(ctx.error_code.as_str());
        matches.then_some(ctx)
    }

    /// Write the running marker and announce the stage.
    pub(crate) fn mark_running(&mut self, req: &StageRequest) -> Result<()> {
        let marker = req.stage.running_marker();
        markers::write(&self.ws.status_path(req.plane), req.plane, &marker)?;
        self.state.set_marker(req.plane, marker);
        // Not forced to disk: the stage's end writes the snapshot and the log durably, and a
        // power loss before it loses only the running marker (or, for a claim, the
        // activation, and reconcile then requeues the claimed item).
        self.state
            .save_with(&self.ws.snapshot_path(), atomic::Durability::Relaxed)?;
        let lane = self
            .state
            .active()
            .and_then(|a| a.lane.as_ref())
            .map(|l| l.index);
        let mut data = json!({"request_id": req.request_id, "stage": req.stage, "plane": req.plane,
                       "run_id": req.run_id, "request_kind": req.request_kind.as_str(),
                       "work_item_kind": req.active_work_item_kind,
                       "work_item_id": req.active_work_item_id,
                       "closure_target_root_spec_id": req.closure_target_root_spec_id,
                       "runner": self.registry.resolve_name(req),
                       "troubleshoot_report_path": req.preferred_troubleshoot_report_path});
        if let Some(lane) = lane {
            data["lane"] = json!(lane);
            data["working_directory"] = json!(req.working_directory);
        }
        self.events
            .emit_all(vec![(EventKind::StageStarted, data)], false)?;
        Ok(())
    }
}
