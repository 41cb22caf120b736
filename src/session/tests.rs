//! Conversations with the session, bytes in and bytes out, hooks answered by closures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::*;
use crate::auth::AuthMode;
use crate::protocol::backend;
use crate::protocol::startup::StartupMessage;
use crate::protocol::SqlState;

const SECRETS: Secrets =
    Secrets { md5_salt: [1, 2, 3, 4], process_id: 42, secret_key: [9, 9, 9, 9], scram_nonce: [5; 18] };

pub(super) fn config(auth_mode: AuthMode, hooks: HookSet) -> Arc<SessionConfig> {
    Arc::new(SessionConfig { auth_mode, hooks, ..SessionConfig::default() })
}

pub(super) fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    startup_version(3, 0, params)
}

fn startup_version(major: u16, minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let msg = StartupMessage {
        major,
        minor,
        parameters: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    out.to_vec()
}

pub(super) fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(((body.len() + 4) as i32).to_be_bytes());
    v.extend(body);
    v
}

/// Drives the session until it needs input or closes; returns the tags of the messages it
/// wrote ('S'/'N' single bytes before startup are returned as themselves) and the hook log.
/// A scripted hook: the request, and the offered messages for `Messages`.
type HookFn = dyn FnMut(&HookRequest, &[u8]) -> HookResult;

pub(super) struct Harness {
    pub(super) session: Session,
    hooks: Box<HookFn>,
    pub(super) log: Vec<String>,
}

impl Harness {
    pub(super) fn new(
        config: Arc<SessionConfig>,
        hooks: impl FnMut(&HookRequest, &[u8]) -> HookResult + 'static,
    ) -> Self {
        Self { session: Session::new(config, SECRETS, Instant::now()), hooks: Box::new(hooks), log: Vec::new() }
    }

    pub(super) fn send(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        self.session.receive(bytes);
        self.run()
    }

    fn eof(&mut self) -> (Vec<u8>, bool) {
        self.session.receive_eof(Instant::now());
        self.run()
    }

    fn run(&mut self) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            let step = self.session.poll();
            out.extend_from_slice(&self.session.take_output());
            match step {
                Step::Wait => return (out, false),
                Step::Close | Step::Abort => return (out, true),
                Step::Hook(request) => {
                    self.log.push(format!("{request:?}").chars().take(60).collect());
                    let result = (self.hooks)(&request, self.session.offered());
                    self.session.hook_done(result);
                }
            }
        }
    }
}

/// Splits backend output into (tag, body) messages.
pub(super) fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        out.push((bytes[0], bytes[5..1 + len].to_vec()));
        bytes = &bytes[1 + len..];
    }
    assert!(bytes.is_empty(), "trailing {bytes:?}");
    out
}

pub(super) fn tags(bytes: &[u8]) -> String {
    messages(bytes).iter().map(|(t, _)| *t as char).collect()
}

pub(super) fn error_code(bytes: &[u8]) -> String {
    let (_, body) = messages(bytes).into_iter().find(|(t, _)| *t == b'E').expect("an ErrorResponse");
    let i = body.windows(1).position(|w| w == b"C").unwrap();
    String::from_utf8(body[i + 1..i + 6].to_vec()).unwrap()
}

/// Splits offered bytes into whole messages by their length fields (4-byte lengths before
/// startup, where the first byte is always 0, and type byte plus length after).
fn split_messages(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let typed = data[0] != 0;
        let at = usize::from(typed);
        let len = i32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize + at;
        out.push(data[..len].to_vec());
        data = &data[len..];
    }
    out
}

fn no_hooks(_: &HookRequest, _: &[u8]) -> HookResult {
    panic!("no hook should run")
}

