//! Integration tests: the real `millrace` binary against temporary workspaces.

mod common;
mod compile;
mod test_bad_input;
mod test_boundary;
mod test_claim;
mod test_control;
mod test_core;
mod test_docs;
mod test_engine;
mod test_harness_failures;
mod test_inspect;
mod test_lanes;
mod test_layering;
mod test_operator;
mod test_planning;
mod test_retention;
mod test_state_files;
mod test_trust;
mod test_usage;
