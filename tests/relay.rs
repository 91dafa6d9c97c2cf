//! The proxy in pass-through mode is indistinguishable from PostgreSQL (SPEC §B1, §C):
//! every test runs the same client steps directly and through the proxy and compares.

mod common;

use common::*;
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

/// Text of every row of a simple query, `None` for NULL.
fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Command tags of a simple query.
fn simple_tags(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// Every column of every row as raw binary bytes.
fn raw_rows(rows: &[tokio_postgres::Row]) -> Vec<Vec<Option<Vec<u8>>>> {
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<RawBytes>>(i).map(|r| r.0))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn psql_describe_commands_match_direct() {
    let proxy = TestProxy::start().await;
    let db = create_db("describe").await;
    let setup = connect_super(direct(), &db).await;
    setup
        .batch_execute(
            "CREATE SCHEMA ops;
             CREATE TABLE t (
                 id bigserial PRIMARY KEY,
                 name text NOT NULL DEFAULT 'x',
                 amount numeric(10,2) CHECK (amount >= 0),
                 created timestamptz,
                 tags int4[]
             );
             CREATE INDEX t_name_idx ON t (name);
             COMMENT ON TABLE t IS 'a table with a comment';
             CREATE TABLE ops.child (id int PRIMARY KEY, t_id bigint REFERENCES t(id));
             CREATE FUNCTION add_one(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1';
             INSERT INTO t (name, amount) SELECT 'n' || g, g FROM generate_series(1, 10) g;",
        )
        .await
        .expect("setup");

    let commands = [
        r"\dt",
        r"\dt+",
        r"\d+ t",
        r"\d ops.child",
        r"\dn",
        r"\df",
        r"\di",
    ];
    for command in commands {
        let want = psql_super(direct(), &db, &["-c", command]).await;
        let got = psql_super(proxy.endpoint(), &db, &["-c", command]).await;
        assert!(want.success(), "{command} direct: {want:?}");
        assert!(!want.stdout.is_empty(), "{command} printed nothing");
        assert_eq!(got, want, "{command} through the proxy");
    }
    // \l lists every database, and other tests create some concurrently: restrict it.
    let pattern = format!(r"\l {db}");
    let want = psql_super(direct(), &db, &["-c", &pattern]).await;
    let got = psql_super(proxy.endpoint(), &db, &["-c", &pattern]).await;
    assert!(want.stdout.contains(&db), "{want:?}");
    assert_eq!(got, want);
}

#[tokio::test]
async fn binary_params_and_results_are_byte_identical() {
    let proxy = TestProxy::start().await;
    let numeric = {
        // -12345.678: ndigits 3, weight 1, sign negative, dscale 3, digits 1 2345 6780.
        let mut b = Vec::new();
        for word in [3i16, 1, 0x4000, 3, 1, 2345, 6780] {
            b.extend_from_slice(&(word as u16).to_be_bytes());
        }
        b
    };
    let jsonb = {
        let mut b = vec![1u8];
        b.extend_from_slice(r#"{"a": [1, 2.5, {"b": null}], "z": "é"}"#.as_bytes());
        b
    };
    let int4_array = {
        // ndim 1, has nulls, element int4, length 4, lower bound 1; 7, NULL, -1, 2^31-1.
        let mut b = Vec::new();
        for word in [1i32, 1, 23, 4, 1] {
            b.extend_from_slice(&word.to_be_bytes());
        }
        for value in [Some(7i32), None, Some(-1), Some(i32::MAX)] {
            match value {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    };
    let interval = {
        let mut b = 93_784_000_005i64.to_be_bytes().to_vec();
        b.extend_from_slice(&(-3i32).to_be_bytes());
        b.extend_from_slice(&14i32.to_be_bytes());
        b
    };
    let params = vec![
        RawParam(Some(9_007_199_254_740_993i64.to_be_bytes().to_vec())),
        RawParam(Some(numeric)),
        RawParam(Some(777_777_777_123_456i64.to_be_bytes().to_vec())),
        RawParam(Some(jsonb)),
        RawParam(Some(int4_array)),
        RawParam(Some((0u8..=255).collect())),
        RawParam(Some((1u8..=16).collect())),
        RawParam(Some(interval)),
        RawParam(None),
    ];
    let sql = "SELECT $1::int8, $2::numeric, $3::timestamptz, $4::jsonb, $5::int4[], \
               $6::bytea, $7::uuid, $8::interval, $9::int8";
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();

    let mut results = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let client = connect_super(ep, "postgres").await;
        let stmt = client.prepare(sql).await.expect("prepare");
        // Twice on one prepared statement, and once unnamed.
        let first = raw_rows(&client.query(&stmt, &refs).await.expect("query"));
        let second = raw_rows(&client.query(&stmt, &refs).await.expect("query again"));
        let unnamed = raw_rows(&client.query(sql, &refs).await.expect("unnamed"));
        assert_eq!(first, second);
        assert_eq!(first, unnamed);
        let types: Vec<String> = stmt
            .columns()
            .iter()
            .map(|c| c.type_().name().to_string())
            .collect();
        results.push((first, types));
    }
    let want: Vec<Option<Vec<u8>>> = params.iter().map(|p| p.0.clone()).collect();
    assert_eq!(results[0].0, vec![want.clone()], "server round trip");
    assert_eq!(results[1], results[0], "proxy differs from direct");
    assert_eq!(
        results[1].1,
        [
            "int8",
            "numeric",
            "timestamptz",
            "jsonb",
            "_int4",
            "bytea",
            "uuid",
            "interval",
            "int8"
        ]
    );
}

#[tokio::test]
async fn simple_query_text_results_match() {
    let proxy = TestProxy::start().await;
    let sql = "SELECT 9007199254740993::int8, -12345.678::numeric, \
               '2024-02-29 12:34:56.789+05'::timestamptz, '{\"a\": [1, {\"b\": null}]}'::jsonb, \
               '{7,NULL,-1}'::int4[], '\\x00ff10'::bytea, \
               '0102030405060708090a0b0c0d0e0f10'::uuid, '1 year 2 mons -3 days 04:05:06.5'::interval, \
               NULL::text, 'é ✓ \t tab'::text; \
               SELECT g FROM generate_series(1, 3) g; SET application_name = 'x'; SHOW application_name";
    let mut results = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let client = connect_super(ep, "postgres").await;
        let messages = client.simple_query(sql).await.expect("simple query");
        results.push((simple_rows(&messages), simple_tags(&messages)));
    }
    assert_eq!(results[0].0.len(), 1 + 3 + 1, "{:?}", results[0]);
    assert_eq!(results[0].0[0][8], None);
    assert_eq!(results[1], results[0]);
}

#[tokio::test]
async fn large_result_is_identical() {
    let proxy = TestProxy::start().await;
    let sql = "SELECT g, md5(g::text), g * 1.5::numeric, repeat('x', g % 97), \
               '2020-01-01 00:00:00+00'::timestamptz + g * interval '1 second', \
               CASE WHEN g % 7 = 0 THEN NULL ELSE g % 13 END \
               FROM generate_series(1, 100000) g";
    let mut binary = Vec::new();
    let mut text = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let client = connect_super(ep, "postgres").await;
        let rows = client.query(sql, &[]).await.expect("extended query");
        binary.push(raw_rows(&rows));
        let messages = client.simple_query(sql).await.expect("simple query");
        text.push(simple_rows(&messages));
    }
    assert_eq!(binary[0].len(), 100_000);
    assert_eq!(text[0].len(), 100_000);
    assert!(binary[1] == binary[0], "binary 100k rows differ");
    assert!(text[1] == text[0], "text 100k rows differ");
}

#[tokio::test]
async fn psql_copy_both_ways() {
    // COPY FROM is a recorded write: 5000 rows are over the default max_rows (1000).
    let proxy = TestProxy::with_max_rows(100_000).await;
    let db = create_db("copy").await;
    let setup = connect_super(direct(), &db).await;
    setup
        .batch_execute(
            "CREATE TABLE src (id int PRIMARY KEY, body text, data bytea, at timestamptz);
             INSERT INTO src SELECT g,
                 CASE WHEN g % 5 = 0 THEN NULL
                      ELSE 'row ' || g || E'\\ttab\\nnewline \\\\ backslash é' END,
                 decode(md5(g::text), 'hex'),
                 '2021-06-01 00:00:00+00'::timestamptz + g * interval '1 minute'
             FROM generate_series(1, 5000) g;
             CREATE TABLE dst_direct (LIKE src);
             CREATE TABLE dst_proxy (LIKE src);",
        )
        .await
        .expect("setup");
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["text", "csv", "binary"] {
        let mut files = Vec::new();
        for (ep, dst) in [(direct(), "dst_direct"), (proxy.endpoint(), "dst_proxy")] {
            let file = dir.path().join(format!("{}-{format}.copy", ep.label));
            let path = file.display().to_string();
            let out = psql_super(
                ep,
                &db,
                &[
                    "-c",
                    &format!(r"\copy src TO '{path}' WITH (FORMAT {format})"),
                ],
            )
            .await;
            assert_eq!(out.stdout, "COPY 5000\n", "{} {format}: {out:?}", ep.label);
            // Emptied directly: TRUNCATE through the proxy is refused (it cannot be undone).
            setup
                .batch_execute(&format!("TRUNCATE {dst}"))
                .await
                .expect("truncate");
            let into = psql_super(
                ep,
                &db,
                &[
                    "-c",
                    &format!(r"\copy {dst} FROM '{path}' WITH (FORMAT {format})"),
                ],
            )
            .await;
            assert!(into.success(), "{} {format}: {into:?}", ep.label);
            assert!(into.stdout.contains("COPY 5000"), "{into:?}");
            files.push(std::fs::read(&file).expect("read copy file"));
        }
        assert!(
            files[0].len() > 100_000,
            "{format}: {} bytes",
            files[0].len()
        );
        assert!(
            files[1] == files[0],
            "{format}: COPY TO output differs through the proxy"
        );
        let diff = setup
            .query(
                "SELECT count(*) FROM (
                    (TABLE src EXCEPT ALL TABLE dst_proxy)
                    UNION ALL (TABLE dst_proxy EXCEPT ALL TABLE src)) d",
                &[],
            )
            .await
            .expect("diff");
        let count: i64 = diff[0].get(0);
        assert_eq!(
            count, 0,
            "{format}: rows copied in through the proxy differ"
        );
    }
    // Bad data in COPY FROM: the same error, and the session goes on.
    let bad = dir.path().join("bad.copy");
    std::fs::write(&bad, "1\tx\t\\N\t\\N\nnot-an-int\ty\t\\N\t\\N\n").expect("write bad file");
    let mut outs = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let out = psql_super(
            ep,
            &db,
            &[
                "-c",
                &format!(r"\copy dst_proxy FROM '{}'", bad.display()),
                "-c",
                "SELECT 42",
            ],
        )
        .await;
        assert!(
            out.stderr.contains("invalid input syntax for type integer"),
            "{}: {out:?}",
            ep.label
        );
        assert_eq!(out.stdout, "42\n", "{}: {out:?}", ep.label);
        outs.push(out);
    }
    assert_eq!(outs[1], outs[0]);
}

