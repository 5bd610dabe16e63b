//! The storage port of Xuefen.
//!
//! [`Store`] is everything the API and the binary need from a database. Each
//! backend crate implements it with its own SQL and migrations; the domain
//! decisions stay in `xuefen-core` (a store gathers lookups, calls
//! [`xuefen_core::plan::plan`], and writes the plan in one transaction).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use xuefen_core::amount::{Credits, Score};
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::{Event, Millis, Reason};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{
    Category, CourseCode, EventId, GroupId, LearnerId, LocalAccount, Position, RegionCode, SiteId, SiteLevel,
    SiteStatus,
};
use xuefen_core::plan::{Head, Outcome};
use xuefen_core::rule::CreditRule;
use xuefen_core::site_log::SiteChangeEntry;
use xuefen_core::tlog::{TileId, Tiles};
use xuefen_core::transcript::{Referrals, TotalRow};

/// Errors every backend maps its own errors into, once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule of the domain was hit (e.g. the site already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data that the service could not have written.
    #[error("corrupt data at {at}: {detail}")]
    Corrupt { at: String, detail: String },
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who an API key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The provincial centre.
    Admin,
    /// One alliance site.
    Site(SiteId),
    /// The provincial credit bank: reads deposits and acknowledges them.
    Bank,
}

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

/// A key as the store keeps it: only the SHA-256 of the secret.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub principal: Principal,
    pub secret_hash: [u8; 32],
}

/// A key found by its hash, with what authentication needs to decide.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub principal: Principal,
    pub revoked: bool,
    /// The status of the key's site, for site keys.
    pub site_status: Option<SiteStatus>,
    /// When the site's agreement ends, for site keys.
    pub agreement_ends_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct NewLearner {
    /// The id to use if the person is not yet registered.
    pub candidate: LearnerId,
    pub document_kind: DocumentKind,
    /// HMAC-SHA256 of the document under the service's identity key.
    pub document_hash: [u8; 32],
    pub name: String,
    /// 32 random bytes, the learner's own secret if the person is new:
    /// version-2 entries name the learner by a commitment under it, and
    /// erasure destroys it.
    pub secret: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub site: SiteId,
    pub code: CourseCode,
    pub title: String,
    pub category: Category,
    pub rule: CreditRule,
    pub pass_mark: Option<Score>,
    /// Starts at 1 and grows whenever the rule or pass mark changes.
    pub rule_version: u32,
    /// The recognition group the admin put the course in (read only here:
    /// [`Store::put_group`] sets it).
    pub recognition_group: Option<GroupId>,
    /// When the course was first offered; earlier completions are refused.
    pub offered_from: Option<Millis>,
    /// How often the course may credit the same learner.
    pub repeat: xuefen_core::rule::Repeat,
}

/// A recognition group (学分互认): equivalent courses of several sites,
/// credited once per learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub title: String,
    /// The member courses, sorted.
    pub courses: Vec<(SiteId, CourseCode)>,
}

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

/// Whether a write created something or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Existing,
}

/// How busy a backend's connection pool is, for the saturation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections open now (idle or in use).
    pub size: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// The most connections the pool may open.
    pub max: u32,
}

impl PoolStats {
    /// Connections doing work now.
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}

