//! `state/runtime_snapshot.yaml`: what the runtime is doing right now.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{load_yaml, StateError};
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};

/// The marker of a plane with nothing running, as the snapshot stores it.
pub const IDLE_MARKER: &str = "### IDLE";

/// How the daemon learns about new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatcherMode {
    Watch,
    Poll,
    Off,
}

/// Why the runtime paused itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// The harness is missing, not logged in or refused millrace's command line.
    Harness,
    /// The provider's rate limit or quota; `resume_at` says when to try again.
    RateLimit,
    /// A workspace budget (window or daily) is spent; `resume_at` is when it frees up.
    Budget,
    /// A folder or file millrace writes is a symbolic link; `resume` once it is replaced.
    Workspace,
}

/// The result of the last config reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    Applied,
    FailedRetainedPreviousPlan,
}

/// One execution lane's task in the snapshot: what it runs, where, and how far its
/// integration got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSnapshot {
    pub lane: u32,
    pub work_item_id: String,
    pub stage: Stage,
    pub run_id: String,
    pub since: String,
    /// The task's git worktree, relative to the workspace root.
    pub worktree: String,
    pub branch: String,
    /// The task's loop finished and its branch is being (or waits to be) integrated.
    #[serde(default)]
    pub integrating: bool,
    /// Why integration waits (the main working tree has changes), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_wait: Option<String>,
    /// The commit the base branch is being moved to (set just before it moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<String>,
}

/// The runtime snapshot (spec 03 §7), field order fixed for stable diffs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: String,
    pub kind: String,
    pub runtime_mode: crate::config::RunStyle,
    pub process_running: bool,
    pub paused: bool,
    #[serde(default)]
    pub stop_requested: bool,
    /// Why the runtime paused itself (a harness's environment failure) and what fixes it;
    /// `None` for an operator's `pause`.
    #[serde(default)]
    pub pause_reason: Option<String>,
    /// When a self-pause ends on its own (a provider's reset time, a budget window), RFC 3339.
    #[serde(default)]
    pub resume_at: Option<String>,
    /// What the runtime paused itself for; `None` for an operator's `pause`.
    #[serde(default)]
    pub paused_for: Option<PauseCause>,
    /// An operator's `resume` of a budget pause: the spent budget is not enforced again until
    /// this time (when it would have freed up anyway), RFC 3339.
    #[serde(default)]
    pub budget_waived_until: Option<String>,
    /// Rate-limited attempts in a row without a reset time: the back-off doubles with each.
    #[serde(default)]
    pub rate_limit_strikes: u32,
    /// The fallback runner the active item switched to after its runner's environment failed.
    #[serde(default)]
    pub runner_override: Option<String>,
    pub active_mode_id: String,
    pub execution_loop_id: String,
    pub planning_loop_id: String,
    pub compiled_plan_id: String,
    pub compiled_plan_path: String,
    #[serde(default)]
    pub active_plane: Option<Plane>,
    #[serde(default)]
    pub active_stage: Option<Stage>,
    #[serde(default)]
    pub active_run_id: Option<String>,
    #[serde(default)]
    pub active_work_item_kind: Option<WorkItemKind>,
    #[serde(default)]
    pub active_work_item_id: Option<String>,
    /// Root spec of the closure target the arbiter is judging (arbiter activations only).
    #[serde(default)]
    pub active_closure_target: Option<String>,
    pub execution_status_marker: String,
    pub planning_status_marker: String,
    #[serde(default)]
    pub queue_depth_execution: u64,
    #[serde(default)]
    pub queue_depth_planning: u64,
    #[serde(default)]
    pub last_terminal_result: Option<TerminalResult>,
    #[serde(default)]
    pub last_stage_result_path: Option<String>,
    #[serde(default)]
    pub current_failure_class: Option<String>,
    #[serde(default)]
    pub troubleshoot_attempt_count: u32,
    #[serde(default)]
    pub mechanic_attempt_count: u32,
    #[serde(default)]
    pub fix_cycle_count: u32,
    #[serde(default)]
    pub consultant_invocations: u32,
    pub config_version: String,
    pub watcher_mode: WatcherMode,
    #[serde(default)]
    pub last_reload_outcome: Option<ReloadOutcome>,
    #[serde(default)]
    pub last_reload_error: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub active_since: Option<String>,
    /// The execution lanes' tasks when `execution.lanes` > 1 (the fields above then hold
    /// the planning plane's activation); absent with one lane.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lanes: Vec<LaneSnapshot>,
    pub updated_at: String,
    /// Fields a newer millrace added: kept and written back.
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

