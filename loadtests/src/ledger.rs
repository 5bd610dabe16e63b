//! Ledger rows computed in-process with `xuefen-core`: real canonical bytes
//! and real hash chains, so that raw inserts write what the service would.

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use xuefen_core::amount::{Credits, Hours};
use xuefen_core::entry::{Entry, EntryBody, EntryKind, GENESIS, entry_hash};
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{Category, CourseCode, EventId, LearnerId, Position, SiteId};
use xuefen_core::rule::CreditRule;
use xuefen_store_postgres::copy::CopyWriter;

/// The course every benchmark event completes: one credit per 8 hours, at
/// most 4, no pass mark.
pub(crate) struct BenchCourse {
    pub site: SiteId,
    pub code: CourseCode,
    pub category: Category,
    pub rule: CreditRule,
    pub rule_version: u32,
}

impl BenchCourse {
    pub(crate) fn new(site: &str, code: &str) -> Result<Self> {
        Ok(Self {
            site: SiteId::parse(site)?,
            code: CourseCode::parse(code)?,
            category: Category::parse("community")?,
            rule: CreditRule::PerHours {
                hours_per_credit: Hours::from_cents(8_00),
                cap: Credits::from_cents(4_00),
            },
            rule_version: 1,
        })
    }

    /// The JSON body of `PUT /v1/courses/{code}` for this course.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "title": "Benchmark course",
            "category": self.category.as_str(),
            "rule": {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"},
            // Each benchmark completion is a paid session, as the sealed
            // baseline rows assume (a course is otherwise credited once).
            "repeat": "every_completion",
        })
    }

    /// The entry body the service records for a completion of this course.
    pub(crate) fn completion(
        &self,
        event_id: &str,
        learner: &LearnerId,
        completed_at: Millis,
        hours: Hours,
        recorded_at: Millis,
    ) -> Result<EntryBody> {
        let credits = self.rule.credits_for(Some(hours))?;
        Ok(EntryBody {
            kind: EntryKind::Awarded,
            site: self.site.clone(),
            event_id: EventId::parse(event_id)?,
            learner: learner.clone(),
            // Filled rows are version-1 entries, which every verifier
            // still checks; the service writes version 2 on top of them.
            commitment: None,
            course: self.code.clone(),
            category: self.category.clone(),
            credits,
            occurred_at: completed_at,
            recorded_at,
            score: None,
            hours: Some(hours),
            rule_version: self.rule_version,
            refers_to: None,
            target_event: None,
            reason: Reason::default(),
            note: None,
            recognition_group: None,
            withheld: None,
        })
    }
}

/// A learner as the benchmark knows it.
#[derive(Clone)]
pub(crate) struct Learner {
    pub id: LearnerId,
    pub chain: u32,
    pub account: String,
}

/// The heads of every chain, advanced as entries are sealed.
#[derive(Clone)]
pub(crate) struct Sealer {
    heads: Vec<(u64, [u8; 32])>,
}

impl Sealer {
    pub(crate) fn genesis(chains: u32) -> Self {
        Self {
            heads: vec![(0, GENESIS); chains as usize],
        }
    }

    pub(crate) fn heads(&self) -> &[(u64, [u8; 32])] {
        &self.heads
    }

    fn head(&mut self, chain: u32) -> Result<&mut (u64, [u8; 32])> {
        self.heads
            .get_mut(chain as usize)
            .with_context(|| format!("chain {chain} is out of range"))
    }

    /// Appends `body` to `chain`.
    pub(crate) fn seal(&mut self, chain: u32, body: EntryBody) -> Result<Entry> {
        let head = self.head(chain)?;
        let position = Position { chain, seq: head.0 + 1 };
        let entry = Entry::seal(position, head.1, body);
        *head = (position.seq, entry.hash);
        Ok(entry)
    }

    /// Appends already-encoded bytes, hashing only (for the raw SHA-256 figure).
    pub(crate) fn hash_only(&mut self, chain: u32, canonical: &[u8]) -> Result<()> {
        let head = self.head(chain)?;
        let position = Position { chain, seq: head.0 + 1 };
        let hash = entry_hash(position, &head.1, canonical);
        *head = (position.seq, hash);
        Ok(())
    }

