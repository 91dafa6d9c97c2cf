//! Recorded writes through the live proxy (issue 4, SPEC §B2, §B3, §B7, §B8): every change
//! runs in a transaction with its record; DELETE becomes a soft delete; reads cannot
//! write; the blast radius is enforced. Checked on a direct connection.

mod common;

use std::sync::Arc;

use common::*;
use pgbelay::config::Settings;
use tokio_postgres::Client;

async fn guarded(max_rows: u64) -> TestProxy {
    let settings = Settings {
        max_rows,
        ..Settings::default()
    };
    TestProxy::start_with(cluster(), Arc::new(pgbelay::policy::Guard::new(&settings))).await
}

/// How many rows `sql` returns as a simple Query (which must succeed).
async fn simple_rows(client: &Client, sql: &str) -> usize {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", show(&e)))
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count()
}

/// A database with `orders(id, customer, total, deleted_at)` (10 rows) and `notes` without
/// a soft-delete column; returns its name and a direct superuser client.
/// The server refused a write in a read-only transaction (25006).
fn assert_read_only(err: &tokio_postgres::Error) {
    assert_eq!(sqlstate(err).as_deref(), Some("25006"), "{}", show(err));
}

async fn shop() -> (String, Client) {
    let db = create_db("writes").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2),
                                  deleted_at timestamptz);
             INSERT INTO orders SELECT g, 'c' || (g % 3), g * 1.5 FROM generate_series(1, 10) g;
             CREATE TABLE notes (id int PRIMARY KEY, body text);
             INSERT INTO notes VALUES (1, 'keep me');
             CREATE TABLE side_effects (at timestamptz DEFAULT now());
             CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql VOLATILE
                 AS 'INSERT INTO side_effects DEFAULT VALUES RETURNING 1';",
        )
        .await
        .expect("schema");
    (db, admin)
}

/// A guarded proxy, the shop with `tables` granted to `trust_user`, and a raw protocol
/// connection through the proxy as `trust_user` with `application_name` `app`.
async fn raw_shop(tables: &str, app: &str) -> (TestProxy, String, Client, RawConn) {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(&format!("GRANT ALL ON {tables} TO {TRUST_USER}"))
        .await
        .expect("grants");
    let (conn, _) = RawConn::startup(&proxy.addr().to_string(), &db, app).await;
    (proxy, db, admin, conn)
}

#[tokio::test]
async fn update_records_one_change_with_exact_images() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let out = psql_super(
        proxy.endpoint(),
        &db,
        &[
            "-c",
            "UPDATE orders SET total = total + 1 WHERE customer = 'c1'",
        ],
    )
    .await;
    assert_eq!(out.stdout.trim(), "UPDATE 4", "{out:?}");
    let change = admin
        .query_one(
            "SELECT id, kind, table_name, rows, statement, shadow_table FROM pgbelay.changes",
            &[],
        )
        .await
        .expect("one change row");
    assert_eq!(change.get::<_, String>(1), "update");
    assert_eq!(change.get::<_, String>(2), "orders");
    assert_eq!(change.get::<_, i64>(3), 4);
    assert_eq!(
        change.get::<_, String>(4),
        "UPDATE orders SET total = total + 1 WHERE customer = 'c1'"
    );
    let shadow: String = change.get(5);
    let id: i64 = change.get(0);
    // Before-images hold the old totals, after-images the new ones, row for row.
    let pairs = admin
        .query(
            &format!(
                "SELECT b.id, b.total::text, a.total::text FROM {shadow} b JOIN {shadow} a
                   ON a.id = b.id AND a.pgbelay_image = 'after'
                  WHERE b.pgbelay_image = 'before' AND b.pgbelay_change_id = $1
                    AND a.pgbelay_change_id = $1 ORDER BY b.id"
            ),
            &[&id],
        )
        .await
        .expect("images");
    let got: Vec<(i32, String, String)> = pairs
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "1.50".into(), "2.50".into()),
            (4, "6.00".into(), "7.00".into()),
            (7, "10.50".into(), "11.50".into()),
            (10, "15.00".into(), "16.00".into()),
        ]
    );
}

#[tokio::test]
async fn delete_becomes_a_soft_delete_with_the_delete_tag() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    // Extended protocol, a parameter and RETURNING.
    let rows = client
        .query(
            "DELETE FROM orders o WHERE o.customer = $1 RETURNING o.id",
            &[&"c2"],
        )
        .await
        .expect("delete");
    let mut ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort();
    assert_eq!(ids, vec![2, 5, 8]);
    // Simple protocol: the tag says DELETE.
    let out = psql_super(
        proxy.endpoint(),
        &db,
        &["-c", "DELETE FROM orders WHERE id = 1"],
    )
    .await;
    assert_eq!(out.stdout.trim(), "DELETE 1", "{out:?}");
    // Already soft-deleted rows count as gone.
    let n = client
        .execute("DELETE FROM orders WHERE id = 2", &[])
        .await
        .expect("again");
    assert_eq!(n, 0);
    assert_eq!(count(&admin, "SELECT count(*) FROM orders").await, 10);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        4
    );
    let kinds: Vec<(String, i64)> = query_pairs(
        &admin,
        "SELECT kind, rows FROM pgbelay.changes ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(kinds, vec![("delete".into(), 3), ("delete".into(), 1)]);
}

#[tokio::test]
async fn delete_without_the_soft_delete_column_is_refused() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let err = client
        .batch_execute("DELETE FROM notes WHERE id = 1")
        .await
        .expect_err("refused");
    let e = err.as_db_error().expect("db error");
    assert_eq!(e.code().code(), "42501");
    assert!(
        e.message().starts_with("pgbelay: refused"),
        "{}",
        e.message()
    );
    assert!(
        e.hint()
            .is_some_and(|h| h.contains("pgbelay approve --hard --sql")),
        "{e:?}"
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM notes").await, 1);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        0
    );
}

#[tokio::test]
async fn insert_records_after_images_and_writes_in_a_client_transaction_join_it() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let n = client
        .execute(
            "INSERT INTO orders (id, customer, total) VALUES ($1, $2, $3::text::numeric)",
            &[&11i32, &"new", &"9.99"],
        )
        .await
        .expect("insert");
    assert_eq!(n, 1);
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("UPDATE orders SET total = 0 WHERE id = 3")
        .await
        .expect("update in tx");
    client
        .batch_execute("UPDATE orders SET total = 0 WHERE id = 6")
        .await
        .expect("update in tx");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("UPDATE orders SET total = 1 WHERE id = 9")
        .await
        .expect("update in tx");
    client.batch_execute("COMMIT").await.expect("commit");
    let kinds: Vec<(String, i64)> = query_pairs(
        &admin,
        "SELECT kind, rows FROM pgbelay.changes ORDER BY id",
        &[],
    )
    .await;
    // The rolled-back transaction left neither its changes nor their records.
    assert_eq!(kinds, vec![("insert".into(), 1), ("update".into(), 1)]);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 0").await,
        0
    );
}

#[tokio::test]
async fn over_the_blast_radius_nothing_stays() {
    let proxy = guarded(3).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let err = client
        .batch_execute("UPDATE orders SET total = 0 WHERE id <= 5")
        .await
        .expect_err("over max_rows");
    let e = err.as_db_error().expect("db error");
    assert_eq!(e.code().code(), "42501");
    assert!(e.message().contains('5'), "the real count: {}", e.message());
    assert_eq!(e.detail(), Some("statement class: blast radius"));
    // Inside a transaction the statement fails as any failed statement does.
    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .batch_execute("DELETE FROM orders WHERE id <= 4")
        .await
        .expect_err("over max_rows");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    let err = client.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    client.batch_execute("ROLLBACK").await.expect("rollback");
    // Within the limit it runs.
    client
        .batch_execute("UPDATE orders SET total = 0 WHERE id <= 3")
        .await
        .expect("within max_rows");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 0").await,
        3
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );
}

