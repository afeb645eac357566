//! Per-stage-run files in the run directory (spec 08 §5.5, decision 11) and the invocation /
//! completion records every process runner writes.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::Stage;
use crate::runners::process::{Ending, ProcessRun};
use crate::runners::request::{RequestKind, StageRequest};
use crate::runners::result::{stamp, ExitKind, RawResult, TokenUsage, SCHEMA_VERSION};
use crate::workspace::atomic::{self, IoError};
use crate::workspace::compress;

/// The files of one stage run, all keyed by request id inside the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// `runner_prompt.<rid>.md`: the prompt exactly as passed to the harness.
    pub prompt: PathBuf,
    /// `runner_invocation.<rid>.yaml`: the command line about to run.
    pub invocation: PathBuf,
    /// `runner_stdout.<rid>.txt`: the text scanned for the terminal marker.
    pub stdout: PathBuf,
    /// `runner_stderr.<rid>.txt`: harness stderr plus the runtime's one-line notes.
    pub stderr: PathBuf,
    /// `runner_events.<rid>.jsonl`: raw harness stdout (Codex event stream).
    pub events: PathBuf,
    /// `runner_last_message.<rid>.txt`: the harness's final message.
    pub last_message: PathBuf,
    /// `runner_completion.<rid>.yaml`: how the run ended.
    pub completion: PathBuf,
    /// `runner_process.<rid>.yaml`: pid, group and start time while the harness is alive.
    pub process_record: PathBuf,
}

impl RunFiles {
    /// The file names for request `request_id` in `run_dir`.
    pub fn new(run_dir: &Path, request_id: &str) -> RunFiles {
        let at = |prefix: &str, ext: &str| run_dir.join(format!("{prefix}.{request_id}.{ext}"));
        RunFiles {
            prompt: at("runner_prompt", "md"),
            invocation: at("runner_invocation", "yaml"),
            stdout: at("runner_stdout", "txt"),
            stderr: at("runner_stderr", "txt"),
            events: at("runner_events", "jsonl"),
            last_message: at("runner_last_message", "txt"),
            completion: at("runner_completion", "yaml"),
            process_record: at("runner_process", "yaml"),
        }
    }

    /// The file names for a request.
    pub fn for_request(req: &StageRequest) -> RunFiles {
        RunFiles::new(&req.run_dir, &req.request_id)
    }
}

/// `runs/<run_id>/stage_results/`: the normalized results of a run's stages.
pub fn stage_results_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("stage_results")
}

/// `runs/<run_id>/stage_results/<request_id>.yaml`, where the runtime stores the envelope.
pub fn stage_result_path(run_dir: &Path, request_id: &str) -> PathBuf {
    stage_results_dir(run_dir).join(format!("{request_id}.yaml"))
}

/// Gzip the bulky text a finished run keeps (prompts, harness output and event streams:
/// `runner_*.md|txt|jsonl`), leaving its stage results, records and reports as they are, so
/// every reader of state still parses them directly. The folder keeps its modification time
/// (retention ages and `runs ls` orders runs by it). Returns the bytes saved.
pub fn compress_run(run_dir: &Path) -> Result<u64, IoError> {
    let modified = std::fs::metadata(run_dir)
        .and_then(|m| m.modified())
        .map_err(|e| IoError::path("stat", run_dir, e))?;
    let read = std::fs::read_dir(run_dir).map_err(|e| IoError::opening("list", run_dir, e))?;
    let mut saved = 0;
    let mut changed = false;
    for entry in read.filter_map(|e| e.ok()) {
        if !is_bulky(&entry.file_name().to_string_lossy())
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        if compress::gz_path(&path).exists() {
            // A crash between writing the `.gz` and removing the plain file.
            std::fs::remove_file(&path).map_err(|e| IoError::path("remove", &path, e))?;
        } else {
            saved += compress::compress_file(&path, atomic::Durability::Batched)?;
        }
        changed = true;
    }
    if changed {
        atomic::fsync_dir(run_dir)?;
        std::fs::File::open(run_dir)
            .and_then(|dir| dir.set_modified(modified))
            .map_err(|e| IoError::path("set the modification time of", run_dir, e))?;
    }
    Ok(saved)
}

/// Whether a run still has bulky text that [`compress_run`] would compress.
pub fn has_uncompressed(run_dir: &Path) -> bool {
    std::fs::read_dir(run_dir).is_ok_and(|read| {
        read.filter_map(|e| e.ok())
            .any(|entry| is_bulky(&entry.file_name().to_string_lossy()))
    })
}

fn is_bulky(name: &str) -> bool {
    name.starts_with("runner_") && [".md", ".txt", ".jsonl"].iter().any(|x| name.ends_with(x))
}

