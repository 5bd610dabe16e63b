//! The HTTP API of Xuefen.
//!
//! [`router`] builds the axum application over any [`Store`]; [`serve`] runs
//! it on a listener the caller bound, until a shutdown future resolves. The
//! API crate depends on the store trait only; the binary picks the backend.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bank;
pub mod body;
pub mod commit;
pub mod dto;
pub mod openapi;
pub mod problem;
mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use xuefen_store::Store;

pub use commit::{CommitSettings, Committer};

/// Limits on what a request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events in one `POST /v1/events`.
    pub batch_events_max: usize,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
}

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
    /// The HMAC key under which identity document numbers are hashed.
    pub identity_key: Arc<[u8]>,
    /// Recently authenticated keys.
    pub key_cache: Arc<auth::KeyCache>,
    /// The checkpoint signing key and the checkpointer's schedule.
    pub checkpoints: bank::CheckpointSettings,
}

impl AppState {
    /// State over `store`, starting the group committer on the current runtime.
    pub fn new(store: Arc<dyn Store>, limits: Limits, commit: CommitSettings, identity_key: Vec<u8>) -> Self {
        let committer = Committer::start(store.clone(), commit);
        Self {
            store,
            committer,
            limits,
            identity_key: identity_key.into(),
            key_cache: Arc::new(auth::KeyCache::new(Self::KEY_CACHE_TTL)),
            checkpoints: bank::CheckpointSettings::ephemeral(),
        }
    }

    /// How long an authenticated key is remembered by default.
    pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Remembers authenticated keys for `ttl` (zero: look every key up).
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_cache = Arc::new(auth::KeyCache::new(ttl));
        self
    }
}

/// The application with all its routes and layers.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body_bytes_max;
    routes::routes()
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight (and so their group commits) before returning.
/// The checkpointer runs alongside for as long as the server does.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let checkpointer = tokio::spawn(bank::run_checkpointer(
        state.store.clone(),
        state.checkpoints.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(());
    if let Err(e) = checkpointer.await {
        tracing::warn!(error = %e, "checkpointer task ended abnormally");
    }
    served
}
