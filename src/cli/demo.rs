//! `millrace demo`.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (default: a new temporary directory).
    pub path: Option<PathBuf>,
}

pub fn run(_ctx: &Ctx, _args: DemoArgs) -> Result<ExitCode> {
    Err(Error::msg("demo is not available yet"))
}
