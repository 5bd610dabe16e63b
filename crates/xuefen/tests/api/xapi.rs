//! The xAPI door over HTTP, as an LMS plug-in uses it: statements shaped
//! like those of Moodle's logstore_xapi and of H5P, posted with Basic
//! credentials, read back exactly, and credited (or not) on the same ledger
//! as the native API — each scenario on both backends.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(
    xapi_a_moodle_course_completion_credits_the_linked_learner,
    xapi_an_h5p_quiz_passed_earns_the_declared_credits_never_a_scaled_amount,
    xapi_voiding_a_credited_completion_reverses_it,
    xapi_a_2_0_0_statement_is_stored_as_2_0_0_and_versions_are_checked,
    xapi_re_sends_conflicts_and_duplicates_follow_the_specification,
    xapi_a_post_is_all_or_nothing,
    xapi_the_query_filters_and_pages_with_more_links,
    xapi_basic_authentication_failures_are_refused,
    xapi_a_re_send_repairs_a_statement_lost_after_the_ledger_write,
    xapi_course_activity_ids_are_checked,
    xapi_concurrent_identical_posts_store_and_credit_once,
    xapi_filters_match_a_voiding_statement_through_its_target,
    xapi_statement_gets_carry_last_modified_of_the_stored_time,
);

const MOODLE: &str = "https://moodle.xihu.example.edu";
const COURSE_IRI: &str = "https://moodle.xihu.example.edu/course/view.php?id=7";
const QUIZ_IRI: &str = "https://moodle.xihu.example.edu/mod/h5pactivity/view.php?id=31";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// An xAPI response: status, headers and the body as text.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// One site with Basic credentials for its LMS.
struct Lms {
    site: String,
    key: String,
}

async fn xapi(
    app: &TestApp,
    lms: &Lms,
    method: Method,
    path: &str,
    version: Option<&str>,
    body: Option<String>,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .basic_auth(&lms.site, Some(&lms.key));
    if let Some(v) = version {
        req = req.header("X-Experience-API-Version", v);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b);
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
    assert!(
        headers.contains_key("x-experience-api-consistent-through"),
        "{path}: {headers:?}"
    );
    Reply { status, headers, text }
}

async fn post(app: &TestApp, lms: &Lms, body: &Value) -> Reply {
    xapi(
        app,
        lms,
        Method::POST,
        "/xapi/statements",
        Some("1.0.3"),
        Some(body.to_string()),
    )
    .await
}

async fn put(app: &TestApp, lms: &Lms, id: &str, body: &Value) -> Reply {
    let path = format!("/xapi/statements?statementId={id}");
    xapi(app, lms, Method::PUT, &path, Some("1.0.3"), Some(body.to_string())).await
}

async fn get(app: &TestApp, lms: &Lms, query: &str) -> Reply {
    let path = format!("/xapi/statements?{query}");
    xapi(app, lms, Method::GET, &path, Some("1.0.3"), None).await
}

/// Site `xihu` with its LMS home page declared, a 2.00-credit course with
/// the Moodle course's IRI, and learner account `u42` linked.
async fn moodle_site(app: &TestApp) -> (Lms, String) {
    let key = app.site("xihu").await;
    let (status, body) = app.put("/v1/xapi/profile", &key, json!({"home_page": MOODLE})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Crediting every completion: these scenarios count statements.
    let course = json!({"title": "茶文化", "category": "community", "rule": {"kind": "fixed", "credits": "2.00"},
                        "activity_id": COURSE_IRI, "repeat": "every_completion"});
    let (status, body) = app.put("/v1/courses/tea-101", &key, course).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["activity_id"], COURSE_IRI);
    let learner = app.learner(&key, "u42", 1).await;
    (
        Lms {
            site: "xihu".into(),
            key,
        },
        learner,
    )
}

