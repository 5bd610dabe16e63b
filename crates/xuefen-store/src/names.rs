//! The storage port of learners' sealed names ([`xuefen_core::names`]).
//!
//! The service seals a learner's real name before the store sees it and
//! opens it after reading it back: a store holds only the sealed text
//! (`xfn1:<key id>:…`, bound to the learner's document hash). This port
//! lets the service check at start that every key a stored name is sealed
//! under is configured, seal names written in clear before sealing
//! existed, and re-seal every name under the newest key
//! (`xuefen names reseal`) so that older keys can be dropped.
//!
//! [`check_name_keys`] and [`reseal_names`] are written once here over the
//! port, so both backends behave alike (the conformance suite runs them).

use async_trait::async_trait;
use xuefen_core::ids::LearnerId;
use xuefen_core::names::{NONCE_BYTES, NameKeys, OpenError, key_id_of};

use crate::Result;

/// A learner's name as stored, with the document hash it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    pub learner: LearnerId,
    pub document_hash: [u8; 32],
    /// The sealed text (or, for a row written before sealing, the name in clear).
    pub name: String,
}

/// The stored names sealed under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key id; `None` for names still in clear.
    pub key: Option<String>,
    /// How many learners' names.
    pub rows: u64,
    /// One of them (the least learner id), to try the configured key on.
    pub sample: StoredName,
}

#[async_trait]
pub trait NameStore: Send + Sync {
    /// Up to `limit` learners' stored names, in learner id order, after
    /// `after`.
    async fn stored_names(&self, after: Option<&LearnerId>, limit: u32) -> Result<Vec<StoredName>>;
    /// Every key the stored names are sealed under (and the names in
    /// clear), with a count and a sample each.
    async fn name_key_uses(&self) -> Result<Vec<KeyUse>>;
    /// Replaces a learner's stored name with `name` if it is still
    /// `expected` (another instance may have re-sealed it meanwhile, or the
    /// learner been erased); whether it was replaced.
    async fn replace_name(&self, learner: &LearnerId, expected: &str, name: &str) -> Result<bool>;
}

/// Why the configured name keys cannot serve the stored names.
#[derive(Debug, thiserror::Error)]
pub enum NameKeyError {
    #[error(
        "{rows} learners' names are sealed under key `{key}`, which `name_keys` does not hold \
         (configured: {configured}); add it back (after the sealing key) until `xuefen names reseal` \
         has moved every name to the first key"
    )]
    Missing { key: String, rows: u64, configured: String },
    #[error(
        "the key `{key}` of `name_keys` does not open the names sealed under that id: it is not the \
         key they were sealed with"
    )]
    Wrong { key: String },
    #[error("the stored name of learner {learner} is malformed or was altered")]
    Corrupt { learner: String },
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

fn configured(keys: &NameKeys) -> String {
    keys.ids().collect::<Vec<_>>().join(", ")
}

/// Checks that `keys` open every stored name: each key id in use is
/// configured, and opens its sample. Returns what is in use.
pub async fn check_name_keys(
    store: &(impl NameStore + ?Sized),
    keys: &NameKeys,
) -> std::result::Result<Vec<KeyUse>, NameKeyError> {
    let uses = store.name_key_uses().await?;
    for u in &uses {
        let Some(key) = &u.key else { continue };
        if !keys.has(key) {
            return Err(NameKeyError::Missing {
                key: key.clone(),
                rows: u.rows,
                configured: configured(keys),
            });
        }
        match keys.open(&u.sample.document_hash, &u.sample.name) {
            Ok(_) => {}
            Err(OpenError::UnknownKey(key)) => {
                return Err(NameKeyError::Missing {
                    key,
                    rows: u.rows,
                    configured: configured(keys),
                });
            }
            Err(OpenError::Corrupt) => return Err(NameKeyError::Wrong { key: key.clone() }),
        }
    }
    Ok(uses)
}

/// What [`reseal_names`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Names read.
    pub names: u64,
    /// Names that were in clear and are now sealed.
    pub sealed: u64,
    /// Names moved from an older key to the sealing one.
    pub resealed: u64,
}

/// Seals every stored name not yet under the sealing key (the first of
/// `keys`) with it, `page` rows at a time; with `clear_only`, only the
/// names still in clear. `nonce` gives a fresh random nonce per value.
pub async fn reseal_names(
    store: &(impl NameStore + ?Sized),
    keys: &NameKeys,
    clear_only: bool,
    page: u32,
    nonce: &mut (dyn FnMut() -> [u8; NONCE_BYTES] + Send),
) -> std::result::Result<ResealReport, NameKeyError> {
    let mut report = ResealReport::default();
    let mut after: Option<LearnerId> = None;
    loop {
        let rows = store.stored_names(after.as_ref(), page.max(1)).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.learner.clone());
        for row in rows {
            report.names += 1;
            let under = key_id_of(&row.name);
            if under == Some(keys.current()) || (clear_only && under.is_some()) {
                continue;
            }
            let clear = keys.open(&row.document_hash, &row.name).map_err(|e| match e {
                OpenError::UnknownKey(key) => NameKeyError::Missing {
                    key,
                    rows: 1,
                    configured: configured(keys),
                },
                OpenError::Corrupt => NameKeyError::Corrupt {
                    learner: row.learner.to_string(),
                },
            })?;
            let sealed = keys.seal(&row.document_hash, &clear, nonce());
            if store.replace_name(&row.learner, &row.name, &sealed).await? {
                match under {
                    None => report.sealed += 1,
                    Some(_) => report.resealed += 1,
                }
            }
        }
    }
    Ok(report)
}
