//! `millrace compile validate|show|graph`.

use clap::Subcommand;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum CompileCommand {
    /// Compile and report diagnostics (never overwrites a plan a daemon uses).
    Validate,
}

pub fn run(_ctx: &Ctx, _cmd: CompileCommand) -> Result<ExitCode> {
    Err(Error::msg("compile is not available yet"))
}
