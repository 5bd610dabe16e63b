//! Learning events as alliance sites post them, after parsing.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::FieldError;
use crate::amount::{Hours, Score};
use crate::ids::{CourseCode, EventId, LearnerId, LocalAccount, SiteId};
use crate::limits::TEXT_CHARS_MAX;

/// An instant as Unix milliseconds (UTC). Milliseconds keep the ledger's
/// integer encoding identical on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        let at = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }

    pub fn parse_rfc3339(value: &str, field: &'static str) -> Result<Self, FieldError> {
        OffsetDateTime::parse(value, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|e| FieldError::new(field, format!("is not an RFC 3339 date-time: {e}")))
    }

    /// The calendar year in UTC+8 (China Standard Time), which is how the
    /// alliance counts its years.
    pub fn year_cst(self) -> i32 {
        (self.to_datetime() + time::Duration::hours(8)).year()
    }

    /// The calendar date in China Standard Time, `YYYY-MM-DD`.
    pub fn date_cst(self) -> String {
        let at = self.to_datetime() + time::Duration::hours(8);
        format!("{:04}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day())
    }

    /// The first instant of `year` in China Standard Time and the first of
    /// the next year: `[start, end)` holds exactly the instants whose
    /// [`Millis::year_cst`] is `year`.
    pub fn cst_year_bounds(year: i32) -> (Millis, Millis) {
        let start = |y: i32| {
            time::Date::from_calendar_date(y, time::Month::January, 1)
                .map(|d| Millis::from_datetime(d.midnight().assume_utc() - time::Duration::hours(8)))
                .unwrap_or(Millis(if y < 0 { i64::MIN } else { i64::MAX }))
        };
        (start(year), start(year.saturating_add(1)))
    }

    /// The first instant of each month of `year` in China Standard Time,
    /// and the first of the next year: month `m` (1 to 12) is
    /// `[bounds[m - 1], bounds[m])`.
    pub fn cst_month_bounds(year: i32) -> [Millis; 13] {
        let (first, end) = Self::cst_year_bounds(year);
        let mut bounds = [end; 13];
        for (i, slot) in bounds.iter_mut().take(12).enumerate() {
            let month = time::Month::January.nth_next(u8::try_from(i).unwrap_or(0));
            if let Ok(d) = time::Date::from_calendar_date(year, month, 1) {
                *slot = Millis::from_datetime(d.midnight().assume_utc() - time::Duration::hours(8));
            }
        }
        bounds[0] = first;
        bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cst_month_bounds_start_each_month_at_midnight_in_china() {
        let b = Millis::cst_month_bounds(2026);
        assert_eq!(b[0].to_rfc3339(), "2025-12-31T16:00:00.000Z");
        assert_eq!(b[2].to_rfc3339(), "2026-02-28T16:00:00.000Z");
        assert_eq!(b[12], Millis::cst_year_bounds(2026).1);
        assert!(b.windows(2).all(|w| w[0] < w[1]));
    }

    proptest! {
        /// The CST year bounds hold exactly the instants of that CST year.
        #[test]
        fn cst_year_bounds_match_year_cst(ms in 946_684_800_000i64..4_102_444_800_000) {
            let at = Millis(ms);
            let (start, end) = Millis::cst_year_bounds(at.year_cst());
            prop_assert!(start <= at && at < end);
            prop_assert_eq!(Millis(start.0 - 1).year_cst(), at.year_cst() - 1);
            prop_assert_eq!(end.year_cst(), at.year_cst() + 1);
        }
    }
}

/// How an event names its learner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnerRef {
    /// The unified learner id.
    Id(LearnerId),
    /// The posting site's own account id, linked to a learner beforehand.
    Account(LocalAccount),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub course: CourseCode,
    pub learner: LearnerRef,
    pub completed_at: Millis,
    pub score: Option<Score>,
    pub hours: Option<Hours>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The earlier event of the same site whose award is reversed.
    pub target: EventId,
    /// Why, as a reason code ([`crate::entry::check_reason_code`]): what the
    /// ledger hashes.
    pub code: Reason,
    /// Free text with the code, possibly empty: kept beside the entry as its
    /// note, never hashed.
    pub reason: Reason,
}

/// The reason code of a revocation that gives only free text.
pub const REASON_CODE_UNSPECIFIED: &str = "unspecified";

impl Reason {
    /// A reason code ([`crate::entry::check_reason_code`]), naming `field`.
    pub fn code(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
        let value = value.into();
        crate::entry::check_reason_code(&value, field)?;
        Self::parse(value, field)
    }
}

/// Free text with a length limit, e.g. a revocation reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reason(String);

impl Reason {
    pub fn parse(value: impl Into<String>, field: &'static str) -> Result<Self, FieldError> {
        let value = value.into();
        let chars = value.chars().count();
        if chars > TEXT_CHARS_MAX {
            return Err(FieldError::new(
                field,
                format!("has {chars} characters, at most {TEXT_CHARS_MAX} are allowed"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::new(field, "must not contain control characters"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    Completion(Completion),
    Revocation(Revocation),
}

impl EventBody {
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Completion(_) => "completion",
            EventBody::Revocation(_) => "revocation",
        }
    }
}

/// An event of one site. `(site, id)` is its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub site: SiteId,
    pub id: EventId,
    pub body: EventBody,
}
