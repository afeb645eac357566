//! Ideas: free Markdown turned into planning specs (spec 02 §12).

use sha2::Digest;

use super::grammar::{py_trim, split_lines};
use super::validate::{id_length_problem, is_identifier, ID_PATTERN};
use super::{DocError, DocTime, SourceType, SpecDoc};

/// The spec an idea becomes, with the id it will be queued under.
pub type IdeaSpec = SpecDoc;

/// The spec id an idea file gets: `idea-` plus the stem with every run of characters outside
/// `[A-Za-z0-9._-]` replaced by `-` and leading/trailing `-` and `.` removed (`idea` if
/// nothing is left), so that any file an operator drops in the inbox yields a valid id; a
/// stem longer than [`IDEA_CORE_MAX`] is cut.
pub fn idea_spec_id(stem: &str) -> String {
    let mut sanitized = String::with_capacity(stem.len());
    let mut in_run = false;
    for c in stem.chars() {
        let kept = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if kept {
            sanitized.push(c);
        } else if !in_run {
            sanitized.push('-');
        }
        in_run = !kept;
    }
    let core = sanitized.trim_matches(|c| c == '-' || c == '.');
    if core.len() > IDEA_CORE_MAX {
        // Sanitized, so ASCII: any cut is a character boundary.
        let cut = core[..IDEA_CORE_MAX - 9].trim_end_matches(['-', '.']);
        let digest = sha2::Sha256::digest(stem.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return format!("idea-{cut}-{hex}");
    }
    format!("idea-{}", if core.is_empty() { "idea" } else { core })
}

/// The longest stem part of an idea's spec id. Ids are at most 200 characters and the
/// tasks a manager writes for the spec are named after it (`<spec>-task-12`): a spec id
/// that filled the limit left them none, and each was quarantined as too long. A longer
/// stem is cut, with a digest of the whole stem so two long names stay apart.
const IDEA_CORE_MAX: usize = 100;

/// Check an `add-idea` submission (spec 02 §12.2): `name` must be a plain `<id>.md` file
/// name (no folders, no surrounding whitespace, stem an identifier) and `text` must hold
/// something besides whitespace. Files copied into the inbox by hand skip this check.
pub fn check_idea_submission(name: &str, text: &str) -> Result<(), DocError> {
    let error = |message: String| DocError {
        file: name.to_string(),
        line: None,
        message,
    };
    if py_trim(name) != name {
        return Err(error(
            "idea file name must not start or end with whitespace".to_string(),
        ));
    }
    if name.contains(['/', '\\']) {
        return Err(error(
            "idea file name must be a single file name, without folders".to_string(),
        ));
    }
    let Some(stem) = name.strip_suffix(".md") else {
        return Err(error("idea file name must end with .md".to_string()));
    };
    if !is_identifier(stem) {
        return Err(error(format!(
            "idea file name stem `{stem}` must match {ID_PATTERN}"
        )));
    }
    if let Some(problem) = id_length_problem(&idea_spec_id(stem)) {
        return Err(error(format!("the idea's spec id {problem}")));
    }
    if py_trim(text).is_empty() {
        return Err(error("idea document is empty".to_string()));
    }
    Ok(())
}

/// Build the spec for idea file `stem` (whose workspace-relative path is `rel_path`).
///
/// Title and summary follow spec 02 §12.3 with one deliberate fix: the title never keeps
/// leading `#` characters. The reference falls back to the first line verbatim whenever the
/// heading text equals the file stem, so `foo.md` headed `# foo` got the title `# foo` and
/// the summary `foo`; here it gets the title `foo`, and the summary is the first other
/// non-empty line, or `Idea captured from <stem>`.
///
/// A leading byte-order mark is dropped (it is not part of the title).
///
/// A file with no text at all is titled by its stem (trimmed), or by the spec id when the
/// stem is blank, so the title is never empty.
pub fn normalize_idea(stem: &str, rel_path: &str, text: &str, now: jiff::Timestamp) -> IdeaSpec {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = split_lines(text)
        .into_iter()
        .map(py_trim)
        .filter(|line| !line.is_empty())
        .collect();
    let unhashed = |line: &str| py_trim(line.trim_start_matches('#')).to_string();
    let heading = lines
        .iter()
        .filter(|line| line.starts_with('#'))
        .map(|line| unhashed(line))
        .find(|title| !title.is_empty());
    let first_text = lines
        .iter()
        .map(|line| unhashed(line))
        .find(|t| !t.is_empty());
    let spec_id = idea_spec_id(stem);
    let title = heading
        .or(first_text)
        .unwrap_or_else(|| match py_trim(stem) {
            "" => spec_id.clone(),
            trimmed => trimmed.to_string(),
        });
    let summary = lines
        .iter()
        .map(|line| unhashed(line))
        .find(|candidate| !candidate.is_empty() && *candidate != title)
        .unwrap_or_else(|| format!("Idea captured from {stem}"));
    SpecDoc {
        spec_id: spec_id.clone(),
        title,
        summary: summary.clone(),
        source_type: SourceType::Idea,
        source_id: Some(spec_id.clone()),
        parent_spec_id: None,
        root_idea_id: Some(spec_id.clone()),
        root_spec_id: Some(spec_id),
        created_at: DocTime::from_timestamp(now),
        created_by: "watcher".to_string(),
        updated_at: None,
        goals: vec![summary],
        non_goals: Vec::new(),
        scope: Vec::new(),
        constraints: vec!["generated from ideas/inbox watcher event".to_string()],
        assumptions: Vec::new(),
        risks: Vec::new(),
        target_paths: Vec::new(),
        entrypoints: Vec::new(),
        required_skills: Vec::new(),
        decomposition_hints: Vec::new(),
        acceptance: vec!["planner processes this idea-derived spec".to_string()],
        references: vec![rel_path.to_string()],
    }
}
