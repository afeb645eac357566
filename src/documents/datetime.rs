//! Document datetimes (spec 02 §6.1): lenient input, canonical output, naive kept naive.

use std::fmt;

/// A datetime as written in a document. Naive values order as UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocTime {
    /// Instant in microseconds since the Unix epoch (naive values read as UTC).
    pub micros: i64,
    /// Offset in seconds east of UTC; `None` for a naive value.
    pub offset_seconds: Option<i32>,
}

const MICROS_PER_SECOND: i128 = 1_000_000;
const SECONDS_PER_DAY: i128 = 86_400;
/// Unix numbers above this (in absolute value) are milliseconds, as in the reference.
const MILLISECOND_WATERSHED: i128 = 20_000_000_000;
/// 0001-01-01T00:00:00 and 9999-12-31T23:59:59.999999 as Unix microseconds: the range of a
/// Python datetime, which bounds what the reference can read.
const MIN_MICROS: i128 = -62_135_596_800 * MICROS_PER_SECOND;
const MAX_MICROS: i128 = 253_402_300_800 * MICROS_PER_SECOND - 1;

impl DocTime {
    /// Parse the reference's lenient syntax.
    pub fn parse(text: &str) -> Result<DocTime, String> {
        if let Some(time) = parse_unix_number(text) {
            return time;
        }
        parse_calendar(text.as_bytes())
            .map_err(|reason| format!("invalid datetime `{text}`: {reason}"))
    }

    /// The canonical rendering.
    pub fn render(&self) -> String {
        let offset = i128::from(self.offset_seconds.unwrap_or(0));
        let local = i128::from(self.micros) + offset * MICROS_PER_SECOND;
        let seconds = local.div_euclid(MICROS_PER_SECOND);
        let fraction = local.rem_euclid(MICROS_PER_SECOND);
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let clock = seconds.rem_euclid(SECONDS_PER_DAY);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            clock / 3600,
            clock / 60 % 60,
            clock % 60
        );
        if fraction != 0 {
            out.push_str(&format!(".{fraction:06}"));
        }
        match self.offset_seconds {
            None => {}
            Some(0) => out.push('Z'),
            Some(offset) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let minutes = offset.unsigned_abs() / 60;
                out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
            }
        }
        out
    }

    /// A UTC value for `now`.
    pub fn from_timestamp(ts: jiff::Timestamp) -> DocTime {
        DocTime {
            micros: ts.as_microsecond(),
            offset_seconds: Some(0),
        }
    }

    /// The instant this value names (a naive value read as UTC), for comparisons with clocks.
    pub fn timestamp(&self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_microsecond(self.micros).ok()
    }

    /// Why rendering would not read back as the same value, if it would not: offsets the
    /// syntax cannot carry (seconds, a day or more) and years outside 1–9999.
    pub(super) fn round_trip_problem(&self) -> Option<String> {
        if let Some(offset) = self.offset_seconds {
            if offset % 60 != 0 || offset.unsigned_abs() >= 86_400 {
                return Some(format!(
                    "offset of {offset} seconds cannot be written as ±HH:MM under 24 hours"
                ));
            }
        }
        let local = i128::from(self.micros)
            + i128::from(self.offset_seconds.unwrap_or(0)) * MICROS_PER_SECOND;
        if !(MIN_MICROS..=MAX_MICROS).contains(&local) {
            return Some("year must be between 1 and 9999".to_string());
        }
        None
    }
}

impl fmt::Display for DocTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl PartialOrd for DocTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Naive values order as UTC (spec 03 §3.4); the offset only breaks ties so that the order
/// agrees with equality. Queue ordering, where equal instants must tie, uses
/// `Document::order_key`.
impl Ord for DocTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.micros
            .cmp(&other.micros)
            .then(self.offset_seconds.cmp(&other.offset_seconds))
    }
}

/// A decimal number is Unix time in seconds, or milliseconds when too large for seconds.
/// Returns `None` when `text` is not number-shaped, so the calendar syntax is tried instead.
fn parse_unix_number(text: &str) -> Option<Result<DocTime, String>> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return None;
    }
    let out_of_range = || Err(format!("invalid datetime `{text}`: Unix time out of range"));
    // More than 30 digits cannot be in range; stop before i128 arithmetic could overflow.
    let Some(whole_value) = whole.parse::<i128>().ok().filter(|_| whole.len() <= 30) else {
        return Some(out_of_range());
    };
    let (scale, fraction_digits) = if whole_value > MILLISECOND_WATERSHED {
        (1_000, 3)
    } else {
        (MICROS_PER_SECOND, 6)
    };
    let mut magnitude =
        whole_value * scale + fraction_micros(fraction.unwrap_or(""), fraction_digits);
    if negative {
        magnitude = -magnitude;
    }
    if !(MIN_MICROS..=MAX_MICROS).contains(&magnitude) {
        return Some(out_of_range());
    }
    Some(Ok(DocTime {
        micros: magnitude as i64,
        offset_seconds: Some(0),
    }))
}

