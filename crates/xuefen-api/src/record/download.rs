//! The record from the learner's page: the download button of `/me` (with or
//! without the learner's identity objects), and the QR code of the
//! verification page's address.

use super::build::{build_record, build_record_with};
use super::{identity_objects, record_response};
use crate::AppState;
use crate::problem_code::ProblemCode;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use xuefen_core::ids::LearnerId;

/// The signed-in learner's record as a file to save (the page's cookie or
/// a bearer token), for the button on `/me`.
#[utoipa::path(get, path = "/me/record", operation_id = "download_my_record", tag = "pages",
    security(("sso" = []), ("sso_cookie" = [])),
    responses((status = 200, description = "the signed record as an attachment", content_type = "application/vc+ld+json"),
              (status = 401, description = "the sign-in page", content_type = "text/html"),
              (status = 404, description = "an error page: no learner under the token's subject", content_type = "text/html"),
              (status = 503, description = "an error page", content_type = "text/html")))]
pub(crate) async fn download_my_record(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let learner = match registered_learner(&state, &headers).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
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
    let learner = match registered_learner(&state, &headers).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
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

/// The learner the page's sign-in names, registered in the credit bank; or
/// the page to answer instead (sign-in, or an error page).
async fn registered_learner(state: &AppState, headers: &HeaderMap) -> Result<LearnerId, Response> {
    let learner = crate::pages::me::signed_in_learner(state, headers).await?;
    match state.learner_store().learner_exists(&learner).await {
        Ok(true) => Ok(learner),
        Ok(false) => Err(crate::pages::error_page(
            StatusCode::NOT_FOUND,
            "统一身份认证中的这位学习者尚未在学分银行登记。",
        )),
        Err(e) => Err(crate::pages::api_error_page(e.into())),
    }
}
