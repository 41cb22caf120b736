//! The single ordered outbound buffer of a connection. The session's replies and JS
//! `sendData` calls append to it in program order; one writer task drains it, so whatever
//! accumulated while a hook ran leaves in as few syscalls as possible. It counts what is still
//! unsent and what was sent, which is how the session learns about backpressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

pub use crate::session::OUTPUT_HIGH_WATER as HIGH_WATER_MARK;

/// The socket's write half, handed over by the writer task (see [`Outbound::hand_over`]).
pub type WriteHalf = Box<dyn AsyncWrite + Unpin + Send>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// Send what is buffered, then shut the write side down (FIN).
    Graceful,
    /// Drop what is buffered and stop.
    Abort,
    /// Send what is buffered, then give the write half to whoever asked (the proxy).
    HandOver,
}

#[derive(Default)]
struct Inner {
    buf: BytesMut,
    /// Bytes the writer took out of `buf` and has not written yet.
    in_flight: usize,
    /// Bytes written to the socket so far.
    sent: u64,
    closing: Option<Closing>,
    /// The writer has stopped (closed or failed); writes are dropped.
    dead: bool,
}

#[derive(Default)]
pub struct Outbound {
    inner: Mutex<Inner>,
    wake_writer: Notify,
    /// Tells a writer blocked on a client that does not read to stop (a stored permit, so it
    /// is not missed).
    abort_writer: Notify,
    /// Woken (all waiters) whenever the writer has written something or stopped.
    progress: Notify,
    /// Woken on the same events with a stored permit, for the one task that drives the
    /// connection: it must not miss the last progress between checking and waiting.
    progress_for_driver: Notify,
    /// Where the writer task sends the write half on [`Self::hand_over`].
    hand_over_to: Mutex<Option<oneshot::Sender<WriteHalf>>>,
    /// Bytes read from the socket (the driver counts them here, next to those sent). With
    /// `sent`, how JS sees activity (`socket.setTimeout`) without a clock read per I/O.
    received: AtomicU64,
}

