//! The `command` runner: any harness CLI driven from an argv template.
//!
//! Placeholders, replaced anywhere inside an argv element (in one pass, so text substituted
//! in is never expanded again; unknown `{names}` stay as written):
//!
//! | placeholder | value |
//! |---|---|
//! | `{prompt}` | the full prompt text |
//! | `{prompt_file}` | `runner_prompt.<rid>.md` (same text, for harnesses that read a file) |
//! | `{last_message_file}` | `runner_last_message.<rid>.txt`; if the harness writes it, it is scanned instead of stdout |
//! | `{model}` | the request's model |
//! | `{workspace}`, `{run_dir}`, `{stage}`, `{request_id}` | as named |
//!
//! **Optional groups.** An element wrapped in square brackets, e.g. `"[--model {model}]"`, is a
//! group: its words (split on whitespace) become separate argv elements, and the whole group is
//! dropped when it uses `{model}` and the request has no model. `"[--model={model}]"` gives a
//! single `--model=<m>` element.
//!
//! **Presets** (`runners.command.preset`, used when `argv` is empty):
//! `claude` → `claude -p {prompt} --output-format json [--model {model}]`, output `claude_json`;
//! `gemini` → `gemini -p {prompt} [-m {model}]`, output `text`;
//! `aider` → `aider --yes-always --no-auto-commits --message {prompt} [--model {model}]`,
//! output `text`. A non-empty `argv` is used as written, with `output` from config.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::{CommandOutput, CommandRunnerConfig};
use crate::runners::artifacts::{self, CompletionFailure, RunFiles, RunnerCompletion};
use crate::runners::codex::integer;
use crate::runners::process::{self, Ending};
use crate::runners::result::{ExitKind, RawResult, TokenUsage};
use crate::runners::{
    failed_dispatch, prompt, CancelToken, ProcessSettings, Runner, StageRequest, COMMAND_RUNNER,
};
use crate::workspace::atomic;

/// The argv template and output format of a named preset.
pub fn preset(name: &str) -> Option<(Vec<String>, CommandOutput)> {
    let (argv, output): (&[&str], CommandOutput) = match name {
        "claude" => (
            &[
                "claude",
                "-p",
                "{prompt}",
                "--output-format",
                "json",
                "[--model {model}]",
            ],
            CommandOutput::ClaudeJson,
        ),
        "gemini" => (
            &["gemini", "-p", "{prompt}", "[-m {model}]"],
            CommandOutput::Text,
        ),
        "aider" => (
            &[
                "aider",
                "--yes-always",
                "--no-auto-commits",
                "--message",
                "{prompt}",
                "[--model {model}]",
            ],
            CommandOutput::Text,
        ),
        _ => return None,
    };
    Some((argv.iter().map(|s| s.to_string()).collect(), output))
}

/// Runs the configured command line for every stage.
pub struct CommandRunner {
    config: CommandRunnerConfig,
    settings: ProcessSettings,
}

struct Values<'a> {
    prompt: &'a str,
    files: &'a RunFiles,
    model: Option<&'a str>,
    req: &'a StageRequest,
    workspace: String,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<Option<String>> {
        Some(match name {
            "prompt" => Some(self.prompt.to_string()),
            "prompt_file" => Some(self.files.prompt.display().to_string()),
            "last_message_file" => Some(self.files.last_message.display().to_string()),
            "model" => self.model.map(str::to_string),
            "workspace" => Some(self.workspace.clone()),
            "run_dir" => Some(self.req.run_dir.display().to_string()),
            "stage" => Some(self.req.stage.to_string()),
            "request_id" => Some(self.req.request_id.clone()),
            _ => return None,
        })
    }

    /// Substitute placeholders in one pass; `None` when a used value is missing.
    fn expand(&self, template: &str) -> Option<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let known = after
                .find('}')
                .and_then(|close| self.get(&after[..close]).map(|value| (close, value)));
            match known {
                Some((close, value)) => {
                    out.push_str(&value?);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Some(out)
    }
}

impl CommandRunner {
    /// A runner for `runners.command` settings.
    pub fn new(config: CommandRunnerConfig, settings: ProcessSettings) -> CommandRunner {
        CommandRunner { config, settings }
    }

