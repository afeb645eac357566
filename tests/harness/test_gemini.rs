//! Gemini CLI 0.61.0, driven with the argv millrace's adapter gives at each permission level
//! against the fake Gemini API, its outputs read by the adapter.

use millrace::config::Permission;
use millrace::runners::harness::{FailureKind, Harness};
use serde_json::json;

use crate::cli::{self, Run};
use crate::fake_gemini::{self, done, Turn, CACHED, CANDIDATES, PROMPT, THOUGHTS};
use crate::server::FakeApi;

const LEVELS: [Permission; 3] = [Permission::Basic, Permission::Elevated, Permission::Maximum];

/// The model every direct run names, so Gemini's model router stays out of the way.
const MODEL: &str = "gemini-2.5-pro";

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
        let mut args = cli::argv(
            Harness::Gemini,
            level,
            "Stage: builder\nDo the task.",
            Some(MODEL),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        self.run_args(api, level, &args)
    }

    fn run_args(&self, api: &FakeApi, level: Permission, args: &[String]) -> Run {
        let env = fake_gemini::env(self.home.path(), api);
        cli::run(Harness::Gemini, level, args, &env, self.project.path())
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
        let file = bed.project.path().join("hello.txt");
        let api = fake_gemini::start({
            let file = file.clone();
            move |_, turn| match turn {
                0 => Turn::Write {
                    path: file.clone(),
                    content: "written by gemini\n".into(),
                },
                _ => done("BUILDER_COMPLETE"),
            }
        });
        let run = bed.run(&api, level, &[]);
        assert_eq!(run.code, Some(0), "{level:?}: {run}");
        assert_eq!(
            std::fs::read_to_string(&file).ok().as_deref(),
            Some("written by gemini\n"),
            "{level:?}: {run}"
        );
        let report = &run.report;
        assert!(
            report.failure.is_none() && report.refused.is_empty(),
            "{run}"
        );
        assert_eq!(
            report.final_message.as_deref(),
            Some("Done.\n\n### BUILDER_COMPLETE\n")
        );
        let usage = report.usage.unwrap();
        assert_eq!(usage.input_tokens, 2 * PROMPT, "{run}");
        assert_eq!(usage.cached_input_tokens, 2 * CACHED);
        assert_eq!(usage.output_tokens, 2 * CANDIDATES);
        assert_eq!(usage.thinking_tokens, 2 * THOUGHTS);
        assert_eq!(usage.cost_usd, None);
        assert!(api
            .requests()
            .iter()
            .any(|r| r.header("x-goog-api-key") == Some(fake_gemini::KEY)));
    }
}

#[test]
fn shell_commands_run_only_at_the_levels_that_offer_them() {
    for level in LEVELS {
        let bed = Bed::new();
        let api = fake_gemini::start(|_, turn| match turn {
            0 => Turn::Shell("echo ok > checked.txt".into()),
            _ => done("BUILDER_COMPLETE"),
        });
        let run = bed.run(&api, level, &[]);
        let ran = bed.project.path().join("checked.txt").exists();
        match level {
            Permission::Basic => {
                assert!(!ran, "{run}");
                assert_eq!(run.report.refused.len(), 1, "{run}");
                assert!(
                    run.report.refused[0].starts_with("run_shell_command echo ok > checked.txt:"),
                    "{:?}",
                    run.report.refused
                );
            }
            _ => assert!(ran && run.report.refused.is_empty(), "{level:?}: {run}"),
        }
    }
}

#[test]
fn without_skip_trust_gemini_refuses_the_folder() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| done("BUILDER_COMPLETE"));
    let args: Vec<String> = cli::argv(
        Harness::Gemini,
        Permission::Basic,
        "Stage: builder",
        Some(MODEL),
    )
    .into_iter()
    .filter(|a| a != "--skip-trust")
    .collect();
    let run = bed.run_args(&api, Permission::Basic, &args);
    assert_eq!(run.code, Some(55), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::BadInvocation);
    assert!(
        message.contains("not running in a trusted directory"),
        "{message}"
    );
    assert!(api.requests().is_empty());
}

#[test]
fn a_rejected_key_is_an_auth_failure() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| {
        Turn::Fail(
            401,
            "UNAUTHENTICATED",
            "API key not valid. Please pass a valid API key.",
            json!([]),
        )
    });
    let run = bed.run(&api, Permission::Basic, &[]);
    assert_ne!(run.code, Some(0), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth, "{run}");
    assert!(message.contains("API key not valid"), "{message}");
}

