//! Undo, the recycle bin and the trail's readers (SPEC §B6, §B11; `pgbelay changes`, `show`,
//! `undo`). Writes go through the live proxy where the proxy records them; what only an
//! approval allows (hard DELETE, TRUNCATE, DROP) is recorded over a direct superuser
//! connection exactly as the proxy sends it: `begin_statement` with the token, the
//! statement (or `recycle_table`), in one transaction. Everything is checked on the rows.

mod common;

use common::*;
use pgbelay::audit::undo::{self, ConflictReason, UndoError, UndoOptions};
use pgbelay::audit::{StatementMeta, begin_statement_sql, end_statement_sql};
use tokio_postgres::Client;

const AUDIT: &str = "pgbelay";

/// The newest change that is not part of another.
async fn last_change(client: &Client) -> i64 {
    count(
        client,
        "SELECT max(id) FROM pgbelay.changes WHERE parent_id IS NULL",
    )
    .await
}

/// Runs `statement` as an approved, recorded write (as the proxy does with a token) and
/// returns the change id.
async fn approved(client: &Client, table: &str, statement: &str) -> i64 {
    let meta = StatementMeta {
        table: Some(table.into()),
        statement: statement.into(),
        approval: Some(unique("token")),
        approved_by: Some("alice".into()),
        reason: Some("test".into()),
        max_rows: None,
        ..StatementMeta::default()
    };
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query_one(&begin_statement_sql(AUDIT, &meta).expect("sql"), &[])
        .await
        .expect("begin_statement");
    client
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {}", show(&e)));
    let id: Option<i64> = client
        .query_one(&end_statement_sql(AUDIT).expect("sql"), &[])
        .await
        .expect("end_statement")
        .get(0);
    client.batch_execute("COMMIT").await.expect("commit");
    id.expect("a recorded change")
}

/// An approved `DROP TABLE table` as the proxy runs it: into the recycle bin.
async fn drop_to_bin(client: &Client, table: &str) -> Result<i64, tokio_postgres::Error> {
    let meta = StatementMeta {
        table: None,
        statement: format!("DROP TABLE {table}"),
        kind: Some("drop".into()),
        approval: Some(unique("token")),
        max_rows: None,
        ..StatementMeta::default()
    };
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .query_one(&begin_statement_sql(AUDIT, &meta).expect("sql"), &[])
            .await?;
        let id: i64 = client
            .query_one(
                "SELECT pgbelay.recycle_table($1::text::regclass)",
                &[&table],
            )
            .await?
            .get(0);
        Ok(id)
    }
    .await;
    client
        .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await?;
    result
}

/// An undo of `id` with `--force`.
async fn forced(client: &Client, id: i64) -> undo::UndoReport {
    let options = UndoOptions {
        force: true,
        ..UndoOptions::default()
    };
    undo::undo(client, AUDIT, id, options)
        .await
        .unwrap_or_else(|e| panic!("forced undo of {id}: {e:?}"))
}

/// The conflicts an undo of `id` is refused with, as printed.
async fn conflicts_of(client: &Client, id: i64) -> Vec<String> {
    match undo(client, id).await {
        Err(UndoError::Conflicts(report)) => {
            report.conflicts.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected conflicts, got {other:?}"),
    }
}

async fn undo(client: &Client, id: i64) -> Result<undo::UndoReport, UndoError> {
    undo::undo(client, AUDIT, id, UndoOptions::default()).await
}

/// A database with `orders` (soft-delete column) and `items` under ON DELETE CASCADE; a
/// superuser client through the proxy and one direct.
async fn shop(proxy: &TestProxy) -> (String, Client, Client) {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, total numeric(10,2),
                                  deleted_at timestamptz);
             CREATE TABLE items (id int PRIMARY KEY,
                                 order_id int NOT NULL REFERENCES orders ON DELETE CASCADE,
                                 sku text, deleted_at timestamptz);
             INSERT INTO orders SELECT g, 'paid', g * 10 FROM generate_series(1, 5) g;
             INSERT INTO items SELECT g, (g + 1) / 2, 'sku' || g FROM generate_series(1, 6) g;",
        )
        .await
        .expect("schema");
    let through = connect_super(proxy.endpoint(), &db).await;
    (db, through, admin)
}

const ORDERS: &str =
    "SELECT (id, status, total, deleted_at IS NOT NULL)::text FROM orders ORDER BY id";
const ITEMS: &str =
    "SELECT (id, order_id, sku, deleted_at IS NOT NULL)::text FROM items ORDER BY id";

#[tokio::test]
async fn insert_update_and_soft_delete_are_undone() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    let original = texts(&admin, ORDERS).await;

    through
        .batch_execute("INSERT INTO orders VALUES (6, 'new', 1), (7, 'new', 2)")
        .await
        .expect("insert");
    let insert = last_change(&admin).await;
    through
        .batch_execute("UPDATE orders SET status = 'refunded', total = 0 WHERE id IN (2, 3)")
        .await
        .expect("update");
    let update = last_change(&admin).await;
    through
        .batch_execute("DELETE FROM orders WHERE id = 5")
        .await
        .expect("soft delete");
    let delete = last_change(&admin).await;
    assert_eq!(
        texts(
            &admin,
            "SELECT kind FROM pgbelay.changes WHERE parent_id IS NULL ORDER BY id"
        )
        .await,
        vec!["insert", "update", "delete"]
    );

    // The soft-deleted row comes back.
    let report = undo(&admin, delete).await.expect("undo delete");
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].rows, Some(1));
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, deleted_at IS NULL)::text FROM orders WHERE id = 5"
        )
        .await,
        vec!["(5,t)"]
    );
    // The updated rows get their old values.
    undo(&admin, update).await.expect("undo update");
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, status, total)::text FROM orders WHERE id IN (2, 3) ORDER BY id"
        )
        .await,
        vec!["(2,paid,20.00)", "(3,paid,30.00)"]
    );
    // The inserted rows go.
    undo(&admin, insert).await.expect("undo insert");
    assert_eq!(texts(&admin, ORDERS).await, original);
}

