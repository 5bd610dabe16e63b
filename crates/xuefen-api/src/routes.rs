//! Route handlers. Each parses its input at the edge, checks who may do
//! what, and calls the store (or the group committer for events).

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::value::RawValue;
use xuefen_core::entry::Entry;
use xuefen_core::event::Event;
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::Outcome;
use xuefen_core::transcript::{Filter, status_of, totals_from_rows};
use xuefen_store::{NewLearner, Principal, SiteAct, Written};

use crate::AppState;
use crate::auth::{Caller, forbidden, mint};
use crate::body::{ApiJson, BodyKind, body_kind, parse_json, read_body_unchecked};
use crate::commit::CommitError;
use crate::dto::*;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::sso::SignedInLearner;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/sites", post(create_site).get(list_sites))
        .route("/v1/sites/{site_id}", get(get_site))
        .route("/v1/sites/{site_id}/status", put(set_site_status))
        .route("/v1/sites/{site_id}/changes", get(list_site_changes))
        .route("/v1/sites/{site_id}/stats", get(get_site_stats))
        .route("/v1/stats", get(list_stats))
        .route("/v1/sites/{site_id}/keys", post(create_site_key))
        .route("/v1/keys/{key_id}", delete(revoke_key))
        .route("/v1/learners", post(register_learner))
        .route("/v1/accounts/{local_account}", put(link_account))
        .route("/v1/courses/{code}", put(put_course).get(get_course))
        .route("/v1/events", post(post_events))
        .route("/v1/events/{event_id}", put(put_event).get(get_event))
        .route("/v1/learners/{learner_id}", delete(erase_learner))
        .route("/v1/learners/{learner_id}/transcript", get(get_transcript))
        .route("/v1/me/transcript", get(get_my_transcript))
        .route("/v1/recognition-groups/{group_id}", put(put_group).get(get_group))
        .route("/v1/caps", get(list_caps))
        .route("/v1/caps/{category}", put(put_cap).delete(delete_cap))
        .merge(crate::bank::routes())
        .merge(crate::xapi::routes())
        .merge(crate::pages::routes())
        .merge(crate::record::routes())
}

fn status_for(w: Written) -> StatusCode {
    match w {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    }
}

fn path_id<T>(parse: impl FnOnce(String) -> Result<T, xuefen_core::FieldError>, value: String) -> ApiResult<T> {
    parse(value).map_err(|e| Problem::invalid(&e).into())
}

pub(crate) fn commit_error(e: CommitError) -> ApiError {
    match e {
        CommitError::Stopped => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is stopping; retry",
        )
        .into(),
        CommitError::Store(e) => match &*e {
            xuefen_store::StoreError::Database(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; nothing was written, retry later",
            )
            .into(),
            _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into(),
        },
    }
}

// ------------------------------------------------------------------ health

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "get_health", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and its schema is current.
#[utoipa::path(get, path = "/readyz", operation_id = "get_readiness", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state.store.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::from(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database is unreachable or not migrated",
        ))
    })?;
    Ok("ready")
}

// ------------------------------------------------------------------ sites

