//! Claude Code (`claude -p`): argv per permission level, output reading and failure classes.

use serde_json::Value;

use crate::config::Permission;
use crate::runners::codex::integer;
use crate::runners::harness::{
    last_line, one_line, Diagnosis, FailureKind, HarnessReport, Outputs,
};
use crate::runners::result::TokenUsage;

/// The argv template for `level` (the command runner's template language).
pub fn argv(level: Permission) -> Vec<String> {
    let _ = level;
    [
        "claude",
        "-p",
        "{prompt}",
        "--output-format",
        "json",
        "[--model {model}]",
    ]
    .map(String::from)
    .to_vec()
}

/// Environment the CLI needs at `level`.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    Vec::new()
}

/// Read a finished run: stdout is one JSON result object (`--output-format json`).
pub fn read(out: &Outputs) -> HarnessReport {
    let Some(object) = result_object(out.stdout) else {
        return HarnessReport {
            last_line: last_line(out.stdout).or_else(|| last_line(out.stderr)),
            ..HarnessReport::default()
        };
    };
    let result = object.get("result").and_then(Value::as_str);
    let usage = object.get("usage").and_then(Value::as_object).map(|u| {
        let field = |k: &str| u.get(k).and_then(integer).unwrap_or(0);
        let input = field("input_tokens");
        let cached = field("cache_read_input_tokens");
        let output = field("output_tokens");
        TokenUsage {
            input_tokens: input,
            cached_input_tokens: cached,
            output_tokens: output,
            thinking_tokens: 0,
            total_tokens: input.saturating_add(cached).saturating_add(output),
            cost_usd: object.get("total_cost_usd").and_then(Value::as_f64),
        }
    });
    let last = result.and_then(last_line).map(|l| one_line(&l));
    let failure = (object.get("is_error").and_then(Value::as_bool) == Some(true)).then(|| {
        Diagnosis::new(
            FailureKind::HarnessError,
            last.clone()
                .unwrap_or_else(|| "harness reported an error result".into()),
        )
    });
    HarnessReport {
        final_message: result.map(str::to_string),
        usage,
        refused: Vec::new(),
        last_line: last,
        failure,
    }
}

/// The JSON result object: the whole stdout, else its last line that is an object.
fn result_object(stdout: &str) -> Option<serde_json::Map<String, Value>> {
    let object = |text: &str| match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    object(stdout).or_else(|| stdout.lines().rev().find_map(object))
}

/// Lines that show retrying rather than progress.
pub fn noise() -> &'static [&'static str] {
    &[]
}

/// Cheap usability checks.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["claude".to_string(), "--version".to_string()]]
}
