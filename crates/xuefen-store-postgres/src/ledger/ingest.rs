//! Ingest on PostgreSQL: an optimistic first attempt, then attempts under
//! head row locks, entries written with binary `COPY`, retried on a lost race.
//! The order of the lookups is the common driver's
//! ([`xuefen_store::ledger::ingest`]); this file holds the PostgreSQL side
//! of its steps, and the retries around it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, EventBody, LearnerRef, Millis};
use xuefen_core::ids::{Category, GroupId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::{self, Head, Key, Lookups, Outcome, Plan};
use xuefen_store::ledger::ingest::{CourseHistories, GroupHistories, IngestTx, Secrets, YearTotals, ingest};
use xuefen_store::records::EntryRecord;
use xuefen_store::{Result, StoreError};

use crate::copy::CopyWriter;
use crate::ledger::lookups::{
    course_entries, entries_by_keys, group_entries, lookup_course_keys, reversed_targets, target_chains, year_totals,
};
use crate::{PgStore, db, is_unique_violation};

/// How many times a batch is retried after losing a race on an idempotency
/// key or a deadlock with another instance.
const INGEST_ATTEMPTS_MAX: usize = 8;

/// Whether a failed ingest transaction should simply be run again.
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40001" | "40P01")) || d.is_unique_violation(),
        _ => false,
    }
}

