//! Dates and times as PostgreSQL stores them (days and microseconds from 2000-01-01), their
//! ISO text forms (DateStyle ISO, TimeZone UTC, as the session reports), and JS time values
//! (milliseconds from 1970-01-01).

use std::fmt::Write;

use bytes::{BufMut, BytesMut};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
pub const PG_EPOCH_DAYS: i64 = 10_957;
pub const MICROS_PER_DAY: i64 = 86_400_000_000;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;

/// PostgreSQL's `infinity` and `-infinity` timestamps and dates.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = i32::MIN;

/// Days from 1970-01-01 for a proleptic Gregorian date (year 0 is 1 BC).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` (with ` BC` for years before 1, as PostgreSQL writes them) for a PostgreSQL
/// day number.
pub fn format_date(out: &mut String, pg_days: i32) {
    match pg_days {
        DATE_INFINITY => out.push_str("infinity"),
        DATE_NEG_INFINITY => out.push_str("-infinity"),
        _ => {
            let (y, m, d) = civil_from_days(pg_days as i64 + PG_EPOCH_DAYS);
            let _ = write!(out, "{:04}-{m:02}-{d:02}", if y <= 0 { 1 - y } else { y });
            if y <= 0 {
                out.push_str(" BC");
            }
        }
    }
}

/// `HH:MM:SS` with the fraction PostgreSQL prints (trailing zeros dropped).
pub fn format_time(out: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    format_fraction(out, frac);
}

fn format_fraction(out: &mut String, frac: i64) {
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// A timestamp (microseconds from 2000-01-01) as PostgreSQL prints it: `+00` for
/// timestamptz, since the session's TimeZone is UTC.
pub fn format_timestamp(out: &mut String, pg_micros: i64, with_zone: bool) {
    match pg_micros {
        TIMESTAMP_INFINITY => return out.push_str("infinity"),
        TIMESTAMP_NEG_INFINITY => return out.push_str("-infinity"),
        _ => {}
    }
    let days = pg_micros.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
    let _ = write!(out, "{:04}-{m:02}-{d:02} ", if y <= 0 { 1 - y } else { y });
    format_time(out, pg_micros.rem_euclid(MICROS_PER_DAY));
    if with_zone {
        out.push_str("+00");
    }
    if y <= 0 {
        out.push_str(" BC");
    }
}

/// Appends `v` as decimal digits (the hot path of integer columns: no formatter machinery).
pub fn put_int(out: &mut BytesMut, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&buf[i..]);
}

/// Appends `v` (under 100) as two digits.
fn put_two(out: &mut BytesMut, v: u64) {
    out.put_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
}

/// Appends `v` with at least `width` digits (zero-padded).
fn put_padded(out: &mut BytesMut, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut n = v;
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.put_slice(&buf[i..]);
}

/// [`format_timestamp`] straight into a message buffer (the common case of a result column).
pub fn put_timestamp(out: &mut BytesMut, pg_micros: i64, with_zone: bool) {
    match pg_micros {
        TIMESTAMP_INFINITY => return out.put_slice(b"infinity"),
        TIMESTAMP_NEG_INFINITY => return out.put_slice(b"-infinity"),
        _ => {}
    }
    let days = pg_micros.div_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
    let year = if y <= 0 { 1 - y } else { y } as u64;
    if year < 10_000 {
        put_two(out, year / 100);
        put_two(out, year % 100);
    } else {
        put_padded(out, year, 4);
    }
    out.put_u8(b'-');
    put_two(out, m as u64);
    out.put_u8(b'-');
    put_two(out, d as u64);
    out.put_u8(b' ');
    let micros = pg_micros.rem_euclid(MICROS_PER_DAY);
    let secs = (micros / 1_000_000) as u64;
    put_two(out, secs / 3600);
    out.put_u8(b':');
    put_two(out, secs / 60 % 60);
    out.put_u8(b':');
    put_two(out, secs % 60);
    let mut frac = (micros % 1_000_000) as u64;
    if frac != 0 {
        let mut width = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        out.put_u8(b'.');
        put_padded(out, frac, width);
    }
    if with_zone {
        out.put_slice(b"+00");
    }
    if y <= 0 {
        out.put_slice(b" BC");
    }
}

