//! Integration tests: the real `millrace` binary against temporary workspaces.

mod common;
mod compile;
mod test_bad_input;
mod test_boundary;
mod test_core;
