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

/// Drop a task straight into `tasks/queue/` (no CLI call that could bootstrap files), renamed
/// in whole: the tests run with no settle window.
fn drop_task(ws: &TestWs, id: &str) {
    let staged = ws.write(&format!("staged/{id}.md"), &task_doc(id, ""));
    std::fs::rename(staged, ws.rt().join(format!("tasks/queue/{id}.md"))).unwrap();
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
    // Renamed into place: a daemon delayed under load must not catch it half written.
    let staged = ws.rt().join("millrace.yaml.staged");
    std::fs::write(&staged, saved).unwrap();
    std::fs::rename(&staged, &config).unwrap();
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

/// A `sleep 1000` in its own process group, as an unrelated process of the same user.
fn bystander() -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .expect("spawn a bystander")
}

/// Field 22 of `/proc/<pid>/stat`, as a forger would read it.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string()
}

fn kill_group(pid_file: &std::path::Path) {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
}

#[test]
fn a_forged_process_record_does_not_make_a_restarted_daemon_kill_a_bystander() {
    let ws = TestWs::new();
    let mut victim = bystander();
    let pid = victim.id();
    // The harness waits for its real record, then replaces it with one naming the bystander
    // (its true start time, the group it leads, even the harness's own token).
    let forge = format!(
        "builder run echo $$ > \"$FAKE_HARNESS_STATE/harness.pid\"; \
         until ls \"$RUN_DIR\"/runner_process.*.yaml >/dev/null 2>&1; do sleep 0.05; done; \
         f=$(ls \"$RUN_DIR\"/runner_process.*.yaml); \
         t=${{MILLRACE_HARNESS_TOKEN:+token: $MILLRACE_HARNESS_TOKEN}}; \
         printf 'pid: {pid}\\nprocess_group: {pid}\\nstart_time_ticks: {}\\nargv0: sleep\\nstarted_at: 2026-01-01T00:00:00Z\\n%s\\n' \"$t\" > \"$f.new\"; \
         mv \"$f.new\" \"$f\"; touch \"$FAKE_HARNESS_STATE/forged\"; sleep 1000\n\
         builder emit ### BUILDER_COMPLETE\n",
        start_time(pid)
    );
    ws.use_fake_harness(&forge);
    drop_task(&ws, "t1");
    let daemon = ws.spawn_daemon(&[]);
    let state = ws.path().join("fake-state");
    wait_for("the harness to forge its record", LIMIT, || {
        state.join("forged").exists()
    });
    daemon.kill9();
    let restarted = ws.spawn_daemon(&[]);
    wait_for("the record to be refused", LIMIT, || {
        count_events(&ws, "process_record_refused") == 1
    });
    assert_eq!(count_events(&ws, "orphaned_harness_killed"), 0);
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    ws.ok(&["stop"]);
    restarted.wait_exit(LIMIT);
    kill_group(&state.join("harness.pid"));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let ignore = ws.read("millrace-agents/.gitignore");
    assert!(ignore.contains("runs/*/runner_process.*.yaml"), "{ignore}");
}

