//! TLS to clients (issue 6, SPEC §A2 tls_cert / tls_key): SSLRequest answered `S` when a
//! certificate is configured; psql with `sslmode=require` and tokio-postgres with rustls
//! (verifying the certificate) work through it; without TLS nothing changes.

mod common;

use std::sync::Arc;

use common::*;
use pgbelay::config::{Settings, UpstreamAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for 127.0.0.1 / localhost, written to a temp dir; the dir
/// (kept alive by the caller), the cert's PEM, and the settings that use it.
fn certificate() -> (tempfile::TempDir, String, Settings) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    let pem = cert.cert.pem();
    std::fs::write(&cert_path, &pem).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    let settings = Settings {
        upstream: UpstreamAddr::Tcp(cluster().addr()),
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        ..Settings::default()
    };
    (dir, pem, settings)
}

async fn tls_proxy(settings: Settings) -> TestProxy {
    let guard = pgbelay::policy::Guard::new(&settings);
    TestProxy::start_with_settings(settings, Arc::new(guard)).await
}

#[tokio::test]
async fn psql_with_sslmode_require_gets_tls() {
    let (_dir, _pem, settings) = certificate();
    let proxy = tls_proxy(settings).await;
    let out = psql_super(
        proxy.endpoint(),
        "dbname=postgres sslmode=require",
        &["-c", "\\conninfo", "-c", "SELECT 41 + 1"],
    )
    .await;
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("SSL connection (protocol: TLSv1.3"),
        "{out:?}"
    );
    assert!(out.stdout.lines().any(|l| l == "42"), "{out:?}");
    // The guard works as usual inside TLS.
    let out = psql_super(
        proxy.endpoint(),
        "dbname=postgres sslmode=require",
        &["-c", "DROP TABLE pg_class"],
    )
    .await;
    assert!(out.stderr.contains("pgbelay: refused"), "{out:?}");
}

#[tokio::test]
async fn tokio_postgres_verifies_the_certificate() {
    let (_dir, pem, settings) = certificate();
    let proxy = tls_proxy(settings).await;
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).expect("pem");
    roots.add(der).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let url = format!(
        "{}?sslmode=require",
        proxy
            .endpoint()
            .url(superuser(), Some(SUPERUSER_PASSWORD), "postgres")
    );
    let (client, connection) = tokio_postgres::connect(&url, connector)
        .await
        .unwrap_or_else(|e| panic!("TLS connect: {}", show(&e)));
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT $1::int + 1", &[&1i32])
        .await
        .expect("query over TLS");
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test]
async fn without_tls_configured_sslrequest_is_answered_n() {
    let proxy = TestProxy::start().await;
    let out = psql_super(
        proxy.endpoint(),
        "dbname=postgres sslmode=require",
        &["-c", "SELECT 1"],
    )
    .await;
    assert!(!out.success());
    assert!(
        out.stderr.contains("server does not support SSL"),
        "{out:?}"
    );
    let out = psql_super(
        proxy.endpoint(),
        "dbname=postgres sslmode=prefer",
        &["-c", "SELECT 1"],
    )
    .await;
    assert!(out.success(), "{out:?}");
}

#[tokio::test]
async fn bytes_after_sslrequest_close_the_connection() {
    let (_dir, _pem, settings) = certificate();
    let proxy = tls_proxy(settings).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr())
        .await
        .expect("connect");
    // SSLRequest followed at once by a plaintext StartupMessage: never read as TLS.
    let mut bytes = vec![0, 0, 0, 8, 4, 210, 22, 47];
    bytes.extend(startup_message(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]));
    stream.write_all(&bytes).await.expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    assert!(String::from_utf8_lossy(&reply).contains("data after SSLRequest"));
}

#[tokio::test]
async fn a_key_without_a_certificate_is_a_startup_error() {
    let (_dir, _pem, settings) = certificate();
    let settings = Settings {
        tls_cert: None,
        ..settings
    };
    let err = pgbelay::server::Proxy::bind(settings, Arc::new(pgbelay::session::PassThrough))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("tls_cert and tls_key must be set together")
    );
}

/// A cluster of its own with `ssl = on`, serving `pem`/`key` (written into its data
/// directory, owned by the server's user, as PostgreSQL requires for the key).
fn ssl_cluster(cert: &rcgen::CertifiedKey) -> pgbelay::cluster::Cluster {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let cluster = pgbelay::cluster::Cluster::start().expect("cluster");
    let dir = cluster.data_dir();
    let owner = std::fs::metadata(dir).expect("data dir").uid();
    for (name, text) in [
        ("server.crt", cert.cert.pem()),
        ("server.key", cert.key_pair.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(&path, Some(owner), None).expect("chown");
    }
    cluster
        .run_sql("ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();")
        .expect("ssl on");
    cluster
}

async fn upstream_ssl(proxy: &TestProxy) -> Result<bool, tokio_postgres::Error> {
    let client = connect(
        proxy.endpoint(),
        superuser(),
        Some(SUPERUSER_PASSWORD),
        "postgres",
    )
    .await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn upstream_sslmode_encrypts_and_verifies_the_server() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let server = ssl_cluster(&cert);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, cert.cert.pem()).expect("write ca");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("other");
    let wrong_ca = dir.path().join("wrong.crt");
    std::fs::write(&wrong_ca, other.cert.pem()).expect("write wrong ca");

    let proxy_with = |mode, rootcert: Option<std::path::PathBuf>| {
        let settings = Settings {
            upstream: UpstreamAddr::Tcp(server.addr()),
            upstream_sslmode: mode,
            upstream_sslrootcert: rootcert,
            ..Settings::default()
        };
        TestProxy::start_with_settings(settings, Arc::new(pgbelay::session::PassThrough))
    };
    use pgbelay::config::SslMode;
    for (mode, expected) in [
        (SslMode::Disable, false),
        (SslMode::Prefer, true),
        (SslMode::Require, true),
    ] {
        let proxy = proxy_with(mode, None).await;
        let ssl = upstream_ssl(&proxy)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {}", show(&e)));
        assert_eq!(ssl, expected, "{mode:?}");
    }
    let proxy = proxy_with(SslMode::VerifyFull, Some(ca)).await;
    assert!(upstream_ssl(&proxy).await.expect("verify-full"));
    // Signed by someone else: the session is refused, with the reason.
    let proxy = proxy_with(SslMode::VerifyFull, Some(wrong_ca)).await;
    let err = upstream_ssl(&proxy).await.expect_err("wrong CA");
    assert_eq!(sqlstate(&err).as_deref(), Some("08001"), "{}", show(&err));
    assert!(show(&err).contains("certificate"), "{}", show(&err));
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    // The shared cluster has ssl off.
    let settings = Settings {
        upstream: UpstreamAddr::Tcp(cluster().addr()),
        upstream_sslmode: pgbelay::config::SslMode::Require,
        ..Settings::default()
    };
    let proxy =
        TestProxy::start_with_settings(settings, Arc::new(pgbelay::session::PassThrough)).await;
    let err = upstream_ssl(&proxy).await.expect_err("no TLS upstream");
    assert!(
        show(&err).contains("does not support TLS"),
        "{}",
        show(&err)
    );
    // prefer falls back to plain.
    let settings = Settings {
        upstream: UpstreamAddr::Tcp(cluster().addr()),
        ..Settings::default()
    };
    let proxy =
        TestProxy::start_with_settings(settings, Arc::new(pgbelay::session::PassThrough)).await;
    assert!(!upstream_ssl(&proxy).await.expect("plain"));
}
