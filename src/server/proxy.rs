//! `connection.proxy()`: the native fast path for reverse proxies. Rust connects upstream
//! (within a deadline, watching the client meanwhile), sends what the client already sent (and,
//! if asked, its StartupMessage), then copies both directions itself; with TLS, the session's
//! rustls connection opens and seals the client's records. No payload crosses into JS.
//!
//! The two directions are independent: a write that waits for one peer never stops the other
//! direction from moving, so a client that pipelines a lot before it reads cannot deadlock the
//! pair. Each direction holds at most one chunk.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::conn::{ConnShared, ProxyTarget};
use crate::protocol::key_rewrite::KeyRewriter;
use crate::protocol::{backend, PgError, SqlState, StartupMessage};
use crate::session::{CloseReason, Session, READ_AHEAD_LIMIT};

const CHUNK: usize = 64 * 1024;

/// Once one side has closed, how long the other may take to close too. PgBouncer drops the
/// server link as soon as its client leaves; we pass the FIN on and wait this long.
const LINGER: Duration = Duration::from_secs(5);

pub async fn run(
    session: &mut Session,
    mut client: OwnedReadHalf,
    shared: &Arc<ConnShared>,
    target: ProxyTarget,
) -> CloseReason {
    let startup = target.replay_startup.then(|| session.state().client_info.clone()).flatten().map(|info| {
        let mut out = BytesMut::new();
        StartupMessage { major: info.major_version, minor: 0, parameters: info.parameters.clone() }.encode(&mut out);
        out
    });
    let write_timeout = session.write_timeout();
    shared.out.write_owned(session.take_output());
    let mut leftover = session.detach();
    // What the client sends while we connect, as read from the socket: TLS records on an
    // encrypted connection, opened below (not forwarded as they are, and never cut mid-record).
    let mut early = BytesMut::new();
    let upstream = match connect(&target, &mut client, &mut early, leftover.len(), shared).await {
        Connected::Upstream(stream) => stream,
        Connected::ClientGone(reason) => {
            shared.out.abort();
            return reason;
        }
        Connected::Failed(err) => {
            // What a server that cannot reach its database says, then close.
            let error = PgError::fatal(
                SqlState::CONNECTION_FAILURE,
                format!("could not connect to upstream server {}:{}: {err}", target.host, target.port),
            );
            let mut bytes = BytesMut::new();
            backend::error_response(&mut bytes, &error);
            shared.out.write_owned(session.seal(&bytes));
            shared.out.write_owned(session.seal_close());
            shared.out.end();
            return CloseReason::Closed;
        }
    };
    if !early.is_empty() {
        match session.open(&early) {
            Some(plaintext) => leftover.extend_from_slice(&plaintext),
            // The client closed its TLS connection (or broke it) while we connected.
            None => {
                shared.out.abort();
                return CloseReason::ClientEnded;
            }
        }
    }
    drop(early);
    let _ = upstream.set_nodelay(true);
    let (upstream_read, mut upstream_write) = upstream.into_split();
    // Consumed here, so that none of the startup's buffers stays for the connection's life.
    for first in [startup, Some(leftover)].into_iter().flatten() {
        if !first.is_empty() && write_within(&mut upstream_write, &first, write_timeout).await.is_err() {
            shared.out.abort();
            return CloseReason::Error;
        }
    }
    session.release_idle_buffers(0);
    // Write the client directly from here on: no hop through the writer task per chunk. The
    // writer first sends what it holds: a client that takes none of it for `writeTimeout` is
    // dropped, and a destroy() or reset stops the writer, which ends the wait too.
    let handed = shared.out.hand_over();
    let client_write = match write_timeout {
        Some(limit) => tokio::time::timeout(limit, handed).await.ok().and_then(Result::ok),
        None => handed.await.ok(),
    };
    let Some(client_write) = client_write else {
        shared.out.abort();
        return CloseReason::Error;
    };
    let pair = Pair { session: Mutex::new(session), write_timeout, upstream: (target.host.clone(), target.port) };
    let reason = pair.copy(client, client_write, upstream_read, upstream_write, shared).await;
    shared.out.mark_stopped();
    reason
}

enum Connected {
    Upstream(TcpStream),
    /// The client left (or JS destroyed the connection) before the upstream answered.
    ClientGone(CloseReason),
    Failed(std::io::Error),
}

