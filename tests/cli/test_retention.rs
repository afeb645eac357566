//! Retention: the event log rolls into gzip segments, old runs are compressed then deleted,
//! and nothing an active or blocked item still needs is touched. Time moves by `MILLRACE_NOW`.

use crate::common::*;
use millrace::state::events::EventLog;

/// Scripted runner; `t-blocked`'s builder reports more tokens than the per-item budget, so
/// that task ends blocked and the others done.
fn setup(ws: &TestWs, retention: &str) {
    ws.write(
        "script.yaml",
        "items:\n  t-blocked:\n    builder:\n      - result: BUILDER_COMPLETE\n        tokens: 5000\n",
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        &format!(
            "runners:\n  default_runner: scripted\n  scripted:\n    script: script.yaml\n\
             watchers:\n  settle_ms: 0\nusage:\n  per_item:\n    tokens: 4000\n\
             retention:\n{retention}"
        ),
    );
}

/// `now` plus `days`, RFC 3339.
fn days_ahead(days: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days)).to_string()
}

/// Run the daemon until idle with the clock `days` ahead.
fn run_at(ws: &TestWs, days: i64) {
    let out = ws
        .cmd()
        .args(["run", "daemon", "--until-idle", "--max-ticks", "50"])
        .env("MILLRACE_NOW", days_ahead(days))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_of(ws: &TestWs, item: &str) -> String {
    let runs = ws.json(&["runs", "ls", "--limit", "100"]);
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["work_item_id"] == item)
        .unwrap_or_else(|| panic!("no run of {item}: {runs:#}"))["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn files(ws: &TestWs, run: &str) -> Vec<String> {
    ws.ls(&format!("millrace-agents/runs/{run}"))
}

fn last_swept(ws: &TestWs) -> serde_json::Value {
    ws.events()
        .into_iter()
        .rev()
        .find(|e| e["event_type"] == "retention_swept")
        .expect("a retention_swept event")["data"]
        .clone()
}

#[test]
fn old_runs_are_compressed_then_deleted_but_a_blocked_items_runs_are_kept() {
    let ws = TestWs::new();
    setup(
        &ws,
        "  runs_compress_after_days: 30\n  runs_delete_after_days: 365\n",
    );
    for id in ["t-blocked", "t1", "t2"] {
        ws.add_task(id, "");
    }
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-blocked"), ["tasks/blocked"]);
    assert_eq!(ws.folder_of("t2"), ["tasks/done"]);
    let (blocked, done) = (run_of(&ws, "t-blocked"), run_of(&ws, "t1"));
    let tail_before = ws.json(&["runs", "tail", &done, "--lines", "0"]);
    assert!(files(&ws, &done).iter().any(|f| f.ends_with(".txt")));

    // 40 days on: the done tasks' prompts and output are gzipped; the blocked one's are not.
    run_at(&ws, 40);
    let compressed = files(&ws, &done);
    assert!(
        compressed
            .iter()
            .any(|f| f.starts_with("runner_stdout.") && f.ends_with(".txt.gz")),
        "{compressed:?}"
    );
    assert!(
        !compressed
            .iter()
            .any(|f| f.starts_with("runner_") && (f.ends_with(".txt") || f.ends_with(".md"))),
        "{compressed:?}"
    );
    assert!(compressed.contains(&"stage_results".to_string()));
    assert!(files(&ws, &blocked).iter().any(|f| f.ends_with(".txt")));
    let swept = last_swept(&ws);
    assert_eq!(swept["compressed_runs"], 2, "{swept}");
    assert!(swept["bytes_freed"].as_u64().unwrap() > 0);
    // Readers see through the compression.
    assert_eq!(
        ws.json(&["runs", "tail", &done, "--lines", "0"]),
        tail_before
    );
    let shown = ws.json(&["runs", "show", &done]);
    assert_eq!(shown["work_item_id"], "t1", "{shown:#}");

    // 400 days on: the done tasks' runs are gone; the blocked item's run stays.
    run_at(&ws, 400);
    let left = ws.ls("millrace-agents/runs");
    assert_eq!(left, [blocked], "{left:?}");
    let swept = last_swept(&ws);
    assert_eq!(swept["deleted_runs"], 2, "{swept}");
    assert_eq!(swept["kept_runs"], 1, "{swept}");
    // The usage ledger's totals do not depend on the deleted runs.
    let usage = ws.json(&["usage"]);
    assert!(
        usage["workspace"]["stages"].as_u64().unwrap() >= 3,
        "{usage:#}"
    );
}

#[test]
fn the_run_count_limit_keeps_the_newest_runs() {
    let ws = TestWs::new();
    setup(&ws, "  runs_max_count: 1\n");
    ws.write("script.yaml", "stages: {}\n");
    for id in ["t1", "t2", "t3"] {
        ws.add_task(id, "");
        ws.run_until_idle();
    }
    let left = ws.ls("millrace-agents/runs");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(run_of(&ws, "t3"), left[0]);
    let deleted: u64 = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "retention_swept")
        .map(|e| e["data"]["deleted_runs"].as_u64().unwrap())
        .sum();
    assert_eq!(deleted, 2);
}

