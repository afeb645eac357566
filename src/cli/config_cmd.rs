//! `millrace config show|validate|reload`.

use clap::Subcommand;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the effective configuration.
    Show,
}

pub fn run(_ctx: &Ctx, _cmd: ConfigCommand) -> Result<ExitCode> {
    Err(Error::msg("config is not available yet"))
}
