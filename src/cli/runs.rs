//! `millrace runs ls|show|tail`.

use clap::Subcommand;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List stage runs, newest first.
    Ls,
}

pub fn run(_ctx: &Ctx, _cmd: RunsCommand) -> Result<ExitCode> {
    Err(Error::msg("runs is not available yet"))
}
