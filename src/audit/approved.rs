//! The calls that record approved statements no row trigger sees (SPEC §B5, §B6): the
//! recycle-bin drop, the preparation of every table a TRUNCATE empties, and the change row
//! of an approved DDL statement. Each runs after `begin_statement` announced the statement
//! with the token's id, in the same transaction, before the statement.

use super::AuditError;
use super::schema::{check_schema_name, quote_ident, quote_literal, regclass};

/// `SELECT <audit>.record_change(kind, schema, name)`: one change row for a statement no
/// trigger records (approved DDL), with the announced statement's approval. A name the
/// statement did not qualify gets the schema the session's search_path finds it in (the
/// call runs before the statement, so a dropped object still exists), so that `pgbelay
/// changes --table schema.name` finds it.
pub fn record_change_sql(
    audit_schema: &str,
    kind: &str,
    table_schema: Option<&str>,
    table_name: Option<&str>,
) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let schema = match (table_schema, table_name) {
        (Some(schema), _) => quote_literal(schema)?,
        (None, Some(name)) => format!(
            "(SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_class c \
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
              WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(pg_catalog.quote_ident({})))",
            quote_literal(name)?
        ),
        (None, None) => "NULL".to_string(),
    };
    let name = match table_name {
        Some(name) => quote_literal(name)?,
        None => "NULL".to_string(),
    };
    Ok(format!(
        "SELECT {}.record_change({}, {schema}, {name})",
        quote_ident(audit_schema),
        quote_literal(kind)?,
    ))
}

/// `SELECT <audit>.prepare_truncate(ARRAY[…], cascade)`: every table the TRUNCATE empties
/// (with CASCADE, also those referencing them) gets its capture trigger, so all their rows
/// are recorded before they go.
pub fn prepare_truncate_sql(
    audit_schema: &str,
    tables: &[String],
    cascade: bool,
) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let rels = tables
        .iter()
        .map(|t| regclass(t, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "SELECT {}.prepare_truncate(ARRAY[{}]::pg_catalog.regclass[], {cascade})",
        quote_ident(audit_schema),
        rels.join(", ")
    ))
}

/// A `DO` block that moves each table into the recycle bin with
/// `<audit>.recycle_table` (which records the drop). `DO` answers with a bare `DO` tag and
/// no rows, which the proxy renames to `DROP TABLE`. With `if_exists`, missing tables are
/// skipped as DROP TABLE IF EXISTS would.
pub fn recycle_tables_sql(
    audit_schema: &str,
    tables: &[String],
    if_exists: bool,
) -> Result<String, AuditError> {
    check_schema_name(audit_schema)?;
    let recycle = format!("{}.recycle_table", quote_ident(audit_schema));
    let mut body = String::from("BEGIN ");
    for table in tables {
        let rel = regclass(table, if_exists)?;
        if if_exists {
            body.push_str(&format!(
                "IF {rel} IS NOT NULL THEN PERFORM {recycle}({rel}); END IF; "
            ));
        } else {
            body.push_str(&format!("PERFORM {recycle}({rel}); "));
        }
    }
    body.push_str("END");
    // A dollar-quote tag the body cannot contain (a table name could hold any text).
    let mut tag = String::from("$pgbelay_drop$");
    while body.contains(&tag) {
        tag.insert(tag.len() - 1, 'x');
    }
    Ok(format!("DO {tag} {body} {tag}"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn recycle_block_quotes_names_and_its_dollar_tag() {
        let sql = recycle_tables_sql(
            "pgbelay",
            &["t".into(), "s.\"A$pgbelay_drop$\"".into()],
            false,
        )
        .unwrap();
        assert!(sql.starts_with("DO $pgbelay_dropx$ BEGIN PERFORM \"pgbelay\".recycle_table('t'::pg_catalog.regclass); "), "{sql}");
        assert!(sql.ends_with(" END $pgbelay_dropx$"), "{sql}");
        let if_exists = recycle_tables_sql("pgbelay", &["t".into()], true).unwrap();
        assert!(
            if_exists.contains("IF pg_catalog.to_regclass('t') IS NOT NULL THEN"),
            "{if_exists}"
        );
    }

    #[test]
    fn record_and_prepare_calls() {
        assert_eq!(
            record_change_sql("pgbelay", "drop", Some("s"), Some("it's")).unwrap(),
            "SELECT \"pgbelay\".record_change('drop', 's', 'it''s')"
        );
        assert_eq!(
            record_change_sql("pgbelay", "do block", None, None).unwrap(),
            "SELECT \"pgbelay\".record_change('do block', NULL, NULL)"
        );
        let found = record_change_sql("pgbelay", "drop", None, Some("it's")).unwrap();
        assert!(
            found.contains("pg_catalog.to_regclass(pg_catalog.quote_ident('it''s'))"),
            "{found}"
        );
        assert_eq!(
            prepare_truncate_sql("a", &["t".into(), "u".into()], true).unwrap(),
            "SELECT \"a\".prepare_truncate(ARRAY['t'::pg_catalog.regclass, 'u'::pg_catalog.regclass]::pg_catalog.regclass[], true)"
        );
    }
}
