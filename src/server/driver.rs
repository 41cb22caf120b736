//! The task that drives one session over a TCP stream: reads into the session, runs the hooks
//! it asks for, moves its output to the connection's outbound buffer, and acts on what JS asks
//! (end, destroy, detach, proxy). A failing connection ends that connection only.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::{
    CloseReason, ConnShared, ConnectionSettings, DetachedRead, ProxyTarget, REQ_DESTROY, REQ_DETACH, REQ_END,
    REQ_FLUSH, REQ_PROXY, REQ_SHUTDOWN,
};
use super::hooks::Hooks;
use crate::protocol::{PgError, SqlState};
use crate::session::{Secrets, Session, Step};

/// Random md5 salt, process id and cancel key from the OS's CSPRNG.
pub fn secrets() -> Secrets {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a per-process counter mixed with the time. The salt
        // then only prevents replay across connections, which is md5's whole protection.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    Secrets {
        md5_salt: [bytes[0], bytes[1], bytes[2], bytes[3]],
        process_id: i32::from_be_bytes([bytes[4] & 0x7f, bytes[5], bytes[6], bytes[7]]).max(1),
        secret_key: [bytes[8], bytes[9], bytes[10], bytes[11]],
    }
}

/// Starts serving `stream` on the current tokio runtime; `initial` holds bytes already read
/// from it (e.g. by Node before adoption). `register` runs before any task starts, so JS can
/// find the connection by id from its first hook on; `unregister` runs once the connection is
/// gone for good (after a detached stream has closed too). The driver task does both, so an
/// idle connection costs two tasks (driver and writer) and no watcher.
pub fn spawn_connection(
    id: u32,
    stream: TcpStream,
    initial: &[u8],
    settings: ConnectionSettings,
    hooks: Arc<dyn Hooks>,
    register: impl FnOnce(&Arc<ConnShared>),
    unregister: impl FnOnce() + Send + 'static,
) -> Arc<ConnShared> {
    let _ = stream.set_nodelay(true);
    let shared = ConnShared::new(id, stream.peer_addr().ok(), stream.local_addr().ok());
    register(&shared);
    let mut session = Session::new(settings.session.clone(), secrets());
    session.receive(initial);
    let (reader, writer) = stream.into_split();
    let writer_shared = shared.clone();
    tokio::spawn(async move { writer_shared.out.run_writer(writer).await });
    let driver_shared = shared.clone();
    tokio::spawn(async move {
        let reason = drive(&mut session, reader, &driver_shared, &*hooks, settings.auth_timeout).await;
        if reason != CloseReason::Detached {
            // Let the writer flush (a FATAL error must reach the client) before the socket
            // is dropped; on abort it stops at once.
            driver_shared.out.stopped().await;
        }
        driver_shared.set_finished(reason);
        if driver_shared.seen_by_js.load(Ordering::Relaxed) {
            hooks.closed(&driver_shared, reason);
        }
        if reason == CloseReason::Detached {
            // A detached connection lives on until its stream is closed.
            driver_shared.out.stopped().await;
        }
        unregister();
    });
    shared
}

/// Adopts a connected socket's file descriptor (duplicated, so the caller may close its own).
#[cfg(unix)]
pub fn adopt(
    id: u32,
    fd: i32,
    initial: &[u8],
    settings: ConnectionSettings,
    hooks: Arc<dyn Hooks>,
) -> std::io::Result<Arc<ConnShared>> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid file descriptor"));
    }
    // SAFETY: the caller (JS, synchronously) guarantees `fd` is an open socket for the
    // duration of this call; we only duplicate it and own the duplicate.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    let std_stream = std::net::TcpStream::from(owned);
    std_stream.set_nonblocking(true)?;
    let stream = TcpStream::from_std(std_stream)?;
    Ok(spawn_connection(id, stream, initial, settings, hooks, |_| {}, || {}))
}

#[cfg(not(unix))]
pub fn adopt(
    _id: u32,
    _fd: i32,
    _initial: &[u8],
    _settings: ConnectionSettings,
    _hooks: Arc<dyn Hooks>,
) -> std::io::Result<Arc<ConnShared>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "adopting a node:net socket needs a file descriptor; use createServer() on this platform",
    ))
}

