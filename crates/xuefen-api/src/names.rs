//! Learners' names sealed at rest ([`xuefen_core::names`]): the API seals a
//! name before the store sees it and opens it after reading it back, so a
//! store (its file, its WAL, a dump) holds only the sealed text. A value is
//! bound to the learner's document hash.

use xuefen_core::ids::LearnerId;
use xuefen_core::names::NONCE_BYTES;

use crate::AppState;
use crate::problem::ApiResult;

/// A fresh random nonce.
pub(crate) fn nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    nonce
}

/// `name` sealed under the sealing key, bound to `document_hash`.
pub(crate) fn seal(state: &AppState, document_hash: &[u8; 32], name: &str) -> String {
    state.name_keys.seal(document_hash, name, nonce())
}

/// The learner registered with the document, and their name in clear.
pub(crate) async fn learner_by_document(
    state: &AppState,
    document_hash: &[u8; 32],
) -> ApiResult<Option<(LearnerId, String)>> {
    let Some((id, stored)) = state.store.learner_by_document(document_hash).await? else {
        return Ok(None);
    };
    // The start-up check makes this fail only if another instance sealed
    // under a key this one does not hold, or the row was altered.
    let name = state
        .name_keys
        .open(document_hash, &stored)
        .map_err(|e| xuefen_store::StoreError::Corrupt {
            at: format!("learners ({id})"),
            detail: format!("the name does not open: {e}"),
        })?;
    Ok(Some((id, name)))
}