/// An upsert is one change (its updated rows') with its inserted rows as a part: one undo
/// takes the inserted rows away and gives the updated ones their old values.
#[tokio::test]
async fn an_upsert_is_undone_whole() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    let original = texts(&admin, ORDERS).await;
    through
        .batch_execute(
            "INSERT INTO orders VALUES (2, 'upserted', 0), (9, 'new', 9) \
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, total = EXCLUDED.total",
        )
        .await
        .expect("upsert");
    let top = last_change(&admin).await;
    assert_eq!(
        texts(
            &admin,
            &format!(
                "SELECT kind FROM pgbelay.changes WHERE id = {top} OR parent_id = {top} ORDER BY id"
            )
        )
        .await,
        vec!["update", "insert"]
    );
    undo(&admin, top).await.expect("undo the upsert");
    assert_eq!(texts(&admin, ORDERS).await, original);
}

#[tokio::test]
async fn soft_delete_cascade_children_come_back() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    let orders = texts(&admin, ORDERS).await;
    let items = texts(&admin, ITEMS).await;
    through
        .batch_execute("DELETE FROM orders WHERE id IN (1, 2)")
        .await
        .expect("soft delete");
    let id = last_change(&admin).await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM items WHERE deleted_at IS NOT NULL"
        )
        .await,
        4,
        "the cascade soft-deleted the children"
    );
    let report = undo(&admin, id).await.expect("undo");
    let tables: Vec<(&str, Option<i64>)> = report
        .steps
        .iter()
        .map(|s| (s.table.as_str(), s.rows))
        .collect();
    assert_eq!(
        tables,
        vec![("public.orders", Some(2)), ("public.items", Some(4))]
    );
    assert_eq!(texts(&admin, ORDERS).await, orders);
    assert_eq!(texts(&admin, ITEMS).await, items);
}

#[tokio::test]
async fn hard_delete_and_truncate_come_back_with_identity_and_generated_columns() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE lines (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                 n int NOT NULL, doubled int GENERATED ALWAYS AS (n * 2) STORED,
                                 note text);
             CREATE TABLE tags (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tag text);
             INSERT INTO lines (n, note) SELECT g, 'line ' || g FROM generate_series(1, 4) g;
             INSERT INTO tags (tag) VALUES ('a'), ('b');",
        )
        .await
        .expect("schema");
    let lines = "SELECT (id, n, doubled, note)::text FROM lines ORDER BY id";
    let original = texts(&admin, lines).await;

    let delete = approved(&admin, "lines", "DELETE FROM lines WHERE n IN (2, 3)").await;
    assert_eq!(count(&admin, "SELECT count(*) FROM lines").await, 2);
    let report = undo(&admin, delete).await.expect("undo hard delete");
    assert_eq!(report.steps[0].action, undo::Action::Insert);
    assert!(
        report.steps[0].sql.contains("OVERRIDING SYSTEM VALUE"),
        "{}",
        report.steps[0].sql
    );
    assert!(
        !report.steps[0].sql.contains("\"doubled\""),
        "{}",
        report.steps[0].sql
    );
    assert_eq!(texts(&admin, lines).await, original);

    let truncate = approved(&admin, "lines", "TRUNCATE lines").await;
    assert_eq!(count(&admin, "SELECT count(*) FROM lines").await, 0);
    undo(&admin, truncate).await.expect("undo truncate");
    assert_eq!(texts(&admin, lines).await, original);
    // The identity sequence was not set back: new rows do not collide with restored ones.
    admin
        .batch_execute("INSERT INTO lines (n) VALUES (9)")
        .await
        .expect("insert after undo");
    assert_eq!(
        texts(&admin, "SELECT (id, doubled)::text FROM lines WHERE n = 9").await,
        vec!["(5,18)"]
    );

    // BY DEFAULT identity: restored with its old ids too.
    let truncate = approved(&admin, "tags", "TRUNCATE tags").await;
    undo(&admin, truncate).await.expect("undo truncate tags");
    assert_eq!(
        texts(&admin, "SELECT (id, tag)::text FROM tags ORDER BY id").await,
        vec!["(1,a)", "(2,b)"]
    );
}

/// `SELECT (last_value, is_called)` of a sequence, as text.
async fn sequence_at(client: &Client, sequence: &str) -> String {
    texts(
        client,
        &format!("SELECT (last_value, is_called)::text FROM {sequence}"),
    )
    .await
    .remove(0)
}

