//! The `xuefen` binary: serve the API, migrate, verify the ledger, and
//! administer sites and keys.
#![forbid(unsafe_code)]

mod bank_pull;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use xuefen_api::{AppState, CommitSettings, Limits};
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_store::bank::verify_checkpoints;
use xuefen_store::verify::{VerifyFailure, verify_ledger_under};
use xuefen_store::{Principal, Site, Store};
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

/// mimalloc: the service allocates many small, short-lived objects per
/// request (parsed events, rows, responses); the system allocator spent about
/// a tenth of the server's CPU in `free` under the batch benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "xuefen",
    version,
    about = "The lifelong-learning credit ledger of a provincial alliance of learning sites"
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// `postgres://…` (production) or `sqlite://…` URL of the store. When
    /// unset, an SQLite file in the data directory is used.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the service keeps local files: the embedded database and the
    /// generated identity key.
    #[arg(long, env = "XUEFEN_DATA_DIR", default_value = ".data", global = true)]
    data_dir: PathBuf,
    /// Most connections in the pool (2 cores: a small pool keeps PostgreSQL busy without thrashing).
    #[arg(long, env = "XUEFEN_POOL_CONNECTIONS_MAX", default_value_t = 16, global = true)]
    pool_connections_max: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Verify every hash chain from genesis and every checkpoint; exit 1
    /// naming the first bad entry or checkpoint.
    Verify {
        /// The service's checkpoint public key (hex), to check signatures too.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Manage alliance sites.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Act as the credit bank.
    #[command(subcommand)]
    Bank(BankCommand),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "XUEFEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Most events in one batch request.
    #[arg(long, env = "XUEFEN_BATCH_EVENTS_MAX", default_value_t = 1_000)]
    batch_events_max: usize,
    /// Largest request body in bytes.
    #[arg(long, env = "XUEFEN_BODY_BYTES_MAX", default_value_t = 2 * 1024 * 1024)]
    body_bytes_max: usize,
    /// Most events one group-commit transaction writes.
    #[arg(long, env = "XUEFEN_GROUP_EVENTS_MAX", default_value_t = 4_000)]
    group_events_max: usize,
    /// Group-commit transactions in flight at once, per shard.
    #[arg(long, env = "XUEFEN_COMMITS_IN_FLIGHT", default_value_t = 1)]
    commits_in_flight: usize,
    /// Seconds an authenticated API key is remembered (0: look up every
    /// request). Revocations through another instance take effect within it.
    #[arg(long, env = "XUEFEN_KEY_CACHE_SECONDS", default_value_t = 1)]
    key_cache_seconds: u64,
    /// Chain shards with a group committer each (PostgreSQL; SQLite has one).
    #[arg(long, env = "XUEFEN_COMMIT_SHARDS", default_value_t = 2)]
    commit_shards: usize,
    /// Hex HMAC key for identity document hashes (at least 32 bytes). Without
    /// it, a key is generated once into the data directory.
    #[arg(long, env = "XUEFEN_IDENTITY_KEY", hide_env_values = true)]
    identity_key: Option<String>,
    /// Hex Ed25519 secret key (32 bytes) that signs checkpoints. Without it,
    /// a key is generated once into the data directory.
    #[arg(long, env = "XUEFEN_CHECKPOINT_KEY", hide_env_values = true)]
    checkpoint_key: Option<String>,
    /// Milliseconds between checkpoints (one is made only when a chain head moved).
    #[arg(long, env = "XUEFEN_CHECKPOINT_INTERVAL_MS", default_value_t = 1_000)]
    checkpoint_interval_ms: u64,
    /// Most entries of one chain sealed by one checkpoint (bounds its transaction).
    #[arg(long, env = "XUEFEN_CHECKPOINT_CHAIN_ENTRIES_MAX", default_value_t = 10_000)]
    checkpoint_chain_entries_max: u64,
    /// Seconds to finish in-flight requests after SIGTERM/SIGINT.
    #[arg(long, env = "XUEFEN_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    shutdown_grace_seconds: u64,
}

#[derive(Subcommand)]
enum BankCommand {
    /// Pull deposits, verify every proof and checkpoint, acknowledge them,
    /// and keep the cursor in a state file; resumes where it stopped.
    Pull(bank_pull::PullArgs),
}

