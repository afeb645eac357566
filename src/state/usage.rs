//! `state/usage_ledger.yaml`: what the harnesses have spent, in running totals per work item,
//! per root lineage and per workspace, plus the recent stages that rolling-window and daily
//! budgets are measured over.
//!
//! Counting is idempotent by request id: a stage is recorded right after its result is
//! persisted, and a restart re-records the active run's results that a crash kept from the
//! ledger — both paths skip a request id already counted, so a stage is never lost and never
//! counted twice. Per-item entries live while an activation holds the item (they hold the
//! request ids of its stages): an entry goes only once the snapshot no longer names the
//! activation (startup then never recounts its run) or a new activation of the item starts;
//! lineage and workspace totals are kept.
//!
//! The recent stages that window and daily budgets look at are kept in time buckets, so the
//! ledger stays the same size however many stages a busy workspace runs (30 000 stages in
//! two days once made it too big to load, and every start and stage paid for parsing it).

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

/// The stages counted in one time bucket, kept while a window or day budget could still
/// see them. Written as one line (`<at> <n> stages <t> tokens $<cost>`): a busy ledger holds
/// hundreds, and one YAML node each instead of nine keeps its load under a millisecond.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When the bucket's latest stage was counted: a budget sees the whole bucket until then,
    /// so it may count a bucket's spend a little longer than exact, never shorter.
    pub at: Timestamp,
    pub stages: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!(
            "{} {} stages {} tokens ${}",
            crate::time::format(self.at),
            self.stages,
            self.total_tokens,
            self.cost_usd
        ))
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        /// Ledgers written before buckets: one mapping per stage, with its request id (read
        /// and dropped: an active item's own entry keeps the ids counting needs).
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PerStage {
            #[serde(with = "stamp")]
            at: Timestamp,
            total_tokens: u64,
            cost_usd: f64,
            #[serde(rename = "request_id")]
            _request_id: serde::de::IgnoredAny,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Line(String),
            PerStage(PerStage),
        }
        match Form::deserialize(d)? {
            Form::Line(line) => Entry::parse(&line).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{line:?} is not `<time> <n> stages <n> tokens $<cost>`"
                ))
            }),
            Form::PerStage(p) => Ok(Entry {
                at: p.at,
                stages: 1,
                total_tokens: p.total_tokens,
                cost_usd: p.cost_usd,
            }),
        }
    }
}

impl Entry {
    fn parse(line: &str) -> Option<Entry> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [at, stages, "stages", tokens, "tokens", cost] = words[..] else {
            return None;
        };
        Some(Entry {
            at: stamp::parse(at).ok()?,
            stages: stages.parse().ok()?,
            total_tokens: tokens.parse().ok()?,
            cost_usd: cost.strip_prefix('$')?.parse().ok()?,
        })
    }
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

/// How many buckets a rolling window is cut into at most: its edge is exact to 1/300 of it
/// (a minute for windows up to five hours).
const WINDOW_BUCKETS: i64 = 300;

/// Buckets older than the window serve only the daily budget: a quarter of an hour, so a
/// day's start in any time zone (all offsets are whole quarters) falls between two.
const DAY_BUCKET_SECONDS: i64 = 900;

/// The bucket length inside a window of `window_hours`: a minute, 5 or 15 minutes (each a
/// divisor of a quarter hour, so days stay exact), or whole quarters for windows over 75 hours.
fn window_bucket_seconds(window_hours: f64) -> i64 {
    let wanted = (window_hours * 3600.0 / WINDOW_BUCKETS as f64).ceil() as i64;
    [60, 300, DAY_BUCKET_SECONDS]
        .into_iter()
        .find(|len| wanted <= *len)
        .unwrap_or_else(|| {
            wanted.saturating_add(DAY_BUCKET_SECONDS - 1) / DAY_BUCKET_SECONDS * DAY_BUCKET_SECONDS
        })
}

