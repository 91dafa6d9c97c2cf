//! `pgbelay init --db URL`: install (or upgrade) the audit schema explicitly, and prepare
//! every existing table for recording (shadow table and capture triggers).

use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `pgbelay init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The database, as a libpq URL or key=value string (as its owner or a superuser).
    #[arg(long, env = "PGBELAY_DB")]
    pub db: String,
    /// Schema holding the audit trail.
    #[arg(long, env = "PGBELAY_AUDIT_SCHEMA", default_value = crate::audit::DEFAULT_AUDIT_SCHEMA)]
    pub audit_schema: String,
}

/// Installs the audit schema; idempotent.
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&args.db, tokio_postgres::NoTls)
            .await
            .context("connecting to --db")?;
        tokio::spawn(connection);
        crate::audit::install(&client, &args.audit_schema).await?;
        let prepare = crate::audit::prepare_all_sql(&args.audit_schema)?;
        let tables: i64 = client
            .query_one(&prepare, &[])
            .await
            .context("preparing the existing tables for recording")?
            .get(0);
        let version = crate::audit::installed_version(&client, &args.audit_schema).await?;
        println!(
            "pgbelay: audit schema {} installed (version {}); {tables} tables ready for recording",
            args.audit_schema,
            version.map_or_else(|| "unknown".to_string(), |v| v.to_string())
        );
        Ok(ExitCode::SUCCESS)
    })
}
