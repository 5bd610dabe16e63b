//! The `xuefen` binary: serve the API, migrate, verify the ledger, and
//! administer sites and keys.
//!
//! This file holds the command line (clap's types), the settings it loads
//! and the dispatch; each subcommand lives in a module of its own (`serve`,
//! `verify`, `sites`, `keys`, `names`, `import`, `bank_pull`, `witness`,
//! `verify_record`, `dev_token`), and what several of them share sits in
//! `stores` (opening the database) and `secrets` (the service's keys).
#![forbid(unsafe_code)]

mod bank_pull;
mod dev_token;
mod import;
mod keys;
mod names;
mod secrets;
mod serve;
mod settings;
mod sites;
mod stores;
mod telemetry;
mod verify;
mod verify_record;
mod witness;
mod witnessing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::keys::KeysCommand;
use crate::settings::Settings;
use crate::sites::SitesCommand;

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

async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    let db = &settings;
    match cli.command {
        Command::Config(_) | Command::VerifyRecord(_) => Ok(ExitCode::SUCCESS),
        Command::Openapi => {
            print!("{}", xuefen_api::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            stores::open_store(db, true).await?;
            eprintln!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(_) => serve::run(&settings).await,
        Command::Witness(args) => witness::run(args).await,
        Command::Verify { public_key, checkpoint } => {
            verify::run(db, public_key.as_deref(), checkpoint.as_deref()).await
        }
        Command::Sites(cmd) => sites::run(db, cmd).await,
        Command::Keys(cmd) => keys::run(db, cmd).await,
        Command::DevToken {
            learner,
            subject,
            document,
            ttl_seconds,
        } => dev_token::run(&settings, learner, subject, document, ttl_seconds),
        Command::Bank(BankCommand::Pull(args)) => bank_pull::pull(args).await,
        Command::Names(cmd) => {
            let store = stores::open_existing_store(db, true).await?;
            let keys = names::name_keys(db, &secrets::identity_key(db)?)?;
            names::run(&*store, &keys, cmd).await
        }
        Command::Import(args) => import::import(args).await,
    }
}
