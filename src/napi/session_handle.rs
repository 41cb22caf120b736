//! The JS-thread driver's view of a session: `index.js` reads the Node socket, feeds the bytes
//! in here, calls the user's hooks directly and writes what comes out. Framing, limits, the
//! startup/auth state machine and the built-in answers are the same Rust code as on the tokio
//! driver; only the thread hop per hook is gone. Every method is safe to call in any order.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::connection::StateSnapshot;
use super::errors::BackendErrorInput;
use super::hooks::HookEvent;
use super::options::{settings, NativeOptions};
use super::tls::TlsOptionsInput;
use crate::protocol::Severity;
use crate::server::ConnectionSettings;
use crate::session::{HookRequest, HookResult, Session, Step};

/// `sessionPoll()` result: what to do next (low 2 bits), [`HAS_OUTPUT`] when there are bytes to
/// send first, and the state version from bit [`VERSION_SHIFT`] up (so JS needs no extra call
/// to know whether its cached state is current).
pub const STEP_NEED_INPUT: u32 = 0;
pub const STEP_HOOK: u32 = 1;
pub const STEP_CLOSE: u32 = 2;
/// Returned by the `session*Done` functions when asked not to poll.
pub const STEP_NONE: u32 = 3;
pub const HAS_OUTPUT: u32 = 4;
/// Set once the connection is encrypted, so JS knows to seal its writes without asking.
pub const IS_TLS: u32 = 8;
/// From `sessionFeed()`: the messages offered to `onMessage` are exactly the bytes just fed, so
/// JS hands its own chunk to the hook instead of fetching a copy with `sessionTakeMessages()`.
pub const OFFERS_FED_BYTES: u32 = 16;
pub const VERSION_SHIFT: u32 = 5;

/// Parsed options, shared by every connection made with the same options object.
#[napi]
pub struct NativeConfig {
    settings: ConnectionSettings,
    request_client_certificate: bool,
}

#[napi]
impl NativeConfig {
    #[napi(constructor)]
    pub fn new(options: NativeOptions) -> Result<Self> {
        let request_client_certificate = options.auth_mode == "certificate";
        Ok(Self { settings: settings(options)?, request_client_certificate })
    }

    /// Milliseconds a client has to finish startup and authentication.
    #[napi(getter)]
    pub fn auth_timeout(&self) -> u32 {
        self.settings.auth_timeout.as_millis().min(u128::from(u32::MAX)) as u32
    }
}

/// One connection's session for the JS-thread driver. JS holds it as an `External` and calls
/// the `session*` functions below: free functions over an External cost about 140 ns a call
/// where methods of a napi class cost about 330 ns (napi-rs checks each `&mut self` against a
/// process-wide borrow registry), and the hot path makes two or three calls per query.
pub struct SessionHandle {
    session: Session,
    request_client_certificate: bool,
    /// The hook `sessionPoll()` asked for, until JS fetches it with `sessionHook()`.
    request: Option<HookRequest>,
}

#[napi]
pub fn session_new(config: &NativeConfig) -> External<SessionHandle> {
    External::new(SessionHandle {
        session: Session::new(config.settings.session.clone(), crate::server::secrets()),
        request_client_certificate: config.request_client_certificate,
        request: None,
    })
}

/// Bytes read from the client.
#[napi]
pub fn session_receive(handle: &mut External<SessionHandle>, data: BufferSlice) {
    handle.session.receive(&data);
}

/// The client closed its side.
#[napi]
pub fn session_receive_eof(handle: &mut External<SessionHandle>) {
    handle.session.receive_eof();
}

/// `sessionReceive()` then `sessionPoll()`, in one call (the per-read hot path). Only call it
/// when no hook is pending.
#[napi]
pub fn session_feed(handle: &mut External<SessionHandle>, data: BufferSlice) -> u32 {
    // The common case of a request/response client: one read is exactly the next
    // message(s), with nothing buffered before it.
    let fresh = !handle.session.is_tls() && handle.session.input_mut().is_empty();
    handle.session.receive(&data);
    let step = poll(handle);
    let offers_fed_bytes = fresh
        && !handle.session.is_tls()
        && matches!(handle.request, Some(HookRequest::Messages { .. }))
        && handle.session.offered().len() == data.len();
    if offers_fed_bytes {
        handle.request = None;
        step | OFFERS_FED_BYTES
    } else {
        step
    }
}

