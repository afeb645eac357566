//! Canonical rendering (spec 02 §9) and the round-trip guard (spec 02 §10).

use super::grammar::{is_line_break, is_py_space, py_trim};
use super::schema::{Severity, CONSULTANT_DECISIONS};
use super::validate::{id_length_problem, is_identifier, ID_PATTERN};
use super::{DocError, DocTime, Document};

/// A scalar value as the renderer sees it.
enum Value<'a> {
    Text(&'a str),
    Id(&'a str),
    Word(&'a str),
    Time(&'a DocTime),
    Bool(bool),
}

impl Value<'_> {
    fn render(&self) -> String {
        match self {
            Value::Text(text) | Value::Id(text) | Value::Word(text) => text.to_string(),
            Value::Time(time) => time.render(),
            Value::Bool(true) => "true".to_string(),
            Value::Bool(false) => "false".to_string(),
        }
    }
}

/// Scalar fields in render order; `None` where the value is null or a default that is not
/// written (empty summary, `medium` severity, `needs_planning: true`).
type Scalars<'a> = Vec<(&'static str, Option<Value<'a>>)>;
/// List fields in render order.
type Lists<'a> = Vec<(&'static str, &'a [String])>;

fn text(value: &str) -> Option<Value<'_>> {
    Some(Value::Text(value))
}

fn summary(value: &str) -> Option<Value<'_>> {
    Some(Value::Text(value)).filter(|_| !value.is_empty())
}

fn id(value: &Option<String>) -> Option<Value<'_>> {
    value.as_deref().map(Value::Id)
}

fn time(value: &Option<DocTime>) -> Option<Value<'_>> {
    value.as_ref().map(Value::Time)
}

fn fields(doc: &Document) -> (Scalars<'_>, Lists<'_>) {
    match doc {
        Document::Task(d) => (
            vec![
                ("Task-ID", Some(Value::Id(&d.task_id))),
                ("Title", text(&d.title)),
                ("Summary", summary(&d.summary)),
                ("Root-Idea-ID", id(&d.root_idea_id)),
                ("Root-Spec-ID", id(&d.root_spec_id)),
                ("Spec-ID", id(&d.spec_id)),
                ("Parent-Task-ID", id(&d.parent_task_id)),
                ("Incident-ID", id(&d.incident_id)),
                (
                    "Status-Hint",
                    d.status_hint.map(|v| Value::Word(v.as_str())),
                ),
                ("Created-At", Some(Value::Time(&d.created_at))),
                ("Created-By", text(&d.created_by)),
                ("Updated-At", time(&d.updated_at)),
            ],
            vec![
                ("Depends-On", &d.depends_on),
                ("Blocks", &d.blocks),
                ("Tags", &d.tags),
                ("Target-Paths", &d.target_paths),
                ("Acceptance", &d.acceptance),
                ("Required-Checks", &d.required_checks),
                ("References", &d.references),
                ("Risk", &d.risk),
            ],
        ),
        Document::Spec(d) => (
            vec![
                ("Spec-ID", Some(Value::Id(&d.spec_id))),
                ("Title", text(&d.title)),
                ("Summary", summary(&d.summary)),
                ("Source-Type", Some(Value::Word(d.source_type.as_str()))),
                ("Source-ID", id(&d.source_id)),
                ("Parent-Spec-ID", id(&d.parent_spec_id)),
                ("Root-Idea-ID", id(&d.root_idea_id)),
                ("Root-Spec-ID", id(&d.root_spec_id)),
                ("Created-At", Some(Value::Time(&d.created_at))),
                ("Created-By", text(&d.created_by)),
                ("Updated-At", time(&d.updated_at)),
            ],
            vec![
                ("Goals", &d.goals),
                ("Non-Goals", &d.non_goals),
                ("Scope", &d.scope),
                ("Constraints", &d.constraints),
                ("Assumptions", &d.assumptions),
                ("Risks", &d.risks),
                ("Target-Paths", &d.target_paths),
                ("Entrypoints", &d.entrypoints),
                ("Required-Skills", &d.required_skills),
                ("Decomposition-Hints", &d.decomposition_hints),
                ("Acceptance", &d.acceptance),
                ("References", &d.references),
            ],
        ),
        Document::Incident(d) => (
            vec![
                ("Incident-ID", Some(Value::Id(&d.incident_id))),
                ("Title", text(&d.title)),
                ("Summary", summary(&d.summary)),
                ("Root-Idea-ID", id(&d.root_idea_id)),
                ("Root-Spec-ID", id(&d.root_spec_id)),
                ("Source-Task-ID", id(&d.source_task_id)),
                ("Source-Spec-ID", id(&d.source_spec_id)),
                ("Source-Stage", Some(Value::Word(d.source_stage.as_str()))),
                ("Source-Plane", Some(Value::Word(d.source_plane.as_str()))),
                ("Failure-Class", text(&d.failure_class)),
                (
                    "Severity",
                    Some(Value::Word(d.severity.as_str()))
                        .filter(|_| d.severity != Severity::Medium),
                ),
                (
                    "Needs-Planning",
                    Some(Value::Bool(false)).filter(|_| !d.needs_planning),
                ),
                ("Trigger-Reason", text(&d.trigger_reason)),
                (
                    "Consultant-Decision",
                    Some(Value::Word(&d.consultant_decision)),
                ),
                ("Opened-At", Some(Value::Time(&d.opened_at))),
                ("Opened-By", text(&d.opened_by)),
                ("Updated-At", time(&d.updated_at)),
            ],
            vec![
                ("Observed-Symptoms", &d.observed_symptoms),
                ("Failed-Attempts", &d.failed_attempts),
                ("Evidence-Paths", &d.evidence_paths),
                ("Related-Run-IDs", &d.related_run_ids),
                ("Related-Stage-Results", &d.related_stage_results),
                ("References", &d.references),
            ],
        ),
    }
}

