//! End-to-end runner tests against `fixtures/fake-harness`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::{CommandOutput, Config, RunnersConfig, StageConfig};
use crate::model::{Stage, TerminalResult};
use crate::runners::process::{
    kill_orphaned_group, start_time_ticks, ProcessRecord, Takeover, HARNESS_TOKEN_VAR,
};
use crate::runners::request::tests::sample;
use crate::runners::{
    normalize, validate_stage_runners, CancelToken, ExitKind, FailureClass, RawResult, Registry,
    RunFiles, RunnerError, StageRequest, TokenUsage,
};

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-harness")
}

struct Fixture {
    _dir: tempfile::TempDir,
    workspace: PathBuf,
    run_dir: PathBuf,
    state: PathBuf,
    config: RunnersConfig,
}

impl Fixture {
    /// A workspace whose codex and command runners call the fake harness with `plan`.
    fn new(plan: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("ws");
        let run_dir = workspace.join("millrace-agents/runs/run-1");
        fs::create_dir_all(&run_dir).unwrap();
        let plan_path = dir.path().join("plan.txt");
        fs::write(&plan_path, plan).unwrap();
        let state = dir.path().join("state");
        let env: BTreeMap<String, String> = [
            (
                "FAKE_HARNESS_PLAN".to_string(),
                plan_path.display().to_string(),
            ),
            (
                "FAKE_HARNESS_STATE".to_string(),
                state.display().to_string(),
            ),
        ]
        .into();
        let mut config = RunnersConfig {
            idle_timeout_seconds: 0,
            kill_grace_seconds: 1,
            ..RunnersConfig::default()
        };
        config.codex.command = harness().display().to_string();
        config.codex.env = env.clone();
        config.command.argv = vec![harness().display().to_string(), "{prompt}".into()];
        config.command.env = env;
        Fixture {
            _dir: dir,
            workspace,
            run_dir,
            state,
            config,
        }
    }

    fn request(&self, stage: Stage) -> StageRequest {
        let mut req = sample(stage, &self.run_dir);
        req.timeout_seconds = 10;
        req
    }

    fn registry(&self) -> Registry {
        Registry::from_config(&self.config, &self.workspace).unwrap()
    }

    fn run(&self, req: &StageRequest) -> RawResult {
        self.registry().dispatch(req, &CancelToken::new())
    }

