//! One connection's shared handle ([`ConnShared`]): what JS holds and the driver serves
//! (identity, the ordered outbound buffer, the state snapshot, and JS's requests). The task
//! that drives a session is in `driver.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

use super::outbound::Outbound;
use super::signal::Signal;
use crate::session::{CloseReason, Session, State};

/// `CloseReason` as a [`Signal`] value: 0 is "still running".
fn reason_code(reason: CloseReason) -> u8 {
    CloseReason::ALL.iter().position(|r| *r == reason).map_or(0, |i| i as u8 + 1)
}

fn reason_from_code(code: u8) -> Option<CloseReason> {
    CloseReason::ALL.get(usize::from(code).checked_sub(1)?).copied()
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
/// A hook sent AuthenticationOk itself: authentication is over.
pub(super) const REQ_AUTHENTICATED: u8 = 64;

/// Where `proxy()` sends a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    pub host: String,
    pub port: u16,
    /// Send the client's StartupMessage first (when the gateway already consumed it).
    pub replay_startup: bool,
    /// How long to wait for the upstream to accept the connection (PgBouncer's
    /// `server_connect_timeout` is 15 s).
    pub connect_timeout: Duration,
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
    /// Why the driver ended ([`reason_code`]), 0 while it runs.
    finished: Signal,
    /// After `detach()`: the read side and the bytes read but not processed.
    pub(super) detached: tokio::sync::Mutex<Option<DetachedRead>>,
    /// 1 once the read side of a detached connection can be read.
    detached_ready: Signal,
    /// Once TLS is up, JS writes wait here as plaintext until the driver seals them, in order.
    pub(super) encrypted: AtomicBool,
    pub(super) plain_out: Mutex<BytesMut>,
    pub(super) proxy_target: Mutex<Option<ProxyTarget>>,
    /// Set by `end()`: JS writes after it are refused, as a Node socket refuses them.
    ending: AtomicBool,
    /// When a server shutdown ends whatever still runs ([`Self::shutdown`]).
    shutdown_deadline: Mutex<Option<Instant>>,
    /// The counters of the server that accepted it (none for adopted sockets).
    pub stats: std::sync::OnceLock<Arc<super::ServerStats>>,
    /// Hook calls of this connection and their time in µs: counted here, uncontended, and
    /// added to the server's when it ends.
    pub(super) hooks: super::stats::HookCounters,
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
            ending: AtomicBool::new(false),
            shutdown_deadline: Mutex::new(None),
            stats: std::sync::OnceLock::new(),
            hooks: Default::default(),
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
        if self.ending.load(Ordering::Acquire) {
            return false;
        }
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

    /// Bytes from JS or the session not yet written to the socket, including JS writes that
    /// wait for the driver to encrypt them.
    pub fn unsent(&self) -> usize {
        self.out.unsent() + self.plain_out.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the connection holds more than the high-water mark (`socket.write` says false).
    pub fn over_high_water(&self) -> bool {
        self.unsent() > crate::session::OUTPUT_HIGH_WATER
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

    /// The requests made since the last call.
    pub(super) fn take_requests(&self) -> u8 {
        self.requests.swap(0, Ordering::AcqRel)
    }

    fn request(&self, flag: u8) {
        self.requests.fetch_or(flag, Ordering::AcqRel);
        self.wake_driver.notify_one();
    }

    /// Flush, then close (like `socket.end()`). The driver ends the session, so everything JS
    /// queued before (sealed first, on TLS) goes out ahead of the FIN.
    pub fn end(&self) {
        // SeqCst, paired with `is_ending` after the driver marks a plain detach finished: one of
        // the two sides sees the other, so the end is never lost in between.
        self.ending.store(true, Ordering::SeqCst);
        if self.finished() == Some(CloseReason::Detached) && !self.is_encrypted() {
            // A plaintext detached stream has no driver any more: the writer ends it.
            self.out.end();
        }
        self.request(REQ_END);
    }

    /// Asks the driver again to end (a TLS detached stream's driver acts on it).
    pub(super) fn request_end_again(&self) {
        self.request(REQ_END);
    }

    /// Whether JS asked to end the connection (`end()`).
    pub(super) fn is_ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// A hook sent AuthenticationOk (`sendAuthenticationOk()`).
    pub fn authenticated_by_hook(&self) {
        self.request(REQ_AUTHENTICATED);
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

    /// Server shutdown: FATAL 57P01 to a connection that is still a session, once its hook
    /// (if one runs) has answered, and at `deadline` in any case.
    pub fn shutdown(&self, deadline: Instant) {
        *self.shutdown_deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.request(REQ_SHUTDOWN);
    }

    pub(super) fn shutdown_deadline(&self) -> Option<Instant> {
        *self.shutdown_deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn finished(&self) -> Option<CloseReason> {
        reason_from_code(self.finished.get())
    }

    pub(super) fn set_finished(&self, reason: CloseReason) {
        self.finished.set(reason_code(reason));
    }

    /// Resolves when the driver has ended (for a detached connection: when it detached).
    pub async fn wait_finished(&self) -> CloseReason {
        self.finished.wait_for(reason_from_code).await
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
