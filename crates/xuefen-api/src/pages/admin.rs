//! The provincial centre's alliance table (`/admin`): signing in with the
//! admin key into an HMAC-sealed session cookie, and the table of sites with
//! their standing and a bar chart of the year's registrations by month.

use super::me::without_blanks;
use super::{
    ADMIN_COOKIE, ADMIN_SESSION_SECONDS, api_error_page, clear_cookie, cookie, error_page, redirect, render, set_cookie,
};
use crate::AppState;
use crate::stats::{SiteStatsOut, stats_year};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use minijinja::context;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use xuefen_core::event::Millis;
use xuefen_store::Principal;

pub(super) type HmacSha256 = Hmac<Sha256>;

pub(super) fn session_mac(state: &AppState, payload: &str) -> Option<HmacSha256> {
    // The session key is derived from the identity key (which every
    // instance shares) under a label of its own.
    let mut derive = HmacSha256::new_from_slice(&state.identity_key).ok()?;
    derive.update(b"xuefen admin page session v1");
    let key = derive.finalize().into_bytes();
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(payload.as_bytes());
    Some(mac)
}

pub(super) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) fn session_cookie_value(state: &AppState, key_hash: &[u8; 32]) -> Option<String> {
    let payload = format!("{}.{}", unix_now() + ADMIN_SESSION_SECONDS, hex::encode(key_hash));
    let mac = session_mac(state, &payload)?.finalize().into_bytes();
    Some(format!("{payload}.{}", hex::encode(mac)))
}

/// The admin key hash a session cookie carries, if its MAC holds and it
/// has not expired.
pub(super) fn session_key_hash(state: &AppState, value: &str) -> Option<[u8; 32]> {
    let (payload, mac) = value.rsplit_once('.')?;
    let (expires, hash) = payload.split_once('.')?;
    let mac = hex::decode(mac).ok()?;
    session_mac(state, payload)?.verify_slice(&mac).ok()?;
    if expires.parse::<i64>().ok()? <= unix_now() {
        return None;
    }
    hex::decode(hash).ok()?.try_into().ok()
}

pub(super) fn admin_login_page(status: StatusCode, reason: Option<&str>) -> Response {
    render(status, "admin_login.html", context! { reason })
}

pub(super) async fn signed_in_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(hash) = cookie(headers, ADMIN_COOKIE).and_then(|v| session_key_hash(state, v)) else {
        return Err(admin_login_page(StatusCode::UNAUTHORIZED, None));
    };
    match state.key_store().key_by_hash(&hash).await {
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
    pub(super) key: String,
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

pub(super) fn level_zh(level: xuefen_core::ids::SiteLevel) -> &'static str {
    use xuefen_core::ids::SiteLevel::*;
    match level {
        Province => "省级",
        City => "市级",
        County => "县级",
        Township => "乡镇级",
    }
}

pub(super) fn site_status_zh(status: xuefen_core::ids::SiteStatus) -> &'static str {
    use xuefen_core::ids::SiteStatus::*;
    match status {
        Pending => "待生效",
        Active => "正常",
        Suspended => "暂停",
        Terminated => "已终止",
    }
}

pub(super) fn cst_date(at: Option<Millis>) -> String {
    at.map(|m| {
        let d = (m.to_datetime() + time::Duration::hours(8)).date();
        format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    })
    .unwrap_or_else(|| "—".into())
}

#[derive(Serialize)]
pub(super) struct Bar {
    pub(super) month: u8,
    pub(super) x: u32,
    pub(super) y: u32,
    pub(super) height: u32,
    pub(super) credits: String,
}

/// Bars of a 12-month chart, scaled to the site's largest month.
pub(super) fn bars(months: &[i64; 12]) -> (Vec<Bar>, String) {
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
        let sites = state.site_store().sites().await?;
        let stats = state
            .stats_store()
            .site_year_stats(None, year, state.stats.rule)
            .await?;
        let months = state.stats_store().site_month_credits(year).await?;
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
