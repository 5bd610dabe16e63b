//! The learner's record as a verifiable credential (`xuefen-record`):
//! `GET /v1/me/record` (the learner's token), `GET /v1/learners/{id}/record`
//! (admin), the issuer's DID document and keys (`GET /v1/record/issuer`),
//! the download from the learner's page (`GET /me/record`, the page's
//! cookie) and the verification page (`GET`/`POST /verify`, no sign-in).

use crate::problem_code::ProblemCode;
use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xuefen_core::entry::Entry;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_core::tlog::{self, TileId};
use xuefen_record::record::{self as rec, Issuer, Line, LineOutcome, Sealed, Subject};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::sso::SignedInLearner;
use crate::transcript::{Page, transcript_page};

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

/// The self-contained verification page: one HTML file whose only script
/// checks a record in the browser (WebCrypto Ed25519 and SHA-256), usable
/// saved to disk.
const OFFLINE_PAGE: &str = include_str!("../static/verify-offline.html");

/// The page's Content-Security-Policy: its one inline script by hash, no
/// network at all (`connect-src 'none'`), nothing framed or posted.
fn offline_csp() -> &'static str {
    static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let script = OFFLINE_PAGE
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(body, _)| body)
            .unwrap_or("");
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; connect-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    CSP.as_str()
}

/// The verification page that needs no server trust: a static page checking
/// a record file (or a link carrying one in its fragment) in the browser.
#[utoipa::path(get, path = "/verify/offline", operation_id = "get_verify_offline_page", tag = "pages",
    responses((status = 200, description = "the static in-browser verification page (saved to disk, it works offline)", content_type = "text/html")))]
pub(crate) async fn verify_offline_page() -> Response {
    let mut resp = (StatusCode::OK, OFFLINE_PAGE).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(offline_csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// The key records are signed with.
fn issuer_key(state: &AppState) -> ed25519_dalek::SigningKey {
    rec::issuer_key(&state.checkpoints.key)
}

fn now_rfc3339() -> String {
    let at = time::OffsetDateTime::now_utc();
    xuefen_core::event::Millis::from_datetime(at.replace_millisecond(0).unwrap_or(at)).to_rfc3339()
}

/// Builds and signs the learner's record: every transcript line but those
/// not passed, each with its evidence, up to the log's latest checkpoint.
pub(crate) async fn build_record(state: &AppState, learner: &LearnerId) -> ApiResult<Value> {
    build_record_with(state, learner, Vec::new()).await
}

/// The record, with the learner's OB3 identity objects in its subject.
async fn build_record_with(state: &AppState, learner: &LearnerId, identifier: Vec<Value>) -> ApiResult<Value> {
    let mut lines_out = Vec::new();
    let mut query = format!("limit={READ_LIMIT}");
    loop {
        let page = Page::parse(Some(&query))?;
        let t = transcript_page(state, learner, page).await?;
        lines_out.extend(t.entries);
        match t.next_after {
            Some(after) => query = format!("limit={READ_LIMIT}&after={after}"),
            None => break,
        }
    }
    lines_out.retain(|l| l.status.as_deref() != Some("not_passed"));
    let entries: HashMap<Position, Entry> = state
        .store
        .learner_entries(learner)
        .await?
        .into_iter()
        .map(|e| (e.position, e))
        .collect();
    let head = state.store.log_head().await?;
    let size = head.as_ref().map_or(0, |h| h.size);
    // The log index of each line, by position (one probe of the log's
    // segments per line); only indexes under the checkpoint are sealed.
    let positions: Vec<Position> = lines_out
        .iter()
        .map(|l| Position {
            chain: l.position.chain,
            seq: l.position.seq,
        })
        .collect();
    let indexes = if size > 0 {
        state.store.log_indexes(&positions).await?
    } else {
        HashMap::new()
    };
    let index_of = |p: Position| indexes.get(&p).copied().filter(|i| *i < size);
    let mut picked = Vec::new();
    for l in lines_out {
        let p = Position {
            chain: l.position.chain,
            seq: l.position.seq,
        };
        let Some(entry) = entries.get(&p) else {
            return Err(xuefen_store::StoreError::Corrupt {
                at: p.to_string(),
                detail: "a transcript line has no entry".into(),
            }
            .into());
        };
        picked.push((l, entry.clone(), index_of(p)));
    }
    let ids: BTreeSet<TileId> = picked
        .iter()
        .filter_map(|(_, _, i)| *i)
        .flat_map(|i| tlog::inclusion_tiles(i, size).into_iter().map(|(t, _)| t))
        .collect();
    let tiles = if ids.is_empty() {
        tlog::Tiles::new()
    } else {
        state.store.log_tiles(&ids.into_iter().collect::<Vec<_>>()).await?
    };
    let mut lines = Vec::with_capacity(picked.len());
    for (out, entry, index) in picked {
        let sealed = match index {
            Some(index) => Some(Sealed {
                index,
                proof: tlog::inclusion_proof(index, size, &tiles).map_err(|e| xuefen_store::StoreError::Corrupt {
                    at: format!("log index {index}"),
                    detail: e.to_string(),
                })?,
            }),
            None => None,
        };
        lines.push(Line {
            entry,
            status: out.status.unwrap_or_default(),
            course_title: out.course_title,
            site_name: out.site_name,
            sealed,
        });
    }
    let key = issuer_key(state);
    let origin = state.checkpoints.origin.clone();
    let log_key = state.checkpoints.key.verifying_key();
    let learner = learner.to_string();
    let note = head.map(|h| h.note);
    let id = format!("urn:uuid:{}", uuid_v4());
    let issued_at = now_rfc3339();
    // Canonicalisation is CPU work proportional to the lines.
    tokio::task::spawn_blocking(move || {
        let issuer = Issuer {
            key: &key,
            name: ISSUER_NAME,
            log_origin: &origin,
            log_key,
        };
        let subject = Subject {
            id: &id,
            learner: &learner,
            issued_at: &issued_at,
            identifier: &identifier,
        };
        rec::issue(&issuer, &subject, &lines, note.as_deref().map(|n| (n, size)))
    })
    .await
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::RecordFailed,
            e.to_string(),
        )
    })?
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::RecordFailed,
            e.to_string(),
        )
        .into()
    })
}

fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
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
    if !state.store.learner_exists(&learner).await? {
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
    if !state.store.learner_exists(&learner).await? {
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

/// The signed-in learner's record as a file to save (the page's cookie or
/// a bearer token), for the button on `/me`.
#[utoipa::path(get, path = "/me/record", operation_id = "download_my_record", tag = "pages",
    security(("sso" = []), ("sso_cookie" = [])),
    responses((status = 200, description = "the signed record as an attachment", content_type = "application/vc+ld+json"),
              (status = 401, description = "the sign-in page", content_type = "text/html"),
              (status = 404, description = "an error page: no learner under the token's subject", content_type = "text/html"),
              (status = 503, description = "an error page", content_type = "text/html")))]
pub(crate) async fn download_my_record(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let learner = match crate::pages::signed_in_learner(&state, &headers).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    match state.store.learner_exists(&learner).await {
        Ok(true) => {}
        Ok(false) => {
            return crate::pages::error_page(StatusCode::NOT_FOUND, "统一身份认证中的这位学习者尚未在学分银行登记。");
        }
        Err(e) => return crate::pages::api_error_page(e.into()),
    }
    match build_record(&state, &learner).await {
        Ok(r) => record_response(&r, true),
        Err(e) => crate::pages::api_error_page(e),
    }
}

/// The form on `/me` that asks for the record with identity objects.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RecordIdentityForm {
    /// The document's kind, as at registration (`resident_id`, `passport`,
    /// `hk_macao_permit`, `taiwan_permit`, `foreign_permanent_resident`).
    #[serde(default)]
    pub kind: String,
    /// The document's number; checked against the registration and used
    /// once for a salted hash, never stored or logged.
    #[serde(default)]
    pub number: String,
}

/// The signed-in learner's record with their identity objects, as a file
/// to save: the form on `/me` (the page's cookie, or a bearer token) posts
/// the document the learner registered with, as `POST /v1/me/record` takes
/// it. Not the learner's document, or not a document: the page again, 422,
/// saying which field.
#[utoipa::path(post, path = "/me/record", operation_id = "download_my_record_with_identity", tag = "pages",
    security(("sso" = []), ("sso_cookie" = [])),
    request_body(content = RecordIdentityForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the signed record with identity objects, as an attachment", content_type = "application/vc+ld+json"),
              (status = 401, description = "the sign-in page", content_type = "text/html"),
              (status = 404, description = "an error page: no learner under the token's subject", content_type = "text/html"),
              (status = 422, description = "an error page: not the signed-in learner's document, or not a document (also a body that is not a form)", content_type = "text/html"),
              (status = 503, description = "an error page", content_type = "text/html")))]
pub(crate) async fn download_my_record_with_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<RecordIdentityForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let learner = match crate::pages::signed_in_learner(&state, &headers).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    match state.store.learner_exists(&learner).await {
        Ok(true) => {}
        Ok(false) => {
            return crate::pages::error_page(StatusCode::NOT_FOUND, "统一身份认证中的这位学习者尚未在学分银行登记。");
        }
        Err(e) => return crate::pages::api_error_page(e.into()),
    }
    let Ok(Form(form)) = form else {
        return crate::pages::error_page(StatusCode::UNPROCESSABLE_ENTITY, "请填写证件类型和证件号码。");
    };
    let identifier = match identity_objects(&state, &learner, form.kind.trim(), form.number.trim()).await {
        Ok(i) => i,
        Err(e) if e.0.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16() => {
            let field = e.0.field.as_deref().unwrap_or("document");
            let what = if e.0.code == ProblemCode::NotYourDocument.to_string() {
                "证件与您登记时所用的证件不符，请填写登记时的证件。"
            } else if field == "document/kind" {
                "请选择证件类型。"
            } else {
                "证件号码格式不正确。"
            };
            return crate::pages::error_page(StatusCode::UNPROCESSABLE_ENTITY, &format!("{what}（{field}）"));
        }
        Err(e) => return crate::pages::api_error_page(e),
    };
    match build_record_with(&state, &learner, identifier).await {
        Ok(r) => record_response(&r, true),
        Err(e) => crate::pages::api_error_page(e),
    }
}

