//! One connection's state machine, sans-IO. The driver (`server::conn`, or later a JS-thread
//! driver) feeds it bytes with [`Session::input_mut`], asks [`Session::poll`] what to do next,
//! runs the hook it names and hands the answer back with [`Session::hook_done`], and sends
//! whatever [`Session::take_output`] returns. The session never touches a socket or a clock.
//!
//! Phases: startup packets -> authentication -> ready -> closed. Every message first goes to
//! the `onMessage` hook (when defined), in batches of all complete messages already received;
//! the built-in behaviour applies to the first message the hook did not handle, and the rest
//! are offered again afterwards, so hook order and pg-gateway's per-message semantics hold.

mod builtins;
mod config;
mod encryption;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use bytes::{Buf, BytesMut};

pub use config::{HookSet, Secrets, SessionConfig, TlsSettings};
pub use state::{ClientInfo, State, TlsInfo};

use crate::auth::AuthMode;
use crate::protocol::{backend, frame, DecodeError, PgError, Severity};

/// At most this many messages go to JS in one `onMessage` crossing.
const MAX_BATCH: usize = 1024;

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send pending output, then read more bytes (or report EOF).
    NeedInput,
    /// Send pending output, run this hook, and pass its result to [`Session::hook_done`].
    Hook(HookRequest),
    /// Send pending output, then close the connection.
    Close,
}

/// A hook the session wants to run.
#[derive(Debug, PartialEq, Eq)]
pub enum HookRequest {
    /// `onMessage` for each of `count` whole messages, back to back in [`Session::offered`].
    Messages { count: usize },
    /// `onStartup(state)`.
    Startup,
    /// `validateCredentials(credentials, state)`.
    ValidateCredentials(Credentials),
    /// `onAuthenticated(state)`.
    Authenticated,
    /// The `tls` callback: choose a configuration for this server name.
    TlsConfig { sni_server_name: Option<String> },
    /// `onTlsUpgrade(state)`, after the handshake and before the StartupMessage.
    TlsUpgrade,
}

/// Credentials as pg-gateway's `validateCredentials` receives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Cleartext { user: String, password: String },
    Md5 { user: String, hash: String, salt: [u8; 4] },
}

/// What a hook answered.
#[derive(Debug)]
pub enum HookResult {
    /// For `Messages`: how many leading messages were handled, and the error of the message
    /// after them if its hook threw (that message then counts as consumed).
    Messages { handled: usize, error: Option<PgError> },
    /// For `Startup` (true = handled) and `ValidateCredentials` (true = valid).
    Bool(bool),
    /// For hooks whose value is ignored.
    Done,
    /// For `TlsConfig`: the configuration to finish the handshake with.
    Tls(std::sync::Arc<crate::tls::TlsServer>),
    /// The hook threw or rejected.
    Failed(PgError),
}

#[derive(Debug)]
enum Phase {
    /// Waiting for SSLRequest / GSSENCRequest / CancelRequest / StartupMessage.
    Startup,
    /// `onMessage` handled the startup packet itself: pg-gateway switches to typed framing
    /// but has no client info, so the built-ins refuse anything that reaches them.
    StartedByHook,
    Authenticating(AuthMode),
    Ready,
    Closed,
}

#[derive(Debug)]
enum Pending {
    Messages { ends: Vec<usize> },
    Startup,
    Validate,
    Authenticated,
    TlsConfig,
    TlsUpgrade,
}

pub struct Session {
    config: std::sync::Arc<SessionConfig>,
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
    /// `detach()` took the connection over: the session only seals and opens TLS records now.
    detached: bool,
    eof: bool,
    /// The hook whose answer we are waiting for.
    pending: Option<Pending>,
    /// A hook the built-ins decided to run next (e.g. `onAuthenticated`).
    queued: Option<HookRequest>,
    /// The first message in `input` already went through `onMessage`, which did not handle it.
    front_offered: bool,
    /// After an error in the extended protocol, discard messages until Sync.
    skip_to_sync: bool,
    ssl_tried: bool,
    gss_tried: bool,
    /// The client ended the conversation (EOF or Terminate), as opposed to us ending it.
    client_ended: bool,
}

