//! Bringing a folder's cache up to date with the folder: one stat per listed file (in
//! parallel), a parse only for files whose key changed. Free of the store, so a prefetch can
//! run it on another thread while the engine starts.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
        let (names, refused) = scan::md_listing(dir);
        let listing = Listing {
            stamp: stamp.unwrap_or(DirStamp {
                ino: 0,
                mtime_ns: 0,
            }),
            names,
            refused,
        };
        (stamp, listing)
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

/// The file keys of `names` in `dir`, in order, in blocks (not copied into one vector:
/// 10 000 looks are 400 KB of fresh memory); names `vouched` for (by index) are not looked
/// at. The checks run on every core, the calling thread's included: with 10 000 queued
/// files they are most of a cold claim.
fn file_keys(dir: &Path, names: &[String], vouched: impl Fn(usize) -> bool) -> Vec<Vec<Look>> {
    let todo: Vec<usize> = (0..names.len()).filter(|i| !vouched(*i)).collect();
    let dir_file = if todo.is_empty() { None } else { open_dir(dir) };
    let look = |i: &usize| look_at(dir, dir_file.as_ref(), &names[*i]);
    let found: Vec<Vec<Look>> = if todo.len() < 2048 || threads() < 2 {
        vec![todo.iter().map(look).collect()]
    } else {
        let blocks: Vec<&[usize]> = todo.chunks(BLOCK).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(block) = blocks.get(at) else {
                    return done;
                };
                done.push((at, block.iter().map(look).collect::<Vec<Look>>()));
            }
        };
        let mut parts: Vec<Option<Vec<Look>>> = (0..blocks.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads()).map(|_| scope.spawn(work)).collect();
            let mine = work();
            // A helper that failed leaves its blocks unset: they are looked at below.
            let theirs = helpers
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default());
            for (at, found) in mine.into_iter().chain(theirs) {
                parts[at] = Some(found);
            }
        });
        parts
            .into_iter()
            .zip(&blocks)
            .map(|(part, block)| part.unwrap_or_else(|| block.iter().map(look).collect()))
            .collect()
    };
    if todo.len() == names.len() {
        return found;
    }
    let mut looks: Vec<Look> = (0..names.len()).map(|_| Look::Vouched).collect();
    for (i, found) in todo.into_iter().zip(found.into_iter().flatten()) {
        looks[i] = found;
    }
    vec![looks]
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
    apply(cache, kind, dir, names, looks)
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

/// Update `cache` with what the looks at `names` (sorted) found, in one merge of the two
/// sorted sequences. Whether anything changed.
fn apply(
    cache: &mut FolderCache,
    kind: WorkItemKind,
    dir: &Path,
    names: &[String],
    looks: Vec<Vec<Look>>,
) -> bool {
    let mut changed = false;
    let mut old = cache.take().into_iter().peekable();
    let mut rows = Vec::with_capacity(names.len());
    for (name, look) in names.iter().zip(looks.into_iter().flatten()) {
        while old.next_if(|(n, _)| **n < **name).is_some() {
            changed = true;
        }
        let cached = old.next_if(|(n, _)| **n == **name);
        let key = match (look, cached) {
            (Look::Vouched, Some(row)) => {
                rows.push(row);
                continue;
            }
            (Look::Key(key), Some(row)) if row.1.key == key => {
                rows.push(row);
                continue;
            }
            (Look::Key(key), _) => Some(key),
            (Look::Gone | Look::Vouched, _) => None,
        };
        changed = true;
        if let Some(parsed) = key.and_then(|key| Some((key, parse_file(kind, &dir.join(name))?))) {
            rows.push((Arc::from(name.as_str()), Row::parsed(parsed.0, parsed.1)));
        }
    }
    changed |= old.next().is_some();
    *cache = FolderCache::from_rows(rows);
    changed
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
            std::thread::spawn(move || {
                // The index loads beside the listing and the looks, which do not need it.
                let (listing, looks, mut cache) = std::thread::scope(|scope| {
                    let loader = scope.spawn(|| info::load_index(&index));
                    let (_, listing) = Listing::take(&dir);
                    let looks = file_keys(&dir, &listing.names, |_| false);
                    (listing, looks, loader.join().unwrap_or_default())
                });
                let changed = apply(&mut cache, kind, &dir, &listing.names, looks);
                Prefetched {
                    listing,
                    cache,
                    changed,
                }
            })
        };
        Prefetch { dir, kind, handle }
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
        let blocks = file_keys(dir.path(), &names, |i| i % 13 == 0);
        let looks: Vec<Look> = blocks.into_iter().flatten().collect();
        assert_eq!(looks.len(), names.len());
        for (i, look) in looks.iter().enumerate() {
            match look {
                Look::Vouched => assert_eq!(i % 13, 0, "{i}"),
                Look::Gone => assert!(i % 13 != 0 && (i % 11 == 0 || i % 7 == 0), "{i}"),
                Look::Key(key) => {
                    assert!(i % 13 != 0 && i % 11 != 0 && i % 7 != 0, "{i}");
                    let there = FileKey::of(&dir.path().join(&names[i]));
                    assert_eq!(Some(*key), there, "{i}");
                }
            }
        }
        let all: Vec<Look> = file_keys(dir.path(), &names, |_| false)
            .into_iter()
            .flatten()
            .collect();
        let keyed = all.iter().filter(|l| matches!(l, Look::Key(_))).count();
        assert_eq!(
            keyed,
            (0..3000).filter(|i| i % 11 != 0 && i % 7 != 0).count()
        );
    }
}
