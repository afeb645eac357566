//! The only code that writes or moves state files.
//!
//! Every write is: temp file in the target's directory, write, fsync, rename over the target,
//! fsync the directory. A crash at any instant leaves the old or the new file, never a torn one.
//! Temp names start with `.` and end in random characters, so they never match a scanned glob
//! (`*.md`, `*.yaml`). A failed fsync is reported as [`IoError::Fsync`], which the daemon treats
//! as fatal (after PostgreSQL's lesson: the kernel may have dropped the dirty pages).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::workspace::failpoint;

/// Mode of state files: readable by the operator's tools, writable by the owner.
const FILE_MODE: u32 = 0o644;

/// `O_NOFOLLOW`: opening a machine-owned file fails (`ELOOP`) when the agent replaced it by a
/// link, closing the gap between [`refuse_links`] and the open.
pub const NO_FOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// An I/O failure that names the file and the action.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{action} {}: {source}", path.display())]
    Path {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// fsync failed: the data may not be durable. Callers must stop rather than carry on.
    #[error("fsync of {} failed: {source} (stopping: the data may not be on disk)", path.display())]
    Fsync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} already exists; refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// A symbolic link where the runtime keeps its own file or folder: writing through it
    /// could reach outside the workspace, so nothing is written.
    #[error("{} is a symbolic link where millrace keeps its own file or folder; refusing to follow it (replace the link with a real file or folder, then run `millrace doctor`)", path.display())]
    Symlink { path: PathBuf },
}

impl IoError {
    /// An I/O error on `path` while doing `action`.
    pub fn path(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        IoError::Path {
            action,
            path: path.into(),
            source,
        }
    }

    /// A failed open of `path`: `ELOOP` from [`NO_FOLLOW`] (or [`open_regular`]'s refusal)
    /// means a link replaced the file.
    pub fn opening(action: &'static str, path: &Path, source: io::Error) -> Self {
        let refused = source.get_ref().is_some_and(|e| e.is::<LinkRefused>());
        if refused || source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            IoError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            IoError::path(action, path, source)
        }
    }

    /// True for the errors the daemon must not survive.
    pub fn is_fatal(&self) -> bool {
        matches!(self, IoError::Fsync { .. })
    }

    /// True for faults of the machine rather than of a file's content or place (a full disk,
    /// a quota, a read-only or failing device): no work item is to blame, so the daemon waits
    /// for the fault to clear instead of spending the item's repair budget.
    pub fn is_environmental(&self) -> bool {
        let IoError::Path { source, .. } = self else {
            return false;
        };
        use rustix::io::Errno;
        let environmental = [
            Errno::NOSPC,
            Errno::DQUOT,
            Errno::IO,
            Errno::ROFS,
            Errno::NOMEM,
            Errno::NFILE,
            Errno::MFILE,
        ];
        // Errors from a temp file carry the path in a wrapper without the OS code, but keep
        // the kind.
        let kind = matches!(
            source.kind(),
            io::ErrorKind::StorageFull
                | io::ErrorKind::QuotaExceeded
                | io::ErrorKind::ReadOnlyFilesystem
                | io::ErrorKind::OutOfMemory
        );
        kind || source
            .raw_os_error()
            .is_some_and(|code| environmental.contains(&Errno::from_raw_os_error(code)))
    }
}

