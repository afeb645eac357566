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
    ws.write("millrace-agents/state/mailbox/incoming/junk.yaml", "{{ not yaml");
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
    let idea = ws.write("inputs/fetch.md", "# Resilient fetch\n\nRetry with backoff.\n");
    ws.ok(&["add-idea", idea.to_str().unwrap()]);
    let out = ws.json(&["run", "once"]);
    assert_eq!(out["outcome"], "stage", "{out}");
    assert!(has_event(&ws, "idea_normalized_to_spec"));
}
