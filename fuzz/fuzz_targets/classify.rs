//! Any text through the policy's classifier, in both literal dialects: no panic, and
//! every statement it calls a read is one by an independent check (`read_oracle`).
//! A Query made only of reads that the analysis says lock rows (`locks_rows`) is sent
//! without the read-only guard, so each of its statements must really have a locking clause.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_query::ParserOptions;
use pgbelay::policy::{Context, Dialect, Prepared, StatementClass, judge};
use pgbelay::sql::{analyze, locks_rows};
use pgbelay_fuzz::read_oracle::Oracle;
use pgbelay_fuzz::tree::{has_nonempty, json};

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

fn check(sql: &str, dialect: Dialect) {
    let prepared = Prepared::new();
    let ctx = Context {
        dialect,
        ..Context::offline("pgbelay", &prepared)
    };
    let judgement = judge(sql, &ctx);
    let reads = judgement
        .statements
        .iter()
        .filter(|s| s.class == StatementClass::Read)
        .count();
    if reads == 0 {
        return;
    }
    let options = if dialect.standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = match pg_query::parse(sql, options) {
        Ok(p) => p,
        Err(e) => panic!("judged {reads} read(s) in text the parser rejects ({e}): {sql:?}"),
    };
    let trees: Vec<_> = parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|raw| raw.stmt.as_ref().and_then(|s| s.node.as_ref()))
        .collect();
    assert_eq!(
        trees.len(),
        judgement.statements.len(),
        "one judged statement per parsed statement: {sql:?}"
    );
    let mut oracle = Oracle::default();
    for (tree, judged) in trees.iter().zip(&judgement.statements) {
        let second = oracle.read(tree);
        if judged.class == StatementClass::Read
            && let Err(why) = second
        {
            panic!(
                "classified as a read, but {why}: {:?} (dialect {dialect:?})",
                judged.text
            );
        }
    }
    if reads == judgement.statements.len() && analyze(sql, dialect).is_ok_and(|s| locks_rows(&s)) {
        for tree in &trees {
            assert!(
                has_nonempty(&json(tree), "locking_clause"),
                "reads said to lock rows (so not run read-only) include one without a locking clause: {sql:?} (dialect {dialect:?})"
            );
        }
    }
}
