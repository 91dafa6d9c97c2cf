//! Policy: decides what each statement becomes (allow, rewrite, refuse). No IO.
//!
//! [`decide`] is pure and shared by `pgbelay check` and the proxy ([`Guard`]). It reads the
//! facts `sql` found in the parse tree, sorts each statement into a [`StatementClass`],
//! and refuses the whole Query when any statement is irreversible (SPEC §A3: nothing of a
//! refused Query runs). Statements PostgreSQL's parser rejects are refused (fail closed).
//!
//! * `class`: the typed classes; `classify`: the rules of §B4.
//! * `functions`: destructive functions; `settings`: guard settings and encodings.
//! * `refusal`: the §A3 error text; `guard`: the per-session hooks with the parse cache.

mod class;
mod classify;
pub mod functions;
mod guard;
mod record;
mod refusal;
pub mod settings;

#[cfg(test)]
mod test;

use std::borrow::Cow;
use std::collections::HashMap;

pub use crate::sql::{Dialect, QualifiedName, WriteKind};
use crate::sql::{Kind, ParseError, Statement};
pub use class::{IrreversibleKind, StatementClass};
pub use guard::{Guard, GuardSession};
pub use record::{RecordedWrite, Recorder, Source};
pub use refusal::{Refusal, shell_quote};

/// SQL-level and protocol-level prepared statements of a session, by name, with the
/// class of what they run (`EXECUTE name` runs it). Both share one namespace in
/// PostgreSQL, so a statement prepared by a driver's Parse can be run by `EXECUTE`.
pub type Prepared = HashMap<String, StatementClass>;

/// What the policy needs to know besides the statement text.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The audit schema (`settings.audit_schema`); `<audit>_trash` is protected too.
    pub audit_schema: &'a str,
    /// The session's client_encoding, as the server reported it.
    pub client_encoding: &'a str,
    /// How the session's server reads literals.
    pub dialect: Dialect,
    /// The session's prepared statements.
    pub prepared: &'a Prepared,
}

impl<'a> Context<'a> {
    /// A context for judging SQL outside any session (`pgbelay check`): UTF8, standard
    /// strings, nothing prepared.
    pub fn offline(audit_schema: &'a str, prepared: &'a Prepared) -> Self {
        Self {
            audit_schema,
            client_encoding: "UTF8",
            dialect: Dialect::default(),
            prepared,
        }
    }

    /// The schema names the audit trail owns, as the parser would read them.
    pub(crate) fn audit_schemas(&self) -> [String; 2] {
        [
            self.audit_schema.to_string(),
            format!("{}_trash", self.audit_schema),
        ]
    }
}

/// The policy's answer for one Query or Parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it as sent.
    Allow,
    /// Run something else (filled in by the recording issue).
    Rewrite(crate::session::Plan),
    /// Run none of it.
    Refuse(Refusal),
}

/// One statement and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The statement's source text.
    pub text: String,
    /// Its class.
    pub class: StatementClass,
    /// The tables it writes, or for DDL the relations and schemas it names.
    pub targets: Vec<QualifiedName>,
}

/// A change to the session's prepared statements that takes effect if the Query runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedChange {
    /// `PREPARE name AS …` of a statement of this class; `true` when it is a read that
    /// locks rows (`FOR UPDATE` / `SHARE`), which cannot run read-only.
    Add(String, StatementClass, bool),
    /// `DEALLOCATE name`.
    Remove(String),
    /// `DEALLOCATE ALL`.
    Clear,
}

/// The verdict with the reasons behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Every statement of the Query with its class (empty when it did not parse).
    pub statements: Vec<Judged>,
    /// What to do with the Query.
    pub verdict: Verdict,
    /// What running it does to the session's prepared statements.
    pub prepared: Vec<PreparedChange>,
}

/// The verdict for `sql` (one Query message, possibly several statements).
pub fn decide(sql: &str, ctx: &Context<'_>) -> Verdict {
    judge(sql, ctx).verdict
}

/// [`decide`] with the class of every statement.
pub fn judge(sql: &str, ctx: &Context<'_>) -> Judgement {
    judge_analyzed(sql, &crate::sql::analyze(sql, ctx.dialect), ctx)
}

/// Judges an already analysed Query (the guard caches the analysis).
pub(crate) fn judge_analyzed(
    sql: &str,
    analyzed: &Result<Vec<Statement>, ParseError>,
    ctx: &Context<'_>,
) -> Judgement {
    let refuse = |r: Refusal, statements| Judgement {
        statements,
        verdict: Verdict::Refuse(r),
        prepared: Vec::new(),
    };
    if !settings::encoding_ok(ctx.client_encoding) {
        return refuse(Refusal::session_encoding(ctx.client_encoding), Vec::new());
    }
    let statements = match analyzed {
        Ok(s) => s,
        Err(e) => return refuse(Refusal::unparseable(sql, e), Vec::new()),
    };
    // Statements run in order, so a PREPARE is visible to a later EXECUTE of the same Query.
    let mut prepared = Cow::Borrowed(ctx.prepared);
    let mut changes = Vec::new();
    let mut judged = Vec::with_capacity(statements.len());
    let mut refusal = None;
    for s in statements {
        let class = classify::classify(s, ctx, &prepared);
        if let StatementClass::Irreversible(kind) = &class {
            refusal.get_or_insert_with(|| Refusal::statement(kind.clone(), &s.text));
        }
        match &s.kind {
            Kind::Prepare(name, inner) => {
                // EXECUTE runs the inner statement: remember its class, not PREPARE's.
                let runs = classify::classify(inner, ctx, &prepared);
                prepared.to_mut().insert(name.clone(), runs.clone());
                changes.push(PreparedChange::Add(name.clone(), runs, inner.locks_rows));
            }
            Kind::Deallocate(Some(name)) => {
                prepared.to_mut().remove(name);
                changes.push(PreparedChange::Remove(name.clone()));
            }
            Kind::Deallocate(None) => {
                prepared.to_mut().clear();
                changes.push(PreparedChange::Clear);
            }
            _ => {}
        }
        let targets = if s.writes.is_empty() {
            s.touched.clone()
        } else {
            s.writes.iter().map(|w| w.target.clone()).collect()
        };
        judged.push(Judged {
            text: s.text.clone(),
            class,
            targets,
        });
    }
    // Statements pgbelay surrounds with its own must stand alone in their Query: a write
    // (wrapped in its recording), a session reset (the guard's settings set right after),
    // transaction control (the reads around it would run read-write where pgbelay cannot
    // put its read-only savepoint between them).
    if refusal.is_none() && judged.len() > 1 {
        let alone = |j: &Judged| match j.class {
            StatementClass::Write(..) => Some(class::Unrecordable::MultiStatement),
            StatementClass::ResetSession => Some(class::Unrecordable::SessionReset),
            _ => None,
        };
        let control = |j: &Judged| {
            (j.class == StatementClass::TransactionControl)
                .then_some(class::Unrecordable::TransactionControlMixed)
        };
        // A write's reason first: `BEGIN; UPDATE …; COMMIT` is refused for the write.
        refusal = judged
            .iter()
            .find_map(alone)
            .or_else(|| judged.iter().find_map(control))
            .map(|why| Refusal::statement(IrreversibleKind::Unrecordable(why), sql));
    }
    match refusal {
        Some(r) => refuse(r, judged),
        None => Judgement {
            statements: judged,
            verdict: Verdict::Allow,
            prepared: changes,
        },
    }
}