    fn state_pid(&self, name: &str) -> u32 {
        fs::read_to_string(self.state.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Poll `check` until it holds or `limit` passes.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of non-zombie processes in process group `pgid`.
fn live_members(pgid: u32) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state (field 3), ppid (4), pgrp (5).
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            live.push(pid);
        }
    }
    live
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn assert_group_gone(fx: &Fixture) {
    let harness = fx.state_pid("harness.pid");
    let grandchild = fx.state_pid("grandchild.pid");
    assert!(
        eventually(Duration::from_secs(3), || live_members(harness).is_empty()
            && !alive(grandchild)),
        "processes left in group {harness}: {:?}",
        live_members(harness)
    );
}

#[test]
fn codex_happy_path_writes_every_artifact() {
    let fx = Fixture::new("checker emit ### CHECKER_PASS\n");
    let req = fx.request(Stage::Checker);
    let raw = fx.run(&req);
    let files = RunFiles::for_request(&req);
    assert_eq!(
        raw.exit_kind,
        ExitKind::Completed,
        "{}",
        read(&files.stderr)
    );
    assert_eq!(raw.exit_code, Some(0));
    assert_eq!(raw.runner_name, "codex_cli");
    assert_eq!(raw.stdout_path.as_deref(), Some(files.stdout.as_path()));
    assert_eq!(raw.event_log_path.as_deref(), Some(files.events.as_path()));
    assert_eq!(read(&files.stdout), "### CHECKER_PASS\n");
    assert_eq!(read(&files.last_message), "### CHECKER_PASS\n");
    assert_eq!(read(&files.events), "### CHECKER_PASS\n");
    let prompt = read(&files.prompt);
    assert!(prompt.contains("\nRunner Name: codex_cli\n"), "{prompt}");
    assert!(read(&files.invocation).contains("kind: runner_invocation"));
    let completion = read(&files.completion);
    assert!(completion.contains("exit_kind: completed"), "{completion}");
    assert!(!files.process_record.exists(), "process record left behind");

    let result = normalize(&req, &raw).unwrap();
    assert!(result.success);
    assert_eq!(result.terminal_result, TerminalResult::CheckerPass);
    assert_eq!(
        result.prompt_artifact.as_deref(),
        Some(files.prompt.as_path())
    );
    assert_eq!(result.artifact_paths, vec![files.events.clone()]);

    let calls = read(&fx.state.join("calls.log"));
    assert!(calls.starts_with("checker "), "{calls}");
    assert!(calls.contains("--output-last-message"), "{calls}");
}

#[test]
fn plan_answers_are_consumed_in_order_and_the_last_repeats() {
    let fx = Fixture::new("builder emit ### BLOCKED\nbuilder emit ### BUILDER_COMPLETE\n");
    let req = fx.request(Stage::Builder);
    let answers: Vec<TerminalResult> = (0..3)
        .map(|_| normalize(&req, &fx.run(&req)).unwrap().terminal_result)
        .collect();
    assert_eq!(
        answers,
        [
            TerminalResult::Blocked,
            TerminalResult::BuilderComplete,
            TerminalResult::BuilderComplete
        ]
    );
}

#[test]
fn wall_clock_timeout_kills_the_harness_and_its_grandchild() {
    let fx = Fixture::new("builder grandchild\n");
    let mut req = fx.request(Stage::Builder);
    req.timeout_seconds = 1;
    let started = Instant::now();
    let raw = fx.run(&req);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(raw.exit_kind, ExitKind::Timeout);
    assert_eq!(raw.exit_code, Some(124));
    let stderr = read(raw.stderr_path.as_deref().unwrap());
    assert!(
        stderr.ends_with("runner timed out after 1 seconds\n"),
        "{stderr}"
    );
    assert_group_gone(&fx);
    let result = normalize(&req, &raw).unwrap();
    assert_eq!(result.failure_class(), Some(FailureClass::RunnerTimeout));
    assert_eq!(result.terminal_result, TerminalResult::Blocked);
}

#[test]
fn idle_timeout_kills_a_silent_harness_and_its_grandchild() {
    let fx = Fixture::new("builder grandchild\n");
    let mut req = fx.request(Stage::Builder);
    req.idle_timeout_seconds = Some(1);
    let started = Instant::now();
    let raw = fx.run(&req);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(raw.exit_kind, ExitKind::Timeout);
    let stderr = read(raw.stderr_path.as_deref().unwrap());
    assert!(
        stderr.contains("runner produced no output for 1 seconds"),
        "{stderr}"
    );
    assert_group_gone(&fx);
}

#[test]
fn steady_output_keeps_the_idle_timeout_at_bay() {
    let fx = Fixture::new(
        "builder run for i in 1 2 3 4 5; do echo tick; sleep 0.3; done; \
         echo '### BUILDER_COMPLETE' > \"$LAST_MESSAGE_FILE\"\n",
    );
    let mut req = fx.request(Stage::Builder);
    req.idle_timeout_seconds = Some(1);
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::Completed);
    assert!(normalize(&req, &raw).unwrap().success);
}

