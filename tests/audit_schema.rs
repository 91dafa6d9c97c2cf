//! The audit schema and its capture machinery (`pgbelay::audit`), straight against a real
//! PostgreSQL 15 — no proxy: each test plays the proxy's part by hand (`begin_statement`
//! before a write, `end_statement` after it, in one transaction) and checks what the server
//! recorded. Each test works in a database of its own.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgbelay::audit::{self, StatementMeta};
use pgbelay::cluster::{Cluster, SUPERUSER_PASSWORD, TRUST_USER};
use tokio_postgres::{Client, NoTls};

const AUDIT: &str = "pgbelay";

static CLUSTER: LazyLock<Cluster> = LazyLock::new(|| {
    let cluster = Cluster::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    cluster
        .stop_when_process_exits()
        .unwrap_or_else(|e| panic!("cannot start the cluster watchdog: {e}"));
    cluster
});

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A fresh database with the audit schema installed; returns its name and a superuser
/// client.
async fn fresh_db() -> (String, Client) {
    let name = format!("audit_{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
    let create = format!("CREATE DATABASE {name}");
    tokio::task::spawn_blocking(move || CLUSTER.run_sql(&create))
        .await
        .expect("join")
        .expect("create database");
    let client = connect_as(&name, CLUSTER.superuser(), Some(SUPERUSER_PASSWORD)).await;
    audit::install(&client, AUDIT).await.expect("install");
    (name, client)
}

async fn connect_as(db: &str, user: &str, password: Option<&str>) -> Client {
    let (client, connection) = tokio_postgres::connect(&CLUSTER.url(user, password, db), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn meta(table: &str, statement: &str) -> StatementMeta {
    StatementMeta {
        table: Some(table.into()),
        statement: statement.into(),
        max_rows: Some(1000),
        ..StatementMeta::default()
    }
}

/// Runs `write` as a recorded statement in its own transaction, as the proxy does in
/// autocommit; returns the recorded change id.
async fn recorded(
    client: &Client,
    meta: &StatementMeta,
    write: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .query_one(&audit::begin_statement_sql(AUDIT, meta).expect("sql"), &[])
            .await?;
        client.batch_execute(write).await?;
        let row = client
            .query_one(&audit::end_statement_sql(AUDIT).expect("sql"), &[])
            .await?;
        Ok::<_, tokio_postgres::Error>(row.get::<_, Option<i64>>(0))
    }
    .await;
    match result {
        Ok(id) => {
            client.batch_execute("COMMIT").await?;
            Ok(id)
        }
        Err(err) => {
            client.batch_execute("ROLLBACK").await?;
            Err(err)
        }
    }
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {err}"))
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// `(image, text of the given columns)` of a change's images, before-images first, ordered
/// by the first column.
async fn images(client: &Client, shadow: &str, change: i64, cols: &str) -> Vec<(String, String)> {
    let sql = format!(
        "SELECT pgbelay_image, ({cols})::text FROM pgbelay.{shadow} \
         WHERE pgbelay_change_id = $1 ORDER BY pgbelay_image DESC, ({cols})::text"
    );
    client
        .query(&sql, &[&change])
        .await
        .expect("images")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn install_is_idempotent_and_versioned() {
    let (db, client) = fresh_db().await;
    let check = audit::installed_check_sql("not_installed").expect("sql");
    let missing: Option<i32> = client.query_one(&check, &[]).await.expect("check").get(0);
    assert_eq!(missing, None);
    assert_eq!(
        audit::installed_version(&client, AUDIT)
            .await
            .expect("version"),
        Some(audit::SCHEMA_VERSION)
    );
    // Again, with a recorded change in place: nothing lost, nothing duplicated.
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0)")
        .await
        .expect("setup");
    recorded(
        &client,
        &meta("t", "UPDATE t SET n = 1"),
        "UPDATE t SET n = 1",
    )
    .await
    .expect("write");
    audit::install(&client, AUDIT)
        .await
        .expect("second install");
    audit::install(&client, AUDIT).await.expect("third install");
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );
    assert_eq!(count(&client, "SELECT count(*) FROM pgbelay.meta").await, 1);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.\"public.t\"").await,
        2
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbelay_trash'"
        )
        .await,
        1
    );
    // A second install in another session at the same time would wait, not collide.
    let other = connect_as(&db, CLUSTER.superuser(), Some(SUPERUSER_PASSWORD)).await;
    let (a, b) = tokio::join!(
        audit::install(&client, "other"),
        audit::install(&other, "other")
    );
    a.expect("concurrent install a");
    b.expect("concurrent install b");
    // A schema name needing quotes works too.
    audit::install(&client, "Audit \"Trail\"")
        .await
        .expect("quoted schema");
    assert_eq!(
        audit::installed_version(&client, "Audit \"Trail\"")
            .await
            .expect("version"),
        Some(audit::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn update_records_one_change_with_exact_images() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, n int, s text); \
                        INSERT INTO t SELECT g, g * 10, 'r' || g FROM generate_series(1, 5) g",
        )
        .await
        .expect("setup");
    let statement = "UPDATE t SET n = n + 1, s = 'it''s' WHERE id IN (2, 4)";
    let m = StatementMeta {
        client_addr: Some("10.1.2.3".into()),
        application_name: Some("psql".into()),
        ..meta("t", statement)
    };
    let id = recorded(&client, &m, statement)
        .await
        .expect("write")
        .expect("a change id");
    let row = client
        .query_one(
            "SELECT kind, table_schema, table_name, rows, statement, executed, client_addr, \
                    application_name, \"session_user\", shadow_table, approval, parent_id IS NULL, \
                    txid > 0 \
             FROM pgbelay.changes WHERE id = $1",
            &[&id],
        )
        .await
        .expect("change row");
    assert_eq!(row.get::<_, String>(0), "update");
    assert_eq!(row.get::<_, String>(1), "public");
    assert_eq!(row.get::<_, String>(2), "t");
    assert_eq!(row.get::<_, i64>(3), 2);
    assert_eq!(row.get::<_, String>(4), statement);
    assert_eq!(row.get::<_, String>(5), statement);
    assert_eq!(row.get::<_, String>(6), "10.1.2.3");
    assert_eq!(row.get::<_, String>(7), "psql");
    assert_eq!(row.get::<_, String>(8), CLUSTER.superuser());
    assert_eq!(row.get::<_, String>(9), "pgbelay.\"public.t\"");
    assert_eq!(row.get::<_, Option<String>>(10), None);
    assert!(row.get::<_, bool>(11));
    assert!(row.get::<_, bool>(12));
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );
    assert_eq!(
        images(&client, "\"public.t\"", id, "id, n, s").await,
        pairs(&[
            ("before", "(2,20,r2)"),
            ("before", "(4,40,r4)"),
            ("after", "(2,21,it's)"),
            ("after", "(4,41,it's)"),
        ])
    );
    // shadow_tables maps the source to its shadow.
    let mapped: String = client
        .query_one(
            "SELECT shadow_table FROM pgbelay.shadow_tables WHERE relid = 't'::regclass",
            &[],
        )
        .await
        .expect("mapping")
        .get(0);
    assert_eq!(mapped, "public.t");
}