pub(super) fn render(doc: &Document) -> String {
    let (scalars, lists) = fields(doc);
    let mut lines = vec![format!("# {}", doc.title()), String::new()];
    for (label, value) in scalars {
        if let Some(value) = value {
            lines.push(format!("{label}: {}", value.render()));
        }
    }
    for (label, items) in lists {
        if items.is_empty() {
            continue;
        }
        lines.push(String::new());
        lines.push(format!("{label}:"));
        lines.extend(items.iter().map(|item| format!("- {item}")));
    }
    let mut text = lines.join("\n").trim_end_matches(is_py_space).to_string();
    text.push('\n');
    text
}

/// Why `value` would not read back unchanged as an inline value or list item.
fn text_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.contains(is_line_break) {
        Some("must be a single line")
    } else if py_trim(value) != value {
        Some("must not start or end with whitespace")
    } else {
        None
    }
}

pub(super) fn check_round_trip(doc: &Document, name: &str) -> Result<(), DocError> {
    let (scalars, lists) = fields(doc);
    let mut problems: Vec<String> = Vec::new();
    let needs_summary = !matches!(doc, Document::Task(_));
    if needs_summary && doc_summary(doc).is_empty() {
        problems.push("Summary: must not be empty (specs and incidents require one)".to_string());
    }
    for (label, value) in &scalars {
        let problem = match value {
            None => None,
            Some(Value::Text(text)) => text_problem(text).map(str::to_string),
            Some(Value::Id(text)) if !is_identifier(text) => {
                Some(format!("must match {ID_PATTERN}"))
            }
            Some(Value::Id(text)) => id_length_problem(text),
            Some(Value::Word(word))
                if *label == "Consultant-Decision" && !CONSULTANT_DECISIONS.contains(word) =>
            {
                Some(format!(
                    "must be one of {}",
                    CONSULTANT_DECISIONS.join(", ")
                ))
            }
            Some(Value::Time(time)) => time.round_trip_problem(),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            problems.push(format!("{label}: {problem}"));
        }
    }
    if let Document::Incident(d) = doc {
        if d.source_stage.plane() != d.source_plane {
            problems.push(format!(
                "Source-Stage: `{}` does not belong to the {} plane",
                d.source_stage, d.source_plane
            ));
        }
    }
    for (label, items) in &lists {
        for (position, item) in items.iter().enumerate() {
            if let Some(problem) = text_problem(item) {
                problems.push(format!("{label}: item {} {problem}", position + 1));
            }
        }
    }
    if problems.is_empty() {
        let reparsed = super::parse(doc.kind(), name, &render(doc));
        if reparsed.as_ref() != Ok(doc) {
            problems.push(match reparsed {
                Err(error) => format!(
                    "renders to a document that does not parse: {}",
                    error.message
                ),
                Ok(_) => "renders to a document that reads back differently".to_string(),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DocError {
            file: name.to_string(),
            line: None,
            message: format!("cannot be written safely: {}", problems.join("; ")),
        })
    }
}

fn doc_summary(doc: &Document) -> &str {
    match doc {
        Document::Task(d) => &d.summary,
        Document::Spec(d) => &d.summary,
        Document::Incident(d) => &d.summary,
    }
}

/// A document's text with a dated line added under its `## Runtime History` heading (created
/// at the end when missing): where the runtime tells a reader of the file what it did to it.
pub fn with_runtime_history(text: &str, stamp: &str, line: &str) -> String {
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.contains("\n## Runtime History\n") {
        out.push_str("\n## Runtime History\n\n");
    }
    out.push_str(&format!("- {stamp} {}\n", line.replace('\n', " ")));
    out
}

/// Markdown of a spec that roots its own lineage (decision 12): `Root-Spec-ID: <id>` added
/// after the `Spec-ID:` line, every other byte kept (line endings included).
pub fn with_own_root_lineage(text: &str, id: &str) -> String {
    let mut out = String::with_capacity(text.len() + id.len() + 16);
    let mut done = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !done && line.trim_start().starts_with("Spec-ID:") {
            let eol = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
            if !line.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&format!("Root-Spec-ID: {id}{eol}"));
            done = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::schema::fields_of;
    use super::*;
    use crate::model::WorkItemKind;

    #[test]
    fn views_follow_the_schema_tables() {
        let fixtures = [
            (
                WorkItemKind::Task,
                include_str!("../../fixtures/documents/task.md"),
            ),
            (
                WorkItemKind::Spec,
                include_str!("../../fixtures/documents/spec.md"),
            ),
            (
                WorkItemKind::Incident,
                include_str!("../../fixtures/documents/incident.md"),
            ),
        ];
        for (kind, text) in fixtures {
            let doc = super::super::parse(kind, "fixture.md", text).unwrap();
            let (scalars, lists) = fields(&doc);
            let labels: Vec<&str> = scalars
                .iter()
                .map(|(label, _)| *label)
                .chain(lists.iter().map(|(label, _)| *label))
                .collect();
            let expected: Vec<&str> = fields_of(kind).iter().map(|field| field.label).collect();
            assert_eq!(labels, expected);
        }
    }
}
