//! The queue store: the only code that moves work items between queue folders.
//!
//! Each transition (claim, complete, block, requeue, quarantine) is one no-replace rename
//! through [`crate::workspace::atomic::move_file`], so an item is always in exactly one
//! folder. Documents are parsed lazily and cached by (mtime, size), so a claim does not
//! re-parse an unchanged folder.

mod count;
mod info;
mod scan;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::documents::{self, DocError, Document};
use crate::model::{Plane, WorkItemKind};
use crate::state::event::EventKind;
use crate::state::events::EventLog;
use crate::workspace::atomic::{self, IoError};
use crate::workspace::stamp::DirStamp;
use crate::workspace::{Folder, Settle, Workspace};

pub use info::{FileKey, ItemInfo};
pub use scan::is_md_file;

/// A queue operation that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{kind} {id} already exists (in {folder})")]
    Duplicate {
        kind: WorkItemKind,
        id: String,
        folder: String,
    },
    #[error("{kind} {id} is not active")]
    NotActive { kind: WorkItemKind, id: String },
    #[error("{kind} {id} already exists at destination {}", path.display())]
    AlreadyAtDestination {
        kind: WorkItemKind,
        id: String,
        path: PathBuf,
    },
    #[error("requeue reason is required")]
    EmptyReason,
    #[error(transparent)]
    Document(#[from] DocError),
    #[error(transparent)]
    Io(#[from] IoError),
}

/// A claimed item, already moved into its `active/` folder.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub kind: WorkItemKind,
    pub id: String,
    pub path: PathBuf,
    pub document: Arc<Document>,
}

/// One row of `queue ls`.
#[derive(Debug, Clone, Serialize)]
pub struct ItemSummary {
    pub kind: WorkItemKind,
    pub id: String,
    pub folder: String,
    pub title: Option<String>,
    pub path: String,
    pub root_spec_id: Option<String>,
    pub root_idea_id: Option<String>,
    pub depends_on: Vec<String>,
    pub error: Option<String>,
}

/// The file keys of `names` in `dir`, in order (`None`: gone or not a regular file). Files
/// the change hint vouches for (cached and not named by a file event) are not looked at.
/// The checks run relative to the folder's descriptor, on every core: with 10 000 queued
/// files the per-file check is most of a cold claim.
fn file_keys(
    dir: &Path,
    names: &[String],
    skip: Option<(&HashSet<PathBuf>, &HashMap<String, CacheEntry>)>,
) -> Vec<Option<FileKey>> {
    let Ok(dir_file) = std::fs::File::open(dir) else {
        return names.iter().map(|n| FileKey::of(&dir.join(n))).collect();
    };
    let key_of = |name: &String| {
        let vouched = skip.is_some_and(|(hint, cache)| {
            cache.contains_key(name) && !hint.contains(&dir.join(name))
        });
        if vouched {
            None
        } else {
            FileKey::of_at(&dir_file, name)
        }
    };
    // Asked once per process: each answer reads the cgroup files.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads =
        *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    if names.len() < 2048 || threads < 2 {
        return names.iter().map(key_of).collect();
    }
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = names
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(key_of).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().unwrap_or_default())
            .collect()
    })
}

/// A document's summary (or why it did not parse), cached with the file state it came from.
pub(crate) type CacheEntry = (FileKey, Result<Arc<ItemInfo>, DocError>);

/// The queue store of one workspace.
pub struct QueueStore {
    ws: Workspace,
    events: EventLog,
    /// Per folder, per file name (short keys hash fast; a folder may hold 50 000 files).
    cache: RefCell<HashMap<PathBuf, HashMap<String, CacheEntry>>>,
    /// Whether this store may write the per-folder index (never for read-only commands).
    write_index: bool,
    /// Files known to have changed since the cache was last checked, when file events can be
    /// trusted; `None` checks every file's stamp.
    hint: RefCell<Option<HashSet<PathBuf>>>,
    /// Folders whose index on disk is older than the cache (written by [`QueueStore::flush_index`]).
    dirty: RefCell<HashSet<(WorkItemKind, Folder)>>,
    /// Folder listings taken by this process, reused while the folder's stamp holds.
    listings: RefCell<HashMap<PathBuf, Listing>>,
    settle: Settle,
}

