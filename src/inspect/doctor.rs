//! `doctor`: every check of spec 10 §8 that applies to this implementation, plus the
//! situations that leave work stuck without an error anywhere (a dependency that can never be
//! met, a closure waiting on a blocked item, a backlog with no daemon).
//!
//! Errors mean the workspace is inconsistent or some work can never proceed as it stands;
//! warnings mean something needs a look but nothing is broken. Work left in `active/` by a
//! stopped or crashed daemon is a warning: the next daemon start resumes it (decision 2). Every finding carries a fix:
//! the command to run or the file to edit. Nothing here writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::closure;
use super::lint::{self, LintLevel};
use super::{daemon, DaemonView};
use crate::config::Config;
use crate::model::{Plane, WorkItemKind};
use crate::queue::QueueStore;
use crate::runners::harness::FailureKind;
use crate::state::counters::Counters;
use crate::state::events::EventLog;
use crate::state::markers;
use crate::state::snapshot::Snapshot;
use crate::workspace::{Folder, Workspace, DIRECTORIES};

/// Error findings make `doctor` exit non-zero; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    Warning,
}

/// One problem, where it is, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub code: &'static str,
    /// Workspace-relative where possible; absent for workspace-wide findings.
    pub path: Option<String>,
    pub message: String,
    /// The next step: a `millrace ...` command or the file to edit.
    pub fix: String,
}

/// The whole `doctor` answer, also its `--json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workspace: String,
    pub ok: bool,
    pub errors: usize,
    pub warnings: usize,
    pub daemon: DaemonView,
    pub findings: Vec<Finding>,
    /// The workspace's size by part (`doctor --sizes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<PartSize>>,
}

/// The disk use of one part of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartSize {
    pub part: String,
    /// Workspace-relative.
    pub path: String,
    pub bytes: u64,
    pub files: u64,
}

/// What each part of the runtime root takes on disk, biggest first (what retention bounds,
/// and what else grows). One walk of the whole root.
pub fn sizes(ws: &Workspace) -> Vec<PartSize> {
    let rt = ws.rt();
    let events = ws.events_path();
    let logs = events.parent().unwrap_or(rt).to_path_buf();
    let mut parts: Vec<(String, std::path::PathBuf)> = vec![
        ("event log (live)".into(), events.clone()),
        (
            "event log (rolled segments)".into(),
            logs.join(crate::state::events::SEGMENTS_DIR),
        ),
        ("runs".into(), ws.runs_dir()),
        ("state".into(), ws.state_dir()),
    ];
    for kind in crate::model::WorkItemKind::ALL {
        for folder in Folder::ALL {
            let dir = ws.folder(kind, folder);
            let name = dir.strip_prefix(rt).unwrap_or(&dir).display().to_string();
            parts.push((name, dir));
        }
    }
    let mut totals: Vec<PartSize> = parts
        .iter()
        .map(|(part, path)| PartSize {
            part: part.clone(),
            path: ws.rel(path),
            bytes: 0,
            files: 0,
        })
        .collect();
    let mut other = PartSize {
        part: "everything else".into(),
        path: ws.rel(rt),
        bytes: 0,
        files: 0,
    };
    for entry in walkdir::WalkDir::new(rt).into_iter().filter_map(|e| e.ok()) {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let slot = parts
            .iter()
            .position(|(_, path)| entry.path().starts_with(path))
            .map_or(&mut other, |i| &mut totals[i]);
        slot.bytes += meta.len();
        slot.files += 1;
    }
    totals.push(other);
    totals.retain(|p| p.files > 0);
    totals.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.part.cmp(&b.part)));
    totals
}

/// How many of the newest runs a plain `doctor` checks for planted links.
const RECENT_RUNS: usize = 50;

struct Checks<'a> {
    ws: &'a Workspace,
    store: QueueStore,
    findings: Vec<Finding>,
    /// Also read every finished document and every run folder (`doctor --full`); otherwise
    /// the checks look only where the runtime works, so they cost the same at any history.
    full: bool,
}

