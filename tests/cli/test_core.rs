//! Issue 2: init, documents through the CLI, queue intake, status, read-only commands.

use crate::common::{fixture, TestWs};

#[test]
fn init_creates_the_tree_and_is_idempotent() {
    let ws = TestWs::bare();
    let first = ws.json(&["init"]);
    assert!(
        first["created_dirs"].as_array().unwrap().len() > 30,
        "{first}"
    );
    assert!(
        first["deployed_assets"].as_array().unwrap().len() > 20,
        "{first}"
    );
    for dir in [
        "millrace-agents/state/mailbox/tmp",
        "millrace-agents/state/mailbox/incoming",
        "millrace-agents/tasks/queue",
        "millrace-agents/specs/blocked",
        "millrace-agents/incidents/resolved",
        "millrace-agents/ideas/inbox",
        "millrace-agents/ideas/tmp",
        "millrace-agents/arbiter/contracts/root-specs",
        "millrace-agents/quarantine",
    ] {
        assert!(ws.path().join(dir).is_dir(), "{dir} missing");
    }
    for file in [
        "millrace-agents/millrace.yaml",
        "millrace-agents/.gitignore",
        "millrace-agents/state/runtime_snapshot.yaml",
        "millrace-agents/state/recovery_counters.yaml",
        "millrace-agents/entrypoints/execution/builder.md",
        "millrace-agents/skills/skills_index.md",
    ] {
        assert!(ws.path().join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        ws.read("millrace-agents/state/execution_status.md"),
        "### IDLE\n"
    );
    ws.write(
        "millrace-agents/millrace.yaml",
        "runtime:\n  run_style: once\n",
    );
    ws.write(
        "millrace-agents/entrypoints/execution/builder.md",
        "# mine\n",
    );
    let report = ws.json(&["init"]);
    assert_eq!(report["created_dirs"].as_array().unwrap().len(), 0);
    assert_eq!(report["created_files"].as_array().unwrap().len(), 0);
    assert_eq!(report["deployed_assets"].as_array().unwrap().len(), 0);
    assert_eq!(
        ws.read("millrace-agents/millrace.yaml"),
        "runtime:\n  run_style: once\n"
    );
    assert_eq!(
        ws.read("millrace-agents/entrypoints/execution/builder.md"),
        "# mine\n"
    );
}

#[test]
fn read_only_commands_never_create_a_workspace() {
    let ws = TestWs::bare();
    for args in [
        vec!["status"],
        vec!["queue", "ls"],
        vec!["queue", "show", "x"],
    ] {
        let err = ws.fails(&args, 3);
        assert!(err.contains("no millrace workspace at"), "{err}");
        assert!(err.contains("millrace init"), "{err}");
    }
    assert!(!ws.exists("millrace-agents"));
}

#[test]
fn markdown_task_is_queued_byte_for_byte() {
    let ws = TestWs::new();
    let out = ws.json(&["add-task", fixture("documents/task.md").to_str().unwrap()]);
    assert_eq!(out["id"], "t-fetch-retry-01");
    assert_eq!(
        ws.read("millrace-agents/tasks/queue/t-fetch-retry-01.md"),
        std::fs::read_to_string(fixture("documents/task.md")).unwrap()
    );
}

#[test]
fn json_spec_import_is_rendered_canonically_as_its_own_root() {
    let ws = TestWs::new();
    ws.ok(&[
        "queue",
        "add-spec",
        fixture("documents/cache-warmup.json").to_str().unwrap(),
    ]);
    let written = ws.read("millrace-agents/specs/queue/s-cache-warmup.md");
    let expected = std::fs::read_to_string(fixture("documents/cache-warmup.md")).unwrap();
    let expected = expected.replace(
        "Source-Type: manual\n",
        "Source-Type: manual\nRoot-Spec-ID: s-cache-warmup\n",
    );
    assert_eq!(written, expected);
}

#[test]
fn duplicate_ids_are_refused_with_a_message() {
    let ws = TestWs::new();
    let task = fixture("documents/task.md");
    ws.ok(&["add-task", task.to_str().unwrap()]);
    let err = ws.fails(&["add-task", task.to_str().unwrap()], 1);
    assert!(
        err.contains("task t-fetch-retry-01 already exists"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("hint: ids are unique"), "{err}");
}

#[test]
fn malformed_documents_are_refused_with_file_line_and_rule_and_write_nothing() {
    let ws = TestWs::new();
    let good = std::fs::read_to_string(fixture("documents/task.md")).unwrap();
    let cases = [
        (
            "title.md",
            good.replace("Title: Add retry", "Title: Something else Add retry"),
            "must match the `Title` field",
        ),
        (
            "repeat.md",
            good.replace(
                "Created-By: manager\n",
                "Created-By: manager\nCreated-By: x\n",
            ),
            "repeats field `Created-By`",
        ),
        (
            "status.md",
            good.replace(
                "Created-By: manager\n",
                "Created-By: manager\nStatus-Hint: Queued\n",
            ),
            "Status-Hint",
        ),
        (
            "date.md",
            good.replace("2026-02-10T09:30:00Z", "20260210T093000Z"),
            "Created-At",
        ),
    ];
    for (name, text, rule) in cases {
        let path = ws.write(name, &text);
        let err = ws.fails(&["add-task", path.to_str().unwrap()], 1);
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(rule), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}:")),
            "no line for {name}: {err}"
        );
        assert!(
            err.contains("hint: fix the document"),
            "no next step for {name}: {err}"
        );
    }
    let wrong_ext = ws.write("task.txt", &good);
    let err = ws.fails(&["add-task", wrong_ext.to_str().unwrap()], 1);
    assert!(err.contains("must end with .md or .json"), "{err}");
    assert!(ws.ls("millrace-agents/tasks/queue").is_empty());
}