/// The QR code (SVG) of the verification page's address, as the request
/// reached the service (`Host`, and `X-Forwarded-Proto` from a TLS proxy).
pub(crate) fn verify_qr_svg(headers: &HeaderMap) -> Option<(String, String)> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
        return None;
    }
    let scheme = if crate::pages::over_tls(headers) {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{host}/verify/offline");
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    Some((url, svg))
}

/// One line as the verification page shows it.
#[derive(Serialize)]
struct LineView {
    id: String,
    name: String,
    credits: String,
    state: &'static str,
    label: &'static str,
    detail: String,
}

fn verify_render(status: StatusCode, result: Option<minijinja::Value>, error: Option<String>) -> Response {
    crate::pages::render_page(
        status,
        "verify.html",
        minijinja::context! { result => result, error => error },
    )
}

/// The verification page: paste a record, see which lines check. No sign-in.
#[utoipa::path(get, path = "/verify", operation_id = "get_verify_page", tag = "pages",
    responses((status = 200, description = "the verification form", content_type = "text/html")))]
pub(crate) async fn verify_page() -> Response {
    verify_render(StatusCode::OK, None, None)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct VerifyForm {
    /// The record (JSON) as downloaded.
    #[serde(default)]
    pub record: String,
}

/// Checks a pasted record against this service's issuer key and log key:
/// the credential's proof, the checkpoint's signature and every line's
/// entry bytes and inclusion proof. Nothing is looked up in the database.
#[utoipa::path(post, path = "/verify", operation_id = "post_verify_page", tag = "pages",
    request_body(content = VerifyForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the result, line by line (verified or not)", content_type = "text/html"),
              (status = 422, description = "the form holds no record, or its record is not JSON (also a body that is not a form)", content_type = "text/html")))]
pub(crate) async fn verify_posted(
    State(state): State<AppState>,
    form: Result<Form<VerifyForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    // A form that is not a form (another media type, an unreadable body)
    // is answered like an empty one: the page again, saying what to paste.
    let pasted = form.map(|Form(f)| f.record).unwrap_or_default();
    if pasted.trim().is_empty() {
        return verify_render(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("请粘贴下载的学习记录（JSON 文件的内容）。".into()),
        );
    }
    let record: Value = match serde_json::from_str(&pasted) {
        Ok(v) => v,
        Err(e) => {
            return verify_render(
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("粘贴的内容不是 JSON 格式的学习记录（{e}）。")),
            );
        }
    };
    let issuer: VerifyingKey = issuer_key(&state).verifying_key();
    let origin = state.checkpoints.origin.clone();
    let log_key = state.checkpoints.key.verifying_key();
    let report =
        tokio::task::spawn_blocking(move || rec::verify(&record, Some(&issuer), Some((&origin, &log_key)))).await;
    let Ok(report) = report else {
        return verify_render(StatusCode::INTERNAL_SERVER_ERROR, None, Some("核验未能完成。".into()));
    };
    let lines: Vec<LineView> = report
        .lines
        .iter()
        .map(|l| {
            let (state, label, detail) = match &l.outcome {
                LineOutcome::Verified { log_index } if report.proof.is_ok() => (
                    "verified",
                    "已核验",
                    format!("账本第 {log_index} 条，包含证明与签名检查点一致"),
                ),
                LineOutcome::Verified { .. } => ("failed", "未通过核验", "凭证签名无效".to_owned()),
                LineOutcome::NotSealed if report.proof.is_ok() => {
                    ("pending", "尚未封存", "条目哈希一致；尚未写入签名检查点".to_owned())
                }
                LineOutcome::NotSealed => ("failed", "未通过核验", "凭证签名无效".to_owned()),
                LineOutcome::Failed(why) => ("failed", "未通过核验", why.clone()),
            };
            LineView {
                id: l.id.clone(),
                name: l.name.clone(),
                credits: l.credits.clone(),
                state,
                label,
                detail,
            }
        })
        .collect();
    let result = minijinja::context! {
        ok => report.ok(),
        issuer => report.issuer,
        proof_ok => report.proof.is_ok(),
        proof_error => report.proof.err(),
        checkpoint_ok => report.checkpoint.is_ok(),
        checkpoint_size => report.checkpoint.as_ref().ok().and_then(|c| c.as_ref().map(|c| c.size)),
        checkpoint_error => report.checkpoint.err(),
        lines => lines,
    };
    verify_render(StatusCode::OK, Some(result), None)
}
