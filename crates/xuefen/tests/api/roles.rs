//! Every route's roles, as a property over the OpenAPI document: for every
//! operation of `openapi/xuefen.json` and every role (admin, site, credit
//! bank, learner, anonymous), a real HTTP request with that role's
//! credentials (in the form the operation's security scheme takes) is let
//! through exactly when the operation's `x-roles` names the role; a role it
//! does not name gets 401 or 403, as application/problem+json (an HTML
//! page for the browser pages). "Let through" means neither 401 nor 403:
//! the request bodies are placeholders, so a 404 or 422 is the handler's
//! judgement after the role check passed.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{SSO_ISSUER, SSO_SECRET, TestApp, learner_token, resident_id};

crate::backend_tests!(every_operation_answers_each_role_as_its_declared_roles_say);

/// The roles a caller can have, as `x-roles` names them.
const ROLES: [&str; 5] = ["admin", "site", "bank", "learner", "anonymous"];
const SITE: &str = "rolesite";

struct Party {
    /// The API key (admin, site, bank) or SSO token (learner).
    secret: Option<String>,
    /// The learner id this party names the test learner by.
    learner_id: String,
}

fn document() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/xuefen.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read openapi/xuefen.json")).expect("JSON")
}

/// A path with its parameters filled in for `party`.
fn fill(path: &str, party: &Party) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).expect("closing brace");
        out.push_str(match &rest[open + 1..close] {
            "site_id" => SITE,
            "learner_id" => party.learner_id.as_str(),
            "local_account" => "r-1",
            "code" => "C1",
            "event_id" => "e-1",
            "key_id" => "key_00000000000000000000000000000000",
            "chain" => "0",
            "seq" => "1",
            "category" => "community",
            "group_id" => "g-1",
            "path" => "0/000",
            other => panic!("no test value for path parameter `{other}`: add one here"),
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn every_operation_answers_each_role_as_its_declared_roles_say(app: TestApp) {
    // Fixtures: a site with a course and a linked learner, a bank key.
    let site_key = app.site(SITE).await;
    app.course(&site_key, "C1", "community").await;
    let document_in = json!({"kind": "resident_id", "number": resident_id(77)});
    let (status, body) = app
        .post(
            "/v1/learners",
            &site_key,
            json!({"name": "角色", "document": document_in, "local_account": "r-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let site_pseudonym = body["learner_id"].as_str().expect("id").to_owned();
    let (_, body) = app
        .post(
            "/v1/learners",
            &app.admin,
            json!({"name": "角色", "document": document_in}),
        )
        .await;
    let unified = body["learner_id"].as_str().expect("id").to_owned();
    let bank_key = app.bank().await;
    let (status, body) = app
        .post(
            "/v1/learners",
            &bank_key,
            json!({"name": "角色", "document": document_in}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bank_pseudonym = body["learner_id"].as_str().expect("id").to_owned();
    let token = learner_token(&unified, SSO_ISSUER, SSO_SECRET, 3600);
    let parties: BTreeMap<&str, Party> = BTreeMap::from([
        (
            "admin",
            Party {
                secret: Some(app.admin.clone()),
                learner_id: unified.clone(),
            },
        ),
        (
            "site",
            Party {
                secret: Some(site_key.clone()),
                learner_id: site_pseudonym,
            },
        ),
        (
            "bank",
            Party {
                secret: Some(bank_key),
                learner_id: bank_pseudonym,
            },
        ),
        (
            "learner",
            Party {
                secret: Some(token),
                learner_id: unified.clone(),
            },
        ),
        (
            "anonymous",
            Party {
                secret: None,
                learner_id: unified.clone(),
            },
        ),
    ]);
    // The admin's browser session, for the pages that take it.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = no_redirect
        .post(format!("{}/admin/login", app.base))
        .form(&[("key", app.admin.as_str())])
        .send()
        .await
        .expect("admin login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let admin_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("xf_admin="))
        .and_then(|c| c.split(';').next())
        .expect("the xf_admin cookie")
        .to_owned();

    let doc = document();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::PUT | Method::POST | Method::DELETE | Method::PATCH
            ) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap_or("?").to_owned();
            let Some(declared) = op["x-roles"].as_array() else {
                wrong.push(format!("{method} {path} ({id}): declares no x-roles"));
                continue;
            };
            let declared: Vec<&str> = declared.iter().filter_map(Value::as_str).collect();
            for role in &declared {
                assert!(ROLES.contains(role), "{id}: unknown role `{role}`");
            }
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|r| r.as_object()?.keys().next().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let page = op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "pages"));
            for role in ROLES {
                let party = &parties[role];
                let url = format!("{}{}", app.base, fill(path, party));
                let mut req = no_redirect.request(method.clone(), &url);
                if path.starts_with("/xapi/") {
                    req = req.header("X-Experience-API-Version", "2.0.0");
                }
                // The role's credential in the form the operation takes.
                match (role, party.secret.as_deref()) {
                    (_, None) => {}
                    ("admin", Some(_)) if schemes.contains(&"admin_session") => {
                        req = req.header("cookie", &admin_cookie);
                    }
                    ("site", Some(key)) if schemes.contains(&"basic") => {
                        req = req.basic_auth(SITE, Some(key));
                    }
                    ("admin" | "bank", Some(key)) if schemes.contains(&"basic") => {
                        req = req.basic_auth(role, Some(key));
                    }
                    (_, Some(secret)) => req = req.bearer_auth(secret),
                }
                // The sign-in forms take the credential as a form field.
                let form_field = match path.as_str() {
                    "/admin/login" => Some("key"),
                    "/me/login" => Some("token"),
                    _ => None,
                };
                if let Some(field) = form_field {
                    req = req.form(&[(field, party.secret.as_deref().unwrap_or_default())]);
                } else if matches!(method, Method::PUT | Method::POST | Method::PATCH) {
                    req = req.json(&json!({}));
                }
                let resp = req.send().await.expect("request");
                let status = resp.status();
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = resp.text().await.unwrap_or_default();
                checked += 1;
                let denied = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
                let allowed = declared.contains(&role);
                let short: String = body.chars().take(160).collect();
                if allowed && denied {
                    wrong.push(format!(
                        "{method} {path} ({id}) as {role}: declared allowed, got {status}: {short}"
                    ));
                } else if !allowed && !denied {
                    wrong.push(format!(
                        "{method} {path} ({id}) as {role}: declared denied, got {status}: {short}"
                    ));
                } else if denied && !page && content_type != "application/problem+json" {
                    wrong.push(format!(
                        "{method} {path} ({id}) as {role}: {status} as `{content_type}`, not a problem"
                    ));
                } else if denied && page && !content_type.starts_with("text/html") {
                    wrong.push(format!(
                        "{method} {path} ({id}) as {role}: {status} as `{content_type}`, not a page"
                    ));
                }
            }
        }
    }
    assert!(
        checked > 300,
        "only {checked} requests: the document was not read whole"
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers differ from the declared roles:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
