//! The audit schema's SQL (embedded from `sql/*.sql`) and the statements the proxy injects.

use std::fmt::Write as _;

use super::AuditError;

/// The audit schema when none is configured (SPEC §A2 `audit_schema`).
pub const DEFAULT_AUDIT_SCHEMA: &str = "pgbelay";

/// Version of the schema [`install_sql`] installs; stored in `<audit>.meta` and in the
/// schema's comment (which [`installed_check_sql`] reads).
/// Version 2 added the recycle bin (`trash`, `recycle_table`, `restore_table`) and the
/// undo bookkeeping (`undos`, `begin_undo`, `undone_by`). Version 3 added the event
/// trigger that prepares tables when they are created or altered (`prepare_on_ddl`).
/// Version 4 made the capture functions leaner (the change row written without `_finish`);
/// the upgrade regenerates every prepared table's capture function. Version 5 gave
/// `begin_statement` a fast path (the caller's rights, no nested call, no SET clause) that
/// `_begin_statement` backs. Version 6 counts the blast radius per statement across its
/// triggers (an upsert's inserts and updates, a cascade's children; `pgbelay.rows_total`),
/// not per table and operation. Version 7 records what an approved hard DELETE's ON DELETE
/// actions change in other rows, and the other tables an approved TRUNCATE empties, as
/// parts of its change (`parent_id`), so undo brings them back with it; the upgrade
/// regenerates the capture functions.
pub const SCHEMA_VERSION: i32 = 7;

/// The install script, in order: tables and guards, shadow/trigger management (and the
/// event trigger that runs it at DDL time), capture,
/// the proxy's entry points, privileges and version; then the recycle bin and the undo
/// bookkeeping, which set the privileges of their own functions.
const SQL_PARTS: [&str; 8] = [
    include_str!("sql/schema.sql"),
    include_str!("sql/prepare.sql"),
    include_str!("sql/ddl.sql"),
    include_str!("sql/capture.sql"),
    include_str!("sql/statement.sql"),
    include_str!("sql/finish.sql"),
    include_str!("sql/trash.sql"),
    include_str!("sql/undo.sql"),
];

/// Suffix of the recycle-bin schema (`<audit>_trash`, SPEC §B6).
const TRASH_SUFFIX: &str = "_trash";
/// PostgreSQL truncates identifiers to 63 bytes; both schema names must fit untruncated.
const MAX_IDENT_BYTES: usize = 63;

/// Quotes `name` as an SQL identifier (always quoted, so any spelling survives).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes `text` as an SQL string literal that reads the same whatever
/// `standard_conforming_strings` is: with a backslash present it uses the `E'…'` form with
/// backslashes doubled (as PostgreSQL's own `quote_literal` does). Text cannot hold NUL, so
/// a NUL is an error rather than a silently truncated literal.
pub fn quote_literal(text: &str) -> Result<String, AuditError> {
    if text.contains('\0') {
        return Err(AuditError::Nul { what: "a literal" });
    }
    let quoted = text.replace('\'', "''");
    Ok(if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    })
}

