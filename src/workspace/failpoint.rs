//! Named failpoints for the crash suite.
//!
//! Compiled to nothing unless the `failpoints` feature is on. With it, `MILLRACE_FAILPOINTS`
//! holds `name=action@N` entries separated by `,` where action is `abort`, `eio` or `enospc`
//! and N is the hit (1-based) at which it fires. I/O failpoints are keyed as
//! `<op>:<file name>` (e.g. `rename:runtime_snapshot.yaml`) or `<op>:*` for any file;
//! transition failpoints use their own names (e.g. `claim.after_move`).
//!
//! With `MILLRACE_FAILPOINT_COUNT=<file>`, every hit of every point (armed or not) is counted
//! and the counts are rewritten to that file after each hit, one `name count` line per point
//! in name order, so a clean run tells the crash suite how many hits each point has.

use std::io;
use std::path::Path;

use crate::workspace::atomic::IoError;

#[cfg(feature = "failpoints")]
mod active {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, OnceLock};

    pub enum Action {
        Abort,
        Errno(i32),
        /// Hold the process at the point until the file exists (`wait:<path>`), creating
        /// `<path>.reached` first: a test orders two processes without sleeping.
        Wait(std::path::PathBuf),
    }

    struct Point {
        action: Action,
        at: u64,
        hits: u64,
    }

    fn table() -> &'static Mutex<HashMap<String, Point>> {
        static TABLE: OnceLock<Mutex<HashMap<String, Point>>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut map = HashMap::new();
            let spec = std::env::var("MILLRACE_FAILPOINTS").unwrap_or_default();
            for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
                let Some((name, rest)) = entry.trim().split_once('=') else {
                    continue;
                };
                let (action, at) = rest.split_once('@').unwrap_or((rest, "1"));
                let action = match action {
                    _ if action.starts_with("wait:") => {
                        Action::Wait(std::path::PathBuf::from(&action["wait:".len()..]))
                    }
                    "abort" => Action::Abort,
                    "eio" => Action::Errno(5),
                    "enospc" => Action::Errno(28),
                    _ => continue,
                };
                let at = at.parse().unwrap_or(1);
                map.insert(
                    name.to_string(),
                    Point {
                        action,
                        at,
                        hits: 0,
                    },
                );
            }
            Mutex::new(map)
        })
    }

    fn counts() -> &'static Mutex<BTreeMap<String, u64>> {
        static COUNTS: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
        COUNTS.get_or_init(|| Mutex::new(BTreeMap::new()))
    }

    /// Record the hits in the `MILLRACE_FAILPOINT_COUNT` file, when one is asked for.
    fn record(names: &[&str]) {
        let Some(path) = std::env::var_os("MILLRACE_FAILPOINT_COUNT") else {
            return;
        };
        let mut counts = counts().lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            *counts.entry((*name).to_string()).or_default() += 1;
        }
        let text: String = counts
            .iter()
            .map(|(name, n)| format!("{name} {n}\n"))
            .collect();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!(
                "failpoint counts: cannot write {}: {e}",
                path.to_string_lossy()
            );
        }
    }

    /// Count a hit; returns the errno to fail with, aborting the process for `abort`.
    pub fn hit(names: &[&str]) -> Option<i32> {
        record(names);
        let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if let Some(point) = table.get_mut(*name) {
                point.hits += 1;
                if point.hits == point.at {
                    match point.action {
                        Action::Abort => {
                            eprintln!("failpoint {name}: abort");
                            std::process::abort();
                        }
                        Action::Errno(code) => return Some(code),
                        Action::Wait(ref path) => {
                            let path = path.clone();
                            drop(table);
                            let mut reached = path.clone().into_os_string();
                            reached.push(".reached");
                            let _ = std::fs::write(&reached, b"");
                            while !path.exists() {
                                std::thread::sleep(std::time::Duration::from_millis(5));
                            }
                            return None;
                        }
                    }
                }
            }
        }
        None
    }
}

/// A transition failpoint: may abort the process, or fail with an injected I/O error.
#[allow(unused_variables)]
pub fn hit(name: &str) -> Result<(), io::Error> {
    #[cfg(feature = "failpoints")]
    if let Some(code) = active::hit(&[name]) {
        return Err(io::Error::from_raw_os_error(code));
    }
    Ok(())
}

/// A transition failpoint whose injected error names it, for `?` in state-changing code.
pub fn transition(name: &'static str) -> Result<(), IoError> {
    hit(name).map_err(|e| IoError::path("failpoint", name, e))
}

/// An I/O failpoint on operation `op` of file `path`.
#[allow(unused_variables)]
pub(crate) fn hit_io(op: &str, path: &Path) -> Result<(), IoError> {
    #[cfg(feature = "failpoints")]
    {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exact = format!("{op}:{file}");
        let any = format!("{op}:*");
        if let Some(code) = active::hit(&[exact.as_str(), any.as_str()]) {
            let source = io::Error::from_raw_os_error(code);
            return Err(if op == "fsync" {
                IoError::Fsync {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                IoError::path("injected failure on", path, source)
            });
        }
    }
    Ok(())
}
