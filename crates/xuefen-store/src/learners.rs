//! Learners: real-name registration, account links and erasure.

use async_trait::async_trait;
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{LocalAccount, Position, SiteId};

use crate::{Result, Written};

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
