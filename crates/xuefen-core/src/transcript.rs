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
    /// The record of an erasure (never one of a learner's lines).
    Erased,
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
            LineStatus::Erased => "erased",
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
        EntryKind::Erased => LineStatus::Erased,
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

/// Whether an entry is a line of its own on a transcript. The credit bank's
/// acknowledgements are not: they are the status (`deposited`,
/// `rejected_by_bank`) of the deposit they decide.
pub fn is_listed(e: &Entry) -> bool {
    !matches!(e.body.kind, EntryKind::BankAccepted | EntryKind::BankRejected)
}

/// The `?year=`, `?category=` and `?site=` of a transcript: a line (and a
/// totals row) is shown when it matches every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Calendar year of the learning (China Standard Time).
    pub year: Option<i32>,
    pub category: Option<String>,
    pub site: Option<String>,
}

impl Filter {
    /// Whether a listed entry falls within the filter.
    pub fn matches(&self, e: &Entry) -> bool {
        let b = &e.body;
        is_listed(e)
            && self.year.is_none_or(|y| y == b.occurred_at.year_cst())
            && self.category.as_deref().is_none_or(|c| c == b.category.as_str())
            && self.site.as_deref().is_none_or(|s| s == b.site.as_str())
    }

    /// Whether a totals row falls within the filter.
    pub fn matches_row(&self, r: &TotalRow) -> bool {
        self.year.is_none_or(|y| y == r.year)
            && self.category.as_deref().is_none_or(|c| c == r.category)
            && self.site.as_deref().is_none_or(|s| s == r.site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(year: i32, category: &str, site: &str, cents: i64) -> TotalRow {
        TotalRow {
            year,
            category: category.to_owned(),
            site: site.to_owned(),
            credits: Credits::from_cents(cents),
        }
    }

    #[test]
    fn a_filter_keeps_the_rows_matching_every_given_field() {
        let rows = [
            row(2025, "community", "a", 100),
            row(2026, "community", "a", 200),
            row(2026, "vocational", "b", 400),
        ];
        let sum = |f: &Filter| {
            let kept: Vec<TotalRow> = rows.iter().filter(|r| f.matches_row(r)).cloned().collect();
            totals_from_rows(&kept).total.to_string()
        };
        assert_eq!(sum(&Filter::default()), "7.00");
        let year = Filter {
            year: Some(2026),
            ..Filter::default()
        };
        assert_eq!(sum(&year), "6.00");
        let both = Filter {
            year: Some(2026),
            site: Some("a".to_owned()),
            ..Filter::default()
        };
        assert_eq!(sum(&both), "2.00");
        let none = Filter {
            category: Some("vocational".to_owned()),
            site: Some("a".to_owned()),
            ..Filter::default()
        };
        assert_eq!(sum(&none), "0.00");
    }
}
