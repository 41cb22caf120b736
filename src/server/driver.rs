//! The task that drives one session over a TCP stream: a thin pump. It feeds the session what
//! happens (bytes, EOF, hook answers, JS requests, the time, the writer's progress), sends what
//! the session outputs, runs the hooks it asks for, and waits for whichever input comes next.
//! Every decision (deadlines, when to read, when to stop) is the session's. A failing
//! connection ends that connection only, a panic included.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::{
    ConnShared, DetachedRead, ProxyTarget, REQ_AUTHENTICATED, REQ_DESTROY, REQ_DETACH, REQ_END, REQ_PROXY, REQ_SHUTDOWN,
};
use super::hooks::{HookFuture, Hooks};
use super::log::{LogEvent, LogLevel};
use super::unwind::CatchUnwind;
use crate::session::{CloseReason, HookResult, Secrets, Session, SessionConfig, Step, OUTPUT_HIGH_WATER};

use crate::session::CLOSE_LINGER as LINGER;

/// Random md5 salt, process id, cancel key and SCRAM nonce from the OS's CSPRNG.
pub fn secrets() -> Secrets {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12 + crate::auth::scram::SERVER_NONCE_LEN];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No OS randomness: the time and a per-process counter, hashed. Unpredictable to a
        // client only as far as the clock is; but never the same twice, so salts and SCRAM
        // nonces still prevent replay across connections.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = [nanos.to_le_bytes().as_slice(), &count.to_le_bytes()].concat();
        let hash = ring::digest::digest(&ring::digest::SHA256, &seed);
        let more = ring::digest::digest(&ring::digest::SHA256, hash.as_ref());
        let stream = [hash.as_ref(), more.as_ref()].concat();
        let len = bytes.len();
        bytes.copy_from_slice(&stream[..len]);
    }
    let mut scram_nonce = [0; crate::auth::scram::SERVER_NONCE_LEN];
    scram_nonce.copy_from_slice(&bytes[12..]);
    Secrets {
        md5_salt: [bytes[0], bytes[1], bytes[2], bytes[3]],
        process_id: i32::from_be_bytes([bytes[4] & 0x7f, bytes[5], bytes[6], bytes[7]]).max(1),
        secret_key: [bytes[8], bytes[9], bytes[10], bytes[11]],
        scram_nonce,
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
    config: Arc<SessionConfig>,
    hooks: Arc<dyn Hooks>,
    register: impl FnOnce(&Arc<ConnShared>),
    unregister: impl FnOnce() + Send + 'static,
) -> Arc<ConnShared> {
    let _ = stream.set_nodelay(true);
    let started = std::time::Instant::now();
    let shared = ConnShared::new(id, stream.peer_addr().ok(), stream.local_addr().ok());
    register(&shared);
    let write_timeout = config.write_timeout;
    let mut secrets = secrets();
    let registration = crate::cancel::Registration::new(&mut secrets);
    if config.hooks.on_cancel || config.hooks.on_query {
        registration.set_target(Arc::new(CancelHook { hooks: hooks.clone(), conn: Arc::downgrade(&shared) }));
    }
    let mut session = Session::new(config, secrets, Instant::now().into_std());
    session.receive(initial);
    let log_level = hooks.log_level();
    if log_level <= LogLevel::Debug {
        hooks.log(&shared, LogEvent::received(&session));
    }
    let (reader, writer) = stream.into_split();
    let writer_shared = shared.clone();
    tokio::spawn(async move {
        if CatchUnwind::new(writer_shared.out.run_writer(writer)).await.is_err() {
            writer_shared.out.mark_stopped();
        }
    });
    let driver_shared = shared.clone();
    tokio::spawn(async move {
        let reason = match CatchUnwind::new(drive(&mut session, reader, &driver_shared, &*hooks, log_level)).await {
            Ok(reason) => reason,
            // A bug in this connection: it ends here, and the cleanup below still runs.
            Err(()) => {
                driver_shared.out.abort();
                CloseReason::Error
            }
        };
        if reason != CloseReason::Detached {
            // Bounded: the writer has stopped or been told to, unless a proxied write is stuck.
            finish_writes(&driver_shared, write_timeout).await;
        }
        let problem = session.take_problem();
        let ending = super::stats::Ending {
            tls_handshake: session.tls_established(),
            tls_failed: problem.as_deref().is_some_and(|p| p.starts_with("TLS")),
            auth_failed: session.auth_failed(),
        };
        if let Some(problem) = problem {
            hooks.problem(&driver_shared, problem);
        }
        if log_level <= LogLevel::Warn {
            if let Some(event) = LogEvent::fatal(&session).filter(|event| event.level >= log_level) {
                hooks.log(&driver_shared, event);
            }
        }
        if log_level <= LogLevel::Info {
            let (received, sent) = (driver_shared.out.received_total(), driver_shared.out.sent());
            let event = LogEvent::disconnection(&session, reason, started, received, sent);
            if event.level >= log_level {
                hooks.log(&driver_shared, event);
            }
        }
        // After the events above: JS may forget the connection as soon as it hears it finished
        // (an adopted socket's `closed()` promise resolves on a queue of its own).
        driver_shared.set_finished(reason);
        if driver_shared.seen_by_js.load(Ordering::Relaxed) {
            hooks.closed(&driver_shared, reason);
        }
        if reason == CloseReason::Detached {
            // A detached connection lives on until its stream is closed.
            driver_shared.out.stopped().await;
        }
        // The process id is free again only now: a detached or proxied connection can still
        // be cancelled while it lives.
        drop(registration);
        if reason == CloseReason::Detached && driver_shared.seen_by_js.load(Ordering::Relaxed) {
            hooks.released(&driver_shared);
        }
        if let Some(stats) = driver_shared.stats.get() {
            stats.ended(&driver_shared, &ending);
        }
        unregister();
    });
    shared
}

