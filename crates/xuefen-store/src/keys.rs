//! API keys: who a key speaks for, and what the store keeps of it.

use async_trait::async_trait;

use crate::Result;

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