#[test]
fn children_of_a_dead_and_reaped_harness_leader_are_killed_at_takeover() {
    // Orphans are re-parented to this test process, so it can reap the dead leader itself, as
    // init would.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\nbuilder emit ### BUILDER_COMPLETE\n");
    drop_task(&ws, "t1");
    let daemon = ws.spawn_daemon(&[]);
    let state = ws.path().join("fake-state");
    let mut grandchild = 0;
    let mut leader: i32 = 0;
    let pid_in = |name: &str| -> i32 {
        std::fs::read_to_string(state.join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_for(
        "the harness to record itself and its grandchild",
        LIMIT,
        || {
            grandchild = pid_in("grandchild.pid");
            leader = pid_in("harness.pid");
            grandchild > 0 && leader > 0
        },
    );
    daemon.kill9();
    let leader = rustix::process::Pid::from_raw(leader).unwrap();
    rustix::process::kill_process(leader, rustix::process::Signal::KILL).unwrap();
    rustix::process::waitpid(Some(leader), rustix::process::WaitOptions::empty()).unwrap();
    assert!(
        crate::common::alive(grandchild),
        "the child should outlive its leader"
    );

    let restarted = ws.spawn_daemon(&[]);
    wait_for("the leader's children to be killed", LIMIT, || {
        !crate::common::alive(grandchild)
    });
    wait_for("t1 to finish", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    assert_eq!(count_events(&ws, "orphaned_harness_killed"), 1);
    ws.ok(&["stop"]);
    restarted.wait_exit(LIMIT);
}

#[test]
fn unknown_runner_names_fail_validate_start_and_reload() {
    let ws = TestWs::new();
    let config = "millrace-agents/millrace.yaml";
    ws.write(config, "runners:\n  default_runner: nonexistent\n");
    let err = ws.fails(&["config", "validate"], 1);
    assert!(err.contains("runners.default_runner"), "{err}");
    let err = ws.fails(&["run", "once"], 1);
    assert!(err.contains("`nonexistent`"), "{err}");

    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    let good = ws.read(config);
    ws.write(
        config,
        &format!("{good}stages:\n  builder:\n    runner: nope\n"),
    );
    wait_for("the reload to be refused", LIMIT, || {
        count_events(&ws, "runtime_config_reload_failed") == 1
    });
    let snap = snapshot(&ws);
    assert!(
        snap["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("stages.builder.runner")),
        "{snap}"
    );
    drop_task(&ws, "t1");
    wait_for("t1 to finish on the running config", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

/// `doctor --json`'s findings (it exits 6 when it finds an error).
fn doctor_findings(ws: &TestWs) -> Vec<serde_json::Value> {
    let out = ws.run(&["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    report["findings"].as_array().cloned().unwrap_or_default()
}

/// An outside folder with one file whose content must survive.
fn outside_file(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, "outside\n").unwrap();
    (dir, file)
}

#[test]
fn links_planted_where_millrace_keeps_its_files_are_refused_not_followed() {
    use std::os::unix::fs::symlink;
    let ws = TestWs::new();
    ws.use_scripted(None);

    let (_lock_dir, target) = outside_file("victim.txt");
    let lock = ws.rt().join("state/runtime_daemon.lock.yaml");
    let _ = std::fs::remove_file(&lock);
    symlink(&target, &lock).unwrap();
    let err = ws.fails(&["run", "once"], 1);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "outside\n");
    let findings = doctor_findings(&ws);
    assert!(
        findings.iter().any(|f| f["code"] == "symlink_in_runtime"
            && f["path"] == "millrace-agents/state/runtime_daemon.lock.yaml"),
        "{findings:?}"
    );
    std::fs::remove_file(&lock).unwrap();

    let (_log_dir, target) = outside_file("log.txt");
    let log = ws.rt().join("logs/runtime_events.jsonl");
    let _ = std::fs::remove_file(&log);
    symlink(&target, &log).unwrap();
    ws.fails(&["run", "once"], 1);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "outside\n");
    std::fs::remove_file(&log).unwrap();

    // A queue folder that leads outside: nothing is moved out of (or into) it.
    let outside_queue = tempfile::tempdir().unwrap();
    std::fs::write(outside_queue.path().join("t1.md"), task_doc("t1", "")).unwrap();
    let queue = ws.rt().join("tasks/queue");
    std::fs::remove_dir(&queue).unwrap();
    symlink(outside_queue.path(), &queue).unwrap();
    let err = ws.fails(&["run", "once"], 1);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(outside_queue.path().join("t1.md").exists());
    assert!(ws.ls("millrace-agents/tasks/active").is_empty());
}

#[test]
fn a_stage_results_link_planted_mid_run_gets_no_write() {
    let ws = TestWs::new();
    let outside = tempfile::tempdir().unwrap();
    ws.use_fake_harness(&format!(
        "builder run mkdir -p \"$RUN_DIR\"; rm -rf \"$RUN_DIR/stage_results\"; ln -s {} \"$RUN_DIR/stage_results\"; echo '### BUILDER_COMPLETE'\n",
        outside.path().display()
    ));
    drop_task(&ws, "t1");
    ws.run(&["run", "daemon", "--until-idle", "--max-ticks", "40"]);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "a stage result was written outside the workspace"
    );
    assert_eq!(ws.folder_of("t1").len(), 1, "t1 was lost or duplicated");
    let findings = doctor_findings(&ws);
    assert!(
        findings.iter().any(|f| f["code"] == "symlink_in_runtime"),
        "{findings:?}"
    );
}

#[test]
fn a_deleted_state_folder_is_recreated_and_the_lock_taken_again() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let daemon = ws.spawn_daemon(&[]);
    // The daemon may be writing in state/ at that moment (its first pass), which makes one
    // removal fail with "directory not empty"; the next one gets it.
    wait_for("state/ to be removed", LIMIT, || {
        std::fs::remove_dir_all(ws.rt().join("state")).is_ok()
    });
    // `logs/` survives: the event log says what happened.
    drop_task(&ws, "t1");
    wait_for("t1 to finish after state/ is recreated", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    assert!(count_events(&ws, "runtime_lock_reestablished") >= 1);
    assert!(ws.exists("millrace-agents/state/runtime_snapshot.yaml"));
    let err = ws.fails(&["run", "daemon"], 4);
    assert!(err.contains(&format!("pid {}", daemon.pid())), "{err}");
    ws.ok(&["stop"]);
    assert!(daemon.wait_exit(LIMIT).status.success());
}

#[test]
fn a_daemon_whose_lock_file_was_taken_by_another_stops_without_writing() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    // The first daemon may notice the deleted lock file and take it back before the second
    // starts (then the second refuses to start): try until the second one wins the race.
    let (first, second) = (0..20)
        .find_map(|_| {
            let first = ws.spawn_daemon(&[]);
            std::fs::remove_file(ws.rt().join("state/runtime_daemon.lock.yaml")).unwrap();
            match ws.try_spawn_daemon(&[]) {
                Some(second) => Some((first, second)),
                None => {
                    ws.ok(&["stop"]);
                    first.wait_exit(LIMIT);
                    None
                }
            }
        })
        .expect("the second daemon never won the race for the deleted lock file");
    drop_task(&ws, "t1");
    let out = first.wait_exit(LIMIT);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {}", second.pid())),
        "{stderr}"
    );
    wait_for("the new owner to finish t1", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    let builders = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "stage_started" && e["data"]["stage"] == "builder")
        .count();
    assert_eq!(builders, 1, "the stage ran twice");
    ws.ok(&["stop"]);
    second.wait_exit(LIMIT);
}

/// A small tmpfs mounted over a test workspace's folder, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` (with a message) where this machine cannot mount one (not root, no tmpfs).
    fn mount(at: &std::path::Path) -> Option<SmallDisk> {
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root) to fill a disk");
        }
        mounted.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_keeps_the_item_active_says_so_in_status_and_resumes_when_space_returns() {
    let ws = TestWs::bare();
    let Some(_disk) = SmallDisk::mount(ws.path()) else {
        return;
    };
    ws.ok(&["init"]);
    let filler = ws.path().join("filler");
    ws.use_fake_harness(&format!(
        "builder run dd if=/dev/zero of={} bs=64k 2>/dev/null; echo '### BUILDER_COMPLETE'\n\
         builder emit ### BUILDER_COMPLETE\n",
        filler.display()
    ));
    let daemon = ws.spawn_daemon(&[]);
    drop_task(&ws, "t1");
    wait_for("status to report the fault", LIMIT, || {
        ws.json(&["status"])["daemon"]["fault"]
            .as_str()
            .is_some_and(|f| f.contains("No space left"))
    });
    let text = ws.ok(&["status"]);
    assert!(text.contains("waiting out an I/O fault"), "{text}");
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);

    std::fs::remove_file(&filler).unwrap();
    wait_for("t1 to finish once space is back", LIMIT, || {
        ws.folder_of("t1") == ["tasks/done"]
    });
    assert!(ws.json(&["status"])["daemon"]["fault"].is_null());
    assert!(count_events(&ws, "runtime_fault_cleared") >= 1);
    assert_eq!(count_events(&ws, "work_item_blocked"), 0);
    assert!(!ws
        .read("millrace-agents/state/recovery_counters.yaml")
        .contains("runtime_repair"));
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn init_states_the_permission_level_in_force() {
    let ws = TestWs::bare();
    let out = ws.ok(&["init"]);
    assert!(
        out.contains("codex_cli runs at permission level basic"),
        "{out}"
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  codex:\n    permission_default: maximum\n",
    );
    let report = ws.json(&["init"]);
    assert_eq!(report["default_runner"], "codex_cli");
    assert_eq!(report["permission"], "maximum");
}

#[test]
fn a_workspace_moved_away_mid_stage_is_not_recreated_at_the_old_path() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder run touch \"$FAKE_HARNESS_STATE/started\"; sleep 1; echo '### BUILDER_COMPLETE'\n",
    );
    drop_task(&ws, "t1");
    let daemon = ws.spawn_daemon(&[]);
    let started = ws.path().join("fake-state/started");
    wait_for("the builder to start", LIMIT, || started.exists());
    let moved = ws.path().with_extension("moved");
    std::fs::rename(ws.path(), &moved).unwrap();
    let out = daemon.wait_exit(LIMIT);
    let recreated = ws.path().exists();
    std::fs::rename(&moved, ws.path()).unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is gone"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!recreated, "the daemon recreated the old workspace path");
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
}

