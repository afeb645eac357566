//! `millrace modes list|show`.

use clap::Subcommand;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum ModesCommand {
    /// List the modes of the workspace.
    List,
}

pub fn run(_ctx: &Ctx, _cmd: ModesCommand) -> Result<ExitCode> {
    Err(Error::msg("modes is not available yet"))
}
