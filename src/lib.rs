//! millrace: a governed runtime for long-running AI-agent work.
//!
//! The workspace directory is the whole interface. Data flows
//! `workspace` → `documents` → `queue` / `state` → `compiler` → `engine` → `runners`,
//! with `control` (lock, mailbox) and `watch` (file events) feeding the engine and `cli`
//! rendering it all.

pub mod cli;
pub mod compiler;
pub mod config;
pub mod control;
pub mod documents;
pub mod engine;
pub mod error;
pub mod git;
pub mod inspect;
pub mod model;
pub mod queue;
pub mod runners;
pub mod state;
pub mod time;
pub mod watch;
pub mod workspace;
pub mod yaml;

pub use error::{Error, ExitCode};
