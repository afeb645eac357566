//! Issue 4: the tick loop, runners and recovery, driven through the real binary with the
//! scripted fake harness.

use std::time::Duration;

use crate::common::{alive, fixture, wait_for, TestWs};

fn stage_results(ws: &TestWs) -> Vec<serde_yaml_like::Doc> {
    serde_yaml_like::all(ws)
}

/// Reading stage results without a YAML crate in the tests: they are flat enough to grep.
mod serde_yaml_like {
    use crate::common::TestWs;

    pub struct Doc(pub String);

    impl Doc {
        pub fn field(&self, key: &str) -> Option<String> {
            self.0.lines().find_map(|l| {
                l.trim_start()
                    .strip_prefix(&format!("{key}: "))
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        }
    }

    /// Every stage result in every run dir, in the order the events name them.
    pub fn all(ws: &TestWs) -> Vec<Doc> {
        ws.events()
            .iter()
            .filter(|e| e["event_type"] == "stage_completed")
            .map(|e| {
                let rel = e["data"]["stage_result_path"].as_str().unwrap().to_string();
                Doc(ws.read(&rel))
            })
            .collect()
    }
}

#[test]
fn happy_path_builder_checker_updater_done_with_artifacts() {
    let ws = TestWs::new();
    ws.use_fake_harness("");
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.stages_started(), ["builder", "checker", "updater"]);
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    let runs = ws.ls("millrace-agents/runs");
    let run = runs
        .iter()
        .find(|r| r.starts_with("run-"))
        .expect("run dir");
    let files = ws.ls(&format!("millrace-agents/runs/{run}"));
    for prefix in [
        "runner_prompt.",
        "runner_invocation.",
        "runner_stdout.",
        "runner_stderr.",
        "runner_completion.",
    ] {
        assert_eq!(
            files.iter().filter(|f| f.starts_with(prefix)).count(),
            3,
            "{prefix} per stage: {files:?}"
        );
    }
    assert_eq!(
        ws.ls(&format!("millrace-agents/runs/{run}/stage_results"))
            .len(),
        3
    );
    assert_eq!(
        ws.read("millrace-agents/state/execution_status.md"),
        "### IDLE\n"
    );
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["active_stage"], serde_json::Value::Null);
    assert_eq!(
        status["snapshot"]["last_terminal_result"],
        "UPDATE_COMPLETE"
    );
}

#[test]
fn fix_needed_goes_through_fixer_and_doublechecker() {
    let ws = TestWs::new();
    ws.use_fake_harness("checker emit ### FIX_NEEDED\n");
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(
        ws.stages_started(),
        ["builder", "checker", "fixer", "doublechecker", "updater"]
    );
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
}

#[test]
fn blocked_builder_escalates_to_planning_with_lineage() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder emit ### BLOCKED\ntroubleshooter emit ### BLOCKED\nconsultant emit ### NEEDS_PLANNING\n",
    );
    ws.add_task("t1", "Root-Spec-ID: s-root\nRoot-Idea-ID: idea-root\n");
    ws.run_until_idle();
    let started = ws.stages_started();
    assert_eq!(
        started,
        [
            "builder",
            "troubleshooter",
            "consultant",
            "auditor",
            "planner",
            "manager"
        ],
        "{started:?}"
    );
    assert_eq!(ws.folder_of("t1"), ["tasks/blocked"]);
    let incidents = ws.ls("millrace-agents/incidents/resolved");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = ws.read(&format!(
        "millrace-agents/incidents/resolved/{}",
        incidents[0]
    ));
    assert!(incident.contains("Source-Task-ID: t1"), "{incident}");
    assert!(incident.contains("Root-Spec-ID: s-root"), "{incident}");
    assert!(incident.contains("Root-Idea-ID: idea-root"), "{incident}");
    assert!(ws
        .event_types()
        .contains(&"runtime_handoff_incident_enqueued".to_string()));
}

