//! The queue store: the only code that moves work items between queue folders.
//!
//! Each transition (claim, complete, block, requeue, quarantine) is one no-replace rename
//! through [`crate::workspace::atomic::move_file`], so an item is always in exactly one
//! folder. Documents are parsed once per version (a file's inode, size, mtime and ctime)
//! and their summaries cached, in memory and across processes by each folder's index, so a
//! claim does not re-parse an unchanged folder.

mod count;
mod folder;
mod info;
mod scan;

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
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

pub use folder::Prefetch;
use folder::{Listing, Vouch};
use info::FolderCache;
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

/// What sits at an active item's path (see [`QueueStore::active_document`]).
pub enum ActiveDocument {
    /// Nothing: the item moved on (a control command, a re-run after a crash).
    Gone,
    /// The item's document, as its bytes.
    Item(Vec<u8>),
    /// Something that is not the item any more, and what it is.
    Replaced(String),
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

/// The queue store of one workspace.
pub struct QueueStore {
    ws: Workspace,
    events: EventLog,
    /// Per folder, the summaries of its files (see [`FolderCache`]).
    cache: RefCell<HashMap<PathBuf, FolderCache>>,
    /// Whether this store may write the per-folder index (never for read-only commands).
    write_index: bool,
    /// What file events say changed since each folder's last look (see
    /// [`QueueStore::note_file_events`]).
    hint: RefCell<ChangeHint>,
    /// Folders whose index on disk is older than the cache (written by [`QueueStore::flush_index`]).
    dirty: RefCell<HashSet<(WorkItemKind, Folder)>>,
    /// Folder listings taken by this process, reused while the folder's stamp holds.
    listings: RefCell<HashMap<PathBuf, Listing>>,
    /// A first look at a waiting folder under way on another thread (see [`Prefetch`]).
    prefetch: RefCell<Option<Prefetch>>,
    /// The listing of an adopted prefetch, used once while the folder's stamp holds.
    prefetched: RefCell<Option<(PathBuf, Listing)>>,
    /// The folder whose prefetched listing was just handed out, with its stamp: its cache was
    /// checked against exactly those names, so the next refresh, while the folder is
    /// unchanged, has nothing to look at.
    fresh: RefCell<Option<(PathBuf, DirStamp)>>,
    /// Ticks begun (see [`QueueStore::begin_tick`]).
    ticks: std::cell::Cell<u64>,
    settle: Settle,
}

/// What file events have said since each folder's last look. A file event vouches for
/// nothing by itself: a cached row may be trusted without a look only in a folder whose every
/// row was looked at since events were last lost, and only if no event named its file since.
/// Events are kept until their folder is looked at, not just for the next tick: a paused
/// daemon's ticks do not look at the queue, and a task finished in place while it was paused
/// was otherwise taken as it was before the pause (an empty file, say, then quarantined).
#[derive(Default)]
struct ChangeHint {
    /// Whether file events are being delivered and none was lost since the last call.
    trusted: bool,
    /// Folders whose cached rows were all looked at since events were last lost.
    checked: HashSet<PathBuf>,
    /// Files named by events since their folder's last look (only those in `checked` folders:
    /// the others are looked at in full anyway).
    touched: HashSet<PathBuf>,
}

/// More files named by events than this, between two looks at their folders, count as lost
/// events: a daemon paused for weeks beside a busy folder does not keep every name.
const MAX_TOUCHED: usize = 100_000;

/// A listing is reused only if the folder had not changed for this long when it was taken:
/// file times advance in ticks of a few milliseconds, so a later change always moves the
/// folder's stamp then. (Within one process; caches that outlive it wait longer, see
/// `workspace::stamp`.)
const LISTING_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// A file name without its `.md`: the id it must carry.
fn stem(name: &str) -> &str {
    name.strip_suffix(".md").unwrap_or(name)
}

/// A waiting document in claim order: earliest instant, then id (its file name's stem).
struct Candidate {
    order: i64,
    name: Arc<str>,
}

impl Candidate {
    fn key(&self) -> (i64, &str) {
        (self.order, stem(&self.name))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

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
    let bytes = atomic::read_regular(path).ok()?;
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
            hint: RefCell::new(ChangeHint::default()),
            prefetch: RefCell::new(None),
            prefetched: RefCell::new(None),
            fresh: RefCell::new(None),
            ticks: std::cell::Cell::new(0),
            settle: Settle::new(std::time::Duration::from_millis(200)),
        }
    }

