//! [`Hooks`] implemented with one JS dispatch function per server (or adopted socket), called
//! through a ThreadsafeFunction. The JS side (`lib/native-driver.js`) calls the user's hooks,
//! catches what they throw, and always answers with [`hook_reply`], so a user error never
//! becomes an uncaught exception.
//!
//! Why a reply call and not the promise the dispatcher returns: awaiting a JS promise from Rust
//! creates two JS functions and a native allocation per call that only V8's garbage collector
//! frees, and V8 does not see their size. Under a burst of connections that garbage piled up
//! to several KiB per connection of resident memory; a plain call with an id leaves nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use super::errors::BackendErrorInput;
use crate::auth::AuthMode;
use crate::protocol::{PgError, Severity, SqlState};
use crate::server::{CloseReason, ConnShared, HookFuture, Hooks, LogEvent, LogLevel};
use crate::session::query::QueryMode;
use crate::session::{Credentials, HookAnswer, HookRequest, HookResult, ScramAnswer};

/// One hook call as JS receives it.
#[napi(object, object_from_js = false)]
pub struct HookEvent {
    pub conn: u32,
    /// What to pass to `hookReply` with the answer; 0 for events that want none (`close`).
    pub call: u32,
    /// A [`crate::session::HookKind`] name (`message`, `startup`, `validate`, `authenticated`,
    /// `tls`, `tlsUpgrade`), or `close`.
    pub kind: String,
    pub state_version: u32,
    /// For `message`: the messages, whole and back to back (their length fields delimit them).
    pub data: Option<Buffer>,
    /// For `validate`.
    pub auth_mode: Option<String>,
    pub user: Option<String>,
    /// The password (cleartext) or the client's md5 hash.
    pub secret: Option<String>,
    pub salt: Option<Buffer>,
    /// For `close`: how; for `problem`: what went wrong.
    pub reason: Option<String>,
    /// For `tls`: the server name the client asked for (SNI).
    pub sni_server_name: Option<String>,
    /// For `query` and `describe`: the statement (for a simple Query, the whole string).
    pub sql: Option<String>,
    /// For `query`: the Bind parameters, decoded.
    pub params: Option<super::query::ParamValues>,
    /// For `query` and `describe`: the parameters' type OIDs (0: not known).
    pub param_types: Option<Vec<u32>>,
    /// For `query`: Bind's result format codes.
    pub result_formats: Option<Vec<i32>>,
    /// For `query`: `simple`, `describe` (a portal) or `execute`.
    pub mode: Option<String>,
    /// For `query`: the portal's cursor id (0 for a simple Query).
    pub cursor: Option<u32>,
    /// For `query` `execute`: the row limit (0: none).
    pub max_rows: Option<u32>,
    /// For `query`: JS holds this cursor's result already.
    pub resume: Option<bool>,
    /// For `query`: cursors whose portals are gone.
    pub dropped: Option<Vec<u32>>,
    /// For `query` `execute`: the column types a Describe of the statement told the client.
    pub expected_types: Option<Vec<u32>>,
    /// For `log`: the line (see `crate::server::LogEvent`).
    pub log: Option<LogFields>,
}

/// A log line's fields as JS receives them (absent ones are left out of the entry).
#[napi(object, object_from_js = false)]
pub struct LogFields {
    pub level: String,
    pub msg: String,
    pub pid: Option<i32>,
    pub remote_address: Option<String>,
    pub remote_port: Option<u32>,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub duration_ms: Option<f64>,
    pub bytes_received: Option<f64>,
    pub bytes_sent: Option<f64>,
}

/// What JS answers for a hook call (both drivers, every kind).
#[napi(object)]
pub struct HookReply {
    /// Messages handled (for `message`), or 1/0 for the boolean hooks.
    pub value: u32,
    /// For `message`: the batch stopped early because output is backed up.
    pub paused: Option<bool>,
    pub error: Option<BackendErrorInput>,
    /// For `tls`: the options the callback chose.
    pub tls: Option<super::tls::TlsOptionsInput>,
    /// For `scramSecret`: a verifier in PostgreSQL's format ...
    pub scram_verifier: Option<String>,
    /// ... or a plaintext password.
    pub scram_password: Option<String>,
    /// For `describe`: the parameter types ...
    pub param_types: Option<Vec<u32>>,
    /// ... and the fields.
    pub fields: Option<Vec<super::query::FieldInput>>,
}