/// Checks that `name` can be the audit schema: the install script embeds it in function
/// bodies quoted with `$pgbelay$`, so `$` is refused, and `<name>_trash` must fit in 63
/// bytes.
pub(super) fn check_schema_name(name: &str) -> Result<(), AuditError> {
    let invalid = |reason| {
        Err(AuditError::InvalidSchemaName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.contains('\0') {
        return invalid("it contains a NUL character");
    }
    if name.contains('$') {
        return invalid("it contains '$'");
    }
    if name.len() + TRASH_SUFFIX.len() > MAX_IDENT_BYTES {
        return invalid("it is longer than 57 bytes (the recycle bin <name>_trash must fit in 63)");
    }
    if name.starts_with("pg_") {
        return invalid("names starting with pg_ are reserved by PostgreSQL");
    }
    Ok(())
}

/// `@SIGNATURE@`: what decides that a prepared table has not changed since (its shadow and
/// capture function fit it): the source's current name and its columns with their types,
/// for the `pg_class` row `c` and its `pg_namespace` row `n`. Schema-qualified throughout:
/// `begin_statement` evaluates it with the caller's search_path.
const SIGNATURE: &str = "pg_catalog.format('%I.%I', n.nspname, c.relname) OPERATOR(pg_catalog.||) ' (' \
     OPERATOR(pg_catalog.||) coalesce((SELECT pg_catalog.string_agg(pg_catalog.format('%I %s/%s', \
     a.attname, a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 \
     AND NOT a.attisdropped), '') OPERATOR(pg_catalog.||) ')'";

/// `@CAPTURE_TRIGGERS_OK@`: the four capture triggers of the `pg_class` row `c` exist and
/// fire in every replication role (schema-qualified, as [`SIGNATURE`]).
const CAPTURE_TRIGGERS_OK: &str = "(SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t \
     WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid AND t.tgenabled OPERATOR(pg_catalog.=) 'A' \
     AND t.tgname OPERATOR(pg_catalog.=) ANY ('{pgbelay_capture_insert,pgbelay_capture_update,\
     pgbelay_capture_delete,pgbelay_capture_truncate}'::pg_catalog.name[])) OPERATOR(pg_catalog.=) 4";

/// Replaces each `@NAME@` placeholder of `template` in one pass, so substituted text is
/// never scanned again.
fn substitute(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match values.iter().find(|(key, _)| tail.starts_with(key)) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &tail[key.len()..];
            }
            None => {
                out.push('@');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The SQL that installs (or re-installs, idempotently) the audit schema `audit_schema`,
/// its recycle bin `<audit_schema>_trash`, and the recording functions. Run it as one
/// transaction (one simple-query message is one); [`super::install`] does.
pub fn install_sql(audit_schema: &str) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let schema = quote_ident(audit_schema);
    let trash = quote_ident(&format!("{audit_schema}{TRASH_SUFFIX}"));
    let literal = quote_literal(audit_schema)?;
    let version = SCHEMA_VERSION.to_string();
    let values = [
        ("@SIGNATURE@", SIGNATURE),
        ("@CAPTURE_TRIGGERS_OK@", CAPTURE_TRIGGERS_OK),
        ("@S@", schema.as_str()),
        ("@T@", trash.as_str()),
        ("@S_LIT@", literal.as_str()),
        ("@VERSION@", version.as_str()),
    ];
    Ok(SQL_PARTS
        .iter()
        .map(|part| substitute(part, &values))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A query returning one row and one column, `version int`: the installed schema version,
/// NULL when `audit_schema` is not installed. Never fails for a missing schema, so it is
/// safe inside a client's transaction.
pub fn installed_check_sql(audit_schema: &str) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let name = quote_literal(&quote_ident(audit_schema))?;
    Ok(format!(
        "SELECT (pg_catalog.regexp_match(pg_catalog.obj_description(pg_catalog.to_regnamespace({name}), \
         'pg_namespace'), '^pgbelay audit schema, version ([0-9]+)$'))[1]::int AS version"
    ))
}

/// Prepares every existing table for recording (shadow table and capture triggers), so
/// the first write to each does not do it inside a client's transaction, where its
/// lock can deadlock with the row locks of concurrent writers. Returns one row: how many
/// tables were prepared.
pub fn prepare_all_sql(audit_schema: &str) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let schema = quote_ident(audit_schema);
    Ok(format!(
        "SELECT pg_catalog.count({schema}.prepare_table(c.oid::pg_catalog.regclass)) \
           FROM pg_catalog.pg_class c WHERE {schema}._recordable(c.oid)"
    ))
}

/// What the proxy announces about one write; see [`begin_statement_sql`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementMeta {
    /// The target table as the client named it, in SQL syntax (`t`, `public."My T"`):
    /// resolved with the session's own search_path. `None` for a statement with no target
    /// table whose rows are captured (the settings are still set, e.g. for
    /// `record_change`).
    pub table: Option<String>,
    /// The statement as the client sent it (recorded in `changes.statement`).
    pub statement: String,
    /// Overrides the recorded kind (otherwise the trigger's own event: insert / update /
    /// delete / truncate): `delete` for the soft-delete UPDATE a DELETE became (which also
    /// applies the foreign-key contract), `undo` for an undo.
    pub kind: Option<String>,
    /// Blast-radius limit: a statement changing more rows fails (SQLSTATE 42501). `None`
    /// is unlimited (approved statements).
    pub max_rows: Option<u64>,
    /// Id of the approval token presented; claimed in `<audit>.approvals` (once only).
    pub approval: Option<String>,
    /// Who approved (from the token).
    pub approved_by: Option<String>,
    /// Why (from the token).
    pub reason: Option<String>,
    /// The client's address as the proxy saw it.
    pub client_addr: Option<String>,
    /// The client's `application_name`.
    pub application_name: Option<String>,
    /// The soft-delete column (SPEC §A2 `soft_delete_column`); `None` means `deleted_at`.
    pub soft_delete_column: Option<String>,
}

/// `SELECT <audit>.begin_statement(...)` announcing the next write of the current
/// transaction (see the module documentation of [`crate::audit`] for the protocol). It
/// returns one row, one `text` column: the shadow table's qualified name (NULL for a
/// temporary table or no table).
pub fn begin_statement_sql(audit_schema: &str, meta: &StatementMeta) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let opt = |value: &Option<String>, what| match value {
        Some(text) => quote_literal(text).map_err(|_| AuditError::Nul { what }),
        None => Ok("NULL".to_string()),
    };
    let rel = match &meta.table {
        Some(table) => regclass(table, false)?,
        None => "NULL".to_string(),
    };
    let statement = quote_literal(&meta.statement).map_err(|_| AuditError::Nul {
        what: "the statement",
    })?;
    let max_rows = meta
        .max_rows
        .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    // Positional, in the function's parameter order: the server resolves named arguments
    // about twice as slowly, and this call precedes every recorded write.
    let args = [
        rel,
        statement,
        opt(&meta.kind, "the kind")?,
        max_rows.to_string(),
        opt(&meta.approval, "the approval")?,
        opt(&meta.approved_by, "approved_by")?,
        opt(&meta.reason, "the reason")?,
        opt(&meta.client_addr, "client_addr")?,
        opt(&meta.application_name, "application_name")?,
    ];
    let mut sql = format!("SELECT {}.begin_statement(", quote_ident(audit_schema));
    sql.push_str(&args.join(", "));
    if let Some(column) = &meta.soft_delete_column {
        let value = quote_literal(column).map_err(|_| AuditError::Nul {
            what: "soft_delete_column",
        })?;
        let _ = write!(sql, ", {value}");
    }
    sql.push(')');
    Ok(sql)
}