/// The work item a run served, from one of its stage results (`None`: no stage finished).
pub fn work_item_of(run_dir: &Path) -> Option<String> {
    let dir = stage_results_dir(run_dir);
    let first = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "yaml"))?;
    let text = atomic::read_regular_string(&first).ok()?;
    crate::yaml::from_str::<crate::runners::result::StageResult>(&first, &text)
        .ok()
        .map(|r| r.work_item_id)
}

/// The reports a stage of a run may be asked to write, and the runtime's own error report.
#[derive(Debug, Clone, Copy)]
pub enum RunReport {
    /// The arbiter's report on its closure target.
    Arbiter,
    /// A troubleshooter's report for the next stage.
    Troubleshoot,
    /// What the runtime could not apply, for the repair stage.
    RuntimeError,
}

/// Where a run keeps one of its reports.
pub fn report_path(run_dir: &Path, report: RunReport) -> PathBuf {
    run_dir.join(match report {
        RunReport::Arbiter => "arbiter_report.md",
        RunReport::Troubleshoot => "troubleshoot_report.md",
        RunReport::RuntimeError => "runtime_error_report.md",
    })
}

/// Why a process run failed, in the completion artifact's own vocabulary (never routed on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionFailure {
    RunnerBinaryNotFound,
    RunnerTimeout,
    RunnerIdleTimeout,
    /// Only retry/reconnect output until the stall limit.
    RunnerStalled,
    RunnerTransportFailure,
    RunnerNonZeroExit,
    RunnerInterrupted,
    ProviderFailure,
}

/// A process ending mapped onto a raw result's fields and the completion record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub exit_kind: ExitKind,
    pub exit_code: Option<i32>,
    pub failure: Option<CompletionFailure>,
    pub notes: Vec<String>,
}

/// Exit code reported for an interrupted stage (128 + SIGINT, the shell convention).
const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Spec 08 §5.4 step 6, plus our idle-timeout and interrupt rows.
pub fn classify(ending: &Ending) -> Classified {
    let (exit_kind, exit_code, failure, note) = match ending {
        Ending::NotFound => (
            ExitKind::RunnerError,
            127,
            Some(CompletionFailure::RunnerBinaryNotFound),
            Some("runner executable missing".to_string()),
        ),
        Ending::TimedOut(_) => (
            ExitKind::Timeout,
            124,
            Some(CompletionFailure::RunnerTimeout),
            Some("runner process exceeded timeout".to_string()),
        ),
        Ending::IdleTimedOut(_) => (
            ExitKind::Timeout,
            124,
            Some(CompletionFailure::RunnerIdleTimeout),
            Some("runner process exceeded idle timeout".to_string()),
        ),
        Ending::Stalled(..) => (
            ExitKind::ProviderError,
            124,
            Some(CompletionFailure::RunnerStalled),
            Some("runner only retried or reconnected until the stall limit".to_string()),
        ),
        Ending::SpawnFailed(err) => (
            ExitKind::RunnerError,
            1,
            Some(CompletionFailure::RunnerTransportFailure),
            Some(err.clone()),
        ),
        Ending::Interrupted => (
            ExitKind::Interrupted,
            INTERRUPTED_EXIT_CODE,
            Some(CompletionFailure::RunnerInterrupted),
            Some("runner interrupted by the runtime".to_string()),
        ),
        Ending::Signaled(signal) => (
            ExitKind::RunnerError,
            128 + signal,
            Some(CompletionFailure::RunnerNonZeroExit),
            Some(format!("runner was killed by signal {signal}")),
        ),
        Ending::Exited(0) => (ExitKind::Completed, 0, None, None),
        Ending::Exited(code) => (
            ExitKind::RunnerError,
            *code,
            Some(CompletionFailure::RunnerNonZeroExit),
            Some("runner exited with non-zero status".to_string()),
        ),
    };
    Classified {
        exit_kind,
        exit_code: Some(exit_code),
        failure,
        notes: note.into_iter().collect(),
    }
}

/// `runner_invocation.<rid>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerInvocation {
    pub schema_version: String,
    pub kind: String,
    pub request_id: String,
    pub run_id: String,
    pub stage: Stage,
    pub request_kind: RequestKind,
    pub active_work_item_id: Option<String>,
    pub closure_target_root_spec_id: Option<String>,
    pub runner_name: String,
    pub model_name: Option<String>,
    pub command: Vec<String>,
    pub prompt_path: PathBuf,
    #[serde(with = "stamp")]
    pub emitted_at: Timestamp,
}

