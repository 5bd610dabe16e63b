//! The scenarios, each written once (see `backend_tests!`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{TEST_LIMITS, TestApp, completion, resident_id};

backend_tests!(
    requests_without_a_valid_key_get_401,
    a_site_key_cannot_act_as_admin_or_read_another_site,
    a_suspended_site_gets_403_saying_so,
    the_same_person_registered_by_two_sites_is_one_learner,
    a_wrong_resident_id_check_digit_is_refused_naming_the_field,
    the_id_number_is_never_stored_in_clear,
    course_rules_are_validated_and_versioned,
    a_single_event_is_idempotent_and_conflicts_name_the_field,
    sixteen_concurrent_identical_events_write_one_entry,
    a_batch_writes_only_new_events_and_rejected_items_do_not_block,
    a_revocation_writes_a_reversal_once,
    a_batch_over_many_chains_keeps_request_order,
    events_can_name_the_learner_by_the_sites_own_id,
    a_batch_longer_than_the_limit_is_rejected,
    a_body_larger_than_the_limit_is_rejected,
    strings_and_decimals_out_of_range_are_rejected,
    the_transcript_totals_by_year_category_and_site,
    the_transcript_shows_titles_and_names_and_filters_by_year_category_and_site,
    verify_names_an_altered_entry,
    verify_names_a_deleted_entry,
    verify_names_a_deleted_last_entry,
    verify_names_swapped_entries,
    the_service_refuses_to_update_the_ledger,
);

