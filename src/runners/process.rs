//! The process supervisor every process-based runner uses.
//!
//! One harness run = one process group. The harness is spawned as the leader of a fresh group
//! (`process_group(0)`), so a timeout, an idle timeout or a cancel can signal everything it
//! started — shells, language servers, test runners — and not just the direct child. After the
//! leader exits, stragglers left in the group are signalled too: a stage owns nothing once it
//! has ended.
//!
//! **Environment (the harness's security boundary).** The harness does not inherit the
//! runtime's environment wholesale: it receives only the variables whose *names* match one of
//! `runners.env_allow` (globs, `*` by default), then the runner's own `env` overlay on top.
//! Narrowing `env_allow` (say to `PATH`, `HOME`, `LANG`, `OPENAI_*`) keeps tokens meant for
//! other tools out of an agent's reach.
//!
//! Waiting is blocking: one thread per output stream, one thread in `waitid(WNOWAIT)` for the
//! leader, and the supervisor sleeping on a channel until the next deadline. The leader is
//! reaped only after its group has been signalled, so its pid (= the group id) cannot be
//! recycled while we still send signals to it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use jiff::Timestamp;
use regex::RegexSet;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::runners::result::stamp;
use crate::workspace::atomic;

/// A cheap, cloneable "stop now" flag. The engine sets it on `stop --interrupt` or a signal;
/// a supervisor watching it kills its process group at once.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

type Waker = Box<dyn Fn() + Send>;

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<Vec<(u64, Waker)>>,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Request cancellation and wake every supervisor waiting on this token.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (_, wake) in wakers.iter() {
            wake();
        }
    }

    /// Whether [`CancelToken::cancel`] has been called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Call `wake` on cancellation until the returned guard is dropped.
    fn subscribe(&self, wake: Waker) -> Subscription<'_> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((id, wake));
        Subscription { token: self, id }
    }
}

struct Subscription<'a> {
    token: &'a CancelToken,
    id: u64,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        self.token
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

/// Which inherited environment variables a harness may see (see the module docs).
#[derive(Debug, Clone)]
pub struct EnvPolicy {
    allow: GlobSet,
}

impl EnvPolicy {
    /// Build from `runners.env_allow` globs.
    pub fn new(patterns: &[String]) -> Result<EnvPolicy, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            builder.add(Glob::new(pattern)?);
        }
        Ok(EnvPolicy {
            allow: builder.build()?,
        })
    }

    /// The harness environment: allowed variables of this process, then `overlay`.
    pub fn environment(&self, overlay: &BTreeMap<String, String>) -> Vec<(OsString, OsString)> {
        let mut env: BTreeMap<OsString, OsString> = std::env::vars_os()
            .filter(|(name, _)| self.allow.is_match(Path::new(name)))
            .collect();
        for (name, value) in overlay {
            env.insert(name.into(), value.into());
        }
        env.into_iter().collect()
    }
}

/// Stall detection: output lines matching `noise` (a harness's retry/reconnect chatter) keep
/// the idle timer alive but are not progress; only noise for `after` ends the run.
#[derive(Debug, Clone)]
pub struct Stall {
    pub after: Duration,
    pub noise: Arc<RegexSet>,
}

/// Limits a supervisor enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit (at least one second is enforced).
    pub timeout: Duration,
    /// Longest silence on both stdout and stderr; `None` = no idle limit.
    pub idle_timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL of the group.
    pub kill_grace: Duration,
    /// Bytes kept per stream; the rest is drained and counted.
    pub output_cap: u64,
    /// `None` = every byte of output counts as progress.
    pub stall: Option<Stall>,
}

/// One process to supervise.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Where the pid / group / start-time record goes while the process lives.
    pub record_path: PathBuf,
    pub limits: Limits,
}

/// How a supervised process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The leader exited by itself with this code.
    Exited(i32),
    /// The leader died of this signal without us sending one.
    Signaled(i32),
    /// `argv[0]` could not be found.
    NotFound,
    /// Spawning or supervising failed for another reason.
    SpawnFailed(String),
    /// Killed after the wall-clock limit (seconds).
    TimedOut(u64),
    /// Killed after this many seconds without output.
    IdleTimedOut(u64),
    /// Killed after this many seconds of only retry/reconnect output; the last such line.
    Stalled(u64, String),
    /// Killed because the cancel token was set.
    Interrupted,
}

