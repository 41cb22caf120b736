//! The session's time, liveness and backpressure, driven by hand: deadlines passed in, backlog
//! reported, hooks answered late or never.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::auth::AuthMode;
use crate::protocol::startup::StartupMessage;

const SECRETS: Secrets =
    Secrets { md5_salt: [1, 2, 3, 4], process_id: 42, secret_key: [9, 9, 9, 9], scram_nonce: [5; 18] };

fn session(auth_mode: AuthMode, hooks: HookSet, now: Instant) -> Session {
    let config = SessionConfig { auth_mode, hooks, ..SessionConfig::default() };
    Session::new(Arc::new(config), SECRETS, now)
}

fn startup(user: &str) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    StartupMessage { major: 3, minor: 0, parameters: vec![("user".into(), user.into())] }.encode(&mut out);
    out.to_vec()
}

fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(((body.len() + 4) as i32).to_be_bytes());
    v.extend(body);
    v
}

/// Polls once, expecting no hook (the session waits or ends), and drops the output.
fn settle(session: &mut Session) -> Step {
    let step = session.poll();
    session.take_output();
    assert!(!matches!(step, Step::Hook(_)), "unexpected hook {step:?}");
    step
}

#[test]
fn a_startup_that_stalls_is_closed_silently_at_the_auth_deadline() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::Md5Password, HookSet::default(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    s.receive(&startup("bob"));
    assert_eq!(settle(&mut s), Step::Wait, "waiting for the password");
    s.handle_timeout(t0 + Duration::from_secs(59));
    assert_eq!(s.poll(), Step::Wait, "not yet");
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(s.poll(), Step::Abort);
    assert!(s.take_output().is_empty(), "PostgreSQL says nothing");
    assert_eq!(s.close_reason(), Some(CloseReason::Timeout));
}

#[test]
fn authentication_ends_the_auth_deadline() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet::default(), t0);
    s.receive(&startup("bob"));
    assert_eq!(settle(&mut s), Step::Wait);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(s.poll(), Step::Wait, "an authenticated session has no deadline");
}

#[test]
fn a_hook_that_answered_the_startup_owns_authentication() {
    // onStartup returns true (it answered the client itself), and onMessage that consumed the
    // StartupMessage: neither may be cut at the auth deadline, and both get the message limits
    // of an authenticated session (a 100 KB query is fine).
    let t0 = Instant::now();
    let big_query = typed(b'Q', &[b"select '".as_slice(), &vec![b'x'; 100_000], b"'\0"].concat());
    for hooks in
        [HookSet { on_startup: true, ..HookSet::default() }, HookSet { on_message: true, ..HookSet::default() }]
    {
        let mut s = session(AuthMode::Md5Password, hooks, t0);
        s.receive(&startup("bob"));
        match s.poll() {
            Step::Hook(HookRequest::Startup) => s.hook_done(HookResult::Bool(true)),
            Step::Hook(HookRequest::Messages { .. }) => {
                s.hook_done(HookResult::Messages { handled: 1, paused: false, error: None })
            }
            other => panic!("{other:?}"),
        }
        let step = s.poll();
        assert_eq!(step, Step::Wait, "{hooks:?}");
        assert_eq!(s.poll_timeout(), None, "{hooks:?}: no auth deadline");
        s.handle_timeout(t0 + Duration::from_secs(120));
        s.receive(&big_query);
        let step = s.poll();
        if hooks.on_message {
            assert_eq!(step, Step::Hook(HookRequest::Messages { count: 1 }), "the big query reaches onMessage");
        } else {
            assert_eq!(step, Step::Wait, "the built-ins answer it");
            let out = s.take_output();
            assert_eq!(out[0], b'E');
            assert!(String::from_utf8_lossy(&out).contains("Queries not yet implemented"));
        }
        assert!(!s.state().is_authenticated, "{hooks:?}: isAuthenticated stays as pg-gateway 0.2.4 has it");
    }
}

