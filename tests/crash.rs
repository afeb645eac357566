//! The crash suite: kill the real binary at every state transition of a workload (named
//! failpoints and every atomic rename), inject I/O errors, and SIGKILL it at random times;
//! after each crash a plain restart must finish the work with nothing lost, duplicated,
//! stranded or torn, and without a manual command.
//!
//! `MILLRACE_CRASH_FULL=1` runs every (failpoint, hit) pair instead of a deterministic sample;
//! `MILLRACE_KILL_ITERATIONS` sets the number of random kills; `MILLRACE_CRASH_SEED` replays a
//! kill schedule; `MILLRACE_CRASH_JOBS` sets how many trials run at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use millrace::control::actions::Action;
use millrace::control::mailbox;
use millrace::documents;
use millrace::model::WorkItemKind;
use millrace::queue::QueueStore;
use millrace::state::closure;
use millrace::state::events::EventLog;
use millrace::state::snapshot::Snapshot;
use millrace::state::usage::Ledger;
use millrace::workspace::{Folder, Workspace};

const BIN: &str = env!("CARGO_BIN_EXE_millrace");
const RUN_LIMIT: Duration = Duration::from_secs(120);
const FATAL_EXIT: i32 = 70;

const CONFIG: &str = "runtime:\n  default_mode: standard_plain\nrunners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 0\n";

fn task(id: &str, created: &str, depends_on: &[&str]) -> String {
    let deps = if depends_on.is_empty() {
        String::new()
    } else {
        let list: String = depends_on.iter().map(|d| format!("- {d}\n")).collect();
        format!("Depends-On:\n{list}\n")
    };
    format!(
        "# Task {id}\n\nTask-ID: {id}\nTitle: Task {id}\nSummary: Crash-suite task {id}.\nCreated-At: {created}\nCreated-By: crash-suite\n\n{deps}Target-Paths:\n- README.md\n\nAcceptance:\n- {id} is done.\n\nRequired-Checks:\n- true\n\nReferences:\n- README.md\n\nRisk:\n- None.\n"
    )
}

const ROOT_SPEC: &str = "# Root spec\n\nSpec-ID: s-root\nTitle: Root spec\nSummary: A root spec the manager decomposes into two tasks.\nSource-Type: manual\nRoot-Spec-ID: s-root\nCreated-At: 2026-01-05T09:00:00Z\nCreated-By: crash-suite\n\nGoals:\n- Two steps are done.\n\nConstraints:\n- None.\n\nAcceptance:\n- Both steps are done.\n\nReferences:\n- README.md\n";

const IDEA: &str = "# Greet people\n\nA command that greets people by name.\n";

/// One workspace in its own temporary directory.
struct Ws {
    dir: tempfile::TempDir,
}

impl Ws {
    /// The workload: tasks t-a and t-b (t-b depends on t-a, and is older so the dependency
    /// decides the order), root spec s-root, and through the mailbox task t-c and an idea
    /// (which intake turns into a second root spec).
    fn workload() -> Ws {
        let ws = Ws {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let root = Workspace::open_or_init(ws.path()).expect("init workspace");
        std::fs::write(root.config_path(), CONFIG).unwrap();
        std::fs::write(ws.path().join("README.md"), "# Crash suite\n").unwrap();
        let queue = QueueStore::new(&root);
        queue
            .enqueue_text(
                WorkItemKind::Task,
                "t-a",
                &task("t-a", "2026-01-05T08:00:00Z", &[]),
            )
            .unwrap();
        queue
            .enqueue_text(
                WorkItemKind::Task,
                "t-b",
                &task("t-b", "2026-01-05T07:00:00Z", &["t-a"]),
            )
            .unwrap();
        queue
            .enqueue_text(WorkItemKind::Spec, "s-root", ROOT_SPEC)
            .unwrap();
        let t_c = documents::parse(
            WorkItemKind::Task,
            "t-c.md",
            &task("t-c", "2026-01-05T08:30:00Z", &[]),
        )
        .unwrap();
        mailbox::deliver(&root, &Action::AddTask(Box::new(t_c.into())).to_envelope()).unwrap();
        let idea = Action::AddIdea {
            name: "greet.md".into(),
            markdown: IDEA.into(),
        };
        mailbox::deliver(&root, &idea.to_envelope()).unwrap();
        ws
    }

    /// [`Ws::workload`] with the scripted runner following `script` (`stages:` results).
    fn workload_scripted(script: &str) -> Ws {
        let ws = Ws::workload();
        std::fs::write(ws.path().join("script.yaml"), script).unwrap();
        let config = CONFIG.replace(
            "  default_runner: scripted\n",
            "  default_runner: scripted\n  scripted:\n    script: script.yaml\n",
        );
        std::fs::write(ws.workspace().config_path(), config).unwrap();
        ws
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn rt(&self) -> PathBuf {
        self.path().join("millrace-agents")
    }

    fn workspace(&self) -> Workspace {
        Workspace::open_existing(self.path()).expect("workspace")
    }

    fn daemon(&self, env: &[(&str, String)], log: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--workspace").arg(self.path()).args([
            "run",
            "daemon",
            "--until-idle",
            "--max-ticks",
            "1000",
        ]);
        cmd.env_remove("MILLRACE_WORKSPACE")
            .env_remove("MILLRACE_FAILPOINTS")
            .env_remove("MILLRACE_FAILPOINT_COUNT")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(self.log_file(&format!("{log}.out"))))
            .stderr(Stdio::from(self.log_file(&format!("{log}.err"))));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn log_file(&self, name: &str) -> File {
        File::create(self.path().join(name)).expect("log file")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// Run the daemon until it exits (it exits when idle), failing after a deadline.
    fn run(&self, env: &[(&str, String)], log: &str) -> ExitStatus {
        let child = self.daemon(env, log).spawn().expect("spawn millrace");
        wait_child(child, RUN_LIMIT, || self.logs(log))
    }

    fn logs(&self, log: &str) -> String {
        format!(
            "workspace {}\nstdout:\n{}\nstderr:\n{}",
            self.path().display(),
            self.log(&format!("{log}.out")),
            self.log(&format!("{log}.err"))
        )
    }

    /// Restart without failpoints; the work must finish without any manual command.
    fn restart(&self, log: &str) {
        let status = self.run(&[], log);
        assert!(status.success(), "restart failed: {}", self.logs(log));
    }

    /// Run once to idle, counting failpoint hits: the hits of each point.
    fn clean_run_hits(&self) -> BTreeMap<String, u64> {
        let counts = self.path().join("failpoint-counts.txt");
        let status = self.run(
            &[(
                "MILLRACE_FAILPOINT_COUNT",
                counts.to_string_lossy().into_owned(),
            )],
            "clean",
        );
        assert!(status.success(), "clean run failed: {}", self.logs("clean"));
        std::fs::read_to_string(&counts)
            .expect("failpoint counts")
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(name, n)| (name.to_string(), n.parse().expect("count")))
            .collect()
    }

