//! Command-line interface: parse, call the library, render. No behaviour lives here.
//!
//! One file per command group (`src/cli/<group>.rs`), each with its clap arguments and a
//! `run` function. Data goes to stdout (human text, or JSON with `--json`); diagnostics,
//! progress and errors go to stderr.

mod compile;
mod config_cmd;
mod control;
mod demo;
mod diagnostics;
mod doctor;
mod init;
mod modes;
mod output;
mod progress;
mod queue;
mod run;
mod runs;
mod status;
mod submit;
mod usage;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, ExitCode, Result};
use crate::workspace::Workspace;

pub use output::Ctx;

/// millrace: a governed runtime for long-running AI-agent work.
///
/// The workspace directory is the whole interface: drop tasks, specs and ideas into
/// `millrace-agents/`, run `millrace watch`, and read `millrace status`.
#[derive(Debug, Parser)]
#[command(
    name = "millrace",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Examples:\n  millrace demo                 # the whole lifecycle, no harness needed\n  millrace init && millrace add-task task.md && millrace watch\n  millrace status --json"
)]
pub struct Cli {
    /// Workspace root: the project directory, where millrace keeps millrace-agents/.
    /// Default: the nearest directory from here upwards that has a millrace-agents/ folder
    /// (as git finds its repository), else the current directory.
    #[arg(long, short = 'w', global = true, env = "MILLRACE_WORKSPACE")]
    pub workspace: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each group lives in its own file.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the millrace-agents/ tree, default config and templates (idempotent).
    #[command(
        after_help = "Examples:\n  millrace init\n  millrace init --workspace ~/src/my-project"
    )]
    Init(init::InitArgs),
    /// Run the whole lifecycle in a demo workspace with the built-in scripted runner.
    Demo(demo::DemoArgs),
    /// Run the runtime: one tick, or the daemon.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Run the daemon, reacting to files as they appear (same as `run daemon`).
    #[command(
        after_help = "Examples:\n  millrace watch                 # until Ctrl-C or `millrace stop`\n  millrace watch --until-idle    # exit once no work is left\n  millrace watch --mode quick --poll"
    )]
    Watch(run::DaemonArgs),
    /// Show runtime status (snapshot, queues, markers); `status watch` follows it live.
    Status(status::StatusArgs),
    /// Inspect stage runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Inspect and fill the queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Queue a task document (.md or .json); same as `queue add-task`.
    #[command(after_help = "Example:\n  millrace add-task task.md")]
    AddTask(queue::AddArgs),
    /// Queue a spec document (.md or .json); same as `queue add-spec`.
    #[command(after_help = "Example:\n  millrace add-spec spec.md")]
    AddSpec(queue::AddArgs),
    /// Drop an idea (.md) into the inbox; same as `queue add-idea`.
    #[command(after_help = "Example:\n  millrace add-idea idea.md")]
    AddIdea(queue::AddArgs),
    /// Control a running daemon through the mailbox, or the workspace directly.
    #[command(subcommand)]
    Control(control::ControlCommand),
    /// Pause the runtime (same as `control pause`).
    Pause(submit::SimpleArgs),
    /// Resume a paused runtime (same as `control resume`).
    Resume(submit::SimpleArgs),
    /// Stop the daemon (same as `control stop`).
    Stop(submit::SimpleArgs),
    /// Requeue the active work item (same as `control retry-active`).
    RetryActive(submit::RetryArgs),
    /// Move a blocked item back to its queue with fresh budgets (same as `control requeue`).
    #[command(after_help = "Example:\n  millrace requeue t-fetch-retry-01 --reason \"fixed\"")]
    Requeue(submit::RequeueArgs),
    /// Requeue every active item and reset runtime state (same as `control clear-stale-state`).
    ClearStaleState(submit::ReasonArgs),
    /// Re-read millrace.yaml and recompile (same as `control reload-config`).
    ReloadConfig(submit::SimpleArgs),
    /// Planning-plane controls.
    #[command(subcommand)]
    Planning(control::PlanningCommand),
    /// Show, validate or reload the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Compile modes and loops into the frozen plan, and inspect it.
    #[command(subcommand)]
    Compile(compile::CompileCommand),
    /// List and show modes.
    #[command(subcommand)]
    Modes(modes::ModesCommand),
    /// Check the workspace for problems and say how to fix each.
    #[command(after_help = "Examples:\n  millrace doctor\n  millrace doctor --sizes")]
    Doctor(doctor::DoctorArgs),
    /// Show what the harnesses have spent (tokens, cost, time) against the budgets.
    #[command(after_help = "Examples:\n  millrace usage\n  millrace --json usage")]
    Usage,
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  millrace completions bash > ~/.local/share/bash-completion/completions/millrace"
    )]
    Completions {
        /// Shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  millrace man > millrace.1 && man ./millrace.1")]
    Man,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let workspace = match cli.workspace {
        Some(path) => project_of(path),
        // `init` makes a workspace here, even below another one.
        None if matches!(cli.command, Command::Init(_)) => PathBuf::from("."),
        None => discover(Path::new(".")),
    };
    let ctx = Ctx::new(workspace, cli.json);
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Run(cmd) => run::run(&ctx, cmd),
        Command::Watch(args) => run::daemon(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Runs(cmd) => runs::run(&ctx, cmd),
        Command::Queue(cmd) => queue::run(&ctx, cmd),
        Command::AddTask(args) => queue::add(&ctx, crate::model::WorkItemKind::Task, args),
        Command::AddSpec(args) => queue::add(&ctx, crate::model::WorkItemKind::Spec, args),
        Command::AddIdea(args) => queue::add_idea(&ctx, args),
        Command::Control(cmd) => control::run(&ctx, cmd),
        Command::Pause(args) => control::run(&ctx, control::ControlCommand::Pause(args)),
        Command::Resume(args) => control::run(&ctx, control::ControlCommand::Resume(args)),
        Command::Stop(args) => control::run(&ctx, control::ControlCommand::Stop(args)),
        Command::RetryActive(args) => {
            control::run(&ctx, control::ControlCommand::RetryActive(args))
        }
        Command::Requeue(args) => control::run(&ctx, control::ControlCommand::Requeue(args)),
        Command::ClearStaleState(args) => {
            control::run(&ctx, control::ControlCommand::ClearStaleState(args))
        }
        Command::ReloadConfig(args) => {
            control::run(&ctx, control::ControlCommand::ReloadConfig(args))
        }
        Command::Planning(cmd) => control::planning(&ctx, cmd),
        Command::Config(cmd) => config_cmd::run(&ctx, cmd),
        Command::Compile(cmd) => compile::run(&ctx, cmd),
        Command::Modes(cmd) => modes::run(&ctx, cmd),
        Command::Doctor(args) => doctor::run(&ctx, &args),
        Command::Usage => usage::run(&ctx),
        // Both are rendered in memory first: writing straight to stdout panics on a closed
        // pipe (`millrace completions fish | head`), and print_stdout ignores one.
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "millrace", &mut text);
            output::print_stdout(&String::from_utf8_lossy(&text));
            Ok(ExitCode::Ok)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut text)
                .map_err(|e| Error::system("cannot render the man page", e))?;
            output::print_stdout(&String::from_utf8_lossy(&text));
            Ok(ExitCode::Ok)
        }
    }
}

