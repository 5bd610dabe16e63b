//! Health and readiness: is the process up, can it reach its database.

use crate::AppState;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::extract::State;
use axum::http::StatusCode;

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "get_health", tag = "ops", responses((status = 200, description = "alive")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and its schema is current.
#[utoipa::path(get, path = "/readyz", operation_id = "get_readiness", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state.store.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::from(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            "the database is unreachable or not migrated",
        ))
    })?;
    Ok("ready")
}