/// Append `n` well-formed events of about 1 KiB each to the live log.
fn fill_log(ws: &TestWs, n: usize) {
    use std::io::Write;
    let path = ws.rt().join("logs/runtime_events.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    let pad = "x".repeat(1000);
    for i in 0..n {
        let line = serde_json::json!({"data": {"n": i, "pad": pad}, "event_type": "control_applied",
            "kind": "runtime_event", "occurred_at": jiff::Timestamp::now().to_string(),
            "schema_version": "1.0"});
        writeln!(file, "{line}").unwrap();
    }
}

fn segments(ws: &TestWs) -> Vec<String> {
    ws.ls("millrace-agents/logs/segments")
}

#[test]
fn the_event_log_rolls_at_its_size_and_at_a_new_day_and_readers_see_every_event_once() {
    let ws = TestWs::new();
    setup(&ws, "  event_log_segment_mb: 1\n");
    ws.run_until_idle();
    fill_log(&ws, 1100);
    let log = ws.rt().join("logs/runtime_events.jsonl");
    let before = EventLog::read_all(&log).unwrap().len();

    ws.run_until_idle();
    let rolled = segments(&ws);
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    assert!(rolled[0].starts_with("runtime_events-") && rolled[0].ends_with(".jsonl.gz"));
    let live = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(live.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_type"], "event_log_rolled");
    assert_eq!(first["data"]["reason"], "size");
    assert!(live.len() < 100_000, "the live log started afresh");
    let all = EventLog::read_all(&log).unwrap();
    assert!(all.len() > before);
    let filled = all
        .iter()
        .filter(|e| e.event_type == "control_applied" && e.data.contains_key("pad"))
        .count();
    assert_eq!(filled, 1100, "every filled event read exactly once");

    // The next UTC day rolls the log again, whatever its size.
    run_at(&ws, 1);
    assert_eq!(segments(&ws).len(), 2);
    let live = std::fs::read_to_string(&log).unwrap();
    assert!(live.contains("\"reason\":\"new_day\""), "{live}");
}

#[test]
fn segments_a_crash_left_plain_are_compressed_once_and_old_ones_are_pruned() {
    let ws = TestWs::new();
    setup(&ws, "  event_log_keep_days: 30\n");
    ws.run_until_idle();
    let dir = ws.rt().join("logs/segments");
    std::fs::create_dir_all(&dir).unwrap();
    // A roll interrupted after its rename (plain only), and one interrupted after writing
    // the `.gz` (both): their events must be read once each.
    let log = ws.rt().join("logs/runtime_events.jsonl");
    let stamp = |days: i64| {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days))
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string()
    };
    let (older, newer) = (stamp(2), stamp(1));
    let plain = dir.join(format!("runtime_events-{older}.jsonl"));
    std::fs::rename(&log, &plain).unwrap();
    let lines = std::fs::read_to_string(&plain).unwrap().lines().count();
    let twin = dir.join(format!("runtime_events-{newer}.jsonl"));
    std::fs::copy(&plain, &twin).unwrap();
    {
        use std::io::Write;
        let gz =
            std::fs::File::create(dir.join(format!("runtime_events-{newer}.jsonl.gz"))).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        enc.write_all(&std::fs::read(&twin).unwrap()).unwrap();
        enc.finish().unwrap();
    }
    assert_eq!(EventLog::read_all(&log).unwrap().len(), 2 * lines);

    ws.run_until_idle();
    let names = segments(&ws);
    assert_eq!(
        names,
        [
            format!("runtime_events-{older}.jsonl.gz"),
            format!("runtime_events-{newer}.jsonl.gz")
        ],
        "{names:?}"
    );
    let all = EventLog::read_all(&log).unwrap();
    assert!(all.len() >= 2 * lines);

    // A year on, both segments are past `event_log_keep_days`.
    run_at(&ws, 365);
    let names = segments(&ws);
    assert!(
        names
            .iter()
            .all(|n| !n.contains(&older) && !n.contains(&newer)),
        "old segments pruned: {names:?}"
    );
    assert!(last_swept(&ws)["pruned_segments"].as_u64().unwrap() >= 2);
}

