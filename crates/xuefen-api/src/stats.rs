//! Alliance statistics: per site and year, against the agreement figures.

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::ids::SiteId;

use crate::wire::*;

/// `?year=YYYY`, 2000 to 2100; without it, the current year in China
/// Standard Time (the agreement year the centre reads).
pub(crate) fn stats_year(query: Option<&str>) -> ApiResult<i32> {
    let bad = || {
        ApiError::from(Problem::invalid(&xuefen_core::FieldError::new(
            "year",
            "give `?year=YYYY`, a calendar year from 2000 to 2100 (or leave it out for this year)",
        )))
    };
    let mut year = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("year", v)) => {
                year = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|y| (2000..=2100).contains(y))
                        .ok_or_else(bad)?,
                )
            }
            _ => {
                let name = pair.split('=').next().unwrap_or_default().to_owned();
                return Err(Problem::invalid(&xuefen_core::FieldError::new(
                    name,
                    "is not a parameter of this operation (year)",
                ))
                .into());
            }
        }
    }
    Ok(year.unwrap_or_else(|| now().year_cst()))
}

/// One site's alliance statistics for a year, and how it stands against
/// the agreement figures.
///
/// Roles: admin; site (its own only). Not the credit bank.
#[utoipa::path(get, path = "/v1/sites/{site_id}/stats", operation_id = "get_site_stats", tag = "sites",
    security(("api_key" = [])),
    params(("site_id" = String, Path), ("year" = Option<i32>, Query, description = "calendar year (China Standard Time); default: the current year")),
    responses((status = 200, body = SiteStatsOut), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_site_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<SiteStatsOut>> {
    let id = path_id(|v| SiteId::parse_as(v, "site_id"), site_id)?;
    caller.require_admin_or_site(&id, "statistics")?;
    let year = stats_year(query.as_deref())?;
    let rows = state
        .stats_store()
        .site_year_stats(Some(&id), year, state.stats.rule)
        .await?;
    let row = rows.first().ok_or(xuefen_store::StoreError::NotFound)?;
    Ok(Json(SiteStatsOut::new(row, year, &state.stats)))
}

/// Every site's alliance statistics for a year, in site order. Admin only.
#[utoipa::path(get, path = "/v1/stats", operation_id = "list_stats", tag = "sites",
    security(("api_key" = [])),
    params(("year" = Option<i32>, Query, description = "calendar year (China Standard Time); default: the current year")),
    responses((status = 200, body = Vec<SiteStatsOut>), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_stats(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<SiteStatsOut>>> {
    caller.require_admin()?;
    let year = stats_year(query.as_deref())?;
    let rows = state
        .stats_store()
        .site_year_stats(None, year, state.stats.rule)
        .await?;
    Ok(Json(
        rows.iter().map(|r| SiteStatsOut::new(r, year, &state.stats)).collect(),
    ))
}

/// How a site stands against the agreement figures for the year.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct StandingOut {
    pub registrations_required: u64,
    /// At least `registrations_required` new registrations/activations.
    pub registrations_met: bool,
    /// At least `registrations_required` of them with `credits_each` credits.
    pub registrations_with_credits_met: bool,
    pub learning_stars_required: u64,
    pub learning_stars_met: bool,
}

/// One site's alliance statistics for a calendar year (China Standard
/// Time), derived from the ledger and the account links.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SiteStatsOut {
    pub site_id: String,
    pub year: i32,
    /// Learners whose first link with the site was made in the year.
    pub registrations: u64,
    /// Of those, the ones with at least `credits_each` credits in the year (any site).
    pub registrations_with_credits: u64,
    /// Learners with a completion of the site dated in the year.
    pub learners_active: u64,
    /// Learners with at least `credits_each` credits from the site in the year.
    pub learners_with_credits: u64,
    /// Net credits of the site in the year.
    #[schema(value_type = String)]
    pub credits: String,
    /// Learners with at least `star_credits` credits from the site in the year.
    pub learning_stars: u64,
    #[schema(value_type = String)]
    pub credits_each: String,
    #[schema(value_type = String)]
    pub star_credits: String,
    pub standing: StandingOut,
}

impl SiteStatsOut {
    pub(crate) fn new(s: &xuefen_store::SiteYearStats, year: i32, settings: &crate::StatsSettings) -> Self {
        Self {
            site_id: s.site.to_string(),
            year,
            registrations: s.registrations,
            registrations_with_credits: s.registrations_with_credits,
            learners_active: s.learners_active,
            learners_with_credits: s.learners_with_credits,
            credits: s.credits.to_string(),
            learning_stars: s.learning_stars,
            credits_each: settings.rule.credits_each.to_string(),
            star_credits: settings.rule.star_credits.to_string(),
            standing: StandingOut {
                registrations_required: settings.registrations_min,
                registrations_met: s.registrations >= settings.registrations_min,
                registrations_with_credits_met: s.registrations_with_credits >= settings.registrations_min,
                learning_stars_required: settings.learning_stars_min,
                learning_stars_met: s.learning_stars >= settings.learning_stars_min,
            },
        }
    }
}
