//! `millrace config show|validate|reload`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::diagnostics::validate;
use super::output::{or_none, py_float};
use super::submit::{route, SimpleArgs};
use super::{open_read_only, Ctx};
use crate::config::Config;
use crate::error::{Error, ExitCode, Result};
use crate::state::snapshot::Snapshot;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the effective configuration and what the runtime last applied.
    ///
    /// The text form is a short summary; `--json` prints every effective key.
    #[command(after_help = "Examples:\n  millrace config show\n  millrace config show --json")]
    Show(ConfigArgs),
    /// Load the configuration and compile the mode it selects.
    #[command(
        after_help = "Examples:\n  millrace config validate\n  millrace config validate --config other.yaml --mode quick"
    )]
    Validate(ValidateArgs),
    /// Ask the daemon to re-read millrace.yaml and recompile (same as `control reload-config`).
    #[command(after_help = "Example:\n  millrace config reload")]
    Reload(SimpleArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config file to use instead of millrace-agents/millrace.yaml (must exist).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
}

#[derive(Debug, Serialize)]
struct Shown<'a> {
    config_path: String,
    config: &'a Config,
    config_version: &'a str,
    last_reload_outcome: Option<crate::state::snapshot::ReloadOutcome>,
    last_reload_error: Option<&'a str>,
}

pub fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(args) => {
            let ws = open_read_only(ctx)?;
            let snapshot = Snapshot::load(&ws.snapshot_path())?;
            // A file being edited may not parse: the error then still says what the runtime
            // applied last, which is what a person checking a reload looks for.
            let config = Config::load_for(&ws, args.config.as_deref()).map_err(|err| {
                let outcome = snapshot
                    .last_reload_outcome
                    .and_then(|o| serde_json::to_value(o).ok())
                    .and_then(|v| v.as_str().map(str::to_string));
                Error::refused(
                    err.to_string(),
                    Some(format!(
                        "the runtime keeps the config it applied last (config_version {}, \
                         last_reload_outcome: {}, last_reload_error: {}) until the file is fixed",
                        snapshot.config_version,
                        or_none(outcome),
                        or_none(snapshot.last_reload_error.as_deref())
                    )),
                )
            })?;
            let path = args.config.unwrap_or_else(|| ws.config_path());
            let shown = Shown {
                config_path: path.display().to_string(),
                config: &config,
                config_version: &snapshot.config_version,
                last_reload_outcome: snapshot.last_reload_outcome,
                last_reload_error: snapshot.last_reload_error.as_deref(),
            };
            ctx.emit(&shown, || {
                let outcome = shown.last_reload_outcome.map(|o| {
                    match serde_json::to_value(o) {
                        Ok(serde_json::Value::String(s)) => s,
                        other => format!("{other:?}"),
                    }
                });
                format!(
                    "default_mode: {}\nrun_style: {}\nidle_sleep_seconds: {}\nwatchers.enabled: {}\n\
                     config_version: {}\nlast_reload_outcome: {}\nlast_reload_error: {}\n",
                    config.runtime.default_mode,
                    match config.runtime.run_style {
                        crate::config::RunStyle::Once => "once",
                        crate::config::RunStyle::Daemon => "daemon",
                    },
                    py_float(config.runtime.idle_sleep_seconds),
                    config.watchers.enabled,
                    shown.config_version,
                    or_none(outcome),
                    or_none(shown.last_reload_error),
                )
            });
            Ok(ExitCode::Ok)
        }
        ConfigCommand::Validate(args) => {
            let ws = open_read_only(ctx)?;
            let config = Config::load_for(&ws, args.config.config.as_deref())?;
            validate(ctx, &ws, &config, args.mode.as_deref())
        }
        ConfigCommand::Reload(args) => route(
            ctx,
            crate::control::actions::Action::ReloadConfig,
            args.print,
            args.wait,
        ),
    }
}
