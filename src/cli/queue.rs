//! `millrace queue ls|show|add-*` and the top-level `add-task|add-spec|add-idea`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::{open_for_write, open_read_only, Ctx};
use crate::control::actions::{Action, Submission};
use crate::control::client::{Client, Reply};
use crate::documents;
use crate::error::{Error, ExitCode, Result};
use crate::model::WorkItemKind;
use crate::queue::{ItemSummary, QueueStore};
use crate::workspace::atomic::IoError;
use crate::workspace::Workspace;

/// How long `add-*` waits for a running daemon to queue the document.
const ADD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the open work items by folder (queue, active, blocked) and count the finished;
    /// `--done` pages through the finished ones, `--all` shows both.
    #[command(
        after_help = "Examples:\n  millrace queue ls --json\n  millrace queue ls --done --limit 20 --offset 40"
    )]
    Ls(LsArgs),
    /// Show one work item (any kind) with its lineage and document.
    #[command(after_help = "Example:\n  millrace queue show t-fetch-retry-01")]
    Show {
        /// Task, spec or incident id.
        id: String,
    },
    /// Queue a task document (.md or .json).
    #[command(after_help = "Example:\n  millrace queue add-task task.md")]
    AddTask(AddArgs),
    /// Queue a spec document (.md or .json); a spec without lineage becomes its own root.
    #[command(after_help = "Example:\n  millrace queue add-spec spec.json")]
    AddSpec(AddArgs),
    /// Drop an idea (.md) into millrace-agents/ideas/inbox/.
    #[command(after_help = "Example:\n  millrace queue add-idea resilient-fetch.md")]
    AddIdea(AddArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// List only finished items (done/, resolved/), by kind then id, a page at a time.
    #[arg(long, conflicts_with = "all")]
    pub done: bool,
    /// List the open items and a page of the finished ones.
    #[arg(long)]
    pub all: bool,
    /// How many finished items a page holds.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// How many finished items to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The document to add (`-` reads it from stdin, for tasks and specs).
    pub path: PathBuf,
}

pub fn run(ctx: &Ctx, cmd: QueueCommand) -> Result<ExitCode> {
    match cmd {
        QueueCommand::Ls(args) => ls(ctx, &args),
        QueueCommand::Show { id } => show(ctx, &id),
        QueueCommand::AddTask(args) => add(ctx, WorkItemKind::Task, args),
        QueueCommand::AddSpec(args) => add(ctx, WorkItemKind::Spec, args),
        QueueCommand::AddIdea(args) => add_idea(ctx, args),
    }
}

#[derive(Serialize)]
struct Added {
    kind: WorkItemKind,
    id: String,
    path: Option<String>,
    /// `Depends-On` entries no folder holds yet: the task waits until they are queued and
    /// done (a typo there would make it wait forever).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unknown_dependencies: Vec<String>,
}

fn read_input(path: &PathBuf) -> Result<String> {
    if path.is_dir() {
        return Err(Error::refused(
            format!("{} is a directory, not a document", path.display()),
            None,
        ));
    }
    let bytes =
        crate::workspace::atomic::read_named(path).map_err(|e| IoError::path("read", path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::refused(
            format!(
                "{}: not valid UTF-8 (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
            None,
        )
    })
}

fn read_stdin() -> Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::system("cannot read the document from stdin", e))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::refused(
            format!(
                "<stdin>: not valid UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            None,
        )
    })
}

