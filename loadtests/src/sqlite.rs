//! The batch scenario on the embedded SQLite store, against its own raw
//! baseline.
//!
//! The real `xuefen serve` runs on a fresh SQLite file; the same batch
//! shape as the PostgreSQL `batch` scenario (JSON arrays of [`CHUNK`] fresh
//! completions, learners named by local account, `--clients` concurrent
//! clients) is posted to it. The baseline writes the same ledger rows (real
//! canonical bytes and hash chains from `xuefen-core`) straight into
//! `ledger_entries` of another file migrated by `xuefen migrate` — the same
//! tables, indexes and triggers — with the settings the service uses (WAL,
//! `synchronous = FULL`), as prepared multi-row inserts of the service's
//! statement size, [`CHUNK`] rows per `BEGIN IMMEDIATE` transaction, from
//! one connection: SQLite has one writer at a time, so more clients would
//! only queue on its lock.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use xuefen_core::entry::Entry;

use crate::api::{self, Api, event_json, learner_of, now_ms};
use crate::fill::CHUNK;
use crate::ingest::expect_counts;
use crate::ledger::{BenchCourse, Learner, Sealer, event_terms};
use crate::stats::{CpuSnapshot, Latencies, rate};
use crate::{Config, SEED, check, server, stopped};

/// Rows per insert statement: what the SQLite store binds per statement
/// (500 rows × 20 columns = 10 000 parameters, below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;
/// Columns of `ledger_entries`.
const COLUMNS: usize = 20;
/// How long a connection waits for the write lock, as the store does.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection settings of the SQLite store (`xuefen-store-sqlite`).
fn options(path: &Path) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(&url(path))
        .context("SQLite URL")?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn read_pool(path: &Path) -> Result<SqlitePool> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(path)?)
        .await
        .with_context(|| format!("open {}", path.display()))
}

async fn count(pool: &SqlitePool, table: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(pool)
        .await?)
}

/// Runs the SQLite scenario; returns `sqlite_batch` events/s ÷
/// `sqlite_baseline` rows/s.
pub(crate) async fn run(cfg: &Config, http: &reqwest::Client, course: &Arc<BenchCourse>, dir: &Path) -> Result<f64> {
    let dir = dir.join("sqlite");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let svc_file = dir.join("svc.db");
    let srv = server::Server::start(&cfg.bin, &url(&svc_file), &dir.join("svc")).await?;
    let svc = read_pool(&svc_file).await?;
    let chains = u32::try_from(count(&svc, "chain_heads").await?)?;
    let api = Api::setup(http.clone(), &srv.base, &srv.admin_key, "bench", course).await?;
    let t = Instant::now();
    let learners = api.register("acct-", cfg.learners, 32, chains).await?;
    let took = t.elapsed();
    println!(
        "sqlite_setup learners={} register_s={:.2} learners_per_s={:.0}",
        learners.len(),
        took.as_secs_f64(),
        rate(learners.len() as u64, took)
    );
    let (batches, lens, chunks) = material(cfg, course, &learners, chains)?;

    // ---------------------------------------------------------------- baseline
    let base_file = dir.join("baseline.db");
    server::migrate(&cfg.bin, &url(&base_file)).await?;
    let baseline = baseline(cfg, &base_file, &chunks, srv.pid).await?;
    drop(chunks);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(PathBuf::from(format!("{}{suffix}", base_file.display())));
    }

    // ---------------------------------------------------------------- batch
    let batches = Arc::new(batches);
    let cpu = CpuSnapshot::take(srv.pid);
    let r = api::run_batches(&api, batches.clone(), cfg.clients, cfg.scenario_limit).await?;
    let cpu = CpuSnapshot::take(srv.pid).since(&cpu);
    let posted: usize = lens.iter().take(r.sent).sum();
    let batch_rate = rate(r.counts.accepted, r.elapsed);
    let l = Latencies::new(r.latencies);
    println!(
        "sqlite_batch events_per_s={batch_rate:.0} p50_ms={:.1} p99_ms={:.1} clients={} batch={CHUNK} events={posted} accepted={} elapsed_s={:.2}",
        l.ms(0.5),
        l.ms(0.99),
        cfg.clients,
        r.counts.accepted,
        r.elapsed.as_secs_f64()
    );
    println!("cpu scenario=sqlite_batch wall_s={:.2} {cpu}", r.elapsed.as_secs_f64());
    expect_counts(&r.counts, posted as u64, 0, "sqlite_batch")?;
    check(r.sent == batches.len() || !cfg.smoke, || {
        format!("sqlite_batch sent {} of {} batches", r.sent, batches.len())
    })?;
    let stored = count(&svc, "ledger_entries").await?;
    check(stored as u64 == r.counts.accepted, || {
        format!(
            "the SQLite ledger holds {stored} entries, the service accepted {}",
            r.counts.accepted
        )
    })?;
    svc.close().await;
    srv.stop().await;

    // The ledger the service wrote verifies and holds every accepted event.
    let v = server::verify(&cfg.bin, &url(&svc_file)).await?;
    check(v.entries == r.counts.accepted, || {
        format!(
            "verify saw {} entries, the service accepted {}",
            v.entries, r.counts.accepted
        )
    })?;
    println!(
        "sqlite_verify entries={} verify_s={:.2} verify_entries_per_s={:.0}",
        v.entries,
        v.elapsed.as_secs_f64(),
        v.entries_per_s
    );
    Ok(batch_rate / baseline.max(1e-9))
}

