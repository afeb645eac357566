//! Issue 13: the agent is not trusted and the disk is not reliable. Each test plays the part
//! of a harness (or a fault) that tries to make millrace act outside its bounds.

use std::time::Duration;

use crate::common::{task_doc, wait_for, TestWs};

const LIMIT: Duration = Duration::from_secs(20);

fn count_events(ws: &TestWs, kind: &str) -> usize {
    ws.events()
        .iter()
        .filter(|e| e["event_type"] == kind)
        .count()
}

fn snapshot(ws: &TestWs) -> serde_json::Value {
    ws.json(&["status"])["snapshot"].clone()
}

/// Drop a task straight into `tasks/queue/` (no CLI call that could bootstrap files).
fn drop_task(ws: &TestWs, id: &str) {
    ws.write(
        &format!("millrace-agents/tasks/queue/{id}.md"),
        &task_doc(id, ""),
    );
}

fn harness_calls(ws: &TestWs) -> String {
    std::fs::read_to_string(ws.path().join("fake-state/calls.log")).unwrap_or_default()
}

#[test]
fn a_missing_or_unreadable_config_is_a_failed_reload_and_the_plan_stays() {
    let ws = TestWs::new();
    ws.use_fake_harness("");
    let daemon = ws.spawn_daemon(&[]);
    let version = snapshot(&ws)["config_version"].clone();
    let config = ws.rt().join("millrace.yaml");
    let saved = std::fs::read_to_string(&config).unwrap();

    std::fs::remove_file(&config).unwrap();
    wait_for("the reload to fail on the missing config", LIMIT, || {
        count_events(&ws, "runtime_config_reload_failed") == 1
    });
    assert_eq!(count_events(&ws, "runtime_config_reloaded"), 0);
    // Stages still run on the configured harness, not on the defaults' `codex`.
    drop_task(&ws, "t1");
    wait_for("t1 to finish on the configured harness", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    assert!(harness_calls(&ws).contains("builder"));

    std::fs::create_dir(&config).unwrap();
    wait_for("the reload to fail on a folder", LIMIT, || {
        count_events(&ws, "runtime_config_reload_failed") == 2
    });
    let snap = snapshot(&ws);
    assert_eq!(snap["config_version"], version);
    assert_eq!(snap["last_reload_outcome"], "failed_retained_previous_plan");

    std::fs::remove_dir(&config).unwrap();
    std::fs::write(&config, saved).unwrap();
    wait_for("the restored config to be applied", LIMIT, || {
        count_events(&ws, "runtime_config_reloaded") == 1
    });
    assert_eq!(snapshot(&ws)["config_version"], version);
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn mailbox_commands_apply_in_parsed_issue_time_order() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let incoming = "millrace-agents/state/mailbox/incoming";
    // As text, `…00.5Z` sorts before `…00Z`; as times the pause comes first.
    ws.write(
        &format!("{incoming}/a-resume.yaml"),
        "command: resume\nissued_at: 2030-01-01T00:00:00.5Z\n",
    );
    ws.write(
        &format!("{incoming}/b-pause.yaml"),
        "command: pause\nreason: test\nissued_at: 2030-01-01T00:00:00Z\n",
    );
    ws.ok(&["run", "once"]);
    assert_eq!(snapshot(&ws)["paused"], false);
    assert_eq!(ws.ls(incoming), Vec::<String>::new());
}
