//! The one place millrace talks to git: a worktree and a `millrace/<task-id>` branch per lane,
//! and integrating a lane's branch into the base branch one at a time.
//!
//! Everything goes through the `git` CLI, so millrace sees exactly what the user's own git
//! sees (config, hooks, worktree layout) and needs no libgit2. Every call pins its
//! environment (`command`) so that no call can prompt, read a system config, or print
//! translated messages, and every mutating operation is written to be called again after a
//! crash: each checks where the previous attempt got to before acting.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

#[cfg(test)]
mod tests;

/// How many of git's last output lines an error quotes.
const QUOTED_LINES: usize = 6;

/// Identity used for millrace's own commits when the repository configures none, so a lane
/// never fails on "Please tell me who you are".
const FALLBACK_NAME: &str = "user.name=millrace";
const FALLBACK_EMAIL: &str = "user.email=millrace@localhost";

/// What went wrong talking to git. Messages name the command and quote git's last lines.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} is not inside a git work tree", path.display())]
    NotARepository { path: PathBuf },
    #[error("`git {}` failed ({status}): {stderr}", args.join(" "))]
    Failed {
        args: Vec<String>,
        status: ExitStatus,
        /// The last lines git printed (stderr, or stdout when stderr was empty).
        stderr: String,
    },
    #[error("could not run `git` (is it installed and on PATH?): {source}")]
    Spawn { source: std::io::Error },
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl GitError {
    /// The lock file git could not take because it exists: another git process works in
    /// that repository (a user's, or one a killed daemon left running), or one was killed
    /// while it held it. Waiting is the answer, not failing the work.
    pub fn held_lock(&self) -> Option<&str> {
        let GitError::Failed { stderr, .. } = self else {
            return None;
        };
        let (_, rest) = stderr.split_once("Unable to create '")?;
        let (lock, rest) = rest.split_once("'")?;
        (lock.ends_with(".lock") && rest.starts_with(": File exists")).then_some(lock)
    }
}

/// One entry of `git worktree list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// Absolute, as git reports it (symlinks resolved).
    pub path: PathBuf,
    /// The checked-out branch without `refs/heads/`; `None` when detached (or bare).
    pub branch: Option<String>,
    /// The checked-out commit; `None` for a bare repository's entry.
    pub head: Option<String>,
    /// Locked: by `git worktree lock`, or still "initializing" because a `worktree add` was
    /// cut short.
    pub locked: bool,
}

/// How bringing a lane's branch up to date with the base ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebaseOutcome {
    Clean,
    /// The attempt was aborted: the worktree is back, clean, on its branch as before.
    Conflict {
        /// Paths (relative to the worktree) git could not merge.
        files: Vec<String>,
        /// git's own account of the conflict, a few lines.
        detail: String,
    },
}

/// How [`Repo::fast_forward`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastForward {
    /// The base branch now points at `commit`.
    Done { commit: String },
    /// The base already contains the branch: an earlier attempt (or someone else) did it.
    AlreadyThere,
    /// The base has commits the branch lacks: rebase or merge the lane first.
    NotFastForward,
    /// The worktree that has the base checked out (normally the main one) has uncommitted
    /// changes to these files, which the landing changes too, so nothing was touched.
    MainTreeDirty { files: Vec<String> },
}

