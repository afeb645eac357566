//! `millrace runs ls|show|tail`: read-only views of `millrace-agents/runs/`.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::output::{or_none, print_stdout, py_float};
use super::{open_read_only, Ctx};
use crate::error::{Error, ExitCode, Result};
use crate::inspect::runs::{self, LatestStage, RunDetail, RunSummary};
use crate::runners::result::TokenUsage;
use crate::watch::{Wake, Waker};
use crate::workspace::Workspace;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List stage runs, newest first, a page at a time.
    #[command(
        after_help = "Examples:\n  millrace runs ls --json\n  millrace runs ls --limit 10 --offset 10"
    )]
    Ls(LsArgs),
    /// Show every stage result of one run, with its lineage and artifacts.
    #[command(after_help = "Example:\n  millrace runs show run-0d9a41c2e7b84f6f9a1c55e0b3d2f871")]
    Show {
        /// Run id (a folder name under millrace-agents/runs/).
        run_id: String,
    },
    /// Print the end of the latest stage's stdout and stderr; `--follow` keeps printing.
    ///
    /// Without a run id: the active run, else the run that changed last.
    #[command(
        after_help = "Examples:\n  millrace runs tail --follow\n  millrace runs tail run-0d9a... --lines 50\n  millrace runs tail run-0d9a... --follow --timeout-seconds 600"
    )]
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Run id (a folder name under millrace-agents/runs/); default: the latest run.
    pub run_id: Option<String>,
    /// Lines of each stream to print (0 = all).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new output until the stage finishes (or Ctrl-C, or the timeout).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Stop following after this many seconds (default: no limit).
    #[arg(long, requires = "follow", value_parser = super::seconds)]
    pub timeout_seconds: Option<f64>,
}

/// `runs ls`: a page of runs, newest first.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// How many runs a page holds.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// How many of the newest runs to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

pub fn run(ctx: &Ctx, cmd: RunsCommand) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    match cmd {
        RunsCommand::Ls(args) => ls(ctx, &ws, &args),
        RunsCommand::Show { run_id } => show(ctx, &ws, &run_id),
        RunsCommand::Tail(args) => tail(ctx, &ws, args),
    }
}

fn not_found(run_id: &str) -> Error {
    Error::refused(
        format!("run not found: {run_id}"),
        Some("run `millrace runs ls` to see the run ids".into()),
    )
}

fn tokens(usage: &Option<TokenUsage>) -> String {
    match usage {
        Some(u) => format!(
            "{} total ({} input, {} cached, {} output, {} thinking){}",
            u.total_tokens,
            u.input_tokens,
            u.cached_input_tokens,
            u.output_tokens,
            u.thinking_tokens,
            u.cost_usd.map(|c| format!(", ${c:.4}")).unwrap_or_default()
        ),
        None => "none".into(),
    }
}

fn subject(s: &RunSummary) -> String {
    match (
        &s.closure_target_root_spec_id,
        &s.work_item_kind,
        &s.work_item_id,
    ) {
        (Some(root), _, _) => format!("closure target {root}"),
        (None, Some(kind), Some(id)) => format!("{kind} {id}"),
        _ => "none".into(),
    }
}

fn summary_lines(s: &RunSummary) -> String {
    let stages: Vec<&str> = s.stages.iter().map(|st| st.as_str()).collect();
    let mut out = format!("run_id: {}\nstatus: {}\n", s.run_id, s.status.as_str());
    out.push_str(&format!("active: {}\n", s.active));
    out.push_str(&format!(
        "stages_run: {}{}\n",
        s.stages_run,
        if stages.is_empty() {
            String::new()
        } else {
            format!(" ({})", stages.join(", "))
        }
    ));
    out.push_str(&format!("subject: {}\n", subject(s)));
    out.push_str(&format!(
        "request_kind: {}\n",
        or_none(s.request_kind.map(|k| k.as_str()))
    ));
    out.push_str(&format!(
        "last_terminal_result: {}\n",
        or_none(s.last_terminal_result)
    ));
    out.push_str(&format!(
        "failure_class: {}\n",
        or_none(s.failure_class.as_deref())
    ));
    if let Some(message) = &s.failure_message {
        out.push_str(&format!("failure_message: {message}\n"));
    }
    out.push_str(&format!(
        "started_at: {}\n",
        or_none(s.started_at.as_deref())
    ));
    out.push_str(&format!(
        "completed_at: {}\n",
        or_none(s.completed_at.as_deref())
    ));
    out.push_str(&format!(
        "duration_seconds: {}\n",
        or_none(s.duration_seconds.map(py_float))
    ));
    out.push_str(&format!("tokens: {}\n", tokens(&s.token_usage)));
    out
}

