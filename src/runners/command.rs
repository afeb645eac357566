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
//! `claude` → [`harness::claude::argv`] at the stage's permission level (stream-json events);
//! `gemini` → [`harness::gemini::argv`] at the stage's permission level (stream-json events);
//! `aider` → `aider --yes-always --no-auto-commits --message {prompt} [--model {model}]`,
//! output `text`. A non-empty `argv` is used as written, with `output` from config.

use std::collections::BTreeMap;

use crate::config::{CommandOutput, CommandRunnerConfig, Permission};
use crate::runners::artifacts::{self, RunFiles, RunnerCompletion};
use crate::runners::harness::{self, Harness};
use crate::runners::process::Ending;
use crate::runners::result::RawResult;
use crate::runners::{
    failed_dispatch, prompt, CancelToken, Invocation, ProcessSettings, Runner, StageRequest,
    COMMAND_RUNNER,
};

/// The argv template of a named preset at a permission level.
pub fn preset(name: &str, level: Permission) -> Option<Vec<String>> {
    Some(match Harness::from_name(name)? {
        Harness::Claude => harness::claude::argv(level),
        Harness::Gemini => harness::gemini::argv(level),
        Harness::Aider => harness::aider::argv(level),
        Harness::Codex => return None,
    })
}

/// Runs a harness CLI from an argv template: the `command` runner (configured `argv`, or a
/// `preset`) and the named preset runners `claude`, `gemini` and `aider`.
pub struct CommandRunner {
    name: String,
    config: CommandRunnerConfig,
    /// The harness whose adapter reads the outputs; `None` for a plain text command.
    harness: Option<Harness>,
    /// The argv template comes from the harness, not from `config.argv`.
    harness_argv: bool,
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
    /// The `command` runner: `runners.command.argv`, else its `preset`.
    pub fn new(config: CommandRunnerConfig, settings: ProcessSettings) -> CommandRunner {
        let preset = config.preset.as_deref().and_then(Harness::from_name);
        let harness_argv = config.argv.is_empty() && preset.is_some();
        let harness = if harness_argv {
            preset
        } else {
            (config.output == CommandOutput::ClaudeJson).then_some(Harness::Claude)
        };
        CommandRunner {
            name: COMMAND_RUNNER.to_string(),
            config,
            harness,
            harness_argv,
            settings,
        }
    }

    /// The runner named after `harness` (`claude`, `gemini`, `aider`), with the permission
    /// levels and env of `runners.command`.
    pub fn for_harness(
        harness: Harness,
        config: CommandRunnerConfig,
        settings: ProcessSettings,
    ) -> CommandRunner {
        CommandRunner {
            name: harness.name().to_string(),
            config,
            harness: Some(harness),
            harness_argv: true,
            settings,
        }
    }

    /// Permission level for a request: by stage, else the default.
    pub fn permission(&self, req: &StageRequest) -> Permission {
        self.config
            .permission_by_stage
            .get(&req.stage)
            .copied()
            .unwrap_or(self.config.permission_default)
    }

    /// The argv template in effect at `level`.
    pub fn template(&self, level: Permission) -> Vec<String> {
        match self.harness.filter(|_| self.harness_argv) {
            Some(harness) => preset(harness.name(), level).unwrap_or_default(),
            None => self.config.argv.clone(),
        }
    }