/// Advances the session: `STEP_NEED_INPUT`, `STEP_HOOK` (fetch it with `sessionHook()`) or
/// `STEP_CLOSE`, with `HAS_OUTPUT` set when `sessionTakeOutput()` has bytes to send first.
#[napi]
pub fn session_poll(handle: &mut External<SessionHandle>) -> u32 {
    poll(handle)
}

fn poll(handle: &mut SessionHandle) -> u32 {
    let step = match handle.session.poll() {
        Step::NeedInput => {
            // What an idle connection keeps: nothing.
            handle.session.release_idle_buffers();
            STEP_NEED_INPUT
        }
        Step::Close => STEP_CLOSE,
        Step::Hook(request) => {
            handle.request = Some(request);
            STEP_HOOK
        }
    };
    let step = if handle.session.has_output() { step | HAS_OUTPUT } else { step };
    let step = if handle.session.is_tls() { step | IS_TLS } else { step };
    step | (handle.session.state_version() << VERSION_SHIFT)
}

/// After a hook answered: the next step, or `STEP_NONE` without polling (after `detach()`).
fn then_poll(handle: &mut SessionHandle, poll: Option<bool>) -> u32 {
    if poll.unwrap_or(true) {
        self::poll(handle)
    } else {
        let tls = if handle.session.is_tls() { IS_TLS } else { 0 };
        STEP_NONE | tls | (handle.session.state_version() << VERSION_SHIFT)
    }
}

/// The bytes to send, copied into a JS-owned Buffer (cheaper than an external buffer for
/// the small replies that make up most traffic).
#[napi]
pub fn session_take_output<'env>(
    handle: &mut External<SessionHandle>,
    env: &'env Env,
) -> Result<Option<BufferSlice<'env>>> {
    if !handle.session.has_output() {
        return Ok(None);
    }
    BufferSlice::copy_from(env, handle.session.take_output()).map(Some)
}

/// The fast path for `onMessage`: when `sessionPoll()` asked for the message hook, the messages
/// themselves, back to back and whole (JS walks their length fields), or null if the
/// pending hook is another one (fetch it with `sessionHook()`).
#[napi]
pub fn session_take_messages<'env>(
    handle: &mut External<SessionHandle>,
    env: &'env Env,
) -> Result<Option<BufferSlice<'env>>> {
    match handle.request.take() {
        // The one copy: out of the session's input, into a Buffer JS owns.
        Some(HookRequest::Messages { .. }) => BufferSlice::copy_from(env, handle.session.offered()).map(Some),
        other => {
            handle.request = other;
            Ok(None)
        }
    }
}

/// The hook `sessionPoll()` asked for (`kind` is empty if there is none).
#[napi]
pub fn session_hook(handle: &mut External<SessionHandle>) -> HookEvent {
    let version = handle.session.state_version();
    match handle.request.take() {
        Some(HookRequest::Messages { .. }) => {
            let mut event = HookEvent::new(0, "message", version);
            event.data = Some(handle.session.offered().to_vec().into());
            event
        }
        Some(HookRequest::Startup) => HookEvent::new(0, "startup", version),
        Some(HookRequest::Authenticated) => HookEvent::new(0, "authenticated", version),
        Some(HookRequest::TlsUpgrade) => HookEvent::new(0, "tlsUpgrade", version),
        Some(HookRequest::TlsConfig { sni_server_name }) => {
            let mut event = HookEvent::new(0, "tls", version);
            event.sni_server_name = sni_server_name;
            event
        }
        Some(HookRequest::ValidateCredentials(credentials)) => HookEvent::validate(0, version, credentials),
        None => HookEvent::new(0, "", version),
    }
}

