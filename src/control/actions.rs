//! The control actions, one implementation each, applied directly or by the daemon.

use serde::Serialize;
use serde_json::{json, Value};

use super::mailbox::{Command, Envelope};
use crate::config::StopMode;
use crate::documents::{self, Document};
use crate::error::{Error, Result};
use crate::model::{Plane, WorkItemKind};
use crate::queue::QueueStore;
use crate::state::counters::Counters;
use crate::state::event::EventKind;
use crate::state::events::EventLog;
use crate::state::runtime::{Pause, RuntimeState};
use crate::workspace::atomic::{self, IoError};
use crate::workspace::{Folder, Workspace};

/// Requeue reason when `retry-active` is given none.
pub const DEFAULT_RETRY_REASON: &str = "operator requested retry";
/// Requeue reason when `planning retry-active` is given none.
pub const DEFAULT_PLANNING_RETRY_REASON: &str = "operator requested planning retry";
/// Requeue reason when `requeue` is given none.
pub const DEFAULT_REQUEUE_REASON: &str = "operator requeued a blocked item";
/// Requeue reason when `clear-stale-state` is given none.
pub const DEFAULT_CLEAR_REASON: &str = "operator requested stale-state clear";

/// A control action with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pause,
    Resume,
    Stop,
    RetryActive {
        reason: String,
        scope: Option<Plane>,
        /// With parallel lanes: which active task.
        id: Option<String>,
    },
    ClearStaleState {
        reason: String,
    },
    /// Move a blocked item (any kind) back to its queue with fresh budgets.
    Requeue {
        id: String,
        reason: String,
    },
    ReloadConfig,
    AddTask(Box<Submission>),
    AddSpec(Box<Submission>),
    AddIdea {
        name: String,
        markdown: String,
    },
}

/// A task or spec to queue: the document, and the operator's Markdown when it came as
/// Markdown (queued byte for byte; a JSON document is queued in canonical form).
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub doc: Document,
    pub markdown: Option<String>,
}

impl From<Document> for Submission {
    fn from(doc: Document) -> Submission {
        Submission {
            doc,
            markdown: None,
        }
    }
}

impl Submission {
    /// The document and the text to queue, with decision 12's lineage rule applied: a spec
    /// without lineage roots its own (`Root-Spec-ID` added after its `Spec-ID` line).
    pub fn prepared(&self) -> (Document, String) {
        let mut doc = self.doc.clone();
        let own_root = match &mut doc {
            Document::Spec(spec) if spec.root_spec_id.is_none() => {
                spec.root_spec_id = Some(spec.spec_id.clone());
                true
            }
            _ => false,
        };
        let text = match &self.markdown {
            Some(md) if own_root => documents::with_own_root_lineage(md, doc.id()),
            Some(md) => md.clone(),
            None => doc.render(),
        };
        (doc, text)
    }
}

/// Who applies the action: the CLI on an unowned workspace, or the owning daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Daemon,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub action: &'static str,
    pub applied: bool,
    pub detail: String,
    pub artifact_path: Option<String>,
}

