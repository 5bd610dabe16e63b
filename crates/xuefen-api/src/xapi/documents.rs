//! The xAPI document resources — State (`/xapi/activities/state`),
//! Activity Profile (`/xapi/activities/profile`), Agent Profile
//! (`/xapi/agents/profile`) — and the Activities (`/xapi/activities`) and
//! Agents (`/xapi/agents`) resources.
//!
//! A document is stored as received (bytes and `Content-Type`) under the
//! calling site: a site is its own LRS tenant. `GET` answers it with
//! `ETag` (the quoted hex SHA-1 of its bytes) and `Last-Modified`, or
//! without a document id the JSON array of the ids (updated after `since`
//! when given); `HEAD` answers the same headers. `PUT` replaces, `POST`
//! merges into a stored JSON object (one level deep), `DELETE` removes one
//! document or, without an id, every document of the scope. `If-Match` and
//! `If-None-Match` are checked in the same transaction as the write (412);
//! a `PUT` over an existing document without either is 409 on the profile
//! resources, and on the State resource from 2.0.0 on. A document is at
//! most [`DOCUMENT_BYTES_MAX`](xuefen_core::xapi::documents::DOCUMENT_BYTES_MAX)
//! bytes and a site's documents at most
//! [`SITE_DOCUMENT_BYTES_MAX`](xuefen_core::xapi::documents::SITE_DOCUMENT_BYTES_MAX)
//! (413). Nothing of it reaches the ledger.

use crate::problem_code::ProblemCode;
use std::collections::HashSet;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::documents::{self as docs, MergeError};
use xuefen_core::xapi::{self as core, Version};
use xuefen_store::xapi_documents::{
    DocumentKind, DocumentLimits, DocumentRefusal, DocumentScope, DocumentWrite, Preconditions, TagMatch,
};

use super::auth::XapiSite;
use super::headers::version_of;
use super::read::{json_response, query_pairs, with_last_modified};
use super::{bad, bad_request};
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult, Problem};

/// The parameters of a document request, checked.
struct Params {
    scope: DocumentScope,
    id: Option<String>,
    since: Option<Millis>,
}

/// Which parameters each resource takes: (activityId, agent, registration,
/// the id's name).
fn shape(kind: DocumentKind) -> (bool, bool, bool, &'static str) {
    match kind {
        DocumentKind::State => (true, true, true, "stateId"),
        DocumentKind::ActivityProfile => (true, false, false, "profileId"),
        DocumentKind::AgentProfile => (false, true, false, "profileId"),
    }
}

fn parse_params(kind: DocumentKind, method: &Method, pairs: &[(String, String)]) -> ApiResult<Params> {
    let (takes_activity, takes_agent, takes_registration, id_name) = shape(kind);
    let mut seen = HashSet::new();
    let mut scope = DocumentScope {
        kind,
        activity: String::new(),
        agent: String::new(),
        registration: String::new(),
    };
    let (mut activity, mut agent, mut id, mut since) = (false, false, None, None);
    for (name, value) in pairs {
        if !seen.insert(name.as_str()) {
            return Err(bad_request(
                ProblemCode::RepeatedParameter,
                name,
                "a parameter may be given once",
            ));
        }
        match name.as_str() {
            "activityId" if takes_activity => {
                core::check_iri(value, "activityId").map_err(bad)?;
                scope.activity.clone_from(value);
                activity = true;
            }
            "agent" if takes_agent => {
                scope.agent = core::agent_key(value).map_err(bad)?;
                agent = true;
            }
            "registration" if takes_registration => {
                scope.registration = core::check_uuid(value, "registration").map_err(bad)?;
            }
            "since" if *method == Method::GET || *method == Method::HEAD => {
                let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).map_err(
                    |e| {
                        bad_request(
                            ProblemCode::ParameterInvalid,
                            "since",
                            format!("is not an ISO 8601 timestamp: {e}"),
                        )
                    },
                )?;
                since = Some(Millis::from_datetime(t));
            }
            n if n == id_name => {
                if value.is_empty() {
                    return Err(bad_request(ProblemCode::ParameterInvalid, id_name, "must not be empty"));
                }
                id = Some(value.clone());
            }
            other => {
                return Err(bad_request(
                    ProblemCode::UnknownParameter,
                    other,
                    "is not a parameter of this resource",
                ));
            }
        }
    }
    if takes_activity && !activity {
        return Err(bad_request(
            ProblemCode::ParameterRequired,
            "activityId",
            "`activityId` is required",
        ));
    }
    if takes_agent && !agent {
        return Err(bad_request(
            ProblemCode::ParameterRequired,
            "agent",
            "`agent` is required",
        ));
    }
    let id_required =
        *method == Method::PUT || *method == Method::POST || (*method == Method::DELETE && kind != DocumentKind::State);
    if id_required && id.is_none() {
        return Err(bad_request(
            ProblemCode::ParameterRequired,
            id_name,
            format!("`{id_name}` is required"),
        ));
    }
    if id.is_some() && since.is_some() {
        return Err(bad_request(
            ProblemCode::ParameterNotAllowed,
            "since",
            format!("`since` lists ids; it is not given with `{id_name}`"),
        ));
    }
    Ok(Params { scope, id, since })
}

