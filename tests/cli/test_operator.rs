//! Issue 14: what a new operator trips over (timing, contract gaps, git clones, seeing what
//! happens, requeue, broken pipes).

use std::time::{Duration, Instant};

use crate::common::{spec_doc, wait_for, TestWs};

const LIMIT: Duration = Duration::from_secs(20);

fn has_event(ws: &TestWs, kind: &str) -> bool {
    ws.events().iter().any(|e| e["event_type"] == kind)
}

/// The scripted runner with the default settle window (200 ms), unlike `use_scripted`.
fn scripted_with_settle(ws: &TestWs) {
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\n",
    );
}

// 1 ---------------------------------------------------------------------------------------

#[test]
fn max_ticks_on_an_idle_workspace_returns_at_once() {
    let ws = TestWs::new();
    let started = Instant::now();
    ws.ok(&["run", "daemon", "--max-ticks", "2"]);
    // Two idle ticks used to cost two 60 s rescan intervals.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

// 2 ---------------------------------------------------------------------------------------

#[test]
fn young_broken_files_are_rejected_right_after_their_settle_window() {
    let ws = TestWs::new();
    scripted_with_settle(&ws);
    let _daemon = ws.spawn_daemon(&[]);
    let settle_plus_one = Duration::from_millis(200) + Duration::from_secs(1);
    let spec = spec_doc("s-young", "2026-03-01T10:00:00Z")
        .replace("Source-Type: manual\n", "")
        .replace("Constraints:\n- None.\n\n", "");
    let written = Instant::now();
    ws.write(
        "millrace-agents/state/mailbox/incoming/junk.yaml",
        "{{ not yaml",
    );
    ws.write("millrace-agents/specs/queue/s-young.md", &spec);
    wait_for("both files to be rejected", settle_plus_one, || {
        ws.exists("millrace-agents/state/mailbox/failed/junk.yaml.error.yaml")
            && ws.exists("millrace-agents/quarantine/s-young.md.error.yaml")
    });
    assert!(written.elapsed() < settle_plus_one);
}

// 3 ---------------------------------------------------------------------------------------

#[test]
fn run_once_takes_in_an_idea_added_just_before() {
    let ws = TestWs::new();
    scripted_with_settle(&ws);
    let idea = ws.write(
        "inputs/fetch.md",
        "# Resilient fetch\n\nRetry with backoff.\n",
    );
    ws.ok(&["add-idea", idea.to_str().unwrap()]);
    let out = ws.json(&["run", "once"]);
    assert_eq!(out["outcome"], "stage", "{out}");
    assert!(has_event(&ws, "idea_normalized_to_spec"));
}

// 4 ---------------------------------------------------------------------------------------

#[test]
fn an_unknown_mode_is_an_error_wherever_it_is_named() {
    let ws = TestWs::new();
    scripted_with_settle(&ws);
    for args in [
        &["run", "once", "--mode", "no_such_mode"][..],
        &[
            "run",
            "daemon",
            "--mode",
            "no_such_mode",
            "--max-ticks",
            "1",
        ][..],
    ] {
        let err = ws.fails(args, 1);
        assert!(
            err.contains("Unknown built-in mode id: no_such_mode"),
            "{err}"
        );
        assert!(err.contains("millrace modes list"), "{err}");
    }
    ws.write(
        "millrace-agents/millrace.yaml",
        "runtime:\n  default_mode: no_such_mode\nrunners:\n  default_runner: scripted\n",
    );
    let err = ws.fails(&["run", "once"], 1);
    assert!(err.contains("runtime.default_mode"), "{err}");
    assert!(!has_event(&ws, "runtime_started"));
}

// 5 ---------------------------------------------------------------------------------------

/// Every file under the workspace with its bytes and modification time.
fn tree(ws: &TestWs) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut out: Vec<_> = walk(ws.path())
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            let bytes = if meta.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p.display().to_string(), bytes, meta.modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

#[test]
fn read_only_commands_create_and_modify_nothing() {
    let ws = TestWs::new();
    let before = tree(&ws);
    for args in [
        &["config", "validate"][..],
        &["config", "show"][..],
        &["compile", "validate"][..],
        &["compile", "show"][..],
        &["compile", "graph"][..],
        &["status"][..],
        &["queue", "ls"][..],
        &["doctor"][..],
    ] {
        let _ = ws.run(args);
    }
    ws.fails(&["compile", "validate", "--mode", "bad"], 1);
    assert!(before == tree(&ws), "a read-only command wrote a file");
}

// 6 ---------------------------------------------------------------------------------------

#[test]
fn queue_show_of_a_malformed_task_fails_on_stderr() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/tasks/queue/t-bad.md",
        &crate::common::task_doc("t-bad", "")
            .replace("Created-At: 2026-03-01T10:00:00Z", "Created-At: yesterday"),
    );
    let out = ws.run(&["queue", "show", "t-bad"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("id: t-bad") && !stdout.contains("error"),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: millrace-agents/tasks/queue/t-bad.md"),
        "{stderr}"
    );
}

