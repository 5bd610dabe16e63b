//! Exact fixed-scale amounts: credits, hours and scores.
//!
//! All three are decimals with exactly two fractional digits, held as a count
//! of hundredths in an `i64` so that arithmetic is exact and storage is the
//! same integer on every backend. They cross the wire as `rust_decimal`
//! values serialised as strings (`"2.50"`), never as floats.

use rust_decimal::Decimal;

use crate::FieldError;

/// Number of fractional digits of every amount.
pub const SCALE: u32 = 2;

macro_rules! amount {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(i64);

        impl $name {
            pub const ZERO: Self = Self(0);

            /// The amount from a count of hundredths.
            pub const fn from_cents(cents: i64) -> Self {
                Self(cents)
            }

            /// The amount as a count of hundredths.
            pub const fn cents(self) -> i64 {
                self.0
            }

            /// The amount as a decimal with scale 2.
            pub fn to_decimal(self) -> Decimal {
                Decimal::new(self.0, SCALE)
            }

            /// Parses a decimal that has at most two fractional digits and lies
            /// in `min..=max` (both in hundredths).
            pub fn parse(
                value: Decimal,
                min_cents: i64,
                max_cents: i64,
                field: &'static str,
            ) -> Result<Self, FieldError> {
                let normalized = value.normalize();
                if normalized.scale() > SCALE {
                    return Err(FieldError::new(
                        field,
                        format!("{value} has more than {SCALE} decimal places"),
                    ));
                }
                let out_of_range = || FieldError::new(field, format!("{value} is out of range"));
                let cents: i64 = normalized
                    .checked_mul(Decimal::ONE_HUNDRED)
                    .ok_or_else(out_of_range)?
                    .trunc()
                    .try_into()
                    .map_err(|_| out_of_range())?;
                if !(min_cents..=max_cents).contains(&cents) {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "{value} is outside {}..={}",
                            Decimal::new(min_cents, SCALE),
                            Decimal::new(max_cents, SCALE)
                        ),
                    ));
                }
                Ok(Self(cents))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.to_decimal().fmt(f)
            }
        }
    };
}

amount!(
    /// Credits (学分), signed: reversals carry negative credits.
    Credits
);
amount!(
    /// Learning hours reported with a completion.
    Hours
);
amount!(
    /// A score, as a percentage in `0..=100`.
    Score
);

impl Credits {
    /// The sum, or `None` on overflow (which would mean a corrupt ledger).
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// The same amount with the opposite sign.
    pub fn negated(self) -> Self {
        Self(-self.0)
    }
}

impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        Self(iter.map(|c| c.0).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn two_decimal_places_parse_and_three_are_refused() {
        assert_eq!(Credits::parse(dec("2.5"), 0, 10_000, "c").map(Credits::cents), Ok(250));
        assert_eq!(
            Credits::parse(dec("2.500"), 0, 10_000, "c").map(Credits::cents),
            Ok(250)
        );
        let err = Credits::parse(dec("2.501"), 0, 10_000, "c").expect_err("3 places");
        assert_eq!(err.field, "c");
    }

    #[test]
    fn both_sides_of_the_range_are_checked() {
        assert!(Hours::parse(dec("100.00"), 0, 10_000, "h").is_ok());
        assert!(Hours::parse(dec("100.01"), 0, 10_000, "h").is_err());
        assert!(Hours::parse(dec("0"), 0, 10_000, "h").is_ok());
        assert!(Hours::parse(dec("-0.01"), 0, 10_000, "h").is_err());
        assert!(Hours::parse(dec("79228162514264337593543950335"), 0, 10_000, "h").is_err());
    }

    #[test]
    fn display_keeps_the_fixed_scale() {
        assert_eq!(Credits::from_cents(250).to_string(), "2.50");
        assert_eq!(Credits::from_cents(-3).to_string(), "-0.03");
    }
}
