//! A millrace workspace whose runner is a real harness CLI pointed at a fake model API: the
//! `millrace` binary runs with only the CLI's isolated environment and a `PATH` that finds
//! the pinned CLI by name, as an operator's would.

use std::process::Output;

use crate::common::TestWs;
use crate::install;

pub struct Workspace {
    pub ws: TestWs,
    /// The CLI's isolated home.
    pub home: tempfile::TempDir,
    cli: &'static str,
    /// The CLI's whole environment but `PATH` (set it once the fake API runs).
    pub env: Vec<(String, String)>,
}

impl Workspace {
    /// A workspace running `runner` (`claude`, `gemini`), with `extra` appended to
    /// `millrace.yaml`.
    pub fn new(runner: &'static str, extra: &str) -> Workspace {
        let ws = TestWs::new();
        ws.write(
            "millrace-agents/millrace.yaml",
            &format!("runners:\n  default_runner: {runner}\nwatchers:\n  settle_ms: 0\n{extra}"),
        );
        Workspace {
            ws,
            home: tempfile::tempdir().expect("cli home"),
            cli: runner,
            env: Vec::new(),
        }
    }

    /// Run `millrace <args>` with only the CLI's environment.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ws
            .cmd()
            .env_clear()
            .env("PATH", install::path_with(self.cli))
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .expect("run millrace")
    }

    /// Run the daemon until no work is left; it must exit 0.
    pub fn run_until_idle(&self) -> String {
        let out = self.run(&["run", "daemon", "--until-idle", "--max-ticks", "50"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    }

    /// The run of work item `id`, as `runs show --json` gives it.
    pub fn run_of(&self, id: &str) -> serde_json::Value {
        let runs = self.ws.json(&["runs", "ls"]);
        let run_id = runs["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["work_item_id"] == id))
            .and_then(|r| r["run_id"].as_str())
            .unwrap_or_else(|| panic!("no run of {id} in {runs:#}"))
            .to_string();
        self.ws.json(&["runs", "show", &run_id])
    }
}
