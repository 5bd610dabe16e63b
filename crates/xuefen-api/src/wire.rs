//! Helpers every resource module shares: path parameters, the status of a
//! write, the clock, free text.

use crate::problem::{ApiResult, Problem};
use axum::http::StatusCode;
use xuefen_core::FieldError;
use xuefen_core::event::Reason;
use xuefen_store::Written;

pub(crate) fn status_for(w: Written) -> StatusCode {
    match w {
        Written::Created => StatusCode::CREATED,
        Written::Existing => StatusCode::OK,
    }
}

pub(crate) fn path_id<T>(
    parse: impl FnOnce(String) -> Result<T, xuefen_core::FieldError>,
    value: String,
) -> ApiResult<T> {
    parse(value).map_err(|e| Problem::invalid(&e).into())
}

pub(crate) fn now() -> xuefen_core::event::Millis {
    xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc())
}

pub(crate) fn text(value: &str, field: &'static str) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Reason::parse(trimmed, field).map(|r| r.as_str().to_owned())
}

pub(crate) fn required<T: Clone>(v: &Option<T>, field: &'static str) -> Result<T, FieldError> {
    v.clone().ok_or_else(|| FieldError::new(field, "is required"))
}
