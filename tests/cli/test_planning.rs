//! Issue 6: the planning plane, lineage and closure by the arbiter.

use crate::common::{spec_doc, TestWs};

fn events_of(ws: &TestWs, kind: &str) -> Vec<serde_json::Value> {
    ws.events()
        .into_iter()
        .filter(|e| e["event_type"] == kind)
        .collect()
}

fn target(ws: &TestWs, root: &str) -> String {
    ws.read(&format!("millrace-agents/arbiter/targets/{root}.yaml"))
}

fn add_spec(ws: &TestWs, id: &str, created: &str) {
    let path = ws.write(&format!("inputs/{id}.md"), &spec_doc(id, created));
    ws.ok(&["add-spec", path.to_str().unwrap()]);
}

#[test]
fn spec_to_two_tasks_to_arbiter_closes_the_target() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    add_spec(&ws, "s-1", "2026-04-01T00:00:00Z");
    ws.run_until_idle();
    assert_eq!(
        ws.stages_started(),
        [
            "planner", "manager", "builder", "checker", "updater", "builder", "checker", "updater",
            "arbiter"
        ]
    );
    assert_eq!(ws.folder_of("s-1"), ["specs/done"]);
    for task in ["s-1-task-1", "s-1-task-2"] {
        assert_eq!(ws.folder_of(task), ["tasks/done"]);
        let doc = ws.read(&format!("millrace-agents/tasks/done/{task}.md"));
        assert!(doc.contains("Root-Spec-ID: s-1"), "{doc}");
        assert!(doc.contains("Spec-ID: s-1"), "{doc}");
    }
    let t = target(&ws, "s-1");
    assert!(t.contains("closure_open: false"), "{t}");
    assert!(t.contains("latest_outcome: ARBITER_COMPLETE"), "{t}");
    assert!(ws.exists("millrace-agents/arbiter/contracts/root-specs/s-1.md"));
    let runs = ws.json(&["queue", "show", "s-1-task-1"]);
    assert_eq!(runs[0]["item"]["root_spec_id"], "s-1");
}

#[test]
fn remediation_goes_through_auditor_planner_manager_then_the_arbiter_closes() {
    let ws = TestWs::new();
    ws.use_scripted(Some(
        "stages:\n  arbiter: [REMEDIATION_NEEDED, ARBITER_COMPLETE]\n  manager:\n    - result: MANAGER_COMPLETE\n      tasks: 1\n",
    ));
    add_spec(&ws, "s-r", "2026-04-01T00:00:00Z");
    ws.run_until_idle();
    let started = ws.stages_started();
    assert_eq!(
        started,
        [
            "planner", "manager", "builder", "checker", "updater", "arbiter", "auditor", "planner",
            "manager", "builder", "checker", "updater", "arbiter"
        ]
    );
    let incidents = ws.ls("millrace-agents/incidents/resolved");
    assert_eq!(incidents.len(), 1);
    let incident_id = incidents[0].trim_end_matches(".md").to_string();
    assert!(incident_id.starts_with("arbiter-gap-s-r-"), "{incident_id}");
    let fix_task = format!("{incident_id}-task-1");
    assert_eq!(ws.folder_of(&fix_task), ["tasks/done"]);
    let doc = ws.read(&format!("millrace-agents/tasks/done/{fix_task}.md"));
    assert!(doc.contains("Root-Spec-ID: s-r"), "{doc}");
    assert!(target(&ws, "s-r").contains("closure_open: false"));
    let kinds: Vec<String> = ws
        .events()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .filter(|k| {
            [
                "closure_target_opened",
                "closure_target_ready",
                "runtime_handoff_incident_enqueued",
                "closure_target_closed",
            ]
            .contains(&k.as_str())
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "closure_target_opened",
            "closure_target_ready",
            "runtime_handoff_incident_enqueued",
            "closure_target_ready",
            "closure_target_closed"
        ]
    );
}

