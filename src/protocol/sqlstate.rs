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
    /// `57P01`: the server is shutting down (`server.close()`).
    pub const ADMIN_SHUTDOWN: Self = Self("57P01");
    /// `XX000`: a JS hook failed with an error that carried no SQLSTATE of its own.
    pub const INTERNAL_ERROR: Self = Self("XX000");

    /// The code as sent on the wire.
    pub const fn code(self) -> &'static str {
        self.0
    }
}