/// A course completion as Moodle's logstore_xapi sends it.
fn moodle_completion(id: &str, user: &str) -> Value {
    json!({
        "id": id,
        "actor": {"objectType": "Agent", "name": "李华", "account": {"homePage": MOODLE, "name": user}},
        "verb": {"id": COMPLETED, "display": {"en": "completed"}},
        "object": {
            "objectType": "Activity",
            "id": COURSE_IRI,
            "definition": {"type": "http://adlnet.gov/expapi/activities/course",
                           "name": {"zh-CN": "茶文化"}, "extensions": {"https://w3id.org/learning-analytics/learning-management-system/short-id": "TEA101"}}
        },
        "timestamp": "2026-03-01T10:00:00+08:00",
        "context": {
            "platform": "Moodle",
            "language": "zh-CN",
            "extensions": {"http://lrs.learninglocker.net/define/extensions/info": {"https://moodle.org/": "4.3", "event_name": "\\core\\event\\course_completed"}},
            "contextActivities": {
                "grouping": [{"id": MOODLE, "definition": {"type": "http://id.tincanapi.com/activitytype/lms"}, "objectType": "Activity"}],
                "category": [{"id": "http://moodle.org", "definition": {"type": "http://id.tincanapi.com/activitytype/source"}, "objectType": "Activity"}]
            }
        }
    })
}

