//! `millrace queue ...` and `add-task|add-spec|add-idea`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{Error, ExitCode, Result};
use crate::model::WorkItemKind;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued, active, done and blocked items.
    Ls,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The document to add.
    pub path: PathBuf,
}

pub fn run(_ctx: &Ctx, _cmd: QueueCommand) -> Result<ExitCode> {
    Err(Error::msg("queue is not available yet"))
}

pub fn add(_ctx: &Ctx, _kind: WorkItemKind, _args: AddArgs) -> Result<ExitCode> {
    Err(Error::msg("add is not available yet"))
}

pub fn add_idea(_ctx: &Ctx, _args: AddArgs) -> Result<ExitCode> {
    Err(Error::msg("add-idea is not available yet"))
}
