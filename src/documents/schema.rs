//! Field sets of the three strict document kinds (spec 02 §5), in canonical render order.

use super::DocTime;
use crate::model::WorkItemKind;

/// Informational queue state a task may declare; the runtime never reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusHint {
    Queued,
    Active,
    Blocked,
    Done,
}

/// Where a spec came from; `idea` and `manual` specs are their own lineage root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Idea,
    Incident,
    Manual,
    DerivedSpec,
}

/// Incident severity; `medium` is the default and is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// A task (spec 02 §5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDoc {
    pub task_id: String,
    pub title: String,
    pub summary: String,
    pub root_idea_id: Option<String>,
    pub root_spec_id: Option<String>,
    pub spec_id: Option<String>,
    pub parent_task_id: Option<String>,
    pub incident_id: Option<String>,
    pub status_hint: Option<StatusHint>,
    pub created_at: DocTime,
    pub created_by: String,
    pub updated_at: Option<DocTime>,
    pub depends_on: Vec<String>,
    pub blocks: Vec<String>,
    pub tags: Vec<String>,
    pub target_paths: Vec<String>,
    pub acceptance: Vec<String>,
    pub required_checks: Vec<String>,
    pub references: Vec<String>,
    pub risk: Vec<String>,
}

/// A spec (spec 02 §5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecDoc {
    pub spec_id: String,
    pub title: String,
    pub summary: String,
    pub source_type: SourceType,
    pub source_id: Option<String>,
    pub parent_spec_id: Option<String>,
    pub root_idea_id: Option<String>,
    pub root_spec_id: Option<String>,
    pub created_at: DocTime,
    pub created_by: String,
    pub updated_at: Option<DocTime>,
    pub goals: Vec<String>,
    pub non_goals: Vec<String>,
    pub scope: Vec<String>,
    pub constraints: Vec<String>,
    pub assumptions: Vec<String>,
    pub risks: Vec<String>,
    pub target_paths: Vec<String>,
    pub entrypoints: Vec<String>,
    pub required_skills: Vec<String>,
    pub decomposition_hints: Vec<String>,
    pub acceptance: Vec<String>,
    pub references: Vec<String>,
}

/// An incident (spec 02 §5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentDoc {
    pub incident_id: String,
    pub title: String,
    pub summary: String,
    pub root_idea_id: Option<String>,
    pub root_spec_id: Option<String>,
    pub source_task_id: Option<String>,
    pub source_spec_id: Option<String>,
    pub source_stage: crate::model::Stage,
    pub source_plane: crate::model::Plane,
    pub failure_class: String,
    pub severity: Severity,
    pub needs_planning: bool,
    pub trigger_reason: String,
    pub consultant_decision: String,
    pub opened_at: DocTime,
    pub opened_by: String,
    pub updated_at: Option<DocTime>,
    pub observed_symptoms: Vec<String>,
    pub failed_attempts: Vec<String>,
    pub evidence_paths: Vec<String>,
    pub related_run_ids: Vec<String>,
    pub related_stage_results: Vec<String>,
    pub references: Vec<String>,
}

/// A field's Markdown shape: one inline value, or a `- item` list section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Scalar,
    List,
}

/// One schema row: the Markdown label, the JSON/field name and the shape.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Field {
    pub label: &'static str,
    pub name: &'static str,
    pub shape: Shape,
}

const fn scalar(label: &'static str, name: &'static str) -> Field {
    Field {
        label,
        name,
        shape: Shape::Scalar,
    }
}

const fn list(label: &'static str, name: &'static str) -> Field {
    Field {
        label,
        name,
        shape: Shape::List,
    }
}

/// Task fields in canonical render order (spec 02 §5.1).
pub(super) const TASK_FIELDS: &[Field] = &[
    scalar("Task-ID", "task_id"),
    scalar("Title", "title"),
    scalar("Summary", "summary"),
    scalar("Root-Idea-ID", "root_idea_id"),
    scalar("Root-Spec-ID", "root_spec_id"),
    scalar("Spec-ID", "spec_id"),
    scalar("Parent-Task-ID", "parent_task_id"),
    scalar("Incident-ID", "incident_id"),
    scalar("Status-Hint", "status_hint"),
    scalar("Created-At", "created_at"),
    scalar("Created-By", "created_by"),
    scalar("Updated-At", "updated_at"),
    list("Depends-On", "depends_on"),
    list("Blocks", "blocks"),
    list("Tags", "tags"),
    list("Target-Paths", "target_paths"),
    list("Acceptance", "acceptance"),
    list("Required-Checks", "required_checks"),
    list("References", "references"),
    list("Risk", "risk"),
];

