//! `xuefen-loadtest`: runs the real `xuefen serve` against fresh databases
//! of the PostgreSQL cluster behind `DATABASE_URL` and prints one
//! `key=value` line per figure. See `loadtests/README.md`.
#![forbid(unsafe_code)]

/// One figure line of the run's output.
macro_rules! line {
    ($($t:tt)*) => {{
        println!($($t)*);
    }};
}

mod api;
mod baseline;
mod erasure;
mod fill;
mod ingest;
mod ingest_baseline;
mod ledger;
mod ledgers;
mod server;
mod sqlite;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::api::Api;
use crate::fill::CHUNK;
use crate::ingest::{batch_material, expect_counts, run_batch, run_import, run_singles, run_xapi, run_xapi_documents};
use crate::ingest_baseline::run_baseline;
use crate::ledger::BenchCourse;
use crate::ledgers::run_ledgers;
use crate::server::{Cluster, Server};
use crate::stats::{CpuSnapshot, Latencies, rate};

static STOP: AtomicBool = AtomicBool::new(false);
static DEADLINE_HIT: AtomicBool = AtomicBool::new(false);

/// Whether every loop should stop now (deadline reached or a loop failed).
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

pub fn raise_stop() {
    STOP.store(true, Ordering::Relaxed);
}

#[derive(Parser)]
#[command(
    name = "xuefen-loadtest",
    about = "Benchmarks the xuefen service; run it under scripts/with-postgres.sh"
)]
struct Args {
    /// The PostgreSQL server to use (a scratch database is created per scenario).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "sqlite_only"
    )]
    database_url: Option<String>,
    /// Run only the SQLite scenario (no PostgreSQL needed).
    #[arg(long)]
    sqlite_only: bool,
    /// The `xuefen` binary; when the default is missing, the `xuefen` next to this binary.
    #[arg(long, default_value = "target/release/xuefen")]
    xuefen_bin: PathBuf,
    /// Tiny counts for CI: well under a minute, exits non-zero on any mismatch.
    #[arg(long)]
    smoke: bool,
    /// Also fill and measure a 10M-entry ledger.
    #[arg(long)]
    big: bool,
    /// Concurrent clients of `batch`, `duplicates` and of the raw baseline.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Learners registered for the ingestion scenarios [default: 10000; smoke 200].
    #[arg(long)]
    learners: Option<usize>,
    /// Events posted by `batch` [default: 500000; smoke 2000].
    #[arg(long)]
    batch_events: Option<usize>,
    /// Events `PUT` by `single` at each connection count [default: 50000; smoke 200].
    #[arg(long)]
    single_events: Option<usize>,
    /// Connection counts of `single`.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    single_conns: Vec<usize>,
    /// Seconds after which every loop stops and the run fails [default: 900; smoke 90; big 2400].
    #[arg(long)]
    deadline_seconds: Option<u64>,
    /// Skip the transcript and verify ledgers (ingestion scenarios only).
    #[arg(long)]
    no_ledgers: bool,
    /// Keep the scratch databases instead of dropping them, and the servers'
    /// data directories with them (their keys open the databases' sealed names).
    #[arg(long)]
    keep_databases: bool,
    /// Run only these scenarios (comma-separated, of baseline, batch,
    /// duplicates, import, xapi, xapi_documents, single, erasure, ledgers,
    /// sqlite);
    /// `batch,xapi` gives `xapi_vs_batch_ratio` [default: all].
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    only: Vec<String>,
}

/// The scenarios `--only` selects from, in the order they run.
const SCENARIOS: [&str; 10] = [
    "baseline",
    "batch",
    "duplicates",
    "import",
    "xapi",
    "xapi_documents",
    "single",
    "erasure",
    "ledgers",
    "sqlite",
];

struct Config {
    bin: PathBuf,
    smoke: bool,
    clients: usize,
    learners: usize,
    batch_events: usize,
    single_events: usize,
    single_conns: Vec<usize>,
    /// Time cap of each batch-like scenario.
    scenario_limit: Duration,
    /// Time cap of each `single` run.
    single_limit: Duration,
    ledgers: Vec<usize>,
    no_ledgers: bool,
    transcript_requests: usize,
    deadline: Duration,
    /// The scenarios `--only` named; empty: all of them.
    only: Vec<String>,
}

