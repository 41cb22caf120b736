//! Typed decoding of every frontend message that follows the startup packet. Decoding borrows
//! from the frame, so nothing is copied; counts are checked against the bytes present before
//! anything is allocated.

use super::error::DecodeError;
use super::reader::Reader;

/// `S` (statement) or `P` (portal) in Describe and Close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Statement,
    Portal,
}

/// One frontend message, borrowed from its frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    Query {
        sql: &'a str,
    },
    Parse {
        name: &'a str,
        sql: &'a str,
        param_types: Vec<i32>,
    },
    Bind {
        portal: &'a str,
        statement: &'a str,
        param_formats: Vec<i16>,
        params: Vec<Option<&'a [u8]>>,
        result_formats: Vec<i16>,
    },
    Describe {
        target: Target,
        name: &'a str,
    },
    Execute {
        portal: &'a str,
        max_rows: i32,
    },
    Close {
        target: Target,
        name: &'a str,
    },
    Sync,
    Flush,
    Terminate,
    /// `p`: PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share the tag;
    /// which one it is depends on the authentication exchange in progress.
    PasswordLike {
        body: &'a [u8],
    },
    CopyData {
        data: &'a [u8],
    },
    CopyDone,
    CopyFail {
        message: &'a str,
    },
    FunctionCall {
        oid: i32,
        arg_formats: Vec<i16>,
        args: Vec<Option<&'a [u8]>>,
        result_format: i16,
    },
    /// A type byte this protocol version does not define.
    Unknown {
        tag: u8,
    },
}

impl<'a> FrontendMessage<'a> {
    /// Decodes one whole frame (type byte and length included).
    pub fn decode(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((&tag, rest)) = frame.split_first() else { return Err(DecodeError::Truncated { what: "type" }) };
        let body = rest.get(4..).ok_or(DecodeError::Truncated { what: "length" })?;
        let mut r = Reader::new(body);
        let msg = match tag {
            b'Q' => Self::Query { sql: r.cstr("query string")? },
            b'P' => {
                let name = r.cstr("statement name")?;
                let sql = r.cstr("query string")?;
                let n = r.count("parameter type count", 4)?;
                let param_types = (0..n).map(|_| r.i32("parameter type")).collect::<Result<_, _>>()?;
                Self::Parse { name, sql, param_types }
            }
            b'B' => {
                let portal = r.cstr("portal name")?;
                let statement = r.cstr("statement name")?;
                let param_formats = formats(&mut r, "parameter format count")?;
                let params = values(&mut r, "parameter count")?;
                let result_formats = formats(&mut r, "result format count")?;
                Self::Bind { portal, statement, param_formats, params, result_formats }
            }
            b'D' => Self::Describe { target: target(&mut r)?, name: r.cstr("name")? },
            b'E' => Self::Execute { portal: r.cstr("portal name")?, max_rows: r.i32("row limit")? },
            b'C' => Self::Close { target: target(&mut r)?, name: r.cstr("name")? },
            b'S' => Self::Sync,
            b'H' => Self::Flush,
            b'X' => Self::Terminate,
            b'p' => Self::PasswordLike { body: r.rest() },
            b'd' => Self::CopyData { data: r.rest() },
            b'c' => Self::CopyDone,
            b'f' => Self::CopyFail { message: r.cstr("error message")? },
            b'F' => {
                let oid = r.i32("function oid")?;
                let arg_formats = formats(&mut r, "argument format count")?;
                let args = values(&mut r, "argument count")?;
                let result_format = r.i16("result format")?;
                Self::FunctionCall { oid, arg_formats, args, result_format }
            }
            _ => return Ok(Self::Unknown { tag }),
        };
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes { tag, extra: r.remaining() });
        }
        Ok(msg)
    }

    /// Messages of the extended query protocol: after an error in one of them, PostgreSQL
    /// discards messages until the next Sync.
    pub fn is_extended(tag: u8) -> bool {
        matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C' | b'H')
    }
}

/// The body of a PasswordMessage: one NUL-terminated string.
pub fn password(body: &[u8]) -> Result<&str, DecodeError> {
    let mut r = Reader::new(body);
    let password = r.cstr("password")?;
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes { tag: b'p', extra: r.remaining() });
    }
    Ok(password)
}

fn target(r: &mut Reader<'_>) -> Result<Target, DecodeError> {
    match r.u8("describe/close target")? {
        b'S' => Ok(Target::Statement),
        b'P' => Ok(Target::Portal),
        other => Err(DecodeError::InvalidField { what: "describe/close target", value: other.into() }),
    }
}

