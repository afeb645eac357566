//! Claude Code (`claude -p`): argv per permission level, output reading and failure classes.
//!
//! Claude runs with `--output-format stream-json --verbose`: one JSON event per line while it
//! works (so a long session is never mistaken for an idle one, and its API retries are
//! visible as `api_retry` events), ending with a `result` event that carries the final text,
//! the usage, the cost and the tool calls it refused (`permission_denials`).

use serde_json::{Map, Value};

use crate::config::Permission;
use crate::runners::codex::integer;
use crate::runners::harness::{
    json_objects, last_line, one_line, Diagnosis, FailureKind, HarnessReport, Outputs,
};
use crate::runners::result::TokenUsage;

/// Claude's own sandbox for shell commands (bubblewrap on Linux, Seatbelt on macOS), with
/// sandboxed commands approved automatically. Where the sandbox is unavailable Claude says so
/// on stderr and asks for each command, which headless means refusing it: a command never
/// runs outside the sandbox at `basic`.
const SANDBOXED_COMMANDS: &str = r#"{"sandbox":{"enabled":true,"autoAllowBashIfSandboxed":true}}"#;

/// The argv template for `level` (the command runner's template language).
///
/// - `basic`: edits in the project are accepted; shell commands run only inside Claude's
///   sandbox.
/// - `elevated`: edits accepted and any shell command allowed, outside a sandbox.
/// - `maximum`: every permission check bypassed (`bypassPermissions`).
pub fn argv(level: Permission) -> Vec<String> {
    let mut argv = vec![
        "claude",
        "-p",
        "{prompt}",
        "--output-format",
        "stream-json",
        "--verbose",
        "[--model {model}]",
        "--permission-mode",
    ];
    match level {
        Permission::Basic => argv.extend(["acceptEdits", "--settings", SANDBOXED_COMMANDS]),
        // `--allowedTools` takes several values: it must stay last.
        Permission::Elevated => argv.extend(["acceptEdits", "--allowedTools", "Bash"]),
        Permission::Maximum => argv.push("bypassPermissions"),
    }
    argv.into_iter().map(String::from).collect()
}

/// Environment the CLI needs at `level`: as root, Claude refuses `bypassPermissions` unless
/// told it runs in a sandbox.
pub fn env(level: Permission) -> Vec<(String, String)> {
    match level {
        Permission::Maximum => vec![("IS_SANDBOX".to_string(), "1".to_string())],
        Permission::Basic | Permission::Elevated => Vec::new(),
    }
}

/// Read a finished run: the `result` event on stdout (also the single object printed by
/// `--output-format json`); without one, the parser's complaint on stderr or the last retry.
pub fn read(out: &Outputs) -> HarnessReport {
    match json_objects(out.stdout).rev().find(|o| kind(o) == "result") {
        Some(result) => read_result(&result),
        None => read_without_result(out),
    }
}

fn kind(object: &Map<String, Value>) -> &str {
    object.get("type").and_then(Value::as_str).unwrap_or("")
}

fn read_result(result: &Map<String, Value>) -> HarnessReport {
    let text = result.get("result").and_then(Value::as_str);
    let is_error = result.get("is_error").and_then(Value::as_bool) == Some(true);
    let failure = is_error.then(|| {
        let message = text
            .filter(|t| !t.trim().is_empty())
            .unwrap_or("Claude Code reported an error result");
        let status = result.get("api_error_status").and_then(Value::as_u64);
        Diagnosis::new(classify(status, message), message)
    });
    HarnessReport {
        final_message: text.filter(|_| !is_error).map(str::to_string),
        usage: result
            .get("usage")
            .and_then(Value::as_object)
            .map(|u| usage(u, result)),
        refused: result
            .get("permission_denials")
            .and_then(Value::as_array)
            .map(|denials| denials.iter().map(denial).collect())
            .unwrap_or_default(),
        last_line: match &failure {
            Some(failure) => Some(failure.message.clone()),
            None => text.and_then(last_line),
        },
        failure,
    }
}

/// Claude counts uncached input, cache writes and cache reads separately; millrace's input
/// is all three (as Codex and Gemini count it), of which the reads are the cached part.
fn usage(u: &Map<String, Value>, result: &Map<String, Value>) -> TokenUsage {
    let field = |k: &str| u.get(k).and_then(integer).unwrap_or(0);
    let cached = field("cache_read_input_tokens");
    let input = field("input_tokens")
        .saturating_add(field("cache_creation_input_tokens"))
        .saturating_add(cached);
    let output = field("output_tokens");
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        thinking_tokens: 0,
        total_tokens: input.saturating_add(output),
        cost_usd: result.get("total_cost_usd").and_then(Value::as_f64),
    }
}

