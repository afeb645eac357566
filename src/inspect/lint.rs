//! Asset lint (spec 10 §8.2): the rules `doctor` applies to the deployed entrypoints and
//! skills, so an edited prompt that would confuse a stage is caught before a daemon runs it.
//!
//! The workspace copies are linted, not the embedded templates: they are what stages read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{Plane, Stage};

/// How serious a lint finding is; structural and compatibility findings are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LintLevel {
    Structural,
    Compatibility,
    Policy,
}

impl LintLevel {
    /// The doctor code for a finding of this level.
    pub fn code(self) -> &'static str {
        match self {
            LintLevel::Structural => "asset_lint_structural",
            LintLevel::Compatibility => "asset_lint_compatibility",
            LintLevel::Policy => "asset_lint_policy",
        }
    }
}

/// One broken rule in one asset file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    pub level: LintLevel,
    pub path: PathBuf,
    pub asset_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn display(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::List(items) => format!("[{}]", items.join(", ")),
        }
    }

    /// A list with at least one item and no empty strings.
    fn non_empty_list(&self) -> Option<&[String]> {
        match self {
            Value::List(items) if !items.is_empty() && items.iter().all(|i| !i.is_empty()) => {
                Some(items)
            }
            _ => None,
        }
    }
}

type Manifest = BTreeMap<String, Value>;

struct Asset {
    path: PathBuf,
    rel: String,
    stem: String,
    manifest: Manifest,
    body: String,
}

impl Asset {
    fn id(&self) -> String {
        self.manifest
            .get("asset_id")
            .map(Value::display)
            .unwrap_or_else(|| self.stem.clone())
    }
}

const SEAM_CLAIMS: &[&str] = &[
    "queue_selection",
    "routing",
    "retry_thresholds",
    "escalation_policy",
    "status_persistence",
    "terminal_results",
    "required_artifacts",
];

const OWNERSHIP_PHRASES: &[(&str, &str)] = &[
    (
        "select the oldest",
        "asset body claims queue selection ownership",
    ),
    (
        "pick the next task",
        "asset body claims queue selection ownership",
    ),
    (
        "write to state/execution_status.md",
        "asset body claims canonical execution status persistence",
    ),
    (
        "write to state/planning_status.md",
        "asset body claims canonical planning status persistence",
    ),
    ("route to", "asset body claims stage routing ownership"),
    ("retry up to", "asset body claims retry-threshold ownership"),
    (
        "you must update the runtime snapshot",
        "asset body claims runtime snapshot ownership",
    ),
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

fn scalar(raw: &str) -> Value {
    let lower = raw.to_ascii_lowercase();
    if lower == "true" || lower == "false" {
        return Value::Bool(lower == "true");
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Value::List(
            inner
                .split(',')
                .map(|s| unquote(s.trim()))
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    let quoted = raw.len() >= 2
        && (raw.starts_with('"') || raw.starts_with('\''))
        && raw.ends_with(&raw[..1]);
    if quoted {
        return Value::Str(raw[1..raw.len() - 1].to_string());
    }
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = raw.parse() {
            return Value::Int(n);
        }
    }
    Value::Str(raw.to_string())
}

fn unquote(s: &str) -> String {
    match scalar(s) {
        Value::Str(v) => v,
        other => other.display(),
    }
}

/// Parse the manifest lines; `first_line` is the 1-based line number of `lines[0]`.
fn parse_manifest(file: &str, lines: &[&str], first_line: usize) -> Result<Manifest, String> {
    let mut map = Manifest::new();
    let mut list_key: Option<String> = None;
    let mut any_key = false;
    for (i, raw) in lines.iter().enumerate() {
        let at = first_line + i;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(item) = line.strip_prefix("- ").or((line == "-").then_some("")) {
            let problem = if any_key {
                "list key malformed"
            } else {
                "list item without key"
            };
            let key = list_key
                .as_ref()
                .ok_or_else(|| format!("frontmatter parse error in {file}:{at} ({problem})"))?;
            if let Some(Value::List(items)) = map.get_mut(key) {
                items.push(unquote(item.trim()));
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "frontmatter parse error in {file}:{at} (missing `:` separator)"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!(
                "frontmatter parse error in {file}:{at} (empty key)"
            ));
        }
        any_key = true;
        let value = value.trim();
        if value.is_empty() {
            map.insert(key.to_string(), Value::List(Vec::new()));
            list_key = Some(key.to_string());
        } else {
            map.insert(key.to_string(), scalar(value));
            list_key = None;
        }
    }
    Ok(map)
}

/// The plane folder of an entrypoint path (`entrypoints/<plane>/<file>`), if it has one.
fn path_plane(rel: &str) -> Option<&str> {
    let mut parts = rel.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("entrypoints"), Some(p @ ("execution" | "planning")), Some(_), None) => Some(p),
        _ => None,
    }
}