#[test]
fn cancel_interrupts_and_kills_the_group() {
    let fx = Fixture::new("builder grandchild\n");
    let req = fx.request(Stage::Builder);
    let registry = fx.registry();
    let cancel = CancelToken::new();
    let raw = std::thread::scope(|scope| {
        let run = scope.spawn(|| registry.dispatch(&req, &cancel));
        let record_path = RunFiles::for_request(&req).process_record;
        assert!(eventually(Duration::from_secs(5), || {
            fx.state.join("harness.pid").exists() && record_path.exists()
        }));
        let record: ProcessRecord =
            crate::yaml::from_str(&record_path, &read(&record_path)).unwrap();
        assert_eq!(record.pid, fx.state_pid("harness.pid"));
        assert_eq!(record.process_group, record.pid);
        assert_eq!(Some(record.start_time_ticks), start_time_ticks(record.pid));
        let environ = fs::read(format!("/proc/{}/environ", record.pid)).unwrap();
        let marker = format!("{HARNESS_TOKEN_VAR}={}", record.token);
        assert!(environ
            .split(|b| *b == 0)
            .any(|entry| entry == marker.as_bytes()));
        cancel.cancel();
        run.join().unwrap()
    });
    assert_eq!(raw.exit_kind, ExitKind::Interrupted);
    assert_group_gone(&fx);
    let result = normalize(&req, &raw).unwrap();
    assert_eq!(
        result.failure_class(),
        Some(FailureClass::RunnerTransportFailure)
    );
    assert_eq!(result.metadata.raw_exit_kind, ExitKind::Interrupted);
}

#[test]
fn non_zero_exit_is_a_runner_error() {
    let fx = Fixture::new("fixer exit 3\n");
    let req = fx.request(Stage::Fixer);
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::RunnerError);
    assert_eq!(raw.exit_code, Some(3));
    let completion = read(&RunFiles::for_request(&req).completion);
    assert!(
        completion.contains("failure_class: runner_non_zero_exit"),
        "{completion}"
    );
    let result = normalize(&req, &raw).unwrap();
    assert_eq!(result.exit_code, 3);
    assert_eq!(
        result.failure_class(),
        Some(FailureClass::RunnerTransportFailure)
    );
}

#[test]
fn missing_binary_is_127_with_a_note() {
    let mut fx = Fixture::new("");
    fx.config.codex.command = "millrace-no-such-harness".into();
    let req = fx.request(Stage::Builder);
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::RunnerError);
    assert_eq!(raw.exit_code, Some(127));
    assert_eq!(raw.event_log_path, None);
    let stderr = read(raw.stderr_path.as_deref().unwrap());
    assert_eq!(
        stderr,
        "runner binary not found: millrace-no-such-harness\n"
    );
    let completion = read(&RunFiles::for_request(&req).completion);
    assert!(
        completion.contains("runner_binary_not_found"),
        "{completion}"
    );
}

#[test]
fn only_allowed_variables_reach_the_harness() {
    let mut fx =
        Fixture::new("builder run env > \"$RUN_DIR/env.txt\"; echo '### BUILDER_COMPLETE'\n");
    fx.config.env_allow = vec!["PATH".into()];
    let hidden = std::env::vars()
        .map(|(name, _)| name)
        .find(|name| !["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name.as_str()))
        .expect("the test process has some environment");
    let req = fx.request(Stage::Builder);
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::Completed);
    let env = read(&fx.run_dir.join("env.txt"));
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PATH"), "{env}");
    assert!(
        names.contains(&"FAKE_HARNESS_PLAN"),
        "overlay missing: {env}"
    );
    assert!(!names.contains(&hidden.as_str()), "{hidden} leaked: {env}");
}

#[test]
fn output_beyond_the_cap_is_drained_and_noted() {
    let mut fx = Fixture::new("builder run head -c 100000 /dev/zero | tr '\\0' x; echo\n");
    fx.config.output_cap_bytes = 100;
    let req = fx.request(Stage::Builder);
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::Completed);
    let events = read(raw.event_log_path.as_deref().unwrap());
    assert!(events.starts_with(&"x".repeat(100)), "{events}");
    assert!(events.len() < 200, "{}", events.len());
    assert!(
        events.contains("output truncated at 100 bytes; 99901 further bytes dropped"),
        "{events}"
    );
}

