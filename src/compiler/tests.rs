//! Unit tests for the compiler: shipped assets, fixtures under `fixtures/compiler/`, routing.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::Config;
use crate::model::{Plane, Stage, TerminalResult as R, WorkItemKind};
use crate::workspace::Workspace;

fn shipped_assets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::workspace::deploy_assets(dir.path()).unwrap();
    dir
}

fn compile_dir(assets: &Path, config: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    compile_assets(assets, config, "standard_plain")
}

fn shipped_plan(config: &Config) -> FrozenRunPlan {
    let dir = shipped_assets();
    compile_dir(dir.path(), config).unwrap().plan
}

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compiler")
        .join(case)
}

/// Copy a fixture case (an overlay of asset files) over the shipped assets.
fn overlay(case: &str, assets: &Path) {
    let root = fixture_dir(case);
    assert!(root.is_dir(), "missing fixture {}", root.display());
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(&root).unwrap();
            let dest = assets.join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn compile_case(case: &str) -> Result<Compiled, Vec<Diagnostic>> {
    let dir = shipped_assets();
    overlay(case, dir.path());
    compile_dir(dir.path(), &Config::default())
}

fn config(yaml: &str) -> Config {
    Config::parse(Path::new("millrace.yaml"), yaml).unwrap()
}

#[test]
fn shipped_assets_compile_to_the_reference_plan() {
    let dir = shipped_assets();
    let compiled = compile_dir(dir.path(), &Config::default()).unwrap();
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    let plan = compiled.plan;
    let order: Vec<&str> = plan.stage_plans.iter().map(|p| p.stage.as_str()).collect();
    assert_eq!(
        order,
        [
            "builder",
            "checker",
            "fixer",
            "doublechecker",
            "updater",
            "troubleshooter",
            "consultant",
            "planner",
            "manager",
            "mechanic",
            "auditor",
            "arbiter"
        ]
    );
    for p in &plan.stage_plans {
        assert_eq!(p.runner_name, None);
        assert_eq!(p.model_name, None);
        assert_eq!(p.timeout_seconds, 3600);
        assert_eq!(
            p.entrypoint_path,
            format!("entrypoints/{}/{}.md", p.plane, p.stage)
        );
        assert_eq!(
            p.entrypoint_contract_id.as_deref(),
            Some(&*format!("{}.contract.v1", p.stage))
        );
        assert_eq!(
            p.required_skills,
            [format!(
                "skills/stage/{}/{}-core/SKILL.md",
                p.plane, p.stage
            )]
        );
    }
    assert_eq!(plan.completion_behavior().unwrap().stage, Stage::Arbiter);
    assert_eq!(
        plan.source_refs,
        [
            "mode:standard_plain",
            "loop:execution.standard",
            "loop:planning.standard",
            "completion_behavior:planning.standard:arbiter"
        ]
    );
    assert_eq!(plan.routing.edges.len(), 17 + 11);
    plan.check().unwrap();
}

#[test]
fn shipped_routing_digest_is_pinned() {
    let plan = shipped_plan(&Config::default());
    assert_eq!(routing_digest(&plan.routing), SHIPPED_ROUTING_DIGEST);
}

#[test]
fn plan_id_test_vectors() {
    let vectors = [
        ("", "plan-standard_plain-6150f282c7a5"),
        (
            "stages:\n  checker: {}\n",
            "plan-standard_plain-6150f282c7a5",
        ),
        (
            "stages:\n  builder:\n    model: gpt-5\n    timeout_seconds: 1800\n",
            "plan-standard_plain-c4ffda52d4ab",
        ),
        (
            "stages:\n  checker:\n    runner: codex_cli\n",
            "plan-standard_plain-502464be4acf",
        ),
    ];
    for (yaml, id) in vectors {
        assert_eq!(
            shipped_plan(&config(yaml)).compiled_plan_id,
            id,
            "config {yaml:?}"
        );
    }
}

#[test]
fn plan_id_is_stable_and_tracks_recovery_limits() {
    let a = shipped_plan(&Config::default());
    let b = shipped_plan(&Config::default());
    assert_eq!(a.compiled_plan_id, b.compiled_plan_id);
    let c = shipped_plan(&config("recovery:\n  max_fix_cycles: 3\n"));
    assert_ne!(a.compiled_plan_id, c.compiled_plan_id);
}

#[test]
fn editing_a_loop_edge_changes_plan_id_and_routing() {
    let shipped = shipped_plan(&Config::default());
    let edited = compile_case("edit_troubleshoot_to_builder").unwrap().plan;
    assert_ne!(shipped.compiled_plan_id, edited.compiled_plan_id);
    let route = |plan: &FrozenRunPlan| {
        plan.route(
            Plane::Execution,
            Stage::Troubleshooter,
            R::TroubleshootComplete,
            |_| 0,
        )
        .unwrap()
    };
    assert!(matches!(
        route(&shipped),
        Route::Stage {
            next: Stage::Checker,
            ..
        }
    ));
    assert!(matches!(
        route(&edited),
        Route::Stage {
            next: Stage::Builder,
            ..
        }
    ));
}

/// Each fixture case breaks one rule; the compile must name its code and the file.
#[test]
fn every_validation_rule_has_a_code_and_names_the_file() {
    let cases = [
        ("mode_yaml_syntax", Code::ModeYaml, "standard_plain.yaml"),
        ("mode_not_mapping", Code::ModeYaml, "standard_plain.yaml"),
        ("mode_unknown_key", Code::ModeSchema, "standard_plain.yaml:"),
        (
            "mode_bad_stage_key",
            Code::ModeSchema,
            "standard_plain.yaml:",
        ),
        ("mode_wrong_kind", Code::ModeSchema, "standard_plain.yaml"),
        (
            "mode_id_mismatch",
            Code::ModeIdMismatch,
            "standard_plain.yaml",
        ),
        ("mode_unknown_loop", Code::LoopUnknown, "nowhere.yaml"),
        (
            "mode_loop_wrong_plane",
            Code::LoopPlane,
            "planning.standard",
        ),
        (
            "mode_entrypoint_override",
            Code::ModeEntrypointOverride,
            "../outside.md",
        ),
        (
            "mode_stage_outside_loops",
            Code::ModeStageOutsideLoops,
            "consultant",
        ),
        ("loop_yaml_syntax", Code::LoopYaml, "default.yaml:"),
        ("loop_unknown_key", Code::LoopSchema, "default.yaml:"),
        ("loop_unknown_stage_name", Code::LoopSchema, "default.yaml:"),
        ("loop_id_mismatch", Code::LoopIdMismatch, "default.yaml"),
        (
            "loop_entry_not_in_stages",
            Code::LoopEntryNotInStages,
            "default.yaml:",
        ),
        (
            "loop_stages_not_unique",
            Code::LoopStagesNotUnique,
            "default.yaml:",
        ),
        (
            "loop_stage_wrong_plane",
            Code::LoopStageWrongPlane,
            "default.yaml:",
        ),
        (
            "loop_no_terminal_edge",
            Code::LoopNoTerminalEdge,
            "default.yaml",
        ),
        (
            "loop_entry_kind_plane",
            Code::LoopEntryKindPlane,
            "default.yaml:",
        ),
        (
            "edge_max_attempts_zero",
            Code::EdgeMaxAttempts,
            "default.yaml:",
        ),
        (
            "edge_target_and_terminal",
            Code::EdgeTargetXorTerminal,
            "default.yaml:",
        ),
        (
            "edge_terminal_without_result",
            Code::EdgeTerminalNeedsResult,
            "default.yaml:",
        ),
        ("edge_needs_target", Code::EdgeNeedsTarget, "default.yaml:"),
        (
            "edge_source_not_in_stages",
            Code::EdgeSourceNotInStages,
            "default.yaml:",
        ),
        (
            "edge_illegal_result",
            Code::EdgeIllegalResult,
            "default.yaml:",
        ),
        (
            "edge_target_not_in_stages",
            Code::EdgeTargetNotInStages,
            "default.yaml:",
        ),
        (
            "edge_terminal_not_declared",
            Code::EdgeTerminalNotDeclared,
            "default.yaml:",
        ),
        ("edge_duplicate", Code::EdgeDuplicate, "default.yaml:"),
        (
            "edge_budget_conflict",
            Code::EdgeBudgetConflict,
            "default.yaml:",
        ),
        (
            "edge_budget_on_terminal",
            Code::EdgeBudgetOnTerminal,
            "default.yaml:",
        ),
        (
            "edge_exhausted_without_budget",
            Code::EdgeExhaustedWithoutBudget,
            "default.yaml:",
        ),
        (
            "edge_exhausted_not_in_stages",
            Code::EdgeExhaustedNotInStages,
            "default.yaml:",
        ),
        (
            "edge_exhausted_not_declared",
            Code::EdgeExhaustedNotDeclared,
            "default.yaml:",
        ),
        (
            "edge_exhausted_ambiguous",
            Code::EdgeExhaustedAmbiguous,
            "default.yaml",
        ),
        (
            "edge_exhausted_loop",
            Code::EdgeExhaustedLoop,
            "default.yaml",
        ),
        (
            "edge_terminal_consequence",
            Code::EdgeTerminalConsequence,
            "default.yaml:",
        ),
        (
            "completion_pass_gap_same",
            Code::CompletionPassGapSame,
            "default.yaml:",
        ),
        (
            "completion_pass_illegal",
            Code::CompletionPassIllegal,
            "default.yaml:",
        ),
        (
            "completion_gap_illegal",
            Code::CompletionGapIllegal,
            "default.yaml:",
        ),
        (
            "completion_stage_not_in_stages",
            Code::CompletionStageNotInStages,
            "default.yaml:",
        ),
        (
            "completion_stage_wrong_plane",
            Code::CompletionStageWrongPlane,
            "default.yaml:",
        ),
        (
            "completion_pass_not_declared",
            Code::CompletionPassNotDeclared,
            "default.yaml:",
        ),
        (
            "completion_gap_not_declared",
            Code::CompletionGapNotDeclared,
            "default.yaml:",
        ),
        (
            "graph_unreachable_stage",
            Code::GraphUnreachableStage,
            "default.yaml",
        ),
        (
            "graph_unbounded_cycle",
            Code::GraphUnboundedCycle,
            "default.yaml",
        ),
        (
            "graph_result_without_edge",
            Code::GraphResultWithoutEdge,
            "default.yaml",
        ),
    ];
    for (case, code, file) in cases {
        let errors = match compile_case(case) {
            Ok(_) => panic!("{case}: compiled, expected {code}"),
            Err(errors) => errors,
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let hit = shown.iter().find(|e| e.starts_with(&format!("{code}: ")));
        let hit = hit.unwrap_or_else(|| panic!("{case}: expected {code}, got {shown:#?}"));
        assert!(hit.contains(file), "{case}: {hit} should name {file}");
    }
}

#[test]
fn graph_checks_explain_the_problem() {
    let shown = |case: &str| compile_case(case).unwrap_err()[0].to_string();
    assert!(shown("graph_unreachable_stage").contains("stage auditor is unreachable"));
    assert!(shown("graph_unbounded_cycle").contains("fixer -> doublechecker -> fixer"));
    assert!(shown("graph_result_without_edge").contains("stage updater has no edge for BLOCKED"));
    assert!(shown("edge_illegal_result").contains("legal: BUILDER_COMPLETE, BLOCKED"));
    assert!(shown("loop_unknown_stage_name").contains("painter"));
    assert!(shown("mode_unknown_key").contains("stage_role_overlays"));
}

#[test]
fn unknown_mode_is_an_error_not_a_fallback() {
    let dir = shipped_assets();
    for mode in ["nope", "../modes/standard_plain", ""] {
        let errors = compile_assets(dir.path(), &Config::default(), mode).unwrap_err();
        assert_eq!(errors[0].code, Code::ModeUnknown, "{mode}: {errors:?}");
    }
    assert_eq!(list_mode_ids(dir.path()), ["standard_plain"]);
}

#[test]
fn unreadable_mode_asset_is_reported() {
    let dir = shipped_assets();
    std::fs::create_dir(dir.path().join("modes/dir_mode.yaml")).unwrap();
    let errors = compile_assets(dir.path(), &Config::default(), "dir_mode").unwrap_err();
    assert_eq!(errors[0].code, Code::ModeRead);
}

#[test]
fn unused_terminal_result_is_a_warning() {
    let dir = shipped_assets();
    let exec = dir.path().join("loops/execution/default.yaml");
    let text = std::fs::read_to_string(&exec).unwrap();
    std::fs::write(
        &exec,
        text.replace(
            "[UPDATE_COMPLETE, NEEDS_PLANNING, BLOCKED]",
            "[UPDATE_COMPLETE, NEEDS_PLANNING, BLOCKED, MANAGER_COMPLETE]",
        ),
    )
    .unwrap();
    let compiled = compile_dir(dir.path(), &Config::default()).unwrap();
    assert_eq!(compiled.warnings.len(), 1);
    assert_eq!(compiled.warnings[0].code, Code::WarnUnusedTerminalResult);
}

#[test]
fn entrypoint_overrides_are_normalized_or_rejected() {
    use super::plan::normalize_entrypoint as n;
    assert_eq!(
        n(" ./entrypoints//execution/./b.md ").as_deref(),
        Some("entrypoints/execution/b.md")
    );
    assert_eq!(n("entrypoints\\x.md").as_deref(), Some("entrypoints/x.md"));
    for bad in [
        "",
        "  ",
        "/entrypoints/x.md",
        "entrypoints/../x.md",
        "../x.md",
        "other/x.md",
        "entrypoints/x.txt",
        ".",
    ] {
        assert_eq!(n(bad), None, "{bad:?}");
    }
}

#[test]
fn canonical_json_matches_python_json_dumps() {
    let value = serde_json::json!({"b": [1, true, null], "a": "é\"\n\u{1F600}\u{7f}"});
    assert_eq!(
        canonical_json(&value),
        r#"{"a":"\u00e9\"\n\ud83d\ude00\u007f","b":[1,true,null]}"#
    );
}

fn route(plan: &FrozenRunPlan, stage: Stage, result: R, used: &[(&str, u32)]) -> Route {
    plan.route(stage.plane(), stage, result, |key| {
        used.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    })
    .unwrap()
}

fn next(route: &Route) -> (Stage, Option<&str>) {
    match route {
        Route::Stage {
            next, budget_key, ..
        } => (*next, budget_key.as_deref()),
        other => panic!("expected a stage, got {other:?}"),
    }
}

fn terminal(route: &Route) -> (R, Consequence) {
    match route {
        Route::Terminal {
            result,
            consequence,
            ..
        } => (*result, *consequence),
        other => panic!("expected a terminal, got {other:?}"),
    }
}

#[test]
fn routing_happy_path() {
    let plan = shipped_plan(&Config::default());
    assert_eq!(
        next(&route(&plan, Stage::Builder, R::BuilderComplete, &[])),
        (Stage::Checker, None)
    );
    assert_eq!(
        next(&route(&plan, Stage::Checker, R::CheckerPass, &[])),
        (Stage::Updater, None)
    );
    assert_eq!(
        next(&route(&plan, Stage::Fixer, R::FixerComplete, &[])),
        (Stage::Doublechecker, None)
    );
    assert_eq!(
        next(&route(&plan, Stage::Doublechecker, R::DoublecheckPass, &[])),
        (Stage::Updater, None)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Updater, R::UpdateComplete, &[])),
        (R::UpdateComplete, Consequence::Complete)
    );
    assert_eq!(
        next(&route(&plan, Stage::Planner, R::PlannerComplete, &[])),
        (Stage::Manager, None)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Manager, R::ManagerComplete, &[])),
        (R::ManagerComplete, Consequence::Complete)
    );
    assert_eq!(
        next(&route(&plan, Stage::Auditor, R::AuditorComplete, &[])),
        (Stage::Planner, None)
    );
    assert_eq!(
        next(&route(&plan, Stage::Mechanic, R::MechanicComplete, &[])),
        (Stage::Planner, None)
    );
}