#[derive(Serialize)]
struct Listing<'a> {
    runs: &'a [RunSummary],
    /// How many runs there are in all; `runs` is the page from `offset`.
    total: usize,
    offset: usize,
}

fn ls(ctx: &Ctx, ws: &Workspace, args: &LsArgs) -> Result<ExitCode> {
    let (page, total) = runs::list(ws, args.offset, args.limit);
    if total == 0 && !ctx.json {
        eprintln!("no runs yet: they appear under millrace-agents/runs/ once a stage runs");
    }
    let listing = Listing {
        runs: &page,
        total,
        offset: args.offset,
    };
    ctx.emit(&listing, || {
        let mut text = page
            .iter()
            .map(summary_lines)
            .collect::<Vec<_>>()
            .join("\n");
        if args.offset + page.len() < total {
            text.push_str(&format!(
                "\n({} of {total} runs shown; `--offset {}` shows the next page)\n",
                page.len(),
                args.offset + page.len()
            ));
        }
        text
    });
    Ok(ExitCode::Ok)
}

fn render_detail(d: &RunDetail) -> String {
    let mut out = summary_lines(&d.summary);
    out.push_str(&format!(
        "lineage_root_spec_id: {}\nlineage_root_idea_id: {}\nlineage_source: {}\n",
        or_none(d.lineage.root_spec_id.as_deref()),
        or_none(d.lineage.root_idea_id.as_deref()),
        d.lineage.source
    ));
    for note in &d.summary.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for r in &d.stage_results {
        out.push('\n');
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k}: {v}\n"));
        stage_header(&mut line, r);
        line("terminal_result", r.terminal_result.to_string());
        line("result_class", r.result_class.to_string());
        line("failure_class", or_none(r.failure_class.as_deref()));
        if let Some(message) = &r.failure_message {
            line("failure_message", message.clone());
        }
        for refused in &r.refused {
            line("warning", format!("the harness refused: {refused}"));
        }
        if let Some(last) = &r.last_line {
            line("harness_last_line", last.clone());
        }
        line("started_at", r.started_at.clone());
        line("completed_at", r.completed_at.clone());
        line("duration_seconds", py_float(r.duration_seconds));
        line("runner", r.runner_name.clone());
        line("model", or_none(r.model_name.as_deref()));
        line("exit_kind", r.exit_kind.clone());
        line("exit_code", r.exit_code.to_string());
        line("tokens", tokens(&r.token_usage));
        line("stdout_path", or_none(r.stdout_path.as_deref()));
        line("stderr_path", or_none(r.stderr_path.as_deref()));
        line("report_artifact", or_none(r.report_artifact.as_deref()));
        for path in &r.artifact_paths {
            line("artifact_path", path.clone());
        }
        for note in &r.notes {
            line("note", note.clone());
        }
    }
    out
}

fn stage_header(line: &mut impl FnMut(&str, String), r: &runs::StageEntry) {
    line("stage", r.stage.to_string());
    line("request_id", r.request_id.clone());
    line("request_kind", r.request_kind.as_str().to_string());
    line("stage_result_path", r.stage_result_path.clone());
    line(
        "work_item",
        format!("{} {}", r.work_item_kind, r.work_item_id),
    );
    if r.closure_target_root_spec_id.is_some() || r.closure_target_root_idea_id.is_some() {
        line(
            "closure_target_root_spec_id",
            or_none(r.closure_target_root_spec_id.as_deref()),
        );
        line(
            "closure_target_root_idea_id",
            or_none(r.closure_target_root_idea_id.as_deref()),
        );
    }
}

fn show(ctx: &Ctx, ws: &Workspace, run_id: &str) -> Result<ExitCode> {
    let detail = runs::show(ws, run_id).ok_or_else(|| not_found(run_id))?;
    ctx.emit(&detail, || render_detail(&detail));
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct Stream {
    path: String,
    lines: Vec<String>,
}

#[derive(Serialize)]
struct Tail<'a> {
    run_id: &'a str,
    stage: &'a LatestStage,
    stdout: Stream,
    stderr: Stream,
}

