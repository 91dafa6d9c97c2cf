//! `pgbelay approve --sql SQL`: mint an approval token for exactly that statement (§B5).
//!
//! The token is the only line on stdout (so `TOKEN=$(pgbelay approve …)` works); what it
//! approves, until when and how to present it go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::approval::{self, Approval, Secret};
use crate::config::SettingsArgs;
use crate::sql::{Dialect, canonical};

/// Arguments of `pgbelay approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The one statement to approve (case, spacing and comments do not matter; literals do).
    #[arg(long)]
    pub sql: String,
    /// How long the token is valid (`15m`, `2h`, `1h30m`).
    #[arg(long, default_value = "15m")]
    pub ttl: String,
    /// Why (recorded with the change).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who approves (recorded with the change) [default: $USER].
    #[arg(long)]
    pub by: Option<String>,
    /// A DROP TABLE really drops (no recycle bin) and a DELETE really deletes (its rows
    /// are still recorded first).
    #[arg(long)]
    pub hard: bool,
    /// TOML file with settings (for approval_secret / approval_secret_file).
    #[arg(long, env = "PGBELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// HMAC key for approval tokens.
    #[arg(long, env = "PGBELAY_APPROVAL_SECRET", hide_env_values = true)]
    pub approval_secret: Option<String>,
    /// File holding the HMAC key for approval tokens.
    #[arg(long, env = "PGBELAY_APPROVAL_SECRET_FILE")]
    pub approval_secret_file: Option<PathBuf>,
}

/// Prints the token; exit 0, 1 when no secret is configured, 2 on a usage error.
pub fn run(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let settings = SettingsArgs {
        config: args.config.clone(),
        approval_secret: args.approval_secret.clone(),
        approval_secret_file: args.approval_secret_file.clone(),
        ..SettingsArgs::default()
    }
    .resolve()?;
    let Some(secret) = settings.approval_secret.as_deref().map(Secret::new) else {
        eprintln!(
            "pgbelay approve: no approval_secret is configured (set PGBELAY_APPROVAL_SECRET or \
             approval_secret_file, the same one the proxy uses)"
        );
        return Ok(ExitCode::from(1));
    };
    let ttl = match approval::parse_ttl(&args.ttl) {
        Ok(ttl) => ttl,
        Err(e) => {
            eprintln!("pgbelay approve: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let statement = match canonical(&args.sql, Dialect::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pgbelay approve: cannot approve --sql: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let approval = Approval::new(
        statement,
        SystemTime::now(),
        ttl,
        by,
        args.reason.filter(|r| !r.is_empty()),
        args.hard,
    );
    let token = approval.mint(&secret);
    eprintln!("approves:  {}", approval.statement);
    eprintln!(
        "expires:   {} (in {})",
        humantime::format_rfc3339_seconds(approval.expires_at()),
        humantime::format_duration(ttl)
    );
    eprintln!(
        "by:        {}{}",
        approval.by,
        approval
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    eprintln!(
        "id:        {}{}",
        approval.id,
        if approval.hard { "  (hard)" } else { "" }
    );
    eprintln!(
        "use once:  /* pgbelay:approve=<token> */ {}",
        approval.statement
    );
    eprintln!("       or: SET pgbelay.approval = '<token>'; then the statement");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