#[test]
fn an_arbiter_that_keeps_blocking_is_bounded_and_the_target_is_held() {
    let ws = TestWs::new();
    ws.use_scripted(Some("stages:\n  arbiter: [BLOCKED]\n  manager:\n    - result: MANAGER_COMPLETE\n      tasks: 1\n"));
    add_spec(&ws, "s-b", "2026-04-01T00:00:00Z");
    ws.run_until_idle();
    let arbiter_runs = ws
        .stages_started()
        .iter()
        .filter(|s| *s == "arbiter")
        .count();
    assert_eq!(
        arbiter_runs, 3,
        "recovery.max_arbiter_attempts bounds re-runs"
    );
    let t = target(&ws, "s-b");
    assert!(t.contains("closure_open: true"), "{t}");
    assert!(t.contains("closure_held:"), "{t}");
    assert!(!events_of(&ws, "closure_target_held").is_empty());
}

#[test]
fn a_planning_handoff_keeps_lineage_and_closure_waits_for_the_blocked_task() {
    let ws = TestWs::new();
    ws.use_scripted(Some(
        "stages:\n  manager:\n    - result: MANAGER_COMPLETE\n      tasks: 1\nitems:\n  s-h-task-1:\n    builder: [BLOCKED]\n    troubleshooter: [BLOCKED]\n    consultant: [NEEDS_PLANNING]\n",
    ));
    add_spec(&ws, "s-h", "2026-04-01T00:00:00Z");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("s-h-task-1"), ["tasks/blocked"]);
    let handoff = events_of(&ws, "runtime_handoff_incident_enqueued");
    assert_eq!(handoff.len(), 1);
    assert_eq!(handoff[0]["data"]["root_spec_id"], "s-h");
    let incident = handoff[0]["data"]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = ws.read(&format!("millrace-agents/incidents/resolved/{incident}.md"));
    assert!(doc.contains("Root-Spec-ID: s-h"), "{doc}");
    assert_eq!(ws.folder_of(&format!("{incident}-task-1")), ["tasks/done"]);
    let t = target(&ws, "s-h");
    assert!(t.contains("closure_open: true"), "{t}");
    assert!(
        t.contains("- s-h-task-1"),
        "closure must name the blocked item: {t}"
    );
    assert!(!ws.stages_started().contains(&"arbiter".to_string()));
}

#[test]
fn a_malformed_task_from_the_manager_is_quarantined_and_the_spec_is_not_completed() {
    let ws = TestWs::new();
    let bad = "manager run printf '# Bad\\n\\nTask-ID: t-bad\\n' > \"$WORKSPACE/millrace-agents/tasks/queue/t-bad.md\"; printf '### MANAGER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"";
    let good_doc = crate::common::task_doc("t-good", "Root-Spec-ID: s-m\nSpec-ID: s-m\n");
    ws.write("good-task.md", &good_doc);
    let good = String::from(
        "manager run cp \"$WORKSPACE/good-task.md\" \"$WORKSPACE/millrace-agents/tasks/queue/t-good.md\"; printf '### MANAGER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\""
    );
    ws.use_fake_harness(&format!("{bad}\n{good}\n"));
    add_spec(&ws, "s-m", "2026-04-01T00:00:00Z");
    ws.run_until_idle();
    let started = ws.stages_started();
    assert_eq!(
        &started[..5],
        ["planner", "manager", "mechanic", "planner", "manager"],
        "{started:?}"
    );
    assert!(ws.exists("millrace-agents/quarantine/t-bad.md"));
    assert!(ws
        .read("millrace-agents/quarantine/t-bad.md.error.yaml")
        .contains("required field is missing"));
    assert_eq!(ws.folder_of("t-good"), ["tasks/done"]);
    assert_eq!(ws.folder_of("s-m"), ["specs/done"]);
}

#[test]
fn two_root_specs_in_flight_each_close_after_their_own_lineage() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    add_spec(&ws, "s-a", "2026-04-01T00:00:00Z");
    add_spec(&ws, "s-b", "2026-04-02T00:00:00Z");
    ws.run_until_idle();
    for root in ["s-a", "s-b"] {
        assert!(target(&ws, root).contains("closure_open: false"), "{root}");
    }
    let events = ws.events();
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(pred).unwrap();
    for root in ["s-a", "s-b"] {
        let last_task_done = events
            .iter()
            .rposition(|e| {
                e["event_type"] == "work_item_completed"
                    && e["data"]["id"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{root}-task"))
            })
            .unwrap();
        let arbiter = pos(&|e| {
            e["event_type"] == "closure_target_ready" && e["data"]["root_spec_id"] == root
        });
        assert!(
            arbiter > last_task_done,
            "{root} judged before its lineage drained"
        );
    }
}

