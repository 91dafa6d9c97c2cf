//! Real drivers through the guarded proxy (SPEC §C: "drivers work through it"): psycopg 3,
//! asyncpg, node-postgres and pgjdbc each run a small program from `tests/drivers/` as a
//! child process, connecting to the proxy as `scram_user` (SCRAM-SHA-256). A program prints
//! one JSON object per step (its values, row counts, SQLSTATE and message); the test
//! asserts on those and on the database read directly: the rows changed, the soft-deleted
//! rows still there, and `pgbelay.changes` with the before- and after-images of every
//! write. The typed reads are also run directly against PostgreSQL and must match.
//!
//! The drivers are installed by `scripts/setup`; a missing one fails its test with a
//! message saying so (never a skip). Each test has its own database laid out by
//! `tests/drivers/schema.sql`; each step of a program works on its own rows of `items`.
//!
//! pgjdbc's `statement_batch` (two different writes in one batch) is refused unless pgjdbc
//! sends them as separate queries (`preferQueryMode=extendedForPrepared`), which the test
//! runs; the plain form reproduces the open problem when run by name.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio_postgres::Client;

/// A driver program may take this long (a JVM start included); only a guard against hangs.
const PROGRAM_GUARD: Duration = Duration::from_secs(120);

/// What every failure to find a driver says.
const SETUP_HINT: &str = "run scripts/setup: it installs the driver tests' tools \
     (psycopg 3 and asyncpg with pip, node-postgres with `npm ci` in tests/drivers, \
     pgjdbc as Debian's libpostgresql-jdbc-java and a JDK with apt)";

/// Where Debian's libpostgresql-jdbc-java puts the driver.
const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// The tables the programs work on.
const SCHEMA: &str = include_str!("drivers/schema.sql");

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

/// A driver program: how to start it.
struct Program {
    /// The driver's name, for messages.
    driver: &'static str,
    /// The `application_name` it connects with.
    application_name: &'static str,
    /// Command line without the steps.
    argv: Vec<String>,
    /// Extra environment for every run.
    env: Vec<(String, String)>,
    /// pgjdbc's compiled classes, removed when the test ends.
    _classes: Option<tempfile::TempDir>,
}

impl Program {
    fn python(driver: &'static str, file: &str, application_name: &'static str) -> Program {
        Program {
            driver,
            application_name,
            argv: vec![
                "python3".into(),
                drivers_dir().join(file).display().to_string(),
            ],
            env: vec![("PYTHONIOENCODING".into(), "utf-8".into())],
            _classes: None,
        }
    }

    fn psycopg() -> Program {
        Self::python("psycopg 3", "psycopg_check.py", "psycopg_check")
    }

    fn asyncpg() -> Program {
        Self::python("asyncpg", "asyncpg_check.py", "asyncpg_check")
    }

    fn node_pg() -> Program {
        Program {
            driver: "node-postgres",
            application_name: "node_pg_check",
            argv: vec![
                "node".into(),
                drivers_dir().join("node_pg_check.js").display().to_string(),
            ],
            env: Vec::new(),
            _classes: None,
        }
    }