impl PgStore {
    /// Runs attempts of a batch until one commits (see [`LedgerStore::ingest`](xuefen_store::LedgerStore::ingest)).
    pub(crate) async fn ingest_to_end(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>> {
        let mut attempt = 0;
        let mut optimistic = !self.expect_existing.load(Ordering::Relaxed);
        loop {
            attempt += 1;
            let retry = match self.ingest_once(events, now, optimistic).await {
                Ok(outcomes) => {
                    if !optimistic {
                        let existing = outcomes
                            .iter()
                            .any(|o| matches!(o, Outcome::Duplicate { .. } | Outcome::Conflict { .. }));
                        self.expect_existing.store(existing, Ordering::Relaxed);
                    }
                    return Ok(outcomes);
                }
                Err(IngestError::Race) => "idempotency key committed by another transaction",
                Err(IngestError::Recheck) => "an item was not accepted when assumed new",
                Err(IngestError::Sql(e)) if optimistic && is_unique_violation(&e) => {
                    // Retries and duplicates come in runs: look keys up
                    // first until a batch without any.
                    self.expect_existing.store(true, Ordering::Relaxed);
                    "a key of the batch exists"
                }
                Err(IngestError::Sql(e)) if retryable(&e) => "deadlock or serialization failure",
                Err(IngestError::Sql(e)) => return Err(db(e)),
                Err(IngestError::Corrupt(e)) => return Err(e),
            };
            optimistic = false;
            if attempt >= INGEST_ATTEMPTS_MAX {
                return Err(StoreError::Database(
                    format!("ingest gave up after {attempt} attempts: {retry}").into(),
                ));
            }
            tracing::debug!(attempt, reason = retry, "ingest transaction lost a race; retrying");
        }
    }

    /// One attempt at a batch. `optimistic`: assume the batch's own keys are
    /// new and skip looking them up (revocation targets are still read). The
    /// attempt commits only if every item is accepted and the `COPY` finds no
    /// existing key (a unique violation); otherwise the batch is run again
    /// without the assumption, so outcomes never depend on it.
    async fn ingest_once(
        &self,
        events: &[Event],
        now: Millis,
        optimistic: bool,
    ) -> std::result::Result<Vec<Outcome>, IngestError> {
        let mut attempt = Attempt {
            store: self,
            tx: self.pool.begin().await?,
            optimistic,
            asked: BTreeSet::new(),
            early_secrets: None,
        };
        match ingest(&mut attempt, events, now).await {
            Ok(outcomes) => {
                attempt.tx.commit().await?;
                Ok(outcomes)
            }
            Err(e @ (IngestError::Race | IngestError::Recheck)) => {
                attempt.tx.rollback().await?;
                Err(e)
            }
            // Dropping the transaction rolls it back.
            Err(e) => Err(e),
        }
    }

    /// Fills the learners and links of `events` into `lookups`, from
    /// [`Known`] where it can and with one query for the rest.
    async fn lookup_learners(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[Event],
        lookups: &mut Lookups,
    ) -> std::result::Result<(), sqlx::Error> {
        let mut ids: Vec<&LearnerId> = Vec::new();
        let mut accounts: Vec<(SiteId, LocalAccount)> = Vec::new();
        for e in events {
            if let EventBody::Completion(c) = &e.body {
                match &c.learner {
                    LearnerRef::Id(id) => match self.known.learners.get(id) {
                        Some(chain) => {
                            lookups.learner_chains.insert(id.clone(), chain);
                        }
                        None => ids.push(id),
                    },
                    LearnerRef::Account(a) => {
                        let key = (e.site.clone(), a.clone());
                        match self.known.accounts.get(&key) {
                            Some((learner, chain)) => {
                                lookups.learner_chains.insert(learner.clone(), chain);
                                lookups.accounts.insert(key, learner);
                            }
                            None => accounts.push(key),
                        }
                    }
                }
            }
        }
        ids.sort();
        ids.dedup();
        accounts.sort();
        accounts.dedup();
        if ids.is_empty() && accounts.is_empty() {
            return Ok(());
        }
        for (key, learner, chain) in self.read_learners(&mut **tx, &accounts, &ids).await? {
            lookups.learner_chains.insert(learner.clone(), chain);
            if let Some(key) = key {
                lookups.accounts.insert(key, learner);
            }
        }
        Ok(())
    }

    /// Reads linked accounts and learners (with their chains) in one query,
    /// and remembers them in [`Known`].
    pub(crate) async fn read_learners<'c>(
        &self,
        conn: impl sqlx::PgExecutor<'c>,
        accounts: &[(SiteId, LocalAccount)],
        ids: &[&LearnerId],
    ) -> std::result::Result<Vec<(Option<(SiteId, LocalAccount)>, LearnerId, u32)>, sqlx::Error> {
        let (sites, accts): (Vec<&str>, Vec<&str>) = accounts.iter().map(|(s, a)| (s.as_str(), a.as_str())).unzip();
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        let rows = sqlx::query(
            "select a.site_id, a.local_account, l.id, l.chain_id
               from unnest($1::text[], $2::text[]) as k(site_id, local_account)
               join learner_accounts a on a.site_id = k.site_id and a.local_account = k.local_account
               join learners l on l.id = a.learner_id
             union all
             select null, null, l.id, l.chain_id from learners l where l.id = any($3)",
        )
        .bind(&sites)
        .bind(&accts)
        .bind(&ids)
        .fetch_all(conn)
        .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let site: Option<String> = row.try_get("site_id")?;
            let account: Option<String> = row.try_get("local_account")?;
            let (learner, chain): (String, i32) = (row.try_get("id")?, row.try_get("chain_id")?);
            // A row the service could not have written names nobody: its
            // events are rejected as naming an unknown learner.
            let (Ok(learner), Ok(chain)) = (LearnerId::parse(learner), u32::try_from(chain)) else {
                continue;
            };
            let key = match (site, account) {
                (Some(site), Some(account)) => match (SiteId::parse(site), LocalAccount::parse(account)) {
                    (Ok(site), Ok(account)) => Some((site, account)),
                    _ => continue,
                },
                _ => None,
            };
            self.known.learners.insert(learner.clone(), chain);
            if let Some(key) = &key {
                self.known.accounts.insert(key.clone(), (learner.clone(), chain));
            }
            found.push((key, learner, chain));
        }
        Ok(found)
    }
}

/// One attempt's transaction: the heads are locked before the entries are
/// read, and entries written with `COPY` (or one statement for small
/// groups) that fails on a key committed meanwhile.
struct Attempt<'s> {
    store: &'s PgStore,
    tx: Transaction<'static, Postgres>,
    optimistic: bool,
    /// The learners whose secrets were read with the head locks.
    asked: BTreeSet<LearnerId>,
    /// Those secrets, when no head moved while the locks were awaited.
    early_secrets: Option<HashMap<LearnerId, [u8; 32]>>,
}