/// An `If-Match` / `If-None-Match` header: `*`, or entity tags (quotes and
/// a weak `W/` prefix dropped).
fn tag_match(headers: &HeaderMap, name: header::HeaderName) -> ApiResult<Option<TagMatch>> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| bad_request(ProblemCode::HeaderInvalid, name.as_str(), "is not ASCII"))?
        .trim();
    if value == "*" {
        return Ok(Some(TagMatch::Any));
    }
    let tags = value
        .split(',')
        .map(|t| {
            let t = t.trim();
            t.strip_prefix("W/").unwrap_or(t).trim_matches('"').to_owned()
        })
        .filter(|t| !t.is_empty())
        .collect();
    Ok(Some(TagMatch::Tags(tags)))
}

fn refusal(r: DocumentRefusal) -> ApiError {
    match r {
        DocumentRefusal::PreconditionFailed => Problem::new(
            StatusCode::PRECONDITION_FAILED,
            ProblemCode::PreconditionFailed,
            "the document's current ETag does not satisfy If-Match / If-None-Match; nothing was changed",
        )
        .into(),
        DocumentRefusal::PreconditionRequired => Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::PreconditionRequired,
            "the document exists: send If-Match with its ETag to replace it (or POST to merge); nothing was changed",
        )
        .with_field("If-Match")
        .into(),
        DocumentRefusal::PreconditionMissing => bad_request(
            ProblemCode::PreconditionRequired,
            "If-None-Match",
            "a profile PUT names what it expects: If-None-Match: * for a new document, If-Match with the ETag to replace one",
        ),
        DocumentRefusal::NotMergeable(MergeError::StoredNotJsonObject) => bad_request(
            ProblemCode::DocumentNotMergeable,
            "Content-Type",
            "the stored document is not an application/json object, so a POST cannot merge into it",
        ),
        DocumentRefusal::NotMergeable(MergeError::PostedNotJsonObject) => bad_request(
            ProblemCode::DocumentNotMergeable,
            "Content-Type",
            "a POST merges a JSON object: send application/json with an object",
        ),
        DocumentRefusal::DocumentTooLarge { bytes_max } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::DocumentTooLarge,
            format!("a document is at most {bytes_max} bytes"),
        )
        .into(),
        DocumentRefusal::SiteLimitReached { bytes_max } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::SiteDocumentsFull,
            format!("the site's documents may hold at most {bytes_max} bytes in all; delete some first"),
        )
        .into(),
    }
}

pub(super) async fn read_document_body(req: Request, state: &AppState) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|rejection| -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                ProblemCode::BodyTooLarge,
                "the request body is larger than the limit (body_bytes_max)",
            )
            .into()
        } else {
            Problem::new(status, ProblemCode::UnreadableBody, rejection.body_text()).into()
        }
    })
}

fn with_etag(mut resp: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn http_time(m: Millis) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m.0) * 1_000_000).ok()
}

/// One document request of any method on any of the three resources.
async fn document_request(state: AppState, site: SiteId, kind: DocumentKind, req: Request) -> ApiResult<Response> {
    let method = req.method().clone();
    let version = version_of(req.extensions().get::<Version>());
    let params = parse_params(kind, &method, &query_pairs(req.uri())?)?;
    let headers = req.headers().clone();
    let preconditions = Preconditions {
        if_match: tag_match(&headers, header::IF_MATCH)?,
        if_none_match: tag_match(&headers, header::IF_NONE_MATCH)?,
        required_to_overwrite: kind != DocumentKind::State || version == Version::V2,
        // xAPI 1.0.3 (Communication 2.6, 2.7): a profile PUT carries a
        // precondition even for a new document.
        required_to_create: kind != DocumentKind::State && version != Version::V2,
    };
    match method {
        Method::GET | Method::HEAD => match &params.id {
            Some(id) => match state.xapi_document_store().document(&site, &params.scope, id).await? {
                Some(doc) => {
                    let mut resp = Response::new(Body::from(doc.body));
                    if let Ok(ct) = HeaderValue::from_str(&doc.content_type) {
                        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                    }
                    Ok(with_last_modified(with_etag(resp, &doc.etag), http_time(doc.updated)))
                }
                None => Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    ProblemCode::DocumentNotFound,
                    "no document under these parameters",
                )
                .into()),
            },
            None => {
                let ids = state
                    .xapi_document_store()
                    .document_ids(&site, &params.scope, params.since)
                    .await?;
                let body = serde_json::Value::from(ids).to_string();
                Ok(with_etag(json_response(body.clone()), &docs::etag(body.as_bytes())))
            }
        },
        Method::PUT | Method::POST => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            let body = read_document_body(req, &state).await?;
            let id = params.id.unwrap_or_default();
            let write = DocumentWrite {
                scope: params.scope,
                id,
                content_type,
                body: body.to_vec(),
                merge: method == Method::POST,
                preconditions,
                limits: DocumentLimits::default(),
                now: Millis::from_datetime(time::OffsetDateTime::now_utc()),
            };
            state
                .xapi_document_store()
                .write_document(&site, &write)
                .await?
                .map_err(refusal)?;
            tracing::info!(site.id = %site, kind = kind.as_str(), "xAPI document written");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            state
                .store
                .delete_documents(&site, &params.scope, params.id.as_deref(), &preconditions)
                .await?
                .map_err(refusal)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::MethodNotAllowed,
            "GET, HEAD, PUT, POST or DELETE",
        )
        .into()),
    }
}

