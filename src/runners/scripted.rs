//! `scripted`: a built-in **simulation** of a harness, for `millrace demo` and for trying
//! millrace without installing an agent. It runs no model and changes no code.
//!
//! Each stage answers from a small YAML script (or, without one, with its success result),
//! and the planning stages write what a real planner/manager would: the manager writes task
//! documents carrying the active item's lineage; the arbiter writes a verdict and a report.
//!
//! ```yaml
//! # millrace-agents/millrace.yaml: runners: { default_runner: scripted, scripted: { script: demo.yaml } }
//! stages:
//!   checker: [FIX_NEEDED, CHECKER_PASS]   # answers in order per work item; the last repeats
//!   manager:
//!     - result: MANAGER_COMPLETE
//!       tasks: 2                          # task documents to write
//! items:                                  # per work item (or closure target) overrides
//!   t-flaky:
//!     builder: [BLOCKED]
//!   t-quota:                              # a simulated environment failure, then success
//!     builder: [{fail: rate_limited, reset_in_seconds: 60}, BUILDER_COMPLETE]
//! ```
//!
//! Every stage reports simulated token usage (derived from the prompt and answer sizes, or
//! `tokens: N` on a detailed answer), so budgets and `millrace usage` can be tried without a
//! provider; the ledger marks such figures as simulated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::artifacts::RunFiles;
use super::harness::{Diagnosis, FailureKind};
use super::request::StageRequest;
use super::result::{stamp, ExitKind, RawResult, TokenUsage};
use super::{CancelToken, Runner};
use crate::config::ScriptedRunnerConfig;
use crate::documents::{self, DocTime, Document, StatusHint, TaskDoc};
use crate::model::{Stage, TerminalResult, WorkItemKind};
use crate::workspace::atomic::{self, IoError};
use crate::workspace::Workspace;

/// Name of the simulation runner.
pub const SCRIPTED_RUNNER: &str = "scripted";

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Result(TerminalResult),
    Detailed {
        result: TerminalResult,
        /// Task documents the manager writes (default 2 for `MANAGER_COMPLETE`).
        #[serde(default)]
        tasks: Option<u32>,
        /// Extra text for the final message (notes for incidents).
        #[serde(default)]
        note: Option<String>,
        /// Simulated tokens the stage spends (default: derived from the text sizes).
        #[serde(default)]
        tokens: Option<u64>,
    },
    /// A simulated harness failure of the given class (no marker, no output).
    Failure {
        fail: FailureKind,
        #[serde(default)]
        message: Option<String>,
        /// The provider's reset time, this many seconds from now.
        #[serde(default)]
        reset_in_seconds: Option<u64>,
    },
}

/// What one simulated stage produced.
struct Simulated {
    text: String,
    tokens: Option<u64>,
}

impl Answer {
    fn result(&self) -> Option<TerminalResult> {
        match self {
            Answer::Result(r) | Answer::Detailed { result: r, .. } => Some(*r),
            Answer::Failure { .. } => None,
        }
    }
}

/// Simulated usage: about four characters per token in and out, half the input cached, and
/// a price in the range of current frontier models.
fn simulated_usage(prompt: &str, text: &str, tokens: Option<u64>) -> TokenUsage {
    let (input, output) = match tokens {
        Some(total) => (total - total / 5, total / 5),
        None => ((prompt.len() / 4) as u64, (text.len() / 4) as u64 + 200),
    };
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: input / 2,
        output_tokens: output,
        thinking_tokens: 0,
        total_tokens: input + output,
        cost_usd: Some((input as f64 * 1.25 + output as f64 * 10.0) / 1_000_000.0),
    }
}

/// The script file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub stages: BTreeMap<Stage, Vec<Answer>>,
    /// Answers for one work item (or closure target) by id; they win over `stages`.
    #[serde(default)]
    pub items: BTreeMap<String, BTreeMap<Stage, Vec<Answer>>>,
}

