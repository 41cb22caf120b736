//! How the driver calls user code. The napi layer implements this with JS functions; tests
//! can implement it with closures.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::conn::ConnShared;
use super::log::{LogEvent, LogLevel};
use crate::session::{HookRequest, HookResult};

pub type HookFuture = Pin<Box<dyn Future<Output = HookResult> + Send>>;

pub trait Hooks: Send + Sync + 'static {
    /// Runs one hook for `conn`; `offered` holds the messages of a `Messages` request (see
    /// [`crate::session::Session::offered`]). A hook that fails resolves to
    /// [`HookResult::Failed`]; the future itself never panics.
    fn call(&self, conn: &Arc<ConnShared>, request: HookRequest, offered: &[u8]) -> HookFuture;

    /// The connection ended; `reason` says how. Called once, and only for connections that
    /// ran at least one hook (others were never seen by JS).
    fn closed(&self, conn: &Arc<ConnShared>, reason: super::CloseReason);

    /// The connection failed in a way its client could not be told (a TLS handshake), for any
    /// connection, seen by JS or not. Fire and forget.
    fn problem(&self, _conn: &Arc<ConnShared>, _message: String) {}

    /// A CancelRequest with this connection's key arrived (`onCancel`). Fire and forget.
    fn cancelled(&self, conn: &Arc<ConnShared>);

    /// A detached connection's stream has closed too: the connection is gone for good (its
    /// cancel key is free again). Called after `closed(.., Detached)`, for connections JS saw.
    fn released(&self, _conn: &Arc<ConnShared>) {}

    /// The least severe level the operator's logger takes ([`LogLevel::Silent`]: none). The
    /// driver builds an event only at or above it.
    fn log_level(&self) -> LogLevel {
        LogLevel::Silent
    }

    /// One line for the operator's logger. Fire and forget.
    fn log(&self, _conn: &Arc<ConnShared>, _event: LogEvent) {}
}