#[derive(Subcommand)]
enum SitesCommand {
    /// Create a site and print its first API key (shown once).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// province, city, county or township.
        #[arg(long)]
        level: String,
        /// 6-digit GB/T 2260 region code.
        #[arg(long)]
        region: String,
        #[arg(long, default_value = "active")]
        status: String,
    },
    /// List sites.
    List,
    /// Change a site's status (pending, active, suspended, terminated).
    Status { id: String, status: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (shown once).
    Create {
        /// A key for the provincial centre.
        #[arg(long, conflicts_with_all = ["site", "bank"])]
        admin: bool,
        /// A key for the credit bank (reads deposits, acknowledges them).
        #[arg(long, conflicts_with = "site")]
        bank: bool,
        /// A key for this site.
        #[arg(long)]
        site: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn open_store(db: &DbArgs, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    let url = match &db.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&db.data_dir).with_context(|| format!("create {}", db.data_dir.display()))?;
            let path = db.data_dir.join("xuefen.db");
            eprintln!(
                "DATABASE_URL is unset: using the embedded SQLite database {}",
                path.display()
            );
            format!("sqlite://{}", path.display())
        }
    };
    if url.starts_with("sqlite:") {
        let settings = SqliteSettings {
            url,
            pool_connections_max: db.pool_connections_max.min(8),
        };
        let store = SqliteStore::connect(&settings, migrate).await.context("open SQLite")?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let settings = PgSettings {
            url,
            pool_connections_max: db.pool_connections_max,
            acquire_timeout: Duration::from_secs(10),
        };
        let store = PgStore::connect(&settings, migrate)
            .await
            .context("connect to PostgreSQL")?;
        Ok(Arc::new(store))
    } else {
        bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite://")
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Openapi => {
            print!("{}", xuefen_api::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open_store(&cli.db, true).await?;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(&cli.db, args).await,
        Command::Verify { public_key } => verify(&cli.db, public_key.as_deref()).await,
        Command::Sites(cmd) => sites(&cli.db, cmd).await,
        Command::Keys(cmd) => keys(&cli.db, cmd).await,
        Command::Bank(BankCommand::Pull(args)) => bank_pull::pull(args).await,
    }
}

fn identity_key(args: &ServeArgs, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Some(hex_key) = &args.identity_key {
        let key = hex::decode(hex_key.trim()).context("XUEFEN_IDENTITY_KEY must be hex")?;
        if key.len() < 32 {
            bail!("XUEFEN_IDENTITY_KEY must hold at least 32 bytes (64 hex digits)");
        }
        return Ok(key);
    }
    stored_key(data_dir, "identity.key", "learners cannot be matched without it")
}

/// The checkpoint signing key: from the settings, or generated once into the data directory.
fn checkpoint_key(args: &ServeArgs, data_dir: &std::path::Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let secret = match &args.checkpoint_key {
        Some(hex_key) => hex::decode(hex_key.trim()).context("XUEFEN_CHECKPOINT_KEY must be hex")?,
        None => stored_key(
            data_dir,
            "checkpoint.key",
            "checkpoints signed with it cannot be verified with a new one",
        )?,
    };
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("the checkpoint key must be 32 bytes (64 hex digits)"))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&secret))
}

/// A 32-byte secret kept as hex in `data_dir/name`, generated on first use.
fn stored_key(data_dir: &std::path::Path, name: &str, why_back_up: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim()).with_context(|| format!("read key {}", path.display()));
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    std::fs::write(&path, hex::encode(key)).with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::warn!(path = %path.display(), "generated a new key; back it up: {why_back_up}");
    Ok(key.to_vec())
}

