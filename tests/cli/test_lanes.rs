//! Parallel lanes on real git repositories made by the tests: several tasks at once, each in
//! its own worktree, landing on the base branch one at a time. The harness
//! (`fixtures/lane-harness`) makes real file changes in the worktree it is given.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{fixture, task_doc, wait_for, Daemon, TestWs};

/// Run git in `dir`; panics with git's words when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs (is it installed?)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A workspace that is a git repository on `main` with a first commit holding `shared.txt`,
/// the lane harness as the runner and `execution` set as given.
fn repo_ws(execution: &str, env: &[(&str, &str)]) -> TestWs {
    let ws = TestWs::new();
    let dir = ws.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "test"]);
    git(dir, &["config", "user.email", "test@localhost"]);
    ws.write(".gitignore", "millrace-agents/\ninputs/\nplans/\n*.log\n");
    ws.write("shared.txt", "base\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "start"]);
    let mut vars = String::new();
    for (k, v) in env {
        vars.push_str(&format!("      {k}: \"{v}\"\n"));
    }
    vars.push_str(&format!(
        "      LANE_LOG: {}\n      LANE_PLAN_DIR: {}\n",
        dir.join("lanes.log").display(),
        dir.join("plans").display()
    ));
    ws.write(
        "millrace-agents/millrace.yaml",
        &format!(
            "runners:\n  kill_grace_seconds: 1\n  codex:\n    command: {}\n    args: []\n    env:\n{vars}watchers:\n  settle_ms: 0\nexecution:\n{execution}",
            fixture("lane-harness").display()
        ),
    );
    ws
}

/// What a task's stage does in its worktree (a bash script).
/// A two-lane daemon running task `id`, whose stage writes `shared.txt` while an operator's
/// edit of it is uncommitted in the main tree: the landing waits.
fn landing_waits(id: &str) -> (TestWs, Daemon) {
    let ws = repo_ws("  lanes: 2\n", &[]);
    plan(&ws, id, "builder", &format!("echo {id} > shared.txt\n"));
    ws.write("shared.txt", "an operator's edit in progress\n");
    ws.add_task(id, "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the landing to wait", Duration::from_secs(30), || {
        ws.events()
            .iter()
            .any(|e| e["event_type"] == "integration_waiting")
    });
    (ws, daemon)
}

fn plan(ws: &TestWs, task: &str, stage: &str, script: &str) {
    ws.write(&format!("plans/{task}.{stage}"), script);
}

/// `(start_ns, end_ns, stage, task, dir)` per stage the harness ran.
fn harness_log(ws: &TestWs) -> Vec<(u128, u128, String, String, String)> {
    std::fs::read_to_string(ws.path().join("lanes.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].to_string(),
            )
        })
        .collect()
}

