//! Gemini CLI (`gemini -p`): argv per permission level, output reading and failure classes.
//!
//! Gemini runs with `--output-format stream-json`: one JSON event per line on stdout (the
//! assistant's text, each tool call and its result) ending with a `result` event that carries
//! the status, the error and the token counts. Its retries, stack traces and start-up
//! warnings go to stderr. `--skip-trust` is always passed: headless Gemini exits 55 in a
//! folder it was never told to trust.

use serde_json::{Map, Value};

use crate::config::Permission;
use crate::runners::codex::integer;
use crate::runners::harness::{
    json_objects, one_line, Diagnosis, FailureKind, HarnessReport, Outputs,
};
use crate::runners::result::TokenUsage;

/// The argv template for `level` (the command runner's template language).
///
/// Headless Gemini offers only the tools its approval mode lets it run without asking:
/// - `basic`: `auto_edit` — its edit tools (`write_file`, `replace`); no shell.
/// - `elevated`: `auto_edit` plus `run_shell_command`, outside a sandbox.
/// - `maximum`: `yolo` — every tool.
///
/// Gemini's own sandbox (`--sandbox`) runs it in a container image fetched from the network,
/// so no level asks for it.
pub fn argv(level: Permission) -> Vec<String> {
    let mut argv = vec!["gemini", "--skip-trust", "--approval-mode"];
    match level {
        Permission::Basic => argv.push("auto_edit"),
        Permission::Elevated => {
            argv.extend(["auto_edit", "--allowed-tools", "run_shell_command"]);
        }
        Permission::Maximum => argv.push("yolo"),
    }
    argv.extend([
        "--output-format",
        "stream-json",
        "[-m {model}]",
        "-p",
        "{prompt}",
    ]);
    argv.into_iter().map(String::from).collect()
}

/// Environment the CLI needs at `level`: nothing beyond the operator's own.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    Vec::new()
}

/// Tool errors that mean Gemini would not run the call, not that the call failed.
const REFUSALS: [&str; 4] = [
    "tool_not_registered",
    "policy_violation",
    "permission_denied",
    "path_not_in_workspace",
];

/// Read a finished run: the events on stdout, else what Gemini said on stderr.
pub fn read(out: &Outputs) -> HarnessReport {
    let mut text = String::new();
    let mut tools: Vec<(String, String)> = Vec::new();
    let mut refused = Vec::new();
    let mut result = None;
    for event in json_objects(out.stdout) {
        match field(&event, "type") {
            "message" if field(&event, "role") == "assistant" => {
                text.push_str(field(&event, "content"));
            }
            "tool_use" => {
                // The final message is what the model said after its last tool call.
                text.clear();
                let name = field(&event, "tool_name");
                let target = ["command", "file_path", "dir_path", "path", "url"]
                    .iter()
                    .find_map(|k| event.get("parameters")?.get(*k)?.as_str())
                    .map(|t| format!("{name} {t}"))
                    .unwrap_or_else(|| name.to_string());
                tools.push((field(&event, "tool_id").to_string(), target));
            }
            "tool_result" => {
                text.clear();
                let error = event.get("error").and_then(Value::as_object);
                let kind = error.map(|e| field(e, "type")).unwrap_or("");
                if REFUSALS.contains(&kind) {
                    let id = field(&event, "tool_id");
                    let call = tools
                        .iter()
                        .find(|(t, _)| t == id)
                        .map_or("a tool call", |(_, target)| target.as_str());
                    let why = error.map(|e| field(e, "message")).unwrap_or(kind);
                    refused.push(one_line(&format!("{call}: {why}")));
                }
            }
            "result" => result = Some(event),
            _ => {}
        }
    }
    let Some(result) = result else {
        return read_without_result(out);
    };
    let failure = (field(&result, "status") == "error").then(|| {
        let error = result.get("error").and_then(Value::as_object);
        let message = error
            .map(|e| field(e, "message"))
            .filter(|m| !m.trim().is_empty())
            .unwrap_or("Gemini CLI reported an error result");
        Diagnosis::new(classify(message), message)
    });
    HarnessReport {
        last_line: match &failure {
            Some(failure) => Some(failure.message.clone()),
            None => crate::runners::harness::last_line(&text),
        },
        final_message: failure.is_none().then_some(text),
        usage: result.get("stats").and_then(Value::as_object).map(usage),
        refused,
        failure,
    }
}

fn field<'a>(object: &'a Map<String, Value>, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The `result` event's stats: input includes the cached part; the thoughts are what the
/// total has beyond input and output. Gemini reports no cost.
fn usage(stats: &Map<String, Value>) -> TokenUsage {
    let count = |k: &str| stats.get(k).and_then(integer).unwrap_or(0);
    let (input, output, total) = (
        count("input_tokens"),
        count("output_tokens"),
        count("total_tokens"),
    );
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: count("cached"),
        output_tokens: output,
        thinking_tokens: total.saturating_sub(input.saturating_add(output)),
        total_tokens: total,
        cost_usd: None,
    }
}

