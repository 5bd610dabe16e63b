//! The xAPI door: a Learning Record Store (xAPI 1.0.3 and 2.0.0) on the
//! same ledger as the native API, so that a site's LMS can point its xAPI
//! plug-in at Xuefen instead of writing a client.
//!
//! - `/xapi/statements`: `PUT ?statementId=`, `POST` (one statement or an
//!   array), `GET` by id or by query; `/xapi/about` lists the versions.
//! - HTTP Basic authentication: the site id and one of the site's API keys.
//!   The LRS sets each statement's `authority` to the site.
//! - A statement id is the ledger's event id for the site. Every statement
//!   is validated first ([`xuefen_core::xapi::prepare`]); then the ledger
//!   events of the request go to the group committer as one submission
//!   (`completed`/`passed` statements of a linked learner about a course
//!   with an activity IRI become completions; voiding statements of a
//!   credited statement become revocations); then the statements are stored
//!   in one transaction. A re-send repeats both steps idempotently, so a
//!   request that failed between them is repaired by sending it again.
//! - Statements are returned exactly as stored.
//!
//! Errors are problem details with status 400 (not 422, as the
//! specification requires), the rule broken as `code` and the offending
//! member as `field`.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha1::Digest as _;
use utoipa::ToSchema;
use xuefen_core::amount::Score;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};
use xuefen_core::limits::SCORE_MAX_CENTS;
use xuefen_core::plan::Outcome;
use xuefen_core::xapi::{self as core, Ifi, Prepared, StatementError, Version};
use xuefen_store::{NewStatement, StatementQuery, StoreError, Written};

use crate::AppState;

mod alternate;
pub mod documents;
use crate::auth::{Caller, authenticate};
use crate::body::{ApiJson, read_body};
use crate::problem::{ApiError, ApiResult, Problem};

/// The header that names the xAPI version of a request and a response.
pub const VERSION_HEADER: &str = "x-experience-api-version";
/// The header that says up to when the statement query is complete.
pub const CONSISTENT_THROUGH_HEADER: &str = "x-experience-api-consistent-through";
/// The account home page of a site that declared none.
pub const DEFAULT_HOME_PAGE_PREFIX: &str = "https://xuefen.invalid/sites/";

pub fn routes() -> Router<AppState> {
    let lrs = Router::new()
        .route(
            "/xapi/statements",
            put(put_statement).post(post_statements).get(get_statements),
        )
        .route("/xapi/about", get(get_about))
        .route(
            "/xapi/activities/state",
            get(documents::state_resource)
                .put(documents::put_xapi_state)
                .post(documents::post_xapi_state)
                .delete(documents::delete_xapi_state),
        )
        .route(
            "/xapi/activities/profile",
            get(documents::activity_profile_resource)
                .put(documents::put_xapi_activity_profile)
                .post(documents::post_xapi_activity_profile)
                .delete(documents::delete_xapi_activity_profile),
        )
        .route(
            "/xapi/agents/profile",
            get(documents::agent_profile_resource)
                .put(documents::put_xapi_agent_profile)
                .post(documents::post_xapi_agent_profile)
                .delete(documents::delete_xapi_agent_profile),
        )
        .route("/xapi/activities", get(documents::get_activity))
        .route("/xapi/agents", get(documents::get_agents))
        .route_layer(axum::middleware::from_fn(xapi_headers))
        .layer(axum::middleware::from_fn(alternate::alternate_request_syntax));
    Router::new()
        .merge(lrs)
        .route("/v1/xapi/profile", put(put_profile).get(get_profile))
        .route("/v1/xapi/accounts/{local_account}", put(put_mbox_link))
        .route("/v1/xapi/documents", get(documents::get_document_usage))
}

fn bad(e: StatementError) -> ApiError {
    let p = Problem::new(StatusCode::BAD_REQUEST, e.rule, e.detail);
    if e.field.is_empty() {
        p.into()
    } else {
        p.with_field(e.field).into()
    }
}

fn bad_request(code: &str, field: &str, detail: impl Into<String>) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
        .with_field(field)
        .into()
}

// ------------------------------------------------------------------ headers

/// Checks `X-Experience-API-Version` on every request but `/xapi/about`,
/// and puts it (echoed, or the newest version) and
/// `X-Experience-API-Consistent-Through` on every response.
/// Whether the xAPI resource at `path` answers `method` (the router says
/// 405 to the others).
fn resource_has_method(path: &str, method: &axum::http::Method) -> bool {
    use axum::http::Method;
    let read = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/xapi/about" | "/xapi/activities" | "/xapi/agents" => read,
        "/xapi/statements" => read || *method == Method::PUT || *method == Method::POST,
        "/xapi/activities/state" | "/xapi/activities/profile" | "/xapi/agents/profile" => {
            read || *method == Method::PUT || *method == Method::POST || *method == Method::DELETE
        }
        _ => read || *method == Method::PUT || *method == Method::POST,
    }
}