#[test]
fn doctor_warns_about_a_config_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TestWs::new();
    let config = ws.rt().join("millrace.yaml");
    assert!(!doctor_findings(&ws)
        .iter()
        .any(|f| f["code"] == "config_writable_by_others"));
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let findings = doctor_findings(&ws);
    let finding = findings
        .iter()
        .find(|f| f["code"] == "config_writable_by_others")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(finding["level"], "warning");
    assert!(finding["fix"].as_str().unwrap().contains("chmod go-w"));
}

#[test]
fn dependencies_that_can_never_be_met_are_reported_or_quarantined() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let queue = "millrace-agents/tasks/queue";
    for (id, dep) in [
        ("t-self", "t-self"),
        ("t-path", "../../etc/passwd"),
        ("t-a", "t-b"),
        ("t-b", "t-a"),
    ] {
        let doc = task_doc(id, "").replace(
            "Target-Paths:",
            &format!("Depends-On:\n- {dep}\n\nTarget-Paths:"),
        );
        ws.write(&format!("{queue}/{id}.md"), &doc);
    }
    ws.write(&format!("{queue}/t-nl\n.md"), &task_doc("t-nl", ""));

    let findings = doctor_findings(&ws);
    let cycles: Vec<_> = findings
        .iter()
        .filter(|f| f["code"] == "dependency_cycle")
        .map(|f| f["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        cycles,
        [format!("{queue}/t-a.md"), format!("{queue}/t-b.md")],
        "{findings:?}"
    );

    ws.run_until_idle();
    let quarantine = ws.ls("millrace-agents/quarantine");
    for name in ["t-self.md", "t-path.md"] {
        assert!(quarantine.contains(&name.to_string()), "{quarantine:?}");
        let reason = ws.read(&format!("millrace-agents/quarantine/{name}.error.yaml"));
        assert!(reason.contains("can never be met"), "{reason}");
    }
    let reason = ws.read("millrace-agents/quarantine/t-nl\n.md.error.yaml");
    assert!(reason.contains(r#"found \"t-nl\\n\""#), "{reason}");
}

#[test]
fn files_whose_names_are_not_utf8_are_quarantined_with_the_reason() {
    use std::os::unix::ffi::OsStrExt;
    let ws = TestWs::new();
    ws.use_scripted(None);
    let name = std::ffi::OsStr::from_bytes(b"t-\xff.md");
    std::fs::write(ws.rt().join("tasks/queue").join(name), task_doc("t-x", "")).unwrap();
    std::fs::write(
        ws.rt().join("ideas/inbox").join(name),
        "# An idea\n\nDo it.\n",
    )
    .unwrap();
    ws.run_until_idle();
    assert!(ws.ls("millrace-agents/tasks/queue").is_empty());
    assert!(ws.ls("millrace-agents/ideas/inbox").is_empty());
    let reasons: Vec<String> = ws
        .ls("millrace-agents/quarantine")
        .into_iter()
        .filter(|n| n.ends_with(".error.yaml"))
        .map(|n| ws.read(&format!("millrace-agents/quarantine/{n}")))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("not valid UTF-8")),
        "{reasons:?}"
    );
    assert_eq!(ws.json(&["status"])["snapshot"]["queue_depth_execution"], 0);
}

