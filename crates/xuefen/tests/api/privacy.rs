//! Need-to-know reads, identity checks and erasure over HTTP, on both
//! backends (issue: learner identity, consent and erasure).

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::harness::{SSO_ISSUER, SSO_SECRET, TestApp, completion, consent, learner_token, resident_id};

backend_tests!(
    a_sites_changes_and_statistics_are_for_the_admin_and_the_site_itself,
    a_site_that_knows_only_the_id_number_gets_a_409_naming_the_name,
    linking_an_account_needs_real_name_data_or_the_learners_consent,
    ids_that_carry_a_resident_id_number_are_refused_naming_the_field,
    erasure_keeps_the_ledger_valid_and_leaves_nothing_personal_in_the_database,
);

/// `GET /v1/sites/{id}/changes` and `/stats`: the admin and the site read
/// them; another site and the credit bank are refused with 403.
async fn a_sites_changes_and_statistics_are_for_the_admin_and_the_site_itself(app: TestApp) {
    let own = app.site("site-a").await;
    let other = app.site("site-b").await;
    let bank = app.bank().await;
    for path in ["/v1/sites/site-a/changes", "/v1/sites/site-a/stats"] {
        for (who, key, expected) in [
            ("admin", &app.admin, StatusCode::OK),
            ("own site", &own, StatusCode::OK),
            ("other site", &other, StatusCode::FORBIDDEN),
            ("bank", &bank, StatusCode::FORBIDDEN),
        ] {
            let (status, body) = app.get(path, key).await;
            assert_eq!(status, expected, "{who} on {path}: {body}");
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(body["code"], json!("forbidden"), "{body}");
            }
        }
    }
}