    /// Reads the chain heads of a database.
    pub(crate) async fn load(pool: &PgPool) -> Result<Self> {
        let rows: Vec<(i32, i64, Vec<u8>)> =
            sqlx::query_as("select chain_id, seq, hash from chain_heads order by chain_id")
                .fetch_all(pool)
                .await
                .context("read chain_heads")?;
        let mut heads = Vec::with_capacity(rows.len());
        for (i, (chain, seq, hash)) in rows.into_iter().enumerate() {
            if usize::try_from(chain).ok() != Some(i) {
                bail!("chain_heads are not numbered 0..n (found {chain} at {i})");
            }
            let hash: [u8; 32] = hash
                .try_into()
                .map_err(|_| anyhow::anyhow!("chain {chain}: head hash is not 32 bytes"))?;
            heads.push((u64::try_from(seq)?, hash));
        }
        Ok(Self { heads })
    }

    /// Writes the heads back, so that the service appends after raw inserts.
    pub(crate) async fn store(&self, pool: &PgPool) -> Result<()> {
        let chains: Vec<i32> = (0..self.heads.len()).map(i32::try_from).collect::<Result<_, _>>()?;
        let seqs: Vec<i64> = self
            .heads
            .iter()
            .map(|h| i64::try_from(h.0))
            .collect::<Result<_, _>>()?;
        let hashes: Vec<Vec<u8>> = self.heads.iter().map(|h| h.1.to_vec()).collect();
        sqlx::query(
            "update chain_heads h set seq = u.seq, hash = u.hash
               from unnest($1::int[], $2::bigint[], $3::bytea[]) as u(chain_id, seq, hash)
              where h.chain_id = u.chain_id",
        )
        .bind(&chains)
        .bind(&seqs)
        .bind(&hashes)
        .execute(pool)
        .await
        .context("update chain_heads")?;
        Ok(())
    }
}

/// Rows of `ledger_entries`, column by column, ready to bind as arrays.
#[derive(Default)]
pub(crate) struct Rows {
    chain_id: Vec<i32>,
    seq: Vec<i64>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    kind: Vec<i16>,
    site_id: Vec<String>,
    event_id: Vec<String>,
    learner_id: Vec<String>,
    course_code: Vec<String>,
    category: Vec<String>,
    credits_cents: Vec<i64>,
    occurred_at_ms: Vec<i64>,
    recorded_at_ms: Vec<i64>,
    score_cents: Vec<Option<i64>>,
    hours_cents: Vec<Option<i64>>,
    rule_version: Vec<i32>,
    refers_chain: Vec<Option<i32>>,
    refers_seq: Vec<Option<i64>>,
    target_event: Vec<Option<String>>,
    reason: Vec<String>,
}

const COLUMNS: &str = "chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id, course_code, \
    category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents, hours_cents, rule_version, \
    refers_chain, refers_seq, target_event, reason";

impl Rows {
    pub(crate) fn len(&self) -> usize {
        self.seq.len()
    }

    pub(crate) fn push(&mut self, e: &Entry) -> Result<()> {
        let b = &e.body;
        self.chain_id.push(i32::try_from(e.position.chain)?);
        self.seq.push(i64::try_from(e.position.seq)?);
        self.prev_hash.push(e.prev_hash.to_vec());
        self.hash.push(e.hash.to_vec());
        self.kind.push(i16::from(b.kind.code()));
        self.site_id.push(b.site.as_str().to_owned());
        self.event_id.push(b.event_id.as_str().to_owned());
        self.learner_id.push(b.learner.as_str().to_owned());
        self.course_code.push(b.course.as_str().to_owned());
        self.category.push(b.category.as_str().to_owned());
        self.credits_cents.push(b.credits.cents());
        self.occurred_at_ms.push(b.occurred_at.0);
        self.recorded_at_ms.push(b.recorded_at.0);
        self.score_cents.push(b.score.map(|s| s.cents()));
        self.hours_cents.push(b.hours.map(|h| h.cents()));
        self.rule_version.push(i32::try_from(b.rule_version)?);
        self.refers_chain
            .push(b.refers_to.map(|p| i32::try_from(p.chain)).transpose()?);
        self.refers_seq
            .push(b.refers_to.map(|p| i64::try_from(p.seq)).transpose()?);
        self.target_event
            .push(b.target_event.as_ref().map(|t| t.as_str().to_owned()));
        self.reason.push(b.reason.as_str().to_owned());
        Ok(())
    }

