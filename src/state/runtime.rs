//! The runtime's state in memory: typed, with the snapshot's rules kept by construction.
//!
//! [`Snapshot`] is only this state's file form: the engine and the control actions hold a
//! [`RuntimeState`] and change it through the transitions below (activate, advance, go idle,
//! pause, resume, stop), each written once; [`RuntimeState::save`] converts it to the YAML
//! file. Loading checks the file's rules once and turns it into the typed form, so an
//! impossible combination (a stage without a run, a work item without a stage) cannot be
//! built in memory.

use std::path::Path;

use super::snapshot::{
    LaneSnapshot, PauseCause, ReloadOutcome, Snapshot, WatcherMode, IDLE_MARKER,
};
use super::StateError;
use crate::config::RunStyle;
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};
use crate::workspace::atomic::Durability;

/// What a stage works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A task, spec or incident in its `active/` folder.
    Item { kind: WorkItemKind, id: String },
    /// The arbiter judging the closure target of a root spec.
    Closure { root_spec_id: String },
}

impl Subject {
    /// The (kind, id) the subject's budgets and usage are counted against: an arbiter run
    /// counts against its root spec.
    pub fn identity(&self) -> (WorkItemKind, &str) {
        match self {
            Subject::Item { kind, id } => (*kind, id),
            Subject::Closure { root_spec_id } => (WorkItemKind::Spec, root_spec_id),
        }
    }

    /// The work item, when the subject is one.
    pub fn item(&self) -> Option<(WorkItemKind, &str)> {
        match self {
            Subject::Item { kind, id } => Some((*kind, id)),
            Subject::Closure { .. } => None,
        }
    }

    /// The root spec, when the subject is a closure target.
    pub fn closure(&self) -> Option<&str> {
        match self {
            Subject::Closure { root_spec_id } => Some(root_spec_id),
            Subject::Item { .. } => None,
        }
    }
}

/// An item's budget counters as the snapshot shows them (the counters file is the truth).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub troubleshoot: u32,
    pub mechanic: u32,
    pub fix_cycle: u32,
    pub consultant: u32,
}

/// One stage the runtime owns: running, or interrupted and to be resumed. It is the unit a
/// lane holds; the plane is the stage's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub stage: Stage,
    pub run_id: String,
    pub subject: Subject,
    /// When the subject entered this stage, RFC 3339.
    pub since: String,
    /// The fallback runner the subject switched to after its runner's environment failed.
    pub runner_override: Option<String>,
    pub attempts: Attempts,
    /// The failure the subject carries on with (what sent it to this stage).
    pub failure_class: Option<String>,
    /// The execution lane running it, when `execution.lanes` > 1.
    pub lane: Option<Lane>,
}

impl Activation {
    pub fn plane(&self) -> Plane {
        self.stage.plane()
    }

    /// The task id, when a lane runs it.
    pub fn lane_task(&self) -> Option<(&Lane, &str)> {
        let lane = self.lane.as_ref()?;
        Some((lane, self.subject.item()?.1))
    }
}

/// Where a lane's task works and how far its integration got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub index: u32,
    /// The task's git worktree, relative to the workspace root.
    pub worktree: String,
    pub branch: String,
    /// The loop finished; the branch is being (or waits to be) integrated.
    pub integrating: bool,
    /// Why integration waits, when it does.
    pub waiting: Option<String>,
    /// The commit the base is being moved to, recorded before it moves: after a crash the
    /// base holding the branch says whether this task landed it (this is set) or the branch
    /// brought nothing of its own.
    pub landing: Option<String>,
}

/// Whether claiming is paused, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    Running,
    /// The operator's `pause`: only the operator's `resume` ends it.
    Operator,
    /// The runtime paused itself (a harness's environment, a rate limit, a budget).
    Auto {
        cause: PauseCause,
        /// What happened and what fixes it.
        reason: String,
        /// When the pause ends by itself, RFC 3339.
        resume_at: Option<String>,
    },
}

/// The compiled plan in force, as the snapshot names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIdentity {
    pub mode_id: String,
    pub execution_loop_id: String,
    pub planning_loop_id: String,
    pub compiled_plan_id: String,
    pub compiled_plan_path: String,
}

