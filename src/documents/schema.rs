//! Field sets of the three strict document kinds (spec 02 §5), in canonical render order.

use super::DocTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusHint {
    Queued,
    Active,
    Blocked,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Idea,
    Incident,
    Manual,
    DerivedSpec,
}

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