    /// The argv for one request, or `None` when nothing is configured.
    pub fn command_line(&self, req: &StageRequest, prompt: &str) -> Option<Vec<String>> {
        let files = RunFiles::for_request(req);
        let values = Values {
            prompt,
            files: &files,
            model: req.model(),
            req,
            workspace: req.cwd(&self.settings.workspace_root).display().to_string(),
        };
        let mut argv = Vec::new();
        for element in self.template(self.permission(req)) {
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

    /// The harness's own env at the request's level, with `runners.command.env` on top.
    fn env_overlay(&self, req: &StageRequest) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self
            .harness
            .filter(|_| self.harness_argv)
            .map(|h| h.env(self.permission(req)).into_iter().collect())
            .unwrap_or_default();
        env.extend(self.config.env.clone());
        env
    }
}

impl Runner for CommandRunner {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, req: &StageRequest, cancel: &CancelToken) -> RawResult {
        let prompt = prompt::render(req);
        let Some(argv) = self.command_line(req, &prompt) else {
            return failed_dispatch(
                req,
                &self.name,
                "the command runner has no command: set runners.command.argv or runners.command.preset",
            );
        };
        let env_overlay = self.env_overlay(req);
        let invocation = Invocation {
            runner: &self.name,
            harness: self.harness,
            argv: argv.clone(),
            prompt: &prompt,
            env_overlay: &env_overlay,
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
        raw.stdout_path = Some(files.stdout.clone());

        if run.ending != Ending::NotFound {
            match self.harness {
                Some(harness) => {
                    let report = harness::read_files(harness, &files, raw.exit_code);
                    harness::apply_report(report, &files, &mut raw, &mut classified);
                }
                None => {
                    if files.last_message.is_file() {
                        raw.stdout_path = Some(files.last_message.clone());
                    }
                    raw.last_line = [&files.stderr, &files.stdout].into_iter().find_map(|path| {
                        harness::last_line(
                            &crate::workspace::atomic::read_regular_string(path).ok()?,
                        )
                    });
                }
            }
        }

        let completion = RunnerCompletion::new(req, &raw, &classified, &argv, &prompt);
        if let Err(err) = artifacts::write_yaml(&files.completion, &completion) {
            tracing::warn!(%err, "cannot write the runner completion record");
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::runners::process::EnvPolicy;
    use crate::runners::request::tests::sample;
    use std::path::{Path, PathBuf};

    fn runner(config: CommandRunnerConfig) -> CommandRunner {
        let settings = ProcessSettings {
            workspace_root: PathBuf::from("/ws"),
            env_policy: EnvPolicy::new(&[]).unwrap(),
            default_idle_timeout_seconds: 0,
            stall_timeout_seconds: 0,
            kill_grace_seconds: 1,
            output_cap_bytes: 1024,
        };
        CommandRunner::new(config, settings)
    }

    #[test]
    fn the_model_group_is_dropped_without_a_model() {
        let r = runner(CommandRunnerConfig {
            argv: ["h", "-p", "{prompt}", "[--model {model}]"]
                .map(String::from)
                .to_vec(),
            ..CommandRunnerConfig::default()
        });
        let mut req = sample(Stage::Builder, Path::new("/ws/millrace-agents/runs/r"));
        assert_eq!(
            r.command_line(&req, "P {model}").unwrap(),
            ["h", "-p", "P {model}"]
        );
        req.model_name = Some("sonnet".into());
        assert_eq!(
            r.command_line(&req, "P").unwrap(),
            ["h", "-p", "P", "--model", "sonnet"]
        );
    }

    #[test]
    fn preset_runners_take_their_argv_from_the_harness_at_the_stage_level() {
        let mut config = CommandRunnerConfig {
            argv: vec!["ignored".into()],
            ..CommandRunnerConfig::default()
        };
        config
            .permission_by_stage
            .insert(Stage::Checker, Permission::Maximum);
        for h in [Harness::Claude, Harness::Gemini, Harness::Aider] {
            let r = CommandRunner::for_harness(h, config.clone(), runner(config.clone()).settings);
            assert_eq!(r.name(), h.name());
            let builder = sample(Stage::Builder, Path::new("/ws/millrace-agents/runs/r"));
            assert_eq!(
                r.template(r.permission(&builder)),
                preset(h.name(), Permission::Basic).unwrap()
            );
            let checker = sample(Stage::Checker, Path::new("/ws/millrace-agents/runs/r"));
            assert_eq!(r.permission(&checker), Permission::Maximum);
            assert_eq!(r.command_line(&builder, "P").unwrap()[0], h.name());
        }
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