fn branches(ws: &TestWs) -> Vec<String> {
    git(ws.path(), &["branch", "--format=%(refname:short)"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn worktrees(ws: &TestWs) -> usize {
    git(ws.path(), &["worktree", "list", "--porcelain"])
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count()
}

fn events_of<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event_type"] == kind).collect()
}

#[test]
fn six_independent_tasks_on_three_lanes_all_land_with_linear_history() {
    let ws = repo_ws("  lanes: 3\n", &[("LANE_SLEEP", "0.3")]);
    for i in 1..=6 {
        ws.add_task(&format!("t{i}"), "");
    }
    ws.run_until_idle();
    for i in 1..=6 {
        assert_eq!(ws.folder_of(&format!("t{i}")), ["tasks/done"]);
        assert_eq!(ws.read(&format!("work/t{i}.txt")), format!("t{i}\n"));
    }
    let log = git(ws.path(), &["log", "--format=%s", "main"]);
    assert_eq!(log.lines().count(), 7, "six task commits on start:\n{log}");
    assert!(
        git(ws.path(), &["rev-list", "--merges", "main"]).is_empty(),
        "linear history"
    );
    assert_eq!(branches(&ws), ["main"], "landed branches are deleted");
    assert_eq!(worktrees(&ws), 1, "landed worktrees are removed");
    // Each stage ran in its task's worktree, and lanes overlapped.
    let runs = harness_log(&ws);
    assert_eq!(runs.len(), 18, "3 stages x 6 tasks: {runs:?}");
    for (_, _, _, task, dir) in &runs {
        assert!(
            dir.ends_with(&format!("millrace-agents/worktrees/{task}")),
            "{task} ran in {dir}"
        );
    }
    let most = runs
        .iter()
        .map(|(s, _, _, _, _)| runs.iter().filter(|(a, b, ..)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert_eq!(most, 3, "three stages at once, never more");
    let events = ws.events();
    let landed = events_of(&events, "work_item_integrated");
    assert_eq!(landed.len(), 6);
    assert!(landed.iter().all(|e| e["data"]["commit"].is_string()));
    assert!(landed.iter().all(|e| e["data"]["outcome"] == "landed"));
    let doc = ws.read("millrace-agents/tasks/done/t1.md");
    assert!(
        doc.contains("integrated: branch millrace/t1 landed on main at"),
        "{doc}"
    );
    // The stage request names the worktree; the prompt tells the agent.
    let prompt = std::fs::read_dir(ws.rt().join("runs"))
        .unwrap()
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .find(|f| f.file_name().to_string_lossy().starts_with("runner_prompt"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .expect("a prompt artifact");
    assert!(prompt.contains("Working Directory: "), "{prompt}");
    assert!(prompt.contains("Working Branch: millrace/t"), "{prompt}");
}

#[test]
fn two_tasks_editing_the_same_line_one_lands_the_other_goes_to_its_fixer_then_lands() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "0.2")]);
    for task in ["a", "b"] {
        plan(&ws, task, "builder", "echo \"$TASK\" > shared.txt\n");
        // Redo the change on top of the base, keeping the other task's line.
        plan(
            &ws,
            task,
            "fixer",
            "git reset -q --hard \"$BASE\" && echo \"$TASK\" >> shared.txt && git commit -qam \"$TASK: resolved\"\n",
        );
        ws.add_task(task, "");
    }
    ws.run_until_idle();
    assert_eq!(ws.folder_of("a"), ["tasks/done"]);
    assert_eq!(ws.folder_of("b"), ["tasks/done"]);
    let events = ws.events();
    let conflicts = events_of(&events, "integration_conflict");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let loser = conflicts[0]["data"]["work_item_id"].as_str().unwrap();
    let winner = if loser == "a" { "b" } else { "a" };
    assert_eq!(
        conflicts[0]["data"]["files"],
        serde_json::json!(["shared.txt"])
    );
    assert_eq!(ws.read("shared.txt"), format!("{winner}\n{loser}\n"));
    assert!(git(ws.path(), &["rev-list", "--merges", "main"]).is_empty());
    // The fixer was told about the conflict.
    let fixer = events
        .iter()
        .find(|e| e["event_type"] == "stage_started" && e["data"]["stage"] == "fixer")
        .expect("the fixer ran");
    let run = ws
        .rt()
        .join("runs")
        .join(fixer["data"]["run_id"].as_str().unwrap());
    let report = std::fs::read_to_string(run.join("integration_conflict.md")).unwrap();
    assert!(
        report.contains("shared.txt") && report.contains("git rebase main"),
        "{report}"
    );
    let request = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("runner_prompt"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .find(|p| p.contains("Stage: fixer"))
        .unwrap();
    assert!(
        request.contains("Runtime Error Code: integration_conflict"),
        "{request}"
    );
    assert_eq!(branches(&ws), ["main"]);
    assert_eq!(worktrees(&ws), 1);
}

#[test]
fn a_conflict_past_its_budget_blocks_the_task_and_keeps_its_branch() {
    let ws = repo_ws(
        "  lanes: 2\n  max_integration_conflicts: 1\n",
        &[("LANE_SLEEP", "0.2")],
    );
    for task in ["a", "b"] {
        plan(&ws, task, "builder", "echo \"$TASK\" > shared.txt\n");
        ws.add_task(task, "");
    }
    ws.run_until_idle();
    let events = ws.events();
    let conflicts = events_of(&events, "integration_conflict");
    assert_eq!(conflicts.len(), 2, "one sent to the fixer, then blocked");
    let loser = conflicts[1]["data"]["work_item_id"].as_str().unwrap();
    assert_eq!(
        conflicts[1]["data"]["action"],
        "blocked; the branch is kept"
    );
    assert_eq!(ws.folder_of(loser), ["tasks/blocked"]);
    let blocked = events
        .iter()
        .find(|e| e["event_type"] == "work_item_blocked" && e["data"]["id"] == loser)
        .unwrap();
    assert!(
        blocked["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("integration_conflict:"),
        "{blocked}"
    );
    let branch = format!("millrace/{loser}");
    assert_eq!(branches(&ws), ["main", branch.as_str()]);
    assert_eq!(
        git(ws.path(), &["show", &format!("{branch}:shared.txt")]),
        format!("{loser}\n"),
        "the branch keeps the task's work"
    );
    assert_eq!(worktrees(&ws), 1, "the blocked task's worktree is removed");
}

#[test]
fn a_task_waits_until_the_task_it_depends_on_has_landed() {
    let ws = repo_ws("  lanes: 3\n", &[("LANE_SLEEP", "0.2")]);
    ws.add_task("first", "");
    // Fails (and so never passes) unless the dependency's change is in its worktree.
    plan(
        &ws,
        "second",
        "builder",
        "test -f work/first.txt && echo second > work/second.txt\n",
    );
    let doc = task_doc("second", "")
        .replace("Risk:\n- Low.\n", "Risk:\n- Low.\n\nDepends-On:\n- first\n");
    let path = ws.write("inputs/second.md", &doc);
    ws.ok(&["add-task", path.to_str().unwrap()]);
    ws.add_task("other", "");
    ws.run_until_idle();
    for id in ["first", "second", "other"] {
        assert_eq!(ws.folder_of(id), ["tasks/done"], "{id}");
    }
    let events = ws.events();
    let at = |kind: &str, id: &str| {
        events
            .iter()
            .position(|e| {
                e["event_type"] == kind
                    && (e["data"]["id"] == id || e["data"]["work_item_id"] == id)
            })
            .unwrap_or_else(|| panic!("no {kind} for {id}"))
    };
    assert!(at("work_item_integrated", "first") < at("work_item_claimed", "second"));
    assert!(
        at("work_item_claimed", "other") < at("work_item_integrated", "first"),
        "an independent task runs beside"
    );
    assert_eq!(ws.read("work/second.txt"), "second\n");
}

#[test]
fn branch_mode_leaves_each_finished_branch_for_review() {
    let ws = repo_ws("  lanes: 2\n  integration: branch\n", &[]);
    ws.add_task("r1", "");
    ws.add_task("r2", "");
    ws.run_until_idle();
    assert_eq!(
        git(ws.path(), &["log", "--format=%s", "main"])
            .lines()
            .count(),
        1,
        "nothing lands on main"
    );
    assert_eq!(branches(&ws), ["main", "millrace/r1", "millrace/r2"]);
    for id in ["r1", "r2"] {
        assert_eq!(ws.folder_of(id), ["tasks/done"]);
        assert_eq!(
            git(
                ws.path(),
                &["show", &format!("millrace/{id}:work/{id}.txt")]
            ),
            format!("{id}\n")
        );
        let doc = ws.read(&format!("millrace-agents/tasks/done/{id}.md"));
        assert!(
            doc.contains(&format!("branch millrace/{id} left for review")),
            "{doc}"
        );
    }
    let events = ws.events();
    let landed = events_of(&events, "work_item_integrated");
    assert_eq!(landed.len(), 2);
    assert!(landed
        .iter()
        .all(|e| e["data"]["commit"].is_null() && e["data"]["integration"] == "branch"));
    assert_eq!(worktrees(&ws), 1);
}

#[test]
fn more_than_one_lane_needs_a_git_repository() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\nexecution:\n  lanes: 2\n",
    );
    for args in [
        &["config", "validate"][..],
        &["compile", "validate"][..],
        &["run", "once"][..],
    ] {
        let err = ws.fails(args, 1);
        assert!(
            err.contains("execution.lanes is 2") && err.contains("git init"),
            "{args:?}: {err}"
        );
    }
    let doctor = ws.run(&["--json", "doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("lanes_without_git"), "{text}");
    ws.write("millrace-agents/millrace.yaml", "execution:\n  lanes: 0\n");
    let err = ws.fails(&["config", "validate"], 1);
    assert!(
        err.contains("execution.lanes must be between 1 and 64"),
        "{err}"
    );
}

#[test]
fn a_dirty_main_tree_makes_integration_wait_with_the_reason_then_it_lands() {
    let (ws, daemon) = landing_waits("w1");
    let waiting = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "integration_waiting")
        .unwrap();
    assert!(
        waiting["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("shared.txt"),
        "{waiting}"
    );
    assert_eq!(ws.read("shared.txt"), "an operator's edit in progress\n");
    let status = ws.json(&["status"]);
    let lane = &status["lanes"][0];
    assert_eq!(lane["work_item_id"], "w1");
    assert_eq!(lane["integrating"], true);
    assert!(lane["integration_wait"]
        .as_str()
        .unwrap()
        .contains("shared.txt"));
    let queue = ws.ok(&["queue", "ls"]);
    assert!(queue.contains("waiting to land"), "{queue}");
    git(ws.path(), &["checkout", "--", "shared.txt"]);
    wait_for("the task to land", Duration::from_secs(30), || {
        ws.folder_of("w1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(ws.read("shared.txt"), "w1\n");
}

/// A git lock held in the lane's repository when its branch is to land (another git
/// process at work there: one a killed daemon left running, say) makes the landing wait with
/// the lock named, not block the task; once the lock is gone the branch lands.
#[test]
fn a_held_git_lock_makes_integration_wait_then_it_lands() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    plan(
        &ws,
        "k1",
        "updater",
        "echo k1 > k1.txt\ntouch \"$(git rev-parse --absolute-git-dir)/HEAD.lock\"\n",
    );
    ws.add_task("k1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("the landing to wait", Duration::from_secs(30), || {
        ws.events()
            .iter()
            .any(|e| e["event_type"] == "integration_waiting")
    });
    let events = ws.events();
    let reason = events_of(&events, "integration_waiting")[0]["data"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("HEAD.lock"), "{reason}");
    assert_eq!(ws.folder_of("k1"), ["tasks/active"]);
    let lock = ws.path().join(".git/worktrees/k1/HEAD.lock");
    std::fs::remove_file(&lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
    wait_for("the task to land", Duration::from_secs(30), || {
        ws.folder_of("k1") == ["tasks/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(ws.read("k1.txt"), "k1\n");
}

/// A lane's worktree deleted between stages, with its work uncommitted, is not landed as
/// an empty branch: the task is blocked saying its work is lost. Before, the worktree was
/// made again from the base, the later stages ran in it, and the task was reported
/// "landed" at another task's commit with none of its own work.
#[test]
fn a_worktree_lost_mid_loop_blocks_the_task_instead_of_landing_nothing() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    plan(&ws, "k1", "builder", "echo k1 > k1.txt\n");
    plan(&ws, "k1", "checker", "d=$(pwd); cd /; rm -rf \"$d\"\n");
    ws.add_task("k1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("k1"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/k1.md");
    assert!(doc.contains("lane_worktree_lost"), "{doc}");
    assert!(!ws
        .event_types()
        .contains(&"work_item_integrated".to_string()));
    assert!(!ws.path().join("k1.txt").exists());
}

/// A lane's worktree replaced by a link to a folder outside the workspace between stages:
/// no later stage runs through the link (the harness would work outside the project); the
/// runtime pauses with the link named. Before, the error was dropped and the stages ran.
#[test]
fn no_stage_runs_in_a_lane_worktree_replaced_by_a_link() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    let outside = tempfile::tempdir().unwrap();
    let moved = outside.path().join("k1");
    plan(
        &ws,
        "k1",
        "checker",
        &format!(
            "d=$(pwd); cd /; mv \"$d\" {0}; ln -s {0} \"$d\"\n",
            moved.display()
        ),
    );
    ws.add_task("k1", "");
    ws.run_until_idle();
    let started: Vec<String> = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "stage_started")
        .map(|e| e["data"]["stage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(started, ["builder", "checker"]);
    let status = ws.json(&["status"]);
    let reason = status["snapshot"]["pause_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("worktrees/k1 is a symbolic link"),
        "{status}"
    );
}

/// With lanes, every lane's running stage is active for `runs ls` and `runs show`, not only
/// the run the snapshot's own fields name (the others read as finished, and `runs tail -f`
/// of one ended at once).
#[test]
fn runs_of_every_running_lane_are_shown_active() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    let release = ws.path().join("release");
    for id in ["r1", "r2"] {
        plan(
            &ws,
            id,
            "builder",
            &format!(
                "touch {id}.started\nwhile [ ! -e {} ]; do sleep 0.05; done\n",
                release.display()
            ),
        );
        ws.add_task(id, "");
    }
    let daemon = ws.spawn_daemon(&[]);
    wait_for("both builders to run", Duration::from_secs(30), || {
        ["r1", "r2"].iter().all(|id| {
            ws.path()
                .join(format!("millrace-agents/worktrees/{id}/{id}.started"))
                .exists()
        })
    });
    let runs = ws.json(&["runs", "ls"]);
    let active: Vec<&serde_json::Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["active"] == true)
        .collect();
    assert_eq!(active.len(), 2, "{runs}");
    for run in &active {
        let id = run["run_id"].as_str().unwrap();
        let shown = ws.json(&["runs", "show", id]);
        assert_eq!(shown["active"], true, "{shown}");
    }
    std::fs::write(&release, "").unwrap();
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
}

#[test]
fn stop_lets_every_running_lane_finish_its_stage() {
    let ws = repo_ws("  lanes: 3\n", &[("LANE_SLEEP", "1")]);
    for i in 1..=3 {
        ws.add_task(&format!("s{i}"), "");
    }
    let daemon = ws.spawn_daemon(&[]);
    wait_for("three stages to run", Duration::from_secs(30), || {
        ws.stages_started().len() >= 3
    });
    let text = ws.ok(&["stop"]);
    assert!(
        text.contains("stops when the running stages (lane 1: builder on s")
            && text.contains("lane 3: builder on s")
            && text.contains("ends them now"),
        "{text}"
    );
    daemon.wait_exit(Duration::from_secs(30));
    let events = ws.events();
    let started = events_of(&events, "stage_started").len();
    assert!(started >= 3);
    assert_eq!(
        events_of(&events, "stage_completed").len(),
        started,
        "every running stage finished"
    );
    assert!(events_of(&events, "stage_interrupted").is_empty());
    let snapshot = ws.read("millrace-agents/state/runtime_snapshot.yaml");
    assert_eq!(snapshot.matches("- lane: ").count(), 3, "{snapshot}");
    let status = ws.json(&["status"]);
    assert_eq!(status["lanes"].as_array().unwrap().len(), 3, "{status}");
    let text = ws.ok(&["status"]);
    assert!(text.contains("lane 1: task s"), "{text}");
    // Stopped: no stage runs, and status does not say one does.
    assert!(
        text.contains(", not running: no daemon runs it in "),
        "{text}"
    );
    // A worktree deleted by hand is named by doctor and recreated from its branch.
    std::fs::remove_dir_all(ws.rt().join("worktrees/s2")).unwrap();
    let doctor = ws.json(&["doctor"]);
    let codes: Vec<&str> = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"lane_worktree_missing"), "{doctor}");
    assert_eq!(doctor["errors"], 0, "{doctor}");
    // The next start resumes each lane at its recorded stage, in its worktree. The deleted
    // one held its builder's work uncommitted, so that work is gone: the task is blocked as
    // such, not carried on and landed with nothing.
    ws.run_until_idle();
    for i in [1, 3] {
        assert_eq!(ws.folder_of(&format!("s{i}")), ["tasks/done"]);
    }
    assert_eq!(ws.folder_of("s2"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/s2.md");
    assert!(doc.contains("lane_worktree_lost"), "{doc}");
    assert_eq!(worktrees(&ws), 1);
}

/// Lane worktrees left after a `clear-stale-state` with lanes then turned down to one: no
/// daemon with one lane cleans them and they may hold uncommitted work, so `doctor` names
/// each with the git steps (it said nothing once `execution.lanes` was 1).
#[test]
fn worktrees_left_when_lanes_are_turned_down_are_named_by_doctor() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "1")]);
    for id in ["d1", "d2"] {
        ws.add_task(id, "");
    }
    let daemon = ws.spawn_daemon(&[]);
    wait_for("two stages to run", Duration::from_secs(30), || {
        ws.stages_started().len() >= 2
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    let config = ws
        .read("millrace-agents/millrace.yaml")
        .replace("lanes: 2", "lanes: 1");
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.ok(&["clear-stale-state", "--reason", "back to one lane"]);
    let doctor = ws.json(&["doctor"]);
    let stray: Vec<&serde_json::Value> = doctor["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "lane_worktree_stray")
        .collect();
    assert_eq!(stray.len(), 2, "{doctor}");
    assert!(
        stray[0]["fix"]
            .as_str()
            .unwrap()
            .contains("git worktree remove"),
        "{doctor}"
    );
}

#[test]
fn one_lane_needs_no_git_and_writes_no_lane_fields() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("one", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("one"), ["tasks/done"]);
    let snapshot = ws.read("millrace-agents/state/runtime_snapshot.yaml");
    assert!(!snapshot.contains("lanes"), "{snapshot}");
    assert!(!ws.exists("millrace-agents/worktrees"));
}

#[test]
fn retry_active_names_the_task_and_ends_only_its_lane() {
    let ws = repo_ws(
        "  lanes: 2\nruntime:\n  stop_mode: interrupt\n",
        &[("LANE_SLEEP", "30")],
    );
    ws.add_task("p1", "");
    ws.add_task("p2", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("two stages to run", Duration::from_secs(30), || {
        ws.stages_started().len() >= 2
    });
    let refused = ws.run(&["retry-active"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("name one with --id"), "{said}");
    ws.ok(&["retry-active", "--id", "p1", "--reason", "wrong approach"]);
    let events = ws.events();
    let interrupted = events_of(&events, "stage_interrupted");
    assert_eq!(interrupted.len(), 1, "{interrupted:?}");
    assert_eq!(interrupted[0]["data"]["work_item_id"], "p1");
    assert!(events
        .iter()
        .any(|e| e["event_type"] == "work_item_requeued" && e["data"]["id"] == "p1"));
    // p1 is claimed again (from its entry stage, into the branch it had); p2 ran on.
    wait_for("p1 to run again", Duration::from_secs(30), || {
        ws.events()
            .iter()
            .filter(|e| e["event_type"] == "work_item_claimed" && e["data"]["id"] == "p1")
            .count()
            == 2
    });
    let p2_starts = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "stage_started" && e["data"]["work_item_id"] == "p2")
        .count();
    assert_eq!(p2_starts, 1, "p2's stage was not touched");
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
}

#[test]
fn the_planning_plane_runs_beside_the_lanes_in_the_main_working_tree() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "0.5")]);
    ws.add_task("e1", "");
    ws.add_task("e2", "");
    let spec = ws.write(
        "inputs/sp.md",
        &crate::common::spec_doc("sp", "2026-03-01T09:00:00Z"),
    );
    ws.ok(&["add-spec", spec.to_str().unwrap()]);
    let daemon = ws.spawn_daemon(&[]);
    // A running lane shows its harness's process group.
    wait_for(
        "a lane's harness group in status",
        Duration::from_secs(30),
        || {
            ws.json(&["status"])["lanes"]
                .as_array()
                .is_some_and(|lanes| lanes.iter().any(|l| l["process_group"].as_u64().is_some()))
        },
    );
    wait_for("the work to finish", Duration::from_secs(60), || {
        ws.folder_of("e1") == ["tasks/done"]
            && ws.folder_of("e2") == ["tasks/done"]
            && ws.folder_of("sp") == ["specs/done"]
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    let runs = harness_log(&ws);
    let root = std::fs::canonicalize(ws.path()).unwrap();
    let planner = runs
        .iter()
        .find(|(_, _, stage, _, _)| stage == "planner")
        .expect("the planner ran");
    assert_eq!(
        Path::new(&planner.4),
        root,
        "planning runs in the main tree"
    );
    let beside = runs
        .iter()
        .filter(|(s, e, stage, _, _)| stage == "builder" && *s < planner.1 && planner.0 < *e)
        .count();
    assert!(beside >= 1, "a lane ran while the planner did: {runs:?}");
}

#[test]
fn clear_stale_state_requeues_every_lane_and_the_next_start_reuses_their_branches() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "1")]);
    ws.add_task("c1", "");
    ws.add_task("c2", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("both builders to finish", Duration::from_secs(30), || {
        harness_log(&ws).iter().filter(|r| r.2 == "builder").count() == 2
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    // The builders' work is in the worktrees, not committed yet.
    assert_eq!(worktrees(&ws), 3);
    ws.ok(&["clear-stale-state", "--reason", "start over"]);
    assert_eq!(ws.folder_of("c1"), ["tasks/queue"]);
    let snapshot = ws.read("millrace-agents/state/runtime_snapshot.yaml");
    assert!(!snapshot.contains("lanes:"), "{snapshot}");
    // The next start commits what the worktrees held to their branches, removes them, and
    // the tasks, claimed again, continue on those branches.
    plan(&ws, "c1", "builder", "test -f work/c1.txt\n");
    plan(&ws, "c2", "builder", "test -f work/c2.txt\n");
    ws.run_until_idle();
    for id in ["c1", "c2"] {
        assert_eq!(ws.folder_of(id), ["tasks/done"]);
        assert_eq!(ws.read(&format!("work/{id}.txt")), format!("{id}\n"));
    }
    let events = ws.events();
    assert!(events_of(&events, "lane_cleaned").len() >= 2, "{events:?}");
    assert_eq!(branches(&ws), ["main"]);
    assert_eq!(worktrees(&ws), 1);
    // What the worktrees held landed with the rest of each task's work, under its name.
    let log = git(ws.path(), &["log", "main", "--format=%s"]);
    let subjects: Vec<&str> = log.lines().filter(|s| *s != "start").collect();
    assert!(!subjects.is_empty(), "{log}");
    assert!(
        subjects
            .iter()
            .all(|s| s.starts_with("c1: ") || s.starts_with("c2: ")),
        "{log}"
    );
}

#[test]
fn a_task_that_changed_nothing_is_recorded_as_landing_nothing() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    plan(&ws, "t-none", "builder", "true\n");
    ws.add_task("t-none", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-none"), ["tasks/done"]);
    let doc = ws.read("millrace-agents/tasks/done/t-none.md");
    assert!(
        doc.contains("integrated: branch millrace/t-none changed nothing; nothing to land on main"),
        "{doc}"
    );
    let events = ws.events();
    let landed = events_of(&events, "work_item_integrated");
    assert_eq!(landed.len(), 1, "{events:?}");
    assert_eq!(landed[0]["data"]["outcome"], "no_changes");
    assert!(landed[0]["data"]["commit"].is_null(), "{:?}", landed[0]);
    assert_eq!(git(ws.path(), &["log", "--format=%s", "main"]), "start\n");
    assert_eq!(branches(&ws), ["main"]);
}

#[test]
fn merge_mode_merges_the_base_into_a_branch_that_fell_behind_then_fast_forwards() {
    let ws = repo_ws(
        "  lanes: 2\n  integration: merge\n",
        &[("LANE_SLEEP", "0.2")],
    );
    ws.add_task("m1", "");
    ws.add_task("m2", "");
    ws.run_until_idle();
    for id in ["m1", "m2"] {
        assert_eq!(ws.folder_of(id), ["tasks/done"]);
        assert_eq!(ws.read(&format!("work/{id}.txt")), format!("{id}\n"));
    }
    let merges = git(ws.path(), &["rev-list", "--merges", "main"]);
    assert_eq!(
        merges.lines().count(),
        1,
        "the second branch took the first one in with a merge commit"
    );
    assert_eq!(branches(&ws), ["main"]);
}

#[test]
fn run_once_with_lanes_runs_a_stage_in_every_lane_and_lands_what_finished() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    ws.add_task("o1", "");
    ws.add_task("o2", "");
    // builder, checker, updater: the third run once finishes both loops and lands them.
    for _ in 0..3 {
        ws.ok(&["run", "once"]);
    }
    let runs = harness_log(&ws);
    assert_eq!(runs.len(), 6, "{runs:?}");
    for id in ["o1", "o2"] {
        assert_eq!(ws.folder_of(id), ["tasks/done"]);
    }
    assert_eq!(
        git(ws.path(), &["log", "--format=%s", "main"])
            .lines()
            .count(),
        3
    );
}

#[test]
fn a_git_failure_in_one_lane_blocks_that_task_and_the_others_land() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "0.2")]);
    // A hook refuses any commit of work/bad.txt: millrace's own commit of the task fails.
    let hook = ws.write(
        ".git/hooks/pre-commit",
        "#!/bin/sh\ngit diff --cached --name-only | grep -q bad.txt && { echo 'bad.txt is not allowed' >&2; exit 1; }\nexit 0\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    ws.add_task("bad", "");
    ws.add_task("good", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("good"), ["tasks/done"]);
    assert_eq!(ws.folder_of("bad"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/bad.md");
    assert!(
        doc.contains("integration_failed: git:") && doc.contains("bad.txt is not allowed"),
        "{doc}"
    );
    // The uncommitted work is still in its worktree for a person.
    assert_eq!(
        ws.read("millrace-agents/worktrees/bad/work/bad.txt"),
        "bad\n"
    );
    assert!(!ws.exists("work/bad.txt"));
}

#[test]
fn a_worktree_left_on_another_branch_is_not_landed_and_kept_for_a_person() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    plan(
        &ws,
        "wander",
        "builder",
        "git switch -q -c side && echo side > side.txt && git add -A && git commit -qm side\n",
    );
    ws.add_task("wander", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("wander"), ["tasks/blocked"]);
    let doc = ws.read("millrace-agents/tasks/blocked/wander.md");
    assert!(
        doc.contains("has branch side checked out instead of branch millrace/wander"),
        "{doc}"
    );
    assert_eq!(
        git(ws.path(), &["log", "--format=%s", "main"])
            .lines()
            .count(),
        1,
        "nothing landed"
    );
    assert!(ws.exists("millrace-agents/worktrees/wander/side.txt"));
    // A restart leaves the kept worktree alone, and doctor says it is kept and what to do.
    ws.run_until_idle();
    assert!(ws.exists("millrace-agents/worktrees/wander/side.txt"));
    let report = ws.json(&["doctor"]);
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["code"] != "lane_worktree_stray"),
        "{report}"
    );
    let kept = findings
        .iter()
        .find(|f| f["code"] == "lane_worktree_kept")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        kept["fix"]
            .as_str()
            .unwrap()
            .contains("millrace requeue wander"),
        "{kept}"
    );
}