/// `--until-idle` does not call it a day while a hand-written idea is still within its settle
/// window: it waits the window out and takes the idea, as `run once` does (it exited with
/// "no work left" and the idea untouched).
#[test]
fn until_idle_waits_out_an_idea_settling_in_the_inbox() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 400\n",
    );
    ws.write(
        "millrace-agents/ideas/inbox/hand.md",
        "# Dark mode\n\nAdd a toggle.\n",
    );
    ws.ok(&["run", "daemon", "--until-idle"]);
    assert!(
        ws.claimed().iter().any(|id| id == "idea-hand"),
        "{:?}",
        ws.event_types()
    );
}

/// An idea with a very long file name becomes a spec whose id leaves room for the tasks
/// the manager names after it: before, the spec id filled the 200-character limit and every
/// task the manager wrote was quarantined as too long.
#[test]
fn an_idea_with_a_long_name_is_planned_into_tasks_that_run() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let name = format!("{}.md", "long-idea-name-".repeat(13));
    ws.write(
        &format!("millrace-agents/ideas/inbox/{name}"),
        "# A long idea\n\nDo it.\n",
    );
    ws.run_until_idle();
    let done = ws.ls("millrace-agents/tasks/done");
    assert_eq!(
        done.len(),
        2,
        "{done:?} {:?}",
        ws.ls("millrace-agents/quarantine")
    );
    assert!(ws.ls("millrace-agents/quarantine").is_empty());
    assert!(done.iter().all(|t| t.len() < 200), "{done:?}");
}

/// An idea whose spec id is taken is never planned, so it is not taken in silence: `add-idea`
/// refuses it, naming the spec; a file dropped in the inbox is quarantined with the reason.
/// The idea that made the spec is still left alone at every start.
#[test]
fn an_idea_whose_spec_id_is_taken_is_refused_or_quarantined_never_dropped() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write("millrace-agents/ideas/inbox/a b.md", "# First\n\nOne.\n");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("idea-a-b"), ["specs/done"]);
    // A restart meets the idea that made the spec again and leaves it in the inbox.
    ws.run_until_idle();
    assert!(ws.exists("millrace-agents/ideas/inbox/a b.md"));
    assert!(ws.ls("millrace-agents/quarantine").is_empty());

    let other = ws.write("inputs/a-b.md", "# Second\n\nTwo.\n");
    let err = ws.fails(&["add-idea", other.to_str().unwrap()], 1);
    assert!(
        err.contains("idea a-b.md would become spec idea-a-b, which specs/done already holds"),
        "{err}"
    );
    assert!(err.contains("name the file differently"), "{err}");
    assert!(!ws.exists("millrace-agents/ideas/inbox/a-b.md"));

    ws.write("millrace-agents/ideas/inbox/a-b.md", "# Second\n\nTwo.\n");
    ws.run_until_idle();
    assert!(!ws.exists("millrace-agents/ideas/inbox/a-b.md"));
    let reason = ws.read("millrace-agents/quarantine/a-b.md.error.yaml");
    let reason: serde_json::Value = serde_saphyr::from_str(&reason).unwrap();
    assert_eq!(
        reason["error"],
        "this idea would become spec idea-a-b, which specs/done already holds (made from \
         millrace-agents/ideas/inbox/a b.md); rename the file to add it as an idea of its own"
    );
    assert!(ws.exists("millrace-agents/ideas/inbox/a b.md"));
    // doctor's way back for it is add-idea, not add-task or add-spec.
    let doctor = ws.json(&["doctor"]);
    let finding = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "quarantined_file")
        .cloned()
        .unwrap_or_else(|| panic!("{doctor:#}"));
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .starts_with("fix or rename the idea, add it again (`millrace add-idea <path>`)"),
        "{finding}"
    );
}
