//! Waking the daemon: file events, signals and stage completion on one channel.
//!
//! File events are only hints (they can be lost or overflow): every wake makes the engine
//! rescan its folders, so the folders stay the source of truth. When inotify cannot be used
//! the daemon polls at `watchers.poll_interval_ms` instead, and says how to fix the limit.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{Event, RecursiveMode, Watcher};

use crate::config::Config;
use crate::state::snapshot::WatcherMode;
use crate::workspace::Workspace;

/// Why the daemon woke up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Something changed in a watched folder.
    Files,
    /// The config file changed.
    Config,
    /// SIGINT or SIGTERM.
    Signal(&'static str),
    /// The stage running on the worker thread finished.
    StageDone,
}

/// What file events said changed since the last look.
struct Touched {
    paths: HashSet<PathBuf>,
    /// Events may have been missed (overflow, watcher error, a scheduled check): the next
    /// look must check every file.
    lost: bool,
}

/// The most paths remembered between two looks before falling back to a full check.
const TOUCHED_LIMIT: usize = 50_000;

/// The daemon's single wait point.
pub struct Waker {
    tx: Sender<Wake>,
    rx: Receiver<Wake>,
    watcher: Option<notify::RecommendedWatcher>,
    mode: WatcherMode,
    poll_interval: Duration,
    complete: Arc<Mutex<HashSet<PathBuf>>>,
    /// Paths file events named since the last [`Waker::take_touched`].
    touched: Arc<Mutex<Touched>>,
    /// Why the watcher fell back to polling, to show the operator.
    pub fallback_reason: Option<String>,
}

fn watched_dirs(ws: &Workspace) -> Vec<PathBuf> {
    use crate::model::WorkItemKind::*;
    use crate::workspace::Folder;
    vec![
        ws.ideas_inbox(),
        ws.folder(Task, Folder::Queue),
        ws.folder(Spec, Folder::Queue),
        ws.folder(Incident, Folder::Queue),
        ws.mailbox_dir("incoming"),
        ws.rt().to_path_buf(),
    ]
}

/// Paths that arrived whole: renamed in, or closed after writing.
fn arrived_complete(event: &Event) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    matches!(
        event.kind,
        notify::EventKind::Modify(ModifyKind::Name(RenameMode::To))
            | notify::EventKind::Modify(ModifyKind::Name(RenameMode::Both))
            | notify::EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

fn relevant(event: &Event, config_path: &Path, rt: &Path) -> Option<Wake> {
    if matches!(event.kind, notify::EventKind::Access(_)) && !arrived_complete(event) {
        return None;
    }
    let mut wake = None;
    for path in &event.paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path == config_path {
            return Some(Wake::Config);
        }
        if path.parent() == Some(rt) {
            continue;
        }
        wake = Some(Wake::Files);
    }
    if event.need_rescan() {
        return Some(Wake::Files);
    }
    wake
}

fn inotify_help(err: &notify::Error) -> String {
    let base = format!("file events unavailable ({err}); polling instead");
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => format!(
            "{base}. Raise the inotify watch limit, e.g. `sudo sysctl fs.inotify.max_user_watches=524288`"
        ),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(24) || io.raw_os_error() == Some(28) => format!(
            "{base}. Raise the inotify limits, e.g. `sudo sysctl fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=524288`"
        ),
        _ => base,
    }
}

impl Waker {
    /// Set up file events (or polling) for a workspace.
    pub fn new(ws: &Workspace, config: &Config, force_poll: bool) -> Waker {
        let (tx, rx) = channel();
        let poll_interval = Duration::from_millis(config.watchers.poll_interval_ms.max(10));
        let mut waker = Waker {
            tx,
            rx,
            watcher: None,
            mode: WatcherMode::Off,
            poll_interval,
            complete: Arc::new(Mutex::new(HashSet::new())),
            touched: Arc::new(Mutex::new(Touched {
                paths: HashSet::new(),
                lost: true,
            })),
            fallback_reason: None,
        };
        if !config.watchers.enabled {
            return waker;
        }
        if force_poll || config.watchers.poll {
            waker.mode = WatcherMode::Poll;
            return waker;
        }
        match waker.start_notify(ws) {
            Ok(watcher) => {
                waker.watcher = Some(watcher);
                waker.mode = WatcherMode::Watch;
            }
            Err(err) => {
                let reason = inotify_help(&err);
                tracing::warn!("{reason}");
                waker.fallback_reason = Some(reason);
                waker.mode = WatcherMode::Poll;
            }
        }
        waker
    }

