//! Errors: [`PgError`] is what a client sees (an ErrorResponse with severity, SQLSTATE and
//! message); [`DecodeError`] is what the codec reports about bytes a peer sent. Every decode
//! error becomes exactly one `FATAL 08P01` through `From<DecodeError> for PgError`.

use std::borrow::Cow;
use std::fmt;

use super::sqlstate::SqlState;

/// ErrorResponse / NoticeResponse severity (the `S` and `V` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Panic,
    Warning,
    Notice,
    Debug,
    Info,
    Log,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Panic => "PANIC",
            Self::Warning => "WARNING",
            Self::Notice => "NOTICE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Log => "LOG",
        }
    }

    /// Parses a severity name as JS hooks give it; unknown names are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ERROR" => Self::Error,
            "FATAL" => Self::Fatal,
            "PANIC" => Self::Panic,
            "WARNING" => Self::Warning,
            "NOTICE" => Self::Notice,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "LOG" => Self::Log,
            _ => return None,
        })
    }

    /// FATAL and PANIC end the session, as they do in PostgreSQL.
    pub fn ends_session(self) -> bool {
        matches!(self, Self::Fatal | Self::Panic)
    }
}

/// An error as the client will see it: one ErrorResponse message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Optional fields in wire order, by their one-byte field type (`D` detail, `H` hint, ...).
    pub fields: Vec<(u8, String)>,
}

impl PgError {
    pub fn new(severity: Severity, code: SqlState, message: impl Into<String>) -> Self {
        Self { severity, code: Cow::Borrowed(code.code()), message: message.into(), fields: Vec::new() }
    }

    pub fn fatal(code: SqlState, message: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, code, message)
    }

    pub fn error(code: SqlState, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// Adds the `D` (detail) field.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.fields.push((b'D', detail.into()));
        self
    }

    /// Adds the `H` (hint) field.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.fields.push((b'H', hint.into()));
        self
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity.as_str(), self.code, self.message)
    }
}

impl std::error::Error for PgError {}

/// Why a peer's bytes could not be decoded. Each variant names what was wrong and the numbers
/// involved, so a log line explains itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A startup-phase packet whose length is under 8 or over the limit.
    StartupPacketLength { len: i64, max: usize },
    /// A typed message whose length field is under 4 or over the limit for its type.
    MessageLength { tag: u8, len: i64, max: usize },
    /// The message ended before a field it declares.
    Truncated { what: &'static str },
    /// A string field without its NUL terminator.
    MissingTerminator { what: &'static str },
    /// A string field that is not valid UTF-8.
    InvalidUtf8 { what: &'static str },
    /// Bytes left over after the last field of a message.
    TrailingBytes { tag: u8, extra: usize },
    /// A count or code that cannot be right (negative count, unknown Describe target ...).
    InvalidField { what: &'static str, value: i64 },
    /// A startup packet whose parameter list does not end with a NUL.
    StartupLayout,
    /// A special request code (SSL, GSSENC, cancel) with the wrong packet length.
    SpecialRequestLength { code: i32, len: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StartupPacketLength { len, max } => {
                write!(f, "invalid length of startup packet: {len} (must be 8 to {max})")
            }
            Self::MessageLength { tag, len, max } => {
                write!(f, "invalid message length {len} for message type {} (must be 4 to {max})", tag_name(*tag))
            }
            Self::Truncated { what } => write!(f, "message too short: missing {what}"),
            Self::MissingTerminator { what } => write!(f, "invalid string in message: {what} is not terminated"),
            Self::InvalidUtf8 { what } => write!(f, "invalid string in message: {what} is not valid UTF-8"),
            Self::TrailingBytes { tag, extra } => {
                write!(
                    f,
                    "invalid message format: {extra} unexpected bytes at the end of message type {}",
                    tag_name(*tag)
                )
            }
            Self::InvalidField { what, value } => write!(f, "invalid {what}: {value}"),
            Self::StartupLayout => write!(f, "invalid startup packet layout: expected terminator as last byte"),
            Self::SpecialRequestLength { code, len } => {
                write!(f, "invalid length of startup packet: {len} for request code {code}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// Whether PostgreSQL closes the connection without a word for this error. It reports
    /// impossible lengths as `COMMERROR` (its own log only): the stream is out of step, so
    /// nothing it could send would be read as intended, and node-postgres, whose
    /// `client.connect(); client.end()` sends Terminate before the StartupMessage, treats such
    /// an answer as a fatal `'error'` event.
    pub fn closes_silently(&self) -> bool {
        // A CancelRequest of the wrong length gets no answer either: PostgreSQL reports it to
        // its log only (COMMERROR), as it never answers a cancel.
        matches!(self, Self::StartupPacketLength { .. } | Self::MessageLength { .. })
            || matches!(self, Self::SpecialRequestLength { code, .. } if *code == super::startup::CANCEL_REQUEST_CODE)
    }
}

impl From<DecodeError> for PgError {
    fn from(err: DecodeError) -> Self {
        PgError::fatal(SqlState::PROTOCOL_VIOLATION, err.to_string())
    }
}

/// `'Q'` for printable tags, the decimal value otherwise (PostgreSQL prints `%d`).
pub fn tag_name(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        tag.to_string()
    }
}