#[test]
fn a_zero_retention_limit_is_refused_naming_the_key() {
    let ws = TestWs::new();
    setup(&ws, "  runs_max_count: 0\n");
    let err = ws.fails(&["config", "validate"], 1);
    assert!(
        err.contains("retention.runs_max_count must be > 0 or null"),
        "{err}"
    );
}

#[test]
fn doctor_reports_the_workspace_size_by_part_when_asked() {
    let ws = TestWs::new();
    setup(&ws, "  runs_max_count: 10\n");
    ws.add_task("t1", "");
    ws.run_until_idle();
    let plain = ws.json(&["doctor"]);
    assert!(plain.get("sizes").is_none(), "measured only with --sizes");
    let report = ws.json(&["doctor", "--sizes"]);
    let sizes = report["sizes"].as_array().expect("sizes");
    let part = |name: &str| {
        sizes
            .iter()
            .find(|p| p["part"] == name)
            .unwrap_or_else(|| panic!("no {name}: {sizes:#?}"))
    };
    assert_eq!(part("runs")["path"], "millrace-agents/runs");
    assert!(part("runs")["bytes"].as_u64().unwrap() > 0);
    assert!(part("runs")["files"].as_u64().unwrap() >= 4);
    assert!(part("event log (live)")["bytes"].as_u64().unwrap() > 0);
    assert_eq!(part("tasks/done")["files"], 1);
    let total: u64 = sizes.iter().map(|p| p["bytes"].as_u64().unwrap()).sum();
    let on_disk: u64 = walkdir::WalkDir::new(ws.rt())
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert_eq!(total, on_disk, "every file is counted once");
    let text = ws.ok(&["doctor", "--sizes"]);
    assert!(text.contains("sizes:\n"), "{text}");
    assert!(text.contains("millrace-agents/runs"), "{text}");
}

/// Set a folder's modification time a minute back, as if its last change were long ago (a
/// derived listing is cached only once the folder has settled).
fn settle(dir: &std::path::Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::open(dir).unwrap().set_modified(old).unwrap();
}

