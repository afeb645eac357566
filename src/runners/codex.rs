//! The `codex_cli` runner: drives `codex exec` (spec 08 §5).
//!
//! The harness writes its event stream to stdout and its final message to the
//! `--output-last-message` file; afterwards the raw stdout becomes the event log and the file
//! scanned for markers is the last message when there is one.

use std::fs;
use std::io;

use serde_json::{Map, Value};

use crate::config::{CodexConfig, Permission};
use crate::runners::artifacts::{
    self, classify, raw_from_run, RunFiles, RunnerCompletion, RunnerInvocation,
};
use crate::runners::process::{self, Ending, ProcessSpec};
use crate::runners::result::{RawResult, TokenUsage};
use crate::runners::{failed_dispatch, prompt, CancelToken, ProcessSettings, Runner, StageRequest};
use crate::runners::CODEX_RUNNER;
use crate::workspace::atomic;

/// The Codex CLI adapter.
pub struct CodexRunner {
    config: CodexConfig,
    settings: ProcessSettings,
}

impl CodexRunner {
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
        match self.permission(req) {
            Permission::Basic => argv.push("--full-auto".into()),
            Permission::Elevated => argv.extend([
                "-c".into(),
                "approval_policy=\"never\"".into(),
                "--sandbox".into(),
                "danger-full-access".into(),
            ]),
            Permission::Maximum => argv.push("--dangerously-bypass-approvals-and-sandbox".into()),
        }
        for item in &self.config.extra_config {
            argv.extend(["-c".into(), item.clone()]);
        }
        argv.extend([
            "--cd".into(),
            self.settings.workspace_root.display().to_string(),
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
        let files = RunFiles::for_request(req);
        let now = crate::time::now();
        let prompt = prompt::render(req);
        let argv = self.command_line(req, &prompt);
        let prepared = atomic::create_dir_all(&req.run_dir)
            .and_then(|()| atomic::write_atomic(&files.prompt, prompt.as_bytes()))
            .and_then(|()| {
                let invocation = RunnerInvocation::new(req, CODEX_RUNNER, &argv, &files.prompt, now);
                artifacts::write_yaml(&files.invocation, &invocation)
            });
        if let Err(err) = prepared {
            return failed_dispatch(req, CODEX_RUNNER, &format!("cannot prepare the stage run: {err}"));
        }

        let spec = ProcessSpec {
            argv: argv.clone(),
            cwd: self.settings.workspace_root.clone(),
            env: self.settings.env_policy.environment(&self.config.env),
            stdout_path: files.stdout.clone(),
            stderr_path: files.stderr.clone(),
            record_path: files.process_record.clone(),
            limits: self.settings.limits(req),
        };
        let run = process::run(&spec, cancel);
        let classified = classify(&run.ending);
        let mut raw = raw_from_run(req, CODEX_RUNNER, &run, &classified);
        raw.stderr_path = Some(files.stderr.clone());

        if run.ending == Ending::NotFound {
            raw.stdout_path = files.stdout.exists().then(|| files.stdout.clone());
        } else {
            if fs::rename(&files.stdout, &files.events).is_ok() {
                raw.event_log_path = Some(files.events.clone());
                raw.token_usage = fs::read(&files.events)
                    .ok()
                    .and_then(|bytes| token_usage_from_events(&String::from_utf8_lossy(&bytes)));
            }
            raw.stdout_path = materialize_stdout(&files).unwrap_or_else(|err| {
                tracing::warn!(%err, "cannot materialize the harness output");
                None
            });
        }

        let completion = RunnerCompletion::new(req, &raw, &classified, &argv);
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
    let bytes = fs::read(source)?;
    atomic::write_atomic(&files.stdout, &bytes).map_err(io::Error::other)?;
    Ok(Some(files.stdout.clone()))
}

/// Token usage from a Codex event log (§9): the `token_count` event with the largest total,
/// the later one on ties; `None` when no line is recognised.
pub fn token_usage_from_events(text: &str) -> Option<TokenUsage> {
    let mut best: Option<TokenUsage> = None;
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(usage) = usage_of(&event) else {
            continue;
        };
        if best.is_none_or(|b| usage.total_tokens >= b.total_tokens) {
            best = Some(usage);
        }
    }
    best
}

fn usage_of(event: &Map<String, Value>) -> Option<TokenUsage> {
    let count = match event.get("type")?.as_str()? {
        "token_count" => event,
        "event_msg" => {
            let payload = event.get("payload")?.as_object()?;
            (payload.get("type")?.as_str()? == "token_count").then_some(payload)?
        }
        _ => return None,
    };
    let info = count.get("info")?.as_object()?;
    let usage = match info.get("total_token_usage") {
        Some(Value::Object(usage)) => usage,
        _ => info.get("last_token_usage")?.as_object()?,
    };
    if !usage.contains_key("input_tokens") || !usage.contains_key("output_tokens") {
        return None;
    }
    // The first key present decides; a value of the wrong type means the default.
    let first = |keys: &[&str], default: u64| -> u64 {
        keys.iter()
            .find_map(|k| usage.get(*k))
            .and_then(integer)
            .unwrap_or(default)
    };
    let input = first(&["input_tokens"], 0);
    let output = first(&["output_tokens"], 0);
    Some(TokenUsage {
        input_tokens: input,
        cached_input_tokens: first(&["cached_input_tokens"], 0),
        output_tokens: output,
        thinking_tokens: first(
            &["reasoning_output_tokens", "thinking_tokens", "reasoning_tokens"],
            0,
        ),
        total_tokens: first(&["total_tokens"], input.saturating_add(output)),
    })
}

/// A non-negative integer, or an integral float; anything else is `None`.
pub(crate) fn integer(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f >= 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}
