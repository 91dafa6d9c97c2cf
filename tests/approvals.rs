//! Approval tokens through the live proxy (issue 5, SPEC §B5, §B6): a token lifts exactly
//! the statement it was signed for, once, before it expires; the approved statement is
//! still recorded with the token's id, approver and reason. Checked on a direct connection.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use pgbelay::approval::{Approval, Secret};
use pgbelay::config::Settings;
use pgbelay::sql::{Dialect, canonical};
use tokio_postgres::Client;

const SECRET: &str = "incident-secret";

async fn proxy_with(secret: Option<&str>, max_rows: u64) -> TestProxy {
    let settings = Settings {
        approval_secret: secret.map(str::to_string),
        max_rows,
        ..Settings::default()
    };
    TestProxy::start_with(cluster(), Arc::new(pgbelay::policy::Guard::new(&settings))).await
}

async fn proxy() -> TestProxy {
    proxy_with(Some(SECRET), 1000).await
}

/// A token for `sql` as `pgbelay approve` mints it (canonical text, 15 minutes).
fn token(sql: &str, hard: bool) -> String {
    token_at(sql, hard, SystemTime::now(), Duration::from_secs(900))
}

fn token_at(sql: &str, hard: bool, now: SystemTime, ttl: Duration) -> String {
    let statement = canonical(sql, Dialect::default()).expect("canonical");
    Approval::new(
        statement,
        now,
        ttl,
        "alice".into(),
        Some("incident 42".into()),
        hard,
    )
    .mint(&Secret::new(SECRET))
}

/// The token's id (as recorded in `changes.approval`).
fn token_id(token: &str) -> String {
    pgbelay::approval::verify(Some(&Secret::new(SECRET)), token, SystemTime::now())
        .expect("valid token")
        .id
}

/// A database with `items(id, n, deleted_at)` (5 rows), `logs(id, msg)` (3 rows, no
/// soft-delete column) and an index on items.
async fn db() -> (String, Client) {
    let db = create_db("approvals").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL, deleted_at timestamptz);
             INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 5) g;
             CREATE INDEX items_n ON items (n);
             CREATE TABLE logs (id int PRIMARY KEY, msg text);
             INSERT INTO logs SELECT g, 'line ' || g FROM generate_series(1, 3) g;",
        )
        .await
        .expect("schema");
    (db, admin)
}

#[tokio::test]
async fn approved_truncate_runs_once_and_records_its_rows() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let t = token("TRUNCATE logs", false);

    // Without a token: refused, nothing happens.
    let err = refused(&client, "TRUNCATE logs").await;
    assert!(
        err.hint()
            .unwrap_or("")
            .contains("pgbelay approve --sql 'TRUNCATE logs'")
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 3);

    client
        .batch_execute(&format!("/* pgbelay:approve={t} */ truncate   LOGS"))
        .await
        .unwrap_or_else(|e| panic!("approved TRUNCATE: {}", show(&e)));
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 0);
    let change = admin
        .query_one(
            "SELECT id, kind, rows, approval, approved_by, reason, shadow_table
               FROM pgbelay.changes WHERE table_name = 'logs'",
            &[],
        )
        .await
        .expect("one change");
    assert_eq!(change.get::<_, String>(1), "truncate");
    assert_eq!(change.get::<_, i64>(2), 3);
    assert_eq!(change.get::<_, Option<String>>(3), Some(token_id(&t)));
    assert_eq!(change.get::<_, Option<String>>(4).as_deref(), Some("alice"));
    assert_eq!(
        change.get::<_, Option<String>>(5).as_deref(),
        Some("incident 42")
    );
    let shadow: String = change.get(6);
    let id: i64 = change.get(0);
    let msgs: Vec<String> = admin
        .query(
            &format!(
                "SELECT msg FROM {shadow} WHERE pgbelay_change_id = $1 AND pgbelay_image = 'before' ORDER BY id"
            ),
            &[&id],
        )
        .await
        .expect("images")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(msgs, ["line 1", "line 2", "line 3"]);
    let used = admin
        .query_one(
            "SELECT change_id, approved_by FROM pgbelay.approvals WHERE token_id = $1",
            &[&token_id(&t)],
        )
        .await
        .expect("approval claimed");
    assert_eq!(used.get::<_, Option<i64>>(0), Some(id));
    // The statement is recorded as sent, the spent token shortened to its id.
    let statement: String = admin
        .query_one(
            "SELECT statement FROM pgbelay.changes WHERE id = $1",
            &[&id],
        )
        .await
        .expect("statement")
        .get(0);
    assert_eq!(
        statement,
        format!(
            "/* pgbelay:approve=<token {}> */ truncate   LOGS",
            token_id(&t)
        )
    );

    // Replay: the same token again is refused by the server-side claim.
    admin
        .batch_execute("INSERT INTO logs VALUES (9, 'again')")
        .await
        .expect("refill");
    let err = refused(&client, &format!("/* pgbelay:approve={t} */ TRUNCATE logs")).await;
    assert!(
        err.message().contains("already been used"),
        "{}",
        err.message()
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 1);
}