#[test]
fn auth_none_sends_the_full_postgres_greeting() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&startup(&[("user", "alice"), ("application_name", "psql")]));
    assert!(!closed);
    let msgs = messages(&out);
    assert_eq!(msgs[0], (b'R', vec![0, 0, 0, 0]));
    let params: Vec<String> = msgs
        .iter()
        .filter(|(t, _)| *t == b'S')
        .map(|(_, b)| String::from_utf8_lossy(b).split('\0').take(2).collect::<Vec<_>>().join("="))
        .collect();
    for expected in [
        "server_version=16.3 (pg-gateway-native)",
        "client_encoding=UTF8",
        "DateStyle=ISO, MDY",
        "integer_datetimes=on",
        "standard_conforming_strings=on",
        "application_name=psql",
        "session_authorization=alice",
        "TimeZone=UTC",
        "server_encoding=UTF8",
    ] {
        assert!(params.contains(&expected.to_string()), "{expected} in {params:?}");
    }
    let (tag, key) = &msgs[msgs.len() - 2];
    assert_eq!((*tag, key.as_slice()), (b'K', &[0, 0, 0, 42, 9, 9, 9, 9][..]));
    assert_eq!(msgs.last().unwrap(), &(b'Z', b"I".to_vec()));
    assert!(h.session.state().is_authenticated);
}

#[test]
fn md5_auth_asks_validate_credentials_with_the_salt() {
    let hooks = HookSet { validate_credentials: true, on_authenticated: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::Md5Password, hooks), |req, _| match req {
        HookRequest::ValidateCredentials(Credentials::Md5 { user, hash, salt }) => {
            HookResult::Bool(*hash == crate::auth::md5::hash_md5_password(user, "secret", salt))
        }
        HookRequest::Authenticated => HookResult::Done,
        other => panic!("{other:?}"),
    });
    let (out, _) = h.send(&startup(&[("user", "bob")]));
    assert_eq!(messages(&out), vec![(b'R', vec![0, 0, 0, 5, 1, 2, 3, 4])]);
    let hash = crate::auth::md5::hash_md5_password("bob", "secret", &[1, 2, 3, 4]);
    let (out, closed) = h.send(&typed(b'p', format!("{hash}\0").as_bytes()));
    assert!(!closed);
    assert!(tags(&out).starts_with('R') && tags(&out).ends_with("KZ"));
    assert_eq!(h.log.len(), 2);
    assert!(h.log[1].starts_with("Authenticated"));
}

#[test]
fn wrong_password_is_fatal_28p01_with_postgres_wording() {
    let hooks = HookSet { validate_credentials: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::CleartextPassword, hooks), |_, _| HookResult::Bool(false));
    let (out, _) = h.send(&startup(&[("user", "bob")]));
    assert_eq!(messages(&out), vec![(b'R', vec![0, 0, 0, 3])]);
    let (out, closed) = h.send(&typed(b'p', b"nope\0"));
    assert!(closed);
    assert_eq!(error_code(&out), "28P01");
    assert!(String::from_utf8_lossy(&out).contains("password authentication failed for user \"bob\""));
}

#[test]
fn a_full_server_answers_the_startup_message_with_53300_after_the_ssl_answer() {
    let refusal = PgError::fatal(SqlState::TOO_MANY_CONNECTIONS, "sorry, too many clients already");
    let config = SessionConfig { refusal: Some(refusal), ..(*config(AuthMode::None, HookSet::default())).clone() };
    let mut h = Harness::new(Arc::new(config), no_hooks);
    let (out, closed) = h.send(b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
    assert_eq!((out, closed), (b"N".to_vec(), false));
    let (out, closed) = h.send(&startup(&[("user", "a")]));
    assert!(closed);
    assert_eq!(error_code(&out), "53300");
    assert!(String::from_utf8_lossy(&out).contains("sorry, too many clients already"));
    // The log line says the same (refused before its parameters were taken: no user).
    assert_eq!(h.session.fatal_sent(), Some(("53300", "sorry, too many clients already")));
    let line = crate::server::LogEvent::fatal(&h.session).expect("a line for the FATAL error");
    assert_eq!(
        (line.level, line.msg, line.user.as_deref()),
        (crate::server::LogLevel::Warn, "connection failed", None)
    );
}

#[test]
fn a_session_that_ended_without_a_fatal_error_has_no_fatal_line() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (_, closed) = h.send(&typed(b'X', b""));
    assert!(closed);
    assert_eq!(h.session.fatal_sent(), None);
    assert!(crate::server::LogEvent::fatal(&h.session).is_none());
}