#[tokio::test]
async fn writes_not_announced_are_not_recorded() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0), (2, 0)",
        )
        .await
        .expect("setup");
    // Prepared (triggers in place) by one recorded write...
    recorded(
        &client,
        &meta("t", "UPDATE t SET n = 1 WHERE id = 1"),
        "UPDATE t SET n = 1 WHERE id = 1",
    )
    .await
    .expect("recorded write");
    // ...then direct writes, in and out of a transaction, and after end_statement.
    client
        .batch_execute(
            "UPDATE t SET n = 5; INSERT INTO t VALUES (3, 3); DELETE FROM t WHERE id = 3",
        )
        .await
        .expect("direct writes");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("t", "UPDATE t SET n = 6 WHERE id = 1"))
                .expect("sql"),
            &[],
        )
        .await
        .expect("begin_statement");
    client
        .batch_execute("UPDATE t SET n = 6 WHERE id = 1")
        .await
        .expect("recorded");
    client
        .query_one(&audit::end_statement_sql(AUDIT).expect("sql"), &[])
        .await
        .expect("end");
    client
        .batch_execute("UPDATE t SET n = 7 WHERE id = 2; COMMIT")
        .await
        .expect("unannounced");
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        2
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.\"public.t\"").await,
        4
    );
    // A statement that changed no rows is not a change.
    let none = recorded(
        &client,
        &meta("t", "UPDATE t SET n = 0 WHERE id = 99"),
        "UPDATE t SET n = 0 WHERE id = 99",
    )
    .await
    .expect("empty write");
    assert_eq!(none, None);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        2
    );
}

#[tokio::test]
async fn insert_records_after_images() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.items (id serial PRIMARY KEY, name text NOT NULL, \
                        created timestamptz DEFAULT '2024-01-02 03:04:05+00')",
        )
        .await
        .expect("setup");
    client
        .batch_execute("SET search_path = app, public")
        .await
        .expect("search_path");
    let statement = "INSERT INTO items (name) VALUES ('a'), ('b'), ('c')";
    let id = recorded(&client, &meta("items", statement), statement)
        .await
        .expect("insert")
        .expect("change id");
    let (kind, rows, schema): (String, i64, String) = {
        let r = client
            .query_one(
                "SELECT kind, rows, table_schema FROM pgbelay.changes WHERE id = $1",
                &[&id],
            )
            .await
            .expect("change");
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((kind.as_str(), rows, schema.as_str()), ("insert", 3, "app"));
    client
        .batch_execute("SET timezone = 'UTC'")
        .await
        .expect("tz");
    assert_eq!(
        images(&client, "\"app.items\"", id, "id, name, created").await,
        pairs(&[
            ("after", "(1,a,\"2024-01-02 03:04:05+00\")"),
            ("after", "(2,b,\"2024-01-02 03:04:05+00\")"),
            ("after", "(3,c,\"2024-01-02 03:04:05+00\")"),
        ])
    );
}

#[tokio::test]
async fn over_max_rows_fails_in_the_server_and_leaves_nothing() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, n int); \
                        INSERT INTO t SELECT g, 0 FROM generate_series(1, 5) g",
        )
        .await
        .expect("setup");
    let statement = "UPDATE t SET n = 1 WHERE id <= 4";
    let limited = StatementMeta {
        max_rows: Some(3),
        ..meta("t", statement)
    };
    let err = recorded(&client, &limited, statement)
        .await
        .expect_err("over the limit");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42501");
    assert_eq!(
        db.message(),
        "pgbelay: refused: UPDATE would change 4 rows, more than max_rows (3)"
    );
    assert_eq!(db.detail(), Some("statement class: blast radius"));
    assert!(db.hint().is_some_and(|h| h.contains("pgbelay approve --sql 'UPDATE t SET n = 1 WHERE id <= 4'")));
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE n <> 0").await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        0
    );
    // No image stayed either (the shadow itself was made when the table was created).
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.\"public.t\"").await,
        0
    );

    // Inside a client transaction the transaction is then failed, as after any error.
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &limited).expect("sql"),
            &[],
        )
        .await
        .expect("announce");
    let err = client
        .batch_execute(statement)
        .await
        .expect_err("over the limit");
    assert_eq!(sqlstate(&err), "42501");
    let err = client
        .batch_execute("SELECT 1")
        .await
        .expect_err("aborted transaction");
    assert_eq!(sqlstate(&err), "25P02");
    client.batch_execute("ROLLBACK").await.expect("rollback");

    // A soft delete says DELETE; exactly max_rows passes; unlimited passes.
    client
        .batch_execute("ALTER TABLE t ADD COLUMN deleted_at timestamptz")
        .await
        .expect("alter");
    let delete = StatementMeta {
        kind: Some("delete".into()),
        max_rows: Some(2),
        ..meta("t", "DELETE FROM t")
    };
    let err = recorded(
        &client,
        &delete,
        "UPDATE t SET deleted_at = now() WHERE deleted_at IS NULL",
    )
    .await
    .expect_err("over the limit");
    assert_eq!(
        err.as_db_error().map(|e| e.message().to_string()),
        Some("pgbelay: refused: DELETE would change 5 rows, more than max_rows (2)".into())
    );
    let insert = "INSERT INTO t (id, n) SELECT g, 0 FROM generate_series(10, 14) g";
    let err = recorded(
        &client,
        &StatementMeta {
            max_rows: Some(3),
            ..meta("t", insert)
        },
        insert,
    )
    .await
    .expect_err("over the limit");
    assert_eq!(
        err.as_db_error().map(|e| e.message().to_string()),
        Some("pgbelay: refused: INSERT would change 5 rows, more than max_rows (3)".into())
    );
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 5);
    let exact = StatementMeta {
        max_rows: Some(4),
        ..meta("t", statement)
    };
    recorded(&client, &exact, statement)
        .await
        .expect("exactly max_rows");
    let unlimited = StatementMeta {
        max_rows: None,
        ..meta("t", "UPDATE t SET n = 2")
    };
    recorded(&client, &unlimited, "UPDATE t SET n = 2")
        .await
        .expect("unlimited");
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        2
    );
}

