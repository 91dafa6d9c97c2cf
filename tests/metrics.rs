//! `/metrics` (issue 6, SPEC §B12): counters scraped over HTTP after known traffic.

mod common;

use std::sync::Arc;

use common::*;
use pgbelay::config::{Settings, UpstreamAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy_with_metrics(upstream: UpstreamAddr) -> TestProxy {
    let settings = Settings {
        upstream,
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Settings::default()
    };
    let guard = pgbelay::policy::Guard::new(&settings);
    TestProxy::start_with_settings(settings, Arc::new(guard)).await
}

/// `GET path` over plain TCP; the status line and the body.
async fn get(proxy: &TestProxy, path: &str) -> (String, String) {
    let addr = proxy.metrics_addr().expect("metrics_listen set");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = String::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the series `name` (with its labels, exactly as rendered).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{body}"))
        .parse()
        .expect("a number")
}

/// Refusals the server raises for pgbelay inside statements the proxy let through (the
/// blast radius, a locking read that wrote) count under their class too.
#[tokio::test]
async fn refusals_raised_in_the_server_count_by_class() {
    let proxy = proxy_with_metrics(UpstreamAddr::Tcp(cluster().addr())).await;
    let db = create_db("metrics_server").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE big (id int PRIMARY KEY, n int);
             INSERT INTO big SELECT g, 0 FROM generate_series(1, 1001) g;
             CREATE TABLE side (x int);
             CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO side VALUES (1) RETURNING 1';",
        )
        .await
        .expect("schema");
    let client = connect_super(proxy.endpoint(), &db).await;
    let err = client
        .batch_execute("UPDATE big SET n = 1 WHERE id > 0")
        .await
        .expect_err("over max_rows");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .batch_execute("SELECT sneaky() FROM big WHERE id = 1 FOR UPDATE")
        .await
        .expect_err("a locking read that wrote");
    assert_eq!(sqlstate(&err).as_deref(), Some("25006"));
    client.batch_execute("ROLLBACK").await.expect("rollback");

    let (_, body) = get(&proxy, "/metrics").await;
    assert_eq!(
        value(&body, "pgbelay_refusals_total{class=\"blast radius\"}"),
        1.0
    );
    assert_eq!(
        value(&body, "pgbelay_refusals_total{class=\"hidden write\"}"),
        1.0
    );
}

