//! Undo (SPEC §B11, §B6): reverses one change and its children (cascades, or the writes of
//! an undo) in one transaction, and records the undo as a change that can be undone too.
//!
//! # How a reversal is derived
//!
//! From the images alone, matched by the table's primary key (as it is now), whatever the
//! change's kind:
//!
//! * before- and after-image: UPDATE the row back — only the columns the change changed,
//!   so later changes to other columns stay (this also un-deletes a soft delete);
//! * before-image only (hard delete, truncate): INSERT it again (OVERRIDING SYSTEM VALUE
//!   for `GENERATED ALWAYS` identity columns; stored generated columns are never written);
//! * after-image only (insert): DELETE the row.
//!
//! A `drop` change moves its table back from the recycle bin (`<audit>.restore_table`);
//! the undo of such a restore moves it to the bin again (`<audit>.recycle_table`).
//!
//! Order across a cascade: restores first, then deletes (referencing tables before the
//! tables they reference), then updates and inserts (referenced tables first, each in the
//! order the changes were made), and moves to the bin last.
//!
//! # Locks
//!
//! Each table is locked against other writers (SHARE ROW EXCLUSIVE) before its rows are
//! compared. A lock request queues every later writer of the table behind it, so the undo
//! waits at most [`UndoOptions::lock_timeout`] for each lock (`SET LOCAL lock_timeout`: it
//! ends with the transaction) and then gives up, changing nothing, naming the sessions
//! that hold or await conflicting locks ([`UndoError::LockTimeout`]). The limit holds for
//! every lock wait of the undo; one for a row (held by a `SELECT … FOR UPDATE` elsewhere)
//! fails it with PostgreSQL's own lock timeout error.
//!
//! # Conflicts
//!
//! Before writing, with the tables locked against other writers, each row is compared, as
//! text, with the recorded after-image (it must exist and be equal in every column the
//! images have), and a before-only row must not exist now. Conflicts refuse the undo
//! ([`UndoError::Conflicts`]) unless forced; forced, changed rows get the changed columns
//! back, rows present again are left as they are, inserted rows are deleted anyway and rows
//! gone stay gone.
//!
//! # Columns changed since
//!
//! The undo writes the columns the table has now. A column added since has NULL images, so
//! a non-NULL value now is a conflict. Recorded values in columns the table no longer has
//! (dropped, or changed type: the shadow keeps the old values in `<name>~<n>`) refuse the
//! undo ([`UndoError::LostColumns`]) unless forced, when they are left out.
//!
//! # Sequences
//!
//! Rows inserted again keep their recorded values, also in serial and identity columns, and
//! their sequences may have been set back meanwhile (`TRUNCATE … RESTART IDENTITY`, a
//! `setval`). So right after the rows of a table are back, each ascending sequence owned by
//! one of its columns (or its partitioned ancestors') whose next value would not be past the
//! largest value restored there is set to it ([`SequenceMove`]). Only forward: `setval` is
//! not transactional and other sessions may have taken later values; a dry run only says
//! what it would do. Descending sequences are left alone.
//!
//! # Recording
//!
//! The undo of change C is announced with `begin_statement` (`statement = 'pgbelay undo C'`,
//! `kind = 'undo'`) and recorded by `<audit>.begin_undo` as change U, linked to C in
//! `<audit>.undos`; each of its writes is announced the same way with `pgbelay.parent_id` set
//! to U, so the capture triggers record them as children of U. Undoing U reverses them. A
//! change already undone (an undo in effect, not itself undone) is refused unless forced.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::history::{self, HistoryError};
use super::images::{self, Change, Images, change_columns, change_from_row};
use super::schema::{
    StatementMeta, begin_statement_sql, end_statement_sql, quote_ident, quote_literal,
};

/// How to undo.
#[derive(Debug, Clone, Copy)]
pub struct UndoOptions {
    /// Go ahead despite conflicts, lost columns, or an undo already in effect.
    pub force: bool,
    /// Run everything, report, and roll back.
    pub dry_run: bool,
    /// How long to wait for each lock before giving up (zero: as long as it takes). Other
    /// writers of the table queue behind the undo's waiting lock request, so an unbounded
    /// wait stops them all.
    pub lock_timeout: Duration,
}

impl Default for UndoOptions {
    fn default() -> UndoOptions {
        UndoOptions {
            force: false,
            dry_run: false,
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Move a dropped table back from the recycle bin.
    Restore,
    /// Delete rows the change inserted.
    Delete,
    /// Update rows back to their before-images.
    Update,
    /// Insert rows the change removed.
    Insert,
    /// Move a restored table to the recycle bin again.
    Recycle,
}

/// One statement of the undo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// The change it reverses.
    pub change_id: i64,
    /// `schema.table`.
    pub table: String,
    /// What it does.
    pub action: Action,
    /// Rows the images call for.
    pub planned_rows: i64,
    /// Rows it changed when it ran (also in a dry run, which rolls back).
    pub rows: Option<i64>,
    /// The statement.
    pub sql: String,
}

/// Why a row conflicts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ConflictReason {
    /// The row differs from the after-image in these columns.
    Changed {
        /// The columns.
        columns: Vec<String>,
        /// Those of them with no value in any image of the change: most likely added to
        /// the table after it (ADD COLUMN … DEFAULT fills every row), not edited since.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unrecorded: Vec<String>,
    },
    /// The row the change left is gone.
    Gone,
    /// A row with the key of a removed row exists again.
    Exists,
    /// Rows of another table reference the row the undo would delete (rows added there
    /// since): the foreign key's ON DELETE action would reach them.
    Referenced {
        /// `schema.table` of the referencing rows.
        by: String,
        /// How many reference it.
        rows: i64,
        /// The foreign key's ON DELETE action (`CASCADE`, `SET NULL`, …).
        on_delete: String,
    },
}

/// A row changed since the change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The change whose row it is.
    pub change_id: i64,
    /// `schema.table`.
    pub table: String,
    /// `[column, value]` pairs of its primary key.
    pub key: Vec<(String, Option<String>)>,
    /// What is different.
    #[serde(flatten)]
    pub reason: ConflictReason,
}