#[test]
fn without_validate_credentials_nobody_gets_in() {
    let mut h = Harness::new(config(AuthMode::Md5Password, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "bob")]));
    let (out, closed) = h.send(&typed(b'p', b"md5abc\0"));
    assert!(closed);
    assert_eq!(error_code(&out), "28P01");
}

#[test]
fn startup_edges_match_postgres() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(b"\x00\x00\x00\x08\x04\xd2\x16\x30");
    assert_eq!((out, closed), (b"N".to_vec(), false), "GSSENCRequest gets N");
    let (out, _) = h.send(b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
    assert_eq!(out, b"N", "SSLRequest without TLS gets N");
    let (out, closed) = h.send(b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
    assert!(closed);
    assert_eq!(error_code(&out), "0A000", "a second SSLRequest is an unknown protocol");

    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07\x01\x02\x03\x04");
    assert_eq!((out.len(), closed), (0, true), "CancelRequest: no reply, close");

    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&startup_version(4, 0, &[("user", "a")]));
    assert!(closed);
    assert_eq!(error_code(&out), "0A000");

    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&startup(&[("database", "x")]));
    assert!(closed);
    assert_eq!(error_code(&out), "28000");

    // Impossible lengths: PostgreSQL closes without a word (COMMERROR, its own log only).
    for bad in [10_005i32, 7, 2, -1, 0x5800_0004] {
        let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
        let (out, closed) = h.send(&bad.to_be_bytes());
        assert_eq!((out.len(), closed), (0, true), "length {bad}: silent close");
    }
    // A body of exactly 10 000 bytes is still a startup packet.
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&10_004i32.to_be_bytes());
    assert_eq!((out.len(), closed), (0, false), "waits for the rest");
}

#[test]
fn terminate_before_the_startup_message_closes_quietly() {
    // node-postgres' `client.connect(); client.end()` sends Terminate first: its bytes read as
    // a startup length of 0x58000004. PostgreSQL closes silently; a FATAL would reach pg as an
    // 'error' event and crash a client process that has no listener.
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&typed(b'X', b""));
    assert_eq!((out.len(), closed), (0, true));
}

#[test]
fn an_unknown_version_is_judged_before_the_packet_layout() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(b"\x00\x00\x00\x08\x00\x04\x00\x00");
    assert!(closed);
    assert_eq!(error_code(&out), "0A000");
}

#[test]
fn a_protocol_2_client_is_refused_in_protocol_2() {
    // What PostgreSQL 15 sends (checked against a real server in __test__/postgres-edges).
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(b"\x00\x00\x00\x08\x00\x02\x00\x00");
    assert!(closed);
    assert_eq!(out, b"EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n\0");
}

#[test]
fn plaintext_pipelined_behind_an_encryption_request_is_refused_even_after_n() {
    for request in [&b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..], &b"\x00\x00\x00\x08\x04\xd2\x16\x30"[..]] {
        let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
        let mut bytes = request.to_vec();
        bytes.extend(startup(&[("user", "a")]));
        let (out, closed) = h.send(&bytes);
        assert!(closed);
        assert_eq!(out[0], b'N');
        assert_eq!(error_code(&out[1..]), "08P01");
        assert!(String::from_utf8_lossy(&out).contains("received unencrypted data after"));
    }
}

