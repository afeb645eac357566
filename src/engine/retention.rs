//! Retention (`retention:` in the config): weeks of work stay bounded on disk.
//!
//! Two jobs, both between ticks of the engine's own thread:
//! - the live event log rolls into a gzip segment when it reaches its size or a new UTC day
//!   begins — checked at every pass, one `stat`;
//! - a sweep, at most hourly (first when the daemon is idle or has run ten minutes, so a start
//!   never waits on it), removes temp files a crash left (listing a 10 000-file queue folder
//!   is not something the first claim should wait for), gzips the bulky artifacts of old
//!   runs, deletes runs past the age, count or size limit, and deletes old log segments.
//!
//! Never touched: the active run, runs of items in `active/` or `blocked/`, the newest arbiter
//! run of an open closure target, and stage results (compression leaves them as they are; the
//! usage ledger re-reads only the active run's). A run is deleted by renaming it to
//! `state/cache/deleting/<run>` first, so a crash mid-delete never leaves half a run that
//! `runs ls` shows; the next sweep finishes it. Which runs are old comes from the runs index
//! (`runners::index`), so a sweep costs little at any history.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Engine;
use crate::error::Result;
use crate::model::WorkItemKind;
use crate::runners::artifacts;
use crate::runners::index::RunsIndex;
use crate::state::event::EventKind;
use crate::workspace::{atomic, Folder};

/// Temp files older than this were left by a crash, not by a live writer.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// How often the run sweep may run.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// A daemon that never idles sweeps once it has run this long.
const SWEEP_AFTER_UPTIME: Duration = Duration::from_secs(600);
/// `state/cache/<this>/`: run folders being deleted.
const DELETING: &str = "deleting";

/// When the jobs last ran (memory only; a restart sweeps again when due).
#[derive(Debug)]
pub(crate) struct RetentionClock {
    started: Instant,
    last_sweep: Option<Instant>,
    /// Plain segments a crash left are compressed once per process.
    segments_finished: bool,
}

impl Default for RetentionClock {
    fn default() -> Self {
        RetentionClock {
            started: Instant::now(),
            last_sweep: None,
            segments_finished: false,
        }
    }
}

/// Progress of the compression pass, kept in `state/cache/retention.yaml` so a sweep looks
/// only at runs that aged past the limit since the last one. Derived: without it the next
/// sweep looks at every run once.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Watermark {
    /// Every unprotected run last changed before this was compressed.
    compressed_before: Option<Timestamp>,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub compressed_runs: usize,
    pub deleted_runs: usize,
    /// Runs past a limit that were kept because an active or blocked item, or an open
    /// closure, still needs them.
    pub kept_runs: usize,
    pub pruned_segments: usize,
    pub bytes_freed: u64,
}

/// A run folder and when it last changed.
struct RunDir {
    id: String,
    path: PathBuf,
    changed: Timestamp,
}

fn days(n: u64) -> SignedDuration {
    SignedDuration::from_hours(24 * n as i64)
}

/// The size of every file under `dir`.
fn tree_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

impl Engine {
    /// Roll the live event log when it is over its size or began on an earlier UTC day.
    /// Returns `true` when it rolled (a reader following the log starts on the new file).
    pub(crate) fn roll_events_if_due(&mut self) -> Result<bool> {
        if !self.retention_clock.segments_finished {
            self.events.finish_segments()?;
            self.retention_clock.segments_finished = true;
        }
        let Ok(meta) = std::fs::metadata(self.events.path()) else {
            return Ok(false);
        };
        let limit = self.config.retention.event_log_segment_mb << 20;
        let reason = if meta.len() >= limit {
            "size"
        } else {
            let today = crate::time::now()
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .date();
            let began = self
                .events
                .first_event_at()
                .map(|at| at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date());
            match began {
                Some(day) if day < today => "new_day",
                _ => return Ok(false),
            }
        };
        let Some(segment) = self.events.roll()? else {
            return Ok(false);
        };
        self.events.emit(
            EventKind::EventLogRolled,
            json!({"segment": self.ws.rel(&segment), "reason": reason, "bytes": meta.len()}),
        )?;
        Ok(true)
    }

    /// Run the sweep when it is due: at most hourly, and the first time only once the daemon
    /// is idle or has run a while.
    pub(crate) fn sweep_if_due(&mut self, idle: bool) -> Result<Option<SweepReport>> {
        let clock = &self.retention_clock;
        let due = match clock.last_sweep {
            Some(at) => at.elapsed() >= SWEEP_EVERY,
            None => idle || clock.started.elapsed() >= SWEEP_AFTER_UPTIME,
        };
        if !due {
            return Ok(None);
        }
        self.retention_clock.last_sweep = Some(Instant::now());
        self.sweep_history().map(Some)
    }