#[async_trait]
impl IngestTx for Attempt<'_> {
    type Error = IngestError;

    const HEADS_FIRST: bool = true;

    fn assumes_new_keys(&self) -> bool {
        self.optimistic
    }

    async fn learners(&mut self, events: &[Event], lookups: &mut Lookups) -> std::result::Result<(), IngestError> {
        Ok(self.store.lookup_learners(&mut self.tx, events, lookups).await?)
    }

    async fn courses(
        &mut self,
        wanted: Vec<(&str, &str)>,
        lookups: &mut Lookups,
    ) -> std::result::Result<(), IngestError> {
        Ok(lookup_course_keys(&mut self.tx, &wanted, lookups).await?)
    }

    /// Locks the heads of the batch's learners' chains and of its
    /// revocation targets' chains (whose chains are read before locking: an
    /// entry's chain never changes once written). The secrets of the
    /// learners known so far come with the locks (one round trip), unless a
    /// head moved while the lock was awaited.
    async fn heads(&mut self, targets: &[Key], lookups: &mut Lookups) -> std::result::Result<(), IngestError> {
        let mut chains: BTreeSet<u32> = lookups.chains();
        chains.extend(target_chains(&mut self.tx, targets).await?);
        self.asked = lookups.learner_chains.keys().cloned().collect();
        self.early_secrets = lock_heads_with_secrets(&mut self.tx, &chains, &self.asked, lookups).await?;
        if let Some(missing) = chains.iter().find(|c| !lookups.heads.contains_key(c)) {
            return Err(IngestError::Corrupt(StoreError::Corrupt {
                at: format!("chain head {missing}"),
                detail: "a learner's chain has no head row".into(),
            }));
        }
        Ok(())
    }

    async fn entries(&mut self, keys: &[Key]) -> std::result::Result<Vec<Entry>, IngestError> {
        Ok(entries_by_keys(&mut self.tx, keys).await?)
    }

    async fn reversed(&mut self, targets: &[Key]) -> std::result::Result<HashSet<Key>, IngestError> {
        Ok(reversed_targets(&mut self.tx, targets).await?)
    }

    async fn course_entries(
        &mut self,
        keys: &BTreeSet<plan::CourseKey>,
    ) -> std::result::Result<CourseHistories, IngestError> {
        Ok(course_entries(&mut self.tx, keys).await?)
    }

    async fn group_entries(
        &mut self,
        keys: &BTreeSet<(LearnerId, GroupId)>,
    ) -> std::result::Result<GroupHistories, IngestError> {
        Ok(group_entries(&mut self.tx, keys).await?)
    }

    async fn year_totals(
        &mut self,
        keys: &BTreeSet<(LearnerId, Category, i32)>,
    ) -> std::result::Result<YearTotals, IngestError> {
        Ok(year_totals(&mut self.tx, keys).await?)
    }

    /// Those read with the locks are current (see
    /// [`lock_heads_with_secrets`]) when they cover every learner the batch
    /// may write for; otherwise one more query.
    async fn secrets(&mut self, lookups: &Lookups) -> std::result::Result<Secrets, IngestError> {
        let covered =
            self.early_secrets.is_some() && lookups.entries.values().all(|e| self.asked.contains(&e.body.learner));
        Ok(match self.early_secrets.take() {
            Some(secrets) if covered => secrets,
            _ => learner_secrets(&mut self.tx, lookups).await?,
        })
    }

    async fn write(&mut self, planned: &Plan) -> std::result::Result<(), IngestError> {
        if self.optimistic && planned.outcomes.iter().any(|o| !matches!(o, Outcome::Accepted { .. })) {
            // A rejection may only mean that the key exists (a re-posted
            // revocation looks like a second one): judge it knowing.
            return Err(IngestError::Recheck);
        }
        if !planned.entries.is_empty() {
            let inserted = write_entries(&mut self.tx, &planned.entries, &planned.heads).await?;
            if inserted != planned.entries.len() as u64 {
                // Another transaction on another chain committed one of our
                // keys meanwhile (a conflicting event for another learner):
                // run again and let the planner see it.
                return Err(IngestError::Race);
            }
        }
        Ok(())
    }
}

