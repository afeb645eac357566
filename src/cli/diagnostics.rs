//! The compile diagnostics block: shared by `compile validate|show` and `config validate`.

use serde::Serialize;

use super::output::or_none;
use super::Ctx;
use crate::compiler::{self, CompileOutcome, FrozenRunPlan};
use crate::config::Config;
use crate::error::{ExitCode, Result};
use crate::workspace::Workspace;

/// The diagnostics block shared by `compile validate|show` and `config validate`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    ok: bool,
    mode_id: &'a str,
    used_last_known_good: bool,
    compiled_plan_id: Option<&'a str>,
    errors: &'a [String],
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a FrozenRunPlan>,
}

impl<'a> Report<'a> {
    pub fn new(outcome: &'a CompileOutcome, with_plan: bool) -> Report<'a> {
        Report {
            ok: outcome.ok(),
            mode_id: &outcome.mode_id,
            used_last_known_good: outcome.used_last_known_good,
            compiled_plan_id: outcome.plan.as_ref().map(|p| p.compiled_plan_id.as_str()),
            errors: &outcome.diagnostics.errors,
            warnings: &outcome.diagnostics.warnings,
            plan: outcome.plan.as_ref().filter(|_| with_plan),
        }
    }

    pub fn human(&self) -> String {
        format!(
            "ok: {}\nmode_id: {}\nused_last_known_good: {}\ncompiled_plan_id: {}\n",
            self.ok,
            self.mode_id,
            self.used_last_known_good,
            or_none(self.compiled_plan_id),
        )
    }

    /// Warnings and errors go to stderr, one per line, in both output modes.
    pub fn print_diagnostics(&self) {
        for warning in self.warnings {
            eprintln!("warning: {warning}");
        }
        for error in self.errors {
            eprintln!("error: {error}");
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        if self.ok {
            ExitCode::Ok
        } else {
            ExitCode::Failed
        }
    }
}

/// `compile validate` and `config validate`.
pub fn validate(
    ctx: &Ctx,
    ws: &Workspace,
    config: &Config,
    mode: Option<&str>,
) -> Result<ExitCode> {
    // More than one lane needs a git repository: say so before the daemon would.
    crate::engine::lanes::Lanes::check(ws, &config.execution)?;
    if let Some(problem) = crate::runners::scripted::script_problem(ws, config) {
        return Err(crate::error::Error::refused(
            problem,
            Some(
                "fix the script (runners.scripted.script), then run `millrace config validate`"
                    .into(),
            ),
        ));
    }
    let outcome = compiler::compile_in_memory(ws, config, mode);
    let report = Report::new(&outcome, false);
    ctx.emit(&report, || report.human());
    report.print_diagnostics();
    Ok(report.exit_code())
}
