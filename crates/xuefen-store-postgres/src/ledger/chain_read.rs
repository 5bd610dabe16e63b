//! Whole chains read for verification, by binary `COPY … TO STDOUT`.
//!
//! `xuefen verify` reads every entry of the ledger once, chain by chain. A
//! `COPY` of the rows streams them with no per-row protocol round of the
//! extended query, and the tuples are split here straight from the bytes
//! PostgreSQL sends (the format `copy.rs` writes: a header, per row a field
//! count and each field as a length, `-1` for NULL, and its value, then a
//! trailer of `-1`). Memory stays flat: only the rows of the bytes at hand
//! are held.
//!
//! A `COPY` takes no parameters: the statements here are built from integers
//! only (chain numbers and sequence numbers), never from text.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use xuefen_core::entry::Entry;
use xuefen_core::plan::Head;
use xuefen_store::records::EntryRecord;
use xuefen_store::{ChainLink, LedgerScan, Result, StoreError};

use crate::{PgStore, db};

/// The header of a binary `COPY` stream: the 11-byte signature, the flags
/// and the length of the header extension.
const HEADER: usize = 19;
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The columns of an entry in [`EntryRecord`] order, every integer as
/// `bigint` (the binary format carries no types: each field is read as the
/// type named here).
const ENTRY_COPY_COLUMNS: &str = "chain_id::bigint, seq::bigint, prev_hash, hash, kind::bigint, site_id::text, \
     event_id::text, learner_id::text, course_code::text, category::text, credits_cents::bigint, \
     occurred_at_ms::bigint, recorded_at_ms::bigint, score_cents::bigint, hours_cents::bigint, \
     rule_version::bigint, refers_chain::bigint, refers_seq::bigint, target_event::text, reason::text, \
     recognition_group::text, withheld_cents::bigint, learner_commitment, reason_note::text";

impl PgStore {
    /// Every entry of `chain` in `seq` order, streamed: one `COPY` per
    /// [`SEQS_PER_COPY`] sequence numbers up to the chain's last row, each
    /// read to its end before its entries are handed on.
    pub(crate) fn copy_chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>> {
        // The primary, as the heads verify checks against are read there.
        let pool = self.pool.clone();
        stream::try_unfold(None::<(i64, i64)>, move |range| {
            let pool = pool.clone();
            async move {
                // (the last seq read, the chain's last seq when the read began)
                let (after, last) = match range {
                    Some(r) => r,
                    None => {
                        let last: Option<i64> = sqlx::query_scalar("select max(seq) from ledger_entries where chain_id = $1")
                            .bind(i64::from(chain))
                            .fetch_one(&pool)
                            .await
                            .map_err(db)?;
                        (0, last.unwrap_or(0))
                    }
                };
                if after >= last {
                    return Ok(None);
                }
                // A range of the primary key rather than a `limit`: the
                // planner then sorts only the rows of the range, in memory.
                let upto = after.saturating_add(SEQS_PER_COPY).min(last);
                let sql = format!(
                    "copy (select {ENTRY_COPY_COLUMNS} from ledger_entries \
                      where chain_id = {chain} and seq > {after} and seq <= {upto} order by seq) to stdout (format binary)"
                );
                let entries = copy_all(&pool, &sql, 24, |row| Entry::try_from(copied_entry_record(row)?)).await?;
                let mut next = upto;
                if entries.is_empty() {
                    // A gap in the chain (rows removed, or one written far
                    // ahead): go on at the next row there is.
                    let found: Option<i64> =
                        sqlx::query_scalar("select min(seq) from ledger_entries where chain_id = $1 and seq > $2")
                            .bind(i64::from(chain))
                            .bind(upto)
                            .fetch_one(&pool)
                            .await
                            .map_err(db)?;
                    next = found.map_or(last, |s| s.saturating_sub(1).max(upto));
                }
                Ok(Some((entries, Some((next, last)))))
            }
        })
        .map_ok(|entries| stream::iter(entries.into_iter().map(Ok::<Entry, StoreError>)))
        .try_flatten()
        .boxed()
    }