#[tokio::test]
async fn notices_are_relayed() {
    let proxy = TestProxy::start().await;
    let name = unique("notice_fn");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION {name}() RETURNS int LANGUAGE plpgsql AS $$
             BEGIN
               RAISE NOTICE 'hello %', 42 USING DETAIL = 'some detail', HINT = 'a hint';
               RAISE WARNING 'careful' USING ERRCODE = '01000';
               RETURN 7;
             END $$"
        ))
        .await
        .expect("create function");
    let mut seen = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let (client, mut messages) =
            connect_with_messages(ep, superuser(), Some(SUPERUSER_PASSWORD), "postgres")
                .await
                .expect("connect");
        let rows = client
            .query(&format!("SELECT {name}()"), &[])
            .await
            .expect("call");
        assert_eq!(rows[0].get::<_, i32>(0), 7);
        let mut notices = Vec::new();
        while notices.len() < 2 {
            match tokio::time::timeout(HANG_GUARD, messages.recv()).await {
                Ok(Some(AsyncMessage::Notice(n))) => notices.push((
                    n.severity().to_string(),
                    n.code().code().to_string(),
                    n.message().to_string(),
                    n.detail().map(str::to_string),
                    n.hint().map(str::to_string),
                )),
                Ok(Some(_)) => {}
                other => panic!("{}: no notice ({other:?}), got {notices:?}", ep.label),
            }
        }
        seen.push(notices);
        // psql prints them on stderr.
        let out = psql_super(ep, "postgres", &["-c", &format!("SELECT {name}()")]).await;
        seen.push(vec![(out.stdout, out.stderr, String::new(), None, None)]);
    }
    assert_eq!(seen[0][0].2, "hello 42");
    assert_eq!(seen[0][0].0, "NOTICE");
    assert!(seen[1][0].1.contains("NOTICE:  hello 42"), "{:?}", seen[1]);
    assert_eq!(seen[2], seen[0], "notices through the proxy");
    assert_eq!(seen[3], seen[1], "psql notices through the proxy");
}

