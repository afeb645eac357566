//! A cold claim (`run once`) trusts nothing it did not check: the queue index is only a cache
//! of parsed summaries, and the first look at the queue, taken while the engine starts, is
//! looked at again when the folder changed since.

use crate::common::*;

const QUEUE: &str = "millrace-agents/tasks/queue";
const INDEX: &str = "millrace-agents/state/cache/task-queue.tsv";

/// A task created at `created` (always 20 characters, so an edit keeps the file's size).
fn task_at(id: &str, created: &str) -> String {
    task_doc(id, "").replace("2026-03-01T10:00:00Z", created)
}

/// Rewrite queued task `t1` in place to be the oldest: same inode, size and mtime (set
/// back); only its ctime tells. Returns the file's metadata before and after.
fn make_t1_oldest_in_place(ws: &TestWs) -> (std::fs::Metadata, std::fs::Metadata) {
    let path = ws.path().join(QUEUE).join("t1.md");
    let before = std::fs::metadata(&path).unwrap();
    std::fs::write(&path, task_at("t1", "2026-02-01T10:00:00Z")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    (before, std::fs::metadata(&path).unwrap())
}

/// `run once`, then hand the claimed task back to the queue.
fn claim_once(ws: &TestWs) -> String {
    ws.ok(&["run", "once"]);
    let id = ws.claimed().pop().expect("a claim");
    ws.ok(&["clear-stale-state", "--reason", "test"]);
    assert_eq!(ws.folder_of(&id), ["tasks/queue"]);
    id
}

fn queued_pair() -> TestWs {
    let ws = TestWs::new();
    ws.use_scripted(None);
    ws.write(
        &format!("{QUEUE}/t1.md"),
        &task_at("t1", "2026-03-02T10:00:00Z"),
    );
    ws.write(
        &format!("{QUEUE}/t2.md"),
        &task_at("t2", "2026-03-01T10:00:00Z"),
    );
    ws
}

#[test]
fn a_file_edited_in_place_since_the_index_was_written_is_read_again() {
    let ws = queued_pair();
    assert_eq!(claim_once(&ws), "t2");
    assert!(ws.read(INDEX).contains("t1.md\t"), "the index holds t1");

    let (before, after) = make_t1_oldest_in_place(&ws);
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );

    assert_eq!(
        claim_once(&ws),
        "t1",
        "the edit made t1 the oldest; the index's row for it is stale"
    );
}