/// The outcome of [`run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRun {
    pub ending: Ending,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
}

/// The environment variable carrying a harness run's token. Every process the harness starts
/// inherits it, and the kernel keeps each process's initial environment
/// (`/proc/<pid>/environ`), so a later daemon can tell the harness's processes from any other
/// process a forged record may name.
pub const HARNESS_TOKEN_VAR: &str = "MILLRACE_HARNESS_TOKEN";

/// What `runner_process.<rid>.yaml` holds while a harness runs: enough for a later daemon to
/// find the processes of that run and kill them.
///
/// The record lives in the workspace, so the agent can rewrite it: nothing in it is trusted
/// until the kernel confirms it (see [`kill_orphaned_group`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRecord {
    pub pid: u32,
    pub process_group: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time_ticks: u64,
    pub argv0: String,
    #[serde(with = "stamp")]
    pub started_at: Timestamp,
    /// The value of [`HARNESS_TOKEN_VAR`] in the harness's environment.
    pub token: String,
}

/// What a takeover did with a process record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// The recorded harness's processes were found and killed (this many signalled).
    Killed(usize),
    /// No process of that harness run is left.
    NothingLeft,
    /// The record names processes that are not that harness run's: nothing was signalled.
    Refused(String),
}

enum Event {
    Exited,
    ReaderDone,
    Cancelled,
}

/// Run one process to completion under `limits`, writing its output to the spec's files.
///
/// Never panics on harness behaviour; every failure ends up as an [`Ending`] and, for the
/// runtime's own failures (not found, timeouts, cancel), a one-line note at the end of the
/// stderr file.
pub fn run(spec: &ProcessSpec, cancel: &CancelToken) -> ProcessRun {
    let started_at = stamp::now();
    let ending = supervise(spec, cancel);
    if let Some(note) = ending_note(&ending, spec.argv.first().map_or("", String::as_str)) {
        append_line(&spec.stderr_path, &note);
    }
    let ended_at = stamp::now().max(started_at);
    ProcessRun {
        ending,
        started_at,
        ended_at,
    }
}

fn ending_note(ending: &Ending, argv0: &str) -> Option<String> {
    match ending {
        Ending::NotFound => Some(format!("runner binary not found: {argv0}")),
        Ending::SpawnFailed(err) => Some(format!("runner process error: {err}")),
        Ending::TimedOut(n) => Some(format!("runner timed out after {n} seconds")),
        Ending::IdleTimedOut(n) => Some(format!("runner produced no output for {n} seconds")),
        Ending::Stalled(n, _) => Some(format!(
            "runner only retried or reconnected for {n} seconds (stalled)"
        )),
        Ending::Interrupted => Some("runner interrupted: the runtime asked it to stop".into()),
        Ending::Exited(_) | Ending::Signaled(_) => None,
    }
}

pub(crate) fn append_line(path: &Path, line: &str) {
    let written = refuse_links(path)
        .and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .custom_flags(atomic::NO_FOLLOW)
                .open(path)
        })
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(err) = written {
        tracing::warn!(path = %path.display(), %err, "cannot append runner note");
    }
}

/// A capture file for the harness's output: truncated, mode 0644 whatever the umask, never
/// through a link the agent planted in the run folder.
fn create_capture(path: &Path) -> io::Result<File> {
    refuse_links(path)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(atomic::NO_FOLLOW)
        .open(path)
}

fn refuse_links(path: &Path) -> io::Result<()> {
    atomic::refuse_links(path, true).map_err(|e| io::Error::other(e.to_string()))
}

