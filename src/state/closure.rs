//! `arbiter/targets/<root_spec_id>.yaml`: the closure target of each root spec, as the
//! engine persists it and `status`, `doctor` and the arbiter's request read it. The rules of
//! opening, judging and holding a target are the engine's (`engine/closure.rs`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{load_yaml, save_yaml, StateError};
use crate::workspace::Workspace;

/// `arbiter/targets/<root_spec_id>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosureTarget {
    pub schema_version: String,
    pub kind: String,
    pub root_spec_id: String,
    pub root_idea_id: Option<String>,
    pub root_spec_path: String,
    pub root_idea_path: Option<String>,
    pub rubric_path: String,
    #[serde(default)]
    pub latest_verdict_path: Option<String>,
    #[serde(default)]
    pub latest_report_path: Option<String>,
    pub closure_open: bool,
    #[serde(default)]
    pub closure_blocked_by_lineage_work: bool,
    #[serde(default)]
    pub blocking_work_ids: Vec<String>,
    pub opened_at: String,
    #[serde(default)]
    pub closed_at: Option<String>,
    #[serde(default)]
    pub last_arbiter_run_id: Option<String>,
    /// Arbiter runs for this target; bounded by `recovery.max_arbiter_attempts`.
    #[serde(default)]
    pub arbiter_runs: u32,
    /// Set when the arbiter bound was reached; the target waits for an operator.
    #[serde(default)]
    pub closure_held: Option<String>,
    /// The latest arbiter outcome (`ARBITER_COMPLETE`, `REMEDIATION_NEEDED`, `BLOCKED`).
    #[serde(default)]
    pub latest_outcome: Option<String>,
    /// Fields a newer millrace added: kept and written back.
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

impl ClosureTarget {
    /// Read and validate a target file.
    pub fn load(path: &Path) -> Result<ClosureTarget, StateError> {
        let target: ClosureTarget = load_yaml(path)?;
        super::check_schema(
            path,
            &target.schema_version,
            &target.kind,
            "closure_target_state",
        )?;
        Ok(target)
    }

    /// Save if changed (atomic; idle ticks write nothing).
    pub fn save(&self, ws: &Workspace) -> Result<bool, StateError> {
        save_yaml(&ws.closure_target_path(&self.root_spec_id), self)
    }
}

/// Every target in `arbiter/targets/`, sorted by root spec id; unreadable files are skipped
/// and reported (they never stop the daemon).
pub fn list(ws: &Workspace) -> (Vec<ClosureTarget>, Vec<String>) {
    list_except(ws, &HashSet::new())
}

/// Like [`list`], skipping the root spec ids in `skip` without reading their files (the
/// daemon skips targets it already saw closed, so idle ticks do not grow with history).
pub fn list_except(ws: &Workspace, skip: &HashSet<String>) -> (Vec<ClosureTarget>, Vec<String>) {
    let dir = ws.closure_targets_dir();
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    let Ok(read) = std::fs::read_dir(&dir) else {
        return (targets, problems);
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            p.file_stem()
                .map(|s| !skip.contains(s.to_string_lossy().as_ref()))
                .unwrap_or(true)
        })
        .collect();
    paths.sort();
    for path in paths {
        match ClosureTarget::load(&path) {
            Ok(t) => targets.push(t),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (targets, problems)
}
