//! Recognition groups (学分互认), annual caps and course dates over HTTP,
//! each scenario on both backends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::TestApp;

backend_tests!(
    recognition_a_then_b_pays_a_and_records_b_as_recognised,
    recognition_b_then_a_pays_b,
    revoking_the_paid_completion_after_b_promotes_b,
    concurrent_completions_from_two_sites_pay_a_group_once,
    an_annual_cap_splits_awards_and_holds_under_concurrent_events,
    a_rule_change_never_changes_past_awards,
    a_completion_before_the_course_was_offered_is_rejected_naming_the_field,
    groups_and_caps_are_admin_only_and_validated,
);

/// A fixed-credit course crediting every completion (these scenarios test
/// groups, caps and rule versions; a group still pays once, and
/// tests/api/credited_once.rs covers courses credited once).
async fn fixed_course(app: &TestApp, key: &str, code: &str, category: &str, credits: &str) {
    let body = json!({"title": "共享课程", "category": category, "rule": {"kind": "fixed", "credits": credits}, "repeat": "every_completion"});
    let (status, body) = app.put(&format!("/v1/courses/{code}"), key, body).await;
    assert!(status.is_success(), "{body}");
}

/// Sites `site-a` (course A1, 2.00) and `site-b` (course B1, 3.00) in group
/// `zj-py101`, and one learner known to both (account `u1` on A, `v1` on B).
struct Setup {
    a: String,
    b: String,
    learner: String,
}

async fn setup(app: &TestApp) -> Setup {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    fixed_course(app, &a, "A1", "vocational", "2").await;
    fixed_course(app, &b, "B1", "vocational", "3").await;
    let group = json!({"title": "Python 入门（省共享课）", "courses": [
        {"site_id": "site-a", "code": "A1"}, {"site_id": "site-b", "code": "B1"}]});
    let (status, body) = app.put("/v1/recognition-groups/zj-py101", &app.admin, group).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let learner = app.learner(&a, "u1", 1).await;
    link(app, &b, "v1", &learner).await;
    Setup { a, b, learner }
}

