//! JSON imports (spec 02 §13).
use super::{DocError, Document};
use crate::model::WorkItemKind;

pub(super) fn parse(_kind: WorkItemKind, _name: &str, _text: &str) -> Result<Document, DocError> {
    todo!("documents helper")
}

/// The JSON object form of a task or spec (every field, as the mailbox carries it).
pub fn to_json(_doc: &Document) -> serde_json::Value {
    todo!("documents helper")
}
