//! The raw floors of ingestion: the batch's ledger rows inserted into fresh
//! migrated databases by `unnest`, text `COPY` and binary `COPY`
//! (`baseline`), and one row per commit at `single`'s connection counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::fill::CHUNK;
use crate::ledger::Rows;
use crate::server::{self, Cluster};
use crate::stats::{CpuSnapshot, Latencies, rate};
use crate::{Config, check, raise_stop, stopped};

/// Raw inserts of the batch rows into fresh migrated databases; returns the
/// faster method's rows/s.
pub(crate) async fn run_baseline(
    cfg: &Config,
    cluster: &mut Cluster,
    chunks: Arc<Vec<Rows>>,
    server_pid: u32,
) -> Result<f64> {
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
pub(crate) async fn run_single_baseline(
    cfg: &Config,
    cluster: &mut Cluster,
    chunks: &Arc<Vec<Rows>>,
    conns: usize,
) -> Result<()> {
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