async fn serve(db: &DbArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let key = identity_key(&args, &db.data_dir)?;
    let signing = checkpoint_key(&args, &db.data_dir)?;
    let store = open_store(db, true).await?;
    if !store.admin_key_exists().await? {
        let (key, secret) = xuefen_api::auth::mint(Principal::Admin);
        store.create_key(&key).await?;
        println!("bootstrap admin key (shown once): {secret}");
    }
    let limits = Limits {
        batch_events_max: args.batch_events_max,
        body_bytes_max: args.body_bytes_max,
    };
    let commit = CommitSettings {
        group_events_max: args.group_events_max,
        commits_in_flight: args.commits_in_flight,
        shards: args.commit_shards,
        ..CommitSettings::default()
    };
    let mut state =
        AppState::new(store, limits, commit, key).with_key_cache_ttl(Duration::from_secs(args.key_cache_seconds));
    state.checkpoints = xuefen_api::bank::CheckpointSettings {
        key: Arc::new(signing),
        interval: Duration::from_millis(args.checkpoint_interval_ms.max(10)),
        limits: xuefen_store::bank::CheckpointLimits {
            chain_entries_max: args.checkpoint_chain_entries_max.max(1),
        },
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(xuefen_api::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    shutdown_signal().await;
    tracing::info!("stopping: finishing in-flight requests");
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined.context("server task")?.context("serve")?,
        Err(_) => {
            tracing::warn!(grace_s = grace.as_secs(), "in-flight requests did not finish in time");
            return Ok(ExitCode::from(1));
        }
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
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

async fn verify(db: &DbArgs, public_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = open_store(db, false).await?;
    let key = public_key
        .map(|k| -> anyhow::Result<ed25519_dalek::VerifyingKey> {
            let bytes: [u8; 32] = hex::decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--public-key must be 32 bytes of hex")?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("--public-key is not an Ed25519 key")
        })
        .transpose()?;
    let started = Instant::now();
    let (checkpoints, latest) = match verify_checkpoints(&*store, key.as_ref()).await {
        Ok(found) => found,
        Err(e) => {
            println!("FAILED: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let result = verify_ledger_under(&*store, latest.as_ref(), |_| {}).await;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    match result {
        Ok(report) => {
            println!(
                "ok: {} entries in {} chains verified in {:.3}s ({:.0} entries/s)",
                report.entries,
                report.chains,
                secs,
                report.entries as f64 / secs
            );
            if let Some(latest) = &latest {
                println!(
                    "ok: {} checkpoints consistent ({}), the latest binds {} entries",
                    checkpoints.checkpoints,
                    if checkpoints.signatures {
                        "signatures verified"
                    } else {
                        "signatures not checked: give --public-key"
                    },
                    latest.entries()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyFailure::Store(e)) => Err(e).context("read the ledger"),
        Err(e) => {
            println!("FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn sites(db: &DbArgs, cmd: SitesCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(db, true).await?;
    match cmd {
        SitesCommand::Add {
            id,
            name,
            level,
            region,
            status,
        } => {
            let site = Site {
                id: SiteId::parse(id)?,
                name,
                level: SiteLevel::parse(&level)?,
                region_code: RegionCode::parse(region)?,
                status: SiteStatus::parse(&status)?,
            };
            store.create_site(&site).await.context("create site")?;
            let (key, secret) = xuefen_api::auth::mint(Principal::Site(site.id.clone()));
            store.create_key(&key).await?;
            println!("site {} created; key {} (shown once): {secret}", site.id, key.id);
        }
        SitesCommand::List => {
            for s in store.sites().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.level,
                    s.region_code.as_str(),
                    s.status,
                    s.name
                );
            }
        }
        SitesCommand::Status { id, status } => {
            let site = store
                .set_site_status(&SiteId::parse(id)?, SiteStatus::parse(&status)?)
                .await?;
            println!("site {} is {}", site.id, site.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(db: &DbArgs, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(db, true).await?;
    match cmd {
        KeysCommand::Create { admin, bank, site } => {
            let principal = match (admin, site) {
                (false, None) if bank => Principal::Bank,
                (true, None) => Principal::Admin,
                (false, Some(site)) => {
                    let id = SiteId::parse(site)?;
                    store.site(&id).await?.context("no such site")?;
                    Principal::Site(id)
                }
                _ => bail!("give --admin, --bank or --site ID"),
            };
            let (key, secret) = xuefen_api::auth::mint(principal);
            store.create_key(&key).await?;
            println!("key {} (shown once): {secret}", key.id);
        }
        KeysCommand::Revoke { key_id } => {
            store.revoke_key(&key_id).await?;
            println!("key {key_id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