fn parse_asset(path: &Path, rel: &str) -> Result<Asset, String> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = crate::workspace::atomic::read_regular_string(path)
        .map_err(|e| format!("cannot read file: {e}"))?;
    let lines: Vec<&str> = text.lines().collect();
    let (manifest, body) = if lines.first().map(|l| l.trim()) == Some("---") {
        let end = lines[1..]
            .iter()
            .position(|l| l.trim() == "---")
            .ok_or("asset file is missing YAML frontmatter end marker")?
            + 1;
        let manifest = parse_manifest(rel, &lines[1..end], 2)?;
        (manifest, lines[end + 1..].join("\n").trim().to_string())
    } else if let Some(plane) = path_plane(rel) {
        let mut manifest = Manifest::new();
        manifest.insert("asset_type".into(), Value::Str("entrypoint".into()));
        manifest.insert("plane".into(), Value::Str(plane.into()));
        if stem.parse::<Stage>().is_ok() {
            manifest.insert("stage".into(), Value::Str(stem.clone()));
        }
        (manifest, text.trim().to_string())
    } else {
        return Err("asset file is missing YAML frontmatter start marker".into());
    };
    Ok(Asset {
        path: path.to_path_buf(),
        rel: rel.to_string(),
        stem,
        manifest,
        body,
    })
}

fn md_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

fn has_word(haystack: &str, needle: &str) -> bool {
    let bytes = haystack.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'\'';
    haystack.match_indices(needle).any(|(start, _)| {
        let end = start + needle.len();
        (start == 0 || !word(bytes[start - 1])) && (end == bytes.len() || !word(bytes[end]))
    })
}

/// Whether some `escalate to` in the body is not negated (spec 10 §8.2).
fn claims_escalation(body: &str) -> bool {
    let mut previous = "";
    for line in body.lines() {
        let lower = line.to_lowercase();
        if let Some(at) = lower.find("escalate to") {
            let before = &lower[..at];
            let negated = NEGATIONS.iter().any(|n| has_word(before, n));
            let header = previous
                .trim()
                .trim_start_matches('#')
                .trim()
                .trim_end_matches(':')
                .trim()
                .to_lowercase();
            if !negated && !PROHIBITION_HEADERS.contains(&header.as_str()) {
                return true;
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    false
}

/// Skill ids listed in a `## <section>` (case-insensitive header) as `` - `id` `` lines.
fn section_skills<'a>(body: &'a str, section: &str) -> Vec<(String, &'a str)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in body.lines() {
        if let Some(header) = line.strip_prefix("## ") {
            inside = header.trim().eq_ignore_ascii_case(section);
            continue;
        }
        if !inside {
            continue;
        }
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let Some(end) = rest.find('`') else { continue };
        let id = &rest[..end];
        let valid = id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            out.push((id.to_string(), line));
        }
    }
    out
}

struct Linter<'a> {
    asset: &'a Asset,
    out: Vec<LintFinding>,
}

