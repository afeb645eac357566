//! `millrace status [show|watch]`: read-only views of the runtime.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::output::{or_none, print_stdout};
use super::{open_read_only, Ctx};
use crate::control::mailbox::{self, Pending};
use crate::error::{ExitCode, Result};
use crate::inspect::closure::{self, ClosureView};
use crate::inspect::DaemonView;
use crate::model::{Plane, WorkItemKind};
use crate::queue::QueueStore;
use crate::state::markers;
use crate::state::snapshot::Snapshot;
use crate::watch::{Wake, Waker};
use crate::workspace::{Folder, Settle, Workspace};

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
    /// Follow one or more workspaces live: read-only, takes no lock, refreshes on file changes.
    #[command(
        after_help = "The global --workspace takes one path; to follow several, repeat -W.\n\nExamples:\n  millrace status watch\n  millrace status watch -W ~/shop -W ~/blog\n  millrace --json status watch --max-updates 5"
    )]
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A workspace to follow (repeatable; default: the global --workspace).
    #[arg(long = "watch-workspace", short = 'W', value_name = "PATH")]
    pub workspaces: Vec<PathBuf>,
    /// Exit after printing this many updates (the first view counts as one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_updates: Option<u64>,
    /// Re-read even without file events this often (seconds): catches a daemon that died.
    #[arg(long, default_value_t = 2.0, value_parser = super::positive_seconds)]
    pub interval_seconds: f64,
}

/// Everything `status` reports, also the `--json` shape.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub workspace: String,
    pub snapshot: Snapshot,
    pub queues: Queues,
    pub markers: Markers,
    /// The lock owner: a live daemon, or not running.
    pub daemon: DaemonView,
    /// Open closure targets with their live lineage backlog.
    pub closure_targets: Vec<ClosureView>,
    /// Closure target files that could not be read.
    pub closure_target_problems: Vec<String>,
    /// What keeps work from moving, each with the command to look further.
    pub attention: Vec<String>,
    /// Mailbox commands waiting for the daemon (or for a daemon to start), in apply order.
    pub pending_commands: Vec<PendingCommand>,
    /// The most recent stage's failure, if it failed: class, the harness's words, refusals.
    pub last_failure: Option<LastFailure>,
    /// Today's and the current window's spend (absent when the config cannot be read).
    pub usage: Option<crate::inspect::usage::Summary>,
    /// With parallel lanes: each lane's task, stage, how long it has been at it, where.
    pub lanes: Vec<LaneView>,
    /// The active stage's harness process group while it runs; none when the item waits at
    /// its stage (paused between stages, or no daemon).
    pub active_process_group: Option<u64>,
}

/// One execution lane, as `status` shows it.
#[derive(Debug, Serialize)]
pub struct LaneView {
    pub lane: u32,
    pub work_item_id: String,
    pub stage: crate::model::Stage,
    pub run_id: String,
    pub since: String,
    /// Seconds since the task entered this stage (or its loop finished, when integrating).
    pub elapsed_seconds: Option<u64>,
    pub worktree: String,
    pub branch: String,
    /// The loop finished; the branch is landing or waits to.
    pub integrating: bool,
    pub integration_wait: Option<String>,
    /// The harness's process group while its stage runs (from the run's process record).
    pub process_group: Option<u64>,
}

/// The process group a run's harness runs in now, from its `runner_process.*.yaml` (the
/// record is removed when the stage ends).
fn process_group(ws: &Workspace, run_id: &str) -> Option<u64> {
    let entries = std::fs::read_dir(ws.run_dir(run_id)).ok()?;
    entries.flatten().find_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("runner_process.") && name.ends_with(".yaml")) {
            return None;
        }
        let text = crate::workspace::atomic::read_regular_string(entry.path()).ok()?;
        let record: crate::runners::process::ProcessRecord =
            crate::yaml::from_str(&entry.path(), &text).ok()?;
        Some(u64::from(record.process_group))
    })
}

impl LaneView {
    fn from(ws: &Workspace, l: &crate::state::snapshot::LaneSnapshot) -> LaneView {
        let elapsed = crate::runners::result::stamp::parse(&l.since)
            .ok()
            .and_then(|at| {
                let left = crate::time::now().duration_since(at);
                std::time::Duration::try_from(left).ok()
            })
            .map(|d| d.as_secs());
        LaneView {
            lane: l.lane,
            work_item_id: l.work_item_id.clone(),
            stage: l.stage,
            run_id: l.run_id.clone(),
            since: l.since.clone(),
            elapsed_seconds: elapsed,
            worktree: l.worktree.clone(),
            branch: l.branch.clone(),
            integrating: l.integrating,
            integration_wait: l.integration_wait.clone(),
            process_group: process_group(ws, &l.run_id),
        }
    }