fn tail(ctx: &Ctx, ws: &Workspace, args: TailArgs) -> Result<ExitCode> {
    let run_id = match &args.run_id {
        Some(run_id) if !runs::exists(ws, run_id) => return Err(not_found(run_id)),
        Some(run_id) => run_id.clone(),
        None => runs::latest_run(ws).ok_or_else(|| {
            Error::refused(
                "no stage has run yet in this workspace",
                Some("start one with `millrace run once` or `millrace watch`".into()),
            )
        })?,
    };
    let latest = runs::latest_stage(ws, &run_id).ok_or_else(|| {
        Error::refused(
            format!("run {run_id} has no stage output yet"),
            Some(format!("run `millrace runs show {run_id}`")),
        )
    })?;
    // A stage still running shows whole lines only, and following starts where they end:
    // nothing written meanwhile is lost or shown twice.
    let live = args.follow && !latest.finished;
    let mut offsets = [0u64; 2];
    let mut stream = |at: usize, path: &Path| {
        let (lines, shown) = runs::tail_lines(path, args.lines, live);
        offsets[at] = shown;
        Stream {
            path: ws.rel(path),
            lines,
        }
    };
    let report = Tail {
        run_id: &run_id,
        stage: &latest,
        stdout: stream(0, &latest.stdout_path),
        stderr: stream(1, &latest.stderr_path),
    };
    let emit = |text: String| {
        if args.follow && ctx.json {
            ctx.emit_line(&report, || text);
        } else {
            ctx.emit(&report, || text);
        }
    };
    emit({
        let mut s = format!(
            "run_id: {}\nrequest_id: {}\nstage: {}\nfinished: {}\n",
            run_id,
            latest.request_id,
            or_none(latest.stage),
            latest.finished
        );
        for (name, st) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
            s.push_str(&format!("--- {name}: {} ---\n", st.path));
            for l in &st.lines {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    });
    if !args.follow || latest.finished {
        return Ok(ExitCode::Ok);
    }
    follow(ctx, ws, &run_id, &args, &latest, offsets)
}

/// Print what the two capture files gain past `offsets` until the stage's result appears;
/// waits on file events (with a slow re-check in case an event is lost), never spins. In
/// text, each stream's new lines come under its own header: the dump ends with stderr, and
/// stdout lines printed after it read as stderr.
fn follow(
    ctx: &Ctx,
    ws: &Workspace,
    run_id: &str,
    args: &TailArgs,
    latest: &LatestStage,
    mut offsets: [u64; 2],
) -> Result<ExitCode> {
    let deadline = args
        .timeout_seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let waker = Waker::on_folders(&[ws.run_dir(run_id)], true, Duration::from_secs(2));
    let mut shown = "stderr";
    loop {
        let now = runs::latest_stage(ws, run_id);
        let finished = now
            .as_ref()
            .is_none_or(|s| s.finished || s.request_id != latest.request_id);
        // Where the followed stage's output is now: the Codex runner renames its stdout to
        // the event log when the stage ends (same bytes), and what was not read by then is
        // read from there.
        let files = runs::stage_by_request(ws, run_id, &latest.request_id);
        // A stage that had finished when the dump was printed is read on where the dump read.
        let stdout = match latest.finished {
            true => latest.stdout_path.clone(),
            false => runs::printed_stdout(ws, run_id, &latest.request_id),
        };
        for (i, (name, path)) in [("stdout", &stdout), ("stderr", &files.stderr_path)]
            .into_iter()
            .enumerate()
        {
            let fresh = read_from(path, &mut offsets[i], finished);
            if fresh.is_empty() {
                continue;
            }
            if ctx.json {
                ctx.emit_line(&json!({"stream": name, "text": fresh}), String::new);
            } else {
                if name != shown {
                    print_stdout(&format!("--- {name} ---\n"));
                    shown = name;
                }
                print_stdout(&fresh);
            }
        }
        if finished {
            // The followed stage's own result: by now the next stage may be the latest.
            let result = files.terminal_result;
            ctx.emit_line(
                &json!({"finished": true, "terminal_result": result}),
                || format!("--- finished: {} ---", or_none(result)),
            );
            return Ok(ExitCode::Ok);
        }
        let wait = match deadline {
            Some(d) if Instant::now() >= d => {
                ctx.emit_line(&json!({"finished": false, "timed_out": true}), || {
                    "--- timed out; the stage is still running ---".into()
                });
                return Ok(ExitCode::Ok);
            }
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(2)),
            None => Duration::from_secs(2),
        };
        if let Some(Wake::Signal(_)) = waker.wait(wait) {
            ctx.emit_line(&json!({"interrupted": true}), || "interrupted: true".into());
            return Ok(ExitCode::Ok);
        }
    }
}

/// The bytes of `path` past `offset` (advancing it), all of them when `whole`, else up to the
/// last line end; a truncated file starts over.
fn read_from(path: &Path, offset: &mut u64, whole: bool) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = crate::workspace::atomic::open_regular(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        *offset = 0;
    }
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    if !whole {
        buf.truncate(runs::whole_lines_len(&buf));
    }
    *offset += buf.len() as u64;
    String::from_utf8_lossy(&buf).into_owned()
}