impl Script {
    /// Read and check the script at `path`: every answer parses, and every result is one the
    /// stage can give (a typo is the operator's to fix, not every work item's to fail on).
    pub fn load(root: &Path, rel: &Path) -> Result<Script, String> {
        let path = &root.join(rel);
        let text = atomic::read_beneath(root, rel)
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| format!("cannot read scripted runner script {}: {e}", path.display()))?;
        let script: Script = crate::yaml::from_str(path, &text).map_err(|e| {
            let e = e.to_string();
            if e.contains("untagged enum Answer") {
                format!(
                    "{e}: an answer is one of the stage's results (CHECKER_PASS), a mapping \
                     `{{result: R, tasks: N, note: T, tokens: N}}`, or a simulated failure \
                     `{{fail: CLASS, message: T, reset_in_seconds: N}}`"
                )
            } else {
                e
            }
        })?;
        let every = script
            .stages
            .iter()
            .chain(script.items.values().flat_map(|stages| stages.iter()));
        for (stage, answers) in every {
            let legal = stage.legal_results();
            if let Some(bad) = answers
                .iter()
                .filter_map(Answer::result)
                .find(|r| !legal.contains(r))
            {
                let names: Vec<String> = legal.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "{}: {bad} is not a result of the {stage} stage (its results: {})",
                    path.display(),
                    names.join(", ")
                ));
            }
        }
        Ok(script)
    }
}

/// The configured script's problem, if the scripted runner is in use and its script does not
/// load (`config validate`, `doctor` and the daemon's start-up check ask).
pub fn script_problem(ws: &Workspace, config: &crate::config::Config) -> Option<String> {
    let path = config.runners.scripted.script.as_ref()?;
    crate::runners::configured_runner_names(config)
        .contains(&SCRIPTED_RUNNER)
        .then(|| Script::load(ws.root(), Path::new(path)).err())
        .flatten()
}

/// How many answers each stage consumed, per work item or closure target
/// (`<stage>:<item>`), across activations.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    consumed: BTreeMap<String, usize>,
}

/// The simulation runner.
pub struct ScriptedRunner {
    ws: Workspace,
    /// The script, relative to the project (`runners.scripted.script`).
    script_path: Option<PathBuf>,
}

impl ScriptedRunner {
    /// A simulation for one workspace, answering from `config.script` when set.
    pub fn new(ws: &Workspace, config: &ScriptedRunnerConfig) -> ScriptedRunner {
        ScriptedRunner {
            ws: ws.clone(),
            script_path: config.script.as_ref().map(PathBuf::from),
        }
    }

    fn script(&self) -> Result<Script, String> {
        match &self.script_path {
            Some(rel) => Script::load(self.ws.root(), rel),
            None => Ok(Script::default()),
        }
    }

    fn answer(&self, req: &StageRequest) -> Result<Answer, String> {
        let script = self.script()?;
        let state_path = self.ws.state_dir().join("scripted_runner.yaml");
        let mut progress: Progress = atomic::read_regular_string(&state_path)
            .ok()
            .and_then(|t| crate::yaml::from_str(&state_path, &t).ok())
            .unwrap_or_default();
        let item = req
            .active_work_item_id
            .clone()
            .or_else(|| req.closure_target_root_spec_id.clone())
            .unwrap_or_default();
        let key = format!("{}:{item}", req.stage);
        let n = progress.consumed.get(&key).copied().unwrap_or(0);
        let answers = script
            .items
            .get(&item)
            .and_then(|stages| stages.get(&req.stage))
            .or_else(|| script.stages.get(&req.stage));
        let Some(list) = answers.filter(|list| !list.is_empty()) else {
            return Ok(Answer::Result(req.stage.legal_results()[0]));
        };
        // Only a count that changes the next answer is kept: once a stage is on its last
        // answer (or has one), nothing is written, so the file stays small and still.
        if n + 1 < list.len() {
            progress.consumed.insert(key, n + 1);
            atomic::write_artifact(&state_path, crate::yaml::to_string(&progress).as_bytes())
                .map_err(|e| e.to_string())?;
        }
        Ok(list[n.min(list.len() - 1)].clone())
    }

