//! The policy through the live proxy (issue 3): `pgbelay check` and the proxy agree on the
//! whole corpus, and nothing a refusal covers takes effect — checked on a direct
//! connection, in the simple and the extended protocol, in and out of transactions.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use pgbelay::config::Settings;
use pgbelay::policy::{Context, Prepared, Verdict, judge};
use tokio_postgres::SimpleQueryMessage;

async fn guarded() -> TestProxy {
    TestProxy::start_with(
        cluster(),
        Arc::new(pgbelay::policy::Guard::new(&Settings::default())),
    )
    .await
}

/// `(file:line, sql, expected block?)` for every corpus case.
fn corpus() -> Vec<(String, String, bool)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-fixtures/policy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "corpus"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut current: Option<(String, String, bool)> = None;
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("@#") {
                continue;
            }
            if let Some(header) = line.strip_prefix("@@ ") {
                cases.extend(current.take());
                current = Some((
                    format!("{name}:{}", i + 1),
                    String::new(),
                    header.starts_with("block"),
                ));
            } else if let Some(c) = current.as_mut() {
                c.1.push_str(line);
                c.1.push('\n');
            }
        }
        cases.extend(current);
    }
    for c in &mut cases {
        c.1 = c.1.trim_end().to_string();
    }
    cases
}

fn is_pgbelay_refusal(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|e| e.code().code() == "42501" && e.message().starts_with("pgbelay:"))
}

