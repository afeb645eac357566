//! The runtime's fixed vocabulary: planes, stages, terminal results and work-item kinds.
//!
//! These names appear in documents, state files, loops and prompts, so their spellings are
//! part of the on-disk contract and must never change.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A plane groups the stages that work on one family of work items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    Execution,
    Planning,
}

impl Plane {
    /// Both planes.
    pub const ALL: [Plane; 2] = [Plane::Execution, Plane::Planning];

    /// The spelling in state files and loops.
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Execution => "execution",
            Plane::Planning => "planning",
        }
    }
}

/// One of the twelve stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Builder,
    Checker,
    Fixer,
    Doublechecker,
    Updater,
    Troubleshooter,
    Consultant,
    Planner,
    Manager,
    Mechanic,
    Auditor,
    Arbiter,
}

impl Stage {
    /// Canonical order: execution stages, then planning stages.
    pub const ALL: [Stage; 12] = [
        Stage::Builder,
        Stage::Checker,
        Stage::Fixer,
        Stage::Doublechecker,
        Stage::Updater,
        Stage::Troubleshooter,
        Stage::Consultant,
        Stage::Planner,
        Stage::Manager,
        Stage::Mechanic,
        Stage::Auditor,
        Stage::Arbiter,
    ];

    /// The spelling in loops, documents and prompts.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Builder => "builder",
            Stage::Checker => "checker",
            Stage::Fixer => "fixer",
            Stage::Doublechecker => "doublechecker",
            Stage::Updater => "updater",
            Stage::Troubleshooter => "troubleshooter",
            Stage::Consultant => "consultant",
            Stage::Planner => "planner",
            Stage::Manager => "manager",
            Stage::Mechanic => "mechanic",
            Stage::Auditor => "auditor",
            Stage::Arbiter => "arbiter",
        }
    }

    /// The plane whose loop the stage belongs to.
    pub fn plane(self) -> Plane {
        match self {
            Stage::Builder
            | Stage::Checker
            | Stage::Fixer
            | Stage::Doublechecker
            | Stage::Updater
            | Stage::Troubleshooter
            | Stage::Consultant => Plane::Execution,
            _ => Plane::Planning,
        }
    }

    /// Legal terminal results, in the order prompts list them (spec 05 §1.3).
    pub fn legal_results(self) -> &'static [TerminalResult] {
        use TerminalResult::*;
        match self {
            Stage::Builder => &[BuilderComplete, Blocked],
            Stage::Checker => &[CheckerPass, FixNeeded, Blocked],
            Stage::Fixer => &[FixerComplete, Blocked],
            Stage::Doublechecker => &[DoublecheckPass, FixNeeded, Blocked],
            Stage::Updater => &[UpdateComplete, Blocked],
            Stage::Troubleshooter => &[TroubleshootComplete, Blocked],
            Stage::Consultant => &[ConsultComplete, NeedsPlanning, Blocked],
            Stage::Planner => &[PlannerComplete, Blocked],
            Stage::Manager => &[ManagerComplete, Blocked],
            Stage::Mechanic => &[MechanicComplete, Blocked],
            Stage::Auditor => &[AuditorComplete, Blocked],
            Stage::Arbiter => &[ArbiterComplete, RemediationNeeded, Blocked],
        }
    }

    /// Whether `result` may end this stage.
    pub fn is_legal(self, result: TerminalResult) -> bool {
        self.legal_results().contains(&result)
    }

    /// The marker a plane's status file shows while this stage runs.
    pub fn running_marker(self) -> String {
        format!("### {}_RUNNING", self.as_str().to_ascii_uppercase())
    }

    /// The stages of one plane, in canonical order.
    pub fn stages_of(plane: Plane) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| s.plane() == plane)
    }
}

/// A stage's terminal answer. `BLOCKED` is shared by both planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TerminalResult {
    BuilderComplete,
    CheckerPass,
    FixNeeded,
    FixerComplete,
    DoublecheckPass,
    UpdateComplete,
    TroubleshootComplete,
    ConsultComplete,
    NeedsPlanning,
    Blocked,
    PlannerComplete,
    ManagerComplete,
    MechanicComplete,
    AuditorComplete,
    ArbiterComplete,
    RemediationNeeded,
}

impl TerminalResult {
    /// Every terminal result, execution plane first.
    pub const ALL: [TerminalResult; 16] = [
        TerminalResult::BuilderComplete,
        TerminalResult::CheckerPass,
        TerminalResult::FixNeeded,
        TerminalResult::FixerComplete,
        TerminalResult::DoublecheckPass,
        TerminalResult::UpdateComplete,
        TerminalResult::TroubleshootComplete,
        TerminalResult::ConsultComplete,
        TerminalResult::NeedsPlanning,
        TerminalResult::Blocked,
        TerminalResult::PlannerComplete,
        TerminalResult::ManagerComplete,
        TerminalResult::MechanicComplete,
        TerminalResult::AuditorComplete,
        TerminalResult::ArbiterComplete,
        TerminalResult::RemediationNeeded,
    ];

