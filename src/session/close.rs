//! Why a session (and so its connection) ended.

/// Why a connection ended. The JS `'close'` event carries [`CloseReason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (EOF, or Terminate).
    ClientEnded,
    /// The session ended it (a FATAL error, a silent protocol close) or JS called `end()`.
    Closed,
    /// The socket failed (reset, broken pipe) or JS called `destroy()`.
    Error,
    /// A deadline passed: the startup did not finish within `authTimeout`, or the client took
    /// no output for `writeTimeout`.
    Timeout,
    /// The server is shutting down.
    Shutdown,
    /// JS took the connection over with `detach()` (or `proxy()`).
    Detached,
}

impl CloseReason {
    pub const ALL: [Self; 6] =
        [Self::ClientEnded, Self::Closed, Self::Error, Self::Timeout, Self::Shutdown, Self::Detached];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientEnded => "end",
            Self::Closed => "closed",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Shutdown => "shutdown",
            Self::Detached => "detached",
        }
    }

    /// Whether output still pending is dropped and the socket closed at once, rather than sent
    /// first: after a timeout (PostgreSQL closes a stalled startup without a word, and a client
    /// that takes no output will not take more) and after a socket error.
    pub fn aborts(self) -> bool {
        matches!(self, Self::Timeout | Self::Error)
    }
}
