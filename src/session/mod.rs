//! One task per client session; the only place that owns both sockets.
//!
//! [`run`] answers the startup packets (SSLRequest `S` and the TLS handshake when a
//! certificate is configured, else `N`; GSSENCRequest `N`; CancelRequest
//! forwarded to the right backend), connects upstream, forwards the StartupMessage, and
//! then polls both sockets in one loop (`poll_relay`): output due is written, both sides
//! are read, and the shutdown signals are looked at only when nothing can move. All
//! protocol bookkeeping lives in [`relay::Relay`], which has no IO; this module only
//! moves bytes and ends sessions cleanly.

pub mod cancel;
mod hooks;
mod relay;
mod state;
mod timer;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;
use tracing::{Instrument, debug, info, warn};

pub use hooks::{Decision, Hooks, PassThrough, Plan, Position, SessionHooks, SessionInfo};
pub use relay::{Flow, Relay, RelayError};
pub use state::Phase;
pub use timer::{TimedOut, Timers};

use crate::config::Settings;
use crate::tls::ClientStream;
use crate::wire::FrameError;
use crate::wire::encode::ErrorFields;
use crate::wire::sqlstate::SqlState;
use crate::wire::startup::StartupPacket;
use cancel::{CancelMap, UpstreamKey};

/// Stop reading from a side while this much is waiting to be written to the other.
const BACKPRESSURE: usize = 1 << 20;

/// How long a client may take to send its startup packet (PostgreSQL's
/// `authentication_timeout` default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What every session of one proxy shares.
pub struct Shared {
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Makes each session's policy hooks.
    pub hooks: Arc<dyn Hooks>,
    /// Client key → upstream key, for CancelRequest.
    pub cancels: CancelMap,
    /// The proxy's counters (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Answers SSLRequest with `S` and runs the handshake, when TLS is configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// TLS to the server (`upstream_sslmode`), `None` for plain.
    pub upstream_tls: Option<crate::tls::UpstreamTls>,
    /// Where the sessions' timeouts sleep (the event loops have no time driver).
    pub timers: Timers,
}

/// Shutdown signals a session listens to.
#[derive(Clone, Default)]
pub struct Shutdown {
    /// End the session at its next idle point.
    pub drain: Arc<StopSignal>,
    /// End the session now.
    pub force: Arc<StopSignal>,
}

/// A signal a busy session looks at for the price of one atomic load each time it runs
/// out of work (a `CancellationToken` takes two locks there: every wakeup of every
/// session would pay them). A session registers its waker once, with the first look.
#[derive(Debug, Default)]
pub struct StopSignal {
    fired: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    /// Fires the signal: every session sees it at its next look, and idle ones are woken.
    pub fn fire(&self) {
        // Set before the wakeups, so a session woken by one sees it.
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// A session's watch on it, made when the session starts (it gets the wakeup even
    /// before it is first looked at).
    fn waiter(&self) -> Waiter<'_> {
        Waiter {
            signal: self,
            notified: Box::pin(self.notify.notified()),
            registered: false,
        }
    }
}

/// One session's watch on a [`StopSignal`].
struct Waiter<'a> {
    signal: &'a StopSignal,
    notified: Pin<Box<tokio::sync::futures::Notified<'a>>>,
    registered: bool,
}

impl Waiter<'_> {
    /// Whether the signal fired; the first look registers the task's waker.
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.signal.fired.load(Ordering::SeqCst) {
            return true;
        }
        if !self.registered {
            self.registered = true;
            // The waker stays registered until the signal fires (one task, one waker).
            return self.notified.as_mut().poll(cx).is_ready()
                || self.signal.fired.load(Ordering::SeqCst);
        }
        false
    }
}

/// Why a session ended abnormally (logged; the client was told where possible).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// IO on the client socket failed.
    #[error("client io: {0}")]
    ClientIo(std::io::Error),
    /// IO on the upstream socket failed.
    #[error("upstream io: {0}")]
    UpstreamIo(std::io::Error),
    /// The client broke the protocol.
    #[error("client protocol: {0}")]
    ClientProtocol(FrameError),
    /// The server broke the protocol as far as the proxy can tell.
    #[error("upstream protocol: {0}")]
    UpstreamProtocol(FrameError),
    /// The server could not be reached.
    #[error("cannot connect to upstream: {0}")]
    Connect(std::io::Error),
    /// The client sent no startup packet in time.
    #[error("startup timeout")]
    StartupTimeout,
    /// The TLS handshake with the client failed.
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
}

