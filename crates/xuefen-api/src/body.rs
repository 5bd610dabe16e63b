//! Request bodies: JSON read within the body limit, with errors that name
//! the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, Problem};

/// A JSON body parsed into `T`; failures become 400/413 problems.
pub struct ApiJson<T>(pub T);

/// Reads the raw body, turning an over-long body into a 413 problem.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                "body_too_large",
                "the request body is larger than the limit (body_bytes_max)",
            )
            .into()
        } else {
            Problem::new(status, "unreadable_body", rejection.body_text()).into()
        }
    })
}

/// Parses JSON, naming the path of the first bad field.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Box<Problem>> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string().replace('.', "/");
        let inner = e.into_inner();
        let p = Problem::new(StatusCode::BAD_REQUEST, "malformed_json", inner.to_string());
        Box::new(if path == "?" || path.is_empty() {
            p
        } else {
            p.with_field(path)
        })
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}
