//! `pgbelay serve`: bind, install signal handlers, run the proxy.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::SettingsArgs;
use crate::server::{Proxy, signals};
use crate::session::Hooks;

/// Runs the proxy until SIGTERM/SIGINT.
pub fn run(args: SettingsArgs) -> anyhow::Result<ExitCode> {
    let settings = args.resolve()?;
    // Accepting, signals and /metrics; the sessions run on their own event loops
    // (`event_loops`, server/listener.rs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let hooks = hooks(&settings);
        let proxy = Proxy::bind(settings, hooks).await?;
        let shutdown = CancellationToken::new();
        signals::install(shutdown.clone())?;
        proxy.run(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The policy every session runs under.
pub fn hooks(settings: &crate::config::Settings) -> Arc<dyn Hooks> {
    Arc::new(crate::policy::Guard::new(settings))
}