fn non_blank(reason: Option<String>, default: &str) -> String {
    reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `payload.document` (the JSON form), or `payload.markdown` (kept byte for byte).
fn submission_from(payload: Option<&Value>, kind: WorkItemKind) -> Result<Submission, String> {
    let payload = payload.ok_or("payload.document or payload.markdown is required")?;
    let obj = payload.as_object().ok_or("payload must be a mapping")?;
    if obj.keys().any(|k| k != "document" && k != "markdown") {
        return Err("payload accepts only `document` or `markdown`".into());
    }
    match (obj.get("markdown"), obj.get("document")) {
        (Some(Value::String(md)), _) => {
            let doc = documents::parse(kind, "payload.markdown", md).map_err(|e| e.to_string())?;
            Ok(Submission {
                doc,
                markdown: Some(md.clone()),
            })
        }
        (Some(_), _) => Err("payload.markdown must be a string".into()),
        (None, Some(doc)) => documents::parse_json(kind, "payload.document", &doc.to_string())
            .map(Submission::from)
            .map_err(|e| e.to_string()),
        (None, None) => Err("payload.document or payload.markdown is required".into()),
    }
}

impl Action {
    /// The mailbox command name.
    pub fn name(&self) -> &'static str {
        self.command().as_str()
    }

    /// The mailbox command that carries this action.
    pub fn command(&self) -> Command {
        match self {
            Action::Pause => Command::Pause,
            Action::Resume => Command::Resume,
            Action::Stop => Command::Stop,
            Action::RetryActive { .. } => Command::RetryActive,
            Action::ClearStaleState { .. } => Command::ClearStaleState,
            Action::Requeue { .. } => Command::Requeue,
            Action::ReloadConfig => Command::ReloadConfig,
            Action::AddTask(_) => Command::AddTask,
            Action::AddSpec(_) => Command::AddSpec,
            Action::AddIdea { .. } => Command::AddIdea,
        }
    }

    /// Read an action out of an envelope, validating its payload.
    pub fn from_envelope(env: &Envelope) -> Result<Action, String> {
        Ok(match env.command {
            Command::Pause => Action::Pause,
            Command::Resume => Action::Resume,
            Command::Stop => Action::Stop,
            Command::ReloadConfig => Action::ReloadConfig,
            Command::RetryActive => {
                let scope = match env.payload_str("scope")? {
                    None => None,
                    Some(s) => Some(
                        s.parse::<Plane>()
                            .map_err(|_| format!("Unsupported retry_active scope: {s}"))?,
                    ),
                };
                let default = if scope == Some(Plane::Planning) {
                    DEFAULT_PLANNING_RETRY_REASON
                } else {
                    DEFAULT_RETRY_REASON
                };
                Action::RetryActive {
                    reason: non_blank(env.payload_str("reason")?, default),
                    scope,
                    id: env.payload_str("id")?.filter(|id| !id.trim().is_empty()),
                }
            }
            Command::ClearStaleState => Action::ClearStaleState {
                reason: non_blank(env.payload_str("reason")?, DEFAULT_CLEAR_REASON),
            },
            Command::Requeue => Action::Requeue {
                id: env
                    .payload_str("id")?
                    .filter(|id| !id.trim().is_empty())
                    .ok_or("requeue needs payload.id (the blocked item's id)")?,
                reason: non_blank(env.payload_str("reason")?, DEFAULT_REQUEUE_REASON),
            },
            Command::AddTask => Action::AddTask(Box::new(submission_from(
                env.payload.as_ref(),
                WorkItemKind::Task,
            )?)),
            Command::AddSpec => Action::AddSpec(Box::new(submission_from(
                env.payload.as_ref(),
                WorkItemKind::Spec,
            )?)),
            Command::AddIdea => {
                let name = env
                    .payload_str("source_name")?
                    .ok_or("add_idea needs payload.source_name")?;
                let markdown = env
                    .payload_str("markdown")?
                    .ok_or("add_idea needs payload.markdown")?;
                documents::check_idea_submission(&name, &markdown).map_err(|e| e.to_string())?;
                Action::AddIdea { name, markdown }
            }
        })
    }

    /// The envelope that asks a daemon to apply this action.
    pub fn to_envelope(&self) -> Envelope {
        let payload = match self {
            Action::RetryActive { reason, scope, id } => {
                let mut payload = json!({"reason": reason});
                if let Some(scope) = scope {
                    payload["scope"] = json!(scope);
                }
                if let Some(id) = id {
                    payload["id"] = json!(id);
                }
                payload
            }
            Action::ClearStaleState { reason } => json!({"reason": reason}),
            Action::Requeue { id, reason } => json!({"id": id, "reason": reason}),
            Action::AddIdea { name, markdown } => {
                json!({"source_name": name, "markdown": markdown})
            }
            Action::AddTask(sub) | Action::AddSpec(sub) => match &sub.markdown {
                Some(md) => json!({"markdown": md}),
                None => json!({"document": documents::to_json(&sub.doc)}),
            },
            _ => json!({}),
        };
        Envelope::new(self.command(), payload)
    }
}