    /// Abort at the failpoint `spec` names, then restart without failpoints; the workspace
    /// back for its checks, or the failure described.
    fn abort_and_restart(self, spec: &str) -> Result<Ws, String> {
        let status = self.run(&[("MILLRACE_FAILPOINTS", spec.to_string())], "crash");
        let aborted = {
            use std::os::unix::process::ExitStatusExt;
            status.signal() == Some(6)
        };
        if !aborted {
            return Err(self.failure(spec, &format!("the run did not abort ({status})")));
        }
        let restarted = self.run(&[], "restart");
        if !restarted.success() {
            return Err(self.failure(spec, &format!("restart failed ({restarted})")));
        }
        Ok(self)
    }

    /// Describe a failed trial, keeping its workspace for a post-mortem.
    fn failure(self, what: &str, error: &str) -> String {
        let logs = format!(
            "{}\nrestart log:\n{}",
            self.logs("crash"),
            self.logs("restart")
        );
        let kept = self.dir.keep();
        format!(
            "{what}: {error}\n{logs}\n(workspace kept at {})",
            kept.display()
        )
    }
}

fn wait_child(mut child: Child, limit: Duration, logs: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("millrace did not exit within {limit:?}\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `cond` holds, polling, failing with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where every work item ended: (kind, id) → folders holding it.
type Placement = BTreeMap<(WorkItemKind, String), Vec<Folder>>;

fn placement(ws: &Workspace) -> Placement {
    let mut out = Placement::new();
    for kind in WorkItemKind::ALL {
        for folder in Folder::ALL {
            let Ok(read) = std::fs::read_dir(ws.folder(kind, folder)) else {
                continue;
            };
            for entry in read.filter_map(|e| e.ok()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".md").filter(|_| !name.starts_with('.')) {
                    out.entry((kind, id.to_string())).or_default().push(folder);
                }
            }
        }
    }
    out
}

/// Every machine-readable file a reader would take (`*.md`, `*.yaml`, not dot files) parses;
/// returns the temp files (`.*.tmp-*`) left behind, which no reader takes.
fn check_files(ws: &Workspace) -> Result<usize, String> {
    let mut temps = 0;
    for entry in walk(ws.rt()) {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            if name.contains(".tmp-") {
                temps += 1;
            }
            continue;
        }
        if name.ends_with(".yaml") {
            let text = std::fs::read_to_string(&entry).map_err(|e| e.to_string())?;
            millrace::yaml::from_str::<serde_json::Value>(&entry, &text)
                .map_err(|e| format!("{}: {e}", entry.display()))?;
        }
    }
    for kind in WorkItemKind::ALL {
        for folder in Folder::ALL {
            let Ok(read) = std::fs::read_dir(ws.folder(kind, folder)) else {
                continue;
            };
            for entry in read.filter_map(|e| e.ok()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".md") && !name.starts_with('.') {
                    let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
                    documents::parse(kind, &name, &text)
                        .map_err(|e| format!("{}: {e}", entry.path().display()))?;
                }
            }
        }
    }
    Ok(temps)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.filter_map(|e| e.ok()) {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// What a finished workload looks like; `blocked_ok` allows items blocked with a reason.
struct Expect<'a> {
    items: &'a BTreeSet<(WorkItemKind, String)>,
    blocked_ok: bool,
}

/// Every persisted stage result is in the usage ledger exactly once.
fn ledger_counts_each_result(root: &Workspace) -> Result<(), String> {
    let results = walk(&root.rt().join("runs"))
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "stage_results")
        })
        // A temp file a kill left mid-write is not a result (no reader takes it).
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .count();
    let ledger = Ledger::load(&root.usage_ledger_path()).map_err(|e| e.to_string())?;
    if ledger.workspace.stages != results as u64 {
        return Err(format!(
            "the usage ledger counts {} stages, the runs hold {results} stage results",
            ledger.workspace.stages
        ));
    }
    Ok(())
}

