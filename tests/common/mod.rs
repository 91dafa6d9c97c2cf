//! Test harness: one throwaway PostgreSQL per test binary, a pgbelay proxy per test, and
//! clients that talk to either, so every test can compare "through the proxy" against
//! "direct" as ground truth.
//!
//! * [`cluster()`] starts a [`Cluster`] (PostgreSQL 15 from `initdb` in a temp dir, free
//!   port; as root the server runs as the `postgres` OS user) the first time it is called
//!   and shares it with every test of the binary. Statics are never dropped, so a detached
//!   watchdog ([`Cluster::stop_when_process_exits`]) stops the server and removes its
//!   directory once the test process has gone, however it ended. A test that needs a
//!   server of its own (to kill it) calls `Cluster::start()` and drops it.
//! * [`TestProxy::start`] runs `pgbelay::server::Proxy` on `127.0.0.1:0` in the test's own
//!   tokio runtime, in front of the shared cluster; dropping it shuts it down.
//! * An [`Endpoint`] is where a client connects: [`direct()`] or [`TestProxy::endpoint`].
//!   Every helper takes one, so a test runs the same steps against both and compares.
//! * Clients: [`connect`] (tokio-postgres, NoTls), [`connect_with_messages`] (also delivers
//!   notices and notifications), [`psql`] and [`pgbench`] (run as child processes with
//!   tokio, so the proxy running on the same runtime keeps serving), [`RawConn`] (a
//!   hand-written protocol client for malformed input and messages drivers never send).
//! * Roles (see `pgbelay::cluster`): the superuser (`postgres`/`postgres` as root, SCRAM),
//!   `scram_user`, `md5_user` (md5 hash), `trust_user` (no password).
//! * Isolation: tests run in parallel within a binary, so each creates its own objects
//!   under a [`unique`] name (a database from [`create_db`], or tables in `postgres`).
//! * Values: [`RawBytes`] reads any column as its raw binary bytes and [`RawParam`] sends
//!   given bytes as a binary parameter of any type, so results compare byte for byte.
//! * Nothing waits for a fixed time as an assertion: [`eventually`] polls with a deadline
//!   only to guard against hangs.
//! * [`load`]: helpers of the load and fault runs (`tests/load.rs`): a duration from
//!   `PGBELAY_LOAD_SECONDS`, sessions that report how their connection ended, errors
//!   tallied by class, and checks of the audit trail of one table.

#![allow(dead_code)]

pub mod load;

use std::collections::HashMap;
use std::error::Error as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::BytesMut;
use pgbelay::cluster::{self, Cluster};
use pgbelay::config::{Settings, UpstreamAddr};
use pgbelay::server::{Proxy, RunningProxy};
use pgbelay::session::{Hooks, PassThrough};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{AsyncMessage, Client, NoTls};

#[allow(unused_imports)] // each test binary uses a different subset
pub use pgbelay::cluster::{
    MD5_PASSWORD, MD5_USER, SCRAM_PASSWORD, SCRAM_USER, SUPERUSER_PASSWORD, TRUST_USER,
};

/// Upper bound for anything that should finish quickly; only a guard against hangs.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

static CLUSTER: LazyLock<Cluster> = LazyLock::new(|| {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    cluster
        .stop_when_process_exits()
        .unwrap_or_else(|e| panic!("cannot start the cluster watchdog: {e}"));
    // The audit schema, as `pgbelay init` installs it; in template1 too, so every test
    // database created from it has it.
    let install = pgbelay::audit::install_sql(pgbelay::audit::DEFAULT_AUDIT_SCHEMA)
        .unwrap_or_else(|e| panic!("audit schema SQL: {e}"));
    for db in ["template1", "postgres"] {
        cluster
            .run_sql_in(db, &install)
            .unwrap_or_else(|e| panic!("installing the audit schema in {db}: {e}"));
    }
    cluster
});

/// The PostgreSQL cluster shared by every test of this binary (started on first use).
pub fn cluster() -> &'static Cluster {
    &CLUSTER
}

/// Where a client connects: the server itself or a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// For messages.
    pub label: &'static str,
}

impl Endpoint {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A `postgres://` URL for tokio-postgres.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        cluster::url_for("127.0.0.1", self.port, user, password, db)
    }
}

/// The shared cluster, directly.
pub fn direct() -> Endpoint {
    endpoint_of(cluster())
}

/// Any cluster, directly.
pub fn endpoint_of(cluster: &Cluster) -> Endpoint {
    Endpoint {
        port: cluster.port(),
        label: "direct",
    }
}

/// The superuser of the shared cluster.
pub fn superuser() -> &'static str {
    cluster().superuser()
}

/// A proxy running in the current tokio runtime; shut down on drop.
pub struct TestProxy {
    running: RunningProxy,
}

impl TestProxy {
    /// A proxy under the real policy (`policy::Guard`, default settings) in front of the
    /// shared cluster: what `pgbelay serve` runs.
    pub async fn start() -> TestProxy {
        let guard = pgbelay::policy::Guard::new(&Settings::default());
        Self::start_with(cluster(), Arc::new(guard)).await
    }