/// An approved `TRUNCATE … RESTART IDENTITY` restarts the identity (and serial) sequences;
/// undoing it brings the rows back with their ids, so the undo moves each sequence past
/// them: the next row does not collide. A dry run says so but leaves the sequences where
/// they are (setval is not rolled back with the transaction).
#[tokio::test]
async fn undo_of_truncate_restart_identity_moves_the_sequences_past_the_restored_rows() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE audit_notes (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                                       note text);
             CREATE TABLE serial_notes (id serial PRIMARY KEY, note text);
             INSERT INTO audit_notes (note) VALUES ('a'), ('b'), ('c');
             INSERT INTO serial_notes (note) VALUES ('a'), ('b'), ('c');",
        )
        .await
        .expect("schema");

    let truncate = approved(
        &admin,
        "audit_notes",
        "TRUNCATE audit_notes RESTART IDENTITY",
    )
    .await;
    let restarted = sequence_at(&admin, "audit_notes_id_seq").await;
    assert_eq!(restarted, "(1,f)");

    let dry = undo::undo(
        &admin,
        AUDIT,
        truncate,
        UndoOptions {
            dry_run: true,
            ..UndoOptions::default()
        },
    )
    .await
    .expect("dry run");
    assert_eq!(
        sequence_at(&admin, "audit_notes_id_seq").await,
        restarted,
        "a dry run leaves the sequence alone"
    );
    let moves: Vec<String> = dry.sequences.iter().map(ToString::to_string).collect();
    assert_eq!(
        moves,
        vec![
            "sequence public.audit_notes_id_seq (public.audit_notes.id) would move from 1 to 3, \
             past the restored rows (not in a dry run: setval cannot be rolled back)"
        ]
    );
    assert!(!dry.sequences[0].moved);

    let report = undo(&admin, truncate).await.expect("undo truncate");
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, note)::text FROM audit_notes ORDER BY id"
        )
        .await,
        vec!["(1,a)", "(2,b)", "(3,c)"]
    );
    assert_eq!(
        report
            .sequences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "sequence public.audit_notes_id_seq (public.audit_notes.id) moved from 1 to 3, \
             past the restored rows"
        ]
    );
    assert!(report.sequences[0].moved);
    admin
        .batch_execute("INSERT INTO audit_notes (note) VALUES ('x')")
        .await
        .unwrap_or_else(|e| panic!("insert after undo: {}", show(&e)));
    assert_eq!(
        texts(&admin, "SELECT id::text FROM audit_notes WHERE note = 'x'").await,
        vec!["4"]
    );

    // A serial column's sequence, restarted the same way.
    let truncate = approved(
        &admin,
        "serial_notes",
        "TRUNCATE serial_notes RESTART IDENTITY",
    )
    .await;
    undo(&admin, truncate).await.expect("undo truncate serial");
    admin
        .batch_execute("INSERT INTO serial_notes (note) VALUES ('x')")
        .await
        .unwrap_or_else(|e| panic!("insert after undo: {}", show(&e)));
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, note)::text FROM serial_notes ORDER BY id"
        )
        .await,
        vec!["(1,a)", "(2,b)", "(3,c)", "(4,x)"]
    );

    // A hard DELETE from a partition, whose rows take their ids from the partitioned
    // parent's identity sequence, reset since.
    admin
        .batch_execute(
            "CREATE TABLE parted (id int GENERATED BY DEFAULT AS IDENTITY, k int, note text,
                                  PRIMARY KEY (id, k)) PARTITION BY LIST (k);
             CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
             INSERT INTO parted (k, note) VALUES (1, 'a'), (1, 'b');",
        )
        .await
        .expect("partitioned");
    let delete = approved(&admin, "parted_1", "DELETE FROM parted_1").await;
    admin
        .batch_execute("SELECT setval('parted_id_seq', 1, false)")
        .await
        .expect("reset");
    let report = undo(&admin, delete)
        .await
        .expect("undo delete from partition");
    assert_eq!(
        report
            .sequences
            .iter()
            .map(|m| (m.sequence.as_str(), m.column.as_str(), m.to))
            .collect::<Vec<_>>(),
        vec![("public.parted_id_seq", "public.parted_1.id", 2)]
    );
    admin
        .batch_execute("INSERT INTO parted (k, note) VALUES (1, 'x')")
        .await
        .unwrap_or_else(|e| panic!("insert after undo: {}", show(&e)));
    assert_eq!(
        texts(&admin, "SELECT (id, note)::text FROM parted ORDER BY id").await,
        vec!["(1,a)", "(2,b)", "(3,x)"]
    );
}

/// Undo moves a sequence only forward, and only an ascending one: a sequence already past
/// the restored rows stays where it is, a descending one is left alone, and one whose
/// MAXVALUE is below a restored value is left with a warning (setval would fail).
#[tokio::test]
async fn undo_never_moves_a_sequence_back_nor_a_descending_one() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE ahead (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
             CREATE TABLE down (id int GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY -1 START WITH -1)
                                PRIMARY KEY, v text);
             INSERT INTO ahead (v) VALUES ('a'), ('b'), ('c');
             INSERT INTO down (v) VALUES ('a'), ('b'), ('c');
             SELECT setval('ahead_id_seq', 100);",
        )
        .await
        .expect("schema");
    let delete = approved(&admin, "ahead", "DELETE FROM ahead WHERE id = 2").await;
    let report = undo(&admin, delete).await.expect("undo delete");
    assert_eq!(report.sequences, vec![]);
    assert_eq!(sequence_at(&admin, "ahead_id_seq").await, "(100,t)");

    let truncate = approved(&admin, "down", "TRUNCATE down RESTART IDENTITY").await;
    let report = undo(&admin, truncate).await.expect("undo truncate");
    assert_eq!(report.sequences, vec![]);
    assert_eq!(sequence_at(&admin, "down_id_seq").await, "(-1,f)");
    assert_eq!(
        texts(&admin, "SELECT id::text AS v FROM down ORDER BY id").await,
        vec!["-3", "-2", "-1"]
    );

    // A restored value beyond the sequence's MAXVALUE: left, with a warning.
    admin
        .batch_execute(
            "CREATE TABLE capped (id int GENERATED BY DEFAULT AS IDENTITY (MAXVALUE 5) PRIMARY KEY);
             INSERT INTO capped VALUES (DEFAULT), (9);",
        )
        .await
        .expect("capped");
    let truncate = approved(&admin, "capped", "TRUNCATE capped RESTART IDENTITY").await;
    let report = undo(&admin, truncate).await.expect("undo truncate capped");
    assert_eq!(report.sequences, vec![]);
    assert_eq!(
        report.warnings,
        vec![
            "sequence public.capped_id_seq (public.capped.id) is not moved past the restored \
             value 9: that is beyond its MAXVALUE"
        ]
    );
    assert_eq!(sequence_at(&admin, "capped_id_seq").await, "(1,f)");
    assert_eq!(count(&admin, "SELECT count(*) FROM capped").await, 2);
}