/// The invariants, after the daemon has exited idle. Returns the temp files left behind.
fn check_invariants(ws: &Ws, expect: &Expect) -> Result<usize, String> {
    let root = ws.workspace();
    let placed = placement(&root);
    let ids: BTreeSet<_> = placed.keys().cloned().collect();
    let lost: Vec<_> = expect.items.difference(&ids).collect();
    let extra: Vec<_> = ids.difference(expect.items).collect();
    if !lost.is_empty() || !extra.is_empty() {
        return Err(format!("items lost {lost:?}, unexpected {extra:?}"));
    }
    for ((kind, id), folders) in &placed {
        match folders.as_slice() {
            [Folder::Done] => {}
            [Folder::Blocked] if expect.blocked_ok => {
                let text = std::fs::read_to_string(root.item_path(*kind, Folder::Blocked, id))
                    .map_err(|e| e.to_string())?;
                if !text.contains("blocked by the runtime:") {
                    return Err(format!("{kind} {id} is blocked without a reason"));
                }
            }
            other => return Err(format!("{kind} {id} ended in {other:?}")),
        }
    }
    let quarantined = walk(&root.quarantine_dir());
    if !quarantined.is_empty() {
        return Err(format!("quarantined: {quarantined:?}"));
    }
    let snapshot = Snapshot::load(&root.snapshot_path()).map_err(|e| e.to_string())?;
    if snapshot.active_stage.is_some() || snapshot.active_work_item_id.is_some() {
        return Err(format!(
            "snapshot still has an active stage {:?} / item {:?}",
            snapshot.active_stage, snapshot.active_work_item_id
        ));
    }
    let queue = QueueStore::new(&root);
    for (kind, id) in expect.items {
        if *kind != WorkItemKind::Task {
            continue;
        }
        let found = queue.find(id);
        let doc = found
            .iter()
            .find_map(|(_, d)| d.clone())
            .ok_or_else(|| format!("task {id} does not parse"))?;
        let want = if id.starts_with("s-root-") {
            Some("s-root".to_string())
        } else if id.starts_with("t-") {
            None
        } else {
            id.rsplit_once("-task-").map(|(spec, _)| spec.to_string())
        };
        if doc.root_spec_id != want {
            return Err(format!(
                "task {id} has Root-Spec-ID {:?}, expected {want:?}",
                doc.root_spec_id
            ));
        }
    }
    let (targets, problems) = closure::list(&root);
    if !problems.is_empty() {
        return Err(format!("closure targets: {problems:?}"));
    }
    let roots: BTreeSet<_> = expect
        .items
        .iter()
        .filter(|(k, _)| *k == WorkItemKind::Spec)
        .map(|(_, id)| id.clone())
        .collect();
    let have: BTreeSet<_> = targets.iter().map(|t| t.root_spec_id.clone()).collect();
    if roots != have {
        return Err(format!("closure targets {have:?}, expected {roots:?}"));
    }
    for t in &targets {
        if t.closure_open && !expect.blocked_ok {
            return Err(format!("closure target {} is still open", t.root_spec_id));
        }
    }
    let events = EventLog::read_all(&root.events_path())?;
    let mut completed: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        if e.event_type == "work_item_completed" {
            let id = e.data["id"].as_str().unwrap_or_default().to_string();
            *completed.entry(id).or_default() += 1;
        }
    }
    if let Some((id, n)) = completed.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{id} completed {n} times"));
    }
    let mut left = walk(&root.mailbox_dir("incoming"));
    left.extend(walk(&root.mailbox_dir("tmp")));
    left.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
    });
    if !left.is_empty() {
        return Err(format!("mailbox commands left unapplied: {left:?}"));
    }
    let failed = walk(&root.mailbox_dir("failed"));
    if !failed.is_empty() && !expect.blocked_ok {
        return Err(format!("mailbox commands archived as failed: {failed:?}"));
    }
    ledger_counts_each_result(&root)?;
    check_files(&root)
}

/// The clean run: the final item set and the hit count of every failpoint.
struct Baseline {
    items: BTreeSet<(WorkItemKind, String)>,
    hits: BTreeMap<String, u64>,
}

fn baseline() -> &'static Baseline {
    static BASELINE: OnceLock<Baseline> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let ws = Ws::workload();
        let hits = ws.clean_run_hits();
        let items: BTreeSet<_> = placement(&ws.workspace()).into_keys().collect();
        let tasks = items
            .iter()
            .filter(|(k, _)| *k == WorkItemKind::Task)
            .count();
        let specs = items
            .iter()
            .filter(|(k, _)| *k == WorkItemKind::Spec)
            .count();
        assert_eq!((tasks, specs), (7, 2), "clean run items: {items:?}");
        let expect = Expect {
            items: &items,
            blocked_ok: false,
        };
        if let Err(e) = check_invariants(&ws, &expect) {
            panic!("clean run breaks an invariant: {e}\n{}", ws.logs("clean"));
        }
        Baseline { items, hits }
    })
}

fn full() -> bool {
    std::env::var("MILLRACE_CRASH_FULL").is_ok_and(|v| v == "1")
}

fn jobs() -> usize {
    std::env::var("MILLRACE_CRASH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Hits 1..=n, or an evenly spread deterministic sample of `max` of them (always the first
/// and the last).
fn sample(n: u64, max: u64) -> Vec<u64> {
    if full() || n <= max {
        return (1..=n).collect();
    }
    let mut out: BTreeSet<u64> = (0..max).map(|i| 1 + i * (n - 1) / (max - 1)).collect();
    out.insert(n);
    out.into_iter().collect()
}

/// Run trials on a few threads; returns the failures.
fn run_trials<T: Sync>(trials: &[T], trial: impl Fn(&T) -> Result<(), String> + Sync) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs() {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = trials.get(i) else { break };
                if let Err(e) = trial(t) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} trials failed:\n{}",
        failures.len(),
        trials.len(),
        failures.join("\n\n")
    );
}

/// Abort at the Nth hit of `point`, restart, check. Returns temp files left.
fn abort_trial(point: &str, n: u64) -> Result<usize, String> {
    let base = baseline();
    let spec = format!("{point}=abort@{n}");
    let ws = Ws::workload().abort_and_restart(&spec)?;
    let expect = Expect {
        items: &base.items,
        blocked_ok: false,
    };
    check_invariants(&ws, &expect).map_err(|e| ws.failure(&spec, &e))
}