async fn xapi_headers(req: Request, next: Next) -> Response {
    let about = req.uri().path() == "/xapi/about";
    // A method the resource does not have is answered 405 by the router,
    // before credentials or the version are looked at.
    if !resource_has_method(req.uri().path(), req.method()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    // A request without credentials is told so first, whatever its version.
    if !about && !req.headers().contains_key(axum::http::header::AUTHORIZATION) {
        return with_xapi_headers(
            crate::auth::unauthorized("send the site id and an API key with HTTP Basic authentication").into_response(),
            &Version::V2,
        );
    }
    let version = match (given.as_deref().map(Version::parse), about) {
        (Some(Some(v)), _) => v,
        (None, true) | (Some(None), true) => Version::V2,
        (None, false) => {
            return with_xapi_headers(
                bad_request(
                    "version_header_required",
                    VERSION_HEADER,
                    "send `X-Experience-API-Version: 1.0.3` (or 2.0.0) with every xAPI request",
                )
                .into_response(),
                &Version::V2,
            );
        }
        (Some(None), false) => {
            return with_xapi_headers(
                bad_request(
                    "version_unsupported",
                    VERSION_HEADER,
                    format!(
                        "`{}` is not a supported xAPI version ({})",
                        given.unwrap_or_default(),
                        Version::SUPPORTED.join(", ")
                    ),
                )
                .into_response(),
                &Version::V2,
            );
        }
    };
    let mut req = req;
    req.extensions_mut().insert(version.clone());
    with_xapi_headers(next.run(req).await, &version)
}

fn with_xapi_headers(mut resp: Response, version: &Version) -> Response {
    let unauthorized = resp.status() == StatusCode::UNAUTHORIZED;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(version.as_str()) {
        h.insert(VERSION_HEADER, v);
    }
    // Every statement acknowledged before this instant is visible to the
    // query: a PUT or POST answers only after its statements committed.
    if let Ok(v) = HeaderValue::from_str(&now().to_rfc3339()) {
        h.insert(CONSISTENT_THROUGH_HEADER, v);
    }
    if unauthorized {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"xuefen-xapi\""),
        );
    }
    resp
}

fn now() -> Millis {
    Millis::from_datetime(time::OffsetDateTime::now_utc())
}

fn version_of(req_version: Option<&Version>) -> Version {
    req_version.cloned().unwrap_or(Version::V2)
}

// ------------------------------------------------------------------ auth

/// A site authenticated with HTTP Basic: user name the site id, password
/// one of the site's API keys.
pub struct XapiSite {
    pub site: SiteId,
    pub caller: Caller,
}

impl axum::extract::FromRequestParts<AppState> for XapiSite {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = crate::auth::unauthorized;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send `Authorization: Basic` with the site id and one of its API keys"))?;
        let encoded = value
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Basic "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the xAPI door takes `Authorization: Basic <site id:API key>`"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("the Basic credentials are not base64 of `site id:API key`"))?;
        let (user, secret) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("the Basic credentials are not `site id:API key`"))?;
        let caller = authenticate(state, secret).await?;
        match &caller.principal {
            xuefen_store::Principal::Site(site) if site.as_str() == user => Ok(Self {
                site: site.clone(),
                caller,
            }),
            _ => Err(unauthorized("the API key is not a key of the site named as user")),
        }
    }
}

/// The site's account home page, and its `authority` Agent as JSON.
async fn home_page(state: &AppState, site: &SiteId) -> ApiResult<String> {
    Ok(state
        .store
        .xapi_home_page(site)
        .await?
        .unwrap_or_else(|| format!("{DEFAULT_HOME_PAGE_PREFIX}{site}")))
}

fn authority(home_page: &str, site: &SiteId) -> String {
    serde_json::json!({
        "objectType": "Agent",
        "name": site.as_str(),
        "account": {"homePage": home_page, "name": site.as_str()},
    })
    .to_string()
}

// ------------------------------------------------------------------ about

/// The versions this LRS speaks. Unauthenticated.
#[utoipa::path(get, path = "/xapi/about", operation_id = "get_xapi_about", tag = "xapi",
    responses((status = 200, body = AboutOut)))]
