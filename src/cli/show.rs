//! `pgbelay show --db URL ID`: one change — who, when, what ran — and a diff of its rows.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use super::changes::{DbArgs, history_failure, note, one_line, short_time};
use crate::audit::history::{self, ChangeDetail, RowDiff, RowOp};

/// Arguments of `pgbelay show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Where the audit trail is.
    #[command(flatten)]
    pub db: DbArgs,
    /// The change id (from `pgbelay changes`).
    pub id: i64,
    /// Rows of the diff to print; the rest are counted.
    #[arg(long, default_value_t = 20)]
    pub rows: i64,
    /// Print JSON: the change object with children, trash, key_columns, diff, more_rows.
    #[arg(long)]
    pub json: bool,
}

/// Prints one change; exit 0, 1 when it does not exist.
pub fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let client = args.db.connect().await?;
        match history::show(&client, &args.db.audit_schema, args.id, args.rows).await {
            Ok(detail) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&detail)?);
                } else {
                    print!("{}", text(&detail));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(history_failure("show", &e)),
        }
    })
}

/// A value as the text form shows it: SQL NULL as `NULL`; text that could be mistaken
/// for something else (the word NULL, empty, spaces at an end, a quote first, the diff's
/// arrow) as a quoted literal, and text with control characters (a newline that would
/// start a forged diff line, a terminal escape) as an `E''` literal with them escaped.
fn value(v: &Option<String>) -> Cow<'_, str> {
    let Some(s) = v.as_deref() else {
        return Cow::Borrowed("NULL");
    };
    if s.chars().any(char::is_control) {
        let mut out = String::from("E'");
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04X}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('\'');
        return Cow::Owned(out);
    }
    let ambiguous = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
        || s.starts_with('\'')
        || s.contains('→');
    if ambiguous {
        Cow::Owned(format!("'{}'", s.replace('\'', "''")))
    } else {
        Cow::Borrowed(s)
    }
}

fn key(row: &RowDiff) -> String {
    row.key
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human form: a header of labelled fields, then one block per row:
/// `~` updated (column: old → new), `-` removed, `+` added.
fn text(d: &ChangeDetail) -> String {
    let c = &d.change;
    let mut out = format!("change {}: {} on {}", c.id, c.kind, c.table());
    if let Some(rows) = c.rows {
        let _ = write!(out, " ({rows} row{})", if rows == 1 { "" } else { "s" });
    }
    out.push('\n');
    let mut field = |label: &str, text: String| {
        if !text.is_empty() {
            let _ = writeln!(out, "  {label:<12} {text}");
        }
    };
    field("at", short_time(&c.at));
    field("txid", c.txid.to_string());
    let mut who = c.session_user.clone();
    if let Some(addr) = &c.client_addr {
        let _ = write!(who, " from {addr}");
    }
    if let Some(app) = &c.application_name {
        let _ = write!(who, " ({app})");
    }
    field("user", who);
    field(
        "statement",
        c.statement
            .as_deref()
            .map(|s| one_line(s, 200))
            .unwrap_or_default(),
    );
    if c.executed != c.statement {
        field(
            "executed",
            c.executed
                .as_deref()
                .map(|s| one_line(s, 200))
                .unwrap_or_default(),
        );
    }
    if let Some(token) = &c.approval {
        let mut text = token.clone();
        if let Some(by) = &c.approved_by {
            let _ = write!(text, " by {by}");
        }
        if let Some(reason) = &c.reason {
            let _ = write!(text, ": {reason}");
        }
        field("approval", text);
    }
    field("links", note(c));
    if let Some(trash) = &d.trash {
        field(
            "recycle bin",
            match trash.restored_by {
                Some(by) => format!("{} (restored by change {by})", trash.trash_name),
                None => trash.trash_name.clone(),
            },
        );
    }
    for child in &d.children {
        let rows = child.rows.unwrap_or(0);
        field(
            "child",
            format!(
                "{} {} on {} ({rows} row{})",
                child.id,
                child.kind,
                child.table(),
                if rows == 1 { "" } else { "s" }
            ),
        );
    }
    if d.diff.is_empty() && d.more_rows == 0 {
        return out;
    }
    if d.key_columns.is_empty() {
        out.push_str("rows (no primary key: images listed one by one):\n");
    } else {
        let _ = writeln!(out, "rows (by {}):", d.key_columns.join(", "));
    }
    for row in &d.diff {
        let (mark, what) = match row.op {
            RowOp::Update => ('~', "updated"),
            RowOp::Delete => ('-', "removed"),
            RowOp::Insert => ('+', "added"),
        };
        let k = key(row);
        let _ = writeln!(
            out,
            "{mark} {}{what}",
            if k.is_empty() {
                String::new()
            } else {
                format!("{k}  ")
            }
        );
        for col in &row.columns {
            let _ = match row.op {
                RowOp::Update => writeln!(
                    out,
                    "    {}: {} → {}",
                    col.column,
                    value(&col.before),
                    value(&col.after)
                ),
                RowOp::Delete => writeln!(out, "    {}: {}", col.column, value(&col.before)),
                RowOp::Insert => writeln!(out, "    {}: {}", col.column, value(&col.after)),
            };
        }
    }
    if d.more_rows > 0 {
        let _ = writeln!(
            out,
            "… and {} more row{}",
            d.more_rows,
            if d.more_rows == 1 { "" } else { "s" }
        );
    }
    out
}

#[cfg(test)]
mod test {
    use super::value;

    fn shown(v: Option<&str>) -> String {
        value(&v.map(str::to_string)).into_owned()
    }

    #[test]
    fn values_that_could_be_mistaken_are_quoted_and_control_characters_escaped() {
        assert_eq!(shown(None), "NULL");
        assert_eq!(shown(Some("NULL")), "'NULL'");
        assert_eq!(shown(Some("null")), "'null'");
        assert_eq!(shown(Some("")), "''");
        assert_eq!(shown(Some(" padded")), "' padded'");
        assert_eq!(shown(Some("it's")), "it's");
        assert_eq!(shown(Some("'quoted'")), "'''quoted'''");
        assert_eq!(shown(Some("a → b")), "'a → b'");
        assert_eq!(
            shown(Some("x\n+ id=99  added\u{1b}[31m")),
            "E'x\\n+ id=99  added\\u001B[31m'"
        );
        assert_eq!(shown(Some("a\\b\tc")), "E'a\\\\b\\tc'");
        assert_eq!(shown(Some("paid")), "paid");
    }
}
