//! Claude Code 2.1.197, driven with the argv millrace's adapter gives at each permission
//! level against the fake Messages API, its outputs read by the adapter.

use millrace::config::Permission;
use millrace::runners::harness::{FailureKind, Harness};

use crate::cli::{self, Run};
use crate::e2e::Workspace;
use crate::fake_anthropic::{self, done, Turn, CACHE_READ, CACHE_WRITE, INPUT, OUTPUT};
use crate::server::FakeApi;

const LEVELS: [Permission; 3] = [Permission::Basic, Permission::Elevated, Permission::Maximum];

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
        let mut args = cli::argv(Harness::Claude, level, "Stage: builder\nDo the task.", None);
        args.extend(extra.iter().map(|a| a.to_string()));
        let env = fake_anthropic::env(self.home.path(), api);
        cli::run(Harness::Claude, level, &args, &env, self.project.path())
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
fn at_every_level_an_edit_lands_and_the_marker_usage_and_cost_are_read() {
    for level in LEVELS {
        let bed = Bed::new();
        let file = bed.project.path().join("hello.txt");
        let api = fake_anthropic::start({
            let file = file.clone();
            move |_, turn| match turn {
                0 => Turn::Write {
                    path: file.clone(),
                    content: "written by claude\n".into(),
                },
                _ => done("BUILDER_COMPLETE"),
            }
        });
        let run = bed.run(&api, level, &[]);
        assert_eq!(run.code, Some(0), "{level:?}: {run}");
        assert_eq!(
            std::fs::read_to_string(&file).ok().as_deref(),
            Some("written by claude\n"),
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
            .is_some_and(|m| m.ends_with("### BUILDER_COMPLETE\n")));
        let usage = report.usage.unwrap();
        assert_eq!(usage.input_tokens, 2 * (INPUT + CACHE_WRITE + CACHE_READ));
        assert_eq!(usage.cached_input_tokens, 2 * CACHE_READ);
        assert_eq!(usage.output_tokens, 2 * OUTPUT);
        assert!(usage.cost_usd.is_some_and(|c| c > 0.0), "{usage:?}");
        let asked = api.requests();
        assert!(asked
            .iter()
            .any(|r| r.header("x-api-key") == Some(fake_anthropic::KEY)));
    }
}

#[test]
fn shell_commands_run_only_at_the_level_that_allows_them() {
    for level in LEVELS {
        let bed = Bed::new();
        let api = fake_anthropic::start(|_, turn| match turn {
            0 => Turn::Bash("python3 -c \"open('checked.txt', 'w').write('ok')\"".into()),
            _ => done("BUILDER_COMPLETE"),
        });
        let run = bed.run(&api, level, &[]);
        let ran = bed.project.path().join("checked.txt").exists();
        let sandbox_missing = run.stderr.contains("Sandbox disabled");
        match level {
            // Without bubblewrap Claude cannot sandbox the command, so basic refuses it.
            Permission::Basic if sandbox_missing => {
                assert!(!ran, "{run}");
                assert_eq!(run.report.refused.len(), 1, "{run}");
                assert!(run.report.refused[0].starts_with("Bash python3"), "{run}");
            }
            _ => assert!(ran && run.report.refused.is_empty(), "{level:?}: {run}"),
        }
    }
}

#[test]
fn an_edit_outside_the_project_is_refused_and_reported() {
    let bed = Bed::new();
    let outside = bed.home.path().join("outside.txt");
    let api = fake_anthropic::start({
        let outside = outside.clone();
        move |_, turn| match turn {
            0 => Turn::Write {
                path: outside.clone(),
                content: "should not land\n".into(),
            },
            _ => done("BUILDER_COMPLETE"),
        }
    });
    let run = bed.run(&api, Permission::Basic, &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(!outside.exists());
    assert_eq!(
        run.report.refused,
        [format!("Write {}", outside.display())],
        "{run}"
    );
}

#[test]
fn a_rejected_key_is_an_auth_failure() {
    let bed = Bed::new();
    let api =
        fake_anthropic::start(|_, _| Turn::Fail(401, "authentication_error", "invalid x-api-key"));
    let run = bed.run(&api, Permission::Basic, &[]);
    assert_ne!(run.code, Some(0), "{run}");
    assert_eq!(
        failure(&run),
        (
            FailureKind::Auth,
            "Invalid API key · Fix external API key".into()
        )
    );
}

#[test]
fn a_missing_key_is_not_logged_in() {
    let bed = Bed::new();
    let api = fake_anthropic::start(|_, _| done("BUILDER_COMPLETE"));
    let args = cli::argv(Harness::Claude, Permission::Basic, "Stage: builder", None);
    let env: Vec<_> = fake_anthropic::env(bed.home.path(), &api)
        .into_iter()
        .filter(|(k, _)| k != "ANTHROPIC_API_KEY")
        .collect();
    let run = cli::run(
        Harness::Claude,
        Permission::Basic,
        &args,
        &env,
        bed.project.path(),
    );
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::Auth);
    assert!(message.starts_with("Not logged in"), "{run}");
    assert_eq!(run.report.last_line.as_deref(), Some(message.as_str()));
}

