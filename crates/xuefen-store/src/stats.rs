//! Alliance statistics: yearly figures per site, derived from the ledger.

use async_trait::async_trait;

use crate::Result;

use xuefen_core::amount::Credits;
use xuefen_core::ids::SiteId;

/// The thresholds the alliance statistics count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRule {
    /// Credits a learner needs in the year to count as "with ≥ 20 credits".
    pub credits_each: Credits,
    /// Credits earned on one site in the year that make a learning star
    /// (学习之星) of that site.
    pub star_credits: Credits,
}

/// One site's figures for one calendar year (China Standard Time), derived
/// from the ledger and the account links, never from counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteYearStats {
    pub site: SiteId,
    /// Learners whose first account link with the site was made in the year
    /// (new real-name registrations and activations on the site).
    pub registrations: u64,
    /// Of those, the ones with at least `credits_each` net credits in the
    /// year, on any site.
    pub registrations_with_credits: u64,
    /// Learners with a completion (any entry but a reversal) of the site
    /// dated in the year.
    pub learners_active: u64,
    /// Learners with at least `credits_each` net credits from the site in the year.
    pub learners_with_credits: u64,
    /// Net credits of the site's entries dated in the year.
    pub credits: Credits,
    /// Learners with at least `star_credits` net credits from the site in the year.
    pub learning_stars: u64,
}

/// The statistics port.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// The figures of one site (or every site, in id order) for a CST year.
    async fn site_year_stats(&self, site: Option<&SiteId>, year: i32, rule: StatsRule) -> Result<Vec<SiteYearStats>>;
    /// Net credits of each site's entries dated in a CST year, by CST month:
    /// `(site, month 1 to 12, credits)` for the months that have entries, in
    /// site then month order (the centre's chart of credits by month).
    async fn site_month_credits(&self, year: i32) -> Result<Vec<(SiteId, u8, Credits)>>;
}