    /// Compiles `PgjdbcCheck.java` against Debian's pgjdbc into a temporary directory.
    async fn pgjdbc() -> Program {
        assert!(
            Path::new(PGJDBC_JAR).is_file(),
            "pgjdbc is not installed ({PGJDBC_JAR} is missing); {SETUP_HINT}"
        );
        let classes = tempfile::tempdir().expect("temp dir for the compiled classes");
        let source = drivers_dir().join("PgjdbcCheck.java");
        let mut javac = tokio::process::Command::new("javac");
        javac
            .args(["-encoding", "UTF-8", "-cp", PGJDBC_JAR, "-d"])
            .arg(classes.path())
            .arg(&source)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(PROGRAM_GUARD, javac.output()).await {
            Err(_) => panic!("javac {} hung", source.display()),
            Ok(Err(e)) => panic!("cannot run javac ({e}); {SETUP_HINT}"),
            Ok(Ok(out)) => out,
        };
        assert!(
            out.status.success(),
            "javac {} failed:\n{}{}",
            source.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let class_path = format!("{}:{PGJDBC_JAR}", classes.path().display());
        Program {
            driver: "pgjdbc",
            application_name: "pgjdbc_check",
            argv: vec![
                "java".into(),
                "-cp".into(),
                class_path,
                "PgjdbcCheck".into(),
            ],
            env: Vec::new(),
            _classes: Some(classes),
        }
    }

    /// Runs `steps` (after the program's own connect step) against `ep`, database `db`, as
    /// `scram_user`, with `env` added.
    async fn run_with(&self, ep: Endpoint, db: &str, steps: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .args(steps)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", ep.port.to_string())
            .env("PGDATABASE", db)
            .env("PGUSER", SCRAM_USER)
            .env("PGPASSWORD", SCRAM_PASSWORD)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(PROGRAM_GUARD, cmd.output()).await {
            Err(_) => panic!(
                "{} against {}: {:?} did not finish within {PROGRAM_GUARD:?}",
                self.driver, ep.label, self.argv
            ),
            Ok(Err(e)) => panic!(
                "{}: cannot run `{}` ({e}); {SETUP_HINT}",
                self.driver, self.argv[0]
            ),
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() == Some(3) {
            panic!("{} is not installed: {stderr}{SETUP_HINT}", self.driver);
        }
        assert!(
            output.status.success(),
            "{} program failed ({}) against {}:\n{stdout}\n{stderr}",
            self.driver,
            output.status,
            ep.label
        );
        let mut records = HashMap::new();
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "{}: not a JSON step record ({e}): {line}\n{stderr}",
                    self.driver
                )
            });
            let step = record["step"].as_str().expect("step name").to_string();
            assert!(
                records.insert(step.clone(), record).is_none(),
                "{}: step {step} reported twice:\n{stdout}",
                self.driver
            );
        }
        let run = Run {
            driver: self.driver,
            label: ep.label,
            records,
            stdout,
            stderr,
        };
        for step in std::iter::once(&"connect").chain(steps) {
            run.record(step);
        }
        run
    }

    async fn run(&self, ep: Endpoint, db: &str, steps: &[&str]) -> Run {
        self.run_with(ep, db, steps, &[]).await
    }
}

/// What one run of a program reported, by step.
struct Run {
    driver: &'static str,
    label: &'static str,
    records: HashMap<String, Value>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn record(&self, step: &str) -> &Value {
        self.records.get(step).unwrap_or_else(|| {
            panic!(
                "{} ({}): no record of step {step}:\n{}\n{}",
                self.driver, self.label, self.stdout, self.stderr
            )
        })
    }

    /// The record of a step that succeeded.
    fn ok(&self, step: &str) -> &Value {
        let record = self.record(step);
        assert_eq!(
            record["ok"],
            json!(true),
            "{} ({}): step {step} failed: {record}",
            self.driver,
            self.label
        );
        record
    }

    /// Field `field` of a step that succeeded.
    fn value(&self, step: &str, field: &str) -> &Value {
        &self.ok(step)[field]
    }

    /// Asserts that `step` failed with `sqlstate`; returns the message.
    fn error(&self, step: &str, sqlstate: &str) -> String {
        let record = self.record(step);
        assert_eq!(
            (&record["ok"], &record["sqlstate"]),
            (&json!(false), &json!(sqlstate)),
            "{} ({}): step {step} should fail with {sqlstate}: {record}",
            self.driver,
            self.label
        );
        record["message"].as_str().unwrap_or_default().to_string()
    }
}

/// A database laid out by `schema.sql`, its tables granted to `scram_user`; its name and a
/// direct superuser client.
async fn driver_db(prefix: &str) -> (String, Client) {
    let db = create_db(prefix).await;
    let admin = connect_super(direct(), &db).await;
    admin.batch_execute(SCHEMA).await.expect("schema.sql");
    admin
        .batch_execute(&format!("GRANT ALL ON items, typed, keep TO {SCRAM_USER}"))
        .await
        .expect("grants");
    (db, admin)
}

