//! Alliance sites: what a site is, who changes it, and the lifecycle rules
//! every backend applies before it writes a change to the alliance chain.

use async_trait::async_trait;
use futures::stream::BoxStream;
use xuefen_core::plan::Head;
use xuefen_core::site_log::{SiteChange, SiteChangeEntry};

use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{RegionCode, SiteId, SiteLevel, SiteStatus};

use crate::row::{Columns, ReadRow};
use crate::{ConflictKind, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub level: SiteLevel,
    pub region_code: RegionCode,
    pub status: SiteStatus,
    /// The agreement with the provincial centre: a site may not post after
    /// its end. When creating a site, absent means from now for three years.
    pub agreement_starts_at: Option<Millis>,
    pub agreement_ends_at: Option<Millis>,
}

/// Who changes a site, why, and when: recorded in the alliance chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAct {
    /// The admin key id, or `cli`.
    pub actor: String,
    pub reason: Reason,
    pub at: Millis,
}

/// The change a store records for `act` on `site` (pure: both backends seal
/// exactly this). The agreement defaults to three years from the act.
pub fn site_change(site: &Site, from: Option<SiteStatus>, act: &SiteAct) -> xuefen_core::site_log::SiteChange {
    let start = site.agreement_starts_at.unwrap_or(act.at);
    let end = site.agreement_ends_at.unwrap_or(Millis(
        start.0.saturating_add(xuefen_core::site_log::AGREEMENT_DEFAULT_MS),
    ));
    xuefen_core::site_log::SiteChange {
        site: site.id.clone(),
        from,
        to: site.status,
        actor: act.actor.clone(),
        reason: act.reason.clone(),
        at: act.at,
        agreement_starts_at: start,
        agreement_ends_at: end,
    }
}

/// The change that records a new site, decided once for every backend: a
/// site starts pending or active, anything else is a `Conflict` of kind
/// [`ConflictKind::InvalidTransition`].
pub fn site_creation(site: &Site, act: &SiteAct) -> Result<xuefen_core::site_log::SiteChange> {
    if !matches!(site.status, SiteStatus::Pending | SiteStatus::Active) {
        return Err(StoreError::conflict(
            ConflictKind::InvalidTransition,
            format!(
                "invalid_transition: a site starts pending or active, not {}",
                site.status
            ),
        ));
    }
    Ok(site_change(site, None, act))
}

/// The next alliance chain entry: `change` sealed after the head stored as
/// `(seq, hash)`, which must be a head the service could have written.
pub fn seal_after_alliance_head(seq: i64, hash: Vec<u8>, change: SiteChange) -> Result<SiteChangeEntry> {
    let head = alliance_head_from_row(seq, hash)?;
    Ok(SiteChangeEntry::seal(head.seq + 1, head.hash, change))
}

/// The alliance chain's head from its stored row; a negative `seq` or a
/// hash that is not 32 bytes is corrupt data.
pub fn alliance_head_from_row(seq: i64, hash: Vec<u8>) -> Result<Head> {
    let corrupt = |d: &str| StoreError::Corrupt {
        at: "alliance_head".into(),
        detail: d.into(),
    };
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
        hash: hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?,
    })
}

/// A `sites` row as both backends read it, by column name; [`Site`]'s
/// checked conversion from it is common.
#[derive(Debug, Clone)]
pub struct SiteRecord {
    pub id: String,
    pub name: String,
    pub level: String,
    pub region_code: String,
    pub status: String,
    pub agreement_starts_at_ms: Option<i64>,
    pub agreement_ends_at_ms: Option<i64>,
}

/// A site from its row of `sites`.
pub fn read_site<R: ReadRow + ?Sized>(row: &R) -> Result<Site> {
    Site::try_from(SiteRecord::read(row)?)
}

impl SiteRecord {
    /// A row of `sites`, by name.
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("sites", row);
        Ok(Self {
            id: c.get("id")?,
            name: c.get("name")?,
            level: c.get("level")?,
            region_code: c.get("region_code")?,
            status: c.get("status")?,
            agreement_starts_at_ms: c.get("agreement_starts_at_ms")?,
            agreement_ends_at_ms: c.get("agreement_ends_at_ms")?,
        })
    }
}

/// The columns of a [`SiteRecord`], in its order.
pub const SITE_COLUMNS: &str = "id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms";

impl TryFrom<SiteRecord> for Site {
    type Error = StoreError;

