//! TLS, sans-IO: server configurations built from pg-gateway's PEM options, and the
//! certificate facts authentication needs. rustls does the protocol; it performs no I/O, so
//! the session drives it with the same bytes-in/bytes-out discipline as everything else.

mod cert;
mod config;

pub use cert::subject_common_name;
pub use config::{certificate_error, TlsError, TlsMaterial, TlsServer, POSTGRESQL_ALPN};
