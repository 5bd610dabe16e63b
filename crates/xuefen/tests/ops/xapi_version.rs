//! `xapi_default_version`: the version the xAPI door names on answers to
//! requests that name none, on the real binary and both backends. A
//! request that names a version is always answered in it.

use reqwest::StatusCode;

use crate::server::{Server, backends};

async fn answered_version(server: &Server, path: &str, version: Option<&str>, auth: bool) -> (StatusCode, String) {
    let mut req = server.client.get(format!("{}{path}", server.base));
    if let Some(v) = version {
        req = req.header("X-Experience-API-Version", v);
    }
    if auth {
        req = req.basic_auth("nobody", Some("not-a-key"));
    }
    let resp = req.send().await.expect("request");
    let header = resp
        .headers()
        .get("x-experience-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (resp.status(), header)
}

#[tokio::test]
async fn the_xapi_door_names_its_configured_default_version_when_the_request_names_none() {
    for backend in backends() {
        for (setting, expected) in [(None, "2.0.0"), (Some("1.0.3"), "1.0.3"), (Some("2.0.0"), "2.0.0")] {
            let env: Vec<(&str, String)> = setting
                .map(|v| vec![("XUEFEN_XAPI_DEFAULT_VERSION", v.to_owned())])
                .unwrap_or_default();
            let server = Server::start(backend, &env, &[]).await;
            let (s, v) = answered_version(&server, "/xapi/about", None, false).await;
            assert_eq!(
                (s, v.as_str()),
                (StatusCode::OK, expected),
                "{backend:?} {setting:?}: about"
            );
            let (s, v) = answered_version(&server, "/xapi/statements", None, false).await;
            assert_eq!(
                (s, v.as_str()),
                (StatusCode::UNAUTHORIZED, expected),
                "{backend:?} {setting:?}: no credentials"
            );
            let (s, v) = answered_version(&server, "/xapi/statements", None, true).await;
            assert_eq!(
                (s, v.as_str()),
                (StatusCode::BAD_REQUEST, expected),
                "{backend:?} {setting:?}: no version"
            );
            // A request naming a version is answered in it, whatever the default.
            let (_, v) = answered_version(&server, "/xapi/about", Some("1.0.3"), false).await;
            assert_eq!(v, "1.0.3", "{backend:?} {setting:?}: echoes 1.0.3");
            let (_, v) = answered_version(&server, "/xapi/about", Some("2.0.0"), false).await;
            assert_eq!(v, "2.0.0", "{backend:?} {setting:?}: echoes 2.0.0");
        }
    }
}

#[test]
fn a_default_version_the_door_does_not_speak_is_a_configuration_error() {
    let dir = std::env::temp_dir().join(format!("xuefen-xapi-version-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = std::process::Command::new(crate::server::XUEFEN)
        .args(["config", "check"])
        .env("XUEFEN_DATA_DIR", &dir)
        .env("XUEFEN_XAPI_DEFAULT_VERSION", "1.0.9")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run xuefen config check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted 1.0.9: {stderr}");
    assert!(stderr.contains("xapi_default_version"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