/// An approved hard DELETE: the rows PostgreSQL's ON DELETE actions changed in other tables
/// (CASCADE two levels down and through a table referencing itself, SET NULL) are parts of
/// its change, so undoing it brings every one of them back, parents before children; and
/// undoing that undo deletes them again, children before parents.
#[tokio::test]
async fn hard_delete_cascades_are_part_of_the_change_and_come_back() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE accounts (id int PRIMARY KEY,
                                    customer_id int REFERENCES customers ON DELETE CASCADE,
                                    parent_id int REFERENCES accounts ON DELETE CASCADE);
             CREATE TABLE entries (id int PRIMARY KEY,
                                   account_id int NOT NULL REFERENCES accounts ON DELETE CASCADE,
                                   amount numeric);
             CREATE TABLE notes (id int PRIMARY KEY,
                                 customer_id int REFERENCES customers ON DELETE SET NULL, body text);
             INSERT INTO customers VALUES (1, 'ada'), (2, 'bob'), (3, 'cy');
             INSERT INTO accounts VALUES (10, 1, NULL), (11, 1, NULL), (12, NULL, 10),
                                         (13, NULL, 12), (20, 2, NULL);
             INSERT INTO entries VALUES (100, 10, 1.5), (101, 12, 2), (102, 13, 3),
                                        (103, 20, 4), (104, 11, 5);
             INSERT INTO notes VALUES (1, 1, 'called'), (2, 2, 'paid'), (3, NULL, 'misc');",
        )
        .await
        .expect("schema");
    let tables = [
        "SELECT (c.*)::text FROM customers c ORDER BY id",
        "SELECT (a.*)::text FROM accounts a ORDER BY id",
        "SELECT (e.*)::text FROM entries e ORDER BY id",
        "SELECT (n.*)::text FROM notes n ORDER BY id",
    ];
    let before = contents(&admin, &tables).await;

    let top = approved(
        &admin,
        "customers",
        "DELETE FROM customers WHERE id IN (1, 3)",
    )
    .await;
    assert_eq!(count(&admin, "SELECT count(*) FROM accounts").await, 1);
    assert_eq!(count(&admin, "SELECT count(*) FROM entries").await, 1);
    let after = contents(&admin, &tables).await;
    // end_statement names the DELETE's own change; everything else it did hangs under it.
    let parts = texts(
        &admin,
        &format!(
            "SELECT format('%s %s %s %s', table_name, kind, rows, parent_id) FROM pgbelay.changes \
              WHERE id >= {top} ORDER BY id"
        ),
    )
    .await;
    assert_eq!(
        parts,
        vec![
            "customers delete 2 ".to_string(),
            format!("notes update 1 {top}"),
            format!("accounts delete 4 {top}"),
            format!("entries delete 4 {top}"),
        ]
    );

    let report = undo(&admin, top).await.expect("undo hard delete");
    let steps: Vec<(&str, undo::Action)> = report
        .steps
        .iter()
        .map(|s| (s.table.as_str(), s.action))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("public.customers", undo::Action::Insert),
            ("public.notes", undo::Action::Update),
            ("public.accounts", undo::Action::Insert),
            ("public.entries", undo::Action::Insert),
        ]
    );
    assert_eq!(contents(&admin, &tables).await, before);

    // Undoing the undo deletes the rows again. A row added since that references one of
    // them is a conflict (the cascade would take it); the rows the undo itself brought
    // back are not.
    let undo_id = report.undo_id.expect("recorded");
    admin
        .batch_execute("INSERT INTO entries VALUES (105, 12, 6)")
        .await
        .expect("a new entry");
    match undo(&admin, undo_id).await {
        Err(UndoError::Conflicts(report)) => {
            let conflicts: Vec<String> = report
                .conflicts
                .iter()
                .map(|c| format!("{} {:?} {:?}", c.table, c.key, c.reason))
                .collect();
            assert_eq!(
                conflicts,
                vec![format!(
                    "public.accounts {:?} {:?}",
                    vec![("id".to_string(), Some("12".to_string()))],
                    ConflictReason::Referenced {
                        by: "public.entries".into(),
                        rows: 1,
                        on_delete: "CASCADE".into()
                    }
                )]
            );
        }
        other => panic!("expected one conflict, got {other:?}"),
    }
    admin
        .batch_execute("DELETE FROM entries WHERE id = 105")
        .await
        .expect("the new entry goes");
    undo(&admin, undo_id).await.expect("undo the undo");
    assert_eq!(contents(&admin, &tables).await, after);
}

