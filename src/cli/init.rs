//! `millrace init`.

use clap::Args;
use serde::Serialize;

use super::Ctx;
use crate::error::{ExitCode, Result};

#[derive(Debug, Args)]
pub struct InitArgs {}

#[derive(Serialize)]
struct InitReport {
    workspace: String,
    created_dirs: Vec<String>,
    created_files: Vec<String>,
    deployed_assets: Vec<String>,
    kept_assets: Vec<String>,
}

pub fn run(ctx: &Ctx, _args: InitArgs) -> Result<ExitCode> {
    let ws = crate::workspace::Workspace::at(&ctx.workspace)?;
    let report = ws.bootstrap()?;
    let out = InitReport {
        workspace: ws.root().display().to_string(),
        created_dirs: report.created_dirs,
        created_files: report.created_files,
        deployed_assets: report.assets.deployed,
        kept_assets: report.assets.kept,
    };
    ctx.emit(&out, || {
        format!(
            "workspace: {}\nruntime root: {}\nconfig: {}\ncreated: {} folders, {} files, {} templates\n\
             next: choose the harness in the config (`millrace doctor` checks it is installed),\n\
             \x20     queue work with `millrace add-task FILE`, then run `millrace watch`\n",
            out.workspace,
            ws.rt().display(),
            ws.config_path().display(),
            out.created_dirs.len(),
            out.created_files.len(),
            out.deployed_assets.len()
        )
    });
    Ok(ExitCode::Ok)
}
