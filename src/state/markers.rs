//! Plane status markers: `state/execution_status.md` and `state/planning_status.md`.
//!
//! One line, e.g. `### BUILDER_RUNNING`. Stages read them; only the runtime writes them.

use std::path::Path;

use crate::model::{Plane, Stage, TerminalResult};
use crate::workspace::atomic::{self, IoError};

/// The marker of a plane with nothing running.
pub const IDLE: &str = "### IDLE";
/// What an unreadable, empty or multi-line marker file reads as during reconciliation.
pub const INVALID: &str = "### INVALID_STATUS_MARKER";

/// Every marker allowed on a plane (spec 03 §9).
pub fn allowed(plane: Plane) -> Vec<String> {
    let mut out = vec![IDLE.to_string()];
    out.extend(Stage::stages_of(plane).map(|s| s.running_marker()));
    for result in TerminalResult::ALL {
        if Stage::stages_of(plane).any(|s| s.is_legal(result)) {
            let marker = result.marker();
            if !out.contains(&marker) {
                out.push(marker);
            }
        }
    }
    out
}

/// Strict normalization used on write and by `doctor`.
pub fn normalize(plane: Plane, text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{plane} status marker cannot be empty"));
    }
    if trimmed.lines().count() > 1 {
        return Err(format!("{plane} status marker must be a single line"));
    }
    if !allowed(plane).iter().any(|m| m == trimmed) {
        return Err(format!("Unknown {plane} status marker: {trimmed}"));
    }
    Ok(trimmed.to_string())
}

/// Lenient read for reconciliation: anything odd becomes [`INVALID`].
pub fn read_lenient(path: &Path) -> String {
    match atomic::read_regular_string(path) {
        Ok(text) => {
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.lines().count() > 1 {
                INVALID.to_string()
            } else {
                trimmed.to_string()
            }
        }
        Err(_) => INVALID.to_string(),
    }
}

/// Write a marker (validated for the plane), skipping the write when unchanged. Markers are
/// written [`atomic::Durability::Relaxed`]: they mirror the snapshot, and every start
/// rewrites them from it.
pub fn write(path: &Path, plane: Plane, marker: &str) -> Result<(), IoError> {
    let marker = normalize(plane, marker).map_err(|msg| {
        IoError::path(
            "write status marker",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, msg),
        )
    })?;
    let contents = format!("{marker}\n");
    if atomic::read_regular_string(path).ok().as_deref() == Some(contents.as_str()) {
        return Ok(());
    }
    atomic::write_atomic_with(path, contents.as_bytes(), atomic::Durability::Relaxed)
}

/// Whether `marker` is possible while `stage` is active (spec 03 §12.2.1).
pub fn possible_for(stage: Stage, marker: &str) -> bool {
    use TerminalResult::*;
    if marker == IDLE || marker == stage.running_marker() {
        return true;
    }
    if stage.legal_results().iter().any(|r| r.marker() == marker) {
        return true;
    }
    let inbound: Vec<TerminalResult> = match stage {
        Stage::Builder => vec![TroubleshootComplete, ConsultComplete],
        Stage::Checker => vec![BuilderComplete, TroubleshootComplete, ConsultComplete],
        Stage::Fixer => vec![FixNeeded, TroubleshootComplete, ConsultComplete],
        Stage::Doublechecker => vec![FixerComplete, TroubleshootComplete, ConsultComplete],
        Stage::Updater => vec![
            CheckerPass,
            DoublecheckPass,
            TroubleshootComplete,
            ConsultComplete,
        ],
        Stage::Troubleshooter | Stage::Consultant | Stage::Mechanic => {
            return allowed(stage.plane()).iter().any(|m| m == marker);
        }
        Stage::Planner => vec![AuditorComplete, MechanicComplete],
        Stage::Manager => vec![PlannerComplete],
        Stage::Auditor | Stage::Arbiter => vec![],
    };
    inbound.iter().any(|r| r.marker() == marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_sets_have_the_spec_sizes() {
        assert_eq!(allowed(Plane::Execution).len(), 1 + 7 + 10);
        assert_eq!(allowed(Plane::Planning).len(), 1 + 5 + 7);
    }

    #[test]
    fn normalize_rejects_foreign_markers() {
        assert!(normalize(Plane::Execution, "### PLANNER_COMPLETE").is_err());
        assert_eq!(
            normalize(Plane::Planning, " ### PLANNER_COMPLETE \n").unwrap(),
            "### PLANNER_COMPLETE"
        );
        assert!(normalize(Plane::Planning, "").is_err());
    }

    #[test]
    fn inbound_markers_are_possible() {
        assert!(possible_for(Stage::Checker, "### BUILDER_COMPLETE"));
        assert!(!possible_for(Stage::Builder, "### CHECKER_PASS"));
    }
}