/// Connects within the target's deadline. Meanwhile the client is watched: what it sends is
/// kept for the upstream (up to the read-ahead limit), and if it leaves, so do we.
async fn connect(
    target: &ProxyTarget,
    client: &mut OwnedReadHalf,
    early: &mut BytesMut,
    held: usize,
    shared: &ConnShared,
) -> Connected {
    let connecting =
        tokio::time::timeout(target.connect_timeout, TcpStream::connect((target.host.as_str(), target.port)));
    let mut connecting = std::pin::pin!(connecting);
    loop {
        let room = READ_AHEAD_LIMIT.saturating_sub(held + early.len());
        tokio::select! {
            connected = &mut connecting => return match connected {
                Ok(Ok(stream)) => Connected::Upstream(stream),
                Ok(Err(err)) => Connected::Failed(err),
                Err(_) => Connected::Failed(std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout expired")),
            },
            read = async { client.read_buf(&mut (&mut *early).limit(room)).await }, if room > 0 => match read {
                Ok(0) => return Connected::ClientGone(CloseReason::ClientEnded),
                Ok(_) => {}
                Err(_) => return Connected::ClientGone(CloseReason::Error),
            },
            _ = shared.wake_driver.notified() => {
                if shared.destroy_requested() {
                    return Connected::ClientGone(CloseReason::Error);
                }
            }
        }
    }
}

/// Reads what the socket has, into a buffer that exists only while the read is polled: an
/// idle proxied connection holds none (it held two 64 KiB buffers, which a pooler in front of
/// thousands of idle clients cannot afford). Empty means end of stream. `read_buf` is
/// cancel-safe, so a fresh one per poll loses nothing; and unlike `readable()` plus
/// `try_read_buf`, a short read clears tokio's readiness (no recv per message that fails with
/// EAGAIN), and a spurious wake-up cannot leave a read waiting outside the `select!`.
fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R) -> impl Future<Output = std::io::Result<Vec<u8>>> + '_ {
    std::future::poll_fn(move |cx| {
        let mut chunk = spare_buffer();
        match std::pin::pin!(reader.read_buf(&mut chunk)).poll(cx) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(chunk)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                recycle(chunk);
                Poll::Pending
            }
        }
    })
}

thread_local! {
    /// Empty read buffers of this worker thread, so a poll costs no allocation: at most a few
    /// per thread (bounded memory), none per connection.
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

const MAX_SPARE_BUFFERS: usize = 8;

fn spare_buffer() -> Vec<u8> {
    SPARE_BUFFERS.with(|spares| spares.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(CHUNK))
}

/// Gives a read buffer back for the next read on this thread.
fn recycle(mut buffer: Vec<u8>) {
    buffer.clear();
    SPARE_BUFFERS.with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < MAX_SPARE_BUFFERS {
            spares.push(buffer);
        }
    });
}

/// Writes all of `bytes`, failing if a single write waits longer than `stall` (a peer that
/// reads nothing must not hold the pair forever).
async fn write_within<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    mut bytes: &[u8],
    stall: Option<Duration>,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = match stall {
            Some(stall) => tokio::time::timeout(stall, writer.write(bytes))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer takes no data"))??,
            None => writer.write(bytes).await?,
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

/// A proxied pair. The session (for TLS) is shared by the two directions, which run in the same
/// task: it is locked only between awaits, never across one, so the lock is never contended.
struct Pair<'a> {
    session: Mutex<&'a mut Session>,
    write_timeout: Option<Duration>,
    /// Where the upstream is, for the cancel registry (see `upstream_to_client`).
    upstream: (String, u16),
}

/// How one direction ended.
enum Ended {
    /// Its reader reached EOF and the FIN was passed on.
    Closed,
    /// A read or write failed, or stalled.
    Failed,
}

