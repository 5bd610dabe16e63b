//! `xuefen serve`: the HTTP API with its committer, checkpointer and
//! witnessing tasks, and a graceful stop on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use xuefen_api::sso::{SsoSettings, SsoVerifier};
use xuefen_api::{AppState, CommitSettings, Limits, StatsSettings};
use xuefen_core::names::NameKeys;
use xuefen_store::{Principal, ServiceStore};

use crate::secrets::{checkpoint_key, identity_key, sso_key, sso_subject};
use crate::settings::Settings;
use crate::stores::open_store;
use crate::{names, witnessing};

pub(crate) async fn run(args: &Settings) -> anyhow::Result<ExitCode> {
    let key = identity_key(args)?;
    let signing = checkpoint_key(args)?;
    let name_keys = names::name_keys(args, &key)?;
    let store = open_store(args, true).await?;
    names::check_at_start(&*store, &name_keys).await?;
    reindex_xapi(&*store).await?;
    bootstrap_admin_key(&*store).await?;
    let witnesses = witnessing::parse_targets(&args.witnesses).map_err(|m| anyhow::anyhow!("witnesses: {m}"))?;
    let state = app_state(args, store, key, name_keys, signing, !witnesses.is_empty())?;
    let checkpointer = xuefen_api::bank::Checkpointer::start(&state);
    let (witness_stop, witness_stopped) = tokio::sync::oneshot::channel::<()>();
    let witnessing = start_witnessing(args, &state, witnesses, witness_stopped);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (app, metrics_server) = routers(args, state, &stop_rx).await?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let serve_settings = xuefen_api::ServeSettings {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        connections_max: connections_max(args),
    };
    let server = tokio::spawn(xuefen_api::serve_router_with(
        listener,
        app,
        stopped(stop_rx),
        serve_settings,
    ));
    shutdown_signal().await;
    tracing::info!(
        grace_s = grace.as_secs(),
        "stopping: refusing new connections, finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    let drained = drain(server, metrics_server, checkpointer, witness_stop, witnessing);
    match tokio::time::timeout(grace, drained).await {
        Ok(result) => result?,
        Err(_) => {
            tracing::warn!(grace_s = grace.as_secs(), "in-flight requests did not finish in time");
            return Ok(ExitCode::from(1));
        }
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Re-indexes the xAPI statements stored before their context agents and groups were indexed.
async fn reindex_xapi(store: &dyn ServiceStore) -> anyhow::Result<()> {
    let reindexed = xuefen_store::xapi::backfill_related(store, 500)
        .await
        .context("re-indexing xAPI statements for their related agents")?;
    if reindexed > 0 {
        tracing::info!(
            reindexed,
            "xAPI statements re-indexed for their 2.0.0 context agents and groups"
        );
    }
    Ok(())
}

/// Mints an admin key and prints it once when the store has none yet.
async fn bootstrap_admin_key(store: &dyn ServiceStore) -> anyhow::Result<()> {
    if !store.admin_key_exists().await? {
        let (key, secret) = xuefen_api::auth::mint(Principal::Admin);
        store.create_key(&key).await?;
        println!("bootstrap admin key (shown once): {secret}");
    }
    Ok(())
}

/// Starts the witnessing task when there are witnesses; it ends when `stop` fires.
fn start_witnessing(
    args: &Settings,
    state: &AppState,
    witnesses: Vec<witnessing::Target>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Option<tokio::task::JoinHandle<()>> {
    (!witnesses.is_empty()).then(|| {
        tokio::spawn(witnessing::run(
            state.store.clone(),
            witnesses,
            Duration::from_secs(args.witness_interval_seconds),
            async move {
                let _ = stop.await;
            },
        ))
    })
}

/// The API's router and, with a metrics listener of its own, the task serving `/metrics` there.
async fn routers(
    args: &Settings,
    state: AppState,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(axum::Router, Option<tokio::task::JoinHandle<std::io::Result<()>>>)> {
    // With a metrics listener of its own, /metrics is served only there.
    Ok(match args.metrics_listen {
        Some(metrics_addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("bind {metrics_addr}"))?;
            let metrics_addr = metrics_listener.local_addr()?;
            println!("metrics on http://{metrics_addr}/metrics");
            let server = tokio::spawn(xuefen_api::serve_router(
                metrics_listener,
                xuefen_api::metrics_router(state.clone()),
                stopped(stop_rx.clone()),
            ));
            (xuefen_api::api_router(state), Some(server))
        }
        None => (xuefen_api::router(state), None),
    })
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Waits for the servers to finish their requests, then stops the checkpointer and the witnessing.
async fn drain(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    checkpointer: xuefen_api::bank::Checkpointer,
    witness_stop: tokio::sync::oneshot::Sender<()>,
    witnessing: Option<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<()> {
    server.await.context("server task")?.context("serve")?;
    if let Some(m) = metrics_server {
        m.await.context("metrics task")?.context("serve metrics")?;
    }
    checkpointer.stop().await;
    let _ = witness_stop.send(());
    if let Some(w) = witnessing {
        let _ = w.await;
    }
    Ok(())
}

/// The service's state from the settings: limits, group commit, single
/// sign-on, statistics, request bounds and the checkpoint signer.
fn app_state(
    args: &Settings,
    store: Arc<dyn ServiceStore>,
    key: Vec<u8>,
    name_keys: NameKeys,
    signing: ed25519_dalek::SigningKey,
    witnessed: bool,
) -> anyhow::Result<AppState> {
    let limits = Limits {
        batch_events_max: args.batch_events_max,
        body_bytes_max: args.body_bytes_max,
    };
    let commit = CommitSettings {
        group_events_max: args.group_events_max,
        commits_in_flight: args.commits_in_flight,
        shards: args.commit_shards,
        queue_requests_max: args.queue_requests_max,
    };
    let mut state = AppState::new(store, limits, commit, key)
        .with_name_keys(name_keys)
        .with_sso(sso_verifier(args)?)
        .with_stats(stats_settings(args))
        .with_xapi_default_version(
            xuefen_core::xapi::Version::parse(&args.xapi_default_version).unwrap_or(xuefen_core::xapi::Version::V2),
        )
        .with_key_cache_ttl(Duration::from_secs(args.key_cache_seconds))
        .with_bounds(xuefen_api::RequestBounds {
            body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            rate_per_second: args.rate_limit_per_second,
            rate_burst: args.rate_limit_burst,
        });
    state.checkpoints = checkpoint_settings(args, signing, witnessed);
    Ok(state)
}

/// The verifier of the single sign-on's tokens, from the settings.
fn sso_verifier(args: &Settings) -> anyhow::Result<SsoVerifier> {
    Ok(SsoVerifier::new(&SsoSettings {
        issuer: args.sso_issuer.clone(),
        audience: args.sso_audience.clone(),
        key: sso_key(args)?,
        leeway_seconds: args.sso_leeway_seconds,
    })
    .context("load the single sign-on key")?
    .with_subject(sso_subject(args)?))
}

/// The statistics' rule and the agreement's figures, from the settings
/// (credits given as whole numbers).
fn stats_settings(args: &Settings) -> StatsSettings {
    let whole = |credits: u64| {
        xuefen_core::amount::Credits::from_cents(i64::try_from(credits).unwrap_or(i64::MAX / 100).saturating_mul(100))
    };
    StatsSettings {
        rule: xuefen_store::StatsRule {
            credits_each: whole(args.stats_credits_each),
            star_credits: whole(args.learning_star_credits),
        },
        registrations_min: args.agreement_registrations_min,
        learning_stars_min: args.agreement_learning_stars_min,
    }
}

/// How the log is sealed and signed, from the settings.
fn checkpoint_settings(
    args: &Settings,
    signing: ed25519_dalek::SigningKey,
    witnessed: bool,
) -> xuefen_api::bank::CheckpointSettings {
    xuefen_api::bank::CheckpointSettings {
        key: Arc::new(signing),
        origin: args.log_origin.clone(),
        interval: Duration::from_millis(args.checkpoint_interval_ms),
        limits: xuefen_store::bank::CheckpointLimits {
            chain_entries_max: args.checkpoint_chain_entries_max,
        },
        witnessed,
    }
}

/// `connections_max`, kept below the process's descriptor limit with room
/// for the database pool, the metrics listener and files.
fn connections_max(args: &Settings) -> usize {
    let reserve = 64 + 2 * args.pool_connections_max as usize;
    match open_files_limit() {
        Some(limit) if limit.saturating_sub(reserve) < args.connections_max => {
            let max = limit.saturating_sub(reserve).max(1);
            tracing::warn!(
                connections_max = args.connections_max,
                descriptor_limit = limit,
                effective = max,
                "connections_max lowered to fit the descriptor limit"
            );
            max
        }
        _ => args.connections_max,
    }
}

/// The soft `RLIMIT_NOFILE` of this process (Linux: `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
