//! Erasure of a learner's xAPI data over HTTP, on both backends: an LMS
//! posts statements naming the learner by a clear `mbox` (whose SHA-1 the
//! site registered) and by their account, and stores State and Agent
//! Profile documents for them; after `DELETE /v1/learners/{id}` the door
//! answers 404 for those statements and documents and leaves them out of
//! every query, the site's document usage is down by them, another
//! learner's statements and documents answer as before, `xuefen verify`
//! passes, and the raw database bytes (the SQLite file and its WAL, a
//! `pg_dump`) hold neither the person's name, nor their mailbox, nor its
//! SHA-1.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(xapi_erasure_leaves_no_statement_or_document_that_names_the_person);

const MOODLE: &str = "https://moodle.xihu.example.edu";
const COURSE_IRI: &str = "https://moodle.xihu.example.edu/course/view.php?id=7";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const ATTENDED: &str = "http://adlnet.gov/expapi/verbs/attended";
const STATE: &str = "/xapi/activities/state";
const AGENT_PROFILE: &str = "/xapi/agents/profile";
/// The erased person: their name and their mailbox as the LMS writes it.
const NAME: &str = "欧阳明月";
const LATIN_NAME: &str = "Ouyang Mingyue";
const MBOX: &str = "mailto:Ouyang.Mingyue@example.edu";
/// The learner who stays.
const OTHER_NAME: &str = "Zhuge Kongming";

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

