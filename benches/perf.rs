//! Performance suite for the release binary: `cargo bench --bench perf` (see `benches/README.md`).
//!
//! Every figure is whole-process: the suite builds workspaces under a temporary directory,
//! runs `millrace` as a child process and reads what it left behind (event log timestamps,
//! snapshot, `/proc`). Nothing here links the engine in-process, so the numbers include
//! process start, config load and compile, as an operator sees them.
//!
//! Environment:
//! - `MILLRACE_BENCH_REPS` (default 7): repetitions of each short measurement.
//! - `MILLRACE_BENCH_IDLE_SECS` (default 60): idle-daemon CPU window.
//! - `MILLRACE_BENCH_DROPS` (default 120): idea drops for the intake latency.
//! - `MILLRACE_BENCH_QUICK=1`: smaller sizes (no 50k claim, 3 reps, 5 s idle) for a smoke run.
//! - `MILLRACE_BENCH_KEEP=1`: keep the workspaces (path printed at the start).
//!
//! A positional argument selects sections by substring: `cli`, `claim`, `stage`, `intake`,
//! `mailbox`, `idle`, `growth`, `marathon`, `lanes` (e.g. `cargo bench --bench perf -- claim`).
//! - `MILLRACE_BENCH_MARATHON_ITEMS` (default 100 000) and `MILLRACE_BENCH_MARATHON_LOG_MB`
//!   (default 1024): the history the `marathon` section builds.
//! - `MILLRACE_BENCH_LANES_TASKS` (default 20, quick 8) and `MILLRACE_BENCH_LANES_SLEEP`
//!   (seconds per stage, default 1, quick 0.3): the `lanes` section's run, three stages per
//!   task through `fixtures/lane-harness` at 1, 2, 4 and 8 parallel lanes (about 2 min).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_millrace");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// Results table

struct Row {
    section: &'static str,
    name: String,
    unit: &'static str,
    samples: Vec<f64>,
    /// Upper bound the median should stay under.
    target: Option<f64>,
    note: String,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn fmt(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(
        &mut self,
        section: &'static str,
        name: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
        target: Option<f64>,
        note: impl Into<String>,
    ) {
        let row = Row {
            section,
            name: name.into(),
            unit,
            samples,
            target,
            note: note.into(),
        };
        print_row(&row);
        self.rows.push(row);
    }

    fn print(&self) {
        println!();
        println!("== millrace performance (release binary, whole-process) ==");
        print_header();
        for row in &self.rows {
            print_row(row);
        }
    }
}

fn print_header() {
    println!(
        "{:<8} {:<46} {:>9} {:>19} {:>4} {:>8} {:>6}  note",
        "section", "metric", "median", "min-max", "n", "target", "ratio"
    );
}

fn print_row(r: &Row) {
    let (lo, hi) = r
        .samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        });
    let med = median(&r.samples);
    let (target, ratio) = match r.target {
        Some(t) => (format!("<{}", fmt(t)), fmt(med / t)),
        None => ("".into(), "".into()),
    };
    let range = if r.samples.is_empty() {
        "-".to_string()
    } else {
        format!("{}-{}", fmt(lo), fmt(hi))
    };
    println!(
        "{:<8} {:<46} {:>9} {:>19} {:>4} {:>8} {:>6}  {}",
        r.section,
        format!("{} [{}]", r.name, r.unit),
        fmt(med),
        range,
        r.samples.len(),
        target,
        ratio,
        r.note
    );
}

// ---------------------------------------------------------------------------------------------
// Process measurement: wait4 gives the child's own peak RSS and CPU time.

#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

struct Measured {
    wall_ms: f64,
    maxrss_kb: f64,
    ok: bool,
    started: SystemTime,
}

fn measure(cmd: &mut Command) -> Measured {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = SystemTime::now();
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as i32;
    let mut status = 0i32;
    let mut ru = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: `ru` and `status` are valid for writes; `pid` is our unreaped child.
    let rc = unsafe { wait4(pid, &mut status, 0, &mut ru) };
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(rc, pid, "wait4 failed");
    // The child is reaped; `Child` must not wait again (dropping it does not).
    drop(child);
    Measured {
        wall_ms,
        maxrss_kb: ru.maxrss as f64,
        ok: status == 0,
        started,
    }
}

fn millrace(ws: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("-w").arg(ws).args(args).env_remove("RUST_LOG");
    cmd
}

