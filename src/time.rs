//! Wall-clock time and fresh ids, injectable for byte-stable tests.
//!
//! `MILLRACE_NOW` (RFC 3339) pins the clock; ids stay random unless `MILLRACE_ID_SEED` is set,
//! in which case they are derived from the seed and a process-wide counter.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The longest wait, interval or window millrace takes, in seconds (about 31 years): a
/// longer one would overflow the clocks' arithmetic (`1e300` seconds panicked).
pub const MAX_SECONDS: f64 = 1e9;

/// Whether `seconds` is a span millrace can wait: finite, not negative, at most
/// [`MAX_SECONDS`].
pub fn is_waitable(seconds: f64) -> bool {
    (0.0..=MAX_SECONDS).contains(&seconds)
}

/// The current UTC time (or `MILLRACE_NOW` when set).
pub fn now() -> Timestamp {
    if let Ok(pinned) = std::env::var("MILLRACE_NOW") {
        if let Ok(ts) = pinned.parse::<Timestamp>() {
            return ts;
        }
    }
    Timestamp::now()
}

/// RFC 3339 in UTC with `Z` and microsecond precision at most.
pub fn format(ts: Timestamp) -> String {
    let micros = ts.as_microsecond();
    Timestamp::from_microsecond(micros)
        .unwrap_or(ts)
        .to_string()
}

/// `now()` formatted for state files and events.
pub fn now_string() -> String {
    format(now())
}

/// 32 lowercase hex characters, fresh per call.
pub fn hex32() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    match std::env::var("MILLRACE_ID_SEED") {
        Ok(seed) => {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let digest = Sha256::digest(format!("{seed}:{}:{n}", std::process::id()));
            digest[..16].iter().map(|b| format!("{b:02x}")).collect()
        }
        Err(_) => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// `run-<32 hex>`.
pub fn new_run_id() -> String {
    format!("run-{}", hex32())
}

/// `request-<32 hex>`.
pub fn new_request_id() -> String {
    format!("request-{}", hex32())
}

/// Eight hex characters for minted document ids.
pub fn hex8() -> String {
    hex32()[..8].to_string()
}