pub async fn get_about() -> axum::Json<AboutOut> {
    axum::Json(AboutOut {
        version: Version::SUPPORTED.iter().map(|v| (*v).to_owned()).collect(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AboutOut {
    /// Every xAPI version the door answers to.
    pub version: Vec<String>,
}

// ------------------------------------------------------------------ writing

/// Stores one statement under `statementId`. 204 when stored, and for an
/// identical re-send (which writes nothing); 409 when another statement is
/// stored under the id.
#[utoipa::path(put, path = "/xapi/statements", operation_id = "put_xapi_statement", tag = "xapi",
    security(("basic" = [])),
    params(("statementId" = String, Query, description = "the statement's id (UUID)"),
           ("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
    request_body(content = Object, description = "one xAPI statement"),
    responses((status = 204, description = "stored, or already stored identically"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn put_statement(State(state): State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
    let site = auth.caller.require_posting_site()?.clone();
    let params = query_pairs(req.uri())?;
    let version = version_of(req.extensions().get::<Version>());
    let mut statement_id = None;
    for (name, value) in params {
        match name.as_str() {
            "statementId" => statement_id = Some(value),
            other => {
                return Err(bad_request(
                    "unknown_parameter",
                    other,
                    "PUT /xapi/statements takes `statementId` only",
                ));
            }
        }
    }
    let statement_id =
        statement_id.ok_or_else(|| bad_request("statement_id_required", "statementId", "PUT needs `?statementId=`"))?;
    let statement_id = core::check_uuid(&statement_id, "statementId").map_err(bad)?;
    let headers = req.headers().clone();
    let (bytes, parts) = statement_body(&state, &headers, req).await?;
    let raw: &RawValue = serde_json::from_slice(&bytes)
        .map_err(|e| bad_request("malformed_json", "/", format!("the body is not JSON: {e}")))?;
    if raw.get().trim_start().starts_with('[') {
        return Err(bad_request(
            "statement_not_object",
            "/",
            "PUT takes one statement, not an array",
        ));
    }
    check_attachments(&state, &site, &[raw], &parts).await?;
    let written = write_statements(&state, &site, &version, &[raw], Some(&statement_id)).await?;
    tracing::info!(site.id = %site, statements = written.len(), "xAPI statement put");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Stores one statement or an array of them, all or nothing, and answers
/// their ids in order. Identical re-sends write nothing; a statement id
/// stored with other content is a 409, a repeated id within the request a
/// 400.
#[utoipa::path(post, path = "/xapi/statements", operation_id = "post_xapi_statements", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
    request_body(content = Object, description = "one xAPI statement, or an array of them"),
    responses((status = 200, body = Vec<String>, description = "the statement ids, in order"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json")))]
pub async fn post_statements(
    State(state): State<AppState>,
    auth: XapiSite,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    // The Alternate Request Syntax rewrote the method after routing.
    match req.method().clone() {
        axum::http::Method::POST => {}
        axum::http::Method::GET => {
            let uri = req.uri().clone();
            return get_statements(State(state), auth, headers, uri).await;
        }
        axum::http::Method::PUT => return put_statement(State(state), auth, req).await,
        _ => {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the statements resource takes GET, PUT and POST",
            )
            .into());
        }
    }
    let site = auth.caller.require_posting_site()?.clone();
    let version = version_of(req.extensions().get::<Version>());
    let (json, parts) = statement_body(&state, &headers, req).await?;
    let text = std::str::from_utf8(&json).map_err(|_| bad_request("malformed_json", "/", "the body is not UTF-8"))?;
    let items: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
            .map_err(|e| bad_request("malformed_json", "/", format!("the body is not JSON: {e}")))?
    } else {
        vec![
            serde_json::from_str(text)
                .map_err(|e| bad_request("malformed_json", "/", format!("the body is not JSON: {e}")))?,
        ]
    };
    check_attachments(&state, &site, &items, &parts).await?;
    let ids = write_statements(&state, &site, &version, &items, None).await?;
    tracing::info!(site.id = %site, statements = ids.len(), "xAPI statements posted");
    Ok(axum::Json(ids.into_iter().map(|(id, _)| id).collect::<Vec<String>>()).into_response())
}

/// The statements' JSON of a request, and its attachment parts: the body
/// itself for `application/json`, the first part and the others for
/// `multipart/mixed` (each part's hash checked). Other multipart types are
/// refused.
async fn statement_body(
    state: &AppState,
    headers: &HeaderMap,
    req: Request,
) -> ApiResult<(Vec<u8>, Vec<core::attachments::Part>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Ok((read_body(req, state).await?.to_vec(), Vec::new()));
    }
    let boundary = core::attachments::boundary(&content_type).ok_or_else(|| {
        bad_request(
            "multipart_type_unsupported",
            "Content-Type",
            "statements with attachments are multipart/mixed with a boundary",
        )
    })?;
    let bytes = documents::read_document_body(req, state).await?;
    core::attachments::parse(&bytes, &boundary).map_err(bad)
}

/// Checks the statements' attachments against the parts (every attachment
/// without `fileUrl` has its part, every part its attachment, signatures
/// are JWS of their statement), then stores the parts' bytes.
async fn check_attachments(
    state: &AppState,
    site: &SiteId,
    items: &[&RawValue],
    parts: &[core::attachments::Part],
) -> ApiResult<()> {
    if parts.is_empty() && !items.iter().any(|i| i.get().contains("\"attachments\"")) {
        return Ok(());
    }
    let values: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::from_str(i.get()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad_request("malformed_json", "/", format!("the body is not JSON: {e}")))?;
    core::attachments::check(&values, parts).map_err(bad)?;
    // Stored first and by hash: a statement refused later leaves bytes no
    // statement names, never a statement without its bytes.
    state.store.put_attachments(site, parts).await?;
    Ok(())
}

/// A fresh random UUID (version 4) for a statement sent without an id.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Validates, credits and stores the statements of one request: all of
/// them, or none (see the module docs for the order of the writes).
async fn write_statements(
    state: &AppState,
    site: &SiteId,
    version: &Version,
    items: &[&RawValue],
    put_id: Option<&str>,
) -> ApiResult<Vec<(String, Written)>> {
    let limit = state.limits.batch_events_max;
    if items.len() > limit {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_long",
            format!(
                "the request has {} statements; at most {limit} are allowed (batch_events_max)",
                items.len()
            ),
        )
        .into());
    }
    if items.is_empty() {
        return Err(bad_request("batch_empty", "/", "the request has no statements"));
    }
    let home = home_page(state, site).await?;
    let authority = authority(&home, site);
    let stored = now();
    let many = put_id.is_none() && items.len() > 1;
    let at = |i: usize, e: StatementError| if many { e.within(&i.to_string()) } else { e };
    let mut prepared = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fresh = put_id.map_or_else(new_uuid, str::to_owned);
        let stamp = core::Stamp {
            version,
            authority: &authority,
            stored,
            id_if_absent: &fresh,
        };
        let p = core::prepare(item.get(), &stamp).map_err(|e| bad(at(i, e)))?;
        if let Some(id) = put_id
            && p.id != id
        {
            return Err(bad_request(
                "statement_id_mismatch",
                "id",
                "the statement's id differs from `statementId`",
            ));
        }
        prepared.push(p);
    }
    let mut seen = HashSet::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        if !seen.insert(p.id.as_str()) {
            return Err(bad(at(
                i,
                StatementError::new(
                    "duplicate_statement_id",
                    "id",
                    format!("the id {} appears twice in the request", p.id),
                ),
            )));
        }
    }
    check_stored(state, site, &prepared, &at).await?;
    let ledger = ledger_entries(state, site, &prepared).await?;
    let events = ledger_events(state, site, &home, &prepared, &ledger).await?;
    if !events.is_empty() {
        check_ledger(&prepared, &events, &ledger, &at)?;
        submit(state, &prepared, events, &at).await?;
    }
    let rows: Vec<NewStatement> = prepared
        .iter()
        .map(|p| {
            let (related_agents, related_activities) = serde_json::from_str(&p.json)
                .map(|v| core::related::related(&v))
                .unwrap_or_default();
            (p, related_agents, related_activities)
        })
        .map(|(p, related_agents, related_activities)| NewStatement {
            id: p.id.clone(),
            json: p.json.clone(),
            fingerprint: p.fingerprint.clone(),
            verb: p.verb.clone(),
            activity: p.activity.clone(),
            agent: p.agent_key(),
            registration: p.registration.clone(),
            voids: p.voids.clone(),
            stored,
            related_agents,
            related_activities,
        })
        .collect();
    let written = state.store.insert_statements(site, &rows).await.map_err(|e| match e {
        StoreError::Conflict(id) => conflict(&prepared, &id, &at),
        e => e.into(),
    })?;
    let activities: Vec<(String, String)> = prepared
        .iter()
        .zip(&written)
        .filter(|(_, w)| **w == Written::Created)
        .filter_map(|(p, _)| activity_object(&p.json))
        .collect();
    state.store.merge_activities(site, &activities).await?;
    Ok(prepared.into_iter().map(|p| p.id).zip(written).collect())
}

/// The statement's object when it is an Activity: (id, the object's JSON),
/// what the Activities resource folds into its canonical Activity Object.
fn activity_object(json: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Outer<'a> {
        #[serde(borrow)]
        object: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Object {
        #[serde(rename = "objectType")]
        object_type: Option<String>,
        id: Option<String>,
    }
    let outer: Outer<'_> = serde_json::from_str(json).ok()?;
    let object: Object = serde_json::from_str(outer.object.get()).ok()?;
    match object.object_type.as_deref() {
        None | Some("Activity") => Some((object.id?, outer.object.get().to_owned())),
        Some(_) => None,
    }
}

fn conflict(
    prepared: &[Prepared],
    id: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let i = prepared.iter().position(|p| p.id == id).unwrap_or_default();
    let e = at(
        i,
        StatementError::new(
            "statement_conflict",
            "id",
            format!("another statement is stored under the id {id}"),
        ),
    );
    Problem::new(StatusCode::CONFLICT, e.rule, e.detail)
        .with_field(e.field)
        .into()
}

/// Refuses the request before anything is written when a statement id is
/// stored with other content, or a voiding statement targets a voiding
/// statement.
async fn check_stored(
    state: &AppState,
    site: &SiteId,
    prepared: &[Prepared],
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    let mut ids: Vec<String> = prepared.iter().map(|p| p.id.clone()).collect();
    ids.extend(prepared.iter().filter_map(|p| p.voids.clone()));
    let stored = state.store.statements_by_ids(site, &ids).await?;
    let by_id: HashMap<&str, &xuefen_store::StatementRow> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    let in_request: HashMap<&str, &Prepared> = prepared.iter().map(|p| (p.id.as_str(), p)).collect();
    for (i, p) in prepared.iter().enumerate() {
        if by_id.get(p.id.as_str()).is_some_and(|r| r.fingerprint != p.fingerprint) {
            return Err(conflict(prepared, &p.id, at));
        }
        if let Some(target) = &p.voids {
            let target_verb = by_id
                .get(target.as_str())
                .map(|r| r.verb.as_str())
                .or_else(|| in_request.get(target.as_str()).map(|t| t.verb.as_str()));
            if target_verb == Some(core::VERB_VOIDED) {
                return Err(bad(at(
                    i,
                    StatementError::new(
                        "voiding_a_voiding_statement",
                        "object/id",
                        "a voiding statement cannot void another voiding statement",
                    ),
                )));
            }
        }
    }
    Ok(())
}

/// The ledger entries, by event id, already under the request's statement
/// ids and under the targets of its voiding statements (one read): what
/// voiding reverses, and what the request must not contradict.
async fn ledger_entries(state: &AppState, site: &SiteId, prepared: &[Prepared]) -> ApiResult<HashMap<EventId, Entry>> {
    let ids: Vec<EventId> = prepared
        .iter()
        .flat_map(|p| std::iter::once(&p.id).chain(p.voids.as_ref()))
        .filter_map(|id| EventId::parse(id.clone()).ok())
        .collect();
    let entries = state.store.entries_by_events(site, &ids).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.body.kind.owns_key())
        .map(|e| (e.body.event_id.clone(), e))
        .collect())
}

/// The ledger events of the request: completions of linked learners on
/// courses with an activity IRI, and revocations of credited statements
/// that a statement voids.
async fn ledger_events(
    state: &AppState,
    site: &SiteId,
    home: &str,
    prepared: &[Prepared],
    ledger: &HashMap<EventId, Entry>,
) -> ApiResult<Vec<(usize, Event)>> {
    let creditable: Vec<&Prepared> = prepared.iter().filter(|p| p.is_creditable_verb()).collect();
    let mut activities: Vec<String> = creditable.iter().filter_map(|p| p.activity.clone()).collect();
    activities.sort();
    activities.dedup();
    let courses: HashMap<String, CourseCode> = if activities.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .activity_courses(site, &activities)
            .await?
            .into_iter()
            .collect()
    };
    let mut sums: Vec<String> = creditable
        .iter()
        .filter(|p| p.activity.as_ref().is_some_and(|a| courses.contains_key(a)))
        .filter_map(|p| mbox_sha1sum(p.actor.as_ref()?))
        .collect();
    sums.sort();
    sums.dedup();
    let accounts: HashMap<String, LocalAccount> = if sums.is_empty() {
        HashMap::new()
    } else {
        state.store.mbox_accounts(site, &sums).await?.into_iter().collect()
    };
    let mut events = Vec::new();
    let mut credited: HashSet<&str> = HashSet::new();
    for (i, p) in prepared.iter().enumerate() {
        if let Some(event) = completion(site, home, p, &courses, &accounts) {
            credited.insert(p.id.as_str());
            events.push((i, event));
        }
    }
    for (i, p) in prepared.iter().enumerate() {
        let Some(target) = &p.voids else { continue };
        let Ok(target_id) = EventId::parse(target.clone()) else {
            continue;
        };
        if !credited.contains(target.as_str()) && !ledger.contains_key(&target_id) {
            continue;
        }
        let Ok(id) = EventId::parse(p.id.clone()) else { continue };
        let Ok(reason) = Reason::parse(format!("voided by xAPI statement {}", p.id), "reason") else {
            continue;
        };
        events.push((
            i,
            Event {
                site: site.clone(),
                id,
                body: EventBody::Revocation(Revocation {
                    target: target_id,
                    code: Reason::code("xapi_voided", "reason_code").unwrap_or_default(),
                    reason,
                }),
            },
        ));
    }
    Ok(events)
}