/// Creates an alliance site and its first API key (shown once). Admin only.
#[utoipa::path(post, path = "/v1/sites", operation_id = "create_site", tag = "sites", request_body = SiteIn,
    security(("api_key" = [])),
    responses((status = 201, body = SiteCreated), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_site(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<SiteIn>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let site = input.parse()?;
    if site.id.as_str() == xuefen_core::bank::BANK_SITE {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reserved_site_id",
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
    state.store.create_site(&site, &act).await.map_err(|e| match e {
        xuefen_store::StoreError::Conflict(d) if d.starts_with("invalid_transition") => ApiError::from(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_transition",
                "a site starts pending or active",
            )
            .with_field("status"),
        ),
        xuefen_store::StoreError::Conflict(_) => ApiError::from(
            Problem::new(StatusCode::CONFLICT, "site_exists", "a site with this id exists").with_field("id"),
        ),
        e => e.into(),
    })?;
    let site = state
        .store
        .site(&site.id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let (key, secret) = mint(Principal::Site(site.id.clone()));
    state.store.create_key(&key).await?;
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
pub async fn list_sites(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<SiteOut>>> {
    caller.require_admin()?;
    Ok(Json(state.store.sites().await?.iter().map(SiteOut::from).collect()))
}

/// One site: the admin, or the site itself.
#[utoipa::path(get, path = "/v1/sites/{site_id}", operation_id = "get_site", tag = "sites", security(("api_key" = [])),
    params(("site_id" = String, Path)),
    responses((status = 200, body = SiteOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_site(
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
    let site = state.store.site(&id).await?.ok_or(xuefen_store::StoreError::NotFound)?;
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
pub async fn set_site_status(
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
        .store
        .set_site_status(&id, status, ends, &act)
        .await
        .map_err(|e| match e {
            xuefen_store::StoreError::Conflict(d) if d.starts_with("invalid_renewal") => ApiError::from(
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_renewal", d).with_field("agreement_ends_at"),
            ),
            xuefen_store::StoreError::Conflict(d) => {
                ApiError::from(Problem::new(StatusCode::CONFLICT, "invalid_transition", d).with_field("status"))
            }
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
pub async fn list_site_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> ApiResult<Json<Vec<SiteChangeOut>>> {
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    caller.require_admin_or_site(&id, "changes")?;
    state.store.site(&id).await?.ok_or(xuefen_store::StoreError::NotFound)?;
    let changes = state.store.site_changes(&id).await?;
    Ok(Json(changes.iter().map(SiteChangeOut::from).collect()))
}

/// `registered_at` of a registration or account link: RFC 3339, from
/// 2000-01-01 up to now (plus the usual clock skew).
fn parse_registered_at(value: Option<&str>) -> ApiResult<Option<xuefen_core::event::Millis>> {
    let Some(value) = value else { return Ok(None) };
    let at = xuefen_core::event::Millis::parse_rfc3339(value, "registered_at").map_err(|e| Problem::invalid(&e))?;
    let late = now().0.saturating_add(xuefen_core::limits::COMPLETED_AT_FUTURE_SKEW_MS);
    if at.0 < xuefen_core::limits::COMPLETED_AT_MIN_MS || at.0 > late {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "registered_at",
            "must be between 2000-01-01 and now",
        ))
        .into());
    }
    Ok(Some(at))
}

fn now() -> xuefen_core::event::Millis {
    xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc())
}

/// Issues another key for a site (for rotation). Admin only.
#[utoipa::path(post, path = "/v1/sites/{site_id}/keys", operation_id = "create_site_key", tag = "sites",
    security(("api_key" = [])), params(("site_id" = String, Path)),
    responses((status = 201, body = KeyOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn create_site_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    state.store.site(&id).await?.ok_or(xuefen_store::StoreError::NotFound)?;
    let (key, secret) = mint(Principal::Site(id));
    state.store.create_key(&key).await?;
    Ok((StatusCode::CREATED, Json(KeyOut { key_id: key.id, secret })).into_response())
}

/// Revokes a key at once. Admin only.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", operation_id = "revoke_key", tag = "sites",
    security(("api_key" = [])), params(("key_id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state.store.revoke_key(&key_id).await?;
    state.key_cache.clear();
    tracing::info!(key.id = %key_id, "key revoked");
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ learners

/// Registers a real-name learner, or finds the one already registered with
/// the same document (by any site). The document number is kept only as a
/// keyed hash. With `local_account`, links the site's account too.
#[utoipa::path(post, path = "/v1/learners", operation_id = "register_learner", tag = "learners",
    security(("api_key" = [])), request_body = LearnerIn,
    responses((status = 201, body = LearnerOut), (status = 200, body = LearnerOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn register_learner(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<LearnerIn>,
) -> ApiResult<Response> {
    let parsed = input.parse()?;
    let registered_at = parse_registered_at(input.registered_at.as_deref())?;
    if registered_at.is_some() && parsed.local_account.is_none() {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "registered_at",
            "dates a site's registration, so it needs `local_account`",
        ))
        .into());
    }
    let site = match (&caller.principal, &parsed.local_account) {
        (Principal::Site(site), _) => Some(site.clone()),
        (Principal::Admin, None) => None,
        (Principal::Bank, _) => return Err(forbidden("the credit bank does not register learners").into()),
        (Principal::Admin, Some(_)) => {
            return Err(Problem::invalid(&xuefen_core::FieldError::new(
                "local_account",
                "only a site links its own accounts",
            ))
            .into());
        }
    };
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let new = NewLearner {
        secret,
        candidate: LearnerId::from_random(bytes),
        document_kind: parsed.document.kind(),
        document_hash: parsed.document.keyed_hash(&state.identity_key),
        name: parsed.name,
    };
    let (id, written) = state.store.register_learner(&new).await?;
    if written == Written::Existing {
        same_person(&state, &new.document_hash, &new.name).await?;
    }
    if let (Some(site), Some(account)) = (site, parsed.local_account) {
        state
            .store
            .link_account(&site, &account, &id, registered_at)
            .await
            .map_err(account_conflict)?;
    }
    let out = LearnerOut {
        learner_id: id.to_string(),
        created: written == Written::Created,
    };
    Ok((status_for(written), Json(out)).into_response())
}

/// Checks real-name data against the person registered with the document:
/// a different name under the same document is a 409 naming `name`, never a
/// silent match. Returns the learner.
async fn same_person(state: &AppState, document_hash: &[u8; 32], name: &str) -> ApiResult<LearnerId> {
    let Some((id, stored)) = state.store.learner_by_document(document_hash).await? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_learner",
            "no learner is registered with this document",
        )
        .with_field("document")
        .into());
    };
    if stored != name {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "name_mismatch",
            "the name does not match the one registered with this document",
        )
        .with_field("name")
        .into());
    }
    Ok(id)
}

/// The legal bases an erasure may name, recorded as its reason code.
pub const ERASURE_REASONS: &[&str] = &[
    // PIPL art. 47: the person asks for deletion, or the purpose is met.
    "pipl_art47",
    // GDPR art. 17: the right to erasure.
    "gdpr_art17",
    "consent_withdrawn",
    "court_order",
    "retention_expired",
];

/// Erases a learner's personal data: real name, document hash, account
/// links and the secret their entries' commitments are made under, so that
/// nothing ties the ledger to the person any more; every entry, checkpoint
/// and proof stays valid. Recorded in the ledger as an `erased` entry with
/// the legal reason code (`?reason_code=`, one of `pipl_art47`,
/// `gdpr_art17`, `consent_withdrawn`, `court_order`, `retention_expired`)
/// and nothing personal. Afterwards the learner's transcript is 404.
///
/// Roles: admin.
#[utoipa::path(delete, path = "/v1/learners/{learner_id}", operation_id = "erase_learner", tag = "learners",
    security(("api_key" = [])),
    params(("learner_id" = String, Path), ("reason_code" = String, Query, description = "the legal basis: pipl_art47, gdpr_art17, consent_withdrawn, court_order or retention_expired")),
    responses((status = 200, body = ErasureOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn erase_learner(
    State(state): State<AppState>,
    caller: Caller,
    Path(learner_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ErasureOut>> {
    caller.require_admin()?;
    let learner = path_id(LearnerId::parse, learner_id)?;
    let code = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("reason_code="))
        .unwrap_or_default();
    if !ERASURE_REASONS.contains(&code) {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "reason_code",
            format!("must be one of {}", ERASURE_REASONS.join(", ")),
        ))
        .into());
    }
    let reason = xuefen_core::event::Reason::code(code, "reason_code")?;
    let position = state
        .store
        .erase_learner(&learner, &reason, now())
        .await
        .map_err(|e| match e {
            xuefen_store::StoreError::NotFound => ApiError::from(
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown_learner",
                    "no learner has this id (or it was erased)",
                )
                .with_field("learner_id"),
            ),
            e => e.into(),
        })?;
    tracing::info!(%position, reason_code = code, "learner erased");
    Ok(Json(ErasureOut {
        erased: true,
        position: position.into(),
        reason_code: code.to_owned(),
    }))
}

fn account_conflict(e: xuefen_store::StoreError) -> ApiError {
    match e {
        xuefen_store::StoreError::Conflict(_) => Problem::new(
            StatusCode::CONFLICT,
            "account_linked_elsewhere",
            "this local account is already linked to another learner",
        )
        .with_field("local_account")
        .into(),
        e => e.into(),
    }
}

/// Links the calling site's local account to a learner, given proof that
/// the site knows the person: the full real-name data matching what is
/// stored (a name mismatch is a 409 naming `name`), or the learner's
/// consent through their single sign-on token.
///
/// Roles: site.
#[utoipa::path(put, path = "/v1/accounts/{local_account}", operation_id = "link_account", tag = "learners",
    security(("api_key" = [])), params(("local_account" = String, Path)), request_body = AccountLinkIn,
    responses((status = 201, body = AccountLinkOut), (status = 200, body = AccountLinkOut),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn link_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(input): ApiJson<AccountLinkIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let account = path_id(LocalAccount::parse_input, account)?;
    let registered_at = parse_registered_at(input.registered_at.as_deref())?;
    let learner = match input.parse()? {
        AccountLinkParsed::RealName { name, document } => {
            same_person(&state, &document.keyed_hash(&state.identity_key), &name).await?
        }
        AccountLinkParsed::Consent { learner, token } => {
            let sso = state.sso.as_ref().ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "sso_not_configured",
                    "no single sign-on is configured, so consent tokens cannot be checked; send the real-name data",
                )
                .with_field("consent_token")
            })?;
            let consenting = sso.verify(&token)?;
            if consenting != learner {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "consent_mismatch",
                    "the consent token is not the named learner's",
                )
                .with_field("consent_token")
                .into());
            }
            if !state.store.learner_exists(&learner).await? {
                return Err(
                    Problem::new(StatusCode::NOT_FOUND, "unknown_learner", "no learner has this id")
                        .with_field("learner_id")
                        .into(),
                );
            }
            learner
        }
    };
    let written = state
        .store
        .link_account(&site, &account, &learner, registered_at)
        .await
        .map_err(account_conflict)?;
    let out = AccountLinkOut {
        local_account: account.to_string(),
        learner_id: learner.to_string(),
        created: written == Written::Created,
    };
    Ok((status_for(written), Json(out)).into_response())
}

