//! Bringing a folder's cache up to date with the folder: one stat per listed file (in
//! parallel), a parse only for files whose key changed. Free of the store, so a prefetch can
//! run it on another thread while the engine starts.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use super::info::{self, FileKey, FolderCache, Row};
use super::{parse_file, scan};
use crate::model::WorkItemKind;
use crate::workspace::stamp::DirStamp;
use crate::workspace::{Folder, Workspace};

/// A folder's `*.md` names and the entries that cannot be taken (see `scan::md_listing`),
/// with the folder's stamp from just before the listing.
#[derive(Clone)]
pub(super) struct Listing {
    pub stamp: DirStamp,
    pub names: Vec<String>,
    pub refused: Vec<(PathBuf, &'static str)>,
}

impl Listing {
    /// List `dir` now; `stamp` is `None` when the folder cannot be read.
    pub fn take(dir: &Path) -> (Option<DirStamp>, Listing) {
        let stamp = DirStamp::of(dir);
        (stamp, Listing::since(dir, stamp))
    }

    /// List `dir`, whose stamp was taken before (and before any look at its files).
    fn since(dir: &Path, stamp: Option<DirStamp>) -> Listing {
        let (names, refused) = scan::md_listing(dir);
        Listing {
            stamp: stamp.unwrap_or(DirStamp {
                ino: 0,
                mtime_ns: 0,
            }),
            names,
            refused,
        }
    }
}

/// Which cached files need no look this time.
pub(super) enum Vouch<'a> {
    /// Every listed file is looked at.
    Nothing,
    /// Cached files not among these names (the file events since the last look).
    CachedUnless(&'a HashSet<&'a OsStr>),
}

/// What a look at one listed file found.
#[derive(Clone, Copy)]
enum Look {
    /// Not looked at (see [`Vouch`]).
    Vouched,
    /// Gone, or not a regular file any more.
    Gone,
    Key(FileKey),
}

/// How many threads look at files: every core (asked once per process: each answer reads
/// the cgroup files).
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// Look at `name` in `dir`, relative to the folder's descriptor when it could be opened (so
/// 10 000 checks do not walk the full path through the kernel 10 000 times).
fn look_at(dir: &Path, dir_file: Option<&std::fs::File>, name: &str) -> Look {
    let key = match dir_file {
        Some(dir_file) => FileKey::of_at(dir_file, name),
        None => FileKey::of(&dir.join(name)),
    };
    key.map_or(Look::Gone, Look::Key)
}

/// The folder `dir` opened to look at files relative to it (`None` when it is not a folder:
/// never blocks on a FIFO put in its place).
fn open_dir(dir: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NONBLOCK;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(dir)
        .ok()
}

/// How many files a thread takes at a time: blocks are handed out one by one, so a thread
/// the scheduler pauses (the engine starts beside the look, on the same cores) leaves the
/// rest of its share to the others instead of finishing last alone (fixed halves ended up to
/// 8 ms apart on two cores).
const BLOCK: usize = 256;

/// Looks at a sequence of names, in blocks of [`BLOCK`] handed out to whichever threads
/// call [`Looker::work`] (the thread that asks included). Kept in blocks, not copied into
/// one vector: 10 000 looks are 400 KB of fresh memory.
struct Looker<'a, N> {
    dir: &'a Path,
    dir_file: Option<&'a std::fs::File>,
    /// The name at a position of the sequence.
    name: N,
    count: usize,
    next: &'a AtomicUsize,
}

impl<'a, N: Fn(usize) -> &'a str> Looker<'a, N> {
    fn blocks(&self) -> usize {
        self.count.div_ceil(BLOCK)
    }

    fn look_block(&self, block: usize) -> Vec<Look> {
        let end = self.count.min((block + 1) * BLOCK);
        (block * BLOCK..end)
            .map(|i| look_at(self.dir, self.dir_file, (self.name)(i)))
            .collect()
    }

    /// Take blocks until none is left; the blocks this thread looked at, by number.
    fn work(&self) -> Vec<(usize, Vec<Look>)> {
        let mut done = Vec::new();
        loop {
            let block = self.next.fetch_add(1, Ordering::Relaxed);
            if block >= self.blocks() {
                return done;
            }
            done.push((block, self.look_block(block)));
        }
    }

    /// The looks in order, from the blocks the threads brought back; a block no thread
    /// brought back (one failed) is looked at now.
    fn assemble(&self, parts: impl IntoIterator<Item = (usize, Vec<Look>)>) -> Looks {
        let mut blocks: Vec<Option<Vec<Look>>> = (0..self.blocks()).map(|_| None).collect();
        for (block, looks) in parts {
            blocks[block] = Some(looks);
        }
        let blocks = blocks
            .into_iter()
            .enumerate()
            .map(|(block, looks)| looks.unwrap_or_else(|| self.look_block(block)))
            .collect();
        Looks {
            blocks,
            block_len: BLOCK,
        }
    }
}

