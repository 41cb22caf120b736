//! Panic containment for connection tasks. No panic is known to be reachable from a peer; this
//! is the second line: a bug in one connection must end that connection, with its cleanup
//! (close event, registry entry, writer) still run, instead of leaving a task that vanished
//! half-way and a `closed()` that never resolves.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that resolves to `Err(())` instead of unwinding when the inner one panics. It is
/// not polled again after that.
pub struct CatchUnwind<F> {
    // Boxed so that it can be pinned without `unsafe` projection.
    inner: Pin<Box<F>>,
}

impl<F: Future> CatchUnwind<F> {
    pub fn new(inner: F) -> Self {
        Self { inner: Box::pin(inner) }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unwind safety is asserted: after a panic the inner future is only dropped.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error() {
        let ok = CatchUnwind::new(async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let failed = CatchUnwind::new(async {
            tokio::task::yield_now().await;
            panic!("a bug in one connection");
        })
        .await;
        assert_eq!(failed, Err::<(), ()>(()));
    }
}