    /// The links of `chain` after `after` up to `upto`, in `seq` order.
    pub(crate) async fn copy_chain_links(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<ChainLink>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        let sql = format!(
            "copy (select seq::bigint, prev_hash, hash from ledger_entries \
              where chain_id = {chain} and seq > {after} and seq <= {upto} order by seq) to stdout (format binary)"
        );
        copy_all(&self.read_pool, &sql, 3, |row| {
            read_link(&mut Fields::new(row), i64::from(chain))
        })
        .await
    }

    /// The whole ledger in storage order by one binary `COPY` (a sequential
    /// scan: each heap page visited once), in a read-only repeatable-read
    /// transaction whose snapshot the heads are read in too.
    ///
    /// The read runs in a task of its own, which also splits and decodes the
    /// rows, so decoding and the caller's hashing use two cores; it hands
    /// on [`SCAN_BATCH`] entries at a time, at most [`SCAN_BATCHES_AHEAD`]
    /// batches ahead of the caller (memory stays flat). The connection is
    /// taken out of the pool: a caller that stops reading (a fault found)
    /// drops the stream, the task stops and the connection, its `COPY` half
    /// read, is closed rather than handed to the pool's next user.
    pub(crate) async fn scan_ledger(&self) -> Result<LedgerScan> {
        let conn = self.pool.acquire().await.map_err(db)?.detach();
        let (heads_tx, heads_rx) = tokio::sync::oneshot::channel();
        let (batches_tx, batches_rx) = tokio::sync::mpsc::channel(SCAN_BATCHES_AHEAD);
        tokio::spawn(scan_task(conn, heads_tx, batches_tx));
        let heads = heads_rx
            .await
            .map_err(|_| malformed("the ledger scan ended before it read the heads"))??;
        let entries = stream::unfold(batches_rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }).boxed();
        Ok(LedgerScan { heads, entries })
    }

    /// The links of `ranges` by one binary `COPY`: the ranges are or-ed into
    /// one bitmap of the primary key, so each heap page they share is
    /// visited once (a range at a time, a page holding rows of every chain
    /// was visited once per chain). Rows come unordered and are placed here.
    pub(crate) async fn copy_ranges_links(&self, ranges: &[(u32, u64, u64)]) -> Result<Vec<Vec<ChainLink>>> {
        let mut out: Vec<Vec<ChainLink>> = vec![Vec::new(); ranges.len()];
        if ranges.is_empty() {
            return Ok(out);
        }
        // Which range a (chain, seq) is in: the ranges of each chain by start.
        let mut by_chain: std::collections::HashMap<u32, Vec<(u64, u64, usize)>> = std::collections::HashMap::new();
        let mut filter = String::new();
        for (i, &(chain, after, upto)) in ranges.iter().enumerate() {
            by_chain.entry(chain).or_default().push((after, upto, i));
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let upto = i64::try_from(upto).unwrap_or(i64::MAX);
            if !filter.is_empty() {
                filter.push_str(" or ");
            }
            filter.push_str(&format!("(chain_id = {chain} and seq > {after} and seq <= {upto})"));
        }
        for list in by_chain.values_mut() {
            list.sort_unstable();
        }
        let sql = format!(
            "copy (select chain_id::bigint, seq::bigint, prev_hash, hash from ledger_entries where {filter}) \
             to stdout (format binary)"
        );
        let rows = copy_all(&self.read_pool, &sql, 4, |row| {
            let mut f = Fields::new(row);
            let chain = f.int8()?;
            let link = read_link(&mut f, chain)?;
            let chain = u32::try_from(chain).map_err(|_| StoreError::Corrupt {
                at: format!("chain {chain} position {}", link.seq),
                detail: "negative chain".into(),
            })?;
            Ok((chain, link))
        })
        .await?;
        for (chain, link) in rows {
            let range = by_chain.get(&chain).and_then(|list| {
                let at = list.partition_point(|(after, _, _)| *after < link.seq);
                at.checked_sub(1)
                    .and_then(|k| list.get(k))
                    .filter(|(_, upto, _)| link.seq <= *upto)
                    .map(|(_, _, i)| *i)
            });
            if let Some(slot) = range.and_then(|i| out.get_mut(i)) {
                slot.push(link);
            }
        }
        for links in &mut out {
            links.sort_unstable_by_key(|l| l.seq);
        }
        Ok(out)
    }
}