type Material = (Vec<Vec<u8>>, Vec<usize>, Vec<Vec<Entry>>);

/// The JSON batches of `sqlite_batch` and the same events as sealed ledger
/// entries, in chunks of [`CHUNK`] (the same events as the PostgreSQL
/// `batch`, for this database's learners).
fn material(cfg: &Config, course: &BenchCourse, learners: &[Learner], chains: u32) -> Result<Material> {
    let mut sealer = Sealer::genesis(chains);
    let recorded_at = now_ms();
    let (mut batches, mut lens, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < cfg.batch_events {
        let end = (i + CHUNK).min(cfg.batch_events);
        let mut items = Vec::with_capacity(end - i);
        let mut entries = Vec::with_capacity(end - i);
        for j in i..end {
            let id = format!("b-{j}");
            let learner = learners
                .get(learner_of(SEED, j as u64, learners.len()))
                .context("no learners")?;
            items.push(event_json(course, &id, &learner.account, SEED, j as u64, true));
            let (at, hours) = event_terms(SEED, j as u64);
            let body = course.completion(&id, &learner.id, at, hours, recorded_at)?;
            entries.push(sealer.seal(learner.chain, body)?);
        }
        batches.push(serde_json::to_vec(&items)?);
        lens.push(end - i);
        chunks.push(entries);
        i = end;
    }
    Ok((batches, lens, chunks))
}

/// One row of `ledger_entries`, encoded before the clock starts.
struct Row {
    ints: [i64; 7],
    prev_hash: [u8; 32],
    hash: [u8; 32],
    texts: [String; 5],
    optional: [Option<i64>; 4],
    target_event: Option<String>,
    reason: String,
}

impl Row {
    fn new(e: &Entry) -> Result<Self> {
        let b = &e.body;
        Ok(Self {
            ints: [
                i64::from(e.position.chain),
                i64::try_from(e.position.seq)?,
                i64::from(b.kind.code()),
                b.credits.cents(),
                b.occurred_at.0,
                b.recorded_at.0,
                i64::from(b.rule_version),
            ],
            prev_hash: e.prev_hash,
            hash: e.hash,
            texts: [
                b.site.as_str().to_owned(),
                b.event_id.as_str().to_owned(),
                b.learner.as_str().to_owned(),
                b.course.as_str().to_owned(),
                b.category.as_str().to_owned(),
            ],
            optional: [
                b.score.map(|s| s.cents()),
                b.hours.map(|h| h.cents()),
                b.refers_to.map(|p| i64::from(p.chain)),
                b.refers_to.map(|p| i64::try_from(p.seq)).transpose()?,
            ],
            target_event: b.target_event.as_ref().map(|t| t.as_str().to_owned()),
            reason: b.reason.as_str().to_owned(),
        })
    }
}

/// `insert into ledger_entries (…) values (?, …), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; COLUMNS].join(", "));
    format!(
        "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents,
                rule_version, refers_chain, refers_seq, target_event, reason)
         values {}",
        vec![one; rows].join(", ")
    )
}