#[test]
fn protocol_3_2_and_pq_options_get_negotiate_protocol_version() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    let (out, closed) = h.send(&startup_version(3, 2, &[("user", "a"), ("_pq_.foo", "1")]));
    assert!(!closed);
    let msgs = messages(&out);
    assert_eq!(msgs[0], (b'v', b"\x00\x03\x00\x00\x00\x00\x00\x01_pq_.foo\x00".to_vec()));
    assert_eq!(msgs[1].0, b'R');
    let info = h.session.state().client_info.clone().unwrap();
    assert_eq!(info.minor_version, 2);
    assert!(info.parameter("_pq_.foo").is_none());
}

#[test]
fn eof_in_the_middle_of_a_message_closes_quietly() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(b"Q\x00\x00\x00\x20sel");
    assert_eq!((out.len(), closed), (0, false));
    let (out, closed) = h.eof();
    assert_eq!((out.len(), closed), (0, true));
}

#[test]
fn every_message_of_one_read_reaches_on_message_whole_in_one_batch() {
    let hooks = HookSet { on_message: true, ..HookSet::default() };
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    let mut h = Harness::new(config(AuthMode::None, hooks), move |req, data| match req {
        HookRequest::Messages { count } => {
            let batch = split_messages(data);
            assert_eq!(batch.len(), *count);
            let started = batch[0][0] != 0;
            seen2.borrow_mut().push(batch);
            // Handle everything after startup; let the built-ins do the startup.
            HookResult::Messages { handled: if started { *count } else { 0 }, paused: false, error: None }
        }
        other => panic!("{other:?}"),
    });
    h.send(&startup(&[("user", "a")]));
    let mut batch = typed(b'P', b"\0select $1\0\0\0");
    batch.extend(typed(b'B', b"\0\0\0\0\0\x01\0\0\0\x02hi\0\0"));
    batch.extend(typed(b'E', b"\0\0\0\0\0"));
    batch.extend(typed(b'S', b""));
    let (out, _) = h.send(&batch);
    assert!(out.is_empty(), "all handled by the hook");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].len(), 4);
    assert_eq!(seen[1][0][0], b'P');
    assert_eq!(seen[1][1], typed(b'B', b"\0\0\0\0\0\x01\0\0\0\x02hi\0\0"));
    assert_eq!(seen[1][3], typed(b'S', b""));
}

#[test]
fn unhandled_messages_get_builtin_answers_in_order() {
    // The hook handles Parse but not Bind; the built-ins answer Bind, skip to Sync, and the
    // messages after the unhandled one are offered to the hook again.
    let hooks = HookSet { on_message: true, ..HookSet::default() };
    let offered = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let offered2 = offered.clone();
    let mut h = Harness::new(config(AuthMode::None, hooks), move |req, data| match req {
        HookRequest::Messages { count } => {
            offered2.borrow_mut().push(data[0]);
            let handled = if data[0] == b'P' { 1 } else { 0 };
            HookResult::Messages { handled: handled.min(*count), paused: false, error: None }
        }
        other => panic!("{other:?}"),
    });
    h.send(&startup(&[("user", "a")]));
    let mut batch = typed(b'P', b"\0select 1\0\0\0");
    batch.extend(typed(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(typed(b'E', b"\0\0\0\0\0"));
    batch.extend(typed(b'S', b""));
    batch.extend(typed(b'Q', b"select 2\0"));
    let (out, _) = h.send(&batch);
    assert_eq!(tags(&out), "EZEZ");
    assert_eq!(error_code(&out), "0A000");
    // Batches start at: the startup packet, P (with B E S Q behind it), then E after the
    // built-in answered B.
    assert_eq!(*offered.borrow(), vec![0, b'P', b'E', b'S', b'Q']);
}

#[test]
fn a_throwing_hook_after_auth_gives_error_then_ready_or_skip_to_sync() {
    let hooks = HookSet { on_message: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::None, hooks), |req, data| match req {
        HookRequest::Messages { .. } if data[0] == 0 => HookResult::Messages { handled: 0, paused: false, error: None },
        HookRequest::Messages { .. } => HookResult::Messages {
            handled: 0,
            paused: false,
            error: Some(PgError::error(SqlState::INTERNAL_ERROR, "boom")),
        },
        other => panic!("{other:?}"),
    });
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(&typed(b'Q', b"select 1\0"));
    assert_eq!((tags(&out).as_str(), closed), ("EZ", false));
    // In the extended protocol: the error, then nothing until Sync, then ReadyForQuery.
    let (out, _) = h.send(&typed(b'P', b"\0select 1\0\0\0"));
    assert_eq!(tags(&out), "E");
    let (out, _) = h.send(&[typed(b'B', b"\0\0\0\0\0\0\0\0"), typed(b'S', b"")].concat());
    // B throws too but is skipped by the built-ins; S throws: error and ReadyForQuery.
    assert!(tags(&out).ends_with('Z'), "{}", tags(&out));
}

#[test]
fn a_throwing_hook_before_auth_is_fatal() {
    let hooks = HookSet { on_startup: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::None, hooks), |_, _| {
        HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, "startup hook failed"))
    });
    let (out, closed) = h.send(&startup(&[("user", "a")]));
    assert!(closed);
    assert_eq!(error_code(&out), "XX000");
    assert!(String::from_utf8_lossy(&out).contains("FATAL"));
}