/// The workspace for a command run from `dir` without `--workspace`: `dir` itself or the
/// nearest folder above it with a `millrace-agents/` folder, so a command run from a project's
/// subfolder finds the project's workspace instead of asking for (or making) a second one.
/// `dir` when there is none.
fn discover(dir: &Path) -> PathBuf {
    if dir.join(crate::workspace::RUNTIME_DIR).is_dir() {
        return dir.to_path_buf();
    }
    std::path::absolute(dir)
        .ok()
        .and_then(|abs| {
            abs.ancestors()
                .skip(1)
                .find(|a| a.join(crate::workspace::RUNTIME_DIR).is_dir())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| dir.to_path_buf())
}

/// `--workspace` names the project directory; given its `millrace-agents/` folder instead
/// (an easy slip), the project is the folder above it. Otherwise a mutating command would
/// make `millrace-agents/millrace-agents/`.
fn project_of(path: PathBuf) -> PathBuf {
    let is_agents = path.file_name() == Some(std::ffi::OsStr::new(crate::workspace::RUNTIME_DIR))
        && path.join("state").is_dir()
        && !path.join(crate::workspace::RUNTIME_DIR).is_dir();
    match std::path::absolute(&path) {
        Ok(abs) if is_agents => abs.parent().map_or(path, Path::to_path_buf),
        _ => path,
    }
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            let _ = err.print();
            if err.use_stderr() && json_asked(std::env::args_os()) {
                print_usage_error(&err);
            }
            return code as i32;
        }
    };
    init_logging(cli.verbose);
    let json = cli.json;
    match dispatch(cli) {
        Ok(code) => code as i32,
        Err(err) => report_error(&err, json),
    }
}