    /// The argv template and output format in effect.
    pub fn template(&self) -> (Vec<String>, CommandOutput) {
        if self.config.argv.is_empty() {
            if let Some(found) = self.config.preset.as_deref().and_then(preset) {
                return found;
            }
        }
        (self.config.argv.clone(), self.config.output)
    }

    /// The argv for one request, or `None` when nothing is configured.
    pub fn command_line(&self, req: &StageRequest, prompt: &str) -> Option<Vec<String>> {
        let files = RunFiles::for_request(req);
        let values = Values {
            prompt,
            files: &files,
            model: req.model(),
            req,
            workspace: self.settings.workspace_root.display().to_string(),
        };
        let mut argv = Vec::new();
        for element in self.template().0 {
            let group = element.strip_prefix('[').and_then(|e| e.strip_suffix(']'));
            match group {
                Some(inner) => {
                    let words: Option<Vec<String>> =
                        inner.split_whitespace().map(|w| values.expand(w)).collect();
                    argv.extend(words.unwrap_or_default());
                }
                None => argv.push(values.expand(&element).unwrap_or_default()),
            }
        }
        (!argv.is_empty()).then_some(argv)
    }
}

impl Runner for CommandRunner {
    fn name(&self) -> &str {
        COMMAND_RUNNER
    }

    fn run(&self, req: &StageRequest, cancel: &CancelToken) -> RawResult {
        let prompt = prompt::render(req);
        let Some(argv) = self.command_line(req, &prompt) else {
            return failed_dispatch(
                req,
                COMMAND_RUNNER,
                "the command runner has no command: set runners.command.argv or runners.command.preset",
            );
        };
        let launched = match self.settings.launch(
            req,
            COMMAND_RUNNER,
            argv.clone(),
            &prompt,
            &self.config.env,
            cancel,
        ) {
            Ok(launched) => launched,
            Err(raw) => return *raw,
        };
        let crate::runners::Launched {
            files,
            run,
            mut classified,
            mut raw,
        } = launched;
        raw.stdout_path = Some(files.stdout.clone());

        if run.ending != Ending::NotFound {
            match self.template().1 {
                CommandOutput::Text => {
                    if files.last_message.is_file() {
                        raw.stdout_path = Some(files.last_message.clone());
                    }
                }
                CommandOutput::ClaudeJson => match read_claude_json(&files) {
                    Ok(answer) => {
                        raw.stdout_path = Some(files.last_message.clone());
                        raw.token_usage = answer.usage;
                        if answer.is_error && raw.exit_kind == ExitKind::Completed {
                            raw.exit_kind = ExitKind::ProviderError;
                            classified.exit_kind = ExitKind::ProviderError;
                            classified.failure = Some(CompletionFailure::ProviderFailure);
                            classified
                                .notes
                                .push("harness reported an error result".into());
                        }
                    }
                    Err(note) => {
                        process::append_line(&files.stderr, &note);
                        classified.notes.push(note);
                    }
                },
            }
        }

        let completion = RunnerCompletion::new(req, &raw, &classified, &argv);
        if let Err(err) = artifacts::write_yaml(&files.completion, &completion) {
            tracing::warn!(%err, "cannot write the runner completion record");
        }
        raw
    }
}

/// What a Claude Code JSON result gave us.
struct ClaudeAnswer {
    usage: Option<TokenUsage>,
    is_error: bool,
}

