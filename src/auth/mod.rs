//! Authentication exchanges, sans-IO: one state machine per method. An exchange takes the
//! client's answers (its `p` messages) and the verdict of `validateCredentials`, and says what
//! to do next as an [`AuthStep`]. Nothing here sends bytes, reads a clock or calls a hook: the
//! session does what the steps say.

pub mod certificate;
pub mod md5;
mod password;
pub mod scram;
pub mod scram_secret;

pub use password::PasswordExchange;
pub use scram::{ScramExchange, ScramServer, SecretSource};
pub use scram_secret::ScramSecret;

use crate::protocol::{PgError, SqlState};

/// How clients authenticate, named as pg-gateway's `authMode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// `none`: no password; AuthenticationOk right after startup.
    None,
    /// `cleartextPassword`: AuthenticationCleartextPassword, the password in plain text.
    CleartextPassword,
    /// `md5Password` (the default, as in pg-gateway 0.2.4).
    Md5Password,
    /// `certificate`: a verified TLS client certificate whose CN is the user.
    Certificate,
    /// `scramSha256`: PostgreSQL's `scram-sha-256` (with `-PLUS` channel binding over TLS).
    ScramSha256,
}

impl AuthMode {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "cleartextPassword" => Self::CleartextPassword,
            "md5Password" => Self::Md5Password,
            "certificate" => Self::Certificate,
            "scramSha256" => Self::ScramSha256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::CleartextPassword => "cleartextPassword",
            Self::Md5Password => "md5Password",
            Self::Certificate => "certificate",
            Self::ScramSha256 => "scramSha256",
        }
    }
}

/// Credentials as pg-gateway's `validateCredentials` receives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Cleartext { user: String, password: String },
    Md5 { user: String, hash: String, salt: [u8; 4] },
}

/// An authentication request the client must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password with this salt.
    Md5Password { salt: [u8; 4] },
    /// AuthenticationSASL offering SCRAM-SHA-256, and SCRAM-SHA-256-PLUS first when `plus`.
    Sasl { plus: bool },
    /// AuthenticationSASLContinue with this SASL message.
    SaslContinue(Vec<u8>),
}

/// What the session must do next for an exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this request and wait for the client's answer.
    Request(AuthRequest),
    /// Ask `validateCredentials`, then hand its verdict back.
    Validate(Credentials),
    /// Ask `getScramSecret` for the user's secret, then hand it back.
    LookupSecret,
    /// The client is who it says it is.
    Ok,
    /// SASL succeeded: AuthenticationSASLFinal with this message, then as `Ok`.
    SaslOk(Vec<u8>),
    /// Refuse the client with this (FATAL) error.
    Fail(PgError),
}

/// `FATAL 28P01` with PostgreSQL's wording (`auth.c`, `auth_failed`). libpq keys its `.pgpass`
/// retry logic on this code.
pub fn password_failed(user: &str) -> PgError {
    PgError::fatal(SqlState::INVALID_PASSWORD, format!("password authentication failed for user \"{user}\""))
}
