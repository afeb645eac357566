//! Terminal-marker extraction (spec 08 §7) and normalization into a [`StageResult`] (§8).
//!
//! Extraction follows decision 10: only the running stage's legal results count as markers,
//! so an agent's other capitalised `### HEADINGS` are not mistaken for a second answer. Markers
//! inside fenced code blocks are used only when there is none outside, because agents quote
//! the marker list in examples but occasionally fence their real answer.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use crate::model::{ResultClass, Stage, TerminalResult, WorkItemKind};
use crate::runners::request::{RequestKind, StageRequest};
use crate::runners::result::{
    ExitKind, FailureClass, NormalizationSource, RawResult, ResultError, StageResult,
    StageResultMetadata, SCHEMA_VERSION,
};

/// What extraction found.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// The stage's answer, or why there is none.
    pub outcome: Result<TerminalResult, FailureClass>,
    pub detected_marker: Option<String>,
    pub notes: Vec<String>,
    /// Summary artifacts a structured result named (absolute).
    pub artifact_paths: Vec<PathBuf>,
}

impl Extraction {
    fn failure(class: FailureClass, note: String, marker: Option<String>) -> Extraction {
        Extraction {
            outcome: Err(class),
            detected_marker: marker,
            notes: vec![note],
            artifact_paths: Vec::new(),
        }
    }
}

fn marker_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^###\s+([A-Z_]+)\s*$").expect("valid marker regex"))
}

/// Tokens that are known terminal results, split by whether they sat inside a code fence.
#[derive(Default)]
struct Found {
    plain: Vec<TerminalResult>,
    fenced: Vec<TerminalResult>,
}

fn scan(text: &str) -> Found {
    let mut found = Found::default();
    let mut in_fence = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let Some(token) = marker_line().captures(line).and_then(|c| c.get(1)) else {
            continue;
        };
        let Ok(result) = token.as_str().parse::<TerminalResult>() else {
            continue;
        };
        if in_fence {
            found.fenced.push(result);
        } else {
            found.plain.push(result);
        }
    }
    found
}

/// Extract the stage's answer from harness text (the §7.1 table under decision 10).
pub fn extract_from_text(stage: Stage, text: &str) -> Extraction {
    let found = scan(text);
    let legal = |tokens: &[TerminalResult]| -> Vec<TerminalResult> {
        tokens
            .iter()
            .copied()
            .filter(|t| stage.is_legal(*t))
            .collect()
    };
    let plain_legal = legal(&found.plain);
    let legal_tokens = if plain_legal.is_empty() {
        legal(&found.fenced)
    } else {
        plain_legal
    };
    let distinct: BTreeSet<TerminalResult> = legal_tokens.iter().copied().collect();
    match (distinct.len(), legal_tokens.last()) {
        (1, Some(token)) => Extraction {
            outcome: Ok(*token),
            detected_marker: Some(token.marker()),
            notes: vec!["terminal result resolved from stdout token".into()],
            artifact_paths: Vec::new(),
        },
        (n, Some(last)) if n > 1 => Extraction::failure(
            FailureClass::ConflictingTerminalResults,
            "stdout contains conflicting terminal tokens".into(),
            Some(last.marker()),
        ),
        _ => {
            let illegal = found.plain.last().or(found.fenced.last());
            match illegal {
                Some(token) => Extraction::failure(
                    FailureClass::IllegalTerminalResult,
                    format!("terminal token '{token}' is illegal for stage {stage}"),
                    Some(token.marker()),
                ),
                None => Extraction::failure(
                    FailureClass::MissingTerminalResult,
                    "no terminal token found in stdout".into(),
                    None,
                ),
            }
        }
    }
}

/// Extract from the file at `stdout_path` (§7.1).
pub fn extract_from_stdout(stage: Stage, stdout_path: Option<&Path>) -> Extraction {
    let Some(path) = stdout_path else {
        return Extraction::failure(
            FailureClass::MissingTerminalResult,
            "stdout path is missing and no structured terminal result was provided".into(),
            None,
        );
    };
    match fs::read(path) {
        Ok(bytes) => extract_from_text(stage, &String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Extraction::failure(
            FailureClass::MissingTerminalResult,
            format!("stdout file is missing: {}", path.display()),
            None,
        ),
        Err(e) => Extraction::failure(
            FailureClass::RunnerTransportFailure,
            format!("failed reading stdout file: {e}"),
            None,
        ),
    }
}

/// The structured result file a runner may produce instead of stdout markers (§7.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructuredResult {
    #[serde(default)]
    stage: Option<String>,
    terminal_result: String,
    #[serde(default)]
    result_class: Option<String>,
    #[serde(default)]
    summary_artifact_paths: Vec<String>,
}

