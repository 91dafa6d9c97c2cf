//! A visitor over every node of a parse tree.
//!
//! pg_query's own `nodes()` iterator only descends into the node types its authors needed
//! (it skips, for example, array subscripts, window definitions and `PREPARE`'s query), so a
//! write or a function call hidden there would go unseen. This walker descends through every
//! message-typed field of every node type instead (the table is in `walk_table.rs`), and
//! lets the visitor skip a subtree it knows does not execute (an `EXPLAIN` without
//! `ANALYZE`, a function body).
//!
//! Recursion depth is bounded by pg_query itself: its protobuf decoder refuses trees nested
//! deeper than 100 messages, and such statements fail to parse (and are refused).

use pg_query::NodeRef;
use pg_query::protobuf::Node;

/// What the visitor wants after seeing a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Visit this node's children.
    Into,
    /// Do not descend into this node.
    Skip,
}

/// Something that holds nodes.
pub(crate) trait Walk {
    /// Calls `f` on every node in `self`, parents before children.
    fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step);
}

/// Visits `node` and everything below it.
pub(crate) fn walk<'a, W: Walk + ?Sized>(node: &'a W, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
    node.walk(f);
}

impl Walk for Node {
    fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
        if let Some(n) = &self.node {
            n.walk(f);
        }
    }
}

impl<T: Walk + ?Sized> Walk for Box<T> {
    fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
        (**self).walk(f);
    }
}

impl<T: Walk> Walk for Option<T> {
    fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
        if let Some(t) = self {
            t.walk(f);
        }
    }
}

impl<T: Walk> Walk for Vec<T> {
    fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
        for t in self {
            t.walk(f);
        }
    }
}

/// `Walk` for each protobuf struct: visit it as its `NodeRef`, then its message fields.
macro_rules! walk_structs {
    ($($s:ident as $r:ident $(=> $($field:ident),+)? ;)*) => {
        $(
            impl Walk for $s {
                #[allow(unused_variables)]
                fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
                    if f(NodeRef::$r(self)) == Step::Skip {
                        return;
                    }
                    $($(self.$field.walk(f);)+)?
                }
            }
        )*
    };
}

/// `Walk` for the `Node` oneof: one arm per variant, so a new variant fails to compile.
macro_rules! dispatch {
    ($($v:ident),* $(,)?) => {
        impl Walk for pg_query::NodeEnum {
            fn walk<'a>(&'a self, f: &mut dyn FnMut(NodeRef<'a>) -> Step) {
                match self {
                    $(pg_query::NodeEnum::$v(n) => n.walk(f),)*
                }
            }
        }
    };
}

#[path = "walk_table.rs"]
mod table;

#[cfg(test)]
mod test {
    use super::*;

    fn kinds(sql: &str) -> Vec<String> {
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap();
        let mut out = Vec::new();
        for raw in &parsed.protobuf.stmts {
            walk(&raw.stmt, &mut |n| {
                out.push(format!("{n:?}").split('(').next().unwrap_or("").to_string());
                Step::Into
            });
        }
        out
    }

    #[test]
    fn reaches_places_pg_query_nodes_skips() {
        // A subscript, a window definition and PREPARE's query all hold function calls.
        for sql in [
            "select (array[1])[lo_unlink(1)]",
            "select sum(x) over (order by lo_unlink(1)) from t",
            "prepare p as select lo_unlink(1)",
            "select * from t tablesample bernoulli (lo_unlink(1))",
            "select xmlelement(name x, lo_unlink(1))",
            "select json_object('a': lo_unlink(1))",
        ] {
            assert!(kinds(sql).iter().any(|k| k == "FuncCall"), "{sql}");
        }
    }

    /// Every `Node` in pg_query's serialised tree (`{"node": {"Kind": …}}`), by kind.
    fn serde_kinds(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let (1, Some(serde_json::Value::Object(inner))) = (map.len(), map.get("node")) {
                    out.extend(inner.keys().cloned());
                }
                map.values().for_each(|v| serde_kinds(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| serde_kinds(v, out)),
            _ => {}
        }
    }

    /// The walk reaches every node that pg_query's own serialisation contains, for every
    /// statement of the policy corpus.
    #[test]
    fn exhaustive() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-fixtures/policy");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for case in text.split("\n@@ ") {
                let sql: String = case
                    .lines()
                    .skip(1)
                    .filter(|l| !l.starts_with("@#"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let Ok(parsed) = pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT) else {
                    continue;
                };
                let mut expected = Vec::new();
                serde_kinds(
                    &serde_json::to_value(&parsed.protobuf).unwrap(),
                    &mut expected,
                );
                let mut seen = kinds(&sql);
                for kind in expected {
                    let pos = seen.iter().position(|k| *k == kind.replace('_', ""));
                    let pos = pos.or_else(|| {
                        seen.iter()
                            .position(|k| k.eq_ignore_ascii_case(&kind.replace('_', "")))
                    });
                    assert!(pos.is_some(), "walk missed a {kind} in {sql}");
                    if let Some(p) = pos {
                        seen.swap_remove(p);
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 200, "{checked}");
    }

    #[test]
    fn skip_stops_descent() {
        let parsed =
            pg_query::parse("explain delete from t", pg_query::ParserOptions::DEFAULT).unwrap();
        let mut seen = 0;
        walk(&parsed.protobuf.stmts[0].stmt, &mut |n| {
            seen += 1;
            if matches!(n, NodeRef::ExplainStmt(_)) {
                Step::Skip
            } else {
                Step::Into
            }
        });
        assert_eq!(seen, 1);
    }
}