#[tokio::test]
async fn listen_notify_is_relayed() {
    let proxy = TestProxy::start().await;
    let channel = unique("chan");
    for listener_ep in [direct(), proxy.endpoint()] {
        let (listener, mut messages) = connect_with_messages(
            listener_ep,
            superuser(),
            Some(SUPERUSER_PASSWORD),
            "postgres",
        )
        .await
        .expect("connect listener");
        listener
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .expect("LISTEN");
        for (i, notifier_ep) in [direct(), proxy.endpoint()].into_iter().enumerate() {
            let notifier = connect_super(notifier_ep, "postgres").await;
            let pid: i32 = notifier
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .expect("pid")
                .get(0);
            let payload = format!("payload {i} from {} ✓", notifier_ep.label);
            notifier
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .expect("notify");
            let notification = loop {
                match tokio::time::timeout(HANG_GUARD, messages.recv()).await {
                    Ok(Some(AsyncMessage::Notification(n))) => break n,
                    Ok(Some(_)) => {}
                    other => panic!(
                        "{} listener: no notification from {} ({other:?})",
                        listener_ep.label, notifier_ep.label
                    ),
                }
            };
            assert_eq!(notification.channel(), channel);
            assert_eq!(notification.payload(), payload);
            assert_eq!(notification.process_id(), pid);
        }
        // The listening session still answers queries.
        let one: i32 = listener
            .query_one("SELECT 1", &[])
            .await
            .expect("query after notifications")
            .get(0);
        assert_eq!(one, 1);
    }
}

