//! `millrace init`.

use clap::Args;
use serde::Serialize;

use super::{open_for_write, Ctx};
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
    let ws = open_for_write(ctx)?;
    // open_for_write already bootstrapped; a second pass reports nothing new, so bootstrap
    // once more only to learn what exists (it never overwrites).
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
            "workspace: {}\nruntime root: {}\nconfig: {}\n",
            out.workspace,
            ws.rt().display(),
            ws.config_path().display()
        )
    });
    Ok(ExitCode::Ok)
}
