//! What `watch` / `run daemon` print on stderr while they run: one line per thing that
//! happened, each with its time, rendered from the event the runtime recorded.

use serde_json::Value;

use crate::engine::daemon::Progress;
use crate::state::events::Event;

/// The longest piece of a harness's message shown on one line.
const MESSAGE_LIMIT: usize = 160;

/// Run the daemon (`run`) printing its progress; the last result line is printed too.
pub fn follow<T>(run: impl FnOnce(&mut dyn FnMut(Progress)) -> T) -> T {
    let mut printer = Printer::default();
    let out = run(&mut |p| printer.print(p));
    printer.finish();
    out
}

/// Prints progress on stderr, so stdout stays for data. A stage's result line waits for the
/// routing decision logged right after it, to say where the item goes next.
#[derive(Default)]
struct Printer {
    result: Option<Box<Event>>,
}

impl Printer {
    /// Print one report.
    fn print(&mut self, p: Progress) {
        match p {
            Progress::Event(event) if event.event_type == "stage_completed" => {
                self.finish();
                self.result = Some(event);
            }
            Progress::Event(event) if event.event_type == "router_decision" => {
                if let Some(mut result) = self.result.take() {
                    if let Some(next) = event.data.get("next_stage").filter(|n| n.is_string()) {
                        result.data.insert("next_stage".into(), next.clone());
                    }
                    self.result = Some(result);
                }
                self.finish();
            }
            Progress::Event(event) => {
                self.finish();
                if let Some(line) = event_line(&event) {
                    eprintln!("{line}");
                }
            }
            Progress::Started { plan_id, watcher } => {
                self.finish();
                eprintln!("millrace: running plan {plan_id} (file events: {watcher}); Ctrl-C stops")
            }
            Progress::Idle => self.finish(),
            Progress::Warning(w) => {
                self.finish();
                eprintln!("millrace: warning: {w}")
            }
        }
    }

    /// Print a result line still waiting for its routing decision.
    fn finish(&mut self) {
        if let Some(line) = self.result.take().and_then(|event| event_line(&event)) {
            eprintln!("{line}");
        }
    }
}

fn text<'a>(data: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `HH:MM:SS` (UTC) of an RFC 3339 timestamp.
fn clock(occurred_at: &str) -> &str {
    occurred_at.get(11..19).unwrap_or(occurred_at)
}

/// `4.2s`, `3m 07s`, `1h 02m`.
fn duration(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    match whole {
        0..60 => format!("{seconds:.1}s"),
        60..3600 => format!("{}m {:02}s", whole / 60, whole % 60),
        _ => format!("{}h {:02}m", whole / 3600, whole % 3600 / 60),
    }
}

/// One line of a possibly long, multi-line message.
fn one_line(message: &str) -> String {
    let flat = flat(message);
    match flat.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// `message` on one line, whole: a reason that quotes git or a harness can span several.
fn flat(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// ` [class: message]` for a failure, empty otherwise.
fn failure(data: &serde_json::Map<String, Value>) -> String {
    match (text(data, "failure_class"), text(data, "failure_message")) {
        (Some(class), Some(message)) => format!("  [{class}: {}]", one_line(message)),
        (Some(class), None) => format!("  [{class}]"),
        (None, Some(message)) => format!("  [{}]", one_line(message)),
        (None, None) => String::new(),
    }
}

/// A second line, `warning: the harness refused: a | b`, when it refused edits or commands
/// (worth a look even when the stage succeeded).
fn refused(data: &serde_json::Map<String, Value>, at: &str) -> String {
    let refused: Vec<String> = data
        .get("refused")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(one_line)
                .collect()
        })
        .unwrap_or_default();
    if refused.is_empty() {
        String::new()
    } else {
        format!(
            "\n{at}  warning: the harness refused: {}",
            refused.join(" | ")
        )
    }
}

/// `[lane 2] ` for an event of a parallel lane, else nothing.
fn lane(data: &serde_json::Map<String, Value>) -> String {
    data.get("lane")
        .and_then(Value::as_u64)
        .map(|n| format!("[lane {n}] "))
        .unwrap_or_default()
}

