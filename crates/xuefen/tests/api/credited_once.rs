//! Credited once over HTTP: a course pays a learner once (or once per CST
//! year when repeatable), a re-sent completion is reported as a likely
//! duplicate, and a group declared after the fact reverses earlier double
//! payments by new entries. Each scenario on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(
    a_course_pays_once_and_a_resent_completion_is_reported_as_a_likely_duplicate,
    a_repeatable_course_pays_once_per_cst_year,
    declaring_a_group_after_the_fact_reverses_the_second_payment_by_a_new_entry,
);

async fn course(app: &TestApp, key: &str, code: &str, credits: &str, repeat: Option<&str>) -> Value {
    let mut body = json!({"title": "课程", "category": "community", "rule": {"kind": "fixed", "credits": credits}});
    if let Some(r) = repeat {
        body["repeat"] = json!(r);
    }
    let (status, body) = app.put(&format!("/v1/courses/{code}"), key, body).await;
    assert!(status.is_success(), "{body}");
    body
}

fn done(id: &str, account: &str, course: &str, at: &str) -> Value {
    json!({"event_id": id, "kind": "completion", "course": course, "learner": {"local_account": account}, "completed_at": at})
}

async fn total(app: &TestApp, learner: &str) -> Value {
    let (status, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["totals"]["total"].clone()
}

async fn a_course_pays_once_and_a_resent_completion_is_reported_as_a_likely_duplicate(app: TestApp) {
    let key = app.site("xihu").await;
    course(&app, &key, "C6", "6", None).await;
    let learner = app.learner(&key, "u1", 1).await;
    let at = "2026-03-01T10:00:00Z";
    let batch = json!([done("twice-a", "u1", "C6", at), done("twice-b", "u1", "C6", at)]);
    let (status, out) = app.post("/v1/events", &key, batch).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let r = &out["results"];
    assert_eq!(
        (r[0]["entry"].clone(), r[0]["credits"].clone()),
        (json!("awarded"), json!("6.00"))
    );
    assert!(r[0].get("likely_duplicate_of").is_none(), "{out}");
    assert_eq!(r[1]["status"], "accepted", "{out}");
    assert_eq!(
        (r[1]["entry"].clone(), r[1]["credits"].clone()),
        (json!("recognised"), json!("0.00"))
    );
    assert_eq!(r[1]["likely_duplicate_of"], "twice-a", "{out}");
    // The second entry refers to the paid one and says what it withheld.
    let (_, entry) = app.get("/v1/events/twice-b", &key).await;
    assert_eq!(entry["paid_by"], r[0]["position"], "{entry}");
    assert_eq!(entry["withheld"], "6.00");
    // Another completion of the course, later, in another batch and under
    // PUT: recorded, not paid, and not a likely duplicate.
    let (status, later) = app
        .put(
            "/v1/events/again-1",
            &key,
            done("again-1", "u1", "C6", "2026-05-01T10:00:00Z"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_eq!(later["entry"], "recognised");
    assert!(later.get("likely_duplicate_of").is_none(), "{later}");
    // The re-send again in a later batch: still reported.
    let (_, out) = app
        .post("/v1/events", &key, json!([done("twice-c", "u1", "C6", at)]))
        .await;
    assert_eq!(out["results"][0]["likely_duplicate_of"], "twice-a", "{out}");
    assert_eq!(total(&app, &learner).await, "6.00");
    // Revoking the paid completion pays the next recognised one instead.
    let revoke = json!({"kind": "revocation", "target_event_id": "twice-a", "reason": "录入错误"});
    let (status, rev) = app.put("/v1/events/rev-1", &key, revoke).await;
    assert_eq!(status, StatusCode::CREATED, "{rev}");
    assert_eq!(total(&app, &learner).await, "6.00");
}

async fn a_repeatable_course_pays_once_per_cst_year(app: TestApp) {
    let key = app.site("xihu").await;
    let out = course(&app, &key, "Y2", "2", Some("per_year")).await;
    assert_eq!(out["repeat"], "per_year", "{out}");
    let learner = app.learner(&key, "u1", 1).await;
    // 2025-12-31T17:00Z is 2026-01-01 01:00 in China Standard Time.
    let batch = json!([
        done("y-1", "u1", "Y2", "2025-03-01T10:00:00Z"),
        done("y-2", "u1", "Y2", "2025-06-01T10:00:00Z"),
        done("y-3", "u1", "Y2", "2025-12-31T17:00:00Z"),
    ]);
    let (_, out) = app.post("/v1/events", &key, batch).await;
    let kinds: Vec<&str> = out["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["entry"].as_str().expect("entry"))
        .collect();
    assert_eq!(kinds, ["awarded", "recognised", "awarded"], "{out}");
    assert_eq!(total(&app, &learner).await, "4.00");
    let bad =
        json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": "1"}, "repeat": "weekly"});
    let (status, problem) = app.put("/v1/courses/Y3", &key, bad).await;
    assert_eq!(
        (status, problem["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("repeat"))
    );
}

async fn declaring_a_group_after_the_fact_reverses_the_second_payment_by_a_new_entry(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    course(&app, &a, "A1", "2", None).await;
    course(&app, &b, "B1", "3", None).await;
    let learner = app.learner(&a, "u1", 1).await;
    let doc = json!({"kind": "resident_id", "number": crate::harness::resident_id(1)});
    let (status, body) = app
        .put("/v1/accounts/v1", &b, json!({"name": "测试", "document": doc}))
        .await;
    assert!(status.is_success(), "{body}");
    let (_, first) = app
        .put("/v1/events/a-1", &a, done("a-1", "u1", "A1", "2026-03-01T10:00:00Z"))
        .await;
    let (_, second) = app
        .put("/v1/events/b-1", &b, done("b-1", "v1", "B1", "2026-04-01T10:00:00Z"))
        .await;
    assert_eq!(
        (first["entry"].clone(), second["entry"].clone()),
        (json!("awarded"), json!("awarded"))
    );
    assert_eq!(total(&app, &learner).await, "5.00");
    let entries_before = app.scalar("select count(*) from ledger_entries").await;

    let group = json!({"title": "共享课", "courses": [{"site_id": "site-a", "code": "A1"}, {"site_id": "site-b", "code": "B1"}]});
    let (status, out) = app.put("/v1/recognition-groups/g1", &app.admin, group.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let declared = out["declared"].as_array().expect("declared reversals");
    assert_eq!(declared.len(), 1, "{out}");
    assert_eq!(declared[0]["site_id"], "site-b");
    assert_eq!(declared[0]["target_event_id"], "b-1");
    assert_eq!(declared[0]["credits"], "-3.00");
    assert_eq!(declared[0]["reverses"], second["position"]);
    // The hashed reason is a code (format version 2); its words are a note.
    assert_eq!(declared[0]["reason"], "credited_once", "{out}");
    assert_eq!(total(&app, &learner).await, "2.00");
    // Old entries unchanged, one new one; the ledger still verifies.
    assert_eq!(
        app.scalar("select count(*) from ledger_entries").await,
        entries_before + 1
    );
    let (_, b1) = app.get("/v1/events/b-1", &b).await;
    assert_eq!(
        (b1["kind"].clone(), b1["credits"].clone()),
        (json!("awarded"), json!("3.00"))
    );
    let (code, report) = app.verify_cli().await;
    assert_eq!(code, 0, "{report}");

    // Declaring again writes nothing.
    let (status, again) = app.put("/v1/recognition-groups/g1", &app.admin, group).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again.get("declared").is_none(), "{again}");
    assert_eq!(
        app.scalar("select count(*) from ledger_entries").await,
        entries_before + 1
    );
    // A later completion of either course is recognised against the kept payment.
    let (_, later) = app
        .put("/v1/events/b-2", &b, done("b-2", "v1", "B1", "2026-06-01T10:00:00Z"))
        .await;
    assert_eq!(later["entry"], "recognised", "{later}");
    let (_, entry) = app.get("/v1/events/b-2", &b).await;
    assert_eq!(entry["paid_by"], first["position"], "{entry}");
    assert_eq!(total(&app, &learner).await, "2.00");
}
