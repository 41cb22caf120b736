//! What the driver tells the operator's logger (`logger` option): a connection's lifecycle,
//! as PostgreSQL's `log_connections` / `log_disconnections` lines say it. Built only when the
//! logger wants the level, so a server without one pays a comparison per event.

use std::time::Instant;

use crate::session::{CloseReason, Session};

/// Levels, least to most severe; a logger at a level takes that level and the ones above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    /// Nothing is logged (the default without a logger).
    #[default]
    Silent,
}

impl LogLevel {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" => Self::Warn,
            "error" => Self::Error,
            "silent" => Self::Silent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Silent => "silent",
        }
    }
}

/// One log line: `msg` and the fields that apply (the JS side drops the absent ones).
#[derive(Debug, Default)]
pub struct LogEvent {
    pub level: LogLevel,
    pub msg: &'static str,
    /// The process id of the connection's BackendKeyData (PostgreSQL's `%p`).
    pub pid: Option<i32>,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// Whether the connection is encrypted, and the server name the client asked for.
    pub tls: Option<bool>,
    pub sni: Option<String>,
    /// A FATAL error's SQLSTATE and message.
    pub code: Option<String>,
    pub message: Option<String>,
    /// How the connection ended ([`CloseReason::as_str`]).
    pub reason: Option<&'static str>,
    pub duration_ms: Option<f64>,
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
}

impl LogEvent {
    /// `connection received`: a client connected (debug).
    pub fn received(session: &Session) -> Self {
        Self {
            level: LogLevel::Debug,
            msg: "connection received",
            pid: Some(session.backend_key().0),
            ..Self::default()
        }
    }

    /// `connection authorized`: authentication succeeded (info).
    pub fn authorized(session: &Session) -> Self {
        let mut event = Self { level: LogLevel::Info, msg: "connection authorized", ..Self::default() };
        event.describe(session);
        event
    }

    /// The FATAL error that ended the session: warn, or info for an operator's shutdown
    /// (SQLSTATE class 57), as PostgreSQL logs both but only one is a problem.
    pub fn fatal(session: &Session) -> Option<Self> {
        let (code, message) = session.fatal_sent()?;
        let level = if code.starts_with("57") { LogLevel::Info } else { LogLevel::Warn };
        let mut event = Self { level, msg: "connection failed", ..Self::default() };
        event.describe(session);
        event.code = Some(code.to_string());
        event.message = Some(message.to_string());
        Some(event)
    }

    /// `disconnection`: how the connection ended, how long it lasted and what it moved (info).
    pub fn disconnection(session: &Session, reason: CloseReason, started: Instant, received: u64, sent: u64) -> Self {
        let mut event = Self::ended(session, reason);
        // Milliseconds to the microsecond.
        event.duration_ms = Some(started.elapsed().as_micros() as f64 / 1000.0);
        event.bytes_received = Some(received);
        event.bytes_sent = Some(sent);
        event
    }

    /// `disconnection` without what only the driver knows (duration, bytes): info for a
    /// connection that sent a StartupMessage (PostgreSQL's `log_disconnections` is about
    /// sessions), debug for the rest (health checks, CancelRequests, SSL probes).
    pub fn ended(session: &Session, reason: CloseReason) -> Self {
        let level = if session.state().has_started { LogLevel::Info } else { LogLevel::Debug };
        let mut event = Self { level, msg: "disconnection", ..Self::default() };
        event.describe(session);
        event.reason = Some(reason.as_str());
        event
    }

    /// Who the client said it is, and whether it came over TLS.
    fn describe(&mut self, session: &Session) {
        self.pid = Some(session.backend_key().0);
        let state = session.state();
        if let Some(info) = &state.client_info {
            self.user = info.parameter("user").map(str::to_string);
            self.database = info.parameter("database").map(str::to_string);
            self.application_name = info.parameter("application_name").map(str::to_string);
        }
        self.tls = Some(state.tls_info.is_some());
        self.sni = state.tls_info.as_ref().and_then(|tls| tls.sni_server_name.clone());
    }
}
