//! Document tests: the examples and rejection table of spec 02 §14, grammar edge cases,
//! JSON import, idea normalization and round-trip properties.

use proptest::prelude::*;

use super::*;
use crate::model::{Plane, Stage, WorkItemKind};

const TASK: &str = include_str!("../../fixtures/documents/task.md");
const SPEC: &str = include_str!("../../fixtures/documents/spec.md");
const INCIDENT: &str = include_str!("../../fixtures/documents/incident.md");
const IDEA: &str = include_str!("../../fixtures/documents/idea.md");
const IDEA_SPEC: &str = include_str!("../../fixtures/documents/idea-spec.md");
const CACHE_JSON: &str = include_str!("../../fixtures/documents/cache-warmup.json");
const CACHE_MD: &str = include_str!("../../fixtures/documents/cache-warmup.md");

fn task(text: &str) -> Result<Document, DocError> {
    parse(WorkItemKind::Task, "t-fetch-retry-01.md", text)
}

fn task_doc(text: &str) -> TaskDoc {
    match task(text) {
        Ok(Document::Task(doc)) => doc,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn task_error(text: &str) -> DocError {
    match task(text) {
        Err(error) => error,
        Ok(doc) => panic!("expected an error, parsed {doc:?}"),
    }
}

/// The 1-based line of the first line of `TASK` that starts with `prefix`.
fn line_of(prefix: &str) -> usize {
    TASK.lines()
        .position(|line| line.starts_with(prefix))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("no line starts with {prefix}"))
}

// --- §14 examples -------------------------------------------------------------------------

#[test]
fn examples_parse_and_render_byte_identically() {
    let examples = [
        (WorkItemKind::Task, "t-fetch-retry-01.md", TASK),
        (WorkItemKind::Spec, "s-fetch-root.md", SPEC),
        (
            WorkItemKind::Incident,
            "inc-t-fetch-retry-01-db.md",
            INCIDENT,
        ),
        (WorkItemKind::Spec, "idea-resilient-fetch.md", IDEA_SPEC),
        (WorkItemKind::Spec, "s-cache-warmup.md", CACHE_MD),
    ];
    for (kind, name, text) in examples {
        let doc = parse(kind, name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.kind(), kind);
        assert_eq!(format!("{}.md", doc.id()), name);
        assert_eq!(doc.render(), text, "{name} re-renders identically");
        doc.check_round_trip(name).unwrap();
    }
}

#[test]
fn task_example_has_the_expected_values() {
    let doc = task_doc(TASK);
    assert_eq!(doc.task_id, "t-fetch-retry-01");
    assert_eq!(doc.title, "Add retry budget to fetch client");
    assert_eq!(doc.spec_id.as_deref(), Some("s-fetch-root"));
    assert_eq!(doc.created_at.render(), "2026-02-10T09:30:00Z");
    assert_eq!(doc.depends_on, vec!["t-fetch-config-01"]);
    assert_eq!(doc.target_paths.len(), 2);
    assert_eq!(doc.status_hint, None);
    assert_eq!(doc.updated_at, None);
}

#[test]
fn incident_example_has_defaults_and_offsets_right() {
    let Document::Incident(doc) = parse(WorkItemKind::Incident, "i.md", INCIDENT).unwrap() else {
        panic!("not an incident");
    };
    assert_eq!(doc.severity, Severity::High);
    assert!(doc.needs_planning);
    assert_eq!(doc.source_stage, Stage::Consultant);
    assert_eq!(doc.source_plane, Plane::Execution);
    assert_eq!(doc.consultant_decision, "needs_planning");
    assert_eq!(doc.opened_at.render(), "2026-02-10T11:02:17.250000Z");

    let Document::Spec(spec) = parse(WorkItemKind::Spec, "s.md", SPEC).unwrap() else {
        panic!("not a spec");
    };
    assert_eq!(spec.created_at.offset_seconds, Some(3600));
    assert_eq!(spec.source_type, SourceType::Idea);
}

#[test]
fn idea_example_normalizes_to_the_expected_spec() {
    let now: jiff::Timestamp = "2026-02-09T15:00:04.118530Z".parse().unwrap();
    let spec = normalize_idea(
        "resilient-fetch",
        "ideas/inbox/resilient-fetch.md",
        IDEA,
        now,
    );
    assert_eq!(Document::Spec(spec).render(), IDEA_SPEC);
}

#[test]
fn json_import_renders_the_expected_markdown() {
    let doc = parse_json(WorkItemKind::Spec, "cache-warmup.json", CACHE_JSON).unwrap();
    assert_eq!(doc.render(), CACHE_MD);
    assert_eq!(
        parse(WorkItemKind::Spec, "s-cache-warmup.md", CACHE_MD).unwrap(),
        doc
    );
}

// --- §14.6 rejection table ----------------------------------------------------------------

#[test]
fn rejects_a_blank_line_before_the_title() {
    let error = task_error(&format!("\n{TASK}"));
    assert!(error
        .message
        .contains("must start with a markdown H1 title"));
    assert_eq!(error.line, Some(1));
    assert_eq!(error.file, "t-fetch-retry-01.md");
}

#[test]
fn rejects_a_title_field_that_differs_from_the_heading() {
    let text = TASK.replace(
        "Title: Add retry budget to fetch client",
        "Title: Something else",
    );
    let error = task_error(&text);
    assert_eq!(
        error.message,
        "markdown H1 title must match the `Title` field"
    );
    assert_eq!(error.line, Some(line_of("Title:")));
}

#[test]
fn rejects_a_repeated_field_even_in_prose() {
    let twice = TASK.replace(
        "Created-By: manager\n",
        "Created-By: manager\nCreated-By: x\n",
    );
    let error = task_error(&twice);
    assert_eq!(error.message, "repeats field `Created-By`");
    assert_eq!(error.line, Some(line_of("Created-By:") + 1));

    let in_prose = format!("{TASK}\nSome prose follows.\nCreated-By: x\n");
    let error = task_error(&in_prose);
    assert_eq!(error.message, "repeats field `Created-By`");
    assert_eq!(error.line, Some(TASK.lines().count() + 3));
}

#[test]
fn rejects_a_list_item_under_a_scalar_field() {
    let text = TASK.replace(
        "Summary: Bound outbound retries so a flaky upstream cannot stall the worker.\n",
        "Summary:\n- x\n",
    );
    let error = task_error(&text);
    assert_eq!(error.message, "has list item under scalar field `Summary`");
    assert_eq!(error.line, Some(line_of("Summary:") + 1));

    let after_blank = TASK.replace(
        "Summary: Bound outbound retries so a flaky upstream cannot stall the worker.\n",
        "Summary:\n\n- x\n",
    );
    assert_eq!(
        task_error(&after_blank).message,
        "has list item under scalar field `Summary`"
    );
}

#[test]
fn rejects_a_non_dash_item_under_a_list() {
    let text = TASK.replace(
        "- Retry storms if the cap is bypassed under load.",
        "* Retry storms if the cap is bypassed under load.",
    );
    let error = task_error(&text);
    assert_eq!(error.message, "has invalid list item under `Risk`");
    assert_eq!(error.line, Some(line_of("- Retry storms")));
}

#[test]
fn rejects_an_empty_required_list() {
    let text = TASK.replace("\n- Retry storms if the cap is bypassed under load.", "");
    let error = task_error(&text);
    assert_eq!(error.message, "Risk: list needs at least 1 item");
    assert_eq!(error.line, Some(line_of("Risk:")));
}

#[test]
fn rejects_an_inline_value_on_a_list_field() {
    let text = TASK.replace("Tags:\n- networking", "Tags: networking");
    let error = task_error(&text);
    assert!(
        error.message.starts_with("Tags: must be a list section"),
        "{error}"
    );
    assert_eq!(error.line, Some(line_of("Tags:")));
}

#[test]
fn rejects_a_field_of_another_kind() {
    let text = format!("{TASK}\nGoals:\n- something\n");
    let error = task_error(&text);
    assert_eq!(error.message, "Goals: field does not belong to a task");
    assert_eq!(error.line, Some(TASK.lines().count() + 2));
}

#[test]
fn rejects_an_identifier_that_breaks_the_pattern() {
    let text = TASK.replace("Task-ID: t-fetch-retry-01", "Task-ID: -t1");
    let error = task_error(&text);
    assert_eq!(
        error.message,
        "Task-ID: must match ^[A-Za-z0-9][A-Za-z0-9._-]*$"
    );
    assert_eq!(error.line, Some(3));
}

#[test]
fn rejects_an_enum_value_in_the_wrong_case() {
    let text = TASK.replace(
        "Created-By: manager",
        "Created-By: manager\nStatus-Hint: Queued",
    );
    let error = task_error(&text);
    assert_eq!(
        error.message,
        "Status-Hint: must be one of queued, active, blocked, done, found `Queued`"
    );
    assert_eq!(error.line, Some(line_of("Created-By:") + 1));
}

#[test]
fn rejects_a_compact_datetime() {
    let text = TASK.replace("2026-02-10T09:30:00Z", "20260210T093000Z");
    let error = task_error(&text);
    assert!(
        error
            .message
            .starts_with("Created-At: invalid datetime `20260210T093000Z`"),
        "{error}"
    );
    assert_eq!(error.line, Some(line_of("Created-At:")));
}

#[test]
fn a_file_name_that_differs_from_the_id_still_parses() {
    let text = TASK.replace("Task-ID: t-fetch-retry-01", "Task-ID: t2");
    let doc = parse(WorkItemKind::Task, "t1.md", &text).unwrap();
    assert_eq!(doc.id(), "t2");
}

// --- Grammar ------------------------------------------------------------------------------

const MINIMAL: &str = "# T\n\nTask-ID: t1\nCreated-At: 2026-02-10T09:30:00Z\nCreated-By: me\n\n\
Target-Paths:\n- a\n\nAcceptance:\n- b\n\nRequired-Checks:\n- c\n\nReferences:\n- d\n\nRisk:\n- e\n";

#[test]
fn empty_and_titleless_documents_are_rejected() {
    let error = task_error("");
    assert_eq!(error.message, "work document is empty");
    assert_eq!(error.line, None);
    for bad in ["#Title\n", "## Title\n", "#\n", "   \n# T\n", "Title\n"] {
        let error = task_error(bad);
        assert!(
            error
                .message
                .starts_with("must start with a markdown H1 title"),
            "{bad:?}"
        );
        assert_eq!(error.line, Some(1));
    }
    assert!(task_error("\n").message.contains("line 1 is blank"));
}

#[test]
fn a_byte_order_mark_is_named_in_the_error() {
    let error = task_error(&format!("\u{feff}{MINIMAL}"));
    assert!(error
        .message
        .starts_with("must start with a markdown H1 title"));
    assert!(error.message.contains("byte-order mark"), "{error}");
    assert_eq!(
        error.to_string(),
        format!("t-fetch-retry-01.md:1: {}", error.message)
    );
}

#[test]
fn minimal_task_takes_defaults_and_canonicalizes() {
    let doc = task_doc(MINIMAL);
    assert_eq!(doc.title, "T");
    assert_eq!(doc.summary, "");
    assert!(doc.depends_on.is_empty());
    let rendered = Document::Task(doc).render();
    assert!(rendered.starts_with("# T\n\nTask-ID: t1\nTitle: T\nCreated-At:"));
}

#[test]
fn every_line_ending_is_accepted() {
    let expected = task_doc(MINIMAL);
    for separator in [
        "\r\n", "\r", "\u{0b}", "\u{0c}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{85}", "\u{2028}",
        "\u{2029}",
    ] {
        let text = MINIMAL.replace('\n', separator);
        assert_eq!(task_doc(&text), expected, "separator {separator:?}");
    }
}

#[test]
fn line_numbers_count_every_line_break() {
    let text = TASK
        .replace('\n', "\r\n")
        .replace("Task-ID: t-fetch-retry-01", "Task-ID: -x");
    assert_eq!(task_error(&text).line, Some(3));
    let text = TASK
        .replace('\n', "\r")
        .replace("Created-At: 2026-02-10T09:30:00Z", "Created-At: soon");
    assert_eq!(task_error(&text).line, Some(line_of("Created-At:")));
}

#[test]
fn lenient_spacing_and_compact_fields_are_accepted() {
    let text = MINIMAL
        .replace("Task-ID: t1", "   Task-ID:t1   ")
        .replace("# T\n", "  #    T   \n")
        .replace("- a\n", "   -    a   \n");
    let doc = task_doc(&text);
    assert_eq!(doc.task_id, "t1");
    assert_eq!(doc.title, "T");
    assert_eq!(doc.target_paths, vec!["a"]);
}

#[test]
fn title_may_end_with_a_hash() {
    let text = MINIMAL.replace("# T\n", "# A #\n");
    assert_eq!(task_doc(&text).title, "A #");
}

#[test]
fn prose_unknown_fields_and_stray_items_are_ignored() {
    let text = MINIMAL.replace(
        "Created-By: me\n",
        "Created-By: me\n\nSome prose here.\n- a stray item\nTask-ID : not a field\n\
         Notes:\n- unknown list\n  more unknown text\n\nNotes: again allowed\n",
    );
    assert_eq!(task_doc(&text), task_doc(MINIMAL));
}

#[test]
fn an_empty_scalar_is_absent() {
    let text = MINIMAL.replace("Created-By: me", "Created-By:");
    let error = task_error(&text);
    assert_eq!(error.message, "Created-By: required field is missing");
    assert_eq!(error.line, None);

    let summary = MINIMAL.replace(
        "Created-By: me",
        "Created-By: me\nSummary:\nprose continues",
    );
    assert_eq!(task_doc(&summary).summary, "");
}

#[test]
fn scalar_continuation_lines_are_prose() {
    let text = MINIMAL.replace(
        "Created-By: me",
        "Created-By: me\nSummary: first\n  second line",
    );
    assert_eq!(task_doc(&text).summary, "first");
}

#[test]
fn list_items_after_a_blank_line_stay_in_the_list() {
    let text = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\n\n- f\n\n\n- g\n");
    assert_eq!(task_doc(&text).risk, vec!["e", "f", "g"]);

    let blanks_first = MINIMAL.replace("Risk:\n- e\n", "Risk:\n\n\n- e\n");
    assert_eq!(task_doc(&blanks_first).risk, vec!["e"]);
}

#[test]
fn prose_after_a_gap_ends_the_list_as_in_the_reference() {
    let text = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\n\n- f\nclosing prose\n- g\n");
    assert_eq!(task_doc(&text).risk, vec!["e", "f"]);

    let prose = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\n\nclosing prose\n");
    assert_eq!(task_doc(&prose).risk, vec!["e"]);

    let field_after_gap = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\n\nSummary: s\n");
    assert_eq!(task_doc(&field_after_gap).summary, "s");
}

#[test]
fn a_field_line_ends_a_list() {
    let text = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\nSummary: s\n- stray\n");
    let doc = task_doc(&text);
    assert_eq!(doc.risk, vec!["e"]);
    assert_eq!(doc.summary, "s");
}

#[test]
fn prose_directly_after_items_is_an_invalid_item() {
    let text = MINIMAL.replace("Risk:\n- e\n", "Risk:\n- e\n-f\n");
    let error = task_error(&text);
    assert_eq!(error.message, "has invalid list item under `Risk`");
    assert_eq!(error.line, Some(MINIMAL.lines().count() + 1));
}

#[test]
fn multiple_content_errors_are_reported_together_in_line_order() {
    let text = MINIMAL
        .replace("Task-ID: t1", "Task-ID: -t1\nStatus-Hint: nope")
        .replace("Created-By: me", "Created-By:");
    let error = task_error(&text);
    assert_eq!(error.line, Some(3));
    assert_eq!(
        error.message,
        "Task-ID: must match ^[A-Za-z0-9][A-Za-z0-9._-]*$; \
         Status-Hint: must be one of queued, active, blocked, done, found `nope`; \
         Created-By: required field is missing"
    );
}

#[test]
fn foreign_labels_are_rejected_per_kind() {
    let spec_with_task_fields = SPEC.replace(
        "Created-By: planner",
        "Created-By: planner\nTask-ID: t1\n\nRisk:\n- r\n\nDepends-On:\n- t0\n",
    );
    let error = parse(WorkItemKind::Spec, "s.md", &spec_with_task_fields).unwrap_err();
    for label in ["Task-ID", "Risk", "Depends-On"] {
        assert!(
            error
                .message
                .contains(&format!("{label}: field does not belong to a spec")),
            "{error}"
        );
    }
    let incident_with_foreign = INCIDENT.replace(
        "Opened-By: consultant",
        "Opened-By: consultant\nSpec-ID: s1\nCreated-At: 2026-01-01\n\nTarget-Paths:\n- x\n",
    );
    let error = parse(WorkItemKind::Incident, "i.md", &incident_with_foreign).unwrap_err();
    for label in ["Spec-ID", "Created-At", "Target-Paths"] {
        assert!(
            error
                .message
                .contains(&format!("{label}: field does not belong to an incident")),
            "{error}"
        );
    }
    let task_with_spec_field =
        MINIMAL.replace("Created-By: me", "Created-By: me\nSource-Type: idea");
    assert_eq!(
        task_error(&task_with_spec_field).message,
        "Source-Type: field does not belong to a task"
    );
}

#[test]
fn task_lineage_fields_are_legal() {
    let text = MINIMAL.replace(
        "Created-By: me",
        "Created-By: me\nSpec-ID: s1\nIncident-ID: i1\nParent-Task-ID: t0\nUpdated-At: 2026-03-01",
    );
    let doc = task_doc(&text);
    assert_eq!(doc.incident_id.as_deref(), Some("i1"));
    assert_eq!(
        doc.updated_at.map(|t| t.render()).as_deref(),
        Some("2026-03-01T00:00:00")
    );
}

#[test]
fn incident_booleans_and_cross_field_rule() {
    let parse_incident = |text: &str| parse(WorkItemKind::Incident, "i.md", text);
    for (word, expected) in [
        ("no", false),
        ("FALSE", false),
        ("Off", false),
        ("1", true),
        ("t", true),
        ("Yes", true),
    ] {
        let text = INCIDENT.replace(
            "Severity: high",
            &format!("Severity: high\nNeeds-Planning: {word}"),
        );
        let Ok(Document::Incident(doc)) = parse_incident(&text) else {
            panic!("{word} should parse");
        };
        assert_eq!(doc.needs_planning, expected, "{word}");
    }
    let bad_bool = INCIDENT.replace("Severity: high", "Severity: high\nNeeds-Planning: maybe");
    let error = parse_incident(&bad_bool).unwrap_err();
    assert!(
        error
            .message
            .starts_with("Needs-Planning: invalid boolean `maybe`"),
        "{error}"
    );

    let wrong_plane = INCIDENT.replace("Source-Plane: execution", "Source-Plane: planning");
    let error = parse_incident(&wrong_plane).unwrap_err();
    assert!(
        error
            .message
            .contains("source_stage must belong to source_plane"),
        "{error}"
    );

    let bad_decision = INCIDENT.replace(
        "Consultant-Decision: needs_planning",
        "Consultant-Decision: later",
    );
    let error = parse_incident(&bad_decision).unwrap_err();
    assert_eq!(
        error.message,
        "Consultant-Decision: must be one of needs_planning, blocked, found `later`"
    );

    let medium = INCIDENT.replace("Severity: high", "Severity: medium\nNeeds-Planning: false");
    let doc = parse_incident(&medium).unwrap();
    let rendered = doc.render();
    assert!(!rendered.contains("Severity:"));
    assert!(
        rendered.contains("Failure-Class: environment_missing_dependency\nNeeds-Planning: false\n")
    );
}

// --- Round-trip guard ---------------------------------------------------------------------

#[test]
fn check_round_trip_rejects_values_that_would_not_read_back() {
    let base = task_doc(TASK);
    type Mutation = Box<dyn Fn(&mut TaskDoc)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "Summary: must be a single line",
            Box::new(|d| d.summary = "a\nb".into()),
        ),
        (
            "Summary: must be a single line",
            Box::new(|d| d.summary = "a\u{2028}b".into()),
        ),
        (
            "Created-By: must not start or end with whitespace",
            Box::new(|d| d.created_by = " x".into()),
        ),
        (
            "Created-By: must not be empty",
            Box::new(|d| d.created_by = String::new()),
        ),
        (
            "Title: must not be empty",
            Box::new(|d| d.title = String::new()),
        ),
        (
            "Risk: item 2 must not be empty",
            Box::new(|d| d.risk.push(String::new())),
        ),
        (
            "Tags: item 1 must not start or end with whitespace",
            Box::new(|d| d.tags[0] = "x ".into()),
        ),
        (
            "Task-ID: must match",
            Box::new(|d| d.task_id = "../x".into()),
        ),
        (
            "Spec-ID: must match",
            Box::new(|d| d.spec_id = Some(String::new())),
        ),
        (
            "Created-At: offset",
            Box::new(|d| d.created_at.offset_seconds = Some(90)),
        ),
        (
            "renders to a document that does not parse",
            Box::new(|d| d.acceptance.clear()),
        ),
    ];
    for (expected, mutate) in cases {
        let mut doc = base.clone();
        mutate(&mut doc);
        let error = Document::Task(doc).check_round_trip("t.md").unwrap_err();
        assert!(error.message.contains(expected), "{expected}: {error}");
        assert_eq!(error.file, "t.md");
    }
}

