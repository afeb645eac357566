//! `millrace run once|daemon` and `millrace watch`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{open_for_write, Ctx};
use crate::engine::daemon::{self, DaemonOptions};
use crate::engine::{Engine, EngineOptions, TickOutcome};
use crate::error::{ExitCode, Result};
use crate::state::snapshot::WatcherMode;

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Run one tick: take in files, claim one item, run at most one stage.
    ///
    /// Exits 1 when the stage it ran failed or ended BLOCKED, 0 otherwise (also when there was
    /// nothing to do).
    #[command(after_help = "Example:\n  millrace run once --json")]
    Once(OnceArgs),
    /// Run until stopped, reacting to files as they appear.
    #[command(
        after_help = "Examples:\n  millrace run daemon\n  millrace run daemon --until-idle --max-ticks 100"
    )]
    Daemon(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct OnceArgs {
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Config file (default: millrace-agents/millrace.yaml); must exist when given.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Config file (default: millrace-agents/millrace.yaml); must exist when given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stop after this many ticks.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_ticks: Option<u64>,
    /// Poll the folders instead of using file events.
    #[arg(long)]
    pub poll: bool,
    /// Exit once no work is left (a file still settling counts as work) instead of waiting.
    #[arg(long)]
    pub until_idle: bool,
}

fn absolute(path: Option<PathBuf>) -> Option<PathBuf> {
    path.map(|p| std::path::absolute(&p).unwrap_or(p))
}

pub fn run(ctx: &Ctx, cmd: RunCommand) -> Result<ExitCode> {
    match cmd {
        RunCommand::Once(args) => once(ctx, args),
        RunCommand::Daemon(args) => daemon(ctx, args),
    }
}

fn once(ctx: &Ctx, args: OnceArgs) -> Result<ExitCode> {
    let ws = open_for_write(ctx)?;
    let options = EngineOptions {
        config_path: absolute(args.config),
        mode: args.mode,
        run_mode: "once",
    };
    // What the tick did beyond its stage (files rejected, ideas taken in, commands applied)
    // is printed on stderr as `run daemon` prints it, from the same log.
    let mut tail = crate::engine::daemon::EventTail::at_end(&ws.events_path());
    let (outcome, snap) = super::progress::follow(|progress| {
        let mut engine = Engine::start(&ws, options, WatcherMode::Off)?;
        let outcome = engine.tick_inline();
        tail.forward(progress);
        let outcome = outcome?;
        let snap = engine.state().to_snapshot();
        engine.shutdown("run once finished")?;
        Ok::<_, crate::error::Error>((outcome, snap))
    })?;
    let (kind, code) = match &outcome {
        TickOutcome::Stage(p) => {
            let ok = snap.last_terminal_result.is_some_and(|r| {
                p.request.stage.is_legal(r)
                    && r.result_class() != crate::model::ResultClass::Blocked
            });
            ("stage", if ok { ExitCode::Ok } else { ExitCode::Failed })
        }
        TickOutcome::Idle => ("no_work", ExitCode::Ok),
        TickOutcome::Paused => ("paused", ExitCode::Ok),
        TickOutcome::Stopped => ("stopped", ExitCode::Ok),
    };
    let stage = match &outcome {
        TickOutcome::Stage(p) => Some(p.request.stage),
        _ => None,
    };
    let finished = match &outcome {
        TickOutcome::Stage(p) => p.finished.as_ref(),
        _ => None,
    };
    let failure = finished.and_then(|r| r.diagnosis.as_ref());
    let refused = finished.map(|r| r.refused.clone()).unwrap_or_default();
    let report = json!({
        "outcome": kind,
        "stage": stage,
        "terminal_result": stage.and(snap.last_terminal_result),
        "next_stage": snap.active_stage,
        "stage_result_path": stage.and(snap.last_stage_result_path.clone()),
        "run_id": match &outcome { TickOutcome::Stage(p) => Some(p.request.run_id.clone()), _ => None },
        "failure_class": failure.map(|d| d.kind.as_str()),
        "failure_message": failure.map(|d| d.message.as_str()),
        "refused": refused,
        "paused": snap.paused,
        "pause_reason": snap.pause_reason,
    });
    ctx.emit(&report, || {
        let mut out = match stage {
            Some(stage) => format!(
                "ran {stage}: {}{} (next: {})\n",
                super::output::or_none(snap.last_terminal_result),
                failure
                    .map(|d| format!(" [{}: {}]", d.kind, d.message))
                    .unwrap_or_default(),
                super::output::or_none(snap.active_stage.filter(|_| !snap.paused))
            ),
            None => match outcome {
                TickOutcome::Idle => "no work: nothing queued can run now\n".to_string(),
                _ => format!("{kind}\n"),
            },
        };
        for r in &refused {
            out.push_str(&format!("warning: the harness refused: {r}\n"));
        }
        if let Some(reason) = &snap.pause_reason {
            out.push_str(&format!("paused: {reason}\n"));
        }
        out
    });
    Ok(code)
}

pub fn daemon(ctx: &Ctx, args: DaemonArgs) -> Result<ExitCode> {
    let ws = open_for_write(ctx)?;
    let options = EngineOptions {
        config_path: absolute(args.config),
        mode: args.mode,
        run_mode: "daemon",
    };
    let daemon_options = DaemonOptions {
        max_ticks: args.max_ticks,
        force_poll: args.poll,
        exit_when_idle: args.until_idle,
    };
    let exit =
        super::progress::follow(|progress| daemon::run(&ws, options, daemon_options, progress))?;
    let reason = exit.describe();
    let stuck = match exit {
        daemon::DaemonExit::Idle => crate::inspect::doctor::never_claimable(&ws),
        _ => Vec::new(),
    };
    let report = match stuck.is_empty() {
        true => json!({"exit": reason}),
        false => json!({"exit": reason, "never_claimable": stuck}),
    };
    ctx.emit(&report, || match stuck.len() {
        0 => format!("daemon exited: {reason}\n"),
        n => format!(
            "daemon exited: {reason} that can run; {n} queued task{} can never be claimed (below)\n",
            if n == 1 { "" } else { "s" }
        ),
    });
    if !ctx.json {
        for finding in &stuck {
            eprintln!("warning: {}\n  fix: {}", finding.message, finding.fix);
        }
    }
    Ok(ExitCode::Ok)
}
