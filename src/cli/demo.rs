//! `pgbelay demo`: a throwaway PostgreSQL with sample data, the proxy in front of it.
//!
//! Starts a [`Cluster`] (local server binaries, temp dir, free port), creates the database
//! `demo` from `sql-fixtures/demo.sql` (compiled into the binary, so the demo runs from any
//! directory), serves the proxy on `listen` (falling back to a free port when the default
//! one is taken), and prints how to connect. Ctrl-C or SIGTERM stops the proxy and removes
//! the cluster.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, SUPERUSER_PASSWORD, url_for};
use crate::config::{Settings, SettingsArgs, UpstreamAddr};
use crate::server::Proxy;

/// The demo schema and data.
pub const DEMO_SQL: &str = include_str!("../../sql-fixtures/demo.sql");

/// Database the demo data lives in.
pub const DEMO_DB: &str = "demo";

/// How long Ctrl-C waits for open sessions when `--shutdown-timeout` is not given.
const DEMO_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the demo and serves until Ctrl-C, then removes everything.
pub fn run(args: SettingsArgs) -> anyhow::Result<ExitCode> {
    let mut settings = args.resolve()?;
    if args.upstream.is_some() {
        println!("note: the demo ignores --upstream; it serves its own PostgreSQL");
    }
    if args.shutdown_timeout.is_none() {
        settings.shutdown_timeout = DEMO_SHUTDOWN_TIMEOUT;
    }
    // Approvals need a secret; a throwaway one for a throwaway database, printed so that
    // `pgbelay approve` in another terminal signs with it.
    if settings.approval_secret.is_none() {
        let bytes: [u8; 16] = rand::random();
        settings.approval_secret = Some(bytes.iter().map(|b| format!("{b:02x}")).collect());
    }

    println!("Starting a throwaway PostgreSQL ...");
    let cluster = Cluster::start().context("cannot start the demo PostgreSQL")?;
    // Also clean up if this process dies without unwinding (kill -9, a second Ctrl-C).
    cluster
        .stop_when_process_exits()
        .context("cannot start the demo cleanup watchdog")?;
    cluster
        .run_sql(&format!("CREATE DATABASE {DEMO_DB}"))
        .context("cannot create the demo database")?;
    cluster
        .run_sql_in(DEMO_DB, DEMO_SQL)
        .context("cannot load sql-fixtures/demo.sql")?;
    // What `pgbelay init` does: the audit schema, and every table ready for recording.
    let audit = &settings.audit_schema;
    cluster
        .run_sql_in(DEMO_DB, &crate::audit::install_sql(audit)?)
        .context("cannot install the audit schema")?;
    cluster
        .run_sql_in(DEMO_DB, &crate::audit::prepare_all_sql(audit)?)
        .context("cannot prepare the demo tables for recording")?;
    settings.upstream = UpstreamAddr::Tcp(cluster.addr());

    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let result = runtime.block_on(serve(settings, args.listen.is_none(), &cluster));
    // Sessions still open after the drain are dropped with the runtime, before the
    // cluster goes (its Drop stops the server and removes the directory).
    drop(runtime);
    drop(cluster);
    result?;
    println!("Demo stopped; the throwaway PostgreSQL is removed.");
    Ok(ExitCode::SUCCESS)
}

/// Binds the proxy, prints how to connect, and runs until a signal.
async fn serve(
    mut settings: Settings,
    may_fall_back: bool,
    cluster: &Cluster,
) -> anyhow::Result<()> {
    // hooks: the policy guard, as in `pgbelay serve`.
    let hooks = crate::cli::serve::hooks(&settings);
    let wanted = settings.listen;
    let proxy = match Proxy::bind(settings.clone(), hooks.clone()).await {
        Ok(proxy) => proxy,
        Err(e) if may_fall_back && e.addr_in_use() => {
            settings.listen = SocketAddr::new(wanted.ip(), 0);
            let proxy = Proxy::bind(settings.clone(), hooks).await?;
            println!(
                "note: {wanted} is in use; listening on {} instead",
                proxy.local_addr()?
            );
            proxy
        }
        Err(e) => return Err(e.into()),
    };
    let listen = proxy.local_addr()?;
    print_banner(listen, cluster, &settings);

    let shutdown = CancellationToken::new();
    let mut proxy_task = tokio::spawn(proxy.run(shutdown.clone()));
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        done = &mut proxy_task => {
            done.context("proxy task failed")??;
            return Ok(());
        }
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    println!("\nStopping (Ctrl-C again to stop at once) ...");
    shutdown.cancel();
    tokio::select! {
        done = &mut proxy_task => done.context("proxy task failed")??,
        _ = int.recv() => proxy_task.abort(),
        _ = term.recv() => proxy_task.abort(),
    }
    Ok(())
}

