//! State files outlive a version (issue 15): golden copies of the files this release writes
//! (`fixtures/state/v1/`, made by the release before the engine redesign) load with the
//! current code, a workspace made of them runs on, fields a newer version adds are kept, and
//! a newer major schema stops the runtime instead of resetting its state.

use std::path::{Path, PathBuf};

use millrace::compiler::FrozenRunPlan;
use millrace::control::lock::LockInfo;
use millrace::control::mailbox::Envelope;
use millrace::runners::StageResult;
use millrace::state::closure::ClosureTarget;
use millrace::state::counters::Counters;
use millrace::state::events::EventLog;
use millrace::state::load_yaml;
use millrace::state::runtime::RuntimeState;
use millrace::state::snapshot::Snapshot;
use millrace::state::usage::Ledger;

use crate::common::TestWs;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/state/v1")
        .join(name)
}

#[test]
fn every_golden_state_file_loads() {
    let state = RuntimeState::load(&golden("runtime_snapshot.yaml")).unwrap();
    assert!(state.is_paused());
    let active = state
        .active()
        .expect("the golden snapshot has an active stage");
    assert_eq!(active.stage.to_string(), "fixer");
    let snapshot = Snapshot::load(&golden("runtime_snapshot.yaml")).unwrap();
    assert!(snapshot.unknown.is_empty());
    let counters = Counters::load(&golden("recovery_counters.yaml")).unwrap();
    assert_eq!(counters.entries.len(), 1);
    let ledger = Ledger::load(&golden("usage_ledger.yaml")).unwrap();
    assert_eq!(ledger.workspace.stages, 2);
    let lock: LockInfo = load_yaml(&golden("runtime_daemon.lock.yaml")).unwrap();
    assert!(lock.released_at.is_some());
    let target = ClosureTarget::load(&golden("closure_target.yaml")).unwrap();
    assert!(!target.closure_open);
    let _: StageResult = load_yaml(&golden("stage_result.yaml")).unwrap();
    let _: FrozenRunPlan = load_yaml(&golden("compiled_plan.yaml")).unwrap();
    let _: Envelope = load_yaml(&golden("mailbox_envelope.yaml")).unwrap();
    let events = EventLog::read_all(&golden("runtime_events.jsonl")).unwrap();
    assert!(events.iter().any(|e| e.event_type == "stage_completed"));
}

/// The golden workspace state, dropped into a new workspace: the runtime carries on where
/// it was (paused at the fixer with its counters), without resetting anything.
#[test]
fn a_workspace_left_by_the_previous_release_runs_on() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    for name in [
        "runtime_snapshot.yaml",
        "recovery_counters.yaml",
        "usage_ledger.yaml",
    ] {
        std::fs::copy(golden(name), ws.rt().join("state").join(name)).unwrap();
    }
    ws.write(
        "millrace-agents/tasks/active/t1.md",
        &crate::common::task_doc("t1", ""),
    );
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], true, "{status:#}");
    assert_eq!(status["snapshot"]["active_stage"], "fixer");
    ws.ok(&["resume"]);
    let out = ws.ok(&["run", "once"]);
    assert!(out.starts_with("ran fixer"), "{out}");
    assert!(
        !ws.event_types().iter().any(|t| t == "state_file_reset"),
        "{:?}",
        ws.event_types()
    );
}

/// A field a newer millrace added to the snapshot is kept through the runtime's rewrites.
#[test]
fn a_field_from_a_newer_version_is_kept() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let path = ws.rt().join("state/runtime_snapshot.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}lanes_hint: 3\n")).unwrap();
    ws.add_task("t1", "");
    ws.ok(&["run", "once"]);
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("active_stage: checker"), "{after}");
    assert!(after.contains("lanes_hint: 3"), "{after}");
}

/// A snapshot from a newer major schema is not "repaired" by resetting it: the runtime
/// refuses to start, names the file, and leaves it alone.
#[test]
fn a_newer_major_schema_stops_the_runtime_and_changes_nothing() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let path = ws.rt().join("state/runtime_snapshot.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("schema_version: \"1.0\"", "schema_version: \"2.0\"");
    std::fs::write(&path, &text).unwrap();
    let err = ws.fails(&["run", "once"], 1);
    assert!(err.contains("written by a newer millrace"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(ws.ls("millrace-agents/quarantine").is_empty());
}
