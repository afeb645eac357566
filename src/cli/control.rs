//! `millrace control ...`, `planning retry-active` and their top-level aliases.

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Pause: ticks stop claiming work; the mailbox and intake keep running.
    Pause(SimpleArgs),
    /// Resume a paused runtime.
    Resume(SimpleArgs),
    /// Stop the daemon after the running stage (see runtime.stop_mode).
    Stop(SimpleArgs),
    /// Requeue the active work item.
    RetryActive(ReasonArgs),
    /// Requeue every active item, clear counters and reset the snapshot.
    ClearStaleState(ReasonArgs),
    /// Re-read millrace.yaml and recompile at the next tick boundary.
    ReloadConfig(SimpleArgs),
}

#[derive(Debug, Subcommand)]
pub enum PlanningCommand {
    /// Requeue the active spec or incident.
    RetryActive(ReasonArgs),
}

#[derive(Debug, Args)]
pub struct SimpleArgs {
    /// Print the mailbox envelope an agent could write instead of applying it.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// Why (recorded in the requeue log and the event log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the mailbox envelope an agent could write instead of applying it.
    #[arg(long)]
    pub print: bool,
}

pub fn run(_ctx: &Ctx, _cmd: ControlCommand) -> Result<ExitCode> {
    Err(Error::msg("control is not available yet"))
}

pub fn planning(_ctx: &Ctx, _cmd: PlanningCommand) -> Result<ExitCode> {
    Err(Error::msg("planning is not available yet"))
}