/// Spec fields in canonical render order (spec 02 §5.2).
pub(super) const SPEC_FIELDS: &[Field] = &[
    scalar("Spec-ID", "spec_id"),
    scalar("Title", "title"),
    scalar("Summary", "summary"),
    scalar("Source-Type", "source_type"),
    scalar("Source-ID", "source_id"),
    scalar("Parent-Spec-ID", "parent_spec_id"),
    scalar("Root-Idea-ID", "root_idea_id"),
    scalar("Root-Spec-ID", "root_spec_id"),
    scalar("Created-At", "created_at"),
    scalar("Created-By", "created_by"),
    scalar("Updated-At", "updated_at"),
    list("Goals", "goals"),
    list("Non-Goals", "non_goals"),
    list("Scope", "scope"),
    list("Constraints", "constraints"),
    list("Assumptions", "assumptions"),
    list("Risks", "risks"),
    list("Target-Paths", "target_paths"),
    list("Entrypoints", "entrypoints"),
    list("Required-Skills", "required_skills"),
    list("Decomposition-Hints", "decomposition_hints"),
    list("Acceptance", "acceptance"),
    list("References", "references"),
];

/// Incident fields in canonical render order (spec 02 §5.3).
pub(super) const INCIDENT_FIELDS: &[Field] = &[
    scalar("Incident-ID", "incident_id"),
    scalar("Title", "title"),
    scalar("Summary", "summary"),
    scalar("Root-Idea-ID", "root_idea_id"),
    scalar("Root-Spec-ID", "root_spec_id"),
    scalar("Source-Task-ID", "source_task_id"),
    scalar("Source-Spec-ID", "source_spec_id"),
    scalar("Source-Stage", "source_stage"),
    scalar("Source-Plane", "source_plane"),
    scalar("Failure-Class", "failure_class"),
    scalar("Severity", "severity"),
    scalar("Needs-Planning", "needs_planning"),
    scalar("Trigger-Reason", "trigger_reason"),
    scalar("Consultant-Decision", "consultant_decision"),
    scalar("Opened-At", "opened_at"),
    scalar("Opened-By", "opened_by"),
    scalar("Updated-At", "updated_at"),
    list("Observed-Symptoms", "observed_symptoms"),
    list("Failed-Attempts", "failed_attempts"),
    list("Evidence-Paths", "evidence_paths"),
    list("Related-Run-IDs", "related_run_ids"),
    list("Related-Stage-Results", "related_stage_results"),
    list("References", "references"),
];

/// The schema of one kind.
pub(super) fn fields_of(kind: WorkItemKind) -> &'static [Field] {
    match kind {
        WorkItemKind::Task => TASK_FIELDS,
        WorkItemKind::Spec => SPEC_FIELDS,
        WorkItemKind::Incident => INCIDENT_FIELDS,
    }
}

/// A label known to any kind (spec 02 §5.4). Each label has the same shape in every kind,
/// so the first match is the answer.
pub(super) fn known_label(label: &str) -> Option<&'static Field> {
    WorkItemKind::ALL
        .into_iter()
        .flat_map(|kind| fields_of(kind).iter())
        .find(|field| field.label == label)
}

/// The consultant decisions an incident may record.
pub(super) const CONSULTANT_DECISIONS: [&str; 2] = ["needs_planning", "blocked"];

macro_rules! word_enum {
    ($ty:ty { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the order the spec lists them.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The lowercase word written in documents.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $word),+
                }
            }

            /// The value for an exact (case-sensitive) document word.
            pub fn from_word(word: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|value| value.as_str() == word)
            }
        }
    };
}

word_enum!(StatusHint {
    Queued => "queued",
    Active => "active",
    Blocked => "blocked",
    Done => "done",
});

word_enum!(SourceType {
    Idea => "idea",
    Incident => "incident",
    Manual => "manual",
    DerivedSpec => "derived_spec",
});

word_enum!(Severity {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});