/// One refused tool call as `Tool target`: the file or command it was refused for.
fn denial(denial: &Value) -> String {
    let tool = denial
        .get("tool_name")
        .and_then(Value::as_str)
        .unwrap_or("a tool");
    let input = denial.get("tool_input");
    let target = [
        "file_path",
        "notebook_path",
        "command",
        "url",
        "path",
        "pattern",
    ]
    .iter()
    .find_map(|k| input.and_then(|i| i.get(*k)).and_then(Value::as_str))
    .map(str::to_string)
    .or_else(|| input.map(Value::to_string));
    one_line(&match target {
        Some(target) => format!("{tool} {target}"),
        None => tool.to_string(),
    })
}

/// The class of an error result from its HTTP status, else its words.
fn classify(status: Option<u64>, text: &str) -> FailureKind {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    match status {
        Some(401 | 403) => FailureKind::Auth,
        Some(429) => FailureKind::RateLimited,
        _ if has(&["Not logged in", "Invalid API key", "/login", "OAuth token"]) => {
            FailureKind::Auth
        }
        _ if has(&["usage limit", "rate limit", "hit your limit"]) => FailureKind::RateLimited,
        _ if has(&[
            "Unable to connect",
            "Request timed out",
            "ConnectionRefused",
            "fetch failed",
        ]) =>
        {
            FailureKind::Network
        }
        _ => FailureKind::HarnessError,
    }
}

/// No result event: the CLI refused its command line, or it was stopped while retrying.
fn read_without_result(out: &Outputs) -> HarnessReport {
    let refused_argv = out.exit_code.is_some_and(|c| c != 0).then(|| {
        out.stderr.lines().map(str::trim).find(|line| {
            line.starts_with("error: ") || line.contains("cannot be used with root/sudo")
        })
    });
    if let Some(Some(line)) = refused_argv {
        return HarnessReport {
            last_line: Some(one_line(line)),
            failure: Some(Diagnosis::new(FailureKind::BadInvocation, line)),
            ..HarnessReport::default()
        };
    }
    let retry = json_objects(out.stdout)
        .next_back()
        .filter(|o| o.get("subtype").and_then(Value::as_str) == Some("api_retry"));
    match retry {
        Some(retry) => {
            let status = retry.get("error_status").and_then(Value::as_u64);
            let message = format!(
                "retrying the API (attempt {} of {}): {}{}",
                retry
                    .get("attempt")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                retry
                    .get("max_retries")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                retry
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("error"),
                status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
            );
            let kind = match classify(status, "") {
                FailureKind::HarnessError => FailureKind::Network,
                kind => kind,
            };
            HarnessReport {
                last_line: Some(message.clone()),
                failure: Some(Diagnosis::new(kind, message)),
                ..HarnessReport::default()
            }
        }
        None => HarnessReport {
            last_line: last_line(out.stderr),
            ..HarnessReport::default()
        },
    }
}

