//! Lint the shipped stage templates (`templates/entrypoints`, `templates/skills`) with the
//! rules the `doctor` applies (spec 09 §4.4, 10 §8.2) plus a few house rules.
//!
//! Standalone on purpose: reads the files with `std::fs` and uses no crate code, so a broken
//! template is caught even when the asset linter itself changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Spec 05 §1.3: stage, plane, legal terminal results (in canonical order).
const STAGES: &[(&str, &str, &[&str])] = &[
    ("builder", "execution", &["BUILDER_COMPLETE", "BLOCKED"]),
    (
        "checker",
        "execution",
        &["CHECKER_PASS", "FIX_NEEDED", "BLOCKED"],
    ),
    ("fixer", "execution", &["FIXER_COMPLETE", "BLOCKED"]),
    (
        "doublechecker",
        "execution",
        &["DOUBLECHECK_PASS", "FIX_NEEDED", "BLOCKED"],
    ),
    ("updater", "execution", &["UPDATE_COMPLETE", "BLOCKED"]),
    (
        "troubleshooter",
        "execution",
        &["TROUBLESHOOT_COMPLETE", "BLOCKED"],
    ),
    (
        "consultant",
        "execution",
        &["CONSULT_COMPLETE", "NEEDS_PLANNING", "BLOCKED"],
    ),
    ("planner", "planning", &["PLANNER_COMPLETE", "BLOCKED"]),
    ("manager", "planning", &["MANAGER_COMPLETE", "BLOCKED"]),
    ("mechanic", "planning", &["MECHANIC_COMPLETE", "BLOCKED"]),
    ("auditor", "planning", &["AUDITOR_COMPLETE", "BLOCKED"]),
    (
        "arbiter",
        "planning",
        &["ARBITER_COMPLETE", "REMEDIATION_NEEDED", "BLOCKED"],
    ),
];

/// Every terminal result of either plane (spec 05 §1.2).
const ALL_RESULTS: &[&str] = &[
    "BUILDER_COMPLETE",
    "CHECKER_PASS",
    "FIX_NEEDED",
    "FIXER_COMPLETE",
    "DOUBLECHECK_PASS",
    "UPDATE_COMPLETE",
    "TROUBLESHOOT_COMPLETE",
    "CONSULT_COMPLETE",
    "NEEDS_PLANNING",
    "BLOCKED",
    "PLANNER_COMPLETE",
    "MANAGER_COMPLETE",
    "MECHANIC_COMPLETE",
    "AUDITOR_COMPLETE",
    "ARBITER_COMPLETE",
    "REMEDIATION_NEEDED",
];

const FORBIDDEN_CLAIMS: &[&str] = &[
    "queue_selection",
    "routing",
    "retry_thresholds",
    "escalation_policy",
    "status_persistence",
    "terminal_results",
    "required_artifacts",
];

/// Plain substring denylist (lower-cased body); `escalate to` is handled separately.
const DENYLIST: &[&str] = &[
    "select the oldest",
    "pick the next task",
    "write to state/execution_status.md",
    "write to state/planning_status.md",
    "route to",
    "retry up to",
    "you must update the runtime snapshot",
];

const NEGATIONS: &[&str] = &[
    "do not",
    "don't",
    "dont",
    "must not",
    "should not",
    "cannot",
    "can't",
    "can not",
    "never",
    "avoid",
];

const PROHIBITION_HEADERS: &[&str] = &["not allowed", "forbidden", "disallowed", "prohibited"];

const MISSION_LAYOUT: &[&str] = &[
    "Mission",
    "Hard Boundaries",
    "Required Outputs And Evidence",
    "Legal Terminal Results",
    "Escalation Boundary",
    "Minimum Required Context",
    "Useful Context If Helpful",
    "Skills Index Selection",
    "Required Stage-Core Skill",
    "Optional Secondary Skills",
    "Suggested Operating Approach",
];

const WORKFLOW_LAYOUT: &[&str] = &[
    "Purpose",
    "Scope",
    "Inputs (read in order)",
    "Skills Index Selection",
    "Required Stage-Core Skill",
    "Optional Secondary Skills",
    "Suggested Operating Approach",
    "Workflow",
    "Artifact And Reporting Contract",
    "Output Requirements",
    "Completion Signaling",
    "Stop Conditions",
];

