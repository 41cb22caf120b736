//! One registry of cancel keys for the whole process. Every connection of every server, on both
//! drivers, registers here when it starts and gets a process id that no other live connection
//! has (its BackendKeyData); a CancelRequest that arrives on any connection and names a live
//! one with the right secret reaches it: its `onCancel` hook runs, and a proxied connection's
//! upstream gets a CancelRequest of its own (with the upstream's key, which the client never
//! saw). A wrong or stale key does nothing, as in PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use subtle::ConstantTimeEq;

use crate::session::Secrets;

/// Tells user code that its connection was cancelled (`onCancel`). Runs on whatever thread
/// the CancelRequest arrived on, so it only queues work.
pub trait CancelTarget: Send + Sync {
    fn cancelled(&self);
}

/// Where a proxied connection's queries really run, and the key its upstream gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamKey {
    pub host: String,
    pub port: u16,
    pub process_id: i32,
    pub secret_key: Vec<u8>,
}

impl UpstreamKey {
    /// The CancelRequest to send the upstream on a new connection.
    pub fn cancel_request(&self) -> Vec<u8> {
        let mut packet = Vec::with_capacity(12 + self.secret_key.len());
        packet.extend_from_slice(&((12 + self.secret_key.len()) as i32).to_be_bytes());
        packet.extend_from_slice(&crate::protocol::startup::CANCEL_REQUEST_CODE.to_be_bytes());
        packet.extend_from_slice(&self.process_id.to_be_bytes());
        packet.extend_from_slice(&self.secret_key);
        packet
    }
}

struct Entry {
    secret_key: [u8; 4],
    target: Option<Arc<dyn CancelTarget>>,
    upstream: Option<UpstreamKey>,
}

fn entries() -> &'static Mutex<HashMap<i32, Entry>> {
    static ENTRIES: OnceLock<Mutex<HashMap<i32, Entry>>> = OnceLock::new();
    ENTRIES.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<i32, Entry>> {
    entries().lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection's place in the registry; dropping it frees the process id.
#[derive(Debug)]
pub struct Registration {
    process_id: i32,
}

impl Registration {
    /// Registers a connection whose random `secrets` were just drawn: the process id becomes
    /// one that no live connection has (the next free one after the drawn id).
    pub fn new(secrets: &mut Secrets) -> Self {
        let mut map = lock();
        let mut pid = secrets.process_id.max(1);
        while map.contains_key(&pid) {
            pid = if pid == i32::MAX { 1 } else { pid + 1 };
        }
        map.insert(pid, Entry { secret_key: secrets.secret_key, target: None, upstream: None });
        secrets.process_id = pid;
        Self { process_id: pid }
    }

    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// Who hears of a cancel (the connection's `onCancel`).
    pub fn set_target(&self, target: Arc<dyn CancelTarget>) {
        if let Some(entry) = lock().get_mut(&self.process_id) {
            entry.target = Some(target);
        }
    }

    /// The upstream key of a proxied connection, once the upstream sent it.
    pub fn set_upstream(&self, upstream: UpstreamKey) {
        set_upstream(self.process_id, upstream);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().remove(&self.process_id);
    }
}

/// The upstream key of the live connection `process_id` (for drivers that hold only its id).
pub fn set_upstream(process_id: i32, upstream: UpstreamKey) {
    if let Some(entry) = lock().get_mut(&process_id) {
        entry.upstream = Some(upstream);
    }
}

/// A CancelRequest arrived. If it names a live connection with its secret, that connection's
/// target hears of it, and the upstream key (of a proxied connection) is returned for the
/// caller to send on; otherwise nothing happens.
pub fn cancel(process_id: i32, secret_key: &[u8]) -> Option<UpstreamKey> {
    let (target, upstream) = {
        let map = lock();
        let entry = map.get(&process_id)?;
        if entry.secret_key.as_slice().ct_eq(secret_key).unwrap_u8() != 1 {
            return None;
        }
        (entry.target.clone(), entry.upstream.clone())
    };
    // Outside the lock: a target may take its time (or cancel something itself).
    if let Some(target) = target {
        target.cancelled();
    }
    upstream
}

/// Whether `process_id` and `secret_key` name a live connection (nothing is delivered).
pub fn is_live(process_id: i32, secret_key: &[u8]) -> bool {
    lock().get(&process_id).is_some_and(|entry| entry.secret_key.as_slice().ct_eq(secret_key).unwrap_u8() == 1)
}

/// How many connections are registered (for tests).
pub fn live_count() -> usize {
    lock().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter(AtomicUsize);

    impl CancelTarget for Counter {
        fn cancelled(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn secrets(pid: i32, key: [u8; 4]) -> Secrets {
        Secrets { md5_salt: [0; 4], process_id: pid, secret_key: key, scram_nonce: [0; 18] }
    }

    #[test]
    fn ids_are_unique_among_live_connections_and_freed_on_drop() {
        let mut a = secrets(1_000_000, [1; 4]);
        let mut b = secrets(1_000_000, [2; 4]);
        let first = Registration::new(&mut a);
        let second = Registration::new(&mut b);
        assert_ne!(a.process_id, b.process_id);
        drop(first);
        let mut c = secrets(1_000_000, [3; 4]);
        let third = Registration::new(&mut c);
        assert_eq!(c.process_id, 1_000_000, "a freed id can be used again");
        drop((second, third));
    }

    #[test]
    fn only_the_right_key_reaches_the_target() {
        let mut s = secrets(2_000_000, [9, 8, 7, 6]);
        let registration = Registration::new(&mut s);
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        registration.set_target(counter.clone());
        assert_eq!(cancel(s.process_id, &[9, 8, 7, 5]), None);
        assert_eq!(cancel(s.process_id, &[9, 8, 7]), None);
        assert_eq!(cancel(s.process_id + 1, &[9, 8, 7, 6]), None);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        assert_eq!(cancel(s.process_id, &[9, 8, 7, 6]), None);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        let upstream =
            UpstreamKey { host: "127.0.0.1".into(), port: 5432, process_id: 42, secret_key: vec![1, 2, 3, 4] };
        registration.set_upstream(upstream.clone());
        assert_eq!(cancel(s.process_id, &[9, 8, 7, 6]), Some(upstream.clone()));
        assert_eq!(upstream.cancel_request(), b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x2a\x01\x02\x03\x04");
        let pid = s.process_id;
        drop(registration);
        assert_eq!(cancel(pid, &[9, 8, 7, 6]), None, "a stale key cancels nothing");
    }
}
