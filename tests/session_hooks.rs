//! The session's policy interface, proven with a test policy against a real server:
//! (a) replace the SQL of a Query or Parse, (b) inject statements before and after one and
//! swallow their responses, (c) answer the client itself — in the simple and the extended
//! protocol. Assertions are on the bytes a client receives and on rows in tables.

mod common;

use std::sync::Arc;

use common::*;
use pgbelay::session::{Decision, Hooks, Plan, Position, SessionHooks, SessionInfo};
use pgbelay::wire::encode::ErrorFields;
use pgbelay::wire::sqlstate::SqlState;

/// Acts on markers in the statement text:
/// `/*replace*/` → `SELECT 'replaced'`; `/*wrap:T*/` → insert 'before'/'after' into T
/// around it; `/*txwrap*/` → BEGIN before, COMMIT after; `/*rename*/` → UPDATE tags
/// reported as DELETE; `/*refuse*/` → refused; `/*bindwrap:T*/` → like wrap, but at every
/// Bind of the prepared statement instead of at its Parse.
#[derive(Default)]
struct TestHooks {
    /// Prepared statement name → its SQL, as seen at Parse.
    prepared: std::collections::HashMap<String, String>,
    /// Statements for `on_ready`.
    ready: Vec<String>,
}

fn decide(sql: &str) -> Decision {
    if sql.contains("/*replace*/") {
        return Decision::Rewrite(Plan {
            sql: Some("SELECT 'replaced'::text AS v".into()),
            ..Plan::default()
        });
    }
    if let Some(start) = sql.find("/*wrap:") {
        let rest = &sql[start + 7..];
        let table = &rest[..rest.find("*/").expect("marker end")];
        return Decision::Rewrite(Plan {
            before: vec![format!("INSERT INTO {table} VALUES ('before')")],
            after: vec![format!("INSERT INTO {table} VALUES ('after')")],
            ..Plan::default()
        });
    }
    if sql.contains("/*txwrap*/") {
        return Decision::Rewrite(Plan {
            before: vec!["BEGIN".into()],
            after: vec!["COMMIT".into()],
            ..Plan::default()
        });
    }
    if sql.contains("/*failbefore*/") {
        return Decision::Rewrite(Plan {
            before: vec!["BEGIN".into(), "SELECT 1/0".into()],
            after: vec!["COMMIT".into()],
            ..Plan::default()
        });
    }
    if sql.contains("/*rename*/") {
        return Decision::Rewrite(Plan {
            rename_tag: Some(("UPDATE".into(), "DELETE".into())),
            ..Plan::default()
        });
    }
    if sql.contains("/*refuse*/") {
        return Decision::Refuse(
            ErrorFields::error(SqlState::INSUFFICIENT_PRIVILEGE, "pgbelay: test refusal")
                .with_detail("statement class: test")
                .with_hint("do not do that"),
        );
    }
    Decision::Forward
}

impl SessionHooks for TestHooks {
    fn on_query(&mut self, _: &SessionInfo, _: Position, sql: &str) -> Decision {
        decide(sql)
    }
    fn on_parse(&mut self, _: &SessionInfo, _: Position, name: &str, sql: &str) -> Decision {
        self.prepared.insert(name.to_string(), sql.to_string());
        decide(sql)
    }
    fn on_bind(&mut self, _: &SessionInfo, _: Position, statement: &str) -> Decision {
        let Some(sql) = self.prepared.get(statement) else {
            return Decision::Forward;
        };
        match decide(&sql.replace("/*bindwrap:", "/*wrap:")) {
            Decision::Rewrite(plan) if sql.contains("/*bindwrap:") => Decision::Rewrite(plan),
            _ => Decision::Forward,
        }
    }
    fn on_ready(&mut self, _: &SessionInfo) -> Vec<String> {
        self.ready.clone()
    }
}

/// Makes [`TestHooks`] with the given startup statements.
struct TestPolicy {
    ready: Vec<String>,
}

impl Hooks for TestPolicy {
    fn session(&self, _: &SessionInfo) -> Box<dyn SessionHooks> {
        Box::new(TestHooks {
            ready: self.ready.clone(),
            ..TestHooks::default()
        })
    }
}

async fn proxy() -> TestProxy {
    TestProxy::start_with(cluster(), Arc::new(TestPolicy { ready: Vec::new() })).await
}

