//! `state/usage_ledger.yaml`: what the harnesses have spent, in running totals per work item,
//! per root lineage and per workspace, plus the recent stages that rolling-window and daily
//! budgets are measured over.
//!
//! Counting is idempotent by request id: a stage is recorded right after its result is
//! persisted, and a restart re-records the active run's results that a crash kept from the
//! ledger — both paths skip a request id already counted, so a stage is never lost and never
//! counted twice. Per-item entries live while the item is active (they hold the request ids
//! of its stages); lineage and workspace totals are kept.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{load_yaml, save_yaml, StateError};
use crate::config::{Limit, UsageConfig};
use crate::runners::result::{stamp, TokenUsage};

/// Spending totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spend {
    pub stages: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// US dollars, over the stages whose harness reported a cost.
    pub cost_usd: f64,
    pub wall_seconds: f64,
    /// Some of these figures came from the scripted runner's simulation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

impl Spend {
    fn add(&mut self, rec: &Record) {
        self.stages += 1;
        self.wall_seconds += rec.wall_seconds;
        self.simulated |= rec.simulated;
        if let Some(u) = rec.usage {
            self.input_tokens += u.input_tokens;
            self.cached_input_tokens += u.cached_input_tokens;
            self.output_tokens += u.output_tokens;
            self.total_tokens += u.total_tokens;
            self.cost_usd += u.cost_usd.unwrap_or(0.0);
        }
    }

    /// The first figure of `limit` this spend has reached, as a sentence (`None`: within it).
    pub fn exceeds(&self, limit: &Limit) -> Option<String> {
        if let Some(max) = limit.tokens.filter(|max| self.total_tokens >= *max) {
            return Some(format!("{} tokens of {max}", self.total_tokens));
        }
        if let Some(max) = limit.cost_usd.filter(|max| self.cost_usd >= *max) {
            return Some(format!("${:.4} of ${max:.4}", self.cost_usd));
        }
        None
    }
}

/// One counted stage, kept while a window or day budget could still see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub request_id: String,
    #[serde(with = "stamp")]
    pub at: Timestamp,
    pub total_tokens: u64,
    pub cost_usd: f64,
}

/// An active work item's spend and the stages it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemSpend {
    pub spend: Spend,
    /// The most recent stage alone (for the per-stage budget).
    pub last: Spend,
    pub request_ids: Vec<String>,
}

/// One stage's usage, as the engine records it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub request_id: &'a str,
    pub at: Timestamp,
    /// `<kind>:<id>` of the work item (the root spec for closure runs).
    pub item: String,
    pub lineage: Option<&'a str>,
    pub usage: Option<&'a TokenUsage>,
    pub wall_seconds: f64,
    /// The scripted runner's simulated figures.
    pub simulated: bool,
}

/// The ledger file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub schema_version: String,
    pub kind: String,
    /// Everything ever spent in this workspace.
    pub workspace: Spend,
    pub lineages: BTreeMap<String, Spend>,
    pub items: BTreeMap<String, ItemSpend>,
    /// Stages of the last [`HORIZON_HOURS`] (or the window, if longer), oldest first.
    pub recent: Vec<Entry>,
    /// Fields a newer millrace added: kept and written back.
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            schema_version: "1.0".into(),
            kind: "usage_ledger".into(),
            workspace: Spend::default(),
            lineages: BTreeMap::new(),
            items: BTreeMap::new(),
            recent: Vec::new(),
            unknown: super::Unknown::new(),
        }
    }
}

/// Recent stages are kept at least this long: a calendar day in any time zone fits.
pub const HORIZON_HOURS: f64 = 50.0;

/// The key of a work item in the ledger.
pub fn item_key(kind: impl std::fmt::Display, id: &str) -> String {
    format!("{kind}:{id}")
}

fn hours(h: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(h * 3600.0)
}

impl Ledger {
    /// Load; a missing file is an empty ledger.
    pub fn load(path: &Path) -> Result<Ledger, StateError> {
        if !path.exists() {
            return Ok(Ledger::default());
        }
        let ledger: Ledger = load_yaml(path)?;
        super::check_schema(path, &ledger.schema_version, &ledger.kind, "usage_ledger")?;
        Ok(ledger)
    }

