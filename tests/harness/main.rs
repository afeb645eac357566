//! The harness test bed: the real, pinned harness CLIs (installed by
//! `scripts/install-harnesses`) driven against a fake model API on 127.0.0.1, directly and
//! through the `millrace` binary.

mod cli;
#[path = "../cli/common.rs"]
#[allow(dead_code)]
mod common;
mod e2e;
mod fake_anthropic;
mod fake_gemini;
mod fake_openai;
mod install;
mod server;
mod test_aider;
mod test_claude;
mod test_codex;
mod test_gemini;
mod test_testbed;
