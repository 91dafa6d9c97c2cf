//! The §A3 refusal: SQLSTATE 42501, a one-line `pgbelay:` message saying what was refused
//! and why, a DETAIL naming the statement class, and a HINT saying what to do. All
//! refusal text is written here; callers pick a constructor.

use crate::wire::encode::ErrorFields;
use crate::wire::sqlstate::SqlState;

use super::class::{IrreversibleKind as K, verb};

/// A refused statement and what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub kind: K,
    /// The refused statement's text.
    pub statement: String,
    /// One line: what was refused and why.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Refusal {
    /// A statement of `kind` is refused.
    pub fn statement(kind: K, statement: &str) -> Self {
        let approve = approve_command(statement);
        let (what, hint) = match &kind {
            K::Drop => ("DROP cannot be undone".to_string(), approve),
            K::Truncate => ("TRUNCATE cannot be undone".into(), approve),
            K::DropColumn => ("ALTER TABLE … DROP COLUMN loses the column's data".into(), approve),
            K::AlterColumnType => ("ALTER COLUMN … TYPE rewrites the column's data".into(), approve),
            K::DropConstraint => ("ALTER TABLE … DROP CONSTRAINT loses the constraint".into(), approve),
            K::DropExpression => ("DROP EXPRESSION loses the generated column's expression".into(), approve),
            K::Inherits => (
                "an inheritance child makes the parent's reads and writes reach its rows, and pgbelay undo refuses a \
                 table with inheritance children (its key cannot tell their rows from its own)"
                    .into(),
                format!("Use a partition (CREATE TABLE … PARTITION OF) or a table of its own, or run: {approve}"),
            ),
            K::SequenceRestart => (
                "RESTART loses the sequence's position: the next values may collide with rows already there".into(),
                approve,
            ),
            K::Unfiltered(w) => (
                format!("{} without WHERE changes every row of the table", verb(*w)),
                format!("Add a WHERE clause that names the rows to change, or run: {approve}"),
            ),
            K::Do => ("DO runs code pgbelay cannot read".into(), approve),
            K::Call => ("CALL runs a procedure that may write and commit out of pgbelay's sight".into(), approve),
            K::CreateRule => ("CREATE RULE rewrites later statements out of pgbelay's sight".into(), approve),
            K::Replace => (
                "CREATE OR REPLACE loses the definition it replaces".into(),
                format!("Use CREATE (without OR REPLACE) for a new object, or run: {approve}"),
            ),
            K::HiddenWrite(w) => (
                format!("{} inside another statement (a data-modifying CTE or subquery) is not recorded", verb(*w)),
                format!("Run the write as a statement of its own, or run: {approve}"),
            ),
            K::ExplainAnalyzeWrite(w) => (
                format!("EXPLAIN ANALYZE runs the {} it explains, unrecorded", verb(*w)),
                format!("Use EXPLAIN without ANALYZE, or run: {approve}"),
            ),
            K::CopyWrite(w) => (format!("COPY (…) TO runs the {} inside it, unrecorded", verb(*w)), approve),
            K::SelectInto => (
                "SELECT … INTO creates a table from a query".into(),
                format!("Use CREATE TABLE … AS SELECT …, which is allowed, or run: {approve}"),
            ),
            K::PrepareWrite(w) => (
                format!("PREPARE of a {} would let EXECUTE run it unrecorded", verb(*w)),
                format!("Run the {} directly, or use the extended query protocol", verb(*w)),
            ),
            K::ExecuteWrite(w) => (
                format!("EXECUTE of a prepared {} would run it unrecorded", verb(*w)),
                format!("Run the {} directly, or use the extended query protocol", verb(*w)),
            ),
            K::UnknownPrepared(name) => (
                format!("EXECUTE of \"{name}\", a statement pgbelay did not see prepared"),
                "Prepare it (PREPARE, or a protocol Parse) through pgbelay in this session first".into(),
            ),
            K::Merge => ("MERGE is not yet recorded".into(), approve),
            K::DestructiveFunction(f) => {
                let why = super::functions::DESTRUCTIVE.iter().find(|(n, _)| n == f).map_or("", |(_, w)| *w);
                (format!("{f}() {why}"), approve)
            }
            K::AuditSchema(s) => (
                format!("the audit schema {s} is append-only through pgbelay"),
                "Write and change the audit schema only through pgbelay itself (pgbelay init, pgbelay undo)".into(),
            ),
            K::GuardSetting(s) => (
                format!("changing {s} would loosen the guard: {}", super::settings::why(s)),
                "Leave it as it is while connected through pgbelay; an approval token cannot lift this".into(),
            ),
            K::CaptureTriggers(what) => (
                format!(
                    "this statement {what} pgbelay's capture triggers (pgbelay_capture_*), which record every write to the table"
                ),
                "Leave them as they are: renamed, a copy records every write twice; dropped or disabled, writes go unrecorded. \
                 Name your own triggers instead of ALL or USER (ALTER TABLE … DISABLE TRIGGER my_trigger). An approval token cannot lift this"
                    .into(),
            ),
            K::Encoding(e) => (
                format!("client_encoding {e} cannot be read safely"),
                "Use UTF8: set PGCLIENTENCODING=UTF8, or run \\encoding UTF8 in psql".into(),
            ),
            K::ServerSideCopy => (
                "COPY to or from a server file or program acts outside the database".into(),
                "Use COPY … FROM STDIN / TO STDOUT (psql: \\copy)".into(),
            ),
            K::TwoPhase => (
                "two-phase commit outlives the session".into(),
                "Commit or roll back normally; an approval token cannot lift this".into(),
            ),
            K::Unsupported(what) => (format!("pgbelay does not judge {what}"), approve),
            K::Unparseable => ("statement could not be parsed".into(), "Fix the statement's syntax".into()),
            K::InvalidApproval(why) => (
                format!("approval not accepted: {why}"),
                format!("Mint a token for exactly this statement: {approve}"),
            ),
            K::Unrecordable(why) => {
                use super::class::Unrecordable as U;
                let (what, hint) = match why {
                    U::MultiStatement => (
                        "a write must be sent as a statement of its own to be recorded",
                        "Send each INSERT, UPDATE or DELETE in its own query (psql: one statement per line without -c chains)",
                    ),
                    U::Pipelined => (
                        "a write cannot be recorded while earlier statements are still running",
                        "Wait for the previous statement's result before sending the write",
                    ),
                    U::MidBatch => (
                        "a write must start its own extended-protocol batch to be recorded",
                        "Send Sync before executing the write (one statement per pipeline step)",
                    ),
                    U::MidBatchUnguarded => (
                        "a statement in the middle of an extended-protocol batch that runs read-write cannot be kept read-only",
                        "Send Sync before this statement (one statement per pipeline step)",
                    ),
                    U::Rewrite => (
                        "the DELETE could not be turned into a soft delete faithfully",
                        "Rewrite it as a plain DELETE … WHERE on one table, or ask for an approval",
                    ),
                    U::SessionReset => (
                        "DISCARD ALL / RESET ALL resets the read-only guard, which pgbelay sets again only after a simple query of its own",
                        "Send it alone as a simple query (psql: a line of its own)",
                    ),
                    U::TransactionControlMixed => (
                        "transaction control must be a query of its own: the statements around it would run read-write, where pgbelay cannot keep them read-only",
                        "Send BEGIN, COMMIT, SAVEPOINT … each as a query of its own (psql: one statement per line, not -c chains)",
                    ),
                    U::HoldCursor => (
                        "DECLARE … WITH HOLD runs its query again at COMMIT, read-write, where pgbelay cannot keep it read-only",
                        "Declare the cursor without WITH HOLD inside a transaction (BEGIN … FETCH … COMMIT)",
                    ),
                };
                (what.to_string(), hint.to_string())
            }
        };
        Self {
            kind,
            statement: statement.to_string(),
            message: format!("pgbelay: refused: {what}"),
            hint,
        }
    }

    /// A token was presented with `statement` and failed a check (`why`).
    pub fn approval(statement: &str, why: &str) -> Self {
        Self::statement(K::InvalidApproval(why.to_string()), statement)
    }

    /// The token held with `SET pgbelay.approval` failed its check at this statement,
    /// which used it up: the hint says so, since the DBA may have meant it for another.
    pub fn held_approval(statement: &str, why: &str) -> Self {
        let mut refusal = Self::approval(statement, why);
        refusal.hint = format!(
            "{}. The token held with SET pgbelay.approval is used up: this was the next statement that needed one. \
             For the statement it was signed for, send the token in a comment: /* pgbelay:approve=<token> */ …",
            refusal.hint
        );
        refusal
    }

    /// `refusal` stands although a token was presented: the token cannot lift it.
    pub fn not_approvable(mut self) -> Self {
        self.hint = format!(
            "An approval token cannot lift this ({}). {}",
            self.kind.label(),
            self.hint
        );
        self
    }

    /// `sql` failed to parse, or its tree is deeper than pgbelay reads.
    pub fn unparseable(sql: &str, error: &crate::sql::ParseError) -> Self {
        let (message, hint) = if error.too_deep {
            (
                "pgbelay: refused: the statement nests expressions more deeply than pgbelay reads, so it cannot be judged",
                "PostgreSQL's parse tree of it is more than 100 levels deep; each operator of a chain (a || ',' || b || …) \
                 is a level. Use fewer operators, e.g. concat_ws(',', a, b, …) instead of a || ',' || b || …"
                    .to_string(),
            )
        } else {
            (
                "pgbelay: refused: the statement could not be parsed, so it cannot be judged",
                format!("PostgreSQL's parser says: {}", error.message),
            )
        };
        Self {
            kind: K::Unparseable,
            statement: sql.to_string(),
            message: message.into(),
            hint,
        }
    }

    /// The whole session speaks an encoding pgbelay cannot read.
    pub fn session_encoding(encoding: &str) -> Self {
        Self {
            kind: K::Encoding(encoding.to_string()),
            statement: String::new(),
            message: format!("pgbelay: refused: client_encoding {encoding} cannot be read safely; pgbelay reads only UTF8"),
            hint: "Reconnect with client_encoding UTF8: set PGCLIENTENCODING=UTF8, or run \\encoding UTF8 in psql".into(),
        }
    }

    /// The DETAIL line.
    pub fn detail(&self) -> String {
        format!("statement class: {}", self.kind.label())
    }

    /// The ErrorResponse the client sees.
    pub fn to_error(&self) -> ErrorFields {
        ErrorFields::error(SqlState::INSUFFICIENT_PRIVILEGE, self.message.clone())
            .with_detail(self.detail())
            .with_hint(self.hint.clone())
    }
}

impl From<&Refusal> for ErrorFields {
    fn from(r: &Refusal) -> Self {
        r.to_error()
    }
}

/// `pgbelay approve --sql '…'` for exactly this statement.
fn approve_command(statement: &str) -> String {
    let statement = crate::approval::without_token_comments(statement);
    format!("pgbelay approve --sql {}", shell_quote(&statement))
}

/// Single-quotes `s` for a POSIX shell: `'` becomes `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("drop table t"), "'drop table t'");
        assert_eq!(
            shell_quote("delete from t where a = 'x'"),
            r"'delete from t where a = '\''x'\'''"
        );
    }

    #[test]
    fn error_fields() {
        let r = Refusal::statement(K::Drop, "DROP TABLE t");
        let e = r.to_error();
        assert_eq!(e.code, SqlState::INSUFFICIENT_PRIVILEGE);
        assert!(e.message.starts_with("pgbelay: "));
        assert_eq!(e.detail.as_deref(), Some("statement class: drop"));
        assert_eq!(
            e.hint.as_deref(),
            Some("pgbelay approve --sql 'DROP TABLE t'")
        );
        assert!(!e.message.contains('\n'));
    }
}