    fn try_from(r: SiteRecord) -> Result<Self> {
        let corrupt = |e: xuefen_core::FieldError| StoreError::Corrupt {
            at: format!("site {}", r.id),
            detail: e.to_string(),
        };
        Ok(Site {
            id: SiteId::parse(r.id.clone()).map_err(corrupt)?,
            level: SiteLevel::parse(&r.level).map_err(corrupt)?,
            region_code: RegionCode::parse(r.region_code.clone()).map_err(corrupt)?,
            status: SiteStatus::parse(&r.status).map_err(corrupt)?,
            name: r.name,
            agreement_starts_at: r.agreement_starts_at_ms.map(Millis),
            agreement_ends_at: r.agreement_ends_at_ms.map(Millis),
        })
    }
}

/// A site's status change, decided once for every backend: refuses a
/// transition the lifecycle does not allow (`Conflict`), and returns the
/// site as it will be stored and the change to append to the alliance chain.
/// A new agreement end date replaces the old one; without one the old stays.
pub fn site_transition(
    current: &Site,
    status: SiteStatus,
    agreement_ends_at: Option<Millis>,
    act: &SiteAct,
) -> Result<(Site, xuefen_core::site_log::SiteChange)> {
    // A renewal: the same status (active or suspended) with a new
    // agreement end. The new agreement starts with the act, and the
    // change is recorded like any other.
    let renewal = status == current.status
        && matches!(status, SiteStatus::Active | SiteStatus::Suspended)
        && agreement_ends_at.is_some();
    if !renewal && !current.status.may_move_to(status) {
        return Err(StoreError::conflict(
            ConflictKind::InvalidTransition,
            format!(
                "invalid_transition: a {} site cannot become {status}{}",
                current.status,
                if status == current.status {
                    " (a renewal keeps the status and gives a new agreement_ends_at)"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(end) = agreement_ends_at
        && end <= act.at
    {
        return Err(StoreError::conflict(
            ConflictKind::InvalidRenewal,
            "invalid_renewal: agreement_ends_at must be after now",
        ));
    }
    let next = Site {
        status,
        agreement_starts_at: if renewal {
            Some(act.at)
        } else {
            current.agreement_starts_at
        },
        agreement_ends_at: agreement_ends_at.or(current.agreement_ends_at),
        ..current.clone()
    };
    let change = site_change(&next, Some(current.status), act);
    let site = Site {
        agreement_starts_at: Some(change.agreement_starts_at),
        agreement_ends_at: Some(change.agreement_ends_at),
        ..next
    };
    Ok((site, change))
}

/// A site's standing against its agreement at `now`: `pending`,
/// `suspended` and `terminated` are its status; an active site is `active`
/// within its agreement, `not_started` before it and `expired` after it.
pub fn agreement_standing(site: &Site, now: Millis) -> &'static str {
    match site.status {
        SiteStatus::Active => match (site.agreement_starts_at, site.agreement_ends_at) {
            (Some(start), _) if now < start => "not_started",
            (_, Some(end)) if now >= end => "expired",
            _ => "active",
        },
        SiteStatus::Pending => "pending",
        SiteStatus::Suspended => "suspended",
        SiteStatus::Terminated => "terminated",
    }
}

/// The sites port: the alliance register and its hash-chained change log.
#[async_trait]
pub trait SiteStore: Send + Sync {
    /// Creates a site (initial status pending or active) and records its
    /// creation in the alliance chain, in one transaction.
    async fn create_site(&self, site: &Site, act: &SiteAct) -> Result<SiteChangeEntry>;
    async fn site(&self, id: &SiteId) -> Result<Option<Site>>;
    async fn sites(&self) -> Result<Vec<Site>>;
    /// Moves a site along its lifecycle ([`SiteStatus::may_move_to`]),
    /// optionally renewing its agreement to `agreement_ends_at`, and records
    /// the change in the alliance chain. A move the lifecycle does not allow
    /// is a `Conflict` of kind [`ConflictKind::InvalidTransition`].
    async fn set_site_status(
        &self,
        id: &SiteId,
        status: SiteStatus,
        agreement_ends_at: Option<Millis>,
        act: &SiteAct,
    ) -> Result<(Site, SiteChangeEntry)>;
    /// The recorded changes of a site, oldest first.
    async fn site_changes(&self, id: &SiteId) -> Result<Vec<SiteChangeEntry>>;
    /// The head of the alliance chain.
    async fn alliance_head(&self) -> Result<Head>;
    /// Every site change in sequence order, streamed.
    fn alliance_entries(&self) -> BoxStream<'_, Result<SiteChangeEntry>>;
}
