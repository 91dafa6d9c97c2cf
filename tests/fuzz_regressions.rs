//! Inputs the fuzz targets (fuzz/) found, one test each, through the public API the
//! targets use. The inputs are also in fuzz/corpus/, so the fuzzers replay them.

use pgbelay::policy::{Context, Dialect, Prepared, StatementClass, judge};

fn classes(sql: &str) -> Vec<StatementClass> {
    let prepared = Prepared::new();
    judge(sql, &Context::offline("pgbelay", &prepared))
        .statements
        .into_iter()
        .map(|s| s.class)
        .collect()
}

/// classify: PostgreSQL refuses REFRESH MATERIALIZED VIEW in a read-only transaction;
/// it replaces the view's rows, so it is not a read.
#[test]
fn refresh_materialized_view_is_not_a_read() {
    assert_eq!(
        classes("REFRESH MATERIALIZED VIEW mv"),
        [StatementClass::AdditiveDdl]
    );
}

/// classify: the INTO of a set operation's leftmost SELECT makes the whole statement a
/// SELECT INTO (CREATE TABLE AS), also under EXPLAIN ANALYZE and PREPARE.
#[test]
fn select_into_on_the_left_of_a_union_is_select_into() {
    for sql in [
        "SELECT 1 INTO t UNION SELECT 2",
        "SELECT a INTO t FROM u EXCEPT SELECT b FROM v INTERSECT SELECT 3",
        "EXPLAIN ANALYZE SELECT 1 INTO t UNION SELECT 2",
    ] {
        let got = classes(sql);
        assert!(
            matches!(got.as_slice(), [StatementClass::Irreversible(_)]),
            "{sql}: {got:?}"
        );
    }
    let got = classes("PREPARE p AS SELECT 1 INTO t UNION SELECT 2; EXECUTE p");
    assert!(
        got.iter()
            .all(|c| matches!(c, StatementClass::Irreversible(_))),
        "{got:?}"
    );
}

/// classify: both dialects see the same classes for the fixed cases.
#[test]
fn fixed_cases_hold_without_standard_strings() {
    let prepared = Prepared::new();
    let ctx = Context {
        dialect: Dialect {
            standard_conforming_strings: false,
        },
        ..Context::offline("pgbelay", &prepared)
    };
    let j = judge("SELECT 1 INTO t UNION SELECT 2", &ctx);
    assert!(
        j.statements.iter().all(|s| s.class != StatementClass::Read),
        "{j:?}"
    );
}

/// soft_delete: the deparser prints the parameter `$0` as `?`, which reads back as an
/// operator, so the rewritten UPDATE would have meant something else; the rewrite checks
/// that the condition it carries over reads back as the same tree, and refuses.
#[test]
fn a_rewrite_that_reads_back_differently_is_refused() {
    let sql = "delete from t where id = $0 || x";
    for standard_conforming_strings in [true, false] {
        let dialect = Dialect {
            standard_conforming_strings,
        };
        let rewritten = pgbelay::rewrite::soft_delete(sql, "deleted_at", dialect);
        assert!(rewritten.is_err(), "{rewritten:?}");
    }
    // A parameter that prints back as itself is carried over.
    let ok = pgbelay::rewrite::soft_delete(
        "delete from t where id = $1 || x",
        "deleted_at",
        Dialect::default(),
    );
    assert!(ok.is_ok(), "{ok:?}");
}
