//! What millrace knows about each real harness CLI: the argv per permission level, the
//! environment it needs, how to read its outputs (final message, usage, refused edits) and how
//! to classify its failures so an operator can act on them.
//!
//! This module only interprets; it never spawns. The `codex_cli` and `command` runners call it
//! after the supervisor has run the process.

pub mod aider;
pub mod claude;
pub mod codex;
pub mod gemini;

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use regex::RegexSet;
use serde::{Deserialize, Serialize};

use crate::config::Permission;
use crate::runners::artifacts::{Classified, CompletionFailure, RunFiles};
use crate::runners::process::Ending;
use crate::runners::result::{ExitKind, RawResult, TokenUsage};
use crate::workspace::atomic;

/// A harness CLI millrace has a tested adapter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harness {
    Codex,
    Claude,
    Gemini,
    Aider,
}

impl Harness {
    /// Every harness, in the order docs list them.
    pub const ALL: [Harness; 4] = [
        Harness::Codex,
        Harness::Claude,
        Harness::Gemini,
        Harness::Aider,
    ];

    /// The preset / runner name (`codex` for Codex; its runner is `codex_cli`).
    pub fn name(self) -> &'static str {
        match self {
            Harness::Codex => "codex",
            Harness::Claude => "claude",
            Harness::Gemini => "gemini",
            Harness::Aider => "aider",
        }
    }

    /// The harness a runner drives (`codex_cli` is Codex; `command` with a custom argv is none).
    pub fn for_runner(runner: &str) -> Option<Harness> {
        if runner == crate::runners::CODEX_RUNNER {
            Some(Harness::Codex)
        } else {
            Harness::from_name(runner)
        }
    }

    /// The harness a preset name stands for.
    pub fn from_name(name: &str) -> Option<Harness> {
        Harness::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Environment the harness needs at `level`, on top of the operator's own.
    pub fn env(self, level: Permission) -> Vec<(String, String)> {
        match self {
            Harness::Codex => codex::env(level),
            Harness::Claude => claude::env(level),
            Harness::Gemini => gemini::env(level),
            Harness::Aider => aider::env(level),
        }
    }

    /// Read what a finished run left behind.
    pub fn read(self, out: &Outputs) -> HarnessReport {
        match self {
            Harness::Codex => codex::read(out),
            Harness::Claude => claude::read(out),
            Harness::Gemini => gemini::read(out),
            Harness::Aider => aider::read(out),
        }
    }

    /// Patterns of lines that show the harness retrying, not working (for stall detection).
    pub fn noise(self) -> &'static [&'static str] {
        match self {
            Harness::Codex => codex::noise(),
            Harness::Claude => claude::noise(),
            Harness::Gemini => gemini::noise(),
            Harness::Aider => aider::noise(),
        }
    }

    /// [`Harness::noise`] compiled; `None` when the harness has no noise patterns. Compiled
    /// once per harness: the patterns are fixed.
    pub fn noise_set(self) -> Option<std::sync::Arc<regex::RegexSet>> {
        static SETS: OnceLock<[Option<Arc<RegexSet>>; 4]> = OnceLock::new();
        let sets = SETS.get_or_init(|| {
            Harness::ALL.map(|h| {
                let patterns = h.noise();
                (!patterns.is_empty()).then(|| {
                    Arc::new(RegexSet::new(patterns).expect("noise patterns are valid regexes"))
                })
            })
        });
        sets[Harness::ALL.iter().position(|h| *h == self)?].clone()
    }

    /// Cheap checks that need no model call; each argv succeeding means the CLI is usable.
    pub fn preflight(self) -> Vec<Vec<String>> {
        match self {
            Harness::Codex => codex::preflight(),
            Harness::Claude => claude::preflight(),
            Harness::Gemini => gemini::preflight(),
            Harness::Aider => aider::preflight(),
        }
    }

    /// The fix for an environment failure, in words an operator can follow.
    pub fn fix(self, kind: FailureKind) -> Option<String> {
        let cli = self.name();
        Some(match kind {
            FailureKind::NotInstalled => format!(
                "install {cli} (see docs/runners.md) or change runners.default_runner"
            ),
            FailureKind::Auth => match self {
                Harness::Codex => "run `codex login`".to_string(),
                Harness::Claude => "run `claude /login` or set ANTHROPIC_API_KEY".to_string(),
                Harness::Gemini => "run `gemini` once to sign in, or set GEMINI_API_KEY".to_string(),
                Harness::Aider => "set the model provider's API key for aider".to_string(),
            },
            FailureKind::BadInvocation => format!(
                "check the {cli} version against docs/runners.md and the runner's argv in millrace.yaml"
            ),
            FailureKind::RateLimited => {
                "wait for the provider's quota to reset, or add another harness to runners.fallback_runners".to_string()
            }
            _ => return None,
        })
    }
}

