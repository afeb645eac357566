//! The workspace on disk: where every file lives, bootstrap, and the embedded templates.
//!
//! Paths are computed here and nowhere else, so the layout can be read in one place.

mod assets;
pub mod atomic;
pub mod compress;
pub mod failpoint;
pub mod stamp;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::{Plane, WorkItemKind};
use atomic::IoError;

pub use assets::{
    deploy_assets, embedded_asset, AssetReport, COUNTERS_TEMPLATE, DEFAULT_CONFIG_YAML,
    SNAPSHOT_TEMPLATE,
};

/// Name of the runtime root inside the workspace.
pub const RUNTIME_DIR: &str = "millrace-agents";

/// A queue folder of one kind of work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Folder {
    /// `tasks/queue`, `specs/queue`, `incidents/incoming`.
    Queue,
    Active,
    /// `done` for tasks and specs, `resolved` for incidents.
    Done,
    Blocked,
}

impl Folder {
    /// Every folder, in the order items move through them.
    pub const ALL: [Folder; 4] = [Folder::Queue, Folder::Active, Folder::Done, Folder::Blocked];

    /// The folder's name on disk for `kind`.
    pub fn dir_name(self, kind: WorkItemKind) -> &'static str {
        match (self, kind) {
            (Folder::Queue, WorkItemKind::Incident) => "incoming",
            (Folder::Queue, _) => "queue",
            (Folder::Active, _) => "active",
            (Folder::Done, WorkItemKind::Incident) => "resolved",
            (Folder::Done, _) => "done",
            (Folder::Blocked, _) => "blocked",
        }
    }
}

/// A resolved workspace: `root` is the operator's project, `rt` its `millrace-agents/`.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    rt: PathBuf,
}

/// Errors opening a workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no millrace workspace at {} (run `millrace init`)", .0.display())]
    Missing(PathBuf),
    #[error("workspace path {} is a file, not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The folders that only grow with history (finished items, archived commands, runs,
/// arbiter reports): a start never walks them, so it costs the same after 100 000 stages.
/// Nothing writes a temp file into them except an archived command's result (a crash there
/// leaves a dot-file no reader takes) and the runs, of which only the active one matters.
pub const HISTORY_DIRECTORIES: &[&str] = &[
    "state/mailbox/processed",
    "runs",
    "tasks/done",
    "specs/done",
    "incidents/resolved",
    "arbiter/reports",
];

/// The directories bootstrap creates, relative to the runtime root, in creation order.
pub const DIRECTORIES: &[&str] = &[
    "",
    "state",
    "state/mailbox",
    "state/mailbox/tmp",
    "state/mailbox/incoming",
    "state/mailbox/processed",
    "state/mailbox/failed",
    "runs",
    "tasks",
    "tasks/queue",
    "tasks/active",
    "tasks/done",
    "tasks/blocked",
    "specs",
    "specs/queue",
    "specs/active",
    "specs/done",
    "specs/blocked",
    "incidents",
    "incidents/incoming",
    "incidents/active",
    "incidents/resolved",
    "incidents/blocked",
    "ideas",
    "ideas/tmp",
    "ideas/inbox",
    "quarantine",
    "arbiter",
    "arbiter/contracts",
    "arbiter/contracts/ideas",
    "arbiter/contracts/root-specs",
    "arbiter/targets",
    "arbiter/rubrics",
    "arbiter/verdicts",
    "arbiter/reports",
    "loops",
    "loops/execution",
    "loops/planning",
    "modes",
    "logs",
    "entrypoints",
    "skills",
];

/// `.gitignore` for the runtime root: volatile and private files stay out of history.
const GITIGNORE: &str = "# Written by millrace init: volatile or private runtime files.\n\
state/runtime_daemon.lock.yaml\n\
state/mailbox/tmp/\n\
state/cache/\n\
ideas/tmp/\n\
.*.tmp-*\n\
runs/*/runner_stdout.*.txt\n\
runs/*/runner_stderr.*.txt\n\
runs/*/runner_events.*.jsonl\n\
runs/*/runner_prompt.*.md\n\
runs/*/runner_invocation.*.yaml\n\
runs/*/runner_process.*.yaml\n\
runs/*/runner_*.gz\n";

/// The machine-owned files (besides the [`DIRECTORIES`]) where a symbolic link would let
/// millrace's writes leave the workspace, relative to the runtime root.
const OWN_FILES: &[&str] = &[
    "state/runtime_daemon.lock.yaml",
    "state/runtime_snapshot.yaml",
    "state/recovery_counters.yaml",
    "state/execution_status.md",
    "state/planning_status.md",
    "state/compiled_plan.yaml",
    "state/cache",
    "logs/runtime_events.jsonl",
];