#[test]
fn check_round_trip_requires_summaries_on_specs_and_incidents() {
    let Document::Spec(mut spec) = parse(WorkItemKind::Spec, "s.md", SPEC).unwrap() else {
        panic!("not a spec");
    };
    spec.summary.clear();
    let error = Document::Spec(spec).check_round_trip("s.md").unwrap_err();
    assert!(
        error.message.contains("Summary: must not be empty"),
        "{error}"
    );

    let mut task = task_doc(TASK);
    task.summary.clear();
    Document::Task(task).check_round_trip("t.md").unwrap();
}

// --- JSON import --------------------------------------------------------------------------

fn json_error(kind: WorkItemKind, text: &str) -> DocError {
    parse_json(kind, "x.json", text).expect_err("should be rejected")
}

#[test]
fn json_import_checks_keys_types_and_header() {
    let with_header = CACHE_JSON.replacen(
        '{',
        "{\n  \"schema_version\": \"1.0\",\n  \"kind\": \"spec\",",
        1,
    );
    let doc = parse_json(WorkItemKind::Spec, "x.json", &with_header).unwrap();
    assert_eq!(doc.render(), CACHE_MD);

    let bad_version = CACHE_JSON.replacen('{', "{\n  \"schema_version\": \"2.0\",", 1);
    let error = json_error(WorkItemKind::Spec, &bad_version);
    assert_eq!(error.line, Some(2));
    assert!(
        error.message.starts_with("schema_version: must be \"1.0\""),
        "{error}"
    );

    let wrong_kind = CACHE_JSON.replacen('{', "{\n  \"kind\": \"task\",", 1);
    assert!(json_error(WorkItemKind::Spec, &wrong_kind)
        .message
        .starts_with("kind: must be \"spec\""));

    let unknown = CACHE_JSON.replace("\"created_by\"", "\"author\"");
    let error = json_error(WorkItemKind::Spec, &unknown);
    assert!(
        error
            .message
            .contains("author: unknown key, not a spec field"),
        "{error}"
    );
    assert!(
        error
            .message
            .contains("created_by: required field is missing"),
        "{error}"
    );
    assert_eq!(
        error.line,
        Some(
            CACHE_JSON
                .lines()
                .position(|l| l.contains("created_by"))
                .unwrap()
                + 1
        )
    );

    let bare_string = CACHE_JSON.replace("[\"docs/cache.md\"]", "\"docs/cache.md\"");
    let error = json_error(WorkItemKind::Spec, &bare_string);
    assert_eq!(
        error.message,
        "references: must be an array of strings, found a string"
    );
    assert_eq!(error.line, Some(9));

    let mixed = CACHE_JSON.replace("[\"docs/cache.md\"]", "[\"docs/cache.md\", 3]");
    assert!(json_error(WorkItemKind::Spec, &mixed)
        .message
        .contains("item 2 is not a string"));

    let number = CACHE_JSON.replace("\"operator\"", "42");
    assert_eq!(
        json_error(WorkItemKind::Spec, &number).message,
        "created_by: must be a string, found a number"
    );

    let bad_enum = CACHE_JSON.replace("\"manual\"", "\"Manual\"");
    assert!(json_error(WorkItemKind::Spec, &bad_enum)
        .message
        .starts_with("source_type: must be one of idea, incident, manual, derived_spec"));
}