#[tokio::test]
async fn types_round_trip_exactly_through_the_shadow() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
             CREATE DOMAIN posint AS int NOT NULL CHECK (VALUE > 0); \
             CREATE DOMAIN short_text AS varchar(5); \
             CREATE TYPE pair AS (a int, b text); \
             CREATE TABLE typed ( \
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 num numeric(24,6), plain numeric, ts timestamptz, tsz timestamp, doc jsonb, js json, \
                 arr int4[], grid text[][], bin bytea, m mood, moods mood[], p posint, st short_text, \
                 c pair, doubled numeric GENERATED ALWAYS AS (num * 2) STORED, f8 float8, f4 real, \
                 label text COLLATE \"C\", iv interval, u uuid, b bool, ch char(3), bits bit varying(8), \
                 r int4range, ip inet); \
             INSERT INTO typed (num, plain, ts, tsz, doc, js, arr, grid, bin, m, moods, p, st, c, f8, f4, label, iv, u, b, ch, bits, r, ip) VALUES \
             (123456789012345678.123456, 1e-30, '2024-02-29 23:59:59.999999+05:30', '1999-12-31 23:59:59.5', \
              '{\"k\": [1, 2.50, null, {\"z\": \"é\"}]}', '{\"a\":  1,  \"a\": 2}', '{1,NULL,-3}', '{{a,\"b c\"},{\"\\\\\",NULL}}', \
              '\\x00ff5c27', 'happy', '{sad,ok}', 7, 'abc', ROW(1, 'x,\"y)'), 0.1, 3.4028235e38, 'Zürich', \
              '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'ab', B'101', '[1,5)', '10.0.0.1/8'), \
             (NULL, 'NaN', '-infinity', 'infinity', 'null', '[]', '{}', '{}', '', 'sad', NULL, 1, NULL, ROW(NULL, NULL), \
              '-0', 'Infinity', '', '-1 day', NULL, NULL, NULL, NULL, 'empty', NULL)",
        )
        .await
        .expect("setup");
    let cols: Vec<String> = client
        .query(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'typed'::regclass AND attnum > 0 \
             AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let list = cols.join(", ");
    let snapshot = |sql: String| {
        let client = &client;
        async move {
            client
                .query(&sql, &[])
                .await
                .expect("snapshot")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let before_src = snapshot(format!("SELECT ROW({list})::text FROM typed ORDER BY id")).await;
    let before_json = snapshot("SELECT to_jsonb(t)::text FROM typed t ORDER BY id".into()).await;
    let statement = "UPDATE typed SET b = NOT coalesce(b, false)";
    let id = recorded(&client, &meta("typed", statement), statement)
        .await
        .expect("write")
        .expect("change id");
    let after_src = snapshot(format!("SELECT ROW({list})::text FROM typed ORDER BY id")).await;
    let after_json = snapshot("SELECT to_jsonb(t)::text FROM typed t ORDER BY id".into()).await;
    let shadow = |image: &str, json: bool| {
        let value = if json {
            "(to_jsonb(s) - 'pgbelay_change_id' - 'pgbelay_image')::text".to_string()
        } else {
            format!("ROW({list})::text")
        };
        format!(
            "SELECT {value} FROM pgbelay.\"public.typed\" s WHERE pgbelay_change_id = {id} \
             AND pgbelay_image = '{image}' ORDER BY id"
        )
    };
    assert_eq!(snapshot(shadow("before", false)).await, before_src);
    assert_eq!(snapshot(shadow("after", false)).await, after_src);
    assert_eq!(snapshot(shadow("before", true)).await, before_json);
    assert_eq!(snapshot(shadow("after", true)).await, after_json);
    assert_ne!(before_src, after_src);
    // Same values byte for byte, compared in the server with the source's own types.
    let same = count(
        &client,
        &format!(
            "SELECT count(*) FROM typed t JOIN pgbelay.\"public.typed\" s ON s.id = t.id \
             AND s.pgbelay_change_id = {id} AND s.pgbelay_image = 'after' \
             WHERE ({}) ",
            cols.iter()
                .map(|c| format!("t.{c}::text IS NOT DISTINCT FROM s.{c}::text"))
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
    )
    .await;
    assert_eq!(same, 2);
    // The shadow has no constraints and no defaults; generated and identity columns are plain.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgbelay.\"public.typed\"'::regclass \
             AND attnum > 0 AND (attnotnull OR atthasdef OR attidentity <> '' OR attgenerated <> '')"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'pgbelay.\"public.typed\"'::regclass").await,
        0
    );
}

#[tokio::test]
async fn added_columns_reach_the_shadow_and_later_images() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0), (2, 0)",
        )
        .await
        .expect("setup");
    let first = recorded(
        &client,
        &meta("t", "UPDATE t SET n = 1"),
        "UPDATE t SET n = 1",
    )
    .await
    .expect("first")
    .expect("id");
    // The shadow is only touched again when the table changed.
    let signature =
        "SELECT signature || columns FROM pgbelay.shadow_tables WHERE relid = 't'::regclass";
    let sig: String = client.query_one(signature, &[]).await.expect("sig").get(0);
    recorded(
        &client,
        &meta("t", "UPDATE t SET n = 2"),
        "UPDATE t SET n = 2",
    )
    .await
    .expect("same shape");
    let sig_again: String = client.query_one(signature, &[]).await.expect("sig").get(0);
    assert_eq!(sig, sig_again);

    client
        .batch_execute(
            "ALTER TABLE t ADD COLUMN label text DEFAULT 'new'; ALTER TABLE t DROP COLUMN n; \
                        ALTER TABLE t ADD COLUMN n bigint DEFAULT 5",
        )
        .await
        .expect("alter");
    let later = recorded(
        &client,
        &meta("t", "UPDATE t SET label = 'x' WHERE id = 1"),
        "UPDATE t SET label = 'x' WHERE id = 1",
    )
    .await
    .expect("later")
    .expect("id");
    // Old images keep their values; `n` changed type, so its old images moved aside.
    assert_eq!(
        images(&client, "\"public.t\"", later, "id, label, n").await,
        pairs(&[("before", "(1,new,5)"), ("after", "(1,x,5)")])
    );
    assert_eq!(
        images(&client, "\"public.t\"", first, "id, label, n").await,
        pairs(&[
            ("before", "(1,,)"),
            ("before", "(2,,)"),
            ("after", "(1,,)"),
            ("after", "(2,,)")
        ])
    );
    let old_n = count(
        &client,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgbelay.\"public.t\"'::regclass \
         AND attname LIKE 'n~%' AND atttypid = 'int4'::regtype",
    )
    .await;
    assert_eq!(old_n, 1);
}

