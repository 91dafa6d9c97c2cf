//! Any text through the soft-delete rewrite: no panic; when it succeeds, the result
//! parses as one UPDATE of the same table whose WHERE keeps the DELETE's condition, and
//! whose FROM, RETURNING and WITH are the DELETE's USING, RETURNING and WITH, compared as
//! trees (so a literal or operator the deparser spells differently must mean the same).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_query::ParserOptions;
use pg_query::protobuf::{Node, node::Node as N};
use pgbelay::policy::Dialect;
use pgbelay::rewrite::soft_delete;
use pgbelay_fuzz::tree::{json, without_locations};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for standard_conforming_strings in [true, false] {
        check(
            sql,
            Dialect {
                standard_conforming_strings,
            },
        );
    }
});

fn options(dialect: Dialect) -> ParserOptions {
    if dialect.standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    }
}

fn one(sql: &str, dialect: Dialect) -> Option<N> {
    let parsed = pg_query::parse(sql, options(dialect)).ok()?;
    match parsed.protobuf.stmts.as_slice() {
        [raw] => raw.stmt.as_ref().and_then(|s| s.node.clone()),
        _ => None,
    }
}

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    without_locations(&json(a)) == without_locations(&json(b))
}

fn check(sql: &str, dialect: Dialect) {
    let Ok(out) = soft_delete(sql, "deleted_at", dialect) else {
        return;
    };
    let Some(N::DeleteStmt(delete)) = one(sql, dialect) else {
        panic!("rewrote something that is not one DELETE: {sql:?}");
    };
    let Some(N::UpdateStmt(update)) = one(&out, dialect) else {
        panic!("rewrite is not one UPDATE: {sql:?} -> {out:?}");
    };
    let table = |r: &pg_query::protobuf::RangeVar| {
        (
            r.schemaname.clone(),
            r.relname.clone(),
            r.inh,
            r.alias.as_ref().map(|a| a.aliasname.clone()),
        )
    };
    assert_eq!(
        delete.relation.as_ref().map(table),
        update.relation.as_ref().map(table),
        "target table changed: {sql:?} -> {out:?}"
    );
    let kept = match update.where_clause.as_deref() {
        Some(Node {
            node: Some(N::BoolExpr(b)),
        }) => b.args.get(1).cloned(),
        _ => None,
    };
    let condition_kept = match (delete.where_clause.as_deref(), kept.as_ref()) {
        (Some(original), Some(kept)) => same(original, kept),
        // No WHERE: `… IS NULL AND true`.
        (None, Some(_)) => true,
        (_, None) => false,
    };
    assert!(
        condition_kept,
        "WHERE changed meaning: {sql:?} -> {out:?}\n{}\n{}",
        without_locations(&json(&delete.where_clause)),
        without_locations(&json(&kept))
    );
    assert!(
        same(&delete.using_clause, &update.from_clause),
        "USING changed: {sql:?} -> {out:?}"
    );
    assert!(
        same(&delete.returning_clause, &update.returning_clause),
        "RETURNING changed: {sql:?} -> {out:?}"
    );
    assert!(
        same(&delete.with_clause, &update.with_clause),
        "WITH changed: {sql:?} -> {out:?}"
    );
}