/// `onCancel` of a tokio-driven connection: a fire-and-forget hook event.
struct CancelHook {
    hooks: Arc<dyn Hooks>,
    conn: std::sync::Weak<ConnShared>,
}

impl crate::cancel::CancelTarget for CancelHook {
    fn cancelled(&self) {
        let Some(conn) = self.conn.upgrade() else { return };
        // Closed (and JS told so) but not yet unregistered: nothing to cancel any more.
        if matches!(conn.finished(), Some(reason) if reason != CloseReason::Detached) {
            return;
        }
        conn.mark_seen_by_js();
        self.hooks.cancelled(&conn);
    }
}

/// How long forwarding a cancel to an upstream may take (PgBouncer's `cancel_wait_timeout`).
const CANCEL_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers a CancelRequest a client sent: to the connection it names (its `onCancel`), and,
/// for a proxied one, to its upstream on a new connection.
pub fn deliver_cancel(request: crate::session::CancelRequest) {
    if let Some(upstream) = crate::cancel::cancel(request.process_id, &request.secret_key) {
        tokio::spawn(forward_cancel(upstream));
    }
}

/// Sends `upstream` its CancelRequest on a new connection and waits (bounded) for it to close
/// that connection, which PostgreSQL does once the cancel is signalled.
pub async fn forward_cancel(upstream: crate::cancel::UpstreamKey) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(CANCEL_FORWARD_TIMEOUT, async {
        let mut stream = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
        stream.write_all(&upstream.cancel_request()).await?;
        let mut sink = [0u8; 64];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Waits for the writer to stop, at most `timeout` (then it is aborted).
async fn finish_writes(shared: &ConnShared, timeout: Option<Duration>) {
    let timeout = timeout.unwrap_or(LINGER);
    if tokio::time::timeout(timeout, shared.out.stopped()).await.is_err() {
        shared.out.abort();
        shared.out.stopped().await;
    }
}

/// Adopts a connected socket's file descriptor (duplicated, so the caller may close its own).
#[cfg(unix)]
pub fn adopt(
    id: u32,
    fd: i32,
    initial: &[u8],
    config: Arc<SessionConfig>,
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
    Ok(spawn_connection(id, stream, initial, config, hooks, |_| {}, || {}))
}

#[cfg(not(unix))]
pub fn adopt(
    _id: u32,
    _fd: i32,
    _initial: &[u8],
    _config: Arc<SessionConfig>,
    _hooks: Arc<dyn Hooks>,
) -> std::io::Result<Arc<ConnShared>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "adopting a node:net socket needs a file descriptor; use createServer() on this platform",
    ))
}