/// Runs the session until it ends; returns why.
async fn drive(
    session: &mut Session,
    mut reader: OwnedReadHalf,
    shared: &Arc<ConnShared>,
    hooks: &dyn Hooks,
    auth_timeout: Duration,
) -> CloseReason {
    let deadline = Instant::now() + auth_timeout;
    loop {
        // Requests first: after a hook called detach(), the bytes behind the message it
        // handled belong to the detached stream and must not be parsed.
        match take_request(session, shared) {
            Some(Request::Close(reason)) => return reason,
            Some(Request::Proxy(target)) => return super::proxy::run(session, reader, shared, target).await,
            Some(Request::Detach) => {
                shared.out.write_owned(session.take_output());
                let leftover = session.take_unprocessed_input();
                if session.is_tls() {
                    return detached_tls(session, reader, shared, leftover).await;
                }
                *shared.detached.lock().await = Some(DetachedRead::Raw { leftover, reader });
                shared.set_detached_ready();
                return CloseReason::Detached;
            }
            None => {}
        }
        shared.flush_js_writes(session);
        let step = session.poll();
        shared.out.write_owned(session.take_output());
        shared.encrypted.store(session.is_tls(), Ordering::Release);
        shared.publish(session);
        if shared.out.is_dead() {
            return CloseReason::Error;
        }
        let authenticating = !session.state().is_authenticated;
        match step {
            Step::Close => {
                shared.out.end();
                return if session.ended_by_client() { CloseReason::ClientEnded } else { CloseReason::Closed };
            }
            Step::Hook(request) => {
                shared.mark_seen_by_js();
                let mut call = hooks.call(shared, request, session.offered());
                let result = loop {
                    tokio::select! {
                        result = &mut call => break result,
                        // Writes JS makes while its hook runs go out now, sealed if encrypted;
                        // other requests stay flagged for after the hook.
                        _ = shared.wake_driver.notified() => {
                            if shared.requests.fetch_and(!REQ_FLUSH, Ordering::AcqRel) & REQ_FLUSH != 0 {
                                shared.flush_js_writes(session);
                            }
                        }
                        _ = tokio::time::sleep_until(deadline), if authenticating => return timed_out(shared),
                    }
                };
                session.hook_done(result);
            }
            Step::NeedInput => {
                if shared.out.over_high_water() {
                    tokio::select! {
                        _ = shared.out.drained() => {}
                        _ = shared.wake_driver.notified() => {}
                    }
                    continue;
                }
                // An idle connection holds no buffers: the read buffer exists only while a
                // read is polled, and is released again when the socket has nothing for it.
                let read = std::future::poll_fn(|cx| {
                    // Start small and double while messages are large, so big messages still
                    // arrive in few reads.
                    let input = session.input_mut();
                    if input.capacity() - input.len() < 1024 {
                        input.reserve(input.len().clamp(2048, 1 << 20));
                    }
                    // `read_buf` is cancel-safe, so a fresh one per poll loses nothing, and
                    // unlike `readable()` + `try_read_buf` a short read clears tokio's
                    // readiness: no extra recv per message that fails with EAGAIN.
                    let polled = std::pin::pin!(reader.read_buf(input)).poll(cx);
                    if polled.is_pending() {
                        session.release_idle_buffers();
                    }
                    polled
                });
                tokio::select! {
                    read = read => match read {
                        Ok(0) => session.receive_eof(),
                        Ok(_) => {}
                        Err(_) => {
                            shared.out.abort();
                            return CloseReason::Error;
                        }
                    },
                    _ = shared.wake_driver.notified() => {}
                    _ = tokio::time::sleep_until(deadline), if authenticating => return timed_out(shared),
                }
            }
        }
    }
}

