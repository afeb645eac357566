//! Stage runs as operators see them: `runs/<run_id>/` folders summarised from their stage
//! results (spec 10 §4), with the lineage each run worked for.
//!
//! Everything here only reads. A run still in progress has no stage result for its current
//! stage yet; it is listed with what it has, and [`latest_stage`] finds the running stage from
//! its capture files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{ResultClass, Stage, TerminalResult, WorkItemKind};
use crate::queue::QueueStore;
use crate::runners::artifacts::RunFiles;
use crate::runners::index::RunsIndex;
use crate::runners::request::RequestKind;
use crate::runners::result::{stamp, StageResult, TokenUsage};
use crate::workspace::{compress, Workspace};

/// Whether a run's stage results could all be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every stage result file is valid.
    Valid,
    /// No stage result yet (the first stage is running, or the run was cut short).
    Incomplete,
    /// At least one stage result file could not be read or failed validation.
    Malformed,
}

impl RunStatus {
    /// The lowercase name shown in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Valid => "valid",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Malformed => "malformed",
        }
    }
}

/// The root lineage a run worked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub root_spec_id: Option<String>,
    pub root_idea_id: Option<String>,
    /// `closure_target` (from the arbiter request), `work_item_document` (from the item's
    /// document, wherever it is now) or `unknown` (the document is gone or unreadable).
    pub source: &'static str,
}

/// One row of `runs ls`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub status: RunStatus,
    /// True while the snapshot names this run as the active one.
    pub active: bool,
    pub stages_run: usize,
    pub stages: Vec<Stage>,
    pub request_kind: Option<RequestKind>,
    pub work_item_kind: Option<WorkItemKind>,
    pub work_item_id: Option<String>,
    pub closure_target_root_spec_id: Option<String>,
    pub last_terminal_result: Option<TerminalResult>,
    pub last_result_class: Option<ResultClass>,
    /// The last stage's failure class: the actionable kind when known.
    pub failure_class: Option<String>,
    /// The last stage's failure in the harness's own words.
    pub failure_message: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Field-wise sum over the stage results that report usage; absent when none do.
    pub token_usage: Option<TokenUsage>,
    pub notes: Vec<String>,
}

/// One stage result of a run, as `runs show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct StageEntry {
    pub request_id: String,
    /// Relative to the run folder.
    pub stage_result_path: String,
    pub stage: Stage,
    pub request_kind: RequestKind,
    pub work_item_kind: WorkItemKind,
    pub work_item_id: String,
    pub closure_target_root_spec_id: Option<String>,
    pub closure_target_root_idea_id: Option<String>,
    pub terminal_result: TerminalResult,
    pub result_class: ResultClass,
    pub failure_class: Option<String>,
    pub failure_message: Option<String>,
    /// Edits or commands the harness refused (a warning even on success).
    pub refused: Vec<String>,
    /// The harness's own last line.
    pub last_line: Option<String>,
    pub started_at: String,
    pub completed_at: String,
    pub duration_seconds: f64,
    pub runner_name: String,
    pub model_name: Option<String>,
    pub exit_kind: String,
    pub exit_code: i32,
    pub notes: Vec<String>,
    pub prompt_artifact: Option<String>,
    pub report_artifact: Option<String>,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub artifact_paths: Vec<String>,
    pub token_usage: Option<TokenUsage>,
}

/// Everything `runs show` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub lineage: Lineage,
    pub stage_results: Vec<StageEntry>,
}

/// The stage `runs tail` follows: the running one, or the last one to finish.
#[derive(Debug, Clone, Serialize)]
pub struct LatestStage {
    pub request_id: String,
    pub stage: Option<Stage>,
    /// Absolute; reports show the workspace-relative path beside each stream instead.
    #[serde(skip)]
    pub stdout_path: PathBuf,
    #[serde(skip)]
    pub stderr_path: PathBuf,
    /// Its stage result exists (or the run is no longer active, so nothing more will come).
    pub finished: bool,
    pub terminal_result: Option<TerminalResult>,
}

/// Whether `run_id` names a run folder; ids with path separators never do.
pub fn exists(ws: &Workspace, run_id: &str) -> bool {
    !run_id.is_empty()
        && !run_id.contains(['/', '\\'])
        && run_id != "."
        && run_id != ".."
        && ws.run_dir(run_id).is_dir()
}

