//! The `pgbelay` command line (SPEC §A1).

use clap::{Parser, Subcommand};

pub mod approve;
pub mod changes;
pub mod check;
pub mod demo;
pub mod init;
pub mod serve;
pub mod show;
pub mod undo;

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
    /// Print the policy's verdict for SQL, offline (exit 0 allow/rewrite, 1 block, 2 usage).
    Check(check::CheckArgs),
    /// Install the audit schema in a database (idempotent).
    Init(init::InitArgs),
    /// Mint an approval token for exactly one statement; the token is the last line of stdout.
    Approve(approve::ApproveArgs),
    /// List recorded changes, newest first.
    Changes(changes::ChangesArgs),
    /// Show one change: who, when, the statement, and its rows before and after.
    Show(show::ShowArgs),
    /// Reverse one change (exit 1 when refused, e.g. rows changed since).
    Undo(undo::UndoArgs),
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Check(args) => check::run(args),
        Command::Init(args) => init::run(args),
        Command::Approve(args) => approve::run(args),
        Command::Changes(args) => changes::run(args),
        Command::Show(args) => show::run(args),
        Command::Undo(args) => undo::run(args),
    }
}