#[test]
fn json_import_handles_nulls_numbers_and_identifiers() {
    let with_nulls =
        CACHE_JSON.replacen('{', "{\n  \"source_id\": null,\n  \"updated_at\": null,", 1);
    assert_eq!(
        parse_json(WorkItemKind::Spec, "x.json", &with_nulls)
            .unwrap()
            .render(),
        CACHE_MD
    );

    let null_required = CACHE_JSON.replace("\"operator\"", "null");
    assert_eq!(
        json_error(WorkItemKind::Spec, &null_required).message,
        "created_by: must be a string, found null"
    );
    let null_list = CACHE_JSON.replacen('{', "{\n  \"scope\": null,", 1);
    assert!(json_error(WorkItemKind::Spec, &null_list)
        .message
        .contains("scope: must be an array"));

    let unix = CACHE_JSON.replace("\"2026-02-11T08:00:00Z\"", "1770796800");
    assert_eq!(
        parse_json(WorkItemKind::Spec, "x.json", &unix)
            .unwrap()
            .render(),
        CACHE_MD
    );
    let unix_ms = CACHE_JSON.replace("\"2026-02-11T08:00:00Z\"", "1770796800000");
    assert_eq!(
        parse_json(WorkItemKind::Spec, "x.json", &unix_ms)
            .unwrap()
            .render(),
        CACHE_MD
    );

    for (id, reason) in [
        (" s1", "spec_id: must not include surrounding whitespace"),
        ("", "spec_id: is required"),
        ("s/1", "spec_id: must match ^[A-Za-z0-9][A-Za-z0-9._-]*$"),
    ] {
        let text = CACHE_JSON.replace("\"s-cache-warmup\"", &format!("\"{id}\""));
        assert_eq!(
            json_error(WorkItemKind::Spec, &text).message,
            reason,
            "{id:?}"
        );
    }
}

