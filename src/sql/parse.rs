//! Parsing with PostgreSQL's own parser, and splitting a Query into its statements.

use std::ops::Range;

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
    /// PostgreSQL's own error message (it names the token and the position), or what
    /// pgbelay could not read of the parser's result.
    pub message: String,
    /// The parser read the text, but its tree nests deeper than pgbelay decodes (prost's
    /// limit of 100 levels: a chain of 50 `||` is 100 levels deep).
    pub too_deep: bool,
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
    let parsed = pg_query::parse(sql, options).map_err(|e| {
        let too_deep =
            matches!(&e, pg_query::Error::Decode(d) if d.to_string().contains("recursion limit"));
        ParseError {
            message: match e {
                pg_query::Error::Parse(m) => m,
                pg_query::Error::Conversion(_) => "statement text contains a NUL byte".into(),
                _ if too_deep => "its parse tree is nested more than 100 levels deep".into(),
                other => other.to_string(),
            },
            too_deep,
        }
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

/// How a statement that opens a transaction block asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionStart {
    /// `BEGIN` / `START TRANSACTION` with no access mode: the session's default decides
    /// (read-only through pgbelay). Carries the statement with `READ WRITE` added, built
    /// on its tree, which runs it as the client means it in one statement.
    Default(String),
    /// `… READ WRITE`.
    ReadWrite,
    /// `… READ ONLY`: the client asked for a read-only transaction.
    ReadOnly,
}

/// If `tree` is a `BEGIN` or `START TRANSACTION`, the access mode it asks for.
pub(crate) fn transaction_start(tree: &Node) -> Option<TransactionStart> {
    use pg_query::protobuf::{
        AConst, DefElem, DefElemAction, Integer, TransactionStmtKind as T, a_const::Val,
        node::Node as N,
    };
    let Some(N::TransactionStmt(t)) = tree.node.as_ref() else {
        return None;
    };
    if t.kind != T::TransStmtBegin as i32 && t.kind != T::TransStmtStart as i32 {
        return None;
    }
    let mode = t.options.iter().find_map(|o| match &o.node {
        Some(N::DefElem(d)) if d.defname == "transaction_read_only" => {
            Some(matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(N::AConst(c)) if matches!(&c.val, Some(Val::Ival(i)) if i.ival != 0)))
        }
        _ => None,
    });
    match mode {
        Some(true) => Some(TransactionStart::ReadOnly),
        Some(false) => Some(TransactionStart::ReadWrite),
        None => {
            let mut read_write = t.clone();
            read_write.options.push(Node {
                node: Some(N::DefElem(Box::new(DefElem {
                    defname: "transaction_read_only".into(),
                    arg: Some(Box::new(Node {
                        node: Some(N::AConst(AConst {
                            val: Some(Val::Ival(Integer { ival: 0 })),
                            ..AConst::default()
                        })),
                    })),
                    defaction: DefElemAction::DefelemUnspec as i32,
                    location: -1,
                    ..DefElem::default()
                }))),
            });
            let text = N::TransactionStmt(read_write)
                .deparse(pg_query::DeparseOptions::default())
                .ok()?;
            Some(TransactionStart::Default(text))
        }
    }
}

/// Whether a SELECT anywhere in `tree` has a locking clause (`FOR UPDATE`, `FOR NO KEY
/// UPDATE`, `FOR SHARE`, `FOR KEY SHARE`): from the tree, so `substring(x FROM 1 FOR
/// update)` has none.
pub(crate) fn locks(tree: &Node) -> bool {
    use super::walk::{Step, walk};
    let mut found = false;
    walk(tree, &mut |n| {
        if let pg_query::NodeRef::SelectStmt(s) = n
            && !s.locking_clause.is_empty()
        {
            found = true;
        }
        if found { Step::Skip } else { Step::Into }
    });
    found
}

/// For a single plain `SELECT`: a cache key in which every numeric constant is masked,
/// and the statement's own source span. `None` for anything else.
///
/// Statements that differ only in numeric constants parse to the same shape, so the
/// policy may share one analysis among them (pgbench and ORMs in the simple protocol send
/// a new text per call). It is limited to where a number cannot change the verdict: one
/// statement, starting with SELECT, no EXPLAIN anywhere (`EXPLAIN (ANALYZE 0)` vs `1` is
/// the difference between a read and running a write). String constants are kept, since
/// `set_config()` arguments decide verdicts. The lexer is PostgreSQL's own, so the key's
/// token boundaries are the server's; texts of only words, numbers and plain punctuation
/// (what pgbench and most ORMs send) skip it ([`plain_masked_key`]).
pub fn numeric_masked_key(sql: &str, dialect: Dialect) -> Option<(String, Range<usize>)> {
    quick_masked_key(sql, dialect).unwrap_or_else(|| lexed_masked_key(sql))
}

