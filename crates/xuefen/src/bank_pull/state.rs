//! The consumer's state file: the cursor, the page whose decisions are saved
//! but not yet acknowledged, the deposits decided elsewhere, and the last
//! checkpoint verified. Written atomically, so a kill at any instant leaves
//! the old state or the new one.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xuefen_core::tlog::LogCheckpoint;

/// The consumer's saved state. Written atomically (temporary file, then rename).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct PullState {
    pub(super) cursor: String,
    pub(super) public_key: Option<String>,
    /// The checkpoint of the last acknowledged deposit, fully verified.
    pub(super) checkpoint: Option<SavedCheckpoint>,
    pub(super) deposits_acknowledged: u64,
    /// Of those, accepted and rejected by this consumer's policy.
    #[serde(default)]
    pub(super) accepted: u64,
    #[serde(default)]
    pub(super) rejected: u64,
    /// Deposits the bank had already decided otherwise (through the API):
    /// skipped, reported, never retried.
    #[serde(default)]
    pub(super) decided_elsewhere: Vec<DecidedElsewhere>,
    /// The decisions of the page after `cursor`, saved before they are
    /// posted; a replay of that page posts them again instead of asking the
    /// policy anew.
    #[serde(default)]
    pub(super) pending: Option<PendingPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PendingPage {
    pub(super) after: String,
    /// Per deposit log index: the decision posted.
    pub(super) decisions: std::collections::BTreeMap<u64, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DecidedElsewhere {
    pub(super) number: u64,
    pub(super) deposit: Value,
    pub(super) site_id: Value,
    pub(super) event_id: Value,
    /// What this consumer would have decided.
    pub(super) ours: Value,
    /// The field the recorded decision differs in, and its ack entry.
    pub(super) field: Value,
    pub(super) ack_entry: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SavedCheckpoint {
    pub(super) origin: String,
    pub(super) size: u64,
    /// The root, hex.
    pub(super) root: String,
}

impl SavedCheckpoint {
    pub(super) fn from_checkpoint(c: &LogCheckpoint) -> Self {
        Self {
            origin: c.origin.clone(),
            size: c.size,
            root: hex::encode(c.root),
        }
    }

    pub(super) fn to_checkpoint(&self) -> anyhow::Result<LogCheckpoint> {
        Ok(LogCheckpoint {
            origin: self.origin.clone(),
            size: self.size,
            root: hash32(&self.root, "root")?,
        })
    }
}

pub(super) fn hash32(hex_str: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_str).with_context(|| format!("{what} is not hex"))?;
    bytes.try_into().map_err(|_| anyhow!("{what} is not 32 bytes"))
}

pub(super) fn load_state(path: &Path) -> anyhow::Result<PullState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("read state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PullState::default()),
        Err(e) => Err(e).with_context(|| format!("read state {}", path.display())),
    }
}

/// Saves the state so that a crash leaves either the old or the new file.
pub(super) fn save_state(path: &Path, state: &PullState) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}