#[test]
fn json_import_rejects_what_would_not_round_trip() {
    let multi_line = CACHE_JSON.replace("\"operator\"", "\"op\\nerator\"");
    assert!(json_error(WorkItemKind::Spec, &multi_line)
        .message
        .contains("Created-By: must be a single line"));
    let empty_item = CACHE_JSON.replace("[\"docs/cache.md\"]", "[\"docs/cache.md\", \"\"]");
    assert!(json_error(WorkItemKind::Spec, &empty_item)
        .message
        .contains("References: item 2 must not be empty"));
    let empty_summary = CACHE_JSON.replace(
        "\"Pre-populate the local artifact cache so the first build is not cold.\"",
        "\"\"",
    );
    assert!(json_error(WorkItemKind::Spec, &empty_summary)
        .message
        .contains("Summary: must not be empty"));
}

#[test]
fn json_import_of_a_task_works_and_incidents_are_refused() {
    let task_json = r#"{
  "task_id": "t1",
  "title": "T",
  "target_paths": ["a"],
  "acceptance": ["b"],
  "required_checks": ["c"],
  "references": ["d"],
  "risk": ["e"],
  "created_at": "2026-02-10 09:30",
  "created_by": "me",
  "status_hint": "queued"
}"#;
    let doc = parse_json(WorkItemKind::Task, "t1.json", task_json).unwrap();
    let expected = MINIMAL
        .replace(
            "Task-ID: t1\n",
            "Task-ID: t1\nTitle: T\nStatus-Hint: queued\n",
        )
        .replace("09:30:00Z", "09:30:00");
    assert_eq!(doc.render(), expected);
    let goals = task_json.replacen('{', "{\n  \"goals\": [\"g\"],", 1);
    assert_eq!(
        json_error(WorkItemKind::Task, &goals).message,
        "goals: unknown key, not a task field"
    );

    let error = json_error(WorkItemKind::Incident, "{}");
    assert!(
        error
            .message
            .starts_with("incidents cannot be imported from JSON"),
        "{error}"
    );
}

