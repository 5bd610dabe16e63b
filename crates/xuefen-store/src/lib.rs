//! The storage port of Xuefen.
//!
//! [`Store`] is everything the API and the binary need from a database. Each
//! backend crate implements it with its own SQL and migrations; the domain
//! decisions stay in `xuefen-core` (a store gathers lookups, calls
//! [`xuefen_core::plan::plan`], and writes the plan in one transaction; the
//! order of those steps is [`ledger::ingest::ingest`], written once).
#![forbid(unsafe_code)]

use async_trait::async_trait;

/// Errors every backend maps its own errors into, once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The write contradicts what is stored (e.g. the site already exists);
    /// its kind says which rule, so callers never read the message.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// Stored data that the service could not have written.
    #[error("corrupt data at {at}: {detail}")]
    Corrupt { at: String, detail: String },
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A [`StoreError::Conflict`] of `kind`, explained by `detail`.
    pub fn conflict(kind: ConflictKind, detail: impl Into<String>) -> Self {
        Self::Conflict(Conflict {
            kind,
            detail: detail.into(),
        })
    }
}

/// Which rule a write ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A uniqueness rule: the thing already exists (a site, a key id, an
    /// idempotency key); the detail names the rule.
    Exists,
    /// A site's lifecycle does not allow the move ([`site_transition`]).
    InvalidTransition,
    /// A renewal's new agreement end is not after the act.
    InvalidRenewal,
    /// The account, mailbox hash or activity is already linked to another
    /// learner, account or course.
    LinkedElsewhere,
    /// The course is already a member of another recognition group.
    InAnotherGroup,
    /// An xAPI statement id is stored with other content; the detail is the id.
    StatementDiffers,
    /// The database schema is not at the migration this build expects.
    Schema,
}

/// A conflict: its kind, and a sentence (or the id) that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kind: ConflictKind,
    pub detail: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::ops::Deref for Conflict {
    type Target = str;
    fn deref(&self) -> &str {
        &self.detail
    }
}

impl From<Conflict> for String {
    fn from(c: Conflict) -> Self {
        c.detail
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
    sites::SiteStore
    + keys::KeyStore
    + learners::LearnerStore
    + courses::CourseStore
    + recognition::RecognitionStore
    + ledger::LedgerStore
    + transcript::TranscriptStore
    + stats::StatsStore
    + bank::BankStore
    + pseudonyms::PseudonymStore
    + names::NameStore
    + witness::WitnessStore
    + log_index::LogIndexStore
    + Send
    + Sync
    + 'static
{
    /// Whether the database answers and its schema is current.
    async fn ready(&self) -> Result<()>;
    /// The connection pool's size and idle count, read without waiting.
    fn pool_stats(&self) -> PoolStats;
}

pub mod bank;
pub mod courses;
pub mod keys;
pub mod learners;
pub mod ledger;
pub mod log_index;
pub mod names;
pub mod pseudonyms;
pub mod recognition;
pub mod records;
pub mod row;
pub mod sites;
pub mod stats;
pub mod transcript;
pub mod verify;
pub mod witness;

pub use bank::BankStore;
pub use courses::{Course, CourseStore};
pub use keys::{KeyRecord, KeyStore, NewKey, Principal};
pub use learners::{LearnerStore, NewLearner};
pub use ledger::{ChainLink, LedgerScan, LedgerStore};
pub use log_index::LogIndexStore;
pub use names::NameStore;
pub use pseudonyms::PseudonymStore;
pub use recognition::{Group, RecognitionStore};
pub use sites::{Site, SiteAct, SiteRecord, SiteStore, agreement_standing, site_change, site_transition};
pub use stats::{SiteYearStats, StatsRule, StatsStore};
pub use transcript::{TranscriptStore, referral};
pub use witness::WitnessStore;

pub mod xapi;
pub use xapi::{NewStatement, PendingReindex, StatementQuery, StatementRow, StoredForReindex, StoredKey, XapiStore};
pub mod xapi_documents;
pub use xapi_documents::XapiDocumentStore;
pub mod xapi_erasure;

#[cfg(feature = "conformance")]
pub mod conformance;

/// Every feature port, for code that calls them on a concrete store type
/// (`use xuefen_store::prelude::*`); code holding a `dyn Store` needs none.
pub mod prelude {
    pub use crate::{
        BankStore, CourseStore, KeyStore, LearnerStore, LedgerStore, LogIndexStore, NameStore, PseudonymStore,
        RecognitionStore, ServiceStore, SiteStore, StatsStore, Store, TranscriptStore, WitnessStore, XapiDocumentStore,
        XapiStore,
    };
}

/// What the HTTP service holds: the ledger's [`Store`] and, beside it, the
/// xAPI ports ([`XapiStore`], [`XapiDocumentStore`]). The xAPI door is a
/// sibling of the ledger, not part of it: a store is a complete ledger store
/// without them, and code that needs only the ledger asks for `dyn Store`
/// (a `dyn ServiceStore` coerces to it).
pub trait ServiceStore: Store + XapiStore + XapiDocumentStore {}

impl<T: Store + XapiStore + XapiDocumentStore + ?Sized> ServiceStore for T {}
