//! What a runner returns (`RawResult`, spec 08 §3) and what the router reads
//! (`StageResult`, spec 08 §8), plus token usage (§9).
//!
//! Timestamps are `jiff::Timestamp` in memory and RFC 3339 UTC with microseconds on disk, so
//! durations and ordering checks need no string parsing.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Plane, ResultClass, Stage, TerminalResult, WorkItemKind};
use crate::runners::harness::{Diagnosis, FailureKind};
use crate::runners::request::RequestKind;

/// Timestamps at on-disk precision, and serde for them in the crate's one format.
pub mod stamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `t` cut to whole microseconds: the precision written to disk, so values round-trip.
    pub fn truncate(t: Timestamp) -> Timestamp {
        Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
    }

    /// The current time at on-disk precision.
    pub fn now() -> Timestamp {
        truncate(crate::time::now())
    }

    /// Write a timestamp as RFC 3339 UTC.
    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format(*ts))
    }

    /// Read an RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// RFC 3339; a value without an offset is read as UTC.
    pub fn parse(text: &str) -> Result<Timestamp, jiff::Error> {
        text.parse::<Timestamp>().or_else(|err| {
            text.parse::<jiff::civil::DateTime>()
                .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
                .map_err(|_| err)
        })
    }
}

/// Optional timestamps in the same format as [`stamp`].
pub mod opt_stamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write an optional timestamp as RFC 3339 UTC (or null).
    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => super::stamp::serialize(ts, s),
            None => s.serialize_none(),
        }
    }

    /// Read an optional RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::stamp::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// How the harness ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    Completed,
    Timeout,
    RunnerError,
    ProviderError,
    /// Killed because the engine asked (`stop --interrupt`, a signal); the item is requeued.
    Interrupted,
}

impl ExitKind {
    /// The spelling in run artifacts.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::Completed => "completed",
            ExitKind::Timeout => "timeout",
            ExitKind::RunnerError => "runner_error",
            ExitKind::ProviderError => "provider_error",
            ExitKind::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tokens a stage spent, as far as the harness reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub thinking_tokens: u64,
    pub total_tokens: u64,
    /// Cost in US dollars, when the harness reports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Above this a reported stage cost is taken for a harness's garbage, not a price.
const MAX_STAGE_COST_USD: f64 = 1_000_000.0;

impl TokenUsage {
    /// The report with a cost no stage can have dropped (negative, not finite, or beyond
    /// [`MAX_STAGE_COST_USD`]): counted, it would push every cost budget back or fill the
    /// ledger with infinity for good. The token counts are unsigned already.
    pub fn plausible(self) -> TokenUsage {
        let cost_usd = self
            .cost_usd
            .filter(|c| c.is_finite() && (0.0..=MAX_STAGE_COST_USD).contains(c));
        TokenUsage { cost_usd, ..self }
    }
}

/// The sum of two reports; a cost is kept when either side has one.
impl std::ops::Add for TokenUsage {
    type Output = TokenUsage;

    fn add(self, other: TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_add(other.cached_input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            thinking_tokens: self.thinking_tokens.saturating_add(other.thinking_tokens),
            total_tokens: self.total_tokens.saturating_add(other.total_tokens),
            cost_usd: match (self.cost_usd, other.cost_usd) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            },
        }
    }
}

/// A runner's account of one stage run, before normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResult {
    pub request_id: String,
    pub run_id: String,
    pub stage: Stage,
    pub runner_name: String,
    pub model_name: Option<String>,
    pub exit_kind: ExitKind,
    pub exit_code: Option<i32>,
    /// The file normalization scans for a terminal marker.
    pub stdout_path: Option<PathBuf>,
    pub stderr_path: Option<PathBuf>,
    /// A structured result file (§7.2); when set, stdout is not scanned.
    pub terminal_result_path: Option<PathBuf>,
    pub event_log_path: Option<PathBuf>,
    pub token_usage: Option<TokenUsage>,
    #[serde(with = "stamp")]
    pub started_at: Timestamp,
    #[serde(with = "stamp")]
    pub ended_at: Timestamp,
    /// A failure the harness reported (or the supervisor saw), classified.
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
    /// Edits or commands the harness refused to carry out.
    #[serde(default)]
    pub refused: Vec<String>,
    /// The harness's own last human-readable line.
    #[serde(default)]
    pub last_line: Option<String>,
}