/// `begin_statement` skips the preparation when the table is unchanged since; a change
/// the event trigger did not see (here: DDL run while it stands aside) is noticed by the
/// next announcement, which prepares the table again before the write.
#[tokio::test]
async fn announcements_notice_changes_the_event_trigger_missed() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0)")
        .await
        .expect("setup");
    let update = |sql: &'static str| {
        let client = &client;
        async move {
            recorded(client, &meta("t", sql), sql)
                .await
                .expect(sql)
                .expect("change id")
        }
    };
    update("UPDATE t SET n = 1").await;
    // The event trigger does nothing while pgbelay.preparing is on (its own DDL).
    let unseen = |ddl: &'static str| {
        let client = &client;
        async move {
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL pgbelay.preparing = 'on'; {ddl}; COMMIT"
                ))
                .await
                .expect(ddl);
        }
    };
    unseen("ALTER TABLE t ADD COLUMN label text DEFAULT 'a'").await;
    let added = update("UPDATE t SET n = 2").await;
    assert_eq!(
        images(&client, "\"public.t\"", added, "id, n, label").await,
        pairs(&[("before", "(1,1,a)"), ("after", "(1,2,a)")])
    );
    unseen("ALTER TABLE t RENAME COLUMN label TO tag").await;
    let renamed = update("UPDATE t SET tag = 'b'").await;
    assert_eq!(
        images(&client, "\"public.t\"", renamed, "id, n, tag").await,
        pairs(&[("before", "(1,2,a)"), ("after", "(1,2,b)")])
    );
    unseen("ALTER TABLE t DISABLE TRIGGER pgbelay_capture_update").await;
    let disabled = update("UPDATE t SET n = 3").await;
    assert_eq!(
        images(&client, "\"public.t\"", disabled, "id, n").await,
        pairs(&[("before", "(1,2)"), ("after", "(1,3)")])
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass \
             AND tgname LIKE 'pgbelay_capture_%' AND tgenabled = 'A'"
        )
        .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_exactly_their_rows() {
    let (db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE c (id serial PRIMARY KEY, grp int NOT NULL, n int NOT NULL DEFAULT 0); \
                        INSERT INTO c (grp) SELECT 1 FROM generate_series(1, 10)",
        )
        .await
        .expect("setup");
    // Prepare once up front, so the writers race on data, not on the first CREATE TRIGGER.
    recorded(
        &client,
        &meta("c", "UPDATE c SET n = n WHERE false"),
        "UPDATE c SET n = n WHERE false",
    )
    .await
    .expect("prepare");
    const ROUNDS: usize = 20;
    let mut tasks = Vec::new();
    for writer in 0..3 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let client = connect_as(&db, CLUSTER.superuser(), Some(SUPERUSER_PASSWORD)).await;
            for _ in 0..ROUNDS {
                let statement = if writer < 2 {
                    "UPDATE c SET n = n + 1 WHERE grp = 1"
                } else {
                    "INSERT INTO c (grp) VALUES (1), (1)"
                };
                // Two UPDATEs of the same rows under different statement snapshots can
                // meet in opposite orders: the server then ends one with a deadlock,
                // which rolls back its record too, and a client runs it again.
                for attempt in 1.. {
                    match recorded(&client, &meta("c", statement), statement).await {
                        Ok(_) => break,
                        Err(e) if sqlstate(&e) == "40P01" && attempt < 10 => continue,
                        Err(e) => panic!("writer {writer}: {e:?}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let updates = count(
        &client,
        "SELECT count(*) FROM pgbelay.changes WHERE kind = 'update'",
    )
    .await;
    assert_eq!(updates, 2 * ROUNDS as i64);
    // Every change: one image per changed row, no row twice, before/after pair up by id.
    let bad = count(
        &client,
        "SELECT count(*) FROM pgbelay.changes ch, LATERAL ( \
           SELECT count(*) FILTER (WHERE pgbelay_image = 'before') AS b, \
                  count(*) FILTER (WHERE pgbelay_image = 'after') AS a, \
                  count(DISTINCT id) FILTER (WHERE pgbelay_image = 'after') AS ids \
           FROM pgbelay.\"public.c\" s WHERE s.pgbelay_change_id = ch.id) x \
         WHERE (ch.kind = 'update' AND (x.b <> ch.rows OR x.a <> ch.rows OR x.ids <> ch.rows)) \
            OR (ch.kind = 'insert' AND (x.b <> 0 OR x.a <> ch.rows OR ch.rows <> 2))",
    )
    .await;
    assert_eq!(bad, 0);
    let unpaired = count(
        &client,
        "SELECT count(*) FROM pgbelay.\"public.c\" a \
         LEFT JOIN pgbelay.\"public.c\" b ON b.pgbelay_change_id = a.pgbelay_change_id \
              AND b.pgbelay_image = 'before' AND b.id = a.id \
         JOIN pgbelay.changes ch ON ch.id = a.pgbelay_change_id AND ch.kind = 'update' \
         WHERE a.pgbelay_image = 'after' AND (b.id IS NULL OR a.n <> b.n + 1)",
    )
    .await;
    assert_eq!(unpaired, 0);
    // The images account for every increment that happened.
    let recorded_increments = count(
        &client,
        "SELECT coalesce(sum(CASE pgbelay_image WHEN 'after' THEN n ELSE -n END), 0)::bigint \
         FROM pgbelay.\"public.c\" s JOIN pgbelay.changes ch ON ch.id = s.pgbelay_change_id \
         WHERE ch.kind = 'update'",
    )
    .await;
    let applied = count(&client, "SELECT sum(n)::bigint FROM c").await;
    assert_eq!(recorded_increments, applied);
    let rows_total = count(
        &client,
        "SELECT sum(rows)::bigint FROM pgbelay.changes WHERE kind = 'update'",
    )
    .await;
    assert_eq!(rows_total, applied);
    assert_eq!(
        count(&client, "SELECT count(*) FROM c").await,
        10 + 2 * ROUNDS as i64
    );
}

#[tokio::test]
async fn soft_delete_keeps_the_foreign_key_contract() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, deleted_at timestamptz); \
             CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, \
                                  deleted_at timestamptz); \
             CREATE TABLE order_items (order_id int REFERENCES orders ON DELETE CASCADE, line int, \
                                       deleted_at timestamptz, PRIMARY KEY (order_id, line)); \
             CREATE TABLE item_notes (order_id int, line int, note text, deleted_at timestamptz, \
                                      FOREIGN KEY (order_id, line) REFERENCES order_items ON DELETE CASCADE); \
             INSERT INTO customers VALUES (1), (2), (3); \
             INSERT INTO orders VALUES (10, 1), (11, 1), (20, 2); \
             INSERT INTO order_items VALUES (10, 1), (10, 2), (11, 1), (20, 1); \
             INSERT INTO order_items VALUES (10, 3, now()); \
             INSERT INTO item_notes VALUES (10, 1, 'fragile'), (11, 1, 'gift');",
        )
        .await
        .expect("setup");
    let soft = |table: &str, statement: &str| StatementMeta {
        kind: Some("delete".into()),
        ..meta(table, statement)
    };
    // Orders cascade to their live items, and those to their notes (grandchildren).
    let statement = "DELETE FROM orders WHERE id = 10";
    let id = recorded(
        &client,
        &soft("orders", statement),
        "UPDATE orders SET deleted_at = now() WHERE deleted_at IS NULL AND id = 10",
    )
    .await
    .expect("soft delete")
    .expect("change id");
    let changes: Vec<(i64, String, String, i64, Option<i64>, String)> = client
        .query(
            "SELECT id, kind, table_name, rows, parent_id, statement FROM pgbelay.changes ORDER BY id",
            &[],
        )
        .await
        .expect("changes")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(
        (
            changes[0].0,
            changes[0].1.as_str(),
            changes[0].2.as_str(),
            changes[0].3,
            changes[0].4
        ),
        (id, "delete", "orders", 1, None)
    );
    let items = &changes[1];
    assert_eq!(
        (items.1.as_str(), items.2.as_str(), items.3, items.4),
        ("delete", "order_items", 2, Some(id))
    );
    let notes = &changes[2];
    assert_eq!(
        (notes.1.as_str(), notes.2.as_str(), notes.3, notes.4),
        ("delete", "item_notes", 1, Some(items.0))
    );
    assert!(changes.iter().all(|c| c.5 == statement));
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM order_items WHERE deleted_at IS NOT NULL"
        )
        .await,
        3,
        "items (10,1), (10,2) now deleted; (10,3) was already"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM order_items WHERE order_id = 10 AND deleted_at = \
                        (SELECT deleted_at FROM orders WHERE id = 10)"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM item_notes WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    // The child's images are in its own shadow.
    assert_eq!(
        images(&client, "\"public.order_items\"", items.0, "order_id, line").await,
        pairs(&[
            ("before", "(10,1)"),
            ("before", "(10,2)"),
            ("after", "(10,1)"),
            ("after", "(10,2)")
        ])
    );
    // end_statement reports the top-level change even though the cascades recorded later.
    // (recorded() returned `id`, the orders change.)
    assert!(id < items.0);

    // NO ACTION: a customer with live orders cannot go; with only deleted orders it can.
    let err = recorded(
        &client,
        &soft("customers", "DELETE FROM customers WHERE id = 1"),
        "UPDATE customers SET deleted_at = now() WHERE deleted_at IS NULL AND id = 1",
    )
    .await
    .expect_err("live orders reference customer 1");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "23503");
    assert_eq!(
        db.message(),
        "update or delete on table \"customers\" violates foreign key constraint \"orders_customer_id_fkey\" on table \"orders\""
    );
    assert_eq!(
        db.detail(),
        Some("Key (id)=(1) is still referenced from table \"orders\".")
    );
    assert_eq!(db.constraint(), Some("orders_customer_id_fkey"));
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        3
    );
    client
        .batch_execute("UPDATE orders SET deleted_at = now() WHERE id = 11")
        .await
        .expect("direct");
    recorded(
        &client,
        &soft("customers", "DELETE FROM customers WHERE id = 1"),
        "UPDATE customers SET deleted_at = now() WHERE deleted_at IS NULL AND id = 1",
    )
    .await
    .expect("customer 1 has only deleted orders now");
    // Customer 3 has no orders at all.
    recorded(
        &client,
        &soft("customers", "DELETE FROM customers WHERE id = 3"),
        "UPDATE customers SET deleted_at = now() WHERE deleted_at IS NULL AND id = 3",
    )
    .await
    .expect("no orders");
}

