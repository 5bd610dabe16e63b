//! The `xuefen` binary: serve the API, migrate, verify the ledger, and
//! administer sites and keys.
#![forbid(unsafe_code)]

mod bank_pull;
mod import;
mod names;
mod settings;
mod telemetry;
mod verify_record;
mod witness;
mod witnessing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use xuefen_api::sso::{SsoKey, SsoSettings, SsoSubject, SsoVerifier, dev_token, dev_token_with};
use xuefen_api::{AppState, CommitSettings, Limits, StatsSettings};
use xuefen_core::event::Millis;
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_store::verify::{VerifyFailure, verify_ledger_under, verify_log};
use xuefen_store::{Principal, ServiceStore, Site, SiteAct};
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

use crate::settings::Settings;

/// mimalloc: the service allocates many small, short-lived objects per
/// request (parsed events, rows, responses); the system allocator spent about
/// a tenth of the server's CPU in `free` under the batch benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "xuefen",
    version,
    about = "The lifelong-learning credit ledger of a provincial alliance of learning sites",
    after_help = "Settings come from defaults, then the --config file, then XUEFEN_* environment \
                  variables, then flags; `xuefen config example` lists every key."
)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes. Each is a configuration key; the
/// environment is read by the configuration loader, not by clap, so that
/// one parser judges every layer.
#[derive(Args, Clone)]
struct DbArgs {
    /// A TOML configuration file (also XUEFEN_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Set any configuration key, e.g. `--set log_format=json` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
    /// Key `database_url`: `postgres://…` or `sqlite://…` (also DATABASE_URL).
    #[arg(long, global = true, hide_default_value = true)]
    database_url: Option<String>,
    /// Key `data_dir`: embedded database and generated identity key (also XUEFEN_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<String>,
    /// Key `pool_connections_max` (also XUEFEN_POOL_CONNECTIONS_MAX).
    #[arg(long, global = true)]
    pool_connections_max: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Verify every hash chain from genesis and the log over them (its
    /// segments, tiles, chain tips and latest checkpoint); exit 1 naming the
    /// first bad entry, tile or checkpoint.
    Verify {
        /// The service's checkpoint public key (hex), to check signatures too.
        #[arg(long)]
        public_key: Option<String>,
        /// A checkpoint held elsewhere (a signed note, e.g. saved by a
        /// witness or the bank): the log must contain it, so a log cut short
        /// or rewritten behind it fails. Its signature is checked with --public-key.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
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
    /// Back-fill a site's learners, account links and events from an NDJSON
    /// or CSV file through the HTTP API (resumable; see docs/import.md).
    Import(import::ImportArgs),
    /// Check a learner's record (a verifiable credential) offline: its
    /// proof, its checkpoint and every line's ledger proof; exit 1 naming
    /// the first bad line.
    VerifyRecord(verify_record::VerifyRecordArgs),
    /// Run a C2SP tlog-witness for the log: cosign its checkpoints, refuse rollbacks and forks.
    Witness(witness::WitnessArgs),
    /// Learners' names sealed at rest: key use, and re-sealing under the
    /// first key of `name_keys` (key rotation).
    #[command(subcommand)]
    Names(names::NamesCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Configuration: print an example file, or check the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a learner token signed with the HS256 single sign-on secret
    /// (the development default), for trying `/v1/me/transcript`.
    DevToken {
        /// The unified learner id (`lrn_…`), as `sub`.
        #[arg(long, required_unless_present = "subject", conflicts_with = "subject")]
        learner: Option<String>,
        /// The SSO's own id of the person, as the `sso_subject_claim` claim
        /// (with `sso_subject_kind = sso_id`).
        #[arg(long)]
        subject: Option<String>,
        /// The person's resident ID number, as the `sso_document_claim`
        /// claim: what binds a new subject to the learner registered with it.
        #[arg(long, requires = "subject")]
        document: Option<String>,
        /// How long the token is valid.
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print an example configuration file with every key, its meaning and default.
    Example,
    /// Load the configuration, report the first invalid key, and print the
    /// effective settings (secrets redacted).
    Check,
}

/// Flags of `serve`; each is a configuration key of the same name.
#[derive(Args)]
struct ServeArgs {
    /// Key `listen` (also XUEFEN_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Key `metrics_listen` (also XUEFEN_METRICS_LISTEN).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Key `batch_events_max` (also XUEFEN_BATCH_EVENTS_MAX).
    #[arg(long)]
    batch_events_max: Option<String>,
    /// Key `body_bytes_max` (also XUEFEN_BODY_BYTES_MAX).
    #[arg(long)]
    body_bytes_max: Option<String>,
    /// Key `group_events_max` (also XUEFEN_GROUP_EVENTS_MAX).
    #[arg(long)]
    group_events_max: Option<String>,
    /// Key `commits_in_flight` (also XUEFEN_COMMITS_IN_FLIGHT).
    #[arg(long)]
    commits_in_flight: Option<String>,
    /// Key `commit_shards` (also XUEFEN_COMMIT_SHARDS).
    #[arg(long)]
    commit_shards: Option<String>,
    /// Key `key_cache_seconds` (also XUEFEN_KEY_CACHE_SECONDS).
    #[arg(long)]
    key_cache_seconds: Option<String>,
    /// Key `identity_key` (also XUEFEN_IDENTITY_KEY).
    #[arg(long)]
    identity_key: Option<String>,
    /// Key `shutdown_grace_seconds` (also XUEFEN_SHUTDOWN_GRACE_SECONDS).
    #[arg(long)]
    shutdown_grace_seconds: Option<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::VerifyRecord(args) = cli.command {
        return verify_record::run(args);
    }
    if let Command::Config(ConfigCommand::Example) = cli.command {
        print!("{}", settings::example());
        return ExitCode::SUCCESS;
    }
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config(ConfigCommand::Check) = cli.command {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    // Telemetry starts before the runtime: the OTLP exporter runs on a
    // thread of its own with a blocking HTTP client.
    let telemetry = match telemetry::init(&settings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(run(cli, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    };
    // Stop the runtime before flushing, so every span has ended.
    runtime.shutdown_timeout(Duration::from_secs(5));
    telemetry.shutdown();
    code
}

/// Every configuration flag given, as `(key, value, flag)`.
fn flags(cli: &Cli) -> anyhow::Result<settings::Flags> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            out.push((key.to_owned(), v.clone(), format!("--{}", key.replace('_', "-"))));
        }
    };
    add("database_url", &cli.db.database_url);
    add("data_dir", &cli.db.data_dir);
    add("pool_connections_max", &cli.db.pool_connections_max);
    if let Command::Serve(a) = &cli.command {
        add("listen", &a.listen);
        add("metrics_listen", &a.metrics_listen);
        add("batch_events_max", &a.batch_events_max);
        add("body_bytes_max", &a.body_bytes_max);
        add("group_events_max", &a.group_events_max);
        add("commits_in_flight", &a.commits_in_flight);
        add("commit_shards", &a.commit_shards);
        add("key_cache_seconds", &a.key_cache_seconds);
        add("identity_key", &a.identity_key);
        add("shutdown_grace_seconds", &a.shutdown_grace_seconds);
    }
    for pair in &cli.db.set {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--set {pair}: expected KEY=VALUE");
        };
        out.push((key.trim().to_owned(), value.to_owned(), format!("--set {}", key.trim())));
    }
    Ok(out)
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let file = cli
        .db
        .config
        .clone()
        .or_else(|| std::env::var_os("XUEFEN_CONFIG").map(PathBuf::from));
    let flags = flags(cli)?;
    Ok(Settings::load(file.as_deref(), |k| std::env::var(k).ok(), &flags)?)
}

/// The store of a server that already ran: a command other than `serve` and
/// `migrate` run from another directory (or with other settings) refuses
/// instead of creating an empty embedded database and answering from it.
async fn open_existing_store(db: &Settings, migrate: bool) -> anyhow::Result<Arc<dyn ServiceStore>> {
    if db.database_url.is_none() {
        let path = db.data_dir.join("xuefen.db");
        anyhow::ensure!(
            path.exists(),
            "no Xuefen database at {}: run this command with the server's settings (from the directory \
             `xuefen serve` runs in, or with its XUEFEN_DATA_DIR or DATABASE_URL)",
            path.display()
        );
    }
    open_store(db, migrate).await
}

async fn open_store(db: &Settings, migrate: bool) -> anyhow::Result<Arc<dyn ServiceStore>> {
    let url = match &db.database_url {
        Some(url) => url.expose().to_owned(),
        None => {
            private_dir(&db.data_dir)?;
            let path = db.data_dir.join("xuefen.db");
            tracing::info!(path = %path.display(), "database_url is unset: using the embedded SQLite database");
            format!("sqlite://{}", path.display())
        }
    };
    if url.starts_with("sqlite:") {
        if db.database_read_url.is_some() {
            tracing::warn!("database_read_url is ignored with SQLite: every read is served by the one database");
        }
        let settings = SqliteSettings {
            url,
            pool_connections_max: db.pool_connections_max.min(8),
        };
        let store = SqliteStore::connect(&settings, migrate).await.context("open SQLite")?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let settings = PgSettings {
            url,
            read_url: db.database_read_url.as_ref().map(|u| u.expose().to_owned()),
            pool_connections_max: db.pool_connections_max,
            acquire_timeout: Duration::from_secs(db.db_acquire_timeout_seconds),
        };
        let store = PgStore::connect(&settings, migrate)
            .await
            .context("connect to PostgreSQL")?;
        Ok(Arc::new(store))
    } else {
        bail!("database_url must start with postgres://, postgresql:// or sqlite://")
    }
}

async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    let db = &settings;
    match cli.command {
        Command::Config(_) | Command::VerifyRecord(_) => Ok(ExitCode::SUCCESS),
        Command::Openapi => {
            print!("{}", xuefen_api::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open_store(db, true).await?;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(_) => serve(&settings).await,
        Command::Witness(args) => witness::run(args).await,
        Command::Verify { public_key, checkpoint } => verify(db, public_key.as_deref(), checkpoint.as_deref()).await,
        Command::Sites(cmd) => sites(db, cmd).await,
        Command::Keys(cmd) => keys(db, cmd).await,
        Command::DevToken {
            learner,
            subject,
            document,
            ttl_seconds,
        } => {
            // With the generated development secret, the server's must be
            // used: refuse instead of generating one nobody verifies with.
            let dev_secret = settings.data_dir.join("sso-dev.key");
            if settings.sso_algorithm == "HS256"
                && settings.sso_key.is_none()
                && settings.sso_key_file.is_none()
                && !dev_secret.exists()
            {
                bail!(
                    "no development SSO secret at {}: run dev-token with the server's settings (from the \
                     directory `xuefen serve` runs in, or with its XUEFEN_DATA_DIR), after the server started once",
                    dev_secret.display()
                );
            }
            let SsoKey::Hs256(secret) = sso_key(&settings)? else {
                bail!("dev-token signs with an HS256 secret; the configured key is a public key");
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("read the clock")?
                .as_secs();
            let token = match (learner, subject) {
                (Some(learner), _) => {
                    let learner = xuefen_core::ids::LearnerId::parse(learner)?;
                    dev_token(
                        &secret,
                        &settings.sso_issuer,
                        &settings.sso_audience,
                        &learner,
                        now,
                        ttl_seconds,
                    )
                }
                (None, subject) => {
                    let mut claims = serde_json::Map::new();
                    claims.insert(settings.sso_subject_claim.clone(), subject.unwrap_or_default().into());
                    if let Some(number) = document {
                        let Some(claim) = settings.sso_document_claim.clone() else {
                            bail!("--document needs sso_document_claim to name the claim it goes in");
                        };
                        claims.insert(claim, number.into());
                    }
                    dev_token_with(
                        &secret,
                        &settings.sso_issuer,
                        &settings.sso_audience,
                        claims,
                        now,
                        ttl_seconds,
                    )
                }
            }
            .context("sign the token")?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bank(BankCommand::Pull(args)) => bank_pull::pull(args).await,
        Command::Names(cmd) => {
            let store = open_existing_store(db, true).await?;
            let keys = names::name_keys(db, &identity_key(db)?)?;
            names::run(&*store, &keys, cmd).await
        }
        Command::Import(args) => import::import(args).await,
    }
}

/// How a learner token names the person: `sso_subject_claim` holding the
/// unified id, or the SSO's own id bound through `sso_document_claim`.
fn sso_subject(settings: &Settings) -> anyhow::Result<SsoSubject> {
    let claim = settings.sso_subject_claim.trim().to_owned();
    if claim.is_empty() {
        bail!("sso_subject_claim must name a claim");
    }
    match settings.sso_subject_kind.as_str() {
        "learner_id" => Ok(SsoSubject::LearnerId { claim }),
        "sso_id" => Ok(SsoSubject::Bound {
            claim,
            document_claim: settings.sso_document_claim.clone().filter(|c| !c.trim().is_empty()),
        }),
        other => bail!("sso_subject_kind `{other}` is not one of learner_id, sso_id"),
    }
}

/// The key learner tokens are verified with: `sso_key` (or the file
/// `sso_key_file`) for the algorithm `sso_algorithm`; for HS256 without a
/// key, a development secret generated once into `data_dir`.
fn sso_key(settings: &Settings) -> anyhow::Result<SsoKey> {
    let given = match (&settings.sso_key, &settings.sso_key_file) {
        (Some(k), _) => Some(k.expose().to_owned()),
        (None, Some(path)) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("read sso_key_file {}", path.display()))?)
        }
        (None, None) => None,
    };
    match (settings.sso_algorithm.as_str(), given) {
        ("HS256", Some(hex_key)) => {
            let key = hex::decode(hex_key.trim()).context("sso_key must be hex for HS256")?;
            if key.len() < 32 {
                bail!("sso_key must hold at least 32 bytes (64 hex digits) for HS256");
            }
            Ok(SsoKey::Hs256(key))
        }
        ("HS256", None) => Ok(SsoKey::Hs256(local_secret(
            &settings.data_dir,
            "sso-dev.key",
            "development SSO secret",
        )?)),
        ("RS256", Some(pem)) => Ok(SsoKey::Rs256Pem(pem.into_bytes())),
        ("ES256", Some(pem)) => Ok(SsoKey::Es256Pem(pem.into_bytes())),
        ("RS256" | "ES256", None) => bail!("sso_key or sso_key_file must give the SSO's public key"),
        (other, _) => bail!("sso_algorithm `{other}` is not one of HS256, RS256, ES256"),
    }
}

/// Creates the data directory, when missing, so that only its owner may
/// enter it (0700): it holds the database and the service's keys.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("create {}", dir.display()))
}

/// A 32-byte secret kept as hex in `data_dir/name`, generated on first use.
fn local_secret(data_dir: &std::path::Path, name: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return hex::decode(existing.trim()).with_context(|| format!("read {what} {}", path.display()));
    }
    private_dir(data_dir)?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    std::fs::write(&path, hex::encode(key)).with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::warn!(path = %path.display(), "generated a new {what}; back it up");
    Ok(key.to_vec())
}

fn identity_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    let data_dir = settings.data_dir.as_path();
    if let Some(hex_key) = &settings.identity_key {
        // Length and hex were checked when the configuration loaded.
        return hex::decode(hex_key.expose()).context("identity_key must be hex");
    }
    let key = local_secret(
        data_dir,
        "identity.key",
        "identity key (learners cannot be matched across sites without it)",
    )?;
    if key.len() < 32 {
        anyhow::bail!(
            "the identity key in {} is shorter than 32 bytes",
            data_dir.join("identity.key").display()
        );
    }
    Ok(key)
}

