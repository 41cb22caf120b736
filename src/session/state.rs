//! The connection state JS sees as `connection.state` (pg-gateway's `State`).

use std::sync::Arc;

/// What the client said in its StartupMessage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub major_version: u16,
    pub minor_version: u16,
    /// In the order the client sent them; `_pq_.` protocol options are not included.
    pub parameters: Vec<(String, String)>,
}

impl ClientInfo {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What the TLS handshake established (filled by the TLS layer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub sni_server_name: Option<String>,
    /// The negotiated ALPN protocol (`postgresql` for libpq 17 and later).
    pub alpn_protocol: Option<String>,
    /// The client's certificate (DER), when one was requested and sent.
    pub client_certificate: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub has_started: bool,
    pub is_authenticated: bool,
    /// Shared, not copied, by the snapshots a driver publishes: a connection keeps one copy
    /// of its parameters (and client certificate) for its whole life.
    pub client_info: Option<Arc<ClientInfo>>,
    pub tls_info: Option<Arc<TlsInfo>>,
    /// ReadyForQuery's status as the query API tracks it (`onQuery` only; idle otherwise).
    pub transaction_status: crate::protocol::backend::TransactionStatus,
}
