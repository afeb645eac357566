//! `logs/runtime_events.jsonl`: the append-only event log.
//!
//! One JSON object per line with sorted keys (`data`, `event_type`, `kind`, `occurred_at`,
//! `schema_version`), appended with fsync. Every line is also valid YAML.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::workspace::atomic::{self, IoError};

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
    pub fn new(path: PathBuf) -> EventLog {
        EventLog { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append an event; `data` must be a JSON object (anything else is stored under `value`).
    pub fn emit(&self, event_type: &str, data: Value) -> Result<(), IoError> {
        let data = match data {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        tracing::debug!(event_type, "event");
        let event = Event {
            data,
            event_type: event_type.to_string(),
            kind: "runtime_event".into(),
            occurred_at: crate::time::now_string(),
            schema_version: "1.0".into(),
        };
        let line = serde_json::to_string(&event).expect("events serialize");
        atomic::append_line(&self.path, &line)
    }

    /// Read every event; a torn or foreign line is reported with its line number.
    pub fn read_all(path: &Path) -> Result<Vec<Event>, String> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut out = Vec::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
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
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_sorted_keys_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path().join("runtime_events.jsonl"));
        log.emit(
            "runtime_started",
            serde_json::json!({"mode_id": "m", "a": 1}),
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("{\"data\":{\"a\":1,\"mode_id\":\"m\"},\"event_type\""));
        let events = EventLog::read_all(log.path()).unwrap();
        assert_eq!(events[0].event_type, "runtime_started");
    }
}