/// Parse the harness's JSON result, write its `result` text to the last-message file.
fn read_claude_json(files: &RunFiles) -> Result<ClaudeAnswer, String> {
    let text = fs::read(&files.stdout)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| format!("cannot read harness stdout: {e}"))?;
    // One JSON object is expected; tolerate log lines before it by taking the last object line.
    let object = serde_json::from_str::<Value>(text.trim())
        .ok()
        .filter(Value::is_object)
        .or_else(|| {
            text.lines().rev().find_map(|line| {
                serde_json::from_str::<Value>(line.trim())
                    .ok()
                    .filter(Value::is_object)
            })
        })
        .ok_or_else(|| "harness stdout holds no JSON result object".to_string())?;
    let result = object
        .get("result")
        .and_then(Value::as_str)
        .ok_or_else(|| "harness JSON result has no `result` text".to_string())?;
    let last_message: PathBuf = files.last_message.clone();
    atomic::write_artifact(&last_message, result.as_bytes())
        .map_err(|e| format!("cannot write the last message: {e}"))?;
    let usage = object.get("usage").and_then(Value::as_object).map(|u| {
        let field = |k: &str| u.get(k).and_then(integer).unwrap_or(0);
        let input = field("input_tokens");
        let cached = field("cache_read_input_tokens");
        let output = field("output_tokens");
        TokenUsage {
            input_tokens: input,
            cached_input_tokens: cached,
            output_tokens: output,
            thinking_tokens: 0,
            // Claude counts cache reads apart from `input_tokens`, so they add to the total.
            total_tokens: input.saturating_add(cached).saturating_add(output),
        }
    });
    Ok(ClaudeAnswer {
        usage,
        is_error: object.get("is_error").and_then(Value::as_bool) == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::runners::process::EnvPolicy;
    use crate::runners::request::tests::sample;
    use std::path::Path;

    fn runner(config: CommandRunnerConfig) -> CommandRunner {
        let settings = ProcessSettings {
            workspace_root: PathBuf::from("/ws"),
            env_policy: EnvPolicy::new(&[]).unwrap(),
            default_idle_timeout_seconds: 0,
            kill_grace_seconds: 1,
            output_cap_bytes: 1024,
        };
        CommandRunner::new(config, settings)
    }

    #[test]
    fn presets_drop_the_model_group_without_a_model() {
        let r = runner(CommandRunnerConfig {
            preset: Some("claude".into()),
            ..CommandRunnerConfig::default()
        });
        assert_eq!(r.template().1, CommandOutput::ClaudeJson);
        let mut req = sample(Stage::Builder, Path::new("/ws/millrace-agents/runs/r"));
        assert_eq!(
            r.command_line(&req, "P {model}").unwrap(),
            ["claude", "-p", "P {model}", "--output-format", "json"]
        );
        req.model_name = Some("sonnet".into());
        assert_eq!(
            r.command_line(&req, "P").unwrap(),
            [
                "claude",
                "-p",
                "P",
                "--output-format",
                "json",
                "--model",
                "sonnet"
            ]
        );
        let gemini = runner(CommandRunnerConfig {
            preset: Some("gemini".into()),
            ..CommandRunnerConfig::default()
        });
        assert_eq!(
            gemini.command_line(&req, "P").unwrap(),
            ["gemini", "-p", "P", "-m", "sonnet"]
        );
        let aider = runner(CommandRunnerConfig {
            preset: Some("aider".into()),
            ..CommandRunnerConfig::default()
        });
        assert_eq!(
            aider.command_line(&req, "P").unwrap(),
            [
                "aider",
                "--yes-always",
                "--no-auto-commits",
                "--message",
                "P",
                "--model",
                "sonnet"
            ]
        );
    }

    #[test]
    fn every_placeholder_expands_once() {
        let r = runner(CommandRunnerConfig {
            argv: [
                "h",
                "--w={workspace}",
                "{run_dir}/{stage}/{request_id}",
                "{prompt_file}",
                "{last_message_file}",
                "{unknown}",
                "[--model={model}]",
                "{prompt}",
            ]
            .map(String::from)
            .to_vec(),
            ..CommandRunnerConfig::default()
        });
        let req = sample(Stage::Checker, Path::new("/ws/millrace-agents/runs/r"));
        let rid = &req.request_id;
        assert_eq!(
            r.command_line(&req, "say {workspace}").unwrap(),
            [
                "h".to_string(),
                "--w=/ws".into(),
                format!("/ws/millrace-agents/runs/r/checker/{rid}"),
                format!("/ws/millrace-agents/runs/r/runner_prompt.{rid}.md"),
                format!("/ws/millrace-agents/runs/r/runner_last_message.{rid}.txt"),
                "{unknown}".into(),
                "say {workspace}".into(),
            ]
        );
        assert_eq!(
            runner(CommandRunnerConfig::default()).command_line(&req, "P"),
            None
        );
    }
}
