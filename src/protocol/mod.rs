//! The PostgreSQL frontend/backend protocol as pure data: bytes in, typed values out, and
//! typed values to bytes. No I/O, no tokio, no napi and no clocks live here, so everything in
//! this module can be unit-tested and fuzzed without a socket.
//!
//! Reference: <https://www.postgresql.org/docs/current/protocol-message-formats.html>

pub mod backend;
pub mod error;
pub mod frame;
pub mod frontend;
pub mod key_rewrite;
pub mod reader;
pub mod sqlstate;
pub mod startup;
pub mod types;

pub use error::{DecodeError, PgError, Severity};
pub use frame::{FrameLimits, MAX_STARTUP_PACKET_LEN};
pub use frontend::FrontendMessage;
pub use sqlstate::SqlState;
pub use startup::{StartupMessage, StartupPacket};
