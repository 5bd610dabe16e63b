//! The xAPI door: a Learning Record Store (xAPI 1.0.3 and 2.0.0) on the
//! same ledger as the native API, so that a site's LMS can point its xAPI
//! plug-in at Xuefen instead of writing a client.
//!
//! - `/xapi/statements`: `PUT ?statementId=`, `POST` (one statement or an
//!   array), `GET` by id or by query; `/xapi/about` lists the versions.
//! - HTTP Basic authentication: the site id and one of the site's API keys.
//!   The LRS sets each statement's `authority` to the site.
//! - A statement id is the ledger's event id for the site. Every statement
//!   is validated first ([`xuefen_core::xapi::prepare`]); then the ledger
//!   events of the request go to the group committer as one submission
//!   (`completed`/`passed` statements of a linked learner about a course
//!   with an activity IRI become completions; voiding statements of a
//!   credited statement become revocations); then the statements are stored
//!   in one transaction. A re-send repeats both steps idempotently, so a
//!   request that failed between them is repaired by sending it again.
//! - Statements are returned exactly as stored.
//!
//! Errors are problem details with status 400 (not 422, as the
//! specification requires), the rule broken as `code` and the offending
//! member as `field`.

use crate::problem_code::ProblemCode;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::xapi::{StatementError, Version};

use crate::AppState;

mod alternate;
mod auth;
pub mod documents;
mod headers;
pub use self::headers::DefaultVersion;
pub(crate) mod read;
pub(crate) mod settings;
pub(crate) mod write;

use self::headers::xapi_headers;
use self::read::get_statements;
use self::settings::get_profile;
use self::settings::put_mbox_link;
use self::settings::put_profile;
use self::write::post_statements;
use self::write::put_statement;
use crate::problem::{ApiError, Problem};

/// The header that names the xAPI version of a request and a response.
pub const VERSION_HEADER: &str = "x-experience-api-version";
/// The header that says up to when the statement query is complete.
pub const CONSISTENT_THROUGH_HEADER: &str = "x-experience-api-consistent-through";
/// The account home page of a site that declared none.
pub const DEFAULT_HOME_PAGE_PREFIX: &str = "https://xuefen.invalid/sites/";

pub fn routes() -> Router<AppState> {
    let lrs = Router::new()
        .route(
            "/xapi/statements",
            put(put_statement).post(post_statements).get(get_statements),
        )
        .route("/xapi/about", get(get_about))
        .route(
            "/xapi/activities/state",
            get(documents::state_resource)
                .put(documents::put_xapi_state)
                .post(documents::post_xapi_state)
                .delete(documents::delete_xapi_state),
        )
        .route(
            "/xapi/activities/profile",
            get(documents::activity_profile_resource)
                .put(documents::put_xapi_activity_profile)
                .post(documents::post_xapi_activity_profile)
                .delete(documents::delete_xapi_activity_profile),
        )
        .route(
            "/xapi/agents/profile",
            get(documents::agent_profile_resource)
                .put(documents::put_xapi_agent_profile)
                .post(documents::post_xapi_agent_profile)
                .delete(documents::delete_xapi_agent_profile),
        )
        .route("/xapi/activities", get(documents::get_activity))
        .route("/xapi/agents", get(documents::get_agents))
        .route_layer(axum::middleware::from_fn(xapi_headers))
        .layer(axum::middleware::from_fn(alternate::alternate_request_syntax));
    Router::new()
        .merge(lrs)
        .route("/v1/xapi/profile", put(put_profile).get(get_profile))
        .route("/v1/xapi/accounts/{local_account}", put(put_mbox_link))
        .route("/v1/xapi/documents", get(documents::get_document_usage))
}

fn bad(e: StatementError) -> ApiError {
    let p = Problem::new(StatusCode::BAD_REQUEST, ProblemCode::StatementRule(e.rule), e.detail);
    if e.field.is_empty() {
        p.into()
    } else {
        p.with_field(e.field).into()
    }
}

fn bad_request(code: ProblemCode, field: &str, detail: impl Into<String>) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
        .with_field(field)
        .into()
}

/// The versions this LRS speaks. Unauthenticated.
#[utoipa::path(get, path = "/xapi/about", operation_id = "get_xapi_about", tag = "xapi",
    responses((status = 200, body = AboutOut)))]
pub async fn get_about() -> axum::Json<AboutOut> {
    axum::Json(AboutOut {
        version: Version::SUPPORTED.iter().map(|v| (*v).to_owned()).collect(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AboutOut {
    /// Every xAPI version the door answers to.
    pub version: Vec<String>,
}
