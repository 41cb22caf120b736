//! `NativeConnection`: the handle `index.js` wraps in pg-gateway's `PostgresConnection`.

use crate::protocol::backend::TransactionStatus;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::errors::BackendErrorInput;
use super::hooks::{HookEvent, JsHooks};
use super::options::{settings, NativeOptions};
use crate::protocol::{backend, Severity};
use crate::server::ConnShared;

#[napi]
pub struct NativeConnection {
    shared: Arc<ConnShared>,
}

impl NativeConnection {
    pub fn new(shared: Arc<ConnShared>) -> Self {
        Self { shared }
    }

    /// Encodes one backend message and queues it; false if the connection cannot send, or
    /// holds more than the high-water mark (as `socket.write` says false).
    fn send(&self, encode: impl FnOnce(&mut bytes::BytesMut)) -> bool {
        let mut out = bytes::BytesMut::new();
        encode(&mut out);
        self.shared.write_from_js(&out) && !self.shared.over_high_water()
    }
}

/// pg-gateway's `State`, as plain data; `index.js` turns `parameters` (name, value, name,
/// value ...) into an object, keeping the client's order.
#[napi(object)]
pub struct StateSnapshot {
    pub version: u32,
    pub has_started: bool,
    pub is_authenticated: bool,
    pub client_major_version: Option<u32>,
    pub client_minor_version: Option<u32>,
    pub client_parameters: Option<Vec<String>>,
    pub tls: bool,
    pub sni_server_name: Option<String>,
    pub alpn_protocol: Option<String>,
    pub client_certificate: Option<Buffer>,
    /// `idle`, `transaction` or `error` (ReadyForQuery's status, tracked with `onQuery`).
    pub transaction_status: String,
}

impl StateSnapshot {
    pub fn new(version: u32, state: &crate::session::State) -> Self {
        let info = state.client_info.as_ref();
        Self {
            version,
            has_started: state.has_started,
            is_authenticated: state.is_authenticated,
            client_major_version: info.map(|i| u32::from(i.major_version)),
            client_minor_version: info.map(|i| u32::from(i.minor_version)),
            client_parameters: info.map(|i| i.parameters.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()),
            tls: state.tls_info.is_some(),
            sni_server_name: state.tls_info.as_ref().and_then(|t| t.sni_server_name.clone()),
            alpn_protocol: state.tls_info.as_ref().and_then(|t| t.alpn_protocol.clone()),
            client_certificate: state.tls_info.as_ref().and_then(|t| t.client_certificate.clone()).map(Buffer::from),
            transaction_status: match state.transaction_status {
                TransactionStatus::Idle => "idle",
                TransactionStatus::InTransaction => "transaction",
                TransactionStatus::Failed => "error",
            }
            .into(),
        }
    }
}

#[napi]
impl NativeConnection {
    #[napi(getter, catch_unwind)]
    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// Queues bytes for the client. False once the connection cannot send any more, and when
    /// more than the high-water mark is buffered (wait for `drained()` then).
    #[napi(catch_unwind)]
    pub fn send_data(&self, data: BufferSlice) -> bool {
        self.shared.write_from_js(&data) && !self.shared.over_high_water()
    }

    #[napi(catch_unwind)]
    pub fn send_error(&self, error: BackendErrorInput) -> bool {
        let err = error.into_pg_error(Severity::Error);
        self.send(|out| backend::error_response(out, &err))
    }

    /// `'I'`, `'T'` or `'E'`, already checked by `index.js`.
    #[napi(catch_unwind)]
    pub fn send_ready_for_query(&self, status: String) -> bool {
        let status = match status.as_str() {
            "T" => backend::TransactionStatus::InTransaction,
            "E" => backend::TransactionStatus::Failed,
            _ => backend::TransactionStatus::Idle,
        };
        self.send(|out| backend::ready_for_query(out, status))
    }

    #[napi(catch_unwind)]
    pub fn send_parameter_status(&self, name: String, value: String) -> bool {
        self.send(|out| backend::parameter_status(out, &name, &value))
    }

    /// AuthenticationOk from a hook: the client is authenticated by the user's code, so the
    /// session's authentication deadline ends.
    #[napi(catch_unwind)]
    pub fn send_authentication_ok(&self) -> bool {
        let sent = self.send(backend::authentication_ok);
        self.shared.authenticated_by_hook();
        sent
    }

    #[napi(catch_unwind)]
    pub fn state(&self) -> StateSnapshot {
        let (version, state) = self.shared.state();
        StateSnapshot::new(version, &state)
    }

    #[napi(getter, catch_unwind)]
    pub fn state_version(&self) -> u32 {
        self.shared.state_version()
    }

    #[napi(getter, catch_unwind)]
    pub fn remote_address(&self) -> Option<String> {
        self.shared.peer.map(|a| a.ip().to_string())
    }

    #[napi(getter, catch_unwind)]
    pub fn remote_port(&self) -> Option<u32> {
        self.shared.peer.map(|a| u32::from(a.port()))
    }

    #[napi(getter, catch_unwind)]
    pub fn remote_family(&self) -> Option<String> {
        self.shared.peer.map(|a| if a.is_ipv4() { "IPv4" } else { "IPv6" }.to_string())
    }