async fn transcript(app: &TestApp, key: &str, learner: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/learners/{learner}/transcript"), key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn statuses(transcript: &Value) -> Vec<(String, String, String)> {
    transcript["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_str().unwrap_or_default().to_owned(),
                e["credits"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn xapi_a_moodle_course_completion_credits_the_linked_learner(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let id = "0f9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    // Sent with its own formatting, which the LRS must keep.
    let text = format!("[ {} ]", moodle_completion(id, "u42"));
    let r = xapi(
        &app,
        &lms,
        Method::POST,
        "/xapi/statements",
        Some("1.0.3"),
        Some(text.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!([id]));
    assert_eq!(
        r.headers.get("x-experience-api-version").and_then(|v| v.to_str().ok()),
        Some("1.0.3")
    );

    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(t["totals"]["total"], "2.00");
    assert_eq!(
        statuses(&t),
        vec![(id.to_owned(), "awarded".to_owned(), "2.00".to_owned())]
    );
    assert_eq!(t["entries"][0]["course"], "tea-101");
    assert_eq!(t["entries"][0]["occurred_at"], "2026-03-01T02:00:00.000Z");

    // The native API sees the same event under the statement id.
    let (status, entry) = app.get(&format!("/v1/events/{id}"), &lms.key).await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["kind"], "awarded");

    let r = get(&app, &lms, &format!("statementId={id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = moodle_completion(id, "u42");
    let sent_text = sent.to_string();
    let inner = &sent_text[1..sent_text.len() - 1];
    assert!(
        r.text.starts_with(&format!("{{{inner},")),
        "returned as received, then the LRS's members: {}",
        r.text
    );
    let stored = r.json();
    assert_eq!(stored["authority"]["account"]["name"], "xihu");
    assert_eq!(stored["authority"]["account"]["homePage"], MOODLE);
    assert_eq!(stored["version"], "1.0.0");
    assert!(stored["stored"].as_str().is_some_and(|s| s.ends_with('Z')));

    // A completion by an account not linked to a learner is stored, earns nothing.
    let other = "1f9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let r = post(&app, &lms, &moodle_completion(other, "nobody")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &lms, &format!("statementId={other}")).await.status,
        StatusCode::OK
    );
    let (status, _) = app.get(&format!("/v1/events/{other}"), &lms.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "2.00");
}

async fn xapi_an_h5p_quiz_passed_earns_the_declared_credits_never_a_scaled_amount(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let quiz = json!({"title": "茶艺测验", "category": "community", "rule": {"kind": "fixed", "credits": "3.00"},
                      "pass_mark": "60", "activity_id": QUIZ_IRI});
    let (status, body) = app.put("/v1/courses/tea-quiz", &lms.key, quiz).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The H5P plug-in names its learner by a hashed e-mail address.
    let learner = app.learner(&lms.key, "u7", 2).await;
    let sum = hex::encode(sha1::Sha1::digest(b"mailto:li.hua@example.edu"));
    let (status, body) = app
        .put(
            "/v1/xapi/accounts/u7",
            &lms.key,
            json!({"mbox_sha1sum": sum.to_uppercase()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .put("/v1/xapi/accounts/u8", &lms.key, json!({"mbox_sha1sum": sum}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let passed = |id: &str, scaled: f64, actor: Value| {
        json!({
            "id": id,
            "actor": actor,
            "verb": {"id": PASSED, "display": {"en-US": "passed"}},
            "object": {"id": QUIZ_IRI, "objectType": "Activity",
                       "definition": {"type": "http://adlnet.gov/expapi/activities/cmi.interaction", "interactionType": "choice"}},
            "result": {"score": {"min": 0, "max": 20, "raw": (scaled * 20.0).round(), "scaled": scaled},
                       "success": true, "completion": true, "duration": "PT3H12M"},
            "context": {"contextActivities": {"category": [{"id": "http://h5p.org/libraries/H5P.QuestionSet-1.20", "objectType": "Activity"}]},
                        "extensions": {"http://h5p.org/x-api/h5p-local-content-id": 31}},
            "timestamp": "2026-04-02T09:30:00Z"
        })
    };
    let hashed = json!({"objectType": "Agent", "mbox_sha1sum": sum});
    let plain = json!({"objectType": "Agent", "mbox": "mailto:li.hua@example.edu"});
    let a = "2a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let b = "2b9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let answered = json!({
        "actor": hashed, "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": format!("{QUIZ_IRI}&subContentId=q1")},
        "result": {"response": "1", "success": true}
    });
    let r = post(
        &app,
        &lms,
        &json!([passed(a, 0.95, hashed.clone()), passed(b, 0.5, plain), answered]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids = r.json();
    assert_eq!(ids[0], a);
    assert_eq!(ids[1], b);
    assert!(
        ids[2].as_str().is_some_and(|s| s.len() == 36),
        "the LRS gave the third statement an id"
    );

    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(
        t["totals"]["total"], "3.00",
        "3.00 from the rule: not scaled by 0.95, not by 3.2 hours"
    );
    assert_eq!(
        statuses(&t),
        vec![
            (a.to_owned(), "awarded".to_owned(), "3.00".to_owned()),
            (b.to_owned(), "not_passed".to_owned(), "0.00".to_owned()),
        ],
        "the plain mbox matched the registered sum too; the answer earned nothing"
    );
}

async fn xapi_voiding_a_credited_completion_reverses_it(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let id = "3a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    assert_eq!(
        post(&app, &lms, &moodle_completion(id, "u42")).await.status,
        StatusCode::OK
    );
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "2.00");

    let void_id = "3b9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let voiding = json!({
        "actor": {"objectType": "Agent", "account": {"homePage": MOODLE, "name": "admin"}},
        "verb": {"id": VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": id}
    });
    let r = put(&app, &lms, void_id, &voiding).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(r.text, "");

    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(t["totals"]["total"], "0.00");
    assert_eq!(
        statuses(&t),
        vec![
            (id.to_owned(), "reversed".to_owned(), "2.00".to_owned()),
            (void_id.to_owned(), "reversal".to_owned(), "-2.00".to_owned()),
        ]
    );

    let r = get(&app, &lms, &format!("statementId={id}")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "statement_voided".to_owned())
    );
    let r = get(&app, &lms, &format!("voidedStatementId={id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["id"], id);
    let r = get(&app, &lms, &format!("voidedStatementId={void_id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let page = get(&app, &lms, "").await.json();
    let listed: Vec<&str> = page["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        listed,
        vec![void_id],
        "the voided statement is left out, the voiding one listed"
    );

    // A voiding statement cannot be voided, and a voiding statement's
    // object must be a StatementRef.
    let mut again = voiding.clone();
    again["object"]["id"] = json!(void_id);
    let r = post(&app, &lms, &again).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "voiding_a_voiding_statement".to_owned())
    );
    let mut wrong = voiding;
    wrong["object"] = json!({"id": COURSE_IRI});
    let r = post(&app, &lms, &wrong).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "voiding_object_not_statement_ref".to_owned())
    );
    assert_eq!(r.json()["field"], "object/objectType");
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "0.00");

    // A completion and its voiding in one POST: credited, then reversed.
    let both = "3c9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let mut void_both = wrong;
    void_both["object"] = json!({"objectType": "StatementRef", "id": both});
    let r = post(&app, &lms, &json!([moodle_completion(both, "u42"), void_both])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(t["totals"]["total"], "0.00");
    let lines = statuses(&t);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2], (both.to_owned(), "reversed".to_owned(), "2.00".to_owned()));
    assert_eq!(lines[3].1, "reversal");
}

async fn xapi_a_2_0_0_statement_is_stored_as_2_0_0_and_versions_are_checked(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let id = "4a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let mut s = moodle_completion(id, "u42");
    s["context"]["contextAgents"] =
        json!([{"objectType": "contextAgent", "agent": {"mbox": "mailto:teacher@example.edu"}}]);
    let body = Some(s.to_string());
    let r = xapi(
        &app,
        &lms,
        Method::POST,
        "/xapi/statements",
        Some("1.0.3"),
        body.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "unknown_property".to_owned())
    );
    assert_eq!(r.json()["field"], "context/contextAgents");
    let r = xapi(&app, &lms, Method::POST, "/xapi/statements", Some("2.0.0"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers.get("x-experience-api-version").and_then(|v| v.to_str().ok()),
        Some("2.0.0")
    );
    let r = xapi(
        &app,
        &lms,
        Method::GET,
        &format!("/xapi/statements?statementId={id}"),
        Some("2.0.0"),
        None,
    )
    .await;
    assert_eq!(r.json()["version"], "2.0.0");
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "2.00");

    let r = xapi(&app, &lms, Method::GET, "/xapi/statements", None, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "version_header_required".to_owned())
    );
    let r = xapi(&app, &lms, Method::GET, "/xapi/statements", Some("0.95"), None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "version_unsupported".to_owned())
    );
    let r = xapi(&app, &lms, Method::GET, "/xapi/statements", Some("1.0"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // /xapi/about needs neither credentials nor the header.
    let resp = app
        .client
        .get(format!("{}/xapi/about", app.base))
        .send()
        .await
        .expect("about");
    assert_eq!(resp.status(), StatusCode::OK);
    let about: Value = resp.json().await.expect("json");
    let versions: Vec<&str> = about["version"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(versions.contains(&"2.0.0") && versions.contains(&"1.0.3"), "{about}");
}

async fn xapi_re_sends_conflicts_and_duplicates_follow_the_specification(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let id = "5a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let s = moodle_completion(id, "u42");
    assert_eq!(put(&app, &lms, id, &s).await.status, StatusCode::NO_CONTENT);
    let entries = app.scalar("select count(*) from ledger_entries").await;
    let statements = app.scalar("select count(*) from xapi_statements").await;

    // Identical re-sends, whatever the member order: nothing written.
    let r = put(&app, &lms, &id.to_uppercase(), &s).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"verb":{},"object":{},"context":{},"timestamp":"2026-03-01T10:00:00+08:00","actor":{},"id":"{id}"}}"#,
        s["verb"], s["object"], s["context"], s["actor"]
    ))
    .expect("json");
    let r = post(&app, &lms, &json!([reordered])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!([id]));
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, entries);
    assert_eq!(app.scalar("select count(*) from xapi_statements").await, statements);

    // Other content under the same id: 409, by PUT and by POST.
    let mut other = s.clone();
    other["timestamp"] = json!("2026-03-02T10:00:00+08:00");
    let r = put(&app, &lms, id, &other).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "statement_conflict".to_owned())
    );
    let r = post(&app, &lms, &other).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // The same id twice in one POST: 400, nothing written.
    let twice = "5b9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let r = post(
        &app,
        &lms,
        &json!([moodle_completion(twice, "u42"), moodle_completion(twice, "u42")]),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "duplicate_statement_id".to_owned())
    );
    assert_eq!(r.json()["field"], "1/id");

    // PUT needs its id, and the body's id must agree.
    let r = xapi(
        &app,
        &lms,
        Method::PUT,
        "/xapi/statements",
        Some("1.0.3"),
        Some(s.to_string()),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "statement_id_required".to_owned())
    );
    let r = put(&app, &lms, twice, &s).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "statement_id_mismatch".to_owned())
    );
    let r = put(&app, &lms, "not-a-uuid", &s).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "uuid_invalid".to_owned())
    );

    assert_eq!(app.scalar("select count(*) from ledger_entries").await, entries);
    assert_eq!(app.scalar("select count(*) from xapi_statements").await, statements);
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "2.00");
}

