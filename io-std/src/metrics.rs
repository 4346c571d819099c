//! The metrics endpoint every runtime shares: the broker's metrics
//! ([`conveyor_core::metrics`]) and the driver's own (bytes sent by
//! `sendfile`, fsyncs and their latency), served in the Prometheus /
//! OpenMetrics text format at `http://<metrics.listen>/metrics` by one
//! thread of its own.
//!
//! A scrape only reads atomics the broker and the workers write anyway, so
//! it never waits for the broker's thread, and the broker never waits for
//! a scrape.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Stats;

/// What `prepare` set aside for the endpoint: where to listen, and the
/// registry with the broker's metrics and the fsync histogram in it.
#[derive(Debug)]
pub(crate) struct Plan {
    listen: Option<SocketAddr>,
    registry: Registry,
}

/// fsync latency buckets: 50 µs to about 1.6 s, doubling.
pub(crate) fn fsync_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Plan {
    /// `listen` is `metrics.listen` (empty: none); `registry` the broker's,
    /// to which the driver's fsync histogram is added.
    pub(crate) fn new(listen: &str, registry: Option<Registry>, fsync: &Histogram) -> Self {
        let mut registry = registry.unwrap_or_else(|| Registry::with_prefix("conveyor"));
        registry.register(
            "fsync_seconds",
            "fdatasync calls on segment files and how long each took",
            fsync.clone(),
        );
        Self {
            // Checked when the setting was parsed.
            listen: listen.parse().ok(),
            registry,
        }
    }

    /// Serve the metrics with the runtime's `stats`; `None` when
    /// `metrics.listen` is empty. Errors name the address.
    pub(crate) fn serve(self, stats: Arc<Stats>) -> io::Result<Option<MetricsServer>> {
        let Some(listen) = self.listen else {
            return Ok(None);
        };
        let mut registry = self.registry;
        registry.register_collector(Box::new(StatsCollector(stats)));
        let server = tiny_http::Server::http(listen).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("cannot serve metrics on {listen} (metrics.listen): {e}"),
            )
        })?;
        let server = Arc::new(server);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("the metrics server has no IP address"))?;
        let s = Arc::clone(&server);
        let thread = crate::spawn("conveyor-metrics", move || answer(&s, &registry))?;
        tracing::info!(addr = %addr, "metrics endpoint ready at /metrics");
        Ok(Some(MetricsServer {
            addr,
            server,
            thread: Some(thread),
        }))
    }
}

/// The running endpoint; dropping it stops the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the metrics thread panicked");
            }
        }
    }
}

/// Answer requests until the server is unblocked: `GET /metrics` gets the
/// text format, anything else 404 or 405.
fn answer(server: &tiny_http::Server, registry: &Registry) {
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, registry) {
                    Ok(()) => text(200, body, OPENMETRICS),
                    Err(e) => text(500, format!("encoding failed: {e}\n"), "text/plain"),
                }
            }
            (_, "/metrics") => text(405, "GET only\n".into(), "text/plain"),
            _ => text(404, "metrics are at /metrics\n".into(), "text/plain"),
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "metrics response not sent");
        }
    }
}

fn text(status: u16, body: String, kind: &str) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let header =
        tiny_http::Header::from_bytes("Content-Type", kind).expect("a static header is valid");
    tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header)
}

/// The runtime's [`Stats`] as counters, read at each scrape.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let counters = [
            (
                "sendfile_bytes",
                "Record bytes moved from segment files to sockets by sendfile(2), never copied through user space",
                &s.sendfile_bytes,
            ),
            (
                "sends",
                "Responses and other writes to sockets",
                &s.send_calls,
            ),
            (
                "connections_opened",
                "Connections the driver accepted",
                &s.connections,
            ),
            (
                "peer_connects",
                "Connections opened to other brokers",
                &s.connects,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