/// Registering a known document under another name is a 409 naming
/// `name`, and links nothing; the right name finds the learner.
async fn a_site_that_knows_only_the_id_number_gets_a_409_naming_the_name(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let doc = json!({"kind": "resident_id", "number": resident_id(7)});
    let (status, first) = app
        .post(
            "/v1/learners",
            &a,
            json!({"name": "王五", "document": doc, "local_account": "a-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = app
        .post(
            "/v1/learners",
            &b,
            json!({"name": "王六", "document": doc, "local_account": "b-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], json!("name_mismatch"));
    assert_eq!(body["field"], json!("name"));
    // Nothing was linked: posting for b-1 names an unknown account.
    app.course(&b, "B1", "community").await;
    let (status, body) = app.put("/v1/events/e1", &b, completion("b-1", "B1", "5")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post(
            "/v1/learners",
            &b,
            json!({"name": "王五", "document": doc, "local_account": "b-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], json!(false));
}

/// `PUT /v1/accounts/{local}`: a bare learner id is refused; the full
/// real-name data must match (a wrong name is a 409 naming it); the
/// learner's own token is consent, another learner's is not.
async fn linking_an_account_needs_real_name_data_or_the_learners_consent(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let learner = app.learner(&a, "a-1", 1).await;
    let other = app.learner(&a, "a-2", 2).await;
    let (status, body) = app.put("/v1/accounts/b-1", &b, json!({"learner_id": learner})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("consent_token"));
    let doc = json!({"kind": "resident_id", "number": resident_id(1)});
    let (status, body) = app
        .put("/v1/accounts/b-1", &b, json!({"name": "别人", "document": doc}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["field"], json!("name"));
    let unknown = json!({"kind": "resident_id", "number": resident_id(99)});
    let (status, body) = app
        .put("/v1/accounts/b-1", &b, json!({"name": "测试", "document": unknown}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let wrong = json!({"learner_id": learner, "consent_token": learner_token(&other, SSO_ISSUER, SSO_SECRET, 300)});
    let (status, body) = app.put("/v1/accounts/b-1", &b, wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], json!("consent_mismatch"));
    let (status, body) = app
        .put("/v1/accounts/b-1", &b, json!({"name": "测试", "document": doc}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.put("/v1/accounts/b-2", &b, consent(&learner)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bank = app.bank().await;
    let (status, _) = app.put("/v1/accounts/x", &bank, consent(&learner)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// An event id or a local account holding a resident ID number (valid
/// check digit) is refused with a 422 naming the field, in every door.
async fn ids_that_carry_a_resident_id_number_are_refused_naming_the_field(app: TestApp) {
    let a = app.site("site-a").await;
    app.course(&a, "A1", "community").await;
    let number = resident_id(5);
    let doc = json!({"kind": "resident_id", "number": resident_id(6)});
    let (status, body) = app
        .post(
            "/v1/learners",
            &a,
            json!({"name": "赵六", "document": doc, "local_account": number}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("local_account"));
    assert!(
        body["detail"].as_str().expect("detail").contains("resident ID"),
        "{body}"
    );
    app.learner(&a, "a-1", 1).await;
    let (status, body) = app
        .put(&format!("/v1/events/ev-{number}"), &a, completion("a-1", "A1", "5"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("event_id"));
    let mut item = completion("a-1", "A1", "5");
    item["event_id"] = json!(number);
    let (status, body) = app.post("/v1/events", &a, json!([item])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"], json!(1), "{body}");
    let mut item = completion(&number, "A1", "5");
    item["event_id"] = json!("e-2");
    let (status, body) = app.post("/v1/events", &a, json!([item])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rejected"], json!(1), "{body}");
    let (status, body) = app
        .put(
            &format!("/v1/accounts/{number}"),
            &a,
            json!({"name": "测试", "document": {"kind": "resident_id", "number": resident_id(1)}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("local_account"));
    // Nothing of it was written.
    assert_eq!(app.scalar("select count(*) from ledger_entries").await, 0);
}

/// `DELETE /v1/learners/{id}`: admin only, with a legal reason code; the
/// ledger still verifies, the transcript is 404, the learner's account no
/// longer posts, and neither the database file and its WAL (SQLite) nor a
/// `pg_dump` (PostgreSQL) holds the name, the unified id, the local account,
/// the revocation note or the document hash. Another learner is untouched.
async fn erasure_keeps_the_ledger_valid_and_leaves_nothing_personal_in_the_database(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    app.course(&a, "A1", "community").await;
    app.course(&b, "B1", "community").await;
    let name = "欧阳娜娜";
    let account = "acct-ouyang-7";
    let doc = json!({"kind": "passport", "number": "E99887766"});
    let (status, body) = app
        .post(
            "/v1/learners",
            &a,
            json!({"name": name, "document": doc, "local_account": account}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pseudonym = body["learner_id"].as_str().expect("id").to_owned();
    assert!(pseudonym.starts_with("psn_"), "{pseudonym}");
    // The unified id, as the admin (and the learner's token) knows it.
    let (status, body) = app
        .post("/v1/learners", &app.admin, json!({"name": name, "document": doc}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let learner = body["learner_id"].as_str().expect("id").to_owned();
    let other = app.learner(&a, "acct-other", 3).await;
    let (status, _) = app.put("/v1/accounts/b-ouyang", &b, consent(&learner)).await;
    assert_eq!(status, StatusCode::CREATED);
    for (key, id, acct, course) in [
        (&a, "ev-1", account, "A1"),
        (&a, "ev-2", account, "A1"),
        (&b, "ev-3", "b-ouyang", "B1"),
        (&a, "ev-4", "acct-other", "A1"),
    ] {
        let (status, body) = app
            .put(&format!("/v1/events/{id}"), key, completion(acct, course, "10"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let note = "学员本人来电说明私事";
    let revoke =
        json!({"kind": "revocation", "target_event_id": "ev-2", "reason_code": "entered_in_error", "reason": note});
    let (status, body) = app.put("/v1/events/rv-1", &a, revoke).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "{out}");
    // At rest the note is sealed under the learner's key, never in clear.
    let before = app.raw_database_bytes().await;
    assert!(
        !before.windows(note.len()).any(|w| w == note.as_bytes()),
        "the revocation note lies in clear before any erasure"
    );

    let path = format!("/v1/learners/{learner}?reason_code=pipl_art47");
    let (status, _) = app.call(reqwest::Method::DELETE, &path, Some(&a), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a site cannot erase");
    let bad = format!("/v1/learners/{learner}?reason_code=because");
    let (status, body) = app.call(reqwest::Method::DELETE, &bad, Some(&app.admin), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("reason_code"));
    let (status, body) = app.call(reqwest::Method::DELETE, &path, Some(&app.admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason_code"], json!("pipl_art47"));
    let (status, _) = app.call(reqwest::Method::DELETE, &path, Some(&app.admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "erased once");

    let (status, _) = app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.put("/v1/events/ev-5", &a, completion(account, "A1", "5")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the erased account no longer posts"
    );
    let (status, t) = app.get(&format!("/v1/learners/{other}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["entries"].as_array().map(Vec::len), Some(1), "{t}");
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "every hash still holds after the erasure: {out}");
    assert_eq!(
        app.scalar("select count(*) from ledger_entries where kind = 12").await,
        1
    );

    let document = xuefen_core::identity::Document::parse(xuefen_core::identity::DocumentKind::Passport, "E99887766")
        .expect("document")
        .keyed_hash(b"test identity key");
    let bytes = app.raw_database_bytes().await;
    let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // Names are sealed at rest (tests/api/sealed_names.rs): the other
    // learner's is there sealed under their key, itself wrapped; nobody's
    // in clear.
    assert!(
        holds(b"xfl1:") && holds(b"xfn1:k0:"),
        "the other learner's sealed name and wrapped key are still there (the check can fail)"
    );
    assert!(!holds("测试".as_bytes()), "a name lies in clear");
    assert!(holds(other.as_bytes()), "the other learner's id is still there");
    assert!(
        app.scalar("select count(*) from learner_pseudonyms").await > 0,
        "the other learner's pseudonyms are still there"
    );
    for (what, needle) in [
        ("the name", name.as_bytes()),
        ("the unified id", learner.as_bytes()),
        ("site A's pseudonym", pseudonym.as_bytes()),
        ("the local account", account.as_bytes()),
        ("the other site's local account", "b-ouyang".as_bytes()),
        ("the revocation note", note.as_bytes()),
        ("the document hash", &document[..]),
        ("the document hash in hex", hex::encode(document).as_bytes()),
    ] {
        assert!(!holds(needle), "the database still holds {what} after the erasure");
    }
}
