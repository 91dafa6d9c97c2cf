//! Built-in and extension functions that destroy data or state, or run SQL text the guard
//! cannot read (as a DO block would), in one place.
//!
//! Matched by function name in any schema: `pg_catalog.lo_unlink` and `lo_unlink` are the
//! same function to the server, and extension functions live wherever the extension was
//! installed. A user function that shadows one of these names is refused too, which errs
//! on the safe side.

use crate::sql::QualifiedName;

/// Each function, with why calling it cannot be undone.
pub const DESTRUCTIVE: &[(&str, &str)] = &[
    ("lo_unlink", "deletes a large object"),
    ("lo_truncate", "cuts off a large object's data"),
    ("lo_truncate64", "cuts off a large object's data"),
    ("lo_put", "overwrites bytes of a large object"),
    ("lowrite", "overwrites bytes of a large object"),
    (
        "lo_export",
        "writes (and overwrites) a file on the database server",
    ),
    ("pg_file_write", "writes a file on the database server"),
    ("pg_file_unlink", "deletes a file on the database server"),
    ("pg_file_rename", "renames a file on the database server"),
    (
        "pg_drop_replication_slot",
        "drops a replication slot and the WAL it held back",
    ),
    (
        "pg_replication_slot_advance",
        "moves a slot forward; skipped changes are gone",
    ),
    (
        "pg_logical_slot_get_changes",
        "consumes a slot's changes; they cannot be read again",
    ),
    (
        "pg_logical_slot_get_binary_changes",
        "consumes a slot's changes; they cannot be read again",
    ),
    (
        "pg_replication_origin_drop",
        "drops a replication origin and its progress",
    ),
    (
        "pg_terminate_backend",
        "kills another session; its open transaction is lost",
    ),
    (
        "pg_promote",
        "promotes a standby; it cannot become a standby again",
    ),
    ("pg_stat_reset", "throws away the statistics counters"),
    (
        "pg_stat_reset_shared",
        "throws away the statistics counters",
    ),
    (
        "pg_stat_reset_single_table_counters",
        "throws away the statistics counters",
    ),
    (
        "pg_stat_reset_single_function_counters",
        "throws away the statistics counters",
    ),
    ("pg_stat_reset_slru", "throws away the statistics counters"),
    (
        "pg_stat_statements_reset",
        "throws away the collected query statistics",
    ),
    ("setval", "moves a sequence; its old value is not recorded"),
    (
        "dblink_exec",
        "runs SQL on another connection, out of pgbelay's sight",
    ),
    (
        "dblink",
        "runs SQL on another connection, out of pgbelay's sight",
    ),
    (
        "dblink_send_query",
        "runs SQL on another connection, out of pgbelay's sight",
    ),
    (
        "dblink_open",
        "runs SQL on another connection, out of pgbelay's sight",
    ),
    (
        "dblink_fetch",
        "runs SQL on another connection, out of pgbelay's sight",
    ),
    ("query_to_xml", "runs SQL text pgbelay cannot read"),
    ("query_to_xmlschema", "runs SQL text pgbelay cannot read"),
    (
        "query_to_xml_and_xmlschema",
        "runs SQL text pgbelay cannot read",
    ),
    ("ts_stat", "runs SQL text pgbelay cannot read"),
    (
        "ts_rewrite",
        "runs SQL text pgbelay cannot read (its two-argument form)",
    ),
];

/// The entry for `name` if it destroys data or state.
///
/// `pg_cancel_backend` is deliberately absent: it only cancels a query, whose transaction
/// rolls back atomically, and a DBA in an incident needs it.
pub fn destructive(name: &QualifiedName) -> Option<&'static (&'static str, &'static str)> {
    DESTRUCTIVE.iter().find(|(n, _)| *n == name.name)
}

#[cfg(test)]
mod test {
    use super::*;

    fn q(schema: Option<&str>, name: &str) -> QualifiedName {
        QualifiedName {
            schema: schema.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn qualified_and_bare_names_match() {
        assert!(destructive(&q(Some("pg_catalog"), "lo_unlink")).is_some());
        assert!(destructive(&q(None, "lo_unlink")).is_some());
        assert!(destructive(&q(None, "pg_cancel_backend")).is_none());
        assert!(destructive(&q(None, "now")).is_none());
    }
}