#[test]
fn a_missing_key_is_an_auth_failure() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| done("BUILDER_COMPLETE"));
    let args = cli::argv(
        Harness::Gemini,
        Permission::Basic,
        "Stage: builder",
        Some(MODEL),
    );
    let env: Vec<_> = fake_gemini::env(bed.home.path(), &api)
        .into_iter()
        .filter(|(k, _)| k != "GEMINI_API_KEY")
        .collect();
    let run = cli::run(
        Harness::Gemini,
        Permission::Basic,
        &args,
        &env,
        bed.project.path(),
    );
    assert_eq!(run.code, Some(41), "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth);
    assert!(
        message.contains("must specify the GEMINI_API_KEY"),
        "{message}"
    );
}

#[test]
fn an_exhausted_quota_is_rate_limited() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| {
        Turn::Fail(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            json!([{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                    "quotaValue": "50"}]}]),
        )
    });
    let run = bed.run(&api, Permission::Basic, &[]);
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::RateLimited, "{run}");
    assert!(message.contains("exhausted your daily quota"), "{message}");
}

#[test]
fn a_flag_this_version_does_not_know_is_a_bad_invocation() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| done("BUILDER_COMPLETE"));
    let run = bed.run(&api, Permission::Basic, &["--bogus-flag"]);
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::BadInvocation, "{run}");
    assert!(
        message.starts_with("Unknown arguments: bogus-flag"),
        "{message}"
    );
    assert!(api.requests().is_empty());
}

#[test]
fn an_unreachable_api_is_a_network_failure() {
    let bed = Bed::new();
    let api = fake_gemini::start(|_, _| done("BUILDER_COMPLETE"));
    let mut env = fake_gemini::env(bed.home.path(), &api);
    // Nothing listens on port 1.
    for (key, value) in &mut env {
        if key == "GOOGLE_GEMINI_BASE_URL" {
            *value = "http://127.0.0.1:1".into();
        }
    }
    let args = cli::argv(
        Harness::Gemini,
        Permission::Basic,
        "Stage: builder",
        Some(MODEL),
    );
    let run = cli::run(
        Harness::Gemini,
        Permission::Basic,
        &args,
        &env,
        bed.project.path(),
    );
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Network, "{run}");
    assert!(message.contains("fetch failed"), "{message}");
}

/// Through millrace: each stage answers with its marker; the builder first writes a file in
/// the project with Gemini's own edit tool.
#[test]
fn a_task_runs_builder_checker_updater_to_done_with_gemini() {
    let mut w = crate::e2e::Workspace::new("gemini", "");
    let file = w.ws.path().join("hello.txt");
    let api = fake_gemini::start({
        let file = file.clone();
        move |stage, turn| match (stage, turn) {
            ("builder", 0) => Turn::Write {
                path: file.clone(),
                content: "built by gemini through millrace\n".into(),
            },
            ("builder", _) => done("BUILDER_COMPLETE"),
            ("checker", _) => done("CHECKER_PASS"),
            ("updater", _) => done("UPDATE_COMPLETE"),
            (other, _) => Turn::Say(format!("unexpected stage {other:?}")),
        }
    });
    w.env = fake_gemini::env(w.home.path(), &api);
    w.ws.add_task("t1", "");
    w.run_until_idle();

    assert_eq!(w.ws.folder_of("t1"), ["tasks/done"]);
    assert_eq!(w.ws.stages_started(), ["builder", "checker", "updater"]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "built by gemini through millrace\n"
    );
    let run = w.run_of("t1");
    let builder = &run["stage_results"][0];
    assert_eq!(builder["runner_name"], "gemini");
    // Two model turns in the builder (and Gemini's own model-router calls on top).
    let usage = &builder["token_usage"];
    assert!(
        usage["output_tokens"].as_u64().unwrap() >= 2 * CANDIDATES,
        "{builder:#}"
    );
    assert!(
        usage["cached_input_tokens"].as_u64().unwrap() >= 2 * CACHED,
        "{builder:#}"
    );
    assert!(run["token_usage"]["input_tokens"].as_u64().unwrap() >= 4 * PROMPT);
}

/// Through millrace: a rejected key pauses the runtime with the reason and the fix; the item
/// stays at its stage and no repair budget is spent.
#[test]
fn a_rejected_key_pauses_millrace_and_keeps_the_task_at_its_stage() {
    let mut w = crate::e2e::Workspace::new("gemini", "");
    let api = fake_gemini::start(|_, _| {
        Turn::Fail(
            401,
            "UNAUTHENTICATED",
            "API key not valid. Please pass a valid API key.",
            json!([]),
        )
    });
    w.env = fake_gemini::env(w.home.path(), &api);
    w.ws.add_task("t1", "");
    let out = w.run(&["run", "once"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(w.ws.folder_of("t1"), ["tasks/active"]);
    assert_eq!(w.ws.stages_started(), ["builder"]);
    let status = w.ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], true, "{status:#}");
    let reason = status["snapshot"]["pause_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gemini is not logged in or its credentials were rejected"),
        "{reason}"
    );
    assert!(reason.contains("API key not valid"), "{reason}");
    let counters = w.ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");
}