#[test]
fn fix_needed_uses_the_fix_budget_then_recovery() {
    let plan = shipped_plan(&Config::default());
    for used in [0, 1] {
        let r = route(&plan, Stage::Checker, R::FixNeeded, &[("fix_cycle", used)]);
        assert_eq!(next(&r), (Stage::Fixer, Some("fix_cycle")));
    }
    let r = route(
        &plan,
        Stage::Doublechecker,
        R::FixNeeded,
        &[("fix_cycle", 2)],
    );
    assert_eq!(next(&r), (Stage::Troubleshooter, Some("troubleshoot")));
    let Route::Stage { reason, .. } = &r else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "doublechecker:FIX_NEEDED;fix_cycle:budget_exhausted(2/2)"
    );
    let r = route(
        &plan,
        Stage::Checker,
        R::FixNeeded,
        &[("fix_cycle", 2), ("troubleshoot", 2)],
    );
    assert_eq!(next(&r), (Stage::Consultant, Some("consultant")));
    let r = route(
        &plan,
        Stage::Checker,
        R::FixNeeded,
        &[("fix_cycle", 2), ("troubleshoot", 2), ("consultant", 2)],
    );
    assert_eq!(terminal(&r), (R::Blocked, Consequence::Block));
    let Route::Terminal { reason, .. } = &r else {
        unreachable!()
    };
    assert!(
        reason.ends_with("consultant:budget_exhausted(2/2)"),
        "{reason}"
    );
}

