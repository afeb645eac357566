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
use crate::runners::harness::{Diagnosis, FailureKind};
use crate::runners::request::{RequestKind, StageRequest};
use crate::runners::result::{
    stamp, ExitKind, FailureClass, NormalizationSource, RawResult, ResultError, StageResult,
    StageResultMetadata, TokenUsage, SCHEMA_VERSION,
};

/// What extraction found.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// The stage's answer, or why there is none.
    pub outcome: Result<TerminalResult, FailureClass>,
    /// `### <TOKEN>` of the token the outcome rests on, if any.
    pub detected_marker: Option<String>,
    /// Why, in the reference's wording.
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
    match crate::workspace::atomic::read_regular(path) {
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
    let illegal =
        |note: String| Extraction::failure(FailureClass::IllegalTerminalResult, note, None);
    let text = match crate::workspace::atomic::read_regular_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Extraction::failure(
                FailureClass::MissingTerminalResult,
                format!(
                    "structured terminal result file is missing: {}",
                    path.display()
                ),
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
        Err(e) => {
            return illegal(format!(
                "structured terminal result payload is invalid: {e}"
            ))
        }
    };
    if payload
        .stage
        .as_deref()
        .is_some_and(|s| s != stage.as_str())
    {
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
                matches!(
                    class,
                    ResultClass::Blocked | ResultClass::RecoverableFailure
                )
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

/// The failure as a person acts on it: what the harness or supervisor reported, else the
/// normalization failure with the harness's last words (or the note) as the message.
fn diagnose(class: FailureClass, raw: &RawResult, notes: &[String]) -> Diagnosis {
    if let Some(known) = &raw.diagnosis {
        return known.clone();
    }
    let kind = match class {
        FailureClass::MissingTerminalResult => FailureKind::NoMarker,
        FailureClass::IllegalTerminalResult | FailureClass::ConflictingTerminalResults => {
            FailureKind::IllegalMarker
        }
        FailureClass::RunnerTimeout => FailureKind::Timeout,
        FailureClass::RunnerTransportFailure
        | FailureClass::ProviderFailure
        | FailureClass::MissingRequiredArtifact
        | FailureClass::InvalidStageOutput => FailureKind::HarnessError,
    };
    let note = notes.join("; ");
    let message = match (&raw.last_line, raw.exit_code) {
        (Some(line), Some(code)) if code != 0 => format!("exit {code}: {line}"),
        (Some(line), _) if kind == FailureKind::HarnessError => line.clone(),
        (_, Some(code)) if code != 0 => format!("exit {code}: {note}"),
        _ => note,
    };
    Diagnosis::new(kind, message)
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
        RequestKind::ActiveWorkItem => {
            match (req.active_work_item_kind, &req.active_work_item_id) {
                (Some(kind), Some(id)) => (kind, id.clone()),
                _ => return Err(NormalizeError::NoIdentity(req.request_id.clone())),
            }
        }
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
    let diagnosis = failure_class.map(|class| diagnose(class, raw, &extraction.notes));
    let mut notes = extraction.notes;
    notes.extend(
        raw.refused
            .iter()
            .map(|r| format!("warning: the harness refused: {r}")),
    );
    let exit_code = match raw.exit_code {
        None | Some(0) if failed => 1,
        code => code.unwrap_or(0),
    };
    let started_at = stamp::truncate(raw.started_at);
    let completed_at = stamp::truncate(raw.ended_at).max(started_at);
    let duration = completed_at.duration_since(started_at).as_secs_f64();
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
        token_usage: raw.token_usage.map(TokenUsage::plausible),
        notes,
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
        started_at,
        completed_at,
        diagnosis,
        refused: raw.refused.clone(),
        last_line: raw.last_line.clone(),
    };
    result.validate()?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runners::request::tests::sample;
    use jiff::SignedDuration;

    fn outcome(stage: Stage, text: &str) -> (Result<TerminalResult, FailureClass>, Option<String>) {
        let e = extract_from_text(stage, text);
        (e.outcome, e.detected_marker)
    }

    #[test]
    fn marker_extraction_table() {
        use FailureClass::*;
        use TerminalResult::*;
        let m = |t: TerminalResult| Some(t.marker());
        type Row<'a> = (
            Stage,
            &'a str,
            Result<TerminalResult, FailureClass>,
            Option<String>,
        );
        let table: &[Row] = &[
            (
                Stage::Checker,
                "done\n### CHECKER_PASS\n",
                Ok(CheckerPass),
                m(CheckerPass),
            ),
            (
                Stage::Checker,
                "  ###   FIX_NEEDED  \n",
                Ok(FixNeeded),
                m(FixNeeded),
            ),
            (
                Stage::Checker,
                "### CHECKER_PASS\n### CHECKER_PASS\n",
                Ok(CheckerPass),
                m(CheckerPass),
            ),
            (
                Stage::Builder,
                "### SUMMARY\nall good\n### BUILDER_COMPLETE\n",
                Ok(BuilderComplete),
                m(BuilderComplete),
            ),
            (
                Stage::Checker,
                "### BUILDER_COMPLETE\n### CHECKER_PASS\n",
                Ok(CheckerPass),
                m(CheckerPass),
            ),
            (
                Stage::Checker,
                "### CHECKER_PASS\n### FIX_NEEDED\n",
                Err(ConflictingTerminalResults),
                m(FixNeeded),
            ),
            (
                Stage::Builder,
                "### CHECKER_PASS\n",
                Err(IllegalTerminalResult),
                m(CheckerPass),
            ),
            (
                Stage::Builder,
                "### SUMMARY\n### Builder_Complete\n###BUILDER_COMPLETE\n### BUILDER_COMPLETE.\n",
                Err(MissingTerminalResult),
                None,
            ),
            (Stage::Builder, "", Err(MissingTerminalResult), None),
            (
                Stage::Checker,
                "Legal:\n```\n### CHECKER_PASS\n### FIX_NEEDED\n```\n### FIX_NEEDED\n",
                Ok(FixNeeded),
                m(FixNeeded),
            ),
            (
                Stage::Checker,
                "```text\n### CHECKER_PASS\n```\n",
                Ok(CheckerPass),
                m(CheckerPass),
            ),
            (
                Stage::Checker,
                "```\n### CHECKER_PASS\n### FIX_NEEDED\n```\n",
                Err(ConflictingTerminalResults),
                m(FixNeeded),
            ),
        ];
        for (stage, text, want, marker) in table {
            assert_eq!(
                outcome(*stage, text),
                (*want, marker.clone()),
                "{stage}: {text:?}"
            );
        }
        let e = extract_from_text(Stage::Builder, "### CHECKER_PASS\n");
        assert_eq!(
            e.notes,
            ["terminal token 'CHECKER_PASS' is illegal for stage builder"]
        );
    }

    fn fixture(stage: Stage) -> (tempfile::TempDir, StageRequest, RawResult) {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("millrace-agents/runs/run-1");
        fs::create_dir_all(&run_dir).unwrap();
        let req = sample(stage, &run_dir);
        let stdout = run_dir.join("out.txt");
        let start = crate::time::now();
        let raw = RawResult {
            request_id: req.request_id.clone(),
            run_id: req.run_id.clone(),
            stage,
            runner_name: "codex_cli".into(),
            model_name: None,
            exit_kind: ExitKind::Completed,
            exit_code: Some(0),
            stdout_path: Some(stdout),
            stderr_path: None,
            terminal_result_path: None,
            event_log_path: Some(run_dir.join("events.jsonl")),
            token_usage: Some(TokenUsage::default()),
            started_at: start,
            ended_at: start + SignedDuration::from_millis(1500),
            diagnosis: None,
            refused: Vec::new(),
            last_line: None,
        };
        (dir, req, raw)
    }

    fn failure_of(req: &StageRequest, raw: &RawResult) -> (FailureClass, Vec<String>, i32) {
        let r = normalize(req, raw).unwrap();
        assert_eq!(r.terminal_result, TerminalResult::Blocked);
        assert_eq!(r.result_class, ResultClass::RecoverableFailure);
        assert_eq!(r.summary_status_marker, "### BLOCKED");
        assert!(r.retryable && !r.success && !r.metadata.valid_terminal_result);
        assert_eq!(
            r.metadata.normalization_source,
            NormalizationSource::Failure
        );
        (r.metadata.failure_class.unwrap(), r.notes, r.exit_code)
    }

    #[test]
    fn success_envelope_fields() {
        let (_d, req, raw) = fixture(Stage::Checker);
        fs::write(raw.stdout_path.as_ref().unwrap(), "### FIX_NEEDED\n").unwrap();
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(r.result_class, ResultClass::FollowupNeeded);
        assert!(!r.success && !r.retryable);
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.duration_seconds, 1.5);
        assert_eq!(r.work_item_id, "task-1");
        assert_eq!(r.notes, ["terminal result resolved from stdout token"]);
        assert_eq!(
            r.metadata.normalization_source,
            NormalizationSource::StdoutTerminalToken
        );
        assert_eq!(r.metadata.failure_class, None);
        assert_eq!(r.artifact_paths, [raw.event_log_path.clone().unwrap()]);
        let text = crate::yaml::to_string(&r);
        assert!(
            text.starts_with(
                "schema_version: \"1.0\"
kind: stage_result
"
            ),
            "{text}"
        );
        let back: StageResult = crate::yaml::from_str(Path::new("r.yaml"), &text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn each_failure_kind_normalizes_to_blocked() {
        use FailureClass::*;
        let (_d, req, raw) = fixture(Stage::Builder);
        let stdout = raw.stdout_path.clone().unwrap();

        let mut bad = raw.clone();
        bad.run_id = "other".into();
        bad.stage = Stage::Checker;
        let (class, notes, code) = failure_of(&req, &bad);
        assert_eq!(class, RunnerTransportFailure);
        assert_eq!(
            notes,
            [
                "raw result run_id does not match stage run request",
                "raw result stage does not match stage run request",
            ]
        );
        assert_eq!(code, 1);

        for (kind, want) in [
            (ExitKind::Timeout, RunnerTimeout),
            (ExitKind::ProviderError, ProviderFailure),
            (ExitKind::RunnerError, RunnerTransportFailure),
            (ExitKind::Interrupted, RunnerTransportFailure),
        ] {
            let mut r = raw.clone();
            r.exit_kind = kind;
            r.exit_code = Some(124);
            let (class, notes, code) = failure_of(&req, &r);
            assert_eq!(class, want);
            assert_eq!(notes, [format!("runner exited with {kind}")]);
            assert_eq!(code, 124);
        }

        let mut r = raw.clone();
        r.exit_code = Some(2);
        assert_eq!(failure_of(&req, &r).0, RunnerTransportFailure);

        assert_eq!(
            failure_of(&req, &raw).1,
            [format!("stdout file is missing: {}", stdout.display())]
        );
        let mut r = raw.clone();
        r.stdout_path = None;
        assert_eq!(failure_of(&req, &r).0, MissingTerminalResult);

        fs::write(&stdout, "nothing\n").unwrap();
        assert_eq!(failure_of(&req, &raw).0, MissingTerminalResult);
        fs::write(&stdout, "### PLANNER_COMPLETE\n").unwrap();
        assert_eq!(failure_of(&req, &raw).0, IllegalTerminalResult);
        fs::write(&stdout, "### BUILDER_COMPLETE\n### BLOCKED\n").unwrap();
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(r.metadata.failure_class, Some(ConflictingTerminalResults));
        assert_eq!(r.detected_marker.as_deref(), Some("### BLOCKED"));
    }

    #[test]
    fn agent_blocked_is_not_a_failure() {
        let (_d, req, raw) = fixture(Stage::Builder);
        fs::write(raw.stdout_path.as_ref().unwrap(), "### BLOCKED\n").unwrap();
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(r.result_class, ResultClass::Blocked);
        assert_eq!(r.metadata.failure_class, None);
        assert!(!r.retryable);
    }

    #[test]
    fn structured_result_file_rules() {
        use FailureClass::*;
        let (_d, req, mut raw) = fixture(Stage::Checker);
        let file = req.run_dir.join("result.json");
        raw.terminal_result_path = Some(file.clone());
        assert_eq!(failure_of(&req, &raw).0, MissingTerminalResult);
        let cases: &[(&str, FailureClass)] = &[
            ("{not json", IllegalTerminalResult),
            ("[1]", IllegalTerminalResult),
            (
                r#"{"terminal_result":"CHECKER_PASS","extra":1}"#,
                IllegalTerminalResult,
            ),
            (
                r#"{"stage":"builder","terminal_result":"CHECKER_PASS"}"#,
                IllegalTerminalResult,
            ),
            (
                r#"{"terminal_result":"BUILDER_COMPLETE"}"#,
                IllegalTerminalResult,
            ),
            (
                r#"{"terminal_result":"CHECKER_PASS","result_class":"blocked"}"#,
                IllegalTerminalResult,
            ),
            (
                r#"{"terminal_result":"CHECKER_PASS","summary_artifact_paths":["gone.md"]}"#,
                MissingRequiredArtifact,
            ),
            (
                r#"{"terminal_result":"CHECKER_PASS","summary_artifact_paths":["../../../../etc/hostname"]}"#,
                MissingRequiredArtifact,
            ),
        ];
        for (text, want) in cases {
            fs::write(&file, text).unwrap();
            assert_eq!(failure_of(&req, &raw).0, *want, "{text}");
        }
        fs::write(req.run_dir.join("summary.md"), "s").unwrap();
        fs::write(
            &file,
            r#"{"stage":"checker","terminal_result":"BLOCKED","result_class":"recoverable_failure","summary_artifact_paths":["summary.md"]}"#,
        )
        .unwrap();
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(r.terminal_result, TerminalResult::Blocked);
        assert_eq!(
            r.metadata.normalization_source,
            NormalizationSource::StructuredResultFile
        );
        let summary = fs::canonicalize(req.run_dir.join("summary.md")).unwrap();
        assert_eq!(r.artifact_paths[0], summary);
    }

    #[test]
    fn troubleshoot_report_is_attached_only_to_its_own_run() {
        let (_d, mut req, mut raw) = fixture(Stage::Builder);
        fs::write(raw.stdout_path.as_ref().unwrap(), "### BUILDER_COMPLETE\n").unwrap();
        let report = req.preferred_troubleshoot_report_path.clone().unwrap();
        fs::write(&report, "earlier report").unwrap();
        let canonical = fs::canonicalize(&report).unwrap();
        // Written before this stage started: not this stage's report.
        raw.started_at = crate::time::now() + SignedDuration::from_secs(5);
        raw.ended_at = raw.started_at;
        assert_eq!(normalize(&req, &raw).unwrap().report_artifact, None);
        // The troubleshooter's own report is always attached.
        req.stage = Stage::Troubleshooter;
        raw.stage = Stage::Troubleshooter;
        fs::write(
            raw.stdout_path.as_ref().unwrap(),
            "### TROUBLESHOOT_COMPLETE\n",
        )
        .unwrap();
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(r.report_artifact.as_ref(), Some(&canonical));
        assert_eq!(
            r.artifact_paths,
            [canonical.clone(), raw.event_log_path.clone().unwrap()]
        );
        // A report written during a later stage's run belongs to it.
        req.stage = Stage::Builder;
        raw.stage = Stage::Builder;
        fs::write(raw.stdout_path.as_ref().unwrap(), "### BUILDER_COMPLETE\n").unwrap();
        raw.started_at = crate::time::now() - SignedDuration::from_secs(5);
        fs::write(&report, "fresh report").unwrap();
        assert_eq!(
            normalize(&req, &raw).unwrap().report_artifact,
            Some(canonical)
        );
    }

    #[test]
    fn closure_requests_normalize_onto_the_root_spec() {
        let (_d, mut req, mut raw) = fixture(Stage::Arbiter);
        req.request_kind = RequestKind::ClosureTarget;
        req.active_work_item_kind = None;
        req.active_work_item_id = None;
        assert!(matches!(
            normalize(&req, &raw),
            Err(NormalizeError::NoClosureRoot(_))
        ));
        req.closure_target_root_spec_id = Some("spec-root".into());
        fs::write(
            raw.stdout_path.as_ref().unwrap(),
            "### REMEDIATION_NEEDED\n",
        )
        .unwrap();
        raw.exit_code = None;
        let r = normalize(&req, &raw).unwrap();
        assert_eq!(
            (r.work_item_kind, r.work_item_id.as_str()),
            (WorkItemKind::Spec, "spec-root")
        );
        assert_eq!(
            r.metadata.closure_target_root_spec_id.as_deref(),
            Some("spec-root")
        );
        assert_eq!(r.exit_code, 0);
    }

    #[test]
    fn envelope_validation_messages() {
        let (_d, req, raw) = fixture(Stage::Checker);
        fs::write(raw.stdout_path.as_ref().unwrap(), "### CHECKER_PASS\n").unwrap();
        let good = normalize(&req, &raw).unwrap();
        let check = |f: &dyn Fn(&mut StageResult)| {
            let mut r = good.clone();
            f(&mut r);
            r.validate().unwrap_err().to_string()
        };
        assert_eq!(
            check(&|r| r.plane = crate::model::Plane::Planning),
            "stage must belong to plane"
        );
        assert_eq!(
            check(&|r| r.terminal_result = TerminalResult::PlannerComplete),
            "terminal_result is not legal for stage"
        );
        assert_eq!(
            check(&|r| r.summary_status_marker = "### X".into()),
            "summary_status_marker must match terminal_result"
        );
        assert_eq!(
            check(&|r| r.completed_at = r.started_at - SignedDuration::from_secs(1)),
            "completed_at cannot precede started_at"
        );
        assert_eq!(
            check(&|r| r.duration_seconds = -1.0),
            "duration_seconds must be >= 0"
        );
        assert_eq!(
            check(&|r| r.result_class = ResultClass::Blocked),
            "result_class does not match terminal_result semantics"
        );
        assert_eq!(
            check(&|r| r.success = false),
            "success result_class requires success=true"
        );
        let blocked = |r: &mut StageResult| {
            r.terminal_result = TerminalResult::Blocked;
            r.summary_status_marker = "### BLOCKED".into();
        };
        assert_eq!(
            check(&|r| {
                blocked(r);
                r.result_class = ResultClass::Success;
            }),
            "BLOCKED requires blocked or recoverable_failure result_class"
        );
        assert_eq!(
            check(&|r| {
                blocked(r);
                r.result_class = ResultClass::Blocked;
            }),
            "BLOCKED terminal_result cannot be success=true"
        );
        assert_eq!(
            check(&|r| {
                blocked(r);
                r.result_class = ResultClass::Blocked;
                r.success = false;
                r.result_class = ResultClass::FollowupNeeded;
            }),
            "BLOCKED requires blocked or recoverable_failure result_class"
        );
        assert_eq!(
            check(&|r| {
                r.terminal_result = TerminalResult::FixNeeded;
                r.summary_status_marker = "### FIX_NEEDED".into();
                r.result_class = ResultClass::FollowupNeeded;
            }),
            "non-success result_class requires success=false"
        );
    }
}