    /// Write atomically (skipped when nothing changed).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        save_yaml(path, self).map(|_| ())
    }

    /// Save as part of a transition whose snapshot write, in the same folder, follows: a
    /// power loss before it may lose the newest counts, which startup recovers from the
    /// persisted stage results.
    pub fn save_batched(&self, path: &Path) -> Result<(), StateError> {
        super::save_yaml_with(path, self, crate::workspace::atomic::Durability::Batched).map(|_| ())
    }

    /// Whether this stage is already counted.
    pub fn counted(&self, item: &str, request_id: &str) -> bool {
        self.items
            .get(item)
            .is_some_and(|i| i.request_ids.iter().any(|r| r == request_id))
            || self.recent.iter().any(|e| e.request_id == request_id)
    }

    /// Count one stage; false (and no change) when it was counted before.
    pub fn record(&mut self, rec: &Record, window_hours: f64) -> bool {
        if self.counted(&rec.item, rec.request_id) {
            return false;
        }
        self.workspace.add(rec);
        if let Some(root) = rec.lineage {
            self.lineages.entry(root.to_string()).or_default().add(rec);
        }
        let item = self.items.entry(rec.item.clone()).or_default();
        item.spend.add(rec);
        item.last = Spend::default();
        item.last.add(rec);
        item.request_ids.push(rec.request_id.to_string());
        self.recent.push(Entry {
            request_id: rec.request_id.to_string(),
            at: stamp::truncate(rec.at),
            total_tokens: rec.usage.map_or(0, |u| u.total_tokens),
            cost_usd: rec.usage.and_then(|u| u.cost_usd).unwrap_or(0.0),
        });
        self.recent.sort_by_key(|e| e.at);
        let keep = hours(HORIZON_HOURS.max(window_hours));
        let oldest = rec.at.checked_sub(keep).unwrap_or(rec.at);
        self.recent.retain(|e| e.at >= oldest);
        true
    }

    /// An item left `active/`: its budget starts afresh if it ever comes back.
    pub fn forget_item(&mut self, item: &str) -> bool {
        self.items.remove(item).is_some()
    }

    /// What an item has spent while active.
    pub fn item(&self, item: &str) -> Spend {
        self.items.get(item).map(|i| i.spend).unwrap_or_default()
    }

    /// What an active item's most recent stage spent.
    pub fn last_stage(&self, item: &str) -> Option<Spend> {
        self.items.get(item).map(|i| i.last)
    }

    /// What a lineage has spent.
    pub fn lineage(&self, root: &str) -> Spend {
        self.lineages.get(root).copied().unwrap_or_default()
    }

    fn since(&self, start: Timestamp) -> Spend {
        let mut spend = Spend::default();
        for e in self.recent.iter().filter(|e| e.at > start) {
            spend.stages += 1;
            spend.total_tokens += e.total_tokens;
            spend.cost_usd += e.cost_usd;
        }
        spend
    }

    /// Spend in the rolling window ending `now` (stages, tokens and cost only).
    pub fn window(&self, now: Timestamp, window_hours: f64) -> Spend {
        self.since(now.checked_sub(hours(window_hours)).unwrap_or(now))
    }

    /// Spend since the start of today in `tz` (stages, tokens and cost only).
    pub fn today(&self, now: Timestamp, tz: &jiff::tz::TimeZone) -> Spend {
        let start = now
            .to_zoned_datetime(tz.clone())
            .start_of_day()
            .map(|z| z.timestamp())
            .unwrap_or(now);
        self.since(
            start
                .checked_sub(SignedDuration::from_micros(1))
                .unwrap_or(start),
        )
    }

    /// When the window's spend drops below `limit` again: the time the oldest stages that
    /// keep it at or over the limit leave the window.
    pub fn window_frees_at(&self, now: Timestamp, window_hours: f64, limit: &Limit) -> Timestamp {
        let span = hours(window_hours);
        let start = now.checked_sub(span).unwrap_or(now);
        let mut spend = self.window(now, window_hours);
        for e in self.recent.iter().filter(|e| e.at > start) {
            if spend.exceeds(limit).is_none() {
                break;
            }
            spend.total_tokens -= e.total_tokens;
            spend.cost_usd -= e.cost_usd;
            if spend.exceeds(limit).is_none() {
                return e.at.checked_add(span).unwrap_or(now);
            }
        }
        now
    }

    /// The start of tomorrow in `tz`.
    pub fn next_day(now: Timestamp, tz: &jiff::tz::TimeZone) -> Timestamp {
        now.to_zoned_datetime(tz.clone())
            .tomorrow()
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp())
            .unwrap_or(now)
    }
}

