//! Who may call each operation: one table, written into the OpenAPI
//! document as every operation's `x-roles`, and enforced for the API-key
//! routes before any handler (or its body parser) runs.
//!
//! A role is the kind of caller: the provincial centre's `admin` key, a
//! `site` key, the credit `bank` key, a `learner` signed in through the
//! single sign-on, or an `anonymous` caller. A role the table does not name
//! for an operation is answered 401 (no or bad credentials) or 403 (valid
//! credentials of another role), whatever the request holds; handlers keep
//! their finer checks (a site reads only its own statistics, a site whose
//! agreement ended cannot post). `crates/xuefen/tests/api/roles.rs` checks
//! every operation against every role over HTTP.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use xuefen_store::Principal;

use crate::AppState;
use crate::auth::Caller;

/// The kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Site,
    Bank,
    Learner,
    Anonymous,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Site => "site",
            Role::Bank => "bank",
            Role::Learner => "learner",
            Role::Anonymous => "anonymous",
        }
    }

    fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Admin => Role::Admin,
            Principal::Site(_) => Role::Site,
            Principal::Bank => Role::Bank,
        }
    }
}

use Role::{Admin, Anonymous, Bank, Learner, Site};

const EVERYONE: &[Role] = &[Admin, Site, Bank, Learner, Anonymous];
const ANY_KEY: &[Role] = &[Admin, Site, Bank];

/// Every operation: method, path template (as the OpenAPI document and the
/// router spell it) and the roles that may call it. The sign-in forms are
/// the role whose credential they take.
pub const DECLARED: &[(&str, &str, &[Role])] = &[
    // Public: health, the log, the record issuer, the verification pages, xAPI about.
    ("GET", "/healthz", EVERYONE),
    ("GET", "/readyz", EVERYONE),
    ("GET", "/metrics", EVERYONE),
    ("GET", "/checkpoint", EVERYONE),
    ("GET", "/tile/{path}", EVERYONE),
    ("GET", "/v1/record/issuer", EVERYONE),
    ("GET", "/verify", EVERYONE),
    ("POST", "/verify", EVERYONE),
    ("GET", "/verify/offline", EVERYONE),
    ("GET", "/xapi/about", EVERYONE),
    ("POST", "/admin/logout", EVERYONE),
    ("POST", "/me/logout", EVERYONE),
    // The browser pages.
    ("POST", "/admin/login", &[Admin]),
    ("GET", "/admin", &[Admin]),
    ("POST", "/me/login", &[Learner]),
    ("GET", "/me", &[Learner]),
    ("GET", "/me/record", &[Learner]),
    ("POST", "/me/record", &[Learner]),
    // The learner's own API.
    ("GET", "/v1/me/transcript", &[Learner]),
    ("GET", "/v1/me/record", &[Learner]),
    ("POST", "/v1/me/record", &[Learner]),
    // Sites and keys.
    ("GET", "/v1/sites", &[Admin]),
    ("POST", "/v1/sites", &[Admin]),
    ("GET", "/v1/sites/{site_id}", &[Admin, Site]),
    ("PUT", "/v1/sites/{site_id}/status", &[Admin]),
    ("GET", "/v1/sites/{site_id}/changes", &[Admin, Site]),
    ("GET", "/v1/sites/{site_id}/stats", &[Admin, Site]),
    ("GET", "/v1/stats", &[Admin]),
    ("POST", "/v1/sites/{site_id}/keys", &[Admin]),
    ("DELETE", "/v1/keys/{key_id}", &[Admin]),
    ("POST", "/v1/bank/keys", &[Admin]),
    // Learners.
    ("POST", "/v1/learners", ANY_KEY),
    ("PUT", "/v1/accounts/{local_account}", &[Site]),
    ("DELETE", "/v1/learners/{learner_id}", &[Admin]),
    ("GET", "/v1/learners/{learner_id}/transcript", &[Admin, Site]),
    ("GET", "/v1/learners/{learner_id}/record", &[Admin]),
    // Courses, events, recognition.
    ("GET", "/v1/courses/{code}", &[Site]),
    ("PUT", "/v1/courses/{code}", &[Site]),
    ("POST", "/v1/events", &[Site]),
    ("GET", "/v1/events/{event_id}", &[Site]),
    ("PUT", "/v1/events/{event_id}", &[Site]),
    ("GET", "/v1/recognition-groups/{group_id}", ANY_KEY),
    ("PUT", "/v1/recognition-groups/{group_id}", &[Admin]),
    ("GET", "/v1/caps", ANY_KEY),
    ("PUT", "/v1/caps/{category}", &[Admin]),
    ("DELETE", "/v1/caps/{category}", &[Admin]),
    // The credit bank feed.
    ("GET", "/v1/checkpoints/public-key", ANY_KEY),
    ("GET", "/v1/deposits", &[Bank]),
    ("POST", "/v1/deposits/acks", &[Bank]),
    ("PUT", "/v1/deposits/{chain}/{seq}/ack", &[Bank]),
    // The xAPI door's settings (API key) and the door itself (HTTP Basic, site keys).
    ("GET", "/v1/xapi/profile", &[Site]),
    ("PUT", "/v1/xapi/profile", &[Site]),
    ("PUT", "/v1/xapi/accounts/{local_account}", &[Site]),
    ("GET", "/v1/xapi/documents", &[Admin, Site]),
    ("GET", "/xapi/statements", &[Site]),
    ("PUT", "/xapi/statements", &[Site]),
    ("POST", "/xapi/statements", &[Site]),
    ("GET", "/xapi/activities", &[Site]),
    ("GET", "/xapi/agents", &[Site]),
    ("GET", "/xapi/activities/state", &[Site]),
    ("PUT", "/xapi/activities/state", &[Site]),
    ("POST", "/xapi/activities/state", &[Site]),
    ("DELETE", "/xapi/activities/state", &[Site]),
    ("GET", "/xapi/activities/profile", &[Site]),
    ("PUT", "/xapi/activities/profile", &[Site]),
    ("POST", "/xapi/activities/profile", &[Site]),
    ("DELETE", "/xapi/activities/profile", &[Site]),
    ("GET", "/xapi/agents/profile", &[Site]),
    ("PUT", "/xapi/agents/profile", &[Site]),
    ("POST", "/xapi/agents/profile", &[Site]),
    ("DELETE", "/xapi/agents/profile", &[Site]),
];