fn shown(run_dir: &Path, path: &Path) -> String {
    path.strip_prefix(run_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A result's failure as class and message: the diagnosis when the result has one (results
/// written before diagnoses existed fall back to the normalization class).
fn failure_of(r: &StageResult) -> (Option<String>, Option<String>) {
    match &r.diagnosis {
        Some(d) => (Some(d.kind.as_str().to_string()), Some(d.message.clone())),
        None => (r.failure_class().map(|f| f.to_string()), None),
    }
}

fn sum_usage(a: Option<TokenUsage>, b: Option<TokenUsage>) -> Option<TokenUsage> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// Read a run's stage results, valid ones ordered by (completed_at, started_at, path).
fn load_results(run_dir: &Path) -> (Vec<(PathBuf, StageResult)>, Vec<String>) {
    let mut valid = Vec::new();
    let mut notes = Vec::new();
    for path in files_in(&run_dir.join("stage_results")) {
        let name = shown(run_dir, &path);
        if path.extension().is_none_or(|e| e != "yaml") || name.contains("/.") {
            continue;
        }
        let loaded = crate::workspace::atomic::read_regular_string(&path)
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|text| {
                crate::yaml::from_str::<StageResult>(&path, &text)
                    .map_err(|e| format!("{name}: invalid stage result: {e}"))
            })
            .and_then(|r| {
                r.validate()
                    .map(|()| r)
                    .map_err(|e| format!("{name}: invalid stage result payload: {e}"))
            });
        match loaded {
            Ok(result) => valid.push((path, result)),
            Err(note) => notes.push(note),
        }
    }
    valid.sort_by(|(pa, a), (pb, b)| {
        (a.completed_at, a.started_at, pa).cmp(&(b.completed_at, b.started_at, pb))
    });
    (valid, notes)
}

/// The snapshot's active run, the one to tail when none is named.
fn active_run(ws: &Workspace) -> Option<String> {
    active(ws).into_iter().next().map(|(run, _)| run)
}

/// Every run the snapshot holds active, with its stage: the active run, then each
/// parallel lane's (a lane's run is active too, though the snapshot's own fields name
/// only the focused one).
fn active(ws: &Workspace) -> Vec<(String, Option<Stage>)> {
    let Ok(snapshot) = crate::state::snapshot::Snapshot::load(&ws.snapshot_path()) else {
        return Vec::new();
    };
    let mut runs: Vec<(String, Option<Stage>)> = snapshot
        .active_run_id
        .map(|run| (run, snapshot.active_stage))
        .into_iter()
        .collect();
    for lane in snapshot.lanes {
        if !runs.iter().any(|(run, _)| *run == lane.run_id) {
            runs.push((lane.run_id, Some(lane.stage)));
        }
    }
    runs
}

/// Whether the snapshot holds run `run_id` active.
fn is_active(ws: &Workspace, run_id: &str) -> bool {
    active(ws).iter().any(|(run, _)| run == run_id)
}

fn summarize(
    run_id: &str,
    results: &[(PathBuf, StageResult)],
    mut notes: Vec<String>,
    active: bool,
) -> RunSummary {
    let status = match (results.is_empty(), notes.is_empty()) {
        (true, true) => {
            notes.push("no stage result artifacts found".into());
            RunStatus::Incomplete
        }
        (_, false) => RunStatus::Malformed,
        (false, true) => RunStatus::Valid,
    };
    let first = results.first().map(|(_, r)| r);
    let last = results.last().map(|(_, r)| r);
    RunSummary {
        run_id: run_id.to_string(),
        status,
        active,
        stages_run: results.len(),
        stages: results.iter().map(|(_, r)| r.stage).collect(),
        request_kind: last.map(|r| r.metadata.request_kind),
        work_item_kind: last.map(|r| r.work_item_kind),
        work_item_id: last.map(|r| r.work_item_id.clone()),
        closure_target_root_spec_id: last
            .and_then(|r| r.metadata.closure_target_root_spec_id.clone()),
        last_terminal_result: last.map(|r| r.terminal_result),
        last_result_class: last.map(|r| r.result_class),
        failure_class: last.and_then(|r| failure_of(r).0),
        failure_message: last.and_then(|r| failure_of(r).1),
        started_at: first.map(|r| crate::time::format(r.started_at)),
        completed_at: last.map(|r| crate::time::format(r.completed_at)),
        duration_seconds: first.zip(last).map(|(f, l)| {
            l.completed_at
                .duration_since(f.started_at)
                .as_secs_f64()
                .max(0.0)
        }),
        token_usage: results
            .iter()
            .fold(None, |acc, (_, r)| sum_usage(acc, r.token_usage)),
        notes,
    }
}

/// When a run began, for ordering: its first stage result, else the folder's mtime.
fn start_key(run_dir: &Path, summary: &RunSummary) -> Timestamp {
    summary
        .started_at
        .as_deref()
        .and_then(|s| stamp::parse(s).ok())
        .or_else(|| {
            std::fs::metadata(run_dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m: SystemTime| Timestamp::try_from(m).ok())
        })
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A page of the runs, newest first, and how many there are. Which runs are newest comes
/// from the runs index (see [`RunsIndex`]), so only the page's stage results are read;
/// within the page the stage results order them.
pub fn list(ws: &Workspace, offset: usize, limit: usize) -> (Vec<RunSummary>, usize) {
    let active: Vec<String> = active(ws).into_iter().map(|(run, _)| run).collect();
    let (page, total) = RunsIndex::page(ws, offset, limit);
    let mut runs: Vec<(Timestamp, RunSummary)> = page
        .into_iter()
        .map(|run_id| {
            let dir = ws.run_dir(&run_id);
            let (results, notes) = load_results(&dir);
            let summary = summarize(&run_id, &results, notes, active.contains(&run_id));
            (start_key(&dir, &summary), summary)
        })
        .collect();
    runs.sort_by(|(ta, a), (tb, b)| tb.cmp(ta).then_with(|| a.run_id.cmp(&b.run_id)));
    (runs.into_iter().map(|(_, s)| s).collect(), total)
}

/// The ids of the `n` newest runs (from the runs index).
pub fn newest(ws: &Workspace, n: usize) -> Vec<String> {
    RunsIndex::page(ws, 0, n).0
}

fn path_text(run_dir: &Path, path: &Option<PathBuf>) -> Option<String> {
    path.as_deref().map(|p| shown(run_dir, p))
}

/// The lineage of a run from its last stage result: a closure target's own root ids, or the
/// work item's document wherever it now lives.
fn lineage(ws: &Workspace, last: Option<&StageResult>) -> Lineage {
    let Some(r) = last else {
        return Lineage {
            source: "unknown",
            ..Lineage::default()
        };
    };
    if r.metadata.request_kind == RequestKind::ClosureTarget {
        return Lineage {
            root_spec_id: r
                .metadata
                .closure_target_root_spec_id
                .clone()
                .or_else(|| Some(r.work_item_id.clone())),
            root_idea_id: r.metadata.closure_target_root_idea_id.clone(),
            source: "closure_target",
        };
    }
    let store = QueueStore::new(ws);
    let doc = store
        .find(&r.work_item_id)
        .into_iter()
        .find(|(s, _)| s.kind == r.work_item_kind)
        .and_then(|(_, doc)| doc);
    match doc {
        Some(doc) => Lineage {
            root_spec_id: doc.effective_root_spec.clone(),
            root_idea_id: doc.root_idea_id.clone(),
            source: "work_item_document",
        },
        None => Lineage {
            source: "unknown",
            ..Lineage::default()
        },
    }
}

/// `runs show`: the summary, the lineage and every stage result in order; `None` if the
/// run does not exist.
pub fn show(ws: &Workspace, run_id: &str) -> Option<RunDetail> {
    if !exists(ws, run_id) {
        return None;
    }
    let run_dir = ws.run_dir(run_id);
    let (results, notes) = load_results(&run_dir);
    let summary = summarize(run_id, &results, notes, is_active(ws, run_id));
    let lineage = lineage(ws, results.last().map(|(_, r)| r));
    let stage_results = results
        .iter()
        .map(|(path, r)| StageEntry {
            request_id: r.metadata.request_id.clone(),
            stage_result_path: shown(&run_dir, path),
            stage: r.stage,
            request_kind: r.metadata.request_kind,
            work_item_kind: r.work_item_kind,
            work_item_id: r.work_item_id.clone(),
            closure_target_root_spec_id: r.metadata.closure_target_root_spec_id.clone(),
            closure_target_root_idea_id: r.metadata.closure_target_root_idea_id.clone(),
            terminal_result: r.terminal_result,
            result_class: r.result_class,
            failure_class: failure_of(r).0,
            failure_message: failure_of(r).1,
            refused: r.refused.clone(),
            last_line: r.last_line.clone(),
            started_at: crate::time::format(r.started_at),
            completed_at: crate::time::format(r.completed_at),
            duration_seconds: r.duration_seconds,
            runner_name: r.runner_name.clone(),
            model_name: r.model_name.clone(),
            exit_kind: r.metadata.raw_exit_kind.to_string(),
            exit_code: r.exit_code,
            notes: r.notes.clone(),
            prompt_artifact: path_text(&run_dir, &r.prompt_artifact),
            report_artifact: path_text(&run_dir, &r.report_artifact),
            stdout_path: path_text(&run_dir, &r.stdout_path),
            stderr_path: path_text(&run_dir, &r.stderr_path),
            artifact_paths: r
                .artifact_paths
                .iter()
                .map(|p| shown(&run_dir, p))
                .collect(),
            token_usage: r.token_usage,
        })
        .collect();
    Some(RunDetail {
        summary,
        lineage,
        stage_results,
    })
}

/// The request id in a run-folder file name such as `runner_stdout.<rid>.txt`.
fn request_id_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("runner_")?;
    let (_, rest) = rest.split_once('.')?;
    let (rid, _) = rest.rsplit_once('.')?;
    (!rid.is_empty()).then_some(rid)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among a request's files, its stage result included.
fn request_activity(run_dir: &Path) -> std::collections::BTreeMap<String, SystemTime> {
    let mut newest = std::collections::BTreeMap::new();
    let results = files_in(&run_dir.join("stage_results"));
    for path in files_in(run_dir).iter().chain(&results) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // An atomic write's temporary file (`.<name>.tmp-…`) names no request; taken for one,
        // it made a stage result being written look like the next stage starting.
        if name.starts_with('.') {
            continue;
        }
        let rid = match request_id_of(&name) {
            Some(rid) => rid.to_string(),
            None if path.parent().is_some_and(|p| p.ends_with("stage_results")) => {
                match name.rsplit_once('.') {
                    Some((rid, _)) => rid.to_string(),
                    None => continue,
                }
            }
            None => continue,
        };
        let time = mtime(path).unwrap_or(SystemTime::UNIX_EPOCH);
        let entry = newest.entry(rid).or_insert(time);
        *entry = (*entry).max(time);
    }
    newest
}

/// The run to tail when none is named: the one the snapshot says is active, else the run
/// whose files changed last.
pub fn latest_run(ws: &Workspace) -> Option<String> {
    if let Some(run) = active_run(ws).filter(|run| exists(ws, run)) {
        return Some(run);
    }
    files_or_dirs(&ws.runs_dir())
        .into_iter()
        .filter_map(|dir| {
            let newest = request_activity(&dir).into_values().max()?;
            Some((newest, dir.file_name()?.to_string_lossy().into_owned()))
        })
        .max()
        .map(|(_, run)| run)
}

fn files_or_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The stage of `run_id` to tail: the request whose files changed last (the running stage,
/// or the newest finished one; an interrupted stage that was re-run is not it).
pub fn latest_stage(ws: &Workspace, run_id: &str) -> Option<LatestStage> {
    let run_dir = ws.run_dir(run_id);
    let (results, _) = load_results(&run_dir);
    let request_id = request_activity(&run_dir)
        .into_iter()
        .max_by_key(|(_, time)| *time)
        .map(|(rid, _)| rid)
        .or_else(|| Some(results.last()?.1.metadata.request_id.clone()))?;
    Some(stage_of(ws, run_id, &results, request_id))
}

/// The stage run `request_id` of `run_id`, as [`latest_stage`] describes one (`runs tail
/// --follow` asks for the result of the stage it followed after the next one has started).
pub fn stage_by_request(ws: &Workspace, run_id: &str, request_id: &str) -> LatestStage {
    let (results, _) = load_results(&ws.run_dir(run_id));
    stage_of(ws, run_id, &results, request_id.to_string())
}

fn stage_of(
    ws: &Workspace,
    run_id: &str,
    results: &[(PathBuf, StageResult)],
    request_id: String,
) -> LatestStage {
    let run_dir = ws.run_dir(run_id);
    let files = RunFiles::new(&run_dir, &request_id);
    let result = results
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.metadata.request_id == request_id);
    let stage = result.map(|r| r.stage).or_else(|| {
        let text = crate::workspace::atomic::read_regular_string(&files.invocation).ok()?;
        crate::yaml::from_str::<crate::runners::artifacts::RunnerInvocation>(
            &files.invocation,
            &text,
        )
        .ok()
        .map(|i| i.stage)
    });
    let running = active(ws).into_iter().find(|(run, _)| run == run_id);
    let still_active = running.is_some();
    let stage = stage.or(running.and_then(|(_, stage)| stage));
    LatestStage {
        finished: result.is_some() || !still_active,
        terminal_result: result.map(|r| r.terminal_result),
        request_id,
        stage,
        stdout_path: readable_stdout(&files),
        stderr_path: files.stderr,
    }
}

/// Where the bytes a stage's harness printed on stdout are now: the capture while it runs,
/// the event log once the runner moved them there (the Codex runner then writes the final
/// message in the capture's place). `runs tail -f` reads on from an offset into these bytes,
/// so it follows them, not whatever file bears the capture's name.
pub fn printed_stdout(ws: &Workspace, run_id: &str, request_id: &str) -> PathBuf {
    let files = RunFiles::new(&ws.run_dir(run_id), request_id);
    if files.events.is_file() {
        files.events
    } else {
        files.stdout
    }
}

/// The stage's stdout capture, or for a harness whose stdout is an event stream (Codex
/// `--json`, moved to `runner_events`) with no text captured, the event log.
fn readable_stdout(files: &RunFiles) -> PathBuf {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .or_else(|_| std::fs::metadata(compress::gz_path(p)))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    if size(&files.stdout) == 0 && size(&files.events) > 0 {
        files.events.clone()
    } else {
        files.stdout.clone()
    }
}

/// How many of `bytes` make whole lines (up to the last line end): a line still being
/// written, or a character split across two writes, is left for the next read.
pub fn whole_lines_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1)
}

