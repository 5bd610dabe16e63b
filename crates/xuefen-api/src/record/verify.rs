//! The verification pages, where anyone checks a record without signing in:
//! `/verify` (a record pasted or uploaded, checked by the service) and
//! `/verify/offline` (one self-contained HTML file that checks it in the
//! browser).

use super::issuer_key;
use crate::AppState;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xuefen_record::record::{self as rec, LineOutcome};

/// One line as the verification page shows it.
#[derive(Serialize)]
pub(super) struct LineView {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) credits: String,
    pub(super) state: &'static str,
    pub(super) label: &'static str,
    pub(super) detail: String,
}

pub(super) fn verify_render(status: StatusCode, result: Option<minijinja::Value>, error: Option<String>) -> Response {
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

/// The self-contained verification page: one HTML file whose only script
/// checks a record in the browser (WebCrypto Ed25519 and SHA-256), usable
/// saved to disk.
pub(super) const OFFLINE_PAGE: &str = include_str!("../../static/verify-offline.html");

/// The page's Content-Security-Policy: its one inline script by hash, no
/// network at all (`connect-src 'none'`), nothing framed or posted.
pub(super) fn offline_csp() -> &'static str {
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