/// The row of `typed` as every program renders it.
fn typed_row() -> Value {
    json!({
        "i8": "9007199254740993",
        "num": "-12345.678",
        "txt": "\u{e9} \u{2713} \"quoted\" \\ tab\t",
        "ts": "2024-02-29T07:34:56.789Z",
        "doc": {"a": [1, 2.5, {"b": null}], "z": "\u{e9}"},
        "bin": "00ff10",
        "arr": [7, null, -1, 2147483647],
        "uid": "01020304-0506-0708-090a-0b0c0d0e0f10",
    })
}

/// The steps every program has, in the order they run.
const COMMON_STEPS: &[&str] = &[
    "types_stored",
    "types_params",
    "div_zero",
    "after_error",
    "update",
    "soft_delete",
    "drop",
    "after_refusal",
    "tx_commit",
    "tx_rollback",
    "prepared",
];

/// The typed reads, which run directly too.
const TYPED_STEPS: &[&str] = &["types_stored", "types_params"];

/// `items` row `id`: its qty and whether it is soft-deleted; `None` when it is gone.
async fn item(admin: &Client, id: i32) -> Option<(i32, bool)> {
    admin
        .query_opt(
            "SELECT qty, deleted_at IS NOT NULL FROM items WHERE id = $1",
            &[&id],
        )
        .await
        .expect("items")
        .map(|r| (r.get(0), r.get(1)))
}

