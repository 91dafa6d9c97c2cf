//! `pgbelay demo`: a throwaway PostgreSQL with sample data, the proxy in front of it.

use crate::config::SettingsArgs;

/// Starts the demo and serves until Ctrl-C, then removes everything.
pub fn run(_args: SettingsArgs) -> anyhow::Result<std::process::ExitCode> {
    Ok(std::process::ExitCode::SUCCESS)
}
