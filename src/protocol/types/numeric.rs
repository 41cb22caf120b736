//! `numeric`: validating decimal text, and PostgreSQL's binary form (base-10000 digits with a
//! weight, a sign and a display scale).

use bytes::{BufMut, BytesMut};

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// PostgreSQL's limits: 131072 digits before the point, 16383 after.
const MAX_WEIGHT_DIGITS: usize = 131_072;
const MAX_SCALE: usize = 16_383;

/// A decimal number split for encoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decimal {
    NaN,
    Infinity { negative: bool },
    Finite { negative: bool, int: String, frac: String },
}

impl Decimal {
    /// Reads PostgreSQL's numeric input syntax: `[+-]digits[.digits][e[+-]digits]`, `NaN`,
    /// `Infinity`, `-Infinity` (spaces around allowed).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case("nan") {
            return (s.len() == body.len()).then_some(Self::NaN);
        }
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Some(Self::Infinity { negative });
        }
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(at) => (&body[..at], body[at + 1..].parse::<i32>().ok().filter(|e| e.abs() <= 200_000)?),
            None => (body, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|c| c.is_ascii_digit())
            || !frac.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        // Move the point by the exponent.
        let digits: String = [int, frac].concat();
        let point = int.len() as i64 + exponent as i64;
        let (int, frac) = if point <= 0 {
            (String::new(), "0".repeat((-point) as usize) + &digits)
        } else if point as usize >= digits.len() {
            (digits.clone() + &"0".repeat(point as usize - digits.len()), String::new())
        } else {
            (digits[..point as usize].to_string(), digits[point as usize..].to_string())
        };
        let int = int.trim_start_matches('0').to_string();
        if int.len() > MAX_WEIGHT_DIGITS || frac.len() > MAX_SCALE {
            return None;
        }
        Some(Self::Finite { negative, int, frac })
    }

    /// The canonical text PostgreSQL would print.
    pub fn to_text(&self) -> String {
        match self {
            Self::NaN => "NaN".into(),
            Self::Infinity { negative: false } => "Infinity".into(),
            Self::Infinity { negative: true } => "-Infinity".into(),
            Self::Finite { negative, int, frac } => {
                let zero = int.is_empty() && frac.bytes().all(|c| c == b'0');
                let mut s = String::with_capacity(int.len() + frac.len() + 2);
                if *negative && !zero {
                    s.push('-');
                }
                s.push_str(if int.is_empty() { "0" } else { int });
                if !frac.is_empty() {
                    s.push('.');
                    s.push_str(frac);
                }
                s
            }
        }
    }

    /// The binary form: ndigits, weight, sign, dscale, then base-10000 digits.
    pub fn encode_binary(&self, out: &mut BytesMut) {
        let (negative, int, frac) = match self {
            Self::NaN => return header(out, 0, 0, NUMERIC_NAN, 0),
            Self::Infinity { negative } => {
                return header(out, 0, 0, if *negative { NUMERIC_NINF } else { NUMERIC_PINF }, 0)
            }
            Self::Finite { negative, int, frac } => (*negative, int, frac),
        };
        let dscale = frac.len() as u16;
        let int_pad = (4 - int.len() % 4) % 4;
        let padded_int: Vec<u8> = std::iter::repeat_n(b'0', int_pad).chain(int.bytes()).collect();
        let frac_pad = (4 - frac.len() % 4) % 4;
        let padded_frac: Vec<u8> = frac.bytes().chain(std::iter::repeat_n(b'0', frac_pad)).collect();
        let group = |chunk: &[u8]| chunk.iter().fold(0u16, |v, c| v * 10 + u16::from(c - b'0'));
        let mut digits: Vec<u16> = padded_int.chunks(4).map(group).collect();
        let int_groups = digits.len() as i32;
        digits.extend(padded_frac.chunks(4).map(group));
        let mut weight = int_groups - 1;
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        weight -= leading as i32;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return header(out, 0, 0, NUMERIC_POS, dscale);
        }
        header(out, digits.len() as u16, weight as i16, if negative { NUMERIC_NEG } else { NUMERIC_POS }, dscale);
        for d in digits {
            out.put_u16(d);
        }
    }

    /// Reads the binary form (`None` if malformed).
    pub fn decode_binary(b: &[u8]) -> Option<Self> {
        let word = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
        let ndigits = word(0)? as usize;
        let weight = word(2)? as i16 as i32;
        let sign = word(4)?;
        let dscale = word(6)? as usize;
        if b.len() != 8 + ndigits * 2 || dscale > MAX_SCALE {
            return None;
        }
        match sign {
            NUMERIC_NAN => return Some(Self::NaN),
            NUMERIC_PINF => return Some(Self::Infinity { negative: false }),
            NUMERIC_NINF => return Some(Self::Infinity { negative: true }),
            NUMERIC_POS | NUMERIC_NEG => {}
            _ => return None,
        }
        let digits: Vec<u16> = (0..ndigits).map(|i| word(8 + i * 2)).collect::<Option<_>>()?;
        if digits.iter().any(|&d| d > 9999) || weight.unsigned_abs() as usize > MAX_WEIGHT_DIGITS / 4 + 1 {
            return None;
        }
        let digit = |i: i32| -> u16 {
            let idx = weight - i;
            if idx >= 0 && (idx as usize) < digits.len() {
                digits[idx as usize]
            } else {
                0
            }
        };
        let mut int = String::new();
        for i in (0..=weight).rev() {
            int.push_str(&format!("{:04}", digit(i)));
        }
        let mut frac = String::new();
        let mut i = -1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i -= 1;
        }
        frac.truncate(dscale);
        Some(Self::Finite { negative: sign == NUMERIC_NEG, int: int.trim_start_matches('0').to_string(), frac })
    }
}

fn header(out: &mut BytesMut, ndigits: u16, weight: i16, sign: u16, dscale: u16) {
    out.put_u16(ndigits);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(dscale);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        let d = Decimal::parse(s).unwrap();
        let mut out = BytesMut::new();
        d.encode_binary(&mut out);
        Decimal::decode_binary(&out).unwrap().to_text()
    }

    #[test]
    fn text_and_binary() {
        assert_eq!(Decimal::parse("00123.4500").unwrap().to_text(), "123.4500");
        assert_eq!(Decimal::parse("-1.5e3").unwrap().to_text(), "-1500");
        assert_eq!(Decimal::parse("1e-3").unwrap().to_text(), "0.001");
        assert_eq!(Decimal::parse(".5").unwrap().to_text(), "0.5");
        assert_eq!(Decimal::parse("-0").unwrap().to_text(), "0");
        assert_eq!(Decimal::parse("abc"), None);
        assert_eq!(Decimal::parse("1.2.3"), None);
        assert_eq!(Decimal::parse(""), None);
        assert_eq!(Decimal::parse("-NaN"), None);
        for s in [
            "0",
            "1",
            "-1",
            "12345678.9",
            "0.0001",
            "10000",
            "99999999999999999999.000000001",
            "NaN",
            "-Infinity",
            "0.00",
        ] {
            assert_eq!(round_trip(s), s);
        }
        // 12345.678: weight 1, digits [1, 2345, 6780], dscale 3 (PostgreSQL's own bytes).
        let mut out = BytesMut::new();
        Decimal::parse("12345.678").unwrap().encode_binary(&mut out);
        assert_eq!(&out[..], &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
        assert_eq!(Decimal::decode_binary(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]), None, "digit over 9999");
    }
}