    /// `lane 2: task t4 checker for 1m05s in millrace-agents/worktrees/t4`; a stage no
    /// harness runs now (no daemon, or paused before it started) is `at checker` with why.
    fn line(&self, report: &StatusReport) -> String {
        let elapsed = self
            .elapsed_seconds
            .map(|s| format!(" for {}m{:02}s", s / 60, s % 60))
            .unwrap_or_default();
        let idle = not_running(report, self.process_group);
        let doing = match (&self.integration_wait, self.integrating, idle) {
            (Some(why), _, _) => format!("waiting to land: {why}"),
            (None, true, _) => "landing".to_string(),
            (None, false, Some(why)) => format!("at {}, not running: {why}", self.stage),
            (None, false, None) => format!("{}{elapsed}", self.stage),
        };
        format!(
            "lane {}: task {} {doing} in {} (branch {})",
            self.lane, self.work_item_id, self.worktree, self.branch
        )
    }
}

/// A mailbox command not applied yet.
#[derive(Debug, Serialize)]
pub struct PendingCommand {
    pub file: String,
    pub command: Option<String>,
    pub issued_at: Option<String>,
    /// Why the file cannot be applied (it goes to `failed/` at the daemon's next look).
    pub error: Option<String>,
}

fn pending_commands(ws: &Workspace) -> Vec<PendingCommand> {
    mailbox::pending(ws, &Settle::default())
        .into_iter()
        .map(|p| match p {
            Pending::Ready { path, envelope, .. } => PendingCommand {
                file: ws.rel(&path),
                command: Some(envelope.command.as_str().to_string()),
                issued_at: envelope.issued_at.clone(),
                error: None,
            },
            Pending::Broken { path, error } => PendingCommand {
                file: ws.rel(&path),
                command: None,
                issued_at: None,
                error: Some(error),
            },
        })
        .collect()
}

/// The failure recorded in the last stage result.
#[derive(Debug, Serialize)]
pub struct LastFailure {
    pub stage: crate::model::Stage,
    pub failure_class: String,
    pub failure_message: String,
    pub refused: Vec<String>,
    pub stage_result_path: String,
}

impl LastFailure {
    /// From the snapshot's last stage result, when that stage failed or refused something.
    fn load(ws: &Workspace, snapshot: &Snapshot) -> Option<LastFailure> {
        let rel = snapshot.last_stage_result_path.as_deref()?;
        let path = ws.root().join(rel);
        let text = crate::workspace::atomic::read_regular_string(&path).ok()?;
        let result: crate::runners::StageResult = crate::yaml::from_str(&path, &text).ok()?;
        if result.diagnosis.is_none() && result.refused.is_empty() {
            return None;
        }
        let (class, message) = result
            .diagnosis
            .map(|d| (d.kind.as_str().to_string(), d.message))
            .unwrap_or_default();
        Some(LastFailure {
            stage: result.stage,
            failure_class: class,
            failure_message: message,
            refused: result.refused,
            stage_result_path: rel.to_string(),
        })
    }
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
    let (closure_targets, closure_target_problems) = closure::open_targets(ws);
    let mut attention: Vec<String> = closure_targets.iter().flat_map(|t| t.attention()).collect();
    attention.extend(
        closure_target_problems
            .iter()
            .map(|p| format!("closure target unreadable: {p} (run `millrace doctor`)")),
    );
    if let Some(reason) = snapshot.pause_reason.as_ref().filter(|_| snapshot.paused) {
        attention.push(format!("paused: {reason}"));
    }
    for lane in &snapshot.lanes {
        if let Some(reason) = &lane.integration_wait {
            attention.push(format!(
                "task {} (lane {}) waits to land: {reason}",
                lane.work_item_id, lane.lane
            ));
        }
    }
    if let Some(err) = &snapshot.last_reload_error {
        attention.push(format!(
            "the last config reload failed and the previous plan is in use: {err} (fix millrace-agents/millrace.yaml, then `millrace config validate`)"
        ));
    }
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
        daemon: crate::inspect::daemon(ws),
        closure_targets,
        closure_target_problems,
        attention,
        pending_commands: pending_commands(ws),
        active_process_group: snapshot
            .active_run_id
            .as_deref()
            .and_then(|run| process_group(ws, run)),
        last_failure: LastFailure::load(ws, &snapshot),
        usage: crate::config::Config::load(&ws.config_path(), false)
            .ok()
            .map(|config| crate::inspect::usage::summary(ws, &config)),
        lanes: snapshot
            .lanes
            .iter()
            .map(|l| LaneView::from(ws, l))
            .collect(),
        snapshot,
    })
}