async fn xapi_a_post_is_all_or_nothing(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let stored = "6a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    assert_eq!(
        post(&app, &lms, &moodle_completion(stored, "u42")).await.status,
        StatusCode::OK
    );
    let fresh = "6b9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let learner2 = app.learner(&lms.key, "u43", 3).await;

    // A valid completion and a statement that breaks a rule: 400 naming
    // the item and its member, and nothing written.
    let mut broken = moodle_completion("6c9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f", "u42");
    broken["actor"]["mbox"] = json!("mailto:li@example.edu");
    let r = post(&app, &lms, &json!([moodle_completion(fresh, "u43"), broken])).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "agent_ifi_count".to_owned())
    );
    assert_eq!(r.json()["field"], "1/actor");
    let mut no_verb = moodle_completion(fresh, "u43");
    no_verb.as_object_mut().map(|m| m.remove("verb"));
    let r = post(&app, &lms, &json!([no_verb])).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "verb_required".to_owned())
    );

    // A new completion next to a conflicting re-send: 409, and the new one
    // is neither credited nor stored.
    let mut conflicting = moodle_completion(stored, "u42");
    conflicting["timestamp"] = json!("2026-03-05T10:00:00Z");
    let r = post(&app, &lms, &json!([moodle_completion(fresh, "u43"), conflicting])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["field"], "1/id");
    assert_eq!(
        get(&app, &lms, &format!("statementId={fresh}")).await.status,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app.get(&format!("/v1/events/{fresh}"), &lms.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(transcript(&app, &lms.key, &learner2).await["totals"]["total"], "0.00");

    // The site used a statement's id for a native event of other content:
    // 409 naming that statement, and the new completion next to it is
    // neither credited nor stored either.
    let native = "6d9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let (status, body) = app
        .put(
            &format!("/v1/events/{native}"),
            &lms.key,
            json!({"kind": "completion", "course": "tea-101", "learner": {"local_account": "u42"},
                   "completed_at": "2026-02-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let r = post(
        &app,
        &lms,
        &json!([moodle_completion(fresh, "u43"), moodle_completion(native, "u42")]),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "statement_conflicts_with_ledger_event".to_owned()),
        "{}",
        r.text
    );
    assert_eq!(r.json()["field"], "1/id");
    assert!(r.text.contains("completed_at"), "{}", r.text);
    let (status, _) = app.get(&format!("/v1/events/{fresh}"), &lms.key).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of the request reached the ledger"
    );
    assert_eq!(transcript(&app, &lms.key, &learner2).await["totals"]["total"], "0.00");
    // The same statement, dated as the native event: it repeats the event,
    // so it is stored and the ledger writes nothing new.
    let mut same = moodle_completion(native, "u42");
    same["timestamp"] = json!("2026-02-01T10:00:00Z");
    let r = post(&app, &lms, &same).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "4.00");

    // More statements than batch_events_max: refused whole.
    let many: Vec<Value> = (0..51)
        .map(|n| json!({"actor": {"mbox": "mailto:a@example.edu"}, "verb": {"id": COMPLETED}, "object": {"id": format!("urn:x:{n}")}}))
        .collect();
    let r = post(&app, &lms, &Value::Array(many)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_long".to_owned())
    );
    assert_eq!(app.scalar("select count(*) from xapi_statements").await, 2);
    assert_eq!(transcript(&app, &lms.key, &learner).await["totals"]["total"], "4.00");
}

