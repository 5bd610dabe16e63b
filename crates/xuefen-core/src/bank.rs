//! The credit bank feed: signed checkpoints, deposit proofs, cursors and
//! acknowledgements, all pure.
//!
//! A **checkpoint** binds every chain at one moment: for each chain its size,
//! head hash and the Merkle root ([`crate::merkle`]) of its entry hashes. The
//! chains become the leaves of a small tree whose root, with the checkpoint's
//! number, time and its predecessor's hash, is the **signed head**
//! ([`Checkpoint::signed_bytes`], Ed25519). A **deposit proof** leads from an
//! entry's hash to that root in two inclusion paths: the entry in its chain's
//! tree, then the chain in the checkpoint's tree. An **acknowledgement** of a
//! deposit by the bank is itself a ledger entry in the learner's chain
//! ([`ack_body`]). The byte formats are specified in `docs/ledger-format.md`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::FieldError;
use crate::amount::Credits;
use crate::entry::{Entry, EntryBody, EntryKind};
use crate::event::{Millis, Reason};
use crate::ids::{EventId, Position, SiteId};
use crate::merkle::{self, Hash};
use crate::note::Note;

mod checkpoint;

pub use self::checkpoint::*;

/// Domain tag of a checkpoint's signed bytes: `xuefen/checkpoint/v1` and a zero byte.
pub const CHECKPOINT_TAG: &[u8; 21] = b"xuefen/checkpoint/v1\0";

/// The site id under which the credit bank's acknowledgements are recorded.
/// No alliance site may take it.
pub const BANK_SITE: &str = "credit-bank";

/// Longest reason code of a rejection, in bytes.
pub const REASON_CODE_BYTES_MAX: usize = 32;
/// The text a note that does not open reads as: a control character, which
/// no decision's text holds ([`Reason::parse`] refuses them).
const UNOPENED: &str = "\u{0}";

/// A position in the deposit feed, opaque to clients: base64url (no padding)
/// of `"xfl1"` and the log index the next page starts from, as a `u64`.
/// (Cursors of the earlier numbering, `"xfd1"`, are refused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor(pub u64);

impl Cursor {
    const MAGIC: &'static [u8; 4] = b"xfl1";

    pub fn encode(self) -> String {
        let mut bytes = Self::MAGIC.to_vec();
        bytes.extend_from_slice(&self.0.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("after", "is not a cursor this service issued");
        if value.len() > 32 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
        match bytes.split_first_chunk::<4>() {
            Some((magic, rest)) if magic == Self::MAGIC => {
                let n: [u8; 8] = rest.try_into().map_err(|_| bad())?;
                Ok(Self(u64::from_be_bytes(n)))
            }
            _ => Err(bad()),
        }
    }
}

/// Whether an entry is a deposit, given the kind of the entry a reversal
/// refers to: every entry that pays credits (an award, a capped award, a
/// promotion within a recognition group), and every reversal of one.
/// Recognised and not-passed completions pay nothing and are not deposits.
pub fn is_deposit(kind: EntryKind, reversed_kind: Option<EntryKind>) -> bool {
    match kind {
        EntryKind::Reversal => reversed_kind.is_some_and(EntryKind::pays),
        k => k.pays(),
    }
}

/// What the bank decided about a deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted,
    Rejected { code: String, text: String },
}

