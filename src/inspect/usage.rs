//! What the harnesses have spent and how that compares to the budgets: the view behind
//! `millrace usage`, the usage lines of `status` and the budget checks of `doctor`.

use serde::Serialize;

use crate::config::{Config, UsageConfig};
use crate::state::snapshot::Snapshot;
use crate::state::usage::{self, item_key, Ledger, Spend};
use crate::workspace::Workspace;

/// A budget that is spent, and when it frees up.
#[derive(Debug, Clone, Serialize)]
pub struct Over {
    /// `window` or `daily`.
    pub budget: &'static str,
    pub reason: String,
    pub frees_at: String,
}

/// The figures `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(serialize_with = "totals")]
    pub today: Spend,
    pub time_zone: String,
    #[serde(serialize_with = "totals")]
    pub window: Spend,
    pub window_hours: f64,
    /// A workspace budget that is spent right now.
    pub over: Option<Over>,
}

/// The whole ledger with the budgets, for `millrace usage`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workspace: Spend,
    #[serde(flatten)]
    pub summary: Summary,
    /// The active work item and what it has spent.
    pub active_item: Option<Named>,
    /// Root lineages, biggest spender first.
    pub lineages: Vec<Named>,
    pub budgets: UsageConfig,
    /// Why the ledger could not be read (the figures are then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_error: Option<String>,
}

/// Only what a time bucket keeps (stages, tokens, cost): the token split is not counted per
/// bucket, and zeros for it would read as measured.
fn totals<S: serde::Serializer>(spend: &Spend, s: S) -> Result<S::Ok, S::Error> {
    serde_json::json!({
        "stages": spend.stages,
        "total_tokens": spend.total_tokens,
        "cost_usd": spend.cost_usd,
    })
    .serialize(s)
}

/// A work item (`<kind>:<id>`) or root spec, with its spend.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub name: String,
    pub spend: Spend,
}

/// The ledger (empty when there is none yet), or why it cannot be read with an empty one.
fn ledger(ws: &Workspace) -> (Ledger, Option<String>) {
    match Ledger::load(&ws.usage_ledger_path()) {
        Ok(ledger) => (ledger, None),
        Err(e) => (Ledger::default(), Some(e.to_string())),
    }
}

fn summarize(ledger: &Ledger, config: &UsageConfig) -> Summary {
    let now = crate::time::now();
    Summary {
        today: ledger.today(now, &config.time_zone()),
        time_zone: config.daily.time_zone.clone(),
        window: ledger.window(now, config.window.hours),
        window_hours: config.window.hours,
        over: usage::workspace_over(ledger, config, now).map(|o| Over {
            budget: o.budget,
            reason: o.reason,
            frees_at: crate::time::format(o.frees_at),
        }),
    }
}

/// The usage lines of `status`.
pub fn summary(ws: &Workspace, config: &Config) -> Summary {
    summarize(&ledger(ws).0, &config.usage)
}

/// Everything `millrace usage` shows.
pub fn report(ws: &Workspace, config: &Config, snapshot: Option<&Snapshot>) -> Report {
    let (ledger, ledger_error) = ledger(ws);
    let active_item = snapshot.and_then(|s| {
        let key = item_key(s.active_work_item_kind?, s.active_work_item_id.as_deref()?);
        Some(Named {
            spend: ledger.item(&key),
            name: key,
        })
    });
    let mut lineages: Vec<Named> = ledger
        .lineages
        .iter()
        .map(|(name, spend)| Named {
            name: name.clone(),
            spend: *spend,
        })
        .collect();
    lineages.sort_by_key(|l| std::cmp::Reverse(l.spend.total_tokens));
    Report {
        workspace: ledger.workspace,
        summary: summarize(&ledger, &config.usage),
        active_item,
        lineages,
        budgets: config.usage.clone(),
        ledger_error,
    }
}

/// `12345 tokens, $0.1234, 3 stages` (with `(simulated)` for scripted figures).
pub fn describe(spend: &Spend) -> String {
    format!(
        "{} tokens ({} input, {} cached, {} output), ${:.4}, {} stage{}{}",
        spend.total_tokens,
        spend.input_tokens,
        spend.cached_input_tokens,
        spend.output_tokens,
        spend.cost_usd,
        spend.stages,
        if spend.stages == 1 { "" } else { "s" },
        if spend.simulated { " (simulated)" } else { "" }
    )
}

/// `12345 tokens, $0.1234, 3 stages` for window/day figures (no token split kept there).
pub fn describe_total(spend: &Spend) -> String {
    format!(
        "{} tokens, ${:.4}, {} stage{}",
        spend.total_tokens,
        spend.cost_usd,
        spend.stages,
        if spend.stages == 1 { "" } else { "s" }
    )
}
