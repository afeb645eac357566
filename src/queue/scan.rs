//! Folder listing: regular `*.md` files only, in file-name order.

use std::path::{Path, PathBuf};

fn is_md_name(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.ends_with(".md") && !name.starts_with('.') && name.len() > 3
}

/// Names of the regular (not symlinked) `*.md` files directly in `dir`, unsorted.
fn md_names(dir: &Path) -> Vec<std::ffi::OsString> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name())
        .filter(|n| is_md_name(n))
        .collect()
}

/// Regular (not symlinked) `*.md` files directly in `dir`, sorted by name.
///
/// Sorted by file name bytes, not by `Path` (whose component-wise comparison dominated
/// `status` at 10 000 files); within one directory the two orders are the same.
pub fn md_files(dir: &Path) -> Vec<PathBuf> {
    let mut names = md_names(dir);
    names.sort_unstable();
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// How many regular `*.md` files are directly in `dir` (no sorting, no paths built).
pub fn count_md(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter(|e| is_md_name(&e.file_name()))
        .count()
}

/// Whether `path` is a regular (not symlinked) `*.md` file, as `md_files` would list it.
pub fn is_md_file(path: &Path) -> bool {
    path.file_name().is_some_and(is_md_name)
        && std::fs::symlink_metadata(path)
            .map(|m| m.is_file())
            .unwrap_or(false)
}

/// What a directory entry is, as far as a listing cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    Symlink,
    Other,
}

/// Call `each` with the name and kind of every entry of `dir` (none when it cannot be read).
///
/// On Linux through `getdents64` into one buffer: no allocation per entry, where the
/// standard library's iterator makes two (10 000 queued files are listed on every cold
/// claim).
#[cfg(target_os = "linux")]
fn each_entry(dir: &Path, mut each: impl FnMut(&[u8], EntryKind)) {
    use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, RawDir, CWD};
    let Ok(fd) = openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut entries = RawDir::new(&fd, buf.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else {
            return;
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let file_type = match entry.file_type() {
            // Some file systems do not fill in the type: ask the inode.
            FileType::Unknown => statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode)),
            known => known,
        };
        let kind = match file_type {
            FileType::RegularFile => EntryKind::File,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        each(name, kind);
    }
}

#[cfg(not(target_os = "linux"))]
fn each_entry(dir: &Path, mut each: impl FnMut(&[u8], EntryKind)) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.filter_map(|e| e.ok()) {
        let kind = match entry.file_type() {
            Ok(t) if t.is_file() => EntryKind::File,
            Ok(t) if t.is_symlink() => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        each(entry.file_name().as_bytes(), kind);
    }
}

/// One pass over `dir`: the names of its regular `*.md` files, sorted, and the `*.md`
/// entries that cannot be taken, each with the reason: symbolic links (never followed, so
/// never read as documents) and names that are not UTF-8 (no id can match them).
pub fn md_listing(dir: &Path) -> (Vec<String>, Vec<(PathBuf, &'static str)>) {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    let mut refused = Vec::new();
    let path_of = |name: &[u8]| dir.join(std::ffi::OsStr::from_bytes(name));
    each_entry(dir, |name, kind| {
        let md = name.ends_with(b".md");
        if kind == EntryKind::File && md && !name.starts_with(b".") && name.len() > 3 {
            match std::str::from_utf8(name) {
                Ok(name) => names.push(name.to_string()),
                Err(_) => refused.push((
                    path_of(name),
                    "the file name is not valid UTF-8; rename it to <id>.md",
                )),
            }
        } else if kind == EntryKind::Symlink && md {
            refused.push((
                path_of(name),
                "symlinks are not followed in queue folders; move or copy the file in",
            ));
        }
    });
    sort_unique_names(&mut names);
    refused.sort();
    (names, refused)
}

/// Sort file names by their bytes, each once: a folder read while a file is renamed over
/// another may return a name twice on some file systems, and a look pairs each listed name
/// with one cached row. What is sorted is (first eight bytes as one integer, place) pairs,
/// and the names are moved into that order after: most comparisons then touch neither
/// string. Comparing the strings chased two pointers each time, about 1 ms of a cold claim's
/// listing at 10 000 names (which come in hash order, not name order).
fn sort_unique_names(names: &mut Vec<String>) {
    fn head(name: &str) -> u64 {
        let mut bytes = [0u8; 8];
        let n = name.len().min(8);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        // Names hold no NUL byte, so padding with zeros keeps shorter names first.
        u64::from_be_bytes(bytes)
    }
    let mut keyed: Vec<(u64, usize)> = names.iter().map(|n| head(n)).zip(0..).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| names[a.1].cmp(&names[b.1])));
    let mut unsorted = std::mem::take(names);
    names.extend(
        keyed
            .into_iter()
            .map(|(_, at)| std::mem::take(&mut unsorted[at])),
    );
    names.dedup();
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Everything before the final `.md`.
pub fn stem(path: &Path) -> String {
    let name = file_name(path);
    name.strip_suffix(".md").unwrap_or(&name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_their_bytes_each_once() {
        let mut names: Vec<String> = [
            "t-000010.md",
            "t-00001.md",
            "a.md",
            "ab.md",
            "a-b.md",
            "t-000010a.md",
            "z.md",
            "é.md",
            "t-0000099.md",
            "T.md",
        ]
        .map(String::from)
        .to_vec();
        names.extend(["a.md", "t-000010.md", "a.md"].map(String::from));
        let mut plain = names.clone();
        plain.sort();
        plain.dedup();
        sort_unique_names(&mut names);
        assert_eq!(names, plain);
    }
}
