//! `millrace status [show|watch]`.

use clap::Args;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub fn run(_ctx: &Ctx, _args: StatusArgs) -> Result<ExitCode> {
    Err(Error::msg("status is not available yet"))
}