impl Decision {
    /// `code` is `[a-z0-9_]`, 1 to 32 bytes; `text` free text. Code and text
    /// are recorded in the entry's `reason` as `code: text`, within its limit.
    pub fn rejected(code: &str, text: &str) -> Result<Self, FieldError> {
        if code.is_empty()
            || code.len() > REASON_CODE_BYTES_MAX
            || !code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(FieldError::new(
                "reason_code",
                format!("must be [a-z0-9_], 1 to {REASON_CODE_BYTES_MAX} bytes"),
            ));
        }
        let d = Self::Rejected {
            code: code.to_owned(),
            text: text.trim().to_owned(),
        };
        Reason::parse(d.reason(), "reason")?;
        Ok(d)
    }

    fn reason(&self) -> String {
        match self {
            Decision::Accepted => String::new(),
            Decision::Rejected { code, text } if text.is_empty() => code.clone(),
            Decision::Rejected { code, text } => format!("{code}: {text}"),
        }
    }

    /// Reads the decision back from an acknowledgement entry; `open` reads
    /// the words of its note (a note that does not open, its learner erased
    /// or the value altered, reads as text no decision has).
    pub fn of(body: &EntryBody, open: impl FnOnce(&Note) -> Option<String>) -> Option<Self> {
        match body.kind {
            EntryKind::BankAccepted => Some(Decision::Accepted),
            EntryKind::BankRejected if body.commitment.is_some() => Some(Decision::Rejected {
                code: body.reason.as_str().to_owned(),
                text: match &body.note {
                    Some(note) => open(note).unwrap_or_else(|| UNOPENED.to_owned()),
                    None => String::new(),
                },
            }),
            EntryKind::BankRejected => {
                let r = body.reason.as_str();
                let (code, text) = r.split_once(": ").unwrap_or((r, ""));
                Some(Decision::Rejected {
                    code: code.to_owned(),
                    text: text.to_owned(),
                })
            }
            _ => None,
        }
    }

    /// The first field in which `self` differs from `other`.
    pub fn first_difference(&self, other: &Decision) -> Option<&'static str> {
        match (self, other) {
            (Decision::Accepted, Decision::Accepted) => None,
            (Decision::Rejected { code: a, text: x }, Decision::Rejected { code: b, text: y }) => {
                if a != b {
                    Some("reason_code")
                } else if x != y {
                    Some("reason")
                } else {
                    None
                }
            }
            _ => Some("outcome"),
        }
    }
}

/// The event id of the acknowledgement of the deposit at `deposit`:
/// `deposit-<chain>-<seq>`. With [`BANK_SITE`] it is the ledger's
/// idempotency key, so a deposit is acknowledged at most once.
pub fn ack_event_id(deposit: Position) -> EventId {
    // Digits and dashes, at most 41 bytes: always a valid event id.
    EventId::parse(format!("deposit-{}-{}", deposit.chain, deposit.seq))
        .unwrap_or_else(|_| unreachable!("a numeric event id is valid"))
}

/// The ledger entry body that records the bank's decision on `deposit`: in
/// the deposit's chain, naming the deposit by `refers_to`, with zero credits
/// and the deposit's learner, course, category, rule version and date. It
/// is written in the deposit's format version: a version-2 deposit's
/// acknowledgement repeats its commitment (`refers_to` links the two
/// anyway) and hashes the reason code alone, the text going to the note; a
/// version-1 deposit's is a version-1 entry with `code: text` as before.
///
/// The acknowledgement goes at `position`; its note is sealed there under
/// the learner's `secret` ([`crate::note`]). Without one (the learner was
/// erased) the words are not kept.
pub fn ack_body(
    deposit: &Entry,
    decision: &Decision,
    now: Millis,
    position: Position,
    secret: Option<&[u8; 32]>,
) -> EntryBody {
    let d = &deposit.body;
    let (reason, note) = match (d.commitment, decision) {
        (Some(_), Decision::Rejected { code, text }) => (
            Reason::code(code.clone(), "reason_code").unwrap_or_default(),
            secret
                .filter(|_| !text.is_empty())
                .map(|secret| Note::seal(secret, position, text)),
        ),
        (Some(_), Decision::Accepted) => (Reason::default(), None),
        // Checked by `Decision::rejected`.
        (None, _) => (Reason::parse(decision.reason(), "reason").unwrap_or_default(), None),
    };
    EntryBody {
        kind: match decision {
            Decision::Accepted => EntryKind::BankAccepted,
            Decision::Rejected { .. } => EntryKind::BankRejected,
        },
        site: SiteId::parse(BANK_SITE).unwrap_or_else(|_| unreachable!("the bank's site id is valid")),
        event_id: ack_event_id(deposit.position),
        learner: d.learner.clone(),
        commitment: d.commitment,
        course: d.course.clone(),
        category: d.category.clone(),
        credits: Credits::ZERO,
        occurred_at: d.occurred_at,
        recorded_at: now,
        score: None,
        hours: None,
        rule_version: d.rule_version,
        refers_to: Some(deposit.position),
        target_event: None,
        reason,
        note,
        recognition_group: d.recognition_group.clone(),
        withheld: None,
    }
}

/// A fresh signing key from 32 secret bytes.
pub fn signing_key(secret: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(secret)
}

#[cfg(test)]
mod tests;
