//! A site's xAPI settings: its profile (home page) and the mbox links of
//! its learners.

use super::DEFAULT_HOME_PAGE_PREFIX;
use crate::AppState;
use crate::auth::Caller;
use crate::body::ApiJson;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::ids::LocalAccount;
use xuefen_core::xapi::{self as core};
use xuefen_store::{StoreError, Written};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct XapiProfileIn {
    /// The `homePage` under which the site's LMS names its accounts in
    /// statements (`actor.account.homePage`), e.g. Moodle's `wwwroot`.
    pub home_page: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct XapiProfileOut {
    pub home_page: String,
    /// Whether the home page is the default one (the site declared none).
    pub default: bool,
}

/// Sets the account home page of the calling site's LMS: a statement
/// whose actor is `account: {homePage: <this>, name: <local account>}`
/// names that local account. Site key (Bearer).
#[utoipa::path(put, path = "/v1/xapi/profile", operation_id = "put_xapi_profile", tag = "xapi",
    security(("api_key" = [])), request_body = XapiProfileIn,
    responses((status = 200, body = XapiProfileOut), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<XapiProfileIn>,
) -> ApiResult<axum::Json<XapiProfileOut>> {
    let site = caller.require_site()?.clone();
    core::check_iri(&input.home_page, "home_page").map_err(|e| {
        ApiError::from(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::InvalidField, e.detail).with_field("home_page"),
        )
    })?;
    if input.home_page.len() > xuefen_core::limits::TEXT_CHARS_MAX {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidField,
            format!("is longer than {} bytes", xuefen_core::limits::TEXT_CHARS_MAX),
        )
        .with_field("home_page")
        .into());
    }
    state.xapi_store().set_xapi_home_page(&site, &input.home_page).await?;
    tracing::info!(site.id = %site, "xAPI home page set");
    Ok(axum::Json(XapiProfileOut {
        home_page: input.home_page,
        default: false,
    }))
}

/// The calling site's account home page. Site key (Bearer).
#[utoipa::path(get, path = "/v1/xapi/profile", operation_id = "get_xapi_profile", tag = "xapi",
    security(("api_key" = [])), responses((status = 200, body = XapiProfileOut)))]
pub(crate) async fn get_profile(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<XapiProfileOut>> {
    let site = caller.require_site()?.clone();
    let stored = state.xapi_store().xapi_home_page(&site).await?;
    Ok(axum::Json(XapiProfileOut {
        default: stored.is_none(),
        home_page: stored.unwrap_or_else(|| format!("{DEFAULT_HOME_PAGE_PREFIX}{site}")),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MboxLinkIn {
    /// The hex SHA-1 of the learner's `mailto:` IRI, as the LMS sends it
    /// in `actor.mbox_sha1sum` (a statement with the plain `mbox` matches
    /// too: the LRS hashes it).
    pub mbox_sha1sum: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct MboxLinkOut {
    pub local_account: String,
    pub mbox_sha1sum: String,
    pub created: bool,
}

/// Registers the `mbox_sha1sum` under which the site's LMS names one of its
/// local accounts (link the account to a learner with `POST /v1/learners`
/// or `PUT /v1/accounts/{local_account}`). A sum registered for another
/// account is a 409. Site key (Bearer).
#[utoipa::path(put, path = "/v1/xapi/accounts/{local_account}", operation_id = "put_xapi_account", tag = "xapi",
    security(("api_key" = [])), params(("local_account" = String, Path)), request_body = MboxLinkIn,
    responses((status = 201, body = MboxLinkOut), (status = 200, body = MboxLinkOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_mbox_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(input): ApiJson<MboxLinkIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let account = LocalAccount::parse_input(account)?;
    let sum = input.mbox_sha1sum.to_ascii_lowercase();
    if !core::is_sha1_hex(&sum) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidField,
            "mbox_sha1sum: must be the 40 hexadecimal digits of a SHA-1",
        )
        .with_field("mbox_sha1sum")
        .into());
    }
    let written = state
        .store
        .link_mbox_sha1sum(&site, &account, &sum)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::from(
                Problem::new(
                    StatusCode::CONFLICT,
                    ProblemCode::MboxSha1sumLinkedElsewhere,
                    "this mbox_sha1sum is registered for another local account",
                )
                .with_field("mbox_sha1sum"),
            ),
            e => e.into(),
        })?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(MboxLinkOut {
            local_account: account.to_string(),
            mbox_sha1sum: sum,
            created: written == Written::Created,
        }),
    )
        .into_response())
}
