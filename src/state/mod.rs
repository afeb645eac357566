//! Machine-owned runtime state: snapshot, recovery counters, plane status markers, event log.
//!
//! Every file here is written through the atomic helper with a fixed key order, so a
//! committed workspace diffs cleanly, and nothing is rewritten when nothing changed.

pub mod closure;
pub mod counters;
pub mod events;
pub mod markers;
pub mod runtime;
pub mod snapshot;
pub mod usage;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::workspace::atomic::{self, IoError};
use crate::yaml::{self, YamlError};

/// A state file that could not be read or failed validation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Load a YAML state file.
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, StateError> {
    let text = atomic::read_to_string(path)?;
    Ok(yaml::from_str(path, &text)?)
}

/// Save a YAML state file atomically and durably, skipping the write when the bytes are
/// unchanged.
pub fn save_yaml<T: Serialize>(path: &Path, value: &T) -> Result<bool, StateError> {
    save_yaml_with(path, value, atomic::Durability::Full)
}

/// [`save_yaml`] as durable as `durability` says.
pub fn save_yaml_with<T: Serialize>(
    path: &Path,
    value: &T,
    durability: atomic::Durability,
) -> Result<bool, StateError> {
    let text = yaml::to_string(value);
    if std::fs::read(path).ok().as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    atomic::write_atomic_with(path, text.as_bytes(), durability)?;
    Ok(true)
}

/// Reset the runtime to idle (spec 03 §7.3) and write `### IDLE` to both status files.
pub fn reset_idle(
    ws: &crate::workspace::Workspace,
    state: &mut runtime::RuntimeState,
    depths: (u64, u64),
    process_running: bool,
    clear_flags: bool,
) -> Result<(), StateError> {
    state.reset_idle(depths, process_running, clear_flags);
    state.save(&ws.snapshot_path())?;
    for plane in crate::model::Plane::ALL {
        markers::write(&ws.status_path(plane), plane, markers::IDLE)?;
    }
    Ok(())
}
