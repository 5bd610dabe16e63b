//! What became of one posted event, as the answers of the events door say it.

use serde::{Deserialize, Serialize};

/// The status of one event in an answer: the wire spells it in lower case
/// (`accepted`, `duplicate`, `conflict`, `rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Written now: a new ledger entry.
    Accepted,
    /// Written before under the same idempotency key with the same content.
    Duplicate,
    /// The idempotency key is taken by an event with other content.
    Conflict,
    /// Refused; the answer's problem says why.
    Rejected,
}
