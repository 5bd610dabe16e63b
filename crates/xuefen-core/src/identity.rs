//! Real-name identity documents and their keyed hash.
//!
//! An identity number is personal information of the sensitive kind: it is
//! checked here, then reduced to an HMAC-SHA256 under a key only the service
//! holds. The clear number is never stored, logged or hashed into the ledger;
//! two sites that register the same person produce the same keyed hash and so
//! reach the same learner.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::FieldError;
use crate::limits::DOCUMENT_NUMBER_CHARS_MAX;

/// The kinds of identity document a learner can register with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// The 18-character resident identity card number (GB 11643), checked
    /// with its ISO 7064 MOD 11-2 check digit.
    ResidentId,
    Passport,
    /// Mainland travel permit for Hong Kong and Macao residents.
    HkMacaoPermit,
    /// Mainland travel permit for Taiwan residents.
    TaiwanPermit,
    /// Foreign permanent resident ID card.
    ForeignPermanentResident,
}

impl DocumentKind {
    pub const ALL: &'static [DocumentKind] = &[
        DocumentKind::ResidentId,
        DocumentKind::Passport,
        DocumentKind::HkMacaoPermit,
        DocumentKind::TaiwanPermit,
        DocumentKind::ForeignPermanentResident,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::ResidentId => "resident_id",
            DocumentKind::Passport => "passport",
            DocumentKind::HkMacaoPermit => "hk_macao_permit",
            DocumentKind::TaiwanPermit => "taiwan_permit",
            DocumentKind::ForeignPermanentResident => "foreign_permanent_resident",
        }
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Self::ALL.iter().copied().find(|k| k.as_str() == value).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
            FieldError::new("document/kind", format!("`{value}` is not one of {}", names.join(", ")))
        })
    }
}

/// A checked, normalised identity document. Deliberately not `Display` and
/// with a redacting `Debug`, so that it cannot end up in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    kind: DocumentKind,
    number: String,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("kind", &self.kind)
            .field("number", &"<redacted>")
            .finish()
    }
}

const FIELD: &str = "document/number";

