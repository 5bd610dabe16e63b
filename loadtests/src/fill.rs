//! Filling a service's ledger fast: valid chained rows written with raw
//! `UNNEST` inserts behind the service, then the chain heads moved to match.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};
use xuefen_core::entry::EntryBody;
use xuefen_core::event::Millis;
use xuefen_core::ids::LearnerId;

use crate::ledger::{BenchCourse, Rows, Sealer, event_terms};
use crate::stopped;

/// Rows per insert transaction.
pub(crate) const CHUNK: usize = 1_000;

/// One fill: which learners get which entries, in which order.
pub(crate) struct FillPlan {
    pub seed: u64,
    pub prefix: String,
    /// `(id, chain)`; the first `targets` get exactly `per_target` entries each.
    pub learners: Vec<(LearnerId, u32)>,
    pub targets: usize,
    /// The learner (index into `learners`) of each entry, in ledger order.
    pub order: Vec<u32>,
    pub recorded_at: Millis,
    /// The heads before the fill.
    pub start: Sealer,
}

impl FillPlan {
    /// `rows` entries: `targets` learners with `per_target` entries each,
    /// the rest spread over filler learners (about 20 entries each), all
    /// interleaved at random.
    pub(crate) fn new(
        seed: u64,
        prefix: &str,
        rows: usize,
        targets: usize,
        per_target: usize,
        start: Sealer,
        recorded_at: Millis,
    ) -> Result<Self> {
        let target_rows = targets * per_target;
        if target_rows > rows {
            bail!("a fill of {rows} rows cannot give {targets} learners {per_target} entries");
        }
        let chains = u32::try_from(start.heads().len())?;
        let filler_rows = rows - target_rows;
        let fillers = filler_rows.div_ceil(20);
        let mut rng = StdRng::seed_from_u64(seed);
        let learners: Vec<(LearnerId, u32)> = (0..targets + fillers)
            .map(|_| {
                let id = LearnerId::from_random(rng.r#gen());
                let chain = id.chain(chains);
                (id, chain)
            })
            .collect();
        let mut order: Vec<u32> = Vec::with_capacity(rows);
        for t in 0..targets {
            order.extend(std::iter::repeat_n(u32::try_from(t)?, per_target));
        }
        for _ in 0..filler_rows {
            order.push(u32::try_from(targets + rng.gen_range(0..fillers.max(1)))?);
        }
        order.shuffle(&mut rng);
        Ok(Self {
            seed,
            prefix: prefix.to_owned(),
            learners,
            targets,
            order,
            recorded_at,
            start,
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn target_ids(&self) -> Vec<LearnerId> {
        self.learners[..self.targets].iter().map(|(id, _)| id.clone()).collect()
    }

    /// The chain and body of entry `i`.
    pub(crate) fn body(&self, course: &BenchCourse, i: usize) -> Result<(u32, EntryBody)> {
        let l = *self.order.get(i).context("entry out of range")? as usize;
        let (id, chain) = self.learners.get(l).context("learner out of range")?;
        let (at, hours) = event_terms(self.seed, i as u64);
        let event = format!("{}{i}", self.prefix);
        Ok((*chain, course.completion(&event, id, at, hours, self.recorded_at)?))
    }

    /// Inserts the plan's learners (straight into `learners`).
    async fn insert_learners(&self, pool: &PgPool) -> Result<()> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xd0c);
        for part in self.learners.chunks(10_000) {
            let ids: Vec<&str> = part.iter().map(|(id, _)| id.as_str()).collect();
            let chains: Vec<i32> = part.iter().map(|(_, c)| i32::try_from(*c)).collect::<Result<_, _>>()?;
            let hashes: Vec<Vec<u8>> = part.iter().map(|_| rng.r#gen::<[u8; 32]>().to_vec()).collect();
            sqlx::query(
                "insert into learners (id, chain_id, document_kind, document_hash, name)
                 select u.id, u.chain_id, 'passport', u.hash, 'Fill learner'
                   from unnest($1::text[], $2::int[], $3::bytea[]) as u(id, chain_id, hash)",
            )
            .bind(&ids)
            .bind(&chains)
            .bind(&hashes)
            .execute(pool)
            .await
            .context("insert fill learners")?;
            let secrets: Vec<Vec<u8>> = part.iter().map(|_| rng.r#gen::<[u8; 32]>().to_vec()).collect();
            sqlx::query(
                "insert into learner_secrets (learner_id, secret)
                 select u.id, u.secret from unnest($1::text[], $2::bytea[]) as u(id, secret)",
            )
            .bind(&ids)
            .bind(&secrets)
            .execute(pool)
            .await
            .context("insert fill learner secrets")?;
        }
        Ok(())
    }
}

/// Writes the plan: learners, rows from `clients` concurrent inserters fed
/// by one sealing thread, then the chain heads. Returns the time taken.
pub(crate) async fn fill(
    pool: &PgPool,
    plan: Arc<FillPlan>,
    course: Arc<BenchCourse>,
    clients: usize,
) -> Result<Duration> {
    let started = Instant::now();
    plan.insert_learners(pool).await?;
    let (tx, rx) = mpsc::channel::<Rows>(clients * 4);
    let generator = {
        let (plan, course) = (plan.clone(), course.clone());
        tokio::task::spawn_blocking(move || -> Result<Sealer> {
            let mut sealer = plan.start.clone();
            let mut i = 0;
            while i < plan.rows() {
                if stopped() {
                    bail!("stopped during the fill");
                }
                let mut rows = Rows::default();
                for j in i..(i + CHUNK).min(plan.rows()) {
                    let (chain, body) = plan.body(&course, j)?;
                    rows.push(&sealer.seal(chain, body)?)?;
                }
                i += rows.len();
                if tx.blocking_send(rows).is_err() {
                    bail!("the inserters stopped");
                }
            }
            Ok(sealer)
        })
    };
    let rx = Arc::new(Mutex::new(rx));
    let inserters: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (rx, pool) = (rx.clone(), pool.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(rows) = next else { break };
                    match rows.insert_unnest(&pool).await {
                        Ok(k) => n += k,
                        Err(e) => {
                            // Stops the generator, which ends the other inserters.
                            crate::raise_stop();
                            return Err(e);
                        }
                    }
                }
                Ok::<_, anyhow::Error>(n)
            })
        })
        .collect();
    let mut inserted = 0;
    let mut failure = None;
    for t in inserters {
        match t.await.context("inserter panicked")? {
            Ok(n) => inserted += n,
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let sealer = generator.await.context("generator panicked")?;
    if let Some(e) = failure {
        return Err(e);
    }
    let sealer = sealer?;
    if inserted != plan.rows() as u64 {
        bail!("fill inserted {inserted} rows of {}", plan.rows());
    }
    sealer.store(pool).await?;
    Ok(started.elapsed())
}

/// Raw SHA-256 over the canonical bytes of every planned entry, on one
/// core: entries per second of `entry_hash` alone (encoding untimed).
/// Small ledgers are hashed again until a quarter second has been timed.
pub(crate) fn sha256_rate(plans: &[Arc<FillPlan>], course: &BenchCourse) -> Result<(u64, f64)> {
    let mut encoded: Vec<Vec<(u32, Vec<u8>)>> = Vec::new();
    let mut hashed = 0u64;
    let mut spent = Duration::ZERO;
    for plan in plans {
        let mut sealer = plan.start.clone();
        let mut i = 0;
        while i < plan.rows() {
            let end = (i + 10_000).min(plan.rows());
            let chunk: Vec<(u32, Vec<u8>)> = (i..end)
                .map(|j| plan.body(course, j).map(|(c, b)| (c, b.encode())))
                .collect::<Result<_>>()?;
            let t = Instant::now();
            for (chain, bytes) in &chunk {
                sealer.hash_only(*chain, bytes)?;
            }
            spent += t.elapsed();
            hashed += chunk.len() as u64;
            if plans.iter().map(|p| p.rows()).sum::<usize>() <= 100_000 {
                encoded.push(chunk);
            }
            i = end;
        }
    }
    let first = plans.first().context("nothing to hash")?;
    while !encoded.is_empty() && spent < Duration::from_millis(250) {
        let mut sealer = first.start.clone();
        let t = Instant::now();
        for (chain, bytes) in encoded.iter().flatten() {
            sealer.hash_only(*chain, bytes)?;
        }
        spent += t.elapsed();
        hashed += encoded.iter().map(Vec::len).sum::<usize>() as u64;
    }
    Ok((hashed, crate::stats::rate(hashed, spent)))
}
