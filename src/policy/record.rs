//! Recording (§B2, §B3, §B7, §B8): the statements the proxy wraps around a write so that it
//! runs in a transaction with its record, and the read-only guard for everything else.
//!
//! The protocol is the audit schema's (`audit` module): announce the write with
//! `<audit>.begin_statement(...)`, then run it. The
//! capture itself happens in the server (statement triggers with transition tables), so
//! the images are exactly the rows the statement changed.
//!
//! * Autocommit: `BEGIN READ WRITE`, the announcement, the write, `COMMIT` — pipelined,
//!   their replies swallowed; the client sees its own statement's reply and the COMMIT's
//!   ReadyForQuery (the true status).
//! * Inside the client's transaction: the announcement and the write. The announcement
//!   lasts until the next one or the transaction's end; nothing in between can write
//!   unannounced (reads run read-only, locking reads and DDL under the hidden-write check).
//! * Sessions start with `default_transaction_read_only = on`, so reads in autocommit run
//!   read-only and a function with hidden writes fails in the server. A client's `BEGIN`
//!   is made read-write (unless it asked for READ ONLY) so the DBA can write in it, and
//!   each read inside it runs in a read-only savepoint: `SAVEPOINT`, `SET TRANSACTION READ
//!   ONLY`, the read, `RELEASE` — PostgreSQL restores the transaction's read-write mode at
//!   RELEASE, while locks the read took (SELECT … FOR UPDATE) stay.

use std::sync::Arc;

use crate::audit::{self, StatementMeta};
use crate::config::Settings;
use crate::session::{Plan, Position, SessionInfo};
use crate::sql::{Dialect, QualifiedName, WriteKind};
use crate::wire::TxStatus;

use super::Judged;
use super::class::{IrreversibleKind, Unrecordable};
use super::refusal::Refusal;
use crate::approval::Approval;

/// The savepoint (`pgbelay_read`) that makes a read inside a client transaction
/// read-only: opened and made read-only in one Query message (one reply to swallow, one
/// less server round), released after the read. Constant text: these go with every read
/// in a transaction.
const READ_SAVEPOINT_OPEN: &str = "SAVEPOINT pgbelay_read; SET TRANSACTION READ ONLY";
const READ_SAVEPOINT_RELEASE: &str = "RELEASE SAVEPOINT pgbelay_read";

/// Transaction-local setting holding, before a statement the hidden-write check guards,
/// `oid:changes` of every table the transaction has changed rows of so far.
const TUPLES_BEFORE: &str = "pgbelay.tuples_before";

/// [`Recorder::checked_since_begin`]'s check.
const WROTE_SINCE_BEGIN: &str = "DO $pgbelay_check$ BEGIN \
     IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN \
     RAISE EXCEPTION USING ERRCODE = '25006', \
     MESSAGE = 'pgbelay: refused: a statement sent behind BEGIN in the same extended-protocol batch wrote to the database (through a function it called, or a sequence), where pgbelay cannot record it', \
     DETAIL = 'statement class: hidden write', \
     HINT = 'The transaction is aborted (ROLLBACK). Send the write as a statement of its own, so that it is recorded.'; \
     END IF; END $pgbelay_check$";

/// Rows the current transaction inserted, updated or deleted so far in table `c`:
/// PostgreSQL's own per-transaction statistics, which row locks do not move (and a
/// TRUNCATE resets, so the check compares with `<>`).
const TUPLES_OF_C: &str = "(pg_catalog.pg_stat_get_xact_tuples_inserted(c.oid) \
     + pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) \
     + pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid))";

/// What a recorded write needs, decided once per statement text (and reused at every Bind
/// of a prepared statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedWrite {
    /// `SELECT <audit>.begin_statement(...)`; for an approved TRUNCATE the preparation of
    /// every table it empties; for an approved statement no trigger records (DDL, DO, a
    /// hidden write), its change row, recorded first so that the rows the statement
    /// changes are parts of it.
    begin: Vec<String>,
    /// The statement to send instead (the soft-delete UPDATE of a DELETE).
    replacement: Option<String>,
    /// CommandComplete rename (`UPDATE n` → `DELETE n`).
    rename_tag: Option<(String, String)>,
    /// COPY FROM STDIN: what follows it must wait until the copy is done.
    copy: bool,
    /// The announcement claims an approval token (single use): it may run only where
    /// the statement really executes.
    claims_token: bool,
}