/// A table `T(v text)` in `postgres` that trust_user may write.
async fn log_table() -> String {
    let name = unique("hooklog");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {name}(v text); GRANT ALL ON {name} TO PUBLIC"
        ))
        .await
        .expect("create log table");
    name
}

async fn log_rows(table: &str) -> Vec<String> {
    let admin = connect_super(direct(), "postgres").await;
    admin
        .query(&format!("SELECT v FROM {table} ORDER BY v"), &[])
        .await
        .expect("read log")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn tags(messages: &[Msg]) -> String {
    messages.iter().map(|m| m.tag as char).collect()
}

fn command_tag(m: &Msg) -> String {
    String::from_utf8_lossy(m.body.strip_suffix(b"\0").unwrap_or(&m.body)).into_owned()
}

fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    let mut body = name.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.extend_from_slice(&[0, 0, 0]);
    frame(b'P', &body)
}

fn bind_execute_sync() -> Vec<u8> {
    let mut out = frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    out.extend(frame(b'S', &[]));
    out
}

#[tokio::test]
async fn a_replaces_sql_in_simple_and_extended_protocol() {
    let proxy = proxy().await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let rows = client
        .simple_query("SELECT 'original' /*replace*/")
        .await
        .expect("simple");
    let values: Vec<_> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(values, vec!["replaced"]);
    let row = client
        .query_one("SELECT 'original'::text /*replace*/", &[])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, String>(0), "replaced");
}

#[tokio::test]
async fn b_injected_statements_run_and_their_replies_are_swallowed_simple() {
    let proxy = proxy().await;
    let table = log_table().await;
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_b").await;
    conn.send(&query_message(&format!(
        "SELECT 42 AS answer /*wrap:{table}*/"
    )))
    .await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    // Exactly the client's own statement's reply: no INSERT tags, one ReadyForQuery.
    assert_eq!(tags(&reply), "TDCZ", "{reply:?}");
    assert_eq!(command_tag(&reply[2]), "SELECT 1");
    assert_eq!(reply[3].body, b"I");
    assert_eq!(log_rows(&table).await, vec!["after", "before"]);
}

#[tokio::test]
async fn b_injected_statements_run_and_their_replies_are_swallowed_extended() {
    let proxy = proxy().await;
    let table = log_table().await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let row = client
        .query_one(&format!("SELECT 42::int4 AS answer /*wrap:{table}*/"), &[])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, i32>(0), 42);
    // tokio-postgres prepares (Parse) once: one before, one after.
    assert_eq!(log_rows(&table).await, vec!["after", "before"]);
    // The session is in sync afterwards.
    let row = client.query_one("SELECT 7::int4", &[]).await.expect("next");
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test]
async fn b_the_last_injected_ready_for_query_reports_the_true_status() {
    let proxy = proxy().await;
    let table = log_table().await;
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!("CREATE UNIQUE INDEX ON {table}(v)"))
        .await
        .expect("index");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_tx").await;
    conn.send(&query_message(&format!(
        "INSERT INTO {table} VALUES ('x') /*txwrap*/"
    )))
    .await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "CZ", "{reply:?}");
    assert_eq!(command_tag(&reply[0]), "INSERT 0 1");
    assert_eq!(
        reply[1].body, b"I",
        "COMMIT's status, not the BEGIN block's"
    );
    // A failing statement inside the injected BEGIN/COMMIT: the client sees the error and
    // an idle status (COMMIT of a failed block rolls back), no ROLLBACK tag.
    conn.send(&query_message(&format!(
        "INSERT INTO {table} VALUES ('x') /*txwrap*/"
    )))
    .await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].code().as_deref(), Some("23505"));
    assert_eq!(reply[1].body, b"I");
    assert_eq!(log_rows(&table).await, vec!["x"]);
}

