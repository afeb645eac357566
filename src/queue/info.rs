//! What the queue keeps of a parsed document, and the per-folder index that lets a new
//! process skip re-parsing unchanged files.
//!
//! A full document is parsed once per file version; the queue keeps only this summary
//! (order, dependencies, lineage, title), which is about a tenth of the memory. The index
//! (`state/cache/<kind>-<folder>.tsv`) maps each file name with its inode, size, mtime and
//! ctime to its summary. It is a cache: written without fsync, ignored when unreadable, and
//! any file whose key differs is parsed again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::documents::{DocError, Document};
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
    mtime_ns: u64,
    ctime_ns: u64,
    len: u64,
    ino: u64,
}

/// A file time in nanoseconds since 1970, as a key: exact from 1970 to 2554, and for times
/// outside (a file dated 1960 by `touch -d`) still the same for the same time.
fn nanos(secs: i64, nsec: i64) -> u64 {
    secs.wrapping_mul(1_000_000_000).wrapping_add(nsec) as u64
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
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
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
            mtime_ns: nanos(stat.st_mtime, stat.st_mtime_nsec as i64),
            ctime_ns: nanos(stat.st_ctime, stat.st_ctime_nsec as i64),
            len: u64::try_from(stat.st_size).ok()?,
            ino: stat.st_ino,
        })
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

/// A folder's cached summaries, sorted by file name. Sorted rather than hashed: it is
/// loaded from an index written in that order and merged with listings sorted the same way,
/// so a cold claim at 10 000 queued neither hashes nor probes a table for every file.
#[derive(Debug, Default)]
pub(crate) struct FolderCache {
    rows: Vec<(Arc<str>, Row)>,
}