    /// Like [`TestProxy::start`] with another blast-radius limit.
    pub async fn with_max_rows(max_rows: u64) -> TestProxy {
        let settings = Settings {
            max_rows,
            ..Settings::default()
        };
        let guard = pgbelay::policy::Guard::new(&settings);
        Self::start_with(cluster(), Arc::new(guard)).await
    }

    /// A proxy that lets everything through (the relay without a policy).
    pub async fn pass_through() -> TestProxy {
        Self::start_with(cluster(), Arc::new(PassThrough)).await
    }

    /// A proxy with `hooks` in front of `cluster`.
    pub async fn start_with(cluster: &Cluster, hooks: Arc<dyn Hooks>) -> TestProxy {
        let settings = Settings {
            upstream: UpstreamAddr::Tcp(cluster.addr()),
            ..Settings::default()
        };
        Self::start_with_settings(settings, hooks).await
    }

    /// A proxy with these settings (listening on a free loopback port) and `hooks`.
    pub async fn start_with_settings(settings: Settings, hooks: Arc<dyn Hooks>) -> TestProxy {
        let settings = Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..settings
        };
        let running = Proxy::spawn(settings, hooks)
            .await
            .expect("proxy failed to start");
        TestProxy { running }
    }

    /// Where clients reach the proxy.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.running.addr.port(),
            label: "proxy",
        }
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Where the proxy serves `/metrics` (when `metrics_listen` was set).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.metrics_addr
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.running.shutdown.cancel();
    }
}

/// A name no other test of any binary uses: `prefix_<pid>_<n>`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Connects with tokio-postgres; the connection runs on a spawned task.
pub async fn connect(
    ep: Endpoint,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> Result<Client, tokio_postgres::Error> {
    connect_url(ep, &ep.url(user, password, db)).await
}

/// Connects to a full URL (e.g. with `?application_name=`) that points at `ep`.
pub async fn connect_url(ep: Endpoint, url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) =
        tokio::time::timeout(HANG_GUARD, tokio_postgres::connect(url, NoTls))
            .await
            .unwrap_or_else(|_| panic!("connecting to {} ({url}) hung", ep.label))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `sql`, which pgbelay must refuse (42501), and returns the server error.
pub async fn refused(client: &Client, sql: &str) -> tokio_postgres::error::DbError {
    let err = client.batch_execute(sql).await.expect_err(sql);
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{}", show(&err));
    err.as_db_error().expect("server error").clone()
}

/// The one value (an int8) `sql` returns.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Rows of `sql` as text (the query selects one text column).
pub async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", show(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What each query of `queries` returns, as [`texts`] does: a snapshot of some tables.
pub async fn contents(client: &Client, queries: &[&str]) -> Vec<Vec<String>> {
    let mut all = Vec::with_capacity(queries.len());
    for sql in queries {
        all.push(texts(client, sql).await);
    }
    all
}

/// The rows `sql` returns, as pairs of their first two columns.
pub async fn query_pairs<A, B>(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<(A, B)>
where
    A: for<'a> tokio_postgres::types::FromSql<'a>,
    B: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = client.query(sql, params).await.expect(sql);
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Connects as the superuser to database `db` (panics on failure).
pub async fn connect_super(ep: Endpoint, db: &str) -> Client {
    connect(ep, superuser(), Some(SUPERUSER_PASSWORD), db)
        .await
        .unwrap_or_else(|e| panic!("superuser connect via {}: {}", ep.label, show(&e)))
}

/// Like [`connect`], and also delivers the connection's notices and notifications.
/// The receiver yields `None` once the connection has ended.
pub async fn connect_with_messages(
    ep: Endpoint,
    user: &str,
    password: Option<&str>,
    db: &str,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<AsyncMessage>), tokio_postgres::Error> {
    let url = ep.url(user, password, db);
    let (client, mut connection) =
        tokio::time::timeout(HANG_GUARD, tokio_postgres::connect(&url, NoTls))
            .await
            .unwrap_or_else(|_| panic!("connecting to {} hung", ep.label))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            let _ = tx.send(message);
        }
    });
    Ok((client, rx))
}

/// A fresh database owned by the superuser.
pub async fn create_db(prefix: &str) -> String {
    let name = unique(prefix);
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    name
}

/// SQLSTATE of a tokio-postgres error, if the server (or proxy) sent one.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_string())
}