fn supervise(spec: &ProcessSpec, cancel: &CancelToken) -> Ending {
    let Some(argv0) = spec.argv.first() else {
        return Ending::SpawnFailed("empty command line".into());
    };
    let (stdout_file, stderr_file) = match (
        create_capture(&spec.stdout_path),
        create_capture(&spec.stderr_path),
    ) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return Ending::SpawnFailed(format!("cannot create output files: {e}"))
        }
    };
    if !spec.cwd.is_dir() {
        return Ending::SpawnFailed(format!(
            "working directory {} does not exist",
            spec.cwd.display()
        ));
    }
    let token = crate::time::hex32();
    let mut command = Command::new(argv0);
    command
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(HARNESS_TOKEN_VAR, &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ending::NotFound,
        Err(e) => return Ending::SpawnFailed(e.to_string()),
    };
    let pid = child.id();
    write_record(spec, pid, argv0, &token);

    let start = Instant::now();
    let clocks = Arc::new(Clocks::default());
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(pump(out, stdout_file, spec, start, &clocks, &tx));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(pump(err, stderr_file, spec, start, &clocks, &tx));
    }
    let waiter_tx = tx.clone();
    thread::spawn(move || {
        wait_for_exit(pid);
        let _ = waiter_tx.send(Event::Exited);
    });
    let cancel_tx = Mutex::new(tx);
    let _subscription = cancel.subscribe(Box::new(move || {
        if let Ok(tx) = cancel_tx.lock() {
            let _ = tx.send(Event::Cancelled);
        }
    }));

    let mut events = Events {
        rx,
        exited: false,
        readers_done: 0,
    };
    let limits = &spec.limits;
    let timeout = limits.timeout.max(Duration::from_secs(1));
    let kill_reason = loop {
        if events.exited {
            break None;
        }
        if cancel.is_cancelled() {
            break Some(Ending::Interrupted);
        }
        let now = Instant::now();
        let wall_deadline = start + timeout;
        if now >= wall_deadline {
            break Some(Ending::TimedOut(timeout.as_secs()));
        }
        let mut deadline = wall_deadline;
        if let Some(idle) = limits.idle_timeout {
            let last = start + Duration::from_millis(clocks.output.load(Ordering::Relaxed));
            let idle_deadline = last + idle;
            if now >= idle_deadline {
                break Some(Ending::IdleTimedOut(idle.as_secs()));
            }
            deadline = deadline.min(idle_deadline);
        }
        if let Some(stall) = &limits.stall {
            let last = start + Duration::from_millis(clocks.progress.load(Ordering::Relaxed));
            let stall_deadline = last + stall.after;
            if now < stall_deadline {
                deadline = deadline.min(stall_deadline);
            } else if clocks.noisy.load(Ordering::Relaxed) {
                let noise = clocks.last_noise();
                break Some(Ending::Stalled(stall.after.as_secs(), noise));
            } else {
                // Silence is the idle timeout's business; look again once noise could matter.
                deadline = deadline.min(now + stall.after);
            }
        }
        events.next(Some(deadline));
    };

    let group = Pid::from_raw(pid as i32);
    let grace = limits.kill_grace;
    signal_group(group, Signal::TERM);
    if kill_reason.is_some() {
        let until = Instant::now() + grace;
        while !events.exited && events.next(Some(until)) {}
        if !events.exited {
            signal_group(group, Signal::KILL);
            while !events.exited && events.next(None) {}
        }
    }
    // The leader is gone but not yet reaped; give stragglers in the group the same grace.
    let until = Instant::now() + grace;
    while events.readers_done < readers.len() && events.next(Some(until)) {}
    signal_group(group, Signal::KILL);
    let until = Instant::now() + grace;
    while events.readers_done < readers.len() && events.next(Some(until)) {}
    if events.readers_done == readers.len() {
        for reader in readers {
            let _ = reader.join();
        }
    } else {
        tracing::warn!(
            pid,
            "a process outside the harness group still holds its output"
        );
    }

    let status = reap(&mut child);
    if let Err(err) = fs::remove_file(&spec.record_path) {
        if err.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %spec.record_path.display(), %err, "cannot remove process record");
        }
    }
    match (kill_reason, status) {
        (Some(reason), _) => reason,
        (None, Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(signal)) => Ending::Signaled(signal),
            (None, None) => Ending::SpawnFailed("harness ended without a status".into()),
        },
        (None, Err(err)) => Ending::SpawnFailed(format!("waiting for the harness: {err}")),
    }
}

struct Events {
    rx: Receiver<Event>,
    exited: bool,
    readers_done: usize,
}