const ARBITER_LAYOUT: &[&str] = &[
    "Mission",
    "Hard Boundaries",
    "Inputs (read in order)",
    "Skills Index Selection",
    "Required Stage-Core Skill",
    "Optional Secondary Skills",
    "Suggested Operating Approach",
    "Workflow",
    "Artifact And Reporting Contract",
    "Legal Terminal Results",
    "Stop Conditions",
];

const STAGE_CORE_SECTIONS: &[&str] = &[
    "Purpose",
    "Quick Start",
    "Operating Constraints",
    "Inputs This Skill Expects",
    "Output Contract",
    "Procedure",
    "Pitfalls And Gotchas",
    "Progressive Disclosure",
    "Verification Pattern",
];

const DEFERRED_SKILLS: &[&str] = &[
    "millrace-skill-creator",
    "small-diff-discipline",
    "historylog-entry-high-signal",
    "compose-stack-change-protocol",
    "playwright-ui-verification",
    "frontend-review",
    "codebase-audit-doc",
    "spec-writing-research-core",
    "acceptance-profile-contract",
    "task-card-authoring-repo-exact",
];

// ---------------------------------------------------------------------------------------
// Helpers

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn md_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(templates())
        .unwrap()
        .display()
        .to_string()
}

fn is_stage(name: &str) -> bool {
    STAGES.iter().any(|(s, _, _)| *s == name)
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scalar(String),
    List(Vec<String>),
}

/// The doctor's front-matter mini-format (10 §8.2). Returns (manifest, body).
fn front_matter(text: &str) -> Result<(BTreeMap<String, Value>, String), String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().map(|l| l.trim()) != Some("---") {
        return Err("missing front matter start marker".into());
    }
    let end = lines[1..]
        .iter()
        .position(|l| l.trim() == "---")
        .ok_or("missing front matter end marker")?
        + 1;
    let mut map = BTreeMap::new();
    let mut list_key: Option<String> = None;
    for (n, raw) in lines[1..end].iter().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(item) = line.strip_prefix("- ") {
            let key = list_key
                .clone()
                .ok_or(format!("line {}: list item without key", n + 2))?;
            if let Some(Value::List(items)) = map.get_mut(&key) {
                items.push(unquote(item.trim()));
            }
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or(format!("line {}: missing `:` separator", n + 2))?;
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(format!("line {}: empty key", n + 2));
        }
        let value = value.trim();
        if value.is_empty() {
            map.insert(key.clone(), Value::List(Vec::new()));
            list_key = Some(key);
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items = inner
                .split(',')
                .map(|s| unquote(s.trim()))
                .filter(|s| !s.is_empty())
                .collect();
            map.insert(key, Value::List(items));
            list_key = None;
        } else {
            map.insert(key, Value::Scalar(unquote(value)));
            list_key = None;
        }
    }
    Ok((map, lines[end + 1..].join("\n").trim().to_string()))
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// Lines outside fenced code blocks.
fn prose_lines(body: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

fn h2_headings(body: &str) -> Vec<String> {
    prose_lines(body)
        .iter()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_string())
        .collect()
}

/// The lines of a `## <name>` section (case-insensitive), up to the next `## ` line.
fn section<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim().eq_ignore_ascii_case(name);
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    out
}

/// Skill bullets: `- ` followed by a backticked id `[a-z0-9][a-z0-9-]*`.
fn skill_bullets<'a>(lines: &[&'a str]) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    for line in lines {
        let Some(rest) = line.trim_start().strip_prefix("- `") else {
            continue;
        };
        let Some(end) = rest.find('`') else { continue };
        let id = &rest[..end];
        let valid = !id.is_empty()
            && id.chars().next().unwrap().is_ascii_alphanumeric()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            out.push((id.to_string(), *line));
        }
    }
    out
}

/// Tokens mentioned as `` `### TOKEN` `` inline or as a bare `### TOKEN` line.
fn marker_tokens(body: &str) -> BTreeSet<String> {
    let is_token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let mut out = BTreeSet::new();
    for line in body.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("`### ") {
            let after = &rest[i + 5..];
            if let Some(end) = after.find('`') {
                let tok = after[..end].trim();
                if is_token(tok) {
                    out.insert(tok.to_string());
                }
            }
            rest = &rest[i + 5..];
        }
        if let Some(tok) = line.trim().strip_prefix("###") {
            if tok.starts_with(char::is_whitespace) && is_token(tok.trim()) {
                out.insert(tok.trim().to_string());
            }
        }
    }
    out
}