// ------------------------------------------------------------------ courses

/// Creates or updates one of the calling site's courses. Changing the
/// credit rule or pass mark starts a new rule version; past awards keep
/// theirs.
#[utoipa::path(put, path = "/v1/courses/{code}", operation_id = "put_course", tag = "courses",
    security(("api_key" = [])), params(("code" = String, Path)), request_body = CourseIn,
    responses((status = 201, body = CourseOut), (status = 200, body = CourseOut),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_course(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(input): ApiJson<CourseIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let code = path_id(|v| CourseCode::parse_as(v, "code"), code)?;
    let course = input.parse(site, code)?;
    let activity = course_activity(&state, &course, input.activity_id.as_deref()).await?;
    let (stored, written) = state.store.put_course(&course).await?;
    state
        .store
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
    let invalid = |code: &str, detail: String| {
        ApiError::from(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail).with_field("activity_id"))
    };
    xuefen_core::xapi::check_iri(iri, "activity_id").map_err(|e| invalid("invalid_field", e.detail))?;
    if iri.len() > xuefen_core::limits::EVENT_ID_BYTES_MAX * 4 {
        return Err(invalid(
            "invalid_field",
            format!("is longer than {} bytes", xuefen_core::limits::EVENT_ID_BYTES_MAX * 4),
        ));
    }
    if !matches!(course.rule, xuefen_core::rule::CreditRule::Fixed { .. }) {
        return Err(invalid(
            "activity_needs_fixed_rule",
            "only a course with a fixed rule can have an xAPI activity: statements declare no learning hours the ledger could credit".into(),
        ));
    }
    let holders = state.store.activity_courses(&course.site, &[iri.to_owned()]).await?;
    if holders.iter().any(|(_, code)| *code != course.code) {
        return Err(activity_taken(xuefen_store::StoreError::Conflict(iri.to_owned())));
    }
    Ok(Some(iri))
}

