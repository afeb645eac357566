//! The `codex_cli` runner: drives `codex exec` (spec 08 §5).
//!
//! The harness writes its event stream to stdout and its final message to the
//! `--output-last-message` file; afterwards the raw stdout becomes the event log and the file
//! scanned for markers is the last message when there is one.

use std::fs;
use std::io;

use serde_json::Value;

use crate::config::{CodexConfig, Permission};
use crate::runners::artifacts::{self, RunFiles, RunnerCompletion};
use crate::runners::harness;
use crate::runners::process::Ending;
use crate::runners::result::RawResult;
use crate::runners::CODEX_RUNNER;
use crate::runners::{prompt, CancelToken, Invocation, ProcessSettings, Runner, StageRequest};
use crate::workspace::atomic;

/// The Codex CLI adapter.
pub struct CodexRunner {
    config: CodexConfig,
    settings: ProcessSettings,
}

impl CodexRunner {
    /// A runner for `runners.codex` settings.
    pub fn new(config: CodexConfig, settings: ProcessSettings) -> CodexRunner {
        CodexRunner { config, settings }
    }

    /// Permission level for a request: by stage, else by model, else the default (§5.3).
    pub fn permission(&self, req: &StageRequest) -> Permission {
        self.config
            .permission_by_stage
            .get(&req.stage)
            .or_else(|| {
                req.model()
                    .and_then(|model| self.config.permission_by_model.get(model))
            })
            .copied()
            .unwrap_or(self.config.permission_default)
    }

    /// The full argv, in the order of spec 08 §5.2, with `prompt` as the last element.
    pub fn command_line(&self, req: &StageRequest, prompt: &str) -> Vec<String> {
        let files = RunFiles::for_request(req);
        let mut argv = vec![self.config.command.clone()];
        argv.extend(self.config.args.iter().cloned());
        if let Some(profile) = self.config.profile.as_deref().filter(|p| !p.is_empty()) {
            argv.extend(["--profile".into(), profile.to_string()]);
        }
        if self.config.skip_git_repo_check {
            argv.push("--skip-git-repo-check".into());
        }
        if let Some(model) = req.model() {
            argv.extend(["--model".into(), model.to_string()]);
        }
        argv.extend(harness::codex::permission_flags(self.permission(req)));
        for item in &self.config.extra_config {
            argv.extend(["-c".into(), item.clone()]);
        }
        argv.extend([
            "--cd".into(),
            req.cwd(&self.settings.workspace_root).display().to_string(),
            "--json".into(),
            "--output-last-message".into(),
            files.last_message.display().to_string(),
            prompt.to_string(),
        ]);
        argv
    }
}

impl Runner for CodexRunner {
    fn name(&self) -> &str {
        CODEX_RUNNER
    }

    fn run(&self, req: &StageRequest, cancel: &CancelToken) -> RawResult {
        let prompt = prompt::render(req);
        let argv = self.command_line(req, &prompt);
        let invocation = Invocation {
            runner: CODEX_RUNNER,
            harness: Some(harness::Harness::Codex),
            argv: argv.clone(),
            prompt: &prompt,
            env_overlay: &self.config.env,
        };
        let launched = match self.settings.launch(req, invocation, cancel) {
            Ok(launched) => launched,
            Err(raw) => return *raw,
        };
        let crate::runners::Launched {
            files,
            run,
            mut classified,
            mut raw,
        } = launched;
        if run.ending == Ending::NotFound {
            raw.stdout_path = files.stdout.exists().then(|| files.stdout.clone());
        } else {
            if fs::rename(&files.stdout, &files.events).is_ok() {
                raw.event_log_path = Some(files.events.clone());
            }
            let read = |path: &std::path::Path| {
                atomic::read_regular(path)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .ok()
            };
            let events = read(&files.events).unwrap_or_default();
            let stderr = read(&files.stderr).unwrap_or_default();
            let last_message = read(&files.last_message);
            let report = harness::codex::read(&harness::Outputs {
                exit_code: raw.exit_code,
                stdout: &events,
                stderr: &stderr,
                last_message: last_message.as_deref(),
            });
            harness::apply_report(report, &files, &mut raw, &mut classified);
            raw.stdout_path = materialize_stdout(&files).unwrap_or_else(|err| {
                tracing::warn!(%err, "cannot materialize the harness output");
                None
            });
        }

        let completion = RunnerCompletion::new(req, &raw, &classified, &argv, &prompt);
        if let Err(err) = artifacts::write_yaml(&files.completion, &completion) {
            tracing::warn!(%err, "cannot write the runner completion record");
        }
        raw
    }
}