#[test]
fn on_startup_true_skips_the_auth_request() {
    let hooks = HookSet { on_startup: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::Md5Password, hooks), |_, _| HookResult::Bool(true));
    let (out, closed) = h.send(&startup(&[("user", "a")]));
    assert_eq!((out.len(), closed), (0, false));
    assert!(h.session.state().has_started);
}

#[test]
fn unknown_and_misplaced_messages_are_protocol_violations() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(&typed(b'z', b""));
    assert!(closed);
    assert_eq!(error_code(&out), "08P01");

    let hooks = HookSet { validate_credentials: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::CleartextPassword, hooks), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(&typed(b'Q', b"select 1\0"));
    assert!(closed);
    assert!(String::from_utf8_lossy(&out).contains("expected password response"));
}

#[test]
fn oversized_message_after_auth_is_refused_before_buffering() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(b"S\x00\x01\x00\x00");
    assert_eq!((out.len(), closed), (0, true), "Sync may not be 64 KiB: PostgreSQL closes without a word");
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let (out, closed) = h.send(b"S\x00\x00\x27\x14");
    assert_eq!((out.len(), closed), (0, false), "a body of exactly 10 000 bytes is allowed");
}

#[test]
fn a_malformed_body_after_authentication_is_an_error_and_the_session_goes_on() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    // A Query without its NUL: ERROR 08P01, ReadyForQuery, and the session goes on.
    let (out, closed) = h.send(&typed(b'Q', b"select 1"));
    assert_eq!((tags(&out).as_str(), closed), ("EZ", false));
    assert_eq!(error_code(&out), "08P01");
    // Extended-protocol messages: ERROR, then skip to Sync.
    for bad in [typed(b'P', b"\0select\0\xff\xff"), typed(b'B', b"\0\0\0"), typed(b'D', b"Z\0")] {
        let (out, closed) = h.send(&bad);
        assert_eq!((tags(&out).as_str(), closed), ("E", false), "{bad:?}");
        assert_eq!(error_code(&out), "08P01");
        let (out, _) = h.send(&typed(b'S', b""));
        assert_eq!(tags(&out), "Z");
    }
}

#[test]
fn builtin_simple_query_answer_keeps_the_connection_usable() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    for _ in 0..3 {
        let (out, closed) = h.send(&typed(b'Q', b"select 1\0"));
        assert_eq!((tags(&out).as_str(), closed), ("EZ", false));
    }
    let (out, closed) = h.send(&typed(b'X', b""));
    assert_eq!((out.len(), closed), (0, true));
}