fn activity_taken(e: xuefen_store::StoreError) -> ApiError {
    match e {
        xuefen_store::StoreError::Conflict(_) => Problem::new(
            StatusCode::CONFLICT,
            "activity_id_taken",
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
pub async fn get_course(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<Json<CourseOut>> {
    let site = caller.require_site()?;
    let code = path_id(|v| CourseCode::parse_as(v, "code"), code)?;
    let course = state
        .store
        .course(site, &code)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let mut out = CourseOut::from(&course);
    out.activity_id = state.store.course_activity(site, &code).await?;
    Ok(Json(out))
}

// ------------------------------------------------------------------ events

/// Posts one event under its id. Idempotent: the same event again answers
/// 200 with the original position and writes nothing; the same id with
/// other content is a 409 naming the first differing field.
#[utoipa::path(put, path = "/v1/events/{event_id}", operation_id = "put_event", tag = "events",
    security(("api_key" = [])), params(("event_id" = String, Path)), request_body = EventIn,
    responses((status = 201, description = "accepted", body = EventResult), (status = 200, description = "duplicate", body = EventResult),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
    ApiJson(input): ApiJson<EventIn>,
) -> ApiResult<Response> {
    let site = caller.require_posting_site()?.clone();
    let id = path_id(EventId::parse_input, event_id)?;
    if let Some(body_id) = &input.event_id
        && body_id != id.as_str()
    {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "event_id",
            "differs from the id in the path",
        ))
        .into());
    }
    let body = input.parse_body()?;
    let outcomes = state
        .committer
        .submit(vec![Event {
            site,
            id: id.clone(),
            body,
        }])
        .await
        .map_err(commit_error)?;
    let outcome = outcomes.into_iter().next().ok_or_else(|| {
        ApiError::from(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ))
    })?;
    let result = EventResult::from_outcome(id.as_str(), &outcome);
    Ok(match outcome {
        Outcome::Accepted { .. } => (StatusCode::CREATED, Json(result)).into_response(),
        Outcome::Duplicate { .. } => (StatusCode::OK, Json(result)).into_response(),
        Outcome::Conflict { .. } | Outcome::Rejected(_) => match result.problem {
            Some(p) => p.into_response(),
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    })
}

/// The stored outcome of one of the calling site's events.
#[utoipa::path(get, path = "/v1/events/{event_id}", operation_id = "get_event", tag = "events",
    security(("api_key" = [])), params(("event_id" = String, Path)),
    responses((status = 200, body = EntryOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
) -> ApiResult<Json<EntryOut>> {
    let site = caller.require_site()?;
    let id = path_id(EventId::parse, event_id)?;
    let entry = state
        .store
        .entry_by_event(site, &id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(EntryOut::new(&entry, None)))
}

/// Posts a batch of events: a JSON array, or NDJSON with
/// `Content-Type: application/x-ndjson`. Each item gets its own result; a
/// rejected item never blocks the others, and the whole batch commits in
/// one transaction.
#[utoipa::path(post, path = "/v1/events", operation_id = "post_events", tag = "events",
    security(("api_key" = [])), request_body = Vec<EventIn>,
    responses((status = 200, body = BatchOut), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<BatchOut>> {
    let site = caller.require_posting_site()?.clone();
    let ndjson = body_kind(&headers, true)? == BodyKind::Ndjson;
    // U+0000 is checked per item (in `parse_item`): one item holding it is
    // rejected on its own, like any other invalid item.
    let bytes = read_body_unchecked(req, &state).await?;
    // Items stay raw until each is parsed on its own: one bad item gets its
    // own result instead of failing the batch, and no intermediate
    // `serde_json::Value` tree is built.
    let items = split_batch(&bytes, ndjson)?;
    let limit = state.limits.batch_events_max;
    if items.len() > limit {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_too_long",
            format!(
                "the batch has {} events; at most {limit} are allowed (batch_events_max)",
                items.len()
            ),
        )
        .with_field("/")
        .into());
    }
    if items.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_empty",
            "the batch has no events",
        )
        .with_field("/")
        .into());
    }
    // Parse every item; invalid ones get a result now and never reach the ledger.
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match parse_item(&site, item) {
            Ok(event) => {
                slots.push(i);
                events.push(event);
                results.push(None);
            }
            Err(rejected) => {
                let (event_id, problem) = *rejected;
                let problem = match problem.field.clone() {
                    Some(f) => problem.with_field(format!("{i}/{f}")),
                    None => problem.with_field(format!("{i}")),
                };
                results.push(Some(EventResult::rejected(&event_id, problem)));
            }
        }
    }
    state.metrics.events_rejected_unparsed(results.len() - events.len());
    if !events.is_empty() {
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let outcomes = state.committer.submit(events).await.map_err(commit_error)?;
        for ((slot, id), outcome) in slots.into_iter().zip(ids).zip(outcomes) {
            let mut r = EventResult::from_outcome(&id, &outcome);
            if let Some(p) = r.problem.as_mut() {
                p.field = p.field.take().map(|f| format!("{slot}/{f}"));
            }
            results[slot] = Some(r);
        }
    }
    let results: Vec<EventResult> = results.into_iter().flatten().collect();
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    Ok(Json(BatchOut {
        accepted: count("accepted"),
        duplicate: count("duplicate"),
        conflict: count("conflict"),
        rejected: count("rejected"),
        results,
    }))
}