#[test]
fn fix_budget_follows_config() {
    let plan = shipped_plan(&config("recovery:\n  max_fix_cycles: 3\n"));
    let r = route(&plan, Stage::Checker, R::FixNeeded, &[("fix_cycle", 2)]);
    assert_eq!(next(&r), (Stage::Fixer, Some("fix_cycle")));
}

#[test]
fn blocked_chain_troubleshoot_then_consult_then_block() {
    let plan = shipped_plan(&Config::default());
    for stage in [
        Stage::Builder,
        Stage::Checker,
        Stage::Fixer,
        Stage::Doublechecker,
        Stage::Updater,
    ] {
        assert_eq!(
            next(&route(&plan, stage, R::Blocked, &[])),
            (Stage::Troubleshooter, Some("troubleshoot"))
        );
        assert_eq!(
            next(&route(&plan, stage, R::Blocked, &[("troubleshoot", 2)])),
            (Stage::Consultant, Some("consultant"))
        );
    }
    assert_eq!(
        next(&route(&plan, Stage::Troubleshooter, R::Blocked, &[])),
        (Stage::Consultant, Some("consultant"))
    );
    assert_eq!(
        terminal(&route(
            &plan,
            Stage::Troubleshooter,
            R::Blocked,
            &[("consultant", 2)]
        )),
        (R::Blocked, Consequence::Block)
    );
    assert_eq!(
        next(&route(
            &plan,
            Stage::Consultant,
            R::ConsultComplete,
            &[("troubleshoot", 9)]
        )),
        (Stage::Troubleshooter, None)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Consultant, R::Blocked, &[])),
        (R::Blocked, Consequence::Block)
    );
    assert_eq!(
        next(&route(
            &plan,
            Stage::Troubleshooter,
            R::TroubleshootComplete,
            &[]
        )),
        (Stage::Checker, None)
    );
    for stage in [Stage::Planner, Stage::Manager, Stage::Auditor] {
        assert_eq!(
            next(&route(&plan, stage, R::Blocked, &[("mechanic", 1)])),
            (Stage::Mechanic, Some("mechanic"))
        );
        assert_eq!(
            terminal(&route(&plan, stage, R::Blocked, &[("mechanic", 2)])),
            (R::Blocked, Consequence::Block)
        );
    }
    assert_eq!(
        terminal(&route(&plan, Stage::Mechanic, R::Blocked, &[])),
        (R::Blocked, Consequence::Block)
    );
}

