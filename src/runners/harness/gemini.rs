//! gemini: argv per permission level, output reading and failure classes.

use crate::config::Permission;
use crate::runners::harness::{last_line, HarnessReport, Outputs};

/// The argv template for `level` (the command runner's template language).
pub fn argv(level: Permission) -> Vec<String> {
    let _ = level;
    vec!["gemini".to_string(), "{prompt}".to_string()]
}

/// Environment the CLI needs at `level`.
pub fn env(level: Permission) -> Vec<(String, String)> {
    let _ = level;
    Vec::new()
}

/// Read a finished run.
pub fn read(out: &Outputs) -> HarnessReport {
    HarnessReport {
        last_line: last_line(out.stderr).or_else(|| last_line(out.stdout)),
        ..HarnessReport::default()
    }
}

/// Lines that show retrying rather than progress.
pub fn noise() -> &'static [&'static str] {
    &[]
}

/// Cheap usability checks.
pub fn preflight() -> Vec<Vec<String>> {
    vec![vec!["gemini".to_string(), "--version".to_string()]]
}
