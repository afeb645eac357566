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

/// The file keys of `names` in `dir`, in order; names `vouched` for (by index) are not
/// looked at. The checks run on every core: with 10 000 queued files they are most of a
/// cold claim.
fn file_keys(dir: &Path, names: &[String], vouched: impl Fn(usize) -> bool) -> Vec<Look> {
    let mut looks: Vec<Look> = (0..names.len())
        .map(|i| {
            if vouched(i) {
                Look::Vouched
            } else {
                Look::Gone
            }
        })
        .collect();
    let todo: Vec<usize> = (0..names.len())
        .filter(|i| !matches!(looks[*i], Look::Vouched))
        .collect();
    let dir_file = if todo.is_empty() { None } else { open_dir(dir) };
    let look = |i: &usize| look_at(dir, dir_file.as_ref(), &names[*i]);
    let found: Vec<Look> = if todo.len() < 2048 || threads() < 2 {
        todo.iter().map(look).collect()
    } else {
        let look = &look;
        std::thread::scope(|scope| {
            let parts: Vec<_> = todo
                .chunks(todo.len().div_ceil(threads()))
                .map(|part| (part, scope.spawn(move || part.iter().map(look).collect())))
                .collect();
            parts
                .into_iter()
                .flat_map(|(part, found)| {
                    found
                        .join()
                        .unwrap_or_else(|_| part.iter().map(look).collect::<Vec<_>>())
                })
                .collect()
        })
    };
    for (i, found) in todo.into_iter().zip(found) {
        looks[i] = found;
    }
    looks
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
    looks: Vec<Look>,
) -> bool {
    let mut changed = false;
    let mut old = cache.take().into_iter().peekable();
    let mut rows = Vec::with_capacity(names.len());
    for (name, look) in names.iter().zip(looks) {
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