async fn xapi_the_query_filters_and_pages_with_more_links(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let agent = |name: &str| json!({"account": {"homePage": MOODLE, "name": name}});
    let mut ids = Vec::new();
    for n in 0..7u32 {
        let verb = if n % 2 == 0 {
            COMPLETED
        } else {
            "http://adlnet.gov/expapi/verbs/experienced"
        };
        let id = format!("7a9c3a1e-5b7d-4c2a-9e8f-{n:012}");
        let mut s = json!({"id": id, "actor": agent(if n < 4 { "u42" } else { "u50" }), "verb": {"id": verb},
                           "object": {"id": if n < 2 { COURSE_IRI.to_owned() } else { format!("urn:x:{n}") }}});
        if n == 5 {
            s["context"] = json!({"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"});
        }
        // One by one, so that each has its own place in the order.
        assert_eq!(post(&app, &lms, &s).await.status, StatusCode::OK);
        ids.push(id);
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut next = "/xapi/statements?limit=3".to_owned();
    let mut pages = 0;
    while !next.is_empty() {
        let r = xapi(&app, &lms, Method::GET, &next, Some("1.0.3"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let page = r.json();
        let statements = page["statements"].as_array().expect("statements");
        assert!(statements.len() <= 3);
        seen.extend(statements.iter().filter_map(|s| s["id"].as_str().map(str::to_owned)));
        next = page["more"].as_str().expect("more is a string").to_owned();
        pages += 1;
        assert!(pages <= 4, "the more links end");
    }
    assert_eq!(seen, newest_first);
    assert_eq!(pages, 3);

    let ids_of = |r: Reply| -> Vec<String> {
        r.json()["statements"]
            .as_array()
            .expect("statements")
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let r = get(&app, &lms, &format!("verb={}", encode(COMPLETED))).await;
    assert_eq!(
        ids_of(r),
        vec![ids[6].clone(), ids[4].clone(), ids[2].clone(), ids[0].clone()]
    );
    let r = get(
        &app,
        &lms,
        &format!("agent={}&ascending=true", encode(&agent("u50").to_string())),
    )
    .await;
    assert_eq!(ids_of(r), ids[4..].to_vec());
    let r = get(&app, &lms, &format!("activity={}", encode(COURSE_IRI))).await;
    assert_eq!(ids_of(r), vec![ids[1].clone(), ids[0].clone()]);
    let r = get(&app, &lms, "registration=EC531277-B57B-4C15-8D91-D292C5B2B8F7").await;
    assert_eq!(ids_of(r), vec![ids[5].clone()]);
    let r = get(&app, &lms, "since=2099-01-01T00:00:00Z").await;
    assert!(ids_of(r).is_empty());
    let r = get(&app, &lms, "until=2000-01-01T00:00:00Z").await;
    assert!(ids_of(r).is_empty());

    for (query, code) in [
        ("colour=red", "unknown_parameter"),
        ("related_agents=yes", "parameter_invalid"),
        ("format=full", "parameter_invalid"),
        ("cursor=bm9wZQ", "parameter_invalid"),
        ("agent=%7B%22name%22%3A%22x%22%7D", "agent_ifi_count"),
        (
            "statementId=7a9c3a1e-5b7d-4c2a-9e8f-000000000000&verb=urn%3Ax",
            "parameter_not_allowed",
        ),
    ] {
        let r = get(&app, &lms, query).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, code.to_owned()),
            "{query}"
        );
    }
}

async fn xapi_basic_authentication_failures_are_refused(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let other_key = app.site("binjiang").await;
    let id = "8a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    assert_eq!(
        post(&app, &lms, &moodle_completion(id, "u42")).await.status,
        StatusCode::OK
    );

    let statements = format!("{}/xapi/statements", app.base);
    let cases = [
        ("no credentials", app.client.get(&statements)),
        ("a bearer key", app.client.get(&statements).bearer_auth(&lms.key)),
        (
            "a wrong key",
            app.client.get(&statements).basic_auth("xihu", Some("xf_0000")),
        ),
        (
            "another site's key",
            app.client.get(&statements).basic_auth("xihu", Some(&other_key)),
        ),
        (
            "no password",
            app.client.get(&statements).basic_auth("xihu", None::<&str>),
        ),
        (
            "the admin key",
            app.client.get(&statements).basic_auth("admin", Some(&app.admin)),
        ),
    ];
    for (what, req) in cases {
        let resp = req
            .header("X-Experience-API-Version", "1.0.3")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic")),
            "{what}"
        );
    }
    // Another site reads only its own statements.
    let binjiang = Lms {
        site: "binjiang".into(),
        key: other_key,
    };
    assert_eq!(
        get(&app, &binjiang, &format!("statementId={id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, &binjiang, "").await.json()["statements"], json!([]));

    // A suspended site's keys are refused.
    let (status, body) = app
        .put(
            "/v1/sites/xihu/status",
            &app.admin,
            json!({"status": "suspended", "reason": "stale"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = get(&app, &lms, "").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "site_suspended".to_owned())
    );
}

async fn xapi_a_re_send_repairs_a_statement_lost_after_the_ledger_write(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let id = "9a9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f";
    let s = moodle_completion(id, "u42");
    assert_eq!(post(&app, &lms, &s).await.status, StatusCode::OK);
    // As if the statement write had failed after the ledger committed.
    app.exec("delete from xapi_statements").await.expect("delete");
    assert_eq!(
        get(&app, &lms, &format!("statementId={id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let entries = app.scalar("select count(*) from ledger_entries").await;

    let r = post(&app, &lms, &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        get(&app, &lms, &format!("statementId={id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.scalar("select count(*) from ledger_entries").await,
        entries,
        "the ledger answered duplicate"
    );
    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(
        statuses(&t),
        vec![(id.to_owned(), "awarded".to_owned(), "2.00".to_owned())]
    );
}

async fn xapi_course_activity_ids_are_checked(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let course =
        |rule: Value, iri: &str| json!({"title": "课程", "category": "community", "rule": rule, "activity_id": iri});
    let fixed = json!({"kind": "fixed", "credits": "1"});
    let (status, body) = app
        .put("/v1/courses/other", &lms.key, course(fixed.clone(), COURSE_IRI))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("activity_id_taken"))
    );
    let hours = json!({"kind": "per_hours", "hours_per_credit": "5", "cap": "4"});
    let (status, body) = app
        .put("/v1/courses/other", &lms.key, course(hours, "https://x.example/c"))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("activity_needs_fixed_rule"))
    );
    let (status, body) = app
        .put("/v1/courses/other", &lms.key, course(fixed, "not an iri"))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("activity_id"))
    );
    // Declaring the course again without the IRI releases it.
    let plain = json!({"title": "茶文化", "category": "community", "rule": {"kind": "fixed", "credits": "2.00"}});
    let (status, body) = app.put("/v1/courses/tea-101", &lms.key, plain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app.get("/v1/courses/tea-101", &lms.key).await;
    assert!(body.get("activity_id").is_none(), "{body}");
    let (status, body) = app
        .put(
            "/v1/courses/other",
            &lms.key,
            course(json!({"kind": "fixed", "credits": "1"}), COURSE_IRI),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = app.get("/v1/courses/other", &lms.key).await;
    assert_eq!(body["activity_id"], COURSE_IRI);
    let (_, body) = app.get("/v1/xapi/profile", &lms.key).await;
    assert_eq!(body, json!({"home_page": MOODLE, "default": false}));
}

async fn xapi_concurrent_identical_posts_store_and_credit_once(app: TestApp) {
    let (lms, learner) = moodle_site(&app).await;
    let body = json!([
        moodle_completion("aa9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f", "u42"),
        moodle_completion("ab9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f", "u42"),
    ]);
    let (a, b, c, d) = tokio::join!(
        post(&app, &lms, &body),
        post(&app, &lms, &body),
        post(&app, &lms, &body),
        put(&app, &lms, "aa9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f", &body[0]),
    );
    for r in [&a, &b, &c] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.json(),
            json!([
                "aa9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f",
                "ab9c3a1e-5b7d-4c2a-9e8f-1a2b3c4d5e6f"
            ])
        );
    }
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
    assert_eq!(app.scalar("select count(*) from xapi_statements").await, 2);
    let t = transcript(&app, &lms.key, &learner).await;
    assert_eq!(t["totals"]["total"], "4.00");
    assert_eq!(statuses(&t).len(), 2, "each statement credited once");
}

/// xAPI 1.0.3 §2.1.3 (Filter Conditions for StatementRefs): the filters
/// other than since, until and limit return a voiding statement whose
/// target matches them all, though its own verb and object do not.
async fn xapi_filters_match_a_voiding_statement_through_its_target(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let agent = json!({"account": {"homePage": MOODLE, "name": "u50"}});
    let target = "8a9c3a1e-5b7d-4c2a-9e8f-000000000001";
    let other = "8a9c3a1e-5b7d-4c2a-9e8f-000000000002";
    let void_id = "8a9c3a1e-5b7d-4c2a-9e8f-000000000003";
    for (id, verb, object) in [(target, PASSED, "urn:x:quiz"), (other, PASSED, "urn:x:other")] {
        let s = json!({"id": id, "actor": agent, "verb": {"id": verb}, "object": {"id": object}});
        assert_eq!(post(&app, &lms, &s).await.status, StatusCode::OK);
    }
    let voiding = json!({"id": void_id, "actor": {"account": {"homePage": MOODLE, "name": "admin"}},
                         "verb": {"id": VOIDED}, "object": {"objectType": "StatementRef", "id": target}});
    assert_eq!(post(&app, &lms, &voiding).await.status, StatusCode::OK);

    let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let ids = |query: String| {
        let app = &app;
        let lms = &lms;
        async move {
            let r = get(app, lms, &query).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
            r.json()["statements"]
                .as_array()
                .expect("statements")
                .iter()
                .filter_map(|s| s["id"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(format!("verb={}", encode(PASSED))).await, vec![void_id, other]);
    assert_eq!(ids(format!("activity={}", encode("urn:x:quiz"))).await, vec![void_id]);
    assert_eq!(ids(format!("verb={}", encode(VOIDED))).await, vec![void_id]);
    assert_eq!(
        ids(format!("verb={}&activity={}", encode(PASSED), encode("urn:x:quiz"))).await,
        vec![void_id]
    );
    assert_eq!(
        ids(format!("verb={}&activity={}", encode(COMPLETED), encode("urn:x:quiz"))).await,
        Vec::<String>::new(),
        "the target must match every filter"
    );
    assert_eq!(ids(format!("activity={}", encode("urn:x:other"))).await, vec![other]);
}

/// xAPI 2.0.0 §4.1.6.1: a statement GET carries `Last-Modified`, the
/// `stored` time of the statement (of the newest one for a page), to the
/// second.
async fn xapi_statement_gets_carry_last_modified_of_the_stored_time(app: TestApp) {
    let (lms, _) = moodle_site(&app).await;
    let agent = json!({"account": {"homePage": MOODLE, "name": "u50"}});
    let mut stored = Vec::new();
    for n in 1..=2u32 {
        let id = format!("9a9c3a1e-5b7d-4c2a-9e8f-{n:012}");
        let s = json!({"id": id, "actor": agent, "verb": {"id": PASSED}, "object": {"id": "urn:x:quiz"}});
        assert_eq!(post(&app, &lms, &s).await.status, StatusCode::OK);
        let r = get(&app, &lms, &format!("statementId={id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let at = time::OffsetDateTime::parse(
            r.json()["stored"].as_str().expect("stored"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("stored is RFC 3339");
        let header = r
            .headers
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .expect("Last-Modified on a single statement")
            .to_owned();
        let parsed = time::PrimitiveDateTime::parse(
            &header,
            time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ),
        )
        .expect("an HTTP date")
        .assume_utc();
        assert_eq!(parsed.unix_timestamp(), at.unix_timestamp(), "{header}");
        stored.push((at.unix_timestamp(), header));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let page = get(&app, &lms, "").await;
    let newest = stored.iter().max().map(|(_, h)| h.clone()).expect("two statements");
    assert_eq!(
        page.headers.get("last-modified").and_then(|v| v.to_str().ok()),
        Some(newest.as_str()),
        "a page's Last-Modified is its newest statement's stored time"
    );
}
