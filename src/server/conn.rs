//! One connection's shared handle ([`ConnShared`]): what JS holds and the driver serves
//! (identity, the ordered outbound buffer, the state snapshot, and JS's requests). The task
//! that drives a session is in `driver.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

use super::outbound::Outbound;
use super::signal::Signal;
use crate::session::{Session, SessionConfig, State};

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (EOF, or Terminate).
    ClientEnded,
    /// The session ended it (a FATAL error) or JS called `end()`.
    Closed,
    /// The socket failed (reset, broken pipe) or JS called `destroy()`.
    Error,
    /// The startup did not finish within the authentication timeout.
    Timeout,
    /// The server is shutting down.
    Shutdown,
    /// JS took the connection over with `detach()`.
    Detached,
}

impl CloseReason {
    const ALL: [Self; 6] =
        [Self::ClientEnded, Self::Closed, Self::Error, Self::Timeout, Self::Shutdown, Self::Detached];

    /// As a [`Signal`] value: 0 is "still running".
    fn code(self) -> u8 {
        Self::ALL.iter().position(|r| *r == self).map_or(0, |i| i as u8 + 1)
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientEnded => "end",
            Self::Closed => "closed",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
            Self::Detached => "detached",
        }
    }
}

/// Requests JS can make of a running connection, checked by the driver between steps.
pub(super) const REQ_END: u8 = 1;
pub(super) const REQ_DESTROY: u8 = 2;
pub(super) const REQ_DETACH: u8 = 4;
pub(super) const REQ_SHUTDOWN: u8 = 8;
/// JS wrote to an encrypted connection: the driver must seal the bytes.
pub(super) const REQ_FLUSH: u8 = 16;
/// JS asked for the connection to be proxied to an upstream server.
pub(super) const REQ_PROXY: u8 = 32;

/// Where `proxy()` sends a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    pub host: String,
    pub port: u16,
    /// Send the client's StartupMessage first (when the gateway already consumed it).
    pub replay_startup: bool,
}

/// Per-connection settings the listener or the adopting call chooses.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub session: Arc<SessionConfig>,
    /// PostgreSQL's `authentication_timeout`: the whole startup must finish within it.
    pub auth_timeout: Duration,
}

/// What a connection shares with JS: its identity, its outbound buffer, the state snapshot
/// and the requests JS can make of it.
pub struct ConnShared {
    pub id: u32,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub out: Outbound,
    pub(super) state: Mutex<(u32, State)>,
    pub(super) requests: AtomicU8,
    pub(super) wake_driver: Notify,
    /// Set once any hook ran, so JS knows this connection and must hear that it closed.
    pub(super) seen_by_js: AtomicBool,
    /// Why the driver ended ([`CloseReason::code`]), 0 while it runs.
    finished: Signal,
    /// After `detach()`: the read side and the bytes read but not processed.
    pub(super) detached: tokio::sync::Mutex<Option<DetachedRead>>,
    /// 1 once the read side of a detached connection can be read.
    detached_ready: Signal,
    /// Once TLS is up, JS writes wait here as plaintext until the driver seals them, in order.
    pub(super) encrypted: AtomicBool,
    pub(super) plain_out: Mutex<BytesMut>,
    pub(super) proxy_target: Mutex<Option<ProxyTarget>>,
}

/// The read side of a detached connection.
pub enum DetachedRead {
    /// Plaintext: the socket itself, after the bytes read but not processed.
    Raw { leftover: BytesMut, reader: OwnedReadHalf },
    /// After TLS: plaintext the driver decrypts (`None` at the end).
    Decrypted { leftover: BytesMut, chunks: tokio::sync::mpsc::Receiver<Vec<u8>> },
}

