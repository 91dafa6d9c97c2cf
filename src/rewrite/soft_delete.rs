//! DELETE → soft delete (§B3): `DELETE FROM t [AS a] [USING …] WHERE p [RETURNING …]`
//! becomes `UPDATE t [AS a] SET <col> = pg_catalog.now() [FROM …] WHERE a.<col> IS NULL
//! AND (p) [RETURNING …]`. ONLY, the alias, USING (as FROM), WITH, RETURNING and the
//! client's `$n` parameters carry over unchanged, so the statement works the same in the
//! extended protocol; rows already soft-deleted are not touched again.

use pg_query::protobuf::{
    AConst, BoolExpr, BoolExprType, Boolean, ColumnRef, DeleteStmt, FuncCall, Node, NullTest,
    NullTestType, ParseResult, RangeVar, ResTarget, String as PgString, UpdateStmt, a_const,
    node::Node as N,
};
use pg_query::{DeparseOptions, ParserOptions};

use super::RewriteError;
use crate::sql::Dialect;

fn node(n: N) -> Node {
    Node { node: Some(n) }
}

fn string(s: &str) -> Node {
    node(N::String(PgString {
        sval: s.to_string(),
    }))
}

fn options(dialect: Dialect) -> ParserOptions {
    if dialect.standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    }
}

fn parse_one(sql: &str, dialect: Dialect) -> Result<(ParseResult, Node), RewriteError> {
    let parsed =
        pg_query::parse(sql, options(dialect)).map_err(|e| RewriteError::Parse(e.to_string()))?;
    let protobuf = parsed.protobuf;
    match protobuf.stmts.as_slice() {
        [one] => match &one.stmt {
            Some(stmt) => {
                let stmt = (**stmt).clone();
                Ok((protobuf, stmt))
            }
            None => Err(RewriteError::Shape("DELETE")),
        },
        _ => Err(RewriteError::Shape("DELETE")),
    }
}

/// Rewrites one DELETE statement into the soft-delete UPDATE of `column`.
pub fn soft_delete(sql: &str, column: &str, dialect: Dialect) -> Result<String, RewriteError> {
    let (mut protobuf, stmt) = parse_one(sql, dialect)?;
    let Some(N::DeleteStmt(delete)) = stmt.node else {
        return Err(RewriteError::Shape("DELETE"));
    };
    let DeleteStmt {
        relation,
        using_clause,
        where_clause,
        returning_clause,
        with_clause,
    } = *delete;
    let relation = relation.ok_or(RewriteError::Shape("DELETE"))?;
    // A DELETE without WHERE only gets here approved (the policy refuses it otherwise):
    // every live row, `… IS NULL AND true`.
    let where_clause = where_clause.unwrap_or_else(|| {
        Box::new(node(N::AConst(AConst {
            val: Some(a_const::Val::Boolval(Boolean { boolval: true })),
            isnull: false,
            location: -1,
        })))
    });
    // What the UPDATE carries over, to compare with what its text reads back as.
    let carried = Carried {
        condition: where_clause.clone(),
        from: using_clause.clone(),
        returning: returning_clause.clone(),
        with: with_clause.clone(),
    };

    // The column is qualified by the alias (or the table name), so a USING table with a
    // column of the same name cannot make it ambiguous or capture it.
    let qualifier = relation
        .alias
        .as_ref()
        .map_or(relation.relname.clone(), |a| a.aliasname.clone());
    let not_yet_deleted = node(N::NullTest(Box::new(NullTest {
        xpr: None,
        arg: Some(Box::new(node(N::ColumnRef(ColumnRef {
            fields: vec![string(&qualifier), string(column)],
            location: -1,
        })))),
        nulltesttype: NullTestType::IsNull as i32,
        argisrow: false,
        location: -1,
    })));
    let now = node(N::FuncCall(Box::new(FuncCall {
        funcname: vec![string("pg_catalog"), string("now")],
        funcformat: pg_query::protobuf::CoercionForm::CoerceExplicitCall as i32,
        location: -1,
        ..FuncCall::default()
    })));
    let update = UpdateStmt {
        relation: Some(relation.clone()),
        target_list: vec![node(N::ResTarget(Box::new(ResTarget {
            name: column.to_string(),
            indirection: Vec::new(),
            val: Some(Box::new(now)),
            location: -1,
        })))],
        where_clause: Some(Box::new(node(N::BoolExpr(Box::new(BoolExpr {
            xpr: None,
            boolop: BoolExprType::AndExpr as i32,
            args: vec![not_yet_deleted, *where_clause],
            location: -1,
        }))))),
        from_clause: using_clause,
        returning_clause,
        with_clause,
    };
    protobuf.stmts[0].stmt = Some(Box::new(node(N::UpdateStmt(Box::new(update)))));
    let text = pg_query::deparse(&protobuf, DeparseOptions::default())
        .map_err(|e| RewriteError::Deparse(e.to_string()))?;
    check(&text, &relation, column, &carried, dialect)?;
    Ok(text)
}

/// The DELETE's parts the UPDATE takes over unchanged.
struct Carried {
    condition: Box<Node>,
    from: Vec<Node>,
    returning: Option<pg_query::protobuf::ReturningClause>,
    with: Option<pg_query::protobuf::WithClause>,
}