#[test]
fn a_rate_limit_is_classified_as_such() {
    let bed = Bed::new();
    let api = fake_anthropic::start(|_, _| {
        Turn::Fail(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
        )
    });
    let run = bed.run(&api, Permission::Basic, &[]);
    let (kind, message) = failure(&run);
    assert_eq!(kind, FailureKind::RateLimited, "{run}");
    assert!(
        message.contains("exceed your account's rate limit"),
        "{message}"
    );
}

#[test]
fn a_flag_this_version_does_not_know_is_a_bad_invocation() {
    let bed = Bed::new();
    let api = fake_anthropic::start(|_, _| done("BUILDER_COMPLETE"));
    let run = bed.run(&api, Permission::Basic, &["--no-such-flag"]);
    assert_eq!(
        failure(&run),
        (
            FailureKind::BadInvocation,
            "error: unknown option '--no-such-flag'".into()
        )
    );
    assert!(api.requests().is_empty());
}

#[test]
fn a_server_that_never_answers_shows_only_retry_noise() {
    let bed = Bed::new();
    let api = FakeApi::start(|req| match req.method.as_str() {
        "HEAD" => crate::server::Reply::Json {
            status: 200,
            body: serde_json::json!({}),
        },
        _ => crate::server::Reply::Stall,
    });
    let args = cli::argv(Harness::Claude, Permission::Basic, "Stage: builder", None);
    let mut env = fake_anthropic::env(bed.home.path(), &api);
    env.retain(|(k, _)| k != "CLAUDE_CODE_MAX_RETRIES");
    env.push(("CLAUDE_CODE_MAX_RETRIES".into(), "2".into()));
    env.push(("API_TIMEOUT_MS".into(), "500".into()));
    let run = cli::run(
        Harness::Claude,
        Permission::Basic,
        &args,
        &env,
        bed.project.path(),
    );
    let noise = Harness::Claude.noise_set().unwrap();
    let retries: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| noise.is_match(l.trim()))
        .collect();
    assert_eq!(retries.len(), 2, "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(
        (kind, message.as_str()),
        (FailureKind::Network, "Request timed out")
    );
}

/// Through millrace: a rejected key pauses the runtime with the reason and the fix; the item
/// stays at its stage and no repair budget is spent.
#[test]
fn a_rejected_key_pauses_millrace_and_keeps_the_task_at_its_stage() {
    let mut w = Workspace::new("claude", "");
    let api =
        fake_anthropic::start(|_, _| Turn::Fail(401, "authentication_error", "invalid x-api-key"));
    w.env = fake_anthropic::env(w.home.path(), &api);
    w.ws.add_task("t1", "");
    let out = w.run(&["run", "once"]);
    assert_ne!(out.status.code(), Some(0));

    assert_eq!(w.ws.folder_of("t1"), ["tasks/active"]);
    assert_eq!(w.ws.stages_started(), ["builder"]);
    let status = w.ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], true, "{status:#}");
    assert_eq!(status["snapshot"]["active_stage"], "builder");
    let reason = status["snapshot"]["pause_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("claude is not logged in or its credentials were rejected")
            && reason.contains("harness_auth: Invalid API key"),
        "{reason}"
    );
    assert_eq!(status["last_failure"]["failure_class"], "harness_auth");
    let counters = w.ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");
}

/// Through millrace: each stage answers with its marker; the builder first writes a file in
/// the project with Claude Code's own Write tool.
#[test]
fn a_task_runs_builder_checker_updater_to_done_with_claude() {
    let mut w = crate::e2e::Workspace::new("claude", "");
    let file = w.ws.path().join("hello.txt");
    let api = fake_anthropic::start({
        let file = file.clone();
        move |stage, turn| match (stage, turn) {
            ("builder", 0) => Turn::Write {
                path: file.clone(),
                content: "built by claude through millrace\n".into(),
            },
            ("builder", _) => done("BUILDER_COMPLETE"),
            ("checker", _) => done("CHECKER_PASS"),
            ("updater", _) => done("UPDATE_COMPLETE"),
            (other, _) => Turn::Say(format!("unexpected stage {other:?}")),
        }
    });
    w.env = fake_anthropic::env(w.home.path(), &api);
    w.ws.add_task("t1", "");
    w.run_until_idle();

    assert_eq!(w.ws.folder_of("t1"), ["tasks/done"]);
    assert_eq!(w.ws.stages_started(), ["builder", "checker", "updater"]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "built by claude through millrace\n"
    );
    let run = w.run_of("t1");
    let per_turn_in = INPUT + CACHE_WRITE + CACHE_READ;
    let stages = run["stage_results"].as_array().unwrap();
    assert_eq!(stages[0]["runner_name"], "claude");
    for (stage, turns) in stages.iter().zip([2, 1, 1]) {
        let usage = &stage["token_usage"];
        assert_eq!(usage["input_tokens"], turns * per_turn_in, "{stage:#}");
        assert_eq!(usage["cached_input_tokens"], turns * CACHE_READ);
        assert_eq!(usage["output_tokens"], turns * OUTPUT);
        assert!(
            usage["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
            "{usage}"
        );
    }
}
