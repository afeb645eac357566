//! The mailbox: one YAML envelope per command, maildir-style.
//!
//! Writers create the envelope in `state/mailbox/tmp/` and rename it into `incoming/`, so the
//! daemon never sees half a file. Hand-written envelopes dropped straight into `incoming/` are
//! taken once they parse; one that still fails after the settle window goes to `failed/` with
//! a `.error.yaml` beside it. Commands apply in `issued_at` order (then file name); every file
//! is archived to `processed/` or `failed/`, never deleted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workspace::atomic::{self, IoError};
use crate::workspace::{Settle, Workspace};

/// A mailbox command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Stop,
    Pause,
    Resume,
    ReloadConfig,
    AddTask,
    AddSpec,
    AddIdea,
    RetryActive,
    ClearStaleState,
    Requeue,
}

impl Command {
    /// The name written in envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Stop => "stop",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::ReloadConfig => "reload_config",
            Command::AddTask => "add_task",
            Command::AddSpec => "add_spec",
            Command::AddIdea => "add_idea",
            Command::RetryActive => "retry_active",
            Command::ClearStaleState => "clear_stale_state",
            Command::Requeue => "requeue",
        }
    }
}

/// An envelope as written; defaults are filled when reading hand-written ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(default = "schema_version")]
    pub schema_version: String,
    #[serde(default = "envelope_kind")]
    pub kind: String,
    #[serde(default)]
    pub command_id: Option<String>,
    pub command: Command,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    /// Shorthand for `payload.reason`, for hand-written envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
}

fn schema_version() -> String {
    "1.0".into()
}

fn envelope_kind() -> String {
    "mailbox_command".into()
}

impl Envelope {
    /// A fresh envelope from the CLI.
    pub fn new(command: Command, payload: Value) -> Envelope {
        let now = crate::time::now();
        Envelope {
            schema_version: schema_version(),
            kind: envelope_kind(),
            command_id: Some(format!(
                "{}-{}-{}",
                now.as_millisecond(),
                command.as_str(),
                crate::time::hex8()
            )),
            command,
            issued_at: Some(crate::time::format(now)),
            issuer: Some("operator".into()),
            reason: None,
            payload: Some(payload),
        }
    }

    /// A payload string field, falling back to the top-level `reason` shorthand.
    pub fn payload_str(&self, key: &str) -> Result<Option<String>, String> {
        let from_payload = match self.payload.as_ref().and_then(|p| p.get(key)) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("{} {key} must be a string", self.command.as_str())),
        };
        Ok(from_payload.or_else(|| {
            if key == "reason" {
                self.reason.clone()
            } else {
                None
            }
        }))
    }

    /// The envelope as written to the mailbox.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self)
    }
}

/// A mailbox file ready to apply, or one that cannot be read.
#[derive(Debug)]
pub enum Pending {
    Ready {
        path: PathBuf,
        envelope: Box<Envelope>,
        /// The parsed `issued_at`, then the file name: text comparison would put `…00Z`
        /// after `…00.5Z`.
        order: (jiff::Timestamp, String),
    },
    Broken {
        path: PathBuf,
        error: String,
    },
}

impl Pending {
    /// The file in `incoming/`.
    pub fn path(&self) -> &Path {
        match self {
            Pending::Ready { path, .. } | Pending::Broken { path, .. } => path,
        }
    }
}

/// File-name-safe form of a command id.
fn safe_name(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('.').to_string()
}

/// Deliver an envelope: write to `tmp/`, rename into `incoming/`.
pub fn deliver(ws: &Workspace, envelope: &Envelope) -> Result<PathBuf, IoError> {
    let id = envelope
        .command_id
        .clone()
        .unwrap_or_else(crate::time::hex32);
    let name = format!("{}.yaml", safe_name(&id));
    let tmp_dir = ws.mailbox_dir("tmp");
    atomic::create_dir_all(&tmp_dir)?;
    let tmp = tmp_dir.join(&name);
    atomic::write_atomic(&tmp, envelope.to_yaml().as_bytes())?;
    let dest = ws.mailbox_dir("incoming").join(&name);
    atomic::move_file(&tmp, &dest)?;
    Ok(dest)
}

fn is_envelope_name(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
}

