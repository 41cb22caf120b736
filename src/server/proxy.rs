//! `connection.proxy()`: the native fast path for reverse proxies. Rust connects upstream,
//! sends what the client already sent (and, if asked, its StartupMessage), then copies both
//! directions itself; with TLS, the session's rustls connection opens and seals the client's
//! records. No payload crosses into JS.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::conn::{CloseReason, ConnShared, ProxyTarget};
use super::outbound::WriteHalf;
use crate::protocol::{backend, PgError, SqlState, StartupMessage};
use crate::session::Session;

const CHUNK: usize = 64 * 1024;

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
    let leftover = session.take_unprocessed_input();
    shared.out.write_owned(session.take_output());
    let upstream = match TcpStream::connect((target.host.as_str(), target.port)).await {
        Ok(stream) => stream,
        Err(err) => {
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
    let _ = upstream.set_nodelay(true);
    let (upstream_read, mut upstream_write) = upstream.into_split();
    // Consumed here, so that none of the startup's buffers stays for the connection's life.
    for first in [startup, Some(leftover)].into_iter().flatten() {
        if !first.is_empty() && upstream_write.write_all(&first).await.is_err() {
            shared.out.abort();
            return CloseReason::Error;
        }
    }
    session.release_idle_buffers();
    // Write the client directly from here on: no hop through the writer task per chunk.
    let Ok(mut client_write) = shared.out.hand_over().await else {
        shared.out.abort();
        return CloseReason::Error;
    };
    let reason = copy(session, &mut client, &mut client_write, upstream_read, upstream_write, shared).await;
    shared.out.mark_stopped();
    reason
}

/// Reads what the socket has, into a buffer that exists only while the read is polled: an
/// idle proxied connection holds none (it held two 64 KiB buffers, which a pooler in front of
/// thousands of idle clients cannot afford). Empty means end of stream. `read_buf` is
/// cancel-safe, so a fresh one per poll loses nothing; and unlike `readable()` plus
/// `try_read_buf`, a short read clears tokio's readiness (no recv per message that fails with
/// EAGAIN), and a spurious wake-up cannot leave a read waiting outside the `select!`.
fn read_chunk(reader: &mut OwnedReadHalf) -> impl Future<Output = std::io::Result<Vec<u8>>> + '_ {
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

/// Writes a chunk as read, then gives its buffer back for the next read.
async fn forward<W: AsyncWrite + Unpin + ?Sized>(writer: &mut W, chunk: Vec<u8>) -> std::io::Result<()> {
    let written = writer.write_all(&chunk).await;
    recycle(chunk);
    written
}

/// Both directions until both ends have closed (or one failed).
async fn copy(
    session: &mut Session,
    client: &mut OwnedReadHalf,
    client_write: &mut WriteHalf,
    mut upstream_read: tokio::net::tcp::OwnedReadHalf,
    mut upstream_write: tokio::net::tcp::OwnedWriteHalf,
    shared: &Arc<ConnShared>,
) -> CloseReason {
    let tls = session.is_tls();
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        if shared.destroy_requested() {
            return CloseReason::Error;
        }
        if tls {
            // The TLS layer's own buffers, emptied by the last copy, go too.
            session.release_idle_buffers();
        }
        tokio::select! {
            read = read_chunk(client), if client_open => {
                let written = match read {
                    Ok(bytes) if bytes.is_empty() => None,
                    Err(_) => None,
                    // Plaintext goes upstream as read; only TLS needs new bytes (the opened records).
                    Ok(bytes) if tls => {
                        let plaintext = session.open(&bytes);
                        recycle(bytes);
                        match plaintext {
                            Some(plaintext) => Some(upstream_write.write_all(&plaintext).await),
                            None => None,
                        }
                    }
                    Ok(bytes) => Some(forward(&mut upstream_write, bytes).await),
                };
                match written {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return CloseReason::Error,
                    None => {
                        client_open = false;
                        let _ = upstream_write.shutdown().await;
                    }
                }
            }
            read = read_chunk(&mut upstream_read), if upstream_open => {
                let written = match read {
                    Ok(bytes) if bytes.is_empty() => None,
                    Err(_) => None,
                    Ok(bytes) if tls => {
                        let sealed = session.seal(&bytes);
                        recycle(bytes);
                        Some(client_write.write_all(&sealed).await)
                    }
                    Ok(bytes) => Some(forward(client_write, bytes).await),
                };
                match written {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return CloseReason::Error,
                    None => {
                        upstream_open = false;
                        if tls {
                            let _ = client_write.write_all(&session.seal_close()).await;
                        }
                        let _ = client_write.shutdown().await;
                    }
                }
            }
            _ = shared.wake_driver.notified() => {}
        }
    }
    CloseReason::ClientEnded
}
