//! The documentation is checked against the code, so it cannot drift:
//!
//! - `docs/configuration.md` lists exactly the keys (and defaults) of `Config::default()`;
//! - `docs/cli.md` is the clap help of every command, regenerated here and compared;
//! - the custom loop in `docs/examples/` compiles and runs;
//! - every `millrace ...` command shown in a code block of the README or `docs/` parses.
//!
//! `UPDATE_DOCS=1 cargo test --test cli test_docs` rewrites `docs/cli.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use millrace::cli::Cli;
use millrace::config::{Config, StageConfig};
use serde_json::Value;

use crate::common::TestWs;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------
// (a) configuration keys

/// How a default is written in the docs table: JSON, with strings unquoted.
fn render_default(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Flatten to `a.b.c` → default; empty maps and lists are leaves.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), render_default(leaf));
        }
    }
}

/// Every key the config has, with its default. `stages` is a map keyed by stage name, so
/// its fields are listed once as `stages.<stage>.<field>`.
fn code_keys() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut keys,
    );
    keys.remove("stages");
    flatten(
        "stages.<stage>",
        &serde_json::to_value(StageConfig::default()).unwrap(),
        &mut keys,
    );
    keys
}

/// Key → default from every table row of `docs/configuration.md` whose first cell is a
/// backticked key (other tables in that file must not start with a backticked cell).
fn documented_keys() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for line in read("docs/configuration.md").lines() {
        let cells: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].is_empty() {
            continue;
        }
        let (first, default) = (cells[1], cells[2]);
        if first.len() > 2 && first.starts_with('`') && first.ends_with('`') {
            let key = first.trim_matches('`').to_string();
            let default = default.trim_matches('`').to_string();
            assert!(
                keys.insert(key.clone(), default).is_none(),
                "docs/configuration.md lists `{key}` twice"
            );
        }
    }
    keys
}

#[test]
fn test_docs_configuration_lists_every_key_with_its_default() {
    let code = code_keys();
    let docs = documented_keys();
    let missing: Vec<&String> = code.keys().filter(|k| !docs.contains_key(*k)).collect();
    let extra: Vec<&String> = docs.keys().filter(|k| !code.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md is out of date.\n  keys in the code but not the docs: {missing:?}\n  keys in the docs but not the code: {extra:?}"
    );
    for (key, default) in &code {
        assert_eq!(
            &docs[key], default,
            "docs/configuration.md: default of `{key}`"
        );
    }
}

#[test]
fn test_docs_default_config_points_at_the_reference() {
    // templates/millrace.yaml is what `init` writes; its keys are checked against the code by
    // the config unit tests. Here: the file points readers at the reference.
    let template = read("templates/millrace.yaml");
    assert!(template.contains("docs/configuration.md"));
}

// ---------------------------------------------------------------------------------------
// (b) CLI reference

fn with_term_width(cmd: clap::Command) -> clap::Command {
    let mut cmd = cmd.term_width(100);
    for sub in cmd.get_subcommands_mut() {
        let taken = std::mem::replace(sub, clap::Command::new("placeholder"));
        *sub = with_term_width(taken);
    }
    cmd
}

fn render_command(cmd: &mut clap::Command, path: &str, depth: usize, out: &mut String) {
    let heading = "#".repeat((depth + 2).min(4));
    let help = cmd.render_long_help().to_string();
    let help: Vec<&str> = help.lines().map(str::trim_end).collect();
    out.push_str(&format!(
        "{heading} `{path}`\n\n```text\n{}\n```\n\n",
        help.join("\n").trim_end()
    ));
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        render_command(sub, &sub_path, depth + 1, out);
    }
}

/// `docs/cli.md`, generated from the clap definitions.
fn render_cli_reference() -> String {
    // Hide the environment's value of MILLRACE_WORKSPACE so the text does not depend on it.
    let cmd = Cli::command().mut_arg("workspace", |a| a.hide_env_values(true));
    let mut cmd = with_term_width(cmd);
    cmd.build();
    let mut out = String::from(
        "# Command-line reference\n\n\
         Generated from the clap definitions by `tests/cli/test_docs.rs`; do not edit by hand.\n\
         Regenerate with `UPDATE_DOCS=1 cargo test --test cli test_docs`.\n\n\
         Global options (`--workspace`, `--json`, `--verbose`) work on every command. Exit codes \
         are listed in the [README](../README.md#exit-codes).\n\n",
    );
    render_command(&mut cmd, "millrace", 0, &mut out);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[test]
fn test_docs_cli_reference_matches_the_code() {
    let generated = render_cli_reference();
    let path = repo("docs/cli.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let first = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        panic!(
            "docs/cli.md is out of date (first difference at line {}).\n\
             Regenerate it: UPDATE_DOCS=1 cargo test --test cli test_docs",
            first + 1
        );
    }
}

