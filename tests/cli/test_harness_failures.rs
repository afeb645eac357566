//! Harness failures a person can act on: environment failures pause the runtime instead of
//! spending the item's repair budgets, and every failure carries its class and the harness's
//! own words to `run once`, `status`, `runs show`, events and the blocked document.

use std::path::PathBuf;

use crate::common::{fixture, TestWs};

/// A `PATH` with only the basic tools: no harness CLI on it.
fn bare_path(ws: &TestWs) -> PathBuf {
    let dir = ws.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_path(ws: &TestWs, path: &std::path::Path, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env("PATH", format!("{}:/usr/bin:/bin", path.display()))
        .args(args)
        .output()
        .unwrap()
}

fn event<'a>(events: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    events
        .iter()
        .rev()
        .find(|e| e["event_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

#[test]
fn a_missing_harness_pauses_the_runtime_and_resume_reruns_the_same_stage() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: claude\nwatchers:\n  settle_ms: 0\n",
    );
    ws.add_task("t1", "");
    let bin = bare_path(&ws);

    let out = with_path(&ws, &bin, &["run", "once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("[harness_not_installed: claude is not installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paused: claude is not installed") && stdout.contains("millrace resume"),
        "{stdout}"
    );

    // The item is still active at the builder; nothing was spent on repairs.
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], true);
    assert_eq!(status["snapshot"]["active_stage"], "builder");
    let reason = status["snapshot"]["pause_reason"].as_str().unwrap();
    assert!(reason.starts_with("claude is not installed"), "{reason}");
    assert_eq!(
        status["last_failure"]["failure_class"],
        "harness_not_installed"
    );
    let human = ws.ok(&["status"]);
    assert!(
        human.contains("paused: true — claude is not installed"),
        "{human}"
    );
    assert!(
        human.contains("attention: paused: claude is not installed"),
        "{human}"
    );
    let counters = ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");

    let events = ws.events();
    let completed = event(&events, "stage_completed");
    assert_eq!(completed["data"]["failure_class"], "harness_not_installed");
    assert!(completed["data"]["failure_message"]
        .as_str()
        .unwrap()
        .contains("`claude` was not found"));
    let paused = event(&events, "runtime_paused");
    assert_eq!(paused["data"]["failure_class"], "harness_not_installed");
    assert_eq!(paused["data"]["work_item_id"], "t1");

    let run_id = status["snapshot"]["active_run_id"].as_str().unwrap();
    let run = ws.json(&["runs", "show", run_id]);
    assert_eq!(
        run["stage_results"][0]["failure_class"],
        "harness_not_installed"
    );

    // Paused: another tick runs nothing.
    let again = with_path(&ws, &bin, &["run", "once"]);
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.starts_with("paused\npaused: claude is not installed"),
        "{again}"
    );
    assert_eq!(ws.stages_started(), ["builder"]);

    // After `resume` the same stage runs again (and pauses again: still not installed);
    // no troubleshooter or consultant ever ran.
    ws.ok(&["resume"]);
    assert_eq!(
        ws.json(&["status"])["snapshot"]["pause_reason"],
        serde_json::Value::Null
    );
    with_path(&ws, &bin, &["run", "once"]);
    assert_eq!(ws.stages_started(), ["builder", "builder"]);
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
    assert_eq!(ws.json(&["status"])["snapshot"]["paused"], true);
}

#[test]
fn doctor_runs_each_harness_preflight_check_and_reports_what_it_said() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: claude\n",
    );
    let bin = bare_path(&ws);
    let doctor = with_path(&ws, &bin, &["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"runner_executable_missing"), "{report:#}");

    // Installed but broken: the check's own words reach the operator.
    let fake = bin.join("claude");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'claude: cannot load settings: permission denied' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let doctor = with_path(&ws, &bin, &["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "runner_preflight_failed")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("cannot load settings: permission denied"),
        "{finding:#}"
    );
}

#[test]
fn a_blocked_item_records_the_failure_class_and_the_harness_last_words() {
    let ws = TestWs::new();
    let plan = ws.write(
        "plan.txt",
        "builder run echo 'fatal: the model endpoint returned garbage' >&2; exit 3\n\
         troubleshooter run echo 'fatal: still garbage' >&2; exit 3\n\
         consultant run echo 'fatal: garbage again' >&2; exit 3\n",
    );
    let config = format!(
        "runners:\n  default_runner: command\n  command:\n    argv: [\"{}\", \"{{prompt}}\"]\n    env:\n      FAKE_HARNESS_PLAN: {}\nwatchers:\n  settle_ms: 0\n",
        fixture("fake-harness").display(),
        plan.display()
    );
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/t1.md");
    assert!(
        doc.contains("harness_error: exit 3: fatal: garbage again"),
        "{doc}"
    );
    let events = ws.events();
    let completed = events
        .iter()
        .find(|e| e["event_type"] == "stage_completed")
        .unwrap();
    assert_eq!(completed["data"]["failure_class"], "harness_error");
    assert_eq!(
        completed["data"]["failure_message"],
        "exit 3: fatal: the model endpoint returned garbage"
    );
    let blocked = event(&events, "work_item_blocked");
    assert_eq!(blocked["data"]["failure_class"], "harness_error");
    assert_eq!(
        blocked["data"]["failure_message"],
        "exit 3: fatal: garbage again"
    );
}