/// [`numeric_masked_key`] where it is known without PostgreSQL's lexer (one pass over
/// the text, for texts of only words, numbers and plain punctuation); `None` where only
/// the lexer can tell.
pub fn quick_masked_key(sql: &str, dialect: Dialect) -> Option<Option<(String, Range<usize>)>> {
    // pg_query's scan_tokens builds a slice from a null pointer when there is no token at
    // all (undefined behaviour); text with a non-blank character always has one.
    if !dialect.standard_conforming_strings || sql.trim().is_empty() || sql.contains('\0') {
        return Some(None);
    }
    plain_masked_key(sql)
}

/// Whether `sql`'s lexer-free masked key ([`quick_masked_key`]) is `key`, a key that
/// function returned, found without building the key: `sql` must equal the key's text
/// between its masks and hold, at each mask, an integer that the key would mask (a
/// digit run with no word character, digit or `.` on either side). A session checks each
/// new text of pgbench's kind against the few shapes it ran last; this comparison
/// allocates nothing and costs a fraction of building the key.
pub fn has_masked_key(sql: &str, key: &str, dialect: Dialect) -> bool {
    let Some(mut key) = key.as_bytes().strip_prefix(b"\x02") else {
        return false;
    };
    if !dialect.standard_conforming_strings {
        return false;
    }
    let (sql, mut at) = (sql.as_bytes(), 0);
    loop {
        let Some(mask) = memchr::memchr(1, key) else {
            return &sql[at..] == key;
        };
        let Some(rest) = sql[at..].strip_prefix(&key[..mask]) else {
            return false;
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let start = at + mask;
        if digits == 0
            || !bounds_integer(start.checked_sub(1).map(|before| sql[before]))
            || !bounds_integer(sql.get(start + digits).copied())
        {
            return false;
        }
        at = start + digits;
        key = &key[mask + 1..];
    }
}

/// [`numeric_masked_key`] with PostgreSQL's lexer, for any text with a token.
fn lexed_masked_key(sql: &str) -> Option<(String, Range<usize>)> {
    use pg_query::protobuf::Token;
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let code: Vec<_> = tokens
        .iter()
        .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
        .collect();
    let (first, rest) = code.split_first()?;
    if first.token != Token::Select as i32 {
        return None;
    }
    // At most one `;`, and only at the end.
    let body = match rest.split_last() {
        Some((last, body)) if last.token == Token::Ascii59 as i32 => body,
        _ => rest,
    };
    if body
        .iter()
        .any(|t| t.token == Token::Ascii59 as i32 || t.token == Token::Explain as i32)
    {
        return None;
    }
    let start = usize::try_from(first.start).ok()?;
    let end = usize::try_from(body.last().map_or(first.end, |t| t.end)).ok()?;
    let mut key = String::with_capacity(sql.len());
    let mut at = 0usize;
    for t in &code {
        if t.token == Token::Iconst as i32 || t.token == Token::Fconst as i32 {
            let (s, e) = (usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?);
            key.push_str(sql.get(at..s)?);
            key.push('\u{1}');
            at = e;
        }
    }
    key.push_str(sql.get(at..)?);
    Some((key, start..end))
}

/// [`numeric_masked_key`] without the server's lexer, for texts made only of words,
/// digits, blanks and `= < > , ( ) . ; *`: no quote, comment, `$`, backslash or
/// non-ASCII character, so every token is a keyword or identifier (`[A-Za-z_][A-Za-z_0-9]*`),
/// a number or punctuation, and a run of digits with no word character, digit or `.` on
/// either side is exactly an integer constant. Only such runs are masked (`1.5`, `1e5`
/// stay as written: a finer key is always safe). `None` when the text has anything else
/// and the lexer must decide. The keys start with `\u{2}`, so they never meet the
/// lexer's keys.
fn plain_masked_key(sql: &str) -> Option<Option<(String, Range<usize>)>> {
    // One pass (this runs for every simple-protocol SELECT): bytes are checked, word runs
    // copied or masked, `;` counted and the span's ends noted as they come.
    let bytes = sql.as_bytes();
    let mut key = String::with_capacity(sql.len() + 1);
    key.push('\u{2}');
    let (mut i, mut copied) = (0, 0);
    let mut semicolons = 0usize;
    // The span: from the first non-blank byte to after the last one; `end_before_last`
    // is where it ended before a last `;` (which is left out of it).
    let (mut start, mut end, mut end_before_last) = (None, 0, None);
    // Whether the first word, at the first non-blank byte, is SELECT; EXPLAIN anywhere.
    let mut select_first: Option<bool> = None;
    let mut explain = false;
    while i < bytes.len() {
        match CLASS[usize::from(bytes[i])] {
            Class::Other => return None,
            Class::Blank => i += 1,
            Class::Punctuation => {
                let at = *start.get_or_insert(i);
                end_before_last = (bytes[i] == b';').then_some(if end == 0 { at } else { end });
                semicolons += usize::from(bytes[i] == b';');
                select_first.get_or_insert(false);
                i += 1;
                end = i;
            }
            Class::Letter | Class::Digit => {
                let start_of_run = i;
                start.get_or_insert(i);
                let mut digits_only = true;
                while i < bytes.len() {
                    match CLASS[usize::from(bytes[i])] {
                        Class::Digit => {}
                        Class::Letter => digits_only = false,
                        _ => break,
                    }
                    i += 1;
                }
                end = i;
                end_before_last = None;
                if digits_only {
                    // The run is maximal, so only a `.` beside it can make it part of a
                    // larger number; the rule is spelled once, in `bounds_integer`.
                    if bounds_integer(start_of_run.checked_sub(1).map(|b| bytes[b]))
                        && bounds_integer(bytes.get(i).copied())
                    {
                        key.push_str(&sql[copied..start_of_run]);
                        key.push('\u{1}');
                        copied = i;
                    }
                    select_first.get_or_insert(false);
                } else {
                    let run = &bytes[start_of_run..i];
                    explain |= run.eq_ignore_ascii_case(b"explain");
                    select_first.get_or_insert_with(|| run.eq_ignore_ascii_case(b"select"));
                }
            }
        }
    }
    // At most one `;`, and only at the end.
    if let Some(before) = end_before_last {
        semicolons -= 1;
        end = before;
    }
    if select_first != Some(true) || explain || semicolons > 0 {
        return Some(None);
    }
    let start = start.unwrap_or(bytes.len());
    key.push_str(&sql[copied..]);
    Some(Some((key, start..end.max(start))))
}

/// Whether the byte beside a run of digits (`None`: the text's edge) leaves the run an
/// integer constant of its own in the plain texts of [`plain_masked_key`]: not a word
/// character or digit (the run would be part of a word or a longer number) and not `.`
/// (part of a decimal like `1.5` or `.5`). Masking and matching keys both ask this.
fn bounds_integer(beside: Option<u8>) -> bool {
    beside
        .is_none_or(|b| !matches!(CLASS[usize::from(b)], Class::Letter | Class::Digit) && b != b'.')
}

/// How [`plain_masked_key`] reads a byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not plain: the lexer must decide.
    Other,
    /// Space, tab, newline, carriage return.
    Blank,
    /// `= < > , ( ) . ; *`.
    Punctuation,
    /// `[A-Za-z_]`.
    Letter,
    /// `[0-9]`.
    Digit,
}

