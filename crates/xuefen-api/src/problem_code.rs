//! Every problem code the service answers, as one enum.
//!
//! A problem's `code` (and the last segment of its `type` URI) is part of
//! the contract: clients branch on it. Naming every code here means a new
//! one is added on purpose, in one place, and [`ProblemCode::FIXED`] lists
//! them for the OpenAPI document. The strings are exactly the ones on the
//! wire (lower snake case).
//!
//! A few codes are decided below the API and carried through: the event
//! planner's rejection codes and the xAPI validator's rule names (both
//! `&'static str` constants of `xuefen-core`), and the conflict codes that
//! name the field that differs.

use std::fmt;

use xuefen_core::ids::SiteStatus;

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal,)*) => {
        /// A stable machine-readable problem code (the `code` member).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemCode {
            $($(#[$doc])* $variant,)*
            /// `exists_with_different_<field>`: an event with this id exists
            /// with a different value of the field.
            ExistsWithDifferent(&'static str),
            /// `ack_exists_with_different_<field>`: the deposit was already
            /// acknowledged with a different value of the field.
            AckExistsWithDifferent(&'static str),
            /// `site_<status>`: the caller's site is not active.
            SiteNotActive(SiteStatus),
            /// A rejection code of the event planner (e.g. `unknown_course`).
            Rejected(&'static str),
            /// A rule of the xAPI statement validator (e.g. `agent_ifi_count`).
            StatementRule(&'static str),
        }

        impl ProblemCode {
            /// Every code without a part decided at run time, in the order
            /// declared.
            pub const FIXED: &'static [ProblemCode] = &[$(ProblemCode::$variant,)*];

            fn fixed_str(self) -> Option<&'static str> {
                match self {
                    $(ProblemCode::$variant => Some($wire),)*
                    _ => None,
                }
            }
        }
    };
}

problem_codes! {
    // Generic answers of the HTTP layer.
    /// No resource at this path (or not one the caller may see).
    NotFound = "not_found",
    /// The method is not one the resource takes.
    MethodNotAllowed = "method_not_allowed",
    /// A request axum refused before any handler ran.
    BadRequest = "bad_request",
    /// A conflict the store reported without a more specific code.
    Conflict = "conflict",
    /// An internal error (the cause is logged, never answered).
    Internal = "internal",
    /// The database is unreachable; retry later.
    DatabaseUnavailable = "database_unavailable",
    /// `/readyz`: the database is unreachable or not migrated.
    NotReady = "not_ready",
    /// The service is stopping; retry.
    ShuttingDown = "shutting_down",
    // Bodies and their limits.
    /// The body is over `body_bytes_max`.
    BodyTooLarge = "body_too_large",
    /// The body could not be read.
    UnreadableBody = "unreadable_body",
    /// The body did not arrive within `body_read_timeout_ms`.
    BodyTimeout = "body_timeout",
    /// The request took longer than its time bound.
    RequestTimeout = "request_timeout",
    /// The content type is not one the endpoint takes.
    UnsupportedMediaType = "unsupported_media_type",
    /// The body (or an item of it) is not valid JSON of the expected shape.
    MalformedJson = "malformed_json",
    /// The body has data after its JSON value.
    TrailingData = "trailing_data",
    /// A value holds U+0000, which cannot be stored.
    NulCharacter = "nul_character",
    /// A field failed validation; `field` names it.
    InvalidField = "invalid_field",
    // Callers.
    /// No or no valid credentials.
    Unauthorized = "unauthorized",
    /// The caller may not do this.
    Forbidden = "forbidden",
    /// The site's agreement has ended.
    AgreementEnded = "agreement_ended",
    /// The API key is over its request rate.
    RateLimited = "rate_limited",
    /// Single sign-on is not configured on this service.
    SsoNotConfigured = "sso_not_configured",
    /// The consent token is not the named learner's.
    ConsentMismatch = "consent_mismatch",
    // Sites.
    /// The site id is reserved.
    ReservedSiteId = "reserved_site_id",
    /// A site with this id exists.
    SiteExists = "site_exists",
    /// There is no such site.
    UnknownSite = "unknown_site",
    /// The site cannot move to this status from its current one.
    InvalidTransition = "invalid_transition",
    /// The agreement renewal is not valid.
    InvalidRenewal = "invalid_renewal",
    // Learners.
    /// No learner is known under this id, document or subject.
    UnknownLearner = "unknown_learner",
    /// The name does not match the registered one.
    NameMismatch = "name_mismatch",
    /// The local account is linked to another learner.
    AccountLinkedElsewhere = "account_linked_elsewhere",
    // Courses and recognition.
    /// Another course of the site has this activity IRI.
    ActivityIdTaken = "activity_id_taken",
    /// Only a course with a fixed rule can have an xAPI activity.
    ActivityNeedsFixedRule = "activity_needs_fixed_rule",
    /// The course is in another recognition group.
    CourseInAnotherGroup = "course_in_another_group",
    // Batches.
    /// The batch is longer than allowed.
    BatchTooLong = "batch_too_long",
    /// The batch has no items.
    BatchEmpty = "batch_empty",
    /// The batch's length is outside the allowed range.
    BatchLength = "batch_length",
    // The credit bank and the log.
    /// No deposit under a checkpoint is at this position.
    UnknownDeposit = "unknown_deposit",
    /// No checkpoint yet.
    NoCheckpoint = "no_checkpoint",
    /// No such tile (yet).
    NoTile = "no_tile",
    /// The learning record could not be built or signed.
    RecordFailed = "record_failed",
    /// The document given for the record's identity objects is not the one
    /// the signed-in learner registered with (or is unknown: the same answer).
    NotYourDocument = "not_your_document",
    // The xAPI door.
    /// `X-Experience-API-Version` is missing.
    VersionHeaderRequired = "version_header_required",
    /// The xAPI version is not one this LRS speaks.
    VersionUnsupported = "version_unsupported",
    /// A header's value is not valid.
    HeaderInvalid = "header_invalid",
    /// A parameter is given more than once.
    RepeatedParameter = "repeated_parameter",
    /// A parameter is not one the resource takes.
    UnknownParameter = "unknown_parameter",
    /// A parameter is not allowed together with another.
    ParameterNotAllowed = "parameter_not_allowed",
    /// A parameter's value is not valid.
    ParameterInvalid = "parameter_invalid",
    /// A required parameter is missing.
    ParameterRequired = "parameter_required",
    /// The query string is malformed.
    MalformedQuery = "malformed_query",
    /// The Alternate Request Syntax request is malformed.
    AlternateRequestInvalid = "alternate_request_invalid",
    /// The Alternate Request Syntax is not served by this version.
    AlternateRequestSyntaxRemoved = "alternate_request_syntax_removed",
    /// The body is not a statement object.
    StatementNotObject = "statement_not_object",
    /// PUT needs `statementId`.
    StatementIdRequired = "statement_id_required",
    /// The statement's id is not the one in the query.
    StatementIdMismatch = "statement_id_mismatch",
    /// The multipart type is not one this LRS takes.
    MultipartTypeUnsupported = "multipart_type_unsupported",
    /// The statement is voided; fetch it by `voidedStatementId`.
    StatementVoided = "statement_voided",
    /// The statement is not voided; fetch it by `statementId`.
    NotVoided = "not_voided",
    /// The mbox_sha1sum is registered for another local account.
    MboxSha1sumLinkedElsewhere = "mbox_sha1sum_linked_elsewhere",
    /// No document under these parameters.
    DocumentNotFound = "document_not_found",
    /// The document cannot be merged (not JSON objects).
    DocumentNotMergeable = "document_not_mergeable",
    /// The document is over its size limit.
    DocumentTooLarge = "document_too_large",
    /// The site's documents are over their total size limit.
    SiteDocumentsFull = "site_documents_full",
    /// The document's ETag does not satisfy the precondition.
    PreconditionFailed = "precondition_failed",
    /// The document exists: a precondition is required to replace it.
    PreconditionRequired = "precondition_required",
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.fixed_str() {
            return f.write_str(s);
        }
        match self {
            ProblemCode::ExistsWithDifferent(field) => write!(f, "exists_with_different_{field}"),
            ProblemCode::AckExistsWithDifferent(field) => write!(f, "ack_exists_with_different_{field}"),
            ProblemCode::SiteNotActive(status) => write!(f, "site_{status}"),
            ProblemCode::Rejected(code) | ProblemCode::StatementRule(code) => f.write_str(code),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemCode;

    #[test]
    fn fixed_codes_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ProblemCode::FIXED {
            let s = code.to_string();
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s} is not snake case"
            );
            assert!(seen.insert(s.clone()), "{s} is declared twice");
        }
    }

    #[test]
    fn codes_with_a_part_render_as_on_the_wire() {
        assert_eq!(
            ProblemCode::ExistsWithDifferent("credits").to_string(),
            "exists_with_different_credits"
        );
        assert_eq!(
            ProblemCode::AckExistsWithDifferent("decision").to_string(),
            "ack_exists_with_different_decision"
        );
        assert_eq!(ProblemCode::Rejected("unknown_course").to_string(), "unknown_course");
    }
}
