//! Writes the seed corpora: real protocol exchanges for the frame and startup targets,
//! and the statements of `sql-fixtures/` for the SQL targets. Run from `fuzz/`:
//! `cargo run --example seeds`. Files are named by content, so reruns add nothing twice.

use std::fs;
use std::path::Path;

use pgbelay_fuzz::{Side, encode_chunks};

/// A tagged message: tag, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An untagged startup packet: length, code, body.
fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32 + 8).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut out = s.as_bytes().to_vec();
    out.push(0);
    out
}

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(sql))
}

fn parse(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend((types.len() as u16).to_be_bytes());
    types.iter().for_each(|t| body.extend(t.to_be_bytes()));
    msg(b'P', &body)
}

fn bind(portal: &str, statement: &str, params: &[&[u8]]) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(cstr(statement));
    body.extend(0u16.to_be_bytes());
    body.extend((params.len() as u16).to_be_bytes());
    for p in params {
        body.extend((p.len() as i32).to_be_bytes());
        body.extend_from_slice(p);
    }
    body.extend(0u16.to_be_bytes());
    msg(b'B', &body)
}

fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    msg(b'D', &body)
}

fn execute(portal: &str, rows: i32) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(rows.to_be_bytes());
    msg(b'E', &body)
}

fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    msg(b'C', &body)
}

fn auth(code: u32, rest: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(rest);
    msg(b'R', &body)
}

fn param_status(name: &str, value: &str) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(value));
    msg(b'S', &body)
}

fn key_data(pid: u32, secret: &[u8]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(secret);
    msg(b'K', &body)
}

fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    packet(196_608, &body)
}

fn write(dir: &Path, seed: &[u8]) {
    // FNV-1a: a stable name from the content, without a hashing dependency.
    let hash = seed.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    if let Err(e) = fs::write(dir.join(format!("seed-{hash:016x}")), seed) {
        panic!("cannot write a seed in {}: {e}", dir.display());
    }
}

fn frontend(dir: &Path) {
    let sync = msg(b'S', b"");
    let streams: Vec<Vec<Vec<u8>>> = vec![
        vec![query("SELECT 1")],
        vec![
            query("BEGIN"),
            query("UPDATE t SET a = 1 WHERE id = 2"),
            query("COMMIT"),
        ],
        vec![query("select 1; drop table t")],
        vec![query("DELETE FROM orders WHERE id = 8 RETURNING *")],
        vec![
            parse("", "SELECT $1::int", &[23]),
            bind("", "", &[b"42"]),
            describe(b'P', ""),
            execute("", 0),
            sync.clone(),
        ],
        vec![
            parse("s1", "INSERT INTO t (a) VALUES ($1)", &[0]),
            sync.clone(),
            bind("p1", "s1", &[b"x"]),
            execute("p1", 10),
            close(b'P', "p1"),
            close(b'S', "s1"),
            msg(b'H', b""),
            sync.clone(),
        ],
        vec![
            query("COPY t FROM STDIN"),
            msg(b'd', b"1\tone\n2\ttwo\n"),
            msg(b'c', b""),
        ],
        vec![
            query("COPY t FROM STDIN"),
            msg(b'f', &cstr("client gave up")),
        ],
        vec![msg(b'F', &[0, 0, 0x0b, 0xb8, 0, 0, 0, 0, 0, 0])],
        vec![query("SELECT '\u{e9}'"), msg(b'Q', b"SELECT '\xff'\0")],
        vec![parse("bad", "SELECT 1", &[]).into_iter().take(12).collect()],
        vec![
            query("SET standard_conforming_strings = off"),
            query(r"SELECT '\' ; DROP TABLE t; --'"),
        ],
        vec![msg(b'X', b"")],
        vec![b"Q\x3f\xff\xff\xffSELECT".to_vec()],
    ];
    for (i, stream) in streams.iter().enumerate() {
        // First byte: the read size (see the target); vary it across seeds.
        let mut seed = vec![[0u8, 3, 7, 63][i % 4]];
        stream.iter().for_each(|m| seed.extend_from_slice(m));
        write(dir, &seed);
    }
}

