//! The one YAML reader and writer for machine state, config and assets.
//!
//! Reading is strict (booleans only `true`/`false`, duplicate keys rejected, a budget against
//! alias bombs); errors carry the line and column so messages read `file:LINE:COL: what`.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A YAML parse or schema error located in a file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct YamlError {
    pub file: String,
    pub location: Option<(u64, u64)>,
    pub message: String,
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
    }
}

/// Parse YAML (or JSON) text read from `file` (used only in messages).
pub fn from_str<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_saphyr::from_str_with_options(text, options()).map_err(|err| {
        let location = err
            .location()
            .map(|loc| (loc.line(), loc.column()))
            .filter(|(l, _)| *l > 0);
        let message = err.without_snippet().to_string();
        let message = message.lines().next().unwrap_or("invalid YAML").trim();
        let message = match (location, message.rfind(" at line ")) {
            (Some(_), Some(cut)) if is_position(&message[cut + " at line ".len()..]) => {
                message[..cut].trim_end().to_string()
            }
            _ => message.to_string(),
        };
        // The parser's advice to its own caller (an option to set) is no help to a person.
        let message = match message.find(", set DuplicateKeyPolicy") {
            Some(cut) => format!("{}: a key may appear only once", &message[..cut]),
            None => message,
        };
        YamlError {
            file: file.display().to_string(),
            location,
            message,
        }
    })
}

/// Whether `rest` is exactly `N, column M`: the position suffix the parser appends, which the
/// location already carries. Anything else (an alias budget message quoting where the anchor
/// was defined) is part of the message and is kept.
fn is_position(rest: &str) -> bool {
    let Some((line, column)) = rest.split_once(", column ") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(line) && digits(column)
}

/// Render a value as YAML. Struct fields keep their declared order, so output is deterministic.
pub fn to_string<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).expect("state types always serialize to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        flag: bool,
        note: Option<String>,
    }

    #[test]
    fn round_trips_and_quotes_ambiguous_words() {
        let value = Sample {
            name: "no".into(),
            flag: true,
            note: None,
        };
        let text = to_string(&value);
        let back: Sample = from_str(Path::new("x.yaml"), &text).unwrap();
        assert_eq!(back, value);
        assert!(!text.contains("name: no\n"), "`no` must be quoted: {text}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err =
            from_str::<Sample>(Path::new("m.yaml"), "name: a\nflag: true\nextra: 1\n").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("m.yaml:3:"), "{shown}");
        assert!(shown.contains("extra"), "{shown}");
    }

    #[test]
    fn alias_bomb_is_refused_with_a_whole_message() {
        let mut text = String::from("x0: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            let refs = vec![format!("*{prev}"); 9].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let err = from_str::<serde_json::Value>(Path::new("bomb.yaml"), &text).unwrap_err();
        assert!(err.message.contains("budget"), "{}", err.message);
        assert!(!err.message.ends_with("(defined"), "{}", err.message);
    }

    #[test]
    fn a_duplicate_key_is_named_without_the_parser_s_advice_to_itself() {
        let err = from_str::<serde_json::Value>(Path::new("m.yaml"), "runtime: 1\nruntime: 2\n")
            .unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("m.yaml:2:"), "{shown}");
        assert!(shown.contains("runtime"), "{shown}");
        assert!(shown.ends_with("a key may appear only once"), "{shown}");
        assert!(!shown.contains("DuplicateKeyPolicy"), "{shown}");
    }

    #[test]
    fn strict_booleans_reject_yes() {
        let err = from_str::<Sample>(Path::new("m.yaml"), "name: a\nflag: yes\n").unwrap_err();
        assert!(err.location.is_some());
    }
}