/// The `mbox_sha1sum` of an actor named by `mbox_sha1sum` or by `mbox`.
fn mbox_sha1sum(actor: &Ifi) -> Option<String> {
    match actor {
        Ifi::MboxSha1(sum) => Some(sum.clone()),
        Ifi::Mbox(mbox) => Some(hex::encode(sha1::Sha1::digest(mbox.as_bytes()))),
        Ifi::OpenId(_) | Ifi::Account { .. } => None,
    }
}

/// The completion a statement is worth, if any: a creditable verb, an
/// actor that is one of the site's local accounts, an object that is one of
/// its courses. Credits then come from the course's rule alone.
fn completion(
    site: &SiteId,
    home: &str,
    p: &Prepared,
    courses: &HashMap<String, CourseCode>,
    accounts: &HashMap<String, LocalAccount>,
) -> Option<Event> {
    if !p.is_creditable_verb() {
        return None;
    }
    let course = courses.get(p.activity.as_ref()?)?.clone();
    let account = match p.actor.as_ref()? {
        Ifi::Account { home_page, name } if home_page.trim_end_matches('/') == home.trim_end_matches('/') => {
            LocalAccount::parse(name.clone()).ok()?
        }
        ifi => accounts.get(&mbox_sha1sum(ifi)?)?.clone(),
    };
    Some(Event {
        site: site.clone(),
        id: EventId::parse(p.id.clone()).ok()?,
        body: EventBody::Completion(Completion {
            course,
            learner: LearnerRef::Account(account),
            completed_at: p.timestamp,
            score: p
                .score_percent
                .and_then(|s| Score::parse(s, 0, SCORE_MAX_CENTS, "result/score").ok()),
            hours: None,
        }),
    })
}

