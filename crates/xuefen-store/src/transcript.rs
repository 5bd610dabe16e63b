//! Transcripts: what a learner's credit page reads beyond its own lines.

use async_trait::async_trait;
use xuefen_core::entry::Entry;
use xuefen_core::ids::LearnerId;
use xuefen_core::transcript::TotalRow;

use crate::Result;

use xuefen_core::entry::EntryKind;
use xuefen_core::ids::Position;
use xuefen_core::transcript::Referrals;

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

/// The transcript port: a learner's entries and sums.
#[async_trait]
pub trait TranscriptStore: Send + Sync {
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
}
