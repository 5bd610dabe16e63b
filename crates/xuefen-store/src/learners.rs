//! Learners: real-name registration, account links and erasure, and the
//! rows both backends write them with.

use async_trait::async_trait;
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{LocalAccount, Position, SiteId};

use crate::{ConflictKind, Result, StoreError, Written};

use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::LearnerId;

#[derive(Debug, Clone)]
pub struct NewLearner {
    /// The id to use if the person is not yet registered.
    pub candidate: LearnerId,
    pub document_kind: DocumentKind,
    /// HMAC-SHA256 of the document under the service's identity key.
    pub document_hash: [u8; 32],
    /// The name as stored: sealed by the service (under `wrapped_key`'s
    /// key when there is one; see [`crate::names`]).
    pub name: String,
    /// The learner's own key, wrapped by the service's keys, if the name
    /// is sealed under it: written with the learner, deleted by erasure.
    pub wrapped_key: Option<String>,
    /// 32 random bytes, the learner's own secret if the person is new:
    /// version-2 entries name the learner by a commitment under it, and
    /// erasure destroys it.
    pub secret: [u8; 32],
}

/// The learners port.
#[async_trait]
pub trait LearnerStore: Send + Sync {
    /// Registers a learner, or finds the one with the same document hash.
    async fn register_learner(&self, learner: &NewLearner) -> Result<(LearnerId, Written)>;
    /// Links a site's local account to a learner. Linking an account to the
    /// learner it already names is fine; to another learner is a conflict.
    /// `registered_at` is when the registration happened, when it is older
    /// than the link (a back-fill); the statistics count it in that year.
    async fn link_account(
        &self,
        site: &SiteId,
        account: &LocalAccount,
        learner: &LearnerId,
        registered_at: Option<Millis>,
    ) -> Result<Written>;
    async fn learner_exists(&self, learner: &LearnerId) -> Result<bool>;
    /// The learner registered with this document hash, and the real name
    /// stored for them: what a site's real-name data is checked against.
    async fn learner_by_document(&self, document_hash: &[u8; 32]) -> Result<Option<(LearnerId, String)>>;
    /// Erases a learner's personal data, in one transaction: appends an
    /// erasure entry with the legal `reason` code to their chain (a
    /// commitment under their secret, nothing else of them), replaces the
    /// learner id kept beside each of their version-2 entries with a fresh
    /// random one and removes those entries' notes, and deletes their
    /// secret, their key (so no copy of their sealed name opens any more),
    /// real name, document hash and account links. Every hash stays
    /// as written, so the ledger still verifies. `NotFound` when no such
    /// learner is registered (never, or already erased).
    async fn erase_learner(&self, learner: &LearnerId, reason: &Reason, now: Millis) -> Result<Position>;
    /// Whether the site has linked the learner or posted for them.
    async fn site_knows_learner(&self, site: &SiteId, learner: &LearnerId) -> Result<bool>;
}

/// The columns a learner is registered with, in [`LearnerRecord`] order.
pub const LEARNER_INSERT_COLUMNS: &str = "id, chain_id, document_kind, document_hash, name";

/// The columns a site's account link is written with, in the order both
/// backends bind them: site, account, learner, back-filled registration.
pub const ACCOUNT_LINK_COLUMNS: &str = "site_id, local_account, learner_id, registered_at";

/// A `learners` row as both backends write it ([`LEARNER_INSERT_COLUMNS`]).
#[derive(Debug, Clone, Copy)]
pub struct LearnerRecord<'a> {
    pub id: &'a str,
    pub chain_id: u32,
    pub document_kind: &'a str,
    pub document_hash: &'a [u8],
    pub name: &'a str,
}

impl NewLearner {
    /// The row that registers this learner, as its candidate id, in a
    /// ledger of `chains` chains.
    pub fn record(&self, chains: u32) -> LearnerRecord<'_> {
        LearnerRecord {
            id: self.candidate.as_str(),
            chain_id: self.candidate.chain(chains),
            document_kind: self.document_kind.as_str(),
            document_hash: &self.document_hash[..],
            name: &self.name,
        }
    }
}

/// A learner id read from the `learners` table; one the service could not
/// have written is corrupt data.
pub fn stored_learner_id(id: String) -> Result<LearnerId> {
    LearnerId::parse(id).map_err(|e| StoreError::Corrupt {
        at: "learners".into(),
        detail: e.to_string(),
    })
}

/// What linking an account that is already linked (to `linked`) to
/// `learner` comes to: the same learner is fine, another one a conflict.
pub fn existing_link(linked: &str, learner: &LearnerId) -> Result<Written> {
    if linked == learner.as_str() {
        Ok(Written::Existing)
    } else {
        Err(StoreError::conflict(
            ConflictKind::LinkedElsewhere,
            "the account is linked to another learner",
        ))
    }
}
