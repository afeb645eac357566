//! Issue 5: the daemon lock, the mailbox, event-driven intake, reload, signals.

use std::time::Duration;

use crate::common::{alive, wait_for, TestWs};

const LIMIT: Duration = Duration::from_secs(20);

fn snapshot(ws: &TestWs) -> serde_json::Value {
    ws.json(&["status"])["snapshot"].clone()
}

/// The fake harness's grandchild pid, once it has been written completely.
fn grandchild_pid(ws: &TestWs) -> i32 {
    let path = ws.path().join("fake-state/grandchild.pid");
    let mut pid = 0;
    wait_for("the harness to start its grandchild", LIMIT, || {
        pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        pid > 0
    });
    pid
}

fn has_event(ws: &TestWs, kind: &str) -> bool {
    ws.events().iter().any(|e| e["event_type"] == kind)
}

#[test]
fn a_second_daemon_is_refused_at_once_naming_the_owner() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    let err = ws.fails(&["run", "daemon"], 4);
    assert!(
        err.contains(&format!("workspace is owned by pid {}", daemon.pid())),
        "{err}"
    );
    ws.ok(&["stop"]);
    let out = daemon.wait_exit(LIMIT);
    assert!(out.status.success());
    assert_eq!(snapshot(&ws)["process_running"], false);
}

#[test]
fn different_workspaces_run_daemons_side_by_side() {
    let a = TestWs::new();
    let b = TestWs::new();
    a.use_scripted(None);
    b.use_scripted(None);
    let da = a.spawn_daemon(&[]);
    let db = b.spawn_daemon(&[]);
    a.ok(&["stop"]);
    b.ok(&["stop"]);
    da.wait_exit(LIMIT);
    db.wait_exit(LIMIT);
}

#[test]
fn kill_9_mid_stage_then_restart_takes_over_kills_the_orphan_and_finishes_once() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\nbuilder emit ### BUILDER_COMPLETE\n");
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    let grandchild = grandchild_pid(&ws);
    daemon.kill9();
    assert!(
        alive(grandchild),
        "the orphan should outlive the killed daemon"
    );
    let restarted = ws.spawn_daemon(&[]);
    wait_for("the orphaned harness group to be killed", LIMIT, || {
        !alive(grandchild)
    });
    wait_for("the task to finish", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    restarted.wait_exit(LIMIT);
    let completions = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "work_item_completed" && e["data"]["id"] == "t1")
        .count();
    assert_eq!(completions, 1);
    assert!(has_event(&ws, "runtime_lock_taken_over"));
    assert!(has_event(&ws, "orphaned_harness_killed"));
    assert!(ws.ls("millrace-agents/tasks/active").is_empty());
}

/// A command applied directly between the crash and the restart holds the lock for a moment:
/// it must not hide the crash from the next daemon, which still kills the orphan.
#[test]
fn a_command_applied_after_a_crash_keeps_the_crash_for_the_next_daemon() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\nbuilder emit ### BUILDER_COMPLETE\n");
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    let grandchild = grandchild_pid(&ws);
    daemon.kill9();
    let out = ws.ok(&["pause"]);
    assert!(out.contains("applied directly"), "{out}");
    ws.ok(&["resume"]);
    assert!(alive(grandchild), "the orphan outlives the killed daemon");
    let restarted = ws.spawn_daemon(&[]);
    wait_for("the orphaned harness group to be killed", LIMIT, || {
        !alive(grandchild)
    });
    assert!(has_event(&ws, "runtime_lock_taken_over"));
    assert!(has_event(&ws, "orphaned_harness_killed"));
    ws.ok(&["stop"]);
    restarted.wait_exit(LIMIT);
}

#[test]
fn pause_resume_and_stop_through_the_mailbox_while_a_daemon_runs() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    let out = ws.json(&["pause"]);
    assert_eq!(out["mode"], "mailbox");
    assert_eq!(out["applied"], true);
    assert_eq!(snapshot(&ws)["paused"], true);
    assert!(ws.ls("millrace-agents/state/mailbox/processed").len() >= 2);
    let again = ws.run(&["--json", "pause"]);
    assert_eq!(
        again.status.code(),
        Some(5),
        "pausing twice applies nothing"
    );
    ws.ok(&["resume"]);
    assert_eq!(snapshot(&ws)["paused"], false);
    ws.add_task("t1", "");
    wait_for("the task to finish", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    let stop = ws.json(&["stop"]);
    assert_eq!(stop["mode"], "mailbox");
    let out = daemon.wait_exit(LIMIT);
    assert!(out.status.success());
    assert_eq!(snapshot(&ws)["process_running"], false);
}

