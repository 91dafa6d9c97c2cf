//! What an approval token signs and where it travels: the canonical text of one statement,
//! the comments of a Query, and the facts of the statements an approval turns into
//! something else (DROP TABLE, TRUNCATE).

use pg_query::DeparseOptions;
use pg_query::protobuf::{DropBehavior, ObjectType, node::Node as N};

use super::analyze::{QualifiedName, func_name, range_var};
use super::parse::{Dialect, ParseError, parse};

/// Why a text has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// PostgreSQL's parser rejected it.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// It holds no statement, or more than one.
    #[error("an approval covers exactly one statement; this text holds {0}")]
    NotOne(usize),
    /// The deparser could not print the tree back.
    #[error("cannot print the statement back: {0}")]
    Deparse(String),
}

/// The statement as PostgreSQL's parser reads it, printed back by its deparser: case,
/// whitespace, comments and a trailing `;` do not matter; literals and quoted names do
/// (a fingerprint would ignore literals, so it is not what is signed). The session's
/// `dialect` decides where literals end; the printed form is the same in either dialect.
pub fn canonical(sql: &str, dialect: Dialect) -> Result<String, CanonicalError> {
    let statements = parse(sql, dialect)?;
    let [one] = statements.as_slice() else {
        return Err(CanonicalError::NotOne(statements.len()));
    };
    let Some(node) = one.tree.as_ref().and_then(|t| t.node.as_ref()) else {
        return Err(CanonicalError::NotOne(0));
    };
    node.deparse(DeparseOptions::default())
        .map_err(|e| CanonicalError::Deparse(e.to_string()))
}

/// The text of every comment in `sql` (`/* … */` and `-- …`), read with PostgreSQL's own
/// lexer so a comment-like string literal is not one. Empty when the text does not lex.
pub fn comments(sql: &str) -> Vec<&str> {
    use pg_query::protobuf::Token;
    if sql.contains('\0') {
        return Vec::new();
    }
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return Vec::new();
    };
    tokens
        .iter()
        .filter(|t| t.token == Token::CComment as i32 || t.token == Token::SqlComment as i32)
        .filter_map(|t| {
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            sql.get(start..end)
        })
        .collect()
}

/// The tree of `sql` when it is exactly one statement.
fn only_statement(sql: &str, dialect: Dialect) -> Option<N> {
    let mut statements = parse(sql, dialect).ok()?;
    if statements.len() != 1 {
        return None;
    }
    statements.pop()?.tree?.node
}

/// `DROP TABLE a, b [CASCADE]`: what a recycle-bin drop needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropTables {
    /// The tables, as named.
    pub tables: Vec<QualifiedName>,
    /// `IF EXISTS`: a missing table is skipped.
    pub if_exists: bool,
    /// `CASCADE`: dependent objects go too.
    pub cascade: bool,
}

/// The tables of a single `DROP TABLE` statement; `None` for anything else (other object
/// types, several statements, unparseable text).
pub fn drop_tables(sql: &str, dialect: Dialect) -> Option<DropTables> {
    let Some(N::DropStmt(d)) = only_statement(sql, dialect) else {
        return None;
    };
    if d.remove_type != ObjectType::ObjectTable as i32 {
        return None;
    }
    let tables = d
        .objects
        .iter()
        .map(|o| match &o.node {
            Some(N::List(l)) => Some(func_name(&l.items)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(DropTables {
        tables,
        if_exists: d.missing_ok,
        cascade: d.behavior == DropBehavior::DropCascade as i32,
    })
}

/// `TRUNCATE a, b [CASCADE]`: the tables whose rows are recorded first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateTables {
    /// The tables, as named.
    pub tables: Vec<QualifiedName>,
    /// `CASCADE`: tables referencing them by foreign key are truncated too.
    pub cascade: bool,
}

/// The tables of a single `TRUNCATE` statement; `None` for anything else.
pub fn truncate_tables(sql: &str, dialect: Dialect) -> Option<TruncateTables> {
    let Some(N::TruncateStmt(t)) = only_statement(sql, dialect) else {
        return None;
    };
    let tables = t
        .relations
        .iter()
        .map(|r| match &r.node {
            Some(N::RangeVar(r)) => Some(range_var(r)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(TruncateTables {
        tables,
        cascade: t.behavior == DropBehavior::DropCascade as i32,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn canon(sql: &str) -> String {
        canonical(sql, Dialect::default()).unwrap()
    }

    #[test]
    fn case_space_and_comments_do_not_matter() {
        assert_eq!(canon("drop   table T"), canon("DROP TABLE t;"));
        assert_eq!(
            canon("/* pgbelay:approve=x */ DROP TABLE t"),
            canon("DROP TABLE t")
        );
        assert_eq!(canon("DROP TABLE t"), "DROP TABLE t");
    }

    #[test]
    fn literals_and_quoted_names_do() {
        assert_ne!(
            canon("DELETE FROM t WHERE id = 1"),
            canon("DELETE FROM t WHERE id = 2")
        );
        assert_ne!(
            canon("DELETE FROM t WHERE s = 'a'"),
            canon("DELETE FROM t WHERE s = 'b'")
        );
        assert_ne!(canon("DROP TABLE \"T\""), canon("DROP TABLE t"));
    }

    #[test]
    fn the_dialect_decides_where_a_literal_ends() {
        let off = Dialect {
            standard_conforming_strings: false,
        };
        let sql = r"DELETE FROM t WHERE s = 'a\' OR true --' AND id = 1";
        let standard = canonical(sql, Dialect::default());
        let legacy = canonical(sql, off).unwrap();
        assert_ne!(standard.ok(), Some(legacy.clone()));
        assert!(legacy.contains("id = 1"), "{legacy}");
    }

    #[test]
    fn exactly_one_statement() {
        assert_eq!(
            canonical("DROP TABLE a; DROP TABLE b", Dialect::default()),
            Err(CanonicalError::NotOne(2))
        );
        assert!(matches!(
            canonical("DROP TABLE", Dialect::default()),
            Err(CanonicalError::Parse(_))
        ));
        assert_eq!(
            canonical(" ; ", Dialect::default()),
            Err(CanonicalError::NotOne(0))
        );
    }

    #[test]
    fn comments_are_found_by_the_lexer() {
        assert_eq!(
            comments("/* a */ SELECT '/* not */' -- b\n, 1"),
            vec!["/* a */", "-- b"]
        );
        assert!(comments("SELECT 'unterminated").is_empty());
    }

    #[test]
    fn drop_and_truncate_facts() {
        let d = drop_tables(
            "drop table if exists s.a, \"B\" cascade",
            Dialect::default(),
        )
        .unwrap();
        assert!(d.if_exists && d.cascade);
        assert_eq!(d.tables[0].to_string(), "s.a");
        assert_eq!(d.tables[1].to_string(), "\"B\"");
        assert_eq!(drop_tables("DROP VIEW v", Dialect::default()), None);
        let t = truncate_tables("TRUNCATE a, s.b CASCADE", Dialect::default()).unwrap();
        assert!(t.cascade);
        assert_eq!(t.tables.len(), 2);
        assert!(
            !truncate_tables("TRUNCATE a", Dialect::default())
                .unwrap()
                .cascade
        );
    }
}
