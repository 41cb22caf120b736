//! Startup-phase packets: the untyped, length-prefixed packets a client may send before its
//! StartupMessage is accepted. See "Start-up" in
//! <https://www.postgresql.org/docs/current/protocol-flow.html>.

use bytes::{BufMut, BytesMut};

use super::error::DecodeError;
use super::reader::Reader;

pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;

/// Protocol 3.0, the version this server speaks (3.2 clients are answered with
/// NegotiateProtocolVersion and continue at 3.0).
pub const PROTOCOL_3_0: i32 = 196_608;

/// One decoded startup-phase packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    SslRequest,
    GssEncRequest,
    /// Sent on a new connection to cancel a query on another one. The secret key is 4 bytes in
    /// protocol 3.0 and 4 to 256 bytes in 3.2.
    CancelRequest {
        process_id: i32,
        secret_key: &'a [u8],
    },
    Startup(StartupMessage),
    /// A StartupMessage for a major version other than 3. PostgreSQL checks the version before
    /// it looks at the parameters, so their layout does not matter here.
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
}

/// A StartupMessage: protocol version and parameters, in the order the client sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    pub parameters: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Encodes the message (no type byte), e.g. to replay it to an upstream server.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_i32(0);
        out.put_u16(self.major);
        out.put_u16(self.minor);
        for (key, value) in &self.parameters {
            out.put_slice(key.as_bytes());
            out.put_u8(0);
            out.put_slice(value.as_bytes());
            out.put_u8(0);
        }
        out.put_u8(0);
        let len = (out.len() - start) as i32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

impl<'a> StartupPacket<'a> {
    /// Decodes one whole packet, length field included, as cut by
    /// [`super::frame::startup_frame_len`].
    pub fn decode(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame);
        let _len = r.i32("length")?;
        let code = r.i32("protocol version")?;
        match code {
            SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => {
                if frame.len() != 8 {
                    return Err(DecodeError::SpecialRequestLength { code, len: frame.len() });
                }
                Ok(if code == SSL_REQUEST_CODE { Self::SslRequest } else { Self::GssEncRequest })
            }
            CANCEL_REQUEST_CODE => {
                let process_id = r.i32("process id")?;
                let secret_key = r.rest();
                if !(4..=256).contains(&secret_key.len()) {
                    return Err(DecodeError::SpecialRequestLength { code, len: frame.len() });
                }
                Ok(Self::CancelRequest { process_id, secret_key })
            }
            version => {
                let major = (version >> 16) as u16;
                let minor = (version & 0xffff) as u16;
                if major != 3 {
                    return Ok(Self::UnsupportedVersion { major, minor });
                }
                Ok(Self::Startup(StartupMessage { major, minor, parameters: decode_parameters(&mut r)? }))
            }
        }
    }
}

/// `name\0value\0 ... \0`. PostgreSQL requires the final terminator to be the last byte.
fn decode_parameters(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, DecodeError> {
    let mut parameters = Vec::new();
    loop {
        let name = r.cbytes("parameter name").map_err(|_| DecodeError::StartupLayout)?;
        if name.is_empty() {
            break;
        }
        let value = r.cbytes("parameter value").map_err(|_| DecodeError::StartupLayout)?;
        // Clients send bytes in their own encoding; invalid UTF-8 is kept visible, not fatal.
        parameters.push((String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(value).into_owned()));
    }
    if !r.is_empty() {
        return Err(DecodeError::StartupLayout);
    }
    Ok(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What libpq sends for `psql -U alice -d db` (minus most parameters).
    const PSQL_STARTUP: &[u8] = b"\x00\x00\x00\x20\x00\x03\x00\x00user\x00alice\x00database\x00db\x00\x00";

    #[test]
    fn decodes_a_startup_message_golden_bytes() {
        let StartupPacket::Startup(msg) = StartupPacket::decode(PSQL_STARTUP).unwrap() else { panic!() };
        assert_eq!((msg.major, msg.minor), (3, 0));
        assert_eq!(msg.parameter("user"), Some("alice"));
        assert_eq!(msg.parameter("database"), Some("db"));
        let mut out = BytesMut::new();
        msg.encode(&mut out);
        assert_eq!(&out[..], PSQL_STARTUP);
    }

    #[test]
    fn decodes_special_requests() {
        assert_eq!(StartupPacket::decode(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), Ok(StartupPacket::SslRequest));
        assert_eq!(StartupPacket::decode(b"\x00\x00\x00\x08\x04\xd2\x16\x30"), Ok(StartupPacket::GssEncRequest));
        let cancel = b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07\x01\x02\x03\x04";
        assert_eq!(
            StartupPacket::decode(cancel),
            Ok(StartupPacket::CancelRequest { process_id: 7, secret_key: &[1, 2, 3, 4] })
        );
        assert!(StartupPacket::decode(b"\x00\x00\x00\x0c\x04\xd2\x16\x2f\x00\x00\x00\x00").is_err());
        assert!(StartupPacket::decode(b"\x00\x00\x00\x0c\x04\xd2\x16\x2e\x00\x00\x00\x07").is_err());
    }

    #[test]
    fn rejects_a_startup_message_without_its_last_terminator() {
        let mut bad = PSQL_STARTUP.to_vec();
        bad.pop();
        assert_eq!(StartupPacket::decode(&bad), Err(DecodeError::StartupLayout));
        let mut extra = PSQL_STARTUP.to_vec();
        extra.push(b'x');
        assert_eq!(StartupPacket::decode(&extra), Err(DecodeError::StartupLayout));
        assert_eq!(StartupPacket::decode(b"\x00\x00\x00\x0b\x00\x03\x00\x00ab"), Err(DecodeError::StartupLayout));
    }

    #[test]
    fn judges_the_version_before_the_parameters() {
        // 8 bytes, version 2.0: PostgreSQL answers "unsupported frontend protocol", not a layout error.
        assert_eq!(
            StartupPacket::decode(b"\x00\x00\x00\x08\x00\x02\x00\x00"),
            Ok(StartupPacket::UnsupportedVersion { major: 2, minor: 0 })
        );
        assert_eq!(StartupPacket::decode(b"\x00\x00\x00\x08\x00\x03\x00\x00"), Err(DecodeError::StartupLayout));
    }

    #[test]
    fn keeps_the_requested_minor_version() {
        let StartupPacket::Startup(msg) = StartupPacket::decode(b"\x00\x00\x00\x09\x00\x03\x00\x02\x00").unwrap()
        else {
            panic!()
        };
        assert_eq!((msg.major, msg.minor), (3, 2));
        assert!(msg.parameters.is_empty());
    }
}
