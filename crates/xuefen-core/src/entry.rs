//! Ledger entries, their canonical bytes and the hash chain rule.
//!
//! The byte layout is specified in `docs/ledger-format.md`; this module is
//! its reference implementation and a test checks the worked example there.
//! Format version 2 (the one written now) names the learner by an
//! unlinkable commitment under the learner's own secret, and hashes a
//! reason code instead of free text; version 1 (the unified learner id and
//! free text) is still decoded and verified.

use sha2::{Digest, Sha256};

use crate::amount::{Credits, Hours, Score};
use crate::event::{Millis, Reason};
use crate::ids::{Category, CourseCode, EventId, GroupId, LearnerId, Position, SiteId};
use crate::note::Note;

mod codec;
mod kind;

use self::codec::*;
pub use self::kind::EntryKind;

/// Version byte of the entries written now.
pub const FORMAT_VERSION: u8 = 2;
/// Version byte of the entries written before learner commitments.
pub const FORMAT_V1: u8 = 1;
/// Domain-separation tag hashed before every version-2 entry.
pub const DOMAIN_TAG: &[u8] = b"xuefen/ledger/v2\0";
/// Domain-separation tag hashed before every version-1 entry.
pub const DOMAIN_TAG_V1: &[u8] = b"xuefen/ledger/v1\0";
/// The prefix of the HMAC message of a learner commitment.
pub const COMMITMENT_TAG: &[u8] = b"xuefen/learner-commitment/v2\0";
/// The `prev_hash` of the first entry of every chain.
pub const GENESIS: [u8; 32] = [0; 32];

/// The content of a ledger entry: everything that is hashed besides its
/// position and predecessor, and (`note`) the one field kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBody {
    pub kind: EntryKind,
    pub site: SiteId,
    pub event_id: EventId,
    /// The unified learner id. Hashed in version 1; in version 2 it is only
    /// the store's index (erasure replaces it) and the commitment is hashed
    /// instead, so a decoded version-2 entry has [`LearnerId::nobody`].
    pub learner: LearnerId,
    /// Version 2: the learner commitment ([`learner_commitment`]) hashed in
    /// place of the learner id. `None` for a version-1 entry.
    pub commitment: Option<[u8; 32]>,
    pub course: CourseCode,
    pub category: Category,
    /// Signed: a reversal carries the negated credits of its award.
    pub credits: Credits,
    /// When the learning happened; a reversal repeats its award's date so
    /// that yearly totals net out.
    pub occurred_at: Millis,
    /// When the ledger accepted the event.
    pub recorded_at: Millis,
    pub score: Option<Score>,
    pub hours: Option<Hours>,
    pub rule_version: u32,
    /// For a reversal: the position of the award it reverses.
    pub refers_to: Option<Position>,
    /// For a reversal: the event id of the award it reverses.
    pub target_event: Option<EventId>,
    /// For a reversal (and a bank rejection, an erasure): why. Version 1:
    /// free text; version 2: a reason code ([`check_reason_code`]).
    pub reason: Reason,
    /// Version 2: free text given with the reason code, kept outside the
    /// canonical bytes (so never hashed), sealed under the learner's note
    /// key ([`crate::note`]) and removed by an erasure.
    pub note: Option<Note>,
    /// The recognition group of the course, when it has one (a reversal
    /// repeats its target's), so that a learner's group history is read
    /// from the ledger alone.
    pub recognition_group: Option<GroupId>,
    /// For recognised and capped entries (and a capped promotion): the
    /// credits the rule gave that were not paid.
    pub withheld: Option<Credits>,
}

/// An entry with its place in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub position: Position,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub body: EntryBody,
}

/// Why stored bytes are not a canonical entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("invalid field {field}: {detail}")]
    Field { field: &'static str, detail: String },
}

impl EntryBody {
    /// The format version of the entry: 2 with a commitment, 1 without.
    pub fn version(&self) -> u8 {
        if self.commitment.is_some() {
            FORMAT_VERSION
        } else {
            FORMAT_V1
        }
    }

