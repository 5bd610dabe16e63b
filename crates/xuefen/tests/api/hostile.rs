//! Hostile input: values the service cannot store, data after a JSON value,
//! decimals past what can be held exactly. Each is a 4xx problem naming the
//! field, alike on both backends, and nothing is written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{TestApp, completion};

backend_tests!(
    a_nul_character_anywhere_is_refused_naming_the_field,
    data_after_the_json_value_is_refused_and_nothing_is_written,
    decimals_past_28_digits_are_refused_not_rounded,
    every_error_is_a_problem_and_405_says_allow,
    the_native_api_accepts_json_media_types_only_and_names_others,
    a_declared_length_over_the_limit_is_refused_before_the_body_is_sent,
);

/// Sends `body` as raw bytes; answers the status and the problem (or Null).
async fn raw(app: &TestApp, method: Method, path: &str, key: &str, ctype: &str, body: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("content-type", ctype)
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(ctype.as_deref(), Some("application/problem+json"), "{status}: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn nul(status: StatusCode, body: &Value) -> (StatusCode, Value, Value) {
    (status, body["code"].clone(), body["field"].clone())
}

async fn a_nul_character_anywhere_is_refused_naming_the_field(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let bad = StatusCode::BAD_REQUEST;
    // Path segments and query parameters.
    let (s, b) = app.call(Method::DELETE, "/v1/keys/%00", Some(&app.admin), None).await;
    assert_eq!(nul(s, &b), (bad, json!("nul_character"), json!("path")));
    let (s, b) = app.get("/v1/events/e%001", &key).await;
    assert_eq!(nul(s, &b), (bad, json!("nul_character"), json!("path")));
    let (s, b) = app.get("/v1/sites?limit=1&cursor=a%00", &app.admin).await;
    assert_eq!(nul(s, &b), (bad, json!("nul_character"), json!("cursor")));
    // JSON strings of the native API, values and keys.
    let (s, b) = app
        .put(
            "/v1/xapi/profile",
            &key,
            json!({"home_page": "https://lms.example/\u{0}"}),
        )
        .await;
    assert_eq!(nul(s, &b), (bad, json!("nul_character"), json!("home_page")));
    let course = json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": "1"},
                        "activity_id": "http://x.example/\u{0}"});
    let (s, b) = app.put("/v1/courses/C2", &key, course).await;
    assert_eq!(nul(s, &b), (bad, json!("nul_character"), json!("activity_id")));
    let mut event = completion("u1", "C1", "5");
    event["event_id"] = json!("ok-1");
    let mut evil = completion("u1\u{0}", "C1", "5");
    evil["event_id"] = json!("nul-1");
    let (s, b) = app.post("/v1/events", &key, json!([event, evil])).await;
    // The item holding U+0000 gets its own rejected result; the other is written.
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["accepted"].clone(), b["rejected"].clone()),
        (json!(1), json!(1)),
        "{b}"
    );
    assert_eq!(b["results"][0]["status"], "accepted", "{b}");
    assert_eq!(b["results"][1]["event_id"], "nul-1", "{b}");
    assert_eq!(b["results"][1]["status"], "rejected", "{b}");
    assert_eq!(b["results"][1]["problem"]["code"], "nul_character", "{b}");
    assert_eq!(b["results"][1]["problem"]["field"], "1/learner/local_account", "{b}");
    let (s, _) = app.get("/v1/events/ok-1", &key).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/v1/events/nul-1", &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // An escaped backslash followed by `u0000` is text, not a NUL.
    let (s, b) = app
        .put(
            "/v1/courses/C3",
            &key,
            json!({"title": "a\\u0000b", "category": "community", "rule": {"kind": "fixed", "credits": "1"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["title"], "a\\u0000b");
    // The xAPI door, body and query.
    let statement = json!({"actor": {"account": {"homePage": "https://lms.example/", "name": "u\u{0}"}},
                           "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                           "object": {"id": "http://x.example/c"}});
    for (method, path, body) in [
        (Method::POST, "/xapi/statements", Some(statement.to_string())),
        (Method::GET, "/xapi/statements?verb=http://x.example/%00", None),
    ] {
        let mut req = app
            .client
            .request(method, format!("{}{path}", app.base))
            .basic_auth("xihu", Some(&key))
            .header("X-Experience-API-Version", "1.0.3");
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), bad, "{path}");
        let b: Value = resp.json().await.expect("problem");
        assert_eq!(b["code"], "nul_character", "{path}: {b}");
        assert!(
            b["field"] == "actor/account/name" || b["field"] == "verb",
            "{path}: {b}"
        );
    }
}

async fn data_after_the_json_value_is_refused_and_nothing_is_written(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let item = |id: &str| {
        let mut e = completion("u1", "C1", "5");
        e["event_id"] = json!(id);
        e.to_string()
    };
    let bad = (StatusCode::BAD_REQUEST, json!("trailing_data"));
    let body = format!("[{}][{}]", item("t2"), item("t3"));
    let (s, b) = raw(&app, Method::POST, "/v1/events", &key, "application/json", &body).await;
    assert_eq!((s, b["code"].clone()), bad, "{b}");
    let body = format!("{}{}\n", item("t4"), item("t5"));
    let (s, b) = raw(&app, Method::POST, "/v1/events", &key, "application/x-ndjson", &body).await;
    assert_eq!((s, b["code"].clone()), bad, "{b}");
    assert_eq!(b["field"], "0");
    let body = format!("{} this is not JSON", completion("u1", "C1", "5"));
    let (s, b) = raw(&app, Method::PUT, "/v1/events/t1", &key, "application/json", &body).await;
    assert_eq!((s, b["code"].clone()), bad, "{b}");
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        let (s, _) = app.get(&format!("/v1/events/{id}"), &key).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{id}");
    }
    // Trailing whitespace is fine.
    let body = format!("[{}]\n\t ", item("t6"));
    let (s, b) = raw(&app, Method::POST, "/v1/events", &key, "application/json", &body).await;
    assert_eq!((s, b["accepted"].clone()), (StatusCode::OK, json!(1)), "{b}");
}

async fn decimals_past_28_digits_are_refused_not_rounded(app: TestApp) {
    let key = app.site("xihu").await;
    let per8 = json!({"title": "t", "category": "community", "rule": {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"}});
    let (s, b) = app.put("/v1/courses/C8", &key, per8).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    app.learner(&key, "u1", 1).await;
    let (s, b) = app
        .put(
            "/v1/events/h1",
            &key,
            completion("u1", "C8", "7.99999999999999999999999999999"),
        )
        .await;
    assert_eq!(
        (s, b["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("hours")),
        "{b}"
    );
    let (s, _) = app.get("/v1/events/h1", &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let fixed = json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": "1.0000000000000000000000000000001"}});
    let (s, b) = app.put("/v1/courses/CF", &key, fixed).await;
    assert_eq!((s, b["field"].clone()), (StatusCode::BAD_REQUEST, json!("rule")), "{b}");
    assert!(b["detail"].as_str().is_some_and(|d| d.contains("held exactly")), "{b}");
    let (s, _) = app.get("/v1/courses/CF", &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn every_error_is_a_problem_and_405_says_allow(app: TestApp) {
    let key = app.site("xihu").await;
    let (s, b) = app.get("/v1/events/%FF", &key).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let bank = app.bank().await;
    let (s, b) = app.get("/v1/deposits?limit=1&limit=2", &bank).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app.get("/v1/nowhere", &key).await;
    assert_eq!((s, b["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    let resp = app
        .client
        .patch(format!("{}/v1/events", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        resp.headers()
            .get("allow")
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("POST")))
    );
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let b: Value = resp.json().await.expect("problem");
    assert_eq!(b["code"], "method_not_allowed");
}

async fn the_native_api_accepts_json_media_types_only_and_names_others(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let one = |id: &str| {
        let mut e = completion("u1", "C1", "5");
        e["event_id"] = json!(id);
        e.to_string()
    };
    // JSON under any spelling of its media type, with parameters.
    for (i, ctype) in [
        "application/json",
        "APPLICATION/JSON; charset=utf-8",
        "application/vnd.xuefen+json",
    ]
    .into_iter()
    .enumerate()
    {
        let (s, _) = raw(
            &app,
            Method::PUT,
            &format!("/v1/events/j{i}"),
            &key,
            ctype,
            &one(&format!("j{i}")),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{ctype}");
    }
    // NDJSON, case-insensitively, on the batch route.
    let lines = format!("{}\n{}\n", one("n1"), one("n2"));
    let (s, b) = raw(&app, Method::POST, "/v1/events", &key, "APPLICATION/X-NDJSON", &lines).await;
    assert_eq!((s, b["accepted"].clone()), (StatusCode::OK, json!(2)), "{b}");
    // Anything else is a 415 naming the media type; nothing is written.
    for (method, path, ctype) in [
        (Method::PUT, "/v1/events/f1", "application/x-www-form-urlencoded"),
        (Method::PUT, "/v1/events/f1", "text/plain"),
        (Method::PUT, "/v1/events/f1", "application/x-ndjson"),
        (Method::POST, "/v1/events", "text/csv; charset=utf-8"),
        (Method::PUT, "/v1/courses/C2", "multipart/form-data"),
    ] {
        let body = if path == "/v1/events" {
            format!("[{}]", one("f1"))
        } else {
            one("f1")
        };
        let (s, b) = raw(&app, method.clone(), path, &key, ctype, &body).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{method} {path} {ctype}: {b}");
        assert_eq!(b["code"], "unsupported_media_type");
        assert_eq!(b["field"], "content-type");
        let essence = ctype.split(';').next().unwrap_or_default();
        assert!(b["detail"].as_str().is_some_and(|d| d.contains(essence)), "{b}");
    }
    // No Content-Type at all.
    let resp = app
        .client
        .put(format!("{}/v1/events/f1", app.base))
        .bearer_auth(&key)
        .body(one("f1"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _) = app.get("/v1/events/f1", &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = app.site("xihu").await;
    let addr = app.base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    // Headers only: 64 MiB declared, not one byte of body sent.
    let head = format!(
        "PUT /v1/events/big HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was still owed");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(text.contains("content-type: application/problem+json"), "{text}");
}
