//! Real repositories in temporary directories, driven by the real git binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::*;

/// git for the tests' own setup: pinned identity, no system or global config.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

fn commit(dir: &Path, name: &str, text: &str, message: &str) -> String {
    write(dir, name, text);
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A repository on `main` with one commit of `a.txt`, and a place for worktrees beside it.
struct Fixture {
    dir: TempDir,
    root: PathBuf,
    repo: Repo,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        fs::create_dir(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        // The module's own commits read the user's global config; keep signing out of it.
        git(&root, &["config", "commit.gpgsign", "false"]);
        commit(&root, "a.txt", "one\ntwo\nthree\n", "initial");
        let repo = Repo::open(&root).unwrap();
        Fixture { dir, root, repo }
    }

    fn lane(&self, task: &str) -> PathBuf {
        self.dir.path().join("worktrees").join(task)
    }

    /// A lane for `task` on `millrace/<task>` from main.
    fn add_lane(&self, task: &str) -> PathBuf {
        let path = self.lane(task);
        self.repo
            .worktree_add(&path, &format!("millrace/{task}"), "main")
            .unwrap();
        path
    }
}

#[test]
fn open_outside_a_repository_is_not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let err = Repo::open(dir.path()).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
    let err = Repo::open(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
}

#[test]
fn open_from_a_subdirectory_finds_the_root() {
    let fx = Fixture::new();
    fs::create_dir(fx.root.join("sub")).unwrap();
    let repo = Repo::open(&fx.root.join("sub")).unwrap();
    assert_eq!(
        fs::canonicalize(&repo.root).unwrap(),
        fs::canonicalize(&fx.root).unwrap()
    );
}

#[test]
fn current_branch_head_and_branch_exists() {
    let fx = Fixture::new();
    assert_eq!(fx.repo.current_branch().unwrap().as_deref(), Some("main"));
    let head = fx.repo.head("main").unwrap();
    assert_eq!(head, git(&fx.root, &["rev-parse", "HEAD"]));
    assert!(fx.repo.branch_exists("main").unwrap());
    assert!(!fx.repo.branch_exists("millrace/none").unwrap());
    let err = fx.repo.head("no-such-rev").unwrap_err();
    assert!(matches!(err, GitError::Failed { .. }));
    git(&fx.root, &["checkout", "-q", "--detach"]);
    assert_eq!(fx.repo.current_branch().unwrap(), None);
}

#[test]
fn failed_command_error_names_the_command_and_quotes_git() {
    let fx = Fixture::new();
    let err = fx.repo.head("no-such-rev").unwrap_err().to_string();
    assert!(err.contains("rev-parse"), "{err}");
    assert!(err.contains("no-such-rev"), "{err}");
    assert!(err.contains("fatal:"), "{err}");
}

#[test]
fn worktree_add_creates_branch_and_is_idempotent() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    assert_eq!(read(&path, "a.txt"), "one\ntwo\nthree\n");
    assert!(fx.repo.branch_exists("millrace/t1").unwrap());
    write(&path, "work.txt", "in progress\n");
    fx.repo.worktree_add(&path, "millrace/t1", "main").unwrap();
    // Reused, not recreated: the work in progress is still there.
    assert_eq!(read(&path, "work.txt"), "in progress\n");
    let trees = fx.repo.worktrees().unwrap();
    assert_eq!(trees.len(), 2);
    assert_eq!(trees[0].branch.as_deref(), Some("main"));
    let lane = trees.iter().find(|w| same_path(&w.path, &path)).unwrap();
    assert_eq!(lane.branch.as_deref(), Some("millrace/t1"));
    assert_eq!(
        lane.head.as_deref(),
        Some(fx.repo.head("main").unwrap().as_str())
    );
}

#[test]
fn worktree_add_works_after_the_folder_was_deleted() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    fs::remove_dir_all(&path).unwrap();
    fx.repo.worktree_add(&path, "millrace/t1", "main").unwrap();
    assert_eq!(read(&path, "a.txt"), "one\ntwo\nthree\n");
    assert_eq!(fx.repo.worktrees().unwrap().len(), 2);
}

