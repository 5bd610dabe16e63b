//! Credit rules: how a completion of a course turns into credits.

use crate::FieldError;
use crate::amount::{Credits, Hours, Score};
use crate::limits::CREDITS_PER_AWARD_MAX_CENTS;

/// A course's declared rule. Amounts are exact; results are rounded down to
/// the hundredth so that a learner is never credited more than the rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditRule {
    /// Every passing completion earns the same credits.
    Fixed { credits: Credits },
    /// One credit per `hours_per_credit` learning hours, at most `cap`.
    PerHours { hours_per_credit: Hours, cap: Credits },
}

impl CreditRule {
    /// Checks the rule's own amounts.
    pub fn validate(self) -> Result<Self, FieldError> {
        match self {
            CreditRule::Fixed { credits } if credits.cents() <= 0 => {
                Err(FieldError::new("rule/credits", "must be greater than 0"))
            }
            CreditRule::PerHours { hours_per_credit, .. } if hours_per_credit.cents() <= 0 => {
                Err(FieldError::new("rule/hours_per_credit", "must be greater than 0"))
            }
            CreditRule::PerHours { cap, .. } if cap.cents() <= 0 => {
                Err(FieldError::new("rule/cap", "must be greater than 0"))
            }
            rule => Ok(rule),
        }
    }

    /// Credits for a completion with the given hours (already known to pass).
    pub fn credits_for(self, hours: Option<Hours>) -> Result<Credits, FieldError> {
        match self {
            CreditRule::Fixed { credits } => Ok(credits),
            CreditRule::PerHours { hours_per_credit, cap } => {
                let hours = hours
                    .ok_or_else(|| FieldError::new("hours", "this course credits by hours, so `hours` is required"))?;
                // Both operands are hundredths: credits in hundredths are
                // floor(hours * 100 / hours_per_credit). No overflow: hours are
                // bounded by HOURS_MAX_CENTS, far below i64::MAX / 100.
                let cents = hours.cents().saturating_mul(100) / hours_per_credit.cents();
                Ok(Credits::from_cents(
                    cents.min(cap.cents()).min(CREDITS_PER_AWARD_MAX_CENTS),
                ))
            }
        }
    }
}

/// What the ledger needs to know of a course to credit a completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseTerms {
    pub category: crate::ids::Category,
    pub rule: CreditRule,
    /// The minimum score to pass, when the course has one.
    pub pass_mark: Option<Score>,
    /// The version of the rule, recorded in every award.
    pub rule_version: u32,
    /// The course's recognition group (学分互认), if any.
    pub recognition_group: Option<crate::ids::GroupId>,
    /// When the course was first offered: completions dated earlier are
    /// refused. Declared by the site (a site back-filling years of history
    /// registers its courses after they ran), so absent means no bound.
    pub offered_from: Option<crate::event::Millis>,
    /// How often the course may credit the same learner.
    pub repeat: Repeat,
}

/// How often a course credits the same learner. A completion beyond that
/// is recorded with zero credits and a reference to the paid entry
/// ([`crate::entry::EntryKind::Recognised`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Repeat {
    /// At most once (the default).
    #[default]
    Once,
    /// At most once per calendar year in China Standard Time, by the date
    /// of the completion.
    PerYearCst,
    /// Every completion is credited (each is distinct learning, e.g. a
    /// session credited by its hours). Declared explicitly by the site; a
    /// re-sent completion is still reported as a likely duplicate.
    EveryCompletion,
}

impl Repeat {
    pub const ALL: [Repeat; 3] = [Repeat::Once, Repeat::PerYearCst, Repeat::EveryCompletion];

    pub fn as_str(self) -> &'static str {
        match self {
            Repeat::Once => "once",
            Repeat::PerYearCst => "per_year",
            Repeat::EveryCompletion => "every_completion",
        }
    }

    pub fn parse(value: &str, field: &'static str) -> Result<Self, FieldError> {
        Self::ALL.into_iter().find(|r| r.as_str() == value).ok_or_else(|| {
            FieldError::new(
                field,
                format!("`{value}` is not one of once, per_year, every_completion"),
            )
        })
    }

    /// The period a completion at `at` is credited in: `None` for the
    /// whole history, the CST year otherwise.
    pub fn period(self, at: crate::event::Millis) -> Option<i32> {
        match self {
            Repeat::Once | Repeat::EveryCompletion => None,
            Repeat::PerYearCst => Some(at.year_cst()),
        }
    }

    /// Whether a completion is credited once per period at all.
    pub fn once_per_period(self) -> bool {
        self != Repeat::EveryCompletion
    }
}