/// Terminal-result words anywhere in the text (word-bounded, case-sensitive).
fn result_words(text: &str) -> BTreeSet<&'static str> {
    let word = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_';
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    for tok in ALL_RESULTS {
        let mut from = 0;
        while let Some(i) = text[from..].find(tok) {
            let start = from + i;
            let end = start + tok.len();
            let before_ok = start == 0 || !word(bytes[start - 1]);
            let after_ok = end == bytes.len() || !word(bytes[end]);
            if before_ok && after_ok {
                out.insert(*tok);
            }
            from = end;
        }
    }
    out
}

fn contains_word(haystack: &str, needle: &str) -> bool {
    let bytes = haystack.as_bytes();
    let mut from = 0;
    while let Some(i) = haystack[from..].find(needle) {
        let start = from + i;
        let end = start + needle.len();
        let before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before && after {
            return true;
        }
        from = end;
    }
    false
}

/// Policy findings for a body, per the doctor's denylist (10 §8.2).
fn policy_findings(body: &str) -> Vec<String> {
    let lower = body.to_lowercase();
    let mut out: Vec<String> = DENYLIST
        .iter()
        .filter(|p| lower.contains(*p))
        .map(|p| format!("denylisted phrase `{p}`"))
        .collect();
    let lines: Vec<&str> = lower.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let mut from = 0;
        while let Some(i) = line[from..].find("escalate to") {
            let at = from + i;
            let negated = NEGATIONS.iter().any(|neg| contains_word(&line[..at], neg));
            let prev = lines[..n].iter().rev().find(|l| !l.trim().is_empty());
            let under_header = prev.is_some_and(|p| {
                let p = p.trim().trim_end_matches(':').trim();
                PROHIBITION_HEADERS.contains(&p)
            });
            if !negated && !under_header {
                out.push(format!("line {}: un-negated `escalate to`", n + 1));
            }
            from = at + 1;
        }
    }
    out
}

struct Skill {
    path: PathBuf,
    id: String,
    manifest: BTreeMap<String, Value>,
    body: String,
}

fn skills() -> Vec<Skill> {
    md_files(&templates().join("skills"))
        .into_iter()
        .map(|path| {
            let text = read(&path);
            let (manifest, body) =
                front_matter(&text).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
            let id = match manifest.get("asset_id") {
                Some(Value::Scalar(s)) => s.clone(),
                _ => panic!("{}: asset_id missing or not a scalar", rel(&path)),
            };
            Skill {
                path,
                id,
                manifest,
                body,
            }
        })
        .collect()
}

fn skill_ids() -> BTreeSet<String> {
    skills().into_iter().map(|s| s.id).collect()
}

fn entrypoint_path(stage: &str, plane: &str) -> PathBuf {
    templates()
        .join("entrypoints")
        .join(plane)
        .join(format!("{stage}.md"))
}

fn title_case(stage: &str) -> String {
    let mut c = stage.chars();
    c.next().unwrap().to_uppercase().collect::<String>() + c.as_str()
}

// ---------------------------------------------------------------------------------------
// Entrypoints

