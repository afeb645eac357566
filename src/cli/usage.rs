//! `millrace usage`: what the harnesses have spent, per workspace, day, window, item and
//! lineage, against the budgets in `millrace.yaml`. Read-only.

use super::{open_read_only, Ctx};
use crate::config::{Config, Limit};
use crate::error::{ExitCode, Result};
use crate::inspect::usage::{self, describe, describe_total, Report};
use crate::state::snapshot::Snapshot;

fn limit_text(tokens: Option<u64>, cost: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(t) = tokens {
        parts.push(format!("{t} tokens"));
    }
    if let Some(c) = cost {
        parts.push(format!("${c:.4}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn limit(l: &Limit) -> String {
    limit_text(l.tokens, l.cost_usd)
}

fn render(r: &Report) -> String {
    let s = &r.summary;
    let b = &r.budgets;
    let mut out = format!("workspace: {}\n", describe(&r.workspace));
    out.push_str(&format!(
        "today ({}): {}\n",
        s.time_zone,
        describe_total(&s.today)
    ));
    out.push_str(&format!(
        "window (last {} h): {}\n",
        s.window_hours,
        describe_total(&s.window)
    ));
    if let Some(item) = &r.active_item {
        out.push_str(&format!(
            "active item {}: {}\n",
            item.name,
            describe(&item.spend)
        ));
    }
    for lineage in &r.lineages {
        out.push_str(&format!(
            "lineage {}: {}\n",
            lineage.name,
            describe(&lineage.spend)
        ));
    }
    out.push_str("budgets:\n");
    out.push_str(&format!("  per_stage: {}\n", limit(&b.per_stage)));
    out.push_str(&format!("  per_item: {}\n", limit(&b.per_item)));
    out.push_str(&format!("  per_lineage: {}\n", limit(&b.per_lineage)));
    out.push_str(&format!(
        "  window ({} h): {}\n",
        b.window.hours,
        limit_text(b.window.tokens, b.window.cost_usd)
    ));
    out.push_str(&format!(
        "  daily ({}): {}\n",
        b.daily.time_zone,
        limit_text(b.daily.tokens, b.daily.cost_usd)
    ));
    if let Some(over) = &s.over {
        out.push_str(&format!(
            "over budget: {} (frees up at {})\n",
            over.reason, over.frees_at
        ));
    }
    out
}

pub fn run(ctx: &Ctx) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let config = Config::load(&ws.config_path(), false)?;
    let snapshot = Snapshot::load(&ws.snapshot_path()).ok();
    let report = usage::report(&ws, &config, snapshot.as_ref());
    if let Some(error) = &report.ledger_error {
        eprintln!(
            "warning: the usage ledger cannot be read ({error}); the figures below are empty. \
             The next start sets it aside and counts the runs' stage results again \
             (`millrace doctor`)"
        );
    }
    ctx.emit(&report, || render(&report));
    Ok(ExitCode::Ok)
}