#[test]
fn command_runner_claude_preset_reads_json_result_and_usage() {
    let mut fx = Fixture::new("builder claude-json ### BUILDER_COMPLETE\n");
    let bin = fx.workspace.parent().unwrap().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(harness(), bin.join("claude")).unwrap();
    fx.config.command.argv.clear();
    fx.config.command.preset = Some("claude".into());
    fx.config.command.output = CommandOutput::Text;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    fx.config.command.env.insert("PATH".into(), path);
    let mut req = fx.request(Stage::Builder);
    req.runner_name = Some("command".into());
    req.model_name = Some("opus".into());
    let raw = fx.run(&req);
    let files = RunFiles::for_request(&req);
    assert_eq!(
        raw.exit_kind,
        ExitKind::Completed,
        "{}",
        read(&files.stderr)
    );
    assert_eq!(raw.runner_name, "command");
    assert_eq!(read(&files.last_message), "### BUILDER_COMPLETE");
    assert_eq!(
        raw.token_usage,
        Some(TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            total_tokens: 15,
            ..TokenUsage::default()
        })
    );
    let calls = read(&fx.state.join("calls.log"));
    assert!(calls.contains(" -p "), "{calls}");
    assert!(
        calls.contains("--output-format stream-json --verbose --model opus"),
        "{calls}"
    );
    assert!(normalize(&req, &raw).unwrap().success);
}

#[test]
fn command_runner_text_output_scans_stdout() {
    let fx = Fixture::new("updater emit ### UPDATE_COMPLETE\n");
    let mut req = fx.request(Stage::Updater);
    req.runner_name = Some("command".into());
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::Completed);
    assert_eq!(
        raw.stdout_path.as_deref(),
        Some(RunFiles::for_request(&req).stdout.as_path())
    );
    let result = normalize(&req, &raw).unwrap();
    assert_eq!(result.terminal_result, TerminalResult::UpdateComplete);
}

#[test]
fn unknown_runner_keeps_its_message() {
    let fx = Fixture::new("");
    let mut req = fx.request(Stage::Builder);
    req.runner_name = Some("painter".into());
    let raw = fx.run(&req);
    assert_eq!(raw.exit_kind, ExitKind::RunnerError);
    assert_eq!(raw.runner_name, "painter");
    let stderr = read(raw.stderr_path.as_deref().unwrap());
    assert_eq!(
        stderr,
        "Unknown stage runner: painter. Available: aider, claude, codex_cli, command, gemini\n"
    );
    let result = normalize(&req, &raw).unwrap();
    assert_eq!(
        result.failure_class(),
        Some(FailureClass::RunnerTransportFailure)
    );
}

#[test]
fn dispatch_resolution_order() {
    let mut fx = Fixture::new("");
    fx.config.default_runner = "command".into();
    let registry = fx.registry();
    let mut req = fx.request(Stage::Builder);
    assert_eq!(registry.resolve_name(&req), "command");
    req.runner_name = Some("  ".into());
    assert_eq!(registry.resolve_name(&req), "command");
    req.runner_name = Some("codex_cli".into());
    assert_eq!(registry.resolve_name(&req), "codex_cli");
    let blank = Registry::new(" ");
    req.runner_name = None;
    assert_eq!(blank.resolve_name(&req), "codex_cli");
}

#[test]
fn configured_stage_runners_are_checked() {
    let mut config = Config::default();
    for (stage, runner) in [
        (Stage::Builder, "zeta"),
        (Stage::Checker, "alpha"),
        (Stage::Fixer, "codex_cli"),
    ] {
        config.stages.insert(
            stage,
            StageConfig {
                runner: Some(runner.into()),
                ..StageConfig::default()
            },
        );
    }
    let err = validate_stage_runners(&config, &["codex_cli", "command"]).unwrap_err();
    assert!(matches!(err, RunnerError::UnknownStageRunners(_)));
    assert_eq!(
        err.to_string(),
        "Unknown configured stage runner(s): alpha, zeta"
    );
    assert!(validate_stage_runners(&Config::default(), &[]).is_ok());
}