/// An item that could not be parsed: its raw event id and the problem.
type ItemRejection = Box<(String, Problem)>;

/// The items of a batch body, each still raw: a JSON array, or one JSON
/// value per non-blank NDJSON line.
pub(crate) fn split_batch(bytes: &[u8], ndjson: bool) -> Result<Vec<&RawValue>, Box<Problem>> {
    if ndjson {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "malformed_json", "the body is not UTF-8"))?;
        let lines = text.lines().filter(|l| !l.trim().is_empty());
        lines
            .enumerate()
            .map(|(i, line)| parse_json(line.as_bytes()).map_err(|p| Box::new(p.with_field(format!("{i}")))))
            .collect()
    } else {
        parse_json(bytes)
    }
}

pub(crate) fn parse_item(site: &SiteId, item: &RawValue) -> Result<Event, ItemRejection> {
    if let Err(problem) = crate::body::check_no_nul(item.get().as_bytes()) {
        let raw_id = serde_json::from_str::<serde_json::Value>(item.get())
            .ok()
            .and_then(|v| v.get("event_id").and_then(|id| id.as_str()).map(str::to_owned))
            .unwrap_or_default();
        return Err(Box::new((raw_id, *problem)));
    }
    // The fast path parses without tracking where it is; only a failure is
    // parsed again to name the offending field.
    let input: EventIn = match serde_json::from_str(item.get()) {
        Ok(input) => input,
        Err(_) => {
            let raw_id = serde_json::from_str::<serde_json::Value>(item.get())
                .ok()
                .and_then(|v| v.get("event_id").and_then(|id| id.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let de = &mut serde_json::Deserializer::from_str(item.get());
            let e = match serde_path_to_error::deserialize::<_, EventIn>(de) {
                Ok(_) => {
                    return Err(Box::new((
                        raw_id,
                        Problem::new(
                            StatusCode::BAD_REQUEST,
                            "malformed_json",
                            "the item is not a valid event",
                        ),
                    )));
                }
                Err(e) => e,
            };
            let path = e.path().to_string().replace('.', "/");
            return Err(Box::new((
                raw_id,
                Problem::new(StatusCode::BAD_REQUEST, "malformed_json", e.into_inner().to_string()).with_field(path),
            )));
        }
    };
    let raw_id = input.event_id.clone().unwrap_or_default();
    let id = input
        .event_id
        .clone()
        .ok_or_else(|| xuefen_core::FieldError::new("event_id", "is required in a batch"))
        .and_then(EventId::parse_input)
        .map_err(|e| Box::new((raw_id.clone(), Problem::invalid(&e))))?;
    let body = input
        .parse_body()
        .map_err(|e| Box::new((raw_id.clone(), Problem::invalid(&e))))?;
    Ok(Event {
        site: site.clone(),
        id,
        body,
    })
}

// ------------------------------------------------------------------ transcript

/// A learner's transcript: totals by year, category and site over the whole
/// history, and a page of entries with their status and ledger position.
/// For the admin and for sites that have linked or credited the learner.
#[utoipa::path(get, path = "/v1/learners/{learner_id}/transcript", operation_id = "get_transcript", tag = "learners",
    security(("api_key" = [])),
    params(("learner_id" = String, Path),
           ("after" = Option<String>, Query, description = "cursor: `next_after` of the previous page"),
           ("limit" = Option<u32>, Query, description = "lines per page, 1 to 500 (default 100)"),
           ("year" = Option<i32>, Query, description = "only the lines (and totals) of this calendar year, China Standard Time"),
           ("category" = Option<String>, Query, description = "only the lines (and totals) of this category"),
           ("site" = Option<String>, Query, description = "only the lines (and totals) of this site (its id)")),
    responses((status = 200, body = TranscriptOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn get_transcript(
    State(state): State<AppState>,
    caller: Caller,
    Path(learner): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<TranscriptOut>> {
    caller.refuse_bank()?;
    let learner = path_id(|v| LearnerId::parse_as(v, "learner_id"), learner)?;
    let page = Page::parse(query.as_deref())?;
    if !state.store.learner_exists(&learner).await? {
        return Err(xuefen_store::StoreError::NotFound.into());
    }
    if let Principal::Site(site) = &caller.principal
        && !state.store.site_knows_learner(site, &learner).await?
    {
        return Err(forbidden("a site reads only the transcripts of learners it has linked or credited").into());
    }
    Ok(Json(transcript_page(&state, &learner, page).await?))
}

/// The signed-in learner's own transcript (bearer token of the province's
/// single sign-on), paged like the admin's view.
#[utoipa::path(get, path = "/v1/me/transcript", operation_id = "get_my_transcript", tag = "learners",
    security(("sso" = [])),
    params(("after" = Option<String>, Query, description = "cursor: `next_after` of the previous page"),
           ("limit" = Option<u32>, Query, description = "lines per page, 1 to 500 (default 100)"),
           ("year" = Option<i32>, Query, description = "only the lines (and totals) of this calendar year, China Standard Time"),
           ("category" = Option<String>, Query, description = "only the lines (and totals) of this category"),
           ("site" = Option<String>, Query, description = "only the lines (and totals) of this site (its id)")),
    responses((status = 200, body = TranscriptOut), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn get_my_transcript(
    State(state): State<AppState>,
    SignedInLearner(learner): SignedInLearner,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<TranscriptOut>> {
    let page = Page::parse(query.as_deref())?;
    if !state.store.learner_exists(&learner).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_learner",
            "no learner is registered under the token's subject",
        )
        .into());
    }
    Ok(Json(transcript_page(&state, &learner, page).await?))
}

/// `?after=CHAIN:SEQ&limit=N&year=Y&category=C&site=S`, parsed.
pub(crate) struct Page {
    after_seq: u64,
    pub(crate) limit: usize,
    filter: Filter,
}

impl Page {
    pub(crate) fn parse(query: Option<&str>) -> ApiResult<Self> {
        let mut page = Page {
            after_seq: 0,
            limit: crate::PAGE_SIZE_DEFAULT,
            filter: Filter::default(),
        };
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace("%3A", ":").replace("%3a", ":");
            match name {
                "after" => {
                    let seq = value.split_once(':').and_then(|(chain, seq)| {
                        chain.parse::<u32>().ok()?;
                        seq.parse::<u64>().ok()
                    });
                    page.after_seq = seq.ok_or_else(|| {
                        Problem::invalid(&xuefen_core::FieldError::new(
                            "after",
                            "must be a ledger position `CHAIN:SEQ`, as `next_after` gives it",
                        ))
                    })?;
                }
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=crate::PAGE_SIZE_MAX).contains(n))
                        .ok_or_else(|| {
                            Problem::invalid(&xuefen_core::FieldError::new(
                                "limit",
                                format!("must be a whole number from 1 to {}", crate::PAGE_SIZE_MAX),
                            ))
                        })?;
                }
                "year" => {
                    let year = value.parse::<i32>().ok().filter(|y| (1900..=9999).contains(y));
                    page.filter.year = Some(year.ok_or_else(|| {
                        Problem::invalid(&xuefen_core::FieldError::new(
                            "year",
                            "must be a calendar year, four digits",
                        ))
                    })?);
                }
                "category" => {
                    let category = Category::parse_as(value, "category").map_err(|e| Problem::invalid(&e))?;
                    page.filter.category = Some(category.as_str().to_owned());
                }
                "site" => {
                    let site = SiteId::parse_as(value, "site").map_err(|e| Problem::invalid(&e))?;
                    page.filter.site = Some(site.as_str().to_owned());
                }
                other => {
                    return Err(Problem::invalid(&xuefen_core::FieldError::new(
                        other.to_owned(),
                        "is not a parameter of this operation (after, limit, year, category, site)",
                    ))
                    .into());
                }
            }
        }
        Ok(page)
    }
}

