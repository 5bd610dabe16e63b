//! The xAPI headers: the version every request but `/xapi/about` must
//! name, and the headers every answer carries.

use super::CONSISTENT_THROUGH_HEADER;
use super::VERSION_HEADER;
use super::bad_request;
use crate::problem_code::ProblemCode;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use xuefen_core::event::Millis;
use xuefen_core::xapi::Version;

/// Whether the xAPI resource at `path` answers `method` (the router says
/// 405 to the others).
pub(super) fn resource_has_method(path: &str, method: &axum::http::Method) -> bool {
    use axum::http::Method;
    let read = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/xapi/about" | "/xapi/activities" | "/xapi/agents" => read,
        "/xapi/statements" => read || *method == Method::PUT || *method == Method::POST,
        "/xapi/activities/state" | "/xapi/activities/profile" | "/xapi/agents/profile" => {
            read || *method == Method::PUT || *method == Method::POST || *method == Method::DELETE
        }
        _ => read || *method == Method::PUT || *method == Method::POST,
    }
}

/// The version the door names on an answer to a request that named none
/// (setting `xapi_default_version`): 2.0.0 unless a deployment pins 1.0.3
/// for plug-ins that read the header. Put in the request's extensions by
/// the application's layers.
#[derive(Debug, Clone)]
pub struct DefaultVersion(pub Version);

impl Default for DefaultVersion {
    fn default() -> Self {
        Self(Version::V2)
    }
}

/// Checks `X-Experience-API-Version` on every request but `/xapi/about`,
/// and puts it (echoed, or the default version) and
/// `X-Experience-API-Consistent-Through` on every response.
pub(super) async fn xapi_headers(req: Request, next: Next) -> Response {
    let about = req.uri().path() == "/xapi/about";
    let default = req.extensions().get::<DefaultVersion>().cloned().unwrap_or_default().0;
    // A method the resource does not have is answered 405 by the router,
    // before credentials or the version are looked at.
    if !resource_has_method(req.uri().path(), req.method()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    // A request without credentials is told so first, whatever its version.
    if !about && !req.headers().contains_key(axum::http::header::AUTHORIZATION) {
        return with_xapi_headers(
            crate::auth::unauthorized("send the site id and an API key with HTTP Basic authentication").into_response(),
            &default,
        );
    }
    let version = match (given.as_deref().map(Version::parse), about) {
        (Some(Some(v)), _) => v,
        (None, true) | (Some(None), true) => default.clone(),
        (None, false) => {
            return with_xapi_headers(
                bad_request(
                    ProblemCode::VersionHeaderRequired,
                    VERSION_HEADER,
                    "send `X-Experience-API-Version: 1.0.3` (or 2.0.0) with every xAPI request",
                )
                .into_response(),
                &default,
            );
        }
        (Some(None), false) => {
            return with_xapi_headers(
                bad_request(
                    ProblemCode::VersionUnsupported,
                    VERSION_HEADER,
                    format!(
                        "`{}` is not a supported xAPI version ({})",
                        given.unwrap_or_default(),
                        Version::SUPPORTED.join(", ")
                    ),
                )
                .into_response(),
                &default,
            );
        }
    };
    let mut req = req;
    req.extensions_mut().insert(version.clone());
    with_xapi_headers(next.run(req).await, &version)
}

pub(super) fn with_xapi_headers(mut resp: Response, version: &Version) -> Response {
    let unauthorized = resp.status() == StatusCode::UNAUTHORIZED;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(version.as_str()) {
        h.insert(VERSION_HEADER, v);
    }
    // Every statement acknowledged before this instant is visible to the
    // query: a PUT or POST answers only after its statements committed.
    if let Ok(v) = HeaderValue::from_str(&now().to_rfc3339()) {
        h.insert(CONSISTENT_THROUGH_HEADER, v);
    }
    if unauthorized {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"xuefen-xapi\""),
        );
    }
    resp
}

pub(super) fn now() -> Millis {
    Millis::from_datetime(time::OffsetDateTime::now_utc())
}

pub(super) fn version_of(req_version: Option<&Version>) -> Version {
    req_version.cloned().unwrap_or(Version::V2)
}