#[test]
fn exhausted_budgets_block_the_item_with_the_reason_in_its_history() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder emit ### BLOCKED\ntroubleshooter emit ### BLOCKED\nconsultant emit ### CONSULT_COMPLETE\n",
    );
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/t1.md");
    assert!(doc.contains("## Runtime History"), "{doc}");
    assert!(doc.contains("budget_exhausted"), "{doc}");
    let started = ws.stages_started();
    assert_eq!(
        started.iter().filter(|s| *s == "consultant").count(),
        2,
        "{started:?}"
    );
    assert!(started.len() < 20, "unbounded loop: {started:?}");
    assert!(ws
        .events()
        .iter()
        .any(|e| e["event_type"] == "work_item_blocked" && e["data"]["id"] == "t1"));
    assert!(ws
        .read("millrace-agents/state/recovery_counters.yaml")
        .contains("entries: []"));
}

#[test]
fn illegal_missing_and_conflicting_markers_are_typed_failures() {
    for (plan, class) in [
        ("builder emit ### CHECKER_PASS\n", "illegal_terminal_result"),
        ("builder silent\n", "missing_terminal_result"),
        (
            "builder emit ### BLOCKED\\n### BUILDER_COMPLETE\n",
            "conflicting_terminal_results",
        ),
        ("builder exit 3\n", "runner_transport_failure"),
    ] {
        let ws = TestWs::new();
        ws.use_fake_harness(plan);
        ws.add_task("t1", "");
        ws.fails(&["run", "once"], 1);
        let results = stage_results(&ws);
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].field("terminal_result").as_deref(),
            Some("BLOCKED")
        );
        assert_eq!(
            results[0].field("failure_class").as_deref(),
            Some(class),
            "{plan}"
        );
        let status = ws.json(&["status"]);
        assert_eq!(
            status["snapshot"]["active_stage"], "troubleshooter",
            "{plan}"
        );
    }
}

#[test]
fn other_capitalised_headings_are_not_markers() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder emit ### SUMMARY\\ndone\\n### BUILDER_COMPLETE\n");
    ws.add_task("t1", "");
    ws.ok(&["run", "once"]);
    assert_eq!(
        stage_results(&ws)[0].field("terminal_result").as_deref(),
        Some("BUILDER_COMPLETE")
    );
}

fn grandchild_pid(ws: &TestWs) -> i32 {
    ws.read("fake-state/grandchild.pid").trim().parse().unwrap()
}

#[test]
fn wall_clock_timeout_kills_the_harness_and_its_grandchild() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\n");
    let mut config = ws.read("millrace-agents/millrace.yaml");
    config.push_str("stages:\n  builder:\n    timeout_seconds: 1\n");
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    ws.fails(&["run", "once"], 1);
    let pid = grandchild_pid(&ws);
    wait_for("grandchild to be gone", Duration::from_secs(10), || {
        !alive(pid)
    });
    assert_eq!(
        stage_results(&ws)[0].field("failure_class").as_deref(),
        Some("runner_timeout")
    );
}