#[test]
fn send_authentication_ok_from_a_hook_ends_the_auth_deadline() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::Md5Password, HookSet { on_message: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    // The built-ins take the startup; the hook answers the password itself.
    let Step::Hook(HookRequest::Messages { .. }) = s.poll() else { panic!() };
    s.hook_done(HookResult::Messages { handled: 0, paused: false, error: None });
    assert_eq!(settle(&mut s), Step::Wait);
    s.receive(&typed(b'p', b"secret\0"));
    let Step::Hook(HookRequest::Messages { .. }) = s.poll() else { panic!() };
    s.authenticated_by_hook();
    s.hook_done(HookResult::Messages { handled: 1, paused: false, error: None });
    assert_eq!(s.poll(), Step::Wait);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn output_above_the_high_water_mark_stops_reading_and_processing() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet::default(), t0);
    s.receive(&startup("bob"));
    assert_eq!(settle(&mut s), Step::Wait);
    // The driver holds more than the mark: nothing more is processed or read.
    s.handle_backlog(t0, OUTPUT_HIGH_WATER + 1, 0);
    s.receive(&[typed(b'Q', b"select 1\0"), typed(b'Q', b"select 2\0")].concat());
    assert_eq!(s.poll(), Step::Wait);
    assert!(s.take_output().is_empty(), "no answer while backed up");
    assert!(!s.wants_input());
    // The client read: both queries are answered.
    s.handle_backlog(t0, 0, OUTPUT_HIGH_WATER as u64 + 1);
    assert_eq!(s.poll(), Step::Wait);
    assert!(s.wants_input());
    let out = s.take_output();
    assert_eq!(out.iter().filter(|&&b| b == b'Z').count(), 2);
}

#[test]
fn a_paused_batch_is_offered_again_not_given_to_the_builtins() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet { on_message: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    let Step::Hook(_) = s.poll() else { panic!() };
    s.hook_done(HookResult::Messages { handled: 0, paused: false, error: None });
    assert_eq!(s.poll(), Step::Wait);
    s.take_output();
    s.receive(&[typed(b'Q', b"1\0"), typed(b'Q', b"2\0"), typed(b'Q', b"3\0")].concat());
    assert_eq!(s.poll(), Step::Hook(HookRequest::Messages { count: 3 }));
    // One handled, then the hook's answers backed the output up.
    s.handle_backlog(t0, 2 * OUTPUT_HIGH_WATER, 0);
    s.hook_done(HookResult::Messages { handled: 1, paused: true, error: None });
    assert_eq!(s.poll(), Step::Wait);
    assert!(s.take_output().is_empty(), "the built-ins did not answer the rest");
    s.handle_backlog(t0, 0, 1);
    assert_eq!(s.poll(), Step::Hook(HookRequest::Messages { count: 2 }), "the rest is offered again");
}

#[test]
fn while_a_hook_runs_the_session_reads_only_a_little_ahead() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet { on_message: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    let Step::Hook(_) = s.poll() else { panic!() };
    assert_eq!(s.read_limit(), READ_AHEAD_LIMIT - startup("bob").len());
    s.receive(&vec![0u8; READ_AHEAD_LIMIT]);
    assert!(!s.wants_input(), "a client cannot pile up memory behind a slow hook");
    assert_eq!(s.poll(), Step::Wait);
}

#[test]
fn a_half_closed_client_still_gets_the_answer_of_a_hook_that_settles_in_time() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::Md5Password, HookSet { validate_credentials: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    assert_eq!(settle(&mut s), Step::Wait);
    s.receive(&typed(b'p', b"md5x\0"));
    let Step::Hook(HookRequest::ValidateCredentials(_)) = s.poll() else { panic!() };
    s.receive_eof(t0);
    assert_eq!(s.poll(), Step::Wait, "the hook may still answer");
    assert_eq!(s.poll_timeout(), Some(t0 + HOOK_GRACE_AFTER_EOF));
    s.hook_done(HookResult::Bool(true));
    assert_eq!(s.poll(), Step::Close);
    assert!(s.state().is_authenticated);
    assert!(s.take_output().ends_with(b"Z\0\0\0\x05I"), "the answer goes out before the close");
    assert_eq!(s.close_reason(), Some(CloseReason::ClientEnded));
}

