//! `millrace compile|config|modes` driven through the real binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn millrace(ws: &Path) -> Command {
    let mut cmd = Command::cargo_bin("millrace").unwrap();
    cmd.arg("--workspace")
        .arg(ws)
        .env_remove("MILLRACE_WORKSPACE");
    cmd
}

fn init() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    millrace(dir.path()).arg("init").assert().success();
    dir
}

fn rt(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("millrace-agents")
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.output().unwrap().stdout).unwrap()
}

#[test]
fn compile_validate_on_a_fresh_workspace_compiles_and_writes_nothing() {
    let dir = init();
    millrace(dir.path())
        .args(["compile", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok: true\nmode_id: standard_plain\n",
        ))
        .stdout(predicate::str::contains(
            "compiled_plan_id: plan-standard_plain-6150f282c7a5",
        ));
    assert!(!rt(&dir).join("state/compiled_plan.yaml").exists());
    assert!(!rt(&dir).join("state/compile_diagnostics.yaml").exists());
}

#[test]
fn broken_loop_edit_fails_with_code_and_file_and_keeps_the_plan() {
    let dir = init();
    // The runtime writes the plan it runs at startup (an idle `run once`).
    millrace(dir.path())
        .args(["run", "once"])
        .assert()
        .success();
    let plan_path = rt(&dir).join("state/compiled_plan.yaml");
    let before = std::fs::read(&plan_path).unwrap();

    let loop_path = rt(&dir).join("loops/execution/default.yaml");
    let text = std::fs::read_to_string(&loop_path).unwrap();
    std::fs::write(
        &loop_path,
        text.replace("entry_stage: builder", "entry_stage: planner"),
    )
    .unwrap();
    millrace(dir.path())
        .args(["compile", "validate"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("ok: false"))
        .stdout(predicate::str::contains("used_last_known_good: true"))
        .stderr(predicate::str::contains(
            "error: E-LOOP-ENTRY-NOT-IN-STAGES",
        ))
        .stderr(predicate::str::contains("loops/execution/default.yaml:"));
    assert_eq!(std::fs::read(&plan_path).unwrap(), before);
}

#[test]
fn unknown_mode_fails() {
    let dir = init();
    millrace(dir.path())
        .args(["compile", "validate", "--mode", "nope"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("mode_id: nope"))
        .stderr(predicate::str::contains(
            "E-MODE-UNKNOWN: Unknown built-in mode id: nope",
        ));
    millrace(dir.path())
        .args(["modes", "show", "nope"])
        .assert()
        .code(1);
}

#[test]
fn compile_show_json_has_plan_routing_and_budgets() {
    let dir = init();
    let out = stdout_of(millrace(dir.path()).args(["--json", "compile", "show"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["mode_id"], "standard_plain");
    assert_eq!(json["used_last_known_good"], false);
    assert_eq!(json["compiled_plan_id"], "plan-standard_plain-6150f282c7a5");
    let plan = &json["plan"];
    assert_eq!(plan["stage_plans"].as_array().unwrap().len(), 12);
    assert_eq!(plan["stage_plans"][0]["timeout_seconds"], 3600);
    assert_eq!(plan["completion_behavior"]["stage"], "arbiter");
    assert_eq!(plan["routing"]["entry_stages"]["incident"], "auditor");
    let fix = plan["routing"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source_stage"] == "checker" && e["on_terminal_result"] == "FIX_NEEDED")
        .unwrap();
    assert_eq!(fix["budgeted"][0]["budget_key"], "fix_cycle");
    assert_eq!(fix["budgeted"][0]["limit"], 2);
    assert_eq!(fix["then"], "BLOCKED");
}

#[test]
fn compile_show_lists_stages_and_routes() {
    let dir = init();
    millrace(dir.path())
        .args(["compile", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("entry_stage.incident: auditor"))
        .stdout(predicate::str::contains(
            "stage: execution.builder\nentrypoint_path: entrypoints/execution/builder.md",
        ))
        .stdout(predicate::str::contains(
            "route: checker FIX_NEEDED -> fixer while fix_cycle < 2, else troubleshooter",
        ));
}

#[test]
fn compile_graph_mermaid_matches_the_checked_in_snapshot() {
    let dir = init();
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compiler/graph_standard.mmd"),
    )
    .unwrap();
    let out = stdout_of(millrace(dir.path()).args(["compile", "graph", "--format", "mermaid"]));
    assert_eq!(out, expected);
    let dot = stdout_of(millrace(dir.path()).args(["compile", "graph", "--format", "dot"]));
    assert!(
        dot.starts_with("digraph millrace {") && dot.contains("checker -> fixer"),
        "{dot}"
    );
}

#[test]
fn modes_list_shows_the_workspace_modes() {
    let dir = init();
    millrace(dir.path())
        .args(["modes", "list"])
        .assert()
        .success()
        .stdout(
            "standard_plain: execution_loop=execution.standard planning_loop=planning.standard\n",
        );
    millrace(dir.path())
        .args(["modes", "show", "standard_plain"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "mode_id: standard_plain\nexecution_loop_id: execution.standard\nplanning_loop_id: planning.standard\n",
        ));
}

#[test]
fn config_show_prints_python_style_values() {
    let dir = init();
    millrace(dir.path())
        .args(["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "default_mode: standard_plain\nrun_style: daemon\nidle_sleep_seconds: 60.0\nwatchers.enabled: true\n",
        ));
}

#[test]
fn config_validate_names_line_and_column_of_an_unknown_key() {
    let dir = init();
    std::fs::write(
        rt(&dir).join("millrace.yaml"),
        "runtime:\n  default_mode: standard_plain\n  bogus: 1\n",
    )
    .unwrap();
    millrace(dir.path())
        .args(["config", "validate"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("millrace.yaml:3:3:"))
        .stderr(predicate::str::contains("bogus"));
    millrace(dir.path())
        .args([
            "config",
            "validate",
            "--config",
            "/nonexistent/millrace.yaml",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn config_validate_compiles_the_selected_mode() {
    let dir = init();
    millrace(dir.path())
        .args(["config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok: true"));
    millrace(dir.path())
        .args(["config", "validate", "--mode", "nope"])
        .assert()
        .code(1);
}

#[test]
fn read_only_commands_need_a_workspace_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 7] = [
        &["compile", "validate"],
        &["compile", "show"],
        &["compile", "graph"],
        &["config", "show"],
        &["config", "validate"],
        &["modes", "list"],
        &["modes", "show", "standard_plain"],
    ];
    for args in commands {
        millrace(dir.path())
            .args(args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains("millrace init"));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn compile_leaves_a_running_daemons_plan_alone() {
    let dir = init();
    let lock = std::fs::File::create(rt(&dir).join("state/runtime_daemon.lock.yaml")).unwrap();
    lock.lock().unwrap();
    millrace(dir.path())
        .args(["compile", "validate"])
        .assert()
        .success();
    assert!(!rt(&dir).join("state/compiled_plan.yaml").exists());
    assert!(!rt(&dir).join("state/compile_diagnostics.yaml").exists());
    lock.unlock().unwrap();
}

/// A start against an unchanged workspace leaves the written plan as it is (same text, same
/// compile time); a start after an edit writes the new plan.
#[test]
fn an_unchanged_workspace_keeps_its_written_plan_and_an_edit_rewrites_it() {
    let dir = init();
    let run_once = || {
        millrace(dir.path())
            .args(["run", "once"])
            .assert()
            .success();
    };
    run_once();
    let plan_path = rt(&dir).join("state/compiled_plan.yaml");
    let first = std::fs::read_to_string(&plan_path).unwrap();
    run_once();
    assert_eq!(std::fs::read_to_string(&plan_path).unwrap(), first);
    let mode = rt(&dir).join("modes/standard_plain.yaml");
    let text = std::fs::read_to_string(&mode).unwrap().replace(
        "stage_model_bindings: {}",
        "stage_model_bindings: {builder: gpt-test}",
    );
    std::fs::write(&mode, text).unwrap();
    run_once();
    let after = std::fs::read_to_string(&plan_path).unwrap();
    assert!(after.contains("model_name: gpt-test"), "{after}");
}
