//! Read-only views of a workspace for operators: stage runs, open closure targets, the
//! daemon's lock and the `doctor` checks. Nothing in this module writes a file.

pub mod closure;
pub mod doctor;
pub mod lint;
pub mod runs;
pub mod usage;

use serde::Serialize;

use crate::control::lock::{self, LockInfo, LockState};
use crate::workspace::Workspace;

/// Who owns the workspace, from the lock file (a kernel lock: a dead owner holds nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaemonView {
    pub running: bool,
    pub lock_file_present: bool,
    /// The live owner, or the last one when the lock is free.
    pub owner_pid: Option<u32>,
    pub owner_hostname: Option<String>,
    pub since: Option<String>,
    pub mode: Option<String>,
    /// The I/O fault a running daemon is waiting out (a full disk, say), if any.
    pub fault: Option<String>,
    /// When the last owner let go cleanly; absent after a crash.
    pub released_at: Option<String>,
}

impl DaemonView {
    /// `running (pid 1 on host since ...)` or `not running`.
    pub fn describe(&self) -> String {
        if !self.running {
            return "not running".into();
        }
        match (self.owner_pid, &self.owner_hostname, &self.since) {
            (Some(pid), Some(host), Some(since)) => match &self.fault {
                Some(fault) => format!(
                    "running (pid {pid} on {host} since {since}); waiting out an I/O fault, \
                     the active item stays active: {fault}"
                ),
                None => format!("running (pid {pid} on {host} since {since})"),
            },
            _ => "running".into(),
        }
    }
}

/// Look at the lock without taking it.
pub fn daemon(ws: &Workspace) -> DaemonView {
    let (running, present, info): (bool, bool, Option<LockInfo>) = match lock::inspect(ws) {
        Ok(LockState::Absent) | Err(_) => (false, false, None),
        Ok(LockState::Free(info)) => (false, true, info),
        Ok(LockState::Held(info)) => (true, true, info),
    };
    DaemonView {
        running,
        lock_file_present: present,
        owner_pid: info.as_ref().map(|i| i.owner_pid),
        owner_hostname: info.as_ref().map(|i| i.owner_hostname.clone()),
        since: info.as_ref().map(|i| i.acquired_at.clone()),
        fault: info
            .as_ref()
            .and_then(|i| i.fault.clone())
            .filter(|_| running),
        released_at: info.as_ref().and_then(|i| i.released_at.clone()),
        mode: info.map(|i| i.mode),
    }
}
