//! Who is calling the xAPI door: a site, by HTTP Basic.

use super::DEFAULT_HOME_PAGE_PREFIX;
use crate::AppState;
use crate::auth::{Caller, authenticate};
use crate::problem::{ApiError, ApiResult};
use axum::http::header;
use base64::Engine as _;
use xuefen_core::ids::SiteId;

/// A site authenticated with HTTP Basic: user name the site id, password
/// one of the site's API keys.
pub struct XapiSite {
    pub site: SiteId,
    pub caller: Caller,
}

impl axum::extract::FromRequestParts<AppState> for XapiSite {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = crate::auth::unauthorized;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send `Authorization: Basic` with the site id and one of its API keys"))?;
        let encoded = value
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Basic "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the xAPI door takes `Authorization: Basic <site id:API key>`"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("the Basic credentials are not base64 of `site id:API key`"))?;
        let (user, secret) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("the Basic credentials are not `site id:API key`"))?;
        let caller = authenticate(state, secret).await?;
        match &caller.principal {
            xuefen_store::Principal::Site(site) if site.as_str() == user => Ok(Self {
                site: site.clone(),
                caller,
            }),
            _ => Err(unauthorized("the API key is not a key of the site named as user")),
        }
    }
}

/// The site's account home page, and its `authority` Agent as JSON.
pub(super) async fn home_page(state: &AppState, site: &SiteId) -> ApiResult<String> {
    Ok(state
        .store
        .xapi_home_page(site)
        .await?
        .unwrap_or_else(|| format!("{DEFAULT_HOME_PAGE_PREFIX}{site}")))
}

pub(super) fn authority(home_page: &str, site: &SiteId) -> String {
    serde_json::json!({
        "objectType": "Agent",
        "name": site.as_str(),
        "account": {"homePage": home_page, "name": site.as_str()},
    })
    .to_string()
}