impl Session {
    pub fn new(config: std::sync::Arc<SessionConfig>, secrets: Secrets) -> Self {
        Self {
            config,
            secrets,
            phase: Phase::Startup,
            state: State::default(),
            state_version: 0,
            // Buffers grow on demand: an idle connection should cost little memory.
            input: BytesMut::new(),
            output: BytesMut::new(),
            raw_in: BytesMut::new(),
            wire_out: BytesMut::new(),
            tls: encryption::TlsState::Plain,
            tls_sni: None,
            detached: false,
            eof: false,
            pending: None,
            queued: None,
            front_offered: false,
            skip_to_sync: false,
            ssl_tried: false,
            gss_tried: false,
            client_ended: false,
        }
    }

    /// Where the driver puts bytes received from the wire.
    pub fn input_mut(&mut self) -> &mut BytesMut {
        if self.tls_is_plain() {
            &mut self.input
        } else {
            &mut self.raw_in
        }
    }

    /// Frees the buffers that are empty, so an idle connection holds none; drivers call this
    /// before they wait for input. Cheap: the next read allocates again.
    pub fn release_idle_buffers(&mut self) {
        for buf in [&mut self.input, &mut self.output, &mut self.raw_in, &mut self.wire_out] {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
        }
    }

    /// Appends bytes received from the wire (for drivers that do not read into
    /// [`Self::input_mut`]).
    pub fn receive(&mut self, bytes: &[u8]) {
        self.input_mut().extend_from_slice(bytes);
    }

    /// The peer closed its side; whatever is incomplete will never arrive.
    pub fn receive_eof(&mut self) {
        self.eof = true;
        self.client_ended = true;
    }

    /// Whether the session ended because the client did (EOF or Terminate).
    pub fn ended_by_client(&self) -> bool {
        self.client_ended
    }

    /// Wire bytes to send, in order. The caller sends them before acting on the next [`Step`].
    pub fn take_output(&mut self) -> BytesMut {
        self.seal_output();
        self.wire_out.split()
    }

    pub fn has_output(&self) -> bool {
        !self.wire_out.is_empty() || (!self.output.is_empty() && !self.detached) || self.tls_wants_write()
    }