/// A folder's `*.md` names and the entries that cannot be taken (see `scan::md_listing`),
/// with the folder's stamp from just before the listing.
#[derive(Clone)]
struct Listing {
    stamp: DirStamp,
    names: Vec<String>,
    refused: Vec<(PathBuf, &'static str)>,
}

/// A listing is reused only if the folder had not changed for this long when it was taken:
/// file times advance in ticks of a few milliseconds, so a later change always moves the
/// folder's stamp then. (Within one process; caches that outlive it wait longer, see
/// `workspace::stamp`.)
const LISTING_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

fn utf8_error(name: &str, e: &std::string::FromUtf8Error) -> DocError {
    DocError {
        file: name.to_string(),
        line: None,
        message: format!(
            "file is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    }
}

/// Parse a file into its summary (`None` if it vanished).
fn parse_file(kind: WorkItemKind, path: &Path) -> Option<Result<Arc<ItemInfo>, DocError>> {
    let name = scan::file_name(path);
    let bytes = std::fs::read(path).ok()?;
    Some(match String::from_utf8(bytes) {
        Ok(text) => documents::parse(kind, &name, &text).map(|d| Arc::new(ItemInfo::of(&d))),
        Err(e) => Err(utf8_error(&name, &e)),
    })
}

/// A document found in a folder scan.
pub(crate) struct Entry {
    pub path: PathBuf,
    pub stem: String,
    pub parsed: Result<Arc<ItemInfo>, DocError>,
}

impl QueueStore {
    /// A store that never writes its parse index (read-only commands use this).
    pub fn new(ws: &Workspace) -> QueueStore {
        QueueStore {
            ws: ws.clone(),
            events: EventLog::new(ws.events_path()),
            cache: RefCell::new(HashMap::new()),
            write_index: false,
            dirty: RefCell::new(HashSet::new()),
            listings: RefCell::new(HashMap::new()),
            hint: RefCell::new(None),
            settle: Settle::new(std::time::Duration::from_millis(200)),
        }
    }

    /// Keep the per-folder parse index on disk, so the next process does not re-parse
    /// unchanged documents (the daemon and mutating commands; never read-only ones).
    pub fn with_index(mut self) -> QueueStore {
        self.write_index = true;
        self
    }

    /// How long a file that does not parse yet may still be being written by hand.
    pub fn with_settle(mut self, settle: std::time::Duration) -> QueueStore {
        self.set_settle(settle);
        self
    }

    /// Change the settle window (a config reload).
    pub fn set_settle(&mut self, settle: std::time::Duration) {
        self.settle = Settle::new(settle);
    }

    /// The settle window shared by every folder this process watches (queue, inbox,
    /// mailbox), which remembers when the youngest unsettled file settles.
    pub fn settle(&self) -> &Settle {
        &self.settle
    }

    fn young(&self, path: &Path) -> bool {
        self.settle.young(path)
    }

    /// The workspace the store works in.
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// Folder name as shown to people, e.g. `tasks/queue`.
    pub fn folder_label(&self, kind: WorkItemKind, folder: Folder) -> String {
        self.ws
            .rel(&self.ws.folder(kind, folder))
            .trim_start_matches("millrace-agents/")
            .to_string()
    }

    /// The folder of `kind` holding `<id>.md`, if any.
    pub fn locate(&self, kind: WorkItemKind, id: &str) -> Option<(Folder, PathBuf)> {
        Folder::ALL.into_iter().find_map(|folder| {
            let path = self.ws.item_path(kind, folder, id);
            path.is_file().then_some((folder, path))
        })
    }

    /// Queue a document the runtime or an import built: canonical rendering, atomic create.
    pub fn enqueue(&self, doc: &Document) -> Result<PathBuf, QueueError> {
        doc.check_round_trip(&format!("{}.md", doc.id()))?;
        self.enqueue_text(doc.kind(), doc.id(), &doc.render())
    }

    /// Queue Markdown text as given (already validated), keeping every byte the author wrote.
    pub fn enqueue_text(
        &self,
        kind: WorkItemKind,
        id: &str,
        text: &str,
    ) -> Result<PathBuf, QueueError> {
        if let Some((folder, _)) = self.locate(kind, id) {
            return Err(QueueError::Duplicate {
                kind,
                id: id.to_string(),
                folder: self.folder_label(kind, folder),
            });
        }
        let dest = self.ws.item_path(kind, Folder::Queue, id);
        match atomic::create_atomic(&dest, text.as_bytes()) {
            Ok(()) => Ok(dest),
            Err(IoError::AlreadyExists { .. }) => Err(QueueError::Duplicate {
                kind,
                id: id.to_string(),
                folder: self.folder_label(kind, Folder::Queue),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Number of `*.md` regular files in a folder.
    pub fn count(&self, kind: WorkItemKind, folder: Folder) -> u64 {
        let dir = self.ws.folder(kind, folder);
        if folder != Folder::Done {
            return self.listing(&dir).names.len() as u64;
        }
        let cache = self.ws.cache_path(&format!(
            "{}-{}.count",
            kind.as_str(),
            folder.dir_name(kind)
        ));
        count::cached(&dir, &cache) as u64
    }

    /// (execution, planning) queue depths.
    pub fn depths(&self) -> (u64, u64) {
        (
            self.count(WorkItemKind::Task, Folder::Queue),
            self.count(WorkItemKind::Spec, Folder::Queue)
                + self.count(WorkItemKind::Incident, Folder::Queue),
        )
    }

    /// Ids of the items in `active/` for a plane (kind, id).
    pub fn active_items(&self, plane: Plane) -> Vec<(WorkItemKind, String)> {
        let kinds: &[WorkItemKind] = match plane {
            Plane::Execution => &[WorkItemKind::Task],
            Plane::Planning => &[WorkItemKind::Spec, WorkItemKind::Incident],
        };
        let mut out = Vec::new();
        for kind in kinds {
            for path in scan::md_files(&self.ws.folder(*kind, Folder::Active)) {
                out.push((*kind, scan::stem(&path)));
            }
        }
        out
    }

    /// Parse a folder's documents (cached by file stamp, and across processes by the
    /// folder's index).
    pub(crate) fn entries(&self, kind: WorkItemKind, folder: Folder) -> Vec<Entry> {
        let names = self.listing(&self.ws.folder(kind, folder)).names;
        self.entries_of(kind, folder, names)
    }

    /// The ids of the items in a folder, from its listing alone (no document is read).
    pub fn ids_in(&self, kind: WorkItemKind, folder: Folder) -> Vec<String> {
        let (names, _) = scan::md_listing(&self.ws.folder(kind, folder));
        names
            .into_iter()
            .filter_map(|n| n.strip_suffix(".md").map(str::to_string))
            .collect()
    }

    /// The `*.md` names of a folder: the listing this process took before when the folder's
    /// stamp has not moved since (a claim looks at the queue folder several times), else a
    /// new one.
    fn listing(&self, dir: &Path) -> Listing {
        let stamp = DirStamp::of(dir);
        if let Some(stamp) = stamp {
            if let Some(known) = self.listings.borrow().get(dir) {
                if known.stamp == stamp {
                    return known.clone();
                }
            }
        }
        let (names, refused) = scan::md_listing(dir);
        let listing = Listing {
            stamp: stamp.unwrap_or(DirStamp {
                ino: 0,
                mtime_ns: 0,
            }),
            names,
            refused,
        };
        let settled = stamp.is_some_and(|s| s.older_than(LISTING_SETTLE));
        if settled && DirStamp::of(dir) == stamp {
            self.listings
                .borrow_mut()
                .insert(dir.to_path_buf(), listing.clone());
        }
        listing
    }

    /// The documents named `names` in a folder (one listing), cached by file stamp.
    fn entries_of(&self, kind: WorkItemKind, folder: Folder, names: Vec<String>) -> Vec<Entry> {
        let dir = self.ws.folder(kind, folder);
        let index = info::index_path(&self.ws.state_dir(), kind, folder.dir_name(kind));
        let mut caches = self.cache.borrow_mut();
        let cache = caches
            .entry(dir.clone())
            .or_insert_with(|| info::load_index(&index));
        let mut changed = false;
        let hint = self.hint.borrow();
        let mut out = Vec::with_capacity(names.len());
        let keys = file_keys(&dir, &names, hint.as_ref().map(|h| (h, &*cache)));
        for (name, key) in names.iter().zip(keys) {
            let path = dir.join(name);
            let stem = name.strip_suffix(".md").unwrap_or(name).to_string();
            if let (Some(hint), Some((_, parsed))) = (hint.as_ref(), cache.get(name)) {
                if !hint.contains(&path) {
                    out.push(Entry {
                        stem,
                        parsed: parsed.clone(),
                        path,
                    });
                    continue;
                }
            }
            let Some(key) = key else {
                continue;
            };
            let parsed = match cache.get(name) {
                Some((cached_key, parsed)) if *cached_key == key => parsed.clone(),
                _ => {
                    let Some(parsed) = parse_file(kind, &path) else {
                        continue;
                    };
                    cache.insert(name.clone(), (key, parsed.clone()));
                    changed = true;
                    parsed
                }
            };
            out.push(Entry { stem, path, parsed });
        }
        // Forget files that are gone; every listed file is cached now, so only a larger
        // cache can hold stale names (no set is built in the common case).
        if cache.len() > names.len() {
            let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
            cache.retain(|name, _| listed.contains(name.as_str()));
            changed = true;
        }
        if changed && self.write_index {
            self.dirty.borrow_mut().insert((kind, folder));
        }
        out
    }

    /// Tell the store which files changed since its last look (from file events), so an
    /// unchanged cached file is not stat-ed again; `None` (the default) checks every file.
    /// New and vanished names are always found from the folder listing.
    pub fn set_change_hint(&self, hint: Option<HashSet<PathBuf>>) {
        *self.hint.borrow_mut() = hint;
    }

    /// Write the index of every folder whose cache changed. Called when the engine is idle
    /// and at shutdown, not per change: rewriting a 10 000-row index on every claim would cost
    /// more than the parses it saves.
    pub fn flush_index(&self) {
        let dirty: Vec<(WorkItemKind, Folder)> = self.dirty.borrow_mut().drain().collect();
        let caches = self.cache.borrow();
        for (kind, folder) in dirty {
            let dir = self.ws.folder(kind, folder);
            let Some(cache) = caches.get(&dir) else {
                continue;
            };
            let index = info::index_path(&self.ws.state_dir(), kind, folder.dir_name(kind));
            let rows = cache.iter().filter_map(|(name, (key, parsed))| {
                parsed
                    .as_ref()
                    .ok()
                    .map(|i| (name.as_str(), key, i.as_ref()))
            });
            info::save_index(&index, rows);
        }
    }

    /// Read and parse one document in full (`None` if it vanished).
    pub fn load(&self, kind: WorkItemKind, path: &Path) -> Option<Result<Document, DocError>> {
        let name = scan::file_name(path);
        let bytes = std::fs::read(path).ok()?;
        Some(match String::from_utf8(bytes) {
            Ok(text) => documents::parse(kind, &name, &text),
            Err(e) => Err(utf8_error(&name, &e)),
        })
    }

    /// Move a bad file to `quarantine/` with a `.error.yaml` reason beside it, and log it.
    pub fn quarantine(&self, path: &Path, error: &str, line: Option<usize>) -> Result<(), IoError> {
        let qdir = self.ws.quarantine_dir();
        atomic::create_dir_all(&qdir)?;
        let name = atomic::archive_name(&scan::file_name(path));
        let mut dest = qdir.join(&name);
        let mut n = 1;
        while dest.symlink_metadata().is_ok()
            || qdir
                .join(format!("{}.error.yaml", scan::file_name(&dest)))
                .exists()
        {
            dest = qdir.join(format!("{name}.{n}"));
            n += 1;
        }
        let reason = QuarantineReason {
            source: self.ws.rel(path),
            quarantined_as: self.ws.rel(&dest),
            line,
            error: error.to_string(),
            quarantined_at: crate::time::now_string(),
        };
        // The reason first: a file never sits in quarantine without it, even when the disk
        // fills up between the two steps.
        let reason_path = qdir.join(format!("{}.error.yaml", scan::file_name(&dest)));
        atomic::write_atomic(&reason_path, crate::yaml::to_string(&reason).as_bytes())?;
        if let Err(err) = atomic::move_file(path, &dest) {
            let _ = std::fs::remove_file(&reason_path);
            return match err {
                IoError::NotFound { .. } => Ok(()),
                e => Err(e),
            };
        }
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            if let Some(cache) = self.cache.borrow_mut().get_mut(dir) {
                cache.remove(name.to_string_lossy().as_ref());
            }
        }
        tracing::warn!(source = %reason.source, %error, "quarantined a bad file");
        self.events.emit(
            EventKind::WorkItemQuarantined,
            json!({"source": reason.source, "destination": reason.quarantined_as, "error": error}),
        )
    }

    /// Valid, correctly named candidates of a waiting folder; bad files are quarantined.
    fn candidates(&self, kind: WorkItemKind) -> Result<Vec<Arc<ItemInfo>>, QueueError> {
        let mut out = Vec::new();
        let Listing {
            names,
            refused: links,
            ..
        } = self.listing(&self.ws.folder(kind, Folder::Queue));
        for (path, msg) in links {
            self.quarantine(&path, msg, None)?;
        }
        for entry in self.entries_of(kind, Folder::Queue, names) {
            match &entry.parsed {
                Err(_) if self.young(&entry.path) => {}
                Err(err) => self.quarantine(&entry.path, &err.to_string(), err.line)?,
                Ok(doc) if doc.id != entry.stem => {
                    let field = match kind {
                        WorkItemKind::Task => "task_id",
                        WorkItemKind::Spec => "spec_id",
                        WorkItemKind::Incident => "incident_id",
                    };
                    let msg = format!(
                        "filename stem does not match {field}: expected {:?}, found {:?}",
                        doc.id, entry.stem
                    );
                    self.quarantine(&entry.path, &msg, None)?;
                }
                Ok(doc) => out.push(doc.clone()),
            }
        }
        out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        Ok(out)
    }

    /// Whether a waiting candidate's id is free; a duplicate of an item in `active/`,
    /// `done/` or `blocked/` is quarantined. Checked only for the candidates a claim
    /// actually considers, so a claim costs a few stats, not three per queued item.
    fn unique_or_quarantine(&self, doc: &ItemInfo) -> Result<bool, QueueError> {
        let kind = doc.kind;
        let elsewhere = [Folder::Active, Folder::Done, Folder::Blocked]
            .into_iter()
            .find(|f| self.ws.item_path(kind, *f, &doc.id).exists());
        let Some(folder) = elsewhere else {
            return Ok(true);
        };
        let msg = format!(
            "{kind} {} already exists in {}; ids must be unique",
            doc.id,
            self.folder_label(kind, folder)
        );
        let path = self.ws.item_path(kind, Folder::Queue, &doc.id);
        self.quarantine(&path, &msg, None)?;
        Ok(false)
    }

    /// Whether task `id` is done (`tasks/done/<id>.md` is a regular file).
    fn task_done(&self, id: &str) -> bool {
        !id.contains('/')
            && !id.starts_with('.')
            && scan::is_md_file(&self.ws.item_path(WorkItemKind::Task, Folder::Done, id))
    }

    /// Parse the candidate in full, then move it to `active/`. `None` when it vanished or
    /// turned out bad (it is then quarantined): the caller rescans.
    fn try_claim(&self, info: &ItemInfo) -> Result<Option<Claimed>, QueueError> {
        let kind = info.kind;
        let from = self.ws.item_path(kind, Folder::Queue, &info.id);
        let document = match self.load(kind, &from) {
            None => return Ok(None),
            Some(Ok(doc)) if doc.id() == info.id => Arc::new(doc),
            Some(Ok(doc)) => {
                let msg = format!("file changed its id to {} while queued", doc.id());
                self.quarantine(&from, &msg, None)?;
                return Ok(None);
            }
            Some(Err(err)) => {
                self.quarantine(&from, &err.to_string(), err.line)?;
                return Ok(None);
            }
        };
        crate::workspace::failpoint::hit("claim.before_move")
            .map_err(|e| IoError::path("claim", "", e))?;
        let to = self.ws.item_path(kind, Folder::Active, &info.id);
        match atomic::move_file(&from, &to) {
            Ok(()) => {
                crate::workspace::failpoint::hit("claim.after_move")
                    .map_err(|e| IoError::path("claim", "", e))?;
                Ok(Some(Claimed {
                    kind,
                    id: info.id.clone(),
                    path: to,
                    document,
                }))
            }
            Err(IoError::NotFound { .. }) => Ok(None),
            Err(IoError::AlreadyExists { path }) => Err(QueueError::AlreadyAtDestination {
                kind,
                id: info.id.clone(),
                path,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Claim the next planning item: the oldest incident, else the oldest spec.
    /// Returns `None` when a planning item is already active or nothing waits.
    pub fn claim_planning(&self) -> Result<Option<Claimed>, QueueError> {
        if !self.active_items(Plane::Planning).is_empty() {
            return Ok(None);
        }
        for kind in [WorkItemKind::Incident, WorkItemKind::Spec] {
            'rescan: loop {
                for doc in self.candidates(kind)? {
                    if !self.unique_or_quarantine(&doc)? {
                        continue;
                    }
                    match self.try_claim(&doc)? {
                        Some(claimed) => return Ok(Some(claimed)),
                        // Taken away under us: look at the folder again.
                        None => continue 'rescan,
                    }
                }
                break;
            }
        }
        Ok(None)
    }

    /// Claim the oldest task whose dependencies are all done.
    pub fn claim_execution(&self) -> Result<Option<Claimed>, QueueError> {
        self.claim_execution_within(1)
    }

    /// [`QueueStore::claim_execution`] while fewer than `lanes` tasks are active. With lanes,
    /// a task is done only once its branch has landed, so "dependencies done" means
    /// "dependencies integrated".
    pub fn claim_execution_within(&self, lanes: usize) -> Result<Option<Claimed>, QueueError> {
        if self.active_items(Plane::Execution).len() >= lanes {
            return Ok(None);
        }
        'rescan: loop {
            // Dependencies are looked up per candidate considered, not by listing `done/`
            // (which grows without bound).
            // Memoized: many waiting tasks often share one unfinished dependency.
            let mut done: HashMap<String, bool> = HashMap::new();
            for doc in self.candidates(WorkItemKind::Task)? {
                let ready = doc.depends_on.iter().all(|dep| {
                    *done
                        .entry(dep.clone())
                        .or_insert_with(|| self.task_done(dep))
                });
                if !ready {
                    continue;
                }
                if !self.unique_or_quarantine(&doc)? {
                    continue;
                }
                match self.try_claim(&doc)? {
                    Some(claimed) => return Ok(Some(claimed)),
                    None => continue 'rescan,
                }
            }
            return Ok(None);
        }
    }

    fn transition(
        &self,
        kind: WorkItemKind,
        id: &str,
        from: Folder,
        to: Folder,
    ) -> Result<PathBuf, QueueError> {
        let src = self.ws.item_path(kind, from, id);
        let dest = self.ws.item_path(kind, to, id);
        match atomic::move_file(&src, &dest) {
            Ok(()) => Ok(dest),
            Err(IoError::NotFound { .. }) => Err(QueueError::NotActive {
                kind,
                id: id.to_string(),
            }),
            Err(IoError::AlreadyExists { path }) => Err(QueueError::AlreadyAtDestination {
                kind,
                id: id.to_string(),
                path,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// `active/` → `done/` (`resolved/` for incidents).
    pub fn complete(&self, kind: WorkItemKind, id: &str) -> Result<PathBuf, QueueError> {
        let dest = self.transition(kind, id, Folder::Active, Folder::Done)?;
        crate::workspace::failpoint::transition("complete.after_move")?;
        Ok(dest)
    }

    /// `active/` → `blocked/`.
    pub fn block(&self, kind: WorkItemKind, id: &str) -> Result<PathBuf, QueueError> {
        let dest = self.transition(kind, id, Folder::Active, Folder::Blocked)?;
        crate::workspace::failpoint::transition("block.after_move")?;
        Ok(dest)
    }

    /// Add a dated line to the `## Runtime History` of the item at `path` (a file that is
    /// gone by now is left alone: the line only informs a reader).
    pub fn append_history(&self, path: &Path, line: &str) -> Result<(), IoError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let text = documents::with_runtime_history(&text, &crate::time::now_string(), line);
        atomic::write_atomic(path, text.as_bytes())
    }

    /// `active/` → the waiting folder, with the reason appended to `<id>.requeue.jsonl`.
    pub fn requeue(
        &self,
        kind: WorkItemKind,
        id: &str,
        reason: &str,
    ) -> Result<PathBuf, QueueError> {
        self.requeue_from(kind, id, Folder::Active, reason)
    }

    /// `from` (`active/` or `blocked/`) → the queue folder, with the reason appended to the
    /// item's requeue log.
    pub fn requeue_from(
        &self,
        kind: WorkItemKind,
        id: &str,
        from: Folder,
        reason: &str,
    ) -> Result<PathBuf, QueueError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(QueueError::EmptyReason);
        }
        let dest = self.transition(kind, id, from, Folder::Queue)?;
        crate::workspace::failpoint::transition("requeue.after_move")?;
        let log = self
            .ws
            .folder(kind, Folder::Queue)
            .join(format!("{id}.requeue.jsonl"));
        let line = json!({"at": crate::time::now_string(), "kind": kind, "reason": reason});
        atomic::append_line(&log, &line.to_string())?;
        Ok(dest)
    }

    /// Every item of the open folders (queue, active, blocked): `queue ls` by default. The
    /// finished folders, which only grow, are not read.
    pub fn list_open(&self) -> Vec<ItemSummary> {
        let mut out = Vec::new();
        for kind in WorkItemKind::ALL {
            for folder in Folder::ALL.into_iter().filter(|f| *f != Folder::Done) {
                for entry in self.entries(kind, folder) {
                    out.push(self.summary(kind, folder, &entry));
                }
            }
        }
        out
    }

    /// The file names of the finished items (done/, resolved/), by kind then name.
    fn done_names(&self) -> Vec<(WorkItemKind, String)> {
        let mut out = Vec::new();
        for kind in WorkItemKind::ALL {
            let (mut names, _) = scan::md_listing(&self.ws.folder(kind, Folder::Done));
            names.sort();
            out.extend(names.into_iter().map(|n| (kind, n)));
        }
        out
    }

    /// How many items are finished (the folders' cached counts; no document is read).
    pub fn done_count(&self) -> usize {
        WorkItemKind::ALL
            .into_iter()
            .map(|kind| self.count(kind, Folder::Done) as usize)
            .sum()
    }

    /// One page of the finished items, by kind then id: only the page's documents are read.
    pub fn list_done(&self, offset: usize, limit: usize) -> Vec<ItemSummary> {
        let page: Vec<(WorkItemKind, String)> = self
            .done_names()
            .into_iter()
            .skip(offset)
            .take(limit)
            .collect();
        let mut out = Vec::with_capacity(page.len());
        for kind in WorkItemKind::ALL {
            let names: Vec<String> = page
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n.clone())
                .collect();
            for entry in self.entries_of(kind, Folder::Done, names) {
                out.push(self.summary(kind, Folder::Done, &entry));
            }
        }
        out
    }

    fn summary(&self, kind: WorkItemKind, folder: Folder, entry: &Entry) -> ItemSummary {
        let (title, root_spec_id, root_idea_id, depends_on, error) = match &entry.parsed {
            Ok(doc) => (
                Some(doc.title.clone()),
                doc.root_spec_id.clone(),
                doc.root_idea_id.clone(),
                doc.depends_on.clone(),
                None,
            ),
            Err(e) => (None, None, None, Vec::new(), Some(e.to_string())),
        };
        ItemSummary {
            kind,
            id: entry.stem.clone(),
            folder: self.folder_label(kind, folder),
            title,
            path: self.ws.rel(&entry.path),
            root_spec_id,
            root_idea_id,
            depends_on,
            error,
        }
    }

    /// Find an item by id in any folder of any kind.
    pub fn find(&self, id: &str) -> Vec<(ItemSummary, Option<Arc<ItemInfo>>)> {
        let mut out = Vec::new();
        for kind in WorkItemKind::ALL {
            if let Some((folder, _)) = self.locate(kind, id) {
                for entry in self.entries(kind, folder) {
                    if entry.stem == id {
                        let doc = entry.parsed.as_ref().ok().cloned();
                        out.push((self.summary(kind, folder, &entry), doc));
                    }
                }
            }
        }
        out
    }

    /// Open lineage work for root spec `root`: valid items in waiting, active or blocked
    /// folders whose effective root spec is `root` (spec 03 §6).
    pub fn open_lineage_work(&self, root: &str) -> Vec<(WorkItemKind, String, Folder)> {
        let mut out = Vec::new();
        for kind in WorkItemKind::ALL {
            for folder in [Folder::Queue, Folder::Active, Folder::Blocked] {
                for entry in self.entries(kind, folder) {
                    if let Ok(doc) = &entry.parsed {
                        if doc.effective_root_spec.as_deref() == Some(root)
                            && !out.iter().any(|(k, i, _)| *k == kind && *i == entry.stem)
                        {
                            out.push((kind, entry.stem.clone(), folder));
                        }
                    }
                }
            }
        }
        out
    }
}

#[derive(Serialize)]
struct QuarantineReason {
    source: String,
    quarantined_as: String,
    line: Option<usize>,
    error: String,
    quarantined_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, created: &str) -> String {
        format!(
            "# T {id}\n\nTask-ID: {id}\nTitle: T {id}\nCreated-At: {created}\nCreated-By: t\n\nTarget-Paths:\n- a\n\nAcceptance:\n- a\n\nRequired-Checks:\n- a\n\nReferences:\n- a\n\nRisk:\n- a\n"
        )
    }

    #[test]
    fn the_index_carries_summaries_to_the_next_process_and_notices_edits() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let queue_dir = ws.folder(WorkItemKind::Task, Folder::Queue);
        std::fs::write(queue_dir.join("t1.md"), task("t1", "2026-01-02T00:00:00Z")).unwrap();
        std::fs::write(queue_dir.join("t2.md"), task("t2", "2026-01-01T00:00:00Z")).unwrap();
        let first = QueueStore::new(&ws).with_index();
        assert_eq!(first.entries(WorkItemKind::Task, Folder::Queue).len(), 2);
        first.flush_index();
        let index = info::index_path(&ws.state_dir(), WorkItemKind::Task, "queue");
        assert!(index.is_file());
        assert_eq!(info::load_index(&index).len(), 2);

        let read_only = QueueStore::new(&ws);
        std::fs::write(queue_dir.join("t1.md"), task("t1", "2025-01-01T00:00:00Z")).unwrap();
        let claimed = read_only.claim_execution().unwrap().unwrap();
        assert_eq!(
            claimed.id, "t1",
            "an edited file is parsed again, not taken from the index"
        );
    }

    #[test]
    fn a_reused_listing_still_sees_files_added_later() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let queue_dir = ws.folder(WorkItemKind::Task, Folder::Queue);
        std::fs::write(queue_dir.join("t1.md"), task("t1", "2026-01-02T00:00:00Z")).unwrap();
        let store = QueueStore::new(&ws);
        // Just changed: listed, not kept.
        assert_eq!(store.count(WorkItemKind::Task, Folder::Queue), 1);
        assert!(store.listings.borrow().is_empty());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::open(&queue_dir)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(store.count(WorkItemKind::Task, Folder::Queue), 1);
        assert_eq!(
            store.listings.borrow().len(),
            1,
            "a still folder's listing is kept"
        );
        std::fs::write(queue_dir.join("t2.md"), task("t2", "2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(store.count(WorkItemKind::Task, Folder::Queue), 2);
        let claimed = store.claim_execution().unwrap().unwrap();
        assert_eq!(claimed.id, "t2");
    }

    #[test]
    fn an_in_place_edit_that_keeps_the_size_and_the_mtime_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let queue_dir = ws.folder(WorkItemKind::Task, Folder::Queue);
        let path = queue_dir.join("t1.md");
        std::fs::write(&path, task("t1", "2026-01-02T00:00:00Z")).unwrap();
        std::fs::write(queue_dir.join("t2.md"), task("t2", "2026-01-01T00:00:00Z")).unwrap();
        let store = QueueStore::new(&ws).with_index();
        assert_eq!(store.claim_execution().unwrap().unwrap().id, "t2");
        store.flush_index();
        let t2_active = ws.item_path(WorkItemKind::Task, Folder::Active, "t2");
        std::fs::rename(&t2_active, queue_dir.join("t2.md")).unwrap();

        // Same inode, same size, and the mtime set back as a write within the same file-time
        // tick would leave it: only the ctime tells.
        let meta = std::fs::metadata(&path).unwrap();
        std::fs::write(&path, task("t1", "2025-01-01T00:00:00Z")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (after.len(), after.modified().unwrap()),
            (meta.len(), meta.modified().unwrap())
        );
        assert_eq!(
            QueueStore::new(&ws).claim_execution().unwrap().unwrap().id,
            "t1",
            "the edited file is read again, not taken from the index"
        );
    }
}
