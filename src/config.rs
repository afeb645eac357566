//! `millrace-agents/millrace.yaml`: typed, strict, with every key defaulted.
//!
//! Unknown keys, wrong types and YAML syntax errors are reported as
//! `millrace.yaml:LINE:COL: <what is wrong>`. Range rules that YAML types cannot express are
//! checked after parsing and name the key path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Stage;
use crate::yaml::{self, YamlError};

/// The commented default config written by `init`; parsing it must give `Config::default()`.
pub use crate::workspace::DEFAULT_CONFIG_YAML;

/// A config that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{file}{}: {key} {rule}", line.map(|n| format!(":{n}")).unwrap_or_default())]
    Invalid {
        file: String,
        /// Where the key is written, when it is (a rule between two keys may name one the
        /// file leaves at its default).
        line: Option<usize>,
        key: String,
        rule: String,
    },
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} does not exist (omit --config to use the workspace's millrace.yaml)", path.display())]
    Missing { path: PathBuf },
}

/// The whole config file; every section is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub runtime: RuntimeConfig,
    pub runners: RunnersConfig,
    pub recovery: RecoveryConfig,
    pub watchers: WatchersConfig,
    pub stages: BTreeMap<Stage, StageConfig>,
    pub usage: UsageConfig,
    pub retention: RetentionConfig,
    pub execution: ExecutionConfig,
}

/// How a finished lane's branch reaches the base branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationMode {
    /// Rebase the branch onto the base, then fast-forward the base: linear history.
    #[default]
    Rebase,
    /// Merge the base into the branch, then fast-forward the base.
    Merge,
    /// Leave each finished branch for review; the task is done with its branch named.
    Branch,
}

/// `execution.*`: how many tasks run at once, each in its own git worktree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionConfig {
    /// Tasks that run at once. 1 is the single-lane runtime (no git needed); more needs the
    /// workspace to be a git repository.
    pub lanes: u32,
    pub integration: IntegrationMode,
    /// The branch finished tasks land on; `null`: the branch checked out when the daemon
    /// starts.
    pub base_branch: Option<String>,
    /// Where the lanes' worktrees go, relative to the workspace root (git-ignored).
    pub worktree_dir: String,
    /// Integration conflicts a task may send back to its fixer before it is blocked with
    /// `integration_conflict`.
    pub max_integration_conflicts: u32,
    /// Keep a task's branch after it landed (otherwise it is deleted with its worktree).
    pub keep_integrated_branches: bool,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            lanes: 1,
            integration: IntegrationMode::Rebase,
            base_branch: None,
            worktree_dir: "millrace-agents/worktrees".into(),
            max_integration_conflicts: 2,
            keep_integrated_branches: false,
        }
    }
}

/// `retention.*`: how much history the workspace keeps, so weeks of work stay bounded on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// The live event log rolls into a compressed segment at this size, and when a new UTC
    /// day begins.
    pub event_log_segment_mb: u64,
    /// Rolled segments older than this many days are deleted; `null` keeps them all.
    pub event_log_keep_days: Option<u64>,
    /// Run artifacts (prompts, harness output) older than this many days are compressed;
    /// stage results stay readable as they are. `null` never compresses.
    pub runs_compress_after_days: Option<u64>,
    /// Run folders older than this many days are deleted; `null` keeps them.
    pub runs_delete_after_days: Option<u64>,
    /// At most this many run folders are kept (the oldest go first); `null`: no limit.
    pub runs_max_count: Option<u64>,
    /// The run folders are kept under this many MB in all (the oldest go first); `null`: no
    /// limit.
    pub runs_max_total_mb: Option<u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            event_log_segment_mb: 64,
            event_log_keep_days: Some(365),
            runs_compress_after_days: Some(30),
            runs_delete_after_days: Some(365),
            runs_max_count: None,
            runs_max_total_mb: None,
        }
    }
}

/// A spending limit: tokens and/or US dollars; an unset figure is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Limit {
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

impl Limit {
    /// Whether any figure is set.
    pub fn is_set(&self) -> bool {
        self.tokens.is_some() || self.cost_usd.is_some()
    }
}

/// `usage.window`: a limit over a rolling window of hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowLimit {
    pub hours: f64,
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

impl Default for WindowLimit {
    fn default() -> Self {
        WindowLimit {
            hours: 5.0,
            tokens: None,
            cost_usd: None,
        }
    }
}