fn class_named(name: &str) -> Option<ResultClass> {
    [
        ResultClass::Success,
        ResultClass::FollowupNeeded,
        ResultClass::RecoverableFailure,
        ResultClass::EscalatePlanning,
        ResultClass::Blocked,
    ]
    .into_iter()
    .find(|c| c.as_str() == name)
}

/// Extract from a structured result file (§7.2). JSON and YAML are both accepted.
pub fn extract_structured(stage: Stage, path: &Path, run_dir: &Path) -> Extraction {
    let illegal = |note: String| Extraction::failure(FailureClass::IllegalTerminalResult, note, None);
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Extraction::failure(
                FailureClass::MissingTerminalResult,
                format!("structured terminal result file is missing: {}", path.display()),
                None,
            )
        }
        Err(e) => return illegal(format!("failed to parse structured terminal result: {e}")),
    };
    let value: serde_json::Value = match crate::yaml::from_str(path, &text) {
        Ok(value) => value,
        Err(e) => return illegal(format!("failed to parse structured terminal result: {e}")),
    };
    if !value.is_object() {
        return illegal("structured terminal result payload must be an object".into());
    }
    let payload: StructuredResult = match serde_json::from_value(value) {
        Ok(payload) => payload,
        Err(e) => return illegal(format!("structured terminal result payload is invalid: {e}")),
    };
    if payload.stage.as_deref().is_some_and(|s| s != stage.as_str()) {
        return illegal("structured terminal result stage does not match run request stage".into());
    }
    let result = match payload.terminal_result.parse::<TerminalResult>() {
        Ok(result) if stage.is_legal(result) => result,
        _ => {
            return illegal(format!(
                "terminal result '{}' is illegal for stage {stage}",
                payload.terminal_result
            ))
        }
    };
    if let Some(name) = payload.result_class.as_deref() {
        let compatible = match class_named(name) {
            None => false,
            Some(class) if result == TerminalResult::Blocked => {
                matches!(class, ResultClass::Blocked | ResultClass::RecoverableFailure)
            }
            Some(class) => class == result.result_class(),
        };
        if !compatible {
            return illegal(
                "structured terminal result class is incompatible with terminal_result".into(),
            );
        }
    }
    let mut artifacts = Vec::new();
    let mut missing = Vec::new();
    for raw in &payload.summary_artifact_paths {
        match inside(run_dir, &run_dir.join(raw)) {
            Some(resolved) => artifacts.push(resolved),
            None => missing.push(raw.clone()),
        }
    }
    if !missing.is_empty() {
        return Extraction::failure(
            FailureClass::MissingRequiredArtifact,
            format!("missing required summary artifacts: {}", missing.join(", ")),
            None,
        );
    }
    Extraction {
        outcome: Ok(result),
        detected_marker: Some(result.marker()),
        notes: vec!["terminal result resolved from structured result file".into()],
        artifact_paths: artifacts,
    }
}

/// `path` resolved (symlinks followed), if it exists inside `run_dir`.
fn inside(run_dir: &Path, path: &Path) -> Option<PathBuf> {
    let root = fs::canonicalize(run_dir).ok()?;
    let resolved = fs::canonicalize(path).ok()?;
    resolved.starts_with(&root).then_some(resolved)
}

/// Normalization could not even name the work item the result belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("stage request {0} has no active work item kind and id to attach the result to")]
    NoIdentity(String),
    #[error("closure_target stage request {0} has no closure_target_root_spec_id")]
    NoClosureRoot(String),
    #[error("normalized stage result is invalid: {0}")]
    Invalid(#[from] ResultError),
}

/// Report attached to the result (§8 under decision 11): the request's own
/// `preferred_report_path`, else the troubleshoot report — but that one only for the
/// troubleshooter itself or when it was written during this run.
fn report_artifact(req: &StageRequest, raw: &RawResult) -> Option<PathBuf> {
    if let Some(path) = req
        .preferred_report_path
        .as_deref()
        .and_then(|p| inside(&req.run_dir, p))
    {
        return Some(path);
    }
    let path = req.preferred_troubleshoot_report_path.as_deref()?;
    let resolved = inside(&req.run_dir, path)?;
    if req.stage == Stage::Troubleshooter {
        return Some(resolved);
    }
    let modified = fs::metadata(&resolved).and_then(|m| m.modified()).ok()?;
    let started = std::time::SystemTime::try_from(raw.started_at).ok()?;
    (modified >= started).then_some(resolved)
}

