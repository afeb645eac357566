//! Usage governance in the engine: the ledger is fed after every stage, budgets are checked
//! between stages, rate limits back off, and a stage whose runner failed for its environment
//! moves to the next fallback runner.

use std::collections::HashMap;

use serde_json::json;

use super::Engine;
use crate::error::Result;
use crate::model::{Stage, WorkItemKind};
use crate::runners::harness::{Diagnosis, FailureKind};
use crate::runners::{StageRequest, StageResult};
use crate::state::event::EventKind;
use crate::state::snapshot::PauseCause;
use crate::state::usage::{self, item_key, Record};

/// The stage results a run folder holds: only those written whole (a temp file a kill left
/// mid-rename is not one; the stage runs again and writes its own).
fn stage_results(run_dir: &std::path::Path) -> Vec<StageResult> {
    let dir = crate::runners::stage_results_dir(run_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let path = e.path();
            let text = crate::workspace::atomic::read_regular_string(&path).ok()?;
            crate::yaml::from_str::<StageResult>(&path, &text).ok()
        })
        .collect()
}

impl Engine {
    /// The root spec a work item's spending counts against (a root spec is its own).
    fn lineage_root(&self, kind: WorkItemKind, id: &str) -> Option<String> {
        let root = self.lineage_of(kind, id).root_spec_id;
        match kind {
            WorkItemKind::Spec => root.or_else(|| Some(id.to_string())),
            _ => root,
        }
    }

    /// Count every persisted stage result of `run_id` the ledger does not know yet — the one
    /// just written, and any a crash or a failed ledger write kept from it before. One path
    /// for both, so a stage is counted exactly once.
    pub(crate) fn count_run_usage(
        &mut self,
        run_id: &str,
        kind: WorkItemKind,
        id: &str,
    ) -> Result<()> {
        let key = item_key(kind, id);
        let lineage = self.lineage_root(kind, id);
        let mut results = stage_results(&self.ws.run_dir(run_id));
        results.retain(|r| !self.ledger.counted(&key, &r.metadata.request_id));
        results.sort_by_key(|r| r.completed_at);
        for result in &results {
            self.count(result, lineage.as_deref());
        }
        Ok(())
    }

    fn count(&mut self, result: &StageResult, lineage: Option<&str>) -> bool {
        self.ledger.record(
            &Record {
                request_id: &result.metadata.request_id,
                at: result.completed_at,
                item: item_key(result.work_item_kind, &result.work_item_id),
                lineage,
                usage: result.token_usage.as_ref(),
                wall_seconds: result.duration_seconds,
                simulated: result.runner_name == crate::runners::scripted::SCRIPTED_RUNNER,
            },
            self.config.usage.window.hours,
        )
    }

    /// At a start whose ledger no longer parsed (it was set aside): count again every stage
    /// result the runs hold, so the budgets do not start again from nothing. Runs retention
    /// compressed or pruned are not there to count; the event says how much was.
    pub(crate) fn rebuild_usage(&mut self) -> Result<()> {
        let mut results = Vec::new();
        let mut runs = 0;
        if let Ok(dirs) = std::fs::read_dir(self.ws.runs_dir()) {
            for dir in dirs.flatten() {
                let found = stage_results(&dir.path());
                runs += usize::from(!found.is_empty());
                results.extend(found);
            }
        }
        results.sort_by_key(|r| r.completed_at);
        let mut roots: HashMap<(WorkItemKind, String), Option<String>> = HashMap::new();
        let mut stages = 0;
        for result in &results {
            let item = (result.work_item_kind, result.work_item_id.clone());
            let root = roots
                .entry(item)
                .or_insert_with_key(|(kind, id)| self.lineage_root(*kind, id))
                .clone();
            stages += usize::from(self.count(result, root.as_deref()));
        }
        self.ledger.save(&self.ws.usage_ledger_path())?;
        self.events.emit(
            EventKind::UsageRebuilt,
            json!({"runs": runs, "stages": stages,
                   "action": "counted again from the runs' stage results; runs retention \
                              compressed or pruned are not counted"}),
        )?;
        Ok(())
    }

    /// Save the ledger as part of a transition: the snapshot write that follows, in the same
    /// folder, makes it durable (a power loss before it loses counts that the next start
    /// recovers from the persisted stage results).
    pub(crate) fn save_usage(&self) -> Result<()> {
        self.ledger.save_batched(&self.ws.usage_ledger_path())?;
        Ok(())
    }

    /// At startup: count what the active run persisted but a crash kept from the ledger.
    pub(crate) fn recover_usage(&mut self) -> Result<()> {
        let runs: Vec<(String, WorkItemKind, String)> = self
            .state
            .activations()
            .iter()
            .map(|a| {
                let (kind, id) = a.subject.identity();
                (a.run_id.clone(), kind, id.to_string())
            })
            .collect();
        for (run_id, kind, id) in runs {
            let before = self.ledger.workspace.stages;
            self.count_run_usage(&run_id, kind, &id)?;
            let recovered = self.ledger.workspace.stages - before;
            if recovered > 0 {
                self.save_usage()?;
                self.events.emit(
                    EventKind::UsageRecovered,
                    json!({"run_id": run_id, "stages": recovered,
                           "work_item_kind": kind, "work_item_id": id}),
                )?;
            }
        }
        Ok(())
    }