impl HookReply {
    /// The answer in the session's terms (TLS options become a configuration here).
    pub fn into_answer(self, request_client_certificate: bool) -> HookAnswer {
        let tls = self.tls.map(|options| {
            super::tls::tls_server(&options, request_client_certificate)
                .map_err(|err| PgError::fatal(SqlState::INTERNAL_ERROR, err.reason))
        });
        let scram = match (self.scram_verifier, self.scram_password) {
            (Some(verifier), _) => Some(ScramAnswer::Verifier(verifier)),
            (None, Some(password)) => Some(ScramAnswer::Password(password)),
            (None, None) => None,
        };
        let mut error = self.error.map(|e| e.into_pg_error(Severity::Error));
        let description = if self.fields.is_some() || self.param_types.is_some() {
            match super::query::description(self.param_types, self.fields) {
                Ok(description) => Some(description),
                Err(err) => {
                    error.get_or_insert(err);
                    None
                }
            }
        } else {
            None
        };
        HookAnswer {
            value: self.value,
            paused: self.paused.unwrap_or(false),
            error,
            tls,
            scram,
            completed: 0,
            data: None,
            description,
        }
    }
}

pub type DispatchFn = ThreadsafeFunction<HookEvent, Unknown<'static>, HookEvent, Status, false, true>;

/// What JS answered a hook call with: a reply object, or a query's outcome in the session's
/// terms already (`queryReply`, positional: its bytes are copied once, here).
// Sizes differ, but a reply lives only in its oneshot channel: a box would be an allocation more.
#[allow(clippy::large_enum_variant)]
enum JsReply {
    Hook(HookReply),
    Query(HookAnswer),
}

type ReplySender = tokio::sync::oneshot::Sender<JsReply>;

/// Hook calls waiting for JS's answer, by call id.
fn pending() -> &'static Mutex<HashMap<u32, ReplySender>> {
    static PENDING: OnceLock<Mutex<HashMap<u32, ReplySender>>> = OnceLock::new();
    PENDING.get_or_init(Mutex::default)
}

fn lock_pending() -> std::sync::MutexGuard<'static, HashMap<u32, ReplySender>> {
    pending().lock().unwrap_or_else(|p| p.into_inner())
}

/// JS's answer to the hook call `call` (an id from a [`HookEvent`]). Unknown ids are ignored:
/// the connection may have gone while the hook ran.
#[napi(catch_unwind)]
pub fn hook_reply(call: u32, reply: HookReply) {
    if let Some(sender) = lock_pending().remove(&call) {
        let _ = sender.send(JsReply::Hook(reply));
    }
}

/// JS's answer to a `query` hook call, in positional arguments (a reply object costs a property
/// read per field, and a query answers on every statement): how many results completed,
/// whether Execute stopped at its row limit, and the end of the result (what JS did not write
/// already), sent before what the session answers.
#[napi(catch_unwind)]
pub fn query_reply(
    call: u32,
    completed: u32,
    suspended: bool,
    data: Option<BufferSlice>,
    error: Option<BackendErrorInput>,
) {
    if let Some(sender) = lock_pending().remove(&call) {
        let answer = HookAnswer {
            completed: completed as usize,
            paused: suspended,
            error: error.map(|e| e.into_pg_error(Severity::Error)),
            data: data.map(|d| d.to_vec()),
            ..HookAnswer::default()
        };
        let _ = sender.send(JsReply::Query(answer));
    }
}

/// A hook call waiting for its reply. Dropped unanswered (the connection ended while the hook
/// ran), it takes its entry out of the pending table, so hooks that never settle leave nothing
/// behind.
struct Waiting {
    call: u32,
    reply: tokio::sync::oneshot::Receiver<JsReply>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock_pending().remove(&self.call);
    }
}