/// A [`Looker`] at the files a cache holds rows for, by row.
fn rows_looker<'a>(
    dir: &'a Path,
    dir_file: Option<&'a std::fs::File>,
    cache: &'a FolderCache,
    next: &'a AtomicUsize,
) -> Looker<'a, impl Fn(usize) -> &'a str> {
    Looker {
        dir,
        dir_file,
        name: |at: usize| cache.name(at),
        count: cache.len(),
        next,
    }
}

/// The looks at a sequence of names, by position.
struct Looks {
    blocks: Vec<Vec<Look>>,
    block_len: usize,
}

impl Looks {
    fn get(&self, at: usize) -> Look {
        self.blocks[at / self.block_len][at % self.block_len]
    }
}

/// The file keys of `names` in `dir`, by position; names `vouched` for (by index) are not
/// looked at. The checks run on every core, the calling thread's included: with 10 000
/// queued files they are most of a cold claim.
fn file_keys<S: AsRef<str> + Sync>(
    dir: &Path,
    names: &[S],
    vouched: impl Fn(usize) -> bool,
) -> Looks {
    let todo: Vec<usize> = (0..names.len()).filter(|i| !vouched(*i)).collect();
    let dir_file = if todo.is_empty() { None } else { open_dir(dir) };
    let next = AtomicUsize::new(0);
    let looker = Looker {
        dir,
        dir_file: dir_file.as_ref(),
        name: |k: usize| names[todo[k]].as_ref(),
        count: todo.len(),
        next: &next,
    };
    let found = if todo.len() < 2048 || threads() < 2 {
        looker.assemble(looker.work())
    } else {
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads())
                .map(|_| scope.spawn(|| looker.work()))
                .collect();
            let mine = looker.work();
            // A helper that failed leaves its blocks unset: `assemble` looks at them.
            let theirs = helpers
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default());
            looker.assemble(mine.into_iter().chain(theirs))
        })
    };
    if todo.len() == names.len() {
        return found;
    }
    let mut looks: Vec<Look> = vec![Look::Vouched; names.len()];
    for (k, i) in todo.into_iter().enumerate() {
        looks[i] = found.get(k);
    }
    Looks {
        block_len: looks.len().max(1),
        blocks: vec![looks],
    }
}

/// Bring `cache`, of folder `dir` holding `kind`, up to date for `names` (its listing, or a
/// page of it; sorted by name as listings are): a file whose key differs from the cached
/// one is parsed again, a file that is gone or not named is forgotten. Whether anything
/// changed.
pub(super) fn refresh(
    cache: &mut FolderCache,
    kind: WorkItemKind,
    dir: &Path,
    names: &[String],
    vouch: Vouch<'_>,
) -> bool {
    let sorted;
    let names = if names.is_sorted() {
        names
    } else {
        sorted = {
            let mut v = names.to_vec();
            v.sort();
            v
        };
        &sorted
    };
    let looks = match vouch {
        Vouch::Nothing => file_keys(dir, names, |_| false),
        Vouch::CachedUnless(changed) => {
            let cached = cached_flags(cache, names);
            file_keys(dir, names, |i| {
                cached[i] && !changed.contains(OsStr::new(&names[i]))
            })
        }
    };
    apply(cache, kind, dir, names, |i, _| looks.get(i))
}

/// For each of `names` (sorted), whether `cache` holds it: one merge, no lookups.
fn cached_flags(cache: &FolderCache, names: &[String]) -> Vec<bool> {
    let mut rows = cache.iter().map(|(n, _)| &**n).peekable();
    names
        .iter()
        .map(|name| {
            while rows.next_if(|n| *n < name.as_str()).is_some() {}
            rows.peek() == Some(&name.as_str())
        })
        .collect()
}

/// What [`apply`] does to a cache row, or with a file the cache does not hold.
enum Change {
    /// The row's file is gone (or no longer listed).
    Drop(usize),
    /// The row's file has a new key: read it again.
    Read(usize, FileKey),
    /// A listed file the cache does not hold, by its place in the listing.
    Add(usize, FileKey),
}

