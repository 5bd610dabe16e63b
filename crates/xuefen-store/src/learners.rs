//! Learners: real-name registration, account links and erasure.

use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::LearnerId;

#[derive(Debug, Clone)]
pub struct NewLearner {
    /// The id to use if the person is not yet registered.
    pub candidate: LearnerId,
    pub document_kind: DocumentKind,
    /// HMAC-SHA256 of the document under the service's identity key.
    pub document_hash: [u8; 32],
    pub name: String,
    /// 32 random bytes, the learner's own secret if the person is new:
    /// version-2 entries name the learner by a commitment under it, and
    /// erasure destroys it.
    pub secret: [u8; 32],
}
