//! The wire types of the deposit feed and their conversions from the store's
//! records: what the bank reads (deposits with proofs) and what it posts
//! (decisions, acknowledgements).

use crate::problem::PositionOut;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::bank::{Cursor, Decision};
use xuefen_store::bank::DepositRecord;

/// The proof that a deposit's entry is in the log under the page's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProofOut {
    /// The size of the log under the page's checkpoint.
    pub tree_size: u64,
    /// RFC 9162 inclusion path of the leaf `SHA-256(0x00 ‖ entry hash)` at
    /// `log_index` in the tree of `tree_size` leaves, leaf side first (hex).
    pub inclusion: Vec<String>,
}

/// A deposit: an entry that pays credits (awarded, capped, promoted), or
/// the reversal of one, handed to the credit bank.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositOut {
    /// The cursor that resumes the feed after this deposit.
    pub cursor: String,
    /// Its index in the log.
    pub log_index: u64,
    /// `awarded`, `capped`, `promoted` (an entry that pays credits) or
    /// `reversal` (of one).
    pub kind: String,
    /// The credit bank's own pseudonym of the learner (`psn_…`): the one
    /// `POST /v1/learners` answers it for the holder's real-name data.
    pub learner_id: String,
    pub site_id: String,
    pub event_id: String,
    pub course: String,
    pub category: String,
    /// The recognition group the entry was credited under, if any.
    pub recognition_group: Option<String>,
    #[schema(value_type = String)]
    pub credits: String,
    pub rule_version: u32,
    pub completed_at: String,
    pub recorded_at: String,
    /// For a reversal: the deposit it cancels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<PositionOut>,
    /// Ledger position of the entry.
    pub position: PositionOut,
    /// The entry's hash, its predecessor's hash and its canonical bytes (hex),
    /// so that the hash can be recomputed (docs/ledger-format.md, section 4).
    pub entry_hash: String,
    pub prev_hash: String,
    pub entry_bytes: String,
    pub proof: ProofOut,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositPageOut {
    pub deposits: Vec<DepositOut>,
    /// Pass as `after` for the next page.
    pub next_cursor: String,
    /// The signed checkpoint (C2SP signed note) every proof of the page
    /// leads to, with the witnesses' cosignature lines (C2SP
    /// tlog-cosignature) the service holds of it appended; absent before
    /// anything is sealed. With witnesses configured it is the latest
    /// checkpoint a witness cosigned, so the page holds only entries below
    /// that size.
    pub checkpoint: Option<String>,
    /// The log size that checkpoint names.
    pub tree_size: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicKeyOut {
    /// `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// The log's origin, the first line of every checkpoint.
    pub origin: String,
    /// The C2SP signed-note verifier key: `origin+keyid+base64(0x01 ‖ key)`.
    pub verifier_key: String,
}

/// The bank's decision on one deposit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// For a rejection: `[a-z0-9_]`, 1 to 32 bytes.
    pub reason_code: Option<String>,
    /// For a rejection: free text.
    pub reason: Option<String>,
}

impl DecisionIn {
    pub(super) fn parse(&self) -> Result<Decision, FieldError> {
        match self.outcome.as_str() {
            "accepted" if self.reason_code.is_none() => Ok(Decision::Accepted),
            "accepted" => Err(FieldError::new("reason_code", "is only for a rejection")),
            "rejected" => {
                let code = self
                    .reason_code
                    .as_deref()
                    .ok_or_else(|| FieldError::new("reason_code", "is required for a rejection"))?;
                Decision::rejected(code, self.reason.as_deref().unwrap_or(""))
            }
            _ => Err(FieldError::new("outcome", "must be `accepted` or `rejected`")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckIn {
    /// The deposit's ledger position.
    pub deposit: PositionOut,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// For a rejection: `[a-z0-9_]`, 1 to 32 bytes.
    pub reason_code: Option<String>,
    /// For a rejection: free text.
    pub reason: Option<String>,
}

impl AckIn {
    pub(super) fn decision(&self) -> DecisionIn {
        DecisionIn {
            outcome: self.outcome.clone(),
            reason_code: self.reason_code.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcksIn {
    pub acks: Vec<AckIn>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AckResult {
    pub deposit: PositionOut,
    /// `recorded`, `duplicate`, `conflict` or `rejected`.
    pub status: String,
    /// The acknowledgement's own ledger entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcksOut {
    pub recorded: usize,
    pub duplicate: usize,
    pub conflict: usize,
    pub rejected: usize,
    /// One result per acknowledgement, in the order posted.
    pub results: Vec<AckResult>,
}

pub(super) fn hexes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

pub(super) fn deposit_out(r: &DepositRecord, size: u64, path: &[[u8; 32]]) -> DepositOut {
    let e = &r.entry;
    let b = &e.body;
    DepositOut {
        cursor: Cursor(r.index + 1).encode(),
        log_index: r.index,
        kind: b.kind.as_str().to_owned(),
        learner_id: b.learner.to_string(),
        site_id: b.site.to_string(),
        event_id: b.event_id.to_string(),
        course: b.course.to_string(),
        category: b.category.to_string(),
        recognition_group: b.recognition_group.as_ref().map(ToString::to_string),
        credits: b.credits.to_string(),
        rule_version: b.rule_version,
        completed_at: b.occurred_at.to_rfc3339(),
        recorded_at: b.recorded_at.to_rfc3339(),
        reverses: b.refers_to.map(Into::into),
        position: e.position.into(),
        entry_hash: hex::encode(e.hash),
        prev_hash: hex::encode(e.prev_hash),
        entry_bytes: hex::encode(b.encode()),
        proof: ProofOut {
            tree_size: size,
            inclusion: hexes(path),
        },
    }
}
