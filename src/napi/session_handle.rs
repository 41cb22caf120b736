//! The JS-thread driver's view of a session: `lib/js-driver.js` reads the Node socket, feeds
//! the bytes in here, calls the user's hooks directly and writes what comes out. Framing,
//! limits, the startup/auth state machine, deadlines, backpressure and the built-in answers are
//! the same Rust code as on the tokio driver; only the thread hop per hook is gone. Every
//! function is safe to call in any order. The current time is read here, on the driver's side
//! of the session.

use std::sync::Arc;
use std::time::Instant;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::connection::StateSnapshot;
use super::errors::BackendErrorInput;
use super::hooks::{HookEvent, HookReply, LogFields};
use super::options::{settings, NativeOptions};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use crate::protocol::key_rewrite::KeyRewriter;
use crate::protocol::Severity;
use crate::server::LogEvent;
use crate::session::query::QueryMode;
use crate::session::{CloseReason, HookAnswer, HookKind, HookRequest, HookResult, Session, SessionConfig, Step};

// Step codes: what to do next in the low bits (`STEP_MASK`), flags above, and the state version
// from bit `VERSION_SHIFT` up (so JS needs no extra call to know whether its cached state is
// current). Exported, so `lib/js-driver.js` reads them from here instead of repeating them.
#[napi]
pub const STEP_WAIT: u32 = 0;
#[napi]
pub const STEP_HOOK: u32 = 1;
#[napi]
pub const STEP_CLOSE: u32 = 2;
#[napi]
pub const STEP_ABORT: u32 = 3;
/// Returned by the done-functions when asked not to poll.
#[napi]
pub const STEP_NONE: u32 = 4;
/// From `sessionFeed()` only, with `OFFERS_FED_BYTES`: `onQuery` for a simple Query that is
/// exactly the bytes just fed, so JS reads its SQL from them (the one hook every statement of
/// a request/response workload runs: no call and no event object to fetch it).
#[napi]
pub const STEP_SIMPLE_QUERY: u32 = 5;
/// `onQuery` for a statement: fetch it with `sessionQueryCall()`, in scalars rather than an
/// event object.
#[napi]
pub const STEP_QUERY: u32 = 6;
#[napi]
pub const STEP_MASK: u32 = 7;
/// `sessionTakeOutput()` has bytes to send first.
#[napi]
pub const HAS_OUTPUT: u32 = 8;
/// The connection is encrypted, so JS seals its writes without asking.
#[napi]
pub const IS_TLS: u32 = 16;
/// From `sessionFeed()`: the messages offered to `onMessage` are exactly the bytes just fed, so
/// JS hands its own chunk to the hook instead of fetching a copy with `sessionTakeMessages()`
/// (with `STEP_SIMPLE_QUERY`: the Query is those bytes, and JS reads its SQL from them).
#[napi]
pub const OFFERS_FED_BYTES: u32 = 32;
/// The session wants bytes: keep the socket flowing (pause it otherwise).
#[napi]
pub const WANTS_INPUT: u32 = 64;
/// A deadline changed: re-arm the timer from `sessionTimeout()`.
#[napi]
pub const TIMER_CHANGED: u32 = 128;
#[napi]
pub const VERSION_SHIFT: u32 = 8;

// What `sessionQueryCall()` writes into the `Uint32Array` it is given.
/// The mode: 0 simple, 1 describe (a portal), 2 execute, 3 describe and execute.
#[napi]
pub const QUERY_REG_MODE: u32 = 0;
/// The portal's cursor id.
#[napi]
pub const QUERY_REG_CURSOR: u32 = 1;
/// Execute's row limit (0: none).
#[napi]
pub const QUERY_REG_MAX_ROWS: u32 = 2;
/// `QUERY_RESUME`, `QUERY_HAS_DETAILS`.
#[napi]
pub const QUERY_REG_FLAGS: u32 = 3;
/// How many dropped cursor ids follow from `QUERY_REG_DROPPED` (the rest, if more, are in the
/// details).
#[napi]
pub const QUERY_REG_DROPPED_COUNT: u32 = 4;
#[napi]
pub const QUERY_REG_DROPPED: u32 = 5;
/// The length the array must have.
#[napi]
pub const QUERY_REGISTERS: u32 = 16;
/// JS holds this cursor's result already.
#[napi]
pub const QUERY_RESUME: u32 = 1;
/// Parameters, result formats, expected column types or more dropped cursors: fetch them with
/// `sessionQueryDetails()`.
#[napi]
pub const QUERY_HAS_DETAILS: u32 = 2;