impl Outbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the buffer inconsistent (every update is
        // a single append or swap), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends bytes. Returns false if the connection can no longer send (closed or closing),
    /// in which case the bytes are dropped.
    pub fn write(&self, data: &[u8]) -> bool {
        if data.is_empty() {
            return !self.lock().dead;
        }
        let mut inner = self.lock();
        if inner.dead || inner.closing.is_some() {
            return false;
        }
        inner.buf.extend_from_slice(data);
        drop(inner);
        self.wake_writer.notify_one();
        true
    }

    /// Appends the session's output (moved, not copied, when nothing else is buffered).
    pub fn write_owned(&self, data: BytesMut) {
        if data.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if inner.dead || inner.closing.is_some() {
            return;
        }
        if inner.buf.is_empty() {
            inner.buf = data;
        } else {
            inner.buf.extend_from_slice(&data);
        }
        drop(inner);
        self.wake_writer.notify_one();
    }

    /// Bytes accepted and not yet written to the socket.
    pub fn unsent(&self) -> usize {
        let inner = self.lock();
        inner.buf.len() + inner.in_flight
    }

    /// Bytes written to the socket so far.
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// `n` bytes arrived from the client.
    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn received_total(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn over_high_water(&self) -> bool {
        self.unsent() > HIGH_WATER_MARK
    }

    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Flush what is buffered, then FIN. Later writes are dropped.
    pub fn end(&self) {
        let mut inner = self.lock();
        if inner.closing.is_none() {
            inner.closing = Some(Closing::Graceful);
        }
        drop(inner);
        self.wake_writer.notify_one();
    }

    /// Stop now, dropping what is buffered, even in the middle of a write.
    pub fn abort(&self) {
        let mut inner = self.lock();
        inner.closing = Some(Closing::Abort);
        inner.buf.clear();
        drop(inner);
        self.wake_writer.notify_one();
        self.abort_writer.notify_one();
    }

    /// Flushes what is buffered, then hands the socket's write half over (for the proxy,
    /// which then writes the client directly instead of through this buffer and its task).
    /// Later writes here are dropped. Call [`Self::mark_stopped`] when done with the half.
    pub fn hand_over(&self) -> oneshot::Receiver<WriteHalf> {
        let (sender, receiver) = oneshot::channel();
        let mut taker = self.hand_over_to.lock().unwrap_or_else(|p| p.into_inner());
        // A writer that already stopped (the client reset while output was queued) will never
        // hand over: the sender is dropped at once and the taker hears so.
        if !self.lock().dead {
            *taker = Some(sender);
        }
        drop(taker);
        let mut inner = self.lock();
        if inner.closing.is_none() {
            inner.closing = Some(Closing::HandOver);
        }
        drop(inner);
        self.wake_writer.notify_one();
        receiver
    }

    /// The connection can no longer send (the write half handed over is closed, or the writer
    /// task ended abnormally).
    pub fn mark_stopped(&self) {
        let mut inner = self.lock();
        inner.dead = true;
        inner.buf.clear();
        inner.in_flight = 0;
        drop(inner);
        // A hand-over that can no longer happen: its taker hears so (the sender is dropped).
        self.hand_over_to.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.progressed();
    }

    fn progressed(&self) {
        self.progress.notify_waiters();
        self.progress_for_driver.notify_one();
    }

    /// Waits until the buffer is at or under the high-water mark, or the writer stopped.
    pub async fn drained(&self) {
        loop {
            let progress = self.progress.notified();
            let mut progress = std::pin::pin!(progress);
            progress.as_mut().enable();
            {
                let inner = self.lock();
                if inner.dead || inner.buf.len() + inner.in_flight <= HIGH_WATER_MARK {
                    return;
                }
            }
            progress.await;
        }
    }

    /// Waits until the writer has stopped.
    pub async fn stopped(&self) {
        loop {
            let progress = self.progress.notified();
            let mut progress = std::pin::pin!(progress);
            progress.as_mut().enable();
            if self.is_dead() {
                return;
            }
            progress.await;
        }
    }

    /// For the driver: resolves after the writer made progress or stopped (at least once
    /// since the last call).
    pub async fn progress(&self) {
        self.progress_for_driver.notified().await;
    }

    /// The writer task: drains the buffer into `writer` until closed or a write fails.
    pub async fn run_writer<W: AsyncWrite + Unpin + Send + 'static>(&self, mut writer: W) {
        let graceful = 'writer: loop {
            let (mut chunk, closing) = {
                let mut inner = self.lock();
                // Taken whole (not split), so an idle connection keeps no buffer behind.
                let chunk = std::mem::take(&mut inner.buf);
                inner.in_flight = chunk.len();
                (chunk, inner.closing)
            };
            if closing == Some(Closing::Abort) {
                break false;
            }
            if chunk.is_empty() {
                match closing {
                    Some(Closing::Graceful) => break true,
                    Some(Closing::HandOver) => {
                        let taker = self.hand_over_to.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let Some(taker) = taker {
                            // Not dead: the taker writes on, and calls mark_stopped() when done.
                            let _ = taker.send(Box::new(writer));
                            return;
                        }
                        break false;
                    }
                    _ => {}
                }
                self.wake_writer.notified().await;
                continue;
            }
            // Piece by piece, so that progress is visible (the session's write deadline) and
            // an abort is heard even while the client reads nothing.
            while !chunk.is_empty() {
                let written = tokio::select! {
                    biased;
                    _ = self.abort_writer.notified() => break 'writer false,
                    written = writer.write(&chunk) => written,
                };
                match written {
                    Ok(0) | Err(_) => break 'writer false,
                    Ok(n) => {
                        chunk.advance(n);
                        let mut inner = self.lock();
                        inner.in_flight = chunk.len();
                        inner.sent += n as u64;
                        drop(inner);
                        self.progressed();
                    }
                }
            }
        };
        if graceful {
            let _ = writer.shutdown().await;
        }
        self.mark_stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn abort_stops_a_writer_that_the_peer_never_reads() {
        // A tiny pipe the reader never empties: the writer blocks inside a write.
        let (ours, _theirs) = tokio::io::duplex(64);
        let out = Arc::new(Outbound::default());
        let writer = tokio::spawn({
            let out = out.clone();
            async move { out.run_writer(ours).await }
        });
        assert!(out.write(&[7u8; 4096]));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(out.sent(), 64, "the pipe took what fits");
        assert_eq!(out.unsent(), 4096 - 64);
        out.abort();
        tokio::time::timeout(Duration::from_secs(5), writer).await.expect("the writer stops").expect("no panic");
        assert!(out.is_dead());
        assert!(!out.write(b"late"), "nothing is accepted after an abort");
    }

    #[tokio::test]
    async fn a_graceful_end_sends_everything_first() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let out = Arc::new(Outbound::default());
        tokio::spawn({
            let out = out.clone();
            async move { out.run_writer(ours).await }
        });
        assert!(out.write(&[1u8; 1000]));
        out.end();
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut received).await.unwrap();
        assert_eq!(received.len(), 1000);
        tokio::time::timeout(Duration::from_secs(5), out.stopped()).await.expect("stopped");
        assert_eq!(out.sent(), 1000);
    }
}
