//! Work documents: tasks, specs, incidents (strict Markdown) and ideas (free Markdown).
//!
//! The one parser and renderer of documents. The Markdown grammar is byte-compatible with
//! millrace-ai 0.12.4 (spec 02): what either implementation writes, the other reads, and
//! re-rendering is identical. Errors name the file, the line and the rule broken.

mod datetime;
mod grammar;
mod idea;
mod json;
pub use json::to_json;
pub use render::{with_own_root_lineage, with_runtime_history};
mod render;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

pub use datetime::DocTime;
pub use idea::{check_idea_submission, idea_spec_id, normalize_idea, IdeaSpec};
pub use schema::{IncidentDoc, Severity, SourceType, SpecDoc, StatusHint, TaskDoc};

use crate::model::WorkItemKind;

/// A document that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct DocError {
    /// File name (or `<memory>`).
    pub file: String,
    /// 1-based line of the offending text, where there is one.
    pub line: Option<usize>,
    /// The rule broken, e.g. ``repeats field `Created-By` ``.
    pub message: String,
}

/// A parsed task, spec or incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// Execution work (`tasks/`).
    Task(TaskDoc),
    /// Planning input (`specs/`).
    Spec(SpecDoc),
    /// A failure handed to planning (`incidents/`).
    Incident(IncidentDoc),
}

/// Parse Markdown `text` as a document of `kind`; `name` is the file name used in errors.
pub fn parse(kind: WorkItemKind, name: &str, text: &str) -> Result<Document, DocError> {
    grammar::parse(kind, name, text)
}

/// Parse a JSON import (`add-task x.json`) of `kind`.
pub fn parse_json(kind: WorkItemKind, name: &str, text: &str) -> Result<Document, DocError> {
    json::parse(kind, name, text)
}

impl Document {
    /// The kind, which decides the folders and the schema.
    pub fn kind(&self) -> WorkItemKind {
        match self {
            Document::Task(_) => WorkItemKind::Task,
            Document::Spec(_) => WorkItemKind::Spec,
            Document::Incident(_) => WorkItemKind::Incident,
        }
    }

    /// The document's own id; its file is `<id>.md`.
    pub fn id(&self) -> &str {
        match self {
            Document::Task(d) => &d.task_id,
            Document::Spec(d) => &d.spec_id,
            Document::Incident(d) => &d.incident_id,
        }
    }

    /// The H1 title (always equal to the `Title` field).
    pub fn title(&self) -> &str {
        match self {
            Document::Task(d) => &d.title,
            Document::Spec(d) => &d.title,
            Document::Incident(d) => &d.title,
        }
    }

    /// The ordering timestamp (`created_at`, or `opened_at` for incidents).
    pub fn timestamp(&self) -> &DocTime {
        match self {
            Document::Task(d) => &d.created_at,
            Document::Spec(d) => &d.created_at,
            Document::Incident(d) => &d.opened_at,
        }
    }

    /// The claim order of spec 03 §3.4: earliest instant first (naive read as UTC), ties
    /// broken by id. Equal instants written with different offsets tie, as in the reference,
    /// which `DocTime`'s `Ord` (consistent with `==`) would not give.
    pub fn order_key(&self) -> (i64, &str) {
        (self.timestamp().micros, self.id())
    }

    /// Task ids that must be done before this task is claimable (empty for other kinds).
    pub fn depends_on(&self) -> &[String] {
        match self {
            Document::Task(d) => &d.depends_on,
            _ => &[],
        }
    }

    /// The declared root spec of this line of work, if any.
    pub fn root_spec_id(&self) -> Option<&str> {
        match self {
            Document::Task(d) => d.root_spec_id.as_deref(),
            Document::Spec(d) => d.root_spec_id.as_deref(),
            Document::Incident(d) => d.root_spec_id.as_deref(),
        }
    }

    /// The idea this line of work started from, if declared.
    pub fn root_idea_id(&self) -> Option<&str> {
        match self {
            Document::Task(d) => d.root_idea_id.as_deref(),
            Document::Spec(d) => d.root_idea_id.as_deref(),
            Document::Incident(d) => d.root_idea_id.as_deref(),
        }
    }

    /// The root spec this document's work counts toward (spec 02 §8).
    pub fn effective_root_spec(&self) -> Option<&str> {
        if let Some(root) = self.root_spec_id() {
            return Some(root);
        }
        match self {
            Document::Task(d) => d.spec_id.as_deref(),
            Document::Incident(d) => d.source_spec_id.as_deref(),
            Document::Spec(d) => match d.source_type {
                SourceType::Idea | SourceType::Manual => Some(&d.spec_id),
                _ => None,
            },
        }
    }

    /// Canonical Markdown (spec 02 §9).
    pub fn render(&self) -> String {
        render::render(self)
    }

    /// Reject values that would not survive a round trip (multi-line strings, empty list
    /// items, blank title or summary), so the runtime never writes an unreadable file.
    pub fn check_round_trip(&self, name: &str) -> Result<(), DocError> {
        render::check_round_trip(self, name)
    }
}
