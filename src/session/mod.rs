//! One connection's state machine, sans-IO: it never touches a socket or a clock. A driver
//! (the tokio one in `server::driver`, or the JS-thread one) is a thin pump around it:
//!
//! - inputs: bytes ([`Session::input_mut`] / [`Session::receive`], [`Session::receive_eof`]),
//!   hook answers ([`Session::hook_done`]), the time ([`Session::handle_timeout`]), how much
//!   output the driver still holds ([`Session::handle_backlog`]), and what JS or the server asks
//!   ([`Session::send`], [`Session::end`], [`Session::shutdown`], [`Session::detach`]);
//! - outputs: the next [`Step`] ([`Session::poll`]), wire bytes ([`Session::take_output`]),
//!   whether to read now ([`Session::wants_input`]) and when to wake ([`Session::poll_timeout`]).
//!
//! Phases: startup packets -> authentication -> ready -> closed (or detached). Every message
//! first goes to the `onMessage` hook (when defined), in batches of all complete messages
//! already received; the built-in behaviour applies to the first message the hook did not
//! handle, and the rest are offered again afterwards, so hook order and pg-gateway's
//! per-message semantics hold.

mod builtins;
mod close;
mod config;
mod encryption;
#[cfg(test)]
mod flow_tests;
mod hooks;
mod offer;
pub mod query;
#[cfg(test)]
mod query_tests;
mod state;
#[cfg(test)]
mod tests;
mod timers;
#[cfg(test)]
mod tls_tests;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

pub use crate::auth::Credentials;
pub use close::CloseReason;
pub use config::{HookSet, Secrets, SessionConfig, TlsSettings};
pub use hooks::{HookAnswer, HookKind, HookRequest, HookResult, ScramAnswer};
pub use state::{ClientInfo, State, TlsInfo};
use timers::STALL_DEADLINE_STEP;
pub use timers::{CLOSE_LINGER, HOOK_GRACE_AFTER_EOF, OUTPUT_HIGH_WATER, READ_AHEAD_LIMIT};

use crate::auth::{PasswordExchange, ScramExchange};
use crate::protocol::{backend, PgError, Severity, SqlState};
use timers::{Backlog, Timers};

/// What the driver must do next. Whatever [`Session::take_output`] returns goes out first.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do until an input arrives: bytes (read only while [`Session::wants_input`]),
    /// a hook's answer, the deadline of [`Session::poll_timeout`], or a new backlog report.
    Wait,
    /// Run this hook and pass its answer to [`Session::hook_done`]. The session waits for it
    /// (polling meanwhile returns `Wait`), but it still takes bytes, EOF and time.
    Hook(HookRequest),
    /// Send what is pending, then close (FIN). Go on reporting the backlog until it is sent:
    /// a client that takes none of it turns this into `Abort` at the write deadline.
    Close,
    /// Drop what is pending and close now.
    Abort,
}

/// Where the conversation is. Each phase holds the data only it needs.
#[derive(Debug)]
enum Phase {
    /// Waiting for SSLRequest / GSSENCRequest / CancelRequest / StartupMessage. Each encryption
    /// request is answered once.
    Startup {
        ssl_tried: bool,
        gss_tried: bool,
    },
    /// The StartupMessage was accepted; authentication runs.
    Authenticating(Authentication),
    /// Authentication is over: the session answers messages no hook handled.
    Ready {
        by: AuthenticatedBy,
        /// After an error in the extended protocol, discard messages until Sync.
        skip_to_sync: bool,
    },
    /// `detach()` took the connection over: the session only seals and opens TLS records now.
    Detached,
    Closed(CloseReason),
}

#[derive(Debug)]
enum Authentication {
    /// `onStartup` runs first.
    Starting,
    /// A password exchange waits for the client's answer or for `validateCredentials`.
    Password(PasswordExchange),
    /// A SCRAM exchange waits for the client's next SASL message or for `getScramSecret`.
    Scram(Box<ScramExchange>),
}