/// The class of an error from Gemini's words (its API errors embed the HTTP status).
fn classify(text: &str) -> FailureKind {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "API key not valid",
        "API_KEY_INVALID",
        "UNAUTHENTICATED",
        "\"code\":401",
        "\"code\":403",
        "GEMINI_API_KEY",
        "Invalid auth method",
    ]) {
        FailureKind::Auth
    } else if has(&[
        "quota",
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted",
        "status 429",
    ]) {
        FailureKind::RateLimited
    } else if has(&[
        "fetch failed",
        "ECONNREFUSED",
        "ENOTFOUND",
        "ETIMEDOUT",
        "ECONNRESET",
    ]) {
        FailureKind::Network
    } else {
        FailureKind::HarnessError
    }
}

/// No result event: Gemini stopped before its first turn (a refused command line, missing
/// credentials, an untrusted folder) or was stopped while retrying.
fn read_without_result(out: &Outputs) -> HarnessReport {
    let lines: Vec<String> = out.stderr.lines().map(plain).collect();
    let said = |needles: &[&str]| {
        lines
            .iter()
            .position(|l| needles.iter().any(|n| l.contains(n)))
    };
    let failed = out.exit_code.is_some_and(|c| c != 0);
    let diagnosis = if let Some(at) = said(&[
        "Unknown argument",
        "Invalid values:",
        "Missing required argument",
        "Not enough non-option arguments",
        "not running in a trusted directory",
    ])
    .filter(|_| failed)
    {
        // yargs puts the detail of "Invalid values:" on the next line.
        let detail = match lines[at].ends_with(':') {
            true => lines.get(at + 1).map(String::as_str).unwrap_or(""),
            false => "",
        };
        Some(Diagnosis::new(
            FailureKind::BadInvocation,
            format!("{} {detail}", lines[at]),
        ))
    } else if let Some(message) = stderr_error(out.stderr).filter(|_| failed) {
        Some(Diagnosis::new(classify(&message), message))
    } else if let Some(at) = said(&["must specify the GEMINI_API_KEY"]).filter(|_| failed) {
        Some(Diagnosis::new(FailureKind::Auth, &lines[at]))
    } else {
        said(&["Attempt "])
            .and_then(|_| lines.iter().rev().find(|l| l.starts_with("Attempt ")))
            .map(|line| match classify(line) {
                FailureKind::HarnessError => Diagnosis::new(FailureKind::Network, line),
                kind => Diagnosis::new(kind, line),
            })
    };
    HarnessReport {
        last_line: match &diagnosis {
            Some(d) => Some(d.message.clone()),
            None => lines
                .iter()
                .rev()
                .find(|l| !l.is_empty() && !is_chatter(l))
                .map(|l| one_line(l)),
        },
        failure: diagnosis,
        ..HarnessReport::default()
    }
}

/// The message of the JSON error object Gemini prints on stderr for fatal start-up errors.
fn stderr_error(stderr: &str) -> Option<String> {
    let start = stderr.find("{\n")?;
    let value: Value = serde_json::from_str(stderr[start..].trim()).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_string())
}

/// A stderr line without colour codes and surrounding blanks.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&rest[..at]);
        let code = &rest[at + 1..];
        let end = code
            .strip_prefix('[')
            .and_then(|c| c.find(|ch: char| ch.is_ascii_alphabetic()).map(|i| i + 2))
            .unwrap_or(1);
        rest = code.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// Stack frames, error-object dumps and start-up warnings: never the line to show.
fn is_chatter(line: &str) -> bool {
    line.starts_with("at ")
        || line.starts_with('}')
        || line.starts_with("Warning: 256-color")
        || line.starts_with("Ripgrep is not available")
}

/// Lines that show retrying rather than progress: Gemini's "Attempt N failed … Retrying"
/// and the error dump that follows each (stack frames, `cause: {`, `code: 429,`, `}`).
pub fn noise() -> &'static [&'static str] {
    &[
        r"^Attempt \d+ failed",
        r"^at ",
        r"^(cause|code|message|details|status|retryDelayMs|reason|error): ",
        r"^[\]}),]+$",
    ]
}

