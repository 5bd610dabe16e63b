//! Courses of a site and their credit rules.

use crate::AppState;
use crate::auth::Caller;
use crate::body::ApiJson;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, CourseCode, SiteId};
use xuefen_core::limits::{COMPLETED_AT_MIN_MS, CREDITS_PER_AWARD_MAX_CENTS, HOURS_MAX_CENTS, SCORE_MAX_CENTS};
use xuefen_core::rule::CreditRule;
use xuefen_store::Course;

use crate::wire::*;

/// Creates or updates one of the calling site's courses. Changing the
/// credit rule or pass mark starts a new rule version; past awards keep
/// theirs.
#[utoipa::path(put, path = "/v1/courses/{code}", operation_id = "put_course", tag = "courses",
    security(("api_key" = [])), params(("code" = String, Path)), request_body = CourseIn,
    responses((status = 201, body = CourseOut), (status = 200, body = CourseOut),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_course(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(input): ApiJson<CourseIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let code = path_id(|v| CourseCode::parse_as(v, "code"), code)?;
    let course = input.parse(site, code)?;
    let activity = course_activity(&state, &course, input.activity_id.as_deref()).await?;
    let (stored, written) = state.course_store().put_course(&course).await?;
    state
        .xapi_store()
        .set_course_activity(&course.site, &course.code, activity)
        .await
        .map_err(activity_taken)?;
    let mut out = CourseOut::from(&stored);
    out.activity_id = activity.map(str::to_owned);
    Ok((status_for(written), Json(out)).into_response())
}

/// Checks a course's xAPI activity IRI: well formed, on a course with a
/// fixed rule (a statement declares no hours the ledger could trust), and
/// not another course's.
async fn course_activity<'a>(
    state: &AppState,
    course: &xuefen_store::Course,
    activity: Option<&'a str>,
) -> ApiResult<Option<&'a str>> {
    let Some(iri) = activity else { return Ok(None) };
    let invalid = |code: ProblemCode, detail: String| {
        ApiError::from(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail).with_field("activity_id"))
    };
    xuefen_core::xapi::check_iri(iri, "activity_id").map_err(|e| invalid(ProblemCode::InvalidField, e.detail))?;
    if iri.len() > xuefen_core::limits::EVENT_ID_BYTES_MAX * 4 {
        return Err(invalid(
            ProblemCode::InvalidField,
            format!("is longer than {} bytes", xuefen_core::limits::EVENT_ID_BYTES_MAX * 4),
        ));
    }
    if !matches!(course.rule, xuefen_core::rule::CreditRule::Fixed { .. }) {
        return Err(invalid(
            ProblemCode::ActivityNeedsFixedRule,
            "only a course with a fixed rule can have an xAPI activity: statements declare no learning hours the ledger could credit".into(),
        ));
    }
    let holders = state
        .xapi_store()
        .activity_courses(&course.site, &[iri.to_owned()])
        .await?;
    if holders.iter().any(|(_, code)| *code != course.code) {
        return Err(activity_taken(xuefen_store::StoreError::conflict(
            xuefen_store::ConflictKind::LinkedElsewhere,
            iri,
        )));
    }
    Ok(Some(iri))
}

fn activity_taken(e: xuefen_store::StoreError) -> ApiError {
    match e {
        xuefen_store::StoreError::Conflict(_) => Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::ActivityIdTaken,
            "another course of the site has this activity IRI",
        )
        .with_field("activity_id")
        .into(),
        e => e.into(),
    }
}

/// One of the calling site's courses.
#[utoipa::path(get, path = "/v1/courses/{code}", operation_id = "get_course", tag = "courses",
    security(("api_key" = [])), params(("code" = String, Path)),
    responses((status = 200, body = CourseOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_course(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<CourseOut>> {
    let site = caller.require_site()?;
    let code = path_id(|v| CourseCode::parse_as(v, "code"), code)?;
    let course = state
        .course_store()
        .course(site, &code)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let mut out = CourseOut::from(&course);
    out.activity_id = state.xapi_store().course_activity(site, &code).await?;
    Ok(Json(out))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RuleIn {
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
pub(crate) struct CourseIn {
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
    pub(crate) fn parse(&self, site: SiteId, code: CourseCode) -> Result<Course, FieldError> {
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
pub(crate) struct CourseOut {
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