/// Which workspace budget is spent, why, and when it frees up.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceOver {
    /// `window` or `daily`.
    pub budget: &'static str,
    pub reason: String,
    pub frees_at: Timestamp,
}

/// Check the workspace's window and daily budgets.
pub fn workspace_over(
    ledger: &Ledger,
    config: &UsageConfig,
    now: Timestamp,
) -> Option<WorkspaceOver> {
    let w = &config.window;
    let window_limit = Limit {
        tokens: w.tokens,
        cost_usd: w.cost_usd,
    };
    if window_limit.is_set() {
        if let Some(by) = ledger.window(now, w.hours).exceeds(&window_limit) {
            let frees_at = ledger.window_frees_at(now, w.hours, &window_limit);
            return Some(WorkspaceOver {
                budget: "window",
                reason: format!("the {}-hour window budget is spent: {by}", w.hours),
                frees_at,
            });
        }
    }
    let d = &config.daily;
    let daily_limit = Limit {
        tokens: d.tokens,
        cost_usd: d.cost_usd,
    };
    if daily_limit.is_set() {
        let tz = config.time_zone();
        if let Some(by) = ledger.today(now, &tz).exceeds(&daily_limit) {
            return Some(WorkspaceOver {
                budget: "daily",
                reason: format!("today's budget ({}) is spent: {by}", d.time_zone),
                frees_at: Ledger::next_day(now, &tz),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn usage(tokens: u64, cost: f64) -> TokenUsage {
        TokenUsage {
            input_tokens: tokens,
            total_tokens: tokens,
            cost_usd: Some(cost),
            ..TokenUsage::default()
        }
    }

    fn record(ledger: &mut Ledger, rid: &str, when: &str, tokens: u64) -> bool {
        let u = usage(tokens, tokens as f64 / 1000.0);
        ledger.record(
            &Record {
                request_id: rid,
                at: at(when),
                item: item_key("task", "t1"),
                lineage: Some("s1"),
                usage: Some(&u),
                wall_seconds: 2.0,
                simulated: false,
            },
            5.0,
        )
    }

    #[test]
    fn a_stage_is_counted_once_whatever_the_retries() {
        let mut l = Ledger::default();
        assert!(record(&mut l, "r1", "2026-12-03T10:00:00Z", 100));
        assert!(!record(&mut l, "r1", "2026-12-03T10:00:00Z", 100));
        assert_eq!(l.workspace.total_tokens, 100);
        assert_eq!(l.workspace.stages, 1);
        assert_eq!(l.lineage("s1").total_tokens, 100);
        assert_eq!(l.item("task:t1").wall_seconds, 2.0);
    }

    #[test]
    fn the_window_frees_when_its_oldest_spend_leaves_it() {
        let mut l = Ledger::default();
        record(&mut l, "r1", "2026-12-03T08:00:00Z", 600);
        record(&mut l, "r2", "2026-12-03T09:00:00Z", 600);
        let now = at("2026-12-03T10:00:00Z");
        let limit = Limit {
            tokens: Some(1000),
            cost_usd: None,
        };
        assert_eq!(l.window(now, 5.0).total_tokens, 1200);
        assert_eq!(
            l.window_frees_at(now, 5.0, &limit),
            at("2026-12-03T13:00:00Z")
        );
        assert_eq!(l.window(at("2026-12-03T13:30:00Z"), 5.0).total_tokens, 600);
    }

    #[test]
    fn today_starts_at_midnight_in_the_configured_zone() {
        let mut l = Ledger::default();
        record(&mut l, "r1", "2026-12-02T22:30:00Z", 500);
        let now = at("2026-12-03T01:00:00Z");
        assert_eq!(l.today(now, &jiff::tz::TimeZone::UTC).total_tokens, 0);
        let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(l.today(now, &tokyo).total_tokens, 500);
        assert_eq!(Ledger::next_day(now, &tokyo), at("2026-12-03T15:00:00Z"));
    }
}
