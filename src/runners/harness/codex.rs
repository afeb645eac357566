//! Codex CLI (`codex exec --json`): permission flags, output reading and failure classes.
//!
//! Facts from Codex CLI 0.171.0 (fixtures under `fixtures/harness/codex/`):
//! - stdout is JSONL: `thread.started`, `turn.started`, `item.started`/`item.completed` (items of
//!   type `agent_message`, `command_execution`, `error`, …), then `turn.completed` with the
//!   turn's `usage` (`input_tokens`, `cached_input_tokens`, `output_tokens`,
//!   `reasoning_output_tokens`, summed over the turn's model calls) or `turn.failed` with an
//!   `error.message`; stderr has only start-up warnings.
//! - A 401 is `unexpected status 401 Unauthorized: …`; a spent quota is `Quota exceeded. …`;
//!   a 429 after the retries is `exceeded retry limit, last status: 429 Too Many Requests`; a
//!   missing key is `Missing environment variable: `KEY``; each ends the run with exit 1.
//! - An unreachable provider is never an error exit: Codex prints
//!   `Reconnecting... waiting for network (…)` error events about every 20 s, forever — the
//!   stall detector's noise.
//! - The parser refuses an unknown flag with exit 2 and `error: unexpected argument '--x'`.
//! - The workspace-write sandbox turns a write outside the project (and outside /tmp) into a
//!   failed `command_execution` whose output says `Read-only file system`.

use serde_json::{Map, Value};

use crate::config::Permission;
use crate::runners::codex::integer;
use crate::runners::harness::{
    json_objects, last_line, one_line, Diagnosis, FailureKind, HarnessReport, Outputs,
};
use crate::runners::result::TokenUsage;

/// The flags for a permission level:
/// - `basic`: Codex's workspace-write sandbox — it edits the project and runs its checks;
///   writes elsewhere (but /tmp) and network access are refused by the kernel sandbox.
/// - `elevated`: no sandbox (`danger-full-access`); `codex exec` never asks for approval.
/// - `maximum`: no sandbox and no approvals or hook checks at all.
pub fn permission_flags(level: Permission) -> Vec<String> {
    let flags: &[&str] = match level {
        Permission::Basic => &["--sandbox", "workspace-write"],
        Permission::Elevated => &["--sandbox", "danger-full-access"],
        Permission::Maximum => &["--dangerously-bypass-approvals-and-sandbox"],
    };
    flags.iter().map(|f| f.to_string()).collect()
}

/// Environment the CLI needs at `level`: nothing beyond the operator's own.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    Vec::new()
}

fn kind(object: &Map<String, Value>) -> &str {
    object.get("type").and_then(Value::as_str).unwrap_or("")
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Words a sandboxed command's output carries when the sandbox, not the command, said no.
const SANDBOX_DENIALS: [&str; 3] = [
    "Read-only file system",
    "Operation not permitted",
    "sandbox denied",
];

/// Read a finished run: the event stream on stdout, the last-message file.
pub fn read(out: &Outputs) -> HarnessReport {
    let mut message: Option<String> = None;
    let mut usage: Option<TokenUsage> = None;
    let mut refused = Vec::new();
    let mut error: Option<String> = None;
    for event in json_objects(out.stdout) {
        match kind(&event) {
            "item.completed" => {
                let Some(item) = event.get("item").and_then(Value::as_object) else {
                    continue;
                };
                match kind(item) {
                    "agent_message" => message = Some(text(item, "text").to_string()),
                    "command_execution" if text(item, "status") == "failed" => {
                        let output = text(item, "aggregated_output");
                        if SANDBOX_DENIALS.iter().any(|d| output.contains(d)) {
                            let first = output.lines().next().unwrap_or_default();
                            refused.push(one_line(&format!("{}: {first}", text(item, "command"))));
                        }
                    }
                    _ => {}
                }
            }
            "turn.completed" => {
                if let Some(u) = event.get("usage").and_then(Value::as_object) {
                    let turn = turn_usage(u);
                    usage = Some(usage.map_or(turn, |sum| sum + turn));
                }
            }
            "turn.failed" => {
                let failed = event
                    .get("error")
                    .and_then(Value::as_object)
                    .map(|e| text(e, "message").to_string());
                error = failed.or(error);
            }
            "error" => error = Some(text(&event, "message").to_string()),
            _ => {}
        }
    }
    let final_message = out
        .last_message
        .filter(|m| !m.trim().is_empty())
        .map(str::to_string)
        .or(message);
    let failed = out.exit_code.is_some_and(|c| c != 0);
    let failure = if failed {
        error
            .as_deref()
            .map(|e| Diagnosis::new(classify(e), e))
            .or_else(|| bad_invocation(out.stderr))
    } else {
        None
    };
    HarnessReport {
        last_line: match &failure {
            Some(f) => Some(f.message.clone()),
            None => final_message
                .as_deref()
                .and_then(last_line)
                .or_else(|| error.as_deref().map(one_line)),
        },
        final_message: final_message.filter(|_| failure.is_none()),
        usage,
        refused,
        failure,
    }
}

/// One turn's usage; Codex's input includes the cached part, its output the reasoning.
fn turn_usage(u: &Map<String, Value>) -> TokenUsage {
    let field = |k: &str| u.get(k).and_then(integer).unwrap_or(0);
    let (input, output) = (field("input_tokens"), field("output_tokens"));
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: field("cached_input_tokens"),
        output_tokens: output,
        thinking_tokens: field("reasoning_output_tokens"),
        total_tokens: input.saturating_add(output),
        cost_usd: None,
    }
}