#[test]
fn idle_timeout_kills_a_silent_harness_and_its_grandchild() {
    let ws = TestWs::new();
    ws.use_fake_harness("builder grandchild\n");
    let config = ws
        .read("millrace-agents/millrace.yaml")
        .replace("runners:\n", "runners:\n  idle_timeout_seconds: 1\n");
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    ws.fails(&["run", "once"], 1);
    let pid = grandchild_pid(&ws);
    wait_for("grandchild to be gone", Duration::from_secs(10), || {
        !alive(pid)
    });
    let stderr = std::fs::read_dir(ws.rt().join("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .flat_map(|run| std::fs::read_dir(run.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("runner_stderr.")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(stderr.contains("no output"), "{stderr}");
}

#[test]
fn command_runner_reads_claude_style_json() {
    let ws = TestWs::new();
    let plan = ws.write("plan.txt", "builder claude-json ### BUILDER_COMPLETE\n");
    let config = format!(
        "runners:\n  default_runner: command\n  command:\n    argv: [\"{}\", \"-p\", \"{{prompt}}\", \"--output-format\", \"json\"]\n    output: claude_json\n    env:\n      FAKE_HARNESS_PLAN: {}\n",
        fixture("fake-harness").display(),
        plan.display()
    );
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    let out = ws.json(&["run", "once"]);
    assert_eq!(out["terminal_result"], "BUILDER_COMPLETE");
    let result = &stage_results(&ws)[0];
    assert_eq!(result.field("input_tokens").as_deref(), Some("10"));
}

/// A cost no stage can have (negative, or so large the sums become infinite) is dropped: it
/// would push cost budgets back, or leave `.inf` in the ledger for good.
#[test]
fn an_impossible_cost_reported_by_a_harness_is_not_counted() {
    let ws = TestWs::new();
    let line = |cost: &str, marker: &str| {
        format!(
            "run printf '%s\\n' '{{\"type\":\"result\",\"result\":\"### {marker}\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":5}},\"total_cost_usd\":{cost}}}'"
        )
    };
    let plan = ws.write(
        "plan.txt",
        &format!(
            "builder {}\nchecker {}\nupdater {}\n",
            line("-100", "BUILDER_COMPLETE"),
            line("1e308", "CHECKER_PASS"),
            line("0.25", "UPDATE_COMPLETE"),
        ),
    );
    let config = format!(
        "runners:\n  default_runner: command\n  command:\n    argv: [\"{}\", \"-p\", \"{{prompt}}\"]\n    output: claude_json\n    env:\n      FAKE_HARNESS_PLAN: {}\nwatchers:\n  settle_ms: 0\n",
        fixture("fake-harness").display(),
        plan.display()
    );
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    let results = stage_results(&ws);
    assert_eq!(results.len(), 3);
    let costs: Vec<Option<String>> = results.iter().map(|r| r.field("cost_usd")).collect();
    assert_eq!(costs.iter().filter(|c| c.is_some()).count(), 1, "{costs:?}");
    let usage = ws.json(&["usage"]);
    assert_eq!(usage["workspace"]["cost_usd"], 0.25, "{usage:#}");
    let ledger = ws.read("millrace-agents/state/usage_ledger.yaml");
    assert!(
        !ledger.contains("inf") && !ledger.contains("cost_usd: -"),
        "{ledger}"
    );
}

#[test]
fn claim_order_planning_first_then_oldest_task_with_dependencies_met() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/tasks/queue/t-late.md",
        &crate::common::task_doc("t-late", "")
            .replace("2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z"),
    );
    ws.write(
        "millrace-agents/tasks/queue/t-early.md",
        &crate::common::task_doc("t-early", "")
            .replace("2026-03-01T10:00:00Z", "2026-02-01T10:00:00+01:00"),
    );
    ws.write(
        "millrace-agents/tasks/queue/t-dep.md",
        &crate::common::task_doc("t-dep", "")
            .replace("2026-03-01T10:00:00Z", "2026-01-01T10:00:00")
            .replace(
                "Risk:\n- Low.\n",
                "Risk:\n- Low.\n\nDepends-On:\n- t-late\n",
            ),
    );
    ws.write(
        "millrace-agents/specs/queue/s-1.md",
        &crate::common::spec_doc("s-1", "2026-05-01T00:00:00Z"),
    );
    ws.run_until_idle();
    let claimed = ws.claimed();
    assert_eq!(claimed[0], "s-1", "{claimed:?}");
    let pos = |id: &str| claimed.iter().position(|c| c == id).unwrap();
    assert!(pos("t-early") < pos("t-late"), "{claimed:?}");
    assert!(
        pos("t-late") < pos("t-dep"),
        "dependency not honoured: {claimed:?}"
    );
}

