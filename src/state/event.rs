//! Every event the runtime writes to its log, by kind: one enum, so an event cannot be
//! misspelled at the place that writes it, and a test checks that docs/ documents each one.
//! The line format is written in one place, [`super::events::EventLog`].

macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// The `event_type` of a log line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[doc = $doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in the order above.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The name in the log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// The arbiter blocked its closure target.
    ClosureTargetBlocked => "closure_target_blocked",
    /// The arbiter closed a closure target: its lineage is done.
    ClosureTargetClosed => "closure_target_closed",
    /// A closure target reached its arbiter bound and waits for an operator.
    ClosureTargetHeld => "closure_target_held",
    /// A root spec was claimed and its closure target opened.
    ClosureTargetOpened => "closure_target_opened",
    /// A closure target's lineage drained: the arbiter runs.
    ClosureTargetReady => "closure_target_ready",
    /// A control command was applied directly (no daemon ran).
    ControlApplied => "control_applied",
    /// A lane's branch conflicted with the base branch: the task goes back to its fixer, or
    /// is blocked when its conflict budget is spent.
    IntegrationConflict => "integration_conflict",
    /// A lane's finished branch waits to land (the main working tree has changes).
    IntegrationWaiting => "integration_waiting",
    /// A lane took a task into its own git worktree and branch.
    LaneStarted => "lane_started",
    /// A worktree or branch no lane owns was removed (left by a crash or a requeue).
    LaneCleaned => "lane_cleaned",
    /// A torn last line of the log was cut off (its text is kept here).
    EventLogRepaired => "event_log_repaired",
    /// The live log rolled into a compressed segment (the first line of the new live log).
    EventLogRolled => "event_log_rolled",
    /// An idea was staged in the inbox (`add-idea` or a mailbox `add_idea`).
    IdeaAdded => "idea_added",
    /// Intake turned an idea into a spec.
    IdeaNormalizedToSpec => "idea_normalized_to_spec",
    /// The daemon applied a mailbox command.
    MailboxCommandApplied => "mailbox_command_applied",
    /// A mailbox command was refused and archived in `failed/`.
    MailboxCommandFailed => "mailbox_command_failed",
    /// A harness left running by a dead daemon was killed.
    OrphanedHarnessKilled => "orphaned_harness_killed",
    /// A process record was not acted on (the kernel did not confirm it).
    ProcessRecordRefused => "process_record_refused",
    /// `retry-active` for a plane that has no active work.
    RetryActiveSkipped => "retry_active_skipped",
    /// Retention compressed or deleted old runs and log segments.
    RetentionSwept => "retention_swept",
    /// What the frozen plan decided for a stage result.
    RouterDecision => "router_decision",
    /// Preflight: a configured harness is not installed.
    RunnerExecutableMissing => "runner_executable_missing",
    /// A stage switched to its fallback runner after an environment failure.
    RunnerFallback => "runner_fallback",
    /// Preflight: a harness is installed but its check failed.
    RunnerPreflightFailed => "runner_preflight_failed",
    /// Blocking an item failed to move its file (it stays where it is).
    RuntimeBlockedMarkFailed => "runtime_blocked_mark_failed",
    /// A config reload failed; the previous plan stays.
    RuntimeConfigReloadFailed => "runtime_config_reload_failed",
    /// The config was reloaded and the plan recompiled.
    RuntimeConfigReloaded => "runtime_config_reloaded",
    /// A runtime took the workspace lock.
    RuntimeDaemonLockAcquired => "runtime_daemon_lock_acquired",
    /// A starting runtime waits for a control command holding the lock.
    RuntimeDaemonLockBusy => "runtime_daemon_lock_busy",
    /// A runtime could not start: another one owns the workspace.
    RuntimeDaemonLockDenied => "runtime_daemon_lock_denied",
    /// A runtime recorded its shutdown and let go of the lock.
    RuntimeDaemonLockReleased => "runtime_daemon_lock_released",
    /// Ticks succeed again after failed ones.
    RuntimeFaultCleared => "runtime_fault_cleared",
    /// A handoff or remediation incident was queued for planning.
    RuntimeHandoffIncidentEnqueued => "runtime_handoff_incident_enqueued",
    /// The deleted lock file (or `state/`) was recreated by its owner.
    RuntimeLockReestablished => "runtime_lock_reestablished",
    /// A runtime took over the lock of one that died holding it.
    RuntimeLockTakenOver => "runtime_lock_taken_over",
    /// The runtime paused itself (harness environment, rate limit, budget).
    RuntimePaused => "runtime_paused",
    /// Applying a result failed; a repair stage is scheduled.
    RuntimePostStageRecoveryScheduled => "runtime_post_stage_recovery_scheduled",
    /// Reconciliation repaired a disagreement between snapshot and folders.
    RuntimeReconciled => "runtime_reconciled",
    /// A self-pause ended (reset time passed, budget has room).
    RuntimeResumed => "runtime_resumed",
    /// A runtime started and is running its plan.
    RuntimeStarted => "runtime_started",
    /// A symbolic link sits where millrace keeps its own file.
    RuntimeSymlinkRefused => "runtime_symlink_refused",
    /// A tick failed on a non-fatal error; it is retried after a pause.
    RuntimeTickFailed => "runtime_tick_failed",
    /// The runtime stopped at a tick boundary.
    RuntimeTickStopped => "runtime_tick_stopped",
    /// A stage ended: its result, failure class and usage.
    StageCompleted => "stage_completed",
    /// A running stage was cancelled by a stop; it re-runs at the next start.
    StageInterrupted => "stage_interrupted",
    /// A stage started.
    StageStarted => "stage_started",
    /// The hourly housekeeping sweep removed temp files (older than 10 minutes) a crash left.
    StaleTempFilesRemoved => "stale_temp_files_removed",
    /// An unreadable state file was set aside and started afresh.
    StateFileReset => "state_file_reset",
    /// A usage budget is spent.
    UsageBudgetExhausted => "usage_budget_exhausted",
    /// Startup counted stage results a crash kept from the usage ledger.
    UsageRecovered => "usage_recovered",
    /// The usage ledger no longer parsed; the runs' stage results were counted again.
    UsageRebuilt => "usage_rebuilt",
    /// Intake took in new ideas.
    WatcherEventsConsumed => "watcher_events_consumed",
    /// File events are unavailable; the daemon polls.
    WatcherFallbackToPolling => "watcher_fallback_to_polling",
    /// A task or spec was queued (`add-*` or a mailbox command).
    WorkItemAdded => "work_item_added",
    /// A work item was moved to `blocked/`, with why.
    WorkItemBlocked => "work_item_blocked",
    /// A work item was claimed into `active/`.
    WorkItemClaimed => "work_item_claimed",
    /// A work item was moved to `done/`.
    WorkItemCompleted => "work_item_completed",
    /// A lane's branch landed on the base branch (or was left for review in `branch` mode);
    /// the task is done.
    WorkItemIntegrated => "work_item_integrated",
    /// A file was moved to `quarantine/`, with its reason.
    WorkItemQuarantined => "work_item_quarantined",
    /// A work item went back to its queue.
    WorkItemRequeued => "work_item_requeued",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            let name = kind.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
