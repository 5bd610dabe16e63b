//! The browser pages: the learner's transcript (`/me`) and the provincial
//! centre's alliance table (`/admin`), rendered on the server in Chinese
//! from minijinja templates (`crates/xuefen-api/templates/`), with no
//! script at all.
//!
//! Templates whose names end in `.html` are auto-escaped by minijinja, so
//! every value a site sent (course titles, site names) reaches the page as
//! text; the `Content-Security-Policy` of every page also forbids scripts.
//! Errors of these routes are HTML pages, not problem documents.
//!
//! Signing in:
//! - `/me` takes the single sign-on token as `Authorization: Bearer <jwt>`,
//!   or from the `xf_sso` cookie that `POST /me/login` (a form with the
//!   token) sets: HttpOnly, SameSite=Strict, Path=/me, and Secure when the
//!   request came over TLS (`X-Forwarded-Proto: https` from the proxy that
//!   terminates it). The token is checked on every request, so the cookie
//!   lasts no longer than the token.
//! - `/admin` takes the admin key in the form of `POST /admin/login`, which
//!   sets the `xf_admin` session cookie (same attributes, Path=/admin): the
//!   SHA-256 of the key and an expiry, under an HMAC whose key is derived
//!   from the identity key, so every instance of the service accepts it.
//!   The key itself is looked up again on every request, so revoking it
//!   ends its sessions at once.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{Environment, context};

use crate::AppState;
use crate::problem::ApiError;

pub(crate) mod admin;
pub(crate) mod me;

use self::admin::{admin_login, admin_logout, admin_page};
use self::me::{me_login, me_logout, me_page};

const LEARNER_COOKIE: &str = "xf_sso";
const ADMIN_COOKIE: &str = "xf_admin";
/// How long an admin session lasts after signing in.
const ADMIN_SESSION_SECONDS: i64 = 8 * 3600;

/// Whether `path` is one of the browser pages' routes (below), which answer
/// their errors as HTML pages rather than problems.
pub(crate) fn is_page_path(path: &str) -> bool {
    ["/me", "/admin", "/verify"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me_page))
        .route("/me/login", post(me_login))
        .route("/me/logout", post(me_logout))
        .route("/admin", get(admin_page))
        .route("/admin/login", post(admin_login))
        .route("/admin/logout", post(admin_logout))
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("me.html", include_str!("../templates/me.html")),
        ("me_login.html", include_str!("../templates/me_login.html")),
        ("admin.html", include_str!("../templates/admin.html")),
        ("admin_login.html", include_str!("../templates/admin_login.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("verify.html", include_str!("../templates/verify.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are part of the binary; a broken one is caught
            // by the page tests. Logged, and the page answers 500.
            tracing::error!(template = name, error = %e, "template does not parse");
        }
    }
    env
});

// ------------------------------------------------------------------ responses

/// An HTML page with the headers every page carries.
fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

pub(crate) fn render_page(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    render(status, name, ctx)
}

fn render(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(template = name, error = %e, "page did not render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><meta charset=utf-8><title>内部错误</title><p>页面暂时无法显示，请稍后再试。</p>"
                    .into(),
            )
        }
    }
}

/// A readable error page for the browser routes.
pub(crate) fn error_page(status: StatusCode, detail: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "找不到记录",
        StatusCode::UNPROCESSABLE_ENTITY => "筛选条件有误",
        StatusCode::FORBIDDEN => "无权访问",
        StatusCode::SERVICE_UNAVAILABLE => "服务暂不可用",
        _ => "出错了",
    };
    render(
        status,
        "error.html",
        context! { heading, detail, status => status.as_u16() },
    )
}

/// An API error (from the handlers the pages share with the API) as a page.
pub(crate) fn api_error_page(e: ApiError) -> Response {
    let p = e.0;
    error_page(p.status(), &p.detail)
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(cookie) = cookie
        && let Ok(v) = HeaderValue::from_str(&cookie)
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether the request reached the service over TLS (the proxy in front
/// says so with `X-Forwarded-Proto`).
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, path: &str, value: &str) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}")
}

fn clear_cookie(headers: &HeaderMap, name: &str, path: &str) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::admin::bars;
    use super::me::{encode, query_value, without_blanks};
    use super::*;

    #[test]
    fn every_template_parses() {
        for name in [
            "me.html",
            "me_login.html",
            "admin.html",
            "admin_login.html",
            "error.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn blank_form_fields_are_dropped_and_values_encoded() {
        assert_eq!(without_blanks(Some("year=&category=it&site=")), "category=it");
        assert_eq!(encode("0:12"), "0%3A12");
        assert_eq!(query_value("after=0%3A12", "after").as_deref(), Some("0:12"));
    }

    #[test]
    fn bars_scale_to_the_largest_month_and_never_go_negative() {
        let mut months = [0i64; 12];
        months[2] = 10_00;
        months[5] = 5_00;
        months[7] = -3_00;
        let (bars, peak) = bars(&months);
        assert_eq!(peak, "10.00");
        assert_eq!(bars[2].height, 60);
        assert_eq!(bars[5].height, 30);
        assert_eq!(bars[7].height, 0);
        assert_eq!(bars[7].credits, "-3.00");
    }
}