#[test]
fn abort_at_every_transition_then_restart_finishes_the_work() {
    let base = baseline();
    let mut trials: Vec<(String, u64)> = Vec::new();
    for (name, &n) in &base.hits {
        let limit = if name == "rename:*" {
            40
        } else if name.contains(':') {
            continue;
        } else {
            4
        };
        for hit in sample(n, limit) {
            trials.push((name.clone(), hit));
        }
    }
    for op in ["fsync:*", "write:*"] {
        let n = base.hits.get(op).copied().unwrap_or(0);
        for hit in sample(n, 8) {
            trials.push((op.to_string(), hit));
        }
    }
    let temps = AtomicUsize::new(0);
    let started = Instant::now();
    run_trials(&trials, |(point, n)| {
        temps.fetch_add(abort_trial(point, *n)?, Ordering::SeqCst);
        Ok(())
    });
    let points: BTreeSet<_> = trials.iter().map(|(p, _)| p.as_str()).collect();
    let hits: BTreeMap<_, _> = base
        .hits
        .iter()
        .filter(|(name, _)| points.contains(name.as_str()))
        .collect();
    eprintln!(
        "crash suite: {} failpoints x {} abort trials in {:?}; {} items each, 0 lost or duplicated; {} temp files left (no reader takes them); hits in a clean run: {hits:?}",
        points.len(),
        trials.len(),
        started.elapsed(),
        base.items.len(),
        temps.load(Ordering::SeqCst),
    );
}

/// An arbiter that first asks for remediation leaves its closure target open, so the
/// restart after an abort between its verdict and the snapshot resumes the arbiter's run:
/// none of that run's stages may be counted twice (the ledger entry of the run outlives the
/// verdict until the snapshot that ends the activation is written).
#[test]
fn an_abort_after_an_arbiter_verdict_that_keeps_the_target_open_counts_each_stage_once() {
    const SCRIPT: &str = "stages:\n  arbiter: [REMEDIATION_NEEDED, ARBITER_COMPLETE]\n";
    let point = "stage_result.before_snapshot";
    let clean = Ws::workload_scripted(SCRIPT);
    let hits = clean.clean_run_hits()[point];
    ledger_counts_each_result(&clean.workspace()).unwrap();
    let arbiter_runs = count_events(&clean, "closure_target_ready");
    assert!(arbiter_runs >= 2, "the arbiter ran {arbiter_runs} times");
    let trials: Vec<u64> = (1..=hits).collect();
    run_trials(&trials, |n| {
        let spec = format!("{point}=abort@{n}");
        let ws = Ws::workload_scripted(SCRIPT).abort_and_restart(&spec)?;
        ledger_counts_each_result(&ws.workspace()).map_err(|e| ws.failure(&spec, &e))
    });
}

/// Run with an injected I/O error, judge the failed run by its exit code and stderr, then
/// restart and check.
fn io_error_trial(
    spec: &str,
    blocked_ok: bool,
    judge: impl Fn(Option<i32>, &str) -> Result<(), String>,
) -> Result<(), String> {
    let base = baseline();
    let ws = Ws::workload();
    let status = ws.run(&[("MILLRACE_FAILPOINTS", spec.to_string())], "crash");
    if let Err(e) = judge(status.code(), &ws.log("crash.err")) {
        return Err(ws.failure(spec, &e));
    }
    let restarted = ws.run(&[], "restart");
    if !restarted.success() {
        return Err(ws.failure(spec, &format!("restart failed ({restarted})")));
    }
    let expect = Expect {
        items: &base.items,
        blocked_ok,
    };
    check_invariants(&ws, &expect)
        .map(|_| ())
        .map_err(|e| ws.failure(spec, &e))
}

#[test]
fn io_errors_stop_the_daemon_naming_the_file_and_a_restart_finishes() {
    let base = baseline();
    let mut trials = Vec::new();
    for (op, action) in [
        ("rename:*", "eio"),
        ("write:*", "enospc"),
        ("rename:*", "enospc"),
        ("write:*", "eio"),
    ] {
        for hit in sample(base.hits[op], 5) {
            trials.push(format!("{op}={action}@{hit}"));
        }
    }
    let exited = AtomicUsize::new(0);
    run_trials(&trials, |spec| {
        io_error_trial(spec, true, |code, stderr| {
            if code == Some(0) {
                return Ok(());
            }
            exited.fetch_add(1, Ordering::SeqCst);
            let errno = if spec.contains("enospc") {
                "No space left on device"
            } else {
                "Input/output error"
            };
            if !stderr.contains("error:") || !stderr.contains(errno) || !stderr.contains('/') {
                return Err(format!(
                    "exit {code:?} without a clear message naming the file"
                ));
            }
            Ok(())
        })
    });
    eprintln!(
        "io errors: {} trials, {} stopped the daemon with a message naming the file, the rest were contained (post-stage recovery); every restart finished the work",
        trials.len(),
        exited.load(Ordering::SeqCst)
    );
}

#[test]
fn a_failed_fsync_stops_the_daemon_with_exit_70() {
    let base = baseline();
    let trials: Vec<String> = sample(base.hits["fsync:*"], 12)
        .into_iter()
        .map(|hit| format!("fsync:*=eio@{hit}"))
        .collect();
    run_trials(&trials, |spec| {
        io_error_trial(spec, false, |code, stderr| {
            if code != Some(FATAL_EXIT) || !stderr.contains("fsync of") {
                return Err(format!(
                    "expected exit {FATAL_EXIT} with an fsync message, got {code:?}"
                ));
            }
            Ok(())
        })
    });
    eprintln!(
        "fsync failures: {} trials, all stopped with exit {FATAL_EXIT}",
        trials.len()
    );
}

#[test]
fn a_torn_last_event_line_is_repaired_by_the_next_start() {
    let base = baseline();
    let ws = Ws::workload();
    let spec = "stage_result.after_persist=abort@3";
    let status = ws.run(&[("MILLRACE_FAILPOINTS", spec.to_string())], "crash");
    assert!(!status.success(), "{}", ws.logs("crash"));
    let log = ws.rt().join("logs/runtime_events.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"data\":{\"id\":\"t-");
    std::fs::write(&log, text).unwrap();
    assert!(EventLog::read_all(&log).is_err());
    ws.restart("restart");
    let expect = Expect {
        items: &base.items,
        blocked_ok: false,
    };
    if let Err(e) = check_invariants(&ws, &expect) {
        panic!("{}", ws.failure(spec, &e));
    }
    let events = EventLog::read_all(&log).unwrap();
    let repaired: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "event_log_repaired")
        .collect();
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].data["fragment"], "{\"data\":{\"id\":\"t-");
}

