//! Intake: ideas dropped into `ideas/inbox/` become planning specs.
//!
//! Every wake rescans the inbox, so ideas present at startup and ideas whose file events
//! were lost are taken too. A file is taken when it arrived complete (renamed in, or closed
//! after writing, as the watcher reports) or when it has held still for the settle window;
//! a younger file is left for a look when its window ends. Ideas stay in the inbox (they are the seed
//! contracts the arbiter reads); an in-memory index keeps rescans from re-reading them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::documents::{self, Document, SourceType};
use crate::error::Result;
use crate::model::WorkItemKind;
use crate::queue::{FileKey, QueueError, QueueStore};
use crate::state::event::EventKind;
use crate::state::events::EventLog;
use crate::workspace::Workspace;

/// What one intake pass did.
#[derive(Debug, Default)]
pub struct IntakeReport {
    pub specs: Vec<String>,
}

/// Whether the spec `id` was made from something else than the idea at `rel`, and if so
/// from which idea, when it names one. A spec that cannot be read is left to the queue's own
/// checks (`None`).
fn made_from_another(queue: &QueueStore, id: &str, rel: &str) -> Option<Option<String>> {
    let (_, path) = queue.locate(WorkItemKind::Spec, id)?;
    let Ok(Document::Spec(spec)) = queue.load(WorkItemKind::Spec, &path)? else {
        return None;
    };
    if spec.references.iter().any(|r| r == rel) {
        return None;
    }
    let idea = (spec.source_type == SourceType::Idea)
        .then(|| spec.references.first().cloned())
        .flatten();
    Some(idea)
}

/// Remembers which inbox files were already handled.
#[derive(Debug, Default)]
pub struct Intake {
    seen: HashMap<PathBuf, FileKey>,
}

impl Intake {
    /// Turn new inbox ideas into queued specs.
    pub fn ideas(
        &mut self,
        ws: &Workspace,
        queue: &QueueStore,
        events: &EventLog,
        complete: &dyn Fn(&Path) -> bool,
    ) -> Result<IntakeReport> {
        let mut report = IntakeReport::default();
        let inbox = ws.ideas_inbox();
        let Ok(read) = std::fs::read_dir(&inbox) else {
            return Ok(report);
        };
        let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        self.seen.retain(|p, _| p.exists());
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || !name.ends_with(".md") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                queue.quarantine(
                    &path,
                    "symlinks are not followed in the idea inbox; copy the file in",
                    None,
                )?;
                continue;
            }
            if meta.is_file() && path.file_name().and_then(|n| n.to_str()).is_none() {
                queue.quarantine(&path, "the file name is not valid UTF-8; rename it", None)?;
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Some(key) = FileKey::of(&path) else {
                continue;
            };
            if self.seen.get(&path) == Some(&key) {
                continue;
            }
            if !complete(&path) && queue.settle().young(&path) {
                continue;
            }
            let text = match crate::workspace::atomic::read_regular(&path).map(String::from_utf8) {
                Ok(Ok(text)) if !text.trim().is_empty() => text,
                Ok(Ok(_)) => {
                    queue.quarantine(&path, "idea file is empty", None)?;
                    continue;
                }
                Ok(Err(e)) => {
                    let msg = format!(
                        "idea file is not valid UTF-8 (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    );
                    queue.quarantine(&path, &msg, None)?;
                    continue;
                }
                Err(_) => continue,
            };
            let stem = name.strip_suffix(".md").unwrap_or(&name);
            let spec = documents::normalize_idea(stem, &ws.rel(&path), &text, crate::time::now());
            let doc = Document::Spec(spec);
            match queue.enqueue(&doc) {
                Ok(dest) => {
                    crate::workspace::failpoint::transition("intake.after_enqueue")?;
                    events.emit(
                        EventKind::IdeaNormalizedToSpec,
                        json!({"idea_path": path.display().to_string(), "spec_id": doc.id(),
                               "spec_path": ws.rel(&dest)}),
                    )?;
                    report.specs.push(doc.id().to_string());
                }
                // Ideas stay in the inbox, so every start meets the ones it already made
                // into specs. Another file whose name gives the same id is not one of them.
                Err(QueueError::Duplicate { id, folder, .. }) => {
                    let rel = ws.rel(&path);
                    if let Some(made_from) = made_from_another(queue, &id, &rel) {
                        let msg =
                            format!(
                            "this idea would become spec {id}, which {folder} already holds{}; \
                             rename the file to add it as an idea of its own",
                            made_from.map(|s| format!(" (made from {s})")).unwrap_or_default()
                        );
                        queue.quarantine(&path, &msg, None)?;
                        continue;
                    }
                }
                Err(QueueError::Document(err)) => {
                    queue.quarantine(&path, &err.to_string(), err.line)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.seen.insert(path, key);
        }
        Ok(report)
    }
}
