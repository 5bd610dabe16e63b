//! The ingestion scenarios on the PostgreSQL service: `batch`, `import`,
//! `xapi`, `xapi_documents` and `single`, and the material they post
//! (the events' JSON and the ledger rows the service would write for them,
//! which the raw baselines insert).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::api::{self, Api, BatchCounts, Workload, event_json, learner_of, now_ms};
use crate::fill::CHUNK;
use crate::ingest_baseline::run_single_baseline;
use crate::ledger::{BenchCourse, Learner, Rows, Sealer, event_terms};
use crate::server::{Cluster, Server};
use crate::stats::{CpuSnapshot, Latencies, mb, rate, reset_hwm, vm_hwm_kb};
use crate::{Config, IMPORT_PEOPLE_FROM, SEED, check};

/// `batch`: the batches posted by `clients` at a time.
pub(crate) async fn run_batch(
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
pub(crate) async fn run_import(
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
pub(crate) async fn run_xapi(
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
pub(crate) async fn run_xapi_documents(cfg: &Config, api: &Api, svc_pool: &sqlx::PgPool, pid: u32) -> Result<()> {
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
pub(crate) async fn run_singles(
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

pub(crate) fn expect_counts(c: &BatchCounts, accepted: u64, duplicate: u64, what: &str) -> Result<()> {
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

pub(crate) type Material = (Vec<Vec<u8>>, Vec<usize>, Vec<Rows>);

/// The JSON batches of `batch` and the same events as sealed ledger rows,
/// in chunks of [`CHUNK`].
pub(crate) fn batch_material(
    cfg: &Config,
    course: &BenchCourse,
    learners: &[Learner],
    chains: u32,
) -> Result<Material> {
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
pub(crate) fn xapi_material(cfg: &Config, learners: &[Learner]) -> Result<(Vec<Vec<u8>>, Vec<usize>)> {
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
