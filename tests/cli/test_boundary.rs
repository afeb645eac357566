//! Issue 7: the workspace boundary. Ids and names never become paths outside their folder,
//! symlinks dropped into watched folders are never followed, mailbox commands cannot write
//! outside `millrace-agents/`, the harness sees only the allowed environment, and state files
//! are never world-writable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{fixture, wait_for, TestWs, BIN};

const TASK: &str = "# Escape\n\nTask-ID: @ID@\nTitle: Escape\nCreated-At: 2026-01-05T08:00:00Z\nCreated-By: op\n\nTarget-Paths:\n- a\n\nAcceptance:\n- a\n\nRequired-Checks:\n- c\n\nReferences:\n- r\n\nRisk:\n- r\n";

/// Every path under `dir` (files, folders and links), depth first.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

fn names_under(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    walk(dir, &mut all);
    all.iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn ids_and_idea_names_never_leave_their_folder() {
    let ws = TestWs::new();
    for id in [
        "../escape",
        "../../escape",
        "/tmp/escape",
        "a/../../escape",
        "..",
        ".",
    ] {
        let file = ws.write("inputs/t.md", &TASK.replace("@ID@", id));
        let err = ws.fails(&["add-task", file.to_str().unwrap()], 1);
        assert!(err.contains("Task-ID: must match"), "{id}: {err}");
        let json = ws.write(
            "inputs/t.json",
            &serde_json::json!({"task_id": id, "title": "T", "created_at": "2026-01-05T08:00:00Z",
                "created_by": "op", "target_paths": ["a"], "acceptance": ["a"],
                "required_checks": ["c"], "references": ["r"], "risk": ["r"]})
            .to_string(),
        );
        let err = ws.fails(&["add-task", json.to_str().unwrap()], 1);
        assert!(err.contains("task_id: must match"), "{id}: {err}");
    }
    // Titles are text, never paths: a title full of separators is stored under its id.
    let file = ws.write(
        "inputs/t.md",
        &TASK
            .replace("@ID@", "t-title")
            .replace("Escape", "../../etc/passwd"),
    );
    ws.ok(&["add-task", file.to_str().unwrap()]);
    assert_eq!(ws.ls("millrace-agents/tasks/queue"), vec!["t-title.md"]);
    // Idea names: `..`-only and hidden stems are refused by the id rule.
    for name in ["..md", "...md", ".hidden.md"] {
        let file = ws.write(&format!("inputs/{name}"), "# Idea\n");
        let err = ws.fails(&["add-idea", file.to_str().unwrap()], 1);
        assert!(err.contains("must match"), "{name}: {err}");
    }
    assert!(ws.ls("millrace-agents/ideas/inbox").is_empty());
    assert!(!names_under(ws.path()).contains(&"escape.md".to_string()));
}

#[test]
fn mailbox_commands_cannot_write_outside_the_runtime_folder() {
    let ws = TestWs::new();
    let incoming = "millrace-agents/state/mailbox/incoming";
    let names = [
        "../../evil.md",
        "../../../../evil.md",
        "/tmp/evil.md",
        "..\\..\\evil.md",
        "inbox/../../evil.md",
    ];
    for (i, name) in names.iter().enumerate() {
        ws.write(
            &format!("{incoming}/idea-{i}.yaml"),
            &format!(
                "command: add_idea\npayload:\n  source_name: {}\n  markdown: \"# Evil\\n\"\n",
                serde_json::to_string(name).unwrap()
            ),
        );
    }
    ws.write(
        &format!("{incoming}/task.yaml"),
        &format!(
            "command: add_task\npayload:\n  document: {}\n",
            serde_json::json!({"task_id": "../../../evil", "title": "T",
                "created_at": "2026-01-05T08:00:00Z", "created_by": "op", "target_paths": ["a"],
                "acceptance": ["a"], "required_checks": ["c"], "references": ["r"], "risk": ["r"]})
        ),
    );
    let outside = ws.path().parent().unwrap().join("evil.md");
    let existed_outside = outside.exists();
    let envelope = std::fs::read_to_string(ws.rt().join("state/mailbox/incoming/idea-0.yaml"));
    // Hand-written envelopes wait out the settle window, so look until they are archived.
    wait_for("the mailbox to drain", Duration::from_secs(30), || {
        ws.run(&["run", "once"]);
        ws.ls(incoming).is_empty()
    });
    let failed = ws.ls("millrace-agents/state/mailbox/failed");
    assert_eq!(failed.len(), 2 * (names.len() + 1), "{failed:?}");
    assert_eq!(
        std::fs::read_to_string(ws.rt().join("state/mailbox/failed/idea-0.yaml")).ok(),
        envelope.ok()
    );
    for name in names_under(ws.path()) {
        assert!(!name.contains("evil"), "{name} was written");
    }
    assert_eq!(
        outside.exists(),
        existed_outside,
        "{} was written",
        outside.display()
    );
    assert!(ws.ls("millrace-agents/ideas/inbox").is_empty());
}

#[test]
fn symlinks_in_watched_folders_are_never_followed() {
    let ws = TestWs::new();
    let outside = tempfile::tempdir().unwrap();
    let doc = std::fs::read(fixture("demo/task.md")).unwrap();
    let targets = [
        (
            "t-readme-typo.md",
            doc.clone(),
            "millrace-agents/tasks/queue",
        ),
        ("s-linked.md", doc.clone(), "millrace-agents/specs/queue"),
        (
            "linked-idea.md",
            b"# Linked idea\n\nRead me.\n".to_vec(),
            "millrace-agents/ideas/inbox",
        ),
        (
            "pause.yaml",
            b"command: pause\n".to_vec(),
            "millrace-agents/state/mailbox/incoming",
        ),
    ];
    for (name, bytes, folder) in &targets {
        let target = outside.path().join(name);
        std::fs::write(&target, bytes).unwrap();
        std::os::unix::fs::symlink(&target, ws.path().join(folder).join(name)).unwrap();
    }
    ws.run(&["run", "once"]);
    ws.run(&["run", "once"]);

    for (name, bytes, _) in &targets {
        let target = outside.path().join(name);
        assert_eq!(&std::fs::read(&target).unwrap(), bytes, "{name} changed");
        let archived = if name.ends_with(".yaml") {
            format!("millrace-agents/state/mailbox/failed/{name}")
        } else {
            format!("millrace-agents/quarantine/{name}")
        };
        let meta = std::fs::symlink_metadata(ws.path().join(&archived))
            .unwrap_or_else(|e| panic!("{archived}: {e}"));
        assert!(
            meta.file_type().is_symlink(),
            "{archived} is the link itself"
        );
        let reason = ws.read(&format!("{archived}.error.yaml"));
        assert!(reason.contains("symlinks are not followed"), "{reason}");
    }
    // Nothing was taken from the targets: no task ran, no spec was made, no pause applied.
    assert!(ws.ls("millrace-agents/runs").is_empty());
    for folder in ["queue", "active", "done", "blocked"] {
        assert!(ws.ls(&format!("millrace-agents/tasks/{folder}")).is_empty());
        assert!(ws.ls(&format!("millrace-agents/specs/{folder}")).is_empty());
    }
    assert_eq!(ws.json(&["status"])["snapshot"]["paused"], false);
}

/// The binary under `umask 000`, so only the runtime's own modes protect its files.
fn under_umask_000(ws: &TestWs) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(BIN)
        .arg("--workspace")
        .arg(ws.path())
        .env_remove("MILLRACE_WORKSPACE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn ok(mut cmd: Command, args: &[&str]) {
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn harness_gets_only_allowed_env_and_state_files_are_not_world_writable() {
    let ws = TestWs::bare();
    ok(under_umask_000(&ws), &["init"]);
    let plan = ws.write(
        "fake-plan.txt",
        "builder run umask 022; env > \"$RUN_DIR/env.txt\"; printf '### BUILDER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n\
         checker run umask 022; printf '### CHECKER_PASS\\n' > \"$LAST_MESSAGE_FILE\"\n\
         updater run umask 022; printf '### UPDATE_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n",
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        &format!(
            "runners:\n  env_allow: [PATH, HOME]\n  codex:\n    command: {}\n    args: []\n    env:\n      FAKE_HARNESS_PLAN: {}\n      FAKE_HARNESS_STATE: {}\nwatchers:\n  settle_ms: 0\n",
            fixture("fake-harness").display(),
            plan.display(),
            ws.path().join("fake-state").display()
        ),
    );
    ok(
        under_umask_000(&ws),
        &["add-task", fixture("demo/task.md").to_str().unwrap()],
    );
    let mut daemon = under_umask_000(&ws)
        .args(["run", "daemon"])
        .env("MILLRACE_TEST_SECRET", "hunter2-do-not-leak")
        .env("OPENAI_API_KEY", "sk-do-not-leak")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the task to be done", Duration::from_secs(60), || {
        ws.exists("millrace-agents/tasks/done/t-readme-typo.md")
    });
    ok(under_umask_000(&ws), &["control", "stop"]);
    wait_for("the daemon to exit", Duration::from_secs(60), || {
        daemon.try_wait().unwrap().is_some()
    });

    let runs = ws.ls("millrace-agents/runs");
    let env = ws.read(&format!("millrace-agents/runs/{}/env.txt", runs[0]));
    assert!(env.contains("PATH="), "{env}");
    assert!(
        env.contains("FAKE_HARNESS_PLAN="),
        "the runner's own env overlay applies"
    );
    assert!(
        !env.contains("do-not-leak"),
        "a secret reached the harness:\n{env}"
    );
    assert!(!env.contains("MILLRACE_TEST_SECRET"), "{env}");

    let mut all = Vec::new();
    walk(&ws.rt(), &mut all);
    for path in &all {
        let meta = std::fs::symlink_metadata(path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o002,
            0,
            "{} is world-writable ({mode:o})",
            path.display()
        );
    }
    for rel in [
        "state/runtime_snapshot.yaml",
        "state/recovery_counters.yaml",
        "state/compiled_plan.yaml",
        "state/execution_status.md",
        "logs/runtime_events.jsonl",
        "tasks/done/t-readme-typo.md",
    ] {
        let mode = std::fs::metadata(ws.rt().join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{rel} has mode {mode:o}");
    }
}