/// Writes the ledger events as one submission. A statement whose event
/// the ledger rejects (an unlinked account, a date before the course was
/// offered, no score for a course with a pass mark) is still stored and
/// earns nothing; one whose id the ledger holds with other content (the
/// site used the id for a native event) fails the request with a 409.
async fn submit(
    state: &AppState,
    prepared: &[Prepared],
    events: Vec<(usize, Event)>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    let (slots, events): (Vec<usize>, Vec<Event>) = events.into_iter().unzip();
    let outcomes = state
        .committer
        .submit(events)
        .await
        .map_err(crate::commit::commit_error)?;
    for (slot, outcome) in slots.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted { .. } | Outcome::Duplicate { .. } => {}
            Outcome::Rejected(r) => {
                tracing::debug!(statement.id = %prepared[slot].id, reason = ?r, "statement earns nothing");
            }
            Outcome::Conflict { field, .. } => return Err(ledger_conflict(prepared, slot, field, at)),
        }
    }
    Ok(())
}

/// Refuses the request before anything is written when one of its events
/// is already in the ledger with other content (the site used the id for a
/// native event), so that the POST fails whole. The learner is compared by
/// the committer, which answers the same 409; only a concurrent native
/// event under the same id, or one differing in its learner alone, is
/// left to it, and then completions of the request that the ledger
/// accepted stay (their statements are stored by a corrected re-send).
fn check_ledger(
    prepared: &[Prepared],
    events: &[(usize, Event)],
    ledger: &HashMap<EventId, Entry>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    for (slot, event) in events {
        if let Some(entry) = ledger.get(&event.id)
            && let Some(field) = xuefen_core::plan::first_difference(event, &entry.body, |_| true)
        {
            return Err(ledger_conflict(prepared, *slot, field, at));
        }
    }
    Ok(())
}

fn ledger_conflict(
    prepared: &[Prepared],
    slot: usize,
    field: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let e = at(
        slot,
        StatementError::new(
            "statement_conflicts_with_ledger_event",
            "id",
            format!(
                "the ledger holds another event of this site under the id {} (it differs in `{field}`)",
                prepared[slot].id
            ),
        ),
    );
    Problem::new(StatusCode::CONFLICT, e.rule, e.detail)
        .with_field(e.field)
        .into()
}

// ------------------------------------------------------------------ reading