    /// What a real manager would write: tasks for the active spec or incident.
    fn write_tasks(&self, req: &StageRequest, count: u32) -> Result<Vec<String>, String> {
        let (Some(kind), Some(id), Some(path)) = (
            req.active_work_item_kind,
            req.active_work_item_id.as_ref(),
            req.active_work_item_path.as_ref(),
        ) else {
            return Ok(Vec::new());
        };
        let text = atomic::read_regular_string(path).map_err(|e| e.to_string())?;
        let doc = documents::parse(kind, &format!("{id}.md"), &text).map_err(|e| e.to_string())?;
        let (spec_id, incident_id) = match kind {
            WorkItemKind::Incident => (
                match &doc {
                    Document::Incident(i) => i.source_spec_id.clone(),
                    _ => None,
                },
                Some(id.clone()),
            ),
            _ => (Some(id.clone()), None),
        };
        let mut written = Vec::new();
        let mut previous: Option<String> = None;
        for n in 1..=count {
            let task_id = format!("{id}-task-{n}");
            let task = Document::Task(TaskDoc {
                task_id: task_id.clone(),
                title: format!("Step {n} of {}", doc.title()),
                summary: format!("Simulated task {n} of {count} decomposed from {kind} {id}."),
                root_idea_id: doc.root_idea_id().map(str::to_string),
                root_spec_id: doc.effective_root_spec().map(str::to_string),
                spec_id: spec_id.clone(),
                parent_task_id: None,
                incident_id: incident_id.clone(),
                status_hint: Some(StatusHint::Queued),
                created_at: DocTime::from_timestamp(crate::time::now()),
                created_by: "scripted-manager".into(),
                updated_at: None,
                depends_on: previous.iter().cloned().collect(),
                blocks: Vec::new(),
                tags: vec!["simulated".into()],
                target_paths: vec!["README.md".into()],
                acceptance: vec![format!("Step {n} is done (simulated).")],
                required_checks: vec!["true".into()],
                references: vec![self.ws.rel(path)],
                risk: vec!["None: this task was written by the scripted simulation.".into()],
            });
            let dest = self.ws.item_path(
                WorkItemKind::Task,
                crate::workspace::Folder::Queue,
                &task_id,
            );
            // Written as an agent writes (no fsync): only the engine's thread writes durably.
            match atomic::create_atomic_with(
                &dest,
                task.render().as_bytes(),
                atomic::Durability::Relaxed,
            ) {
                Ok(()) | Err(IoError::AlreadyExists { .. }) => written.push(task_id.clone()),
                Err(e) => return Err(e.to_string()),
            }
            previous = Some(task_id);
        }
        Ok(written)
    }