/// §5.4 step 9: the last message if the harness wrote one, else the event log.
fn materialize_stdout(files: &RunFiles) -> io::Result<Option<std::path::PathBuf>> {
    let source = if files.last_message.is_file() {
        &files.last_message
    } else if files.events.is_file() {
        &files.events
    } else {
        return Ok(None);
    };
    let bytes = atomic::read_regular(source)?;
    atomic::write_artifact(&files.stdout, &bytes).map_err(io::Error::other)?;
    Ok(Some(files.stdout.clone()))
}

/// A non-negative integer, or an integral float; anything else is `None`.
pub(crate) fn integer(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f >= 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::runners::process::EnvPolicy;
    use crate::runners::request::tests::sample;
    use std::path::{Path, PathBuf};

    const RUN_DIR: &str = "/srv/ws/millrace-agents/runs/run-1";

    fn runner(config: CodexConfig) -> CodexRunner {
        let settings = ProcessSettings {
            workspace_root: PathBuf::from("/srv/ws"),
            env_policy: EnvPolicy::new(&["*".into()]).unwrap(),
            default_idle_timeout_seconds: 0,
            stall_timeout_seconds: 0,
            kill_grace_seconds: 1,
            output_cap_bytes: 1024,
        };
        CodexRunner::new(config, settings)
    }

    fn tail(req: &StageRequest) -> Vec<String> {
        vec![
            "--cd".into(),
            "/srv/ws".into(),
            "--json".into(),
            "--output-last-message".into(),
            format!("{RUN_DIR}/runner_last_message.{}.txt", req.request_id),
            "PROMPT".into(),
        ]
    }

    #[test]
    fn default_config_uses_the_sandboxed_basic_level() {
        let req = sample(Stage::Builder, Path::new(RUN_DIR));
        let got = runner(CodexConfig::default()).command_line(&req, "PROMPT");
        let mut want = vec![
            "codex".to_string(),
            "exec".into(),
            "--skip-git-repo-check".into(),
        ];
        want.extend(harness::codex::permission_flags(Permission::Basic));
        want.extend(tail(&req));
        assert_eq!(got, want);
    }

    #[test]
    fn spec_example_profile_model_elevated_extra_config() {
        let mut req = sample(Stage::Checker, Path::new(RUN_DIR));
        req.model_name = Some("gpt-5".into());
        let config = CodexConfig {
            profile: Some("fast".into()),
            permission_by_model: [("gpt-5".to_string(), Permission::Elevated)].into(),
            extra_config: vec!["model_reasoning_effort=\"high\"".into()],
            ..CodexConfig::default()
        };
        let got = runner(config).command_line(&req, "PROMPT");
        let mut want: Vec<String> = [
            "codex",
            "exec",
            "--profile",
            "fast",
            "--skip-git-repo-check",
            "--model",
            "gpt-5",
        ]
        .map(String::from)
        .to_vec();
        want.extend(harness::codex::permission_flags(Permission::Elevated));
        want.extend(["-c".into(), "model_reasoning_effort=\"high\"".into()]);
        want.extend(tail(&req));
        assert_eq!(got, want);
    }

    #[test]
    fn stage_permission_beats_model_permission_and_flags_are_optional() {
        let mut req = sample(Stage::Fixer, Path::new(RUN_DIR));
        req.model_name = Some("gpt-5".into());
        let config = CodexConfig {
            command: "/opt/codex".into(),
            args: vec![],
            skip_git_repo_check: false,
            permission_by_stage: [(Stage::Fixer, Permission::Basic)].into(),
            permission_by_model: [("gpt-5".to_string(), Permission::Elevated)].into(),
            ..CodexConfig::default()
        };
        let r = runner(config.clone());
        assert_eq!(
            r.command_line(&req, "PROMPT"),
            [
                vec!["/opt/codex".to_string(), "--model".into(), "gpt-5".into()],
                harness::codex::permission_flags(Permission::Basic),
                tail(&req)
            ]
            .concat()
        );
        // Without a model, the by-model table is not consulted.
        let mut other = sample(Stage::Builder, Path::new(RUN_DIR));
        other.model_name = Some("  ".into());
        assert_eq!(r.permission(&other), Permission::Basic);
        other.model_name = Some("gpt-5".into());
        assert_eq!(r.permission(&other), Permission::Elevated);
    }
}