/// Refuse `path` when a component from the runtime folder (`millrace-agents`) down to it is a
/// symbolic link (`include_last`: the path itself too). Anything the agent can write may be a
/// link; following one would let millrace's writes land outside the workspace. Paths outside
/// a runtime folder are not checked.
pub fn refuse_links(path: &Path, include_last: bool) -> Result<(), IoError> {
    let parts: Vec<_> = path.components().collect();
    let Some(start) = parts
        .iter()
        .rposition(|c| c.as_os_str() == super::RUNTIME_DIR)
    else {
        return Ok(());
    };
    let end = if include_last {
        parts.len()
    } else {
        parts.len() - 1
    };
    let mut prefix: PathBuf = parts[..start].iter().collect();
    for part in &parts[start..end.max(start)] {
        prefix.push(part);
        match fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(IoError::Symlink { path: prefix })
            }
            Ok(_) => {}
            // Nothing below a missing folder can be a link yet.
            Err(_) => break,
        }
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The first failed fsync of this process, kept even when a caller swallows the error (a
/// runner turns I/O errors into a stage failure): the daemon checks it at every step and
/// stops, because the kernel may have dropped the dirty pages of any file.
/// fsync an open file; a failure is an [`IoError::Fsync`], which is fatal: it propagates to
/// the daemon's containment point, which stops. Only the engine's thread writes durably, so
/// no fsync failure can hide inside a stage's result.
pub fn fsync_file(file: &File, path: &Path) -> Result<(), IoError> {
    failpoint::hit_io("fsync", path).and_then(|()| {
        file.sync_all().map_err(|source| IoError::Fsync {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// fsync a directory so a rename or create inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<(), IoError> {
    let file = File::open(dir).map_err(|e| IoError::path("open directory", dir, e))?;
    fsync_file(&file, dir)
}

/// Longest name (bytes) an archived file keeps: room is left for a `.N` suffix, the
/// `.error.yaml` reason beside it and the temp file that writes the reason, all within the
/// 255-byte file-name limit.
pub const MAX_ARCHIVE_NAME: usize = 200;

/// The name to archive a file under (quarantine, mailbox `failed/`): `name` itself, or if it is
/// too long its start plus `~` and a hash of the whole name.
pub fn archive_name(name: &str) -> String {
    use sha2::Digest;
    if name.len() <= MAX_ARCHIVE_NAME {
        return name.to_string();
    }
    let mut cut = MAX_ARCHIVE_NAME - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}~{hex}", &name[..cut])
}

/// A temp file beside `path` holding `contents` (fsynced when `durable`), ready to be renamed
/// over it.
fn temp_beside(
    path: &Path,
    contents: &[u8],
    durable: bool,
) -> Result<tempfile::NamedTempFile, IoError> {
    refuse_links(path, true)?;
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .rand_bytes(16)
        .tempfile_in(dir)
        .map_err(|e| IoError::path("create temp file in", dir, e))?;
    failpoint::hit_io("write", path)?;
    tmp.write_all(contents)
        .map_err(|e| IoError::path("write", tmp.path(), e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| IoError::path("set permissions of", tmp.path(), e))?;
    if durable {
        fsync_file(tmp.as_file(), path)?;
        failpoint::hit_io("rename", path)?;
    }
    Ok(tmp)
}

/// How durable a replacing write is when the call returns. Every level is atomic: a reader,
/// or the next process after a crash, sees the old file or the new one, never a torn one.
/// The levels differ only in what a power loss may undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The data and the rename are on disk (fsync of the file, then of its folder).
    Full,
    /// The data is on disk; the rename becomes durable with the next fsync of the same
    /// folder — a later [`Durability::Full`] write there, which a transition always ends
    /// with. Saves one folder fsync per file of a batch.
    Batched,
    /// Not forced to disk: for files the runtime rewrites from durable state at every start
    /// (the status markers), or that the next durable write supersedes (the snapshot at a
    /// stage's start, which only adds the running marker).
    Relaxed,
}

/// Write `contents` to `path` atomically, replacing any existing file, durably.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), IoError> {
    write_atomic_with(path, contents, Durability::Full)
}

/// Write `contents` to `path` atomically, as durable as `durability` says.
pub fn write_atomic_with(
    path: &Path,
    contents: &[u8],
    durability: Durability,
) -> Result<(), IoError> {
    temp_beside(path, contents, durability != Durability::Relaxed)?
        .persist(path)
        .map_err(|e| IoError::path("rename into place", path, e.error))?;
    match durability {
        Durability::Full => fsync_dir(parent_of(path)),
        Durability::Batched | Durability::Relaxed => Ok(()),
    }
}

/// Write a run artifact (prompt, invocation, captured output): temp file and rename, so a
/// reader never sees half a file, but no fsync. Artifacts are evidence, not state: a process
/// crash keeps them (the page cache survives), only a power loss may drop the newest ones,
/// and nothing the runtime decides depends on them. This saves most of a stage's fsyncs.
pub fn write_artifact(path: &Path, contents: &[u8]) -> Result<(), IoError> {
    temp_beside(path, contents, false)?
        .persist(path)
        .map_err(|e| IoError::path("rename into place", path, e.error))?;
    Ok(())
}

/// Write `contents` to `path` only if no file is there yet (no overwrite, still atomic).
pub fn create_atomic(path: &Path, contents: &[u8]) -> Result<(), IoError> {
    create_atomic_with(path, contents, Durability::Full)
}

/// [`create_atomic`] as durable as `durability` says.
pub fn create_atomic_with(
    path: &Path,
    contents: &[u8],
    durability: Durability,
) -> Result<(), IoError> {
    let durable = durability != Durability::Relaxed;
    match temp_beside(path, contents, durable)?.persist_noclobber(path) {
        Ok(_) if durability == Durability::Full => fsync_dir(parent_of(path)),
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Err(IoError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(IoError::path("rename into place", path, e.error)),
    }
}

/// Rename `from` to `to`, refusing to replace an existing `to`, then fsync both directories.
///
/// This is the single primitive behind every queue transition, so a work item is always in
/// exactly one folder.
pub fn move_file(from: &Path, to: &Path) -> Result<(), IoError> {
    // A link being moved is moved as itself; the folders on both sides must be real.
    refuse_links(from, false)?;
    refuse_links(to, true)?;
    failpoint::hit_io("rename", to)?;
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            return Err(IoError::AlreadyExists {
                path: to.to_path_buf(),
            })
        }
        Err(rustix::io::Errno::NOENT) if !from.exists() => {
            return Err(IoError::NotFound {
                path: from.to_path_buf(),
            })
        }
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            // File systems without RENAME_NOREPLACE: hard link (fails if `to` exists), unlink.
            fs::hard_link(from, to).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => IoError::AlreadyExists {
                    path: to.to_path_buf(),
                },
                io::ErrorKind::NotFound => IoError::NotFound {
                    path: from.to_path_buf(),
                },
                _ => IoError::path("link", to, e),
            })?;
            fs::remove_file(from).map_err(|e| IoError::path("unlink", from, e))?;
        }
        Err(errno) => return Err(IoError::path("rename", from, errno.into())),
    }
    fsync_dir(parent_of(to))?;
    let from_dir = parent_of(from);
    if from_dir != parent_of(to) {
        fsync_dir(from_dir)?;
    }
    Ok(())
}