/// A repository, by its top-level directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// The repository containing `path` (any directory inside its work tree).
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        let out = output(path, ["rev-parse", "--show-toplevel"])?;
        if !out.status.success() {
            return Err(GitError::NotARepository {
                path: path.to_path_buf(),
            });
        }
        let root = stdout(&out).trim_end_matches('\n').to_string();
        Ok(Repo {
            root: PathBuf::from(root),
        })
    }

    /// The branch checked out in the root, `None` when HEAD is detached.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let args = ["symbolic-ref", "--quiet", "--short", "HEAD"];
        let out = output(&self.root, args)?;
        match out.status.code() {
            Some(0) => Ok(Some(stdout(&out).trim().to_string())),
            Some(1) => Ok(None),
            _ => Err(failed(&self.root, args, &out)),
        }
    }

    /// The commit id `rev` names.
    pub fn head(&self, rev: &str) -> Result<String, GitError> {
        rev_parse(&self.root, rev)
    }

    pub fn branch_exists(&self, name: &str) -> Result<bool, GitError> {
        let refname = format!("refs/heads/{name}");
        probe(
            &self.root,
            ["show-ref", "--verify", "--quiet", refname.as_str()],
        )
    }

    /// The branch checked out in the worktree at `dir` (`None`: detached), and whether a
    /// rebase or merge is under way there.
    pub fn checkout_state(&self, dir: &Path) -> Result<(Option<String>, bool), GitError> {
        let dir = self.absolute(dir);
        let args = ["symbolic-ref", "--quiet", "--short", "HEAD"];
        let out = output(&dir, args)?;
        let branch = match out.status.code() {
            Some(0) => Some(stdout(&out).trim().to_string()),
            Some(1) => None,
            _ => return Err(failed(&dir, args, &out)),
        };
        let busy = in_progress(&dir, "rebase")? || in_progress(&dir, "merge")?;
        Ok((branch, busy))
    }

    /// Abort a rebase or merge under way in the worktree at `dir` (one millrace's own landing
    /// started when it was killed); returns whether there was one.
    pub fn abort_in_progress(&self, dir: &Path) -> Result<bool, GitError> {
        let dir = self.absolute(dir);
        for verb in ["rebase", "merge"] {
            if in_progress(&dir, verb)? {
                run(&dir, [verb, "--abort"])?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Unlock and remove a worktree a cut-short `git worktree add` left locked
    /// ("initializing", half checked out); its branch stays.
    pub fn worktree_discard(&self, path: &Path) -> Result<(), GitError> {
        let path = self.absolute(path);
        let unlock: [&OsStr; 3] = ["worktree".as_ref(), "unlock".as_ref(), path.as_os_str()];
        let _ = output(&self.root, unlock)?;
        self.worktree_remove(&path)
    }

    /// Remove the index lock a killed git left in a worktree, so the next commit there does
    /// not fail forever. Only for when no git can be running in it (a start, after the
    /// lane's orphaned harness was killed); returns whether there was one.
    pub fn clear_stale_lock(&self, worktree: &Path) -> Result<bool, GitError> {
        let dot_git = self.absolute(worktree).join(".git");
        let Ok(text) = fs::read_to_string(&dot_git) else {
            return Ok(false);
        };
        let Some(dir) = text
            .strip_prefix("gitdir:")
            .map(|d| PathBuf::from(d.trim()))
        else {
            return Ok(false);
        };
        let lock = dir.join("index.lock");
        match fs::remove_file(&lock) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("remove", &lock, e)),
        }
    }

    /// The local branches whose names start with `prefix` (e.g. `millrace/`).
    pub fn branches(&self, prefix: &str) -> Result<Vec<String>, GitError> {
        let pattern = format!("refs/heads/{prefix}");
        let out = run(
            &self.root,
            [
                "for-each-ref",
                "--format=%(refname:short)",
                pattern.as_str(),
            ],
        )?;
        Ok(out
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect())
    }

    /// Whether `a` is `b` or one of its ancestors.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool, GitError> {
        probe(&self.root, ["merge-base", "--is-ancestor", a, b])
    }

    /// Every worktree of the repository, the main one first.
    pub fn worktrees(&self) -> Result<Vec<Worktree>, GitError> {
        let out = run(&self.root, ["worktree", "list", "--porcelain"])?;
        Ok(parse_worktrees(&out))
    }

    /// A worktree at `path` (relative paths are under the root) on `branch`, creating the
    /// branch from `base` when it does not exist yet. Safe to call again after a crash: a
    /// branch left behind is reused, as is a worktree already there on that branch, and a
    /// registration whose folder was deleted is pruned first.
    pub fn worktree_add(&self, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
        let path = self.absolute(path);
        run(&self.root, ["worktree", "prune"])?;
        let here = self.worktrees()?;
        if let Some(existing) = here.iter().find(|w| same_path(&w.path, &path)) {
            if existing.branch.as_deref() == Some(branch) {
                return Ok(());
            }
            // On another branch: `worktree add` below refuses and says why.
        }
        let mut args: Vec<OsString> = vec!["worktree".into(), "add".into(), "--quiet".into()];
        if self.branch_exists(branch)? {
            args.extend([path.into(), branch.into()]);
        } else {
            // No tracking: a lane's branch is local, whatever `base` is.
            args.extend(["--no-track".into(), "-b".into(), branch.into()]);
            args.extend([path.into(), base.into()]);
        }
        run(&self.root, &args)?;
        Ok(())
    }

    /// Remove the worktree at `path`, changes and all. Nothing to do when it is not
    /// registered (any more); a folder at `path` that is not a worktree is left alone.
    pub fn worktree_remove(&self, path: &Path) -> Result<(), GitError> {
        let path = self.absolute(path);
        run(&self.root, ["worktree", "prune"])?;
        if !self.worktrees()?.iter().any(|w| same_path(&w.path, &path)) {
            return Ok(());
        }
        let args: [&OsStr; 4] = [
            "worktree".as_ref(),
            "remove".as_ref(),
            "--force".as_ref(),
            path.as_os_str(),
        ];
        run(&self.root, args)?;
        Ok(())
    }

    /// Delete a branch, merged or not; nothing to do when it does not exist.
    pub fn delete_branch(&self, name: &str) -> Result<(), GitError> {
        if self.branch_exists(name)? {
            run(&self.root, ["branch", "--quiet", "-D", name])?;
        }
        Ok(())
    }

    /// Whether `dir`'s worktree has no changes to tracked files. Untracked files do not
    /// count: they never block a checkout unless they would be overwritten, which
    /// [`Repo::fast_forward`] reports on its own.
    pub fn is_clean(&self, dir: &Path) -> Result<bool, GitError> {
        Ok(dirty_files(&self.absolute(dir))?.is_empty())
    }

    /// Stage everything in `dir` (new files included) and commit it: agents often leave
    /// their work uncommitted. Returns the new commit, `None` when there was nothing.
    pub fn commit_all(&self, dir: &Path, message: &str) -> Result<Option<String>, GitError> {
        let dir = self.absolute(dir);
        run(&dir, ["add", "--all"])?;
        if probe(&dir, ["diff", "--cached", "--quiet"])? {
            return Ok(None);
        }
        let mut args = identity_args(&dir)?;
        args.extend(["commit", "--quiet", "-m", message]);
        run(&dir, &args)?;
        rev_parse(&dir, "HEAD").map(Some)
    }

    /// Rebase the branch checked out in `worktree_dir` onto `onto`. On a conflict the rebase
    /// is aborted, so the worktree is left clean on its branch as it was.
    pub fn rebase(&self, worktree_dir: &Path, onto: &str) -> Result<RebaseOutcome, GitError> {
        self.integrate(&self.absolute(worktree_dir), "rebase", onto)
    }

    /// The merge alternative to [`Repo::rebase`]: merge `onto` into the branch checked out
    /// in `worktree_dir`; aborted on a conflict.
    pub fn merge(&self, worktree_dir: &Path, onto: &str) -> Result<RebaseOutcome, GitError> {
        self.integrate(&self.absolute(worktree_dir), "merge", onto)
    }

    /// Move the `base` branch forward to `branch`, only if that is a fast-forward.
    ///
    /// Exactly-once: when `base` already contains `branch` (a redo after a crash) this is
    /// `AlreadyThere`. When some worktree has `base` checked out (normally the main one),
    /// its files must move with the ref, so `git merge --ff-only` runs there, which does
    /// both, and only when the tree is clean; otherwise the ref moves by compare-and-swap.
    pub fn fast_forward(&self, base: &str, branch: &str) -> Result<FastForward, GitError> {
        let old = self.head(base)?;
        let new = self.head(branch)?;
        if self.is_ancestor(&new, &old)? {
            return Ok(FastForward::AlreadyThere);
        }
        if !self.is_ancestor(&old, &new)? {
            return Ok(FastForward::NotFastForward);
        }
        let holder = self
            .worktrees()?
            .into_iter()
            .find(|w| w.branch.as_deref() == Some(base));
        if let Some(tree) = holder {
            // Only the operator's changes to files the landing changes hold it back: git
            // carries the others over, and the operator may be editing elsewhere (or have
            // millrace's own state files tracked).
            let dirty = dirty_files(&tree.path)?;
            if !dirty.is_empty() {
                let changed = changed_files(&tree.path, &old, &new)?;
                let files: Vec<String> =
                    dirty.into_iter().filter(|f| changed.contains(f)).collect();
                if !files.is_empty() {
                    return Ok(FastForward::MainTreeDirty { files });
                }
            }
            let args = ["merge", "--ff-only", "--quiet", new.as_str()];
            let out = output(&tree.path, args)?;
            if !out.status.success() {
                // Untracked files the update would overwrite: git lists them, tab-indented,
                // and touched nothing.
                let files = blocking_files(&out);
                if !files.is_empty() && self.head(base)? == old {
                    return Ok(FastForward::MainTreeDirty { files });
                }
                return Err(failed(&tree.path, args, &out));
            }
        } else {
            let refname = format!("refs/heads/{base}");
            let message = format!("millrace: fast-forward {base} to {branch}");
            let args = [
                "update-ref",
                "-m",
                message.as_str(),
                refname.as_str(),
                new.as_str(),
                old.as_str(),
            ];
            let out = output(&self.root, args)?;
            if !out.status.success() {
                // The ref moved under us; fine if it moved to (or past) this branch.
                if self.is_ancestor(&new, &self.head(base)?)? {
                    return Ok(FastForward::AlreadyThere);
                }
                return Err(failed(&self.root, args, &out));
            }
        }
        Ok(FastForward::Done { commit: new })
    }

    /// Make sure git ignores `rel_path` (relative to the root, e.g.
    /// `millrace-agents/worktrees/`), through `.git/info/exclude`: the user's `.gitignore`
    /// is theirs. Without it the main tree would see lanes' worktrees as untracked files.
    pub fn ensure_ignored(&self, rel_path: &str) -> Result<(), GitError> {
        let exclude = run(&self.root, ["rev-parse", "--git-path", "info/exclude"])?;
        let exclude = self.absolute(Path::new(exclude.trim_end_matches('\n')));
        let pattern = rel_path.trim_start_matches("./").trim_start_matches('/');
        let text = match fs::read_to_string(&exclude) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error("read", &exclude, e)),
        };
        if text
            .lines()
            .any(|l| l.trim().trim_start_matches('/') == pattern)
        {
            return Ok(());
        }
        if let Some(parent) = exclude.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
        }
        let separator = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&exclude)
            .and_then(|mut f| writeln!(f, "{separator}/{pattern}"))
            .map_err(|e| io_error("append to", &exclude, e))
    }

    /// Run `git <verb> <onto>` in `dir`; on failure, abort whatever it left in progress and
    /// report a conflict when there was one.
    fn integrate(&self, dir: &Path, verb: &str, onto: &str) -> Result<RebaseOutcome, GitError> {
        let mut args = identity_args(dir)?;
        args.push(verb);
        if verb == "merge" {
            args.push("--no-edit");
        }
        args.push(onto);
        let out = output(dir, &args)?;
        if out.status.success() {
            return Ok(RebaseOutcome::Clean);
        }
        if !in_progress(dir, verb)? {
            return Err(failed(dir, &args, &out));
        }
        let files = conflicted_files(dir)?;
        run(dir, [verb, "--abort"])?;
        if files.is_empty() {
            // Stopped for another reason (an untracked file in the way, say).
            return Err(failed(dir, &args, &out));
        }
        Ok(RebaseOutcome::Conflict {
            files,
            detail: conflict_detail(&out),
        })
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }
}

