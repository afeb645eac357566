//! Parallel lanes (`execution.lanes` > 1): several tasks at once, each in a git worktree of
//! its own on branch `millrace/<task-id>`, landing on the base branch one at a time.
//!
//! Every step leaves a state the next start resumes from. A lane's activation in the
//! snapshot names its worktree and branch and whether its integration began. Integration
//! runs on the engine's thread only, so two never overlap; done again after a crash it finds
//! the base already holding the branch (`FastForward::AlreadyThere`) and finishes the task
//! without landing it twice. A worktree no lane owns is committed to its branch and removed
//! at the next start; a branch no lane owns is deleted only when the base already contains it,
//! so unlanded work is never lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::transition::{Counting, Move, Next, Transition};
use super::{Engine, Prepared};
use crate::config::{ExecutionConfig, IntegrationMode};
use crate::error::{Error, Result};
use crate::git::{FastForward, RebaseOutcome, Repo};
use crate::model::{Stage, WorkItemKind};
use crate::state::event::EventKind;
use crate::state::runtime::Lane;
use crate::workspace::{Folder, Workspace};

/// Budget key counting a task's integration conflicts.
pub(crate) const CONFLICT_BUDGET: &str = "integration_conflict";
/// The report a fixer reads after an integration conflict, in the task's run folder.
pub(crate) const CONFLICT_REPORT: &str = "integration_conflict.md";
/// Prefix of every lane branch.
const BRANCH_PREFIX: &str = "millrace/";

/// The lanes' git setting: the repository, the base branch, where worktrees go.
pub(crate) struct Lanes {
    repo: Repo,
    base: String,
    count: u32,
    mode: IntegrationMode,
    /// The worktrees' folder, relative to the workspace root.
    dir: String,
    /// The workspace root (absolute, links resolved).
    root: PathBuf,
    /// The workspace root's place inside the repository: the harness's folder in a worktree.
    subdir: PathBuf,
    max_conflicts: u32,
    keep_branches: bool,
}

impl Lanes {
    /// The lanes of a config, `None` with one lane; git is told to ignore the worktrees.
    pub fn open(ws: &Workspace, config: &ExecutionConfig) -> Result<Option<Lanes>> {
        let lanes = Lanes::check(ws, config)?;
        if let Some(lanes) = &lanes {
            let dir = lanes.subdir.join(&lanes.dir);
            lanes.repo.ensure_ignored(&format!("{}/", dir.display()))?;
        }
        Ok(lanes)
    }

    /// [`Lanes::open`] without writing anything (`config validate`). More than one lane
    /// needs a git repository with the base branch committed; otherwise a refusal says what
    /// to do.
    pub fn check(ws: &Workspace, config: &ExecutionConfig) -> Result<Option<Lanes>> {
        if config.lanes <= 1 {
            return Ok(None);
        }
        let fix = "make the workspace a git repository with a first commit (`git init && git add \
                   -A && git commit -m start`), or set execution.lanes: 1";
        let root = std::fs::canonicalize(ws.root())
            .map_err(|e| Error::system(format!("cannot resolve {}", ws.root().display()), e))?;
        let repo = Repo::open(&root).map_err(|e| {
            Error::refused(
                format!(
                    "execution.lanes is {} but {}: parallel lanes run each task in a git worktree",
                    config.lanes, e
                ),
                Some(fix.into()),
            )
        })?;
        let base = match &config.base_branch {
            Some(branch) => branch.clone(),
            None => repo.current_branch()?.ok_or_else(|| {
                Error::refused(
                    "execution.lanes > 1 needs a base branch, and HEAD is detached",
                    Some(
                        "check out the branch tasks should land on, or set execution.base_branch"
                            .into(),
                    ),
                )
            })?,
        };
        if !repo.branch_exists(&base)? {
            return Err(Error::refused(
                format!("the base branch `{base}` has no commit yet"),
                Some(fix.into()),
            ));
        }
        let repo_root = std::fs::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
        let subdir = root
            .strip_prefix(&repo_root)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = config.worktree_dir.trim_end_matches('/').to_string();
        Ok(Some(Lanes {
            repo,
            base,
            count: config.lanes,
            mode: config.integration,
            dir,
            root,
            subdir,
            max_conflicts: config.max_integration_conflicts,
            keep_branches: config.keep_integrated_branches,
        }))
    }

    /// Where a lane's harness runs: its worktree, at the workspace root's place in it.
    pub fn working_directory(&self, worktree: &str) -> PathBuf {
        self.root.join(worktree).join(&self.subdir)
    }

    fn worktree_path(&self, worktree: &str) -> PathBuf {
        self.root.join(worktree)
    }

    /// The lane a newly claimed task gets: the lowest free index.
    fn lane_for(&self, id: &str, taken: &HashSet<u32>) -> Lane {
        let index = (1..=self.count).find(|i| !taken.contains(i)).unwrap_or(1);
        let (worktree, branch) = self.place(id).unwrap_or_default();
        Lane {
            index,
            worktree,
            branch,
            integrating: false,
            waiting: None,
            landing: None,
        }
    }

