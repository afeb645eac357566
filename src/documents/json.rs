//! JSON imports (spec 02 §13).
use super::{DocError, Document};
use crate::model::WorkItemKind;

pub(super) fn parse(_kind: WorkItemKind, _name: &str, _text: &str) -> Result<Document, DocError> {
    todo!("documents helper")
}