impl ConnShared {
    pub(super) fn new(id: u32, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            id,
            peer,
            local,
            out: Outbound::default(),
            state: Mutex::new((0, State::default())),
            requests: AtomicU8::new(0),
            wake_driver: Notify::new(),
            seen_by_js: AtomicBool::new(false),
            finished: Signal::default(),
            detached: tokio::sync::Mutex::new(None),
            detached_ready: Signal::default(),
            encrypted: AtomicBool::new(false),
            plain_out: Mutex::new(BytesMut::new()),
            proxy_target: Mutex::new(None),
        })
    }

    /// The last published state and its version.
    pub fn state(&self) -> (u32, State) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn state_version(&self) -> u32 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    pub(super) fn publish(&self, session: &Session) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 != session.state_version() {
            *guard = (session.state_version(), session.state().clone());
        }
    }

    /// Queues protocol bytes from JS. False once the connection cannot send any more.
    pub fn write_from_js(&self, data: &[u8]) -> bool {
        if !self.encrypted.load(Ordering::Acquire) {
            return self.out.write(data);
        }
        if self.out.is_dead() {
            return false;
        }
        self.plain_out.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        self.request(REQ_FLUSH);
        true
    }

    /// Whether the connection is encrypted (TLS negotiated or under way).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.load(Ordering::Acquire)
    }

    /// Moves JS writes into the session (which encrypts them) and the result to the socket.
    pub(super) fn flush_js_writes(&self, session: &mut Session) {
        let plain = std::mem::take(&mut *self.plain_out.lock().unwrap_or_else(|p| p.into_inner()));
        if !plain.is_empty() {
            session.send(&plain);
        }
        self.out.write_owned(session.take_output());
    }

    pub fn mark_seen_by_js(&self) {
        self.seen_by_js.store(true, Ordering::Relaxed);
    }

    /// Whether JS asked for the connection to be closed at once.
    pub(super) fn destroy_requested(&self) -> bool {
        self.requests.load(Ordering::Acquire) & REQ_DESTROY != 0
    }

    fn request(&self, flag: u8) {
        self.requests.fetch_or(flag, Ordering::AcqRel);
        self.wake_driver.notify_one();
    }

    /// Flush, then close (like `socket.end()`).
    pub fn end(&self) {
        self.out.end();
        self.request(REQ_END);
    }

    /// Close now (like `socket.destroy()`).
    pub fn destroy(&self) {
        self.out.abort();
        self.request(REQ_DESTROY);
        self.drop_detached();
    }

    /// Stop processing protocol messages; the read side goes to [`Self::read_detached`].
    pub fn detach(&self) {
        self.request(REQ_DETACH);
    }

    /// Stop processing protocol messages and copy both directions between the client and
    /// `target`, in Rust (after the current hook, if one is running).
    pub fn proxy(&self, target: ProxyTarget) {
        *self.proxy_target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
        self.request(REQ_PROXY);
    }

    /// Server shutdown: FATAL 57P01 to a connection that is still a session.
    pub fn shutdown(&self) {
        self.request(REQ_SHUTDOWN);
    }

    pub fn finished(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.finished.get())
    }

    pub(super) fn set_finished(&self, reason: CloseReason) {
        self.finished.set(reason.code());
    }

    /// Resolves when the driver has ended (for a detached connection: when it detached).
    pub async fn wait_finished(&self) -> CloseReason {
        self.finished.wait_for(CloseReason::from_code).await
    }

    /// The read side of a detached connection is in place (or gone): readers may go on.
    pub(super) fn set_detached_ready(&self) {
        self.detached_ready.set(1);
    }

    /// After `detach()`: the next bytes from the client (those read but not processed
    /// first); `None` at EOF or if the connection is gone.
    pub async fn read_detached(&self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        self.detached_ready.wait_for(|ready| (ready != 0).then_some(())).await;
        let mut guard = self.detached.lock().await;
        match guard.as_mut() {
            None => Ok(None),
            Some(DetachedRead::Raw { leftover, .. } | DetachedRead::Decrypted { leftover, .. })
                if !leftover.is_empty() =>
            {
                Ok(Some(leftover.split().to_vec()))
            }
            Some(DetachedRead::Decrypted { chunks, .. }) => Ok(chunks.recv().await),
            Some(DetachedRead::Raw { reader, .. }) => {
                // Uninitialised capacity: no zero-filling of up to 1 MiB per read.
                let mut buf = Vec::with_capacity(max.clamp(1, 1 << 20));
                let n = reader.read_buf(&mut buf).await?;
                Ok((n > 0).then_some(buf))
            }
        }
    }

    /// Drops the detached read side (JS destroyed the detached stream).
    pub fn drop_detached(&self) {
        if let Ok(mut guard) = self.detached.try_lock() {
            guard.take();
        }
        self.set_detached_ready();
    }
}
