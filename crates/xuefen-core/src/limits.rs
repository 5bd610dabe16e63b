//! Every limit of the domain, in one place, named with the qualifier last.

/// Longest site id, in bytes.
pub const SITE_ID_BYTES_MAX: usize = 32;
/// Longest event id, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 128;
/// Longest course code, in bytes.
pub const COURSE_CODE_BYTES_MAX: usize = 64;
/// Longest recognition group id, in bytes.
pub const GROUP_ID_BYTES_MAX: usize = 64;
/// Most courses in one recognition group.
pub const GROUP_COURSES_MAX: usize = 500;
/// Longest local account id, in bytes.
pub const ACCOUNT_BYTES_MAX: usize = 128;
/// Longest course category, in bytes.
pub const CATEGORY_BYTES_MAX: usize = 32;
/// Longest free text (names, titles, reasons), in characters.
pub const TEXT_CHARS_MAX: usize = 200;
/// Longest identity document number, in characters.
pub const DOCUMENT_NUMBER_CHARS_MAX: usize = 32;
/// Largest number of credits one completion can earn.
pub const CREDITS_PER_AWARD_MAX_CENTS: i64 = 100_00;
/// Largest number of learning hours one completion can report.
pub const HOURS_MAX_CENTS: i64 = 10_000_00;
/// Largest score (scores are percentages).
pub const SCORE_MAX_CENTS: i64 = 100_00;
/// Earliest completion date accepted: 2000-01-01T00:00:00Z, in Unix milliseconds.
pub const COMPLETED_AT_MIN_MS: i64 = 946_684_800_000;
/// How far in the future a completion may be dated (clock skew between sites).
pub const COMPLETED_AT_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Largest xAPI statement, in bytes of its JSON.
pub const STATEMENT_BYTES_MAX: usize = 64 * 1024;
/// Deepest nesting of JSON inside one xAPI statement.
pub const STATEMENT_DEPTH_MAX: usize = 32;