/// The declared roles of an operation.
pub fn declared(method: &str, path: &str) -> Option<&'static [Role]> {
    DECLARED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, roles)| *roles)
}

/// Whether the route takes an API key (`Authorization: Bearer xf_…`).
fn takes_api_key(path: &str, roles: &[Role]) -> bool {
    path.starts_with("/v1/") && roles.iter().all(|r| matches!(r, Admin | Site | Bank))
}

/// Before an API-key route's handler: a valid key of a role the route does
/// not declare is refused with 403 (a missing or bad key is left to the
/// handler's own 401). The caller found is handed on, so the key is looked
/// up (and rate-counted) once.
pub(crate) async fn enforce(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let roles = matched
        .as_ref()
        .and_then(|m| declared(req.method().as_str(), m.as_str()))
        .filter(|roles| matched.as_ref().is_some_and(|m| takes_api_key(m.as_str(), roles)));
    let Some(roles) = roles else {
        return next.run(req).await;
    };
    let secret = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let Some(secret) = secret else {
        return next.run(req).await;
    };
    let caller = match crate::auth::authenticate(&state, &secret).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let role = Role::of(&caller.principal);
    if !roles.contains(&role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return crate::auth::forbidden(&format!(
            "this operation is not for a {} key; it is for: {}",
            role.as_str(),
            names.join(", ")
        ))
        .into_response();
    }
    req.extensions_mut().insert::<Caller>(caller);
    next.run(req).await
}

/// Writes every operation's `x-roles`.
pub(crate) struct XRoles;

impl Modify for XRoles {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ] {
                let (Some(op), Some(roles)) = (op.as_mut(), declared(method, path)) else {
                    continue;
                };
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                op.extensions
                    .get_or_insert_with(Default::default)
                    .insert("x-roles".to_owned(), serde_json::json!(names));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document declares its roles, and every
    /// declaration names an operation.
    #[test]
    fn every_operation_and_only_those_declare_roles() {
        let doc = crate::openapi::document();
        let mut operations = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    assert!(
                        declared(method, path).is_some(),
                        "{method} {path} declares no roles in roles.rs"
                    );
                    operations.push((method, path.clone()));
                }
            }
        }
        for (method, path, roles) in DECLARED {
            assert!(
                operations.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is declared but not an operation"
            );
            assert!(!roles.is_empty());
        }
    }
}