/// A raw or normalized result whose fields contradict each other; messages are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("ended_at cannot precede started_at")]
    EndBeforeStart,
    #[error("stage must belong to plane")]
    StagePlaneMismatch,
    #[error("terminal_result is not legal for stage")]
    IllegalTerminalResult,
    #[error("summary_status_marker must match terminal_result")]
    MarkerMismatch,
    #[error("completed_at cannot precede started_at")]
    CompletedBeforeStart,
    #[error("duration_seconds must be >= 0")]
    NegativeDuration,
    #[error("BLOCKED requires blocked or recoverable_failure result_class")]
    BlockedClass,
    #[error("BLOCKED terminal_result cannot be success=true")]
    BlockedSuccess,
    #[error("result_class does not match terminal_result semantics")]
    ClassMismatch,
    #[error("success result_class requires success=true")]
    SuccessFlagFalse,
    #[error("non-success result_class requires success=false")]
    SuccessFlagTrue,
}

impl RawResult {
    /// A result for a stage that never got a process (unknown runner, adapter crash).
    pub fn synthetic_error(
        req: &crate::runners::StageRequest,
        runner_name: &str,
        stderr_path: Option<PathBuf>,
    ) -> RawResult {
        let now = stamp::now();
        RawResult {
            request_id: req.request_id.clone(),
            run_id: req.run_id.clone(),
            stage: req.stage,
            runner_name: runner_name.to_string(),
            model_name: req.model_name.clone(),
            exit_kind: ExitKind::RunnerError,
            exit_code: Some(1),
            stdout_path: None,
            stderr_path,
            terminal_result_path: None,
            event_log_path: None,
            token_usage: None,
            started_at: now,
            ended_at: now,
            diagnosis: None,
            refused: Vec::new(),
            last_line: None,
        }
    }

    /// Check the fields that must agree (end not before start).
    pub fn validate(&self) -> Result<(), ResultError> {
        if self.ended_at < self.started_at {
            return Err(ResultError::EndBeforeStart);
        }
        Ok(())
    }
}

/// Why a stage run failed, as routing sees it (spec 06 §8.5, normalization origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    RunnerTransportFailure,
    RunnerTimeout,
    ProviderFailure,
    MissingTerminalResult,
    IllegalTerminalResult,
    ConflictingTerminalResults,
    MissingRequiredArtifact,
    /// The stage claimed success but what it wrote is unusable (e.g. a malformed task).
    InvalidStageOutput,
}

impl FailureClass {
    /// The spelling in stage results and events.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::RunnerTransportFailure => "runner_transport_failure",
            FailureClass::RunnerTimeout => "runner_timeout",
            FailureClass::ProviderFailure => "provider_failure",
            FailureClass::MissingTerminalResult => "missing_terminal_result",
            FailureClass::IllegalTerminalResult => "illegal_terminal_result",
            FailureClass::ConflictingTerminalResults => "conflicting_terminal_results",
            FailureClass::MissingRequiredArtifact => "missing_required_artifact",
            FailureClass::InvalidStageOutput => "invalid_stage_output",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a result's terminal value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormalizationSource {
    StructuredResultFile,
    StdoutTerminalToken,
    Failure,
}

/// The `metadata` block of a stage result; every key is always present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageResultMetadata {
    pub request_id: String,
    pub request_kind: RequestKind,
    pub closure_target_root_spec_id: Option<String>,
    pub closure_target_root_idea_id: Option<String>,
    pub preferred_rubric_path: Option<PathBuf>,
    pub preferred_verdict_path: Option<PathBuf>,
    pub preferred_report_path: Option<PathBuf>,
    pub normalization_source: NormalizationSource,
    pub failure_class: Option<FailureClass>,
    pub valid_terminal_result: bool,
    pub raw_exit_kind: ExitKind,
}