/// Runs one client session to its end. Never panics on input; errors are logged here.
///
/// Startup runs inside `span`; the relay loop does not enter it on every poll (a
/// subscriber call per wakeup, measured at 5% of the proxy's instructions per
/// transaction): the relay and the policy log in it by naming it as the parent.
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: Shutdown,
    span: tracing::Span,
) {
    let _ = client.set_nodelay(true);
    let _open = shared.metrics.session();
    let opened = open(ClientStream::Plain(client), peer, &shared)
        .instrument(span.clone())
        .await;
    let result = match opened {
        Ok(Some(session)) => session.relay(&shared, &stop).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => debug!(parent: &span, "session ended"),
        Err(e) => info!(parent: &span, error = %e, "session ended"),
    }
}

/// A session past startup: both sockets connected, the StartupMessage forwarded.
struct Opened {
    client: ClientStream,
    upstream: upstream::UpstreamStream,
    relay: Relay,
    /// What the client sent after its startup packet.
    cbuf: BytesMut,
}

impl Opened {
    /// Relays until the session ends, then closes both sides as [`End`] says.
    async fn relay(self, shared: &Shared, stop: &Shutdown) -> Result<(), SessionError> {
        let Opened {
            mut client,
            upstream,
            relay,
            cbuf,
        } = self;
        // Plain TCP splits without a lock; a TLS stream is one state machine and needs one.
        match (&mut client, upstream) {
            (ClientStream::Plain(tcp), upstream::UpstreamStream::Tcp(mut up)) => {
                let (client_r, client_w) = tcp.split();
                let (up_r, up_w) = up.split();
                Io::new(client_r, client_w, up_r, up_w, cbuf)
                    .relay_loop(relay, shared, stop)
                    .await
            }
            (ClientStream::Plain(tcp), upstream) => {
                let (client_r, client_w) = tcp.split();
                let (up_r, up_w) = tokio::io::split(upstream);
                Io::new(client_r, client_w, up_r, up_w, cbuf)
                    .relay_loop(relay, shared, stop)
                    .await
            }
            (ClientStream::Tls(tls), upstream) => {
                let (client_r, client_w) = tokio::io::split(tls.as_mut());
                let (up_r, up_w) = tokio::io::split(upstream);
                Io::new(client_r, client_w, up_r, up_w, cbuf)
                    .relay_loop(relay, shared, stop)
                    .await
            }
        }
    }
}

