//! A provincial single sign-on that does not know the unified learner id:
//! its own id of the person (claim `uid`) is bound to the learner on the
//! first login that carries the person's real-name-verified resident ID
//! (claim `id_card`), on both backends.

use reqwest::StatusCode;
use serde_json::json;
use xuefen_api::sso::SsoSubject;

use crate::harness::{Backend, SSO_AUDIENCE, SSO_ISSUER, SSO_SECRET, TestApp, completion, resident_id};

fn token(uid: &str, id_card: Option<&str>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = serde_json::Map::new();
    claims.insert("uid".into(), uid.into());
    if let Some(number) = id_card {
        claims.insert("id_card".into(), number.into());
    }
    xuefen_api::sso::dev_token_with(SSO_SECRET, SSO_ISSUER, SSO_AUDIENCE, claims, now, 300).expect("sign")
}

async fn the_sso_id_is_bound_on_first_login_by_the_document_claim(backend: Backend) {
    let app = TestApp::spawn_with_sso_subject(
        backend,
        SsoSubject::Bound {
            claim: "uid".into(),
            document_claim: Some("id_card".into()),
        },
    )
    .await;
    let site = app.site("site-a").await;
    app.course(&site, "C1", "community").await;
    app.learner(&site, "a-1", 1).await;
    let (status, body) = app.put("/v1/events/e1", &site, completion("a-1", "C1", "5")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uid = "zj-sso-000123";

    // Not bound yet, and no document: a 404, as for nobody.
    let (status, body) = app.get("/v1/me/transcript", &token(uid, None)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("unknown_learner")),
        "{body}"
    );
    // A document nobody registered binds nothing.
    let (status, _) = app.get("/v1/me/transcript", &token(uid, Some(&resident_id(2)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A token without the subject claim is a 401 naming it.
    let (status, body) = app.get("/v1/me/transcript", &token("", Some(&resident_id(1)))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("`uid`")), "{body}");

    // The first login with the document binds; later ones need only the id.
    let (status, first) = app.get("/v1/me/transcript", &token(uid, Some(&resident_id(1)))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(1), "{first}");
    let (status, again) = app.get("/v1/me/transcript", &token(uid, None)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["learner_id"], first["learner_id"]);
    // A bound id keeps its learner, whatever document a later token holds.
    let (_, other) = app.get("/v1/me/transcript", &token(uid, Some(&resident_id(2)))).await;
    assert_eq!(other["learner_id"], first["learner_id"]);
    assert_eq!(app.scalar("select count(*) from learner_sso_bindings").await, 1);
    // The SSO's id is kept only as a keyed hash.
    let raw = app.raw_database_bytes().await;
    assert!(
        !raw.windows(uid.len()).any(|w| w == uid.as_bytes()),
        "the SSO id is stored in clear"
    );

    // Erasure removes the binding: the same token is a 404 afterwards.
    let learner = first["learner_id"].as_str().expect("learner id");
    let (status, body) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/learners/{learner}?reason_code=pipl_art47"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.scalar("select count(*) from learner_sso_bindings").await, 0);
    let (status, _) = app.get("/v1/me/transcript", &token(uid, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sso_id_is_bound_on_first_login_by_the_document_claim() {
        super::the_sso_id_is_bound_on_first_login_by_the_document_claim(crate::harness::Backend::Postgres).await;
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sso_id_is_bound_on_first_login_by_the_document_claim() {
        super::the_sso_id_is_bound_on_first_login_by_the_document_claim(crate::harness::Backend::Sqlite).await;
    }
}