    /// A task's worktree (relative to the workspace root) and branch, the one place they are
    /// made; `None` for an id that is not a plain file name (only a hand-edited snapshot can
    /// hold one).
    pub fn place(&self, id: &str) -> Option<(String, String)> {
        let plain = !id.is_empty() && !id.contains(['/', '\\']) && !id.starts_with('.');
        plain.then(|| (format!("{}/{id}", self.dir), format!("{BRANCH_PREFIX}{id}")))
    }

    /// Refuse a path below the workspace root with a symbolic link on the way (the path
    /// itself included): the agent can plant one, and following it would make millrace
    /// create, commit in or delete a folder outside the workspace.
    fn refuse_links(&self, path: &Path) -> Result<()> {
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| Error::internal(format!("{} is outside the workspace", path.display())))?;
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(crate::workspace::atomic::IoError::Symlink { path: at }.into())
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Make sure the lane's worktree is there on its branch: created from the base on the
    /// first stage, reused after a crash, recreated from the branch when it was deleted.
    /// Whether it was recreated from a branch that holds no commit of its own: whatever the
    /// task's stages left uncommitted in the old worktree is gone.
    fn ensure_worktree(&self, lane: &Lane) -> Result<bool> {
        let path = self.worktree_path(&lane.worktree);
        self.refuse_links(&path)?;
        if path.join(".git").is_file() {
            return Ok(false);
        }
        if path.exists() {
            // A checkout a crash interrupted before git registered it: nothing of the
            // task's is in it yet (its work is on the branch).
            std::fs::remove_dir_all(&path)
                .map_err(|e| crate::workspace::atomic::IoError::path("remove", &path, e))?;
        }
        let empty_branch = self.repo.branch_exists(&lane.branch)?
            && self.repo.is_ancestor(&lane.branch, &self.base)?;
        self.repo.worktree_add(&path, &lane.branch, &self.base)?;
        Ok(empty_branch)
    }

    /// At a start, what a killed daemon (or its git) left in an owned lane's worktree: a
    /// `worktree add` cut short (locked "initializing", partly checked out; it holds nothing
    /// of the task's, which is on the branch, so it is made again), an index lock, or — for a
    /// lane whose landing had begun — its rebase or merge under way (a rebase the agent left
    /// is not touched: its lane is not landing). Returns what was done, if anything.
    fn repair(
        &self,
        lane: &Lane,
        path: &Path,
        trees: &[crate::git::Worktree],
    ) -> Result<Option<serde_json::Value>> {
        let half_made = trees
            .iter()
            .any(|t| t.locked && std::fs::canonicalize(&t.path).unwrap_or(t.path.clone()) == path);
        if half_made {
            self.repo.worktree_discard(path)?;
            return Ok(Some(json!({"half_made": true})));
        }
        let mut done = None;
        if self.repo.clear_stale_lock(path)? {
            done = Some(json!({"stale_lock": true}));
        }
        if lane.integrating && path.join(".git").is_file() && self.repo.abort_in_progress(path)? {
            done = Some(json!({"aborted_landing": true}));
        }
        Ok(done)
    }

    /// Whether a branch that leaves its lane is deleted: only when the base holds all of it
    /// and the mode does not keep it for review.
    fn delete_when_landed(&self) -> bool {
        !self.keep_branches && self.mode != IntegrationMode::Branch
    }

    /// Commit whatever the agent left in a worktree (unless `message` is `None`: it just
    /// landed, nothing is left), remove the worktree, and delete the branch when `delete`
    /// and the base already contains it. Safe to repeat.
    fn release(
        &self,
        worktree: &Path,
        branch: &str,
        message: Option<&str>,
        delete: bool,
    ) -> Result<()> {
        self.refuse_links(worktree)?;
        if let Some(message) = message.filter(|_| worktree.join(".git").is_file()) {
            self.repo.commit_all(worktree, message)?;
        }
        self.repo.worktree_remove(worktree)?;
        if delete
            && self.repo.branch_exists(branch)?
            && self.repo.is_ancestor(branch, &self.base)?
        {
            self.repo.delete_branch(branch)?;
        }
        Ok(())
    }
}

/// The blocked task a lane worktree is kept for (left mid-rebase, say, for a person): no
/// start removes it. The worktree is named after its task.
pub(crate) fn kept_for_blocked(ws: &Workspace, worktree: &Path) -> Option<String> {
    let id = worktree.file_name()?.to_str()?;
    let doc = ws.item_path(WorkItemKind::Task, Folder::Blocked, id);
    doc.is_file().then(|| id.to_string())
}

/// What became of a finished lane's branch.
enum Landed {
    /// The base branch holds it, up to this commit.
    At(String),
    /// `branch` mode: left for review.
    ForReview,
    /// The task changed nothing: there was nothing to land.
    Nothing,
}