#[test]
fn mailbox_commands_apply_in_issued_at_order_not_file_name_order() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/state/mailbox/incoming/a-resume.yaml",
        "command: resume\nissued_at: 2030-01-01T00:00:02Z\n",
    );
    ws.write(
        "millrace-agents/state/mailbox/incoming/z-pause.yaml",
        "command: pause\nissued_at: 2030-01-01T00:00:01Z\n",
    );
    ws.ok(&["run", "once"]);
    assert_eq!(snapshot(&ws)["paused"], false);
    let processed = ws.ls("millrace-agents/state/mailbox/processed");
    assert!(
        processed.contains(&"a-resume.yaml".to_string()),
        "{processed:?}"
    );
    assert!(
        processed.contains(&"z-pause.yaml".to_string()),
        "{processed:?}"
    );
    assert!(ws.ls("millrace-agents/state/mailbox/incoming").is_empty());
}

#[test]
fn garbage_in_the_mailbox_is_archived_as_failed_and_the_daemon_lives() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    ws.write(
        "millrace-agents/state/mailbox/incoming/junk.yaml",
        "command: [[[\u{1}\n",
    );
    ws.write(
        "millrace-agents/state/mailbox/incoming/unknown.yaml",
        "command: explode\n",
    );
    wait_for("both to be archived", LIMIT, || {
        ws.exists("millrace-agents/state/mailbox/failed/junk.yaml.error.yaml")
            && ws.exists("millrace-agents/state/mailbox/failed/unknown.yaml.error.yaml")
    });
    assert_eq!(
        ws.read("millrace-agents/state/mailbox/failed/junk.yaml"),
        "command: [[[\u{1}\n"
    );
    ws.add_task("t1", "");
    wait_for("the task to finish", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn an_idea_dropped_while_idle_becomes_a_spec_without_waiting_for_a_tick() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    ws.ok(&["pause"]);
    let tmp = ws.write(
        "millrace-agents/ideas/tmp/fetch.md",
        "# Resilient fetch\n\nRetry a few times.\n",
    );
    std::fs::rename(&tmp, ws.rt().join("ideas/inbox/fetch.md")).unwrap();
    wait_for(
        "the idea to be queued as a spec",
        Duration::from_secs(5),
        || ws.exists("millrace-agents/specs/queue/idea-fetch.md"),
    );
    let spec = ws.read("millrace-agents/specs/queue/idea-fetch.md");
    assert!(spec.contains("Root-Spec-ID: idea-fetch"), "{spec}");
    assert!(spec.contains("Root-Idea-ID: idea-fetch"), "{spec}");
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn an_idea_present_before_start_is_taken_in() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/ideas/inbox/early.md",
        "# Early idea\n\nDo the thing.\n",
    );
    ws.run_until_idle();
    assert_eq!(ws.folder_of("idea-early"), ["specs/done"]);
    let (targets, _) = (ws.ls("millrace-agents/arbiter/targets"), ());
    assert_eq!(targets, ["idea-early.yaml"]);
    assert!(ws
        .read("millrace-agents/arbiter/targets/idea-early.yaml")
        .contains("closure_open: false"));
    assert!(ws.exists("millrace-agents/arbiter/contracts/ideas/idea-early.md"));
}

