//! Codex CLI 0.171.0, driven with the flags millrace's adapter gives at each permission level
//! against the fake Responses API, directly and through the `millrace` binary.

use std::path::Path;

use millrace::config::Permission;
use millrace::runners::harness::{codex, FailureKind, Harness};

use crate::cli::{self, Run};
use crate::common::TestWs;
use crate::fake_openai::{self, done, Turn, CACHED, INPUT, OUTPUT, REASONING};
use crate::install;
use crate::server::FakeApi;

const LEVELS: [Permission; 3] = [Permission::Basic, Permission::Elevated, Permission::Maximum];

/// The argv millrace's `codex_cli` runner builds by default, at `level`.
fn argv(level: Permission, project: &Path, extra: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["codex", "exec", "--skip-git-repo-check"]
        .map(String::from)
        .to_vec();
    argv.extend(codex::permission_flags(level));
    argv.extend(extra.iter().map(|a| a.to_string()));
    argv.extend([
        "--cd".to_string(),
        project.display().to_string(),
        "--json".into(),
        "Stage: builder\nDo the task.".into(),
    ]);
    argv
}

/// A project folder and an isolated home for one run.
struct Bed {
    project: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            project: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, api: &FakeApi, level: Permission, extra: &[&str]) -> Run {
        let env = fake_openai::env(self.home.path(), api);
        let args = argv(level, self.project.path(), extra);
        cli::run(Harness::Codex, level, &args, &env, self.project.path())
    }
}

fn failure(run: &Run) -> (FailureKind, String) {
    let failure = run
        .report
        .failure
        .clone()
        .unwrap_or_else(|| panic!("no failure: {run}"));
    (failure.kind, failure.message)
}

#[test]
fn at_every_level_an_edit_lands_and_the_marker_and_usage_are_read() {
    for level in LEVELS {
        let bed = Bed::new();
        let api = fake_openai::start(|_, turn| match turn {
            0 => Turn::Shell("printf 'written by codex\\n' > hello.txt".into()),
            _ => done("BUILDER_COMPLETE"),
        });
        let run = bed.run(&api, level, &[]);
        assert_eq!(run.code, Some(0), "{level:?}: {run}");
        assert_eq!(
            std::fs::read_to_string(bed.project.path().join("hello.txt"))
                .ok()
                .as_deref(),
            Some("written by codex\n"),
            "{level:?}: {run}"
        );
        let report = &run.report;
        assert!(
            report.failure.is_none() && report.refused.is_empty(),
            "{run}"
        );
        assert!(report
            .final_message
            .as_deref()
            .is_some_and(|m| m.ends_with("### BUILDER_COMPLETE")));
        let usage = report.usage.unwrap();
        assert_eq!(usage.input_tokens, 2 * INPUT, "{run}");
        assert_eq!(usage.cached_input_tokens, 2 * CACHED);
        assert_eq!(usage.output_tokens, 2 * OUTPUT);
        assert_eq!(usage.thinking_tokens, 2 * REASONING);
    }
}

#[test]
fn the_sandbox_of_the_basic_level_refuses_writes_outside_the_project() {
    // Outside /tmp too: Codex's workspace-write sandbox lets the agent write there.
    let outside = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let target = outside.path().join("escaped.txt");
    for (level, lands) in [(Permission::Basic, false), (Permission::Elevated, true)] {
        let bed = Bed::new();
        let command = format!("printf x > {}", target.display());
        let api = fake_openai::start(move |_, turn| match turn {
            0 => Turn::Shell(command.clone()),
            _ => done("BUILDER_COMPLETE"),
        });
        let run = bed.run(&api, level, &[]);
        assert_eq!(run.code, Some(0), "{level:?}: {run}");
        assert_eq!(target.exists(), lands, "{level:?}: {run}");
        // Codex 0.171 reports the denied command in its event stream only sometimes (the
        // model always sees it); when it does, the adapter turns it into a refusal.
        for refusal in &run.report.refused {
            assert!(refusal.contains("Read-only file system"), "{refusal}");
        }
        let denied = api.requests().iter().any(|r| {
            String::from_utf8_lossy(&r.body).contains("escaped.txt: Read-only file system")
        });
        assert_eq!(denied, !lands, "{level:?}: the tool output the model saw");
    }
}

#[test]
fn a_rejected_key_is_an_auth_failure() {
    let bed = Bed::new();
    let api =
        fake_openai::start(|_, _| Turn::Fail(401, "invalid_api_key", "Incorrect API key provided"));
    let run = bed.run(&api, Permission::Basic, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth);
    assert!(message.contains("401 Unauthorized"), "{message}");
}

