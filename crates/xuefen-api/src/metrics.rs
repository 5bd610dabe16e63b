//! Prometheus metrics: what the service counts and how `/metrics` shows it.
//!
//! One [`Metrics`] registry lives in the application state. Requests are
//! counted by [`track`], a middleware labelled with the matched route
//! template (never the raw path, so label values stay few); the group
//! committer records batch sizes, commit latency and event outcomes; chain
//! heads and pool saturation are read from the store when `/metrics` is
//! scraped. The exposition is OpenMetrics text, which Prometheus scrapes
//! natively. `ops/grafana/` charts these names and a test checks that every
//! name the dashboard queries is present in a real scrape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use xuefen_core::plan::Outcome;
use xuefen_store::Store;

use crate::AppState;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 1 ms to about 16 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0,
];

/// Batch-size buckets in events (or requests) per group commit.
const SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainLabels {
    chain: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the service, registered once.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    commit: CommitMetrics,
    scraped: ScrapedMetrics,
}

/// Registers `metric` under `name` and hands it back to be kept.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// What the request middleware counts.
struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: HistogramFamily<HttpLabels>,
    in_flight: Gauge,
}

impl HttpMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            requests: registered(
                r,
                "xuefen_http_requests",
                "HTTP requests answered, by method, route template and status",
                Family::default(),
            ),
            duration: registered(
                r,
                "xuefen_http_request_duration_seconds",
                "Time from request to response head, by method, route template and status",
                Family::new_with_constructor(latency_histogram),
            ),
            in_flight: registered(
                r,
                "xuefen_http_requests_in_flight",
                "Requests being served now",
                Gauge::default(),
            ),
        }
    }
}

/// What the group committer records.
struct CommitMetrics {
    events: Family<OutcomeLabels, Counter>,
    batch_events: Histogram,
    batch_requests: Histogram,
    duration: HistogramFamily<ResultLabels>,
}

impl CommitMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            events: registered(
                r,
                "xuefen_events",
                "Events judged, by outcome (accepted, duplicate, conflict, rejected); rejected includes batch items that could not be parsed",
                Family::default(),
            ),
            batch_events: registered(
                r,
                "xuefen_commit_batch_events",
                "Events written by one group-commit transaction",
                Histogram::new(SIZE_BUCKETS),
            ),
            batch_requests: registered(
                r,
                "xuefen_commit_batch_requests",
                "Requests sharing one group-commit transaction",
                Histogram::new(SIZE_BUCKETS),
            ),
            duration: registered(
                r,
                "xuefen_commit_duration_seconds",
                "Time one group-commit transaction took, by result (ok, error)",
                Family::new_with_constructor(latency_histogram),
            ),
        }
    }
}

