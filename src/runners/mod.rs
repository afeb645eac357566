//! Stage runners: how one stage request becomes a harness process and a [`StageResult`].
//!
//! ```text
//! engine ─StageRequest─▶ Registry::dispatch ─▶ Runner::run ─RawResult─▶ normalize ─StageResult─▶ router
//! ```
//!
//! Runners own the harness-specific files of a stage run (see [`RunFiles`]); normalization is
//! runner-independent. The registry is open: the engine adds its own runners (the scripted
//! one) next to the built-in `codex_cli` and `command`.

pub mod artifacts;
pub mod codex;
pub mod command;
pub mod harness;
pub mod index;
pub mod normalize;
pub mod preflight;
pub mod process;
pub mod prompt;
pub mod request;
pub mod result;
pub mod scripted;

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

pub use artifacts::{report_path, stage_result_path, stage_results_dir, RunFiles, RunReport};
pub use normalize::{normalize, NormalizeError};
pub use process::{kill_orphaned_group, CancelToken, Takeover};
pub use request::{RequestKind, StageRequest};
pub use result::{ExitKind, FailureClass, RawResult, StageResult, TokenUsage};

use crate::config::{Config, RunnersConfig};
use crate::workspace::atomic;

pub use crate::model::{CODEX_RUNNER, COMMAND_RUNNER, RUNNER_NAMES};

/// Something that can carry out a stage request.
///
/// `run` never fails: every problem (missing binary, timeout, crash) is reported in the
/// returned [`RawResult`] so the router can route it. Implementations must honour `cancel`
/// promptly by ending the run with [`ExitKind::Interrupted`].
pub trait Runner: Send + Sync {
    /// The name requests and `stages.<stage>.runner` use to pick this runner.
    fn name(&self) -> &str;
    /// Carry out one stage request, blocking until the harness has ended.
    fn run(&self, req: &StageRequest, cancel: &CancelToken) -> RawResult;
}

/// A runner could not be set up from config.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("runners.env_allow has a bad glob: {0}")]
    EnvAllow(#[from] globset::Error),
    #[error("Unknown configured stage runner(s): {}", .0.join(", "))]
    UnknownStageRunners(Vec<String>),
}

/// Settings shared by every process runner.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Absolute workspace root: the harness's working directory.
    pub workspace_root: PathBuf,
    pub env_policy: process::EnvPolicy,
    /// Used when a request leaves `idle_timeout_seconds` unset; 0 = off.
    pub default_idle_timeout_seconds: u64,
    /// 0 = no stall detection.
    pub stall_timeout_seconds: u64,
    pub kill_grace_seconds: u64,
    pub output_cap_bytes: u64,
}

impl ProcessSettings {
    /// Read the `runners.*` keys every process runner shares.
    pub fn from_config(
        config: &RunnersConfig,
        workspace_root: &Path,
    ) -> Result<ProcessSettings, RunnerError> {
        Ok(ProcessSettings {
            workspace_root: std::path::absolute(workspace_root)
                .unwrap_or_else(|_| workspace_root.to_path_buf()),
            env_policy: process::EnvPolicy::new(&config.env_allow)?,
            default_idle_timeout_seconds: config.idle_timeout_seconds,
            stall_timeout_seconds: config.stall_timeout_seconds,
            kill_grace_seconds: config.kill_grace_seconds,
            output_cap_bytes: config.output_cap_bytes,
        })
    }

    /// Supervisor limits for one request; stall detection needs the harness's noise patterns.
    pub fn limits(&self, req: &StageRequest, harness: Option<harness::Harness>) -> process::Limits {
        let idle = req.effective_idle_timeout_seconds(self.default_idle_timeout_seconds);
        let stall = harness
            .filter(|_| self.stall_timeout_seconds > 0)
            .and_then(|h| h.noise_set())
            .map(|noise| process::Stall {
                after: std::time::Duration::from_secs(self.stall_timeout_seconds),
                noise,
            });
        process::Limits {
            timeout: std::time::Duration::from_secs(req.effective_timeout_seconds()),
            idle_timeout: (idle > 0).then(|| std::time::Duration::from_secs(idle)),
            kill_grace: std::time::Duration::from_secs(self.kill_grace_seconds),
            output_cap: self.output_cap_bytes,
            stall,
        }
    }
}

/// A harness process that ran (or could not be prepared) for one request.
pub(crate) struct Launched {
    pub files: RunFiles,
    pub run: process::ProcessRun,
    pub classified: artifacts::Classified,
    pub raw: RawResult,
}

