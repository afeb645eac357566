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

/// The seed idea a root spec names (a `.md` reference, then the inbox file of its source or
/// root idea): the first that reads as a real file inside the project, with its text. The
/// spec's references are written by agents, so each is read through [`atomic::read_beneath`]:
/// a link or a `..` that leads outside the project is passed over, and its target is never
/// copied into the contracts the arbiter reads.
fn seed_idea_text(ws: &Workspace, doc: &Document) -> Option<Vec<u8>> {
    let Document::Spec(spec) = doc else {
        return None;
    };
    let mut candidates: Vec<PathBuf> = spec
        .references
        .iter()
        .filter(|r| r.ends_with(".md"))
        .filter_map(|r| {
            let p = Path::new(r);
            match p.strip_prefix(ws.root()) {
                Ok(inside) => Some(inside.to_path_buf()),
                Err(_) if p.is_absolute() => None,
                Err(_) => Some(p.to_path_buf()),
            }
        })
        .collect();
    for id in [spec.source_id.as_deref(), spec.root_idea_id.as_deref()]
        .into_iter()
        .flatten()
    {
        let stem = id.strip_prefix("idea-").unwrap_or(id);
        let inbox = PathBuf::from(ws.rel(&ws.ideas_inbox()));
        candidates.push(inbox.join(format!("{id}.md")));
        candidates.push(inbox.join(format!("{stem}.md")));
    }
    candidates
        .into_iter()
        .find_map(|rel| match atomic::read_beneath(ws.root(), &rel) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(spec = %spec.spec_id, reference = %rel.display(), error = %e,
                    "seed idea not read");
                None
            }
        })
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
    let spec_text = atomic::read_beneath(ws.root(), Path::new(&ws.rel(spec_path)))
        .unwrap_or_else(|_| doc.render().into_bytes());
    atomic::create_dir_all(spec_copy.parent().expect("has parent"))?;
    atomic::write_atomic(&spec_copy, &spec_text)?;
    let mut idea_rel = None;
    if let Some(text) = seed_idea_text(ws, doc) {
        let idea_id = doc.root_idea_id().unwrap_or(&root).to_string();
        let copy = ws.contract_idea_path(&idea_id);
        atomic::create_dir_all(copy.parent().expect("has parent"))?;
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