/// An approved TRUNCATE … CASCADE records the rows of every table it empties (tables
/// pgbelay had never recorded included) as one change, the first table's, with the others
/// as its parts; undoing it fills them all again, referenced tables first, whichever table
/// the statement named first.
#[tokio::test]
async fn approved_truncate_cascade_is_one_change_and_undo_fills_every_table() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    admin
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text);
             CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers);
             CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
             INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');
             INSERT INTO orders VALUES (10, 1), (11, 2), (12, 2);
             INSERT INTO lines VALUES (100, 10, 'a'), (101, 11, 'b'), (102, 12, 'c'), (103, 12, 'd');",
        )
        .await
        .expect("schema");
    let client = connect_super(proxy.endpoint(), &db).await;
    let tables = [
        "SELECT (c.*)::text FROM customers c ORDER BY id",
        "SELECT (o.*)::text FROM orders o ORDER BY id",
        "SELECT (l.*)::text FROM lines l ORDER BY id",
    ];
    let before = contents(&admin, &tables).await;

    for (statement, first) in [
        ("TRUNCATE customers CASCADE", "customers"),
        ("TRUNCATE lines, orders, customers", "lines"),
    ] {
        let t = token(statement, false);
        client
            .batch_execute(&format!("/* pgbelay:approve={t} */ {statement}"))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {}", show(&e)));
        assert_eq!(
            contents(&admin, &tables).await,
            vec![Vec::<String>::new(); 3],
            "{statement}"
        );
        let top = count(
            &admin,
            "SELECT max(id) FROM pgbelay.changes WHERE parent_id IS NULL",
        )
        .await;
        let parts = texts(
            &admin,
            &format!(
                "SELECT format('%s %s %s', table_name, rows, parent_id) FROM pgbelay.changes \
                  WHERE id = {top} OR parent_id = {top} ORDER BY table_name"
            ),
        )
        .await;
        let expected = |table: &str, rows: i64| {
            let parent = if table == first {
                String::new()
            } else {
                top.to_string()
            };
            format!("{table} {rows} {parent}")
        };
        assert_eq!(
            parts,
            vec![
                expected("customers", 2),
                expected("lines", 4),
                expected("orders", 3)
            ],
            "{statement}"
        );
        pgbelay::audit::undo::undo(&admin, "pgbelay", top, Default::default())
            .await
            .unwrap_or_else(|e| panic!("undo {statement}: {e:?}"));
        assert_eq!(contents(&admin, &tables).await, before, "{statement}");
    }
}

