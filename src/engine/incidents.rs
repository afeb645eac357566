//! Incidents the runtime writes itself: planning handoffs and arbiter remediation.
//!
//! Both carry the root lineage of the work they came from (decision 12), so closure waits
//! for them.

use crate::documents::{DocTime, Document, IncidentDoc, Severity};
use crate::model::{Plane, Stage, WorkItemKind};
use crate::runners::StageResult;

fn paths(list: &[std::path::PathBuf]) -> Vec<String> {
    list.iter().map(|p| p.display().to_string()).collect()
}

fn push_unique(list: &mut Vec<String>, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// Lineage of the item a handoff comes from.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub root_spec_id: Option<String>,
    pub root_idea_id: Option<String>,
}

/// `NEEDS_PLANNING` from an execution stage: planning must look at this item.
pub fn handoff(
    kind: WorkItemKind,
    id: &str,
    result: &StageResult,
    lineage: &Lineage,
    previous_result: Option<String>,
) -> Document {
    let spec_id = matches!(kind, WorkItemKind::Spec).then(|| id.to_string());
    Document::Incident(IncidentDoc {
        incident_id: format!("incident-{id}-{}", crate::time::hex8()),
        title: format!("Planning handoff for {kind} {id}"),
        summary: format!(
            "Stage {} returned {}; planning remediation required.",
            result.stage, result.terminal_result
        ),
        root_idea_id: lineage.root_idea_id.clone(),
        root_spec_id: lineage.root_spec_id.clone(),
        source_task_id: matches!(kind, WorkItemKind::Task).then(|| id.to_string()),
        source_spec_id: spec_id,
        source_stage: result.stage,
        source_plane: result.stage.plane(),
        failure_class: "consultant_needs_planning".into(),
        severity: Severity::High,
        needs_planning: true,
        trigger_reason: "consultant_needs_planning".into(),
        consultant_decision: "needs_planning".into(),
        opened_at: DocTime::from_timestamp(crate::time::now()),
        opened_by: "runtime".into(),
        updated_at: None,
        observed_symptoms: result.notes.iter().map(|n| one_line(n)).collect(),
        failed_attempts: Vec::new(),
        evidence_paths: paths(&result.artifact_paths),
        related_run_ids: vec![result.run_id.clone()],
        related_stage_results: previous_result.into_iter().collect(),
        references: Vec::new(),
    })
}

/// `REMEDIATION_NEEDED` from the arbiter: gaps against the root spec's contract.
pub fn remediation(
    root_spec_id: &str,
    root_idea_id: Option<&str>,
    result: &StageResult,
) -> Document {
    let mut evidence = paths(&result.artifact_paths);
    let m = &result.metadata;
    for p in [
        &m.preferred_rubric_path,
        &m.preferred_verdict_path,
        &m.preferred_report_path,
    ] {
        push_unique(&mut evidence, p.as_ref().map(|p| p.display().to_string()));
    }
    Document::Incident(IncidentDoc {
        incident_id: format!("arbiter-gap-{root_spec_id}-{}", crate::time::hex8()),
        title: format!("Arbiter remediation for {root_spec_id}"),
        summary: format!(
            "Arbiter found parity gaps for root spec {root_spec_id}; planning remediation required."
        ),
        root_idea_id: root_idea_id.map(str::to_string),
        root_spec_id: Some(root_spec_id.to_string()),
        source_task_id: None,
        source_spec_id: Some(root_spec_id.to_string()),
        source_stage: Stage::Arbiter,
        source_plane: Plane::Planning,
        failure_class: "arbiter_parity_gap".into(),
        severity: Severity::High,
        needs_planning: true,
        trigger_reason: "arbiter_remediation_needed".into(),
        consultant_decision: "needs_planning".into(),
        opened_at: DocTime::from_timestamp(crate::time::now()),
        opened_by: "runtime".into(),
        updated_at: None,
        observed_symptoms: result.notes.iter().map(|n| one_line(n)).collect(),
        failed_attempts: Vec::new(),
        evidence_paths: evidence,
        related_run_ids: vec![result.run_id.clone()],
        related_stage_results: Vec::new(),
        references: Vec::new(),
    })
}

/// Incident list items must be single-line and non-empty to round-trip.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "(no detail)".into()
    } else {
        joined
    }
}