    /// Keep the per-folder parse index on disk, so the next process does not re-parse
    /// unchanged documents (the daemon and mutating commands; never read-only ones).
    pub fn with_index(mut self) -> QueueStore {
        self.write_index = true;
        self
    }

    /// Take the first look at a waiting folder from `prefetch` (see [`Prefetch::start`]).
    pub fn with_prefetch(self, prefetch: Option<Prefetch>) -> QueueStore {
        *self.prefetch.borrow_mut() = prefetch;
        self
    }

    /// A tick begins. A prefetch stands for the first tick's look only: a daemon that did not
    /// look then (paused, say) would otherwise take, hours later, files as they were at its
    /// start. From the second tick on, every look is the store's own.
    pub fn begin_tick(&self) {
        if self.ticks.get() > 0 {
            self.prefetch.take();
            self.prefetched.take();
            self.fresh.take();
        }
        self.ticks.set(self.ticks.get() + 1);
    }

    /// Adopt the prefetch of `dir`, if one is under way: its cache replaces this store's, and
    /// its listing and checks stand for the store's next look.
    fn adopt(&self, dir: &Path) {
        let pending = self
            .prefetch
            .borrow()
            .as_ref()
            .is_some_and(|p| p.dir == dir);
        let Some(prefetch) = pending.then(|| self.prefetch.take()).flatten() else {
            return;
        };
        let kind = prefetch.kind;
        let Some(found) = prefetch.join() else {
            return;
        };
        self.cache
            .borrow_mut()
            .insert(dir.to_path_buf(), found.cache);
        // Rows from another look: none is vouched for until this store looked at them.
        self.hint.borrow_mut().checked.remove(dir);
        *self.prefetched.borrow_mut() = Some((dir.to_path_buf(), found.listing));
        if found.changed && self.write_index {
            self.dirty.borrow_mut().insert((kind, Folder::Queue));
        }
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
        let names = self.listing_with_cache(kind, folder).names;
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
        self.adopt(dir);
        let stamp = DirStamp::of(dir);
        let prefetched = self.prefetched.borrow_mut().take_if(|(d, _)| d == dir);
        if let Some((_, listing)) = prefetched.filter(|(_, l)| Some(l.stamp) == stamp) {
            *self.fresh.borrow_mut() = Some((dir.to_path_buf(), listing.stamp));
            return listing;
        }
        if let Some(stamp) = stamp {
            if let Some(known) = self.listings.borrow().get(dir) {
                if known.stamp == stamp {
                    return known.clone();
                }
            }
        }
        let (stamp, listing) = Listing::take(dir);
        let settled = stamp.is_some_and(|s| s.older_than(LISTING_SETTLE));
        if settled && DirStamp::of(dir) == stamp {
            self.listings
                .borrow_mut()
                .insert(dir.to_path_buf(), listing.clone());
        }
        listing
    }

    /// A folder's listing, with its cache loaded: the first time, the index is read on
    /// another thread while this one lists the folder (each takes milliseconds at 10 000
    /// files, and a cold claim waits for both).
    fn listing_with_cache(&self, kind: WorkItemKind, folder: Folder) -> Listing {
        /// Below this an index loads faster than a thread starts.
        const PARALLEL_INDEX_BYTES: u64 = 256 * 1024;
        let dir = self.ws.folder(kind, folder);
        self.adopt(&dir);
        if self.cache.borrow().contains_key(&dir) {
            return self.listing(&dir);
        }
        let index = info::index_path(&self.ws.state_dir(), kind, folder.dir_name(kind));
        let big = std::fs::metadata(&index).is_ok_and(|m| m.len() > PARALLEL_INDEX_BYTES);
        let (listing, rows) = if big {
            std::thread::scope(|scope| {
                let loader = scope.spawn(|| info::load_index(&index));
                let listing = self.listing(&dir);
                (listing, loader.join().unwrap_or_default())
            })
        } else {
            (self.listing(&dir), info::load_index(&index))
        };
        self.hint.borrow_mut().checked.remove(&dir);
        self.cache.borrow_mut().insert(dir, rows);
        listing
    }