#[test]
fn a_broken_config_edit_keeps_the_running_plan_and_says_so() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    let plan_before = snapshot(&ws)["compiled_plan_id"].clone();
    ws.write("millrace-agents/millrace.yaml", "runtime: [unclosed\n");
    wait_for("the reload failure to be recorded", LIMIT, || {
        has_event(&ws, "runtime_config_reload_failed")
    });
    let snap = snapshot(&ws);
    assert_eq!(snap["compiled_plan_id"], plan_before);
    assert_eq!(snap["last_reload_outcome"], "failed_retained_previous_plan");
    assert!(snap["last_reload_error"]
        .as_str()
        .unwrap()
        .contains("millrace.yaml"));
    // Asked to reload the broken file, the daemon answers with a failure (exit 1), not
    // "nothing to do" (exit 5).
    let err = ws.fails(&["reload-config"], 1);
    assert!(
        err.contains("reload_config: reload failed, kept plan"),
        "{err}"
    );
    // `config show` names the file's error and what the runtime still runs on.
    let err = ws.fails(&["config", "show"], 1);
    assert!(err.contains("millrace.yaml:"), "{err}");
    assert!(
        err.contains("last_reload_outcome: failed_retained_previous_plan"),
        "{err}"
    );
    ws.use_scripted(None);
    ws.add_task("t1", "");
    wait_for("work to go on", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = daemon.wait_exit(LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&ws)["process_running"], false);
    assert!(has_event(&ws, "runtime_tick_stopped"));
}

#[test]
fn control_without_a_daemon_applies_directly_and_print_shows_the_envelope() {
    let ws = TestWs::new();
    let out = ws.json(&["control", "pause"]);
    assert_eq!(out["mode"], "direct");
    assert_eq!(snapshot(&ws)["paused"], true);
    let env = ws.ok(&["control", "retry-active", "--reason", "flaky", "--print"]);
    assert!(env.contains("command: retry_active"), "{env}");
    assert!(env.contains("reason: flaky"), "{env}");
    ws.fails(&["control", "retry-active"], 5);
}

#[test]
fn stop_lets_the_running_stage_finish_and_the_next_start_resumes_the_item() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder run touch \"$RUN_DIR/../../../started\"; while [ ! -e \"$WORKSPACE/release\" ]; do sleep 0.05; done; printf '### BUILDER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n");
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the builder to start", LIMIT, || ws.exists("started"));
    let out = ws.json(&["stop", "--wait", "0"]);
    assert_eq!(out["mode"], "mailbox");
    ws.write("release", "");
    let exit = daemon.wait_exit(LIMIT);
    assert!(exit.status.success());
    let snap = snapshot(&ws);
    assert_eq!(
        snap["active_stage"], "checker",
        "the builder finished and was routed"
    );
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    assert_eq!(ws.stages_started(), ["builder", "checker", "updater"]);
}

#[test]
fn stop_in_interrupt_mode_kills_the_stage_and_the_next_start_reruns_it() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\nbuilder emit ### BUILDER_COMPLETE\n");
    let config = ws.read("millrace-agents/millrace.yaml").replace(
        "watchers:\n",
        "runtime:\n  stop_mode: interrupt\nwatchers:\n",
    );
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    let grandchild = grandchild_pid(&ws);
    let text = ws.ok(&["stop"]);
    assert!(
        text.contains(
            "stop requested (runtime.stop_mode: interrupt); the running builder stage is ended now"
        ),
        "{text}"
    );
    let exit = daemon.wait_exit(LIMIT);
    assert!(exit.status.success());
    wait_for("the harness group to be gone", LIMIT, || !alive(grandchild));
    assert!(has_event(&ws, "stage_interrupted"));
    assert_eq!(snapshot(&ws)["active_stage"], "builder");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
}

/// In `finish` mode a first `stop` waits for the running stage and says how to end it now;
/// a second `stop` ends it, and the next start runs it again.
#[test]
fn a_second_stop_ends_the_running_stage() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder hang\nbuilder emit ### BUILDER_COMPLETE\n");
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the harness to start", LIMIT, || {
        ws.exists("fake-state/builder.count")
    });
    let text = ws.ok(&["stop"]);
    assert!(
        text.contains("stops when the running builder stage ends")
            && text.contains("`millrace stop` again, or a second Ctrl-C, ends the stage now"),
        "{text}"
    );
    let text = ws.ok(&["stop"]);
    assert!(
        text.contains("stop requested again; the running builder stage is ended now"),
        "{text}"
    );
    let exit = daemon.wait_exit(LIMIT);
    assert!(exit.status.success());
    assert!(has_event(&ws, "stage_interrupted"));
    assert_eq!(snapshot(&ws)["active_stage"], "builder");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
}