#[test]
fn the_runs_index_and_the_done_counts_are_rebuilt_when_they_disagree_with_the_folders() {
    let ws = TestWs::new();
    setup(&ws, "  runs_max_count: 100\n");
    for id in ["t1", "t2", "t3"] {
        ws.add_task(id, "");
    }
    ws.run_until_idle();
    let runs_dir = ws.rt().join("runs");
    let done_dir = ws.rt().join("tasks/done");
    settle(&runs_dir);
    settle(&done_dir);
    // A fresh clone has no state/cache/ (it is git-ignored): the readers create it.
    std::fs::remove_dir_all(ws.rt().join("state/cache")).unwrap();
    let total = |ws: &TestWs| ws.json(&["runs", "ls"])["total"].as_u64().unwrap();
    let done = |ws: &TestWs| ws.json(&["queue", "ls"])["done_count"].as_u64().unwrap();
    assert_eq!(total(&ws), 3);
    assert_eq!(done(&ws), 3);
    let index = ws.rt().join("state/cache/runs.tsv");
    assert!(index.exists(), "a settled listing is cached");
    assert!(ws.exists("millrace-agents/state/cache/task-done.count"));
    // The index answers pages in order from its lines.
    let page = ws.json(&["runs", "ls", "--limit", "1", "--offset", "1"]);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 3);

    // A run folder added by hand: the stamp moved, so the index is rebuilt.
    std::fs::create_dir(runs_dir.join("run-added-by-hand")).unwrap();
    assert_eq!(total(&ws), 4);
    // Deleted or garbled, it is rebuilt from the folder.
    std::fs::remove_file(&index).unwrap();
    assert_eq!(total(&ws), 4);
    std::fs::write(&index, "garbage\n").unwrap();
    assert_eq!(total(&ws), 4);
    std::fs::remove_dir(runs_dir.join("run-added-by-hand")).unwrap();
    settle(&runs_dir);
    assert_eq!(total(&ws), 3);
    assert_eq!(total(&ws), 3, "and from the rewritten index");

    // A document moved into done/ by hand is counted.
    ws.write(
        "millrace-agents/tasks/done/t-hand.md",
        &task_doc("t-hand", ""),
    );
    assert_eq!(done(&ws), 4);
    settle(&done_dir);
    std::fs::write(ws.rt().join("state/cache/task-done.count"), "not a count\n").unwrap();
    assert_eq!(done(&ws), 4);
    let status = ws.json(&["status"]);
    assert_eq!(status["queues"]["execution_done"], 4, "{status:#}");
}