/// Append one line (a `\n` is added) and fsync: the event log and the requeue/quarantine logs.
pub fn append_line(path: &Path, line: &str) -> Result<(), IoError> {
    append_lines(path, &[line], true)
}

/// Append lines with one write, fsynced when `sync` (the fsync also makes every earlier
/// unsynced append to the file durable).
pub fn append_lines(path: &Path, lines: &[&str], sync: bool) -> Result<(), IoError> {
    refuse_links(path, true)?;
    let existed = path.exists();
    // Without blocking: a FIFO put in the log's place would hold the open until a reader
    // came (and is refused below if one did).
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .custom_flags(NO_FOLLOW | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A FIFO without a reader.
            Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => {
                IoError::path("open for append", path, not_regular())
            }
            _ => IoError::opening("open for append", path, e),
        })?;
    ensure_regular(&file).map_err(|e| IoError::path("append to", path, e))?;
    failpoint::hit_io("write", path)?;
    let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        buf.push_str(line);
        buf.push('\n');
    }
    file.write_all(buf.as_bytes())
        .map_err(|e| IoError::path("append to", path, e))?;
    if sync {
        fsync_file(&file, path)?;
    }
    if !existed {
        fsync_dir(parent_of(path))?;
    }
    Ok(())
}

/// Rewrite a file in place through an already open handle, then fsync.
///
/// Only for the daemon lock file: its kernel lock lives on the open inode, so it cannot be
/// replaced by rename. Readers tolerate a half-written lock (it reads as "held, unknown owner").
pub fn rewrite_in_place(file: &mut File, path: &Path, contents: &[u8]) -> Result<(), IoError> {
    use std::io::{Seek, SeekFrom};
    failpoint::hit_io("write", path)?;
    file.set_len(0)
        .map_err(|e| IoError::path("truncate", path, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| IoError::path("seek", path, e))?;
    file.write_all(contents)
        .map_err(|e| IoError::path("write", path, e))?;
    fsync_file(file, path)
}

/// New folders get mode 0755 (never group- or world-writable, whatever the umask).
pub fn create_dir_all(path: &Path) -> Result<(), IoError> {
    use std::os::unix::fs::DirBuilderExt;
    refuse_links(path, true)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| IoError::path("create directory", path, e))
}

/// Open a workspace file for reading, which must be a regular file and not a symbolic link.
/// It is opened without blocking and checked before anything is read: a FIFO or a device put
/// where millrace reads a file (by an agent, say) would otherwise hang the reader or never
/// end, and a link would let an agent make millrace read (and then record, print or hand to
/// the next stage) a file outside the workspace. Every read of a workspace file goes through
/// here; a file a person names (an argument, `--config`) is read with [`open_named`].
pub fn open_regular(path: impl AsRef<Path>) -> io::Result<File> {
    open_checked(path.as_ref(), NO_FOLLOW)
}

/// Open a file a person named for reading (a command's argument, `--config`, a harness's own
/// config at home), following links as any other program would; like [`open_regular`] in all
/// else.
pub fn open_named(path: impl AsRef<Path>) -> io::Result<File> {
    open_checked(path.as_ref(), 0)
}