    /// Queues plaintext from JS (`sendData`), in order with the session's own output.
    pub fn send(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_version(&self) -> u32 {
        self.state_version
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Bytes received but not processed; the session is finished with the connection after
    /// this (used by `detach()`). A hook result that arrives afterwards is ignored.
    pub fn take_unprocessed_input(&mut self) -> BytesMut {
        self.seal_output();
        self.detached = true;
        self.phase = Phase::Closed;
        self.pending = None;
        self.queued = None;
        // Taken whole: a split would leave the session sharing the read buffer for as long as
        // the connection lives on (a proxied one, for hours).
        std::mem::take(&mut self.input)
    }

    /// Ends the session from outside (server shutdown, timeout): sends `err` if given.
    pub fn terminate(&mut self, err: Option<PgError>) {
        if let Some(err) = err {
            backend::error_response(&mut self.output, &err);
        }
        self.phase = Phase::Closed;
    }

    /// Advances the state machine as far as it can go without the driver.
    pub fn poll(&mut self) -> Step {
        if self.pending.is_some() {
            // A driver bug, not a peer's doing: refuse to go on rather than reorder messages.
            self.terminate(Some(PgError::fatal(crate::protocol::SqlState::INTERNAL_ERROR, "hook result missing")));
            return Step::Close;
        }
        loop {
            if let Some(request) = self.queued.take() {
                return self.start_hook(request);
            }
            if matches!(self.phase, Phase::Closed) {
                return Step::Close;
            }
            if let Some(step) = self.pump_tls() {
                return step;
            }
            if self.queued.is_some() {
                continue;
            }
            let step = if self.state.has_started { self.next_typed() } else { self.next_startup_packet() };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Hands the session the answer of the hook its last [`Step::Hook`] asked for.
    pub fn hook_done(&mut self, result: HookResult) {
        let Some(pending) = self.pending.take() else { return };
        match (pending, result) {
            (Pending::Messages { ends }, HookResult::Messages { handled, error }) => {
                self.messages_done(&ends, handled, error);
            }
            (Pending::Startup, HookResult::Bool(true)) => {}
            (Pending::Startup, HookResult::Bool(false) | HookResult::Done) => self.begin_auth(),
            (Pending::Validate, HookResult::Bool(valid)) => {
                if valid {
                    self.complete_auth();
                } else {
                    self.auth_failed();
                }
            }
            (Pending::Authenticated | Pending::TlsUpgrade, HookResult::Done | HookResult::Bool(_)) => {}
            (Pending::TlsConfig, HookResult::Tls(server)) => self.tls_configured(server),
            (Pending::TlsConfig, HookResult::Failed(err)) => {
                // No configuration: the handshake cannot finish, and nothing can be said in
                // the clear to a client that is speaking TLS.
                let _ = err;
                self.tls = encryption::TlsState::Failed;
                self.phase = Phase::Closed;
            }
            (Pending::Messages { ends }, HookResult::Failed(err)) => self.messages_done(&ends, 0, Some(err)),
            (_, HookResult::Failed(err)) => self.fail(fatal(err)),
            (_, other) => self.fail(PgError::fatal(
                crate::protocol::SqlState::INTERNAL_ERROR,
                format!("hook returned an unexpected result: {other:?}"),
            )),
        }
    }

    fn start_hook(&mut self, request: HookRequest) -> Step {
        self.pending = Some(match &request {
            // Messages are offered by `offer`, which sets the pending state itself.
            HookRequest::Messages { .. } => Pending::Messages { ends: Vec::new() },
            HookRequest::Startup => Pending::Startup,
            HookRequest::ValidateCredentials(_) => Pending::Validate,
            HookRequest::Authenticated => Pending::Authenticated,
            HookRequest::TlsConfig { .. } => Pending::TlsConfig,
            HookRequest::TlsUpgrade => Pending::TlsUpgrade,
        });
        Step::Hook(request)
    }

    fn need_input(&mut self) -> Step {
        if self.eof {
            // EOF at a message boundary or in the middle of one: either way the client is gone.
            self.phase = Phase::Closed;
            Step::Close
        } else {
            Step::NeedInput
        }
    }

    /// Offers the first messages of `input` (ending at `ends`) to `onMessage`. Nothing is
    /// copied: drivers read them from [`Self::offered`] while the hook is pending.
    fn offer(&mut self, ends: Vec<usize>) -> Step {
        let count = ends.len();
        self.pending = Some(Pending::Messages { ends });
        Step::Hook(HookRequest::Messages { count })
    }

    /// The messages offered to `onMessage`, whole and back to back, while that hook is
    /// pending; empty otherwise.
    pub fn offered(&self) -> &[u8] {
        match &self.pending {
            Some(Pending::Messages { ends }) => &self.input[..ends.last().copied().unwrap_or(0).min(self.input.len())],
            _ => &[],
        }
    }

    fn next_startup_packet(&mut self) -> Option<Step> {
        // Direct TLS (PostgreSQL 17 `sslnegotiation=direct`): a ClientHello (0x16) instead of
        // a startup packet, whose first byte would be the top of a length and so always 0.
        if self.config.tls.is_some() && self.tls_is_plain() && !self.ssl_tried && self.input.first() == Some(&0x16) {
            self.start_tls(true);
            return None;
        }
        let len = match frame::startup_frame_len(&self.input) {
            Err(err) => return self.fail_decode(err),
            Ok(None) => return Some(self.need_input()),
            Ok(Some(len)) => len,
        };
        if self.config.hooks.on_message && !self.front_offered {
            return Some(self.offer(vec![len]));
        }
        self.front_offered = false;
        let packet = self.input.split_to(len);
        self.startup_packet(&packet);
        None
    }

    fn next_typed(&mut self) -> Option<Step> {
        let authenticated = self.state.is_authenticated;
        let limits = self.config.limits;
        let max_len = |tag| limits.max_len(tag, authenticated);
        let first = match frame::typed_frame_len(&self.input, max_len) {
            Err(err) => return self.fail_decode(err),
            Ok(None) => return Some(self.need_input()),
            Ok(Some(len)) => len,
        };
        if self.config.hooks.on_message && !self.front_offered {
            let mut ends = vec![first];
            let mut end = first;
            // Later frames join the batch only if complete and valid now; anything else is
            // judged when it reaches the front, in whatever phase the session is in by then.
            while ends.len() < MAX_BATCH {
                match frame::typed_frame_len(&self.input[end..], max_len) {
                    Ok(Some(len)) => {
                        end += len;
                        ends.push(end);
                    }
                    _ => break,
                }
            }
            return Some(self.offer(ends));
        }
        self.front_offered = false;
        let message = self.input.split_to(first);
        self.typed_message(&message);
        None
    }

    fn messages_done(&mut self, ends: &[usize], handled: usize, error: Option<PgError>) {
        let handled = handled.min(ends.len());
        let failed = error.is_some() && handled < ends.len();
        let consumed = handled + usize::from(failed);
        let start_of = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
        let failed_tag = if failed { self.input.get(start_of(handled)).copied() } else { None };
        if consumed > 0 && !self.state.has_started {
            // pg-gateway 0.2.4: a startup packet handled by `onMessage` still switches framing
            // to typed messages, except for SSLRequest.
            let code = crate::protocol::startup::SSL_REQUEST_CODE.to_be_bytes();
            if self.input.get(4..8) != Some(&code[..]) {
                self.state.has_started = true;
                self.phase = Phase::StartedByHook;
                self.state_version += 1;
            }
        }
        if consumed > 0 {
            // Clamped: a detach() during the hook may already have taken the input.
            let consumed_bytes = start_of(consumed).min(self.input.len());
            self.input.advance(consumed_bytes);
        }
        if handled < ends.len() && error.is_none() {
            self.front_offered = true;
        }
        if let Some(err) = error {
            self.hook_error_after_message(err, failed_tag);
        }
    }

    /// A hook threw while handling a message: FATAL before authentication; after it, the
    /// error and what the protocol needs so the client is not left waiting.
    fn hook_error_after_message(&mut self, err: PgError, tag: Option<u8>) {
        if !self.state.is_authenticated || err.severity.ends_session() {
            return self.fail(fatal(err));
        }
        let err = if err.severity == Severity::Error { err } else { PgError { severity: Severity::Error, ..err } };
        backend::error_response(&mut self.output, &err);
        match tag {
            Some(tag) if crate::protocol::FrontendMessage::is_extended(tag) => self.skip_to_sync = true,
            _ => backend::ready_for_query(&mut self.output, backend::TransactionStatus::Idle),
        }
    }

    fn fail_decode(&mut self, err: DecodeError) -> Option<Step> {
        self.fail(err.into());
        None
    }

    /// Sends a FATAL error and ends the session.
    fn fail(&mut self, err: PgError) {
        backend::error_response(&mut self.output, &err);
        self.phase = Phase::Closed;
    }
}

/// Errors during startup and authentication end the connection, whatever severity a hook gave.
fn fatal(err: PgError) -> PgError {
    PgError { severity: Severity::Fatal, ..err }
}
