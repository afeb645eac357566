//! The crate's error type and the one mapping from errors to exit codes.

use crate::compiler::RouteError;
use crate::config::ConfigError;
use crate::documents::DocError;
use crate::queue::QueueError;
use crate::runners::normalize::NormalizeError;
use crate::runners::RunnerError;
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

/// Any error the library reports to the CLI, by kind: the errors of the modules below
/// (each names its file, line or command), and the runtime's own kinds. The kind alone
/// decides the exit code ([`Error::exit_code`]) and whether a daemon must stop
/// ([`Error::is_fatal`]).
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
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    StageResult(#[from] NormalizeError),
    /// A git command of the parallel lanes failed (the message quotes git).
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// Another live daemon owns the workspace, or took it over while this one ran (exit 4).
    #[error("{message}")]
    Locked { message: String, hint: String },
    /// The data may not be on disk, or the workspace folder is gone: a daemon stops and
    /// writes nothing more (exit 70).
    #[error("{message}")]
    Fatal { message: String, hint: String },
    /// The command line asks for something that does not fit together (exit 2).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// What was asked cannot be done as asked: an unknown mode, a document that exists
    /// already, a plan that does not compile, a command the runtime does not know (exit 1).
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    /// The runtime's own state breaks a rule it keeps: a bug, or a state file edited by hand
    /// into something impossible (exit 1).
    #[error("{0}")]
    Internal(String),
    /// The operating system refused something outside the workspace's files: a temporary
    /// folder, a thread, a file watch (exit 1).
    #[error("{what}")]
    System {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// What was asked cannot be done as asked; `hint` names the next step.
    pub fn refused(message: impl Into<String>, hint: Option<String>) -> Error {
        Error::Refused {
            message: message.into(),
            hint,
        }
    }

    /// The command line does not fit together.
    pub fn usage(message: impl Into<String>, hint: Option<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint,
        }
    }

    /// Another daemon owns the workspace.
    pub fn locked(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Locked {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Stop and write nothing more.
    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Fatal {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A rule of the runtime's own state is broken.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(message.into())
    }

    /// The operating system refused `what`.
    pub fn system(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The exit code, decided by the kind (the one mapping, for scripts to branch on).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Workspace(WorkspaceError::Missing(_)) => ExitCode::NoWorkspace,
            Error::Locked { .. } => ExitCode::Locked,
            Error::Usage { .. } => ExitCode::Usage,
            _ if self.io().is_some_and(IoError::is_fatal) => ExitCode::Fatal,
            Error::Fatal { .. } => ExitCode::Fatal,
            _ => ExitCode::Failed,
        }
    }

    /// Whether a daemon must stop for it: a failed fsync (the disk may not have kept the
    /// data), or the workspace lost to another daemon or deleted. Anything else is retried.
    pub fn is_fatal(&self) -> bool {
        matches!(self.exit_code(), ExitCode::Fatal | ExitCode::Locked)
    }

    /// The I/O error underneath, when the error is one.
    fn io(&self) -> Option<&IoError> {
        match self {
            Error::Io(e) | Error::State(StateError::Io(e)) | Error::Queue(QueueError::Io(e)) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// Whether the machine is at fault (a full disk, a failing device), not the work: see
    /// [`IoError::is_environmental`].
    pub fn is_environmental(&self) -> bool {
        self.io().is_some_and(IoError::is_environmental)
    }

    /// Whether the workspace is at fault, not the work: a symbolic link where millrace keeps
    /// its own folder or file. Retrying cannot clear it; a person has to.
    pub fn is_workspace_fault(&self) -> bool {
        matches!(self.io(), Some(IoError::Symlink { .. }))
    }

    /// Whether the machine or the workspace is at fault, so no work item is to blame: see
    /// [`Error::is_environmental`] and [`Error::is_workspace_fault`].
    pub fn blames_no_item(&self) -> bool {
        self.is_environmental() || self.is_workspace_fault()
    }

    /// The next step to print after the error, when there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Locked { hint, .. } | Error::Fatal { hint, .. } => Some(hint),
            Error::Usage { hint, .. } | Error::Refused { hint, .. } => hint.as_deref(),
            Error::Config(_) => {
                Some("fix the config file named above, then run `millrace config validate`")
            }
            Error::State(StateError::Newer { .. }) => {
                Some("run the millrace version that wrote it (or a newer one); nothing was changed")
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
                "fix the document as the error says (the format: \"Work documents\" in \
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
            Error::Io(_) | Error::State(StateError::Io(_)) => Some(
                "check that the path exists, is a regular file and that you may read and write \
                 it (`millrace doctor` names what is in the way)",
            ),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_decides_the_exit_code_and_whether_a_daemon_stops() {
        let fsync = Error::Io(IoError::Fsync {
            path: "state/x".into(),
            source: std::io::Error::other("EIO"),
        });
        let cases = [
            (Error::locked("owned", "stop it"), ExitCode::Locked, true),
            (Error::fatal("gone", "start again"), ExitCode::Fatal, true),
            (fsync, ExitCode::Fatal, true),
            (Error::usage("no", None), ExitCode::Usage, false),
            (Error::refused("no", None), ExitCode::Failed, false),
            (Error::internal("bug"), ExitCode::Failed, false),
            (
                Error::Io(IoError::path(
                    "write",
                    "state/x",
                    std::io::Error::from_raw_os_error(28),
                )),
                ExitCode::Failed,
                false,
            ),
        ];
        for (err, code, fatal) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
            assert_eq!(err.is_fatal(), fatal, "{err}");
        }
    }

    #[test]
    fn a_system_error_keeps_its_cause() {
        let err = Error::system(
            "cannot start the stage worker thread",
            std::io::Error::other("EAGAIN"),
        );
        let cause = std::error::Error::source(&err).map(|c| c.to_string());
        assert_eq!(cause.as_deref(), Some("EAGAIN"));
    }
}