#[test]
fn entrypoint_set_is_exactly_the_twelve_stages() {
    let found: BTreeSet<String> = md_files(&templates().join("entrypoints"))
        .iter()
        .map(|p| rel(p))
        .collect();
    let expected: BTreeSet<String> = STAGES
        .iter()
        .map(|(s, p, _)| format!("entrypoints/{p}/{s}.md"))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn entrypoints_follow_structure_and_result_rules() {
    let known = skill_ids();
    let mut problems = Vec::new();
    for (stage, plane, legal_set) in STAGES {
        let path = entrypoint_path(stage, plane);
        let text = read(&path);
        let name = rel(&path);
        let mut bad = |msg: String| problems.push(format!("{name}: {msg}"));

        if text.starts_with("---") {
            bad("entrypoints carry no front matter".into());
        }
        let first = text.lines().next().unwrap_or("");
        if first != format!("# {} Entry Instructions", title_case(stage)) {
            bad(format!(
                "H1 should be `# {} Entry Instructions`, found `{first}`",
                title_case(stage)
            ));
        }
        let lines = text.lines().count();
        if !(70..=175).contains(&lines) {
            bad(format!("{lines} lines; aim for about 80-160"));
        }

        // Section layout (09 §4.2).
        let layout = match *stage {
            "checker" | "doublechecker" | "updater" | "auditor" => WORKFLOW_LAYOUT,
            "arbiter" => ARBITER_LAYOUT,
            _ => MISSION_LAYOUT,
        };
        let h2 = h2_headings(&text);
        if h2 != layout {
            bad(format!("H2 sections {h2:?}, expected {layout:?}"));
        }

        // Legal results: marker forms exactly the legal set, and no other result word at all.
        let legal: BTreeSet<String> = legal_set.iter().map(|s| s.to_string()).collect();
        let markers = marker_tokens(&text);
        if markers != legal {
            bad(format!("marker tokens {markers:?}, expected {legal:?}"));
        }
        let words: BTreeSet<String> = result_words(&text).into_iter().map(String::from).collect();
        let foreign: Vec<_> = words.difference(&legal).collect();
        if !foreign.is_empty() {
            bad(format!("mentions other stages' results {foreign:?}"));
        }

        // Skills sections (09 §4.3 rule 1).
        let required = skill_bullets(&section(&text, "Required Stage-Core Skill"));
        if required.len() != 1 {
            bad(format!(
                "{} required skill bullets, expected exactly one",
                required.len()
            ));
        } else {
            let (id, line) = &required[0];
            if *id != format!("{stage}-core") {
                bad(format!("required skill `{id}`, expected `{stage}-core`"));
            }
            if !known.contains(id) {
                bad(format!("required skill `{id}` does not exist"));
            }
            if !line.contains(&format!("`{id}`: ")) {
                bad("required skill bullet should read ``- `<stage>-core`: description``".into());
            }
        }
        for (id, line) in skill_bullets(&section(&text, "Optional Secondary Skills")) {
            let deferred = line.to_lowercase().contains("deferred");
            if !known.contains(&id) && !deferred {
                bad(format!(
                    "optional skill `{id}` is neither shipped nor marked deferred"
                ));
            }
            if known.contains(&id) && deferred {
                bad(format!(
                    "optional skill `{id}` is shipped but marked deferred"
                ));
            }
            if deferred && !DEFERRED_SKILLS.contains(&id.as_str()) {
                bad(format!(
                    "deferred skill `{id}` is not listed in the index's deferred set"
                ));
            }
        }
        let selection = section(&text, "Skills Index Selection").join("\n");
        for needle in [
            "millrace-agents/skills/skills_index.md",
            "required_skill_paths",
            "two",
        ] {
            if !selection.contains(needle) {
                bad(format!("Skills Index Selection should mention `{needle}`"));
            }
        }

        // Request fields, ownership, history, stop (09 §4.3 rules 3-5).
        let mut must = vec![
            "run_dir",
            "millrace-agents/historylog.md",
            "Runtime-owned",
            "very last line",
            "then stop",
        ];
        if *stage == "arbiter" {
            must.extend([
                "closure_target_path",
                "canonical_root_spec_path",
                "canonical_seed_idea_path",
                "preferred_rubric_path",
                "preferred_verdict_path",
                "preferred_report_path",
            ]);
            if text.contains("active_work_item_path") {
                bad("the arbiter must not mention active_work_item_path".into());
            }
        } else {
            must.push("active_work_item_path");
        }
        if matches!(*stage, "troubleshooter" | "mechanic") {
            must.extend([
                "runtime_error_code",
                "runtime_error_report_path",
                "runtime_error_catalog_path",
            ]);
        }
        if *stage == "troubleshooter" {
            must.push("preferred_troubleshoot_report_path");
        }
        for needle in must {
            if !text.contains(needle) {
                bad(format!("should mention `{needle}`"));
            }
        }
        for p in policy_findings(&text) {
            bad(p);
        }
    }
    assert!(
        problems.is_empty(),
        "entrypoint problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn consultant_and_arbiter_leave_incident_creation_to_the_runtime() {
    for (stage, plane) in [("consultant", "execution"), ("arbiter", "planning")] {
        let text = read(&entrypoint_path(stage, plane));
        assert!(
            !text.contains("incidents/incoming/"),
            "{stage} must not be told to write an incident file"
        );
    }
}

#[test]
fn machine_files_are_yaml() {
    for path in md_files(&templates()) {
        let text = read(&path);
        for old in [
            "runtime_snapshot.json",
            "recovery_counters.json",
            "millrace.toml",
            "verdicts/<ROOT_SPEC_ID>.json",
        ] {
            assert!(
                !text.contains(old),
                "{}: mentions `{old}`; the Rust files are YAML",
                rel(&path)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Example work documents in the planner and manager entrypoints (spec 02)

struct Kind {
    id_label: &'static str,
    scalars: &'static [&'static str],
    lists: &'static [&'static str],
    required_scalars: &'static [&'static str],
    required_lists: &'static [&'static str],
    datetimes: &'static [&'static str],
}

const SPEC: Kind = Kind {
    id_label: "Spec-ID",
    scalars: &[
        "Spec-ID",
        "Title",
        "Summary",
        "Source-Type",
        "Source-ID",
        "Parent-Spec-ID",
        "Root-Idea-ID",
        "Root-Spec-ID",
        "Created-At",
        "Created-By",
        "Updated-At",
    ],
    lists: &[
        "Goals",
        "Non-Goals",
        "Scope",
        "Constraints",
        "Assumptions",
        "Risks",
        "Target-Paths",
        "Entrypoints",
        "Required-Skills",
        "Decomposition-Hints",
        "Acceptance",
        "References",
    ],
    required_scalars: &[
        "Spec-ID",
        "Title",
        "Summary",
        "Source-Type",
        "Created-At",
        "Created-By",
    ],
    required_lists: &["Goals", "Constraints", "Acceptance", "References"],
    datetimes: &["Created-At", "Updated-At"],
};

const TASK: Kind = Kind {
    id_label: "Task-ID",
    scalars: &[
        "Task-ID",
        "Title",
        "Summary",
        "Root-Idea-ID",
        "Root-Spec-ID",
        "Spec-ID",
        "Parent-Task-ID",
        "Incident-ID",
        "Status-Hint",
        "Created-At",
        "Created-By",
        "Updated-At",
    ],
    lists: &[
        "Depends-On",
        "Blocks",
        "Tags",
        "Target-Paths",
        "Acceptance",
        "Required-Checks",
        "References",
        "Risk",
    ],
    required_scalars: &["Task-ID", "Title", "Created-At", "Created-By"],
    required_lists: &[
        "Target-Paths",
        "Acceptance",
        "Required-Checks",
        "References",
        "Risk",
    ],
    datetimes: &["Created-At", "Updated-At"],
};

fn is_utc_datetime(s: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SSZ
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
}

/// The first ```markdown block and the file name given in the line introducing it.
fn example_document(text: &str) -> (String, String) {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "```markdown")
        .expect("an example document in a ```markdown block");
    let intro = lines[..start]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a line introducing the example");
    let path = intro
        .split('`')
        .nth(1)
        .expect("the example's path in backticks before the block")
        .to_string();
    let end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| l.trim() == "```")
            .unwrap();
    (path, lines[start + 1..end].join("\n") + "\n")
}

