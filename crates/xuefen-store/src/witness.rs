//! The storage port of the log's witnessing: the witnesses' cosignatures
//! of the log's checkpoints (`log_cosignatures`, migration 0011) and the
//! stored checkpoint notes they sign.
//!
//! What is sent to a witness and when is decided by the service; a backend
//! only keeps the lines it is given (each already checked against its
//! witness's key) and reads them back.

use async_trait::async_trait;
use xuefen_core::witness::Cosignature;

use crate::Result;
use crate::bank::LogHead;

#[async_trait]
pub trait WitnessStore: Send + Sync {
    /// The stored checkpoint of size `size`, if the log made one.
    async fn checkpoint_at(&self, size: u64) -> Result<Option<LogHead>>;
    /// Keeps `cosignature` of the checkpoint of size `size`; a later one
    /// of the same witness for the same size replaces it.
    async fn put_cosignature(&self, size: u64, cosignature: &Cosignature) -> Result<()>;
    /// The cosignatures of the checkpoint of size `size`, by witness name.
    async fn cosignatures_at(&self, size: u64) -> Result<Vec<Cosignature>>;
    /// The largest checkpoint size `witness` cosigned (`None`: never).
    async fn cosigned_by(&self, witness: &str) -> Result<Option<u64>>;
    /// The largest checkpoint size any witness cosigned.
    async fn latest_cosigned(&self) -> Result<Option<u64>>;
}

/// The checkpoint of `head` as served: its note with the cosignature lines
/// appended, in witness-name order.
pub fn cosigned_note(head: &LogHead, cosignatures: &[Cosignature]) -> String {
    let mut lines: Vec<&Cosignature> = cosignatures.iter().collect();
    lines.sort_by(|a, b| a.witness.cmp(&b.witness));
    let mut note = head.note.clone();
    for c in lines {
        note.push_str(&c.line);
    }
    note
}

/// The checkpoint the service serves (`GET /checkpoint`, deposit pages),
/// with the cosignatures it has of it appended. When the log is
/// `witnessed` (witnesses are configured), that is the latest checkpoint
/// some witness cosigned (`None` until one did); otherwise the latest.
pub async fn served_head<S>(store: &S, witnessed: bool) -> Result<Option<LogHead>>
where
    S: crate::WitnessStore + crate::BankStore + ?Sized,
{
    let head = if witnessed {
        match store.latest_cosigned().await? {
            Some(size) => store.checkpoint_at(size).await?,
            None => None,
        }
    } else {
        store.log_head().await?
    };
    let Some(mut head) = head else {
        return Ok(None);
    };
    let cosignatures = store.cosignatures_at(head.size).await?;
    head.note = cosigned_note(&head, &cosignatures);
    Ok(Some(head))
}
