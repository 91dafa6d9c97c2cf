//! Accept loop: one task per client on a `TaskTracker`; a `CancellationToken` stops
//! accepting and tells every session to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tracing::{info, info_span, warn};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::session::cancel::CancelMap;
use crate::session::{self, Hooks, Shared, Shutdown, Timers};

/// Why the proxy could not start: a setting, or an address it cannot listen on.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// `tls_cert` / `tls_key` / `upstream_sslmode` / `upstream_sslrootcert`.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// `listen` or `metrics_listen`.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl BindError {
    /// Whether the address is taken (the demo then falls back to a free port).
    pub fn addr_in_use(&self) -> bool {
        matches!(self, Self::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// A bound proxy, not yet accepting.
pub struct Proxy {
    listener: TcpListener,
    /// `/metrics`, when `metrics_listen` is set.
    metrics_listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    /// Answers SSLRequest `S` when `tls_cert`/`tls_key` are set.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// TLS to the server per `upstream_sslmode`.
    upstream_tls: Option<crate::tls::UpstreamTls>,
    settings: Arc<Settings>,
    hooks: Arc<dyn Hooks>,
}

/// A proxy running on a background task (tests, `demo`).
pub struct RunningProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The proxy's counters.
    pub metrics: Arc<Metrics>,
    /// Cancel to shut the proxy down.
    pub shutdown: CancellationToken,
    /// Ends when the proxy has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    /// Binds `settings.listen` (port 0 picks a free port).
    pub async fn bind(settings: Settings, hooks: Arc<dyn Hooks>) -> Result<Proxy, BindError> {
        let tls = crate::tls::acceptor(&settings)?;
        let upstream_tls = crate::tls::UpstreamTls::new(&settings)?;
        let listen = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| BindError::Listen { addr, source })
        };
        let listener = listen(settings.listen).await?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(listen(addr).await?),
            None => None,
        };
        Ok(Proxy {
            listener,
            metrics_listener,
            metrics: Arc::new(Metrics::default()),
            tls,
            upstream_tls,
            settings: Arc::new(settings),
            hooks,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Binds and runs on a background task.
    pub async fn spawn(
        settings: Settings,
        hooks: Arc<dyn Hooks>,
    ) -> Result<RunningProxy, BindError> {
        let wanted = settings.listen;
        let proxy = Proxy::bind(settings, hooks).await?;
        let addr = proxy.local_addr().map_err(|source| BindError::Listen {
            addr: wanted,
            source,
        })?;
        let metrics_addr = proxy.metrics_addr();
        let metrics = proxy.metrics.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(proxy.run(shutdown.clone()));
        Ok(RunningProxy {
            addr,
            metrics_addr,
            metrics,
            shutdown,
            task,
        })
    }

    /// Accepts clients until `shutdown` fires, then lets open sessions finish (each ends
    /// at its next idle point) for up to `shutdown_timeout`, and then closes the rest.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let loops = EventLoops::start(self.settings.event_loops)?;
        let shared = Arc::new(Shared {
            settings: self.settings.clone(),
            hooks: self.hooks,
            cancels: CancelMap::default(),
            metrics: self.metrics.clone(),
            tls: self.tls,
            upstream_tls: self.upstream_tls,
            timers: loops.timers.clone(),
        });
        if let Some(listener) = self.metrics_listener {
            info!(metrics = %listener.local_addr()?, "serving /metrics");
            tokio::spawn(crate::metrics::serve(
                listener,
                self.metrics.clone(),
                shutdown.clone(),
            ));
        }
        let stop = Shutdown::default();
        let tracker = TaskTracker::new();
        let mut next_id: u64 = 0;
        info!(listen = %self.listener.local_addr()?, upstream = %self.settings.upstream, "pgbelay listening");
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            next_id += 1;
            let span = info_span!(
                "session",
                id = next_id,
                %peer,
                user = tracing::field::Empty,
                database = tracing::field::Empty,
                application_name = tracing::field::Empty,
                tls = tracing::field::Empty,
            );
            // The socket moves to the loop's own IO driver (registered there, on its
            // thread); it is non-blocking already.
            let std = match stream.into_std() {
                Ok(std) => std,
                Err(e) => {
                    warn!(parent: &span, error = %e, "cannot hand the client socket to a loop");
                    continue;
                }
            };
            let (shared, stop) = (shared.clone(), stop.clone());
            loops.spawn(tracker.track_future(async move {
                match tokio::net::TcpStream::from_std(std) {
                    Ok(stream) => session::run(stream, peer, shared, stop, span).await,
                    Err(e) => warn!(parent: &span, error = %e, "cannot register the client socket"),
                }
            }));
        }
        drop(self.listener);
        // Sessions watch `StopSignal`s, not the token: one atomic load per wakeup.
        stop.drain.fire();
        tracker.close();
        info!(
            sessions = tracker.len(),
            "shutting down: waiting for sessions to finish"
        );
        if tokio::time::timeout(self.settings.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                sessions = tracker.len(),
                "shutdown timeout: closing remaining sessions"
            );
            stop.force.fire();
            let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
        }
        drop(loops);
        Ok(())
    }
}