impl Linter<'_> {
    fn push(&mut self, level: LintLevel, reason: impl Into<String>) {
        self.out.push(LintFinding {
            level,
            path: self.asset.path.clone(),
            asset_id: self.asset.id(),
            reason: reason.into(),
        });
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.asset.manifest.get(key)
    }

    fn entrypoint(&mut self, skills: &BTreeSet<String>) {
        use LintLevel::*;
        let rel = self.asset.rel.clone();
        let folder_plane = path_plane(&rel);
        if folder_plane.is_none() {
            self.push(
                Structural,
                "entrypoint path must live under entrypoints/execution|planning",
            );
        }
        let file_stage = self.asset.stem.parse::<Stage>().ok();
        if file_stage.is_none() {
            self.push(
                Structural,
                "entrypoint filename must match a known stage name",
            );
        }
        let plane = self.get("plane").map(Value::display);
        let known_plane = plane.as_deref().and_then(|p| match p {
            "execution" => Some(Plane::Execution),
            "planning" => Some(Plane::Planning),
            _ => None,
        });
        if let (Some(p), None) = (&plane, known_plane) {
            self.push(Structural, format!("unknown plane: {p}"));
        }
        if self.get("advisory_only") == Some(&Value::Bool(true)) {
            self.push(Structural, "entrypoint must declare advisory_only: false");
        }
        for key in ["contract_compatibility", "required_result_set"] {
            if self.get(key).is_some_and(|v| v.non_empty_list().is_none()) {
                self.push(
                    Structural,
                    format!("entrypoint {key} must be a non-empty list"),
                );
            }
        }
        if self.asset.body.is_empty() {
            self.push(Structural, "entrypoint body must not be empty");
        }
        let body = self.asset.body.clone();
        let required = section_skills(&body, "Required Stage-Core Skill");
        if required.len() != 1 {
            self.push(
                Structural,
                "entrypoint must declare exactly one required stage-core skill",
            );
        }
        for (id, _) in &required {
            if !skills.contains(id) {
                self.push(
                    Structural,
                    format!(
                        "entrypoint references unknown skill `{id}` in `Required Stage-Core Skill`"
                    ),
                );
            }
        }
        for (id, line) in section_skills(&body, "Optional Secondary Skills") {
            if !skills.contains(&id) && !line.to_lowercase().contains("deferred") {
                self.push(
                    Structural,
                    format!(
                        "entrypoint references unknown skill `{id}` in `Optional Secondary Skills`"
                    ),
                );
            }
        }
        let stage = self
            .get("stage")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Stage>().ok());
        if let (Some(stage), Some(p)) = (stage, known_plane) {
            if stage.plane() != p {
                self.push(
                    Compatibility,
                    format!(
                        "entrypoint stage `{stage}` expects plane `{}`, got `{p}`",
                        stage.plane()
                    ),
                );
            }
        }
        if let (Some(folder), Some(p)) = (folder_plane, plane.as_deref()) {
            if folder != p {
                self.push(
                    Compatibility,
                    format!("entrypoint path plane `{folder}` does not match manifest plane `{p}`"),
                );
            }
        }
        if let (Some(file), Some(declared)) = (file_stage, self.get("stage").map(Value::display)) {
            if file.as_str() != declared {
                self.push(
                    Compatibility,
                    format!(
                        "entrypoint path stage `{file}` does not match manifest stage `{declared}`"
                    ),
                );
            }
        }
        if let (Some(stage), Some(list)) = (stage, self.get("contract_compatibility")) {
            let canonical = format!("{stage}.v1");
            if list
                .non_empty_list()
                .is_some_and(|l| !l.contains(&canonical))
            {
                self.push(
                    Compatibility,
                    format!(
                        "entrypoint contract_compatibility is missing canonical id `{canonical}`"
                    ),
                );
            }
        }
    }

    fn skill(&mut self) {
        use LintLevel::*;
        for field in ["asset_type", "asset_id", "version", "description"] {
            if self.get(field).is_none() {
                self.push(Structural, format!("missing required field: {field}"));
            }
        }
        for field in ["advisory_only", "capability_type", "forbidden_claims"] {
            if self.get(field).is_none() {
                self.push(Structural, format!("skill missing required field: {field}"));
            }
        }
        if self.get("advisory_only") == Some(&Value::Bool(false)) {
            self.push(Structural, "skills must declare advisory_only: true");
        }
        if let Some(Value::List(stages)) = self.get("recommended_for_stages").cloned() {
            for s in stages {
                if s.parse::<Stage>().is_err() {
                    self.push(
                        Structural,
                        format!("recommended_for_stages references unknown stage: {s}"),
                    );
                }
            }
        }
        match self
            .get("forbidden_claims")
            .map(|v| v.non_empty_list().map(<[String]>::to_vec))
        {
            Some(None) => self.push(Structural, "skills must declare non-empty forbidden_claims"),
            Some(Some(claims)) => {
                let missing: Vec<&str> = SEAM_CLAIMS
                    .iter()
                    .copied()
                    .filter(|c| !claims.iter().any(|have| have == c))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if !missing.is_empty() {
                    self.push(
                        Policy,
                        format!(
                            "advisory asset forbidden_claims is missing seam-boundary claims: {}",
                            missing.join(", ")
                        ),
                    );
                }
            }
            None => {}
        }
        for key in [
            "required_result_set",
            "contract_id",
            "contract_compatibility",
        ] {
            if self.get(key).is_some() {
                self.push(Policy, format!("advisory asset should not declare `{key}`"));
            }
        }
    }

    fn body_policy(&mut self) {
        let lower = self.asset.body.to_lowercase();
        let mut reasons = BTreeSet::new();
        for (phrase, reason) in OWNERSHIP_PHRASES {
            if lower.contains(phrase) {
                reasons.insert(*reason);
            }
        }
        if claims_escalation(&self.asset.body) {
            reasons.insert("asset body claims escalation ownership");
        }
        for reason in reasons {
            self.push(LintLevel::Policy, reason);
        }
    }
}