#[tokio::test]
async fn each_failed_check_is_named() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;

    let expired = token_at(
        "TRUNCATE logs",
        false,
        SystemTime::now() - Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={expired} */ TRUNCATE logs"),
    )
    .await;
    assert!(err.message().contains("expired at"), "{}", err.message());
    assert_eq!(err.detail(), Some("statement class: approval"));

    // One flipped character anywhere in the signature or payload.
    let good = token("TRUNCATE logs", false);
    let mut bytes = good.clone().into_bytes();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(bytes).expect("ascii");
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={tampered} */ TRUNCATE logs"),
    )
    .await;
    assert!(
        err.message().contains("signature does not match") || err.message().contains("malformed"),
        "{}",
        err.message()
    );

    // Signed for another statement: the refusal says which.
    let other = token("TRUNCATE items", false);
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={other} */ TRUNCATE logs"),
    )
    .await;
    assert!(
        err.message()
            .contains("signed for another statement: TRUNCATE items"),
        "{}",
        err.message()
    );
    // The hint's command approves the statement without the spent comment.
    assert_eq!(
        err.hint(),
        Some("Mint a token for exactly this statement: pgbelay approve --sql 'TRUNCATE logs'")
    );

    // A token covers one statement; two in one Query are refused.
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={good} */ TRUNCATE logs; TRUNCATE logs"),
    )
    .await;
    assert!(
        err.message().contains("exactly one statement"),
        "{}",
        err.message()
    );

    // A token cannot lift what loosens the guard.
    let guard = token("SET default_transaction_read_only = off", false);
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={guard} */ SET default_transaction_read_only = off"),
    )
    .await;
    assert_eq!(err.detail(), Some("statement class: guard setting"));

    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 3);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.approvals").await,
        0
    );
}

#[tokio::test]
async fn without_a_secret_no_token_is_accepted() {
    let proxy = proxy_with(None, 1000).await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let t = token("TRUNCATE logs", false);
    let err = refused(&client, &format!("/* pgbelay:approve={t} */ TRUNCATE logs")).await;
    assert!(
        err.message().contains("no approval_secret is configured"),
        "{}",
        err.message()
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 3);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
        .args(["approve", "--sql", "TRUNCATE logs"])
        .env_remove("PGBELAY_APPROVAL_SECRET")
        .env_remove("PGBELAY_APPROVAL_SECRET_FILE")
        .env_remove("PGBELAY_CONFIG")
        .output()
        .await
        .expect("run pgbelay approve");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no approval_secret is configured"));
}

#[tokio::test]
async fn cli_token_approves_the_canonical_statement_only() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let approve = |sql: &'static str, extra: &'static [&'static str]| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
            .args([
                "approve", "--sql", sql, "--by", "bob", "--reason", "cleanup",
            ])
            .args(extra)
            .env("PGBELAY_APPROVAL_SECRET", SECRET)
            .env_remove("PGBELAY_CONFIG")
            .output()
            .await
            .expect("run pgbelay approve");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).expect("utf8");
        stdout.lines().last().expect("a token line").to_string()
    };
    // Case, spacing and comments do not matter.
    let t = approve("update   ITEMS set n = 0 -- all of them", &[]).await;
    client
        .batch_execute(&format!("/* pgbelay:approve={t} */ UPDATE items SET n = 0"))
        .await
        .unwrap_or_else(|e| panic!("approved UPDATE without WHERE: {}", show(&e)));
    assert_eq!(
        count(&admin, "SELECT count(*) FROM items WHERE n = 0").await,
        5
    );
    let by: String = admin
        .query_one(
            "SELECT approved_by FROM pgbelay.changes WHERE kind = 'update'",
            &[],
        )
        .await
        .expect("recorded")
        .get(0);
    assert_eq!(by, "bob");

    // Literals do: a token for id = 1 does not approve id = 2.
    let t = approve("DELETE FROM logs WHERE id = 1", &["--hard"]).await;
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={t} */ DELETE FROM logs WHERE id = 2"),
    )
    .await;
    assert!(
        err.message().contains("another statement"),
        "{}",
        err.message()
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 3);
}