/// The storage port.
#[async_trait]
pub trait Store:
    xapi::XapiStore + xapi_documents::XapiDocumentStore + witness::WitnessStore + Send + Sync + 'static
{
    /// Whether the database answers and its schema is current.
    async fn ready(&self) -> Result<()>;
    /// The connection pool's size and idle count, read without waiting.
    fn pool_stats(&self) -> PoolStats;

    /// Creates a site (initial status pending or active) and records its
    /// creation in the alliance chain, in one transaction.
    async fn create_site(&self, site: &Site, act: &SiteAct) -> Result<SiteChangeEntry>;
    async fn site(&self, id: &SiteId) -> Result<Option<Site>>;
    async fn sites(&self) -> Result<Vec<Site>>;
    /// Moves a site along its lifecycle ([`SiteStatus::may_move_to`]),
    /// optionally renewing its agreement to `agreement_ends_at`, and records
    /// the change in the alliance chain. A move the lifecycle does not allow
    /// is `Conflict("invalid_transition …")`.
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

    async fn create_key(&self, key: &NewKey) -> Result<()>;
    /// Revokes a key; revoking a revoked key is not an error.
    async fn revoke_key(&self, id: &str) -> Result<()>;
    async fn key_by_hash(&self, secret_hash: &[u8; 32]) -> Result<Option<KeyRecord>>;
    /// Whether any admin key, revoked or not, was ever created.
    async fn admin_key_exists(&self) -> Result<bool>;

    /// Registers a learner, or finds the one with the same document hash.
    async fn register_learner(&self, learner: &NewLearner) -> Result<(LearnerId, Written)>;
    /// Links a site's local account to a learner. Linking an account to the
    /// learner it already names is fine; to another learner is a conflict.
    /// `registered_at` is when the registration happened, when it is older
    /// than the link (a back-fill); the statistics count it in that year.
    async fn link_account(
        &self,
        site: &SiteId,
        account: &LocalAccount,
        learner: &LearnerId,
        registered_at: Option<Millis>,
    ) -> Result<Written>;
    async fn learner_exists(&self, learner: &LearnerId) -> Result<bool>;
    /// The learner registered with this document hash, and the real name
    /// stored for them: what a site's real-name data is checked against.
    async fn learner_by_document(&self, document_hash: &[u8; 32]) -> Result<Option<(LearnerId, String)>>;
    /// Erases a learner's personal data, in one transaction: appends an
    /// erasure entry with the legal `reason` code to their chain (a
    /// commitment under their secret, nothing else of them), replaces the
    /// learner id kept beside each of their version-2 entries with a fresh
    /// random one and removes those entries' notes, and deletes their
    /// secret, real name, document hash and account links. Every hash stays
    /// as written, so the ledger still verifies. `NotFound` when no such
    /// learner is registered (never, or already erased).
    async fn erase_learner(&self, learner: &LearnerId, reason: &Reason, now: Millis) -> Result<Position>;
    /// Whether the site has linked the learner or posted for them.
    async fn site_knows_learner(&self, site: &SiteId, learner: &LearnerId) -> Result<bool>;

    /// Creates or updates a course; the rule version grows when terms change.
    async fn put_course(&self, course: &Course) -> Result<(Course, Written)>;
    async fn course(&self, site: &SiteId, code: &CourseCode) -> Result<Option<Course>>;

    /// Creates or replaces a recognition group and its member courses, and
    /// in the same transaction writes what the declaration plans
    /// ([`xuefen_core::plan::plan_declaration`]): a reversal of every
    /// earlier double payment among the group's courses. A course already
    /// in another group is a `Conflict` naming it. Entries already written
    /// are never changed. Returns the reversals written.
    async fn put_group(&self, group: &Group, now: Millis) -> Result<(Written, Vec<Entry>)>;
    async fn group(&self, id: &GroupId) -> Result<Option<Group>>;
    /// Sets (or with `None` removes) the annual credit cap of a category.
    async fn set_cap(&self, category: &Category, annual: Option<Credits>) -> Result<()>;
    /// Every category cap, by category.
    async fn caps(&self) -> Result<Vec<(Category, Credits)>>;

    /// Plans and writes a batch of events in one transaction, returning one
    /// outcome per event. Durable when it returns `Ok`.
    async fn ingest(&self, events: &[Event], now: Millis) -> Result<Vec<Outcome>>;
    /// The entry written for an event.
    async fn entry_by_event(&self, site: &SiteId, event: &EventId) -> Result<Option<Entry>>;
    /// Every entry of a learner, in sequence order.
    async fn learner_entries(&self, learner: &LearnerId) -> Result<Vec<Entry>>;
    /// At most `limit` entries of a learner after sequence number
    /// `after_seq` of their chain, in sequence order (a learner's entries
    /// all live in one chain, so the sequence number is the cursor).
    async fn learner_entries_page(&self, learner: &LearnerId, after_seq: u64, limit: usize) -> Result<Vec<Entry>>;
    /// A learner's credit sums grouped by CST year, category and site
    /// (the credit bank's acknowledgements excluded), and what later
    /// entries say of earlier ones (reversed, acknowledged by the bank):
    /// what a transcript page needs beyond its own lines.
    async fn learner_summary(&self, learner: &LearnerId) -> Result<(Vec<TotalRow>, Referrals)>;

    /// The figures of one site (or every site, in id order) for a CST year.
    async fn site_year_stats(&self, site: Option<&SiteId>, year: i32, rule: StatsRule) -> Result<Vec<SiteYearStats>>;
    /// Net credits of each site's entries dated in a CST year, by CST month:
    /// `(site, month 1 to 12, credits)` for the months that have entries, in
    /// site then month order (the centre's chart of credits by month).
    async fn site_month_credits(&self, year: i32) -> Result<Vec<(SiteId, u8, Credits)>>;

    /// The recorded head of every chain, in chain order.
    async fn heads(&self) -> Result<Vec<(u32, Head)>>;
    /// How many chains the ledger has (fixed when the schema is created).
    fn chain_count(&self) -> u32;
    /// Whether transactions on disjoint chains can commit side by side. When
    /// they cannot (one writer at a time), the committer keeps one queue.
    fn parallel_writes(&self) -> bool {
        true
    }

    /// Routing hint for the group committer: the learners linked to these
    /// accounts (unknown accounts are left out). A link never changes once
    /// made, so a caller may cache the answer. Backends that write one
    /// transaction at a time never route, and need not answer.
    async fn account_learners(
        &self,
        accounts: &[(SiteId, LocalAccount)],
    ) -> Result<Vec<((SiteId, LocalAccount), LearnerId)>> {
        let _ = accounts;
        Ok(Vec::new())
    }
    /// Routing hint for the group committer: the chains holding these events
    /// (unknown events are left out). An entry never moves once written.
    async fn event_chains(&self, keys: &[(SiteId, EventId)]) -> Result<Vec<((SiteId, EventId), u32)>> {
        let _ = keys;
        Ok(Vec::new())
    }
    /// The entries of one chain in sequence order, streamed.
    fn chain_entries(&self, chain: u32) -> BoxStream<'_, Result<Entry>>;
    /// One ledger entry whose chain is outside `0 .. chains`, as
    /// `(chain, seq)`, if any: an entry no chain verification would read.
    async fn stray_entry(&self, chains: u32) -> Result<Option<(i64, i64)>>;

    // ---------------------------------------------------- credit bank feed
    // The primitives of [`bank`]; the decisions are made there.

    /// The latest checkpoint of the log (the one of the largest size).
    async fn log_head(&self) -> Result<Option<bank::LogHead>>;
    /// How far each chain is sealed into the log (chains never sealed are absent).
    async fn log_tips(&self) -> Result<Vec<bank::ChainTip>>;
    /// The stored tiles among `ids` (each as wide as the log has made it).
    async fn log_tiles(&self, ids: &[TileId]) -> Result<Tiles>;
    /// The log's segments that overlap log indexes `from .. to`, in order.
    async fn log_segments(&self, from: u64, to: u64) -> Result<Vec<bank::Segment>>;
    /// The entries of `chain` with `after < seq <= upto`, in order, with
    /// their learners' keyed real-name hashes (`index` is left 0).
    async fn segment_entries(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<bank::DepositRecord>>;
    /// The chain lists of the checkpoints of the earlier per-chain format,
    /// in number order (empty on a store that never had them).
    async fn legacy_checkpoint_chains(&self) -> Result<Vec<Vec<u8>>>;
    /// Writes a seal in one transaction. `Existing` when a segment already
    /// starts at its `old_size` (another instance sealed first).
    async fn write_seal(&self, seal: &bank::Seal) -> Result<Written>;
    /// The entries of `chain` with `after < seq <= upto`, in sequence order.
    async fn chain_range(&self, chain: u32, after: u64, upto: u64) -> Result<Vec<Entry>>;
    /// The kinds of the entries at `positions` (those that exist).
    async fn entry_kinds(&self, positions: &[Position]) -> Result<HashMap<Position, EntryKind>>;
    /// Records the bank's decisions, one outcome per request, in one
    /// transaction. Each is a ledger entry in the deposit's chain written
    /// under that chain's head; the ledger's idempotency index on the bank's
    /// event id (`deposit-<chain>-<seq>`) allows one decision per deposit.
    async fn ack_deposits(&self, acks: &[bank::AckRequest], now: Millis) -> Result<Vec<bank::AckOutcome>>;
}

pub mod bank;
/// Files a row of what a later entry (kind `kind`) says of the entry at
/// `position` into `referred`: a reversal, or the bank's acknowledgement.
pub fn referral(referred: &mut Referrals, position: Position, kind: i64) {
    match u8::try_from(kind).ok().and_then(EntryKind::from_code) {
        Some(EntryKind::Reversal) => {
            referred.reversed.insert(position);
        }
        Some(k @ (EntryKind::BankAccepted | EntryKind::BankRejected)) => {
            referred.acked.insert(position, k);
        }
        _ => {}
    }
}

pub mod records;

pub mod verify;
pub mod witness;

pub mod xapi;
pub use xapi::{NewStatement, StatementQuery, StatementRow, XapiStore};
pub mod xapi_documents;
pub use xapi_documents::XapiDocumentStore;

#[cfg(feature = "conformance")]
pub mod conformance;
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
        return Err(StoreError::Conflict(format!(
            "invalid_transition: a {} site cannot become {status}{}",
            current.status,
            if status == current.status {
                " (a renewal keeps the status and gives a new agreement_ends_at)"
            } else {
                ""
            }
        )));
    }
    if let Some(end) = agreement_ends_at
        && end <= act.at
    {
        return Err(StoreError::Conflict(
            "invalid_renewal: agreement_ends_at must be after now".into(),
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
