//! The built-in behaviour: what the session does with a message no hook handled. This is
//! where PostgreSQL's edge behaviour is reproduced (see `backend_startup.c` and `postgres.c`).
//! The authentication exchanges themselves are in `crate::auth`.

use std::sync::Arc;

use super::{fatal, AuthenticatedBy, Authentication, ClientInfo, HookRequest, Phase, Session};
use crate::auth::scram::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::auth::{certificate, AuthMode, AuthRequest, AuthStep, PasswordExchange, ScramExchange, SecretSource};
use crate::protocol::backend::{self, TransactionStatus};
use crate::protocol::frontend::FrontendMessage;
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

/// PostgreSQL's detail for plaintext that arrived behind an encryption request.
const UNENCRYPTED_DATA_DETAIL: &str =
    "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.";

impl Session {
    pub(super) fn startup_packet(&mut self, frame: &[u8]) {
        let packet = match StartupPacket::decode(frame) {
            Ok(packet) => packet,
            Err(err) if err.closes_silently() => return self.close_silently(),
            Err(err) => return self.fail(err.into()),
        };
        let Phase::Startup { ssl_tried, gss_tried } = self.phase else { return };
        match packet {
            StartupPacket::SslRequest if !ssl_tried => {
                let accept = self.config.tls.is_some();
                backend::encryption_response(&mut self.output, accept);
                // Bytes already here were sent before our answer, so in the clear, whatever
                // the answer: PostgreSQL refuses them (CVE-2021-23214), with or without TLS.
                if !self.input.is_empty() {
                    return self.fail(
                        PgError::fatal(SqlState::PROTOCOL_VIOLATION, "received unencrypted data after SSL request")
                            .with_detail(UNENCRYPTED_DATA_DETAIL),
                    );
                }
                self.phase = Phase::Startup { ssl_tried: true, gss_tried };
                if accept {
                    self.start_tls(false);
                }
                // Without TLS configured: 'N', and the client may go on in plaintext (or give
                // up, if it requires TLS).
            }
            StartupPacket::GssEncRequest if !gss_tried => {
                backend::encryption_response(&mut self.output, false);
                if !self.input.is_empty() {
                    return self.fail(
                        PgError::fatal(
                            SqlState::PROTOCOL_VIOLATION,
                            "received unencrypted data after GSSAPI encryption request",
                        )
                        .with_detail(UNENCRYPTED_DATA_DETAIL),
                    );
                }
                self.phase = Phase::Startup { ssl_tried, gss_tried: true };
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // A second request of the same kind is a protocol version PostgreSQL does not
                // know (1234.5679 / 1234.5680), and it answers exactly so.
                // Both requests decode only from exactly 8 bytes, so these indexes exist.
                let code = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                self.fail(unsupported_version((code >> 16) as u16, (code & 0xffff) as u16));
            }
            StartupPacket::CancelRequest { process_id, secret_key } => {
                // "For security reasons, no direct reply is made to the cancel request message."
                self.cancel_request = Some(super::CancelRequest { process_id, secret_key: secret_key.to_vec() });
                self.close_silently();
            }
            StartupPacket::UnsupportedVersion { major, minor } if major < 3 => {
                // Such a client reads only protocol 2.0's errors; PostgreSQL answers in those.
                backend::error_response_v2(&mut self.output, &unsupported_version(major, minor));
                self.close_silently();
            }
            StartupPacket::UnsupportedVersion { major, minor } => self.fail(unsupported_version(major, minor)),
            StartupPacket::Startup(message) => {
                if let Some(refusal) = &self.config.refusal {
                    return self.fail(refusal.clone());
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
                self.set_phase(Phase::Authenticating(Authentication::Starting));
                if self.config.hooks.on_startup {
                    self.queued = Some(HookRequest::Startup);
                } else {
                    self.begin_auth();
                }
            }
        }
    }

    pub(super) fn user(&self) -> &str {
        self.state.client_info.as_ref().and_then(|i| i.parameter("user")).unwrap_or_default()
    }

    /// Starts the configured authentication method.
    pub(super) fn begin_auth(&mut self) {
        let step = match self.config.auth_mode {
            AuthMode::None => AuthStep::Ok,
            AuthMode::CleartextPassword => self.start_password(PasswordExchange::cleartext(self.user())),
            AuthMode::Md5Password => self.start_password(PasswordExchange::md5(self.user(), self.secrets.md5_salt)),
            AuthMode::Certificate => {
                let certificate = self.client_certificate();
                if let certificate::ClientCertificate::Invalid(reason) = &certificate {
                    // The client hears "client certificate is invalid"; the operator, why.
                    self.problem = Some(format!("client certificate of user \"{}\" refused: {reason}", self.user()));
                }
                certificate::authenticate(self.user(), certificate)
            }
            AuthMode::ScramSha256 => {
                let (exchange, step) =
                    ScramExchange::start(self.user(), self.channel_binding(), &self.secrets.scram_nonce);
                self.set_phase(Phase::Authenticating(Authentication::Scram(Box::new(exchange))));
                step
            }
        };
        self.auth_step(step);
    }

    fn start_password(&mut self, (exchange, step): (PasswordExchange, AuthStep)) -> AuthStep {
        self.set_phase(Phase::Authenticating(Authentication::Password(exchange)));
        step
    }

    /// Does what an authentication exchange asks.
    fn auth_step(&mut self, step: AuthStep) {
        match step {
            AuthStep::Request(AuthRequest::CleartextPassword) => {
                backend::authentication_cleartext_password(&mut self.output)
            }
            AuthStep::Request(AuthRequest::Md5Password { salt }) => {
                backend::authentication_md5_password(&mut self.output, salt)
            }
            AuthStep::Request(AuthRequest::Sasl { plus }) => {
                let mechanisms: &[&str] = if plus { &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256] } else { &[SCRAM_SHA_256] };
                backend::authentication_sasl(&mut self.output, mechanisms)
            }
            AuthStep::Request(AuthRequest::SaslContinue(data)) => {
                backend::authentication_sasl_continue(&mut self.output, &data)
            }
            AuthStep::LookupSecret if self.config.hooks.get_scram_secret => {
                self.queued = Some(HookRequest::ScramSecret { user: self.user().to_string() });
            }
            // Without getScramSecret nobody is known: every client goes through the mock.
            AuthStep::LookupSecret => self.scram_secret(None),
            AuthStep::SaslOk(data) => {
                backend::authentication_sasl_final(&mut self.output, &data);
                self.complete_auth();
            }
            AuthStep::Validate(credentials) if self.config.hooks.validate_credentials => {
                self.queued = Some(HookRequest::ValidateCredentials(credentials));
            }
            // pg-gateway 0.2.4: without validateCredentials, nobody gets in.
            AuthStep::Validate(_) => self.credentials_verdict(false),
            AuthStep::Ok => self.complete_auth(),
            AuthStep::Fail(err) => {
                self.auth_failed = true;
                self.fail(fatal(err))
            }
        }
    }

