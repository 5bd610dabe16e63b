//! The xAPI document resources and the statement-answer rules over HTTP,
//! as an LMS plug-in uses them: State and profile documents with ETags and
//! preconditions, JSON merge, HEAD, `since`, the site as its own tenant;
//! Activities and Agents; `related_agents`/`related_activities`;
//! `format=ids|canonical` with `Accept-Language` — each on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(
    xapi_documents_carry_etags_and_honour_if_match_and_if_none_match,
    xapi_documents_merge_on_post_list_since_and_delete_by_scope,
    xapi_documents_are_the_sites_own_and_the_admin_sees_every_sites_usage,
    xapi_the_activities_resource_unites_definitions_and_agents_answer_a_person,
    xapi_related_agents_and_related_activities_widen_the_query,
    xapi_format_ids_and_canonical_follow_accept_language,
    xapi_the_alternate_request_syntax_stands_for_the_request_at_1_0_3_only,
    xapi_multipart_attachments_match_by_sha2_and_come_back_with_attachments_true,
    xapi_signed_statements_carry_an_rs_jws_of_themselves,
);

const AGENT_PROFILE: &str = "/xapi/agents/profile";
const STATE: &str = "/xapi/activities/state";

struct Lrs {
    site: String,
    key: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn agent() -> String {
    json!({"objectType": "Agent", "account": {"homePage": "http://www.example.com/agentId/1", "name": "Rick James"}})
        .to_string()
}

async fn lrs(app: &TestApp, id: &str) -> Lrs {
    Lrs {
        site: id.into(),
        key: app.site(id).await,
    }
}

async fn call(
    app: &TestApp,
    lrs: &Lrs,
    method: Method,
    path: &str,
    version: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .basic_auth(&lrs.site, Some(&lrs.key))
        .header("X-Experience-API-Version", version);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some((ct, b)) = body {
        req = req.header("Content-Type", ct).body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{status}: {text}"
        );
    }
    Reply { status, headers, text }
}

fn profile_path(profile: &str) -> String {
    format!("{AGENT_PROFILE}?agent={}&profileId={profile}", enc(&agent()))
}

async fn xapi_documents_carry_etags_and_honour_if_match_and_if_none_match(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let path = profile_path("resume");
    let doc = json!({"name": "bookmark", "location": {"page": 3}}).to_string();
    let put = |headers: &'static [(&'static str, &'static str)], body: String| {
        call(
            &app,
            &lrs,
            Method::PUT,
            &path,
            "1.0.3",
            headers,
            Some(("application/json", body)),
        )
    };
    let r = put(&[], doc.clone()).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "1.0.3: a profile PUT names a precondition: {}",
        r.text
    );
    assert_eq!(
        put(&[("If-None-Match", "*")], doc.clone()).await.status,
        StatusCode::NO_CONTENT
    );
    let got = call(&app, &lrs, Method::GET, &path, "1.0.3", &[], None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text, doc, "a document is answered byte for byte");
    assert_eq!(got.header("content-type").as_deref(), Some("application/json"));
    let etag = got.header("etag").expect("ETag");
    assert_eq!(etag, format!("\"{}\"", hex::encode(sha1::Sha1::digest(doc.as_bytes()))));
    assert!(got.header("last-modified").is_some_and(|v| v.ends_with(" GMT")));
    let head = call(&app, &lrs, Method::HEAD, &path, "1.0.3", &[], None).await;
    assert_eq!((head.status, head.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(head.header("etag"), Some(etag.clone()));

    assert_eq!(
        put(&[("If-None-Match", "*")], "{}".into()).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let r = put(&[], "{}".into()).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "an existing profile needs If-Match: {}",
        r.text
    );
    assert!(!r.text.is_empty());
    assert_eq!(
        put(
            &[("If-Match", "\"1111111111111111111111111111111111111111\"")],
            "{}".into()
        )
        .await
        .status,
        StatusCode::PRECONDITION_FAILED
    );
    let unchanged = call(&app, &lrs, Method::GET, &path, "1.0.3", &[], None).await;
    assert_eq!(unchanged.text, doc, "a refused PUT changes nothing");
    let good: &'static str = Box::leak(etag.into_boxed_str());
    let replaced = json!({"name": "bookmark", "location": {"page": 4}}).to_string();
    let r = call(
        &app,
        &lrs,
        Method::PUT,
        &path,
        "1.0.3",
        &[("If-Match", good)],
        Some(("application/json", replaced.clone())),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        call(&app, &lrs, Method::GET, &path, "1.0.3", &[], None).await.text,
        replaced
    );
    let r = call(&app, &lrs, Method::DELETE, &path, "2.0.0", &[("If-Match", good)], None).await;
    assert_eq!(
        r.status,
        StatusCode::PRECONDITION_FAILED,
        "the old ETag no longer matches"
    );

    // The State resource overwrites freely at 1.0.3 and needs a
    // precondition at 2.0.0.
    let state = format!(
        "{STATE}?activityId={}&agent={}&stateId=s1",
        enc("http://x.example/a"),
        enc(&agent())
    );
    for (version, second) in [("1.0.3", StatusCode::NO_CONTENT), ("2.0.0", StatusCode::CONFLICT)] {
        let put = |b: &str| {
            call(
                &app,
                &lrs,
                Method::PUT,
                &state,
                version,
                &[],
                Some(("text/plain", b.to_owned())),
            )
        };
        call(&app, &lrs, Method::DELETE, &state, version, &[], None).await;
        assert_eq!(put("one").await.status, StatusCode::NO_CONTENT, "{version}");
        assert_eq!(put("two").await.status, second, "{version}");
    }
    let r = call(
        &app,
        &lrs,
        Method::GET,
        &format!("{STATE}?activityId=nope&agent={}", enc(&agent())),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "activityId");
    let r = call(
        &app,
        &lrs,
        Method::PUT,
        &format!(
            "{STATE}?activityId={}&agent={}&stateId=s2&registration=nope",
            enc("http://x.example/a"),
            enc(&agent())
        ),
        "1.0.3",
        &[],
        Some(("text/plain", "x".into())),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("registration"))
    );
}

