//! The `pgbelay` command line (SPEC §A1).

use clap::{Parser, Subcommand};

use crate::config::SettingsArgs;

/// pgbelay: a PostgreSQL proxy that makes every change reversible.
#[derive(Debug, Parser)]
#[command(name = "pgbelay", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One variant per row of SPEC §A1.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve(SettingsArgs),
    /// Start a throwaway PostgreSQL with sample data and serve the proxy in front of it.
    Demo(SettingsArgs),
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(_) | Command::Demo(_) => Ok(std::process::ExitCode::SUCCESS),
    }
}