/// The blast radius counts every row one statement changes: an upsert's inserts and
/// updates together, a soft delete's cascade children with their parent (each part alone
/// is within the limit).
#[tokio::test]
async fn the_blast_radius_counts_every_row_of_the_statement() {
    let proxy = guarded(5).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(
            "CREATE TABLE parents (id int PRIMARY KEY, deleted_at timestamptz);
             CREATE TABLE children (id int PRIMARY KEY,
                                    parent_id int REFERENCES parents ON DELETE CASCADE,
                                    deleted_at timestamptz);
             INSERT INTO parents VALUES (1), (2);
             INSERT INTO children SELECT g, 1 FROM generate_series(1, 5) g;
             INSERT INTO children VALUES (6, 2);",
        )
        .await
        .expect("schema");
    let client = connect_super(proxy.endpoint(), &db).await;
    let refused = |err: &tokio_postgres::Error, rows: &str| {
        show(err).contains("statement class: blast radius") && show(err).contains(rows)
    };
    // Four updates (7-10) and two inserts (11, 12).
    let err = client
        .batch_execute(
            "INSERT INTO orders SELECT g, 'c', 0 FROM generate_series(7, 12) g
             ON CONFLICT (id) DO UPDATE SET total = excluded.total",
        )
        .await
        .expect_err("six rows");
    assert!(refused(&err, "6 rows"), "{}", show(&err));
    assert!(
        show(&err).contains("counting every row the statement changed"),
        "{}",
        show(&err)
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 0").await,
        0
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM orders").await, 10);
    let err = client
        .batch_execute("DELETE FROM parents WHERE id = 1")
        .await
        .expect_err("a parent and five children");
    assert!(refused(&err, "6 rows"), "{}", show(&err));
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM children WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    client
        .batch_execute("DELETE FROM parents WHERE id = 2")
        .await
        .expect("a parent and one child");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM children WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn reads_cannot_write_in_autocommit_or_in_a_transaction() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let err = client
        .query_one("SELECT sneaky()", &[])
        .await
        .expect_err("read-only");
    assert_read_only(&err);
    client.batch_execute("BEGIN").await.expect("begin");
    // Row locks taken by a read in the transaction stay; the read itself cannot write.
    client
        .batch_execute("SELECT * FROM orders WHERE id = 1 FOR UPDATE")
        .await
        .expect("select for update");
    let err = client
        .simple_query("SELECT sneaky()")
        .await
        .expect_err("read-only savepoint");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query("SELECT id FROM orders WHERE id = 2", &[])
        .await
        .expect("extended read in tx");
    client
        .batch_execute("UPDATE orders SET total = 42 WHERE id = 2")
        .await
        .expect("write after reads in the same transaction");
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 42").await,
        1
    );
}

/// A session remembers the numeric shapes of its last few plain reads and runs the next
/// read of such a shape without judging it again. Each one still runs where the first
/// did: read-only outside a transaction, in the read-only savepoint inside one (seeing
/// the transaction's own writes), in the simple protocol and as a named Parse.
#[tokio::test]
async fn reads_of_a_remembered_shape_stay_guarded() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    for n in 1..=3 {
        let simple = format!("SELECT sneaky() + {n} FROM orders WHERE id = {n}");
        let err = client.simple_query(&simple).await.expect_err(&simple);
        assert_read_only(&err);
        let parsed = format!("SELECT sneaky() - {n}");
        let err = client.query(&parsed, &[]).await.expect_err(&parsed);
        assert_read_only(&err);
    }
    client.batch_execute("BEGIN").await.expect("begin");
    for n in 1..=3 {
        let read = format!("SELECT total FROM orders WHERE id = {n}");
        assert_eq!(simple_rows(&client, &read).await, 1, "{read}");
    }
    client
        .batch_execute("UPDATE orders SET total = 7 WHERE id = 1")
        .await
        .expect("a write between the reads");
    let seen: Vec<_> = client
        .simple_query("SELECT total::text FROM orders WHERE id = 1")
        .await
        .expect("a read of the shape")
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(seen, ["7.00"], "the read runs in the client's transaction");
    let err = client
        .query("SELECT sneaky() - 4", &[])
        .await
        .expect_err("a named Parse of the shape, in the transaction");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .simple_query("SELECT sneaky() + 4 FROM orders WHERE id = 4")
        .await
        .expect_err("a simple read of the shape, in the transaction");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 7").await,
        0
    );
}

/// Where a transaction starts or ends inside one Query, pgbelay cannot put its guard
/// between the statements: transaction control sharing a Query with other statements is
/// refused, and so is `DECLARE … WITH HOLD`, whose query runs again at COMMIT,
/// read-write; a cursor without it works inside a transaction.
#[tokio::test]
async fn transaction_control_cannot_carry_reads_past_the_guard() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let unguardable =
        |err: &tokio_postgres::Error| show(err).contains("statement class: unguardable statement");
    for sql in [
        "BEGIN READ WRITE; SELECT sneaky(); COMMIT",
        "SELECT 1; BEGIN; SELECT 2",
        "DECLARE c CURSOR WITH HOLD FOR SELECT sneaky() FROM generate_series(1, 3)",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(unguardable(&err), "{sql}: {}", show(&err));
    }
    client.batch_execute("BEGIN").await.expect("begin");
    for sql in [
        "SAVEPOINT a; SELECT sneaky()",
        "SELECT sneaky(); COMMIT",
        "DECLARE c CURSOR WITH HOLD FOR SELECT sneaky() FROM generate_series(1, 3)",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(unguardable(&err), "{sql}: {}", show(&err));
    }
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("DECLARE d CURSOR FOR SELECT id FROM orders")
        .await
        .expect("cursor");
    assert_eq!(simple_rows(&client, "FETCH ALL FROM d").await, 10);
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// A read that turns the read-only default off through a function (`set_config` in it,
/// which pgbelay cannot see) is followed by pgbelay setting it on again before the
/// client's next statement: reads after it still cannot write (issue 4: watch
/// ParameterStatus for anything that flips the guard).
#[tokio::test]
async fn a_function_turning_the_read_only_default_off_is_undone() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(
            "CREATE FUNCTION flip() RETURNS text LANGUAGE sql VOLATILE
                 AS $$ SELECT set_config('default_transaction_read_only', 'off', false) $$",
        )
        .await
        .expect("flip()");
    let client = connect_super(proxy.endpoint(), &db).await;
    let read_only = async |client: &Client| {
        let shown = client
            .simple_query("SHOW default_transaction_read_only")
            .await
            .expect("show");
        let err = client
            .query_one("SELECT sneaky()", &[])
            .await
            .expect_err("read-only again");
        assert_read_only(&err);
        shown.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("on")),
        )
    };
    client.simple_query("SELECT flip()").await.expect("simple");
    assert!(read_only(&client).await);
    client.query("SELECT flip()", &[]).await.expect("extended");
    assert!(read_only(&client).await);
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query("SELECT flip()", &[])
        .await
        .expect("in a transaction");
    client.batch_execute("COMMIT").await.expect("commit");
    assert!(read_only(&client).await);
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// `session_replication_role = replica` set through a function (which the server does not
/// report to the proxy) would let writes skip foreign keys: every recorded write is refused
/// until the session sets it back to `origin`, and no row of such a write lands.
#[tokio::test]
async fn writes_are_refused_while_a_function_left_replication_role_replica() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(
            "CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
             CREATE FUNCTION replica() RETURNS text LANGUAGE sql VOLATILE
                 AS $$ SELECT set_config('session_replication_role', 'replica', false) $$",
        )
        .await
        .expect("schema");
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .simple_query("SELECT replica()")
        .await
        .expect("a read");
    for sql in [
        "INSERT INTO lines VALUES (1, 999)",
        "UPDATE orders SET total = 0 WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
    ] {
        let db_err = refused(&client, sql).await;
        assert!(
            db_err
                .message()
                .contains("session_replication_role is replica"),
            "{}",
            db_err.message()
        );
        assert_eq!(
            db_err.hint(),
            Some("SET session_replication_role = origin, then run the statement again.")
        );
    }
    assert_eq!(count(&admin, "SELECT count(*) FROM lines").await, 0);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE total = 0 OR deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    client
        .batch_execute("SET session_replication_role = origin")
        .await
        .expect("set back");
    let err = client
        .batch_execute("INSERT INTO lines VALUES (1, 999)")
        .await
        .expect_err("the foreign key holds again");
    assert_eq!(sqlstate(&err).as_deref(), Some("23503"), "{}", show(&err));
    client
        .batch_execute("INSERT INTO lines VALUES (1, 1)")
        .await
        .expect("a valid row");
    assert_eq!(count(&admin, "SELECT count(*) FROM lines").await, 1);
}