/// What bootstrap created, for `init` to report.
#[derive(Debug, Default, Clone)]
pub struct BootstrapReport {
    pub created_dirs: Vec<String>,
    pub created_files: Vec<String>,
    pub assets: AssetReport,
}

impl Workspace {
    fn resolve(path: &Path) -> Result<PathBuf, WorkspaceError> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| IoError::path("read current directory", ".", e))?
                .join(path)
        };
        if abs.is_file() {
            return Err(WorkspaceError::NotADirectory(abs));
        }
        Ok(abs.canonicalize().unwrap_or(abs))
    }

    /// Open an existing workspace without creating anything (read-only commands).
    pub fn open_existing(path: &Path) -> Result<Workspace, WorkspaceError> {
        let root = Self::resolve(path)?;
        let rt = root.join(RUNTIME_DIR);
        if !rt.join("state").is_dir() {
            return Err(WorkspaceError::Missing(root));
        }
        Ok(Workspace { root, rt })
    }

    /// Open a workspace, bootstrapping it first (mutating commands).
    pub fn open_or_init(path: &Path) -> Result<Workspace, WorkspaceError> {
        let ws = Self::at(path)?;
        ws.bootstrap()?;
        Ok(ws)
    }

    /// The workspace at `path`, resolved but not touched (`init` bootstraps it itself, to
    /// report what it created).
    pub fn at(path: &Path) -> Result<Workspace, WorkspaceError> {
        let root = Self::resolve(path)?;
        Ok(Workspace {
            rt: root.join(RUNTIME_DIR),
            root,
        })
    }

    /// Symbolic links where the runtime keeps its own folders and files (the agent can plant
    /// them). Every write refuses to follow one; `doctor` and the daemon name them. Of the run
    /// folders, `doctor --full` checks every one (`runs: None`); a start and a plain `doctor`
    /// only the ones named (the active run, the newest), so they do not grow with history.
    pub fn links_in_layout(&self, runs: Option<&[String]>) -> Vec<PathBuf> {
        let is_link =
            |p: &PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        let mut links: Vec<PathBuf> = DIRECTORIES
            .iter()
            .chain(OWN_FILES)
            .map(|rel| self.rt.join(rel))
            .filter(is_link)
            .collect();
        let run_dirs: Vec<PathBuf> = match runs {
            None => std::fs::read_dir(self.runs_dir())
                .map(|read| read.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default(),
            Some(named) => named.iter().map(|run| self.run_dir(run)).collect(),
        };
        for run in run_dirs {
            links.extend(
                [run.clone(), run.join("stage_results")]
                    .into_iter()
                    .filter(is_link),
            );
        }
        links.sort();
        links.dedup();
        links
    }

    /// Create missing directories, default files and assets. Never overwrites anything.
    pub fn bootstrap(&self) -> Result<BootstrapReport, WorkspaceError> {
        let mut report = BootstrapReport::default();
        for dir in DIRECTORIES {
            let path = self.rt.join(dir);
            if !path.is_dir() {
                atomic::create_dir_all(&path)?;
                report.created_dirs.push(self.display_rel(&path));
            }
        }
        let defaults: [(&str, String); 8] = [
            ("outline.md", String::new()),
            ("historylog.md", String::new()),
            ("millrace.yaml", DEFAULT_CONFIG_YAML.to_string()),
            (".gitignore", GITIGNORE.to_string()),
            ("state/execution_status.md", "### IDLE\n".to_string()),
            ("state/planning_status.md", "### IDLE\n".to_string()),
            (
                "state/runtime_snapshot.yaml",
                SNAPSHOT_TEMPLATE.replace("{updated_at}", &crate::time::now_string()),
            ),
            (
                "state/recovery_counters.yaml",
                COUNTERS_TEMPLATE.to_string(),
            ),
        ];
        for (rel, contents) in defaults {
            let path = self.rt.join(rel);
            if path.exists() {
                continue;
            }
            match atomic::create_atomic(&path, contents.as_bytes()) {
                Ok(()) => report.created_files.push(self.display_rel(&path)),
                Err(IoError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        report.assets = deploy_assets(&self.rt)?;
        Ok(report)
    }

    /// The operator's project directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/millrace-agents`.
    pub fn rt(&self) -> &Path {
        &self.rt
    }

    /// A path relative to the workspace root, for state files, events and messages.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn display_rel(&self, path: &Path) -> String {
        let rel = self.rel(path);
        if rel.is_empty() {
            ".".into()
        } else {
            rel
        }
    }

    /// `millrace.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.rt.join("millrace.yaml")
    }
    /// `state/`.
    pub fn state_dir(&self) -> PathBuf {
        self.rt.join("state")
    }
    /// `state/cache/<name>`: derived data (indexes, retention progress). Deleting any of it
    /// loses nothing: it is rebuilt from the folders.
    pub fn cache_path(&self, name: &str) -> PathBuf {
        self.rt.join("state/cache").join(name)
    }
    /// `state/runtime_snapshot.yaml`.
    pub fn snapshot_path(&self) -> PathBuf {
        self.rt.join("state/runtime_snapshot.yaml")
    }
    /// `state/usage_ledger.yaml`.
    pub fn usage_ledger_path(&self) -> PathBuf {
        self.rt.join("state/usage_ledger.yaml")
    }
    /// `state/recovery_counters.yaml`.
    pub fn counters_path(&self) -> PathBuf {
        self.rt.join("state/recovery_counters.yaml")
    }
    /// `state/execution_status.md` or `state/planning_status.md`.
    pub fn status_path(&self, plane: Plane) -> PathBuf {
        match plane {
            Plane::Execution => self.rt.join("state/execution_status.md"),
            Plane::Planning => self.rt.join("state/planning_status.md"),
        }
    }
    /// `state/compiled_plan.yaml`.
    pub fn compiled_plan_path(&self) -> PathBuf {
        self.rt.join("state/compiled_plan.yaml")
    }
    /// `state/compile_diagnostics.yaml`.
    pub fn compile_diagnostics_path(&self) -> PathBuf {
        self.rt.join("state/compile_diagnostics.yaml")
    }
    /// `state/runtime_daemon.lock.yaml`.
    pub fn lock_path(&self) -> PathBuf {
        self.rt.join("state/runtime_daemon.lock.yaml")
    }
    /// `state/runtime_error_context.yaml`.
    pub fn error_context_path(&self) -> PathBuf {
        self.rt.join("state/runtime_error_context.yaml")
    }
    /// `state/mailbox/<sub>` (`tmp`, `incoming`, `processed`, `failed`).
    pub fn mailbox_dir(&self, sub: &str) -> PathBuf {
        self.rt.join("state/mailbox").join(sub)
    }
    /// `logs/runtime_events.jsonl`.
    pub fn events_path(&self) -> PathBuf {
        self.rt.join("logs/runtime_events.jsonl")
    }
    /// `runs/`.
    pub fn runs_dir(&self) -> PathBuf {
        self.rt.join("runs")
    }
    /// `runs/<run_id>/`.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.rt.join("runs").join(run_id)
    }
    /// `ideas/inbox/`.
    pub fn ideas_inbox(&self) -> PathBuf {
        self.rt.join("ideas/inbox")
    }
    /// `ideas/tmp/`, where ideas are written before being renamed in.
    pub fn ideas_tmp(&self) -> PathBuf {
        self.rt.join("ideas/tmp")
    }
    /// `quarantine/`.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.rt.join("quarantine")
    }
    /// `arbiter/`.
    pub fn arbiter_dir(&self) -> PathBuf {
        self.rt.join("arbiter")
    }

    /// `arbiter/targets/`: one closure target file per root spec.
    pub fn closure_targets_dir(&self) -> PathBuf {
        self.arbiter_dir().join("targets")
    }

    /// The closure target of root spec `root`.
    pub fn closure_target_path(&self, root: &str) -> PathBuf {
        self.closure_targets_dir().join(format!("{root}.yaml"))
    }

    /// `arbiter/contracts/`: the root specs and seed ideas as they were when a target opened.
    pub fn arbiter_contracts_dir(&self) -> PathBuf {
        self.arbiter_dir().join("contracts")
    }

    /// The copy of root spec `root` its closure target is judged against.
    pub fn contract_root_spec_path(&self, root: &str) -> PathBuf {
        self.arbiter_contracts_dir()
            .join("root-specs")
            .join(format!("{root}.md"))
    }

    /// The copy of seed idea `idea_id` a closure target is judged against.
    pub fn contract_idea_path(&self, idea_id: &str) -> PathBuf {
        self.arbiter_contracts_dir()
            .join("ideas")
            .join(format!("{idea_id}.md"))
    }

    /// The project's catalog of runtime error codes, handed to repair stages when present.
    pub fn error_catalog_path(&self) -> PathBuf {
        self.root
            .join("docs/runtime/millrace-runtime-error-codes.md")
    }

    /// The rubric the arbiter writes for root spec `root`.
    pub fn arbiter_rubric_path(&self, root: &str) -> PathBuf {
        self.arbiter_dir()
            .join("rubrics")
            .join(format!("{root}.md"))
    }

    /// The verdict the arbiter writes for root spec `root`.
    pub fn arbiter_verdict_path(&self, root: &str) -> PathBuf {
        self.arbiter_dir()
            .join("verdicts")
            .join(format!("{root}.yaml"))
    }

    /// Where the report of arbiter run `run_id` is kept.
    pub fn arbiter_report_path(&self, run_id: &str) -> PathBuf {
        self.arbiter_dir()
            .join("reports")
            .join(format!("{run_id}.md"))
    }

    /// `tasks/queue`, `specs/active`, `incidents/resolved`, ...
    pub fn folder(&self, kind: WorkItemKind, folder: Folder) -> PathBuf {
        let base = match kind {
            WorkItemKind::Task => "tasks",
            WorkItemKind::Spec => "specs",
            WorkItemKind::Incident => "incidents",
        };
        self.rt.join(base).join(folder.dir_name(kind))
    }

    /// The document path of `id` in a folder.
    pub fn item_path(&self, kind: WorkItemKind, folder: Folder, id: &str) -> PathBuf {
        self.folder(kind, folder).join(format!("{id}.md"))
    }
}