/// The runtime snapshot, typed. Fields are private: every change is one of the transitions.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeState {
    run_style: RunStyle,
    process_running: bool,
    stop_requested: bool,
    /// A second `stop` (not saved; see [`RuntimeState::stop_now`]).
    stop_now: bool,
    pause: Pause,
    budget_waived_until: Option<String>,
    rate_limit_strikes: u32,
    plan: PlanIdentity,
    /// What runs: one activation, or with lanes the planning plane's and one per lane.
    activations: Vec<Activation>,
    /// The activation the engine works on now (`active()`); none after it went idle, so
    /// nothing acts on another lane's activation by mistake.
    focus: Option<usize>,
    execution_marker: String,
    planning_marker: String,
    depths: (u64, u64),
    last_terminal_result: Option<TerminalResult>,
    last_stage_result_path: Option<String>,
    failure_class: Option<String>,
    config_version: String,
    watcher_mode: WatcherMode,
    reload_outcome: Option<ReloadOutcome>,
    reload_error: Option<String>,
    started_at: Option<String>,
    updated_at: String,
    /// Fields a newer millrace wrote into the snapshot, written back as they were.
    unknown: super::Unknown,
}

impl RuntimeState {
    /// The state `init` writes (spec 01 §3.7).
    pub fn bootstrap() -> RuntimeState {
        RuntimeState::from_snapshot(Snapshot::bootstrap()).expect("the bootstrap snapshot is valid")
    }

    /// The typed form of a snapshot, or what breaks its rules (spec 03 §7.2).
    pub fn from_snapshot(s: Snapshot) -> Result<RuntimeState, String> {
        s.validate()?;
        let subject = match (
            s.active_work_item_kind,
            s.active_work_item_id,
            s.active_closure_target,
        ) {
            (Some(kind), Some(id), _) => Some(Subject::Item { kind, id }),
            (None, None, Some(root_spec_id)) => Some(Subject::Closure { root_spec_id }),
            _ => None,
        };
        // An active stage with nothing to work on, or a run without a stage, is an interrupted
        // activation that cannot be resumed; reconciliation reports and clears such a state,
        // so it is kept here as "nothing active" rather than refused.
        let mut activations: Vec<Activation> = match (s.active_stage, s.active_run_id, subject) {
            (Some(stage), Some(run_id), Some(subject)) => vec![Activation {
                stage,
                run_id,
                subject,
                since: s.active_since.unwrap_or_else(|| s.updated_at.clone()),
                runner_override: s.runner_override,
                attempts: Attempts {
                    troubleshoot: s.troubleshoot_attempt_count,
                    mechanic: s.mechanic_attempt_count,
                    fix_cycle: s.fix_cycle_count,
                    consultant: s.consultant_invocations,
                },
                failure_class: s.current_failure_class.clone(),
                lane: None,
            }],
            _ => Vec::new(),
        };
        activations.extend(s.lanes.into_iter().map(|l| Activation {
            stage: l.stage,
            run_id: l.run_id,
            subject: Subject::Item {
                kind: WorkItemKind::Task,
                id: l.work_item_id,
            },
            since: l.since,
            runner_override: l.runner_override,
            attempts: Attempts::default(),
            failure_class: l.failure_class,
            lane: Some(Lane {
                index: l.lane,
                worktree: l.worktree,
                branch: l.branch,
                integrating: l.integrating,
                waiting: l.integration_wait,
                landing: l.landing_commit,
            }),
        }));
        let pause = match (s.paused, s.paused_for) {
            (false, _) => Pause::Running,
            (true, None) => Pause::Operator,
            (true, Some(cause)) => Pause::Auto {
                cause,
                reason: s.pause_reason.unwrap_or_default(),
                resume_at: s.resume_at,
            },
        };
        Ok(RuntimeState {
            run_style: s.runtime_mode,
            process_running: s.process_running,
            stop_requested: s.stop_requested,
            stop_now: false,
            pause,
            budget_waived_until: s.budget_waived_until,
            rate_limit_strikes: s.rate_limit_strikes,
            plan: PlanIdentity {
                mode_id: s.active_mode_id,
                execution_loop_id: s.execution_loop_id,
                planning_loop_id: s.planning_loop_id,
                compiled_plan_id: s.compiled_plan_id,
                compiled_plan_path: s.compiled_plan_path,
            },
            focus: (!activations.is_empty()).then_some(0),
            activations,
            execution_marker: s.execution_status_marker,
            planning_marker: s.planning_status_marker,
            depths: (s.queue_depth_execution, s.queue_depth_planning),
            last_terminal_result: s.last_terminal_result,
            last_stage_result_path: s.last_stage_result_path,
            failure_class: s.current_failure_class,
            config_version: s.config_version,
            watcher_mode: s.watcher_mode,
            reload_outcome: s.last_reload_outcome,
            reload_error: s.last_reload_error,
            started_at: s.started_at,
            updated_at: s.updated_at,
            unknown: s.unknown,
        })
    }