/// One statement by `statementId` (not voided) or `voidedStatementId`, or a
/// page of the site's statements, newest first, voided ones left out, with
/// a `more` link to the next page.
#[utoipa::path(get, path = "/xapi/statements", operation_id = "get_xapi_statements", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("statementId" = Option<String>, Query), ("voidedStatementId" = Option<String>, Query),
           ("agent" = Option<String>, Query, description = "an Agent as JSON: the statements it is the actor of"),
           ("verb" = Option<String>, Query), ("activity" = Option<String>, Query, description = "the object's activity IRI"),
           ("registration" = Option<String>, Query), ("since" = Option<String>, Query, description = "stored after"),
           ("until" = Option<String>, Query, description = "stored at or before"),
           ("limit" = Option<u32>, Query, description = "0 or absent: 100; at most 500"),
           ("ascending" = Option<bool>, Query), ("format" = Option<String>, Query, description = "exact (as stored), ids (identifiers only) or canonical (one language per map, by Accept-Language)"),
           ("related_agents" = Option<bool>, Query, description = "agent matches any agent the statement relates to"),
           ("related_activities" = Option<bool>, Query, description = "activity matches any activity the statement relates to"),
           ("attachments" = Option<bool>, Query), ("cursor" = Option<String>, Query, description = "opaque, from `more`")),
    responses((status = 200, body = StatementPageOut, description = "a statement, or a page of them"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_statements(
    State(state): State<AppState>,
    auth: XapiSite,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let site = auth.site;
    let params = query_pairs(&uri)?;
    let shape = answer_shape(&params, &headers)?;
    let mut seen = HashSet::new();
    for (name, _) in &params {
        if !seen.insert(name.as_str()) {
            return Err(bad_request("repeated_parameter", name, "a parameter may be given once"));
        }
    }
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    for single in ["statementId", "voidedStatementId"] {
        if let Some(id) = get(single) {
            let others = params
                .iter()
                .find(|(n, _)| !["statementId", "voidedStatementId", "format", "attachments"].contains(&n.as_str()));
            if let Some((other, _)) = others.or_else(|| {
                params
                    .iter()
                    .find(|(n, _)| n != single && ["statementId", "voidedStatementId"].contains(&n.as_str()))
            }) {
                return Err(bad_request(
                    "parameter_not_allowed",
                    other,
                    format!("`{single}` is given alone (with `format` and `attachments` at most)"),
                ));
            }
            return single_statement(&state, &site, id, single == "voidedStatementId", &shape).await;
        }
    }
    let query = parse_query(&params)?;
    // One more than asked tells whether another page follows.
    let fetch = StatementQuery {
        limit: query.limit + 1,
        ..query.clone()
    };
    let rows = state.store.query_statements(&site, &fetch).await?;
    let more = if rows.len() > query.limit {
        rows.get(query.limit - 1).map(|r| more_link(&params, r.seq))
    } else {
        None
    };
    let mut body = String::from("{\"statements\":[");
    for (i, row) in rows.iter().take(query.limit).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&shape.render(&row.json));
    }
    body.push_str("],\"more\":");
    body.push_str(&serde_json::Value::String(more.unwrap_or_default()).to_string());
    body.push('}');
    let modified = rows.iter().take(query.limit).filter_map(|r| stored_at(&r.json)).max();
    Ok(with_last_modified(answer(&state, &site, &shape, body).await?, modified))
}

/// The `stored` time of a stored statement's JSON.
fn stored_at(json: &str) -> Option<time::OffsetDateTime> {
    #[derive(Deserialize)]
    struct Stored {
        stored: String,
    }
    let s: Stored = serde_json::from_str(json).ok()?;
    time::OffsetDateTime::parse(&s.stored, &time::format_description::well_known::Rfc3339).ok()
}

/// `Last-Modified` (an HTTP date, to the second) of a statement answer: the
/// `stored` time of the statement, or of the newest one of a page (xAPI
/// 2.0.0 §4.1.6.1).
fn with_last_modified(mut resp: Response, modified: Option<time::OffsetDateTime>) -> Response {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    if let Some(value) = modified
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(format).ok())
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        resp.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    resp
}

/// A page of statements (the statements are returned exactly as stored).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementPageOut {
    #[schema(value_type = Vec<Object>)]
    pub statements: Vec<serde_json::Value>,
    /// The relative URL of the next page, or empty when there is none.
    pub more: String,
}

/// The query string's pairs, percent-decoded; a malformed one is a 400
/// problem like every other error.
fn query_pairs(uri: &axum::http::Uri) -> ApiResult<Vec<(String, String)>> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| bad_request("malformed_query", "?", e.body_text()))
}

fn json_response(body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// How statements are answered: `format` and the languages of
/// `Accept-Language` (for `canonical`).
struct AnswerShape {
    format: core::format::Format,
    languages: Vec<String>,
    /// `attachments=true`: a multipart/mixed answer with the bytes of the
    /// statements' attachments.
    attachments: bool,
}

/// The answer of a statement GET: the JSON, or with `attachments=true` a
/// `multipart/mixed` body of the JSON and then each stored attachment the
/// answered statements name.
async fn answer(state: &AppState, site: &SiteId, shape: &AnswerShape, body: String) -> ApiResult<Response> {
    if !shape.attachments {
        return Ok(json_response(body));
    }
    fn hashes(v: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(list) = v.get("attachments").and_then(serde_json::Value::as_array) {
            for a in list {
                if let Some(h) = a.get("sha2").and_then(serde_json::Value::as_str) {
                    let h = h.to_ascii_lowercase();
                    if !out.contains(&h) {
                        out.push(h);
                    }
                }
            }
        }
    }
    let mut sha2s = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        match v.get("statements").and_then(serde_json::Value::as_array) {
            Some(list) => list.iter().for_each(|s| hashes(s, &mut sha2s)),
            None => hashes(&v, &mut sha2s),
        }
    }
    let parts = state.store.attachments(site, &sha2s).await?;
    let boundary = format!("xuefen-{}", new_uuid());
    let mut resp = Response::new(Body::from(core::attachments::render(&body, &parts, &boundary)));
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

impl AnswerShape {
    /// The stored JSON in the requested format (`exact`: as stored).
    fn render(&self, json: &str) -> String {
        if self.format == core::format::Format::Exact {
            return json.to_owned();
        }
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(mut v) => {
                core::format::apply(&mut v, self.format, &self.languages);
                v.to_string()
            }
            Err(_) => json.to_owned(),
        }
    }
}