/// `true`/`false`, with the reason when the runtime paused itself.
fn paused_text(s: &Snapshot) -> String {
    match (&s.pause_reason, &s.resume_at) {
        (Some(reason), _) if s.paused => format!("true — {reason}"),
        _ => s.paused.to_string(),
    }
}

/// Today's and the window's spend, and a spent budget.
fn usage_lines(report: &StatusReport) -> String {
    use crate::inspect::usage::describe_total;
    let Some(u) = &report.usage else {
        return String::new();
    };
    let mut out = format!(
        "usage_today: {} ({})\nusage_window: {} (last {} h)\n",
        describe_total(&u.today),
        u.time_zone,
        describe_total(&u.window),
        u.window_hours
    );
    if let Some(over) = &u.over {
        out.push_str(&format!(
            "usage_over_budget: {} (frees up at {})\n",
            over.reason, over.frees_at
        ));
    }
    out
}

/// `class: message (stage)` and the refusals of the last stage.
fn failure_lines(f: &LastFailure) -> String {
    let mut out = String::new();
    if !f.failure_class.is_empty() {
        out.push_str(&format!(
            "last_failure: {} at {}: {}\n",
            f.failure_class, f.stage, f.failure_message
        ));
    }
    for r in &f.refused {
        out.push_str(&format!("warning: {} refused: {r}\n", f.stage));
    }
    out
}

/// Human rendering: `key: value` lines, `none` for absent values.
pub fn render(report: &StatusReport) -> String {
    let s = &report.snapshot;
    let q = &report.queues;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
    line("workspace", report.workspace.clone());
    line("daemon", report.daemon.describe());
    line(
        "runtime_mode",
        format!("{:?}", s.runtime_mode).to_lowercase(),
    );
    line("process_running", s.process_running.to_string());
    line("paused", paused_text(s));
    line("stop_requested", s.stop_requested.to_string());
    line("active_mode_id", s.active_mode_id.clone());
    line("compiled_plan_id", s.compiled_plan_id.clone());
    line("active_plane", or_none(s.active_plane));
    line(
        "active_stage",
        match s
            .active_stage
            .zip(not_running(report, report.active_process_group))
        {
            Some((stage, why)) => format!("{stage} (not running: {why})"),
            None => or_none(s.active_stage),
        },
    );
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
    for lane in &report.lanes {
        out.push_str(&format!("{}\n", lane.line(report)));
    }
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
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
    line(
        "pending_mailbox_commands",
        report.pending_commands.len().to_string(),
    );
    for p in &report.pending_commands {
        let what = match (&p.command, &p.error) {
            (Some(command), _) => format!(
                "{command} (issued {}, {})",
                or_none(p.issued_at.as_deref()),
                p.file
            ),
            (None, error) => format!("unreadable {}: {}", p.file, or_none(error.as_deref())),
        };
        line("pending_command", what);
    }
    line(
        "open_closure_targets",
        report.closure_targets.len().to_string(),
    );
    for t in &report.closure_targets {
        out.push_str(&render_target(t));
    }
    if let Some(f) = &report.last_failure {
        out.push_str(&failure_lines(f));
    }
    out.push_str(&usage_lines(report));
    for a in &report.attention {
        out.push_str(&format!("attention: {a}\n"));
    }
    out
}

fn backlog_text(t: &ClosureView) -> String {
    if t.backlog.is_empty() {
        return "none".into();
    }
    t.backlog
        .iter()
        .map(|i| format!("{} ({})", i.id, i.folder))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_target(t: &ClosureView) -> String {
    let mut out = format!("closure_target: {}\n", t.root_spec_id);
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k}: {v}\n"));
    line("root_idea_id", or_none(t.root_idea_id.as_deref()));
    line("lineage_backlog", backlog_text(t));
    line("latest_outcome", or_none(t.latest_outcome.as_deref()));
    line(
        "latest_verdict_path",
        or_none(t.latest_verdict_path.as_deref()),
    );
    line(
        "latest_report_path",
        or_none(t.latest_report_path.as_deref()),
    );
    line("arbiter_runs", t.arbiter_runs.to_string());
    line("closure_held", or_none(t.closure_held.as_deref()));
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
        Some(StatusCommand::Watch(args)) => watch(ctx, args),
    }
}

/// Why a stage the snapshot names runs no harness now (`process_group` is the harness's
/// group when one runs): no daemon, or paused before it started. The snapshot names the
/// stage an item is at; whether it runs is another matter.
fn not_running(report: &StatusReport, process_group: Option<u64>) -> Option<&'static str> {
    if !report.daemon.running {
        Some("no daemon runs it")
    } else if process_group.is_none() && report.snapshot.paused {
        Some("paused")
    } else {
        None
    }
}

