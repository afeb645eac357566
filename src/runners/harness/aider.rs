//! Aider (`aider --message`): argv per permission level, output reading and failure classes.
//!
//! Facts from aider-chat 0.86.2 (fixtures under `fixtures/harness/aider/`):
//! - Without `--no-pretty` Aider renders the model's Markdown, so `### BUILDER_COMPLETE`
//!   reaches stdout without its `###` and the marker is lost.
//! - It adds `.aider*` to the project's `.gitignore` unless `--no-gitignore` (in a folder that
//!   is not a git repository it creates one, and that `.gitignore`, whatever the flag), keeps its chat
//!   and input history in the project unless told where, and commits its edits unless
//!   `--no-auto-commits`: millrace keeps the project's history for the stages and the
//!   operator to write, so the histories go to the run folder and Aider never commits.
//! - Everything goes to stdout, with exit 0 even when the API failed: a rejected key prints
//!   `litellm.AuthenticationError: …`, a 429 prints `litellm.RateLimitError: …` and
//!   `Retrying in N seconds...` (doubling up to a minute) before giving up. Only the
//!   argument parser exits non-zero (2, `aider: error: unrecognized arguments: …`).
//! - Usage is printed per model call: `Tokens: 1.5k sent, 60 received.` (also
//!   `N cache write`, `N cache hit`), then ` Cost: $0.01 message, $0.02 session.` when the
//!   model's price is known.

use regex::Regex;
use std::sync::OnceLock;

use crate::config::Permission;
use crate::runners::harness::{
    last_line, one_line, Diagnosis, FailureKind, HarnessReport, Outputs,
};
use crate::runners::result::TokenUsage;

/// The argv template for `level` (the command runner's template language). Aider has no
/// sandbox: every level edits the project; `basic` keeps it from suggesting (and, with
/// `--yes-always`, running) shell commands, `elevated` and `maximum` let it run them.
pub fn argv(level: Permission) -> Vec<String> {
    let mut argv = vec![
        "aider",
        "--no-pretty",
        "--no-gitignore",
        "--yes-always",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-check-update",
        "--no-show-release-notes",
        "--analytics-disable",
        "--no-show-model-warnings",
        "--chat-history-file",
        "{run_dir}/aider.chat.history.md",
        "--input-history-file",
        "{run_dir}/aider.input.history",
    ];
    if level == Permission::Basic {
        argv.push("--no-suggest-shell-commands");
    }
    argv.extend(["[--model {model}]", "--message", "{prompt}"]);
    argv.into_iter().map(String::from).collect()
}

/// Environment the CLI needs at `level`: the model price table bundled with Aider instead
/// of a download at every start.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    vec![(
        "LITELLM_LOCAL_MODEL_COST_MAP".to_string(),
        "True".to_string(),
    )]
}

fn tokens_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^Tokens: ([\d.]+k?) sent(?:, ([\d.]+k?) cache write)?(?:, ([\d.]+k?) cache hit)?, ([\d.]+k?) received\.(?:\s*Cost: \$([\d.]+) message)?",
        )
        .expect("valid tokens regex")
    })
}

fn cost_line() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^Cost: \$([\d.]+) message").expect("valid cost regex"))
}