/// A tokio-postgres error with its source, for messages.
pub fn show(err: &tokio_postgres::Error) -> String {
    match err.source() {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// Polls `check` every 100 ms until it returns `Some` or [`HANG_GUARD`] passes.
pub async fn eventually<T, F, Fut>(check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(HANG_GUARD, check).await
}

/// [`eventually`] with its own limit, for what the server takes its time over (crash
/// recovery on a loaded machine).
pub async fn eventually_within<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a child process printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
}

impl ProcOutput {
    /// True when the process exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `psql -X -A -t -h 127.0.0.1 -p PORT -U user -d db` plus `args`, with PGPASSWORD.
pub async fn psql(
    ep: Endpoint,
    user: &str,
    password: Option<&str>,
    db: &str,
    args: &[&str],
) -> ProcOutput {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(ep.port.to_string())
        .args(["-U", user, "-d", db])
        .args(args);
    run_client(cmd, password).await
}

/// Runs psql as the superuser.
pub async fn psql_super(ep: Endpoint, db: &str, args: &[&str]) -> ProcOutput {
    psql(ep, superuser(), Some(SUPERUSER_PASSWORD), db, args).await
}

/// Runs `pgbench -h 127.0.0.1 -p PORT -U superuser` plus `args`.
pub async fn pgbench(ep: Endpoint, args: &[&str]) -> ProcOutput {
    let mut cmd = tokio::process::Command::new("pgbench");
    cmd.args(["-h", "127.0.0.1", "-p"])
        .arg(ep.port.to_string())
        .args(["-U", superuser()])
        .args(args);
    run_client(cmd, Some(SUPERUSER_PASSWORD)).await
}

async fn run_client(mut cmd: tokio::process::Command, password: Option<&str>) -> ProcOutput {
    cmd.env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .env("PAGER", "")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let output = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    ProcOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

/// Any column's value as the raw bytes the server sent (binary format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBytes(pub Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawBytes(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary parameter of any type, sent as the given bytes (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawParam(pub Option<Vec<u8>>);

impl ToSql for RawParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One backend message: type byte and body (without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Message type byte.
    pub tag: u8,
    /// Body after the length word.
    pub body: Vec<u8>,
}

impl Msg {
    /// The fields of an ErrorResponse / NoticeResponse, by field code.
    pub fn fields(&self) -> HashMap<u8, String> {
        let mut fields = HashMap::new();
        let mut rest = self.body.as_slice();
        while let Some((&code, tail)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            fields.insert(code, String::from_utf8_lossy(&tail[..end]).into_owned());
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        fields
    }

    /// SQLSTATE of an ErrorResponse.
    pub fn code(&self) -> Option<String> {
        self.fields().get(&b'C').cloned()
    }

    /// Severity (non-localized `V`, else `S`) of an ErrorResponse.
    pub fn severity(&self) -> Option<String> {
        let fields = self.fields();
        fields.get(&b'V').or_else(|| fields.get(&b'S')).cloned()
    }
}

/// A frontend message: type byte, then length and body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A StartupMessage (protocol 3.0) with the given parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (key, value) in params {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = (body.len() as i32 + 4).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A simple Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

/// How a raw read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived before the hang guard.
    TimedOut,
}

/// A hand-written protocol client on a plain TcpStream.
pub struct RawConn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Opens a TCP connection.
    pub async fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes a trust startup (`trust_user`), reading up to the first
    /// ReadyForQuery. Returns the messages received.
    pub async fn startup(addr: &str, db: &str, application_name: &str) -> (RawConn, Vec<Msg>) {
        let mut conn = Self::connect(addr).await;
        conn.send(&startup_message(&[
            ("user", TRUST_USER),
            ("database", db),
            ("application_name", application_name),
        ]))
        .await;
        let messages = conn
            .read_until(b'Z')
            .await
            .unwrap_or_else(|end| panic!("startup on {addr} ended: {end:?}"));
        assert!(
            !messages.iter().any(|m| m.tag == b'E'),
            "startup failed: {messages:?}"
        );
        (conn, messages)
    }

    /// Writes bytes (errors are ignored: the peer may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Reads one backend message.
    pub async fn read_message(&mut self) -> Result<Msg, ReadEnd> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                assert!(len >= 4, "backend sent length {len}");
                let total = len as usize + 1;
                if self.buf.len() >= total {
                    let msg = Msg {
                        tag: self.buf[0],
                        body: self.buf[5..total].to_vec(),
                    };
                    self.buf.drain(..total);
                    return Ok(msg);
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(HANG_GUARD, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(ReadEnd::TimedOut),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadEnd::Closed),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads messages up to and including one with type `tag`.
    pub async fn read_until(&mut self, tag: u8) -> Result<Vec<Msg>, ReadEnd> {
        let mut out = Vec::new();
        loop {
            let msg = self.read_message().await?;
            let done = msg.tag == tag;
            out.push(msg);
            if done {
                return Ok(out);
            }
        }
    }

    /// Reads messages until the peer closes; `Err` carries what arrived if it never did.
    pub async fn read_to_close(&mut self) -> Result<Vec<Msg>, Vec<Msg>> {
        let mut out = Vec::new();
        loop {
            match self.read_message().await {
                Ok(msg) => out.push(msg),
                Err(ReadEnd::Closed) => return Ok(out),
                Err(ReadEnd::TimedOut) => return Err(out),
            }
        }
    }

    /// The bytes received but not yet parsed (e.g. a partial message before a close).
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}