fn answer_shape(params: &[(String, String)], headers: &HeaderMap) -> ApiResult<AnswerShape> {
    let format = match params.iter().find(|(n, _)| n == "format") {
        Some((_, v)) => core::format::Format::parse(v)
            .ok_or_else(|| bad_request("parameter_invalid", "format", "must be exact, ids or canonical"))?,
        None => core::format::Format::Exact,
    };
    let languages = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(core::format::accepted_languages)
        .unwrap_or_default();
    let attachments = match params.iter().find(|(n, _)| n == "attachments") {
        Some((_, v)) if v == "true" => true,
        Some((_, v)) if v == "false" => false,
        Some(_) => return Err(bad_request("parameter_invalid", "attachments", "must be true or false")),
        None => false,
    };
    Ok(AnswerShape {
        format,
        languages,
        attachments,
    })
}

async fn single_statement(
    state: &AppState,
    site: &SiteId,
    id: &str,
    voided: bool,
    shape: &AnswerShape,
) -> ApiResult<Response> {
    let field = if voided { "voidedStatementId" } else { "statementId" };
    let id = core::check_uuid(id, field).map_err(bad)?;
    let rows = state.store.statements_by_ids(site, std::slice::from_ref(&id)).await?;
    match rows.into_iter().next() {
        Some(row) if row.voided == voided => {
            let modified = stored_at(&row.json);
            let body = shape.render(&row.json);
            Ok(with_last_modified(answer(state, site, shape, body).await?, modified))
        }
        Some(_) if voided => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_voided",
            "the statement is not voided; fetch it by `statementId`",
        )
        .into()),
        Some(_) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "statement_voided",
            "the statement is voided; fetch it by `voidedStatementId`",
        )
        .into()),
        None => Err(StoreError::NotFound.into()),
    }
}

/// The filters of the query; unknown parameters and unsupported ones are
/// refused rather than ignored, so a client never reads a wrong answer.
fn parse_query(params: &[(String, String)]) -> ApiResult<StatementQuery> {
    let mut q = StatementQuery {
        limit: crate::PAGE_SIZE_DEFAULT,
        ..Default::default()
    };
    let boolean = |name: &str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_request("parameter_invalid", name, "must be true or false")),
    };
    let time = |name: &str, v: &str| {
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(Millis::from_datetime)
            .map_err(|e| bad_request("parameter_invalid", name, format!("is not an ISO 8601 timestamp: {e}")))
    };
    for (name, v) in params {
        let n = name.as_str();
        match n {
            "agent" => q.agent = Some(core::agent_key(v).map_err(bad)?),
            "verb" => {
                core::check_iri(v, "verb").map_err(bad)?;
                q.verb = Some(v.clone());
            }
            "activity" => {
                core::check_iri(v, "activity").map_err(bad)?;
                q.activity = Some(v.clone());
            }
            "registration" => q.registration = Some(core::check_uuid(v, "registration").map_err(bad)?),
            "since" => q.since = Some(time(n, v)?),
            "until" => q.until = Some(time(n, v)?),
            "ascending" => q.ascending = boolean(n, v)?,
            "attachments" => {
                boolean(n, v)?;
            }
            "related_agents" => q.related_agents = boolean(n, v)?,
            "related_activities" => q.related_activities = boolean(n, v)?,
            // Checked by `answer_shape`.
            "format" => {}
            "limit" => {
                let limit: usize = v
                    .parse()
                    .map_err(|_| bad_request("parameter_invalid", n, "must be a whole number"))?;
                q.limit = match limit {
                    0 => crate::PAGE_SIZE_DEFAULT,
                    l => l.min(crate::PAGE_SIZE_MAX),
                };
            }
            "cursor" => q.cursor = Some(decode_cursor(v)?),
            other => {
                return Err(bad_request(
                    "unknown_parameter",
                    other,
                    "is not a parameter of the statement query",
                ));
            }
        }
    }
    Ok(q)
}

fn decode_cursor(v: &str) -> ApiResult<i64> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| bad_request("parameter_invalid", "cursor", "is not a cursor this LRS gave in `more`"))
}