#[tokio::test]
async fn counters_follow_known_traffic() {
    let proxy = proxy_with_metrics(UpstreamAddr::Tcp(cluster().addr())).await;
    let db = create_db("metrics").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE m (id int PRIMARY KEY, n int, deleted_at timestamptz);
             INSERT INTO m SELECT g, g FROM generate_series(1, 5) g;",
        )
        .await
        .expect("schema");

    let (_, before) = get(&proxy, "/metrics").await;
    assert_eq!(value(&before, "pgbelay_sessions_total"), 0.0);

    let client = connect_super(proxy.endpoint(), &db).await;
    for _ in 0..3 {
        client.batch_execute("SELECT 1").await.expect("read");
    }
    client
        .batch_execute("UPDATE m SET n = n + 1 WHERE id <= 2")
        .await
        .expect("recorded write");
    client
        .batch_execute("DELETE FROM m WHERE id = 5")
        .await
        .expect("soft delete");
    let err = client
        .batch_execute("DROP TABLE m")
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));

    let (status, body) = get(&proxy, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(value(&body, "pgbelay_sessions_open"), 1.0);
    assert_eq!(value(&body, "pgbelay_sessions_total"), 1.0);
    // Reads in autocommit are forwarded as they are (the session is read-only).
    assert_eq!(
        value(&body, "pgbelay_statements_total{verdict=\"allow\"}"),
        3.0
    );
    assert_eq!(
        value(&body, "pgbelay_statements_total{verdict=\"rewrite\"}"),
        2.0
    );
    assert_eq!(
        value(&body, "pgbelay_statements_total{verdict=\"refuse\"}"),
        1.0
    );
    assert_eq!(value(&body, "pgbelay_refusals_total{class=\"drop\"}"), 1.0);
    assert_eq!(value(&body, "pgbelay_rows_recorded_total"), 3.0);
    assert!(value(&body, "pgbelay_proxy_latency_seconds_count") >= 6.0);
    assert_eq!(
        value(&body, "pgbelay_proxy_latency_seconds_bucket{le=\"+Inf\"}"),
        value(&body, "pgbelay_proxy_latency_seconds_count")
    );
    assert_eq!(value(&body, "pgbelay_upstream_connect_errors_total"), 0.0);

    drop(client);
    let closed = eventually(|| async {
        let (_, body) = get(&proxy, "/metrics").await;
        (value(&body, "pgbelay_sessions_open") == 0.0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "the session was not counted as closed");

    let (status, _) = get(&proxy, "/other").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn unreachable_upstream_is_counted() {
    // A port nothing listens on: bind one, note it, close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let proxy = proxy_with_metrics(UpstreamAddr::Tcp(addr.to_string())).await;
    let err = connect(
        proxy.endpoint(),
        superuser(),
        Some(SUPERUSER_PASSWORD),
        "postgres",
    )
    .await
    .expect_err("no server");
    assert_eq!(sqlstate(&err).as_deref(), Some("08001"), "{}", show(&err));
    let (_, body) = get(&proxy, "/metrics").await;
    assert_eq!(value(&body, "pgbelay_upstream_connect_errors_total"), 1.0);
    assert_eq!(value(&body, "pgbelay_sessions_total"), 1.0);
}

/// A refusal raised at a Bind (a prepared write executed in the middle of a batch) is a
/// refused statement like one raised at its Parse, and counts under its class.
#[tokio::test]
async fn refusals_at_a_bind_count() {
    let proxy = proxy_with_metrics(UpstreamAddr::Tcp(cluster().addr())).await;
    let db = create_db("metrics_bind").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE w (id int PRIMARY KEY, n int);
             INSERT INTO w VALUES (1, 0);
             GRANT ALL ON w TO {TRUST_USER};"
        ))
        .await
        .expect("schema");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), &db, "bind").await;
    // Parse a named write on its own, then execute it second in a batch.
    let mut parse = b"w\0UPDATE w SET n = n + 1 WHERE id = 1\0\0\0".to_vec();
    let mut bytes = frame(b'P', &parse);
    bytes.extend(frame(b'S', &[]));
    conn.send(&bytes).await;
    let answer = conn.read_until(b'Z').await.expect("parse answered");
    assert!(!answer.iter().any(|m| m.tag == b'E'), "{answer:?}");
    parse = b"\0SELECT 1\0\0\0".to_vec();
    let mut bytes = frame(b'P', &parse);
    bytes.extend(frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    bytes.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    bytes.extend(frame(b'B', b"\0w\0\0\0\0\0\0\0"));
    bytes.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    bytes.extend(frame(b'S', &[]));
    conn.send(&bytes).await;
    let answer = conn.read_until(b'Z').await.expect("batch answered");
    let errors: Vec<_> = answer.iter().filter(|m| m.tag == b'E').collect();
    assert_eq!(errors.len(), 1, "{answer:?}");
    assert_eq!(errors[0].code().as_deref(), Some("42501"), "{answer:?}");
    assert_eq!(count(&admin, "SELECT n::bigint FROM w").await, 0);

    let (_, body) = get(&proxy, "/metrics").await;
    assert_eq!(
        value(&body, "pgbelay_statements_total{verdict=\"refuse\"}"),
        1.0
    );
    assert_eq!(
        value(
            &body,
            "pgbelay_refusals_total{class=\"unrecordable write\"}"
        ),
        1.0,
        "{body}"
    );
}