fn open_checked(path: &Path, flags: i32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                symlink_refused()
            } else {
                e
            }
        })?;
    ensure_regular(&file)?;
    Ok(file)
}

/// A link where millrace reads a workspace file, not followed; [`IoError::opening`] tells it
/// apart from other failures as it tells `ELOOP` from a write's open.
#[derive(Debug, thiserror::Error)]
#[error(
    "a symbolic link; millrace does not follow links in the workspace (replace it with the \
     file itself)"
)]
struct LinkRefused;

fn symlink_refused() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, LinkRefused)
}

/// Refuse an opened "file" that is a FIFO, a device or a folder (opened without blocking, so
/// a FIFO put where millrace keeps a file cannot hold the open).
pub fn ensure_regular(file: &File) -> io::Result<()> {
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(not_regular())
    }
}

/// Why a FIFO, a device or a folder where millrace keeps a file is refused.
fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, a device or a folder); move it aside",
    )
}

/// Read a whole workspace file (see [`open_regular`]).
pub fn read_regular(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    read_all(open_regular(path)?)
}

/// Read a whole file a person named (see [`open_named`]).
pub fn read_named(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    read_all(open_named(path)?)
}

fn read_all(mut file: File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Read `rel`, a file the config names inside `root` (the project), as a regular file
/// reached without any symbolic link and without leaving `root`: an agent that can write
/// the project must not be able to point millrace at a file outside it.
pub fn read_beneath(root: &Path, rel: &Path) -> io::Result<Vec<u8>> {
    let file = open_beneath(root, rel)?;
    ensure_regular(&file)?;
    read_all(file)
}

/// Why a file reached through a link, or outside the project, is not read.
fn link_on_the_way() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a symbolic link is on the way to it, or it is outside the project; it is read only \
         as a real file inside the project",
    )
}

/// [`read_beneath`]'s open: one `openat2` that the kernel confines, where there is one.
#[cfg(target_os = "linux")]
fn open_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(File::from(fd)),
        // Kernels before 5.6.
        Err(Errno::NOSYS) => open_beneath_by_walk(root, rel),
        Err(Errno::LOOP | Errno::XDEV) => Err(link_on_the_way()),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    open_beneath_by_walk(root, rel)
}

/// [`read_beneath`]'s open without `openat2`: each component checked, the last opened
/// without following a link.
fn open_beneath_by_walk(root: &Path, rel: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Component;
    let mut at = root.to_path_buf();
    for component in rel.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(name) => {
                at.push(name);
                if at.symlink_metadata()?.is_symlink() {
                    return Err(link_on_the_way());
                }
            }
            _ => return Err(link_on_the_way()),
        }
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(NO_FOLLOW | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&at)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_string(path: impl AsRef<Path>) -> io::Result<String> {
    utf8(read_regular(path)?)
}

/// [`read_named`] as UTF-8 text.
pub fn read_named_string(path: impl AsRef<Path>) -> io::Result<String> {
    utf8(read_named(path)?)
}

fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not valid UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Read a file to a string, naming the file on failure.
pub fn read_to_string(path: &Path) -> Result<String, IoError> {
    read_regular_string(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            IoError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            IoError::path("read", path, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("state.yaml");
        write_atomic(&target, b"one\n").unwrap();
        write_atomic(&target, b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "two\n");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left behind");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
    }

    #[test]
    fn create_atomic_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.md");
        create_atomic(&target, b"first").unwrap();
        let err = create_atomic(&target, b"second").unwrap_err();
        assert!(matches!(err, IoError::AlreadyExists { .. }));
        assert_eq!(fs::read_to_string(&target).unwrap(), "first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn move_file_refuses_to_replace_and_reports_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.md");
        let b = dir.path().join("b.md");
        fs::write(&a, "a").unwrap();
        fs::write(&b, "b").unwrap();
        assert!(matches!(
            move_file(&a, &b).unwrap_err(),
            IoError::AlreadyExists { .. }
        ));
        assert_eq!(fs::read_to_string(&b).unwrap(), "b");
        let c = dir.path().join("c.md");
        move_file(&a, &c).unwrap();
        assert!(!a.exists());
        assert!(matches!(
            move_file(&a, &c).unwrap_err(),
            IoError::NotFound { .. }
        ));
    }

    #[test]
    fn append_line_appends_with_newline() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        append_line(&log, "{\"a\":1}").unwrap();
        append_line(&log, "{\"a\":2}").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
    }
}