/// The state an action mutates.
pub struct Target<'a> {
    pub ws: &'a Workspace,
    pub state: &'a mut RuntimeState,
    pub counters: &'a mut Counters,
    pub queue: &'a QueueStore,
    pub events: &'a EventLog,
    /// What a daemon's `stop` does with a running stage (`runtime.stop_mode`).
    pub stop_mode: StopMode,
}

fn outcome(action: &Action, applied: bool, detail: impl Into<String>) -> Outcome {
    Outcome {
        action: action.name(),
        applied,
        detail: detail.into(),
        artifact_path: None,
    }
}

/// `requeue ID`: a blocked item goes back to its queue with its budget counters reset (they
/// are what blocked it); anything else is reported as not applied, with the way forward.
fn requeue_blocked(action: &Action, t: &mut Target, id: &str, reason: &str) -> Result<Outcome> {
    let found = WorkItemKind::ALL
        .into_iter()
        .find_map(|kind| t.queue.locate(kind, id).map(|(folder, _)| (kind, folder)));
    let (kind, folder) = match found {
        Some((kind, Folder::Blocked)) => (kind, Folder::Blocked),
        Some((kind, folder)) => {
            let detail = match folder {
                Folder::Active => format!(
                    "{kind} {id} is active, not blocked; `millrace retry-active` requeues it"
                ),
                Folder::Queue => format!("{kind} {id} is already queued; nothing to do"),
                _ => format!("{kind} {id} is done; nothing to requeue"),
            };
            return Ok(outcome(action, false, detail));
        }
        None => {
            return Ok(outcome(
                action,
                false,
                format!("no work item with id {id} (`millrace queue ls` lists them)"),
            ))
        }
    };
    let dest = match t.queue.requeue_from(kind, id, folder, reason) {
        Ok(dest) => dest,
        Err(e) => return Ok(outcome(action, false, e.to_string())),
    };
    t.counters.reset_item(kind, id);
    t.counters.save(&t.ws.counters_path())?;
    t.events.emit(
        EventKind::WorkItemRequeued,
        json!({"kind": kind, "id": id, "reason": reason, "from": "blocked"}),
    )?;
    t.state.set_depths(t.queue.depths());
    t.state.save(&t.ws.snapshot_path())?;
    let mut out = outcome(
        action,
        true,
        format!("blocked {kind} {id} requeued with fresh budgets"),
    );
    out.artifact_path = Some(t.ws.rel(&dest));
    Ok(out)
}

/// The lanes' stages a stop waits for (`lane 1: builder on t1`); empty with one lane.
fn lane_stages(state: &RuntimeState) -> Vec<String> {
    let mut lanes: Vec<(u32, String)> = state
        .activations()
        .iter()
        .filter_map(|a| {
            let (lane, id) = a.lane_task()?;
            let line = format!("lane {}: {} on {id}", lane.index, a.stage);
            (!lane.integrating).then_some((lane.index, line))
        })
        .collect();
    lanes.sort();
    lanes.into_iter().map(|(_, line)| line).collect()
}

