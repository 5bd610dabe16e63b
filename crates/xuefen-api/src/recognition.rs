//! Recognition groups (equivalent courses across sites, credited once)
//! and annual caps per category.

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
use xuefen_core::amount::Credits;
use xuefen_core::ids::{Category, CourseCode, GroupId, SiteId};
use xuefen_core::limits::GROUP_COURSES_MAX;
use xuefen_store::Group;

use crate::problem::PositionOut;
use crate::wire::*;

/// Declares (or replaces) a recognition group of equivalent courses across
/// sites. A learner is credited once per group; later completions of any of
/// its courses are recorded as `recognised`. Entries already written keep
/// the group they were written with. Admin only.
#[utoipa::path(put, path = "/v1/recognition-groups/{group_id}", operation_id = "put_recognition_group", tag = "courses",
    security(("api_key" = [])), params(("group_id" = String, Path)), request_body = GroupIn,
    responses((status = 201, body = GroupOut), (status = 200, body = GroupOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
    ApiJson(input): ApiJson<GroupIn>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let id = path_id(|v| GroupId::parse_as(v, "group_id"), group_id)?;
    let group = input.parse(id)?;
    let mut sites: Vec<&SiteId> = group.courses.iter().map(|(s, _)| s).collect();
    sites.dedup();
    for site in sites {
        if state.site_store().site(site).await?.is_none() {
            let i = input
                .courses
                .iter()
                .position(|c| c.site_id == site.as_str())
                .unwrap_or_default();
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::UnknownSite,
                format!("there is no site `{site}`"),
            )
            .with_field(format!("courses/{i}/site_id"))
            .into());
        }
    }
    let (written, declared) = state
        .recognition_store()
        .put_group(&group, now())
        .await
        .map_err(|e| match e {
            xuefen_store::StoreError::Conflict(detail) => ApiError::from(
                Problem::new(StatusCode::CONFLICT, ProblemCode::CourseInAnotherGroup, detail).with_field("courses"),
            ),
            e => e.into(),
        })?;
    tracing::info!(group.id = %group.id, group.courses = group.courses.len(), group.reversals = declared.len(), "recognition group set");
    let out = GroupOut {
        declared: declared.iter().map(DeclaredReversal::from_entry).collect(),
        ..GroupOut::from(&group)
    };
    Ok((status_for(written), Json(out)).into_response())
}

/// A recognition group and its courses. Any authenticated caller.
#[utoipa::path(get, path = "/v1/recognition-groups/{group_id}", operation_id = "get_recognition_group", tag = "courses",
    security(("api_key" = [])), params(("group_id" = String, Path)),
    responses((status = 200, body = GroupOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_group(
    State(state): State<AppState>,
    _caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<GroupOut>> {
    let id = path_id(|v| GroupId::parse_as(v, "group_id"), group_id)?;
    let group = state
        .recognition_store()
        .group(&id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(GroupOut::from(&group)))
}

/// Every annual category cap. Any authenticated caller.
#[utoipa::path(get, path = "/v1/caps", operation_id = "list_caps", tag = "courses",
    security(("api_key" = [])), responses((status = 200, body = Vec<CapOut>)))]
pub(crate) async fn list_caps(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<CapOut>>> {
    let caps = state.recognition_store().caps().await?;
    Ok(Json(
        caps.into_iter()
            .map(|(category, cap)| CapOut {
                category: category.to_string(),
                annual_credits: cap.to_string(),
            })
            .collect(),
    ))
}

/// Sets the per-learner annual credit cap of a category. Later awards over
/// it are recorded as `capped` with the remainder withheld; past awards are
/// not touched. Admin only.
#[utoipa::path(put, path = "/v1/caps/{category}", operation_id = "put_cap", tag = "courses",
    security(("api_key" = [])), params(("category" = String, Path)), request_body = CapIn,
    responses((status = 200, body = CapOut), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(category): Path<String>,
    ApiJson(input): ApiJson<CapIn>,
) -> ApiResult<Json<CapOut>> {
    caller.require_admin()?;
    let category = path_id(|v| Category::parse_as(v, "category"), category)?;
    let cap = input.parse()?;
    state.recognition_store().set_cap(&category, Some(cap)).await?;
    tracing::info!(category = %category, cap = %cap, "annual cap set");
    Ok(Json(CapOut {
        category: category.to_string(),
        annual_credits: cap.to_string(),
    }))
}

/// Removes the annual cap of a category. Admin only.
#[utoipa::path(delete, path = "/v1/caps/{category}", operation_id = "delete_cap", tag = "courses",
    security(("api_key" = [])), params(("category" = String, Path)),
    responses((status = 204, description = "removed")))]
pub(crate) async fn delete_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(category): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let category = path_id(|v| Category::parse_as(v, "category"), category)?;
    state.recognition_store().set_cap(&category, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One course of a recognition group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupCourse {
    pub site_id: String,
    pub code: String,
}

/// A recognition group (学分互认): equivalent courses across sites, each
/// learner credited once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupIn {
    pub title: String,
    /// The member courses (replacing any earlier list). A course is in at
    /// most one group; at most 500 courses.
    pub courses: Vec<GroupCourse>,
}

impl GroupIn {
    pub(crate) fn parse(&self, id: GroupId) -> Result<Group, FieldError> {
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
pub(crate) struct GroupOut {
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
pub(crate) struct DeclaredReversal {
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
    pub(crate) fn from_entry(e: &xuefen_core::entry::Entry) -> Self {
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
pub(crate) struct CapIn {
    #[schema(value_type = String, example = "20")]
    #[serde(deserialize_with = "crate::decimal::exact")]
    pub annual_credits: Decimal,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CapOut {
    pub category: String,
    #[schema(value_type = String)]
    pub annual_credits: String,
}

/// Largest annual cap: far above any real year, far below overflow.
pub(crate) const CAP_CENTS_MAX: i64 = 100_000_00;

impl CapIn {
    pub(crate) fn parse(&self) -> Result<Credits, FieldError> {
        Credits::parse(self.annual_credits, 0, CAP_CENTS_MAX, "annual_credits")
    }
}