/// `sessionQueryRows()` flags: the plan's RowDescription goes before the rows.
#[napi]
pub const QUERY_ROWS_DESCRIBE: u32 = 1;
/// `sessionQueryRows()` flags: the rows argument is the result's one row.
#[napi]
pub const QUERY_ROWS_ONE: u32 = 2;
/// `sessionQueryRows()` flags: the one row's values follow the other arguments.
#[napi]
pub const QUERY_ROWS_VALUES: u32 = 4;
/// The most values `sessionQueryRows()` takes as arguments.
#[napi]
pub const QUERY_ROWS_MAX_VALUES: u32 = super::raw::MAX_VALUE_ARGS as u32;

/// The session's backpressure mark, for the JS side's own checks (`lib/values.js`).
#[napi]
pub const OUTPUT_HIGH_WATER: u32 = crate::session::OUTPUT_HIGH_WATER as u32;

/// How long the JS driver waits for the client to close after our FIN (the session's
/// `CLOSE_LINGER`, which the tokio driver uses too).
#[napi]
pub const LINGER_MS: u32 = crate::session::CLOSE_LINGER.as_millis() as u32;

/// Parsed options, shared by every connection made with the same options object.
#[napi]
pub struct NativeConfig {
    config: std::sync::Arc<SessionConfig>,
    request_client_certificate: bool,
}

#[napi]
impl NativeConfig {
    #[napi(constructor, catch_unwind)]
    pub fn new(options: NativeOptions) -> Result<Self> {
        let request_client_certificate = options.auth_mode == "certificate";
        Ok(Self { config: settings(options)?, request_client_certificate })
    }
}

/// One connection's session for the JS-thread driver. JS holds it as an `External` and calls
/// the `session*` functions below: free functions over an External cost about 140 ns a call
/// where methods of a napi class cost about 330 ns (napi-rs checks each `&mut self` against a
/// process-wide borrow registry), and the hot path makes two or three calls per query.
pub struct SessionHandle {
    session: Session,
    request_client_certificate: bool,
    /// The hook `sessionPoll()` asked for, until JS fetches it.
    request: Option<HookRequest>,
    /// The kind of the hook JS fetched with `sessionHook()`, for its answer.
    running: Option<HookKind>,
    /// The statement `sessionQueryCall()` announced, until JS fetches its details.
    query_details: Option<Box<crate::session::query::QueryCall>>,
    /// The connection's cancel key, until `sessionRelease()` (the socket closed).
    registration: Option<crate::cancel::Registration>,
    /// After `proxy()`: rewrites the upstream's BackendKeyData (see `sessionUpstreamData`).
    upstream_keys: Option<(KeyRewriter, String, u16)>,
}

#[napi(catch_unwind)]
pub fn session_new(config: &NativeConfig) -> External<SessionHandle> {
    let mut secrets = crate::server::secrets();
    let registration = crate::cancel::Registration::new(&mut secrets);
    if config.config.hooks.on_cancel || config.config.hooks.on_query {
        if let Some(dispatch) = CANCEL_DISPATCH.with(|slot| slot.borrow().clone()) {
            registration.set_target(Arc::new(JsCancel { process_id: registration.process_id(), dispatch }));
        }
    }
    External::new(SessionHandle {
        session: Session::new(config.config.clone(), secrets, Instant::now()),
        request_client_certificate: config.request_client_certificate,
        request: None,
        running: None,
        query_details: None,
        registration: Some(registration),
        upstream_keys: None,
    })
}

/// The process id of this connection's BackendKeyData (JS routes `onCancel` by it).
#[napi(catch_unwind)]
pub fn session_process_id(handle: &External<SessionHandle>) -> i32 {
    handle.session.backend_key().0
}

