//! The tokio driver: the only place with sockets, tasks and timers. It runs a
//! [`crate::session::Session`] over a stream, calls hooks through the [`Hooks`] trait (the napi
//! layer implements it with JS functions), and moves bytes through one ordered [`Outbound`]
//! buffer that both the session and JS `sendData` write to.

mod conn;
mod driver;
mod hooks;
mod listener;
mod log;
mod outbound;
mod proxy;
mod signal;
mod stats;
mod unwind;

pub use crate::session::CloseReason;
pub use conn::{ConnShared, ProxyTarget};
pub use driver::{adopt, deliver_cancel, forward_cancel, secrets, spawn_connection};
pub use hooks::{HookFuture, Hooks};
pub use listener::{next_connection_id, Listener};
pub use log::{LogEvent, LogLevel};
pub use outbound::Outbound;
pub use stats::{HookCounters, ServerStats, StatsSnapshot};