async fn xapi_documents_merge_on_post_list_since_and_delete_by_scope(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let base = format!(
        "{STATE}?activityId={}&agent={}",
        enc("http://x.example/a"),
        enc(&agent())
    );
    let post = |id: &str, ct: &str, body: &str| {
        let path = format!("{base}&stateId={id}");
        let body = body.to_owned();
        let ct = ct.to_owned();
        let app = &app;
        let lrs = &lrs;
        async move { call(app, lrs, Method::POST, &path, "1.0.3", &[], Some((&ct, body))).await }
    };
    assert_eq!(
        post("a", "application/json", r#"{"car":"Honda","series":{"nascar":1}}"#)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post("a", "application/json", r#"{"series":{"indy":2},"type":"open"}"#)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let got = call(
        &app,
        &lrs,
        Method::GET,
        &format!("{base}&stateId=a"),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(got.json(), json!({"car":"Honda","series":{"indy":2},"type":"open"}));
    let r = post("a", "text/plain", "abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = post("a", "application/json", r#"{"a":1}{"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        call(
            &app,
            &lrs,
            Method::GET,
            &format!("{base}&stateId=a"),
            "1.0.3",
            &[],
            None
        )
        .await
        .json(),
        json!({"car":"Honda","series":{"indy":2},"type":"open"}),
        "a refused POST changes nothing"
    );
    let mid = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(post("b", "application/json", "{}").await.status, StatusCode::NO_CONTENT);
    let all = call(&app, &lrs, Method::GET, &base, "1.0.3", &[], None).await;
    assert_eq!(all.json(), json!(["a", "b"]));
    let since = mid
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let later = call(
        &app,
        &lrs,
        Method::GET,
        &format!("{base}&since={}", enc(&since)),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(later.json(), json!(["b"]));
    let r = call(
        &app,
        &lrs,
        Method::GET,
        &format!("{base}&since=yesterday"),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        call(&app, &lrs, Method::DELETE, &base, "1.0.3", &[], None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, &lrs, Method::GET, &base, "1.0.3", &[], None).await.json(),
        json!([])
    );
    assert_eq!(
        call(
            &app,
            &lrs,
            Method::GET,
            &format!("{base}&stateId=a"),
            "1.0.3",
            &[],
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

async fn xapi_documents_are_the_sites_own_and_the_admin_sees_every_sites_usage(app: TestApp) {
    let mine = lrs(&app, "xihu").await;
    let theirs = lrs(&app, "binjiang").await;
    let path = profile_path("p");
    let r = call(
        &app,
        &mine,
        Method::PUT,
        &path,
        "2.0.0",
        &[],
        Some(("application/json", "{\"a\":1}".into())),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, &theirs, Method::GET, &path, "2.0.0", &[], None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(
        &app,
        &theirs,
        Method::PUT,
        &path,
        "2.0.0",
        &[],
        Some(("text/plain", "b".into())),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "another site's document is not in the way"
    );
    assert_eq!(
        call(&app, &mine, Method::GET, &path, "2.0.0", &[], None).await.text,
        "{\"a\":1}"
    );
    let (status, usage) = app.get("/v1/xapi/documents", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let sites: Vec<(&str, u64, u64)> = usage
        .as_array()
        .expect("array")
        .iter()
        .map(|u| {
            (
                u["site_id"].as_str().unwrap_or(""),
                u["documents"].as_u64().unwrap_or(0),
                u["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(sites, vec![("binjiang", 1, 1), ("xihu", 1, 7)]);
    let (_, own) = app.get("/v1/xapi/documents", &mine.key).await;
    assert_eq!(own.as_array().map(Vec::len), Some(1), "a site sees its own usage only");
    let big = "x".repeat(xuefen_core::xapi::documents::DOCUMENT_BYTES_MAX + 1);
    let r = call(
        &app,
        &mine,
        Method::PUT,
        &profile_path("big"),
        "2.0.0",
        &[],
        Some(("text/plain", big)),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
}

async fn post_statements(app: &TestApp, lrs: &Lrs, body: Value) {
    let r = call(
        app,
        lrs,
        Method::POST,
        "/xapi/statements",
        "1.0.3",
        &[],
        Some(("application/json", body.to_string())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn xapi_the_activities_resource_unites_definitions_and_agents_answer_a_person(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let id = "http://www.example.com/verify/complete/34534100123";
    let s = |name: Value| {
        json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {"objectType": "Activity", "id": id, "definition": {"name": name}}})
    };
    post_statements(
        &app,
        &lrs,
        json!([s(json!({"en-US": "example meeting"})), s(json!({"fr-FR": "réunion"}))]),
    )
    .await;
    let r = call(
        &app,
        &lrs,
        Method::GET,
        &format!("/xapi/activities?activityId={}", enc(id)),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["definition"]["name"],
        json!({"en-US": "example meeting", "fr-FR": "réunion"})
    );
    let other = lrs_other(&app).await;
    let r = call(
        &app,
        &other,
        Method::GET,
        &format!("/xapi/activities?activityId={}", enc(id)),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"objectType": "Activity", "id": id}),
        "another site's statements define nothing here"
    );
    assert_eq!(
        call(&app, &lrs, Method::GET, "/xapi/activities", "1.0.3", &[], None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = call(
        &app,
        &lrs,
        Method::GET,
        &format!("/xapi/agents?agent={}", enc(&agent())),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["objectType"], "Person");
    assert_eq!(r.json()["account"][0]["name"], "Rick James");
    let r = call(
        &app,
        &lrs,
        Method::GET,
        &format!("/xapi/agents?agent={}", enc(r#"{"mbox":"a@example.com"}"#)),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn lrs_other(app: &TestApp) -> Lrs {
    lrs(app, "binjiang").await
}

async fn xapi_related_agents_and_related_activities_widen_the_query(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let id = "6a9c3a1e-5b7d-4c2a-9e8f-000000000001";
    post_statements(
        &app,
        &lrs,
        json!({"id": id, "actor": {"mbox": "mailto:a@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"}, "object": {"id": "http://x.example/lesson"},
        "context": {"instructor": {"mbox": "mailto:teacher@example.com"},
                    "contextActivities": {"parent": [{"id": "http://x.example/course"}]}}}),
    )
    .await;
    let ids = |q: String| {
        let app = &app;
        let lrs = &lrs;
        async move {
            let r = call(
                app,
                lrs,
                Method::GET,
                &format!("/xapi/statements?{q}"),
                "1.0.3",
                &[],
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
            r.json()["statements"]
                .as_array()
                .expect("statements")
                .iter()
                .map(|s| s["id"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        }
    };
    let teacher = enc(r#"{"mbox":"mailto:teacher@example.com"}"#);
    assert!(ids(format!("agent={teacher}")).await.is_empty());
    assert_eq!(
        ids(format!("agent={teacher}&related_agents=true")).await,
        vec![id.to_owned()]
    );
    let course = enc("http://x.example/course");
    assert!(ids(format!("activity={course}")).await.is_empty());
    assert_eq!(
        ids(format!("activity={course}&related_activities=true")).await,
        vec![id.to_owned()]
    );

    // At 2.0.0 the agents of `contextAgents` and the groups (and members) of
    // `contextGroups` are related agents too.
    let id2 = "6a9c3a1e-5b7d-4c2a-9e8f-000000000003";
    let r = call(
        &app,
        &lrs,
        Method::POST,
        "/xapi/statements",
        "2.0.0",
        &[],
        Some((
            "application/json",
            json!({"id": id2, "actor": {"mbox": "mailto:b@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"}, "object": {"id": "http://x.example/lesson-2"},
            "context": {"contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:coach@example.com"}}],
                        "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group",
                            "member": [{"mbox": "mailto:peer@example.com"}]}}]}})
            .to_string(),
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for agent in [
        r#"{"mbox":"mailto:coach@example.com"}"#,
        r#"{"mbox":"mailto:peer@example.com"}"#,
    ] {
        let agent = enc(agent);
        assert!(ids(format!("agent={agent}")).await.is_empty());
        assert_eq!(
            ids(format!("agent={agent}&related_agents=true")).await,
            vec![id2.to_owned()]
        );
    }
}

async fn xapi_format_ids_and_canonical_follow_accept_language(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let id = "6a9c3a1e-5b7d-4c2a-9e8f-000000000002";
    post_statements(&app, &lrs, json!({"id": id, "actor": {"objectType": "Agent", "name": "A", "mbox": "mailto:a@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-US": "attended", "en-GB": "attended (GB)"}},
        "object": {"objectType": "Activity", "id": "http://x.example/lesson",
                   "definition": {"name": {"en-US": "lesson", "zh-CN": "课"}}}})).await;
    let one = |q: &str, lang: Option<&'static str>| {
        let app = &app;
        let lrs = &lrs;
        let path = format!("/xapi/statements?statementId={id}&{q}");
        async move {
            let headers: Vec<(&str, &str)> = lang.map(|l| ("Accept-Language", l)).into_iter().collect();
            let r = call(app, lrs, Method::GET, &path, "1.0.3", &headers, None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json()
        }
    };
    let ids = one("format=ids", None).await;
    assert_eq!(
        ids["actor"],
        json!({"objectType": "Agent", "mbox": "mailto:a@example.com"})
    );
    assert_eq!(ids["verb"], json!({"id": "http://adlnet.gov/expapi/verbs/attended"}));
    assert_eq!(ids["object"], json!({"id": "http://x.example/lesson"}));
    let canonical = one("format=canonical", Some("zh-CN, en-GB;q=0.8")).await;
    assert_eq!(canonical["verb"]["display"], json!({"en-GB": "attended (GB)"}));
    assert_eq!(canonical["object"]["definition"]["name"], json!({"zh-CN": "课"}));
    let exact = one("format=exact", Some("zh-CN")).await;
    assert_eq!(
        exact["verb"]["display"],
        json!({"en-US": "attended", "en-GB": "attended (GB)"})
    );
}

async fn xapi_the_alternate_request_syntax_stands_for_the_request_at_1_0_3_only(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let id = "6a9c3a1e-5b7d-4c2a-9e8f-000000000003";
    let statement =
        json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {"id": "http://x.example/lesson"}})
        .to_string();
    let auth = app
        .client
        .get(&app.base)
        .basic_auth(&lrs.site, Some(&lrs.key))
        .build()
        .expect("request")
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("basic credentials")
        .to_owned();
    let send = |query: &str, form: Vec<(&'static str, String)>| {
        let url = format!("{}/xapi/statements?{query}", app.base);
        let client = app.client.clone();
        async move {
            let r = client.post(url).form(&form).send().await.expect("request");
            let status = r.status();
            (status, r.text().await.expect("body"))
        }
    };
    let put = vec![
        ("statementId", id.to_owned()),
        ("content", statement.clone()),
        ("X-Experience-API-Version", "1.0.3".to_owned()),
        ("Authorization", auth.clone()),
    ];
    let (status, text) = send("method=PUT", put.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let (status, text) = send(
        "method=GET",
        vec![
            ("statementId", id.to_owned()),
            ("X-Experience-API-Version", "1.0.3".into()),
            ("Authorization", auth.clone()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("json")["id"], id);
    let (status, _) = send(&format!("method=PUT&statementId={id}"), put.clone()).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "anything but `method` in the query is refused"
    );
    let mut v2 = put.clone();
    v2[2].1 = "2.0.0".into();
    let (status, text) = send("method=PUT", v2).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "2.0.0 has no Alternate Request Syntax: {text}"
    );
    assert!(text.contains("alternate_request_syntax_removed"), "{text}");
    let r = call(
        &app,
        &lrs,
        Method::PUT,
        "/xapi/statements?method=POST",
        "1.0.3",
        &[],
        Some(("application/json", statement)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the syntax is a POST");
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn multipart(boundary: &str, statement: &Value, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n{statement}").into_bytes();
    for (hash, content) in parts {
        b.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(content);
    }
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

async fn post_multipart(app: &TestApp, lrs: &Lrs, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
    let r = app
        .client
        .post(format!("{}/xapi/statements", app.base))
        .basic_auth(&lrs.site, Some(&lrs.key))
        .header("X-Experience-API-Version", "1.0.3")
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    (status, r.text().await.expect("body"))
}

async fn xapi_multipart_attachments_match_by_sha2_and_come_back_with_attachments_true(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let id = "6a9c3a1e-5b7d-4c2a-9e8f-000000000004";
    let bytes: &[u8] = b"resume data \x00\x01 binary";
    let statement = json!({"id": id, "actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {"id": "http://x.example/lesson"},
        "attachments": [{"usageType": "http://x.example/usage", "display": {"en-US": "notes"}, "contentType": "application/octet-stream",
                         "length": bytes.len(), "sha2": sha256(bytes)}]});
    let (status, text) = post_multipart(
        &app,
        &lrs,
        "multipart/mixed; boundary=abc",
        multipart("abc", &statement, &[]),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an attachment without fileUrl needs its part: {text}"
    );
    assert!(text.contains("attachment_part_missing"), "{text}");
    let (status, text) = post_multipart(
        &app,
        &lrs,
        "multipart/mixed; boundary=abc",
        multipart("abc", &statement, &[(&sha256(b"other"), bytes)]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("attachment_hash_mismatch"), "{text}");
    let (status, text) = post_multipart(
        &app,
        &lrs,
        "multipart/form-data; boundary=abc",
        multipart("abc", &statement, &[(&sha256(bytes), bytes)]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "only multipart/mixed: {text}");
    let r = call(
        &app,
        &lrs,
        Method::POST,
        "/xapi/statements",
        "1.0.3",
        &[],
        Some(("application/json", statement.to_string())),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "JSON alone cannot carry the bytes");
    let (status, text) = post_multipart(
        &app,
        &lrs,
        "multipart/mixed; boundary=abc",
        multipart("abc", &statement, &[(&sha256(bytes), bytes)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    let r = app
        .client
        .get(format!(
            "{}/xapi/statements?statementId={id}&attachments=true",
            app.base
        ))
        .basic_auth(&lrs.site, Some(&lrs.key))
        .header("X-Experience-API-Version", "1.0.3")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = ct
        .strip_prefix("multipart/mixed; boundary=")
        .expect("multipart/mixed")
        .to_owned();
    let body = r.bytes().await.expect("body").to_vec();
    let (json, parts) = xuefen_core::xapi::attachments::parse(&body, &boundary).expect("a multipart answer");
    assert_eq!(serde_json::from_slice::<Value>(&json).expect("json")["id"], id);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, bytes);
    let plain = call(
        &app,
        &lrs,
        Method::GET,
        &format!("/xapi/statements?statementId={id}&attachments=false"),
        "1.0.3",
        &[],
        None,
    )
    .await;
    assert_eq!(plain.header("content-type").as_deref(), Some("application/json"));
}

async fn xapi_signed_statements_carry_an_rs_jws_of_themselves(app: TestApp) {
    let lrs = lrs(&app, "xihu").await;
    let statement = json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
        "object": {"id": "http://x.example/lesson"}});
    let signed = |alg: &str, payload: &Value, content_type: &str| {
        let jws = format!(
            "{}.{}.{}",
            b64url(json!({"alg": alg}).to_string().as_bytes()),
            b64url(payload.to_string().as_bytes()),
            b64url(b"signature bytes")
        );
        let mut s = statement.clone();
        s["attachments"] = json!([{"usageType": "http://adlnet.gov/expapi/attachments/signature", "display": {"en-US": "signed"},
            "contentType": content_type, "length": jws.len(), "sha2": sha256(jws.as_bytes())}]);
        multipart("sig", &s, &[(&sha256(jws.as_bytes()), jws.as_bytes())])
    };
    let ct = "multipart/mixed; boundary=sig";
    for alg in ["RS256", "RS384", "RS512"] {
        let (status, text) = post_multipart(&app, &lrs, ct, signed(alg, &statement, "application/octet-stream")).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {text}");
    }
    let (status, text) = post_multipart(&app, &lrs, ct, signed("HS256", &statement, "application/octet-stream")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("signature_invalid"), "{text}");
    let (status, _) = post_multipart(&app, &lrs, ct, signed("RS256", &statement, "text/plain")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a signature is application/octet-stream"
    );
    let mut other = statement.clone();
    other["verb"]["id"] = "http://adlnet.gov/expapi/verbs/failed".into();
    let (status, _) = post_multipart(&app, &lrs, ct, signed("RS256", &other, "application/octet-stream")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the payload must be the statement");
}
