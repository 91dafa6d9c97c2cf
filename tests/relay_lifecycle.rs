//! Bad input, vanishing clients, dying servers and the refused FunctionCall (SPEC §B9,
//! issue 2 point 5): each affects only its own connection.

mod common;

use common::*;
use pgbelay::cluster::Cluster;
use std::time::Duration;

/// A tokio-postgres session through the proxy that must keep working.
async fn bystander(proxy: &TestProxy) -> tokio_postgres::Client {
    let client = connect_super(proxy.endpoint(), "postgres").await;
    assert_eq!(select_one(&client).await, 1);
    client
}

async fn select_one(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT 1", &[])
        .await
        .expect("the other session must keep working")
        .get(0)
}

/// Sends `bytes` on a fresh connection and reads until the peer closes.
async fn send_and_read_to_close(addr: &str, bytes: &[u8]) -> Vec<Msg> {
    let mut conn = RawConn::connect(addr).await;
    conn.send(bytes).await;
    conn.read_to_close()
        .await
        .unwrap_or_else(|got| panic!("{addr} did not close the connection; got {got:?}"))
}

/// At most one message, and if there is one, a FATAL ErrorResponse.
fn assert_fatal_or_nothing(what: &str, messages: &[Msg]) {
    assert!(messages.len() <= 1, "{what}: {messages:?}");
    if let Some(msg) = messages.first() {
        assert_eq!(msg.tag, b'E', "{what}: {messages:?}");
        assert_eq!(
            msg.severity().as_deref(),
            Some("FATAL"),
            "{what}: {messages:?}"
        );
    }
}

#[tokio::test]
async fn garbage_before_startup_closes_only_that_connection() {
    let proxy = TestProxy::start().await;
    let other = bystander(&proxy).await;
    let garbage = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec();
    for ep in [direct(), proxy.endpoint()] {
        let got = send_and_read_to_close(&ep.addr(), &garbage).await;
        assert_fatal_or_nothing(ep.label, &got);
    }
    assert_eq!(select_one(&other).await, 1);
}

#[tokio::test]
async fn oversized_startup_packet_closes_only_that_connection() {
    let proxy = TestProxy::start().await;
    let other = bystander(&proxy).await;
    let mut packet = 20_000i32.to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608i32.to_be_bytes());
    packet.extend(std::iter::repeat_n(b'a', 19_992));
    for ep in [direct(), proxy.endpoint()] {
        let got = send_and_read_to_close(&ep.addr(), &packet).await;
        assert_fatal_or_nothing(ep.label, &got);
    }
    assert_eq!(select_one(&other).await, 1);
}

#[tokio::test]
async fn unknown_startup_code_gets_fatal_and_close() {
    let proxy = TestProxy::start().await;
    let other = bystander(&proxy).await;
    // Protocol 9.9: PostgreSQL answers with a FATAL ErrorResponse naming the version
    // (0A000), so must the proxy.
    let mut packet = 8i32.to_be_bytes().to_vec();
    packet.extend_from_slice(&((9i32 << 16) | 9).to_be_bytes());
    for ep in [direct(), proxy.endpoint()] {
        let got = send_and_read_to_close(&ep.addr(), &packet).await;
        assert_eq!(got.len(), 1, "{}: {got:?}", ep.label);
        assert_eq!(got[0].tag, b'E', "{}: {got:?}", ep.label);
        assert_eq!(got[0].severity().as_deref(), Some("FATAL"), "{}", ep.label);
        assert_eq!(got[0].code().as_deref(), Some("0A000"), "{}", ep.label);
        let message = got[0].fields().get(&b'M').cloned().unwrap_or_default();
        assert!(
            message.contains("unsupported frontend protocol 9.9"),
            "{}: {message}",
            ep.label
        );
    }
    assert_eq!(select_one(&other).await, 1);
}