    /// The spelling in markers, documents and state files.
    pub fn as_str(self) -> &'static str {
        use TerminalResult::*;
        match self {
            BuilderComplete => "BUILDER_COMPLETE",
            CheckerPass => "CHECKER_PASS",
            FixNeeded => "FIX_NEEDED",
            FixerComplete => "FIXER_COMPLETE",
            DoublecheckPass => "DOUBLECHECK_PASS",
            UpdateComplete => "UPDATE_COMPLETE",
            TroubleshootComplete => "TROUBLESHOOT_COMPLETE",
            ConsultComplete => "CONSULT_COMPLETE",
            NeedsPlanning => "NEEDS_PLANNING",
            Blocked => "BLOCKED",
            PlannerComplete => "PLANNER_COMPLETE",
            ManagerComplete => "MANAGER_COMPLETE",
            MechanicComplete => "MECHANIC_COMPLETE",
            AuditorComplete => "AUDITOR_COMPLETE",
            ArbiterComplete => "ARBITER_COMPLETE",
            RemediationNeeded => "REMEDIATION_NEEDED",
        }
    }

    /// `### <RESULT>`: how the result appears in status files and harness output.
    pub fn marker(self) -> String {
        format!("### {}", self.as_str())
    }

    /// Result class per spec 05 §1.4 (`BLOCKED` maps to `blocked`).
    pub fn result_class(self) -> ResultClass {
        use TerminalResult::*;
        match self {
            FixNeeded | RemediationNeeded => ResultClass::FollowupNeeded,
            NeedsPlanning => ResultClass::EscalatePlanning,
            Blocked => ResultClass::Blocked,
            _ => ResultClass::Success,
        }
    }
}

/// How the router should read a terminal result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultClass {
    Success,
    FollowupNeeded,
    RecoverableFailure,
    EscalatePlanning,
    Blocked,
}

impl ResultClass {
    /// The spelling in stage results.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultClass::Success => "success",
            ResultClass::FollowupNeeded => "followup_needed",
            ResultClass::RecoverableFailure => "recoverable_failure",
            ResultClass::EscalatePlanning => "escalate_planning",
            ResultClass::Blocked => "blocked",
        }
    }
}

/// The three kinds of queued work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkItemKind {
    Task,
    Spec,
    Incident,
}

impl WorkItemKind {
    /// Every kind, in folder order.
    pub const ALL: [WorkItemKind; 3] = [
        WorkItemKind::Task,
        WorkItemKind::Spec,
        WorkItemKind::Incident,
    ];

    /// The spelling in state files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkItemKind::Task => "task",
            WorkItemKind::Spec => "spec",
            WorkItemKind::Incident => "incident",
        }
    }

    /// Tasks are execution work; specs and incidents are planning work.
    pub fn plane(self) -> Plane {
        match self {
            WorkItemKind::Task => Plane::Execution,
            _ => Plane::Planning,
        }
    }
}

macro_rules! display_from_str {
    ($ty:ty, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} `{}`", $what, s))
            }
        }
    };
}

display_from_str!(Plane, "plane");
display_from_str!(Stage, "stage");
display_from_str!(TerminalResult, "terminal result");
display_from_str!(WorkItemKind, "work item kind");

impl fmt::Display for ResultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Name of the built-in Codex CLI runner, also the last-resort default.
pub const CODEX_RUNNER: &str = "codex_cli";
/// Name of the argv-template runner.
pub const COMMAND_RUNNER: &str = "command";

/// Every runner name a daemon registers (the engine adds `scripted`); the config may name
/// no other, so a typo fails `config validate`, start and reload instead of every stage.
pub const RUNNER_NAMES: &[&str] = &[
    CODEX_RUNNER,
    COMMAND_RUNNER,
    "claude",
    "gemini",
    "aider",
    "scripted",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_round_trips_its_name_and_belongs_to_one_plane() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>().unwrap(), stage);
            assert!(stage.legal_results().contains(&TerminalResult::Blocked));
        }
        assert_eq!(Stage::stages_of(Plane::Execution).count(), 7);
        assert_eq!(Stage::stages_of(Plane::Planning).count(), 5);
    }

    #[test]
    fn running_marker_uses_upper_case_stage_name() {
        assert_eq!(
            Stage::Doublechecker.running_marker(),
            "### DOUBLECHECKER_RUNNING"
        );
    }
}