/// The connection is gone for good (its socket closed, detached or not): its process id is
/// free again.
#[napi(catch_unwind)]
pub fn session_release(handle: &mut External<SessionHandle>) {
    handle.registration = None;
}

/// `proxy()` on the JS driver: bytes from the upstream, before they go to the client. Until
/// the upstream's first ReadyForQuery its BackendKeyData is replaced with ours, in place, and
/// its key is registered for cancel forwarding. Returns true once nothing is left to rewrite.
#[napi(catch_unwind)]
pub fn session_upstream_data(
    handle: &mut External<SessionHandle>,
    mut data: BufferSlice,
    host: String,
    port: u32,
) -> bool {
    let (process_id, secret_key) = handle.session.backend_key();
    let (rewriter, _, _) =
        handle.upstream_keys.get_or_insert_with(|| (KeyRewriter::new(process_id, secret_key), host, port as u16));
    if let Some(found) = rewriter.rewrite(&mut data) {
        let (_, host, port) = handle.upstream_keys.as_ref().map(|(_, h, p)| ((), h.clone(), *p)).unwrap_or_default();
        // Through our own registration: once released, the id may be someone else's.
        if let Some(registration) = &handle.registration {
            registration.set_upstream(crate::cancel::UpstreamKey {
                host,
                port,
                process_id: found.process_id,
                secret_key: found.secret_key,
            });
        }
    }
    handle.upstream_keys.as_ref().is_some_and(|(rewriter, _, _)| rewriter.is_done())
}

/// JS's handler for cancels of JS-driver connections, called with the target's process id.
type CancelDispatch = ThreadsafeFunction<i32, Unknown<'static>, i32, Status, false, true>;

thread_local! {
    /// This JS thread's dispatcher (each worker thread loads its own `lib/js-driver.js`).
    static CANCEL_DISPATCH: std::cell::RefCell<Option<Arc<CancelDispatch>>> = const { std::cell::RefCell::new(None) };
}

/// Sets the function that runs `onCancel` for the JS-driver connections of this JS thread
/// (from `lib/js-driver.js`, once per thread). Weak: it does not keep the process alive.
#[napi(catch_unwind)]
pub fn set_cancel_dispatch(dispatch: Function<i32, Unknown<'static>>) -> Result<()> {
    let tsfn = dispatch.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
    CANCEL_DISPATCH.with(|slot| *slot.borrow_mut() = Some(Arc::new(tsfn)));
    Ok(())
}

/// `onCancel` of a JS-driver connection: queued to the JS thread that owns the connection,
/// whichever thread the CancelRequest arrived on.
struct JsCancel {
    process_id: i32,
    dispatch: Arc<CancelDispatch>,
}

