//! `xuefen-loadtest`: runs the real `xuefen serve` against fresh databases
//! of the PostgreSQL cluster behind `DATABASE_URL` and prints one
//! `key=value` line per figure. See `loadtests/README.md`.
#![forbid(unsafe_code)]

mod api;
mod baseline;
mod fill;
mod ledger;
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

use crate::api::{Api, BatchCounts, Workload, event_json, learner_of, now_ms};
use crate::fill::{CHUNK, FillPlan};
use crate::ledger::{BenchCourse, Learner, Rows, Sealer, event_terms};
use crate::server::{Cluster, Server};
use crate::stats::{CpuSnapshot, Latencies, mb, rate, reset_hwm, vm_hwm_kb};

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
    /// duplicates, import, xapi, xapi_documents, single, ledgers, sqlite);
    /// `batch,xapi` gives `xapi_vs_batch_ratio` [default: all].
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    only: Vec<String>,
}

/// The scenarios `--only` selects from, in the order they run.
const SCENARIOS: [&str; 9] = [
    "baseline",
    "batch",
    "duplicates",
    "import",
    "xapi",
    "xapi_documents",
    "single",
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
    let postgres = SCENARIOS[..8].iter().any(|s| cfg.runs(s));
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

macro_rules! line {
    ($($t:tt)*) => {{
        println!($($t)*);
    }};
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
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

/// `batch`: the batches posted by `clients` at a time.
async fn run_batch(
    cfg: &Config,
    api: &Api,
    batches: &Arc<Vec<Vec<u8>>>,
    lens: &[usize],
    pid: u32,
) -> Result<api::LoopResult> {
    let srv_pid = pid;
    let hwm_reset = reset_hwm(srv_pid);
    let cpu = CpuSnapshot::take(srv_pid);
    let mut r = api::run_batches(api, batches.clone(), cfg.clients, cfg.scenario_limit).await?;
    let cpu = CpuSnapshot::take(srv_pid).since(&cpu);
    let peak = vm_hwm_kb(srv_pid);
    let posted: usize = lens.iter().take(r.sent).sum();
    let batch_rate = rate(r.counts.accepted, r.elapsed);
    let l = Latencies::new(std::mem::take(&mut r.latencies));
    line!(
        "batch events_per_s={batch_rate:.0} p50_ms={:.1} p99_ms={:.1} clients={} batch={CHUNK} events={posted} accepted={} elapsed_s={:.2}",
        l.ms(0.5),
        l.ms(0.99),
        cfg.clients,
        r.counts.accepted,
        r.elapsed.as_secs_f64()
    );
    expect_counts(&r.counts, posted as u64, 0, "batch")?;
    check(r.sent == batches.len() || !cfg.smoke, || {
        format!("batch sent {} of {} batches", r.sent, batches.len())
    })?;
    line!("cpu scenario=batch wall_s={:.2} {cpu}", r.elapsed.as_secs_f64());
    line!(
        "rss process=server phase=batch peak_mb={} since={}",
        peak.map_or("n/a".into(), |kb| format!("{:.1}", mb(kb))),
        if hwm_reset { "batch_start" } else { "server_start" }
    );
    Ok(r)
}

/// `import`: `xuefen import` back-fills `n` events (new ids, same shape)
/// from an NDJSON file, in batches of the batch's size, `clients` at a time.
#[allow(clippy::too_many_arguments)]
async fn run_import(
    cfg: &Config,
    api: &Api,
    srv: &Server,
    course: &BenchCourse,
    learners: &[Learner],
    chains: u32,
    dir: &Path,
    n: usize,
    batch_rate: Option<f64>,
) -> Result<()> {
    let batch_rate = batch_rate.unwrap_or(0.0);
    // The history of a site joining the alliance: its learners are new
    // people with no entries yet (registered first, not timed), as in
    // `batch`.
    let t = Instant::now();
    let newcomers = api
        .register_from("imp-", IMPORT_PEOPLE_FROM, learners.len(), 32, chains)
        .await?;
    line!(
        "import_setup learners={} register_s={:.2}",
        newcomers.len(),
        t.elapsed().as_secs_f64()
    );
    let file = dir.join("import.ndjson");
    let mut text = String::with_capacity(n * 200);
    for j in 0..n {
        let learner = newcomers
            .get(learner_of(SEED + 1, j as u64, newcomers.len()))
            .context("no learners")?;
        let mut v = event_json(course, &format!("i-{j}"), &learner.account, SEED + 1, j as u64, true);
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), "event".into());
        }
        text.push_str(&v.to_string());
        text.push('\n');
    }
    std::fs::write(&file, text).context("write the import file")?;
    let cpu = CpuSnapshot::take(srv.pid);
    let t = Instant::now();
    let out = tokio::process::Command::new(&cfg.bin)
        .arg("import")
        .arg(&file)
        .args([
            "--quiet",
            "--batch",
            &CHUNK.to_string(),
            "--jobs",
            &cfg.clients.to_string(),
            "--url",
        ])
        .arg(&srv.base)
        .env("XUEFEN_SITE_KEY", &api.site_key)
        .output();
    let out = tokio::time::timeout(cfg.scenario_limit * 2, out)
        .await
        .context("xuefen import timed out")?
        .context("run xuefen import")?;
    let took = t.elapsed();
    let cpu = CpuSnapshot::take(srv.pid).since(&cpu);
    check(out.status.success(), || {
        format!(
            "xuefen import failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let import_rate = rate(n as u64, took);
    line!(
        "import events_per_s={import_rate:.0} ratio_to_batch={:.2} jobs={} batch={CHUNK} events={n} elapsed_s={:.2}",
        if batch_rate > 0.0 {
            import_rate / batch_rate
        } else {
            0.0
        },
        cfg.clients,
        took.as_secs_f64()
    );
    line!("cpu scenario=import wall_s={:.2} {cpu}", took.as_secs_f64());
    Ok(())
}

/// `xapi`: the same number of completions as `batch` through the xAPI
/// door, in POST arrays of the batch's size, each credited on the same
/// ledger; answers the statements stored.
async fn run_xapi(
    cfg: &Config,
    api: &Api,
    learners: &[Learner],
    svc_pool: &sqlx::PgPool,
    pid: u32,
    batch_rate: Option<f64>,
) -> Result<u64> {
    api.setup_xapi("bench-xapi").await?;
    let (arrays, xlens) = xapi_material(cfg, learners)?;
    let arrays = Arc::new(arrays);
    let cpu = CpuSnapshot::take(pid);
    let x = api::run_statements(api, "bench", arrays.clone(), cfg.clients, cfg.scenario_limit).await?;
    let cpu = CpuSnapshot::take(pid).since(&cpu);
    let xposted: usize = xlens.iter().take(x.sent).sum();
    let xapi_rate = rate(x.counts.accepted, x.elapsed);
    let l = Latencies::new(x.latencies);
    line!(
        "xapi statements_per_s={xapi_rate:.0} p50_ms={:.1} p99_ms={:.1} clients={} batch={CHUNK} statements={xposted} stored={} elapsed_s={:.2}",
        l.ms(0.5),
        l.ms(0.99),
        cfg.clients,
        x.counts.accepted,
        x.elapsed.as_secs_f64()
    );
    line!("cpu scenario=xapi wall_s={:.2} {cpu}", x.elapsed.as_secs_f64());
    line!("xapi_statements_per_second={xapi_rate:.0}");
    if let Some(batch_rate) = batch_rate {
        line!("xapi_vs_batch_ratio={:.3}", xapi_rate / batch_rate.max(1e-9));
    }
    check(x.counts.accepted == xposted as u64, || {
        format!("xapi stored {} of {xposted} statements", x.counts.accepted)
    })?;
    check(x.sent == arrays.len() || !cfg.smoke, || {
        format!("xapi sent {} of {} arrays", x.sent, arrays.len())
    })?;
    let statements: i64 = sqlx::query_scalar("select count(*) from xapi_statements")
        .fetch_one(svc_pool)
        .await?;
    check(statements as u64 == x.counts.accepted, || {
        format!(
            "the store holds {statements} statements, the service answered {}",
            x.counts.accepted
        )
    })?;
    Ok(x.counts.accepted)
}

/// `xapi_documents`: State and Agent Profile writes (new documents), as
/// SCORM-style packages save resume data: PUT and POST, 16 connections.
async fn run_xapi_documents(cfg: &Config, api: &Api, svc_pool: &sqlx::PgPool, pid: u32) -> Result<()> {
    let documents = if cfg.smoke { 400 } else { 20_000 };
    let doc_clients = 16;
    let cpu = CpuSnapshot::take(pid);
    let dw = api::run_documents(api, "bench", documents, doc_clients, cfg.single_limit).await?;
    let cpu = CpuSnapshot::take(pid).since(&cpu);
    let l = Latencies::new(dw.latencies);
    line!(
        "xapi_documents documents_per_s={:.0} p50_ms={:.1} p99_ms={:.1} clients={doc_clients} documents={} elapsed_s={:.2}",
        rate(dw.counts.accepted, dw.elapsed),
        l.ms(0.5),
        l.ms(0.99),
        dw.counts.accepted,
        dw.elapsed.as_secs_f64()
    );
    line!(
        "cpu scenario=xapi_documents wall_s={:.2} {cpu}",
        dw.elapsed.as_secs_f64()
    );
    let stored_docs: i64 = sqlx::query_scalar("select count(*) from xapi_documents")
        .fetch_one(svc_pool)
        .await?;
    check(stored_docs as u64 == dw.counts.accepted, || {
        format!(
            "the store holds {stored_docs} documents, the service answered {}",
            dw.counts.accepted
        )
    })?;
    Ok(())
}

/// `single`: events `PUT` one by one at each connection count, each after
/// its raw baseline; answers the events accepted.
async fn run_singles(
    cfg: &Config,
    cluster: &mut Cluster,
    api: &Api,
    course: &Arc<BenchCourse>,
    learners: &Arc<Vec<Learner>>,
    chunks: &Arc<Vec<Rows>>,
    pid: u32,
) -> Result<u64> {
    let work = Workload {
        course: course.clone(),
        learners: learners.clone(),
        seed: SEED ^ 0x51,
    };
    let mut single_accepted = 0u64;
    for &conns in &cfg.single_conns {
        run_single_baseline(cfg, cluster, chunks, conns).await?;
        let cpu = CpuSnapshot::take(pid);
        let s = api::run_single(
            api,
            &work,
            &format!("s{conns}-"),
            cfg.single_events,
            conns,
            cfg.single_limit,
        )
        .await?;
        let cpu = CpuSnapshot::take(pid).since(&cpu);
        let l = Latencies::new(s.latencies);
        line!(
            "single conns={conns} events_per_s={:.0} p50_ms={:.1} p99_ms={:.1} p999_ms={:.1} events={} accepted={} elapsed_s={:.2}",
            rate(s.counts.accepted, s.elapsed),
            l.ms(0.5),
            l.ms(0.99),
            l.ms(0.999),
            s.sent,
            s.counts.accepted,
            s.elapsed.as_secs_f64()
        );
        line!(
            "cpu scenario=single_{conns} wall_s={:.2} {cpu}",
            s.elapsed.as_secs_f64()
        );
        expect_counts(&s.counts, s.sent as u64, 0, "single")?;
        check(s.sent == cfg.single_events || !cfg.smoke, || {
            format!("single sent {} of {}", s.sent, cfg.single_events)
        })?;
        single_accepted += s.counts.accepted;
    }
    Ok(single_accepted)
}

/// The batch scenario on SQLite against its own raw baseline.
async fn run_sqlite(cfg: &Config, dir: &Path) -> Result<()> {
    let course = Arc::new(BenchCourse::new("bench", "bench-hours")?);
    let http = api::client(cfg.clients + 16)?;
    let ratio = sqlite::run(cfg, &http, &course, dir).await?;
    line!("sqlite_ingest_ratio={ratio:.3}");
    Ok(())
}

fn expect_counts(c: &BatchCounts, accepted: u64, duplicate: u64, what: &str) -> Result<()> {
    check(
        c.accepted == accepted && c.duplicate == duplicate && c.conflict == 0 && c.rejected == 0,
        || {
            format!(
                "{what}: accepted={} duplicate={} conflict={} rejected={}, expected accepted={accepted} duplicate={duplicate}",
                c.accepted, c.duplicate, c.conflict, c.rejected
            )
        },
    )
}

async fn chain_count(pool: &sqlx::PgPool) -> Result<u32> {
    let n: i64 = sqlx::query_scalar("select count(*) from chain_heads")
        .fetch_one(pool)
        .await?;
    Ok(u32::try_from(n)?)
}

type Material = (Vec<Vec<u8>>, Vec<usize>, Vec<Rows>);

/// The JSON batches of `batch` and the same events as sealed ledger rows,
/// in chunks of [`CHUNK`].
fn batch_material(cfg: &Config, course: &BenchCourse, learners: &[Learner], chains: u32) -> Result<Material> {
    let mut sealer = Sealer::genesis(chains);
    let recorded_at = now_ms();
    let (mut batches, mut lens, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < cfg.batch_events {
        let end = (i + CHUNK).min(cfg.batch_events);
        let mut items = Vec::with_capacity(end - i);
        let mut rows = Rows::default();
        for j in i..end {
            let id = format!("b-{j}");
            let learner = learners
                .get(learner_of(SEED, j as u64, learners.len()))
                .context("no learners")?;
            items.push(event_json(course, &id, &learner.account, SEED, j as u64, true));
            let (at, hours) = event_terms(SEED, j as u64);
            let body = course.completion(&id, &learner.id, at, hours, recorded_at)?;
            rows.push(&sealer.seal(learner.chain, body)?)?;
        }
        batches.push(serde_json::to_vec(&items)?);
        lens.push(end - i);
        chunks.push(rows);
        i = end;
    }
    Ok((batches, lens, chunks))
}

/// The xAPI arrays: as many completion statements as `batch` has events,
/// in arrays of [`CHUNK`], for the same learners.
fn xapi_material(cfg: &Config, learners: &[Learner]) -> Result<(Vec<Vec<u8>>, Vec<usize>)> {
    let seed = SEED ^ 0x0a91;
    let (mut arrays, mut lens) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < cfg.batch_events {
        let end = (i + CHUNK).min(cfg.batch_events);
        let mut items = Vec::with_capacity(end - i);
        for j in i..end {
            let learner = learners
                .get(learner_of(seed, j as u64, learners.len()))
                .context("no learners")?;
            items.push(api::statement_json(&learner.account, seed, j as u64));
        }
        arrays.push(serde_json::to_vec(&items)?);
        lens.push(end - i);
        i = end;
    }
    Ok((arrays, lens))
}

/// Raw inserts of the batch rows into fresh migrated databases; returns the
/// faster method's rows/s.
async fn run_baseline(cfg: &Config, cluster: &mut Cluster, chunks: Arc<Vec<Rows>>, server_pid: u32) -> Result<f64> {
    let total: usize = chunks.iter().map(Rows::len).sum();
    let copies: Vec<Vec<u8>> = chunks.iter().map(Rows::copy_text).collect();
    let binaries: Vec<Vec<u8>> = chunks.iter().map(Rows::copy_binary).collect();
    let copies = Arc::new(copies);
    let binaries = Arc::new(binaries);
    let mut best: Option<(f64, &str)> = None;
    for method in ["unnest", "copy", "copy_binary"] {
        let url = cluster.create(&format!("base_{method}")).await?;
        server::migrate(&cfg.bin, &url).await?;
        let pool = server::pool(&url, u32::try_from(cfg.clients)?).await?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cpu = CpuSnapshot::take(server_pid);
        let started = Instant::now();
        let limit = cfg.scenario_limit;
        let tasks: Vec<_> = (0..cfg.clients)
            .map(|_| {
                let (pool, next, chunks) = (pool.clone(), next.clone(), chunks.clone());
                let (copies, binaries) = (copies.clone(), binaries.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stopped() && started.elapsed() < limit {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(rows) = chunks.get(i) else { break };
                        let done = match method {
                            "copy" => Rows::copy_in(&pool, copies.get(i).context("copy chunk")?, false).await,
                            "copy_binary" => Rows::copy_in(&pool, binaries.get(i).context("copy chunk")?, true).await,
                            _ => rows.insert_unnest(&pool).await,
                        };
                        match done {
                            Ok(k) => n += k,
                            Err(e) => {
                                raise_stop();
                                return Err(e);
                            }
                        }
                    }
                    Ok::<_, anyhow::Error>(n)
                })
            })
            .collect();
        let mut rows = 0;
        for t in tasks {
            rows += t.await.context("baseline task panicked")??;
        }
        let elapsed = started.elapsed();
        let cpu = CpuSnapshot::take(server_pid).since(&cpu);
        let stored: i64 = sqlx::query_scalar("select count(*) from ledger_entries")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        check(stored as u64 == rows, || {
            format!("baseline {method}: inserted {rows}, table holds {stored}")
        })?;
        check(rows == total as u64 || !cfg.smoke, || {
            format!("baseline {method}: inserted {rows} of {total}")
        })?;
        let r = rate(rows, elapsed);
        line!(
            "baseline method={method} rows_per_s={r:.0} rows={rows} clients={} chunk={CHUNK} elapsed_s={:.2}",
            cfg.clients,
            elapsed.as_secs_f64()
        );
        line!(
            "cpu scenario=baseline_{method} wall_s={:.2} {cpu}",
            elapsed.as_secs_f64()
        );
        if best.is_none_or(|(b, _)| r > b) {
            best = Some((r, method));
        }
    }
    let (r, method) = best.context("no baseline ran")?;
    line!("baseline rows_per_s={r:.0} method={method}");
    Ok(r)
}

/// Raw one-row-per-commit inserts of ledger rows at `conns` concurrent
/// connections: what `single` is measured against (the connection count is
/// capped below the server's `max_connections`).
async fn run_single_baseline(cfg: &Config, cluster: &mut Cluster, chunks: &Arc<Vec<Rows>>, conns: usize) -> Result<()> {
    let url = cluster.create(&format!("base_single_{conns}")).await?;
    server::migrate(&cfg.bin, &url).await?;
    let conns = conns.min(240);
    let pool = server::pool(&url, u32::try_from(conns)?).await?;
    let rows: Vec<(usize, usize)> = chunks
        .iter()
        .enumerate()
        .flat_map(|(c, r)| (0..r.len()).map(move |i| (c, i)))
        .take(cfg.single_events)
        .collect();
    let rows = Arc::new(rows);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let limit = cfg.single_limit;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (pool, next, rows, chunks) = (pool.clone(), next.clone(), rows.clone(), chunks.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stopped() && started.elapsed() < limit {
                    let Some(&(c, i)) = rows.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let t = Instant::now();
                    if let Err(e) = chunks[c].insert_one(&pool, i).await {
                        raise_stop();
                        return Err(e);
                    }
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.context("single baseline task panicked")??);
    }
    let elapsed = started.elapsed();
    pool.close().await;
    let n = lat.len() as u64;
    let l = Latencies::new(lat);
    line!(
        "single_baseline conns={conns} rows_per_s={:.0} p50_ms={:.1} p99_ms={:.1} rows={n} elapsed_s={:.2}",
        rate(n, elapsed),
        l.ms(0.5),
        l.ms(0.99),
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Transcript latency, `xuefen verify` and peak RSS over ledgers of growing size.
async fn run_ledgers(
    cfg: &Config,
    cluster: &mut Cluster,
    dir: &Path,
    http: &reqwest::Client,
    course: &Arc<BenchCourse>,
) -> Result<()> {
    let url = cluster.create("ledger").await?;
    let srv = Server::start(&cfg.bin, &url, &dir.join("ledger")).await?;
    let pool = server::pool(&url, u32::try_from(cfg.clients)? + 1).await?;
    let chains = chain_count(&pool).await?;
    let api = Api::setup(http.clone(), &srv.base, &srv.admin_key, "bench", course).await?;
    let probe = api.register("probe-", 1, 1, chains).await?;
    let probe = probe.first().context("no probe learner")?.clone();
    let mut plans: Vec<Arc<FillPlan>> = Vec::new();
    let mut total = 0usize;
    for (stage, &size) in cfg.ledgers.iter().enumerate() {
        let rows = size
            .checked_sub(total + PROBE_EVENTS)
            .context("ledger sizes must grow")?;
        let targets = (rows / (2 * PER_TARGET)).clamp(1, 10);
        let start = Sealer::load(&pool).await?;
        let plan = Arc::new(FillPlan::new(
            SEED ^ (stage as u64 + 1),
            &format!("f{stage}-"),
            rows,
            targets,
            PER_TARGET,
            start,
            now_ms(),
        )?);
        let took = fill::fill(&pool, plan.clone(), course.clone(), cfg.clients).await?;
        line!(
            "fill ledger={size} rows={rows} learners={} fill_s={:.2} rows_per_s={:.0} clients={}",
            plan.learners.len(),
            took.as_secs_f64(),
            rate(rows as u64, took),
            cfg.clients
        );
        // The service appends after the raw rows: the heads match.
        let items: Vec<serde_json::Value> = (0..PROBE_EVENTS)
            .map(|i| {
                let id = format!("probe-{stage}-{i}");
                event_json(course, &id, &probe.account, SEED ^ 0x9, i as u64, true)
            })
            .collect();
        let c = api.post_batch(serde_json::to_vec(&items)?).await?;
        expect_counts(&c, PROBE_EVENTS as u64, 0, "probe batch after the fill")?;
        total += rows + PROBE_EVENTS;
        plans.push(plan.clone());

        // Transcripts of learners with PER_TARGET entries each.
        let targets = plan.target_ids();
        let hwm_reset = reset_hwm(srv.pid);
        let mut lat = Vec::with_capacity(cfg.transcript_requests);
        for i in 0..cfg.transcript_requests {
            if stopped() {
                break;
            }
            let learner = targets.get(i % targets.len()).context("no target learner")?;
            let t = Instant::now();
            let n = api.transcript_len(learner).await?;
            lat.push(t.elapsed());
            check(n == PER_TARGET, || {
                format!("transcript of {learner} has {n} entries, expected {PER_TARGET}")
            })?;
        }
        let peak = vm_hwm_kb(srv.pid);
        let requests = lat.len();
        let l = Latencies::new(lat);
        line!(
            "transcript ledger={size} entries_per_transcript={PER_TARGET} p50_ms={:.1} p99_ms={:.1} requests={requests} clients=1",
            l.ms(0.5),
            l.ms(0.99)
        );
        check(requests == cfg.transcript_requests, || {
            format!("{requests} of {} transcript requests ran", cfg.transcript_requests)
        })?;
        line!(
            "rss process=server phase=transcript ledger={size} peak_mb={} since={}",
            peak.map_or("n/a".into(), |kb| format!("{:.1}", mb(kb))),
            if hwm_reset { "transcript_start" } else { "server_start" }
        );

        // Verification against raw hashing of the same canonical bytes.
        let v = server::verify(&cfg.bin, &url).await?;
        check(v.entries == total as u64, || {
            format!("verify saw {} entries, the ledger holds {total}", v.entries)
        })?;
        let (hashed, sha_rate) = {
            let (plans, course) = (plans.clone(), course.clone());
            tokio::task::spawn_blocking(move || fill::sha256_rate(&plans, &course))
                .await
                .context("hashing task panicked")??
        };
        line!(
            "verify ledger={size} entries={} verify_s={:.2} verify_entries_per_s={:.0} sha256_entries_per_s={sha_rate:.0} sha256_hashes={hashed} ratio={:.3}",
            v.entries,
            v.elapsed.as_secs_f64(),
            v.entries_per_s,
            v.entries_per_s / sha_rate.max(1e-9)
        );
        line!(
            "rss process=verify ledger={size} peak_mb={}",
            v.peak_rss_kb.map_or("n/a".into(), |kb| format!("{:.1}", mb(kb)))
        );

        // The raw floors of verify: the same rows bulk-read, one SHA-256
        // each, chain by chain and in one sequential read.
        let floors = [
            ("verify_baseline", baseline::verify_baseline(&pool, chains).await?),
            ("verify_baseline_scan", baseline::verify_baseline_scan(&pool).await?),
        ];
        for (name, (rows_read, read_took)) in floors {
            check(rows_read == total as u64, || {
                format!("{name} read {rows_read} rows, the ledger holds {total}")
            })?;
            let floor_rate = rate(rows_read, read_took);
            line!(
                "{name} ledger={size} entries={rows_read} read_s={:.2} entries_per_s={floor_rate:.0} verify_ratio={:.3}",
                read_took.as_secs_f64(),
                v.entries_per_s / floor_rate.max(1e-9)
            );
        }
        // Sealing storage per entry, and per day of an idle ledger.
        let idle = Duration::from_secs(if cfg.smoke { 5 } else { 30 });
        for l in baseline::sealing_storage(&pool, total as u64, Duration::from_secs(600), idle, size).await? {
            line!("{l}");
        }
    }
    pool.close().await;
    srv.stop().await;
    Ok(())
}
