//! The Alternate Request Syntax of xAPI 1.0.3 (Communication 1.3): a
//! `POST` with `?method=GET|PUT|POST|DELETE` and nothing else in its query,
//! whose `application/x-www-form-urlencoded` body carries the headers
//! (`Authorization`, `X-Experience-API-Version`, `Content-Type`,
//! `Content-Length`, `If-Match`, `If-None-Match`), the request body as
//! `content`, and the other parameters. The request is rewritten into the
//! one it stands for before the version check and the handler see it (the
//! route is the POST's: each POST handler of the door answers the method it
//! was rewritten to). xAPI 2.0.0 removed the syntax: a request that speaks
//! 2.0.0 is refused.

use crate::problem_code::ProblemCode;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use xuefen_core::xapi::Version;

use super::headers::with_xapi_headers;
use super::read::percent_encode;
use super::{VERSION_HEADER, bad_request};

/// The form fields that are headers.
const HEADER_FIELDS: [&str; 6] = [
    "authorization",
    "x-experience-api-version",
    "content-type",
    "content-length",
    "if-match",
    "if-none-match",
];

fn refuse(field: &str, detail: &str) -> Response {
    with_xapi_headers(
        bad_request(ProblemCode::AlternateRequestInvalid, field, detail.to_owned()).into_response(),
        &Version::V1("1.0.3".into()),
    )
}

/// Why a request is not a valid Alternate Request Syntax: the field at
/// fault and what is wrong with it.
struct Refusal {
    field: String,
    detail: &'static str,
}

impl Refusal {
    fn new(field: &str, detail: &'static str) -> Self {
        Self {
            field: field.to_owned(),
            detail,
        }
    }

    fn answer(self) -> Response {
        refuse(&self.field, self.detail)
    }
}

/// Rewrites an Alternate Request Syntax request; passes any other through.
pub(super) async fn alternate_request_syntax(req: Request, next: Next) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let has_method = query.split('&').any(|p| p == "method" || p.starts_with("method="));
    if !has_method {
        return next.run(req).await;
    }
    match rewrite(req).await {
        Ok(rewritten) => next.run(rewritten).await,
        Err(refused) => refused,
    }
}

/// The request an Alternate Request Syntax `req` stands for, or the answer
/// that refuses it.
async fn rewrite(req: Request) -> Result<Request, Response> {
    let method = requested_method(&req).map_err(Refusal::answer)?;
    let (parts, body) = req.into_parts();
    let form_req = Request::from_parts(parts.clone(), body);
    let fields: Vec<(String, String)> = match axum::Form::<Vec<(String, String)>>::from_request(form_req, &()).await {
        Ok(axum::Form(f)) => f,
        Err(_) => {
            return Err(refuse(
                "content",
                "the form body is not application/x-www-form-urlencoded",
            ));
        }
    };
    let mut headers = parts.headers.clone();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    let (content, params) = unfold(fields, &mut headers).map_err(Refusal::answer)?;
    let speaks = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Version::parse);
    if speaks == Some(Version::V2) {
        return Err(with_xapi_headers(
            bad_request(
                ProblemCode::AlternateRequestSyntaxRemoved,
                "method",
                "xAPI 2.0.0 has no Alternate Request Syntax; send the request itself",
            )
            .into_response(),
            &Version::V2,
        ));
    }
    if content.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let path = parts.uri.path();
    let uri = if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", params.join("&"))
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return Err(refuse("?", "the form parameters do not make a URL"));
    };
    let mut rewritten = Request::new(Body::from(content.unwrap_or_default()));
    *rewritten.method_mut() = method;
    *rewritten.uri_mut() = uri;
    *rewritten.headers_mut() = headers;
    *rewritten.extensions_mut() = parts.extensions;
    Ok(rewritten)
}

/// The method a `POST ?method=…` with a form body stands for.
fn requested_method(req: &Request) -> Result<Method, Refusal> {
    if req.method() != Method::POST {
        return Err(Refusal::new("method", "the Alternate Request Syntax is a POST"));
    }
    let pairs: Vec<(String, String)> = match axum::extract::Query::try_from_uri(req.uri()) {
        Ok(axum::extract::Query(p)) => p,
        Err(_) => return Err(Refusal::new("?", "the query string is malformed")),
    };
    let [(name, method)] = pairs.as_slice() else {
        return Err(Refusal::new(
            "?",
            "the Alternate Request Syntax takes `method` alone in the query; the rest goes in the form",
        ));
    };
    let method = match (name.as_str(), method.as_str()) {
        ("method", "GET") => Method::GET,
        ("method", "PUT") => Method::PUT,
        ("method", "POST") => Method::POST,
        ("method", "DELETE") => Method::DELETE,
        _ => return Err(Refusal::new("method", "`method` is GET, PUT, POST or DELETE")),
    };
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(Refusal::new(
            "Content-Type",
            "the Alternate Request Syntax is application/x-www-form-urlencoded",
        ));
    }
    Ok(method)
}

/// Sorts the form's fields: header fields into `headers` (but
/// `Content-Length`, which the rewritten body sets), `content` into the
/// body, and the rest into query parameters, percent-encoded.
fn unfold(fields: Vec<(String, String)>, headers: &mut HeaderMap) -> Result<(Option<String>, Vec<String>), Refusal> {
    let mut content = None;
    let mut params = Vec::new();
    for (k, v) in fields {
        let lower = k.to_ascii_lowercase();
        if HEADER_FIELDS.contains(&lower.as_str()) {
            if lower == "content-length" {
                continue;
            }
            match (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(&v)) {
                (Ok(n), Ok(v)) => {
                    headers.insert(n, v);
                }
                _ => return Err(Refusal::new(&k, "is not a valid header value")),
            }
        } else if k == "content" {
            content = Some(v);
        } else {
            params.push(format!("{}={}", percent_encode(&k), percent_encode(&v)));
        }
    }
    Ok((content, params))
}
