//! A throwaway PostgreSQL cluster (initdb into a temp dir, free port), for `pgbelay demo`
//! and the tests.
//!
//! [`Cluster::start`] runs `initdb` into a fresh temporary directory, configures the server
//! to listen on `127.0.0.1` at a free port with its unix socket in that directory, and
//! starts it with `pg_ctl`. Authentication is set up so that every method the proxy must
//! relay can be exercised:
//!
//! | role | password | TCP auth |
//! |---|---|---|
//! | [`Cluster::superuser`] (`postgres` as root) | [`SUPERUSER_PASSWORD`] | `scram-sha-256` |
//! | [`SCRAM_USER`] | [`SCRAM_PASSWORD`] | `scram-sha-256` |
//! | [`MD5_USER`] | [`MD5_PASSWORD`] (stored as an md5 hash) | `md5` |
//! | [`TRUST_USER`] | none | `trust` |
//!
//! Unix-socket connections are `trust` for everyone (used for setup by
//! [`Cluster::run_sql`]). The three non-superuser roles may create objects in the `public`
//! schema of `postgres` and of every database created later.
//!
//! PostgreSQL refuses to run as root, so when the current process is root every server
//! command runs as the `postgres` OS user through `runuser`, and the temp directory is
//! owned by that user. Otherwise the commands run as the current user, who is then the
//! superuser.
//!
//! Dropping the [`Cluster`] stops the server (`pg_ctl stop -m immediate`) and removes the
//! directory, also while unwinding from a panic. A `Cluster` kept in a `static` is never
//! dropped; [`Cluster::stop_when_process_exits`] covers that case.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

/// Password of the superuser for TCP (SCRAM) connections.
pub const SUPERUSER_PASSWORD: &str = "postgres";
/// A login role authenticated with `scram-sha-256` over TCP.
pub const SCRAM_USER: &str = "scram_user";
/// Password of [`SCRAM_USER`].
pub const SCRAM_PASSWORD: &str = "scram_pass";
/// A login role whose password is stored as an md5 hash and authenticated with `md5`.
pub const MD5_USER: &str = "md5_user";
/// Password of [`MD5_USER`].
pub const MD5_PASSWORD: &str = "md5_pass";
/// A login role that needs no password over TCP (`trust`).
pub const TRUST_USER: &str = "trust_user";

/// The OS user that runs the server when the current process is root.
const SERVER_OS_USER: &str = "postgres";
/// How many times start picks a new port when the chosen one was taken meanwhile.
const START_ATTEMPTS: usize = 3;
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A PostgreSQL program is not installed where we looked.
    #[error(
        "`{0}` not found on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL server (e.g. apt-get install postgresql)"
    )]
    MissingProgram(String),
    /// A file-system or process operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error(
        "`{command}` failed ({status}):\n{output}\n--- server log (last lines) ---\n{log_tail}"
    )]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr (and stdout when stderr is empty).
        output: String,
        /// The end of the server log at the time of the failure.
        log_tail: String,
    },
}

/// Options for [`Cluster::start_with`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// Extra `postgresql.conf` lines (`name = value`).
    pub extra_conf: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            max_connections: 300,
            extra_conf: Vec::new(),
        }
    }
}

/// Absolute paths of the PostgreSQL programs used.
#[derive(Debug, Clone)]
struct Programs {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

/// A running throwaway PostgreSQL server; see the module documentation.
#[derive(Debug)]
pub struct Cluster {
    /// Holds everything; removed on drop.
    root: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: AtomicU16,
    superuser: String,
    /// `Some("postgres")` when server commands must run through `runuser`.
    run_as: Option<String>,
    programs: Programs,
    options: ClusterOptions,
    running: AtomicBool,
}

impl Cluster {
    /// Creates and starts a cluster with default options.
    pub fn start() -> Result<Cluster, ClusterError> {
        Self::start_with(ClusterOptions::default())
    }

    /// Creates and starts a cluster.
    pub fn start_with(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let programs = Programs {
            initdb: find_program("initdb")?,
            pg_ctl: find_program("pg_ctl")?,
            psql: find_program("psql")?,
        };
        let is_root = effective_uid()? == 0;
        let (run_as, superuser) = if is_root {
            (Some(SERVER_OS_USER.to_string()), SERVER_OS_USER.to_string())
        } else {
            (None, current_user_name()?)
        };
        let root = tempfile::Builder::new()
            .prefix("pgbelay-pg-")
            .tempdir()
            .map_err(|source| ClusterError::Io {
                what: "create a temporary directory".into(),
                source,
            })?;
        let data_dir = root.path().join("data");
        let log_path = root.path().join("server.log");
        let cluster = Cluster {
            data_dir,
            log_path,
            port: AtomicU16::new(0),
            superuser,
            run_as,
            programs,
            options,
            running: AtomicBool::new(false),
            root,
        };
        if let Some(user) = &cluster.run_as {
            let mut chown = Command::new("chown");
            chown.arg(format!("{user}:")).arg(cluster.root.path());
            cluster.run(chown)?;
        }
        cluster.initdb()?;
        cluster.write_hba()?;
        cluster.start_on_free_port()?;
        cluster.create_roles()?;
        Ok(cluster)
    }