/// Startup: answers the pre-startup packets, forwards a CancelRequest (`Ok(None)`), or
/// connects upstream and forwards the StartupMessage.
async fn open(
    mut client: ClientStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<Option<Opened>, SessionError> {
    let mut cbuf = BytesMut::with_capacity(8 * 1024);
    let startup = loop {
        let step = shared
            .timers
            .timeout(
                STARTUP_TIMEOUT,
                startup(&mut client, &mut cbuf, shared.tls.is_some()),
            )
            .await;
        match step {
            Err(_) => return Err(SessionError::StartupTimeout),
            Ok(Err(SessionError::ClientProtocol(e))) => {
                let error = match e {
                    // PostgreSQL's answer to a protocol it does not speak.
                    FrameError::UnsupportedProtocol(_) => {
                        ErrorFields::fatal(SqlState::FEATURE_NOT_SUPPORTED, format!("pgbelay: {e}"))
                    }
                    _ => ErrorFields::fatal(
                        SqlState::PROTOCOL_VIOLATION,
                        format!("pgbelay: invalid startup packet: {e}"),
                    ),
                };
                let _ = client.write_all(error.to_frame().bytes()).await;
                return Err(SessionError::ClientProtocol(e));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Startup::Packet(packet))) => break packet,
            Ok(Ok(Startup::Tls)) => {
                let (ClientStream::Plain(tcp), Some(acceptor)) = (client, &shared.tls) else {
                    return Err(SessionError::ClientProtocol(FrameError::Malformed(
                        "SSLRequest",
                    )));
                };
                let handshake = shared.timers.timeout(STARTUP_TIMEOUT, acceptor.accept(tcp));
                client = match handshake.await {
                    Ok(Ok(tls)) => ClientStream::Tls(Box::new(tls)),
                    Ok(Err(e)) => return Err(SessionError::Tls(e)),
                    Err(_) => return Err(SessionError::StartupTimeout),
                };
            }
        }
    };
    let (params, raw) = match startup {
        StartupPacket::CancelRequest { pid, secret } => {
            match shared.cancels.lookup(pid, &secret) {
                Some(key) => {
                    info!(pid, "forwarding cancel request");
                    cancel::forward_cancel(&key, &shared.timers)
                        .await
                        .map_err(SessionError::UpstreamIo)?;
                }
                None => info!(pid, "cancel request for an unknown key ignored"),
            }
            return Ok(None);
        }
        StartupPacket::Startup { params, raw, .. } => (params, raw),
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => return Ok(None),
    };

    let info = session_info(&params, peer);
    let span = tracing::Span::current();
    span.record("user", info.user.as_str());
    span.record("database", info.database.as_str());
    span.record("application_name", info.application_name.as_str());
    span.record("tls", matches!(client, ClientStream::Tls(_)));

    let upstream_tls = shared.upstream_tls.as_ref();
    let mut upstream =
        match upstream::connect_session(&shared.settings.upstream, upstream_tls).await {
            Ok(u) => u,
            Err(e) => {
                shared.metrics.upstream_connect_error();
                warn!(error = %e, upstream = %shared.settings.upstream, "upstream connect failed");
                let error = ErrorFields::fatal(
                    SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                    format!("pgbelay: cannot connect to the server: {e}"),
                );
                let _ = client.write_all(error.to_frame().bytes()).await;
                return Err(SessionError::Connect(e));
            }
        };
    upstream
        .write_all(&raw)
        .await
        .map_err(SessionError::UpstreamIo)?;

    let hooks = shared.hooks.session(&info);
    let relay = Relay::new(info, hooks, shared.metrics.clone()).in_span(span);
    Ok(Some(Opened {
        client,
        upstream,
        relay,
        cbuf,
    }))
}

/// What the startup phase read.
enum Startup {
    /// A StartupMessage or CancelRequest (or the client left).
    Packet(StartupPacket),
    /// An SSLRequest, answered `S`: the TLS handshake comes next.
    Tls,
}

