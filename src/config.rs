//! Settings (SPEC §A2): flag > `PGBELAY_*` environment > TOML file (`--config`) > default.
//!
//! clap resolves flag and environment; the TOML file fills what both left unset; the
//! defaults fill the rest. Unknown keys in the file are an error, so a typo never silently
//! leaves a guard at its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the proxy finds PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// `host:port`.
    Tcp(String),
    /// A directory holding `.s.PGSQL.<port>` (the port defaults to 5432, `dir:port` overrides).
    Unix {
        /// Socket directory.
        dir: PathBuf,
        /// Port number in the socket file name.
        port: u16,
    },
}

impl UpstreamAddr {
    /// Reads `host:port`, a socket directory (`/run/postgresql`), or `dir:port`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.starts_with('/') {
            let (dir, port) = match text.rsplit_once(':') {
                Some((dir, port)) => (
                    dir,
                    port.parse()
                        .map_err(|_| ConfigError::Invalid("upstream", text.into()))?,
                ),
                None => (text, 5432),
            };
            return Ok(Self::Unix {
                dir: PathBuf::from(dir),
                port,
            });
        }
        if text.rsplit_once(':').is_none() {
            return Err(ConfigError::Invalid("upstream", text.into()));
        }
        Ok(Self::Tcp(text.to_string()))
    }
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix { dir, port } => write!(f, "{}:{port}", dir.display()),
        }
    }
}

/// Whether pgbelay talks TLS to the server, as libpq's `sslmode` (for TCP upstreams; a
/// unix socket is never encrypted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// Always, without checking the certificate (refuse a server without TLS).
    Require,
    /// Always, checking the certificate against `upstream_sslrootcert` and the host name.
    VerifyFull,
}

/// The resolved settings every part of pgbelay reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the proxy accepts clients on.
    pub listen: SocketAddr,
    /// PostgreSQL server address.
    pub upstream: UpstreamAddr,
    /// TLS to the server.
    pub upstream_sslmode: SslMode,
    /// CA certificates (PEM) that sign the server's certificate, for `verify-full`.
    pub upstream_sslrootcert: Option<PathBuf>,
    /// Schema holding `changes`, `approvals` and the shadow tables.
    pub audit_schema: String,
    /// The timestamptz column a DELETE sets.
    pub soft_delete_column: String,
    /// Blast-radius limit for one statement without approval (§B7).
    pub max_rows: u64,
    /// HMAC key for approval tokens; without it every approval is refused.
    pub approval_secret: Option<String>,
    /// Serve TLS to clients when both are set.
    pub tls_cert: Option<PathBuf>,
    /// Private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Address of the Prometheus `/metrics` endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// How long SIGTERM waits for open sessions before closing them.
    pub shutdown_timeout: Duration,
    /// Event loops (threads) the sessions are spread over; a session stays on its loop.
    pub event_loops: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            upstream: UpstreamAddr::Tcp("127.0.0.1:5432".into()),
            upstream_sslmode: SslMode::default(),
            upstream_sslrootcert: None,
            audit_schema: "pgbelay".into(),
            soft_delete_column: "deleted_at".into(),
            max_rows: 1000,
            approval_secret: None,
            tls_cert: None,
            tls_key: None,
            metrics_listen: None,
            shutdown_timeout: Duration::from_secs(30),
            event_loops: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Settings as given by flags or environment (clap fills these); `None` means "not given".
#[derive(Debug, Default, Clone, clap::Args)]
pub struct SettingsArgs {
    /// TOML file with settings (flags and PGBELAY_* variables override it).
    #[arg(long, env = "PGBELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address the proxy accepts clients on [default: 127.0.0.1:6432].
    #[arg(long, env = "PGBELAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL address: host:port or a unix socket directory [default: 127.0.0.1:5432].
    #[arg(long, env = "PGBELAY_UPSTREAM")]
    pub upstream: Option<String>,
    /// TLS to the server, as libpq's sslmode [default: prefer].
    #[arg(long, env = "PGBELAY_UPSTREAM_SSLMODE", value_enum)]
    pub upstream_sslmode: Option<SslMode>,
    /// CA certificates (PEM) for upstream_sslmode verify-full.
    #[arg(long, env = "PGBELAY_UPSTREAM_SSLROOTCERT")]
    pub upstream_sslrootcert: Option<PathBuf>,
    /// Schema holding the audit trail [default: pgbelay].
    #[arg(long, env = "PGBELAY_AUDIT_SCHEMA")]
    pub audit_schema: Option<String>,
    /// Column a DELETE sets instead of deleting [default: deleted_at].
    #[arg(long, env = "PGBELAY_SOFT_DELETE_COLUMN")]
    pub soft_delete_column: Option<String>,
    /// Most rows one statement may change without approval [default: 1000].
    #[arg(long, env = "PGBELAY_MAX_ROWS")]
    pub max_rows: Option<u64>,
    /// HMAC key for approval tokens.
    #[arg(long, env = "PGBELAY_APPROVAL_SECRET", hide_env_values = true)]
    pub approval_secret: Option<String>,
    /// File holding the HMAC key for approval tokens.
    #[arg(long, env = "PGBELAY_APPROVAL_SECRET_FILE")]
    pub approval_secret_file: Option<PathBuf>,
    /// TLS certificate (PEM) served to clients.
    #[arg(long, env = "PGBELAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "PGBELAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, env = "PGBELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds SIGTERM waits for open sessions [default: 30].
    #[arg(long, env = "PGBELAY_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<u64>,
    /// Event loops (threads) the sessions are spread over [default: one per CPU].
    #[arg(long, env = "PGBELAY_EVENT_LOOPS")]
    pub event_loops: Option<usize>,
}

