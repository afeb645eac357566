//! The control plane: the daemon lock, the mailbox, and the control actions both apply.
//!
//! A control action is applied directly to the workspace when no live daemon owns it, and
//! written to the mailbox otherwise; the daemon then applies the same action at a tick
//! boundary. [`actions`] holds the one implementation of each action.

pub mod actions;
pub mod client;
pub mod lock;
pub mod mailbox;
