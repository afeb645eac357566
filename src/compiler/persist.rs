//! One compile attempt against a workspace, with last-known-good handling (spec 05 §7.8).

use super::diag::CompileDiagnostics;
use super::plan::{compile_assets, resolve_mode_id, FrozenRunPlan};
use crate::config::Config;
use crate::workspace::atomic::{self, IoError};
use crate::workspace::Workspace;

/// What a compile attempt produced and which plan is now in force.
#[derive(Debug, Clone)]
pub struct CompileOutcome {
    /// The resolved mode id (spec 05 §7.2), whether or not the compile succeeded.
    pub mode_id: String,
    pub diagnostics: CompileDiagnostics,
    /// The fresh plan, else the last-known-good plan from disk, else none.
    pub plan: Option<FrozenRunPlan>,
    /// True when the compile failed and `plan` is the previous plan.
    pub used_last_known_good: bool,
    /// True when the plan and diagnostics files were brought up to date on disk.
    pub persisted: bool,
}

impl CompileOutcome {
    /// True when this compile produced a fresh plan.
    pub fn ok(&self) -> bool {
        self.diagnostics.ok
    }
}

/// The previous plan, if its file exists, parses and passes the structural checks.
pub fn load_last_known_good(ws: &Workspace) -> Option<FrozenRunPlan> {
    let text = atomic::read_regular_string(ws.compiled_plan_path()).ok()?;
    let plan: FrozenRunPlan = crate::yaml::from_str(&ws.compiled_plan_path(), &text).ok()?;
    plan.check().ok()?;
    Some(plan)
}

fn attempt(
    ws: &Workspace,
    config: &Config,
    requested_mode: Option<&str>,
) -> (CompileOutcome, Option<FrozenRunPlan>) {
    let mode_id = resolve_mode_id(config, requested_mode);
    let last_known_good = load_last_known_good(ws);
    match compile_assets(ws.rt(), config, &mode_id) {
        Ok(compiled) => {
            let diagnostics = CompileDiagnostics::new(&mode_id, &[], &compiled.warnings);
            let outcome = CompileOutcome {
                mode_id,
                diagnostics,
                plan: Some(compiled.plan),
                used_last_known_good: false,
                persisted: false,
            };
            (outcome, last_known_good)
        }
        Err(errors) => {
            let diagnostics = CompileDiagnostics::new(&mode_id, &errors, &[]);
            let outcome = CompileOutcome {
                mode_id,
                diagnostics,
                used_last_known_good: last_known_good.is_some(),
                plan: last_known_good,
                persisted: false,
            };
            (outcome, None)
        }
    }
}

/// Compile the workspace's deployed assets without writing anything.
pub fn compile_in_memory(
    ws: &Workspace,
    config: &Config,
    requested_mode: Option<&str>,
) -> CompileOutcome {
    attempt(ws, config, requested_mode).0
}

/// Compile and persist: a success writes the plan then the diagnostics; a failure writes only
/// the diagnostics and keeps the last-known-good plan. A file whose content would not change
/// apart from its timestamp is left alone, so recompiling an unchanged workspace writes nothing.
///
/// Callers other than the daemon that owns the workspace must first make sure no daemon holds
/// the lock ([`crate::control::lock::daemon_running`]).
pub fn compile_and_persist(
    ws: &Workspace,
    config: &Config,
    requested_mode: Option<&str>,
) -> Result<CompileOutcome, IoError> {
    let (mut outcome, previous) = attempt(ws, config, requested_mode);
    if outcome.ok() {
        if let Some(plan) = outcome.plan.as_mut() {
            match previous {
                Some(old) if same_but_time(&old, plan) => *plan = old,
                _ => atomic::write_atomic(
                    &ws.compiled_plan_path(),
                    crate::yaml::to_string(plan).as_bytes(),
                )?,
            }
        }
    }
    let path = ws.compile_diagnostics_path();
    let existing: Option<CompileDiagnostics> = atomic::read_regular_string(&path)
        .ok()
        .and_then(|text| crate::yaml::from_str(&path, &text).ok());
    match existing {
        Some(old)
            if CompileDiagnostics {
                emitted_at: old.emitted_at.clone(),
                ..outcome.diagnostics.clone()
            } == old =>
        {
            outcome.diagnostics = old;
        }
        _ => atomic::write_atomic(
            &path,
            crate::yaml::to_string(&outcome.diagnostics).as_bytes(),
        )?,
    }
    outcome.persisted = true;
    Ok(outcome)
}

fn same_but_time(old: &FrozenRunPlan, new: &FrozenRunPlan) -> bool {
    FrozenRunPlan {
        compiled_at: old.compiled_at.clone(),
        ..new.clone()
    } == *old
}