/// A recycled table lets go of the tables it referenced: their rows can be deleted (its
/// ON DELETE CASCADE no longer reaches into the bin) and TRUNCATE … CASCADE no longer
/// reaches it. Its foreign key comes back with it, NOT VALID when rows it referenced went
/// meanwhile (with a warning), validated otherwise.
#[tokio::test]
async fn a_recycled_table_lets_go_of_its_parents_and_gets_its_foreign_key_back() {
    let proxy = TestProxy::start().await;
    let (_db, _through, admin) = shop(&proxy).await;
    let items = texts(&admin, ITEMS).await;
    let fk = "SELECT format('%s %s', conname, convalidated) FROM pg_constraint \
              WHERE conrelid = to_regclass('public.items') AND contype = 'f'";
    assert_eq!(texts(&admin, fk).await, ["items_order_id_fkey t"]);

    let dropped = drop_to_bin(&admin, "items").await.expect("recycle");
    admin
        .batch_execute("DELETE FROM orders WHERE id = 3")
        .await
        .expect("a parent of recycled rows can go");
    let report = undo(&admin, dropped).await.expect("restore");
    assert_eq!(
        texts(&admin, ITEMS).await,
        items,
        "the bin's rows were not reached"
    );
    assert_eq!(texts(&admin, fk).await, ["items_order_id_fkey f"]);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0]
            .starts_with("foreign key items_order_id_fkey of public.items is back NOT VALID"),
        "{}",
        report.warnings[0]
    );

    // Without orphans the key comes back validated.
    admin
        .batch_execute("DELETE FROM items WHERE order_id = 3; ALTER TABLE items VALIDATE CONSTRAINT items_order_id_fkey")
        .await
        .expect("fixed");
    let dropped = drop_to_bin(&admin, "items").await.expect("recycle again");
    let report = undo(&admin, dropped).await.expect("restore again");
    assert_eq!(texts(&admin, fk).await, ["items_order_id_fkey t"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let err = admin
        .batch_execute("INSERT INTO items VALUES (99, 999, 'x')")
        .await
        .expect_err("the key holds");
    assert_eq!(sqlstate(&err).as_deref(), Some("23503"));
}

#[tokio::test]
async fn drop_goes_to_the_recycle_bin_and_comes_back_whole() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE public.orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                         code serial UNIQUE, n int CHECK (n >= 0));
             CREATE INDEX orders_n_idx ON public.orders (n);
             INSERT INTO public.orders (n) VALUES (1), (2), (3);
             CREATE TABLE app.orders (id int PRIMARY KEY, n int);
             INSERT INTO app.orders VALUES (10, 10);",
        )
        .await
        .expect("schema");

    let first = drop_to_bin(&admin, "public.orders").await.expect("recycle");
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pg_class WHERE relname = 'orders' AND relnamespace = 'public'::regnamespace").await,
        0,
        "public.orders is gone"
    );
    // A new public.orders, and app.orders, go to the bin too: no name collides there.
    admin
        .batch_execute(
            "CREATE TABLE public.orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                         code serial UNIQUE, n int);
             CREATE INDEX orders_n_idx ON public.orders (n);
             INSERT INTO public.orders (n) VALUES (7);",
        )
        .await
        .expect("second table");
    let second = drop_to_bin(&admin, "public.orders")
        .await
        .expect("recycle again");
    let third = drop_to_bin(&admin, "app.orders")
        .await
        .expect("recycle app.orders");
    let change: (String, String, i64) = {
        let r = admin
            .query_one(
                "SELECT kind, table_schema || '.' || table_name, rows FROM pgbelay.changes WHERE id = $1",
                &[&first],
            )
            .await
            .expect("drop change");
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(change, ("drop".into(), "public.orders".into(), 3));
    let in_bin = texts(
        &admin,
        "SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
          WHERE c.relnamespace = 'pgbelay_trash'::regnamespace ORDER BY 1",
    )
    .await;
    for n in [first, second] {
        for name in [
            format!("S orders_code_seq~{n}"),
            format!("S orders_id_seq~{n}"),
            format!("i orders_code_key~{n}"),
            format!("i orders_n_idx~{n}"),
            format!("i orders_pkey~{n}"),
            format!("r orders~{n}"),
        ] {
            assert!(in_bin.contains(&name), "{name} not in {in_bin:?}");
        }
    }
    assert!(in_bin.contains(&format!("r orders~{third}")), "{in_bin:?}");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.trash WHERE restored_by IS NULL"
        )
        .await,
        3
    );

    // Undo the first drop: its name is free again, so it comes back with everything.
    let report = undo(&admin, first).await.expect("undo drop");
    assert_eq!(report.steps[0].action, undo::Action::Restore);
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, code, n)::text FROM public.orders ORDER BY id"
        )
        .await,
        vec!["(1,1,1)", "(2,2,2)", "(3,3,3)"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = 'public.orders'::regclass ORDER BY 1"
        )
        .await,
        vec!["orders_code_key", "orders_n_idx", "orders_pkey"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.orders'::regclass ORDER BY 1"
        )
        .await,
        vec!["orders_code_key", "orders_n_check", "orders_pkey"]
    );
    let err = admin
        .batch_execute("INSERT INTO public.orders (n) VALUES (-1)")
        .await
        .expect_err("the CHECK constraint is back");
    assert_eq!(sqlstate(&err).as_deref(), Some("23514"));
    // serial and identity sequences are back, owned, and continue where they were (the
    // failed insert above took 4 from both).
    admin
        .batch_execute("INSERT INTO public.orders (n) VALUES (4)")
        .await
        .expect("insert");
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, code)::text FROM public.orders WHERE n = 4"
        )
        .await,
        vec!["(5,5)"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT pg_get_serial_sequence('public.orders', 'code') || ' ' || pg_get_serial_sequence('public.orders', 'id')"
        )
        .await,
        vec!["public.orders_code_seq public.orders_id_seq"]
    );

    // The second copy cannot come back while the first holds the name.
    let err = undo(&admin, second).await.expect_err("name taken");
    match &err {
        UndoError::Refused { code, message, .. } => {
            assert_eq!(code, "42P07");
            assert!(
                message.starts_with("pgbelay: refused: cannot restore public.orders"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        count(
            &admin,
            &format!("SELECT count(*) FROM pgbelay_trash.\"orders~{second}\"")
        )
        .await,
        1,
        "the refused restore left the copy in the bin"
    );
    // app.orders comes back to its own schema.
    undo(&admin, third).await.expect("undo app.orders");
    assert_eq!(
        texts(&admin, "SELECT (id, n)::text FROM app.orders").await,
        vec!["(10,10)"]
    );

    // Undo of the restore: the table goes back to the bin (a new drop), and out again.
    let restore = report.undo_id.expect("recorded");
    let again = undo(&admin, restore).await.expect("undo the restore");
    assert_eq!(again.steps[0].action, undo::Action::Recycle);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pg_class WHERE relname = 'orders' AND relnamespace = 'public'::regnamespace").await,
        0
    );
    let redrop = count(&admin, "SELECT max(change_id) FROM pgbelay.trash").await;
    assert_eq!(
        count(
            &admin,
            &format!("SELECT count(*) FROM pgbelay_trash.\"orders~{redrop}\"")
        )
        .await,
        4
    );
    undo(&admin, again.undo_id.expect("recorded"))
        .await
        .expect("and back");
    assert_eq!(count(&admin, "SELECT count(*) FROM public.orders").await, 4);
}

#[tokio::test]
async fn drops_with_dependents_or_of_the_wrong_tables_are_refused() {
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE parent (id int PRIMARY KEY);
             CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
             CREATE TABLE seen (id int PRIMARY KEY);
             CREATE VIEW seen_view AS SELECT * FROM seen;
             CREATE TABLE parted (id int) PARTITION BY RANGE (id);
             CREATE TABLE part1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
             CREATE TABLE owned (id int PRIMARY KEY);
             CREATE TEMP TABLE scratch (id int);
             ALTER TABLE owned OWNER TO {TRUST_USER};"
        ))
        .await
        .expect("schema");
    for (table, says) in [
        (
            "parent",
            "constraint child_parent_id_fkey on table public.child depends on it",
        ),
        ("seen", "view public.seen_view depends on it"),
        ("parted", "partition public.part1 depends on it"),
        (
            "part1",
            "it is a partition or inheritance child of public.parted",
        ),
        ("scratch", "is a temporary table"),
        ("pgbelay.changes", "belongs to the audit schema"),
    ] {
        let err = drop_to_bin(&admin, table).await.expect_err(table);
        let e = err.as_db_error().expect("server error");
        assert_eq!(e.code().code(), "42501", "{table}: {e:?}");
        assert!(
            e.message().starts_with("pgbelay: refused: "),
            "{table}: {}",
            e.message()
        );
        assert!(e.message().contains(says), "{table}: {}", e.message());
        assert_eq!(e.detail(), Some("statement class: drop"));
    }
    assert!(
        drop_to_bin(&admin, "parent")
            .await
            .expect_err("again")
            .as_db_error()
            .and_then(|e| e.hint())
            .is_some_and(|h| h.contains("--hard"))
    );
    // Only the owner may recycle a table.
    let stranger = connect(direct(), TRUST_USER, None, &db)
        .await
        .expect("connect");
    admin
        .batch_execute(&format!("GRANT ALL ON child TO {TRUST_USER}"))
        .await
        .expect("grant");
    let err = drop_to_bin(&stranger, "child")
        .await
        .expect_err("not the owner");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    drop_to_bin(&stranger, "owned")
        .await
        .expect("the owner may");
    assert_eq!(count(&admin, "SELECT count(*) FROM pgbelay.trash").await, 1);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pg_tables WHERE tablename IN ('parent', 'child', 'seen', 'parted', 'part1')").await,
        5,
        "nothing refused was moved"
    );
    // The bin's bookkeeping is append-only.
    let err = admin
        .batch_execute("UPDATE pgbelay.trash SET table_name = 'x'")
        .await
        .expect_err("append-only");
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
}

