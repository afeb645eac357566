//! The line grammar and parse algorithm of spec 02 §2–§4.
//!
//! Structure errors (steps 1–4) stop at the first problem, as in the reference; content is
//! then checked field by field in `validate`.

use super::schema::{known_label, Shape};
use super::validate::{self, Entry, Raw, Source};
use super::{DocError, Document};
use crate::model::WorkItemKind;

/// Whitespace as Python's `str.isspace` sees it: Unicode White_Space plus the separators
/// U+001C–U+001F. The reference trims with it, so we must too.
pub(super) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()` of the reference.
pub(super) fn py_trim(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

/// The characters Python's `str.splitlines` ends a line at (`\r\n` counts once).
pub(super) fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python's `str.splitlines()`: no empty line after a final break, none at all for "".
pub(super) fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if !is_line_break(c) {
            continue;
        }
        lines.push(&text[start..at]);
        start = at + c.len_utf8();
        if c == '\r' {
            if let Some(&(next_at, '\n')) = chars.peek() {
                start = next_at + 1;
                chars.next();
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The H1 title of a first line: `#`, whitespace, text.
fn heading(line: &str) -> Option<&str> {
    let rest = py_trim(line).strip_prefix('#')?;
    if !rest.starts_with(is_py_space) {
        return None;
    }
    Some(py_trim(rest)).filter(|title| !title.is_empty())
}

/// A field line: `Label:` and an optional inline value (trimmed, possibly empty).
fn field_line(line: &str) -> Option<(&str, &str)> {
    let trimmed = py_trim(line);
    let (label, value) = trimmed.split_once(':')?;
    let mut chars = label.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-');
    (starts_with_letter && rest_ok).then(|| (label, py_trim(value)))
}

/// A list item: `-`, whitespace, then text; returns the text trimmed.
fn list_item(line: &str) -> Option<&str> {
    let rest = py_trim(line).strip_prefix('-')?;
    if !rest.starts_with(is_py_space) {
        return None;
    }
    Some(py_trim(rest)).filter(|value| !value.is_empty())
}

fn is_blank(line: &str) -> bool {
    py_trim(line).is_empty()
}

/// Why the first line is not an H1 title, in the reference's words plus a hint where the
/// cause is invisible in an editor.
fn not_a_title(first: &str) -> String {
    let base = "must start with a markdown H1 title";
    if first.starts_with('\u{feff}') {
        format!("{base} (found a byte-order mark before it; save the file as UTF-8 without BOM)")
    } else if is_blank(first) {
        format!("{base} (line 1 is blank)")
    } else {
        base.to_string()
    }
}

/// Parse `text` as a document of `kind` (spec 02 §3).
///
/// One deliberate difference from the reference: list items that follow a blank line inside
/// a list section stay part of that list. The reference ends the list at the blank line and
/// silently drops the later items as prose; the author clearly meant them as items, and this
/// project never drops content silently. Only items continue a list after a blank line: a
/// prose line there ends it, exactly where the reference would have ignored it, so every
/// document the reference accepts is still accepted and nothing it rejects becomes valid.
pub(super) fn parse(kind: WorkItemKind, name: &str, text: &str) -> Result<Document, DocError> {
    let error = |line: Option<usize>, message: String| DocError {
        file: name.to_string(),
        line,
        message,
    };
    let lines = split_lines(text);
    let Some(first) = lines.first() else {
        return Err(error(None, "work document is empty".to_string()));
    };
    let Some(title) = heading(first) else {
        return Err(error(Some(1), not_a_title(first)));
    };

    let mut entries: Vec<Entry> = Vec::new();
    let mut index = 1;
    while index < lines.len() {
        let line_number = index + 1;
        let current = lines[index];
        index += 1;
        let Some((label, inline)) = field_line(current) else {
            continue;
        };
        let Some(field) = known_label(label) else {
            while index < lines.len() && field_line(lines[index]).is_none() {
                index += 1;
            }
            continue;
        };
        if entries.iter().any(|entry| entry.field.label == field.label) {
            return Err(error(Some(line_number), format!("repeats field `{label}`")));
        }
        if !inline.is_empty() {
            entries.push(Entry {
                field,
                raw: Raw::Text(inline.to_string()),
                line: Some(line_number),
            });
            continue;
        }
        match field.shape {
            Shape::Scalar => {
                while index < lines.len() && is_blank(lines[index]) {
                    index += 1;
                }
                if index < lines.len() && list_item(lines[index]).is_some() {
                    return Err(error(
                        Some(index + 1),
                        format!("has list item under scalar field `{label}`"),
                    ));
                }
            }
            Shape::List => {
                let (items, next) = collect_items(&lines, index).map_err(|bad_line| {
                    error(
                        Some(bad_line),
                        format!("has invalid list item under `{label}`"),
                    )
                })?;
                index = next;
                entries.push(Entry {
                    field,
                    raw: Raw::Items(items),
                    line: Some(line_number),
                });
            }
        }
    }

    if let Some(entry) = entries.iter().find(|entry| entry.field.label == "Title") {
        if matches!(&entry.raw, Raw::Text(value) if value != title) {
            return Err(error(
                entry.line,
                "markdown H1 title must match the `Title` field".to_string(),
            ));
        }
    } else if let Some(field) = known_label("Title") {
        entries.push(Entry {
            field,
            raw: Raw::Text(title.to_string()),
            line: Some(1),
        });
    }
    validate::build(kind, Source::Markdown, name, entries, Vec::new())
}