/// Why one ingest attempt failed.
#[derive(Debug)]
enum IngestError {
    /// Another transaction committed one of the batch's keys meanwhile.
    Race,
    /// An optimistic attempt planned something other than acceptance.
    Recheck,
    Corrupt(StoreError),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

pub(crate) async fn lock_heads(
    tx: &mut Transaction<'_, Postgres>,
    chains: &BTreeSet<u32>,
    lookups: &mut Lookups,
) -> std::result::Result<(), sqlx::Error> {
    if chains.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = chains.iter().filter_map(|c| i32::try_from(*c).ok()).collect();
    let rows = sqlx::query(
        "select chain_id, seq, hash from chain_heads where chain_id = any($1) order by chain_id for update",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let (chain, seq, hash): (i32, i64, Vec<u8>) =
            (row.try_get("chain_id")?, row.try_get("seq")?, row.try_get("hash")?);
        let head = Head {
            seq: u64::try_from(seq).map_err(|_| sqlx::Error::Protocol("negative head seq".into()))?,
            hash: hash
                .try_into()
                .map_err(|_| sqlx::Error::Protocol("head hash is not 32 bytes".into()))?,
        };
        if let Ok(chain) = u32::try_from(chain) {
            lookups.heads.insert(chain, head);
        }
    }
    Ok(())
}

/// Locks the head rows of `chains` (as [`lock_heads`]) and, in the same
/// statement, reads the secrets of `learners`.
///
/// The secrets are read in the statement's snapshot, taken before the locks
/// were granted. They are current only if no head moved in between: an
/// erasure deletes a secret in the transaction that appends to the
/// learner's chain under its head lock, so a secret deleted after the
/// snapshot shows as a head that moved. Then `None`: read them again.
pub(crate) async fn lock_heads_with_secrets(
    tx: &mut Transaction<'_, Postgres>,
    chains: &BTreeSet<u32>,
    learners: &BTreeSet<LearnerId>,
    lookups: &mut Lookups,
) -> std::result::Result<Option<HashMap<LearnerId, [u8; 32]>>, sqlx::Error> {
    if chains.is_empty() {
        return Ok(None);
    }
    let ids: Vec<i32> = chains.iter().filter_map(|c| i32::try_from(*c).ok()).collect();
    let learners: Vec<&str> = learners.iter().map(LearnerId::as_str).collect();
    // `seen`: the head as the snapshot saw it (the joined row is not locked,
    // so it is not brought up to date as the locked one is).
    let rows = sqlx::query(
        "with h as (
           select h.chain_id, h.seq, h.hash, s.seq as seen
             from chain_heads h join chain_heads s on s.chain_id = h.chain_id
            where h.chain_id = any($1)
            order by h.chain_id
              for update of h)
         select chain_id, seq, hash, seen, null::text as learner_id from h
         union all
         select null, null, secret, null, learner_id from learner_secrets where learner_id = any($2)",
    )
    .bind(&ids)
    .bind(&learners)
    .fetch_all(&mut **tx)
    .await?;
    let mut secrets = HashMap::new();
    let mut current = true;
    for row in rows {
        // A secret's row carries its bytes in the `hash` column.
        let bytes: Vec<u8> = row.try_get("hash")?;
        if let Some(learner) = row.try_get::<Option<String>, _>("learner_id")? {
            if let (Ok(id), Ok(secret)) = (LearnerId::parse(learner), <[u8; 32]>::try_from(bytes)) {
                secrets.insert(id, secret);
            }
            continue;
        }
        let (chain, seq, seen): (i32, i64, i64) = (row.try_get("chain_id")?, row.try_get("seq")?, row.try_get("seen")?);
        current &= seq == seen;
        let head = Head {
            seq: u64::try_from(seq).map_err(|_| sqlx::Error::Protocol("negative head seq".into()))?,
            hash: bytes
                .try_into()
                .map_err(|_| sqlx::Error::Protocol("head hash is not 32 bytes".into()))?,
        };
        if let Ok(chain) = u32::try_from(chain) {
            lookups.heads.insert(chain, head);
        }
    }
    Ok(current.then_some(secrets))
}

