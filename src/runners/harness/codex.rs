//! Codex CLI (`codex exec`): flags per permission level, output reading and failure classes.

use crate::config::Permission;
use crate::runners::harness::{last_line, HarnessReport, Outputs};

/// The `codex exec` flags for `level`.
pub fn permission_flags(level: Permission) -> Vec<String> {
    let flags: &[&str] = match level {
        Permission::Basic => &["--sandbox", "workspace-write"],
        Permission::Elevated => &["--sandbox", "danger-full-access"],
        Permission::Maximum => &["--dangerously-bypass-approvals-and-sandbox"],
    };
    flags.iter().map(|f| f.to_string()).collect()
}

/// Environment the CLI needs at `level`.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    Vec::new()
}

/// Read a finished run (`stdout` is the `--json` event stream).
pub fn read(out: &Outputs) -> HarnessReport {
    HarnessReport {
        last_line: last_line(out.stderr),
        ..HarnessReport::default()
    }
}

/// Lines that show retrying rather than progress.
pub fn noise() -> &'static [&'static str] {
    &[]
}

/// Cheap usability checks.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["codex".to_string(), "--version".to_string()]]
}
