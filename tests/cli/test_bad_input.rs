//! Issue 7: the bad-input corpus (`fixtures/bad/`), driven by one table.
//!
//! Every input goes in through the channel a user or agent would use: the CLI (`add-task`,
//! `add-spec`, `config validate`, `compile validate`), a file dropped into a queue folder, the
//! idea inbox or the mailbox while a daemon runs, or the final message of a (fake) harness.
//! For each the table states the outcome: refused at the CLI (exit 1, the file and line named),
//! quarantined or archived to `failed/` with a reason file (bytes preserved, the daemon keeps
//! serving a good item queued afterwards), or a typed stage failure routed to recovery.
//! Inputs too big to commit (a 10 MB line) are generated here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{fixture, wait_for, TestWs};

/// How an input reaches the runtime.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    AddTask,
    AddSpec,
    /// Written as `millrace-agents/millrace.yaml`, then `config validate`.
    Config,
    /// Written over the shipped mode, then `compile validate`.
    Mode,
    /// Written over the shipped execution loop, then `compile validate`.
    Loop,
    /// Dropped into this folder (under `millrace-agents/`) while the daemon runs.
    Drop(&'static str),
    /// Dropped into the idea inbox while the daemon runs.
    Inbox,
    /// Dropped into `state/mailbox/incoming/` while the daemon runs.
    Mailbox,
    /// The builder's final message.
    Harness,
}