/// Who ended the authentication phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthenticatedBy {
    /// The built-in exchange (`state.isAuthenticated` is true).
    Session,
    /// A hook answered the startup itself (`onStartup` returned true, `onMessage` handled the
    /// StartupMessage, or a hook sent AuthenticationOk): authentication is the user's code's,
    /// so no deadline applies and messages may be as large as after authentication.
    /// `client_info` is false when `onMessage` consumed the StartupMessage (pg-gateway 0.2.4
    /// then knows no client, and the built-ins refuse what reaches them).
    Hook { client_info: bool },
}

#[derive(Debug)]
enum Pending {
    Messages { ends: Vec<usize> },
    Startup,
    Validate,
    ScramSecret,
    Authenticated,
    TlsConfig,
    TlsUpgrade,
    Query,
    Describe,
}

pub struct Session {
    config: Arc<SessionConfig>,
    secrets: Secrets,
    phase: Phase,
    state: State,
    /// Bumped whenever `state` changes, so drivers can publish it only then.
    state_version: u32,
    /// Plaintext received and not yet processed.
    input: BytesMut,
    /// Plaintext to send.
    output: BytesMut,
    /// Wire bytes received that TLS has not consumed yet.
    raw_in: BytesMut,
    /// Wire bytes ready for the socket.
    wire_out: BytesMut,
    tls: encryption::TlsState,
    /// The server name of the ClientHello, once read.
    tls_sni: Option<String>,
    /// The client closed its side: what is incomplete will never arrive.
    eof: bool,
    /// The hook whose answer we are waiting for.
    pending: Option<Pending>,
    /// A hook the built-ins decided to run next (e.g. `onAuthenticated`).
    queued: Option<HookRequest>,
    /// The first message in `input` already went through `onMessage`, which did not handle it.
    front_offered: bool,
    /// The server is shutting down: end with 57P01 once no hook runs (or at the deadline).
    shutting_down: bool,
    timers: Timers,
    backlog: Backlog,
    /// A CancelRequest this connection carried, for the driver to deliver.
    cancel_request: Option<CancelRequest>,
    /// With `onQuery`: prepared statements and portals (made on the first query message).
    queries: Option<Box<query::QueryState>>,
    /// Why the connection failed where the client cannot be told (a TLS handshake), for the
    /// operator (`onError`).
    problem: Option<String>,
    /// Authentication failed (the counters of `server.stats()`).
    auth_failed: bool,
    /// The FATAL error that ended the session, if one did: SQLSTATE and message (for the log).
    fatal_sent: Option<(Cow<'static, str>, String)>,
}

/// A CancelRequest as received: the process id and secret key of the connection to cancel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    pub process_id: i32,
    pub secret_key: Vec<u8>,
}

impl Session {
    /// A session for a connection accepted at `now` (the authentication deadline runs from it).
    pub fn new(config: Arc<SessionConfig>, secrets: Secrets, now: Instant) -> Self {
        let mut timers = Timers::default();
        timers.set_auth(Some(now + config.auth_timeout));
        Self {
            config,
            secrets,
            phase: Phase::Startup { ssl_tried: false, gss_tried: false },
            state: State::default(),
            state_version: 0,
            // Buffers grow on demand: an idle connection should cost little memory.
            input: BytesMut::new(),
            output: BytesMut::new(),
            raw_in: BytesMut::new(),
            wire_out: BytesMut::new(),
            tls: encryption::TlsState::Plain,
            tls_sni: None,
            eof: false,
            pending: None,
            queued: None,
            front_offered: false,
            shutting_down: false,
            timers,
            backlog: Backlog::default(),
            cancel_request: None,
            queries: None,
            problem: None,
            auth_failed: false,
            fatal_sent: None,
        }
    }

    /// Whether authentication failed (wrong password, refused certificate, unknown user).
    pub fn auth_failed(&self) -> bool {
        self.auth_failed
    }

    /// Whether a TLS handshake completed.
    pub fn tls_established(&self) -> bool {
        self.state.tls_info.is_some()
    }