/// `onMessage` handled the first `handled` messages; `error` is what the next one threw.
#[napi]
pub fn session_messages_done(
    handle: &mut External<SessionHandle>,
    handled: u32,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
) -> u32 {
    let error = error.map(|e| e.into_pg_error(Severity::Error));
    handle.session.hook_done(HookResult::Messages { handled: handled as usize, error });
    then_poll(handle, poll)
}

/// A boolean hook (`onStartup`, `validateCredentials`) answered, or threw.
#[napi]
pub fn session_bool_done(
    handle: &mut External<SessionHandle>,
    value: bool,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
) -> u32 {
    handle.session.hook_done(match error {
        Some(e) => HookResult::Failed(e.into_pg_error(Severity::Error)),
        None => HookResult::Bool(value),
    });
    then_poll(handle, poll)
}

/// A hook whose value is ignored (`onAuthenticated`) finished, or threw.
#[napi]
pub fn session_void_done(
    handle: &mut External<SessionHandle>,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
) -> u32 {
    handle.session.hook_done(match error {
        Some(e) => HookResult::Failed(e.into_pg_error(Severity::Error)),
        None => HookResult::Done,
    });
    then_poll(handle, poll)
}

/// The `tls` callback returned options (or threw).
#[napi]
pub fn session_tls_done(
    handle: &mut External<SessionHandle>,
    options: Option<TlsOptionsInput>,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
) -> u32 {
    let result = match error {
        Some(e) => HookResult::Failed(e.into_pg_error(Severity::Fatal)),
        None => super::hooks::tls_result(options.as_ref(), handle.request_client_certificate),
    };
    handle.session.hook_done(result);
    then_poll(handle, poll)
}

/// Whether the connection is encrypted (TLS is up or being negotiated).
#[napi]
pub fn session_is_tls(handle: &External<SessionHandle>) -> bool {
    handle.session.is_tls()
}

/// After `detach()` on a TLS connection: plaintext for the client, as TLS records.
#[napi]
pub fn session_seal<'env>(
    handle: &mut External<SessionHandle>,
    env: &'env Env,
    plaintext: BufferSlice,
) -> Result<BufferSlice<'env>> {
    let wire = handle.session.seal(&plaintext);
    BufferSlice::copy_from(env, wire)
}

/// After `detach()` on a TLS connection: what the client sent, decrypted; null once the
/// TLS connection has ended or failed.
#[napi]
pub fn session_open<'env>(
    handle: &mut External<SessionHandle>,
    env: &'env Env,
    wire: BufferSlice,
) -> Result<Option<BufferSlice<'env>>> {
    match handle.session.open(&wire) {
        Some(plaintext) => BufferSlice::copy_from(env, plaintext).map(Some),
        None => Ok(None),
    }
}

/// After `detach()` on a TLS connection: close_notify (and anything still pending).
#[napi]
pub fn session_seal_close<'env>(handle: &mut External<SessionHandle>, env: &'env Env) -> Result<BufferSlice<'env>> {
    let wire = handle.session.seal_close();
    BufferSlice::copy_from(env, wire)
}

#[napi]
pub fn session_state(handle: &External<SessionHandle>) -> StateSnapshot {
    StateSnapshot::new(handle.session.state_version(), handle.session.state())
}

#[napi]
pub fn session_is_authenticated(handle: &External<SessionHandle>) -> bool {
    handle.session.state().is_authenticated
}

/// For `detach()`: what was received but not processed. The session is over afterwards.
#[napi]
pub fn session_take_unprocessed_input(handle: &mut External<SessionHandle>) -> Buffer {
    handle.request = None;
    handle.session.take_unprocessed_input().to_vec().into()
}

/// Encoders for `sendError` and friends on connections whose socket JS owns.
#[napi]
pub fn encode_error_response(error: BackendErrorInput) -> Buffer {
    let mut out = bytes::BytesMut::new();
    crate::protocol::backend::error_response(&mut out, &error.into_pg_error(Severity::Error));
    out.to_vec().into()
}
