//! The thin napi binding: argument conversion and error mapping only. No protocol logic lives
//! here; the public JS API (pg-gateway's names) is built on top of these items in `index.js`.

mod connection;
mod errors;
mod hooks;
mod js;
mod options;
mod query;
mod raw;
mod server;
mod session_handle;
mod tls;
mod util;