/// Merge `entries` (sorted by time) into buckets: `fine` seconds long from `fine_since` on,
/// [`DAY_BUCKET_SECONDS`] before. A bucket takes the time of its latest stage.
fn bucketed(entries: Vec<Entry>, fine_since: Timestamp, fine: i64) -> Vec<Entry> {
    let bucket = |e: &Entry| {
        let len = if e.at >= fine_since {
            fine
        } else {
            DAY_BUCKET_SECONDS
        };
        e.at.as_second().div_euclid(len) * len
    };
    let mut out: Vec<(i64, Entry)> = Vec::with_capacity(entries.len());
    for e in entries {
        let key = bucket(&e);
        match out.last_mut() {
            Some((last, b)) if *last == key => {
                b.at = b.at.max(e.at);
                b.stages += e.stages;
                b.total_tokens += e.total_tokens;
                b.cost_usd += e.cost_usd;
            }
            _ => out.push((key, e)),
        }
    }
    out.into_iter().map(|(_, e)| e).collect()
}

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

    /// Whether this stage of `item` is already counted.
    pub fn counted(&self, item: &str, request_id: &str) -> bool {
        self.items
            .get(item)
            .is_some_and(|i| i.request_ids.iter().any(|r| r == request_id))
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
            at: stamp::truncate(rec.at),
            stages: 1,
            total_tokens: rec.usage.map_or(0, |u| u.total_tokens),
            cost_usd: rec.usage.and_then(|u| u.cost_usd).unwrap_or(0.0),
        });
        self.recent.sort_by_key(|e| e.at);
        let keep = hours(HORIZON_HOURS.max(window_hours));
        let oldest = rec.at.checked_sub(keep).unwrap_or(rec.at);
        self.recent.retain(|e| e.at >= oldest);
        let fine_since = rec.at.checked_sub(hours(window_hours)).unwrap_or(rec.at);
        self.recent = bucketed(
            std::mem::take(&mut self.recent),
            fine_since,
            window_bucket_seconds(window_hours),
        );
        true
    }

    /// Forget the entries of items `keep` does not name (items whose activation is gone:
    /// left behind when something other than a transition took them out of `active/`).
    pub fn retain_items(&mut self, keep: impl Fn(&str) -> bool) {
        self.items.retain(|key, _| keep(key));
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
            spend.stages += e.stages;
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
    fn thirty_thousand_stages_in_two_days_keep_the_ledger_small_and_the_budgets_right() {
        // A stage every 6 s for 50 hours, off the minute: per stage this was 30 000 entries,
        // a ledger too big to load.
        let mut l = Ledger::default();
        let end = at("2026-12-03T10:00:03Z");
        let stages: Vec<Timestamp> = (0..30_000)
            .rev()
            .map(|k| end.checked_sub(SignedDuration::from_secs(6 * k)).unwrap())
            .collect();
        for (k, when) in stages.iter().enumerate() {
            let u = usage(10, 0.01);
            let item = item_key("task", &format!("t{k}"));
            l.record(
                &Record {
                    request_id: &format!("r{k}"),
                    at: *when,
                    item: item.clone(),
                    lineage: None,
                    usage: Some(&u),
                    wall_seconds: 1.0,
                    simulated: false,
                },
                5.0,
            );
            l.forget_item(&item);
        }
        assert!(l.recent.len() <= 300 + 45 * 4 + 2, "{}", l.recent.len());
        let now = at("2026-12-03T10:00:30Z");
        let exact = |start: Timestamp| stages.iter().filter(|t| **t > start).count() as u64;
        let today = at("2026-12-03T00:00:00Z");
        assert_eq!(
            l.today(now, &jiff::tz::TimeZone::UTC).stages,
            exact(today.checked_sub(SignedDuration::from_micros(1)).unwrap())
        );
        let nepal = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
        let nepal_day = at("2026-12-02T18:15:00Z");
        assert_eq!(
            l.today(now, &nepal).stages,
            exact(
                nepal_day
                    .checked_sub(SignedDuration::from_micros(1))
                    .unwrap()
            ),
            "a day starting at a quarter past is still exact"
        );
        // The window's edge is exact to its bucket (a minute), and errs on the side of
        // counting: one minute holds 10 stages here.
        let window = l.window(now, 5.0).stages;
        let in_window = exact(now.checked_sub(SignedDuration::from_hours(5)).unwrap());
        assert!(
            (in_window..=in_window + 10).contains(&window),
            "{window} vs {in_window}"
        );
        let limit = Limit {
            tokens: Some(20_000),
            cost_usd: None,
        };
        let frees = l.window_frees_at(now, 5.0, &limit);
        let span = SignedDuration::from_hours(5);
        let exact_frees = stages
            .iter()
            .find(|t| {
                let after = stages.iter().filter(|u| *u > *t).count() as u64;
                **t > now.checked_sub(span).unwrap() && after * 10 < 20_000
            })
            .map(|t| t.checked_add(span).unwrap())
            .unwrap();
        assert!(
            frees >= exact_frees
                && frees
                    <= exact_frees
                        .checked_add(SignedDuration::from_mins(1))
                        .unwrap(),
            "{frees} vs {exact_frees}"
        );
        let yaml = crate::yaml::to_string(&l);
        let back: Ledger = crate::yaml::from_str(Path::new("ledger"), &yaml).unwrap();
        assert_eq!(back, l);
        assert!(yaml.len() < 64 * 1024, "{} bytes", yaml.len());
    }

    #[test]
    fn bucket_lengths_keep_a_window_in_300_and_days_exact() {
        assert_eq!(window_bucket_seconds(5.0), 60);
        assert_eq!(window_bucket_seconds(0.5), 60);
        assert_eq!(window_bucket_seconds(24.0), 300);
        assert_eq!(window_bucket_seconds(72.0), 900);
        assert_eq!(window_bucket_seconds(168.0), 2700);
        assert_eq!(window_bucket_seconds(f64::MAX), i64::MAX / 900 * 900);
    }

    #[test]
    fn a_bucket_line_reads_back_and_anything_else_is_refused() {
        let e = Entry::parse("2026-12-03T10:00:03.5Z 3 stages 30 tokens $0.03").unwrap();
        assert_eq!((e.stages, e.total_tokens, e.cost_usd), (3, 30, 0.03));
        for bad in [
            "2026-12-03T10:00:03Z 3 stages 30 tokens 0.03",
            "2026-12-03T10:00:03Z 3 stages 30 tokens $0.03 extra",
            "2026-12-03T10:00:03Z 3 tokens 30 stages $0.03",
            "yesterday 3 stages 30 tokens $0.03",
        ] {
            assert!(Entry::parse(bad).is_none(), "{bad}");
        }
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