pub(crate) async fn transcript_page(state: &AppState, learner: &LearnerId, page: Page) -> ApiResult<TranscriptOut> {
    // Reads the learner's entries in ledger order until one more listed line
    // than asked (which tells whether another page follows) or the end. The
    // bank's acknowledgements and lines outside the filter are skipped, so a
    // page may take more than one read; each read moves forward, so the loop
    // ends within the learner's history.
    let chunk = page.limit + 1;
    let mut entries: Vec<Entry> = Vec::with_capacity(chunk);
    let mut after = page.after_seq;
    loop {
        let read = state.store.learner_entries_page(learner, after, chunk).await?;
        let exhausted = read.len() < chunk;
        let Some(last) = read.last() else { break };
        after = last.position.seq;
        entries.extend(read.into_iter().filter(|e| page.filter.matches(e)));
        if exhausted || entries.len() > page.limit {
            break;
        }
    }
    let more = entries.len() > page.limit;
    entries.truncate(page.limit);
    let (rows, referred) = state.store.learner_summary(learner).await?;
    let rows: Vec<_> = rows.into_iter().filter(|r| page.filter.matches_row(r)).collect();
    let totals = totals_from_rows(&rows);

    // Titles and names, one read per site and per course shown.
    let mut site_names = std::collections::BTreeMap::new();
    let sites = totals
        .by_site
        .keys()
        .cloned()
        .chain(entries.iter().map(|e| e.body.site.as_str().to_owned()))
        .collect::<std::collections::BTreeSet<_>>();
    for id in sites {
        let site = SiteId::parse(id.clone()).map_err(|e| Problem::invalid(&e))?;
        if let Some(site) = state.store.site(&site).await? {
            site_names.insert(id, site.name);
        }
    }
    let mut titles = std::collections::HashMap::new();
    for e in &entries {
        let key = (e.body.site.clone(), e.body.course.clone());
        if let std::collections::hash_map::Entry::Vacant(slot) = titles.entry(key) {
            let (site, course) = slot.key();
            let title = state.store.course(site, course).await?.map(|c| c.title);
            slot.insert(title);
        }
    }

    let s = |m: std::collections::BTreeMap<String, xuefen_core::amount::Credits>| {
        m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
    };
    Ok(TranscriptOut {
        learner_id: learner.to_string(),
        totals: TotalsOut {
            total: totals.total.to_string(),
            by_year: totals
                .by_year
                .into_iter()
                .map(|(y, c)| (y.to_string(), c.to_string()))
                .collect(),
            by_category: s(totals.by_category),
            by_site: s(totals.by_site),
        },
        next_after: if more {
            entries.last().map(|e| e.position.to_string())
        } else {
            None
        },
        entries: entries
            .iter()
            .map(|e| {
                let mut line = EntryOut::new(e, Some(status_of(e, &referred).as_str()));
                line.course_title = titles
                    .get(&(e.body.site.clone(), e.body.course.clone()))
                    .cloned()
                    .flatten();
                line.site_name = site_names.get(e.body.site.as_str()).cloned();
                line
            })
            .collect(),
        site_names,
    })
}

