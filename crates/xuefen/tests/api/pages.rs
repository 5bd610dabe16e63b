//! The browser pages `/me` and `/admin`: over HTTP (status, headers,
//! cookies, escaping, filters, paging, HTML error pages) and in a real
//! headless Chromium (what a person sees, with screenshots), on each
//! backend.

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::{self, FormPages};
use crate::harness::{Backend, SSO_ISSUER, SSO_SECRET, TestApp, learner_token};

const EVIL_TITLE: &str = "<script>alert(1)</script>数学";

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_learner_and_admin_pages_read_well_over_http_and_in_a_browser() {
        super::pages_read_well(crate::harness::Backend::Postgres).await;
    }
}
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_learner_and_admin_pages_read_well_over_http_and_in_a_browser() {
        super::pages_read_well(crate::harness::Backend::Sqlite).await;
    }
}

/// A page fetched without following redirects.
struct Got {
    status: StatusCode,
    content_type: String,
    set_cookie: Option<String>,
    location: Option<String>,
    csp: Option<String>,
    body: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn fetch(req: reqwest::RequestBuilder) -> Got {
    let resp = req.send().await.expect("request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, set_cookie, location, csp) = (
        header("content-type").unwrap_or_default(),
        header("set-cookie"),
        header("location"),
        header("content-security-policy"),
    );
    let status = resp.status();
    let body = resp.text().await.expect("body");
    Got {
        status,
        content_type,
        set_cookie,
        location,
        csp,
        body,
    }
}

fn form(req: reqwest::RequestBuilder, name: &str, value: &str) -> reqwest::RequestBuilder {
    let encoded: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{name}={encoded}"))
}

/// The `name=value` part of a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().trim().to_owned()
}

fn assert_html(got: &Got, status: StatusCode) {
    assert_eq!(got.status, status, "{}", got.body);
    assert!(
        got.content_type.starts_with("text/html"),
        "{status} must be an HTML page, got {}",
        got.content_type
    );
}

