//! The crate's error type and the one mapping from errors to exit codes.

use crate::config::ConfigError;
use crate::documents::DocError;
use crate::queue::QueueError;
use crate::state::StateError;
use crate::workspace::atomic::IoError;
use crate::workspace::WorkspaceError;

/// Process exit codes. Stable: scripts and ops agents branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The operation failed (bad input, a stage failure in `run once`, I/O trouble).
    Failed = 1,
    /// The command line was wrong (clap usage errors).
    Usage = 2,
    /// No workspace where one was required.
    NoWorkspace = 3,
    /// Another live daemon owns the workspace.
    Locked = 4,
    /// A control command was not applied (nothing to act on).
    NotApplied = 5,
    /// `doctor` found problems.
    Unhealthy = 6,
    /// A fatal I/O error (failed fsync): the daemon stopped to protect the data.
    Fatal = 70,
}

/// Any error the library reports to the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Document(#[from] DocError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A user-facing failure with an optional hint naming the next step.
    #[error("{message}")]
    Message {
        message: String,
        hint: Option<String>,
        code: ExitCode,
    },
}

impl Error {
    /// A plain failure (exit 1).
    pub fn msg(message: impl Into<String>) -> Error {
        Error::Message {
            message: message.into(),
            hint: None,
            code: ExitCode::Failed,
        }
    }

    /// A failure with a hint and a specific exit code.
    pub fn with(message: impl Into<String>, hint: Option<String>, code: ExitCode) -> Error {
        Error::Message {
            message: message.into(),
            hint,
            code,
        }
    }

    /// The exit code this error maps to (the one mapping, for scripts to branch on).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Workspace(WorkspaceError::Missing(_)) => ExitCode::NoWorkspace,
            Error::Io(e) if e.is_fatal() => ExitCode::Fatal,
            Error::State(StateError::Io(e)) if e.is_fatal() => ExitCode::Fatal,
            Error::Queue(QueueError::Io(e)) if e.is_fatal() => ExitCode::Fatal,
            Error::Message { code, .. } => *code,
            _ => ExitCode::Failed,
        }
    }

    /// Whether the daemon must stop for it: a failed fsync (the disk may not have kept the
    /// data), or the workspace lost to another daemon or deleted. Anything else is retried.
    pub fn is_fatal(&self) -> bool {
        matches!(self.exit_code(), ExitCode::Fatal | ExitCode::Locked)
    }

    /// Whether the machine is at fault (a full disk, a failing device), not the work: see
    /// [`IoError::is_environmental`].
    pub fn is_environmental(&self) -> bool {
        match self {
            Error::Io(e) | Error::State(StateError::Io(e)) | Error::Queue(QueueError::Io(e)) => {
                e.is_environmental()
            }
            _ => false,
        }
    }

    /// The next step to print after the error, when there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Message { hint, .. } => hint.as_deref(),
            Error::Config(_) => {
                Some("fix the config file named above, then run `millrace config validate`")
            }
            Error::State(StateError::Yaml(_) | StateError::Invalid { .. }) => Some(
                "fix the file, or start the daemon: it sets an unreadable state file aside in \
                 millrace-agents/quarantine/ and starts it afresh",
            ),
            Error::Queue(crate::queue::QueueError::Duplicate { .. }) => Some(
                "ids are unique per kind across all folders: give the document a new id \
                 (`millrace queue show ID` shows the existing one)",
            ),
            Error::Document(_) | Error::Queue(crate::queue::QueueError::Document(_)) => Some(
                "fix the document at the line named (the format: \"Work documents\" in \
                 docs/workspace.md: required fields, a task and a spec example)",
            ),
            Error::Queue(_) => Some("run `millrace queue ls` to see where each item is"),
            Error::Workspace(WorkspaceError::NotADirectory(_)) => {
                Some("point --workspace at your project directory")
            }
            Error::Io(e) | Error::State(StateError::Io(e)) if e.is_fatal() => Some(
                "the disk may not have kept the data: check it (space, errors in dmesg), then \
                 start millrace again; it resumes where it stopped",
            ),
            Error::Io(_) | Error::State(StateError::Io(_)) => {
                Some("check that the path exists and that you may read and write it")
            }
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
