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

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use xuefen_core::event::Millis;
use xuefen_core::ids::LearnerId;
use xuefen_store::Principal;

use crate::AppState;
use crate::problem::ApiError;
use crate::stats::{SiteStatsOut, stats_year};
use crate::transcript::{Page, TranscriptOut, transcript_page};

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

// ------------------------------------------------------------------ the learner's page

/// The statuses of a transcript line, in Chinese.
fn status_zh(status: &str) -> &'static str {
    match status {
        "awarded" => "已获学分",
        "recognised" => "已互认（同组课程已计学分）",
        "capped" => "已达年度上限",
        "promoted" => "转为计分",
        "reversed" => "已撤销",
        "reversal" => "撤销记录",
        "not_passed" => "未通过",
        "deposited" => "已存入学分银行",
        "rejected_by_bank" => "学分银行未接受",
        _ => "其他",
    }
}

#[derive(Serialize)]
struct LineView {
    date: String,
    course: String,
    course_code: String,
    site: String,
    category: String,
    credits: String,
    status: &'static str,
    status_code: String,
}

#[derive(Serialize)]
struct YearView {
    year: String,
    total: Option<String>,
    lines: Vec<LineView>,
}

#[derive(Serialize)]
struct TotalView {
    label: String,
    credits: String,
}

/// The query without empty fields (a form sends `year=` when left blank).
fn without_blanks(query: Option<&str>) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.ends_with('='))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (the values here are ids and positions,
/// but nothing is assumed).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of `name` in a query already cleaned by [`without_blanks`].
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.replace("%3A", ":").replace("%3a", ":"))
}

pub(crate) async fn signed_in_learner(state: &AppState, headers: &HeaderMap) -> Result<LearnerId, Response> {
    let Some(verifier) = &state.sso else {
        return Err(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "本服务尚未配置统一身份认证，暂时无法登录。",
        ));
    };
    let from_cookie = bearer(headers).is_none();
    let Some(token) = bearer(headers).or_else(|| cookie(headers, LEARNER_COOKIE)) else {
        return Err(render(StatusCode::UNAUTHORIZED, "me_login.html", context! {}));
    };
    verifier.learner(state, token).await.map_err(|e| {
        let mut resp = render(
            StatusCode::UNAUTHORIZED,
            "me_login.html",
            context! { reason => e.0.detail },
        );
        if from_cookie && let Ok(v) = HeaderValue::from_str(&clear_cookie(headers, LEARNER_COOKIE, "/me")) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    })
}

