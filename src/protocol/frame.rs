//! Incremental framing: given the bytes received so far, how long is the first complete frame?
//! `Ok(None)` means "not all of it has arrived yet"; that is the normal case, not an error.
//! Lengths are checked as soon as the header is in, before anything is buffered, so a peer
//! cannot make us wait for (or allocate) a gigabyte it never sends.

use super::error::DecodeError;

/// `MAX_STARTUP_PACKET_LENGTH` in PostgreSQL's `pqcomm.h`: "just to prevent simple
/// denial-of-service attacks". Like every limit here it counts the body, not the length word:
/// PostgreSQL subtracts the 4 bytes of the length field before comparing, so a declared length
/// of 10 004 is still accepted.
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// `PQ_SMALL_MESSAGE_LIMIT`: messages that never carry user data (Sync, Describe, Close ...).
pub const SMALL_MESSAGE_LIMIT: usize = 10_000;

/// `PG_MAX_AUTH_TOKEN_LENGTH`: the limit for any message before authentication completes.
pub const AUTH_MESSAGE_LIMIT: usize = 65_535;

/// `PQ_LARGE_MESSAGE_LIMIT` (`MaxAllocSize - 1`): Query, Parse, Bind, CopyData, FunctionCall.
pub const LARGE_MESSAGE_LIMIT: usize = 0x3fff_fffe;

/// Per-connection message size limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// The limit for messages that carry user data (queries, parameters, COPY data).
    pub large: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self { large: LARGE_MESSAGE_LIMIT }
    }
}

impl FrameLimits {
    /// The largest body (length field excluded) accepted for a message type, following
    /// PostgreSQL's `SocketBackend` once authenticated and `PG_MAX_AUTH_TOKEN_LENGTH` before.
    pub fn max_len(&self, tag: u8, authenticated: bool) -> usize {
        if !authenticated {
            return AUTH_MESSAGE_LIMIT.min(self.large.max(SMALL_MESSAGE_LIMIT));
        }
        match tag {
            b'Q' | b'P' | b'B' | b'F' | b'd' => self.large,
            _ => SMALL_MESSAGE_LIMIT,
        }
    }
}

/// The length of the first startup-phase packet in `buf` (Int32 length including itself, no
/// type byte): SSLRequest, GSSENCRequest, CancelRequest or StartupMessage.
pub fn startup_frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..4) else { return Ok(None) };
    let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    // 8 is the shortest legal packet (length + request code); `ProcessStartupPacket` checks the
    // body, `len - 4`, against the limit.
    if len < 8 || len as usize - 4 > MAX_STARTUP_PACKET_LEN {
        return Err(DecodeError::StartupPacketLength { len: len.into(), max: MAX_STARTUP_PACKET_LEN + 4 });
    }
    let len = len as usize;
    Ok((buf.len() >= len).then_some(len))
}

/// The total length (type byte included) of the first typed message in `buf`.
pub fn typed_frame_len(buf: &[u8], max_len: impl Fn(u8) -> usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..5) else { return Ok(None) };
    let tag = header[0];
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    // `pq_getmessage` compares the body, `len - 4`, with the limit.
    let max = max_len(tag).saturating_add(4);
    if len < 4 || len as usize > max {
        return Err(DecodeError::MessageLength { tag, len: len.into(), max });
    }
    let total = len as usize + 1;
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync() -> Vec<u8> {
        vec![b'S', 0, 0, 0, 4]
    }

    #[test]
    fn every_strict_prefix_of_a_frame_is_incomplete() {
        let query = [&[b'Q', 0, 0, 0, 13][..], b"select 1\0"].concat();
        for cut in 0..query.len() {
            assert_eq!(typed_frame_len(&query[..cut], |_| 100), Ok(None), "prefix {cut}");
        }
        assert_eq!(typed_frame_len(&query, |_| 100), Ok(Some(query.len())));
        let startup = [&[0, 0, 0, 8][..], &[0x04, 0xd2, 0x16, 0x2f]].concat();
        for cut in 0..startup.len() {
            assert_eq!(startup_frame_len(&startup[..cut]), Ok(None), "prefix {cut}");
        }
        assert_eq!(startup_frame_len(&startup), Ok(Some(8)));
    }

    #[test]
    fn several_frames_in_one_buffer_split_one_by_one() {
        let mut buf = sync();
        buf.extend(sync());
        buf.push(b'H');
        assert_eq!(typed_frame_len(&buf, |_| 100), Ok(Some(5)));
        assert_eq!(typed_frame_len(&buf[5..], |_| 100), Ok(Some(5)));
        assert_eq!(typed_frame_len(&buf[10..], |_| 100), Ok(None));
    }

    #[test]
    fn hostile_lengths_are_rejected_from_the_header_alone() {
        assert!(matches!(startup_frame_len(&[0x7f, 0xff, 0xff, 0xff]), Err(DecodeError::StartupPacketLength { .. })));
        assert!(matches!(startup_frame_len(&[0, 0, 0, 3]), Err(DecodeError::StartupPacketLength { len: 3, .. })));
        assert!(matches!(
            startup_frame_len(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::StartupPacketLength { len: -1, .. })
        ));
        assert!(startup_frame_len(&10_005i32.to_be_bytes()).is_err());
        assert_eq!(startup_frame_len(&10_004i32.to_be_bytes()), Ok(None), "PostgreSQL accepts a body of 10 000");
        assert!(matches!(
            typed_frame_len(&[b'Q', 0, 0, 0, 3], |_| 100),
            Err(DecodeError::MessageLength { len: 3, .. })
        ));
        assert!(matches!(typed_frame_len(&[b'Q', 0x80, 0, 0, 0], |_| 100), Err(DecodeError::MessageLength { .. })));
        assert!(typed_frame_len(&[b'Q', 0, 0, 0, 105], |_| 100).is_err());
        assert_eq!(typed_frame_len(&[b'Q', 0, 0, 0, 104], |_| 100), Ok(None), "a body of exactly the limit");
    }

    #[test]
    fn limits_follow_postgres_per_message_type() {
        let limits = FrameLimits::default();
        assert_eq!(limits.max_len(b'Q', true), LARGE_MESSAGE_LIMIT);
        assert_eq!(limits.max_len(b'S', true), SMALL_MESSAGE_LIMIT);
        assert_eq!(limits.max_len(b'Q', false), AUTH_MESSAGE_LIMIT);
        let tight = FrameLimits { large: 1000 };
        assert_eq!(tight.max_len(b'd', true), 1000);
    }
}