#[test]
fn handoff_arbiter_outcomes_and_entries() {
    let plan = shipped_plan(&Config::default());
    assert_eq!(
        terminal(&route(&plan, Stage::Consultant, R::NeedsPlanning, &[])),
        (R::NeedsPlanning, Consequence::Handoff)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Arbiter, R::ArbiterComplete, &[])),
        (R::ArbiterComplete, Consequence::CloseTarget)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Arbiter, R::RemediationNeeded, &[])),
        (R::RemediationNeeded, Consequence::Remediation)
    );
    assert_eq!(
        terminal(&route(&plan, Stage::Arbiter, R::Blocked, &[])),
        (R::Blocked, Consequence::Block)
    );
    assert_eq!(plan.entry_stage(WorkItemKind::Task), Stage::Builder);
    assert_eq!(plan.entry_stage(WorkItemKind::Spec), Stage::Planner);
    assert_eq!(plan.entry_stage(WorkItemKind::Incident), Stage::Auditor);
    assert_eq!(
        plan.stage_plan(Stage::Fixer).unwrap().plane,
        Plane::Execution
    );
}

#[test]
fn routing_rejects_illegal_results_and_wrong_planes() {
    let plan = shipped_plan(&Config::default());
    assert_eq!(
        plan.route(Plane::Execution, Stage::Builder, R::FixNeeded, |_| 0),
        Err(RouteError::IllegalResult {
            stage: Stage::Builder,
            result: R::FixNeeded
        })
    );
    assert!(matches!(
        plan.route(Plane::Planning, Stage::Builder, R::Blocked, |_| 0),
        Err(RouteError::WrongPlane { .. })
    ));
}

