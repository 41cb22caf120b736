//! Encoders for the backend messages this library sends. Encoding appends to a `BytesMut` and
//! cannot fail; each function writes one whole message.

use bytes::{BufMut, BytesMut};

use super::error::{PgError, Severity};

/// Transaction status in ReadyForQuery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransactionStatus {
    #[default]
    Idle,
    InTransaction,
    Failed,
}

impl TransactionStatus {
    pub fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// Writes a message with the given type byte; `body` appends the payload and the length is
/// filled in afterwards.
fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let len_at = out.len();
    out.put_i32(0);
    body(out);
    let len = (out.len() - len_at) as i32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(out: &mut BytesMut, s: &str) {
    // A NUL inside a string would end the field early and desynchronise the client; cut there.
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    out.put_slice(&bytes[..end]);
    out.put_u8(0);
}

pub fn authentication_ok(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_i32(0));
}

pub fn authentication_cleartext_password(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_i32(3));
}

pub fn authentication_md5_password(out: &mut BytesMut, salt: [u8; 4]) {
    message(out, b'R', |b| {
        b.put_i32(5);
        b.put_slice(&salt);
    });
}

/// AuthenticationSASL: the mechanisms offered, in order of preference.
pub fn authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    message(out, b'R', |b| {
        b.put_i32(10);
        for mechanism in mechanisms {
            cstr(b, mechanism);
        }
        b.put_u8(0);
    });
}

/// AuthenticationSASLContinue with the server's next SASL message.
pub fn authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_i32(11);
        b.put_slice(data);
    });
}

/// AuthenticationSASLFinal with the server's last SASL message.
pub fn authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_i32(12);
        b.put_slice(data);
    });
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    message(out, b'S', |b| {
        cstr(b, name);
        cstr(b, value);
    });
}

pub fn backend_key_data(out: &mut BytesMut, process_id: i32, secret_key: &[u8]) {
    message(out, b'K', |b| {
        b.put_i32(process_id);
        b.put_slice(secret_key);
    });
}

pub fn ready_for_query(out: &mut BytesMut, status: TransactionStatus) {
    message(out, b'Z', |b| b.put_u8(status.byte()));
}

/// NegotiateProtocolVersion: the newest version we support for the requested major, and the
/// `_pq_.` options we did not recognise.
pub fn negotiate_protocol_version(out: &mut BytesMut, version: i32, unrecognized: &[String]) {
    message(out, b'v', |b| {
        b.put_i32(version);
        b.put_i32(unrecognized.len() as i32);
        for option in unrecognized {
            cstr(b, option);
        }
    });
}

/// An error in protocol 2.0's format (`E`, then `"FATAL:  <message>\n"` and a NUL, no length):
/// what PostgreSQL sends a client that asked for a protocol older than 3.0, since such a
/// client reads nothing else.
pub fn error_response_v2(out: &mut BytesMut, err: &PgError) {
    out.put_u8(b'E');
    out.put_slice(err.severity.as_str().as_bytes());
    out.put_slice(b":  ");
    out.put_slice(err.message.replace('\0', "").as_bytes());
    out.put_slice(b"\n\0");
}

/// ErrorResponse: `S` and `V` (both the severity, as pg-gateway and PostgreSQL send them),
/// `C`, `M`, then the optional fields in the order given.
pub fn error_response(out: &mut BytesMut, err: &PgError) {
    let tag = if matches!(err.severity, Severity::Error | Severity::Fatal | Severity::Panic) { b'E' } else { b'N' };
    message(out, tag, |b| {
        for (field, value) in
            [(b'S', err.severity.as_str()), (b'V', err.severity.as_str()), (b'C', &err.code), (b'M', &err.message)]
        {
            b.put_u8(field);
            cstr(b, value);
        }
        for (field, value) in &err.fields {
            if *field != 0 {
                b.put_u8(*field);
                cstr(b, value);
            }
        }
        b.put_u8(0);
    });
}

/// A message with no body (ParseComplete, BindComplete, CloseComplete, NoData,
/// EmptyQueryResponse, PortalSuspended).
pub fn empty(out: &mut BytesMut, tag: u8) {
    message(out, tag, |_| {});
}

pub const PARSE_COMPLETE: u8 = b'1';
pub const BIND_COMPLETE: u8 = b'2';
pub const CLOSE_COMPLETE: u8 = b'3';
pub const NO_DATA: u8 = b'n';
pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
pub const PORTAL_SUSPENDED: u8 = b's';

pub fn command_complete(out: &mut BytesMut, tag: &str) {
    message(out, b'C', |b| cstr(b, tag));
}