#[test]
fn json_syntax_errors_name_the_line() {
    let error = json_error(WorkItemKind::Spec, "{\n  \"spec_id\": \"s\",\n  oops\n}");
    assert_eq!(error.line, Some(3));
    assert!(error.message.starts_with("invalid JSON"));
    assert!(json_error(WorkItemKind::Spec, "[1]")
        .message
        .contains("one JSON object"));
    let duplicate = CACHE_JSON.replacen('{', "{\n  \"created_by\": \"someone\",", 1);
    let error = json_error(WorkItemKind::Spec, &duplicate);
    assert!(
        error
            .message
            .contains("created_by: key appears more than once"),
        "{error}"
    );
}

// --- Ideas --------------------------------------------------------------------------------

fn idea(stem: &str, text: &str) -> IdeaSpec {
    let now: jiff::Timestamp = "2026-02-09T15:00:04Z".parse().unwrap();
    normalize_idea(stem, &format!("ideas/inbox/{stem}.md"), text, now)
}

#[test]
fn idea_titles_and_summaries() {
    let spec = idea("foo", "# foo\n\nMake it fast.\n");
    assert_eq!(
        (spec.title.as_str(), spec.summary.as_str()),
        ("foo", "Make it fast.")
    );

    let only_heading = idea("foo", "# foo\n");
    assert_eq!(only_heading.title, "foo");
    assert_eq!(only_heading.summary, "Idea captured from foo");

    let prose_first = idea("bar", "Plain first line.\n\nSecond line.\n");
    assert_eq!(prose_first.title, "Plain first line.");
    assert_eq!(prose_first.summary, "Second line.");

    let heading_later = idea("baz", "intro text\n## Real title\nbody\n");
    assert_eq!(heading_later.title, "Real title");
    assert_eq!(heading_later.summary, "intro text");

    let empty = idea("qux", "  \n\n");
    assert_eq!(empty.title, "qux");
    assert_eq!(empty.summary, "Idea captured from qux");

    let hashes_only = idea("h", "###\n#  \n");
    assert_eq!(hashes_only.title, "h");

    let repeated = idea("r", "# Title\nTitle\n### Sub\n");
    assert_eq!(
        (repeated.title.as_str(), repeated.summary.as_str()),
        ("Title", "Sub")
    );
}

