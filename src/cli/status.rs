//! `millrace status [show|watch]`: read-only views of the runtime.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::or_none;
use super::{open_read_only, Ctx};
use crate::error::{ExitCode, Result};
use crate::model::{Plane, WorkItemKind};
use crate::queue::QueueStore;
use crate::state::markers;
use crate::state::snapshot::Snapshot;
use crate::workspace::{Folder, Workspace};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StatusArgs {
    #[command(subcommand)]
    pub command: Option<StatusCommand>,
}

#[derive(Debug, Subcommand)]
pub enum StatusCommand {
    /// Show status once (the default).
    Show,
}

/// Everything `status` reports, also the `--json` shape.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub workspace: String,
    pub snapshot: Snapshot,
    pub queues: Queues,
    pub markers: Markers,
}

#[derive(Debug, Serialize)]
pub struct Queues {
    pub execution_queued: u64,
    pub execution_active: u64,
    pub execution_done: u64,
    pub execution_blocked: u64,
    pub planning_queued: u64,
    pub planning_active: u64,
    pub planning_done: u64,
    pub planning_blocked: u64,
}

#[derive(Debug, Serialize)]
pub struct Markers {
    pub execution: String,
    pub planning: String,
}

/// Gather the status of a workspace without writing anything.
pub fn collect(ws: &Workspace) -> Result<StatusReport> {
    let snapshot = Snapshot::load(&ws.snapshot_path())?;
    let store = QueueStore::new(ws);
    let count = |folder: Folder, kinds: &[WorkItemKind]| -> u64 {
        kinds.iter().map(|k| store.count(*k, folder)).sum()
    };
    let exec = [WorkItemKind::Task];
    let plan = [WorkItemKind::Spec, WorkItemKind::Incident];
    Ok(StatusReport {
        workspace: ws.root().display().to_string(),
        queues: Queues {
            execution_queued: count(Folder::Queue, &exec),
            execution_active: count(Folder::Active, &exec),
            execution_done: count(Folder::Done, &exec),
            execution_blocked: count(Folder::Blocked, &exec),
            planning_queued: count(Folder::Queue, &plan),
            planning_active: count(Folder::Active, &plan),
            planning_done: count(Folder::Done, &plan),
            planning_blocked: count(Folder::Blocked, &plan),
        },
        markers: Markers {
            execution: markers::read_lenient(&ws.status_path(Plane::Execution)),
            planning: markers::read_lenient(&ws.status_path(Plane::Planning)),
        },
        snapshot,
    })
}

/// Human rendering: `key: value` lines, `none` for absent values.
pub fn render(report: &StatusReport) -> String {
    let s = &report.snapshot;
    let q = &report.queues;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
    line("workspace", report.workspace.clone());
    line(
        "runtime_mode",
        format!("{:?}", s.runtime_mode).to_lowercase(),
    );
    line("process_running", s.process_running.to_string());
    line("paused", s.paused.to_string());
    line("stop_requested", s.stop_requested.to_string());
    line("active_mode_id", s.active_mode_id.clone());
    line("compiled_plan_id", s.compiled_plan_id.clone());
    line("active_plane", or_none(s.active_plane));
    line("active_stage", or_none(s.active_stage));
    line("active_run_id", or_none(s.active_run_id.as_deref()));
    line(
        "active_work_item",
        match (&s.active_work_item_kind, &s.active_work_item_id) {
            (Some(k), Some(i)) => format!("{k} {i}"),
            _ => "none".into(),
        },
    );
    line("active_since", or_none(s.active_since.as_deref()));
    line(
        "current_failure_class",
        or_none(s.current_failure_class.as_deref()),
    );
    line("execution_status_marker", report.markers.execution.clone());
    line("planning_status_marker", report.markers.planning.clone());
    line(
        "execution_queue",
        format!(
            "{} queued, {} active, {} done, {} blocked",
            q.execution_queued, q.execution_active, q.execution_done, q.execution_blocked
        ),
    );
    line(
        "planning_queue",
        format!(
            "{} queued, {} active, {} done, {} blocked",
            q.planning_queued, q.planning_active, q.planning_done, q.planning_blocked
        ),
    );
    line("last_terminal_result", or_none(s.last_terminal_result));
    line(
        "last_stage_result_path",
        or_none(s.last_stage_result_path.as_deref()),
    );
    line("config_version", s.config_version.clone());
    line(
        "watcher_mode",
        format!("{:?}", s.watcher_mode).to_lowercase(),
    );
    if let Some(err) = &s.last_reload_error {
        line("last_reload_error", err.clone());
    }
    line("updated_at", s.updated_at.clone());
    out
}

pub fn run(ctx: &Ctx, args: StatusArgs) -> Result<ExitCode> {
    match args.command {
        None | Some(StatusCommand::Show) => {
            let ws = open_read_only(ctx)?;
            let report = collect(&ws)?;
            ctx.emit(&report, || render(&report));
            Ok(ExitCode::Ok)
        }
    }
}