/// JS milliseconds from 1970 to PostgreSQL microseconds from 2000 (`None` for NaN or a value
/// out of range).
pub fn js_millis_to_pg_micros(ms: f64) -> Option<i64> {
    if !ms.is_finite() {
        return None;
    }
    let micros = (ms * 1000.0).round();
    if micros.abs() > 9.2e18 {
        return None;
    }
    (micros as i64).checked_sub(PG_EPOCH_MICROS)
}

/// PostgreSQL microseconds from 2000 to JS milliseconds from 1970 (infinities become ±Infinity,
/// as node-postgres reads them).
pub fn pg_micros_to_js_millis(micros: i64) -> f64 {
    match micros {
        TIMESTAMP_INFINITY => f64::INFINITY,
        TIMESTAMP_NEG_INFINITY => f64::NEG_INFINITY,
        _ => (micros as f64 + PG_EPOCH_MICROS as f64) / 1000.0,
    }
}

/// A small cursor over ASCII text for the parsers below.
struct Scan<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Self { s: s.trim().as_bytes(), at: 0 }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    /// Up to `max` digits (at least one).
    fn number(&mut self, max: usize) -> Option<(i64, usize)> {
        let start = self.at;
        let mut v: i64 = 0;
        while self.at - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    v = v * 10 + i64::from(c - b'0');
                    self.at += 1;
                }
                _ => break,
            }
        }
        (self.at > start).then_some((v, self.at - start))
    }
    fn rest(&self) -> &'a [u8] {
        &self.s[self.at..]
    }
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }
}

/// `YYYY-MM-DD` (optionally ` BC`), `infinity`, `-infinity`, to a PostgreSQL day number.
pub fn parse_date(s: &str) -> Option<i32> {
    match s.trim().to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Some(DATE_INFINITY),
        "-infinity" => return Some(DATE_NEG_INFINITY),
        _ => {}
    }
    let mut scan = Scan::new(s);
    let days = date_part(&mut scan)?;
    // PostgreSQL reads a date from a timestamp's text too (pgjdbc's setDate sends
    // `2024-03-01 +00`): a time and a zone after the date are read and ignored.
    if scan.eat(b' ') || scan.eat(b'T') || scan.eat(b't') {
        while scan.eat(b' ') {}
        if scan.peek().is_some_and(|c| c.is_ascii_digit()) {
            time_part(&mut scan)?;
        }
        zone_part(&mut scan)?;
    }
    let bc = bc_suffix(&mut scan)?;
    if !scan.done() {
        return None;
    }
    let days = if bc { bc_days(days)? } else { days };
    i32::try_from(days - PG_EPOCH_DAYS).ok()
}

/// Re-counts a date read as year Y into year 1 - Y (Y BC).
fn bc_days(days: i64) -> Option<i64> {
    let (y, m, d) = civil_from_days(days);
    Some(days_from_civil(1 - y, m, d))
}

fn bc_suffix(scan: &mut Scan) -> Option<bool> {
    let rest = std::str::from_utf8(scan.rest()).ok()?.trim();
    if rest.eq_ignore_ascii_case("bc") {
        scan.at = scan.s.len();
        return Some(true);
    }
    Some(false)
}

/// Days from 1970 for `YYYY-MM-DD`.
fn date_part(scan: &mut Scan) -> Option<i64> {
    let (y, _) = scan.number(7)?;
    if !scan.eat(b'-') {
        return None;
    }
    let (m, _) = scan.number(2)?;
    if !scan.eat(b'-') {
        return None;
    }
    let (d, _) = scan.number(2)?;
    let m = u32::try_from(m).ok().filter(|m| (1..=12).contains(m))?;
    let d = u32::try_from(d).ok().filter(|&d| d >= 1 && d <= days_in_month(y, m))?;
    Some(days_from_civil(y, m, d))
}