#[tokio::test]
async fn soft_delete_refuses_what_it_cannot_keep() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE parents (id int PRIMARY KEY, deleted_at timestamptz); \
             CREATE TABLE hard_children (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE CASCADE); \
             CREATE TABLE nulling (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE SET NULL, \
                                   deleted_at timestamptz); \
             INSERT INTO parents VALUES (1), (2), (3); \
             INSERT INTO hard_children VALUES (100, 1); \
             INSERT INTO nulling VALUES (200, 2);",
        )
        .await
        .expect("setup");
    let soft = |statement: &str| StatementMeta {
        kind: Some("delete".into()),
        ..meta("parents", statement)
    };
    let update = |id: i32| {
        format!("UPDATE parents SET deleted_at = now() WHERE deleted_at IS NULL AND id = {id}")
    };
    // CASCADE to a child without the soft-delete column: refused.
    let err = recorded(
        &client,
        &soft("DELETE FROM parents WHERE id = 1"),
        &update(1),
    )
    .await
    .expect_err("child has no deleted_at");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().starts_with("pgbelay: refused:"),
        "{}",
        db.message()
    );
    assert!(db.message().contains("hard_children"), "{}", db.message());
    // SET NULL without approval: refused; approved: done and recorded as a child change.
    let err = recorded(
        &client,
        &soft("DELETE FROM parents WHERE id = 2"),
        &update(2),
    )
    .await
    .expect_err("set null needs approval");
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM parents WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        0
    );
    let approved = StatementMeta {
        approval: Some("tok-1".into()),
        approved_by: Some("alice".into()),
        reason: Some("incident 42".into()),
        ..soft("DELETE FROM parents WHERE id = 2")
    };
    let id = recorded(&client, &approved, &update(2))
        .await
        .expect("approved")
        .expect("id");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM nulling WHERE parent_id IS NULL"
        )
        .await,
        1
    );
    let child = client
        .query_one(
            "SELECT kind, table_name, rows, approval FROM pgbelay.changes WHERE parent_id = $1",
            &[&id],
        )
        .await
        .expect("child change");
    assert_eq!(child.get::<_, String>(0), "update");
    assert_eq!(child.get::<_, String>(1), "nulling");
    assert_eq!(child.get::<_, i64>(2), 1);
    assert_eq!(child.get::<_, Option<String>>(3).as_deref(), Some("tok-1"));
    let approval = client
        .query_one("SELECT change_id, approved_by, reason, statement FROM pgbelay.approvals WHERE token_id = 'tok-1'", &[])
        .await
        .expect("approval row");
    assert_eq!(approval.get::<_, Option<i64>>(0), Some(id));
    assert_eq!(approval.get::<_, String>(1), "alice");
    // A token works once.
    let again = StatementMeta {
        approval: Some("tok-1".into()),
        ..soft("DELETE FROM parents WHERE id = 3")
    };
    let err = recorded(&client, &again, &update(3))
        .await
        .expect_err("token reused");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("already been used"),
        "{}",
        db.message()
    );
    // Parent 3 has no referencing rows: nothing to refuse.
    recorded(
        &client,
        &soft("DELETE FROM parents WHERE id = 3"),
        &update(3),
    )
    .await
    .expect("no children");
}

