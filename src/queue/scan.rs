//! Folder listing: regular `*.md` files only, in file-name order.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies a file's content for the parse cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    mtime: SystemTime,
    len: u64,
    ino: u64,
}

impl FileKey {
    pub fn of(path: &Path) -> Option<FileKey> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(FileKey {
            mtime: meta.modified().ok()?,
            len: meta.len(),
            ino: meta.ino(),
        })
    }
}

/// Regular (not symlinked) `*.md` files directly in `dir`, sorted by name.
pub fn md_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            let name = file_name(p);
            name.ends_with(".md") && !name.starts_with('.') && name.len() > 3
        })
        .collect();
    out.sort();
    out
}

/// Symbolic links named `*.md` directly in `dir`: never followed, so never read as documents.
pub fn md_symlinks(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_symlink()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| file_name(p).ends_with(".md"))
        .collect();
    out.sort();
    out
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
