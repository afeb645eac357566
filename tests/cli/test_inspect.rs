//! Operator inspection: runs ls/show/tail, status with closure targets, status watch,
//! doctor, and the read-only guarantee on a missing workspace.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{fixture, wait_for, TestWs, BIN};

/// A workspace after the scripted demo: one plain task, a root spec planned into two tasks,
/// and an arbiter run that closed the spec's target.
fn demo() -> TestWs {
    let ws = TestWs::bare();
    ws.ok(&["demo", ws.path().to_str().unwrap()]);
    ws
}

fn runs_json(ws: &TestWs) -> Vec<serde_json::Value> {
    ws.json(&["runs", "ls"])["runs"].as_array().unwrap().clone()
}

#[test]
fn runs_ls_lists_every_run_newest_first() {
    let ws = demo();
    let runs = runs_json(&ws);
    assert_eq!(runs.len(), ws.ls("millrace-agents/runs").len());
    let starts: Vec<&str> = runs
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    let newest = &runs[0];
    assert_eq!(newest["stages"], serde_json::json!(["arbiter"]));
    assert_eq!(newest["request_kind"], "closure_target");
    assert_eq!(newest["closure_target_root_spec_id"], "s-greeting");
    assert_eq!(newest["last_terminal_result"], "ARBITER_COMPLETE");
    let task_run = runs
        .iter()
        .find(|r| r["work_item_id"] == "t-readme-typo")
        .expect("the plain task has a run");
    assert_eq!(task_run["stages_run"], 3);
    assert_eq!(task_run["status"], "valid");
    assert!(task_run.get("token_usage").is_some());

    let text = ws.ok(&["runs", "ls"]);
    assert!(text.starts_with(&format!("run_id: {}\n", newest["run_id"].as_str().unwrap())));
    assert!(text.contains("subject: closure target s-greeting"));
    assert!(text.contains("subject: task t-readme-typo"));
    assert!(text.contains("stages_run: 3 (builder, checker, updater)"));
}