/// How long until a file modified less than `window` ago has held still for the whole window
/// (decision 16's settle window: a hand-written file may still be being written). `None` for
/// a settled or missing file.
pub fn settles_in(path: &Path, window: Duration) -> Option<Duration> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
        .and_then(|age| window.checked_sub(age))
        .filter(|left| !left.is_zero())
}

/// The settle window of one process, remembering the moment the youngest file it found
/// unsettled will have settled: the daemon looks again then, so a young file that turns out
/// broken reaches `failed/` or `quarantine/` right after its window, not at the next rescan.
#[derive(Debug, Default)]
pub struct Settle {
    window: Duration,
    next: std::cell::Cell<Option<Instant>>,
}

impl Settle {
    /// A settle window of `window`.
    pub fn new(window: Duration) -> Settle {
        Settle {
            window,
            next: std::cell::Cell::new(None),
        }
    }

    /// The window itself.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether `path` is still within its window; if so, remember when it settles.
    pub fn young(&self, path: &Path) -> bool {
        let Some(left) = settles_in(path, self.window) else {
            return false;
        };
        let at = Instant::now() + left;
        self.next
            .set(Some(self.next.get().map_or(at, |next| next.min(at))));
        true
    }

    /// When the youngest file seen since the last call settles (and forget it).
    pub fn take_next(&self) -> Option<Instant> {
        self.next.take()
    }
}