    /// Wake on any change in `dirs` (file events; polling every `poll` when they cannot be
    /// had), and on SIGINT/SIGTERM: the one setup `status watch`, `runs tail --follow` and
    /// a control command waiting for the daemon's reply use, as the daemon uses [`Waker::new`].
    pub fn on_folders(dirs: &[PathBuf], recursive: bool, poll: Duration) -> Waker {
        let (tx, rx) = channel();
        let mut waker = Waker {
            tx,
            rx,
            watcher: None,
            mode: WatcherMode::Watch,
            poll_interval: poll.max(Duration::from_millis(10)),
            complete: Arc::new(Mutex::new(HashSet::new())),
            touched: Arc::new(Mutex::new(Touched {
                paths: HashSet::new(),
                lost: true,
            })),
            fallback_reason: None,
        };
        let events = waker.tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let relevant = res
                .map(|e| !matches!(e.kind, notify::EventKind::Access(_)))
                .unwrap_or(true);
            if relevant {
                let _ = events.send(Wake::Files);
            }
        });
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match watcher {
            Ok(mut w) => {
                for dir in dirs.iter().filter(|d| d.is_dir()) {
                    if let Err(err) = w.watch(dir, mode) {
                        tracing::warn!(dir = %dir.display(), %err, "cannot watch; polling");
                        waker.mode = WatcherMode::Poll;
                    }
                }
                waker.watcher = Some(w);
            }
            Err(err) => {
                waker.fallback_reason = Some(inotify_help(&err));
                waker.mode = WatcherMode::Poll;
            }
        }
        forward_signals(waker.tx.clone());
        waker
    }

    fn start_notify(&self, ws: &Workspace) -> notify::Result<notify::RecommendedWatcher> {
        let tx = self.tx.clone();
        let config_path = ws.config_path();
        let rt = ws.rt().to_path_buf();
        let complete = self.complete.clone();
        let touched = self.touched.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<Event>| match res {
                Ok(event) => {
                    {
                        let mut t = touched.lock().unwrap_or_else(|e| e.into_inner());
                        if event.need_rescan() || t.paths.len() > TOUCHED_LIMIT {
                            t.lost = true;
                        } else {
                            t.paths.extend(event.paths.iter().cloned());
                        }
                    }
                    if arrived_complete(&event) {
                        let mut set = complete.lock().unwrap_or_else(|e| e.into_inner());
                        if set.len() > 10_000 {
                            set.clear();
                        }
                        set.extend(event.paths.iter().cloned());
                    }
                    if let Some(wake) = relevant(&event, &config_path, &rt) {
                        let _ = tx.send(wake);
                    }
                }
                Err(_) => {
                    touched.lock().unwrap_or_else(|e| e.into_inner()).lost = true;
                    let _ = tx.send(Wake::Files);
                }
            })?;
        for dir in watched_dirs(ws) {
            if dir.is_dir() {
                watcher.watch(&dir, RecursiveMode::NonRecursive)?;
            }
        }
        Ok(watcher)
    }

    /// Watch the folders again after they were deleted and recreated (a deleted folder's
    /// watch is gone for good); the next look checks every file.
    pub fn rewatch(&mut self, ws: &Workspace) {
        if let Some(watcher) = self.watcher.as_mut() {
            for dir in watched_dirs(ws) {
                if let Err(err) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), %err, "cannot watch again");
                }
            }
        }
        self.forget_touched();
    }

    /// Whether the watcher saw `path` arrive whole (so it need not wait out the settle window).
    pub fn is_complete(&self, path: &Path) -> bool {
        self.complete
            .lock()
            .map(|set| set.contains(path))
            .unwrap_or(false)
    }

    /// The files that changed since the last call, when file events can be trusted to say
    /// so; `None` means every file must be checked (polling, lost events, or the first look).
    pub fn take_touched(&self) -> Option<HashSet<PathBuf>> {
        let mut t = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        let paths = std::mem::take(&mut t.paths);
        let lost = std::mem::replace(&mut t.lost, false);
        (self.mode == WatcherMode::Watch && !lost).then_some(paths)
    }

    /// Make the next [`Waker::take_touched`] ask for a full check (the scheduled rescan).
    pub fn forget_touched(&self) {
        self.touched.lock().unwrap_or_else(|e| e.into_inner()).lost = true;
    }

    /// The mode to record in the snapshot.
    pub fn mode(&self) -> WatcherMode {
        self.mode
    }

    /// A sender for other wake sources (signals, the stage worker).
    pub fn sender(&self) -> Sender<Wake> {
        self.tx.clone()
    }

    /// Wait for the next wake, at most `timeout` (shortened to the poll interval when
    /// polling). Returns `None` on timeout. Wakes that arrived together are merged, with
    /// signals and stage completion taking precedence over file events.
    pub fn wait(&self, timeout: Duration) -> Option<Wake> {
        let timeout = match self.mode {
            WatcherMode::Poll => timeout.min(self.poll_interval),
            _ => timeout,
        };
        let first = match self.rx.recv_timeout(timeout) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
        };
        Some(self.merge(first))
    }

    /// Take whatever is already queued without blocking.
    pub fn try_take(&self) -> Option<Wake> {
        self.rx.try_recv().ok().map(|w| self.merge(w))
    }

    fn merge(&self, mut best: Wake) -> Wake {
        let rank = |w: &Wake| match w {
            Wake::Signal(_) => 3,
            Wake::StageDone => 2,
            Wake::Config => 1,
            Wake::Files => 0,
        };
        let until = Instant::now() + Duration::from_millis(2);
        while Instant::now() < until {
            match self.rx.try_recv() {
                Ok(w) if rank(&w) > rank(&best) => best = w,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        best
    }
}

/// Forward SIGINT and SIGTERM to the waker (a small tokio runtime on its own thread).
pub fn forward_signals(tx: Sender<Wake>) {
    std::thread::Builder::new()
        .name("millrace-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                    };
                    if tx.send(Wake::Signal(name)).is_err() {
                        return;
                    }
                }
            });
        })
        .ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_in_file_wakes_the_waker() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let waker = Waker::new(&ws, &Config::default(), false);
        assert_eq!(waker.mode(), WatcherMode::Watch);
        let tmp = ws.ideas_tmp().join("x.md");
        std::fs::write(&tmp, "# x\n").unwrap();
        std::fs::rename(&tmp, ws.ideas_inbox().join("x.md")).unwrap();
        assert_eq!(waker.wait(Duration::from_secs(5)), Some(Wake::Files));
    }

    #[test]
    fn hidden_temp_files_do_not_wake() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let waker = Waker::new(&ws, &Config::default(), false);
        std::fs::write(ws.ideas_inbox().join(".x.md.tmp-abc"), "x").unwrap();
        assert_eq!(waker.wait(Duration::from_millis(200)), None);
    }
}
