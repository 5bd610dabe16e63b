//! The HTTP API of Xuefen.
//!
//! [`router`] builds the axum application over any [`ServiceStore`](xuefen_store::ServiceStore); [`serve`] runs
//! it on a listener the caller bound, until a shutdown future resolves. The
//! API crate depends on the store trait only; the binary picks the backend.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bank;
mod batch_contract;
pub mod body;
pub mod commit;
mod contract;
mod courses;
mod decimal;
pub mod event_status;
#[doc(hidden)]
pub mod fuzz;
mod guard;
mod keys;
mod learners;
mod ledger;
pub mod metrics;
mod names;
pub mod openapi;
mod ops;
mod pages;
pub mod problem;
pub mod problem_code;
pub mod pseudonyms;
mod recognition;
mod record;
pub mod roles;
mod routes;
pub mod server;
mod sites;
pub mod sso;
mod state;
mod stats;
pub mod telemetry;
pub mod throttle;
mod transcript;
mod wire;
pub mod xapi;

use crate::problem_code::ProblemCode;
use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use commit::{CommitSettings, Committer};
pub use metrics::Metrics;
pub use server::{ServeSettings, serve_router_with};
pub use state::{AppState, Limits, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, StatsSettings};
pub use throttle::RequestBounds;

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
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), roles::enforce))
        .fallback(not_found)
        .layer(axum::Extension(state.xapi_default_version.clone()))
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
    problem::Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        ProblemCode::NotFound,
        "no such resource",
    )
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