impl crate::cancel::CancelTarget for JsCancel {
    fn cancelled(&self) {
        let _ = self.dispatch.call(self.process_id, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// A CancelRequest this (JS-driver) connection carried: delivered, and forwarded on the
/// runtime when it names a proxied connection.
fn deliver_cancel(session: &mut Session) {
    if let Some(request) = session.take_cancel_request() {
        if let Some(upstream) = crate::cancel::cancel(request.process_id, &request.secret_key) {
            napi::bindgen_prelude::spawn(crate::server::forward_cancel(upstream));
        }
    }
}

/// `sessionFeed(handle, data)` (a raw callback, see `raw.rs`): bytes read from the client, then
/// the next step (the per-read hot path).
pub(super) fn feed(handle: &mut SessionHandle, data: &[u8]) -> u32 {
    // The common case of a request/response client: one read is exactly the next
    // message(s), with nothing buffered before it.
    let fresh = !handle.session.is_tls() && handle.session.input_mut().is_empty();
    handle.session.receive(data);
    let step = poll(handle);
    let offers_fed_bytes = fresh
        && step & STEP_MASK == STEP_HOOK
        && matches!(handle.request, Some(HookRequest::Messages { .. }))
        && handle.session.offered().len() == data.len();
    // Likewise for a simple Query that is exactly the bytes fed: JS reads its SQL from them.
    let query_is_fed_bytes = fresh
        && step & STEP_MASK == STEP_QUERY
        && data.first() == Some(&b'Q')
        && matches!(&handle.request, Some(HookRequest::Query(call))
            if call.mode == QueryMode::Simple && call.dropped.is_empty() && call.sql.len() + 6 == data.len());
    if offers_fed_bytes {
        handle.request = None;
        step | OFFERS_FED_BYTES
    } else if query_is_fed_bytes {
        handle.request = None;
        handle.running = Some(HookKind::Query);
        (step & !STEP_MASK) | STEP_SIMPLE_QUERY | OFFERS_FED_BYTES
    } else {
        step
    }
}

/// The client closed its side; then the next step.
#[napi(catch_unwind)]
pub fn session_receive_eof(handle: &mut External<SessionHandle>) -> u32 {
    handle.session.receive_eof(Instant::now());
    poll(handle)
}

/// The next step.
#[napi(catch_unwind)]
pub fn session_poll(handle: &mut External<SessionHandle>) -> u32 {
    poll(handle)
}

/// The most capacity an empty buffer of an idle js-driver connection keeps (four buffers).
const IDLE_BUFFER_KEPT: usize = 512;

fn poll(handle: &mut SessionHandle) -> u32 {
    let session = &mut handle.session;
    let step = session.poll();
    deliver_cancel(session);
    let step = match step {
        Step::Wait => {
            // What an idle connection keeps: buffers of a small query's size, next to the few
            // KiB of its Node socket.
            session.release_idle_buffers(IDLE_BUFFER_KEPT);
            STEP_WAIT
        }
        Step::Close => STEP_CLOSE,
        Step::Abort => STEP_ABORT,
        Step::Hook(request) => {
            let step = if matches!(request, HookRequest::Query(_)) { STEP_QUERY } else { STEP_HOOK };
            handle.request = Some(request);
            step
        }
    };
    step | flags(session)
}

fn flags(session: &mut Session) -> u32 {
    let mut flags = session.state_version() << VERSION_SHIFT;
    if session.has_output() {
        flags |= HAS_OUTPUT;
    }
    if session.is_tls() {
        flags |= IS_TLS;
    }
    if session.wants_input() {
        flags |= WANTS_INPUT;
    }
    if session.take_timeout_changed() {
        flags |= TIMER_CHANGED;
    }
    flags
}

/// After a hook answered: the next step, or `STEP_NONE` without polling (after `detach()`).
fn then_poll(handle: &mut SessionHandle, poll: Option<bool>) -> u32 {
    if poll.unwrap_or(true) {
        self::poll(handle)
    } else {
        STEP_NONE | flags(&mut handle.session)
    }
}

/// The bytes to send, copied into a JS-owned Buffer (cheaper than an external buffer for
/// the small replies that make up most traffic).
#[napi(catch_unwind)]
pub fn session_take_output<'env>(
    handle: &mut External<SessionHandle>,
    env: &'env Env,
) -> Result<Option<BufferSlice<'env>>> {
    if !handle.session.has_output() {
        return Ok(None);
    }
    BufferSlice::copy_from(env, handle.session.take_output()).map(Some)
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        super::raw::forget(self);
    }
}

impl SessionHandle {
    /// After a query's answer: when `step` waits with output, the output copied into `slab`
    /// from `offset` on if it fits (see `take_output_into_slab`). Returns the step (without
    /// `HAS_OUTPUT` once nothing is left to send) and the length copied. A step that runs the
    /// next statement keeps its output, to leave with that statement's answer.
    pub(super) fn take_waiting_output(&mut self, step: u32, slab: &mut [u8], offset: u32) -> (u32, u32) {
        if step & STEP_MASK != STEP_WAIT || step & HAS_OUTPUT == 0 {
            return (step, 0);
        }
        let taken = u32::try_from(self.take_output_into_slab(slab, offset)).unwrap_or(0);
        if taken > 0 && !self.session.has_output() {
            (step & !HAS_OUTPUT, taken)
        } else {
            (step, taken)
        }
    }