/// The class of an error event from its words.
fn classify(message: &str) -> FailureKind {
    let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
    if has(&[
        "401 Unauthorized",
        "403 Forbidden",
        "Missing environment variable",
        "Not logged in",
        "invalid_api_key",
        "Incorrect API key",
        "token_expired",
        "refresh token",
    ]) {
        FailureKind::Auth
    } else if has(&[
        "Quota exceeded",
        "429",
        "Too Many Requests",
        "usage limit",
        "rate limit",
        "Rate limit",
    ]) {
        FailureKind::RateLimited
    } else if has(&[
        "Reconnecting",
        "stream disconnected",
        "error sending request",
        "Connection failed",
        "failed to lookup address",
    ]) {
        FailureKind::Network
    } else {
        FailureKind::HarnessError
    }
}

/// The parser's refusal of the command line (exit 2, `error: unexpected argument …`).
fn bad_invocation(stderr: &str) -> Option<Diagnosis> {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error: "))?;
    Some(Diagnosis::new(FailureKind::BadInvocation, line))
}

/// Lines that show retrying rather than progress: the reconnect events.
pub fn noise() -> &'static [&'static str] {
    &[r#""message":"Reconnecting\.\.\."#, r"^Reconnecting\.\.\."]
}

/// Cheap checks: the version, and the login — unless an API key or a custom model provider
/// is configured, for which `codex login status` says "Not logged in" although runs work.
pub fn preflight() -> Vec<Vec<String>> {
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let mut checks = vec![argv(&["codex", "--version"])];
    if !api_key_setup() {
        checks.push(argv(&["codex", "login", "status"]));
    }
    checks
}

/// `OPENAI_API_KEY` is set, or `$CODEX_HOME/config.toml` (default `~/.codex`) names a model
/// provider of its own.
fn api_key_setup() -> bool {
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        return true;
    }
    let home = std::env::var_os("CODEX_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".codex")));
    home.and_then(|h| crate::workspace::atomic::read_named_string(h.join("config.toml")).ok())
        .is_some_and(|config| {
            config
                .lines()
                .any(|l| l.trim_start().starts_with("model_provider"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/harness/codex")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn read_stdout(name: &str, exit: i32) -> HarnessReport {
        let stdout = fixture(name);
        read(&Outputs {
            exit_code: Some(exit),
            stdout: &stdout,
            stderr: "",
            last_message: None,
        })
    }

    #[test]
    fn an_edit_run_gives_the_final_message_and_the_turn_usage() {
        let report = read_stdout("edit.jsonl", 0);
        assert_eq!(
            report.final_message.as_deref(),
            Some("Done.\n\n### BUILDER_COMPLETE")
        );
        assert_eq!(
            report.usage,
            Some(TokenUsage {
                input_tokens: 2200,
                cached_input_tokens: 200,
                output_tokens: 340,
                thinking_tokens: 50,
                total_tokens: 2540,
                cost_usd: None,
            })
        );
        assert!(report.failure.is_none() && report.refused.is_empty());
        assert_eq!(report.last_line.as_deref(), Some("### BUILDER_COMPLETE"));
    }

    #[test]
    fn failures_are_classified_from_codex_own_words() {
        let cases = [
            ("unauthorized.jsonl", FailureKind::Auth, "401 Unauthorized"),
            (
                "missing_key.jsonl",
                FailureKind::Auth,
                "Missing environment variable",
            ),
            ("quota.jsonl", FailureKind::RateLimited, "Quota exceeded"),
            (
                "rate_limited.jsonl",
                FailureKind::RateLimited,
                "429 Too Many Requests",
            ),
        ];
        for (name, kind, words) in cases {
            let report = read_stdout(name, 1);
            let failure = report.failure.unwrap_or_else(|| panic!("{name}"));
            assert_eq!(failure.kind, kind, "{name}");
            assert!(
                failure.message.contains(words),
                "{name}: {}",
                failure.message
            );
            assert!(report.final_message.is_none(), "{name}");
        }
        let stalled = read_stdout("unreachable.jsonl", 124);
        assert_eq!(stalled.failure.unwrap().kind, FailureKind::Network);
    }

    #[test]
    fn a_refused_flag_is_a_bad_invocation() {
        let stderr = fixture("bad_flag.stderr");
        let report = read(&Outputs {
            exit_code: Some(2),
            stdout: "",
            stderr: &stderr,
            last_message: None,
        });
        let failure = report.failure.unwrap();
        assert_eq!(failure.kind, FailureKind::BadInvocation);
        assert_eq!(
            failure.message,
            "error: unexpected argument '--full-auto' found"
        );
    }

    #[test]
    fn a_sandbox_denial_is_a_refusal_not_a_failure() {
        let report = read_stdout("sandbox_denied.jsonl", 0);
        assert_eq!(
            report.refused,
            ["/bin/bash -lc 'printf x > /root/cx-outside.txt': /bin/bash: line 1: /root/cx-outside.txt: Read-only file system"]
        );
        assert!(report.failure.is_none());
    }

    #[test]
    fn reconnect_lines_are_noise() {
        let set = regex::RegexSet::new(noise()).unwrap();
        let stdout = fixture("unreachable.jsonl");
        let reconnects = stdout.lines().filter(|l| set.is_match(l)).count();
        assert_eq!(reconnects, 4);
        assert!(!set.is_match(r#"{"type":"turn.started"}"#));
    }
}
