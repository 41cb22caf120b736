//! A server's counters (`server.stats()`): relaxed atomic adds on paths that already do far
//! more work (an accept, a hook call, a connection's end), so they can stay on.

use std::sync::atomic::{AtomicU64, Ordering};

use super::conn::ConnShared;

#[derive(Default)]
pub struct ServerStats {
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    /// Bytes of connections that have ended (live ones are added when read).
    bytes_received_closed: AtomicU64,
    bytes_sent_closed: AtomicU64,
    hook_calls: AtomicU64,
    hook_time_us: AtomicU64,
    auth_failures: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
}

/// A copy of the counters, with the live connections' bytes added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_total: u64,
    pub connections_refused: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub hook_calls: u64,
    pub hook_time_us: u64,
    pub auth_failures: u64,
    pub tls_handshakes: u64,
    pub tls_failures: u64,
}

/// One connection's hook counters: uncontended relaxed adds (only its driver task writes),
/// moved to the server's totals when it ends.
#[derive(Default)]
pub struct HookCounters {
    calls: AtomicU64,
    time_us: AtomicU64,
}

impl HookCounters {
    /// A hook call that took `took`, from its call until it settled.
    pub fn hook_done(&self, took: std::time::Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.time_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn time_us(&self) -> u64 {
        self.time_us.load(Ordering::Relaxed)
    }
}

/// How a connection ended, for the counters.
pub struct Ending {
    pub tls_handshake: bool,
    pub tls_failed: bool,
    pub auth_failed: bool,
}

impl ServerStats {
    pub fn accepted(&self, refused: bool) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        if refused {
            self.connections_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `conn` has ended: its bytes move to the totals.
    pub fn ended(&self, conn: &ConnShared, ending: &Ending) {
        self.bytes_received_closed.fetch_add(conn.out.received_total(), Ordering::Relaxed);
        self.bytes_sent_closed.fetch_add(conn.out.sent(), Ordering::Relaxed);
        self.hook_calls.fetch_add(conn.hooks.calls(), Ordering::Relaxed);
        self.hook_time_us.fetch_add(conn.hooks.time_us(), Ordering::Relaxed);
        let count = |counter: &AtomicU64, yes: bool| {
            if yes {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        };
        count(&self.tls_handshakes, ending.tls_handshake);
        count(&self.tls_failures, ending.tls_failed);
        count(&self.auth_failures, ending.auth_failed);
    }

    /// The counters, with `live` connections' bytes so far.
    pub fn snapshot<'a>(&self, live: impl Iterator<Item = &'a ConnShared>) -> StatsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut snapshot = StatsSnapshot {
            connections_total: load(&self.connections_total),
            connections_refused: load(&self.connections_refused),
            bytes_received: load(&self.bytes_received_closed),
            bytes_sent: load(&self.bytes_sent_closed),
            hook_calls: load(&self.hook_calls),
            hook_time_us: load(&self.hook_time_us),
            auth_failures: load(&self.auth_failures),
            tls_handshakes: load(&self.tls_handshakes),
            tls_failures: load(&self.tls_failures),
        };
        for conn in live {
            snapshot.bytes_received += conn.out.received_total();
            snapshot.bytes_sent += conn.out.sent();
            snapshot.hook_calls += conn.hooks.calls();
            snapshot.hook_time_us += conn.hooks.time_us();
        }
        snapshot
    }
}
