//! Runs every statement of `sql-fixtures/policy/*.corpus` through `policy::judge` and
//! fails listing every mismatch. The format is described in `sql-fixtures/policy/README.md`.

use std::path::Path;

use pgbelay::policy::{Context, Prepared, Verdict, judge};

struct Case {
    file: String,
    line: usize,
    verdict: String,
    class: String,
    sql: String,
}

fn load(dir: &Path) -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "corpus"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut current: Option<Case> = None;
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("@#") {
                continue;
            }
            if let Some(header) = line.strip_prefix("@@ ") {
                cases.extend(current.take());
                let header = header.split(" #").next().unwrap_or("").trim();
                let (verdict, class) = header.split_once(' ').unwrap_or((header, ""));
                current = Some(Case {
                    file: file.clone(),
                    line: i + 1,
                    verdict: verdict.to_string(),
                    class: class.trim().to_string(),
                    sql: String::new(),
                });
            } else if let Some(c) = current.as_mut() {
                c.sql.push_str(line);
                c.sql.push('\n');
            }
        }
        cases.extend(current);
    }
    for c in &mut cases {
        c.sql = c.sql.trim_end().to_string();
    }
    cases
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-fixtures/policy");
    let cases = load(&dir);
    let prepared = Prepared::new();
    let ctx = Context::offline("pgbelay", &prepared);
    let mut mismatches = Vec::new();
    for c in &cases {
        let j = judge(&c.sql, &ctx);
        let (verdict, class) = match &j.verdict {
            Verdict::Allow => (
                "allow",
                j.statements
                    .iter()
                    .map(|s| s.class.label())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Verdict::Rewrite(_) => (
                "rewrite",
                j.statements
                    .iter()
                    .map(|s| s.class.label())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Verdict::Refuse(r) => ("block", r.kind.label().to_string()),
        };
        if verdict != c.verdict || class != c.class {
            mismatches.push(format!(
                "{}:{}: expected `{} {}`, got `{} {}`\n    {}",
                c.file,
                c.line,
                c.verdict,
                c.class,
                verdict,
                class,
                c.sql.replace('\n', "\n    ")
            ));
        }
    }
    println!("{} corpus statements", cases.len());
    assert!(
        cases.len() >= 200,
        "the corpus has only {} statements",
        cases.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Every prefix of every corpus statement is judged without a panic (cut-off quotes,
/// comments and dollar quotes are the usual crash sites of hand-written parsers).
#[test]
fn prefixes_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-fixtures/policy");
    let prepared = Prepared::new();
    let ctx = Context::offline("pgbelay", &prepared);
    for c in load(&dir) {
        for (i, _) in c.sql.char_indices().step_by(3) {
            let _ = judge(&c.sql[..i], &ctx);
        }
    }
}