/// `HH:MM[:SS[.ffffff]]` to microseconds (24:00:00 allowed, as in PostgreSQL).
fn time_part(scan: &mut Scan) -> Option<i64> {
    let (h, _) = scan.number(2)?;
    if !scan.eat(b':') {
        return None;
    }
    let (mi, _) = scan.number(2)?;
    let mut s = 0;
    let mut frac = 0;
    if scan.eat(b':') {
        s = scan.number(2)?.0;
        if scan.eat(b'.') {
            let (digits, n) = scan.number(18)?;
            // Rounded to microseconds, as PostgreSQL does.
            frac = if n <= 6 {
                digits * 10i64.pow(6 - n as u32)
            } else {
                let scale = 10i64.checked_pow(n as u32 - 6)?;
                (digits + scale / 2) / scale
            };
        }
    }
    if mi > 59 || s > 60 || h > 24 || (h == 24 && (mi > 0 || s > 0 || frac > 0)) {
        return None;
    }
    Some(((h * 60 + mi) * 60 + s) * 1_000_000 + frac)
}

/// A time of day: `HH:MM[:SS[.f]]`.
pub fn parse_time(s: &str) -> Option<i64> {
    let mut scan = Scan::new(s);
    let t = time_part(&mut scan)?;
    scan.done().then_some(t)
}

/// A zone offset in seconds: `Z`, `UTC`, `+HH`, `+HH:MM`, `+HHMM` (east positive).
fn zone_part(scan: &mut Scan) -> Option<Option<i64>> {
    while scan.eat(b' ') {}
    let rest = scan.rest();
    if rest.is_empty() {
        return Some(None);
    }
    if rest.eq_ignore_ascii_case(b"z") || rest.eq_ignore_ascii_case(b"utc") || rest.eq_ignore_ascii_case(b"gmt") {
        scan.at = scan.s.len();
        return Some(Some(0));
    }
    let sign = match scan.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return Some(None),
    };
    scan.at += 1;
    let (first, n) = scan.number(4)?;
    let (h, mut m) = if n > 2 { (first / 100, first % 100) } else { (first, 0) };
    if n <= 2 && scan.eat(b':') {
        m = scan.number(2)?.0;
    }
    if h > 15 || m > 59 {
        return None;
    }
    Some(Some(sign * (h * 3600 + m * 60)))
}

