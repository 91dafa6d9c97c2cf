//! Load and faults (issue 6 item 4; SPEC §B2, §B9, §B10): 200 sessions mixing reads and
//! recorded writes; the server restarted under load; clients killed mid-transaction;
//! SIGTERM under load. Each scenario checks what the clients saw and, on a direct
//! connection, that the audit trail holds exactly the committed changes with their images.
//!
//! The timed scenarios run for `PGBELAY_LOAD_SECONDS` (default 10); the full run is
//! `PGBELAY_LOAD_SECONDS=60 cargo test --release --test load` (`bench/load`). The
//! scenarios take turns ([`HEAVY`]): together they would exceed the server's
//! `max_connections` and fight over the machine's cores. Each prints a one-line summary
//! (`load <scenario>: …`, seen with `--nocapture`).
//!
//! No workload here can fail by design: every session writes only rows of its own, in
//! READ COMMITTED, so there are no serialization failures or deadlocks to tolerate, and an
//! error a scenario does not expect fails it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::load::*;
use common::*;
use futures_util::stream::{self, StreamExt};
use pgbelay::cluster::Cluster;
use pgbelay::config::Settings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;

/// One scenario at a time (see the module documentation).
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a write with the simple protocol (`literal`) or the extended one (`sql` with
/// `params`); returns the row count the server reported.
async fn write(
    client: &Client,
    simple: bool,
    literal: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Failure> {
    if !simple {
        return guarded(sql, client.execute(sql, params)).await;
    }
    let messages = guarded(literal, client.simple_query(literal)).await?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .ok_or_else(|| Failure::wrong(format!("{literal}: no CommandComplete")))
}

/// Fails unless the server reported `want` rows.
fn expect_rows(what: &str, got: u64, want: u64) -> Result<(), Failure> {
    if got == want {
        Ok(())
    } else {
        Err(Failure::wrong(format!(
            "{what}: {got} rows, expected {want}"
        )))
    }
}

// --- a. 200 sessions mixing reads and recorded writes --------------------------------

const MIX_SESSIONS: usize = 200;
const MIX_TABLE: &str = "items";
const MIX_COLUMNS: &str = "id, owner, v, note, deleted_at";

/// One row as a session's committed writes left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    v: i64,
    deleted: bool,
}

/// A session's rows (`id` → state); every session owns the ids `owner * 1_000_000 + n`.
type Model = BTreeMap<i64, Item>;

/// What all sessions did, for the summary and to show the run was not empty.
#[derive(Debug, Default)]
struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
    commits: AtomicU64,
    rollbacks: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One session of the mixed workload.
struct Mixed {
    owner: i32,
    client: Client,
    rng: StdRng,
    next: i64,
    counts: Arc<Counts>,
}

impl Mixed {
    fn simple(&mut self) -> bool {
        self.rng.random_bool(0.5)
    }

    fn live(&mut self, model: &Model) -> Option<i64> {
        let live: Vec<i64> = model
            .iter()
            .filter(|(_, item)| !item.deleted)
            .map(|(id, _)| *id)
            .collect();
        (!live.is_empty()).then(|| live[self.rng.random_range(0..live.len())])
    }

    async fn insert(&mut self, model: &mut Model) -> Result<(), Failure> {
        self.next += 1;
        let id = i64::from(self.owner) * 1_000_000 + self.next;
        let note = format!("n{id}");
        let literal = format!(
            "INSERT INTO {MIX_TABLE} (id, owner, v, note) VALUES ({id}, {}, 0, '{note}')",
            self.owner
        );
        let sql = format!("INSERT INTO {MIX_TABLE} (id, owner, v, note) VALUES ($1, $2, 0, $3)");
        let simple = self.simple();
        let n = write(
            &self.client,
            simple,
            &literal,
            &sql,
            &[&id, &self.owner, &note],
        )
        .await?;
        expect_rows(&literal, n, 1)?;
        Counts::add(&self.counts.writes);
        model.insert(
            id,
            Item {
                v: 0,
                deleted: false,
            },
        );
        Ok(())
    }

    async fn update_one(&mut self, model: &mut Model) -> Result<(), Failure> {
        let Some(id) = self.live(model) else {
            return self.insert(model).await;
        };
        let note = format!("u{}", self.rng.random_range(0..1_000_000));
        let literal = format!("UPDATE {MIX_TABLE} SET v = v + 1, note = '{note}' WHERE id = {id}");
        let sql = format!("UPDATE {MIX_TABLE} SET v = v + 1, note = $2 WHERE id = $1");
        let simple = self.simple();
        let n = write(&self.client, simple, &literal, &sql, &[&id, &note]).await?;
        expect_rows(&literal, n, 1)?;
        Counts::add(&self.counts.writes);
        if let Some(item) = model.get_mut(&id) {
            item.v += 1;
        }
        Ok(())
    }

    /// An UPDATE of every live row of this session with `id % 3 = r` (often several).
    async fn update_many(&mut self, model: &mut Model) -> Result<(), Failure> {
        let r: i64 = self.rng.random_range(0..3);
        let literal = format!(
            "UPDATE {MIX_TABLE} SET v = v + 10 WHERE owner = {} AND deleted_at IS NULL AND id % 3 = {r}",
            self.owner
        );
        let sql = format!(
            "UPDATE {MIX_TABLE} SET v = v + 10 WHERE owner = $1 AND deleted_at IS NULL AND id % 3 = $2"
        );
        let simple = self.simple();
        let n = write(&self.client, simple, &literal, &sql, &[&self.owner, &r]).await?;
        let matching: Vec<&mut Item> = model
            .iter_mut()
            .filter(|(id, item)| !item.deleted && *id % 3 == r)
            .map(|(_, item)| item)
            .collect();
        expect_rows(&literal, n, matching.len() as u64)?;
        Counts::add(&self.counts.writes);
        for item in matching {
            item.v += 10;
        }
        Ok(())
    }

    /// `DELETE … WHERE id = …`, which the proxy turns into a soft delete.
    async fn delete(&mut self, model: &mut Model) -> Result<(), Failure> {
        let Some(id) = self.live(model) else {
            return self.insert(model).await;
        };
        let literal = format!("DELETE FROM {MIX_TABLE} WHERE id = {id}");
        let sql = format!("DELETE FROM {MIX_TABLE} WHERE id = $1");
        let simple = self.simple();
        let n = write(&self.client, simple, &literal, &sql, &[&id]).await?;
        expect_rows(&literal, n, 1)?;
        Counts::add(&self.counts.writes);
        if let Some(item) = model.get_mut(&id) {
            item.deleted = true;
        }
        Ok(())
    }

    /// Count and sum of this session's live rows, which must match its own writes.
    async fn read(&mut self, model: &Model) -> Result<(), Failure> {
        let literal = format!(
            "SELECT count(*)::bigint, coalesce(sum(v), 0)::bigint FROM {MIX_TABLE} \
             WHERE owner = {} AND deleted_at IS NULL",
            self.owner
        );
        let got: (i64, i64) = if self.simple() {
            let messages = guarded(&literal, self.client.simple_query(&literal)).await?;
            let row = messages
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                })
                .ok_or_else(|| Failure::wrong(format!("{literal}: no row")))?;
            let parse = |i: usize| row.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
            (parse(0), parse(1))
        } else {
            let sql = format!(
                "SELECT count(*)::bigint, coalesce(sum(v), 0)::bigint FROM {MIX_TABLE} \
                 WHERE owner = $1 AND deleted_at IS NULL"
            );
            let row = guarded(&sql, self.client.query_one(&sql, &[&self.owner])).await?;
            (row.get(0), row.get(1))
        };
        let live = model.values().filter(|item| !item.deleted);
        let want = (
            live.clone().count() as i64,
            live.map(|item| item.v).sum::<i64>(),
        );
        Counts::add(&self.counts.reads);
        if got == want {
            Ok(())
        } else {
            Err(Failure::wrong(format!(
                "session {} read (count, sum) {got:?}, its writes imply {want:?}",
                self.owner
            )))
        }
    }

    /// BEGIN, two to four statements, then COMMIT (or, one time in five, ROLLBACK).
    async fn transaction(&mut self, model: &mut Model) -> Result<(), Failure> {
        guarded("BEGIN", self.client.batch_execute("BEGIN")).await?;
        let mut tx = model.clone();
        for _ in 0..self.rng.random_range(2..=4) {
            match self.rng.random_range(0..10) {
                0..3 => self.insert(&mut tx).await?,
                3..6 => self.update_one(&mut tx).await?,
                6 => self.update_many(&mut tx).await?,
                7 => self.delete(&mut tx).await?,
                _ => self.read(&tx).await?,
            }
        }
        if self.rng.random_bool(0.2) {
            guarded("ROLLBACK", self.client.batch_execute("ROLLBACK")).await?;
            Counts::add(&self.counts.rollbacks);
        } else {
            guarded("COMMIT", self.client.batch_execute("COMMIT")).await?;
            Counts::add(&self.counts.commits);
            *model = tx;
        }
        Ok(())
    }

    async fn step(&mut self, model: &mut Model) -> Result<(), Failure> {
        match self.rng.random_range(0..100) {
            0..40 => self.read(model).await,
            40..55 => self.insert(model).await,
            55..67 => self.update_one(model).await,
            67..72 => self.update_many(model).await,
            72..80 => self.delete(model).await,
            _ => self.transaction(model).await,
        }
    }

    /// Runs until `deadline`; the model of its committed rows, or `None` after an error
    /// (then what the session committed is uncertain; the error fails the test anyway).
    async fn run(mut self, deadline: Instant, tally: Arc<Tally>) -> (i32, Option<Model>) {
        let mut model = Model::new();
        while Instant::now() < deadline {
            if let Err(failure) = self.step(&mut model).await {
                tally.record(&failure);
                return (self.owner, None);
            }
        }
        (self.owner, Some(model))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_mix_reads_and_recorded_writes() {
    let _turn = HEAVY.lock().await;
    let duration = load_duration();
    let db = create_db("load_mix").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {MIX_TABLE} (id bigint PRIMARY KEY, owner int NOT NULL,
                                       v bigint NOT NULL, note text, deleted_at timestamptz);
             CREATE INDEX ON {MIX_TABLE} (owner);"
        ))
        .await
        .expect("schema");
    let proxy = TestProxy::start().await;
    // One committed write first prepares the table for recording, as `pgbelay init` does
    // for existing tables (concurrent first writes deadlock: see
    // concurrent_first_writes_to_a_new_table_do_not_deadlock).
    connect_super(proxy.endpoint(), &db)
        .await
        .batch_execute(&format!(
            "INSERT INTO {MIX_TABLE} (id, owner, v, note) VALUES (0, 0, 0, 'prepares')"
        ))
        .await
        .expect("first write");
    let app = unique("load_mix");
    let url = format!(
        "{}?application_name={app}",
        proxy
            .endpoint()
            .url(superuser(), Some(SUPERUSER_PASSWORD), &db)
    );

    // Connect everyone first (16 at a time: SCRAM costs CPU), then start together.
    let opened: Vec<Result<LoadConn, Failure>> = stream::iter(0..MIX_SESSIONS)
        .map(|_| LoadConn::open(&url, Duration::from_secs(60)))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut conns = Vec::new();
    for conn in opened {
        conns.push(conn.unwrap_or_else(|f| panic!("connect through the proxy: {f:?}")));
    }
    let concurrent: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(
        concurrent, MIX_SESSIONS as i64,
        "upstream sessions of the proxy"
    );

    let tally = Arc::new(Tally::default());
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let owner = i as i32 + 1;
        let session = Mixed {
            owner,
            client: conn.client,
            rng: StdRng::seed_from_u64(owner as u64),
            next: 0,
            counts: counts.clone(),
        };
        tasks.push(tokio::spawn(session.run(deadline, tally.clone())));
    }
    let mut models = BTreeMap::new();
    for task in tasks {
        let (owner, model) = task.await.expect("session task");
        if let Some(model) = model {
            models.insert(owner, model);
        }
    }
    let elapsed = started.elapsed();

    // Afterwards, on a direct connection: the trail, and the table against it.
    let (changes, audit) = audit_problems(&admin, MIX_TABLE).await;
    let replay = replay_problems(&admin, MIX_TABLE, MIX_COLUMNS).await;
    let rows = admin
        .query(
            &format!("SELECT owner, id, v, deleted_at IS NOT NULL FROM {MIX_TABLE}"),
            &[],
        )
        .await
        .expect("rows");
    let mut in_table: BTreeMap<i32, Model> = BTreeMap::new();
    for row in &rows {
        in_table.entry(row.get(0)).or_default().insert(
            row.get(1),
            Item {
                v: row.get(2),
                deleted: row.get(3),
            },
        );
    }
    let differing: Vec<i32> = models
        .iter()
        .filter(|(owner, model)| in_table.get(owner).cloned().unwrap_or_default() != **model)
        .map(|(owner, _)| *owner)
        .collect();
    let totals = admin
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FILTER (WHERE deleted_at IS NULL) FROM {MIX_TABLE}),
                        (SELECT coalesce(sum(rows), 0)::bigint FROM pgbelay.changes
                          WHERE table_name = $1 AND kind = 'insert'),
                        (SELECT coalesce(sum(rows), 0)::bigint FROM pgbelay.changes
                          WHERE table_name = $1 AND kind = 'delete')"
            ),
            &[&MIX_TABLE],
        )
        .await
        .expect("totals");
    let (live, inserted, deleted): (i64, i64, i64) = (totals.get(0), totals.get(1), totals.get(2));

    println!(
        "load mix: {MIX_SESSIONS} sessions for {:.1} s: {} reads, {} recorded writes, {} transactions committed, {} rolled back; errors: {}; {changes} change rows, {} rows ({live} live)",
        elapsed.as_secs_f64(),
        counts.reads.load(Ordering::Relaxed),
        counts.writes.load(Ordering::Relaxed),
        counts.commits.load(Ordering::Relaxed),
        counts.rollbacks.load(Ordering::Relaxed),
        tally.summary(),
        rows.len(),
    );
    // No error is expected: every session works on rows of its own.
    assert!(
        tally.snapshot().is_empty(),
        "errors by class (count, first message): {:#?}",
        tally.snapshot()
    );
    assert!(
        counts.writes.load(Ordering::Relaxed) > 0
            && counts.commits.load(Ordering::Relaxed) > 0
            && counts.rollbacks.load(Ordering::Relaxed) > 0,
        "the run did too little to check anything: {counts:?}"
    );
    assert!(audit.is_empty(), "audit trail: {audit:#?}");
    assert!(replay.is_empty(), "table vs images: {replay:#?}");
    assert_eq!(models.len(), MIX_SESSIONS, "every session finished cleanly");
    assert!(
        differing.is_empty(),
        "sessions whose rows differ from what their committed writes imply: {differing:?}"
    );
    assert_eq!(
        live,
        inserted - deleted,
        "live rows = inserted − soft-deleted"
    );
}