    #[napi(getter, catch_unwind)]
    pub fn local_address(&self) -> Option<String> {
        self.shared.local.map(|a| a.ip().to_string())
    }

    #[napi(getter, catch_unwind)]
    pub fn local_port(&self) -> Option<u32> {
        self.shared.local.map(|a| u32::from(a.port()))
    }

    /// Bytes read from the client so far (`socket.bytesRead`).
    #[napi(getter, catch_unwind)]
    pub fn bytes_read(&self) -> f64 {
        self.shared.out.received_total() as f64
    }

    /// Bytes written to the client so far (`socket.bytesWritten`).
    #[napi(getter, catch_unwind)]
    pub fn bytes_written(&self) -> f64 {
        self.shared.out.sent() as f64
    }

    #[napi(getter, catch_unwind)]
    pub fn buffered_amount(&self) -> u32 {
        self.shared.unsent().min(u32::MAX as usize) as u32
    }

    /// Flush, then close.
    #[napi(catch_unwind)]
    pub fn end(&self) {
        self.shared.end();
    }

    /// Close now.
    #[napi(catch_unwind)]
    pub fn destroy(&self) {
        self.shared.destroy();
    }

    /// Stop processing protocol messages; read the client's bytes with `read()` from now on.
    #[napi(catch_unwind)]
    pub fn detach(&self) {
        self.shared.detach();
    }

    /// Whether the connection is encrypted (for `detach()`'s `encrypted` flag).
    #[napi(getter, catch_unwind)]
    pub fn encrypted(&self) -> bool {
        self.shared.is_encrypted()
    }

    /// Proxies the connection to `host:port` in Rust, after the current hook; with
    /// `replay_startup`, the client's StartupMessage is sent upstream first. The upstream must
    /// accept within `connect_timeout` milliseconds.
    #[napi(catch_unwind)]
    pub fn proxy(&self, host: String, port: u32, replay_startup: bool, connect_timeout: u32) -> Result<()> {
        let port = u16::try_from(port).map_err(|_| Error::new(Status::InvalidArg, format!("invalid port {port}")))?;
        let connect_timeout = std::time::Duration::from_millis(u64::from(connect_timeout.max(1)));
        self.shared.proxy(crate::server::ProxyTarget { host, port, replay_startup, connect_timeout });
        Ok(())
    }

    /// After `detach()`: the next chunk from the client, `null` at EOF.
    #[napi(ts_return_type = "Promise<Buffer | null>", catch_unwind)]
    pub fn read(&self, env: &Env, max: u32) -> Result<AsyncBlock<Option<Buffer>>> {
        let shared = self.shared.clone();
        AsyncBlockBuilder::new(async move {
            match shared.read_detached(max as usize).await {
                Ok(chunk) => Ok(chunk.map(Buffer::from)),
                Err(err) => Err(Error::new(Status::GenericFailure, err.to_string())),
            }
        })
        .build(env)
    }

    /// Resolves when the buffered output is under the high-water mark again.
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn drained(&self, env: &Env) -> Result<AsyncBlock<()>> {
        let shared = self.shared.clone();
        AsyncBlockBuilder::new(async move {
            shared.out.drained().await;
            Ok(())
        })
        .build(env)
    }

    /// Resolves with the close reason once the connection has ended (or was detached). While
    /// it is pending, Node stays alive, as it would for an open socket.
    #[napi(ts_return_type = "Promise<string>", catch_unwind)]
    pub fn closed(&self, env: &Env) -> Result<AsyncBlock<String>> {
        let shared = self.shared.clone();
        AsyncBlockBuilder::new(async move { Ok(shared.wait_finished().await.as_str().to_string()) }).build(env)
    }

    /// Resolves once the write side has stopped (after `end()`/`destroy()` on a detached
    /// connection).
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn write_closed(&self, env: &Env) -> Result<AsyncBlock<()>> {
        let shared = self.shared.clone();
        AsyncBlockBuilder::new(async move {
            shared.out.stopped().await;
            Ok(())
        })
        .build(env)
    }
}

/// Takes over a connected `node:net` socket by file descriptor. Must run synchronously on the
/// JS thread before Node closes its own descriptor.
#[napi(catch_unwind)]
pub fn adopt_socket(
    fd: i32,
    initial: Option<BufferSlice>,
    options: NativeOptions,
    dispatch: Function<HookEvent, Unknown<'static>>,
) -> Result<NativeConnection> {
    let request_client_certificate = options.auth_mode == "certificate";
    let log_level = super::options::log_level(&options);
    let config = settings(options)?;
    let hooks = Arc::new(JsHooks::new(&dispatch, request_client_certificate)?.with_log_level(log_level));
    let initial = initial.as_deref().unwrap_or_default().to_vec();
    let id = crate::server::next_connection_id();
    let shared =
        napi::bindgen_prelude::within_runtime_if_available(|| crate::server::adopt(id, fd, &initial, config, hooks))
            .map_err(|err| Error::new(Status::GenericFailure, format!("cannot take over the socket: {err}")))?;
    Ok(NativeConnection::new(shared))
}
