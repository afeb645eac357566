//! Document datetimes (spec 02 §6.1): lenient input, canonical output, naive kept naive.

/// A datetime as written in a document. Naive values order as UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocTime {
    /// Instant in microseconds since the Unix epoch (naive values read as UTC).
    pub micros: i64,
    /// Offset in seconds east of UTC; `None` for a naive value.
    pub offset_seconds: Option<i32>,
}

impl DocTime {
    /// Parse the reference's lenient syntax.
    pub fn parse(_text: &str) -> Result<DocTime, String> {
        todo!("documents helper")
    }

    /// The canonical rendering.
    pub fn render(&self) -> String {
        todo!("documents helper")
    }

    /// A UTC value for `now`.
    pub fn from_timestamp(ts: jiff::Timestamp) -> DocTime {
        DocTime {
            micros: ts.as_microsecond(),
            offset_seconds: Some(0),
        }
    }
}

impl PartialOrd for DocTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DocTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.micros.cmp(&other.micros)
    }
}