/// `add-task` / `add-spec`: validate fully, then write atomically; nothing on failure.
pub fn add(ctx: &Ctx, kind: WorkItemKind, args: AddArgs) -> Result<ExitCode> {
    let (text, is_json, shown) = if args.path.as_os_str() == "-" {
        let text = read_stdin()?;
        // No file name to go by: a JSON document is an object, Markdown never starts with `{`.
        let is_json = text.trim_start().starts_with('{');
        (text, is_json, "<stdin>".to_string())
    } else {
        let name = args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_json = name.ends_with(".json");
        if !is_json && !name.ends_with(".md") {
            return Err(Error::refused(
                format!(
                    "{kind} import path must end with .md or .json (or be `-` for stdin): {}",
                    args.path.display()
                ),
                None,
            ));
        }
        if !args.path.exists() {
            return Err(Error::refused(
                format!(
                "{} does not exist (paths are relative to the current directory, not --workspace)",
                args.path.display()
            ),
                None,
            ));
        }
        let text = read_input(&args.path)?;
        (text, is_json, args.path.display().to_string())
    };
    let parse = |kind: WorkItemKind| {
        if is_json {
            documents::parse_json(kind, &shown, &text)
        } else {
            documents::parse(kind, &shown, &text)
        }
    };
    let other = match kind {
        WorkItemKind::Task => WorkItemKind::Spec,
        _ => WorkItemKind::Task,
    };
    let doc = match parse(kind) {
        Ok(doc) => doc,
        // A whole document of the other kind: say so, not every field it lacks.
        Err(_) if parse(other).is_ok() => {
            return Err(Error::refused(
                format!("{shown} is a {other} document, not a {kind}"),
                Some(format!("queue it with `millrace add-{other} {shown}`")),
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let ws = open_for_write(ctx)?;
    let submission = Box::new(Submission {
        doc,
        markdown: (!is_json).then_some(text),
    });
    let id = submission.doc.id().to_string();
    let store = crate::queue::QueueStore::new(&ws);
    let unknown_dependencies: Vec<String> = (submission.doc.depends_on().iter())
        .filter(|dep| store.locate(WorkItemKind::Task, dep).is_none())
        .cloned()
        .collect();
    let action = match kind {
        WorkItemKind::Task => Action::AddTask(submission),
        _ => Action::AddSpec(submission),
    };
    let path = submit_add(ctx, &ws, &action)?;
    let out = Added {
        kind,
        id,
        path,
        unknown_dependencies,
    };
    ctx.emit(&out, || match &out.path {
        Some(path) => format!("queued {} {} at {path}\n", out.kind, out.id),
        None => format!("{} {} handed to the running daemon\n", out.kind, out.id),
    });
    if !out.unknown_dependencies.is_empty() && !ctx.json {
        eprintln!(
            "warning: {} {} depends on {}, which no folder holds yet; it waits until each is \
             queued and done (`millrace doctor` reports what can never run)",
            out.kind,
            out.id,
            out.unknown_dependencies.join(", ")
        );
    }
    Ok(ExitCode::Ok)
}

/// Where a submitted `add_*` action put its file: applied under the lock, or by the running
/// daemon (`None` while it is still queued for the daemon: the JSON then names the mailbox
/// file). A refusal is an error.
fn submit_add(ctx: &Ctx, ws: &Workspace, action: &Action) -> Result<Option<String>> {
    match Client::new(ws).submit(action, ADD_WAIT)? {
        Reply::Direct(outcome) | Reply::Daemon { outcome, .. } => {
            Ok(Some(outcome.artifact_path.unwrap_or_default()))
        }
        Reply::Refused {
            error, error_path, ..
        } => Err(Error::refused(
            format!("{}: {error}", action.name()),
            Some(format!("see {error_path}")),
        )),
        Reply::Queued { mailbox_path, .. } => {
            if !ctx.json {
                eprintln!(
                    "the running daemon has not taken it yet; it is waiting in {mailbox_path}"
                );
            }
            Ok(None)
        }
    }
}

/// `add-idea`: copy the idea into the inbox (never overwriting); the runtime turns it into a
/// spec. The same action a daemon applies for a mailbox `add_idea`.
pub fn add_idea(ctx: &Ctx, args: AddArgs) -> Result<ExitCode> {
    if args.path.as_os_str() == "-" {
        return Err(Error::usage(
            "add-idea needs a file: the idea's file name becomes its name in the inbox",
            Some("save it as a .md file first, e.g. `cat > my-idea.md`".into()),
        ));
    }
    let name = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = read_input(&args.path)?;
    documents::check_idea_submission(&name, &text)?;
    let ws = open_for_write(ctx)?;
    let action = Action::AddIdea {
        name: name.clone(),
        markdown: text,
    };
    let rel = submit_add(ctx, &ws, &action)?;
    let out = json!({"kind": "idea", "name": name, "path": rel});
    ctx.emit(&out, || match &rel {
        Some(rel) => format!("added idea {name} at {rel} (it becomes a spec at the next tick)\n"),
        None => format!("idea {name} handed to the running daemon\n"),
    });
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct Listing {
    queue_depth_execution: u64,
    queue_depth_planning: u64,
    active_execution: usize,
    active_planning: usize,
    /// Finished items (done/, resolved/); listed only with `--done` or `--all`.
    done_count: usize,
    /// The page of finished items listed (`--done`, `--all`).
    done_offset: Option<usize>,
    done_limit: Option<usize>,
    items: Vec<ItemSummary>,
    /// With parallel lanes: the active tasks by lane, and which wait to land.
    lanes: Vec<LaneMark>,
}

/// An active task's lane, and its integration when its loop is done.
#[derive(Serialize)]
struct LaneMark {
    id: String,
    lane: u32,
    waiting_to_land: bool,
    /// Why landing waits, when it does (a dirty main working tree).
    reason: Option<String>,
}

impl LaneMark {
    fn text(&self) -> String {
        match (&self.reason, self.waiting_to_land) {
            (Some(reason), _) => format!("[lane {}, waiting to land: {reason}]", self.lane),
            (None, true) => format!("[lane {}, waiting to land]", self.lane),
            (None, false) => format!("[lane {}]", self.lane),
        }
    }
}

fn ls(ctx: &Ctx, args: &LsArgs) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let store = QueueStore::new(&ws);
    let (exec, plan) = store.depths();
    let mut items = if args.done {
        Vec::new()
    } else {
        store.list_open()
    };
    let paged = args.done || args.all;
    if paged {
        items.extend(store.list_done(args.offset, args.limit));
    }
    let listing = Listing {
        queue_depth_execution: exec,
        queue_depth_planning: plan,
        active_execution: store.active_items(crate::model::Plane::Execution).len(),
        active_planning: store.active_items(crate::model::Plane::Planning).len(),
        done_count: store.done_count(),
        done_offset: paged.then_some(args.offset),
        done_limit: paged.then_some(args.limit),
        items,
        lanes: crate::state::snapshot::Snapshot::load(&ws.snapshot_path())
            .map(|s| {
                s.lanes
                    .into_iter()
                    .map(|l| LaneMark {
                        id: l.work_item_id,
                        lane: l.lane,
                        waiting_to_land: l.integrating,
                        reason: l.integration_wait,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    ctx.emit(&listing, || {
        let mut s = format!(
            "execution: {} queued, {} active\nplanning: {} queued, {} active\n",
            listing.queue_depth_execution,
            listing.active_execution,
            listing.queue_depth_planning,
            listing.active_planning
        );
        match listing.done_offset {
            None => s.push_str(&format!(
                "finished: {} (`millrace queue ls --done` lists them)\n",
                listing.done_count
            )),
            Some(offset) => s.push_str(&format!(
                "finished: {} (showing from {})\n",
                listing.done_count,
                offset + 1
            )),
        }
        let mut folder = String::new();
        for item in &listing.items {
            if item.folder != folder {
                folder = item.folder.clone();
                s.push_str(&format!("\n{folder}/\n"));
            }
            let lane = listing
                .lanes
                .iter()
                .find(|l| l.id == item.id && item.folder.ends_with("active"))
                .map(|l| format!("  {}", l.text()))
                .unwrap_or_default();
            match (&item.title, &item.error) {
                (Some(title), _) => s.push_str(&format!("  {}  {}{lane}\n", item.id, title)),
                (None, Some(err)) => s.push_str(&format!("  {}  (invalid: {err})\n", item.id)),
                _ => s.push_str(&format!("  {}\n", item.id)),
            }
        }
        s
    });
    Ok(ExitCode::Ok)
}

fn show(ctx: &Ctx, id: &str) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let store = QueueStore::new(&ws);
    let found = store.find(id);
    if found.is_empty() {
        if let Some((path, reason)) = crate::inspect::doctor::quarantined(&ws, id) {
            return Err(Error::refused(
                format!(
                    "no folder holds work item {id}; {} was set aside: {}",
                    ws.rel(&path),
                    reason.as_deref().unwrap_or("no reason recorded")
                ),
                Some(match path.extension().is_some_and(|e| e == "md") {
                    true => format!(
                        "fix it, then queue it again: `millrace add-task {}` (or add-spec)",
                        ws.rel(&path)
                    ),
                    false => format!(
                        "fix it, save it as {id}.md, then queue it again: `millrace add-task {id}.md` (or add-spec)"
                    ),
                }),
            ));
        }
        return Err(Error::refused(
            format!("no work item with id {id}"),
            Some("run `millrace queue ls` to see every id".into()),
        ));
    }
    let items: Vec<serde_json::Value> = found
        .iter()
        .map(|(summary, doc)| {
            let text = crate::workspace::atomic::read_regular_string(ws.root().join(&summary.path))
                .unwrap_or_default();
            json!({
                "item": summary,
                "effective_root_spec_id": doc.as_ref().and_then(|d| d.effective_root_spec.clone()),
                "document": text,
            })
        })
        .collect();
    ctx.emit(&items, || {
        let mut s = String::new();
        for (summary, doc) in &found {
            s.push_str(&format!(
                "kind: {}\nid: {}\nfolder: {}\npath: {}\n",
                summary.kind, summary.id, summary.folder, summary.path
            ));
            if let Some(title) = &summary.title {
                s.push_str(&format!("title: {title}\n"));
            }
            s.push_str(&format!(
                "root_spec_id: {}\nroot_idea_id: {}\n",
                super::output::or_none(summary.root_spec_id.as_deref()),
                super::output::or_none(summary.root_idea_id.as_deref())
            ));
            if let Some(doc) = doc {
                s.push_str(&format!(
                    "effective_root_spec_id: {}\n",
                    super::output::or_none(doc.effective_root_spec.as_deref())
                ));
            }
            if !summary.depends_on.is_empty() {
                s.push_str(&format!("depends_on: {}\n", summary.depends_on.join(", ")));
            }
            s.push('\n');
        }
        s
    });
    // Decision 8: a document that does not parse is an error, on stderr with a non-zero exit.
    let mut broken = false;
    for (summary, _) in &found {
        if let Some(err) = &summary.error {
            // The parser names the file only; name it by its workspace path.
            let name = format!("{}.md", summary.id);
            match err.strip_prefix(&name) {
                Some(rest) => eprintln!("error: {}{rest}", summary.path),
                None => eprintln!("error: {}: {err}", summary.path),
            }
            broken = true;
        }
    }
    if broken {
        eprintln!("hint: fix the document; a daemon quarantines a queued file that does not parse");
        return Ok(ExitCode::Failed);
    }
    Ok(ExitCode::Ok)
}