impl Conflict {
    /// A conflict on a row of change `change_id`'s table, by its key's values.
    fn of_row(
        change_id: i64,
        images: &Images,
        key: Vec<Option<String>>,
        reason: ConflictReason,
    ) -> Conflict {
        Conflict {
            change_id,
            table: images.table_label(),
            key: images.key.iter().cloned().zip(key).collect(),
            reason,
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key: Vec<String> = self
            .key
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NULL")))
            .collect();
        write!(f, "{} ({}): ", self.table, key.join(", "))?;
        match &self.reason {
            ConflictReason::Changed {
                columns,
                unrecorded,
            } => {
                write!(f, "changed since (columns {})", columns.join(", "))?;
                if !unrecorded.is_empty() {
                    write!(
                        f,
                        "; {} no value in any image of the change: added to the table since? (--force restores the others)",
                        match unrecorded.as_slice() {
                            [one] => format!("{one} has"),
                            many => format!("{} have", many.join(", ")),
                        }
                    )?;
                }
                Ok(())
            }
            ConflictReason::Gone => f.write_str("row is gone"),
            ConflictReason::Exists => f.write_str("a row with this key exists again"),
            ConflictReason::Referenced {
                by,
                rows,
                on_delete,
            } => {
                let effect = match on_delete.as_str() {
                    "CASCADE" => "delete them",
                    "SET NULL" => "set their reference to NULL",
                    "SET DEFAULT" => "set their reference to its default",
                    _ => "make the undo fail",
                };
                write!(
                    f,
                    "referenced by {rows} row(s) of {by} (ON DELETE {on_delete} would {effect})"
                )
            }
        }
    }
}

/// A sequence the undo moved past the rows it restored (in a dry run: would have moved).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SequenceMove {
    /// `schema.sequence`.
    pub sequence: String,
    /// `schema.table.column` whose values it gives (serial or identity).
    pub column: String,
    /// Its `last_value` before.
    pub from: i64,
    /// The largest value restored in the column: `setval(sequence, to)`, so the next value
    /// is past it.
    pub to: i64,
    /// It was moved (not in a dry run: setval is not rolled back with the transaction).
    pub moved: bool,
}

impl std::fmt::Display for SequenceMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, dry) = if self.moved {
            ("moved", "")
        } else {
            (
                "would move",
                " (not in a dry run: setval cannot be rolled back)",
            )
        };
        write!(
            f,
            "sequence {} ({}) {verb} from {} to {}, past the restored rows{dry}",
            self.sequence, self.column, self.from, self.to
        )
    }
}

/// Another session holding or awaiting a lock on a table that conflicts with the undo's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocker {
    /// Its backend (for `pg_terminate_backend`).
    pub pid: i32,
    /// The conflicting modes it holds (`RowExclusiveLock`, …).
    pub holds: Vec<String>,
    /// The conflicting mode it is queued for.
    pub awaits: Option<String>,
    /// Its user.
    pub user: Option<String>,
    /// Its `application_name`.
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, ….
    pub state: Option<String>,
    /// When its transaction began.
    pub xact_start: Option<String>,
    /// The start of its current or last statement (60 characters, on one line).
    pub query: Option<String>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.holds.is_empty() {
            write!(f, " holds {}", self.holds.join(", "))?;
        }
        if let Some(mode) = &self.awaits {
            let and = if self.holds.is_empty() { "" } else { "," };
            write!(f, "{and} waits for {mode}")?;
        }
        let about: Vec<String> = [
            self.user.as_ref().map(|u| format!("user {u}")),
            self.application_name
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| format!("application {a}")),
            self.state.clone(),
            self.xact_start
                .as_ref()
                .map(|t| format!("in a transaction since {t}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !about.is_empty() {
            write!(f, " ({})", about.join(", "))?;
        }
        match &self.query {
            Some(query) => write!(f, ": {query}"),
            None => Ok(()),
        }
    }
}

/// `pid 1, pid 2` of the sessions in a lock timeout's message.
fn blocker_pids(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return "none of them is left now".into();
    }
    blockers
        .iter()
        .map(|b| format!("pid {}", b.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an undo did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UndoReport {
    /// The change undone.
    pub change_id: i64,
    /// The undo's own change (`None` when refused; rolled back in a dry run).
    pub undo_id: Option<i64>,
    /// Nothing was kept.
    pub dry_run: bool,
    /// Conflicts were overridden.
    pub forced: bool,
    /// The statements, in the order they run.
    pub steps: Vec<Step>,
    /// Rows changed since the change.
    pub conflicts: Vec<Conflict>,
    /// Sequences moved past the rows restored.
    pub sequences: Vec<SequenceMove>,
    /// What the undo leaves out: recorded values of columns gone (forced), a sequence it
    /// cannot move.
    pub warnings: Vec<String>,
}

/// Why an undo did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// The change or the audit schema was not found.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An undo of the change is in effect.
    #[error(
        "change {change} was already undone by change {by} (undo {by} to bring it back, or use --force)"
    )]
    AlreadyUndone {
        /// The change.
        change: i64,
        /// The undo in effect.
        by: i64,
    },
    /// Rows in conflict (changed since, back again, or referenced); nothing was done.
    #[error("change {} cannot be undone: {} conflict(s): rows changed since, back again, or referenced (use --force to undo anyway)", .0.change_id, .0.conflicts.len())]
    Conflicts(Box<UndoReport>),
    /// The change recorded no rows to reverse and moved no table.
    #[error("change {0} has nothing to undo")]
    NothingToUndo(i64),
    /// Rows cannot be matched without a primary key.
    #[error(
        "change {change} cannot be undone: table {table} has no primary key (or its key columns were not recorded), so its rows cannot be matched"
    )]
    NoPrimaryKey {
        /// The change.
        change: i64,
        /// The table.
        table: String,
    },
    /// The table has inheritance children (not partitions): its key is not unique across
    /// them, and the recorded rows include theirs.
    #[error(
        "change {change} cannot be undone: table {table} has inheritance children, whose rows its primary key does not tell apart from its own"
    )]
    Inherited {
        /// The change.
        change: i64,
        /// The table.
        table: String,
    },
    /// The table is gone.
    #[error("change {change} cannot be undone: table {table} no longer exists")]
    TableGone {
        /// The change.
        change: i64,
        /// The table, as last known.
        table: String,
    },
    /// The table lies in the recycle bin.
    #[error(
        "change {change} cannot be undone: table {table} is in the recycle bin; undo its drop first"
    )]
    InTrash {
        /// The change.
        change: i64,
        /// The table.
        table: String,
    },
    /// Recorded values sit in columns the table no longer has.
    #[error("change {change} cannot be undone: table {table} no longer has column(s) {} holding recorded values (dropped or changed type since); use --force to undo without them", .columns.join(", "))]
    LostColumns {
        /// The change.
        change: i64,
        /// The table.
        table: String,
        /// The shadow's columns.
        columns: Vec<String>,
    },
    /// A table stayed locked by other sessions for longer than the lock timeout; nothing was
    /// done.
    #[error(
        "change {change} cannot be undone now: table {table} stayed locked by other sessions for {} ({}); nothing was changed. Wait for them to finish, end them (SELECT pg_terminate_backend(pid)), or retry with a longer --lock-timeout",
        humantime::format_duration(*.timeout), blocker_pids(.blockers)
    )]
    LockTimeout {
        /// The change whose table it is.
        change: i64,
        /// The table.
        table: String,
        /// Its oid.
        relid: u32,
        /// How long the undo waited.
        timeout: Duration,
        /// The sessions that held or awaited conflicting locks on it, just after.
        blockers: Vec<Blocker>,
    },
    /// The server refused (a pgbelay refusal: a name taken, the owner check, …).
    #[error("{message}{}", .hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Refused {
        /// SQLSTATE.
        code: String,
        /// The message (starts with `pgbelay:` for pgbelay's own refusals).
        message: String,
        /// Its hint.
        hint: Option<String>,
    },
    /// A quoting error.
    #[error(transparent)]
    Audit(#[from] super::AuditError),
    /// The server failed a statement.
    #[error("cannot {what}: {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// The server's (or the connection's) error.
        source: tokio_postgres::Error,
    },
}

fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> UndoError {
    move |source| match source.as_db_error() {
        Some(db) if db.message().starts_with("pgbelay:") || db.code().code() == "42501" => {
            UndoError::Refused {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                hint: db.hint().map(str::to_string),
            }
        }
        _ => UndoError::Postgres { what, source },
    }
}

/// Undoes change `id` (and its children) over `client`, in one transaction of its own
/// (`client` must not be inside one). Committed unless `dry_run`.
pub async fn undo(
    client: &Client,
    audit: &str,
    id: i64,
    options: UndoOptions,
) -> Result<UndoReport, UndoError> {
    history::check_installed(client, audit).await?;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(pg("begin a transaction"))?;
    let mut result = run(client, audit, id, options).await;
    let end = if result.is_ok() && !options.dry_run {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = client
        .batch_execute(end)
        .await
        .map_err(pg("end the transaction"));
    // Who is in the way, read once the undo's transaction (aborted by the timeout) is over.
    if let (
        Err(UndoError::LockTimeout {
            relid, blockers, ..
        }),
        Ok(()),
    ) = (&mut result, &ended)
    {
        *blockers = blockers_of(client, *relid).await?;
    }
    let report = result?;
    ended?;
    Ok(report)
}

/// `lock_timeout` for `timeout`: whole milliseconds, rounded up so that a short timeout
/// does not become 0 (no limit), and at most what the setting takes.
fn lock_timeout_setting(timeout: Duration) -> String {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    format!("{}ms", millis.min(i32::MAX as u128))
}

/// The other sessions of this database that hold or await a lock on table `relid` in a
/// mode that conflicts with SHARE ROW EXCLUSIVE (every mode but ACCESS SHARE and ROW
/// SHARE), oldest transaction first.
async fn blockers_of(client: &Client, relid: u32) -> Result<Vec<Blocker>, UndoError> {
    client
        .query(
            "SELECT l.pid, \
                    pg_catalog.array_agg(l.mode::text ORDER BY l.mode) FILTER (WHERE l.granted), \
                    pg_catalog.min(l.mode::text) FILTER (WHERE NOT l.granted), \
                    a.usename::text, a.application_name, a.state, \
                    pg_catalog.date_trunc('second', a.xact_start)::text, \
                    pg_catalog.left(pg_catalog.regexp_replace(a.query, '\\s+', ' ', 'g'), 60) \
               FROM pg_catalog.pg_locks l \
               LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
              WHERE l.locktype = 'relation' AND l.relation = $1 \
                AND l.database = (SELECT oid FROM pg_catalog.pg_database \
                                   WHERE datname = pg_catalog.current_database()) \
                AND l.pid <> pg_catalog.pg_backend_pid() \
                AND l.mode NOT IN ('AccessShareLock', 'RowShareLock') \
              GROUP BY l.pid, a.usename, a.application_name, a.state, a.xact_start, a.query \
              ORDER BY a.xact_start NULLS LAST, l.pid",
            &[&relid],
        )
        .await
        .map_err(pg("read who holds the table's locks"))?
        .iter()
        .map(|r| {
            Ok(Blocker {
                pid: r.try_get(0)?,
                holds: r.try_get::<_, Option<Vec<String>>>(1)?.unwrap_or_default(),
                awaits: r.try_get(2)?,
                user: r.try_get(3)?,
                application_name: r.try_get(4)?,
                state: r.try_get(5)?,
                xact_start: r.try_get(6)?,
                query: r.try_get(7)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read who holds the table's locks"))
}

/// The foreign keys a restored table got back NOT VALID (rows of it reference rows that
/// went while it lay in the bin), as warnings of the report.
async fn unchecked_foreign_keys(
    client: &Client,
    audit: &str,
    step: &Step,
    report: &mut UndoReport,
) -> Result<(), UndoError> {
    let sql = format!(
        "SELECT fk ->> 'name' FROM {}.trash t \
           CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(t.foreign_keys) fk \
           JOIN pg_catalog.pg_constraint c ON c.conrelid = t.relid AND c.conname = fk ->> 'name' \
          WHERE t.change_id = $1 AND NOT c.convalidated ORDER BY 1",
        quote_ident(audit)
    );
    for row in client
        .query(&sql, &[&step.change_id])
        .await
        .map_err(pg("read the restored foreign keys"))?
    {
        let name: String = row
            .try_get(0)
            .map_err(pg("read the restored foreign keys"))?;
        report.warnings.push(format!(
            "foreign key {name} of {} is back NOT VALID: some of its rows reference rows that went while it was in the \
             recycle bin; fix them, then ALTER TABLE {} VALIDATE CONSTRAINT {}",
            step.table,
            step.table,
            quote_ident(&name)
        ));
    }
    Ok(())
}

/// The undo's tree: the audit schema and the changes it reverses.
#[derive(Clone, Copy)]
struct Tree<'a> {
    audit: &'a str,
    ids: &'a [i64],
}

/// A step before it runs, with its place in the order.
struct Planned {
    step: Step,
    depth: i32,
    /// Announce with this table (quoted), or none.
    target: Option<String>,
    /// The table whose rows it writes (not for moves to and from the bin).
    relid: Option<u32>,
    /// For an insert into a table with sequences: what to move past its rows.
    sequences: Option<Sequences>,
}

/// A sequence owned by a column (serial or identity).
struct OwnedSequence {
    oid: u32,
    /// Quoted and qualified.
    sql: String,
    /// `schema.name`.
    label: String,
    /// The column's name.
    column: String,
}

/// The ascending sequences owned by columns an insert step writes, and how to find the
/// largest value it restores in each.
struct Sequences {
    /// `schema.table` of the insert.
    table: String,
    owned: Vec<OwnedSequence>,
    /// `SELECT ARRAY[max(b.column)::bigint, …]` over the rows the insert will restore, in
    /// the order of `owned` (run just before it).
    restored_max: String,
}

impl Planned {
    /// Where the step goes, `rank` being its table's place in the foreign keys among the
    /// undo's tables ([`foreign_key_ranks`]). Deletes take referencing tables first (and
    /// at one table the deepest, then the later change first); updates and inserts then go
    /// referenced tables first, each in the order the changes were made. So a parent row
    /// is back before its children's rows return and before keys that ON DELETE SET NULL
    /// cleared are set again, whichever table a TRUNCATE named first.
    fn order(&self, rank: i32) -> (u8, i32, i32, i64) {
        let id = self.step.change_id;
        match self.step.action {
            Action::Restore => (0, 0, self.depth, 0),
            Action::Delete => (1, -rank, -self.depth, -id),
            Action::Update | Action::Insert => (2, rank, self.depth, id),
            Action::Recycle => (3, 0, -self.depth, 0),
        }
    }
}

/// For each table the steps write, how many foreign keys deep it is among those tables:
/// 0 for one referencing none of the others, else one more than the deepest it references
/// (a table's reference to itself does not count). Where the foreign keys among them form
/// a cycle every rank is 0: the order is the changes' own.
async fn foreign_key_ranks(
    client: &Client,
    planned: &[Planned],
) -> Result<HashMap<u32, i32>, UndoError> {
    let mut ranks: HashMap<u32, i32> = planned
        .iter()
        .filter_map(|p| p.relid)
        .map(|r| (r, 0))
        .collect();
    if ranks.len() < 2 {
        return Ok(ranks);
    }
    let relids: Vec<u32> = ranks.keys().copied().collect();
    let edges: Vec<(u32, u32)> = client
        .query(
            "SELECT DISTINCT conrelid, confrelid FROM pg_catalog.pg_constraint \
              WHERE contype = 'f' AND conrelid = ANY ($1) AND confrelid = ANY ($1) \
                AND conrelid <> confrelid",
            &[&relids],
        )
        .await
        .map_err(pg("read the foreign keys"))?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read the foreign keys"))?;
    // Without a cycle no path is longer than the tables are many, so the ranks settle.
    for _ in 0..=relids.len() {
        let mut changed = false;
        for (child, parent) in &edges {
            let deeper = ranks[parent] + 1;
            if ranks[child] < deeper {
                ranks.insert(*child, deeper);
                changed = true;
            }
        }
        if !changed {
            return Ok(ranks);
        }
    }
    Ok(relids.into_iter().map(|r| (r, 0)).collect())
}

async fn run(
    client: &Client,
    audit: &str,
    id: i64,
    options: UndoOptions,
) -> Result<UndoReport, UndoError> {
    let s = quote_ident(audit);
    client
        .query_one(
            "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
            &[&lock_timeout_setting(options.lock_timeout)],
        )
        .await
        .map_err(pg("set the lock timeout"))?;
    let target = history::change(client, audit, id).await?;
    if let (Some(by), false) = (target.undone_by, options.force) {
        return Err(UndoError::AlreadyUndone { change: id, by });
    }
    let tree = tree(client, audit, id).await?;
    let ids: Vec<i64> = tree.iter().map(|(c, _)| c.id).collect();
    // Changes that moved a table out of the bin, with the table's oid.
    let restores: Vec<(i64, u32)> = client
        .query(
            &format!("SELECT restored_by, relid FROM {s}.trash WHERE restored_by = ANY($1)"),
            &[&ids],
        )
        .await
        .map_err(pg("read the recycle bin"))?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read the recycle bin"))?;

    let mut report = UndoReport {
        change_id: id,
        undo_id: None,
        dry_run: options.dry_run,
        forced: options.force,
        steps: Vec::new(),
        conflicts: Vec::new(),
        sequences: Vec::new(),
        warnings: Vec::new(),
    };
    let mut planned: Vec<Planned> = Vec::new();
    let mut locked: HashSet<u32> = HashSet::new();
    for (change, depth) in &tree {
        if change.kind == "drop" {
            planned.push(Planned {
                step: Step {
                    change_id: change.id,
                    table: change.table(),
                    action: Action::Restore,
                    planned_rows: change.rows.unwrap_or(0),
                    rows: None,
                    sql: format!("SELECT {s}.restore_table({})", change.id),
                },
                depth: *depth,
                target: None,
                relid: None,
                sequences: None,
            });
        } else if let Some((_, relid)) = restores.iter().find(|(by, _)| *by == change.id) {
            planned.push(Planned {
                step: Step {
                    change_id: change.id,
                    table: change.table(),
                    action: Action::Recycle,
                    planned_rows: change.rows.unwrap_or(0),
                    rows: None,
                    sql: format!(
                        "SELECT {s}.recycle_table({relid}::pg_catalog.oid::pg_catalog.regclass)"
                    ),
                },
                depth: *depth,
                target: None,
                relid: None,
                sequences: None,
            });
        } else if let Some(shadow) = &change.shadow_table {
            let images = images::load(client, audit, shadow)
                .await
                .map_err(pg("read the change's table"))?
                .ok_or_else(|| UndoError::TableGone {
                    change: change.id,
                    table: change.table(),
                })?;
            plan_images(
                client,
                Tree { audit, ids: &ids },
                change,
                *depth,
                &images,
                options,
                &mut locked,
                &mut planned,
                &mut report,
            )
            .await?;
        }
    }
    if planned.is_empty() {
        return Err(UndoError::NothingToUndo(id));
    }
    let ranks = foreign_key_ranks(client, &planned).await?;
    planned.sort_by_key(|p| p.order(p.relid.and_then(|r| ranks.get(&r).copied()).unwrap_or(0)));
    if !report.conflicts.is_empty() && !options.force {
        report.steps = planned.into_iter().map(|p| p.step).collect();
        return Err(UndoError::Conflicts(Box::new(report)));
    }

    let statement = if options.force {
        format!("pgbelay undo {id} --force")
    } else {
        format!("pgbelay undo {id}")
    };
    let announce = |table: Option<String>| StatementMeta {
        table,
        statement: statement.clone(),
        kind: Some("undo".into()),
        max_rows: None,
        application_name: Some("pgbelay undo".into()),
        ..StatementMeta::default()
    };
    let total: i64 = planned.iter().map(|p| p.step.planned_rows).sum();
    client
        .query_one(&begin_statement_sql(audit, &announce(None))?, &[])
        .await
        .map_err(pg("announce the undo"))?;
    let undo_id: i64 = client
        .query_one(
            &format!("SELECT {s}.begin_undo($1, $2, $3)"),
            &[&id, &total, &options.force],
        )
        .await
        .map_err(pg("record the undo"))?
        .try_get(0)
        .map_err(pg("record the undo"))?;
    report.undo_id = Some(undo_id);
    let parent = undo_id.to_string();
    for mut p in planned {
        client
            .query_one(
                &begin_statement_sql(audit, &announce(p.target.clone()))?,
                &[],
            )
            .await
            .map_err(pg("announce an undo step"))?;
        client
            .query_one(
                "SELECT pg_catalog.set_config('pgbelay.parent_id', $1, true)",
                &[&parent],
            )
            .await
            .map_err(pg("announce an undo step"))?;
        // The largest values the insert restores, read before it (after it they are
        // indistinguishable from the rows already there).
        let restored = match &p.sequences {
            Some(seqs) => Some(
                client
                    .query_one(&seqs.restored_max, &[])
                    .await
                    .and_then(|r| r.try_get::<_, Vec<Option<i64>>>(0))
                    .map_err(pg("read the restored values"))?,
            ),
            None => None,
        };
        let rows = match p.step.action {
            Action::Restore | Action::Recycle => {
                client
                    .query_one(&p.step.sql, &[])
                    .await
                    .map_err(pg("move the table"))?;
                if p.step.action == Action::Restore {
                    unchecked_foreign_keys(client, audit, &p.step, &mut report).await?;
                }
                p.step.planned_rows
            }
            _ => {
                let n = client
                    .execute(&p.step.sql, &[])
                    .await
                    .map_err(pg("run an undo step"))?;
                i64::try_from(n).unwrap_or(i64::MAX)
            }
        };
        p.step.rows = Some(rows);
        if let (Some(seqs), Some(restored)) = (&p.sequences, restored) {
            for (owned, max) in seqs.owned.iter().zip(restored) {
                if let Some(max) = max {
                    let dry_run = options.dry_run;
                    move_sequence(client, &seqs.table, owned, max, dry_run, &mut report).await?;
                }
            }
        }
        report.steps.push(p.step);
    }
    client
        .query_one(&end_statement_sql(audit)?, &[])
        .await
        .map_err(pg("end the undo"))?;
    Ok(report)
}

/// Change `id` and its descendants (parent_id), with their depth, parents first.
async fn tree(client: &Client, audit: &str, id: i64) -> Result<Vec<(Change, i32)>, UndoError> {
    let s = quote_ident(audit);
    let sql = format!(
        "WITH RECURSIVE tree(id, depth) AS ( \
             SELECT $1::bigint, 0 \
             UNION ALL \
             SELECT c.id, t.depth + 1 FROM {s}.changes c JOIN tree t ON c.parent_id = t.id) \
         SELECT {}, t.depth FROM tree t JOIN {s}.changes c ON c.id = t.id ORDER BY t.depth, c.id",
        change_columns(audit)
    );
    client
        .query(&sql, &[&id])
        .await
        .map_err(pg("read the change and its children"))?
        .iter()
        .map(|r| Ok((change_from_row(r)?, r.try_get(19)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read the change and its children"))
}

/// Checks one change with images, finds its conflicts, and plans its statements.
#[allow(clippy::too_many_arguments)]
async fn plan_images(
    client: &Client,
    tree: Tree<'_>,
    change: &Change,
    depth: i32,
    images: &Images,
    options: UndoOptions,
    locked: &mut HashSet<u32>,
    planned: &mut Vec<Planned>,
    report: &mut UndoReport,
) -> Result<(), UndoError> {
    let table = images.table_label();
    if !images.exists {
        return Err(UndoError::TableGone {
            change: change.id,
            table,
        });
    }
    if images.in_trash {
        return Err(UndoError::InTrash {
            change: change.id,
            table: format!(
                "{}.{}",
                change.table_schema.as_deref().unwrap_or(""),
                change.table_name.as_deref().unwrap_or("")
            ),
        });
    }
    if !images.key_recorded() {
        return Err(UndoError::NoPrimaryKey {
            change: change.id,
            table,
        });
    }
    // A partitioned table's key is unique across its partitions; a plain parent's is not.
    let inherited: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_inherits i \
                              JOIN pg_catalog.pg_class c ON c.oid = i.inhparent \
                             WHERE i.inhparent = $1 AND c.relkind = 'r')",
            &[&images.relid],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg("look for inheritance children"))?;
    if inherited {
        return Err(UndoError::Inherited {
            change: change.id,
            table,
        });
    }
    let x = change.id;
    let sh = &images.shadow;
    let t = images.table_sql();

    let lost = lost_columns(client, images, x).await?;
    if !lost.is_empty() {
        if !options.force {
            return Err(UndoError::LostColumns {
                change: x,
                table,
                columns: lost,
            });
        }
        report.warnings.push(format!(
            "change {x}: recorded values of column(s) {} of {table} are not restored (the table no longer has them)",
            lost.join(", ")
        ));
    }

    // Other writers wait until the undo commits; the comparison below stays true.
    if locked.insert(images.relid) {
        client
            .batch_execute(&format!("LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE"))
            .await
            .map_err(|e| match e.code() {
                Some(&SqlState::LOCK_NOT_AVAILABLE) => UndoError::LockTimeout {
                    change: x,
                    table: images.table_label(),
                    relid: images.relid,
                    timeout: options.lock_timeout,
                    blockers: Vec::new(),
                },
                _ => pg("lock the table")(e),
            })?;
    }

    // The images of change x in alias `a`/`b`: qualified, the shadow is joined to itself.
    let image = |alias: &str, which: &str| {
        format!("{alias}.pgbelay_change_id = {x} AND {alias}.pgbelay_image = '{which}'")
    };
    let counts = client
        .query_one(
            &format!(
                "SELECT pg_catalog.count(*) FILTER (WHERE b.pgbelay_change_id IS NOT NULL AND a.pgbelay_change_id IS NOT NULL), \
                        pg_catalog.count(*) FILTER (WHERE a.pgbelay_change_id IS NULL), \
                        pg_catalog.count(*) FILTER (WHERE b.pgbelay_change_id IS NULL) \
                   FROM (SELECT * FROM {sh} b WHERE {}) b FULL JOIN (SELECT * FROM {sh} a WHERE {}) a ON {}",
                image("b", "before"),
                image("a", "after"),
                images.key_eq("a", "b")
            ),
            &[],
        )
        .await
        .map_err(pg("count the images"))?;
    let (pairs, removed, added): (i64, i64, i64) = (
        counts.try_get(0).map_err(pg("count the images"))?,
        counts.try_get(1).map_err(pg("count the images"))?,
        counts.try_get(2).map_err(pg("count the images"))?,
    );

    conflicts(client, change, images, report).await?;

    let common: Vec<_> = images.common().collect();
    let has_before_pair = |alias: &str| {
        format!(
            "EXISTS (SELECT 1 FROM {sh} b WHERE {} AND {})",
            image("b", "before"),
            images.key_eq("b", alias)
        )
    };
    let has_after_pair = |alias: &str| {
        format!(
            "EXISTS (SELECT 1 FROM {sh} a WHERE {} AND {})",
            image("a", "after"),
            images.key_eq("a", alias)
        )
    };
    let mut push = |action, rows, sql: String, sequences| {
        planned.push(Planned {
            step: Step {
                change_id: x,
                table: images.table_label(),
                action,
                planned_rows: rows,
                rows: None,
                sql,
            },
            depth,
            target: Some(t.clone()),
            relid: Some(images.relid),
            sequences,
        });
    };
    if added > 0 {
        referencing_rows(client, tree, x, images, &has_before_pair("a"), report).await?;
        push(
            Action::Delete,
            added,
            format!(
                "DELETE FROM {t} t USING {sh} a WHERE {} AND {} AND NOT {}",
                image("a", "after"),
                images.key_eq("t", "a"),
                has_before_pair("a")
            ),
            None,
        );
    }
    let settable: Vec<String> = common
        .iter()
        .filter(|c| !c.generated && !c.identity_always && !images.key.contains(&c.name))
        .map(|c| {
            let c = quote_ident(&c.name);
            format!(
                "{c} = CASE WHEN b.{c}::text IS DISTINCT FROM a.{c}::text THEN b.{c} ELSE t.{c} END"
            )
        })
        .collect();
    if pairs > 0 && !settable.is_empty() {
        push(
            Action::Update,
            pairs,
            format!(
                "UPDATE {t} t SET {} FROM {sh} b JOIN {sh} a ON {} AND {} WHERE {} AND {}",
                settable.join(", "),
                image("a", "after"),
                images.key_eq("a", "b"),
                image("b", "before"),
                images.key_eq("t", "b")
            ),
            None,
        );
    }
    if removed > 0 {
        let writable: Vec<&str> = common
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.as_str())
            .collect();
        let overriding = if common.iter().any(|c| c.identity_always) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let source = format!(
            "FROM {sh} b WHERE {} AND NOT {} AND NOT EXISTS (SELECT 1 FROM {t} t WHERE {})",
            image("b", "before"),
            has_after_pair("b"),
            images.key_eq("t", "b")
        );
        let owned: Vec<_> = owned_sequences(client, images.relid)
            .await?
            .into_iter()
            .filter(|o| writable.contains(&o.column.as_str()))
            .collect();
        let sequences = (!owned.is_empty()).then(|| Sequences {
            restored_max: format!(
                "SELECT ARRAY[{}]::pg_catalog.int8[] {source}",
                owned
                    .iter()
                    .map(|o| format!(
                        "pg_catalog.max(b.{})::pg_catalog.int8",
                        quote_ident(&o.column)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            table: images.table_label(),
            owned,
        });
        push(
            Action::Insert,
            removed,
            format!(
                "INSERT INTO {t} ({}){overriding} SELECT {} {source}",
                writable
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                writable
                    .iter()
                    .map(|c| format!("b.{}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            sequences,
        );
    }
    Ok(())
}

/// The ascending sequences owned by an integer column (serial: pg_depend 'a'; identity:
/// 'i') of table `relid` or, for a partition, of its partitioned ancestors (whose column
/// of that name the partition's rows take their values from).
async fn owned_sequences(client: &Client, relid: u32) -> Result<Vec<OwnedSequence>, UndoError> {
    client
        .query(
            "SELECT s.oid, n.nspname::text, s.relname::text, a.attname::text \
               FROM pg_catalog.pg_depend d \
               JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
               JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace \
               JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
              WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                AND (d.refobjid = $1 OR d.refobjid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.oid::pg_catalog.regclass))) \
                AND d.deptype IN ('a', 'i') AND q.seqincrement > 0 \
                AND a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype, \
                                   'pg_catalog.int8'::pg_catalog.regtype) \
              ORDER BY 2, 3",
            &[&relid],
        )
        .await
        .map_err(pg("read the table's sequences"))?
        .iter()
        .map(|r| {
            let (schema, name): (String, String) = (r.try_get(1)?, r.try_get(2)?);
            Ok(OwnedSequence {
                oid: r.try_get(0)?,
                sql: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
                label: format!("{schema}.{name}"),
                column: r.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg("read the table's sequences"))
}

/// Moves sequence `seq` of `table` so that its next value is past `max`, when it is
/// ascending and not already past it (only forward), and adds that to `report`; in a dry
/// run only adds it. Reading and moving is one statement, and inserts into the table wait
/// for the undo's lock, so only a value taken elsewhere (a direct `nextval`, an insert into
/// another partition) could come in between. A `max` beyond the sequence's MAXVALUE leaves
/// it, with a warning.
async fn move_sequence(
    client: &Client,
    table: &str,
    seq: &OwnedSequence,
    max: i64,
    dry_run: bool,
    report: &mut UndoReport,
) -> Result<(), UndoError> {
    let sql = format!(
        "SELECT v.last_value, v.fits, \
                CASE WHEN $3 AND v.fits THEN pg_catalog.setval($2::pg_catalog.oid::pg_catalog.regclass, $1, true) END \
           FROM (SELECT s.last_value, $1 <= q.seqmax AS fits \
                   FROM {} s, pg_catalog.pg_sequence q \
                  WHERE q.seqrelid = $2 AND q.seqincrement > 0 \
                    AND CASE WHEN s.is_called THEN s.last_value::pg_catalog.numeric + q.seqincrement \
                             ELSE s.last_value END <= $1) v",
        seq.sql
    );
    let Some(row) = client
        .query_opt(&sql, &[&max, &seq.oid, &!dry_run])
        .await
        .map_err(pg("move a sequence"))?
    else {
        return Ok(());
    };
    let from: i64 = row.try_get(0).map_err(pg("move a sequence"))?;
    let column = format!("{table}.{}", seq.column);
    if !row.try_get::<_, bool>(1).map_err(pg("move a sequence"))? {
        report.warnings.push(format!(
            "sequence {} ({column}) is not moved past the restored value {max}: that is beyond its MAXVALUE",
            seq.label
        ));
        return Ok(());
    }
    match report
        .sequences
        .iter_mut()
        .find(|m| m.sequence == seq.label)
    {
        Some(earlier) => earlier.to = earlier.to.max(max),
        None => report.sequences.push(SequenceMove {
            sequence: seq.label.clone(),
            column,
            from,
            to: max,
            moved: !dry_run,
        }),
    }
    Ok(())
}

/// Adds to `report` the rows the undo of change `x` would delete (those it added, now in
/// the table) that rows of other tables reference: a DELETE would reach them through
/// the foreign key (a cascade would delete rows the change never made). `unpaired` says
/// that an after-image `a` has no before-image (the row was added, not changed).
async fn referencing_rows(
    client: &Client,
    tree: Tree<'_>,
    x: i64,
    images: &Images,
    unpaired: &str,
    report: &mut UndoReport,
) -> Result<(), UndoError> {
    let keys = client
        .query(
            &format!("SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(r.relname), \
                    n.nspname || '.' || r.relname, \
                    ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, i) \
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), \
                    ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(n, i) \
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i), \
                    CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
                         WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END, \
                    (SELECT pg_catalog.format('%I.%I', $2::text, st.shadow_table) \
                       FROM {}.shadow_tables st WHERE st.relid = c.conrelid), \
                    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index x, \
                                 pg_catalog.unnest(x.indkey) WITH ORDINALITY k(n, o), pg_catalog.pg_attribute a \
                           WHERE x.indrelid = c.conrelid AND x.indisprimary \
                             AND a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) \
               FROM pg_catalog.pg_constraint c \
               JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
              WHERE c.contype = 'f' AND c.confrelid = $1 \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p \
                                 WHERE p.oid = c.conparentid AND p.confrelid = c.confrelid) \
              ORDER BY 2, c.conname",
                quote_ident(tree.audit)
            ),
            &[&images.relid, &tree.audit],
        )
        .await
        .map_err(pg("read the foreign keys"))?;
    let t = images.table_sql();
    for fk in keys {
        let child: String = fk.try_get(0).map_err(pg("read the foreign keys"))?;
        let by: String = fk.try_get(1).map_err(pg("read the foreign keys"))?;
        let columns: Vec<String> = fk.try_get(2).map_err(pg("read the foreign keys"))?;
        let referenced: Vec<String> = fk.try_get(3).map_err(pg("read the foreign keys"))?;
        let on_delete: String = fk.try_get(4).map_err(pg("read the foreign keys"))?;
        let join = columns
            .iter()
            .zip(&referenced)
            .map(|(c, p)| format!("c.{} = t.{}", quote_ident(c), quote_ident(p)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let shadow: Option<String> = fk.try_get(5).map_err(pg("read the foreign keys"))?;
        let child_key: Vec<String> = fk.try_get(6).map_err(pg("read the foreign keys"))?;
        let undone = match shadow {
            Some(shadow) if !child_key.is_empty() => {
                format!(
                    " AND NOT {}",
                    undone_by_tree(tree, &shadow, &child_key, &columns, &referenced)
                )
            }
            _ => String::new(),
        };
        let sql = format!(
            "SELECT {}, pg_catalog.count(*) FROM {} a JOIN {t} t ON {} JOIN {child} c ON {join} \
              WHERE a.pgbelay_change_id = {x} AND a.pgbelay_image = 'after' AND NOT {unpaired}{undone} \
              GROUP BY 1 ORDER BY 1",
            images.key_text("a"),
            images.shadow,
            images.key_eq("t", "a"),
        );
        for r in client
            .query(&sql, &[])
            .await
            .map_err(pg("find referencing rows"))?
        {
            let values: Vec<Option<String>> = r.try_get(0).map_err(pg("find referencing rows"))?;
            let rows: i64 = r.try_get(1).map_err(pg("find referencing rows"))?;
            let reason = ConflictReason::Referenced {
                by: by.clone(),
                rows,
                on_delete: on_delete.clone(),
            };
            report
                .conflicts
                .push(Conflict::of_row(x, images, values, reason));
        }
    }
    Ok(())
}

/// A condition on referencing row `c` (of a table recorded in `shadow`, keyed by `key`,
/// whose `columns` reference `referenced` of row `t`): a change of the undo's tree has an
/// after-image of `c` (by key), and undoing that change takes `c` away from `t` (deletes a
/// row it inserted, or sets it back to a before-image that did not reference `t`). Such a
/// row is no conflict: the same undo reverses it (an undone hard delete's cascade, undone
/// again). Whether `c` still equals that after-image is the change's own conflict check.
fn undone_by_tree(
    tree: Tree<'_>,
    shadow: &str,
    key: &[String],
    columns: &[String],
    referenced: &[String],
) -> String {
    let same_row = |alias: &str| {
        key.iter()
            .map(|k| format!("{alias}.{k} = c.{k}", k = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let references_t = columns
        .iter()
        .zip(referenced)
        .map(|(c, p)| format!("b.{} = t.{}", quote_ident(c), quote_ident(p)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let ids = tree
        .ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "EXISTS (SELECT 1 FROM {shadow} s WHERE s.pgbelay_change_id IN ({ids}) \
                   AND s.pgbelay_image = 'after' AND {} \
                   AND NOT EXISTS (SELECT 1 FROM {shadow} b \
                                    WHERE b.pgbelay_change_id = s.pgbelay_change_id \
                                      AND b.pgbelay_image = 'before' AND {} AND {references_t}))",
        same_row("s"),
        same_row("b"),
    )
}

/// Shadow columns the table no longer has that hold values for change `x`.
async fn lost_columns(client: &Client, images: &Images, x: i64) -> Result<Vec<String>, UndoError> {
    let lost = images.lost();
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let mut checks = Vec::with_capacity(lost.len());
    for name in &lost {
        checks.push(format!(
            "CASE WHEN pg_catalog.bool_or(s.{} IS NOT NULL) THEN {} END",
            quote_ident(name),
            quote_literal(name)?
        ));
    }
    let sql = format!(
        "SELECT ARRAY[{}]::text[] FROM {} s WHERE s.pgbelay_change_id = {x}",
        checks.join(", "),
        images.shadow
    );
    let found: Vec<Option<String>> = client
        .query_one(&sql, &[])
        .await
        .map_err(pg("compare the columns"))?
        .try_get(0)
        .map_err(pg("compare the columns"))?;
    Ok(found.into_iter().flatten().collect())
}

/// The table's columns that have no value (NULL) in any image of change `x`.
async fn never_recorded(
    client: &Client,
    images: &Images,
    x: i64,
) -> Result<Vec<String>, UndoError> {
    let mut checks = Vec::new();
    for c in images.common() {
        checks.push(format!(
            "CASE WHEN pg_catalog.bool_or(s.{} IS NOT NULL) THEN NULL ELSE {} END",
            quote_ident(&c.name),
            quote_literal(&c.name)?
        ));
    }
    if checks.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT pg_catalog.array_remove(ARRAY[{}]::text[], NULL) FROM {} s WHERE s.pgbelay_change_id = {x}",
        checks.join(", "),
        images.shadow
    );
    client
        .query_one(&sql, &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg("find the columns the change has no value for"))
}

/// Adds to `report` the rows of `change` that differ now from what the change left.
async fn conflicts(
    client: &Client,
    change: &Change,
    images: &Images,
    report: &mut UndoReport,
) -> Result<(), UndoError> {
    let x = change.id;
    let sh = &images.shadow;
    let t = images.table_sql();
    let common: Vec<_> = images.common().collect();
    let mut names = Vec::with_capacity(common.len());
    for c in &common {
        let q = quote_ident(&c.name);
        names.push(format!(
            "CASE WHEN t.{q}::text IS DISTINCT FROM a.{q}::text THEN {} END",
            quote_literal(&c.name)?
        ));
    }
    let row = |alias: &str| {
        common
            .iter()
            .map(|c| format!("{alias}.{}::text", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let changed = format!(
        "SELECT {}, t.ctid IS NULL, pg_catalog.array_remove(ARRAY[{}]::text[], NULL) \
           FROM {sh} a LEFT JOIN {t} t ON {} \
          WHERE a.pgbelay_change_id = {x} AND a.pgbelay_image = 'after' \
            AND (t.ctid IS NULL OR ROW({}) IS DISTINCT FROM ROW({})) \
          ORDER BY 1",
        images.key_text("a"),
        names.join(", "),
        images.key_eq("t", "a"),
        row("t"),
        row("a"),
    );
    let exists = format!(
        "SELECT {} FROM {sh} b JOIN {t} t ON {} \
          WHERE b.pgbelay_change_id = {x} AND b.pgbelay_image = 'before' \
            AND NOT EXISTS (SELECT 1 FROM {sh} a WHERE a.pgbelay_change_id = {x} \
                              AND a.pgbelay_image = 'after' AND {}) \
          ORDER BY 1",
        images.key_text("b"),
        images.key_eq("t", "b"),
        images.key_eq("a", "b"),
    );
    // Columns with no value in any image of the change, read once a changed row needs it.
    let mut unrecorded: Option<Vec<String>> = None;
    for r in client
        .query(&changed, &[])
        .await
        .map_err(pg("compare the rows"))?
    {
        let values: Vec<Option<String>> = r.try_get(0).map_err(pg("compare the rows"))?;
        let gone: bool = r.try_get(1).map_err(pg("compare the rows"))?;
        let columns: Vec<String> = r.try_get(2).map_err(pg("compare the rows"))?;
        let reason = if gone {
            ConflictReason::Gone
        } else {
            if unrecorded.is_none() {
                unrecorded = Some(never_recorded(client, images, x).await?);
            }
            let none = unrecorded.as_deref().unwrap_or_default();
            ConflictReason::Changed {
                unrecorded: columns
                    .iter()
                    .filter(|c| none.contains(c))
                    .cloned()
                    .collect(),
                columns,
            }
        };
        report
            .conflicts
            .push(Conflict::of_row(x, images, values, reason));
    }
    for r in client
        .query(&exists, &[])
        .await
        .map_err(pg("compare the rows"))?
    {
        let values: Vec<Option<String>> = r.try_get(0).map_err(pg("compare the rows"))?;
        report
            .conflicts
            .push(Conflict::of_row(x, images, values, ConflictReason::Exists));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_setting_rounds_up_and_caps() {
        assert_eq!(lock_timeout_setting(Duration::ZERO), "0ms");
        assert_eq!(lock_timeout_setting(Duration::from_micros(1)), "1ms");
        assert_eq!(lock_timeout_setting(Duration::from_millis(300)), "300ms");
        assert_eq!(lock_timeout_setting(Duration::from_secs(5)), "5000ms");
        assert_eq!(
            lock_timeout_setting(Duration::from_secs(86_400 * 365)),
            format!("{}ms", i32::MAX)
        );
    }

    #[test]
    fn blocker_says_what_it_holds_and_who_it_is() {
        let mut b = Blocker {
            pid: 42,
            holds: vec!["RowExclusiveLock".into()],
            awaits: None,
            user: Some("alice".into()),
            application_name: Some("psql".into()),
            state: Some("idle in transaction".into()),
            xact_start: Some("2026-01-02 03:04:05+00".into()),
            query: Some("UPDATE orders SET status = 'x'".into()),
        };
        assert_eq!(
            b.to_string(),
            "pid 42 holds RowExclusiveLock (user alice, application psql, idle in transaction, \
             in a transaction since 2026-01-02 03:04:05+00): UPDATE orders SET status = 'x'"
        );
        b.holds.clear();
        b.awaits = Some("AccessExclusiveLock".into());
        b.application_name = Some(String::new());
        b.xact_start = None;
        b.query = None;
        assert_eq!(
            b.to_string(),
            "pid 42 waits for AccessExclusiveLock (user alice, idle in transaction)"
        );
    }
}