#[test]
fn idea_spec_fields_follow_the_spec() {
    let spec = idea("resilient-fetch", IDEA);
    assert_eq!(spec.spec_id, "idea-resilient-fetch");
    assert_eq!(spec.source_id.as_deref(), Some("idea-resilient-fetch"));
    assert_eq!(spec.root_idea_id, spec.source_id);
    assert_eq!(spec.root_spec_id, spec.source_id);
    assert_eq!(spec.goals, vec![spec.summary.clone()]);
    assert_eq!(spec.references, vec!["ideas/inbox/resilient-fetch.md"]);
    assert_eq!(spec.created_by, "watcher");
    let doc = Document::Spec(spec);
    doc.check_round_trip("idea-resilient-fetch.md").unwrap();
    assert_eq!(doc.effective_root_spec(), Some("idea-resilient-fetch"));
}

#[test]
fn idea_spec_ids_are_sanitized() {
    let cases = [
        ("resilient-fetch", "idea-resilient-fetch"),
        ("..", "idea-idea"),
        ("", "idea-idea"),
        ("My Idea (v2)!", "idea-My-Idea-v2"),
        ("a-?b", "a--b"),
        ("..x..", "idea-x"),
        ("_x", "idea-_x"),
        ("café au lait", "idea-caf-au-lait"),
        ("-.-", "idea-idea"),
    ];
    for (stem, expected) in cases {
        let expected = if expected.starts_with("idea-") {
            expected.to_string()
        } else {
            format!("idea-{expected}")
        };
        assert_eq!(idea_spec_id(stem), expected, "{stem:?}");
    }
    assert_eq!(idea("..", "x").spec_id, "idea-idea");
    // A long stem is cut, leaving room for the tasks named after the spec; two long stems
    // that differ only past the cut get different ids.
    let long = "a".repeat(190);
    let (one, two) = (
        idea_spec_id(&format!("{long}1")),
        idea_spec_id(&format!("{long}2")),
    );
    assert_eq!(one.len(), 105, "{one}");
    assert!(
        one.starts_with(&format!("idea-{}-", "a".repeat(91))),
        "{one}"
    );
    assert_ne!(one, two);
    assert_eq!(
        idea_spec_id(&"b".repeat(100)),
        format!("idea-{}", "b".repeat(100))
    );
}

