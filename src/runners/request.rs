//! `StageRequest`: everything a runner needs to run one stage (spec 08 §2).
//!
//! The runtime builds one request per stage run; runners never read other state. Field order
//! is the spec's, so the YAML artifacts read the same as the reference's JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{Plane, Stage, WorkItemKind};

/// Whether a request works on a queued item or on a closure target (the arbiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    #[default]
    ActiveWorkItem,
    ClosureTarget,
}

impl RequestKind {
    /// The spelling in requests, prompts and results.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::ActiveWorkItem => "active_work_item",
            RequestKind::ClosureTarget => "closure_target",
        }
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage run, as handed to a runner. Unknown fields are rejected on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRequest {
    pub request_id: String,
    pub run_id: String,
    pub plane: Plane,
    pub stage: Stage,
    #[serde(default)]
    pub request_kind: RequestKind,
    pub mode_id: String,
    pub compiled_plan_id: String,
    pub entrypoint_path: PathBuf,
    #[serde(default)]
    pub entrypoint_contract_id: Option<String>,
    #[serde(default)]
    pub required_skill_paths: Vec<PathBuf>,
    #[serde(default)]
    pub attached_skill_paths: Vec<PathBuf>,
    #[serde(default)]
    pub active_work_item_kind: Option<WorkItemKind>,
    #[serde(default)]
    pub active_work_item_id: Option<String>,
    #[serde(default)]
    pub active_work_item_path: Option<PathBuf>,
    #[serde(default)]
    pub closure_target_path: Option<PathBuf>,
    #[serde(default)]
    pub closure_target_root_spec_id: Option<String>,
    #[serde(default)]
    pub closure_target_root_idea_id: Option<String>,
    #[serde(default)]
    pub canonical_root_spec_path: Option<PathBuf>,
    #[serde(default)]
    pub canonical_seed_idea_path: Option<PathBuf>,
    #[serde(default)]
    pub preferred_rubric_path: Option<PathBuf>,
    #[serde(default)]
    pub preferred_verdict_path: Option<PathBuf>,
    #[serde(default)]
    pub preferred_report_path: Option<PathBuf>,
    pub run_dir: PathBuf,
    pub summary_status_path: PathBuf,
    pub runtime_snapshot_path: PathBuf,
    pub recovery_counters_path: PathBuf,
    #[serde(default)]
    pub preferred_troubleshoot_report_path: Option<PathBuf>,
    #[serde(default)]
    pub runtime_error_code: Option<String>,
    #[serde(default)]
    pub runtime_error_report_path: Option<PathBuf>,
    #[serde(default)]
    pub runtime_error_catalog_path: Option<PathBuf>,
    #[serde(default)]
    pub runner_name: Option<String>,
    #[serde(default)]
    pub model_name: Option<String>,
    /// Wall-clock limit; 0 means the 3600 s fallback.
    #[serde(default)]
    pub timeout_seconds: u64,
    /// Seconds without harness output before the stage is killed (our addition): `None` takes
    /// `runners.idle_timeout_seconds`, `Some(0)` turns the idle limit off.
    #[serde(default)]
    pub idle_timeout_seconds: Option<u64>,
    /// With parallel lanes: the task's git worktree, where the harness runs (our addition;
    /// absent with one lane, when it runs in the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<PathBuf>,
    /// The worktree's branch, `millrace/<task-id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_branch: Option<String>,
}

impl StageRequest {
    /// Where the harness runs: the lane's worktree, else the workspace root.
    pub fn cwd<'a>(&'a self, workspace_root: &'a std::path::Path) -> &'a std::path::Path {
        self.working_directory.as_deref().unwrap_or(workspace_root)
    }
}

/// Wall-clock limit used when a request says 0.
pub const FALLBACK_TIMEOUT_SECONDS: u64 = 3600;

/// A request that breaks one of the spec 08 §2 rules; messages are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("stage must belong to plane")]
    StagePlaneMismatch,
    #[error("active_work_item_kind and active_work_item_id must be set together")]
    KindWithoutId,
    #[error("active_work_item requests cannot declare closure target fields")]
    WorkItemWithClosureFields,
    #[error("closure_target requests cannot declare active work item fields")]
    ClosureWithWorkItemFields,
    #[error("closure_target requests require closure target fields")]
    ClosureFieldsMissing,
}