/// Update `cache` with what the looks at `names` (sorted) found: `look(i, row)` is the look
/// at `names[i]`, whose row in the cache (by position, before the update) is `row`. Whether
/// anything changed.
///
/// One merge of the two sorted sequences finds what changed, without moving a row; the
/// rows are then updated in place. Rebuilding the cache instead moved 800 KB of rows into
/// fresh memory at 10 000 queued, on the claim's critical path, when typically one file
/// had come or gone.
fn apply(
    cache: &mut FolderCache,
    kind: WorkItemKind,
    dir: &Path,
    names: &[String],
    mut look: impl FnMut(usize, Option<usize>) -> Look,
) -> bool {
    let mut changes = Vec::new();
    let mut at = 0;
    for (i, name) in names.iter().enumerate() {
        while at < cache.len() && cache.name(at) < name.as_str() {
            changes.push(Change::Drop(at));
            at += 1;
        }
        let row = (at < cache.len() && cache.name(at) == name.as_str()).then_some(at);
        match (look(i, row), row) {
            (Look::Vouched, Some(_)) | (Look::Gone | Look::Vouched, None) => {}
            (Look::Key(key), Some(row)) if cache.key(row) == key => {}
            (Look::Key(key), Some(row)) => changes.push(Change::Read(row, key)),
            (Look::Gone, Some(row)) => changes.push(Change::Drop(row)),
            (Look::Key(key), None) => changes.push(Change::Add(i, key)),
        }
        at += usize::from(row.is_some());
    }
    changes.extend((at..cache.len()).map(Change::Drop));
    if changes.is_empty() {
        return false;
    }
    let mut dropped = Vec::new();
    let mut added = Vec::new();
    for change in changes {
        match change {
            Change::Drop(row) => dropped.push(row),
            Change::Read(row, key) => match parse_file(kind, &dir.join(cache.name(row))) {
                Some(parsed) => cache.set(row, Row::parsed(key, parsed)),
                None => dropped.push(row),
            },
            Change::Add(i, key) => {
                if let Some(parsed) = parse_file(kind, &dir.join(&names[i])) {
                    added.push((Arc::from(names[i].as_str()), Row::parsed(key, parsed)));
                }
            }
        }
    }
    cache.drop_rows(&dropped);
    cache.add_rows(added);
    true
}

/// The first look at a waiting folder, taken on another thread while the engine starts
/// (config, lock, plan, state: milliseconds a cold claim at 10 000 queued would otherwise add
/// to its own). The store adopts it at its first look at that folder.
pub struct Prefetch {
    pub(super) dir: PathBuf,
    pub(super) kind: WorkItemKind,
    handle: JoinHandle<Prefetched>,
}

/// What a prefetch found: the listing, and the cache checked against it.
pub(super) struct Prefetched {
    pub listing: Listing,
    pub cache: FolderCache,
    pub changed: bool,
}

impl Prefetch {
    /// Start looking at the queue folder of `kind`.
    ///
    /// Sound only where nothing vouches for files later: the store then takes the cache as
    /// checked once, as if its own first look had happened at the prefetch. A file edited in
    /// between is read at the next look, as an edit just after that look would be. Under file
    /// events the next look trusts events from the watcher's start onwards, so an edit
    /// between the prefetch and that first look would never be read: the daemon in watch
    /// mode does not prefetch.
    pub fn start(ws: &Workspace, kind: WorkItemKind) -> Prefetch {
        let dir = ws.folder(kind, Folder::Queue);
        let index = info::index_path(&ws.state_dir(), kind, Folder::Queue.dir_name(kind));
        let handle = {
            let dir = dir.clone();
            std::thread::spawn(move || Self::look(&dir, &index, kind))
        };
        Prefetch { dir, kind, handle }
    }

    /// The look itself. The files the index names are looked at as soon as it has loaded,
    /// on one thread while another lists the folder, looks at the files the index does not
    /// name and then joins in. A cold claim at 10 000 queued is mostly these looks, and the
    /// listing no longer comes before them.
    ///
    /// The folder's stamp is taken before any look: a file replaced after it moves it, and
    /// the store then lists and looks again (see `QueueStore::listing`).
    fn look(dir: &Path, index: &Path, kind: WorkItemKind) -> Prefetched {
        let stamp = DirStamp::of(dir);
        let dir_file = open_dir(dir);
        let loaded: OnceLock<FolderCache> = OnceLock::new();
        let next = AtomicUsize::new(0);
        // Whichever thread comes first loads the index; the other waits for it (or loads it
        // itself, should the first have failed).
        let indexed = || loaded.get_or_init(|| info::load_index(index));
        let looker = |cache| rows_looker(dir, dir_file.as_ref(), cache, &next);
        let (listing, new_looks, mine, theirs) = std::thread::scope(|scope| {
            let loader = scope.spawn(|| looker(indexed()).work());
            let listing = Listing::since(dir, stamp);
            let cache = indexed();
            // The files the index does not name are looked at beside the loader's looks.
            let cached = cached_flags(cache, &listing.names);
            let new: Vec<&str> = (listing.names.iter().zip(&cached))
                .filter(|(_, cached)| !**cached)
                .map(|(name, _)| name.as_str())
                .collect();
            let new_looks = file_keys(dir, &new, |_| false);
            let mine = looker(cache).work();
            let theirs = loader.join().unwrap_or_default();
            (listing, new_looks, mine, theirs)
        });
        let looks = looker(indexed()).assemble(mine.into_iter().chain(theirs));
        let mut cache = loaded.into_inner().unwrap_or_default();
        let mut next_new = 0;
        let changed = apply(&mut cache, kind, dir, &listing.names, |_, row| match row {
            Some(at) => looks.get(at),
            None => {
                next_new += 1;
                new_looks.get(next_new - 1)
            }
        });
        Prefetched {
            listing,
            cache,
            changed,
        }
    }