/// Why a landing cannot go on in the lane's own worktree.
enum Landing {
    /// The task is blocked with this reason.
    Refused { why: String, keep_worktree: bool },
    /// Another git process holds a lock there: the landing waits, with this reason.
    Waits(String),
    /// Not the lane's fault (the disk, a failpoint): the pass fails and is retried.
    Failed(Error),
}

impl Lanes {
    /// The lane's side of a landing: its worktree there and on its branch with no rebase or
    /// merge under way, what the agent left committed, then (unless `branch` mode, `None`)
    /// rebased onto or merged with the base.
    fn prepare_landing(
        &self,
        lane: &Lane,
        message: &str,
    ) -> std::result::Result<Option<RebaseOutcome>, Landing> {
        let git = |err: crate::git::GitError| match err.held_lock() {
            Some(lock) => Landing::Waits(format!(
                "git's lock {lock} is taken: another git process is at work there (if none \
                 is, one was killed holding it; remove the file)"
            )),
            None => Landing::Refused {
                why: format!(
                    "integration_failed: git: {err}; the branch {} is kept",
                    lane.branch
                ),
                keep_worktree: false,
            },
        };
        let worktree = self.worktree_path(&lane.worktree);
        match self.ensure_worktree(lane) {
            Err(Error::Git(err)) => return Err(git(err)),
            Err(err) => return Err(Landing::Failed(err)),
            Ok(true) => {
                return Err(Landing::Refused {
                    why: format!(
                        "lane_worktree_lost: the task's worktree {} was gone and branch {} \
                         holds no commit of its own, so its work is lost and nothing was \
                         landed; requeue it to run it again",
                        lane.worktree, lane.branch
                    ),
                    keep_worktree: false,
                })
            }
            Ok(false) => {}
        }
        let (branch, busy) = self.repo.checkout_state(&worktree).map_err(git)?;
        if busy || branch.as_deref() != Some(lane.branch.as_str()) {
            let found = match (&branch, busy) {
                (_, true) => "a rebase or merge under way".to_string(),
                (Some(b), _) => format!("branch {b} checked out"),
                (None, _) => "a detached HEAD".to_string(),
            };
            return Err(Landing::Refused {
                why: format!(
                    "integration_failed: the worktree {} has {found} instead of branch {}; \
                     nothing was landed and the worktree is kept as it is for a person",
                    lane.worktree, lane.branch
                ),
                keep_worktree: true,
            });
        }
        self.repo.commit_all(&worktree, message).map_err(git)?;
        crate::workspace::failpoint::transition("integration.after_commit")
            .map_err(|e| Landing::Failed(e.into()))?;
        let outcome = match self.mode {
            IntegrationMode::Branch => return Ok(None),
            IntegrationMode::Merge => self.repo.merge(&worktree, &self.base),
            IntegrationMode::Rebase => self.repo.rebase(&worktree, &self.base),
        };
        outcome.map(Some).map_err(git)
    }
}

/// What a lanes pass prepared.
#[derive(Debug)]
pub enum LanesOutcome {
    /// Stages to start now (none: nothing new to start).
    Stages(Vec<Prepared>),
    Paused,
    /// A stop was requested: start nothing; stop once the running stages ended.
    Stopping,
}

impl Engine {
    /// Lanes in force (`execution.lanes` > 1).
    pub fn has_lanes(&self) -> bool {
        self.lanes.is_some()
    }

    /// How soon to look again while a finished branch waits to land: nothing tells the
    /// daemon when the operator cleans the main working tree, so it checks every 2 s.
    pub fn integration_retry_in(&self) -> Option<std::time::Duration> {
        self.state
            .activations()
            .iter()
            .any(|a| a.lane.as_ref().is_some_and(|l| l.integrating))
            .then_some(std::time::Duration::from_secs(2))
    }

    fn lanes(&self) -> Result<&Lanes> {
        self.lanes
            .as_ref()
            .ok_or_else(|| Error::internal("lanes used without execution.lanes > 1"))
    }