/// A minimal version of the spec 02 §3 parse, enough to catch template mistakes.
fn check_document(doc: &str, kind: &Kind) -> Result<BTreeMap<String, Value>, String> {
    let lines: Vec<&str> = doc.lines().collect();
    let title = lines
        .first()
        .and_then(|l| l.strip_prefix("# "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("first line must be `# <title>`")?;
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut i = 1;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let is_label = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !is_label || line.starts_with("- ") {
            continue;
        }
        if !kind.scalars.contains(&label) && !kind.lists.contains(&label) {
            return Err(format!("label `{label}` does not belong to this kind"));
        }
        if fields.contains_key(label) {
            return Err(format!("repeats field `{label}`"));
        }
        let value = value.trim();
        if kind.scalars.contains(&label) {
            if value.is_empty() {
                return Err(format!("scalar `{label}` has no inline value"));
            }
            fields.insert(label.to_string(), Value::Scalar(value.to_string()));
        } else {
            if !value.is_empty() {
                return Err(format!("list `{label}` has an inline value"));
            }
            let mut items = Vec::new();
            while i < lines.len() {
                let l = lines[i].trim();
                if let Some(item) = l.strip_prefix("- ") {
                    items.push(item.trim().to_string());
                    i += 1;
                } else if l.is_empty() && items.is_empty() {
                    i += 1;
                } else if l.is_empty() || l.contains(':') {
                    break;
                } else {
                    return Err(format!("invalid list item under `{label}`: `{l}`"));
                }
            }
            fields.insert(label.to_string(), Value::List(items));
        }
    }
    match fields.get("Title") {
        Some(Value::Scalar(t)) if t == title => {}
        other => {
            return Err(format!(
                "`Title:` must equal the H1 `{title}`, found {other:?}"
            ))
        }
    }
    for label in kind.required_scalars {
        if !fields.contains_key(*label) {
            return Err(format!("missing required field `{label}`"));
        }
    }
    for label in kind.required_lists {
        match fields.get(*label) {
            Some(Value::List(items)) if !items.is_empty() => {}
            _ => return Err(format!("required list `{label}` needs at least one item")),
        }
    }
    for label in kind.datetimes {
        if let Some(Value::Scalar(v)) = fields.get(*label) {
            if !is_utc_datetime(v) {
                return Err(format!("`{label}: {v}` is not like 2026-03-01T10:00:00Z"));
            }
        }
    }
    for label in [
        "Task-ID",
        "Spec-ID",
        "Root-Idea-ID",
        "Root-Spec-ID",
        "Source-ID",
        "Parent-Spec-ID",
        "Incident-ID",
    ] {
        if let Some(Value::Scalar(v)) = fields.get(label) {
            if !is_identifier(v) {
                return Err(format!("`{label}: {v}` is not a valid identifier"));
            }
        }
    }
    // Canonical scalar order (02 §9).
    let order: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .filter(|k| kind.scalars.contains(k) || kind.lists.contains(k))
        .collect();
    let canonical: Vec<&str> = kind
        .scalars
        .iter()
        .chain(kind.lists.iter())
        .copied()
        .filter(|l| order.contains(l))
        .collect();
    if order != canonical {
        return Err(format!("fields out of canonical order: {order:?}"));
    }
    Ok(fields)
}

fn scalar<'a>(fields: &'a BTreeMap<String, Value>, label: &str) -> Option<&'a str> {
    match fields.get(label) {
        Some(Value::Scalar(s)) => Some(s),
        _ => None,
    }
}