/// A small seeded generator (xorshift64*), so a failing kill schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The workload with builder and checker run by the fake harness (a real process group
/// that outlives a killed daemon), sleeping so a kill often lands mid-stage.
fn slow_workload() -> Ws {
    let ws = Ws::workload();
    let plan = ws.path().join("fake-plan.txt");
    std::fs::write(
        &plan,
        "builder sleep 1.5 ### BUILDER_COMPLETE\nchecker sleep 0.2 ### CHECKER_PASS\n",
    )
    .unwrap();
    let state = ws.path().join("fake-state");
    std::fs::create_dir_all(&state).unwrap();
    let config = format!(
        "runtime:\n  default_mode: standard_plain\nrunners:\n  default_runner: scripted\n  kill_grace_seconds: 1\n  codex:\n    command: {}\n    args: []\n    env:\n      FAKE_HARNESS_PLAN: {}\n      FAKE_HARNESS_STATE: {}\nstages:\n  builder:\n    runner: codex_cli\n  checker:\n    runner: codex_cli\nwatchers:\n  settle_ms: 0\n",
        fixture("fake-harness").display(),
        plan.display(),
        state.display()
    );
    std::fs::write(ws.rt().join("millrace.yaml"), config).unwrap();
    ws
}

/// Process groups of harnesses recorded in `runner_process.*.yaml` files that are alive now.
fn live_harness_groups(ws: &Ws) -> Vec<i32> {
    let mut out = Vec::new();
    for path in walk(&ws.rt().join("runs")) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with("runner_process.") && name.ends_with(".yaml")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(record) = millrace::yaml::from_str::<serde_json::Value>(&path, &text) else {
            continue;
        };
        if let Some(group) = record["process_group"].as_i64() {
            if group_alive(group as i32) {
                out.push(group as i32);
            }
        }
    }
    out
}

/// Whether any process of the group is alive (zombies waiting for a reaper do not count).
fn group_alive(group: i32) -> bool {
    let Ok(read) = std::fs::read_dir("/proc") else {
        return false;
    };
    read.filter_map(|e| e.ok()).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields.len() > 2 && fields[2].parse() == Ok(group) && !matches!(fields[0], "Z" | "X")
    })
}

/// Poll `cond` until it holds or `limit` passes; returns whether it held.
fn holds_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count_events(ws: &Ws, event_type: &str) -> usize {
    let text =
        std::fs::read_to_string(ws.rt().join("logs/runtime_events.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(&format!("\"event_type\":\"{event_type}\"")))
        .count()
}

