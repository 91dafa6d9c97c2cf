//! `pgbelay undo --db URL ID [--dry-run] [--force] [--lock-timeout DURATION]`: reverse one
//! change (SPEC §B11).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::changes::{DbArgs, history_failure};
use crate::audit::undo::{self, UndoError, UndoOptions, UndoReport};

/// Arguments of `pgbelay undo`.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// Where the audit trail is.
    #[command(flatten)]
    pub db: DbArgs,
    /// The change id (from `pgbelay changes`).
    pub id: i64,
    /// Do everything, print it, and roll back.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo despite rows changed since, columns gone, or an undo already in effect.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for each table lock before giving up, changing nothing (`5s`,
    /// `300ms`, `1m`; `0` waits as long as it takes) [default: 5s]. Other writers of the
    /// table queue behind the waiting undo.
    #[arg(long, value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,
    /// Print JSON: the report ({"ok": true, change_id, undo_id, dry_run, forced, steps,
    /// conflicts, sequences, warnings}) or {"ok": false, "error", change_id, conflicts, steps,
    /// blockers}.
    #[arg(long)]
    pub json: bool,
}

/// Undoes a change; exit 0, 1 when refused (conflicts, not found, …) or when a step
/// fails in the database (nothing of it stays).
pub fn run(args: UndoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let client = args.db.connect().await?;
        let options = UndoOptions {
            force: args.force,
            dry_run: args.dry_run,
            lock_timeout: args
                .lock_timeout
                .unwrap_or(UndoOptions::default().lock_timeout),
        };
        match undo::undo(&client, &args.db.audit_schema, args.id, options).await {
            Ok(report) => {
                if args.json {
                    let mut json = serde_json::to_value(&report)?;
                    json["ok"] = true.into();
                    println!("{}", serde_json::to_string_pretty(&json)?);
                } else {
                    print!("{}", text(&report));
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(UndoError::History(e)) if !args.json => Ok(history_failure("undo", &e)),
            Err(e) => {
                let report = match &e {
                    UndoError::Conflicts(report) => Some(report.as_ref()),
                    _ => None,
                };
                let blockers = match &e {
                    UndoError::LockTimeout { blockers, .. } => blockers.as_slice(),
                    _ => &[],
                };
                if args.json {
                    let json = serde_json::json!({
                        "ok": false,
                        "error": e.to_string(),
                        "change_id": args.id,
                        "conflicts": report.map(|r| r.conflicts.clone()).unwrap_or_default(),
                        "steps": report.map(|r| r.steps.clone()).unwrap_or_default(),
                        "blockers": blockers,
                    });
                    println!("{}", serde_json::to_string_pretty(&json)?);
                } else {
                    eprintln!("pgbelay undo: {e}");
                    if let Some(report) = report {
                        for conflict in &report.conflicts {
                            eprintln!("  conflict: {conflict}");
                        }
                    }
                    for blocker in blockers {
                        eprintln!("  {blocker}");
                    }
                }
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// `--lock-timeout`: a duration as `--ttl` takes it, or `0` for no limit.
fn lock_timeout(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!("{e} (a duration such as 5s, 300ms or 1m; 0 waits as long as it takes)")
    })
}

/// The human form: what was (or would be) done, step by step.
fn text(r: &UndoReport) -> String {
    let mut out = match (r.dry_run, r.undo_id) {
        (true, _) => format!(
            "dry run: undo of change {} would run (nothing was changed):\n",
            r.change_id
        ),
        (false, Some(id)) => format!("change {} undone (recorded as change {id}):\n", r.change_id),
        (false, None) => format!("change {} undone:\n", r.change_id),
    };
    for step in &r.steps {
        let rows = step.rows.unwrap_or(step.planned_rows);
        let _ = writeln!(
            out,
            "  {:<8} {}  {} row{} (change {})",
            format!("{:?}", step.action).to_lowercase(),
            step.table,
            rows,
            if rows == 1 { "" } else { "s" },
            step.change_id
        );
        if r.dry_run {
            let _ = writeln!(out, "           {}", step.sql);
        }
    }
    for conflict in &r.conflicts {
        let _ = writeln!(out, "  overridden conflict: {conflict}");
    }
    for moved in &r.sequences {
        let _ = writeln!(out, "  {moved}");
    }
    for warning in &r.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_takes_durations_and_zero() {
        assert_eq!(lock_timeout("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(lock_timeout("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(lock_timeout("0"), Ok(Duration::ZERO));
        assert!(lock_timeout("soon").is_err());
        assert!(lock_timeout("5").is_err());
    }
}