static CLASS: [Class; 256] = {
    let mut table = [Class::Other; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphabetic() || b == b'_' {
            Class::Letter
        } else if b.is_ascii_digit() {
            Class::Digit
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            Class::Blank
        } else if matches!(
            b,
            b'=' | b'<' | b'>' | b',' | b'(' | b')' | b'.' | b';' | b'*'
        ) {
            Class::Punctuation
        } else {
            Class::Other
        };
        i += 1;
    }
    table
};

#[cfg(test)]
mod test {
    use super::*;
    use std::collections::HashMap;

    /// A repeatable pseudo-random source (xorshift): each call gives a number below `n`.
    fn random_below(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

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

    #[test]
    fn numeric_masking() {
        let d = Dialect::default();
        let (a, span) = numeric_masked_key("SELECT abalance FROM t WHERE aid = 17;", d).unwrap();
        let (b, _) = numeric_masked_key("SELECT abalance FROM t WHERE aid = 123456;", d).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            &"SELECT abalance FROM t WHERE aid = 17;"[span],
            "SELECT abalance FROM t WHERE aid = 17"
        );
        // Strings, identifiers with digits and parameters are not masked.
        let (c, _) = numeric_masked_key("SELECT 'x1' FROM t2 WHERE a = $1", d).unwrap();
        assert!(
            c.contains("'x1'") && c.contains("t2") && c.contains("$1"),
            "{c}"
        );
        let (e, _) = numeric_masked_key("select set_config('a', 'on', false), 1.5e3", d).unwrap();
        assert!(e.contains("'on'"), "{e}");
        for not_plain in [
            "EXPLAIN (ANALYZE 0) DELETE FROM t",
            "SELECT 1; DROP TABLE t",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT 1",
            "DELETE FROM t WHERE a = 1",
            "SET x = 1",
            "/* c */ explain select 1",
            "select * from (explain select 1) x",
            "",
            " \n\t ",
        ] {
            assert_eq!(numeric_masked_key(not_plain, d), None, "{not_plain}");
        }
        let off = Dialect {
            standard_conforming_strings: false,
        };
        assert_eq!(numeric_masked_key("SELECT 1", off), None);
    }

