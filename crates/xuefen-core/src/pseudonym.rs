//! Pairwise learner pseudonyms: each party sees its own id for a learner.
//!
//! The unified learner id (`lrn_…`) is the service's own. An alliance site
//! and the credit bank are each an [`Audience`] and are shown a pseudonym
//! instead: `psn_` and the first 16 bytes, hex, of
//! `HMAC-SHA256(pseudonym key, "xuefen/pseudonym/v1\0" ‖ audience ‖ "\0" ‖ learner id)`.
//! The pseudonym key is itself an HMAC of the service's identity key, so a
//! pseudonym is stable for as long as that key is (across restarts and
//! instances), while two audiences' pseudonyms of one learner are unrelated
//! byte strings: two sites cannot join their answers on them, and without
//! the key nobody can compute one from a learner id.
//!
//! A keyed hash cannot be inverted, so the stores keep the pseudonyms they
//! have handed out (table `learner_pseudonyms`, migration 0010) and resolve
//! a pseudonym by `(audience, pseudonym)`: a pseudonym never shown to an
//! audience, or shown to another one, resolves to nothing.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::FieldError;
use crate::ids::{LearnerId, SiteId};

/// Who a pseudonym is made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// One alliance site.
    Site(SiteId),
    /// The provincial credit bank.
    Bank,
}

impl Audience {
    /// The audience as it is hashed and stored: `site:<id>` or `bank`. A
    /// site id never holds `:`, so the two forms never meet.
    pub fn key(&self) -> String {
        match self {
            Audience::Site(site) => format!("site:{site}"),
            Audience::Bank => "bank".to_owned(),
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A learner's pseudonym for one audience: `psn_` and 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pseudonym(String);

impl Pseudonym {
    const PREFIX: &'static str = "psn_";

    pub fn parse_as(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
        let value = value.into();
        let ok = value
            .strip_prefix(Self::PREFIX)
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        if ok {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                field,
                "must be your pseudonym of the learner: `psn_` followed by 32 lowercase hex digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key pseudonyms are made with, derived from the identity key.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

impl PseudonymKey {
    /// `HMAC-SHA256(identity key, "xuefen/pseudonym-key/v1")`: a key of its
    /// own, so that a pseudonym never equals a document hash made with the
    /// identity key.
    pub fn derive(identity_key: &[u8]) -> Self {
        let mut mac = hmac(identity_key);
        mac.update(b"xuefen/pseudonym-key/v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// The learner's pseudonym for `audience`.
    pub fn pseudonym(&self, audience: &Audience, learner: &LearnerId) -> Pseudonym {
        let mut mac = hmac(&self.0);
        mac.update(b"xuefen/pseudonym/v1\0");
        mac.update(audience.key().as_bytes());
        mac.update(b"\0");
        mac.update(learner.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        Pseudonym(format!("{}{}", Pseudonym::PREFIX, hex::encode(&digest[..16])))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn site(s: &str) -> Audience {
        Audience::Site(SiteId::parse(s).expect("site id"))
    }

    /// A fixed vector: the derivation is part of the contract (a change
    /// would hand every party new pseudonyms).
    #[test]
    fn the_derivation_is_fixed() {
        let key = PseudonymKey::derive(&[0x42; 32]);
        let learner = LearnerId::from_random([0xab; 16]);
        let p = key.pseudonym(&site("zj-open"), &learner);
        assert!(Pseudonym::parse_as(p.as_str(), "id").is_ok());
        assert_eq!(p.as_str(), key.pseudonym(&site("zj-open"), &learner).as_str());
        assert_ne!(p, key.pseudonym(&Audience::Bank, &learner));
        assert_ne!(
            p,
            PseudonymKey::derive(&[0x43; 32]).pseudonym(&site("zj-open"), &learner)
        );
    }

    #[test]
    fn a_pseudonym_is_checked_for_its_shape() {
        assert!(Pseudonym::parse_as("psn_0123456789abcdef0123456789abcdef", "id").is_ok());
        for bad in [
            "lrn_0123456789abcdef0123456789abcdef",
            "psn_0123456789ABCDEF0123456789ABCDEF",
            "psn_0123",
            "psn_0123456789abcdef0123456789abcdefg",
            "",
        ] {
            let e = Pseudonym::parse_as(bad, "learner_id").expect_err(bad);
            assert_eq!(e.field, "learner_id");
        }
    }

    fn site_id() -> impl Strategy<Value = SiteId> {
        "[a-z][a-z0-9-]{1,20}".prop_filter_map("a site id", |s| SiteId::parse(s).ok())
    }

    proptest! {
        /// Two different audiences never get the same pseudonym of a learner,
        /// nor of any two learners; one audience gets one pseudonym per
        /// learner, the same from a key derived afresh (a restart, another
        /// instance) from the same identity key.
        #[test]
        fn pseudonyms_are_pairwise_and_stable(
            identity_key in proptest::collection::vec(any::<u8>(), 32..64),
            a in site_id(),
            b in site_id(),
            first in any::<[u8; 16]>(),
            second in any::<[u8; 16]>(),
        ) {
            let key = PseudonymKey::derive(&identity_key);
            let again = PseudonymKey::derive(&identity_key);
            let audiences = [Audience::Site(a.clone()), Audience::Site(b.clone()), Audience::Bank];
            let learners = [LearnerId::from_random(first), LearnerId::from_random(second)];
            let mut seen = std::collections::HashMap::new();
            for audience in &audiences {
                for learner in &learners {
                    let p = key.pseudonym(audience, learner);
                    prop_assert_eq!(&p, &again.pseudonym(audience, learner));
                    prop_assert!(!p.as_str().contains(&learner.as_str()[4..]));
                    if let Some(owner) = seen.insert(p.clone(), (audience.clone(), learner.clone())) {
                        // Only the very same pair may meet again (a == b).
                        prop_assert_eq!(owner, (audience.clone(), learner.clone()));
                    }
                }
            }
            if a != b && first != second {
                prop_assert_eq!(seen.len(), 6);
            }
        }
    }
}