    /// One pass with lanes, up to the stages to start: mailbox, intake, stop and pause
    /// gates, reconciliation, integration of finished branches (one at a time), claims for
    /// the free lanes and the planning plane, completion. `busy` names the runs whose stage
    /// runs now; every other activation gets its stage (re)started.
    pub fn prepare_lanes(
        &mut self,
        complete: &dyn Fn(&Path) -> bool,
        busy: &HashSet<String>,
    ) -> Result<LanesOutcome> {
        self.queue.begin_tick();
        self.queue.settle().take_next();
        self.busy_runs = busy.clone();
        let before: Vec<(String, Lane, String)> = self
            .state
            .activations()
            .iter()
            .filter_map(|a| {
                let (lane, id) = a.lane_task()?;
                Some((a.run_id.clone(), lane.clone(), id.to_string()))
            })
            .collect();
        if busy.is_empty() {
            self.drain_mailbox()?;
        } else {
            self.drain_mailbox_beside(busy)?;
        }
        // A lane an operator's `retry-active` or `clear-stale-state` ended: its worktree
        // goes, its work stays on its branch for when the task is claimed again.
        for (run_id, lane, id) in before {
            if self.lane_of(&run_id).is_none() {
                self.after_lane_stage(Some((lane, id)), &run_id)?;
            }
        }
        self.take_in(complete)?;
        if self.state.stop_requested() {
            return Ok(LanesOutcome::Stopping);
        }
        self.resume_when_due()?;
        self.enforce_workspace_budget()?;
        if self.state.is_paused() {
            return Ok(LanesOutcome::Paused);
        }
        self.reconcile(false)?;
        let mut prepared = Vec::new();
        // The stages that can start now start before any landing (each a few git commands),
        // so a lane never idles behind another lane's integration.
        self.start_waiting(busy, &mut prepared)?;
        if !prepared.is_empty() {
            // Free lanes are claimed for now too; only the landings wait for the next pass.
            self.fill_lanes()?;
            self.start_waiting(busy, &mut prepared)?;
            return Ok(LanesOutcome::Stages(prepared));
        }
        self.integrate_finished(busy)?;
        loop {
            self.fill_lanes()?;
            if self.state.activations().is_empty() {
                self.activate_completion()?;
            }
            // A budget that blocked an item freed a lane: claim again.
            if !self.start_waiting(busy, &mut prepared)? {
                break;
            }
        }
        if prepared.is_empty() {
            self.refresh_depths()?;
            self.queue.flush_index();
        }
        Ok(LanesOutcome::Stages(prepared))
    }

    /// Start the stage of every activation that is neither running nor landing; returns
    /// whether a budget blocked one of them (freeing its lane).
    fn start_waiting(
        &mut self,
        busy: &HashSet<String>,
        prepared: &mut Vec<Prepared>,
    ) -> Result<bool> {
        let waiting: Vec<String> = self
            .state
            .activations()
            .iter()
            .filter(|a| !busy.contains(&a.run_id))
            .filter(|a| !a.lane.as_ref().is_some_and(|l| l.integrating))
            .filter(|a| !prepared.iter().any(|p| p.request.run_id == a.run_id))
            .map(|a| a.run_id.clone())
            .collect();
        let mut blocked = false;
        for run_id in waiting {
            if !self.state.focus_on(&run_id) {
                continue;
            }
            let lane = self.lane_of(&run_id);
            if self.enforce_item_budget()? {
                // Blocked: its lane is free, its worktree goes.
                self.after_lane_stage(lane, &run_id)?;
                blocked = true;
                continue;
            }
            if let Some(stage) = self.start_stage()? {
                prepared.push(stage);
            }
        }
        Ok(blocked)
    }

    /// Whether a finished lane's branch is ready to land now (not waiting on the main tree).
    pub fn landing_due(&self) -> bool {
        self.state.activations().iter().any(|a| {
            a.lane
                .as_ref()
                .is_some_and(|l| l.integrating && l.waiting.is_none())
        })
    }

    /// The focused activation's stage request, marked running; its worktree made sure of.
    /// `None`: the lane's worktree could not be made (git refused the branch name, say);
    /// the task is blocked with git's words and the other lanes go on.
    fn start_stage(&mut self) -> Result<Option<Prepared>> {
        if self.block_replaced_before_stage()? {
            return Ok(None);
        }
        if let Some((lane, id)) = self
            .state
            .active()
            .and_then(|a| a.lane_task().map(|(l, i)| (l.clone(), i.to_string())))
        {
            let run_id = self.state.active().map(|a| a.run_id.clone());
            match self.lanes()?.ensure_worktree(&lane) {
                Err(Error::Git(err)) => {
                    let why = format!(
                        "lane_setup_failed: git could not make the task's worktree on branch {}: {err}",
                        lane.branch
                    );
                    self.lane_failed(&id, &lane, why, false)?;
                    return Ok(None);
                }
                // A link in the worktree's place (the runtime pauses): no stage runs
                // through it.
                Err(err) => return Err(err),
                Ok(true) if run_id.is_some_and(|run| self.ran_a_stage(&run)) => {
                    let why = format!(
                        "lane_worktree_lost: the task's worktree {} was gone and branch {} \
                         holds no commit of its own, so what its earlier stages changed is \
                         lost; requeue it to run it again",
                        lane.worktree, lane.branch
                    );
                    self.lane_failed(&id, &lane, why, false)?;
                    return Ok(None);
                }
                Ok(_) => {}
            }
        }
        self.start_stage_request().map(Some)
    }

