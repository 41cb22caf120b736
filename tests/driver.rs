//! The tokio driver over real loopback sockets, with tokio's clock paused: deadlines of a
//! minute pass in no time and without sleeps, because the paused clock jumps to the next timer
//! whenever every task waits. Hooks are plain Rust here (the napi layer is one implementation of
//! [`Hooks`]); one of them panics, to show a bug costs its own connection only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_gateway_native::auth::AuthMode;
use pg_gateway_native::server::{spawn_connection, CloseReason, ConnShared, HookFuture, Hooks};
use pg_gateway_native::session::{HookRequest, HookResult, HookSet, SessionConfig, OUTPUT_HIGH_WATER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What a test's hooks do for each request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Never settle.
    Hang,
    /// Answer every offered Query with a DataRow of this many bytes.
    Answer(usize),
    /// Panic inside the hook call.
    Panic,
}

struct TestHooks {
    behaviour: Behaviour,
    closed: Mutex<Vec<CloseReason>>,
    calls: AtomicUsize,
}

impl TestHooks {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self { behaviour, closed: Mutex::new(Vec::new()), calls: AtomicUsize::new(0) })
    }

    fn closed(&self) -> Vec<CloseReason> {
        self.closed.lock().unwrap().clone()
    }
}

impl Hooks for TestHooks {
    fn call(&self, conn: &Arc<ConnShared>, request: HookRequest, offered: &[u8]) -> HookFuture {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match (self.behaviour, request) {
            (Behaviour::Panic, _) => panic!("a bug in a hook dispatcher"),
            (Behaviour::Hang, _) => Box::pin(std::future::pending()),
            (Behaviour::Answer(size), HookRequest::Messages { count }) => {
                let mut handled = 0;
                let mut rest = offered;
                // Queries are answered; the first other message (the startup packet, say) is
                // left to the built-ins. Like the JS dispatcher, the batch pauses once the
                // output is over the high-water mark.
                let mut paused = false;
                while handled < count && rest.len() >= 5 && rest[0] == b'Q' {
                    if handled > 0 && conn.over_high_water() {
                        paused = true;
                        break;
                    }
                    let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
                    conn.write_from_js(&data_row(size));
                    rest = &rest[1 + len..];
                    handled += 1;
                }
                Box::pin(async move { HookResult::Messages { handled, paused, error: None } })
            }
            (Behaviour::Answer(_), _) => Box::pin(async { HookResult::Done }),
        }
    }

    fn closed(&self, _conn: &Arc<ConnShared>, reason: CloseReason) {
        self.closed.lock().unwrap().push(reason);
    }

    fn cancelled(&self, _conn: &Arc<ConnShared>) {}
}

/// DataRow with one value of `size` bytes, then ReadyForQuery.
fn data_row(size: usize) -> Vec<u8> {
    let mut out = vec![b'D'];
    out.extend(((4 + 2 + 4 + size) as i32).to_be_bytes());
    out.extend(1i16.to_be_bytes());
    out.extend((size as i32).to_be_bytes());
    out.resize(out.len() + size, b'x');
    out.extend(b"Z\x00\x00\x00\x05I");
    out
}

fn startup(user: &str) -> Vec<u8> {
    let body = [&196608i32.to_be_bytes()[..], b"user\0", user.as_bytes(), b"\0\0"].concat();
    [&((body.len() + 4) as i32).to_be_bytes()[..], &body].concat()
}

fn query(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend(((sql.len() + 5) as i32).to_be_bytes());
    out.extend(sql.as_bytes());
    out.push(0);
    out
}

/// A connected client and the server side driven by `spawn_connection`.
async fn connect(config: SessionConfig, hooks: Arc<TestHooks>) -> (TcpStream, Arc<ConnShared>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let conn = spawn_connection(1, stream, &[], Arc::new(config), hooks, |_| {}, || {});
    (client, conn)
}

fn with_messages(auth_mode: AuthMode) -> SessionConfig {
    SessionConfig { auth_mode, hooks: HookSet { on_message: true, ..HookSet::default() }, ..SessionConfig::default() }
}

/// Reads until EOF (or a reset); returns what arrived.
async fn read_to_close(client: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `done(received)` holds.
async fn read_until(client: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 65536];
    while !done(&received) {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early after {} bytes", received.len());
        received.extend_from_slice(&buf[..n]);
    }
    received
}