impl Checks<'_> {
    fn rel(&self, path: &Path) -> String {
        self.ws.rel(path)
    }

    fn add(
        &mut self,
        level: Level,
        code: &'static str,
        path: Option<&Path>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let path = path.map(|p| self.rel(p));
        self.findings.push(Finding {
            level,
            code,
            path,
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Files in the folders people drop work into that millrace will never take: a task
    /// saved as `.MD`, `.markdown` or `.txt`, a document one folder too high (`tasks/x.md`),
    /// a mailbox envelope beside `incoming/` instead of in it. Ignored silently, they look
    /// like work that is waiting.
    fn stray_files(&mut self) {
        let mut waiting: Vec<(String, &'static str)> = Vec::new();
        for kind in ["tasks", "specs", "incidents"] {
            for folder in ["queue", "incoming", "active", "blocked"] {
                waiting.push((format!("{kind}/{folder}"), "md"));
            }
            waiting.push((kind.to_string(), "top"));
        }
        waiting.push(("ideas/inbox".into(), "md"));
        waiting.push(("state/mailbox".into(), "mailbox"));
        for (dir, rule) in waiting {
            let path = self.ws.rt().join(&dir);
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            // Regular files, and anything else named like a document (a folder or FIFO
            // `t-1.md`: never read, never quarantined). Links are the runtime's to refuse.
            let mut names: Vec<(String, bool)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let kind = e.file_type().ok()?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    let odd = !kind.is_file() && !kind.is_symlink() && rule == "md";
                    (kind.is_file() || (odd && name.ends_with(".md"))).then_some((name, odd))
                })
                .filter(|(n, _)| !n.starts_with('.'))
                .collect();
            names.sort();
            for (name, odd) in names {
                let fix = match rule {
                    "md" if odd => "move it away: only regular files are read".to_string(),
                    "md" if name.ends_with(".md") || name.ends_with(".requeue.jsonl") => continue,
                    "md" => format!("rename it to <id>.md in {dir}/ (only *.md files are read)"),
                    "top" => format!("move it into {dir}/queue/ (documents are read from the queue folders only)"),
                    _ => "move it into state/mailbox/incoming/ (only envelopes there are read)".into(),
                };
                let file = path.join(&name);
                self.add(
                    Level::Warning,
                    "stray_file",
                    Some(&file),
                    format!("{dir}/{name} is never read by millrace"),
                    fix,
                );
            }
        }
    }

    fn layout(&mut self) {
        // A missing folder is fine: git keeps no empty folders, so a clone lacks them, and
        // every command that writes recreates them (read-only ones read them as empty).
        // Something else in a folder's place is not.
        for dir in DIRECTORIES {
            let path = self.ws.rt().join(dir);
            if path.symlink_metadata().is_ok() && !path.is_dir() {
                self.add(
                    Level::Error,
                    "not_a_directory",
                    Some(&path),
                    "a workspace folder's name is taken by a file",
                    "move the file away, then run `millrace init` to recreate the folder",
                );
            }
        }
        let config = self.ws.config_path();
        if let Ok(meta) = std::fs::metadata(&config) {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o022 != 0 {
                self.add(
                    Level::Warning,
                    "config_writable_by_others",
                    Some(&config),
                    format!(
                        "the config decides which command runs and with which permission \
                         level, and other users may write it (mode {:o})",
                        mode & 0o777
                    ),
                    format!("chmod go-w {}", config.display()),
                );
            }
        }
        // Without --full: the active run and the newest ones, where an agent could have
        // planted a link lately.
        let mut recent: Vec<String> = crate::inspect::runs::newest(self.ws, RECENT_RUNS);
        recent.extend(
            crate::state::snapshot::Snapshot::load(&self.ws.snapshot_path())
                .ok()
                .and_then(|s| s.active_run_id),
        );
        let runs = (!self.full).then_some(recent.as_slice());
        for link in self.ws.links_in_layout(runs) {
            self.add(
                Level::Error,
                "symlink_in_runtime",
                Some(&link),
                "a symbolic link where millrace keeps its own file or folder: millrace refuses to write through it (it could lead outside the workspace)",
                "replace the link with a real file or folder (`rm` the link, then `millrace init`)",
            );
        }
        let rt = self.ws.rt();
        for path in [
            rt.join("outline.md"),
            rt.join("historylog.md"),
            self.ws.status_path(Plane::Execution),
            self.ws.status_path(Plane::Planning),
            self.ws.snapshot_path(),
            self.ws.counters_path(),
        ] {
            if !path.is_file() {
                self.add(
                    Level::Error,
                    "missing_file",
                    Some(&path),
                    "required workspace file is missing",
                    "run `millrace init` (it creates what is missing and changes nothing else)",
                );
            }
        }
    }

    fn state_files(&mut self) {
        // A folder (or FIFO, or device) where millrace keeps one of its files stops every
        // command that writes it with a bare "Is a directory". Links are `symlink_in_runtime`.
        for path in [
            self.ws.config_path(),
            self.ws.lock_path(),
            self.ws.snapshot_path(),
            self.ws.counters_path(),
            self.ws.usage_ledger_path(),
            self.ws.compiled_plan_path(),
            self.ws.events_path(),
            self.ws.status_path(Plane::Execution),
            self.ws.status_path(Plane::Planning),
        ] {
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if !meta.is_file() && !meta.is_symlink() {
                let what = if meta.is_dir() {
                    "a folder"
                } else {
                    "not a regular file"
                };
                self.add(
                    Level::Error,
                    "not_a_file",
                    Some(&path),
                    format!("a file millrace keeps is {what} here"),
                    format!(
                        "move {} away; millrace writes a fresh one (or run `millrace init`)",
                        self.rel(&path)
                    ),
                );
            }
        }
        for (plane, code) in [
            (Plane::Execution, "execution_status_invalid"),
            (Plane::Planning, "planning_status_invalid"),
        ] {
            let path = self.ws.status_path(plane);
            if !path.is_file() {
                continue;
            }
            let checked = crate::workspace::atomic::read_regular_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| markers::normalize(plane, &text));
            if let Err(message) = checked {
                self.add(
                    Level::Error,
                    code,
                    Some(&path),
                    message,
                    "run `millrace control clear-stale-state` to reset the markers to `### IDLE`",
                );
            }
        }
        let snapshot = self.ws.snapshot_path();
        if snapshot.is_file() {
            if let Err(e) = Snapshot::load(&snapshot) {
                self.add(
                    Level::Error,
                    "snapshot_invalid",
                    Some(&snapshot),
                    e.to_string(),
                    format!(
                        "restore {} from version control, or delete it and run `millrace init` to write a fresh one",
                        self.rel(&snapshot)
                    ),
                );
            }
        }
        let counters = self.ws.counters_path();
        if counters.is_file() {
            if let Err(e) = Counters::load(&counters) {
                self.add(
                    Level::Error,
                    "recovery_counters_invalid",
                    Some(&counters),
                    e.to_string(),
                    format!(
                        "restore {} from version control, or delete it and run `millrace init` to write a fresh one",
                        self.rel(&counters)
                    ),
                );
            }
        }
        let ledger = self.ws.usage_ledger_path();
        if ledger.is_file() {
            if let Err(e) = crate::state::usage::Ledger::load(&ledger) {
                self.add(
                    Level::Error,
                    "usage_ledger_invalid",
                    Some(&ledger),
                    e.to_string(),
                    format!(
                        "restore {} from version control; else the next start sets it aside \
                         and counts the runs' stage results again (runs retention compressed \
                         or pruned are not counted)",
                        self.rel(&ledger)
                    ),
                );
            }
        }
        // The newest 256 KiB (thousands of events): where appends (and so torn lines) happen; doctor stays as fast
        // with a log of years as with a new one.
        if let Err(e) = EventLog::check_tail(&self.ws.events_path(), 256 << 10) {
            self.add(
                Level::Warning,
                "event_log_unreadable",
                Some(&self.ws.events_path()),
                e,
                "the log is append-only history; remove or repair the named line if tools need to read it",
            );
        }
    }

    fn config_and_compile(&mut self) {
        let path = self.ws.config_path();
        let config = match Config::load(&path, false) {
            Ok(c) => c,
            Err(e) => {
                self.add(
                    Level::Error,
                    "config_invalid",
                    Some(&path),
                    e.to_string(),
                    format!(
                        "edit {}, then run `millrace config validate`",
                        self.rel(&path)
                    ),
                );
                return;
            }
        };
        if let Some(problem) = crate::runners::scripted::script_problem(self.ws, &config) {
            self.add(
                Level::Error,
                "scripted_script_invalid",
                Some(&path),
                problem,
                "fix the script runners.scripted.script names, then run `millrace config validate`",
            );
        }
        for problem in crate::runners::preflight::check(&config) {
            let (code, fix) = if problem.failure_class == FailureKind::NotInstalled {
                (
                    "runner_executable_missing",
                    format!(
                        "install it, or point {} at it in {}; to try millrace without a harness set runners.default_runner: scripted",
                        problem.config_key,
                        self.rel(&path)
                    ),
                )
            } else {
                ("runner_preflight_failed", problem.fix.clone())
            };
            self.add(
                Level::Warning,
                code,
                Some(&path),
                format!(
                    "runner {} ({}): {}",
                    problem.runner,
                    problem.failure_class.as_str(),
                    problem.message
                ),
                fix,
            );
        }
        let summary = crate::inspect::usage::summary(self.ws, &config);
        if let Some(over) = summary.over {
            self.add(
                Level::Warning,
                "usage_budget_exhausted",
                Some(&path),
                format!("{} (frees up at {})", over.reason, over.frees_at),
                format!(
                    "wait, or raise usage.{} in {} (`millrace usage` shows the figures)",
                    over.budget,
                    self.rel(&path)
                ),
            );
        }
        let outcome = crate::compiler::compile_in_memory(self.ws, &config, None);
        for error in &outcome.diagnostics.errors {
            self.add(
                Level::Error,
                "compile_failed",
                None,
                format!("mode {}: {error}", outcome.mode_id),
                "fix the mode or loop asset it names, then run `millrace compile validate`",
            );
        }
    }

    fn assets(&mut self) {
        for f in lint::lint_assets(self.ws.rt()) {
            let level = match f.level {
                LintLevel::Policy => Level::Warning,
                _ => Level::Error,
            };
            let rel = self.rel(&f.path);
            let shipped = f
                .path
                .strip_prefix(self.ws.rt())
                .ok()
                .and_then(|r| crate::workspace::embedded_asset(&r.to_string_lossy()))
                .is_some();
            let fix = if shipped {
                format!(
                    "edit {rel}, or delete it and run `millrace init` to restore the shipped copy"
                )
            } else {
                format!("edit {rel} (see millrace-agents/skills/README.md for the asset rules)")
            };
            self.add(
                level,
                f.level.code(),
                Some(&f.path),
                format!("{}: {}", f.asset_id, f.reason),
                fix,
            );
        }
    }

    fn lock_and_active(&mut self, daemon: &DaemonView) {
        let mut active = Vec::new();
        for kind in WorkItemKind::ALL {
            for entry in self.store.entries(kind, Folder::Active) {
                active.push((kind, entry.stem.clone(), entry.path.clone()));
            }
        }
        if daemon.running {
            return;
        }
        // A lock whose owner recorded `released_at` was let go cleanly (a stop, a signal, the
        // end of `run once`): only a crashed owner leaves a stale lock.
        if let (true, Some(pid), false, None) = (
            daemon.lock_file_present,
            daemon.owner_pid,
            active.is_empty(),
            &daemon.released_at,
        ) {
            self.add(
                Level::Warning,
                "runtime_ownership_lock_stale",
                Some(&self.ws.lock_path()),
                format!(
                    "the lock names pid {pid} on {} (since {}) but no process holds it, and work is still active",
                    daemon.owner_hostname.as_deref().unwrap_or("unknown host"),
                    daemon.since.as_deref().unwrap_or("unknown time"),
                ),
                "run `millrace run daemon` (startup requeues stranded work), or `millrace control clear-stale-state`",
            );
        }
        for (kind, id, path) in active {
            self.add(
                Level::Warning,
                "active_without_owner",
                Some(&path),
                format!("{kind} {id} is active but no daemon is running it; it waits for the next daemon start"),
                format!(
                    "run `millrace run daemon` (startup resumes or requeues it), or `millrace control retry-active --id {id} --reason \"...\"` to requeue it"
                ),
            );
        }
    }

    /// Parallel lanes: a git repository when the config asks for lanes; each lane's task in
    /// `active/`, its worktree there; worktrees no lane owns; landings that wait.
    fn lanes(&mut self, daemon: &DaemonView) {
        let config_path = self.ws.config_path();
        let Ok(config) = Config::load(&config_path, false) else {
            return;
        };
        let lanes = Snapshot::load(&self.ws.snapshot_path())
            .map(|s| s.lanes)
            .unwrap_or_default();
        let worktree_dir = self.ws.root().join(&config.execution.worktree_dir);
        if config.execution.lanes <= 1 && lanes.is_empty() {
            // Worktrees lanes left behind (lanes turned down to 1 after a `clear-stale-state`,
            // say): no daemon with one lane cleans them, and they may hold uncommitted work.
            let left = std::fs::read_dir(&worktree_dir).is_ok_and(|mut d| d.next().is_some());
            if let (true, Ok(repo)) = (left, crate::git::Repo::open(self.ws.root())) {
                self.stray_worktrees(
                    &repo,
                    &worktree_dir,
                    &lanes,
                    daemon,
                    "commit what is left there to its branch (`git -C <worktree> add -A && git -C <worktree> commit`) and `git worktree remove <worktree>`; a daemon with execution.lanes above 1 does both at its start",
                );
            }
            return;
        }
        let repo = match crate::git::Repo::open(self.ws.root()) {
            Ok(repo) => Some(repo),
            Err(e) => {
                self.add(
                    Level::Error,
                    "lanes_without_git",
                    Some(&config_path),
                    format!(
                        "execution.lanes is {} but {e}: each lane's task runs in a git worktree",
                        config.execution.lanes
                    ),
                    "make the workspace a git repository with a first commit, or set execution.lanes: 1",
                );
                None
            }
        };
        for lane in &lanes {
            let item = self
                .ws
                .item_path(WorkItemKind::Task, Folder::Active, &lane.work_item_id);
            if !item.is_file() {
                self.add(
                    Level::Warning,
                    "lane_without_active_task",
                    Some(&self.ws.snapshot_path()),
                    format!(
                        "lane {} names task {}, which is not in tasks/active/",
                        lane.lane, lane.work_item_id
                    ),
                    "start the daemon: reconciliation drops the lane (the task's work stays on its branch)",
                );
            }
            let tree = self.ws.root().join(&lane.worktree);
            if !daemon.running && !tree.join(".git").is_file() && !lane.integrating {
                self.add(
                    Level::Warning,
                    "lane_worktree_missing",
                    Some(&tree),
                    format!(
                        "lane {}'s worktree for task {} is gone",
                        lane.lane, lane.work_item_id
                    ),
                    format!(
                        "restore the folder if you can (what the agent left uncommitted was \
                         only there); else start the daemon: it recreates the worktree from \
                         branch {}, and blocks the task (lane_worktree_lost) when that branch \
                         holds none of its work",
                        lane.branch
                    ),
                );
            }
            if let Some(reason) = &lane.integration_wait {
                self.add(
                    Level::Warning,
                    "integration_waiting",
                    Some(&tree),
                    format!("task {} waits to land: {reason}", lane.work_item_id),
                    "commit or stash the changes in the main working tree; the branch lands at the daemon's next look",
                );
            }
        }
        let Some(repo) = repo else {
            return;
        };
        self.stray_worktrees(
            &repo,
            &worktree_dir,
            &lanes,
            daemon,
            "start the daemon: it commits what is left there to the branch and removes the worktree",
        );
    }

    /// Git worktrees in the lanes' folder that no lane owns, with `fix`.
    fn stray_worktrees(
        &mut self,
        repo: &crate::git::Repo,
        dir: &Path,
        lanes: &[crate::state::snapshot::LaneSnapshot],
        daemon: &DaemonView,
        fix: &str,
    ) {
        let Ok(trees) = repo.worktrees() else {
            return;
        };
        let dir = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
        for tree in trees {
            let owned = lanes.iter().any(|l| {
                let path = self.ws.root().join(&l.worktree);
                std::fs::canonicalize(&path).unwrap_or(path) == tree.path
            });
            if tree.path.parent() != Some(dir.as_path()) || owned || daemon.running {
                continue;
            }
            if let Some(id) = crate::engine::lanes::kept_for_blocked(self.ws, &tree.path) {
                self.add(
                    Level::Warning,
                    "lane_worktree_kept",
                    Some(&tree.path),
                    format!("kept as it was for blocked task {id} (its history says why)"),
                    format!(
                        "look at it and set it right on branch millrace/{id}, then `millrace \
                         requeue {id} --reason \"...\"` to run the task on from there; or `git \
                         worktree remove --force <worktree>` to drop what it holds"
                    ),
                );
            } else {
                self.add(
                    Level::Warning,
                    "lane_worktree_stray",
                    Some(&tree.path),
                    "a lane worktree no lane owns (left by a crash or a requeue)",
                    fix.to_string(),
                );
            }
        }
    }

    fn documents(&mut self) -> BTreeMap<(WorkItemKind, String), Vec<(Folder, PathBuf)>> {
        let mut seen: BTreeMap<(WorkItemKind, String), Vec<(Folder, PathBuf)>> = BTreeMap::new();
        for kind in WorkItemKind::ALL {
            for folder in Folder::ALL {
                if folder == Folder::Done && !self.full {
                    continue;
                }
                let label = self.store.folder_label(kind, folder);
                for entry in self.store.entries(kind, folder) {
                    seen.entry((kind, entry.stem.clone()))
                        .or_default()
                        .push((folder, entry.path.clone()));
                    let level = match folder {
                        Folder::Queue | Folder::Active => Level::Error,
                        Folder::Done | Folder::Blocked => Level::Warning,
                    };
                    let problem = match &entry.parsed {
                        Err(e) => Some(e.to_string()),
                        Ok(doc) if doc.id != entry.stem => Some(format!(
                            "file name {}.md does not match its id {}",
                            entry.stem, doc.id
                        )),
                        Ok(_) => None,
                    };
                    if let Some(message) = problem {
                        self.add(
                            level,
                            "queue_artifact_invalid",
                            Some(&entry.path),
                            format!("{label}: {message}"),
                            format!(
                                "fix {} (`millrace queue show {}` shows the error), or move it out of {label}",
                                self.rel(&entry.path),
                                entry.stem
                            ),
                        );
                    }
                }
            }
        }
        if !self.full {
            // The finished folders are not listed: an open item's id is looked up there.
            for ((kind, id), places) in seen.iter_mut() {
                let done = self.ws.folder(*kind, Folder::Done).join(format!("{id}.md"));
                if crate::queue::is_md_file(&done) {
                    places.push((Folder::Done, done));
                }
            }
        }
        for ((kind, id), places) in &seen {
            if places.len() < 2 {
                continue;
            }
            let paths: Vec<String> = places.iter().map(|(_, p)| self.rel(p)).collect();
            self.add(
                Level::Error,
                "duplicate_work_item_id",
                Some(&places[0].1),
                format!("{kind} {id} is in {} folders: {}", places.len(), paths.join(", ")),
                format!(
                    "keep one copy: delete or rename the others (`millrace queue show {id}` lists them)"
                ),
            );
        }
        seen
    }

    fn lineage_and_dependencies(
        &mut self,
        seen: &BTreeMap<(WorkItemKind, String), Vec<(Folder, PathBuf)>>,
    ) {
        let folder_of = |kind: WorkItemKind, id: &str| -> Option<Folder> {
            seen.get(&(kind, id.to_string()))
                .and_then(|places| places.first().map(|(f, _)| *f))
                .or_else(|| {
                    let done = self.ws.folder(kind, Folder::Done).join(format!("{id}.md"));
                    crate::queue::is_md_file(&done).then_some(Folder::Done)
                })
        };
        let spec_exists = |id: &str| {
            folder_of(WorkItemKind::Spec, id).is_some()
                || self.ws.contract_root_spec_path(id).is_file()
        };
        for kind in [WorkItemKind::Task, WorkItemKind::Incident] {
            for folder in [Folder::Queue, Folder::Active, Folder::Blocked] {
                for entry in self.store.entries(kind, folder) {
                    let Ok(doc) = &entry.parsed else { continue };
                    let mut named: BTreeMap<String, Vec<&str>> = BTreeMap::new();
                    if let Some(root) = doc.root_spec_id.as_deref() {
                        named
                            .entry(root.to_string())
                            .or_default()
                            .push("Root-Spec-ID");
                    }
                    if let Some(spec) = &doc.spec_id {
                        named.entry(spec.clone()).or_default().push("Spec-ID");
                    }
                    for (spec, fields) in named {
                        if !spec_exists(&spec) {
                            let fields = fields.join(" and ");
                            self.add(
                                Level::Warning,
                                "lineage_dangling",
                                Some(&entry.path),
                                format!(
                                    "{kind} {} has {fields} {spec}, but no spec {spec} exists in any folder, so its lineage can never close",
                                    entry.stem
                                ),
                                format!(
                                    "fix {fields} in {}, or add the spec with `millrace add-spec <path>`",
                                    self.rel(&entry.path)
                                ),
                            );
                        }
                    }
                    if folder != Folder::Queue {
                        continue;
                    }
                    for dep in &doc.depends_on {
                        match folder_of(WorkItemKind::Task, dep) {
                            None => self.add(
                                Level::Error,
                                "dependency_missing",
                                Some(&entry.path),
                                format!(
                                    "task {} depends on task {dep}, which exists in no folder, so it can never be claimed",
                                    entry.stem
                                ),
                                format!(
                                    "remove {dep} from Depends-On in {}, or add it with `millrace add-task <path>`",
                                    self.rel(&entry.path)
                                ),
                            ),
                            Some(Folder::Blocked) => self.add(
                                Level::Error,
                                "dependency_blocked",
                                Some(&entry.path),
                                format!(
                                    "task {} depends on task {dep}, which is blocked, so it cannot be claimed",
                                    entry.stem
                                ),
                                format!(
                                    "see why with `millrace queue show {dep}`; once fixed move it back to tasks/queue/, or drop it from Depends-On in {}",
                                    self.rel(&entry.path)
                                ),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        self.dependency_cycles();
    }

    /// Queued tasks that wait on each other in a cycle (or on such a task): none of them can
    /// ever be claimed. Found by peeling off every task whose queued dependencies can all
    /// finish (Kahn's algorithm); what remains is stuck.
    fn dependency_cycles(&mut self) {
        let queued: BTreeMap<String, (PathBuf, Vec<String>)> = self
            .store
            .entries(WorkItemKind::Task, Folder::Queue)
            .into_iter()
            .filter_map(|entry| {
                let doc = entry.parsed.as_ref().ok()?;
                Some((
                    entry.stem.clone(),
                    (entry.path.clone(), doc.depends_on.clone()),
                ))
            })
            .collect();
        let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, (_, deps)) in &queued {
            let deps: Vec<&str> = deps
                .iter()
                .map(String::as_str)
                .filter(|d| queued.contains_key(*d))
                .collect();
            waiting.insert(id, deps.len());
            for dep in deps {
                dependents.entry(dep).or_default().push(id);
            }
        }
        let mut free: Vec<&str> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        while let Some(id) = free.pop() {
            waiting.remove(id);
            for next in dependents.get(id).cloned().unwrap_or_default() {
                if let Some(n) = waiting.get_mut(next) {
                    *n -= 1;
                    if *n == 0 {
                        free.push(next);
                    }
                }
            }
        }
        let stuck: Vec<String> = waiting.keys().map(|id| id.to_string()).collect();
        for id in &stuck {
            let path = queued[id].0.clone();
            self.add(
                Level::Error,
                "dependency_cycle",
                Some(&path),
                format!(
                    "task {id} waits on a cycle of Depends-On among queued tasks ({}), so none of them can ever be claimed",
                    stuck.join(", ")
                ),
                format!("break the cycle: remove an entry from Depends-On in {}", self.rel(&path)),
            );
        }
    }

    fn quarantine_and_mailbox(&mut self) {
        for (dir, code, what, fix) in [
            (
                self.ws.quarantine_dir(),
                "quarantined_file",
                "quarantined",
                "fix the document, queue it again (`millrace add-task|add-spec <path>`), then delete",
            ),
            (
                self.ws.mailbox_dir("failed"),
                "mailbox_command_failed",
                "mailbox command refused",
                "re-issue it (`millrace control <command>`, or rewrite the envelope into state/mailbox/incoming/), then delete",
            ),
        ] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for path in files {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Folders and links too: an agent's folder in a document's place, or a
                // dangling link, is set aside as it is.
                if name.starts_with('.')
                    || name.ends_with(".error.yaml")
                    || name.ends_with(".result.yaml")
                {
                    continue;
                }
                let record = reason_of(&dir.join(format!("{name}.error.yaml")));
                let reason = record.as_ref().and_then(|r| r.get("error")?.as_str());
                let source = record.as_ref().and_then(|r| r.get("source")?.as_str());
                let rel = self.rel(&path);
                let fix = match source {
                    Some(s) if dir == self.ws.quarantine_dir() => requeue_fix(s),
                    _ => fix,
                };
                self.add(
                    Level::Warning,
                    code,
                    Some(&path),
                    format!("{what}: {}", reason.map_or("no reason recorded", str::trim)),
                    format!("{fix} {rel} and its .error.yaml"),
                );
            }
        }
    }

    fn backlog_and_closure(&mut self, daemon: &DaemonView) {
        let (exec, plan) = self.store.depths();
        if !daemon.running && exec + plan > 0 {
            self.add(
                Level::Warning,
                "daemon_stopped_with_backlog",
                None,
                format!("{exec} execution and {plan} planning items are queued but no daemon is running"),
                "run `millrace run daemon` (or `millrace watch`)",
            );
        }
        let (targets, problems) = closure::open_targets(self.ws);
        for problem in problems {
            self.add(
                Level::Error,
                "closure_target_invalid",
                None,
                problem,
                "restore the named file under millrace-agents/arbiter/targets/ from version control",
            );
        }
        for target in targets {
            let path = self.ws.root().join(&target.path);
            for item in target.blocked_items() {
                let kind = item.kind.map(|k| k.as_str()).unwrap_or("item");
                self.add(
                    Level::Warning,
                    "closure_waits_on_blocked",
                    Some(&path),
                    format!(
                        "closure of {} waits on blocked {kind} {} ({})",
                        target.root_spec_id, item.id, item.folder
                    ),
                    format!(
                        "run `millrace queue show {}`; once its cause is fixed move it back to its queue folder",
                        item.id
                    ),
                );
            }
            if let Some(reason) = &target.closure_held {
                self.add(
                    Level::Warning,
                    "closure_held",
                    Some(&path),
                    format!("closure of {} is held: {reason}", target.root_spec_id),
                    format!(
                        "read the latest report, then reset arbiter_runs and closure_held in {}",
                        target.path
                    ),
                );
            }
        }
    }
}

/// What `quarantine/` holds under the name of item `id` (its latest copy when it was set
/// aside more than once), with the recorded reason: `queue show` points there for an id
/// no folder holds.
pub fn quarantined(ws: &Workspace, id: &str) -> Option<(PathBuf, Option<String>)> {
    let dir = ws.quarantine_dir();
    let name = format!("{id}.md");
    let mut copies: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let n = match file.strip_prefix(&name)? {
                "" => 0,
                rest => rest.strip_prefix('.')?.parse().ok()?,
            };
            Some((n, e.path()))
        })
        .collect();
    copies.sort();
    let (_, path) = copies.pop()?;
    let file = path.file_name()?.to_string_lossy().into_owned();
    let reason = reason_of(&dir.join(format!("{file}.error.yaml")))
        .and_then(|r| Some(r.get("error")?.as_str()?.trim().to_string()));
    Some((path, reason))
}

/// A `.error.yaml` record (`error`, `source`, ...), when it reads.
fn reason_of(path: &Path) -> Option<serde_json::Value> {
    let text = crate::workspace::atomic::read_regular_string(path).ok()?;
    crate::yaml::from_str(path, &text).ok()
}

/// How a quarantined file goes back where it came from (`source`, workspace-relative).
fn requeue_fix(source: &str) -> &'static str {
    let under = |dir: &str| source.contains(&format!("millrace-agents/{dir}/"));
    if under("ideas") {
        "fix or rename the idea, add it again (`millrace add-idea <path>`), then delete"
    } else if under("tasks") {
        "fix the task, queue it again (`millrace add-task <path>`), then delete"
    } else if under("specs") {
        "fix the spec, queue it again (`millrace add-spec <path>`), then delete"
    } else if under("state") {
        "nothing to queue again: the runtime started this file afresh; keep it for reference or delete"
    } else {
        "look at it, put what it holds back by hand if it matters, then delete"
    }
}

/// Queued tasks that can never be claimed: the `dependency_missing`, `dependency_blocked`
/// and `dependency_cycle` findings alone. `run daemon --until-idle` names them when it
/// stops with work still queued, where "no work left" alone would hide them.
pub fn never_claimable(ws: &Workspace) -> Vec<Finding> {
    let mut checks = Checks {
        ws,
        store: QueueStore::new(ws),
        findings: Vec::new(),
        full: false,
    };
    let seen = checks.documents();
    checks.lineage_and_dependencies(&seen);
    checks
        .findings
        .retain(|f| f.code.starts_with("dependency_"));
    checks.findings
}

/// Check the workspace without writing anything; `full` also reads every finished
/// document and run folder.
pub fn diagnose(ws: &Workspace, full: bool) -> Report {
    let daemon = daemon(ws);
    let mut checks = Checks {
        ws,
        store: QueueStore::new(ws),
        findings: Vec::new(),
        full,
    };
    checks.layout();
    checks.stray_files();
    checks.state_files();
    checks.config_and_compile();
    checks.assets();
    checks.lock_and_active(&daemon);
    checks.lanes(&daemon);
    let seen = checks.documents();
    checks.lineage_and_dependencies(&seen);
    checks.quarantine_and_mailbox();
    checks.backlog_and_closure(&daemon);
    let mut findings = checks.findings;
    findings.sort_by(|a, b| {
        (a.level, &a.path, a.code, &a.message).cmp(&(b.level, &b.path, b.code, &b.message))
    });
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    Report {
        workspace: ws.root().display().to_string(),
        ok: errors == 0,
        errors,
        warnings: findings.len() - errors,
        daemon,
        findings,
        sizes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_workspace_is_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let report = diagnose(&ws, false);
        assert!(report.ok, "{:#?}", report.findings);
        let other: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.code != "runner_executable_missing")
            .collect();
        assert!(other.is_empty(), "{other:#?}");
    }

    #[test]
    fn a_file_in_a_folders_place_and_a_bad_marker_are_errors_with_fixes() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        std::fs::remove_dir(ws.rt().join("arbiter/rubrics")).unwrap();
        std::fs::write(ws.rt().join("arbiter/rubrics"), "x").unwrap();
        std::fs::remove_dir(ws.rt().join("tasks/blocked")).unwrap();
        std::fs::write(ws.status_path(Plane::Execution), "### NONSENSE\n").unwrap();
        let report = diagnose(&ws, false);
        let codes: Vec<&str> = report.findings.iter().map(|f| f.code).collect();
        assert!(codes.contains(&"not_a_directory"), "{codes:?}");
        let others = codes.iter().filter(|c| **c != "runner_executable_missing");
        assert_eq!(
            others.count(),
            2,
            "a missing folder is no finding: {codes:?}"
        );
        assert!(codes.contains(&"execution_status_invalid"), "{codes:?}");
        assert!(report.findings.iter().all(|f| f.fix.contains("millrace")));
        assert!(!report.ok);
    }
}
