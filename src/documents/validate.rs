//! Content validation (spec 02 §3 step 5, §5, §6): recorded values to typed documents.
//!
//! Shared by the Markdown parser and the JSON import, which differ only in how values
//! arrive (JSON has numbers, booleans and null) and in how fields are named in errors.

use std::collections::HashMap;

use super::grammar::py_trim;
use super::schema::{fields_of, Field, Severity, SourceType, StatusHint, CONSULTANT_DECISIONS};
use super::{DocError, DocTime, Document, IncidentDoc, SpecDoc, TaskDoc};
use crate::model::{Plane, Stage, WorkItemKind};

/// The identifier rule of the reference, quoted in errors.
pub(super) const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

/// The longest id accepted. The reference has no limit, but an id names files (`<id>.md`,
/// `.<id>.md.tmp-<16>`, `<id>.requeue.jsonl`, quarantine reasons), which must fit in the
/// 255-byte file-name limit; a longer id is refused up front instead of failing at write time.
pub(super) const MAX_ID_LEN: usize = 200;

/// Why an identifier of acceptable shape is still refused (its length), if it is.
pub(super) fn id_length_problem(value: &str) -> Option<String> {
    (value.len() > MAX_ID_LEN).then(|| {
        format!(
            "must be at most {MAX_ID_LEN} characters (it names files), found {}",
            value.len()
        )
    })
}

/// Whether `value` satisfies [`ID_PATTERN`].
pub(super) fn is_identifier(value: &str) -> bool {
    let mut bytes = value.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A value as recorded, before typing.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    /// A Markdown inline value (trimmed) or a JSON string (verbatim).
    Text(String),
    /// A Markdown list section or a JSON array of strings.
    Items(Vec<String>),
    /// A JSON number, as written.
    Number(String),
    Bool(bool),
    Null,
    /// A JSON value no field accepts, described for the error ("an object").
    Other(String),
}

impl Raw {
    fn describe(&self) -> String {
        match self {
            Raw::Text(_) => "a string".to_string(),
            Raw::Items(_) => "an array".to_string(),
            Raw::Number(_) => "a number".to_string(),
            Raw::Bool(_) => "a boolean".to_string(),
            Raw::Null => "null".to_string(),
            Raw::Other(what) => what.clone(),
        }
    }
}

/// One recorded field with the 1-based line it came from.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub field: &'static Field,
    pub raw: Raw,
    pub line: Option<usize>,
}

/// Where the values came from: decides how fields are named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Markdown,
    Json,
}

/// One content error: the line (if any) and `<field>: <reason>`.
pub(super) type Problem = (Option<usize>, String);

