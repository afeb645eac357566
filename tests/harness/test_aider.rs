//! aider-chat 0.86.2, driven with the argv millrace's adapter gives at each permission level
//! against a fake OpenAI-compatible chat API, directly and through the `millrace` binary.

use std::path::Path;
use std::process::Stdio;

use millrace::config::Permission;
use millrace::runners::harness::{FailureKind, Harness, HarnessReport, Outputs};

use crate::cli;
use crate::common::TestWs;
use crate::fake_openai::{self, Chat, CHAT_COMPLETION, CHAT_PROMPT};
use crate::install;
use crate::server::FakeApi;

const LEVELS: [Permission; 3] = [Permission::Basic, Permission::Elevated, Permission::Maximum];

/// An answer in Aider's whole-file edit format that creates `file`, ending with `marker`.
fn edit(file: &str, content: &str, marker: &str) -> Chat {
    Chat::Say(format!(
        "I will write the file.\n\n{file}\n```\n{content}\n```\n\n### {marker}\n"
    ))
}

fn done(marker: &str) -> Chat {
    Chat::Say(format!("Nothing to change.\n\n### {marker}\n"))
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    report: HarnessReport,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A project folder, a run folder and an isolated home for one run.
struct Bed {
    project: tempfile::TempDir,
    run_dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Bed {
    /// The project is a git repository, as a user's project is (in a folder that is not,
    /// Aider creates one).
    fn new() -> Bed {
        let bed = Bed {
            project: tempfile::tempdir().unwrap(),
            run_dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        git_init(bed.project.path());
        bed
    }

    /// Run Aider at `level`, under `timeout <seconds>` when given (Aider retries a 429 for
    /// about two minutes before it gives up).
    fn run(&self, api: &FakeApi, level: Permission, extra: &[&str], limit: Option<u32>) -> Run {
        let mut args: Vec<String> =
            cli::argv(Harness::Aider, level, "Stage: builder\nDo it.", None)
                .into_iter()
                .map(|a| a.replace("{run_dir}", &self.run_dir.path().display().to_string()))
                .collect();
        args.splice(1..1, extra.iter().map(|a| a.to_string()));
        let mut command = match limit {
            Some(seconds) => {
                let mut c = std::process::Command::new("timeout");
                c.arg(seconds.to_string()).arg(install::bin("aider"));
                c
            }
            None => std::process::Command::new(install::bin("aider")),
        };
        let out = command
            .args(&args[1..])
            .env_clear()
            .env("PATH", install::path_with("aider"))
            .envs(Harness::Aider.env(level))
            .envs(fake_openai::chat_env(self.home.path(), api))
            .current_dir(self.project.path())
            .stdin(Stdio::null())
            .output()
            .expect("run aider");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        let report = Harness::Aider.read(&Outputs {
            exit_code: out.status.code(),
            stdout: &stdout,
            stderr: &stderr,
            last_message: None,
        });
        Run {
            code: out.status.code(),
            stdout,
            stderr,
            report,
        }
    }
}

fn git_init(dir: &Path) {
    let ok = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git init failed in {}", dir.display());
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
fn at_every_level_an_edit_lands_the_marker_survives_and_usage_is_read() {
    for level in LEVELS {
        let bed = Bed::new();
        let api = fake_openai::start_chat(|_, _| {
            edit("hello.txt", "written by aider", "BUILDER_COMPLETE")
        });
        let run = bed.run(&api, level, &[], None);
        assert_eq!(run.code, Some(0), "{level:?}: {run}");
        assert_eq!(
            std::fs::read_to_string(bed.project.path().join("hello.txt"))
                .ok()
                .as_deref(),
            Some("written by aider\n"),
            "{level:?}: {run}"
        );
        assert!(run.stdout.contains("\n### BUILDER_COMPLETE\n"), "{run}");
        assert!(run.report.failure.is_none(), "{run}");
        let usage = run
            .report
            .usage
            .unwrap_or_else(|| panic!("no usage: {run}"));
        assert!(
            usage.input_tokens > 0 && usage.output_tokens > 0,
            "{usage:?}"
        );
        // Nothing of Aider's own lands in the project: no .gitignore edit, no histories.
        let mut left: Vec<String> = std::fs::read_dir(bed.project.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !["hello.txt", ".git", ".aider.tags.cache.v4"].contains(&n.as_str()))
            .collect();
        left.sort();
        assert!(left.is_empty(), "{level:?}: {left:?}");
        assert!(bed.run_dir.path().join("aider.chat.history.md").exists());
    }
}

#[test]
fn a_rejected_key_is_an_auth_failure_although_aider_exits_0() {
    let bed = Bed::new();
    let api = fake_openai::start_chat(|_, _| {
        Chat::Fail(401, "invalid_api_key", "Incorrect API key provided")
    });
    let run = bed.run(&api, Permission::Basic, &[], None);
    assert_eq!(run.code, Some(0), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth);
    assert!(message.contains("Incorrect API key"), "{message}");
}

#[test]
fn a_spent_quota_is_rate_limited_while_aider_still_retries() {
    let bed = Bed::new();
    let api = fake_openai::start_chat(|_, _| {
        Chat::Fail(
            429,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        )
    });
    let run = bed.run(&api, Permission::Basic, &[], Some(30));
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::RateLimited, "{run}");
    assert!(message.contains("RateLimitError"), "{message}");
}

#[test]
fn a_flag_this_version_does_not_know_is_a_bad_invocation() {
    let bed = Bed::new();
    let api = fake_openai::start_chat(|_, _| done("BUILDER_COMPLETE"));
    let run = bed.run(&api, Permission::Basic, &["--full-auto"], None);
    assert_eq!(run.code, Some(2), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::BadInvocation);
    assert_eq!(message, "aider: error: unrecognized arguments: --full-auto");
}

fn millrace(ws: &TestWs, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env_clear()
        .env("PATH", install::path_with("aider"))
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("run millrace")
}

fn workspace(api: &FakeApi, home: &Path) -> (TestWs, Vec<(String, String)>) {
    let ws = TestWs::new();
    git_init(ws.path());
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: aider\n  kill_grace_seconds: 1\nwatchers:\n  settle_ms: 0\n",
    );
    (ws, fake_openai::chat_env(home, api))
}

#[test]
fn through_millrace_a_task_goes_to_done_with_the_edit_and_the_usage() {
    let home = tempfile::tempdir().unwrap();
    let api = fake_openai::start_chat(|stage, _| match stage {
        "builder" => edit("built.txt", "built by aider", "BUILDER_COMPLETE"),
        "checker" => done("CHECKER_PASS"),
        "updater" => done("UPDATE_COMPLETE"),
        other => Chat::Say(format!("unexpected stage {other}")),
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
    assert_eq!(ws.read("built.txt"), "built by aider\n");
    assert!(
        !ws.exists(".gitignore"),
        "aider edited the project's .gitignore"
    );
    let runs = ws.json(&["runs", "ls"]);
    let usage = &runs["runs"][0]["token_usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() >= 3, "{runs:#}");
    assert!(usage["output_tokens"].as_u64().unwrap() >= 3, "{runs:#}");
    // Aider counts tokens itself; the fake's own figures bound what it may report.
    assert!(usage["output_tokens"].as_u64().unwrap() <= 3 * 2 * CHAT_COMPLETION + CHAT_PROMPT);
}

#[test]
fn through_millrace_a_rejected_key_pauses_without_spending_repairs() {
    let home = tempfile::tempdir().unwrap();
    let api = fake_openai::start_chat(|_, _| {
        Chat::Fail(401, "invalid_api_key", "Incorrect API key provided")
    });
    let (ws, env) = workspace(&api, home.path());
    ws.add_task("t1", "");
    let out = millrace(&ws, &env, &["run", "once"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);
    let status = ws.json(&["status"]);
    let reason = status["snapshot"]["pause_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("aider is not logged in or its credentials were rejected (harness_auth: litellm.AuthenticationError"),
        "{reason}"
    );
    let counters = ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");
}
