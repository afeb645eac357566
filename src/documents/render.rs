//! Canonical rendering (spec 02 §9).
use super::{DocError, Document};

pub(super) fn render(_doc: &Document) -> String {
    todo!("documents helper")
}

pub(super) fn check_round_trip(_doc: &Document, _name: &str) -> Result<(), DocError> {
    todo!("documents helper")
}
