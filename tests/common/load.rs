//! Helpers for the load and fault runs (`tests/load.rs`, issue 6): how long to run,
//! sessions whose connection task reports how it ended, a tally of errors by class, and
//! the checks of the audit trail after a run.
//!
//! * [`load_duration`]: `PGBELAY_LOAD_SECONDS` (default 10).
//! * [`LoadConn::open`]: a tokio-postgres session whose connection task is kept, so a test
//!   can learn the error the connection ended with (an unsolicited FATAL such as 57P01
//!   ends the connection task, and the next query only says "connection closed") or abort
//!   it to drop the socket without a Terminate.
//! * [`Tally`]: errors counted by class (the SQLSTATE, or `closed`, `io`, `hang`,
//!   `wrong result`), with one example message per class.
//! * [`audit_problems`] and [`replay_problems`]: what is wrong with the recorded changes
//!   of one table (an empty list when nothing is).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// Upper bound for one statement under load: only a guard against hangs.
pub const OP_GUARD: Duration = Duration::from_secs(30);

/// How long the timed scenarios run: `PGBELAY_LOAD_SECONDS`, default 10.
pub fn load_duration() -> Duration {
    let seconds = std::env::var("PGBELAY_LOAD_SECONDS")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("PGBELAY_LOAD_SECONDS={v:?} is not a number"))
        })
        .unwrap_or(10);
    Duration::from_secs(seconds.max(1))
}

/// A tokio-postgres session with its connection task.
pub struct LoadConn {
    /// The client.
    pub client: Client,
    /// The connection task: ends with the error the connection ended with, if any.
    pub connection: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl LoadConn {
    /// Connects to `url` (NoTls); a connect slower than `guard` is reported as a hang.
    pub async fn open(url: &str, guard: Duration) -> Result<LoadConn, Failure> {
        match tokio::time::timeout(guard, tokio_postgres::connect(url, NoTls)).await {
            Err(_) => Err(Failure::hang("connect")),
            Ok(Err(e)) => Err(Failure::of(&e)),
            Ok(Ok((client, connection))) => Ok(LoadConn {
                client,
                connection: tokio::spawn(connection),
            }),
        }
    }

    /// How the connection ended, waiting up to `guard` for it to end (the client is kept
    /// meanwhile: dropping it would end the connection from this side): `Ok(None)` for a
    /// clean end, `Ok(Some(failure))` for an error, `Err(())` if it did not end.
    pub async fn ending(self, guard: Duration) -> Result<Option<Failure>, ()> {
        let LoadConn { client, connection } = self;
        let ended = tokio::time::timeout(guard, connection).await;
        drop(client);
        match ended {
            Err(_) => Err(()),
            Ok(Err(_join)) => Ok(Some(Failure {
                class: "aborted".into(),
                message: "connection task aborted or panicked".into(),
            })),
            Ok(Ok(Ok(()))) => Ok(None),
            Ok(Ok(Err(e))) => Ok(Some(Failure::of(&e))),
        }
    }

    /// Drops the socket without a Terminate message, as a killed client would.
    pub fn kill(self) {
        self.connection.abort();
        drop(self.client);
    }
}

/// Runs one client call with [`OP_GUARD`]; a timeout is a `hang` failure.
pub async fn guarded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(OP_GUARD, call).await {
        Err(_) => Err(Failure::hang(what)),
        Ok(Err(e)) => Err(Failure::of(&e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// One error a client saw, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The SQLSTATE, or `closed` (the connection had already ended), `io`, `hang`,
    /// `wrong result`, `other`.
    pub class: String,
    /// The message, for reports.
    pub message: String,
}

impl Failure {
    /// Classifies a tokio-postgres error.
    pub fn of(err: &tokio_postgres::Error) -> Failure {
        let class = if let Some(code) = err.code() {
            code.code().to_string()
        } else if err.is_closed() {
            "closed".to_string()
        } else if std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()) {
            "io".to_string()
        } else {
            "other".to_string()
        };
        Failure {
            class,
            message: super::show(err),
        }
    }

    /// A call that did not answer within its guard.
    pub fn hang(what: &str) -> Failure {
        Failure {
            class: "hang".into(),
            message: format!("{what} did not answer within {OP_GUARD:?}"),
        }
    }

    /// A result that differs from what the session's own writes imply.
    pub fn wrong(message: String) -> Failure {
        Failure {
            class: "wrong result".into(),
            message,
        }
    }
}

/// Errors counted by class, with the first message of each class.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    /// Counts one failure.
    pub fn record(&self, failure: &Failure) {
        let mut counts = self.counts.lock().expect("tally lock");
        let entry = counts
            .entry(failure.class.clone())
            .or_insert_with(|| (0, failure.message.clone()));
        entry.0 += 1;
    }

    /// Class → (count, first message).
    pub fn snapshot(&self) -> BTreeMap<String, (u64, String)> {
        self.counts.lock().expect("tally lock").clone()
    }

    /// How many failures in all.
    pub fn total(&self) -> u64 {
        self.snapshot().values().map(|(n, _)| n).sum()
    }

    /// The classes not in `expected`, with their counts and first messages.
    pub fn unexpected(&self, expected: &[&str]) -> BTreeMap<String, (u64, String)> {
        self.snapshot()
            .into_iter()
            .filter(|(class, _)| !expected.contains(&class.as_str()))
            .collect()
    }

    /// `class=count` pairs, for summaries.
    pub fn summary(&self) -> String {
        let counts = self.snapshot();
        if counts.is_empty() {
            return "none".into();
        }
        counts
            .iter()
            .map(|(class, (n, _))| format!("{class}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The shadow table of `public.<table>` in the default audit schema.
pub fn shadow_of(table: &str) -> String {
    format!("pgbelay.\"public.{table}\"")
}

/// What is wrong with the recorded changes of `public.<table>`: every change row must have
/// exactly its images (insert: `rows` after-images; update and delete: `rows` before- and
/// `rows` after-images), no image may lack its change row, and only insert, update and
/// delete may appear. Returns the number of change rows and the problems found.
pub async fn audit_problems(admin: &Client, table: &str) -> (i64, Vec<String>) {
    let shadow = shadow_of(table);
    let mut problems = Vec::new();
    let exists: bool = admin
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&shadow])
        .await
        .expect("shadow table lookup")
        .get(0);
    let changes: i64 = admin
        .query_one(
            "SELECT count(*) FROM pgbelay.changes WHERE table_schema = 'public' AND table_name = $1",
            &[&table],
        )
        .await
        .expect("count changes")
        .get(0);
    if !exists {
        if changes > 0 {
            problems.push(format!(
                "{changes} change rows but no shadow table {shadow}"
            ));
        }
        return (changes, problems);
    }
    let wrong = admin
        .query(
            &format!(
                "SELECT c.id, c.kind, c.rows,
                        count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image = 'before'),
                        count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image = 'after'),
                        count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image NOT IN ('before', 'after'))
                   FROM pgbelay.changes c
                   LEFT JOIN {shadow} s ON s.pgbelay_change_id = c.id
                  WHERE c.table_schema = 'public' AND c.table_name = $1
                  GROUP BY c.id, c.kind, c.rows
                 HAVING NOT (c.kind IN ('update', 'delete')
                             AND count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image = 'before') = c.rows
                             AND count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image = 'after') = c.rows
                             AND count(s.pgbelay_change_id) = 2 * c.rows
                          OR c.kind = 'insert'
                             AND count(s.pgbelay_change_id) FILTER (WHERE s.pgbelay_image = 'after') = c.rows
                             AND count(s.pgbelay_change_id) = c.rows)
                  ORDER BY c.id"
            ),
            &[&table],
        )
        .await
        .expect("images per change");
    for row in wrong.iter().take(10) {
        let (id, kind, rows, before, after, other): (i64, String, i64, i64, i64, i64) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        problems.push(format!(
            "change {id} ({kind}, rows {rows}) has {before} before-, {after} after- and {other} other images"
        ));
    }
    if wrong.len() > 10 {
        problems.push(format!(
            "… {} change rows with wrong images in all",
            wrong.len()
        ));
    }
    let orphans: i64 = admin
        .query_one(
            &format!(
                "SELECT count(*) FROM {shadow} s
                  WHERE NOT EXISTS (SELECT 1 FROM pgbelay.changes c
                                     WHERE c.id = s.pgbelay_change_id
                                       AND c.table_schema = 'public' AND c.table_name = $1)"
            ),
            &[&table],
        )
        .await
        .expect("orphan images")
        .get(0);
    if orphans > 0 {
        problems.push(format!("{orphans} images without their change row"));
    }
    (changes, problems)
}

