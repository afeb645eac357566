//! What the queue keeps of a parsed document, and the per-folder index that lets a new
//! process skip re-parsing unchanged files.
//!
//! A full document is parsed once per file version; the queue keeps only this summary
//! (order, dependencies, lineage, title), which is about a tenth of the memory. The index
//! (`state/cache/<kind>-<folder>.json`) maps each file name with its inode, size and mtime
//! to its summary. It is a cache: written without fsync, ignored when unreadable, and any
//! file whose stamp differs is parsed again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::documents::Document;
use crate::model::WorkItemKind;

/// Order, gating and lineage of one work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub kind: WorkItemKind,
    pub id: String,
    pub title: String,
    /// Ordering instant in microseconds (naive timestamps read as UTC).
    pub order_micros: i64,
    pub depends_on: Vec<String>,
    pub root_spec_id: Option<String>,
    pub root_idea_id: Option<String>,
    /// The root spec this item's work counts toward (spec 02 §8).
    pub effective_root_spec: Option<String>,
    /// A task's `Spec-ID`.
    pub spec_id: Option<String>,
}

impl ItemInfo {
    pub fn of(doc: &Document) -> ItemInfo {
        let (order_micros, _) = doc.order_key();
        ItemInfo {
            kind: doc.kind(),
            id: doc.id().to_string(),
            title: doc.title().to_string(),
            order_micros,
            depends_on: doc.depends_on().to_vec(),
            root_spec_id: doc.root_spec_id().map(str::to_string),
            root_idea_id: doc.root_idea_id().map(str::to_string),
            effective_root_spec: doc.effective_root_spec().map(str::to_string),
            spec_id: match doc {
                Document::Task(t) => t.spec_id.clone(),
                _ => None,
            },
        }
    }

    /// Claim order: earliest instant, then id.
    pub fn order_key(&self) -> (i64, &str) {
        (self.order_micros, &self.id)
    }
}

/// What identifies a file's content for the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    mtime_ns: u128,
    len: u64,
    ino: u64,
}

impl FileKey {
    /// The key of a regular file (never follows a symlink).
    pub fn of(path: &Path) -> Option<FileKey> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let mtime = meta.modified().ok()?;
        Some(FileKey {
            mtime_ns: mtime
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos(),
            len: meta.len(),
            ino: meta.ino(),
        })
    }

    /// When the file was last modified.
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.mtime_ns.min(u64::MAX as u128) as u64)
    }
}

/// One indexed file.
#[derive(Debug, Serialize, Deserialize)]
struct Row {
    name: String,
    key: FileKey,
    info: ItemInfo,
}

/// The index file of a folder.
pub fn index_path(state_dir: &Path, kind: WorkItemKind, folder_name: &str) -> PathBuf {
    state_dir
        .join("cache")
        .join(format!("{}-{folder_name}.json", kind.as_str()))
}

/// Read a folder's index (file name → stamp and summary); anything unreadable is empty.
pub fn load_index(path: &Path) -> HashMap<String, super::CacheEntry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let rows: Vec<Row> = serde_json::from_str(&text).unwrap_or_default();
    rows.into_iter()
        .map(|row| (row.name, (row.key, Ok(std::sync::Arc::new(row.info)))))
        .collect()
}

/// Write a folder's index (a cache: atomic, not fsynced).
pub fn save_index<'a>(
    path: &Path,
    rows: impl Iterator<Item = (&'a str, &'a FileKey, &'a ItemInfo)>,
) {
    let mut rows: Vec<Row> = rows
        .map(|(name, key, info)| Row {
            name: name.to_string(),
            key: *key,
            info: info.clone(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let Ok(text) = serde_json::to_string(&rows) else {
        return;
    };
    if let Some(dir) = path.parent() {
        if crate::workspace::atomic::create_dir_all(dir).is_err() {
            return;
        }
    }
    if let Err(e) = crate::workspace::atomic::write_artifact(path, text.as_bytes()) {
        tracing::debug!(%e, "queue index not written");
    }
}
