//! The compiler: mode and loop assets in, the frozen run plan out; and the router that reads
//! the plan.
//!
//! # Sources
//! Daemon and CLI compile the same files: the workspace's deployed copies under
//! `millrace-agents/` (`modes/<id>.yaml`, `loops/<plane>/<name>.yaml`, where loop id
//! `<plane>.standard` names `default.yaml`). Any mode file in the workspace is a mode; an
//! unknown mode id is an error, never a fallback.
//!
//! # The loop graph is the routing authority
//! The reference validates loop edges but routes with a hard-coded table. Here the compiled
//! edges *are* the routing table ([`Routing::route`]): editing a loop and recompiling changes
//! behaviour. Loop YAML keeps the reference schema (strict; the shipped edges are those of
//! spec 05 §6) with these additions:
//!
//! - **Budgets.** An edge may carry `max_attempts: N` (counter key `edge:<stage>:<RESULT>`) or
//!   `budget: <recovery key>` — `max_fix_cycles` (`fix_cycle`),
//!   `max_troubleshoot_attempts_before_consult` (`troubleshoot`), `max_mechanic_attempts`
//!   (`mechanic`), `max_consultant_invocations` (`consultant`) — resolved from config at compile
//!   time, plus `on_exhausted:` (a stage or a terminal result, default `BLOCKED`). Counters are
//!   per work item and per key, kept by the engine; the router reads them through a callback.
//! - **Hops are charged.** Following `on_exhausted` into a stage charges that stage's *entry
//!   budget* (the budget all budgeted edges into it share), and when that is spent too, its
//!   `on_exhausted`, and so on. Each edge therefore compiles to a ladder: budgeted stages tried
//!   in order, then an unconditional target. `FIX_NEEDED` past `max_fix_cycles` reaches the
//!   troubleshooter under the troubleshoot budget, then the consultant, then `BLOCKED`.
//! - **Entry stages.** `entry_stage` is where the plane's items start; the optional
//!   `entry_stages` map overrides it per kind (`incident: auditor`). The completion stage is an
//!   entry too (closure targets).
//! - **Terminal results mean one thing each** ([`Consequence`]): `UPDATE_COMPLETE` and
//!   `MANAGER_COMPLETE` complete the item, `ARBITER_COMPLETE` closes the closure target,
//!   `NEEDS_PLANNING` hands off, `REMEDIATION_NEEDED` opens remediation, `BLOCKED` blocks.
//!
//! Graph checks on top of the reference rules: duplicate edges, a legal result without an edge
//! (an error: the router would have nowhere to go), stages unreachable from the entries, and
//! cycles made only of unbudgeted moves (an error: budgets never reset while an item is
//! active, so a cycle with a budgeted move ends). Every check has a stable [`Code`].
//!
//! # Plan id
//! `compiled_plan_id` hashes the canonical JSON of exactly the reference's fields, so the
//! reference's test vectors hold for the shipped assets. The routing table (edges, ladders,
//! resolved limits, entry stages) is added to the hashed object under `routing` only when its
//! digest differs from [`SHIPPED_ROUTING_DIGEST`], the pinned digest of the shipped loops under
//! default recovery limits. So the same inputs give the same id anywhere, and any input that
//! changes the plan, including a loop edge or a `recovery.*` limit, changes the id.
//!
//! # Persistence
//! [`compile_and_persist`] writes `state/compiled_plan.yaml` and `state/compile_diagnostics.yaml`
//! atomically and keeps the last-known-good plan on failure; [`compile_in_memory`] writes
//! nothing. CLI commands use the latter while [`crate::control::lock::daemon_running`] says a daemon owns the plan.

mod assets;
mod diag;
mod graph;
mod persist;
mod plan;
mod render;
mod route;

pub use assets::{list_mode_ids, load_mode, CompletionBehavior, EdgeKind, ModeDefinition, Target};
pub use diag::{Code, CompileDiagnostics, Diagnostic};
pub use persist::{compile_and_persist, compile_in_memory, load_last_known_good, CompileOutcome};
pub use plan::{
    canonical_json, compile_assets, plan_id, resolve_mode_id, routing_digest, Compiled,
    FrozenRunPlan, FrozenStagePlan, SHIPPED_ROUTING_DIGEST,
};
pub use render::{dot, mermaid};
pub use route::{BudgetedStep, CompiledEdge, Consequence, Route, RouteError, Routing};

#[cfg(test)]
mod tests;
