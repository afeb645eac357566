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

/// One compile; on failure the last-known-good plan stands in (read only then).
fn attempt(ws: &Workspace, config: &Config, requested_mode: Option<&str>) -> CompileOutcome {
    let mode_id = resolve_mode_id(config, requested_mode);
    match compile_assets(ws.rt(), config, &mode_id) {
        Ok(compiled) => CompileOutcome {
            diagnostics: CompileDiagnostics::new(&mode_id, &[], &compiled.warnings),
            mode_id,
            plan: Some(compiled.plan),
            used_last_known_good: false,
            persisted: false,
        },
        Err(errors) => {
            let last_known_good = load_last_known_good(ws);
            CompileOutcome {
                diagnostics: CompileDiagnostics::new(&mode_id, &errors, &[]),
                mode_id,
                used_last_known_good: last_known_good.is_some(),
                plan: last_known_good,
                persisted: false,
            }
        }
    }
}

/// Whether the plan file holds `plan` but for its compile time, which `plan` then takes
/// (a recompile of an unchanged workspace writes nothing). Compared as text: parsing the
/// written plan back cost more than the whole compile, at every start.
fn written_already(ws: &Workspace, plan: &mut FrozenRunPlan) -> bool {
    #[derive(serde::Deserialize)]
    struct CompiledAt {
        compiled_at: String,
    }
    let path = ws.compiled_plan_path();
    let Ok(text) = atomic::read_regular_string(&path) else {
        return false;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("compiled_at:")) else {
        return false;
    };
    let Ok(at) = crate::yaml::from_str::<CompiledAt>(&path, line) else {
        return false;
    };
    let fresh = std::mem::replace(&mut plan.compiled_at, at.compiled_at);
    if crate::yaml::to_string(plan) == text {
        return true;
    }
    plan.compiled_at = fresh;
    false
}

/// Compile the workspace's deployed assets without writing anything.
pub fn compile_in_memory(
    ws: &Workspace,
    config: &Config,
    requested_mode: Option<&str>,
) -> CompileOutcome {
    attempt(ws, config, requested_mode)
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
    let mut outcome = attempt(ws, config, requested_mode);
    if outcome.ok() {
        if let Some(plan) = outcome.plan.as_mut() {
            if !written_already(ws, plan) {
                atomic::write_atomic(
                    &ws.compiled_plan_path(),
                    crate::yaml::to_string(plan).as_bytes(),
                )?;
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