    /// Whether run `run_id` has finished a stage (its results folder holds one).
    fn ran_a_stage(&self, run_id: &str) -> bool {
        let dir = crate::runners::stage_results_dir(&self.ws.run_dir(run_id));
        std::fs::read_dir(dir).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
        })
    }

    /// A lane's own git step failed in a way no stage can fix by itself (a hook refused the
    /// commit, the agent left the worktree on another branch or mid-rebase): block the task
    /// with the reason, free the lane, and keep the branch (and, when `keep_worktree`, the
    /// worktree as it is) for a person. The other lanes go on.
    fn lane_failed(
        &mut self,
        id: &str,
        lane: &Lane,
        why: String,
        keep_worktree: bool,
    ) -> Result<()> {
        let mut t = Transition::new(
            (WorkItemKind::Task, id.to_string()),
            Next::Idle { idle_markers: true },
        );
        t.counting = Counting::Reset;
        t.failure_class = Some("lane_git_failed".into());
        t.moves.push(super::apply::block(why, None));
        self.commit(t)?;
        if keep_worktree {
            return Ok(());
        }
        let lanes = self.lanes()?;
        let released = lanes.release(
            &lanes.worktree_path(&lane.worktree),
            &lane.branch,
            Some(&format!("{id}: work left when blocked")),
            false,
        );
        if let Err(err) = released {
            // The worktree stays; the next start tries again (a person may look first).
            tracing::warn!(%err, worktree = %lane.worktree, "lane worktree not removed");
        }
        Ok(())
    }

    /// Claim for the planning plane (beside the lanes, one at a time) and every free lane.
    fn fill_lanes(&mut self) -> Result<()> {
        let count = self.lanes()?.count as usize;
        if !self.state.activations().iter().any(|a| a.lane.is_none()) {
            if let Some(claimed) = self.queue.claim_planning()? {
                self.activate_claimed(claimed, None)?;
            }
        }
        loop {
            let taken: HashSet<u32> = self
                .state
                .activations()
                .iter()
                .filter_map(|a| a.lane.as_ref().map(|l| l.index))
                .collect();
            if taken.len() >= count {
                return Ok(());
            }
            let Some(claimed) = self.queue.claim_execution_within(count)? else {
                return Ok(());
            };
            let lane = self.lanes()?.lane_for(&claimed.id, &taken);
            let data = json!({"lane": lane.index, "work_item_id": claimed.id,
                              "worktree": lane.worktree, "branch": lane.branch,
                              "base_branch": self.lanes()?.base});
            self.activate_claimed(claimed, Some(lane))?;
            self.events
                .emit_all(vec![(EventKind::LaneStarted, data)], false)?;
        }
    }

    /// Land every lane whose loop finished, one at a time.
    /// One landing per pass, so the lane it frees is claimed for before the next landing
    /// (the daemon passes again at once while more are due). Returns whether one landed or
    /// went back to its fixer; lanes that wait are tried again and passed over.
    fn integrate_finished(&mut self, busy: &HashSet<String>) -> Result<bool> {
        let ready: Vec<String> = self
            .state
            .activations()
            .iter()
            .filter(|a| a.lane.as_ref().is_some_and(|l| l.integrating))
            .filter(|a| !busy.contains(&a.run_id))
            .map(|a| a.run_id.clone())
            .collect();
        for run_id in ready {
            self.integrate(&run_id)?;
            if !self.lane_of(&run_id).is_some_and(|(l, _)| l.integrating) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Bring one finished lane's branch onto the base: commit what the agent left, rebase
    /// (or merge) onto the base, fast-forward the base. A conflict goes back to the fixer
    /// (or blocks the task when its budget is spent); a dirty main tree makes it wait.
    fn integrate(&mut self, run_id: &str) -> Result<()> {
        if !self.state.focus_on(run_id) {
            return Ok(());
        }
        let Some((lane, id)) = self
            .state
            .active()
            .and_then(|a| a.lane_task().map(|(l, i)| (l.clone(), i.to_string())))
        else {
            return Ok(());
        };
        let message = self.commit_subject(&id);
        let outcome = match self.lanes()?.prepare_landing(&lane, &message) {
            Ok(outcome) => outcome,
            Err(Landing::Refused { why, keep_worktree }) => {
                return self.lane_failed(&id, &lane, why, keep_worktree)
            }
            Err(Landing::Waits(reason)) => return self.integration_waits(&id, &lane, reason),
            Err(Landing::Failed(err)) => return Err(err),
        };
        let Some(outcome) = outcome else {
            return self.land(&id, &lane, Landed::ForReview);
        };
        if let RebaseOutcome::Conflict { files, detail } = outcome {
            return self.integration_conflict(&id, &lane, files, detail);
        }
        crate::workspace::failpoint::transition("integration.after_rebase")?;
        let lanes = self.lanes()?;
        let head = lanes.repo.head(&lane.branch)?;
        if lane.landing.as_ref() != Some(&head) && !lanes.repo.is_ancestor(&head, &lanes.base)? {
            if let Some(l) = self.state.lane_mut() {
                l.landing = Some(head);
            }
            self.state.save(&self.ws.snapshot_path())?;
        }
        let lanes = self.lanes()?;
        let forwarded = match lanes.repo.fast_forward(&lanes.base, &lane.branch) {
            Ok(forwarded) => forwarded,
            // The main working tree's git is in the way (its index is locked, say): wait
            // with git's words; nothing of the task's is at risk.
            Err(err) => {
                let reason = format!("git could not move the base branch: {err}");
                return self.integration_waits(&id, &lane, reason);
            }
        };
        match forwarded {
            FastForward::Done { commit } => {
                crate::workspace::failpoint::transition("integration.after_fast_forward")?;
                self.land(&id, &lane, Landed::At(commit))
            }
            // Moved before a crash (the commit was recorded), or the branch brought nothing
            // of its own: its head is then some other work's commit, not this task's.
            FastForward::AlreadyThere => {
                let recorded = self
                    .state
                    .active()
                    .and_then(|a| a.lane.as_ref()?.landing.clone());
                let landed = recorded.map_or(Landed::Nothing, Landed::At);
                self.land(&id, &lane, landed)
            }
            FastForward::MainTreeDirty { files } => self.integration_waits(
                &id,
                &lane,
                format!(
                    "the main working tree has uncommitted changes ({}); commit or stash them \
                     and the branch lands",
                    files.join(", ")
                ),
            ),
            FastForward::NotFastForward => self.integration_waits(
                &id,
                &lane,
                "the base branch moved while the branch was brought up to date; trying again"
                    .into(),
            ),
        }
    }

    /// The subject of a commit a lane makes for task `id`: `<id>: <title>`.
    fn commit_subject(&self, id: &str) -> String {
        let title = self
            .queue
            .find(id)
            .into_iter()
            .find_map(|(_, doc)| doc)
            .map(|doc| doc.title.clone())
            .unwrap_or_default();
        format!("{id}: {title}")
            .trim_end_matches([':', ' '])
            .to_string()
    }

    /// The task is done: its branch landed (or, in `branch` mode, is left for review).
    fn land(&mut self, id: &str, lane: &Lane, landed: Landed) -> Result<()> {
        let lanes = self.lanes()?;
        let base = lanes.base.clone();
        let mode = lanes.mode;
        let branch = &lane.branch;
        let (history, commit, outcome) = match landed {
            Landed::At(commit) => (
                format!("integrated: branch {branch} landed on {base} at {commit}"),
                Some(commit),
                "landed",
            ),
            Landed::ForReview => (
                format!("integrated: branch {branch} left for review"),
                None,
                "left_for_review",
            ),
            Landed::Nothing => (
                format!("integrated: branch {branch} changed nothing; nothing to land on {base}"),
                None,
                "no_changes",
            ),
        };
        let mut t = Transition::new(
            (WorkItemKind::Task, id.to_string()),
            Next::Idle { idle_markers: true },
        );
        t.counting = Counting::Reset;
        t.moves.push(Move::Complete {
            history: Some(history),
        });
        t.events.push((
            EventKind::WorkItemIntegrated,
            json!({"work_item_id": id, "lane": lane.index, "branch": lane.branch,
                   "base_branch": base, "commit": commit, "integration": mode,
                   "outcome": outcome}),
        ));
        self.commit(t)?;
        crate::workspace::failpoint::transition("integration.after_done")?;
        let lanes = self.lanes()?;
        lanes.release(
            &lanes.worktree_path(&lane.worktree),
            &lane.branch,
            None,
            lanes.delete_when_landed(),
        )
    }

    /// The branch does not rebase (or merge) cleanly onto the base: back to the fixer with
    /// the conflict described, or blocked with `integration_conflict` when the budget is
    /// spent (the branch is kept for a person).
    fn integration_conflict(
        &mut self,
        id: &str,
        lane: &Lane,
        files: Vec<String>,
        detail: String,
    ) -> Result<()> {
        let lanes = self.lanes()?;
        let (base, limit) = (lanes.base.clone(), lanes.max_conflicts);
        let used = self.counters.count(CONFLICT_BUDGET, WorkItemKind::Task, id);
        let run_id = self
            .state
            .active()
            .map(|a| a.run_id.clone())
            .unwrap_or_default();
        let identity = (WorkItemKind::Task, id.to_string());
        let can_fix = used < limit && self.plan.stage_plan(Stage::Fixer).is_some();
        let action = if can_fix {
            "sent back to the fixer stage in its worktree"
        } else {
            "blocked; the branch is kept"
        };
        let event = (
            EventKind::IntegrationConflict,
            json!({"work_item_id": id, "lane": lane.index, "branch": lane.branch,
                   "base_branch": base, "files": files, "attempt": used + 1, "limit": limit,
                   "action": action}),
        );
        if can_fix {
            let report = conflict_report(id, lane, &base, &files, &detail);
            let mut t = Transition::new(identity, Next::Advance(Stage::Fixer));
            t.counting = Counting::Increment(CONFLICT_BUDGET.into());
            t.failure_class = Some(CONFLICT_BUDGET.into());
            t.moves.push(Move::Write {
                path: self.ws.run_dir(&run_id).join(CONFLICT_REPORT),
                bytes: report.into_bytes(),
            });
            t.events.push(event);
            return self.commit(t);
        }
        let why = format!(
            "integration_conflict: branch {} conflicts with {base} in {} after {used} fix \
             attempt(s) (execution.max_integration_conflicts = {limit}); the branch is kept: \
             resolve it by hand and merge it, or requeue the task",
            lane.branch,
            files.join(", ")
        );
        let mut t = Transition::new(identity, Next::Idle { idle_markers: true });
        t.counting = Counting::Reset;
        t.failure_class = Some(CONFLICT_BUDGET.into());
        t.moves.push(super::apply::block(why, None));
        t.events.push(event);
        self.commit(t)?;
        let lanes = self.lanes()?;
        lanes.release(
            &lanes.worktree_path(&lane.worktree),
            &lane.branch,
            Some(&format!("{id}: work left when blocked")),
            false,
        )
    }

    /// Integration cannot go on yet: say why once (again only when the reason changes) and
    /// try at the next pass.
    fn integration_waits(&mut self, id: &str, lane: &Lane, reason: String) -> Result<()> {
        if lane.waiting.as_deref() == Some(reason.as_str()) {
            return Ok(());
        }
        if let Some(l) = self.state.lane_mut() {
            l.waiting = Some(reason.clone());
        }
        self.save_snapshot()?;
        self.events.emit(
            EventKind::IntegrationWaiting,
            json!({"work_item_id": id, "lane": lane.index, "branch": lane.branch,
                   "reason": reason}),
        )?;
        Ok(())
    }

    /// After a stage of a lane's task: when the task left its lane (blocked, handed off),
    /// its worktree goes (its work committed to the branch, which stays). A task whose loop
    /// finished lands at the next pass, once the other lanes' next stages have started.
    pub(crate) fn after_lane_stage(
        &mut self,
        lane: Option<(Lane, String)>,
        run_id: &str,
    ) -> Result<()> {
        let Some((lane, id)) = lane else {
            return Ok(());
        };
        let still = self
            .state
            .activations()
            .iter()
            .find(|a| a.run_id == run_id)
            .and_then(|a| a.lane.as_ref())
            .map(|l| l.integrating);
        match still {
            Some(_) => Ok(()),
            None => {
                let lanes = self.lanes()?;
                let landed = self
                    .ws
                    .item_path(WorkItemKind::Task, Folder::Done, &id)
                    .exists();
                lanes.release(
                    &lanes.worktree_path(&lane.worktree),
                    &lane.branch,
                    Some(&format!("{id}: work left when the task left its lane")),
                    landed && lanes.delete_when_landed(),
                )
            }
        }
    }

    /// The lane of the activation running `run_id`, with its task id.
    pub fn lane_of(&self, run_id: &str) -> Option<(Lane, String)> {
        self.state
            .activations()
            .iter()
            .find(|a| a.run_id == run_id)
            .and_then(|a| a.lane_task().map(|(l, i)| (l.clone(), i.to_string())))
    }

    /// Startup: remove what no lane owns any more — worktrees (their leftovers committed to
    /// their branch first) and branches the base already contains — so a crash leaves no
    /// stray worktree or branch behind.
    pub(crate) fn tidy_lanes(&mut self) -> Result<()> {
        let Some(lanes) = self.lanes.as_ref() else {
            return Ok(());
        };
        let owned: Vec<&Lane> = self
            .state
            .activations()
            .iter()
            .filter_map(|a| a.lane.as_ref())
            .collect();
        let dir = lanes.worktree_path(&lanes.dir);
        if let Err(err) = lanes.refuse_links(&dir) {
            return Err(Error::refused(
                format!("the lanes' worktree folder cannot be used: {err}"),
                Some(format!(
                    "replace {} by a real folder (or remove it; millrace creates it)",
                    self.ws.rel(&dir)
                )),
            ));
        }
        let mut cleaned = Vec::new();
        let trees = lanes.repo.worktrees()?;
        for lane in &owned {
            let path = lanes.worktree_path(&lane.worktree);
            // One lane's git state never keeps the daemon from starting: what cannot be
            // repaired here is named in the event, and the lane's next git step reports it.
            match lanes.repair(lane, &path, &trees) {
                Ok(Some(mut data)) => {
                    data["worktree"] = json!(lane.worktree);
                    cleaned.push(data);
                }
                Ok(None) => {}
                Err(err) => {
                    cleaned.push(json!({"worktree": lane.worktree, "error": err.to_string()}))
                }
            }
        }
        for tree in trees {
            let path = std::fs::canonicalize(&tree.path).unwrap_or(tree.path.clone());
            if path.parent() != Some(dir.as_path())
                || owned
                    .iter()
                    .any(|l| lanes.worktree_path(&l.worktree) == path)
            {
                continue;
            }
            if kept_for_blocked(&self.ws, &path).is_some() {
                continue;
            }
            let branch = tree.branch.clone().unwrap_or_default();
            // Named after its task, like every commit a lane makes: this one lands on the
            // base with the rest of the task's work when the task runs again.
            let message = match branch.strip_prefix(BRANCH_PREFIX) {
                Some(id) => format!(
                    "{}\n\nwhat the task's lane left uncommitted when it was interrupted",
                    self.commit_subject(id)
                ),
                None => "work left by an interrupted lane".to_string(),
            };
            let released = lanes.release(&path, &branch, Some(&message), false);
            let mut data = json!({"worktree": self.ws.rel(&path), "branch": tree.branch});
            if let Err(err) = released {
                // A hook refused the commit, say: the worktree stays, and the start goes on.
                data["error"] = json!(err.to_string());
            }
            cleaned.push(data);
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let registered = path.join(".git").is_file();
                if !registered
                    && !owned
                        .iter()
                        .any(|l| lanes.worktree_path(&l.worktree) == path)
                {
                    // A checkout a crash cut short before git registered it.
                    if std::fs::remove_dir_all(&path).is_ok() {
                        cleaned.push(json!({"worktree": self.ws.rel(&path)}));
                    }
                }
            }
        }
        if lanes.delete_when_landed() {
            for branch in lanes.repo.branches(BRANCH_PREFIX)? {
                if owned.iter().any(|l| l.branch == branch) {
                    continue;
                }
                let landed = lanes.repo.is_ancestor(&branch, &lanes.base);
                match landed.and_then(|landed| match landed {
                    true => lanes.repo.delete_branch(&branch).map(|()| true),
                    false => Ok(false),
                }) {
                    Ok(true) => cleaned.push(json!({"branch": branch})),
                    Ok(false) => {}
                    Err(err) => cleaned.push(json!({"branch": branch, "error": err.to_string()})),
                }
            }
        }
        for data in cleaned {
            self.events.emit(EventKind::LaneCleaned, data)?;
        }
        Ok(())
    }

    /// `run once` with lanes: one pass, every stage it prepared run side by side, each
    /// result applied in turn. The first stage is the one reported.
    pub(crate) fn tick_inline_lanes(&mut self) -> Result<super::TickOutcome> {
        use super::TickOutcome;
        let prepared = match self.prepare_lanes(&|_| false, &HashSet::new())? {
            LanesOutcome::Stopping => {
                self.process_stop("stop requested")?;
                return Ok(TickOutcome::Stopped);
            }
            LanesOutcome::Paused => return Ok(TickOutcome::Paused),
            LanesOutcome::Stages(prepared) => prepared,
        };
        let registry = self.registry();
        let raws: Vec<crate::runners::RawResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = prepared
                .iter()
                .map(|p| {
                    let registry = registry.clone();
                    scope.spawn(move || {
                        registry.dispatch(&p.request, &crate::runners::CancelToken::new())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a stage thread panicked"))
                .collect()
        });
        let mut first = None;
        for (mut p, raw) in prepared.into_iter().zip(raws) {
            p.finished = self.finish_lane_stage(&p, raw)?;
            first.get_or_insert(p);
        }
        while self.integrate_finished(&HashSet::new())? {}
        Ok(match first {
            Some(p) => TickOutcome::Stage(Box::new(p)),
            None => TickOutcome::Idle,
        })
    }

    /// Apply one lane stage's result: [`Engine::finish_stage`] on its activation, then the
    /// lane's own step (land, or release the worktree).
    pub fn finish_lane_stage(
        &mut self,
        prepared: &Prepared,
        raw: crate::runners::RawResult,
    ) -> Result<Option<crate::runners::StageResult>> {
        let run_id = prepared.request.run_id.clone();
        if !self.state.focus_on(&run_id) {
            return Err(Error::internal(format!(
                "no activation runs {run_id}; its result is not applied"
            )));
        }
        let lane = self.lane_of(&run_id);
        let finished = self.finish_stage(prepared, raw)?;
        self.after_lane_stage(lane, &run_id)?;
        Ok(finished)
    }
}

/// The fixer's account of a conflict: what clashed, git's words, and what to do.
fn conflict_report(id: &str, lane: &Lane, base: &str, files: &[String], detail: &str) -> String {
    let mut text = format!(
        "# Integration conflict: {id}\n\nThe task's loop finished, but branch `{branch}` does \
         not apply cleanly on top of `{base}`: another task landed changes to the same lines \
         first. Nothing was landed; your worktree is back on `{branch}` as it was.\n\n\
         Conflicting files:\n",
        branch = lane.branch
    );
    for file in files {
        text.push_str(&format!("- {file}\n"));
    }
    text.push_str(&format!(
        "\ngit reported:\n\n```text\n{detail}\n```\n\nWhat to do: bring the branch up to date \
         with `{base}` in your worktree (`git rebase {base}` and resolve each conflict, or \
         redo the change on top of `{base}`), keep the task's intent and the other task's \
         change, commit, and finish with your stage's marker. The runtime tries to land the \
         branch again when the loop is done.\n"
    ));
    text
}