#[tokio::test]
async fn ordinary_roles_cannot_rewrite_the_trail() {
    let (db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE secret (id int PRIMARY KEY, pay int); INSERT INTO secret VALUES (1, 100)",
        )
        .await
        .expect("setup");
    recorded(
        &client,
        &meta("secret", "UPDATE secret SET pay = 200"),
        "UPDATE secret SET pay = 200",
    )
    .await
    .expect("write");
    let user = connect_as(&db, TRUST_USER, None).await;
    // Auditors read the trail...
    assert_eq!(
        count(&user, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );
    // ...but nobody but the owner changes it.
    for sql in [
        "UPDATE pgbelay.changes SET rows = 0",
        "DELETE FROM pgbelay.changes",
        "TRUNCATE pgbelay.changes",
        "INSERT INTO pgbelay.changes (kind) VALUES ('update')",
        "UPDATE pgbelay.approvals SET reason = 'x'",
        "DELETE FROM pgbelay.\"public.secret\"",
        "TRUNCATE pgbelay.shadow_tables",
        "CREATE TABLE pgbelay.mine (x int)",
    ] {
        let err = user.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    // Images of a table the role may not read are not readable either.
    let err = user
        .batch_execute("SELECT * FROM pgbelay.\"public.secret\"")
        .await
        .expect_err("shadow of an unreadable table");
    assert_eq!(sqlstate(&err), "42501");
    // Nor may it add recording triggers to a table it cannot write.
    let err = user
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("secret", "x")).expect("sql"),
            &[],
        )
        .await
        .expect_err("not a writer");
    assert_eq!(sqlstate(&err), "42501");
    // The owner, too, finds the trail append-only.
    for sql in [
        "UPDATE pgbelay.changes SET rows = 0",
        "DELETE FROM pgbelay.changes",
        "TRUNCATE pgbelay.changes",
        "DELETE FROM pgbelay.\"public.secret\"",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
}

/// The capture functions run as the audit schema's owner with the writer's search_path
/// (a fixed one would cost every write a GUC save and restore): operators a role puts
/// ahead of pg_catalog must not run in them, in a plain write, an over-limit one (the
/// refusal) or a soft delete (its cascades).
#[tokio::test]
async fn recording_runs_none_of_the_writers_operators() {
    let (db, admin) = fresh_db().await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, n int, deleted_at timestamptz); \
             INSERT INTO t SELECT g, 0 FROM generate_series(1, 3) g; \
             GRANT ALL ON t TO {TRUST_USER}; CREATE SCHEMA evil AUTHORIZATION {TRUST_USER}"
        ))
        .await
        .expect("setup");
    let user = connect_as(&db, TRUST_USER, None).await;
    let mut hijack = String::new();
    for (op, builtin) in [("=", "texteq"), ("<>", "textne")] {
        let name = if op == "=" { "eq" } else { "ne" };
        hijack.push_str(&format!(
            "CREATE FUNCTION evil.{name}(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$ \
             BEGIN IF current_user <> session_user THEN \
             RAISE EXCEPTION 'hijacked as %', current_user; END IF; \
             RETURN pg_catalog.{builtin}($1, $2); END $f$; \
             CREATE OPERATOR evil.{op} (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.{name}); "
        ));
    }
    user.batch_execute(&hijack).await.expect("operators");
    user.batch_execute("SET search_path = evil, pg_catalog, public")
        .await
        .expect("search_path");
    let id = recorded(
        &user,
        &meta("t", "UPDATE t SET n = 1 WHERE id = 1"),
        "UPDATE t SET n = 1 WHERE id = 1",
    )
    .await
    .expect("plain write")
    .expect("id");
    assert_eq!(
        images(&admin, "\"public.t\"", id, "id, n").await,
        pairs(&[("before", "(1,0)"), ("after", "(1,1)")])
    );
    let limited = StatementMeta {
        max_rows: Some(1),
        ..meta("t", "UPDATE t SET n = 2")
    };
    let err = recorded(&user, &limited, "UPDATE t SET n = 2")
        .await
        .expect_err("over the limit");
    let db_error = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        db_error
            .as_deref()
            .is_some_and(|m| m.contains("more than max_rows")),
        "{db_error:?}"
    );
    let soft = StatementMeta {
        kind: Some("delete".into()),
        ..meta("t", "DELETE FROM t WHERE id = 2")
    };
    recorded(&user, &soft, "UPDATE t SET deleted_at = now() WHERE id = 2")
        .await
        .expect("soft delete")
        .expect("id");
}

#[tokio::test]
async fn ordinary_roles_record_their_own_writes() {
    let (db, _client) = fresh_db().await;
    let user = connect_as(&db, TRUST_USER, None).await;
    user.batch_execute(
        "CREATE TABLE mine (id int PRIMARY KEY, v text); INSERT INTO mine VALUES (1, 'a')",
    )
    .await
    .expect("setup");
    let id = recorded(
        &user,
        &meta("mine", "UPDATE mine SET v = 'b'"),
        "UPDATE mine SET v = 'b'",
    )
    .await
    .expect("write")
    .expect("id");
    let who: String = user
        .query_one(
            "SELECT \"session_user\" FROM pgbelay.changes WHERE id = $1",
            &[&id],
        )
        .await
        .expect("change")
        .get(0);
    assert_eq!(who, TRUST_USER);
    assert_eq!(
        images(&user, "\"public.mine\"", id, "id, v").await,
        pairs(&[("before", "(1,a)"), ("after", "(1,b)")])
    );
}

#[tokio::test]
async fn partitioned_tables_record_through_parent_and_partition() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE m (id int, region text, n int, PRIMARY KEY (id, region)) PARTITION BY LIST (region); \
             CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu'); \
             CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us'); \
             INSERT INTO m VALUES (1, 'eu', 0), (2, 'us', 0), (3, 'us', 0);",
        )
        .await
        .expect("setup");
    // Through the parent: one change, rows from both partitions, a row moving partitions.
    let statement = "UPDATE m SET n = n + 1, region = 'eu' WHERE id >= 2";
    let id = recorded(&client, &meta("m", statement), statement)
        .await
        .expect("parent")
        .expect("id");
    assert_eq!(
        images(&client, "\"public.m\"", id, "id, region, n").await,
        pairs(&[
            ("before", "(2,us,0)"),
            ("before", "(3,us,0)"),
            ("after", "(2,eu,1)"),
            ("after", "(3,eu,1)")
        ])
    );
    // Straight to a partition: its own shadow, and no double recording by the parent.
    let statement = "UPDATE m_eu SET n = 9 WHERE id = 1";
    let id = recorded(&client, &meta("m_eu", statement), statement)
        .await
        .expect("partition")
        .expect("id");
    assert_eq!(
        images(&client, "\"public.m_eu\"", id, "id, region, n").await,
        pairs(&[("before", "(1,eu,0)"), ("after", "(1,eu,9)")])
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        2
    );
}

#[tokio::test]
async fn long_and_odd_names_get_deterministic_shadows() {
    let (_db, client) = fresh_db().await;
    let schema = "S".repeat(40);
    let table = format!("Tæble \"{}\"", "x".repeat(30));
    let qualified = format!(
        "{}.{}",
        audit::quote_ident(&schema),
        audit::quote_ident(&table)
    );
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {q}; CREATE TABLE {qualified} (id int); INSERT INTO {qualified} VALUES (1); \
             CREATE SCHEMA \"a.b\"; CREATE TABLE \"a.b\".c (id int); CREATE SCHEMA a; CREATE TABLE a.\"b.c\" (id int)",
            q = audit::quote_ident(&schema)
        ))
        .await
        .expect("setup");
    let statement = format!("UPDATE {qualified} SET id = 2");
    recorded(&client, &meta(&qualified, &statement), &statement)
        .await
        .expect("write");
    let shadow: String = client
        .query_one(
            "SELECT shadow_table FROM pgbelay.shadow_tables WHERE source_schema = $1",
            &[&schema],
        )
        .await
        .expect("mapping")
        .get(0);
    assert!(shadow.len() <= 63, "{shadow}");
    assert!(
        shadow.contains('~'),
        "a cut name carries a hash of the full one: {shadow}"
    );
    assert!(shadow.starts_with(&format!("{schema}.Tæble")), "{shadow}");
    // "a.b"."c" and "a"."b.c" both read a.b.c: the second gets a distinct name.
    let first = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("\"a.b\".c", "x")).expect("sql"),
            &[],
        )
        .await
        .expect("first");
    let second = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("a.\"b.c\"", "x")).expect("sql"),
            &[],
        )
        .await
        .expect("second");
    let (first, second): (String, String) = (first.get(0), second.get(0));
    assert_eq!(first, "pgbelay.\"a.b.c\"");
    assert_ne!(first, second);
    // Preparing again returns the same names.
    let again: String = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("a.\"b.c\"", "x")).expect("sql"),
            &[],
        )
        .await
        .expect("again")
        .get(0);
    assert_eq!(again, second);
}