/// The gauges read from the store when `/metrics` is scraped, and the
/// feed's cursor.
struct ScrapedMetrics {
    chain_head: Family<ChainLabels, Gauge>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_connections_max: Gauge,
    deposits_read: Gauge,
    deposits_published: Gauge,
    checkpoint_number: Gauge,
    checkpoint_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ScrapedMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            chain_head: registered(
                r,
                "xuefen_chain_head_seq",
                "Sequence number of each chain's head (entries in the chain), read at scrape time",
                Family::default(),
            ),
            pool_connections: registered(
                r,
                "xuefen_db_pool_connections",
                "Database pool connections by state (in_use, idle), read at scrape time",
                Family::default(),
            ),
            pool_connections_max: registered(
                r,
                "xuefen_db_pool_connections_max",
                "The most connections the database pool may open",
                Gauge::default(),
            ),
            deposits_read: registered(
                r,
                "xuefen_deposits_read",
                "Highest log index (cursor) this instance has served to the credit bank's feed",
                Gauge::default(),
            ),
            deposits_published: registered(
                r,
                "xuefen_deposits_published",
                "Entries in the log under the latest checkpoint (the feed's end, a log index), read at scrape time",
                Gauge::default(),
            ),
            checkpoint_number: registered(
                r,
                "xuefen_checkpoint_latest",
                "Size of the log under the latest signed checkpoint, read at scrape time",
                Gauge::default(),
            ),
            checkpoint_age: registered(
                r,
                "xuefen_checkpoint_age_seconds",
                "Seconds since the latest signed checkpoint was made, read at scrape time",
                Gauge::default(),
            ),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let commit = CommitMetrics::register(&mut registry);
        let scraped = ScrapedMetrics::register(&mut registry);
        Self {
            registry,
            http,
            commit,
            scraped,
        }
    }

    /// Records that the feed served deposits up to `number` (a page's last).
    /// The gauge only rises: a replayed older page does not lower it.
    pub fn deposits_served(&self, number: u64) {
        let number = i64::try_from(number).unwrap_or(i64::MAX);
        self.scraped
            .deposits_read
            .inner()
            .fetch_max(number, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts events that never reached the ledger because they could not be
    /// parsed (each gets a `rejected` result in its batch).
    pub fn events_rejected_unparsed(&self, count: usize) {
        if count > 0 {
            self.commit
                .events
                .get_or_create(&OutcomeLabels { outcome: "rejected" })
                .inc_by(count as u64);
        }
    }

    fn http_done(&self, method: &str, route: &str, status: StatusCode, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.as_u16(),
        };
        self.http.requests.get_or_create(&labels).inc();
        self.http.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records one group commit: its size, how long it took and, when it
    /// committed, the outcome of each event.
    pub fn commit_done(&self, requests: usize, outcomes: Option<&[Outcome]>, events: usize, elapsed: Duration) {
        self.commit.batch_events.observe(events as f64);
        self.commit.batch_requests.observe(requests as f64);
        let result = if outcomes.is_some() { "ok" } else { "error" };
        self.commit
            .duration
            .get_or_create(&ResultLabels { result })
            .observe(elapsed.as_secs_f64());
        for outcome in outcomes.unwrap_or_default() {
            let outcome = match outcome {
                Outcome::Accepted { .. } => "accepted",
                Outcome::Duplicate { .. } => "duplicate",
                Outcome::Conflict { .. } => "conflict",
                Outcome::Rejected(_) => "rejected",
            };
            self.commit.events.get_or_create(&OutcomeLabels { outcome }).inc();
        }
    }

    /// Reads the gauges that live in the store, then encodes everything.
    pub async fn render(&self, store: &dyn Store) -> String {
        let pool = store.pool_stats();
        self.scraped
            .pool_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(pool.in_use()));
        self.scraped
            .pool_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(pool.idle));
        self.scraped.pool_connections_max.set(i64::from(pool.max));
        match store.heads().await {
            Ok(heads) => {
                for (chain, head) in heads {
                    self.scraped
                        .chain_head
                        .get_or_create(&ChainLabels { chain })
                        .set(i64::try_from(head.seq).unwrap_or(i64::MAX));
                }
            }
            // A scrape still shows everything else; the stale heads keep their last value.
            Err(e) => tracing::warn!(error = %e, "metrics: could not read chain heads"),
        }
        match store.log_head().await {
            Ok(Some(latest)) => {
                self.scraped
                    .deposits_published
                    .set(i64::try_from(latest.size).unwrap_or(i64::MAX));
                self.scraped
                    .checkpoint_number
                    .set(i64::try_from(latest.size).unwrap_or(i64::MAX));
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                self.scraped
                    .checkpoint_age
                    .set(now_ms.saturating_sub(latest.created_at_ms).max(0) as f64 / 1000.0);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "metrics: could not read the latest checkpoint"),
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// Counts and times every request under its route template. Requests that
/// match no route are labelled `unmatched`, so probing random paths cannot
/// grow the label set.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Unknown (extension) methods are folded into one label value.
    let method = match *req.method() {
        Method::GET | Method::PUT | Method::POST | Method::DELETE | Method::HEAD | Method::OPTIONS | Method::PATCH => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let in_flight = InFlight::enter(&metrics.http.in_flight);
    let resp = next.run(req).await;
    drop(in_flight);
    metrics.http_done(&method, &route, resp.status(), started.elapsed());
    resp
}

/// Counts a request in flight until dropped, also when the client goes
/// away and the request future is dropped mid-way.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The Prometheus scrape: request rates and latencies, event outcomes,
/// group-commit sizes and latency, chain heads, pool saturation.
#[utoipa::path(get, path = "/metrics", operation_id = "get_metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&*state.store).await;
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}