/// The commands waiting in `incoming/`, in apply order. A file that does not parse yet but
/// is still within its settle window is left for a later look (it may still be being
/// written); `settle` remembers when to look again.
pub fn pending(ws: &Workspace, settle: &Settle) -> Vec<Pending> {
    let dir = ws.mailbox_dir("incoming");
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = read.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    let mut ready = Vec::new();
    let mut broken = Vec::new();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            broken.push(Pending::Broken {
                path,
                error: "symlinks are not followed in the mailbox; write a regular file".into(),
            });
            continue;
        }
        if name.starts_with('.') {
            continue;
        }
        if !meta.is_file() {
            // A folder or FIFO named like an envelope would otherwise sit there unread
            // while its writer waits for an answer.
            if is_envelope_name(&name) {
                broken.push(Pending::Broken {
                    path,
                    error: "not a regular file (a folder or FIFO); write the envelope as a \
                            regular file"
                        .into(),
                });
            }
            continue;
        }
        let young = settle.young(&path);
        if !is_envelope_name(&name) {
            if !young {
                broken.push(Pending::Broken {
                    path,
                    error: "mailbox files must end in .yaml, .yml or .json".into(),
                });
            }
            continue;
        }
        let parsed = atomic::read_regular(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| "file is not valid UTF-8".to_string())
            })
            .and_then(|text| {
                crate::yaml::from_str::<Envelope>(Path::new(&name), &text).map_err(|e| {
                    format!(
                        "{e} (an envelope is a YAML mapping with `command:` one of stop, pause, \
                         resume, reload_config, add_task, add_spec, add_idea, retry_active, \
                         clear_stale_state, requeue; `millrace control pause --print` shows one)"
                    )
                })
            })
            .and_then(|env| validate(env, &name, &meta));
        match parsed {
            Ok((envelope, issued_at)) => {
                let order = (issued_at, name.clone());
                ready.push(Pending::Ready {
                    path,
                    envelope: Box::new(envelope),
                    order,
                });
            }
            Err(_) if young => continue,
            Err(error) => broken.push(Pending::Broken { path, error }),
        }
    }
    ready.sort_by(|a, b| match (a, b) {
        (Pending::Ready { order: x, .. }, Pending::Ready { order: y, .. }) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    });
    broken.extend(ready);
    broken
}

/// Fill defaults (decision 16) and check the fixed fields; also returns the parsed issue time.
fn validate(
    mut env: Envelope,
    name: &str,
    meta: &std::fs::Metadata,
) -> Result<(Envelope, jiff::Timestamp), String> {
    if env.schema_version != "1.0" {
        return Err(format!("{name}: schema_version must be \"1.0\""));
    }
    if env.kind != "mailbox_command" {
        return Err(format!("{name}: kind must be mailbox_command"));
    }
    if env.command_id.is_none() {
        let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
        env.command_id = Some(stem.to_string());
    }
    let issued_at = match &env.issued_at {
        Some(at) => at
            .parse::<jiff::Timestamp>()
            .or_else(|_| {
                at.parse::<jiff::civil::DateTime>()
                    .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
            })
            .map_err(|e| format!("{name}: issued_at is not a valid timestamp: {e}"))?,
        None => meta
            .modified()
            .ok()
            .and_then(|m| jiff::Timestamp::try_from(m).ok())
            .unwrap_or_else(crate::time::now),
    };
    env.issued_at = Some(crate::time::format(issued_at));
    if env.issuer.is_none() {
        env.issuer = Some("unknown".into());
    }
    if let Some(payload) = &env.payload {
        if !payload.is_object() && !payload.is_null() {
            return Err(format!("{name}: payload must be a mapping"));
        }
    }
    Ok((env, issued_at))
}

/// Record what a processed command did, beside its archive (`<name>.result.yaml`).
pub fn write_result<T: Serialize>(archived: &Path, result: &T) -> Result<(), IoError> {
    let mut name = archived.as_os_str().to_owned();
    name.push(".result.yaml");
    atomic::write_atomic(Path::new(&name), crate::yaml::to_string(result).as_bytes())
}

/// What the daemon answered in a `<name>.result.yaml`: applied, detail, artifact path.
pub fn read_result(path: &Path) -> Option<(bool, String, Option<String>)> {
    let text = atomic::read_regular_string(path).ok()?;
    let value: Value = crate::yaml::from_str(path, &text).ok()?;
    let applied = value
        .get("applied")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let detail = value
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("applied")
        .to_string();
    let artifact = value
        .get("artifact_path")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((applied, detail, artifact))
}

