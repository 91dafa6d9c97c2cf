//! The database side of recording (SPEC §B2, §B3, §B7, §B10): the audit schema and the
//! capture machinery, in SQL installed by [`install`].
//!
//! Recording lives in the server, not in the proxy: statement-level triggers with
//! transition tables see exactly the rows a statement changed, in the statement's own
//! transaction, so the images are right under concurrent writers, a refusal (blast radius,
//! foreign keys) fails the statement natively, and nothing is half-recorded when a session
//! dies. The proxy only announces each write with [`begin_statement_sql`] (which also
//! creates the shadow table and triggers on first use) and may read the change id back with
//! [`end_statement_sql`]; writes nobody announced (direct connections) are not recorded.
//!
//! # Protocol for one recorded write
//!
//! In one transaction (the proxy's `BEGIN` … `COMMIT` in autocommit, else the client's):
//!
//! 1. `SELECT <audit>.begin_statement(...)` from [`begin_statement_sql`]. Prepares the
//!    target table (first time, or after its columns changed: shadow table, capture
//!    function, triggers; otherwise one catalog query), claims the approval token, and sets
//!    the transaction-local settings `pgbelay.statement`, `.target`, `.kind`, `.max_rows`,
//!    `.approval`, `.approved_by`, `.reason`, `.client_addr`, `.application_name`,
//!    `.soft_delete_column` (and clears `.change_id`, `.parent_id`, `.executed`).
//! 2. The write itself, unchanged; a DELETE already rewritten to the soft-delete UPDATE
//!    (`SET deleted_at = now() WHERE deleted_at IS NULL AND …`) announced with
//!    `kind = "delete"`.
//! 3. Optionally `SELECT <audit>.end_statement()` from [`end_statement_sql`]: returns the
//!    change id (NULL when no row changed) and clears the settings, so later writes of the
//!    transaction are not recorded under this statement. `pgbelay undo` sends it; the
//!    proxy does not (a statement per write saved): through the proxy every later write
//!    announces itself, and nothing else in the transaction can write.
//!
//! The three may be pipelined (in one simple-query message they share an implicit
//! transaction). Errors the write may then raise, with the transaction's usual
//! failed-statement semantics: `42501` `pgbelay: refused: …` (blast radius; a CASCADE child
//! without the soft-delete column; SET NULL / SET DEFAULT without approval) and `23503`
//! (NO ACTION / RESTRICT children of a soft delete). `begin_statement` itself fails with
//! `42501` for a reused approval token, a view or foreign table, a table in the audit
//! schema, or a session user who may not write the table, and with `42P01` for a missing
//! table.
//!
//! # What is recorded
//!
//! One `changes` row per statement and table that changed rows (`rows` > 0); a cascade
//! adds one row per child table with `parent_id` set; `INSERT … ON CONFLICT DO UPDATE` gives
//! an insert and an update row. `executed` is `current_query()` (the whole query string the
//! server received, or the generated UPDATE for a cascade). Images go to
//! `<audit>."<schema>.<table>"`: `before` for UPDATE/DELETE/TRUNCATE rows, `after` for
//! UPDATE/INSERT rows.
//!
//! # Recycle bin and undo
//!
//! An approved DROP TABLE is announced (`kind = 'drop'`) and then, for each table,
//! `SELECT <audit>.recycle_table('t'::regclass)` moves the table into `<audit>_trash` and
//! records a `drop` change (`sql/trash.sql`). [`history`] reads the trail (`pgbelay changes`,
//! `pgbelay show`); [`undo`] reverses a change from its images or moves a table back, and
//! records itself (`sql/undo.sql`).

mod approved;
pub mod history;
mod images;
mod schema;
pub mod undo;

pub use approved::{prepare_truncate_sql, record_change_sql, recycle_tables_sql};
pub(crate) use schema::regclass;

pub use images::Change;
pub use schema::{
    DEFAULT_AUDIT_SCHEMA, SCHEMA_VERSION, StatementMeta, begin_statement_sql, end_statement_sql,
    install_sql, installed_check_sql, prepare_all_sql, quote_ident, quote_literal,
};

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit schema name cannot be used.
    #[error("invalid audit schema name {name:?}: {reason}")]
    InvalidSchemaName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string cannot be sent as an SQL literal (PostgreSQL text cannot hold NUL).
    #[error("{what} contains a NUL character, which PostgreSQL text cannot hold")]
    Nul {
        /// Which value.
        what: &'static str,
    },
    /// The server refused or failed a statement.
    #[error("cannot {what}: {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// The server's (or the connection's) error.
        source: tokio_postgres::Error,
    },
}

/// Installs (or upgrades, idempotently) the audit schema `audit_schema` over `client`, in
/// one transaction: a failure leaves nothing half-installed. Run inside the caller's own
/// transaction it joins that transaction. Used by `pgbelay init` and, when the session may
/// create schemas, by the proxy before the first recorded write.
pub async fn install(
    client: &tokio_postgres::Client,
    audit_schema: &str,
) -> Result<(), AuditError> {
    let sql = install_sql(audit_schema)?;
    // One simple-query message is one implicit transaction.
    client
        .batch_execute(&sql)
        .await
        .map_err(|source| AuditError::Postgres {
            what: "install the audit schema",
            source,
        })
}

/// The installed version of the audit schema `audit_schema`, `None` when it is not
/// installed (or was installed by something that is not pgbelay).
pub async fn installed_version(
    client: &tokio_postgres::Client,
    audit_schema: &str,
) -> Result<Option<i32>, AuditError> {
    let sql = installed_check_sql(audit_schema)?;
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|source| AuditError::Postgres {
            what: "check the audit schema",
            source,
        })?;
    row.try_get(0).map_err(|source| AuditError::Postgres {
        what: "read the audit schema version",
        source,
    })
}
