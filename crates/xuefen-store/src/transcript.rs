//! Transcripts: what a learner's credit page reads beyond its own lines.

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
