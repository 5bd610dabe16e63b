//! The HTTP API of Xuefen.
//!
//! [`router`] builds the axum application over any [`Store`]; [`serve`] runs
//! it on a listener the caller bound, until a shutdown future resolves. The
//! API crate depends on the store trait only; the binary picks the backend.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bank;
mod batch_contract;
pub mod body;
pub mod commit;
mod contract;
mod decimal;
pub mod dto;
#[doc(hidden)]
pub mod fuzz;
mod guard;
pub mod metrics;
pub mod openapi;
mod pages;
pub mod problem;
mod routes;
pub mod server;
pub mod sso;
pub mod telemetry;
pub mod throttle;
pub mod xapi;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use xuefen_store::Store;

pub use commit::{CommitSettings, Committer};
pub use metrics::Metrics;
pub use server::{ServeSettings, serve_router_with};
pub use throttle::RequestBounds;

/// Limits on what a request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events in one `POST /v1/events`.
    pub batch_events_max: usize,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
}

/// Most transcript lines in one page (`limit`), and the default.
pub const PAGE_SIZE_MAX: usize = 500;
pub const PAGE_SIZE_DEFAULT: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch_events_max: 1_000,
            body_bytes_max: 2 * 1024 * 1024,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub committer: Committer,
    pub limits: Limits,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// The HMAC key under which identity document numbers are hashed.
    pub identity_key: Arc<[u8]>,
    /// Recently authenticated keys.
    pub key_cache: Arc<auth::KeyCache>,
    /// Verifies learners' single sign-on tokens (`/v1/me/...`); without
    /// it those routes answer 503.
    pub sso: Option<Arc<sso::SsoVerifier>>,
    /// How the alliance statistics count and what the agreement asks.
    pub stats: StatsSettings,
    /// The checkpoint signing key and the checkpointer's schedule.
    pub checkpoints: bank::CheckpointSettings,
    /// Body-read and request timeouts, and the per-key rate.
    pub bounds: RequestBounds,
    /// Per-key token buckets at `bounds`' rate.
    pub rate: Arc<throttle::RateLimiter>,
}

/// The learning-star rule and the agreement figures a site is measured
/// against (per site and calendar year).
#[derive(Debug, Clone, Copy)]
pub struct StatsSettings {
    pub rule: xuefen_store::StatsRule,
    /// New registrations/activations a site must bring each year.
    pub registrations_min: u64,
    /// Learning-star awards a site must make each year.
    pub learning_stars_min: u64,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            rule: xuefen_store::StatsRule {
                credits_each: xuefen_core::amount::Credits::from_cents(20_00),
                star_credits: xuefen_core::amount::Credits::from_cents(30_00),
            },
            registrations_min: 1_000,
            learning_stars_min: 50,
        }
    }
}

impl AppState {
    /// State over `store`, starting the group committer on the current runtime.
    pub fn new(store: Arc<dyn Store>, limits: Limits, commit: CommitSettings, identity_key: Vec<u8>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let committer = Committer::start_with_metrics(store.clone(), commit, metrics.clone());
        Self {
            store,
            committer,
            limits,
            metrics,
            identity_key: identity_key.into(),
            key_cache: Arc::new(auth::KeyCache::new(Self::KEY_CACHE_TTL)),
            sso: None,
            stats: StatsSettings::default(),
            checkpoints: bank::CheckpointSettings::ephemeral(),
            bounds: RequestBounds::default(),
            rate: Arc::new(throttle::RateLimiter::new(&RequestBounds::default())),
        }
    }

    /// The same state, with these timeouts and this per-key rate.
    pub fn with_bounds(mut self, bounds: RequestBounds) -> Self {
        self.bounds = bounds;
        self.rate = Arc::new(throttle::RateLimiter::new(&bounds));
        self
    }

    /// How long an authenticated key is remembered by default.
    pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Remembers authenticated keys for `ttl` (zero: look every key up).
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_cache = Arc::new(auth::KeyCache::new(ttl));
        self
    }

    /// The same state, with these statistics settings.
    pub fn with_stats(mut self, stats: StatsSettings) -> Self {
        self.stats = stats;
        self
    }

    /// The same state, verifying learner tokens with `verifier`.
    pub fn with_sso(mut self, verifier: sso::SsoVerifier) -> Self {
        self.sso = Some(Arc::new(verifier));
        self
    }
}

/// The application with all its routes and layers, `/metrics` included.
pub fn router(state: AppState) -> Router {
    with_layers(routes::routes().merge(metrics_routes()), state)
}

/// The application without `/metrics`, for when metrics have a listener of
/// their own (see [`metrics_router`]).
pub fn api_router(state: AppState) -> Router {
    with_layers(routes::routes(), state)
}

/// `/metrics` alone, for a listener that only the scraper can reach.
pub fn metrics_router(state: AppState) -> Router {
    metrics_routes().with_state(state)
}

fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics::metrics))
}

/// Body limit, request metrics (labelled by route template, so they sit
/// inside the router) and the request span around everything.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.limits.body_bytes_max;
    routes
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            guard::refuse_long_content_length,
        ))
        .layer(axum::middleware::from_fn(guard::refuse_nul_in_uri))
        .layer(axum::middleware::from_fn_with_state(
            state.bounds,
            throttle::bound_request,
        ))
        .layer(axum::middleware::from_fn(guard::errors_as_problems))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_response(telemetry::on_response),
        )
        .with_state(state)
}

/// Any path no route matches: a problem like every other error.
async fn not_found() -> problem::Problem {
    problem::Problem::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such resource")
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight (and so their group commits) before returning.
/// The checkpointer runs alongside for as long as the server does.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let checkpointer = bank::Checkpointer::start(&state);
    let served = serve_router(listener, router(state), shutdown).await;
    checkpointer.stop().await;
    served
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight: the listener closes at once, so new connections
/// are refused while the last responses are written.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router_with(listener, router, shutdown, ServeSettings::default()).await
}