/// Turn a runner's raw result into the envelope the router consumes (§8).
///
/// Failures of the harness become `BLOCKED` / `recoverable_failure` envelopes carrying the
/// failure class in `metadata.failure_class`; only a request without an identity is an error.
pub fn normalize(req: &StageRequest, raw: &RawResult) -> Result<StageResult, NormalizeError> {
    let (work_item_kind, work_item_id) = match req.request_kind {
        RequestKind::ClosureTarget => (
            WorkItemKind::Spec,
            req.closure_target_root_spec_id
                .clone()
                .ok_or_else(|| NormalizeError::NoClosureRoot(req.request_id.clone()))?,
        ),
        RequestKind::ActiveWorkItem => match (req.active_work_item_kind, &req.active_work_item_id) {
            (Some(kind), Some(id)) => (kind, id.clone()),
            _ => return Err(NormalizeError::NoIdentity(req.request_id.clone())),
        },
    };

    let mut mismatches = Vec::new();
    for (field, ok) in [
        ("request_id", raw.request_id == req.request_id),
        ("run_id", raw.run_id == req.run_id),
        ("stage", raw.stage == req.stage),
    ] {
        if !ok {
            mismatches.push(format!(
                "raw result {field} does not match stage run request"
            ));
        }
    }
    let extraction = if !mismatches.is_empty() {
        Extraction {
            outcome: Err(FailureClass::RunnerTransportFailure),
            detected_marker: None,
            notes: mismatches,
            artifact_paths: Vec::new(),
        }
    } else if raw.exit_kind != ExitKind::Completed {
        let class = match raw.exit_kind {
            ExitKind::Timeout => FailureClass::RunnerTimeout,
            ExitKind::ProviderError => FailureClass::ProviderFailure,
            _ => FailureClass::RunnerTransportFailure,
        };
        Extraction::failure(class, format!("runner exited with {}", raw.exit_kind), None)
    } else if raw.exit_code.is_some_and(|c| c != 0) {
        Extraction::failure(
            FailureClass::RunnerTransportFailure,
            "runner completed with non-zero exit code".into(),
            None,
        )
    } else if let Some(path) = &raw.terminal_result_path {
        extract_structured(req.stage, path, &req.run_dir)
    } else {
        extract_from_stdout(req.stage, raw.stdout_path.as_deref())
    };

    let report = report_artifact(req, raw);
    let mut artifact_paths: Vec<PathBuf> = Vec::new();
    let candidates = extraction
        .artifact_paths
        .iter()
        .chain(report.iter())
        .chain(raw.event_log_path.iter());
    for path in candidates {
        if !path.as_os_str().is_empty() && !artifact_paths.contains(path) {
            artifact_paths.push(path.clone());
        }
    }
    let prompt = crate::runners::RunFiles::for_request(req).prompt;

    let (terminal_result, result_class, failure_class, source) = match extraction.outcome {
        Ok(result) => (
            result,
            result.result_class(),
            None,
            if raw.terminal_result_path.is_some() {
                NormalizationSource::StructuredResultFile
            } else {
                NormalizationSource::StdoutTerminalToken
            },
        ),
        Err(class) => (
            TerminalResult::Blocked,
            ResultClass::RecoverableFailure,
            Some(class),
            NormalizationSource::Failure,
        ),
    };
    let failed = failure_class.is_some();
    let exit_code = match raw.exit_code {
        None | Some(0) if failed => 1,
        code => code.unwrap_or(0),
    };
    let completed_at = raw.ended_at.max(raw.started_at);
    let duration = completed_at.duration_since(raw.started_at).as_secs_f64();
    let result = StageResult {
        schema_version: SCHEMA_VERSION.into(),
        kind: "stage_result".into(),
        run_id: req.run_id.clone(),
        plane: req.plane,
        stage: req.stage,
        work_item_kind,
        work_item_id,
        terminal_result,
        result_class,
        summary_status_marker: terminal_result.marker(),
        success: result_class == ResultClass::Success,
        retryable: failed,
        exit_code,
        duration_seconds: duration,
        prompt_artifact: prompt.is_file().then_some(prompt),
        report_artifact: report,
        artifact_paths,
        detected_marker: extraction.detected_marker,
        stdout_path: raw.stdout_path.clone(),
        stderr_path: raw.stderr_path.clone(),
        runner_name: raw.runner_name.clone(),
        model_name: raw.model_name.clone(),
        token_usage: raw.token_usage,
        notes: extraction.notes,
        metadata: StageResultMetadata {
            request_id: req.request_id.clone(),
            request_kind: req.request_kind,
            closure_target_root_spec_id: req.closure_target_root_spec_id.clone(),
            closure_target_root_idea_id: req.closure_target_root_idea_id.clone(),
            preferred_rubric_path: req.preferred_rubric_path.clone(),
            preferred_verdict_path: req.preferred_verdict_path.clone(),
            preferred_report_path: req.preferred_report_path.clone(),
            normalization_source: source,
            failure_class,
            valid_terminal_result: !failed,
            raw_exit_kind: raw.exit_kind,
        },
        started_at: raw.started_at,
        completed_at,
    };
    result.validate()?;
    Ok(result)
}
