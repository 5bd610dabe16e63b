//! Identifiers and small enumerations, each parsed once at the edge.
//!
//! Identifier alphabets are deliberately narrow: every id may appear in a URL
//! path and in log lines, and is hashed into the ledger as UTF-8.

use std::fmt;

use crate::FieldError;
use crate::limits::{
    ACCOUNT_BYTES_MAX, CATEGORY_BYTES_MAX, COURSE_CODE_BYTES_MAX, EVENT_ID_BYTES_MAX, GROUP_ID_BYTES_MAX,
    SITE_ID_BYTES_MAX,
};

fn check(
    value: &str,
    max: usize,
    allowed: fn(u8) -> bool,
    alphabet: &str,
    field: &'static str,
) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("is {} bytes long, at most {max} are allowed", value.len()),
        ));
    }
    if let Some(bad) = value.bytes().position(|b| !allowed(b)) {
        return Err(FieldError::new(
            field,
            format!("has a character outside {alphabet} at byte {bad}"),
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr, $allowed:expr, $alphabet:expr, $field:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The field name used in errors about this id.
            pub const FIELD: &'static str = $field;

            /// Parses the id, naming [`Self::FIELD`] in the error.
            pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
                Self::parse_as(value, $field)
            }

            /// Parses the id, naming `field` in the error.
            pub fn parse_as(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
                let value = value.into();
                check(&value, $max, $allowed, $alphabet, field)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn site_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}
fn account_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+')
}
fn category_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
}
fn learner_char(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'_' || b.is_ascii_lowercase()
}

string_id!(
    /// An alliance site, e.g. `hangzhou-xihu`.
    SiteId, SITE_ID_BYTES_MAX, site_char, "[a-z0-9-]", "site_id"
);
string_id!(
    /// A site's own id of an event; with the site it is the idempotency key.
    EventId, EVENT_ID_BYTES_MAX, token_char, "[A-Za-z0-9._:-]", "event_id"
);
string_id!(
    /// A site's course code.
    CourseCode, COURSE_CODE_BYTES_MAX, token_char, "[A-Za-z0-9._:-]", "code"
);
string_id!(
    /// A site's local account id of a learner.
    LocalAccount, ACCOUNT_BYTES_MAX, account_char, "[A-Za-z0-9._@+-]", "local_account"
);
string_id!(
    /// A recognition group (学分互认): equivalent courses across sites,
    /// credited once per learner, e.g. `zj-shared-py101`.
    GroupId, GROUP_ID_BYTES_MAX, token_char, "[A-Za-z0-9._:-]", "group_id"
);
string_id!(
    /// A course category, e.g. `community` or `vocational`.
    Category, CATEGORY_BYTES_MAX, category_char, "[a-z0-9_-]", "category"
);

macro_rules! input_id {
    ($name:ident, $what:expr) => {
        impl $name {
            /// Parses a new value from a caller: as [`Self::parse_as`], and
            /// refused when it holds a resident ID number
            /// ([`crate::identity::contains_resident_id`]). Values already
            /// stored are read back with [`Self::parse`].
            pub fn parse_input_as(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
                let id = Self::parse_as(value, field)?;
                if crate::identity::contains_resident_id(id.as_str()) {
                    return Err(FieldError::new(
                        field,
                        concat!(
                            "looks like a resident ID number; ",
                            $what,
                            " must not carry personal data: use the site's own opaque id"
                        ),
                    ));
                }
                Ok(id)
            }

            /// As [`Self::parse_input_as`], naming [`Self::FIELD`].
            pub fn parse_input(value: impl Into<String>) -> Result<Self, FieldError> {
                Self::parse_input_as(value, Self::FIELD)
            }
        }
    };
}
input_id!(EventId, "an event id enters the ledger's hashed bytes and");
input_id!(LocalAccount, "a local account");

/// The unified learner id: `lrn_` followed by 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LearnerId(String);

impl LearnerId {
    pub const FIELD: &'static str = "learner_id";
    const PREFIX: &'static str = "lrn_";

    /// `lrn_` and 32 zeros: never drawn for a learner (the odds are 2^-128).
    /// What a decoded version-2 entry names, since its bytes carry a
    /// commitment instead of the id.
    pub fn nobody() -> Self {
        Self::from_random([0; 16])
    }

    /// A learner id from 16 random bytes (the caller supplies the randomness).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }

    pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
        Self::parse_as(value, Self::FIELD)
    }

    pub fn parse_as(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
        let value = value.into();
        let hex_part = value.strip_prefix(Self::PREFIX);
        let ok = hex_part
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            && value.bytes().all(learner_char);
        if ok {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                field,
                "must be `lrn_` followed by 32 lowercase hex digits",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The chain this learner's entries live in: the first four bytes of
    /// SHA-256 of the id, big-endian, modulo the number of chains.
    pub fn chain(&self, chains: u32) -> u32 {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(self.0.as_bytes());
        u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % chains.max(1)
    }
}

impl fmt::Display for LearnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 6-digit administrative region code (GB/T 2260), e.g. `330106`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        let digits = value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit());
        // Province prefixes run from 11 (Beijing) to 82 (Macao).
        let province = value.get(..2).and_then(|p| p.parse::<u8>().ok());
        match province {
            Some(11..=82) if digits => Ok(Self(value)),
            _ => Err(FieldError::new(
                "region_code",
                "must be a 6-digit GB/T 2260 code whose first two digits are a province (11..82)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the code names a region of `level` (GB/T 2260): a province
    /// ends in `0000`, a city in `00` (and not `0000`), a county or township
    /// in neither. The problem names `region_code`.
    pub fn check_level(&self, level: SiteLevel) -> Result<(), FieldError> {
        let province = self.0.ends_with("0000");
        let city = !province && self.0.ends_with("00");
        let fits = match level {
            SiteLevel::Province => province,
            SiteLevel::City => city,
            SiteLevel::County | SiteLevel::Township => !province && !city,
        };
        if fits {
            Ok(())
        } else {
            Err(FieldError::new(
                "region_code",
                match level {
                    SiteLevel::Province => "a province site needs a province code (xx0000)",
                    SiteLevel::City => "a city site needs a city code (xxxx00, not xx0000)",
                    SiteLevel::County | SiteLevel::Township => {
                        "a county or township site needs a county code (not ending in 00)"
                    }
                },
            ))
        }
    }
}

macro_rules! name_enum {
    ($(#[$doc:meta])* $name:ident, $field:expr, { $($variant:ident = $text:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(value: &str) -> Result<Self, FieldError> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(FieldError::new(
                        $field,
                        format!("`{value}` is not one of {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum!(
    /// The administrative level of an alliance site.
    SiteLevel, "level", { Province = "province", City = "city", County = "county", Township = "township" }
);
name_enum!(
    /// Where a site stands in its agreement with the provincial centre.
    SiteStatus, "status", { Pending = "pending", Active = "active", Suspended = "suspended", Terminated = "terminated" }
);

impl SiteStatus {
    /// Whether the site may post events.
    pub fn may_post(self) -> bool {
        matches!(self, SiteStatus::Active)
    }
}

/// A position in the ledger: the chain and the 1-based sequence number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub chain: u32,
    pub seq: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chain, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_foreign_characters() {
        assert!(SiteId::parse("hangzhou-xihu").is_ok());
        assert_eq!(SiteId::parse("").expect_err("empty").field, "site_id");
        assert!(SiteId::parse("Hangzhou").is_err());
        assert!(SiteId::parse("a".repeat(SITE_ID_BYTES_MAX)).is_ok());
        assert!(SiteId::parse("a".repeat(SITE_ID_BYTES_MAX + 1)).is_err());
        assert!(EventId::parse("urn:uuid:1234-abcd").is_ok());
        assert!(EventId::parse("a/b").is_err());
        assert!(EventId::parse("学分").is_err());
    }

    #[test]
    fn learner_ids_round_trip_from_random_bytes() {
        let id = LearnerId::from_random([0xab; 16]);
        assert_eq!(LearnerId::parse(id.as_str()), Ok(id));
        assert!(LearnerId::parse("lrn_ABABABABABABABABABABABABABABABAB").is_err());
        assert!(LearnerId::parse("lrn_abab").is_err());
    }

    #[test]
    fn region_codes_need_six_digits_and_a_province_prefix() {
        assert!(RegionCode::parse("330106").is_ok());
        assert!(RegionCode::parse("33010").is_err());
        assert!(RegionCode::parse("990106").is_err());
        assert!(RegionCode::parse("33010a").is_err());
    }

    #[test]
    fn region_codes_agree_with_the_site_level() {
        let code = |c: &str| RegionCode::parse(c).expect("code");
        for (c, level, fits) in [
            ("330000", SiteLevel::Province, true),
            ("330100", SiteLevel::Province, false),
            ("330106", SiteLevel::Province, false),
            ("330100", SiteLevel::City, true),
            ("330000", SiteLevel::City, false),
            ("330106", SiteLevel::City, false),
            ("330106", SiteLevel::County, true),
            ("330106", SiteLevel::Township, true),
            ("330100", SiteLevel::County, false),
            ("330000", SiteLevel::Township, false),
        ] {
            let got = code(c).check_level(level);
            assert_eq!(got.is_ok(), fits, "{c} {level:?}");
            if let Err(e) = got {
                assert_eq!(e.field, "region_code");
            }
        }
    }
}