impl RecordedWrite {
    /// Whether running the announcement spends an approval token.
    pub fn claims_token(&self) -> bool {
        self.claims_token
    }
}

/// A statement as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The statement's own source text.
    pub text: &'a str,
    /// The whole Query or Parse as the client sent it (recorded as the statement).
    pub client_sql: &'a str,
    /// How the session's server reads literals.
    pub dialect: Dialect,
}

/// The recording settings every session shares.
#[derive(Debug, Clone)]
pub struct Recorder {
    audit_schema: Arc<str>,
    soft_delete_column: Arc<str>,
    max_rows: u64,
    /// The statement that makes sure the audit schema exists (built once: it embeds the
    /// whole install script).
    ensure_schema: Arc<str>,
    /// The hidden-write check around a locking read (built once: it is the same for
    /// every one).
    locking_read_check: Arc<(String, String)>,
}

impl Recorder {
    /// From the proxy's settings.
    pub fn new(settings: &Settings) -> Self {
        let mut recorder = Self {
            audit_schema: Arc::from(settings.audit_schema.as_str()),
            soft_delete_column: Arc::from(settings.soft_delete_column.as_str()),
            max_rows: settings.max_rows,
            ensure_schema: Arc::from(ensure_schema(&settings.audit_schema)),
            locking_read_check: Arc::default(),
        };
        recorder.locking_read_check = Arc::new(recorder.hidden_write_check(&[], true));
        recorder
    }

    /// Statements that start every session: reads run read-only unless pgbelay opens a
    /// read-write transaction for a recorded write.
    pub fn session_start(&self) -> Vec<String> {
        vec!["SET default_transaction_read_only = on".to_string()]
    }

    /// Prepares the recording of one write statement, approved or not.
    pub fn write(
        &self,
        info: &SessionInfo,
        kind: WriteKind,
        target: &QualifiedName,
        source: Source<'_>,
        approval: Option<&Approval>,
    ) -> Result<RecordedWrite, Refusal> {
        let Source {
            text,
            client_sql,
            dialect,
        } = source;
        let unrecordable =
            |why| Refusal::statement(IrreversibleKind::Unrecordable(why), client_sql);
        let hard = approval.is_some_and(|a| a.hard);
        let (replacement, rename_tag, recorded_kind) = match kind {
            // An approved --hard DELETE runs as written; its rows are recorded as they go.
            WriteKind::Delete if hard => (None, None, None),
            WriteKind::Delete => {
                let update = crate::rewrite::soft_delete(text, &self.soft_delete_column, dialect)
                    .map_err(|_| unrecordable(Unrecordable::Rewrite))?;
                (
                    Some(update),
                    Some(("UPDATE".to_string(), "DELETE".to_string())),
                    Some("delete".to_string()),
                )
            }
            WriteKind::Insert | WriteKind::Update | WriteKind::CopyFrom => (None, None, None),
            // Refused by classification before it gets here; never run unrecorded.
            WriteKind::Merge => {
                return Err(Refusal::statement(IrreversibleKind::Merge, client_sql));
            }
        };
        let meta = self.meta(info, Some(target), recorded_kind, client_sql, approval);
        let begin = audit::begin_statement_sql(&self.audit_schema, &meta)
            .map_err(|_| unrecordable(Unrecordable::Rewrite))?;
        Ok(RecordedWrite {
            begin: vec![begin],
            replacement,
            rename_tag,
            copy: kind == WriteKind::CopyFrom,
            claims_token: approval.is_some(),
        })
    }

    /// What `begin_statement` is told: the token lifts the blast-radius limit.
    fn meta(
        &self,
        info: &SessionInfo,
        target: Option<&QualifiedName>,
        kind: Option<String>,
        client_sql: &str,
        approval: Option<&Approval>,
    ) -> StatementMeta {
        StatementMeta {
            table: target.map(ToString::to_string),
            statement: client_sql.to_string(),
            kind,
            max_rows: if approval.is_some() {
                None
            } else {
                Some(self.max_rows)
            },
            approval: approval.map(|a| a.id.clone()),
            approved_by: approval.map(|a| a.by.clone()),
            reason: approval.and_then(|a| a.reason.clone()),
            client_addr: Some(info.client_addr.clone()).filter(|a| !a.is_empty()),
            application_name: Some(info.application_name.clone()).filter(|a| !a.is_empty()),
            soft_delete_column: Some(self.soft_delete_column.to_string()),
        }
    }

