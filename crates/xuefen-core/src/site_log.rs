//! The alliance chain: every change of a site's status, with who made it,
//! why, and the agreement in force, hash-chained like the learner chains.
//!
//! Site changes are entries of kind 7 with their own field layout
//! (`docs/ledger-format.md`, section 3b). They live in one chain of their
//! own, numbered [`ALLIANCE_CHAIN`] (after every learner chain), are hashed
//! by the same rule ([`entry_hash`]) and verified by the same
//! [`crate::verify::ChainVerifier`]. Status changes are rare admin acts, so
//! one chain head for them is no hot row on the ingest path.

use crate::entry::{DecodeError, FORMAT_V1, entry_hash};
use crate::event::{Millis, Reason};
use crate::ids::{Position, SiteId, SiteStatus};

/// The chain of site changes.
pub const ALLIANCE_CHAIN: u32 = u32::MAX;
/// The kind byte of a site change.
pub const SITE_CHANGE_KIND: u8 = 7;
/// Longest actor id, in bytes.
pub const ACTOR_BYTES_MAX: usize = 64;
/// The default length of an agreement: three years, in milliseconds
/// (3 × 365 days + one leap day).
pub const AGREEMENT_DEFAULT_MS: i64 = (3 * 365 + 1) * 24 * 3600 * 1000;

/// One change of a site's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteChange {
    pub site: SiteId,
    /// The status before; absent when the site was created.
    pub from: Option<SiteStatus>,
    pub to: SiteStatus,
    /// Who: the admin key id (`key_…`) or `cli` for the command line.
    pub actor: String,
    /// Why.
    pub reason: Reason,
    pub at: Millis,
    /// The agreement in force after the change.
    pub agreement_starts_at: Millis,
    pub agreement_ends_at: Millis,
}

/// A sealed site change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteChangeEntry {
    pub position: Position,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub change: SiteChange,
}

impl SiteStatus {
    /// Whether the lifecycle allows moving from `self` to `to`:
    /// pending → active | terminated, active → suspended | terminated,
    /// suspended → active | terminated; terminated is final.
    pub fn may_move_to(self, to: SiteStatus) -> bool {
        use SiteStatus::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Pending, Terminated)
                | (Active, Suspended)
                | (Active, Terminated)
                | (Suspended, Active)
                | (Suspended, Terminated)
        )
    }
}

/// Checks an actor id: 1 to 64 bytes of `[A-Za-z0-9._:-]`.
pub fn check_actor(actor: &str) -> Result<(), crate::FieldError> {
    let ok = !actor.is_empty()
        && actor.len() <= ACTOR_BYTES_MAX
        && actor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(crate::FieldError::new(
            "actor",
            "must be 1 to 64 bytes of [A-Za-z0-9._:-]",
        ))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Every string here is bounded far below u32::MAX.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl SiteChange {
    /// The canonical bytes (format version 1, kind 7).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        // Site changes hold no learner: they stay in version 1.
        out.push(FORMAT_V1);
        out.push(SITE_CHANGE_KIND);
        put_str(&mut out, self.site.as_str());
        match self.from {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_str(&mut out, s.as_str());
            }
        }
        put_str(&mut out, self.to.as_str());
        put_str(&mut out, &self.actor);
        put_str(&mut out, self.reason.as_str());
        out.extend_from_slice(&self.at.0.to_be_bytes());
        out.extend_from_slice(&self.agreement_starts_at.0.to_be_bytes());
        out.extend_from_slice(&self.agreement_ends_at.0.to_be_bytes());
        out
    }

    /// Parses canonical bytes, refusing anything [`SiteChange::encode`]
    /// would not have produced.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != FORMAT_V1 {
            return Err(DecodeError::Version(version));
        }
        if r.u8()? != SITE_CHANGE_KIND {
            return Err(field("kind", "a site change has kind 7"));
        }
        let site = SiteId::parse(r.str()?).map_err(|e| field("site", e.detail))?;
        let from = match r.u8()? {
            0 => None,
            1 => Some(SiteStatus::parse(&r.str()?).map_err(|e| field("from", e.detail))?),
            _ => return Err(field("flag", "must be 0 or 1")),
        };
        let to = SiteStatus::parse(&r.str()?).map_err(|e| field("to", e.detail))?;
        let actor = r.str()?;
        check_actor(&actor).map_err(|e| field("actor", e.detail))?;
        let reason = Reason::parse(r.str()?, "reason").map_err(|e| field("reason", e.detail))?;
        let at = Millis(r.i64()?);
        let agreement_starts_at = Millis(r.i64()?);
        let agreement_ends_at = Millis(r.i64()?);
        if r.at != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(Self {
            site,
            from,
            to,
            actor,
            reason,
            at,
            agreement_starts_at,
            agreement_ends_at,
        })
    }
}

impl SiteChangeEntry {
    /// Seals `change` at `seq` of the alliance chain after `prev_hash`.
    pub fn seal(seq: u64, prev_hash: [u8; 32], change: SiteChange) -> Self {
        let position = Position {
            chain: ALLIANCE_CHAIN,
            seq,
        };
        let hash = entry_hash(position, &prev_hash, &change.encode());
        Self {
            position,
            prev_hash,
            hash,
            change,
        }
    }
}

fn field(name: &'static str, detail: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        field: name,
        detail: detail.into(),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated(self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let at = self.at;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| DecodeError::Truncated(at))?;
        Ok(u32::from_be_bytes(b))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let at = self.at;
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| DecodeError::Truncated(at))?;
        Ok(i64::from_be_bytes(b))
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        let at = self.at;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| DecodeError::Field {
            field: "string",
            detail: format!("not UTF-8 at byte {at}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_change() -> impl Strategy<Value = SiteChange> {
        let status = proptest::sample::select(SiteStatus::ALL.to_vec());
        (
            "[a-z0-9][a-z0-9-]{0,20}",
            proptest::option::of(status.clone()),
            status,
            "[A-Za-z0-9._:-]{1,64}",
            "\\PC{0,50}",
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        )
            .prop_map(|(site, from, to, actor, reason, at, start, end)| SiteChange {
                site: SiteId::parse(site).expect("strategy id"),
                from,
                to,
                actor,
                reason: Reason::parse(reason, "reason").expect("strategy reason"),
                at: Millis(at),
                agreement_starts_at: Millis(start),
                agreement_ends_at: Millis(end),
            })
    }

    proptest! {
        /// Site changes round-trip through their canonical bytes, and any
        /// changed byte either fails to decode or decodes to another change.
        #[test]
        fn site_changes_round_trip_and_bytes_are_canonical(change in arb_change(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let bytes = change.encode();
            prop_assert_eq!(SiteChange::decode(&bytes), Ok(change.clone()));
            let mut altered = bytes.clone();
            let i = at.index(altered.len());
            altered[i] ^= flip;
            if let Ok(other) = SiteChange::decode(&altered) {
                prop_assert_ne!(other, change);
            }
            prop_assert!(SiteChange::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn the_lifecycle_allows_only_its_transitions() {
        use SiteStatus::*;
        let allowed: Vec<(SiteStatus, SiteStatus)> = SiteStatus::ALL
            .iter()
            .flat_map(|a| SiteStatus::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.may_move_to(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Active),
                (Pending, Terminated),
                (Active, Suspended),
                (Active, Terminated),
                (Suspended, Active),
                (Suspended, Terminated)
            ]
        );
    }
}
