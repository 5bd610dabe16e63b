//! Alliance sites: creating them (with their first key), listing, status
//! changes and their log. Admin only, except a site reading itself.

use crate::AppState;
use crate::auth::{Caller, forbidden, mint};
use crate::body::ApiJson;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_store::Site;
use xuefen_store::{Principal, SiteAct};

use crate::keys::KeyOut;
use crate::problem::PositionOut;
use crate::wire::*;

/// Creates an alliance site and its first API key (shown once). Admin only.
#[utoipa::path(post, path = "/v1/sites", operation_id = "create_site", tag = "sites", request_body = SiteIn,
    security(("api_key" = [])),
    responses((status = 201, body = SiteCreated), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create_site(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<SiteIn>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let site = input.parse()?;
    if site.id.as_str() == xuefen_core::bank::BANK_SITE {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::ReservedSiteId,
            "this id is reserved for the credit bank's acknowledgements",
        )
        .with_field("id")
        .into());
    }
    let act = SiteAct {
        actor: caller.key_id.clone(),
        reason: input.reason()?,
        at: now(),
    };
    state.site_store().create_site(&site, &act).await.map_err(|e| match e {
        xuefen_store::StoreError::Conflict(d) if d.kind == xuefen_store::ConflictKind::InvalidTransition => {
            ApiError::from(
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::InvalidTransition,
                    "a site starts pending or active",
                )
                .with_field("status"),
            )
        }
        xuefen_store::StoreError::Conflict(_) => ApiError::from(
            Problem::new(
                StatusCode::CONFLICT,
                ProblemCode::SiteExists,
                "a site with this id exists",
            )
            .with_field("id"),
        ),
        e => e.into(),
    })?;
    let site = state
        .site_store()
        .site(&site.id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let (key, secret) = mint(Principal::Site(site.id.clone()));
    state.key_store().create_key(&key).await?;
    tracing::info!(site.id = %site.id, key.id = %key.id, "site created");
    let out = SiteCreated {
        site: SiteOut::from(&site),
        key: KeyOut { key_id: key.id, secret },
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Lists every site. Admin only.
#[utoipa::path(get, path = "/v1/sites", operation_id = "list_sites", tag = "sites", security(("api_key" = [])),
    responses((status = 200, body = Vec<SiteOut>)))]
pub(crate) async fn list_sites(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<SiteOut>>> {
    caller.require_admin()?;
    Ok(Json(
        state.site_store().sites().await?.iter().map(SiteOut::from).collect(),
    ))
}

/// One site: the admin, or the site itself.
#[utoipa::path(get, path = "/v1/sites/{site_id}", operation_id = "get_site", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Path)),
    responses((status = 200, body = SiteOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> ApiResult<Json<SiteOut>> {
    caller.refuse_bank()?;
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    if let Principal::Site(own) = &caller.principal
        && *own != id
    {
        return Err(forbidden("a site can read only its own record").into());
    }
    let site = state
        .site_store()
        .site(&id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(SiteOut::from(&site)))
}

/// Moves a site along its lifecycle: pending → active | terminated,
/// active → suspended | terminated, suspended → active | terminated. Each
/// change is recorded in the alliance chain with who (the admin key) and
/// why; `agreement_ends_at` renews the agreement. Admin only.
#[utoipa::path(put, path = "/v1/sites/{site_id}/status", operation_id = "set_site_status", tag = "sites",
    security(("api_key" = [])), params(("site_id" = String, Path)), request_body = SiteStatusIn,
    responses((status = 200, body = SiteOut), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_site_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiJson(input): ApiJson<SiteStatusIn>,
) -> ApiResult<Json<SiteOut>> {
    caller.require_admin()?;
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    let (status, reason, ends) = input.parse()?;
    let act = SiteAct {
        actor: caller.key_id.clone(),
        reason,
        at: now(),
    };
    let (site, entry) = state
        .site_store()
        .set_site_status(&id, status, ends, &act)
        .await
        .map_err(|e| match e {
            xuefen_store::StoreError::Conflict(d) if d.kind == xuefen_store::ConflictKind::InvalidRenewal => {
                ApiError::from(
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::InvalidRenewal, d)
                        .with_field("agreement_ends_at"),
                )
            }
            xuefen_store::StoreError::Conflict(d) => ApiError::from(
                Problem::new(StatusCode::CONFLICT, ProblemCode::InvalidTransition, d).with_field("status"),
            ),
            e => e.into(),
        })?;
    state.key_cache.clear();
    tracing::info!(site.id = %id, site.status = %status, position = %entry.position, "site status changed");
    Ok(Json(SiteOut::from(&site)))
}

/// The recorded lifecycle of a site: every status change with who, why,
/// the agreement in force and its place in the alliance chain.
///
/// Roles: admin; site (its own only). Not the credit bank.
#[utoipa::path(get, path = "/v1/sites/{site_id}/changes", operation_id = "list_site_changes", tag = "sites",
    security(("api_key" = [])), params(("site_id" = String, Path)),
    responses((status = 200, body = Vec<SiteChangeOut>), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_site_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> ApiResult<Json<Vec<SiteChangeOut>>> {
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    caller.require_admin_or_site(&id, "changes")?;
    state
        .site_store()
        .site(&id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let changes = state.site_store().site_changes(&id).await?;
    Ok(Json(changes.iter().map(SiteChangeOut::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteIn {
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
    pub(crate) fn parse(&self) -> Result<Site, FieldError> {
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

    pub(crate) fn reason(&self) -> Result<Reason, FieldError> {
        Reason::parse(self.reason.as_deref().unwrap_or("site created"), "reason")
    }
}

fn opt_time(value: &Option<String>, field: &'static str) -> Result<Option<Millis>, FieldError> {
    value.as_deref().map(|v| Millis::parse_rfc3339(v, field)).transpose()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SiteOut {
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
pub(crate) struct SiteStatusIn {
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
    pub(crate) fn parse(&self) -> Result<(SiteStatus, Reason, Option<Millis>), FieldError> {
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
pub(crate) struct SiteChangeOut {
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SiteCreated {
    pub site: SiteOut,
    pub key: KeyOut,
}