#[tokio::test]
async fn cancel_request_cancels_the_upstream_query() {
    let proxy = TestProxy::start().await;
    for ep in [direct(), proxy.endpoint()] {
        let app = unique("cancel");
        let url = format!(
            "{}?application_name={app}",
            ep.url(superuser(), Some(SUPERUSER_PASSWORD), "postgres")
        );
        let client = connect_url(ep, &url).await.expect("connect");
        let client = std::sync::Arc::new(client);
        let sleeper = {
            let client = client.clone();
            tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await })
        };
        let admin = connect_super(direct(), "postgres").await;
        let running = eventually(|| async {
            let rows = admin
                .query(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
                     AND state = 'active' AND query LIKE '%pg_sleep%'",
                    &[&app],
                )
                .await
                .ok()?;
            (!rows.is_empty()).then_some(())
        })
        .await;
        assert!(running.is_some(), "{}: the query never started", ep.label);
        client
            .cancel_token()
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("send cancel");
        let result = tokio::time::timeout(HANG_GUARD, sleeper)
            .await
            .unwrap_or_else(|_| panic!("{}: the query was not cancelled", ep.label))
            .expect("join");
        let err = result.expect_err("pg_sleep(30) must fail after cancel");
        assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{}", show(&err));
        let one: i32 = client
            .query_one("SELECT 1", &[])
            .await
            .expect("session survives the cancel")
            .get(0);
        assert_eq!(one, 1);
    }
}