/// pgbelay's capture triggers cannot be renamed (a copy would record every write twice),
/// dropped or disabled through it, by name or with ALL / USER; the client's own triggers
/// can. A write afterwards is recorded exactly once.
#[tokio::test]
async fn capture_triggers_cannot_be_renamed_or_disabled() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute("UPDATE orders SET total = 1 WHERE id = 1")
        .await
        .expect("first write prepares the table");
    client
        .batch_execute(
            "CREATE FUNCTION nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        )
        .await
        .expect("function");
    client
        .batch_execute(
            "CREATE TRIGGER mine AFTER UPDATE ON orders FOR EACH STATEMENT EXECUTE FUNCTION nothing()",
        )
        .await
        .expect("own trigger");
    let triggers = "SELECT string_agg(tgname || ':' || tgenabled::text, ' ' ORDER BY tgname) \
                    FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal";
    let before = texts(&admin, triggers).await;
    for sql in [
        "ALTER TRIGGER pgbelay_capture_update ON orders RENAME TO renamed",
        "ALTER TABLE orders DISABLE TRIGGER ALL",
        "ALTER TABLE orders DISABLE TRIGGER USER",
        "ALTER TABLE orders DISABLE TRIGGER pgbelay_capture_update",
        "ALTER TABLE orders ENABLE TRIGGER pgbelay_capture_update",
    ] {
        let db_err = refused(&client, sql).await;
        assert!(
            db_err.message().contains("pgbelay's capture triggers"),
            "{sql}: {}",
            db_err.message()
        );
        assert_eq!(db_err.detail(), Some("statement class: capture trigger"));
    }
    assert_eq!(texts(&admin, triggers).await, before);
    client
        .batch_execute("ALTER TABLE orders DISABLE TRIGGER mine")
        .await
        .expect("own trigger, by name");
    client
        .batch_execute("UPDATE orders SET total = 2 WHERE id = 1")
        .await
        .expect("write");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE statement = 'UPDATE orders SET total = 2 WHERE id = 1'"
        )
        .await,
        1
    );
}

/// A table with a column named like the shadow tables' own cannot be recorded: its writes
/// are refused, with a hint saying which column to rename.
#[tokio::test]
async fn a_reserved_column_name_is_refused_with_a_hint() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute("CREATE TABLE weird (id int PRIMARY KEY, pgbelay_image text)")
        .await
        .expect("table");
    let client = connect_super(proxy.endpoint(), &db).await;
    let db_err = refused(&client, "INSERT INTO weird VALUES (1, 'x')").await;
    assert!(
        db_err.message().contains("pgbelay_image"),
        "{}",
        db_err.message()
    );
    assert!(
        db_err
            .hint()
            .is_some_and(|h| h.contains("RENAME COLUMN pgbelay_image")),
        "{:?}",
        db_err.hint()
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM weird").await, 0);
}

/// pgjdbc with autocommit off sends BEGIN and the transaction's first statement in one
/// batch, where nothing can be put in front of the statement: reads there are checked for
/// hidden writes after the batch; a statement that needs wrapping (a write, DDL, a locking
/// read) gets a batch of its own, the relay ending the BEGIN's batch with a Sync of its own
/// (the transaction block stays open), and is recorded or checked there; transaction
/// control later in a batch that ran something else is refused (it could commit before a
/// check or release the read-only savepoint).
#[tokio::test]
async fn statements_behind_a_begin_in_one_batch_are_checked_or_recorded() {
    let (_proxy, _db, admin, mut conn) = raw_shop("orders, side_effects", "jdbc").await;
    let errors = batch(&mut conn, &["BEGIN", "SELECT sneaky()"]).await;
    failed_and_rolled_back(&mut conn, &admin, &errors, "wrote to the database").await;

    let errors = batch(&mut conn, &["BEGIN", "SELECT id FROM orders WHERE id = 1"]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let errors = batch(&mut conn, &["UPDATE orders SET total = 5 WHERE id = 1"]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let errors = batch(&mut conn, &["COMMIT"]).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 5").await,
        1
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );

    // A locking read is checked after its batch: a COMMIT behind it in the batch gets a
    // batch of its own, after the check, and a failed check keeps it from running.
    batch(&mut conn, &["BEGIN"]).await;
    let errors = batch(
        &mut conn,
        &[
            "SELECT sneaky() FROM orders WHERE id = 2 FOR UPDATE",
            "COMMIT",
        ],
    )
    .await;
    failed_and_rolled_back(&mut conn, &admin, &errors, "wrote to the database").await;
    batch(&mut conn, &["BEGIN"]).await;
    let errors = batch(
        &mut conn,
        &["SELECT id FROM orders WHERE id = 2 FOR UPDATE", "COMMIT"],
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    for later in [
        "CREATE TABLE t2 (id int)",
        "SELECT id FROM orders WHERE id = 3 FOR UPDATE",
    ] {
        let errors = batch(&mut conn, &["BEGIN", later]).await;
        assert!(errors.is_empty(), "{later}: {errors:?}");
        batch(&mut conn, &["ROLLBACK"]).await;
    }
    // A locking read behind the BEGIN is checked like any in a transaction.
    let errors = batch(
        &mut conn,
        &[
            "BEGIN",
            "SELECT sneaky() FROM orders WHERE id = 3 FOR UPDATE",
        ],
    )
    .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("wrote to the database"), "{errors:?}");
    batch(&mut conn, &["ROLLBACK"]).await;

    // The transaction's first statement a write (pgjdbc, autocommit off): recorded.
    let errors = batch(
        &mut conn,
        &["BEGIN", "UPDATE orders SET total = 6 WHERE id = 4"],
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    batch(&mut conn, &["COMMIT"]).await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes
              WHERE statement = 'UPDATE orders SET total = 6 WHERE id = 4' AND rows = 1"
        )
        .await,
        1
    );
    // A read that wrote, then a write, behind the BEGIN: the read's check fails when the
    // relay ends the batch, and the write behind it is discarded, as the server discards
    // what follows an error in a batch.
    let errors = batch(
        &mut conn,
        &[
            "BEGIN",
            "SELECT sneaky()",
            "UPDATE orders SET total = 7 WHERE id = 5",
        ],
    )
    .await;
    failed_and_rolled_back(&mut conn, &admin, &errors, "wrote to the database").await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE id = 5 AND total = 7"
        )
        .await,
        0
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        2,
        "the first UPDATE and this one"
    );
}

/// A pipeline of several writes and reads with one Sync inside the client's transaction
/// (psycopg's pipeline mode on a connection that is not autocommit): each statement that
/// needs wrapping gets a batch of its own (a Sync commits nothing there), the writes are
/// recorded, and a read that writes fails and takes what follows it with it.
#[tokio::test]
async fn a_pipeline_in_a_transaction_records_each_write() {
    let (_proxy, _db, admin, mut conn) = raw_shop("orders, side_effects", "pipeline").await;
    batch(&mut conn, &["BEGIN"]).await;
    let errors = batch(
        &mut conn,
        &[
            "UPDATE orders SET total = 21 WHERE id = 1",
            "SELECT total FROM orders WHERE id = 1",
            "DELETE FROM orders WHERE id = 2",
            "UPDATE orders SET total = 23 WHERE id = 3",
        ],
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    batch(&mut conn, &["COMMIT"]).await;
    let recorded: Vec<(String, String)> = query_pairs(
        &admin,
        "SELECT kind, statement FROM pgbelay.changes ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(
        recorded,
        [
            (
                "update".into(),
                "UPDATE orders SET total = 21 WHERE id = 1".into()
            ),
            ("delete".into(), "DELETE FROM orders WHERE id = 2".into()),
            (
                "update".into(),
                "UPDATE orders SET total = 23 WHERE id = 3".into()
            ),
        ]
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE id = 2 AND deleted_at IS NOT NULL"
        )
        .await,
        1
    );

    batch(&mut conn, &["BEGIN"]).await;
    let errors = batch(
        &mut conn,
        &[
            "UPDATE orders SET total = 24 WHERE id = 4",
            "SELECT sneaky()",
            "UPDATE orders SET total = 25 WHERE id = 5",
        ],
    )
    .await;
    failed_and_rolled_back(&mut conn, &admin, &errors, "read-only transaction").await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE total IN (24, 25)"
        )
        .await,
        0
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        3
    );
}

/// Close('S' or 'P', name): what pgjdbc sends, in front of a statement's own messages, for
/// a cached statement it evicted or a cursor it is done with.
fn close(kind: u8, name: &str) -> Vec<u8> {
    frame(b'C', &[&[kind], name.as_bytes(), &[0]].concat())
}