fn run_ok(ws: &Path, args: &[&str]) {
    let out = millrace(ws, args).output().expect("spawn millrace");
    assert!(
        out.status.success(),
        "millrace {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Workspaces

#[derive(Clone, Copy)]
enum Runner {
    Scripted,
    FakeHarness,
}

fn rt(ws: &Path) -> PathBuf {
    ws.join("millrace-agents")
}

fn new_ws(root: &Path, name: &str, runner: Runner) -> PathBuf {
    let ws = root.join(name);
    let _ = fs::remove_dir_all(&ws);
    fs::create_dir_all(&ws).unwrap();
    run_ok(&ws, &["init"]);
    let cfg_path = rt(&ws).join("millrace.yaml");
    let cfg = fs::read_to_string(&cfg_path).unwrap();
    let cfg = match runner {
        Runner::Scripted => cfg.replace("default_runner: codex_cli", "default_runner: scripted"),
        Runner::FakeHarness => {
            let harness = Path::new(MANIFEST_DIR).join("fixtures/fake-harness");
            let replaced = cfg
                .replace(
                    "command: codex\n",
                    &format!("command: {}\n", harness.display()),
                )
                .replace("args:\n      - exec\n", "args: []\n");
            assert!(replaced.contains("args: []"), "config template changed");
            replaced
        }
    };
    assert!(cfg.contains("scripted") || matches!(runner, Runner::FakeHarness));
    fs::write(&cfg_path, cfg).unwrap();
    ws
}

/// A canonical task document (the shape of `fixtures/documents/task.md`).
fn task_text(id: &str, created: Timestamp, depends_on: Option<&str>) -> String {
    let deps = depends_on
        .map(|d| format!("Depends-On:\n- {d}\n\n"))
        .unwrap_or_default();
    format!(
        "# Benchmark task {id}\n\nTask-ID: {id}\nTitle: Benchmark task {id}\n\
         Summary: Generated by the performance suite.\nCreated-At: {created}\n\
         Created-By: manager\n\n{deps}Tags:\n- bench\n\nTarget-Paths:\n- src/lib.rs\n\n\
         Acceptance:\n- The suite can claim it.\n\nRequired-Checks:\n- cargo test\n\n\
         References:\n- millrace-agents/specs/active/s-bench.md\n\nRisk:\n- None.\n"
    )
}

/// Set a generated history folder's last change a day back, as in a workspace that has run
/// for weeks: millrace caches a folder's listing only once the folder has been still a while
/// (see `workspace::stamp`), which a folder written a second ago has not.
fn age_folder(dir: &Path) {
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    fs::File::open(dir)
        .and_then(|f| f.set_modified(day_ago))
        .unwrap();
}

fn gen_tasks(ws: &Path, folder: &str, prefix: &str, n: usize, depends_on: Option<&str>) {
    let dir = rt(ws).join("tasks").join(folder);
    fs::create_dir_all(&dir).unwrap();
    let base: Timestamp = "2026-02-10T09:30:00Z".parse().unwrap();
    for i in 0..n {
        let id = format!("{prefix}{i:06}");
        let created = base + jiff::SignedDuration::from_secs(i as i64);
        fs::write(
            dir.join(format!("{id}.md")),
            task_text(&id, created, depends_on),
        )
        .unwrap();
    }
}

/// An event log of about `mb` MiB of ordinary lines, as years of stages leave behind.
/// Dated today, and with a segment size above it, so the daemon measured does not roll it:
/// the figures are for a log this big, not for the one-time roll of it.
fn gen_event_log(ws: &Path, mb: u64) {
    use std::io::Write;
    let line = format!("{{\"data\":{{\"id\":\"t-old-000001\",\"kind\":\"task\",\"root_idea_id\":null,\"root_spec_id\":null,\"run_id\":\"run-bench\",\"stage\":\"builder\"}},\"event_type\":\"work_item_claimed\",\"kind\":\"runtime_event\",\"occurred_at\":\"{}\",\"schema_version\":\"1.0\"}}\n", Timestamp::now());
    let config = rt(ws).join("millrace.yaml");
    let mut text = fs::read_to_string(&config).unwrap();
    text = text.replace(
        "event_log_segment_mb: 64",
        &format!("event_log_segment_mb: {}", mb * 2 + 64),
    );
    fs::write(&config, text).unwrap();
    let chunk = line.repeat((1 << 20) / line.len());
    let path = rt(ws).join("logs/runtime_events.jsonl");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for _ in 0..mb {
        file.write_all(chunk.as_bytes()).unwrap();
    }
    // On disk before anything is measured: writing back a gigabyte would slow what runs
    // meanwhile.
    file.sync_all().unwrap();
}

/// Run directories like the ones stages leave behind (a few small files each).
fn gen_run_dirs(ws: &Path, n: usize) {
    let runs = rt(ws).join("runs");
    for i in 0..n {
        let dir = runs.join(format!("run-bench{i:027}"));
        fs::create_dir_all(dir.join("stage_results")).unwrap();
        fs::write(
            dir.join("runner_stdout.request-x.txt"),
            "### BUILDER_COMPLETE\n",
        )
        .unwrap();
        fs::write(
            dir.join("stage_results/request-x.yaml"),
            "kind: stage_result\n",
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Events

struct Ev {
    kind: String,
    at: Timestamp,
    data: Value,
}

fn events_path(ws: &Path) -> PathBuf {
    rt(ws).join("logs/runtime_events.jsonl")
}

fn parse_events(text: &str) -> Vec<Ev> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(Ev {
                kind: v["event_type"].as_str()?.to_string(),
                at: v["occurred_at"].as_str()?.parse().ok()?,
                data: v["data"].clone(),
            })
        })
        .collect()
}

fn events(ws: &Path) -> Vec<Ev> {
    parse_events(&fs::read_to_string(events_path(ws)).unwrap_or_default())
}

/// Follows the event log from a byte offset.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    fn new(ws: &Path) -> Tail {
        let path = events_path(ws);
        let offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Tail {
            path,
            offset,
            partial: String::new(),
        }
    }

    fn poll(&mut self) -> Vec<Ev> {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = String::new();
        let n = f.read_to_string(&mut buf).unwrap_or(0);
        self.offset += n as u64;
        self.partial.push_str(&buf);
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=cut).collect();
        parse_events(&complete)
    }

    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Ev) -> bool) -> Option<Ev> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(ev) = self.poll().into_iter().find(|e| pred(e)) {
                return Some(ev);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

fn since_ms(later: Timestamp, earlier: SystemTime) -> f64 {
    let earlier = Timestamp::try_from(earlier).unwrap();
    later.duration_since(earlier).as_secs_f64() * 1e3
}

fn between_ms(later: Timestamp, earlier: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Daemons and /proc

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(ws: &Path) -> Daemon {
        let mut tail = Tail::new(ws);
        let child = millrace(ws, &["run", "daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        tail.wait_for(Duration::from_secs(120), |e| e.kind == "runtime_started")
            .expect("daemon did not start");
        Daemon { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the daemon stops using CPU (its startup scan and first ticks are over).
    fn settle(&self) {
        let mut last = cpu_ticks(self.pid());
        let mut still = 0;
        for _ in 0..300 {
            std::thread::sleep(Duration::from_millis(200));
            let now = cpu_ticks(self.pid());
            if now == last {
                still += 1;
                if still >= 3 {
                    return;
                }
            } else {
                still = 0;
            }
            last = now;
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        // A daemon finishing a pass (rolling a 1 GB log, say) stops after it.
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process (all threads, including exited ones), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of /proc/<pid>/stat; `after` starts at field 3.
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

/// On-CPU nanoseconds summed over the live threads (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(read) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    read.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn proc_kb(pid: u32, key: &str) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rename_in(tmp_dir: &Path, dest_dir: &Path, name: &str, text: &str) -> SystemTime {
    let tmp = tmp_dir.join(name);
    fs::write(&tmp, text).unwrap();
    let at = SystemTime::now();
    fs::rename(&tmp, dest_dir.join(name)).unwrap();
    at
}

// ---------------------------------------------------------------------------------------------
// Sections

struct Suite {
    root: PathBuf,
    reps: usize,
    quick: bool,
    idle_secs: u64,
    drops: usize,
    table: Table,
}

impl Suite {
    fn cli(&mut self) {
        for n in [0usize, 1_000, 10_000] {
            let ws = new_ws(&self.root, &format!("cli-{n}"), Runner::Scripted);
            gen_tasks(&ws, "queue", "t-", n, None);
            // Warm the page cache and the compiled plan once.
            run_ok(&ws, &["compile", "validate"]);
            for (label, args) in [
                ("status", vec!["status"]),
                ("queue ls", vec!["queue", "ls"]),
                ("compile validate", vec!["compile", "validate"]),
            ] {
                let mut wall = Vec::new();
                let mut rss = Vec::new();
                let _ = measure(&mut millrace(&ws, &args));
                for _ in 0..self.reps {
                    let m = measure(&mut millrace(&ws, &args));
                    assert!(m.ok, "{label} failed");
                    wall.push(m.wall_ms);
                    rss.push(m.maxrss_kb / 1024.0);
                }
                let target = match (label, n) {
                    ("status", 1_000) => Some(5.0),
                    ("status", 10_000) => Some(30.0),
                    _ => None,
                };
                self.table.add(
                    "cli",
                    format!("{label} @{n} queued: wall"),
                    "ms",
                    wall,
                    target,
                    "",
                );
                self.table.add(
                    "cli",
                    format!("{label} @{n} queued: peak RSS"),
                    "MB",
                    rss,
                    None,
                    "",
                );
            }
            self.cleanup(&ws);
        }
    }

    /// `run once` on N queued tasks: claimed-at (event) minus process start, and minus the
    /// `runtime_started` event (the tick's own share). Between reps the item is requeued.
    fn claim(&mut self) {
        let sizes: &[usize] = if self.quick {
            &[1_000, 10_000]
        } else {
            &[1_000, 10_000, 50_000]
        };
        for &n in sizes {
            let ws = new_ws(&self.root, &format!("claim-{n}"), Runner::Scripted);
            gen_tasks(&ws, "queue", "t-", n, None);
            let (from_start, in_tick, wall) = self.claims(&ws, n);
            let target = (n == 10_000).then_some(20.0);
            self.table.add(
                "claim",
                format!("run once @{n}: start->claimed"),
                "ms",
                from_start,
                target,
                "process start to work_item_claimed",
            );
            self.table.add(
                "claim",
                format!("run once @{n}: runtime_started->claimed"),
                "ms",
                in_tick,
                None,
                "tick share (mailbox, intake, reconcile, claim)",
            );
            self.table.add(
                "claim",
                format!("run once @{n}: whole process"),
                "ms",
                wall,
                None,
                "includes one scripted builder stage",
            );
            self.cleanup(&ws);
            if n == 10_000 {
                self.claim_in_daemon(n);
            }
        }
    }

    /// Claim inside a running daemon (warm parse cache): n waiting tasks blocked on a missing
    /// dependency, then a ready task renamed into `tasks/queue/`; rename to
    /// `work_item_claimed`, which includes the wake-up and the whole tick before the claim.
    fn claim_in_daemon(&mut self, n: usize) {
        let ws = new_ws(&self.root, &format!("claim-daemon-{n}"), Runner::Scripted);
        gen_tasks(&ws, "queue", "t-", n, Some("gate"));
        let daemon = Daemon::start(&ws);
        daemon.settle();
        let mut tail = Tail::new(&ws);
        let (tmp, queue) = (rt(&ws).join("ideas/tmp"), rt(&ws).join("tasks/queue"));
        let early: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
        let mut lat = Vec::new();
        for rep in 0..self.reps.max(5) {
            let id = format!("hot-{rep:03}");
            let at = rename_in(
                &tmp,
                &queue,
                &format!("{id}.md"),
                &task_text(&id, early, None),
            );
            match tail.wait_for(Duration::from_secs(30), |e| {
                e.kind == "work_item_claimed" && e.data["id"] == id.as_str()
            }) {
                Some(ev) => lat.push(since_ms(ev.at, at)),
                None => lat.push(30_000.0),
            }
            tail.wait_for(Duration::from_secs(30), |e| {
                e.kind == "work_item_completed" && e.data["id"] == id.as_str()
            });
        }
        daemon.stop();
        self.table.add(
            "claim",
            format!("daemon @{n}: task renamed in -> claimed"),
            "ms",
            lat,
            Some(20.0),
            "warm daemon; includes the file event and the tick before the claim",
        );
        self.cleanup(&ws);
    }

    fn claims(&self, ws: &Path, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut from_start, mut in_tick, mut wall) = (Vec::new(), Vec::new(), Vec::new());
        // One unmeasured run warms the page cache and persists the compiled plan.
        for rep in 0..=self.reps {
            let before = events(ws).len();
            let m = measure(&mut millrace(ws, &["run", "once"]));
            assert!(m.ok, "run once failed at {n}");
            let evs = events(ws);
            let new = &evs[before..];
            let started = new.iter().find(|e| e.kind == "runtime_started");
            let claimed = new.iter().find(|e| e.kind == "work_item_claimed");
            if let (Some(s), Some(c)) = (started, claimed) {
                if rep > 0 {
                    from_start.push(since_ms(c.at, m.started));
                    in_tick.push(between_ms(c.at, s.at));
                    wall.push(m.wall_ms);
                }
            } else {
                panic!("run once at {n} claimed nothing");
            }
            run_ok(ws, &["clear-stale-state", "--reason", "bench"]);
        }
        (from_start, in_tick, wall)
    }

    /// Stages per second through `run daemon --until-idle`; overhead = stage span minus the
    /// runner's own `duration_seconds`, per stage.
    fn stage(&mut self) {
        // The same scripted run on tmpfs, where fsync costs nothing: the difference to the
        // disk run is what the fsyncs cost.
        let shm = Path::new("/dev/shm");
        let shm_root = shm
            .is_dir()
            .then(|| {
                tempfile::Builder::new()
                    .prefix("millrace-bench-")
                    .tempdir_in(shm)
                    .ok()
            })
            .flatten();
        let mut variants = vec![
            (Runner::Scripted, "scripted", 20usize, self.root.clone()),
            (
                Runner::FakeHarness,
                "codex_cli+fake-harness",
                10,
                self.root.clone(),
            ),
        ];
        if let Some(dir) = &shm_root {
            variants.push((
                Runner::Scripted,
                "scripted on tmpfs",
                20,
                dir.path().to_path_buf(),
            ));
        }
        for (runner, label, tasks, root) in variants {
            let reps = self.reps.clamp(1, 5);
            let (mut per_sec, mut overhead, mut harness) = (Vec::new(), Vec::new(), Vec::new());
            let mut stages_seen = 0;
            for rep in 0..reps {
                let ws = new_ws(
                    &root,
                    &format!("stage-{}-{rep}", label.replace([' ', '+'], "-")),
                    runner,
                );
                gen_tasks(&ws, "queue", "t-", tasks, None);
                let m = measure(&mut millrace(&ws, &["run", "daemon", "--until-idle"]));
                assert!(m.ok, "daemon --until-idle failed ({label})");
                let evs = events(&ws);
                let started: Vec<&Ev> = evs.iter().filter(|e| e.kind == "stage_started").collect();
                let done: Vec<&Ev> = evs.iter().filter(|e| e.kind == "stage_completed").collect();
                assert_eq!(started.len(), done.len());
                assert!(!done.is_empty(), "no stage ran ({label})");
                let span = between_ms(done.last().unwrap().at, started[0].at);
                let h: f64 = done
                    .iter()
                    .map(|e| e.data["duration_seconds"].as_f64().unwrap_or(0.0) * 1e3)
                    .sum();
                let k = done.len() as f64;
                stages_seen = done.len();
                per_sec.push(k / (span / 1e3));
                overhead.push((span - h) / k);
                harness.push(h / k);
                self.cleanup(&ws);
            }
            let note = format!("{stages_seen} stages for {tasks} tasks");
            self.table.add(
                "stage",
                format!("{label}: stages per second"),
                "1/s",
                per_sec,
                None,
                note.clone(),
            );
            self.table.add(
                "stage",
                format!("{label}: runtime overhead per stage"),
                "ms",
                overhead,
                Some(5.0),
                "span minus harness time (includes fsyncs)",
            );
            self.table.add(
                "stage",
                format!("{label}: harness time per stage"),
                "ms",
                harness,
                None,
                "stage_completed.duration_seconds",
            );
        }
        self.fsyncs();
    }

    /// fsyncs per stage with strace: a run of K tasks minus an empty run (startup/shutdown).
    fn fsyncs(&mut self) {
        if Command::new("strace").arg("-V").output().is_err() {
            println!("strace not found: fsyncs per stage not counted");
            return;
        }
        let count = |ws: &Path, out: &Path| -> (usize, BTreeMap<String, usize>) {
            let status = Command::new("strace")
                .args([
                    "-f",
                    "-y",
                    "-qq",
                    "-e",
                    "trace=fsync,fdatasync,sync_file_range",
                ])
                .arg("-o")
                .arg(out)
                .arg(BIN)
                .arg("-w")
                .arg(ws)
                .args(["run", "daemon", "--until-idle"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("strace");
            assert!(status.success());
            let text = fs::read_to_string(out).unwrap_or_default();
            let mut by = BTreeMap::new();
            let mut total = 0;
            for line in text.lines().filter(|l| l.contains("sync")) {
                total += 1;
                let path = line
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                *by.entry(classify(&path)).or_insert(0) += 1;
            }
            (total, by)
        };
        let empty = new_ws(&self.root, "fsync-empty", Runner::Scripted);
        let (base, base_by) = count(&empty, &self.root.join("strace-empty.txt"));
        let tasks = 10;
        let ws = new_ws(&self.root, "fsync-work", Runner::Scripted);
        gen_tasks(&ws, "queue", "t-", tasks, None);
        let (total, by) = count(&ws, &self.root.join("strace-work.txt"));
        let stages = events(&ws)
            .iter()
            .filter(|e| e.kind == "stage_completed")
            .count();
        let per_stage = (total.saturating_sub(base)) as f64 / stages as f64;
        self.table.add(
            "stage",
            "fsync+fdatasync per stage (scripted)",
            "calls",
            vec![per_stage],
            None,
            format!("strace -f: {total} in {stages} stages, {base} at startup/shutdown"),
        );
        println!("  fsyncs per stage by file (scripted, {stages} stages, startup subtracted):");
        for (class, n) in &by {
            let b = base_by.get(class).copied().unwrap_or(0);
            println!(
                "    {:<44} {:>6.2}",
                class,
                n.saturating_sub(b) as f64 / stages as f64
            );
        }
        self.cleanup(&empty);
        self.cleanup(&ws);
    }

    /// Idea rename into `ideas/inbox/` to its `idea_normalized_to_spec` event, daemon paused.
    fn intake(&mut self) {
        let ws = new_ws(&self.root, "intake", Runner::Scripted);
        run_ok(&ws, &["control", "pause"]);
        let daemon = Daemon::start(&ws);
        daemon.settle();
        let mut tail = Tail::new(&ws);
        let (tmp, inbox) = (rt(&ws).join("ideas/tmp"), rt(&ws).join("ideas/inbox"));
        let mut lat = Vec::new();
        for i in 0..self.drops {
            let name = format!("bench-idea-{i:04}.md");
            let text = format!("# Bench idea {i}\n\nMake part {i} of the system faster.\n");
            let at = rename_in(&tmp, &inbox, &name, &text);
            let ev = tail.wait_for(Duration::from_secs(10), |e| {
                e.kind == "idea_normalized_to_spec"
                    && e.data["idea_path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with(&name))
            });
            match ev {
                Some(ev) => lat.push(since_ms(ev.at, at)),
                None => lat.push(10_000.0),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        daemon.stop();
        let p99 = percentile(&lat, 99.0);
        let max = lat.iter().cloned().fold(0.0, f64::max);
        self.table.add(
            "intake",
            "idea rename -> idea_normalized_to_spec",
            "ms",
            lat.clone(),
            None,
            format!("daemon paused; drops one at a time; p99 {}", fmt(p99)),
        );
        self.table.add(
            "intake",
            "idea intake p99",
            "ms",
            vec![p99],
            Some(100.0),
            format!("max {}", fmt(max)),
        );
        self.cleanup(&ws);
    }

    /// Mailbox `pause` renamed into `incoming/` until the snapshot says `paused: true`.
    fn mailbox(&mut self) {
        let ws = new_ws(&self.root, "mailbox", Runner::Scripted);
        let daemon = Daemon::start(&ws);
        daemon.settle();
        let (tmp, incoming) = (
            rt(&ws).join("state/mailbox/tmp"),
            rt(&ws).join("state/mailbox/incoming"),
        );
        let snap = rt(&ws).join("state/runtime_snapshot.yaml");
        let paused = |want: bool| {
            fs::read_to_string(&snap)
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == format!("paused: {want}"))
        };
        let mut lat = Vec::new();
        let n = (self.reps * 4).max(10);
        for i in 0..n {
            for (cmd, want) in [("pause", true), ("resume", false)] {
                let t0 = Instant::now();
                rename_in(
                    &tmp,
                    &incoming,
                    &format!("bench-{i:03}-{cmd}.yaml"),
                    &format!("command: {cmd}\n"),
                );
                let deadline = t0 + Duration::from_secs(10);
                while !paused(want) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_micros(500));
                }
                if want {
                    lat.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        daemon.stop();
        self.table.add(
            "mailbox",
            "pause rename -> snapshot paused: true",
            "ms",
            lat.clone(),
            Some(100.0),
            format!("polled every 0.5 ms; p99 {}", fmt(percentile(&lat, 99.0))),
        );
        self.cleanup(&ws);
    }

    fn idle(&mut self) {
        let hz = clk_tck();
        for (label, n) in [("empty", 0usize), ("10k queued", 10_000)] {
            let ws = new_ws(&self.root, &format!("idle-{n}"), Runner::Scripted);
            // Unclaimable (a missing dependency), so the daemon scans and keeps them all.
            gen_tasks(&ws, "queue", "t-", n, Some("t-missing"));
            let daemon = Daemon::start(&ws);
            daemon.settle();
            let pid = daemon.pid();
            let (t0, c0) = (Instant::now(), cpu_ticks(pid));
            std::thread::sleep(Duration::from_secs(self.idle_secs));
            let (secs, c1) = (t0.elapsed().as_secs_f64(), cpu_ticks(pid));
            let rss = proc_kb(pid, "VmRSS") / 1024.0;
            let hwm = proc_kb(pid, "VmHWM") / 1024.0;
            daemon.stop();
            let pct = (c1 - c0) as f64 / hz / secs * 100.0;
            self.table.add(
                "idle",
                format!("idle daemon CPU ({label})"),
                "%",
                vec![pct],
                Some(0.1),
                format!(
                    "{} ticks of 1/{hz} s over {secs:.0} s (resolution {:.2} %)",
                    c1 - c0,
                    100.0 / hz / secs
                ),
            );
            self.table.add(
                "idle",
                format!("idle daemon RSS ({label})"),
                "MB",
                vec![rss],
                (n == 10_000).then_some(30.0),
                format!("VmHWM {} MB", fmt(hwm)),
            );
            self.cleanup(&ws);
        }
    }

    /// No per-tick work should grow with done items or run directories.
    fn growth(&mut self) {
        let n = if self.quick { 2_000 } else { 10_000 };
        for (label, history) in [("0 done", 0usize), ("history", n)] {
            let name = format!("{n} done + {n} run dirs");
            let label = if history == 0 {
                label.to_string()
            } else {
                name
            };
            let ws = new_ws(&self.root, &format!("growth-{history}"), Runner::Scripted);
            gen_tasks(&ws, "done", "t-old-", history, None);
            gen_run_dirs(&ws, history);
            gen_tasks(&ws, "queue", "t-new-", 1, None);
            let (_, in_tick, _) = self.claims(&ws, 1);
            self.table.add(
                "growth",
                format!("claim 1 queued, {label}"),
                "ms",
                in_tick,
                None,
                "runtime_started->claimed",
            );
            // Idle ticks: nothing claimable; wake the daemon with a non-task file.
            let idle_ws = new_ws(
                &self.root,
                &format!("growth-idle-{history}"),
                Runner::Scripted,
            );
            gen_tasks(&idle_ws, "done", "t-old-", history, None);
            gen_run_dirs(&idle_ws, history);
            let daemon = Daemon::start(&idle_ws);
            daemon.settle();
            let mut tail = Tail::new(&idle_ws);
            let _ = tail.poll();
            let queue = rt(&idle_ws).join("tasks/queue");
            let wakes = 40;
            let mut per = Vec::new();
            for i in 0..wakes {
                let c0 = cpu_ns(daemon.pid());
                let f = queue.join(format!("wake-{i}.txt"));
                fs::write(&f, "x").unwrap();
                std::thread::sleep(Duration::from_millis(30));
                fs::remove_file(&f).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                per.push((cpu_ns(daemon.pid()) - c0) as f64 / 1e6);
            }
            daemon.stop();
            self.table.add(
                "growth",
                format!("idle daemon CPU per wake, {label}"),
                "ms",
                per,
                None,
                "schedstat delta per create+remove (1-3 ticks)",
            );
            self.cleanup(&ws);
            self.cleanup(&idle_ws);
        }
    }

    /// A workspace after weeks of work (MILLRACE_BENCH_MARATHON_ITEMS done tasks and run
    /// folders, default 100 000; a MILLRACE_BENCH_MARATHON_LOG_MB event log, default 1024)
    /// against a fresh one: the commands an operator runs, and `run once` (start, tick, one
    /// scripted stage, shutdown). Issue 18's target: each within 1.5x of the fresh figure.
    fn marathon(&mut self) {
        let items = env_num(
            "MILLRACE_BENCH_MARATHON_ITEMS",
            if self.quick { 10_000 } else { 100_000 },
        ) as usize;
        let log_mb = env_num(
            "MILLRACE_BENCH_MARATHON_LOG_MB",
            if self.quick { 64 } else { 1024 },
        );
        for history in [false, true] {
            let label = if history {
                format!("{items} done + runs, {log_mb} MB log")
            } else {
                "fresh".to_string()
            };
            let ws = new_ws(&self.root, &format!("marathon-{history}"), Runner::Scripted);
            // The fresh workspace has a page of runs too (`runs ls` shows 20): the figures then
            // compare the cost of history, not that of printing 20 runs against printing none.
            gen_run_dirs(&ws, if history { items } else { 20 });
            if history {
                gen_tasks(&ws, "done", "t-old-", items, None);
                age_folder(&rt(&ws).join("tasks/done"));
                age_folder(&rt(&ws).join("runs"));
                gen_event_log(&ws, log_mb);
            }
            gen_tasks(&ws, "queue", "t-new-", self.reps + 1, None);
            run_ok(&ws, &["compile", "validate"]);

            for (name, args) in [
                ("status", vec!["status"]),
                ("queue ls", vec!["queue", "ls"]),
                ("runs ls", vec!["runs", "ls"]),
                ("doctor", vec!["doctor"]),
                ("run once (one stage)", vec!["run", "once"]),
            ] {
                let _ = measure(&mut millrace(&ws, &args));
                let wall: Vec<f64> = (0..self.reps)
                    .map(|_| measure(&mut millrace(&ws, &args)).wall_ms)
                    .collect();
                self.table.add(
                    "marathon",
                    format!("{name}, {label}"),
                    "ms",
                    wall,
                    None,
                    "whole process",
                );
            }
            let starts: Vec<f64> = (0..=self.reps)
                .map(|_| {
                    let spawned = SystemTime::now();
                    let mut tail = Tail::new(&ws);
                    let daemon = Daemon::start(&ws);
                    let started = tail
                        .wait_for(Duration::from_secs(120), |e| e.kind == "runtime_started")
                        .expect("runtime_started");
                    daemon.stop();
                    // Puts back what the daemon claimed; once the few queued tasks are all
                    // done there is nothing to put back, which it reports as a failure.
                    let _ = millrace(&ws, &["clear-stale-state", "--reason", "bench"]).output();
                    since_ms(started.at, spawned)
                })
                .skip(1)
                .collect();
            self.table.add(
                "marathon",
                format!("daemon start, {label}"),
                "ms",
                starts,
                Some(10.0),
                "spawn to runtime_started",
            );
            self.cleanup(&ws);
        }
    }

    /// `run daemon --until-idle` on MILLRACE_BENCH_LANES_TASKS independent tasks (default 20)
    /// of three stages each, `fixtures/lane-harness` taking MILLRACE_BENCH_LANES_SLEEP seconds
    /// per stage (default 1), at 1, 2, 4 and 8 lanes, each in a fresh git repository. Wall time
    /// is spawn to exit; the harness's own busy time comes from its `LANE_LOG`. Issue target:
    /// at least 3.5x the one-lane speed at 4 lanes.
    fn lanes(&mut self) {
        let sleep: f64 = std::env::var("MILLRACE_BENCH_LANES_SLEEP")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if self.quick { 0.3 } else { 1.0 });
        let tasks = env_num(
            "MILLRACE_BENCH_LANES_TASKS",
            if self.quick { 8 } else { 20 },
        ) as usize;
        let harness = Path::new(MANIFEST_DIR).join("fixtures/lane-harness");
        let base: Timestamp = "2026-02-10T09:30:00Z".parse().unwrap();
        let mut wall_1 = None;
        let mut at_4 = None;
        for n in [1usize, 2, 4, 8] {
            let ws = self.root.join(format!("lanes-{n}"));
            let _ = fs::remove_dir_all(&ws);
            fs::create_dir_all(&ws).unwrap();
            git(&ws, &["init", "-q", "-b", "main"]);
            git(&ws, &["config", "user.name", "bench"]);
            git(&ws, &["config", "user.email", "bench@localhost"]);
            fs::write(ws.join(".gitignore"), "millrace-agents/\n*.log\n").unwrap();
            fs::write(ws.join("README.md"), "# Lanes benchmark\n").unwrap();
            git(&ws, &["add", "-A"]);
            git(&ws, &["commit", "-qm", "start"]);
            run_ok(&ws, &["init"]);
            let log = ws.join("lanes.log");
            fs::write(
                rt(&ws).join("millrace.yaml"),
                format!(
                    "runners:\n  kill_grace_seconds: 1\n  codex:\n    command: {}\n    args: []\n    \
                     env:\n      LANE_SLEEP: \"{sleep}\"\n      LANE_LOG: {}\nwatchers:\n  \
                     settle_ms: 0\nexecution:\n  lanes: {n}\n",
                    harness.display(),
                    log.display()
                ),
            )
            .unwrap();
            let queue = rt(&ws).join("tasks/queue");
            fs::create_dir_all(&queue).unwrap();
            for i in 1..=tasks {
                let id = format!("t{i:02}");
                let created = base + jiff::SignedDuration::from_secs(i as i64);
                fs::write(
                    queue.join(format!("{id}.md")),
                    task_text(&id, created, None),
                )
                .unwrap();
            }

            let t0 = Instant::now();
            let out = millrace(
                &ws,
                &["run", "daemon", "--until-idle", "--max-ticks", "100000"],
            )
            .stdin(Stdio::null())
            .output()
            .expect("spawn millrace");
            let wall = t0.elapsed().as_secs_f64();
            assert!(
                out.status.success(),
                "lanes={n}: run daemon --until-idle failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            // Every task done; with lanes each landed one commit on main.
            let done = rt(&ws).join("tasks/done");
            let missing: Vec<String> = (1..=tasks)
                .map(|i| format!("t{i:02}"))
                .filter(|id| !done.join(format!("{id}.md")).is_file())
                .collect();
            assert!(
                missing.is_empty(),
                "lanes={n}: not in tasks/done: {missing:?} (workspace {})",
                ws.display()
            );
            let commits = git(&ws, &["log", "--oneline", "main"]).lines().count();
            // One lane runs in the workspace itself and commits nothing: the builder's files
            // stay in the working tree.
            let want = if n > 1 { tasks + 1 } else { 1 };
            assert_eq!(
                commits,
                want,
                "lanes={n}: commits on main (workspace {})",
                ws.display()
            );
            if n == 1 {
                for i in 1..=tasks {
                    assert!(
                        ws.join(format!("work/t{i:02}.txt")).is_file(),
                        "lanes=1: t{i:02}"
                    );
                }
            }
            let integrated = events(&ws)
                .iter()
                .filter(|e| e.kind == "work_item_integrated")
                .count();
            assert_eq!(
                integrated,
                if n > 1 { tasks } else { 0 },
                "lanes={n}: integrated"
            );

            // The harness's own time per stage, and how many stages ran at once.
            let runs = lane_log(&log);
            let stages = runs.len();
            assert_eq!(stages, tasks * 3, "lanes={n}: stages the harness ran");
            let busy: f64 = runs.iter().map(|(s, e)| (e - s) as f64 / 1e9).sum();
            let most = runs
                .iter()
                .map(|(s, _)| runs.iter().filter(|(a, b)| a <= s && s < b).count())
                .max()
                .unwrap_or(0);
            let ideal = tasks.div_ceil(n) as f64 * 3.0 * sleep;
            let ideal_1 = tasks as f64 * 3.0 * sleep;
            let speedup = match wall_1 {
                Some(w1) => w1 / wall,
                None => {
                    wall_1 = Some(wall);
                    1.0
                }
            };
            if n == 4 {
                at_4 = Some(speedup);
            }
            self.table.add(
                "lanes",
                format!("lanes={n}: wall, {tasks} tasks x 3 stages"),
                "s",
                vec![wall],
                (n == 4).then(|| wall_1.unwrap() / 3.5),
                format!(
                    "ideal {} s; at most {most} stage{} at once{}",
                    fmt(ideal),
                    if most == 1 { "" } else { "s" },
                    if n == 4 {
                        "; target = wall(1) / 3.5"
                    } else {
                        ""
                    }
                ),
            );
            self.table.add(
                "lanes",
                format!("lanes={n}: speed-up vs 1 lane"),
                "x",
                vec![speedup],
                None,
                match n {
                    1 => "baseline (no worktrees, no integration)".to_string(),
                    4 => format!("target >= 3.5x; ideal {}x", fmt(ideal_1 / ideal)),
                    _ => format!("ideal {}x", fmt(ideal_1 / ideal)),
                },
            );
            self.table.add(
                "lanes",
                format!("lanes={n}: runtime overhead per stage"),
                "ms",
                vec![(n as f64 * wall - busy) / stages as f64 * 1e3],
                None,
                if n == 1 {
                    "(wall - harness busy) / stages".to_string()
                } else {
                    format!("(lanes x wall - harness busy) / stages; {integrated} integrated")
                },
            );
            self.table.add(
                "lanes",
                format!("lanes={n}: harness time per stage"),
                "ms",
                vec![busy / stages as f64 * 1e3],
                None,
                format!("LANE_SLEEP {sleep} s; from LANE_LOG"),
            );
            self.cleanup(&ws);
        }
        if let Some(s) = at_4 {
            println!("lanes: speed-up at 4 lanes = {s:.1}x (target >= 3.5x)");
        }
    }

    fn cleanup(&self, ws: &Path) {
        if std::env::var_os("MILLRACE_BENCH_KEEP").is_none() {
            let _ = fs::remove_dir_all(ws);
        }
    }
}

fn classify(path: &str) -> String {
    let rel = path
        .split_once("/millrace-agents/")
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| path.to_string());
    if rel.is_empty() {
        return "(no path)".into();
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let is_dir = !parts.last().is_some_and(|p| p.contains('.'));
    let shape: Vec<String> = parts
        .iter()
        .map(|p| {
            if p.starts_with("run-") {
                "run-*".to_string()
            } else if p.starts_with("t-") || p.starts_with("request-") {
                format!("{}*", &p[..p.find('-').unwrap() + 1])
            } else if p.starts_with('.') {
                ".tmp*".to_string()
            } else {
                p.to_string()
            }
        })
        .collect();
    let mut s = shape.join("/");
    if is_dir {
        s.push_str("/ (dir)");
    }
    s
}

/// Run git in `dir`; panics with git's words when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs (is it installed?)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(start_ns, end_ns)` per stage `fixtures/lane-harness` ran (its `LANE_LOG`).
fn lane_log(path: &Path) -> Vec<(u128, u128)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = std::env::var_os("MILLRACE_BENCH_QUICK").is_some();
    let tmp = tempfile::Builder::new()
        .prefix("millrace-bench-")
        .tempdir()
        .expect("tempdir");
    let root = if std::env::var_os("MILLRACE_BENCH_KEEP").is_some() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let mut suite = Suite {
        root: root.clone(),
        reps: env_num("MILLRACE_BENCH_REPS", if quick { 3 } else { 7 }) as usize,
        quick,
        idle_secs: env_num("MILLRACE_BENCH_IDLE_SECS", if quick { 5 } else { 60 }),
        drops: env_num("MILLRACE_BENCH_DROPS", if quick { 30 } else { 120 }) as usize,
        table: Table { rows: Vec::new() },
    };
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "millrace perf suite: binary {BIN}\nworkspaces under {} | reps {} | idle {} s | {} cpus | loadavg {}",
        root.display(),
        suite.reps,
        suite.idle_secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.trim()
    );
    print_header();
    type Section = fn(&mut Suite);
    let sections: [(&str, Section); 9] = [
        ("cli", Suite::cli),
        ("claim", Suite::claim),
        ("stage", Suite::stage),
        ("intake", Suite::intake),
        ("mailbox", Suite::mailbox),
        ("growth", Suite::growth),
        ("idle", Suite::idle),
        ("marathon", Suite::marathon),
        ("lanes", Suite::lanes),
    ];
    let started = Instant::now();
    for (name, f) in sections {
        if filters.is_empty() || filters.iter().any(|x| name.contains(x.as_str())) {
            f(&mut suite);
        }
    }
    suite.table.print();
    println!(
        "suite took {:.0} s; loadavg now {}",
        started.elapsed().as_secs_f64(),
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