impl StageRequest {
    /// Check the cross-field rules the types cannot express. (`timeout_seconds >= 0` holds by
    /// type.)
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.stage.plane() != self.plane {
            return Err(RequestError::StagePlaneMismatch);
        }
        if self.active_work_item_kind.is_some() != self.active_work_item_id.is_some() {
            return Err(RequestError::KindWithoutId);
        }
        let closure_set = self.closure_fields_set();
        match self.request_kind {
            RequestKind::ActiveWorkItem => {
                if closure_set > 0 {
                    return Err(RequestError::WorkItemWithClosureFields);
                }
            }
            RequestKind::ClosureTarget => {
                if self.active_work_item_kind.is_some()
                    || self.active_work_item_id.is_some()
                    || self.active_work_item_path.is_some()
                {
                    return Err(RequestError::ClosureWithWorkItemFields);
                }
                if !self.required_closure_fields_set() {
                    return Err(RequestError::ClosureFieldsMissing);
                }
            }
        }
        Ok(())
    }

    /// Whether the closure fields a target always has are set. The seed idea (and its id)
    /// may be absent: a spec added by hand roots its own lineage without an idea.
    fn required_closure_fields_set(&self) -> bool {
        self.closure_target_path.is_some()
            && self.closure_target_root_spec_id.is_some()
            && self.canonical_root_spec_path.is_some()
            && self.preferred_rubric_path.is_some()
            && self.preferred_verdict_path.is_some()
            && self.preferred_report_path.is_some()
    }

    /// How many of the eight closure fields are set.
    fn closure_fields_set(&self) -> usize {
        [
            self.closure_target_path.is_some(),
            self.closure_target_root_spec_id.is_some(),
            self.closure_target_root_idea_id.is_some(),
            self.canonical_root_spec_path.is_some(),
            self.canonical_seed_idea_path.is_some(),
            self.preferred_rubric_path.is_some(),
            self.preferred_verdict_path.is_some(),
            self.preferred_report_path.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }

    /// The wall-clock limit actually enforced, in seconds (never below 1).
    pub fn effective_timeout_seconds(&self) -> u64 {
        if self.timeout_seconds == 0 {
            FALLBACK_TIMEOUT_SECONDS
        } else {
            self.timeout_seconds
        }
    }

    /// The idle limit in seconds, `default` standing in for an unset request value; 0 = off.
    pub fn effective_idle_timeout_seconds(&self, default: u64) -> u64 {
        self.idle_timeout_seconds.unwrap_or(default)
    }

    /// The model, if the request names a non-blank one.
    pub fn model(&self) -> Option<&str> {
        self.model_name
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;

    /// A valid work-item request rooted at `run_dir` (`<ws>/millrace-agents/runs/<run>`).
    pub(crate) fn sample(stage: Stage, run_dir: &Path) -> StageRequest {
        let ma = run_dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(run_dir)
            .to_path_buf();
        let plane = stage.plane();
        StageRequest {
            request_id: "request-0123456789abcdef0123456789abcdef".into(),
            run_id: "run-fedcba9876543210fedcba9876543210".into(),
            plane,
            stage,
            request_kind: RequestKind::ActiveWorkItem,
            mode_id: "standard_plain".into(),
            compiled_plan_id: "plan-1".into(),
            entrypoint_path: ma.join(format!("entrypoints/{plane}/{stage}.md")),
            entrypoint_contract_id: Some(format!("{stage}.contract.v1")),
            required_skill_paths: vec![
                ma.join(format!("skills/stage/{plane}/{stage}-core/SKILL.md"))
            ],
            attached_skill_paths: Vec::new(),
            active_work_item_kind: Some(WorkItemKind::Task),
            active_work_item_id: Some("task-1".into()),
            active_work_item_path: Some(ma.join("tasks/active/task-1.md")),
            closure_target_path: None,
            closure_target_root_spec_id: None,
            closure_target_root_idea_id: None,
            canonical_root_spec_path: None,
            canonical_seed_idea_path: None,
            preferred_rubric_path: None,
            preferred_verdict_path: None,
            preferred_report_path: None,
            run_dir: run_dir.to_path_buf(),
            summary_status_path: ma.join(format!("state/{plane}_status.md")),
            runtime_snapshot_path: ma.join("state/runtime_snapshot.yaml"),
            recovery_counters_path: ma.join("state/recovery_counters.yaml"),
            preferred_troubleshoot_report_path: Some(run_dir.join("troubleshoot_report.md")),
            runtime_error_code: None,
            runtime_error_report_path: None,
            runtime_error_catalog_path: None,
            runner_name: None,
            model_name: None,
            timeout_seconds: 3600,
            idle_timeout_seconds: None,
            working_directory: None,
            working_branch: None,
        }
    }

    #[test]
    fn validation_rules_and_messages() {
        let base = sample(Stage::Checker, Path::new("/ws/millrace-agents/runs/r"));
        assert_eq!(base.validate(), Ok(()));

        let mut r = base.clone();
        r.plane = Plane::Planning;
        assert_eq!(
            r.validate().unwrap_err().to_string(),
            "stage must belong to plane"
        );

        let mut r = base.clone();
        r.active_work_item_id = None;
        assert_eq!(r.validate(), Err(RequestError::KindWithoutId));

        let mut r = base.clone();
        r.closure_target_root_spec_id = Some("spec-1".into());
        assert_eq!(r.validate(), Err(RequestError::WorkItemWithClosureFields));

        let mut r = base.clone();
        r.request_kind = RequestKind::ClosureTarget;
        assert_eq!(r.validate(), Err(RequestError::ClosureWithWorkItemFields));
        r.active_work_item_kind = None;
        r.active_work_item_id = None;
        r.active_work_item_path = None;
        assert_eq!(r.validate(), Err(RequestError::ClosureFieldsMissing));
    }

    #[test]
    fn yaml_round_trip_rejects_unknown_fields() {
        let req = sample(Stage::Builder, Path::new("/ws/millrace-agents/runs/r"));
        let text = crate::yaml::to_string(&req);
        assert!(text.starts_with("request_id:"), "{text}");
        let back: StageRequest = crate::yaml::from_str(Path::new("req.yaml"), &text).unwrap();
        assert_eq!(back, req);
        let bad = format!("{text}surprise: 1\n");
        assert!(crate::yaml::from_str::<StageRequest>(Path::new("req.yaml"), &bad).is_err());
    }

    #[test]
    fn zero_timeout_falls_back_to_an_hour() {
        let mut req = sample(Stage::Builder, Path::new("/ws/millrace-agents/runs/r"));
        req.timeout_seconds = 0;
        assert_eq!(req.effective_timeout_seconds(), 3600);
        assert_eq!(req.effective_idle_timeout_seconds(900), 900);
        req.idle_timeout_seconds = Some(0);
        assert_eq!(req.effective_idle_timeout_seconds(900), 0);
    }
}