#[test]
fn a_deleted_or_garbled_queue_index_is_rebuilt_from_the_folder() {
    let ws = queued_pair();
    assert_eq!(claim_once(&ws), "t2");
    let index = ws.path().join(INDEX);
    std::fs::remove_file(&index).unwrap();
    assert_eq!(claim_once(&ws), "t2");
    let rebuilt = ws.read(INDEX);
    assert!(rebuilt.contains("t1.md\t") && rebuilt.contains("t2.md\t"));

    // A row that lies about its file (another id, an order of its own) and a line of
    // garbage: the lie is caught by the file's key, the garbage is left out.
    let forged = rebuilt
        .lines()
        .map(|line| {
            if line.starts_with("t1.md\t") {
                let mut fields: Vec<&str> = line.split('\t').collect();
                fields[1] = "1";
                fields[7] = "-1";
                fields.join("\t")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&index, format!("{forged}\nnot\ta row\n")).unwrap();
    assert_eq!(
        claim_once(&ws),
        "t2",
        "the forged order of t1 is not believed"
    );
    let repaired = ws.read(INDEX);
    assert!(!repaired.contains("not\ta row"), "{repaired}");
    assert!(!repaired.contains("\t-1\t"), "{repaired}");
}

#[test]
fn a_task_put_back_into_the_queue_while_the_engine_starts_is_claimed_in_order() {
    let ws = queued_pair();
    assert_eq!(claim_once(&ws), "t2");
    // An older task left in active/ by a run that died before it was recorded: the start
    // puts it back into the queue after the first look at the queue was taken.
    ws.write(
        "millrace-agents/tasks/active/t0.md",
        &task_at("t0", "2026-01-01T10:00:00Z"),
    );
    ws.ok(&["run", "once"]);
    assert_eq!(ws.claimed().pop().as_deref(), Some("t0"));
}

#[test]
fn a_task_file_dated_before_1970_is_still_queued_work() {
    let ws = TestWs::new();
    ws.use_scripted(None);
    let path = ws.write(
        &format!("{QUEUE}/t1.md"),
        &task_at("t1", "2026-03-02T10:00:00Z"),
    );
    let sixties = std::time::UNIX_EPOCH - std::time::Duration::from_secs(10 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(sixties)
        .unwrap();
    ws.ok(&["run", "once"]);
    assert_eq!(ws.claimed(), ["t1"]);
}

#[test]
fn a_daemon_that_starts_paused_reads_files_as_they_are_when_it_resumes() {
    let ws = queued_pair();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 0\n  poll: true\n  poll_interval_ms: 50\n",
    );
    ws.ok(&["pause"]);
    let daemon = ws.spawn_daemon(&[]);
    // Two commands answered by the daemon one after the other ("already paused", exit 5):
    // at least two ticks went by, and the look the daemon took as it started is old news.
    for _ in 0..2 {
        let out = ws.run(&["pause"]);
        assert_eq!(out.status.code(), Some(5));
        assert!(String::from_utf8_lossy(&out.stdout).contains("applied by the running daemon"));
    }

    make_t1_oldest_in_place(&ws);

    ws.ok(&["resume"]);
    wait_for("a claim", std::time::Duration::from_secs(20), || {
        !ws.claimed().is_empty()
    });
    assert_eq!(ws.claimed()[0], "t1");
    ws.ok(&["stop"]);
    daemon.wait_exit(std::time::Duration::from_secs(20));
}

/// File events a paused daemon takes are kept until it looks at the queue again: a task
/// first seen empty (as a `>` redirect or an editor leaves it for an instant) and finished in
/// place while the daemon was paused is read as it is when the daemon resumes, not taken from
/// the look before the pause (it was quarantined as "work document is empty").
#[test]
fn a_task_finished_in_place_while_the_daemon_is_paused_is_read_when_it_resumes() {
    let ws = TestWs::new();
    ws.write(
        "millrace-agents/millrace.yaml",
        "runners:\n  default_runner: scripted\nwatchers:\n  settle_ms: 1500\n",
    );
    let daemon = ws.spawn_daemon(&[]);
    let live = ws.write(&format!("{QUEUE}/t-live.md"), "");
    ws.write(&format!("{QUEUE}/t-first.md"), &task_doc("t-first", ""));
    // The look that claimed t-first saw t-live empty and too young to be refused.
    wait_for(
        "t-first claimed",
        std::time::Duration::from_secs(20),
        || ws.claimed().contains(&"t-first".to_string()),
    );
    ws.ok(&["pause"]);
    std::fs::write(&live, task_doc("t-live", "")).unwrap();
    // Answered by the daemon ("already paused", exit 5): ticks went by while paused.
    let out = ws.run(&["pause"]);
    assert_eq!(out.status.code(), Some(5));
    ws.ok(&["resume"]);
    let quarantined = |id: &str| {
        ws.events()
            .iter()
            .any(|e| e["event_type"] == "work_item_quarantined" && e.to_string().contains(id))
    };
    wait_for(
        "t-live claimed or refused",
        std::time::Duration::from_secs(20),
        || ws.claimed().contains(&"t-live".to_string()) || quarantined("t-live"),
    );
    assert!(!quarantined("t-live"), "{:#?}", ws.events());
    assert!(ws.claimed().contains(&"t-live".to_string()));
    ws.ok(&["stop"]);
    daemon.wait_exit(std::time::Duration::from_secs(20));
}