#[test]
fn runs_show_gives_each_stage_and_the_lineage() {
    let ws = demo();
    let runs = runs_json(&ws);
    let arbiter = runs[0]["run_id"].as_str().unwrap().to_string();
    let shown = ws.json(&["runs", "show", &arbiter]);
    assert_eq!(shown["request_kind"], "closure_target");
    assert_eq!(shown["lineage"]["root_spec_id"], "s-greeting");
    assert_eq!(shown["lineage"]["source"], "closure_target");
    let stage = &shown["stage_results"][0];
    assert_eq!(stage["stage"], "arbiter");
    assert_eq!(stage["request_kind"], "closure_target");
    assert_eq!(stage["closure_target_root_spec_id"], "s-greeting");
    assert_eq!(stage["exit_kind"], "completed");
    assert_eq!(stage["runner_name"], "scripted");
    assert!(stage["stage_result_path"]
        .as_str()
        .unwrap()
        .starts_with("stage_results/request-"));

    let planned = runs
        .iter()
        .find(|r| r["work_item_id"] == "s-greeting-task-1")
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = ws.json(&["runs", "show", &planned]);
    assert_eq!(shown["lineage"]["root_spec_id"], "s-greeting");
    assert_eq!(shown["lineage"]["source"], "work_item_document");
    let stages: Vec<&str> = shown["stage_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["builder", "checker", "updater"]);
    for s in shown["stage_results"].as_array().unwrap() {
        assert_eq!(s["request_kind"], "active_work_item");
        assert_eq!(s["result_class"], "success");
        assert!(s["request_id"].as_str().unwrap().starts_with("request-"));
    }

    let text = ws.ok(&["runs", "show", &arbiter]);
    assert!(text.contains("request_kind: closure_target"), "{text}");
    assert!(text.contains("lineage_root_spec_id: s-greeting"), "{text}");
    assert!(text.contains("  stage: arbiter"), "{text}");
    assert!(
        text.contains("  terminal_result: ARBITER_COMPLETE"),
        "{text}"
    );
    assert!(text.contains("  exit_kind: completed"), "{text}");
}

#[test]
fn runs_tail_prints_the_latest_stage_streams() {
    let ws = demo();
    let runs = runs_json(&ws);
    let run = runs
        .iter()
        .find(|r| r["work_item_id"] == "t-readme-typo")
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tail = ws.json(&["runs", "tail", &run, "--lines", "1"]);
    assert_eq!(tail["stage"]["stage"], "updater");
    assert_eq!(tail["stage"]["finished"], true);
    assert_eq!(
        tail["stdout"]["lines"],
        serde_json::json!(["### UPDATE_COMPLETE"])
    );
    let text = ws.ok(&["runs", "tail", &run]);
    assert!(text.contains("stage: updater"), "{text}");
    assert!(text.contains("### UPDATE_COMPLETE"), "{text}");
    let followed = ws.ok(&["runs", "tail", &run, "--follow", "--timeout-seconds", "5"]);
    assert!(followed.contains("finished: true"), "{followed}");
}

#[test]
fn an_unknown_run_id_names_runs_ls() {
    let ws = demo();
    for args in [
        vec!["runs", "show", "run-nope"],
        vec!["runs", "tail", "run-nope"],
        vec!["runs", "show", "../state"],
    ] {
        let err = ws.fails(&args, 1);
        assert!(err.contains("run not found"), "{err}");
        assert!(err.contains("millrace runs ls"), "{err}");
    }
}

const TARGET: &str = "schema_version: \"1.0\"\nkind: closure_target_state\nroot_spec_id: s-fetch-root\nroot_idea_id: null\nroot_spec_path: millrace-agents/arbiter/contracts/root-specs/s-fetch-root.md\nroot_idea_path: null\nrubric_path: millrace-agents/arbiter/rubrics/s-fetch-root.md\nclosure_open: true\nclosure_blocked_by_lineage_work: true\nblocking_work_ids:\n- t-fetch-retry-01\nopened_at: \"2026-02-10T09:30:00Z\"\narbiter_runs: 0\n";

#[test]
fn status_shows_open_closure_targets_and_a_blocked_lineage_item() {
    let ws = TestWs::new();
    ws.write("millrace-agents/arbiter/targets/s-fetch-root.yaml", TARGET);
    ws.write(
        "millrace-agents/tasks/blocked/t-fetch-retry-01.md",
        &std::fs::read_to_string(fixture("documents/task.md")).unwrap(),
    );
    let before = ws.ls("millrace-agents/state");
    let status = ws.json(&["status"]);
    assert!(status["snapshot"].is_object(), "existing fields stay");
    assert!(status["queues"].is_object());
    assert_eq!(status["daemon"]["running"], false);
    let target = &status["closure_targets"][0];
    assert_eq!(target["root_spec_id"], "s-fetch-root");
    assert_eq!(target["backlog"][0]["id"], "t-fetch-retry-01");
    assert_eq!(target["backlog"][0]["folder"], "tasks/blocked");
    assert_eq!(target["backlog"][0]["blocked"], true);
    let attention = status["attention"][0].as_str().unwrap();
    assert_eq!(
        attention,
        "closure of s-fetch-root waits on blocked task t-fetch-retry-01 (run `millrace queue show t-fetch-retry-01`)"
    );
    let text = ws.ok(&["status"]);
    assert!(text.contains("daemon: not running"), "{text}");
    assert!(text.contains("closure_target: s-fetch-root"), "{text}");
    assert!(
        text.contains("lineage_backlog: t-fetch-retry-01 (tasks/blocked)"),
        "{text}"
    );
    assert!(text.contains(&format!("attention: {attention}")), "{text}");
    assert_eq!(
        ws.ls("millrace-agents/state"),
        before,
        "status wrote nothing"
    );
}

/// A child process killed if the test fails before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn status_watch_sees_a_change_made_while_it_runs() {
    let ws = TestWs::new();
    let mut child = Reaped(
        ws.cmd()
            .args(["--json", "status", "watch", "--max-updates", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn status watch"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first: serde_json::Value = serde_json::from_str(
        &rx.recv_timeout(Duration::from_secs(20))
            .expect("first view"),
    )
    .unwrap();
    assert_eq!(first["update"], 1);
    assert_eq!(first["workspaces"][0]["queues"]["execution_queued"], 0);
    ws.ok(&["add-task", fixture("documents/task.md").to_str().unwrap()]);
    let second: serde_json::Value = serde_json::from_str(
        &rx.recv_timeout(Duration::from_secs(20))
            .expect("second view"),
    )
    .unwrap();
    assert_eq!(second["update"], 2);
    assert_eq!(second["workspaces"][0]["queues"]["execution_queued"], 1);
    wait_for("status watch to exit", Duration::from_secs(20), || {
        child.0.try_wait().unwrap().is_some()
    });
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn doctor_on_a_fresh_workspace_is_healthy() {
    let ws = TestWs::new();
    let report = ws.json(&["doctor"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"], 0);
    let lint: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"].as_str().unwrap().starts_with("asset_lint"))
        .collect();
    assert!(lint.is_empty(), "{lint:?}");
    let text = ws.ok(&["doctor"]);
    assert!(text.contains("ok: true\nerrors: 0\n"), "{text}");
}

/// A valid task; `lineage` lines go in the header, `depends_on` ids in Depends-On.
fn task(id: &str, lineage: &str, depends_on: &[&str]) -> String {
    let deps = if depends_on.is_empty() {
        String::new()
    } else {
        format!("Depends-On:\n- {}\n\n", depends_on.join("\n- "))
    };
    format!(
        "# Task {id}\n\nTask-ID: {id}\nTitle: Task {id}\nSummary: A task for doctor.\n{lineage}Created-At: 2026-02-10T09:30:00Z\nCreated-By: operator\n\n{deps}Target-Paths:\n- src/lib.rs\n\nAcceptance:\n- It works.\n\nRequired-Checks:\n- cargo test\n\nReferences:\n- README.md\n\nRisk:\n- None.\n"
    )
}

#[test]
fn doctor_reports_each_problem_with_a_next_step() {
    let ws = TestWs::new();
    ws.write("millrace-agents/quarantine/t-bad.md", "not a task\n");
    ws.write(
        "millrace-agents/quarantine/t-bad.md.error.yaml",
        "source: millrace-agents/tasks/queue/t-bad.md\nerror: missing H1 title\n",
    );
    ws.write(
        "millrace-agents/tasks/queue/t-twice.md",
        &task("t-twice", "", &[]),
    );
    ws.write(
        "millrace-agents/tasks/done/t-twice.md",
        &task("t-twice", "", &[]),
    );
    ws.write(
        "millrace-agents/tasks/queue/t-waits.md",
        &task("t-waits", "", &["t-nowhere"]),
    );
    ws.write(
        "millrace-agents/tasks/queue/t-orphan.md",
        &task("t-orphan", "Root-Spec-ID: s-nowhere\n", &[]),
    );
    ws.write(
        "millrace-agents/tasks/active/t-stale.md",
        &task("t-stale", "", &[]),
    );
    ws.write(
        "millrace-agents/state/mailbox/failed/cmd-1.yaml",
        "command: explode\n",
    );
    ws.write(
        "millrace-agents/state/mailbox/failed/cmd-1.yaml.error.yaml",
        "file: cmd-1.yaml\nerror: unknown command explode\n",
    );
    ws.write(
        "millrace-agents/entrypoints/execution/builder.md",
        "# Builder\n\nDo the task.\n",
    );
    let before = ws.ls("millrace-agents/tasks/queue");
    let out = ws.cmd().args(["--json", "doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let findings = report["findings"].as_array().unwrap();
    let find = |code: &str, needle: &str| {
        findings
            .iter()
            .find(|f| f["code"] == code && f["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no {code} finding about {needle}: {findings:#?}"))
    };
    let expected = [
        ("quarantined_file", "missing H1 title"),
        ("duplicate_work_item_id", "t-twice"),
        ("dependency_missing", "t-nowhere"),
        ("lineage_dangling", "s-nowhere"),
        ("active_without_owner", "t-stale"),
        ("mailbox_command_failed", "unknown command explode"),
        (
            "asset_lint_structural",
            "exactly one required stage-core skill",
        ),
    ];
    for (code, needle) in expected {
        let f = find(code, needle);
        let fix = f["fix"].as_str().unwrap();
        assert!(
            fix.contains("millrace ") || fix.contains("millrace-agents/"),
            "{code}: fix names no command or file: {fix}"
        );
    }
    assert_eq!(find("active_without_owner", "t-stale")["level"], "warning");
    assert_eq!(find("dependency_missing", "t-nowhere")["level"], "error");
    let human = String::from_utf8(ws.run(&["doctor"]).stdout).unwrap();
    assert!(human.contains("ok: false"), "{human}");
    assert!(human.contains("error: duplicate_work_item_id "), "{human}");
    assert!(human.contains("  fix: "), "{human}");
    assert_eq!(
        ws.ls("millrace-agents/tasks/queue"),
        before,
        "doctor moved nothing"
    );
    assert!(ws.exists("millrace-agents/quarantine/t-bad.md"));
    assert!(ws.exists("millrace-agents/tasks/active/t-stale.md"));
}

#[test]
fn read_only_inspection_needs_a_workspace_and_creates_none() {
    let ws = TestWs::bare();
    for args in [
        vec!["runs", "ls"],
        vec!["runs", "show", "run-x"],
        vec!["runs", "tail", "run-x"],
        vec!["doctor"],
        vec!["status", "watch", "--max-updates", "1"],
    ] {
        let err = ws.fails(&args, 3);
        assert!(err.contains("millrace init"), "{args:?}: {err}");
    }
    assert!(!ws.exists("millrace-agents"));
}

/// A control command acts on a runtime: run where there is no workspace (the wrong folder)
/// it says so instead of making one and reporting it paused or stopped.
#[test]
fn control_commands_need_a_workspace_and_create_none() {
    let ws = TestWs::bare();
    for args in [
        vec!["pause"],
        vec!["resume"],
        vec!["stop"],
        vec!["control", "pause"],
        vec!["retry-active", "--reason", "x"],
        vec!["clear-stale-state", "--reason", "x"],
        vec!["requeue", "t-1", "--reason", "x"],
        vec!["reload-config"],
    ] {
        let err = ws.fails(&args, 3);
        assert!(err.contains("millrace init"), "{args:?}: {err}");
    }
    assert!(!ws.exists("millrace-agents"));
    // `--print` writes nothing and needs no workspace.
    ws.ok(&["pause", "--print"]);
}

#[test]
fn completions_and_man_page_are_printed() {
    let out = std::process::Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("millrace"), "{text}");
    assert!(text.contains("doctor"));
    let out = std::process::Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH"));
}

#[test]
fn doctor_names_a_missing_harness_and_the_fix() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  codex:\n    command: surely-not-installed-harness\n",
    );
    let report = ws.json(&["doctor"]);
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "runner_executable_missing")
        .expect("missing harness reported");
    assert!(finding["message"]
        .as_str()
        .unwrap()
        .contains("surely-not-installed-harness"));
    assert!(finding["fix"].as_str().unwrap().contains("scripted"));
    ws.use_scripted(None);
    let report = ws.json(&["doctor"]);
    assert!(!report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "runner_executable_missing"));
}

/// History does not crowd the views: `queue ls` lists the open items and counts the finished
/// ones; `--done` pages through those; `runs ls` pages newest first.
#[test]
fn queue_ls_counts_finished_items_and_pages_them_and_runs_ls_pages_newest_first() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    for id in ["t1", "t2", "t3"] {
        ws.add_task(id, "");
    }
    ws.run_until_idle();
    ws.add_task("t4", "");
    let open = ws.json(&["queue", "ls"]);
    assert_eq!(open["done_count"], 3, "{open:#}");
    let ids: Vec<&str> = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t4"]);
    assert!(ws.ok(&["queue", "ls"]).contains("finished: 3"));
    let page = ws.json(&["queue", "ls", "--done", "--limit", "2", "--offset", "1"]);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t2", "t3"]);
    let all = ws.json(&["queue", "ls", "--all"]);
    assert_eq!(all["items"].as_array().unwrap().len(), 4);

    let every = ws.json(&["runs", "ls"]);
    assert_eq!(every["total"], 3);
    let newest = every["runs"][0]["run_id"].clone();
    let first = ws.json(&["runs", "ls", "--limit", "1"]);
    assert_eq!(first["runs"].as_array().unwrap().len(), 1);
    assert_eq!(first["runs"][0]["run_id"], newest);
    let second = ws.json(&["runs", "ls", "--limit", "1", "--offset", "1"]);
    assert_eq!(second["runs"][0]["run_id"], every["runs"][1]["run_id"]);
}

/// `status watch` and `status` tell a stage that runs from one an item merely waits at:
/// between stages with no daemon, the item is "at checker, not running".
#[test]
fn status_watch_says_when_the_active_stage_is_not_running() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    ws.ok(&["run", "once"]);
    let text = ws.ok(&["status", "watch", "--max-updates", "1"]);
    assert!(text.contains("active: at checker on task t1 ("), "{text}");
    assert!(
        text.contains("), not running: no daemon runs it\n"),
        "{text}"
    );
    let report = ws.json(&["status"]);
    assert!(report["active_process_group"].is_null(), "{report:#}");
    let full = ws.ok(&["status"]);
    assert!(
        full.contains("active_stage: checker (not running: no daemon runs it)\n"),
        "{full}"
    );
}
