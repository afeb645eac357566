//! Ideas: free Markdown turned into planning specs (spec 02 §12).
use super::SpecDoc;

/// The spec an idea becomes, with the id it will be queued under.
pub type IdeaSpec = SpecDoc;

/// Build the spec for idea file `stem` (whose workspace-relative path is `rel_path`).
pub fn normalize_idea(_stem: &str, _rel_path: &str, _text: &str, _now: jiff::Timestamp) -> IdeaSpec {
    todo!("documents helper")
}
