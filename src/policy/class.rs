//! The typed classes the policy sorts statements into.

use crate::sql::{QualifiedName, WriteKind};

/// What one statement is, for the policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "detail")]
pub enum StatementClass {
    /// Reads: passed through untouched.
    Read,
    /// A row change that can be recorded and undone: its kind and target table.
    Write(WriteKind, QualifiedName),
    /// DDL that adds, or that a later DDL undoes: allowed and logged.
    AdditiveDdl,
    /// SET, RESET, LISTEN, PREPARE of a read, …
    SessionControl,
    /// `DISCARD ALL` / `RESET ALL`: allowed on its own, the guard's settings set again
    /// right after it (PgBouncer sends `DISCARD ALL` when a client leaves).
    ResetSession,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT …
    TransactionControl,
    /// Refused without an approval token: it cannot be undone, or cannot be judged.
    Irreversible(IrreversibleKind),
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum IrreversibleKind {
    /// DROP of any object.
    Drop,
    /// TRUNCATE.
    Truncate,
    /// ALTER TABLE … DROP COLUMN.
    DropColumn,
    /// ALTER TABLE … ALTER COLUMN TYPE.
    AlterColumnType,
    /// ALTER TABLE … DROP CONSTRAINT.
    DropConstraint,
    /// ALTER TABLE … ALTER COLUMN … DROP EXPRESSION.
    DropExpression,
    /// ALTER SEQUENCE … RESTART, or an identity column's RESTART.
    SequenceRestart,
    /// CREATE TABLE … INHERITS, ALTER TABLE … INHERIT: an inheritance child.
    Inherits,
    /// UPDATE or DELETE without WHERE.
    Unfiltered(WriteKind),
    /// DO block: arbitrary code pgbelay cannot read.
    Do,
    /// CALL: a procedure may write and commit.
    Call,
    /// CREATE RULE: rewrites later statements.
    CreateRule,
    /// CREATE OR REPLACE of a view, function or trigger: the old definition is lost.
    Replace,
    /// A write inside a data-modifying CTE or subquery, or more than one write.
    HiddenWrite(WriteKind),
    /// EXPLAIN ANALYZE runs the write it explains.
    ExplainAnalyzeWrite(WriteKind),
    /// COPY (query) TO where the query writes.
    CopyWrite(WriteKind),
    /// SELECT … INTO creates a table from a query.
    SelectInto,
    /// PREPARE of a write (EXECUTE would run it unrecorded).
    PrepareWrite(WriteKind),
    /// EXECUTE of a prepared write.
    ExecuteWrite(WriteKind),
    /// EXECUTE of a statement pgbelay did not see prepared.
    UnknownPrepared(String),
    /// MERGE: not yet recorded.
    Merge,
    /// A function that destroys data or state.
    DestructiveFunction(String),
    /// A write or DDL touching the audit schema.
    AuditSchema(String),
    /// A change to a setting the guard depends on.
    GuardSetting(String),
    /// DDL on pgbelay's capture triggers: what it would do to them (`renames`, `drops`,
    /// `disables`, `re-enables`).
    CaptureTriggers(String),
    /// A client_encoding pgbelay cannot read.
    Encoding(String),
    /// COPY to or from a server file or program.
    ServerSideCopy,
    /// Two-phase commit (outlives the session).
    TwoPhase,
    /// A statement type pgbelay does not judge.
    Unsupported(String),
    /// Not parseable by PostgreSQL's parser.
    Unparseable,
    /// A write pgbelay cannot record where it stands (the reason).
    Unrecordable(Unrecordable),
    /// An approval token was presented and failed a check (the reason).
    InvalidApproval(String),
}

impl IrreversibleKind {
    /// The short class name shown in DETAIL (`statement class: drop`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Truncate => "truncate",
            Self::DropColumn => "alter table drop column",
            Self::AlterColumnType => "alter column type",
            Self::DropConstraint => "alter table drop constraint",
            Self::DropExpression => "alter column drop expression",
            Self::SequenceRestart => "sequence restart",
            Self::Inherits => "inheritance",
            Self::Unfiltered(WriteKind::Update) => "update without where",
            Self::Unfiltered(_) => "delete without where",
            Self::Do => "do block",
            Self::Call => "call",
            Self::CreateRule => "create rule",
            Self::Replace => "create or replace",
            Self::HiddenWrite(_) => "hidden write",
            Self::ExplainAnalyzeWrite(_) => "explain analyze of a write",
            Self::CopyWrite(_) => "copy of a write",
            Self::SelectInto => "select into",
            Self::PrepareWrite(_) => "prepare of a write",
            Self::ExecuteWrite(_) => "execute of a write",
            Self::UnknownPrepared(_) => "execute of an unknown statement",
            Self::Merge => "merge",
            Self::DestructiveFunction(_) => "destructive function",
            Self::AuditSchema(_) => "audit schema",
            Self::GuardSetting(_) => "guard setting",
            Self::CaptureTriggers(_) => "capture trigger",
            Self::Encoding(_) => "client encoding",
            Self::ServerSideCopy => "server-side copy",
            Self::TwoPhase => "two-phase commit",
            Self::Unsupported(_) => "unsupported statement",
            Self::Unparseable => "unparseable",
            Self::Unrecordable(Unrecordable::SessionReset) => "unguardable session reset",
            Self::Unrecordable(
                Unrecordable::TransactionControlMixed | Unrecordable::HoldCursor,
            ) => "unguardable statement",
            Self::Unrecordable(_) => "unrecordable write",
            Self::InvalidApproval(_) => "approval",
        }
    }

    /// Whether an approval token can lift this refusal. Not: what would keep running
    /// unrecorded after the statement (a prepared write), what loosens the guard or the
    /// audit trail, what acts outside the database or outlives the session, and what
    /// pgbelay cannot read or record at all.
    pub fn approvable(&self) -> bool {
        !matches!(
            self,
            Self::PrepareWrite(_)
                | Self::ExecuteWrite(_)
                | Self::UnknownPrepared(_)
                | Self::AuditSchema(_)
                | Self::GuardSetting(_)
                | Self::CaptureTriggers(_)
                | Self::Encoding(_)
                | Self::ServerSideCopy
                | Self::TwoPhase
                | Self::Unparseable
                | Self::Unrecordable(_)
                | Self::InvalidApproval(_)
        )
    }
}