/// Whether two parse trees mean the same, compared without their source positions: the
/// deparser can print a tree that reads back as another (`$0` prints as `?`, which reads
/// back as an operator), and the text is what runs.
fn same_tree<T: serde::Serialize>(a: &T, b: &T) -> bool {
    fn strip(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(key, _)| {
                        !(key.ends_with("location")
                            || key.ends_with("list_start")
                            || key.ends_with("list_end")
                            || key == "stmt_len")
                    })
                    .map(|(key, value)| (key, strip(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
            other => other,
        }
    }
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => strip(a) == strip(b),
        _ => false,
    }
}

/// Parses the rewritten text again and checks it is the UPDATE that was built, with the
/// DELETE's condition, USING, RETURNING and WITH reading back as they were.
fn check(
    text: &str,
    relation: &RangeVar,
    column: &str,
    carried: &Carried,
    dialect: Dialect,
) -> Result<(), RewriteError> {
    let (_, stmt) = parse_one(text, dialect).map_err(|_| RewriteError::Check("does not parse"))?;
    let Some(N::UpdateStmt(update)) = stmt.node else {
        return Err(RewriteError::Check("not an UPDATE"));
    };
    let same_target = update.relation.as_ref().is_some_and(|r| {
        r.schemaname == relation.schemaname
            && r.relname == relation.relname
            && r.inh == relation.inh
            && r.alias.as_ref().map(|a| &a.aliasname)
                == relation.alias.as_ref().map(|a| &a.aliasname)
    });
    if !same_target {
        return Err(RewriteError::Check("target table changed"));
    }
    let sets_only_column = matches!(
        update.target_list.as_slice(),
        [Node { node: Some(N::ResTarget(t)) }] if t.name == column
    );
    if !sets_only_column {
        return Err(RewriteError::Check("SET list changed"));
    }
    let guarded = matches!(
        update.where_clause.as_deref(),
        Some(Node { node: Some(N::BoolExpr(b)) })
            if b.boolop == BoolExprType::AndExpr as i32
                && b.args.len() == 2
                && matches!(b.args[0].node, Some(N::NullTest(_)))
                && same_tree(&b.args[1], carried.condition.as_ref())
    );
    if !guarded {
        return Err(RewriteError::Check("WHERE changed"));
    }
    if !same_tree(&update.from_clause, &carried.from) {
        return Err(RewriteError::Check("USING changed"));
    }
    if !same_tree(&update.returning_clause, &carried.returning) {
        return Err(RewriteError::Check("RETURNING changed"));
    }
    if !same_tree(&update.with_clause, &carried.with) {
        return Err(RewriteError::Check("WITH changed"));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    fn rewrite(sql: &str) -> String {
        soft_delete(sql, "deleted_at", Dialect::default()).unwrap()
    }

    #[test]
    fn plain_delete() {
        assert_eq!(
            rewrite("DELETE FROM orders WHERE id = 5"),
            "UPDATE orders SET deleted_at = pg_catalog.now() WHERE orders.deleted_at IS NULL AND id = 5"
        );
    }

    #[test]
    fn only_alias_using_returning_params() {
        assert_eq!(
            rewrite(
                "delete from only public.orders as o using customers c where o.customer_id = c.id and c.name = $1 returning o.id, $2::int"
            ),
            "UPDATE ONLY public.orders o SET deleted_at = pg_catalog.now() FROM customers c WHERE o.deleted_at IS NULL AND (o.customer_id = c.id AND c.name = $1) RETURNING o.id, $2::int"
        );
    }

    #[test]
    fn with_clause_and_or_precedence() {
        let out = rewrite("WITH x AS (SELECT 1 AS id) DELETE FROM t WHERE a = 1 OR b = 2");
        assert_eq!(
            out,
            "WITH x AS (SELECT 1 AS id) UPDATE t SET deleted_at = pg_catalog.now() WHERE t.deleted_at IS NULL AND (a = 1 OR b = 2)"
        );
    }

    #[test]
    fn literals_survive() {
        let out = rewrite(r"DELETE FROM t WHERE note = 'it''s' OR note = E'back\\slash'");
        assert!(out.contains("'it''s'"), "{out}");
        // However the deparser spells it, the server must read the same value back.
        let reparsed = pg_query::parse(&out, ParserOptions::DEFAULT).unwrap();
        let json = format!("{:?}", reparsed.protobuf);
        assert!(json.contains(r#"sval: "back\\slash""#), "{json}");
    }

    #[test]
    fn quoted_names() {
        assert_eq!(
            soft_delete(
                r#"DELETE FROM "Weird Table" WHERE "Id" = 1"#,
                "Gone At",
                Dialect::default()
            )
            .unwrap(),
            r#"UPDATE "Weird Table" SET "Gone At" = pg_catalog.now() WHERE "Weird Table"."Gone At" IS NULL AND "Id" = 1"#
        );
    }

    #[test]
    fn not_a_delete() {
        assert_eq!(
            soft_delete(
                "UPDATE t SET a = 1 WHERE b",
                "deleted_at",
                Dialect::default()
            ),
            Err(RewriteError::Shape("DELETE"))
        );
        // Approved, a DELETE without WHERE soft-deletes every live row.
        assert_eq!(
            soft_delete("DELETE FROM t", "deleted_at", Dialect::default()).unwrap(),
            "UPDATE t SET deleted_at = pg_catalog.now() WHERE t.deleted_at IS NULL AND true"
        );
        assert!(
            soft_delete(
                "DELETE FROM t WHERE a; DELETE FROM u WHERE b",
                "deleted_at",
                Dialect::default()
            )
            .is_err()
        );
    }
}