/// A batch that starts with a Close (which the relay forwards without asking the policy):
/// the statement behind it is judged as a batch start, not with what the previous batch
/// left behind. In a transaction a read there runs in the read-only savepoint, a write is
/// recorded.
#[tokio::test]
async fn a_statement_behind_a_close_is_judged_as_its_batch_start() {
    let (_proxy, _db, admin, mut conn) = raw_shop("orders, side_effects", "jdbc").await;
    batch(&mut conn, &["BEGIN"]).await;
    // A read in the read-only savepoint: the batch after it starts with a Close.
    let errors = batch(&mut conn, &["SELECT id FROM orders WHERE id = 1"]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut bytes = close(b'P', "C_1");
    bytes.extend(step("SELECT sneaky()"));
    let errors = synced(&mut conn, bytes).await;
    failed_and_rolled_back(&mut conn, &admin, &errors, "read-only transaction").await;

    let mut bytes = close(b'S', "S_1");
    bytes.extend(step("UPDATE orders SET total = 8 WHERE id = 6"));
    let errors = synced(&mut conn, bytes).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes
              WHERE statement = 'UPDATE orders SET total = 8 WHERE id = 6' AND rows = 1"
        )
        .await,
        1
    );
}

/// What a raw connection to `addr` gets for asyncpg's `prepare()` (Parse, Describe, Flush:
/// no Sync) followed by a simple Query, and for a failing Parse followed by a Query and a
/// Sync: message types, and the transaction status of each ReadyForQuery.
async fn flushed_batch_then_query(addr: &str, db: &str, copy_id: i32) -> Vec<String> {
    let (mut conn, _) = RawConn::startup(addr, db, "asyncpg").await;
    let mut seen = Vec::new();
    let mut note = |msgs: Vec<Msg>| {
        for m in msgs {
            seen.push(match m.tag {
                b'Z' => format!("Z{}", m.body[0] as char),
                b'E' => format!("E{}", m.code().unwrap_or_default()),
                tag => (tag as char).to_string(),
            });
        }
    };
    let parse = |name: &str, sql: &str| {
        frame(
            b'P',
            &[name.as_bytes(), &[0], sql.as_bytes(), &[0, 0, 0]].concat(),
        )
    };
    let mut bytes = parse("s1", "SELECT id FROM orders WHERE id = $1::int");
    bytes.extend(frame(b'D', b"Ss1\0"));
    bytes.extend(frame(b'H', &[]));
    conn.send(&bytes).await;
    note(conn.read_until(b'T').await.expect("prepare answered"));
    conn.send(&query_message("SELECT 2")).await;
    note(conn.read_until(b'Z').await.expect("query answered"));

    let mut bytes = parse("s2", "SELECT nope FROM nowhere");
    bytes.extend(frame(b'H', &[]));
    conn.send(&bytes).await;
    note(vec![conn.read_message().await.expect("parse error")]);
    let mut bytes = query_message("SELECT 3");
    bytes.extend(frame(b'S', &[]));
    conn.send(&bytes).await;
    note(conn.read_until(b'Z').await.expect("sync answered"));
    // The session goes on.
    conn.send(&query_message("SELECT 4")).await;
    note(conn.read_until(b'Z').await.expect("query answered"));

    // copy_records_to_table(): the table described (Parse, Describe, Flush), then the COPY
    // as a simple Query with its data streamed behind it, not waiting for CopyInResponse.
    let mut bytes = parse("s3", "SELECT * FROM orders LIMIT 1");
    bytes.extend(frame(b'D', b"Ss3\0"));
    bytes.extend(frame(b'H', &[]));
    conn.send(&bytes).await;
    note(conn.read_until(b'T').await.expect("describe answered"));
    let mut bytes = query_message("COPY orders (id, customer) FROM STDIN");
    bytes.extend(frame(b'd', format!("{copy_id}\tcopied\n").as_bytes()));
    bytes.extend(frame(b'c', &[]));
    conn.send(&bytes).await;
    note(conn.read_until(b'Z').await.expect("copy answered"));
    seen
}

/// asyncpg's `prepare()` ends its batch with Flush, and `copy_records_to_table()` sends a
/// simple Query behind it: the server runs such a Query inside the open batch and ends
/// both with one ReadyForQuery. The relay ends the batch first (with a Sync whose
/// ReadyForQuery the client never sees) and then judges the Query; after a failed batch
/// the Query is skipped up to the client's Sync, as the server skips it. The client gets
/// the same messages as directly.
#[tokio::test]
async fn a_query_behind_a_flushed_batch_is_answered_as_directly() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(&format!("GRANT ALL ON orders TO {TRUST_USER}"))
        .await
        .expect("grants");
    let through = flushed_batch_then_query(&proxy.addr().to_string(), &db, 11).await;
    let direct = flushed_batch_then_query(&direct().addr(), &db, 12).await;
    assert_eq!(
        through,
        [
            "1", "t", "T", "T", "D", "C", "ZI", "E42P01", "ZI", "T", "D", "C", "ZI", "1", "t", "T",
            "G", "C", "ZI"
        ]
    );
    assert_eq!(through, direct);
    // The COPY through pgbelay is recorded.
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE kind = 'insert' AND rows = 1"
        )
        .await,
        1
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE id IN (11, 12)").await,
        2
    );
}

/// tokio-postgres' portals (`Transaction::bind`, `query_portal`) run a query a few rows
/// at a time, each in a batch of its own: a resumed portal runs read-only too, so a
/// function its later rows call cannot write.
#[tokio::test]
async fn a_portal_run_on_in_a_later_batch_stays_read_only() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let mut client = connect_super(proxy.endpoint(), &db).await;
    let tx = client.transaction().await.expect("begin");
    let plain = tx
        .bind("SELECT id FROM orders ORDER BY id", &[])
        .await
        .expect("bind");
    assert_eq!(
        tx.query_portal(&plain, 4).await.expect("first rows").len(),
        4
    );
    assert_eq!(tx.query_portal(&plain, 0).await.expect("the rest").len(), 6);
    let sneaky = tx
        .bind(
            "SELECT CASE WHEN g > 1 THEN sneaky() END FROM generate_series(1, 3) g",
            &[],
        )
        .await
        .expect("bind");
    assert_eq!(tx.query_portal(&sneaky, 1).await.expect("row 1").len(), 1);
    let err = tx
        .query_portal(&sneaky, 0)
        .await
        .expect_err("later rows write");
    assert_read_only(&err);
    tx.rollback().await.expect("rollback");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// Through psql-style Queries: the change row records the statement that ran (a trailing
/// comment included; the soft-delete UPDATE for a DELETE), an error in an autocommit write
/// leaves nothing and the session idle, and a read of several statements in a transaction
/// returns each of its results, in the read-only savepoint.
#[tokio::test]
async fn queries_record_what_ran_and_keep_their_results() {
    let proxy = guarded(2).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute("CREATE TABLE seen (id int PRIMARY KEY)")
        .await
        .expect("table");
    let client = connect_super(proxy.endpoint(), &db).await;
    let insert = "INSERT INTO seen (id) VALUES (1) -- a trailing comment";
    client.batch_execute(insert).await.expect("insert");
    let (statement, executed): (String, String) = admin
        .query_one("SELECT statement, executed FROM pgbelay.changes", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("change");
    assert_eq!((statement.as_str(), executed.as_str()), (insert, insert));
    let delete = "DELETE FROM orders WHERE id = 1";
    client.batch_execute(delete).await.expect("soft delete");
    let executed: String = admin
        .query_one(
            "SELECT executed FROM pgbelay.changes WHERE statement = $1",
            &[&delete],
        )
        .await
        .expect("change")
        .get(0);
    assert!(
        executed.starts_with("UPDATE orders SET deleted_at"),
        "{executed}"
    );
    // Over the limit: the error, nothing of the write, and the session out of any
    // transaction.
    let err = client
        .batch_execute("UPDATE orders SET total = 0 WHERE id <= 5")
        .await
        .expect_err("over max_rows");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    assert_eq!(simple_rows(&client, "SELECT 1").await, 1, "session idle");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 0").await,
        0
    );
    // A read of two statements in a transaction: both results, and neither may write.
    client.batch_execute("BEGIN").await.expect("begin");
    let messages = client
        .simple_query("SELECT id FROM orders WHERE id = 2; SELECT id FROM orders WHERE id = 3 -- x")
        .await
        .expect("reads");
    let values: Vec<&str> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        })
        .collect();
    assert_eq!(values, ["2", "3"]);
    let completions = messages
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(completions, 2, "{messages:?}");
    let err = client
        .simple_query("SELECT 1; SELECT sneaky()")
        .await
        .expect_err("read-only");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// A client's BEGIN / START TRANSACTION without an access mode runs read-write with its