    /// Whether the snapshot file names an active stage the typed form could not keep.
    pub fn dropped_activation(s: &Snapshot) -> bool {
        s.active_stage.is_some()
            && (s.active_run_id.is_none()
                || (s.active_work_item_id.is_none() && s.active_closure_target.is_none()))
    }

    /// The file form.
    pub fn to_snapshot(&self) -> Snapshot {
        let a = self.activations.iter().find(|a| a.lane.is_none());
        let lanes = self
            .activations
            .iter()
            .filter_map(|a| {
                let (lane, id) = a.lane_task()?;
                Some(LaneSnapshot {
                    lane: lane.index,
                    work_item_id: id.to_string(),
                    stage: a.stage,
                    run_id: a.run_id.clone(),
                    since: a.since.clone(),
                    worktree: lane.worktree.clone(),
                    branch: lane.branch.clone(),
                    integrating: lane.integrating,
                    integration_wait: lane.waiting.clone(),
                    landing_commit: lane.landing.clone(),
                    runner_override: a.runner_override.clone(),
                    failure_class: a.failure_class.clone(),
                })
            })
            .collect();
        let (paused, paused_for, pause_reason, resume_at) = match &self.pause {
            Pause::Running => (false, None, None, None),
            Pause::Operator => (true, None, None, None),
            Pause::Auto {
                cause,
                reason,
                resume_at,
            } => (true, Some(*cause), Some(reason.clone()), resume_at.clone()),
        };
        let attempts = a.map(|a| a.attempts).unwrap_or_default();
        Snapshot {
            schema_version: super::SCHEMA_VERSION.into(),
            kind: "runtime_snapshot".into(),
            runtime_mode: self.run_style,
            process_running: self.process_running,
            paused,
            stop_requested: self.stop_requested,
            pause_reason,
            resume_at,
            paused_for,
            budget_waived_until: self.budget_waived_until.clone(),
            rate_limit_strikes: self.rate_limit_strikes,
            runner_override: a.and_then(|a| a.runner_override.clone()),
            active_mode_id: self.plan.mode_id.clone(),
            execution_loop_id: self.plan.execution_loop_id.clone(),
            planning_loop_id: self.plan.planning_loop_id.clone(),
            compiled_plan_id: self.plan.compiled_plan_id.clone(),
            compiled_plan_path: self.plan.compiled_plan_path.clone(),
            active_plane: a.map(Activation::plane),
            active_stage: a.map(|a| a.stage),
            active_run_id: a.map(|a| a.run_id.clone()),
            active_work_item_kind: a.and_then(|a| a.subject.item()).map(|(k, _)| k),
            active_work_item_id: a
                .and_then(|a| a.subject.item())
                .map(|(_, id)| id.to_string()),
            active_closure_target: a.and_then(|a| a.subject.closure()).map(str::to_string),
            execution_status_marker: self.execution_marker.clone(),
            planning_status_marker: self.planning_marker.clone(),
            queue_depth_execution: self.depths.0,
            queue_depth_planning: self.depths.1,
            last_terminal_result: self.last_terminal_result,
            last_stage_result_path: self.last_stage_result_path.clone(),
            current_failure_class: match a {
                Some(a) => a.failure_class.clone(),
                None => self.failure_class.clone(),
            },
            troubleshoot_attempt_count: attempts.troubleshoot,
            mechanic_attempt_count: attempts.mechanic,
            fix_cycle_count: attempts.fix_cycle,
            consultant_invocations: attempts.consultant,
            config_version: self.config_version.clone(),
            watcher_mode: self.watcher_mode,
            last_reload_outcome: self.reload_outcome,
            last_reload_error: self.reload_error.clone(),
            started_at: self.started_at.clone(),
            active_since: a.map(|a| a.since.clone()),
            lanes,
            updated_at: self.updated_at.clone(),
            unknown: self.unknown.clone(),
        }
    }

    /// Read the snapshot file.
    pub fn load(path: &Path) -> Result<RuntimeState, StateError> {
        let snapshot = Snapshot::load(path)?;
        RuntimeState::from_snapshot(snapshot).map_err(|message| StateError::Invalid {
            file: path.display().to_string(),
            message,
        })
    }

    /// Write the snapshot file durably when something changed (`updated_at` moves only
    /// then).
    pub fn save(&mut self, path: &Path) -> Result<bool, StateError> {
        self.save_with(path, Durability::Full)
    }

