//! Wire types of the API and their parsing into domain values.
//!
//! Decimals travel as strings (`"2.50"`) so that no client's float can
//! change a credit; timestamps are RFC 3339.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::{Completion, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::identity::{Document, DocumentKind};
use xuefen_core::ids::{
    Category, CourseCode, EventId, GroupId, LearnerId, LocalAccount, Position, RegionCode, SiteId, SiteLevel,
    SiteStatus,
};
use xuefen_core::limits::{
    COMPLETED_AT_MIN_MS, CREDITS_PER_AWARD_MAX_CENTS, GROUP_COURSES_MAX, HOURS_MAX_CENTS, SCORE_MAX_CENTS,
};
use xuefen_core::plan::Outcome;
use xuefen_core::rule::CreditRule;
use xuefen_store::{Course, Group, Site};

use crate::event_status::EventStatus;
use crate::problem::Problem;

fn text(value: &str, field: &'static str) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Reason::parse(trimmed, field).map(|r| r.as_str().to_owned())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PositionOut {
    pub chain: u32,
    pub seq: u64,
}

impl From<Position> for PositionOut {
    fn from(p: Position) -> Self {
        Self {
            chain: p.chain,
            seq: p.seq,
        }
    }
}

// ---------------------------------------------------------------- sites

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteIn {
    /// `[a-z0-9-]`, at most 32 bytes.
    pub id: String,
    pub name: String,
    /// `province`, `city`, `county` or `township`.
    pub level: String,
    /// 6-digit GB/T 2260 region code.
    pub region_code: String,
    /// `pending` (awaiting review) or `active`; defaults to `active`.
    pub status: Option<String>,
    /// RFC 3339; defaults to now.
    pub agreement_starts_at: Option<String>,
    /// RFC 3339; defaults to three years after the start. The site cannot
    /// post after it.
    pub agreement_ends_at: Option<String>,
    /// Why the site is created (recorded in the alliance chain).
    pub reason: Option<String>,
}

impl SiteIn {
    pub fn parse(&self) -> Result<Site, FieldError> {
        Ok(Site {
            id: SiteId::parse_as(self.id.clone(), "id")?,
            name: text(&self.name, "name")?,
            level: SiteLevel::parse(&self.level)?,
            region_code: RegionCode::parse(self.region_code.clone())?,
            status: self
                .status
                .as_deref()
                .map(SiteStatus::parse)
                .transpose()?
                .unwrap_or(SiteStatus::Active),
            agreement_starts_at: opt_time(&self.agreement_starts_at, "agreement_starts_at")?,
            agreement_ends_at: opt_time(&self.agreement_ends_at, "agreement_ends_at")?,
        })
        .and_then(|site| match (site.agreement_starts_at, site.agreement_ends_at) {
            (Some(start), Some(end)) if end <= start => Err(FieldError::new(
                "agreement_ends_at",
                "must be after agreement_starts_at",
            )),
            _ => Ok(site),
        })
        .and_then(|site| site.region_code.check_level(site.level).map(|()| site))
    }

    pub fn reason(&self) -> Result<Reason, FieldError> {
        Reason::parse(self.reason.as_deref().unwrap_or("site created"), "reason")
    }
}