    /// Wait for the look (`None` if it failed; the store then looks itself).
    pub(super) fn join(self) -> Option<Prefetched> {
        self.handle.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough files for the threads to share the work in blocks: every look lands at its
    /// own name's place, whichever thread took it.
    #[test]
    fn parallel_looks_come_back_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..3000).map(|i| format!("t-{i:05}.md")).collect();
        for (i, name) in names.iter().enumerate() {
            let path = dir.path().join(name);
            match i % 11 {
                0 => std::fs::create_dir(&path).unwrap(),
                _ if i % 7 == 0 => {}
                _ => std::fs::write(&path, "x".repeat(i)).unwrap(),
            }
        }
        let looks = file_keys(dir.path(), &names, |i| i % 13 == 0);
        for (i, look) in (0..names.len()).map(|i| (i, looks.get(i))) {
            match look {
                Look::Vouched => assert_eq!(i % 13, 0, "{i}"),
                Look::Gone => assert!(i % 13 != 0 && (i % 11 == 0 || i % 7 == 0), "{i}"),
                Look::Key(key) => {
                    assert!(i % 13 != 0 && i % 11 != 0 && i % 7 != 0, "{i}");
                    let there = FileKey::of(&dir.path().join(&names[i]));
                    assert_eq!(Some(key), there, "{i}");
                }
            }
        }
        let all = file_keys(dir.path(), &names, |_| false);
        for (i, name) in names.iter().enumerate() {
            let there = FileKey::of(&dir.path().join(name));
            match all.get(i) {
                Look::Key(key) => assert_eq!(Some(key), there, "{i}"),
                Look::Gone => assert_eq!(None, there, "{i}"),
                Look::Vouched => panic!("{i} was not looked at"),
            }
        }
    }

    /// A task created `second` seconds into 2026 (every instant the same length).
    fn task(id: &str, second: usize) -> String {
        let created = format!("2026-01-01T00:{:02}:{:02}Z", second / 60 % 60, second % 60);
        crate::queue::tests::task(id, &created)
    }

    /// The (name, order) of every row.
    fn orders(mut cache: FolderCache) -> Vec<(String, i64)> {
        cache
            .iter_mut()
            .map(|(name, row)| (name.to_string(), row.info().unwrap().order_micros))
            .collect()
    }

    /// A prefetch looks at the index's files beside the listing and at the others after it:
    /// whatever changed since the index was written (edited in place with the same size,
    /// replaced, gone, new, on both sides of the parallel threshold) comes out as a look
    /// without any index sees it.
    #[test]
    fn a_prefetch_with_an_index_sees_what_a_look_without_one_sees() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let index = state.path().join("index.tsv");
        let path = |i: usize| dir.path().join(format!("t-{i:05}.md"));
        for i in 0..3000 {
            std::fs::write(path(i), task(&format!("t-{i:05}"), i)).unwrap();
        }
        let first = Prefetch::look(dir.path(), &index, WorkItemKind::Task);
        assert!(first.changed);
        info::save_index(&index, &first.cache);
        for i in (0..3000).step_by(7) {
            // Same length, earlier instant: only the ctime tells.
            let edited = task(&format!("t-{i:05}"), (i + 1800) % 3600);
            std::fs::OpenOptions::new()
                .write(true)
                .open(path(i))
                .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
                .unwrap();
        }
        for i in (1..3000).step_by(11) {
            std::fs::remove_file(path(i)).unwrap();
        }
        for i in (2..3000).step_by(13) {
            let tmp = dir.path().join(".tmp");
            std::fs::write(&tmp, task(&format!("t-{i:05}"), 3599)).unwrap();
            std::fs::rename(&tmp, path(i)).unwrap();
        }
        for i in 3000..6000 {
            std::fs::write(path(i), task(&format!("t-{i:05}"), i)).unwrap();
        }
        let second = Prefetch::look(dir.path(), &index, WorkItemKind::Task);
        assert!(second.changed);
        let unindexed = Prefetch::look(dir.path(), &state.path().join("none"), WorkItemKind::Task);
        assert_eq!(second.listing.names, unindexed.listing.names);
        assert_eq!(orders(second.cache), orders(unindexed.cache));
    }
}
