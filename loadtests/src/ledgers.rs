//! `ledgers`: transcript latency, `xuefen verify` and peak RSS over ledgers
//! of growing size, each filled with raw rows and then appended to by the
//! service, with verify's raw floors and the sealing storage figures.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::api::{Api, event_json, now_ms};
use crate::fill::{self, FillPlan};
use crate::ingest::expect_counts;
use crate::ledger::{BenchCourse, Sealer};
use crate::server::{self, Cluster, Server};
use crate::stats::{Latencies, mb, rate, reset_hwm, vm_hwm_kb};
use crate::{Config, PER_TARGET, PROBE_EVENTS, SEED, baseline, chain_count, check, stopped};

/// Transcript latency, `xuefen verify` and peak RSS over ledgers of growing size.
pub(crate) async fn run_ledgers(
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
