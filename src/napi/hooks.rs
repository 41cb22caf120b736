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
use crate::protocol::{PgError, Severity, SqlState};
use crate::server::{CloseReason, ConnShared, HookFuture, Hooks};
use crate::session::{Credentials, HookRequest, HookResult};

/// One hook call as JS receives it.
#[napi(object)]
pub struct HookEvent {
    pub conn: u32,
    /// What to pass to `hookReply` with the answer; 0 for events that want none (`close`).
    pub call: u32,
    /// `message`, `startup`, `validate`, `authenticated` or `close`.
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
    /// For `close`.
    pub reason: Option<String>,
    /// For `tls`: the server name the client asked for (SNI).
    pub sni_server_name: Option<String>,
}

/// What the JS dispatcher resolves to.
#[napi(object)]
pub struct HookReply {
    /// Messages handled (for `message`), or 1/0 for the boolean hooks.
    pub value: u32,
    pub error: Option<BackendErrorInput>,
    /// For `tls`: the options the callback chose.
    pub tls: Option<super::tls::TlsOptionsInput>,
}

pub type DispatchFn = ThreadsafeFunction<HookEvent, Unknown<'static>, HookEvent, Status, false, true>;

type ReplySender = tokio::sync::oneshot::Sender<HookReply>;

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
#[napi]
pub fn hook_reply(call: u32, reply: HookReply) {
    if let Some(sender) = lock_pending().remove(&call) {
        let _ = sender.send(reply);
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
}

impl JsHooks {
    pub fn new(dispatch: &Function<HookEvent, Unknown<'static>>, request_client_certificate: bool) -> Result<Self> {
        let tsfn = dispatch.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
        Ok(Self { dispatch: Arc::new(tsfn), request_client_certificate })
    }
}

fn event(conn: &ConnShared, kind: &str) -> HookEvent {
    HookEvent::new(conn.id, kind, conn.state_version())
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
        }
    }

    /// A `validate` event: the credentials as `validateCredentials` will receive them.
    pub fn validate(conn: u32, state_version: u32, credentials: Credentials) -> Self {
        let mut event = Self::new(conn, "validate", state_version);
        match credentials {
            Credentials::Cleartext { user, password } => {
                event.auth_mode = Some("cleartextPassword".into());
                event.user = Some(user);
                event.secret = Some(password);
            }
            Credentials::Md5 { user, hash, salt } => {
                event.auth_mode = Some("md5Password".into());
                event.user = Some(user);
                event.secret = Some(hash);
                event.salt = Some(salt.to_vec().into());
            }
        }
        event
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Messages,
    Bool,
    Void,
    Tls { request_client_certificate: bool },
}

impl Hooks for JsHooks {
    fn call(&self, conn: &Arc<ConnShared>, request: HookRequest, offered: &[u8]) -> HookFuture {
        let (mut event, kind) = match request {
            HookRequest::Messages { .. } => {
                let mut e = event(conn, "message");
                // The one copy: out of the session's input, into a Buffer JS owns.
                e.data = Some(offered.to_vec().into());
                (e, Kind::Messages)
            }
            HookRequest::Startup => (event(conn, "startup"), Kind::Bool),
            HookRequest::ValidateCredentials(credentials) => {
                (HookEvent::validate(conn.id, conn.state_version(), credentials), Kind::Bool)
            }
            HookRequest::Authenticated => (event(conn, "authenticated"), Kind::Void),
            HookRequest::TlsUpgrade => (event(conn, "tlsUpgrade"), Kind::Void),
            HookRequest::TlsConfig { sni_server_name } => {
                let mut e = event(conn, "tls");
                e.sni_server_name = sni_server_name;
                (e, Kind::Tls { request_client_certificate: self.request_client_certificate })
            }
        };
        let call = next_call_id();
        event.call = call;
        let (sender, reply) = tokio::sync::oneshot::channel();
        lock_pending().insert(call, sender);
        let status = self.dispatch.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            lock_pending().remove(&call);
        }
        Box::pin(async move {
            match reply.await {
                Ok(reply) => to_result(kind, reply),
                // The call never reached JS (the environment is shutting down).
                Err(_) => {
                    HookResult::Failed(PgError::error(SqlState::INTERNAL_ERROR, format!("hook call failed: {status}")))
                }
            }
        })
    }

    fn closed(&self, conn: &Arc<ConnShared>, reason: CloseReason) {
        let mut e = event(conn, "close");
        e.reason = Some(reason.as_str().to_string());
        // Fire and forget: nothing waits for JS to acknowledge a close.
        let _ = self.dispatch.call(e, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn to_result(kind: Kind, reply: HookReply) -> HookResult {
    let error = reply.error.map(|e| e.into_pg_error(Severity::Error));
    match (kind, error) {
        (Kind::Messages, error) => HookResult::Messages { handled: reply.value as usize, error },
        (_, Some(error)) => HookResult::Failed(error),
        (Kind::Bool, None) => HookResult::Bool(reply.value != 0),
        (Kind::Void, None) => HookResult::Done,
        (Kind::Tls { request_client_certificate }, None) => tls_result(reply.tls.as_ref(), request_client_certificate),
    }
}

/// The `tls` callback's options as a configuration, or why they cannot be one.
pub fn tls_result(options: Option<&super::tls::TlsOptionsInput>, request_client_certificate: bool) -> HookResult {
    let Some(options) = options else {
        return HookResult::Failed(PgError::fatal(SqlState::INTERNAL_ERROR, "the tls callback returned no options"));
    };
    match super::tls::tls_server(options, request_client_certificate) {
        Ok(server) => HookResult::Tls(server),
        Err(err) => HookResult::Failed(PgError::fatal(SqlState::INTERNAL_ERROR, err.reason)),
    }
}