#[test]
fn worktree_add_reuses_a_branch_left_by_a_crash() {
    let fx = Fixture::new();
    git(&fx.root, &["branch", "millrace/t1"]);
    let lane_commit = {
        let path = fx.lane("scratch");
        git(
            &fx.root,
            &[
                "worktree",
                "add",
                "-q",
                path.to_str().unwrap(),
                "millrace/t1",
            ],
        );
        let id = commit(&path, "b.txt", "lane\n", "lane work");
        git(&fx.root, &["worktree", "remove", path.to_str().unwrap()]);
        id
    };
    let path = fx.lane("t1");
    // `base` is ignored for an existing branch: its commits are kept.
    fx.repo.worktree_add(&path, "millrace/t1", "main").unwrap();
    assert_eq!(read(&path, "b.txt"), "lane\n");
    assert_eq!(fx.repo.head("millrace/t1").unwrap(), lane_commit);
}

#[test]
fn worktree_add_refuses_a_path_held_by_another_branch() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    let err = fx.repo.worktree_add(&path, "millrace/t2", "main");
    assert!(err.is_err());
}

#[test]
fn worktree_remove_and_delete_branch_are_idempotent() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    write(&path, "a.txt", "dirty\n");
    write(&path, "new.txt", "untracked\n");
    fx.repo.worktree_remove(&path).unwrap();
    assert!(!path.exists());
    assert_eq!(fx.repo.worktrees().unwrap().len(), 1);
    fx.repo.worktree_remove(&path).unwrap();
    fx.repo.delete_branch("millrace/t1").unwrap();
    assert!(!fx.repo.branch_exists("millrace/t1").unwrap());
    fx.repo.delete_branch("millrace/t1").unwrap();
}

#[test]
fn worktree_remove_after_the_folder_was_deleted() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    fs::remove_dir_all(&path).unwrap();
    fx.repo.worktree_remove(&path).unwrap();
    assert_eq!(fx.repo.worktrees().unwrap().len(), 1);
    fx.repo.delete_branch("millrace/t1").unwrap();
}

#[test]
fn commit_all_stages_new_files_and_reports_nothing_to_commit() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    assert_eq!(fx.repo.commit_all(&path, "nothing").unwrap(), None);
    write(&path, "a.txt", "one\nTWO\nthree\n");
    write(&path, "new.txt", "new\n");
    fs::create_dir(path.join("dir")).unwrap();
    write(&path.join("dir"), "nested.txt", "nested\n");
    let id = fx.repo.commit_all(&path, "agent work").unwrap().unwrap();
    assert_eq!(fx.repo.head("millrace/t1").unwrap(), id);
    assert!(fx.repo.is_clean(&path).unwrap());
    let files = git(&path, &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(files, "a.txt\ndir/nested.txt\nnew.txt");
    assert_eq!(git(&path, &["log", "-1", "--format=%s"]), "agent work");
    // main is untouched.
    assert_eq!(read(&fx.root, "a.txt"), "one\ntwo\nthree\n");
    assert_eq!(fx.repo.commit_all(&path, "again").unwrap(), None);
}

/// A commit in a lane whose `HEAD.lock` another git process holds (one a killed daemon left
/// running) names the lock, so the landing waits for it instead of blocking the task; any
/// other failure does not.
#[test]
fn a_lock_held_by_another_git_is_recognised() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    write(&path, "a.txt", "changed\n");
    let gitdir = PathBuf::from(git(&path, &["rev-parse", "--absolute-git-dir"]));
    let lock = gitdir.join("HEAD.lock");
    fs::write(&lock, "").unwrap();
    let err = fx.repo.commit_all(&path, "agent work").unwrap_err();
    assert_eq!(err.held_lock(), Some(lock.to_str().unwrap()), "{err}");
    fs::remove_file(&lock).unwrap();
    assert!(fx.repo.commit_all(&path, "agent work").unwrap().is_some());
    let other = fx.repo.worktree_add(&fx.lane("t2"), "bad..name", "main");
    assert_eq!(other.unwrap_err().held_lock(), None);
}

#[test]
fn is_clean_ignores_untracked_files() {
    let fx = Fixture::new();
    assert!(fx.repo.is_clean(&fx.root).unwrap());
    write(&fx.root, "untracked.txt", "x\n");
    assert!(fx.repo.is_clean(&fx.root).unwrap());
    write(&fx.root, "a.txt", "changed\n");
    assert!(!fx.repo.is_clean(&fx.root).unwrap());
    git(&fx.root, &["add", "a.txt"]);
    assert!(!fx.repo.is_clean(&fx.root).unwrap());
}

