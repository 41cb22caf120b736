//! pg-gateway-native: the server side of the PostgreSQL wire protocol, for Node.js.
//!
//! Layout (imports flow downwards only):
//! - [`napi`]: the thin binding. Converts JS options and hooks into the types below.
//! - [`server`]: the only place with sockets, timers and tasks. Drives sessions over tokio.
//! - [`session`]: one connection's state machine, sans-IO: bytes and hook results in,
//!   bytes and hook requests out.
//! - [`auth`]: authentication exchanges (password, md5, SCRAM, certificate), sans-IO.
//! - [`cancel`]: the process-wide registry of cancel keys that both drivers share.
//! - [`tls`]: rustls configurations from PEM options, and certificate facts (sans-IO).
//! - [`protocol`]: the pure codec: framing, startup packets, frontend decode, backend encode.

pub mod auth;
pub mod cancel;
// napi exports are only reachable from JS, so a test build sees them as unused.
#[cfg_attr(test, allow(dead_code))]
pub mod napi;
pub mod protocol;
pub mod server;
pub mod session;
pub mod tls;