/// A `git -C dir` command with the environment pinned: never prompt (no terminal, no
/// editor), no system config, untranslated messages (some are parsed), no optional index
/// locks (read-only calls must not race a lane's own git), and no `GIT_DIR`-style
/// variables inherited from a hook that would point every call at another repository.
fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env("GIT_EDITOR", "true")
        .env("GIT_OPTIONAL_LOCKS", "0");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Run git in `dir`, whatever its exit status.
fn output<I, S>(dir: &Path, args: I) -> Result<Output, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(dir);
    cmd.args(args);
    tracing::debug!(?cmd, "git");
    cmd.output().map_err(|source| GitError::Spawn { source })
}

/// Run git in `dir` and return its stdout, untrimmed (porcelain output starts with spaces).
fn run<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let out = output(dir, args.clone())?;
    if !out.status.success() {
        return Err(failed(dir, args, &out));
    }
    Ok(stdout(&out))
}

/// A yes/no question answered by git's exit status: 0 is yes, 1 is no, anything else fails.
fn probe<I, S>(dir: &Path, args: I) -> Result<bool, GitError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let out = output(dir, args.clone())?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(failed(dir, args, &out)),
    }
}

fn failed<I, S>(dir: &Path, args: I, out: &Output) -> GitError
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut shown = vec!["-C".to_string(), dir.display().to_string()];
    shown.extend(
        args.into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let text = if err.trim().is_empty() {
        stdout(out)
    } else {
        err.into_owned()
    };
    GitError::Failed {
        args: shown,
        status: out.status,
        stderr: last_lines(&text, QUOTED_LINES),
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> GitError {
    GitError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn rev_parse(dir: &Path, rev: &str) -> Result<String, GitError> {
    let spec = format!("{rev}^{{commit}}");
    let out = run(
        dir,
        ["rev-parse", "--verify", "--end-of-options", spec.as_str()],
    )?;
    Ok(out.trim().to_string())
}

/// `-c` fallbacks for whichever of name and email `dir`'s config lacks, to put before the
/// subcommand of anything that commits (commit, rebase, merge). Environment variables like
/// `GIT_AUTHOR_NAME` still win over them.
fn identity_args(dir: &Path) -> Result<Vec<&'static str>, GitError> {
    let mut args = Vec::new();
    if !probe(dir, ["config", "--get", "user.name"])? {
        args.extend(["-c", FALLBACK_NAME]);
    }
    if !probe(dir, ["config", "--get", "user.email"])? {
        args.extend(["-c", FALLBACK_EMAIL]);
    }
    Ok(args)
}

/// Tracked files with changes (staged or not) in `dir`'s worktree.
fn dirty_files(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = run(dir, ["status", "--porcelain", "-z", "--untracked-files=no"])?;
    let mut files = Vec::new();
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let (status, path) = (entry.get(..2).unwrap_or(""), entry.get(3..).unwrap_or(""));
        files.push(path.to_string());
        if status.contains(['R', 'C']) {
            // A rename or copy is followed by its source path.
            fields.next();
        }
    }
    Ok(files)
}

/// The files that differ between two commits.
fn changed_files(dir: &Path, from: &str, to: &str) -> Result<Vec<String>, GitError> {
    let out = run(dir, ["diff", "--name-only", "-z", from, to])?;
    Ok(out
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect())
}

fn conflicted_files(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = run(dir, ["diff", "--name-only", "-z", "--diff-filter=U"])?;
    Ok(out
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect())
}

/// Whether a rebase or merge (`verb`) is stopped half-way in `dir`.
fn in_progress(dir: &Path, verb: &str) -> Result<bool, GitError> {
    if verb == "merge" {
        return probe(dir, ["rev-parse", "--quiet", "--verify", "MERGE_HEAD"]);
    }
    for state in ["rebase-merge", "rebase-apply"] {
        let path = run(dir, ["rev-parse", "--git-path", state])?;
        if dir.join(path.trim_end_matches('\n')).exists() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// git's `CONFLICT` lines (and which commit it could not apply), else its last lines.
fn conflict_detail(out: &Output) -> String {
    let text = format!("{}\n{}", stdout(out), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("CONFLICT") || l.starts_with("error: could not apply"))
        .collect();
    if lines.is_empty() {
        last_lines(&text, QUOTED_LINES)
    } else {
        lines.join("\n")
    }
}

/// The tab-indented paths git lists when local files block a checkout.
fn blocking_files(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Parse `git worktree list --porcelain`: blank-line separated records of `key value` lines.
fn parse_worktrees(text: &str) -> Vec<Worktree> {
    let mut trees = Vec::new();
    let mut current: Option<Worktree> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            trees.extend(current.take());
            current = Some(Worktree {
                path: PathBuf::from(path),
                branch: None,
                head: None,
                locked: false,
            });
        } else if let Some(tree) = current.as_mut() {
            if let Some(head) = line.strip_prefix("HEAD ") {
                tree.head = Some(head.to_string());
            } else if let Some(branch) = line.strip_prefix("branch ") {
                let short = branch.strip_prefix("refs/heads/").unwrap_or(branch);
                tree.branch = Some(short.to_string());
            } else if line == "locked" || line.starts_with("locked ") {
                tree.locked = true;
            }
        }
    }
    trees.extend(current);
    trees
}

/// Whether two paths name the same place. git reports worktree paths with symlinks
/// resolved, so both sides are resolved; a path that does not exist (yet) is resolved
/// through its parent.
fn same_path(a: &Path, b: &Path) -> bool {
    fn resolve(p: &Path) -> PathBuf {
        if let Ok(real) = fs::canonicalize(p) {
            return real;
        }
        match (p.parent().map(fs::canonicalize), p.file_name()) {
            (Some(Ok(parent)), Some(name)) => parent.join(name),
            _ => p.to_path_buf(),
        }
    }
    resolve(a) == resolve(b)
}
