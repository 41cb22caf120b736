//! `connection.proxy()`: the native fast path for reverse proxies. Rust connects upstream,
//! sends what the client already sent (and, if asked, its StartupMessage), then copies both
//! directions itself; with TLS, the session's rustls connection opens and seals the client's
//! records. No payload crosses into JS.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        StartupMessage { major: info.major_version, minor: 0, parameters: info.parameters }.encode(&mut out);
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
    for first in [startup.as_deref(), Some(&leftover[..])].into_iter().flatten() {
        if !first.is_empty() && upstream_write.write_all(first).await.is_err() {
            shared.out.abort();
            return CloseReason::Error;
        }
    }
    // Write the client directly from here on: no hop through the writer task per chunk.
    let Ok(mut client_write) = shared.out.hand_over().await else {
        shared.out.abort();
        return CloseReason::Error;
    };
    let reason = copy(session, &mut client, &mut client_write, upstream_read, upstream_write, shared).await;
    shared.out.mark_stopped();
    reason
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
    let mut from_client = vec![0u8; CHUNK];
    let mut from_upstream = vec![0u8; CHUNK];
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        if shared.destroy_requested() {
            return CloseReason::Error;
        }
        tokio::select! {
            read = client.read(&mut from_client), if client_open => {
                let written = match read {
                    Ok(0) | Err(_) => None,
                    // Plaintext goes upstream as read; only TLS needs new bytes (the opened records).
                    Ok(n) if tls => match session.open(&from_client[..n]) {
                        Some(plaintext) => Some(upstream_write.write_all(&plaintext).await),
                        None => None,
                    },
                    Ok(n) => Some(upstream_write.write_all(&from_client[..n]).await),
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
            read = upstream_read.read(&mut from_upstream), if upstream_open => match read {
                Ok(0) | Err(_) => {
                    upstream_open = false;
                    if tls {
                        let _ = client_write.write_all(&session.seal_close()).await;
                    }
                    let _ = client_write.shutdown().await;
                }
                Ok(n) => {
                    let written = if tls {
                        client_write.write_all(&session.seal(&from_upstream[..n])).await
                    } else {
                        client_write.write_all(&from_upstream[..n]).await
                    };
                    if written.is_err() {
                        return CloseReason::Error;
                    }
                }
            },
            _ = shared.wake_driver.notified() => {}
        }
    }
    CloseReason::ClientEnded
}
