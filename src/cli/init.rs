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
    default_runner: Option<String>,
    /// The permission level the default runner's harness runs at (`None`: the scripted
    /// runner, or a config that does not load).
    permission: Option<&'static str>,
}

/// The default runner and its permission level, as the workspace's config sets them.
fn permission_in_force(ws: &crate::workspace::Workspace) -> (Option<String>, Option<&'static str>) {
    let Ok(config) = crate::config::Config::load(&ws.config_path(), false) else {
        return (None, None);
    };
    let runner = config.runners.default_runner.trim();
    let runner = if runner.is_empty() {
        crate::runners::CODEX_RUNNER
    } else {
        runner
    };
    let level = match runner {
        crate::runners::CODEX_RUNNER => Some(config.runners.codex.permission_default),
        "scripted" => None,
        _ => Some(config.runners.command.permission_default),
    };
    (Some(runner.to_string()), level.map(|l| l.as_str()))
}

pub fn run(ctx: &Ctx, _args: InitArgs) -> Result<ExitCode> {
    let ws = crate::workspace::Workspace::at(&ctx.workspace)?;
    let report = ws.bootstrap()?;
    let (default_runner, permission) = permission_in_force(&ws);
    let out = InitReport {
        workspace: ws.root().display().to_string(),
        created_dirs: report.created_dirs,
        created_files: report.created_files,
        deployed_assets: report.assets.deployed,
        kept_assets: report.assets.kept,
        default_runner,
        permission,
    };
    ctx.emit(&out, || {
        let permission = match (&out.default_runner, out.permission) {
            (Some(runner), Some("basic")) => format!(
                "{runner} runs at permission level basic: the harness's own sandbox, which can \
                 edit the project and run its checks"
            ),
            (Some(runner), Some(level)) => format!(
                "{runner} runs at permission level {level} (set in the config); `basic` keeps \
                 the harness in its own sandbox"
            ),
            (Some(runner), None) => format!("{runner} runs no harness"),
            (None, _) => "unknown (the config does not load: `millrace config validate`)".into(),
        };
        format!(
            "workspace: {}\nruntime root: {}\nconfig: {}\ncreated: {} folders, {} files, {} templates\n\
             permission: {permission} (docs/runners.md)\n\
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
