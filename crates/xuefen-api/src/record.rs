//! The learner's record as a verifiable credential (`xuefen-record`):
//! `GET /v1/me/record` (the learner's token), `GET /v1/learners/{id}/record`
//! (admin), the issuer's DID document and keys (`GET /v1/record/issuer`),
//! the download from the learner's page (`GET /me/record`, the page's
//! cookie) and the verification page (`GET`/`POST /verify`, no sign-in).

use crate::problem_code::ProblemCode;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xuefen_core::ids::LearnerId;
use xuefen_core::tlog::{self};
use xuefen_record::record::{self as rec};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::sso::SignedInLearner;

pub(crate) mod build;
pub(crate) mod download;
pub(crate) mod verify;

use self::build::{build_record, build_record_with};
use self::download::{download_my_record, download_my_record_with_identity};
use self::verify::{verify_offline_page, verify_page, verify_posted};

/// The issuer's name in every record.
pub(crate) const ISSUER_NAME: &str = "终身学习学分银行";
/// Lines read per transcript page while a record is built.
const READ_LIMIT: usize = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/record", get(get_my_record).post(post_my_record))
        .route("/v1/learners/{learner_id}/record", get(get_learner_record))
        .route("/v1/record/issuer", get(get_record_issuer))
        .route(
            "/me/record",
            get(download_my_record).post(download_my_record_with_identity),
        )
        .route("/verify", get(verify_page).post(verify_posted))
        .route("/verify/offline", get(verify_offline_page))
}

/// The key records are signed with.
fn issuer_key(state: &AppState) -> ed25519_dalek::SigningKey {
    rec::issuer_key(&state.checkpoints.key)
}

fn now_rfc3339() -> String {
    let at = time::OffsetDateTime::now_utc();
    xuefen_core::event::Millis::from_datetime(at.replace_millisecond(0).unwrap_or(at)).to_rfc3339()
}

fn record_response(record: &Value, download: bool) -> Response {
    let body = serde_json::to_string_pretty(record).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vc+ld+json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if download {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"xuefen-record.json\""),
        );
    }
    resp
}

/// The signed-in learner's record: a W3C Verifiable Credential 2.0 (CLR 2.0
/// / Open Badges 3.0 shape, `eddsa-rdfc-2022` proof), one achievement per
/// line with its ledger evidence. `docs/record-format.md` describes it.
#[utoipa::path(get, path = "/v1/me/record", operation_id = "get_my_record", tag = "learners",
    security(("sso" = [])),
    responses((status = 200, description = "the signed record", content_type = "application/vc+ld+json", body = Object),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_my_record(
    State(state): State<AppState>,
    SignedInLearner(learner): SignedInLearner,
) -> ApiResult<Response> {
    if !state.learner_store().learner_exists(&learner).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownLearner,
            "no learner is registered under the token's subject",
        )
        .into());
    }
    Ok(record_response(&build_record(&state, &learner).await?, false))
}

/// What the learner gives to have identity objects in the record.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordIdentityIn {
    /// The learner's own identity document, as registered. Checked against
    /// the registration (keyed hash) and used once for a salted hash; never
    /// stored or logged.
    pub document: crate::learners::DocumentIn,
}

/// The signed-in learner's record with their identity objects (Open Badges
/// 3.0 `IdentityObject`s in the subject): the registered name, and a salted
/// SHA-256 of the document number the learner gives here, which must be the
/// one they registered with. An employer shown the document checks
/// `sha256$hex(SHA-256(number ‖ salt))`. The service keeps only a keyed
/// hash of the number, so the learner supplies it.
#[utoipa::path(post, path = "/v1/me/record", operation_id = "post_my_record", tag = "learners",
    security(("sso" = [])), request_body = RecordIdentityIn,
    responses((status = 200, description = "the signed record with identity objects", content_type = "application/vc+ld+json", body = Object),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "not the signed-in learner's document, or not a document", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn post_my_record(
    State(state): State<AppState>,
    SignedInLearner(learner): SignedInLearner,
    Json(input): Json<RecordIdentityIn>,
) -> ApiResult<Response> {
    let identifier = identity_objects(&state, &learner, &input.document.kind, &input.document.number).await?;
    Ok(record_response(
        &build_record_with(&state, &learner, identifier).await?,
        false,
    ))
}

/// The learner's OB3 identity objects, for the document they give: it must
/// be the one `learner` registered with (an unknown document and another
/// person's get the same answer, so the answer tells nothing). The number
/// is used once, for the salted hash, and never stored or logged.
async fn identity_objects(state: &AppState, learner: &LearnerId, kind: &str, number: &str) -> ApiResult<Vec<Value>> {
    let kind = xuefen_core::identity::DocumentKind::parse(kind).map_err(|e| Problem::invalid(&e))?;
    let document = xuefen_core::identity::Document::parse(kind, number).map_err(|e| Problem::invalid(&e))?;
    let hash = document.keyed_hash(&state.identity_key);
    let name = match crate::names::learner_by_document(state, &hash).await? {
        Some((id, name)) if id == *learner => name,
        // The same answer whether the document is unknown or another's.
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::NotYourDocument,
                "the document is not the one the signed-in learner registered with",
            )
            .with_field("document")
            .into());
        }
    };
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
    Ok(rec::identity_objects(
        &name,
        kind.as_str(),
        document.number(),
        &hex::encode(salt),
    ))
}

/// A learner's record, as `/v1/me/record` gives it. Admin only.
#[utoipa::path(get, path = "/v1/learners/{learner_id}/record", operation_id = "get_learner_record", tag = "learners",
    security(("api_key" = [])), params(("learner_id" = String, Path)),
    responses((status = 200, description = "the signed record", content_type = "application/vc+ld+json", body = Object),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_learner_record(
    State(state): State<AppState>,
    caller: Caller,
    Path(learner): Path<String>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let learner = LearnerId::parse_as(learner, "learner_id").map_err(|e| Problem::invalid(&e))?;
    if !state.learner_store().learner_exists(&learner).await? {
        return Err(xuefen_store::StoreError::NotFound.into());
    }
    Ok(record_response(&build_record(&state, &learner).await?, false))
}

/// Who signs records and the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecordIssuerOut {
    /// The issuer's `did:key` (Ed25519).
    pub did: String,
    /// Its DID document (a Multikey verification method for assertions).
    #[schema(value_type = Object)]
    pub did_document: Value,
    /// The C2SP verifier key of the log's checkpoints.
    pub log_verifier_key: String,
    /// The JSON-LD contexts records use (all bundled; nothing is fetched).
    pub contexts: Vec<String>,
}

/// The issuer of records: its did:key and DID document, and the log's
/// checkpoint verifier key. Public.
#[utoipa::path(get, path = "/v1/record/issuer", operation_id = "get_record_issuer", tag = "learners",
    responses((status = 200, body = RecordIssuerOut)))]
pub(crate) async fn get_record_issuer(State(state): State<AppState>) -> Json<RecordIssuerOut> {
    let key = issuer_key(&state).verifying_key();
    Json(RecordIssuerOut {
        did: xuefen_record::proof::did_key(&key),
        did_document: xuefen_record::proof::did_document(&key),
        log_verifier_key: tlog::verifier_key(&state.checkpoints.origin, &state.checkpoints.key.verifying_key()),
        contexts: xuefen_record::canon::CONTEXTS
            .iter()
            .map(|(u, _)| (*u).to_owned())
            .collect(),
    })
}