/// A column added after the change (ADD COLUMN … DEFAULT fills every row) differs from
/// the change's images (NULL there): a conflict, which says the column has no value in any
/// image of the change; --force restores the change's own columns.
#[tokio::test]
async fn a_column_added_since_is_named_as_such() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
        .await
        .expect("update");
    let id = last_change(&admin).await;
    through
        .batch_execute("ALTER TABLE orders ADD COLUMN vip boolean NOT NULL DEFAULT false")
        .await
        .expect("add column");
    let listed = conflicts_of(&admin, id).await;
    assert_eq!(
        listed,
        [
            "public.orders (id=1): changed since (columns vip); vip has no value in any image of the change: \
          added to the table since? (--force restores the others)"
        ]
    );
    forced(&admin, id).await;
    assert_eq!(
        texts(
            &admin,
            "SELECT format('%s %s', status, vip) FROM orders WHERE id = 1"
        )
        .await,
        ["paid f"]
    );
}

#[tokio::test]
async fn conflicts_are_listed_and_force_goes_ahead() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("UPDATE orders SET status = 'shipped' WHERE id IN (1, 2, 3)")
        .await
        .expect("update");
    let id = last_change(&admin).await;
    // Since then: row 2 changed in another column, row 3 is gone.
    admin
        .batch_execute("UPDATE orders SET total = 99 WHERE id = 2; DELETE FROM items WHERE order_id = 3; DELETE FROM orders WHERE id = 3")
        .await
        .expect("later writes");
    let before = texts(&admin, ORDERS).await;
    let err = undo(&admin, id).await.expect_err("conflicts");
    let UndoError::Conflicts(report) = err else {
        panic!("expected conflicts, got {err:?}");
    };
    let listed: Vec<String> = report.conflicts.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        vec![
            "public.orders (id=2): changed since (columns total)",
            "public.orders (id=3): row is gone",
        ]
    );
    assert_eq!(report.conflicts[1].reason, ConflictReason::Gone);
    assert_eq!(
        texts(&admin, ORDERS).await,
        before,
        "a refused undo changes nothing"
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE kind = 'undo'"
        )
        .await,
        0
    );

    let report = forced(&admin, id).await;
    assert!(report.forced);
    assert_eq!(report.conflicts.len(), 2);
    // The changed column is set back; the later change to total stays; row 3 stays gone.
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, status, total)::text FROM orders WHERE id <= 3 ORDER BY id"
        )
        .await,
        vec!["(1,paid,10.00)", "(2,paid,99.00)"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT statement FROM pgbelay.changes WHERE kind = 'undo' AND parent_id IS NULL"
        )
        .await,
        vec![format!("pgbelay undo {id} --force")]
    );
}

/// Undoing an INSERT deletes the row; rows added since in a table that references it
/// would go with it (ON DELETE CASCADE) though the change never made them, so they are a
/// conflict, listed, and nothing is deleted.
#[tokio::test]
async fn rows_referencing_an_inserted_row_are_a_conflict() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("INSERT INTO orders VALUES (6, 'new', 60)")
        .await
        .expect("insert");
    let id = last_change(&admin).await;
    admin
        .batch_execute("INSERT INTO items VALUES (7, 6, 'a'), (8, 6, 'b')")
        .await
        .expect("children added later");
    let listed = conflicts_of(&admin, id).await;
    assert_eq!(
        listed,
        vec![
            "public.orders (id=6): referenced by 2 row(s) of public.items (ON DELETE CASCADE would delete them)"
        ]
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM items WHERE order_id = 6").await,
        2
    );
    assert_eq!(
        count(&admin, "SELECT count(*) FROM orders WHERE id = 6").await,
        1
    );
}

/// A plain parent's primary key does not cover its inheritance children, and an UPDATE
/// of the parent records their rows too: matching them by key could restore one row's
/// values into another, so the undo is refused (a partitioned table's key is unique
/// across its partitions, and its undo works).
#[tokio::test]
async fn tables_with_inheritance_children_are_refused() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    admin
        .batch_execute(
            "CREATE TABLE parent (id int PRIMARY KEY, v text);
             CREATE TABLE child () INHERITS (parent);",
        )
        .await
        .expect("schema");
    through
        .batch_execute("INSERT INTO parent VALUES (1, 'parent')")
        .await
        .expect("insert parent");
    through
        .batch_execute("INSERT INTO child VALUES (1, 'child')")
        .await
        .expect("insert child");
    through
        .batch_execute("UPDATE parent SET v = v || 'x' WHERE id = 1")
        .await
        .expect("update both");
    let id = last_change(&admin).await;
    let err = undo(&admin, id).await.expect_err("refused");
    assert!(matches!(err, UndoError::Inherited { .. }), "{err:?}");
    assert_eq!(
        texts(&admin, "SELECT v FROM parent ORDER BY v").await,
        vec!["childx", "parentx"]
    );
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("DELETE FROM orders WHERE id = 3")
        .await
        .expect("soft delete");
    let id = last_change(&admin).await;
    let orders = texts(&admin, ORDERS).await;
    let items = texts(&admin, ITEMS).await;
    let changes = count(&admin, "SELECT count(*) FROM pgbelay.changes").await;
    let report = undo::undo(
        &admin,
        AUDIT,
        id,
        UndoOptions {
            dry_run: true,
            ..UndoOptions::default()
        },
    )
    .await
    .expect("dry run");
    assert!(report.dry_run);
    let steps: Vec<(&str, Option<i64>)> = report
        .steps
        .iter()
        .map(|s| (s.table.as_str(), s.rows))
        .collect();
    assert_eq!(
        steps,
        vec![("public.orders", Some(1)), ("public.items", Some(2))]
    );
    assert!(
        report.steps[0]
            .sql
            .starts_with("UPDATE \"public\".\"orders\" t SET")
    );
    assert_eq!(texts(&admin, ORDERS).await, orders);
    assert_eq!(texts(&admin, ITEMS).await, items);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM pgbelay.changes").await,
        changes
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM pgbelay.undos").await, 0);
}

