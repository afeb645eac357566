//! `millrace control ...`, `planning retry-active` and their top-level aliases.
//!
//! With a live daemon the action goes through the mailbox and the command waits (bounded)
//! for the daemon's answer; without one it is applied to the workspace directly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{open_for_write, Ctx};
use crate::control::actions::{self, Action, Mode, Outcome, Target};
use crate::control::{lock, mailbox};
use crate::error::{Error, ExitCode, Result};
use crate::model::Plane;
use crate::queue::QueueStore;
use crate::state::counters::Counters;
use crate::state::events::EventLog;
use crate::state::runtime::RuntimeState;
use crate::state::snapshot::Snapshot;
use crate::workspace::Workspace;

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

/// Apply directly, or deliver through the mailbox when a live daemon owns the workspace.
fn route(ctx: &Ctx, action: Action, print: bool, wait: f64) -> Result<ExitCode> {
    if print {
        let mut env = action.to_envelope();
        env.issuer = Some("ops-agent".into());
        super::output::print_stdout(&env.to_yaml());
        return Ok(ExitCode::Ok);
    }
    let ws = open_for_write(ctx)?;
    if lock::daemon_running(&ws) {
        return via_mailbox(ctx, &ws, &action, wait);
    }
    let outcome = apply_direct(&ws, &action)?;
    let report = Report {
        action: outcome.action.to_string(),
        mode: "direct",
        applied: outcome.applied,
        detail: outcome.detail.clone(),
        mailbox_path: None,
    };
    ctx.emit(&report, || {
        let how = if report.applied {
            "applied directly: no daemon owns the workspace"
        } else {
            "not applied"
        };
        format!("{}: {} ({how})\n", report.action, report.detail)
    });
    Ok(if report.applied {
        ExitCode::Ok
    } else {
        ExitCode::NotApplied
    })
}

/// Apply an action to a workspace no daemon owns.
pub fn apply_direct(ws: &Workspace, action: &Action) -> Result<Outcome> {
    let mut state = RuntimeState::load(&ws.snapshot_path())?;
    let mut counters = Counters::load(&ws.counters_path())?;
    let queue = QueueStore::new(ws);
    let events = EventLog::new(ws.events_path());
    let mut target = Target {
        ws,
        state: &mut state,
        counters: &mut counters,
        queue: &queue,
        events: &events,
    };
    let outcome = actions::apply(action, &mut target, Mode::Direct)?;
    events.emit(
        "control_applied",
        serde_json::json!({"action": outcome.action, "mode": "direct",
                           "applied": outcome.applied, "detail": outcome.detail}),
    )?;
    Ok(outcome)
}

fn archive_of(ws: &Workspace, delivered: &Path) -> (PathBuf, PathBuf) {
    let name = delivered
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        ws.mailbox_dir("processed")
            .join(format!("{name}.result.yaml")),
        ws.mailbox_dir("failed").join(format!("{name}.error.yaml")),
    )
}

fn via_mailbox(ctx: &Ctx, ws: &Workspace, action: &Action, wait: f64) -> Result<ExitCode> {
    let path = mailbox::deliver(ws, &action.to_envelope())?;
    let rel = ws.rel(&path);
    let (result_path, error_path) = archive_of(ws, &path);
    let deadline = Instant::now() + Duration::from_secs_f64(wait.max(0.0));
    if wait > 0.0 && !ctx.json {
        eprintln!(
            "waiting up to {wait}s for the daemon to apply {} ...",
            action.name()
        );
    }
    loop {
        if let Ok(text) = std::fs::read_to_string(&result_path) {
            let outcome: serde_json::Value =
                crate::yaml::from_str(&result_path, &text).unwrap_or_default();
            let applied = outcome
                .get("applied")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let detail = outcome
                .get("detail")
                .and_then(|v| v.as_str())
                .unwrap_or("applied")
                .to_string();
            let report = Report {
                action: action.name().to_string(),
                mode: "mailbox",
                applied,
                detail,
                mailbox_path: Some(rel.clone()),
            };
            ctx.emit(&report, || {
                format!(
                    "{}: {} (applied by the running daemon)\n",
                    report.action, report.detail
                )
            });
            return Ok(if applied {
                ExitCode::Ok
            } else {
                ExitCode::NotApplied
            });
        }
        if let Ok(text) = std::fs::read_to_string(&error_path) {
            let value: serde_json::Value =
                crate::yaml::from_str(&error_path, &text).unwrap_or_default();
            let error = value
                .get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("the daemon refused the command")
                .to_string();
            return Err(Error::refused(
                format!("{}: {error}", action.name()),
                Some(format!("see {}", ws.rel(&error_path))),
            ));
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let detail = match Snapshot::load(&ws.snapshot_path())
        .ok()
        .and_then(|s| s.active_stage)
    {
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
        mailbox_path: Some(rel),
    };
    ctx.emit(&report, || {
        format!(
            "{}: {} ({})\n",
            report.action,
            report.detail,
            report.mailbox_path.clone().unwrap_or_default()
        )
    });
    Ok(ExitCode::Ok)
}