#[test]
fn rebase_clean_moves_the_lane_onto_base() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    commit(&path, "b.txt", "lane\n", "lane work");
    let main = commit(&fx.root, "c.txt", "main\n", "main work");
    assert_eq!(fx.repo.rebase(&path, "main").unwrap(), RebaseOutcome::Clean);
    assert!(fx.repo.is_ancestor(&main, "millrace/t1").unwrap());
    assert_eq!(read(&path, "c.txt"), "main\n");
    assert_eq!(read(&path, "b.txt"), "lane\n");
}

/// A lane and main that both change line two of `a.txt`.
fn conflicting(fx: &Fixture) -> (PathBuf, String) {
    let path = fx.add_lane("t1");
    let lane = commit(&path, "a.txt", "one\nLANE\nthree\n", "lane edit");
    commit(&fx.root, "a.txt", "one\nMAIN\nthree\n", "main edit");
    (path, lane)
}

#[test]
fn rebase_conflict_lists_the_file_and_leaves_the_worktree_clean() {
    let fx = Fixture::new();
    let (path, lane) = conflicting(&fx);
    let RebaseOutcome::Conflict { files, detail } = fx.repo.rebase(&path, "main").unwrap() else {
        panic!("expected a conflict");
    };
    assert_eq!(files, ["a.txt"]);
    assert!(detail.contains("CONFLICT"), "{detail}");
    assert!(fx.repo.is_clean(&path).unwrap());
    assert_eq!(git(&path, &["branch", "--show-current"]), "millrace/t1");
    assert_eq!(fx.repo.head("millrace/t1").unwrap(), lane);
    assert_eq!(read(&path, "a.txt"), "one\nLANE\nthree\n");
    // Nothing is left in progress: the next attempt starts fresh.
    assert!(matches!(
        fx.repo.rebase(&path, "main").unwrap(),
        RebaseOutcome::Conflict { .. }
    ));
}

#[test]
fn rebase_of_a_dirty_worktree_is_an_error() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    commit(&fx.root, "c.txt", "main\n", "main work");
    write(&path, "a.txt", "uncommitted\n");
    let err = fx.repo.rebase(&path, "main").unwrap_err();
    assert!(matches!(err, GitError::Failed { .. }), "{err}");
    assert_eq!(read(&path, "a.txt"), "uncommitted\n");
}

#[test]
fn merge_clean_and_merge_conflict() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    commit(&path, "b.txt", "lane\n", "lane work");
    let main = commit(&fx.root, "c.txt", "main\n", "main work");
    assert_eq!(fx.repo.merge(&path, "main").unwrap(), RebaseOutcome::Clean);
    assert!(fx.repo.is_ancestor(&main, "millrace/t1").unwrap());
    assert_eq!(read(&path, "c.txt"), "main\n");

    let fx = Fixture::new();
    let (path, lane) = conflicting(&fx);
    let RebaseOutcome::Conflict { files, detail } = fx.repo.merge(&path, "main").unwrap() else {
        panic!("expected a conflict");
    };
    assert_eq!(files, ["a.txt"]);
    assert!(detail.contains("CONFLICT"), "{detail}");
    assert!(fx.repo.is_clean(&path).unwrap());
    assert_eq!(fx.repo.head("millrace/t1").unwrap(), lane);
    assert_eq!(read(&path, "a.txt"), "one\nLANE\nthree\n");
}

#[test]
fn fast_forward_updates_the_clean_main_tree_then_is_already_there() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    let lane = commit(&path, "b.txt", "lane\n", "lane work");
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::Done {
            commit: lane.clone()
        }
    );
    assert_eq!(fx.repo.head("main").unwrap(), lane);
    // The main tree's files moved with the ref.
    assert_eq!(read(&fx.root, "b.txt"), "lane\n");
    assert!(fx.repo.is_clean(&fx.root).unwrap());
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::AlreadyThere
    );
}

#[test]
fn fast_forward_moves_the_ref_when_main_tree_is_elsewhere() {
    let fx = Fixture::new();
    git(&fx.root, &["checkout", "-q", "-b", "other"]);
    write(&fx.root, "a.txt", "dirty but irrelevant\n");
    let path = fx.add_lane("t1");
    let lane = commit(&path, "b.txt", "lane\n", "lane work");
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::Done {
            commit: lane.clone()
        }
    );
    assert_eq!(fx.repo.head("main").unwrap(), lane);
    assert!(!fx.root.join("b.txt").exists());
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::AlreadyThere
    );
}

