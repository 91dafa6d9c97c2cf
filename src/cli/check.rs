//! `pgbelay check SQL`: the policy's verdict, offline.
//!
//! Uses the same [`policy::judge`] as the proxy, with a fresh session (UTF8, nothing
//! prepared), so `check` and the live proxy agree.

use std::process::ExitCode;

use crate::config::Settings;
use crate::policy::{self, Context, Judgement, Prepared, Verdict};

/// Arguments of `pgbelay check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The SQL to judge.
    pub sql: String,
    /// Print JSON for tooling.
    #[arg(long)]
    pub json: bool,
    /// Audit schema to protect [default: pgbelay].
    #[arg(long, env = "PGBELAY_AUDIT_SCHEMA")]
    pub audit_schema: Option<String>,
}

/// Prints the verdict; exit 0 allow/rewrite, 1 block, 2 usage error.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.sql.trim().is_empty() {
        eprintln!("pgbelay check: no SQL given (usage: pgbelay check SQL [--json])");
        return Ok(ExitCode::from(2));
    }
    let audit = args
        .audit_schema
        .unwrap_or_else(|| Settings::default().audit_schema);
    let prepared = Prepared::new();
    let mut judgement = policy::judge(&args.sql, &Context::offline(&audit, &prepared));
    let settings = Settings {
        audit_schema: audit,
        ..Settings::default()
    };
    show_recording(&mut judgement, &args.sql, &settings);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&judgement))?);
    } else {
        print!("{}", to_text(&judgement));
    }
    Ok(ExitCode::from(match judgement.verdict {
        Verdict::Allow | Verdict::Rewrite(_) => 0,
        Verdict::Refuse(_) => 1,
    }))
}

/// A write the proxy records is a rewrite: show what runs for it in autocommit (inside a
/// client transaction there is no `BEGIN READ WRITE`/`COMMIT` around it).
fn show_recording(judgement: &mut Judgement, sql: &str, settings: &Settings) {
    let [one] = judgement.statements.as_slice() else {
        return;
    };
    let (Verdict::Allow, policy::StatementClass::Write(kind, target)) =
        (&judgement.verdict, &one.class)
    else {
        return;
    };
    let recorder = policy::Recorder::new(settings);
    let info = crate::session::SessionInfo::default();
    let at = crate::session::Position {
        tx_status: crate::wire::TxStatus::Idle,
        pipelined: false,
        batch_start: true,
        batch_ran: false,
    };
    let source = policy::Source {
        text: &one.text,
        client_sql: sql,
        dialect: Default::default(),
    };
    judgement.verdict = match recorder.write(&info, *kind, target, source, None) {
        Ok(write) => {
            let mut plan = recorder.plan(&write, at, false);
            if plan.sql.is_none() {
                plan.sql = Some(one.text.clone());
            }
            Verdict::Rewrite(plan)
        }
        Err(refusal) => Verdict::Refuse(refusal),
    };
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Rewrite(_) => "rewrite",
        Verdict::Refuse(_) => "block",
    }
}

fn to_text(j: &Judgement) -> String {
    let mut out = format!("verdict: {}\n", verdict_word(&j.verdict));
    for (i, s) in j.statements.iter().enumerate() {
        out.push_str(&format!(
            "statement {}: {}\n  class: {}\n",
            i + 1,
            s.text,
            s.class.label()
        ));
        if !s.targets.is_empty() {
            let names: Vec<String> = s.targets.iter().map(ToString::to_string).collect();
            out.push_str(&format!("  targets: {}\n", names.join(", ")));
        }
    }
    match &j.verdict {
        Verdict::Refuse(r) => {
            out.push_str(&format!(
                "reason: {}\ndetail: {}\nhint: {}\n",
                r.message,
                r.detail(),
                r.hint
            ));
        }
        Verdict::Rewrite(plan) => {
            for sql in plan.before.iter().chain(&plan.sql).chain(&plan.after) {
                out.push_str(&format!("runs: {sql}\n"));
            }
        }
        Verdict::Allow => {}
    }
    out
}

fn to_json(j: &Judgement) -> serde_json::Value {
    let statements: Vec<_> = j
        .statements
        .iter()
        .map(|s| {
            serde_json::json!({
                "sql": s.text,
                "class": s.class.label(),
                "classification": s.class,
                "targets": s.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "verdict": verdict_word(&j.verdict),
        "statements": statements,
    });
    if let Verdict::Refuse(r) = &j.verdict {
        v["reason"] = r.message.clone().into();
        v["class"] = r.kind.label().into();
        v["detail"] = r.detail().into();
        v["hint"] = r.hint.clone().into();
        v["sqlstate"] = "42501".into();
    }
    if let Verdict::Rewrite(plan) = &j.verdict {
        v["runs"] =
            serde_json::json!({ "before": plan.before, "sql": plan.sql, "after": plan.after });
    }
    v
}

#[cfg(test)]
mod test {
    use super::*;

    fn judged(sql: &str) -> Judgement {
        let prepared = Prepared::new();
        policy::judge(sql, &Context::offline("pgbelay", &prepared))
    }

    #[test]
    fn text_and_json() {
        let j = judged("delete from s.\"T\" where id = 1; drop table t");
        let text = to_text(&j);
        assert!(text.starts_with("verdict: block\n"), "{text}");
        assert!(text.contains("targets: s.\"T\""), "{text}");
        assert!(
            text.contains("hint: pgbelay approve --sql 'drop table t'"),
            "{text}"
        );
        let json = to_json(&j);
        assert_eq!(json["verdict"], "block");
        assert_eq!(json["class"], "drop");
        assert_eq!(json["statements"][0]["class"], "write");
        assert_eq!(to_json(&judged("select 1"))["verdict"], "allow");
    }

    #[test]
    fn a_write_shows_what_runs() {
        let sql = "DELETE FROM orders WHERE id = 3";
        let mut j = judged(sql);
        show_recording(&mut j, sql, &Settings::default());
        let text = to_text(&j);
        assert!(text.starts_with("verdict: rewrite\n"), "{text}");
        assert!(text.contains("runs: BEGIN READ WRITE\n"), "{text}");
        assert!(
            text.contains("runs: SELECT \"pgbelay\".begin_statement("),
            "{text}"
        );
        assert!(
            text.contains("runs: UPDATE orders SET deleted_at = pg_catalog.now() WHERE orders.deleted_at IS NULL AND id = 3\n"),
            "{text}"
        );
        assert!(text.ends_with("runs: COMMIT\n"), "{text}");
        let sql = "UPDATE orders SET n = 1 WHERE id = 3";
        let mut j = judged(sql);
        show_recording(&mut j, sql, &Settings::default());
        assert_eq!(to_json(&j)["runs"]["sql"], sql);
    }

    #[test]
    fn exit_codes() {
        let run_sql = |sql: &str| {
            run(CheckArgs {
                sql: sql.into(),
                json: true,
                audit_schema: None,
            })
            .unwrap()
        };
        assert_eq!(run_sql("select 1"), ExitCode::from(0));
        assert_eq!(run_sql("truncate t"), ExitCode::from(1));
        assert_eq!(run_sql("  "), ExitCode::from(2));
    }
}