impl Events {
    /// Block for the next event until `deadline`; false when the deadline passed or no sender
    /// is left.
    fn next(&mut self, deadline: Option<Instant>) -> bool {
        let event = match deadline {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        return false
                    }
                }
            }
            None => match self.rx.recv() {
                Ok(event) => event,
                Err(_) => return false,
            },
        };
        match event {
            Event::Exited => self.exited = true,
            Event::ReaderDone => self.readers_done += 1,
            Event::Cancelled => {}
        }
        true
    }
}

/// When output last arrived and when it last showed progress (milliseconds since spawn),
/// whether noise came after the last progress, and the most recent noise line; shared by the
/// stream readers and the supervisor.
#[derive(Default)]
struct Clocks {
    output: AtomicU64,
    progress: AtomicU64,
    noisy: AtomicBool,
    noise: Mutex<String>,
}

impl Clocks {
    fn last_noise(&self) -> String {
        self.noise.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

/// A partial line longer than this counts as progress without waiting for its end.
const LONG_LINE: usize = 4096;

/// Splits a stream into lines and tells progress from noise.
struct LineJudge {
    noise: Option<Arc<RegexSet>>,
    partial: Vec<u8>,
}

impl LineJudge {
    /// Feed a chunk; true when it completed a line that is not noise (or the stall check is
    /// off). Noise lines are handed to `on_noise`.
    fn feed(&mut self, chunk: &[u8], on_noise: &mut dyn FnMut(&str)) -> bool {
        let Some(noise) = &self.noise else {
            return true;
        };
        let mut progress = false;
        for &byte in chunk {
            if byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            let line = String::from_utf8_lossy(&self.partial);
            let line = line.trim();
            if !line.is_empty() {
                if noise.is_match(line) {
                    on_noise(line);
                } else {
                    progress = true;
                }
            }
            self.partial.clear();
        }
        if self.partial.len() > LONG_LINE {
            self.partial.clear();
            progress = true;
        }
        progress
    }
}

fn pump(
    mut source: impl Read + Send + 'static,
    mut sink: File,
    spec: &ProcessSpec,
    start: Instant,
    clocks: &Arc<Clocks>,
    tx: &Sender<Event>,
) -> JoinHandle<()> {
    let cap = spec.limits.output_cap;
    let clocks = Arc::clone(clocks);
    let mut judge = LineJudge {
        noise: spec.limits.stall.as_ref().map(|s| Arc::clone(&s.noise)),
        partial: Vec::new(),
    };
    let tx = tx.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut kept = 0u64;
        let mut dropped = 0u64;
        let mut sink_ok = true;
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            clocks.output.store(elapsed, Ordering::Relaxed);
            let mut remember = |line: &str| {
                clocks.noisy.store(true, Ordering::Relaxed);
                if let Ok(mut last) = clocks.noise.lock() {
                    *last = crate::runners::harness::one_line(line);
                }
            };
            if judge.feed(&buf[..n], &mut remember) {
                clocks.noisy.store(false, Ordering::Relaxed);
                clocks.progress.store(elapsed, Ordering::Relaxed);
            }
            let room = usize::try_from(cap.saturating_sub(kept)).unwrap_or(usize::MAX);
            let take = n.min(room);
            if take > 0 && sink_ok {
                sink_ok = sink.write_all(&buf[..take]).is_ok();
            }
            kept += take as u64;
            dropped += (n - take) as u64;
        }
        if dropped > 0 && sink_ok {
            let _ = write!(
                sink,
                "\n[millrace: output truncated at {cap} bytes; {dropped} further bytes dropped]\n"
            );
        }
        let _ = tx.send(Event::ReaderDone);
    })
}

/// Block until the leader has exited, leaving it unreaped (a zombie keeps its pid reserved).
fn wait_for_exit(pid: u32) {
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return;
    };
    let options = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
    loop {
        match rustix::process::waitid(rustix::process::WaitId::Pid(pid), options) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}

fn reap(child: &mut Child) -> io::Result<std::process::ExitStatus> {
    loop {
        match child.wait() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        // ESRCH just means the group is already empty.
        let _ = rustix::process::kill_process_group(group, signal);
    }
}