/// `1.5k` → 1500, `778` → 778 (Aider rounds what it prints).
fn count(text: &str) -> u64 {
    match text.strip_suffix('k') {
        Some(thousands) => (thousands.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u64,
        None => text.parse().unwrap_or(0),
    }
}

/// The sum of every `Tokens: …` report (one per model call).
fn usage(stdout: &str) -> Option<TokenUsage> {
    let mut total: Option<TokenUsage> = None;
    let mut cost: Option<f64> = None;
    for line in stdout.lines().map(str::trim) {
        if let Some(c) = cost_line().captures(line) {
            *cost.get_or_insert(0.0) += c[1].parse::<f64>().unwrap_or(0.0);
            continue;
        }
        let Some(c) = tokens_line().captures(line) else {
            continue;
        };
        let field = |i: usize| c.get(i).map_or(0, |m| count(m.as_str()));
        let (sent, hit, received) = (field(1), field(3), field(4));
        if let Some(m) = c.get(5) {
            *cost.get_or_insert(0.0) += m.as_str().parse::<f64>().unwrap_or(0.0);
        }
        let call = TokenUsage {
            input_tokens: sent,
            cached_input_tokens: hit,
            output_tokens: received,
            thinking_tokens: 0,
            total_tokens: sent + received,
            cost_usd: None,
        };
        total = Some(total.map_or(call, |t| t + call));
    }
    total.map(|t| TokenUsage {
        cost_usd: cost,
        ..t
    })
}

/// What Aider's API error lines mean.
fn classify(line: &str) -> Option<FailureKind> {
    if line.starts_with("litellm.AuthenticationError")
        || line.starts_with("litellm.PermissionDeniedError")
        || line.contains("not able to authenticate you")
    {
        Some(FailureKind::Auth)
    } else if line.starts_with("litellm.RateLimitError") || line.contains("rate limited you") {
        Some(FailureKind::RateLimited)
    } else if line.starts_with("litellm.APIConnectionError")
        || line.starts_with("litellm.Timeout")
        || line.starts_with("litellm.InternalServerError")
        || line.starts_with("litellm.ServiceUnavailableError")
    {
        Some(FailureKind::Network)
    } else {
        None
    }
}

/// Read a finished run: the marker is scanned in stdout itself.
pub fn read(out: &Outputs) -> HarnessReport {
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    // The last `litellm.…Error` line carries the provider's words; Aider's own summary line
    // ("The API provider …") is the fallback.
    let litellm = |line: &&str| line.starts_with("litellm.");
    let error_at = lines
        .iter()
        .rposition(|l| litellm(l) && classify(l).is_some())
        .or_else(|| lines.iter().rposition(|l| classify(l).is_some()));
    let api_error = error_at.and_then(|at| {
        let line = lines[at];
        let kind = classify(line)?;
        // Aider wraps long messages: the error's next line belongs to it.
        let more = lines
            .get(at + 1)
            .filter(|next| !next.is_empty() && classify(next).is_none())
            .map_or(String::new(), |next| format!(" {next}"));
        Some(Diagnosis::new(kind, format!("{line}{more}")))
    });
    let parser = out.exit_code.is_some_and(|c| c != 0).then(|| {
        out.stderr
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("aider: error:"))
            .map(|l| Diagnosis::new(FailureKind::BadInvocation, l))
    });
    let usage = usage(out.stdout);
    // An answer after the error (a retry that worked) means the run went through.
    let answered = usage.is_some();
    let failure = parser.flatten().or_else(|| api_error.filter(|_| !answered));
    HarnessReport {
        final_message: None,
        usage,
        refused: Vec::new(),
        last_line: match &failure {
            Some(f) => Some(f.message.clone()),
            None => last_line(out.stdout)
                .or_else(|| last_line(out.stderr))
                .map(|l| one_line(&l)),
        },
        failure,
    }
}

/// Lines that show retrying rather than progress.
pub fn noise() -> &'static [&'static str] {
    &[
        r"^Retrying in [\d.]+ seconds",
        r"^litellm\.\w+Error",
        r"^The API provider (has rate limited you|is not able|is having)",
    ]
}

/// Cheap checks: the version.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["aider".to_string(), "--version".to_string()]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/harness/aider")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn read_stdout(name: &str) -> HarnessReport {
        let stdout = fixture(name);
        read(&Outputs {
            exit_code: Some(0),
            stdout: &stdout,
            stderr: "",
            last_message: None,
        })
    }

    #[test]
    fn an_edit_run_keeps_its_marker_and_sums_the_usage_of_each_call() {
        let report = read_stdout("edit.stdout");
        assert!(report.failure.is_none());
        assert_eq!(
            report.usage,
            Some(TokenUsage {
                input_tokens: 769 + 778,
                cached_input_tokens: 0,
                output_tokens: 44,
                thinking_tokens: 0,
                total_tokens: 769 + 778 + 44,
                cost_usd: None,
            })
        );
        assert!(fixture("edit.stdout").contains("\n### BUILDER_COMPLETE\n"));
    }

    #[test]
    fn thousands_cache_and_cost_are_read() {
        let out = "Tokens: 12k sent, 1.5k cache write, 2.3k cache hit, 940 received. Cost: $0.04 message, $0.10 session.\nTokens: 1.0k sent, 10 received.\nCost: $0.0012 message, $0.10 session.\n";
        let usage = usage(out).unwrap();
        assert_eq!(usage.input_tokens, 13_000);
        assert_eq!(usage.cached_input_tokens, 2_300);
        assert_eq!(usage.output_tokens, 950);
        assert!((usage.cost_usd.unwrap() - 0.0412).abs() < 1e-9);
    }

    #[test]
    fn api_errors_printed_with_exit_0_are_classified() {
        let auth = read_stdout("unauthorized.stdout").failure.unwrap();
        assert_eq!(auth.kind, FailureKind::Auth);
        assert!(
            auth.message.contains("Incorrect API key"),
            "{}",
            auth.message
        );
        let quota = read_stdout("quota.stdout").failure.unwrap();
        assert_eq!(quota.kind, FailureKind::RateLimited);
        assert!(quota.message.contains("current quota"), "{}", quota.message);
    }

    #[test]
    fn the_parser_refusal_is_a_bad_invocation() {
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
            "aider: error: unrecognized arguments: --full-auto"
        );
    }

    #[test]
    fn retries_are_noise() {
        let set = regex::RegexSet::new(noise()).unwrap();
        assert!(set.is_match("Retrying in 0.5 seconds..."));
        assert!(set.is_match("litellm.RateLimitError: RateLimitError: OpenAIException - You"));
        assert!(!set.is_match("Applied edit to hello.txt"));
    }
}