/// The first `digits` fraction digits as an integer (right-padded with zeros): truncation.
fn fraction_micros(fraction: &str, digits: usize) -> i128 {
    let mut value = 0;
    for position in 0..digits {
        let digit = fraction.as_bytes().get(position).map_or(0, |b| b - b'0');
        value = value * 10 + i128::from(digit);
    }
    value
}

/// `YYYY-MM-DD`, optionally followed by `T`/`t`/space, `HH:MM[:SS[.f…]]` and a zone.
fn parse_calendar(bytes: &[u8]) -> Result<DocTime, &'static str> {
    let year = digits(bytes, 0, 4).ok_or("expected YYYY-MM-DD")?;
    let month = after(bytes, 4, b'-')
        .and_then(|_| digits(bytes, 5, 2))
        .ok_or("expected YYYY-MM-DD")?;
    let day = after(bytes, 7, b'-')
        .and_then(|_| digits(bytes, 8, 2))
        .ok_or("expected YYYY-MM-DD")?;
    if year == 0 {
        return Err("year must be between 1 and 9999");
    }
    if !(1..=12).contains(&month) {
        return Err("month must be between 01 and 12");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("day is out of range for the month");
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        return Ok(DocTime {
            micros: (days * SECONDS_PER_DAY * MICROS_PER_SECOND) as i64,
            offset_seconds: None,
        });
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err("expected `T`, `t` or a space between date and time");
    }
    let hour = digits(bytes, 11, 2).ok_or("expected HH:MM after the date")?;
    let minute = after(bytes, 13, b':')
        .and_then(|_| digits(bytes, 14, 2))
        .ok_or("expected HH:MM after the date")?;
    let mut cursor = 16;
    let mut second = 0;
    let mut fraction = 0;
    if bytes.get(cursor) == Some(&b':') {
        second = digits(bytes, cursor + 1, 2).ok_or("expected two-digit seconds")?;
        cursor += 3;
        if bytes.get(cursor) == Some(&b'.') {
            let start = cursor + 1;
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            if end == start {
                return Err("expected digits after the decimal point");
            }
            fraction = bytes[start..end]
                .iter()
                .take(6)
                .chain(std::iter::repeat(&b'0'))
                .take(6)
                .fold(0, |acc, b| acc * 10 + i128::from(b - b'0'));
            cursor = end;
        }
    }
    if hour > 23 {
        return Err("hour must be between 00 and 23");
    }
    if minute > 59 {
        return Err("minute must be between 00 and 59");
    }
    if second > 59 {
        return Err("second must be between 00 and 59");
    }
    let offset_seconds = parse_zone(&bytes[cursor..])?;
    let local_seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
    let offset = i128::from(offset_seconds.unwrap_or(0));
    Ok(DocTime {
        micros: ((local_seconds - offset) * MICROS_PER_SECOND + fraction) as i64,
        offset_seconds,
    })
}

/// Nothing (naive), `Z`/`z`, `±HH:MM` or `±HHMM`.
fn parse_zone(zone: &[u8]) -> Result<Option<i32>, &'static str> {
    let sign = match zone {
        [] => return Ok(None),
        [b'Z' | b'z'] => return Ok(Some(0)),
        [b'+', ..] => 1,
        [b'-', ..] => -1,
        _ => return Err("unexpected text after the time"),
    };
    let minutes_at = if zone.get(3) == Some(&b':') { 4 } else { 3 };
    let hours = digits(zone, 1, 2);
    let minutes = digits(zone, minutes_at, 2);
    match (hours, minutes) {
        (Some(hours), Some(minutes)) if zone.len() == minutes_at + 2 => {
            if hours > 23 || minutes > 59 {
                return Err("offset must be less than 24 hours");
            }
            Ok(Some(sign * (hours * 3600 + minutes * 60) as i32))
        }
        _ => Err("offset must be Z, ±HH:MM or ±HHMM"),
    }
}

/// `count` ASCII digits at `start`, as a number.
fn digits(bytes: &[u8], start: usize, count: usize) -> Option<i128> {
    let slice = bytes.get(start..start + count)?;
    slice.iter().try_fold(0, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i128::from(b - b'0'))
    })
}

