//! Request bodies: JSON read within the body limit, with errors that name
//! the offending field.

use crate::problem_code::ProblemCode;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, Problem};

/// A JSON body parsed into `T`; failures become 400/413 problems.
pub struct ApiJson<T>(pub T);

/// Reads the raw body, turning an over-long body into a 413 problem and a
/// `\u0000` anywhere in it into a 400 problem naming the field.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let bytes = read_body_unchecked(req, state).await?;
    check_no_nul(&bytes)?;
    Ok(bytes)
}

/// [`read_body`] without the U+0000 check, for a batch that checks each
/// item on its own.
pub async fn read_body_unchecked<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| -> ApiError {
        let status = rejection.status();
        if crate::server::is_body_timeout(&rejection) {
            crate::throttle::body_timeout_problem().into()
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                ProblemCode::BodyTooLarge,
                "the request body is larger than the limit (body_bytes_max)",
            )
            .into()
        } else {
            Problem::new(status, ProblemCode::UnreadableBody, rejection.body_text()).into()
        }
    })?;
    Ok(bytes)
}

/// How a body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// One JSON value (`application/json` or any `+json` type).
    Json,
    /// One JSON value per line (`application/x-ndjson`).
    Ndjson,
}

/// The framing a native API body declares. Media types compare
/// case-insensitively and parameters (`charset`) are ignored; JSON is
/// `application/json` or any `application/*+json`, NDJSON only where
/// `ndjson_ok`. Anything else, a missing type included, is a 415 problem
/// naming the media type.
pub fn body_kind(headers: &HeaderMap, ndjson_ok: bool) -> Result<BodyKind, Box<Problem>> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = raw
        .as_deref()
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => return Ok(BodyKind::Json),
        Some("application/x-ndjson") if ndjson_ok => return Ok(BodyKind::Ndjson),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => return Ok(BodyKind::Json),
        _ => {}
    }
    let accepted = if ndjson_ok {
        "application/json or application/x-ndjson"
    } else {
        "application/json"
    };
    let detail = match essence {
        Some(t) => format!("the media type \"{t}\" is not accepted here; send {accepted}"),
        None => format!("the request has no Content-Type; send {accepted}"),
    };
    Err(Box::new(
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::UnsupportedMediaType,
            detail,
        )
        .with_field("content-type"),
    ))
}

/// Parses JSON, naming the path of the first bad field.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Box<Problem>> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string().replace('.', "/");
        let inner = e.into_inner();
        let p = Problem::new(StatusCode::BAD_REQUEST, ProblemCode::MalformedJson, inner.to_string());
        Box::new(if path == "?" || path.is_empty() {
            p
        } else {
            p.with_field(path)
        })
    })?;
    // One body is one JSON value: anything but whitespace after it would
    // otherwise be silently dropped.
    de.end().map_err(|_| {
        Box::new(Problem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::TrailingData,
            "the body has data after its JSON value; send one value (or one per NDJSON line)",
        ))
    })?;
    Ok(value)
}

/// Refuses a JSON text holding a `\u0000` escape in any string (key or
/// value): PostgreSQL cannot store U+0000 in text, so both backends refuse
/// it before the database. A raw NUL byte is not valid JSON and fails the
/// parser itself. The scan is one `memmem` over the body; only a hit walks
/// the value to name the field.
pub fn check_no_nul(bytes: &[u8]) -> Result<(), Box<Problem>> {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&bytes[from..], br"\u0000") {
        let at = from + at;
        // The backslash starts an escape only after an even run of backslashes.
        let run = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if run % 2 == 0 {
            let field = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| nul_path(&v, String::new()))
                .unwrap_or_else(|| "/".to_owned());
            return Err(Box::new(nul_problem(field)));
        }
        from = at + 1;
    }
    Ok(())
}

/// The problem for a value holding U+0000, naming its field.
pub fn nul_problem(field: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        ProblemCode::NulCharacter,
        "the value holds the character U+0000, which cannot be stored",
    )
    .with_field(field)
}

fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_owned()
        } else {
            format!("{at}/{k}")
        }
    };
    match v {
        serde_json::Value::String(s) => s
            .contains('\0')
            .then(|| if at.is_empty() { "/".to_owned() } else { at.clone() }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, join(&i.to_string()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(join(k))
            } else {
                nul_path(x, join(k))
            }
        }),
        _ => None,
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_kind(req.headers(), false)?;
        let bytes = read_body(req, state).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}