/// Schema version written into stage results and runner artifacts.
pub const SCHEMA_VERSION: &str = "1.0";

/// The normalized outcome of one stage run: what the router consumes and
/// `runs/<run_id>/stage_results/<request_id>.yaml` stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageResult {
    pub schema_version: String,
    pub kind: String,
    pub run_id: String,
    pub plane: Plane,
    pub stage: Stage,
    pub work_item_kind: WorkItemKind,
    pub work_item_id: String,
    pub terminal_result: TerminalResult,
    pub result_class: ResultClass,
    pub summary_status_marker: String,
    pub success: bool,
    pub retryable: bool,
    pub exit_code: i32,
    pub duration_seconds: f64,
    pub prompt_artifact: Option<PathBuf>,
    pub report_artifact: Option<PathBuf>,
    pub artifact_paths: Vec<PathBuf>,
    pub detected_marker: Option<String>,
    pub stdout_path: Option<PathBuf>,
    pub stderr_path: Option<PathBuf>,
    pub runner_name: String,
    pub model_name: Option<String>,
    pub token_usage: Option<TokenUsage>,
    pub notes: Vec<String>,
    pub metadata: StageResultMetadata,
    #[serde(with = "stamp")]
    pub started_at: Timestamp,
    #[serde(with = "stamp")]
    pub completed_at: Timestamp,
    /// Why the stage failed, in a class a person can act on, with the harness's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// Edits or commands the harness refused: a warning even on a successful stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// The harness's own last human-readable line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line: Option<String>,
}

impl StageResult {
    /// The envelope rules of spec 08 §8; checked whenever one is built or loaded.
    pub fn validate(&self) -> Result<(), ResultError> {
        if self.stage.plane() != self.plane {
            return Err(ResultError::StagePlaneMismatch);
        }
        if !self.stage.is_legal(self.terminal_result) {
            return Err(ResultError::IllegalTerminalResult);
        }
        if self.summary_status_marker != self.terminal_result.marker() {
            return Err(ResultError::MarkerMismatch);
        }
        if self.completed_at < self.started_at {
            return Err(ResultError::CompletedBeforeStart);
        }
        if self.duration_seconds < 0.0 || self.duration_seconds.is_nan() {
            return Err(ResultError::NegativeDuration);
        }
        if self.terminal_result == TerminalResult::Blocked {
            if !matches!(
                self.result_class,
                ResultClass::Blocked | ResultClass::RecoverableFailure
            ) {
                return Err(ResultError::BlockedClass);
            }
            if self.success {
                return Err(ResultError::BlockedSuccess);
            }
        } else if self.result_class != self.terminal_result.result_class() {
            return Err(ResultError::ClassMismatch);
        }
        match (self.result_class == ResultClass::Success, self.success) {
            (true, false) => Err(ResultError::SuccessFlagFalse),
            (false, true) => Err(ResultError::SuccessFlagTrue),
            _ => Ok(()),
        }
    }

    /// The failure class routing should use, if normalization synthesized a failure.
    pub fn failure_class(&self) -> Option<FailureClass> {
        self.metadata.failure_class
    }

    /// Turn a claimed success into a recoverable `BLOCKED`, because the runtime found the
    /// stage's output unusable; `note` says why.
    pub fn demote_to_blocked(&mut self, class: FailureClass, note: String) {
        self.diagnosis = Some(Diagnosis::new(FailureKind::HarnessError, note.clone()));
        self.terminal_result = TerminalResult::Blocked;
        self.result_class = ResultClass::RecoverableFailure;
        self.summary_status_marker = TerminalResult::Blocked.marker();
        self.success = false;
        self.retryable = true;
        self.notes.push(note);
        self.metadata.failure_class = Some(class);
        self.metadata.valid_terminal_result = false;
    }
}
