//! Submitting a control command through the library's client and rendering the reply:
//! shared by `control …`, its top-level aliases and `config reload`.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{open_for_control, Ctx};
use crate::control::actions::Action;
use crate::control::client::{Client, Reply};
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Args)]
pub struct SimpleArgs {
    /// Print the mailbox envelope an agent could write instead of applying it.
    #[arg(long)]
    pub print: bool,
    /// Seconds to wait for a running daemon to apply the command (0 = don't wait).
    #[arg(long, default_value_t = 10.0, value_parser = super::seconds)]
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
    #[arg(long, default_value_t = 10.0, value_parser = super::seconds)]
    pub wait: f64,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The active task to retry, when several run in parallel lanes.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub rest: ReasonArgs,
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

/// Submit through the one control client and render its reply.
pub fn route(ctx: &Ctx, action: Action, print: bool, wait: f64) -> Result<ExitCode> {
    if print {
        let mut env = action.to_envelope();
        env.issuer = Some("ops-agent".into());
        // The envelope is a mailbox file, so YAML; under --json the same fields as JSON.
        ctx.emit(&env, || env.to_yaml());
        return Ok(ExitCode::Ok);
    }
    let ws = open_for_control(ctx)?;
    let wait = Duration::from_secs_f64(wait);
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
