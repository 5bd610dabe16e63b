//! Ingest on PostgreSQL: an optimistic first attempt, then attempts under
//! head row locks, entries written with binary `COPY`, retried on a lost race.
//! The order of the lookups is the common driver's
//! ([`xuefen_store::ledger::ingest`]); this module holds the PostgreSQL side
//! of its steps, and the retries around it. Locking and reading the chain
//! heads (with the secrets read beside them) is in `heads`, writing the
//! planned entries and moving the heads in `write`: recognition runs share
//! both.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};
use xuefen_core::entry::Entry;
use xuefen_core::event::{Event, EventBody, LearnerRef, Millis};
use xuefen_core::ids::{Category, GroupId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::{self, Key, Lookups, Outcome, Plan};
use xuefen_store::ledger::ingest::{CourseHistories, GroupHistories, IngestTx, Secrets, YearTotals, ingest};
use xuefen_store::{Result, StoreError};

use crate::ledger::lookups::{
    course_entries, entries_by_keys, group_entries, lookup_course_keys, reversed_targets, target_chains, year_totals,
};
use crate::{PgStore, db, is_unique_violation};

use heads::{learner_secrets, lock_heads_with_secrets};
use write::write_entries;

pub(crate) mod heads;
pub(crate) mod write;

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
