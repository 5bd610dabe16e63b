//! RFC 9457 problem details: the one error envelope of the API.
//!
//! Every error leaves the service as `application/problem+json` with a
//! stable `type` URI, a `code`, and — for bad input — the offending `field`.
//! 5xx bodies never carry internals; the cause is logged once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::ids::Position;
use xuefen_store::StoreError;

pub use crate::problem_code::ProblemCode;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PositionOut {
    pub chain: u32,
    pub seq: u64,
}

impl From<Position> for PositionOut {
    fn from(p: Position) -> Self {
        Self {
            chain: p.chain,
            seq: p.seq,
        }
    }
}

/// A problem detail (RFC 9457) with the extension members `code`, `field`
/// and `trace_id`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine-readable code, e.g. `unknown_course`.
    pub code: String,
    /// The offending field, when the problem is with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For conflicts: where the existing entry is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionOut>,
    /// The trace of the request that failed (32 hex digits), to find its
    /// spans and log lines. Set on every problem response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Seconds to send as `Retry-After` (429), not part of the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        let code = code.to_string();
        Self {
            type_uri: format!("https://xuefen.example/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            position: None,
            trace_id: None,
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A 422 for a value that failed validation.
    pub fn invalid(e: &FieldError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidField,
            format!("{}: {}", e.field, e.detail),
        )
        .with_field(e.field.to_string())
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The error type of every handler.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self(Box::new(p))
    }
}

impl From<Box<Problem>> for ApiError {
    fn from(p: Box<Problem>) -> Self {
        Self(p)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Problem::invalid(&e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, "no such resource").into()
            }
            StoreError::Conflict(what) => Problem::new(StatusCode::CONFLICT, ProblemCode::Conflict, what).into(),
            e @ StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "stored data is corrupt");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ProblemCode::Internal,
                    "internal error",
                )
                .into()
            }
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database error");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::DatabaseUnavailable,
                    "the database is unavailable; retry later",
                )
                .into()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if self.trace_id.is_none() {
            self.trace_id = crate::telemetry::current_trace_id();
        }
        let status = self.status();
        let retry_after = self.retry_after;
        let mut resp = (status, axum::Json(self)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