/// Reads startup packets, answering GSSENCRequest `N` and SSLRequest `S` when TLS is
/// configured (once) or `N`, until a StartupMessage or CancelRequest arrives.
async fn startup(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    tls: bool,
) -> Result<Startup, SessionError> {
    loop {
        match StartupPacket::split(buf).map_err(SessionError::ClientProtocol)? {
            Some(StartupPacket::SslRequest) if tls && matches!(client, ClientStream::Plain(_)) => {
                // Bytes sent after the SSLRequest but before the handshake would be read
                // as if they had come encrypted (CVE-2021-23214): refuse them.
                if !buf.is_empty() {
                    return Err(SessionError::ClientProtocol(FrameError::Malformed(
                        "data after SSLRequest",
                    )));
                }
                client
                    .write_all(b"S")
                    .await
                    .map_err(SessionError::ClientIo)?;
                return Ok(Startup::Tls);
            }
            Some(StartupPacket::SslRequest) if matches!(client, ClientStream::Tls(_)) => {
                return Err(SessionError::ClientProtocol(FrameError::Malformed(
                    "SSLRequest inside TLS",
                )));
            }
            Some(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {
                client
                    .write_all(b"N")
                    .await
                    .map_err(SessionError::ClientIo)?;
            }
            Some(packet) => return Ok(Startup::Packet(packet)),
            None => {
                let n = client.read_buf(buf).await.map_err(SessionError::ClientIo)?;
                if n == 0 {
                    // Closed before startup (port probes, health checks).
                    return Ok(Startup::Packet(StartupPacket::SslRequest));
                }
            }
        }
    }
}

fn session_info(params: &[(String, String)], peer: SocketAddr) -> SessionInfo {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user = get("user").unwrap_or_default();
    SessionInfo {
        database: get("database").unwrap_or_else(|| user.clone()),
        application_name: get("application_name").unwrap_or_default(),
        client_encoding: get("client_encoding").unwrap_or_else(|| "UTF8".into()),
        client_addr: peer.ip().to_string(),
        user,
        ..SessionInfo::default()
    }
}

struct Io<CR, CW, UR, UW> {
    client_r: CR,
    client_w: CW,
    up_r: UR,
    up_w: UW,
    cbuf: BytesMut,
    ubuf: BytesMut,
}

impl<CR, CW, UR, UW> Io<CR, CW, UR, UW> {
    /// Both sides' halves; `cbuf` holds what the client sent after its startup packet.
    fn new(client_r: CR, client_w: CW, up_r: UR, up_w: UW, cbuf: BytesMut) -> Self {
        Io {
            client_r,
            client_w,
            up_r,
            up_w,
            cbuf,
            ubuf: BytesMut::with_capacity(16 * 1024),
        }
    }
}

/// Writes from the front of `buf` and advances past what was written: one `send` of the
/// buffer's single chunk (`poll_write_buf` issues `writev` on a socket, for one iovec;
/// not measured apart from the rest of that change, the same syscall count either way).
fn poll_send<W: AsyncWrite>(
    w: Pin<&mut W>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    let n = std::task::ready!(w.poll_write(cx, buf))?;
    buf.advance(n);
    Poll::Ready(Ok(n))
}

/// Runs `f`, recording how long it took as proxy-added latency.
fn timed<T>(metrics: &crate::metrics::Metrics, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let result = f();
    metrics.latency(start.elapsed());
    result
}

/// The sources that returned `Pending` in one call of `poll_relay`: their wakers are
/// registered, so they are not polled again until the task is woken.
#[derive(Default)]
struct Stalled {
    client_read: bool,
    upstream_read: bool,
    client_write: bool,
    upstream_write: bool,
}

/// How the relay loop ended.
enum End {
    /// Orderly: flush what is due to both sides, then close.
    Flush,
    /// The client is gone: close upstream at once (no transaction may linger).
    ClientGone,
    /// The server is gone: tell the client (unless it already knows) and close.
    UpstreamGone,
}

impl<CR, CW, UR, UW> Io<CR, CW, UR, UW>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    async fn relay_loop(
        &mut self,
        mut relay: Relay,
        shared: &Shared,
        stop: &Shutdown,
    ) -> Result<(), SessionError> {
        let mut registration = None;
        let (mut drain, mut force) = (stop.drain.waiter(), stop.force.waiter());
        let (end, result) = std::future::poll_fn(|cx| {
            self.poll_relay(
                cx,
                &mut relay,
                shared,
                &mut registration,
                (&mut drain, &mut force),
            )
        })
        .await;
        self.finish(end, &mut relay, &shared.timers).await;
        result
    }

    /// Moves bytes until nothing can move: output already due is written first, then both
    /// sides are read (a side not while more than [`BACKPRESSURE`] waits for the other),
    /// then round again to write what that produced.
    /// A source that returned `Pending` is not polled again in the same call (its waker is
    /// registered). Returns `Pending` only after every source it depends on was polled,
    /// and looks at the shutdown signals only then, so a busy session pays for neither a
    /// `select!` per message nor the shutdown checks.
    fn poll_relay(
        &mut self,
        cx: &mut Context<'_>,
        relay: &mut Relay,
        shared: &Shared,
        registration: &mut Option<cancel::Registration>,
        (drain, force): (&mut Waiter<'_>, &mut Waiter<'_>),
    ) -> Poll<(End, Result<(), SessionError>)> {
        let mut stalled = Stalled::default();
        loop {
            if relay.phase == Phase::Draining && relay.is_idle() {
                relay
                    .to_client
                    .extend_from_slice(shutdown_error().to_frame().bytes());
                return Poll::Ready((End::Flush, Ok(())));
            }
            // Another round is needed when input was read (it may have produced output)
            // or a write left bytes behind (the next one registers for writability).
            let mut again = false;
            if !relay.to_upstream.is_empty() && !stalled.upstream_write {
                match poll_send(Pin::new(&mut self.up_w), cx, &mut relay.to_upstream) {
                    Poll::Ready(Ok(0)) => {
                        let e = SessionError::UpstreamIo(std::io::ErrorKind::WriteZero.into());
                        return Poll::Ready((End::UpstreamGone, Err(e)));
                    }
                    Poll::Ready(Ok(_)) => again |= !relay.to_upstream.is_empty(),
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready((End::UpstreamGone, Err(SessionError::UpstreamIo(e))));
                    }
                    Poll::Pending => stalled.upstream_write = true,
                }
            }
            if !relay.to_client.is_empty() && !stalled.client_write {
                match poll_send(Pin::new(&mut self.client_w), cx, &mut relay.to_client) {
                    Poll::Ready(Ok(0)) => {
                        let e = SessionError::ClientIo(std::io::ErrorKind::WriteZero.into());
                        return Poll::Ready((End::ClientGone, Err(e)));
                    }
                    Poll::Ready(Ok(_)) => again |= !relay.to_client.is_empty(),
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready((End::ClientGone, Err(SessionError::ClientIo(e))));
                    }
                    Poll::Pending => stalled.client_write = true,
                }
            }
            // Both sides are read before the output goes: written at once, a send wakes
            // the peer, which at 16 clients preempted the loop before it read the other
            // side (context switches per select-only extended transaction 0.76-0.98
            // against 0.66-0.78; at one client the other side's poll ahead of the send
            // costs ~70 instructions).
            if !stalled.client_read {
                match self.poll_client(cx, relay, shared, &mut stalled) {
                    Poll::Ready(Some(end)) => return Poll::Ready(end),
                    Poll::Ready(None) => again = true,
                    Poll::Pending => {}
                }
            }
            if !stalled.upstream_read {
                match self.poll_upstream(cx, relay, shared, registration, &mut stalled) {
                    Poll::Ready(Some(end)) => return Poll::Ready(end),
                    Poll::Ready(None) => again = true,
                    Poll::Pending => {}
                }
            }
            if again {
                continue;
            }
            // `force` fires only after `drain` (when the shutdown timeout runs out), so a
            // session watches one token at a time.
            if relay.phase == Phase::Ready && drain.fired(cx) {
                relay.phase = Phase::Draining;
                continue;
            }
            if relay.phase != Phase::Ready && force.fired(cx) {
                relay
                    .to_client
                    .extend_from_slice(shutdown_error().to_frame().bytes());
                return Poll::Ready((End::ClientGone, Ok(())));
            }
            return Poll::Pending;
        }
    }

    /// Reads what the client sent and hands it to the relay: `Ready(None)` when input was
    /// handled, `Ready(Some(end))` when the session ends, `Pending` when nothing was read
    /// (the source is then marked stalled; so is it while the other side is backed up).
    fn poll_client(
        &mut self,
        cx: &mut Context<'_>,
        relay: &mut Relay,
        shared: &Shared,
        stalled: &mut Stalled,
    ) -> Poll<Option<(End, Result<(), SessionError>)>> {
        if relay.to_upstream.len() >= BACKPRESSURE {
            return Poll::Pending;
        }
        match poll_read_buf(Pin::new(&mut self.client_r), cx, &mut self.cbuf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Some((End::ClientGone, Ok(())))),
            Poll::Ready(Err(e)) => {
                Poll::Ready(Some((End::ClientGone, Err(SessionError::ClientIo(e)))))
            }
            Poll::Ready(Ok(_)) => {
                match timed(&shared.metrics, || relay.client_bytes(&mut self.cbuf)) {
                    Ok(Flow::Continue) => Poll::Ready(None),
                    Ok(Flow::Close) => Poll::Ready(Some((End::Flush, Ok(())))),
                    Err(e) => {
                        let error = ErrorFields::fatal(
                            SqlState::PROTOCOL_VIOLATION,
                            format!("pgbelay: invalid message from client: {e}"),
                        );
                        relay.to_client.extend_from_slice(error.to_frame().bytes());
                        let e = SessionError::ClientProtocol(e);
                        Poll::Ready(Some((End::ClientGone, Err(e))))
                    }
                }
            }
            Poll::Pending => {
                stalled.client_read = true;
                Poll::Pending
            }
        }
    }

    /// Reads what the server sent and hands it to the relay, as [`Io::poll_client`] does.
    fn poll_upstream(
        &mut self,
        cx: &mut Context<'_>,
        relay: &mut Relay,
        shared: &Shared,
        registration: &mut Option<cancel::Registration>,
        stalled: &mut Stalled,
    ) -> Poll<Option<(End, Result<(), SessionError>)>> {
        if relay.to_client.len() >= BACKPRESSURE {
            return Poll::Pending;
        }
        match poll_read_buf(Pin::new(&mut self.up_r), cx, &mut self.ubuf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Some((End::UpstreamGone, Ok(())))),
            Poll::Ready(Err(e)) => {
                Poll::Ready(Some((End::UpstreamGone, Err(SessionError::UpstreamIo(e)))))
            }
            Poll::Ready(Ok(_)) => {
                match upstream_frames(&mut self.ubuf, relay, shared, registration) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => {
                        let e = SessionError::UpstreamProtocol(e);
                        Poll::Ready(Some((End::UpstreamGone, Err(e))))
                    }
                }
            }
            Poll::Pending => {
                stalled.upstream_read = true;
                Poll::Pending
            }
        }
    }

    async fn finish(&mut self, end: End, relay: &mut Relay, timers: &Timers) {
        const LINGER: Duration = Duration::from_secs(5);
        const LINGER_READ: Duration = Duration::from_secs(1);
        match end {
            End::Flush => {
                let _ = timers
                    .timeout(LINGER, self.up_w.write_all(&relay.to_upstream))
                    .await;
            }
            End::ClientGone => {
                // Terminate makes the backend end (and roll back) at once.
                let _ = timers
                    .timeout(
                        LINGER,
                        self.up_w
                            .write_all(crate::wire::encode::terminate().bytes()),
                    )
                    .await;
            }
            End::UpstreamGone => {
                if !relay.upstream_fatal {
                    let error = ErrorFields::fatal(
                        SqlState::CONNECTION_FAILURE,
                        "pgbelay: lost the connection to the server",
                    );
                    relay.to_client.extend_from_slice(error.to_frame().bytes());
                }
            }
        }
        let _ = timers.timeout(LINGER, self.up_w.shutdown()).await;
        let told = timers
            .timeout(LINGER, async {
                self.client_w.write_all(&relay.to_client).await?;
                self.client_w.shutdown().await
            })
            .await;
        if matches!(told, Ok(Ok(()))) {
            // Lingering close: a socket closed with unread input sends RST, and the
            // client's kernel may then drop our last bytes (the FATAL saying why) before
            // the client reads them. A client that sent more meanwhile gets EOF, reads
            // the FATAL, and closes; its input is read and dropped until then.
            let _ = timers
                .timeout(LINGER_READ, async {
                    let mut sink = [0u8; 4096];
                    while matches!(self.client_r.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
        }
    }
}

fn shutdown_error() -> ErrorFields {
    ErrorFields::fatal(
        SqlState::ADMIN_SHUTDOWN,
        "pgbelay: terminating connection because the proxy is shutting down",
    )
}

/// Feeds the server's bytes to the relay; registers the server's cancel key (and gives
/// the client its own) as soon as it arrives.
fn upstream_frames(
    buf: &mut BytesMut,
    relay: &mut Relay,
    shared: &Shared,
    registration: &mut Option<cancel::Registration>,
) -> Result<(), FrameError> {
    relay.upstream_bytes(buf, |relay| {
        let Some((pid, secret)) = relay.upstream_key.clone() else {
            return;
        };
        let reg = shared.cancels.register(UpstreamKey {
            addr: shared.settings.upstream.clone(),
            pid,
            secret,
        });
        let key = reg.client_key();
        relay.client_key = Some((key.pid, key.secret.clone()));
        *registration = Some(reg);
    })
}