#[test]
fn idea_submissions_are_validated() {
    check_idea_submission("resilient-fetch.md", "# Idea\n").unwrap();
    check_idea_submission("v1.2.md", "text").unwrap();
    let rejected = [
        ("idea.txt", "x", "must end with .md"),
        (" idea.md", "x", "whitespace"),
        ("dir/idea.md", "x", "without folders"),
        ("..\\idea.md", "x", "without folders"),
        ("-idea.md", "x", "must match"),
        (".md", "x", "must match"),
        ("my idea.md", "x", "must match"),
        ("idea.md", " \n\t", "empty"),
    ];
    for (name, text, expected) in rejected {
        let error = check_idea_submission(name, text).unwrap_err();
        assert!(error.message.contains(expected), "{name}: {error}");
    }
}

// --- Lineage ------------------------------------------------------------------------------

#[test]
fn effective_root_spec_follows_the_lineage_rules() {
    assert_eq!(
        task(TASK).unwrap().effective_root_spec(),
        Some("s-fetch-root")
    );
    let spec_only = MINIMAL.replace("Created-By: me", "Created-By: me\nSpec-ID: s9");
    assert_eq!(task(&spec_only).unwrap().effective_root_spec(), Some("s9"));
    assert_eq!(task(MINIMAL).unwrap().effective_root_spec(), None);
    let manual = parse(WorkItemKind::Spec, "s.md", CACHE_MD).unwrap();
    assert_eq!(manual.effective_root_spec(), Some("s-cache-warmup"));
    let derived = CACHE_MD.replace("Source-Type: manual", "Source-Type: derived_spec");
    assert_eq!(
        parse(WorkItemKind::Spec, "s.md", &derived)
            .unwrap()
            .effective_root_spec(),
        None
    );
}

#[test]
fn order_key_compares_instants_then_ids() {
    let at = |time: &str, id: &str| {
        let text = MINIMAL
            .replace("2026-02-10T09:30:00Z", time)
            .replace("Task-ID: t1", &format!("Task-ID: {id}"));
        task(&text).unwrap()
    };
    let zoned = at("2026-02-10T10:30:00+01:00", "b");
    let utc = at("2026-02-10T09:30:00Z", "c");
    let naive = at("2026-02-10T09:30:00", "a");
    let earlier = at("2026-02-10T09:29:59.999999Z", "z");
    let mut docs = [&utc, &zoned, &naive, &earlier];
    docs.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
    let ids: Vec<&str> = docs.iter().map(|doc| doc.id()).collect();
    assert_eq!(ids, vec!["z", "a", "b", "c"]);
}

// --- Properties ---------------------------------------------------------------------------

fn identifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,12}"
}

/// Single-line text without surrounding whitespace; may look like a field or a list item.
fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9#*:./ -]{0,30}[A-Za-z0-9.:#*-]",
        "[^\\s\\x0b\\x0c\\x1c-\\x1f\\x85\\u{2028}\\u{2029}]{1,3}( [^\\s\\x1c-\\x1f]{1,8}){0,3}",
        Just("- looks like an item".to_string()),
        Just("Summary: looks like a field".to_string()),
    ]
    .prop_filter("trimmed", |s| !s.is_empty() && grammar::py_trim(s) == s)
}

fn items(min: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(line_text(), min..4)
}

fn time() -> impl Strategy<Value = DocTime> {
    (
        -62_135_596_800_000_000i64..253_402_300_799_000_000,
        prop_oneof![
            Just(None),
            Just(Some(0)),
            (-1439i32..1440).prop_map(|m| Some(m * 60))
        ],
    )
        .prop_map(|(micros, offset_seconds)| DocTime {
            micros,
            offset_seconds,
        })
        .prop_filter("renderable", |t| t.round_trip_problem().is_none())
}

fn task_strategy() -> impl Strategy<Value = Document> {
    (
        (identifier(), line_text(), prop::option::of(line_text())),
        prop::collection::vec(prop::option::of(identifier()), 5),
        (
            prop::option::of(prop::sample::select(StatusHint::ALL.to_vec())),
            time(),
            line_text(),
            prop::option::of(time()),
        ),
        // Depends-On names other tasks' ids (anything else is refused).
        (
            prop::collection::vec(identifier(), 0..4),
            items(0),
            items(0),
            items(1),
        ),
        (items(1), items(1), items(1), items(1)),
    )
        .prop_map(
            |(head, ids, (status_hint, created_at, created_by, updated_at), lists_a, lists_b)| {
                let depends_on = lists_a.0.into_iter().filter(|d| *d != head.0).collect();
                Document::Task(TaskDoc {
                    task_id: head.0,
                    title: head.1,
                    summary: head.2.unwrap_or_default(),
                    root_idea_id: ids[0].clone(),
                    root_spec_id: ids[1].clone(),
                    spec_id: ids[2].clone(),
                    parent_task_id: ids[3].clone(),
                    incident_id: ids[4].clone(),
                    status_hint,
                    created_at,
                    created_by,
                    updated_at,
                    depends_on,
                    blocks: lists_a.1,
                    tags: lists_a.2,
                    target_paths: lists_a.3,
                    acceptance: lists_b.0,
                    required_checks: lists_b.1,
                    references: lists_b.2,
                    risk: lists_b.3,
                })
            },
        )
}