/// Lines that show retrying rather than progress: the `api_retry` events.
pub fn noise() -> &'static [&'static str] {
    &[r#"^\{"type":"system","subtype":"api_retry""#]
}

/// Cheap usability checks.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["claude".to_string(), "--version".to_string()]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/harness/claude")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn read_run(code: i32, stdout: &str, stderr: &str) -> HarnessReport {
        let (stdout, stderr) = (fixture(stdout), fixture(stderr));
        read(&Outputs {
            exit_code: Some(code),
            stdout: &stdout,
            stderr: &stderr,
            last_message: None,
        })
    }

    fn read_stdout(code: i32, stdout: &str) -> HarnessReport {
        let stdout = fixture(stdout);
        read(&Outputs {
            exit_code: Some(code),
            stdout: &stdout,
            stderr: "",
            last_message: None,
        })
    }

    fn read_stderr(code: i32, stderr: &str) -> HarnessReport {
        let stderr = fixture(stderr);
        read(&Outputs {
            exit_code: Some(code),
            stdout: "",
            stderr: &stderr,
            last_message: None,
        })
    }

    #[test]
    fn an_edit_session_gives_the_final_text_and_usage_with_cache_writes_and_cost() {
        let report = read_run(0, "edit.stdout", "edit.stderr");
        assert_eq!(
            report.final_message.as_deref(),
            Some("Done the work.\n\n### BUILDER_COMPLETE\n")
        );
        assert_eq!(report.last_line.as_deref(), Some("### BUILDER_COMPLETE"));
        assert_eq!(report.failure, None);
        assert!(report.refused.is_empty());
        // Two turns of 100 uncached + 40 cache writes + 30 cache reads in, 20 out.
        assert_eq!(
            report.usage,
            Some(TokenUsage {
                input_tokens: 340,
                cached_input_tokens: 60,
                output_tokens: 40,
                thinking_tokens: 0,
                total_tokens: 380,
                cost_usd: Some(0.00253),
            })
        );
    }

    #[test]
    fn refused_edits_are_reported_with_their_target() {
        let report = read_stdout(0, "refused.stdout");
        assert_eq!(report.refused, ["Write /tmp/disc/proj/hello.txt"]);
        assert_eq!(report.failure, None);
        assert!(report.final_message.unwrap().contains("BUILDER_COMPLETE"));
    }

    #[test]
    fn error_results_are_classified_with_claudes_own_words() {
        for (file, kind, words) in [
            ("auth-401.stdout", FailureKind::Auth, "Invalid API key"),
            ("not-logged-in.stdout", FailureKind::Auth, "Not logged in"),
            (
                "rate-limit-429.stdout",
                FailureKind::RateLimited,
                "exceed your account's rate limit",
            ),
            (
                "connection-refused.stdout",
                FailureKind::Network,
                "Unable to connect to API",
            ),
        ] {
            let report = read_stdout(1, file);
            let failure = report
                .failure
                .unwrap_or_else(|| panic!("{file}: no failure"));
            assert_eq!(failure.kind, kind, "{file}");
            assert!(
                failure.message.contains(words),
                "{file}: {}",
                failure.message
            );
            assert_eq!(report.last_line.as_deref(), Some(failure.message.as_str()));
            assert_eq!(report.final_message, None, "{file}");
            assert_eq!(report.usage.map(|u| u.total_tokens), Some(0), "{file}");
        }
    }

    #[test]
    fn parser_refusals_are_bad_invocations() {
        for (file, words) in [
            ("bad-flag.stderr", "error: unknown option '--bogus-flag'"),
            ("bypass-as-root.stderr", "cannot be used with root/sudo"),
        ] {
            let report = read_stderr(1, file);
            let failure = report.failure.unwrap();
            assert_eq!(failure.kind, FailureKind::BadInvocation, "{file}");
            assert!(failure.message.contains(words), "{}", failure.message);
        }
        // The same words from a successful run are not a failure.
        assert_eq!(read_stderr(0, "bad-flag.stderr").failure, None);
    }

    #[test]
    fn a_run_stopped_while_retrying_is_classified_by_the_last_retry() {
        let retrying = |status: &str| {
            format!(
                "{{\"type\":\"system\",\"subtype\":\"init\"}}\n{{\"type\":\"system\",\"subtype\":\"api_retry\",\"attempt\":3,\"max_retries\":10,\"retry_delay_ms\":2000,\"error_status\":{status},\"error\":\"rate_limit\"}}\n"
            )
        };
        let read_text = |stdout: &str| {
            read(&Outputs {
                exit_code: None,
                stdout,
                stderr: "",
                last_message: None,
            })
        };
        let limited = read_text(&retrying("429")).failure.unwrap();
        assert_eq!(limited.kind, FailureKind::RateLimited);
        assert_eq!(
            limited.message,
            "retrying the API (attempt 3 of 10): rate_limit (HTTP 429)"
        );
        assert_eq!(
            read_text(&retrying("null")).failure.unwrap().kind,
            FailureKind::Network
        );
    }

    #[test]
    fn only_retry_events_are_noise() {
        let noise = regex::RegexSet::new(noise()).unwrap();
        let lines: Vec<String> = fixture("connection-refused.stdout")
            .lines()
            .map(str::to_string)
            .collect();
        let noisy: Vec<bool> = lines.iter().map(|l| noise.is_match(l)).collect();
        assert_eq!(noisy, [false, true, true, false, false]);
        assert!(!fixture("edit.stdout").lines().any(|l| noise.is_match(l)));
    }

    #[test]
    fn each_level_sets_its_permission_mode_and_only_maximum_claims_a_sandbox() {
        let mode = |level| {
            let argv = argv(level);
            let at = argv.iter().position(|a| a == "--permission-mode").unwrap();
            argv[at + 1].clone()
        };
        assert_eq!(mode(Permission::Basic), "acceptEdits");
        assert_eq!(mode(Permission::Elevated), "acceptEdits");
        assert_eq!(mode(Permission::Maximum), "bypassPermissions");
        assert!(argv(Permission::Basic).contains(&SANDBOXED_COMMANDS.to_string()));
        assert_eq!(argv(Permission::Elevated).last().unwrap(), "Bash");
        assert!(env(Permission::Basic).is_empty() && env(Permission::Elevated).is_empty());
        assert_eq!(
            env(Permission::Maximum),
            [("IS_SANDBOX".into(), "1".into())]
        );
    }
}