/// own options (the session's default is read-only); one that asks for READ ONLY stays so.
#[tokio::test]
async fn transactions_start_as_the_client_asked() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute("START TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .expect("start");
    let isolation: String = client
        .query_one("SHOW transaction_isolation", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(isolation, "repeatable read");
    client
        .batch_execute("UPDATE orders SET total = 7 WHERE id = 3")
        .await
        .expect("write in the client's transaction");
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE rows = 1"
        )
        .await,
        1
    );
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .expect("begin");
    let err = client
        .batch_execute("UPDATE orders SET total = 8 WHERE id = 3")
        .await
        .expect_err("read-only transaction");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
}

/// A read that locks rows cannot run read-only (PostgreSQL refuses row locks there), so in
/// a transaction its hidden writes are found afterwards: the transaction is aborted and
/// nothing of them commits. Plain locking reads keep their locks.
#[tokio::test]
async fn locking_reads_in_a_transaction_cannot_hide_writes() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let locked_elsewhere =
        |id: i32| format!("SELECT id FROM orders WHERE id = {id} FOR UPDATE NOWAIT");

    client.batch_execute("BEGIN").await.expect("begin");
    let rows = client
        .query("SELECT id FROM orders WHERE id = $1 FOR UPDATE", &[&1i32])
        .await
        .expect("extended locking read");
    assert_eq!(rows.len(), 1);
    client
        .simple_query("SELECT id FROM orders WHERE id = 2 FOR SHARE")
        .await
        .expect("simple locking read");
    for id in [1, 2] {
        let err = admin
            .batch_execute(&locked_elsewhere(id))
            .await
            .expect_err("row locked by the transaction");
        assert_eq!(sqlstate(&err).as_deref(), Some("55P03"), "{}", show(&err));
    }
    client.batch_execute("COMMIT").await.expect("commit");

    // Simple protocol: the error arrives with the statement.
    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .simple_query("SELECT id, sneaky() FROM orders WHERE id = 3 FOR UPDATE")
        .await
        .expect_err("hidden write");
    assert_read_only(&err);
    let db_err = err.as_db_error().expect("db error");
    assert!(
        db_err.message().contains("wrote to the database"),
        "{}",
        db_err.message()
    );
    assert_eq!(db_err.detail(), Some("statement class: hidden write"));
    let err = client.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    client.batch_execute("COMMIT").await.expect("commit");

    // Extended protocol: however the driver surfaces the error, nothing commits.
    client.batch_execute("BEGIN").await.expect("begin");
    let read = client
        .query(
            "SELECT id, sneaky() FROM orders WHERE id = $1 FOR UPDATE",
            &[&4i32],
        )
        .await;
    let commit = client.batch_execute("COMMIT").await;
    eprintln!("extended locking read with a hidden write: read {read:?}, commit {commit:?}");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM side_effects").await,
        0,
        "read {read:?}, commit {commit:?}"
    );
    // A function that empties a table (TRUNCATE resets the table's counts) or drops one.
    admin
        .batch_execute(
            "CREATE TABLE doomed (id int); INSERT INTO doomed VALUES (1); \
             CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql AS \
             $$ BEGIN DELETE FROM side_effects; TRUNCATE doomed; RETURN 1; END $$; \
             CREATE FUNCTION vanish() RETURNS int LANGUAGE plpgsql AS \
             $$ BEGIN DROP TABLE doomed; RETURN 1; END $$",
        )
        .await
        .expect("functions");
    for (function, what) in [("wipe", "a truncate"), ("vanish", "a drop")] {
        client.batch_execute("BEGIN").await.expect("begin");
        client
            .batch_execute("INSERT INTO doomed VALUES (2)")
            .await
            .expect("a recorded write first");
        let err = client
            .batch_execute(&format!(
                "SELECT {function}() FROM orders WHERE id = 6 FOR UPDATE"
            ))
            .await
            .expect_err(what);
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("25006"),
            "{what}: {}",
            show(&err)
        );
        client.batch_execute("ROLLBACK").await.expect("rollback");
    }
    assert_eq!(count(&admin, "SELECT count(*) FROM doomed").await, 1);
    // The session carries on.
    client
        .batch_execute("UPDATE orders SET total = 7 WHERE id = 5")
        .await
        .expect("a write after");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 7").await,
        1
    );
}

/// A locking read reached through SQL `EXECUTE` (of a `PREPARE`d statement or of a
/// statement the driver Parsed by name) runs as the read itself does in a transaction:
/// it takes its locks (not 25006 from a read-only guard it cannot run under), and a
/// hidden write in it aborts the transaction.
#[tokio::test]
async fn executed_locking_reads_lock_and_cannot_hide_writes() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute(
            "PREPARE lock_one(int) AS SELECT id FROM orders WHERE id = $1 FOR UPDATE; \
             PREPARE sneaky_lock AS SELECT id, sneaky() FROM orders WHERE id = 3 FOR UPDATE",
        )
        .await
        .expect("prepare");

    client.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(simple_rows(&client, "EXECUTE lock_one(1)").await, 1);
    // A named Parse, reachable by SQL EXECUTE in the same session.
    admin
        .batch_execute(&format!("GRANT ALL ON orders TO {TRUST_USER}"))
        .await
        .expect("grant");
    let (mut raw, _) = RawConn::startup(&proxy.addr().to_string(), &db, "named").await;
    let parse = frame(
        b'P',
        b"lock_two\0SELECT id FROM orders WHERE id = 2 FOR SHARE\0\0\0",
    );
    let mut bytes = parse;
    bytes.extend(frame(b'S', &[]));
    raw.send(&bytes).await;
    let answer = raw.read_until(b'Z').await.expect("parse answered");
    assert!(!answer.iter().any(|m| m.tag == b'E'), "{answer:?}");
    for sql in ["BEGIN", "EXECUTE lock_two"] {
        raw.send(&query_message(sql)).await;
        let answer = raw.read_until(b'Z').await.expect("answered");
        assert!(!answer.iter().any(|m| m.tag == b'E'), "{sql}: {answer:?}");
    }
    for id in [1, 2] {
        let err = admin
            .batch_execute(&format!(
                "SELECT id FROM orders WHERE id = {id} FOR UPDATE NOWAIT"
            ))
            .await
            .expect_err("row locked by the transaction");
        assert_eq!(sqlstate(&err).as_deref(), Some("55P03"), "{}", show(&err));
    }
    client.batch_execute("COMMIT").await.expect("commit");
    raw.send(&query_message("COMMIT")).await;
    raw.read_until(b'Z').await.expect("commit answered");

    client.batch_execute("BEGIN").await.expect("begin");
    let err = client
        .batch_execute("EXECUTE sneaky_lock")
        .await
        .expect_err("hidden write");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);

    // DEALLOCATE forgets it: a new plain read of the same name runs read-only again.
    client
        .batch_execute(
            "DEALLOCATE lock_one; PREPARE lock_one AS SELECT id FROM orders WHERE id = 1",
        )
        .await
        .expect("re-prepare");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("EXECUTE lock_one")
        .await
        .expect("plain read");
    client.batch_execute("COMMIT").await.expect("commit");
}

