//! Process signals: SIGTERM or SIGINT starts a drain (stop accepting, let sessions finish
//! up to `shutdown_timeout`); a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Cancels `shutdown` on the first SIGTERM/SIGINT; exits the process on the second.
pub fn install(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("signal received: draining sessions (send again to exit now)");
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("second signal: exiting now");
        std::process::exit(1);
    });
    Ok(())
}