#[test]
fn sigkill_at_random_times_loses_nothing_and_leaves_no_harness_behind() {
    let base = baseline();
    let iterations: usize = std::env::var("MILLRACE_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("MILLRACE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("kill loop: seed {seed} (replay with MILLRACE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let ws = slow_workload();
    let mut kills = 0;
    let mut orphans = 0;
    let mut finished = false;
    for i in 0..iterations {
        let log = format!("kill-{i}");
        let mut child = ws.daemon(&[], &log).spawn().expect("spawn millrace");
        if i == 0 {
            // The first kill lands while a harness runs, so the takeover path is always tested.
            wait_for("a running harness", RUN_LIMIT, || {
                !live_harness_groups(&ws).is_empty()
            });
        } else {
            let deadline = Instant::now() + Duration::from_millis(rng.between(50, 2500));
            while Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "daemon failed: {}", ws.logs(&log));
            finished = true;
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        let left = live_harness_groups(&ws);
        let started = count_events(&ws, "runtime_started");
        let log = format!("restart-{i}");
        let mut restart = ws.daemon(&[], &log).spawn().expect("spawn millrace");
        wait_for("the restarted daemon to start", RUN_LIMIT, || {
            count_events(&ws, "runtime_started") > started
                || restart.try_wait().ok().flatten().is_some()
        });
        for group in &left {
            if !holds_within(Duration::from_secs(1), || !group_alive(*group)) {
                let _ = restart.kill();
                let _ = restart.wait();
                let error = format!("harness group {group} outlived the restart");
                panic!("{}", ws.failure(&format!("kill loop seed {seed}"), &error));
            }
            orphans += 1;
        }
        restart.kill().expect("SIGKILL");
        restart.wait().expect("reap");
        kills += 1;
    }
    if !finished {
        ws.restart("final");
    }
    let expect = Expect {
        items: &base.items,
        blocked_ok: false,
    };
    if let Err(e) = check_invariants(&ws, &expect) {
        panic!("{}", ws.failure(&format!("kill loop seed {seed}"), &e));
    }
    assert!(orphans >= 1, "no kill left a harness behind to clean up");
    eprintln!(
        "kill loop: seed {seed}, {kills} SIGKILLs survived, {orphans} orphaned harness groups gone after the restart ({} orphaned_harness_killed events), {} items, 0 lost",
        count_events(&ws, "orphaned_harness_killed"),
        base.items.len()
    );
}

/// The shutdown is on record: no process runs, and the lock says when it was let go.
fn check_released(ws: &Ws) -> Result<(), String> {
    let root = ws.workspace();
    let snapshot = Snapshot::load(&root.snapshot_path()).map_err(|e| e.to_string())?;
    if snapshot.process_running {
        return Err("the snapshot still says process_running: true".into());
    }
    let lock: millrace::control::lock::LockInfo =
        millrace::state::load_yaml(&root.lock_path()).map_err(|e| e.to_string())?;
    if lock.released_at.is_none() {
        return Err("the lock file has no released_at".into());
    }
    Ok(())
}

/// Decision 14's one containment point: an I/O error in intake or the mailbox (here at the
/// first command and the first scan) is logged and retried; the daemon finishes the work.
#[test]
fn a_non_fatal_error_in_intake_or_the_mailbox_does_not_end_the_daemon() {
    for point in ["intake.before_scan", "mailbox.before_apply"] {
        let ws = Ws::workload();
        let spec = format!("{point}=eio@1");
        let status = ws.run(&[("MILLRACE_FAILPOINTS", spec.clone())], "crash");
        assert!(status.success(), "{spec}: {status}\n{}", ws.logs("crash"));
        assert_eq!(count_events(&ws, "runtime_tick_failed"), 1, "{spec}");
        assert_eq!(count_events(&ws, "runtime_fault_cleared"), 1, "{spec}");
        let expect = Expect {
            items: &baseline().items,
            blocked_ok: false,
        };
        check_invariants(&ws, &expect).unwrap_or_else(|e| panic!("{spec}: {e}"));
        check_released(&ws).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}

/// A reload and a stop whose writes fail once are retried: the new config is applied and
/// the daemon then stops, recording its shutdown.
#[test]
fn a_non_fatal_error_in_a_reload_or_a_stop_does_not_end_the_daemon() {
    let ws = Ws::workload();
    let spec = "reload.before_read=eio@1,stop.before_record=eio@1".to_string();
    let mut cmd = Command::new(BIN);
    cmd.arg("--workspace")
        .arg(ws.path())
        .args(["run", "daemon"])
        .env_remove("MILLRACE_WORKSPACE")
        .env("MILLRACE_FAILPOINTS", &spec)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(ws.log_file("crash.out")))
        .stderr(Stdio::from(ws.log_file("crash.err")));
    let child = cmd.spawn().expect("spawn millrace");
    let limit = Duration::from_secs(60);
    wait_for("the workload to finish", limit, || {
        ws.workspace()
            .item_path(WorkItemKind::Task, Folder::Done, "t-c")
            .exists()
            && count_events(&ws, "closure_target_closed") == 2
    });
    let config = ws.workspace().config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let staged = ws.path().join("config.staged");
    std::fs::write(&staged, format!("{text}# edited\n")).unwrap();
    std::fs::rename(&staged, &config).unwrap();
    wait_for("the reload to be retried and applied", limit, || {
        count_events(&ws, "runtime_config_reloaded") == 1
    });
    assert_eq!(
        count_events(&ws, "runtime_tick_failed"),
        1,
        "{}",
        ws.logs("crash")
    );
    mailbox::deliver(&ws.workspace(), &Action::Stop.to_envelope()).unwrap();
    let status = wait_child(child, limit, || ws.logs("crash"));
    assert!(status.success(), "{status}\n{}", ws.logs("crash"));
    assert_eq!(
        count_events(&ws, "runtime_tick_failed"),
        2,
        "{}",
        ws.logs("crash")
    );
    assert_eq!(count_events(&ws, "runtime_tick_stopped"), 1);
    check_released(&ws).unwrap_or_else(|e| panic!("{e}\n{}", ws.logs("crash")));
}

/// Every way the daemon ends records its shutdown: idle under `--until-idle`, `--max-ticks`,
/// a signal, and a failed fsync (exit 70).
#[test]
fn every_exit_path_records_the_shutdown() {
    let base = baseline();
    let fsync = base.hits["fsync:*"] / 2;
    // (case, daemon arguments, failpoints)
    let cases: Vec<(&str, Vec<&str>, Option<String>)> = vec![
        ("until idle", vec!["--until-idle"], None),
        ("max ticks", vec!["--max-ticks", "2"], None),
        (
            "failed fsync",
            vec!["--until-idle"],
            Some(format!("fsync:*=eio@{fsync}")),
        ),
        ("signal", vec![], None),
    ];
    for (name, args, failpoints) in cases {
        let ws = Ws::workload();
        let mut cmd = Command::new(BIN);
        cmd.arg("--workspace")
            .arg(ws.path())
            .args(["run", "daemon"])
            .args(&args)
            .env_remove("MILLRACE_WORKSPACE")
            .env_remove("MILLRACE_FAILPOINTS")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(ws.log_file("crash.out")))
            .stderr(Stdio::from(ws.log_file("crash.err")));
        if let Some(spec) = &failpoints {
            cmd.env("MILLRACE_FAILPOINTS", spec);
        }
        let child = cmd.spawn().expect("spawn millrace");
        if name == "signal" {
            wait_for("the daemon to start", RUN_LIMIT, || {
                count_events(&ws, "runtime_started") == 1
            });
            // SIGTERM, as a service manager sends it.
            let pid = child.id().to_string();
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill");
        }
        let status = wait_child(child, RUN_LIMIT, || ws.logs("crash"));
        let expected = if name == "failed fsync" {
            Some(FATAL_EXIT)
        } else {
            Some(0)
        };
        assert_eq!(status.code(), expected, "{name}\n{}", ws.logs("crash"));
        check_released(&ws).unwrap_or_else(|e| panic!("{name}: {e}\n{}", ws.logs("crash")));
    }
}

/// The lost-update race, made to happen on purpose: a `pause` applied without a daemon is
/// held (failpoint) between reading the state and writing it while a daemon starts. The
/// daemon must wait for the command (it holds the workspace lock) and then start from the
/// paused state; without the lock the command's stale copy would overwrite the daemon's
/// start (`process_running` lost) and the daemon would run unpaused.
#[test]
fn a_pause_held_mid_apply_while_a_daemon_starts_is_not_lost() {
    let ws = Ws::workload();
    let go = ws.path().join("go");
    let mut reached = go.clone().into_os_string();
    reached.push(".reached");
    let pause = Command::new(BIN)
        .arg("--workspace")
        .arg(ws.path())
        .args(["pause"])
        .env_remove("MILLRACE_WORKSPACE")
        .env(
            "MILLRACE_FAILPOINTS",
            format!("control.before_apply=wait:{}", go.display()),
        )
        .stdout(Stdio::from(ws.log_file("pause.out")))
        .stderr(Stdio::from(ws.log_file("pause.err")))
        .spawn()
        .expect("spawn pause");
    wait_for("the pause to read the state", RUN_LIMIT, || {
        Path::new(&reached).exists()
    });
    let daemon = ws.daemon(&[], "crash").spawn().expect("spawn the daemon");
    wait_for("the daemon to reach the lock", RUN_LIMIT, || {
        count_events(&ws, "runtime_daemon_lock_busy") == 1
            || count_events(&ws, "runtime_started") == 1
    });
    std::fs::write(&go, b"").unwrap();
    let status = wait_child(pause, RUN_LIMIT, || ws.logs("pause"));
    assert!(status.success(), "{}", ws.logs("pause"));
    // Paused from its first tick: the daemon exits idle (`--until-idle`) without a stage.
    let status = wait_child(daemon, RUN_LIMIT, || ws.logs("crash"));
    assert!(status.success(), "{}", ws.logs("crash"));
    assert_eq!(
        count_events(&ws, "stage_started"),
        0,
        "{}",
        ws.logs("crash")
    );
    let snapshot = Snapshot::load(&ws.workspace().snapshot_path()).unwrap();
    assert!(snapshot.paused, "the pause was lost");
}

// ---------------------------------------------------------------------------------------------
// Parallel lanes: the same guarantees with three tasks at once, plus integration exactly once.

const LANE_TASKS: [&str; 6] = ["l1", "l2", "l3", "l4", "l5", "l6"];

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| format!("git {args:?}: {e} (is git installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A git repository with six tasks for three lanes (l5 depends on l1); each task's builder
/// writes `work/<task>.txt` in its worktree, taking `sleep` seconds per stage. l2 and l3 also
/// add their id at the end of `shared.txt`, so the second to land conflicts and its fixer
/// redoes the change on top of the base.
fn lanes_workload(sleep: &str) -> Ws {
    let ws = Ws {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let dir = ws.path();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.name", "crash-suite"][..],
        &["config", "user.email", "crash@localhost"][..],
    ] {
        git(dir, args).unwrap();
    }
    std::fs::write(
        dir.join(".gitignore"),
        "millrace-agents/\nplans/\n*.out\n*.err\n*.txt\n!work/*.txt\n!shared.txt\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "# Lanes\n").unwrap();
    std::fs::write(dir.join("shared.txt"), "base\n").unwrap();
    let plans = dir.join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    // Both written to be run again after a crash with the same outcome.
    let add = "mkdir -p work && echo \"$TASK\" > \"work/$TASK.txt\" && \
               { grep -qx \"$TASK\" shared.txt || echo \"$TASK\" >> shared.txt; }\n";
    for id in ["l2", "l3"] {
        std::fs::write(plans.join(format!("{id}.builder")), add).unwrap();
        std::fs::write(
            plans.join(format!("{id}.fixer")),
            format!("git reset -q --hard \"$BASE\" && {} && git add -A && git commit -qm \"$TASK: resolved\"\n", add.trim_end()),
        )
        .unwrap();
    }
    git(dir, &["add", "-A"]).unwrap();
    git(dir, &["commit", "-qm", "start"]).unwrap();
    let root = Workspace::open_or_init(dir).expect("init workspace");
    let config = format!(
        "runners:\n  kill_grace_seconds: 1\n  codex:\n    command: {}\n    args: []\n    env:\n      LANE_SLEEP: \"{sleep}\"\n      LANE_PLAN_DIR: {}\nwatchers:\n  settle_ms: 0\nexecution:\n  lanes: 3\n",
        fixture("lane-harness").display(),
        plans.display()
    );
    std::fs::write(root.config_path(), config).unwrap();
    let queue = QueueStore::new(&root);
    for (i, id) in LANE_TASKS.iter().enumerate() {
        let deps: &[&str] = if *id == "l5" { &["l1"] } else { &[] };
        let created = format!("2026-01-05T08:0{i}:00Z");
        queue
            .enqueue_text(WorkItemKind::Task, id, &task(id, &created, deps))
            .unwrap();
    }
    ws
}

/// Every task done once, landed once (one commit on main touches its file, its events at
/// most once), no lane, stray
/// worktree or branch left, linear history, every file whole.
fn check_lanes(ws: &Ws) -> Result<usize, String> {
    let root = ws.workspace();
    let placed = placement(&root);
    for id in LANE_TASKS {
        let folders = placed.get(&(WorkItemKind::Task, id.to_string()));
        if folders.map(Vec::as_slice) != Some(&[Folder::Done][..]) {
            return Err(format!("task {id} ended in {folders:?}"));
        }
    }
    if placed.len() != LANE_TASKS.len() {
        return Err(format!("unexpected items: {:?}", placed.keys()));
    }
    let snapshot = Snapshot::load(&root.snapshot_path()).map_err(|e| e.to_string())?;
    if !snapshot.lanes.is_empty() || snapshot.active_stage.is_some() {
        return Err(format!(
            "the snapshot still runs something: {:?}",
            snapshot.lanes
        ));
    }
    let events = EventLog::read_all(&root.events_path())?;
    for kind in ["work_item_completed", "work_item_integrated"] {
        for id in LANE_TASKS {
            let n = events
                .iter()
                .filter(|e| {
                    let field = |k: &str| e.data.get(k).and_then(|v| v.as_str()) == Some(id);
                    e.event_type == kind && (field("id") || field("work_item_id"))
                })
                .count();
            // A crash between the move to done/ and the events loses the lines, never the
            // work (as with one lane); landing exactly once is checked on git below.
            if n > 1 {
                return Err(format!("{kind} for {id} logged {n} times"));
            }
        }
    }
    let dir = ws.path();
    for id in LANE_TASKS {
        let file = format!("work/{id}.txt");
        let commits = git(dir, &["log", "--format=%H", "main", "--", &file])?;
        if commits.lines().count() != 1 {
            return Err(format!(
                "{file} changed by {} commits on main",
                commits.lines().count()
            ));
        }
        let text = std::fs::read_to_string(dir.join(&file)).map_err(|e| format!("{file}: {e}"))?;
        if text != format!("{id}\n") {
            return Err(format!("{file} holds {text:?}"));
        }
        // A landing a restart finished names a commit holding the task's work (a crash
        // between the move to done/ and its history line may lose the line, as above).
        let doc = root.item_path(WorkItemKind::Task, Folder::Done, id);
        let doc = std::fs::read_to_string(&doc).map_err(|e| format!("{}: {e}", doc.display()))?;
        if doc.contains("changed nothing") {
            return Err(format!("task {id} recorded as changing nothing:\n{doc}"));
        }
        let landed = doc
            .split("landed on main at ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(commit) = landed {
            git(dir, &["cat-file", "-e", &format!("{commit}:{file}")])
                .map_err(|e| format!("task {id} recorded as landed at {commit}: {e}"))?;
        }
    }
    let shared = std::fs::read_to_string(dir.join("shared.txt")).map_err(|e| e.to_string())?;
    let mut lines: Vec<&str> = shared.lines().collect();
    lines.sort_unstable();
    if lines != ["base", "l2", "l3"] {
        return Err(format!(
            "shared.txt holds {shared:?}: a change lost or landed twice"
        ));
    }
    if !git(dir, &["rev-list", "--merges", "main"])?.is_empty() {
        return Err("merge commits on main".into());
    }
    let trees = git(dir, &["worktree", "list", "--porcelain"])?;
    if trees.lines().filter(|l| l.starts_with("worktree ")).count() != 1 {
        return Err(format!("stray worktrees:\n{trees}"));
    }
    let branches = git(dir, &["branch", "--format=%(refname:short)"])?;
    if branches.trim() != "main" {
        return Err(format!("stray branches:\n{branches}"));
    }
    ledger_counts_each_result(&root)?;
    let leftover = walk(&root.rt().join("worktrees"));
    if !leftover.is_empty() {
        return Err(format!("files left in the worktrees folder: {leftover:?}"));
    }
    check_files(&root)
}

#[test]
fn abort_mid_integration_and_mid_stage_with_three_lanes_then_restart_lands_each_task_once() {
    let mut trials: Vec<(&str, u64)> = Vec::new();
    for point in [
        "integration.after_commit",
        "integration.after_rebase",
        "integration.after_fast_forward",
        "integration.after_done",
        "complete.after_move",
        "stage_result.before_snapshot",
        "stage_result.after_usage",
    ] {
        // Every lane's stage for the ledger's count (recovered per lane at the next start).
        let hits: &[u64] = if point == "stage_result.after_usage" {
            &[1, 2, 3, 4, 5, 6]
        } else {
            &[1, 4]
        };
        for n in hits {
            trials.push((point, *n));
        }
    }
    run_trials(&trials, |(point, n)| {
        let ws = lanes_workload("0");
        let spec = format!("{point}=abort@{n}");
        let status = ws.run(&[("MILLRACE_FAILPOINTS", spec.clone())], "crash");
        let aborted = {
            use std::os::unix::process::ExitStatusExt;
            status.signal() == Some(6)
        };
        if !aborted {
            return Err(ws.failure(&spec, &format!("the run did not abort ({status})")));
        }
        let restarted = ws.run(&[], "restart");
        if !restarted.success() {
            return Err(ws.failure(&spec, &format!("restart failed ({restarted})")));
        }
        check_lanes(&ws)
            .map(|_| ())
            .map_err(|e| ws.failure(&spec, &e))
    });
}

#[test]
fn sigkill_at_random_times_with_three_lanes_loses_nothing_and_lands_each_task_once() {
    let iterations: usize = std::env::var("MILLRACE_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("MILLRACE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("lanes kill loop: seed {seed} (replay with MILLRACE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let ws = lanes_workload("0.4");
    let mut orphans = 0;
    let mut finished = false;
    for i in 0..iterations {
        let log = format!("kill-{i}");
        let mut child = ws.daemon(&[], &log).spawn().expect("spawn millrace");
        if i == 0 {
            wait_for("three running harnesses", RUN_LIMIT, || {
                live_harness_groups(&ws).len() >= 3
            });
        } else {
            let deadline = Instant::now() + Duration::from_millis(rng.between(50, 1500));
            while Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "daemon failed: {}", ws.logs(&log));
            finished = true;
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let left = live_harness_groups(&ws);
        let started = count_events(&ws, "runtime_started");
        let log = format!("restart-{i}");
        let mut restart = ws.daemon(&[], &log).spawn().expect("spawn millrace");
        wait_for("the restarted daemon to start", RUN_LIMIT, || {
            count_events(&ws, "runtime_started") > started
                || restart.try_wait().ok().flatten().is_some()
        });
        for group in &left {
            if !holds_within(Duration::from_secs(2), || !group_alive(*group)) {
                let _ = restart.kill();
                let _ = restart.wait();
                let error = format!("harness group {group} outlived the restart");
                panic!(
                    "{}",
                    ws.failure(&format!("lanes kill loop seed {seed}"), &error)
                );
            }
            orphans += 1;
        }
        let pause = Duration::from_millis(rng.between(0, 800));
        let deadline = Instant::now() + pause;
        while Instant::now() < deadline && restart.try_wait().expect("wait").is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if restart.try_wait().expect("wait").is_some() {
            finished = true;
            break;
        }
        restart.kill().expect("SIGKILL");
        restart.wait().expect("reap");
    }
    if !finished {
        ws.restart("final");
    }
    if let Err(e) = check_lanes(&ws) {
        panic!(
            "{}",
            ws.failure(&format!("lanes kill loop seed {seed}"), &e)
        );
    }
    let alive = live_harness_groups(&ws);
    assert!(
        alive.is_empty(),
        "harness groups alive at the end: {alive:?}"
    );
    assert!(
        orphans >= 3,
        "the first kill left three harnesses to clean up"
    );
    eprintln!("lanes kill loop: seed {seed}, {orphans} orphaned harness groups gone, 6 tasks landed once each");
}
