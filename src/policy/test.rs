//! Unit tests of the policy rules; the full corpus is in `tests/policy_corpus.rs`.

use super::*;

fn class_of(sql: &str) -> StatementClass {
    let prepared = Prepared::new();
    let j = judge(sql, &Context::offline("pgbelay", &prepared));
    match j.verdict {
        Verdict::Refuse(r) => StatementClass::Irreversible(r.kind),
        _ => j
            .statements
            .last()
            .map(|s| s.class.clone())
            .unwrap_or(StatementClass::Read),
    }
}

fn refused(sql: &str) -> bool {
    matches!(class_of(sql), StatementClass::Irreversible(_))
}

#[test]
fn reads_and_writes() {
    assert_eq!(class_of("select 'DROP TABLE x'"), StatementClass::Read);
    assert_eq!(class_of(r#"select * from "drop""#), StatementClass::Read);
    assert_eq!(
        class_of("DELETE FROM ONLY t WHERE id = $1"),
        StatementClass::Write(
            WriteKind::Delete,
            QualifiedName {
                schema: None,
                name: "t".into()
            }
        )
    );
    assert!(refused("delete from only t"));
    assert!(refused("update s.t set a = 1"));
}

#[test]
fn hidden_writes() {
    assert!(refused(
        "with a as (with b as (with c as (delete from t where x returning *) select * from c) select * from b) select * from a"
    ));
    assert!(refused("explain analyze delete from t where a = 1"));
    assert!(refused(
        "explain (analyze, buffers) update t set a = 1 where b"
    ));
    assert!(!refused(
        "explain (analyze false) delete from t where a = 1"
    ));
    assert!(!refused("explain (analyze off) delete from t where a = 1"));
    assert!(!refused("explain delete from t where a = 1"));
    assert!(refused(
        "copy (delete from t where a returning *) to stdout"
    ));
    assert!(refused("select * into new_t from t"));
    assert!(!refused("create table new_t as select * from t"));
}

#[test]
fn prepared_statements() {
    let mut prepared = Prepared::new();
    let ctx = Context::offline("pgbelay", &prepared);
    assert!(matches!(
        decide("prepare p as delete from t where a = $1", &ctx),
        Verdict::Refuse(_)
    ));
    assert!(matches!(
        decide("prepare p as select 1; execute p", &ctx),
        Verdict::Allow
    ));
    assert!(matches!(decide("execute p", &ctx), Verdict::Refuse(_)));
    prepared.insert(
        "w".into(),
        StatementClass::Write(
            WriteKind::Insert,
            QualifiedName {
                schema: None,
                name: "t".into(),
            },
        ),
    );
    let ctx = Context::offline("pgbelay", &prepared);
    assert!(matches!(decide("execute w", &ctx), Verdict::Refuse(_)));
    assert!(matches!(
        decide("deallocate w; execute w", &ctx),
        Verdict::Refuse(_)
    ));
}

#[test]
fn guard_settings_everywhere() {
    assert!(refused("set default_transaction_read_only = off"));
    assert!(refused(
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"
    ));
    assert!(refused("set transaction read write"));
    assert!(!refused("set transaction read only"));
    assert!(!refused("set transaction isolation level serializable"));
    assert!(!refused("reset all"));
    assert!(!refused("discard all"));
    assert!(refused("reset all; select 1"));
    assert!(refused("alter role r reset all"));
    assert!(refused("alter database d reset all"));
    assert!(refused("reset session_replication_role"));
    assert!(refused(
        "select 1 where exists (select pg_catalog.set_config('session_replication_role', 'replica', false))"
    ));
    assert!(refused("select set_config($1, 'x', false)"));
    assert!(!refused(
        "select set_config('application_name', 'x', false)"
    ));
    assert!(refused(
        "alter role r set default_transaction_read_only = off"
    ));
    assert!(refused(
        "create function f() returns int language sql set session_replication_role = replica as 'select 1'"
    ));
    assert!(refused("set names 'SJIS'"));
    assert!(!refused("set client_encoding = 'UTF8'"));
    assert!(refused("set search_path = public, pgbelay"));
    assert!(refused("set standard_conforming_strings = off"));
}

#[test]
fn audit_schema_by_parsed_identifier() {
    assert!(refused("insert into pgbelay.changes values (1)"));
    assert!(refused(r#"insert into "pgbelay".changes values (1)"#));
    assert!(refused("insert into PGBELAY.changes values (1)"));
    assert!(!refused(r#"insert into "PGBELAY".changes values (1)"#));
    assert!(refused("create table pgbelay_trash.x (a int)"));
    assert!(refused("alter table pgbelay.changes add column x int"));
    assert!(!refused("select * from pgbelay.changes"));
    let prepared = Prepared::new();
    let ctx = Context {
        audit_schema: "audit",
        ..Context::offline("audit", &prepared)
    };
    assert!(!matches!(
        decide("insert into pgbelay.changes values (1)", &ctx),
        Verdict::Refuse(_)
    ));
}

#[test]
fn capture_triggers_are_left_alone() {
    let capture =
        |what: &str| StatementClass::Irreversible(IrreversibleKind::CaptureTriggers(what.into()));
    for (sql, what) in [
        (
            "alter trigger pgbelay_capture_update on orders rename to mine",
            "renames",
        ),
        ("drop trigger pgbelay_capture_insert on s.orders", "drops"),
        (
            "drop trigger if exists pgbelay_capture_delete on t cascade",
            "drops",
        ),
        (
            "alter table orders disable trigger pgbelay_capture_update",
            "disables",
        ),
        ("alter table orders disable trigger all", "disables"),
        ("alter table only orders disable trigger user", "disables"),
        (
            "alter table orders add column c int, disable trigger all",
            "disables",
        ),
        ("alter table orders enable trigger all", "re-enables"),
        (
            "alter table orders enable replica trigger pgbelay_capture_insert",
            "re-enables",
        ),
    ] {
        assert_eq!(class_of(sql), capture(what), "{sql}");
        assert!(!IrreversibleKind::CaptureTriggers(what.into()).approvable());
    }
    // The client's own triggers, by name, are the client's business.
    assert_eq!(
        class_of("alter table orders disable trigger mine"),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of("alter trigger mine on orders rename to yours"),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of(r#"alter table orders enable trigger "PGBELAY_CAPTURE_X""#),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of("drop trigger mine on orders"),
        StatementClass::Irreversible(IrreversibleKind::Drop)
    );
}

#[test]
fn unsupported_statements_are_named() {
    let message = |sql: &str| {
        let prepared = Prepared::new();
        match judge(sql, &Context::offline("pgbelay", &prepared)).verdict {
            Verdict::Refuse(r) => r.message,
            other => panic!("{sql}: {other:?}"),
        }
    };
    assert_eq!(
        message("security label on table t is 'x'"),
        "pgbelay: refused: pgbelay does not judge SECURITY LABEL statements"
    );
    assert_eq!(
        message("alter event trigger e disable"),
        "pgbelay: refused: pgbelay does not judge ALTER EVENT TRIGGER statements"
    );
    assert_eq!(
        message("reassign owned by a to b"),
        "pgbelay: refused: pgbelay does not judge REASSIGN OWNED statements"
    );
    assert_eq!(
        message("load 'x'"),
        "pgbelay: refused: pgbelay does not judge LOAD statements"
    );
}

#[test]
fn a_tree_too_deep_to_read_is_refused_saying_so() {
    let chain = |n: usize| format!("select id{} from t", " || ',' || id".repeat(n));
    assert_eq!(class_of(&chain(20)), StatementClass::Read);
    let prepared = Prepared::new();
    let Verdict::Refuse(r) = judge(&chain(30), &Context::offline("pgbelay", &prepared)).verdict
    else {
        panic!("a chain of 60 operators is refused");
    };
    assert_eq!(r.kind, IrreversibleKind::Unparseable);
    assert!(
        r.message.contains("nests expressions more deeply"),
        "{}",
        r.message
    );
    assert!(r.hint.contains("concat_ws"), "{}", r.hint);
    assert!(r.hint.len() < 300, "{}", r.hint);
    let Verdict::Refuse(r) = judge("selec 1", &Context::offline("pgbelay", &prepared)).verdict
    else {
        panic!("a syntax error is refused");
    };
    assert!(
        r.hint.starts_with("PostgreSQL's parser says: syntax error"),
        "{}",
        r.hint
    );
}

#[test]
fn restarting_a_sequence_needs_an_approval() {
    let restart = StatementClass::Irreversible(IrreversibleKind::SequenceRestart);
    assert_eq!(class_of("alter sequence s restart"), restart);
    assert_eq!(class_of("alter sequence s restart with 1"), restart);
    assert_eq!(
        class_of("alter table t alter column id restart with 1"),
        restart
    );
    assert_eq!(
        class_of("alter table t alter column id set increment by 2, alter column id restart"),
        restart
    );
    assert!(IrreversibleKind::SequenceRestart.approvable());
    assert_eq!(
        class_of("alter sequence s increment by 2"),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of("alter table t alter column id set increment by 2"),
        StatementClass::AdditiveDdl
    );
}

#[test]
fn inheritance_children_need_an_approval() {
    let inherits = StatementClass::Irreversible(IrreversibleKind::Inherits);
    assert_eq!(
        class_of("create table archive () inherits (orders)"),
        inherits
    );
    assert_eq!(class_of("alter table archive inherit orders"), inherits);
    assert!(IrreversibleKind::Inherits.approvable());
    assert_eq!(
        class_of("create table orders_2024 partition of orders for values from (1) to (10)"),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of("alter table archive no inherit orders"),
        StatementClass::AdditiveDdl
    );
    assert_eq!(
        class_of("create table copy (like orders)"),
        StatementClass::AdditiveDdl
    );
}

#[test]
fn functions() {
    assert!(refused("select pg_catalog.lo_unlink(42)"));
    assert!(refused("select 1 from t where lo_unlink(oid) > 0"));
    assert!(!refused("select pg_cancel_backend(42)"));
}

#[test]
fn encoding_and_parse_errors() {
    let prepared = Prepared::new();
    let ctx = Context {
        client_encoding: "SJIS",
        ..Context::offline("pgbelay", &prepared)
    };
    let Verdict::Refuse(r) = decide("select 1", &ctx) else {
        panic!("SJIS allowed")
    };
    assert!(r.message.contains("UTF8"));
    let ctx = Context {
        client_encoding: "SQL_ASCII",
        ..Context::offline("pgbelay", &prepared)
    };
    assert_eq!(decide("select 1", &ctx), Verdict::Allow);
    let Verdict::Refuse(r) = decide("selec 1", &Context::offline("pgbelay", &prepared)) else {
        panic!()
    };
    assert_eq!(r.kind, IrreversibleKind::Unparseable);
    assert!(r.hint.contains("syntax error"));
}

#[test]
fn whole_query_refused() {
    let prepared = Prepared::new();
    let j = judge(
        "select 1; drop table t; select 2",
        &Context::offline("pgbelay", &prepared),
    );
    let Verdict::Refuse(r) = &j.verdict else {
        panic!()
    };
    assert_eq!(r.statement, "drop table t");
    assert_eq!(r.hint, "pgbelay approve --sql 'drop table t'");
    assert_eq!(j.statements.len(), 3);
}

#[test]
fn never_panics_on_odd_input() {
    let prepared = Prepared::new();
    let ctx = Context::offline("pgbelay", &prepared);
    for sql in [
        "",
        ";",
        "  ",
        "--",
        "/* unterminated",
        "\0",
        "é",
        "select (((((((((((((1)))))))))))))",
        "$$",
        "E'\\",
    ] {
        let _ = decide(sql, &ctx);
    }
    // Nesting deeper than pg_query's decoder allows fails closed instead of overflowing.
    let deep = format!("select {}", vec!["1"; 5000].join("+"));
    assert!(matches!(decide(&deep, &ctx), Verdict::Refuse(_)));
    let deep = format!("select {}1{}", "array[".repeat(3000), "]".repeat(3000));
    let _ = decide(&deep, &ctx);
}
