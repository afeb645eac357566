//! Open closure targets with their live lineage backlog, so `status` and `doctor` can say why
//! a root spec has not closed yet and what the operator can do about it.

use serde::Serialize;

use crate::model::WorkItemKind;
use crate::queue::QueueStore;
use crate::state::closure::{self, ClosureTarget};
use crate::workspace::{Folder, Workspace};

/// One lineage item a closure target waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BacklogItem {
    pub kind: Option<WorkItemKind>,
    pub id: String,
    /// `tasks/queue`, `specs/blocked`, ... or `missing` when no folder holds the id.
    pub folder: String,
    pub blocked: bool,
}

/// An open closure target as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct ClosureView {
    pub root_spec_id: String,
    pub root_idea_id: Option<String>,
    pub closure_open: bool,
    pub closure_blocked_by_lineage_work: bool,
    /// The target's `blocking_work_ids` plus any open lineage item found in the folders now.
    pub backlog: Vec<BacklogItem>,
    pub latest_outcome: Option<String>,
    pub latest_verdict_path: Option<String>,
    pub latest_report_path: Option<String>,
    pub arbiter_runs: u32,
    pub last_arbiter_run_id: Option<String>,
    pub closure_held: Option<String>,
    /// Workspace-relative path of the target file.
    pub path: String,
}

impl ClosureView {
    /// Lineage items that sit in a `blocked/` folder: the target cannot close until they move.
    pub fn blocked_items(&self) -> impl Iterator<Item = &BacklogItem> {
        self.backlog.iter().filter(|i| i.blocked)
    }

    /// Sentences naming what stops this target, each with the command to look further.
    pub fn attention(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .blocked_items()
            .map(|item| {
                let kind = item.kind.map(|k| k.as_str()).unwrap_or("item");
                format!(
                    "closure of {} waits on blocked {kind} {} (run `millrace queue show {}`)",
                    self.root_spec_id, item.id, item.id
                )
            })
            .collect();
        if let Some(reason) = &self.closure_held {
            out.push(format!(
                "closure of {} is held: {reason} (edit {})",
                self.root_spec_id, self.path
            ));
        }
        out
    }
}

fn locate(store: &QueueStore, id: &str) -> BacklogItem {
    for kind in WorkItemKind::ALL {
        if let Some((folder, _)) = store.locate(kind, id) {
            return BacklogItem {
                kind: Some(kind),
                id: id.to_string(),
                folder: store.folder_label(kind, folder),
                blocked: folder == Folder::Blocked,
            };
        }
    }
    BacklogItem {
        kind: None,
        id: id.to_string(),
        folder: "missing".into(),
        blocked: false,
    }
}

fn view(ws: &Workspace, store: &QueueStore, target: ClosureTarget) -> ClosureView {
    let mut ids = target.blocking_work_ids.clone();
    for (_, id, _) in store.open_lineage_work(&target.root_spec_id) {
        if id != target.root_spec_id && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let backlog = ids
        .iter()
        .map(|id| locate(store, id))
        .filter(|item| !item.folder.ends_with("/done") && !item.folder.ends_with("/resolved"))
        .collect();
    ClosureView {
        path: ws.rel(&ws.closure_target_path(&target.root_spec_id)),
        root_spec_id: target.root_spec_id,
        root_idea_id: target.root_idea_id,
        closure_open: target.closure_open,
        closure_blocked_by_lineage_work: target.closure_blocked_by_lineage_work,
        backlog,
        latest_outcome: target.latest_outcome,
        latest_verdict_path: target.latest_verdict_path,
        latest_report_path: target.latest_report_path,
        arbiter_runs: target.arbiter_runs,
        last_arbiter_run_id: target.last_arbiter_run_id,
        closure_held: target.closure_held,
    }
}

/// Open closure targets (sorted by root spec id) and the target files that could not be read.
pub fn open_targets(ws: &Workspace) -> (Vec<ClosureView>, Vec<String>) {
    let (targets, problems) = closure::list(ws);
    let store = QueueStore::new(ws);
    let views = targets
        .into_iter()
        .filter(|t| t.closure_open)
        .map(|t| view(ws, &store, t))
        .collect();
    (views, problems)
}