fn after(bytes: &[u8], at: usize, expected: u8) -> Option<()> {
    (bytes.get(at) == Some(&expected)).then_some(())
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        match DocTime::parse(text) {
            Ok(time) => time.render(),
            Err(error) => panic!("{text} should parse: {error}"),
        }
    }

    #[test]
    fn accepted_forms_render_canonically() {
        let cases = [
            ("2026-02-10T09:30:00Z", "2026-02-10T09:30:00Z"),
            ("2026-02-10t09:30:00z", "2026-02-10T09:30:00Z"),
            ("2026-02-10 09:30:00Z", "2026-02-10T09:30:00Z"),
            ("2026-02-10T09:30Z", "2026-02-10T09:30:00Z"),
            ("2026-02-10T09:30", "2026-02-10T09:30:00"),
            ("2026-02-10T09:30:00", "2026-02-10T09:30:00"),
            ("2026-02-10T09:30:00+00:00", "2026-02-10T09:30:00Z"),
            ("2026-02-10T09:30:00-00:00", "2026-02-10T09:30:00Z"),
            ("2026-02-09T16:45:00+01:00", "2026-02-09T16:45:00+01:00"),
            ("2026-02-09T16:45:00+0100", "2026-02-09T16:45:00+01:00"),
            ("2026-02-09T16:45:00-0530", "2026-02-09T16:45:00-05:30"),
            ("2026-02-10T11:02:17.25Z", "2026-02-10T11:02:17.250000Z"),
            ("2026-02-10T11:02:17.250000Z", "2026-02-10T11:02:17.250000Z"),
            (
                "2026-02-10T11:02:17.1234567891Z",
                "2026-02-10T11:02:17.123456Z",
            ),
            ("2026-02-10T11:02:17.000Z", "2026-02-10T11:02:17Z"),
            ("2026-02-10T11:02:17.5", "2026-02-10T11:02:17.500000"),
            ("2026-02-10", "2026-02-10T00:00:00"),
            ("2024-02-29", "2024-02-29T00:00:00"),
            ("0001-01-01T00:00:00", "0001-01-01T00:00:00"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("0", "1970-01-01T00:00:00Z"),
            ("1770715800", "2026-02-10T09:30:00Z"),
            ("1770715800.5", "2026-02-10T09:30:00.500000Z"),
            ("1770715800000", "2026-02-10T09:30:00Z"),
            ("1770715800123", "2026-02-10T09:30:00.123000Z"),
            ("20000000000", "2603-10-11T11:33:20Z"),
            ("20000000001", "1970-08-20T11:33:20.001000Z"),
            ("-1", "1969-12-31T23:59:59Z"),
            ("-1.5", "1969-12-31T23:59:58.500000Z"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input), expected, "input {input}");
        }
    }

    #[test]
    fn rejected_forms_say_why() {
        let cases = [
            "20250301T100000Z",
            "20260210T093000Z",
            "2026-02-10T09:30:00+02",
            "2026-02-10T24:00:00",
            "2026-02-10T09:30:60",
            "2026-2-10",
            "2026-02-1",
            "2026-02-10T9:30",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "0000-01-01",
            "2026-02-10T09:60",
            "2026-02-10T09:30:00.Z",
            "2026-02-10T09:30.5",
            "2026-02-10X09:30",
            "2026-02-10T09:30:00+24:00",
            "2026-02-10T09:30:00+01:60",
            "2026-02-10T09:30:00 Z",
            "2026-02-10T09:30:00Z ",
            " 2026-02-10",
            "2026-02-10T",
            "",
            "-",
            "1.",
            ".5",
            "+5",
            "1e9",
            "99999999999999999999",
            "999999999999999999999999999999999999999999",
            "yesterday",
            "２０２６-02-10",
        ];
        for input in cases {
            let error = DocTime::parse(input).expect_err(input);
            assert!(!error.is_empty());
        }
    }

    #[test]
    fn naive_values_order_as_utc_and_keep_their_form() {
        let naive = DocTime::parse("2026-02-10T09:30:00").unwrap();
        let utc = DocTime::parse("2026-02-10T09:30:00Z").unwrap();
        let later = DocTime::parse("2026-02-10T10:30:00+00:30").unwrap();
        assert_eq!(naive.micros, utc.micros);
        assert_ne!(naive, utc);
        assert!(
            naive < utc,
            "ties break on offset, consistently with equality"
        );
        assert!(utc < later);
        assert_eq!(naive.render(), "2026-02-10T09:30:00");
        assert_eq!(
            naive.timestamp().unwrap().to_string(),
            "2026-02-10T09:30:00Z"
        );
    }

    #[test]
    fn offsets_apply_to_the_instant() {
        let plus = DocTime::parse("2026-02-09T16:45:00+01:00").unwrap();
        let utc = DocTime::parse("2026-02-09T15:45:00Z").unwrap();
        assert_eq!(plus.micros, utc.micros);
        assert_eq!(plus.offset_seconds, Some(3600));
    }

    #[test]
    fn unrenderable_values_are_reported() {
        let odd_offset = DocTime {
            micros: 0,
            offset_seconds: Some(30),
        };
        assert!(odd_offset.round_trip_problem().is_some());
        let far = DocTime {
            micros: i64::MAX,
            offset_seconds: Some(0),
        };
        assert!(far.round_trip_problem().is_some());
        assert!(!far.render().is_empty());
        assert!(DocTime::parse("2026-02-10T09:30:00Z")
            .unwrap()
            .round_trip_problem()
            .is_none());
    }
}
