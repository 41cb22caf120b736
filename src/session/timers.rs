//! Time and output backlog, owned by the session. Drivers pass the current time in
//! (`handle_timeout`), ask when to wake (`poll_timeout`), and report how much of the output
//! they have not sent yet (`handle_backlog`); they never decide a deadline themselves.

use std::time::{Duration, Instant};

/// Above this many bytes of output not yet taken by the client (what the driver holds plus
/// what the session has not handed out), the session processes no further message and reads
/// no more: a client that does not read costs about one answer of memory, as in PostgreSQL.
pub const OUTPUT_HIGH_WATER: usize = 1024 * 1024;

/// While a hook runs, the session takes at most this many bytes ahead of it. It keeps reading
/// that far so that a client that leaves is noticed (and its socket freed) even when the hook
/// never settles, and stops there so that a client cannot pile up memory behind a slow hook.
pub const READ_AHEAD_LIMIT: usize = 64 * 1024;

/// How long a hook may still run after its client closed its side: long enough for a
/// half-closed client to get its answer, short enough that clients which left do not pile up
/// behind a hook that never settles.
pub const HOOK_GRACE_AFTER_EOF: Duration = Duration::from_secs(5);

/// After a graceful close, how long a driver keeps reading (and discarding) until the client
/// closes too. Closing a socket that still has unread bytes makes the kernel send RST and drop
/// what it had not sent yet: the FATAL error just queued would be lost. Both drivers use it.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// The write deadline moves forward in steps of at least this much (see `handle_backlog`).
pub(super) const STALL_DEADLINE_STEP: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct Timers {
    /// PostgreSQL's `authentication_timeout`: the startup must be over by then.
    pub auth: Option<Instant>,
    /// No output was taken by the client since `writeTimeout` before this.
    pub stall: Option<Instant>,
    /// Server shutdown: whatever still runs then is ended with 57P01.
    pub shutdown: Option<Instant>,
    /// The client ended while a hook ran: the hook has until then.
    pub orphan: Option<Instant>,
    /// A deadline changed since the driver last asked (the JS driver re-arms its timer then).
    pub changed: bool,
}

impl Timers {
    pub fn earliest(&self) -> Option<Instant> {
        [self.auth, self.stall, self.shutdown, self.orphan].into_iter().flatten().min()
    }

    pub fn set_auth(&mut self, at: Option<Instant>) {
        self.changed |= self.auth != at;
        self.auth = at;
    }

    pub fn set_stall(&mut self, at: Option<Instant>) {
        self.changed |= self.stall != at;
        self.stall = at;
    }

    pub fn set_orphan(&mut self, at: Option<Instant>) {
        self.changed |= self.orphan != at;
        self.orphan = at;
    }

    pub fn set_shutdown(&mut self, at: Option<Instant>) {
        self.changed |= self.shutdown != at;
        self.shutdown = at;
    }
}

/// What the driver last reported about the output it holds.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// Bytes given to the driver and not yet sent.
    pub unsent: usize,
    /// Bytes sent so far: when this moves, the client is reading.
    pub sent: u64,
}
