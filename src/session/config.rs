//! What a session needs to know that the client does not tell it.

use std::time::Duration;

use crate::auth::AuthMode;
use crate::protocol::FrameLimits;

/// Which JS hooks exist. A hook that does not exist costs no crossing into JS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookSet {
    pub on_message: bool,
    pub on_startup: bool,
    pub validate_credentials: bool,
    pub get_scram_secret: bool,
    pub on_cancel: bool,
    pub on_authenticated: bool,
    pub on_tls_upgrade: bool,
    /// `onQuery`: the session implements the query protocols and asks JS to run statements.
    pub on_query: bool,
    /// `onDescribe`: describes prepared statements without running them.
    pub on_describe: bool,
}

/// TLS for the sessions of a server: with it, SSLRequest gets 'S', direct TLS is accepted, and
/// plaintext startups are refused.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// A configuration fixed in advance (`tls: { key, cert }`); `None` means the `tls`
    /// callback chooses one per connection, once the ClientHello's server name is known.
    pub fixed: Option<std::sync::Arc<crate::tls::TlsServer>>,
}

/// Per-server settings shared by all its sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub auth_mode: AuthMode,
    /// `server_version` reported after authentication.
    pub server_version: String,
    /// ParameterStatus values that replace or extend the defaults.
    pub server_parameters: Vec<(String, String)>,
    pub hooks: HookSet,
    pub limits: FrameLimits,
    pub tls: Option<TlsSettings>,
    /// PostgreSQL's `authentication_timeout`: the whole startup must finish within it.
    pub auth_timeout: Duration,
    /// How long the client may take none of the output we hold before the connection is
    /// dropped (`None`: forever). PostgreSQL has no such limit; a gateway holding output in
    /// memory for a client that never reads needs one.
    pub write_timeout: Option<Duration>,
    /// SCRAM's per-server state (the mock-secret key for unknown users).
    pub scram: std::sync::Arc<crate::auth::ScramServer>,
    /// Whether a cancel key belongs to a live connection of the process (drivers pass the
    /// registry's `crate::cancel::is_live`); such CancelRequests bypass `onMessage`.
    pub live_cancel_key: Option<fn(i32, &[u8]) -> bool>,
    /// The server is full: sessions of this config answer the StartupMessage with this error
    /// (`FATAL 53300`) and close, as PostgreSQL does when it has no room for the client.
    /// Encryption requests before it are answered as usual; a CancelRequest still goes through.
    pub refusal: Option<crate::protocol::PgError>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::Md5Password,
            server_version: "16.3 (pg-gateway-native)".into(),
            server_parameters: Vec::new(),
            hooks: HookSet::default(),
            limits: FrameLimits::default(),
            tls: None,
            auth_timeout: Duration::from_secs(60),
            write_timeout: Some(Duration::from_secs(60)),
            // Drivers give each server a random key; a fixed one keeps tests deterministic.
            scram: std::sync::Arc::new(crate::auth::ScramServer::new([0; 32])),
            live_cancel_key: None,
            refusal: None,
        }
    }
}

/// Random values for one session, chosen by the driver so the session stays deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub md5_salt: [u8; 4],
    pub process_id: i32,
    pub secret_key: [u8; 4],
    /// The random part of the server's SCRAM nonce.
    pub scram_nonce: [u8; crate::auth::scram::SERVER_NONCE_LEN],
}
