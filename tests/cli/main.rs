//! Integration tests: the real `millrace` binary against temporary workspaces.

mod common;
mod test_core;
