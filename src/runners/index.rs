//! `state/cache/runs.tsv`: the run folders newest first, so `runs ls`, `doctor` and
//! retention need neither list nor stat 100 000 run folders.

use std::path::PathBuf;

use crate::workspace::stamp::{self, DirStamp};
use crate::workspace::Workspace;

/// `state/cache/runs.tsv`: every run folder, newest first by when the index first saw it
/// change, with the count and the `runs/` folder's stamp in its header. Reading a page reads
/// only the header and the page's lines. When the stamp disagrees with the folder (a run was
/// added or deleted) the index is rebuilt from one listing of names, reusing the times it
/// knows and reading the times of new folders only. Derived: deleting it loses nothing.
pub struct RunsIndex;

const RUNS_INDEX_HEADER: &str = "millrace-runs-index-v1";

impl RunsIndex {
    fn path(ws: &Workspace) -> PathBuf {
        ws.cache_path("runs.tsv")
    }

    /// Run ids `offset..offset + limit` of the newest-first order, and the total.
    pub fn page(ws: &Workspace, offset: usize, limit: usize) -> (Vec<String>, usize) {
        use std::io::BufRead;
        let Some(stamp) = DirStamp::of(&ws.runs_dir()) else {
            return (Vec::new(), 0);
        };
        if let Ok(file) = crate::workspace::atomic::open_regular(Self::path(ws)) {
            let mut lines = std::io::BufReader::new(file).lines();
            let header = lines.next().and_then(|l| l.ok()).unwrap_or_default();
            if let Some(total) = stamp.matching(&header, RUNS_INDEX_HEADER) {
                let page: Vec<String> = lines
                    .map_while(|l| l.ok())
                    .skip(offset)
                    .take(limit)
                    .filter_map(|l| Self::parse_line(&l))
                    .filter(|(_, id)| Self::is_run_dir(ws, id))
                    .map(|(_, id)| id)
                    .collect();
                return (page, total);
            }
        }
        let all = Self::rebuild(ws, stamp);
        let total = all.len();
        let page = all.into_iter().skip(offset).take(limit);
        (page.map(|(_, id)| id).collect(), total)
    }

    /// Every run, newest first, with the time the index orders it by (ns since the epoch).
    pub fn all(ws: &Workspace) -> Vec<(i128, String)> {
        let Some(stamp) = DirStamp::of(&ws.runs_dir()) else {
            return Vec::new();
        };
        if let Ok(text) = crate::workspace::atomic::read_regular_string(Self::path(ws)) {
            let mut lines = text.lines();
            if stamp
                .matching(lines.next().unwrap_or_default(), RUNS_INDEX_HEADER)
                .is_some()
            {
                return lines.filter_map(Self::parse_line).collect();
            }
        }
        Self::rebuild(ws, stamp)
    }

    /// Whether `runs/<id>` is a real folder, not a link planted where a run was: neither
    /// readers nor retention follow one out of `runs/`.
    pub fn is_run_dir(ws: &Workspace, id: &str) -> bool {
        std::fs::symlink_metadata(ws.run_dir(id)).is_ok_and(|m| m.is_dir())
    }

    /// One line, `<time>\t<run id>`. The file is in the workspace, where an agent can write:
    /// an id that is not a plain folder name (`..`, a path, a hidden name) is dropped, so no
    /// reader or retention ever acts outside `runs/` through it.
    fn parse_line(line: &str) -> Option<(i128, String)> {
        let (time, id) = line.split_once('\t')?;
        let plain = !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\\']);
        plain.then_some((time.parse().ok()?, id.to_string()))
    }

    /// The old index's times for the runs still there, the folder times of new ones; saved
    /// when the folder has settled and did not change meanwhile.
    fn rebuild(ws: &Workspace, stamp: DirStamp) -> Vec<(i128, String)> {
        let known: std::collections::HashMap<String, i128> =
            crate::workspace::atomic::read_regular_string(Self::path(ws))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(Self::parse_line)
                .map(|(time, id)| (id, time))
                .collect();
        let Ok(read) = std::fs::read_dir(ws.runs_dir()) else {
            return Vec::new();
        };
        let mut runs: Vec<(i128, String)> = read
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let run_id = e.file_name().to_string_lossy().into_owned();
                if run_id.starts_with('.') {
                    return None;
                }
                let time = match known.get(&run_id) {
                    Some(time) => *time,
                    None => DirStamp::of(&e.path())?.mtime_ns,
                };
                Some((time, run_id))
            })
            .collect();
        runs.sort_by(|(ta, a), (tb, b)| tb.cmp(ta).then_with(|| a.cmp(b)));
        if stamp.settled() && DirStamp::of(&ws.runs_dir()) == Some(stamp) {
            let mut text = stamp.header(RUNS_INDEX_HEADER, runs.len());
            for (time, id) in &runs {
                text.push_str(&format!("{time}\t{id}\n"));
            }
            stamp::save_derived(&Self::path(ws), &text);
        }
        runs
    }
}