/// Collect the items of a list section starting at `index`; returns the items and the index
/// to continue from, or the 1-based line of an invalid item.
fn collect_items(lines: &[&str], mut index: usize) -> Result<(Vec<String>, usize), usize> {
    let mut items = Vec::new();
    let mut after_gap = false;
    while index < lines.len() {
        let line = lines[index];
        if is_blank(line) {
            if items.is_empty() {
                index += 1;
                continue;
            }
            let mut next = index;
            while next < lines.len() && is_blank(lines[next]) {
                next += 1;
            }
            if next < lines.len() && list_item(lines[next]).is_some() {
                index = next;
                after_gap = true;
                continue;
            }
            return Ok((items, index + 1));
        }
        if field_line(line).is_some() {
            break;
        }
        match list_item(line) {
            Some(value) => items.push(value.to_string()),
            None if after_gap => break,
            None => return Err(index + 1),
        }
        index += 1;
    }
    Ok((items, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_like_python() {
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("\n"), vec![""]);
        assert_eq!(split_lines("a\nb"), vec!["a", "b"]);
        assert_eq!(split_lines("a\r\nb\rc\n"), vec!["a", "b", "c"]);
        assert_eq!(split_lines("a\r\r\nb"), vec!["a", "", "b"]);
        assert_eq!(
            split_lines("a\u{0b}b\u{0c}c\u{1c}d\u{1d}e\u{1e}f\u{85}g\u{2028}h\u{2029}i"),
            vec!["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        );
        assert_eq!(split_lines("a\u{1f}b"), vec!["a\u{1f}b"]);
    }

    #[test]
    fn classifies_lines() {
        assert_eq!(heading("# Title"), Some("Title"));
        assert_eq!(heading("  #   A #  "), Some("A #"));
        assert_eq!(heading("#Title"), None);
        assert_eq!(heading("## Title"), None);
        assert_eq!(heading("#"), None);
        assert_eq!(heading("# "), None);
        assert_eq!(heading("\u{feff}# Title"), None);
        assert_eq!(field_line("Task-ID:t1"), Some(("Task-ID", "t1")));
        assert_eq!(field_line("  Summary:   text  "), Some(("Summary", "text")));
        assert_eq!(field_line("Created-By:"), Some(("Created-By", "")));
        assert_eq!(field_line("Task-ID : t1"), None);
        assert_eq!(field_line("1abel: x"), None);
        assert_eq!(field_line("Ünïcode: x"), None);
        assert_eq!(field_line("- Summary: x"), None);
        assert_eq!(list_item("  -   item  "), Some("item"));
        assert_eq!(list_item("-item"), None);
        assert_eq!(list_item("-"), None);
        assert_eq!(list_item("- "), None);
        assert_eq!(list_item("-\u{1f}x"), Some("x"));
    }
}