/// The next page: the same query, continuing after the last statement.
fn more_link(params: &[(String, String)], last_seq: i64) -> String {
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("seq:{last_seq}"));
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(n, _)| n != "cursor")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    pairs.push(("cursor", &cursor));
    let query: Vec<String> = pairs
        .into_iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect();
    format!("/xapi/statements?{}", query.join("&"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------ site settings

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XapiProfileIn {
    /// The `homePage` under which the site's LMS names its accounts in
    /// statements (`actor.account.homePage`), e.g. Moodle's `wwwroot`.
    pub home_page: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct XapiProfileOut {
    pub home_page: String,
    /// Whether the home page is the default one (the site declared none).
    pub default: bool,
}

/// Sets the account home page of the calling site's LMS: a statement
/// whose actor is `account: {homePage: <this>, name: <local account>}`
/// names that local account. Site key (Bearer).
#[utoipa::path(put, path = "/v1/xapi/profile", operation_id = "put_xapi_profile", tag = "xapi",
    security(("api_key" = [])), request_body = XapiProfileIn,
    responses((status = 200, body = XapiProfileOut), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<XapiProfileIn>,
) -> ApiResult<axum::Json<XapiProfileOut>> {
    let site = caller.require_site()?.clone();
    core::check_iri(&input.home_page, "home_page").map_err(|e| {
        ApiError::from(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", e.detail).with_field("home_page"),
        )
    })?;
    if input.home_page.len() > xuefen_core::limits::TEXT_CHARS_MAX {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("is longer than {} bytes", xuefen_core::limits::TEXT_CHARS_MAX),
        )
        .with_field("home_page")
        .into());
    }
    state.store.set_xapi_home_page(&site, &input.home_page).await?;
    tracing::info!(site.id = %site, "xAPI home page set");
    Ok(axum::Json(XapiProfileOut {
        home_page: input.home_page,
        default: false,
    }))
}

/// The calling site's account home page. Site key (Bearer).
#[utoipa::path(get, path = "/v1/xapi/profile", operation_id = "get_xapi_profile", tag = "xapi",
    security(("api_key" = [])), responses((status = 200, body = XapiProfileOut)))]
pub async fn get_profile(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<XapiProfileOut>> {
    let site = caller.require_site()?.clone();
    let stored = state.store.xapi_home_page(&site).await?;
    Ok(axum::Json(XapiProfileOut {
        default: stored.is_none(),
        home_page: stored.unwrap_or_else(|| format!("{DEFAULT_HOME_PAGE_PREFIX}{site}")),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MboxLinkIn {
    /// The hex SHA-1 of the learner's `mailto:` IRI, as the LMS sends it
    /// in `actor.mbox_sha1sum` (a statement with the plain `mbox` matches
    /// too: the LRS hashes it).
    pub mbox_sha1sum: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MboxLinkOut {
    pub local_account: String,
    pub mbox_sha1sum: String,
    pub created: bool,
}

/// Registers the `mbox_sha1sum` under which the site's LMS names one of its
/// local accounts (link the account to a learner with `POST /v1/learners`
/// or `PUT /v1/accounts/{local_account}`). A sum registered for another
/// account is a 409. Site key (Bearer).
#[utoipa::path(put, path = "/v1/xapi/accounts/{local_account}", operation_id = "put_xapi_account", tag = "xapi",
    security(("api_key" = [])), params(("local_account" = String, Path)), request_body = MboxLinkIn,
    responses((status = 201, body = MboxLinkOut), (status = 200, body = MboxLinkOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_mbox_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(input): ApiJson<MboxLinkIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let account = LocalAccount::parse_input(account)?;
    let sum = input.mbox_sha1sum.to_ascii_lowercase();
    if !core::is_sha1_hex(&sum) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "mbox_sha1sum: must be the 40 hexadecimal digits of a SHA-1",
        )
        .with_field("mbox_sha1sum")
        .into());
    }
    let written = state
        .store
        .link_mbox_sha1sum(&site, &account, &sum)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::from(
                Problem::new(
                    StatusCode::CONFLICT,
                    "mbox_sha1sum_linked_elsewhere",
                    "this mbox_sha1sum is registered for another local account",
                )
                .with_field("mbox_sha1sum"),
            ),
            e => e.into(),
        })?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(MboxLinkOut {
            local_account: account.to_string(),
            mbox_sha1sum: sum,
            created: written == Written::Created,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_more_link_carries_the_query_and_a_cursor_that_decodes_back() {
        let params = vec![
            ("verb".to_owned(), "http://adlnet.gov/expapi/verbs/completed".to_owned()),
            ("cursor".to_owned(), "old".to_owned()),
            ("limit".to_owned(), "3".to_owned()),
        ];
        let link = more_link(&params, 42);
        assert!(
            link.starts_with(
                "/xapi/statements?verb=http%3A%2F%2Fadlnet.gov%2Fexpapi%2Fverbs%2Fcompleted&limit=3&cursor="
            )
        );
        let uri: axum::http::Uri = link.parse().expect("uri");
        let pairs = query_pairs(&uri).expect("pairs");
        assert_eq!(pairs[0].1, "http://adlnet.gov/expapi/verbs/completed");
        let cursor = pairs
            .iter()
            .find(|(n, _)| n == "cursor")
            .map(|(_, v)| v.as_str())
            .expect("cursor");
        assert_eq!(decode_cursor(cursor).expect("decodes"), 42);
        assert!(decode_cursor("42").is_err(), "a cursor is only what `more` gave");
    }

    #[test]
    fn an_mbox_is_matched_by_its_sha1() {
        let sum = mbox_sha1sum(&Ifi::Mbox("mailto:xapi@adlnet.gov".into()));
        assert_eq!(sum.as_deref(), Some("cd9b00a5611f94eaa7b1661edab976068e364975"));
        assert_eq!(
            mbox_sha1sum(&Ifi::MboxSha1("ab".repeat(20))).as_deref(),
            Some("abababababababababababababababababababab")
        );
        assert_eq!(mbox_sha1sum(&Ifi::OpenId("https://id.example/u".into())), None);
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = new_uuid();
        assert_eq!(core::check_uuid(&id, "id").as_deref(), Ok(id.as_str()));
        assert_eq!(&id[14..15], "4");
        assert!(["8", "9", "a", "b"].contains(&&id[19..20]));
    }
}
