//! Gzip for what retention keeps but no longer reads often: rolled event-log segments and the
//! artifacts of old runs.
//!
//! Gzip rather than zstd: these files are read by people and their tools (`zcat`, `zless`,
//! `zgrep` are everywhere), and for text logs the ratio difference is small next to that.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::atomic::{self, Durability, IoError};

/// The suffix a compressed file gets.
pub const SUFFIX: &str = ".gz";

/// `path` with `.gz` appended.
pub fn gz_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// Replace `path` by `path.gz`, keeping its modification time (age-based retention and
/// `runs ls`'s order read it). The `.gz` is written by the atomic helper before the plain file
/// is removed, so a crash leaves the plain file, or both with the `.gz` complete — never a
/// torn `.gz` and never neither. Returns the bytes saved.
pub fn compress_file(path: &Path, durability: Durability) -> Result<u64, IoError> {
    let file = super::atomic::open_regular(path).map_err(|e| IoError::opening("read", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| IoError::path("stat", path, e))?;
    let modified = meta
        .modified()
        .map_err(|e| IoError::path("stat", path, e))?;
    // Streamed: only the compressed bytes are held (a first roll may meet a 1 GB log).
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::copy(&mut std::io::BufReader::new(file), &mut encoder)
        .map_err(|e| IoError::path("compress", path, e))?;
    let packed = encoder
        .finish()
        .map_err(|e| IoError::path("compress", path, e))?;
    let gz = gz_path(path);
    atomic::write_atomic_with(&gz, &packed, durability)?;
    std::fs::File::options()
        .write(true)
        .open(&gz)
        .and_then(|f| f.set_modified(modified))
        .map_err(|e| IoError::path("set the modification time of", &gz, e))?;
    std::fs::remove_file(path).map_err(|e| IoError::path("remove", path, e))?;
    Ok(meta.len().saturating_sub(packed.len() as u64))
}

/// The contents of a gzip file.
pub fn decompress(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = super::atomic::open_regular(path)?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut out)?;
    Ok(out)
}

/// Read a file that retention may have compressed: `path` itself when it is there (a crash
/// mid-compression leaves it complete), else `path.gz`.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    match crate::workspace::atomic::read_regular(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => decompress(&gz_path(path)),
        other => other,
    }
}

/// Whether `path` or its compressed form exists.
pub fn exists(path: &Path) -> bool {
    path.exists() || gz_path(path).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_file_reads_back_and_keeps_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runner_stdout.r1.txt");
        let text = "line\n".repeat(1000);
        std::fs::write(&path, &text).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let saved = compress_file(&path, Durability::Batched).unwrap();
        assert!(saved > 4000, "saved {saved}");
        assert!(!path.exists());
        assert_eq!(read(&path).unwrap(), text.as_bytes());
        let modified = std::fs::metadata(gz_path(&path))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(modified, old);
        assert!(exists(&path));
    }

    #[test]
    fn a_plain_file_left_beside_its_gz_is_the_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "new").unwrap();
        std::fs::write(gz_path(&path), "not gzip").unwrap();
        assert_eq!(read(&path).unwrap(), b"new");
    }
}
