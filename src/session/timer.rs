//! Timeouts for sessions, kept off the event loops.
//!
//! The event loops run without tokio's time driver: with it, every park of a loop locks
//! the driver, walks the timer wheel and reads the clock, even with no timer set
//! (callgrind, one client, `pgbench -S -M prepared`: about 900 of 8,500 proxy
//! instructions per transaction). A session needs a timer only at its edges (the startup
//! packets, a forwarded cancel, the linger at the end), so those sleep on one timer
//! thread instead, and only when the guarded step does not finish at its first poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Where sessions' timeouts sleep: a runtime with a time driver (the timer thread).
#[derive(Clone, Debug)]
pub struct Timers {
    handle: Handle,
}

/// The limit of [`Timers::timeout`] ran out first.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

impl Timers {
    /// Timers that sleep on `handle`'s runtime, which must have its time driver enabled.
    pub fn on(handle: Handle) -> Timers {
        Timers { handle }
    }

    /// Runs `step`, giving up after `limit`. The timer is set only if `step` does not
    /// finish at its first poll, and is cancelled when `step` finishes. If the timer
    /// thread is gone (the proxy is stopping), `step` runs without a limit.
    pub async fn timeout<F: Future>(
        &self,
        limit: Duration,
        step: F,
    ) -> Result<F::Output, TimedOut> {
        let mut step = std::pin::pin!(step);
        let mut alarm: Option<Alarm> = None;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = step.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            // The sleep is made on the timer thread: made here, it would look for this
            // loop's time driver, and there is none.
            let alarm = alarm.get_or_insert_with(|| {
                Alarm(Some(
                    self.handle
                        .spawn(async move { tokio::time::sleep(limit).await }),
                ))
            });
            alarm.poll_rung(cx).map(|()| Err(TimedOut))
        })
        .await
    }
}

/// A sleep on the timer thread; cancelled when dropped.
struct Alarm(Option<JoinHandle<()>>);

impl Alarm {
    fn poll_rung(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.0.as_mut() else {
            return Poll::Pending;
        };
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(Ok(())) => {
                self.0 = None;
                Poll::Ready(())
            }
            // The timer thread stopped and dropped the sleep: no limit any more.
            Poll::Ready(Err(_)) => {
                self.0 = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(sleep) = self.0.take() {
            sleep.abort();
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A runtime like an event loop's: IO only, no time driver.
    fn event_loop() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    }

    fn timer_thread() -> (tokio::runtime::Runtime, Timers) {
        let timer = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let timers = Timers::on(timer.handle().clone());
        (timer, timers)
    }

    #[test]
    fn a_step_that_never_ends_times_out_on_a_loop_without_a_time_driver() {
        let (_timer, timers) = timer_thread();
        let out = event_loop()
            .block_on(timers.timeout(Duration::from_millis(50), std::future::pending::<()>()));
        assert_eq!(out, Err(TimedOut));
    }

    #[test]
    fn a_step_that_ends_gives_its_output() {
        let (_timer, timers) = timer_thread();
        let rt = event_loop();
        assert_eq!(
            rt.block_on(timers.timeout(Duration::from_secs(60), async { 7 })),
            Ok(7)
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(8).unwrap();
        });
        assert_eq!(
            rt.block_on(timers.timeout(Duration::from_secs(60), rx)),
            Ok(Ok(8))
        );
    }

    #[test]
    fn without_the_timer_thread_a_step_runs_unlimited() {
        let (timer, timers) = timer_thread();
        drop(timer);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(9).unwrap();
        });
        let out = event_loop().block_on(timers.timeout(Duration::from_millis(1), rx));
        assert_eq!(out, Ok(Ok(9)));
    }
}
