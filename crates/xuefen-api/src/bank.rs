//! The credit bank's side of the API: the deposit feed with proofs,
//! acknowledgements, the log's checkpoint and tiles (C2SP tlog-tiles), and
//! the background sealer.
//!
//! Only entries sealed into the log are served, in log order; a cursor is a
//! log index, so the same cursor always returns the same deposits and an
//! entry committed later can never appear before a cursor already handed out.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ed25519_dalek::SigningKey;
use xuefen_core::event::Millis;
use xuefen_store::Store;
use xuefen_store::bank::{CheckpointLimits, make_checkpoint};

use crate::AppState;

pub mod deposits;
pub mod log;
pub mod wire;

use self::log::get_tile;

/// Deposits per page when the caller does not say.
pub const PAGE_DEPOSITS_DEFAULT: u32 = 100;
/// Most deposits per page.
pub const PAGE_DEPOSITS_MAX: u32 = 500;

/// The log's origin when the settings name none.
pub const DEFAULT_ORIGIN: &str = "xuefen.invalid/ledger";

/// How checkpoints are made and signed.
#[derive(Clone)]
pub struct CheckpointSettings {
    pub key: Arc<SigningKey>,
    /// The log's origin: the first line of its checkpoints and the name of its key.
    pub origin: String,
    /// How often the checkpointer looks for moved chain heads.
    pub interval: Duration,
    pub limits: CheckpointLimits,
    /// Witnesses are configured: `GET /checkpoint` and the deposit feed
    /// serve the latest checkpoint a witness cosigned, with its cosignatures.
    pub witnessed: bool,
}

impl std::fmt::Debug for CheckpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSettings")
            .field("public_key", &hex::encode(self.key.verifying_key().as_bytes()))
            .field("origin", &self.origin)
            .field("interval", &self.interval)
            .field("limits", &self.limits)
            .field("witnessed", &self.witnessed)
            .finish()
    }
}

impl CheckpointSettings {
    /// Settings with a key that lives only as long as the process (tests,
    /// trials); a service keeps its key (see the binary's settings).
    pub fn ephemeral() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
        Self {
            key: Arc::new(SigningKey::from_bytes(&secret)),
            origin: DEFAULT_ORIGIN.into(),
            interval: Duration::from_millis(1_000),
            limits: CheckpointLimits::default(),
            witnessed: false,
        }
    }
}

/// The route `routes!` cannot declare: a tile path is an axum wildcard
/// (`{*path}`), spelled `{path}` in the annotation. The bank's other
/// endpoints are in `routes.rs`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/tile/{*path}", get(get_tile))
}

/// The checkpointer running in the background of a server.
pub struct Checkpointer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts [`run_checkpointer`] over the state's store and settings.
    pub fn start(state: &AppState) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_checkpointer(
            state.store.clone(),
            state.checkpoints.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, task }
    }

    /// Stops it after the checkpoint in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "checkpointer task ended abnormally");
        }
    }
}

/// Runs the checkpointer until `stop` resolves: every `interval`, a new
/// signed checkpoint if any chain head moved. Errors are logged and retried
/// on the next tick; a ledger that fails verification is never sealed.
pub async fn run_checkpointer(store: Arc<dyn Store>, settings: CheckpointSettings, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
        match make_checkpoint(&*store, &settings.key, &settings.origin, now, settings.limits).await {
            Ok(Some(size)) => tracing::debug!(log.size = size, "entries sealed, checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
    }
}
