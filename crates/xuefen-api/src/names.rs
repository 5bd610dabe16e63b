//! Learners' names sealed at rest ([`xuefen_core::names`]): the API seals a
//! name before the store sees it and opens it after reading it back, so a
//! store (its file, its WAL, a dump) holds only the sealed text. A name is
//! sealed under the learner's own key, which the store keeps wrapped by the
//! service's keys and erasure deletes (crypto-shredding). A value is bound
//! to the learner's document hash.

use xuefen_core::ids::LearnerId;
use xuefen_core::names::{LearnerKey, NONCE_BYTES, OpenError, is_learner_sealed};

use crate::AppState;
use crate::problem::ApiResult;

/// Fills `bytes` with fresh randomness.
pub(crate) fn random(bytes: &mut [u8]) {
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), bytes);
}

/// A fresh random nonce.
pub(crate) fn nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    random(&mut nonce);
    nonce
}

/// A new learner's name sealed under a fresh key of their own, bound to
/// `document_hash`, and that key wrapped by the service's sealing key,
/// bound to the learner's id: what registration stores together.
pub(crate) fn seal_under_new_key(
    state: &AppState,
    learner: &LearnerId,
    document_hash: &[u8; 32],
    name: &str,
) -> (String, String) {
    let mut bytes = [0u8; 32];
    random(&mut bytes);
    let key = LearnerKey::from_bytes(bytes);
    let wrapped = state.name_keys.wrap(learner.as_str(), &key, nonce());
    (key.seal(document_hash, name, nonce()), wrapped)
}

/// The learner registered with the document, and their name in clear.
pub(crate) async fn learner_by_document(
    state: &AppState,
    document_hash: &[u8; 32],
) -> ApiResult<Option<(LearnerId, String)>> {
    let Some((id, stored)) = state.learner_store().learner_by_document(document_hash).await? else {
        return Ok(None);
    };
    let wrapped = if is_learner_sealed(&stored) {
        state.name_store().learner_key(&id).await?
    } else {
        None
    };
    // The start-up check makes this fail only if another instance sealed
    // under a key this one does not hold, or the row was altered; without
    // the learner's key the learner was erased meanwhile.
    let name = match state
        .name_keys
        .open_name(id.as_str(), document_hash, &stored, wrapped.as_deref())
    {
        Ok(name) => name,
        Err(OpenError::NoLearnerKey) => return Ok(None),
        Err(e) => {
            return Err(xuefen_store::StoreError::Corrupt {
                at: format!("learners ({id})"),
                detail: format!("the name does not open: {e}"),
            }
            .into());
        }
    };
    Ok(Some((id, name)))
}