    /// `sessionTakeOutputInto(handle, slab, offset)` (a raw callback): the bytes to send,
    /// copied into `slab` from `offset` on (a slice of a JS buffer pool, as Node's own: no
    /// Buffer made per answer). Returns their length, 0 if there are none, or minus the length
    /// they need if they do not fit (then nothing is taken). JS hands out only the bytes before
    /// `offset`, so none of them is written here.
    pub(super) fn take_output_into_slab(&mut self, slab: &mut [u8], offset: u32) -> i64 {
        if !self.session.has_output() {
            return 0;
        }
        let room = slab.get_mut(offset as usize..).unwrap_or_default();
        match self.session.take_output_into(room) {
            Ok(len) => len as i64,
            Err(needed) => -(needed as i64),
        }
    }
}

/// The fast path for `onMessage`: when the session asked for the message hook, the messages
/// themselves, back to back and whole (JS walks their length fields), or null if the
/// pending hook is another one (fetch it with `sessionHook()`).
#[napi(catch_unwind)]
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

/// The hook the session asked for, as the same event the native driver dispatches (`kind` is
/// empty if there is none).
#[napi(catch_unwind)]
pub fn session_hook(handle: &mut External<SessionHandle>) -> HookEvent {
    let version = handle.session.state_version();
    match handle.request.take() {
        Some(request) => {
            handle.running = Some(request.kind());
            HookEvent::for_request(0, version, request, handle.session.offered())
        }
        None => HookEvent::new(0, "", version),
    }
}

/// `sessionMessagesDone(handle, handled, error, poll, backlog)` (a raw callback): `onMessage`
/// handled `handled` messages (or threw `error` on the next one); `backlog`, when given, is
/// what the socket holds unsent after the batch stopped early for backpressure.
pub(super) fn messages_done(
    handle: &mut SessionHandle,
    handled: u32,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
    backlog: Option<f64>,
) -> u32 {
    let paused = backlog.is_some();
    if let Some(unsent) = backlog {
        // No claim of progress: only `sessionBacklog()` reports bytes sent.
        let sent = handle.session.backlog_sent();
        handle.session.handle_backlog(Instant::now(), unsent as usize, sent);
    }
    let error = error.map(|e| e.into_pg_error(Severity::Error));
    let answer = HookAnswer { value: handled, paused, error, ..HookAnswer::default() };
    handle.session.hook_done(HookKind::Message.result(answer));
    then_poll(handle, poll)
}

/// The hook fetched with `sessionHook()` answered (or threw).
#[napi(catch_unwind)]
pub fn session_hook_done(handle: &mut External<SessionHandle>, reply: HookReply, poll: Option<bool>) -> u32 {
    if let Some(kind) = handle.running.take() {
        let answer = reply.into_answer(handle.request_client_certificate);
        handle.session.hook_done(kind.result(answer));
    }
    then_poll(handle, poll)
}

/// `sessionQueryCall(handle, registers)` (a raw callback): the statement `STEP_QUERY` announced
/// (its `onQuery` now runs): its SQL, with the scalars written into `registers` (see the
/// `QUERY_REG_*` constants); `None` if there is none.
pub(super) fn query_call(handle: &mut SessionHandle, registers: &mut [u32]) -> Option<Arc<str>> {
    if registers.len() < QUERY_REGISTERS as usize {
        return None;
    }
    let call = match handle.request.take() {
        Some(HookRequest::Query(call)) => call,
        other => {
            handle.request = other;
            return None;
        }
    };
    handle.running = Some(HookKind::Query);
    let (mode, max_rows) = match call.mode {
        QueryMode::Simple => (0, 0),
        QueryMode::Describe => (1, 0),
        QueryMode::Execute { max_rows } => (2, max_rows),
        QueryMode::DescribeExecute => (3, 0),
    };
    let in_registers = (QUERY_REGISTERS - QUERY_REG_DROPPED) as usize;
    let details = !call.params.is_empty()
        || !call.param_types.is_empty()
        || !all_text(&call.result_formats)
        || call.expected.is_some()
        || call.dropped.len() > in_registers;
    registers[QUERY_REG_MODE as usize] = mode;
    registers[QUERY_REG_CURSOR as usize] = call.cursor;
    registers[QUERY_REG_MAX_ROWS as usize] = max_rows;
    registers[QUERY_REG_FLAGS as usize] =
        if call.resume { QUERY_RESUME } else { 0 } | if details { QUERY_HAS_DETAILS } else { 0 };
    let dropped = if call.dropped.len() > in_registers { &[][..] } else { &call.dropped[..] };
    registers[QUERY_REG_DROPPED_COUNT as usize] = dropped.len() as u32;
    registers[QUERY_REG_DROPPED as usize..][..dropped.len()].copy_from_slice(dropped);
    let sql = call.sql.clone();
    handle.query_details = details.then_some(call);
    Some(sql)
}