/// The causes under an error, outermost first, without repeating what the error already
/// says (transparent wrappers show their source's text).
fn causes(err: &crate::error::Error) -> Vec<String> {
    let mut seen = err.to_string();
    let mut out = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !seen.contains(&text) {
            out.push(text.clone());
        }
        seen = text;
        next = cause.source();
    }
    out
}

/// Whether `--json` is among the arguments (before a `--`): asked when the command line did
/// not parse, so clap could not say.
fn json_asked(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// A command line that did not parse, as the JSON object every other error prints on stdout
/// under `--json` (clap has already printed it on stderr).
fn print_usage_error(err: &clap::Error) {
    let text = err.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let value = serde_json::json!({
        "error": first.strip_prefix("error: ").unwrap_or(first),
        "causes": [],
        "hint": lines.next_back(),
        "exit_code": ExitCode::Usage as i32,
    });
    output::print_stdout(&format!("{value}\n"));
}

/// Print an error on stderr (with its causes and hint) and, under `--json`, as a JSON object
/// on stdout too, so a script reading stdout always gets JSON; returns the exit code.
fn report_error(err: &crate::error::Error, json: bool) -> i32 {
    let code = err.exit_code() as i32;
    let causes = causes(err);
    eprintln!("error: {err}");
    for cause in &causes {
        eprintln!("Caused by: {cause}");
    }
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
    if json {
        let value = serde_json::json!({
            "error": err.to_string(),
            "causes": causes,
            "hint": err.hint(),
            "exit_code": code,
        });
        output::print_stdout(&format!("{value}\n"));
    }
    code
}

/// Open a workspace for a read-only command (never creates anything).
pub(crate) fn open_read_only(ctx: &Ctx) -> Result<Workspace> {
    Ok(Workspace::open_existing(&ctx.workspace)?)
}

/// A number of seconds given on the command line: from 0 to [`crate::time::MAX_SECONDS`].
fn seconds(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if crate::time::is_waitable(v) => Ok(v),
        _ => Err(format!(
            "{text} is not a number of seconds from 0 to {}",
            crate::time::MAX_SECONDS
        )),
    }
}

/// [`seconds`], but more than 0.
fn positive_seconds(text: &str) -> std::result::Result<f64, String> {
    match seconds(text) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err(format!(
            "{text} is not a number of seconds above 0 and at most {}",
            crate::time::MAX_SECONDS
        )),
    }
}

/// Open a workspace for a mutating command (bootstraps it first).
pub(crate) fn open_for_write(ctx: &Ctx) -> Result<Workspace> {
    Ok(Workspace::open_or_init(&ctx.workspace)?)
}

/// Open a workspace for a control command, which acts on a runtime that must be there: a
/// `pause` run in the wrong folder would otherwise make a workspace there and report it
/// paused, while the daemon it meant runs on.
pub(crate) fn open_for_control(ctx: &Ctx) -> Result<Workspace> {
    Workspace::open_existing(&ctx.workspace)?;
    open_for_write(ctx)
}
