//! Issue 7: fuzzing the parsers that read untrusted input.
//!
//! cargo-fuzz needs a nightly toolchain, so proptest is the engine: arbitrary bytes and
//! strings, plus mutations of the shipped fixtures (line drops, duplications, byte flips and
//! splices of labels and markers), which reach far deeper into each grammar than random text.
//! Each target runs 256 cases by default (a few seconds in CI); set `MILLRACE_FUZZ_CASES` to run
//! longer, e.g. `MILLRACE_FUZZ_CASES=20000 cargo test --test fuzz`.
//!
//! Properties: no target panics; a document that parses re-renders to text that parses back
//! to the same document; a JSON import that passes the round-trip check does the same; marker
//! extraction only ever answers with a legal result of the stage that is present in the text.

use std::path::Path;

use millrace::config::Config;
use millrace::control::actions::Action;
use millrace::control::mailbox::Envelope;
use millrace::documents::{self, Document};
use millrace::model::{Stage, WorkItemKind};
use millrace::runners::normalize::extract_from_text;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

fn cases() -> u32 {
    std::env::var("MILLRACE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read_to_string(path).expect("fixture")
}

/// Tokens that matter to the grammars, spliced into mutated inputs.
const TOKENS: &[&str] = &[
    "# ",
    "## ",
    "\n",
    "\r\n",
    "\r",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "\u{c}",
    "- ",
    "-",
    ":",
    "Task-ID:",
    "Spec-ID:",
    "Incident-ID:",
    "Title:",
    "Summary:",
    "Risk:",
    "Risks:",
    "Tags:",
    "Depends-On:",
    "Created-At:",
    "Opened-At:",
    "Needs-Planning:",
    "Severity:",
    "Source-Stage:",
    "Source-Plane:",
    "Status-Hint:",
    "Goals:",
    "References:",
    "Acceptance:",
    "Target-Paths:",
    "2026-02-30T25:61:61Z",
    "1e309",
    "99999999999999999999",
    "-0",
    "../",
    "/",
    "\0",
    "\t",
    " ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!str ",
    "? ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "### ",
    "```\n",
    "~~~\n",
    "BUILDER_COMPLETE",
    "BLOCKED",
    "CHECKER_PASS",
    "FIX_NEEDED",
    "command: ",
    "payload:",
    "null",
    "true",
    "yes",
    "~",
];

/// One edit to a text.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    DuplicateLine(usize),
    DropLine(usize),
    SwapLines(usize, usize),
    Byte(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), any::<char>()).prop_map(|(at, c)| Edit::Byte(at, c)),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for edit in edits {
        match *edit {
            Edit::Insert(at, t) => {
                let at = boundary(&text, at);
                text.insert_str(at, TOKENS[t]);
            }
            Edit::Delete(at, n) => {
                let start = boundary(&text, at);
                let end = boundary(&text, start + n.min(text.len() - start));
                text.replace_range(start..end.max(start), "");
            }
            Edit::Byte(at, c) => {
                let at = boundary(&text, at);
                let end = text[at..]
                    .chars()
                    .next()
                    .map(|ch| at + ch.len_utf8())
                    .unwrap_or(at);
                text.replace_range(at..end, c.encode_utf8(&mut [0; 4]));
            }
            Edit::DuplicateLine(i) | Edit::DropLine(i) | Edit::SwapLines(i, _) => {
                let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
                let i = i % lines.len();
                match *edit {
                    Edit::DuplicateLine(_) => lines.insert(i, lines[i].clone()),
                    Edit::DropLine(_) => {
                        lines.remove(i);
                    }
                    Edit::SwapLines(_, j) => {
                        let j = j % lines.len();
                        lines.swap(i, j);
                    }
                    _ => unreachable!(),
                }
                text = lines.join("\n");
            }
        }
    }
    text
}

/// Mutations of `seeds`, or arbitrary text.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (proptest::sample::select(seeds), prop::collection::vec(edit(), 1..8))
            .prop_map(|(seed, edits)| apply(&seed, &edits)),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

