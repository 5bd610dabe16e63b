//! What every handler shares: the store, the committer, the limits and
//! settings of the running service.

use std::sync::Arc;

use xuefen_store::ServiceStore;

use crate::{CommitSettings, Committer, Metrics, RequestBounds, auth, bank, sso, throttle};

/// Limits on what a request may carry.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events in one `POST /v1/events`.
    pub batch_events_max: usize,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
}

/// Most transcript lines in one page (`limit`), and the default.
pub const PAGE_SIZE_MAX: usize = 500;
pub const PAGE_SIZE_DEFAULT: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch_events_max: 1_000,
            body_bytes_max: 2 * 1024 * 1024,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ServiceStore>,
    pub committer: Committer,
    pub limits: Limits,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// The HMAC key under which identity document numbers are hashed.
    pub identity_key: Arc<[u8]>,
    /// The keys learners' names are sealed under at rest: the first seals,
    /// every one opens (by default one key derived from `identity_key`).
    pub name_keys: Arc<xuefen_core::names::NameKeys>,
    /// Recently authenticated keys.
    pub key_cache: Arc<auth::KeyCache>,
    /// The pseudonyms this instance has recorded with the store.
    pub pseudonyms: Arc<crate::pseudonyms::Remembered>,
    /// Verifies learners' single sign-on tokens (`/v1/me/...`); without
    /// it those routes answer 503.
    pub sso: Option<Arc<sso::SsoVerifier>>,
    /// How the alliance statistics count and what the agreement asks.
    pub stats: StatsSettings,
    /// The checkpoint signing key and the checkpointer's schedule.
    pub checkpoints: bank::CheckpointSettings,
    /// Body-read and request timeouts, and the per-key rate.
    pub bounds: RequestBounds,
    /// Per-key token buckets at `bounds`' rate.
    pub rate: Arc<throttle::RateLimiter>,
    /// The xAPI version named on answers to requests that name none.
    pub xapi_default_version: crate::xapi::DefaultVersion,
}

/// One port per feature: a handler asks for the smallest one it needs,
/// so what each handler can touch is visible at the call.
impl AppState {
    /// The sites: the register, agreements, status changes.
    pub fn site_store(&self) -> &dyn xuefen_store::SiteStore {
        &*self.store
    }

    /// The API keys.
    pub fn key_store(&self) -> &dyn xuefen_store::KeyStore {
        &*self.store
    }

    /// The learners, their accounts and erasure.
    pub fn learner_store(&self) -> &dyn xuefen_store::LearnerStore {
        &*self.store
    }

    /// The course declarations.
    pub fn course_store(&self) -> &dyn xuefen_store::CourseStore {
        &*self.store
    }

    /// The recognition groups and annual caps.
    pub fn recognition_store(&self) -> &dyn xuefen_store::RecognitionStore {
        &*self.store
    }

    /// The ledger entries and chain links.
    pub fn ledger_store(&self) -> &dyn xuefen_store::LedgerStore {
        &*self.store
    }

    /// The transcript reads.
    pub fn transcript_store(&self) -> &dyn xuefen_store::TranscriptStore {
        &*self.store
    }

    /// The per-site statistics.
    pub fn stats_store(&self) -> &dyn xuefen_store::StatsStore {
        &*self.store
    }

    /// The the deposit feed and checkpoints.
    pub fn bank_store(&self) -> &dyn xuefen_store::BankStore {
        &*self.store
    }

    /// The pairwise pseudonyms.
    pub fn pseudonym_store(&self) -> &dyn xuefen_store::PseudonymStore {
        &*self.store
    }

    /// The sealed names.
    pub fn name_store(&self) -> &dyn xuefen_store::NameStore {
        &*self.store
    }

    /// The witness cosignatures.
    pub fn witness_store(&self) -> &dyn xuefen_store::WitnessStore {
        &*self.store
    }

    /// The log indexes of sealed entries.
    pub fn log_index_store(&self) -> &dyn xuefen_store::LogIndexStore {
        &*self.store
    }

    /// The xAPI statements and course activities.
    pub fn xapi_store(&self) -> &dyn xuefen_store::XapiStore {
        &*self.store
    }

    /// The xAPI documents.
    pub fn xapi_document_store(&self) -> &dyn xuefen_store::XapiDocumentStore {
        &*self.store
    }
}

/// The learning-star rule and the agreement figures a site is measured
/// against (per site and calendar year).
#[derive(Debug, Clone, Copy)]
pub struct StatsSettings {
    pub rule: xuefen_store::StatsRule,
    /// New registrations/activations a site must bring each year.
    pub registrations_min: u64,
    /// Learning-star awards a site must make each year.
    pub learning_stars_min: u64,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            rule: xuefen_store::StatsRule {
                credits_each: xuefen_core::amount::Credits::from_cents(20_00),
                star_credits: xuefen_core::amount::Credits::from_cents(30_00),
            },
            registrations_min: 1_000,
            learning_stars_min: 50,
        }
    }
}

impl AppState {
    /// State over `store`, starting the group committer on the current runtime.
    pub fn new(store: Arc<dyn ServiceStore>, limits: Limits, commit: CommitSettings, identity_key: Vec<u8>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let committer = Committer::start_with_metrics(store.clone(), commit, metrics.clone());
        Self {
            store,
            committer,
            limits,
            metrics,
            name_keys: Arc::new(xuefen_core::names::NameKeys::derived(&identity_key)),
            identity_key: identity_key.into(),
            key_cache: Arc::new(auth::KeyCache::new(Self::KEY_CACHE_TTL)),
            pseudonyms: Arc::new(crate::pseudonyms::Remembered::default()),
            sso: None,
            stats: StatsSettings::default(),
            checkpoints: bank::CheckpointSettings::ephemeral(),
            bounds: RequestBounds::default(),
            rate: Arc::new(throttle::RateLimiter::new(&RequestBounds::default())),
            xapi_default_version: crate::xapi::DefaultVersion::default(),
        }
    }

    /// The same state, with these timeouts and this per-key rate.
    pub fn with_bounds(mut self, bounds: RequestBounds) -> Self {
        self.bounds = bounds;
        self.rate = Arc::new(throttle::RateLimiter::new(&bounds));
        self
    }

    /// How long an authenticated key is remembered by default.
    pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Remembers authenticated keys for `ttl` (zero: look every key up).
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_cache = Arc::new(auth::KeyCache::new(ttl));
        self
    }

    /// The same state, with these statistics settings.
    pub fn with_stats(mut self, stats: StatsSettings) -> Self {
        self.stats = stats;
        self
    }

    /// The same state, naming `version` on xAPI answers to requests that
    /// name no version.
    pub fn with_xapi_default_version(mut self, version: xuefen_core::xapi::Version) -> Self {
        self.xapi_default_version = crate::xapi::DefaultVersion(version);
        self
    }

    /// The same state, sealing learners' names under `keys`.
    pub fn with_name_keys(mut self, keys: xuefen_core::names::NameKeys) -> Self {
        self.name_keys = Arc::new(keys);
        self
    }

    /// The same state, verifying learner tokens with `verifier`.
    pub fn with_sso(mut self, verifier: sso::SsoVerifier) -> Self {
        self.sso = Some(Arc::new(verifier));
        self
    }
}
