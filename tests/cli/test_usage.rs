//! Usage governance through the real binary: the ledger, budgets that block or pause, rate
//! limits that wait without spending repair budgets, and fallback runners. The scripted
//! runner reports simulated usage and simulated harness failures; `MILLRACE_NOW` is the clock.

use crate::common::{fixture, TestWs};

const T0: &str = "2026-12-03T10:00:00Z";

fn at(ws: &TestWs, now: &str, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .env("MILLRACE_NOW", now)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Scripted runner with `script` and extra config under the top level.
fn setup(ws: &TestWs, script: &str, extra: &str) {
    ws.write("script.yaml", script);
    ws.write(
        "millrace-agents/millrace.yaml",
        &format!(
            "runners:\n  default_runner: scripted\n  scripted:\n    script: script.yaml\nwatchers:\n  settle_ms: 0\n{extra}"
        ),
    );
}

fn started(ws: &TestWs) -> Vec<(String, String)> {
    ws.events()
        .iter()
        .filter(|e| e["event_type"] == "stage_started")
        .map(|e| {
            (
                e["data"]["stage"].as_str().unwrap().to_string(),
                e["data"]["runner"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn stages(ws: &TestWs) -> Vec<String> {
    started(ws).into_iter().map(|(s, _)| s).collect()
}

fn count(ws: &TestWs, kind: &str) -> usize {
    ws.events()
        .iter()
        .filter(|e| e["event_type"] == kind)
        .count()
}

#[test]
fn every_stage_is_counted_once_and_shown_by_usage_status_and_runs() {
    let ws = TestWs::new();
    setup(&ws, "stages: {}\n", "");
    ws.add_task("t1", "");
    ws.run_until_idle();
    let usage = ws.json(&["usage"]);
    assert_eq!(usage["workspace"]["stages"], 3, "{usage:#}");
    assert!(usage["workspace"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(usage["workspace"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(usage["workspace"]["simulated"], true);
    let human = ws.ok(&["usage"]);
    assert!(human.contains("3 stages (simulated)"), "{human}");
    let status = ws.json(&["status"]);
    assert_eq!(status["usage"]["today"]["stages"], 3, "{status:#}");
    // A time bucket keeps no token split: none is shown rather than zeros.
    for key in ["today", "window"] {
        assert_eq!(usage[key]["stages"], 3, "{usage:#}");
        assert!(usage[key].get("input_tokens").is_none(), "{usage:#}");
    }
    let run = ws.json(&["runs", "ls"])["runs"][0].clone();
    assert!(run["token_usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        run["token_usage"]["total_tokens"],
        usage["workspace"]["total_tokens"]
    );
}

#[test]
fn a_stage_result_a_kill_left_as_a_temp_file_is_not_counted() {
    let ws = TestWs::new();
    setup(&ws, "stages: {}\n", "");
    ws.add_task("t1", "");
    ws.ok(&["run", "once"]);
    // What a kill between writing a result and renaming it into place leaves behind: a
    // whole result under a temp name (with a request id no stage result has).
    let results = std::fs::read_dir(ws.rt().join("runs"))
        .unwrap()
        .flatten()
        .map(|run| run.path().join("stage_results"))
        .find(|d| d.is_dir())
        .unwrap();
    let written = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let text = std::fs::read_to_string(written.path())
        .unwrap()
        .replace("request-", "request-0dead");
    std::fs::write(
        results.join(".request-0dead.yaml.tmp-AbCdEf0123456789"),
        text,
    )
    .unwrap();
    ws.run_until_idle();
    let usage = ws.json(&["usage"]);
    assert_eq!(usage["workspace"]["stages"], 3, "{usage:#}");
}

#[test]
fn an_item_over_its_budget_is_blocked_with_the_figures_and_the_next_one_runs() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - result: BUILDER_COMPLETE\n      tokens: 5000\n",
        "usage:\n  per_item:\n    tokens: 4000\n",
    );
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/t1.md");
    assert!(
        doc.contains("budget_exhausted: task t1 used 5000 tokens of 4000 (usage.per_item)"),
        "{doc}"
    );
    assert_eq!(stages(&ws), ["builder"]);
    let exhausted = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "usage_budget_exhausted")
        .unwrap();
    assert_eq!(exhausted["data"]["scope"], "per_item");
    // The budget is per item: a cheap task is not held back by it.
    setup(
        &ws,
        "stages: {}\n",
        "usage:\n  per_item:\n    tokens: 400000\n",
    );
    ws.add_task("t2", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t2"), ["tasks/done"]);
}

#[test]
fn a_spent_window_pauses_the_workspace_until_it_frees_up_then_resumes_by_itself() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - result: BUILDER_COMPLETE\n      tokens: 3000\n",
        "usage:\n  window:\n    hours: 5\n    tokens: 2000\n",
    );
    ws.add_task("t1", "");
    let first = at(&ws, T0, &["run", "once"]);
    assert!(
        stdout(&first).starts_with("ran builder"),
        "{}",
        stdout(&first)
    );

    let held = at(&ws, T0, &["run", "once"]);
    let text = stdout(&held);
    assert!(text.starts_with("paused\n"), "{text}");
    assert!(
        text.contains("the 5-hour window budget is spent: 3000 tokens of 2000"),
        "{text}"
    );
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused_for"], "budget");
    assert_eq!(status["snapshot"]["resume_at"], "2026-12-03T15:00:00Z");
    assert_eq!(ws.folder_of("t1"), ["tasks/active"]);

    // `--until-idle` does not wait hours for the window, and says when it frees up.
    let out = at(&ws, T0, &["run", "daemon", "--until-idle"]);
    let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        said.contains("paused until 2026-12-03T15:00:00Z, when the runtime resumes by itself"),
        "{said}"
    );
    // Still inside the window: nothing runs.
    at(&ws, "2026-12-03T14:59:00Z", &["run", "once"]);
    assert_eq!(stages(&ws), ["builder"]);
    // The window has moved past the expensive stage: the checker runs without a `resume`.
    let later = at(&ws, "2026-12-03T15:00:01Z", &["run", "once"]);
    assert!(
        stdout(&later).starts_with("ran checker"),
        "{}",
        stdout(&later)
    );
    assert_eq!(stages(&ws), ["builder", "checker"]);
    assert_eq!(count(&ws, "runtime_resumed"), 1);
    let resumed = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "runtime_resumed")
        .unwrap();
    assert_eq!(
        resumed["data"]["reason"],
        "the time the workspace budget frees up has come"
    );
}

#[test]
fn raising_a_spent_budget_resumes_at_once() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - result: BUILDER_COMPLETE\n      tokens: 3000\n",
        "usage:\n  daily:\n    tokens: 2000\n",
    );
    ws.add_task("t1", "");
    at(&ws, T0, &["run", "once"]);
    let held = stdout(&at(&ws, T0, &["run", "once"]));
    assert!(held.contains("today's budget (UTC) is spent"), "{held}");
    let doctor = at(&ws, T0, &["--json", "doctor"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "usage_budget_exhausted"),
        "{report:#}"
    );
    setup(
        &ws,
        "stages:\n  builder:\n    - result: BUILDER_COMPLETE\n      tokens: 3000\n",
        "usage:\n  daily:\n    tokens: 20000\n",
    );
    let resumed = stdout(&at(&ws, T0, &["run", "once"]));
    assert!(resumed.starts_with("ran checker"), "{resumed}");
}

#[test]
fn a_rate_limit_with_a_reset_time_waits_and_reruns_the_same_stage_without_repairs() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - fail: rate_limited\n      message: '429 Too Many Requests: usage limit reached'\n      reset_in_seconds: 600\n    - BUILDER_COMPLETE\n",
        "",
    );
    ws.add_task("t1", "");
    let out = at(&ws, T0, &["run", "once"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("[harness_rate_limited: 429 Too Many Requests: usage limit reached]"),
        "{text}"
    );
    assert!(
        text.contains("millrace resumes by itself at 2026-12-03T10:10:00Z"),
        "{text}"
    );
    assert!(
        text.contains("wait for the provider's quota to reset, or add another runner"),
        "{text}"
    );
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused_for"], "rate_limit");
    assert_eq!(status["snapshot"]["active_stage"], "builder");

    at(&ws, "2026-12-03T10:05:00Z", &["run", "once"]);
    assert_eq!(stages(&ws), ["builder"]);
    let resumed = stdout(&at(&ws, "2026-12-03T10:10:01Z", &["run", "once"]));
    assert!(
        resumed.starts_with("ran builder: BUILDER_COMPLETE"),
        "{resumed}"
    );
    assert_eq!(stages(&ws), ["builder", "builder"]);
    let counters = ws.read("millrace-agents/state/recovery_counters.yaml");
    assert!(!counters.contains("t1"), "{counters}");
}

#[test]
fn a_rate_limit_without_a_reset_time_backs_off_exponentially() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - fail: rate_limited\n    - fail: rate_limited\n    - BUILDER_COMPLETE\n",
        "usage:\n  rate_limit_backoff_seconds: 60\n",
    );
    ws.add_task("t1", "");
    at(&ws, T0, &["run", "once"]);
    assert_eq!(
        ws.json(&["status"])["snapshot"]["resume_at"],
        "2026-12-03T10:01:00Z"
    );
    at(&ws, "2026-12-03T10:01:00Z", &["run", "once"]);
    assert_eq!(
        ws.json(&["status"])["snapshot"]["resume_at"],
        "2026-12-03T10:03:00Z"
    );
    let done = stdout(&at(&ws, "2026-12-03T10:03:00Z", &["run", "once"]));
    assert!(done.starts_with("ran builder: BUILDER_COMPLETE"), "{done}");
}

