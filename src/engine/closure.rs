//! Closure targets: one per root spec, judged by the arbiter once its lineage drains.
//!
//! Several targets may be open at once (decision 13); each is judged independently. Arbiter
//! runs per target are bounded by `recovery.max_arbiter_attempts`; a target that hits the
//! bound is held (`closure_held`) with its reason, shown by `status` and `doctor`, instead of
//! re-running the arbiter on every idle tick as the reference does.

use std::path::{Path, PathBuf};

use crate::documents::Document;
use crate::model::WorkItemKind;
use crate::queue::QueueStore;
use crate::state::closure::ClosureTarget;
use crate::state::StateError;
use crate::workspace::atomic;
use crate::workspace::{Folder, Workspace};

/// Whether a spec roots its own lineage (spec 07 §3, relaxed: the idea is optional).
pub fn is_root_spec(doc: &Document) -> bool {
    match doc {
        Document::Spec(s) => s.root_spec_id.as_deref() == Some(s.spec_id.as_str()),
        _ => false,
    }
}

fn resolve_seed_idea(ws: &Workspace, doc: &Document) -> Option<PathBuf> {
    let Document::Spec(spec) = doc else {
        return None;
    };
    let mut candidates: Vec<PathBuf> = spec
        .references
        .iter()
        .filter(|r| r.ends_with(".md"))
        .map(|r| {
            let p = Path::new(r);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                ws.root().join(p)
            }
        })
        .collect();
    for id in [spec.source_id.as_deref(), spec.root_idea_id.as_deref()]
        .into_iter()
        .flatten()
    {
        let stem = id.strip_prefix("idea-").unwrap_or(id);
        candidates.push(ws.ideas_inbox().join(format!("{id}.md")));
        candidates.push(ws.ideas_inbox().join(format!("{stem}.md")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file() && p.starts_with(ws.root()))
}

/// Open the target for a root spec if it has none: snapshot its contracts. Returns the
/// target when one was created.
pub fn open_for_spec(
    ws: &Workspace,
    doc: &Document,
    spec_path: &Path,
) -> Result<Option<ClosureTarget>, StateError> {
    if !is_root_spec(doc) {
        return Ok(None);
    }
    let root = doc.id().to_string();
    let path = ws.closure_target_path(&root);
    if path.exists() {
        return Ok(None);
    }
    let spec_copy = ws.contract_root_spec_path(&root);
    let spec_text = atomic::read_regular(spec_path).unwrap_or_else(|_| doc.render().into_bytes());
    atomic::create_dir_all(spec_copy.parent().expect("has parent"))?;
    atomic::write_atomic(&spec_copy, &spec_text)?;
    let mut idea_rel = None;
    if let Some(idea) = resolve_seed_idea(ws, doc) {
        let idea_id = doc.root_idea_id().unwrap_or(&root).to_string();
        let copy = ws.contract_idea_path(&idea_id);
        atomic::create_dir_all(copy.parent().expect("has parent"))?;
        let text = atomic::read_regular(&idea)
            .map_err(|e| crate::workspace::atomic::IoError::path("read seed idea", &idea, e))?;
        atomic::write_atomic(&copy, &text)?;
        idea_rel = Some(ws.rel(&copy));
    }
    let target = ClosureTarget {
        schema_version: crate::state::SCHEMA_VERSION.into(),
        kind: "closure_target_state".into(),
        root_spec_id: root.clone(),
        root_idea_id: doc.root_idea_id().map(str::to_string),
        root_spec_path: ws.rel(&spec_copy),
        root_idea_path: idea_rel,
        rubric_path: ws.rel(&ws.arbiter_rubric_path(&root)),
        latest_verdict_path: None,
        latest_report_path: None,
        closure_open: true,
        closure_blocked_by_lineage_work: false,
        blocking_work_ids: Vec::new(),
        opened_at: crate::time::now_string(),
        closed_at: None,
        last_arbiter_run_id: None,
        arbiter_runs: 0,
        closure_held: None,
        latest_outcome: None,
        unknown: Default::default(),
    };
    target.save(ws)?;
    Ok(Some(target))
}

/// Open targets for root specs that lack one (crash between claim and open); run at startup.
pub fn backfill(ws: &Workspace, queue: &QueueStore) -> Result<Vec<String>, StateError> {
    let mut opened = Vec::new();
    for folder in [Folder::Active, Folder::Done] {
        for entry in queue.entries(WorkItemKind::Spec, folder) {
            let Ok(info) = &entry.parsed else {
                continue;
            };
            let roots_itself = info.root_spec_id.as_deref() == Some(info.id.as_str());
            if !roots_itself || ws.closure_target_path(&info.id).exists() {
                continue;
            }
            if let Some(Ok(doc)) = queue.load(WorkItemKind::Spec, &entry.path) {
                if let Some(t) = open_for_spec(ws, &doc, &entry.path)? {
                    opened.push(t.root_spec_id);
                }
            }
        }
    }
    Ok(opened)
}

/// Refresh a target's readiness from its open lineage work; saves only when it changed.
/// Returns true when the lineage has drained and the arbiter may run.
pub fn refresh_readiness(
    ws: &Workspace,
    queue: &QueueStore,
    target: &mut ClosureTarget,
) -> Result<bool, StateError> {
    let work: Vec<String> = queue
        .open_lineage_work(&target.root_spec_id)
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    target.closure_blocked_by_lineage_work = !work.is_empty();
    target.blocking_work_ids = work;
    target.save(ws)?;
    Ok(target.closure_open
        && target.closure_held.is_none()
        && !target.closure_blocked_by_lineage_work)
}
