//! API keys: how a request proves which site (or the provincial centre) it
//! speaks for.
//!
//! A key is `xf_` followed by 48 hex digits of randomness, sent as
//! `Authorization: Bearer <key>`. Only its SHA-256 is stored, so a leaked
//! database does not leak usable keys; lookups are by that hash.

use crate::problem_code::ProblemCode;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use xuefen_core::ids::SiteId;
use xuefen_store::{KeyRecord, NewKey, Principal};

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// A freshly minted key: the record to store and the secret to show once.
pub fn mint(principal: Principal) -> (NewKey, String) {
    let mut rng = rand::thread_rng();
    let mut secret = [0u8; 24];
    rng.fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rng.fill_bytes(&mut id);
    let secret = format!("xf_{}", hex::encode(secret));
    let key = NewKey {
        id: format!("key_{}", hex::encode(id)),
        principal,
        secret_hash: secret_hash(&secret),
    };
    (key, secret)
}

pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Keys found recently, so that a burst of requests with one key costs one
/// database lookup, not one each.
///
/// An entry lives at most `ttl`. Revoking a key or changing a site's status
/// through this instance clears the cache at once; through another instance
/// (or `xuefen keys revoke` on the database) it takes effect here within
/// `ttl`. Unknown keys are never cached, so guessing costs a lookup each and
/// cannot fill the cache. A `ttl` of zero turns caching off.
pub struct KeyCache {
    ttl: Duration,
    entries: quick_cache::sync::Cache<[u8; 32], (KeyRecord, Instant)>,
}

impl KeyCache {
    /// How many keys are kept at most.
    const KEYS_MAX: usize = 4_096;

    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: quick_cache::sync::Cache::new(Self::KEYS_MAX),
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<KeyRecord> {
        let (record, at) = self.entries.get(hash)?;
        (at.elapsed() < self.ttl).then_some(record)
    }

    fn put(&self, hash: [u8; 32], record: &KeyRecord) {
        if !self.ttl.is_zero() {
            self.entries.insert(hash, (record.clone(), Instant::now()));
        }
    }

    /// Forgets every key: after a revocation or a site status change.
    pub fn clear(&self) {
        self.entries.clear();
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub principal: Principal,
    /// When the caller's site agreement ends (site keys).
    pub agreement_ends_at: Option<xuefen_core::event::Millis>,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::Admin => Ok(()),
            Principal::Site(_) | Principal::Bank => {
                Err(forbidden("this operation is for the provincial centre's admin key").into())
            }
        }
    }

    /// The caller's site, for posting events: refused once the site's
    /// agreement has ended, with a problem saying so.
    pub fn require_posting_site(&self) -> Result<&SiteId, ApiError> {
        let site = self.require_site()?;
        if let Some(end) = self.agreement_ends_at {
            let now = xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc());
            if now >= end {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    ProblemCode::AgreementEnded,
                    format!(
                        "the site's agreement with the provincial centre ended at {}; it cannot post until the agreement is renewed",
                        end.to_rfc3339()
                    ),
                )
                .into());
            }
        }
        Ok(site)
    }

    /// The caller's site, for operations only a site performs.
    pub fn require_site(&self) -> Result<&SiteId, ApiError> {
        match &self.principal {
            Principal::Site(site) => Ok(site),
            Principal::Admin | Principal::Bank => {
                Err(forbidden("this operation is performed with a site's key").into())
            }
        }
    }

    /// Operations only the credit bank performs (reading and acknowledging deposits).
    pub fn require_bank(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::Bank => Ok(()),
            Principal::Admin | Principal::Site(_) => {
                Err(forbidden("this operation is performed with the credit bank's key").into())
            }
        }
    }

    /// The admin, or the site `id` itself: a site's own record (its
    /// changes, its statistics). Another site and the credit bank are refused.
    pub fn require_admin_or_site(&self, id: &SiteId, what: &str) -> Result<(), ApiError> {
        match &self.principal {
            Principal::Admin => Ok(()),
            Principal::Site(own) if own == id => Ok(()),
            Principal::Site(_) => Err(forbidden(&format!("a site can read only its own {what}")).into()),
            Principal::Bank => Err(forbidden(&format!(
                "a site's {what} are for the admin and the site itself, not the credit bank"
            ))
            .into()),
        }
    }

    /// Refuses the credit bank, which reads deposits and nothing else.
    pub fn refuse_bank(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::Bank => Err(forbidden("the credit bank's key reads deposits and checkpoints only").into()),
            Principal::Admin | Principal::Site(_) => Ok(()),
        }
    }
}

pub fn forbidden(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, ProblemCode::Forbidden, detail)
}

pub(crate) fn unauthorized(detail: &str) -> ApiError {
    Problem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail).into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Found already by the role check (`roles::enforce`).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an API key as `Authorization: Bearer <key>`"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <key>`"))?;
        authenticate(state, secret).await
    }
}

/// The caller a key secret speaks for: the key must exist, not be revoked,
/// and its site (for a site key) must be allowed to post. Found keys are
/// remembered in the key cache. Both the Bearer scheme of the native API
/// and the Basic scheme of the xAPI door end here.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Caller, ApiError> {
    let hash = secret_hash(secret);
    let record = match state.key_cache.get(&hash) {
        Some(record) => record,
        None => {
            let record = state
                .key_store()
                .key_by_hash(&hash)
                .await?
                .ok_or_else(|| unauthorized("the API key is not valid"))?;
            state.key_cache.put(hash, &record);
            record
        }
    };
    if record.revoked {
        return Err(unauthorized("the API key has been revoked"));
    }
    if let Some(status) = record.site_status
        && !status.may_post()
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            ProblemCode::SiteNotActive(status),
            format!("the site is {status}; its keys are refused until it is active again"),
        )
        .into());
    }
    state.rate.take(&record.id).map_err(crate::throttle::rate_limited)?;
    Ok(Caller {
        key_id: record.id,
        principal: record.principal,
        agreement_ends_at: record.agreement_ends_at,
    })
}