/// `usage.daily`: a limit per calendar day in a time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DailyLimit {
    pub tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    /// IANA name (`Europe/Berlin`) or `UTC`: where a day starts.
    pub time_zone: String,
}

impl Default for DailyLimit {
    fn default() -> Self {
        DailyLimit {
            tokens: None,
            cost_usd: None,
            time_zone: "UTC".into(),
        }
    }
}

/// `usage.*`: budgets (all off by default) and the back-off after rate limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// One stage run; checked when the stage ends (a running stage is never killed for it).
    pub per_stage: Limit,
    /// One work item over all its stages.
    pub per_item: Limit,
    /// Everything done for one root spec.
    pub per_lineage: Limit,
    pub window: WindowLimit,
    pub daily: DailyLimit,
    /// First wait after a rate limit without a reset time; doubles per repeat.
    pub rate_limit_backoff_seconds: u64,
    /// Longest wait between rate-limited retries.
    pub rate_limit_backoff_max_seconds: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            per_stage: Limit::default(),
            per_item: Limit::default(),
            per_lineage: Limit::default(),
            window: WindowLimit::default(),
            daily: DailyLimit::default(),
            rate_limit_backoff_seconds: 60,
            rate_limit_backoff_max_seconds: 1800,
        }
    }
}

impl UsageConfig {
    /// The daily limit's time zone (validated when the config loads).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        zone(&self.daily.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// A time zone by IANA name. UTC (the default) is answered without the time zone database:
/// looking a name up makes jiff index the whole of `/usr/share/zoneinfo`, which cost every
/// command a few milliseconds at start.
fn zone(name: &str) -> Result<jiff::tz::TimeZone, jiff::Error> {
    match name {
        "UTC" | "Etc/UTC" => Ok(jiff::tz::TimeZone::UTC),
        _ => jiff::tz::TimeZone::get(name),
    }
}

/// `runtime.run_style`, shown as the snapshot's runtime mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunStyle {
    Once,
    #[default]
    Daemon,
}

/// What `stop` does with a stage that is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Let the running stage finish (bounded by its timeout), route it, then stop.
    #[default]
    Finish,
    /// Kill the running stage's process group and requeue its item.
    Interrupt,
}

/// `runtime.*`: how the daemon waits and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub default_mode: String,
    pub run_style: RunStyle,
    pub idle_sleep_seconds: f64,
    pub stop_mode: StopMode,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_mode: "standard_plain".into(),
            run_style: RunStyle::Daemon,
            idle_sleep_seconds: 60.0,
            stop_mode: StopMode::Finish,
        }
    }
}

/// How much a harness may do, from least to most trusted. Each harness maps a level onto its
/// own flags (docs/runners.md). The default is the harness's own sandboxed level that can edit
/// the project and run its checks; leaving the sandbox is an explicit choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    #[default]
    Basic,
    Elevated,
    Maximum,
}

impl Permission {
    /// The spelling in `millrace.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Basic => "basic",
            Permission::Elevated => "elevated",
            Permission::Maximum => "maximum",
        }
    }
}

/// `runners.*`: settings shared by every runner, then one table per runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnersConfig {
    pub default_runner: String,
    /// Seconds without any output before a stage is killed; 0 turns the idle timeout off.
    pub idle_timeout_seconds: u64,
    /// Seconds of nothing but a harness's retry/reconnect lines before the stage fails as
    /// stalled (network class); 0 turns stall detection off.
    pub stall_timeout_seconds: u64,
    /// Seconds between SIGTERM and SIGKILL of a harness process group.
    pub kill_grace_seconds: u64,
    /// Largest stdout/stderr capture kept per stage run, in bytes.
    pub output_cap_bytes: u64,
    /// Names (globs) of environment variables the harness inherits; all others are dropped.
    pub env_allow: Vec<String>,
    /// Runners to try, in order, when the stage's runner fails for its environment (quota,
    /// auth, not installed); never for a work item's own failure.
    pub fallback_runners: Vec<String>,
    pub codex: CodexConfig,
    pub command: CommandRunnerConfig,
    pub scripted: ScriptedRunnerConfig,
}

