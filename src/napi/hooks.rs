//! [`Hooks`] implemented with one JS dispatch function per server (or adopted socket), called
//! through a ThreadsafeFunction. The JS side (`index.js`) calls the user's hooks, catches what
//! they throw, and always resolves to a [`HookReply`], so a user error never becomes an
//! uncaught exception.

use std::sync::Arc;

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

pub type DispatchFn = ThreadsafeFunction<HookEvent, Promise<HookReply>, HookEvent, Status, false, true>;

pub struct JsHooks {
    dispatch: Arc<DispatchFn>,
    /// `certificate` authentication: configurations from the `tls` callback request one.
    request_client_certificate: bool,
}

impl JsHooks {
    pub fn new(dispatch: &Function<HookEvent, Promise<HookReply>>, request_client_certificate: bool) -> Result<Self> {
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
        let (event, kind) = match request {
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
        let dispatch = self.dispatch.clone();
        Box::pin(async move {
            let reply = match dispatch.call_async_catch(event).await {
                Ok(promise) => promise.await,
                Err(err) => Err(err),
            };
            match reply {
                Ok(reply) => to_result(kind, reply),
                Err(err) => HookResult::Failed(PgError::error(
                    SqlState::INTERNAL_ERROR,
                    format!("hook call failed: {}", err.reason),
                )),
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
