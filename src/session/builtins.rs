//! The built-in behaviour: what the session does with a message no hook handled. This is
//! where PostgreSQL's edge behaviour is reproduced (see `backend_startup.c` and `postgres.c`).

use std::sync::Arc;

use super::{fatal, ClientInfo, Credentials, HookRequest, Phase, Session};
use crate::auth::AuthMode;
use crate::protocol::backend::{self, TransactionStatus};
use crate::protocol::frontend::{self, FrontendMessage};
use crate::protocol::startup::PROTOCOL_3_0;
use crate::protocol::{PgError, SqlState, StartupPacket};

/// Parameters PostgreSQL reports after authentication, with values true of this server.
/// `server_version`, `session_authorization` and `application_name` are filled per session.
const DEFAULT_PARAMETERS: &[(&str, &str)] = &[
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("is_superuser", "off"),
    ("default_transaction_read_only", "off"),
    ("in_hot_standby", "off"),
    ("scram_iterations", "4096"),
];

impl Session {
    pub(super) fn startup_packet(&mut self, frame: &[u8]) {
        let packet = match StartupPacket::decode(frame) {
            Ok(packet) => packet,
            Err(err) => return self.fail(err.into()),
        };
        match packet {
            StartupPacket::SslRequest if !self.ssl_tried => {
                self.ssl_tried = true;
                let accept = self.config.tls.is_some();
                backend::encryption_response(&mut self.output, accept);
                if accept {
                    self.start_tls(false);
                }
                // Without TLS configured: 'N', and the client may go on in plaintext (or give
                // up, if it requires TLS).
            }
            StartupPacket::GssEncRequest if !self.gss_tried => {
                self.gss_tried = true;
                backend::encryption_response(&mut self.output, false);
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // A second request of the same kind is a protocol version PostgreSQL does not
                // know (1234.5679 / 1234.5680), and it answers exactly so.
                // Both requests decode only from exactly 8 bytes, so these indexes exist.
                let code = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                self.fail(unsupported_version((code >> 16) as u16, (code & 0xffff) as u16));
            }
            StartupPacket::CancelRequest { .. } => {
                // "For security reasons, no direct reply is made to the cancel request message."
                self.phase = Phase::Closed;
            }
            StartupPacket::Startup(message) => {
                if message.major != 3 {
                    return self.fail(unsupported_version(message.major, message.minor));
                }
                if self.config.tls.is_some() && self.tls_is_plain() {
                    // pg-gateway's README promises this; 0.2.4 did not do it.
                    return self.fail(
                        PgError::fatal(SqlState::PROTOCOL_VIOLATION, "SSL connection is required")
                            .with_hint("Connect with sslmode=require (or stronger)."),
                    );
                }
                let (options, parameters): (Vec<_>, Vec<_>) =
                    message.parameters.into_iter().partition(|(name, _)| name.starts_with("_pq_."));
                if parameters.iter().all(|(name, value)| name != "user" || value.is_empty()) {
                    return self.fail(PgError::fatal(
                        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                        "no PostgreSQL user name specified in startup packet",
                    ));
                }
                if message.minor > 0 || !options.is_empty() {
                    let unrecognized: Vec<String> = options.into_iter().map(|(name, _)| name).collect();
                    backend::negotiate_protocol_version(&mut self.output, PROTOCOL_3_0, &unrecognized);
                }
                self.state.has_started = true;
                self.state.client_info = Some(Arc::new(ClientInfo {
                    major_version: message.major,
                    minor_version: message.minor,
                    parameters,
                }));
                self.state_version += 1;
                self.phase = Phase::Authenticating(self.config.auth_mode);
                if self.config.hooks.on_startup {
                    self.queued = Some(HookRequest::Startup);
                } else {
                    self.begin_auth();
                }
            }
        }
    }

