//! `logs/runtime_events.jsonl`: the append-only event log.
//!
//! One JSON object per line with sorted keys (`data`, `event_type`, `kind`, `occurred_at`,
//! `schema_version`), appended with fsync. Every line is also valid YAML.
//!
//! A crash in the middle of an append can leave a last line without its `\n`. The next
//! append cuts that torn tail off first (so it cannot merge with the new line into a corrupt
//! one in the middle of the log) and records its text in an `event_log_repaired` event.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::EventKind;
use crate::workspace::atomic::{self, IoError};
use crate::workspace::compress;

/// One event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub data: Map<String, Value>,
    pub event_type: String,
    pub kind: String,
    pub occurred_at: String,
    pub schema_version: String,
}

/// Appends events to one workspace's log.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    /// A log appending to `path`.
    pub fn new(path: PathBuf) -> EventLog {
        EventLog { path }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append an event, durably; `data` must be a JSON object (anything else is stored
    /// under `value`).
    pub fn emit(&self, kind: EventKind, data: Value) -> Result<(), IoError> {
        self.emit_all(vec![(kind, data)], true)
    }

    /// Append the events of one step with one write. With `sync` false they are not forced
    /// to disk yet: the next synced append (a stage's end, after its start) makes them
    /// durable too, so a stage costs the log one fsync.
    pub fn emit_all(&self, events: Vec<(EventKind, Value)>, sync: bool) -> Result<(), IoError> {
        if events.is_empty() {
            return Ok(());
        }
        self.repair_torn_tail()?;
        let lines: Vec<String> = events
            .into_iter()
            .map(|(kind, data)| {
                let event_type = kind.as_str();
                tracing::debug!(event_type, "event");
                let data = match data {
                    Value::Object(map) => map,
                    Value::Null => Map::new(),
                    other => {
                        let mut map = Map::new();
                        map.insert("value".into(), other);
                        map
                    }
                };
                let event = Event {
                    data,
                    event_type: event_type.to_string(),
                    kind: "runtime_event".into(),
                    occurred_at: crate::time::now_string(),
                    schema_version: "1.0".into(),
                };
                serde_json::to_string(&event).expect("events serialize")
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        atomic::append_lines(&self.path, &lines, sync)
    }

    /// Cut off a last line that lacks its `\n` (an append torn by a crash), keeping its text
    /// in an `event_log_repaired` event.
    fn repair_torn_tail(&self) -> Result<(), IoError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |action, e| IoError::path(action, &self.path, e);
        atomic::refuse_links(&self.path, true)?;
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(atomic::NO_FOLLOW)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(IoError::opening("open", &self.path, e)),
        };
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        let mut last = [0u8; 1];
        if len == 0 {
            return Ok(());
        }
        file.seek(SeekFrom::Start(len - 1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(|e| io("read", e))?;
        if last[0] == b'\n' {
            return Ok(());
        }
        let mut keep = len;
        let mut fragment = Vec::new();
        while keep > 0 {
            let start = keep.saturating_sub(64 * 1024);
            let mut chunk = vec![0u8; (keep - start) as usize];
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_exact(&mut chunk))
                .map_err(|e| io("read", e))?;
            match chunk.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    fragment.splice(0..0, chunk[i + 1..].iter().copied());
                    keep = start + i as u64 + 1;
                    break;
                }
                None => {
                    fragment.splice(0..0, chunk);
                    keep = start;
                }
            }
        }
        file.set_len(keep).map_err(|e| io("truncate", e))?;
        atomic::fsync_file(&file, &self.path)?;
        tracing::warn!(
            bytes = fragment.len(),
            "cut a torn last line off the event log"
        );
        let mut data = Map::new();
        data.insert("dropped_bytes".into(), Value::from(fragment.len()));
        data.insert(
            "fragment".into(),
            Value::from(String::from_utf8_lossy(&fragment).into_owned()),
        );
        let event = Event {
            data,
            event_type: EventKind::EventLogRepaired.as_str().into(),
            kind: "runtime_event".into(),
            occurred_at: crate::time::now_string(),
            schema_version: "1.0".into(),
        };
        let line = serde_json::to_string(&event).expect("events serialize");
        atomic::append_line(&self.path, &line)
    }

    /// Check the newest lines of the log (its last `window` bytes): where appends happen, so
    /// where a torn or foreign line can appear; the cost does not grow with the log. A
    /// problem is reported with its byte offset.
    pub fn check_tail(path: &Path, window: u64) -> Result<(), String> {
        let mut file = match atomic::open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let start = len.saturating_sub(window);
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // A window that starts mid-line skips that partial line.
        let mut offset = start;
        let mut lines = bytes.split(|b| *b == b'\n').peekable();
        if start > 0 {
            if let Some(partial) = lines.next() {
                offset += partial.len() as u64 + 1;
            }
        }
        while let Some(line) = lines.next() {
            let last = lines.peek().is_none();
            if !line.iter().all(u8::is_ascii_whitespace) {
                let event: Result<Event, _> = serde_json::from_slice(line);
                let ok = event.as_ref().is_ok_and(|e| {
                    e.kind == "runtime_event"
                        && e.schema_version == "1.0"
                        && !e.event_type.is_empty()
                });
                if !ok {
                    let what = if last {
                        "a torn last line"
                    } else {
                        "not a runtime event"
                    };
                    return Err(format!("{} at byte {offset}: {what}", path.display()));
                }
            }
            offset += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Read every event, the rolled segments first (oldest to newest), then the live log; a
    /// torn or foreign line is reported with its file and line number.
    pub fn read_all(path: &Path) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        for segment in Self::segments(path) {
            let bytes = compress::read(&segment.plain)
                .map_err(|e| format!("{}: {e}", segment.plain.display()))?;
            Self::parse_lines(&segment.plain, BufReader::new(&bytes[..]), &mut out)?;
        }
        match atomic::open_regular(path) {
            Ok(file) => Self::parse_lines(path, BufReader::new(file), &mut out)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        Ok(out)
    }

    fn parse_lines(path: &Path, reader: impl BufRead, out: &mut Vec<Event>) -> Result<(), String> {
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            if event.kind != "runtime_event"
                || event.schema_version != "1.0"
                || event.event_type.is_empty()
            {
                return Err(format!("{}:{}: not a runtime event", path.display(), n + 1));
            }
            out.push(event);
        }
        Ok(())
    }

    /// `logs/segments/` beside the live log.
    fn segments_dir(live: &Path) -> PathBuf {
        live.parent().unwrap_or(Path::new(".")).join(SEGMENTS_DIR)
    }

    /// The rolled segments, oldest first. A segment is listed once whether it is compressed,
    /// plain (rolled, not yet compressed), or both (a crash between the two steps).
    pub fn segments(live: &Path) -> Vec<Segment> {
        let Ok(read) = std::fs::read_dir(Self::segments_dir(live)) else {
            return Vec::new();
        };
        let mut found: std::collections::BTreeMap<String, Segment> = Default::default();
        for entry in read.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (stem, compressed) = match name.strip_suffix(compress::SUFFIX) {
                Some(stem) => (stem.to_string(), true),
                None => (name, false),
            };
            let Some(rolled_at) = segment_time(&stem) else {
                continue;
            };
            let seg = found.entry(stem.clone()).or_insert_with(|| Segment {
                plain: entry.path().with_file_name(&stem),
                rolled_at,
                compressed: false,
                plain_present: false,
            });
            if compressed {
                seg.compressed = true;
            } else {
                seg.plain_present = true;
            }
        }
        found.into_values().collect()
    }

    /// Roll the live log into `logs/segments/runtime_events-<UTC time>.jsonl.gz`. The rename
    /// is durable before compression starts, so a crash leaves the events in the live log or
    /// in a plain segment that [`EventLog::finish_segments`] compresses later; no event is lost
    /// or read twice. Returns the segment, or `None` when the live log is empty.
    pub fn roll(&self) -> Result<Option<PathBuf>, IoError> {
        self.repair_torn_tail()?;
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.len() > 0 => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoError::path("stat", &self.path, e)),
        }
        let dir = Self::segments_dir(&self.path);
        atomic::create_dir_all(&dir)?;
        let stamp = crate::time::now().strftime(SEGMENT_TIME).to_string();
        let mut n = 0;
        let segment = loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let segment = dir.join(format!("{SEGMENT_PREFIX}{stamp}{suffix}.jsonl"));
            if compress::exists(&segment) {
                n += 1;
                continue;
            }
            match atomic::move_file(&self.path, &segment) {
                Err(IoError::AlreadyExists { .. }) => n += 1,
                other => break other.map(|()| segment)?,
            }
        };
        compress::compress_file(&segment, atomic::Durability::Full)?;
        Ok(Some(compress::gz_path(&segment)))
    }

    /// Compress the segments a crash left plain; drop a plain copy whose `.gz` is complete.
    pub fn finish_segments(&self) -> Result<(), IoError> {
        for segment in Self::segments(&self.path) {
            match (segment.plain_present, segment.compressed) {
                (true, true) => std::fs::remove_file(&segment.plain)
                    .map_err(|e| IoError::path("remove", &segment.plain, e))?,
                (true, false) => {
                    compress::compress_file(&segment.plain, atomic::Durability::Full)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Delete the segments rolled before `cutoff`; returns how many.
    pub fn prune_segments(&self, cutoff: jiff::Timestamp) -> Result<usize, IoError> {
        let mut pruned = 0;
        for segment in Self::segments(&self.path) {
            if segment.rolled_at >= cutoff {
                continue;
            }
            for path in [segment.plain.clone(), compress::gz_path(&segment.plain)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(IoError::path("remove", &path, e)),
                }
            }
            pruned += 1;
        }
        Ok(pruned)
    }

    /// When the live log's first event happened (it rolls when a new UTC day begins).
    pub fn first_event_at(&self) -> Option<jiff::Timestamp> {
        let file = atomic::open_regular(&self.path).ok()?;
        let mut line = String::new();
        BufReader::new(file.take(64 * 1024))
            .read_line(&mut line)
            .ok()?;
        let event: Event = serde_json::from_str(&line).ok()?;
        event.occurred_at.parse().ok()
    }
}

/// A rolled part of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `logs/segments/runtime_events-<time>.jsonl` (the file itself may be only its `.gz`).
    pub plain: PathBuf,
    pub rolled_at: jiff::Timestamp,
    pub compressed: bool,
    pub plain_present: bool,
}

/// Folder of rolled segments, beside the live log.
pub const SEGMENTS_DIR: &str = "segments";
const SEGMENT_PREFIX: &str = "runtime_events-";
const SEGMENT_TIME: &str = "%Y%m%dT%H%M%SZ";

/// The roll time in a segment's name (`runtime_events-20261204T040316Z[-n].jsonl`).
fn segment_time(name: &str) -> Option<jiff::Timestamp> {
    let stamp = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(".jsonl")?;
    let stamp = stamp.split('-').next()?;
    let civil = jiff::civil::DateTime::strptime(SEGMENT_TIME, stamp).ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_sorted_keys_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("runtime_events.jsonl"));
        log.emit(
            EventKind::RuntimeStarted,
            serde_json::json!({"mode_id": "m", "a": 1}),
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("{\"data\":{\"a\":1,\"mode_id\":\"m\"},\"event_type\""));
        let events = EventLog::read_all(log.path()).unwrap();
        assert_eq!(events[0].event_type, "runtime_started");
    }

    #[test]
    fn the_tail_check_reads_only_the_newest_lines_and_names_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("runtime_events.jsonl"));
        for _ in 0..50 {
            log.emit(EventKind::RuntimeStarted, serde_json::json!({}))
                .unwrap();
        }
        assert!(EventLog::check_tail(log.path(), 1000).is_ok());
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        text.insert_str(0, "junk\n");
        std::fs::write(log.path(), &text).unwrap();
        // Old damage outside the window is not read; the whole log still reports it.
        assert!(EventLog::check_tail(log.path(), 1000).is_ok());
        assert!(EventLog::check_tail(log.path(), u64::MAX).is_err());
        text.push_str("{\"data\":{\"torn");
        std::fs::write(log.path(), &text).unwrap();
        let err = EventLog::check_tail(log.path(), 1000).unwrap_err();
        assert!(err.contains("torn last line"), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_kept_in_a_repair_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("runtime_events.jsonl"));
        log.emit(EventKind::RuntimeStarted, serde_json::json!({}))
            .unwrap();
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        text.push_str("{\"data\":{\"torn");
        std::fs::write(log.path(), text).unwrap();
        log.emit(EventKind::RuntimeTickStopped, serde_json::json!({}))
            .unwrap();
        let events = EventLog::read_all(log.path()).unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "runtime_started",
                "event_log_repaired",
                "runtime_tick_stopped"
            ]
        );
        assert_eq!(events[1].data["fragment"], "{\"data\":{\"torn");
    }
}