/// A new call id; never 0, which marks events that want no reply.
fn next_call_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    loop {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

pub struct JsHooks {
    dispatch: Arc<DispatchFn>,
    /// `certificate` authentication: configurations from the `tls` callback request one.
    request_client_certificate: bool,
    /// What the `logger` option takes (`Silent` without one).
    log_level: LogLevel,
}

impl JsHooks {
    pub fn new(dispatch: &Function<HookEvent, Unknown<'static>>, request_client_certificate: bool) -> Result<Self> {
        let tsfn = dispatch.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
        Ok(Self { dispatch: Arc::new(tsfn), request_client_certificate, log_level: LogLevel::Silent })
    }

    /// Sends log lines at `level` and above to JS.
    pub fn with_log_level(self, level: LogLevel) -> Self {
        Self { log_level: level, ..self }
    }
}

impl LogFields {
    pub fn new(event: LogEvent, peer: Option<std::net::SocketAddr>) -> Self {
        Self {
            level: event.level.as_str().to_string(),
            msg: event.msg.to_string(),
            pid: event.pid,
            remote_address: peer.map(|addr| addr.ip().to_string()),
            remote_port: peer.map(|addr| u32::from(addr.port())),
            user: event.user,
            database: event.database,
            application_name: event.application_name,
            tls: event.tls,
            sni: event.sni,
            code: event.code,
            message: event.message,
            reason: event.reason.map(str::to_string),
            duration_ms: event.duration_ms,
            bytes_received: event.bytes_received.map(|n| n as f64),
            bytes_sent: event.bytes_sent.map(|n| n as f64),
        }
    }
}

impl HookEvent {
    pub fn new(conn: u32, kind: &str, state_version: u32) -> Self {
        Self {
            conn,
            call: 0,
            kind: kind.to_string(),
            state_version,
            data: None,
            auth_mode: None,
            user: None,
            secret: None,
            salt: None,
            reason: None,
            sni_server_name: None,
            sql: None,
            params: None,
            param_types: None,
            result_formats: None,
            mode: None,
            cursor: None,
            max_rows: None,
            resume: None,
            dropped: None,
            expected_types: None,
            log: None,
        }
    }

    /// The event for a hook the session asked for; `offered` holds the messages of a
    /// `Messages` request.
    pub fn for_request(conn: u32, state_version: u32, request: HookRequest, offered: &[u8]) -> Self {
        let mut event = Self::new(conn, request.kind().name(), state_version);
        match request {
            // The one copy: out of the session's input, into a Buffer JS owns.
            HookRequest::Messages { .. } => event.data = Some(offered.to_vec().into()),
            HookRequest::ValidateCredentials(Credentials::Cleartext { user, password }) => {
                event.auth_mode = Some(AuthMode::CleartextPassword.name().into());
                event.user = Some(user);
                event.secret = Some(password);
            }
            HookRequest::ValidateCredentials(Credentials::Md5 { user, hash, salt }) => {
                event.auth_mode = Some(AuthMode::Md5Password.name().into());
                event.user = Some(user);
                event.secret = Some(hash);
                event.salt = Some(salt.to_vec().into());
            }
            HookRequest::TlsConfig { sni_server_name } => event.sni_server_name = sni_server_name,
            HookRequest::ScramSecret { user } => event.user = Some(user),
            HookRequest::Startup | HookRequest::Authenticated | HookRequest::TlsUpgrade => {}
            HookRequest::Query(call) => {
                let call = *call;
                let (mode, max_rows) = match call.mode {
                    QueryMode::Simple => ("simple", None),
                    QueryMode::Describe => ("describe", None),
                    QueryMode::DescribeExecute => ("describeExecute", Some(0)),
                    QueryMode::Execute { max_rows } => ("execute", Some(max_rows)),
                };
                // Empty lists are left out (JS reads them as empty): every property set is a
                // call, and a simple Query has none of them.
                event.sql = Some(call.sql.to_string());
                event.params = (!call.params.is_empty()).then(|| super::query::ParamValues(call.params.clone()));
                event.param_types = (!call.param_types.is_empty()).then(|| call.param_types.to_vec());
                event.result_formats = (!call.result_formats.is_empty())
                    .then(|| call.result_formats.iter().map(|&f| i32::from(f)).collect());
                event.mode = Some(mode.into());
                event.cursor = Some(call.cursor);
                event.max_rows = max_rows;
                event.resume = call.resume.then_some(true);
                event.dropped = (!call.dropped.is_empty()).then_some(call.dropped);
                event.expected_types = call.expected.map(|types| types.to_vec());
            }
            HookRequest::Describe(call) => {
                event.sql = Some(call.sql.to_string());
                event.param_types = Some(call.param_types);
            }
        }
        event
    }
}

impl Hooks for JsHooks {
    fn call(&self, conn: &Arc<ConnShared>, request: HookRequest, offered: &[u8]) -> HookFuture {
        let kind = request.kind();
        let mut event = HookEvent::for_request(conn.id, conn.state_version(), request, offered);
        let call = next_call_id();
        event.call = call;
        let (sender, reply) = tokio::sync::oneshot::channel();
        lock_pending().insert(call, sender);
        let status = self.dispatch.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            lock_pending().remove(&call);
        }
        let request_client_certificate = self.request_client_certificate;
        let mut waiting = Waiting { call, reply };
        Box::pin(async move {
            match (&mut waiting.reply).await {
                Ok(JsReply::Hook(reply)) => kind.result(reply.into_answer(request_client_certificate)),
                Ok(JsReply::Query(answer)) => kind.result(answer),
                // The call never reached JS (the environment is shutting down).
                Err(_) => {
                    HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, format!("hook call failed: {status}")))
                }
            }
        })
    }

    fn closed(&self, conn: &Arc<ConnShared>, reason: CloseReason) {
        let mut e = HookEvent::new(conn.id, "close", conn.state_version());
        e.reason = Some(reason.as_str().to_string());
        // Fire and forget: nothing waits for JS to acknowledge a close.
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn problem(&self, conn: &Arc<ConnShared>, message: String) {
        let mut e = HookEvent::new(conn.id, "problem", conn.state_version());
        e.reason = Some(message);
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn cancelled(&self, conn: &Arc<ConnShared>) {
        let e = HookEvent::new(conn.id, "cancel", conn.state_version());
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    fn log(&self, conn: &Arc<ConnShared>, event: LogEvent) {
        let mut e = HookEvent::new(conn.id, "log", conn.state_version());
        e.log = Some(LogFields::new(event, conn.peer));
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn released(&self, conn: &Arc<ConnShared>) {
        let e = HookEvent::new(conn.id, "released", conn.state_version());
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }
}