    fn write_arbiter_files(
        &self,
        req: &StageRequest,
        result: TerminalResult,
    ) -> Result<(), String> {
        let resolve = |p: &PathBuf| -> PathBuf {
            if p.is_absolute() {
                p.clone()
            } else {
                self.ws.root().join(p)
            }
        };
        if let Some(rubric) = req.preferred_rubric_path.as_ref().map(resolve) {
            if !rubric.exists() {
                let text = format!(
                    "# Rubric for {} (simulated)\n\n- The root spec's acceptance items hold.\n- Every task of the lineage is done.\n",
                    req.closure_target_root_spec_id.clone().unwrap_or_default()
                );
                atomic::write_artifact(&rubric, text.as_bytes()).map_err(|e| e.to_string())?;
            }
        }
        if let Some(verdict) = &req.preferred_verdict_path {
            let verdict = resolve(verdict);
            let text = format!(
                "schema_version: \"1.0\"\nkind: arbiter_verdict\nroot_spec_id: {}\noutcome: {}\nsimulated: true\n",
                req.closure_target_root_spec_id.clone().unwrap_or_default(),
                result.as_str()
            );
            if let Some(parent) = verdict.parent() {
                atomic::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            atomic::write_artifact(&verdict, text.as_bytes()).map_err(|e| e.to_string())?;
        }
        if let Some(report) = &req.preferred_report_path {
            let text = format!(
                "# Arbiter Report (simulated)\n\nOutcome: {}\n\nThe scripted runner judged no real evidence.\n",
                result.as_str()
            );
            atomic::write_artifact(&resolve(report), text.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn simulate(&self, req: &StageRequest, files: &RunFiles) -> Result<Simulated, Diagnosis> {
        let answer = self
            .answer(req)
            // The script is configuration: a mistake in it pauses the runtime (as a harness
            // that refuses its command line does) instead of failing item after item.
            .map_err(|e| Diagnosis::new(FailureKind::BadInvocation, e))?;
        let Some(result) = answer.result() else {
            let Answer::Failure {
                fail,
                message,
                reset_in_seconds,
            } = answer
            else {
                unreachable!("only a failure answer has no result");
            };
            let mut diagnosis = Diagnosis::new(
                fail,
                message.unwrap_or_else(|| format!("simulated {} failure", fail.as_str())),
            );
            diagnosis.reset_at = reset_in_seconds.and_then(|s| {
                crate::time::now()
                    .checked_add(jiff::SignedDuration::from_secs(s as i64))
                    .ok()
            });
            return Err(diagnosis);
        };
        let tokens = match &answer {
            Answer::Detailed { tokens, .. } => *tokens,
            _ => None,
        };
        self.write_answer(req, files, &answer, result)
            .map(|text| Simulated { text, tokens })
            .map_err(|e| Diagnosis::new(FailureKind::HarnessError, e))
    }

    fn write_answer(
        &self,
        req: &StageRequest,
        files: &RunFiles,
        answer: &Answer,
        result: TerminalResult,
    ) -> Result<String, String> {
        let mut lines = vec![format!(
            "Simulated {} stage (scripted runner; no model ran).",
            req.stage
        )];
        if let Answer::Detailed {
            note: Some(note), ..
        } = answer
        {
            lines.push(note.clone());
        }
        match (req.stage, result) {
            (Stage::Manager, TerminalResult::ManagerComplete) => {
                let count = match answer {
                    Answer::Detailed { tasks: Some(n), .. } => *n,
                    _ => 2,
                };
                let tasks = self.write_tasks(req, count)?;
                lines.push(format!("Wrote tasks: {}", tasks.join(", ")));
            }
            (Stage::Arbiter, _) => self.write_arbiter_files(req, result)?,
            _ => {}
        }
        let summary = req.run_dir.join(format!("{}_summary.md", req.stage));
        atomic::write_artifact(
            &summary,
            format!("# {} summary\n\n{}\n", req.stage, lines.join("\n")).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        lines.push(result.marker());
        let text = lines.join("\n") + "\n";
        atomic::write_artifact(&files.stdout, text.as_bytes()).map_err(|e| e.to_string())?;
        Ok(text)
    }
}

impl Runner for ScriptedRunner {
    fn name(&self) -> &str {
        SCRIPTED_RUNNER
    }

    fn run(&self, req: &StageRequest, _cancel: &CancelToken) -> RawResult {
        let started = stamp::now();
        let files = RunFiles::for_request(req);
        let prompt = super::prompt::render(req);
        let argv = vec![SCRIPTED_RUNNER.to_string(), req.stage.to_string()];
        let invocation = super::artifacts::RunnerInvocation::new(
            req,
            SCRIPTED_RUNNER,
            &argv,
            &files.prompt,
            started,
        );
        let _ = atomic::write_artifact(&files.prompt, prompt.as_bytes())
            .and_then(|()| super::artifacts::write_yaml(&files.invocation, &invocation));
        let outcome = self.simulate(req, &files);
        let (exit_kind, exit_code, stderr) = match &outcome {
            Ok(_) => (ExitKind::Completed, 0, String::new()),
            Err(d) if d.kind == FailureKind::HarnessError => (
                ExitKind::RunnerError,
                1,
                format!("scripted runner: {}\n", d.message),
            ),
            Err(d) => (
                ExitKind::ProviderError,
                1,
                format!("scripted runner: {}\n", d.message),
            ),
        };
        let usage = outcome
            .as_ref()
            .ok()
            .map(|s| simulated_usage(&prompt, &s.text, s.tokens));
        let _ = atomic::write_artifact(&files.stderr, stderr.as_bytes());
        RawResult {
            request_id: req.request_id.clone(),
            run_id: req.run_id.clone(),
            stage: req.stage,
            runner_name: SCRIPTED_RUNNER.into(),
            model_name: req.model_name.clone(),
            exit_kind,
            exit_code: Some(exit_code),
            stdout_path: outcome.is_ok().then(|| files.stdout.clone()),
            stderr_path: Some(files.stderr.clone()),
            terminal_result_path: None,
            event_log_path: None,
            token_usage: usage,
            started_at: started,
            ended_at: stamp::now(),
            last_line: outcome.as_ref().err().map(|d| d.message.clone()),
            diagnosis: outcome
                .err()
                .filter(|d| d.kind != FailureKind::HarnessError),
            refused: Vec::new(),
        }
    }
}
