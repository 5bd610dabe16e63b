//! A learner's transcript, derived from their ledger entries.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::amount::Credits;
use crate::entry::{Entry, EntryKind};
use crate::ids::Position;

/// The status of one transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    Awarded,
    NotPassed,
    /// An entry that a later reversal cancelled.
    Reversed,
    /// The reversal itself.
    Reversal,
    /// Credited already through another course of its recognition group.
    Recognised,
    /// Partly or wholly over the learner's annual cap for the category.
    Capped,
    /// A recognised completion that became the paid one of its group.
    Promoted,
    /// An award the credit bank accepted.
    Deposited,
    /// An award the credit bank rejected.
    RejectedByBank,
    /// The bank's acceptance of a deposit (the line of the ack entry).
    BankAccepted,
    /// The bank's rejection of a deposit (the line of the ack entry).
    BankRejected,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Awarded => "awarded",
            LineStatus::NotPassed => "not_passed",
            LineStatus::Reversed => "reversed",
            LineStatus::Reversal => "reversal",
            LineStatus::Recognised => "recognised",
            LineStatus::Capped => "capped",
            LineStatus::Promoted => "promoted",
            LineStatus::Deposited => "deposited",
            LineStatus::RejectedByBank => "rejected_by_bank",
            LineStatus::BankAccepted => "bank_accepted",
            LineStatus::BankRejected => "bank_rejected",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub total: Credits,
    pub by_year: BTreeMap<i32, Credits>,
    pub by_category: BTreeMap<String, Credits>,
    pub by_site: BTreeMap<String, Credits>,
}

/// Line statuses (parallel to `entries`) and totals. Totals are the exact sum
/// of signed credits, so an award and its reversal net to zero in the year,
/// category and site of the award.
/// The credit bank's acknowledgements count in no total: they carry zero
/// credits and the bank's pseudo-site, and only set the status of the
/// deposit they name.
pub fn summarise(entries: &[Entry]) -> (Vec<LineStatus>, Totals) {
    let is_ack = |k: EntryKind| matches!(k, EntryKind::BankAccepted | EntryKind::BankRejected);
    let reversed: HashSet<_> = entries
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .collect();
    let acked: HashMap<_, _> = entries
        .iter()
        .filter(|e| is_ack(e.body.kind))
        .filter_map(|e| e.body.refers_to.map(|p| (p, e.body.kind)))
        .collect();
    let referred = Referrals { reversed, acked };
    let mut totals = Totals::default();
    let statuses = entries
        .iter()
        .map(|e| {
            let b = &e.body;
            match b.kind {
                EntryKind::BankAccepted => return LineStatus::BankAccepted,
                EntryKind::BankRejected => return LineStatus::BankRejected,
                _ => {}
            }
            add(&mut totals.total, b.credits);
            add(totals.by_year.entry(b.occurred_at.year_cst()).or_default(), b.credits);
            add(
                totals.by_category.entry(b.category.as_str().to_owned()).or_default(),
                b.credits,
            );
            add(totals.by_site.entry(b.site.as_str().to_owned()).or_default(), b.credits);
            status_of(e, &referred)
        })
        .collect();
    (statuses, totals)
}

/// The status of one line, given the positions that reversals refer to.
/// What later entries say of earlier ones: which were reversed, and how the
/// credit bank acknowledged its deposits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Referrals {
    /// Positions a reversal refers to.
    pub reversed: HashSet<Position>,
    /// Deposits the bank acknowledged, with the kind of the acknowledgement.
    pub acked: HashMap<Position, EntryKind>,
}

pub fn status_of(e: &Entry, referred: &Referrals) -> LineStatus {
    let paid = |plain: LineStatus| match referred.acked.get(&e.position) {
        Some(EntryKind::BankAccepted) => LineStatus::Deposited,
        Some(_) => LineStatus::RejectedByBank,
        None => plain,
    };
    match e.body.kind {
        EntryKind::Reversal => LineStatus::Reversal,
        _ if referred.reversed.contains(&e.position) => LineStatus::Reversed,
        EntryKind::Awarded => paid(LineStatus::Awarded),
        EntryKind::NotPassed => LineStatus::NotPassed,
        EntryKind::Recognised => LineStatus::Recognised,
        EntryKind::Capped => paid(LineStatus::Capped),
        EntryKind::Promoted => paid(LineStatus::Promoted),
        EntryKind::BankAccepted => LineStatus::BankAccepted,
        EntryKind::BankRejected => LineStatus::BankRejected,
    }
}

/// One group of a learner's credit sums, as a store aggregates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalRow {
    pub year: i32,
    pub category: String,
    pub site: String,
    pub credits: Credits,
}

/// Totals from rows grouped by year, category and site.
pub fn totals_from_rows(rows: &[TotalRow]) -> Totals {
    let mut totals = Totals::default();
    for r in rows {
        add(&mut totals.total, r.credits);
        add(totals.by_year.entry(r.year).or_default(), r.credits);
        add(totals.by_category.entry(r.category.clone()).or_default(), r.credits);
        add(totals.by_site.entry(r.site.clone()).or_default(), r.credits);
    }
    totals
}

fn add(total: &mut Credits, credits: Credits) {
    // Per-award credits are bounded by CREDITS_PER_AWARD_MAX_CENTS, so an
    // overflow would take more entries than any ledger holds.
    *total = total
        .checked_add(credits)
        .unwrap_or_else(|| panic!("credit total overflow"));
}