/// SPEC B4: additive DDL is allowed, also in autocommit, where the session's read-only
/// default would refuse it; DDL that runs user code over rows (CREATE TABLE AS, ALTER
/// TABLE, REFRESH) is checked for hidden writes instead; the session is read-only again
/// after.
#[tokio::test]
async fn additive_ddl_runs_in_autocommit_and_the_session_stays_guarded() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute("CREATE TABLE later (id int PRIMARY KEY, v text, deleted_at timestamptz)")
        .await
        .expect("CREATE TABLE, simple protocol");
    client
        .execute("CREATE INDEX CONCURRENTLY later_v ON later (v)", &[])
        .await
        .expect("CREATE INDEX CONCURRENTLY, extended protocol");
    let prepared = client
        .prepare("CREATE VIEW later_view AS SELECT id FROM later")
        .await
        .expect("prepare");
    client
        .execute(&prepared, &[])
        .await
        .expect("CREATE VIEW, prepared");
    client
        .batch_execute("ALTER TABLE notes RENAME TO notes_old; COMMENT ON TABLE later IS 'new'")
        .await
        .expect("rename and comment");
    // DDL that runs code over rows runs read-write, checked for hidden writes.
    let err = client
        .batch_execute("CREATE TABLE copied AS SELECT sneaky()")
        .await
        .expect_err("a function in it wrote");
    assert_read_only(&err);
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.message().contains("wrote to side_effects")),
        "{}",
        show(&err)
    );
    // So does an index on an expression: PostgreSQL takes IMMUTABLE on trust.
    admin
        .batch_execute(
            "CREATE FUNCTION looks_immutable(int) RETURNS int LANGUAGE sql IMMUTABLE
                 AS 'SELECT $1 + sneaky()'",
        )
        .await
        .expect("function");
    let err = client
        .batch_execute("CREATE INDEX ON orders ((looks_immutable(id)))")
        .await
        .expect_err("a function in the index expression wrote");
    assert_read_only(&err);
    client
        .batch_execute("CREATE INDEX orders_lower ON orders ((lower(customer))) WHERE total > 1")
        .await
        .expect("an expression index in autocommit");
    client
        .batch_execute("CREATE TABLE copy_of_orders AS SELECT * FROM orders WHERE id <= 3")
        .await
        .expect("CREATE TABLE AS in autocommit");
    client
        .batch_execute("ALTER TABLE copy_of_orders ADD COLUMN note text DEFAULT 'x'")
        .await
        .expect("ALTER TABLE ADD COLUMN in autocommit");
    admin
        .batch_execute(
            "CREATE MATERIALIZED VIEW totals AS SELECT customer, sum(total) FROM orders GROUP BY 1; \
             CREATE UNIQUE INDEX ON totals (customer)",
        )
        .await
        .expect("matview");
    client
        .batch_execute("REFRESH MATERIALIZED VIEW totals")
        .await
        .expect("REFRESH in autocommit");
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute("REFRESH MATERIALIZED VIEW CONCURRENTLY totals")
        .await
        .expect("REFRESH CONCURRENTLY in a transaction");
    let err = client
        .execute("CREATE TABLE copied AS SELECT sneaky()", &[])
        .await
        .expect_err("a function in it wrote, extended protocol, in a transaction");
    assert_read_only(&err);
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let err = client
        .query_one("SELECT sneaky()", &[])
        .await
        .expect_err("the session is read-only again");
    assert_read_only(&err);
    client
        .batch_execute("INSERT INTO later (id, v) VALUES (1, 'a')")
        .await
        .expect("a recorded write to the new table");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_class WHERE relname IN ('later', 'later_v', 'later_view', 'notes_old', \
             'copy_of_orders', 'orders_lower') OR relname = 'copied'"
        )
        .await,
        6,
        "later, its index, the view, the renamed table, the copy, the expression index; no copied"
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE table_name = 'later' AND kind = 'insert'"
        )
        .await,
        1
    );
}

/// One extended-protocol step without Sync: Parse (unnamed), Bind, Execute.
fn step(sql: &str) -> Vec<u8> {
    let mut parse = vec![0];
    parse.extend_from_slice(sql.as_bytes());
    parse.extend_from_slice(&[0, 0, 0]);
    let mut out = frame(b'P', &parse);
    out.extend(frame(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    out.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// The batch failed with one error, saying `why`; the transaction is rolled back and the
/// side effect of `sneaky()` was never written.
async fn failed_and_rolled_back(conn: &mut RawConn, admin: &Client, errors: &[String], why: &str) {
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(why), "{errors:?}");
    batch(conn, &["ROLLBACK"]).await;
    assert_eq!(count(admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// Sends `steps` as one batch (one Sync) and returns the error messages it got.
async fn batch(conn: &mut RawConn, steps: &[&str]) -> Vec<String> {
    synced(conn, steps.iter().flat_map(|sql| step(sql)).collect()).await
}

/// A statement later in an extended-protocol batch gets nothing of its own around it: in
/// an autocommit batch pgbelay made read-write (DDL, a recorded write) a read there could
/// write unguarded, and the batch is one transaction that cannot be split, so it is
/// refused; inside the client's transaction it gets a batch of its own and is guarded
/// there; where the batch stays read-only it passes.
#[tokio::test]
async fn statements_later_in_a_read_write_batch_are_guarded_or_refused() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    admin
        .batch_execute(&format!(
            "GRANT ALL ON orders, side_effects TO {TRUST_USER}; \
             GRANT CREATE ON SCHEMA public TO {TRUST_USER}"
        ))
        .await
        .expect("grants");
    let (mut conn, _) = RawConn::startup(&proxy.addr().to_string(), &db, "pipeline").await;

    // DDL in autocommit turns the read-only default off for its batch.
    let errors = batch(&mut conn, &["CREATE TABLE t1 (id int)", "SELECT sneaky()"]).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("middle of an extended-protocol batch"),
        "{errors:?}"
    );
    // The refused Parse never reached the server: a Bind of it in the next batch is
    // refused by pgbelay, not sent on to whatever the server has under that name.
    let errors = synced(&mut conn, named_step("", None, &[])).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("unnamed prepared statement does not exist")
            && errors[0].contains("statement class: execute of an unknown statement"),
        "{errors:?}"
    );
    // A recorded write inside the client's transaction: the read behind it gets a batch of
    // its own (a Sync changes nothing in a transaction block), in the read-only savepoint.
    batch(&mut conn, &["BEGIN"]).await;
    let errors = batch(
        &mut conn,
        &[
            "UPDATE orders SET total = 1 WHERE id = 1",
            "SELECT sneaky()",
        ],
    )
    .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("read-only transaction"), "{errors:?}");
    batch(&mut conn, &["COMMIT"]).await;
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE total = 1").await,
        0,
        "the transaction was aborted"
    );
    // In autocommit, reads later in a plain batch stay read-only: they pass (and a
    // function's write fails in the server).
    let errors = batch(&mut conn, &["SELECT 1", "SELECT 2"]).await;
    assert!(errors.is_empty(), "{errors:?}");
}

/// A batch sent behind a BEGIN before its answer came: its first statement (a SET, which
/// needs no wrapping) goes on without waiting, so the transaction status is not known when
/// the rest of the batch is judged; a read there is refused rather than judged as if in
/// autocommit (it would run read-write in the BEGIN's transaction).
#[tokio::test]
async fn a_batch_pipelined_behind_begin_is_not_judged_on_a_stale_status() {
    let (_proxy, _db, admin, mut conn) = raw_shop("side_effects", "pipeline").await;
    let mut bytes = query_message("BEGIN");
    bytes.extend(step("SET work_mem = '5MB'"));
    bytes.extend(step("SELECT sneaky()"));
    bytes.extend(frame(b'S', &[]));
    conn.send(&bytes).await;
    conn.read_until(b'Z').await.expect("BEGIN answered");
    let errors: Vec<String> = conn
        .read_until(b'Z')
        .await
        .expect("batch answered")
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| format!("{:?}", m.fields().get(&b'M')))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("middle of an extended-protocol batch"),
        "{errors:?}"
    );
    conn.send(&query_message("COMMIT")).await;
    conn.read_until(b'Z').await.expect("COMMIT answered");
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);
}