/// What JS asked to take the connection over with; acted on once no hook runs, because the
/// bytes behind the message a hook handled belong to whoever takes over.
enum Handover {
    Detach,
    Proxy(ProxyTarget),
}

/// What woke the driver.
enum Event {
    Hook(HookResult),
    Read(std::io::Result<usize>),
    Woken,
    Deadline,
}

/// Runs the session until it ends; returns why.
async fn drive(
    session: &mut Session,
    mut reader: OwnedReadHalf,
    shared: &Arc<ConnShared>,
    hooks: &dyn Hooks,
    log_level: LogLevel,
) -> CloseReason {
    let mut call: Option<HookFuture> = None;
    // `connection authorized` is still to be logged.
    let mut log_authorized = log_level <= LogLevel::Info;
    // When the running hook was called, for `server.stats()` (only on a server that counts).
    let mut hook_started: Option<Instant> = None;
    let mut handover: Option<Handover> = None;
    // `end()` of a detached stream made inside the hook that detached: it ends the stream,
    // not the session (whose ending would swallow the client's bytes meant for the stream).
    let mut end_detached = false;
    let mut closing = false;
    let sleep = tokio::time::sleep_until(far_future());
    let mut sleep = std::pin::pin!(sleep);
    let mut armed: Option<std::time::Instant> = None;
    loop {
        let requests = shared.take_requests();
        if requests & REQ_DESTROY != 0 {
            shared.out.abort();
            return CloseReason::Error;
        }
        if requests & REQ_DETACH != 0 {
            handover = Some(Handover::Detach);
        }
        if requests & REQ_PROXY != 0 {
            if let Some(target) = shared.proxy_target.lock().unwrap_or_else(|p| p.into_inner()).take() {
                handover = Some(Handover::Proxy(target));
            }
        }
        if call.is_none() && !closing {
            match handover.take() {
                Some(Handover::Proxy(target)) => return super::proxy::run(session, reader, shared, target).await,
                Some(Handover::Detach) => return detach(session, reader, shared, end_detached).await,
                None => {}
            }
        }
        // JS writes first: JS made them before whatever it asked next.
        shared.flush_js_writes(session);
        if requests & REQ_AUTHENTICATED != 0 {
            session.authenticated_by_hook();
        }
        if requests & REQ_END != 0 {
            if matches!(handover, Some(Handover::Detach)) {
                end_detached = true;
            } else {
                session.end();
            }
        }
        if requests & REQ_SHUTDOWN != 0 {
            if let Some(deadline) = shared.shutdown_deadline() {
                session.shutdown(deadline);
            }
        }
        let now = Instant::now().into_std();
        session.handle_backlog(now, shared.out.unsent(), shared.out.sent());
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        let step = session.poll();
        if let Some(request) = session.take_cancel_request() {
            deliver_cancel(request);
        }
        shared.out.write_owned(session.take_output());
        shared.encrypted.store(session.is_tls(), Ordering::Release);
        shared.publish(session);
        if log_authorized && session.state().is_authenticated {
            log_authorized = false;
            hooks.log(shared, LogEvent::authorized(session));
        }
        match step {
            Step::Abort => {
                shared.out.abort();
                return session.close_reason().unwrap_or(CloseReason::Error);
            }
            Step::Close => {
                if !closing {
                    closing = true;
                    shared.out.end();
                }
                if shared.out.is_dead() {
                    linger(&mut reader).await;
                    return session.close_reason().unwrap_or(CloseReason::Closed);
                }
            }
            Step::Hook(request) => {
                shared.mark_seen_by_js();
                call = Some(hooks.call(shared, request, session.offered()));
                hook_started = shared.stats.get().map(|_| Instant::now());
            }
            Step::Wait => {}
        }
        if !closing && shared.out.is_dead() {
            // The socket failed under the writer (reset, broken pipe).
            return CloseReason::Error;
        }
        let limit = session.read_limit();
        let deadline = session.poll_timeout();
        if deadline != armed {
            // One timer, moved only when the session's deadline moves (not re-armed per loop).
            sleep.as_mut().reset(deadline.map_or_else(far_future, Instant::from_std));
            armed = deadline;
        }
        // The writer's progress matters only for backpressure (reading resumes below the mark)
        // and for a close waiting on the flush; the write deadline reads it at the next wake.
        let watch_progress = closing || shared.out.unsent() > OUTPUT_HIGH_WATER;
        let event = tokio::select! {
            result = async { match call.as_mut() { Some(call) => call.await, None => std::future::pending().await } }, if call.is_some() => Event::Hook(result),
            read = read_into(&mut reader, session, limit), if limit > 0 => Event::Read(read),
            _ = shared.wake_driver.notified() => Event::Woken,
            _ = shared.out.progress(), if watch_progress => Event::Woken,
            _ = &mut sleep, if deadline.is_some() => Event::Deadline,
        };
        match event {
            Event::Hook(result) => {
                call = None;
                if let Some(started) = hook_started.take() {
                    shared.hooks.hook_done(started.elapsed());
                }
                // What JS wrote before it answered comes before what the answer makes the
                // session write (under TLS JS writes wait in `plain_out` to be sealed).
                shared.flush_js_writes(session);
                session.hook_done(result);
            }
            Event::Read(Ok(0)) => session.receive_eof(std::time::Instant::now()),
            Event::Read(Ok(n)) => shared.out.received(n),
            Event::Read(Err(_)) => {
                shared.out.abort();
                return CloseReason::Error;
            }
            Event::Woken => {}
            Event::Deadline => {
                armed = None;
                session.handle_timeout(Instant::now().into_std());
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Reads at most `limit` bytes into the session's input. The buffer exists only while the read
/// is polled: an idle connection holds none.
fn read_into<'a>(
    reader: &'a mut OwnedReadHalf,
    session: &'a mut Session,
    limit: usize,
) -> impl Future<Output = std::io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| {
        // Start small and double while messages are large, so big messages still arrive in
        // few reads.
        let input = session.input_mut();
        if input.capacity() - input.len() < 1024 {
            input.reserve(input.len().clamp(2048, 1 << 20));
        }
        // `read_buf` is cancel-safe, so a fresh one per poll loses nothing, and unlike
        // `readable()` + `try_read_buf` a short read clears tokio's readiness: no extra recv
        // per message that fails with EAGAIN.
        let mut limited = input.limit(limit);
        let polled = std::pin::pin!(reader.read_buf(&mut limited)).poll(cx);
        if polled.is_pending() {
            session.release_idle_buffers(0);
        }
        polled
    })
}

/// After our FIN, reads and discards until the client closes too, for at most [`LINGER`].
async fn linger(reader: &mut OwnedReadHalf) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// `detach()`: the session lets go, and what it read but did not process is handed over first.
async fn detach(session: &mut Session, reader: OwnedReadHalf, shared: &Arc<ConnShared>, end: bool) -> CloseReason {
    shared.out.write_owned(session.take_output());
    let leftover = session.detach();
    if session.is_tls() {
        if end {
            shared.request_end_again();
        }
        return detached_tls(session, reader, shared, leftover).await;
    }
    *shared.detached.lock().await = Some(DetachedRead::Raw { leftover, reader });
    shared.set_detached_ready();
    // From here on `end()` ends the writer itself; one made before, or meanwhile, is done here
    // (see `ConnShared::end`). Our side ends; the client's side is read on, to its own end.
    shared.set_finished(CloseReason::Detached);
    if end || shared.is_ending() {
        shared.out.end();
    }
    CloseReason::Detached
}

/// After `detach()` on a TLS connection, the driver stays on as the TLS layer of the detached
/// stream: it decrypts what the client sends for `read_detached()` and seals what JS writes.
async fn detached_tls(
    session: &mut Session,
    mut reader: OwnedReadHalf,
    shared: &Arc<ConnShared>,
    leftover: bytes::BytesMut,
) -> CloseReason {
    // A few chunks in flight at most: a stream that JS does not read stops the socket reads.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    *shared.detached.lock().await = Some(DetachedRead::Decrypted { leftover, chunks: receiver });
    shared.set_detached_ready();
    shared.set_finished(CloseReason::Detached);
    // Dropping the sender is how the detached reader learns that the client's stream ended.
    let mut chunks = Some(sender);
    // A chunk opened but not yet taken by the detached stream. While one waits, the socket is
    // not read (backpressure), but JS writes are still sealed and sent: the wait is a select
    // branch, not an await inside one.
    let mut waiting: Option<Vec<u8>> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended = false;
    loop {
        let requests = shared.take_requests();
        if requests & REQ_DESTROY != 0 || shared.out.is_dead() {
            shared.out.abort();
            return CloseReason::Detached;
        }
        shared.flush_js_writes(session);
        if requests & REQ_END != 0 && !ended {
            ended = true;
            shared.out.write_owned(session.seal_close());
            shared.out.end();
        }
        tokio::select! {
            // An owned permit (of a clone): the future borrows nothing the handlers change.
            permit = async { chunks.clone().expect("guarded").reserve_owned().await }, if chunks.is_some() && waiting.is_some() => {
                match permit {
                    Ok(permit) => {
                        permit.send(waiting.take().unwrap_or_default());
                    }
                    // The detached stream is gone: nobody reads what the client sends.
                    Err(_) => chunks = None,
                }
            }
            read = reader.read(&mut buf), if chunks.is_some() && waiting.is_none() => {
                let plaintext = match read {
                    Ok(0) => None,
                    Ok(n) => session.open(&buf[..n]),
                    Err(_) => {
                        // Reset: nothing can be sent either, so the detached stream closes.
                        shared.out.abort();
                        None
                    }
                };
                match plaintext {
                    Some(bytes) if bytes.is_empty() => {}
                    Some(bytes) => waiting = Some(bytes.to_vec()),
                    None => chunks = None,
                }
            }
            _ = shared.wake_driver.notified() => {}
            _ = shared.out.stopped(), if chunks.is_none() => return CloseReason::Detached,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{HookRequest, HookSet};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Detaches from inside the first `onMessage` call and reports the message handled.
    struct DetachOnFirstMessage;

    impl Hooks for DetachOnFirstMessage {
        fn call(&self, conn: &Arc<ConnShared>, _: HookRequest, _: &[u8]) -> HookFuture {
            conn.detach();
            Box::pin(async { HookResult::Messages { handled: 1, paused: false, error: None } })
        }

        fn closed(&self, _: &Arc<ConnShared>, _: CloseReason) {}
        fn cancelled(&self, _: &Arc<ConnShared>) {}
    }

    #[tokio::test]
    async fn detach_hands_over_unprocessed_bytes_even_to_a_late_reader() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let config =
            SessionConfig { hooks: HookSet { on_message: true, ..HookSet::default() }, ..SessionConfig::default() };
        let conn = spawn_connection(1, stream, &[], Arc::new(config), Arc::new(DetachOnFirstMessage), |_| {}, || {});
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