impl Document {
    /// Checks and normalises a document number of the given kind.
    pub fn parse(kind: DocumentKind, number: &str) -> Result<Self, FieldError> {
        let number = number.trim().to_ascii_uppercase();
        match kind {
            DocumentKind::ResidentId => check_resident_id(&number)?,
            _ => {
                let len = number.chars().count();
                if len == 0 || len > DOCUMENT_NUMBER_CHARS_MAX {
                    return Err(FieldError::new(
                        FIELD,
                        format!("must have 1..={DOCUMENT_NUMBER_CHARS_MAX} characters"),
                    ));
                }
                if !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(FieldError::new(FIELD, "may hold only letters and digits"));
                }
            }
        }
        Ok(Self { kind, number })
    }

    /// The normalised document number (for a salted hash the holder asked
    /// for; never stored or logged).
    pub fn number(&self) -> &str {
        &self.number
    }

    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// HMAC-SHA256 of the document under the service's identity key.
    pub fn keyed_hash(&self, key: &[u8]) -> [u8; 32] {
        // `new_from_slice` accepts keys of any length for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"xuefen/identity/v1\0");
        mac.update(self.kind.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(self.number.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// ISO 7064 MOD 11-2 weights for the first 17 characters: 2^(17-i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for the first 17 digits of a resident ID.
pub fn resident_id_check_char(first17: &[u8; 17]) -> char {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        n => char::from(b'0' + n as u8),
    }
}

/// Whether `value` holds something that reads as a resident ID number: a
/// run of exactly 18 characters, 17 digits and a digit or `X`, bounded by
/// anything else or the ends, with a valid birth date and check digit.
/// Site-chosen ids that enter the ledger (event ids) or name a person on a
/// site (local accounts) are refused when this holds, so that an ID number
/// never reaches the hashed bytes or the account table.
pub fn contains_resident_id(value: &str) -> bool {
    value
        .split(|c: char| !(c.is_ascii_digit() || c == 'X' || c == 'x'))
        .filter(|run| run.len() == 18)
        .any(|run| check_resident_id(&run.to_ascii_uppercase()).is_ok())
}

fn check_resident_id(number: &str) -> Result<(), FieldError> {
    let bytes = number.as_bytes();
    if bytes.len() != 18 {
        return Err(FieldError::new(FIELD, "a resident ID has 18 characters"));
    }
    let Ok(first17) = <&[u8; 17]>::try_from(&bytes[..17]) else {
        return Err(FieldError::new(FIELD, "a resident ID has 18 characters"));
    };
    if !first17.iter().all(u8::is_ascii_digit) {
        return Err(FieldError::new(
            FIELD,
            "the first 17 characters of a resident ID are digits",
        ));
    }
    let birth = &number[6..14];
    if !plausible_birth_date(birth) {
        return Err(FieldError::new(
            FIELD,
            "characters 7-14 of a resident ID are not a valid birth date",
        ));
    }
    let expected = resident_id_check_char(first17);
    if char::from(bytes[17]) != expected {
        return Err(FieldError::new(
            FIELD,
            "the check digit of the resident ID does not match (ISO 7064 MOD 11-2)",
        ));
    }
    Ok(())
}

fn plausible_birth_date(yyyymmdd: &str) -> bool {
    let year: i32 = yyyymmdd[..4].parse().unwrap_or(0);
    let month: u8 = yyyymmdd[4..6].parse().unwrap_or(0);
    let day: u8 = yyyymmdd[6..8].parse().unwrap_or(0);
    let Ok(month) = time::Month::try_from(month) else {
        return false;
    };
    (1900..=2100).contains(&year) && time::Date::from_calendar_date(year, month, day).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A synthetic number whose check digit is computed, not a real person's.
    fn valid_id(first17: &str) -> String {
        let arr: [u8; 17] = first17.as_bytes().try_into().expect("17 digits");
        format!("{first17}{}", resident_id_check_char(&arr))
    }

    #[test]
    fn a_resident_id_with_the_right_check_digit_is_accepted() {
        // The example number of GB 11643 itself: 11010519491231002X.
        assert!(Document::parse(DocumentKind::ResidentId, "11010519491231002X").is_ok());
        assert!(Document::parse(DocumentKind::ResidentId, "11010519491231002x").is_ok());
        assert!(Document::parse(DocumentKind::ResidentId, &valid_id("33010619900101123")).is_ok());
    }

    #[test]
    fn a_wrong_check_digit_a_bad_date_or_length_is_refused_naming_the_field() {
        let err = Document::parse(DocumentKind::ResidentId, "110105194912310021").expect_err("check");
        assert_eq!(err.field, "document/number");
        assert!(err.detail.contains("check digit"));
        assert!(Document::parse(DocumentKind::ResidentId, &valid_id("33010619901301123")).is_err());
        assert!(Document::parse(DocumentKind::ResidentId, "1101051949123100").is_err());
    }

    #[test]
    fn a_resident_id_inside_an_id_is_found_and_other_numbers_are_not() {
        let id = valid_id("33010619900101123");
        assert!(contains_resident_id(&id));
        assert!(contains_resident_id(&format!("user-{id}")));
        assert!(contains_resident_id(&format!("{}.2025", id.to_ascii_lowercase())));
        assert!(contains_resident_id("11010519491231002x"));
        // A wrong check digit, a longer digit run, a bad birth date: not an ID.
        assert!(!contains_resident_id("110105194912310021"));
        assert!(!contains_resident_id(&format!("{id}7")));
        assert!(!contains_resident_id(&valid_id("33010619901301123")));
        assert!(!contains_resident_id("hzxh-2025-000123"));
    }

    #[test]
    fn the_keyed_hash_depends_on_key_kind_and_number_but_not_case() {
        let a = Document::parse(DocumentKind::ResidentId, "11010519491231002X").expect("valid");
        let b = Document::parse(DocumentKind::ResidentId, "11010519491231002x").expect("valid");
        assert_eq!(a.keyed_hash(b"k1"), b.keyed_hash(b"k1"));
        assert_ne!(a.keyed_hash(b"k1"), a.keyed_hash(b"k2"));
        let p = Document::parse(DocumentKind::Passport, "11010519491231002X").expect("valid");
        assert_ne!(a.keyed_hash(b"k1"), p.keyed_hash(b"k1"));
        assert!(!format!("{a:?}").contains("1101"));
    }
}
