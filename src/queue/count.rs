//! How many items a finished folder holds, without listing 100 000 names on every `status`
//! and `queue ls`: cached in `state/cache/<kind>-<folder>.count` with the folder's stamp
//! (see [`crate::workspace::stamp`] for when a stamp may be trusted). Derived: a missing,
//! stale or unreadable cache is rebuilt from the listing.

use std::path::Path;

use crate::workspace::stamp::{self, DirStamp};

/// First word of a count file; anything else is ignored.
const HEADER: &str = "millrace-count-v1";

/// The number of `*.md` documents in `dir`, from the cache at `cache` when it is current.
pub fn cached(dir: &Path, cache: &Path) -> usize {
    let Some(stamp) = DirStamp::of(dir) else {
        return 0;
    };
    if let Some(count) = read(cache, stamp) {
        return count;
    }
    let count = super::scan::count_md(dir);
    // Cache only a settled listing, and only if the folder did not change while it was read.
    if stamp.settled() && DirStamp::of(dir) == Some(stamp) {
        stamp::save_derived(cache, &stamp.header(HEADER, count));
    }
    count
}

fn read(cache: &Path, stamp: DirStamp) -> Option<usize> {
    let text = crate::workspace::atomic::read_regular_string(cache).ok()?;
    stamp.matching(text.trim(), HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn age(dir: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(dir).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn a_settled_count_is_cached_and_a_change_or_a_deleted_cache_recounts() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("done");
        std::fs::create_dir(&dir).unwrap();
        let cache = root.path().join("task-done.count");
        for i in 0..3 {
            std::fs::write(dir.join(format!("t{i}.md")), "x").unwrap();
        }
        // Just changed: counted, not cached (a change in the same tick could hide).
        assert_eq!(cached(&dir, &cache), 3);
        assert!(!cache.exists());
        age(&dir);
        assert_eq!(cached(&dir, &cache), 3);
        assert!(cache.exists());
        // The cache is what answers while the stamp matches...
        let stamp = DirStamp::of(&dir).unwrap();
        let forged = stamp.header(HEADER, 99);
        std::fs::write(&cache, forged).unwrap();
        assert_eq!(cached(&dir, &cache), 99);
        // ...and a new file changes the stamp, so it is recounted.
        std::fs::write(dir.join("t9.md"), "x").unwrap();
        assert_eq!(cached(&dir, &cache), 4);
        age(&dir);
        std::fs::remove_file(&cache).unwrap();
        assert_eq!(cached(&dir, &cache), 4);
        std::fs::write(&cache, "garbage").unwrap();
        assert_eq!(cached(&dir, &cache), 4);
    }
}
