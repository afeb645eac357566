//! Shared rendering: human text or JSON, chosen once per invocation.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

/// What every command gets: where the workspace is and how to print.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub workspace: PathBuf,
    pub json: bool,
}

impl Ctx {
    /// Context for one invocation.
    pub fn new(workspace: PathBuf, json: bool) -> Ctx {
        Ctx { workspace, json }
    }

    /// Print `value` as JSON with `--json`, else the human text `human` builds.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        let text = if self.json {
            let mut s = serde_json::to_string_pretty(value).expect("output serializes");
            s.push('\n');
            s
        } else {
            human()
        };
        print_stdout(&text);
    }

    /// Print one JSON line (streams such as `status watch`) or a human line.
    pub fn emit_line<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        let mut text = if self.json {
            serde_json::to_string(value).expect("output serializes")
        } else {
            human()
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        print_stdout(&text);
    }
}

/// Write to stdout. A closed pipe (`| head`) is not an error: the reader has all it wants,
/// so the command ends quietly with success (a stream such as `status watch` would otherwise
/// write into the void forever).
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if written.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// Python-style float display (`1.0`, `0.25`) for config compatibility.
pub fn py_float(value: f64) -> String {
    if value.fract() == 0.0 && value.is_finite() {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// `none` for absent values, as the reference prints them.
pub fn or_none<T: std::fmt::Display>(value: Option<T>) -> String {
    value
        .map(|v| v.to_string())
        .unwrap_or_else(|| "none".into())
}
