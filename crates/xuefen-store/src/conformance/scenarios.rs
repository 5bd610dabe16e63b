//! The scenarios of the conformance suite, each an `async fn` over a fresh
//! database of a [`Backend`]. [`conformance_tests!`](crate::conformance_tests)
//! lists every one of them; a scenario missing from that list does not run.
//!
//! The scenarios live in one file per feature (`scenarios/sites.rs`,
//! `scenarios/ledger_chain.rs`, …, and the older siblings of this module such
//! as `credited_once.rs`), so that a feature's guarantees read as one page;
//! this module re-exports them all under one path, the one the macro calls,
//! and holds the imports and helpers the files share (each file starts with
//! `use super::*`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::EntryKind;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::ids::{Position, SiteId, SiteStatus};
use xuefen_core::limits::COMPLETED_AT_FUTURE_SKEW_MS;
use xuefen_core::plan::{self, Head, Outcome};
use xuefen_core::rule::CreditRule;
use xuefen_core::verify::Fault;

pub use super::xapi_documents::*;
pub use super::xapi_erasure::*;
pub use super::xapi_related::*;
use super::{
    Backend, CHAINS, Dialect, NOW, World, account, act, all_entries, completion, entry_count, event_id, hours_course,
    moved_heads, other_site_id, person, revocation, scored, site, site_id,
};
use crate::verify::{VerifyFailure, verify_ledger};
use crate::{Course, NewKey, NewLearner, Principal, ServiceStore, Store, StoreError, Written};

mod courses;
mod learners;
mod ledger_atomic;
mod ledger_chain;
mod ledger_ingest;
mod ledger_property;
mod ledger_races;
mod migrations;
mod sites;
mod xapi_statements;

pub use courses::*;
pub use learners::*;
pub use ledger_atomic::*;
pub use ledger_chain::*;
pub use ledger_ingest::*;
pub use ledger_property::*;
pub use ledger_races::*;
pub use migrations::*;
pub use sites::*;
pub use xapi_statements::*;

/// Files `entries` into the per-course histories of `lookups`, as a store
/// reads them back for the planner.
fn remember(lookups: &mut plan::Lookups, entries: &[xuefen_core::entry::Entry]) {
    for e in entries {
        let key = (e.body.learner.clone(), e.body.site.clone(), e.body.course.clone());
        lookups.course_entries.entry(key).or_default().push(e.clone());
    }
}

// The scenarios of the log, kept in their own file.
pub use super::credited_once::*;
pub use super::log::*;
pub use super::log_index::*;
pub use super::names::*;
pub use super::notes::*;
pub use super::pseudonyms::*;
pub use super::witness::*;