#[test]
fn a_client_that_leaves_while_a_hook_never_settles_is_let_go_and_the_late_answer_is_ignored() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::Md5Password, HookSet { validate_credentials: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    assert_eq!(settle(&mut s), Step::Wait);
    s.receive(&typed(b'p', b"md5x\0"));
    let Step::Hook(HookRequest::ValidateCredentials(_)) = s.poll() else { panic!() };
    s.receive_eof(t0);
    assert_eq!(s.poll(), Step::Wait);
    s.handle_timeout(t0 + HOOK_GRACE_AFTER_EOF);
    assert_eq!(s.poll(), Step::Close);
    assert_eq!(s.close_reason(), Some(CloseReason::ClientEnded));
    s.hook_done(HookResult::Bool(true));
    assert_eq!(s.poll(), Step::Close);
    assert!(!s.state().is_authenticated, "the late answer changed nothing");
}

#[test]
fn a_client_that_takes_no_output_is_dropped_at_the_write_deadline() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet::default(), t0);
    s.receive(&startup("bob"));
    settle(&mut s);
    s.handle_backlog(t0, 500, 0);
    let deadline = s.poll_timeout().expect("a write deadline");
    assert_eq!(deadline, t0 + Duration::from_secs(60));
    // Progress moves the deadline.
    let t1 = t0 + Duration::from_secs(30);
    s.handle_backlog(t1, 400, 100);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    // Progress within a second of the last move leaves the deadline (fewer timer re-arms).
    s.handle_backlog(t1 + Duration::from_millis(500), 300, 200);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    // No progress: the deadline stays.
    s.handle_backlog(t1 + Duration::from_secs(10), 300, 200);
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    s.handle_timeout(t1 + Duration::from_secs(60));
    assert_eq!(s.poll(), Step::Abort);
    assert_eq!(s.close_reason(), Some(CloseReason::Timeout));
}

#[test]
fn all_output_taken_means_no_write_deadline() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet::default(), t0);
    s.receive(&startup("bob"));
    settle(&mut s);
    s.handle_backlog(t0, 500, 0);
    s.handle_backlog(t0, 0, 500);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn shutdown_waits_for_a_running_hook_then_sends_57p01() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet { on_message: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    let Step::Hook(_) = s.poll() else { panic!() };
    s.hook_done(HookResult::Messages { handled: 0, paused: false, error: None });
    s.poll();
    s.take_output();
    s.receive(&typed(b'Q', b"select 1\0"));
    let Step::Hook(_) = s.poll() else { panic!() };
    s.shutdown(t0 + Duration::from_secs(10));
    assert_eq!(s.poll(), Step::Wait, "the hook may finish first");
    s.send(b"Z\0\0\0\x05I");
    s.hook_done(HookResult::Messages { handled: 1, paused: false, error: None });
    assert_eq!(s.poll(), Step::Close);
    let out = s.take_output();
    assert!(out.starts_with(b"Z\0\0\0\x05I"), "the hook's answer first");
    assert!(String::from_utf8_lossy(&out).contains("57P01"));
    assert_eq!(s.close_reason(), Some(CloseReason::Shutdown));
}

#[test]
fn shutdown_does_not_wait_past_its_deadline_for_a_hook_that_never_settles() {
    let t0 = Instant::now();
    let mut s = session(AuthMode::None, HookSet { on_startup: true, ..HookSet::default() }, t0);
    s.receive(&startup("bob"));
    assert_eq!(s.poll(), Step::Hook(HookRequest::Startup));
    s.shutdown(t0 + Duration::from_secs(10));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(s.poll(), Step::Close);
    assert!(String::from_utf8_lossy(&s.take_output()).contains("57P01"));
    s.hook_done(HookResult::Bool(false));
    assert_eq!(s.poll(), Step::Close, "the late answer is ignored");
}