fn opt_time(value: &Option<String>, field: &'static str) -> Result<Option<Millis>, FieldError> {
    value.as_deref().map(|v| Millis::parse_rfc3339(v, field)).transpose()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteOut {
    pub id: String,
    pub name: String,
    pub level: String,
    pub region_code: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_starts_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_ends_at: Option<String>,
}

impl From<&Site> for SiteOut {
    fn from(s: &Site) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name.clone(),
            level: s.level.to_string(),
            region_code: s.region_code.as_str().to_owned(),
            status: s.status.to_string(),
            agreement_starts_at: s.agreement_starts_at.map(Millis::to_rfc3339),
            agreement_ends_at: s.agreement_ends_at.map(Millis::to_rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteStatusIn {
    /// `active`, `suspended` or `terminated`.
    pub status: String,
    /// Why (recorded in the alliance chain); required.
    pub reason: Option<String>,
    /// RFC 3339: renews the agreement to this end. With the site's current
    /// status (`active` → `active`, `suspended` → `suspended`) this is a
    /// renewal: a new agreement from now to this end, recorded in the
    /// alliance chain as its own change. Must be after now.
    pub agreement_ends_at: Option<String>,
}

impl SiteStatusIn {
    pub fn parse(&self) -> Result<(SiteStatus, Reason, Option<Millis>), FieldError> {
        let status = SiteStatus::parse(&self.status)?;
        let reason = text(self.reason.as_deref().unwrap_or_default(), "reason")?;
        Ok((
            status,
            Reason::parse(reason, "reason")?,
            opt_time(&self.agreement_ends_at, "agreement_ends_at")?,
        ))
    }
}

/// One recorded change of a site's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteChangeOut {
    /// In the alliance chain (chain 4294967295).
    pub position: PositionOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// Who: the admin key id, or `cli`.
    pub actor: String,
    pub reason: String,
    pub at: String,
    pub agreement_starts_at: String,
    pub agreement_ends_at: String,
    /// SHA-256 of the entry, hex.
    pub hash: String,
}

impl From<&xuefen_core::site_log::SiteChangeEntry> for SiteChangeOut {
    fn from(e: &xuefen_core::site_log::SiteChangeEntry) -> Self {
        let c = &e.change;
        Self {
            position: e.position.into(),
            from: c.from.map(|s| s.to_string()),
            to: c.to.to_string(),
            actor: c.actor.clone(),
            reason: c.reason.as_str().to_owned(),
            at: c.at.to_rfc3339(),
            agreement_starts_at: c.agreement_starts_at.to_rfc3339(),
            agreement_ends_at: c.agreement_ends_at.to_rfc3339(),
            hash: hex::encode(e.hash),
        }
    }
}

/// A new API key. The secret is shown once and stored only as a hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyOut {
    pub key_id: String,
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteCreated {
    pub site: SiteOut,
    pub key: KeyOut,
}

// ---------------------------------------------------------------- learners

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// `resident_id` (18 characters, MOD 11-2 check digit), `passport`,
    /// `hk_macao_permit`, `taiwan_permit` or `foreign_permanent_resident`.
    pub kind: String,
    pub number: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnerIn {
    /// Real name; kept out of the ledger.
    pub name: String,
    pub document: DocumentIn,
    /// The registering site's own account id, linked to the learner.
    pub local_account: Option<String>,
    /// RFC 3339: when the learner registered on the site, for a
    /// registration older than this request (a back-fill). The statistics
    /// count the registration in that year; the service still records when
    /// it was told. Needs `local_account`. Absent: now.
    pub registered_at: Option<String>,
}

pub struct LearnerParsed {
    pub name: String,
    pub document: Document,
    pub local_account: Option<LocalAccount>,
    pub registered_at: Option<Millis>,
}

impl LearnerIn {
    pub fn parse(&self) -> Result<LearnerParsed, FieldError> {
        let kind = DocumentKind::parse(&self.document.kind)?;
        Ok(LearnerParsed {
            name: text(&self.name, "name")?,
            document: Document::parse(kind, &self.document.number)?,
            local_account: self.local_account.clone().map(LocalAccount::parse_input).transpose()?,
            registered_at: self
                .registered_at
                .as_deref()
                .map(|v| Millis::parse_rfc3339(v, "registered_at"))
                .transpose()?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LearnerOut {
    pub learner_id: String,
    /// False when the person was already registered (by any site).
    pub created: bool,
}

/// The record of an erasure: where its ledger entry is, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErasureOut {
    pub erased: bool,
    /// The `erased` entry in the learner's former chain.
    pub position: PositionOut,
    pub reason_code: String,
}

/// What links a local account to a learner: proof that the site knows the
/// person. Either the full real-name data (`name` and `document`, which
/// must match what is stored), or `learner_id` with `consent_token`, the
/// learner's own single sign-on token naming that learner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLinkIn {
    pub learner_id: Option<String>,
    /// The learner's single sign-on token: their consent to the link.
    pub consent_token: Option<String>,
    /// Real name, with `document`: the full real-name data of the person.
    pub name: Option<String>,
    pub document: Option<DocumentIn>,
    /// RFC 3339: when the learner registered on the site, for a link older
    /// than this request (a back-fill); counted in that year's statistics.
    pub registered_at: Option<String>,
}

/// An account link request, checked for its shape.
pub enum AccountLinkParsed {
    /// The learner's consent through their token.
    Consent { learner: LearnerId, token: String },
    /// The person's full real-name data.
    RealName { name: String, document: Document },
}

impl AccountLinkIn {
    pub fn parse(&self) -> Result<AccountLinkParsed, FieldError> {
        match (&self.name, &self.document) {
            (Some(name), Some(doc)) => {
                if self.learner_id.is_some() || self.consent_token.is_some() {
                    return Err(FieldError::new(
                        "learner_id",
                        "send either the real-name data (name, document) or learner_id with consent_token, not both",
                    ));
                }
                let kind = DocumentKind::parse(&doc.kind)?;
                Ok(AccountLinkParsed::RealName {
                    name: text(name, "name")?,
                    document: Document::parse(kind, &doc.number)?,
                })
            }
            (Some(_), None) => Err(FieldError::new("document", "is required with name")),
            (None, Some(_)) => Err(FieldError::new("name", "is required with document")),
            (None, None) => {
                let learner = LearnerId::parse(required(&self.learner_id, "learner_id")?)?;
                let token = required(&self.consent_token, "consent_token").map_err(|_| {
                    FieldError::new(
                        "consent_token",
                        "linking by learner_id needs the learner's consent: their single sign-on token (or send the full real-name data instead)",
                    )
                })?;
                Ok(AccountLinkParsed::Consent { learner, token })
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountLinkOut {
    pub local_account: String,
    pub learner_id: String,
    pub created: bool,
}

// ---------------------------------------------------------------- courses

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleIn {
    /// Every passing completion earns `credits`.
    Fixed {
        #[schema(value_type = String, example = "2.00")]
        #[serde(deserialize_with = "crate::decimal::exact")]
        credits: Decimal,
    },
    /// One credit per `hours_per_credit` hours, at most `cap`.
    PerHours {
        #[schema(value_type = String, example = "8")]
        #[serde(deserialize_with = "crate::decimal::exact")]
        hours_per_credit: Decimal,
        #[schema(value_type = String, example = "4")]
        #[serde(deserialize_with = "crate::decimal::exact")]
        cap: Decimal,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseIn {
    pub title: String,
    /// `[a-z0-9_-]`, e.g. `community`.
    pub category: String,
    pub rule: RuleIn,
    /// Minimum score (0..100) to earn credits.
    #[schema(value_type = Option<String>, example = "60")]
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub pass_mark: Option<Decimal>,
    /// RFC 3339: when the course was first offered. Completions dated
    /// earlier are rejected (`completed_before_course_offered`). Absent: no
    /// bound, so that a site can back-fill years of history.
    pub offered_from: Option<String>,
    /// The xAPI activity IRI of the course (the `object.id` of its
    /// statements), unique among the site's courses. A `completed` or
    /// `passed` statement about it credits a linked learner by this
    /// course's rule. Only a course with a `fixed` rule can have one: a
    /// statement declares no learning hours the ledger could trust. Absent:
    /// the course has none (a PUT replaces the whole declaration).
    pub activity_id: Option<String>,
    /// How often the course may credit the same learner: `once` (the
    /// default: a later completion is recorded as `recognised` with zero
    /// credits, referring to the paid entry) or `per_year` (once per
    /// calendar year in China Standard Time, by completion date) or
    /// `every_completion` (each completion is distinct learning and is
    /// credited; a re-send is still reported as a likely duplicate).
    /// Changing it starts a new rule version.
    pub repeat: Option<String>,
}

impl CourseIn {
    pub fn parse(&self, site: SiteId, code: CourseCode) -> Result<Course, FieldError> {
        let rule = match &self.rule {
            RuleIn::Fixed { credits } => CreditRule::Fixed {
                credits: Credits::parse(*credits, 0, CREDITS_PER_AWARD_MAX_CENTS, "rule/credits")?,
            },
            RuleIn::PerHours { hours_per_credit, cap } => CreditRule::PerHours {
                hours_per_credit: Hours::parse(*hours_per_credit, 0, HOURS_MAX_CENTS, "rule/hours_per_credit")?,
                cap: Credits::parse(*cap, 0, CREDITS_PER_AWARD_MAX_CENTS, "rule/cap")?,
            },
        }
        .validate()?;
        Ok(Course {
            site,
            code,
            title: text(&self.title, "title")?,
            category: Category::parse(self.category.clone())?,
            rule,
            pass_mark: self
                .pass_mark
                .map(|m| Score::parse(m, 0, SCORE_MAX_CENTS, "pass_mark"))
                .transpose()?,
            rule_version: 1,
            recognition_group: None,
            repeat: self
                .repeat
                .as_deref()
                .map(|r| xuefen_core::rule::Repeat::parse(r, "repeat"))
                .transpose()?
                .unwrap_or_default(),
            offered_from: self
                .offered_from
                .as_deref()
                .map(|v| Millis::parse_rfc3339(v, "offered_from"))
                .transpose()?
                .map(|m| {
                    if m.0 < COMPLETED_AT_MIN_MS {
                        Err(FieldError::new("offered_from", "is before 2000-01-01"))
                    } else {
                        Ok(m)
                    }
                })
                .transpose()?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CourseOut {
    pub code: String,
    pub title: String,
    pub category: String,
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    #[schema(value_type = Option<String>)]
    pub pass_mark: Option<String>,
    pub rule_version: u32,
    /// The recognition group the admin put the course in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_from: Option<String>,
    /// The xAPI activity IRI of the course.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    /// `once`, `per_year` or `every_completion`.
    #[serde(default)]
    pub repeat: String,
}

impl From<&Course> for CourseOut {
    fn from(c: &Course) -> Self {
        let rule = match c.rule {
            CreditRule::Fixed { credits } => {
                serde_json::json!({"kind": "fixed", "credits": credits.to_string()})
            }
            CreditRule::PerHours { hours_per_credit, cap } => serde_json::json!({
                "kind": "per_hours", "hours_per_credit": hours_per_credit.to_string(), "cap": cap.to_string()
            }),
        };
        Self {
            code: c.code.to_string(),
            title: c.title.clone(),
            category: c.category.to_string(),
            rule,
            pass_mark: c.pass_mark.map(|m| m.to_string()),
            rule_version: c.rule_version,
            recognition_group: c.recognition_group.as_ref().map(ToString::to_string),
            offered_from: c.offered_from.map(Millis::to_rfc3339),
            activity_id: None,
            repeat: c.repeat.as_str().to_owned(),
        }
    }
}

// ---------------------------------------------------------------- events

/// How an event names its learner: exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnerRefIn {
    pub id: Option<String>,
    pub local_account: Option<String>,
}

/// An event. `kind` is `completion` (with `course`, `learner`,
/// `completed_at` and `score` and/or `hours` as the course's rule needs) or
/// `revocation` (with `target_event_id`, and `reason_code` and/or `reason`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Required in a batch; taken from the path by `PUT /v1/events/{event_id}`.
    pub event_id: Option<String>,
    /// `completion` or `revocation`.
    pub kind: String,
    pub course: Option<String>,
    pub learner: Option<LearnerRefIn>,
    /// RFC 3339.
    pub completed_at: Option<String>,
    #[schema(value_type = Option<String>, example = "86.5")]
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub score: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "12")]
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub hours: Option<Decimal>,
    pub target_event_id: Option<String>,
    /// For a revocation: why, as a code (`[a-z0-9_]`, at most 32 bytes, e.g.
    /// `entered_in_error`); the ledger hashes this. Default `unspecified`.
    pub reason_code: Option<String>,
    /// For a revocation: free text with the code. Kept beside the entry as
    /// its note, never hashed, removed when the learner is erased.
    pub reason: Option<String>,
}

fn required<T: Clone>(v: &Option<T>, field: &'static str) -> Result<T, FieldError> {
    v.clone().ok_or_else(|| FieldError::new(field, "is required"))
}

impl EventIn {
    pub fn parse_body(&self) -> Result<EventBody, FieldError> {
        match self.kind.as_str() {
            "completion" => {
                let learner = match &self.learner {
                    Some(LearnerRefIn {
                        id: Some(id),
                        local_account: None,
                    }) => LearnerRef::Id(LearnerId::parse_as(id.clone(), "learner/id")?),
                    Some(LearnerRefIn {
                        id: None,
                        local_account: Some(a),
                    }) => LearnerRef::Account(LocalAccount::parse_input_as(a.clone(), "learner/local_account")?),
                    _ => {
                        return Err(FieldError::new(
                            "learner",
                            "give exactly one of `id` and `local_account`",
                        ));
                    }
                };
                Ok(EventBody::Completion(Completion {
                    course: CourseCode::parse_as(required(&self.course, "course")?, "course")?,
                    learner,
                    completed_at: Millis::parse_rfc3339(
                        &required(&self.completed_at, "completed_at")?,
                        "completed_at",
                    )?,
                    score: self
                        .score
                        .map(|s| Score::parse(s, 0, SCORE_MAX_CENTS, "score"))
                        .transpose()?,
                    hours: self
                        .hours
                        .map(|h| Hours::parse(h, 0, HOURS_MAX_CENTS, "hours"))
                        .transpose()?,
                }))
            }
            "revocation" => {
                let reason = self.reason.as_deref().map(str::trim).unwrap_or_default();
                let code = match self.reason_code.as_deref() {
                    Some("") => return Err(FieldError::new("reason_code", "must not be empty")),
                    Some(code) => code,
                    None if reason.is_empty() => {
                        return Err(FieldError::new("reason_code", "is required (or a reason text)"));
                    }
                    None => xuefen_core::event::REASON_CODE_UNSPECIFIED,
                };
                Ok(EventBody::Revocation(Revocation {
                    target: EventId::parse_as(required(&self.target_event_id, "target_event_id")?, "target_event_id")?,
                    code: Reason::code(code, "reason_code")?,
                    reason: Reason::parse(reason, "reason")?,
                }))
            }
            other => Err(FieldError::new(
                "kind",
                format!("`{other}` is not one of completion, revocation"),
            )),
        }
    }
}

/// The outcome of one event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventResult {
    pub event_id: String,
    /// `accepted`, `duplicate`, `conflict` or `rejected`.
    #[schema(value_type = String)]
    pub status: EventStatus,
    /// Where the event's entry is (for `conflict`: the existing entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionOut>,
    /// The entry kind: `awarded`, `not_passed`, `reversal`, `recognised`
    /// (credited already through its recognition group) or `capped` (over
    /// the learner's annual cap for the category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// For an accepted completion: the event id under which the site
    /// already sent a completion of the same learner, course and
    /// `completed_at`. The new event is recorded (with zero credits when
    /// the course is paid already); the site should check whether it sent
    /// one completion twice under two ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_duplicate_of: Option<String>,
}

impl EventResult {
    pub fn from_outcome(event_id: &str, outcome: &Outcome) -> Self {
        let base = |status: EventStatus, position: Position, kind: EntryKind, credits: Credits| Self {
            event_id: event_id.to_owned(),
            status,
            position: Some(position.into()),
            entry: Some(kind.as_str().to_owned()),
            credits: Some(credits.to_string()),
            problem: None,
            likely_duplicate_of: None,
        };
        match outcome {
            Outcome::Accepted {
                position,
                kind,
                credits,
                likely_duplicate_of,
            } => Self {
                likely_duplicate_of: likely_duplicate_of.as_ref().map(ToString::to_string),
                ..base(EventStatus::Accepted, *position, *kind, *credits)
            },
            Outcome::Duplicate {
                position,
                kind,
                credits,
            } => base(EventStatus::Duplicate, *position, *kind, *credits),
            Outcome::Conflict { field, position } => Self {
                event_id: event_id.to_owned(),
                status: EventStatus::Conflict,
                position: Some((*position).into()),
                entry: None,
                credits: None,
                problem: Some(conflict_problem(field, *position)),
                likely_duplicate_of: None,
            },
            Outcome::Rejected(r) => Self::rejected(
                event_id,
                Problem::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    r.code,
                    r.error.detail.clone(),
                )
                .with_field(r.error.field.to_string()),
            ),
        }
    }

    pub fn rejected(event_id: &str, problem: Problem) -> Self {
        Self {
            event_id: event_id.to_owned(),
            status: EventStatus::Rejected,
            position: None,
            entry: None,
            credits: None,
            problem: Some(problem),
            likely_duplicate_of: None,
        }
    }
}

pub fn conflict_problem(field: &str, position: Position) -> Problem {
    let mut p = Problem::new(
        axum::http::StatusCode::CONFLICT,
        &format!("exists_with_different_{field}"),
        format!("an event with this id exists at {position} with a different `{field}`"),
    )
    .with_field(field);
    p.position = Some(position.into());
    p
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchOut {
    pub accepted: usize,
    pub duplicate: usize,
    pub conflict: usize,
    pub rejected: usize,
    /// One result per item, in the order posted.
    pub results: Vec<EventResult>,
}

/// An entry as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryOut {
    pub position: PositionOut,
    pub event_id: String,
    pub site_id: String,
    /// `awarded`, `not_passed`, `reversal`, `recognised`, `capped` or `promoted`.
    pub kind: String,
    /// On a transcript: `awarded`, `not_passed`, `reversal`, `recognised`
    /// (credited already through another course of its recognition group),
    /// `capped`, `promoted`, `reversed` (cancelled by a later reversal),
    /// `deposited` (accepted by the credit bank) or `rejected_by_bank`. The
    /// bank's decisions are the status of the line they decide, never
    /// lines of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// On a transcript: the course's title, as its site declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_title: Option<String>,
    /// On a transcript: the name of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    pub learner_id: String,
    pub course: String,
    pub category: String,
    #[schema(value_type = String)]
    pub credits: String,
    pub occurred_at: String,
    pub recorded_at: String,
    pub rule_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<PositionOut>,
    /// For a recognised entry: the group's paid entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_by: Option<PositionOut>,
    /// For a promotion: the recognised entry it promotes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotes: Option<PositionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_group: Option<String>,
    /// Recognised and capped entries: the credits the rule gave that were not paid.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    /// SHA-256 of the entry, hex.
    pub hash: String,
}

impl EntryOut {
    pub fn new(e: &Entry, status: Option<&str>) -> Self {
        let b = &e.body;
        Self {
            position: e.position.into(),
            event_id: b.event_id.to_string(),
            site_id: b.site.to_string(),
            kind: b.kind.as_str().to_owned(),
            status: status.map(str::to_owned),
            course_title: None,
            site_name: None,
            learner_id: b.learner.to_string(),
            course: b.course.to_string(),
            category: b.category.to_string(),
            credits: b.credits.to_string(),
            occurred_at: b.occurred_at.to_rfc3339(),
            recorded_at: b.recorded_at.to_rfc3339(),
            rule_version: b.rule_version,
            reverses: b.refers_to.filter(|_| b.kind == EntryKind::Reversal).map(Into::into),
            paid_by: b.refers_to.filter(|_| b.kind == EntryKind::Recognised).map(Into::into),
            promotes: b.refers_to.filter(|_| b.kind == EntryKind::Promoted).map(Into::into),
            recognition_group: b.recognition_group.as_ref().map(ToString::to_string),
            withheld: b.withheld.map(|w| w.to_string()),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TotalsOut {
    #[schema(value_type = String)]
    pub total: String,
    /// Credits by calendar year (China Standard Time).
    #[schema(value_type = Object)]
    pub by_year: std::collections::BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub by_category: std::collections::BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub by_site: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TranscriptOut {
    pub learner_id: String,
    /// Totals over the learner's whole history (within `?year=`,
    /// `?category=` and `?site=` when given), whatever the page.
    pub totals: TotalsOut,
    /// One page of lines, in ledger order (within the filters when given).
    pub entries: Vec<EntryOut>,
    /// The name of every site in the totals and on the page, by site id.
    #[schema(value_type = Object)]
    pub site_names: std::collections::BTreeMap<String, String>,
    /// The cursor of the next page (`?after=`): the ledger position of this
    /// page's last line. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

// ---------------------------------------------------------------- recognition groups and caps

/// One course of a recognition group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupCourse {
    pub site_id: String,
    pub code: String,
}

/// A recognition group (学分互认): equivalent courses across sites, each
/// learner credited once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    pub title: String,
    /// The member courses (replacing any earlier list). A course is in at
    /// most one group; at most 500 courses.
    pub courses: Vec<GroupCourse>,
}

impl GroupIn {
    pub fn parse(&self, id: GroupId) -> Result<Group, FieldError> {
        if self.courses.len() > GROUP_COURSES_MAX {
            return Err(FieldError::new(
                "courses",
                format!(
                    "has {} courses, at most {GROUP_COURSES_MAX} are allowed",
                    self.courses.len()
                ),
            ));
        }
        let mut courses = Vec::with_capacity(self.courses.len());
        for (i, c) in self.courses.iter().enumerate() {
            let site = SiteId::parse(c.site_id.clone())
                .map_err(|e| FieldError::new(format!("courses/{i}/site_id"), e.detail))?;
            let code = CourseCode::parse(c.code.clone())
                .map_err(|e| FieldError::new(format!("courses/{i}/code"), e.detail))?;
            courses.push((site, code));
        }
        courses.sort();
        courses.dedup();
        Ok(Group {
            id,
            title: text(&self.title, "title")?,
            courses,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupOut {
    pub group_id: String,
    pub title: String,
    pub courses: Vec<GroupCourse>,
    /// Only in the answer to a PUT: the reversals the declaration wrote.
    /// A learner paid for more than one of the group's courses by entries
    /// recorded before keeps one payment (the one already in the group,
    /// else the earliest); each other is reversed by a new entry that
    /// carries the group and names the kept entry in its reason. Old
    /// entries are never changed; a repeated PUT writes nothing new.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared: Vec<DeclaredReversal>,
}

/// A reversal written by declaring a recognition group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeclaredReversal {
    pub position: PositionOut,
    pub site_id: String,
    /// The event whose payment is reversed.
    pub target_event_id: String,
    /// Negative: the credits taken back.
    pub credits: String,
    /// The entry of `target_event_id` that this reversal reverses.
    pub reverses: Option<PositionOut>,
    /// Names the group and the entry that stays paid.
    pub reason: String,
}

impl DeclaredReversal {
    pub fn from_entry(e: &xuefen_core::entry::Entry) -> Self {
        Self {
            position: e.position.into(),
            site_id: e.body.site.to_string(),
            target_event_id: e
                .body
                .target_event
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            credits: e.body.credits.to_string(),
            reverses: e.body.refers_to.map(Into::into),
            reason: e.body.reason.as_str().to_owned(),
        }
    }
}

impl From<&Group> for GroupOut {
    fn from(g: &Group) -> Self {
        Self {
            declared: Vec::new(),
            group_id: g.id.to_string(),
            title: g.title.clone(),
            courses: g
                .courses
                .iter()
                .map(|(s, c)| GroupCourse {
                    site_id: s.to_string(),
                    code: c.to_string(),
                })
                .collect(),
        }
    }
}

/// A per-learner annual credit cap for a category (calendar years, China
/// Standard Time). Awards over it are recorded as `capped`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapIn {
    #[schema(value_type = String, example = "20")]
    #[serde(deserialize_with = "crate::decimal::exact")]
    pub annual_credits: Decimal,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CapOut {
    pub category: String,
    #[schema(value_type = String)]
    pub annual_credits: String,
}

/// Largest annual cap: far above any real year, far below overflow.
pub const CAP_CENTS_MAX: i64 = 100_000_00;

impl CapIn {
    pub fn parse(&self) -> Result<Credits, FieldError> {
        Credits::parse(self.annual_credits, 0, CAP_CENTS_MAX, "annual_credits")
    }
}

// ---------------------------------------------------------------- statistics

/// How a site stands against the agreement figures for the year.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StandingOut {
    pub registrations_required: u64,
    /// At least `registrations_required` new registrations/activations.
    pub registrations_met: bool,
    /// At least `registrations_required` of them with `credits_each` credits.
    pub registrations_with_credits_met: bool,
    pub learning_stars_required: u64,
    pub learning_stars_met: bool,
}

/// One site's alliance statistics for a calendar year (China Standard
/// Time), derived from the ledger and the account links.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteStatsOut {
    pub site_id: String,
    pub year: i32,
    /// Learners whose first link with the site was made in the year.
    pub registrations: u64,
    /// Of those, the ones with at least `credits_each` credits in the year (any site).
    pub registrations_with_credits: u64,
    /// Learners with a completion of the site dated in the year.
    pub learners_active: u64,
    /// Learners with at least `credits_each` credits from the site in the year.
    pub learners_with_credits: u64,
    /// Net credits of the site in the year.
    #[schema(value_type = String)]
    pub credits: String,
    /// Learners with at least `star_credits` credits from the site in the year.
    pub learning_stars: u64,
    #[schema(value_type = String)]
    pub credits_each: String,
    #[schema(value_type = String)]
    pub star_credits: String,
    pub standing: StandingOut,
}

impl SiteStatsOut {
    pub fn new(s: &xuefen_store::SiteYearStats, year: i32, settings: &crate::StatsSettings) -> Self {
        Self {
            site_id: s.site.to_string(),
            year,
            registrations: s.registrations,
            registrations_with_credits: s.registrations_with_credits,
            learners_active: s.learners_active,
            learners_with_credits: s.learners_with_credits,
            credits: s.credits.to_string(),
            learning_stars: s.learning_stars,
            credits_each: settings.rule.credits_each.to_string(),
            star_credits: settings.rule.star_credits.to_string(),
            standing: StandingOut {
                registrations_required: settings.registrations_min,
                registrations_met: s.registrations >= settings.registrations_min,
                registrations_with_credits_met: s.registrations_with_credits >= settings.registrations_min,
                learning_stars_required: settings.learning_stars_min,
                learning_stars_met: s.learning_stars >= settings.learning_stars_min,
            },
        }
    }
}