/// One xAPI request with the site's Basic credentials: status and body.
async fn xapi(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (StatusCode, String) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .basic_auth("xihu", Some(key))
        .header("X-Experience-API-Version", "1.0.3");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

fn statement(id: &str, verb: &str, actor: Value) -> Value {
    json!({
        "id": id,
        "actor": actor,
        "verb": {"id": verb, "display": {"en": "did"}},
        "object": {"objectType": "Activity", "id": COURSE_IRI,
                   "definition": {"name": {"zh-CN": "茶文化"}, "type": "http://adlnet.gov/expapi/activities/course"}},
        "timestamp": "2026-03-01T10:00:00+08:00"
    })
}

fn by_mbox() -> Value {
    json!({"objectType": "Agent", "name": NAME, "mbox": MBOX})
}

fn by_account(name: &str, user: &str) -> Value {
    json!({"objectType": "Agent", "name": name, "account": {"homePage": MOODLE, "name": user}})
}

fn state_path(agent: &Value, state: &str) -> String {
    format!(
        "{STATE}?activityId={}&agent={}&stateId={state}",
        enc(COURSE_IRI),
        enc(&agent.to_string())
    )
}

fn profile_path(agent: &Value, profile: &str) -> String {
    format!("{AGENT_PROFILE}?agent={}&profileId={profile}", enc(&agent.to_string()))
}

/// The site's (documents, bytes) in the admin's usage view.
async fn usage(app: &TestApp) -> (u64, u64) {
    let (status, body) = app.get("/v1/xapi/documents", &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .and_then(|sites| sites.iter().find(|u| u["site_id"] == "xihu"))
        .map_or((0, 0), |u| {
            (u["documents"].as_u64().unwrap_or(0), u["bytes"].as_u64().unwrap_or(0))
        })
}

async fn xapi_erasure_leaves_no_statement_or_document_that_names_the_person(app: TestApp) {
    assert_eq!(
        xuefen_api::xapi::DEFAULT_HOME_PAGE_PREFIX,
        xuefen_store::xapi_erasure::DEFAULT_HOME_PAGE_PREFIX,
        "erasure names accounts under the door's default home page"
    );
    let key = app.site("xihu").await;
    let (status, body) = app.put("/v1/xapi/profile", &key, json!({"home_page": MOODLE})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let course = json!({"title": "茶文化", "category": "community", "rule": {"kind": "fixed", "credits": "2.00"},
                        "activity_id": COURSE_IRI, "repeat": "every_completion"});
    let (status, body) = app.put("/v1/courses/tea-101", &key, course).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let gone = app.learner(&key, "u1", 601).await;
    app.learner(&key, "u2", 602).await;
    let sum = hex::encode(sha1::Sha1::digest(MBOX.as_bytes()));
    let (status, body) = app
        .put("/v1/xapi/accounts/u1", &key, json!({"mbox_sha1sum": sum}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let ids = [
        "6a000000-0000-4000-8000-000000000001",
        "6a000000-0000-4000-8000-000000000002",
        "6a000000-0000-4000-8000-000000000003",
    ];
    let statements = json!([
        statement(ids[0], COMPLETED, by_mbox()),
        statement(ids[1], ATTENDED, by_account(LATIN_NAME, "u1")),
        statement(ids[2], COMPLETED, by_account(OTHER_NAME, "u2")),
    ]);
    let (status, text) = xapi(
        &app,
        &key,
        Method::POST,
        "/xapi/statements",
        &[],
        Some(statements.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The clear mailbox was matched by its SHA-1: the completion is credited.
    let (status, entry) = app.get(&format!("/v1/events/{}", ids[0]), &key).await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["kind"], "awarded", "{entry}");

    let documents = [
        (
            state_path(&by_mbox(), "bookmark"),
            json!({"page": 3, "note": format!("{NAME}的书签")}),
        ),
        (
            profile_path(&by_account(LATIN_NAME, "u1"), "resume"),
            json!({"display": LATIN_NAME, "mail": MBOX}),
        ),
        (
            state_path(&by_account(OTHER_NAME, "u2"), "bookmark"),
            json!({"page": 1, "who": OTHER_NAME}),
        ),
    ];
    for (path, body) in &documents {
        let (status, text) = xapi(
            &app,
            &key,
            Method::PUT,
            path,
            &[("If-None-Match", "*")],
            Some(body.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}: {text}");
    }
    let size = |i: usize| documents[i].1.to_string().len() as u64;
    assert_eq!(usage(&app).await, (3, size(0) + size(1) + size(2)));
    let raw = app.raw_database_bytes().await;
    let holds = |raw: &[u8], needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        holds(&raw, "Ouyang.Mingyue@example.edu") || holds(&raw, "ouyang.mingyue@example.edu"),
        "the scan below would see the mailbox"
    );

    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/learners/{gone}?reason_code=pipl_art47"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for id in &ids[..2] {
        let (status, text) = xapi(
            &app,
            &key,
            Method::GET,
            &format!("/xapi/statements?statementId={id}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {text}");
        let path = format!("/xapi/statements?voidedStatementId={id}");
        assert_eq!(
            xapi(&app, &key, Method::GET, &path, &[], None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let (status, text) = xapi(
        &app,
        &key,
        Method::GET,
        &format!("/xapi/statements?statementId={}", ids[2]),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the other learner's statement stays: {text}");
    for agent in [by_mbox(), by_account(LATIN_NAME, "u1")] {
        let path = format!("/xapi/statements?agent={}&related_agents=true", enc(&agent.to_string()));
        let (status, text) = xapi(&app, &key, Method::GET, &path, &[], None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let found: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(found["statements"], json!([]), "{agent}: {text}");
    }
    let (status, text) = xapi(&app, &key, Method::GET, "/xapi/statements", &[], None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let all: Value = serde_json::from_str(&text).expect("json");
    let listed: Vec<&str> = all["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed, vec![ids[2]]);
    for (path, _) in &documents[..2] {
        let (status, text) = xapi(&app, &key, Method::GET, path, &[], None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {text}");
    }
    let (status, text) = xapi(&app, &key, Method::GET, &documents[2].0, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, documents[2].1.to_string());
    assert_eq!(
        usage(&app).await,
        (1, size(2)),
        "the usage is down by the erased documents"
    );

    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "xuefen verify after erasure: {out}");
    let raw = app.raw_database_bytes().await;
    let lower = String::from_utf8_lossy(&raw).to_lowercase();
    for needle in [NAME, LATIN_NAME, MBOX, "ouyang", sum.as_str()] {
        let needle = needle.to_lowercase();
        assert!(!lower.contains(&needle), "{needle} lies in the database after erasure");
    }
    assert!(
        holds(&raw, OTHER_NAME),
        "the other learner's statement and document still lie there (the scan reads the data)"
    );
}