/// A timestamp (`YYYY-MM-DD[ T]HH:MM[:SS[.f]][zone][ BC]`, a bare date, `infinity`) to
/// PostgreSQL microseconds from 2000. Without a zone the time is UTC (the session's TimeZone);
/// for `timestamp` (`with_zone` false) a zone is ignored, as PostgreSQL ignores it.
pub fn parse_timestamp(s: &str, with_zone: bool) -> Option<i64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Some(TIMESTAMP_INFINITY),
        "-infinity" => return Some(TIMESTAMP_NEG_INFINITY),
        _ => {}
    }
    let mut scan = Scan::new(s);
    let mut days = date_part(&mut scan)?;
    let mut micros = 0;
    let mut offset = None;
    if scan.eat(b'T') || scan.eat(b't') || scan.eat(b' ') {
        while scan.eat(b' ') {}
        // A zone may follow the date alone (`2024-03-01 +00`, what pgjdbc sends for a date).
        if scan.peek().is_some_and(|c| c.is_ascii_digit()) {
            micros = time_part(&mut scan)?;
        }
        offset = zone_part(&mut scan)?;
    }
    if bc_suffix(&mut scan)? {
        days = bc_days(days)?;
    }
    if !scan.done() {
        return None;
    }
    let mut total = (days - PG_EPOCH_DAYS).checked_mul(MICROS_PER_DAY)?.checked_add(micros)?;
    if with_zone {
        total = total.checked_sub(offset.unwrap_or(0) * 1_000_000)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(d: i32) -> String {
        let mut s = String::new();
        format_date(&mut s, d);
        s
    }

    fn ts(us: i64, tz: bool) -> String {
        let mut s = String::new();
        format_timestamp(&mut s, us, tz);
        s
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(parse_date("2000-01-01"), Some(0));
        assert_eq!(parse_date("1999-12-31"), Some(-1));
        assert_eq!(parse_date("2024-02-29").map(date).as_deref(), Some("2024-02-29"));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("0044-03-15 BC").map(date).as_deref(), Some("0044-03-15 BC"));
        assert_eq!(parse_date("infinity"), Some(DATE_INFINITY));
        assert_eq!(parse_date("2024-1-2x"), None);
        assert_eq!(parse_date("2024-03-01 +00"), parse_date("2024-03-01"));
        assert_eq!(parse_date("2024-03-01 10:00:00.25+00"), parse_date("2024-03-01"));
        assert_eq!(parse_date("2024-03-01 nonsense"), None);
        for d in [-800_000, -1, 0, 1, 9000, 2_000_000] {
            assert_eq!(parse_date(&date(d)), Some(d), "{}", date(d));
        }
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(ts(0, true), "2000-01-01 00:00:00+00");
        assert_eq!(ts(1_500_000, false), "2000-01-01 00:00:01.5");
        assert_eq!(parse_timestamp("2000-01-01T00:00:01.5Z", true), Some(1_500_000));
        assert_eq!(parse_timestamp("2000-01-01 02:00:00+02", true), Some(0));
        assert_eq!(parse_timestamp("2000-01-01 02:00:00+02:00", false), Some(7_200_000_000));
        assert_eq!(parse_timestamp("2000-01-01 02:00:00-0130", true), Some(12_600_000_000));
        assert_eq!(parse_timestamp("2000-01-02", true), Some(MICROS_PER_DAY));
        assert_eq!(parse_timestamp("2000-01-02 +01", true), Some(MICROS_PER_DAY - 3_600_000_000));
        assert_eq!(parse_timestamp("2000-01-02 +00", false), Some(MICROS_PER_DAY));
        assert_eq!(parse_timestamp("2000-01-01 25:00", true), None);
        assert_eq!(parse_timestamp("2000-01-01 00:00:00.1234567", true), Some(123_457));
        for us in [-63_000_000_000_000_000, -1, 0, 1, 86_399_999_999, 800_000_000_000_000, 1_234_500, i64::MAX] {
            assert_eq!(parse_timestamp(&ts(us, true), true), Some(us), "{}", ts(us, true));
            for tz in [false, true] {
                let mut fast = BytesMut::new();
                put_timestamp(&mut fast, us, tz);
                assert_eq!(std::str::from_utf8(&fast), Ok(ts(us, tz).as_str()));
            }
        }
        for v in [0, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            let mut out = BytesMut::new();
            put_int(&mut out, v);
            assert_eq!(std::str::from_utf8(&out), Ok(v.to_string().as_str()));
        }
        assert_eq!(js_millis_to_pg_micros(946_684_800_000.0), Some(0));
        assert_eq!(pg_micros_to_js_millis(0), 946_684_800_000.0);
        assert_eq!(js_millis_to_pg_micros(f64::NAN), None);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("04:05:06.789"), Some(14_706_789_000));
        assert_eq!(parse_time("24:00:00"), Some(MICROS_PER_DAY));
        assert_eq!(parse_time("24:00:01"), None);
        let mut s = String::new();
        format_time(&mut s, 14_706_789_000);
        assert_eq!(s, "04:05:06.789");
    }
}
