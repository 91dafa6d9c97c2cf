//! A second opinion on "this statement is a read", written from PostgreSQL's rules rather
//! than from pgbelay's analysis (`src/sql/analyze.rs`), and seeing every node of the tree
//! through its JSON form rather than pgbelay's walker.
//!
//! A read here is what PostgreSQL runs without changing rows or definitions: a SELECT
//! (not SELECT INTO: PostgreSQL turns a SELECT whose *leftmost* branch has INTO into
//! CREATE TABLE AS) with no INSERT/UPDATE/DELETE/MERGE or other statement anywhere inside;
//! SHOW; cursor commands over such a SELECT; COPY … TO STDOUT of a table or such a query;
//! EXPLAIN, unless PostgreSQL would run the statement (ANALYZE), then that statement must
//! be a read; EXECUTE of a statement PREPAREd (earlier in the same text) as a read; and the
//! utility statements PostgreSQL itself allows in a read-only transaction without changing
//! data (LOCK, VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, SET CONSTRAINTS). Function
//! calls are not judged: reads run read-only, so the server stops a function that writes.

use std::collections::HashMap;

use pg_query::protobuf::{self as pb, node::Node as N};

use crate::tree::{json, node_types};

/// The statements PREPAREd so far in one text, and whether each is a read.
#[derive(Debug, Default)]
pub struct Oracle {
    prepared: HashMap<String, bool>,
}

impl Oracle {
    /// `Err(reason)` when `stmt` is not a read. Call in statement order: PREPARE and
    /// DEALLOCATE change what a later EXECUTE runs.
    pub fn read(&mut self, stmt: &N) -> Result<(), String> {
        let verdict = self.top(stmt);
        match stmt {
            N::PrepareStmt(p) => {
                let inner = p.query.as_ref().and_then(|q| q.node.as_ref());
                let is_read = inner.is_some_and(|q| self.top(q).is_ok());
                self.prepared.insert(p.name.clone(), is_read);
            }
            N::DeallocateStmt(d) if d.isall => self.prepared.clear(),
            N::DeallocateStmt(d) => {
                self.prepared.remove(&d.name);
            }
            _ => {}
        }
        verdict
    }

    fn top(&self, stmt: &N) -> Result<(), String> {
        match stmt {
            N::SelectStmt(s) => select(s),
            N::VariableShowStmt(_)
            | N::FetchStmt(_)
            | N::ClosePortalStmt(_)
            | N::LockStmt(_)
            | N::VacuumStmt(_)
            | N::ClusterStmt(_)
            | N::ReindexStmt(_)
            | N::CheckPointStmt(_)
            | N::ConstraintsSetStmt(_) => Ok(()),
            N::DeclareCursorStmt(d) => query_inside(d.query.as_deref()),
            N::CopyStmt(c) => {
                if c.is_from {
                    return Err("COPY FROM".into());
                }
                if c.is_program || !c.filename.is_empty() {
                    return Err("COPY to a server file or program".into());
                }
                match &c.query {
                    Some(q) => query_inside(Some(q)),
                    None => Ok(()),
                }
            }
            N::ExplainStmt(e) => {
                if !explain_runs(e) {
                    return Ok(());
                }
                match e.query.as_ref().and_then(|q| q.node.as_ref()) {
                    Some(inner) => self
                        .top(inner)
                        .map_err(|why| format!("EXPLAIN ANALYZE runs it: {why}")),
                    None => Ok(()),
                }
            }
            N::ExecuteStmt(e) => match self.prepared.get(&e.name) {
                Some(true) => Ok(()),
                Some(false) => Err(format!(
                    "EXECUTE {} runs a statement that is not a read",
                    e.name
                )),
                None => Err(format!("EXECUTE {} of an unknown statement", e.name)),
            },
            other => Err(format!("{} is not a read", variant(other))),
        }
    }
}

/// A top-level SELECT: no INTO on its leftmost branch (PostgreSQL's
/// `transformOptionalSelectInto` makes that CREATE TABLE AS), nothing but queries inside.
fn select(s: &pb::SelectStmt) -> Result<(), String> {
    let mut leftmost = s;
    while let Some(larg) = leftmost.larg.as_deref() {
        leftmost = larg;
    }
    if leftmost.into_clause.is_some() {
        return Err("SELECT INTO creates a table".into());
    }
    only_queries(&json(s))
}

fn query_inside(query: Option<&pb::Node>) -> Result<(), String> {
    match query {
        Some(q) => only_queries(&json(q)),
        None => Ok(()),
    }
}

/// No statement other than SELECT anywhere in the tree (data-modifying CTEs included).
fn only_queries(tree: &serde_json::Value) -> Result<(), String> {
    let mut types = Vec::new();
    node_types(tree, &mut types);
    match types
        .iter()
        .find(|t| t.ends_with("Stmt") && *t != "SelectStmt")
    {
        Some(t) => Err(format!("contains {t}")),
        None => Ok(()),
    }
}

/// Whether EXPLAIN runs its statement, as PostgreSQL reads the options: the last
/// `analyze` wins; no argument, `1`, `true`, `on` run it; `0`, `false`, `off` do not;
/// anything else is an error before anything runs.
fn explain_runs(e: &pb::ExplainStmt) -> bool {
    let mut runs = Some(false);
    for option in &e.options {
        let Some(N::DefElem(d)) = &option.node else {
            continue;
        };
        if d.defname != "analyze" {
            continue;
        }
        let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            None => Some(true),
            Some(N::Integer(i)) => match i.ival {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            },
            Some(N::String(s)) => match s.sval.to_ascii_lowercase().as_str() {
                "true" | "on" => Some(true),
                "false" | "off" => Some(false),
                _ => None,
            },
            Some(N::Boolean(b)) => Some(b.boolval),
            Some(_) => None,
        };
        match value {
            Some(v) => runs = Some(v),
            None => return false,
        }
    }
    runs == Some(true)
}

/// The node's type name, from its JSON form.
fn variant(n: &N) -> String {
    match json(n) {
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        _ => "statement".into(),
    }
}