impl Default for RunnersConfig {
    fn default() -> Self {
        RunnersConfig {
            default_runner: "codex_cli".into(),
            idle_timeout_seconds: 900,
            stall_timeout_seconds: 300,
            kill_grace_seconds: 5,
            output_cap_bytes: 10 * 1024 * 1024,
            env_allow: vec!["*".into()],
            fallback_runners: Vec::new(),
            codex: CodexConfig::default(),
            command: CommandRunnerConfig::default(),
            scripted: ScriptedRunnerConfig::default(),
        }
    }
}

/// `runners.codex.*`: the Codex CLI command line (spec 08 §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodexConfig {
    pub command: String,
    pub args: Vec<String>,
    pub profile: Option<String>,
    pub permission_default: Permission,
    pub permission_by_stage: BTreeMap<Stage, Permission>,
    pub permission_by_model: BTreeMap<String, Permission>,
    pub skip_git_repo_check: bool,
    pub extra_config: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl Default for CodexConfig {
    fn default() -> Self {
        CodexConfig {
            command: "codex".into(),
            args: vec!["exec".into()],
            profile: None,
            permission_default: Permission::Basic,
            permission_by_stage: BTreeMap::new(),
            permission_by_model: BTreeMap::new(),
            skip_git_repo_check: true,
            extra_config: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// How the `command` runner reads the harness's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutput {
    /// Scan the last-message file if the harness wrote one, else stdout, for the marker.
    #[default]
    Text,
    /// stdout is one JSON object with a `result` text (Claude Code `--output-format json`).
    ClaudeJson,
}

/// Any harness CLI driven from an argv template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CommandRunnerConfig {
    /// `claude`, `gemini` or `aider` fills `argv` and `output` with a tested template.
    pub preset: Option<String>,
    /// argv with `{prompt}`, `{prompt_file}`, `{last_message_file}`, `{model}`, `{workspace}`,
    /// `{run_dir}` placeholders.
    pub argv: Vec<String>,
    pub output: CommandOutput,
    pub env: BTreeMap<String, String>,
    /// Permission level of the preset harnesses (`claude`, `gemini`, `aider`), and of the
    /// `command` runner when it uses a preset.
    pub permission_default: Permission,
    pub permission_by_stage: BTreeMap<Stage, Permission>,
}

/// The built-in simulation used by `millrace demo` and by people trying millrace out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptedRunnerConfig {
    /// YAML script of per-stage answers, relative to the workspace root; none = happy path.
    pub script: Option<String>,
}

/// `recovery.*`: the budgets that bound every retry cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    pub max_fix_cycles: u32,
    pub max_troubleshoot_attempts_before_consult: u32,
    pub max_mechanic_attempts: u32,
    /// Consultant runs per work item before it is blocked (the reference has no bound).
    pub max_consultant_invocations: u32,
    /// Arbiter runs per closure target before the target is held blocked.
    pub max_arbiter_attempts: u32,
    /// Post-stage repairs per work item before it is blocked (the reference has no bound).
    pub max_runtime_repairs: u32,
    pub stale_state_recovery_enabled: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_fix_cycles: 2,
            max_troubleshoot_attempts_before_consult: 2,
            max_mechanic_attempts: 2,
            max_consultant_invocations: 2,
            max_arbiter_attempts: 3,
            max_runtime_repairs: 2,
            stale_state_recovery_enabled: true,
        }
    }
}

/// `watchers.*`: file events, polling and the settle window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchersConfig {
    pub enabled: bool,
    pub debounce_ms: u64,
    pub watch_ideas_inbox: bool,
    pub watch_specs_queue: bool,
    /// Poll instead of using file events (also chosen automatically when inotify fails).
    pub poll: bool,
    pub poll_interval_ms: u64,
    /// How long a hand-written file's size and mtime must hold still before it is taken.
    pub settle_ms: u64,
}

impl Default for WatchersConfig {
    fn default() -> Self {
        WatchersConfig {
            enabled: true,
            debounce_ms: 250,
            watch_ideas_inbox: true,
            watch_specs_queue: true,
            poll: false,
            poll_interval_ms: 1000,
            settle_ms: 200,
        }
    }
}

/// `stages.<stage>.*`: per-stage runner, model and timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageConfig {
    pub runner: Option<String>,
    /// Overrides `runners.fallback_runners` for this stage.
    pub fallback_runners: Option<Vec<String>>,
    pub model: Option<String>,
    pub timeout_seconds: u64,
    /// Overrides `runners.idle_timeout_seconds` for this stage.
    pub idle_timeout_seconds: Option<u64>,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            runner: None,
            fallback_runners: None,
            model: None,
            timeout_seconds: 3600,
            idle_timeout_seconds: None,
        }
    }
}