fn spec_strategy() -> impl Strategy<Value = Document> {
    (
        (
            identifier(),
            line_text(),
            line_text(),
            prop::sample::select(SourceType::ALL.to_vec()),
        ),
        prop::collection::vec(prop::option::of(identifier()), 4),
        (time(), line_text(), prop::option::of(time())),
        (items(1), items(0), items(0), items(1), items(0), items(0)),
        (items(0), items(0), items(0), items(0), items(1), items(1)),
    )
        .prop_map(|(head, ids, (created_at, created_by, updated_at), a, b)| {
            Document::Spec(SpecDoc {
                spec_id: head.0,
                title: head.1,
                summary: head.2,
                source_type: head.3,
                source_id: ids[0].clone(),
                parent_spec_id: ids[1].clone(),
                root_idea_id: ids[2].clone(),
                root_spec_id: ids[3].clone(),
                created_at,
                created_by,
                updated_at,
                goals: a.0,
                non_goals: a.1,
                scope: a.2,
                constraints: a.3,
                assumptions: a.4,
                risks: a.5,
                target_paths: b.0,
                entrypoints: b.1,
                required_skills: b.2,
                decomposition_hints: b.3,
                acceptance: b.4,
                references: b.5,
            })
        })
}

fn incident_strategy() -> impl Strategy<Value = Document> {
    (
        (
            identifier(),
            line_text(),
            line_text(),
            prop::sample::select(Stage::ALL.to_vec()),
        ),
        prop::collection::vec(prop::option::of(identifier()), 4),
        (
            line_text(),
            prop::sample::select(Severity::ALL.to_vec()),
            any::<bool>(),
            line_text(),
            prop::sample::select(vec!["needs_planning", "blocked"]),
        ),
        (time(), line_text(), prop::option::of(time())),
        (items(0), items(0), items(0), items(0), items(0), items(0)),
    )
        .prop_map(
            |(head, ids, middle, (opened_at, opened_by, updated_at), lists)| {
                Document::Incident(IncidentDoc {
                    incident_id: head.0,
                    title: head.1,
                    summary: head.2,
                    root_idea_id: ids[0].clone(),
                    root_spec_id: ids[1].clone(),
                    source_task_id: ids[2].clone(),
                    source_spec_id: ids[3].clone(),
                    source_stage: head.3,
                    source_plane: head.3.plane(),
                    failure_class: middle.0,
                    severity: middle.1,
                    needs_planning: middle.2,
                    trigger_reason: middle.3,
                    consultant_decision: middle.4.to_string(),
                    opened_at,
                    opened_by,
                    updated_at,
                    observed_symptoms: lists.0,
                    failed_attempts: lists.1,
                    evidence_paths: lists.2,
                    related_run_ids: lists.3,
                    related_stage_results: lists.4,
                    references: lists.5,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn rendered_documents_parse_back_to_themselves(
        doc in prop_oneof![task_strategy(), spec_strategy(), incident_strategy()]
    ) {
        let rendered = doc.render();
        let reparsed = parse(doc.kind(), "prop.md", &rendered);
        prop_assert_eq!(reparsed.as_ref(), Ok(&doc), "rendered:\n{}", rendered);
        prop_assert_eq!(reparsed.map(|d| d.render()), Ok(rendered));
        prop_assert_eq!(doc.check_round_trip("prop.md"), Ok(()));
    }

    #[test]
    fn any_text_parses_or_errors_without_panicking(text in "\\PC*|[#\\-:A-Za-z \\r\\n\\u{feff}\\u{2028}\\x0b]*") {
        for kind in WorkItemKind::ALL {
            let _ = parse(kind, "fuzz.md", &text);
            let _ = parse_json(kind, "fuzz.json", &text);
        }
    }

    #[test]
    fn mutated_examples_parse_or_error_without_panicking(
        position in 0usize..900,
        insert in "[\\-#:\\n A-Za-z0-9]{0,8}",
    ) {
        for (kind, text) in [(WorkItemKind::Task, TASK), (WorkItemKind::Spec, SPEC), (WorkItemKind::Incident, INCIDENT)] {
            let at = text.char_indices().map(|(i, _)| i).find(|&i| i >= position).unwrap_or(text.len());
            let mutated = format!("{}{}{}", &text[..at], insert, &text[at..]);
            if let Ok(doc) = parse(kind, "m.md", &mutated) {
                let canonical = doc.render();
                prop_assert_eq!(parse(kind, "m.md", &canonical).map(|d| d.render()), Ok(canonical));
            }
        }
    }

    #[test]
    fn any_datetime_text_parses_or_errors(text in "[0-9T:+\\-. Zz]{0,40}") {
        if let Ok(time) = DocTime::parse(&text) {
            prop_assert_eq!(DocTime::parse(&time.render()), Ok(time));
        }
    }
}
