//! `NativeServer`: the Rust listener behind `createServer()`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::connection::NativeConnection;
use super::hooks::{HookEvent, JsHooks};
use super::options::{settings, NativeOptions};
use crate::server::{Hooks, Listener, ServerStats};
use crate::session::SessionConfig;

#[napi]
pub struct NativeServer {
    config: Arc<SessionConfig>,
    /// Kept across listen() and close(), so the counters outlive a listener.
    stats: Arc<ServerStats>,
    /// The `stats` option: connections add their bytes and hook calls to `stats`.
    count_connections: bool,
    max_connections: Option<usize>,
    hooks: Arc<dyn Hooks>,
    listener: Arc<Mutex<Option<Arc<Listener>>>>,
}

/// `server.stats()`.
#[napi(object)]
pub struct ServerStatsObject {
    pub connections_open: u32,
    pub connections_total: f64,
    pub connections_refused: f64,
    pub bytes_received: f64,
    pub bytes_sent: f64,
    pub hook_calls: f64,
    pub hook_time_ms: f64,
    pub auth_failures: f64,
    pub tls_handshakes: f64,
    pub tls_failures: f64,
}

#[napi(object)]
pub struct AddressInfo {
    pub address: String,
    pub family: String,
    pub port: u32,
}

#[napi]
impl NativeServer {
    #[napi(constructor, catch_unwind)]
    pub fn new(options: NativeOptions, dispatch: Function<HookEvent, Unknown<'static>>) -> Result<Self> {
        let request_client_certificate = options.auth_mode == "certificate";
        let max_connections = options.max_connections.map(|max| max as usize);
        let log_level = super::options::log_level(&options);
        let count_connections = options.stats.unwrap_or(true);
        Ok(Self {
            stats: Arc::default(),
            count_connections,
            max_connections,
            config: settings(options)?,
            hooks: Arc::new(JsHooks::new(&dispatch, request_client_certificate)?.with_log_level(log_level)),
            listener: Arc::default(),
        })
    }

    /// Binds `host:port` (port 0 picks a free one) and starts accepting.
    #[napi(ts_return_type = "Promise<AddressInfo>", catch_unwind)]
    pub fn listen(&self, env: &Env, host: String, port: u32) -> Result<AsyncBlock<AddressInfo>> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| Error::new(Status::InvalidArg, format!("host must be an IP address, got '{host}'")))?;
        let port = u16::try_from(port).map_err(|_| Error::new(Status::InvalidArg, format!("invalid port {port}")))?;
        let config = self.config.clone();
        let hooks = self.hooks.clone();
        let slot = self.listener.clone();
        let max_connections = self.max_connections;
        let stats = self.count_connections.then(|| self.stats.clone());
        let accepted = self.stats.clone();
        AsyncBlockBuilder::new(async move {
            if lock(&slot).is_some() {
                return Err(Error::new(Status::GenericFailure, "server is already listening"));
            }
            let listener =
                Listener::bind(SocketAddr::new(ip, port), config, hooks, max_connections, accepted, stats.is_some())
                    .await
                    .map_err(|err| Error::new(Status::GenericFailure, listen_error(&err, &host, port)))?;
            let addr = listener.local_addr;
            *lock(&slot) = Some(Arc::new(listener));
            Ok(AddressInfo {
                address: addr.ip().to_string(),
                family: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.to_string(),
                port: u32::from(addr.port()),
            })
        })
        .build(env)
    }

    /// Resolves when the server stops listening. While it is pending, Node stays alive, as it
    /// would for a listening `net.Server`.
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn serving(&self, env: &Env) -> Result<AsyncBlock<()>> {
        let listener = lock(&self.listener).clone();
        AsyncBlockBuilder::new(async move {
            if let Some(listener) = listener {
                listener.wait_stopped().await;
            }
            Ok(())
        })
        .build(env)
    }

    /// The connection with this id, while it is open.
    #[napi(catch_unwind)]
    pub fn connection(&self, id: u32) -> Option<NativeConnection> {
        let listener = lock(&self.listener).clone()?;
        listener.connection(id).map(NativeConnection::new)
    }

    /// The counters (`server.stats()`), with the live connections' bytes so far.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> ServerStatsObject {
        let snapshot = match lock(&self.listener).as_ref() {
            Some(listener) => listener.stats(),
            None => self.stats.snapshot(std::iter::empty()),
        };
        let open = lock(&self.listener).as_ref().map_or(0, |l| l.connection_count() as u32);
        ServerStatsObject {
            connections_open: open,
            connections_total: snapshot.connections_total as f64,
            connections_refused: snapshot.connections_refused as f64,
            bytes_received: snapshot.bytes_received as f64,
            bytes_sent: snapshot.bytes_sent as f64,
            hook_calls: snapshot.hook_calls as f64,
            hook_time_ms: snapshot.hook_time_us as f64 / 1000.0,
            auth_failures: snapshot.auth_failures as f64,
            tls_handshakes: snapshot.tls_handshakes as f64,
            tls_failures: snapshot.tls_failures as f64,
        }
    }

    #[napi(getter, catch_unwind)]
    pub fn connection_count(&self) -> u32 {
        lock(&self.listener).as_ref().map_or(0, |l| l.connection_count() as u32)
    }

    /// Stops accepting and ends open connections: FATAL 57P01 to each session once its hook
    /// (if one runs) has answered, and at `grace_period` milliseconds whatever is left is
    /// closed at once. Resolves when all are closed.
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn close(&self, env: &Env, grace_period: u32) -> Result<AsyncBlock<()>> {
        // The listener stays in its slot while it drains: hooks of the connections still open
        // find them by id, and `connectionCount` counts them down. It leaves once all are gone.
        let listener = lock(&self.listener).clone();
        let slot = self.listener.clone();
        let grace = std::time::Duration::from_millis(u64::from(grace_period));
        AsyncBlockBuilder::new(async move {
            if let Some(listener) = listener {
                listener.close(grace).await;
                let mut current = lock(&slot);
                if current.as_ref().is_some_and(|l| Arc::ptr_eq(l, &listener)) {
                    *current = None;
                }
            }
            Ok(())
        })
        .build(env)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bind failure worded as Node words it (`listen EADDRINUSE: address already in use
/// 127.0.0.1:5432`), so that the JS side can give the error Node's `code`.
fn listen_error(err: &std::io::Error, host: &str, port: u16) -> String {
    use std::io::ErrorKind;
    let code = match err.kind() {
        ErrorKind::AddrInUse => Some(("EADDRINUSE", "address already in use")),
        ErrorKind::PermissionDenied => Some(("EACCES", "permission denied")),
        ErrorKind::AddrNotAvailable => Some(("EADDRNOTAVAIL", "address not available")),
        _ => None,
    };
    match code {
        Some((code, text)) => format!("listen {code}: {text} {host}:{port}"),
        None => format!("listen {host}:{port}: {err}"),
    }
}