    /// The canonical bytes of the entry, in its format version
    /// (`docs/ledger-format.md`, section 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        out.push(self.version());
        out.push(self.kind.code());
        put_str(&mut out, self.site.as_str());
        put_str(&mut out, self.event_id.as_str());
        match &self.commitment {
            Some(c) => out.extend_from_slice(c),
            None => put_str(&mut out, self.learner.as_str()),
        }
        put_str(&mut out, self.course.as_str());
        put_str(&mut out, self.category.as_str());
        out.extend_from_slice(&self.credits.cents().to_be_bytes());
        out.extend_from_slice(&self.occurred_at.0.to_be_bytes());
        out.extend_from_slice(&self.recorded_at.0.to_be_bytes());
        put_opt_i64(&mut out, self.score.map(Score::cents));
        put_opt_i64(&mut out, self.hours.map(Hours::cents));
        out.extend_from_slice(&self.rule_version.to_be_bytes());
        match self.refers_to {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                out.extend_from_slice(&p.chain.to_be_bytes());
                out.extend_from_slice(&p.seq.to_be_bytes());
            }
        }
        match &self.target_event {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                put_str(&mut out, id.as_str());
            }
        }
        put_str(&mut out, self.reason.as_str());
        match &self.recognition_group {
            None => out.push(0),
            Some(g) => {
                out.push(1);
                put_str(&mut out, g.as_str());
            }
        }
        put_opt_i64(&mut out, self.withheld.map(Credits::cents));
        out
    }

    /// Parses canonical bytes (version 1 or 2) back into an entry, refusing
    /// anything that [`EntryBody::encode`] would not have produced. The
    /// `note` is not in the bytes and decodes as `None`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != FORMAT_VERSION && version != FORMAT_V1 {
            return Err(DecodeError::Version(version));
        }
        let kind = kind_of(r.u8()?, version)?;
        let site = r.parsed(SiteId::parse)?;
        let event_id = r.parsed(EventId::parse)?;
        let (learner, commitment) = learner_of(&mut r, version)?;
        let course = r.parsed(CourseCode::parse)?;
        let category = r.parsed(Category::parse)?;
        let credits = Credits::from_cents(r.i64()?);
        let occurred_at = Millis(r.i64()?);
        let recorded_at = Millis(r.i64()?);
        let score = r.opt_i64()?.map(Score::from_cents);
        let hours = r.opt_i64()?.map(Hours::from_cents);
        let rule_version = r.u32()?;
        let refers_to = r.opt(|r| {
            Ok(Position {
                chain: r.u32()?,
                seq: r.u64()?,
            })
        })?;
        let target_event = r.opt(|r| r.parsed(EventId::parse))?;
        let reason = reason_of(&mut r, version)?;
        let recognition_group = r.opt(|r| r.parsed(GroupId::parse))?;
        let withheld = r.opt_i64()?.map(Credits::from_cents);
        if r.at != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(Self {
            kind,
            site,
            event_id,
            learner,
            commitment,
            course,
            category,
            credits,
            occurred_at,
            recorded_at,
            score,
            hours,
            rule_version,
            refers_to,
            target_event,
            reason,
            note: None,
            recognition_group,
            withheld,
        })
    }
}

/// The kind an entry's `code` names; `Erased` exists only from format version 2.
fn kind_of(code: u8, version: u8) -> Result<EntryKind, DecodeError> {
    EntryKind::from_code(code)
        .filter(|k| version == FORMAT_VERSION || *k != EntryKind::Erased)
        .ok_or(DecodeError::Field {
            field: "kind",
            detail: "unknown code".into(),
        })
}

/// How an entry names its learner: a commitment in version 2 (the learner then decodes as
/// nobody), the learner id in version 1.
fn learner_of(r: &mut Reader<'_>, version: u8) -> Result<(LearnerId, Option<[u8; 32]>), DecodeError> {
    if version == FORMAT_VERSION {
        Ok((LearnerId::nobody(), Some(r.array::<32>()?)))
    } else {
        Ok((r.parsed(LearnerId::parse)?, None))
    }
}

/// An entry's reason: a reason code in version 2, free text in version 1.
fn reason_of(r: &mut Reader<'_>, version: u8) -> Result<Reason, DecodeError> {
    let reason = r.str()?;
    if version == FORMAT_VERSION {
        check_reason_code(&reason, "reason").map_err(field_err)?;
    }
    Reason::parse(reason, "reason").map_err(field_err)
}

