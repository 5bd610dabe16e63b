//! The `xuefen` binary: serve the API, migrate, verify the ledger, and
//! administer sites and keys.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use xuefen_api::sso::{SsoKey, SsoSettings, SsoVerifier, dev_token};
use xuefen_api::{AppState, CommitSettings, Limits, StatsSettings};
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_store::verify::{VerifyFailure, verify_ledger};
use xuefen_store::{Principal, Site, SiteAct, Store};
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
    /// Verify every hash chain from genesis; exit 1 naming the first bad entry.
    Verify,
    /// Manage alliance sites.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Print a learner token signed with the HS256 single sign-on secret
    /// (the development default), for trying `/v1/me/transcript`.
    DevToken {
        /// The unified learner id (`lrn_…`).
        #[arg(long)]
        learner: String,
        /// How long the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
        #[command(flatten)]
        sso: SsoArgs,
    },
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
    /// Seconds to finish in-flight requests after SIGTERM/SIGINT.
    #[arg(long, env = "XUEFEN_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    shutdown_grace_seconds: u64,
    #[command(flatten)]
    sso: SsoArgs,
    /// Credits a learner needs in a year to count towards the agreement's
    /// "each with at least 20 credits".
    #[arg(long, env = "XUEFEN_STATS_CREDITS_EACH", default_value = "20")]
    stats_credits_each: rust_decimal::Decimal,
    /// Credits earned on one site in a year that make a learning star (学习之星).
    #[arg(long, env = "XUEFEN_LEARNING_STAR_CREDITS", default_value = "30")]
    learning_star_credits: rust_decimal::Decimal,
    /// New registrations/activations the agreement asks of a site each year.
    #[arg(long, env = "XUEFEN_AGREEMENT_REGISTRATIONS_MIN", default_value_t = 1_000)]
    agreement_registrations_min: u64,
    /// Learning-star awards the agreement asks of a site each year.
    #[arg(long, env = "XUEFEN_AGREEMENT_LEARNING_STARS_MIN", default_value_t = 50)]
    agreement_learning_stars_min: u64,
}

/// How learners' single sign-on tokens are verified.
#[derive(Args, Clone)]
struct SsoArgs {
    /// The `iss` learner tokens must carry.
    #[arg(long, env = "XUEFEN_SSO_ISSUER", default_value = "xuefen-dev-sso")]
    sso_issuer: String,
    /// The `aud` learner tokens must carry.
    #[arg(long, env = "XUEFEN_SSO_AUDIENCE", default_value = "xuefen")]
    sso_audience: String,
    /// HS256 (a shared secret: development), RS256 or ES256 (the SSO's public key).
    #[arg(long, env = "XUEFEN_SSO_ALGORITHM", default_value = "HS256")]
    sso_algorithm: String,
    /// The key: for HS256 the secret as hex (at least 32 bytes); for RS256 and
    /// ES256 a PEM public key. Without it (HS256 only), a development secret
    /// is generated once into the data directory and `xuefen dev-token`
    /// signs with it.
    #[arg(long, env = "XUEFEN_SSO_KEY", hide_env_values = true)]
    sso_key: Option<String>,
    /// A file holding the key instead (e.g. the SSO's PEM public key).
    #[arg(long, env = "XUEFEN_SSO_KEY_FILE", conflicts_with = "sso_key")]
    sso_key_file: Option<PathBuf>,
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
        /// Why (recorded in the alliance chain).
        #[arg(long, default_value = "site created")]
        reason: String,
    },
    /// List sites.
    List,
    /// Move a site along its lifecycle (active, suspended, terminated),
    /// recorded in the alliance chain with the reason.
    Status {
        id: String,
        status: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (shown once).
    Create {
        /// A key for the provincial centre.
        #[arg(long, conflicts_with = "site")]
        admin: bool,
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
        Command::Verify => verify(&cli.db).await,
        Command::Sites(cmd) => sites(&cli.db, cmd).await,
        Command::Keys(cmd) => keys(&cli.db, cmd).await,
        Command::DevToken {
            learner,
            ttl_seconds,
            sso,
        } => {
            let SsoKey::Hs256(secret) = sso_key(&sso, &cli.db.data_dir)? else {
                bail!("dev-token signs with an HS256 secret; the configured key is a public key");
            };
            let learner = xuefen_core::ids::LearnerId::parse(learner)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("read the clock")?
                .as_secs();
            let token = dev_token(&secret, &sso.sso_issuer, &sso.sso_audience, &learner, now, ttl_seconds)
                .context("sign the token")?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The key learner tokens are verified with (see [`SsoArgs`]).
fn sso_key(args: &SsoArgs, data_dir: &std::path::Path) -> anyhow::Result<SsoKey> {
    let given = match (&args.sso_key, &args.sso_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("read SSO key {}", path.display()))?)
        }
        (None, None) => None,
    };
    match (args.sso_algorithm.as_str(), given) {
        ("HS256", Some(hex_key)) => {
            let key = hex::decode(hex_key.trim()).context("XUEFEN_SSO_KEY must be hex for HS256")?;
            if key.len() < 32 {
                bail!("XUEFEN_SSO_KEY must hold at least 32 bytes (64 hex digits)");
            }
            Ok(SsoKey::Hs256(key))
        }
        ("HS256", None) => Ok(SsoKey::Hs256(local_secret(
            data_dir,
            "sso-dev.key",
            "development SSO secret",
        )?)),
        ("RS256", Some(pem)) => Ok(SsoKey::Rs256Pem(pem.into_bytes())),
        ("ES256", Some(pem)) => Ok(SsoKey::Es256Pem(pem.into_bytes())),
        ("RS256" | "ES256", None) => bail!("XUEFEN_SSO_KEY or XUEFEN_SSO_KEY_FILE must give the SSO's public key"),
        (other, _) => bail!("XUEFEN_SSO_ALGORITHM `{other}` is not one of HS256, RS256, ES256"),
    }
}