    /// Sends the authentication request for the configured mode.
    pub(super) fn begin_auth(&mut self) {
        match self.config.auth_mode {
            AuthMode::None => self.complete_auth(),
            AuthMode::CleartextPassword => backend::authentication_cleartext_password(&mut self.output),
            AuthMode::Md5Password => backend::authentication_md5_password(&mut self.output, self.secrets.md5_salt),
            AuthMode::Certificate => self.certificate_auth(),
        }
    }

    /// `certificate`: a client certificate that the CA vouches for, whose CN is the user.
    /// The failure answers and texts are pg-gateway 0.2.4's.
    fn certificate_auth(&mut self) {
        if self.tls_is_plain() {
            return self.fail(PgError::fatal(
                SqlState::CONNECTION_EXCEPTION,
                "ssl connection required when auth mode is 'certificate'",
            ));
        }
        let common_name = match self.verify_client_certificate() {
            Ok(common_name) => common_name,
            Err(reason) => {
                return self.fail(
                    PgError::fatal(SqlState::CONNECTION_EXCEPTION, "client certificate is invalid").with_detail(reason),
                )
            }
        };
        let user = self.state.client_info.as_ref().and_then(|i| i.parameter("user")).unwrap_or_default();
        match common_name {
            Some(cn) if cn == user => self.complete_auth(),
            cn => {
                let message =
                    format!("client certificate CN '{}' does not match user '{user}'", cn.unwrap_or_default());
                self.fail(PgError::fatal(SqlState::CONNECTION_EXCEPTION, message))
            }
        }
    }

    /// AuthenticationOk, the ParameterStatus set, BackendKeyData, ReadyForQuery; then
    /// `onAuthenticated` (after them, as in pg-gateway 0.2.4).
    pub(super) fn complete_auth(&mut self) {
        self.state.is_authenticated = true;
        self.state_version += 1;
        self.phase = Phase::Ready;
        let out = &mut self.output;
        backend::authentication_ok(out);
        let info = self.state.client_info.as_ref();
        let user = info.and_then(|i| i.parameter("user")).unwrap_or_default();
        let application_name = info.and_then(|i| i.parameter("application_name")).unwrap_or_default();
        let per_session = [
            ("server_version", self.config.server_version.as_str()),
            ("session_authorization", user),
            ("application_name", application_name),
        ];
        let overrides = &self.config.server_parameters;
        for (name, value) in per_session.iter().chain(DEFAULT_PARAMETERS) {
            if !overrides.iter().any(|(n, _)| n == name) {
                backend::parameter_status(out, name, value);
            }
        }
        for (name, value) in overrides {
            backend::parameter_status(out, name, value);
        }
        backend::backend_key_data(out, self.secrets.process_id, &self.secrets.secret_key);
        backend::ready_for_query(out, TransactionStatus::Idle);
        if self.config.hooks.on_authenticated {
            self.queued = Some(HookRequest::Authenticated);
        }
    }

    pub(super) fn auth_failed(&mut self) {
        let user = self.state.client_info.as_ref().and_then(|i| i.parameter("user"));
        let message = match user {
            Some(user) => format!("password authentication failed for user \"{user}\""),
            None => "password authentication failed".to_string(),
        };
        self.fail(PgError::fatal(SqlState::INVALID_PASSWORD, message));
    }

    pub(super) fn typed_message(&mut self, frame: &[u8]) {
        match self.phase {
            Phase::Authenticating(mode) => self.auth_message(mode, frame),
            Phase::Ready => self.ready_message(frame),
            Phase::StartedByHook => {
                self.fail(PgError::fatal(SqlState::INTERNAL_ERROR, "unknown client info after startup"))
            }
            Phase::Startup | Phase::Closed => {}
        }
    }