fn write_record(spec: &ProcessSpec, pid: u32, argv0: &str, token: &str) {
    let Some(start_time_ticks) = start_time_ticks(pid) else {
        tracing::warn!(
            pid,
            "cannot read the harness start time; no process record written"
        );
        return;
    };
    let record = ProcessRecord {
        pid,
        process_group: pid,
        start_time_ticks,
        argv0: argv0.to_string(),
        started_at: stamp::now(),
        token: token.to_string(),
    };
    if let Err(err) = atomic::write_artifact(
        &spec.record_path,
        crate::yaml::to_string(&record).as_bytes(),
    ) {
        tracing::warn!(%err, "cannot write the harness process record");
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards), or `None` when
/// there is no such process.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces or `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`, or `None` when there is no such process.
pub fn start_time_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Field 5 (`pgrp`) of `/proc/<pid>/stat`.
fn process_group_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Whether the process was started with `marker` (`NAME=value`) in its environment.
fn carries(pid: u32, marker: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|entry| entry == marker))
        .unwrap_or(false)
}

/// Every live process whose group is `group`.
fn members_of(group: u32) -> Vec<u32> {
    let Ok(read) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_group_of(*pid) == Some(group))
        .collect()
}

/// Why a process group may not be signalled whatever a record says: group 0 is the caller's
/// own group and 1 (as `kill(-1)`) is every process; the runtime's own group and pid are never
/// a harness's. Harness groups are led by the harness, so the group id is the leader's pid.
fn forbidden_group(record: &ProcessRecord) -> Option<String> {
    let group = record.process_group;
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    if group <= 1 {
        Some(format!("process group {group} is never a harness's"))
    } else if group == std::process::id() || group == own_group {
        Some(format!("process group {group} is the runtime's own"))
    } else if group != record.pid {
        Some(format!(
            "process group {group} is not led by the recorded pid {} (a harness leads its group)",
            record.pid
        ))
    } else if record.token.len() < 16 {
        Some("the record's token is missing or too short".into())
    } else {
        None
    }
}

/// Kill what is left of a harness run recorded in a `runner_process.<rid>.yaml` by a daemon
/// that died mid-stage. The record is not trusted (the agent can write it): only processes
/// whose kernel-held environment carries the run's token are the harness's.
///
/// - If the leader is alive with the recorded start time and the token, its whole group is
///   killed (children that cleared their environment included).
/// - If the leader has died (and been reaped), the group's members that carry the token are
///   killed one by one.
/// - Anything else (a group of 0, 1 or our own, a leader that is not the group, no process
///   with the token) is refused and nothing is signalled. The caller removes the record.
pub fn kill_orphaned_group(record_path: &Path) -> io::Result<Takeover> {
    let text = atomic::read_regular_string(record_path)?;
    let record: ProcessRecord = match crate::yaml::from_str(record_path, &text) {
        Ok(record) => record,
        Err(err) => return Ok(Takeover::Refused(format!("unreadable record: {err}"))),
    };
    if let Some(reason) = forbidden_group(&record) {
        return Ok(Takeover::Refused(reason));
    }
    let marker = format!("{HARNESS_TOKEN_VAR}={}", record.token).into_bytes();
    let group = record.process_group;
    let leader = record.pid;
    let leader_is_harness = start_time_ticks(leader) == Some(record.start_time_ticks)
        && process_group_of(leader) == Some(group)
        && carries(leader, &marker);
    if leader_is_harness {
        let Some(pgid) = Pid::from_raw(group as i32) else {
            return Ok(Takeover::NothingLeft);
        };
        return match rustix::process::kill_process_group(pgid, Signal::KILL) {
            Ok(()) => Ok(Takeover::Killed(members_of(group).len().max(1))),
            Err(rustix::io::Errno::SRCH) => Ok(Takeover::NothingLeft),
            Err(errno) => Err(errno.into()),
        };
    }
    let members = members_of(group);
    let carriers: Vec<u32> = members
        .iter()
        .copied()
        .filter(|pid| carries(*pid, &marker))
        .collect();
    if carriers.is_empty() {
        return Ok(if members.is_empty() {
            Takeover::NothingLeft
        } else {
            Takeover::Refused(format!(
                "no process in group {group} carries that harness run's token"
            ))
        });
    }
    let mut killed = 0;
    for pid in carriers {
        if let Some(target) = Pid::from_raw(pid as i32) {
            if rustix::process::kill_process(target, Signal::KILL).is_ok() {
                killed += 1;
            }
        }
    }
    Ok(Takeover::Killed(killed))
}