    /// One multi-row `INSERT … SELECT * FROM UNNEST(…)`: one transaction.
    pub(crate) async fn insert_unnest(&self, pool: &PgPool) -> Result<u64> {
        let sql = format!(
            "insert into ledger_entries ({COLUMNS})
             select * from unnest($1::int[], $2::bigint[], $3::bytea[], $4::bytea[], $5::smallint[],
                $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
                $13::bigint[], $14::bigint[], $15::bigint[], $16::int[], $17::int[], $18::bigint[],
                $19::text[], $20::text[])"
        );
        let done = sqlx::query(&sql)
            .bind(&self.chain_id)
            .bind(&self.seq)
            .bind(&self.prev_hash)
            .bind(&self.hash)
            .bind(&self.kind)
            .bind(&self.site_id)
            .bind(&self.event_id)
            .bind(&self.learner_id)
            .bind(&self.course_code)
            .bind(&self.category)
            .bind(&self.credits_cents)
            .bind(&self.occurred_at_ms)
            .bind(&self.recorded_at_ms)
            .bind(&self.score_cents)
            .bind(&self.hours_cents)
            .bind(&self.rule_version)
            .bind(&self.refers_chain)
            .bind(&self.refers_seq)
            .bind(&self.target_event)
            .bind(&self.reason)
            .execute(pool)
            .await
            .context("insert ledger rows")?;
        Ok(done.rows_affected())
    }

    /// The rows in `COPY … FROM STDIN` text format.
    pub(crate) fn copy_text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * 400);
        for i in 0..self.len() {
            let fields: [Field<'_>; 20] = [
                Field::Int(i64::from(self.chain_id[i])),
                Field::Int(self.seq[i]),
                Field::Bytes(&self.prev_hash[i]),
                Field::Bytes(&self.hash[i]),
                Field::Int(i64::from(self.kind[i])),
                Field::Text(&self.site_id[i]),
                Field::Text(&self.event_id[i]),
                Field::Text(&self.learner_id[i]),
                Field::Text(&self.course_code[i]),
                Field::Text(&self.category[i]),
                Field::Int(self.credits_cents[i]),
                Field::Int(self.occurred_at_ms[i]),
                Field::Int(self.recorded_at_ms[i]),
                self.score_cents[i].map_or(Field::Null, Field::Int),
                self.hours_cents[i].map_or(Field::Null, Field::Int),
                Field::Int(i64::from(self.rule_version[i])),
                self.refers_chain[i].map_or(Field::Null, |v| Field::Int(i64::from(v))),
                self.refers_seq[i].map_or(Field::Null, Field::Int),
                self.target_event[i].as_deref().map_or(Field::Null, Field::Text),
                Field::Text(&self.reason[i]),
            ];
            for (n, f) in fields.iter().enumerate() {
                if n > 0 {
                    out.push(b'\t');
                }
                f.write(&mut out);
            }
            out.push(b'\n');
        }
        out
    }

    /// `COPY ledger_entries FROM STDIN` of pre-encoded text: one transaction.
    /// The rows in `COPY … FROM STDIN (FORMAT binary)` format.
    pub(crate) fn copy_binary(&self) -> Vec<u8> {
        let mut w = CopyWriter::with_capacity(self.len() * 320);
        for i in 0..self.len() {
            w.row(20);
            w.int4(self.chain_id[i]);
            w.int8(self.seq[i]);
            w.bytea(&self.prev_hash[i]);
            w.bytea(&self.hash[i]);
            w.int2(self.kind[i]);
            w.text(&self.site_id[i]);
            w.text(&self.event_id[i]);
            w.text(&self.learner_id[i]);
            w.text(&self.course_code[i]);
            w.text(&self.category[i]);
            w.int8(self.credits_cents[i]);
            w.int8(self.occurred_at_ms[i]);
            w.int8(self.recorded_at_ms[i]);
            w.opt_int8(self.score_cents[i]);
            w.opt_int8(self.hours_cents[i]);
            w.int4(self.rule_version[i]);
            w.opt_int4(self.refers_chain[i]);
            w.opt_int8(self.refers_seq[i]);
            w.opt_text(self.target_event[i].as_deref());
            w.text(&self.reason[i]);
        }
        w.finish()
    }

    /// One `COPY` of prepared data (`binary` or text format): one transaction.
    pub(crate) async fn copy_in(pool: &PgPool, data: &[u8], binary: bool) -> Result<u64> {
        let mut conn = pool.acquire().await?;
        let format = if binary { " (format binary)" } else { "" };
        let mut copy = conn
            .copy_in_raw(&format!("copy ledger_entries ({COLUMNS}) from stdin{format}"))
            .await
            .context("start COPY")?;
        copy.send(data).await.context("send COPY data")?;
        copy.finish().await.context("finish COPY")
    }

    /// One row per transaction, as a client without batching writes.
    pub(crate) async fn insert_one(&self, pool: &PgPool, i: usize) -> Result<u64> {
        let sql = format!(
            "insert into ledger_entries ({COLUMNS})
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        );
        let done = sqlx::query(&sql)
            .bind(self.chain_id[i])
            .bind(self.seq[i])
            .bind(&self.prev_hash[i])
            .bind(&self.hash[i])
            .bind(self.kind[i])
            .bind(&self.site_id[i])
            .bind(&self.event_id[i])
            .bind(&self.learner_id[i])
            .bind(&self.course_code[i])
            .bind(&self.category[i])
            .bind(self.credits_cents[i])
            .bind(self.occurred_at_ms[i])
            .bind(self.recorded_at_ms[i])
            .bind(self.score_cents[i])
            .bind(self.hours_cents[i])
            .bind(self.rule_version[i])
            .bind(self.refers_chain[i])
            .bind(self.refers_seq[i])
            .bind(&self.target_event[i])
            .bind(&self.reason[i])
            .execute(pool)
            .await
            .context("insert one ledger row")?;
        Ok(done.rows_affected())
    }
}

