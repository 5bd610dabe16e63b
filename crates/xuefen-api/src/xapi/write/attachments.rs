//! The body of a statements request: its JSON, and for `multipart/mixed`
//! the attachment parts, checked against the statements and stored before
//! any statement is.

use crate::AppState;
use crate::body::read_body;
use crate::problem::ApiResult;
use crate::problem_code::ProblemCode;
use crate::xapi::{bad, bad_request, documents};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use serde_json::value::RawValue;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi as core;

/// The statements' JSON of a request, and its attachment parts: the body
/// itself for `application/json`, the first part and the others for
/// `multipart/mixed` (each part's hash checked). Other multipart types are
/// refused.
pub(super) async fn statement_body(
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
            ProblemCode::MultipartTypeUnsupported,
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
pub(super) async fn check_attachments(
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
        .map_err(|e| bad_request(ProblemCode::MalformedJson, "/", format!("the body is not JSON: {e}")))?;
    core::attachments::check(&values, parts).map_err(bad)?;
    // Stored first and by hash: a statement refused later leaves bytes no
    // statement names, never a statement without its bytes.
    state.xapi_document_store().put_attachments(site, parts).await?;
    Ok(())
}
