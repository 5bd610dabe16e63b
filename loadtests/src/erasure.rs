//! `erasure`: the cost of erasing a learner who has used the xAPI door
//! (`DELETE /v1/learners/{id}`, admin), against a raw baseline that
//! deletes the same kinds of rows with the fewest statements SQL allows.
//!
//! The service's erasure does more than the baseline: it appends the
//! `erased` entry under the chain head's lock, finds the learner's xAPI
//! agents on every site (accounts under each site's home page, mailbox
//! hashes), removes the statements they voided, attachments and documents,
//! and checks every row it touches against the append-only guard. The
//! baseline is what a hand-written script would do for the same learner:
//! one transaction that deletes the statements by agent key, reassigns the
//! ledger rows and deletes the learner's rows.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::api::{Api, XAPI_HOME_PAGE};
use crate::ledger::Learner;
use crate::stats::{CpuSnapshot, Latencies, rate};
use crate::{check, stopped};

/// What one erased learner held before the erasure.
#[derive(Default, Clone, Copy)]
struct Held {
    statements: i64,
    entries: i64,
}

/// The agent key the store files the benchmark's statements under.
fn agent_key(learner: &Learner) -> String {
    format!("account|{XAPI_HOME_PAGE}|{}", learner.account)
}

async fn held(pool: &PgPool, learner: &Learner) -> Result<Held> {
    let statements: i64 = sqlx::query_scalar("select count(*) from xapi_statements where agent = $1")
        .bind(agent_key(learner))
        .fetch_one(pool)
        .await?;
    let entries: i64 = sqlx::query_scalar("select count(*) from ledger_entries where learner_id = $1")
        .bind(learner.id.as_str())
        .fetch_one(pool)
        .await?;
    Ok(Held { statements, entries })
}

/// One side of the comparison: `erase` run over `learners` one after
/// another (stopping at `limit`), what they held before, how long each
/// took, and the check that nothing of theirs is left.
struct Side {
    before: Vec<Held>,
    lat: Vec<Duration>,
    took: Duration,
}

impl Side {
    async fn run<'a, F, Fut>(pool: &PgPool, learners: &'a [Learner], limit: Duration, erase: F) -> Result<Self>
    where
        F: Fn(&'a Learner) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut before = Vec::with_capacity(learners.len());
        for learner in learners {
            before.push(held(pool, learner).await?);
        }
        let started = Instant::now();
        let mut lat = Vec::with_capacity(learners.len());
        for learner in learners {
            if stopped() || started.elapsed() > limit {
                break;
            }
            let t = Instant::now();
            erase(learner).await?;
            lat.push(t.elapsed());
        }
        let took = started.elapsed();
        let done = lat.len();
        check(done == learners.len(), || {
            format!("erasure ran {done} of {} erasures", learners.len())
        })?;
        for learner in learners {
            let after = held(pool, learner).await?;
            check(after.statements == 0 && after.entries == 0, || {
                format!(
                    "after its erasure {} still has {} statements and {} entries",
                    learner.id, after.statements, after.entries
                )
            })?;
        }
        Ok(Self { before, lat, took })
    }

    fn mean_ms(&self) -> f64 {
        self.took.as_secs_f64() * 1e3 / self.lat.len().max(1) as f64
    }

    /// The line's figures after its name: learners, latencies, `extra`,
    /// what each learner held.
    fn figures(&self, extra: &str) -> String {
        let l = Latencies::new(self.lat.clone());
        let per = |f: fn(&Held) -> i64| self.before.iter().map(f).sum::<i64>() as f64 / self.before.len().max(1) as f64;
        format!(
            "learners={} p50_ms={:.1} p99_ms={:.1} mean_ms={:.1} {extra}statements_per_learner={:.1} entries_per_learner={:.1}",
            self.lat.len(),
            l.ms(0.5),
            l.ms(0.99),
            self.mean_ms(),
            per(|h| h.statements),
            per(|h| h.entries),
        )
    }
}

/// Erases `count` learners through the API and as many others by raw SQL;
/// prints the `erasure`, `erasure_baseline` and `erasure_ratio` lines and
/// answers the ledger entries the service appended (one per erasure).
pub(crate) async fn run(
    api: &Api,
    pool: &PgPool,
    learners: &[Learner],
    count: usize,
    limit: Duration,
    pid: u32,
) -> Result<u64> {
    check(learners.len() >= 2 * count, || {
        format!("erasure needs {} learners, there are {}", 2 * count, learners.len())
    })?;
    let (erased, raw) = learners.split_at(count);
    let raw = &raw[..count];

    // The service, one erasure after another as an operator would run them.
    let cpu = CpuSnapshot::take(pid);
    let service = Side::run(pool, erased, limit, |learner| api.erase(learner)).await?;
    let cpu = CpuSnapshot::take(pid).since(&cpu);
    for learner in erased {
        check(
            api.transcript_status(&learner.id).await? == StatusCode::NOT_FOUND,
            || format!("the transcript of erased {} is not 404", learner.id),
        )?;
    }
    let done = service.lat.len();
    let per_s = format!("erasures_per_s={:.1} ", rate(done as u64, service.took));
    line!("erasure {}", service.figures(&per_s));
    line!("cpu scenario=erasure wall_s={:.2} {cpu}", service.took.as_secs_f64());

    // The raw baseline over other learners of the same shape.
    let baseline = Side::run(pool, raw, limit, |learner| raw_erase(pool, learner)).await?;
    line!("erasure_baseline {}", baseline.figures(""));
    line!("erasure_ratio={:.3}", baseline.mean_ms() / service.mean_ms().max(1e-9));
    Ok(done as u64)
}

/// The baseline: the same learner's statements, ledger rows and personal
/// rows removed in one transaction of plain statements.
async fn raw_erase(pool: &PgPool, learner: &Learner) -> Result<()> {
    let mut tx = pool.begin().await?;
    let ids: Vec<String> =
        sqlx::query_scalar("delete from xapi_statements where site_id = 'bench' and agent = $1 returning statement_id")
            .bind(agent_key(learner))
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("delete from xapi_statement_related where site_id = 'bench' and statement_id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("set local xuefen.erasure = 'on'").execute(&mut *tx).await?;
    sqlx::query(
        "update ledger_entries set learner_id = 'lrn_' || md5(random()::text), reason_note = null
          where learner_id = $1",
    )
    .bind(learner.id.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query("set local xuefen.erasure = 'off'")
        .execute(&mut *tx)
        .await?;
    for sql in [
        "delete from learner_accounts where learner_id = $1",
        "delete from learner_pseudonyms where learner_id = $1",
        "delete from learner_secrets where learner_id = $1",
        "delete from learner_keys where learner_id = $1",
        "delete from learners where id = $1",
    ] {
        sqlx::query(sql)
            .bind(learner.id.as_str())
            .execute(&mut *tx)
            .await
            .with_context(|| format!("raw erasure: {sql}"))?;
    }
    tx.commit().await?;
    Ok(())
}