#[test]
fn malformed_document_in_a_queue_folder_is_quarantined_and_others_proceed() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t-good", "");
    ws.write(
        "millrace-agents/tasks/queue/t-bad.md",
        "# Broken\n\nTask-ID: t-bad\nRisk: inline\n",
    );
    ws.write(
        "millrace-agents/tasks/queue/t-misnamed.md",
        &crate::common::task_doc("t-other", ""),
    );
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-good"), ["tasks/done"]);
    let q = ws.ls("millrace-agents/quarantine");
    assert!(q.contains(&"t-bad.md".to_string()), "{q:?}");
    assert!(q.contains(&"t-bad.md.error.yaml".to_string()), "{q:?}");
    assert!(q.contains(&"t-misnamed.md".to_string()), "{q:?}");
    assert_eq!(
        ws.read("millrace-agents/quarantine/t-bad.md"),
        "# Broken\n\nTask-ID: t-bad\nRisk: inline\n"
    );
    let reason = ws.read("millrace-agents/quarantine/t-bad.md.error.yaml");
    assert!(
        reason.contains("source: millrace-agents/tasks/queue/t-bad.md"),
        "{reason}"
    );
    assert!(ws
        .events()
        .iter()
        .any(|e| e["event_type"] == "work_item_quarantined"));
}

#[test]
fn demo_runs_the_whole_lifecycle_and_exits_zero() {
    let ws = TestWs::bare();
    let dir = ws.path().join("demo");
    let out = ws
        .cmd()
        .args(["demo", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for stage in [
        "planner", "manager", "builder", "checker", "updater", "arbiter",
    ] {
        assert!(stderr.contains(stage), "{stage} missing from:\n{stderr}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("closure targets closed: s-greeting"));
}

#[test]
fn a_failure_after_the_stage_goes_to_the_repair_stage_with_a_report() {
    let ws = TestWs::new();
    ws.use_fake_harness(concat!(
        "builder run touch \"$RUN_DIR/stage_results\"; printf '### BUILDER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n",
        "troubleshooter run rm -f \"$RUN_DIR/stage_results\"; printf '### TROUBLESHOOT_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n",
    ));
    ws.add_task("t1", "");
    ws.run_until_idle();
    let scheduled: Vec<serde_json::Value> = ws
        .events()
        .into_iter()
        .filter(|e| e["event_type"] == "runtime_post_stage_recovery_scheduled")
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(
        scheduled[0]["data"]["error_code"],
        "execution_post_stage_apply_failed"
    );
    assert_eq!(scheduled[0]["data"]["repair_stage"], "troubleshooter");
    let report = scheduled[0]["data"]["report_path"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("# Runtime Error Report"), "{text}");
    assert!(
        text.contains("Error-Code: execution_post_stage_apply_failed"),
        "{text}"
    );
    let prompts: String = std::fs::read_dir(std::path::Path::new(&report).parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("runner_prompt.")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        prompts.contains("Runtime Error Code: execution_post_stage_apply_failed"),
        "the troubleshooter is told about the runtime error"
    );
    assert_eq!(
        ws.stages_started(),
        ["builder", "troubleshooter", "checker", "updater"]
    );
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
}

#[test]
fn repeated_failures_after_the_stage_are_bounded_and_block_the_item() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder run touch \"$RUN_DIR/stage_results\"; printf '### BUILDER_COMPLETE\\n' > \"$LAST_MESSAGE_FILE\"\n",
    );
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/t1.md");
    assert!(doc.contains("runtime repair budget spent"), "{doc}");
    assert!(ws.stages_started().len() <= 4, "{:?}", ws.stages_started());
}

/// The status markers are written without fsync (they mirror the snapshot), so a power loss
/// may leave one behind the snapshot: every start writes them from it.
#[test]
fn every_start_rewrites_the_status_markers_from_the_snapshot() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        "millrace-agents/state/execution_status.md",
        "### BUILDER_RUNNING\n",
    );
    ws.ok(&["run", "once"]);
    assert_eq!(
        ws.read("millrace-agents/state/execution_status.md"),
        "### IDLE\n"
    );
}