/// When a daemon's stop takes effect: the running stages finish first (`stop_mode: finish`).
fn stop_detail(state: &RuntimeState, mode: StopMode, again: bool) -> String {
    let lanes = lane_stages(state);
    let (what, one) = match state.running_stage() {
        _ if lanes.len() > 1 => (format!("stages ({})", lanes.join(", ")), false),
        Some(stage) => (format!("{stage} stage"), true),
        None => return "stop requested; the daemon stops at once".into(),
    };
    if again || mode == StopMode::Interrupt {
        let why = if again {
            "stop requested again"
        } else {
            "stop requested (runtime.stop_mode: interrupt)"
        };
        let (verb, each) = if one {
            ("is", "runs")
        } else {
            ("are", "each runs")
        };
        return format!(
            "{why}; the running {what} {verb} ended now and {each} again at the next start"
        );
    }
    let elapsed = state
        .active()
        .filter(|_| one)
        .and_then(|a| a.since.parse::<jiff::Timestamp>().ok())
        .and_then(|since| {
            let secs = crate::time::now().as_second() - since.as_second();
            u64::try_from(secs).ok()
        })
        .map(|secs| format!(", running for {}m {:02}s", secs / 60, secs % 60))
        .unwrap_or_default();
    let (ends, them) = if one {
        ("ends", "the stage")
    } else {
        ("end", "them")
    };
    format!(
        "stop requested; the daemon stops when the running {what} {ends}{elapsed} \
         (`millrace stop` again, or a second Ctrl-C, ends {them} now)"
    )
}

/// What a pause means right now: no new stage starts, so a running stage finishes.
fn pause_detail(state: &RuntimeState, daemon: bool) -> String {
    match state.running_stage().filter(|_| daemon) {
        Some(stage) => {
            format!("runtime paused; no new stage starts (the running {stage} stage finishes)")
        }
        None => "runtime paused; no new stage starts".into(),
    }
}

/// Apply an action to the workspace. `ReloadConfig` is only meaningful to a daemon, which
/// handles it itself; applied directly it reports that nothing was done.
/// `retry-active`: the active item back to its queue, the runtime idle.
fn retry_active(
    action: &Action,
    t: &mut Target,
    reason: &str,
    scope: Option<Plane>,
    wanted: Option<&str>,
    daemon: bool,
) -> Result<Outcome> {
    let items: Vec<(WorkItemKind, String, Plane, String)> = t
        .state
        .activations()
        .iter()
        .filter_map(|a| {
            let (kind, id) = a.subject.item()?;
            Some((kind, id.to_string(), a.plane(), a.run_id.clone()))
        })
        .collect();
    let chosen = match wanted {
        Some(wanted) => items.iter().find(|(_, id, _, _)| id == wanted),
        None if items.len() > 1 => {
            let ids: Vec<&str> = items.iter().map(|(_, id, _, _)| id.as_str()).collect();
            return Ok(outcome(
                action,
                false,
                format!(
                    "several items are active ({}); name one with --id",
                    ids.join(", ")
                ),
            ));
        }
        None => items.first(),
    };
    let Some((kind, id, plane, run_id)) = chosen.cloned() else {
        let what = match wanted {
            Some(id) => format!("{id} is not active"),
            None => "no active work item to retry".into(),
        };
        return Ok(outcome(action, false, what));
    };
    if landing(t.state).contains(&id) {
        return Ok(outcome(
            action,
            false,
            format!(
                "task {id} finished its loop and is landing on the base branch; it cannot be \
                 retried (`millrace status` says what its landing waits for)"
            ),
        ));
    }
    if let Some(scope) = scope {
        if plane != scope {
            let plane = plane.to_string();
            t.events.emit(
                EventKind::RetryActiveSkipped,
                json!({"requested_scope": scope, "active_plane": plane,
                       "work_item_kind": kind, "work_item_id": id}),
            )?;
            return Ok(outcome(
                action,
                false,
                format!(
                    "{scope} retry requires active {scope} work; current active plane is {plane}"
                ),
            ));
        }
    }
    if let Err(e) = t.queue.requeue(kind, &id, reason) {
        return Ok(outcome(action, false, e.to_string()));
    }
    t.counters.reset_item(kind, &id);
    t.counters.save(&t.ws.counters_path())?;
    let depths = t.queue.depths();
    let running = t.state.process_running() && daemon;
    if t.state.activations().len() > 1 {
        // Parallel lanes: only this item leaves; the others run on.
        t.state.focus_on(&run_id);
        t.state.go_idle(None, false);
        crate::state::idle_free_planes(t.ws, t.state)?;
        t.state.set_depths(depths);
        t.state.save(&t.ws.snapshot_path())?;
    } else {
        crate::state::reset_idle(t.ws, t.state, depths, running, false)?;
    }
    t.events.emit(
        EventKind::WorkItemRequeued,
        json!({"kind": kind, "id": id, "reason": reason}),
    )?;
    Ok(outcome(
        action,
        true,
        format!("active {kind} {id} requeued"),
    ))
}