    /// The lexer-free key agrees with PostgreSQL's lexer on generated plain texts: the
    /// same texts are plain SELECTs with the same span, and texts sharing a lexer-free
    /// key share the lexer's key (masking without the lexer never joins more).
    #[test]
    fn plain_masking_agrees_with_the_lexer() {
        let words = [
            "SELECT",
            "select",
            "abalance",
            "FROM",
            "t2",
            "WHERE",
            "aid",
            "=",
            "17",
            "0",
            "123456",
            "1.5",
            "1e5",
            ".5",
            "x1",
            "<",
            ">",
            "(",
            ")",
            ",",
            "*",
            ";",
            "explain",
            "Explain",
            "and",
            "_a9",
            "t.a",
            "007",
            "\n",
            "\t",
            "99999999999999999999",
        ];
        let mut next = random_below(0x2545_f491_u64);
        let mut by_plain_key: HashMap<String, (String, (bool, Option<String>))> = HashMap::new();
        for _ in 0..20_000 {
            let mut sql = String::new();
            if next(4) > 0 {
                sql.push_str(["SELECT ", "select ", " \n SELECT "][next(3)]);
            }
            for _ in 0..1 + next(8) {
                sql.push_str(words[next(words.len())]);
                sql.push_str(["", " ", " ", "  "][next(4)]);
            }
            if sql.trim().is_empty() {
                continue; // numeric_masked_key answers blank text before either path
            }
            let Some(plain) = plain_masked_key(&sql) else {
                panic!("not plain: {sql:?}");
            };
            // A text the lexer rejects (`1.5FROM`) cannot parse, so no shape is stored
            // under its key; what matters is that it shares a key only with such texts.
            let lexes = pg_query::scan_tokens(&sql).is_ok();
            let lexed = lexes.then(|| lexed_masked_key(&sql)).flatten();
            if lexes {
                assert_eq!(
                    plain.as_ref().map(|(_, span)| span.clone()),
                    lexed.as_ref().map(|(_, span)| span.clone()),
                    "{sql:?}"
                );
            }
            if let Some((key, _)) = plain {
                let outcome = (lexes, lexed.map(|(k, _)| k));
                match by_plain_key.get(&key) {
                    Some((other, other_outcome)) => {
                        assert_eq!(&outcome, other_outcome, "{sql:?} vs {other:?}")
                    }
                    None => {
                        by_plain_key.insert(key, (sql, outcome));
                    }
                }
            }
        }
        assert!(by_plain_key.len() > 1_000, "{}", by_plain_key.len());
        // Anything else goes to the lexer.
        for other in [
            "SELECT 'a'",
            "SELECT $1",
            "SELECT 1 -- c",
            "SELECT 1e+5",
            "SELECT é",
        ] {
            assert_eq!(plain_masked_key(other), None, "{other}");
        }
    }