#[test]
fn unprocessed_input_is_handed_over_whole_and_the_session_keeps_no_share_of_it() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    let query = typed(b'Q', b"select 1\0");
    h.session.receive(&query[..4]); // half a message: not processed
    let leftover = h.session.detach();
    assert_eq!(&leftover[..], &query[..4]);
    // A split would leave the session's input sharing the buffer for as long as the
    // connection lives on (a proxied one, for hours).
    assert_eq!(h.session.input.capacity(), 0);
}

#[test]
fn an_idle_session_releases_its_buffers_and_keeps_a_partial_message() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    h.send(&typed(b'Q', b"select 1\0"));
    h.session.release_idle_buffers(0);
    assert_eq!(h.session.input.capacity() + h.session.output.capacity() + h.session.wire_out.capacity(), 0);
    // Half a message is not idle: it stays, and completes with the rest.
    let query = typed(b'Q', b"select 2\0");
    h.send(&query[..4]);
    h.session.release_idle_buffers(0);
    let (out, _) = h.send(&query[4..]);
    assert_eq!(tags(&out), "EZ");
}

#[test]
fn an_idle_session_keeps_buffers_up_to_the_size_it_is_told() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    // A message that is the whole input takes no shared split: its buffer takes the next read.
    h.send(&typed(b'Q', b"select 1\0"));
    h.session.release_idle_buffers(512);
    let input = h.session.input.capacity();
    assert!(input > 0 && input <= 512, "input kept: {input}");
    // A big message's buffer goes.
    let big = typed(b'Q', format!("select '{}'\0", "x".repeat(4096)).as_bytes());
    h.send(&big);
    h.session.release_idle_buffers(512);
    assert_eq!(h.session.input.capacity(), 0);
    // Also when a small message came last in the same read: what is left of the input is a
    // view of the big read's buffer.
    h.send(&[big.clone(), typed(b'Q', b"select 2\0")].concat());
    h.session.release_idle_buffers(512);
    assert_eq!(h.session.input.capacity(), 0);
    assert!(!h.session.input.try_reclaim(1024), "the big read's buffer is not kept behind a small view");
}

#[test]
fn on_message_handling_the_startup_packet_switches_framing_like_pg_gateway() {
    let hooks = HookSet { on_message: true, ..HookSet::default() };
    let mut h = Harness::new(config(AuthMode::None, hooks), |req, data| match req {
        HookRequest::Messages { .. } if data[0] == 0 => HookResult::Messages { handled: 1, paused: false, error: None },
        HookRequest::Messages { .. } => HookResult::Messages { handled: 0, paused: false, error: None },
        other => panic!("{other:?}"),
    });
    let (out, _) = h.send(&startup(&[("user", "a")]));
    assert!(out.is_empty());
    assert!(h.session.state().has_started && h.session.state().client_info.is_none());
    let (out, closed) = h.send(&typed(b'Q', b"select 1\0"));
    assert!(closed);
    assert!(String::from_utf8_lossy(&out).contains("unknown client info after startup"));
}

