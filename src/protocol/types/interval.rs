//! `interval`: months, days and microseconds, in PostgreSQL's `postgres` IntervalStyle (what
//! the session reports) and ISO 8601 input.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// `1 year 2 mons 3 days 04:05:06.5`, as PostgreSQL prints with IntervalStyle postgres.
    pub fn format(&self, out: &mut String) {
        let start = out.len();
        let (years, mons) = (self.months / 12, self.months % 12);
        let mut negative_before = false;
        for (v, unit) in [(years, "year"), (mons, "mon"), (self.days, "day")] {
            if v != 0 {
                if out.len() > start {
                    out.push(' ');
                }
                let plus = negative_before && v > 0;
                let _ = write!(out, "{}{v} {unit}{}", if plus { "+" } else { "" }, if v == 1 { "" } else { "s" });
                negative_before = v < 0;
            }
        }
        if self.micros != 0 || out.len() == start {
            if out.len() > start {
                out.push(' ');
            }
            let abs = self.micros.unsigned_abs();
            if self.micros < 0 {
                out.push('-');
            } else if negative_before {
                out.push('+');
            }
            let secs = abs / 1_000_000;
            let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            let frac = abs % 1_000_000;
            if frac != 0 {
                let digits = format!("{frac:06}");
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
        }
    }

    /// PostgreSQL's interval input: `[@] N unit [N unit ...] [[+-]HH:MM[:SS[.f]]] [ago]`, or
    /// ISO 8601 `P1Y2M3DT4H5M6.5S`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(iso) = s.strip_prefix('P').or_else(|| s.strip_prefix('p')) {
            return parse_iso(iso);
        }
        let mut acc = Acc::default();
        let mut tokens = s.split_whitespace().peekable();
        let mut any = false;
        let mut ago = false;
        while let Some(token) = tokens.next() {
            if token == "@" {
                continue;
            }
            if token.eq_ignore_ascii_case("ago") {
                ago = true;
                continue;
            }
            if token.contains(':') {
                let (negative, body) = match token.as_bytes()[0] {
                    b'-' => (true, &token[1..]),
                    b'+' => (false, &token[1..]),
                    _ => (false, token),
                };
                let mut parts = body.split(':');
                let h: f64 = parts.next()?.parse().ok()?;
                let m: f64 = parts.next()?.parse().ok()?;
                let sec: f64 = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0.0);
                if parts.next().is_some() || h < 0.0 || m < 0.0 || sec < 0.0 {
                    return None;
                }
                let micros = (h * 3600.0 + m * 60.0 + sec) * 1e6;
                acc.micros += if negative { -micros } else { micros };
                any = true;
                continue;
            }
            // A number with its unit attached (`3days`) or as the next token.
            let split = token.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(token.len());
            let value: f64 = token[..split].parse().ok()?;
            let unit = if split < token.len() { token[split..].to_string() } else { tokens.next()?.to_string() };
            acc.add(value, &unit)?;
            any = true;
        }
        if !any {
            return None;
        }
        let mut interval = acc.finish()?;
        if ago {
            interval = Interval { months: -interval.months, days: -interval.days, micros: -interval.micros };
        }
        Some(interval)
    }
}

#[derive(Default)]
struct Acc {
    months: f64,
    days: f64,
    micros: f64,
}

impl Acc {
    /// Fractions cascade down as in PostgreSQL (`1.5 months` is 1 month 15 days).
    fn add(&mut self, value: f64, unit: &str) -> Option<()> {
        let unit = unit.to_ascii_lowercase();
        let unit = unit.trim_end_matches(',');
        match unit {
            "millennium" | "millennia" | "millenniums" => self.months += value * 12000.0,
            "century" | "centuries" => self.months += value * 1200.0,
            "decade" | "decades" => self.months += value * 120.0,
            "y" | "yr" | "yrs" | "year" | "years" => self.months += value * 12.0,
            "mon" | "mons" | "month" | "months" => self.months += value,
            "w" | "week" | "weeks" => self.days += value * 7.0,
            "d" | "day" | "days" => self.days += value,
            "h" | "hr" | "hrs" | "hour" | "hours" => self.micros += value * 3.6e9,
            "m" | "min" | "mins" | "minute" | "minutes" => self.micros += value * 6e7,
            "s" | "sec" | "secs" | "second" | "seconds" => self.micros += value * 1e6,
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => self.micros += value * 1e3,
            "us" | "usec" | "usecs" | "microsecond" | "microseconds" => self.micros += value,
            _ => return None,
        }
        Some(())
    }

    fn finish(self) -> Option<Interval> {
        let months = self.months.trunc();
        let days = self.days + (self.months - months) * 30.0;
        let whole_days = days.trunc();
        let micros = self.micros + (days - whole_days) * 8.64e10;
        let fits = |v: f64, max: f64| v.is_finite() && v.abs() <= max;
        if !fits(months, i32::MAX as f64) || !fits(whole_days, i32::MAX as f64) || !fits(micros, 9.2e18) {
            return None;
        }
        Some(Interval { months: months as i32, days: whole_days as i32, micros: micros.round() as i64 })
    }
}

fn parse_iso(s: &str) -> Option<Interval> {
    let mut acc = Acc::default();
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in s.chars() {
        match c {
            'T' | 't' if number.is_empty() => in_time = true,
            '0'..='9' | '.' | '-' | '+' => number.push(c),
            _ => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let unit = match (c.to_ascii_uppercase(), in_time) {
                    ('Y', false) => "years",
                    ('M', false) => "months",
                    ('W', false) => "weeks",
                    ('D', false) => "days",
                    ('H', true) => "hours",
                    ('M', true) => "minutes",
                    ('S', true) => "seconds",
                    _ => return None,
                };
                acc.add(value, unit)?;
                any = true;
            }
        }
    }
    if !number.is_empty() || !any {
        return None;
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: Interval) -> String {
        let mut s = String::new();
        i.format(&mut s);
        s
    }

    #[test]
    fn formats_as_postgres() {
        assert_eq!(text(Interval::default()), "00:00:00");
        assert_eq!(text(Interval { months: 14, days: 3, micros: 14_706_500_000 }), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(text(Interval { months: 0, days: -1, micros: 7_200_000_000 }), "-1 days +02:00:00");
        assert_eq!(text(Interval { months: 1, days: 0, micros: 0 }), "1 mon");
    }

    #[test]
    fn parses_postgres_and_iso() {
        let i = Interval { months: 14, days: 3, micros: 14_706_500_000 };
        assert_eq!(Interval::parse("1 year 2 mons 3 days 04:05:06.5"), Some(i));
        assert_eq!(Interval::parse("P1Y2M3DT4H5M6.5S"), Some(i));
        assert_eq!(Interval::parse("@ 3 days ago"), Some(Interval { months: 0, days: -3, micros: 0 }));
        assert_eq!(Interval::parse("1.5 months"), Some(Interval { months: 1, days: 15, micros: 0 }));
        assert_eq!(Interval::parse("-1 days +02:00:00"), Some(Interval { months: 0, days: -1, micros: 7_200_000_000 }));
        assert_eq!(Interval::parse("10 parsecs"), None);
        assert_eq!(Interval::parse(""), None);
        for i in [i, Interval { months: -3, days: 2, micros: -1 }] {
            assert_eq!(Interval::parse(&text(i)), Some(i), "{}", text(i));
        }
    }
}
