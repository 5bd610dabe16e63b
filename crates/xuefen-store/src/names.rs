//! The storage port of learners' sealed names ([`xuefen_core::names`]).
//!
//! The service seals a learner's real name before the store sees it and
//! opens it after reading it back: a store holds only sealed text. Each
//! learner's name is sealed under a key of their own (`xfl1:…`, bound to
//! the learner's document hash), and that key is kept wrapped by the
//! service's keys (`xfn1:<key id>:…`, bound to the learner id) in
//! `learner_keys`, a row erasure deletes (crypto-shredding: a copy of the
//! sealed name, in a dump or a WAL, no longer opens). Rows written before
//! per-learner keys hold the name sealed under the service's keys (or, from
//! before sealing, in clear); the service moves them under a learner key
//! of their own when it starts.
//!
//! This port lets the service check at start that every key in use is
//! configured, move older names under learner keys, and re-wrap every
//! learner's key under the newest service key (`xuefen names reseal`) so
//! that older keys can be dropped. [`check_name_keys`] and
//! [`reseal_names`] are written once here over the port, so both backends
//! behave alike (the conformance suite runs them).

use async_trait::async_trait;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_core::names::{LearnerKey, NONCE_BYTES, NameKeys, OpenError, is_learner_sealed, key_id_of};
use xuefen_core::note::Note;

use crate::Result;

/// A learner's name as stored, with the document hash it is bound to and
/// the learner's wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    pub learner: LearnerId,
    pub document_hash: [u8; 32],
    /// The sealed text: under the learner's key (`xfl1:…`), or, for a row
    /// written before learner keys, under the service's keys or in clear.
    pub name: String,
    /// The learner's key wrapped by the service's keys, if they have one.
    pub key: Option<String>,
}

/// The learners whose name the service's key `key` opens: directly (a
/// name from before learner keys) or through their wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key id; `None` for names still in clear (or, with `keyed`, for
    /// names whose learner key is missing).
    pub key: Option<String>,
    /// Whether these names are under learner keys (wrapped by `key`), or
    /// are older names sealed under `key` itself.
    pub keyed: bool,
    /// How many learners' names.
    pub rows: u64,
    /// One of them (the least learner id), to try the configured key on.
    pub sample: StoredName,
}

#[async_trait]
pub trait NameStore: Send + Sync {
    /// Up to `limit` learners' stored names (with their wrapped keys), in
    /// learner id order, after `after`.
    async fn stored_names(&self, after: Option<&LearnerId>, limit: u32) -> Result<Vec<StoredName>>;
    /// Every service key in use (and the names in clear), with a count and
    /// a sample each, apart for names under learner keys and older ones.
    async fn name_key_uses(&self) -> Result<Vec<KeyUse>>;
    /// Replaces a learner's stored name with `name` if it is still
    /// `expected` (another instance may have re-sealed it meanwhile, or the
    /// learner been erased); whether it was replaced.
    async fn replace_name(&self, learner: &LearnerId, expected: &str, name: &str) -> Result<bool>;
    /// Gives a learner their own key: in one transaction, replaces their
    /// stored name with `name` (sealed under the key) if it is still
    /// `expected`, and stores `wrapped` as their key (over any older one,
    /// which no name is sealed under); whether it was done.
    async fn key_learner(&self, learner: &LearnerId, expected: &str, wrapped: &str, name: &str) -> Result<bool>;
    /// Replaces a learner's wrapped key with `wrapped` (the same key,
    /// wrapped by a newer service key) if it is still `expected`.
    async fn replace_learner_key(&self, learner: &LearnerId, expected: &str, wrapped: &str) -> Result<bool>;
    /// The learner's wrapped key; `None` if they have none (erased, or
    /// registered before learner keys and not yet moved).
    async fn learner_key(&self, learner: &LearnerId) -> Result<Option<String>>;
    /// Up to `limit` entries after `after`, in position order, whose note
    /// is still in clear (written before notes were sealed,
    /// [`xuefen_core::note`]) and whose learner is not erased, each with
    /// the learner's secret.
    async fn clear_notes(&self, after: Option<Position>, limit: u32) -> Result<Vec<ClearNote>>;
    /// Replaces the note of the entry at `position` by `sealed` if it is
    /// still the clear `expected`; whether it was replaced.
    async fn seal_note(&self, position: Position, expected: &str, sealed: &str) -> Result<bool>;
}

/// An entry's note still in clear, with its learner's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClearNote {
    pub position: Position,
    pub note: String,
    pub secret: [u8; 32],
}

