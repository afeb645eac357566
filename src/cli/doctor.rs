//! `millrace doctor`.

use super::Ctx;
use crate::error::{Error, ExitCode, Result};

pub fn run(_ctx: &Ctx) -> Result<ExitCode> {
    Err(Error::msg("doctor is not available yet"))
}
