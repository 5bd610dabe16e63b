//! Request guards applied before any route: input the service can never
//! store is refused here, alike on both backends.

use crate::problem_code::ProblemCode;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::body::nul_problem;

/// Refuses a path or query holding an encoded U+0000 (`%00`): PostgreSQL
/// cannot store it in text, so it would otherwise reach the database and
/// fail there as an outage. The problem names the query parameter, or
/// `path` for a path segment.
pub(crate) async fn refuse_nul_in_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    // The browser pages answer as pages, the API as problems.
    let page = crate::pages::is_page_path(uri.path());
    let refuse = |field: String| {
        if page {
            crate::pages::error_page(
                axum::http::StatusCode::BAD_REQUEST,
                "链接中含有无法处理的字符 (U+0000)。The address holds the character U+0000.",
            )
        } else {
            nul_problem(field).into_response()
        }
    };
    if memchr::memmem::find(uri.path().as_bytes(), b"%00").is_some() {
        return refuse("path".to_owned());
    }
    if let Some(query) = uri.query()
        && let Some(pair) = query
            .split('&')
            .find(|p| memchr::memmem::find(p.as_bytes(), b"%00").is_some())
    {
        let key = pair.split('=').next().unwrap_or_default();
        let key = percent_decode(key);
        let field = if key.contains('\0') || key.is_empty() {
            "query".to_owned()
        } else {
            key
        };
        return refuse(field);
    }
    next.run(req).await
}

/// Percent-decodes a query key for naming it (lossy; only for messages).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns every error answer that is not yet a problem (axum's own
/// extractor rejections such as a bad path encoding or a repeated query
/// parameter, and 405) into `application/problem+json`, keeping `Allow`.
pub(crate) async fn errors_as_problems(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/problem+json"));
    // The browser pages (`/me`, `/admin`) answer their errors as HTML pages.
    let is_page = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_problem || is_page {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let (_, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let code = match status {
        axum::http::StatusCode::METHOD_NOT_ALLOWED => ProblemCode::MethodNotAllowed,
        axum::http::StatusCode::NOT_FOUND => ProblemCode::NotFound,
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
        s if s.is_server_error() => ProblemCode::Internal,
        _ => ProblemCode::BadRequest,
    };
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    let mut out = crate::problem::Problem::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    out
}

/// Refuses a request whose declared `Content-Length` is over the body
/// limit with a 413 problem before a byte of its body is read.
pub(crate) async fn refuse_long_content_length(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return crate::problem::Problem::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::BodyTooLarge,
            "the request body is larger than the limit (body_bytes_max)",
        )
        .into_response();
    }
    next.run(req).await
}