// ---------------------------------------------------------------------------------------
// (c) the example loop

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn test_docs_example_loop_compiles_and_runs() {
    let ws = TestWs::new();
    copy_tree(&repo("docs/examples/millrace-agents"), &ws.rt());
    let out = ws.ok(&["compile", "validate", "--mode", "quick"]);
    assert!(out.contains("ok: true"), "{out}");
    let show = ws.ok(&["compile", "show", "--mode", "quick"]);
    assert!(
        show.contains(
            "route: checker FIX_NEEDED -> builder while edge:checker:FIX_NEEDED < 3, \
             else consultant while consultant < 2, else BLOCKED (block)"
        ),
        "{show}"
    );
    // The walk-through in docs/loops-and-modes.md: one failed check, then a pass.
    ws.use_scripted(Some("stages:\n  checker: [FIX_NEEDED, CHECKER_PASS]\n"));
    ws.add_task("t-quick", "");
    ws.ok(&[
        "run",
        "daemon",
        "--mode",
        "quick",
        "--until-idle",
        "--max-ticks",
        "50",
    ]);
    assert_eq!(
        ws.stages_started(),
        ["builder", "checker", "builder", "checker", "updater"]
    );
    assert_eq!(ws.folder_of("t-quick"), ["tasks/done"]);
}

// ---------------------------------------------------------------------------------------
// (d) commands shown in the docs

/// Split a shell command line into words (quotes and backslashes; no expansion).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `millrace` invocations in a line of a shell code block: `millrace ...` and
/// `cargo run [--release] -- ...`, split at `&&`, `||`, `;` and `|`, comments removed.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ");
    let line = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let mut found = Vec::new();
    for part in line.split("&&").flat_map(|p| p.split("||")) {
        for part in part.split(';').flat_map(|p| p.split('|')) {
            let words = shell_words(part.trim());
            let args: Vec<String> = match words.first().map(String::as_str) {
                Some("millrace") => words[1..].to_vec(),
                Some("cargo") if words.get(1).map(String::as_str) == Some("run") => {
                    match words.iter().position(|w| w == "--") {
                        Some(i) => words[i + 1..].to_vec(),
                        None => continue,
                    }
                }
                _ => continue,
            };
            let mut argv = vec!["millrace".to_string()];
            argv.extend(args);
            found.push(argv);
        }
    }
    found
}

/// Lines of fenced code blocks tagged `sh`, `bash`, `shell` or `console`.
fn shell_lines(markdown: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut in_shell = None;
    for (n, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(tag) = trimmed.strip_prefix("```") {
            in_shell = match in_shell {
                Some(_) => None,
                None => Some(matches!(tag.trim(), "sh" | "bash" | "shell" | "console")),
            };
            continue;
        }
        if in_shell == Some(true) {
            lines.push((n + 1, line.to_string()));
        }
    }
    lines
}

#[test]
fn test_docs_every_shown_command_parses() {
    let mut files = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(repo("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "cli.md" {
            files.push(format!("docs/{name}"));
        }
    }
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        for (line_no, line) in shell_lines(&read(file)) {
            for argv in invocations(&line) {
                checked += 1;
                if let Err(err) = Cli::try_parse_from(&argv) {
                    if err.use_stderr() {
                        failures.push(format!("{file}:{line_no}: `{}`\n{err}", argv.join(" ")));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "commands in the docs that do not parse:\n{}",
        failures.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} commands found; is the scan broken?"
    );
}

#[test]
fn test_docs_readme_opens_with_the_demo_and_test_commands() {
    let readme = read("README.md");
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert_eq!(
        first_block,
        [
            "cargo run --release -- demo",
            "cargo test --locked --all-features"
        ]
    );
}

#[test]
fn test_docs_shell_word_splitting() {
    assert_eq!(
        invocations("millrace control retry-active --reason \"flaky net\" && millrace status # x"),
        [
            vec![
                "millrace",
                "control",
                "retry-active",
                "--reason",
                "flaky net"
            ],
            vec!["millrace", "status"],
        ]
    );
    assert_eq!(
        invocations("cargo run --release -- demo"),
        [vec!["millrace", "demo"]]
    );
    assert!(invocations("cargo test --locked").is_empty());
}

/// Every event the runtime writes has a row in the event table of `docs/workspace.md`.
#[test]
fn test_docs_every_event_type_is_documented() {
    let docs = read("docs/workspace.md");
    let documented: BTreeSet<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(name, _)| name))
        .collect();
    let missing: Vec<&str> = millrace::state::event::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|name| !documented.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/workspace.md has no row for these event types: {missing:?}"
    );
}
