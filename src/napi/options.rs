//! JS options -> Rust settings. `index.js` has already normalised names (pg-gateway's option
//! object in, this plain object out); here we only validate and convert.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::auth::AuthMode;
use crate::protocol::FrameLimits;
use crate::session::{HookSet, SessionConfig, TlsSettings};

use super::tls::{tls_server, TlsOptionsInput};

#[napi(object)]
pub struct NativeOptions {
    pub auth_mode: String,
    pub server_version: Option<String>,
    pub server_parameters: Option<HashMap<String, String>>,
    /// Names of the hooks the user defined: `onMessage`, `onStartup`, ...
    pub hooks: Vec<String>,
    /// Largest message with user data (Query, Parse, Bind, CopyData), in bytes.
    pub max_message_size: Option<u32>,
    /// PostgreSQL's `authentication_timeout`, in milliseconds.
    pub auth_timeout: Option<u32>,
    /// How long a client may take none of our output before it is dropped, in milliseconds;
    /// 0 for never.
    pub write_timeout: Option<u32>,
    /// Fixed TLS options (`tls: { key, cert, ca?, passphrase? }`).
    pub tls: Option<TlsOptionsInput>,
    /// True when `tls` is a callback that chooses options per server name.
    pub tls_callback: Option<bool>,
    /// `createServer` only: clients at once; beyond, `FATAL 53300`.
    pub max_connections: Option<u32>,
    /// `createServer` only: false stops the per-connection counters of `server.stats()`.
    pub stats: Option<bool>,
    /// The least severe level sent to the `logger` option (`debug`, `info`, `warn`, `error`,
    /// `silent`); absent without a logger.
    pub log_level: Option<String>,
}

/// The `logLevel` option (already checked in JS; `silent` for anything else).
pub fn log_level(options: &NativeOptions) -> crate::server::LogLevel {
    options.log_level.as_deref().and_then(crate::server::LogLevel::parse).unwrap_or_default()
}

/// A key for SCRAM's mock salts, from the OS's CSPRNG (the connection secrets' fallback if
/// there is none, so that a server still starts).
fn random_key() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut key = [0; 32];
    if ring::rand::SystemRandom::new().fill(&mut key).is_err() {
        let secrets = crate::server::secrets();
        key[..18].copy_from_slice(&secrets.scram_nonce);
        key[18..22].copy_from_slice(&secrets.secret_key);
    }
    key
}

pub fn settings(options: NativeOptions) -> Result<Arc<SessionConfig>> {
    let auth_mode = AuthMode::parse(&options.auth_mode).ok_or_else(|| {
        Error::new(
            Status::InvalidArg,
            format!(
                "unknown authMode '{}': expected 'none', 'cleartextPassword', 'md5Password', 'scramSha256' or 'certificate'",
                options.auth_mode
            ),
        )
    })?;
    let has = |name: &str| options.hooks.iter().any(|h| h == name);
    let hooks = HookSet {
        on_message: has("onMessage"),
        on_startup: has("onStartup"),
        validate_credentials: has("validateCredentials"),
        get_scram_secret: has("getScramSecret"),
        on_cancel: has("onCancel"),
        on_authenticated: has("onAuthenticated"),
        on_tls_upgrade: has("onTlsUpgrade"),
        on_query: has("onQuery"),
        on_describe: has("onDescribe"),
    };
    let request_client_certificate = auth_mode == AuthMode::Certificate;
    let tls = match (&options.tls, options.tls_callback.unwrap_or(false)) {
        (Some(fixed), _) => Some(TlsSettings { fixed: Some(tls_server(fixed, request_client_certificate)?) }),
        (None, true) => Some(TlsSettings { fixed: None }),
        (None, false) => None,
    };
    let mut limits = FrameLimits::default();
    if let Some(max) = options.max_message_size {
        limits.large = (max as usize).clamp(crate::protocol::frame::SMALL_MESSAGE_LIMIT, limits.large);
    }
    let defaults = SessionConfig::default();
    let mut server_parameters: Vec<(String, String)> =
        options.server_parameters.unwrap_or_default().into_iter().collect();
    server_parameters.sort();
    let write_timeout = match options.write_timeout {
        None => defaults.write_timeout,
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(u64::from(ms))),
    };
    Ok(Arc::new(SessionConfig {
        auth_mode,
        server_version: options.server_version.unwrap_or(defaults.server_version),
        server_parameters,
        hooks,
        limits,
        tls,
        auth_timeout: options
            .auth_timeout
            .map_or(defaults.auth_timeout, |ms| Duration::from_millis(u64::from(ms.max(1)))),
        write_timeout,
        scram: crate::auth::ScramServer::process(random_key),
        live_cancel_key: Some(crate::cancel::is_live),
        refusal: None,
    }))
}
