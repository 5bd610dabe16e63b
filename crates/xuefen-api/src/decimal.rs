//! Decimals read exactly from their JSON strings.
//!
//! `rust_decimal`'s own string deserializer rounds a value that has more
//! significant digits than a `Decimal` holds (28), so
//! `"7.99999999999999999999999999999"` would become `8`. These refuse such a
//! value instead: a client's amount is stored as sent or not at all.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};

struct Exact;

impl Visitor<'_> for Exact {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string with at most 28 significant digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::from_str_exact(v.trim())
            .map_err(|_| E::custom(format!("{v:?} is not a decimal that can be held exactly")))
    }
}

/// A required decimal string.
pub(crate) fn exact<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_str(Exact)
}

/// An optional decimal string (`null` or absent: `None`).
pub(crate) fn exact_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or a decimal string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            exact(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Decimal, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(s);
        exact(&mut de)
    }

    #[test]
    fn too_many_digits_are_refused_not_rounded() {
        assert!(parse(r#""7.99999999999999999999999999999""#).is_err());
        assert!(parse(r#""1.0000000000000000000000000000001""#).is_err());
        assert_eq!(parse(r#""7.999""#).expect("7.999").to_string(), "7.999");
        assert_eq!(parse(r#""2.50""#).expect("2.50").to_string(), "2.50");
        assert!(parse("2.5").is_err());
    }
}
