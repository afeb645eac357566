//! Folder stamps for derived listings of folders that only grow (`done/`, `runs/`).
//!
//! Adding or removing an entry changes a folder's modification time, so a count or listing
//! cached with the folder's stamp (inode, mtime in ns) is current while the stamp matches.
//! Editing a file in place does not change the folder's stamp, but it does not change a count
//! or the set of names either. One trap remains: file times advance in coarse ticks, so a
//! change in the same tick as the listing would leave the stamp equal. A listing is therefore
//! cached only when the folder's last change is older than [`SETTLE`] (git's "racy clean"
//! rule); until then every reader lists the folder again.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long after its last change a folder's stamp may be trusted.
pub const SETTLE: Duration = Duration::from_secs(2);

/// A folder's identity and last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub ino: u64,
    pub mtime_ns: i128,
}

impl DirStamp {
    /// The stamp of `dir` now (`None` when it cannot be read).
    pub fn of(dir: &Path) -> Option<DirStamp> {
        let meta = std::fs::metadata(dir).ok()?;
        Some(DirStamp {
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }

    /// Whether a listing taken under this stamp may be cached: the last change is old enough
    /// that no later change can share its timestamp.
    pub fn settled(&self) -> bool {
        self.older_than(SETTLE)
    }

    /// Whether the folder's last change is more than `age` ago.
    pub fn older_than(&self, age: Duration) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        now - self.mtime_ns > age.as_nanos() as i128
    }

    /// The first line of a derived file: `<tag> <ino> <mtime_ns> <n>` (a count, a total).
    pub fn header(&self, tag: &str, n: usize) -> String {
        format!("{tag} {} {} {n}\n", self.ino, self.mtime_ns)
    }

    /// The `n` of a [`DirStamp::header`] line with `tag`, when it was written under this stamp
    /// (`None`: another tag, another stamp, or not such a line).
    pub fn matching(&self, line: &str, tag: &str) -> Option<usize> {
        let mut parts = line.strip_prefix(tag)?.split_whitespace();
        let ino: u64 = parts.next()?.parse().ok()?;
        let mtime_ns: i128 = parts.next()?.parse().ok()?;
        let n = parts.next()?.parse().ok()?;
        (parts.next().is_none() && (ino, mtime_ns) == (self.ino, self.mtime_ns)).then_some(n)
    }
}

/// Write a derived file (a cached count or listing) without fsync, creating `state/cache/`
/// when a fresh clone lacks it. Best effort: a workspace that cannot be written (read-only,
/// full) still answers; it only counts or lists every time.
pub fn save_derived(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        let _ = super::atomic::create_dir_all(dir);
    }
    let _ =
        super::atomic::write_atomic_with(path, text.as_bytes(), super::atomic::Durability::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_changes_when_an_entry_is_added_and_settles_only_later() {
        let dir = tempfile::tempdir().unwrap();
        let before = DirStamp::of(dir.path()).unwrap();
        assert!(!before.settled(), "just created");
        let old = SystemTime::now() - Duration::from_secs(10);
        std::fs::File::open(dir.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let aged = DirStamp::of(dir.path()).unwrap();
        assert!(aged.settled());
        std::fs::write(dir.path().join("a.md"), "x").unwrap();
        let after = DirStamp::of(dir.path()).unwrap();
        assert_ne!(aged, after);
        let line = after.header("tag", 7);
        assert_eq!(after.matching(line.trim_end(), "tag"), Some(7));
        assert_eq!(aged.matching(line.trim_end(), "tag"), None);
        assert_eq!(after.matching(line.trim_end(), "other"), None);
    }
}