enum Field<'a> {
    Null,
    Int(i64),
    Bytes(&'a [u8]),
    Text(&'a str),
}

impl Field<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Field::Null => out.extend_from_slice(b"\\N"),
            Field::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            // bytea hex input `\x…`, its backslash escaped for COPY text.
            Field::Bytes(b) => {
                out.extend_from_slice(b"\\\\x");
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for byte in b.iter() {
                    out.push(HEX[usize::from(byte >> 4)]);
                    out.push(HEX[usize::from(byte & 0xf)]);
                }
            }
            Field::Text(s) => {
                for &c in s.as_bytes() {
                    match c {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(c),
                    }
                }
            }
        }
    }
}

/// A cheap deterministic mix of a seed and an index (SplitMix64), so that
/// any part of a generated ledger can be generated again on its own.
pub(crate) fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 2023-01-01T00:00:00Z in Unix milliseconds.
const COMPLETED_FROM_MS: i64 = 1_672_531_200_000;
/// Two years of seconds.
const COMPLETED_SPAN_S: u64 = 2 * 365 * 24 * 3600;

/// The completion date and hours of generated event `i`: whole seconds
/// within 2023–2024, hours in quarter hours from 1 to 40.
pub(crate) fn event_terms(seed: u64, i: u64) -> (Millis, Hours) {
    let r = mix(seed, i);
    let secs = (r % COMPLETED_SPAN_S) as i64;
    let quarters = ((r >> 40) % 157 + 4) as i64;
    (
        Millis(COMPLETED_FROM_MS + secs * 1000),
        Hours::from_cents(quarters * 25),
    )
}

/// An amount in hundredths as the API writes it (`"12.25"`).
pub(crate) fn decimal(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_and_encodes() {
        let course = BenchCourse::new("bench", "c1").expect("course");
        let learner = LearnerId::from_random([7; 16]);
        let body = course
            .completion(
                "e-1",
                &learner,
                Millis(COMPLETED_FROM_MS),
                Hours::from_cents(12_50),
                Millis(COMPLETED_FROM_MS + 1),
            )
            .expect("body");
        let mut sealer = Sealer::genesis(4);
        let e = sealer.seal(2, body).expect("seal");
        let mut rows = Rows::default();
        rows.push(&e).expect("push");
        let text = String::from_utf8(rows.copy_text()).expect("utf8");
        let cols: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
        assert_eq!(cols.len(), 20);
        assert_eq!(cols[0], "2");
        assert_eq!(cols[1], "1");
        assert_eq!(cols[2], format!("\\\\x{}", "00".repeat(32)));
        assert_eq!(cols[10], "156"); // 12.5 h / 8 h per credit = 1.5625 -> 1.56
        assert_eq!(cols[13], "\\N");
        assert_eq!(cols[19], "");
        assert_eq!(sealer.heads()[2], (1, e.hash));
    }

    #[test]
    fn hash_only_matches_seal() {
        let course = BenchCourse::new("bench", "c1").expect("course");
        let learner = LearnerId::from_random([9; 16]);
        let (mut a, mut b) = (Sealer::genesis(2), Sealer::genesis(2));
        for i in 0..5 {
            let (at, hours) = event_terms(1, i);
            let body = course
                .completion(&format!("e-{i}"), &learner, at, hours, at)
                .expect("body");
            b.hash_only(1, &body.encode()).expect("hash");
            a.seal(1, body).expect("seal");
        }
        assert_eq!(a.heads(), b.heads());
        assert_eq!(decimal(1_25), "1.25");
    }
}
