//! JSON imports (spec 02 §13).
//!
//! The object's keys are the snake_case field names. Beyond the reference, duplicate keys
//! are rejected (a JSON parser would silently keep one of them) and the result must survive
//! a round trip through Markdown, because an import is written to the queue as Markdown.

use std::collections::HashMap;

use serde_json::Value;

use super::schema::fields_of;
use super::validate::{self, Entry, Problem, Raw, Source};
use super::{DocError, Document};
use crate::model::WorkItemKind;

pub(super) fn parse(kind: WorkItemKind, name: &str, text: &str) -> Result<Document, DocError> {
    let error = |line: Option<usize>, message: String| DocError {
        file: name.to_string(),
        line,
        message,
    };
    if kind == WorkItemKind::Incident {
        return Err(error(
            None,
            "incidents cannot be imported from JSON; only tasks and specs have a JSON import \
             format (write the incident as Markdown instead)"
                .to_string(),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let line = (e.line() > 0).then_some(e.line());
        error(line, format!("invalid JSON: {e}"))
    })?;
    let Value::Object(object) = value else {
        return Err(error(
            Some(1),
            format!("a {} import must be one JSON object", kind.as_str()),
        ));
    };

    let mut problems: Vec<Problem> = Vec::new();
    let mut key_lines: HashMap<String, usize> = HashMap::new();
    for (key, line) in top_level_keys(text) {
        if key_lines.insert(key.clone(), line).is_some() {
            problems.push((Some(line), format!("{key}: key appears more than once")));
        }
    }
    let schema = fields_of(kind);
    let mut entries = Vec::new();
    for (key, value) in object {
        let line = key_lines.get(&key).copied();
        match key.as_str() {
            "schema_version" => {
                if value != Value::String("1.0".to_string()) {
                    problems.push((
                        line,
                        format!("schema_version: must be \"1.0\", found {value}"),
                    ));
                }
            }
            "kind" => {
                if value != Value::String(kind.as_str().to_string()) {
                    problems.push((
                        line,
                        format!("kind: must be \"{}\", found {value}", kind.as_str()),
                    ));
                }
            }
            _ => match schema.iter().find(|field| field.name == key) {
                Some(field) => entries.push(Entry {
                    field,
                    raw: raw(value),
                    line,
                }),
                None => problems.push((
                    line,
                    format!("{key}: unknown key, not a {} field", kind.as_str()),
                )),
            },
        }
    }
    let document = validate::build(kind, Source::Json, name, entries, problems)?;
    document.check_round_trip(name)?;
    Ok(document)
}

fn raw(value: Value) -> Raw {
    match value {
        Value::String(text) => Raw::Text(text),
        Value::Number(number) => Raw::Number(number.to_string()),
        Value::Bool(flag) => Raw::Bool(flag),
        Value::Null => Raw::Null,
        Value::Object(_) => Raw::Other("an object".to_string()),
        Value::Array(items) => {
            let mut strings = Vec::with_capacity(items.len());
            for (position, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(text) => strings.push(text),
                    _ => {
                        return Raw::Other(format!(
                            "an array whose item {} is not a string",
                            position + 1
                        ))
                    }
                }
            }
            Raw::Items(strings)
        }
    }
}

/// The keys of the top-level object with their 1-based lines, in document order. Only
/// called on text serde_json accepted, so the structure is known to be well formed.
fn top_level_keys(text: &str) -> Vec<(String, usize)> {
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut line = 1;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => line += 1,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = index;
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                let end = index;
                let next = bytes
                    .get(end + 1..)
                    .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
                if depth == 1 && next == Some(&b':') {
                    let key = text
                        .get(start..=end)
                        .and_then(|literal| serde_json::from_str::<String>(literal).ok());
                    if let Some(key) = key {
                        keys.push((key, line));
                    }
                }
            }
            _ => {}
        }
        index += 1;
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_keys_and_lines() {
        let text = "{\n  \"a\": 1,\n  \"b\": {\"c\": [\"x\", \"y:\"]},\n  \"d\\u0065\" : \"e\"\n}";
        assert_eq!(
            top_level_keys(text),
            vec![
                ("a".to_string(), 2),
                ("b".to_string(), 3),
                ("de".to_string(), 4)
            ]
        );
    }
}

/// The JSON object form of a task or spec (every field, as a mailbox `add_task` carries
/// it). Incidents have no JSON form; they are carried as their Markdown rendering.
pub fn to_json(doc: &Document) -> Value {
    use serde_json::json;
    let time = |t: &super::DocTime| Value::String(t.render());
    let opt_time = |t: &Option<super::DocTime>| t.as_ref().map(|t| Value::String(t.render()));
    match doc {
        Document::Task(d) => json!({
            "schema_version": "1.0", "kind": "task",
            "task_id": d.task_id, "title": d.title, "summary": d.summary,
            "root_idea_id": d.root_idea_id, "root_spec_id": d.root_spec_id,
            "spec_id": d.spec_id, "parent_task_id": d.parent_task_id,
            "incident_id": d.incident_id,
            "status_hint": d.status_hint.map(|h| h.as_str()),
            "created_at": time(&d.created_at), "created_by": d.created_by,
            "updated_at": opt_time(&d.updated_at),
            "depends_on": d.depends_on, "blocks": d.blocks, "tags": d.tags,
            "target_paths": d.target_paths, "acceptance": d.acceptance,
            "required_checks": d.required_checks, "references": d.references, "risk": d.risk,
        }),
        Document::Spec(d) => json!({
            "schema_version": "1.0", "kind": "spec",
            "spec_id": d.spec_id, "title": d.title, "summary": d.summary,
            "source_type": d.source_type.as_str(), "source_id": d.source_id,
            "parent_spec_id": d.parent_spec_id, "root_idea_id": d.root_idea_id,
            "root_spec_id": d.root_spec_id,
            "created_at": time(&d.created_at), "created_by": d.created_by,
            "updated_at": opt_time(&d.updated_at),
            "goals": d.goals, "non_goals": d.non_goals, "scope": d.scope,
            "constraints": d.constraints, "assumptions": d.assumptions, "risks": d.risks,
            "target_paths": d.target_paths, "entrypoints": d.entrypoints,
            "required_skills": d.required_skills,
            "decomposition_hints": d.decomposition_hints,
            "acceptance": d.acceptance, "references": d.references,
        }),
        Document::Incident(d) => json!({
            "schema_version": "1.0", "kind": "incident",
            "incident_id": d.incident_id, "markdown": doc.render(),
        }),
    }
}

#[cfg(test)]
mod to_json_tests {
    use super::*;

    #[test]
    fn task_and_spec_objects_import_back_to_the_same_document() {
        for (kind, text) in [
            (
                WorkItemKind::Task,
                include_str!("../../fixtures/documents/task.md"),
            ),
            (
                WorkItemKind::Spec,
                include_str!("../../fixtures/documents/spec.md"),
            ),
        ] {
            let doc = super::super::parse(kind, "x.md", text).unwrap();
            let back = parse(kind, "x.json", &to_json(&doc).to_string()).unwrap();
            assert_eq!(back, doc);
        }
    }
}