/// What the proxied backend (found by application_name) last ran.
async fn last_query_of(application_name: &str) -> String {
    let admin = connect_super(direct(), "postgres").await;
    admin
        .query_one(
            "SELECT query FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test]
async fn c_refused_query_is_answered_locally_when_idle() {
    let proxy = proxy().await;
    let app = unique("hooks_c_local");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", &app).await;
    conn.send(&query_message("SELECT 'seen upstream'")).await;
    conn.read_until(b'Z').await.expect("first");
    conn.send(&query_message("SELECT 1 /*refuse*/")).await;
    let reply = conn.read_until(b'Z').await.expect("refusal");
    assert_eq!(tags(&reply), "EZ");
    let fields = reply[0].fields();
    assert_eq!(fields[&b'C'], "42501");
    assert_eq!(fields[&b'M'], "pgbelay: test refusal");
    assert_eq!(fields[&b'D'], "statement class: test");
    assert_eq!(fields[&b'H'], "do not do that");
    assert_eq!(reply[1].body, b"I");
    // Nothing reached the server: its last statement is still the one before.
    assert_eq!(last_query_of(&app).await, "SELECT 'seen upstream'");
    conn.send(&query_message("SELECT 2")).await;
    assert_eq!(tags(&conn.read_until(b'Z').await.expect("next")), "TDCZ");
}

#[tokio::test]
async fn c_refused_query_inside_a_transaction_fails_it_like_a_server_error() {
    let proxy = proxy().await;
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_c_tx").await;
    conn.send(&query_message("BEGIN")).await;
    conn.read_until(b'Z').await.expect("begin");
    conn.send(&query_message("SELECT 1 /*refuse*/")).await;
    let reply = conn.read_until(b'Z').await.expect("refusal");
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].code().as_deref(), Some("42501"));
    assert_eq!(reply[0].fields()[&b'M'], "pgbelay: test refusal");
    assert_eq!(reply[1].body, b"E", "the transaction block has failed");
    conn.send(&query_message("SELECT 1")).await;
    let reply = conn.read_until(b'Z').await.expect("after");
    assert_eq!(reply[0].code().as_deref(), Some("25P02"));
    conn.send(&query_message("ROLLBACK")).await;
    let reply = conn.read_until(b'Z').await.expect("rollback");
    assert_eq!(reply.last().map(|m| m.body.clone()), Some(b"I".to_vec()));
}

#[tokio::test]
async fn c_refused_parse_discards_until_sync_then_the_session_goes_on() {
    let proxy = proxy().await;
    let app = unique("hooks_c_parse");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", &app).await;
    conn.send(&query_message("SELECT 'before refusal'")).await;
    conn.read_until(b'Z').await.expect("first");
    let mut batch = parse_msg("", "SELECT 1 /*refuse*/");
    batch.extend(bind_execute_sync());
    conn.send(&batch).await;
    let reply = conn.read_until(b'Z').await.expect("refusal");
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].code().as_deref(), Some("42501"));
    assert_eq!(reply[1].body, b"I");
    assert_eq!(last_query_of(&app).await, "SELECT 'before refusal'");

    // tokio-postgres recovers as from a server-side parse error.
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let err = client
        .prepare("SELECT 1 /*refuse*/")
        .await
        .expect_err("refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    let row = client.query_one("SELECT 5::int4", &[]).await.expect("next");
    assert_eq!(row.get::<_, i32>(0), 5);
}

#[tokio::test]
async fn c_refused_parse_mid_batch_rolls_back_the_batch_like_the_server() {
    let proxy = proxy().await;
    let table = log_table().await;
    let (mut conn, _) =
        RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_c_mid").await;
    let mut batch = parse_msg("", &format!("INSERT INTO {table} VALUES ('lost')"));
    batch.extend(frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    batch.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    batch.extend(parse_msg("", "SELECT 1 /*refuse*/"));
    batch.extend(bind_execute_sync());
    conn.send(&batch).await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    // ParseComplete, BindComplete, CommandComplete of the INSERT, then our error in place
    // of the refused Parse, then ReadyForQuery; the Bind/Execute after it were discarded.
    assert_eq!(tags(&reply), "12CEZ", "{reply:?}");
    assert_eq!(reply[3].code().as_deref(), Some("42501"));
    assert_eq!(reply[3].fields()[&b'M'], "pgbelay: test refusal");
    assert_eq!(reply[4].body, b"I");
    // The batch's implicit transaction failed, so the INSERT did not stay.
    assert!(log_rows(&table).await.is_empty());
}

#[tokio::test]
async fn c_refusal_in_a_pipeline_keeps_responses_in_order() {
    let proxy = proxy().await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let (a, refused, b) = tokio::join!(
        client.query_one("SELECT 1::int4", &[]),
        client.query_one("SELECT 2::int4 /*refuse*/", &[]),
        client.query_one("SELECT 3::int4", &[]),
    );
    assert_eq!(a.expect("a").get::<_, i32>(0), 1);
    assert_eq!(
        sqlstate(&refused.expect_err("refused")).as_deref(),
        Some("42501")
    );
    assert_eq!(b.expect("b").get::<_, i32>(0), 3);
}

#[tokio::test]
async fn fast_path_function_call_is_refused_and_the_session_goes_on() {
    let proxy = proxy().await;
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_f").await;
    // FunctionCall of OID 1299 (now()) with no arguments, text result.
    let mut body = 1299u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    conn.send(&frame(b'F', &body)).await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].code().as_deref(), Some("0A000"));
    conn.send(&query_message("SELECT 1")).await;
    assert_eq!(tags(&conn.read_until(b'Z').await.expect("next")), "TDCZ");
}

