//! The pinned harness CLIs: installed on first use by `scripts/install-harnesses` into
//! `target/harness-cache` (or `$MILLRACE_HARNESS_CACHE`), once per test process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn cache() -> PathBuf {
    std::env::var_os("MILLRACE_HARNESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/harness-cache"))
}

/// Install (or check) the pinned CLIs once; a failure fails every harness test with the
/// reason, never a silent skip.
fn ensure() -> &'static Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY.get_or_init(|| {
        let cache = cache();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-harnesses");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(&cache)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(cache)
        } else {
            Err(format!(
                "the harness CLIs could not be installed into {} (run `scripts/install-harnesses` \
                 by hand; it needs node/npm and python3 with venv):\n{}{}",
                cache.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}

/// The path of a pinned CLI: `codex`, `claude`, `gemini` or `aider`.
pub fn bin(name: &str) -> PathBuf {
    let cache = match ensure() {
        Ok(cache) => cache,
        Err(err) => panic!("{err}"),
    };
    let path = match name {
        "aider" => cache.join("aider-venv/bin/aider"),
        other => cache.join("node_modules/.bin").join(other),
    };
    assert!(path.exists(), "{} is missing after install", path.display());
    path
}

/// A `PATH` with the CLI's folder first, so millrace finds the pinned version by name.
pub fn path_with(name: &str) -> std::ffi::OsString {
    let dir = bin(name).parent().expect("bin dir").to_path_buf();
    let mut dirs = vec![dir];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH")
}