impl Config {
    /// The config named by `--config` (which must exist), else the workspace's own (its
    /// defaults when it has none).
    pub fn load_for(
        ws: &crate::workspace::Workspace,
        explicit: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) => Config::load(path, true),
            None => Config::load(&ws.config_path(), false),
        }
    }

    /// Parse config text; `file` names the source in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            yaml::from_str(Path::new(&name), text).map_err(|mut err| {
                // A wrong type names the line; say which key is written there too.
                let key = err.location.and_then(|(line, _)| {
                    let line = usize::try_from(line).ok()?;
                    key_lines(text).into_iter().find(|(n, _)| *n == line)
                });
                if let Some((_, key)) = key {
                    let last = key.rsplit('.').next().unwrap_or(&key);
                    if !err.message.contains(last) {
                        err.message = format!("{key}: {}", err.message);
                    }
                }
                err
            })?
        };
        config.validate(&name).map_err(|err| match err {
            ConfigError::Invalid {
                file,
                line: None,
                key,
                rule,
            } => ConfigError::Invalid {
                file,
                line: key_lines(text)
                    .into_iter()
                    .find(|(_, k)| *k == key)
                    .map(|(n, _)| n),
                key,
                rule,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Load from `path`; a missing file means defaults unless `required` (an explicit `--config`).
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match crate::workspace::atomic::read_named_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if required {
                    Err(ConfigError::Missing {
                        path: path.to_path_buf(),
                    })
                } else {
                    Ok(Config::default())
                }
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, rule: &str| ConfigError::Invalid {
            file: file.to_string(),
            line: None,
            key: key.to_string(),
            rule: rule.to_string(),
        };
        let sleep = self.runtime.idle_sleep_seconds;
        if !(sleep > 0.0 && crate::time::is_waitable(sleep)) {
            return Err(invalid(
                "runtime.idle_sleep_seconds",
                &format!("must be > 0 and at most {}", crate::time::MAX_SECONDS),
            ));
        }
        let positive = [
            ("recovery.max_fix_cycles", self.recovery.max_fix_cycles),
            (
                "recovery.max_troubleshoot_attempts_before_consult",
                self.recovery.max_troubleshoot_attempts_before_consult,
            ),
            (
                "recovery.max_mechanic_attempts",
                self.recovery.max_mechanic_attempts,
            ),
            (
                "recovery.max_consultant_invocations",
                self.recovery.max_consultant_invocations,
            ),
            (
                "recovery.max_arbiter_attempts",
                self.recovery.max_arbiter_attempts,
            ),
            (
                "recovery.max_runtime_repairs",
                self.recovery.max_runtime_repairs,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        if self.watchers.debounce_ms == 0 {
            return Err(invalid("watchers.debounce_ms", "must be > 0"));
        }
        if self.watchers.poll_interval_ms == 0 {
            return Err(invalid("watchers.poll_interval_ms", "must be > 0"));
        }
        let retention = &self.retention;
        if retention.event_log_segment_mb == 0 {
            return Err(invalid("retention.event_log_segment_mb", "must be > 0"));
        }
        let optional = [
            (
                "retention.event_log_keep_days",
                retention.event_log_keep_days,
            ),
            (
                "retention.runs_compress_after_days",
                retention.runs_compress_after_days,
            ),
            (
                "retention.runs_delete_after_days",
                retention.runs_delete_after_days,
            ),
            ("retention.runs_max_count", retention.runs_max_count),
            ("retention.runs_max_total_mb", retention.runs_max_total_mb),
        ];
        for (key, value) in optional {
            if value == Some(0) {
                return Err(invalid(key, "must be > 0 or null"));
            }
        }
        let ex = &self.execution;
        if !(1..=64).contains(&ex.lanes) {
            return Err(invalid("execution.lanes", "must be between 1 and 64"));
        }
        if ex.max_integration_conflicts == 0 {
            return Err(invalid(
                "execution.max_integration_conflicts",
                "must be > 0",
            ));
        }
        let dir = Path::new(&ex.worktree_dir);
        if ex.worktree_dir.trim().is_empty()
            || dir.is_absolute()
            || dir
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(invalid(
                "execution.worktree_dir",
                "must be a relative path inside the workspace, without `..`",
            ));
        }
        if let Some(branch) = &ex.base_branch {
            if branch.trim().is_empty() || branch.starts_with('-') {
                return Err(invalid("execution.base_branch", "must name a branch"));
            }
        }
        for (stage, cfg) in &self.stages {
            if cfg.timeout_seconds == 0 {
                return Err(invalid(
                    &format!("stages.{stage}.timeout_seconds"),
                    "must be > 0",
                ));
            }
        }
        // Every span millrace waits or times out on fits the clocks (a stage's deadline is
        // its start plus the span: 2^64 seconds overflowed and panicked mid-stage).
        let max_seconds = crate::time::MAX_SECONDS as u64;
        let r = &self.runners;
        let mut spans = vec![
            (
                "runners.idle_timeout_seconds".to_string(),
                r.idle_timeout_seconds,
            ),
            (
                "runners.stall_timeout_seconds".to_string(),
                r.stall_timeout_seconds,
            ),
            (
                "runners.kill_grace_seconds".to_string(),
                r.kill_grace_seconds,
            ),
            (
                "usage.rate_limit_backoff_seconds".to_string(),
                self.usage.rate_limit_backoff_seconds,
            ),
            (
                "usage.rate_limit_backoff_max_seconds".to_string(),
                self.usage.rate_limit_backoff_max_seconds,
            ),
            (
                "watchers.debounce_ms".to_string(),
                self.watchers.debounce_ms / 1000,
            ),
            (
                "watchers.poll_interval_ms".to_string(),
                self.watchers.poll_interval_ms / 1000,
            ),
            (
                "watchers.settle_ms".to_string(),
                self.watchers.settle_ms / 1000,
            ),
        ];
        for (stage, cfg) in &self.stages {
            spans.push((
                format!("stages.{stage}.timeout_seconds"),
                cfg.timeout_seconds,
            ));
            if let Some(idle) = cfg.idle_timeout_seconds {
                spans.push((format!("stages.{stage}.idle_timeout_seconds"), idle));
            }
        }
        if let Some((key, _)) = spans.iter().find(|(_, v)| *v > max_seconds) {
            let most = if key.ends_with("_ms") {
                format!("{} ms", max_seconds * 1000)
            } else {
                format!("{max_seconds} seconds")
            };
            return Err(invalid(
                key,
                &format!("must be at most {most} (about 31 years)"),
            ));
        }
        // Too small a cap cuts off the result marker of every stage.
        const MIN_OUTPUT_CAP: u64 = 64 * 1024;
        if r.output_cap_bytes < MIN_OUTPUT_CAP {
            return Err(invalid(
                "runners.output_cap_bytes",
                &format!(
                    "must be at least {MIN_OUTPUT_CAP} (a stage's output must hold its result)"
                ),
            ));
        }
        if let Some(script) = &r.scripted.script {
            let path = std::path::Path::new(script);
            let inside = path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if !inside {
                return Err(invalid(
                    "runners.scripted.script",
                    "must be a relative path inside the workspace, without `..`",
                ));
            }
        }
        let known = crate::model::RUNNER_NAMES;
        let unknown_runner = |key: &str, name: &str| {
            invalid(
                key,
                &format!(
                    "must name a runner, one of {} (found `{name}`)",
                    known.join(", ")
                ),
            )
        };
        let default_runner = self.runners.default_runner.trim();
        if !default_runner.is_empty() && !known.contains(&default_runner) {
            return Err(unknown_runner("runners.default_runner", default_runner));
        }
        for runner in &self.runners.fallback_runners {
            if !known.contains(&runner.trim()) {
                return Err(unknown_runner("runners.fallback_runners", runner));
            }
        }
        for (stage, cfg) in &self.stages {
            if let Some(runner) = cfg.runner.as_deref().map(str::trim) {
                if !runner.is_empty() && !known.contains(&runner) {
                    return Err(unknown_runner(&format!("stages.{stage}.runner"), runner));
                }
            }
            for runner in cfg.fallback_runners.iter().flatten() {
                if !known.contains(&runner.trim()) {
                    let key = format!("stages.{stage}.fallback_runners");
                    return Err(unknown_runner(&key, runner));
                }
            }
        }
        if let Some(preset) = &self.runners.command.preset {
            if !["claude", "gemini", "aider"].contains(&preset.as_str()) {
                return Err(invalid(
                    "runners.command.preset",
                    &format!("must be one of claude, gemini, aider (found `{preset}`)"),
                ));
            }
        }
        let u = &self.usage;
        let max_hours = (crate::time::MAX_SECONDS / 3600.0).floor();
        if !(u.window.hours > 0.0 && u.window.hours <= max_hours) {
            return Err(invalid(
                "usage.window.hours",
                &format!("must be > 0 and at most {max_hours} (about 31 years)"),
            ));
        }
        if zone(&u.daily.time_zone).is_err() {
            return Err(invalid(
                "usage.daily.time_zone",
                &format!(
                    "`{}` is not a known time zone (use an IANA name such as Europe/Berlin, or UTC)",
                    u.daily.time_zone
                ),
            ));
        }
        if u.rate_limit_backoff_seconds == 0
            || u.rate_limit_backoff_max_seconds < u.rate_limit_backoff_seconds
        {
            return Err(invalid(
                "usage.rate_limit_backoff_seconds",
                "must be > 0 and at most usage.rate_limit_backoff_max_seconds",
            ));
        }
        let costs = [
            ("usage.per_stage.cost_usd", u.per_stage.cost_usd),
            ("usage.per_item.cost_usd", u.per_item.cost_usd),
            ("usage.per_lineage.cost_usd", u.per_lineage.cost_usd),
            ("usage.window.cost_usd", u.window.cost_usd),
            ("usage.daily.cost_usd", u.daily.cost_usd),
        ];
        // Zero is refused rather than read: as a cap it would stop all work, and many tools
        // use it for "no limit", which here is leaving the key out.
        let zero = "must be above 0 (leave the key out for no limit; `millrace pause` stops work)";
        for (key, cost) in costs {
            if cost.is_some_and(|c| !(c >= 0.0 && c.is_finite())) {
                return Err(invalid(key, "must be a non-negative number"));
            }
            if cost == Some(0.0) {
                return Err(invalid(key, zero));
            }
        }
        let tokens = [
            ("usage.per_stage.tokens", u.per_stage.tokens),
            ("usage.per_item.tokens", u.per_item.tokens),
            ("usage.per_lineage.tokens", u.per_lineage.tokens),
            ("usage.window.tokens", u.window.tokens),
            ("usage.daily.tokens", u.daily.tokens),
        ];
        for (key, tokens) in tokens {
            if tokens == Some(0) {
                return Err(invalid(key, zero));
            }
        }
        for pattern in &self.runners.env_allow {
            globset::Glob::new(pattern).map_err(|e| {
                invalid(
                    "runners.env_allow",
                    &format!("has a bad glob `{pattern}`: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// The mode compiled when no `--mode` is given.
    pub fn default_mode(&self) -> &str {
        let mode = self.runtime.default_mode.trim();
        if mode.is_empty() {
            "standard_plain"
        } else {
            mode
        }
    }

    /// Stage settings with defaults filled in.
    pub fn stage(&self, stage: Stage) -> StageConfig {
        self.stages.get(&stage).cloned().unwrap_or_default()
    }

    /// `cfg-<12 hex>`: an opaque token that changes whenever the effective config changes.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_string(self).expect("config serializes");
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("cfg-{hex}")
    }

    /// The effective config as YAML, every key present.
    pub fn to_yaml(&self) -> String {
        yaml::to_string(self)
    }
}

/// The dotted key (`runtime.idle_sleep_seconds`) written on each line of a block-style YAML
/// mapping, with its 1-based line: lets a range check name its line and a type error its key.
/// List items and flow style are not followed (their keys are not listed).
fn key_lines(text: &str) -> Vec<(usize, String)> {
    let mut path: Vec<(usize, &str)> = Vec::new();
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let indent = line.len() - body.len();
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.contains([' ', '{', '[']) {
            continue;
        }
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        path.push((indent, key));
        let dotted: Vec<&str> = path.iter().map(|(_, k)| *k).collect();
        keys.push((n + 1, dotted.join(".")));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_equals_built_in_defaults() {
        let parsed = Config::parse(Path::new("millrace.yaml"), DEFAULT_CONFIG_YAML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    /// `init` writes every key (docs/configuration.md says so): each key of the built-in
    /// defaults is in the shipped file.
    #[test]
    fn shipped_default_file_has_every_key() {
        fn missing(default: &serde_json::Value, file: &serde_json::Value, at: &str) -> Vec<String> {
            let serde_json::Value::Object(keys) = default else {
                return Vec::new();
            };
            keys.iter()
                .flat_map(|(key, value)| {
                    let path = format!("{at}{key}");
                    match file.get(key) {
                        None => vec![path],
                        Some(found) => missing(value, found, &format!("{path}.")),
                    }
                })
                .collect()
        }
        let default = serde_json::to_value(Config::default()).unwrap();
        let file: serde_json::Value = serde_saphyr::from_str(DEFAULT_CONFIG_YAML).unwrap();
        assert_eq!(missing(&default, &file, ""), Vec::<String>::new());
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = Config::parse(
            Path::new("/x/millrace.yaml"),
            "runtime:\n  default_mode: standard_plain\n  foo: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("millrace.yaml:3:"), "{err}");
        assert!(err.contains("foo"), "{err}");
    }

    #[test]
    fn wrong_type_and_syntax_error_are_located() {
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "recovery:\n  max_fix_cycles: lots\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("millrace.yaml:2:"), "{err}");
        let err = Config::parse(Path::new("millrace.yaml"), "runtime: [\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("millrace.yaml:"), "{err}");
    }

    #[test]
    fn a_zero_budget_is_refused_with_the_way_to_say_no_limit() {
        for (section, figure) in [
            ("window", "tokens: 0"),
            ("daily", "cost_usd: 0"),
            ("per_item", "tokens: 0"),
        ] {
            let text = format!("usage:\n  {section}:\n    {figure}\n");
            let err = Config::parse(Path::new("millrace.yaml"), &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("usage.{section}.")), "{err}");
            assert!(
                err.contains("must be above 0 (leave the key out for no limit"),
                "{err}"
            );
        }
        let ok = "usage:\n  window:\n    tokens: 1\n    cost_usd: 0.01\n";
        Config::parse(Path::new("millrace.yaml"), ok).unwrap();
    }

    #[test]
    fn a_span_too_long_is_refused_in_the_key_s_own_unit() {
        let text = "watchers:\n  settle_ms: 2000000000000\n";
        let err = Config::parse(Path::new("millrace.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("watchers.settle_ms must be at most 1000000000000 ms"),
            "{err}"
        );
    }

    #[test]
    fn a_value_out_of_range_names_its_line_and_a_wrong_type_its_key() {
        let text = "# config\nruntime:\n  default_mode: standard_plain\n  idle_sleep_seconds: -1\n";
        let err = Config::parse(Path::new("millrace.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("millrace.yaml:4: runtime.idle_sleep_seconds must be > 0"),
            "{err}"
        );
        let text = "runtime:\n  idle_sleep_seconds: sixty\n";
        let err = Config::parse(Path::new("millrace.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("millrace.yaml:2:") && err.contains("runtime.idle_sleep_seconds: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_stage_name_is_rejected() {
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "stages:\n  painter:\n    model: x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("painter"), "{err}");
    }

    #[test]
    fn unknown_runner_names_are_rejected_with_key_path() {
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "runners:\n  default_runner: nonexistent\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("runners.default_runner"), "{err}");
        assert!(err.contains("`nonexistent`"), "{err}");
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "stages:\n  builder:\n    runner: nope\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("stages.builder.runner"), "{err}");
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "runners:\n  fallback_runners: [claude, typo]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("runners.fallback_runners"), "{err}");
        for name in crate::model::RUNNER_NAMES {
            let text = format!("runners:\n  default_runner: {name}\n");
            assert!(Config::parse(Path::new("millrace.yaml"), &text).is_ok());
        }
    }

    #[test]
    fn zero_limits_are_rejected_with_key_path() {
        let err = Config::parse(
            Path::new("millrace.yaml"),
            "recovery:\n  max_fix_cycles: 0\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "millrace.yaml:2: recovery.max_fix_cycles must be > 0");
    }

    #[test]
    fn fingerprint_changes_with_config() {
        let a = Config::default();
        let mut b = Config::default();
        b.recovery.max_fix_cycles = 3;
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), Config::default().fingerprint());
    }
}