    /// [`RuntimeState::save`] as durable as `durability` says.
    pub fn save_with(&mut self, path: &Path, durability: Durability) -> Result<bool, StateError> {
        let mut snapshot = self.to_snapshot();
        let written = snapshot.save_with(path, durability)?;
        self.updated_at = snapshot.updated_at;
        Ok(written)
    }

    // ---- reading ----

    /// The stage the engine works on now: the only one without lanes; with lanes, the one
    /// last activated or focused.
    pub fn active(&self) -> Option<&Activation> {
        self.activations.get(self.focus?)
    }

    /// Every stage the runtime owns (the planning plane's first, then the lanes').
    pub fn activations(&self) -> &[Activation] {
        &self.activations
    }

    /// Work on the activation of this run from now on; false (and nothing focused) when
    /// none has it.
    pub fn focus_on(&mut self, run_id: &str) -> bool {
        self.focus = self.activations.iter().position(|a| a.run_id == run_id);
        self.focus.is_some()
    }

    /// Set every lane's worktree and branch from its task id (`place`), dropping a lane whose
    /// task id `place` refuses: the snapshot is in the workspace, so what it says about where
    /// a lane works is never taken as it stands.
    pub fn place_lanes(&mut self, place: impl Fn(&str) -> Option<(String, String)>) {
        self.activations.retain_mut(|a| {
            let Some(id) = a.lane_task().map(|(_, id)| id.to_string()) else {
                return true;
            };
            match (place(&id), a.lane.as_mut()) {
                (Some((worktree, branch)), Some(lane)) => {
                    lane.worktree = worktree;
                    lane.branch = branch;
                    true
                }
                _ => false,
            }
        });
        self.focus = None;
    }

    /// The focused activation's lane.
    pub fn lane_mut(&mut self) -> Option<&mut Lane> {
        self.activations.get_mut(self.focus?)?.lane.as_mut()
    }

    pub fn is_paused(&self) -> bool {
        self.pause != Pause::Running
    }

    pub fn pause(&self) -> &Pause {
        &self.pause
    }