#[test]
fn the_scripted_runner_keeps_only_counts_that_change_an_answer() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    for id in ["t1", "t2", "t3"] {
        drop_task(&ws, id);
    }
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t3"), ["tasks/done"]);
    assert!(!ws.exists("millrace-agents/state/scripted_runner.yaml"));
}

#[test]
fn a_quarantined_file_is_never_left_without_its_reason() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write("millrace-agents/tasks/queue/t-bad.md", "# not a task\n");
    // The process dies while writing the reason (as a full disk or a crash would stop it).
    let out = ws
        .cmd()
        .args(["run", "once"])
        .env("MILLRACE_FAILPOINTS", "write:t-bad.md.error.yaml=abort@1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let quarantined = ws.ls("millrace-agents/quarantine");
    assert!(
        !quarantined.contains(&"t-bad.md".to_string()),
        "the file reached quarantine without its reason: {quarantined:?}"
    );
    ws.ok(&["run", "once"]);
    // The aborted write's temp file stays until the housekeeping sweep finds it old enough.
    let mut after = ws.ls("millrace-agents/quarantine");
    after.retain(|name| !name.starts_with('.'));
    assert_eq!(after, ["t-bad.md", "t-bad.md.error.yaml"]);
}

/// `millrace <args>`, failing the test if it has not exited within [`LIMIT`].
fn run_within(ws: &TestWs, args: &[&str]) -> std::process::Output {
    let child = ws
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn millrace");
    crate::common::Daemon::from_child(child).wait_exit(LIMIT)
}