    /// Bring a folder's cache up to date for `names` (its listing, or a page of it): a file
    /// whose key differs from the cached one is parsed again, a file that is gone is
    /// forgotten.
    fn refresh(
        &self,
        kind: WorkItemKind,
        folder: Folder,
        names: &[String],
    ) -> std::cell::RefMut<'_, FolderCache> {
        let dir = self.ws.folder(kind, folder);
        self.adopt(&dir);
        let mut cache = std::cell::RefMut::map(self.cache.borrow_mut(), |caches| {
            caches.entry(dir.clone()).or_insert_with(|| {
                info::load_index(&info::index_path(
                    &self.ws.state_dir(),
                    kind,
                    folder.dir_name(kind),
                ))
            })
        });
        // The prefetch's own listing, of a folder unchanged since, was checked by the
        // prefetch: nothing to look at.
        let fresh = self.fresh.borrow_mut().take_if(|(d, _)| *d == dir);
        if fresh.is_some_and(|(_, stamp)| DirStamp::of(&dir) == Some(stamp))
            && cache.len() == names.len()
        {
            return cache;
        }
        // Files file events vouch for (cached, and named by no event since the folder's last
        // look) are not looked at.
        let mut hint = self.hint.borrow_mut();
        let changed = {
            let changed_here: Option<HashSet<&std::ffi::OsStr>> =
                (hint.trusted && hint.checked.contains(&dir)).then(|| {
                    hint.touched
                        .iter()
                        .filter(|p| p.parent() == Some(dir.as_path()))
                        .filter_map(|p| p.file_name())
                        .collect()
                });
            let vouch = match &changed_here {
                Some(changed) => Vouch::CachedUnless(changed),
                None => Vouch::Nothing,
            };
            folder::refresh(&mut cache, kind, &dir, names, vouch)
        };
        // Every row the cache now holds was looked at or vouched for: the events up to now
        // are spent for this folder.
        hint.touched.retain(|p| p.parent() != Some(dir.as_path()));
        hint.checked.insert(dir.clone());
        drop(hint);
        if changed && self.write_index {
            self.dirty.borrow_mut().insert((kind, folder));
        }
        cache
    }

    /// The documents named `names` in a folder (one listing), cached by file stamp.
    fn entries_of(&self, kind: WorkItemKind, folder: Folder, names: Vec<String>) -> Vec<Entry> {
        let dir = self.ws.folder(kind, folder);
        let mut cache = self.refresh(kind, folder, &names);
        // After a refresh the cache holds exactly the named files that exist, in order.
        cache
            .iter_mut()
            .map(|(name, row)| Entry {
                path: dir.join(&**name),
                stem: stem(name).to_string(),
                parsed: row.info(),
            })
            .collect()
    }

    /// Tell the store which files file events named since the last call, so that a cached
    /// file no event named since its folder's last look is not stat-ed again; `None` (events
    /// lost, or none delivered) makes every folder's next look check every file. Without a
    /// call (no watcher) every look checks every file. New and vanished names are always
    /// found from the folder listing.
    pub fn note_file_events(&self, touched: Option<HashSet<PathBuf>>) {
        let mut hint = self.hint.borrow_mut();
        let Some(touched) = touched else {
            *hint = ChangeHint::default();
            return;
        };
        let ChangeHint {
            trusted,
            checked,
            touched: kept,
        } = &mut *hint;
        *trusted = true;
        kept.extend(
            touched
                .into_iter()
                .filter(|p| p.parent().is_some_and(|dir| checked.contains(dir))),
        );
        if kept.len() > MAX_TOUCHED {
            *hint = ChangeHint::default();
        }
    }

    /// Write the index of every folder whose cache changed. Called when the engine is idle
    /// and at shutdown, not per change: rewriting a 10 000-row index on every claim would cost
    /// more than the parses it saves.
    pub fn flush_index(&self) {
        let dirty: Vec<(WorkItemKind, Folder)> = self.dirty.borrow_mut().drain().collect();
        let caches = self.cache.borrow();
        for (kind, folder) in dirty {
            if let Some(cache) = caches.get(&self.ws.folder(kind, folder)) {
                let index = info::index_path(&self.ws.state_dir(), kind, folder.dir_name(kind));
                info::save_index(&index, cache);
            }
        }
    }

    /// Read and parse one document in full (`None` if it vanished).
    pub fn load(&self, kind: WorkItemKind, path: &Path) -> Option<Result<Document, DocError>> {
        let name = scan::file_name(path);
        let bytes = atomic::read_regular(path).ok()?;
        Some(match String::from_utf8(bytes) {
            Ok(text) => documents::parse(kind, &name, &text),
            Err(e) => Err(utf8_error(&name, &e)),
        })
    }

    /// What is at the active path of `id` now: the item's document only if it is a regular
    /// file (not a link, not a folder) that parses as a `kind` document with that id. An
    /// agent writing the file it was pointed at could otherwise have its bytes moved to
    /// `done/` as the finished item.
    pub fn active_document(&self, kind: WorkItemKind, id: &str) -> ActiveDocument {
        let path = self.ws.item_path(kind, Folder::Active, id);
        let what = match path.symlink_metadata() {
            Err(_) => return ActiveDocument::Gone,
            Ok(meta) if meta.is_symlink() => "a symbolic link",
            Ok(meta) if meta.is_dir() => "a folder",
            Ok(meta) if !meta.is_file() => "not a regular file",
            Ok(_) => {
                let Ok(bytes) = atomic::read_regular(&path) else {
                    return ActiveDocument::Gone;
                };
                let name = scan::file_name(&path);
                let parsed = match String::from_utf8(bytes) {
                    Ok(text) => documents::parse(kind, &name, &text).map(|doc| (doc, text)),
                    Err(e) => Err(utf8_error(&name, &e)),
                };
                return match parsed {
                    Ok((doc, text)) if doc.id() == id => ActiveDocument::Item(text.into_bytes()),
                    Ok((doc, _)) => {
                        ActiveDocument::Replaced(format!("it holds {kind} {} now", doc.id()))
                    }
                    Err(e) => ActiveDocument::Replaced(format!("not a valid {kind} document: {e}")),
                };
            }
        };
        ActiveDocument::Replaced(what.to_string())
    }

    /// Move a bad file to `quarantine/` with a `.error.yaml` reason beside it, and log it;
    /// where it went (`None`: it vanished first).
    pub fn quarantine(
        &self,
        path: &Path,
        error: &str,
        line: Option<usize>,
    ) -> Result<Option<PathBuf>, IoError> {
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
                IoError::NotFound { .. } => Ok(None),
                e => Err(e),
            };
        }
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            if let Some(cache) = self.cache.borrow_mut().get_mut(dir) {
                cache.remove(&name.to_string_lossy());
            }
        }
        self.events.emit(
            EventKind::WorkItemQuarantined,
            json!({"source": reason.source, "destination": reason.quarantined_as, "error": error}),
        )?;
        Ok(Some(dest))
    }

    /// The names of the valid, correctly named documents of a waiting folder, in claim
    /// order (earliest instant, then id); bad files are quarantined. Only the order of each
    /// is read here: [`QueueStore::candidate`] gives the whole summary of the few a claim
    /// looks at.
    ///
    /// A claim mostly takes the first candidate: one scan that copies nothing finds it, and
    /// the others are collected and put in order (a heap) only if a claim asks for them.
    /// Collecting and ordering all 10 000 waiting names was a fifth of a cold claim's serial
    /// tail.
    fn candidates(
        &self,
        kind: WorkItemKind,
    ) -> Result<impl Iterator<Item = Arc<str>> + '_, QueueError> {
        let dir = self.ws.folder(kind, Folder::Queue);
        let Listing {
            names,
            refused: links,
            ..
        } = self.listing_with_cache(kind, Folder::Queue);
        for (path, msg) in links {
            self.quarantine(&path, msg, None)?;
        }
        let mut first: Option<Candidate> = None;
        let mut bad = Vec::new();
        let mut unready = Vec::new();
        {
            // After a refresh the cache holds exactly the listed files.
            let mut cache = self.refresh(kind, Folder::Queue, &names);
            for (name, row) in cache.iter() {
                match row.order_if_named(stem(name)) {
                    Some(order) => {
                        if first.as_ref().is_none_or(|f| (order, stem(name)) < f.key()) {
                            first = Some(Candidate {
                                order,
                                name: name.clone(),
                            });
                        }
                    }
                    None => unready.push(name.clone()),
                }
            }
            for name in unready {
                let path = dir.join(&*name);
                let Some(row) = cache.get_mut(&name).filter(|_| !self.young(&path)) else {
                    continue;
                };
                bad.push(match row.info() {
                    Err(err) => (path, err.to_string(), err.line),
                    Ok(doc) => {
                        let field = match kind {
                            WorkItemKind::Task => "task_id",
                            WorkItemKind::Spec => "spec_id",
                            WorkItemKind::Incident => "incident_id",
                        };
                        let msg = format!(
                            "filename stem does not match {field}: expected {:?}, found {:?}",
                            doc.id,
                            stem(&name)
                        );
                        (path, msg, None)
                    }
                });
            }
        }
        for (path, msg, line) in bad {
            self.quarantine(&path, &msg, line)?;
        }
        let taken = first.as_ref().map(|c| c.name.clone());
        let mut rest: Option<BinaryHeap<Reverse<Candidate>>> = None;
        let rest = std::iter::from_fn(move || {
            let heap = rest.get_or_insert_with(|| self.waiting(&dir, taken.as_deref()));
            heap.pop().map(|Reverse(c)| c.name)
        });
        Ok(first.map(|c| c.name).into_iter().chain(rest))
    }

    /// The valid, correctly named documents cached for the waiting folder `dir`, but
    /// `except`, in a heap by claim order.
    fn waiting(&self, dir: &Path, except: Option<&str>) -> BinaryHeap<Reverse<Candidate>> {
        let caches = self.cache.borrow();
        let Some(cache) = caches.get(dir) else {
            return BinaryHeap::new();
        };
        (cache.iter())
            .filter(|(name, _)| Some(&**name) != except)
            .filter_map(|(name, row)| {
                let order = row.order_if_named(stem(name))?;
                let name = name.clone();
                Some(Reverse(Candidate { order, name }))
            })
            .collect()
    }

    /// The summary of a candidate (`None`: it is gone from the cache).
    fn candidate(&self, kind: WorkItemKind, name: &str) -> Option<Arc<ItemInfo>> {
        let dir = self.ws.folder(kind, Folder::Queue);
        let mut caches = self.cache.borrow_mut();
        caches.get_mut(&dir)?.get_mut(name)?.info().ok()
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
        self.quarantine_duplicate(kind, &doc.id, folder)?;
        Ok(false)
    }

    /// Quarantine the queued copy of `id`, which is also in `kept_in`: ids are unique, and
    /// the copy that waits yields to the one that got further.
    pub fn quarantine_duplicate(
        &self,
        kind: WorkItemKind,
        id: &str,
        kept_in: Folder,
    ) -> Result<(), QueueError> {
        let msg = format!(
            "{kind} {id} already exists in {}; ids must be unique",
            self.folder_label(kind, kept_in)
        );
        let path = self.ws.item_path(kind, Folder::Queue, id);
        self.quarantine(&path, &msg, None)?;
        Ok(())
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
                for name in self.candidates(kind)? {
                    let Some(doc) = self.candidate(kind, &name) else {
                        continue;
                    };
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
            for name in self.candidates(WorkItemKind::Task)? {
                let Some(doc) = self.candidate(WorkItemKind::Task, &name) else {
                    continue;
                };
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

    /// Write `document` as the blocked item `id`, whose active file is not the item any
    /// more (see [`QueueStore::active_document`]); that file is left for the caller to
    /// quarantine. Written before it is moved: a crash in between leaves the item blocked
    /// and the stray file where reconcile finds it, never the item nowhere.
    pub fn block_as(
        &self,
        kind: WorkItemKind,
        id: &str,
        document: &[u8],
    ) -> Result<PathBuf, QueueError> {
        let dest = self.ws.item_path(kind, Folder::Blocked, id);
        atomic::write_atomic(&dest, document)?;
        crate::workspace::failpoint::transition("block.after_move")?;
        Ok(dest)
    }

    /// Add a dated line to the `## Runtime History` of the item at `path` (a file that is
    /// gone by now is left alone: the line only informs a reader).
    pub fn append_history(&self, path: &Path, line: &str) -> Result<(), IoError> {
        let Ok(text) = atomic::read_regular_string(path) else {
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

    /// A valid task document created at `created` (also used by `folder`'s tests).
    pub(super) fn task(id: &str, created: &str) -> String {
        format!(
            "# T {id}\n\nTask-ID: {id}\nTitle: T {id}\nCreated-At: {created}\nCreated-By: t\n\nTarget-Paths:\n- a\n\nAcceptance:\n- a\n\nRequired-Checks:\n- a\n\nReferences:\n- a\n\nRisk:\n- a\n"
        )
    }

    /// A new workspace (kept while the first value lives) and its task queue folder.
    fn queue_ws() -> (tempfile::TempDir, Workspace, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let queue_dir = ws.folder(WorkItemKind::Task, Folder::Queue);
        (dir, ws, queue_dir)
    }

    #[test]
    fn tasks_are_claimed_by_instant_then_id_whatever_their_file_order() {
        let (_dir, ws, queue_dir) = queue_ws();
        // Ids whose name order is not their claim order; instants repeat, so ties are
        // broken by id; `b-10` sorts before `b-9` as a name and as an id.
        let mut expected = Vec::new();
        for i in 0..40u32 {
            let id = format!("{}-{}", ["c", "a", "b"][(i % 3) as usize], 40 - i);
            let instant = format!("2026-01-{:02}T00:00:00Z", 1 + (i * 7) % 5);
            std::fs::write(queue_dir.join(format!("{id}.md")), task(&id, &instant)).unwrap();
            expected.push((instant, id));
        }
        expected.sort();
        let store = QueueStore::new(&ws);
        let mut claimed = Vec::new();
        while let Some(c) = store.claim_execution().unwrap() {
            store.complete(WorkItemKind::Task, &c.id).unwrap();
            claimed.push(c.id);
        }
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        assert_eq!(claimed, expected);
    }

    /// The candidates after the first come in claim order too: with the earliest tasks
    /// waiting on a missing one, the claim is the earliest task that is ready.
    #[test]
    fn the_first_ready_task_in_claim_order_is_claimed_past_unready_ones() {
        let (_dir, ws, queue_dir) = queue_ws();
        let mut order = Vec::new();
        for i in 0..60u32 {
            let id = format!("t-{:02}", (i * 37) % 60);
            let instant = format!("2026-01-{:02}T00:00:00Z", 1 + (i * 11) % 25);
            order.push((instant, id));
        }
        order.sort();
        for (at, (instant, id)) in order.iter().enumerate() {
            let mut text = task(id, instant);
            if at < 20 {
                text = text.replace("Risk:", "Depends-On:\n- missing\n\nRisk:");
            }
            std::fs::write(queue_dir.join(format!("{id}.md")), text).unwrap();
        }
        let store = QueueStore::new(&ws);
        let claimed = store.claim_execution().unwrap().unwrap();
        assert_eq!(claimed.id, order[20].1);
        assert!(!store.task_done("missing"));
    }

    #[test]
    fn the_index_carries_summaries_to_the_next_process_and_notices_edits() {
        let (_dir, ws, queue_dir) = queue_ws();
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
        let (_dir, ws, queue_dir) = queue_ws();
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
        let (_dir, ws, queue_dir) = queue_ws();
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
