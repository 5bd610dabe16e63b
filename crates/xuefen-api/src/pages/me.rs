//! The learner's transcript page (`/me`): signing in with the single sign-on
//! token (header or `xf_sso` cookie), the filter form, and the transcript's
//! lines, years and totals as the template shows them.

use super::{LEARNER_COOKIE, api_error_page, bearer, clear_cookie, cookie, error_page, redirect, render, set_cookie};
use crate::AppState;
use crate::transcript::{Page, TranscriptOut, transcript_page};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xuefen_core::event::Millis;
use xuefen_core::ids::LearnerId;

/// The statuses of a transcript line, in Chinese.
pub(super) fn status_zh(status: &str) -> &'static str {
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
pub(super) struct LineView {
    pub(super) date: String,
    pub(super) course: String,
    pub(super) course_code: String,
    pub(super) site: String,
    pub(super) category: String,
    pub(super) credits: String,
    pub(super) status: &'static str,
    pub(super) status_code: String,
}

#[derive(Serialize)]
pub(super) struct YearView {
    pub(super) year: String,
    pub(super) total: Option<String>,
    pub(super) lines: Vec<LineView>,
}

#[derive(Serialize)]
pub(super) struct TotalView {
    pub(super) label: String,
    pub(super) credits: String,
}

/// The query without empty fields (a form sends `year=` when left blank).
pub(super) fn without_blanks(query: Option<&str>) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.ends_with('='))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (the values here are ids and positions,
/// but nothing is assumed).
pub(super) fn encode(value: &str) -> String {
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
pub(super) fn query_value(query: &str, name: &str) -> Option<String> {
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
    match state.learner_store().learner_exists(&learner).await {
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
    let (verify_url, verify_qr) = crate::record::download::verify_qr_svg(&headers).unzip();
    render(
        StatusCode::OK,
        "me.html",
        context! { verify_url => verify_url, verify_qr => verify_qr, ..me_context(&transcript, &query, limit) },
    )
}

pub(super) fn me_context(t: &TranscriptOut, query: &str, limit: usize) -> minijinja::Value {
    let site_name = |id: &str| t.site_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let years = year_views(t);
    let filters = filters_of(query);
    let keep = kept_query(&filters, limit);
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
        by_year => total_views(&t.totals.by_year, &|y: &str| format!("{y} 年")),
        by_category => total_views(&t.totals.by_category, &|c: &str| c.to_owned()),
        by_site => total_views(&t.totals.by_site, &site_name),
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

/// The page's lines by calendar year (CST), each year with its total.
fn year_views(t: &TranscriptOut) -> Vec<YearView> {
    let mut years: BTreeMap<i32, Vec<LineView>> = BTreeMap::new();
    for e in &t.entries {
        let (year, line) = line_view(e);
        years.entry(year).or_default().push(line);
    }
    years
        .into_iter()
        .map(|(y, lines)| YearView {
            year: y.to_string(),
            total: t.totals.by_year.get(&y.to_string()).cloned(),
            lines,
        })
        .collect()
}

/// A transcript line as the page shows it, with its calendar year (CST).
fn line_view(e: &crate::transcript::EntryOut) -> (i32, LineView) {
    let at = Millis::parse_rfc3339(&e.occurred_at, "occurred_at").ok();
    let year = at.map(Millis::year_cst).unwrap_or_default();
    let date = at
        .map(|m| {
            let d = (m.to_datetime() + time::Duration::hours(8)).date();
            format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        })
        .unwrap_or_else(|| e.occurred_at.clone());
    let status = e.status.as_deref().unwrap_or_default();
    let line = LineView {
        date,
        course: e.course_title.clone().unwrap_or_else(|| e.course.clone()),
        course_code: e.course.clone(),
        site: e.site_name.clone().unwrap_or_else(|| e.site_id.clone()),
        category: e.category.clone(),
        credits: e.credits.clone(),
        status: status_zh(status),
        status_code: status.to_owned(),
    };
    (year, line)
}

/// Totals as the page lists them: each key's label and its credits.
fn total_views(m: &BTreeMap<String, String>, name: &dyn Fn(&str) -> String) -> Vec<TotalView> {
    m.iter()
        .map(|(k, v)| TotalView {
            label: name(k),
            credits: v.clone(),
        })
        .collect()
}

/// The filters the query sets (`year`, `category`, `site`), by name.
fn filters_of(query: &str) -> BTreeMap<&'static str, String> {
    ["year", "category", "site"]
        .iter()
        .filter_map(|name| query_value(query, name).map(|v| (*name, v)))
        .collect::<BTreeMap<_, _>>()
}

/// The query fields the page's links keep: the filters and a limit other than the default.
fn kept_query(filters: &BTreeMap<&str, String>, limit: usize) -> Vec<String> {
    filters
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .chain((limit != crate::PAGE_SIZE_DEFAULT).then(|| format!("limit={limit}")))
        .collect::<Vec<_>>()
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    #[serde(default)]
    pub(super) token: String,
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