#[test]
fn turning_lanes_off_while_tasks_run_in_lanes_is_refused_with_the_way_out() {
    let ws = repo_ws(
        "  lanes: 2\nruntime:\n  stop_mode: interrupt\n",
        &[("LANE_SLEEP", "30")],
    );
    ws.add_task("f1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("a stage to run", Duration::from_secs(30), || {
        !ws.stages_started().is_empty()
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    let config = ws
        .read("millrace-agents/millrace.yaml")
        .replace("lanes: 2", "lanes: 1");
    ws.write("millrace-agents/millrace.yaml", &config);
    let err = ws.fails(&["run", "once"], 1);
    assert!(
        err.contains("tasks f1 are running in parallel lanes") && err.contains("clear-stale-state"),
        "{err}"
    );
}

#[test]
fn two_lanes_repaired_at_once_each_tell_their_troubleshooter_about_their_own_error() {
    let ws = repo_ws("  lanes: 2\n", &[("LANE_SLEEP", "0.3")]);
    for id in ["r1", "r2"] {
        // A file where the run's stage_results/ folder goes: applying the result fails.
        plan(&ws, id, "builder", "touch \"$RUN_DIR/stage_results\"\n");
        plan(
            &ws,
            id,
            "troubleshooter",
            "rm -f \"$RUN_DIR/stage_results\"\n",
        );
        ws.add_task(id, "");
    }
    ws.run_until_idle();
    let events = ws.events();
    let scheduled = events_of(&events, "runtime_post_stage_recovery_scheduled");
    assert_eq!(scheduled.len(), 2, "{scheduled:?}");
    for e in scheduled {
        let report = Path::new(e["data"]["report_path"].as_str().unwrap());
        let prompts: String = std::fs::read_dir(report.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("runner_prompt"))
            .map(|f| std::fs::read_to_string(f.path()).unwrap())
            .filter(|p| p.contains("Stage: troubleshooter"))
            .collect();
        assert!(
            prompts.contains("Runtime Error Code: execution_post_stage_apply_failed"),
            "the troubleshooter of {} was told: {prompts}",
            e["data"]["work_item_id"]
        );
    }
}

#[test]
fn a_task_that_is_landing_is_neither_retried_nor_cleared_away() {
    let (ws, daemon) = landing_waits("k1");
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    let refused = ws.run(&["retry-active", "--id", "k1"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is landing"), "{said}");
    ws.ok(&["clear-stale-state"]);
    assert_eq!(
        ws.folder_of("k1"),
        ["tasks/active"],
        "the landing task stays"
    );
    let snapshot = ws.read("millrace-agents/state/runtime_snapshot.yaml");
    assert!(snapshot.contains("integrating: true"), "{snapshot}");
    git(ws.path(), &["checkout", "--", "shared.txt"]);
    ws.run_until_idle();
    assert_eq!(ws.folder_of("k1"), ["tasks/done"]);
    assert_eq!(ws.read("shared.txt"), "k1\n");
    assert_eq!(
        ws.events()
            .iter()
            .filter(|e| e["event_type"] == "stage_started")
            .count(),
        3,
        "no stage ran again"
    );
}

/// A folder beside the workspace (outside it) with one file, removed when dropped.
struct Outside(std::path::PathBuf);

impl Outside {
    fn new(ws: &TestWs, name: &str) -> Outside {
        let dir = ws.path().parent().unwrap().join(format!(
            "{name}-{}",
            ws.path().file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::fs::write(dir.join("x/keep.txt"), "not millrace's\n").unwrap();
        Outside(dir)
    }

    fn intact(&self) -> bool {
        std::fs::read_to_string(self.0.join("x/keep.txt")).is_ok_and(|t| t == "not millrace's\n")
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_forged_lane_worktree_in_the_snapshot_cannot_send_millrace_outside_the_workspace() {
    let ws = repo_ws(
        "  lanes: 2\nruntime:\n  stop_mode: interrupt\n",
        &[("LANE_SLEEP", "30")],
    );
    let outside = Outside::new(&ws, "victim");
    ws.add_task("v1", "");
    let daemon = ws.spawn_daemon(&[]);
    wait_for("a stage to run", Duration::from_secs(30), || {
        !ws.stages_started().is_empty()
    });
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    // The agent rewrites the snapshot: its lane now "works" in a folder outside, whose
    // checkout looks half made (no .git), on the base branch.
    let target = format!("../{}/x", outside.0.file_name().unwrap().to_string_lossy());
    let snapshot = ws
        .read("millrace-agents/state/runtime_snapshot.yaml")
        .replace(
            "worktree: millrace-agents/worktrees/v1",
            &format!("worktree: {target}"),
        )
        .replace("branch: millrace/v1", "branch: main");
    assert!(snapshot.contains(&target));
    ws.write("millrace-agents/state/runtime_snapshot.yaml", &snapshot);
    let config = ws
        .read("millrace-agents/millrace.yaml")
        .replace("LANE_SLEEP: \"30\"", "LANE_SLEEP: \"0\"");
    ws.write("millrace-agents/millrace.yaml", &config);
    ws.run_until_idle();
    assert!(
        outside.intact(),
        "millrace touched a folder outside the workspace"
    );
    assert_eq!(ws.folder_of("v1"), ["tasks/done"]);
    assert_eq!(branches(&ws), ["main"]);
}

#[test]
fn a_worktree_folder_planted_as_a_link_is_refused_and_nothing_outside_is_touched() {
    let ws = repo_ws("  lanes: 2\n", &[]);
    let outside = Outside::new(&ws, "linked");
    std::os::unix::fs::symlink(&outside.0, ws.rt().join("worktrees")).unwrap();
    ws.add_task("y1", "");
    let err = ws.fails(&["run", "once"], 1);
    assert!(
        err.contains("worktree folder cannot be used") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(outside.intact());
    assert_eq!(ws.folder_of("y1"), ["tasks/queue"]);
}

#[test]
fn a_lane_git_cannot_repair_at_start_does_not_keep_the_daemon_from_starting() {
    let (ws, daemon) = landing_waits("g1");
    ws.ok(&["stop"]);
    daemon.wait_exit(Duration::from_secs(30));
    // A rebase state git itself cannot abort, in the landing lane's worktree.
    let dot_git = ws.read("millrace-agents/worktrees/g1/.git");
    let git_dir = Path::new(dot_git.trim().strip_prefix("gitdir: ").unwrap());
    std::fs::create_dir_all(git_dir.join("rebase-merge")).unwrap();
    git(ws.path(), &["checkout", "--", "shared.txt"]);
    ws.add_task("g2", "");
    ws.run_until_idle();
    let cleaned = ws
        .events()
        .into_iter()
        .find(|e| e["event_type"] == "lane_cleaned" && e["data"]["error"].is_string())
        .expect("the repair that failed is named");
    assert_eq!(cleaned["data"]["worktree"], "millrace-agents/worktrees/g1");
    assert_eq!(ws.folder_of("g1"), ["tasks/blocked"], "kept for a person");
    assert_eq!(ws.folder_of("g2"), ["tasks/done"], "the daemon ran on");
}