fn item(data: &serde_json::Map<String, Value>, kind: &str, id: &str) -> String {
    match (text(data, kind), text(data, id)) {
        (Some(kind), Some(id)) => format!("{kind} {id}"),
        (_, Some(id)) => id.to_string(),
        _ => match text(data, "closure_target_root_spec_id") {
            Some(root) => format!("closure target {root}"),
            None => "no item".into(),
        },
    }
}

/// The line for an event worth showing; `None` for bookkeeping events.
pub fn event_line(event: &Event) -> Option<String> {
    let d = &event.data;
    let at = clock(&event.occurred_at);
    let stage = text(d, "stage").unwrap_or("?");
    let what = match event.event_type.as_str() {
        "stage_started" => format!(
            "{}{stage:<14} {}  [{}]",
            lane(d),
            item(d, "work_item_kind", "work_item_id"),
            text(d, "run_id").unwrap_or("?")
        ),
        "stage_completed" => format!(
            "{}{stage:<14} {}-> {} in {}{}{}{}",
            lane(d),
            match lane(d).as_str() {
                "" => String::new(),
                _ => format!("task {} ", text(d, "work_item_id").unwrap_or("?")),
            },
            text(d, "terminal_result").unwrap_or("no result"),
            duration(d.get("duration_seconds").and_then(Value::as_f64)?),
            text(d, "next_stage")
                .map(|next| format!(" (next: {next})"))
                .unwrap_or_default(),
            failure(d),
            refused(d, at)
        ),
        "stage_interrupted" => format!(
            "{}{stage:<14} interrupted; {}",
            lane(d),
            text(d, "action").unwrap_or("")
        ),
        "work_item_completed" => format!("done: {}", item(d, "kind", "id")),
        "work_item_integrated" => match text(d, "commit") {
            _ if text(d, "outcome") == Some("no_changes") => format!(
                "{}landed: task {} changed nothing; nothing to land on {}",
                lane(d),
                text(d, "work_item_id").unwrap_or("?"),
                text(d, "base_branch").unwrap_or("?")
            ),
            Some(commit) => format!(
                "{}landed: task {} on {} at {}",
                lane(d),
                text(d, "work_item_id").unwrap_or("?"),
                text(d, "base_branch").unwrap_or("?"),
                commit.get(..10).unwrap_or(commit)
            ),
            None => format!(
                "{}branch {} left for review",
                lane(d),
                text(d, "branch").unwrap_or("?")
            ),
        },
        "integration_conflict" => format!(
            "{}CONFLICT: task {} with {} in {} (attempt {} of {}): {}",
            lane(d),
            text(d, "work_item_id").unwrap_or("?"),
            text(d, "base_branch").unwrap_or("?"),
            d.get("files")
                .and_then(Value::as_array)
                .map(|f| f
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            d.get("attempt").and_then(Value::as_u64).unwrap_or(0),
            d.get("limit").and_then(Value::as_u64).unwrap_or(0),
            text(d, "action").unwrap_or("")
        ),
        "integration_waiting" => format!(
            "{}task {} waits to land: {}",
            lane(d),
            text(d, "work_item_id").unwrap_or("?"),
            text(d, "reason").unwrap_or("")
        ),
        "lane_cleaned" => format!(
            "cleaned up after a crash: {}",
            [text(d, "worktree"), text(d, "branch")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "work_item_blocked" => format!(
            "BLOCKED: {}: {}{}",
            item(d, "kind", "id"),
            flat(text(d, "reason").unwrap_or("no reason recorded")),
            failure(d)
        ),
        "work_item_requeued" => format!(
            "requeued: {}: {}",
            item(d, "kind", "id"),
            text(d, "reason").unwrap_or("")
        ),
        "work_item_quarantined" => format!(
            "rejected {} -> {}: {}",
            text(d, "source")?,
            text(d, "destination").unwrap_or("quarantine"),
            text(d, "error").unwrap_or("")
        ),
        "mailbox_command_failed" => match text(d, "file") {
            Some(file) => format!(
                "rejected mailbox file {file}: {}",
                text(d, "error").unwrap_or("")
            ),
            None => format!(
                "{} failed: {}",
                text(d, "command").unwrap_or("mailbox command"),
                text(d, "error").unwrap_or("")
            ),
        },
        "mailbox_command_applied" => format!(
            "{}: {}",
            text(d, "command")?,
            text(d, "detail").unwrap_or("applied")
        ),
        "runtime_paused" => format!(
            "paused: {}",
            text(d, "reason").unwrap_or("nothing new starts until `millrace resume`")
        ),
        "runtime_resumed" => match text(d, "reason") {
            Some(reason) => format!("resumed: {reason}"),
            None => "resumed".into(),
        },
        "runner_fallback" => format!(
            "{stage:<14} runner {} failed{}; running it on {}",
            text(d, "from").unwrap_or("?"),
            failure(d),
            text(d, "to").unwrap_or("?")
        ),
        "runtime_tick_stopped" => format!(
            "stopping: {}",
            text(d, "reason").unwrap_or("stop requested")
        ),
        "runtime_config_reloaded" => format!(
            "config reloaded: plan {}",
            text(d, "compiled_plan_id").unwrap_or("?")
        ),
        "runtime_config_reload_failed" => format!(
            "config reload failed, kept plan {}: {}",
            text(d, "compiled_plan_id").unwrap_or("?"),
            text(d, "error").unwrap_or("")
        ),
        "idea_normalized_to_spec" => format!(
            "idea {} -> spec {}",
            text(d, "idea_path")?,
            text(d, "spec_id").unwrap_or("?")
        ),
        "runtime_post_stage_recovery_scheduled" => format!(
            "{stage:<14} result not applied ({}); repair scheduled",
            text(d, "error_code").unwrap_or("error")
        ),
        "event_log_rolled" => format!(
            "event log rolled ({}) into {}",
            match text(d, "reason") {
                Some("new_day") => "a new day",
                _ => "size",
            },
            text(d, "segment").unwrap_or("?")
        ),
        "state_file_reset" => format!(
            "STATE FILE SET ASIDE: {} no longer parsed ({}); moved to quarantine/, started afresh",
            text(d, "file").unwrap_or("?"),
            text(d, "error").unwrap_or("?")
        ),
        "usage_rebuilt" => format!(
            "usage ledger rebuilt: {} stage results of {} runs counted again",
            d.get("stages").and_then(Value::as_u64).unwrap_or(0),
            d.get("runs").and_then(Value::as_u64).unwrap_or(0)
        ),
        "retention_swept" => {
            let n = |key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0);
            format!(
                "retention: {} runs compressed, {} deleted, {} log segments deleted, {} freed{}",
                n("compressed_runs"),
                n("deleted_runs"),
                n("pruned_segments"),
                size(n("bytes_freed")),
                match n("kept_runs") {
                    0 => String::new(),
                    kept => format!(" ({kept} past a limit kept: active, blocked or closure)"),
                }
            )
        }
        _ => return None,
    };
    Some(format!("{at}  {what}"))
}

/// Bytes for people: `12.3 MiB` (`--json` has the bytes).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_shows_what_it_did_and_what_it_kept() {
        let line = event_line(&event(
            "retention_swept",
            serde_json::json!({"compressed_runs": 3, "deleted_runs": 2, "pruned_segments": 0,
                               "bytes_freed": 5_400_000, "kept_runs": 1}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  retention: 3 runs compressed, 2 deleted, 0 log segments deleted, 5.1 MiB freed (1 past a limit kept: active, blocked or closure)"
        );
        let line = event_line(&event(
            "event_log_rolled",
            serde_json::json!({"reason": "new_day", "segment": "millrace-agents/logs/segments/x.jsonl.gz"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  event log rolled (a new day) into millrace-agents/logs/segments/x.jsonl.gz"
        );
    }

    fn event(kind: &str, data: Value) -> Event {
        Event {
            data: data.as_object().cloned().unwrap_or_default(),
            event_type: kind.into(),
            kind: "runtime_event".into(),
            occurred_at: "2026-03-01T10:04:05.123Z".into(),
            schema_version: "1.0".into(),
        }
    }

    #[test]
    fn a_failed_stage_shows_time_duration_class_and_message() {
        let line = event_line(&event(
            "stage_completed",
            serde_json::json!({"stage": "builder", "terminal_result": "BLOCKED",
                               "duration_seconds": 125.5, "failure_class": "harness_failure",
                               "failure_message": "quota\n  exceeded for model"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  builder        -> BLOCKED in 2m 05s  [harness_failure: quota exceeded for model]"
        );
        let line = event_line(&event(
            "stage_completed",
            serde_json::json!({"stage": "checker", "terminal_result": "FIX_NEEDED",
                               "duration_seconds": 3.06, "next_stage": "fixer"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  checker        -> FIX_NEEDED in 3.1s (next: fixer)"
        );
    }

    #[test]
    fn a_lane_s_lines_name_the_lane_and_the_task() {
        let line = event_line(&event(
            "stage_completed",
            serde_json::json!({"stage": "checker", "terminal_result": "CHECKER_PASS",
                               "duration_seconds": 1.0, "lane": 2, "work_item_id": "t4"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  [lane 2] checker        task t4 -> CHECKER_PASS in 1.0s"
        );
        let line = event_line(&event(
            "work_item_integrated",
            serde_json::json!({"lane": 2, "work_item_id": "t4", "base_branch": "main",
                               "commit": "0123456789abcdef", "branch": "millrace/t4"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  [lane 2] landed: task t4 on main at 0123456789"
        );
        let line = event_line(&event(
            "work_item_integrated",
            serde_json::json!({"lane": 1, "work_item_id": "t6", "base_branch": "main",
                               "commit": null, "outcome": "no_changes"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  [lane 1] landed: task t6 changed nothing; nothing to land on main"
        );
        let line = event_line(&event(
            "integration_conflict",
            serde_json::json!({"lane": 1, "work_item_id": "t5", "base_branch": "main",
                               "files": ["a.rs", "b.rs"], "attempt": 1, "limit": 2,
                               "action": "sent back to the fixer stage in its worktree"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  [lane 1] CONFLICT: task t5 with main in a.rs, b.rs (attempt 1 of 2): sent back to the fixer stage in its worktree"
        );
    }

    #[test]
    fn a_blocked_item_shows_its_reason_and_bookkeeping_is_silent() {
        let line = event_line(&event(
            "work_item_blocked",
            serde_json::json!({"kind": "task", "id": "t1", "reason": "fix cycle budget spent"}),
        ))
        .unwrap();
        assert_eq!(line, "10:04:05  BLOCKED: task t1: fix cycle budget spent");
        // git's words span lines (`hint:` blocks); the watch line stays one line, whole.
        let line = event_line(&event(
            "work_item_blocked",
            serde_json::json!({"kind": "task", "id": "t2",
                               "reason": "integration_failed: git: error: cannot rebase\nhint: commit or stash\nhint:   them first"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  BLOCKED: task t2: integration_failed: git: error: cannot rebase hint: commit or stash hint: them first"
        );
        assert_eq!(
            event_line(&event("runtime_daemon_lock_acquired", Value::Null)),
            None
        );
    }

    #[test]
    fn a_state_file_set_aside_and_a_rebuilt_ledger_are_shown() {
        let line = event_line(&event(
            "state_file_reset",
            serde_json::json!({"file": "/w/millrace-agents/state/usage_ledger.yaml",
                               "error": "bad YAML"}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  STATE FILE SET ASIDE: /w/millrace-agents/state/usage_ledger.yaml no longer parsed (bad YAML); moved to quarantine/, started afresh"
        );
        let line = event_line(&event(
            "usage_rebuilt",
            serde_json::json!({"runs": 2, "stages": 5}),
        ))
        .unwrap();
        assert_eq!(
            line,
            "10:04:05  usage ledger rebuilt: 5 stage results of 2 runs counted again"
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_LIMIT + 5);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MESSAGE_LIMIT + 1);
        assert!(cut.ends_with('…'));
    }
}