/// A 32-byte secret kept as hex in `data_dir/name`, generated on first use.
fn local_secret(data_dir: &std::path::Path, name: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim()).with_context(|| format!("read {what} {}", path.display()));
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
    tracing::warn!(path = %path.display(), "generated a new {what}");
    Ok(key.to_vec())
}

fn identity_key(args: &ServeArgs, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Some(hex_key) = &args.identity_key {
        let key = hex::decode(hex_key.trim()).context("XUEFEN_IDENTITY_KEY must be hex")?;
        if key.len() < 32 {
            bail!("XUEFEN_IDENTITY_KEY must hold at least 32 bytes (64 hex digits)");
        }
        return Ok(key);
    }
    let path = data_dir.join("identity.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim()).with_context(|| format!("read identity key {}", path.display()));
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
    tracing::warn!(path = %path.display(), "generated a new identity key; back it up: learners cannot be matched without it");
    Ok(key.to_vec())
}

async fn serve(db: &DbArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let key = identity_key(&args, &db.data_dir)?;
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
    let sso = SsoVerifier::new(&SsoSettings {
        issuer: args.sso.sso_issuer.clone(),
        audience: args.sso.sso_audience.clone(),
        key: sso_key(&args.sso, &db.data_dir)?,
    })
    .context("load the single sign-on key")?;
    let credits =
        |v, name| xuefen_core::amount::Credits::parse(v, 0, 1_000_000_00, name).map_err(|e| anyhow::anyhow!("{e}"));
    let stats = StatsSettings {
        rule: xuefen_store::StatsRule {
            credits_each: credits(args.stats_credits_each, "XUEFEN_STATS_CREDITS_EACH")?,
            star_credits: credits(args.learning_star_credits, "XUEFEN_LEARNING_STAR_CREDITS")?,
        },
        registrations_min: args.agreement_registrations_min,
        learning_stars_min: args.agreement_learning_stars_min,
    };
    let state = AppState::new(store, limits, commit, key)
        .with_sso(sso)
        .with_stats(stats)
        .with_key_cache_ttl(Duration::from_secs(args.key_cache_seconds));
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

async fn verify(db: &DbArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(db, false).await?;
    let started = Instant::now();
    let result = verify_ledger(&*store, |_| {}).await;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    match result {
        Ok(report) => {
            println!(
                "ok: {} entries in {} chains and {} site changes in the alliance chain verified in {:.3}s ({:.0} entries/s)",
                report.entries,
                report.chains,
                report.site_changes,
                secs,
                report.entries as f64 / secs
            );
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
            reason,
        } => {
            let site = Site {
                id: SiteId::parse(id)?,
                name,
                level: SiteLevel::parse(&level)?,
                region_code: RegionCode::parse(region)?,
                status: SiteStatus::parse(&status)?,
                agreement_starts_at: None,
                agreement_ends_at: None,
            };
            store
                .create_site(&site, &cli_act(&reason)?)
                .await
                .context("create site")?;
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
        SitesCommand::Status { id, status, reason } => {
            let (site, entry) = store
                .set_site_status(
                    &SiteId::parse(id)?,
                    SiteStatus::parse(&status)?,
                    None,
                    &cli_act(&reason)?,
                )
                .await?;
            println!(
                "site {} is {} (alliance chain {})",
                site.id, site.status, entry.position
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A site change made from the command line.
fn cli_act(reason: &str) -> anyhow::Result<SiteAct> {
    Ok(SiteAct {
        actor: "cli".into(),
        reason: xuefen_core::event::Reason::parse(reason, "reason")?,
        at: xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc()),
    })
}

async fn keys(db: &DbArgs, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(db, true).await?;
    match cmd {
        KeysCommand::Create { admin, site } => {
            let principal = match (admin, site) {
                (true, None) => Principal::Admin,
                (false, Some(site)) => {
                    let id = SiteId::parse(site)?;
                    store.site(&id).await?.context("no such site")?;
                    Principal::Site(id)
                }
                _ => bail!("give --admin or --site ID"),
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