/// The rest of a row of `seq, prev_hash, hash` of `chain` as a link.
fn read_link(f: &mut Fields<'_>, chain: i64) -> Result<ChainLink> {
    let (seq, prev, hash) = (f.int8()?, f.slice()?, f.slice()?);
    let link = match (
        u64::try_from(seq),
        <[u8; 32]>::try_from(prev),
        <[u8; 32]>::try_from(hash),
    ) {
        (Ok(seq), Ok(prev_hash), Ok(hash)) => Some(ChainLink { seq, prev_hash, hash }),
        _ => None,
    };
    link.ok_or_else(|| StoreError::Corrupt {
        at: format!("chain {chain} position {seq}"),
        detail: "negative seq, or a hash that is not 32 bytes".into(),
    })
}

/// Entries handed on at once by [`PgStore::scan_ledger`].
const SCAN_BATCH: usize = 1_024;

/// Batches [`PgStore::scan_ledger`] reads ahead of its caller.
const SCAN_BATCHES_AHEAD: usize = 8;

/// The task of [`PgStore::scan_ledger`].
async fn scan_task(
    mut conn: sqlx::PgConnection,
    heads: tokio::sync::oneshot::Sender<Result<Vec<(u32, Head)>>>,
    out: tokio::sync::mpsc::Sender<Result<Vec<Entry>>>,
) {
    let read = async {
        sqlx::query("begin isolation level repeatable read, read only")
            .execute(&mut conn)
            .await
            .map_err(db)?;
        let rows = sqlx::query(super::HEADS_SQL).fetch_all(&mut conn).await.map_err(db)?;
        super::heads_of(&rows)
    };
    let read: Result<Vec<(u32, Head)>> = read.await;
    let ok = read.is_ok();
    if heads.send(read).is_err() || !ok {
        return;
    }
    let sql = format!("copy (select {ENTRY_COPY_COLUMNS} from ledger_entries) to stdout (format binary)");
    let scanned: Result<bool> = async {
        let mut bytes = conn.copy_out_raw(&sql).await.map_err(db)?;
        let mut split = Splitter::new(24);
        let mut batch = Vec::with_capacity(SCAN_BATCH);
        while let Some(piece) = bytes.try_next().await.map_err(db)? {
            split.feed(&piece, |row| {
                batch.push(Entry::try_from(copied_entry_record(row)?)?);
                Ok(())
            })?;
            if batch.len() >= SCAN_BATCH && out.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                return Ok(false);
            }
        }
        split.finish()?;
        Ok(batch.is_empty() || out.send(Ok(batch)).await.is_ok())
    }
    .await;
    match scanned {
        // Read to its end: end the transaction and say goodbye.
        Ok(true) => {
            let _ = sqlx::query("commit").execute(&mut conn).await;
            let _ = sqlx::Connection::close(conn).await;
        }
        // The caller stopped reading: the connection is dropped (closed).
        Ok(false) => {}
        Err(e) => {
            let _ = out.send(Err(e)).await;
        }
    }
}

/// Sequence numbers read by one `COPY` of [`PgStore::copy_chain_entries`]:
/// memory stays flat however long the chain is, and PostgreSQL sorts the
/// rows of a range within its `work_mem`.
const SEQS_PER_COPY: i64 = 4_096;

