//! Learners' names sealed at rest (crates/xuefen-core/src/names.rs), over
//! HTTP on both backends: the raw database bytes (the SQLite file and its
//! WAL, a `pg_dump`) hold neither a registered name nor a document number,
//! every stored name is sealed under the learner's own key (kept wrapped by
//! the service's key), the service still matches real-name data and reads
//! names back, and erasure removes the sealed value and the learner's key
//! while `xuefen verify` still passes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{TestApp, resident_id};

crate::backend_tests!(names_and_document_numbers_are_not_in_the_database_bytes);

async fn names_and_document_numbers_are_not_in_the_database_bytes(app: TestApp) {
    let site = app.site("mingyue").await;
    app.course(&site, "C1", "community").await;
    // Names in two scripts, so that neither UTF-8 Chinese nor ASCII slips by.
    let people = [("欧阳明月", 501u32, "a-1"), ("Zhuge Kongming", 502, "a-2")];
    let mut admin_ids = Vec::new();
    for (name, person, account) in people {
        let document = json!({"kind": "resident_id", "number": resident_id(person)});
        let (status, body) = app
            .post(
                "/v1/learners",
                &site,
                json!({"name": name, "document": document, "local_account": account}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // The same person again, by the admin: matched by the sealed name.
        let (status, body) = app
            .post("/v1/learners", &app.admin, json!({"name": name, "document": document}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        admin_ids.push(body["learner_id"].as_str().expect("id").to_owned());
        // Another name under the same document is still a 409 naming `name`.
        let (status, body) = app
            .post(
                "/v1/learners",
                &app.admin,
                json!({"name": "别人", "document": document}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["field"], "name", "{body}");
        let (status, body) = app
            .put(
                &format!("/v1/events/e-{account}"),
                &site,
                crate::harness::completion(account, "C1", "5"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Every stored name is sealed under the learner's own key, and each
    // key is wrapped by the default service key (derived from the identity
    // key), each under its own nonce.
    assert_eq!(app.scalar("select count(*) from learners").await, 2);
    assert_eq!(
        app.scalar("select count(*) from learners where substr(name, 1, 5) = 'xfl1:'")
            .await,
        2
    );
    assert_eq!(app.scalar("select count(distinct name) from learners").await, 2);
    assert_eq!(
        app.scalar(
            "select count(*) from learner_keys k join learners l on l.id = k.learner_id
              where substr(k.wrapped, 1, 8) = 'xfn1:k0:'"
        )
        .await,
        2
    );

    let raw = app.raw_database_bytes().await;
    let holds = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (name, person, _) in people {
        assert!(!holds(name), "the name {name} lies in clear in the database");
        let number = resident_id(person);
        assert!(!holds(&number), "the document number {number} lies in the database");
        // Nor its distinctive part (birth date and sequence) in any column.
        assert!(
            !holds(&number[6..17]),
            "part of the document number lies in the database"
        );
    }
    for given in ["Zhuge", "Kongming", "欧阳"] {
        assert!(!holds(given), "a part of a name ({given}) lies in the database");
    }

    // Erasure: the sealed name and the learner's wrapped key go with the
    // rows; the ledger still verifies.
    let sealed_values = |bytes: &[u8]| -> std::collections::BTreeSet<String> {
        let text = String::from_utf8_lossy(bytes).into_owned();
        ["xfn1:k0:", "xfl1:"]
            .iter()
            .flat_map(|prefix| {
                text.match_indices(prefix)
                    .map(|(i, _)| text[i..].chars().take(40).collect::<String>())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let before = sealed_values(&raw);
    assert_eq!(before.len(), 4, "two names and two wrapped keys: {before:?}");
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/learners/{}?reason_code=pipl_art47", admin_ids[0]),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.scalar("select count(*) from learners").await, 1);
    assert_eq!(app.scalar("select count(*) from learner_keys").await, 1);
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "xuefen verify after erasure: {out}");
    let after = app.raw_database_bytes().await;
    let after_text = String::from_utf8_lossy(&after).into_owned();
    let left = sealed_values(&after);
    assert_eq!(
        left.len(),
        2,
        "only the other learner's sealed name and wrapped key are left: {left:?}"
    );
    assert!(left.is_subset(&before));
    for (name, _, _) in people {
        assert!(!after_text.contains(name), "{name} in clear after erasure");
    }
    // The other learner is still matched by name.
    let document = json!({"kind": "resident_id", "number": resident_id(people[1].1)});
    let (status, body) = app
        .post(
            "/v1/learners",
            &app.admin,
            json!({"name": people[1].0, "document": document}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