impl Config {
    /// Whether the scenario runs (every one unless `--only` names others).
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// Entries of each transcript learner.
const PER_TARGET: usize = 1_000;
/// Events the service itself appends after each fill (checks that it can).
const PROBE_EVENTS: usize = 100;
const SEED: u64 = 0x5875_6566_656e;
/// The first person number of the import's learners, apart from the setup's.
const IMPORT_PEOPLE_FROM: usize = 50_000_000;

fn config(a: &Args) -> Result<Config> {
    let bin = resolve_bin(&a.xuefen_bin)?;
    let mut ledgers = if a.smoke { vec![10_000] } else { vec![10_000, 1_000_000] };
    if a.big {
        ledgers.push(10_000_000);
    }
    Ok(Config {
        bin,
        smoke: a.smoke,
        clients: a.clients.max(1),
        learners: a.learners.unwrap_or(if a.smoke { 200 } else { 10_000 }).max(1),
        batch_events: a.batch_events.unwrap_or(if a.smoke { 2_000 } else { 500_000 }),
        single_events: a.single_events.unwrap_or(if a.smoke { 200 } else { 50_000 }),
        single_conns: a.single_conns.clone(),
        scenario_limit: Duration::from_secs(if a.smoke { 20 } else { 90 }),
        single_limit: Duration::from_secs(if a.smoke { 10 } else { 15 }),
        ledgers,
        no_ledgers: a.no_ledgers,
        transcript_requests: if a.smoke { 40 } else { 200 },
        deadline: Duration::from_secs(a.deadline_seconds.unwrap_or(if a.smoke {
            90
        } else if a.big {
            2_400
        } else {
            900
        })),
        only: a.only.clone(),
    })
}

fn resolve_bin(wanted: &Path) -> Result<PathBuf> {
    if wanted.is_file() {
        return Ok(wanted.to_owned());
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("xuefen")));
    match sibling {
        Some(s) if wanted == Path::new("target/release/xuefen") && s.is_file() => Ok(s),
        _ => bail!(
            "no xuefen binary at {} (build it: cargo build --release -p xuefen)",
            wanted.display()
        ),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn main_inner(args: Args) -> Result<()> {
    let cfg = config(&args)?;
    let deadline = cfg.deadline;
    tokio::spawn(async move {
        tokio::time::sleep(deadline).await;
        DEADLINE_HIT.store(true, Ordering::Relaxed);
        raise_stop();
    });
    let dir = std::env::temp_dir().join(format!("xuefen-loadtest-{}", std::process::id()));
    let postgres = SCENARIOS[..9].iter().any(|s| cfg.runs(s));
    let result = match (&args.database_url, args.sqlite_only) {
        (Some(url), false) if postgres => {
            let mut cluster = Cluster::connect(url).await?;
            let result = run(&cfg, &mut cluster, &dir).await;
            if !args.keep_databases {
                cluster.drop_all().await;
            }
            result
        }
        _ => {
            println!(
                "run mode={} scenario=sqlite clients={} learners={} batch_events={} xuefen_bin={}",
                if cfg.smoke { "smoke" } else { "default" },
                cfg.clients,
                cfg.learners,
                cfg.batch_events,
                cfg.bin.display()
            );
            Ok(())
        }
    };
    let result = match result {
        Ok(()) if cfg.runs("sqlite") => run_sqlite(&cfg, &dir).await,
        other => other,
    };
    if args.keep_databases {
        eprintln!("server data directories kept in {}", dir.display());
    } else if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("server logs kept in {}", dir.display());
    }
    if DEADLINE_HIT.load(Ordering::Relaxed) {
        return result
            .and(Err(anyhow::anyhow!("the global deadline of {deadline:?} was reached")))
            .context("the run is incomplete");
    }
    result
}

pub(crate) fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { bail!("check failed: {}", what()) }
}

