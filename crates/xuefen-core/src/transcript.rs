//! A learner's transcript, derived from their ledger entries.

use std::collections::{BTreeMap, HashSet};

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
pub fn summarise(entries: &[Entry]) -> (Vec<LineStatus>, Totals) {
    let reversed: HashSet<_> = entries
        .iter()
        .filter(|e| e.body.kind == EntryKind::Reversal)
        .filter_map(|e| e.body.refers_to)
        .collect();
    let mut totals = Totals::default();
    let statuses = entries
        .iter()
        .map(|e| {
            let b = &e.body;
            add(&mut totals.total, b.credits);
            add(totals.by_year.entry(b.occurred_at.year_cst()).or_default(), b.credits);
            add(
                totals.by_category.entry(b.category.as_str().to_owned()).or_default(),
                b.credits,
            );
            add(totals.by_site.entry(b.site.as_str().to_owned()).or_default(), b.credits);
            status_of(e, &reversed)
        })
        .collect();
    (statuses, totals)
}

/// The status of one line, given the positions that reversals refer to.
pub fn status_of(e: &Entry, reversed: &HashSet<Position>) -> LineStatus {
    match e.body.kind {
        EntryKind::Reversal => LineStatus::Reversal,
        _ if reversed.contains(&e.position) => LineStatus::Reversed,
        EntryKind::Awarded => LineStatus::Awarded,
        EntryKind::NotPassed => LineStatus::NotPassed,
        EntryKind::Recognised => LineStatus::Recognised,
        EntryKind::Capped => LineStatus::Capped,
        EntryKind::Promoted => LineStatus::Promoted,
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
