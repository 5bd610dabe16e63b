//! Chain heads under ingest: locking their rows for the attempt (the
//! order in which entries are appended), and the learners' secrets, read
//! in the same statement when they can be.

use std::collections::{BTreeSet, HashMap};

use sqlx::{Postgres, Row, Transaction};
use xuefen_core::ids::LearnerId;
use xuefen_core::plan::{Head, Lookups};

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