/// A table as the client named it, as a `regclass` expression resolved with the session's
/// search_path; `if_exists` gives NULL instead of an error for a missing table.
pub(crate) fn regclass(table: &str, if_exists: bool) -> Result<String, AuditError> {
    let literal = quote_literal(table).map_err(|_| AuditError::Nul {
        what: "the table name",
    })?;
    Ok(if if_exists {
        format!("pg_catalog.to_regclass({literal})")
    } else {
        format!("{literal}::pg_catalog.regclass")
    })
}

/// `SELECT <audit>.end_statement()`: ends the announced statement (later writes of the
/// transaction are not recorded under it) and returns one row, one `bigint` column: the
/// id of the change it recorded, NULL when it changed no rows.
pub fn end_statement_sql(audit_schema: &str) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    Ok(format!(
        "SELECT {}.end_statement()",
        quote_ident(audit_schema)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_for_both_string_modes() {
        assert_eq!(quote_literal("abc").unwrap(), "'abc'");
        assert_eq!(quote_literal("").unwrap(), "''");
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert_eq!(quote_literal("a\\b").unwrap(), "E'a\\\\b'");
        assert_eq!(quote_literal("\\'").unwrap(), "E'\\\\'''");
        assert_eq!(quote_literal("é ☃ $$").unwrap(), "'é ☃ $$'");
        assert!(matches!(quote_literal("a\0b"), Err(AuditError::Nul { .. })));
    }

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("pgbelay"), "\"pgbelay\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(install_sql("pgbelay").is_ok());
        assert!(install_sql("Audit Trail").is_ok());
        assert!(install_sql("").is_err());
        assert!(install_sql("a$b").is_err());
        assert!(install_sql("pg_audit").is_err());
        assert!(install_sql(&"x".repeat(58)).is_err());
        assert!(install_sql(&"x".repeat(57)).is_ok());
    }

    #[test]
    fn install_sql_has_no_placeholders_left() {
        let sql = install_sql("we\"ird").unwrap();
        for placeholder in ["@S@", "@T@", "@S_LIT@", "@VERSION@"] {
            assert!(
                !sql.contains(placeholder),
                "{placeholder} left in the script"
            );
        }
        assert!(sql.contains("\"we\"\"ird\".changes"));
        assert!(sql.contains("\"we\"\"ird_trash\""));
    }

    #[test]
    fn substitution_does_not_rescan_values() {
        let out = substitute("@A@ and @B@ @", &[("@A@", "@B@"), ("@B@", "b")]);
        assert_eq!(out, "@B@ and b @");
    }

    #[test]
    fn begin_statement_quotes_everything() {
        let meta = StatementMeta {
            table: Some("public.\"T\"".into()),
            statement: "UPDATE \"T\" SET a = 'x\\y' WHERE id = $1".into(),
            kind: Some("delete".into()),
            max_rows: Some(1000),
            approval: None,
            client_addr: Some("127.0.0.1".into()),
            ..StatementMeta::default()
        };
        let sql = begin_statement_sql("pgbelay", &meta).unwrap();
        assert_eq!(
            sql,
            "SELECT \"pgbelay\".begin_statement('public.\"T\"'::pg_catalog.regclass, \
             E'UPDATE \"T\" SET a = ''x\\\\y'' WHERE id = $1', 'delete', 1000, NULL, NULL, NULL, \
             '127.0.0.1', NULL)"
        );
        let unlimited = StatementMeta {
            statement: "x".into(),
            ..StatementMeta::default()
        };
        assert!(
            begin_statement_sql("pgbelay", &unlimited)
                .unwrap()
                .contains("begin_statement(NULL, 'x', NULL, -1, ")
        );
        let nul = StatementMeta {
            statement: "a\0".into(),
            ..StatementMeta::default()
        };
        assert!(matches!(
            begin_statement_sql("pgbelay", &nul),
            Err(AuditError::Nul {
                what: "the statement"
            })
        ));
    }
}