/// What is wrong with `public.<table>` as a replay of its recorded changes: every row must
/// equal its newest after-image (in `columns`, which must include `id`, the primary key),
/// every after-image's row must exist, and the table must have as many rows as were
/// recorded as inserted (all its rows were inserted through the proxy and none was
/// hard-deleted).
pub async fn replay_problems(admin: &Client, table: &str, columns: &str) -> Vec<String> {
    let shadow = shadow_of(table);
    let mut problems = Vec::new();
    let exists: bool = admin
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&shadow])
        .await
        .expect("shadow table lookup")
        .get(0);
    let rows: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0);
    if !exists {
        if rows > 0 {
            problems.push(format!("{rows} rows but nothing recorded"));
        }
        return problems;
    }
    let differing = admin
        .query(
            &format!(
                "WITH newest AS (
                     SELECT DISTINCT ON (id) {columns} FROM {shadow}
                      WHERE pgbelay_image = 'after' ORDER BY id, pgbelay_change_id DESC)
                 SELECT coalesce(t.id, n.id)::text, t.id IS NOT NULL, n.id IS NOT NULL
                   FROM (SELECT {columns} FROM {table}) t
                   FULL JOIN newest n ON n.id = t.id
                  WHERE t.id IS NULL OR n.id IS NULL OR ROW(t.*) IS DISTINCT FROM ROW(n.*)
                  ORDER BY 1"
            ),
            &[],
        )
        .await
        .expect("replay check");
    for row in differing.iter().take(10) {
        let (id, in_table, in_images): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        problems.push(match (in_table, in_images) {
            (true, false) => format!("row {id} has no after-image"),
            (false, true) => format!("row {id} has an after-image but is not in the table"),
            _ => format!("row {id} differs from its newest after-image"),
        });
    }
    if differing.len() > 10 {
        problems.push(format!("… {} rows differ in all", differing.len()));
    }
    let inserted: i64 = admin
        .query_one(
            "SELECT coalesce(sum(rows), 0)::bigint FROM pgbelay.changes
              WHERE table_schema = 'public' AND table_name = $1 AND kind = 'insert'",
            &[&table],
        )
        .await
        .expect("inserted rows")
        .get(0);
    if inserted != rows {
        problems.push(format!(
            "{rows} rows in the table, {inserted} recorded as inserted"
        ));
    }
    problems
}