    /// Prepares an approved irreversible statement (`judged`, refused as `kind` without
    /// the token) so that it runs recorded with the token's id:
    ///
    /// * UPDATE / DELETE without WHERE: a recorded write (a DELETE still soft unless hard);
    /// * DROP TABLE: the tables move to the recycle bin (`--hard`: really dropped);
    /// * TRUNCATE: every table it empties records its rows first;
    /// * anything else runs as written, and a change row of the class's kind records it
    ///   (rows it changes in tables pgbelay records are captured as well).
    pub fn approved(
        &self,
        info: &SessionInfo,
        judged: &Judged,
        kind: &IrreversibleKind,
        client_sql: &str,
        dialect: Dialect,
        approval: &Approval,
    ) -> Result<RecordedWrite, Refusal> {
        let unrecordable =
            |why| Refusal::statement(IrreversibleKind::Unrecordable(why), client_sql);
        let built = |r: Result<String, audit::AuditError>| {
            r.map_err(|_| unrecordable(Unrecordable::Rewrite))
        };
        let schema = &*self.audit_schema;
        if let IrreversibleKind::Unfiltered(write) = kind
            && let Some(target) = judged.targets.first()
        {
            let source = Source {
                text: &judged.text,
                client_sql,
                dialect,
            };
            return self.write(info, *write, target, source, Some(approval));
        }
        let names =
            |tables: &[QualifiedName]| tables.iter().map(ToString::to_string).collect::<Vec<_>>();
        let mut recorded = RecordedWrite {
            begin: Vec::new(),
            replacement: None,
            rename_tag: None,
            copy: false,
            claims_token: true,
        };
        let mut marker = true;
        let mut first_table = None;
        match kind {
            IrreversibleKind::Drop if !approval.hard => {
                if let Some(drop) = crate::sql::drop_tables(client_sql, dialect) {
                    recorded.replacement = Some(built(audit::recycle_tables_sql(
                        schema,
                        &names(&drop.tables),
                        drop.if_exists,
                    ))?);
                    recorded.rename_tag = Some(("DO".to_string(), "DROP TABLE".to_string()));
                    marker = false;
                }
            }
            IrreversibleKind::Truncate => {
                if let Some(truncate) = crate::sql::truncate_tables(client_sql, dialect) {
                    recorded.begin.push(built(audit::prepare_truncate_sql(
                        schema,
                        &names(&truncate.tables),
                        truncate.cascade,
                    ))?);
                    marker = false;
                }
            }
            // Rows a hidden write changes are captured for its target table.
            IrreversibleKind::HiddenWrite(_)
            | IrreversibleKind::CopyWrite(_)
            | IrreversibleKind::ExplainAnalyzeWrite(_)
            | IrreversibleKind::Merge => first_table = judged.targets.first(),
            _ => {}
        }
        let meta = self.meta(info, first_table, None, client_sql, Some(approval));
        recorded
            .begin
            .insert(0, built(audit::begin_statement_sql(schema, &meta))?);
        if marker {
            let recorded_kind = match kind {
                IrreversibleKind::Drop => "drop",
                other => other.label(),
            };
            let target = judged.targets.first();
            recorded.begin.push(built(audit::record_change_sql(
                schema,
                recorded_kind,
                target.and_then(|t| t.schema.as_deref()),
                target.map(|t| t.name.as_str()),
            ))?);
        }
        Ok(recorded)
    }

    /// The plan that runs `write` where the session stands. `check_schema` adds the
    /// one-time check that the audit schema is installed.
    pub fn plan(&self, write: &RecordedWrite, at: Position, check_schema: bool) -> Plan {
        let mut before = Vec::new();
        let autocommit = at.tx_status == TxStatus::Idle;
        if autocommit {
            before.push("BEGIN READ WRITE".to_string());
        }
        if check_schema {
            before.push(self.ensure_schema.to_string());
        }
        before.extend(write.begin.iter().cloned());
        // Inside the client's transaction nothing ends the announcement: every later
        // statement that can write is announced itself (which replaces it) or runs under
        // the read-only or hidden-write guard, and it ends with the transaction.
        let after = if autocommit {
            vec!["COMMIT".to_string()]
        } else {
            Vec::new()
        };
        Plan {
            before,
            sql: write.replacement.clone(),
            after,
            rename_tag: write.rename_tag.clone(),
            after_when_done: write.copy,
        }
    }