/// The signed-in learner's transcript as a page in Chinese (the same
/// filters and paging as `/v1/me/transcript`). Without a valid token: the
/// sign-in page, 401.
#[utoipa::path(get, path = "/me", operation_id = "get_me_page", tag = "pages",
    security(("sso" = []), ("sso_cookie" = [])),
    params(("after" = Option<String>, Query, description = "cursor of the next page"),
           ("limit" = Option<u32>, Query, description = "lines per page, 1 to 500 (default 100)"),
           ("year" = Option<i32>, Query, description = "only this calendar year (CST); blank: all"),
           ("category" = Option<String>, Query, description = "only this category; blank: all"),
           ("site" = Option<String>, Query, description = "only this site (its id); blank: all")),
    responses((status = 200, description = "the transcript page", content_type = "text/html"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html"), (status = 401, description = "the sign-in page", content_type = "text/html"), (status = 404, description = "an error page: no learner under the token's subject", content_type = "text/html"), (status = 422, description = "an error page naming the bad filter", content_type = "text/html"), (status = 503, description = "an error page: single sign-on not configured or the database unavailable", content_type = "text/html")))]
pub(crate) async fn me_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let learner = match signed_in_learner(&state, &headers).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let query = without_blanks(query.as_deref());
    let page = match Page::parse(Some(&query)) {
        Ok(p) => p,
        Err(e) => return api_error_page(e),
    };
    let limit = page.limit;
    match state.store.learner_exists(&learner).await {
        Ok(true) => {}
        Ok(false) => {
            return error_page(StatusCode::NOT_FOUND, "统一身份认证中的这位学习者尚未在学分银行登记。");
        }
        Err(e) => return api_error_page(e.into()),
    }
    let transcript = match transcript_page(&state, &learner, page).await {
        Ok(t) => t,
        Err(e) => return api_error_page(e),
    };
    let (verify_url, verify_qr) = crate::record::verify_qr_svg(&headers).unzip();
    render(
        StatusCode::OK,
        "me.html",
        context! { verify_url => verify_url, verify_qr => verify_qr, ..me_context(&transcript, &query, limit) },
    )
}

fn me_context(t: &TranscriptOut, query: &str, limit: usize) -> minijinja::Value {
    let site_name = |id: &str| t.site_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let mut years: BTreeMap<i32, Vec<LineView>> = BTreeMap::new();
    for e in &t.entries {
        let at = Millis::parse_rfc3339(&e.occurred_at, "occurred_at").ok();
        let year = at.map(Millis::year_cst).unwrap_or_default();
        let date = at
            .map(|m| {
                let d = (m.to_datetime() + time::Duration::hours(8)).date();
                format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
            })
            .unwrap_or_else(|| e.occurred_at.clone());
        let status = e.status.as_deref().unwrap_or_default();
        years.entry(year).or_default().push(LineView {
            date,
            course: e.course_title.clone().unwrap_or_else(|| e.course.clone()),
            course_code: e.course.clone(),
            site: e.site_name.clone().unwrap_or_else(|| e.site_id.clone()),
            category: e.category.clone(),
            credits: e.credits.clone(),
            status: status_zh(status),
            status_code: status.to_owned(),
        });
    }
    let years: Vec<YearView> = years
        .into_iter()
        .map(|(y, lines)| YearView {
            year: y.to_string(),
            total: t.totals.by_year.get(&y.to_string()).cloned(),
            lines,
        })
        .collect();
    let totals = |m: &BTreeMap<String, String>, name: &dyn Fn(&str) -> String| -> Vec<TotalView> {
        m.iter()
            .map(|(k, v)| TotalView {
                label: name(k),
                credits: v.clone(),
            })
            .collect()
    };
    let filters = ["year", "category", "site"]
        .iter()
        .filter_map(|name| query_value(query, name).map(|v| (*name, v)))
        .collect::<BTreeMap<_, _>>();
    let keep = filters
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .chain((limit != crate::PAGE_SIZE_DEFAULT).then(|| format!("limit={limit}")))
        .collect::<Vec<_>>();
    let next = t.next_after.as_ref().map(|after| {
        let mut q = keep.clone();
        q.push(format!("after={}", encode(after)));
        format!("/me?{}", q.join("&"))
    });
    let first = (query_value(query, "after").is_some()).then(|| format!("/me?{}", keep.join("&")));
    let sites = t
        .site_names
        .iter()
        .map(|(id, name)| context! { id, name })
        .collect::<Vec<_>>();
    context! {
        learner_id => t.learner_id,
        total => t.totals.total,
        by_year => totals(&t.totals.by_year, &|y: &str| format!("{y} 年")),
        by_category => totals(&t.totals.by_category, &|c: &str| c.to_owned()),
        by_site => totals(&t.totals.by_site, &site_name),
        years,
        filter_year => filters.get("year"),
        filter_category => filters.get("category"),
        filter_site => filters.get("site"),
        filtered => !filters.is_empty(),
        sites,
        next,
        first,
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    token: String,
}

/// Signs in with the single sign-on token (form field `token`): sets the
/// `xf_sso` cookie (HttpOnly, SameSite=Strict, Path=/me, Secure behind
/// TLS) and redirects to `/me`.
#[utoipa::path(post, path = "/me/login", operation_id = "post_me_login", tag = "pages",
    request_body(content_type = "application/x-www-form-urlencoded", description = "`token=<jwt>`"),
    responses((status = 303, description = "signed in: cookie set, redirect to /me"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html"), (status = 401, description = "the sign-in page with the reason", content_type = "text/html"), (status = 503, description = "an error page: single sign-on not configured", content_type = "text/html")))]
pub(crate) async fn me_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Some(verifier) = &state.sso else {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "本服务尚未配置统一身份认证，暂时无法登录。",
        );
    };
    let token = form.map(|Form(f)| f.token.trim().to_owned()).unwrap_or_default();
    if token.is_empty() {
        return render(
            StatusCode::UNAUTHORIZED,
            "me_login.html",
            context! { reason => "请填写统一身份认证令牌。" },
        );
    }
    // A JWT is base64url and dots; anything else cannot be a cookie value.
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return render(
            StatusCode::UNAUTHORIZED,
            "me_login.html",
            context! { reason => "the token is not a valid JWT" },
        );
    }
    match verifier.verify(&token) {
        Ok(_) => redirect("/me", Some(set_cookie(&headers, LEARNER_COOKIE, "/me", &token))),
        Err(e) => render(
            StatusCode::UNAUTHORIZED,
            "me_login.html",
            context! { reason => e.0.detail },
        ),
    }
}

/// Signs out: clears the `xf_sso` cookie and redirects to `/me`.
#[utoipa::path(post, path = "/me/logout", operation_id = "post_me_logout", tag = "pages",
    responses((status = 303, description = "cookie cleared, redirect to /me"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html")))]
pub(crate) async fn me_logout(headers: HeaderMap) -> Response {
    redirect("/me", Some(clear_cookie(&headers, LEARNER_COOKIE, "/me")))
}

// ------------------------------------------------------------------ the centre's page

type HmacSha256 = Hmac<Sha256>;

fn session_mac(state: &AppState, payload: &str) -> Option<HmacSha256> {
    // The session key is derived from the identity key (which every
    // instance shares) under a label of its own.
    let mut derive = HmacSha256::new_from_slice(&state.identity_key).ok()?;
    derive.update(b"xuefen admin page session v1");
    let key = derive.finalize().into_bytes();
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(payload.as_bytes());
    Some(mac)
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn session_cookie_value(state: &AppState, key_hash: &[u8; 32]) -> Option<String> {
    let payload = format!("{}.{}", unix_now() + ADMIN_SESSION_SECONDS, hex::encode(key_hash));
    let mac = session_mac(state, &payload)?.finalize().into_bytes();
    Some(format!("{payload}.{}", hex::encode(mac)))
}

/// The admin key hash a session cookie carries, if its MAC holds and it
/// has not expired.
fn session_key_hash(state: &AppState, value: &str) -> Option<[u8; 32]> {
    let (payload, mac) = value.rsplit_once('.')?;
    let (expires, hash) = payload.split_once('.')?;
    let mac = hex::decode(mac).ok()?;
    session_mac(state, payload)?.verify_slice(&mac).ok()?;
    if expires.parse::<i64>().ok()? <= unix_now() {
        return None;
    }
    hex::decode(hash).ok()?.try_into().ok()
}

fn admin_login_page(status: StatusCode, reason: Option<&str>) -> Response {
    render(status, "admin_login.html", context! { reason })
}

async fn signed_in_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(hash) = cookie(headers, ADMIN_COOKIE).and_then(|v| session_key_hash(state, v)) else {
        return Err(admin_login_page(StatusCode::UNAUTHORIZED, None));
    };
    match state.store.key_by_hash(&hash).await {
        Ok(Some(key)) if !key.revoked && matches!(key.principal, Principal::Admin) => Ok(()),
        Ok(_) => Err(admin_login_page(
            StatusCode::UNAUTHORIZED,
            Some("登录所用的管理密钥已失效，请重新登录。"),
        )),
        Err(e) => Err(api_error_page(e.into())),
    }
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    key: String,
}

/// Signs in with the admin key (form field `key`): sets the `xf_admin`
/// session cookie (8 hours; HttpOnly, SameSite=Strict, Path=/admin,
/// Secure behind TLS) and redirects to `/admin`. Site and bank keys are
/// refused.
#[utoipa::path(post, path = "/admin/login", operation_id = "post_admin_login", tag = "pages",
    request_body(content_type = "application/x-www-form-urlencoded", description = "`key=<admin key>`"),
    responses((status = 303, description = "signed in: session cookie set, redirect to /admin"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html"), (status = 401, description = "the sign-in page: no or unknown key", content_type = "text/html"), (status = 403, description = "the sign-in page: not the admin key", content_type = "text/html")))]
pub(crate) async fn admin_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<KeyForm>, FormRejection>,
) -> Response {
    let key = form.map(|Form(f)| f.key.trim().to_owned()).unwrap_or_default();
    if key.is_empty() {
        return admin_login_page(StatusCode::UNAUTHORIZED, Some("请填写管理密钥。"));
    }
    let caller = match crate::auth::authenticate(&state, &key).await {
        Ok(c) => c,
        Err(e) if e.0.status().is_server_error() => return api_error_page(e),
        Err(_) => return admin_login_page(StatusCode::UNAUTHORIZED, Some("管理密钥无效。")),
    };
    if !matches!(caller.principal, Principal::Admin) {
        return admin_login_page(
            StatusCode::FORBIDDEN,
            Some("这是网站或学分银行的密钥；此页面只对省中心的管理密钥开放。"),
        );
    }
    match session_cookie_value(&state, &crate::auth::secret_hash(&key)) {
        Some(value) => redirect("/admin", Some(set_cookie(&headers, ADMIN_COOKIE, "/admin", &value))),
        None => error_page(StatusCode::INTERNAL_SERVER_ERROR, "无法建立会话。"),
    }
}

/// Signs out: clears the `xf_admin` cookie and redirects to `/admin`.
#[utoipa::path(post, path = "/admin/logout", operation_id = "post_admin_logout", tag = "pages",
    responses((status = 303, description = "cookie cleared, redirect to /admin"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html")))]
pub(crate) async fn admin_logout(headers: HeaderMap) -> Response {
    redirect("/admin", Some(clear_cookie(&headers, ADMIN_COOKIE, "/admin")))
}

fn level_zh(level: xuefen_core::ids::SiteLevel) -> &'static str {
    use xuefen_core::ids::SiteLevel::*;
    match level {
        Province => "省级",
        City => "市级",
        County => "县级",
        Township => "乡镇级",
    }
}

fn site_status_zh(status: xuefen_core::ids::SiteStatus) -> &'static str {
    use xuefen_core::ids::SiteStatus::*;
    match status {
        Pending => "待生效",
        Active => "正常",
        Suspended => "暂停",
        Terminated => "已终止",
    }
}

fn cst_date(at: Option<Millis>) -> String {
    at.map(|m| {
        let d = (m.to_datetime() + time::Duration::hours(8)).date();
        format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    })
    .unwrap_or_else(|| "—".into())
}

#[derive(Serialize)]
struct Bar {
    month: u8,
    x: u32,
    y: u32,
    height: u32,
    credits: String,
}

/// Bars of a 12-month chart, scaled to the site's largest month.
fn bars(months: &[i64; 12]) -> (Vec<Bar>, String) {
    const HEIGHT: i64 = 60;
    let max = months.iter().copied().max().unwrap_or(0).max(1);
    let bars = months
        .iter()
        .enumerate()
        .map(|(i, &cents)| {
            let h = u32::try_from((cents.max(0) * HEIGHT) / max).unwrap_or(0);
            let month = u8::try_from(i + 1).unwrap_or(12);
            Bar {
                month,
                x: u32::from(month - 1) * 20 + 24,
                y: 70 - h,
                height: h,
                credits: xuefen_core::amount::Credits::from_cents(cents).to_string(),
            }
        })
        .collect();
    let peak = xuefen_core::amount::Credits::from_cents(months.iter().copied().max().unwrap_or(0)).to_string();
    (bars, peak)
}

/// The provincial centre's page: every alliance site with its level,
/// region, status and agreement dates, the year's figures against the
/// agreement (met / not met) and an SVG chart of credits by month. Admin
/// session (see `/admin/login`); without one, the sign-in page, 401.
#[utoipa::path(get, path = "/admin", operation_id = "get_admin_page", tag = "pages",
    security(("admin_session" = [])),
    params(("year" = Option<i32>, Query, description = "calendar year (CST), 2000 to 2100; default: the current year")),
    responses((status = 200, description = "the alliance page", content_type = "text/html"), (status = 400, description = "an error page: the address holds U+0000", content_type = "text/html"), (status = 401, description = "the sign-in page", content_type = "text/html"), (status = 422, description = "an error page naming the bad year", content_type = "text/html"), (status = 503, description = "an error page: the database is unavailable", content_type = "text/html")))]
pub(crate) async fn admin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(resp) = signed_in_admin(&state, &headers).await {
        return resp;
    }
    let query = without_blanks(query.as_deref());
    let year = match stats_year(Some(&query)) {
        Ok(y) => y,
        Err(e) => return api_error_page(e),
    };
    let read = async {
        let sites = state.store.sites().await?;
        let stats = state.store.site_year_stats(None, year, state.stats.rule).await?;
        let months = state.store.site_month_credits(year).await?;
        Ok::<_, xuefen_store::StoreError>((sites, stats, months))
    };
    let (sites, stats, months) = match read.await {
        Ok(r) => r,
        Err(e) => return api_error_page(e.into()),
    };
    let mut by_month: BTreeMap<String, [i64; 12]> = BTreeMap::new();
    for (site, month, credits) in months {
        let slot = by_month.entry(site.as_str().to_owned()).or_insert([0; 12]);
        if let Some(m) = slot.get_mut(usize::from(month) - 1) {
            *m = m.saturating_add(credits.cents());
        }
    }
    let stats: BTreeMap<String, SiteStatsOut> = stats
        .iter()
        .map(|r| (r.site.as_str().to_owned(), SiteStatsOut::new(r, year, &state.stats)))
        .collect();
    let rows = sites
        .iter()
        .map(|s| {
            let st = stats.get(s.id.as_str());
            let (bars, peak) = bars(by_month.get(s.id.as_str()).unwrap_or(&[0; 12]));
            context! {
                id => s.id.as_str(),
                name => s.name,
                level => level_zh(s.level),
                region => s.region_code.as_str(),
                status => site_status_zh(s.status),
                starts => cst_date(s.agreement_starts_at),
                ends => cst_date(s.agreement_ends_at),
                stats => st,
                bars,
                peak,
            }
        })
        .collect::<Vec<_>>();
    render(
        StatusCode::OK,
        "admin.html",
        context! {
            year,
            previous => year - 1,
            next => year + 1,
            rows,
            registrations_min => state.stats.registrations_min,
            learning_stars_min => state.stats.learning_stars_min,
            credits_each => state.stats.rule.credits_each.to_string(),
            star_credits => state.stats.rule.star_credits.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
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