fn formats(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<i16>, DecodeError> {
    let n = r.count(what, 2)?;
    (0..n).map(|_| r.i16("format code")).collect()
}

fn values<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Vec<Option<&'a [u8]>>, DecodeError> {
    let n = r.count(what, 4)?;
    (0..n)
        .map(|_| match r.i32("value length")? {
            -1 => Ok(None),
            len if len < 0 => Err(DecodeError::InvalidField { what: "value length", value: len.into() }),
            len => r.bytes(len as usize, "value").map(Some),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::typed_frame_len;

    /// What node-postgres writes for `client.query('select $1::text', ['hi'])`: Parse, Bind,
    /// Describe, Execute, Sync in one buffer.
    fn pg_extended_batch() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"P\x00\x00\x00\x17\x00select $1::text\x00\x00\x00");
        b.extend(b"B\x00\x00\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02hi\x00\x00");
        b.extend(b"D\x00\x00\x00\x06P\x00");
        b.extend(b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00");
        b.extend(b"S\x00\x00\x00\x04");
        b
    }

    #[test]
    fn decodes_a_node_postgres_extended_batch() {
        let batch = pg_extended_batch();
        let mut frames = Vec::new();
        let mut rest = &batch[..];
        while let Some(len) = typed_frame_len(rest, |_| 1 << 20).unwrap() {
            frames.push(FrontendMessage::decode(&rest[..len]).unwrap());
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0], FrontendMessage::Parse { name: "", sql: "select $1::text", param_types: vec![] });
        assert_eq!(
            frames[1],
            FrontendMessage::Bind {
                portal: "",
                statement: "",
                param_formats: vec![],
                params: vec![Some(b"hi")],
                result_formats: vec![]
            }
        );
        assert_eq!(frames[2], FrontendMessage::Describe { target: Target::Portal, name: "" });
        assert_eq!(frames[3], FrontendMessage::Execute { portal: "", max_rows: 0 });
        assert_eq!(frames[4], FrontendMessage::Sync);
    }

    #[test]
    fn decodes_simple_messages() {
        assert_eq!(
            FrontendMessage::decode(b"Q\x00\x00\x00\x0dselect 1\x00"),
            Ok(FrontendMessage::Query { sql: "select 1" })
        );
        assert_eq!(FrontendMessage::decode(b"X\x00\x00\x00\x04"), Ok(FrontendMessage::Terminate));
        assert_eq!(FrontendMessage::decode(b"H\x00\x00\x00\x04"), Ok(FrontendMessage::Flush));
        assert_eq!(FrontendMessage::decode(b"c\x00\x00\x00\x04"), Ok(FrontendMessage::CopyDone));
        assert_eq!(FrontendMessage::decode(b"z\x00\x00\x00\x04"), Ok(FrontendMessage::Unknown { tag: b'z' }));
        assert_eq!(
            FrontendMessage::decode(b"C\x00\x00\x00\x08Sab\x00"),
            Ok(FrontendMessage::Close { target: Target::Statement, name: "ab" })
        );
        let FrontendMessage::PasswordLike { body } = FrontendMessage::decode(b"p\x00\x00\x00\x08pw1\x00").unwrap()
        else {
            panic!()
        };
        assert_eq!(password(body), Ok("pw1"));
        let call = b"F\x00\x00\x00\x16\x00\x00\x04\xd2\x00\x00\x00\x01\x00\x00\x00\x02ab\x00\x01";
        assert_eq!(
            FrontendMessage::decode(call),
            Ok(FrontendMessage::FunctionCall {
                oid: 1234,
                arg_formats: vec![],
                args: vec![Some(b"ab")],
                result_format: 1
            })
        );
    }

    #[test]
    fn rejects_malformed_bodies_without_panicking() {
        // Query without its terminator.
        assert!(matches!(
            FrontendMessage::decode(b"Q\x00\x00\x00\x08abcd"),
            Err(DecodeError::MissingTerminator { .. })
        ));
        // Sync with a stray byte.
        assert!(matches!(FrontendMessage::decode(b"S\x00\x00\x00\x05x"), Err(DecodeError::TrailingBytes { .. })));
        // Bind claiming 30000 parameters in a 20-byte body: refused before allocating.
        assert!(matches!(
            FrontendMessage::decode(b"B\x00\x00\x00\x0c\x00\x00\x00\x00\x75\x30\x00\x00"),
            Err(DecodeError::Truncated { .. })
        ));
        // A value length running past the end, and a negative one.
        assert!(FrontendMessage::decode(b"B\x00\x00\x00\x10\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09\x00\x00").is_err());
        assert!(FrontendMessage::decode(b"B\x00\x00\x00\x10\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00").is_err());
        assert!(FrontendMessage::decode(b"D\x00\x00\x00\x06X\x00").is_err());
        assert!(FrontendMessage::decode(b"Q\x00\x00").is_err());
        assert!(FrontendMessage::decode(b"").is_err());
        assert!(FrontendMessage::decode(b"Q\x00\x00\x00\x06\xff\x00").is_err());
    }

    #[test]
    fn every_truncation_of_valid_messages_is_an_error_not_a_panic() {
        let batch = pg_extended_batch();
        let mut rest = &batch[..];
        while let Some(len) = typed_frame_len(rest, |_| 1 << 20).unwrap() {
            let frame = &rest[..len];
            for cut in 5..len {
                let mut short = frame[..cut].to_vec();
                short[1..5].copy_from_slice(&((cut - 1) as i32).to_be_bytes());
                assert!(FrontendMessage::decode(&short).is_err(), "{:?} cut to {cut} bytes decoded", frame[0] as char);
            }
            rest = &rest[len..];
        }
    }
}