async fn requests_without_a_valid_key_get_401(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/v1/sites", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = app
        .get("/v1/sites", "xf_000000000000000000000000000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let key = app.site("xihu").await;
    let (status, created) = app.post("/v1/sites/xihu/keys", &app.admin, json!(null)).await;
    assert_eq!(status, StatusCode::CREATED);
    let second = created["secret"].as_str().expect("secret").to_owned();
    let key_id = created["key_id"].as_str().expect("key id").to_owned();
    // Used once, so the service remembers it; revocation must still bite at once.
    let (status, _) = app.get("/v1/sites/xihu", &second).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::DELETE, &format!("/v1/keys/{key_id}"), Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/v1/sites/xihu", &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].as_str().expect("detail").contains("revoked"));
    // Rotation without downtime: the first key still works.
    let (status, _) = app.get("/v1/sites/xihu", &key).await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_site_key_cannot_act_as_admin_or_read_another_site(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let (status, _) = app.get("/v1/sites", &a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/v1/sites/site-b", &a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Site B's learner is not site A's to read.
    app.course(&b, "C1", "community").await;
    let learner = app.learner(&b, "u1", 1).await;
    let (status, _) = app.put("/v1/events/e1", &b, completion("u1", "C1", "5")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Site A knows nobody by that id: the same 404 as for an unknown one.
    let (status, _) = app.get(&format!("/v1/learners/{learner}/transcript"), &a).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Site A cannot see site B's event, nor credit B's course.
    let (status, _) = app.get("/v1/events/e1", &a).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut ev = completion("u1", "C1", "5");
    ev["learner"] = json!({"id": learner});
    let (status, body) = app.put("/v1/events/e1", &a, ev).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Site A knows nobody by site B's learner's id.
    assert_eq!(body["code"], "unknown_learner");
    ev = completion("u1", "C1", "5");
    app.learner(&a, "u1", 1).await;
    let (status, body) = app.put("/v1/events/e1", &a, ev).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "unknown_course", "{body}");
}

async fn a_suspended_site_gets_403_saying_so(app: TestApp) {
    let key = app.site("xihu").await;
    // The key is in use (and remembered) when the site is suspended.
    let (status, _) = app.get("/v1/sites/xihu", &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            "/v1/sites/xihu/status",
            &app.admin,
            json!({"status": "suspended", "reason": "no updates for 90 days"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.put("/v1/events/e1", &key, completion("u1", "C1", "5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "site_suspended");
    assert_eq!(body["type"], "https://xuefen.example/problems/site_suspended", "{body}");
    assert!(body["detail"].as_str().expect("detail").contains("suspended"));
    let (status, _) = app
        .put(
            "/v1/sites/xihu/status",
            &app.admin,
            json!({"status": "active", "reason": "updated again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1/sites/xihu", &key).await;
    assert_eq!(status, StatusCode::OK);
}

async fn the_same_person_registered_by_two_sites_is_one_learner(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let doc = json!({"kind": "resident_id", "number": resident_id(42)});
    let (s1, first) = app
        .post(
            "/v1/learners",
            &a,
            json!({"name": "李四", "document": doc, "local_account": "a-1"}),
        )
        .await;
    assert_eq!(s1, StatusCode::CREATED);
    assert_eq!(first["created"], true);
    // The lower-case check letter, other whitespace: the same document.
    let (s2, second) = app
        .post(
            "/v1/learners",
            &b,
            json!({"name": "李四", "document": doc, "local_account": "b-9"}),
        )
        .await;
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(second["created"], false);
    // One learner, known to each site by its own pseudonym.
    assert_ne!(first["learner_id"], second["learner_id"]);
    assert_eq!(app.scalar("select count(*) from learners").await, 1);
    // Linking an account already linked to someone else is a conflict.
    let other = app.learner(&a, "a-2", 43).await;
    let (status, body) = app.put("/v1/accounts/a-1", &a, crate::harness::consent(&other)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["field"], "local_account");
    let (status, body) = app.put("/v1/accounts/a-3", &a, crate::harness::consent(&other)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_wrong_resident_id_check_digit_is_refused_naming_the_field(app: TestApp) {
    let key = app.site("xihu").await;
    let good = resident_id(7);
    let last = good.chars().last().expect("char");
    let wrong = format!("{}{}", &good[..17], if last == '0' { '1' } else { '0' });
    let (status, body) = app
        .post(
            "/v1/learners",
            &key,
            json!({"name": "王五", "document": {"kind": "resident_id", "number": wrong}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "document/number");
    let (status, body) = app
        .post(
            "/v1/learners",
            &key,
            json!({"name": "王五", "document": {"kind": "passport", "number": "E12345678"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/v1/learners",
            &key,
            json!({"name": "王五", "document": {"kind": "driving_licence", "number": "1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "document/kind");
}

async fn the_id_number_is_never_stored_in_clear(app: TestApp) {
    let key = app.site("xihu").await;
    app.learner(&key, "u1", 99).await;
    let number = resident_id(99);
    let hits = app
        .scalar(&format!(
            "select count(*) from learners where (id || name || document_kind || chain_id) like '%{number}%'
                or (id || name || document_kind || chain_id) like '%{}%'",
            &number[..17]
        ))
        .await;
    assert_eq!(hits, 0);
    assert_eq!(
        app.scalar("select count(*) from learners where length(document_hash) = 32")
            .await,
        1
    );
}

async fn course_rules_are_validated_and_versioned(app: TestApp) {
    let key = app.site("xihu").await;
    let fixed = json!({"title": "茶文化", "category": "community", "rule": {"kind": "fixed", "credits": "2.5"}, "pass_mark": "60"});
    let (status, body) = app.put("/v1/courses/TEA-1", &key, fixed.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["rule_version"], 1);
    assert_eq!(body["rule"]["credits"], "2.50");
    let (status, body) = app.put("/v1/courses/TEA-1", &key, fixed).await;
    assert_eq!((status, body["rule_version"].clone()), (StatusCode::OK, json!(1)));
    let changed = json!({"title": "茶文化", "category": "community", "rule": {"kind": "fixed", "credits": "3"}, "pass_mark": "60"});
    let (_, body) = app.put("/v1/courses/TEA-1", &key, changed).await;
    assert_eq!(body["rule_version"], 2);

    for (rule, field) in [
        (json!({"kind": "fixed", "credits": "2.555"}), "rule/credits"),
        (json!({"kind": "fixed", "credits": "0"}), "rule/credits"),
        (json!({"kind": "fixed", "credits": "100.01"}), "rule/credits"),
        (
            json!({"kind": "per_hours", "hours_per_credit": "0", "cap": "2"}),
            "rule/hours_per_credit",
        ),
        (
            json!({"kind": "per_hours", "hours_per_credit": "5", "cap": "-1"}),
            "rule/cap",
        ),
    ] {
        let (status, body) = app
            .put(
                "/v1/courses/X",
                &key,
                json!({"title": "t", "category": "community", "rule": rule}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rule}");
        assert_eq!(body["field"], field, "{rule}");
    }
    let (status, body) = app
        .put(
            "/v1/courses/X",
            &key,
            json!({"title": "t", "category": "community", "rule": {"kind": "fixed", "credits": 2}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "numbers are refused: credits travel as strings"
    );
    // The rule is a tagged union, which serde reads as a whole: the path ends there.
    assert_eq!(body["field"], "rule");

    // A completion below the pass mark is recorded with zero credits.
    app.learner(&key, "u1", 1).await;
    let ev = json!({"kind": "completion", "course": "TEA-1", "learner": {"local_account": "u1"},
                    "completed_at": "2026-03-01T10:00:00Z", "score": "59.5"});
    let (status, body) = app.put("/v1/events/low", &key, ev).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (body["entry"].clone(), body["credits"].clone()),
        (json!("not_passed"), json!("0.00"))
    );
    let ev = json!({"kind": "completion", "course": "TEA-1", "learner": {"local_account": "u1"},
                    "completed_at": "2026-03-01T10:00:00Z", "score": "60"});
    let (_, body) = app.put("/v1/events/pass", &key, ev).await;
    assert_eq!(body["credits"], "3.00");
    let (_, entry) = app.get("/v1/events/pass", &key).await;
    assert_eq!(entry["rule_version"], 2);
}

async fn a_single_event_is_idempotent_and_conflicts_name_the_field(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let (status, first) = app.put("/v1/events/e-1", &key, completion("u1", "C1", "7")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["credits"], "1.40");
    let (status, again) = app.put("/v1/events/e-1", &key, completion("u1", "C1", "7")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["position"], first["position"]);
    let (status, conflict) = app.put("/v1/events/e-1", &key, completion("u1", "C1", "8")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["code"], "exists_with_different_hours");
    assert_eq!(conflict["field"], "hours");
    assert_eq!(conflict["position"], first["position"]);
    let mut other = completion("u1", "C1", "7");
    other["completed_at"] = json!("2026-03-02T10:00:00Z");
    let (_, conflict) = app.put("/v1/events/e-1", &key, other).await;
    assert_eq!(conflict["field"], "completed_at");
    let (status, stored) = app.get("/v1/events/e-1", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["position"], first["position"]);
    assert_eq!(stored["credits"], "1.40");
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 1);
    // A rejected event writes nothing, so a corrected retry is judged afresh.
    let (status, body) = app.put("/v1/events/e-2", &key, completion("nobody", "C1", "7")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "unknown_learner");
    app.learner(&key, "nobody", 2).await;
    let (status, _) = app.put("/v1/events/e-2", &key, completion("nobody", "C1", "7")).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn sixteen_concurrent_identical_events_write_one_entry(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let requests = (0..16).map(|_| app.put("/v1/events/same", &key, completion("u1", "C1", "5")));
    let answers = futures::future::join_all(requests).await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let duplicates = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, duplicates), (1, 15));
    let positions: std::collections::HashSet<String> = answers.iter().map(|(_, b)| b["position"].to_string()).collect();
    assert_eq!(positions.len(), 1, "every answer names the same position");
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 1);
}

async fn a_batch_writes_only_new_events_and_rejected_items_do_not_block(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    app.learner(&key, "u2", 2).await;
    let (status, _) = app.put("/v1/events/known", &key, completion("u1", "C1", "5")).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut items = vec![];
    for (id, acct, hours) in [
        ("known", "u1", "5"),
        ("new-1", "u1", "10"),
        ("bad", "u1", "1.001"),
        ("new-2", "u2", "3"),
        ("known", "u1", "6"),
    ] {
        let mut e = completion(acct, "C1", hours);
        e["event_id"] = json!(id);
        items.push(e);
    }
    items.push(json!({"event_id": "shape", "kind": "completion", "course": 5}));
    items.push(json!({"event_id": "no-course", "kind": "completion", "course": "NOPE", "learner": {"local_account": "u1"}, "completed_at": "2026-03-01T10:00:00Z", "hours": "1"}));
    let (status, out) = app.post("/v1/events", &key, Value::Array(items)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let statuses: Vec<&str> = out["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "duplicate",
            "accepted",
            "rejected",
            "accepted",
            "conflict",
            "rejected",
            "rejected"
        ]
    );
    assert_eq!(
        (
            out["accepted"].clone(),
            out["duplicate"].clone(),
            out["conflict"].clone(),
            out["rejected"].clone()
        ),
        (json!(2), json!(1), json!(1), json!(3))
    );
    assert_eq!(out["results"][2]["problem"]["field"], "2/hours");
    assert_eq!(out["results"][4]["problem"]["field"], "4/hours");
    assert_eq!(out["results"][5]["problem"]["field"], "5/course");
    assert_eq!(out["results"][6]["problem"]["code"], "unknown_course");
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 3);
    // Re-posting the whole batch writes nothing new.
    let (_, again) = app.post("/v1/events", &key, json!([{"event_id": "new-1", "kind": "completion", "course": "C1", "learner": {"local_account": "u1"}, "completed_at": "2026-03-01T10:00:00Z", "hours": "10"}])).await;
    assert_eq!(again["results"][0]["status"], "duplicate");
    assert_eq!(again["results"][0]["position"], out["results"][1]["position"]);
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 3);
}

async fn a_revocation_writes_a_reversal_once(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    let learner = app.learner(&key, "u1", 1).await;
    let (_, award) = app.put("/v1/events/e1", &key, completion("u1", "C1", "10")).await;
    let revoke = json!({"kind": "revocation", "target_event_id": "e1", "reason": "录入错误"});
    let (status, rev) = app.put("/v1/events/r1", &key, revoke.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{rev}");
    assert_eq!(
        (rev["entry"].clone(), rev["credits"].clone()),
        (json!("reversal"), json!("-2.00"))
    );
    let (status, _) = app.put("/v1/events/r1", &key, revoke).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .put(
            "/v1/events/r2",
            &key,
            json!({"kind": "revocation", "target_event_id": "e1", "reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "already_revoked");
    let (status, body) = app
        .put(
            "/v1/events/r3",
            &key,
            json!({"kind": "revocation", "target_event_id": "nope", "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("target_event_id"))
    );
    let (_, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &key).await;
    assert_eq!(t["totals"]["total"], "0.00");
    assert_eq!(t["entries"][0]["status"], "reversed");
    assert_eq!(t["entries"][1]["reverses"], award["position"]);
}

/// On PostgreSQL the committer splits a batch by chain shard; the answer
/// must still be in request order, with same-key items and a revocation of
/// an item of the same request judged in that order.
async fn a_batch_over_many_chains_keeps_request_order(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    let accounts: Vec<String> = (0..16).map(|i| format!("u{i}")).collect();
    for (i, acct) in accounts.iter().enumerate() {
        app.learner(&key, acct, 100 + i as u32).await;
    }
    // Committed by an earlier request: revoked from inside the batch.
    let (status, _) = app.put("/v1/events/old", &key, completion("u3", "C1", "8")).await;
    assert_eq!(status, StatusCode::CREATED);
    let item = |id: &str, acct: &str, hours: &str| {
        let mut e = completion(acct, "C1", hours);
        e["event_id"] = json!(id);
        e
    };
    let revoke = |id: &str, target: &str| json!({"event_id": id, "kind": "revocation", "target_event_id": target, "reason": "录入错误"});
    let mut items: Vec<Value> = accounts.iter().map(|a| item(&format!("e-{a}"), a, "8")).collect();
    items.push(revoke("r-5", "e-u5"));
    items.push(item("e-u7", "u7", "8"));
    items.push(item("e-u9", "u9", "9"));
    items.push(revoke("r-old", "old"));
    items.push(revoke("r-5-again", "e-u5"));
    let (status, out) = app.post("/v1/events", &key, Value::Array(items)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let results = out["results"].as_array().expect("results");
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().expect("status")).collect();
    let mut expected = vec!["accepted"; 16];
    expected.extend(["accepted", "duplicate", "conflict", "accepted", "rejected"]);
    assert_eq!(statuses, expected, "{out}");
    for (i, r) in results.iter().enumerate().take(16) {
        assert_eq!(r["event_id"], json!(format!("e-u{i}")));
    }
    assert_eq!(
        results[17]["position"], results[7]["position"],
        "a same-key duplicate names the first"
    );
    assert_eq!(results[18]["problem"]["field"], "18/hours");
    assert_eq!(results[20]["problem"]["code"], "already_revoked");
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 19);
    // Every chain is gap-free and verifies.
    let (code, report) = app.verify_cli().await;
    assert_eq!(code, 0, "{report}");
}

async fn events_can_name_the_learner_by_the_sites_own_id(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    app.course(&b, "C9", "vocational").await;
    app.learner(&a, "a-1", 5).await;
    // Site B registers the person (no account of its own): it names the
    // learner by the pseudonym it is answered with.
    let doc = json!({"kind": "resident_id", "number": resident_id(5)});
    let (status, body) = app
        .post("/v1/learners", &b, json!({"name": "测试", "document": doc}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let learner = body["learner_id"].as_str().expect("learner id").to_owned();
    assert!(learner.starts_with("psn_"), "{learner}");
    let mut ev = completion("ignored", "C9", "20");
    ev["learner"] = json!({"id": learner});
    let (status, body) = app.put("/v1/events/b-1", &b, ev).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Having credited the learner, site B may read the transcript.
    let (status, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t["totals"]["by_site"]["site-b"], "4.00");
    let mut ev = completion("x", "C9", "1");
    ev["learner"] = json!({"id": "lrn_00000000000000000000000000000000"});
    let (_, body) = app.put("/v1/events/b-2", &b, ev).await;
    assert_eq!(
        (body["code"].clone(), body["field"].clone()),
        (json!("unknown_learner"), json!("learner/id"))
    );
    let mut ev = completion("x", "C9", "1");
    ev["learner"] = json!({"id": learner, "local_account": "a-1"});
    let (status, body) = app.put("/v1/events/b-3", &b, ev).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("learner"))
    );
}

async fn a_batch_longer_than_the_limit_is_rejected(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| {
                    let mut e = completion("u1", "C1", "1");
                    e["event_id"] = json!(format!("ev-{n}-{i}"));
                    e
                })
                .collect(),
        )
    };
    let (status, body) = app.post("/v1/events", &key, batch(TEST_LIMITS.batch_events_max)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], TEST_LIMITS.batch_events_max);
    let (status, body) = app
        .post("/v1/events", &key, batch(TEST_LIMITS.batch_events_max + 1))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "batch_too_long");
    assert_eq!(
        app.scalar("select count(*) from ledger_entries").await,
        TEST_LIMITS.batch_events_max as i64
    );
    let (status, body) = app.post("/v1/events", &key, json!([])).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("batch_empty"))
    );
}

async fn a_body_larger_than_the_limit_is_rejected(app: TestApp) {
    let key = app.site("xihu").await;
    let big = "x".repeat(TEST_LIMITS.body_bytes_max + 1);
    let resp = app
        .client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.expect("problem");
    assert_eq!(body["code"], "body_too_large");
}

async fn strings_and_decimals_out_of_range_are_rejected(app: TestApp) {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    app.learner(&key, "u1", 1).await;
    let long_id = "e".repeat(129);
    let (status, body) = app
        .put(&format!("/v1/events/{long_id}"), &key, completion("u1", "C1", "1"))
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("event_id"))
    );
    let (status, _) = app
        .put(
            &format!("/v1/events/{}", "e".repeat(128)),
            &key,
            completion("u1", "C1", "1"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (hours, ok) in [("10000", true), ("10000.01", false), ("-1", false), ("1e400", false)] {
        let (status, body) = app
            .put(&format!("/v1/events/h-{hours}"), &key, completion("u1", "C1", hours))
            .await;
        if ok {
            assert_eq!(status, StatusCode::CREATED, "{hours}: {body}");
        } else {
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
                "{hours}: {status}"
            );
            assert_eq!(body["field"], "hours", "{hours}");
        }
    }
    let mut ev = completion("u1", "C1", "1");
    ev["kind"] = json!("revocation");
    ev["target_event_id"] = json!("x");
    let (status, body) = app
        .put(
            "/v1/events/r",
            &key,
            json!({"kind": "revocation", "target_event_id": "x", "reason": "长".repeat(201)}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("reason"))
    );
    let (status, body) = app
        .post(
            "/v1/sites",
            &app.admin,
            json!({"id": "ok", "name": "n".repeat(201), "level": "city", "region_code": "330100"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("name"))
    );
    let (status, body) = app
        .post(
            "/v1/sites",
            &app.admin,
            json!({"id": "ok", "name": "n", "level": "city", "region_code": "33010"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("region_code"))
    );
    // GB/T 2260: a province site with a county code is refused, naming the field.
    let (status, body) = app
        .post(
            "/v1/sites",
            &app.admin,
            json!({"id": "ok", "name": "n", "level": "province", "region_code": "330106"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("region_code"))
    );
    let mut future = completion("u1", "C1", "1");
    future["completed_at"] = json!("2999-01-01T00:00:00Z");
    let (status, body) = app.put("/v1/events/future", &key, future).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("completed_at"))
    );
    let (status, body) = app
        .put(
            "/v1/events/unknown-field",
            &key,
            json!({"kind": "completion", "colour": "red"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("malformed_json"))
    );
}

async fn the_transcript_totals_by_year_category_and_site(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    app.course(&a, "A1", "community").await;
    app.course(&b, "B1", "vocational").await;
    let learner = app.learner(&a, "a-1", 1).await;
    let (status, _) = app.put("/v1/accounts/b-1", &b, crate::harness::consent(&learner)).await;
    assert_eq!(status, StatusCode::CREATED);
    let ev = |acct: &str, course: &str, hours: &str, at: &str| {
        let mut e = completion(acct, course, hours);
        e["completed_at"] = json!(at);
        e
    };
    app.put("/v1/events/1", &a, ev("a-1", "A1", "10", "2025-06-01T00:00:00Z"))
        .await;
    app.put("/v1/events/2", &a, ev("a-1", "A1", "5", "2026-02-01T00:00:00Z"))
        .await;
    app.put("/v1/events/3", &b, ev("b-1", "B1", "15", "2026-03-01T00:00:00Z"))
        .await;
    // 2025-12-31T20:00Z is 2026-01-01 04:00 in China Standard Time.
    app.put("/v1/events/4", &b, ev("b-1", "B1", "2.5", "2025-12-31T20:00:00Z"))
        .await;
    let (status, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t["totals"]["total"], "6.50");
    assert_eq!(t["totals"]["by_year"], json!({"2025": "2.00", "2026": "4.50"}));
    assert_eq!(
        t["totals"]["by_category"],
        json!({"community": "3.00", "vocational": "3.50"})
    );
    assert_eq!(t["totals"]["by_site"], json!({"site-a": "3.00", "site-b": "3.50"}));
    assert_eq!(t["entries"].as_array().expect("entries").len(), 4);
    let (status, _) = app
        .get(
            "/v1/learners/lrn_00000000000000000000000000000000/transcript",
            &app.admin,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_transcript_shows_titles_and_names_and_filters_by_year_category_and_site(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let titled = |title: &str, category: &str| json!({"title": title, "category": category, "rule": {"kind": "per_hours", "hours_per_credit": "5", "cap": "4"}, "repeat": "every_completion"});
    let (status, body) = app.put("/v1/courses/A1", &a, titled("茶艺入门", "community")).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app.put("/v1/courses/B1", &b, titled("电工基础", "vocational")).await;
    assert!(status.is_success(), "{body}");
    let learner = app.learner(&a, "a-1", 1).await;
    let (status, _) = app.put("/v1/accounts/b-1", &b, crate::harness::consent(&learner)).await;
    assert_eq!(status, StatusCode::CREATED);
    let ev = |acct: &str, course: &str, hours: &str, at: &str| {
        let mut e = completion(acct, course, hours);
        e["completed_at"] = json!(at);
        e
    };
    for (id, key, acct, course, hours, at) in [
        ("1", &a, "a-1", "A1", "10", "2025-06-01T00:00:00Z"),
        ("2", &a, "a-1", "A1", "5", "2026-02-01T00:00:00Z"),
        ("3", &b, "b-1", "B1", "15", "2026-03-01T00:00:00Z"),
        ("4", &b, "b-1", "B1", "5", "2026-04-01T00:00:00Z"),
        ("5", &a, "a-1", "A1", "20", "2026-05-01T00:00:00Z"),
    ] {
        let (status, body) = app
            .put(&format!("/v1/events/{id}"), key, ev(acct, course, hours, at))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, t) = transcript_of(&app, &learner, "").await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let lines = t["entries"].as_array().expect("entries");
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["course_title"], "茶艺入门");
    assert_eq!(lines[0]["site_name"], "site-a 学习网");
    assert_eq!(lines[2]["course_title"], "电工基础");
    assert_eq!(lines[2]["site_name"], "site-b 学习网");
    assert_eq!(lines[0]["category"], "community");
    assert_eq!(
        t["site_names"],
        json!({"site-a": "site-a 学习网", "site-b": "site-b 学习网"})
    );
    assert_eq!(t["totals"]["total"], "11.00");

    // Filters narrow the lines and the totals alike.
    let (_, t) = transcript_of(&app, &learner, "?year=2026").await;
    let events = |t: &Value| -> Vec<String> {
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["event_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(events(&t), ["2", "3", "4", "5"]);
    assert_eq!(t["totals"]["total"], "9.00");
    assert_eq!(t["totals"]["by_year"], json!({"2026": "9.00"}));
    let (_, t) = transcript_of(&app, &learner, "?site=site-b").await;
    assert_eq!(events(&t), ["3", "4"]);
    assert_eq!(t["totals"]["by_site"], json!({"site-b": "4.00"}));
    assert_eq!(t["site_names"], json!({"site-b": "site-b 学习网"}));
    let (_, t) = transcript_of(&app, &learner, "?category=community&year=2026").await;
    assert_eq!(events(&t), ["2", "5"]);
    assert_eq!(t["totals"]["total"], "5.00");
    assert_eq!(t["totals"]["by_category"], json!({"community": "5.00"}));
    let (_, t) = transcript_of(&app, &learner, "?year=2024").await;
    assert_eq!(events(&t), Vec::<String>::new());
    assert_eq!(t["totals"]["total"], "0.00");

    // Paging within a filter: pages of one line, no line skipped or repeated.
    let mut seen = Vec::new();
    let mut query = "?category=community&limit=1".to_owned();
    for _ in 0..10 {
        let (status, t) = transcript_of(&app, &learner, &query).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["totals"]["total"], "7.00", "filtered totals on every page");
        seen.extend(events(&t));
        match t["next_after"].as_str() {
            Some(next) => query = format!("?category=community&limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["1", "2", "5"]);

    // Bad filters name their field.
    for (query, field) in [
        ("?year=26", "year"),
        ("?year=abc", "year"),
        ("?category=Not%20A%20Category", "category"),
        ("?site=", "site"),
        ("?term=1", "term"),
    ] {
        let (status, p) = transcript_of(&app, &learner, query).await;
        assert_eq!(
            (status, p["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(field)),
            "{query}: {p}"
        );
    }
}

/// The admin's view of a learner's transcript with a query string.
async fn transcript_of(app: &TestApp, learner: &str, query: &str) -> (StatusCode, Value) {
    app.get(&format!("/v1/learners/{learner}/transcript{query}"), &app.admin)
        .await
}

/// Writes entries for three learners and returns the chain of the first.
async fn some_ledger(app: &TestApp) -> i64 {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    for (i, acct) in ["u1", "u2", "u3"].iter().enumerate() {
        app.learner(&key, acct, i as u32 + 1).await;
        for n in 0..4 {
            let (status, _) = app
                .put(&format!("/v1/events/{acct}-{n}"), &key, completion(acct, "C1", "5"))
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    }
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("12 entries"), "{out}");
    app.scalar("select cast(chain_id as bigint) from ledger_entries where event_id = 'u1-0'")
        .await
}

async fn verify_names_an_altered_entry(app: TestApp) {
    let chain = some_ledger(&app).await;
    app.tamper("update ledger_entries set credits_cents = credits_cents + 1 where event_id = 'u1-2'")
        .await;
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("chain {chain} position 3")), "{out}");
    assert!(out.contains("altered"), "{out}");
}

async fn verify_names_a_deleted_entry(app: TestApp) {
    let chain = some_ledger(&app).await;
    app.tamper("delete from ledger_entries where event_id = 'u1-1'").await;
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("chain {chain} position 2")), "{out}");
}

async fn verify_names_a_deleted_last_entry(app: TestApp) {
    let chain = some_ledger(&app).await;
    let last = app
        .scalar(&format!("select max(seq) from ledger_entries where chain_id = {chain}"))
        .await;
    app.tamper(&format!(
        "delete from ledger_entries where chain_id = {chain} and seq = {last}"
    ))
    .await;
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("chain {chain} position {last}")), "{out}");
    assert!(out.contains("chain head"), "{out}");
}

async fn verify_names_swapped_entries(app: TestApp) {
    let chain = some_ledger(&app).await;
    // Swap the rows at positions 2 and 3 (each keeps its content, the positions trade places).
    for (from, to) in [(2, -1), (3, 2), (-1, 3)] {
        app.tamper(&format!(
            "update ledger_entries set seq = {to} where chain_id = {chain} and seq = {from}"
        ))
        .await;
    }
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("chain {chain} position 2")), "{out}");
}

async fn the_service_refuses_to_update_the_ledger(app: TestApp) {
    some_ledger(&app).await;
    let err = app
        .exec("update ledger_entries set credits_cents = 0")
        .await
        .expect_err("append-only");
    assert!(err.contains("append-only"), "{err}");
    let err = app.exec("delete from ledger_entries").await.expect_err("append-only");
    assert!(err.contains("append-only"), "{err}");
}