#[tokio::test]
async fn hard_delete_truncate_and_upsert_are_recorded() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, n int); \
             INSERT INTO t SELECT g, g FROM generate_series(1, 6) g",
        )
        .await
        .expect("setup");
    let approved = |statement: &str, token: &str| StatementMeta {
        approval: Some(token.into()),
        max_rows: None,
        ..meta("t", statement)
    };
    // An approved hard DELETE keeps before-images only.
    let statement = "DELETE FROM t WHERE id <= 2";
    let id = recorded(&client, &approved(statement, "tok-d"), statement)
        .await
        .expect("delete")
        .expect("id");
    assert_eq!(
        images(&client, "\"public.t\"", id, "id, n").await,
        pairs(&[("before", "(1,1)"), ("before", "(2,2)")])
    );
    // INSERT ... ON CONFLICT DO UPDATE is two changes, the updated rows' (PostgreSQL fires
    // that trigger first) and the inserted rows' as a part of it.
    let statement =
        "INSERT INTO t VALUES (3, 30), (7, 70) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n";
    let id = recorded(&client, &meta("t", statement), statement)
        .await
        .expect("upsert")
        .expect("id");
    let kinds: Vec<(String, i64, Option<i64>)> = client
        .query(
            "SELECT kind, rows, parent_id FROM pgbelay.changes WHERE statement = $1 ORDER BY id",
            &[&statement],
        )
        .await
        .expect("changes")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("update".to_string(), 1, None),
            ("insert".to_string(), 1, Some(id))
        ]
    );
    // An approved TRUNCATE records every row first; over max_rows without approval it fails.
    let limited = StatementMeta {
        max_rows: Some(2),
        ..meta("t", "TRUNCATE t")
    };
    let err = recorded(&client, &limited, "TRUNCATE t")
        .await
        .expect_err("over the limit");
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 5);
    let id = recorded(&client, &approved("TRUNCATE t", "tok-t"), "TRUNCATE t")
        .await
        .expect("truncate")
        .expect("id");
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 0);
    let (kind, rows): (String, i64) = {
        let r = client
            .query_one(
                "SELECT kind, rows FROM pgbelay.changes WHERE id = $1",
                &[&id],
            )
            .await
            .expect("change");
        (r.get(0), r.get(1))
    };
    assert_eq!((kind.as_str(), rows), ("truncate", 5));
    assert_eq!(
        images(&client, "\"public.t\"", id, "id, n").await,
        pairs(&[
            ("before", "(3,30)"),
            ("before", "(4,4)"),
            ("before", "(5,5)"),
            ("before", "(6,6)"),
            ("before", "(7,70)")
        ])
    );
}

#[tokio::test]
async fn literals_read_back_exactly_in_both_string_modes() {
    let (_db, client) = fresh_db().await;
    for value in [
        "plain",
        "it's",
        "back\\slash",
        "\\'\\\\''",
        "E'x'",
        "$$ $q$ é ☃",
        "",
    ] {
        let literal = audit::quote_literal(value).expect("literal");
        for mode in ["on", "off"] {
            client
                .batch_execute(&format!(
                    "SET standard_conforming_strings = {mode}; SET escape_string_warning = off"
                ))
                .await
                .expect("mode");
            let back: String = client
                .query_one(&format!("SELECT {literal}::text"), &[])
                .await
                .expect("select literal")
                .get(0);
            assert_eq!(
                back, value,
                "{literal} with standard_conforming_strings = {mode}"
            );
        }
    }
    // And a statement text full of quotes reaches changes.statement unchanged.
    client
        .batch_execute("SET standard_conforming_strings = on; CREATE TABLE q (v text); INSERT INTO q VALUES ('a')")
        .await
        .expect("setup");
    let statement = r#"UPDATE q SET v = E'a\\b''c' -- it's "quoted""#;
    recorded(&client, &meta("q", statement), statement)
        .await
        .expect("write");
    let stored: String = client
        .query_one("SELECT statement FROM pgbelay.changes", &[])
        .await
        .expect("change")
        .get(0);
    assert_eq!(stored, statement);
}

#[tokio::test]
async fn odd_column_names_are_captured() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE odd (id int PRIMARY KEY, v_id int, v_rows int, capture int, \"select\" text, \
                               \"Mixed Case\" text, \"$pgbelay$\" text, \"a\"\"q\" text); \
             INSERT INTO odd VALUES (1, 2, 3, 4, 'five', 'six', 'seven', 'eight')",
        )
        .await
        .expect("setup");
    let statement = "UPDATE odd SET v_id = v_id + 1";
    let id = recorded(&client, &meta("odd", statement), statement)
        .await
        .expect("write")
        .expect("id");
    assert_eq!(
        images(
            &client,
            "\"public.odd\"",
            id,
            "id, v_id, v_rows, capture, \"select\", \"Mixed Case\", \"$pgbelay$\", \"a\"\"q\""
        )
        .await,
        pairs(&[
            ("before", "(1,2,3,4,five,six,seven,eight)"),
            ("after", "(1,3,3,4,five,six,seven,eight)")
        ])
    );
}

#[tokio::test]
async fn views_are_refused_and_temporary_tables_skipped() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE base (id int PRIMARY KEY, n int); INSERT INTO base VALUES (1, 0); \
             CREATE VIEW v AS SELECT * FROM base; \
             CREATE TEMP TABLE scratch (id int); INSERT INTO scratch VALUES (1)",
        )
        .await
        .expect("setup");
    let err = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("v", "UPDATE v SET n = 1")).expect("sql"),
            &[],
        )
        .await
        .expect_err("a view cannot be recorded");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().starts_with("pgbelay: refused:"),
        "{}",
        db.message()
    );
    // A temporary table is session scratch space: announced, but nothing to record.
    let shadow: Option<String> = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("scratch", "UPDATE scratch SET id = 2"))
                .expect("sql"),
            &[],
        )
        .await
        .expect("temp table")
        .get(0);
    assert_eq!(shadow, None);
    let id = recorded(
        &client,
        &meta("scratch", "UPDATE scratch SET id = 2"),
        "UPDATE scratch SET id = 2",
    )
    .await
    .expect("write");
    assert_eq!(id, None);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgbelay.changes").await,
        0
    );
    // A missing table fails as the write itself would.
    let err = client
        .query_one(
            &audit::begin_statement_sql(AUDIT, &meta("nope", "UPDATE nope SET x = 1"))
                .expect("sql"),
            &[],
        )
        .await
        .expect_err("no such table");
    assert_eq!(sqlstate(&err), "42P01");
}