#[test]
fn plain_doctor_looks_where_the_runtime_works_and_full_doctor_reads_all_history() {
    let ws = TestWs::new();
    setup(&ws, "  runs_max_count: 100\n");
    ws.add_task("t1", "");
    ws.run_until_idle();
    // A finished document gone bad, and a queued task that is also finished.
    ws.write("millrace-agents/tasks/done/t-old.md", "# not a task\n");
    ws.write("millrace-agents/tasks/queue/t1.md", &task_doc("t1", ""));
    ws.write(
        "millrace-agents/tasks/queue/t2.md",
        &task_doc("t2", "Depends-On:\n- t-missing\n"),
    );
    let codes = |args: &[&str]| -> Vec<(String, String)> {
        let out = ws.cmd().arg("--json").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "doctor exits 6 when unhealthy");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    f["path"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let plain = codes(&["doctor"]);
    assert!(
        plain.iter().any(|(c, _)| c == "duplicate_work_item_id"),
        "an open item's id is looked up in done/: {plain:?}"
    );
    assert!(
        plain.iter().any(|(c, _)| c == "dependency_missing"),
        "{plain:?}"
    );
    assert!(
        !plain.iter().any(|(_, p)| p.ends_with("done/t-old.md")),
        "finished documents are read only with --full: {plain:?}"
    );
    let full = codes(&["doctor", "--full"]);
    assert!(
        full.iter()
            .any(|(c, p)| c == "queue_artifact_invalid" && p.ends_with("done/t-old.md")),
        "{full:?}"
    );
    assert!(full.iter().any(|(c, _)| c == "duplicate_work_item_id"));
}

#[test]
fn an_open_closure_keeps_its_newest_arbiter_run_when_older_runs_are_deleted() {
    let ws = TestWs::new();
    ws.write(
        "script.yaml",
        "stages:\n  arbiter: [BLOCKED]\n  manager:\n    - result: MANAGER_COMPLETE\n      tasks: 1\n",
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\n  scripted:\n    script: script.yaml\n\
         watchers:\n  settle_ms: 0\nretention:\n  runs_delete_after_days: 365\n",
    );
    let path = ws.write(
        "inputs/s-keep.md",
        &spec_doc("s-keep", "2026-04-01T00:00:00Z"),
    );
    ws.ok(&["add-spec", path.to_str().unwrap()]);
    ws.run_until_idle();
    let target = ws.read("millrace-agents/arbiter/targets/s-keep.yaml");
    assert!(target.contains("closure_open: true"), "{target}");
    let arbiter_run = target
        .lines()
        .find_map(|l| l.trim().strip_prefix("last_arbiter_run_id: "))
        .expect("the target names its arbiter run")
        .trim_matches('"')
        .to_string();
    let before = ws.ls("millrace-agents/runs");
    assert!(before.len() > 2, "{before:?}");

    run_at(&ws, 400);
    let left = ws.ls("millrace-agents/runs");
    assert_eq!(
        left,
        [arbiter_run],
        "only the open closure's arbiter run is kept"
    );
    let swept = last_swept(&ws);
    assert_eq!(swept["deleted_runs"], before.len() as u64 - 1, "{swept}");
}

#[test]
fn a_forged_runs_index_cannot_make_retention_delete_outside_runs() {
    use std::os::unix::fs::MetadataExt;
    let ws = TestWs::new();
    setup(&ws, "  runs_delete_after_days: 365\n");
    ws.add_task("t1", "");
    ws.run_until_idle();
    // Folders outside runs/ an agent would like gone, and a link in runs/ pointing at one.
    let victim = ws.path().join("precious");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "x").unwrap();
    let runs = ws.rt().join("runs");
    std::os::unix::fs::symlink(&victim, runs.join("run-link")).unwrap();
    // An index whose header matches the runs/ folder, naming paths out of it.
    let meta = std::fs::metadata(&runs).unwrap();
    let stamp = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    let forged = format!(
        "millrace-runs-index-v1 {} {stamp} 4\n1\t../../precious\n2\t../state\n3\trun-link\n4\t..\n",
        meta.ino()
    );
    ws.write("millrace-agents/state/cache/runs.tsv", &forged);

    run_at(&ws, 400);
    assert!(
        victim.join("keep.txt").exists(),
        "nothing outside runs/ is touched"
    );
    assert!(ws.rt().join("state/runtime_snapshot.yaml").exists());
    assert!(
        runs.join("run-link").exists(),
        "a planted link is not followed or removed"
    );
    let listed = ws.json(&["runs", "ls"]);
    assert_eq!(
        listed["runs"],
        serde_json::json!([]),
        "no forged id or planted link is read as a run"
    );
}

#[test]
fn a_link_planted_as_the_deletion_folder_is_refused_and_nothing_outside_is_removed() {
    let ws = TestWs::new();
    setup(&ws, "  runs_delete_after_days: 365\n");
    ws.add_task("t1", "");
    ws.run_until_idle();
    let victim = ws.path().join("precious");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("sub/keep.txt"), "x").unwrap();
    std::fs::create_dir_all(ws.rt().join("state/cache")).unwrap();
    std::os::unix::fs::symlink(&victim, ws.rt().join("state/cache/deleting")).unwrap();

    let out = ws
        .cmd()
        .args(["run", "daemon", "--until-idle", "--max-ticks", "5"])
        .env("MILLRACE_NOW", days_ahead(400))
        .output()
        .unwrap();
    assert!(
        victim.join("sub/keep.txt").exists(),
        "nothing outside is removed"
    );
    // Retrying cannot clear a link: the runtime pauses with it named.
    let paused = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "runtime_paused")
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        paused["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("state/cache/deleting is a symbolic link"),
        "{paused}"
    );
    assert_eq!(ws.ls("millrace-agents/runs").len(), 1, "the run stays");
}