/// Fold problems into one error: sorted by line (line-less last), first line reported.
fn into_error(name: &str, mut problems: Vec<Problem>) -> DocError {
    problems.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
    DocError {
        file: name.to_string(),
        line: problems.first().and_then(|(line, _)| *line),
        message: problems
            .into_iter()
            .map(|(_, message)| message)
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// "a task", "a spec", "an incident".
fn with_article(kind: WorkItemKind) -> String {
    match kind {
        WorkItemKind::Incident => "an incident".to_string(),
        other => format!("a {}", other.as_str()),
    }
}

/// Type the recorded entries as a document of `kind`. `problems` carries errors found
/// before this step (JSON key errors) so that all are reported together.
pub(super) fn build(
    kind: WorkItemKind,
    source: Source,
    name: &str,
    entries: Vec<Entry>,
    problems: Vec<Problem>,
) -> Result<Document, DocError> {
    let schema = fields_of(kind);
    let mut reader = Reader {
        source,
        entries: HashMap::new(),
        problems,
    };
    for entry in entries {
        if schema.contains(entry.field) {
            reader.entries.insert(entry.field.name, entry);
        } else {
            let label = reader.shown(entry.field.name);
            reader.problems.push((
                entry.line,
                format!("{label}: field does not belong to {}", with_article(kind)),
            ));
        }
    }
    let document = match kind {
        WorkItemKind::Task => Document::Task(reader.task()),
        WorkItemKind::Spec => Document::Spec(reader.spec()),
        WorkItemKind::Incident => Document::Incident(reader.incident()),
    };
    if reader.problems.is_empty() {
        Ok(document)
    } else {
        Err(into_error(name, reader.problems))
    }
}

/// Takes fields out one by one, recording a problem for each bad one. Failed fields yield
/// placeholders; the document is discarded whenever any problem was recorded.
struct Reader {
    source: Source,
    entries: HashMap<&'static str, Entry>,
    problems: Vec<Problem>,
}

impl Reader {
    /// How a field is named in errors: its label in Markdown, its key in JSON.
    fn shown(&self, name: &'static str) -> &'static str {
        match self.source {
            Source::Json => name,
            Source::Markdown => WorkItemKind::ALL
                .into_iter()
                .flat_map(|kind| fields_of(kind).iter())
                .find(|field| field.name == name)
                .map_or(name, |field| field.label),
        }
    }

    fn fail(&mut self, name: &'static str, line: Option<usize>, reason: impl std::fmt::Display) {
        let shown = self.shown(name);
        self.problems.push((line, format!("{shown}: {reason}")));
    }

    /// The raw value of `name`, `None` when absent (or JSON null, if `null_is_absent`).
    fn take(&mut self, name: &'static str, null_is_absent: bool) -> Option<Entry> {
        let entry = self.entries.remove(name)?;
        if null_is_absent && entry.raw == Raw::Null {
            return None;
        }
        Some(entry)
    }

    fn missing(&mut self, name: &'static str) {
        self.fail(name, None, "required field is missing");
    }

    /// A string: required fields must be present, optional ones may be absent or null.
    fn text(&mut self, name: &'static str, required: bool) -> Option<String> {
        let Some(entry) = self.take(name, !required) else {
            if required {
                self.missing(name);
            }
            return None;
        };
        match entry.raw {
            Raw::Text(value) => Some(value),
            other => {
                let found = other.describe();
                self.fail(
                    entry.field.name,
                    entry.line,
                    format!("must be a string, found {found}"),
                );
                None
            }
        }
    }

    fn required_text(&mut self, name: &'static str) -> String {
        self.text(name, true).unwrap_or_default()
    }

    /// A string with a default when absent (null is still a type error, as in the reference).
    fn text_or_default(&mut self, name: &'static str) -> String {
        if self.entries.contains_key(name) {
            self.required_text(name)
        } else {
            String::new()
        }
    }

    fn identifier(&mut self, name: &'static str, required: bool) -> Option<String> {
        let entry_line = self.entries.get(name).and_then(|entry| entry.line);
        let value = self.text(name, required)?;
        let reason = if py_trim(&value) != value {
            "must not include surrounding whitespace".to_string()
        } else if value.is_empty() {
            "is required".to_string()
        } else if !is_identifier(&value) {
            format!("must match {ID_PATTERN}")
        } else if let Some(problem) = id_length_problem(&value) {
            problem
        } else {
            return Some(value);
        };
        self.fail(name, entry_line, reason);
        None
    }

    fn required_identifier(&mut self, name: &'static str) -> String {
        self.identifier(name, true).unwrap_or_default()
    }

    fn datetime(&mut self, name: &'static str, required: bool) -> Option<DocTime> {
        let Some(entry) = self.take(name, !required) else {
            if required {
                self.missing(name);
            }
            return None;
        };
        let parsed = match &entry.raw {
            Raw::Text(text) | Raw::Number(text) => DocTime::parse(text),
            other => Err(format!("must be a datetime, found {}", other.describe())),
        };
        match parsed {
            Ok(time) => Some(time),
            Err(reason) => {
                self.fail(entry.field.name, entry.line, reason);
                None
            }
        }
    }

    fn required_datetime(&mut self, name: &'static str) -> DocTime {
        self.datetime(name, true).unwrap_or(DocTime {
            micros: 0,
            offset_seconds: None,
        })
    }

    /// A lowercase word out of `allowed`; `parse` maps it to the typed value.
    fn word<T>(
        &mut self,
        name: &'static str,
        required: bool,
        allowed: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let entry_line = self.entries.get(name).and_then(|entry| entry.line);
        let value = self.text(name, required)?;
        let parsed = parse(&value);
        if parsed.is_none() {
            let choices = allowed.join(", ");
            self.fail(
                name,
                entry_line,
                format!("must be one of {choices}, found `{value}`"),
            );
        }
        parsed
    }

    /// The reference's lenient boolean: true/t/yes/y/on/1 and false/f/no/n/off/0, any case.
    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        let Some(entry) = self.take(name, false) else {
            return default;
        };
        let parsed = match &entry.raw {
            Raw::Bool(value) => Some(*value),
            Raw::Text(text) | Raw::Number(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
                "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            let reason = match &entry.raw {
                Raw::Text(text) | Raw::Number(text) => {
                    format!("invalid boolean `{text}` (use true/false, yes/no, on/off or 1/0)")
                }
                other => format!("must be a boolean, found {}", other.describe()),
            };
            self.fail(entry.field.name, entry.line, reason);
            default
        })
    }

    fn list(&mut self, name: &'static str, required: bool) -> Vec<String> {
        let Some(entry) = self.take(name, false) else {
            if required {
                self.missing(name);
            }
            return Vec::new();
        };
        match entry.raw {
            Raw::Items(items) if required && items.is_empty() => {
                self.fail(entry.field.name, entry.line, "list needs at least 1 item");
                Vec::new()
            }
            Raw::Items(items) => items,
            Raw::Text(_) if self.source == Source::Markdown => {
                self.fail(
                    entry.field.name,
                    entry.line,
                    "must be a list section of `- item` lines, not an inline value",
                );
                Vec::new()
            }
            other => {
                let found = other.describe();
                self.fail(
                    entry.field.name,
                    entry.line,
                    format!("must be an array of strings, found {found}"),
                );
                Vec::new()
            }
        }
    }

    /// `Depends-On` names task ids: an entry that cannot be one (a path, say) or the task
    /// itself can never be met, so the task would wait forever.
    fn dependencies(&mut self, own_id: &str) -> Vec<String> {
        let line = self.entries.get("depends_on").and_then(|entry| entry.line);
        let ids = self.list("depends_on", false);
        for id in &ids {
            if !is_identifier(id) || id_length_problem(id).is_some() {
                self.fail(
                    "depends_on",
                    line,
                    format!(
                        "names `{id}`, which is not a task id ({ID_PATTERN}) and can never be met"
                    ),
                );
                break;
            }
            if id == own_id {
                self.fail(
                    "depends_on",
                    line,
                    "names the task itself, which can never be met",
                );
                break;
            }
        }
        ids
    }

    fn task(&mut self) -> TaskDoc {
        let task_id = self.required_identifier("task_id");
        let depends_on = self.dependencies(&task_id);
        TaskDoc {
            task_id,
            title: self.required_text("title"),
            summary: self.text_or_default("summary"),
            root_idea_id: self.identifier("root_idea_id", false),
            root_spec_id: self.identifier("root_spec_id", false),
            spec_id: self.identifier("spec_id", false),
            parent_task_id: self.identifier("parent_task_id", false),
            incident_id: self.identifier("incident_id", false),
            status_hint: self.word(
                "status_hint",
                false,
                &StatusHint::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>(),
                StatusHint::from_word,
            ),
            created_at: self.required_datetime("created_at"),
            created_by: self.required_text("created_by"),
            updated_at: self.datetime("updated_at", false),
            depends_on,
            blocks: self.list("blocks", false),
            tags: self.list("tags", false),
            target_paths: self.list("target_paths", true),
            acceptance: self.list("acceptance", true),
            required_checks: self.list("required_checks", true),
            references: self.list("references", true),
            risk: self.list("risk", true),
        }
    }

    fn spec(&mut self) -> SpecDoc {
        let source_type = self.word(
            "source_type",
            true,
            &SourceType::ALL
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>(),
            SourceType::from_word,
        );
        SpecDoc {
            spec_id: self.required_identifier("spec_id"),
            title: self.required_text("title"),
            summary: self.required_text("summary"),
            // Placeholder only: a missing or bad value has already been recorded as a problem.
            source_type: source_type.unwrap_or(SourceType::Manual),
            source_id: self.identifier("source_id", false),
            parent_spec_id: self.identifier("parent_spec_id", false),
            root_idea_id: self.identifier("root_idea_id", false),
            root_spec_id: self.identifier("root_spec_id", false),
            created_at: self.required_datetime("created_at"),
            created_by: self.required_text("created_by"),
            updated_at: self.datetime("updated_at", false),
            goals: self.list("goals", true),
            non_goals: self.list("non_goals", false),
            scope: self.list("scope", false),
            constraints: self.list("constraints", true),
            assumptions: self.list("assumptions", false),
            risks: self.list("risks", false),
            target_paths: self.list("target_paths", false),
            entrypoints: self.list("entrypoints", false),
            required_skills: self.list("required_skills", false),
            decomposition_hints: self.list("decomposition_hints", false),
            acceptance: self.list("acceptance", true),
            references: self.list("references", true),
        }
    }

    fn incident(&mut self) -> IncidentDoc {
        let stage_line = self
            .entries
            .get("source_stage")
            .and_then(|entry| entry.line);
        let stages: Vec<&str> = Stage::ALL.iter().map(|stage| stage.as_str()).collect();
        let source_stage: Option<Stage> =
            self.word("source_stage", true, &stages, |word| word.parse().ok());
        let source_plane: Option<Plane> = self.word(
            "source_plane",
            true,
            &Plane::ALL.map(Plane::as_str),
            |word| word.parse().ok(),
        );
        if let (Some(stage), Some(plane)) = (source_stage, source_plane) {
            if stage.plane() != plane {
                self.fail(
                    "source_stage",
                    stage_line,
                    format!(
                        "source_stage must belong to source_plane (`{stage}` is a {} stage, \
                         the plane is `{plane}`)",
                        stage.plane()
                    ),
                );
            }
        }
        let severity = self.entries.contains_key("severity");
        IncidentDoc {
            incident_id: self.required_identifier("incident_id"),
            title: self.required_text("title"),
            summary: self.required_text("summary"),
            root_idea_id: self.identifier("root_idea_id", false),
            root_spec_id: self.identifier("root_spec_id", false),
            source_task_id: self.identifier("source_task_id", false),
            source_spec_id: self.identifier("source_spec_id", false),
            // Placeholders only: a missing or bad value has already been recorded.
            source_stage: source_stage.unwrap_or(Stage::Consultant),
            source_plane: source_plane.unwrap_or(Plane::Execution),
            failure_class: self.required_text("failure_class"),
            severity: if severity {
                self.word(
                    "severity",
                    true,
                    &Severity::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                    Severity::from_word,
                )
                .unwrap_or(Severity::Medium)
            } else {
                Severity::Medium
            },
            needs_planning: self.boolean("needs_planning", true),
            trigger_reason: self.required_text("trigger_reason"),
            consultant_decision: self
                .word("consultant_decision", true, &CONSULTANT_DECISIONS, |word| {
                    CONSULTANT_DECISIONS
                        .contains(&word)
                        .then(|| word.to_string())
                })
                .unwrap_or_default(),
            opened_at: self.required_datetime("opened_at"),
            opened_by: self.required_text("opened_by"),
            updated_at: self.datetime("updated_at", false),
            observed_symptoms: self.list("observed_symptoms", false),
            failed_attempts: self.list("failed_attempts", false),
            evidence_paths: self.list("evidence_paths", false),
            related_run_ids: self.list("related_run_ids", false),
            related_stage_results: self.list("related_stage_results", false),
            references: self.list("references", false),
        }
    }
}