/// The result of applying a course's terms to a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    Passed(Credits),
    /// Below the pass mark: recorded, earns nothing.
    NotPassed,
}

impl CourseTerms {
    pub fn assess(&self, score: Option<Score>, hours: Option<Hours>) -> Result<Assessment, FieldError> {
        if let Some(mark) = self.pass_mark {
            let score =
                score.ok_or_else(|| FieldError::new("score", "this course has a pass mark, so `score` is required"))?;
            if score < mark {
                return Ok(Assessment::NotPassed);
            }
        }
        self.rule.credits_for(hours).map(Assessment::Passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn per_hours(hpc: i64, cap: i64) -> CreditRule {
        CreditRule::PerHours {
            hours_per_credit: Hours::from_cents(hpc),
            cap: Credits::from_cents(cap),
        }
    }

    #[test]
    fn per_hours_rounds_down_and_caps() {
        let rule = per_hours(8_00, 3_00);
        assert_eq!(
            rule.credits_for(Some(Hours::from_cents(10_00))),
            Ok(Credits::from_cents(1_25))
        );
        assert_eq!(
            rule.credits_for(Some(Hours::from_cents(1_00))),
            Ok(Credits::from_cents(12))
        );
        assert_eq!(
            rule.credits_for(Some(Hours::from_cents(100_00))),
            Ok(Credits::from_cents(3_00))
        );
        assert_eq!(rule.credits_for(None).expect_err("needs hours").field, "hours");
    }

    #[test]
    fn a_score_below_the_pass_mark_earns_nothing() {
        let terms = CourseTerms {
            category: crate::ids::Category::parse("community").expect("category"),
            rule: CreditRule::Fixed {
                credits: Credits::from_cents(2_00),
            },
            pass_mark: Some(Score::from_cents(60_00)),
            rule_version: 1,
            recognition_group: None,
            offered_from: None,
            repeat: Repeat::Once,
        };
        assert_eq!(
            terms.assess(Some(Score::from_cents(59_99)), None),
            Ok(Assessment::NotPassed)
        );
        assert_eq!(
            terms.assess(Some(Score::from_cents(60_00)), None),
            Ok(Assessment::Passed(Credits::from_cents(2_00)))
        );
        assert_eq!(terms.assess(None, None).expect_err("needs score").field, "score");
    }

    proptest! {
        /// Credit arithmetic: per-hours credits never exceed the cap, never
        /// exceed the exact quotient, and are within one hundredth of it.
        #[test]
        fn per_hours_credits_are_the_floored_exact_quotient(
            hours in 0i64..=1_000_000, hpc in 1i64..=100_000, cap in 1i64..=10_000,
        ) {
            use rust_decimal::Decimal;
            let got = per_hours(hpc, cap).credits_for(Some(Hours::from_cents(hours))).expect("hours given");
            let exact = Decimal::new(hours, 2) / Decimal::new(hpc, 2);
            let got_dec = got.to_decimal();
            prop_assert!(got.cents() <= cap);
            prop_assert!(got_dec <= exact);
            if got.cents() < cap {
                prop_assert!(exact - got_dec < Decimal::new(1, 2));
            }
        }

        /// Sums of credits are exact: adding in any order gives the same total.
        #[test]
        fn credit_sums_do_not_depend_on_order(mut xs in proptest::collection::vec(-10_000i64..=10_000, 0..200)) {
            let forward: Credits = xs.iter().map(|c| Credits::from_cents(*c)).sum();
            xs.reverse();
            let backward: Credits = xs.iter().map(|c| Credits::from_cents(*c)).sum();
            prop_assert_eq!(forward, backward);
            let dec: rust_decimal::Decimal = xs.iter().map(|c| rust_decimal::Decimal::new(*c, 2)).sum();
            prop_assert_eq!(forward.to_decimal(), dec);
        }
    }
}