#[test]
fn planner_example_is_a_valid_spec() {
    let text = read(&entrypoint_path("planner", "planning"));
    let (path, doc) = example_document(&text);
    let fields = check_document(&doc, &SPEC).unwrap_or_else(|e| panic!("planner example: {e}"));
    let id = scalar(&fields, SPEC.id_label).unwrap();
    assert_eq!(
        path,
        format!("millrace-agents/specs/queue/{id}.md"),
        "file stem must equal Spec-ID"
    );
    assert!(scalar(&fields, "Root-Idea-ID").is_some() && scalar(&fields, "Root-Spec-ID").is_some());
    assert!(matches!(
        scalar(&fields, "Source-Type"),
        Some("idea" | "incident" | "manual" | "derived_spec")
    ));
    assert_eq!(scalar(&fields, "Created-By"), Some("planner"));
}

#[test]
fn manager_example_is_a_valid_task() {
    let text = read(&entrypoint_path("manager", "planning"));
    let (path, doc) = example_document(&text);
    let fields = check_document(&doc, &TASK).unwrap_or_else(|e| panic!("manager example: {e}"));
    let id = scalar(&fields, TASK.id_label).unwrap();
    assert_eq!(
        path,
        format!("millrace-agents/tasks/queue/{id}.md"),
        "file stem must equal Task-ID"
    );
    assert!(scalar(&fields, "Root-Idea-ID").is_some() && scalar(&fields, "Root-Spec-ID").is_some());
    assert_eq!(scalar(&fields, "Status-Hint"), Some("queued"));
    assert_eq!(scalar(&fields, "Created-By"), Some("manager"));
    assert!(
        text.contains("incident"),
        "the manager must say what to do with an active incident"
    );
}