/// The most bytes of a reason code.
pub const REASON_CODE_BYTES_MAX: usize = 32;

/// A reason code, the `reason` of a version-2 entry: `[a-z0-9_]`, at most
/// [`REASON_CODE_BYTES_MAX`] bytes, empty where the entry has no reason. It
/// is chosen from a list, never typed by a person, so it holds no personal
/// data; free text goes to the entry's `note`, outside the hash.
pub fn check_reason_code(code: &str, field: &'static str) -> Result<(), crate::FieldError> {
    let ok = code.len() <= REASON_CODE_BYTES_MAX
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::FieldError::new(
            field,
            format!("a reason code is [a-z0-9_], at most {REASON_CODE_BYTES_MAX} bytes"),
        ))
    }
}

/// The commitment that names a learner in the version-2 entry at
/// `position`: `HMAC-SHA256(secret, COMMITMENT_TAG ‖ chain ‖ seq)` under the
/// learner's own 32-byte secret. Different at every position, so two
/// entries of one learner cannot be matched by it; whoever holds the secret
/// can show an entry is the learner's; once the secret is destroyed
/// (erasure) nobody can.
pub fn learner_commitment(secret: &[u8; 32], position: Position) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(COMMITMENT_TAG);
    mac.update(&position.chain.to_be_bytes());
    mac.update(&position.seq.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// The reserved site id of erasure records.
pub const ERASURE_SITE: &str = "xuefen";

/// The entry that records an erasure in the erased learner's chain
/// (`docs/ledger-format.md`, section 3c, kind 12): the legal reason code and
/// nothing that names the learner or their entries. `nonce` (16 random
/// bytes) makes its event id; `tombstone` is the learner id the store keeps
/// beside it (a fresh random one). Sealed at `position` after `prev_hash`,
/// with a commitment under the learner's `secret`, which the caller then
/// destroys.
pub fn erasure_entry(
    secret: &[u8; 32],
    position: Position,
    prev_hash: [u8; 32],
    reason: Reason,
    now: Millis,
    nonce: [u8; 16],
    tombstone: LearnerId,
) -> Entry {
    let erasure = |s: &str| s.to_owned();
    let body = EntryBody {
        kind: EntryKind::Erased,
        site: SiteId::parse(ERASURE_SITE).unwrap_or_else(|_| unreachable!("the erasure site id is valid")),
        event_id: EventId::parse(format!("erasure-{}", hex::encode(nonce)))
            .unwrap_or_else(|_| unreachable!("hex digits make a valid event id")),
        learner: tombstone,
        commitment: Some(learner_commitment(secret, position)),
        course: CourseCode::parse(erasure("erasure")).unwrap_or_else(|_| unreachable!("valid course code")),
        category: Category::parse(erasure("erasure")).unwrap_or_else(|_| unreachable!("valid category")),
        credits: Credits::ZERO,
        occurred_at: now,
        recorded_at: now,
        score: None,
        hours: None,
        rule_version: 0,
        refers_to: None,
        target_event: None,
        reason,
        note: None,
        recognition_group: None,
        withheld: None,
    };
    Entry::seal(position, prev_hash, body)
}

/// `SHA-256(tag ‖ chain ‖ seq ‖ prev_hash ‖ canonical)`, integers
/// big-endian, where the tag is that of the version the canonical bytes
/// open with ([`DOMAIN_TAG_V1`] for version 1, [`DOMAIN_TAG`] otherwise).
pub fn entry_hash(position: Position, prev_hash: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(if canonical.first() == Some(&FORMAT_V1) {
        DOMAIN_TAG_V1
    } else {
        DOMAIN_TAG
    });
    h.update(position.chain.to_be_bytes());
    h.update(position.seq.to_be_bytes());
    h.update(prev_hash);
    h.update(canonical);
    h.finalize().into()
}

impl Entry {
    /// Seals `body` at `position` after the entry whose hash is `prev_hash`.
    pub fn seal(position: Position, prev_hash: [u8; 32], body: EntryBody) -> Self {
        let hash = entry_hash(position, &prev_hash, &body.encode());
        Self {
            position,
            prev_hash,
            hash,
            body,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