impl StatementClass {
    /// The short class name (`read`, `write`, …, or the irreversible kind's label).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write(..) => "write",
            Self::AdditiveDdl => "additive ddl",
            Self::SessionControl => "session control",
            Self::ResetSession => "session reset",
            Self::TransactionControl => "transaction control",
            Self::Irreversible(k) => k.label(),
        }
    }
}

/// Why a write that would otherwise be allowed cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unrecordable {
    /// It shares a Query message with other statements.
    MultiStatement,
    /// Earlier requests are still in flight, so whether it runs in a transaction block
    /// is not known when it must be wrapped.
    Pipelined,
    /// It is bound in the middle of an extended-protocol batch.
    MidBatch,
    /// A statement in the middle of an extended-protocol batch that runs read-write (the
    /// client's transaction, or a batch pgbelay opened for a write or DDL): it cannot be
    /// kept read-only there.
    MidBatchUnguarded,
    /// The soft-delete rewrite failed its own check.
    Rewrite,
    /// `DISCARD ALL` / `RESET ALL` with other statements in one Query, or through the
    /// extended protocol: the guard's settings could not be set again right after it.
    SessionReset,
    /// Transaction control sharing a Query with other statements: those after a BEGIN
    /// or SAVEPOINT, or before a COMMIT, would run read-write unguarded.
    TransactionControlMixed,
    /// `DECLARE … WITH HOLD`: its query runs again at `COMMIT`, read-write.
    HoldCursor,
}

/// A lower-case verb for a write kind, for messages.
pub(crate) fn verb(kind: WriteKind) -> &'static str {
    match kind {
        WriteKind::Insert => "INSERT",
        WriteKind::Update => "UPDATE",
        WriteKind::Delete => "DELETE",
        WriteKind::Merge => "MERGE",
        WriteKind::CopyFrom => "COPY FROM",
    }
}
