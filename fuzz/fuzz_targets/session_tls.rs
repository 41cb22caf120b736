//! A session behind a real TLS handshake (rustls client in process, SSLRequest or direct TLS,
//! TLS 1.2 or 1.3, with or without a client certificate): the fuzz input after its 8-byte
//! header is the plaintext the client sends through the encrypted channel. The client must
//! accept every record the session writes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pg_gateway_native_fuzz::session_tls(data));