/// Why the daemon refused a command, from its `<name>.error.yaml`.
pub fn read_error(path: &Path) -> Option<String> {
    let text = atomic::read_regular_string(path).ok()?;
    let value: Value = crate::yaml::from_str(path, &text).unwrap_or_default();
    Some(
        value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the daemon refused the command")
            .to_string(),
    )
}

/// Where an applied or refused command ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Processed,
    Failed,
}

/// Move the file to `processed/` or `failed/` (never overwriting); a failure gets a
/// `<name>.error.yaml` reason beside it.
pub fn archive(
    ws: &Workspace,
    path: &Path,
    disposition: Disposition,
    error: Option<&str>,
) -> Result<PathBuf, IoError> {
    let dir = ws.mailbox_dir(match disposition {
        Disposition::Processed => "processed",
        Disposition::Failed => "failed",
    });
    atomic::create_dir_all(&dir)?;
    let name = atomic::archive_name(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut dest = dir.join(&name);
    let mut n = 1;
    while dest.symlink_metadata().is_ok() {
        dest = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    // The reason first, so a failed file never sits in `failed/` without it.
    let mut reason_path = None;
    if let Some(error) = error {
        #[derive(Serialize)]
        struct Reason<'a> {
            file: String,
            error: &'a str,
            archived_at: String,
        }
        let file = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!("{file}.error.yaml"));
        let reason = Reason {
            file,
            error,
            archived_at: crate::time::now_string(),
        };
        atomic::write_atomic(&path, crate::yaml::to_string(&reason).as_bytes())?;
        reason_path = Some(path);
    }
    if let Err(err) = atomic::move_file(path, &dest) {
        if let Some(reason_path) = reason_path {
            let _ = std::fs::remove_file(reason_path);
        }
        return Err(err);
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_hand_written_envelope_gets_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let incoming = ws.mailbox_dir("incoming");
        std::fs::write(incoming.join("b.yaml"), "command: pause\n").unwrap();
        std::fs::write(
            incoming.join("a.yaml"),
            "command: retry_active\nreason: flaky\nissued_at: 2030-01-01T00:00:00Z\n",
        )
        .unwrap();
        let pending = pending(&ws, &Settle::default());
        assert_eq!(pending.len(), 2);
        match &pending[0] {
            Pending::Ready { envelope, .. } => {
                assert_eq!(envelope.command, Command::Pause);
                assert_eq!(envelope.command_id.as_deref(), Some("b"));
            }
            other => panic!("{other:?}"),
        }
        match &pending[1] {
            Pending::Ready { envelope, .. } => {
                assert_eq!(
                    envelope.payload_str("reason").unwrap().as_deref(),
                    Some("flaky")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_broken_after_settle_and_archived_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let path = ws.mailbox_dir("incoming").join("junk.yaml");
        std::fs::write(&path, "\u{0}\u{1}garbage: [\n").unwrap();
        let pending = pending(&ws, &Settle::default());
        let Pending::Broken { error, .. } = &pending[0] else {
            panic!("expected broken");
        };
        let dest = archive(&ws, &path, Disposition::Failed, Some(error)).unwrap();
        assert!(dest.exists());
        assert!(ws
            .mailbox_dir("failed")
            .join("junk.yaml.error.yaml")
            .exists());
    }

    #[test]
    fn delivered_envelopes_sort_by_issue_time() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open_or_init(dir.path()).unwrap();
        let mut resume = Envelope::new(Command::Resume, serde_json::json!({}));
        resume.issued_at = Some("2030-01-01T00:00:01Z".into());
        resume.command_id = Some("a-resume".into());
        let mut pause = Envelope::new(Command::Pause, serde_json::json!({}));
        pause.issued_at = Some("2030-01-01T00:00:00Z".into());
        pause.command_id = Some("z-pause".into());
        deliver(&ws, &resume).unwrap();
        deliver(&ws, &pause).unwrap();
        let order: Vec<Command> = pending(&ws, &Settle::default())
            .into_iter()
            .map(|p| match p {
                Pending::Ready { envelope, .. } => envelope.command,
                Pending::Broken { error, .. } => panic!("{error}"),
            })
            .collect();
        assert_eq!(order, vec![Command::Pause, Command::Resume]);
    }
}