/// Result formats that ask for text only: none, or one 0 for all columns.
fn all_text(formats: &[i16]) -> bool {
    matches!(formats, [] | [0])
}

/// What `sessionQueryCall()` flagged with `QUERY_HAS_DETAILS`.
#[napi(object)]
pub struct QueryDetails {
    pub params: Option<super::query::ParamValues>,
    pub param_types: Option<Vec<u32>>,
    pub result_formats: Option<Vec<i32>>,
    pub expected_types: Option<Vec<u32>>,
    /// Every dropped cursor, when they did not fit in the registers.
    pub dropped: Option<Vec<u32>>,
}

/// The details of the statement `sessionQueryCall()` announced with `QUERY_HAS_DETAILS`.
#[napi(catch_unwind)]
pub fn session_query_details(handle: &mut External<SessionHandle>) -> Option<QueryDetails> {
    let call = handle.query_details.take()?;
    let in_registers = (QUERY_REGISTERS - QUERY_REG_DROPPED) as usize;
    Some(QueryDetails {
        params: (!call.params.is_empty()).then(|| super::query::ParamValues(call.params.clone())),
        param_types: (!call.param_types.is_empty()).then(|| call.param_types.to_vec()),
        result_formats: (!all_text(&call.result_formats))
            .then(|| call.result_formats.iter().map(|&f| i32::from(f)).collect()),
        expected_types: call.expected.as_ref().map(|types| types.to_vec()),
        dropped: (call.dropped.len() > in_registers).then(|| call.dropped.clone()),
    })
}

/// The `query` hook answered (see `HookReply::for_query`); then the next step.
#[napi(catch_unwind)]
pub fn session_query_done(
    handle: &mut External<SessionHandle>,
    completed: u32,
    suspended: bool,
    data: Option<BufferSlice>,
    error: Option<BackendErrorInput>,
    poll: Option<bool>,
) -> u32 {
    if handle.running.take().is_some() {
        let outcome = crate::session::query::QueryOutcome {
            completed: completed as usize,
            suspended,
            error: error.map(|e| e.into_pg_error(Severity::Error)),
            data: data.map(|d| d.to_vec()),
        };
        handle.session.hook_done(HookResult::Query(outcome));
    }
    then_poll(handle, poll)
}

/// `sessionQueryRows(handle, plan, rows, flags, complete, poll)` (a raw callback): the
/// `query` hook answered with one small result, which `raw.rs` encoded into `data`
/// (`description` and CommandComplete around its rows): the request/response fast path, one
/// call and no Buffer made. If a value did not fit, `encoded` is the failure: the session
/// sends the RowDescription only (as PostgreSQL does before the error of a row) and JS answers
/// with the error.
pub(super) fn query_rows(
    handle: &mut SessionHandle,
    encoded: std::result::Result<(), super::query::EncodeFailure>,
    data: &[u8],
    description: Option<&[u8]>,
    poll: Option<bool>,
) -> std::result::Result<u32, super::query::EncodeFailure> {
    if handle.running.is_none() {
        // No query is waiting for this answer (the connection moved on).
        return Ok(then_poll(handle, poll));
    }
    let out = handle.session.query_result_output();
    if let Err(failure) = encoded {
        out.extend_from_slice(description.unwrap_or_default());
        return Err(failure);
    }
    out.extend_from_slice(data);
    handle.running = None;
    let outcome = crate::session::query::QueryOutcome { completed: 1, ..Default::default() };
    handle.session.hook_done(HookResult::Query(outcome));
    Ok(then_poll(handle, poll))
}