#[test]
fn add_idea_copies_into_the_inbox_and_never_overwrites() {
    let ws = TestWs::new();
    let idea = fixture("documents/idea.md");
    ws.ok(&["add-idea", idea.to_str().unwrap()]);
    assert!(ws.exists("millrace-agents/ideas/inbox/idea.md"));
    let err = ws.fails(&["add-idea", idea.to_str().unwrap()], 1);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn status_json_reports_snapshot_queues_and_markers() {
    let ws = TestWs::new();
    ws.ok(&["add-task", fixture("documents/task.md").to_str().unwrap()]);
    let status = ws.json(&["status"]);
    assert_eq!(status["snapshot"]["compiled_plan_id"], "bootstrap");
    assert_eq!(status["snapshot"]["process_running"], false);
    assert_eq!(status["queues"]["execution_queued"], 1);
    assert_eq!(status["markers"]["execution"], "### IDLE");
    let human = ws.ok(&["status"]);
    assert!(human.contains("execution_queue: 1 queued"), "{human}");
}

#[test]
fn queue_ls_and_show_in_both_forms() {
    let ws = TestWs::new();
    ws.ok(&["add-task", fixture("documents/task.md").to_str().unwrap()]);
    let ls = ws.json(&["queue", "ls"]);
    assert_eq!(ls["items"][0]["id"], "t-fetch-retry-01");
    assert_eq!(ls["items"][0]["folder"], "tasks/queue");
    let show = ws.json(&["queue", "show", "t-fetch-retry-01"]);
    assert_eq!(show[0]["item"]["root_spec_id"], "s-fetch-root");
    assert!(ws
        .ok(&["queue", "show", "t-fetch-retry-01"])
        .contains("root_idea_id: idea-resilient-fetch"));
    ws.fails(&["queue", "show", "nope"], 1);
}

#[test]
fn usage_errors_exit_2_and_version_works() {
    let ws = TestWs::bare();
    ws.fails(&["bogus-command"], 2);
    assert!(ws.ok(&["--version"]).starts_with("millrace "));
}

#[test]
fn a_markdown_spec_without_lineage_becomes_its_own_root_keeping_its_bytes() {
    let ws = TestWs::new();
    let text = "# Loose spec\n\nSpec-ID: s-loose\nTitle: Loose spec\nSummary: No lineage given.\nSource-Type: manual\nCreated-At: 2026-01-01T00:00:00Z\nCreated-By: me\n\nGoals:\n- g\n\nConstraints:\n- c\n\nAcceptance:\n- a\n\nReferences:\n- r\n\nNotes kept as prose.\n";
    let path = ws.write("loose.md", text);
    ws.ok(&["add-spec", path.to_str().unwrap()]);
    let written = ws.read("millrace-agents/specs/queue/s-loose.md");
    assert_eq!(
        written,
        text.replace(
            "Spec-ID: s-loose\n",
            "Spec-ID: s-loose\nRoot-Spec-ID: s-loose\n"
        )
    );
}

#[test]
fn with_json_an_error_is_also_a_json_object_on_stdout() {
    let ws = TestWs::bare();
    let out = ws.run(&["--json", "status"]);
    assert_eq!(out.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(value["error"]
        .as_str()
        .unwrap()
        .starts_with("no millrace workspace at"));
    assert_eq!(value["exit_code"], 3);
    assert!(
        value["hint"].is_string() || value["hint"].is_null(),
        "{value}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no millrace workspace"));

    // Another kind: a document that does not parse (exit 1) names its line and the fix.
    let ws = TestWs::new();
    let bad = ws.write("bad.md", "# Task\n\nTask-ID: t1\n");
    let out = ws.run(&["--json", "add-task", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(value["exit_code"], 1);
    assert!(
        value["error"].as_str().unwrap().contains("bad.md"),
        "{value}"
    );
    assert!(
        value["hint"].as_str().unwrap().contains("Work documents"),
        "{value}"
    );
}
