//! `millrace run once|daemon` and `millrace watch`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Run one tick: take in files, claim one item, run at most one stage.
    Once(OnceArgs),
    /// Run until stopped, reacting to files as they appear.
    Daemon(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct OnceArgs {
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Config file (default: millrace-agents/millrace.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Config file (default: millrace-agents/millrace.yaml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stop after this many ticks.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_ticks: Option<u64>,
    /// Poll the folders instead of using file events.
    #[arg(long)]
    pub poll: bool,
}

pub fn run(ctx: &Ctx, cmd: RunCommand) -> Result<ExitCode> {
    match cmd {
        RunCommand::Once(_) => Err(Error::msg("run once is not available yet")),
        RunCommand::Daemon(args) => daemon(ctx, args),
    }
}

pub fn daemon(_ctx: &Ctx, _args: DaemonArgs) -> Result<ExitCode> {
    Err(Error::msg("run daemon is not available yet"))
}
