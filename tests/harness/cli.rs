//! Running a pinned harness CLI directly, with the argv and environment millrace's adapter
//! gives for a permission level, and reading its outputs with that adapter.

use std::path::Path;
use std::process::Stdio;

use millrace::config::Permission;
use millrace::runners::harness::{Harness, HarnessReport, Outputs};

use crate::install;

/// One finished CLI run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub report: HarnessReport,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The adapter's argv template at `level`, expanded the way the command runner does for the
/// placeholders these tests use: `{prompt}`, and optional `[... {model}]` groups.
pub fn argv(harness: Harness, level: Permission, prompt: &str, model: Option<&str>) -> Vec<String> {
    let template = millrace::runners::command::preset(harness.name(), level).expect("a preset");
    let mut argv = Vec::new();
    for element in template {
        match element.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
            Some(group) => {
                if let Some(model) = model {
                    argv.extend(
                        group
                            .split_whitespace()
                            .map(|w| w.replace("{model}", model)),
                    );
                }
            }
            None => argv.push(element.replace("{prompt}", prompt)),
        }
    }
    argv
}

/// Run `harness` at `level` in `cwd` with only `env` (plus its adapter's env) and `PATH`.
pub fn run(
    harness: Harness,
    level: Permission,
    args: &[String],
    env: &[(String, String)],
    cwd: &Path,
) -> Run {
    let out = std::process::Command::new(install::bin(&args[0]))
        .args(&args[1..])
        .env_clear()
        .env("PATH", install::path_with(&args[0]))
        .envs(harness.env(level))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run the harness CLI");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let report = harness.read(&Outputs {
        exit_code: out.status.code(),
        stdout: &stdout,
        stderr: &stderr,
        last_message: None,
    });
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        report,
    }
}

/// The environment variables every isolated CLI run gets: a private HOME, XDG folders and
/// temp folder under `home`, so nothing is read from or written to the real user's.
pub fn isolated(home: &Path) -> Vec<(String, String)> {
    let at = |rel: &str| {
        let dir = home.join(rel);
        std::fs::create_dir_all(&dir).expect("isolated dir");
        dir.display().to_string()
    };
    vec![
        ("HOME".into(), at("")),
        ("XDG_CONFIG_HOME".into(), at(".config")),
        ("XDG_CACHE_HOME".into(), at(".cache")),
        ("XDG_DATA_HOME".into(), at(".local/share")),
        ("XDG_STATE_HOME".into(), at(".local/state")),
        ("TMPDIR".into(), at("tmp")),
    ]
}