/// The threads sessions run on: each a current-thread runtime with its own IO driver
/// (its own epoll), a new session going to the one with the fewest sessions open (round
/// robin would keep piling onto a loop whose long sessions stay while the short ones on
/// the other loops end). Measured against one multi-thread runtime for all sessions
/// (README, Benchmarks): no wakeups between threads (tokio's workers woke each other
/// through a futex 0.12–0.30 times per select-only transaction) and 8% more select-only
/// prepared TPS at 16 clients. A session does not move: one that keeps its loop busy (a
/// huge statement to parse) delays the others on that loop.
/// Dropping this stops the loops (and any session still on them).
struct EventLoops {
    loops: Vec<EventLoop>,
    /// The sessions' timeouts sleep on one more thread, whose runtime has the time
    /// driver the loops go without (`session::Timers`).
    timers: Timers,
    done: CancellationToken,
}

/// One loop's runtime and how many sessions it has open.
struct EventLoop {
    handle: tokio::runtime::Handle,
    sessions: Arc<AtomicUsize>,
}

/// Counts a session on its loop while it lives (also when the runtime drops it unrun).
struct OnLoop(Arc<AtomicUsize>);

impl Drop for OnLoop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl EventLoops {
    fn start(n: usize) -> std::io::Result<EventLoops> {
        let done = CancellationToken::new();
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let timers = Timers::on(timer.handle().clone());
        let stop = done.clone();
        std::thread::Builder::new()
            .name("pgbelay-timers".into())
            .spawn(move || timer.block_on(stop.cancelled_owned()))?;
        let mut loops = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            loops.push(EventLoop {
                handle: runtime.handle().clone(),
                sessions: Arc::default(),
            });
            let stop = done.clone();
            std::thread::Builder::new()
                .name(format!("pgbelay-loop-{i}"))
                .spawn(move || runtime.block_on(stop.cancelled_owned()))?;
        }
        Ok(EventLoops {
            loops,
            timers,
            done,
        })
    }

    /// Runs `session` on the loop with the fewest sessions open (the first of equals).
    fn spawn(&self, session: impl Future<Output = ()> + Send + 'static) {
        let Some(chosen) = self.loops.iter().min_by_key(|l| l.sessions.load(Relaxed)) else {
            return; // start made at least one
        };
        chosen.sessions.fetch_add(1, Relaxed);
        let on_loop = OnLoop(chosen.sessions.clone());
        chosen.handle.spawn(async move {
            let _on_loop = on_loop;
            session.await
        });
    }
}

impl Drop for EventLoops {
    fn drop(&mut self) {
        self.done.cancel();
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Spawns a session that reports its loop's thread name and then waits for `end`.
    fn session_on(
        loops: &EventLoops,
        end: tokio::sync::oneshot::Receiver<()>,
    ) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        loops.spawn(async move {
            let name = std::thread::current()
                .name()
                .unwrap_or_default()
                .to_string();
            let _ = tx.send(name);
            let _ = end.await;
        });
        rx
    }

    #[test]
    fn a_new_session_goes_to_the_loop_with_fewest_sessions() {
        let loops = EventLoops::start(2).unwrap();
        let wait = Duration::from_secs(10);
        let (end_a, a) = tokio::sync::oneshot::channel();
        let (_end_b, b) = tokio::sync::oneshot::channel();
        let (end_c, c) = tokio::sync::oneshot::channel();
        let loop_a = session_on(&loops, a).recv_timeout(wait).unwrap();
        let loop_b = session_on(&loops, b).recv_timeout(wait).unwrap();
        assert_ne!(
            loop_a, loop_b,
            "two sessions share a loop while the other is empty"
        );
        assert_eq!(session_on(&loops, c).recv_timeout(wait).unwrap(), loop_a);
        // A and C end: their loop is empty, B's is not; round robin would pick B's next.
        end_a.send(()).unwrap();
        end_c.send(()).unwrap();
        let deadline = std::time::Instant::now() + wait;
        while loops
            .loops
            .iter()
            .map(|l| l.sessions.load(Relaxed))
            .sum::<usize>()
            != 1
        {
            assert!(
                std::time::Instant::now() < deadline,
                "sessions a and c never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let (_end_d, d) = tokio::sync::oneshot::channel();
        assert_eq!(session_on(&loops, d).recv_timeout(wait).unwrap(), loop_a);
    }
}
