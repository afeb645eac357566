//! `millrace control ...`, `planning retry-active` and their top-level aliases.
//!
//! The library's control client applies the action under the workspace lock when no daemon
//! runs, or hands it to the running daemon and waits (bounded) for its answer; this file
//! parses and renders.

use clap::Subcommand;

use super::submit::{route, ReasonArgs, RequeueArgs, RetryArgs, SimpleArgs};
use super::Ctx;
use crate::control::actions::{self, Action};
use crate::error::{ExitCode, Result};
use crate::model::Plane;

#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Pause: ticks stop claiming work; the mailbox and intake keep running.
    #[command(after_help = "Example:\n  millrace control pause")]
    Pause(SimpleArgs),
    /// Resume a paused runtime.
    #[command(after_help = "Example:\n  millrace control resume")]
    Resume(SimpleArgs),
    /// Stop the daemon at the next stage boundary (runtime.stop_mode: finish or interrupt).
    #[command(after_help = "Example:\n  millrace control stop")]
    Stop(SimpleArgs),
    /// Requeue the active work item (it is claimed again from its entry stage); with parallel
    /// lanes, `--id` names the task (its running stage is ended first).
    #[command(
        after_help = "Examples:\n  millrace control retry-active --reason \"flaky network\"\n  millrace control retry-active --id t-42 --reason \"wrong approach\""
    )]
    RetryActive(RetryArgs),
    /// Requeue every active item, clear recovery counters and reset the snapshot to idle.
    #[command(
        after_help = "Example:\n  millrace control clear-stale-state --reason \"after a crash\""
    )]
    ClearStaleState(ReasonArgs),
    /// Move a blocked item back to its queue, with fresh budgets.
    #[command(
        after_help = "Example:\n  millrace control requeue t-fetch-retry-01 --reason \"flaky test fixed\""
    )]
    Requeue(RequeueArgs),
    /// Ask the daemon to re-read millrace.yaml and recompile at the next tick boundary.
    #[command(after_help = "Example:\n  millrace control reload-config")]
    ReloadConfig(SimpleArgs),
}

#[derive(Debug, Subcommand)]
pub enum PlanningCommand {
    /// Requeue the active spec or incident.
    #[command(
        after_help = "Example:\n  millrace planning retry-active --reason \"spec was edited\""
    )]
    RetryActive(ReasonArgs),
}

fn reason(r: Option<String>, default: &str) -> String {
    r.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub fn run(ctx: &Ctx, cmd: ControlCommand) -> Result<ExitCode> {
    let (action, print, wait) = match cmd {
        ControlCommand::Pause(a) => (Action::Pause, a.print, a.wait),
        ControlCommand::Resume(a) => (Action::Resume, a.print, a.wait),
        ControlCommand::Stop(a) => (Action::Stop, a.print, a.wait),
        ControlCommand::ReloadConfig(a) => (Action::ReloadConfig, a.print, a.wait),
        ControlCommand::RetryActive(a) => (
            Action::RetryActive {
                reason: reason(a.rest.reason, actions::DEFAULT_RETRY_REASON),
                scope: None,
                id: a.id.filter(|id| !id.trim().is_empty()),
            },
            a.rest.print,
            a.rest.wait,
        ),
        ControlCommand::Requeue(a) => (
            Action::Requeue {
                id: a.id,
                reason: reason(a.rest.reason, actions::DEFAULT_REQUEUE_REASON),
            },
            a.rest.print,
            a.rest.wait,
        ),
        ControlCommand::ClearStaleState(a) => (
            Action::ClearStaleState {
                reason: reason(a.reason, actions::DEFAULT_CLEAR_REASON),
            },
            a.print,
            a.wait,
        ),
    };
    route(ctx, action, print, wait)
}

pub fn planning(ctx: &Ctx, cmd: PlanningCommand) -> Result<ExitCode> {
    let PlanningCommand::RetryActive(a) = cmd;
    let action = Action::RetryActive {
        reason: reason(a.reason, actions::DEFAULT_PLANNING_RETRY_REASON),
        scope: Some(Plane::Planning),
        id: None,
    };
    route(ctx, action, a.print, a.wait)
}
