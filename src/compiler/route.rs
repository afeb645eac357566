//! The routing table of a frozen plan and the pure routing function the engine calls.
//!
//! Each compiled edge is a *ladder*: budgeted stages tried in order, then an unconditional
//! `then` (a stage or a terminal result). A budgeted step is taken while its counter is below
//! its limit; the engine then increments that counter. A spent step falls through to the next.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::assets::{EdgeKind, Target};
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};

/// What ending an item with a terminal result means. Fixed by the result, not by the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consequence {
    /// `UPDATE_COMPLETE`, `MANAGER_COMPLETE`: the item is done.
    Complete,
    /// `ARBITER_COMPLETE`: the closure target is closed.
    CloseTarget,
    /// `NEEDS_PLANNING`: a handoff incident is queued and the item is blocked.
    Handoff,
    /// `REMEDIATION_NEEDED`: a remediation incident is queued for the closure target.
    Remediation,
    /// `BLOCKED`: the item is moved to `blocked/`.
    Block,
}

impl Consequence {
    /// The consequence of ending with `result`, or `None` for results that cannot end an item.
    pub fn of(result: TerminalResult) -> Option<Consequence> {
        use TerminalResult::*;
        match result {
            UpdateComplete | ManagerComplete => Some(Consequence::Complete),
            ArbiterComplete => Some(Consequence::CloseTarget),
            NeedsPlanning => Some(Consequence::Handoff),
            RemediationNeeded => Some(Consequence::Remediation),
            Blocked => Some(Consequence::Block),
            _ => None,
        }
    }

    /// The spelling used in plans, events and `compile show`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consequence::Complete => "complete",
            Consequence::CloseTarget => "close_target",
            Consequence::Handoff => "handoff",
            Consequence::Remediation => "remediation",
            Consequence::Block => "block",
        }
    }
}

impl fmt::Display for Consequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage reachable only while a per-item counter is below its limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetedStep {
    pub stage: Stage,
    /// Counter the engine increments when this step is taken (per work item).
    pub budget_key: String,
    pub limit: u32,
}

/// One `(source_stage, on_terminal_result)` row of the routing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompiledEdge {
    pub source_stage: Stage,
    pub on_terminal_result: TerminalResult,
    pub edge_kind: EdgeKind,
    /// Tried in order; empty for unbudgeted and terminal edges.
    pub budgeted: Vec<BudgetedStep>,
    /// Where the item goes when every budgeted step is spent (or there is none).
    pub then: Target,
}

impl CompiledEdge {
    /// `fixer while fix_cycle < 2, else BLOCKED (block)` for `compile show`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .budgeted
            .iter()
            .map(|s| format!("{} while {} < {}", s.stage, s.budget_key, s.limit))
            .collect();
        parts.push(match self.then {
            Target::Stage(stage) => stage.to_string(),
            Target::Terminal(result) => match Consequence::of(result) {
                Some(c) => format!("{result} ({c})"),
                None => result.to_string(),
            },
        });
        parts.join(", else ")
    }
}

/// The routing part of a frozen plan: entries per work-item kind and every edge of both loops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub entry_stages: BTreeMap<WorkItemKind, Stage>,
    pub edges: Vec<CompiledEdge>,
}

/// The router's answer for one stage result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Run `next`; when `budget_key` is set, increment that counter for the item.
    Stage {
        next: Stage,
        budget_key: Option<String>,
        reason: String,
    },
    /// The item (or closure target) ends with `result`.
    Terminal {
        result: TerminalResult,
        consequence: Consequence,
        reason: String,
    },
}

/// A stage result the plan cannot route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{result} is not a legal result of stage {stage}")]
    IllegalResult {
        stage: Stage,
        result: TerminalResult,
    },
    #[error("stage {stage} belongs to the {} plane, not {plane}", stage.plane())]
    WrongPlane { plane: Plane, stage: Stage },
    #[error("the compiled plan has no edge for {stage} {result}")]
    NoEdge {
        stage: Stage,
        result: TerminalResult,
    },
}

impl Routing {
    /// Route `result` of `stage`; `attempts` reads the item's counter for a budget key.
    pub fn route(
        &self,
        plane: Plane,
        stage: Stage,
        result: TerminalResult,
        attempts: impl Fn(&str) -> u32,
    ) -> Result<Route, RouteError> {
        if stage.plane() != plane {
            return Err(RouteError::WrongPlane { plane, stage });
        }
        if !stage.is_legal(result) {
            return Err(RouteError::IllegalResult { stage, result });
        }
        let edge = self
            .edges
            .iter()
            .find(|e| e.source_stage == stage && e.on_terminal_result == result)
            .ok_or(RouteError::NoEdge { stage, result })?;
        let mut reason = format!("{stage}:{result}");
        for step in &edge.budgeted {
            let used = attempts(&step.budget_key);
            if used < step.limit {
                return Ok(Route::Stage {
                    next: step.stage,
                    budget_key: Some(step.budget_key.clone()),
                    reason,
                });
            }
            reason.push_str(&format!(
                ";{}:budget_exhausted({used}/{})",
                step.budget_key, step.limit
            ));
        }
        Ok(match edge.then {
            Target::Stage(next) => Route::Stage {
                next,
                budget_key: None,
                reason,
            },
            Target::Terminal(result) => Route::Terminal {
                result,
                consequence: Consequence::of(result).unwrap_or(Consequence::Block),
                reason,
            },
        })
    }
}