#[tokio::test]
async fn writes_by_user_triggers_keep_their_own_kind() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "CREATE TABLE parents (id int PRIMARY KEY, deleted_at timestamptz); \
             CREATE TABLE counters (id int PRIMARY KEY, n int, deleted_at timestamptz); \
             CREATE TABLE counter_kids (id int PRIMARY KEY, \
                                        counter_id int REFERENCES counters ON DELETE CASCADE, \
                                        deleted_at timestamptz); \
             CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN UPDATE counters SET n = n + 1 WHERE id = 1; RETURN NULL; END $$; \
             CREATE TRIGGER bump AFTER UPDATE ON parents FOR EACH ROW EXECUTE FUNCTION bump(); \
             INSERT INTO parents VALUES (1); INSERT INTO counters VALUES (1, 0); \
             INSERT INTO counter_kids VALUES (1, 1);",
        )
        .await
        .expect("setup");
    client
        .query_one("SELECT pgbelay.prepare_table('counters')", &[])
        .await
        .expect("prepare counters");
    let soft = StatementMeta {
        kind: Some("delete".into()),
        ..meta("parents", "DELETE FROM parents WHERE id = 1")
    };
    recorded(
        &client,
        &soft,
        "UPDATE parents SET deleted_at = now() WHERE deleted_at IS NULL AND id = 1",
    )
    .await
    .expect("soft delete");
    let kinds: Vec<(String, String)> = client
        .query(
            "SELECT table_name, kind FROM pgbelay.changes ORDER BY table_name",
            &[],
        )
        .await
        .expect("changes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("counters".to_string(), "update".to_string()),
            ("parents".to_string(), "delete".to_string())
        ]
    );
    // The trigger's UPDATE of counters is no soft delete: nothing cascaded.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM counter_kids WHERE deleted_at IS NULL"
        )
        .await,
        1
    );
}

/// Installed by a superuser, the schema's event trigger prepares tables as DDL creates or
/// alters them (their first write then takes no table lock of its own), for any role, and
/// never fails the DDL. Installed by another role, there is no event trigger.
#[tokio::test]
async fn ddl_prepares_tables_when_installed_by_a_superuser() {
    let (db, client) = fresh_db().await;
    let prepared = |table: &'static str| {
        format!(
            "SELECT (SELECT count(*) FROM pgbelay.shadow_tables WHERE relid = to_regclass('{table}')) \
                  + (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('{table}') \
                     AND tgname LIKE 'pgbelay_capture_%' AND tgenabled = 'A')"
        )
    };
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .expect("create");
    assert_eq!(
        count(&client, &prepared("t")).await,
        5,
        "shadow and 4 triggers"
    );
    client
        .batch_execute("ALTER TABLE t ADD COLUMN label text")
        .await
        .expect("alter");
    let shadow_has_label = "SELECT count(*) FROM pg_attribute \
         WHERE attrelid = 'pgbelay.\"public.t\"'::regclass AND attname = 'label'";
    assert_eq!(count(&client, shadow_has_label).await, 1, "new column");
    client
        .batch_execute("CREATE TABLE copied AS SELECT 1 AS id")
        .await
        .expect("create as");
    assert_eq!(count(&client, &prepared("copied")).await, 5);

    // An ordinary role's table, created through its own rights.
    let user = connect_as(&db, TRUST_USER, None).await;
    user.batch_execute("CREATE TABLE mine (id int PRIMARY KEY, v text)")
        .await
        .expect("create as user");
    assert_eq!(count(&client, &prepared("mine")).await, 5);
    // Not prepared, and the DDL still succeeds: temporary and unrecordable tables.
    user.batch_execute("CREATE TEMP TABLE scratch (id int)")
        .await
        .expect("temp");
    assert_eq!(count(&user, &prepared("scratch")).await, 0);
    user.batch_execute("CREATE TABLE odd (pgbelay_image text)")
        .await
        .expect("a table pgbelay cannot record is still created");
    assert_eq!(count(&client, &prepared("odd")).await, 0);

    // Another role installing a second audit schema gets no event trigger.
    client
        .batch_execute(&format!("GRANT CREATE ON DATABASE {db} TO {TRUST_USER}"))
        .await
        .expect("grant");
    audit::install(&user, "plain_audit")
        .await
        .expect("install as an ordinary role");
    let triggers = "SELECT string_agg(evtname, ',' ORDER BY evtname) FROM pg_event_trigger";
    let names: String = client.query_one(triggers, &[]).await.expect("evt").get(0);
    assert_eq!(names, "pgbelay_prepare_tables");
}

/// A reinstall (an upgrade) brings the capture functions of prepared tables to the current
/// template, without a write having to prepare the table again.
#[tokio::test]
async fn reinstall_regenerates_capture_functions() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (1, 0)")
        .await
        .expect("setup");
    // An older version's capture function, as an upgrade finds it.
    client
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION pgbelay.capture_{}() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'old capture function'; END $$",
            count(&client, "SELECT 't'::regclass::oid::int8").await
        ))
        .await
        .expect("old capture");
    let err = recorded(
        &client,
        &meta("t", "UPDATE t SET n = 1"),
        "UPDATE t SET n = 1",
    )
    .await
    .expect_err("the old function runs");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("old capture function")
    );
    audit::install(&client, AUDIT).await.expect("reinstall");
    let id = recorded(
        &client,
        &meta("t", "UPDATE t SET n = 1"),
        "UPDATE t SET n = 1",
    )
    .await
    .expect("recorded")
    .expect("id");
    assert_eq!(
        images(&client, "\"public.t\"", id, "id, n").await,
        pairs(&[("before", "(1,0)"), ("after", "(1,1)")])
    );
}

/// `pgbelay init` prepares what the event trigger prepares (one rule, `_recordable`):
/// ordinary, partitioned and unlogged tables, not temporary ones, views or the trail.
#[tokio::test]
async fn init_prepares_the_tables_the_event_trigger_would() {
    let (_db, client) = fresh_db().await;
    client
        .batch_execute(
            "ALTER EVENT TRIGGER pgbelay_prepare_tables DISABLE; \
             CREATE TABLE plain (id int); CREATE UNLOGGED TABLE quick (id int); \
             CREATE TABLE parted (id int) PARTITION BY RANGE (id); \
             CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10); \
             CREATE VIEW seen AS SELECT * FROM plain; CREATE TEMP TABLE scratch (id int)",
        )
        .await
        .expect("tables");
    let prepared: i64 = client
        .query_one(&audit::prepare_all_sql(AUDIT).expect("sql"), &[])
        .await
        .expect("prepare all")
        .get(0);
    assert_eq!(prepared, 4);
    let names: Vec<String> = client
        .query(
            "SELECT source_table::text FROM pgbelay.shadow_tables ORDER BY 1",
            &[],
        )
        .await
        .expect("shadow tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["parted", "parted_1", "plain", "quick"]);
}
