//! API keys of sites: issuing another (rotation) and revoking one.

use crate::AppState;
use crate::auth::{Caller, mint};
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::ids::SiteId;
use xuefen_store::Principal;

use crate::wire::*;

/// Issues another key for a site (for rotation). Admin only.
#[utoipa::path(post, path = "/v1/sites/{site_id}/keys", operation_id = "create_site_key", tag = "sites",
    security(("api_key" = [])), params(("site_id" = String, Path)),
    responses((status = 201, body = KeyOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create_site_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    state
        .site_store()
        .site(&id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let (key, secret) = mint(Principal::Site(id));
    state.key_store().create_key(&key).await?;
    Ok((StatusCode::CREATED, Json(KeyOut { key_id: key.id, secret })).into_response())
}

/// Revokes a key at once. Admin only.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", operation_id = "revoke_key", tag = "sites",
    security(("api_key" = [])), params(("key_id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state.key_store().revoke_key(&key_id).await?;
    state.key_cache.clear();
    tracing::info!(key.id = %key_id, "key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A new API key. The secret is shown once and stored only as a hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct KeyOut {
    pub key_id: String,
    pub secret: String,
}
