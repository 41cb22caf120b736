//! Startup-phase packets: `startup_frame_len` and `StartupPacket::decode` on arbitrary bytes
//! must never panic, and a decoded StartupMessage must encode back to a packet that decodes to
//! the same message.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pg_gateway_native::protocol::frame::startup_frame_len;
use pg_gateway_native::protocol::{StartupPacket, MAX_STARTUP_PACKET_LEN};

fuzz_target!(|data: &[u8]| {
    // The input as one packet, whatever its length field says.
    check(data);
    // The input as the stream a session reads: framed first.
    match startup_frame_len(data) {
        Ok(Some(len)) => {
            assert!(len >= 8 && len <= data.len() && len - 4 <= MAX_STARTUP_PACKET_LEN);
            for cut in 0..len.min(64) {
                assert_eq!(startup_frame_len(&data[..cut]), Ok(None), "prefix of {cut} bytes");
            }
            check(&data[..len]);
        }
        Ok(None) => assert!(
            data.len() < 4 || {
                let len = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                len as usize > data.len()
            }
        ),
        Err(_) => {}
    }
});

fn check(frame: &[u8]) {
    let Ok(packet) = StartupPacket::decode(frame) else { return };
    match packet {
        StartupPacket::Startup(message) => {
            let _ = message.parameter("user");
            let mut out = BytesMut::new();
            message.encode(&mut out);
            let again = StartupPacket::decode(&out).expect("an encoded StartupMessage decodes");
            assert_eq!(again, StartupPacket::Startup(message), "encode/decode round trip");
        }
        StartupPacket::CancelRequest { secret_key, .. } => assert!((4..=256).contains(&secret_key.len())),
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => assert_eq!(frame.len(), 8),
        StartupPacket::UnsupportedVersion { major, .. } => assert_ne!(major, 3),
    }
}