#[test]
fn a_fallback_runner_takes_over_on_quota_but_never_on_a_work_item_failure() {
    let ws = TestWs::new();
    let plan = ws.write(
        "plan.txt",
        "checker emit ### FIX_NEEDED\nchecker emit ### CHECKER_PASS\n",
    );
    ws.write(
        "script.yaml",
        "stages:\n  builder:\n    - fail: rate_limited\n      message: quota exhausted\n",
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        &format!(
            "runners:\n  default_runner: scripted\n  fallback_runners: [command]\n  scripted:\n    script: script.yaml\n  command:\n    argv: [\"{}\", \"{{prompt}}\"]\n    env:\n      FAKE_HARNESS_PLAN: {}\nwatchers:\n  settle_ms: 0\n",
            fixture("fake-harness").display(),
            plan.display()
        ),
    );
    ws.add_task("t1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t1"), ["tasks/done"]);
    let runs = started(&ws);
    assert_eq!(runs[0], ("builder".into(), "scripted".into()));
    assert_eq!(runs[1], ("builder".into(), "command".into()));
    assert!(
        runs[2..].iter().all(|(_, runner)| runner == "command"),
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|(stage, _)| stage == "fixer"),
        "the checker's FIX_NEEDED went to the fixer: {runs:?}"
    );
    assert_eq!(count(&ws, "runner_fallback"), 1);
}