fn fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn a_fifo_where_the_queue_index_was_is_ignored_and_replaced_not_waited_on() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    let index = ws.rt().join("state/cache/task-queue.tsv");
    fifo(&index);
    let out = run_within(&ws, &["run", "once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count_events(&ws, "work_item_claimed"), 1);
    assert!(
        std::fs::symlink_metadata(&index).unwrap().is_file(),
        "the index is written anew as a regular file"
    );
}

/// `args` fails at once, naming `file` as not a regular file.
fn refused_naming(ws: &TestWs, args: &[&str], file: &str) {
    let out = run_within(ws, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}");
    assert!(
        stderr.contains(file) && stderr.contains("not a regular file"),
        "{args:?}: {stderr}"
    );
}

#[test]
fn a_fifo_where_a_state_file_or_the_event_log_was_is_an_error_naming_it_not_a_hang() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    ws.ok(&["status"]);
    let snapshot = ws.rt().join("state/runtime_snapshot.yaml");
    fifo(&snapshot);
    for args in [&["status"][..], &["run", "once"]] {
        refused_naming(&ws, args, "runtime_snapshot.yaml");
    }
    std::fs::remove_file(&snapshot).unwrap();

    let log = ws.rt().join("logs/runtime_events.jsonl");
    fifo(&log);
    refused_naming(&ws, &["run", "once"], "runtime_events.jsonl");
    assert_eq!(ws.folder_of("t1"), ["tasks/queue"], "nothing was claimed");
}

#[test]
fn a_fifo_where_the_lock_file_was_is_refused_naming_it_not_a_hang() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t1", "");
    let lock = ws.rt().join("state/runtime_daemon.lock.yaml");
    let _ = std::fs::remove_file(&lock);
    fifo(&lock);
    // `status` only looks at the lock: it says no daemon runs instead of waiting for a writer.
    let out = run_within(&ws, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["daemon"]["running"], false, "{status:#}");
    refused_naming(&ws, &["run", "once"], "runtime_daemon.lock.yaml");
    assert_eq!(ws.folder_of("t1"), ["tasks/queue"], "nothing was claimed");
}