#[test]
fn document_checker_rejects_broken_examples() {
    let good = "# A\n\nTask-ID: t1\nTitle: A\nCreated-At: 2026-03-01T10:00:00Z\nCreated-By: manager\n\nTarget-Paths:\n- a\n\nAcceptance:\n- a\n\nRequired-Checks:\n- a\n\nReferences:\n- a\n\nRisk:\n- a\n";
    check_document(good, &TASK).unwrap();
    for (from, to) in [
        ("Title: A", "Title: B"),
        ("Risk:\n- a", "Risk:"),
        ("2026-03-01T10:00:00Z", "20260301T100000Z"),
        (
            "Created-By: manager\n",
            "Created-By: manager\nGoals:\n- x\n",
        ),
        ("Task-ID: t1", "Task-ID: -t1"),
    ] {
        let bad = good.replace(from, to);
        assert!(
            check_document(&bad, &TASK).is_err(),
            "should reject: {from:?} -> {to:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Skills

#[test]
fn skills_have_valid_front_matter_and_unique_ids() {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for skill in skills() {
        let name = rel(&skill.path);
        let mut bad = |msg: String| problems.push(format!("{name}: {msg}"));
        if !seen.insert(skill.id.clone()) {
            bad(format!("duplicate asset_id `{}`", skill.id));
        }
        for key in [
            "asset_type",
            "asset_id",
            "version",
            "description",
            "advisory_only",
            "capability_type",
            "forbidden_claims",
        ] {
            if !skill.manifest.contains_key(key) {
                bad(format!("missing `{key}`"));
            }
        }
        if skill.manifest.get("asset_type") != Some(&Value::Scalar("skill".into())) {
            bad("asset_type must be `skill`".into());
        }
        if skill.manifest.get("advisory_only") != Some(&Value::Scalar("true".into())) {
            bad("advisory_only must be true".into());
        }
        if let Some(Value::Scalar(d)) = skill.manifest.get("description") {
            if d.contains(": ") || d.contains(" #") {
                bad("description must stay a plain YAML scalar (no `: ` or ` #`)".into());
            }
        }
        match skill.manifest.get("forbidden_claims") {
            Some(Value::List(claims)) => {
                for c in FORBIDDEN_CLAIMS {
                    if !claims.iter().any(|x| x == c) {
                        bad(format!("forbidden_claims lacks `{c}`"));
                    }
                }
            }
            _ => bad("forbidden_claims must be a non-empty list".into()),
        }
        match skill.manifest.get("recommended_for_stages") {
            Some(Value::List(stages)) if !stages.is_empty() => {
                for s in stages {
                    if !is_stage(s) {
                        bad(format!("recommended_for_stages names unknown stage `{s}`"));
                    }
                }
            }
            _ => bad("recommended_for_stages must be a non-empty list".into()),
        }
        for key in [
            "required_result_set",
            "contract_id",
            "contract_compatibility",
        ] {
            if skill.manifest.contains_key(key) {
                bad(format!("advisory asset must not declare `{key}`"));
            }
        }
        if skill.body.is_empty() {
            bad("empty body".into());
        }
        let words = result_words(&skill.body);
        if !words.is_empty() || !marker_tokens(&skill.body).is_empty() {
            bad(format!(
                "skills must not mention terminal results: {words:?}"
            ));
        }
        for p in policy_findings(&skill.body) {
            bad(p);
        }
    }
    assert!(
        problems.is_empty(),
        "skill problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn stage_core_skills_exist_with_the_nine_sections() {
    let mut problems = Vec::new();
    for (stage, plane, _) in STAGES {
        let path = templates().join(format!("skills/stage/{plane}/{stage}-core/SKILL.md"));
        let text = read(&path);
        let (manifest, body) = front_matter(&text).unwrap();
        let mut bad = |msg: String| problems.push(format!("{}: {msg}", rel(&path)));
        if manifest.get("asset_id") != Some(&Value::Scalar(format!("{stage}-core"))) {
            bad("asset_id must be `<stage>-core`".into());
        }
        if manifest.get("capability_type") != Some(&Value::Scalar("stage_core".into())) {
            bad("capability_type must be stage_core".into());
        }
        if manifest.get("recommended_for_stages") != Some(&Value::List(vec![stage.to_string()])) {
            bad(format!("recommended_for_stages must be [{stage}]"));
        }
        let h1 = body.lines().next().unwrap_or("");
        if h1 != format!("# {} Core", title_case(stage)) {
            bad(format!(
                "H1 should be `# {} Core`, found `{h1}`",
                title_case(stage)
            ));
        }
        if h2_headings(&body) != STAGE_CORE_SECTIONS {
            bad(format!("sections {:?}", h2_headings(&body)));
        }
        let lines = text.lines().count();
        if !(40..=100).contains(&lines) {
            bad(format!("{lines} lines; aim for 40-90"));
        }
    }
    assert!(
        problems.is_empty(),
        "stage-core problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn skills_index_lists_every_skill_and_the_deferred_set() {
    let text = read(&templates().join("skills/skills_index.md"));
    let (manifest, body) = front_matter(&text).unwrap();
    assert_eq!(
        manifest.get("asset_id"),
        Some(&Value::Scalar("skills-index".into()))
    );
    assert_eq!(
        h2_headings(&body),
        ["Stage-Core Skills", "Shared And Deferred Skills"]
    );
    let header = "| Skill | Description | Tags | Path | Status |";
    assert_eq!(
        body.matches(header).count(),
        2,
        "two tables with the standard header"
    );

    let rows: BTreeMap<String, (String, String)> = body
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let id = cells[1].trim_matches('`').to_string();
            let path = cells[4].trim_matches('`').to_string();
            (id, (path, cells[5].to_string()))
        })
        .collect();
    for skill in skills() {
        if skill.id == "skills-index" {
            continue;
        }
        let (path, status) = rows
            .get(&skill.id)
            .unwrap_or_else(|| panic!("index lacks `{}`", skill.id));
        assert_eq!(status, "shipped", "`{}`", skill.id);
        let expected = skill
            .path
            .strip_prefix(templates())
            .unwrap()
            .display()
            .to_string();
        assert_eq!(path, &expected, "index path of `{}`", skill.id);
    }
    for id in DEFERRED_SKILLS {
        let (path, status) = rows
            .get(*id)
            .unwrap_or_else(|| panic!("index lacks deferred `{id}`"));
        assert_eq!(status, "deferred (not shipped)", "`{id}`");
        assert!(
            !templates().join(path).exists(),
            "deferred `{id}` must not exist"
        );
    }
    assert_eq!(
        rows.len(),
        skills().len() - 1 + DEFERRED_SKILLS.len(),
        "no stray rows"
    );
}

#[test]
fn ops_skill_states_the_exit_codes_and_core_commands() {
    let text = read(&templates().join("skills/millrace-ops/SKILL.md"));
    let (manifest, _) = front_matter(&text).unwrap();
    assert_eq!(
        manifest.get("capability_type"),
        Some(&Value::Scalar("operations".into()))
    );
    for needle in [
        "millrace-agents/tasks/queue/",
        "millrace-agents/specs/queue/",
        "millrace-agents/ideas/inbox/",
        "millrace-agents/ideas/tmp/",
        "millrace-agents/state/mailbox/incoming/",
        "millrace-agents/quarantine/",
        ".error.yaml",
        "command: pause",
        "--print",
        "millrace status --json",
        "millrace doctor",
        "retry-active --reason R",
        "clear-stale-state --reason R",
        "reload-config",
        "0 ok; 1 failed; 2 usage error; 3 no workspace here; 4 workspace locked by another daemon;",
        "5 control command not applied; 6 `doctor` found problems; 70 a failed fsync",
    ] {
        assert!(
            text.contains(needle),
            "millrace-ops should mention `{needle}`"
        );
    }
}

#[test]
fn policy_checker_honours_negation() {
    assert!(policy_findings("Never escalate to the planner.").is_empty());
    assert!(policy_findings("Not allowed:\n- escalate to planning").is_empty());
    assert_eq!(policy_findings("Then escalate to planning.").len(), 1);
    assert_eq!(policy_findings("We route to the fixer.").len(), 1);
}