impl RunnerInvocation {
    /// The record of a command line about to run, stamped `emitted_at`.
    pub fn new(
        req: &StageRequest,
        runner_name: &str,
        command: &[String],
        prompt_path: &Path,
        emitted_at: Timestamp,
    ) -> RunnerInvocation {
        RunnerInvocation {
            schema_version: SCHEMA_VERSION.into(),
            kind: "runner_invocation".into(),
            request_id: req.request_id.clone(),
            run_id: req.run_id.clone(),
            stage: req.stage,
            request_kind: req.request_kind,
            active_work_item_id: req.active_work_item_id.clone(),
            closure_target_root_spec_id: req.closure_target_root_spec_id.clone(),
            runner_name: runner_name.into(),
            model_name: req.model_name.clone(),
            command: command.to_vec(),
            prompt_path: prompt_path.to_path_buf(),
            emitted_at,
        }
    }
}

/// `runner_completion.<rid>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerCompletion {
    pub schema_version: String,
    pub kind: String,
    pub request_id: String,
    pub run_id: String,
    pub stage: Stage,
    pub request_kind: RequestKind,
    pub active_work_item_id: Option<String>,
    pub closure_target_root_spec_id: Option<String>,
    pub runner_name: String,
    pub exit_kind: ExitKind,
    pub exit_code: Option<i32>,
    pub stdout_path: Option<PathBuf>,
    pub stderr_path: Option<PathBuf>,
    pub terminal_result_path: Option<PathBuf>,
    pub event_log_path: Option<PathBuf>,
    pub token_usage: Option<TokenUsage>,
    #[serde(with = "stamp")]
    pub started_at: Timestamp,
    #[serde(with = "stamp")]
    pub ended_at: Timestamp,
    pub failure_class: Option<CompletionFailure>,
    pub notes: Vec<String>,
    /// The command line with the prompt text replaced by [`PROMPT_PLACEHOLDER`]: this record
    /// is committed to git, the prompt (`runner_prompt.<rid>.md`) is not.
    pub command: Vec<String>,
    /// SHA-256 (hex) of the prompt, to tell which prompt ran without keeping its text.
    pub prompt_sha256: String,
    /// The prompt's size in bytes.
    pub prompt_bytes: u64,
    #[serde(with = "stamp")]
    pub emitted_at: Timestamp,
}

/// What stands for the prompt text in a committed command line.
pub const PROMPT_PLACEHOLDER: &str = "<prompt>";

impl RunnerCompletion {
    /// The record of a finished run, stamped now.
    pub fn new(
        req: &StageRequest,
        raw: &RawResult,
        classified: &Classified,
        command: &[String],
        prompt: &str,
    ) -> RunnerCompletion {
        use sha2::Digest;
        let command = command
            .iter()
            .map(|arg| {
                if prompt.is_empty() {
                    arg.clone()
                } else {
                    arg.replace(prompt, PROMPT_PLACEHOLDER)
                }
            })
            .collect();
        RunnerCompletion {
            schema_version: SCHEMA_VERSION.into(),
            kind: "runner_completion".into(),
            request_id: raw.request_id.clone(),
            run_id: raw.run_id.clone(),
            stage: raw.stage,
            request_kind: req.request_kind,
            active_work_item_id: req.active_work_item_id.clone(),
            closure_target_root_spec_id: req.closure_target_root_spec_id.clone(),
            runner_name: raw.runner_name.clone(),
            exit_kind: raw.exit_kind,
            exit_code: raw.exit_code,
            stdout_path: raw.stdout_path.clone(),
            stderr_path: raw.stderr_path.clone(),
            terminal_result_path: raw.terminal_result_path.clone(),
            event_log_path: raw.event_log_path.clone(),
            token_usage: raw.token_usage,
            started_at: raw.started_at,
            ended_at: raw.ended_at,
            failure_class: classified.failure,
            notes: classified.notes.clone(),
            command,
            prompt_sha256: format!("{:x}", sha2::Sha256::digest(prompt.as_bytes())),
            prompt_bytes: prompt.len() as u64,
            emitted_at: stamp::now(),
        }
    }
}

/// Write a YAML artifact atomically.
pub fn write_yaml<T: Serialize>(path: &Path, value: &T) -> Result<(), IoError> {
    atomic::write_artifact(path, crate::yaml::to_string(value).as_bytes())
}

/// A raw result skeleton for a finished process; runners fill in the output paths.
pub fn raw_from_run(
    req: &StageRequest,
    runner_name: &str,
    run: &ProcessRun,
    classified: &Classified,
) -> RawResult {
    RawResult {
        request_id: req.request_id.clone(),
        run_id: req.run_id.clone(),
        stage: req.stage,
        runner_name: runner_name.into(),
        model_name: req.model_name.clone(),
        exit_kind: classified.exit_kind,
        exit_code: classified.exit_code,
        stdout_path: None,
        stderr_path: None,
        terminal_result_path: None,
        event_log_path: None,
        token_usage: None,
        started_at: run.started_at,
        ended_at: run.ended_at,
        diagnosis: None,
        refused: Vec::new(),
        last_line: None,
    }
}