/// Cheap usability checks.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["gemini".to_string(), "--version".to_string()]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/harness/gemini")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Read a captured run: `name.stdout` and `name.stderr`, each optional.
    fn read_run(code: i32, name: &str) -> HarnessReport {
        let load = |ext: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/harness/gemini")
                .join(format!("{name}.{ext}"));
            std::fs::read_to_string(path).unwrap_or_default()
        };
        let (stdout, stderr) = (load("stdout"), load("stderr"));
        assert!(
            !stdout.is_empty() || !stderr.is_empty(),
            "no fixture {name}"
        );
        read(&Outputs {
            exit_code: Some(code),
            stdout: &stdout,
            stderr: &stderr,
            last_message: None,
        })
    }

    #[test]
    fn an_edit_session_gives_the_final_text_and_usage() {
        let report = read_run(0, "edit");
        assert_eq!(
            report.final_message.as_deref(),
            Some("Done the work.\n\n### BUILDER_COMPLETE\n")
        );
        assert_eq!(report.last_line.as_deref(), Some("### BUILDER_COMPLETE"));
        assert_eq!(report.failure, None);
        assert!(report.refused.is_empty());
        // Two turns of 120 in (50 cached), 15 out and 10 thoughts, plus the model router's
        // 7 in and 3 out.
        assert_eq!(
            report.usage,
            Some(TokenUsage {
                input_tokens: 247,
                cached_input_tokens: 100,
                output_tokens: 33,
                thinking_tokens: 20,
                total_tokens: 300,
                cost_usd: None,
            })
        );
    }

    #[test]
    fn a_tool_the_approval_mode_withholds_is_reported_as_refused() {
        let report = read_run(0, "refused");
        assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
        assert!(
            report.refused[0]
                .starts_with("run_shell_command make check: Tool \"run_shell_command\" not found"),
            "{:?}",
            report.refused
        );
        assert!(report
            .final_message
            .unwrap()
            .ends_with("### BUILDER_COMPLETE\n"));
    }

    #[test]
    fn error_results_and_startup_failures_are_classified_with_geminis_words() {
        for (name, code, kind, words) in [
            ("auth-401", 145, FailureKind::Auth, "API key not valid"),
            (
                "quota",
                173,
                FailureKind::RateLimited,
                "exhausted your daily quota",
            ),
            (
                "rate-limit-429",
                173,
                FailureKind::RateLimited,
                "Resource has been exhausted",
            ),
            (
                "connection-refused",
                1,
                FailureKind::Network,
                "fetch failed",
            ),
            (
                "no-key",
                41,
                FailureKind::Auth,
                "must specify the GEMINI_API_KEY",
            ),
            (
                "bad-flag",
                1,
                FailureKind::BadInvocation,
                "Unknown arguments: bogus-flag",
            ),
            (
                "bad-value",
                1,
                FailureKind::BadInvocation,
                "Invalid values: Argument: approval-mode, Given: \"nosuch\"",
            ),
            (
                "untrusted",
                55,
                FailureKind::BadInvocation,
                "Gemini CLI is not running in a trusted directory",
            ),
        ] {
            let report = read_run(code, name);
            let failure = report
                .failure
                .unwrap_or_else(|| panic!("{name}: no failure"));
            assert_eq!(failure.kind, kind, "{name}: {}", failure.message);
            assert!(
                failure.message.contains(words),
                "{name}: {}",
                failure.message
            );
            assert!(!failure.message.contains('\u{1b}'), "{name}");
            assert_eq!(report.last_line.as_deref(), Some(failure.message.as_str()));
            assert_eq!(report.final_message, None, "{name}");
        }
        let auth = read(&Outputs {
            exit_code: Some(41),
            stdout: "",
            stderr: "{\n  \"session_id\": \"s\",\n  \"error\": {\n    \"type\": \"Error\",\n    \"message\": \"Invalid auth method selected.\",\n    \"code\": 41\n  }\n}",
            last_message: None,
        });
        assert_eq!(auth.failure.unwrap().kind, FailureKind::Auth);
    }

    #[test]
    fn a_run_stopped_while_retrying_is_a_network_failure_and_its_retries_are_noise() {
        let stderr = fixture("stall.stderr");
        let report = read(&Outputs {
            exit_code: None,
            stdout: "",
            stderr: &stderr,
            last_message: None,
        });
        let failure = report.failure.unwrap();
        assert_eq!(failure.kind, FailureKind::Network);
        assert!(failure
            .message
            .starts_with("Attempt 1 failed. Retrying with backoff"));

        let noise = regex::RegexSet::new(noise()).unwrap();
        let judged = |text: &str| -> Vec<bool> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| noise.is_match(l))
                .collect()
        };
        // After the two start-up warnings, everything a stalled Gemini prints is noise.
        let stall = judged(&stderr);
        assert_eq!(stall[..2], [false, false]);
        assert!(stall[2..].iter().all(|n| *n), "{stall:?}");
        assert!(judged(&fixture("rate-limit-429.stderr"))[2]);
        assert!(!judged(&fixture("edit.stdout")).iter().any(|n| *n));
    }

    #[test]
    fn each_level_sets_its_approval_mode_and_always_skips_the_trust_prompt() {
        let mode = |level| {
            let argv = argv(level);
            assert!(argv.contains(&"--skip-trust".to_string()));
            let at = argv.iter().position(|a| a == "--approval-mode").unwrap();
            argv[at + 1].clone()
        };
        assert_eq!(mode(Permission::Basic), "auto_edit");
        assert_eq!(mode(Permission::Elevated), "auto_edit");
        assert_eq!(mode(Permission::Maximum), "yolo");
        assert!(!argv(Permission::Basic).contains(&"run_shell_command".to_string()));
        assert!(argv(Permission::Elevated).contains(&"run_shell_command".to_string()));
    }
}