    /// Matching a text against a key is building the text's key and comparing: checked on
    /// generated texts of a small vocabulary (so many share keys) against the keys of the
    /// texts before them.
    #[test]
    fn matching_a_key_is_building_it() {
        let on = Dialect::default();
        let key = |sql: &str| quick_masked_key(sql, on).flatten().map(|(key, _)| key);
        let pgbench = key("SELECT abalance FROM t WHERE aid = 17;").unwrap();
        assert!(has_masked_key(
            "SELECT abalance FROM t WHERE aid = 123456;",
            &pgbench,
            on
        ));
        for other in [
            "SELECT abalance FROM t WHERE aid = 12a;",
            "SELECT abalance FROM t WHERE aid = 1.5;",
            "SELECT abalance FROM t WHERE aid = -1;",
            "SELECT abalance FROM t WHERE aid = ;",
            "SELECT abalance FROM t WHERE aid = 17; ",
            "SELECT abalance FROM t WHERE aid = 17",
            "SELECT abalance FROM t WHERE aid = 17;x",
            "SELECT abalance FROM t WHERE aid = 17;SELECT 1",
        ] {
            assert!(!has_masked_key(other, &pgbench, on), "{other}");
        }
        let off = Dialect {
            standard_conforming_strings: false,
        };
        assert!(!has_masked_key(
            "SELECT abalance FROM t WHERE aid = 17;",
            &pgbench,
            off
        ));
        // Only the lexer-free keys match (they start with \u{2}).
        let lexed = numeric_masked_key("SELECT 'a', 1", on).unwrap().0;
        assert!(!has_masked_key("SELECT 'a', 2", &lexed, on));

        let words = [
            "SELECT", "select", "a", "t.a", "=", ",", "(", ")", ";", "1", "17", "007", "1.5", ".5",
            "5.", "x1", "1e5", "1a", "_", "explain",
        ];
        let mut next = random_below(0x9e37_79b9_u64);
        let mut recent_keys: Vec<String> = Vec::new();
        let (mut matched, mut compared) = (0, 0);
        let mut last = String::new();
        for _ in 0..20_000 {
            // Half of them the last text with its digits changed (`1.5` to `3.0`, `x1`
            // to `x7` as well as `17` to `42`), so texts often share a key.
            let sql = if next(2) == 0 && !last.is_empty() {
                last.chars()
                    .map(|c| match c {
                        '0'..='9' => char::from(b'0' + next(10) as u8),
                        other => other,
                    })
                    .collect()
            } else {
                let mut sql = String::from(["SELECT ", "select "][next(2)]);
                for _ in 0..1 + next(4) {
                    sql.push_str(words[next(words.len())]);
                    sql.push_str(["", " "][next(2)]);
                }
                sql
            };
            let own = key(&sql);
            for candidate in &recent_keys {
                let matches = has_masked_key(&sql, candidate, on);
                assert_eq!(
                    matches,
                    own.as_ref() == Some(candidate),
                    "{sql:?} {candidate:?}"
                );
                matched += usize::from(matches);
                compared += 1;
            }
            last.clone_from(&sql);
            if let Some(own) = own {
                assert!(has_masked_key(&sql, &own, on), "{sql:?}");
                recent_keys.insert(0, own);
                recent_keys.truncate(32);
            }
        }
        // Not vacuous: many texts met a key of another text.
        assert!(
            matched > 5_000 && compared > 200_000,
            "{matched} of {compared}"
        );
    }

    #[test]
    fn transaction_starts() {
        let d = Dialect::default();
        let start = |sql: &str| {
            let parsed = parse(sql, d).expect("parses");
            let [one] = parsed.as_slice() else {
                panic!("one statement: {sql}");
            };
            transaction_start(one.tree.as_deref().expect("tree"))
        };
        let default = |sql: &str| match start(sql) {
            Some(TransactionStart::Default(rewritten)) => {
                // The rewrite reads back as a read-write start with the client's options.
                assert_eq!(start(&rewritten), Some(TransactionStart::ReadWrite));
                rewritten
            }
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(default("BEGIN"), "BEGIN READ WRITE");
        let serializable = default("start transaction isolation level serializable");
        assert!(serializable.contains("SERIALIZABLE"), "{serializable}");
        assert!(serializable.contains("READ WRITE"), "{serializable}");
        assert_eq!(start("BEGIN READ WRITE"), Some(TransactionStart::ReadWrite));
        assert_eq!(start("begin read only"), Some(TransactionStart::ReadOnly));
        assert_eq!(
            start("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            Some(TransactionStart::ReadOnly)
        );
        assert_eq!(start("COMMIT"), None);
        assert_eq!(start("SAVEPOINT a"), None);
    }
}