    /// TCP port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::SeqCst)
    }

    /// TCP host the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `host:port`, the form `pgbelay --upstream` takes.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// Directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Name of the superuser role (`postgres` as root, else the current OS user).
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// True while the server is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// A `postgres://` URL for a TCP connection to this server.
    pub fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        url_for(self.host(), self.port(), user, password, db)
    }

    /// URL of the superuser over TCP (SCRAM), database `postgres`.
    pub fn superuser_url(&self) -> String {
        self.url(&self.superuser, Some(SUPERUSER_PASSWORD), "postgres")
    }

    /// Runs `sql` (one or more statements) as the superuser in database `postgres` through
    /// psql over the unix socket; returns psql's unaligned, tuples-only output.
    pub fn run_sql(&self, sql: &str) -> Result<String, ClusterError> {
        self.run_sql_in("postgres", sql)
    }

    /// Like [`Cluster::run_sql`], in database `db`.
    pub fn run_sql_in(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let mut psql = Command::new(&self.programs.psql);
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port().to_string())
            .args(["-U", &self.superuser, "-d", db, "-f", "-"]);
        let output = self.run_with_input(self.as_server_user(psql), sql.as_bytes())?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) -> Result<(), ClusterError> {
        let mut cmd = Command::new(&self.programs.pg_ctl);
        cmd.args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&self.data_dir);
        self.run(self.as_server_user(cmd))?;
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn start_server(&self) -> Result<(), ClusterError> {
        self.pg_ctl_start()
    }

    /// Stops and starts the server (fast shutdown), on the same port.
    pub fn restart(&self) -> Result<(), ClusterError> {
        if self.is_running() {
            self.stop()?;
        }
        self.pg_ctl_start()
    }

    /// Starts a detached watchdog that, once the current process has exited, stops the
    /// server and removes the directory. For a `Cluster` kept in a `static`, which is never
    /// dropped. The watchdog polls once a second and runs in its own process group, so a
    /// Ctrl-C to the terminal does not kill it before it has cleaned up.
    pub fn stop_when_process_exits(&self) -> Result<(), ClusterError> {
        // sh -c SCRIPT ROOT PID STOP-COMMAND...: $0 is the directory to remove.
        let script = r#"pid=$1; shift
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
"$@" >/dev/null 2>&1
rm -rf "$0""#;
        let stop = self.stop_immediate_command();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(self.root.path())
            .arg(std::process::id().to_string())
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn().map_err(|source| ClusterError::Io {
            what: "spawn the cluster watchdog".into(),
            source,
        })?;
        Ok(())
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let mut cmd = Command::new(&self.programs.initdb);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-U", &self.superuser])
            .args(["--no-locale", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
        self.run(self.as_server_user(cmd))?;
        Ok(())
    }

    fn write_hba(&self) -> Result<(), ClusterError> {
        let mut hba = String::from(
            "# written by pgbelay::cluster\n\
             local all all trust\n",
        );
        for net in ["127.0.0.1/32", "::1/128"] {
            let _ = writeln!(hba, "host all {TRUST_USER} {net} trust");
            let _ = writeln!(hba, "host all {MD5_USER} {net} md5");
            let _ = writeln!(hba, "host all all {net} scram-sha-256");
        }
        // Truncating an existing file keeps its owner (the server user).
        std::fs::write(self.data_dir.join("pg_hba.conf"), hba).map_err(|source| ClusterError::Io {
            what: "write pg_hba.conf".into(),
            source,
        })
    }

    /// Appends the settings to postgresql.conf; later lines win, so appending again with
    /// a new port replaces the old one.
    fn append_conf(&self, port: u16) -> Result<(), ClusterError> {
        let socket_dir = self.socket_dir().display().to_string().replace('\'', "''");
        let mut conf = format!(
            "\n# added by pgbelay::cluster\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = {}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n",
            self.options.max_connections
        );
        for line in &self.options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = self.data_dir.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(conf.as_bytes()))
            .map_err(|source| ClusterError::Io {
                what: format!("append to {}", path.display()),
                source,
            })
    }

    fn start_on_free_port(&self) -> Result<(), ClusterError> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            self.port.store(port, Ordering::SeqCst);
            self.append_conf(port)?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                // Another process may have taken the port between our probe and the start.
                Err(_)
                    if attempt < START_ATTEMPTS && self.log_tail().contains("could not bind") =>
                {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let mut cmd = Command::new(&self.programs.pg_ctl);
        cmd.args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path);
        self.run(self.as_server_user(cmd))?;
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn create_roles(&self) -> Result<(), ClusterError> {
        let su = quote_ident(&self.superuser);
        let sql = format!(
            "SET password_encryption = 'scram-sha-256';\n\
             ALTER ROLE {su} PASSWORD '{SUPERUSER_PASSWORD}';\n\
             CREATE ROLE {SCRAM_USER} LOGIN CREATEDB PASSWORD '{SCRAM_PASSWORD}';\n\
             CREATE ROLE {TRUST_USER} LOGIN CREATEDB;\n\
             SET password_encryption = 'md5';\n\
             CREATE ROLE {MD5_USER} LOGIN CREATEDB PASSWORD '{MD5_PASSWORD}';\n"
        );
        self.run_sql(&sql)?;
        let grant =
            format!("GRANT ALL ON SCHEMA public TO {SCRAM_USER}, {TRUST_USER}, {MD5_USER};\n");
        self.run_sql_in("template1", &grant)?;
        self.run_sql_in("postgres", &grant)?;
        Ok(())
    }

    /// `pg_ctl stop -m immediate`, as the server user.
    fn stop_immediate_command(&self) -> Command {
        let mut cmd = Command::new(&self.programs.pg_ctl);
        cmd.args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(&self.data_dir);
        self.as_server_user(cmd)
    }

    /// Wraps `cmd` in `runuser -u postgres --` when running as root.
    fn as_server_user(&self, cmd: Command) -> Command {
        let mut wrapped = match &self.run_as {
            None => cmd,
            Some(user) => {
                let mut runuser = Command::new("runuser");
                runuser
                    .args(["-u", user, "--"])
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                runuser
            }
        };
        // The server user may not be able to enter the caller's working directory.
        wrapped.current_dir(self.root.path());
        wrapped
    }

    fn run(&self, cmd: Command) -> Result<Output, ClusterError> {
        self.run_with_input(cmd, &[])
    }

    fn run_with_input(&self, mut cmd: Command, input: &[u8]) -> Result<Output, ClusterError> {
        let line = command_line(&cmd);
        let io_err = |source| ClusterError::Io {
            what: format!("run `{line}`"),
            source,
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(io_err)?;
        // Feed stdin from another thread so a chatty child cannot fill its output pipe
        // while we are still writing (a deadlock).
        let writer = child.stdin.take().map(|mut stdin| {
            let input = input.to_vec();
            std::thread::spawn(move || stdin.write_all(&input))
        });
        let output = child.wait_with_output().map_err(io_err)?;
        let written = match writer.map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(std::io::Error::other("stdin writer panicked")),
        };
        if output.status.success() {
            // A child that succeeded without reading all its input is still a failure.
            written.map_err(io_err)?;
            return Ok(output);
        }
        let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if text.is_empty() {
            text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        }
        Err(ClusterError::Command {
            command: line,
            status: output.status.to_string(),
            output: text,
            log_tail: self.log_tail(),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Always try, whatever `is_running` says: a half-failed start or stop may have
        // left the server up.
        let mut cmd = self.stop_immediate_command();
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The TempDir field removes the directory after this.
    }
}

/// A `postgres://` URL (user, password and database percent-encoded).
pub fn url_for(host: &str, port: u16, user: &str, password: Option<&str>, db: &str) -> String {
    let user = percent_encode(user);
    let db = percent_encode(db);
    match password {
        Some(password) => format!(
            "postgres://{user}:{}@{host}:{port}/{db}",
            percent_encode(password)
        ),
        None => format!("postgres://{user}@{host}:{port}/{db}"),
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Asks the OS for a free TCP port on 127.0.0.1 (the port is released again at once).
fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| ClusterError::Io {
            what: "find a free TCP port".into(),
            source,
        })
}

/// The effective uid: the owner of `/proc/self`, else `id -u`.
fn effective_uid() -> Result<u32, ClusterError> {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let text = command_stdout(Command::new("id").arg("-u"))?;
    text.trim().parse().map_err(|_| ClusterError::Io {
        what: "read the current uid".into(),
        source: std::io::Error::other(format!("`id -u` printed {text:?}")),
    })
}

fn current_user_name() -> Result<String, ClusterError> {
    let name = command_stdout(Command::new("id").arg("-un"))?;
    Ok(name.trim().to_string())
}

fn command_stdout(cmd: &mut Command) -> Result<String, ClusterError> {
    let line = command_line(cmd);
    let output = cmd.output().map_err(|source| ClusterError::Io {
        what: format!("run `{line}`"),
        source,
    })?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            command: line,
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
            log_tail: String::new(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Finds `name` on PATH, else in the newest `/usr/lib/postgresql/<version>/bin` (Debian
/// keeps the server programs there).
fn find_program(name: &str) -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin").join(name)))
        })
        .filter(|(_, path)| is_executable(path))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, path)| path)
        .ok_or_else(|| ClusterError::MissingProgram(name.into()))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(err) => format!("(no server log at {}: {err})", path.display()),
    }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
