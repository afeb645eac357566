//! `millrace modes list|show`: the modes deployed in the workspace (`millrace-agents/modes/`).

use clap::Subcommand;
use serde::Serialize;

use super::{open_read_only, Ctx};
use crate::compiler::{self, ModeDefinition};
use crate::error::{Error, ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum ModesCommand {
    /// List the modes of the workspace.
    #[command(after_help = "Example:\n  millrace modes list --json")]
    List,
    /// Show one mode: its loops and per-stage bindings.
    #[command(after_help = "Example:\n  millrace modes show standard_plain")]
    Show {
        /// Mode id (a file name under millrace-agents/modes/, without .yaml).
        mode_id: String,
    },
}

#[derive(Debug, Serialize)]
struct ModeRow {
    mode_id: String,
    execution_loop_id: Option<String>,
    planning_loop_id: Option<String>,
    error: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: ModesCommand) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    match cmd {
        ModesCommand::List => {
            let rows: Vec<ModeRow> = compiler::list_mode_ids(ws.rt())
                .into_iter()
                .map(|id| match compiler::load_mode(ws.rt(), &id) {
                    Ok((_, mode)) => ModeRow {
                        mode_id: id,
                        execution_loop_id: Some(mode.execution_loop_id),
                        planning_loop_id: Some(mode.planning_loop_id),
                        error: None,
                    },
                    Err(diag) => ModeRow {
                        mode_id: id,
                        execution_loop_id: None,
                        planning_loop_id: None,
                        error: Some(diag.to_string()),
                    },
                })
                .collect();
            ctx.emit(&rows, || {
                rows.iter()
                    .map(
                        |row| match (&row.execution_loop_id, &row.planning_loop_id, &row.error) {
                            (Some(exec), Some(planning), _) => format!(
                                "{}: execution_loop={exec} planning_loop={planning}\n",
                                row.mode_id
                            ),
                            (_, _, error) => format!(
                                "{}: invalid: {}\n",
                                row.mode_id,
                                error.as_deref().unwrap_or("unreadable")
                            ),
                        },
                    )
                    .collect()
            });
            Ok(ExitCode::Ok)
        }
        ModesCommand::Show { mode_id } => {
            let (path, mode) = compiler::load_mode(ws.rt(), &mode_id).map_err(|diag| {
                Error::refused(
                    diag.to_string(),
                    Some("`millrace modes list` shows the workspace's modes".into()),
                )
            })?;
            #[derive(Serialize)]
            struct Shown<'a> {
                path: String,
                #[serde(flatten)]
                mode: ModeJson<'a>,
            }
            let shown = Shown {
                path: path.display().to_string(),
                mode: ModeJson(&mode),
            };
            ctx.emit(&shown, || describe(&mode, &shown.path));
            Ok(ExitCode::Ok)
        }
    }
}

/// JSON view of a mode definition (the asset type itself is read-only).
struct ModeJson<'a>(&'a ModeDefinition);

impl Serialize for ModeJson<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let m = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("mode_id", &m.mode_id)?;
        map.serialize_entry("execution_loop_id", &m.execution_loop_id)?;
        map.serialize_entry("planning_loop_id", &m.planning_loop_id)?;
        map.serialize_entry("stage_entrypoint_overrides", &m.stage_entrypoint_overrides)?;
        map.serialize_entry("stage_skill_additions", &m.stage_skill_additions)?;
        map.serialize_entry("stage_model_bindings", &m.stage_model_bindings)?;
        map.serialize_entry("stage_runner_bindings", &m.stage_runner_bindings)?;
        map.end()
    }
}

fn describe(mode: &ModeDefinition, path: &str) -> String {
    let mut lines = vec![
        format!("mode_id: {}", mode.mode_id),
        format!("execution_loop_id: {}", mode.execution_loop_id),
        format!("planning_loop_id: {}", mode.planning_loop_id),
    ];
    let maps = [
        (
            "stage_entrypoint_overrides",
            &mode.stage_entrypoint_overrides,
        ),
        ("stage_model_bindings", &mode.stage_model_bindings),
        ("stage_runner_bindings", &mode.stage_runner_bindings),
    ];
    for (name, map) in maps {
        lines.extend(
            map.iter()
                .map(|(stage, value)| format!("{name}.{stage}: {value}")),
        );
    }
    lines.extend(
        mode.stage_skill_additions
            .iter()
            .map(|(stage, skills)| format!("stage_skill_additions.{stage}: {}", skills.join(", "))),
    );
    lines.push(format!("path: {path}"));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