/// An undo waits for its table locks at most its lock timeout: a session left in a
/// transaction that wrote to the table makes it give up, naming the table and that
/// session, with nothing changed (also from the command line); once the session ends, the
/// same undo goes through.
#[tokio::test]
async fn undo_gives_up_on_a_locked_table_after_its_lock_timeout() {
    let proxy = TestProxy::start().await;
    let (db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
        .await
        .expect("update");
    let id = last_change(&admin).await;
    let holder = connect_super(direct(), &db).await;
    let holder_pid = i64::from(
        holder
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get::<_, i32>(0),
    );
    for sql in [
        "SET application_name = 'holder'",
        "BEGIN",
        "UPDATE orders SET status = 'x' WHERE id = 2",
    ] {
        holder.batch_execute(sql).await.expect("hold a write lock");
    }
    let orders = texts(&admin, ORDERS).await;
    let short = UndoOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        ..UndoOptions::default()
    };

    let err = undo::undo(&admin, AUDIT, id, short)
        .await
        .expect_err("the table is locked");
    let UndoError::LockTimeout {
        change,
        table,
        blockers,
        ..
    } = &err
    else {
        panic!("expected a lock timeout, got {err:?}");
    };
    assert_eq!((*change, table.as_str()), (id, "public.orders"));
    let blocker = blockers
        .iter()
        .find(|b| i64::from(b.pid) == holder_pid)
        .unwrap_or_else(|| panic!("pid {holder_pid} not among {blockers:?}"));
    assert_eq!(blocker.holds, vec!["RowExclusiveLock"]);
    assert_eq!(blocker.application_name.as_deref(), Some("holder"));
    assert_eq!(blocker.state.as_deref(), Some("idle in transaction"));
    assert_eq!(
        blocker.query.as_deref(),
        Some("UPDATE orders SET status = 'x' WHERE id = 2")
    );
    let message = err.to_string();
    assert!(
        message.contains("public.orders") && message.contains(&format!("pid {holder_pid}")),
        "{message}"
    );
    assert_eq!(texts(&admin, ORDERS).await, orders, "nothing changed");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pgbelay.changes WHERE kind = 'undo'"
        )
        .await,
        0
    );

    let url = direct().url(superuser(), Some(SUPERUSER_PASSWORD), &db);
    let cases = [
        (
            "300ms",
            1,
            vec![
                "table public.orders stayed locked".to_string(),
                format!("pid {holder_pid} holds RowExclusiveLock"),
            ],
        ),
        ("soon", 2, vec!["--lock-timeout".to_string()]),
    ];
    for (timeout, code, says) in cases {
        let id = id.to_string();
        let out = pgbelay(&["undo", "--db", &url, &id, "--lock-timeout", timeout]).await;
        assert_eq!(out.code, Some(code), "{out:?}");
        assert!(says.iter().all(|s| out.stderr.contains(s)), "{out:?}");
    }
    assert_eq!(texts(&admin, ORDERS).await, orders, "nothing changed");

    holder.batch_execute("COMMIT").await.expect("commit");
    undo::undo(&admin, AUDIT, id, short)
        .await
        .expect("undo once the lock is free");
    assert_eq!(
        texts(
            &admin,
            "SELECT (id, status)::text FROM orders WHERE id <= 2 ORDER BY id"
        )
        .await,
        vec!["(1,paid)", "(2,x)"]
    );
}

#[tokio::test]
async fn an_undo_is_recorded_and_can_be_undone() {
    let proxy = TestProxy::start().await;
    let (_db, through, admin) = shop(&proxy).await;
    through
        .batch_execute("DELETE FROM orders WHERE id = 1")
        .await
        .expect("soft delete");
    let id = last_change(&admin).await;
    let deleted = texts(&admin, ORDERS).await;
    let deleted_items = texts(&admin, ITEMS).await;

    let first = undo(&admin, id).await.expect("undo");
    let undo_id = first.undo_id.expect("recorded");
    let recorded = texts(
        &admin,
        &format!(
            "SELECT kind || ' ' || table_name || ' ' || coalesce(parent_id::text, '-') || ' ' || statement
               FROM pgbelay.changes WHERE id = {undo_id} OR parent_id = {undo_id} ORDER BY id"
        ),
    )
    .await;
    assert_eq!(
        recorded,
        vec![
            format!("undo orders - pgbelay undo {id}"),
            format!("undo orders {undo_id} pgbelay undo {id}"),
            format!("undo items {undo_id} pgbelay undo {id}"),
        ]
    );
    assert_eq!(
        count(&admin, &format!("SELECT pgbelay.undone_by({id})")).await,
        undo_id
    );
    // Undone already: refused, unless forced.
    let err = undo(&admin, id).await.expect_err("already undone");
    assert!(
        matches!(err, UndoError::AlreadyUndone { change, by } if change == id && by == undo_id),
        "{err:?}"
    );

    // Undo of the undo: deleted again, children too.
    let second = undo(&admin, undo_id).await.expect("undo of undo");
    assert_eq!(texts(&admin, ORDERS).await, deleted);
    assert_eq!(texts(&admin, ITEMS).await, deleted_items);
    // The first undo no longer stands, so the change can be undone again.
    assert!(second.undo_id.is_some());
    undo(&admin, id).await.expect("undo again");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn tables_without_key_and_lost_columns_are_refused_clearly() {
    let proxy = TestProxy::start().await;
    let db = create_db("undo").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE loose (v int); INSERT INTO loose VALUES (1);
             CREATE TABLE wide (id int PRIMARY KEY, a int, b int); INSERT INTO wide VALUES (1, 1, 1);",
        )
        .await
        .expect("schema");
    let through = connect_super(proxy.endpoint(), &db).await;
    through
        .batch_execute("UPDATE loose SET v = 2 WHERE v = 1")
        .await
        .expect("update");
    let err = undo(&admin, last_change(&admin).await)
        .await
        .expect_err("no key");
    assert!(matches!(err, UndoError::NoPrimaryKey { .. }), "{err:?}");
    assert!(err.to_string().contains("has no primary key"), "{err}");

    through
        .batch_execute("UPDATE wide SET a = 2, b = 2 WHERE id = 1")
        .await
        .expect("update");
    let id = last_change(&admin).await;
    admin
        .batch_execute("ALTER TABLE wide DROP COLUMN b")
        .await
        .expect("drop column");
    let err = undo(&admin, id).await.expect_err("lost column");
    let UndoError::LostColumns { columns, .. } = &err else {
        panic!("expected lost columns, got {err:?}");
    };
    assert_eq!(columns, &vec!["b".to_string()]);
    let report = forced(&admin, id).await;
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert_eq!(
        texts(&admin, "SELECT (id, a)::text FROM wide").await,
        vec!["(1,1)"]
    );
}

