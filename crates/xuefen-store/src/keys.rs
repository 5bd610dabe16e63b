//! API keys: who a key speaks for, and what the store keeps of it.

use async_trait::async_trait;

use crate::Result;
use crate::StoreError;
use crate::row::{Columns, ReadRow};

use xuefen_core::event::Millis;
use xuefen_core::ids::{SiteId, SiteStatus};

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

impl KeyRecord {
    /// A key's row: `id`, `role`, `site_id`, `revoked`, and its site's
    /// `site_status` and `agreement_ends_at_ms` (null for keys of no site).
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("api_keys", row);
        let id: String = c.get("id")?;
        let corrupt = |detail: String| StoreError::Corrupt {
            at: format!("key {id}"),
            detail,
        };
        let role: String = c.get("role")?;
        let principal = match (role.as_str(), c.get::<Option<String>>("site_id")?) {
            ("admin", _) => Principal::Admin,
            ("bank", None) => Principal::Bank,
            ("site", Some(site)) => Principal::Site(SiteId::parse(site).map_err(|e| corrupt(e.to_string()))?),
            (role, _) => return Err(corrupt(format!("role {role}"))),
        };
        let site_status = c
            .get::<Option<String>>("site_status")?
            .as_deref()
            .map(SiteStatus::parse)
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            revoked: c.get("revoked")?,
            agreement_ends_at: c.get::<Option<i64>>("agreement_ends_at_ms")?.map(Millis),
            principal,
            site_status,
            id,
        })
    }
}

impl Principal {
    /// The `role` and `site_id` a key of this principal is stored under.
    pub fn role_and_site(&self) -> (&'static str, Option<&str>) {
        match self {
            Principal::Admin => ("admin", None),
            Principal::Site(s) => ("site", Some(s.as_str())),
            Principal::Bank => ("bank", None),
        }
    }
}

/// The keys port.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_key(&self, key: &NewKey) -> Result<()>;
    /// Revokes a key; revoking a revoked key is not an error.
    async fn revoke_key(&self, id: &str) -> Result<()>;
    async fn key_by_hash(&self, secret_hash: &[u8; 32]) -> Result<Option<KeyRecord>>;
    /// Whether any admin key, revoked or not, was ever created.
    async fn admin_key_exists(&self) -> Result<bool>;
}
