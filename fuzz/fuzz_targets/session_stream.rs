//! A whole session driven by a fake driver: the fuzz input (after an 8-byte header choosing
//! the server configuration and the driver's choices, see `fuzz/src/lib.rs`) is everything the
//! client sends, TLS records included when TLS is on. Nothing may panic, hooks must be offered
//! whole messages, and a closed session stays closed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pg_gateway_native_fuzz::session_stream(data));