/// Runs the `pgbelay` binary.
async fn pgbelay(args: &[&str]) -> ProcOutput {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
        .args(args)
        .env_remove("PGBELAY_DB")
        .env_remove("PGBELAY_AUDIT_SCHEMA")
        .output()
        .await
        .expect("run pgbelay");
    ProcOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

#[tokio::test]
async fn cli_changes_show_and_undo() {
    let proxy = TestProxy::start().await;
    let (db, through, admin) = shop(&proxy).await;
    let url = direct().url(superuser(), Some(SUPERUSER_PASSWORD), &db);
    through
        .batch_execute("UPDATE orders SET status = 'late' WHERE id IN (1, 2)")
        .await
        .expect("update");
    let update = last_change(&admin).await;
    through
        .batch_execute("DELETE FROM orders WHERE id = 3")
        .await
        .expect("soft delete");
    let delete = last_change(&admin).await;

    // changes: an aligned table, newest first.
    let out = pgbelay(&["changes", "--db", &url]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID  AT"), "{}", out.stdout);
    let kind_col = lines[0].find("KIND").expect("KIND column");
    let table_col = lines[0].find("TABLE").expect("TABLE column");
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l[kind_col..table_col].trim())
        .collect();
    assert_eq!(kinds, vec!["delete", "delete", "update"], "{}", out.stdout);
    assert!(
        lines[1].contains(&format!("part of {delete}")),
        "{}",
        out.stdout
    );
    // --json, filters.
    let out = pgbelay(&[
        "changes",
        "--db",
        &url,
        "--json",
        "--table",
        "public.orders",
        "--since",
        "1h",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let ids: Vec<i64> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![delete, update]);
    assert_eq!(list[0]["kind"], "delete");
    assert_eq!(list[0]["table_name"], "orders");
    assert_eq!(
        list[1]["statement"],
        "UPDATE orders SET status = 'late' WHERE id IN (1, 2)"
    );
    let out = pgbelay(&[
        "changes",
        "--db",
        &url,
        "--json",
        "--table",
        "items",
        "--user",
        superuser(),
    ])
    .await;
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{}", out.stdout);
    assert_eq!(list[0]["parent_id"].as_i64(), Some(delete));
    let out = pgbelay(&["changes", "--db", &url, "--json", "--user", "nobody"]).await;
    assert_eq!(out.stdout.trim(), "[]");
    let out = pgbelay(&["changes", "--db", &url, "--since", "not a time"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");

    // show: the diff.
    let out = pgbelay(&["show", "--db", &url, &update.to_string()]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.starts_with(&format!(
            "change {update}: update on public.orders (2 rows)\n"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("rows (by id):\n~ id=1  updated\n    status: paid → late\n~ id=2  updated\n    status: paid → late\n"), "{}", out.stdout);
    let out = pgbelay(&["show", "--db", &url, &update.to_string(), "--rows", "1"]).await;
    assert!(out.stdout.ends_with("… and 1 more row\n"), "{}", out.stdout);
    let out = pgbelay(&["show", "--db", &url, &delete.to_string(), "--json"]).await;
    let detail: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(detail["kind"], "delete");
    assert_eq!(detail["key_columns"], serde_json::json!(["id"]));
    assert_eq!(detail["diff"][0]["op"], "update");
    assert_eq!(detail["diff"][0]["key"], serde_json::json!([["id", "3"]]));
    assert_eq!(detail["diff"][0]["columns"][0]["column"], "deleted_at");
    assert_eq!(
        detail["diff"][0]["columns"][0]["before"],
        serde_json::Value::Null
    );
    assert_eq!(detail["children"][0]["table_name"], "items");
    assert_eq!(detail["more_rows"], 0);
    let out = pgbelay(&["show", "--db", &url, "999999"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no change 999999"), "{out:?}");

    // undo: dry run, conflict, done, again.
    let out = pgbelay(&["undo", "--db", &url, &delete.to_string(), "--dry-run"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("dry run: undo of change {delete} would run")),
        "{}",
        out.stdout
    );
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
    admin
        .batch_execute("UPDATE orders SET status = 'early' WHERE id = 2")
        .await
        .expect("later write");
    let out = pgbelay(&["undo", "--db", &url, &update.to_string()]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("conflict: public.orders (id=2): changed since (columns status)"),
        "{out:?}"
    );
    let out = pgbelay(&["undo", "--db", &url, &update.to_string(), "--json"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let refused: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["conflicts"][0]["reason"], "changed");
    assert_eq!(
        refused["conflicts"][0]["columns"],
        serde_json::json!(["status"])
    );
    let out = pgbelay(&["undo", "--db", &url, &delete.to_string(), "--json"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let done: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(done["ok"], true);
    assert_eq!(done["steps"][0]["action"], "update");
    assert_eq!(done["steps"][0]["rows"], 1);
    let undo_id = done["undo_id"].as_i64().expect("undo id");
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL"
        )
        .await,
        0
    );
    let out = pgbelay(&["undo", "--db", &url, &delete.to_string()]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("already undone by change {undo_id}")),
        "{out:?}"
    );
    let out = pgbelay(&["undo", "--db", &url, "999999"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = pgbelay(&["undo", "--db", &url]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
}