async fn link(app: &TestApp, key: &str, account: &str, learner: &str) {
    let (status, body) = app
        .put(
            &format!("/v1/accounts/{account}"),
            key,
            crate::harness::consent(learner),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

fn done(account: &str, course: &str, at: &str) -> Value {
    json!({"kind": "completion", "course": course, "learner": {"local_account": account}, "completed_at": at})
}

async fn transcript(app: &TestApp, learner: &str) -> Value {
    let (status, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn recognition_a_then_b_pays_a_and_records_b_as_recognised(app: TestApp) {
    let s = setup(&app).await;
    let (status, a) = app
        .put("/v1/events/a-1", &s.a, done("u1", "A1", "2026-03-01T10:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    assert_eq!(
        (a["entry"].clone(), a["credits"].clone()),
        (json!("awarded"), json!("2.00"))
    );
    let (status, b) = app
        .put("/v1/events/b-1", &s.b, done("v1", "B1", "2026-04-01T10:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    assert_eq!(
        (b["entry"].clone(), b["credits"].clone()),
        (json!("recognised"), json!("0.00"))
    );
    let (_, entry) = app.get("/v1/events/b-1", &s.b).await;
    assert_eq!(entry["kind"], "recognised");
    assert_eq!(entry["paid_by"], a["position"]);
    assert_eq!(entry["withheld"], "3.00");
    assert_eq!(entry["recognition_group"], "zj-py101");
    let t = transcript(&app, &s.learner).await;
    assert_eq!(t["totals"]["total"], "2.00");
    let statuses: Vec<&str> = t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["awarded", "recognised"]);
    // Posting B again is a duplicate of the recognised entry.
    let (status, again) = app
        .put("/v1/events/b-1", &s.b, done("v1", "B1", "2026-04-01T10:00:00Z"))
        .await;
    assert_eq!((status, again["entry"].clone()), (StatusCode::OK, json!("recognised")));
}

async fn recognition_b_then_a_pays_b(app: TestApp) {
    let s = setup(&app).await;
    let (_, b) = app
        .put("/v1/events/b-1", &s.b, done("v1", "B1", "2026-03-01T10:00:00Z"))
        .await;
    assert_eq!(b["entry"], "awarded");
    let (_, a) = app
        .put("/v1/events/a-1", &s.a, done("u1", "A1", "2026-04-01T10:00:00Z"))
        .await;
    assert_eq!(
        (a["entry"].clone(), a["credits"].clone()),
        (json!("recognised"), json!("0.00"))
    );
    let t = transcript(&app, &s.learner).await;
    assert_eq!(t["totals"]["total"], "3.00");
    assert_eq!(t["totals"]["by_site"], json!({"site-b": "3.00", "site-a": "0.00"}));
}

async fn revoking_the_paid_completion_after_b_promotes_b(app: TestApp) {
    let s = setup(&app).await;
    app.put("/v1/events/a-1", &s.a, done("u1", "A1", "2026-03-01T10:00:00Z"))
        .await;
    app.put("/v1/events/b-1", &s.b, done("v1", "B1", "2025-11-01T10:00:00Z"))
        .await;
    let revoke = json!({"kind": "revocation", "target_event_id": "a-1", "reason": "录入错误"});
    let (status, r) = app.put("/v1/events/r-1", &s.a, revoke).await;
    assert_eq!(
        (status, r["credits"].clone()),
        (StatusCode::CREATED, json!("-2.00")),
        "{r}"
    );
    let t = transcript(&app, &s.learner).await;
    let lines: Vec<(String, String)> = t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["status"].as_str().expect("status").to_owned(),
                e["credits"].as_str().expect("credits").to_owned(),
            )
        })
        .collect();
    let want = [
        ("reversed", "2.00"),
        ("recognised", "0.00"),
        ("reversal", "-2.00"),
        ("promoted", "3.00"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    assert_eq!(lines, want);
    // B's credits count in B's year, site and category.
    assert_eq!(t["totals"]["total"], "3.00");
    assert_eq!(t["totals"]["by_year"], json!({"2025": "3.00", "2026": "0.00"}));
    let promoted = &t["entries"][3];
    assert_eq!(promoted["event_id"], "b-1");
    assert_eq!(promoted["promotes"], t["entries"][1]["position"]);
    // B's own outcome is still its recognised entry, and revoking B now
    // reverses the promotion.
    let (_, b) = app.get("/v1/events/b-1", &s.b).await;
    assert_eq!(b["kind"], "recognised");
    let revoke = json!({"kind": "revocation", "target_event_id": "b-1", "reason": "重复"});
    let (status, r) = app.put("/v1/events/r-2", &s.b, revoke).await;
    assert_eq!(
        (status, r["credits"].clone()),
        (StatusCode::CREATED, json!("-3.00")),
        "{r}"
    );
    assert_eq!(transcript(&app, &s.learner).await["totals"]["total"], "0.00");
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "{out}");
}

async fn concurrent_completions_from_two_sites_pay_a_group_once(app: TestApp) {
    let s = setup(&app).await;
    let mut learners = vec![s.learner.clone()];
    for n in 2..=6u32 {
        let learner = app.learner(&s.a, &format!("u{n}"), n).await;
        link(&app, &s.b, &format!("v{n}"), &learner).await;
        learners.push(learner);
    }
    for (i, learner) in learners.iter().enumerate() {
        let n = i + 1;
        let (path_a, path_b) = (format!("/v1/events/a-{n}"), format!("/v1/events/b-{n}"));
        let (a, b) = tokio::join!(
            app.put(&path_a, &s.a, done(&format!("u{n}"), "A1", "2026-03-01T10:00:00Z")),
            app.put(&path_b, &s.b, done(&format!("v{n}"), "B1", "2026-03-01T10:00:00Z")),
        );
        assert_eq!((a.0, b.0), (StatusCode::CREATED, StatusCode::CREATED));
        let mut kinds = [
            a.1["entry"].as_str().expect("kind"),
            b.1["entry"].as_str().expect("kind"),
        ];
        kinds.sort_unstable();
        assert_eq!(kinds, ["awarded", "recognised"], "learner {n}");
        let paid = if a.1["entry"] == "awarded" { "2.00" } else { "3.00" };
        assert_eq!(transcript(&app, learner).await["totals"]["total"], paid);
    }
}

async fn an_annual_cap_splits_awards_and_holds_under_concurrent_events(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    fixed_course(&app, &a, "CA", "community", "2").await;
    fixed_course(&app, &b, "CB", "community", "1.5").await;
    let (status, cap) = app
        .put("/v1/caps/community", &app.admin, json!({"annual_credits": "5"}))
        .await;
    assert_eq!((status, cap["annual_credits"].clone()), (StatusCode::OK, json!("5.00")));
    let learner = app.learner(&a, "u1", 1).await;
    link(&app, &b, "v1", &learner).await;
    // Eight completions of 2.00 or 1.50 in 2026 from two sites at once, and
    // one in 2025: the 2026 total must be exactly the cap.
    let paths: Vec<String> = (0..8).map(|i| format!("/v1/events/c-{i}")).collect();
    let mut calls = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let (key, account, course) = if i % 2 == 0 { (&a, "u1", "CA") } else { (&b, "v1", "CB") };
        calls.push(app.put(path, key, done(account, course, "2026-05-01T10:00:00Z")));
    }
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == StatusCode::CREATED));
    let (status, _) = app
        .put("/v1/events/old", &a, done("u1", "CA", "2025-05-01T10:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let t = transcript(&app, &learner).await;
    assert_eq!(t["totals"]["by_year"], json!({"2025": "2.00", "2026": "5.00"}));
    let entries = t["entries"].as_array().expect("entries");
    let capped: Vec<&Value> = entries.iter().filter(|e| e["status"] == "capped").collect();
    assert!(!capped.is_empty());
    for e in &capped {
        let withheld: f64 = e["withheld"].as_str().expect("withheld").parse().expect("decimal");
        assert!(withheld > 0.0, "{e}");
    }
    // Revoking a 2026 payment frees its credits for later ones. Which
    // payments the concurrent events got depends on their order (site A's
    // may all be capped), so the largest 2026 payment is revoked, by its site.
    let cents = |e: &Value| -> i64 {
        let c: f64 = e["credits"].as_str().expect("credits").parse().expect("decimal");
        (c * 100.0).round() as i64
    };
    let paid = entries
        .iter()
        .filter(|e| e["occurred_at"].as_str().is_some_and(|t| t.starts_with("2026")) && cents(e) > 0)
        .max_by_key(|e| cents(e))
        .expect("a 2026 payment");
    let freed = cents(paid);
    let owner = if paid["site_id"] == "site-a" { &a } else { &b };
    let revoke = json!({"kind": "revocation", "target_event_id": paid["event_id"], "reason": "撤销"});
    let (status, _) = app.put("/v1/events/rv", owner, revoke).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, after) = app
        .put("/v1/events/c-9", &a, done("u1", "CA", "2026-06-01T10:00:00Z"))
        .await;
    let expected = if freed >= 200 {
        (json!("awarded"), json!("2.00"))
    } else {
        (json!("capped"), json!(format!("{}.{:02}", freed / 100, freed % 100)))
    };
    assert_eq!((after["entry"].clone(), after["credits"].clone()), expected, "{paid}");
    assert_eq!(transcript(&app, &learner).await["totals"]["by_year"]["2026"], "5.00");
    // Removing the cap lets awards through in full.
    let (status, _) = app
        .call(Method::DELETE, "/v1/caps/community", Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, free) = app
        .put("/v1/events/c-10", &a, done("u1", "CA", "2026-07-01T10:00:00Z"))
        .await;
    assert_eq!(free["entry"], "awarded");
}

async fn a_rule_change_never_changes_past_awards(app: TestApp) {
    let a = app.site("site-a").await;
    fixed_course(&app, &a, "T1", "community", "2").await;
    app.learner(&a, "u1", 1).await;
    app.put("/v1/events/e-1", &a, done("u1", "T1", "2026-03-01T10:00:00Z"))
        .await;
    fixed_course(&app, &a, "T1", "community", "3").await;
    let (_, second) = app
        .put("/v1/events/e-2", &a, done("u1", "T1", "2026-03-02T10:00:00Z"))
        .await;
    assert_eq!(second["credits"], "3.00");
    let (_, first) = app.get("/v1/events/e-1", &a).await;
    assert_eq!(
        (first["credits"].clone(), first["rule_version"].clone()),
        (json!("2.00"), json!(1))
    );
    let (_, second) = app.get("/v1/events/e-2", &a).await;
    assert_eq!(second["rule_version"], 2);
}

async fn a_completion_before_the_course_was_offered_is_rejected_naming_the_field(app: TestApp) {
    let a = app.site("site-a").await;
    let course = json!({"title": "新课", "category": "community", "rule": {"kind": "fixed", "credits": "1"},
                        "offered_from": "2026-02-01T00:00:00+08:00"});
    let (status, body) = app.put("/v1/courses/N1", &a, course).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["offered_from"], "2026-01-31T16:00:00.000Z");
    app.learner(&a, "u1", 1).await;
    let (status, p) = app
        .put("/v1/events/early", &a, done("u1", "N1", "2026-01-31T15:59:59Z"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (p["code"].clone(), p["field"].clone()),
        (json!("completed_before_course_offered"), json!("completed_at"))
    );
    let (status, _) = app
        .put("/v1/events/early", &a, done("u1", "N1", "2026-01-31T16:00:00Z"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "a corrected retry is judged afresh");
    let bad = json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": "1"}, "offered_from": "1999-12-31T00:00:00Z"});
    let (status, p) = app.put("/v1/courses/N2", &a, bad).await;
    assert_eq!(
        (status, p["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("offered_from"))
    );
}

async fn groups_and_caps_are_admin_only_and_validated(app: TestApp) {
    let a = app.site("site-a").await;
    let group = json!({"title": "g", "courses": [{"site_id": "site-a", "code": "A1"}]});
    let (status, _) = app.put("/v1/recognition-groups/g1", &a, group.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.put("/v1/caps/community", &a, json!({"annual_credits": "5"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.put("/v1/recognition-groups/g1", &app.admin, group.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app.put("/v1/recognition-groups/g1", &app.admin, group.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, p) = app.put("/v1/recognition-groups/g2", &app.admin, group).await;
    assert_eq!(
        (status, p["code"].clone()),
        (StatusCode::CONFLICT, json!("course_in_another_group"))
    );
    let unknown =
        json!({"title": "g", "courses": [{"site_id": "site-a", "code": "A2"}, {"site_id": "nowhere", "code": "X"}]});
    let (status, p) = app.put("/v1/recognition-groups/g3", &app.admin, unknown).await;
    assert_eq!(
        (status, p["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("courses/1/site_id"))
    );
    let bad_code = json!({"title": "g", "courses": [{"site_id": "site-a", "code": "a b"}]});
    let (status, p) = app.put("/v1/recognition-groups/g3", &app.admin, bad_code).await;
    assert_eq!(
        (status, p["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("courses/0/code"))
    );
    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({"site_id": "site-a", "code": format!("C{i}")}))
        .collect();
    let (status, p) = app
        .put(
            "/v1/recognition-groups/g4",
            &app.admin,
            json!({"title": "g", "courses": too_many}),
        )
        .await;
    assert_eq!(
        (status, p["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("courses"))
    );
    let (status, g) = app.get("/v1/recognition-groups/g1", &a).await;
    assert_eq!((status, g["courses"][0]["code"].clone()), (StatusCode::OK, json!("A1")));
    let (status, _) = app.get("/v1/recognition-groups/none", &a).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (value, ok) in [
        ("0", true),
        ("100000", true),
        ("100000.01", false),
        ("-1", false),
        ("1.001", false),
    ] {
        let (status, p) = app
            .put("/v1/caps/community", &app.admin, json!({"annual_credits": value}))
            .await;
        assert_eq!(status.is_success(), ok, "{value}: {p}");
        if !ok {
            assert_eq!(p["field"], "annual_credits");
        }
    }
    let (_, caps) = app.get("/v1/caps", &a).await;
    assert_eq!(caps, json!([{"category": "community", "annual_credits": "100000.00"}]));
}

mod me {
    //! The learner's own transcript behind single sign-on, and its pages.

    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};

    use super::{done, fixed_course};
    use crate::backend_tests;
    use crate::harness::{SSO_ISSUER, SSO_LEEWAY_SECONDS, SSO_SECRET, TestApp, learner_token};

    backend_tests!(
        a_learner_reads_their_own_transcript_with_a_single_sign_on_token,
        bad_tokens_get_401_naming_why,
        a_one_second_token_is_refused_once_the_leeway_has_passed,
        the_transcript_pages_by_ledger_position_with_full_totals,
        the_dev_token_command_signs_a_token_the_service_accepts,
    );

    async fn me(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
        app.call(Method::GET, &format!("/v1/me/transcript{query}"), Some(token), None)
            .await
    }

    async fn a_learner_reads_their_own_transcript_with_a_single_sign_on_token(app: TestApp) {
        let a = app.site("site-a").await;
        fixed_course(&app, &a, "A1", "community", "2").await;
        let learner = app.learner(&a, "u1", 1).await;
        let other = app.learner(&a, "u2", 2).await;
        app.put("/v1/events/e1", &a, done("u1", "A1", "2026-03-01T10:00:00Z"))
            .await;
        app.put("/v1/events/e2", &a, done("u2", "A1", "2026-03-01T10:00:00Z"))
            .await;
        let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 600);
        let (status, t) = me(&app, &token, "").await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["learner_id"], learner.as_str());
        assert_eq!(t["totals"]["total"], "2.00");
        let lines = t["entries"].as_array().expect("entries");
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0]["event_id"].clone(), lines[0]["status"].clone()),
            (json!("e1"), json!("awarded"))
        );
        assert!(t.get("next_after").is_none());
        // Another learner's token shows only theirs.
        let (_, t) = me(&app, &learner_token(&other, SSO_ISSUER, SSO_SECRET, 600), "").await;
        assert_eq!(t["entries"][0]["event_id"], "e2");
        // A token for someone never registered.
        let ghost = format!("lrn_{}", "0".repeat(32));
        let (status, p) = me(&app, &learner_token(&ghost, SSO_ISSUER, SSO_SECRET, 600), "").await;
        assert_eq!(
            (status, p["code"].clone()),
            (StatusCode::NOT_FOUND, json!("unknown_learner"))
        );
    }

    async fn a_one_second_token_is_refused_once_the_leeway_has_passed(app: TestApp) {
        let a = app.site("site-a").await;
        let learner = app.learner(&a, "u1", 1).await;
        let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 1);
        let (status, _) = me(&app, &token, "").await;
        assert_eq!(status, StatusCode::OK, "a fresh token is accepted");
        // Its `exp` plus the leeway, with a second's margin for the whole-second clock.
        tokio::time::sleep(std::time::Duration::from_secs(2 + SSO_LEEWAY_SECONDS)).await;
        let (status, p) = me(&app, &token, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
        assert!(p["detail"].as_str().expect("detail").contains("expired"), "{p}");
    }

    async fn bad_tokens_get_401_naming_why(app: TestApp) {
        let a = app.site("site-a").await;
        let learner = app.learner(&a, "u1", 1).await;
        for (token, why) in [
            (learner_token(&learner, SSO_ISSUER, SSO_SECRET, -600), "expired"),
            (learner_token(&learner, "someone-else", SSO_SECRET, 600), "not issued"),
            (
                learner_token(&learner, SSO_ISSUER, b"another secret of thirty-two byt", 600),
                "signature",
            ),
            (a.clone(), "not a valid JWT"),
        ] {
            let (status, p) = me(&app, &token, "").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
            assert!(p["detail"].as_str().expect("detail").contains(why), "{why}: {p}");
        }
        let (status, _) = app.call(Method::GET, "/v1/me/transcript", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn the_transcript_pages_by_ledger_position_with_full_totals(app: TestApp) {
        let a = app.site("site-a").await;
        fixed_course(&app, &a, "A1", "community", "1.5").await;
        let learner = app.learner(&a, "u1", 1).await;
        for i in 0..7 {
            let (status, _) = app
                .put(
                    &format!("/v1/events/e{i}"),
                    &a,
                    done("u1", "A1", "2026-03-01T10:00:00Z"),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let revoke = json!({"kind": "revocation", "target_event_id": "e0", "reason": "错误"});
        app.put("/v1/events/r0", &a, revoke).await;
        let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 600);
        let mut seen = Vec::new();
        let mut query = "?limit=3".to_owned();
        loop {
            let (status, t) = me(&app, &token, &query).await;
            assert_eq!(status, StatusCode::OK, "{t}");
            assert_eq!(
                t["totals"]["total"], "9.00",
                "totals cover the whole history on every page"
            );
            for line in t["entries"].as_array().expect("entries") {
                seen.push((
                    line["event_id"].as_str().expect("id").to_owned(),
                    line["status"].as_str().expect("status").to_owned(),
                ));
            }
            match t["next_after"].as_str() {
                Some(next) => query = format!("?limit=3&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 8);
        assert_eq!(
            seen[0],
            ("e0".to_owned(), "reversed".to_owned()),
            "a line reversed on a later page"
        );
        assert_eq!(seen[7], ("r0".to_owned(), "reversal".to_owned()));
        // The admin's view pages the same way.
        let (_, page) = app
            .get(&format!("/v1/learners/{learner}/transcript?limit=8"), &app.admin)
            .await;
        assert_eq!(page["entries"].as_array().expect("entries").len(), 8);
        assert!(page.get("next_after").is_none());
        for (query, field) in [
            ("?limit=0", "limit"),
            ("?limit=501", "limit"),
            ("?after=12", "after"),
            ("?page=2", "page"),
        ] {
            let (status, p) = me(&app, &token, query).await;
            assert_eq!(
                (status, p["field"].clone()),
                (StatusCode::UNPROCESSABLE_ENTITY, json!(field)),
                "{query}"
            );
        }
        let (status, _) = me(&app, &token, "?limit=500").await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn the_dev_token_command_signs_a_token_the_service_accepts(app: TestApp) {
        let a = app.site("site-a").await;
        let learner = app.learner(&a, "u1", 1).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"))
            .args(["dev-token", "--learner", &learner])
            .env("XUEFEN_SSO_KEY", hex::encode(SSO_SECRET))
            .env("XUEFEN_DATA_DIR", std::env::temp_dir())
            .output()
            .await
            .expect("run xuefen dev-token");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).expect("utf-8");
        let (status, t) = me(&app, token.trim(), "").await;
        assert_eq!((status, t["learner_id"].clone()), (StatusCode::OK, json!(learner)));
    }
}

mod lifecycle {
    //! Site lifecycle and agreements, recorded in the alliance chain.

    use reqwest::StatusCode;
    use serde_json::json;

    use super::{done, fixed_course};
    use crate::backend_tests;
    use crate::harness::TestApp;

    backend_tests!(
        a_site_moves_through_its_lifecycle_and_each_change_is_chained_with_who_and_why,
        posting_after_the_agreement_ended_is_refused_until_it_is_renewed,
        a_tampered_site_change_fails_verification,
    );

    async fn create(app: &TestApp, body: serde_json::Value) -> String {
        let (status, created) = app.post("/v1/sites", &app.admin, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["key"]["secret"].as_str().expect("secret").to_owned()
    }

    async fn a_site_moves_through_its_lifecycle_and_each_change_is_chained_with_who_and_why(app: TestApp) {
        let key = create(
            &app,
            json!({"id": "xihu", "name": "西湖学习网", "level": "county", "region_code": "330106",
                   "status": "pending", "reason": "申请加入联盟"}),
        )
        .await;
        let (status, p) = app
            .put(
                "/v1/courses/C1",
                &key,
                json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": "1"}}),
            )
            .await;
        assert_eq!(
            (status, p["code"].clone()),
            (StatusCode::FORBIDDEN, json!("site_pending"))
        );
        let status_to = |to: &str, reason: Option<&str>| {
            let mut body = json!({"status": to});
            if let Some(r) = reason {
                body["reason"] = json!(r);
            }
            body
        };
        let (status, p) = app
            .put("/v1/sites/xihu/status", &app.admin, status_to("active", None))
            .await;
        assert_eq!(
            (status, p["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("reason"))
        );
        let (status, site) = app
            .put(
                "/v1/sites/xihu/status",
                &app.admin,
                status_to("active", Some("审核通过")),
            )
            .await;
        assert_eq!(
            (status, site["status"].clone()),
            (StatusCode::OK, json!("active")),
            "{site}"
        );
        fixed_course(&app, &key, "C1", "community", "1").await;
        app.learner(&key, "u1", 1).await;
        let (status, _) = app
            .put("/v1/events/e1", &key, done("u1", "C1", "2026-03-01T10:00:00Z"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, p) = app
            .put("/v1/sites/xihu/status", &app.admin, status_to("pending", Some("back")))
            .await;
        assert_eq!(
            (status, p["code"].clone()),
            (StatusCode::CONFLICT, json!("invalid_transition"))
        );
        for (to, why) in [
            ("suspended", "三个月未更新"),
            ("active", "已恢复更新"),
            ("terminated", "协议终止"),
        ] {
            let (status, site) = app
                .put("/v1/sites/xihu/status", &app.admin, status_to(to, Some(why)))
                .await;
            assert_eq!((status, site["status"].clone()), (StatusCode::OK, json!(to)));
        }
        let (status, p) = app
            .put("/v1/events/e2", &key, done("u1", "C1", "2026-03-01T10:00:00Z"))
            .await;
        assert_eq!(
            (status, p["code"].clone()),
            (StatusCode::FORBIDDEN, json!("site_terminated"))
        );
        let (status, _) = app
            .put("/v1/sites/xihu/status", &app.admin, status_to("active", Some("again")))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "terminated is final");
        let (status, changes) = app.get("/v1/sites/xihu/changes", &app.admin).await;
        assert_eq!(status, StatusCode::OK);
        let changes = changes.as_array().expect("changes");
        let moves: Vec<(Option<&str>, &str, &str)> = changes
            .iter()
            .map(|c| {
                (
                    c["from"].as_str(),
                    c["to"].as_str().expect("to"),
                    c["reason"].as_str().expect("reason"),
                )
            })
            .collect();
        assert_eq!(
            moves,
            [
                (None, "pending", "申请加入联盟"),
                (Some("pending"), "active", "审核通过"),
                (Some("active"), "suspended", "三个月未更新"),
                (Some("suspended"), "active", "已恢复更新"),
                (Some("active"), "terminated", "协议终止"),
            ]
        );
        assert!(
            changes
                .iter()
                .all(|c| c["actor"].as_str().expect("actor").starts_with("key_"))
        );
        assert!(changes.iter().all(|c| c["position"]["chain"] == json!(u32::MAX)));
        // The agreement runs three years from the creation by default.
        let (start, end) = (
            changes[0]["agreement_starts_at"].as_str().expect("start"),
            changes[0]["agreement_ends_at"].as_str().expect("end"),
        );
        let year = |s: &str| s[..4].parse::<i32>().expect("year");
        assert_eq!(year(end) - year(start), 3);
        // The terminated site's accepted history stays, and verifies.
        let (_, n) = (
            0,
            app.scalar("select count(*) from ledger_entries where site_id = 'xihu'")
                .await,
        );
        assert_eq!(n, 1);
        let (code, out) = app.verify_cli().await;
        assert_eq!(code, 0, "{out}");
    }

    async fn posting_after_the_agreement_ended_is_refused_until_it_is_renewed(app: TestApp) {
        let key = create(
            &app,
            json!({"id": "gongshu", "name": "拱墅学习网", "level": "county", "region_code": "330105",
                   "agreement_starts_at": "2020-01-01T00:00:00+08:00", "agreement_ends_at": "2023-01-01T00:00:00+08:00"}),
        )
        .await;
        fixed_course(&app, &key, "C1", "community", "1").await;
        app.learner(&key, "u1", 1).await;
        let (status, p) = app
            .put("/v1/events/e1", &key, done("u1", "C1", "2022-03-01T10:00:00Z"))
            .await;
        assert_eq!(
            (status, p["code"].clone()),
            (StatusCode::FORBIDDEN, json!("agreement_ended"))
        );
        // The problem's type names the same code.
        assert_eq!(
            p["type"],
            json!("https://xuefen.example/problems/agreement_ended"),
            "{p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .expect("detail")
                .contains("2022-12-31T16:00:00.000Z"),
            "{p}"
        );
        let (status, batch) = app.post("/v1/events", &key, json!([{"event_id": "e1", "kind": "completion", "course": "C1", "learner": {"local_account": "u1"}, "completed_at": "2022-03-01T10:00:00Z"}])).await;
        assert_eq!(
            (status, batch["code"].clone()),
            (StatusCode::FORBIDDEN, json!("agreement_ended"))
        );
        let suspend = json!({"status": "suspended", "reason": "agreement expired"});
        assert_eq!(
            app.put("/v1/sites/gongshu/status", &app.admin, suspend).await.0,
            StatusCode::OK
        );
        let renew =
            json!({"status": "active", "reason": "agreement renewed", "agreement_ends_at": "2099-01-01T00:00:00Z"});
        let (status, site) = app.put("/v1/sites/gongshu/status", &app.admin, renew).await;
        assert_eq!(
            (status, site["agreement_ends_at"].clone()),
            (StatusCode::OK, json!("2099-01-01T00:00:00.000Z"))
        );
        let (status, _) = app
            .put("/v1/events/e1", &key, done("u1", "C1", "2022-03-01T10:00:00Z"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let bad = json!({"id": "x", "name": "x", "level": "county", "region_code": "330105",
                         "agreement_starts_at": "2024-01-01T00:00:00Z", "agreement_ends_at": "2023-01-01T00:00:00Z"});
        let (status, p) = app.post("/v1/sites", &app.admin, bad).await;
        assert_eq!(
            (status, p["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("agreement_ends_at"))
        );
    }

    async fn a_tampered_site_change_fails_verification(app: TestApp) {
        app.site("xihu").await;
        let suspend = json!({"status": "suspended", "reason": "stale"});
        app.put("/v1/sites/xihu/status", &app.admin, suspend).await;
        assert_eq!(app.verify_cli().await.0, 0);
        assert!(
            app.exec("update site_changes set reason = 'x' where seq = 2")
                .await
                .is_err(),
            "append-only"
        );
        app.tamper("update site_changes set reason = 'fresh' where seq = 2")
            .await;
        let (code, out) = app.verify_cli().await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("chain {} position 2", u32::MAX)), "{out}");
    }
}

mod stats {
    //! The alliance statistics over HTTP (the figures themselves are
    //! property-tested against a recount in `tests/stats.rs`).

    use reqwest::StatusCode;
    use serde_json::json;

    use super::{done, fixed_course};
    use crate::backend_tests;
    use crate::harness::TestApp;

    backend_tests!(site_statistics_count_the_year_and_show_the_standing);

    async fn site_statistics_count_the_year_and_show_the_standing(app: TestApp) {
        let a = app.site("site-a").await;
        let b = app.site("site-b").await;
        fixed_course(&app, &a, "BIG", "community", "25").await;
        fixed_course(&app, &a, "SMALL", "community", "5").await;
        app.learner(&a, "u1", 1).await;
        app.learner(&a, "u2", 2).await;
        for (id, who, course, at) in [
            ("e1", "u1", "BIG", "2026-03-01T10:00:00Z"),
            ("e2", "u1", "SMALL", "2026-04-01T10:00:00Z"),
            ("e3", "u2", "SMALL", "2026-04-01T10:00:00Z"),
            ("e4", "u2", "BIG", "2025-04-01T10:00:00Z"),
        ] {
            let (status, _) = app.put(&format!("/v1/events/{id}"), &a, done(who, course, at)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let this_year = time::OffsetDateTime::now_utc()
            .to_offset(time::macros::offset!(+8))
            .year();
        let (status, s) = app.get(&format!("/v1/sites/site-a/stats?year={this_year}"), &a).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        assert_eq!(s["registrations"], 2);
        // Without `?year` the figures are this year's (CST).
        let (status, default_year) = app.get("/v1/sites/site-a/stats", &a).await;
        assert_eq!(status, StatusCode::OK, "{default_year}");
        assert_eq!(default_year, s);
        let (_, s) = app.get("/v1/sites/site-a/stats?year=2026", &a).await;
        assert_eq!(
            (
                s["learners_active"].clone(),
                s["learners_with_credits"].clone(),
                s["learning_stars"].clone(),
                s["credits"].clone()
            ),
            (json!(2), json!(1), json!(1), json!("35.00"))
        );
        assert_eq!(s["standing"]["registrations_required"], 1000);
        assert_eq!(s["standing"]["learning_stars_met"], false);
        let (_, s) = app.get("/v1/sites/site-a/stats?year=2025", &app.admin).await;
        assert_eq!(
            (s["learners_active"].clone(), s["credits"].clone()),
            (json!(1), json!("25.00"))
        );
        let (status, all) = app.get("/v1/stats?year=2026", &app.admin).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = all
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["site_id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["site-a", "site-b"]);
        assert_eq!(all[1]["credits"], "0.00");
        let (status, _) = app.get("/v1/sites/site-a/stats?year=2026", &b).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app.get("/v1/stats?year=2026", &a).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for query in ["?year=1999", "?year=abc", "?yr=2026", "?year="] {
            let (status, p) = app.get(&format!("/v1/sites/site-a/stats{query}"), &a).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {p}");
        }
        let (status, _) = app.get("/v1/sites/nowhere/stats?year=2026", &app.admin).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
