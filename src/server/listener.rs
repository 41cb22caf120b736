//! The native listener: accept, framing and auth never touch the JS thread. It keeps a
//! registry of live connections so JS can reach them by id and `close()` can end them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::conn::ConnShared;
use super::driver::spawn_connection;
use super::hooks::Hooks;
use super::{ServerStats, StatsSnapshot};
use crate::protocol::{PgError, SqlState};
use crate::session::SessionConfig;

/// After the shutdown deadline, how long connections get to send their 57P01 and close
/// before the ones left are destroyed.
const FLUSH_AFTER_DEADLINE: Duration = Duration::from_secs(2);

/// Connection ids are unique per process, so hooks can tell connections apart across
/// servers and adopted sockets alike.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

pub fn next_connection_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

type Registry = Arc<Mutex<HashMap<u32, Arc<ConnShared>>>>;

pub struct Listener {
    pub local_addr: SocketAddr,
    stats: Arc<ServerStats>,
    /// Whether connections count their bytes and hooks into `stats` (the `stats` option).
    per_connection_stats: bool,
    connections: Registry,
    /// Woken whenever a connection leaves the registry.
    departed: Arc<tokio::sync::Notify>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

impl Listener {
    /// Binds and starts accepting on the current tokio runtime. Beyond `max_connections`
    /// clients at once, a new one is answered `FATAL 53300` at its StartupMessage.
    pub async fn bind(
        addr: SocketAddr,
        config: Arc<SessionConfig>,
        hooks: Arc<dyn Hooks>,
        max_connections: Option<usize>,
        stats: Arc<ServerStats>,
        per_connection_stats: bool,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let connections: Registry = Arc::default();
        let departed = Arc::new(tokio::sync::Notify::new());
        let departures = departed.clone();
        let (stop, mut stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        let registry = connections.clone();
        // Connections let in and not yet gone (the refused ones are in the registry too, for
        // the short time it takes to tell them).
        let admitted = Arc::new(AtomicUsize::new(0));
        let counters = stats.clone();
        let full_config = Arc::new(SessionConfig {
            refusal: Some(PgError::fatal(SqlState::TOO_MANY_CONNECTIONS, "sorry, too many clients already")),
            ..(*config).clone()
        });
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let id = next_connection_id();
                            let unregister = registry.clone();
                            let departures = departures.clone();
                            let full = max_connections.is_some_and(|max| admitted.load(Ordering::Relaxed) >= max);
                            if !full {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                            counters.accepted(full);
                            let counters = counters.clone();
                            let leaving = (!full).then(|| admitted.clone());
                            spawn_connection(
                                id,
                                stream,
                                &[],
                                if full { full_config.clone() } else { config.clone() },
                                hooks.clone(),
                                |conn| {
                                    if per_connection_stats {
                                        let _ = conn.stats.set(counters);
                                    }
                                    lock(&registry).insert(id, conn.clone());
                                },
                                move || {
                                    lock(&unregister).remove(&id);
                                    if let Some(admitted) = leaving {
                                        admitted.fetch_sub(1, Ordering::Relaxed);
                                    }
                                    departures.notify_waiters();
                                },
                            );
                        }
                        // Out of file descriptors or a connection reset before accept: back off
                        // briefly instead of spinning, then keep serving.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    },
                    _ = stop_rx.changed() => break,
                }
            }
            drop(listener);
            let _ = stopped_tx.send(true);
        });
        Ok(Self { local_addr, stats, per_connection_stats, connections, departed, stop, stopped })
    }

    /// Resolves once the listener has stopped accepting.
    pub async fn wait_stopped(&self) {
        let mut stopped = self.stopped.clone();
        while !*stopped.borrow_and_update() {
            if stopped.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn connection(&self, id: u32) -> Option<Arc<ConnShared>> {
        lock(&self.connections).get(&id).cloned()
    }

    /// The server's counters, with the live connections' bytes so far.
    pub fn stats(&self) -> StatsSnapshot {
        let registry = lock(&self.connections);
        let live = registry.values().filter(|_| self.per_connection_stats);
        self.stats.snapshot(live.map(|conn| conn.as_ref()))
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }

    /// Stops accepting and ends every connection: sessions get `FATAL 57P01` as soon as no
    /// hook of theirs runs; at `grace` from now, whatever is left (hooks that never settle,
    /// clients that read nothing, detached and proxied connections) is closed at once. Resolves
    /// when every connection is gone, so within about `grace` whatever hooks and clients do.
    pub async fn close(&self, grace: Duration) {
        let _ = self.stop.send(true);
        self.wait_stopped().await;
        let deadline = tokio::time::Instant::now() + grace;
        for conn in lock(&self.connections).values() {
            conn.shutdown(deadline.into_std());
        }
        // At the deadline each session ends what still runs with 57P01 itself; the answer then
        // needs a moment to leave. Only a connection that still cannot close after that (a
        // client that reads nothing) is cut without it.
        if tokio::time::timeout_at(deadline + FLUSH_AFTER_DEADLINE, self.all_gone()).await.is_err() {
            let open: Vec<_> = lock(&self.connections).values().cloned().collect();
            for conn in open {
                conn.destroy();
            }
            self.all_gone().await;
        }
    }

    /// Resolves once the registry is empty.
    async fn all_gone(&self) {
        loop {
            let departed = self.departed.notified();
            let mut departed = std::pin::pin!(departed);
            departed.as_mut().enable();
            if lock(&self.connections).is_empty() {
                return;
            }
            departed.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