#[test]
fn an_idle_tick_rewrites_no_state_file() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the daemon to go idle", LIMIT, || {
        ws.events()
            .iter()
            .any(|e| e["event_type"] == "router_decision" && e["data"]["action"] == "idle")
    });
    let files = [
        "millrace-agents/state/runtime_snapshot.yaml",
        "millrace-agents/state/recovery_counters.yaml",
        "millrace-agents/state/execution_status.md",
        "millrace-agents/state/planning_status.md",
        "millrace-agents/state/compiled_plan.yaml",
    ];
    let stamp = |rel: &str| {
        std::fs::metadata(ws.path().join(rel))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = files.iter().map(|f| (ws.read(f), stamp(f))).collect();
    let events_before = ws.events().len();
    let out = ws.run(&["resume"]);
    assert_eq!(out.status.code(), Some(5), "nothing to resume");
    let after: Vec<_> = files.iter().map(|f| (ws.read(f), stamp(f))).collect();
    assert_eq!(before, after, "an idle tick rewrote state");
    let new_events: Vec<String> = ws.event_types()[events_before..].to_vec();
    assert_eq!(new_events, ["mailbox_command_applied"]);
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn polling_mode_takes_in_dropped_files_too() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let config = ws
        .read("millrace-agents/millrace.yaml")
        .replace("watchers:\n", "watchers:\n  poll_interval_ms: 50\n");
    ws.write("millrace-agents/millrace.yaml", &config);
    let daemon = ws.spawn_daemon(&["--poll"]);
    assert_eq!(snapshot(&ws)["watcher_mode"], "poll");
    ws.write(
        "millrace-agents/ideas/inbox/polled.md",
        "# Polled idea\n\nFound by polling.\n",
    );
    wait_for("the polled idea to become a spec", LIMIT, || {
        !ws.folder_of("idea-polled").is_empty()
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn a_clean_stop_is_not_reported_as_a_takeover_at_the_next_start() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let first = ws.spawn_daemon(&[]);
    ws.ok(&["stop"]);
    first.wait_exit(LIMIT);
    assert!(ws
        .read("millrace-agents/state/runtime_daemon.lock.yaml")
        .contains("released_at:"));
    let second = ws.spawn_daemon(&[]);
    ws.ok(&["stop"]);
    second.wait_exit(LIMIT);
    assert!(!has_event(&ws, "runtime_lock_taken_over"));
}

#[test]
fn an_unreadable_snapshot_is_set_aside_and_the_daemon_starts_afresh() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    ws.write(
        "millrace-agents/state/runtime_snapshot.yaml",
        "active_stage: [garbage\n",
    );
    let err = ws.fails(&["status"], 1);
    assert!(err.contains("runtime_snapshot.yaml"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    assert_eq!(
        ws.read("millrace-agents/quarantine/runtime_snapshot.yaml"),
        "active_stage: [garbage\n"
    );
    assert!(ws.exists("millrace-agents/quarantine/runtime_snapshot.yaml.error.yaml"));
    assert!(has_event(&ws, "state_file_reset"));
    assert_eq!(snapshot(&ws)["process_running"], false);
}

/// State files whose bytes are not text (a stray binary write) are set aside like ones whose
/// text is not YAML; they stopped every start with "not valid UTF-8" instead.
#[test]
fn state_files_that_are_not_text_are_set_aside_too() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    ws.ok(&["run", "once"]);
    for file in ["runtime_snapshot.yaml", "recovery_counters.yaml"] {
        let path = ws.path().join("millrace-agents/state").join(file);
        std::fs::write(&path, b"schema_version: \"1.0\"\nkind: x\xffy\n").unwrap();
    }
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    for file in ["runtime_snapshot.yaml", "recovery_counters.yaml"] {
        assert!(
            ws.exists(&format!("millrace-agents/quarantine/{file}.error.yaml")),
            "{file}"
        );
    }
}

#[test]
fn until_idle_on_a_paused_workspace_exits_and_says_why() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.ok(&["pause"]);
    ws.add_task("t1", "");
    let out = ws.json(&["run", "daemon", "--until-idle"]);
    assert!(out["exit"].as_str().unwrap().contains("paused"), "{out}");
    assert_eq!(ws.folder_of("t1"), ["tasks/queue"]);
}

#[test]
fn a_queued_document_edited_in_place_is_seen_by_a_running_daemon() {
    let ws = TestWs::new();
    // With a settle window, as for any hand-edited file: an in-place write passes through a
    // truncated, empty file, which without one may be read (and rejected) mid-write.
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 300\n",
    );
    let waiting = crate::common::task_doc("t-wait", "")
        .replace("Risk:\n- Low.\n", "Risk:\n- Low.\n\nDepends-On:\n- gate\n");
    ws.write("millrace-agents/tasks/queue/t-wait.md", &waiting);
    let daemon = ws.spawn_daemon(&[]);
    ws.add_task("t-other", "");
    wait_for("the other task to finish", LIMIT, || {
        ws.folder_of("t-other") == ["tasks/done"]
    });
    assert_eq!(ws.folder_of("t-wait"), ["tasks/queue"]);
    std::fs::write(
        ws.rt().join("tasks/queue/t-wait.md"),
        crate::common::task_doc("t-wait", ""),
    )
    .unwrap();
    wait_for("the edited task to run", LIMIT, || {
        ws.folder_of("t-wait") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

/// A `pause` typed while a daemon is starting is never lost: the control client either holds
/// the workspace lock while it applies the pause (the daemon then loads the paused state) or
/// finds the daemon holding it and hands the pause over. Seeded trials vary which of the two
/// starts first and by how much (printed on failure).
#[test]
fn a_pause_applied_while_a_daemon_starts_is_never_lost() {
    let trials: u64 = 40;
    for seed in 0..trials {
        let ws = TestWs::new();
        ws.use_scripted(None);
        // A cheap seeded generator: offsets of 0–15 ms in both directions.
        let jitter = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        let pause_first = seed % 2 == 0;
        let pause = |ws: &TestWs| {
            let cmd = ws.cmd().args(["pause", "--wait", "10"]).spawn().unwrap();
            crate::common::Daemon::from_child(cmd)
        };
        let (first, second) = if pause_first {
            let p = pause(&ws);
            std::thread::sleep(Duration::from_millis(jitter));
            let d = ws.cmd().args(["run", "daemon"]).spawn().unwrap();
            (p, crate::common::Daemon::from_child(d))
        } else {
            let d = ws.cmd().args(["run", "daemon"]).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(jitter));
            (crate::common::Daemon::from_child(d), pause(&ws))
        };
        let (paused_cmd, daemon) = if pause_first {
            (first, second)
        } else {
            (second, first)
        };
        let out = paused_cmd.wait_exit(LIMIT);
        assert!(
            out.status.success(),
            "seed {seed}: pause failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(&format!("seed {seed}: the daemon to run"), LIMIT, || {
            has_event(&ws, "runtime_started")
        });
        // The pause is in force once the daemon has taken every command in.
        wait_for(&format!("seed {seed}: the mailbox to drain"), LIMIT, || {
            ws.ls("millrace-agents/state/mailbox/incoming").is_empty()
        });
        assert_eq!(
            snapshot(&ws)["paused"],
            true,
            "seed {seed} (pause first: {pause_first}, jitter {jitter} ms): the pause was lost"
        );
        ws.ok(&["stop"]);
        daemon.wait_exit(LIMIT);
    }
}

/// A pause outlives the process: a daemon stopped by `stop` or SIGTERM, or a direct `stop`,
/// leaves the workspace paused, so a supervisor's restart does not start work the operator
/// held back. Only `resume` ends it.
#[test]
fn a_pause_survives_stop_sigterm_and_a_direct_stop() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    ws.ok(&["pause"]);
    let daemon = ws.spawn_daemon(&[]);
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
    assert_eq!(snapshot(&ws)["paused"], true, "after a mailbox stop");

    let daemon = ws.spawn_daemon(&[]);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    daemon.wait_exit(LIMIT);
    assert_eq!(snapshot(&ws)["paused"], true, "after SIGTERM");

    let direct = ws.run(&["stop"]);
    assert!(
        String::from_utf8_lossy(&direct.stdout).contains("stays paused"),
        "{direct:?}"
    );
    assert_eq!(snapshot(&ws)["paused"], true, "after a direct stop");
    assert_eq!(
        ws.folder_of("t1"),
        ["tasks/queue"],
        "nothing ran while paused"
    );

    ws.ok(&["resume"]);
    ws.ok(&["run", "once"]);
    assert_eq!(ws.claimed(), ["t1"]);
}