/// What must happen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// CLI exit 1 naming the file (with `:line` when given) and saying this.
    Refused(Option<usize>, &'static str),
    /// Taken as a valid input.
    Accepted,
    /// Moved to `quarantine/` with a `.error.yaml` holding this text (and line, if given).
    Quarantined(Option<usize>, &'static str),
    /// Mailbox: archived to `failed/` with a `.error.yaml` holding this text.
    Failed(&'static str),
    /// Harness: a failed stage result with this `metadata.failure_class`, then recovery.
    Failure(&'static str),
    /// Harness: the stage's answer.
    Terminal(&'static str),
}

/// Where the bytes come from: a committed fixture or a generator.
#[derive(Clone, Copy)]
enum Src {
    F(&'static str),
    Gen(&'static str, fn() -> Vec<u8>),
}

struct Case {
    src: Src,
    via: Via,
    expect: Expect,
}

const TEN_MB: usize = 10 * 1024 * 1024;

fn ten_mb_line_task() -> Vec<u8> {
    let mut bytes = vec![b'x'; TEN_MB];
    bytes.extend_from_slice(b"\n# Title\n\nTask-ID: t-10mb\n");
    bytes
}

fn ten_mb_line_envelope() -> Vec<u8> {
    let mut bytes = b"command: pause\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'y', TEN_MB));
    bytes.push(b'\n');
    bytes
}

fn ten_mb_line_output() -> Vec<u8> {
    vec![b'z'; TEN_MB]
}

fn ten_mb_line_then_marker() -> Vec<u8> {
    let mut bytes = vec![b'z'; TEN_MB];
    bytes.extend_from_slice(b"\n### BUILDER_COMPLETE\n");
    bytes
}

use Expect::*;
use Src::*;
use Via::*;

const TASKS: &str = "tasks/queue";
const SPECS: &str = "specs/queue";
const INCIDENTS: &str = "incidents/incoming";

/// Names too long for an id (the idea's spec id is cut) or to archive with a `.error.yaml`
/// beside them (the envelope is archived under a shortened name).
const LONG_IDEA: &str = "idea/idea-longlonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglong.md";
const LONG_ENVELOPE: &str = "mailbox/mb-longlonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglong.yaml";

const H1: &str = "must start with a markdown H1 title";
const ID_RULE: &str = "must match ^[A-Za-z0-9][A-Za-z0-9._-]*$";
const UTF8: &str = "not valid UTF-8";
const STEM: &str = "filename stem does not match task_id";

#[rustfmt::skip]
fn corpus() -> Vec<Case> {
    let c = |src, via, expect| Case { src, via, expect };
    vec![
        // Task documents at the CLI ...
        c(F("task/task-empty.md"), AddTask, Refused(None, "work document is empty")),
        c(F("task/task-whitespace-only.md"), AddTask, Refused(Some(1), H1)),
        c(F("task/task-bom.md"), AddTask, Refused(Some(1), "byte-order mark")),
        c(F("task/t-crlf-ok.md"), AddTask, Accepted),
        c(F("task/task-crlf-truncated.md"), AddTask, Refused(Some(10), "invalid list item under `Target-Paths`")),
        c(F("task/task-truncated.md"), AddTask, Refused(None, "Risk: required field is missing")),
        c(F("task/task-no-h1.md"), AddTask, Refused(Some(1), H1)),
        c(F("task/task-h2-title.md"), AddTask, Refused(Some(1), H1)),
        c(F("task/task-title-mismatch.md"), AddTask, Refused(Some(4), "must match the `Title` field")),
        c(F("task/task-duplicate-field.md"), AddTask, Refused(Some(8), "repeats field `Created-By`")),
        c(F("task/task-list-under-scalar.md"), AddTask, Refused(Some(6), "list item under scalar field `Summary`")),
        c(F("task/task-invalid-list-item.md"), AddTask, Refused(Some(22), "invalid list item under `Risk`")),
        c(F("task/task-empty-required-list.md"), AddTask, Refused(Some(21), "at least 1 item")),
        c(F("task/task-inline-list.md"), AddTask, Refused(Some(24), "Tags: must be a list section")),
        c(F("task/task-foreign-field.md"), AddTask, Refused(Some(24), "Goals: field does not belong to a task")),
        c(F("task/task-bad-enum.md"), AddTask, Refused(Some(6), "Status-Hint: must be one of")),
        c(F("task/task-bad-datetime.md"), AddTask, Refused(Some(6), "invalid datetime")),
        c(F("task/task-wrong-type-bool-datetime.md"), AddTask, Refused(Some(6), "invalid datetime `yes`")),
        c(F("task/task-id-slash.md"), AddTask, Refused(Some(3), ID_RULE)),
        c(F("task/task-id-dotdot.md"), AddTask, Refused(Some(3), ID_RULE)),
        c(F("task/task-id-absolute.md"), AddTask, Refused(Some(3), ID_RULE)),
        c(F("task/task-id-nul.md"), AddTask, Refused(Some(3), ID_RULE)),
        c(F("task/task-id-leading-dash.md"), AddTask, Refused(Some(3), ID_RULE)),
        c(F("task/task-binary.md"), AddTask, Refused(None, UTF8)),
        c(F("task/task-latin1.md"), AddTask, Refused(None, UTF8)),
        c(F("task/task-nul-in-body.md"), AddTask, Accepted),
        c(Gen("task-10mb-line.md", ten_mb_line_task), AddTask, Refused(Some(1), H1)),
        // ... and dropped into the queue while the daemon runs.
        c(F("task/task-empty.md"), Drop(TASKS), Quarantined(None, "work document is empty")),
        c(F("task/task-whitespace-only.md"), Drop(TASKS), Quarantined(Some(1), H1)),
        c(F("task/task-bom.md"), Drop(TASKS), Quarantined(Some(1), "byte-order mark")),
        c(F("task/t-crlf-ok.md"), Drop(TASKS), Accepted),
        c(F("task/task-crlf-truncated.md"), Drop(TASKS), Quarantined(Some(10), "invalid list item")),
        c(F("task/task-truncated.md"), Drop(TASKS), Quarantined(None, "Risk: required field is missing")),
        c(F("task/task-duplicate-field.md"), Drop(TASKS), Quarantined(Some(8), "repeats field `Created-By`")),
        c(F("task/task-id-dotdot.md"), Drop(TASKS), Quarantined(Some(3), ID_RULE)),
        c(F("task/task-id-nul.md"), Drop(TASKS), Quarantined(Some(3), ID_RULE)),
        c(F("task/task-binary.md"), Drop(TASKS), Quarantined(None, UTF8)),
        c(F("task/task-latin1.md"), Drop(TASKS), Quarantined(None, UTF8)),
        c(F("task/task-stem-mismatch.md"), Drop(TASKS), Quarantined(None, STEM)),
        c(F("task/task-nul-in-body.md"), Drop(TASKS), Quarantined(None, STEM)),
        c(Gen("task-10mb-line.md", ten_mb_line_task), Drop(TASKS), Quarantined(Some(1), H1)),
        // Specs.
        c(F("spec/spec-missing-summary.md"), AddSpec, Refused(None, "Summary: required field is missing")),
        c(F("spec/spec-bad-source-type.md"), AddSpec, Refused(Some(6), "Source-Type: must be one of")),
        c(F("spec/spec-field-in-prose.md"), AddSpec, Refused(Some(23), "repeats field `Summary`")),
        c(F("spec/spec-task-field.md"), AddSpec, Refused(Some(22), "Depends-On: field does not belong to a spec")),
        c(F("spec/spec-id-300.md"), AddSpec, Refused(Some(3), "at most 200 characters")),
        c(F("spec/spec-missing-summary.md"), Drop(SPECS), Quarantined(None, "Summary: required field is missing")),
        c(F("spec/spec-field-in-prose.md"), Drop(SPECS), Quarantined(Some(23), "repeats field `Summary`")),
        c(F("spec/spec-id-300.md"), Drop(SPECS), Quarantined(Some(3), "at most 200 characters")),
        // Incidents (no import command: only dropped).
        c(F("incident/inc-plane-mismatch.md"), Drop(INCIDENTS), Quarantined(None, "source_stage must belong to source_plane")),
        c(F("incident/inc-bad-bool.md"), Drop(INCIDENTS), Quarantined(Some(9), "Needs-Planning")),
        c(F("incident/inc-missing-fields.md"), Drop(INCIDENTS), Quarantined(None, "required field is missing")),
        c(F("incident/inc-task-field.md"), Drop(INCIDENTS), Quarantined(Some(14), "Target-Paths: field does not belong to an incident")),
        // JSON imports.
        c(F("json/task-truncated.json"), AddTask, Refused(Some(4), "invalid JSON")),
        c(F("json/task-array.json"), AddTask, Refused(Some(1), "must be one JSON object")),
        c(F("json/task-empty.json"), AddTask, Refused(Some(1), "invalid JSON")),
        c(F("json/task-duplicate-key.json"), AddTask, Refused(Some(21), "key appears more than once")),
        c(F("json/task-list-as-string.json"), AddTask, Refused(Some(9), "must be an array of strings")),
        c(F("json/task-number-title.json"), AddTask, Refused(Some(3), "title: must be a string")),
        c(F("json/task-unknown-key.json"), AddTask, Refused(Some(21), "priority: unknown key")),
        c(F("json/task-missing-required.json"), AddTask, Refused(None, "created_by: required field is missing")),
        c(F("json/task-multiline-title.json"), AddTask, Refused(None, "must be a single line")),
        c(F("json/task-empty-list-item.json"), AddTask, Refused(None, "must not be empty")),
        c(F("json/task-id-dotdot.json"), AddTask, Refused(Some(2), ID_RULE)),
        c(F("json/task-id-nul.json"), AddTask, Refused(Some(2), ID_RULE)),
        c(F("json/task-wrong-kind.json"), AddTask, Refused(Some(21), "kind: must be \"task\"")),
        c(F("json/task-non-utf8.json"), AddTask, Refused(None, UTF8)),
        c(F("json/task-deep-nesting.json"), AddTask, Refused(Some(1), "recursion limit")),
        c(F("json/spec-bad-source-type.json"), AddSpec, Refused(Some(5), "source_type: must be one of")),
        // Config.
        c(F("config/config-unknown-key.yaml"), Config, Refused(Some(3), "unknown field `colour`")),
        c(F("config/config-wrong-type.yaml"), Config, Refused(Some(2), "invalid u64")),
        c(F("config/config-duplicate-key.yaml"), Config, Refused(Some(3), "duplicate mapping key")),
        c(F("config/config-yes-boolean.yaml"), Config, Refused(Some(2), "invalid boolean")),
        c(F("config/config-truncated.yaml"), Config, Refused(Some(3), "unclosed quote")),
        c(F("config/config-tab-indent.yaml"), Config, Refused(Some(2), "tabs")),
        c(F("config/config-non-utf8.yaml"), Config, Refused(None, "UTF-8")),
        c(F("config/config-not-mapping.yaml"), Config, Refused(Some(1), "mapping")),
        c(F("config/config-alias-bomb.yaml"), Config, Refused(Some(1), "unknown field")),
        c(F("config/config-deep-nesting.yaml"), Config, Refused(Some(1), "mapping")),
        c(F("config/config-bom.yaml"), Config, Accepted),
        // Mode and loop assets.
        c(F("assets/mode-empty.yaml"), Mode, Refused(None, "E-MODE-YAML")),
        c(F("assets/mode-alias-bomb.yaml"), Mode, Refused(Some(6), "budget breached")),
        c(F("assets/mode-binary.yaml"), Mode, Refused(None, "E-MODE-READ")),
        c(F("assets/mode-deep-nesting.yaml"), Mode, Refused(Some(1), "budget breached")),
        c(F("assets/loop-truncated.yaml"), Loop, Refused(Some(3), "unclosed bracket")),
        c(F("assets/loop-duplicate-key.yaml"), Loop, Refused(Some(2), "duplicate mapping key")),
        c(F("assets/loop-non-utf8.yaml"), Loop, Refused(None, "E-LOOP-READ")),
        // Mailbox envelopes.
        c(F("mailbox/mb-garbage.yaml"), Mailbox, Failed("mb-garbage.yaml")),
        c(F("mailbox/mb-empty.yaml"), Mailbox, Failed("mb-empty.yaml")),
        c(F("mailbox/mb-unknown-command.yaml"), Mailbox, Failed("explode")),
        c(F("mailbox/mb-missing-command.yaml"), Mailbox, Failed("command")),
        c(F("mailbox/mb-unknown-field.yaml"), Mailbox, Failed("urgency")),
        c(F("mailbox/mb-duplicate-key.yaml"), Mailbox, Failed("duplicate mapping key")),
        c(F("mailbox/mb-wrong-schema-version.yaml"), Mailbox, Failed("schema_version")),
        c(F("mailbox/mb-bad-issued-at.yaml"), Mailbox, Failed("issued_at")),
        c(F("mailbox/mb-payload-not-mapping.yaml"), Mailbox, Failed("payload must be a mapping")),
        c(F("mailbox/mb-retry-bad-scope.yaml"), Mailbox, Failed("Unsupported retry_active scope: everything")),
        c(F("mailbox/mb-add-task-id-dotdot.yaml"), Mailbox, Failed(ID_RULE)),
        c(F("mailbox/mb-add-task-extra-key.yaml"), Mailbox, Failed("payload accepts only `document`")),
        c(F("mailbox/mb-add-idea-traversal.yaml"), Mailbox, Failed("without folders")),
        c(F("mailbox/mb-add-idea-absolute.yaml"), Mailbox, Failed("without folders")),
        c(F("mailbox/mb-alias-bomb.yaml"), Mailbox, Failed("budget breached")),
        c(F("mailbox/mb-deep-nesting.json"), Mailbox, Failed("mb-deep-nesting.json")),
        c(F("mailbox/mb-truncated.json"), Mailbox, Failed("mb-truncated.json")),
        c(F("mailbox/mb-non-utf8.yaml"), Mailbox, Failed("UTF-8")),
        c(F("mailbox/mb-wrong-extension.txt"), Mailbox, Failed("must end in .yaml")),
        c(F("mailbox/mb-crlf-bom.yaml"), Mailbox, Accepted),
        c(F(LONG_ENVELOPE), Mailbox, Failed("explode")),
        c(Gen("mb-10mb-line.yaml", ten_mb_line_envelope), Mailbox, Failed("mb-10mb-line.yaml")),
        // Ideas.
        c(F("idea/idea-empty.md"), Inbox, Quarantined(None, "idea file is empty")),
        c(F("idea/idea-whitespace.md"), Inbox, Quarantined(None, "idea file is empty")),
        c(F("idea/idea-binary.md"), Inbox, Quarantined(None, UTF8)),
        c(F("idea/idea-latin1.md"), Inbox, Quarantined(None, UTF8)),
        c(F("idea/idea bom crlf (1).md"), Inbox, Accepted),
        // Its spec id is cut to fit (dd25d54), so the idea is planned like any other.
        c(F(LONG_IDEA), Inbox, Accepted),
        // Harness final messages.
        c(F("harness/out-missing-marker.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-illegal-marker.txt"), Harness, Failure("illegal_terminal_result")),
        c(F("harness/out-conflicting-markers.txt"), Harness, Failure("conflicting_terminal_results")),
        c(F("harness/out-garbage.bin"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-lowercase-marker.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-inline-marker.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-empty.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-unknown-marker.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-nul-marker.txt"), Harness, Failure("missing_terminal_result")),
        c(F("harness/out-crlf-ok.txt"), Harness, Terminal("BUILDER_COMPLETE")),
        c(Gen("out-10mb-line.txt", ten_mb_line_output), Harness, Failure("missing_terminal_result")),
        c(Gen("out-10mb-line-then-marker.txt", ten_mb_line_then_marker), Harness, Terminal("BUILDER_COMPLETE")),
    ]
}

impl Case {
    fn name(&self) -> String {
        match self.src {
            F(rel) => Path::new(rel)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            Gen(name, _) => name.to_string(),
        }
    }

    /// The name the runtime archives the input under.
    fn archived_name(&self) -> String {
        millrace::workspace::atomic::archive_name(&self.name())
    }

    fn bytes(&self) -> Vec<u8> {
        match self.src {
            F(rel) => std::fs::read(fixture(&format!("bad/{rel}"))).expect("fixture"),
            Gen(_, make) => make(),
        }
    }

    /// The input as a file outside the workspace's runtime folder.
    fn materialize(&self, ws: &TestWs) -> PathBuf {
        let dir = ws.path().join("inputs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(self.name());
        std::fs::write(&path, self.bytes()).unwrap();
        path
    }

    fn label(&self) -> String {
        format!("{} via {:?}", self.name(), self.via)
    }
}

/// CLI exit 1, the file (and line) named, the reason given.
fn assert_refused(case: &Case, out: &std::process::Output, line: Option<usize>, text: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {stderr}", case.label());
    let shown = match case.via {
        Config => "millrace.yaml".to_string(),
        Mode => "standard_plain.yaml".to_string(),
        Loop => "default.yaml".to_string(),
        _ => case.name(),
    };
    let located = match line {
        Some(l) => format!("{shown}:{l}"),
        None => shown,
    };
    assert!(
        stderr.contains(&located),
        "{}: expected `{located}` in {stderr}",
        case.label()
    );
    assert!(
        stderr.contains(text),
        "{}: expected `{text}` in {stderr}",
        case.label()
    );
}

/// Imports, config and assets at the CLI, in one workspace per kind of input.
fn run_cli_cases(cases: &[&Case]) {
    let ws = TestWs::new();
    let rt = ws.rt();
    let mode_path = rt.join("modes/standard_plain.yaml");
    let loop_path = rt.join("loops/execution/default.yaml");
    let (mode_orig, loop_orig) = (
        std::fs::read(&mode_path).unwrap(),
        std::fs::read(&loop_path).unwrap(),
    );
    let mut accepted_ids = BTreeSet::new();
    for case in cases {
        let out = match case.via {
            AddTask | AddSpec => {
                let input = case.materialize(&ws);
                let cmd = if case.via == AddTask {
                    "add-task"
                } else {
                    "add-spec"
                };
                ws.run(&[cmd, input.to_str().unwrap()])
            }
            Config => {
                std::fs::write(ws.rt().join("millrace.yaml"), case.bytes()).unwrap();
                ws.run(&["config", "validate"])
            }
            Mode | Loop => {
                let target = if case.via == Mode {
                    &mode_path
                } else {
                    &loop_path
                };
                std::fs::write(target, case.bytes()).unwrap();
                let out = ws.run(&["compile", "validate"]);
                std::fs::write(&mode_path, &mode_orig).unwrap();
                std::fs::write(&loop_path, &loop_orig).unwrap();
                out
            }
            _ => unreachable!(),
        };
        match case.expect {
            Refused(line, text) => assert_refused(case, &out, line, text),
            Accepted => {
                assert!(
                    out.status.success(),
                    "{}: {}",
                    case.label(),
                    String::from_utf8_lossy(&out.stderr)
                );
                if matches!(case.via, AddTask | AddSpec) {
                    accepted_ids.insert(case.name());
                }
            }
            other => panic!("{}: {other:?} is not a CLI outcome", case.label()),
        }
    }
    // Nothing refused left a trace: the queue holds exactly the accepted imports.
    let queued =
        ws.ls("millrace-agents/tasks/queue").len() + ws.ls("millrace-agents/specs/queue").len();
    assert_eq!(
        queued,
        accepted_ids.len(),
        "refused imports must write nothing"
    );
    assert!(ws.ls("millrace-agents/quarantine").is_empty());
}

/// The final message of each harness fixture, one workspace each (`run once` runs the builder).
fn run_harness_case(case: &Case) {
    let ws = TestWs::new();
    let input = case.materialize(&ws);
    ws.use_fake_harness(&format!(
        "builder run cat '{}' > \"$LAST_MESSAGE_FILE\"\n",
        input.display()
    ));
    ws.ok(&["add-task", fixture("demo/task.md").to_str().unwrap()]);
    ws.run(&["run", "once"]);
    let runs = ws.ls("millrace-agents/runs");
    assert_eq!(
        runs.len(),
        1,
        "{}: one run expected, got {runs:?}",
        case.label()
    );
    let results_dir = format!("millrace-agents/runs/{}/stage_results", runs[0]);
    let results = ws.ls(&results_dir);
    assert_eq!(results.len(), 1, "{}: {results:?}", case.label());
    let result = ws.read(&format!("{results_dir}/{}", results[0]));
    assert!(
        result.contains("stage: builder"),
        "{}: {result}",
        case.label()
    );
    let status = ws.json(&["status"]);
    match case.expect {
        Failure(class) => {
            assert!(
                result.contains(&format!("failure_class: {class}\n")),
                "{}: expected failure_class {class} in\n{result}",
                case.label()
            );
            assert!(result.contains("success: false"), "{}", case.label());
            assert_eq!(
                status["snapshot"]["active_stage"],
                "troubleshooter",
                "{}: a typed failure is routed to recovery",
                case.label()
            );
        }
        Terminal(token) => {
            assert!(
                result.contains(&format!("terminal_result: {token}\n")),
                "{}: {result}",
                case.label()
            );
            assert!(result.contains("failure_class: null"), "{}", case.label());
        }
        other => panic!("{}: {other:?} is not a harness outcome", case.label()),
    }
}

fn drop_dir(ws: &TestWs, via: Via) -> PathBuf {
    match via {
        Drop(folder) => ws.rt().join(folder),
        Inbox => ws.rt().join("ideas/inbox"),
        Mailbox => ws.rt().join("state/mailbox/incoming"),
        _ => unreachable!(),
    }
}

/// Whether the daemon has dealt with a dropped input.
fn settled(ws: &TestWs, case: &Case) -> bool {
    let name = case.archived_name();
    let rt = ws.rt();
    match (case.via, case.expect) {
        (_, Quarantined(..)) => rt.join(format!("quarantine/{name}.error.yaml")).is_file(),
        (Mailbox, Failed(_)) => rt
            .join(format!("state/mailbox/failed/{name}.error.yaml"))
            .is_file(),
        (Mailbox, Accepted) => rt.join(format!("state/mailbox/processed/{name}")).is_file(),
        (Inbox, Accepted) => ws
            .events()
            .iter()
            .any(|e| e["event_type"] == "idea_normalized_to_spec"),
        (Drop(_), Accepted) => rt.join(format!("tasks/done/{name}")).is_file(),
        other => panic!("{}: {other:?} is not a drop outcome", case.label()),
    }
}

/// Drop every queue, inbox and mailbox input into a running daemon's workspace, then check
/// each outcome, the preserved bytes, and that a good task queued afterwards still completes.
fn run_daemon_cases(cases: &[&Case]) {
    let ws = TestWs::new();
    ws.use_fake_harness("");
    let log = std::fs::File::create(ws.path().join("daemon.log")).unwrap();
    let mut daemon = ws
        .cmd()
        .args(["run", "daemon"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    wait_for("the daemon to start", Duration::from_secs(30), || {
        ws.event_types().iter().any(|t| t == "runtime_started")
    });
    let staging = ws.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    for case in cases {
        let staged = staging.join(case.name());
        std::fs::write(&staged, case.bytes()).unwrap();
        std::fs::rename(&staged, drop_dir(&ws, case.via).join(case.name())).unwrap();
    }
    for case in cases {
        wait_for(&case.label(), Duration::from_secs(60), || {
            settled(&ws, case)
        });
    }
    ws.ok(&["add-task", fixture("demo/task.md").to_str().unwrap()]);
    wait_for("the good task to be done", Duration::from_secs(60), || {
        ws.exists("millrace-agents/tasks/done/t-readme-typo.md")
    });
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon must keep running"
    );

    for case in cases {
        let name = case.archived_name();
        let bytes = case.bytes();
        let (kept, reason) = match (case.via, case.expect) {
            (_, Quarantined(..)) => (
                format!("millrace-agents/quarantine/{name}"),
                Some(format!("millrace-agents/quarantine/{name}.error.yaml")),
            ),
            (Mailbox, Failed(_)) => (
                format!("millrace-agents/state/mailbox/failed/{name}"),
                Some(format!(
                    "millrace-agents/state/mailbox/failed/{name}.error.yaml"
                )),
            ),
            (Mailbox, Accepted) => (
                format!("millrace-agents/state/mailbox/processed/{name}"),
                None,
            ),
            // An idea stays in the inbox under its own name.
            (Inbox, Accepted) => (format!("millrace-agents/ideas/inbox/{}", case.name()), None),
            (Drop(_), Accepted) => (format!("millrace-agents/tasks/done/{name}"), None),
            _ => unreachable!(),
        };
        let on_disk = std::fs::read(ws.path().join(&kept)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{}: {kept} must keep the input byte-for-byte",
            case.label()
        );
        if let Some(reason) = reason {
            let text = ws.read(&reason);
            let (line, want) = match case.expect {
                Quarantined(line, want) => (line, want),
                Failed(want) => (None, want),
                _ => unreachable!(),
            };
            assert!(
                text.contains(want),
                "{}: expected `{want}` in {text}",
                case.label()
            );
            if let Some(line) = line {
                assert!(
                    text.contains(&format!("line: {line}\n")),
                    "{}: {text}",
                    case.label()
                );
            }
        }
    }
    // The idea with a BOM, CRLF and an odd name became a spec with a clean id and title.
    let spec = std::fs::read_dir(ws.rt().join("specs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() == "idea-idea-bom-crlf-1.md")
        .expect("the idea's spec");
    assert!(std::fs::read_to_string(spec)
        .unwrap()
        .starts_with("# Idea with BOM\n"));
    // Nothing bad reached the active or done folders; nothing else was quarantined.
    assert!(ws.ls("millrace-agents/tasks/active").is_empty());
    let expected_quarantine = cases
        .iter()
        .filter(|c| matches!(c.expect, Quarantined(..)))
        .count();
    assert_eq!(
        ws.ls("millrace-agents/quarantine").len(),
        2 * expected_quarantine
    );

    ws.ok(&["control", "stop"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            daemon.kill().unwrap();
            panic!("the daemon did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "daemon exit {status:?}: {}",
        ws.read("daemon.log")
    );
}

#[test]
fn bad_input_corpus() {
    let cases = corpus();
    assert!(cases.len() >= 40);
    let cli: Vec<&Case> = cases
        .iter()
        .filter(|c| matches!(c.via, AddTask | AddSpec | Config | Mode | Loop))
        .collect();
    let daemon: Vec<&Case> = cases
        .iter()
        .filter(|c| matches!(c.via, Drop(_) | Inbox | Mailbox))
        .collect();
    let harness: Vec<&Case> = cases.iter().filter(|c| c.via == Harness).collect();
    std::thread::scope(|s| {
        s.spawn(|| run_cli_cases(&cli));
        s.spawn(|| run_daemon_cases(&daemon));
        for chunk in harness.chunks(4) {
            s.spawn(move || chunk.iter().for_each(|c| run_harness_case(c)));
        }
    });
}

/// A mistake in the scripted runner's script is the operator's: `config validate` and `doctor`
/// name the file, line and what an answer may be, and a daemon pauses on it instead of
/// failing every item's stages (the items went to blocked/ with "untagged enum Answer").
#[test]
fn a_bad_scripted_runner_script_is_reported_and_pauses_instead_of_blocking_work() {
    let ws = TestWs::new();
    ws.use_scripted(Some("stages:\n  checker: [FIX_NEDED, CHECKER_PASS]\n"));
    let err = ws.fails(&["config", "validate"], 1);
    assert!(err.contains("script.yaml:2"), "{err}");
    assert!(
        err.contains("an answer is one of the stage's results"),
        "{err}"
    );
    let doctor = ws.run(&["--json", "doctor"]);
    assert_eq!(doctor.status.code(), Some(6));
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(report.contains("scripted_script_invalid"), "{report}");

    ws.write("script.yaml", "stages:\n  checker: [BUILDER_COMPLETE]\n");
    let err = ws.fails(&["config", "validate"], 1);
    assert!(
        err.contains("BUILDER_COMPLETE is not a result of the checker stage"),
        "{err}"
    );

    ws.add_task("t1", "");
    ws.run(&["run", "daemon", "--until-idle", "--max-ticks", "20"]);
    assert_eq!(ws.json(&["status"])["snapshot"]["paused"], true);
    assert_eq!(ws.folder_of("t1"), ["tasks/active"], "not blocked");
}

/// `doctor` names files dropped where millrace looks for work but never reads them (wrong
/// extension, one folder too high, a mailbox envelope beside `incoming/`, a folder or FIFO
/// named like a document), and none in a
/// workspace that has run, requeued and been stopped.
#[test]
fn doctor_names_files_millrace_will_never_read() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t-ok", "");
    ws.ok(&["run", "once"]);
    ws.ok(&["clear-stale-state", "--reason", "test"]);
    let findings = |ws: &TestWs| -> Vec<String> {
        let out = ws.run(&["--json", "doctor"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "stray_file")
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(findings(&ws), Vec::<String>::new());
    let task = crate::common::task_doc("t-x", "");
    for rel in [
        "tasks/queue/t-x.MD",
        "tasks/queue/t-x.txt",
        "tasks/t-x.md",
        "state/mailbox/stop.yaml",
        "ideas/inbox/notes.txt",
    ] {
        ws.write(&format!("millrace-agents/{rel}"), &task);
    }
    std::fs::create_dir(ws.path().join("millrace-agents/tasks/queue/t-dir.md")).unwrap();
    let fifo = ws.path().join("millrace-agents/tasks/queue/t-fifo.md");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut found = findings(&ws);
    found.sort();
    assert_eq!(
        found,
        [
            "millrace-agents/ideas/inbox/notes.txt",
            "millrace-agents/state/mailbox/stop.yaml",
            "millrace-agents/tasks/queue/t-dir.md",
            "millrace-agents/tasks/queue/t-fifo.md",
            "millrace-agents/tasks/queue/t-x.MD",
            "millrace-agents/tasks/queue/t-x.txt",
            "millrace-agents/tasks/t-x.md",
        ]
    );
}

/// One id both in `tasks/active/` (unowned) and in `tasks/queue/`: the queued copy is
/// quarantined as a duplicate and the active one goes back to the queue, so work goes on
/// (the orphan could not be requeued over its twin, and an item in active/ stopped every
/// claim: "no work left" with two tasks waiting).
#[test]
fn a_queued_twin_of_an_orphaned_active_task_is_quarantined_and_work_goes_on() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let task = crate::common::task_doc("t-x", "");
    ws.write("millrace-agents/tasks/active/t-x.md", &task);
    ws.write("millrace-agents/tasks/queue/t-x.md", &task);
    ws.write(
        "millrace-agents/tasks/queue/t-good.md",
        &crate::common::task_doc("t-good", ""),
    );
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-x"), ["tasks/done"]);
    assert_eq!(ws.folder_of("t-good"), ["tasks/done"]);
    let reason = ws.read("millrace-agents/quarantine/t-x.md.error.yaml");
    assert!(
        reason.contains("already exists in tasks/active"),
        "{reason}"
    );
}

/// A harness that writes over its task's document (garbage, a folder, another task's id)
/// no longer has those bytes moved to `done/` as the finished task: what it left goes to
/// `quarantine/` with the reason, the document as the stage began goes back, and the task is
/// blocked whatever the stage answered. An edit that keeps the task valid is the task's own.
#[test]
fn a_document_replaced_while_its_stage_ran_is_quarantined_and_the_task_blocked() {
    let ws = TestWs::new();
    ws.use_fake_harness(
        "builder run printf 'not a task\\n' > \"$WORK_ITEM_PATH\"; echo '### BUILDER_COMPLETE'\n\
         builder run rm \"$WORK_ITEM_PATH\"; mkdir \"$WORK_ITEM_PATH\"; echo '### BUILDER_COMPLETE'\n\
         builder run sed 's/t-3/t-9/' \"$WORK_ITEM_PATH\" > x; mv x \"$WORK_ITEM_PATH\"; echo '### BUILDER_COMPLETE'\n\
         builder run sed -i 's/- Low./- Low, the agent says./' \"$WORK_ITEM_PATH\"; echo '### BUILDER_COMPLETE'\n",
    );
    for id in ["t-1", "t-2", "t-3", "t-4"] {
        ws.add_task(id, "");
    }
    ws.run_until_idle();
    for (id, left) in [
        ("t-1", "not a valid task document"),
        ("t-2", "a folder"),
        ("t-3", "task t-9"),
    ] {
        assert_eq!(ws.folder_of(id), ["tasks/blocked"], "{id}");
        let blocked = ws.read(&format!("millrace-agents/tasks/blocked/{id}.md"));
        assert!(
            blocked.starts_with(&crate::common::task_doc(id, "")),
            "{id}: the document as claimed is back: {blocked}"
        );
        assert!(
            blocked.contains("was replaced while the builder stage ran"),
            "{blocked}"
        );
        let reason = ws.read(&format!("millrace-agents/quarantine/{id}.md.error.yaml"));
        // Folded YAML: one space between words.
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            reason.contains("replaced while the builder stage ran"),
            "{reason}"
        );
        assert!(reason.contains(left), "{reason}");
    }
    assert_eq!(ws.read("millrace-agents/quarantine/t-1.md"), "not a task\n");
    assert!(ws.path().join("millrace-agents/quarantine/t-2.md").is_dir());
    assert!(ws
        .read("millrace-agents/quarantine/t-3.md")
        .contains("Task-ID: t-9"));
    assert_eq!(ws.folder_of("t-4"), ["tasks/done"]);
    assert!(ws
        .read("millrace-agents/tasks/done/t-4.md")
        .contains("Low, the agent says."));
    let blocked: Vec<String> = ws
        .events()
        .iter()
        .filter(|e| e["event_type"] == "work_item_blocked")
        .map(|e| e["data"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(blocked, ["t-1", "t-2", "t-3"]);
}

/// A task's document replaced between two stages (no stage running) is not handed to the
/// next stage: no harness run is spent on it, what is there goes to `quarantine/` and the
/// task is blocked, in one `work_item_blocked` without a failed attempt to mark it.
#[test]
fn a_document_replaced_between_stages_is_set_aside_before_the_next_stage_runs() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.add_task("t-1", "");
    ws.ok(&["run", "once"]);
    ws.write("millrace-agents/tasks/active/t-1.md", "garbage\n");
    let before = ws.events().len();
    ws.run(&["run", "once"]);
    let events = ws.events();
    let new: Vec<&serde_json::Value> = events[before..].iter().collect();
    let types: Vec<&str> = new
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect();
    assert!(!types.contains(&"stage_started"), "{types:?}");
    assert!(!types.contains(&"runtime_blocked_mark_failed"), "{types:?}");
    let blocked: Vec<&&serde_json::Value> = new
        .iter()
        .filter(|e| e["event_type"] == "work_item_blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{types:?}");
    let reason = blocked[0]["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("tasks/active/t-1.md was replaced before the checker stage")
            && reason.contains("the stage did not run"),
        "{reason}"
    );
    assert_eq!(ws.read("millrace-agents/quarantine/t-1.md"), "garbage\n");
    assert!(ws.folder_of("t-1").is_empty(), "{:?}", ws.folder_of("t-1"));
}

/// A folder millrace writes replaced by a symbolic link cannot be fixed by retrying: the
/// daemon pauses with the reason (where before it retried the failing pass forever and
/// `--until-idle` never ended), the item that met it is not blamed, and after the link is
/// replaced `resume` carries on where it stopped.
#[test]
fn a_linked_workspace_folder_pauses_the_daemon_and_blames_no_item() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let elsewhere = tempfile::tempdir().unwrap();
    let done = ws.rt().join("tasks/done");
    std::fs::remove_dir(&done).ok();
    std::os::unix::fs::symlink(elsewhere.path(), &done).unwrap();
    ws.add_task("t-1", "");
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-1"), ["tasks/active"]);
    let status = ws.json(&["status"]);
    let reason = status["snapshot"]["pause_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("tasks/done is a symbolic link") && reason.contains("millrace resume"),
        "{status}"
    );
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
    assert!(!ws.event_types().contains(&"work_item_blocked".to_string()));

    std::fs::remove_file(&done).unwrap();
    std::fs::create_dir(&done).unwrap();
    ws.ok(&["resume"]);
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-1"), ["tasks/done"]);

    // A bad document that cannot be moved aside pauses the daemon the same way.
    let quarantine = ws.rt().join("quarantine");
    std::fs::remove_dir_all(&quarantine).ok();
    std::os::unix::fs::symlink(elsewhere.path(), &quarantine).unwrap();
    ws.write("millrace-agents/tasks/queue/t-bad.md", "garbage\n");
    ws.run_until_idle();
    let status = ws.json(&["status"]);
    assert!(
        status["snapshot"]["pause_reason"]
            .as_str()
            .is_some_and(|r| r.contains("quarantine is a symbolic link")),
        "{status}"
    );
    assert!(ws.exists("millrace-agents/tasks/queue/t-bad.md"));
}

/// What sits in `quarantine/` is findable: `queue show` of an id no folder holds names its
/// quarantined copy and why it was set aside, and `doctor` lists a quarantined folder or
/// dangling link as it lists files (it skipped them), printing no placeholder for a finding
/// without a path.
#[test]
fn quarantined_items_are_found_by_queue_show_and_listed_by_doctor_whatever_they_are() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write("millrace-agents/tasks/queue/t-q.md", "garbage\n");
    ws.add_task("t-wait", "Depends-On:\n- t-never\n");
    ws.run_until_idle();
    let out = ws.run(&["queue", "show", "t-q"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("millrace-agents/quarantine/t-q.md was set aside: t-q.md:1: must start with a markdown H1 title"),
        "{stderr}"
    );
    assert!(
        stderr.contains("millrace add-task millrace-agents/quarantine/t-q.md"),
        "{stderr}"
    );
    let quarantine = ws.rt().join("quarantine");
    std::fs::create_dir(quarantine.join("t-dir.md")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", quarantine.join("t-link.md")).unwrap();
    let doctor = ws.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    for name in ["t-q.md", "t-dir.md", "t-link.md"] {
        assert!(
            text.contains(&format!(
                "quarantined_file millrace-agents/quarantine/{name} "
            )),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("warning: daemon_stopped_with_backlog 1 execution"),
        "{text}"
    );
}

/// A folder or FIFO named like a mailbox envelope is archived to `failed/` with the reason,
/// as a bad envelope is; it was skipped in silence, its writer waiting for an answer.
#[test]
fn a_folder_or_fifo_named_like_an_envelope_is_refused_with_a_reason() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let incoming = ws.rt().join("state/mailbox/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::create_dir(incoming.join("dir.yaml")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        incoming.join("pipe.yaml"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let out = ws.run(&["run", "daemon", "--until-idle"]);
    assert!(out.status.success());
    for name in ["dir.yaml", "pipe.yaml"] {
        let reason = ws.read(&format!(
            "millrace-agents/state/mailbox/failed/{name}.error.yaml"
        ));
        assert!(reason.contains("not a regular file"), "{name}: {reason}");
    }
    assert!(ws.ls("millrace-agents/state/mailbox/incoming").is_empty());
}

/// A folder where millrace keeps one of its files (the daemon lock, say) stops every
/// command that writes it; the error's hint points at `doctor`, which names it.
#[test]
fn a_folder_in_the_place_of_a_state_file_is_named_by_doctor() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    std::fs::create_dir_all(ws.rt().join("state/runtime_daemon.lock.yaml")).unwrap();
    let out = ws.run(&["run", "once"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("millrace doctor"), "{stderr}");
    let doctor = ws.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("error: not_a_file millrace-agents/state/runtime_daemon.lock.yaml a file millrace keeps is a folder here"),
        "{text}"
    );
}

/// A replaced task document whose replacement cannot be moved aside (the agent also turned
/// `quarantine/` into a link): the runtime pauses with the original already in `blocked/`;
/// after the link is fixed and the runtime resumed, the block is finished without running
/// the stage again on what the agent left (a wasted session on garbage before).
#[test]
fn an_interrupted_block_of_a_replaced_document_is_finished_without_a_stage() {
    let ws = TestWs::new();
    let elsewhere = tempfile::tempdir().unwrap();
    ws.use_fake_harness(&format!(
        "builder run rm -rf \"$WORKSPACE/millrace-agents/quarantine\"; ln -s {} \"$WORKSPACE/millrace-agents/quarantine\"; printf 'junk\\n' > \"$WORK_ITEM_PATH\"; echo '### BUILDER_COMPLETE'\n",
        elsewhere.path().display()
    ));
    ws.add_task("t-1", "");
    ws.run_until_idle();
    let status = ws.json(&["status"]);
    assert!(
        status["snapshot"]["pause_reason"]
            .as_str()
            .is_some_and(|r| r.contains("quarantine is a symbolic link")),
        "{status}"
    );
    let quarantine = ws.rt().join("quarantine");
    std::fs::remove_file(&quarantine).unwrap();
    std::fs::create_dir(&quarantine).unwrap();
    ws.ok(&["resume"]);
    ws.run_until_idle();
    assert_eq!(ws.folder_of("t-1"), ["tasks/blocked"]);
    assert!(ws
        .read("millrace-agents/tasks/blocked/t-1.md")
        .starts_with(&crate::common::task_doc("t-1", "")));
    assert_eq!(ws.read("millrace-agents/quarantine/t-1.md"), "junk\n");
    assert_eq!(ws.stages_started(), ["builder"], "the stage ran once");
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
}