#[tokio::test]
async fn set_form_is_consumed_by_the_next_statement_that_needs_it() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let t = token("TRUNCATE logs", false);
    client
        .batch_execute(&format!("SET pgbelay.approval = '{t}'"))
        .await
        .expect("SET");
    // The token does not reach the server's settings.
    let shown: String = client
        .query_one("SHOW pgbelay.approval", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(shown, "");
    // A read in between does not consume it.
    assert_eq!(count(&client, "SELECT count(*) FROM logs").await, 3);
    client
        .batch_execute("TRUNCATE logs")
        .await
        .unwrap_or_else(|e| panic!("approved by SET: {}", show(&e)));
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 0);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE approval IS NOT NULL"
        )
        .await,
        1
    );
    // Consumed: the next TRUNCATE needs a token of its own.
    refused(&client, "TRUNCATE logs").await;
    // RESET drops a held token.
    let t = token("TRUNCATE items", false);
    client
        .batch_execute(&format!("SET pgbelay.approval = '{t}'; "))
        .await
        .expect("SET");
    client
        .batch_execute("RESET pgbelay.approval")
        .await
        .expect("RESET");
    refused(&client, "TRUNCATE items").await;
    assert_eq!(count(&admin, "SELECT count(*) FROM items").await, 5);
    // A held token meant for another statement is used up by the next one needing a
    // token, and the refusal says so.
    let t = token("TRUNCATE items", false);
    client
        .batch_execute(&format!("SET pgbelay.approval = '{t}'"))
        .await
        .expect("SET");
    let err = refused(&client, "UPDATE items SET n = 0").await;
    assert!(
        err.message()
            .contains("signed for another statement: TRUNCATE items"),
        "{}",
        err.message()
    );
    assert!(
        err.hint()
            .is_some_and(|h| h.contains("The token held with SET pgbelay.approval is used up")),
        "{:?}",
        err.hint()
    );
    refused(&client, "TRUNCATE items").await;
    assert_eq!(count(&admin, "SELECT count(*) FROM items").await, 5);
}

#[tokio::test]
async fn two_proxies_racing_on_one_token_run_it_once() {
    let first = proxy().await;
    let second = proxy().await;
    let (db, admin) = db().await;
    let a = connect_super(first.endpoint(), &db).await;
    let b = connect_super(second.endpoint(), &db).await;
    let sql = format!(
        "/* pgbelay:approve={} */ UPDATE items SET n = n + 1",
        token("UPDATE items SET n = n + 1", false)
    );
    let (ra, rb) = tokio::join!(a.batch_execute(&sql), b.batch_execute(&sql));
    let outcomes = [ra, rb];
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "exactly one proxy runs it: {outcomes:?}");
    let err = outcomes
        .into_iter()
        .find_map(Result::err)
        .expect("one refusal");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    assert!(show(&err).contains("already been used"), "{}", show(&err));
    assert_eq!(count(&admin, "SELECT sum(n) FROM items").await, 150 + 5);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.approvals").await,
        1
    );
}

