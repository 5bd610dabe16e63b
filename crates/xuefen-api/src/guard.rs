//! Request guards applied before any route: input the service can never
//! store is refused here, alike on both backends.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::body::nul_problem;

/// Refuses a path or query holding an encoded U+0000 (`%00`): PostgreSQL
/// cannot store it in text, so it would otherwise reach the database and
/// fail there as an outage. The problem names the query parameter, or
/// `path` for a path segment.
pub async fn refuse_nul_in_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if memchr::memmem::find(uri.path().as_bytes(), b"%00").is_some() {
        return nul_problem("path").into_response();
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
        return nul_problem(field).into_response();
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
