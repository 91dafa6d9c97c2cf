//! Observability (SPEC §B12): counters the sessions update, rendered in the Prometheus
//! text format on `metrics_listen`.
//!
//! Plain atomics, no registry crate: a handful of series, updated on the message path, so
//! an increment must cost no more than an atomic add. One [`Metrics`] per proxy (tests run
//! several proxies in one process and scrape each on its own).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.25,
];

/// What the policy did with a Query or Parse message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded as sent.
    Allow,
    /// Rewritten or wrapped (recorded writes, guarded reads).
    Rewrite,
    /// Refused (§A3).
    Refuse,
}

impl Verdict {
    const ALL: [Verdict; 3] = [Verdict::Allow, Verdict::Rewrite, Verdict::Refuse];

    fn label(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Rewrite => "rewrite",
            Verdict::Refuse => "refuse",
        }
    }
}

/// The proxy's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    sessions_open: AtomicI64,
    sessions_total: AtomicU64,
    statements: [AtomicU64; 3],
    refusals: Mutex<BTreeMap<String, u64>>,
    rows_recorded: AtomicU64,
    upstream_connect_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

/// Keeps `sessions_open` up while it lives.
#[derive(Debug)]
pub struct SessionGuard<'a>(&'a Metrics);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.sessions_open.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// A client connected; the session counts as open until the guard drops.
    pub fn session(&self) -> SessionGuard<'_> {
        self.sessions_total.fetch_add(1, Relaxed);
        self.sessions_open.fetch_add(1, Relaxed);
        SessionGuard(self)
    }

    /// One Query or Parse judged; a refusal also counts under its statement class.
    pub fn statement(&self, verdict: Verdict, class: Option<&str>) {
        self.statements[verdict as usize].fetch_add(1, Relaxed);
        if verdict == Verdict::Refuse {
            self.refusal(class);
        }
    }

    /// One refusal of statement class `class`: the proxy's own, or one the server raised
    /// for pgbelay (blast radius, hidden write) in a statement the proxy let through.
    pub fn refusal(&self, class: Option<&str>) {
        let class = class.unwrap_or("unknown").to_string();
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        *refusals.entry(class).or_default() += 1;
    }

    /// Rows a recorded write changed (its command tag's count).
    pub fn rows_recorded(&self, rows: u64) {
        self.rows_recorded.fetch_add(rows, Relaxed);
    }

    /// The server could not be reached for a new session.
    pub fn upstream_connect_error(&self) {
        self.upstream_connect_errors.fetch_add(1, Relaxed);
    }

    /// Time the proxy spent on a batch of client messages before queueing them upstream.
    pub fn latency(&self, spent: Duration) {
        let seconds = spent.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "pgbelay_sessions_open",
            "gauge",
            "Client sessions open now.",
        );
        let _ = writeln!(
            out,
            "pgbelay_sessions_open {}",
            self.sessions_open.load(Relaxed)
        );
        family(
            &mut out,
            "pgbelay_sessions_total",
            "counter",
            "Client sessions accepted.",
        );
        let _ = writeln!(
            out,
            "pgbelay_sessions_total {}",
            self.sessions_total.load(Relaxed)
        );
        family(
            &mut out,
            "pgbelay_statements_total",
            "counter",
            "Query and Parse messages judged, by verdict.",
        );
        for v in Verdict::ALL {
            let _ = writeln!(
                out,
                "pgbelay_statements_total{{verdict=\"{}\"}} {}",
                v.label(),
                self.statements[v as usize].load(Relaxed)
            );
        }
        family(
            &mut out,
            "pgbelay_refusals_total",
            "counter",
            "Refused statements, by statement class.",
        );
        for (class, n) in self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "pgbelay_refusals_total{{class=\"{}\"}} {n}",
                escape_label(class)
            );
        }
        family(
            &mut out,
            "pgbelay_rows_recorded_total",
            "counter",
            "Rows changed by recorded writes, as their command tags report.",
        );
        let _ = writeln!(
            out,
            "pgbelay_rows_recorded_total {}",
            self.rows_recorded.load(Relaxed)
        );
        family(
            &mut out,
            "pgbelay_upstream_connect_errors_total",
            "counter",
            "Sessions that could not reach the server.",
        );
        let _ = writeln!(
            out,
            "pgbelay_upstream_connect_errors_total {}",
            self.upstream_connect_errors.load(Relaxed)
        );
        family(
            &mut out,
            "pgbelay_proxy_latency_seconds",
            "histogram",
            "Time the proxy spends on a read of client messages (decode, policy, rewrite) before queueing them upstream.",
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "pgbelay_proxy_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "pgbelay_proxy_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = Duration::from_nanos(self.latency_sum_nanos.load(Relaxed)).as_secs_f64();
        let _ = writeln!(out, "pgbelay_proxy_latency_seconds_sum {sum}");
        let _ = writeln!(out, "pgbelay_proxy_latency_seconds_count {count}");
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The statement class named in a refusal's DETAIL (`statement class: drop`).
pub fn refusal_class(detail: Option<&str>) -> Option<&str> {
    detail?.strip_prefix("statement class: ")
}

/// Serves `GET /metrics` on `listener` until `shutdown`: one response per connection,
/// HTTP/1.0 style (`Connection: close`), enough for Prometheus and curl.
pub async fn serve(
    listener: TcpListener,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(stream, &metrics).await {
                        tracing::debug!(%peer, error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    const MAX_REQUEST: usize = 8 * 1024;
    let mut request = Vec::with_capacity(512);
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            if stream.read_buf(&mut request).await? == 0 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", metrics.render()),
        (Some(b"GET"), _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn renders_every_family_with_its_series() {
        let m = Metrics::default();
        let guard = m.session();
        m.statement(Verdict::Allow, None);
        m.statement(Verdict::Refuse, Some("drop"));
        m.statement(Verdict::Refuse, Some("drop"));
        m.rows_recorded(4);
        m.latency(Duration::from_micros(30));
        m.latency(Duration::from_secs(1));
        let text = m.render();
        for line in [
            "pgbelay_sessions_open 1",
            "pgbelay_sessions_total 1",
            "pgbelay_statements_total{verdict=\"allow\"} 1",
            "pgbelay_statements_total{verdict=\"rewrite\"} 0",
            "pgbelay_statements_total{verdict=\"refuse\"} 2",
            "pgbelay_refusals_total{class=\"drop\"} 2",
            "pgbelay_rows_recorded_total 4",
            "pgbelay_proxy_latency_seconds_bucket{le=\"0.00005\"} 1",
            "pgbelay_proxy_latency_seconds_bucket{le=\"+Inf\"} 2",
            "pgbelay_proxy_latency_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        drop(guard);
        assert!(m.render().lines().any(|l| l == "pgbelay_sessions_open 0"));
    }

    #[test]
    fn refusal_class_comes_from_the_detail() {
        assert_eq!(refusal_class(Some("statement class: drop")), Some("drop"));
        assert_eq!(refusal_class(Some("other")), None);
        assert_eq!(refusal_class(None), None);
    }
}