#[test]
fn fixed_max_attempts_gets_an_edge_budget_key() {
    let dir = shipped_assets();
    let exec = dir.path().join("loops/execution/default.yaml");
    let text = std::fs::read_to_string(&exec).unwrap();
    let edited = text.replacen("    budget: max_fix_cycles\n", "    max_attempts: 1\n", 1);
    std::fs::write(&exec, edited).unwrap();
    let plan = compile_dir(dir.path(), &Config::default()).unwrap().plan;
    let key = "edge:checker:FIX_NEEDED";
    assert_eq!(
        next(&route(&plan, Stage::Checker, R::FixNeeded, &[])),
        (Stage::Fixer, Some(key))
    );
    let spent = route(&plan, Stage::Checker, R::FixNeeded, &[(key, 1)]);
    assert_eq!(next(&spent), (Stage::Troubleshooter, Some("troubleshoot")));
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open_or_init(dir.path()).unwrap();
    (dir, ws)
}

#[test]
fn persist_writes_once_and_keeps_last_known_good() {
    let (_dir, ws) = workspace();
    let first = compile_and_persist(&ws, &Config::default(), None).unwrap();
    assert!(first.ok() && first.persisted && !first.used_last_known_good);
    let plan_bytes = std::fs::read(ws.compiled_plan_path()).unwrap();
    let diag_bytes = std::fs::read(ws.compile_diagnostics_path()).unwrap();

    let again = compile_and_persist(&ws, &Config::default(), None).unwrap();
    assert_eq!(again.plan, first.plan);
    assert_eq!(std::fs::read(ws.compiled_plan_path()).unwrap(), plan_bytes);
    assert_eq!(
        std::fs::read(ws.compile_diagnostics_path()).unwrap(),
        diag_bytes
    );

    let failed = compile_and_persist(&ws, &Config::default(), Some("nope")).unwrap();
    assert!(!failed.ok() && failed.used_last_known_good);
    assert_eq!(failed.mode_id, "nope");
    assert_eq!(
        failed.plan.as_ref().unwrap().compiled_plan_id,
        "plan-standard_plain-6150f282c7a5"
    );
    assert_eq!(std::fs::read(ws.compiled_plan_path()).unwrap(), plan_bytes);
    let diag: CompileDiagnostics = crate::yaml::from_str(
        Path::new("d"),
        &std::fs::read_to_string(ws.compile_diagnostics_path()).unwrap(),
    )
    .unwrap();
    assert!(
        !diag.ok && diag.errors[0].starts_with("E-MODE-UNKNOWN: Unknown built-in mode id: nope")
    );
}

#[test]
fn in_memory_compile_writes_nothing() {
    let (_dir, ws) = workspace();
    let outcome = compile_in_memory(&ws, &Config::default(), None);
    assert!(outcome.ok() && !outcome.persisted);
    assert!(!ws.compiled_plan_path().exists());
    assert!(!ws.compile_diagnostics_path().exists());
}