// ------------------------------------------------------------------ recognition groups and caps

/// Declares (or replaces) a recognition group of equivalent courses across
/// sites. A learner is credited once per group; later completions of any of
/// its courses are recorded as `recognised`. Entries already written keep
/// the group they were written with. Admin only.
#[utoipa::path(put, path = "/v1/recognition-groups/{group_id}", operation_id = "put_recognition_group", tag = "courses",
    security(("api_key" = [])), params(("group_id" = String, Path)), request_body = GroupIn,
    responses((status = 201, body = GroupOut), (status = 200, body = GroupOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_group(
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
        if state.store.site(site).await?.is_none() {
            let i = input
                .courses
                .iter()
                .position(|c| c.site_id == site.as_str())
                .unwrap_or_default();
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_site",
                format!("there is no site `{site}`"),
            )
            .with_field(format!("courses/{i}/site_id"))
            .into());
        }
    }
    let (written, declared) = state.store.put_group(&group, now()).await.map_err(|e| match e {
        xuefen_store::StoreError::Conflict(detail) => {
            ApiError::from(Problem::new(StatusCode::CONFLICT, "course_in_another_group", detail).with_field("courses"))
        }
        e => e.into(),
    })?;
    tracing::info!(group.id = %group.id, group.courses = group.courses.len(), group.reversals = declared.len(), "recognition group set");
    let out = GroupOut {
        declared: declared.iter().map(crate::dto::DeclaredReversal::from_entry).collect(),
        ..GroupOut::from(&group)
    };
    Ok((status_for(written), Json(out)).into_response())
}