    fn auth_message(&mut self, mode: AuthMode, frame: &[u8]) {
        // Typed frames are at least 5 bytes (framing checked the length field).
        let tag = frame[0];
        if tag == b'X' {
            self.client_ended = true;
            self.phase = Phase::Closed;
            return;
        }
        if tag != b'p' {
            return self.fail(PgError::fatal(
                SqlState::PROTOCOL_VIOLATION,
                format!("expected password response, got message type {tag}"),
            ));
        }
        let body = match FrontendMessage::decode(frame) {
            Ok(FrontendMessage::PasswordLike { body }) => body,
            Ok(_) => return,
            Err(err) => return self.fail(err.into()),
        };
        let password = match frontend::password(body) {
            Ok(password) => password.to_string(),
            Err(err) => return self.fail(err.into()),
        };
        let user = self.state.client_info.as_ref().and_then(|i| i.parameter("user")).unwrap_or_default().to_string();
        let credentials = match mode {
            AuthMode::CleartextPassword => Credentials::Cleartext { user, password },
            AuthMode::Md5Password => Credentials::Md5 { user, hash: password, salt: self.secrets.md5_salt },
            AuthMode::None | AuthMode::Certificate => {
                return self.fail(PgError::fatal(
                    SqlState::PROTOCOL_VIOLATION,
                    "unexpected password message: no password was requested",
                ))
            }
        };
        if self.config.hooks.validate_credentials {
            self.queued = Some(HookRequest::ValidateCredentials(credentials));
        } else {
            // pg-gateway 0.2.4: without validateCredentials, nobody gets in.
            self.auth_failed();
        }
    }

    /// A message after authentication that no hook handled: answer it as a server without a
    /// query engine would, so that no client is left waiting.
    fn ready_message(&mut self, frame: &[u8]) {
        // Typed frames are at least 5 bytes (framing checked the length field).
        let tag = frame[0];
        if self.skip_to_sync {
            match tag {
                b'S' => {
                    self.skip_to_sync = false;
                    backend::ready_for_query(&mut self.output, TransactionStatus::Idle);
                }
                b'X' => {
                    self.client_ended = true;
                    self.phase = Phase::Closed;
                }
                _ => {}
            }
            return;
        }
        let message = match FrontendMessage::decode(frame) {
            Ok(message) => message,
            Err(err) => return self.fail(err.into()),
        };
        let out = &mut self.output;
        match message {
            FrontendMessage::Query { .. } => {
                backend::error_response(out, &not_handled("Queries not yet implemented"));
                backend::ready_for_query(out, TransactionStatus::Idle);
            }
            FrontendMessage::Parse { .. }
            | FrontendMessage::Bind { .. }
            | FrontendMessage::Describe { .. }
            | FrontendMessage::Execute { .. }
            | FrontendMessage::Close { .. } => {
                backend::error_response(out, &not_handled("Extended query protocol not yet implemented"));
                self.skip_to_sync = true;
            }
            FrontendMessage::FunctionCall { .. } => {
                backend::error_response(out, &not_handled("Function calls not yet implemented"));
                backend::ready_for_query(out, TransactionStatus::Idle);
            }
            FrontendMessage::Sync => backend::ready_for_query(out, TransactionStatus::Idle),
            // Nothing is buffered on our side, and COPY messages outside COPY are ignored, as
            // PostgreSQL does ("we probably got here because a COPY failed").
            FrontendMessage::Flush
            | FrontendMessage::CopyData { .. }
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail { .. } => {}
            FrontendMessage::Terminate => {
                self.client_ended = true;
                self.phase = Phase::Closed;
            }
            FrontendMessage::PasswordLike { .. } | FrontendMessage::Unknown { .. } => {
                self.fail(PgError::fatal(SqlState::PROTOCOL_VIOLATION, format!("invalid frontend message type {tag}")))
            }
        }
    }
}

fn not_handled(message: &str) -> PgError {
    PgError::error(SqlState::FEATURE_NOT_SUPPORTED, message)
        .with_hint("Answer this message from the onMessage hook and return true.")
}

fn unsupported_version(major: u16, minor: u16) -> PgError {
    fatal(PgError::new(
        crate::protocol::Severity::Fatal,
        SqlState::FEATURE_NOT_SUPPORTED,
        format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"),
    ))
}