async fn pages_read_well(backend: Backend) {
    // Agreement figures of one, so that a site with one registered star
    // learner meets them all and a site with none meets none.
    let stats = xuefen_api::StatsSettings {
        registrations_min: 1,
        learning_stars_min: 1,
        ..Default::default()
    };
    let app = TestApp::spawn_with_stats(backend, stats).await;
    let http = client();
    let url = |path: &str| format!("{}{path}", app.base);

    // Two sites; one course title is hostile markup.
    let xihu = app.site("xihu").await;
    let _quiet = app.site("quiet").await;
    let course = |title: &str, credits: &str| json!({"title": title, "category": "community", "rule": {"kind": "fixed", "credits": credits}});
    for (code, title, credits) in [
        ("TEA-1", "茶文化", "2"),
        ("EVIL-1", EVIL_TITLE, "3"),
        ("STAR-1", "书法进阶", "30"),
    ] {
        let (status, body) = app
            .put(&format!("/v1/courses/{code}"), &xihu, course(title, credits))
            .await;
        assert!(status.is_success(), "{body}");
    }
    let learner = app.learner(&xihu, "x-1", 1).await;
    let now = time::OffsetDateTime::now_utc();
    let this_year = (now + time::Duration::hours(8)).year();
    let this_month = u8::from((now + time::Duration::hours(8)).month());
    let recent = (now - time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let last_year = format!("{}-06-01T02:00:00Z", this_year - 1);
    for (id, code, at) in [
        ("p1", "TEA-1", last_year.as_str()),
        ("p2", "EVIL-1", recent.as_str()),
        ("p3", "STAR-1", recent.as_str()),
    ] {
        let event =
            json!({"kind": "completion", "course": code, "learner": {"local_account": "x-1"}, "completed_at": at});
        let (status, body) = app.put(&format!("/v1/events/{id}"), &xihu, event).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let total = "35.00";
    let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 600);

    // ---------------------------------------------------------------- /me over HTTP
    let anonymous = fetch(http.get(url("/me"))).await;
    assert_html(&anonymous, StatusCode::UNAUTHORIZED);
    assert!(anonymous.body.contains("action=\"/me/login\""), "{}", anonymous.body);

    let me = fetch(http.get(url("/me")).bearer_auth(&token)).await;
    assert_html(&me, StatusCode::OK);
    let csp = me.csp.clone().unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    for seen in [
        "茶文化",
        "书法进阶",
        "xihu 学习网",
        "已获学分",
        total,
        "30.00",
        "download-record",
    ] {
        assert!(me.body.contains(seen), "/me lacks {seen}: {}", me.body);
    }
    // The hostile title is text, never markup.
    assert!(
        me.body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;数学"),
        "{}",
        me.body
    );
    assert!(!me.body.contains("<script"), "{}", me.body);
    // One section per year, in order, each with its own total.
    let (older, newer) = (
        format!("id=\"year-{}\"", this_year - 1),
        format!("id=\"year-{this_year}\""),
    );
    let (o, n) = (me.body.find(&older), me.body.find(&newer));
    assert!(o.is_some() && n.is_some() && o < n, "{}", me.body);
    assert!(
        me.body.contains(&format!("{this_year} 年 · 本年学分 33.00")),
        "{}",
        me.body
    );

    // Filters narrow lines and totals; a blank field of the form is ignored.
    let filtered = fetch(
        http.get(url(&format!("/me?year={}&category=&site=xihu", this_year - 1)))
            .bearer_auth(&token),
    )
    .await;
    assert_html(&filtered, StatusCode::OK);
    assert!(filtered.body.contains("茶文化") && !filtered.body.contains("书法进阶"));
    assert!(
        filtered.body.contains("<div class=\"big\" id=\"total\">2.00</div>"),
        "{}",
        filtered.body
    );
    let bad = fetch(http.get(url("/me?year=abc")).bearer_auth(&token)).await;
    assert_html(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("year: must be a calendar year"), "{}", bad.body);

    // Paging: one line a page, the next link carries the cursor.
    let first = fetch(http.get(url("/me?limit=1")).bearer_auth(&token)).await;
    assert_html(&first, StatusCode::OK);
    let next = first
        .body
        .split("id=\"next-page\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .and_then(|h| h.split('"').next())
        .expect("a next-page link")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    assert!(next.starts_with("/me?limit=1&after="), "{next}");
    let second = fetch(http.get(url(&next)).bearer_auth(&token)).await;
    assert_html(&second, StatusCode::OK);
    assert!(second.body.contains("&lt;script&gt;") && !second.body.contains("茶文化"));

    // Signing in with a form sets an HttpOnly, SameSite=Strict cookie
    // (Secure behind TLS) and redirects; a bad token is refused.
    let refused = fetch(form(http.post(url("/me/login")), "token", "not.a.jwt")).await;
    assert_html(&refused, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("登录失败") && refused.set_cookie.is_none());
    let signed = fetch(form(http.post(url("/me/login")), "token", &token)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(signed.location.as_deref(), Some("/me"));
    let set = signed.set_cookie.clone().expect("a cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/me"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let tls = fetch(form(http.post(url("/me/login")), "token", &token).header("x-forwarded-proto", "https")).await;
    assert!(tls.set_cookie.unwrap_or_default().contains("; Secure"));
    let by_cookie = fetch(http.get(url("/me")).header("cookie", cookie_pair(&set))).await;
    assert_html(&by_cookie, StatusCode::OK);
    assert!(by_cookie.body.contains(total));
    let expired = learner_token(&learner, SSO_ISSUER, SSO_SECRET, -60);
    let stale = fetch(http.get(url("/me")).header("cookie", format!("xf_sso={expired}"))).await;
    assert_html(&stale, StatusCode::UNAUTHORIZED);
    assert!(stale.set_cookie.unwrap_or_default().contains("Max-Age=0"));
    let logout = fetch(http.post(url("/me/logout")).header("cookie", cookie_pair(&set))).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert!(logout.set_cookie.unwrap_or_default().contains("Max-Age=0"));

    // The API keeps answering problems.
    let api = fetch(http.get(url("/v1/me/transcript?year=abc")).bearer_auth(&token)).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.content_type, "application/problem+json");

    // ---------------------------------------------------------------- /admin over HTTP
    let anonymous = fetch(http.get(url("/admin"))).await;
    assert_html(&anonymous, StatusCode::UNAUTHORIZED);
    assert!(anonymous.body.contains("action=\"/admin/login\""));
    let site_key = fetch(form(http.post(url("/admin/login")), "key", &xihu)).await;
    assert_html(&site_key, StatusCode::FORBIDDEN);
    assert!(site_key.set_cookie.is_none());
    let wrong = fetch(form(http.post(url("/admin/login")), "key", "xf_000000")).await;
    assert_html(&wrong, StatusCode::UNAUTHORIZED);
    let signed = fetch(form(http.post(url("/admin/login")), "key", &app.admin)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let set = signed.set_cookie.clone().expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin"),
        "{set}"
    );
    assert!(!set.contains(&app.admin), "the cookie must not carry the key");
    let session = cookie_pair(&set);
    let admin = fetch(
        http.get(url(&format!("/admin?year={this_year}")))
            .header("cookie", &session),
    )
    .await;
    assert_html(&admin, StatusCode::OK);
    let row = |id: &str| {
        let start = admin.body.find(&format!("id=\"site-{id}\"")).expect("site row");
        let rest = &admin.body[start..];
        rest[..rest.find("</tr>").unwrap_or(rest.len())].to_owned()
    };
    let busy = row("xihu");
    assert!(busy.contains("xihu 学习网") && busy.contains("县级") && busy.contains("330106") && busy.contains("正常"));
    assert_eq!(
        busy.matches("达标").count() - busy.matches("未达标").count(),
        3,
        "{busy}"
    );
    assert!(busy.contains("1 / 1") && busy.contains("33.00"), "{busy}");
    assert!(
        busy.contains(&format!("<title>{this_month} 月：33.00 学分</title>")),
        "{busy}"
    );
    let quiet = row("quiet");
    assert_eq!(quiet.matches("未达标").count(), 3, "{quiet}");
    assert!(quiet.contains("0 / 1"));
    // A tampered session is refused.
    let forged = session.replacen("xf_admin=", "xf_admin=9", 1);
    assert_html(
        &fetch(http.get(url("/admin")).header("cookie", forged)).await,
        StatusCode::UNAUTHORIZED,
    );
    let bad_year = fetch(http.get(url("/admin?year=1")).header("cookie", &session)).await;
    assert_html(&bad_year, StatusCode::UNPROCESSABLE_ENTITY);

    // ---------------------------------------------------------------- in a real browser
    let Some(chromium) = browser::chromium_or_skip("browser part of the page test") else {
        return;
    };
    let out = browser::output_dir("pages", backend);
    // Signs in through the service's own forms: `/me` posts the token to
    // `/me/login`, `/admin` the admin key to `/admin/login`, and the
    // service's redirect lands on the page.
    let (token_field, admin_key) = (token.clone(), app.admin.clone());
    let helper = FormPages::start(&app.base, move |path| {
        if path.starts_with("/admin") {
            ("/admin/login", vec![("key".to_owned(), admin_key.clone())])
        } else {
            ("/me/login", vec![("token".to_owned(), token_field.clone())])
        }
    })
    .await;

    let me_dom = chromium.dump_dom(&helper.url("/me")).await;
    for seen in ["茶文化", "书法进阶", "xihu 学习网", "已获学分", total, "学习记录凭证"] {
        assert!(me_dom.contains(seen), "the browser's /me lacks {seen}: {me_dom}");
    }
    assert!(me_dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;数学"), "{me_dom}");
    assert!(
        !me_dom.contains("<script"),
        "no script element may reach the page: {me_dom}"
    );
    chromium.screenshot(&helper.url("/me"), &out.join("me.png")).await;
    // Print to PDF: the summary on a page of its own, then one page per year.
    let pdf = out.join("me.pdf");
    chromium
        .run(
            &helper.url("/me"),
            &[
                format!("--print-to-pdf={}", pdf.display()),
                "--no-pdf-header-footer".into(),
            ],
        )
        .await;
    let bytes = std::fs::read(&pdf).expect("the printed PDF");
    let text = String::from_utf8_lossy(&bytes);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert_eq!(pages, 3, "summary, {} and {this_year}: one page each", this_year - 1);

    // The service lands the browser on `/admin`: this year's table.
    let admin_dom = chromium.dump_dom(&helper.url("/admin")).await;
    for seen in ["联盟网站一览", "xihu 学习网", "quiet 学习网", "达标", "未达标", "33.00"] {
        assert!(
            admin_dom.contains(seen),
            "the browser's /admin lacks {seen}: {admin_dom}"
        );
    }
    assert!(admin_dom.contains("<svg"), "{admin_dom}");
    chromium.screenshot(&helper.url("/admin"), &out.join("admin.png")).await;
    for shot in ["me.png", "admin.png"] {
        browser::assert_screenshot(&out.join(shot));
    }
    println!("screenshots in {}", out.display());
}