    /// Apply the retention limits once: delete what is past them, compress what is old, and
    /// record what was done in one `retention_swept` event (none when nothing was).
    pub fn sweep_history(&mut self) -> Result<SweepReport> {
        let retention = self.config.retention.clone();
        let now = crate::time::now();
        let mut report = SweepReport::default();
        let active_run = self.state.active().map(|a| a.run_id.clone());
        let temps =
            crate::workspace::sweep_stale_temps(&self.ws, active_run.as_deref(), STALE_TEMP_AGE);
        if temps > 0 {
            self.events
                .emit(EventKind::StaleTempFilesRemoved, json!({"count": temps}))?;
        }
        if let Some(keep) = retention.event_log_keep_days {
            report.pruned_segments = self.events.prune_segments(now - days(keep))?;
        }
        let mut runs = self.run_dirs()?;
        let protected = self.protected_runs();
        let (delete, kept) = self.past_limits(&runs, &protected, now);
        report.kept_runs = kept;
        for index in delete.iter().rev() {
            let run = runs.remove(*index);
            report.bytes_freed += tree_size(&run.path);
            self.delete_run(&run.path, &run.id)?;
            report.deleted_runs += 1;
        }
        if let Some(after) = retention.runs_compress_after_days {
            let cutoff = now - days(after);
            let path = self.ws.cache_path("retention.yaml");
            let mark: Watermark = crate::state::load_yaml(&path).unwrap_or_default();
            let from = mark.compressed_before.unwrap_or(Timestamp::UNIX_EPOCH);
            for run in runs
                .iter()
                .filter(|r| r.changed >= from && r.changed < cutoff)
            {
                if !artifacts::has_uncompressed(&run.path) || self.is_protected(run, &protected) {
                    continue;
                }
                report.bytes_freed += artifacts::compress_run(&run.path)?;
                report.compressed_runs += 1;
            }
            // Kept only where it saves a later sweep work: with runs to skip.
            if !runs.is_empty() {
                let mark = Watermark {
                    compressed_before: Some(cutoff),
                };
                crate::workspace::stamp::save_derived(&path, &crate::yaml::to_string(&mark));
            }
        }
        if report != SweepReport::default() {
            self.events.emit(
                EventKind::RetentionSwept,
                serde_json::to_value(&report).unwrap_or_default(),
            )?;
        }
        Ok(report)
    }

    /// Every run folder, oldest first, from the runs index (so a sweep neither lists nor
    /// stats 100 000 folders); first finishes deletions a crash interrupted.
    fn run_dirs(&self) -> Result<Vec<RunDir>> {
        let trash = self.ws.cache_path(DELETING);
        // Never through a link an agent planted there: it would point the removal outside.
        atomic::refuse_links(&trash, true)?;
        if let Ok(read) = std::fs::read_dir(&trash) {
            for entry in read.filter_map(|e| e.ok()) {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| atomic::IoError::path("remove", entry.path(), e))?;
            }
        }
        let mut runs: Vec<RunDir> = RunsIndex::all(&self.ws)
            .into_iter()
            // A real folder, not a link an agent planted where a run was.
            .filter(|(_, id)| RunsIndex::is_run_dir(&self.ws, id))
            .map(|(time_ns, id)| RunDir {
                path: self.ws.run_dir(&id),
                id,
                changed: Timestamp::from_nanosecond(time_ns).unwrap_or(Timestamp::UNIX_EPOCH),
            })
            .collect();
        runs.reverse();
        Ok(runs)
    }

    /// The runs and work items whose runs must stay: the active run, items in `active/` or
    /// `blocked/`, and the newest arbiter run of each open closure target.
    fn protected_runs(&self) -> (HashSet<String>, HashSet<String>) {
        let mut runs = HashSet::new();
        if let Some(active) = self.state.active() {
            runs.insert(active.run_id.clone());
        }
        let (targets, _) = crate::state::closure::list(&self.ws);
        runs.extend(
            targets
                .into_iter()
                .filter(|t| t.closure_open)
                .filter_map(|t| t.last_arbiter_run_id),
        );
        let mut items = HashSet::new();
        for kind in WorkItemKind::ALL {
            for folder in [Folder::Active, Folder::Blocked] {
                items.extend(self.queue.ids_in(kind, folder));
            }
        }
        (runs, items)
    }

    fn is_protected(
        &self,
        run: &RunDir,
        (runs, items): &(HashSet<String>, HashSet<String>),
    ) -> bool {
        runs.contains(&run.id)
            || artifacts::work_item_of(&run.path).is_some_and(|item| items.contains(&item))
    }

    /// Indexes (into `runs`, oldest first) of the runs past the age, count or size limit that
    /// nothing protects, and how many past a limit were kept.
    fn past_limits(
        &self,
        runs: &[RunDir],
        protected: &(HashSet<String>, HashSet<String>),
        now: Timestamp,
    ) -> (Vec<usize>, usize) {
        let retention = &self.config.retention;
        let too_old = retention
            .runs_delete_after_days
            .map(|d| now - days(d))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let over_count = retention
            .runs_max_count
            .map(|max| runs.len().saturating_sub(max as usize))
            .unwrap_or(0);
        let mut over_size = match retention.runs_max_total_mb {
            Some(max) => {
                let total: u64 = runs.iter().map(|r| tree_size(&r.path)).sum();
                total.saturating_sub(max << 20)
            }
            None => 0,
        };
        let mut delete = Vec::new();
        let mut kept = 0;
        for (index, run) in runs.iter().enumerate() {
            let past = run.changed < too_old || index < over_count || over_size > 0;
            if !past {
                break;
            }
            if self.is_protected(run, protected) {
                kept += 1;
                continue;
            }
            over_size = over_size.saturating_sub(tree_size(&run.path));
            delete.push(index);
        }
        (delete, kept)
    }

    /// Delete a run: move it out of `runs/` in one rename, then remove it.
    fn delete_run(&self, path: &Path, id: &str) -> Result<()> {
        let trash = self.ws.cache_path(DELETING);
        atomic::create_dir_all(&trash)?;
        atomic::refuse_links(&trash, true)?;
        let hidden = trash.join(id);
        std::fs::rename(path, &hidden).map_err(|e| atomic::IoError::path("rename", path, e))?;
        atomic::fsync_dir(&self.ws.runs_dir())?;
        std::fs::remove_dir_all(&hidden)
            .map_err(|e| atomic::IoError::path("remove", &hidden, e))?;
        Ok(())
    }
}