/// Parse (when `sql` is given), Bind with text parameters, Execute of the named
/// statement `name`, without Sync: what pgjdbc sends once a statement has reached
/// prepareThreshold.
fn named_step(name: &str, sql: Option<&str>, params: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(sql) = sql {
        let body = [name.as_bytes(), &[0], sql.as_bytes(), &[0, 0, 0]].concat();
        out.extend(frame(b'P', &body));
    }
    let mut bind = [&[0u8][..], name.as_bytes(), &[0, 0, 0]].concat();
    bind.extend_from_slice(&i16::try_from(params.len()).unwrap().to_be_bytes());
    for p in params {
        bind.extend_from_slice(&i32::try_from(p.len()).unwrap().to_be_bytes());
        bind.extend_from_slice(p.as_bytes());
    }
    bind.extend_from_slice(&[0, 0]);
    out.extend(frame(b'B', &bind));
    out.extend(frame(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// Sends `bytes` and a Sync; the errors the batch got (message and detail).
async fn synced(conn: &mut RawConn, mut bytes: Vec<u8>) -> Vec<String> {
    bytes.extend(frame(b'S', &[]));
    conn.send(&bytes).await;
    conn.read_until(b'Z')
        .await
        .expect("batch answered")
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| {
            let fields = m.fields();
            format!("{:?} {:?}", fields.get(&b'M'), fields.get(&b'D'))
        })
        .collect()
}

/// A named write whose Parse and Bind come in one batch (pgjdbc after prepareThreshold)
/// is recorded, in autocommit and in the client's transaction, and so are its later
/// executions; a Parse sent alone records nothing.
#[tokio::test]
async fn a_named_write_parsed_and_bound_in_one_batch_is_recorded() {
    let (_proxy, _db, admin, mut conn) = raw_shop("orders", "jdbc").await;
    let sql = "UPDATE orders SET total = $1 WHERE id = $2";

    let errors = synced(&mut conn, named_step("S_1", Some(sql), &["7", "1"])).await;
    assert!(errors.is_empty(), "{errors:?}");
    let errors = synced(&mut conn, named_step("S_1", None, &["8", "2"])).await;
    assert!(errors.is_empty(), "{errors:?}");
    batch(&mut conn, &["BEGIN"]).await;
    let errors = synced(&mut conn, named_step("S_2", Some(sql), &["9", "3"])).await;
    assert!(errors.is_empty(), "{errors:?}");
    batch(&mut conn, &["COMMIT"]).await;
    let parse_only = frame(b'P', &[b"S_3\0", sql.as_bytes(), &[0, 0, 0]].concat());
    let errors = synced(&mut conn, parse_only).await;
    assert!(errors.is_empty(), "{errors:?}");

    let totals: Vec<(i32, String)> = query_pairs(
        &admin,
        "SELECT id, total::text FROM orders WHERE id <= 3 ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(
        totals,
        [(1, "7.00".into()), (2, "8.00".into()), (3, "9.00".into())]
    );
    // One change row per execution, each with the row's before-image.
    let shadow: String = admin
        .query_one("SELECT DISTINCT shadow_table FROM pgbelay.changes", &[])
        .await
        .expect("one shadow table")
        .get(0);
    let befores: Vec<(i32, String)> = query_pairs(
        &admin,
        &format!(
            "SELECT s.id, s.total::text FROM pgbelay.changes c
                   JOIN {shadow} s ON s.pgbelay_change_id = c.id
                  WHERE s.pgbelay_image = 'before' AND c.statement = $1 AND c.rows = 1
                  ORDER BY c.id"
        ),
        &[&sql],
    )
    .await;
    assert_eq!(
        befores,
        [(1, "1.50".into()), (2, "3.00".into()), (3, "4.50".into())]
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        3
    );
}

/// SQL `PREPARE` and a protocol Parse share one namespace: a statement prepared in SQL and
/// bound through the protocol runs as guarded as when it is executed in SQL (a read in
/// the read-only savepoint, a locking read checked), and a Bind of a statement pgbelay
/// did not see prepared, or saw dropped (`DEALLOCATE ALL`, `DISCARD ALL`), is refused.
#[tokio::test]
async fn statements_prepared_in_sql_are_bound_as_guarded_and_unknown_ones_refused() {
    let (_proxy, _db, admin, mut conn) = raw_shop("orders, side_effects", "bind").await;
    let simple = async |conn: &mut RawConn, sql: &str| {
        conn.send(&query_message(sql)).await;
        let answer = conn.read_until(b'Z').await.expect("answered");
        assert!(!answer.iter().any(|m| m.tag == b'E'), "{sql}: {answer:?}");
    };
    simple(&mut conn, "PREPARE hidden AS SELECT sneaky()").await;
    simple(
        &mut conn,
        "PREPARE locking AS SELECT id FROM orders WHERE id = 1 FOR UPDATE",
    )
    .await;

    simple(&mut conn, "BEGIN").await;
    let errors = synced(&mut conn, named_step("hidden", None, &[])).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("read-only transaction"), "{errors:?}");
    simple(&mut conn, "ROLLBACK").await;
    assert_eq!(count(&admin, "SELECT count(*) FROM side_effects").await, 0);

    simple(&mut conn, "BEGIN").await;
    let errors = synced(&mut conn, named_step("locking", None, &[])).await;
    assert!(errors.is_empty(), "{errors:?}");
    let err = admin
        .batch_execute("SELECT id FROM orders WHERE id = 1 FOR UPDATE NOWAIT")
        .await
        .expect_err("row locked by the bound statement");
    assert_eq!(sqlstate(&err).as_deref(), Some("55P03"), "{}", show(&err));
    simple(&mut conn, "COMMIT").await;

    // The server's words (a driver prepares again on them), pgbelay's detail.
    let unknown = |errors: &[String]| {
        errors.len() == 1
            && errors[0].contains("does not exist")
            && errors[0].contains("statement class: execute of an unknown statement")
    };
    let errors = synced(&mut conn, named_step("nosuch", None, &[])).await;
    assert!(unknown(&errors), "{errors:?}");
    simple(&mut conn, "DEALLOCATE ALL").await;
    let errors = synced(&mut conn, named_step("locking", None, &[])).await;
    assert!(unknown(&errors), "{errors:?}");
    simple(&mut conn, "PREPARE again AS SELECT 1").await;
    simple(&mut conn, "DISCARD ALL").await;
    let errors = synced(&mut conn, named_step("again", None, &[])).await;
    assert!(unknown(&errors), "{errors:?}");
}

/// A database made from template0: no audit schema.
async fn bare_db() -> (String, Client) {
    let db = unique("noaudit");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db} TEMPLATE template0"))
        .await
        .expect("db");
    let direct_db = connect_super(direct(), &db).await;
    direct_db
        .batch_execute(&format!(
            "CREATE TABLE t (id int, v int); INSERT INTO t VALUES (1, 1);
             GRANT ALL ON t TO {TRUST_USER}"
        ))
        .await
        .expect("table");
    (db, direct_db)
}

#[tokio::test]
async fn without_the_audit_schema_a_role_that_cannot_create_it_is_refused_with_a_hint() {
    let proxy = guarded(1000).await;
    let (db, direct_db) = bare_db().await;
    let client = connect(proxy.endpoint(), TRUST_USER, None, &db)
        .await
        .expect("connect");
    let err = client
        .batch_execute("UPDATE t SET v = 2 WHERE id = 1")
        .await
        .expect_err("refused");
    let e = err.as_db_error().expect("db error");
    assert_eq!(e.code().code(), "42501");
    assert!(e.message().starts_with("pgbelay: refused"), "{e:?}");
    assert!(
        e.hint().is_some_and(|h| h.contains("pgbelay init")),
        "{e:?}"
    );
    assert_eq!(count(&direct_db, "SELECT v::int8 FROM t").await, 1);
    assert_eq!(
        count(
            &direct_db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbelay'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_first_write_installs_the_audit_schema_when_the_role_may() {
    let proxy = guarded(1000).await;
    let (db, direct_db) = bare_db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute("UPDATE t SET v = 2 WHERE id = 1")
        .await
        .expect("first write");
    let kinds: Vec<(String, i64)> =
        query_pairs(&direct_db, "SELECT kind, rows FROM pgbelay.changes", &[]).await;
    assert_eq!(kinds, vec![("update".into(), 1)]);
    assert_eq!(count(&direct_db, "SELECT v::int8 FROM t").await, 2);
}

#[tokio::test]
async fn pgbench_tpcb_like_runs_with_zero_failures_and_every_write_recorded() {
    let proxy = guarded(1000).await;
    let db = create_db("tpcb").await;
    let init = pgbench(direct(), &["-i", "-s", "1", "-q", &db]).await;
    assert!(init.success(), "{init:?}");
    // As `pgbelay init` does: the tables are prepared before the first write.
    let prepare = pgbelay::audit::prepare_all_sql("pgbelay").expect("sql");
    connect_super(direct(), &db)
        .await
        .batch_execute(&prepare)
        .await
        .expect("prepare tables");
    let out = pgbench(
        proxy.endpoint(),
        &["-n", "-T", "3", "-c", "4", "-M", "prepared", &db],
    )
    .await;
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("number of failed transactions: 0"),
        "{}",
        out.stdout
    );
    let admin = connect_super(direct(), &db).await;
    let tx: i64 = count(&admin, "SELECT count(*) FROM pgbench_history").await;
    assert!(tx > 0);
    // Per transaction: 3 UPDATEs and 1 INSERT, each one change row.
    let by_kind = admin
        .query(
            "SELECT table_name, kind, count(*), sum(rows)::int8 FROM pgbelay.changes GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .await
        .expect("changes");
    let got: Vec<(String, String, i64, i64)> = by_kind
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("pgbench_accounts".into(), "update".into(), tx, tx),
            ("pgbench_branches".into(), "update".into(), tx, tx),
            ("pgbench_history".into(), "insert".into(), tx, tx),
            ("pgbench_tellers".into(), "update".into(), tx, tx),
        ]
    );
    // Every update change has exactly one before- and one after-image.
    let bad = count(
        &admin,
        r#"SELECT count(*) FROM pgbelay.changes c
            WHERE c.table_name = 'pgbench_branches'
              AND (SELECT count(*) FROM pgbelay."public.pgbench_branches" s
                    WHERE s.pgbelay_change_id = c.id) <> 2"#,
    )
    .await;
    assert_eq!(bad, 0);
}

