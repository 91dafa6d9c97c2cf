//! Process lifecycle of `pgbelay serve` (§B9): SIGTERM stops accepting, lets an open
//! transaction finish, then the process exits; settings come from flags, env and file.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts `pgbelay serve` on a free port in front of the shared cluster.
async fn serve(extra_env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(&listen)
        .env("PGBELAY_UPSTREAM", cluster().addr())
        .env("PGBELAY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pgbelay serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
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
    (child, listen)
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_lets_an_open_transaction_finish_then_exits() {
    let (mut child, listen) = serve(&[("PGBELAY_SHUTDOWN_TIMEOUT", "20")]).await;
    let port: u16 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ep = Endpoint {
        port,
        label: "serve",
    };
    let table = unique("drain");
    let admin = connect_super(direct(), "postgres").await;
    admin
        .batch_execute(&format!("CREATE TABLE {table}(n int)"))
        .await
        .expect("create");

    let busy = connect_super(ep, "postgres").await;
    let idle = connect_super(ep, "postgres").await;
    busy.batch_execute("BEGIN").await.expect("begin");
    busy.batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");

    sigterm(&child);
    // The idle session is closed at once with 57P01; new connections are refused.
    let closed = eventually(|| async { idle.is_closed().then_some(()) }).await;
    assert!(closed.is_some(), "idle session was not closed on SIGTERM");
    let refused = eventually(|| async {
        tokio::net::TcpStream::connect(&listen)
            .await
            .err()
            .map(|_| ())
    })
    .await;
    assert!(refused.is_some(), "still accepting after SIGTERM");

    // The open transaction can still finish.
    busy.batch_execute(&format!("INSERT INTO {table} VALUES (2)"))
        .await
        .expect("insert during drain");
    busy.batch_execute("COMMIT")
        .await
        .expect("commit during drain");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("pgbelay did not exit after its last session went idle")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let n: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn sigterm_closes_a_stuck_transaction_after_the_timeout() {
    let (mut child, listen) = serve(&[("PGBELAY_SHUTDOWN_TIMEOUT", "1")]).await;
    let port: u16 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ep = Endpoint {
        port,
        label: "serve",
    };
    let client = connect_super(ep, "postgres").await;
    client.batch_execute("BEGIN").await.expect("begin");
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("pgbelay did not exit after shutdown_timeout")
        .expect("wait");
    assert!(status.success());
    assert!(
        eventually(|| async { client.is_closed().then_some(()) })
            .await
            .is_some()
    );
    // No transaction is left open upstream.
    let admin = connect_super(direct(), "postgres").await;
    let lingering = eventually(|| async {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = 'postgres' AND xact_start IS NOT NULL AND query = 'BEGIN'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    assert!(lingering.is_some(), "an upstream transaction lingered");
}

#[test]
fn config_file_flag_and_env_precedence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pgbelay.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nmax_row = 3\n").expect("write");
    // An unknown key in the file is an error naming the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbelay"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pgbelay.toml"), "{stderr}");
    assert!(stderr.contains("max_row"), "{stderr}");
}