/// Why a stage's harness run failed, in classes a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The executable is not on `PATH` (or not at the configured path).
    NotInstalled,
    /// Not logged in, or the provider rejected the credentials.
    Auth,
    /// The CLI's own parser refused the command line (a flag this version does not know).
    BadInvocation,
    /// Rate limit or quota exhausted at the provider.
    RateLimited,
    /// The provider could not be reached, or the harness only retried without progress.
    Network,
    /// The wall-clock limit ended the stage.
    Timeout,
    /// No output at all for the idle limit.
    IdleTimeout,
    /// Only retry/reconnect noise for the stall limit.
    Stalled,
    /// The run ended without a legal terminal marker.
    NoMarker,
    /// The run printed a marker this stage may not use.
    IllegalMarker,
    /// Any other failure the harness reported.
    HarnessError,
}

impl FailureKind {
    /// The spelling in stage results, events and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::NotInstalled => "harness_not_installed",
            FailureKind::Auth => "harness_auth",
            FailureKind::BadInvocation => "harness_bad_invocation",
            FailureKind::RateLimited => "harness_rate_limited",
            FailureKind::Network => "harness_network",
            FailureKind::Timeout => "runner_timeout",
            FailureKind::IdleTimeout => "runner_idle_timeout",
            FailureKind::Stalled => "harness_stalled",
            FailureKind::NoMarker => "missing_terminal_result",
            FailureKind::IllegalMarker => "illegal_terminal_result",
            FailureKind::HarnessError => "harness_error",
        }
    }

    /// Failures of the environment, not of the work item: they pause the runtime instead of
    /// spending the item's repair budgets.
    pub fn is_environment(self) -> bool {
        matches!(
            self,
            FailureKind::NotInstalled
                | FailureKind::Auth
                | FailureKind::BadInvocation
                | FailureKind::RateLimited
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure with the harness's own words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub kind: FailureKind,
    /// The harness's last message about it (one line, trimmed).
    pub message: String,
    /// When the provider said the limit resets, if it did.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::runners::result::opt_stamp"
    )]
    pub reset_at: Option<Timestamp>,
}

impl Diagnosis {
    /// A diagnosis without a reset time.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Diagnosis {
        Diagnosis {
            kind,
            message: one_line(&message.into()),
            reset_at: None,
        }
    }
}

/// What the supervisor itself saw go wrong, before any harness output is read.
pub(crate) fn supervisor_diagnosis(
    ending: &Ending,
    program: &str,
    harness: Option<Harness>,
) -> Option<Diagnosis> {
    let cli: &str = match harness {
        Some(h) => h.name(),
        None => program,
    };
    Some(match ending {
        Ending::NotFound => Diagnosis::new(
            FailureKind::NotInstalled,
            format!("{cli} is not installed: `{program}` was not found on PATH"),
        ),
        Ending::TimedOut(n) => Diagnosis::new(
            FailureKind::Timeout,
            format!("{cli} had not finished after {n} s (the stage's timeout)"),
        ),
        Ending::IdleTimedOut(n) => Diagnosis::new(
            FailureKind::IdleTimeout,
            format!("{cli} printed nothing for {n} s (runners.idle_timeout_seconds)"),
        ),
        Ending::Stalled(n, noise) => Diagnosis::new(
            FailureKind::Network,
            format!("{cli} only retried or reconnected for {n} s; last: {noise}"),
        ),
        _ => return None,
    })
}

/// Why the runtime paused itself after an environment failure of `runner`, and what fixes
/// it: the line `status`, `watch` and the `runtime_paused` event show.
pub fn pause_reason(runner: &str, diagnosis: &Diagnosis) -> String {
    let harness = Harness::for_runner(runner);
    let cli: &str = match harness {
        Some(h) => h.name(),
        None => runner,
    };
    let what = match diagnosis.kind {
        FailureKind::NotInstalled => format!("{cli} is not installed"),
        FailureKind::Auth => format!("{cli} is not logged in or its credentials were rejected"),
        FailureKind::BadInvocation => format!("{cli} rejected millrace's command line"),
        FailureKind::RateLimited => format!("{cli} hit a rate limit or quota"),
        _ => format!("{cli} failed"),
    };
    let fix = harness
        .and_then(|h| h.fix(diagnosis.kind))
        .unwrap_or_else(|| match diagnosis.kind {
            FailureKind::RateLimited => "wait for the provider's quota to reset, or add another \
                                         runner to runners.fallback_runners"
                .to_string(),
            _ => format!("fix runner `{runner}` in millrace.yaml"),
        });
    let then = match diagnosis.reset_at {
        Some(at) => format!(
            "millrace resumes by itself at {}, or run `millrace resume`",
            crate::time::format(at)
        ),
        None => "then `millrace resume`".to_string(),
    };
    format!(
        "{what} ({}: {}) — {fix}, {then}",
        diagnosis.kind, diagnosis.message
    )
}