/// The last `lines` lines of a text file (all of it for 0), read through retention's
/// compression, and how many bytes of the file they end at; with `whole_lines` a last line
/// still being written is left out. A missing file reads as empty.
pub fn tail_lines(path: &Path, lines: usize, whole_lines: bool) -> (Vec<String>, u64) {
    let mut bytes = compress::read(path).unwrap_or_default();
    if whole_lines {
        bytes.truncate(whole_lines_len(&bytes));
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let from = if lines == 0 {
        0
    } else {
        all.len().saturating_sub(lines)
    };
    let shown = all[from..].iter().map(|l| l.to_string()).collect();
    (shown, bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_come_from_runner_file_names() {
        assert_eq!(
            request_id_of("runner_stdout.request-ab12.txt"),
            Some("request-ab12")
        );
        assert_eq!(
            request_id_of("runner_events.request-ab12.jsonl"),
            Some("request-ab12")
        );
        assert_eq!(request_id_of("builder_summary.md"), None);
    }

    #[test]
    fn run_ids_cannot_escape_the_runs_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        assert!(!exists(&ws, ".."));
        assert!(!exists(&ws, "../state"));
        assert!(!exists(&ws, ""));
    }

    #[test]
    fn usage_sums_only_what_is_reported() {
        let one = TokenUsage {
            input_tokens: 1,
            total_tokens: 2,
            ..TokenUsage::default()
        };
        assert_eq!(sum_usage(None, None), None);
        assert_eq!(sum_usage(Some(one), None), Some(one));
        assert_eq!(sum_usage(Some(one), Some(one)).unwrap().total_tokens, 4);
    }
}
