//! Templates embedded in the binary and deployed into a workspace at bootstrap.
//!
//! Deployment copies a file only when the destination is missing, so operators' edits are
//! never overwritten; the daemon and the CLI both compile from the deployed copies.

use std::path::Path;

use include_dir::{include_dir, Dir, DirEntry};

use super::atomic::{self, IoError};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The commented default `millrace.yaml` that `init` writes.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../templates/millrace.yaml");

/// The runtime snapshot a new workspace starts with; `{updated_at}` is the bootstrap time.
/// `state::snapshot`'s tests keep it equal to `Snapshot::bootstrap()`.
pub const SNAPSHOT_TEMPLATE: &str = include_str!("../../templates/state/runtime_snapshot.yaml");

/// The recovery counters a new workspace starts with (none).
pub const COUNTERS_TEMPLATE: &str = include_str!("../../templates/state/recovery_counters.yaml");

/// The folders under `templates/` that are deployed into `millrace-agents/`.
const DEPLOYED: &[&str] = &["entrypoints", "skills", "modes", "loops"];

/// Which assets a bootstrap wrote and which it left alone.
#[derive(Debug, Default, Clone)]
pub struct AssetReport {
    pub deployed: Vec<String>,
    pub kept: Vec<String>,
}

fn walk<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => walk(d, out),
            DirEntry::File(f) => out.push(f),
        }
    }
}

fn hidden(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// Copy every embedded asset that is missing from `rt`.
pub fn deploy_assets(rt: &Path) -> Result<AssetReport, IoError> {
    let mut report = AssetReport::default();
    for top in DEPLOYED {
        let Some(dir) = TEMPLATES.get_dir(top) else {
            continue;
        };
        let mut files = Vec::new();
        walk(dir, &mut files);
        files.sort_by_key(|f| f.path());
        for file in files {
            let rel = file.path();
            if hidden(rel) {
                continue;
            }
            let dest = rt.join(rel);
            let shown = rel.to_string_lossy().into_owned();
            if dest.exists() {
                report.kept.push(shown);
                continue;
            }
            if let Some(parent) = dest.parent() {
                atomic::create_dir_all(parent)?;
            }
            match atomic::create_atomic(&dest, file.contents()) {
                Ok(()) => report.deployed.push(shown),
                Err(IoError::AlreadyExists { .. }) => report.kept.push(shown),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// The embedded copy of an asset (relative to `templates/`), for diffs and doctor checks.
pub fn embedded_asset(rel: &str) -> Option<&'static [u8]> {
    TEMPLATES.get_file(rel).map(|f| f.contents())
}
