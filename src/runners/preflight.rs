//! Checks before the first stage burns: is every configured harness installed, and does its
//! cheap non-model check (`--version`, `codex login status`) pass? Run by `doctor` and at
//! daemon start; a problem is reported, never fatal (the first stage would pause on it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::runners::harness::{last_line, FailureKind, Harness, Outputs};
use crate::runners::process::{self, CancelToken, Ending, EnvPolicy, Limits, ProcessSpec};
use crate::runners::{configured_runner_names, executable_exists, runner_executable};

/// Longest a check may take: version commands answer in well under a second.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// One configured runner that is not ready.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub runner: String,
    pub program: String,
    /// The config key that names the program.
    pub config_key: &'static str,
    pub failure_class: FailureKind,
    /// What went wrong, in the harness's own words where it printed any.
    pub message: String,
    pub fix: String,
}

/// The harness behind a configured runner name, if millrace has an adapter for it.
fn harness_of(config: &Config, runner: &str) -> Option<Harness> {
    if runner == crate::runners::COMMAND_RUNNER {
        let command = &config.runners.command;
        return command
            .preset
            .as_deref()
            .filter(|_| command.argv.is_empty())
            .and_then(Harness::from_name);
    }
    Harness::for_runner(runner)
}

/// Check every runner the config uses.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for runner in configured_runner_names(config) {
        let Some((program, config_key)) = runner_executable(config, runner) else {
            continue;
        };
        let harness = harness_of(config, runner);
        let problem = |failure_class: FailureKind, message: String| Problem {
            runner: runner.to_string(),
            program: program.clone(),
            config_key,
            failure_class,
            fix: harness
                .and_then(|h| h.fix(failure_class))
                .unwrap_or_else(|| format!("check {config_key} in millrace.yaml")),
            message,
        };
        if !executable_exists(&program) {
            problems.push(problem(
                FailureKind::NotInstalled,
                format!("`{program}` ({config_key}) is not installed or not on PATH"),
            ));
            continue;
        }
        let Some(harness) = harness else {
            continue;
        };
        for mut argv in harness.preflight() {
            if let Some(first) = argv.first_mut() {
                first.clone_from(&program);
            }
            if let Err((kind, message)) = run_check(config, harness, &argv) {
                problems.push(problem(kind, message));
                break;
            }
        }
    }
    problems
}

/// Run one check under the supervisor, in a scratch folder outside the workspace (read-only
/// commands like `doctor` must not write into it).
fn run_check(
    config: &Config,
    harness: Harness,
    argv: &[String],
) -> Result<(), (FailureKind, String)> {
    let shown = argv.join(" ");
    let scratch = tempfile::tempdir().map_err(|e| {
        (
            FailureKind::HarnessError,
            format!("cannot run `{shown}`: {e}"),
        )
    })?;
    let policy = EnvPolicy::new(&config.runners.env_allow)
        .map_err(|e| (FailureKind::HarnessError, e.to_string()))?;
    let mut overlay: BTreeMap<String, String> = harness
        .env(crate::config::Permission::Basic)
        .into_iter()
        .collect();
    if harness == Harness::Codex {
        overlay.extend(config.runners.codex.env.clone());
    } else {
        overlay.extend(config.runners.command.env.clone());
    }
    let spec = ProcessSpec {
        argv: argv.to_vec(),
        cwd: scratch.path().to_path_buf(),
        env: policy.environment(&overlay),
        stdout_path: scratch.path().join("stdout"),
        stderr_path: scratch.path().join("stderr"),
        record_path: scratch.path().join("process.yaml"),
        limits: Limits {
            timeout: CHECK_TIMEOUT,
            idle_timeout: None,
            kill_grace: Duration::from_secs(1),
            output_cap: 64 * 1024,
            stall: None,
        },
    };
    let run = process::run(&spec, &CancelToken::new());
    let read = |path: &std::path::Path| {
        crate::workspace::atomic::read_regular_string(path).unwrap_or_default()
    };
    let (stdout, stderr) = (read(&spec.stdout_path), read(&spec.stderr_path));
    let code = match run.ending {
        Ending::Exited(0) => return Ok(()),
        Ending::Exited(code) => Some(code),
        _ => None,
    };
    let report = harness.read(&Outputs {
        exit_code: code,
        stdout: &stdout,
        stderr: &stderr,
        last_message: None,
    });
    let said = report
        .last_line
        .or_else(|| last_line(&stderr))
        .or_else(|| last_line(&stdout))
        .unwrap_or_else(|| format!("{:?}", run.ending));
    let kind = report.failure.map_or(FailureKind::HarnessError, |d| d.kind);
    Err((kind, format!("`{shown}` failed: {said}")))
}