    /// A new activation of the item starts its per-item budget afresh: the entry left by the
    /// previous one goes (that one's end is already in the snapshot).
    pub(crate) fn forget_item_usage(&mut self, kind: WorkItemKind, id: &str) {
        self.ledger.forget_item(&item_key(kind, id));
    }

    /// Pause when a workspace budget is spent (until it frees up); end such a pause at once
    /// when it no longer is (the budget was raised by a reload, or the window moved on).
    pub(crate) fn enforce_workspace_budget(&mut self) -> Result<()> {
        let now = crate::time::now();
        let waived = self
            .state
            .budget_waived_until()
            .and_then(|t| crate::runners::result::stamp::parse(t).ok())
            .is_some_and(|until| now < until);
        let over = usage::workspace_over(&self.ledger, &self.config.usage, now).filter(|_| !waived);
        let budget_paused = self.state.paused_for() == Some(PauseCause::Budget);
        match over {
            Some(over) if !self.state.is_paused() => {
                let frees = crate::time::format(over.frees_at);
                let reason = format!(
                    "{} — millrace resumes by itself at {frees}, or raise usage.{} in millrace.yaml",
                    over.reason, over.budget
                );
                self.state
                    .pause_self(PauseCause::Budget, reason.clone(), Some(frees.clone()));
                self.save_snapshot()?;
                self.events.emit(
                    EventKind::UsageBudgetExhausted,
                    json!({"scope": over.budget, "reason": over.reason, "frees_at": frees}),
                )?;
                self.events.emit(
                    EventKind::RuntimePaused,
                    json!({"reason": reason, "failure_class": "budget_exhausted",
                           "resume_at": frees}),
                )?;
            }
            None if budget_paused => {
                let reason = self.state.unpause();
                self.save_snapshot()?;
                self.events.emit(
                    EventKind::RuntimeResumed,
                    json!({"reason": "the workspace budget has room again", "paused_for": reason}),
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Block the active item when it, its lineage or its last stage is over budget; true when
    /// it did (the caller claims the next item).
    pub(crate) fn enforce_item_budget(&mut self) -> Result<bool> {
        let Some((kind, id)) = self.active_item() else {
            return Ok(false);
        };
        let budgets = &self.config.usage;
        let spent = self.ledger.item(&item_key(kind, &id));
        let lineage = self.lineage_root(kind, &id);
        let over = spent
            .exceeds(&budgets.per_item)
            .map(|by| ("per_item", format!("{kind} {id} used {by}")))
            .or_else(|| {
                let root = lineage.as_deref()?;
                let by = self.ledger.lineage(root).exceeds(&budgets.per_lineage)?;
                Some(("per_lineage", format!("lineage {root} used {by}")))
            })
            .or_else(|| {
                let last = self.ledger.last_stage(&item_key(kind, &id))?;
                let by = last.exceeds(&budgets.per_stage)?;
                Some(("per_stage", format!("its last stage used {by}")))
            });
        let Some((scope, figures)) = over else {
            return Ok(false);
        };
        let why = format!("budget_exhausted: {figures} (usage.{scope})");
        self.events.emit(
            EventKind::UsageBudgetExhausted,
            json!({"scope": scope, "work_item_kind": kind, "work_item_id": id,
                   "reason": figures}),
        )?;
        self.block_for_budget(kind, &id, &why)?;
        Ok(true)
    }

    /// The runners a stage may use, in order: its runner, then its fallbacks.
    fn runner_chain(&self, stage: Stage) -> Vec<String> {
        let named = self
            .plan
            .stage_plan(stage)
            .and_then(|p| p.runner_name.as_deref());
        let primary = self.registry.resolve(named);
        let fallbacks = self
            .config
            .stage(stage)
            .fallback_runners
            .unwrap_or_else(|| self.config.runners.fallback_runners.clone());
        let mut chain = vec![primary.to_string()];
        chain.extend(fallbacks.into_iter().map(|r| r.trim().to_string()));
        let mut seen = std::collections::HashSet::new();
        chain.retain(|r| seen.insert(r.clone()));
        chain
    }

    /// The runner a request should use: the item's fallback when it is in the stage's chain.
    pub(crate) fn apply_runner_override(&self, req: &mut StageRequest) {
        let Some(wanted) = self.state.active().and_then(|a| a.runner_override.as_ref()) else {
            return;
        };
        if self.runner_chain(req.stage).contains(wanted) {
            req.runner_name = Some(wanted.clone());
        }
    }

    /// After an environment failure of `runner`: the next runner of the stage's chain, if the
    /// failure is one a fallback can help with (quota, auth, not installed).
    pub(crate) fn next_fallback(
        &self,
        req: &StageRequest,
        runner: &str,
        diagnosis: &Diagnosis,
    ) -> Option<String> {
        if !matches!(
            diagnosis.kind,
            FailureKind::RateLimited | FailureKind::Auth | FailureKind::NotInstalled
        ) {
            return None;
        }
        let chain = self.runner_chain(req.stage);
        let at = chain.iter().position(|r| r == runner)?;
        chain.get(at + 1).cloned()
    }

    /// How long to wait before retrying after a rate limit without a reset time.
    pub(crate) fn rate_limit_backoff(&self) -> std::time::Duration {
        let u = &self.config.usage;
        let factor = 2u64.saturating_pow(self.state.rate_limit_strikes().min(20));
        std::time::Duration::from_secs(
            u.rate_limit_backoff_seconds
                .saturating_mul(factor)
                .min(u.rate_limit_backoff_max_seconds),
        )
    }
}