/// What a process runner asks [`ProcessSettings::launch`] to run.
pub(crate) struct Invocation<'a> {
    /// The runner's name, as artifacts record it.
    pub runner: &'a str,
    /// The harness behind it, for stall detection and failure classes.
    pub harness: Option<harness::Harness>,
    pub argv: Vec<String>,
    pub prompt: &'a str,
    pub env_overlay: &'a BTreeMap<String, String>,
}

impl ProcessSettings {
    /// Write the prompt and invocation artifacts, then run the argv under the supervisor.
    /// `Err` is the ready failure result when the run could not even be prepared.
    pub(crate) fn launch(
        &self,
        req: &StageRequest,
        invocation: Invocation,
        cancel: &CancelToken,
    ) -> Result<Launched, Box<RawResult>> {
        let Invocation {
            runner,
            harness,
            argv,
            prompt,
            env_overlay,
        } = invocation;
        let files = RunFiles::for_request(req);
        let now = result::stamp::now();
        let prepared = atomic::create_dir_all(&req.run_dir)
            .and_then(|()| atomic::write_artifact(&files.prompt, prompt.as_bytes()))
            .and_then(|()| {
                let invocation =
                    artifacts::RunnerInvocation::new(req, runner, &argv, &files.prompt, now);
                artifacts::write_yaml(&files.invocation, &invocation)
            });
        if let Err(err) = prepared {
            return Err(Box::new(failed_dispatch(
                req,
                runner,
                &format!("cannot prepare the stage run: {err}"),
            )));
        }
        let spec = process::ProcessSpec {
            argv,
            cwd: req.cwd(&self.workspace_root).to_path_buf(),
            env: self.env_policy.environment(env_overlay),
            stdout_path: files.stdout.clone(),
            stderr_path: files.stderr.clone(),
            record_path: files.process_record.clone(),
            limits: self.limits(req, harness),
        };
        let run = process::run(&spec, cancel);
        let classified = artifacts::classify(&run.ending);
        let mut raw = artifacts::raw_from_run(req, runner, &run, &classified);
        raw.diagnosis = harness::supervisor_diagnosis(&run.ending, &spec.argv[0], harness);
        raw.stderr_path = Some(files.stderr.clone());
        Ok(Launched {
            files,
            run,
            classified,
            raw,
        })
    }
}

/// Names of the runners the config uses: the default, every `stages.<stage>.runner` and every
/// fallback runner.
pub fn configured_runner_names(config: &Config) -> Vec<&str> {
    let mut names: Vec<&str> = vec![config.runners.default_runner.trim()];
    names.extend(config.runners.fallback_runners.iter().map(|r| r.trim()));
    for stage in config.stages.values() {
        names.extend(stage.runner.as_deref().map(str::trim));
        names.extend(stage.fallback_runners.iter().flatten().map(|r| r.trim()));
    }
    names.retain(|n| !n.is_empty());
    names.sort_unstable();
    names.dedup();
    names
}

/// The executable a runner name starts, as configured (`None` for runners without one).
pub fn runner_executable(config: &Config, runner: &str) -> Option<(String, &'static str)> {
    match runner {
        CODEX_RUNNER => Some((
            config.runners.codex.command.clone(),
            "runners.codex.command",
        )),
        COMMAND_RUNNER => {
            let command = &config.runners.command;
            let argv = if command.argv.is_empty() {
                command
                    .preset
                    .as_deref()
                    .and_then(|p| command::preset(p, command.permission_default))
                    .unwrap_or_default()
            } else {
                command.argv.clone()
            };
            argv.first()
                .map(|program| (program.clone(), "runners.command"))
        }
        other => harness::Harness::from_name(other)
            .filter(|h| *h != harness::Harness::Codex)
            .map(|h| (h.name().to_string(), "runners.default_runner")),
    }
}

/// Whether `program` names a runnable file (a path, or a name found on `PATH`).
pub fn executable_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(program))))
        .unwrap_or(false)
}

/// The runners available to one daemon, and the dispatch rule between them (spec 08 §4).
pub struct Registry {
    runners: BTreeMap<String, Box<dyn Runner>>,
    default_runner: String,
}

impl Registry {
    /// An empty registry whose fallback runner is `default_runner` (blank = `codex_cli`).
    pub fn new(default_runner: &str) -> Registry {
        Registry {
            runners: BTreeMap::new(),
            default_runner: default_runner.trim().to_string(),
        }
    }