/// Lint every `*.md` under `<rt>/entrypoints` and `<rt>/skills`; findings sorted by
/// (path, level, reason).
pub fn lint_assets(rt: &Path) -> Vec<LintFinding> {
    let mut files = md_files(&rt.join("entrypoints"));
    files.extend(md_files(&rt.join("skills")));
    files.sort();
    let mut findings = Vec::new();
    let mut assets = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(rt)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        match parse_asset(&path, &rel) {
            Ok(asset) => assets.push(asset),
            Err(reason) => findings.push(LintFinding {
                level: LintLevel::Structural,
                asset_id: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
                reason,
            }),
        }
    }
    let skills: BTreeSet<String> = assets
        .iter()
        .filter(|a| a.manifest.get("asset_type") == Some(&Value::Str("skill".into())))
        .map(Asset::id)
        .collect();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for asset in &assets {
        let mut lint = Linter {
            asset,
            out: Vec::new(),
        };
        let asset_type = match asset.manifest.get("asset_type") {
            Some(Value::Str(t)) => t.clone(),
            _ => {
                lint.push(LintLevel::Structural, "asset_type must be a string");
                findings.extend(lint.out);
                continue;
            }
        };
        let count = seen.entry((asset_type.clone(), asset.id())).or_default();
        *count += 1;
        if *count == 2 {
            lint.push(
                LintLevel::Structural,
                format!(
                    "duplicate asset_id `{}` for asset_type `{asset_type}`",
                    asset.id()
                ),
            );
        }
        if asset_type != "entrypoint" && asset_type != "skill" {
            lint.push(
                LintLevel::Structural,
                format!("unknown asset_type: {asset_type}"),
            );
            findings.extend(lint.out);
            continue;
        }
        if let Some(stage) = asset.manifest.get("stage").map(Value::display) {
            if stage.parse::<Stage>().is_err() {
                lint.push(LintLevel::Structural, format!("unknown stage: {stage}"));
            }
        }
        if asset_type == "entrypoint" {
            lint.entrypoint(&skills);
        } else {
            lint.skill();
        }
        lint.body_policy();
        findings.extend(lint.out);
    }
    findings.sort_by(|a, b| (&a.path, a.level, &a.reason).cmp(&(&b.path, b.level, &b.reason)));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_one(rel: &str, text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        lint_assets(dir.path())
            .into_iter()
            .map(|f| f.reason)
            .collect()
    }

    #[test]
    fn shipped_templates_lint_clean() {
        let dir = tempfile::tempdir().unwrap();
        crate::workspace::deploy_assets(dir.path()).unwrap();
        let findings = lint_assets(dir.path());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn entrypoint_rules() {
        let reasons = lint_one(
            "entrypoints/execution/builder.md",
            "# Builder\n\nRoute to the checker when done.\n",
        );
        assert!(reasons.contains(
            &"entrypoint must declare exactly one required stage-core skill".to_string()
        ));
        assert!(reasons.contains(&"asset body claims stage routing ownership".to_string()));
        let reasons = lint_one("entrypoints/execution/builder.md", "");
        assert!(reasons.contains(&"entrypoint body must not be empty".to_string()));
        let reasons = lint_one("skills/x.md", "# no manifest\n");
        assert_eq!(
            reasons,
            ["asset file is missing YAML frontmatter start marker"]
        );
    }

    #[test]
    fn escalation_phrase_respects_negation_and_headers() {
        assert!(claims_escalation("You escalate to the consultant."));
        assert!(!claims_escalation("Do not escalate to the consultant."));
        assert!(!claims_escalation("Not allowed:\n\n- escalate to planning"));
    }

    #[test]
    fn manifest_errors_name_the_line() {
        let reasons = lint_one(
            "skills/x.md",
            "---\nasset_type: skill\nno separator\n---\nbody\n",
        );
        assert_eq!(
            reasons,
            ["frontmatter parse error in skills/x.md:3 (missing `:` separator)"]
        );
    }
}