/// The scripted runner's script is read only as a real file inside the project: a link in
/// its place, or a linked folder on the way to it, pointing outside is refused by `config
/// validate`, `doctor` and the daemon's start, and nothing of the file outside is quoted.
#[test]
fn a_scripted_runner_script_linked_outside_the_project_is_not_read() {
    let (_dir, secret) = outside_file("secret.yaml");
    std::fs::write(&secret, "root-password-line: hunter2\n").unwrap();
    for (name, via_folder) in [("the script", false), ("a folder on the way", true)] {
        let ws = TestWs::new();
        ws.use_scripted(Some("stages: {}\n"));
        let script = ws.path().join("script.yaml");
        std::fs::remove_file(&script).unwrap();
        if via_folder {
            std::os::unix::fs::symlink(secret.parent().unwrap(), ws.path().join("scripts"))
                .unwrap();
            let config = ws
                .read("millrace-agents/millrace.yaml")
                .replace("script: script.yaml", "script: scripts/secret.yaml");
            ws.write("millrace-agents/millrace.yaml", &config);
        } else {
            std::os::unix::fs::symlink(&secret, &script).unwrap();
        }
        let out = ws.run(&["config", "validate"]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        assert!(all.contains("symbolic link"), "{name}: {all}");
        assert!(
            !all.contains("hunter2") && !all.contains("root-password"),
            "{name}: {all}"
        );
        let doctor = ws.run(&["doctor"]);
        let text = String::from_utf8_lossy(&doctor.stdout).to_string();
        assert!(text.contains("scripted_script_invalid"), "{name}: {text}");
        assert!(!text.contains("hunter2"), "{name}: {text}");
        let start = ws.run(&["run", "daemon", "--until-idle"]);
        let said = String::from_utf8_lossy(&start.stderr).to_string();
        assert!(
            said.contains("symbolic link") && !said.contains("hunter2"),
            "{name}: {said}"
        );
    }
}

/// No file under `millrace-agents/` holds `canary` (a file's text from outside the project).
fn assert_nowhere_in_runtime(ws: &TestWs, canary: &str) {
    let found = std::process::Command::new("grep")
        .args(["-rl", canary, "millrace-agents"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "read from outside into: {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

/// A root spec's references are written by agents. The seed idea a closure target copies
/// into `arbiter/contracts/` (where the arbiter reads it, and git may commit it) is read only
/// as a real file inside the project: a link to a file outside, a `..` out of the project and
/// an absolute path elsewhere are passed over, and the first real idea inside is copied.
#[test]
fn a_spec_reference_leading_outside_the_project_is_never_copied_into_the_contracts() {
    let (outside, secret) = outside_file("secret.md");
    std::fs::write(&secret, "# Secret\n\nSECRET-CANARY-7\n").unwrap();
    let ws = TestWs::new();
    ws.use_scripted(None);
    std::os::unix::fs::symlink(&secret, ws.path().join("notes.md")).unwrap();
    ws.write("ideas/real.md", "# Real idea\n\nThe seed.\n");
    let up = "../".repeat(ws.path().components().count());
    let escape = format!("{up}{}", secret.strip_prefix("/").unwrap().display());
    let spec = crate::common::spec_doc("s-refs", "2026-03-01T10:00:00Z").replace(
        "References:\n- README.md\n",
        &format!(
            "References:\n- notes.md\n- {escape}\n- {}\n- ideas/real.md\n",
            secret.display()
        ),
    );
    let path = ws.write("inputs/s-refs.md", &spec);
    ws.ok(&["add-spec", path.to_str().unwrap()]);
    ws.run_until_idle();
    let copy = ws.read("millrace-agents/arbiter/contracts/ideas/s-refs.md");
    assert!(copy.contains("The seed."), "{copy}");
    assert_nowhere_in_runtime(&ws, "SECRET-CANARY-7");
    drop(outside);
}

/// A harness that replaces one of its run files (here the last-message file Codex writes)
/// with a link to a file outside the workspace does not get it read: the stage has no
/// result, and nothing of the file reaches the run's records, the event log or the next
/// stage's prompt.
#[test]
fn a_run_file_the_harness_replaced_with_a_link_outside_is_not_read() {
    let (outside, secret) = outside_file("secret.txt");
    std::fs::write(&secret, "SECRET-CANARY-9\n### BUILDER_COMPLETE\n").unwrap();
    let ws = TestWs::new();
    ws.use_fake_harness(&format!(
        "builder run ln -sf {} \"$LAST_MESSAGE_FILE\"\n",
        secret.display()
    ));
    ws.add_task("t1", "");
    ws.run(&["run", "once"]);
    assert_nowhere_in_runtime(&ws, "SECRET-CANARY-9");
    let out = ws.run(&["runs", "tail", "-n", "0"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains("SECRET-CANARY-9"), "{shown}");
    assert!(
        !ws.events()
            .iter()
            .any(|e| e["event_type"] == "stage_completed"
                && e["data"]["terminal_result"] == "BUILDER_COMPLETE"),
        "the linked file's marker was taken"
    );
    drop(outside);
}
