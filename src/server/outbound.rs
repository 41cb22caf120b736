//! The single ordered outbound buffer of a connection. The session's replies and JS
//! `sendData` calls append to it in program order; one writer task drains it, so whatever
//! accumulated while a hook ran leaves in as few syscalls as possible.

use std::sync::Mutex;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

/// The socket's write half, handed over by the writer task (see [`Outbound::hand_over`]).
pub type WriteHalf = Box<dyn AsyncWrite + Unpin + Send>;

/// Above this many buffered bytes the driver stops reading from the client and `sendData`
/// reports backpressure, so a client that does not read cannot grow our memory without bound.
pub const HIGH_WATER_MARK: usize = 1024 * 1024;

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
    closing: Option<Closing>,
    /// The writer has stopped (closed or failed); writes are dropped.
    dead: bool,
}

#[derive(Default)]
pub struct Outbound {
    inner: Mutex<Inner>,
    wake_writer: Notify,
    /// Woken whenever the writer has written a chunk or stopped.
    progress: Notify,
    /// Where the writer task sends the write half on [`Self::hand_over`].
    hand_over_to: Mutex<Option<oneshot::Sender<WriteHalf>>>,
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

    pub fn buffered(&self) -> usize {
        self.lock().buf.len()
    }

    pub fn over_high_water(&self) -> bool {
        self.buffered() > HIGH_WATER_MARK
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

    /// Stop now, dropping what is buffered.
    pub fn abort(&self) {
        let mut inner = self.lock();
        inner.closing = Some(Closing::Abort);
        inner.buf.clear();
        drop(inner);
        self.wake_writer.notify_one();
    }

    /// Flushes what is buffered, then hands the socket's write half over (for the proxy,
    /// which then writes the client directly instead of through this buffer and its task).
    /// Later writes here are dropped. Call [`Self::mark_stopped`] when done with the half.
    pub fn hand_over(&self) -> oneshot::Receiver<WriteHalf> {
        let (sender, receiver) = oneshot::channel();
        *self.hand_over_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
        let mut inner = self.lock();
        if inner.closing.is_none() {
            inner.closing = Some(Closing::HandOver);
        }
        drop(inner);
        self.wake_writer.notify_one();
        receiver
    }

    /// The write half handed over is closed: the connection can no longer send.
    pub fn mark_stopped(&self) {
        self.lock().dead = true;
        self.progress.notify_waiters();
    }

    /// Waits until the buffer is at or under the high-water mark, or the writer stopped.
    pub async fn drained(&self) {
        loop {
            let progress = self.progress.notified();
            {
                let inner = self.lock();
                if inner.dead || inner.buf.len() <= HIGH_WATER_MARK {
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
            if self.is_dead() {
                return;
            }
            progress.await;
        }
    }

    /// The writer task: drains the buffer into `writer` until closed or a write fails.
    pub async fn run_writer<W: AsyncWrite + Unpin + Send + 'static>(&self, mut writer: W) {
        let graceful = loop {
            let (chunk, closing) = {
                let mut inner = self.lock();
                // Taken whole (not split), so an idle connection keeps no buffer behind.
                (std::mem::take(&mut inner.buf), inner.closing)
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
            if writer.write_all(&chunk).await.is_err() {
                break false;
            }
            self.progress.notify_waiters();
        };
        if graceful {
            let _ = writer.shutdown().await;
        }
        let mut inner = self.lock();
        inner.dead = true;
        inner.buf.clear();
        drop(inner);
        self.progress.notify_waiters();
    }
}