#[test]
fn shutdown_of_an_idle_session_sends_57p01_at_once() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), no_hooks);
    h.send(&startup(&[("user", "a")]));
    h.session.shutdown(Instant::now() + Duration::from_secs(10));
    let (out, closed) = h.run();
    assert!(closed);
    assert_eq!(error_code(&out), "57P01");
    assert_eq!(h.session.close_reason(), Some(CloseReason::Shutdown));
    let _ = backend::TransactionStatus::Idle;
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Hostile input, as a fuzzer would send it: valid conversations with bytes flipped, cut,
/// duplicated or inserted, and pure noise, split into reads at random points, with hooks
/// answering at random. The session must never panic, must come to rest (NeedInput or Close)
/// after every read, and a FATAL must always end the session.
#[test]
fn hostile_input_never_panics_or_loops() {
    let valid: Vec<Vec<u8>> = vec![
        [
            startup(&[("user", "a"), ("database", "b")]),
            typed(b'p', b"md5abcdef\0"),
            typed(b'Q', b"select 1\0"),
            typed(b'P', b"s1\0select $1\0\0\x01\0\0\0\x17"),
            typed(b'B', b"\0s1\0\0\x01\0\0\0\x01\0\0\0\x011\0\x01\0\x01"),
            typed(b'D', b"P\0"),
            typed(b'E', b"\0\0\0\0\x0a"),
            typed(b'S', b""),
            typed(b'F', b"\0\0\x04\xd2\0\0\0\x01\0\0\0\x02ab\0\x01"),
            typed(b'd', b"copy"),
            typed(b'X', b""),
        ]
        .concat(),
        [b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec(), startup_version(3, 2, &[("user", "u"), ("_pq_.x", "y")])]
            .concat(),
        b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07\x01\x02\x03\x04".to_vec(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let mut bytes = valid[round % valid.len()].clone();
        for _ in 0..rng.below(6) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes[at] = rng.next() as u8,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, rng.next() as u8),
                3 => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    let chunk = bytes[at..end].to_vec();
                    bytes.splice(at..at, chunk);
                }
                _ => bytes[at] ^= 0x80,
            }
        }
        if round % 10 == 0 {
            bytes = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        }
        let auth_mode =
            [AuthMode::None, AuthMode::CleartextPassword, AuthMode::Md5Password, AuthMode::ScramSha256][round % 4];
        let hooks = HookSet {
            on_message: round % 2 == 0,
            on_startup: round % 5 == 0,
            validate_credentials: round % 3 != 0,
            get_scram_secret: round % 3 != 1,
            on_authenticated: round % 7 == 0,
            on_tls_upgrade: false,
            on_cancel: false,
            on_query: round % 2 == 1,
            on_describe: round % 4 == 1,
        };
        let seed = rng.next();
        let mut hook_rng = Rng(seed | 1);
        let mut h = Harness::new(config(auth_mode, hooks), move |req, _| match req {
            HookRequest::Messages { count } => match hook_rng.below(4) {
                0 => HookResult::Messages { handled: hook_rng.below(count + 2), paused: false, error: None },
                1 => HookResult::Messages {
                    handled: hook_rng.below(count + 1),
                    paused: false,
                    error: Some(PgError::error(SqlState::INTERNAL_ERROR, "x")),
                },
                _ => HookResult::Messages { handled: 0, paused: false, error: None },
            },
            HookRequest::Startup | HookRequest::ValidateCredentials(_) => match hook_rng.below(3) {
                0 => HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, "x")),
                n => HookResult::Bool(n == 1),
            },
            HookRequest::Authenticated | HookRequest::TlsUpgrade => HookResult::Done,
            HookRequest::TlsConfig { .. } => HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, "no tls")),
            HookRequest::ScramSecret { .. } => match hook_rng.below(3) {
                0 => HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, "x")),
                1 => HookResult::ScramSecret(None),
                _ => HookResult::ScramSecret(Some(crate::auth::SecretSource::Password("pw".into()))),
            },
            HookRequest::Query(_) => HookResult::Query(super::query::QueryOutcome {
                completed: hook_rng.below(3),
                suspended: hook_rng.below(2) == 0,
                error: (hook_rng.below(3) == 0).then(|| PgError::error(SqlState::INTERNAL_ERROR, "x")),
                data: None,
            }),
            HookRequest::Describe(_) => match hook_rng.below(2) {
                0 => HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, "x")),
                _ => HookResult::Described(super::query::Description::default()),
            },
        });
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        let mut closed = false;
        while !rest.is_empty() && !closed {
            let n = 1 + rng.below(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let (o, c) = h.send(chunk);
            out.extend(o);
            closed = c;
        }
        if !closed {
            let (o, c) = h.eof();
            out.extend(o);
            assert!(c, "round {round}: EOF must close the session");
        }
        if out.windows(6).any(|w| w == b"FATAL\0") {
            assert!(h.session.close_reason().is_some(), "round {round}: a FATAL error must end the session");
        }
    }
}

