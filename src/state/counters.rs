//! `state/recovery_counters.yaml`: how often each budgeted route was taken, per work item.
//!
//! The compiled plan names a budget key on every budgeted edge (`fix_cycle`, `troubleshoot`,
//! `consultant`, `mechanic`, ...); the engine counts each key per work item here, so budgets
//! survive restarts. An item's counters are removed when it leaves `active/`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{load_yaml, save_yaml, StateError};
use crate::model::WorkItemKind;

/// Budget key of the runtime's own repair route (post-stage failures).
pub const RUNTIME_REPAIR: &str = "runtime_repair";

/// Attempts spent on one budget key by one work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterEntry {
    pub budget_key: String,
    pub work_item_kind: WorkItemKind,
    pub work_item_id: String,
    pub attempts: u32,
    pub last_updated_at: String,
}

/// The counters file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub schema_version: String,
    pub kind: String,
    pub entries: Vec<CounterEntry>,
    /// Fields a newer millrace added: kept and written back.
    #[serde(flatten)]
    pub unknown: super::Unknown,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            schema_version: "1.0".into(),
            kind: "recovery_counters".into(),
            entries: Vec::new(),
            unknown: super::Unknown::new(),
        }
    }
}

impl Counters {
    /// The file's YAML text.
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self)
    }

    /// Read and check the counters file.
    pub fn load(path: &Path) -> Result<Counters, StateError> {
        let counters: Counters = load_yaml(path)?;
        super::check_schema(
            path,
            &counters.schema_version,
            &counters.kind,
            "recovery_counters",
        )?;
        Ok(counters)
    }

    /// Save if changed.
    pub fn save(&self, path: &Path) -> Result<bool, StateError> {
        save_yaml(path, self)
    }

    /// Save as part of a transition whose snapshot write, in the same folder, follows.
    pub fn save_batched(&self, path: &Path) -> Result<bool, StateError> {
        super::save_yaml_with(path, self, crate::workspace::atomic::Durability::Batched)
    }

    /// How often `key` was spent for an item.
    pub fn count(&self, key: &str, kind: WorkItemKind, id: &str) -> u32 {
        self.entries
            .iter()
            .find(|e| e.budget_key == key && e.work_item_kind == kind && e.work_item_id == id)
            .map(|e| e.attempts)
            .unwrap_or(0)
    }

    /// Spend one unit of `key` for an item.
    pub fn increment(&mut self, key: &str, kind: WorkItemKind, id: &str) {
        let now = crate::time::now_string();
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.budget_key == key && e.work_item_kind == kind && e.work_item_id == id)
        {
            entry.attempts += 1;
            entry.last_updated_at = now;
            return;
        }
        self.entries.push(CounterEntry {
            budget_key: key.to_string(),
            work_item_kind: kind,
            work_item_id: id.to_string(),
            attempts: 1,
            last_updated_at: now,
        });
    }

    /// Forget every counter of one item.
    pub fn reset_item(&mut self, kind: WorkItemKind, id: &str) {
        self.entries
            .retain(|e| !(e.work_item_kind == kind && e.work_item_id == id));
    }

    /// Forget every counter (clear-stale-state).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_reset_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery_counters.yaml");
        let mut c = Counters::default();
        c.increment("troubleshoot", WorkItemKind::Task, "t1");
        c.increment("troubleshoot", WorkItemKind::Task, "t1");
        c.increment("fix_cycle", WorkItemKind::Task, "t1");
        assert_eq!(c.count("troubleshoot", WorkItemKind::Task, "t1"), 2);
        assert_eq!(c.count("troubleshoot", WorkItemKind::Task, "t2"), 0);
        c.save(&path).unwrap();
        assert_eq!(Counters::load(&path).unwrap(), c);
        c.reset_item(WorkItemKind::Task, "t1");
        assert!(c.entries.is_empty());
    }
}
