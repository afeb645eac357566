//! Machine-owned runtime state: snapshot, recovery counters, plane status markers, event log.
//!
//! Every file here is written through the atomic helper with a fixed key order, so a
//! committed workspace diffs cleanly, and nothing is rewritten when nothing changed.

pub mod closure;
pub mod counters;
pub mod event;
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
    /// A newer millrace wrote the file in a schema this one cannot read: nothing is reset,
    /// the runtime refuses to start instead.
    #[error("{file} was written by a newer millrace (schema_version {version}); this one reads schema 1.x")]
    Newer { file: String, version: String },
}

/// The schema version every machine-owned state file this release writes carries.
pub const SCHEMA_VERSION: &str = "1.0";

/// Fields of a state file this version does not know (a newer version added them): kept as
/// they are and written back, so a downgrade loses nothing; `doctor` names them.
pub type Unknown = std::collections::BTreeMap<String, serde_json::Value>;

/// Check a state file's `schema_version` and `kind`: any 1.x loads (a minor version only
/// adds fields, which [`Unknown`] keeps); a newer major version is [`StateError::Newer`].
pub fn check_schema(
    path: &Path,
    version: &str,
    kind: &str,
    expected_kind: &str,
) -> Result<(), StateError> {
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(1) if kind == expected_kind => Ok(()),
        Some(m) if m > 1 => Err(StateError::Newer {
            file: path.display().to_string(),
            version: version.to_string(),
        }),
        _ => Err(StateError::Invalid {
            file: path.display().to_string(),
            message: format!(
                "schema_version must be 1.x and kind {expected_kind} (found {version:?}, {kind:?})"
            ),
        }),
    }
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
    if atomic::read_regular(path).ok().as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    atomic::write_atomic_with(path, text.as_bytes(), durability)?;
    Ok(true)
}

/// With parallel lanes: `### IDLE` for each plane where nothing is active any more (the
/// state and its status file).
pub fn idle_free_planes(
    ws: &crate::workspace::Workspace,
    state: &mut runtime::RuntimeState,
) -> Result<(), StateError> {
    for plane in crate::model::Plane::ALL {
        if state.activations().iter().any(|a| a.plane() == plane) {
            continue;
        }
        markers::write(&ws.status_path(plane), plane, markers::IDLE)?;
        state.set_marker(plane, markers::IDLE.into());
    }
    Ok(())
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
