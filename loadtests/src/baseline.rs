//! Raw floors and storage figures beside `xuefen verify`:
//!
//! - [`verify_baseline`]: the bulk read of the very rows `xuefen verify`
//!   reads (the same columns of `ledger_entries`, chain by chain in `seq`
//!   order, four chains at once, as verify's walk does), as binary `COPY … TO
//!   STDOUT`, with one SHA-256 per row over its bytes in this process. No
//!   decoding, no chain or log checks: what verify cannot beat.
//! - [`verify_baseline_scan`]: the same rows and columns in one binary
//!   `COPY` in storage order (a sequential scan), one SHA-256 per row.
//! - [`sealing_storage`]: the bytes the log's tables take (tiles, segments,
//!   checkpoints, chain tips, cosignatures, TOAST and indexes included) per
//!   sealed entry, and what they grow by while the ledger is idle, per day.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use xuefen_core::merkle;

/// The columns `xuefen verify` reads of each entry (the PostgreSQL store's
/// `entry_columns!`).
const COLUMNS: &str = "chain_id::bigint, seq, prev_hash, hash, kind::bigint, site_id, event_id, learner_id, \
     course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents, \
     rule_version::bigint, refers_chain::bigint, refers_seq, target_event, reason, recognition_group, \
     withheld_cents, learner_commitment, reason_note";

/// Chains read at once, as `xuefen verify` does.
const PARALLEL: usize = 4;

/// Reads one chain by binary COPY and hashes each row; the rows read.
async fn copy_chain(pool: &PgPool, chain: u32) -> Result<u64> {
    let sql = format!(
        "copy (select {COLUMNS} from ledger_entries where chain_id = {chain} order by seq) to stdout (format binary)"
    );
    copy_hash(pool, &sql).await
}

/// Runs the binary `COPY … TO STDOUT` `sql` and hashes each row; the rows read.
async fn copy_hash(pool: &PgPool, sql: &str) -> Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut stream = conn.copy_out_raw(sql).await.context("copy out")?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut at = 0usize;
    let mut header = false;
    let mut rows = 0u64;
    while let Some(chunk) = stream.try_next().await.context("copy out")? {
        buf.extend_from_slice(&chunk);
        if !header {
            // 11-byte signature, flags, header extension length (0).
            if buf.len() < 19 {
                continue;
            }
            at = 19;
            header = true;
        }
        // Whole tuples: i16 field count, then per field i32 length and data.
        while let Some(count) = buf.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]])) {
            if count == -1 {
                at += 2;
                break;
            }
            let mut end = at + 2;
            let mut whole = true;
            for _ in 0..count {
                let Some(len) = buf
                    .get(end..end + 4)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    whole = false;
                    break;
                };
                end += 4 + usize::try_from(len.max(0))?;
                if end > buf.len() {
                    whole = false;
                    break;
                }
            }
            if !whole {
                break;
            }
            let _ = std::hint::black_box(merkle::leaf_hash(&buf[at + 2..end]));
            rows += 1;
            at = end;
        }
        buf.drain(..at);
        at = 0;
    }
    Ok(rows)
}

/// The raw floor of `xuefen verify`: (rows, elapsed).
pub(crate) async fn verify_baseline(pool: &PgPool, chains: u32) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let counts: Vec<u64> = futures::stream::iter(0..chains)
        .map(|c| copy_chain(pool, c))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    Ok((counts.iter().sum(), started.elapsed()))
}

/// The other raw floor: every row of the ledger in one binary `COPY` in
/// storage order (a sequential scan, each page read once), one SHA-256 per
/// row: (rows, elapsed). `xuefen verify` reads the rows so for its chains,
/// and reads the log's links a second time.
pub(crate) async fn verify_baseline_scan(pool: &PgPool) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let sql = format!("copy (select {COLUMNS} from ledger_entries) to stdout (format binary)");
    let rows = copy_hash(pool, &sql).await?;
    Ok((rows, started.elapsed()))
}

/// The log's tables and their total size (heap, TOAST, indexes), in bytes.
async fn log_bytes(pool: &PgPool) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for table in [
        "log_tiles",
        "log_segments",
        "log_checkpoints",
        "log_chain_tips",
        "log_cosignatures",
    ] {
        let bytes: i64 = sqlx::query_scalar("select pg_total_relation_size($1::regclass)")
            .bind(table)
            .fetch_one(pool)
            .await
            .with_context(|| format!("size of {table}"))?;
        out.push((table.to_owned(), bytes));
    }
    Ok(out)
}

async fn log_size(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("select coalesce(max(size), 0)::bigint from log_checkpoints")
            .fetch_one(pool)
            .await?,
    )
}

/// Sealing storage of a ledger of `entries` (waits, at most `wait`, until
/// the service has sealed them all), then its growth over `idle` with no
/// writes. Returns the two benchmark lines.
pub(crate) async fn sealing_storage(
    pool: &PgPool,
    entries: u64,
    wait: Duration,
    idle: Duration,
    ledger: usize,
) -> Result<[String; 2]> {
    let started = Instant::now();
    loop {
        let size = log_size(pool).await?;
        if size as u64 >= entries {
            break;
        }
        if started.elapsed() > wait {
            bail!(
                "the log holds {size} of {entries} entries after {:.0} s",
                wait.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A vacuum first, so dead versions of partial tiles rewritten at each
    // seal are not counted as storage.
    sqlx::query("vacuum log_tiles, log_segments, log_checkpoints, log_chain_tips")
        .execute(pool)
        .await?;
    let size = log_size(pool).await?;
    let before = log_bytes(pool).await?;
    let total: i64 = before.iter().map(|(_, b)| b).sum();
    let per = |b: i64| b as f64 / size.max(1) as f64;
    let parts: Vec<String> = before
        .iter()
        .map(|(t, b)| format!("{}={:.1}", t.trim_start_matches("log_"), per(*b)))
        .collect();
    let first = format!(
        "sealing ledger={ledger} log_size={size} bytes={total} bytes_per_entry={:.1} {}",
        per(total),
        parts.join(" ")
    );
    let checkpoints_before: i64 = sqlx::query_scalar("select count(*) from log_checkpoints")
        .fetch_one(pool)
        .await?;
    tokio::time::sleep(idle).await;
    let after: i64 = log_bytes(pool).await?.iter().map(|(_, b)| b).sum();
    let checkpoints_after: i64 = sqlx::query_scalar("select count(*) from log_checkpoints")
        .fetch_one(pool)
        .await?;
    let grown = after - total;
    let per_day = grown as f64 * 86_400.0 / idle.as_secs_f64().max(1e-9);
    let second = format!(
        "sealing_idle ledger={ledger} idle_s={:.0} checkpoints_made={} bytes_grown={grown} bytes_per_idle_day={per_day:.0}",
        idle.as_secs_f64(),
        checkpoints_after - checkpoints_before
    );
    Ok([first, second])
}
