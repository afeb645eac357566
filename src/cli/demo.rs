//! `millrace demo`: the whole lifecycle in a throwaway workspace, with no harness installed.
//!
//! The demo uses the built-in `scripted` runner, a simulation: no model runs and no code
//! changes. It seeds one task and one spec, runs the daemon until nothing is left, and
//! prints each stage as it happens.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::engine::daemon::{self, DaemonOptions};
use crate::engine::EngineOptions;
use crate::error::{Error, ExitCode, Result};
use crate::model::WorkItemKind;
use crate::queue::QueueStore;
use crate::state::closure;
use crate::workspace::atomic;
use crate::workspace::{Folder, Workspace};

const DEMO_SPEC: &str = include_str!("../../fixtures/demo/spec.md");
const DEMO_TASK: &str = include_str!("../../fixtures/demo/task.md");
const DEMO_CONFIG: &str = "# Demo workspace: every stage is answered by the built-in scripted runner\n# (a simulation; no model runs). Point default_runner at codex_cli or command for real work.\nruntime:\n  default_mode: standard_plain\nrunners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 0\n";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  millrace demo\n  millrace demo ./try-millrace")]
pub struct DemoArgs {
    /// Where to create the demo workspace (default: a new directory under the system temp dir).
    pub path: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: DemoArgs) -> Result<ExitCode> {
    let root = match args.path {
        Some(p) => p,
        None => tempfile::Builder::new()
            .prefix("millrace-demo-")
            .tempdir()
            .map_err(|e| Error::system("cannot create a temporary directory", e))?
            .keep(),
    };
    let ws = Workspace::open_or_init(&root)?;
    let store = QueueStore::new(&ws);
    if !store.list_open().is_empty() || store.done_count() > 0 {
        return Err(Error::refused(
            format!("{} already holds work items", ws.root().display()),
            Some("give `millrace demo` an empty or new directory".into()),
        ));
    }
    atomic::write_atomic(&ws.config_path(), DEMO_CONFIG.as_bytes())?;
    atomic::write_atomic(
        &ws.root().join("README.md"),
        b"# Demo project\n\nTo instal it, run make.\n",
    )?;
    let queue = QueueStore::new(&ws);
    queue.enqueue_text(WorkItemKind::Spec, "s-greeting", DEMO_SPEC)?;
    queue.enqueue_text(WorkItemKind::Task, "t-readme-typo", DEMO_TASK)?;
    eprintln!("millrace demo: workspace {}", ws.root().display());
    eprintln!("  seeded spec s-greeting and task t-readme-typo; runner: scripted (simulation)");
    let options = EngineOptions {
        config_path: None,
        mode: None,
        run_mode: "daemon",
    };
    let daemon_options = DaemonOptions {
        max_ticks: Some(200),
        force_poll: false,
        exit_when_idle: true,
    };
    super::progress::follow(|progress| daemon::run(&ws, options, daemon_options, progress))?;
    let queue = QueueStore::new(&ws);
    let done = queue.count(WorkItemKind::Task, Folder::Done);
    let blocked = queue.count(WorkItemKind::Task, Folder::Blocked);
    let (targets, _) = closure::list(&ws);
    let closed: Vec<String> = targets
        .iter()
        .filter(|t| !t.closure_open)
        .map(|t| t.root_spec_id.clone())
        .collect();
    let report = json!({
        "workspace": ws.root().display().to_string(),
        "tasks_done": done,
        "tasks_blocked": blocked,
        "closed_targets": closed,
    });
    ctx.emit(&report, || {
        format!(
            "demo finished: {done} tasks done, {blocked} blocked, closure targets closed: {}\nlook around: millrace --workspace {} status\n",
            if closed.is_empty() { "none".to_string() } else { closed.join(", ") },
            ws.root().display()
        )
    });
    if closed.is_empty() || blocked > 0 {
        return Ok(ExitCode::Failed);
    }
    Ok(ExitCode::Ok)
}