// 7 ---------------------------------------------------------------------------------------

#[test]
fn control_commands_with_nothing_to_do_say_so() {
    let ws = TestWs::new();
    let out = ws.run(&["resume"]);
    assert_eq!(out.status.code(), Some(5));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not paused; nothing to do"), "{text}");
    assert!(
        !text.contains("resumed") && !text.contains("applied directly"),
        "{text}"
    );
    let out = ws.run(&["clear-stale-state"]);
    assert_eq!(out.status.code(), Some(5));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nothing to do") && !text.contains("cleared"),
        "{text}"
    );
    ws.ok(&["pause"]);
    let out = ws.run(&["pause"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already paused; nothing to do"));
}

// 8 ---------------------------------------------------------------------------------------

#[test]
fn doctor_does_not_call_a_cleanly_released_lock_stale() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t-one", "");
    ws.ok(&["run", "once"]);
    assert_eq!(ws.folder_of("t-one"), ["tasks/active"]);
    let out = ws.run(&["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"active_without_owner"), "{codes:?}");
    assert!(
        !codes.contains(&"runtime_ownership_lock_stale"),
        "{codes:?}"
    );
}

// 9 ---------------------------------------------------------------------------------------

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_fresh_git_clone_of_a_committed_workspace_just_works() {
    let origin = TestWs::new();
    origin.use_scripted(None);
    origin.add_task("t-cloned", "");
    git(origin.path(), &["init", "-q"]);
    git(origin.path(), &["add", "-A"]);
    git(origin.path(), &["commit", "-qm", "workspace"]);
    let clone = TestWs::bare();
    git(
        clone.path(),
        &["clone", "-q", origin.path().to_str().unwrap(), "."],
    );
    // git keeps no empty folders: the clone lacks them.
    assert!(!clone.exists("millrace-agents/tasks/active"));
    assert!(!clone.exists("millrace-agents/state/mailbox/incoming"));
    let status = clone.json(&["status"]);
    assert_eq!(status["snapshot"]["process_running"], false, "{status}");
    let doctor = clone.run(&["doctor"]);
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    clone.ok(&["queue", "ls"]);
    clone.ok(&["runs", "ls"]);
    assert!(
        !clone.exists("millrace-agents/tasks/active"),
        "a read-only command wrote"
    );
    clone.run_until_idle();
    assert_eq!(clone.folder_of("t-cloned"), ["tasks/done"]);
}

// 10 --------------------------------------------------------------------------------------

#[test]
fn committed_run_records_keep_the_prompt_out() {
    use sha2::Digest;
    let ws = TestWs::new();
    ws.use_fake_harness("");
    ws.add_task("t-secret", "");
    ws.ok(&["run", "once"]);
    let runs = ws.ls("millrace-agents/runs");
    let run_dir = format!("millrace-agents/runs/{}", runs[0]);
    let files = ws.ls(&run_dir);
    let find = |prefix: &str| {
        let name = files.iter().find(|f| f.starts_with(prefix)).unwrap();
        format!("{run_dir}/{name}")
    };
    let prompt = ws.read(&find("runner_prompt."));
    let completion = ws.read(&find("runner_completion."));
    assert!(!prompt.is_empty());
    for line in prompt.lines().filter(|l| l.len() > 20) {
        assert!(
            !completion.contains(line),
            "prompt line in completion: {line}"
        );
    }
    let record: serde_json::Value = serde_saphyr::from_str(&completion).unwrap();
    assert!(
        record["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "<prompt>"),
        "{completion}"
    );
    let digest = format!("{:x}", sha2::Sha256::digest(prompt.as_bytes()));
    assert_eq!(record["prompt_sha256"], digest.as_str());
    assert_eq!(record["prompt_bytes"], prompt.len());
    // Every file that holds the prompt is ignored by the generated .gitignore.
    git(ws.path(), &["init", "-q"]);
    for prefix in [
        "runner_prompt.",
        "runner_invocation.",
        "runner_stdout.",
        "runner_events.",
    ] {
        if let Some(name) = files.iter().find(|f| f.starts_with(prefix)) {
            git(
                ws.path(),
                &["check-ignore", "-q", &format!("{run_dir}/{name}")],
            );
        }
    }
}

// 15 --------------------------------------------------------------------------------------

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let ws = TestWs::new();
    for args in [
        &["completions", "fish"][..],
        &["man"][..],
        &["status"][..],
        &["queue", "ls"][..],
        &["status", "watch", "--interval-seconds", "0.01"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = ws
            .cmd()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = crate::common::Daemon::from_child(child).wait_exit(LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

// 14 --------------------------------------------------------------------------------------

#[test]
fn requeue_moves_a_blocked_item_back_directly_and_through_a_running_daemon() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/tasks/blocked/t-b.md",
        &crate::common::task_doc("t-b", ""),
    );
    let out = ws.run(&["requeue", "t-nope"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no work item with id t-nope"));
    let text = ws.ok(&["requeue", "t-b", "--reason", "fixture fixed"]);
    assert!(text.contains("blocked task t-b requeued"), "{text}");
    assert_eq!(ws.folder_of("t-b"), ["tasks/queue"]);
    assert!(ws
        .read("millrace-agents/tasks/queue/t-b.requeue.jsonl")
        .contains("fixture fixed"));
    let out = ws.run(&["requeue", "t-b"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already queued"));

    // The same as a mailbox command a running daemon applies.
    ws.write(
        "millrace-agents/tasks/blocked/t-c.md",
        &crate::common::task_doc("t-c", ""),
    );
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-b"), ["tasks/done"]);
    let daemon = ws.spawn_daemon(&[]);
    let text = ws.ok(&["control", "requeue", "t-c"]);
    assert!(text.contains("applied by the running daemon"), "{text}");
    wait_for("t-c to be done", LIMIT, || {
        ws.folder_of("t-c") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
    let envelope = ws.ok(&["control", "requeue", "t-c", "--print"]);
    assert!(
        envelope.contains("command: requeue") && envelope.contains("id: t-c"),
        "{envelope}"
    );
}

#[test]
fn add_task_reads_the_document_from_stdin() {
    let ws = TestWs::new();
    let mut child = ws
        .cmd()
        .args(["add-task", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(crate::common::task_doc("t-stdin", "").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(ws.folder_of("t-stdin"), ["tasks/queue"]);
    assert_eq!(
        ws.read("millrace-agents/tasks/queue/t-stdin.md"),
        crate::common::task_doc("t-stdin", "")
    );
    // An idea is named by its file, so it cannot come from stdin.
    let err = ws.fails(&["add-idea", "-"], 2);
    assert!(err.contains("add-idea needs a file"), "{err}");
}

// 12 --------------------------------------------------------------------------------------

#[test]
fn pause_applies_at_once_stop_says_when_and_status_lists_pending_commands() {
    let ws = TestWs::new();
    // The builder runs until the test creates `go` (or the workspace is gone: a failed test
    // leaves no harness behind).
    ws.use_fake_harness(
        "builder run until [ -f \"$WORKSPACE/go\" ] || [ ! -d \"$WORKSPACE\" ]; do sleep 0.02; done; printf '### BUILDER_COMPLETE\\n' | tee \"$LAST_MESSAGE_FILE\"\n",
    );
    ws.add_task("t-long", "");
    ws.add_task("t-next", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the builder to start", LIMIT, || {
        ws.stages_started() == ["builder"]
    });
    let started = Instant::now();
    let text = ws.ok(&["pause"]);
    assert!(started.elapsed() < Duration::from_secs(5), "pause waited");
    assert!(
        text.contains("applied by the running daemon")
            && text.contains("the running builder stage finishes"),
        "{text}"
    );
    assert_eq!(ws.json(&["status"])["snapshot"]["paused"], true);
    // Paused, but the builder still runs: it is not shown as waiting.
    assert!(ws.json(&["status"])["active_process_group"].is_u64());
    let view = ws.ok(&["status", "watch", "--max-updates", "1"]);
    assert!(view.contains("active: builder on task t-long ("), "{view}");
    assert!(!view.contains("not running"), "{view}");

    let text = ws.ok(&["stop"]);
    assert!(
        text.contains("stops when the running builder stage ends, running for"),
        "{text}"
    );

    // A command that must wait for the stage boundary is listed as pending, and says so.
    let text = ws.ok(&["reload-config", "--wait", "0.2"]);
    assert!(
        text.contains("when the running builder stage ends"),
        "{text}"
    );
    let status = ws.ok(&["status"]);
    assert!(status.contains("pending_mailbox_commands: 1"), "{status}");
    assert!(
        status.contains("pending_command: reload_config (issued "),
        "{status}"
    );
    ws.write("go", "");
    let out = daemon.wait_exit(LIMIT);
    assert!(out.status.success());
    // Paused, so the builder's item went no further, and t-next was never claimed.
    assert_eq!(ws.stages_started(), ["builder"]);
    assert_eq!(ws.folder_of("t-next"), ["tasks/queue"]);
    assert_eq!(
        ws.json(&["status"])["pending_commands"],
        serde_json::json!([])
    );
}

// 13 --------------------------------------------------------------------------------------

#[test]
fn runs_tail_without_an_id_follows_the_newest_stage_even_after_an_interrupt() {
    let ws = TestWs::new();
    ws.fails(&["runs", "tail"], 1);
    ws.use_fake_harness("builder hang\nbuilder emit ### BUILDER_COMPLETE\n");
    let config = ws.read("millrace-agents/millrace.yaml").replace(
        "watchers:\n",
        "runtime:\n  stop_mode: interrupt\nwatchers:\n",
    );
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t-tail", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the builder to start", LIMIT, || {
        ws.stages_started() == ["builder"]
    });
    // The harness has taken its `hang` answer (so the re-run gets the next one).
    wait_for("the harness to start", LIMIT, || {
        ws.exists("fake-state/builder.count")
    });
    let text = ws.ok(&["runs", "tail"]);
    assert!(text.contains("stage: builder\nfinished: false"), "{text}");
    ws.ok(&["stop", "--wait", "0"]);
    daemon.wait_exit(LIMIT);
    assert!(has_event(&ws, "stage_interrupted"));
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-tail"), ["tasks/done"]);
    let text = ws.ok(&["runs", "tail"]);
    assert!(text.contains("stage: updater\nfinished: true"), "{text}");
}

/// `runs tail -f` puts each stream's new lines under that stream's header (stdout written
/// after the dump, which ends with stderr, was printed as if it were stderr) and ends with the
/// followed stage's own result, also once the next stage has started (it said `none`).
#[test]
fn runs_tail_follow_labels_each_stream_and_ends_with_the_stage_result() {
    use std::io::BufRead;
    let ws = TestWs::new();
    let gate = ws.path().join("gate");
    ws.use_fake_harness(&format!(
        "builder run echo tick-1; echo warn-1 >&2; while [ ! -e {} ]; do sleep 0.05; done; echo tick-2; printf '### BUILDER_COMPLETE\\n' | tee \"$LAST_MESSAGE_FILE\"\n",
        gate.display()
    ));
    ws.add_task("t-follow", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the builder's first lines", LIMIT, || {
        let text = String::from_utf8_lossy(&ws.run(&["runs", "tail"]).stdout).into_owned();
        text.contains("tick-1") && text.contains("warn-1")
    });
    let follower = |json: bool| {
        let mut cmd = ws.cmd();
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .args(["runs", "tail", "-f", "--timeout-seconds", "20"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (child, rx)
    };
    let (mut text, text_lines) = follower(false);
    let (mut json, json_lines) = follower(true);
    // Each follower has printed its dump (which ends with stderr's warn-1) before the stage
    // goes on.
    let mut seen = (Vec::new(), Vec::new());
    for (rx, seen) in [(&text_lines, &mut seen.0), (&json_lines, &mut seen.1)] {
        while !seen.iter().any(|l: &String| l.contains("warn-1")) {
            seen.push(rx.recv_timeout(LIMIT).expect("the dump"));
        }
    }
    std::fs::write(&gate, "").unwrap();
    assert!(text.wait().unwrap().success());
    assert!(json.wait().unwrap().success());
    seen.0.extend(text_lines.iter());
    seen.1.extend(json_lines.iter());
    let followed = seen.0.join("\n");
    let (dump, after) = followed.split_at(followed.find("warn-1").unwrap());
    assert!(dump.contains("tick-1"), "{followed}");
    let tick2 = after
        .find("tick-2")
        .unwrap_or_else(|| panic!("tick-2 not followed:\n{followed}\n{:?}", seen.1));
    let header = after.find("--- stdout ---").expect("a stdout header");
    assert!(header < tick2, "{followed}");
    assert!(
        after.contains("--- finished: BUILDER_COMPLETE ---"),
        "{followed}"
    );
    // What the harness printed after the dump, once: the Codex runner writes the final
    // message where the capture was when the stage ends, and reading on in that file from
    // the capture's offset printed a cut-off or repeated line.
    assert!(!followed.contains("\nLDER_COMPLETE"), "{followed}");
    let printed: String = seen.1[1..]
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stream"] == "stdout")
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(printed, "tick-2\n### BUILDER_COMPLETE\n", "{:?}", seen.1);
    let last: serde_json::Value = serde_json::from_str(seen.1.last().unwrap()).unwrap();
    assert_eq!(last["finished"], true, "{:?}", seen.1);
    assert_eq!(last["terminal_result"], "BUILDER_COMPLETE", "{:?}", seen.1);
    ws.ok(&["stop"]);
    daemon.wait_exit(LIMIT);
}

#[test]
fn runs_tail_shows_the_event_stream_when_a_codex_stage_left_no_text() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder run printf '{\"type\":\"note\",\"text\":\"still working\"}\\n'; : > \"$LAST_MESSAGE_FILE\"\n",
    );
    ws.add_task("t-quiet", "");
    ws.run(&["run", "once"]);
    let text = ws.ok(&["runs", "tail"]);
    assert!(text.contains("--- stdout: millrace-agents/runs/"), "{text}");
    assert!(text.contains("runner_events."), "{text}");
    assert!(text.contains("still working"), "{text}");
}

// 11 --------------------------------------------------------------------------------------

#[test]
fn watch_lines_carry_time_duration_failures_controls_and_rejections() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder exit 3\ntroubleshooter emit ### BLOCKED\nconsultant emit ### BLOCKED\n",
    );
    let daemon = ws.spawn_daemon(&[]);
    ws.write(
        "millrace-agents/state/mailbox/incoming/junk.yaml",
        "{{ not yaml",
    );
    wait_for("the junk to be rejected", LIMIT, || {
        ws.exists("millrace-agents/state/mailbox/failed/junk.yaml")
    });
    ws.write("millrace-agents/tasks/queue/t-bad.md", "# not a task\n");
    wait_for("the bad task to be quarantined", LIMIT, || {
        ws.exists("millrace-agents/quarantine/t-bad.md")
    });
    ws.ok(&["pause"]);
    ws.ok(&["resume"]);
    ws.ok(&["reload-config"]);
    ws.add_task("t-w", "");
    wait_for("t-w to be blocked", LIMIT, || {
        ws.folder_of("t-w") == ["tasks/blocked"]
    });
    ws.ok(&["stop"]);
    let out = daemon.wait_exit(LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let timed = |needle: &str| {
        stderr.lines().any(|l| {
            l.contains(needle)
                && l.as_bytes()
                    .get(..10)
                    .is_some_and(|p| p[2] == b':' && p[5] == b':' && &p[8..10] == b"  ")
        })
    };
    for needle in [
        "rejected mailbox file millrace-agents/state/mailbox/incoming/junk.yaml",
        "pause: runtime paused",
        "resume: runtime resumed",
        "rejected millrace-agents/tasks/queue/t-bad.md -> millrace-agents/quarantine/t-bad.md: ",
        "config reloaded: plan ",
        "builder        task t-w  [run-",
        "BLOCKED: task t-w: ",
        "stop: stop requested",
        "stopping: stop requested",
    ] {
        assert!(timed(needle), "no timed line with {needle:?} in:\n{stderr}");
    }
    let failed = stderr
        .lines()
        .find(|l| l.contains("builder        -> "))
        .unwrap_or_else(|| panic!("no builder result in:\n{stderr}"));
    assert!(
        failed.contains("s (next: troubleshooter)  [harness_error: exit 3"),
        "duration, next stage, failure class and message: {failed}"
    );
}

/// Under `--json` a command line that does not parse still prints one JSON error object on
/// stdout (exit 2), as every other error does, and `--print` shows the envelope as JSON.
#[test]
fn json_is_kept_for_usage_errors_and_printed_envelopes() {
    let ws = TestWs::new();
    for args in [
        &["--json", "frobnicate"][..],
        &["queue", "ls", "--json", "--limit", "abc"][..],
    ] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            !out.stderr.is_empty(),
            "{args:?}: clap's text stays on stderr"
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(value["exit_code"], 2, "{value}");
        assert!(
            value["error"]
                .as_str()
                .is_some_and(|e| e.contains("frobnicate") || e.contains("abc")),
            "{value}"
        );
    }
    let plain = ws.run(&["frobnicate"]);
    assert!(plain.stdout.is_empty(), "no JSON without --json");
    let env = ws.json(&["control", "pause", "--print"]);
    assert_eq!(env["command"], "pause", "{env}");
}

/// Config values that passed `config validate` and then broke every stage are refused up
/// front, naming the key: a timeout past the clocks (a stage's deadline overflowed and its
/// thread panicked), an output cap too small for any result marker, and a scripted-runner
/// script outside the workspace (its lines were echoed into committed files).
#[test]
fn config_values_that_would_break_every_stage_are_refused() {
    let ws = TestWs::new();
    for (yaml, key) in [
        (
            "runners:\n  kill_grace_seconds: 18446744073709551615\n",
            "runners.kill_grace_seconds",
        ),
        (
            "runners:\n  idle_timeout_seconds: 18446744073709551615\n",
            "runners.idle_timeout_seconds",
        ),
        (
            "stages:\n  builder:\n    timeout_seconds: 9223372036854775807\n",
            "stages.builder.timeout_seconds",
        ),
        (
            "runners:\n  output_cap_bytes: 0\n",
            "runners.output_cap_bytes",
        ),
        (
            "runners:\n  scripted:\n    script: /etc/passwd\n",
            "runners.scripted.script",
        ),
        (
            "runners:\n  scripted:\n    script: ../../etc/passwd\n",
            "runners.scripted.script",
        ),
    ] {
        ws.write("millrace-agents/millrace.yaml", yaml);
        let err = ws.fails(&["config", "validate"], 1);
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

/// A span too long for the clocks (1e300 seconds, infinity) is refused up front, naming the
/// argument or the config key, instead of panicking when millrace first waits on it.
#[test]
fn spans_too_long_to_wait_are_refused_naming_the_argument_or_key() {
    let ws = TestWs::new();
    for (args, named) in [
        (
            &["status", "watch", "--interval-seconds", "1e300"][..],
            "--interval-seconds",
        ),
        (&["pause", "--wait", "1e300"][..], "--wait"),
        (&["requeue", "t1", "--wait", "inf"][..], "--wait"),
        (
            &["runs", "tail", "-f", "--timeout-seconds", "1e300"][..],
            "--timeout-seconds",
        ),
    ] {
        let err = ws.fails(args, 2);
        assert!(
            err.contains(named) && err.contains("seconds from 0 to 1000000000")
                || err.contains("seconds above 0 and at most 1000000000"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    for (yaml, key) in [
        (
            "runtime:\n  idle_sleep_seconds: 1e300\n",
            "runtime.idle_sleep_seconds",
        ),
        (
            "usage:\n  window:\n    hours: 1e300\n    tokens: 5\n",
            "usage.window.hours must be > 0 and at most 277777",
        ),
    ] {
        ws.write("millrace-agents/millrace.yaml", yaml);
        let err = ws.fails(&["run", "once"], 1);
        assert!(err.contains(key), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Without `--workspace`, a command run from a project's subfolder finds the project's
/// workspace (as git finds its repository) instead of refusing, or for a command that
/// writes, making a second workspace in the subfolder; `--workspace` given the
/// `millrace-agents/` folder itself means its project.
#[test]
fn the_workspace_is_found_from_a_subfolder_and_from_its_own_folder() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let sub = ws.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let task = ws.write("t-sub.md", &crate::common::task_doc("t-sub", ""));
    let from_sub = |args: &[&str]| {
        let mut cmd = std::process::Command::new(crate::common::BIN);
        cmd.current_dir(&sub)
            .env_remove("MILLRACE_WORKSPACE")
            .args(args);
        cmd.output().unwrap()
    };
    let added = from_sub(&["add-task", task.to_str().unwrap()]);
    assert!(added.status.success(), "{added:?}");
    assert_eq!(ws.folder_of("t-sub"), ["tasks/queue"]);
    assert!(!sub.join("millrace-agents").exists(), "no second workspace");
    let status = from_sub(&["--json", "status"]);
    assert!(status.status.success(), "{status:?}");

    let agents = ws.path().join("millrace-agents");
    let out = from_sub(&["--workspace", agents.to_str().unwrap(), "run", "once"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ws.claimed(), ["t-sub"]);
    assert!(
        !agents.join("millrace-agents").exists(),
        "no nested workspace"
    );
}

/// `run once` prints what its tick did on stderr as `run daemon` does (a file it rejected,
/// the stage it ran), not as log lines of its internals; and a task's `done:` line comes
/// after the result line of the stage that finished it, as the log now records them.
#[test]
fn run_once_reports_what_its_tick_did_and_done_follows_the_stage_result() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write("millrace-agents/tasks/queue/a-bad.md", "garbage\n");
    ws.add_task("t-1", "");
    let out = ws.run(&["run", "once"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "rejected millrace-agents/tasks/queue/a-bad.md -> millrace-agents/quarantine/a-bad.md"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("builder        task t-1"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    let out = ws.run(&["run", "daemon", "--until-idle"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result = stderr
        .find("-> UPDATE_COMPLETE")
        .expect("the updater's line");
    let done = stderr.find("done: task t-1").expect("the done line");
    assert!(result < done, "{stderr}");
}

/// A `Depends-On` naming a task no folder holds is warned of when the task is added, and
/// `--until-idle` names the queued tasks that can never be claimed instead of only saying
/// "no work left" (before, a typo there left the task waiting forever in silence).
#[test]
fn tasks_that_can_never_be_claimed_are_named_when_added_and_when_until_idle_stops() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let path = ws.write(
        "inputs/t-a.md",
        &crate::common::task_doc("t-a", "Depends-On:\n- t-typo\n"),
    );
    let out = ws.run(&["add-task", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task t-a depends on t-typo, which no folder holds yet"),
        "{stderr}"
    );
    ws.add_task("t-ok", "");
    let out = ws.run(&["run", "daemon", "--until-idle"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no work left that can run; 1 queued task can never be claimed"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task t-a depends on task t-typo, which exists in no folder"),
        "{stderr}"
    );
    assert_eq!(ws.folder_of("t-ok"), ["tasks/done"]);
    let report = ws.json(&["run", "daemon", "--until-idle"]);
    assert_eq!(report["never_claimable"][0]["code"], "dependency_missing");
    let added = ws.json(&[
        "add-task",
        ws.write(
            "inputs/t-b.md",
            &crate::common::task_doc("t-b", "Depends-On:\n- t-ok\n"),
        )
        .to_str()
        .unwrap(),
    ]);
    assert!(added.get("unknown_dependencies").is_none(), "{added}");
}

/// A task given to `add-spec` (or a spec to `add-task`) is named for what it is, with the
/// command that takes it, not refused with every field the other kind lacks; and `run once`
/// with nothing to run says so in words.
#[test]
fn a_document_of_the_other_kind_is_named_and_run_once_says_when_there_is_no_work() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let task = ws.write("inputs/t-1.md", &crate::common::task_doc("t-1", ""));
    let out = ws.run(&["add-spec", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("t-1.md is a task document, not a spec"),
        "{stderr}"
    );
    assert!(stderr.contains("millrace add-task"), "{stderr}");
    let spec = ws.write(
        "inputs/s-1.md",
        &crate::common::spec_doc("s-1", "2026-04-01T00:00:00Z"),
    );
    let out = ws.run(&["add-task", spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s-1.md is a spec document, not a task"),
        "{stderr}"
    );
    assert_eq!(
        ws.ok(&["run", "once"]),
        "no work: nothing queued can run now\n"
    );
    assert_eq!(ws.json(&["run", "once"])["outcome"], "no_work");
}

/// A start refused after it took the workspace lock (here: the loop does not compile) lets
/// the lock go as released, so `doctor` does not report a daemon that died holding it.
#[test]
fn a_start_refused_after_taking_the_lock_leaves_it_released() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/loops/execution/default.yaml",
        "garbage: [\n",
    );
    std::fs::remove_file(ws.rt().join("state/compiled_plan.yaml")).ok();
    let out = ws.run(&["run", "once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compile failed"));
    let lock = ws.read("millrace-agents/state/runtime_daemon.lock.yaml");
    assert!(lock.contains("released_at: \""), "{lock}");
    // The loop's compile error is a finding (exit 6); a stale lock must not be one.
    let doctor = ws.run(&["--json", "doctor"]);
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.contains("\"findings\""), "{doctor}");
    assert!(!doctor.contains("runtime_ownership_lock_stale"), "{doctor}");
}