fn document_seeds() -> Vec<String> {
    [
        "documents/task.md",
        "documents/spec.md",
        "documents/incident.md",
        "documents/idea-spec.md",
        "documents/cache-warmup.md",
        "demo/task.md",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect()
}

/// A parsed document re-renders to canonical text that parses back to the same document.
fn check_document(kind: WorkItemKind, text: &str) {
    if let Ok(doc) = documents::parse(kind, "fuzz.md", text) {
        let rendered = doc.render();
        let again = documents::parse(kind, "fuzz.md", &rendered).unwrap_or_else(|e| {
            panic!("re-render does not parse: {e}\ninput: {text:?}\nrendered: {rendered:?}")
        });
        assert_eq!(again, doc, "input: {text:?}\nrendered: {rendered:?}");
        assert_eq!(again.render(), rendered, "rendering is not canonical");
    }
}

#[test]
fn fuzz_document_parser() {
    runner()
        .run(&mutated(document_seeds()), |text| {
            for kind in WorkItemKind::ALL {
                check_document(kind, &text);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_json_import() {
    let mut seeds = vec![fixture("documents/cache-warmup.json")];
    for kind in [WorkItemKind::Task, WorkItemKind::Spec] {
        for rel in ["documents/task.md", "documents/spec.md"] {
            if let Ok(doc) = documents::parse(kind, "seed", &fixture(rel)) {
                seeds.push(serde_json::to_string_pretty(&documents::to_json(&doc)).unwrap());
            }
        }
    }
    runner()
        .run(&mutated(seeds), |text| {
            for kind in WorkItemKind::ALL {
                let Ok(doc) = documents::parse_json(kind, "fuzz.json", &text) else {
                    continue;
                };
                if doc.check_round_trip("fuzz.md").is_ok() {
                    let rendered = doc.render();
                    let again: Document = documents::parse(kind, "fuzz.md", &rendered)
                        .unwrap_or_else(|e| panic!("{e}\ninput: {text:?}\n{rendered:?}"));
                    assert_eq!(again, doc, "input: {text:?}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_config_parser() {
    let seeds = vec![
        "runtime:\n  run_style: daemon\n  default_mode: standard_plain\nrunners:\n  env_allow: [PATH, \"OPENAI_*\"]\n  codex:\n    command: codex\n    args: [exec]\n    env:\n      A: b\nwatchers:\n  settle_ms: 200\nrecovery:\n  max_fix_cycles: 2\n".to_string(),
        "{\"runtime\": {\"run_style\": \"once\"}, \"watchers\": {\"enabled\": true}}".to_string(),
    ];
    runner()
        .run(&mutated(seeds), |text| {
            let _ = Config::parse(Path::new("millrace.yaml"), &text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_mailbox_envelopes() {
    let seeds = vec![
        "schema_version: \"1.0\"\nkind: mailbox_command\ncommand_id: pause-1-abc\ncommand: pause\nissued_at: \"2026-11-23T22:55:45.620185Z\"\nissuer: operator\npayload: {}\n".to_string(),
        "command: retry_active\nreason: flaky\npayload:\n  scope: planning\n".to_string(),
        "command: add_idea\npayload:\n  source_name: idea.md\n  markdown: \"# Idea\\n\"\n".to_string(),
        format!(
            "command: add_spec\npayload:\n  document: {}\n",
            fixture("documents/cache-warmup.json").replace('\n', " ")
        ),
    ];
    runner()
        .run(&mutated(seeds), |text| {
            if let Ok(envelope) = millrace::yaml::from_str::<Envelope>(Path::new("m.yaml"), &text) {
                if let Ok(Action::AddIdea { name, .. }) = Action::from_envelope(&envelope) {
                    assert!(
                        !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
                        "idea name {name:?} escapes the inbox"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_marker_extraction() {
    let seeds = vec![
        "Done.\n\n### BUILDER_COMPLETE\n".to_string(),
        "```\n### BLOCKED\n```\n### CHECKER_PASS\n### FIX_NEEDED\n".to_string(),
        "### PLANNER_COMPLETE\r\n\r\n### ARBITER_COMPLETE\n~~~\n### BLOCKED\n".to_string(),
    ];
    runner()
        .run(&(mutated(seeds), 0..Stage::ALL.len()), |(text, stage)| {
            let stage = Stage::ALL[stage];
            let found = extract_from_text(stage, &text);
            if let Ok(token) = found.outcome {
                assert!(stage.is_legal(token), "{token:?} is illegal for {stage:?}");
                assert!(
                    text.contains(&format!("{token}")),
                    "{token} not in {text:?}"
                );
            }
            Ok(())
        })
        .unwrap();
}