impl std::fmt::Debug for ClearNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearNote")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// Seals every note still in clear under its learner's note key, `page`
/// entries at a time (what the service does at start); how many it sealed.
/// A note that changed meanwhile (its learner erased) is left to the change.
pub async fn seal_clear_notes(store: &(impl NameStore + ?Sized), page: u32) -> Result<u64> {
    let mut sealed = 0;
    let mut after = None;
    loop {
        let notes = store.clear_notes(after, page.max(1)).await?;
        let Some(last) = notes.last() else { break };
        after = Some(last.position);
        for n in notes {
            let note = Note::seal(&n.secret, n.position, &n.note);
            if store.seal_note(n.position, &n.note, note.stored()).await? {
                sealed += 1;
            }
        }
    }
    Ok(sealed)
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
    #[error("the name of learner {learner} is sealed under a learner key that is not stored")]
    KeyMissing { learner: String },
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

fn configured(keys: &NameKeys) -> String {
    keys.ids().collect::<Vec<_>>().join(", ")
}

/// Checks that `keys` open every stored name: each key id in use is
/// configured, and opens its sample (through the learner's key, for names
/// under one). Returns what is in use.
pub async fn check_name_keys(
    store: &(impl NameStore + ?Sized),
    keys: &NameKeys,
) -> std::result::Result<Vec<KeyUse>, NameKeyError> {
    let uses = store.name_key_uses().await?;
    for u in &uses {
        let sample = &u.sample;
        let Some(key) = &u.key else {
            if u.keyed {
                return Err(NameKeyError::KeyMissing {
                    learner: sample.learner.to_string(),
                });
            }
            continue;
        };
        if !keys.has(key) {
            return Err(NameKeyError::Missing {
                key: key.clone(),
                rows: u.rows,
                configured: configured(keys),
            });
        }
        let opened = match (&sample.key, u.keyed) {
            (Some(wrapped), true) => keys.unwrap(sample.learner.as_str(), wrapped).map(Some),
            _ => keys.open(&sample.document_hash, &sample.name).map(|_| None),
        };
        match opened {
            Ok(Some(learner_key)) => {
                learner_key
                    .open(&sample.document_hash, &sample.name)
                    .map_err(|_| NameKeyError::Corrupt {
                        learner: sample.learner.to_string(),
                    })?;
            }
            Ok(None) => {}
            Err(OpenError::UnknownKey(key)) => {
                return Err(NameKeyError::Missing {
                    key,
                    rows: u.rows,
                    configured: configured(keys),
                });
            }
            Err(OpenError::Corrupt | OpenError::NoLearnerKey) => return Err(NameKeyError::Wrong { key: key.clone() }),
        }
    }
    Ok(uses)
}

/// What [`reseal_names`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Names read.
    pub names: u64,
    /// Names that were in clear and are now sealed under a learner key.
    pub sealed: u64,
    /// Names that were sealed under a service key and are now under a
    /// learner key (wrapped by the sealing key).
    pub keyed: u64,
    /// Learner keys re-wrapped from an older service key by the sealing one.
    pub resealed: u64,
}

fn nonce(random: &mut (dyn FnMut(&mut [u8]) + Send)) -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    random(&mut nonce);
    nonce
}

/// Gives a learner whose stored name `stored` opens to `clear` a key of
/// their own: a fresh random key, wrapped by the sealing key, and the name
/// sealed under it, written together (only over `stored`). Whether it was
/// written.
pub async fn key_learner_name(
    store: &(impl NameStore + ?Sized),
    keys: &NameKeys,
    learner: &LearnerId,
    document_hash: &[u8; 32],
    stored: &str,
    clear: &str,
    random: &mut (dyn FnMut(&mut [u8]) + Send),
) -> Result<bool> {
    let mut bytes = [0u8; 32];
    random(&mut bytes);
    let key = LearnerKey::from_bytes(bytes);
    let wrapped = keys.wrap(learner.as_str(), &key, nonce(random));
    let sealed = key.seal(document_hash, clear, nonce(random));
    store.key_learner(learner, stored, &wrapped, &sealed).await
}

/// Moves every stored name not yet under a learner key under one (wrapped
/// by the sealing key, the first of `keys`), and re-wraps every learner key
/// not yet wrapped by the sealing key, `page` rows at a time; with
/// `unkeyed_only`, only the former (what the service does at start).
/// `random` fills bytes with fresh randomness (keys and nonces).
pub async fn reseal_names(
    store: &(impl NameStore + ?Sized),
    keys: &NameKeys,
    unkeyed_only: bool,
    page: u32,
    random: &mut (dyn FnMut(&mut [u8]) + Send),
) -> std::result::Result<ResealReport, NameKeyError> {
    let mut report = ResealReport::default();
    let mut after: Option<LearnerId> = None;
    let opening = |learner: &LearnerId| {
        let learner = learner.to_string();
        move |e: OpenError| match e {
            OpenError::UnknownKey(key) => NameKeyError::Missing {
                key,
                rows: 1,
                configured: configured(keys),
            },
            OpenError::Corrupt | OpenError::NoLearnerKey => NameKeyError::Corrupt { learner },
        }
    };
    loop {
        let rows = store.stored_names(after.as_ref(), page.max(1)).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.learner.clone());
        for row in rows {
            report.names += 1;
            if is_learner_sealed(&row.name) {
                let Some(wrapped) = &row.key else {
                    return Err(NameKeyError::KeyMissing {
                        learner: row.learner.to_string(),
                    });
                };
                if unkeyed_only || key_id_of(wrapped) == Some(keys.current()) {
                    continue;
                }
                let key = keys
                    .unwrap(row.learner.as_str(), wrapped)
                    .map_err(opening(&row.learner))?;
                let rewrapped = keys.wrap(row.learner.as_str(), &key, nonce(random));
                if store.replace_learner_key(&row.learner, wrapped, &rewrapped).await? {
                    report.resealed += 1;
                }
                continue;
            }
            let clear = keys
                .open(&row.document_hash, &row.name)
                .map_err(opening(&row.learner))?;
            if key_learner_name(store, keys, &row.learner, &row.document_hash, &row.name, &clear, random).await? {
                match key_id_of(&row.name) {
                    None => report.sealed += 1,
                    Some(_) => report.keyed += 1,
                }
            }
        }
    }
    Ok(report)
}