/// The checkpoint signing key: from the settings, or generated once into `data_dir`.
fn checkpoint_key(settings: &Settings) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let secret = match &settings.checkpoint_key {
        // Length and hex were checked when the configuration loaded.
        Some(hex_key) => hex::decode(hex_key.expose()).context("checkpoint_key must be hex")?,
        None => {
            let path = settings.data_dir.join("checkpoint.key");
            match std::fs::read_to_string(&path) {
                Ok(existing) => {
                    hex::decode(existing.trim()).with_context(|| format!("read checkpoint key {}", path.display()))?
                }
                Err(_) => {
                    private_dir(&settings.data_dir)?;
                    let mut key = [0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
                    std::fs::write(&path, hex::encode(key)).with_context(|| format!("write {}", path.display()))?;
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                    }
                    tracing::warn!(path = %path.display(), "generated a new checkpoint key; back it up: checkpoints it signed cannot be verified with another");
                    key.to_vec()
                }
            }
        }
    };
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("the checkpoint key must be 32 bytes (64 hex digits)"))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&secret))
}

async fn serve(args: &Settings) -> anyhow::Result<ExitCode> {
    let key = identity_key(args)?;
    let signing = checkpoint_key(args)?;
    let name_keys = names::name_keys(args, &key)?;
    let store = open_store(args, true).await?;
    names::check_at_start(&*store, &name_keys).await?;
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
        queue_requests_max: args.queue_requests_max,
    };
    let sso = SsoVerifier::new(&SsoSettings {
        issuer: args.sso_issuer.clone(),
        audience: args.sso_audience.clone(),
        key: sso_key(args)?,
        leeway_seconds: args.sso_leeway_seconds,
    })
    .context("load the single sign-on key")?
    .with_subject(sso_subject(args)?);
    let whole = |credits: u64| {
        xuefen_core::amount::Credits::from_cents(i64::try_from(credits).unwrap_or(i64::MAX / 100).saturating_mul(100))
    };
    let stats = StatsSettings {
        rule: xuefen_store::StatsRule {
            credits_each: whole(args.stats_credits_each),
            star_credits: whole(args.learning_star_credits),
        },
        registrations_min: args.agreement_registrations_min,
        learning_stars_min: args.agreement_learning_stars_min,
    };
    let mut state = AppState::new(store, limits, commit, key)
        .with_name_keys(name_keys)
        .with_sso(sso)
        .with_stats(stats)
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
    let witnesses = witnessing::parse_targets(&args.witnesses).map_err(|m| anyhow::anyhow!("witnesses: {m}"))?;
    state.checkpoints = xuefen_api::bank::CheckpointSettings {
        key: Arc::new(signing),
        origin: args.log_origin.clone(),
        interval: Duration::from_millis(args.checkpoint_interval_ms),
        limits: xuefen_store::bank::CheckpointLimits {
            chain_entries_max: args.checkpoint_chain_entries_max,
        },
        witnessed: !witnesses.is_empty(),
    };
    let checkpointer = xuefen_api::bank::Checkpointer::start(&state);
    let (witness_stop, witness_stopped) = tokio::sync::oneshot::channel::<()>();
    let witnessing = (!witnesses.is_empty()).then(|| {
        tokio::spawn(witnessing::run(
            state.store.clone(),
            witnesses,
            Duration::from_secs(args.witness_interval_seconds),
            async move {
                let _ = witness_stopped.await;
            },
        ))
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // With a metrics listener of its own, /metrics is served only there.
    let (app, metrics_server) = match args.metrics_listen {
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
    };
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
    let drained = async {
        server.await.context("server task")?.context("serve")?;
        if let Some(m) = metrics_server {
            m.await.context("metrics task")?.context("serve metrics")?;
        }
        checkpointer.stop().await;
        let _ = witness_stop.send(());
        if let Some(w) = witnessing {
            let _ = w.await;
        }
        anyhow::Ok(())
    };
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

async fn verify(db: &Settings, public_key: Option<&str>, held: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, false).await?;
    let key = public_key
        .map(|k| -> anyhow::Result<ed25519_dalek::VerifyingKey> {
            let bytes: [u8; 32] = hex::decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--public-key must be 32 bytes of hex")?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("--public-key is not an Ed25519 key")
        })
        .transpose()?;
    let held = match held {
        None => None,
        Some(path) => {
            let note = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            let body = note
                .split_once("\n\n")
                .map(|(b, _)| format!("{b}\n"))
                .unwrap_or_default();
            let cp = xuefen_core::tlog::LogCheckpoint::parse_body(&body)
                .with_context(|| format!("{} is not a checkpoint (a signed note)", path.display()))?;
            if let Some(key) = &key {
                xuefen_core::tlog::LogCheckpoint::open(&note, &cp.origin, key)
                    .with_context(|| format!("{}: the held checkpoint", path.display()))?;
            }
            Some(cp)
        }
    };
    let started = Instant::now();
    // The entries first, so that an altered entry is named as such; then the
    // log over them, recomputed from their hashes.
    let result = match verify_ledger_under(&*store, |_| {}).await {
        Ok(report) => match verify_log(&*store, key.as_ref(), held.as_ref()).await {
            Ok(log) => Ok((report, log)),
            Err(VerifyFailure::Store(e)) => return Err(e).context("read the log"),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    match result {
        Ok((report, log)) => {
            println!(
                "ok: {} entries in {} chains and {} site changes in the alliance chain verified in {:.3}s ({:.0} entries/s)",
                report.entries,
                report.chains,
                report.site_changes,
                secs,
                report.entries as f64 / secs
            );
            println!(
                "ok: the log of {} entries matches its {} tiles and its checkpoint ({})",
                log.size,
                log.tiles,
                if log.signature {
                    "signature verified"
                } else {
                    "signature not checked: give --public-key"
                }
            );
            if let Some(h) = log.held {
                println!("ok: the log contains the held checkpoint of size {h}");
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

async fn sites(db: &Settings, cmd: SitesCommand) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, true).await?;
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
            site.region_code.check_level(site.level)?;
            store
                .create_site(&site, &cli_act(&reason)?)
                .await
                .context("create site")?;
            let (key, secret) = xuefen_api::auth::mint(Principal::Site(site.id.clone()));
            store.create_key(&key).await?;
            println!("site {} created; key {} (shown once): {secret}", site.id, key.id);
        }
        SitesCommand::List => {
            // Standing against today, CST dates: an active site whose
            // agreement ended reads `expired`.
            let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
            let day = |m: Option<Millis>| m.map_or_else(|| "-".to_owned(), Millis::date_cst);
            println!("id\tlevel\tregion\tstatus\tstanding\tagreement_from\tagreement_to\tname");
            for s in store.sites().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.level,
                    s.region_code.as_str(),
                    s.status,
                    xuefen_store::agreement_standing(&s, now),
                    day(s.agreement_starts_at),
                    day(s.agreement_ends_at),
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

async fn keys(db: &Settings, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(db, true).await?;
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