    /// The FATAL error the session sent before it ended (SQLSTATE, message), if any.
    pub fn fatal_sent(&self) -> Option<(&str, &str)> {
        self.fatal_sent.as_ref().map(|(code, message)| (code.as_ref(), message.as_str()))
    }

    /// Why the connection failed, if the client could not be told (see `problem`); once.
    pub fn take_problem(&mut self) -> Option<String> {
        self.problem.take()
    }

    // ---- inputs ----

    /// Where the driver puts bytes received from the wire; read at most [`Self::read_limit`].
    pub fn input_mut(&mut self) -> &mut BytesMut {
        if self.tls_is_plain() {
            &mut self.input
        } else {
            &mut self.raw_in
        }
    }

    /// Appends bytes received from the wire (for drivers that do not read into
    /// [`Self::input_mut`]). Once the session has ended they are dropped: a driver may keep
    /// reading until the client closes too (so that our last answer is not cut by a reset).
    pub fn receive(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed(_)) {
            self.input_mut().extend_from_slice(bytes);
        }
    }

    /// The peer closed its side. A hook still running is abandoned: the connection ends once
    /// what is already queued is sent (as a Node socket without `allowHalfOpen` would).
    pub fn receive_eof(&mut self, now: Instant) {
        self.eof = true;
        if self.pending.is_some() {
            // A half-closed client still gets the answer of what it sent, as from PostgreSQL;
            // a hook that does not settle in time must not keep a departed client's socket.
            self.timers.set_orphan(Some(now + HOOK_GRACE_AFTER_EOF));
        }
    }

    /// Hands the session the answer of the hook its last [`Step::Hook`] asked for. An answer
    /// that comes after the session stopped waiting (closed, detached) is ignored.
    pub fn hook_done(&mut self, result: HookResult) {
        let Some(pending) = self.pending.take() else { return };
        self.timers.set_orphan(None);
        match (pending, result) {
            (Pending::Messages { ends }, HookResult::Messages { handled, paused, error }) => {
                self.messages_done(&ends, handled, paused, error);
            }
            (Pending::Messages { ends }, HookResult::Failed(err)) => self.messages_done(&ends, 0, false, Some(err)),
            (Pending::Startup, HookResult::Bool(true)) => {
                self.authenticated_by(AuthenticatedBy::Hook { client_info: true })
            }
            (Pending::Startup, HookResult::Bool(false) | HookResult::Done) => self.begin_auth(),
            (Pending::Validate, HookResult::Bool(valid)) => self.credentials_verdict(valid),
            (Pending::ScramSecret, HookResult::ScramSecret(found)) => self.scram_secret(found),
            (Pending::Authenticated | Pending::TlsUpgrade, HookResult::Done | HookResult::Bool(_)) => {}
            (Pending::TlsConfig, HookResult::Tls(server)) => self.tls_configured(server),
            (Pending::Query, HookResult::Query(outcome)) => self.query_done(outcome),
            (Pending::Query, HookResult::Failed(err)) => {
                self.query_done(query::QueryOutcome { error: Some(err), ..Default::default() })
            }
            (Pending::Describe, HookResult::Described(description)) => self.describe_done(Ok(description)),
            (Pending::Describe, HookResult::Failed(err)) => self.describe_done(Err(err)),
            // No configuration: the handshake cannot finish, and nothing can be said in the
            // clear to a client that is speaking TLS.
            (Pending::TlsConfig, HookResult::Failed(_)) => self.close_tls_failed(),
            (_, HookResult::Failed(err)) => self.fail(fatal(err)),
            (_, other) => self.fail(PgError::fatal(
                SqlState::INTERNAL_ERROR,
                format!("hook returned an unexpected result: {other:?}"),
            )),
        }
    }

    /// Queues plaintext from JS (`sendData`), in order with the session's own output.
    pub fn send(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed(reason) if reason.aborts()) {
            self.output.extend_from_slice(bytes);
        }
    }

    /// A hook sent AuthenticationOk itself (`sendAuthenticationOk()`): authentication is over,
    /// and the user's code owns it.
    pub fn authenticated_by_hook(&mut self) {
        if matches!(self.phase, Phase::Authenticating(_)) {
            self.authenticated_by(AuthenticatedBy::Hook { client_info: true });
        }
    }

    /// JS asked to close (`end()`): what is queued goes out, then FIN.
    pub fn end(&mut self) {
        if !matches!(self.phase, Phase::Closed(_)) {
            self.pending = None;
            self.set_phase(Phase::Closed(CloseReason::Closed));
        }
    }

    /// The server is shutting down: end with `FATAL 57P01` as soon as no hook runs, and at
    /// `deadline` whatever runs.
    pub fn shutdown(&mut self, deadline: Instant) {
        if !self.shutting_down {
            self.shutting_down = true;
            self.timers.set_shutdown(Some(deadline));
        }
    }

    /// For `detach()`: the session is finished with the connection, and returns what it
    /// received but did not process. A hook answer that arrives afterwards is ignored.
    pub fn detach(&mut self) -> BytesMut {
        // Records read ahead while a hook ran are still sealed: open them, so that whoever
        // takes over gets all the client sent as plaintext.
        self.pending = None;
        self.queued = None;
        let _ = self.pump_tls();
        self.seal_output();
        self.set_phase(Phase::Detached);
        self.pending = None;
        self.queued = None;
        // Taken whole: a split would leave the session sharing the read buffer for as long as
        // the connection lives on (a proxied one, for hours).
        std::mem::take(&mut self.input)
    }

    /// Acts on the deadlines that have passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.auth.is_some_and(|at| at <= now) {
            self.timers.set_auth(None);
            if matches!(self.phase, Phase::Startup { .. } | Phase::Authenticating(_)) {
                // PostgreSQL closes a stalled startup without a word ("canceling authentication
                // due to timeout" goes to its log only).
                self.abort(CloseReason::Timeout);
            }
        }
        if self.timers.orphan.is_some_and(|at| at <= now) {
            self.timers.set_orphan(None);
            if self.pending.take().is_some() {
                self.queued = None;
                self.set_phase(Phase::Closed(CloseReason::ClientEnded));
            }
        }
        if self.timers.stall.is_some_and(|at| at <= now) {
            self.timers.set_stall(None);
            self.abort(CloseReason::Timeout);
        }
        if self.timers.shutdown.is_some_and(|at| at <= now) {
            self.timers.set_shutdown(None);
            self.pending = None;
            self.queued = None;
            self.terminate_for_shutdown();
        }
    }

    /// The driver's output backlog: `unsent` bytes it holds, `sent` bytes it has sent in all.
    /// Drives backpressure (no reading and no further messages above [`OUTPUT_HIGH_WATER`]) and
    /// the write deadline (`writeTimeout` without any byte taken by the client).
    pub fn handle_backlog(&mut self, now: Instant, unsent: usize, sent: u64) {
        let progressed = sent != self.backlog.sent;
        self.backlog = Backlog { unsent, sent };
        let stall = match self.config.write_timeout {
            Some(timeout) if unsent > 0 => match self.timers.stall {
                // Moved in steps of a second at least: a driver re-arms its timer when the
                // deadline moves, and a busy connection makes progress on every message.
                Some(at) if !progressed || at + STALL_DEADLINE_STEP > now + timeout => Some(at),
                _ => Some(now + timeout),
            },
            _ => None,
        };
        self.timers.set_stall(stall);
    }

    // ---- outputs ----

    /// Advances the state machine as far as it can go without the driver.
    pub fn poll(&mut self) -> Step {
        loop {
            match self.phase {
                Phase::Closed(reason) => return if reason.aborts() { Step::Abort } else { Step::Close },
                Phase::Detached => return Step::Wait,
                _ => {}
            }
            if self.pending.is_some() {
                return Step::Wait;
            }
            if self.shutting_down {
                self.terminate_for_shutdown();
                continue;
            }
            if let Some(request) = self.queued.take() {
                return self.start_hook(request);
            }
            if let Some(step) = self.pump_tls() {
                return step;
            }
            if self.queued.is_some() {
                continue;
            }
            if self.output_backed_up() {
                return Step::Wait;
            }
            let step = if self.state.has_started { self.next_typed() } else { self.next_startup_packet() };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Wire bytes to send, in order. The caller sends them before acting on the next [`Step`].
    pub fn take_output(&mut self) -> BytesMut {
        self.seal_output();
        self.wire_out.split()
    }

    /// Copies the bytes to send into `into` and returns their length, if they fit; otherwise
    /// takes nothing and returns `Err` with the length they need. For drivers that write from
    /// a buffer of their own: the session keeps its buffer (no allocation per answer).
    pub fn take_output_into(&mut self, into: &mut [u8]) -> Result<usize, usize> {
        self.seal_output();
        let len = self.wire_out.len();
        let Some(target) = into.get_mut(..len) else { return Err(len) };
        target.copy_from_slice(&self.wire_out);
        self.wire_out.clear();
        Ok(len)
    }

    /// Where a driver may encode a running query's result itself (rows straight from JS values,
    /// with no buffer in between): what it writes here leaves ahead of what the session answers
    /// when the query is done. Only while a `Query` hook runs.
    pub fn query_result_output(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    pub fn has_output(&self) -> bool {
        !self.wire_out.is_empty()
            || (!self.output.is_empty() && !matches!(self.phase, Phase::Detached))
            || self.tls_wants_write()
    }

    /// Whether the driver should read from the client now: not once it ended or the session is
    /// over, not while output is backed up, and while a hook runs only up to the read-ahead
    /// limit.
    pub fn wants_input(&self) -> bool {
        self.read_limit() > 0
    }

    /// How many bytes the driver may read now (0: none; `usize::MAX`: as many as it likes).
    pub fn read_limit(&self) -> usize {
        if self.eof || matches!(self.phase, Phase::Closed(_) | Phase::Detached) || self.output_backed_up() {
            return 0;
        }
        match self.pending {
            Some(_) => READ_AHEAD_LIMIT.saturating_sub(self.input.len() + self.raw_in.len()),
            None => usize::MAX,
        }
    }

    /// The next deadline; the driver calls [`Self::handle_timeout`] once it has passed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Whether a deadline changed since the last call (for drivers that keep one timer armed).
    pub fn take_timeout_changed(&mut self) -> bool {
        std::mem::take(&mut self.timers.changed)
    }

    /// The CancelRequest this connection carried, once (the driver delivers it through
    /// [`crate::cancel::cancel`]).
    pub fn take_cancel_request(&mut self) -> Option<CancelRequest> {
        self.cancel_request.take()
    }

    /// This connection's BackendKeyData: process id and secret key.
    pub fn backend_key(&self) -> (i32, [u8; 4]) {
        (self.secrets.process_id, self.secrets.secret_key)
    }

    /// The sent-bytes count of the last backlog report.
    pub fn backlog_sent(&self) -> u64 {
        self.backlog.sent
    }

    /// How long a write may wait for the client (for the proxy, which writes on its own).
    pub fn write_timeout(&self) -> Option<std::time::Duration> {
        self.config.write_timeout
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Closed(reason) => Some(reason),
            Phase::Detached => Some(CloseReason::Detached),
            _ => None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_version(&self) -> u32 {
        self.state_version
    }

    /// Frees the buffers that are empty and hold more than `keep` bytes, so an idle connection
    /// holds (almost) nothing; drivers call this before they wait for input. The next read
    /// allocates again: a driver whose connections cost kilobytes anyway (a Node socket) keeps
    /// small buffers, and a small query then allocates nothing.
    pub fn release_idle_buffers(&mut self, keep: usize) {
        for buf in [&mut self.input, &mut self.output, &mut self.raw_in, &mut self.wire_out] {
            // After a split or an advance a buffer reports only the capacity in its view, not
            // the allocation behind it: reclaiming shows a big allocation (which then goes).
            // A view still shared keeps it until the next release, once the other owner is gone.
            if buf.is_empty() && buf.capacity() > 0 && (buf.capacity() > keep || buf.try_reclaim(keep + 1)) {
                *buf = BytesMut::new();
            }
        }
    }

    /// The messages offered to `onMessage`, whole and back to back, while that hook is
    /// pending; empty otherwise.
    pub fn offered(&self) -> &[u8] {
        match &self.pending {
            Some(Pending::Messages { ends }) => &self.input[..ends.last().copied().unwrap_or(0).min(self.input.len())],
            _ => &[],
        }
    }

    // ---- internals ----

    fn set_phase(&mut self, phase: Phase) {
        if !matches!(phase, Phase::Startup { .. } | Phase::Authenticating(_)) {
            self.timers.set_auth(None);
        }
        self.phase = phase;
    }

    /// Whether authentication is over (by the built-ins or by a hook): no auth deadline, and
    /// PostgreSQL's limits for an authenticated session.
    fn past_authentication(&self) -> bool {
        matches!(self.phase, Phase::Ready { .. })
    }

    fn output_backed_up(&self) -> bool {
        self.backlog.unsent + self.output.len() + self.wire_out.len() > OUTPUT_HIGH_WATER
    }

    fn start_hook(&mut self, request: HookRequest) -> Step {
        self.pending = Some(match &request {
            // Messages are offered by `offer`, which sets the pending state itself.
            HookRequest::Messages { .. } => Pending::Messages { ends: Vec::new() },
            HookRequest::Startup => Pending::Startup,
            HookRequest::ValidateCredentials(_) => Pending::Validate,
            HookRequest::ScramSecret { .. } => Pending::ScramSecret,
            HookRequest::Authenticated => Pending::Authenticated,
            HookRequest::TlsConfig { .. } => Pending::TlsConfig,
            HookRequest::TlsUpgrade => Pending::TlsUpgrade,
            HookRequest::Query(_) => Pending::Query,
            HookRequest::Describe(_) => Pending::Describe,
        });
        Step::Hook(request)
    }

    /// More bytes are needed: wait for them, or close if none will come.
    fn need_input(&mut self) -> Step {
        if self.eof {
            // EOF at a message boundary or in the middle of one: either way the client is gone.
            self.set_phase(Phase::Closed(CloseReason::ClientEnded));
            Step::Close
        } else {
            Step::Wait
        }
    }

    /// Sends a FATAL error and ends the session.
    fn fail(&mut self, err: PgError) {
        backend::error_response(&mut self.output, &err);
        self.fatal_sent = Some((err.code, err.message));
        self.set_phase(Phase::Closed(CloseReason::Closed));
    }

    /// Ends the session without a word, as PostgreSQL does for what it reports as COMMERROR.
    fn close_silently(&mut self) {
        self.set_phase(Phase::Closed(CloseReason::Closed));
    }

    /// Ends the session now, dropping output that was not handed out yet.
    fn abort(&mut self, reason: CloseReason) {
        self.pending = None;
        self.queued = None;
        self.output.clear();
        self.set_phase(Phase::Closed(reason));
    }

    fn terminate_for_shutdown(&mut self) {
        self.shutting_down = false;
        self.timers.set_shutdown(None);
        if matches!(self.phase, Phase::Closed(_) | Phase::Detached) {
            return;
        }
        let err = PgError::fatal(SqlState::ADMIN_SHUTDOWN, "terminating connection due to administrator command");
        backend::error_response(&mut self.output, &err);
        self.fatal_sent = Some((err.code, err.message));
        self.set_phase(Phase::Closed(CloseReason::Shutdown));
    }
}

/// Errors during startup and authentication end the connection, whatever severity a hook gave.
fn fatal(err: PgError) -> PgError {
    PgError { severity: Severity::Fatal, ..err }
}