#[tokio::test]
async fn command_tags_are_renamed_in_simple_and_extended_protocol() {
    let proxy = proxy().await;
    let table = log_table().await;
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!("INSERT INTO {table} VALUES ('a'), ('b')"))
        .await
        .expect("seed");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_tag").await;
    conn.send(&query_message(&format!(
        "UPDATE {table} SET v = v /*rename*/"
    )))
    .await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "CZ");
    assert_eq!(command_tag(&reply[0]), "DELETE 2");
    // Extended: tokio-postgres reads the count from the (renamed) tag.
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let n = client
        .execute(
            &format!("UPDATE {table} SET v = v WHERE v = 'a' /*rename*/"),
            &[],
        )
        .await
        .expect("extended");
    assert_eq!(n, 1);
    let mut batch = parse_msg("", &format!("UPDATE {table} SET v = v /*rename*/"));
    batch.extend(bind_execute_sync());
    conn.send(&batch).await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "12CZ", "{reply:?}");
    assert_eq!(command_tag(&reply[2]), "DELETE 2");
}

#[tokio::test]
async fn bind_hook_wraps_every_execution_of_a_prepared_statement() {
    let proxy = proxy().await;
    let table = log_table().await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let statement = client
        .prepare(&format!("SELECT 1::int4 /*bindwrap:{table}*/"))
        .await
        .expect("prepare");
    for _ in 0..2 {
        let row = client.query_one(&statement, &[]).await.expect("execute");
        assert_eq!(row.get::<_, i32>(0), 1);
    }
    assert_eq!(
        log_rows(&table).await,
        vec!["after", "after", "before", "before"]
    );
}

#[tokio::test]
async fn ready_statements_run_before_the_client_is_told_it_is_ready() {
    let proxy = TestProxy::start_with(
        cluster(),
        Arc::new(TestPolicy {
            ready: vec![
                "SET statement_timeout = '42s'".into(),
                "SET lock_timeout = '7s'".into(),
            ],
        }),
    )
    .await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let row = client
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')",
            &[],
        )
        .await
        .expect("settings");
    assert_eq!(row.get::<_, String>(0), "42s");
    assert_eq!(row.get::<_, String>(1), "7s");

    // A startup statement that fails fails the connection: closed, not half-guarded.
    let failing = TestProxy::start_with(
        cluster(),
        Arc::new(TestPolicy {
            ready: vec!["SET no_such_setting_at_all = 1".into()],
        }),
    )
    .await;
    let err = connect(failing.endpoint(), TRUST_USER, None, "postgres").await;
    match err {
        Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("42704"), "{}", show(&e)),
        Ok(client) => {
            let r = client.simple_query("SELECT 1").await;
            panic!("connection should have failed, got a working session: {r:?}");
        }
    }
}

#[tokio::test]
async fn a_failed_injected_statement_is_the_only_error_the_client_sees() {
    let proxy = proxy().await;
    let table = log_table().await;
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), "postgres", "hooks_fail").await;
    conn.send(&query_message(&format!(
        "INSERT INTO {table} VALUES ('never') /*failbefore*/"
    )))
    .await;
    let reply = conn.read_until(b'Z').await.expect("reply");
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].code().as_deref(), Some("22012"));
    assert_eq!(reply[1].body, b"I");
    assert!(log_rows(&table).await.is_empty());
    // Extended protocol: the same, and the session goes on.
    let client = connect(proxy.endpoint(), TRUST_USER, None, "postgres")
        .await
        .expect("connect");
    let err = client
        .execute(
            &format!("INSERT INTO {table} VALUES ('never') /*failbefore*/"),
            &[],
        )
        .await
        .expect_err("fails");
    assert_eq!(sqlstate(&err).as_deref(), Some("22012"));
    assert!(log_rows(&table).await.is_empty());
    // A client's own 25P02 is still reported.
    client.batch_execute("BEGIN").await.expect("begin");
    let _ = client.batch_execute("SELECT 1/0").await;
    let err = client.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    client.batch_execute("ROLLBACK").await.expect("rollback");
}