#[tokio::test]
async fn authentication_methods_relay() {
    let proxy = TestProxy::start().await;
    // The md5 role really has an md5 hash, so this exercises md5 and not SCRAM.
    let admin = connect_super(direct(), "postgres").await;
    let hash: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&MD5_USER],
        )
        .await
        .expect("hash")
        .get(0);
    assert!(hash.starts_with("md5"), "{hash}");

    let cases: [(&str, Option<&str>); 4] = [
        (SCRAM_USER, Some(SCRAM_PASSWORD)),
        (MD5_USER, Some(MD5_PASSWORD)),
        (TRUST_USER, None),
        (superuser(), Some(SUPERUSER_PASSWORD)),
    ];
    for ep in [direct(), proxy.endpoint()] {
        for (user, password) in cases {
            let client = connect(ep, user, password, "postgres")
                .await
                .unwrap_or_else(|e| panic!("{} {user}: {}", ep.label, show(&e)));
            let who: String = client
                .query_one("SELECT current_user::text", &[])
                .await
                .expect("current_user")
                .get(0);
            assert_eq!(who, user);
        }
        for user in [SCRAM_USER, MD5_USER, superuser(), "no_such_user"] {
            let err = connect(ep, user, Some("wrong password"), "postgres")
                .await
                .err()
                .unwrap_or_else(|| panic!("{} {user}: wrong password accepted", ep.label));
            assert_eq!(
                sqlstate(&err).as_deref(),
                Some("28P01"),
                "{} {user}: {}",
                ep.label,
                show(&err)
            );
        }
        // psql sees the same.
        let out = psql(ep, MD5_USER, Some("nope"), "postgres", &["-c", "SELECT 1"]).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(
            out.stderr
                .contains("password authentication failed for user \"md5_user\""),
            "{out:?}"
        );
        let out = psql(
            ep,
            SCRAM_USER,
            Some(SCRAM_PASSWORD),
            "postgres",
            &["-c", "SELECT 1"],
        )
        .await;
        assert_eq!(out.stdout, "1\n", "{out:?}");
    }
}

#[tokio::test]
async fn server_errors_are_relayed_and_the_session_continues() {
    // Without a policy: under the guard a syntax error is refused before the server sees
    // it (fail closed), which policy_live.rs covers.
    let proxy = TestProxy::pass_through().await;
    let mut seen = Vec::new();
    for ep in [direct(), proxy.endpoint()] {
        let client = connect_super(ep, "postgres").await;
        let mut fields = Vec::new();
        for sql in [
            "SELECT 1/0",
            "SELECT * FROM no_such_table_anywhere",
            "SELEC 1",
        ] {
            let simple = client.simple_query(sql).await.expect_err(sql);
            let extended = client.query(sql, &[]).await.expect_err(sql);
            for err in [simple, extended] {
                let db = err.as_db_error().expect("a server error");
                fields.push((
                    db.severity().to_string(),
                    db.code().code().to_string(),
                    db.message().to_string(),
                    db.position().map(|p| format!("{p:?}")),
                ));
            }
        }
        // Errors inside a transaction block.
        client.batch_execute("BEGIN").await.expect("begin");
        let err = client
            .simple_query("SELECT 1/0")
            .await
            .expect_err("1/0 in tx");
        fields.push((
            String::new(),
            sqlstate(&err).unwrap_or_default(),
            String::new(),
            None,
        ));
        let err = client
            .simple_query("SELECT 1")
            .await
            .expect_err("aborted tx");
        fields.push((
            String::new(),
            sqlstate(&err).unwrap_or_default(),
            String::new(),
            None,
        ));
        client.batch_execute("ROLLBACK").await.expect("rollback");
        let two: i32 = client
            .query_one("SELECT 2", &[])
            .await
            .expect("after errors")
            .get(0);
        assert_eq!(two, 2);
        seen.push(fields);
    }
    assert_eq!(seen[0][0].1, "22012");
    assert_eq!(seen[0][0].2, "division by zero");
    assert_eq!(seen[0][7].1, "25P02");
    assert_eq!(seen[1], seen[0]);
}

/// Initializes one pgbench database per test binary (directly, scale 1).
async fn pgbench_db() -> String {
    static DB: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DB.get_or_init(|| async {
        let db = create_db("bench").await;
        let out = pgbench(direct(), &["-i", "-s", "1", "-q", &db]).await;
        assert!(out.success(), "pgbench -i: {out:?}");
        db
    })
    .await
    .clone()
}

async fn pgbench_through_proxy(mode: &str) {
    let proxy = TestProxy::start().await;
    let db = pgbench_db().await;
    let out = pgbench(
        proxy.endpoint(),
        &["-n", "-S", "-T", "5", "-c", "2", "-j", "2", "-M", mode, &db],
    )
    .await;
    assert!(out.success(), "pgbench -M {mode}: {out:?}");
    let value = |label: &str| -> u64 {
        out.stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in pgbench output: {out:?}"))
    };
    assert_eq!(value("number of failed transactions: "), 0, "{out:?}");
    assert!(
        value("number of transactions actually processed: ") > 0,
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_simple() {
    pgbench_through_proxy("simple").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_extended() {
    pgbench_through_proxy("extended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared() {
    pgbench_through_proxy("prepared").await;
}