    /// `validateCredentials` decided.
    pub(super) fn credentials_verdict(&mut self, valid: bool) {
        let step = match &mut self.phase {
            Phase::Authenticating(Authentication::Password(exchange)) => exchange.verdict(valid),
            _ => return,
        };
        self.auth_step(step);
    }

    /// `getScramSecret` answered (`None`: no such user).
    pub(super) fn scram_secret(&mut self, found: Option<SecretSource>) {
        let step = match &mut self.phase {
            Phase::Authenticating(Authentication::Scram(exchange)) => exchange.secret(found, &self.config.scram),
            _ => return,
        };
        self.auth_step(step);
    }

    /// AuthenticationOk, the ParameterStatus set, BackendKeyData, ReadyForQuery; then
    /// `onAuthenticated` (after them, as in pg-gateway 0.2.4).
    fn complete_auth(&mut self) {
        self.state.is_authenticated = true;
        self.state_version += 1;
        self.authenticated_by(AuthenticatedBy::Session);
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

    /// Authentication is over; `by` says who ended it.
    pub(super) fn authenticated_by(&mut self, by: AuthenticatedBy) {
        self.set_phase(Phase::Ready { by, skip_to_sync: false });
    }

    pub(super) fn typed_message(&mut self, frame: &[u8]) {
        match self.phase {
            Phase::Authenticating(_) => self.auth_message(frame),
            Phase::Ready { by: AuthenticatedBy::Hook { client_info: false }, .. } => {
                self.fail(PgError::fatal(SqlState::INTERNAL_ERROR, "unknown client info after startup"))
            }
            // pg-gateway 0.2.4 validates a password message whenever it arrives while a hook
            // owns the startup: a hook may have asked for it.
            Phase::Ready { by: AuthenticatedBy::Hook { .. }, .. } if frame.first() == Some(&b'p') => {
                self.hook_owned_password(frame)
            }
            Phase::Ready { .. } => self.ready_message(frame),
            Phase::Startup { .. } | Phase::Detached | Phase::Closed(_) => {}
        }
    }

    fn hook_owned_password(&mut self, frame: &[u8]) {
        let exchange = match self.config.auth_mode {
            AuthMode::CleartextPassword => PasswordExchange::cleartext(self.user()).0,
            AuthMode::Md5Password => PasswordExchange::md5(self.user(), self.secrets.md5_salt).0,
            // 0.2.4 ignores it in the other modes.
            AuthMode::None | AuthMode::Certificate | AuthMode::ScramSha256 => return,
        };
        self.set_phase(Phase::Authenticating(Authentication::Password(exchange)));
        self.auth_message(frame);
    }

    fn auth_message(&mut self, frame: &[u8]) {
        // Typed frames are at least 5 bytes (framing checked the length field).
        let tag = frame[0];
        if tag == b'X' {
            return self.set_phase(Phase::Closed(super::CloseReason::ClientEnded));
        }
        let scram = matches!(self.phase, Phase::Authenticating(Authentication::Scram(_)));
        if tag != b'p' {
            let expected = if scram { "SASL" } else { "password" };
            return self.fail(PgError::fatal(
                SqlState::PROTOCOL_VIOLATION,
                format!("expected {expected} response, got message type {tag}"),
            ));
        }
        let body = &frame[5..];
        let step = match &mut self.phase {
            Phase::Authenticating(Authentication::Password(exchange)) => exchange.receive(body),
            Phase::Authenticating(Authentication::Scram(exchange)) => exchange.receive(body),
            _ => AuthStep::Fail(PgError::fatal(
                SqlState::PROTOCOL_VIOLATION,
                "unexpected password message: no password was requested",
            )),
        };
        self.auth_step(step);
    }

    /// A message after authentication that no hook handled: answer it as a server without a
    /// query engine would, so that no client is left waiting.
    fn ready_message(&mut self, frame: &[u8]) {
        // Typed frames are at least 5 bytes (framing checked the length field).
        let tag = frame[0];
        if let Phase::Ready { skip_to_sync, .. } = &mut self.phase {
            if *skip_to_sync {
                match tag {
                    b'S' => self.sync(),
                    b'X' => self.set_phase(Phase::Closed(super::CloseReason::ClientEnded)),
                    _ => {}
                }
                return;
            }
        }
        let message = match FrontendMessage::decode(frame) {
            Ok(message) => message,
            // A malformed body is an ERROR in PostgreSQL (`pq_getmsg*` inside the command
            // loop): the session goes on, skipping to Sync after an extended-protocol message.
            Err(err) => {
                let err = PgError::error(SqlState::PROTOCOL_VIOLATION, err.to_string());
                return self.error_then_recover(&err, Some(tag));
            }
        };
        if self.config.hooks.on_query && self.query_message(&message) {
            return;
        }
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
                let err = not_handled("Extended query protocol not yet implemented");
                self.error_then_recover(&err, Some(tag));
            }
            FrontendMessage::FunctionCall { .. } => {
                backend::error_response(out, &not_handled("Function calls not yet implemented"));
                backend::ready_for_query(out, TransactionStatus::Idle);
            }
            FrontendMessage::Sync => self.sync(),
            // Nothing is buffered on our side, and COPY messages outside COPY are ignored, as
            // PostgreSQL does ("we probably got here because a COPY failed").
            FrontendMessage::Flush
            | FrontendMessage::CopyData { .. }
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail { .. } => {}
            FrontendMessage::Terminate => self.set_phase(Phase::Closed(super::CloseReason::ClientEnded)),
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
    PgError::fatal(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"),
    )
}