impl Snapshot {
    /// The snapshot bootstrap writes (spec 01 §3.7).
    pub fn bootstrap() -> Snapshot {
        Snapshot {
            schema_version: "1.0".into(),
            kind: "runtime_snapshot".into(),
            runtime_mode: crate::config::RunStyle::Daemon,
            process_running: false,
            paused: false,
            stop_requested: false,
            pause_reason: None,
            resume_at: None,
            paused_for: None,
            budget_waived_until: None,
            rate_limit_strikes: 0,
            runner_override: None,
            active_mode_id: "standard_plain".into(),
            execution_loop_id: "execution.standard".into(),
            planning_loop_id: "planning.standard".into(),
            compiled_plan_id: "bootstrap".into(),
            compiled_plan_path: "millrace-agents/state/compiled_plan.yaml".into(),
            active_plane: None,
            active_stage: None,
            active_run_id: None,
            active_work_item_kind: None,
            active_work_item_id: None,
            active_closure_target: None,
            execution_status_marker: IDLE_MARKER.into(),
            planning_status_marker: IDLE_MARKER.into(),
            queue_depth_execution: 0,
            queue_depth_planning: 0,
            last_terminal_result: None,
            last_stage_result_path: None,
            current_failure_class: None,
            troubleshoot_attempt_count: 0,
            mechanic_attempt_count: 0,
            fix_cycle_count: 0,
            consultant_invocations: 0,
            config_version: "bootstrap".into(),
            watcher_mode: WatcherMode::Off,
            last_reload_outcome: None,
            last_reload_error: None,
            started_at: None,
            active_since: None,
            lanes: Vec::new(),
            updated_at: crate::time::now_string(),
            unknown: super::Unknown::new(),
        }
    }

    /// The file's YAML text.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self)
    }

    /// Invariants of spec 03 §7.2.
    pub fn validate(&self) -> Result<(), String> {
        if !self.schema_version.starts_with("1.") || self.kind != "runtime_snapshot" {
            return Err("schema_version must be 1.x and kind runtime_snapshot".into());
        }
        if self.active_plane.is_some() != self.active_stage.is_some() {
            return Err("active_plane and active_stage must be set together".into());
        }
        if let (Some(plane), Some(stage)) = (self.active_plane, self.active_stage) {
            if stage.plane() != plane {
                return Err(format!(
                    "active_stage {stage} does not belong to plane {plane}"
                ));
            }
        }
        if self.active_work_item_kind.is_some() != self.active_work_item_id.is_some() {
            return Err(
                "active_work_item_kind and active_work_item_id must be set together".into(),
            );
        }
        if self.active_work_item_id.is_some()
            && (self.active_stage.is_none() || self.active_run_id.is_none())
        {
            return Err("an active work item needs active_stage and active_run_id".into());
        }
        if self.active_since.is_some() && self.active_stage.is_none() {
            return Err("active_since needs active_stage".into());
        }
        let mut seen = std::collections::HashSet::new();
        for lane in &self.lanes {
            if lane.stage.plane() != Plane::Execution {
                return Err(format!(
                    "lane {} runs {}, which is not an execution stage",
                    lane.lane, lane.stage
                ));
            }
            if !seen.insert(lane.work_item_id.as_str())
                || self.active_work_item_id.as_deref() == Some(lane.work_item_id.as_str())
            {
                return Err(format!("task {} is active twice", lane.work_item_id));
            }
        }
        Ok(())
    }

    /// Read and check the snapshot.
    pub fn load(path: &Path) -> Result<Snapshot, StateError> {
        let snapshot: Snapshot = load_yaml(path)?;
        super::check_schema(
            path,
            &snapshot.schema_version,
            &snapshot.kind,
            "runtime_snapshot",
        )?;
        snapshot.validate().map_err(|message| StateError::Invalid {
            file: path.display().to_string(),
            message,
        })?;
        Ok(snapshot)
    }

    /// Save if changed, durably; `updated_at` is only bumped when something else changed.
    pub fn save(&mut self, path: &Path) -> Result<bool, StateError> {
        self.save_with(path, crate::workspace::atomic::Durability::Full)
    }

    /// [`Snapshot::save`] as durable as `durability` says.
    pub fn save_with(
        &mut self,
        path: &Path,
        durability: crate::workspace::atomic::Durability,
    ) -> Result<bool, StateError> {
        self.validate().map_err(|message| StateError::Invalid {
            file: path.display().to_string(),
            message,
        })?;
        if let Ok(existing) = load_yaml::<Snapshot>(path) {
            let mut probe = existing.clone();
            probe.updated_at = self.updated_at.clone();
            if probe == *self {
                return Ok(false);
            }
        }
        self.updated_at = crate::time::now_string();
        super::save_yaml_with(path, self, durability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_snapshot_round_trips_and_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime_snapshot.yaml");
        let mut snap = Snapshot::bootstrap();
        assert!(snap.save(&path).unwrap());
        let loaded = Snapshot::load(&path).unwrap();
        assert_eq!(loaded, snap);
        let mut again = loaded.clone();
        assert!(!again.save(&path).unwrap(), "unchanged snapshot rewritten");
    }

    #[test]
    fn the_bootstrap_templates_a_new_workspace_gets_are_the_bootstrap_state() {
        let snap = Snapshot::bootstrap();
        let template =
            crate::workspace::SNAPSHOT_TEMPLATE.replace("{updated_at}", &snap.updated_at);
        assert_eq!(template, snap.to_yaml());
        assert_eq!(
            crate::workspace::COUNTERS_TEMPLATE,
            crate::state::counters::Counters::default().to_yaml()
        );
    }

    #[test]
    fn invariants_are_enforced() {
        let mut snap = Snapshot::bootstrap();
        snap.active_plane = Some(Plane::Planning);
        snap.active_stage = Some(Stage::Builder);
        assert!(snap.validate().is_err());
    }
}