#[tokio::test]
async fn hard_delete_deletes_and_soft_delete_lifts_only_the_limit() {
    // max_rows 2: deleting all 5 items needs the token.
    let proxy = proxy_with(Some(SECRET), 2).await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;

    // Approved without --hard: still a soft delete, over the limit.
    let t = token("DELETE FROM items", false);
    client
        .batch_execute(&format!("/* pgbelay:approve={t} */ DELETE FROM items"))
        .await
        .unwrap_or_else(|e| panic!("approved soft delete: {}", show(&e)));
    assert_eq!(count(&admin, "SELECT count(*) FROM items").await, 5);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM items WHERE deleted_at IS NOT NULL"
        )
        .await,
        5
    );

    // A table without the soft-delete column: only --hard helps.
    let t = token("DELETE FROM logs WHERE id > 1", false);
    let err = refused(
        &client,
        &format!("/* pgbelay:approve={t} */ DELETE FROM logs WHERE id > 1"),
    )
    .await;
    assert!(
        err.hint().unwrap_or("").contains("--hard"),
        "{:?}",
        err.hint()
    );
    let t = token("DELETE FROM logs WHERE id > 1", true);
    client
        .batch_execute(&format!(
            "/* pgbelay:approve={t} */ DELETE FROM logs WHERE id > 1"
        ))
        .await
        .unwrap_or_else(|e| panic!("approved hard delete: {}", show(&e)));
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 1);
    let row = admin
        .query_one(
            "SELECT kind, rows, shadow_table, id FROM pgbelay.changes WHERE table_name = 'logs'",
            &[],
        )
        .await
        .expect("recorded");
    assert_eq!(row.get::<_, String>(0), "delete");
    assert_eq!(row.get::<_, i64>(1), 2);
    let shadow: String = row.get(2);
    let id: i64 = row.get(3);
    assert_eq!(
        count(
            &admin,
            &format!(
                "SELECT count(*) FROM {shadow} WHERE pgbelay_change_id = {id} AND pgbelay_image = 'before'"
            )
        )
        .await,
        2
    );
}

#[tokio::test]
async fn approved_ddl_runs_and_is_recorded_with_the_token() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let t = token("DROP INDEX items_n", false);
    // tokio-postgres `execute` goes through the extended protocol (Parse/Bind/Execute).
    client
        .execute(
            &format!("/* pgbelay:approve={t} */ DROP INDEX items_n"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("approved DROP INDEX: {}", show(&e)));
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'items_n'"
        )
        .await,
        0
    );
    let row = admin
        .query_one(
            "SELECT kind, table_schema, table_name, approval FROM pgbelay.changes",
            &[],
        )
        .await
        .expect("recorded");
    assert_eq!(row.get::<_, String>(0), "drop");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("public"));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("items_n"));
    assert_eq!(row.get::<_, Option<String>>(3), Some(token_id(&t)));

    // A trigger is named by its table: the change is the table's.
    admin
        .batch_execute(
            "CREATE TRIGGER x AFTER UPDATE ON items FOR EACH STATEMENT \
             EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        )
        .await
        .expect("trigger");
    let t = token("DROP TRIGGER x ON items", false);
    client
        .batch_execute(&format!(
            "/* pgbelay:approve={t} */ DROP TRIGGER x ON items"
        ))
        .await
        .unwrap_or_else(|e| panic!("approved DROP TRIGGER: {}", show(&e)));
    assert_eq!(
        texts(
            &admin,
            "SELECT format('%s %s.%s', kind, table_schema, table_name) FROM pgbelay.changes \
              WHERE statement LIKE '%DROP TRIGGER%'"
        )
        .await,
        ["drop public.items"]
    );
}
/// An approved statement no trigger records (a DO block, a data-modifying CTE) gets its
/// change row first and the rows it changes are parts of it: the token names that change,
/// and undoing it reverses them.
#[tokio::test]
async fn approved_code_is_one_change_with_its_writes_as_parts() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let client = connect_super(proxy.endpoint(), &db).await;
    let before = texts(&admin, "SELECT (i.*)::text FROM items i ORDER BY id").await;
    for (statement, expected) in [
        (
            "DO $$ BEGIN UPDATE items SET n = 0 WHERE id = 1; DELETE FROM logs WHERE id = 1; END $$",
            &["do block - f", "update items t", "delete logs t"][..],
        ),
        (
            "WITH d AS (UPDATE items SET n = n + 1 WHERE id = 2 RETURNING id) SELECT count(*) FROM d",
            &["hidden write items f", "update items t"][..],
        ),
    ] {
        let t = token(statement, false);
        client
            .batch_execute(&format!("/* pgbelay:approve={t} */ {statement}"))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {}", show(&e)));
        let top: i64 = admin
            .query_one(
                "SELECT change_id FROM pgbelay.approvals WHERE token_id = $1",
                &[&token_id(&t)],
            )
            .await
            .expect("approval")
            .get(0);
        let tree = texts(
            &admin,
            &format!(
                "SELECT format('%s %s %s', kind, coalesce(table_name, '-'), coalesce(parent_id = {top}, false)) \
                   FROM pgbelay.changes WHERE id = {top} OR parent_id = {top} ORDER BY id"
            ),
        )
        .await;
        assert_eq!(tree, expected, "{statement}");
        pgbelay::audit::undo::undo(&admin, "pgbelay", top, Default::default())
            .await
            .unwrap_or_else(|e| panic!("undo {statement}: {e:?}"));
        assert_eq!(
            texts(&admin, "SELECT (i.*)::text FROM items i ORDER BY id").await,
            before
        );
    }
    assert_eq!(count(&admin, "SELECT count(*) FROM logs").await, 3);
}