impl<'a> Pair<'a> {
    fn session(&self) -> std::sync::MutexGuard<'_, &'a mut Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Both directions until both ends have closed, one failed, one side stays silent for
    /// [`LINGER`] after the other closed, or JS destroys the connection.
    async fn copy(
        &self,
        mut client: OwnedReadHalf,
        mut client_write: super::outbound::WriteHalf,
        mut upstream_read: OwnedReadHalf,
        mut upstream_write: tokio::net::tcp::OwnedWriteHalf,
        shared: &ConnShared,
    ) -> CloseReason {
        let to_upstream = std::pin::pin!(self.client_to_upstream(&mut client, &mut upstream_write));
        let to_client = std::pin::pin!(self.upstream_to_client(&mut upstream_read, &mut client_write));
        let mut to_upstream = Some(to_upstream);
        let mut to_client = Some(to_client);
        let linger = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        let mut linger = std::pin::pin!(linger);
        let mut lingering = false;
        loop {
            if to_upstream.is_none() && to_client.is_none() {
                return CloseReason::ClientEnded;
            }
            if !lingering && (to_upstream.is_none() || to_client.is_none()) {
                lingering = true;
                linger.as_mut().reset(tokio::time::Instant::now() + LINGER);
            }
            tokio::select! {
                ended = async { to_upstream.as_mut().expect("guarded").await }, if to_upstream.is_some() => {
                    to_upstream = None;
                    if matches!(ended, Ended::Failed) {
                        return CloseReason::Error;
                    }
                }
                ended = async { to_client.as_mut().expect("guarded").await }, if to_client.is_some() => {
                    to_client = None;
                    if matches!(ended, Ended::Failed) {
                        return CloseReason::Error;
                    }
                }
                _ = shared.wake_driver.notified() => {
                    if shared.destroy_requested() {
                        return CloseReason::Error;
                    }
                }
                _ = &mut linger, if lingering => return CloseReason::ClientEnded,
            }
        }
    }

    async fn client_to_upstream<W: AsyncWrite + Unpin>(&self, client: &mut OwnedReadHalf, upstream: &mut W) -> Ended {
        let tls = self.session().is_tls();
        loop {
            let chunk = match read_chunk(client).await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                Ok(_) => break,
                Err(_) => return Ended::Failed,
            };
            let written = if tls {
                // Plaintext goes upstream as read; only TLS needs new bytes (the opened records).
                let opened = self.session().open(&chunk);
                recycle(chunk);
                match opened {
                    Some(plaintext) => write_within(upstream, &plaintext, self.write_timeout).await,
                    None => break,
                }
            } else {
                let written = write_within(upstream, &chunk, self.write_timeout).await;
                recycle(chunk);
                written
            };
            if written.is_err() {
                return Ended::Failed;
            }
        }
        let _ = upstream.shutdown().await;
        Ended::Closed
    }

    /// Feeds `keys` one upstream chunk: until the upstream's first ReadyForQuery its
    /// BackendKeyData becomes ours, and its key goes to the cancel registry. Once done, the
    /// rewriter is dropped and the copy loop pays nothing more.
    fn rewrite_keys(&self, keys: &mut Option<KeyRewriter>, chunk: &mut [u8]) {
        let Some(rewriter) = keys else { return };
        if let Some(found) = rewriter.rewrite(chunk) {
            let (process_id, _) = self.session().backend_key();
            crate::cancel::set_upstream(
                process_id,
                crate::cancel::UpstreamKey {
                    host: self.upstream.0.clone(),
                    port: self.upstream.1,
                    process_id: found.process_id,
                    secret_key: found.secret_key,
                },
            );
        }
        if rewriter.is_done() {
            *keys = None;
        }
    }

    async fn upstream_to_client<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        upstream: &mut OwnedReadHalf,
        client: &mut W,
    ) -> Ended {
        let tls = self.session().is_tls();
        let (process_id, secret_key) = self.session().backend_key();
        let mut keys = Some(KeyRewriter::new(process_id, secret_key));
        loop {
            let mut chunk = match read_chunk(upstream).await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                Ok(_) => break,
                Err(_) => return Ended::Failed,
            };
            self.rewrite_keys(&mut keys, &mut chunk);
            let written = if tls {
                let sealed = self.session().seal(&chunk);
                recycle(chunk);
                write_within(client, &sealed, self.write_timeout).await
            } else {
                let written = write_within(client, &chunk, self.write_timeout).await;
                recycle(chunk);
                written
            };
            if written.is_err() {
                return Ended::Failed;
            }
        }
        if tls {
            let close = self.session().seal_close();
            let _ = write_within(client, &close, self.write_timeout).await;
        }
        let _ = client.shutdown().await;
        Ended::Closed
    }
}
