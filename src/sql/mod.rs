//! SQL reading: wraps pg_query (PostgreSQL's own parser); nothing else imports the parser.
//!
//! * `parse`: parse a Query string and split it into statements with their source text.
//! * `walk`: a visitor that reaches every node of the tree (pg_query's own iterator does not).
//! * `analyze`: per statement, what it is ([`Kind`]) and what it would do: the writes, the
//!   function calls and the setting changes found anywhere in its tree.
//!
//! * `canonical`: the text an approval token signs, comments, DROP TABLE / TRUNCATE facts.
//!
//! This module reports facts; it decides nothing. `policy` judges them.

mod analyze;
mod canonical;
mod parse;
mod walk;

pub use analyze::{
    AlterAction, Kind, QualifiedName, SessionReset, SettingChange, SettingName, SettingValue,
    Statement, Write, WriteKind, analyze, ddl_user_code, locks_rows,
};
pub use canonical::{
    CanonicalError, DropTables, TruncateTables, canonical, comments, drop_tables, truncate_tables,
};
pub use parse::{
    Dialect, ParseError, TransactionStart, has_masked_key, numeric_masked_key, quick_masked_key,
};
