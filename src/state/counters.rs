//! `state/recovery_counters.yaml`: per (failure class, work item) recovery budgets.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{load_yaml, save_yaml, StateError};
use crate::model::WorkItemKind;

/// Which budget an increment spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterField {
    Troubleshoot,
    Mechanic,
    FixCycle,
    Consultant,
    RuntimeRepair,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterEntry {
    pub failure_class: String,
    pub work_item_id: String,
    pub work_item_kind: WorkItemKind,
    #[serde(default)]
    pub troubleshoot_attempt_count: u32,
    #[serde(default)]
    pub mechanic_attempt_count: u32,
    #[serde(default)]
    pub fix_cycle_count: u32,
    #[serde(default)]
    pub consultant_invocations: u32,
    #[serde(default)]
    pub runtime_repair_count: u32,
    pub last_updated_at: String,
}

impl CounterEntry {
    pub fn get(&self, field: CounterField) -> u32 {
        match field {
            CounterField::Troubleshoot => self.troubleshoot_attempt_count,
            CounterField::Mechanic => self.mechanic_attempt_count,
            CounterField::FixCycle => self.fix_cycle_count,
            CounterField::Consultant => self.consultant_invocations,
            CounterField::RuntimeRepair => self.runtime_repair_count,
        }
    }

    fn get_mut(&mut self, field: CounterField) -> &mut u32 {
        match field {
            CounterField::Troubleshoot => &mut self.troubleshoot_attempt_count,
            CounterField::Mechanic => &mut self.mechanic_attempt_count,
            CounterField::FixCycle => &mut self.fix_cycle_count,
            CounterField::Consultant => &mut self.consultant_invocations,
            CounterField::RuntimeRepair => &mut self.runtime_repair_count,
        }
    }

    pub fn any_nonzero(&self) -> bool {
        self.troubleshoot_attempt_count > 0
            || self.mechanic_attempt_count > 0
            || self.fix_cycle_count > 0
            || self.consultant_invocations > 0
            || self.runtime_repair_count > 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub schema_version: String,
    pub kind: String,
    pub entries: Vec<CounterEntry>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            schema_version: "1.0".into(),
            kind: "recovery_counters".into(),
            entries: Vec::new(),
        }
    }
}

impl Counters {
    pub fn to_yaml(&self) -> String {
        crate::yaml::to_string(self)
    }

    pub fn load(path: &Path) -> Result<Counters, StateError> {
        let counters: Counters = load_yaml(path)?;
        if counters.schema_version != "1.0" || counters.kind != "recovery_counters" {
            return Err(StateError::Invalid {
                file: path.display().to_string(),
                message: "schema_version must be \"1.0\" and kind recovery_counters".into(),
            });
        }
        Ok(counters)
    }

    pub fn save(&self, path: &Path) -> Result<bool, StateError> {
        save_yaml(path, self)
    }

    /// The count of `field` for (class, item); 0 when there is no entry.
    pub fn count(&self, field: CounterField, class: &str, kind: WorkItemKind, id: &str) -> u32 {
        self.entries
            .iter()
            .find(|e| e.failure_class == class && e.work_item_kind == kind && e.work_item_id == id)
            .map(|e| e.get(field))
            .unwrap_or(0)
    }

    /// The sum of `field` over every class of one item.
    pub fn total(&self, field: CounterField, kind: WorkItemKind, id: &str) -> u32 {
        self.entries
            .iter()
            .filter(|e| e.work_item_kind == kind && e.work_item_id == id)
            .map(|e| e.get(field))
            .sum()
    }

    /// Add one to `field` for (class, item), creating the entry if needed.
    pub fn increment(&mut self, field: CounterField, class: &str, kind: WorkItemKind, id: &str) {
        let now = crate::time::now_string();
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.failure_class == class && e.work_item_kind == kind && e.work_item_id == id)
        {
            *entry.get_mut(field) += 1;
            entry.last_updated_at = now;
            return;
        }
        let mut entry = CounterEntry {
            failure_class: class.to_string(),
            work_item_id: id.to_string(),
            work_item_kind: kind,
            troubleshoot_attempt_count: 0,
            mechanic_attempt_count: 0,
            fix_cycle_count: 0,
            consultant_invocations: 0,
            runtime_repair_count: 0,
            last_updated_at: now,
        };
        *entry.get_mut(field) = 1;
        self.entries.push(entry);
    }

    /// Forget every entry of one item.
    pub fn reset_item(&mut self, kind: WorkItemKind, id: &str) {
        self.entries
            .retain(|e| !(e.work_item_kind == kind && e.work_item_id == id));
    }

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
        c.increment(CounterField::Troubleshoot, "x", WorkItemKind::Task, "t1");
        c.increment(CounterField::Troubleshoot, "x", WorkItemKind::Task, "t1");
        c.increment(CounterField::FixCycle, "fix_cycle", WorkItemKind::Task, "t1");
        assert_eq!(c.count(CounterField::Troubleshoot, "x", WorkItemKind::Task, "t1"), 2);
        c.save(&path).unwrap();
        assert_eq!(Counters::load(&path).unwrap(), c);
        c.reset_item(WorkItemKind::Task, "t1");
        assert!(c.entries.is_empty());
    }
}