/// The TOML file's shape: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    upstream_sslmode: Option<SslMode>,
    upstream_sslrootcert: Option<PathBuf>,
    audit_schema: Option<String>,
    soft_delete_column: Option<String>,
    max_rows: Option<u64>,
    approval_secret: Option<String>,
    approval_secret_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    shutdown_timeout: Option<u64>,
    event_loops: Option<usize>,
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The `--config` file is not valid TOML for these settings.
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// A value is malformed.
    #[error("invalid {0}: {1:?}")]
    Invalid(&'static str, String),
    /// `approval_secret_file` could not be read.
    #[error("cannot read approval_secret_file {0}: {1}")]
    Secret(PathBuf, std::io::Error),
}

impl SettingsArgs {
    /// Resolves flag > env (both already in `self`) > file > default.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let d = Settings::default();
        let upstream = match self.upstream.clone().or(file.upstream) {
            Some(text) => UpstreamAddr::parse(&text)?,
            None => d.upstream,
        };
        let secret_file = self
            .approval_secret_file
            .clone()
            .or(file.approval_secret_file);
        let approval_secret = match self.approval_secret.clone().or(file.approval_secret) {
            Some(secret) => Some(secret),
            None => match secret_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| ConfigError::Secret(path, e))?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
                None => None,
            },
        };
        if approval_secret.as_deref() == Some("") {
            return Err(ConfigError::Invalid("approval_secret", "(empty)".into()));
        }
        Ok(Settings {
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            upstream,
            audit_schema: self
                .audit_schema
                .clone()
                .or(file.audit_schema)
                .unwrap_or(d.audit_schema),
            soft_delete_column: self
                .soft_delete_column
                .clone()
                .or(file.soft_delete_column)
                .unwrap_or(d.soft_delete_column),
            max_rows: self.max_rows.or(file.max_rows).unwrap_or(d.max_rows),
            upstream_sslmode: self
                .upstream_sslmode
                .or(file.upstream_sslmode)
                .unwrap_or(d.upstream_sslmode),
            upstream_sslrootcert: self
                .upstream_sslrootcert
                .clone()
                .or(file.upstream_sslrootcert),
            approval_secret,
            tls_cert: self.tls_cert.clone().or(file.tls_cert),
            tls_key: self.tls_key.clone().or(file.tls_key),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            shutdown_timeout: self
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .map(Duration::from_secs)
                .unwrap_or(d.shutdown_timeout),
            event_loops: match self.event_loops.or(file.event_loops) {
                Some(0) => return Err(ConfigError::Invalid("event_loops", "0".into())),
                Some(n) => n,
                None => d.event_loops,
            },
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbelay.toml");
        std::fs::write(&path, "max_rows = 5\naudit_schema = \"aud\"\n").unwrap();
        let args = SettingsArgs {
            config: Some(path),
            max_rows: Some(7),
            ..Default::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.max_rows, 7);
        assert_eq!(s.audit_schema, "aud");
        assert_eq!(s.soft_delete_column, "deleted_at");
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbelay.toml");
        std::fs::write(&path, "max_row = 5\n").unwrap();
        let args = SettingsArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Parse(..))));
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            UpstreamAddr::parse("/run/postgresql").unwrap(),
            UpstreamAddr::Unix {
                dir: "/run/postgresql".into(),
                port: 5432
            }
        );
        assert_eq!(
            UpstreamAddr::parse("db:5433").unwrap(),
            UpstreamAddr::Tcp("db:5433".into())
        );
        assert!(UpstreamAddr::parse("nohostport").is_err());
    }

    #[test]
    fn event_loops_default_to_the_cpus_and_refuse_zero() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(SettingsArgs::default().resolve().unwrap().event_loops, cpus);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbelay.toml");
        std::fs::write(&path, "event_loops = 3\n").unwrap();
        let from_file = SettingsArgs {
            config: Some(path),
            ..Default::default()
        };
        assert_eq!(from_file.resolve().unwrap().event_loops, 3);
        let zero = SettingsArgs {
            event_loops: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            zero.resolve(),
            Err(ConfigError::Invalid("event_loops", _))
        ));
    }
}