#[tokio::test]
async fn check_and_the_live_proxy_agree_on_the_whole_corpus() {
    let proxy = guarded().await;
    let db = create_db("corpus_live").await;
    let prepared = Prepared::new();
    let ctx = Context::offline("pgbelay", &prepared);
    let cases = corpus();
    assert!(cases.len() >= 200, "corpus has {} cases", cases.len());
    let mut mismatches = Vec::new();
    for (at, sql, expect_block) in &cases {
        // What `pgbelay check` says must be what the corpus says (policy_corpus checks the
        // class); here: what the live proxy does must be what check says.
        let offline_block = matches!(judge(sql, &ctx).verdict, Verdict::Refuse(_));
        assert_eq!(
            offline_block, *expect_block,
            "{at}: corpus and check disagree"
        );
        // A fresh unprivileged session per case, inside a transaction that is rolled back,
        // so allowed statements leave nothing behind.
        let client = connect(proxy.endpoint(), TRUST_USER, None, &db)
            .await
            .expect("connect");
        let _ = client.batch_execute("BEGIN").await;
        let result = tokio::time::timeout(HANG_GUARD, client.simple_query(sql)).await;
        let live_block = match &result {
            Ok(Err(e)) => is_pgbelay_refusal(e),
            Ok(Ok(_)) => false,
            // COPY FROM STDIN waits for data tokio-postgres' simple_query never sends.
            Err(_) => false,
        };
        if live_block != offline_block {
            mismatches.push(format!(
                "{at}: check says {}, proxy {}: {sql}\n  -> {result:?}",
                if offline_block { "block" } else { "allow" },
                if live_block {
                    "refused"
                } else {
                    "did not refuse"
                },
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A table with 5 rows, and a fingerprint of everything a refused statement could touch.
async fn victim() -> (String, tokio_postgres::Client) {
    let table = unique("victim");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table}(id int PRIMARY KEY, v int, note text);
             INSERT INTO {table} SELECT g, g * 10, 'row ' || g FROM generate_series(1, 5) g;
             GRANT ALL ON {table} TO PUBLIC"
        ))
        .await
        .expect("victim");
    (table, admin)
}

async fn fingerprint(admin: &tokio_postgres::Client, table: &str) -> String {
    let rows = admin
        .simple_query(&format!(
            "SELECT (SELECT string_agg(t::text, ',' ORDER BY id) FROM {table} t),
                    (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                      WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped),
                    (SELECT count(*) FROM pg_rules WHERE tablename = '{table}'),
                    current_setting('default_transaction_read_only')"
        ))
        .await
        .expect("fingerprint");
    rows.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..4)
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn refused_statements_take_no_effect() {
    let proxy = guarded().await;
    let (t, admin) = victim().await;
    let before = fingerprint(&admin, &t).await;
    let client = connect_super(proxy.endpoint(), "postgres").await;
    let refused = [
        format!("DROP TABLE {t}"),
        format!("/* x */ DrOp /* nested /* comment */ */ TABLE \"{t}\""),
        format!("TRUNCATE {t}"),
        format!("DELETE FROM {t}"),
        format!("UPDATE {t} SET v = 0"),
        format!("ALTER TABLE {t} DROP COLUMN note"),
        format!("ALTER TABLE {t} ALTER COLUMN v TYPE text"),
        format!("WITH a AS (WITH b AS (WITH c AS (DELETE FROM {t} WHERE id > 0 RETURNING *) SELECT * FROM c) SELECT * FROM b) SELECT count(*) FROM a"),
        format!("EXPLAIN ANALYZE DELETE FROM {t} WHERE id > 0"),
        format!("EXPLAIN (ANALYZE, BUFFERS) UPDATE {t} SET v = 1 WHERE id = 1"),
        format!("UPDATE {t} SET v = -1 WHERE id = 1; DROP TABLE {t}"),
        format!("SELECT 1; TRUNCATE {t}"),
        format!("DO $$ BEGIN DELETE FROM {t}; END $$"),
        format!("DO $body$ BEGIN EXECUTE 'DROP TABLE {t}'; END $body$"),
        format!("CREATE RULE r AS ON INSERT TO {t} DO INSTEAD NOTHING"),
        format!("COPY (DELETE FROM {t} WHERE id > 0 RETURNING *) TO STDOUT"),
        format!("PREPARE p AS DELETE FROM {t} WHERE id = $1"),
        format!("SELECT * INTO {t}_copy FROM {t}"),
        "SELECT set_config('default_transaction_read_only', 'on', false), set_config('default_transaction_read_only', 'off', false)".to_string(),
        "SET default_transaction_read_only = off".to_string(),
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE".to_string(),
        "SET session_replication_role = replica".to_string(),
        "SELECT lo_unlink(12345)".to_string(),
        "SELEC 1 FROM nowhere".to_string(),
        "CREATE TABLE pgbelay.sneaky(x int)".to_string(),
        "MERGE INTO x USING y ON true WHEN MATCHED THEN DELETE".to_string(),
    ];
    for sql in &refused {
        let err = client
            .simple_query(sql)
            .await
            .expect_err(&format!("not refused: {sql}"));
        let db = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {}", show(&err)));
        assert_eq!(db.code().code(), "42501", "{sql}: {db:?}");
        assert!(
            db.message().starts_with("pgbelay: "),
            "{sql}: {}",
            db.message()
        );
        assert!(
            db.detail()
                .is_some_and(|d| d.starts_with("statement class: ")),
            "{sql}: {:?}",
            db.detail()
        );
        assert!(db.hint().is_some_and(|h| !h.is_empty()), "{sql}: no hint");
    }
    // Extended protocol: refused at Parse, the driver recovers.
    for sql in [format!("DROP TABLE {t}"), format!("DELETE FROM {t}")] {
        let err = client.execute(&sql, &[]).await.expect_err("refused");
        assert!(is_pgbelay_refusal(&err), "{sql}: {}", show(&err));
    }
    // Inside a transaction the refusal fails the transaction, as a server error would:
    // the UPDATE before it does not survive COMMIT.
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute(&format!("UPDATE {t} SET v = -5 WHERE id = 2"))
        .await
        .expect("update in tx");
    let err = client
        .batch_execute(&format!("TRUNCATE {t}"))
        .await
        .expect_err("refused in tx");
    assert!(is_pgbelay_refusal(&err));
    let err = client
        .batch_execute("SELECT 1")
        .await
        .expect_err("tx failed");
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    client.batch_execute("COMMIT").await.expect("commit");

    assert_eq!(fingerprint(&admin, &t).await, before);
    let copy_exists: bool = admin
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{t}_copy")],
        )
        .await
        .expect("regclass")
        .get(0);
    assert!(!copy_exists, "SELECT INTO created a table");
    // The session is still usable and reads pass.
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .expect("read")
        .get(0);
    assert_eq!(n, 5);
}

#[tokio::test]
async fn sjis_sessions_are_refused_with_a_clear_error() {
    let proxy = guarded().await;
    let client = connect_super(proxy.endpoint(), "postgres").await;
    let err = client
        .simple_query("SET client_encoding = 'SJIS'")
        .await
        .expect_err("refused");
    assert!(is_pgbelay_refusal(&err), "{}", show(&err));
    assert!(
        err.as_db_error().is_some_and(
            |e| e.message().contains("UTF8") || e.hint().is_some_and(|h| h.contains("UTF8"))
        ),
        "{}",
        show(&err)
    );
    // psql with PGCLIENTENCODING=SJIS: every statement refused.
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(proxy.endpoint().port.to_string())
        .args(["-U", superuser(), "-d", "postgres", "-c", "SELECT 1"])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGCLIENTENCODING", "SJIS")
        .output()
        .await
        .expect("psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "SJIS session ran a statement");
    assert!(stderr.contains("pgbelay:"), "{stderr}");
}

/// The value of setting `name` on `client` (`SHOW`, sent as a simple query).
async fn setting(client: &tokio_postgres::Client, name: &str) -> String {
    let messages = client
        .simple_query(&format!("SHOW {name}"))
        .await
        .expect("show");
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}

/// PgBouncer's `server_reset_query`: DISCARD ALL (and RESET ALL) run, and the read-only
/// guard is back right after them — a read that hides a write still fails in the server.
/// With other statements in the Query, or through the extended protocol, they are refused
/// and reset nothing.
#[tokio::test]
async fn a_session_reset_runs_and_the_guard_is_set_again() {
    let proxy = guarded().await;
    let db = create_db("reset_live").await;
    let table = unique("reset_victim");
    connect_super(direct(), &db)
        .await
        .batch_execute(&format!(
            "CREATE TABLE {table}(x int); GRANT ALL ON {table} TO PUBLIC;
             CREATE FUNCTION {table}_w() RETURNS int LANGUAGE sql
                 AS 'INSERT INTO {table} VALUES (1) RETURNING 1'"
        ))
        .await
        .expect("setup");
    let client = connect(proxy.endpoint(), TRUST_USER, None, &db)
        .await
        .expect("connect");
    for reset in ["DISCARD ALL", "RESET ALL"] {
        let messages = client.simple_query(reset).await.expect(reset);
        assert!(
            matches!(
                messages.last(),
                Some(SimpleQueryMessage::CommandComplete(_))
            ),
            "{reset}: {messages:?}"
        );
        assert_eq!(
            setting(&client, "default_transaction_read_only").await,
            "on",
            "after {reset}"
        );
        let hidden = client
            .simple_query(&format!("SELECT {table}_w()"))
            .await
            .expect_err("a read that writes");
        assert_eq!(
            sqlstate(&hidden).as_deref(),
            Some("25006"),
            "after {reset}: {hidden:?}"
        );
    }
    // Inside a transaction block: set again in it.
    client.batch_execute("BEGIN").await.expect("begin");
    client.simple_query("RESET ALL").await.expect("reset all");
    assert_eq!(
        setting(&client, "default_transaction_read_only").await,
        "on"
    );
    client.batch_execute("ROLLBACK").await.expect("rollback");
    // A harmless setting, so that a refused reset would show.
    client
        .batch_execute("SET application_name = 'kept'")
        .await
        .expect("set");
    let together = client
        .simple_query("RESET ALL; SELECT 1")
        .await
        .expect_err("with another statement");
    assert!(is_pgbelay_refusal(&together), "{together:?}");
    let extended = client
        .execute("DISCARD ALL", &[])
        .await
        .expect_err("extended protocol");
    assert!(is_pgbelay_refusal(&extended), "{extended:?}");
    assert_eq!(
        setting(&client, "application_name").await,
        "kept",
        "a refused reset reset something"
    );
    let admin = connect_super(direct(), &db).await;
    assert_eq!(
        count(&admin, &format!("SELECT count(*) FROM {table}")).await,
        0
    );
}