impl FolderCache {
    /// A cache of rows sorted by name (sorted here when they are not, the last of equal
    /// names kept).
    pub fn from_rows(mut rows: Vec<(Arc<str>, Row)>) -> FolderCache {
        if !rows.is_sorted_by(|a, b| a.0 < b.0) {
            rows.reverse();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows.dedup_by(|a, b| a.0 == b.0);
        }
        FolderCache { rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The file name of the row at `at`.
    pub fn name(&self, at: usize) -> &str {
        &self.rows[at].0
    }

    /// The file key of the row at `at`.
    pub fn key(&self, at: usize) -> FileKey {
        self.rows[at].1.key
    }

    /// Replace the row at `at` (same name).
    pub fn set(&mut self, at: usize, row: Row) {
        self.rows[at].1 = row;
    }

    /// Remove the rows at these positions (ascending).
    pub fn drop_rows(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        let mut gone = positions.iter().copied().peekable();
        let mut at = 0;
        self.rows.retain(|_| {
            let keep = gone.next_if_eq(&at).is_none();
            at += 1;
            keep
        });
    }

    /// Add rows of names the cache does not hold (a name it holds is replaced). A few go in
    /// where they belong; many are merged with one sort of the whole.
    pub fn add_rows(&mut self, rows: Vec<(Arc<str>, Row)>) {
        const FEW: usize = 16;
        if rows.len() > FEW {
            let mut all = self.take();
            all.extend(rows);
            *self = FolderCache::from_rows(all);
            return;
        }
        for (name, row) in rows {
            match self.find(&name) {
                Ok(at) => self.rows[at].1 = row,
                Err(at) => self.rows.insert(at, (name, row)),
            }
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.rows.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Row> {
        let at = self.find(name).ok()?;
        Some(&mut self.rows[at].1)
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(at) = self.find(name) {
            self.rows.remove(at);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Arc<str>, Row)> {
        self.rows.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (Arc<str>, Row)> {
        self.rows.iter_mut()
    }

    /// Take the rows out, leaving the cache empty (a merge rebuilds it).
    pub fn take(&mut self) -> Vec<(Arc<str>, Row)> {
        std::mem::take(&mut self.rows)
    }
}

/// What the cache knows of one file: the key of the version it read, and the summary.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub key: FileKey,
    summary: Summary,
}

#[derive(Debug, Clone)]
enum Summary {
    /// Read from the file by this process (or why it did not parse).
    Parsed(Result<Arc<ItemInfo>, Box<DocError>>),
    /// A row of the index file, whose id matches its file name: only the order is read when
    /// the index loads, the rest when first asked for. A claim at 10 000 queued needs the
    /// order of every row but the whole summary of one.
    Indexed {
        order_micros: i64,
        text: Arc<String>,
        /// Where the row's line is in `text` (as u32: 10 000 rows fill a hash table, whose
        /// size this keeps down).
        start: u32,
        end: u32,
    },
}

impl Row {
    pub fn parsed(key: FileKey, parsed: Result<Arc<ItemInfo>, DocError>) -> Row {
        Row {
            key,
            summary: Summary::Parsed(parsed.map_err(Box::new)),
        }
    }

    /// The summary (or why the file did not parse); an index row is parsed now, once.
    pub fn info(&mut self) -> Result<Arc<ItemInfo>, DocError> {
        let parsed = match &self.summary {
            Summary::Parsed(parsed) => return parsed.clone().map_err(|e| *e),
            Summary::Indexed {
                text, start, end, ..
            } => {
                let fields = Fields::of(&text[*start as usize..*end as usize])
                    .expect("an index row is kept only when its fields parsed at load");
                Ok(Arc::new(fields.info()))
            }
        };
        self.summary = Summary::Parsed(parsed.clone());
        parsed.map_err(|e| *e)
    }

    /// The claim order of a valid document whose id is `stem` (`None`: the caller looks at
    /// [`Row::info`] to say what is wrong).
    pub fn order_if_named(&self, stem: &str) -> Option<i64> {
        match &self.summary {
            Summary::Indexed { order_micros, .. } => Some(*order_micros),
            Summary::Parsed(Ok(info)) if info.id == stem => Some(info.order_micros),
            Summary::Parsed(_) => None,
        }
    }
}

/// A decimal number of an index line. Up to 19 digits cannot overflow, so they are summed
/// without the checks `str::parse` makes per digit (five numbers on each of 10 000 lines);
/// longer ones go through `str::parse`.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return text.parse().ok();
    }
    text.bytes().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The fields of one index line, borrowed: name, key, then the summary. Ids never contain
/// tabs or commas (the id rule forbids them), so only the title needs escaping.
struct Fields<'a> {
    name: &'a str,
    key: FileKey,
    kind: WorkItemKind,
    id: &'a str,
    order_micros: i64,
    rest: [&'a str; 6],
}

impl<'a> Fields<'a> {
    fn of(line: &'a str) -> Option<Fields<'a>> {
        // One pass over the bytes for the 13 tabs: searching for each tab in turn costs
        // twice as much on short fields, and 10 000 lines load on every cold claim.
        let mut tabs = [0usize; 13];
        let mut found = 0;
        for (at, byte) in line.bytes().enumerate() {
            if byte == b'\t' {
                *tabs.get_mut(found)? = at;
                found += 1;
            }
        }
        if found != tabs.len() {
            return None;
        }
        let mut f = [""; 14];
        let mut start = 0;
        for (slot, end) in f.iter_mut().zip(tabs.into_iter().chain([line.len()])) {
            *slot = &line[start..end];
            start = end + 1;
        }
        Some(Fields {
            name: f[0],
            key: FileKey {
                mtime_ns: number(f[1])?,
                ctime_ns: number(f[2])?,
                len: number(f[3])?,
                ino: number(f[4])?,
            },
            kind: f[5].parse().ok()?,
            id: f[6],
            order_micros: match f[7].strip_prefix('-') {
                Some(digits) => i64::try_from(number(digits)?).ok()?.checked_neg()?,
                None => i64::try_from(number(f[7])?).ok()?,
            },
            rest: [f[8], f[9], f[10], f[11], f[12], f[13]],
        })
    }

    fn info(&self) -> ItemInfo {
        let [depends_on, root_spec_id, root_idea_id, effective_root_spec, spec_id, title] =
            self.rest;
        ItemInfo {
            kind: self.kind,
            id: self.id.to_string(),
            order_micros: self.order_micros,
            depends_on: depends_on
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
            root_spec_id: opt(root_spec_id),
            root_idea_id: opt(root_idea_id),
            effective_root_spec: opt(effective_root_spec),
            spec_id: opt(spec_id),
            title: unescape(title),
        }
    }
}

/// Read a folder's index (file name → key and summary); anything unreadable is empty, and
/// a line that does not parse is left out (its file is read again).
pub(crate) fn load_index(path: &Path) -> FolderCache {
    let Ok(text) = crate::workspace::atomic::read_regular_string(path) else {
        return FolderCache::default();
    };
    let header = INDEX_HEADER.len() + 1;
    if !text.starts_with(INDEX_HEADER) || text.as_bytes().get(header - 1) != Some(&b'\n') {
        return FolderCache::default();
    }
    let offset = header;
    let body_len = text.len() - header;
    let text = Arc::new(text);
    let mut rows = Vec::with_capacity(body_len / 100);
    let mut start = offset;
    for line in text[offset..].split_inclusive('\n') {
        let range = start..start + line.trim_end_matches('\n').len();
        start += line.len();
        let Some(fields) = Fields::of(&text[range.clone()]) else {
            continue;
        };
        let named = fields.name.strip_suffix(".md") == Some(fields.id);
        let span = (u32::try_from(range.start), u32::try_from(range.end));
        let summary = if let (true, (Ok(start), Ok(end))) = (named, span) {
            Summary::Indexed {
                order_micros: fields.order_micros,
                text: text.clone(),
                start,
                end,
            }
        } else {
            Summary::Parsed(Ok(Arc::new(fields.info())))
        };
        rows.push((
            Arc::from(fields.name),
            Row {
                key: fields.key,
                summary,
            },
        ));
    }
    FolderCache::from_rows(rows)
}

/// Write a folder's index (a cache: atomic, not fsynced). Only valid documents are kept;
/// rows not parsed since the index loaded are copied as they were.
pub(crate) fn save_index(path: &Path, cache: &FolderCache) {
    let rows = cache
        .iter()
        .map(|(name, row)| (name.as_ref(), row))
        .filter(|(name, row)| {
            !name.contains(['\t', '\n']) && !matches!(row.summary, Summary::Parsed(Err(_)))
        });
    let mut text = String::with_capacity(cache.len() * 130 + 32);
    text.push_str(INDEX_HEADER);
    text.push('\n');
    for (name, row) in rows {
        match &row.summary {
            Summary::Indexed {
                text: src,
                start,
                end,
                ..
            } => text.push_str(&src[*start as usize..*end as usize]),
            Summary::Parsed(Ok(info)) => {
                let key = &row.key;
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
            }
            Summary::Parsed(Err(_)) => continue,
        }
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
        let cache = FolderCache::from_rows(vec![(
            "t-1.md".into(),
            Row::parsed(key, Ok(Arc::new(info.clone()))),
        )]);
        save_index(&path, &cache);
        let mut loaded = load_index(&path);
        let row = loaded.get_mut("t-1.md").unwrap();
        assert_eq!(row.key, key);
        assert!(
            matches!(row.summary, Summary::Indexed { .. }),
            "parsed when asked"
        );
        assert_eq!(row.info().unwrap().as_ref(), &info);
        // Written again without being parsed: the same bytes.
        let before = std::fs::read(&path).unwrap();
        save_index(&path, &load_index(&path));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::write(&path, "not an index\n").unwrap();
        assert_eq!(load_index(&path).len(), 0);
    }

    #[test]
    fn index_numbers_parse_as_str_parse_does() {
        for text in [
            "0",
            "7",
            "1796376732759753211",
            "18446744073709551615",
            "",
            "1a",
            "99999999999999999999",
        ] {
            assert_eq!(number(text), text.parse::<u64>().ok(), "{text:?}");
        }
        assert_eq!(number("+1"), None, "the index never writes a sign");
    }

    #[test]
    fn an_index_keeps_its_good_rows_and_reads_a_misnamed_one_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task-queue.tsv");
        let row = |name: &str, id: &str| {
            format!("{name}\t1\t2\t3\t4\ttask\t{id}\t5\t\t\t\t\t\tTitle {id}\n")
        };
        let text = format!(
            "{INDEX_HEADER}\n{}{}garbage\tline\n{}",
            row("a.md", "a"),
            row("b.md", "not-b"),
            row("c.md", "c").replace("\t5\t", "\tfive\t"),
        );
        std::fs::write(&path, text).unwrap();
        let mut cache = load_index(&path);
        assert_eq!(
            cache.len(),
            2,
            "the garbage and the unparsable order are left out"
        );
        let a = cache.get_mut("a.md").unwrap();
        assert!(matches!(a.summary, Summary::Indexed { .. }));
        assert_eq!(a.order_if_named("a"), Some(5));
        // A row whose id is not its file's name is parsed whole, so the claim can say so.
        let b = cache.get_mut("b.md").unwrap();
        assert!(matches!(b.summary, Summary::Parsed(Ok(_))));
        assert_eq!(b.order_if_named("b"), None);
        assert_eq!(cache.get_mut("b.md").unwrap().info().unwrap().id, "not-b");

        // Rows out of order (an index edited by hand) are sorted; of two rows for one
        // file, the later one counts.
        let text = format!(
            "{INDEX_HEADER}\n{}{}{}",
            row("b.md", "b"),
            row("a.md", "a"),
            row("b.md", "b").replace("\t5\t", "\t6\t"),
        );
        std::fs::write(&path, text).unwrap();
        let mut cache = load_index(&path);
        let names: Vec<&str> = cache.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["a.md", "b.md"]);
        assert_eq!(cache.get_mut("b.md").unwrap().order_if_named("b"), Some(6));
    }
}