/// What the socket holds unsent (`writableLength`) and how many bytes it has sent in all.
#[napi(catch_unwind)]
pub fn session_backlog(handle: &mut External<SessionHandle>, unsent: f64, sent: f64) {
    handle.session.handle_backlog(Instant::now(), unsent as usize, sent as u64);
}

/// Milliseconds until the next deadline (0 if it has passed), or -1 for none.
#[napi(catch_unwind)]
pub fn session_timeout(handle: &External<SessionHandle>) -> f64 {
    match handle.session.poll_timeout() {
        None => -1.0,
        Some(at) => at.saturating_duration_since(Instant::now()).as_millis() as f64,
    }
}

/// The timer fired: act on the deadlines that passed, then the next step.
#[napi(catch_unwind)]
pub fn session_handle_timeout(handle: &mut External<SessionHandle>) -> u32 {
    handle.session.handle_timeout(Instant::now());
    poll(handle)
}

/// A hook sent AuthenticationOk itself.
#[napi(catch_unwind)]
pub fn session_authenticated_by_hook(handle: &mut External<SessionHandle>) {
    handle.session.authenticated_by_hook();
}

/// Why the connection failed where its client could not be told (a TLS handshake), once.
#[napi(catch_unwind)]
pub fn session_take_problem(handle: &mut External<SessionHandle>) -> Option<String> {
    handle.session.take_problem()
}

/// The js driver's log line `what` for this session, without the remote address, duration
/// and bytes (JS has them): `authorized` once authenticated, `fatal` if a FATAL error ended it,
/// `disconnection` (with `fallback` as the reason if the session itself did not end).
#[napi(catch_unwind)]
pub fn session_log_line(handle: &External<SessionHandle>, what: String, fallback: Option<String>) -> Option<LogFields> {
    let session = &handle.session;
    let event = match what.as_str() {
        "authorized" => session.state().is_authenticated.then(|| LogEvent::authorized(session)),
        "fatal" => LogEvent::fatal(session),
        "disconnection" => {
            let fallback =
                fallback.as_deref().and_then(|name| CloseReason::ALL.into_iter().find(|r| r.as_str() == name));
            session.close_reason().or(fallback).map(|reason| LogEvent::ended(session, reason))
        }
        _ => None,
    }?;
    Some(LogFields::new(event, None))
}

/// Whether the connection is encrypted (TLS is up or being negotiated).
#[napi(catch_unwind)]
pub fn session_is_tls(handle: &External<SessionHandle>) -> bool {
    handle.session.is_tls()
}

/// After `detach()` on a TLS connection: plaintext for the client, as TLS records.
#[napi(catch_unwind)]
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
#[napi(catch_unwind)]
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
#[napi(catch_unwind)]
pub fn session_seal_close<'env>(handle: &mut External<SessionHandle>, env: &'env Env) -> Result<BufferSlice<'env>> {
    let wire = handle.session.seal_close();
    BufferSlice::copy_from(env, wire)
}

#[napi(catch_unwind)]
pub fn session_state(handle: &External<SessionHandle>) -> StateSnapshot {
    StateSnapshot::new(handle.session.state_version(), handle.session.state())
}

/// For `detach()`: what was received but not processed. The session is over afterwards.
#[napi(catch_unwind)]
pub fn session_detach(handle: &mut External<SessionHandle>) -> Buffer {
    handle.request = None;
    handle.session.detach().to_vec().into()
}

/// Encoders for `sendError` and friends on connections whose socket JS owns.
#[napi(catch_unwind)]
pub fn encode_error_response(error: BackendErrorInput) -> Buffer {
    let mut out = bytes::BytesMut::new();
    crate::protocol::backend::error_response(&mut out, &error.into_pg_error(Severity::Error));
    out.to_vec().into()
}