    /// Why the runtime paused itself, if it did.
    pub fn paused_for(&self) -> Option<PauseCause> {
        match &self.pause {
            Pause::Auto { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    /// When a self-pause ends by itself.
    pub fn resume_at(&self) -> Option<&str> {
        match &self.pause {
            Pause::Auto { resume_at, .. } => resume_at.as_deref(),
            _ => None,
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    pub fn process_running(&self) -> bool {
        self.process_running
    }

    pub fn budget_waived_until(&self) -> Option<&str> {
        self.budget_waived_until.as_deref()
    }

    pub fn rate_limit_strikes(&self) -> u32 {
        self.rate_limit_strikes
    }

    pub fn plan(&self) -> &PlanIdentity {
        &self.plan
    }

    /// The failure the focused subject carries, else the one the last subject ended with.
    pub fn failure_class(&self) -> Option<&str> {
        match self.active() {
            Some(a) => a.failure_class.as_deref(),
            None => self.failure_class.as_deref(),
        }
    }

    pub fn marker(&self, plane: Plane) -> &str {
        match plane {
            Plane::Execution => &self.execution_marker,
            Plane::Planning => &self.planning_marker,
        }
    }

    pub fn last_stage_result_path(&self) -> Option<&str> {
        self.last_stage_result_path.as_deref()
    }

    /// The stage running right now: the active stage whose plane's marker says it runs (an
    /// active item of a paused runtime has a stage but nothing running).
    pub fn running_stage(&self) -> Option<Stage> {
        let stage = self.active()?.stage;
        (self.marker(stage.plane()) == stage.running_marker()).then_some(stage)
    }

    // ---- transitions ----

    /// The runtime took the workspace: the plan and config in force, how it watches.
    pub fn started(
        &mut self,
        run_style: RunStyle,
        plan: PlanIdentity,
        config_version: String,
        watcher_mode: WatcherMode,
        reload_error: Option<String>,
    ) {
        self.run_style = run_style;
        self.process_running = true;
        self.plan = plan;
        self.config_version = config_version;
        self.watcher_mode = watcher_mode;
        self.reload_outcome = None;
        self.reload_error = reload_error;
        self.started_at = Some(crate::time::now_string());
    }

    /// A reload replaced the config and the plan.
    pub fn reloaded(&mut self, run_style: RunStyle, plan: PlanIdentity, config_version: String) {
        self.run_style = run_style;
        self.plan = plan;
        self.config_version = config_version;
        self.reload_outcome = Some(ReloadOutcome::Applied);
        self.reload_error = None;
    }

    /// A reload failed; the previous plan stays in force.
    pub fn reload_failed(&mut self, error: String) {
        self.reload_outcome = Some(ReloadOutcome::FailedRetainedPreviousPlan);
        self.reload_error = Some(error);
    }

    /// Take a subject into its first stage with a new run: the one way work becomes active.
    /// With lanes, `lane` names the execution lane that runs it. The new activation is the
    /// focused one.
    pub fn activate(&mut self, stage: Stage, run_id: String, subject: Subject, lane: Option<Lane>) {
        self.activations.push(Activation {
            stage,
            run_id,
            subject,
            since: crate::time::now_string(),
            runner_override: None,
            attempts: Attempts::default(),
            failure_class: None,
            lane,
        });
        self.focus = Some(self.activations.len() - 1);
        self.failure_class = None;
    }

    /// Move the active subject to another stage of the same run (a route's next stage, a
    /// runtime repair), with the failure that sent it there.
    pub fn advance(&mut self, stage: Stage, failure_class: Option<String>) {
        if let Some(a) = self.focused_mut() {
            a.stage = stage;
            a.since = crate::time::now_string();
            a.failure_class = failure_class.clone();
        }
        self.failure_class = failure_class;
    }

    /// Nothing is active any more: the one way work stops being active. `failure_class` is
    /// what the last subject ended with; `idle_markers` resets both planes' markers.
    pub fn go_idle(&mut self, failure_class: Option<String>, idle_markers: bool) {
        if let Some(i) = self.focus.take().filter(|i| *i < self.activations.len()) {
            self.activations.remove(i);
        }
        self.failure_class = failure_class;
        if idle_markers {
            self.execution_marker = IDLE_MARKER.into();
            self.planning_marker = IDLE_MARKER.into();
        }
    }

    /// Show the active subject's budget counters.
    pub fn set_attempts(&mut self, attempts: Attempts) {
        if let Some(a) = self.focused_mut() {
            a.attempts = attempts;
        }
    }

    /// The active subject runs its stages on a fallback runner from now on.
    pub fn switch_runner(&mut self, runner: String, failure_class: String) {
        if let Some(a) = self.focused_mut() {
            a.runner_override = Some(runner);
            a.failure_class = Some(failure_class.clone());
        }
        self.failure_class = Some(failure_class);
    }

    /// The active subject stays where it is with this failure (a harness's environment).
    pub fn note_failure(&mut self, failure_class: String) {
        if let Some(a) = self.focused_mut() {
            a.failure_class = Some(failure_class.clone());
        }
        self.failure_class = Some(failure_class);
    }

    fn focused_mut(&mut self) -> Option<&mut Activation> {
        self.activations.get_mut(self.focus?)
    }

    pub fn set_marker(&mut self, plane: Plane, marker: String) {
        match plane {
            Plane::Execution => self.execution_marker = marker,
            Plane::Planning => self.planning_marker = marker,
        }
    }

    pub fn set_depths(&mut self, depths: (u64, u64)) {
        self.depths = depths;
    }

    /// The last stage's answer and where its result file is.
    pub fn record_result(&mut self, terminal: TerminalResult, result_path: String) {
        self.last_terminal_result = Some(terminal);
        self.last_stage_result_path = Some(result_path);
    }

    /// The operator's `pause`; false when the operator already paused. It replaces a pause
    /// the runtime took itself: that one would end by itself (a reset time, a budget with
    /// room again), and the operator's lasts until their `resume`.
    pub fn pause_by_operator(&mut self) -> bool {
        if self.pause == Pause::Operator {
            return false;
        }
        self.pause = Pause::Operator;
        true
    }

    /// The runtime pauses itself with the reason and the fix, unless the operator paused
    /// it: their pause stands until their `resume` (the events still say what happened).
    pub fn pause_self(&mut self, cause: PauseCause, reason: String, resume_at: Option<String>) {
        if self.pause == Pause::Operator {
            return;
        }
        self.pause = Pause::Auto {
            cause,
            reason,
            resume_at,
        };
    }

    /// End any pause; returns the reason a self-pause gave.
    pub fn unpause(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.pause, Pause::Running) {
            Pause::Auto { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The operator's `resume`: a budget pause's spent budget is waived until it would have
    /// freed up anyway. False when not paused.
    pub fn resume_by_operator(&mut self) -> bool {
        if let Pause::Auto {
            cause: PauseCause::Budget,
            resume_at,
            ..
        } = &self.pause
        {
            self.budget_waived_until = resume_at.clone();
        }
        let was = self.is_paused();
        self.pause = Pause::Running;
        was
    }

    /// A rate limit without a reset time: the back-off doubles with each in a row.
    pub fn rate_limited(&mut self) {
        self.rate_limit_strikes = self.rate_limit_strikes.saturating_add(1);
    }

    /// A stage got through without a rate limit.
    pub fn rate_limit_cleared(&mut self) {
        self.rate_limit_strikes = 0;
    }

    /// `stop` for a running daemon: it stops at its next tick boundary.
    pub fn request_stop(&mut self) {
        self.stop_requested = true;
    }

    /// A second `stop`: the running stages are ended rather than waited for. Held in
    /// memory only: the daemon that applied it acts on it, a next start has nothing running.
    pub fn stop_now(&mut self) {
        self.stop_now = true;
    }

    /// Whether a stop requested now ends the running stages, with `runtime.stop_mode`.
    pub fn stop_interrupts(&self, mode: crate::config::StopMode) -> bool {
        self.stop_requested && (self.stop_now || mode == crate::config::StopMode::Interrupt)
    }

    /// The process left the workspace (a stop, a signal, a shutdown, or a stop applied
    /// without a daemon): only the process flags end. The active subject stays for the next
    /// start, and so does a pause: an operator who paused and then restarted the daemon (a
    /// supervisor's restart, an upgrade) expects it to come back paused; only `resume` or the
    /// pause's own end (a budget freed, a rate limit's reset) lifts it.
    pub fn shut_down(&mut self) {
        self.process_running = false;
        self.stop_requested = false;
        self.stop_now = false;
    }

    /// `clear-stale-state`/`retry-active` with no daemon: idle, both markers idle. A lane
    /// whose task is landing stays: its branch may already be on the base, and requeuing the
    /// task would run it again on top of its own change.
    pub fn reset_idle(&mut self, depths: (u64, u64), process_running: bool, clear_flags: bool) {
        self.activations
            .retain(|a| a.lane.as_ref().is_some_and(|l| l.integrating));
        self.focus = None;
        self.go_idle(None, true);
        self.process_running = process_running;
        if clear_flags {
            self.pause = Pause::Running;
            self.stop_requested = false;
            self.stop_now = false;
        }
        self.depths = depths;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_round_trips_through_the_file_form() {
        let state = RuntimeState::bootstrap();
        let back = RuntimeState::from_snapshot(state.to_snapshot()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn activation_and_idle_keep_the_file_rules() {
        let mut state = RuntimeState::bootstrap();
        state.activate(
            Stage::Builder,
            "run-1".into(),
            Subject::Item {
                kind: WorkItemKind::Task,
                id: "t1".into(),
            },
            None,
        );
        let snap = state.to_snapshot();
        snap.validate().unwrap();
        assert_eq!(snap.active_plane, Some(Plane::Execution));
        assert_eq!(snap.active_work_item_id.as_deref(), Some("t1"));
        state.advance(Stage::Checker, Some("x".into()));
        assert_eq!(state.to_snapshot().active_stage, Some(Stage::Checker));
        state.go_idle(None, true);
        let snap = state.to_snapshot();
        snap.validate().unwrap();
        assert!(snap.active_stage.is_none() && snap.active_since.is_none());
    }

    #[test]
    fn an_operator_resume_waives_a_spent_budget_until_it_frees_up() {
        let mut state = RuntimeState::bootstrap();
        state.pause_self(
            PauseCause::Budget,
            "spent".into(),
            Some("2026-01-01T00:00:00Z".into()),
        );
        assert!(state.resume_by_operator());
        assert_eq!(state.budget_waived_until(), Some("2026-01-01T00:00:00Z"));
        assert!(!state.is_paused());
    }

    /// A stage that ends rate-limited while the operator paused (it was running) does not
    /// turn their pause into one that ends by itself at the provider's reset time.
    #[test]
    fn the_operator_s_pause_stands_over_a_pause_the_runtime_takes() {
        let mut state = RuntimeState::bootstrap();
        assert!(state.pause_by_operator());
        state.pause_self(
            PauseCause::RateLimit,
            "429".into(),
            Some("2026-01-01T00:00:00Z".into()),
        );
        assert_eq!(state.pause(), &Pause::Operator);
        assert_eq!(state.resume_at(), None);
        assert!(!state.pause_by_operator());
    }
}