/// The tasks of lanes whose loop finished and whose branch is landing.
fn landing(state: &RuntimeState) -> Vec<String> {
    state
        .activations()
        .iter()
        .filter(|a| a.lane.as_ref().is_some_and(|l| l.integrating))
        .filter_map(|a| a.subject.item().map(|(_, id)| id.to_string()))
        .collect()
}

/// `clear-stale-state`: every active item back to its queue, counters and snapshot reset.
fn clear_stale_state(
    action: &Action,
    t: &mut Target,
    reason: &str,
    daemon: bool,
) -> Result<Outcome> {
    let mut requeued = 0;
    // A lane's task that is landing stays (see `RuntimeState::reset_idle`).
    let landing = landing(t.state);
    for kind in WorkItemKind::ALL {
        for (k, id) in t.queue.active_items(kind.plane()) {
            if kind == WorkItemKind::Task && landing.contains(&id) {
                continue;
            }
            if k == kind && t.queue.requeue(kind, &id, reason).is_ok() {
                requeued += 1;
                t.events.emit(
                    EventKind::WorkItemRequeued,
                    json!({"kind": kind, "id": id, "reason": reason}),
                )?;
            }
        }
    }
    let applied = requeued > 0
        || !t.counters.entries.is_empty()
        || t.state.active().is_some()
        || t.state.is_paused()
        || t.state.stop_requested();
    t.counters.clear();
    t.counters.save(&t.ws.counters_path())?;
    let depths = t.queue.depths();
    crate::state::reset_idle(t.ws, t.state, depths, daemon, true)?;
    let detail = if applied {
        format!("cleared stale runtime state; requeued={requeued}")
    } else {
        "no stale state (nothing active, no counters, not paused); nothing to do".into()
    };
    Ok(outcome(action, applied, detail))
}

/// `add-task` / `add-spec`: queue the document (idempotent for a daemon re-applying it).
fn add_document(
    action: &Action,
    t: &mut Target,
    submission: &Submission,
    daemon: bool,
) -> Result<Outcome> {
    let (doc, text) = submission.prepared();
    // A daemon that crashed after applying but before archiving re-applies the same
    // envelope at its next start (still the first thing it does): the identical
    // document already waiting in the queue means the command was applied.
    let queued = t.ws.item_path(doc.kind(), Folder::Queue, doc.id());
    if daemon && atomic::read_regular(&queued).ok().as_deref() == Some(text.as_bytes()) {
        let mut out = outcome(
            action,
            true,
            format!("{} {} already queued", doc.kind(), doc.id()),
        );
        out.artifact_path = Some(t.ws.rel(&queued));
        return Ok(out);
    }
    let path = t.queue.enqueue_text(doc.kind(), doc.id(), &text)?;
    let rel = t.ws.rel(&path);
    let source = if daemon { "mailbox" } else { "cli" };
    t.events.emit(
        EventKind::WorkItemAdded,
        json!({"kind": doc.kind(), "id": doc.id(), "path": rel, "source": source}),
    )?;
    t.state.set_depths(t.queue.depths());
    t.state.save(&t.ws.snapshot_path())?;
    let mut out = outcome(action, true, format!("{} {} queued", doc.kind(), doc.id()));
    out.artifact_path = Some(rel);
    Ok(out)
}