/// Runs the binary `COPY … TO STDOUT` `sql` on a connection of `pool` and
/// reads every row, of `fields` fields, with `read`. A stream that ends
/// inside a row, or without its trailer, is an error.
///
/// A `COPY` left half-read would leave its rows queued on the connection
/// for whoever takes it next; if this future is dropped before the end
/// (a caller that stopped waiting), the connection is closed instead of
/// going back to the pool.
async fn copy_all<T>(pool: &PgPool, sql: &str, fields: i16, read: impl Fn(Row<'_>) -> Result<T>) -> Result<Vec<T>> {
    let mut conn = CloseUnlessFinished(Some(pool.acquire().await.map_err(db)?));
    let mut out = Vec::new();
    {
        let Some(c) = conn.0.as_mut() else {
            return Err(malformed("no connection"));
        };
        let mut bytes = c.copy_out_raw(sql).await.map_err(db)?;
        let mut split = Splitter::new(fields);
        while let Some(piece) = bytes.try_next().await.map_err(db)? {
            split.feed(&piece, |row| {
                out.push(read(row)?);
                Ok(())
            })?;
        }
        split.finish()?;
    }
    // Read to its end: the connection goes back to the pool as usual.
    drop(conn.0.take());
    Ok(out)
}

/// A pooled connection that is closed when dropped, unless taken out first.
struct CloseUnlessFinished(Option<PoolConnection<Postgres>>);

impl Drop for CloseUnlessFinished {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// One row of a binary `COPY`, read with [`Fields`].
#[derive(Clone, Copy)]
struct Row<'a> {
    /// The row's bytes after its field count.
    bytes: &'a [u8],
}

/// Cuts a binary `COPY` stream, received in pieces of any size, into rows.
struct Splitter {
    fields: i16,
    /// Bytes received and not yet a whole row.
    held: Vec<u8>,
    header_seen: bool,
    ended: bool,
}

impl Splitter {
    fn new(fields: i16) -> Self {
        Self {
            fields,
            held: Vec::new(),
            header_seen: false,
            ended: false,
        }
    }

    /// Takes the next piece of the stream and calls `row` for every row it
    /// completes.
    fn feed(&mut self, piece: &[u8], mut row: impl FnMut(Row<'_>) -> Result<()>) -> Result<()> {
        // PostgreSQL sends one message per row, so most pieces are whole
        // rows: read them in place, and hold bytes only across pieces.
        let mut owned = std::mem::take(&mut self.held);
        let bytes: &[u8] = if owned.is_empty() {
            piece
        } else {
            owned.extend_from_slice(piece);
            &owned
        };
        let mut at = 0;
        if !self.header_seen {
            if bytes.len() < HEADER {
                self.held = bytes.to_vec();
                return Ok(());
            }
            if &bytes[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("the stream does not start with the binary COPY signature"));
            }
            let extension = be_i32(&bytes[15..19]);
            if extension != 0 {
                return Err(malformed("the stream has a header extension"));
            }
            at = HEADER;
            self.header_seen = true;
        }
        while at < bytes.len() {
            if self.ended {
                return Err(malformed("bytes after the trailer"));
            }
            let Some(count) = bytes.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
                break;
            };
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if count != self.fields {
                return Err(malformed("a row of another number of fields"));
            }
            let Some(end) = row_end(bytes, at + 2, count) else {
                break;
            };
            row(Row {
                bytes: &bytes[at + 2..end],
            })?;
            at = end;
        }
        if at < bytes.len() {
            self.held = bytes[at..].to_vec();
        } else if !owned.is_empty() {
            // Keep the allocation for the next piece that needs holding.
            owned.clear();
            self.held = owned;
        }
        Ok(())
    }

    /// Checks that the stream ended with its trailer and no bytes after it.
    fn finish(&self) -> Result<()> {
        if !self.ended || !self.held.is_empty() {
            return Err(malformed("the stream ends inside a row or without its trailer"));
        }
        Ok(())
    }
}

/// Where the row whose fields start at `from` ends, if it is whole.
fn row_end(bytes: &[u8], from: usize, count: i16) -> Option<usize> {
    let mut end = from;
    for _ in 0..count {
        let len = be_i32(bytes.get(end..end + 4)?);
        end += 4 + usize::try_from(len).unwrap_or(0);
        if end > bytes.len() {
            return None;
        }
    }
    Some(end)
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn malformed(detail: &str) -> StoreError {
    StoreError::Corrupt {
        at: "binary COPY stream".into(),
        detail: detail.into(),
    }
}

/// The fields of a [`Row`], read in order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(row: Row<'a>) -> Self {
        Self { rest: row.bytes }
    }

    /// The next field, `None` for NULL (the row is whole: [`row_end`] checked
    /// every length).
    fn next(&mut self) -> Result<Option<&'a [u8]>> {
        let len = be_i32(self.rest.get(..4).ok_or_else(|| malformed("a row ends early"))?);
        self.rest = &self.rest[4..];
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        let (value, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| malformed("a field runs past its row"))?;
        self.rest = rest;
        Ok(Some(value))
    }

    fn opt_int8(&mut self) -> Result<Option<i64>> {
        self.next()?
            .map(|v| {
                <[u8; 8]>::try_from(v)
                    .map(i64::from_be_bytes)
                    .map_err(|_| malformed("a bigint field is not 8 bytes"))
            })
            .transpose()
    }

    fn int8(&mut self) -> Result<i64> {
        self.opt_int8()?
            .ok_or_else(|| malformed("NULL in a column that is not null"))
    }

    /// A field that is not NULL, in place.
    fn slice(&mut self) -> Result<&'a [u8]> {
        self.next()?
            .ok_or_else(|| malformed("NULL in a column that is not null"))
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.next()?.map(<[u8]>::to_vec))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        self.opt_bytes()?
            .ok_or_else(|| malformed("NULL in a column that is not null"))
    }

    fn opt_text(&mut self) -> Result<Option<String>> {
        self.next()?
            .map(|v| {
                std::str::from_utf8(v)
                    .map(str::to_owned)
                    .map_err(|_| malformed("a text field is not UTF-8"))
            })
            .transpose()
    }

    fn text(&mut self) -> Result<String> {
        self.opt_text()?
            .ok_or_else(|| malformed("NULL in a column that is not null"))
    }
}