#[test]
fn scram_sha_256_runs_through_the_session_with_a_looked_up_secret() {
    use crate::auth::scram_secret::{hmac_sha256, salted_password, sha256};
    use crate::auth::{ScramSecret, SecretSource};
    use base64ct::{Base64, Encoding};
    let hooks = HookSet { get_scram_secret: true, ..HookSet::default() };
    let secret = ScramSecret::from_password("pencil", b"0123456789abcdef", 4096);
    let mut h = Harness::new(config(AuthMode::ScramSha256, hooks), move |req, _| match req {
        HookRequest::ScramSecret { user } if user == "bob" => {
            HookResult::ScramSecret(Some(SecretSource::Verifier(secret.clone())))
        }
        other => panic!("{other:?}"),
    });
    let (out, _) = h.send(&startup(&[("user", "bob")]));
    assert_eq!(
        out, b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
        "AuthenticationSASL, no -PLUS without TLS"
    );
    let bare = "n=,r=abcdef";
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&((3 + bare.len()) as i32).to_be_bytes());
    initial.extend_from_slice(format!("n,,{bare}").as_bytes());
    let (out, _) = h.send(&typed(b'p', &initial));
    assert_eq!((out[0], &out[5..9]), (b'R', &11i32.to_be_bytes()[..]), "SASLContinue");
    let server_first = std::str::from_utf8(&out[9..]).unwrap().to_string();
    assert!(server_first.starts_with("r=abcdef") && server_first.ends_with(",i=4096"), "{server_first}");
    let nonce = &server_first[2..server_first.find(',').unwrap()];
    let salted = salted_password("pencil", b"0123456789abcdef", 4096);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let signature = hmac_sha256(&sha256(&client_key), format!("{bare},{server_first},{without_proof}").as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(a, b)| a ^ b).collect();
    let (out, closed) = h.send(&typed(b'p', format!("{without_proof},p={}", Base64::encode_string(&proof)).as_bytes()));
    assert!(!closed);
    assert_eq!(out[0], b'R');
    assert_eq!(&out[5..9], &12i32.to_be_bytes(), "SASLFinal first");
    assert!(out.windows(9).any(|w| w == b"R\x00\x00\x00\x08\x00\x00\x00\x00"), "then AuthenticationOk");
    assert!(h.session.state().is_authenticated);
}

#[test]
fn a_cancel_request_closes_silently_and_is_handed_to_the_driver() {
    let mut h = Harness::new(config(AuthMode::None, HookSet::default()), |req, _| panic!("{req:?}"));
    let (out, closed) = h.send(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x2a\x09\x09\x09\x09");
    assert!(out.is_empty() && closed, "no answer, and the connection ends");
    assert_eq!(h.session.take_cancel_request(), Some(CancelRequest { process_id: 42, secret_key: vec![9, 9, 9, 9] }));
    assert_eq!(h.session.take_cancel_request(), None, "handed over once");
}

#[test]
fn a_cancel_request_of_the_wrong_length_gets_no_answer_either() {
    for packet in [
        &b"\x00\x00\x00\x0c\x04\xd2\x16\x2e\x00\x00\x00\x2a"[..],
        b"\x00\x00\x00\x14\x04\xd2\x16\x2e\x00\x00\x00\x2a\x09\x09\x09\x09\x01\x02\x03\x04",
    ] {
        let mut h = Harness::new(config(AuthMode::None, HookSet::default()), |req, _| panic!("{req:?}"));
        let (out, closed) = h.send(packet);
        assert!(closed, "closed");
        assert!(out.is_empty(), "PostgreSQL answers a malformed cancel with nothing: {out:?}");
    }
}