#[test]
fn an_operator_resume_overrides_a_spent_budget_until_it_would_have_freed_up() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - result: BUILDER_COMPLETE\n      tokens: 3000\n",
        "usage:\n  window:\n    hours: 5\n    tokens: 2000\n",
    );
    ws.add_task("t1", "");
    ws.add_task("t2", "");
    at(&ws, T0, &["run", "once"]);
    assert!(stdout(&at(&ws, T0, &["run", "once"])).starts_with("paused\n"));
    at(&ws, T0, &["resume"]);
    let ran = stdout(&at(&ws, T0, &["run", "once"]));
    assert!(ran.starts_with("ran checker"), "{ran}");
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["paused"], false);
    assert_eq!(
        status["snapshot"]["budget_waived_until"],
        "2026-12-03T15:00:00Z"
    );
}

/// A ledger from before buckets, one entry per stage: 3 000 stages of the last 40 hours and
/// the entry of an item a `clear-stale-state` took out of `active/`. The runtime reads it,
/// keeps every figure a budget looks at, and writes it back in buckets without the orphan.
#[test]
fn a_busy_ledger_is_kept_in_buckets_with_its_budget_figures() {
    let ws = TestWs::new();
    setup(&ws, "stages: {}\n", "");
    let t0: jiff::Timestamp = T0.parse().unwrap();
    let mut ledger = String::from(
        "schema_version: \"1.0\"\nkind: usage_ledger\nworkspace:\n  stages: 3000\n  total_tokens: 30000\n\
         lineages: {}\nitems:\n  task:ghost:\n    spend:\n      stages: 1\n    request_ids:\n    - r-ghost\nrecent:\n",
    );
    let stages: Vec<jiff::Timestamp> = (0..3000)
        .map(|k| t0 - jiff::SignedDuration::from_secs(7 + 48 * k))
        .collect();
    for (k, when) in stages.iter().enumerate().rev() {
        ledger.push_str(&format!(
            "- request_id: r-{k}\n  at: \"{when}\"\n  total_tokens: 10\n  cost_usd: 0.01\n"
        ));
    }
    ws.write("millrace-agents/state/usage_ledger.yaml", &ledger);
    ws.add_task("t1", "");
    let now = "2026-12-03T10:01:00Z";
    assert!(at(&ws, now, &["run", "once"]).status.success());

    let usage: serde_json::Value =
        serde_json::from_slice(&at(&ws, now, &["usage", "--json"]).stdout).unwrap();
    let midnight: jiff::Timestamp = "2026-12-03T00:00:00Z".parse().unwrap();
    let today = stages.iter().filter(|t| **t >= midnight).count() as u64;
    assert_eq!(usage["today"]["stages"], today + 1, "{usage:#}");
    let edge = t0 - jiff::SignedDuration::from_hours(5) + jiff::SignedDuration::from_mins(1);
    let window = stages.iter().filter(|t| **t > edge).count() as u64;
    let shown = usage["window"]["stages"].as_u64().unwrap();
    // Exact to a minute at the window's edge (two stages a minute here), never short.
    assert!(
        (window + 1..=window + 3).contains(&shown),
        "{shown} vs {window}"
    );
    assert_eq!(usage["workspace"]["stages"], 3001);
    assert_eq!(count(&ws, "state_file_reset"), 0);

    let text = std::fs::read_to_string(ws.rt().join("state/usage_ledger.yaml")).unwrap();
    let buckets = text.lines().filter(|l| l.contains(" stages ")).count();
    assert!((100..=482).contains(&buckets), "{buckets} buckets:\n{text}");
    assert!(!text.contains("ghost"), "{text}");
    assert!(!text.contains("request_id: r-"), "{text}");
}

