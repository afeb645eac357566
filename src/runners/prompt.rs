//! The prompt handed to a harness (spec 08 §6).
//!
//! It carries only the request: where the entrypoint and skills are, and every path the agent
//! may need. It never inlines entrypoint or skill text, so editing those files changes the next
//! stage run without touching the runtime. The `Stage: <stage>` line is also what the test
//! harness keys on.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::runners::request::StageRequest;

fn or_none<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn path_or_none(value: Option<&PathBuf>) -> String {
    or_none(value.map(|p| p.display()))
}

fn list(lines: &mut Vec<String>, label: &str, paths: &[PathBuf]) {
    if paths.is_empty() {
        lines.push(format!("{label}: none"));
    } else {
        lines.push(format!("{label}:"));
        lines.extend(paths.iter().map(|p| format!("- {}", p.display())));
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Render the prompt: lines joined with `\n`, no trailing newline.
pub fn render(req: &StageRequest) -> String {
    let mut lines = vec![
        "You are carrying out one stage of a Millrace runtime request, and only that stage."
            .to_string(),
        format!(
            "Start by opening the entrypoint file `{}` and do what it says.",
            req.entrypoint_path.display()
        ),
        String::new(),
        "Stage Request Context:".to_string(),
        format!("Request ID: {}", req.request_id),
        format!("Run ID: {}", req.run_id),
        format!("Mode ID: {}", req.mode_id),
        format!("Compiled Plan ID: {}", req.compiled_plan_id),
        format!("Stage: {}", req.stage),
        format!("Plane: {}", req.plane),
        format!("Request Kind: {}", req.request_kind),
        format!("Entrypoint Path: {}", shown(&req.entrypoint_path)),
        format!(
            "Entrypoint Contract ID: {}",
            or_none(req.entrypoint_contract_id.as_deref())
        ),
        format!(
            "Active Work Item: {} {}",
            or_none(req.active_work_item_kind),
            or_none(req.active_work_item_id.as_deref())
        ),
        format!(
            "Active Work Item Path: {}",
            path_or_none(req.active_work_item_path.as_ref())
        ),
        format!(
            "Closure Target Path: {}",
            path_or_none(req.closure_target_path.as_ref())
        ),
        format!(
            "Closure Target Root Spec ID: {}",
            or_none(req.closure_target_root_spec_id.as_deref())
        ),
        format!(
            "Closure Target Root Idea ID: {}",
            or_none(req.closure_target_root_idea_id.as_deref())
        ),
        format!(
            "Canonical Root Spec Path: {}",
            path_or_none(req.canonical_root_spec_path.as_ref())
        ),
        format!(
            "Canonical Seed Idea Path: {}",
            path_or_none(req.canonical_seed_idea_path.as_ref())
        ),
        format!(
            "Preferred Rubric Path: {}",
            path_or_none(req.preferred_rubric_path.as_ref())
        ),
        format!(
            "Preferred Verdict Path: {}",
            path_or_none(req.preferred_verdict_path.as_ref())
        ),
        format!(
            "Preferred Report Path: {}",
            path_or_none(req.preferred_report_path.as_ref())
        ),
    ];
    list(
        &mut lines,
        "Required Skill Paths",
        &req.required_skill_paths,
    );
    list(
        &mut lines,
        "Attached Skill Paths",
        &req.attached_skill_paths,
    );
    lines.extend([
        format!("Run Directory: {}", shown(&req.run_dir)),
        format!(
            "Runtime Snapshot Path: {}",
            shown(&req.runtime_snapshot_path)
        ),
        format!(
            "Recovery Counters Path: {}",
            shown(&req.recovery_counters_path)
        ),
        format!("Summary Status Path: {}", shown(&req.summary_status_path)),
        format!(
            "Preferred Troubleshoot Report Path: {}",
            path_or_none(req.preferred_troubleshoot_report_path.as_ref())
        ),
        format!(
            "Runtime Error Code: {}",
            or_none(req.runtime_error_code.as_deref())
        ),
        format!(
            "Runtime Error Report Path: {}",
            path_or_none(req.runtime_error_report_path.as_ref())
        ),
        format!(
            "Runtime Error Catalog Path: {}",
            path_or_none(req.runtime_error_catalog_path.as_ref())
        ),
        format!("Runner Name: {}", or_none(req.runner_name.as_deref())),
        format!("Model Name: {}", or_none(req.model_name.as_deref())),
        format!("Timeout Seconds: {}", req.timeout_seconds),
    ]);
    if let Some(dir) = &req.working_directory {
        let branch = or_none(req.working_branch.as_deref());
        lines.extend([
            format!("Working Directory: {}", shown(dir)),
            format!("Working Branch: {branch}"),
            format!(
                "You work in a git worktree of your own on branch `{branch}`, not in the main \
                 working tree: make every change to the project there. Commit your work or \
                 leave it; the runtime commits what is left and lands the branch on the base \
                 branch when the task's loop is done. The work item and run files above stay \
                 where they are named."
            ),
        ]);
    }
    lines.extend([
        String::new(),
        "When the stage is done, print exactly one legal terminal marker, as the entrypoint \
         defines them, on a line of its own."
            .to_string(),
        format!(
            "The legal markers for this stage are: {}.",
            req.stage
                .legal_results()
                .iter()
                .map(|r| format!("`{}`", r.marker()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "Use a marker exactly as listed; never make one up or change its spelling.".to_string(),
        "Print one marker only, then stop.".to_string(),
    ]);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::runners::request::tests::sample;

    const GOLDEN: &str = "\
You are carrying out one stage of a Millrace runtime request, and only that stage.
Start by opening the entrypoint file `/ws/millrace-agents/entrypoints/execution/checker.md` and do what it says.

Stage Request Context:
Request ID: request-0123456789abcdef0123456789abcdef
Run ID: run-fedcba9876543210fedcba9876543210
Mode ID: standard_plain
Compiled Plan ID: plan-1
Stage: checker
Plane: execution
Request Kind: active_work_item
Entrypoint Path: /ws/millrace-agents/entrypoints/execution/checker.md
Entrypoint Contract ID: checker.contract.v1
Active Work Item: task task-1
Active Work Item Path: /ws/millrace-agents/tasks/active/task-1.md
Closure Target Path: none
Closure Target Root Spec ID: none
Closure Target Root Idea ID: none
Canonical Root Spec Path: none
Canonical Seed Idea Path: none
Preferred Rubric Path: none
Preferred Verdict Path: none
Preferred Report Path: none
Required Skill Paths:
- /ws/millrace-agents/skills/stage/execution/checker-core/SKILL.md
Attached Skill Paths: none
Run Directory: /ws/millrace-agents/runs/run-1
Runtime Snapshot Path: /ws/millrace-agents/state/runtime_snapshot.yaml
Recovery Counters Path: /ws/millrace-agents/state/recovery_counters.yaml
Summary Status Path: /ws/millrace-agents/state/execution_status.md
Preferred Troubleshoot Report Path: /ws/millrace-agents/runs/run-1/troubleshoot_report.md
Runtime Error Code: none
Runtime Error Report Path: none
Runtime Error Catalog Path: none
Runner Name: none
Model Name: gpt-5
Timeout Seconds: 3600

When the stage is done, print exactly one legal terminal marker, as the entrypoint defines them, on a line of its own.
The legal markers for this stage are: `### CHECKER_PASS`, `### FIX_NEEDED`, `### BLOCKED`.
Use a marker exactly as listed; never make one up or change its spelling.
Print one marker only, then stop.";

    #[test]
    fn golden_prompt() {
        let mut req = sample(Stage::Checker, Path::new("/ws/millrace-agents/runs/run-1"));
        req.model_name = Some("gpt-5".into());
        let prompt = render(&req);
        assert_eq!(prompt, GOLDEN);
        assert!(!prompt.contains("### TOKEN"));
        assert!(!prompt.ends_with('\n'));
    }

    #[test]
    fn closure_request_renders_none_none_and_listed_skills() {
        let mut req = sample(Stage::Arbiter, Path::new("/ws/millrace-agents/runs/run-2"));
        req.active_work_item_kind = None;
        req.active_work_item_id = None;
        req.attached_skill_paths = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        let prompt = render(&req);
        assert!(prompt.contains("\nActive Work Item: none none\n"));
        assert!(prompt.contains("\nAttached Skill Paths:\n- /a\n- /b\nRun Directory:"));
        assert!(prompt.contains("\nStage: arbiter\n"));
        assert!(prompt.contains("`### ARBITER_COMPLETE`, `### REMEDIATION_NEEDED`, `### BLOCKED`."));
    }
}