async fn run(cfg: &Config, cluster: &mut Cluster, dir: &Path) -> Result<()> {
    let pg = cluster.version().await.unwrap_or_default();
    line!(
        "run mode={} clients={} learners={} batch_events={} single_events={} postgres={pg} xuefen_bin={}",
        if cfg.smoke { "smoke" } else { "default" },
        cfg.clients,
        cfg.learners,
        cfg.batch_events,
        cfg.single_events,
        cfg.bin.display()
    );
    let course = Arc::new(BenchCourse::new("bench", "bench-hours")?);
    let http = api::client(cfg.single_conns.iter().copied().max().unwrap_or(64) + 16)?;

    // ---------------------------------------------------------------- setup
    let svc_url = cluster.create("svc").await?;
    let srv = Server::start(&cfg.bin, &svc_url, &dir.join("svc")).await?;
    let svc_pool = server::pool(&svc_url, 2).await?;
    let chains = chain_count(&svc_pool).await?;
    let api = Api::setup(http.clone(), &srv.base, &srv.admin_key, "bench", &course).await?;
    let t = Instant::now();
    let learners = Arc::new(api.register("acct-", cfg.learners, 32, chains).await?);
    let took = t.elapsed();
    line!(
        "setup learners={} register_s={:.2} learners_per_s={:.0}",
        learners.len(),
        took.as_secs_f64(),
        rate(learners.len() as u64, took)
    );

    // The batch events, their JSON and the rows the service would write.
    let t = Instant::now();
    let (batches, lens, chunks) = batch_material(cfg, &course, &learners, chains)?;
    eprintln!(
        "prepared {} events in {} batches in {:.1}s",
        cfg.batch_events,
        batches.len(),
        t.elapsed().as_secs_f64()
    );

    // ---------------------------------------------------------------- baseline
    let chunks = Arc::new(chunks);
    let baseline = if cfg.runs("baseline") {
        Some(run_baseline(cfg, cluster, chunks.clone(), srv.pid).await?)
    } else {
        None
    };

    // ---------------------------------------------------------------- batch
    let batches = Arc::new(batches);
    // Every event the service accepted, for the ledger's count at the end.
    let mut accepted = 0u64;
    let mut batch_rate = None;
    let mut posted = 0;
    let mut batch_sent = 0;
    if cfg.runs("batch") {
        let r = run_batch(cfg, &api, &batches, &lens, srv.pid).await?;
        accepted += r.counts.accepted;
        batch_rate = Some(rate(r.counts.accepted, r.elapsed));
        posted = lens.iter().take(r.sent).sum();
        batch_sent = r.sent;
    }

    // ---------------------------------------------------------------- duplicates
    if cfg.runs("duplicates") {
        let sent_batches = Arc::new(batches[..batch_sent].to_vec());
        let cpu = CpuSnapshot::take(srv.pid);
        let d = api::run_batches(&api, sent_batches.clone(), cfg.clients, cfg.scenario_limit).await?;
        let cpu = CpuSnapshot::take(srv.pid).since(&cpu);
        let reposted: usize = lens.iter().take(d.sent).sum();
        let l = Latencies::new(d.latencies);
        line!(
            "duplicates events_per_s={:.0} p50_ms={:.1} p99_ms={:.1} clients={} batch={CHUNK} events={reposted} duplicate={}",
            rate(d.counts.duplicate, d.elapsed),
            l.ms(0.5),
            l.ms(0.99),
            cfg.clients,
            d.counts.duplicate
        );
        line!("cpu scenario=duplicates wall_s={:.2} {cpu}", d.elapsed.as_secs_f64());
        expect_counts(&d.counts, 0, reposted as u64, "duplicates")?;
        check(d.sent == sent_batches.len() || !cfg.smoke, || {
            format!("duplicates sent {} of {} batches", d.sent, sent_batches.len())
        })?;
    }

    // ---------------------------------------------------------------- import
    if cfg.runs("import") {
        let n = if cfg.runs("batch") { posted } else { cfg.batch_events };
        run_import(cfg, &api, &srv, &course, &learners, chains, dir, n, batch_rate).await?;
        accepted += n as u64;
    }

    // ---------------------------------------------------------------- xapi
    if cfg.runs("xapi") {
        accepted += run_xapi(cfg, &api, &learners, &svc_pool, srv.pid, batch_rate).await?;
    }

    // ---------------------------------------------------------------- xapi_documents
    if cfg.runs("xapi_documents") {
        run_xapi_documents(cfg, &api, &svc_pool, srv.pid).await?;
    }

    // ---------------------------------------------------------------- single
    if cfg.runs("single") {
        accepted += run_singles(cfg, cluster, &api, &course, &learners, &chunks, srv.pid).await?;
    }

    // ---------------------------------------------------------------- erasure
    if cfg.runs("erasure") {
        let count = if cfg.smoke { 4 } else { 20 };
        accepted += erasure::run(&api, &svc_pool, &learners, count, cfg.scenario_limit, srv.pid).await?;
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from ledger_entries")
        .fetch_one(&svc_pool)
        .await?;
    // Every statement was a credited completion: one entry each.
    check(stored as u64 == accepted, || {
        format!("ledger holds {stored} entries, the service accepted {accepted} (xAPI and import included)")
    })?;
    svc_pool.close().await;
    srv.stop().await;

    // ---------------------------------------------------------------- transcript + verify
    if !cfg.no_ledgers && cfg.runs("ledgers") {
        run_ledgers(cfg, cluster, dir, &http, &course).await?;
    }

    // ---------------------------------------------------------------- ratio
    if let (Some(batch_rate), Some(baseline)) = (batch_rate, baseline) {
        line!("ingest_ratio={:.3}", batch_rate / baseline.max(1e-9));
    }
    Ok(())
}

/// The batch scenario on SQLite against its own raw baseline.
async fn run_sqlite(cfg: &Config, dir: &Path) -> Result<()> {
    let course = Arc::new(BenchCourse::new("bench", "bench-hours")?);
    let http = api::client(cfg.clients + 16)?;
    let ratio = sqlite::run(cfg, &http, &course, dir).await?;
    line!("sqlite_ingest_ratio={ratio:.3}");
    Ok(())
}

pub(crate) async fn chain_count(pool: &sqlx::PgPool) -> Result<u32> {
    let n: i64 = sqlx::query_scalar("select count(*) from chain_heads")
        .fetch_one(pool)
        .await?;
    Ok(u32::try_from(n)?)
}
