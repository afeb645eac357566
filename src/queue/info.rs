//! What the queue keeps of a parsed document, and the per-folder index that lets a new
//! process skip re-parsing unchanged files.
//!
//! A full document is parsed once per file version; the queue keeps only this summary
//! (order, dependencies, lineage, title), which is about a tenth of the memory. The index
//! (`state/cache/<kind>-<folder>.tsv`) maps each file name with its inode, size, mtime and
//! ctime to its summary. It is a cache: written without fsync, ignored when unreadable, and
//! any file whose key differs is parsed again.

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
    /// The summary of a parsed document.
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

/// What identifies a file's content for the caches. The ctime is what makes it sound: an
/// in-place edit may keep the size, and a tool may set the mtime back (`touch -d`, `cp -p`),
/// but every write and every change of the mtime moves the ctime, which no user tool sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    mtime_ns: u128,
    ctime_ns: u128,
    len: u64,
    ino: u64,
}

fn nanos(secs: i64, nsec: i64) -> Option<u128> {
    Some(u128::try_from(secs).ok()? * 1_000_000_000 + u128::try_from(nsec).ok()?)
}

impl FileKey {
    /// The key of a regular file (never follows a symlink).
    pub fn of(path: &Path) -> Option<FileKey> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(FileKey {
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec())?,
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec())?,
            len: meta.len(),
            ino: meta.ino(),
        })
    }

    /// The key of `name` in the open folder `dir` (never follows a symlink). Relative to the
    /// folder's descriptor, so checking 10 000 queued files does not walk their full paths
    /// through the kernel 10 000 times.
    pub fn of_at(dir: &std::fs::File, name: &str) -> Option<FileKey> {
        use rustix::fs::{statat, AtFlags, FileType};
        let stat = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return None;
        }
        Some(FileKey {
            mtime_ns: nanos(stat.st_mtime, stat.st_mtime_nsec as i64)?,
            ctime_ns: nanos(stat.st_ctime, stat.st_ctime_nsec as i64)?,
            len: u64::try_from(stat.st_size).ok()?,
            ino: stat.st_ino,
        })
    }

    /// When the file was last modified.
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.mtime_ns.min(u64::MAX as u128) as u64)
    }
}

/// The index file of a folder.
pub fn index_path(state_dir: &Path, kind: WorkItemKind, folder_name: &str) -> PathBuf {
    state_dir
        .join("cache")
        .join(format!("{}-{folder_name}.tsv", kind.as_str()))
}

/// First line of an index file; a file without it is ignored.
const INDEX_HEADER: &str = "millrace queue index v2";

/// Escape a title for the tab-separated index (titles are single-line, but be safe).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn opt(field: &str) -> Option<String> {
    (!field.is_empty()).then(|| field.to_string())
}

/// One index line: name, stamp, then the summary. Ids never contain tabs or commas (the id
/// rule forbids them), so only the title needs escaping.
fn parse_line(line: &str) -> Option<(String, super::CacheEntry)> {
    let mut fields = line.split('\t');
    let mut f = [""; 14];
    for slot in &mut f {
        *slot = fields.next()?;
    }
    if fields.next().is_some() {
        return None;
    }
    let key = FileKey {
        mtime_ns: f[1].parse().ok()?,
        ctime_ns: f[2].parse().ok()?,
        len: f[3].parse().ok()?,
        ino: f[4].parse().ok()?,
    };
    let info = ItemInfo {
        kind: f[5].parse().ok()?,
        id: f[6].to_string(),
        order_micros: f[7].parse().ok()?,
        depends_on: f[8]
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        root_spec_id: opt(f[9]),
        root_idea_id: opt(f[10]),
        effective_root_spec: opt(f[11]),
        spec_id: opt(f[12]),
        title: unescape(f[13]),
    };
    Some((f[0].to_string(), (key, Ok(std::sync::Arc::new(info)))))
}

/// Read a folder's index (file name → stamp and summary); anything unreadable is empty.
pub fn load_index(path: &Path) -> HashMap<String, super::CacheEntry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(INDEX_HEADER) {
        return HashMap::new();
    }
    let mut map = HashMap::with_capacity(text.len() / 80);
    map.extend(lines.filter_map(parse_line));
    map
}

/// Write a folder's index (a cache: atomic, not fsynced).
pub fn save_index<'a>(
    path: &Path,
    rows: impl Iterator<Item = (&'a str, &'a FileKey, &'a ItemInfo)>,
) {
    let mut rows: Vec<(&str, &FileKey, &ItemInfo)> = rows
        .filter(|(name, _, _)| !name.contains(['\t', '\n']))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::with_capacity(rows.len() * 160 + 32);
    text.push_str(INDEX_HEADER);
    text.push('\n');
    for (name, key, info) in rows {
        let fields = [
            name.to_string(),
            key.mtime_ns.to_string(),
            key.ctime_ns.to_string(),
            key.len.to_string(),
            key.ino.to_string(),
            info.kind.as_str().to_string(),
            info.id.clone(),
            info.order_micros.to_string(),
            info.depends_on.join(","),
            info.root_spec_id.clone().unwrap_or_default(),
            info.root_idea_id.clone().unwrap_or_default(),
            info.effective_root_spec.clone().unwrap_or_default(),
            info.spec_id.clone().unwrap_or_default(),
            escape(&info.title),
        ];
        text.push_str(&fields.join("\t"));
        text.push('\n');
    }
    if let Some(dir) = path.parent() {
        if crate::workspace::atomic::create_dir_all(dir).is_err() {
            return;
        }
    }
    if let Err(e) = crate::workspace::atomic::write_artifact(path, text.as_bytes()) {
        tracing::debug!(%e, "queue index not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rows_round_trip_including_odd_titles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/task-queue.tsv");
        let key = FileKey {
            mtime_ns: 1_795_000_000_123_456_789,
            ctime_ns: 1_795_000_001_000_000_000,
            len: 42,
            ino: 7,
        };
        let info = ItemInfo {
            kind: WorkItemKind::Task,
            id: "t-1".into(),
            title: "tabs\there, a backslash \\ and\na newline".into(),
            order_micros: -5,
            depends_on: vec!["t-0".into(), "t-00".into()],
            root_spec_id: Some("s-1".into()),
            root_idea_id: None,
            effective_root_spec: Some("s-1".into()),
            spec_id: Some("s-1".into()),
        };
        save_index(&path, std::iter::once(("t-1.md", &key, &info)));
        let loaded = load_index(&path);
        let (loaded_key, loaded_info) = &loaded["t-1.md"];
        assert_eq!(*loaded_key, key);
        assert_eq!(loaded_info.as_ref().unwrap().as_ref(), &info);
        std::fs::write(&path, "not an index\n").unwrap();
        assert!(load_index(&path).is_empty());
    }
}
