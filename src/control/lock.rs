//! `state/runtime_daemon.lock.yaml`: a kernel lock (`flock`) with the owner's metadata inside.
//!
//! The lock is free as soon as its owner dies, even by SIGKILL, so a crashed daemon never
//! blocks the next start. The file is never deleted to release the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::workspace::atomic::{self, IoError};
use crate::workspace::Workspace;

fn schema_v1() -> String {
    crate::state::SCHEMA_VERSION.into()
}

/// Metadata written into the lock file by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Absent in files written before it was added; they are schema 1.0.
    #[serde(default = "schema_v1")]
    pub schema_version: String,
    pub workspace_root: String,
    pub owner_pid: u32,
    pub owner_hostname: String,
    pub owner_session_id: String,
    pub acquired_at: String,
    pub version: String,
    pub mode: String,
    /// Set by an owner that shut down cleanly; absent when it died holding the lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    /// The I/O fault (a full disk, say) the owner is waiting out. Kept here because this
    /// file is rewritten in place: it needs no new space when every other write fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// What a look at the lock file finds.
#[derive(Debug, Clone, PartialEq)]
pub enum LockState {
    /// No lock file.
    Absent,
    /// A file whose owner is gone (kernel lock free); `info` is the last owner, if readable.
    Free(Option<LockInfo>),
    /// A live owner holds it; `info` may be unreadable while the owner is writing it.
    Held(Option<LockInfo>),
}

/// Another live process owns the workspace.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("workspace is owned by pid {pid} on {host} since {since}")]
    Held {
        pid: String,
        host: String,
        since: String,
        /// What holds it: `daemon`, `once`, or `control` (a command applied directly, which
        /// lets go within moments).
        mode: String,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// A held lock; dropping it (or the process dying) releases the kernel lock.
#[derive(Debug)]
pub struct DaemonLock {
    file: File,
    pub info: LockInfo,
    /// The previous owner's metadata when this start took over from a dead daemon.
    pub previous: Option<LockInfo>,
}

fn read_info(path: &Path) -> Option<LockInfo> {
    let text = atomic::read_regular_string(path).ok()?;
    crate::yaml::from_str(path, &text).ok()
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_str()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or("unknown-host")
        .to_string()
}

/// The lock file is opened without following a link and without blocking: a read-only
/// open of a FIFO put in its place would wait for a writer (`status` hung).
const LOCK_FILE_FLAGS: i32 = atomic::NO_FOLLOW | rustix::fs::OFlags::NONBLOCK.bits() as i32;

/// Inspect without taking the lock (the probe releases at once).
pub fn inspect(ws: &Workspace) -> Result<LockState, IoError> {
    let path = ws.lock_path();
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(LOCK_FILE_FLAGS)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Absent),
        Err(e) => return Err(IoError::opening("open", &path, e)),
    };
    atomic::ensure_regular(&file).map_err(|e| IoError::path("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(LockState::Free(read_info(&path))),
        Err(TryLockError::WouldBlock) => Ok(LockState::Held(read_info(&path))),
        Err(TryLockError::Error(e)) => Err(IoError::path("lock", &path, e)),
    }
}

/// Whether a live daemon owns the workspace. The probe never creates the lock file.
pub fn daemon_running(ws: &Workspace) -> bool {
    matches!(inspect(ws), Ok(LockState::Held(_)))
}

impl DaemonLock {
    /// Whether the previous owner died holding the lock (it never marked a clean release).
    pub fn took_over(&self) -> Option<&LockInfo> {
        self.previous
            .as_ref()
            .filter(|p| p.released_at.is_none() && p.owner_pid != self.info.owner_pid)
    }