/// An operator's `pause` while the runtime paused itself (a rate limit with a reset time)
/// takes over: the reset time passing no longer resumes, only `resume` does. Before, the
/// pause was refused as "already paused" and the runtime then resumed by itself.
#[test]
fn an_operator_pause_over_a_rate_limit_pause_lasts_until_resume() {
    let ws = TestWs::new();
    setup(
        &ws,
        "stages:\n  builder:\n    - fail: rate_limited\n      reset_in_seconds: 600\n    - BUILDER_COMPLETE\n",
        "",
    );
    ws.add_task("t1", "");
    at(&ws, T0, &["run", "once"]);
    assert_eq!(ws.json(&["status"])["snapshot"]["paused_for"], "rate_limit");
    let out = at(&ws, "2026-12-03T10:01:00Z", &["pause"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("it had paused itself ("), "{text}");
    assert!(
        text.contains("now stays paused until `millrace resume`"),
        "{text}"
    );
    let snapshot = ws.json(&["status"])["snapshot"].clone();
    assert_eq!(snapshot["paused"], true);
    assert!(snapshot["paused_for"].is_null(), "{snapshot}");
    // Past the reset time nothing runs.
    at(&ws, "2026-12-03T10:11:00Z", &["run", "once"]);
    assert_eq!(stages(&ws), ["builder"]);
    assert_eq!(ws.json(&["status"])["snapshot"]["paused"], true);
    at(&ws, "2026-12-03T10:12:00Z", &["resume"]);
    let done = stdout(&at(&ws, "2026-12-03T10:12:00Z", &["run", "once"]));
    assert!(done.starts_with("ran builder: BUILDER_COMPLETE"), "{done}");
}

/// A usage ledger that no longer parses is named by `usage` (on stderr) and `doctor`; the
/// next start sets it aside and counts the runs' stage results again, so the budgets do not
/// start from nothing.
#[test]
fn a_garbled_usage_ledger_is_reported_and_rebuilt_from_the_runs() {
    let ws = TestWs::new();
    setup(&ws, "stages: {}\n", "");
    ws.add_task("t1", "");
    ws.run_until_idle();
    let before = ws.json(&["usage"])["workspace"].clone();
    assert_eq!(before["stages"], 3);
    ws.write("millrace-agents/state/usage_ledger.yaml", "garbage: [\n");

    let out = ws.run(&["usage"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the usage ledger cannot be read"), "{err}");
    let report = ws.json(&["usage"]);
    assert!(report["ledger_error"].is_string(), "{report:#}");
    let out = ws.run(&["--json", "doctor"]);
    assert_eq!(out.status.code(), Some(6));
    let doctor: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doctor["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "usage_ledger_invalid"),
        "{doctor:#}"
    );

    ws.add_task("t2", "");
    ws.ok(&["run", "once"]);
    let after = ws.json(&["usage"]);
    assert!(after.get("ledger_error").is_none(), "{after:#}");
    assert_eq!(after["workspace"]["stages"], 4, "{after:#}");
    assert_eq!(after["today"]["stages"], 4, "{after:#}");
    let rebuilt = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "usage_rebuilt")
        .expect("usage_rebuilt");
    assert_eq!(rebuilt["data"]["stages"], 3);
    assert_eq!(rebuilt["data"]["runs"], 1);
    assert!(ws
        .ls("millrace-agents/quarantine")
        .iter()
        .any(|f| f.starts_with("usage_ledger.yaml")));
}