/// CommandComplete `SELECT <rows>`, without formatting a string.
pub fn command_complete_select(out: &mut BytesMut, rows: u32) {
    message(out, b'C', |b| {
        b.put_slice(b"SELECT ");
        crate::protocol::types::datetime::put_int(b, i64::from(rows));
        b.put_u8(0);
    });
}

pub fn parameter_description(out: &mut BytesMut, types: &[u32]) {
    message(out, b't', |b| {
        b.put_i16(types.len() as i16);
        for oid in types {
            b.put_u32(*oid);
        }
    });
}

/// One RowDescription column: no table, the type's OID and size, typmod -1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDescription {
    pub name: String,
    pub type_oid: u32,
    pub type_size: i16,
    /// 0 text, 1 binary.
    pub format: i16,
}

pub fn row_description(out: &mut BytesMut, columns: &[ColumnDescription]) {
    message(out, b'T', |b| {
        b.put_i16(columns.len() as i16);
        for c in columns {
            cstr(b, &c.name);
            b.put_u32(0);
            b.put_i16(0);
            b.put_u32(c.type_oid);
            b.put_i16(c.type_size);
            b.put_i32(-1);
            b.put_i16(c.format);
        }
    });
}

/// The single-byte answer to SSLRequest and GSSENCRequest.
pub fn encryption_response(out: &mut BytesMut, accept: bool) {
    out.put_u8(if accept { b'S' } else { b'N' });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sqlstate::SqlState;

    fn bytes(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut out);
        out.to_vec()
    }

    #[test]
    fn select_tags_are_written_without_a_string() {
        for rows in [0, 1, 9, 10, 12345, u32::MAX] {
            assert_eq!(
                bytes(|b| command_complete_select(b, rows)),
                bytes(|b| command_complete(b, &format!("SELECT {rows}")))
            );
        }
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(bytes(authentication_ok), b"R\x00\x00\x00\x08\x00\x00\x00\x00");
        assert_eq!(bytes(authentication_cleartext_password), b"R\x00\x00\x00\x08\x00\x00\x00\x03");
        assert_eq!(
            bytes(|o| authentication_md5_password(o, [1, 2, 3, 4])),
            b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"
        );
        assert_eq!(bytes(|o| parameter_status(o, "a", "b")), b"S\x00\x00\x00\x08a\x00b\x00");
        assert_eq!(
            bytes(|o| backend_key_data(o, 7, &[9, 9, 9, 9])),
            b"K\x00\x00\x00\x0c\x00\x00\x00\x07\x09\x09\x09\x09"
        );
        assert_eq!(bytes(|o| ready_for_query(o, TransactionStatus::Idle)), b"Z\x00\x00\x00\x05I");
        assert_eq!(bytes(|o| ready_for_query(o, TransactionStatus::Failed)), b"Z\x00\x00\x00\x05E");
        assert_eq!(
            bytes(|o| negotiate_protocol_version(o, 196_608, &["_pq_.x".into()])),
            b"v\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x01_pq_.x\x00"
        );
        assert_eq!(bytes(|o| encryption_response(o, false)), b"N");
        assert_eq!(bytes(|o| empty(o, NO_DATA)), b"n\x00\x00\x00\x04");
        assert_eq!(bytes(|o| command_complete(o, "SELECT 1")), b"C\x00\x00\x00\x0dSELECT 1\x00");
        assert_eq!(bytes(|o| parameter_description(o, &[23])), b"t\x00\x00\x00\x0a\x00\x01\x00\x00\x00\x17");
        let column = ColumnDescription { name: "a".into(), type_oid: 23, type_size: 4, format: 1 };
        assert_eq!(
            bytes(|o| row_description(o, &[column])),
            b"T\x00\x00\x00\x1a\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01"
        );
    }

    #[test]
    fn error_response_matches_pg_gateway_field_order() {
        let err = PgError::fatal(SqlState::INVALID_PASSWORD, "bad").with_detail("d");
        assert_eq!(
            bytes(|o| error_response(o, &err)),
            b"E\x00\x00\x00\x22SFATAL\x00VFATAL\x00C28P01\x00Mbad\x00Dd\x00\x00"
        );
        let notice = PgError::new(Severity::Notice, SqlState::INTERNAL_ERROR, "n");
        assert_eq!(bytes(|o| error_response(o, &notice))[0], b'N');
    }

    #[test]
    fn interior_nul_cannot_desynchronise_the_client() {
        assert_eq!(bytes(|o| parameter_status(o, "a\0b", "c")), b"S\x00\x00\x00\x08a\x00c\x00");
    }
}