/// RESTART loses a sequence's position (the next INSERT may collide with existing rows):
/// refused without a token, recorded with one.
#[tokio::test]
async fn restarting_a_sequence_needs_a_token() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    admin
        .batch_execute("CREATE SEQUENCE tickets; SELECT setval('tickets', 41)")
        .await
        .expect("sequence");
    let client = connect_super(proxy.endpoint(), &db).await;
    let statement = "ALTER SEQUENCE tickets RESTART WITH 1";
    let err = refused(&client, statement).await;
    assert_eq!(err.detail(), Some("statement class: sequence restart"));
    assert_eq!(count(&admin, "SELECT last_value FROM tickets").await, 41);
    let t = token(statement, false);
    client
        .batch_execute(&format!("/* pgbelay:approve={t} */ {statement}"))
        .await
        .unwrap_or_else(|e| panic!("approved RESTART: {}", show(&e)));
    assert_eq!(count(&admin, "SELECT nextval('tickets')").await, 1);
    assert_eq!(
        texts(
            &admin,
            "SELECT format('%s %s.%s', kind, table_schema, table_name) FROM pgbelay.changes"
        )
        .await,
        ["sequence restart public.tickets"]
    );
}

#[tokio::test]
async fn approved_drop_table_goes_to_the_recycle_bin() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    let t = token("DROP TABLE items", false);
    // psql shows the DROP TABLE tag, as a real DROP would.
    let out = psql_super(
        proxy.endpoint(),
        &db,
        &["-c", &format!("/* pgbelay:approve={t} */ DROP TABLE items")],
    )
    .await;
    assert_eq!(out.stdout.trim(), "DROP TABLE", "{out:?}");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'items'"
        )
        .await,
        0
    );
    // The table, its rows and its index live on in the recycle bin.
    let trashed: String = admin
        .query_one(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'pgbelay_trash' AND c.relkind = 'r'",
            &[],
        )
        .await
        .expect("one table in the recycle bin")
        .get(0);
    assert_eq!(
        count(&admin, &format!("SELECT count(*) FROM {trashed}")).await,
        5
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'pgbelay_trash'"
        )
        .await,
        2
    );
    let row = admin
        .query_one(
            "SELECT kind, table_name, approval, id FROM pgbelay.changes WHERE kind = 'drop'",
            &[],
        )
        .await
        .expect("recorded");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("items"));
    assert_eq!(row.get::<_, Option<String>>(2), Some(token_id(&t)));

    // `pgbelay undo` of that change brings it back, rows and index included.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
        .args([
            "undo",
            "--db",
            &direct().url(superuser(), Some(SUPERUSER_PASSWORD), &db),
        ])
        .arg(row.get::<_, i64>(3).to_string())
        .output()
        .await
        .expect("run pgbelay undo");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(count(&admin, "SELECT count(*) FROM public.items").await, 5);
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'items'"
        )
        .await,
        2
    );

    // --hard really drops.
    let t = token("DROP TABLE logs", true);
    let out = psql_super(
        proxy.endpoint(),
        &db,
        &["-c", &format!("/* pgbelay:approve={t} */ DROP TABLE logs")],
    )
    .await;
    assert_eq!(out.stdout.trim(), "DROP TABLE", "{out:?}");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pg_class WHERE relname LIKE '%logs%' AND relkind = 'r' AND relnamespace <> 'pgbelay'::regnamespace").await,
        0
    );
}