/// What the user sees once the demo is up.
fn print_banner(listen: SocketAddr, cluster: &Cluster, settings: &Settings) {
    let user = cluster.superuser();
    let proxied = url_for(
        &listen.ip().to_string(),
        listen.port(),
        user,
        Some(SUPERUSER_PASSWORD),
        DEMO_DB,
    );
    let direct = cluster.url(user, Some(SUPERUSER_PASSWORD), DEMO_DB);
    let secret = settings.approval_secret.as_deref().unwrap_or_default();
    println!(
        "\
pgbelay demo is running: proxy on {listen} in front of PostgreSQL on {upstream}.

Connect through pgbelay:
    psql '{proxied}'
Connect directly (bypassing pgbelay), to compare:
    psql '{direct}'

For pgbelay approve / changes / show / undo in another terminal:
    export PGBELAY_APPROVAL_SECRET={secret} PGBELAY_DB='{direct}'

Tables in database {DEMO_DB}: customers, orders, order_items (with deleted_at),
shipments and audit_notes (without). Things to try through pgbelay:
    \\dt+
    SELECT status, count(*) FROM orders WHERE deleted_at IS NULL GROUP BY 1;
    DROP TABLE audit_notes;            -- refused: irreversible, needs an approval
    UPDATE orders SET status = 'paid'; -- refused: no WHERE
    DELETE FROM shipments;             -- refused: no WHERE
    {RECORDED_EXAMPLE}  -- recorded; then: pgbelay changes,
                                          -- pgbelay show 1, pgbelay undo 1

Press Ctrl-C to stop; the throwaway PostgreSQL and its data are removed.",
        upstream = cluster.addr(),
    );
}

/// The write the banner suggests: valid on the demo data (a test runs it).
const RECORDED_EXAMPLE: &str = "UPDATE orders SET status = 'shipped' WHERE id = 7;";

#[cfg(test)]
mod test {
    use super::*;

    /// The fixture loads into a fresh cluster and has the shape the README describes.
    #[test]
    fn fixture_loads() {
        let cluster = Cluster::start().unwrap();
        cluster
            .run_sql(&format!("CREATE DATABASE {DEMO_DB}"))
            .unwrap();
        cluster.run_sql_in(DEMO_DB, DEMO_SQL).unwrap();
        let counts = cluster
            .run_sql_in(
                DEMO_DB,
                "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),
                        (SELECT count(*) > 5000 FROM order_items)",
            )
            .unwrap();
        assert_eq!(counts.trim(), "1000|5000|t");
        let soft = cluster
            .run_sql_in(
                DEMO_DB,
                "SELECT string_agg(table_name, ',' ORDER BY table_name)
                 FROM information_schema.columns
                 WHERE table_schema = 'public' AND column_name = 'deleted_at'",
            )
            .unwrap();
        assert_eq!(soft.trim(), "customers,order_items,orders");
        // The suggested write satisfies the fixture's constraints and changes one row.
        let changed = cluster
            .run_sql_in(
                DEMO_DB,
                &format!(
                    "WITH w AS ({} RETURNING 1) SELECT count(*) FROM w",
                    RECORDED_EXAMPLE.trim_end_matches(';')
                ),
            )
            .unwrap();
        assert_eq!(changed.trim(), "1");
    }
}
