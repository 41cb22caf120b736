//! A value that only moves forward, and a way to wait for it: what a `watch` channel gives,
//! without its separate allocation (about 400 bytes each). A connection has two of these and
//! keeps them for its whole life, idle or not.

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Signal {
    value: AtomicU8,
    changed: Notify,
}

impl Signal {
    pub fn get(&self) -> u8 {
        self.value.load(Ordering::Acquire)
    }

    /// Stores `value` and wakes everyone waiting.
    pub fn set(&self, value: u8) {
        self.value.store(value, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits until `accept` takes the current value.
    pub async fn wait_for<T>(&self, accept: impl Fn(u8) -> Option<T>) -> T {
        loop {
            // Registered before the check, so a `set` between the check and the await
            // still wakes us.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(found) = accept(self.get()) {
                return found;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_sees_a_value_set_before_or_after_it_started_waiting() {
        let signal = Arc::new(Signal::default());
        signal.set(1);
        assert_eq!(signal.wait_for(|v| (v >= 1).then_some(v)).await, 1);

        let waiting = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait_for(|v| (v >= 3).then_some(v)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        signal.set(2); // not yet what the waiter wants: it must wait on
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        signal.set(3);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").expect("no panic");
        assert_eq!(got, 3);
    }
}