#[tokio::test]
async fn oversized_frame_after_startup_gets_fatal_and_close() {
    let proxy = TestProxy::start().await;
    let other = bystander(&proxy).await;
    for ep in [direct(), proxy.endpoint()] {
        let (mut conn, _) = RawConn::startup(&ep.addr(), "postgres", &unique("huge")).await;
        let mut frame = vec![b'Q'];
        frame.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
        frame.extend_from_slice(b"SELECT 1");
        conn.send(&frame).await;
        let got = conn
            .read_to_close()
            .await
            .unwrap_or_else(|got| panic!("{}: not closed, got {got:?}", ep.label));
        if ep.label == "direct" {
            // PostgreSQL only logs "invalid message length" and closes.
            assert_fatal_or_nothing(ep.label, &got);
            continue;
        }
        // The proxy says why (the protocol allows an ErrorResponse here).
        let last = got
            .last()
            .unwrap_or_else(|| panic!("{}: no error", ep.label));
        assert_eq!(last.tag, b'E', "{}: {got:?}", ep.label);
        assert_eq!(last.severity().as_deref(), Some("FATAL"), "{}", ep.label);
        assert_eq!(
            last.code().as_deref(),
            Some("08P01"),
            "{}: {got:?}",
            ep.label
        );
    }
    assert_eq!(select_one(&other).await, 1);
}

/// A Flush with nothing to flush gets no answer, and the session goes on, as directly
/// (it once opened a batch that waited for a ReadyForQuery forever).
#[tokio::test]
async fn a_flush_at_an_idle_point_changes_nothing() {
    let proxy = TestProxy::start().await;
    for addr in [direct().addr(), proxy.addr().to_string()] {
        let (mut conn, _) = RawConn::startup(&addr, "postgres", "flush").await;
        conn.send(&frame(b'H', &[])).await;
        conn.send(&query_message("SELECT 41 + 1")).await;
        let got = conn.read_until(b'Z').await.expect("query after Flush");
        let tags: Vec<char> = got.iter().map(|m| char::from(m.tag)).collect();
        assert_eq!(tags, ['T', 'D', 'C', 'Z'], "{addr}: {got:?}");
    }
}

#[tokio::test]
async fn function_call_is_refused_and_the_session_goes_on() {
    let proxy = TestProxy::start().await;
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "fcall").await;
    // FunctionCall: pg_backend_pid() (oid 2026), no arguments, text result.
    let mut body = 2026i32.to_be_bytes().to_vec();
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    conn.send(&frame(b'F', &body)).await;
    let got = conn.read_until(b'Z').await.expect("an answer");
    let tags: Vec<char> = got.iter().map(|m| char::from(m.tag)).collect();
    assert_eq!(tags, ['E', 'Z'], "{got:?}");
    assert_eq!(got[0].severity().as_deref(), Some("ERROR"));
    assert_eq!(
        got[0].code().as_deref(),
        Some("0A000"),
        "{:?}",
        got[0].fields()
    );
    assert_eq!(got[1].body, b"I");
    conn.send(&query_message("SELECT 41 + 1")).await;
    let got = conn
        .read_until(b'Z')
        .await
        .expect("query after FunctionCall");
    let tags: Vec<char> = got.iter().map(|m| char::from(m.tag)).collect();
    assert_eq!(tags, ['T', 'D', 'C', 'Z'], "{got:?}");
    assert!(got[1].body.ends_with(b"42"), "{got:?}");
}

