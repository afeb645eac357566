//! The test workspace builder: a temporary workspace, the real binary, and waits on
//! conditions with a deadline (never a bare sleep).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_millrace");

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

pub struct TestWs {
    dir: tempfile::TempDir,
}

impl TestWs {
    /// A workspace created with `millrace init`.
    pub fn new() -> TestWs {
        let ws = TestWs::bare();
        ws.ok(&["init"]);
        ws
    }

    /// An empty directory, no workspace.
    pub fn bare() -> TestWs {
        TestWs {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rt(&self) -> PathBuf {
        self.dir.path().join("millrace-agents")
    }

    /// The binary, pointed at this workspace, with a clean environment.
    pub fn cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--workspace").arg(self.path());
        cmd.env_remove("MILLRACE_WORKSPACE");
        cmd.env_remove("RUST_LOG");
        cmd.env("NO_COLOR", "1");
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run millrace")
    }

    /// Run and require exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "millrace {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require a specific exit code; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "millrace {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("valid JSON on stdout")
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path().join(rel).exists()
    }

    /// Names of the files in a folder (relative to the workspace root), sorted.
    pub fn ls(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join(rel))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Point the Codex runner at the scripted fake harness, answering from `plan`.
    pub fn use_fake_harness(&self, plan: &str) {
        let plan_path = self.write("fake-plan.txt", plan);
        let state = self.path().join("fake-state");
        std::fs::create_dir_all(&state).unwrap();
        let config = format!(
            "runners:\n  kill_grace_seconds: 1\n  codex:\n    command: {}\n    args: []\n    env:\n      FAKE_HARNESS_PLAN: {}\n      FAKE_HARNESS_STATE: {}\nwatchers:\n  settle_ms: 0\n",
            fixture("fake-harness").display(),
            plan_path.display(),
            state.display()
        );
        self.write("millrace-agents/millrace.yaml", &config);
    }

    /// Every event's type, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every event, rolled segments included (a run across UTC midnight rolls the log). A
    /// daemon may be appending as the log is read: a last line read half-written is read
    /// again until whole (a torn line that stays is still an error).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let path = self.rt().join("logs/runtime_events.jsonl");
        let deadline = Instant::now() + Duration::from_secs(5);
        let events = loop {
            match millrace::state::events::EventLog::read_all(&path) {
                Ok(events) => break events,
                Err(err) if Instant::now() > deadline => {
                    panic!("the event log reads: {err}")
                }
                Err(_) => std::thread::yield_now(),
            }
        };
        events
            .into_iter()
            .map(|e| serde_json::to_value(e).expect("event to JSON"))
            .collect()
    }
}

/// Wait until `cond` holds, polling, failing with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A task document with no dependencies.
pub fn task_doc(id: &str, extra: &str) -> String {
    format!(
        "# Task {id}\n\nTask-ID: {id}\nTitle: Task {id}\n{extra}Created-At: 2026-03-01T10:00:00Z\nCreated-By: test\n\nTarget-Paths:\n- src/lib.rs\n\nAcceptance:\n- It works.\n\nRequired-Checks:\n- cargo test\n\nReferences:\n- README.md\n\nRisk:\n- Low.\n"
    )
}

/// A root spec (its own lineage root).
pub fn spec_doc(id: &str, created: &str) -> String {
    format!(
        "# Spec {id}\n\nSpec-ID: {id}\nTitle: Spec {id}\nSummary: Build {id}.\nSource-Type: manual\nRoot-Spec-ID: {id}\nCreated-At: {created}\nCreated-By: test\n\nGoals:\n- Build it.\n\nConstraints:\n- None.\n\nAcceptance:\n- Done.\n\nReferences:\n- README.md\n"
    )
}

impl TestWs {
    /// Queue a task document through the CLI.
    pub fn add_task(&self, id: &str, extra: &str) {
        let path = self.write(&format!("inputs/{id}.md"), &task_doc(id, extra));
        self.ok(&["add-task", path.to_str().unwrap()]);
    }

    /// Run the daemon until no work is left (bounded by a tick limit).
    pub fn run_until_idle(&self) -> String {
        self.ok(&["run", "daemon", "--until-idle", "--max-ticks", "200"])
    }

    /// Use the built-in scripted runner, optionally with a script.
    pub fn use_scripted(&self, script: Option<&str>) {
        let mut config = String::from("runners:\n  default_runner: scripted\n");
        if let Some(script) = script {
            self.write("script.yaml", script);
            config.push_str("  scripted:\n    script: script.yaml\n");
        }
        config.push_str("watchers:\n  settle_ms: 0\n");
        self.write("millrace-agents/millrace.yaml", &config);
    }

    /// Start `millrace run daemon` in the background.
    pub fn spawn_daemon(&self, extra: &[&str]) -> Daemon {
        self.try_spawn_daemon(extra)
            .expect("the daemon exited before it owned the workspace")
    }

    /// Start `millrace run daemon` in the background; `None` when it exits before owning
    /// the workspace (another daemon holds it).
    pub fn try_spawn_daemon(&self, extra: &[&str]) -> Option<Daemon> {
        let child = self
            .cmd()
            .args(["run", "daemon"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let mut daemon = Daemon { child: Some(child) };
        let lock = self.rt().join("state/runtime_daemon.lock.yaml");
        let mut exited = false;
        wait_for("daemon to start", Duration::from_secs(20), || {
            exited = daemon
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            exited
                || std::fs::read_to_string(&lock)
                    .map(|t| t.contains(&format!("owner_pid: {}", daemon.pid())))
                    .unwrap_or(false)
                    && self.events().iter().any(|e| {
                        e["event_type"] == "runtime_started" && e["data"]["pid"] == daemon.pid()
                    })
        });
        (!exited).then_some(daemon)
    }

    /// Ids of the work items claimed, in order.
    pub fn claimed(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event_type"] == "work_item_claimed")
            .map(|e| e["data"]["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Names of the stages started, in order.
    pub fn stages_started(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event_type"] == "stage_started")
            .map(|e| e["data"]["stage"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Where an id's document is, as `<kind dir>/<folder>`, across all queue folders.
    pub fn folder_of(&self, id: &str) -> Vec<String> {
        let mut found = Vec::new();
        for kind in ["tasks", "specs", "incidents"] {
            for folder in ["queue", "incoming", "active", "done", "resolved", "blocked"] {
                if self
                    .rt()
                    .join(kind)
                    .join(folder)
                    .join(format!("{id}.md"))
                    .exists()
                {
                    found.push(format!("{kind}/{folder}"));
                }
            }
        }
        found
    }
}

/// A daemon process started by a test; killed if the test forgets to stop it.
pub struct Daemon {
    child: Option<std::process::Child>,
}

impl Daemon {
    /// Any child process, to wait for with a deadline (and kill if the test forgets it).
    pub fn from_child(child: std::process::Child) -> Daemon {
        Daemon { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Wait for the daemon to exit (after `stop`), with a deadline.
    pub fn wait_exit(mut self, limit: Duration) -> std::process::Output {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "daemon did not exit in time\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("child");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a process exists (signal 0).
pub fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(false)
}