/// Inserts `rows` with one prepared statement per [`ROWS_PER_STATEMENT`]
/// rows (cached: every full statement has the same text).
async fn insert(conn: &mut SqliteConnection, rows: &[Row], full: &str) -> Result<()> {
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        let partial;
        let sql = if part.len() == ROWS_PER_STATEMENT {
            full
        } else {
            partial = insert_sql(part.len());
            &partial
        };
        let mut q = sqlx::query(sql);
        for r in part {
            q = q
                .bind(r.ints[0])
                .bind(r.ints[1])
                .bind(&r.prev_hash[..])
                .bind(&r.hash[..])
                .bind(r.ints[2])
                .bind(r.texts[0].as_str())
                .bind(r.texts[1].as_str())
                .bind(r.texts[2].as_str())
                .bind(r.texts[3].as_str())
                .bind(r.texts[4].as_str())
                .bind(r.ints[3])
                .bind(r.ints[4])
                .bind(r.ints[5])
                .bind(r.optional[0])
                .bind(r.optional[1])
                .bind(r.ints[6])
                .bind(r.optional[2])
                .bind(r.optional[3])
                .bind(r.target_event.as_deref())
                .bind(r.reason.as_str());
        }
        q.execute(&mut *conn).await.context("insert ledger rows")?;
    }
    Ok(())
}

/// The raw baseline: returns its rows/s.
async fn baseline(cfg: &Config, file: &Path, chunks: &[Vec<Entry>], server_pid: u32) -> Result<f64> {
    let total: usize = chunks.iter().map(Vec::len).sum();
    let rows: Vec<Vec<Row>> = chunks
        .iter()
        .map(|c| c.iter().map(Row::new).collect::<Result<_>>())
        .collect::<Result<_>>()?;
    let full = insert_sql(ROWS_PER_STATEMENT);
    let mut conn = SqliteConnection::connect_with(&options(file)?)
        .await
        .with_context(|| format!("open {}", file.display()))?;
    let cpu = CpuSnapshot::take(server_pid);
    let started = Instant::now();
    let mut inserted = 0u64;
    for chunk in &rows {
        if stopped() || started.elapsed() >= cfg.scenario_limit {
            break;
        }
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        insert(&mut tx, chunk, &full).await?;
        tx.commit().await?;
        inserted += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    let cpu = CpuSnapshot::take(server_pid).since(&cpu);
    let stored: i64 = sqlx::query_scalar("select count(*) from ledger_entries")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    check(stored as u64 == inserted, || {
        format!("sqlite_baseline: inserted {inserted}, table holds {stored}")
    })?;
    check(inserted == total as u64 || !cfg.smoke, || {
        format!("sqlite_baseline: inserted {inserted} of {total}")
    })?;
    let r = rate(inserted, elapsed);
    println!(
        "sqlite_baseline rows_per_s={r:.0} rows={inserted} clients=1 chunk={CHUNK} statement_rows={ROWS_PER_STATEMENT} synchronous=full elapsed_s={:.2}",
        elapsed.as_secs_f64()
    );
    println!("cpu scenario=sqlite_baseline wall_s={:.2} {cpu}", elapsed.as_secs_f64());
    Ok(r)
}
