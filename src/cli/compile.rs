//! `millrace compile validate|show|graph`.
//!
//! All three are read-only (decision 6): they compile in memory and write nothing. The plan
//! on disk is written by the runtime that runs it (`run once`, the daemon) at startup.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::diagnostics::{validate, Report};
use super::output::or_none;
use super::{open_read_only, Ctx};
use crate::compiler::{self, FrozenRunPlan};
use crate::config::Config;
use crate::error::{ExitCode, Result};

#[derive(Debug, Subcommand)]
pub enum CompileCommand {
    /// Compile and report diagnostics (in memory: writes nothing).
    #[command(
        after_help = "Examples:\n  millrace compile validate\n  millrace compile validate --mode quick --json"
    )]
    Validate(CompileArgs),
    /// Compile and show the plan: stages, runners, routing table with budgets.
    #[command(after_help = "Example:\n  millrace compile show --mode quick")]
    Show(CompileArgs),
    /// Print the loop topology (Mermaid or Graphviz) for docs.
    #[command(
        after_help = "Examples:\n  millrace compile graph > loops.mmd\n  millrace compile graph --format dot | dot -Tsvg > loops.svg"
    )]
    Graph(GraphArgs),
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Mode to compile (default: runtime.default_mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// Config file to use instead of millrace-agents/millrace.yaml (must exist).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub compile: CompileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

pub fn run(ctx: &Ctx, cmd: CompileCommand) -> Result<ExitCode> {
    match cmd {
        CompileCommand::Validate(args) => {
            let ws = open_read_only(ctx)?;
            let config = Config::load_for(&ws, args.config.as_deref())?;
            validate(ctx, &ws, &config, args.mode.as_deref())
        }
        CompileCommand::Show(args) => show(ctx, args),
        CompileCommand::Graph(args) => graph(ctx, args),
    }
}

fn show(ctx: &Ctx, args: CompileArgs) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let config = Config::load_for(&ws, args.config.as_deref())?;
    let outcome = compiler::compile_in_memory(&ws, &config, args.mode.as_deref());
    let report = Report::new(&outcome, true);
    ctx.emit(&report, || {
        let mut text = report.human();
        if let Some(plan) = &outcome.plan {
            text.push_str(&describe_plan(plan));
        }
        text
    });
    report.print_diagnostics();
    Ok(report.exit_code())
}

/// The serialized spelling of a unit enum value (`backlog_drained`).
fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The plan as `key: value` lines: loops, completion, entries, stages, routing.
fn describe_plan(plan: &FrozenRunPlan) -> String {
    let mut lines = vec![
        format!("execution_loop_id: {}", plan.execution_loop_id),
        format!("planning_loop_id: {}", plan.planning_loop_id),
    ];
    if let Some(cb) = plan.completion_behavior() {
        let fields = [
            ("trigger", word(&cb.trigger)),
            ("readiness_rule", word(&cb.readiness_rule)),
            ("stage", cb.stage.to_string()),
            ("request_kind", word(&cb.request_kind)),
            ("target_selector", word(&cb.target_selector)),
            ("rubric_policy", word(&cb.rubric_policy)),
            ("blocked_work_policy", word(&cb.blocked_work_policy)),
            (
                "skip_if_already_closed",
                cb.skip_if_already_closed.to_string(),
            ),
            (
                "on_pass_terminal_result",
                cb.on_pass_terminal_result.to_string(),
            ),
            (
                "on_gap_terminal_result",
                cb.on_gap_terminal_result.to_string(),
            ),
            (
                "create_incident_on_gap",
                cb.create_incident_on_gap.to_string(),
            ),
        ];
        for (key, value) in fields {
            lines.push(format!("completion_behavior.{key}: {value}"));
        }
    }
    for (kind, stage) in &plan.routing.entry_stages {
        lines.push(format!("entry_stage.{kind}: {stage}"));
    }
    let order: Vec<String> = plan
        .stage_plans
        .iter()
        .map(|p| p.stage.to_string())
        .collect();
    lines.push(format!("stage_order: {}", order.join(", ")));
    let mut stages: Vec<_> = plan.stage_plans.iter().collect();
    stages.sort_by_key(|p| (p.plane.as_str(), p.stage.as_str()));
    for p in stages {
        lines.push(format!("stage: {}.{}", p.plane, p.stage));
        lines.push(format!("entrypoint_path: {}", p.entrypoint_path));
        lines.push(format!("required_skills: {}", list(&p.required_skills)));
        lines.push(format!(
            "attached_skills: {}",
            list(&p.attached_skill_additions)
        ));
        lines.push(format!("runner: {}", or_none(p.runner_name.as_deref())));
        lines.push(format!("model: {}", or_none(p.model_name.as_deref())));
        lines.push(format!("timeout_seconds: {}", p.timeout_seconds));
    }
    for edge in &plan.routing.edges {
        lines.push(format!(
            "route: {} {} -> {}",
            edge.source_stage,
            edge.on_terminal_result,
            edge.describe()
        ));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn graph(ctx: &Ctx, args: GraphArgs) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let config = Config::load_for(&ws, args.compile.config.as_deref())?;
    let mode = compiler::resolve_mode_id(&config, args.compile.mode.as_deref());
    match compiler::compile_assets(ws.rt(), &config, &mode) {
        Ok(compiled) => {
            let text = match args.format {
                GraphFormat::Mermaid => compiler::mermaid(&compiled.plan),
                GraphFormat::Dot => compiler::dot(&compiled.plan),
            };
            #[derive(Serialize)]
            struct Graph<'a> {
                mode_id: &'a str,
                compiled_plan_id: &'a str,
                format: &'a str,
                text: &'a str,
            }
            let format = match args.format {
                GraphFormat::Mermaid => "mermaid",
                GraphFormat::Dot => "dot",
            };
            let value = Graph {
                mode_id: &mode,
                compiled_plan_id: &compiled.plan.compiled_plan_id,
                format,
                text: &text,
            };
            ctx.emit(&value, || text.clone());
            Ok(ExitCode::Ok)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            Ok(ExitCode::Failed)
        }
    }
}