    /// Only the statement's text (and tag) as the write needs them: a Parse whose Binds
    /// are wrapped, or that is refused at its Bind.
    pub fn text_only(write: &RecordedWrite) -> Plan {
        Plan {
            sql: write.replacement.clone(),
            rename_tag: write.rename_tag.clone(),
            ..Plan::default()
        }
    }

    /// A write prepared at Parse, now bound: the same plan without replacing the SQL (the
    /// Parse already did).
    pub fn plan_bind(&self, write: &RecordedWrite, at: Position, check_schema: bool) -> Plan {
        Plan {
            sql: None,
            ..self.plan(write, at, check_schema)
        }
    }

    /// A read inside the client's transaction: in a read-only savepoint.
    pub fn read_in_transaction(&self) -> Plan {
        Plan {
            before: vec![READ_SAVEPOINT_OPEN.to_owned()],
            after: vec![READ_SAVEPOINT_RELEASE.to_owned()],
            ..Plan::default()
        }
    }

    /// A read that locks rows (`FOR UPDATE` / `SHARE`) inside the client's transaction:
    /// PostgreSQL refuses row locks in a read-only transaction, so it cannot run in the
    /// read-only savepoint; it gets the hidden-write check instead ([`Self::hidden_write_check`],
    /// catalogs included, so a function's DDL shows too).
    pub fn locking_read_in_transaction(&self) -> Plan {
        let (before, after) = self.locking_read_check.as_ref().clone();
        Plan {
            before: vec![before],
            after: vec![after],
            ..Plan::default()
        }
    }

    /// Reads later in an extended-protocol batch that the client's read-write `BEGIN`
    /// started from autocommit (pgjdbc sends `BEGIN` and the transaction's first statement
    /// in one batch): nothing can be put in front of them, so after the batch pgbelay
    /// checks that the transaction wrote nothing at all. Anything that writes (a table,
    /// the catalogs, a sequence, a large object, a temporary table) gives the transaction
    /// an id; a read does not. (The per-table counters of the other checks count since the
    /// backend last reported its statistics, so they need a baseline taken inside the
    /// transaction, which nothing could take here.)
    pub fn checked_since_begin(&self) -> Plan {
        Plan {
            after: vec![WROTE_SINCE_BEGIN.to_owned()],
            ..Plan::default()
        }
    }

    /// DDL that runs the user's code over rows (CREATE TABLE AS, REFRESH MATERIALIZED
    /// VIEW, ALTER TABLE computing a default or checking a constraint): it must run
    /// read-write, so, like a locking read, it gets the hidden-write check, with the
    /// relations it fills or alters (`targets`) and the catalogs (which DDL writes) left
    /// out. In autocommit it runs in a transaction of pgbelay's own, so the DDL goes with
    /// the refusal.
    pub fn ddl_with_write_check(&self, targets: &[QualifiedName], autocommit: bool) -> Plan {
        let (before, after) = self.hidden_write_check(targets, false);
        let mut plan = Plan {
            before: vec![before],
            after: vec![after],
            ..Plan::default()
        };
        if autocommit {
            plan.before.insert(0, "BEGIN READ WRITE".to_string());
            plan.after.push("COMMIT".to_string());
        }
        plan
    }