#[tokio::test]
async fn an_older_audit_schema_is_upgraded_by_its_owner_on_first_write() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    // As a version 1 schema looks: no recycle bin function, the old version stamp.
    admin
        .batch_execute(
            "DROP FUNCTION pgbelay.recycle_table(regclass);
             COMMENT ON SCHEMA pgbelay IS 'pgbelay audit schema, version 1';",
        )
        .await
        .expect("downgrade");
    let client = connect_super(proxy.endpoint(), &db).await;
    client
        .batch_execute("UPDATE items SET n = 1 WHERE id = 1")
        .await
        .unwrap_or_else(|e| panic!("write: {}", show(&e)));
    let version: Option<i32> = pgbelay::audit::installed_version(&admin, "pgbelay")
        .await
        .expect("version");
    assert_eq!(version, Some(pgbelay::audit::SCHEMA_VERSION));
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_proc WHERE proname = 'recycle_table' AND pronamespace = 'pgbelay'::regnamespace"
        )
        .await,
        1
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        1
    );
}

#[tokio::test]
async fn several_tables_in_one_drop_and_dependents_are_refused() {
    let proxy = proxy().await;
    let (db, admin) = db().await;
    admin
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
             INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (3);
             CREATE VIEW items_view AS SELECT * FROM items;",
        )
        .await
        .expect("tables");
    let client = connect_super(proxy.endpoint(), &db).await;
    // Two tables in one statement: both go to the recycle bin, one change each.
    let t = token("DROP TABLE IF EXISTS a, b, missing", false);
    client
        .batch_execute(&format!(
            "/* pgbelay:approve={t} */ DROP TABLE IF EXISTS a, b, missing"
        ))
        .await
        .unwrap_or_else(|e| panic!("approved DROP of two tables: {}", show(&e)));
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgbelay_trash'"
        )
        .await,
        2
    );
    // One change per table, the second a part of the first: one undo restores both.
    let drops = texts(
        &admin,
        "SELECT format('%s %s', table_name, coalesce((parent_id - min(id) OVER ())::text, '-')) \
           FROM pgbelay.changes WHERE kind = 'drop' ORDER BY id",
    )
    .await;
    assert_eq!(drops, ["a -", "b 0"]);
    let top = count(
        &admin,
        "SELECT min(id) FROM pgbelay.changes WHERE kind = 'drop'",
    )
    .await;
    pgbelay::audit::undo::undo(&admin, "pgbelay", top, Default::default())
        .await
        .unwrap_or_else(|e| panic!("undo the DROP: {e:?}"));
    assert_eq!(
        count(&admin, "SELECT count(*) FROM a").await
            + count(&admin, "SELECT count(*) FROM b").await,
        3
    );
    // A table a view depends on stays, with or without CASCADE; the hint names --hard.
    for sql in ["DROP TABLE items", "DROP TABLE items CASCADE"] {
        let t = token(sql, false);
        let err = refused(&client, &format!("/* pgbelay:approve={t} */ {sql}")).await;
        assert!(err.message().contains("items_view"), "{}", err.message());
        assert!(
            err.hint().unwrap_or("").contains("--hard"),
            "{:?}",
            err.hint()
        );
    }
    assert_eq!(count(&admin, "SELECT count(*) FROM items").await, 5);
    // The refused statements left their tokens unused.
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.approvals").await,
        1
    );
}