#[test]
fn fast_forward_refuses_a_diverged_branch() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    commit(&path, "b.txt", "lane\n", "lane work");
    let main = commit(&fx.root, "c.txt", "main\n", "main work");
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::NotFastForward
    );
    assert_eq!(fx.repo.head("main").unwrap(), main);
}

#[test]
fn fast_forward_leaves_a_main_tree_with_changes_to_the_same_files_alone() {
    let fx = Fixture::new();
    let before = fx.repo.head("main").unwrap();
    let path = fx.add_lane("t1");
    commit(&path, "a.txt", "lane\n", "lane work");
    write(&fx.root, "a.txt", "user edit\n");
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::MainTreeDirty {
            files: vec!["a.txt".into()]
        }
    );
    assert_eq!(fx.repo.head("main").unwrap(), before);
    assert_eq!(read(&fx.root, "a.txt"), "user edit\n");
}

#[test]
fn fast_forward_carries_the_operators_edits_to_other_files_over() {
    let fx = Fixture::new();
    let path = fx.add_lane("t1");
    commit(&path, "b.txt", "lane\n", "lane work");
    write(&fx.root, "a.txt", "user edit\n");
    assert!(matches!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::Done { .. }
    ));
    assert_eq!(read(&fx.root, "a.txt"), "user edit\n");
    assert_eq!(read(&fx.root, "b.txt"), "lane\n");
}

#[test]
fn fast_forward_blocked_by_an_untracked_file_it_would_overwrite() {
    let fx = Fixture::new();
    let before = fx.repo.head("main").unwrap();
    let path = fx.add_lane("t1");
    commit(&path, "b.txt", "lane\n", "lane work");
    write(&fx.root, "b.txt", "user's own\n");
    assert_eq!(
        fx.repo.fast_forward("main", "millrace/t1").unwrap(),
        FastForward::MainTreeDirty {
            files: vec!["b.txt".into()]
        }
    );
    assert_eq!(fx.repo.head("main").unwrap(), before);
    assert_eq!(read(&fx.root, "b.txt"), "user's own\n");
}

#[test]
fn ensure_ignored_appends_once_and_hides_lane_worktrees() {
    let fx = Fixture::new();
    fx.repo
        .ensure_ignored("millrace-agents/worktrees/")
        .unwrap();
    fx.repo
        .ensure_ignored("millrace-agents/worktrees/")
        .unwrap();
    let exclude = read(&fx.root, ".git/info/exclude");
    assert_eq!(exclude.matches("millrace-agents/worktrees/").count(), 1);
    assert!(
        exclude.ends_with("/millrace-agents/worktrees/\n"),
        "{exclude}"
    );
    let path = fx.root.join("millrace-agents/worktrees/t1");
    fx.repo
        .worktree_add(
            Path::new("millrace-agents/worktrees/t1"),
            "millrace/t1",
            "main",
        )
        .unwrap();
    assert!(path.join("a.txt").exists());
    assert_eq!(git(&fx.root, &["status", "--porcelain"]), "");
}

#[test]
fn ensure_ignored_creates_a_missing_exclude_file() {
    let fx = Fixture::new();
    fs::remove_file(fx.root.join(".git/info/exclude")).ok();
    fx.repo.ensure_ignored("lanes/").unwrap();
    assert_eq!(read(&fx.root, ".git/info/exclude"), "/lanes/\n");
}

#[test]
fn parse_worktrees_reads_porcelain() {
    let text = "worktree /r\nHEAD abc\nbranch refs/heads/main\n\n\
                worktree /r/wt\nHEAD def\ndetached\nlocked initializing\n\n\
                worktree /bare\nbare\n\n";
    assert_eq!(
        parse_worktrees(text),
        [
            Worktree {
                path: "/r".into(),
                branch: Some("main".into()),
                head: Some("abc".into()),
                locked: false,
            },
            Worktree {
                path: "/r/wt".into(),
                branch: None,
                head: Some("def".into()),
                locked: true,
            },
            Worktree {
                path: "/bare".into(),
                branch: None,
                head: None,
                locked: false,
            },
        ]
    );
}