fn startup(dir: &Path) {
    use Side::{Client as C, Server as S};
    let user = startup_message(&[
        ("user", "alice"),
        ("database", "demo"),
        ("application_name", "psql"),
    ]);
    let ready = msg(b'Z', b"I");
    let ok = auth(0, b"");
    let session_start = [
        param_status("server_version", "15.6"),
        param_status("standard_conforming_strings", "on"),
        key_data(1234, &[9, 8, 7, 6]),
        ready.clone(),
        msg(b'C', &cstr("SET")),
        ready.clone(),
    ]
    .concat();
    let fatal = msg(
        b'E',
        &[
            &b"SFATAL\0VFATAL\0C28P01\0"[..],
            &cstr("password authentication failed"),
            b"\0",
        ]
        .concat(),
    );
    let exchanges: Vec<Vec<(Side, Vec<u8>)>> = vec![
        vec![(C, user.clone()), (S, ok.clone()), (S, session_start.clone()), (C, query("SELECT 1"))],
        vec![(C, packet(80_877_103, b"")), (C, user.clone()), (S, [ok.clone(), session_start.clone()].concat())],
        vec![(C, packet(80_877_104, b"")), (C, packet(80_877_103, b"")), (C, user.clone())],
        vec![(C, user.clone()), (S, auth(3, b"")), (C, msg(b'p', &cstr("secret"))), (S, ok.clone()), (S, session_start.clone())],
        vec![(C, user.clone()), (S, auth(5, &[1, 2, 3, 4])), (C, msg(b'p', &cstr("md5a3556571e93b0d20722ba62be61e8c2d"))), (S, fatal.clone())],
        vec![
            (C, user.clone()),
            (S, auth(10, &[&cstr("SCRAM-SHA-256")[..], b"\0"].concat())),
            (C, msg(b'p', &[&cstr("SCRAM-SHA-256")[..], &32i32.to_be_bytes(), b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"].concat())),
            (S, auth(11, b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")),
            (C, msg(b'p', b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")),
            (S, auth(12, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")),
            (S, ok.clone()),
            (S, session_start.clone()),
        ],
        vec![(C, packet(80_877_102, &[0, 0, 0, 42, 1, 2, 3, 4]))],
        vec![(C, packet(80_877_102, &[0, 0, 0, 42, 1, 2, 3, 5]))],
        vec![(C, startup_message(&[]))],
        vec![(C, packet(196_610, &[&cstr("user")[..], &cstr("bob"), &cstr("_pq_.x"), &cstr("1"), b"\0"].concat())), (S, msg(b'v', &[0, 0, 0, 0, 0, 0, 0, 1, b'_', b'p', b'q', b'_', b'.', b'x', 0]))],
        vec![(C, user.clone()), (S, msg(b'N', &[&b"SWARNING\0C01000\0"[..], &cstr("hello"), b"\0"].concat())), (S, ok), (S, session_start), (S, msg(b'A', &[&0u32.to_be_bytes()[..], &cstr("chan"), &cstr("payload")].concat()))],
    ];
    for exchange in &exchanges {
        let parts: Vec<(Side, &[u8])> = exchange.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        write(dir, &encode_chunks(&parts));
    }
}

/// The SQL of every case of the policy corpus (`@@` header, text up to the next header).
fn corpus_cases(text: &str) -> Vec<String> {
    let mut cases = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("@#") {
            continue;
        }
        if line.starts_with("@@") {
            cases.extend(current.take());
            current = Some(String::new());
        } else if let Some(c) = current.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
    }
    cases.extend(current);
    cases
        .into_iter()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn sql(classify: &Path, soft_delete: &Path) {
    let fixtures = Path::new("../sql-fixtures");
    let mut statements = Vec::new();
    let policy = fixtures.join("policy");
    let mut files: Vec<_> = fs::read_dir(&policy)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "corpus"))
    {
        statements.extend(corpus_cases(&fs::read_to_string(file).unwrap_or_default()));
    }
    let demo = fs::read_to_string(fixtures.join("demo.sql")).unwrap_or_default();
    statements.extend(
        demo.split(";\n")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    // Shapes the fixtures lack: set operations, locking lookalikes, prepared reads.
    statements.extend(
        [
            "SELECT 1 UNION SELECT 2",
            "SELECT a FROM t UNION ALL (SELECT b FROM u) ORDER BY 1",
            "SELECT substring('abc' FROM 1 FOR 2)",
            "SELECT * FROM t WHERE id = 1 FOR UPDATE",
            "PREPARE p AS SELECT 1; EXECUTE p",
            "EXPLAIN (ANALYZE false) DELETE FROM t",
            "DECLARE c CURSOR FOR SELECT * FROM t; FETCH 10 FROM c",
            "COPY (SELECT 1) TO STDOUT",
            "REFRESH MATERIALIZED VIEW mv",
        ]
        .map(String::from),
    );
    for s in &statements {
        write(classify, s.as_bytes());
        if s.to_ascii_lowercase().contains("delete") {
            write(soft_delete, s.as_bytes());
        }
    }
}

fn main() {
    let root = Path::new("corpus");
    let dirs = ["frontend_frames", "startup", "classify", "soft_delete"].map(|d| root.join(d));
    for d in &dirs {
        if let Err(e) = fs::create_dir_all(d) {
            panic!("cannot create {}: {e}", d.display());
        }
    }
    frontend(&dirs[0]);
    startup(&dirs[1]);
    sql(&dirs[2], &dirs[3]);
}