// --- b. The server restarted under load ----------------------------------------------

const RESTART_WORKERS: usize = 20;
const MARKS_COLUMNS: &str = "id, worker, v, marker, deleted_at";

/// What one writer saw while the server went away and came back.
#[derive(Debug, Default)]
struct WriterLog {
    /// Rows inserted by a write the client saw succeed (`true`: also updated in the
    /// same transaction, so `v = 1`).
    committed: Vec<(i64, bool)>,
    /// Rows soft-deleted by a DELETE the client saw succeed.
    deleted: Vec<i64>,
    /// Successful writes that started after the server was back.
    after_restart: u64,
}

/// One writer: autocommit INSERTs, transactions (INSERT + UPDATE), soft DELETEs of its
/// own committed rows; on an error it drops the session and connects again.
async fn restart_writer(
    worker: i32,
    url: String,
    deadline: Arc<std::sync::Mutex<Instant>>,
    back: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut conn: Option<LoadConn> = None;
    let mut seq: i64 = 0;
    while Instant::now() < *deadline.lock().expect("deadline") {
        let server_back = back.load(Ordering::SeqCst);
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            match LoadConn::open(&url, OP_GUARD).await {
                Ok(c) => conn = Some(c),
                Err(failure) => {
                    tally.record(&failure);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let client = &conn.as_ref().expect("connected").client;
        seq += 1;
        let id = i64::from(worker) * 1_000_000 + seq;
        let marker = format!("w{worker}-{seq}");
        let result =
            match seq % 4 {
                0 => {
                    let sql = "INSERT INTO marks (id, worker, marker) VALUES ($1, $2, $3)";
                    guarded(sql, client.execute(sql, &[&id, &worker, &marker]))
                        .await
                        .map(|_| log.committed.push((id, false)))
                }
                1 | 2 => async {
                    guarded("BEGIN", client.batch_execute("BEGIN")).await?;
                    let insert = format!(
                        "INSERT INTO marks (id, worker, marker) VALUES ({id}, {worker}, '{marker}')"
                    );
                    guarded(&insert, client.batch_execute(&insert)).await?;
                    let update = "UPDATE marks SET v = 1 WHERE id = $1";
                    guarded(update, client.execute(update, &[&id])).await?;
                    guarded("COMMIT", client.batch_execute("COMMIT")).await?;
                    log.committed.push((id, true));
                    Ok(())
                }
                .await,
                _ => match log
                    .committed
                    .iter()
                    .rev()
                    .find(|(c, _)| !log.deleted.contains(c))
                {
                    None => Ok(()),
                    Some(&(victim, _)) => {
                        let sql = format!("DELETE FROM marks WHERE id = {victim}");
                        guarded(&sql, client.batch_execute(&sql))
                            .await
                            .map(|()| log.deleted.push(victim))
                    }
                },
            };
        match result {
            Ok(()) if server_back => log.after_restart += 1,
            Ok(()) => {}
            Err(failure) => {
                tally.record(&failure);
                conn = None;
            }
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart_under_load_errors_then_serves_and_records_nothing_half() {
    let _turn = HEAVY.lock().await;
    let duration = load_duration();
    let own = tokio::task::spawn_blocking(|| {
        let cluster = Cluster::start()?;
        let install = pgbelay::audit::install_sql(pgbelay::audit::DEFAULT_AUDIT_SCHEMA)
            .expect("audit schema SQL");
        cluster.run_sql_in("postgres", &install)?;
        cluster.run_sql_in(
            "postgres",
            "CREATE TABLE marks (id bigint PRIMARY KEY, worker int NOT NULL,
                                 v int NOT NULL DEFAULT 0, marker text NOT NULL UNIQUE,
                                 deleted_at timestamptz)",
        )?;
        Ok::<_, pgbelay::cluster::ClusterError>(cluster)
    })
    .await
    .expect("join")
    .expect("a dedicated cluster with the audit schema");
    let own = Arc::new(own);
    let guard = pgbelay::policy::Guard::new(&Settings::default());
    let proxy = TestProxy::start_with(&own, Arc::new(guard)).await;
    let url = proxy
        .endpoint()
        .url(own.superuser(), Some(SUPERUSER_PASSWORD), "postgres");

    let tally = Arc::new(Tally::default());
    let back = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = Arc::new(std::sync::Mutex::new(started + duration));
    let writers: Vec<_> = (1..=RESTART_WORKERS as i32)
        .map(|w| {
            tokio::spawn(restart_writer(
                w,
                url.clone(),
                deadline.clone(),
                back.clone(),
                tally.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(duration / 3).await;
    let restarted = own.clone();
    tokio::task::spawn_blocking(move || restarted.restart())
        .await
        .expect("join")
        .expect("restart the server");
    back.store(true, Ordering::SeqCst);
    let back_at = Instant::now();
    {
        // Writers get at least three seconds with the server back.
        let mut deadline = deadline.lock().expect("deadline");
        *deadline = (*deadline).max(back_at + Duration::from_secs(3));
    }
    let mut logs = Vec::new();
    for writer in writers {
        logs.push(writer.await.expect("writer task"));
    }

    // A new session through the same proxy reads and writes (recorded).
    let fresh = LoadConn::open(&url, OP_GUARD)
        .await
        .unwrap_or_else(|f| panic!("a new session after the restart: {f:?}"));
    guarded(
        "fresh write",
        fresh.client.batch_execute(
            "INSERT INTO marks (id, worker, marker) VALUES (0, 0, 'after the restart')",
        ),
    )
    .await
    .unwrap_or_else(|f| panic!("a write after the restart: {f:?}"));

    let admin = connect_super(endpoint_of(&own), "postgres").await;
    let (changes, audit) = audit_problems(&admin, "marks").await;
    let replay = replay_problems(&admin, "marks", MARKS_COLUMNS).await;
    let committed: Vec<i64> = logs
        .iter()
        .flat_map(|l| l.committed.iter().map(|(id, _)| *id))
        .chain([0])
        .collect();
    let updated: Vec<i64> = logs
        .iter()
        .flat_map(|l| l.committed.iter().filter(|(_, u)| *u).map(|(id, _)| *id))
        .collect();
    let deleted: Vec<i64> = logs.iter().flat_map(|l| l.deleted.clone()).collect();
    let found = admin
        .query_one(
            "SELECT (SELECT count(*) FROM marks WHERE id = ANY($1)),
                    (SELECT count(*) FROM marks WHERE id = ANY($2) AND v = 1),
                    (SELECT count(*) FROM marks WHERE id = ANY($3) AND deleted_at IS NOT NULL),
                    (SELECT count(*) FROM marks)",
            &[&committed, &updated, &deleted],
        )
        .await
        .expect("committed rows");
    let (present, present_updated, present_deleted, total): (i64, i64, i64, i64) =
        (found.get(0), found.get(1), found.get(2), found.get(3));

    println!(
        "load restart: {RESTART_WORKERS} writers for {:.1} s, server restarted after {:.1} s: {} writes seen committed ({} after the restart), {total} rows, {changes} change rows; client errors: {}",
        started.elapsed().as_secs_f64(),
        (duration / 3).as_secs_f64(),
        committed.len() + deleted.len(),
        logs.iter().map(|l| l.after_restart).sum::<u64>(),
        tally.summary(),
    );
    // Clients were told: connection-level errors only, and no hangs.
    assert!(tally.total() > 0, "no client noticed the restart");
    let unexpected = tally.unexpected(&["57P01", "08006", "08001", "57P03", "closed"]);
    assert!(
        unexpected.is_empty(),
        "unexpected errors (count, first message): {unexpected:#?}"
    );
    let idle: Vec<usize> = logs
        .iter()
        .enumerate()
        .filter(|(_, l)| l.after_restart == 0)
        .map(|(i, _)| i + 1)
        .collect();
    assert!(
        idle.is_empty(),
        "writers that never wrote again once the server was back: {idle:?}"
    );
    // Nothing half-recorded: every change has its images, every row its record, and
    // every write a client saw succeed is there.
    assert!(audit.is_empty(), "audit trail: {audit:#?}");
    assert!(replay.is_empty(), "table vs images: {replay:#?}");
    assert_eq!(present, committed.len() as i64, "committed inserts present");
    assert_eq!(present_updated, updated.len() as i64, "committed updates");
    assert_eq!(present_deleted, deleted.len() as i64, "committed deletes");

    drop(fresh);
    drop(proxy);
    tokio::task::spawn_blocking(move || drop(own))
        .await
        .expect("drop cluster");
}

// --- c. Clients killed mid-transaction -----------------------------------------------

const KILLED_PER_KIND: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_clients_leave_no_transaction_and_nothing_recorded() {
    let _turn = HEAVY.lock().await;
    let db = create_db("load_kill").await;
    let admin = connect_super(direct(), &db).await;
    // Seed rows inserted directly (not recorded); each victim session touches rows of
    // its own, so none waits for another's locks.
    admin
        .batch_execute(&format!(
            "CREATE TABLE victims (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, note text,
                                   deleted_at timestamptz);
             INSERT INTO victims (id, note) SELECT g, 'seed' FROM generate_series(1, 400) g;
             GRANT ALL ON victims TO {TRUST_USER};"
        ))
        .await
        .expect("schema");
    let proxy = TestProxy::start().await;
    let addr = proxy.addr().to_string();
    let app = unique("killed");
    let url = format!(
        "{}?application_name={app}",
        proxy
            .endpoint()
            .url(superuser(), Some(SUPERUSER_PASSWORD), &db)
    );

    // A bystander commits a write first (which also prepares the table for recording:
    // done inside a victim's transaction, that would block every other writer until the
    // victim's transaction ends; see a_first_write_in_an_open_transaction_…).
    let bystander = connect_super(proxy.endpoint(), &db).await;
    bystander
        .execute("INSERT INTO victims (id, note) VALUES (5000, 'kept')", &[])
        .await
        .expect("bystander insert");

    // Kind 1: simple protocol, BEGIN and three writes, then idle in the transaction.
    // Kind 2: like 1, then a write sent and the socket dropped without reading its answer.
    // Kind 3: an autocommit INSERT in the extended protocol, executed (Flush, answered)
    //         but never Synced: the proxy's own transaction around it is still open.
    // Kind 4: tokio-postgres, BEGIN and writes with parameters; the connection task is
    //         aborted, so the socket closes without a Terminate.
    let mut raw = Vec::new();
    let mut dropped_in_flight = Vec::new();
    let mut drivers = Vec::new();
    for s in 0..4 * KILLED_PER_KIND {
        let (kind, row) = (s / KILLED_PER_KIND + 1, s + 1);
        let (inserted, deleted) = (1000 + row, 200 + row);
        if kind == 4 {
            let conn = LoadConn::open(&url, OP_GUARD)
                .await
                .unwrap_or_else(|f| panic!("connect: {f:?}"));
            let c = &conn.client;
            c.batch_execute("BEGIN").await.expect("BEGIN");
            c.execute(
                "INSERT INTO victims (id, note) VALUES ($1, 'killed')",
                &[&inserted],
            )
            .await
            .expect("insert");
            c.execute(
                "UPDATE victims SET v = v + 1, note = 'killed' WHERE id = $1",
                &[&row],
            )
            .await
            .expect("update");
            c.execute("DELETE FROM victims WHERE id = $1", &[&deleted])
                .await
                .expect("delete");
            drivers.push(conn);
            continue;
        }
        let (mut conn, _) = RawConn::startup(&addr, &db, &app).await;
        if kind == 3 {
            let sql = format!("INSERT INTO victims (id, note) VALUES ({inserted}, 'killed')");
            let mut parse = vec![0u8];
            parse.extend_from_slice(sql.as_bytes());
            parse.extend_from_slice(&[0, 0, 0]);
            // unnamed portal and statement, no formats, no parameters
            let bind = [0u8; 8];
            let execute = [0u8, 0, 0, 0, 0];
            let mut batch = frame(b'P', &parse);
            batch.extend(frame(b'B', &bind));
            batch.extend(frame(b'E', &execute));
            batch.extend(frame(b'H', &[]));
            conn.send(&batch).await;
            let got = conn.read_until(b'C').await.expect("the INSERT's answer");
            assert!(!got.iter().any(|m| m.tag == b'E'), "{got:?}");
            raw.push(conn);
            continue;
        }
        for sql in [
            "BEGIN".to_string(),
            format!("INSERT INTO victims (id, note) VALUES ({inserted}, 'killed')"),
            format!("UPDATE victims SET v = v + 1, note = 'killed' WHERE id = {row}"),
            format!("DELETE FROM victims WHERE id = {deleted}"),
        ] {
            conn.send(&query_message(&sql)).await;
            let got = conn.read_until(b'Z').await.expect("answer");
            assert!(!got.iter().any(|m| m.tag == b'E'), "{sql}: {got:?}");
            assert_eq!(got.last().map(|m| m.body.clone()), Some(b"T".to_vec()));
        }
        if kind == 2 {
            let sql = format!("UPDATE victims SET note = 'killed twice' WHERE id = {deleted}");
            conn.send(&query_message(&sql)).await;
            dropped_in_flight.push(conn);
        } else {
            raw.push(conn);
        }
    }
    // The bystander commits another write while the victims are open.
    bystander
        .execute("UPDATE victims SET note = 'kept' WHERE id = 400", &[])
        .await
        .expect("bystander update");

    let activity = "SELECT count(*) FILTER (WHERE state = 'idle in transaction'), count(*) \
                    FROM pg_stat_activity WHERE application_name = $1";
    let before = admin.query_one(activity, &[&app]).await.expect("activity");
    let (open_before, sessions_before): (i64, i64) = (before.get(0), before.get(1));
    assert_eq!(sessions_before, 4 * KILLED_PER_KIND, "victim backends");
    assert!(
        open_before >= 3 * KILLED_PER_KIND,
        "victims idle in transaction before the kill: {open_before}"
    );

    // Kill them all at once.
    drop(raw);
    drop(dropped_in_flight);
    for conn in drivers {
        conn.kill();
    }
    let gone = eventually(|| async {
        let row = admin.query_one(activity, &[&app]).await.ok()?;
        (row.get::<_, i64>(1) == 0).then_some(())
    })
    .await;
    let after = admin.query_one(activity, &[&app]).await.expect("activity");
    let (open_after, sessions_after): (i64, i64) = (after.get(0), after.get(1));
    println!(
        "load kill: {} sessions killed mid-transaction ({open_before} idle in transaction); {sessions_after} upstream backends left, {open_after} idle in transaction",
        4 * KILLED_PER_KIND
    );
    assert!(
        gone.is_some(),
        "upstream backends of killed clients left: {sessions_after} ({open_after} idle in transaction)"
    );

    // None of their writes stayed or was recorded; the bystander's did and was.
    let state = admin
        .query_one(
            "SELECT (SELECT count(*) FROM victims WHERE note LIKE 'killed%' OR v <> 0
                        OR deleted_at IS NOT NULL OR id BETWEEN 401 AND 4999
                        OR id < 400 AND note <> 'seed'),
                    (SELECT count(*) FROM victims WHERE id IN (400, 5000) AND note = 'kept'),
                    (SELECT count(*) FROM pgbelay.changes WHERE statement NOT LIKE '%''kept''%'),
                    (SELECT count(*) FROM pgbelay.changes WHERE statement LIKE '%''kept''%')",
            &[],
        )
        .await
        .expect("state");
    let (stayed, kept, recorded_killed, recorded_kept): (i64, i64, i64, i64) =
        (state.get(0), state.get(1), state.get(2), state.get(3));
    assert_eq!(stayed, 0, "rows changed by killed sessions");
    assert_eq!(recorded_killed, 0, "change rows of killed sessions");
    assert_eq!((kept, recorded_kept), (2, 2), "the bystander's writes");
    let (_, audit) = audit_problems(&admin, "victims").await;
    assert!(audit.is_empty(), "audit trail: {audit:#?}");
    let killed_images: i64 = admin
        .query_one(
            &format!(
                "SELECT count(*) FROM {} WHERE note LIKE 'killed%'",
                shadow_of("victims")
            ),
            &[],
        )
        .await
        .expect("images")
        .get(0);
    assert_eq!(killed_images, 0, "images of killed sessions' writes");
}

// --- d. SIGTERM under load ------------------------------------------------------------

const SHUTDOWN_TIMEOUT_SECS: u64 = 3;
/// Generous: the process must exit within `shutdown_timeout` plus this.
const EXIT_MARGIN: Duration = Duration::from_secs(5);

/// Starts the real binary on a free port in front of the shared cluster.
async fn serve_binary() -> (tokio::process::Child, Endpoint) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &cluster().addr()])
        .args(["--shutdown-timeout", &SHUTDOWN_TIMEOUT_SECS.to_string()])
        .env("PGBELAY_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pgbelay serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = tokio::time::timeout(HANG_GUARD, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("pgbelay listening") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(listening, Ok(true), "pgbelay serve did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ep = Endpoint {
        port,
        label: "serve",
    };
    (child, ep)
}

/// How a session of the SIGTERM scenario ended.
#[derive(Debug)]
struct Ended {
    role: &'static str,
    /// The error its last statement got (`None`: it was idle and got none).
    failure: Option<Failure>,
    /// How its connection ended.
    connection: Result<Option<Failure>, ()>,
    /// The error came inside a transaction the session had opened.
    in_transaction: bool,
    /// Inserts the client saw committed.
    committed: Vec<i64>,
    /// Inserts in a transaction that never committed.
    uncommitted: Vec<i64>,
}

impl Ended {
    /// The session was told: its statement got 57P01, or it had nothing in flight and
    /// the connection itself ended with 57P01 (the next statement then only learns that
    /// the connection is closed).
    fn told(&self) -> bool {
        let ended_57p01 = matches!(&self.connection, Ok(Some(f)) if f.class == "57P01");
        match &self.failure {
            Some(f) if f.class == "57P01" => true,
            Some(f) if f.class == "closed" => ended_57p01,
            Some(_) => false,
            None => ended_57p01,
        }
    }
}

/// Autocommit writes and reads in a loop until the proxy ends the session.
///
/// The write is prepared once, as an application's statement cache does. (With
/// `execute(&str)` tokio-postgres prepares a statement per call and closes it in the
/// background when it is dropped: a Close it does not wait for, so the 57P01 that drain
/// sends at the session's next idle point can land as the answer to that Close, which
/// tokio-postgres discards, and the client only sees the connection closed. A direct
/// connection to a PostgreSQL shutting down shows the same.)
async fn busy_session(conn: LoadConn, base: i64) -> Ended {
    let mut committed = Vec::new();
    let mut failure = None;
    let sql = "INSERT INTO drained (id, note) VALUES ($1, 'busy')";
    let insert = match guarded(sql, conn.client.prepare(sql)).await {
        Ok(statement) => statement,
        Err(f) => panic!("prepare before SIGTERM: {f:?}"),
    };
    for n in 0.. {
        let id = base + n;
        let result = if n % 2 == 0 {
            guarded(sql, conn.client.execute(&insert, &[&id]))
                .await
                .map(|_| committed.push(id))
        } else {
            let sql = "SELECT count(*) FROM drained";
            guarded(sql, conn.client.simple_query(sql))
                .await
                .map(|_| ())
        };
        if let Err(f) = result {
            failure = Some(f);
            break;
        }
    }
    Ended {
        role: "busy",
        failure,
        connection: conn.ending(HANG_GUARD).await,
        in_transaction: false,
        committed,
        uncommitted: Vec::new(),
    }
}

/// BEGIN, INSERT, a pause, UPDATE, COMMIT; `opened` tells whether BEGIN succeeded.
async fn one_transaction(c: &Client, id: i64, opened: &mut bool) -> Result<(), Failure> {
    guarded("BEGIN", c.batch_execute("BEGIN")).await?;
    *opened = true;
    let insert = format!("INSERT INTO drained (id, note) VALUES ({id}, 'tx')");
    guarded(&insert, c.batch_execute(&insert)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let update = "UPDATE drained SET v = v + 1 WHERE id = $1";
    guarded(update, c.execute(update, &[&id])).await?;
    guarded("COMMIT", c.batch_execute("COMMIT")).await
}

/// Short transactions until the proxy ends the session; one open at SIGTERM must be
/// allowed to finish.
async fn transaction_session(conn: LoadConn, base: i64) -> Ended {
    let mut committed = Vec::new();
    let mut ended = None;
    for n in 0.. {
        let id = base + n;
        let mut opened = false;
        let result = one_transaction(&conn.client, id, &mut opened).await;
        match result {
            Ok(()) => committed.push(id),
            Err(f) => {
                ended = Some((f, opened, id));
                break;
            }
        }
    }
    let (failure, in_transaction, last) = ended.expect("the loop ends with an error");
    Ended {
        role: "transaction",
        failure: Some(failure),
        connection: conn.ending(HANG_GUARD).await,
        in_transaction,
        committed,
        uncommitted: if in_transaction {
            vec![last]
        } else {
            Vec::new()
        },
    }
}

/// How the connection of a session that waits for the proxy to end it ended: it must
/// stay open until SIGTERM, and end within `shutdown_timeout` (plus a guard) after it.
async fn ended_after_sigterm(
    conn: LoadConn,
    signalled: CancellationToken,
) -> Result<Option<Failure>, ()> {
    signalled.cancelled().await;
    conn.ending(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS) + HANG_GUARD)
        .await
}

/// BEGIN and an INSERT, then nothing: closed when `shutdown_timeout` runs out.
async fn stuck_session(conn: LoadConn, id: i64, signalled: CancellationToken) -> Ended {
    let c = &conn.client;
    let insert = format!("INSERT INTO drained (id, note) VALUES ({id}, 'stuck')");
    let begun = async {
        guarded("BEGIN", c.batch_execute("BEGIN")).await?;
        guarded(&insert, c.batch_execute(&insert)).await
    }
    .await;
    let failure = begun.err();
    Ended {
        role: "stuck",
        failure,
        connection: ended_after_sigterm(conn, signalled).await,
        in_transaction: true,
        committed: Vec::new(),
        uncommitted: vec![id],
    }
}

/// Connected and idle until the proxy ends the session.
async fn idle_session(conn: LoadConn, signalled: CancellationToken) -> Ended {
    let failure = guarded("SELECT 1", conn.client.simple_query("SELECT 1"))
        .await
        .err();
    Ended {
        role: "idle",
        failure,
        connection: ended_after_sigterm(conn, signalled).await,
        in_transaction: false,
        committed: Vec::new(),
        uncommitted: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_tells_every_session_and_exits_in_time() {
    let _turn = HEAVY.lock().await;
    let run_for = (load_duration() / 3).max(Duration::from_secs(2));
    let db = create_db("load_term").await;
    let admin = connect_super(direct(), &db).await;
    admin
        .batch_execute(
            "CREATE TABLE drained (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, note text,
                                   deleted_at timestamptz)",
        )
        .await
        .expect("schema");
    let (mut child, ep) = serve_binary().await;
    let url = ep.url(superuser(), Some(SUPERUSER_PASSWORD), &db);
    let open = || {
        let url = url.clone();
        async move {
            LoadConn::open(&url, OP_GUARD)
                .await
                .unwrap_or_else(|f| panic!("connect to pgbelay serve: {f:?}"))
        }
    };
    let signalled = CancellationToken::new();
    let mut sessions = Vec::new();
    for i in 0..10i64 {
        sessions.push(tokio::spawn(busy_session(
            open().await,
            (i + 1) * 1_000_000,
        )));
        sessions.push(tokio::spawn(transaction_session(
            open().await,
            (i + 11) * 1_000_000,
        )));
        sessions.push(tokio::spawn(idle_session(open().await, signalled.clone())));
    }
    for i in 0..3i64 {
        sessions.push(tokio::spawn(stuck_session(
            open().await,
            99_000_000 + i,
            signalled.clone(),
        )));
    }
    tokio::time::sleep(run_for).await;

    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    signalled.cancel();
    let signalled_at = Instant::now();
    // The listener closes at once, while the stuck sessions still keep the process up.
    let refused = eventually(|| async {
        tokio::net::TcpStream::connect(ep.addr())
            .await
            .err()
            .map(|_| ())
    })
    .await;
    let still_running = child.try_wait().expect("try_wait").is_none();
    let exit = tokio::time::timeout(
        Duration::from_secs(SHUTDOWN_TIMEOUT_SECS) + EXIT_MARGIN,
        child.wait(),
    )
    .await;
    let exited_after = signalled_at.elapsed();
    let mut ended = Vec::new();
    for session in sessions {
        ended.push(session.await.expect("session task"));
    }

    let not_told: Vec<&Ended> = ended.iter().filter(|e| !e.told()).collect();
    let cut_off: Vec<&Ended> = ended
        .iter()
        .filter(|e| e.role == "transaction" && e.in_transaction)
        .collect();
    let committed: Vec<i64> = ended.iter().flat_map(|e| e.committed.clone()).collect();
    let uncommitted: Vec<i64> = ended.iter().flat_map(|e| e.uncommitted.clone()).collect();
    let found = admin
        .query_one(
            "SELECT (SELECT count(*) FROM drained WHERE id = ANY($1)),
                    (SELECT count(*) FROM drained WHERE id = ANY($2))",
            &[&committed, &uncommitted],
        )
        .await
        .expect("rows");
    let (present, leaked): (i64, i64) = (found.get(0), found.get(1));
    let (changes, audit) = audit_problems(&admin, "drained").await;
    let replay = replay_problems(&admin, "drained", "id, v, note, deleted_at").await;
    println!(
        "load sigterm: {} sessions ({} writes committed) under load for {:.1} s; exited {:.1} s after SIGTERM (shutdown_timeout {SHUTDOWN_TIMEOUT_SECS} s); {} sessions told 57P01; {changes} change rows",
        ended.len(),
        committed.len(),
        run_for.as_secs_f64(),
        exited_after.as_secs_f64(),
        ended.len() - not_told.len(),
    );

    let status = exit
        .unwrap_or_else(|_| panic!("pgbelay serve still running {exited_after:?} after SIGTERM"))
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        refused.is_some(),
        "still accepting connections after SIGTERM"
    );
    assert!(
        still_running,
        "the checks above ran after the process had exited"
    );
    assert!(
        not_told.is_empty(),
        "sessions that got neither their result nor 57P01: {not_told:#?}"
    );
    assert!(
        cut_off.is_empty(),
        "transactions open at SIGTERM were cut off before shutdown_timeout: {cut_off:#?}"
    );
    assert!(
        ended.iter().any(|e| e.role == "stuck"),
        "stuck sessions were part of the run"
    );
    assert_eq!(present, committed.len() as i64, "committed writes present");
    assert_eq!(leaked, 0, "writes of transactions that never committed");
    assert!(audit.is_empty(), "audit trail: {audit:#?}");
    assert!(replay.is_empty(), "table vs images: {replay:#?}");
}

// --- Found under load: preparing a table for recording inside the writer's transaction --

/// A table nobody prepared for recording yet (created after `pgbelay init`, without the
/// event trigger a superuser's install adds) is
/// prepared (shadow table, capture triggers: `CREATE TRIGGER` takes SHARE ROW EXCLUSIVE on
/// the table) by its first recorded write. A driver that prepares its statements
/// (tokio-postgres, pgjdbc, `pgbench -M prepared`) sends the write's Parse inside its
/// transaction, before the Bind the proxy wraps, and the Parse takes ROW EXCLUSIVE: two
/// such transactions used to deadlock (40P01), each holding the table and waiting for the
/// other's preparation. The proxy now prepares the table ahead of the Parse, so they queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_writes_to_a_new_table_do_not_deadlock() {
    const WRITERS: usize = 8;
    let _turn = HEAVY.lock().await;
    let db = create_db("load_first").await;
    let admin = connect_super(direct(), &db).await;
    // The database has the audit schema from template1, event trigger included; without
    // it, the first write prepares the table.
    admin
        .batch_execute(
            "ALTER EVENT TRIGGER pgbelay_prepare_tables DISABLE; \
             CREATE TABLE fresh (id int PRIMARY KEY, deleted_at timestamptz)",
        )
        .await
        .expect("schema");
    let prepared = "SELECT count(*) FROM pgbelay.shadow_tables WHERE relid = 'fresh'::regclass";
    assert_eq!(count(&admin, prepared).await, 0, "not prepared yet");
    let proxy = TestProxy::start().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut writers = Vec::new();
    for id in 0..WRITERS as i32 {
        let client = connect_super(proxy.endpoint(), &db).await;
        let barrier = barrier.clone();
        writers.push(tokio::spawn(async move {
            guarded("BEGIN", client.batch_execute("BEGIN")).await?;
            // Everyone is in a transaction before anyone parses the write.
            barrier.wait().await;
            let sql = "INSERT INTO fresh (id) VALUES ($1)";
            let insert = guarded(sql, client.prepare(sql)).await?;
            guarded(sql, client.execute(&insert, &[&id])).await?;
            guarded("COMMIT", client.batch_execute("COMMIT")).await
        }));
    }
    let mut failures = Vec::new();
    for writer in writers {
        if let Err(failure) = writer.await.expect("writer task") {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let (changes, audit) = audit_problems(&admin, "fresh").await;
    assert!(audit.is_empty(), "{audit:#?}");
    assert_eq!(changes, WRITERS as i64);
}

/// A table created after `pgbelay init` (run as a superuser) is prepared by the audit
/// schema's event trigger as it is created, so a first write inside a transaction left
/// open (a DBA thinking before COMMIT) takes no table lock beyond the write's own: the
/// application's writes, direct or through the proxy, carry on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_write_in_an_open_transaction_does_not_block_other_writers() {
    let _turn = HEAVY.lock().await;
    let db = create_db("load_block").await;
    let admin = connect_super(direct(), &db).await;
    // The audit schema comes from template1, installed by a superuser as `pgbelay init`
    // would be: with the event trigger.
    admin
        .batch_execute("CREATE TABLE fresh (id int PRIMARY KEY, deleted_at timestamptz)")
        .await
        .expect("schema");
    let proxy = TestProxy::start().await;
    let dba = connect_super(proxy.endpoint(), &db).await;
    dba.batch_execute("BEGIN").await.expect("BEGIN");
    dba.batch_execute("INSERT INTO fresh (id) VALUES (1)")
        .await
        .expect("first write");
    // Meanwhile the application writes directly, and another session through the proxy.
    let app = tokio::time::timeout(
        HANG_GUARD,
        admin.batch_execute("INSERT INTO fresh (id) VALUES (2)"),
    )
    .await;
    let other = connect_super(proxy.endpoint(), &db).await;
    let through_proxy = tokio::time::timeout(
        HANG_GUARD,
        other.batch_execute("INSERT INTO fresh (id) VALUES (3)"),
    )
    .await;
    dba.batch_execute("COMMIT").await.expect("COMMIT");
    assert!(
        matches!(app, Ok(Ok(()))),
        "a direct write waited for the open transaction: {app:?}"
    );
    assert!(
        matches!(through_proxy, Ok(Ok(()))),
        "a write through the proxy waited for the open transaction: {through_proxy:?}"
    );
    let (changes, audit) = audit_problems(&admin, "fresh").await;
    assert!(audit.is_empty(), "{audit:#?}");
    assert_eq!(changes, 2, "the two writes through the proxy");
}