/// A recognition group and its courses. Any authenticated caller.
#[utoipa::path(get, path = "/v1/recognition-groups/{group_id}", operation_id = "get_recognition_group", tag = "courses",
    security(("api_key" = [])), params(("group_id" = String, Path)),
    responses((status = 200, body = GroupOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_group(
    State(state): State<AppState>,
    _caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<GroupOut>> {
    let id = path_id(|v| GroupId::parse_as(v, "group_id"), group_id)?;
    let group = state
        .store
        .group(&id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(GroupOut::from(&group)))
}

/// Every annual category cap. Any authenticated caller.
#[utoipa::path(get, path = "/v1/caps", operation_id = "list_caps", tag = "courses",
    security(("api_key" = [])), responses((status = 200, body = Vec<CapOut>)))]
pub async fn list_caps(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<CapOut>>> {
    let caps = state.store.caps().await?;
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
pub async fn put_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(category): Path<String>,
    ApiJson(input): ApiJson<CapIn>,
) -> ApiResult<Json<CapOut>> {
    caller.require_admin()?;
    let category = path_id(|v| Category::parse_as(v, "category"), category)?;
    let cap = input.parse()?;
    state.store.set_cap(&category, Some(cap)).await?;
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
pub async fn delete_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(category): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let category = path_id(|v| Category::parse_as(v, "category"), category)?;
    state.store.set_cap(&category, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ statistics

/// `?year=YYYY`, 2000 to 2100; without it, the current year in China
/// Standard Time (the agreement year the centre reads).
pub(crate) fn stats_year(query: Option<&str>) -> ApiResult<i32> {
    let bad = || {
        ApiError::from(Problem::invalid(&xuefen_core::FieldError::new(
            "year",
            "give `?year=YYYY`, a calendar year from 2000 to 2100 (or leave it out for this year)",
        )))
    };
    let mut year = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("year", v)) => {
                year = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|y| (2000..=2100).contains(y))
                        .ok_or_else(bad)?,
                )
            }
            _ => {
                let name = pair.split('=').next().unwrap_or_default().to_owned();
                return Err(Problem::invalid(&xuefen_core::FieldError::new(
                    name,
                    "is not a parameter of this operation (year)",
                ))
                .into());
            }
        }
    }
    Ok(year.unwrap_or_else(|| now().year_cst()))
}

/// One site's alliance statistics for a year, and how it stands against
/// the agreement figures.
///
/// Roles: admin; site (its own only). Not the credit bank.
#[utoipa::path(get, path = "/v1/sites/{site_id}/stats", operation_id = "get_site_stats", tag = "sites",
    security(("api_key" = [])),
    params(("site_id" = String, Path), ("year" = Option<i32>, Query, description = "calendar year (China Standard Time); default: the current year")),
    responses((status = 200, body = SiteStatsOut), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn get_site_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<SiteStatsOut>> {
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    caller.require_admin_or_site(&id, "statistics")?;
    let year = stats_year(query.as_deref())?;
    let rows = state.store.site_year_stats(Some(&id), year, state.stats.rule).await?;
    let row = rows.first().ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(SiteStatsOut::new(row, year, &state.stats)))
}

/// Every site's alliance statistics for a year, in site order. Admin only.
#[utoipa::path(get, path = "/v1/stats", operation_id = "list_stats", tag = "sites",
    security(("api_key" = [])),
    params(("year" = Option<i32>, Query, description = "calendar year (China Standard Time); default: the current year")),
    responses((status = 200, body = Vec<SiteStatsOut>), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_stats(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<SiteStatsOut>>> {
    caller.require_admin()?;
    let year = stats_year(query.as_deref())?;
    let rows = state.store.site_year_stats(None, year, state.stats.rule).await?;
    Ok(Json(
        rows.iter().map(|r| SiteStatsOut::new(r, year, &state.stats)).collect(),
    ))
}