/// The secrets of the learners the batch may write for (those it names and
/// those of its revocation targets); an erased learner has none.
pub(crate) async fn learner_secrets(
    tx: &mut Transaction<'_, Postgres>,
    lookups: &Lookups,
) -> std::result::Result<HashMap<LearnerId, [u8; 32]>, sqlx::Error> {
    let mut ids: BTreeSet<&str> = lookups.learner_chains.keys().map(LearnerId::as_str).collect();
    ids.extend(lookups.entries.values().map(|e| e.body.learner.as_str()));
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    let rows = sqlx::query("select learner_id, secret from learner_secrets where learner_id = any($1)")
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut secrets = HashMap::with_capacity(rows.len());
    for row in rows {
        let (id, secret): (String, Vec<u8>) = (row.try_get("learner_id")?, row.try_get("secret")?);
        if let (Ok(id), Ok(secret)) = (LearnerId::parse(id), <[u8; 32]>::try_from(secret)) {
            secrets.insert(id, secret);
        }
    }
    Ok(secrets)
}

/// Groups of at most this many entries are written with one statement that
/// also moves the heads (one round trip); larger ones with `COPY`, cheaper
/// per row, and a second statement for the heads.
const INSERT_ROWS_MAX: usize = 256;

/// Writes `entries` and moves the chain heads to `heads`; how many entries
/// were written. A key or position committed meanwhile by another
/// transaction is a unique violation either way (see [`insert_entries`]).
pub(crate) async fn write_entries(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Entry],
    heads: &std::collections::BTreeMap<u32, Head>,
) -> std::result::Result<u64, sqlx::Error> {
    if entries.len() > INSERT_ROWS_MAX {
        let inserted = insert_entries(tx, entries).await?;
        update_heads(tx, heads).await?;
        return Ok(inserted);
    }
    let small =
        |v: i64, what: &str| i32::try_from(v).map_err(|_| sqlx::Error::Protocol(format!("{what} out of range")));
    let n = entries.len();
    let mut chain_id = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut site_id = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut learner_id = Vec::with_capacity(n);
    let mut course_code = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut credits_cents = Vec::with_capacity(n);
    let mut occurred_at_ms = Vec::with_capacity(n);
    let mut recorded_at_ms = Vec::with_capacity(n);
    let mut score_cents = Vec::with_capacity(n);
    let mut hours_cents = Vec::with_capacity(n);
    let mut rule_version = Vec::with_capacity(n);
    let mut refers_chain = Vec::with_capacity(n);
    let mut refers_seq = Vec::with_capacity(n);
    let mut target_event = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut recognition_group = Vec::with_capacity(n);
    let mut withheld_cents = Vec::with_capacity(n);
    let mut learner_commitment = Vec::with_capacity(n);
    let mut reason_note = Vec::with_capacity(n);
    for e in entries {
        let r = EntryRecord::from(e);
        chain_id.push(small(r.chain_id, "chain id")?);
        seq.push(r.seq);
        prev_hash.push(r.prev_hash);
        hash.push(r.hash);
        kind.push(i16::try_from(r.kind).map_err(|_| sqlx::Error::Protocol("entry kind out of range".into()))?);
        site_id.push(r.site_id);
        event_id.push(r.event_id);
        learner_id.push(r.learner_id);
        course_code.push(r.course_code);
        category.push(r.category);
        credits_cents.push(r.credits_cents);
        occurred_at_ms.push(r.occurred_at_ms);
        recorded_at_ms.push(r.recorded_at_ms);
        score_cents.push(r.score_cents);
        hours_cents.push(r.hours_cents);
        rule_version.push(small(r.rule_version, "rule version")?);
        refers_chain.push(r.refers_chain.map(|c| small(c, "refers chain")).transpose()?);
        refers_seq.push(r.refers_seq);
        target_event.push(r.target_event);
        reason.push(r.reason);
        recognition_group.push(r.recognition_group);
        withheld_cents.push(r.withheld_cents);
        learner_commitment.push(r.learner_commitment);
        reason_note.push(r.reason_note);
    }
    let head_chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
    let head_seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let head_hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.to_vec()).collect();
    // Data-modifying CTEs run to their end whether read or not; the count
    // tells whether every row went in.
    let inserted: i64 = sqlx::query_scalar(concat!(
        "with ins as (
           insert into ledger_entries (",
        entry_insert_columns!(),
        ")
           select * from unnest($1::int[], $2::bigint[], $3::bytea[], $4::bytea[], $5::smallint[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[],
                  $14::bigint[], $15::bigint[], $16::int[], $17::int[], $18::bigint[], $19::text[], $20::text[],
                  $21::text[], $22::bigint[], $23::bytea[], $24::text[])
           returning 1),
         heads as (
           update chain_heads h set seq = u.seq, hash = u.hash
             from unnest($25::int[], $26::bigint[], $27::bytea[]) as u(chain_id, seq, hash)
            where h.chain_id = u.chain_id
           returning 1)
         select count(*) from ins"
    ))
    .bind(&chain_id)
    .bind(&seq)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(&kind)
    .bind(&site_id)
    .bind(&event_id)
    .bind(&learner_id)
    .bind(&course_code)
    .bind(&category)
    .bind(&credits_cents)
    .bind(&occurred_at_ms)
    .bind(&recorded_at_ms)
    .bind(&score_cents)
    .bind(&hours_cents)
    .bind(&rule_version)
    .bind(&refers_chain)
    .bind(&refers_seq)
    .bind(&target_event)
    .bind(&reason)
    .bind(&recognition_group)
    .bind(&withheld_cents)
    .bind(&learner_commitment)
    .bind(&reason_note)
    .bind(&head_chains)
    .bind(&head_seqs)
    .bind(&head_hashes)
    .fetch_one(&mut **tx)
    .await?;
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// Writes `entries` with one binary `COPY` and returns how many were written.
///
/// `COPY` cannot skip conflicting rows: if another transaction committed one
/// of these idempotency keys (or positions) since the lookups, the statement
/// fails with a unique violation, the transaction rolls back and the batch is
/// planned again, this time seeing that entry.
pub(crate) async fn insert_entries(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Entry],
) -> std::result::Result<u64, sqlx::Error> {
    let mut w = CopyWriter::with_capacity(entries.len() * 320);
    let small =
        |v: i64, what: &str| i32::try_from(v).map_err(|_| sqlx::Error::Protocol(format!("{what} out of range")));
    for e in entries {
        let r = EntryRecord::from(e);
        w.row(24);
        w.int4(small(r.chain_id, "chain id")?);
        w.int8(r.seq);
        w.bytea(&r.prev_hash);
        w.bytea(&r.hash);
        w.int2(i16::try_from(r.kind).map_err(|_| sqlx::Error::Protocol("entry kind out of range".into()))?);
        w.text(&r.site_id);
        w.text(&r.event_id);
        w.text(&r.learner_id);
        w.text(&r.course_code);
        w.text(&r.category);
        w.int8(r.credits_cents);
        w.int8(r.occurred_at_ms);
        w.int8(r.recorded_at_ms);
        w.opt_int8(r.score_cents);
        w.opt_int8(r.hours_cents);
        w.int4(small(r.rule_version, "rule version")?);
        w.opt_int4(r.refers_chain.map(|c| small(c, "refers chain")).transpose()?);
        w.opt_int8(r.refers_seq);
        w.opt_text(r.target_event.as_deref());
        w.text(&r.reason);
        w.opt_text(r.recognition_group.as_deref());
        w.opt_int8(r.withheld_cents);
        match &r.learner_commitment {
            Some(c) => w.bytea(c),
            None => w.null(),
        }
        w.opt_text(r.reason_note.as_deref());
    }
    let mut copy = tx
        .copy_in_raw(concat!(
            "copy ledger_entries (",
            entry_insert_columns!(),
            ")
             from stdin (format binary)"
        ))
        .await?;
    copy.send(w.finish()).await?;
    copy.finish().await
}

pub(crate) async fn update_heads(
    tx: &mut Transaction<'_, Postgres>,
    heads: &std::collections::BTreeMap<u32, Head>,
) -> std::result::Result<(), sqlx::Error> {
    let chains: Vec<i32> = heads.keys().map(|c| *c as i32).collect();
    let seqs: Vec<i64> = heads.values().map(|h| h.seq as i64).collect();
    let hashes: Vec<Vec<u8>> = heads.values().map(|h| h.hash.to_vec()).collect();
    sqlx::query(
        "update chain_heads h set seq = u.seq, hash = u.hash
           from unnest($1::int[], $2::bigint[], $3::bytea[]) as u(chain_id, seq, hash)
          where h.chain_id = u.chain_id",
    )
    .bind(&chains)
    .bind(&seqs)
    .bind(&hashes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
