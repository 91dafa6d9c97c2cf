//! `pgbelay changes --db URL`: recent recorded changes, newest first (SPEC §A1, §B11).

use std::process::ExitCode;

use anyhow::Context;

use crate::audit::Change;
use crate::audit::history::{self, ChangeFilter, HistoryError, Since};

/// Where the audit trail is: the database and the audit schema (shared by `changes`,
/// `show` and `undo`).
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// The database, as a libpq URL or key=value string.
    #[arg(long, env = "PGBELAY_DB")]
    pub db: String,
    /// Schema holding the audit trail.
    #[arg(long, env = "PGBELAY_AUDIT_SCHEMA", default_value = crate::audit::DEFAULT_AUDIT_SCHEMA)]
    pub audit_schema: String,
}

impl DbArgs {
    /// Connects to `--db`; the connection runs on a spawned task.
    pub(crate) async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.db, tokio_postgres::NoTls)
            .await
            .context("connecting to --db")?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// Arguments of `pgbelay changes`.
#[derive(Debug, clap::Args)]
pub struct ChangesArgs {
    /// Where the audit trail is.
    #[command(flatten)]
    pub db: DbArgs,
    /// Only changes since then: a duration back from now (30s, 15m, 2h, 1d, 1w) or a
    /// timestamp ('2026-01-02 03:04').
    #[arg(long)]
    pub since: Option<String>,
    /// Only changes of this table: name or schema.name.
    #[arg(long)]
    pub table: Option<String>,
    /// Only changes made by this session user.
    #[arg(long)]
    pub user: Option<String>,
    /// At most this many changes.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print JSON: an array of change objects.
    #[arg(long)]
    pub json: bool,
}

/// Lists changes; exit 0, 1 when the audit schema is missing, 2 for a bad filter.
pub fn run(args: ChangesArgs) -> anyhow::Result<ExitCode> {
    let since = match args.since.as_deref().map(Since::parse).transpose() {
        Ok(since) => since,
        Err(e) => return Ok(usage("changes", &e)),
    };
    let filter = ChangeFilter {
        since,
        table: args.table.clone(),
        user: args.user.clone(),
        limit: Some(args.limit),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let client = args.db.connect().await?;
        match history::changes(&client, &args.db.audit_schema, &filter).await {
            Ok(list) => {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    print!("{}", table(&list));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(history_failure("changes", &e)),
        }
    })
}

/// Exit code and message for a failed read of the trail.
pub(crate) fn history_failure(command: &str, e: &HistoryError) -> ExitCode {
    match e {
        HistoryError::InvalidSince(_) | HistoryError::InvalidTable(_) => usage(command, e),
        _ => {
            eprintln!("pgbelay {command}: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(command: &str, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pgbelay {command}: {e}");
    ExitCode::from(2)
}

/// `2026-11-23T12:00:00.428691+00:00` → `2026-11-23 12:00:00+00:00`.
pub(crate) fn short_time(at: &str) -> String {
    let at = at.replacen('T', " ", 1);
    match (at.find('.'), at.rfind(['+', '-'])) {
        (Some(dot), Some(zone)) if zone > dot => format!("{}{}", &at[..dot], &at[zone..]),
        (Some(dot), _) => at[..dot].to_string(),
        _ => at,
    }
}

/// One line of text: newlines and tabs become spaces, cut to `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// What links a change to others, for the NOTE column.
pub(crate) fn note(c: &Change) -> String {
    let mut parts = Vec::new();
    if let Some(parent) = c.parent_id {
        parts.push(format!("part of {parent}"));
    }
    if let Some(of) = c.undo_of {
        parts.push(format!("undoes {of}"));
    }
    if let Some(by) = c.undone_by {
        parts.push(format!("undone by {by}"));
    }
    parts.join(", ")
}

/// The aligned table `pgbelay changes` prints.
fn table(list: &[Change]) -> String {
    if list.is_empty() {
        return "no changes\n".to_string();
    }
    let header = [
        "ID",
        "AT",
        "USER",
        "KIND",
        "TABLE",
        "ROWS",
        "NOTE",
        "STATEMENT",
    ];
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|c| {
            [
                c.id.to_string(),
                short_time(&c.at),
                c.session_user.clone(),
                c.kind.clone(),
                c.table(),
                c.rows.map_or_else(String::new, |n| n.to_string()),
                note(c),
                one_line(c.statement.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i == cells.len() - 1 {
                text.push_str(cell);
            } else if i == 0 || i == 5 {
                // numbers right-aligned
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
                text.push_str("  ");
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn times_and_lines() {
        assert_eq!(
            short_time("2026-11-23T12:00:00.428691+00:00"),
            "2026-11-23 12:00:00+00:00"
        );
        assert_eq!(
            short_time("2026-11-23T12:00:00+02:00"),
            "2026-11-23 12:00:00+02:00"
        );
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