    /// The statements before and after something that must run read-write in a
    /// transaction yet may not write unrecorded. Before it, the transaction's row changes
    /// per table are noted ([`TUPLES_BEFORE`]); after it, a table whose count differs, or
    /// that is gone, means a function it called wrote, and the statement raises 25006,
    /// which aborts the transaction. Left out: `own` (what the statement itself fills),
    /// the audit trail, temporary tables, and unless `catalogs`, the system catalogs.
    fn hidden_write_check(&self, own: &[QualifiedName], catalogs: bool) -> (String, String) {
        let literal = |name: &str| audit::quote_literal(name).unwrap_or_else(|_| "''".to_string());
        let audit = literal(&self.audit_schema);
        let trash = literal(&format!("{}_trash", self.audit_schema));
        let system = if catalogs {
            String::new()
        } else {
            "AND ns.nspname NOT IN ('pg_catalog', 'information_schema') ".to_string()
        };
        let tables = format!(
            "SELECT c.oid, {TUPLES_OF_C} AS n FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') {system}\
             AND ns.nspname NOT IN ({audit}, {trash}) \
             AND pg_catalog.left(ns.nspname, 8) <> 'pg_temp_' \
             AND pg_catalog.left(ns.nspname, 9) <> 'pg_toast_'"
        );
        let snapshot = format!(
            "SELECT pg_catalog.set_config('{TUPLES_BEFORE}', coalesce((\
             SELECT pg_catalog.string_agg(t.oid::pg_catalog.text || ':' || t.n::pg_catalog.text, ',') \
             FROM ({tables}) t WHERE t.n > 0), ''), true)"
        );
        let own = own
            .iter()
            .filter_map(|t| audit::regclass(&t.to_string(), true).ok())
            .map(|rel| format!("coalesce({rel}::pg_catalog.oid, 0)"))
            .chain(std::iter::once("0".to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let check = format!(
            "DO $pgbelay_check$ DECLARE v_written text; BEGIN \
             IF NOT pg_catalog.current_setting('track_counts')::bool THEN \
             RAISE EXCEPTION USING ERRCODE = '25006', \
             MESSAGE = 'pgbelay: refused: the statement cannot be checked for hidden writes while track_counts is off', \
             DETAIL = 'statement class: hidden write', \
             HINT = 'The statement is rolled back (inside your transaction: the transaction is aborted, ROLLBACK). The check needs track_counts = on (the default).'; \
             END IF; \
             WITH before AS (SELECT pg_catalog.split_part(x, ':', 1)::pg_catalog.oid AS oid, \
             pg_catalog.split_part(x, ':', 2)::pg_catalog.int8 AS n \
             FROM pg_catalog.unnest(pg_catalog.string_to_array(pg_catalog.current_setting('{TUPLES_BEFORE}'), ',')) x), \
             now AS ({tables}) \
             SELECT pg_catalog.string_agg(coalesce(now.oid::pg_catalog.regclass::pg_catalog.text, \
             'a table dropped since (oid ' || b.oid || ')'), ', ') INTO v_written \
             FROM now FULL JOIN before b ON b.oid = now.oid \
             WHERE coalesce(now.oid, b.oid) NOT IN ({own}) \
             AND (now.oid IS NULL OR now.n <> coalesce(b.n, 0)); \
             IF v_written IS NOT NULL THEN \
             RAISE EXCEPTION USING ERRCODE = '25006', \
             MESSAGE = 'pgbelay: refused: the statement wrote to ' || v_written || ' through a function it called (it wrote to the database, where pgbelay cannot record it)', \
             DETAIL = 'statement class: hidden write', \
             HINT = 'The statement is rolled back (inside your transaction: the transaction is aborted, ROLLBACK). Run the write as its own statement, so that it is recorded.'; \
             END IF; END $pgbelay_check$"
        );
        (snapshot, check)
    }

    /// Additive DDL that runs none of the user's code, in autocommit: the session's
    /// read-only default would refuse it, so it runs with the default off (a SET before,
    /// one after). Not a transaction of pgbelay's own: `CREATE INDEX CONCURRENTLY` cannot
    /// run inside one.
    pub fn ddl_in_autocommit(&self) -> Plan {
        Plan {
            before: vec!["SET default_transaction_read_only = off".to_string()],
            after: self.session_start(),
            ..Plan::default()
        }
    }
}

/// A DO block run before a session's first recorded write: when the audit schema is
/// missing or older than this pgbelay's ([`audit::SCHEMA_VERSION`], read from the schema's
/// comment), it installs or upgrades it if the session's role may (create schemas in the
/// database; own the existing schema), as `pgbelay init` does, and otherwise raises the
/// §A3 refusal with a hint to run `pgbelay init`, so the write that follows fails instead
/// of running unrecorded or half-recorded. A newer schema is left alone. When the schema
/// is current this is one catalog lookup.
fn ensure_schema(audit_schema: &str) -> String {
    let name = audit::quote_literal(audit_schema).unwrap_or_else(|_| "''".to_string());
    let ident = audit::quote_literal(&audit::quote_ident(audit_schema))
        .unwrap_or_else(|_| "''".to_string());
    let wanted = audit::SCHEMA_VERSION;
    // The install script travels as one string literal; its own dollar quotes are inert.
    let install = audit::install_sql(audit_schema)
        .ok()
        .and_then(|sql| audit::quote_literal(&sql).ok());
    let install = match install {
        Some(script) => format!(
            "IF (v_version IS NULL AND pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')) \
                OR (v_version IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace \
                    WHERE oid = pg_catalog.to_regnamespace({ident}) AND pg_catalog.pg_has_role(nspowner, 'USAGE'))) THEN \
             EXECUTE {script}; RETURN; END IF; "
        ),
        None => String::new(),
    };
    format!(
        "DO $pgbelay_ensure$ DECLARE v_version int := (pg_catalog.regexp_match(pg_catalog.obj_description(\
         pg_catalog.to_regnamespace({ident}), 'pg_namespace'), '^pgbelay audit schema, version ([0-9]+)$'))[1]::int; \
         BEGIN IF v_version IS NULL OR v_version < {wanted} THEN {install}\
         RAISE EXCEPTION USING ERRCODE = '42501', \
         MESSAGE = 'pgbelay: refused: the audit schema ' || {name} || CASE WHEN v_version IS NULL \
         THEN ' is not installed in this database' ELSE ' is at version ' || v_version || ', older than this pgbelay''s ({wanted})' END \
         || ', so the write cannot be recorded', \
         DETAIL = 'statement class: write', \
         HINT = 'Run: pgbelay init --db <URL of this database> (as its owner)'; \
         END IF; END $pgbelay_ensure$"
    )
}

#[cfg(test)]
mod test {
    use super::*;

    fn at(tx_status: TxStatus) -> Position {
        Position {
            tx_status,
            pipelined: false,
            batch_start: true,
            batch_ran: false,
        }
    }

    fn target() -> QualifiedName {
        QualifiedName {
            schema: None,
            name: "orders".into(),
        }
    }

    #[test]
    fn autocommit_delete_is_wrapped_and_renamed() {
        let r = Recorder::new(&Settings::default());
        let sql = "DELETE FROM orders WHERE id = 1";
        let w = r
            .write(
                &SessionInfo::default(),
                WriteKind::Delete,
                &target(),
                Source {
                    text: sql,
                    client_sql: sql,
                    dialect: Dialect::default(),
                },
                None,
            )
            .unwrap();
        let plan = r.plan(&w, at(TxStatus::Idle), true);
        assert_eq!(plan.before[0], "BEGIN READ WRITE");
        assert!(plan.before[1].starts_with("DO $pgbelay_ensure$"));
        assert!(
            plan.before[2].starts_with("SELECT \"pgbelay\".begin_statement("),
            "{}",
            plan.before[2]
        );
        assert!(
            plan.before[2].contains(
                "::pg_catalog.regclass, 'DELETE FROM orders WHERE id = 1', 'delete', 1000,"
            ),
            "{}",
            plan.before[2]
        );
        assert_eq!(plan.after, vec!["COMMIT"]);
        assert_eq!(
            plan.sql.as_deref(),
            Some(
                "UPDATE orders SET deleted_at = pg_catalog.now() WHERE orders.deleted_at IS NULL AND id = 1"
            )
        );
        assert_eq!(plan.rename_tag, Some(("UPDATE".into(), "DELETE".into())));
    }

    #[test]
    fn inside_a_transaction_the_write_is_announced_and_nothing_follows_it() {
        let r = Recorder::new(&Settings::default());
        let sql = "UPDATE orders SET n = 1 WHERE id = 1";
        let w = r
            .write(
                &SessionInfo::default(),
                WriteKind::Update,
                &target(),
                Source {
                    text: sql,
                    client_sql: sql,
                    dialect: Dialect::default(),
                },
                None,
            )
            .unwrap();
        let plan = r.plan(&w, at(TxStatus::InTransaction), false);
        assert_eq!(plan.before.len(), 1);
        assert!(plan.after.is_empty(), "{:?}", plan.after);
        assert_eq!(plan.sql, None);
    }
}