#[test]
fn a_missing_key_is_an_auth_failure() {
    let bed = Bed::new();
    let api = fake_openai::start(|_, _| done("BUILDER_COMPLETE"));
    let mut env = fake_openai::env(bed.home.path(), &api);
    env.retain(|(k, _)| k != "FAKE_OPENAI_KEY");
    let args = argv(Permission::Basic, bed.project.path(), &[]);
    let run = cli::run(
        Harness::Codex,
        Permission::Basic,
        &args,
        &env,
        bed.project.path(),
    );
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth);
    assert!(message.contains("FAKE_OPENAI_KEY"), "{message}");
}

#[test]
fn a_spent_quota_and_a_rate_limit_are_rate_limited() {
    for (code, message) in [
        (
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        (
            "rate_limit_exceeded",
            "Rate limit reached for gpt-fake on tokens per min (TPM). Please try again in 20s.",
        ),
    ] {
        let bed = Bed::new();
        let api = fake_openai::start(move |_, _| Turn::Fail(429, code, message));
        let run = bed.run(&api, Permission::Basic, &[]);
        assert_eq!(run.code, Some(1), "{run}");
        assert_eq!(failure(&run).0, FailureKind::RateLimited, "{code}: {run}");
    }
}

#[test]
fn a_flag_this_version_does_not_know_is_a_bad_invocation() {
    let bed = Bed::new();
    let api = fake_openai::start(|_, _| done("BUILDER_COMPLETE"));
    let run = bed.run(&api, Permission::Basic, &["--full-auto"]);
    assert_eq!(run.code, Some(2), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::BadInvocation);
    assert_eq!(message, "error: unexpected argument '--full-auto' found");
}

/// A workspace whose `codex_cli` runner is the pinned Codex pointed at `api`.
fn workspace(api: &FakeApi, home: &Path) -> (TestWs, Vec<(String, String)>) {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: codex_cli\n  kill_grace_seconds: 1\nwatchers:\n  settle_ms: 0\n",
    );
    (ws, fake_openai::env(home, api))
}

fn millrace(ws: &TestWs, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env_clear()
        .env("PATH", install::path_with("codex"))
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run millrace")
}

#[test]
fn through_millrace_a_task_goes_to_done_with_the_edit_and_the_usage() {
    let home = tempfile::tempdir().unwrap();
    let api = fake_openai::start(|stage, turn| match (stage, turn) {
        ("builder", 0) => Turn::Shell("printf 'built by codex\\n' > built.txt".into()),
        ("builder", _) => done("BUILDER_COMPLETE"),
        ("checker", _) => done("CHECKER_PASS"),
        ("updater", _) => done("UPDATE_COMPLETE"),
        (other, _) => Turn::Say(format!("unexpected stage {other}")),
    });
    let (ws, env) = workspace(&api, home.path());
    ws.add_task("t1", "");
    let out = millrace(
        &ws,
        &env,
        &["run", "daemon", "--until-idle", "--max-ticks", "20"],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(ws.folder_of("t1"), ["tasks/done"], "{text}");
    assert_eq!(ws.read("built.txt"), "built by codex\n");
    let runs = ws.json(&["runs", "ls"]);
    let usage = &runs["runs"][0]["token_usage"];
    // Four model calls: the builder's two, the checker's and the updater's.
    assert_eq!(usage["input_tokens"], 4 * INPUT, "{runs:#}");
    assert_eq!(usage["cached_input_tokens"], 4 * CACHED);
    assert_eq!(usage["output_tokens"], 4 * OUTPUT);
    assert_eq!(usage["thinking_tokens"], 4 * REASONING);
}

#[test]
fn through_millrace_a_rejected_key_pauses_without_spending_repairs() {
    let home = tempfile::tempdir().unwrap();
    let api =
        fake_openai::start(|_, _| Turn::Fail(401, "invalid_api_key", "Incorrect API key provided"));
    let (ws, env) = workspace(&api, home.path());
    ws.add_task("t1", "");
    let out = millrace(&ws, &env, &["run", "once"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], true);
    let reason = status["snapshot"]["pause_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("codex is not logged in or its credentials were rejected (harness_auth: unexpected status 401 Unauthorized"),
        "{reason}"
    );
    assert!(reason.contains("run `codex login`"), "{reason}");
    let counters = ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");
}