fn ready(received: &[u8]) -> bool {
    received.ends_with(b"Z\x00\x00\x00\x05I")
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_without_a_word_at_the_auth_deadline() {
    let hooks = TestHooks::new(Behaviour::Hang);
    let (mut client, conn) = connect(SessionConfig::default(), hooks).await;
    let started = Instant::now();
    assert!(read_to_close(&mut client).await.is_empty(), "PostgreSQL says nothing");
    assert!(started.elapsed() >= Duration::from_secs(60), "not before authTimeout");
    assert!(started.elapsed() < Duration::from_secs(61));
    assert_eq!(conn.wait_finished().await, CloseReason::Timeout);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_hook_until_the_deadline_then_sends_57p01() {
    let hooks = TestHooks::new(Behaviour::Hang);
    let (mut client, conn) = connect(with_messages(AuthMode::None), hooks.clone()).await;
    client.write_all(&startup("u")).await.unwrap();
    // onMessage (startup) never settles; shutdown must still end the connection at its deadline.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = Instant::now();
    conn.shutdown((started + Duration::from_secs(10)).into_std());
    let received = read_to_close(&mut client).await;
    assert!(started.elapsed() >= Duration::from_secs(10));
    assert!(received.windows(5).any(|w| w == b"57P01"), "terminating connection: {received:?}");
    conn.wait_finished().await;
    assert_eq!(hooks.closed().len(), 1, "closed() heard once");
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_an_idle_session_at_once() {
    let hooks = TestHooks::new(Behaviour::Answer(1));
    let (mut client, conn) = connect(with_messages(AuthMode::None), hooks).await;
    client.write_all(&startup("u")).await.unwrap();
    read_until(&mut client, ready).await;
    let started = Instant::now();
    conn.shutdown((started + Duration::from_secs(10)).into_std());
    let received = read_to_close(&mut client).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(received.windows(5).any(|w| w == b"57P01"));
}

#[tokio::test(start_paused = true)]
async fn destroy_while_a_hook_never_settles_ends_the_connection() {
    let hooks = TestHooks::new(Behaviour::Hang);
    let (mut client, conn) = connect(with_messages(AuthMode::None), hooks.clone()).await;
    client.write_all(&startup("u")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    conn.destroy();
    assert_eq!(conn.wait_finished().await, CloseReason::Error);
    read_to_close(&mut client).await;
    assert_eq!(hooks.closed(), vec![CloseReason::Error]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_during_a_hook_that_never_settles_is_let_go() {
    let hooks = TestHooks::new(Behaviour::Hang);
    let (mut client, conn) = connect(with_messages(AuthMode::None), hooks.clone()).await;
    client.write_all(&startup("u")).await.unwrap();
    client.shutdown().await.unwrap();
    let started = Instant::now();
    assert_eq!(conn.wait_finished().await, CloseReason::ClientEnded);
    assert!(started.elapsed() <= Duration::from_secs(6), "within the hook's grace after EOF");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_costs_about_one_answer_then_the_write_deadline() {
    let hooks = TestHooks::new(Behaviour::Answer(256 * 1024));
    let (mut client, conn) = connect(with_messages(AuthMode::None), hooks.clone()).await;
    client.write_all(&startup("u")).await.unwrap();
    read_until(&mut client, ready).await;
    // 10 000 queries of 256 KiB answers each (2.5 GiB), and not one byte read from now on.
    let burst: Vec<u8> = (0..10_000).flat_map(|_| query("select 1")).collect();
    client.write_all(&burst).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = conn.unsent();
    assert!(held <= OUTPUT_HIGH_WATER + 2 * 256 * 1024, "holds about one answer beyond the mark, not {held} bytes");
    let answered = hooks.calls.load(Ordering::Relaxed);
    assert!(answered < 100, "stopped answering ({answered} hook calls)");
    // Nothing read for writeTimeout (60 s): the connection goes.
    assert_eq!(conn.wait_finished().await, CloseReason::Timeout);
}

#[tokio::test]
async fn a_panicking_hook_costs_its_own_connection_only() {
    let panicking = TestHooks::new(Behaviour::Panic);
    let (mut client, conn) = connect(with_messages(AuthMode::None), panicking.clone()).await;
    client.write_all(&startup("u")).await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), conn.wait_finished()).await;
    assert_eq!(finished.expect("the connection ends"), CloseReason::Error);
    read_to_close(&mut client).await;
    // The runtime and other connections carry on.
    let healthy = TestHooks::new(Behaviour::Answer(3));
    let (mut other, _conn) = connect(with_messages(AuthMode::None), healthy).await;
    other.write_all(&startup("u")).await.unwrap();
    read_until(&mut other, ready).await;
    other.write_all(&query("select 1")).await.unwrap();
    let answer = read_until(&mut other, ready).await;
    assert!(answer.starts_with(b"D"));
}
