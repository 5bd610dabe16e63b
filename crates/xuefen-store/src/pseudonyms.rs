//! The storage port of pairwise learner pseudonyms
//! ([`xuefen_core::pseudonym`]): the pseudonyms handed to each audience, so
//! that the audience's requests can name a learner by its own pseudonym.
//!
//! The service computes a pseudonym; a store only remembers it. A row is
//! written the first time an answer shows a learner to an audience, and a
//! pseudonym resolves only under the audience it was written for: another
//! site's pseudonym of the same learner is simply not found. Erasing a
//! learner deletes their rows with the learner (a foreign key with `on
//! delete cascade`, and explicitly in the erasure).
//!
//! Beside them, the bindings of single sign-on subjects to learners
//! (`learner_sso_bindings`): the SSO's own id of a person, as a keyed hash,
//! for an SSO that does not know the unified learner id.

use async_trait::async_trait;
use xuefen_core::ids::LearnerId;
use xuefen_core::pseudonym::{Audience, Pseudonym};

use crate::Result;

/// One pseudonym handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudonymRow {
    pub audience: Audience,
    pub pseudonym: Pseudonym,
    pub learner: LearnerId,
}

#[async_trait]
pub trait PseudonymStore: Send + Sync {
    /// Records pseudonyms handed out, in one transaction. Recording one
    /// again is not an error; a row whose learner is not registered (never,
    /// or erased meanwhile) is left out.
    async fn remember_pseudonyms(&self, rows: &[PseudonymRow]) -> Result<()>;
    /// The learner `audience` knows as `pseudonym`, if it was handed to that
    /// audience and the learner is still registered. Without an audience
    /// (the admin's view), the learner any audience knows by it.
    async fn learner_by_pseudonym(
        &self,
        audience: Option<&Audience>,
        pseudonym: &Pseudonym,
    ) -> Result<Option<LearnerId>>;

    /// The learner a single sign-on subject is bound to, by the subject's
    /// keyed hash (`xuefen_api::sso::subject_hash`).
    async fn learner_by_sso_subject(&self, subject_hash: &[u8; 32]) -> Result<Option<LearnerId>>;
    /// Binds a single sign-on subject to a learner. A subject bound already
    /// keeps its first learner; binding a learner who is not registered
    /// binds nothing.
    async fn bind_sso_subject(&self, subject_hash: &[u8; 32], learner: &LearnerId) -> Result<()>;
}