/// `add-idea`: stage the idea in the inbox (never overwriting another).
fn add_idea(
    action: &Action,
    t: &mut Target,
    name: &str,
    markdown: &str,
    daemon: bool,
) -> Result<Outcome> {
    let dest = t.ws.ideas_inbox().join(name);
    // An idea becomes spec `idea-<stem>`: one whose spec exists would never be planned.
    let id = crate::documents::idea_spec_id(name.strip_suffix(".md").unwrap_or(name));
    if let Some((folder, _)) = t.queue.locate(WorkItemKind::Spec, &id) {
        if dest.symlink_metadata().is_err() {
            return Err(Error::refused(
                format!(
                    "idea {name} would become spec {id}, which {} already holds: an idea of \
                     that name (or one giving the same id) was planned before",
                    t.queue.folder_label(WorkItemKind::Spec, folder)
                ),
                Some("name the file differently to add it as an idea of its own".into()),
            ));
        }
    }
    match atomic::create_atomic(&dest, markdown.as_bytes()) {
        Ok(()) => {}
        // The same idea already staged: this envelope was applied before a crash.
        Err(IoError::AlreadyExists { .. })
            if daemon
                && atomic::read_regular(&dest).ok().as_deref() == Some(markdown.as_bytes()) => {}
        Err(IoError::AlreadyExists { .. }) => {
            return Err(Error::refused(
                format!(
                    "idea document already exists: {} (ideas are never overwritten; \
                 rename your file to add it as another idea)",
                    dest.display()
                ),
                None,
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let rel = t.ws.rel(&dest);
    t.events.emit(
        EventKind::IdeaAdded,
        json!({"source_name": name, "path": rel,
               "source": if daemon { "mailbox" } else { "cli" }}),
    )?;
    let mut out = outcome(action, true, format!("idea {name} staged"));
    out.artifact_path = Some(rel);
    Ok(out)
}

pub fn apply(action: &Action, t: &mut Target, mode: Mode) -> Result<Outcome> {
    let daemon = mode == Mode::Daemon;
    match action {
        Action::Pause => {
            let paused_itself = match t.state.pause() {
                Pause::Auto { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            if !t.state.pause_by_operator() {
                return Ok(outcome(action, false, "already paused; nothing to do"));
            }
            t.state.save(&t.ws.snapshot_path())?;
            let mut detail = pause_detail(t.state, daemon);
            if let Some(reason) = paused_itself {
                detail.push_str(&format!(
                    "; it had paused itself ({reason}) and now stays paused until `millrace \
                     resume`"
                ));
            }
            Ok(outcome(action, true, detail))
        }
        Action::Resume => {
            if !t.state.resume_by_operator() {
                return Ok(outcome(action, false, "not paused; nothing to do"));
            }
            t.state.save(&t.ws.snapshot_path())?;
            Ok(outcome(action, true, "runtime resumed"))
        }
        Action::Stop => {
            if daemon {
                // A second stop does not wait for the running stage: it ends it.
                let again = t.state.stop_requested();
                t.state.request_stop();
                if again {
                    t.state.stop_now();
                }
                t.state.save(&t.ws.snapshot_path())?;
                let detail = stop_detail(t.state, t.stop_mode, again);
                return Ok(outcome(action, true, detail));
            }
            let applied = t.state.process_running() || t.state.stop_requested();
            t.state.shut_down();
            t.state.save(&t.ws.snapshot_path())?;
            let mut detail = if applied {
                "runtime stopped; the next start resumes any active item at its recorded stage"
            } else {
                "runtime was not running"
            }
            .to_string();
            if t.state.is_paused() {
                detail.push_str("; it stays paused (millrace resume ends the pause)");
            }
            Ok(outcome(action, applied, detail))
        }
        Action::RetryActive { reason, scope, id } => {
            retry_active(action, t, reason, *scope, id.as_deref(), daemon)
        }
        Action::ClearStaleState { reason } => clear_stale_state(action, t, reason, daemon),
        Action::Requeue { id, reason } => requeue_blocked(action, t, id, reason),
        Action::ReloadConfig => Ok(outcome(
            action,
            false,
            "no daemon running; the next start reads the config",
        )),
        Action::AddTask(submission) | Action::AddSpec(submission) => {
            add_document(action, t, submission, daemon)
        }
        Action::AddIdea { name, markdown } => add_idea(action, t, name, markdown, daemon),
    }
}