/// Drivers that send Parse, Bind, Execute and Sync of one statement in one batch (libpq's
/// PQexecParams, pgbench -M extended): DDL in autocommit, transaction control and
/// savepoints inside a transaction run, and the writes between them are recorded.
#[tokio::test]
async fn one_statement_batches_run_ddl_and_transaction_control() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let script = std::env::temp_dir().join(format!("pgbelay-extended-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set id random(1, 10)
CREATE TABLE IF NOT EXISTS scratch (id int);
BEGIN;
SAVEPOINT s;
UPDATE orders SET total = total + 1 WHERE id = :id;
RELEASE SAVEPOINT s;
SELECT total FROM orders WHERE id = :id;
COMMIT;
",
    )
    .expect("script");
    let out = pgbench(
        proxy.endpoint(),
        &[
            "-n",
            "-t",
            "5",
            "-M",
            "extended",
            "-f",
            &script.to_string_lossy(),
            &db,
        ],
    )
    .await;
    let _ = std::fs::remove_file(&script);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("number of failed transactions: 0"),
        "{}",
        out.stdout
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE table_name = 'orders' AND kind = 'update' \
             AND rows = 1"
        )
        .await,
        5
    );
    assert_eq!(
        count(&admin, r#"SELECT count(*) FROM pgbelay."public.orders""#).await,
        10
    );
}

#[tokio::test]
async fn partitioned_tables_and_many_types_are_recorded_exactly_through_the_proxy() {
    let proxy = guarded(1000).await;
    let db = create_db("writes_types").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('calm', 'busy');
             CREATE TABLE p (id int, region text, n numeric(12,4), doc jsonb, raw bytea,
                             tags text[], at timestamptz, u uuid, m mood, deleted_at timestamptz,
                             PRIMARY KEY (id, region)) PARTITION BY LIST (region);
             CREATE TABLE p_eu PARTITION OF p FOR VALUES IN ('eu');
             CREATE TABLE p_us PARTITION OF p FOR VALUES IN ('us');
             INSERT INTO p VALUES
               (1, 'eu', 1.2345, '{\"a\": [1, 2]}', '\\x00ff', '{x,\"y z\"}', '2026-01-02 03:04:05.678901+00',
                'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'calm', NULL),
               (2, 'us', -0.0001, 'null', '', '{}', 'infinity', NULL, 'busy', NULL);",
        )
        .await
        .expect("schema");
    let client = connect_super(proxy.endpoint(), &db).await;
    // One statement across both partitions, then a soft delete in one of them.
    client
        .batch_execute(
            "UPDATE p SET n = n * 2, tags = array_append(tags, 'new') WHERE id IN (1, 2)",
        )
        .await
        .unwrap_or_else(|e| panic!("update: {}", show(&e)));
    client
        .batch_execute("DELETE FROM p WHERE region = 'us'")
        .await
        .unwrap_or_else(|e| panic!("delete: {}", show(&e)));
    let changes = admin
        .query(
            "SELECT id, kind, table_name, rows, shadow_table FROM pgbelay.changes ORDER BY id",
            &[],
        )
        .await
        .expect("changes");
    let summary: Vec<(String, String, i64)> = changes
        .iter()
        .map(|r| (r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        summary,
        [
            ("update".to_string(), "p".to_string(), 2),
            ("delete".to_string(), "p".to_string(), 1)
        ]
    );
    // The before-images hold exactly the values the rows had, type for type.
    let shadow: String = changes[0].get(4);
    let first: i64 = changes[0].get(0);
    let same = count(
        &admin,
        &format!(
            "SELECT count(*) FROM {shadow} s JOIN (VALUES
               (1, 'eu', 1.2345::numeric(12,4), '{{\"a\": [1, 2]}}'::jsonb, '\\x00ff'::bytea, '{{x,\"y z\"}}'::text[],
                '2026-01-02 03:04:05.678901+00'::timestamptz, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 'calm'::mood),
               (2, 'us', -0.0001, 'null', '', '{{}}', 'infinity', NULL, 'busy')) v(id, region, n, doc, raw, tags, at, u, m)
             ON (s.id, s.region) = (v.id, v.region)
             WHERE s.pgbelay_change_id = {first} AND s.pgbelay_image = 'before'
               AND s.n = v.n AND s.doc = v.doc AND s.raw = v.raw AND s.tags = v.tags AND s.at = v.at
               AND s.u IS NOT DISTINCT FROM v.u AND s.m = v.m"
        ),
    )
    .await;
    assert_eq!(same, 2);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM p_us WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_prepared_soft_delete_describes_and_returns_like_a_delete() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    // tokio-postgres prepares (Parse + Describe) before it executes: the description is
    // the rewritten UPDATE's, which must be the DELETE's.
    let statement = client
        .prepare("DELETE FROM orders WHERE id = $1 RETURNING id, customer")
        .await
        .unwrap_or_else(|e| panic!("prepare: {}", show(&e)));
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "customer"]);
    assert_eq!(statement.params(), [tokio_postgres::types::Type::INT4]);
    let rows = client.query(&statement, &[&3i32]).await.expect("execute");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 3);
    // Executed twice: the second finds the row already soft-deleted, as a DELETE would.
    assert!(
        client
            .query(&statement, &[&3i32])
            .await
            .expect("again")
            .is_empty()
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE kind = 'delete'"
        )
        .await,
        1
    );
}

/// Sends `data` through tokio-postgres' `copy_in` (Bind, Execute, Sync; the data; CopyDone,
/// Sync): the rows copied, or the error; a panic if no answer comes.
async fn copy_in(
    client: &Client,
    sql: &str,
    data: &'static [u8],
) -> Result<u64, tokio_postgres::Error> {
    use futures_util::SinkExt;
    let copy = async {
        let sink = client.copy_in(sql).await?;
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from_static(data)).await?;
        sink.as_mut().finish().await
    };
    tokio::time::timeout(HANG_GUARD, copy)
        .await
        .unwrap_or_else(|_| panic!("{sql}: no answer"))
}

/// COPY FROM STDIN through the extended protocol (tokio-postgres `copy_in`): the server
/// ignores the Sync sent behind the Execute while it reads the copy data, and answers the
/// client's Sync after CopyDone; pgbelay's statements after the write (the COMMIT in
/// autocommit) wait for that answer instead of landing in the copy data. Recorded in
/// autocommit and in the client's transaction; a failing copy leaves the session usable.
#[tokio::test]
async fn copy_from_stdin_through_the_extended_protocol_is_recorded() {
    let proxy = guarded(1000).await;
    let (db, admin) = shop().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let copy = "COPY orders (id, customer) FROM STDIN";
    assert_eq!(
        copy_in(&client, copy, b"50\tx\n51\ty\n")
            .await
            .expect("autocommit"),
        2
    );
    client.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(
        copy_in(&client, copy, b"52\tz\n")
            .await
            .expect("in a transaction"),
        1
    );
    client.batch_execute("COMMIT").await.expect("commit");
    let err = copy_in(&client, copy, b"not a number\tz\n")
        .await
        .expect_err("bad data");
    assert_eq!(sqlstate(&err).as_deref(), Some("22P02"), "{}", show(&err));
    // The session goes on: a read, and a recorded write.
    assert_eq!(simple_rows(&client, "SELECT 1").await, 1);
    client
        .execute("UPDATE orders SET total = 3 WHERE id = 50", &[])
        .await
        .expect("update");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE id BETWEEN 50 AND 52"
        )
        .await,
        3
    );
    let recorded: Vec<(String, i32)> = query_pairs(
        &admin,
        "SELECT kind, rows::int FROM pgbelay.changes ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(
        recorded,
        [
            ("insert".to_string(), 2),
            ("insert".to_string(), 1),
            ("update".to_string(), 1)
        ]
    );
}