/// After `detach()` on a TLS connection, the driver stays on as the TLS layer of the detached
/// stream: it decrypts what the client sends for `read_detached()` and seals what JS writes.
async fn detached_tls(
    session: &mut Session,
    mut reader: OwnedReadHalf,
    shared: &Arc<ConnShared>,
    leftover: BytesMut,
) -> CloseReason {
    // A few chunks in flight at most: a stream that JS does not read stops the socket reads.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    *shared.detached.lock().await = Some(DetachedRead::Decrypted { leftover, chunks: receiver });
    shared.set_detached_ready();
    shared.set_finished(CloseReason::Detached);
    // Dropping the sender is how the detached reader learns that the client's stream ended.
    let mut chunks = Some(sender);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let requests = shared.requests.swap(0, Ordering::AcqRel);
        if requests & REQ_DESTROY != 0 || shared.out.is_dead() {
            shared.out.abort();
            return CloseReason::Detached;
        }
        shared.flush_js_writes(session);
        if requests & REQ_END != 0 {
            shared.out.write_owned(session.seal_close());
            shared.out.end();
        }
        tokio::select! {
            read = reader.read(&mut buf), if chunks.is_some() => {
                let plaintext = match read {
                    Ok(0) => None,
                    Ok(n) => session.open(&buf[..n]),
                    Err(_) => {
                        // Reset: nothing can be sent either, so the detached stream closes.
                        shared.out.abort();
                        None
                    }
                };
                match (plaintext, &chunks) {
                    (Some(bytes), _) if bytes.is_empty() => {}
                    (Some(bytes), Some(sender)) => {
                        if sender.send(bytes.to_vec()).await.is_err() {
                            chunks = None;
                        }
                    }
                    _ => chunks = None,
                }
            }
            _ = shared.wake_driver.notified() => {}
            _ = shared.out.stopped(), if chunks.is_none() => return CloseReason::Detached,
        }
    }
}

/// PostgreSQL closes a stalled startup without a word ("canceling authentication due to
/// timeout" goes to the log only), and so do we.
fn timed_out(shared: &ConnShared) -> CloseReason {
    shared.out.abort();
    CloseReason::Timeout
}

enum Request {
    Close(CloseReason),
    Detach,
    Proxy(ProxyTarget),
}

/// Acts on what JS or the server asked for since the last step.
fn take_request(session: &mut Session, shared: &ConnShared) -> Option<Request> {
    let requests = shared.requests.swap(0, Ordering::AcqRel);
    if requests & REQ_DESTROY != 0 {
        shared.out.abort();
        Some(Request::Close(CloseReason::Error))
    } else if requests & REQ_PROXY != 0 {
        shared.proxy_target.lock().unwrap_or_else(|p| p.into_inner()).take().map(Request::Proxy)
    } else if requests & REQ_DETACH != 0 {
        Some(Request::Detach)
    } else if requests & REQ_SHUTDOWN != 0 {
        session.terminate(Some(PgError::fatal(
            SqlState::ADMIN_SHUTDOWN,
            "terminating connection due to administrator command",
        )));
        shared.out.write_owned(session.take_output());
        shared.out.end();
        Some(Request::Close(CloseReason::Shutdown))
    } else if requests & REQ_END != 0 {
        shared.out.end();
        Some(Request::Close(CloseReason::Closed))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{HookRequest, HookResult, HookSet, SessionConfig};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Detaches from inside the first `onMessage` call and reports the message handled.
    struct DetachOnFirstMessage;

    impl Hooks for DetachOnFirstMessage {
        fn call(&self, conn: &Arc<ConnShared>, _: HookRequest, _: &[u8]) -> super::super::HookFuture {
            conn.detach();
            Box::pin(async { HookResult::Messages { handled: 1, error: None } })
        }

        fn closed(&self, _: &Arc<ConnShared>, _: CloseReason) {}
    }

    #[tokio::test]
    async fn detach_hands_over_unprocessed_bytes_even_to_a_late_reader() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let session =
            SessionConfig { hooks: HookSet { on_message: true, ..HookSet::default() }, ..SessionConfig::default() };
        let settings = ConnectionSettings { session: Arc::new(session), auth_timeout: Duration::from_secs(5) };
        let conn = spawn_connection(1, stream, &[], settings, Arc::new(DetachOnFirstMessage), |_| {}, || {});
        client.write_all(b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00u\x00\x00raw bytes").await.unwrap();
        assert_eq!(conn.wait_finished().await, CloseReason::Detached);
        // The reader arrives only after the driver signalled that the stream is ready.
        let mut received = Vec::new();
        while received.len() < b"raw bytes".len() {
            let chunk = tokio::time::timeout(Duration::from_secs(5), conn.read_detached(1024)).await;
            received.extend(chunk.expect("a late reader must not wait forever").unwrap().unwrap());
        }
        assert_eq!(received, b"raw bytes");
        client.shutdown().await.unwrap();
        assert_eq!(conn.read_detached(1024).await.unwrap(), None, "EOF after the client closed");
    }
}