/// A row of [`ENTRY_COPY_COLUMNS`] as the backend-neutral record.
fn copied_entry_record(row: Row<'_>) -> Result<EntryRecord> {
    let mut f = Fields::new(row);
    Ok(EntryRecord {
        chain_id: f.int8()?,
        seq: f.int8()?,
        prev_hash: f.bytes()?,
        hash: f.bytes()?,
        kind: f.int8()?,
        site_id: f.text()?,
        event_id: f.text()?,
        learner_id: f.text()?,
        course_code: f.text()?,
        category: f.text()?,
        credits_cents: f.int8()?,
        occurred_at_ms: f.int8()?,
        recorded_at_ms: f.int8()?,
        score_cents: f.opt_int8()?,
        hours_cents: f.opt_int8()?,
        rule_version: f.int8()?,
        refers_chain: f.opt_int8()?,
        refers_seq: f.opt_int8()?,
        target_event: f.opt_text()?,
        reason: f.text()?,
        recognition_group: f.opt_text()?,
        withheld_cents: f.opt_int8()?,
        learner_commitment: f.opt_bytes()?,
        reason_note: f.opt_text()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::CopyWriter;

    fn rows_of(stream: &[u8], piece: usize) -> Result<Vec<(i64, Option<Vec<u8>>)>> {
        let mut split = Splitter::new(2);
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            split.feed(chunk, |row| {
                let mut f = Fields::new(row);
                out.push((f.int8()?, f.opt_bytes()?));
                Ok(())
            })?;
        }
        split.finish()?;
        Ok(out)
    }

    #[test]
    fn rows_are_split_however_the_stream_is_cut() {
        let mut w = CopyWriter::with_capacity(256);
        let want: Vec<(i64, Option<Vec<u8>>)> = (0..7)
            .map(|i| (i * 1_000_003 - 5, (i % 3 != 0).then(|| vec![i as u8; i as usize])))
            .collect();
        for (n, b) in &want {
            w.row(2);
            w.int8(*n);
            match b {
                Some(b) => w.bytea(b),
                None => w.null(),
            }
        }
        let bytes = w.finish();
        for piece in [1, 2, 3, 7, 19, 20, 64, bytes.len()] {
            assert_eq!(rows_of(&bytes, piece).expect("rows"), want, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn a_stream_of_another_shape_is_refused() {
        let mut w = CopyWriter::with_capacity(64);
        w.row(3);
        w.int8(1);
        w.int8(2);
        w.int8(3);
        assert!(rows_of(&w.finish(), 1000).is_err(), "three fields where two are read");
        let mut cut = CopyWriter::with_capacity(64);
        cut.row(2);
        cut.int8(1);
        cut.null();
        let cut = cut.finish();
        assert!(rows_of(&cut[..cut.len() - 2], 1000).is_err(), "no trailer");
        assert!(rows_of(&cut[..cut.len() - 3], 1000).is_err(), "cut inside a row");
        assert!(
            rows_of(b"PGCOPY\n\xfe\r\n\0\0\0\0\0\0\0\0\0\xff\xff", 1000).is_err(),
            "bad signature"
        );
    }
}