/// The State resource: documents under (activityId, agent, registration,
/// stateId).
#[utoipa::path(get, path = "/xapi/activities/state", operation_id = "xapi_state", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("activityId" = String, Query), ("agent" = String, Query, description = "an Agent as JSON"),
           ("registration" = Option<String>, Query), ("stateId" = Option<String>, Query, description = "absent: the ids"),
           ("since" = Option<String>, Query, description = "GET without stateId: ids of documents updated after")),
    responses((status = 200, description = "the document (with ETag and Last-Modified), or the array of ids"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn state_resource(State(state): State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
    document_request(state, auth.site, DocumentKind::State, req).await
}

/// The Activity Profile resource: documents under (activityId, profileId).
#[utoipa::path(get, path = "/xapi/activities/profile", operation_id = "xapi_activity_profile", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("activityId" = String, Query), ("profileId" = Option<String>, Query, description = "absent: the ids"),
           ("since" = Option<String>, Query)),
    responses((status = 200, description = "the document (with ETag and Last-Modified), or the array of ids"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn activity_profile_resource(
    State(state): State<AppState>,
    auth: XapiSite,
    req: Request,
) -> ApiResult<Response> {
    document_request(state, auth.site, DocumentKind::ActivityProfile, req).await
}

/// The Agent Profile resource: documents under (agent, profileId).
#[utoipa::path(get, path = "/xapi/agents/profile", operation_id = "xapi_agent_profile", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("agent" = String, Query, description = "an Agent as JSON"),
           ("profileId" = Option<String>, Query, description = "absent: the ids"), ("since" = Option<String>, Query)),
    responses((status = 200, description = "the document (with ETag and Last-Modified), or the array of ids"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn agent_profile_resource(
    State(state): State<AppState>,
    auth: XapiSite,
    req: Request,
) -> ApiResult<Response> {
    document_request(state, auth.site, DocumentKind::AgentProfile, req).await
}

/// The Activities resource: the canonical Activity Object of `activityId`,
/// merged from every statement of the site about it (an activity no
/// statement defined is its id alone).
#[utoipa::path(get, path = "/xapi/activities", operation_id = "get_xapi_activity", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"), ("activityId" = String, Query)),
    responses((status = 200, body = Object, description = "the Activity Object"),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn get_activity(State(state): State<AppState>, auth: XapiSite, uri: axum::http::Uri) -> ApiResult<Response> {
    let mut activity = None;
    for (name, value) in query_pairs(&uri)? {
        match name.as_str() {
            "activityId" if activity.is_none() => {
                core::check_iri(&value, "activityId").map_err(bad)?;
                activity = Some(value);
            }
            other => {
                return Err(bad_request(
                    ProblemCode::UnknownParameter,
                    other,
                    "the Activities resource takes `activityId` once",
                ));
            }
        }
    }
    let id = activity
        .ok_or_else(|| bad_request(ProblemCode::ParameterRequired, "activityId", "`activityId` is required"))?;
    let body = match state.xapi_document_store().activity(&auth.site, &id).await? {
        Some(json) => json,
        None => serde_json::json!({"objectType": "Activity", "id": id}).to_string(),
    };
    Ok(json_response(body))
}

/// The Agents resource: the Person Object of `agent` (this LRS does not
/// join agents, so the person has the agent's own identifiers).
#[utoipa::path(get, path = "/xapi/agents", operation_id = "get_xapi_agents", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("agent" = String, Query, description = "an Agent as JSON")),
    responses((status = 200, body = Object, description = "the Person Object"),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn get_agents(State(_state): State<AppState>, _auth: XapiSite, uri: axum::http::Uri) -> ApiResult<Response> {
    let mut agent = None;
    for (name, value) in query_pairs(&uri)? {
        match name.as_str() {
            "agent" if agent.is_none() => agent = Some(value),
            other => {
                return Err(bad_request(
                    ProblemCode::UnknownParameter,
                    other,
                    "the Agents resource takes `agent` once",
                ));
            }
        }
    }
    let agent = agent.ok_or_else(|| bad_request(ProblemCode::ParameterRequired, "agent", "`agent` is required"))?;
    let person = docs::person(&agent).map_err(bad)?;
    Ok(json_response(person.to_string()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentUsageOut {
    pub site_id: String,
    /// xAPI documents (State, Activity Profile, Agent Profile) the site holds.
    pub documents: u64,
    pub bytes: u64,
    /// The most bytes the site's documents may hold.
    pub bytes_max: u64,
}

/// What the xAPI documents of the calling site hold (site key), or of every
/// site (admin key).
#[utoipa::path(get, path = "/v1/xapi/documents", operation_id = "get_xapi_document_usage", tag = "xapi",
    security(("api_key" = [])), responses((status = 200, body = Vec<DocumentUsageOut>)))]
pub async fn get_document_usage(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<DocumentUsageOut>>> {
    let site = match caller.require_admin() {
        Ok(()) => None,
        Err(_) => Some(caller.require_site()?.clone()),
    };
    let usage = state.xapi_document_store().document_usage(site.as_ref()).await?;
    Ok(axum::Json(
        usage
            .into_iter()
            .map(|u| DocumentUsageOut {
                site_id: u.site.to_string(),
                documents: u.documents,
                bytes: u.bytes,
                bytes_max: docs::SITE_DOCUMENT_BYTES_MAX,
            })
            .collect(),
    ))
}

/// The writing methods of the three document resources, each declared as
/// its own operation so the contract lists every method a resource has (a
/// method left out would be one a client may expect a 405 for). They share
/// the resource's handler; the body is the document in any media type.
macro_rules! document_writers {
    ($resource:ident, $path:literal, $put:ident, $post:ident, $delete:ident, $what:literal) => {
        #[doc = concat!("PUT on ", $what, ": stores the document whole (ETag preconditions as the resource says).")]
        #[utoipa::path(put, path = $path, operation_id = stringify!($put), tag = "xapi",
                    security(("basic" = [])),
                    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
                    request_body(content = String, content_type = "application/octet-stream", description = "the document, in any media type"),
                    responses((status = 204, description = "stored"),
                              (status = 400, body = Problem, content_type = "application/problem+json"),
                              (status = 409, body = Problem, content_type = "application/problem+json",
                               description = "a document exists and no precondition was sent"),
                              (status = 412, body = Problem, content_type = "application/problem+json",
                               description = "If-Match or If-None-Match failed")))]
        pub async fn $put(state: State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
            $resource(state, auth, req).await
        }

        #[doc = concat!("POST on ", $what, ": merges a JSON object into the stored one.")]
        #[utoipa::path(post, path = $path, operation_id = stringify!($post), tag = "xapi",
                    security(("basic" = [])),
                    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
                    request_body(content = Object, content_type = "application/json", description = "a JSON object to merge"),
                    responses((status = 204, description = "merged"),
                              (status = 400, body = Problem, content_type = "application/problem+json"),
                              (status = 412, body = Problem, content_type = "application/problem+json")))]
        pub async fn $post(state: State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
            $resource(state, auth, req).await
        }

        #[doc = concat!("DELETE on ", $what, ": removes one document, or the whole scope without an id.")]
        #[utoipa::path(delete, path = $path, operation_id = stringify!($delete), tag = "xapi",
                    security(("basic" = [])),
                    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
                    responses((status = 204, description = "removed"),
                              (status = 400, body = Problem, content_type = "application/problem+json"),
                              (status = 412, body = Problem, content_type = "application/problem+json")))]
        pub async fn $delete(state: State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
            $resource(state, auth, req).await
        }
    };
}

document_writers!(
    state_resource,
    "/xapi/activities/state",
    put_xapi_state,
    post_xapi_state,
    delete_xapi_state,
    "the State resource"
);
document_writers!(
    activity_profile_resource,
    "/xapi/activities/profile",
    put_xapi_activity_profile,
    post_xapi_activity_profile,
    delete_xapi_activity_profile,
    "the Activity Profile resource"
);
document_writers!(
    agent_profile_resource,
    "/xapi/agents/profile",
    put_xapi_agent_profile,
    post_xapi_agent_profile,
    delete_xapi_agent_profile,
    "the Agent Profile resource"
);