/// Everything recorded about `items` row `id`, one line per image, oldest change first:
/// `kind rows statement: image qty=N [deleted]`.
async fn history(admin: &Client, id: i32) -> Vec<String> {
    let rows = admin
        .query(
            r#"SELECT c.kind, c.rows, c.statement, s.pgbelay_image, s.qty,
                      s.deleted_at IS NOT NULL
                 FROM pgbelay.changes c
                 JOIN pgbelay."public.items" s ON s.pgbelay_change_id = c.id
                WHERE s.id = $1
                ORDER BY c.id, s.pgbelay_image DESC"#,
            &[&id],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the images of items {id}: {}", show(&e)));
    rows.iter()
        .map(|r| {
            let deleted: bool = r.get(5);
            format!(
                "{} {} {}: {} qty={}{}",
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, i32>(4),
                if deleted { " deleted" } else { "" }
            )
        })
        .collect()
}

/// The history lines of one UPDATE of one row from `before` to `after`.
fn updated(statement: &str, before: i32, after: i32) -> Vec<String> {
    vec![
        format!("update 1 {statement}: before qty={before}"),
        format!("update 1 {statement}: after qty={after}"),
    ]
}

/// The history lines of `n` runs of `statement`, each adding `step` to qty from `from`.
fn bumped(statement: &str, from: i32, step: i32, n: i32) -> Vec<String> {
    (0..n)
        .flat_map(|i| updated(statement, from + i * step, from + (i + 1) * step))
        .collect()
}

async fn change_count(admin: &Client) -> i64 {
    count(admin, "SELECT count(*) FROM pgbelay.changes").await
}

/// The transaction ids of the changes recorded for `items` rows `ids`, in change order.
async fn txids(admin: &Client, ids: &[i32]) -> Vec<i64> {
    admin
        .query(
            r#"SELECT DISTINCT c.id, c.txid FROM pgbelay.changes c
                 JOIN pgbelay."public.items" s ON s.pgbelay_change_id = c.id
                WHERE s.id = ANY($1) ORDER BY c.id"#,
            &[&ids],
        )
        .await
        .expect("txids")
        .iter()
        .map(|r| r.get(1))
        .collect()
}

/// Asserts what every program's common steps reported (`run`, through the proxy) and left
/// in the database; `direct` is the typed reads run directly.
async fn check_common(run: &Run, direct: &Run, admin: &Client, program: &Program) {
    // Connected as scram_user: the cluster authenticates it with SCRAM-SHA-256 over TCP.
    assert_eq!(run.value("connect", "user"), &json!(SCRAM_USER));

    // Typed reads, parameters of every type: what PostgreSQL returns directly.
    for step in TYPED_STEPS {
        assert_eq!(run.value(step, "rows"), &json!([typed_row()]), "{step}");
        assert_eq!(run.ok(step), direct.ok(step), "{step}: proxy vs direct");
    }

    // A server error, and the session goes on.
    assert_eq!(run.error("div_zero", "22012"), "division by zero");
    assert_eq!(run.value("after_error", "rows"), &json!([[1]]));

    // An UPDATE with parameters: recorded with its images.
    assert_eq!(run.value("update", "rowcount"), &json!(1));
    assert_eq!(item(admin, 2).await, Some((25, false)));
    assert_eq!(
        history(admin, 2).await,
        updated("UPDATE items SET qty = qty + $1 WHERE id = $2", 20, 25)
    );

    // A DELETE is a soft delete: the driver sees DELETE 2, the rows stay, marked.
    assert_eq!(run.value("soft_delete", "rowcount"), &json!(2));
    let delete = "DELETE FROM items WHERE id BETWEEN $1 AND $2";
    for (id, qty) in [(3, 30), (4, 40)] {
        assert_eq!(item(admin, id).await, Some((qty, true)), "items {id}");
        assert_eq!(
            history(admin, id).await,
            [
                format!("delete 2 {delete}: before qty={qty}"),
                format!("delete 2 {delete}: after qty={qty} deleted"),
            ],
            "items {id}"
        );
    }

    // DROP TABLE is refused by pgbelay, and the table is still there.
    let message = run.error("drop", "42501");
    assert!(message.starts_with("pgbelay:"), "{message}");
    assert_eq!(run.value("after_refusal", "rows"), &json!([[1]]));
    assert_eq!(count(admin, "SELECT count(*) FROM keep").await, 1);

    // A committed transaction with a read and two writes: both recorded, in it.
    assert_eq!(run.value("tx_commit", "read"), &json!(50));
    assert_eq!(run.value("tx_commit", "rowcounts"), &json!([1, 1]));
    assert_eq!(item(admin, 5).await, Some((51, false)));
    assert_eq!(item(admin, 21).await, Some((50, false)));
    assert_eq!(
        history(admin, 5).await,
        updated("UPDATE items SET qty = $1 WHERE id = $2", 50, 51)
    );
    assert_eq!(
        history(admin, 21).await,
        ["insert 1 INSERT INTO items (id, name, qty) VALUES ($1, $2, $3): after qty=50"]
    );
    let tx = txids(admin, &[5, 21]).await;
    assert!(tx.len() == 2 && tx[0] == tx[1], "one transaction: {tx:?}");

    // A rolled-back transaction: nothing changed, nothing recorded.
    assert_eq!(run.value("tx_rollback", "read"), &json!(60));
    assert_eq!(run.value("tx_rollback", "rowcounts"), &json!([1]));
    assert_eq!(item(admin, 6).await, Some((60, false)));
    assert_eq!(history(admin, 6).await, Vec::<String>::new());

    // The same UPDATE and SELECT ten times, the driver's server-side prepared statements
    // among them: every execution recorded.
    assert_eq!(run.value("prepared", "rowcounts"), &json!(vec![1; 10]));
    assert_eq!(
        run.value("prepared", "reads"),
        &json!((71..=80).collect::<Vec<_>>())
    );
    let server_prepared = run.value("prepared", "server_prepared");
    for statement in [
        "UPDATE items SET qty = qty + 1 WHERE id = $1",
        "SELECT qty FROM items WHERE id = $1",
    ] {
        assert!(
            server_prepared
                .as_array()
                .is_some_and(|names| names.contains(&json!(statement))),
            "{}: no server-side prepared statement for {statement}: {server_prepared}",
            run.driver
        );
    }
    assert_eq!(item(admin, 7).await, Some((80, false)));
    assert_eq!(
        history(admin, 7).await,
        bumped("UPDATE items SET qty = qty + 1 WHERE id = $1", 70, 1, 10)
    );

    // Who: the role and the driver's application_name, relayed at startup.
    let who: Vec<(String, Option<String>)> = query_pairs(
        admin,
        r#"SELECT DISTINCT "session_user", application_name FROM pgbelay.changes"#,
        &[],
    )
    .await;
    assert_eq!(
        who,
        [(
            SCRAM_USER.to_string(),
            Some(program.application_name.to_string())
        )]
    );
}

/// How many changes the common steps record: update, soft delete, the committed
/// transaction's two writes, ten prepared updates.
const COMMON_CHANGES: i64 = 1 + 1 + 2 + 10;

#[tokio::test]
async fn psycopg_works_through_the_proxy_and_its_writes_are_recorded() {
    let program = Program::psycopg();
    let proxy = TestProxy::start().await;
    let (db, admin) = driver_db("drv_psycopg").await;
    let extra = [
        "executemany",
        "pipeline_reads",
        "pipeline_synced",
        "pipeline_unsynced",
        "pipeline_in_transaction",
        "after_pipeline",
    ];
    let steps: Vec<&str> = COMMON_STEPS.iter().chain(&extra).copied().collect();
    let run = program.run(proxy.endpoint(), &db, &steps).await;
    let direct = program.run(direct(), &db, TYPED_STEPS).await;
    check_common(&run, &direct, &admin, &program).await;

    // executemany() (pipelined by psycopg, one Sync): each execution recorded.
    assert_eq!(run.value("executemany", "rowcount"), &json!(2));
    let many = "UPDATE items SET qty = qty + $1 WHERE id = $2";
    assert_eq!(history(&admin, 16).await, updated(many, 160, 161));
    assert_eq!(history(&admin, 17).await, updated(many, 170, 172));

    // Pipeline mode: reads, and writes each followed by a Sync, work and are recorded.
    assert_eq!(run.value("pipeline_reads", "reads"), &json!([120, 130]));
    assert_eq!(run.value("pipeline_synced", "rowcounts"), &json!([1, 1]));
    assert_eq!(run.value("pipeline_synced", "reads"), &json!([101]));
    assert_eq!(
        history(&admin, 10).await,
        updated("UPDATE items SET qty = qty + $1 WHERE id = $2", 100, 101)
    );
    assert_eq!(item(&admin, 11).await, Some((110, true)));
    assert_eq!(
        history(&admin, 11).await,
        [
            "delete 1 DELETE FROM items WHERE id = $1: before qty=110",
            "delete 1 DELETE FROM items WHERE id = $1: after qty=110 deleted",
        ]
    );
    // A pipeline of a write and more statements behind it without a Sync between them is,
    // in autocommit, one implicit transaction that pgbelay cannot split to put its own
    // statements between them: refused as a whole. Nothing of it runs, and the connection
    // goes on.
    let message = run.error("pipeline_unsynced", "42501");
    assert!(message.starts_with("pgbelay:"), "{message}");
    assert_eq!(run.value("after_pipeline", "rows"), &json!([[140], [150]]));
    for id in [14, 15] {
        assert_eq!(
            history(&admin, id).await,
            Vec::<String>::new(),
            "items {id}"
        );
    }
    assert_eq!(item(&admin, 15).await, Some((150, false)));

    // The same pipeline on a connection in psycopg's default mode (a transaction): each
    // statement that needs wrapping gets a batch of its own, and both writes are recorded.
    assert_eq!(
        run.value("pipeline_in_transaction", "rowcounts"),
        &json!([1, 1])
    );
    assert_eq!(run.value("pipeline_in_transaction", "reads"), &json!([181]));
    assert_eq!(
        history(&admin, 18).await,
        updated("UPDATE items SET qty = qty + $1 WHERE id = $2", 180, 181)
    );
    assert_eq!(item(&admin, 19).await, Some((190, true)));
    let tx = txids(&admin, &[18, 19]).await;
    assert!(tx.len() == 2 && tx[0] == tx[1], "{tx:?}");

    assert_eq!(change_count(&admin).await, COMMON_CHANGES + 2 + 2 + 2);
}

#[tokio::test]
async fn asyncpg_works_through_the_proxy_and_its_writes_are_recorded() {
    let program = Program::asyncpg();
    let proxy = TestProxy::start().await;
    let (db, admin) = driver_db("drv_asyncpg").await;
    let extra = [
        "prepared_explicit",
        "executemany",
        "copy_in",
        "copy_records",
        "prepare_write_then_read",
        "prepare_read_then_write",
    ];
    let steps: Vec<&str> = COMMON_STEPS.iter().chain(&extra).copied().collect();
    let run = program.run(proxy.endpoint(), &db, &steps).await;
    let direct = program.run(direct(), &db, TYPED_STEPS).await;
    check_common(&run, &direct, &admin, &program).await;

    // The command tags asyncpg returns.
    assert_eq!(run.value("update", "status"), &json!("UPDATE 1"));
    assert_eq!(run.value("soft_delete", "status"), &json!("DELETE 2"));

    // Connection.prepare() of an UPDATE, run ten times.
    assert_eq!(
        run.value("prepared_explicit", "rowcounts"),
        &json!(vec![1; 10])
    );
    assert_eq!(run.value("prepared_explicit", "reads"), &json!([110]));
    assert_eq!(
        history(&admin, 9).await,
        bumped("UPDATE items SET qty = qty + 2 WHERE id = $1", 90, 2, 10)
    );

    // executemany(): three executions of one statement in one batch, each recorded, in
    // one transaction as PostgreSQL runs them.
    let many = "UPDATE items SET qty = qty + $1 WHERE id = $2";
    for (id, add) in [(12, 1), (13, 2), (14, 3)] {
        assert_eq!(
            history(&admin, id).await,
            updated(many, id * 10, id * 10 + add),
            "items {id}"
        );
    }
    let tx = txids(&admin, &[12, 13, 14]).await;
    assert!(tx.len() == 3 && tx.iter().all(|t| *t == tx[0]), "{tx:?}");

    // COPY FROM STDIN (copy_to_table): the row inserted, recorded as an insert.
    assert_eq!(run.value("copy_in", "status"), &json!("COPY 1"));
    assert_eq!(item(&admin, 22).await, Some((220, false)));
    let copied = history(&admin, 22).await;
    assert!(
        copied.len() == 1
            && copied[0].starts_with("insert 1 COPY \"items\"")
            && copied[0].ends_with(": after qty=220"),
        "{copied:?}"
    );

    // copy_records_to_table() describes the table with Parse/Describe/Flush and then sends
    // the COPY as a simple Query, with no Sync between: the relay ends the batch first.
    assert_eq!(run.value("copy_records", "status"), &json!("COPY 1"));
    assert_eq!(item(&admin, 23).await, Some((230, false)));
    let copied = history(&admin, 23).await;
    assert!(
        copied.len() == 1 && copied[0].ends_with(": after qty=230"),
        "{copied:?}"
    );
    // Connection.prepare() leaves its batch open (Flush): the next statement prepared or
    // run behind it starts a batch of its own, and the writes are recorded.
    assert_eq!(run.value("prepare_write_then_read", "reads"), &json!([161]));
    assert_eq!(
        history(&admin, 16).await,
        updated("UPDATE items SET qty = qty + 1 WHERE id = $1", 160, 161)
    );
    assert_eq!(run.value("prepare_read_then_write", "rowcount"), &json!(1));
    assert_eq!(run.value("prepare_read_then_write", "reads"), &json!([173]));
    assert_eq!(
        history(&admin, 17).await,
        updated("UPDATE items SET qty = qty + 3 WHERE id = $1", 170, 173)
    );

    assert_eq!(change_count(&admin).await, COMMON_CHANGES + 10 + 3 + 1 + 3);
}

#[tokio::test]
async fn node_postgres_works_through_the_proxy_and_its_writes_are_recorded() {
    let program = Program::node_pg();
    let proxy = TestProxy::start().await;
    let (db, admin) = driver_db("drv_node").await;
    let run = program.run(proxy.endpoint(), &db, COMMON_STEPS).await;
    let direct = program.run(direct(), &db, TYPED_STEPS).await;
    check_common(&run, &direct, &admin, &program).await;
    // The command the driver saw: a DELETE, though an UPDATE ran.
    assert_eq!(run.value("soft_delete", "command"), &json!("DELETE"));
    assert_eq!(change_count(&admin).await, COMMON_CHANGES);
}

#[tokio::test]
async fn pgjdbc_works_through_the_proxy_and_its_writes_are_recorded() {
    let program = Program::pgjdbc().await;
    let proxy = TestProxy::start().await;
    let (db, admin) = driver_db("drv_pgjdbc").await;
    // Autocommit on for the common steps' own connection; tx_commit, tx_rollback,
    // prepared_tx and batch_tx use a second one with setAutoCommit(false).
    let extra = [
        "prepared_tx",
        "batch",
        "batch_tx",
        "tx_write_first",
        "fetch_size_then_write",
    ];
    let steps: Vec<&str> = COMMON_STEPS.iter().chain(&extra).copied().collect();
    let run = program.run(proxy.endpoint(), &db, &steps).await;
    let direct = program.run(direct(), &db, TYPED_STEPS).await;
    check_common(&run, &direct, &admin, &program).await;

    // Ten executions in a transaction (named statements from the fifth on), committed.
    assert_eq!(run.value("prepared_tx", "rowcounts"), &json!(vec![1; 10]));
    assert_eq!(
        run.value("prepared_tx", "reads"),
        &json!((91..=100).collect::<Vec<_>>())
    );
    assert_eq!(
        history(&admin, 9).await,
        bumped("UPDATE items SET qty = qty + 1 WHERE id = $1", 90, 1, 10)
    );
    let tx = txids(&admin, &[9]).await;
    assert!(tx.len() == 10 && tx.iter().all(|t| *t == tx[0]), "{tx:?}");

    // executeBatch() of a PreparedStatement, in autocommit and in a transaction.
    assert_eq!(run.value("batch", "rowcounts"), &json!([1, 1, 1]));
    assert_eq!(run.value("batch_tx", "rowcounts"), &json!([1, 1, 1]));
    let batch = "UPDATE items SET qty = qty + $1 WHERE id = $2";
    for (id, add) in [(12, 1), (13, 2), (14, 3), (15, 1), (16, 2), (17, 3)] {
        assert_eq!(
            history(&admin, id).await,
            updated(batch, id * 10, id * 10 + add),
            "items {id}"
        );
    }

    // Autocommit off, the transaction's first statement a write: pgjdbc sends BEGIN in the
    // write's batch; the relay ends the batch after the BEGIN and the write is recorded.
    assert_eq!(run.value("tx_write_first", "read"), &json!(1000));
    assert_eq!(run.value("tx_write_first", "rowcounts"), &json!([1]));
    assert_eq!(
        history(&admin, 8).await,
        updated("UPDATE items SET qty = $1 WHERE id = $2", 80, 1000)
    );
    // A read with a fetch size in a transaction, then an INSERT: pgjdbc sends the Close of
    // the read's portal in front of the INSERT, in one batch.
    assert_eq!(run.value("fetch_size_then_write", "read"), &json!(14));
    assert_eq!(run.value("fetch_size_then_write", "rowcounts"), &json!([1]));
    assert_eq!(item(&admin, 22).await, Some((220, false)));
    let inserted = history(&admin, 22).await;
    assert!(
        inserted.len() == 1 && inserted[0].ends_with(": after qty=220"),
        "{inserted:?}"
    );

    // A Statement batch of two different writes is refused in one batch (the second runs
    // after the first in one implicit transaction, where nothing can be put in front of
    // it); with preferQueryMode=extendedForPrepared pgjdbc sends them as separate queries.
    let workaround = program
        .run_with(
            proxy.endpoint(),
            &db,
            &["statement_batch"],
            &[("PGJDBC_PROPERTIES", "preferQueryMode=extendedForPrepared")],
        )
        .await;
    assert_eq!(
        workaround.value("statement_batch", "rowcounts"),
        &json!([1, 1])
    );
    for id in [18, 19] {
        assert_eq!(
            history(&admin, id).await,
            updated(
                &format!("UPDATE items SET qty = qty + 1 WHERE id = {id}"),
                id * 10,
                id * 10 + 1
            ),
            "items {id}"
        );
    }

    assert_eq!(
        change_count(&admin).await,
        COMMON_CHANGES + 10 + 6 + 1 + 1 + 2
    );
}
