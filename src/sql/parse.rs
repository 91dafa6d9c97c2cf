//! Parsing with PostgreSQL's own parser, and splitting a Query into its statements.

use pg_query::ParserOptions;
use pg_query::protobuf::Node;

/// How the session's server reads string literals, which changes where a literal ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialect {
    /// `standard_conforming_strings`: when off, `\'` inside `'…'` does not end the literal.
    pub standard_conforming_strings: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            standard_conforming_strings: true,
        }
    }
}

/// The parser rejected the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// PostgreSQL's own error message (it names the token and the position).
    pub message: String,
}

/// One statement of a Query string, still as a tree.
pub(crate) struct RawStatement<'s> {
    /// This statement's source text, from its first token to its end (without the `;`):
    /// comments before the first token are not part of it.
    pub(crate) text: &'s str,
    /// The tree; `None` only for an empty statement.
    pub(crate) tree: Option<Box<Node>>,
}

/// Parses `sql` and splits it into statements with their source text.
pub(crate) fn parse(sql: &str, dialect: Dialect) -> Result<Vec<RawStatement<'_>>, ParseError> {
    let options = if dialect.standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = pg_query::parse(sql, options).map_err(|e| ParseError {
        message: match e {
            pg_query::Error::Parse(m) => m,
            pg_query::Error::Conversion(_) => "statement text contains a NUL byte".into(),
            other => other.to_string(),
        },
    })?;
    Ok(parsed
        .protobuf
        .stmts
        .into_iter()
        .map(|raw| RawStatement {
            text: source_text(sql, raw.stmt_location, raw.stmt_len),
            tree: raw.stmt,
        })
        .collect())
}

/// The bytes `location .. location + len` of `sql` (len 0: to the end), trimmed; the whole
/// text if the offsets do not fall on character boundaries (they always should).
fn source_text(sql: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0);
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(len) => start.saturating_add(len).min(sql.len()),
    };
    sql.get(start..end).unwrap_or(sql).trim()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn splits_with_source_text() {
        let sql = "select 1; /* c */ delete from t where a = ';'  ;\nselect 'x;y'";
        let stmts = parse(sql, Dialect::default()).unwrap();
        let texts: Vec<_> = stmts.iter().map(|s| s.text).collect();
        assert_eq!(
            texts,
            ["select 1", "delete from t where a = ';'", "select 'x;y'"]
        );
    }

    #[test]
    fn errors_carry_the_parser_message() {
        let err = parse("selec 1", Dialect::default()).err().unwrap();
        assert!(err.message.contains("syntax error"), "{}", err.message);
        assert!(parse("select '\0'", Dialect::default()).is_err());
    }

    #[test]
    fn dialect_changes_where_literals_end() {
        let sql = r"select '\' , $$' ; drop table t; -- $$";
        assert_eq!(parse(sql, Dialect::default()).unwrap().len(), 1);
        let off = Dialect {
            standard_conforming_strings: false,
        };
        assert_eq!(parse(sql, off).unwrap().len(), 2);
    }
}