#[test]
fn orphaned_group_is_killed_only_when_the_kernel_confirms_the_record() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    let spawn = |with_token: bool| {
        let mut command = Command::new("sleep");
        command.arg("1000").process_group(0);
        if with_token {
            command.env(HARNESS_TOKEN_VAR, token);
        }
        command.spawn().unwrap()
    };
    let record_of = |pid: u32| ProcessRecord {
        pid,
        process_group: pid,
        start_time_ticks: start_time_ticks(pid).unwrap(),
        argv0: "sleep".into(),
        started_at: crate::time::now(),
        token: token.into(),
    };
    let path = dir.path().join("runner_process.request-x.yaml");
    let check = |record: &ProcessRecord| {
        fs::write(&path, crate::yaml::to_string(record)).unwrap();
        kill_orphaned_group(&path).unwrap()
    };

    let mut bystander = spawn(false);
    let forged = record_of(bystander.id());
    assert!(matches!(check(&forged), Takeover::Refused(_)));
    assert!(alive(bystander.id()));
    let own = std::process::id();
    for group in [0, 1, own] {
        let record = ProcessRecord {
            pid: group,
            process_group: group,
            ..forged.clone()
        };
        assert!(matches!(check(&record), Takeover::Refused(_)), "{group}");
    }
    let other_leader = ProcessRecord {
        pid: own,
        ..forged.clone()
    };
    assert!(matches!(check(&other_leader), Takeover::Refused(_)));
    assert!(alive(bystander.id()));
    bystander.kill().unwrap();
    bystander.wait().unwrap();

    let mut harness = spawn(true);
    assert_eq!(check(&record_of(harness.id())), Takeover::Killed(1));
    assert!(!harness.wait().unwrap().success());
}

#[test]
fn the_daemon_registers_exactly_the_runner_names_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let ws = crate::workspace::Workspace::open_or_init(dir.path()).unwrap();
    let registry = Registry::for_workspace(&ws, &Config::default()).unwrap();
    let mut expected = crate::runners::RUNNER_NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(registry.names(), expected);
}

/// Run `script` under `sh -c` with a stall limit of one second on lines starting
/// `Reconnecting`.
fn run_with_stall(script: &str, idle_seconds: u64) -> crate::runners::process::Ending {
    use crate::runners::process::{self, EnvPolicy, Limits, ProcessSpec, Stall};
    let dir = tempfile::tempdir().unwrap();
    let spec = ProcessSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: dir.path().to_path_buf(),
        env: EnvPolicy::new(&["PATH".into()])
            .unwrap()
            .environment(&BTreeMap::new()),
        stdout_path: dir.path().join("out"),
        stderr_path: dir.path().join("err"),
        record_path: dir.path().join("record.yaml"),
        limits: Limits {
            timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(idle_seconds)),
            kill_grace: Duration::from_secs(1),
            output_cap: 1 << 20,
            stall: Some(Stall {
                after: Duration::from_secs(1),
                noise: std::sync::Arc::new(regex::RegexSet::new(["^Reconnecting"]).unwrap()),
            }),
        },
    };
    process::run(&spec, &CancelToken::new()).ending
}

#[test]
fn a_harness_that_only_reconnects_is_stalled_long_before_the_idle_limit() {
    let ending = run_with_stall(
        "while :; do echo 'Reconnecting... 2/5 (stream disconnected)' >&2; sleep 0.05; done",
        30,
    );
    assert_eq!(
        ending,
        crate::runners::process::Ending::Stalled(
            1,
            "Reconnecting... 2/5 (stream disconnected)".into()
        )
    );
}

#[test]
fn progress_between_reconnects_is_not_a_stall() {
    let ending = run_with_stall(
        "i=0; while [ $i -lt 30 ]; do echo Reconnecting...; echo \"step $i\"; i=$((i+1)); sleep 0.05; done",
        30,
    );
    assert_eq!(ending, crate::runners::process::Ending::Exited(0));
}

#[test]
fn silence_is_left_to_the_idle_limit_not_the_stall_limit() {
    let ending = run_with_stall("echo started; sleep 20", 2);
    assert_eq!(ending, crate::runners::process::Ending::IdleTimedOut(2));
}
