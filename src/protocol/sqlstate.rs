//! The SQLSTATE codes this library itself sends, named as in PostgreSQL's errcodes appendix
//! (<https://www.postgresql.org/docs/current/errcodes-appendix.html>). Errors that come from
//! JS hooks may carry any code; these are the ones the built-in behaviour chooses.

/// A five-character SQLSTATE code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqlState(&'static str);

impl SqlState {
    /// `08000`: pg-gateway 0.2.4 uses it for certificate and TLS failures.
    pub const CONNECTION_EXCEPTION: Self = Self("08000");
    /// `08006`: the upstream server of a proxied connection cannot be reached.
    pub const CONNECTION_FAILURE: Self = Self("08006");
    /// `08P01`: malformed or out-of-order protocol messages.
    pub const PROTOCOL_VIOLATION: Self = Self("08P01");
    /// `0A000`: an unsupported protocol version, or a message the built-ins cannot serve.
    pub const FEATURE_NOT_SUPPORTED: Self = Self("0A000");
    /// `28000`: no user name, or an authentication method that cannot run.
    pub const INVALID_AUTHORIZATION_SPECIFICATION: Self = Self("28000");
    /// `28P01`: wrong password. libpq keys `.pgpass` retry logic on this code.
    pub const INVALID_PASSWORD: Self = Self("28P01");
    /// `53300`: more clients than `maxConnections` ("sorry, too many clients already").
    pub const TOO_MANY_CONNECTIONS: Self = Self("53300");
    /// `57P01`: the server is shutting down (`server.close()`).
    pub const ADMIN_SHUTDOWN: Self = Self("57P01");
    /// `22023`: a format code other than 0 and 1.
    pub const INVALID_PARAMETER_VALUE: Self = Self("22023");
    /// `42601`: a statement the query API cannot take (several commands in one Parse).
    pub const SYNTAX_ERROR: Self = Self("42601");
    /// `54011`: more result columns than PostgreSQL allows.
    pub const PROGRAM_LIMIT_EXCEEDED: Self = Self("54011");
    /// `22P02`: a value that is not valid input for its type.
    pub const INVALID_TEXT_REPRESENTATION: Self = Self("22P02");
    /// `22003`: a number out of its type's range.
    pub const NUMERIC_VALUE_OUT_OF_RANGE: Self = Self("22003");
    /// `22P03`: a binary parameter of the wrong length or shape.
    pub const INVALID_BINARY_REPRESENTATION: Self = Self("22P03");
    /// `22007`: a date or time PostgreSQL would not read.
    pub const INVALID_DATETIME_FORMAT: Self = Self("22007");
    /// `22008`: a date or timestamp outside PostgreSQL's range.
    pub const DATETIME_FIELD_OVERFLOW: Self = Self("22008");
    /// `22021`: text that is not UTF-8, or holds a NUL.
    pub const CHARACTER_NOT_IN_REPERTOIRE: Self = Self("22021");
    /// `25P02`: a statement inside a transaction that already failed.
    pub const IN_FAILED_SQL_TRANSACTION: Self = Self("25P02");
    /// `26000`: no prepared statement of that name.
    pub const INVALID_SQL_STATEMENT_NAME: Self = Self("26000");
    /// `34000`: no portal of that name.
    pub const INVALID_CURSOR_NAME: Self = Self("34000");
    /// `42P03`: a portal of that name exists already.
    pub const DUPLICATE_CURSOR: Self = Self("42P03");
    /// `42P05`: a prepared statement of that name exists already.
    pub const DUPLICATE_PREPARED_STATEMENT: Self = Self("42P05");
    /// `42804`: an array whose element type is not the declared one.
    pub const DATATYPE_MISMATCH: Self = Self("42804");
    /// `42883`: binary format asked for a type without a binary form here.
    pub const UNDEFINED_FUNCTION: Self = Self("42883");
    /// `42704`: a type name the query API does not know.
    pub const UNDEFINED_OBJECT: Self = Self("42704");
    /// `57014`: a statement cancelled by a CancelRequest.
    pub const QUERY_CANCELED: Self = Self("57014");
    /// `XX000`: a JS hook failed with an error that carried no SQLSTATE of its own.
    pub const INTERNAL_ERROR: Self = Self("XX000");

    /// The code as sent on the wire.
    pub const fn code(self) -> &'static str {
        self.0
    }
}