/// What a finished harness process left: exit code and the captured texts.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    pub exit_code: Option<i32>,
    pub stdout: &'a str,
    pub stderr: &'a str,
    /// The last-message file, when the harness wrote one.
    pub last_message: Option<&'a str>,
}

/// What the runtime learned from a harness's outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HarnessReport {
    /// The agent's final message: the text scanned for the marker (`None`: scan stdout).
    pub final_message: Option<String>,
    pub usage: Option<TokenUsage>,
    /// Edits or commands the harness refused to carry out, one line each.
    pub refused: Vec<String>,
    /// The harness's own last human-readable line, for `watch`, `status` and `runs show`.
    pub last_line: Option<String>,
    /// A failure the harness reported, classified.
    pub failure: Option<Diagnosis>,
}

/// Read a finished run's files and let `harness` interpret them.
pub(crate) fn read_files(
    harness: Harness,
    files: &RunFiles,
    exit_code: Option<i32>,
) -> HarnessReport {
    let read = |path: &std::path::Path| {
        atomic::read_regular(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .ok()
    };
    let stdout = read(&files.stdout).unwrap_or_default();
    let stderr = read(&files.stderr).unwrap_or_default();
    let last_message = read(&files.last_message);
    harness.read(&Outputs {
        exit_code,
        stdout: &stdout,
        stderr: &stderr,
        last_message: last_message.as_deref(),
    })
}

/// Fold a harness report into the raw result: the final message becomes the text scanned for
/// the marker, and a reported failure turns a clean exit into a provider error.
pub(crate) fn apply_report(
    report: HarnessReport,
    files: &RunFiles,
    raw: &mut RawResult,
    classified: &mut Classified,
) {
    if let Some(text) = &report.final_message {
        match atomic::write_artifact(&files.last_message, text.as_bytes()) {
            Ok(()) => raw.stdout_path = Some(files.last_message.clone()),
            Err(err) => classified
                .notes
                .push(format!("cannot write the last message: {err}")),
        }
    }
    if report.usage.is_some() {
        raw.token_usage = report.usage;
    }
    if let Some(failure) = &report.failure {
        if raw.exit_kind == ExitKind::Completed {
            raw.exit_kind = ExitKind::ProviderError;
            classified.exit_kind = ExitKind::ProviderError;
            classified.failure = Some(CompletionFailure::ProviderFailure);
        }
        classified
            .notes
            .push(format!("{}: {}", failure.kind, failure.message));
    }
    for refused in &report.refused {
        classified.notes.push(format!("harness refused: {refused}"));
    }
    // What the harness said about its environment beats the supervisor's view of the
    // symptom (a stall that the harness explains as a 429); otherwise the supervisor's
    // own finding (not installed, timeouts) stands.
    raw.diagnosis = match (raw.diagnosis.take(), report.failure) {
        (_, Some(said)) if said.kind.is_environment() || said.kind == FailureKind::Network => {
            Some(said)
        }
        (Some(seen), _) => Some(seen),
        (None, said) => said,
    };
    raw.refused = report.refused;
    raw.last_line = report.last_line;
}

/// Longest message kept from a harness (it goes into events, status and blocked documents).
pub const MESSAGE_LIMIT: usize = 200;

/// `text` as one trimmed line of at most [`MESSAGE_LIMIT`] characters.
pub fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// The last non-empty line of `text`, as [`one_line`] keeps it.
pub fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(one_line)
}

/// The JSON objects among `text`'s lines, in order: the event streams of `--output-format
/// stream-json` style harnesses (lines that are not an object are skipped).
pub fn json_objects(
    text: &str,
) -> impl DoubleEndedIterator<Item = serde_json::Map<String, serde_json::Value>> + '_ {
    text.lines().filter_map(
        |line| match serde_json::from_str::<serde_json::Value>(line.trim()) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(one_line("  a\n b\tc "), "a b c");
        let long = "x".repeat(500);
        assert_eq!(one_line(&long).chars().count(), MESSAGE_LIMIT + 1);
        assert_eq!(last_line("first\nsecond\n\n  \n"), Some("second".into()));
        assert_eq!(last_line("\n \n"), None);
    }

    #[test]
    fn only_environment_failures_spare_the_item() {
        let env: Vec<_> = [
            FailureKind::NotInstalled,
            FailureKind::Auth,
            FailureKind::BadInvocation,
            FailureKind::RateLimited,
            FailureKind::Network,
            FailureKind::NoMarker,
            FailureKind::Timeout,
        ]
        .into_iter()
        .filter(|k| k.is_environment())
        .collect();
        assert_eq!(env.len(), 4);
        assert!(Harness::ALL
            .iter()
            .all(|h| Harness::from_name(h.name()) == Some(*h)));
    }
}