    /// `codex_cli`, `command` and the preset runners `claude`, `gemini`, `aider`, built from
    /// config; the harness runs in `workspace_root`.
    pub fn from_config(
        config: &RunnersConfig,
        workspace_root: &Path,
    ) -> Result<Registry, RunnerError> {
        let settings = ProcessSettings::from_config(config, workspace_root)?;
        let mut registry = Registry::new(&config.default_runner);
        registry.register(Box::new(codex::CodexRunner::new(
            config.codex.clone(),
            settings.clone(),
        )));
        for harness in [
            harness::Harness::Claude,
            harness::Harness::Gemini,
            harness::Harness::Aider,
        ] {
            registry.register(Box::new(command::CommandRunner::for_harness(
                harness,
                config.command.clone(),
                settings.clone(),
            )));
        }
        registry.register(Box::new(command::CommandRunner::new(
            config.command.clone(),
            settings,
        )));
        Ok(registry)
    }

    /// Add (or replace) a runner under its own name.
    /// The runners of a workspace's config: `codex_cli`, `command` (and its harness presets)
    /// and the built-in `scripted`.
    pub fn for_workspace(
        ws: &crate::workspace::Workspace,
        config: &Config,
    ) -> Result<Registry, RunnerError> {
        let mut registry = Registry::from_config(&config.runners, ws.root())?;
        registry.register(Box::new(scripted::ScriptedRunner::new(
            ws,
            &config.runners.scripted,
        )));
        Ok(registry)
    }

    pub fn register(&mut self, runner: Box<dyn Runner>) {
        self.runners.insert(runner.name().to_string(), runner);
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.runners.keys().map(String::as_str).collect()
    }

    /// The runner name a request resolves to: its own, else the default, else `codex_cli`.
    pub fn resolve_name<'a>(&'a self, req: &'a StageRequest) -> &'a str {
        self.resolve(req.runner_name.as_deref())
    }

    /// The runner a stage named `named` (or none) runs on.
    pub fn resolve<'a>(&'a self, named: Option<&'a str>) -> &'a str {
        named
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .or(Some(self.default_runner.as_str()).filter(|n| !n.is_empty()))
            .unwrap_or(CODEX_RUNNER)
    }

    /// Run a request on its runner. Never fails: an unknown runner, an invalid request or a
    /// panicking runner yields a `runner_error` result whose stderr file says what happened.
    /// Unlike the reference, the runner receives the request with `runner_name` set to the
    /// resolved name, so the prompt's `Runner Name:` line is truthful.
    pub fn dispatch(&self, req: &StageRequest, cancel: &CancelToken) -> RawResult {
        let name = self.resolve_name(req);
        if let Err(err) = req.validate() {
            return failed_dispatch(req, name, &format!("invalid stage request: {err}"));
        }
        let Some(runner) = self.runners.get(name) else {
            let available = if self.runners.is_empty() {
                "none".to_string()
            } else {
                self.names().join(", ")
            };
            return failed_dispatch(
                req,
                name,
                &format!("Unknown stage runner: {name}. Available: {available}"),
            );
        };
        // The runner (and so the prompt) sees the runner that actually runs, not a blank.
        let mut resolved = req.clone();
        resolved.runner_name = Some(name.to_string());
        match panic::catch_unwind(AssertUnwindSafe(|| runner.run(&resolved, cancel))) {
            Ok(raw) => raw,
            Err(payload) => {
                let what = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                failed_dispatch(req, name, &format!("stage runner {name} crashed: {what}"))
            }
        }
    }
}

/// A `runner_error` result for a stage that never ran, with `message` kept in its stderr file.
pub(crate) fn failed_dispatch(req: &StageRequest, runner_name: &str, message: &str) -> RawResult {
    tracing::warn!(request_id = %req.request_id, "{message}");
    let stderr = RunFiles::for_request(req).stderr;
    let written = atomic::create_dir_all(&req.run_dir)
        .and_then(|()| atomic::write_artifact(&stderr, format!("{message}\n").as_bytes()));
    let stderr_path = match written {
        Ok(()) => Some(stderr),
        Err(err) => {
            tracing::warn!(%err, "cannot record the dispatch failure");
            None
        }
    };
    RawResult::synthetic_error(req, runner_name, stderr_path)
}

/// Pre-start check: every non-blank `stages.<stage>.runner` must name an available runner.
pub fn validate_stage_runners(config: &Config, available: &[&str]) -> Result<(), RunnerError> {
    let mut unknown: Vec<String> = config
        .stages
        .values()
        .filter_map(|stage| stage.runner.as_deref().map(str::trim))
        .filter(|name| !name.is_empty() && !available.contains(name))
        .map(str::to_string)
        .collect();
    unknown.sort();
    unknown.dedup();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RunnerError::UnknownStageRunners(unknown))
    }
}

#[cfg(test)]
mod tests;