#[tokio::test]
async fn vanished_client_leaves_no_open_transaction() {
    let proxy = TestProxy::start().await;
    let table = unique("vanish");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v int);
             INSERT INTO {table} VALUES (1, 0);
             GRANT ALL ON {table} TO {TRUST_USER}"
        ))
        .await
        .expect("setup");
    let app = unique("vanishing");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", &app).await;
    conn.send(&query_message("BEGIN")).await;
    conn.read_until(b'Z').await.expect("BEGIN");
    conn.send(&query_message(&format!(
        "UPDATE {table} SET v = 1 WHERE id = 1"
    )))
    .await;
    let got = conn.read_until(b'Z').await.expect("UPDATE");
    assert_eq!(got.last().map(|m| m.body.clone()), Some(b"T".to_vec()));
    let state_query =
        "SELECT coalesce(state, '') FROM pg_stat_activity WHERE application_name = $1";
    let states: Vec<String> = admin
        .query(state_query, &[&app])
        .await
        .expect("activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["idle in transaction"]);

    drop(conn); // no Terminate: the client just goes away
    let gone = eventually(|| async {
        let rows = admin.query(state_query, &[&app]).await.ok()?;
        rows.is_empty().then_some(())
    })
    .await;
    let left: Vec<String> = admin
        .query(state_query, &[&app])
        .await
        .expect("activity")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(gone.is_some(), "upstream backend still there: {left:?}");
    let v: i32 = admin
        .query_one(&format!("SELECT v FROM {table} WHERE id = 1"), &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(v, 0, "the vanished client's UPDATE must not be committed");
}

#[tokio::test]
async fn terminated_backend_relays_the_servers_fatal() {
    let proxy = TestProxy::start().await;
    let admin = connect_super(direct(), "postgres").await;
    for ep in [direct(), proxy.endpoint()] {
        let app = unique("terminated");
        let (mut conn, _) = RawConn::startup(&ep.addr(), "postgres", &app).await;
        conn.send(&query_message("SELECT pg_sleep(30)")).await;
        let terminated = eventually(|| async {
            let row = admin
                .query_opt(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND state = 'active'",
                    &[&app],
                )
                .await
                .ok()??;
            row.get::<_, bool>(0).then_some(())
        })
        .await;
        assert!(terminated.is_some(), "{}: backend not found", ep.label);
        let got = conn
            .read_to_close()
            .await
            .unwrap_or_else(|got| panic!("{}: not closed, got {got:?}", ep.label));
        let errors: Vec<_> = got.iter().filter(|m| m.tag == b'E').collect();
        assert_eq!(errors.len(), 1, "{}: {got:?}", ep.label);
        assert_eq!(errors[0].severity().as_deref(), Some("FATAL"));
        assert_eq!(errors[0].code().as_deref(), Some("57P01"), "{}", ep.label);
        assert_eq!(
            got.last().map(|m| m.tag),
            Some(b'E'),
            "{}: {got:?}",
            ep.label
        );
    }
}

#[tokio::test]
async fn killed_backend_gives_08006_and_a_clean_close() {
    // A dedicated server: SIGKILL of a backend makes the postmaster reset every session.
    let own = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("join")
        .expect("start a dedicated cluster");
    let proxy =
        TestProxy::start_with(&own, std::sync::Arc::new(pgbelay::session::PassThrough)).await;
    let admin = connect_super(endpoint_of(&own), "postgres").await;
    let app = unique("killed");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", &app).await;
    conn.send(&query_message("SELECT pg_sleep(30)")).await;
    let pid = eventually(|| async {
        let row = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
                &[&app],
            )
            .await
            .ok()??;
        Some(row.get::<_, i32>(0))
    })
    .await
    .expect("backend not found");
    let status = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let got = conn
        .read_to_close()
        .await
        .unwrap_or_else(|got| panic!("not closed, got {got:?}"));
    let last = got.last().expect("an ErrorResponse before the close");
    assert_eq!(last.tag, b'E', "{got:?}");
    assert_eq!(last.code().as_deref(), Some("08006"), "{:?}", last.fields());
    // The postmaster recovers from the crash by itself; a shutdown request that arrives
    // mid-recovery can hang pg_ctl, so wait until it accepts connections again (replaying
    // the WAL and the checkpoint after it took over 10 s once, the full suite running).
    let url = own.superuser_url();
    let last_error = std::sync::Mutex::new(String::new());
    let recovered = eventually_within(Duration::from_secs(90), || async {
        let tried = async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map(|_| ())
        };
        tried
            .await
            .map_err(|e| *last_error.lock().expect("lock") = show(&e))
            .ok()
    })
    .await;
    assert!(
        recovered.is_some(),
        "the server did not recover from the crash (last error: {}):\n{}",
        last_error.lock().expect("lock"),
        own.log_tail()
    );
    // Restarted, the server is reachable through the same proxy again.
    let own = tokio::task::spawn_blocking(move || own.restart().map(|()| own))
        .await
        .expect("join")
        .expect("restart the dedicated cluster");
    let client = connect_super(proxy.endpoint(), "postgres").await;
    assert_eq!(select_one(&client).await, 1);
    drop(proxy);
    tokio::task::spawn_blocking(move || drop(own))
        .await
        .expect("drop cluster");
}
