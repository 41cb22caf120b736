//! Typed frontend messages: framing (`typed_frame_len`) and decoding
//! (`FrontendMessage::decode`, `frontend::password`) of arbitrary bytes must never panic, and
//! framing must judge a frame from its header alone, whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_gateway_native::protocol::frame::typed_frame_len;
use pg_gateway_native::protocol::frontend::{self, FrontendMessage};
use pg_gateway_native::protocol::FrameLimits;

fuzz_target!(|data: &[u8]| {
    // The input as one frame, whatever its length field says.
    decode(data);

    // The input as a stream, cut the way sessions cut it, under each limit regime.
    for (limits, authenticated) in
        [(FrameLimits::default(), false), (FrameLimits::default(), true), (FrameLimits { large: 64 }, true)]
    {
        let max_len = |tag| limits.max_len(tag, authenticated);
        let mut rest = data;
        let mut first = true;
        loop {
            match typed_frame_len(rest, max_len) {
                Ok(Some(len)) => {
                    assert!(len >= 5 && len <= rest.len(), "frame of {len} bytes in {}", rest.len());
                    if first {
                        same_verdict_for_every_prefix(rest, &max_len, Ok(Some(len)));
                        first = false;
                    }
                    decode(&rest[..len]);
                    rest = &rest[len..];
                }
                Ok(None) => {
                    assert!(
                        rest.len() < 5 || {
                            let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                            len >= 4 && len as usize + 1 > rest.len()
                        }
                    );
                    break;
                }
                Err(err) => {
                    if first {
                        same_verdict_for_every_prefix(rest, &max_len, Err(err));
                    }
                    break;
                }
            }
        }
    }
});

fn decode(frame: &[u8]) {
    if let Ok(message) = FrontendMessage::decode(frame) {
        let _ = FrontendMessage::is_extended(frame[0]);
        if let FrontendMessage::PasswordLike { body } = message {
            let _ = frontend::password(body);
        }
    }
}

/// A frame's verdict is known once its header is in: an error at once, its length as soon as
/// it is whole, and "incomplete" for every shorter prefix.
fn same_verdict_for_every_prefix(
    buf: &[u8],
    max_len: &impl Fn(u8) -> usize,
    verdict: Result<Option<usize>, pg_gateway_native::protocol::DecodeError>,
) {
    for cut in 0..buf.len().min(64) {
        let got = typed_frame_len(&buf[..cut], max_len);
        let expected = match &verdict {
            _ if cut < 5 => Ok(None),
            Ok(Some(len)) if cut < *len => Ok(None),
            other => other.clone(),
        };
        assert_eq!(got, expected, "prefix of {cut} bytes");
    }
}