/// The compact block `status watch` prints per workspace.
fn render_compact(report: &StatusReport) -> String {
    let s = &report.snapshot;
    let q = &report.queues;
    let mut out = format!(
        "workspace: {}\ndaemon: {}\n",
        report.workspace,
        report.daemon.describe()
    );
    let active = match (
        &s.active_stage,
        &s.active_work_item_kind,
        &s.active_work_item_id,
    ) {
        (Some(stage), Some(kind), Some(id)) => format!(
            "{stage} on {kind} {id} ({})",
            or_none(s.active_run_id.as_deref())
        ),
        (Some(stage), _, _) => match &s.active_closure_target {
            Some(root) => format!("{stage} on closure target {root}"),
            None => stage.to_string(),
        },
        _ => "none".into(),
    };
    let waiting = s
        .active_stage
        .and_then(|_| not_running(report, report.active_process_group));
    let active = match waiting {
        Some(why) => format!("at {active}, not running: {why}"),
        None => active,
    };
    out.push_str(&format!("active: {active}\n"));
    for lane in &report.lanes {
        out.push_str(&format!("{}\n", lane.line(report)));
    }
    out.push_str(&format!("paused: {}\n", paused_text(s)));
    out.push_str(&format!(
        "execution: {} queued, {} active, {} done, {} blocked\n",
        q.execution_queued, q.execution_active, q.execution_done, q.execution_blocked
    ));
    out.push_str(&format!(
        "planning: {} queued, {} active, {} done, {} blocked\n",
        q.planning_queued, q.planning_active, q.planning_done, q.planning_blocked
    ));
    out.push_str(&format!(
        "last_terminal_result: {}\n",
        or_none(s.last_terminal_result)
    ));
    if let Some(f) = &report.last_failure {
        out.push_str(&failure_lines(f));
    }
    out.push_str(&usage_lines(report));
    for t in &report.closure_targets {
        out.push_str(&format!(
            "closure: {} waits on {}\n",
            t.root_spec_id,
            backlog_text(t)
        ));
    }
    for a in &report.attention {
        out.push_str(&format!("attention: {a}\n"));
    }
    out
}

/// Folders whose changes alter what `status` shows.
fn watched_dirs(ws: &Workspace) -> Vec<PathBuf> {
    let mut dirs = vec![ws.state_dir(), ws.arbiter_dir().join("targets")];
    for kind in WorkItemKind::ALL {
        for folder in Folder::ALL {
            dirs.push(ws.folder(kind, folder));
        }
    }
    dirs
}

/// `status watch`: print a view, then wait on file events (or the interval) and print again
/// whenever what a workspace shows has changed.
fn watch(ctx: &Ctx, args: WatchArgs) -> Result<ExitCode> {
    let paths = if args.workspaces.is_empty() {
        vec![ctx.workspace.clone()]
    } else {
        args.workspaces
    };
    let mut workspaces: Vec<Workspace> = Vec::new();
    for path in paths {
        let ws = Workspace::open_existing(&path)?;
        if !workspaces.iter().any(|w| w.root() == ws.root()) {
            workspaces.push(ws);
        }
    }
    let interval = Duration::from_secs_f64(args.interval_seconds);
    let dirs: Vec<PathBuf> = workspaces.iter().flat_map(watched_dirs).collect();
    let waker = Waker::on_folders(&dirs, false, interval);
    let mut last: Vec<serde_json::Value> = Vec::new();
    let mut updates = 0u64;
    loop {
        let reports = workspaces.iter().map(collect).collect::<Result<Vec<_>>>()?;
        let values: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| serde_json::to_value(r).expect("status serializes"))
            .collect();
        if values != last {
            updates += 1;
            if updates > 1 && !ctx.json {
                print_stdout("\n");
            }
            ctx.emit_line(&json!({"update": updates, "workspaces": values}), || {
                reports
                    .iter()
                    .map(render_compact)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            last = values;
            if args.max_updates.is_some_and(|max| updates >= max) {
                return Ok(ExitCode::Ok);
            }
        }
        let woke = waker.wait(interval);
        let mut interrupted = matches!(woke, Some(Wake::Signal(_)));
        if woke.is_some() {
            // A burst of changes (a stage's end writes several files) is shown once.
            let settle = Instant::now() + Duration::from_millis(200);
            while let Some(left) = settle.checked_duration_since(Instant::now()) {
                match waker.wait(left.min(Duration::from_millis(50))) {
                    Some(more) => interrupted |= matches!(more, Wake::Signal(_)),
                    None => break,
                }
            }
        }
        if interrupted {
            ctx.emit_line(&json!({"interrupted": true}), || "interrupted: true".into());
            return Ok(ExitCode::Ok);
        }
    }
}
