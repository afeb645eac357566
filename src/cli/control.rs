//! `millrace control ...`, `planning retry-active` and their top-level aliases.
//!
//! The library's control client applies the action under the workspace lock when no daemon
//! runs, or hands it to the running daemon and waits (bounded) for its answer; this file
//! parses and renders.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{open_for_write, Ctx};
use crate::control::actions::{self, Action};
use crate::control::client::{Client, Reply};
use crate::error::{Error, ExitCode, Result};
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
    /// Requeue the active work item (it is claimed again from its entry stage).
    #[command(after_help = "Example:\n  millrace control retry-active --reason \"flaky network\"")]
    RetryActive(ReasonArgs),
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

#[derive(Debug, Args)]
pub struct SimpleArgs {
    /// Print the mailbox envelope an agent could write instead of applying it.
    #[arg(long)]
    pub print: bool,
    /// Seconds to wait for a running daemon to apply the command (0 = don't wait).
    #[arg(long, default_value_t = 10.0)]
    pub wait: f64,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// Why (recorded in the requeue log and the event log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the mailbox envelope an agent could write instead of applying it.
    #[arg(long)]
    pub print: bool,
    /// Seconds to wait for a running daemon to apply the command (0 = don't wait).
    #[arg(long, default_value_t = 10.0)]
    pub wait: f64,
}

#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// The blocked task, spec or incident.
    pub id: String,
    #[command(flatten)]
    pub rest: ReasonArgs,
}

#[derive(Serialize)]
struct Report {
    action: String,
    mode: &'static str,
    applied: bool,
    detail: String,
    mailbox_path: Option<String>,
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
                reason: reason(a.reason, actions::DEFAULT_RETRY_REASON),
                scope: None,
            },
            a.print,
            a.wait,
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
    };
    route(ctx, action, a.print, a.wait)
}

/// Submit through the one control client and render its reply.
fn route(ctx: &Ctx, action: Action, print: bool, wait: f64) -> Result<ExitCode> {
    if print {
        let mut env = action.to_envelope();
        env.issuer = Some("ops-agent".into());
        super::output::print_stdout(&env.to_yaml());
        return Ok(ExitCode::Ok);
    }
    let ws = open_for_write(ctx)?;
    let wait = Duration::from_secs_f64(wait.max(0.0));
    let reply = Client::new(&ws).submit(&action, wait)?;
    let applied = reply.applied();
    let (mode, detail, mailbox_path, how) = match reply {
        Reply::Direct(o) => {
            let how = if o.applied {
                "applied directly: no daemon owns the workspace"
            } else {
                "not applied"
            };
            ("direct", o.detail, None, how.to_string())
        }
        Reply::Daemon {
            outcome,
            mailbox_path,
        } => (
            "mailbox",
            outcome.detail,
            Some(mailbox_path),
            "applied by the running daemon".to_string(),
        ),
        Reply::Refused {
            error, error_path, ..
        } => {
            return Err(Error::refused(
                format!("{}: {error}", action.name()),
                Some(format!("see {error_path}")),
            ))
        }
        Reply::Queued {
            mailbox_path,
            running_stage,
        } => {
            let detail = match running_stage {
                Some(stage) => format!(
                    "queued: the daemon applies it when the running {stage} stage ends \
                     (`millrace status` lists pending commands)"
                ),
                None => "queued: the daemon applies it at its next look".into(),
            };
            let report = Report {
                action: action.name().to_string(),
                mode: "mailbox",
                applied: false,
                detail,
                mailbox_path: Some(mailbox_path.clone()),
            };
            ctx.emit(&report, || {
                format!("{}: {} ({mailbox_path})\n", report.action, report.detail)
            });
            return Ok(ExitCode::Ok);
        }
    };
    let report = Report {
        action: action.name().to_string(),
        mode,
        applied,
        detail,
        mailbox_path,
    };
    ctx.emit(&report, || {
        format!("{}: {} ({how})\n", report.action, report.detail)
    });
    Ok(if applied {
        ExitCode::Ok
    } else {
        ExitCode::NotApplied
    })
}