    /// Whether the file at `path` is still the inode this lock holds. It is not after the
    /// file (or `state/`) was deleted or replaced, say by `git clean -X` or an agent: a second
    /// daemon could then lock a new file at the same path.
    pub fn is_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
            _ => false,
        }
    }

    /// Lock the file now at the lock path (creating it) with this owner's metadata, after
    /// [`DaemonLock::is_at`] found the old one gone; fails as [`acquire`] does when another
    /// live process has locked the new file.
    pub fn reestablish(&mut self, ws: &Workspace) -> Result<(), LockError> {
        let fresh = acquire(ws, &self.info.mode)?;
        self.file = fresh.file;
        let path = ws.lock_path();
        atomic::rewrite_in_place(
            &mut self.file,
            &path,
            crate::yaml::to_string(&self.info).as_bytes(),
        )?;
        Ok(())
    }

    /// Record (or clear, with `None`) the fault the owner is waiting out, for `status`.
    pub fn set_fault(&mut self, path: &Path, fault: Option<String>) -> Result<(), IoError> {
        if self.info.fault == fault {
            return Ok(());
        }
        self.info.fault = fault;
        atomic::rewrite_in_place(
            &mut self.file,
            path,
            crate::yaml::to_string(&self.info).as_bytes(),
        )
    }

    /// Mark a clean shutdown in the lock file, then let go of the kernel lock.
    /// Let go after a short hold (a control command applied directly): when the previous
    /// owner died holding the lock, its record is put back as it was, so the next daemon
    /// still sees the crash and recovers from it (kills its orphaned harness); otherwise
    /// this is [`DaemonLock::release`].
    pub fn release_keeping_crash(&mut self, path: &Path) -> Result<(), IoError> {
        match self.took_over().cloned() {
            Some(previous) => atomic::rewrite_in_place(
                &mut self.file,
                path,
                crate::yaml::to_string(&previous).as_bytes(),
            ),
            None => self.release(path),
        }
    }

    pub fn release(&mut self, path: &Path) -> Result<(), IoError> {
        self.info.released_at = Some(crate::time::now_string());
        atomic::rewrite_in_place(
            &mut self.file,
            path,
            crate::yaml::to_string(&self.info).as_bytes(),
        )
    }
}

/// Take the workspace lock like [`acquire`], waiting (bounded) while a control command
/// applied directly holds it: such a holder lets go within moments, and a daemon or another
/// command starting at that instant should not fail for it. `busy` is told once.
pub fn acquire_waiting(
    ws: &Workspace,
    mode: &str,
    busy: &mut dyn FnMut(&LockError),
) -> Result<DaemonLock, LockError> {
    let deadline = std::time::Instant::now() + CONTROL_HOLD_LIMIT;
    let mut told = false;
    loop {
        match acquire(ws, mode) {
            Err(err @ LockError::Held { .. })
                if matches!(&err, LockError::Held { mode, .. } if mode == "control")
                    && std::time::Instant::now() < deadline =>
            {
                if !told {
                    busy(&err);
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The longest a directly applied control command is waited for.
const CONTROL_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Take the workspace lock, or fail at once naming the owner.
pub fn acquire(ws: &Workspace, mode: &str) -> Result<DaemonLock, LockError> {
    let path = ws.lock_path();
    atomic::refuse_links(&path, true)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(LOCK_FILE_FLAGS)
        .open(&path)
        .map_err(|e| IoError::opening("open", &path, e))?;
    atomic::ensure_regular(&file).map_err(|e| IoError::path("open", &path, e))?;
    // A read-only command probing the lock holds it for microseconds; retry briefly so a
    // daemon starting at that instant does not fail for nothing.
    let mut attempt = 0;
    let locked = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let info = read_info(&path);
            return Err(LockError::Held {
                pid: info
                    .as_ref()
                    .map(|i| i.owner_pid.to_string())
                    .unwrap_or_else(|| "?".into()),
                host: info
                    .as_ref()
                    .map(|i| i.owner_hostname.clone())
                    .unwrap_or_else(|| "unknown-host".into()),
                since: info
                    .as_ref()
                    .map(|i| i.acquired_at.clone())
                    .unwrap_or_else(|| "an unknown time".into()),
                mode: info.map(|i| i.mode).unwrap_or_default(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(IoError::path("lock", &path, e).into()),
    }
    let previous = read_info(&path);
    let info = LockInfo {
        schema_version: crate::state::SCHEMA_VERSION.into(),
        workspace_root: ws.root().display().to_string(),
        owner_pid: std::process::id(),
        owner_hostname: hostname(),
        owner_session_id: crate::time::hex32(),
        acquired_at: crate::time::now_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        mode: mode.to_string(),
        released_at: None,
        fault: None,
    };
    atomic::rewrite_in_place(&mut file, &path, crate::yaml::to_string(&info).as_bytes())?;
    Ok(DaemonLock {
        file,
        info,
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_and_names_the_owner_then_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let first = acquire(&ws, "daemon").unwrap();
        assert!(matches!(inspect(&ws).unwrap(), LockState::Held(Some(_))));
        let err = acquire(&ws, "daemon").unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        assert!(matches!(inspect(&ws).unwrap(), LockState::Free(Some(_))));
        let second = acquire(&ws, "daemon").unwrap();
        assert!(second.previous.is_some());
    }
}