/// Remove temp files (`.<name>.tmp-<random>`) older than `older_than` that a crash left
/// between writing and renaming, in the folders state is written to (not the history
/// folders; of the runs, the active one). Younger ones may belong to a command writing right
/// now. Returns how many were removed.
pub fn sweep_stale_temps(
    ws: &Workspace,
    active_run: Option<&str>,
    older_than: std::time::Duration,
) -> usize {
    let now = std::time::SystemTime::now();
    let mut dirs: Vec<PathBuf> = DIRECTORIES
        .iter()
        .filter(|rel| !HISTORY_DIRECTORIES.contains(rel))
        .map(|rel| ws.rt.join(rel))
        .collect();
    dirs.push(ws.state_dir().join("cache"));
    if let Some(run) = active_run {
        let run = ws.run_dir(run);
        dirs.push(run.join("stage_results"));
        dirs.push(run);
    }
    let stale = |entry: &std::fs::DirEntry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        name.starts_with('.')
            && name.contains(".tmp-")
            && entry.file_type().is_ok_and(|t| t.is_file())
            && entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= older_than)
    };
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|read| read.filter_map(|e| e.ok()))
        .filter(|e| stale(e))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_is_idempotent_and_keeps_operator_edits() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        std::fs::write(ws.config_path(), "runtime:\n  run_style: once\n").unwrap();
        let second = ws.bootstrap().unwrap();
        assert!(second.created_dirs.is_empty());
        assert!(second.created_files.is_empty());
        assert_eq!(
            std::fs::read_to_string(ws.config_path()).unwrap(),
            "runtime:\n  run_style: once\n"
        );
    }

    #[test]
    fn sweep_removes_only_old_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let old = ws.state_dir().join(".runtime_snapshot.yaml.tmp-abc");
        let young = ws.state_dir().join(".runtime_snapshot.yaml.tmp-def");
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&young, "y").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        assert_eq!(
            sweep_stale_temps(&ws, None, std::time::Duration::from_secs(600)),
            1
        );
        assert!(!old.exists());
        assert!(young.exists());
    }

    #[test]
    fn open_existing_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let err = Workspace::open_existing(dir.path()).unwrap_err();
        assert!(err.to_string().contains("run `millrace init`"));
        assert!(!dir.path().join(RUNTIME_DIR).exists());
    }
}
