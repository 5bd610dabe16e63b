//! The conformance suite: one list of store-level scenarios that every
//! backend runs, so that PostgreSQL and SQLite are held to the same
//! invariants (`docs/design.md` §3) by the same code.
//!
//! A backend's test binary implements [`Backend`] — a fresh, migrated
//! database of its own per test, and a way to run raw SQL against it for the
//! tamper and failure scenarios — and expands [`conformance_tests!`](crate::conformance_tests), which
//! generates one `#[tokio::test]` per scenario of [`scenarios`]:
//!
//! ```ignore
//! struct Lite { /* a temporary database file */ }
//! #[async_trait::async_trait]
//! impl xuefen_store::conformance::Backend for Lite { /* ... */ }
//! xuefen_store::conformance_tests!(Lite);
//! ```
//!
//! Raw SQL is the only place where the backends differ; scenarios pick the
//! statement by [`Dialect`]. Everything else goes through the [`Store`]
//! trait, and expected ledgers come from the pure planner
//! ([`xuefen_core::plan::plan`]), which is the specification both stores
//! implement.
//!
//! Compiled only with the `conformance` feature (the store crates enable it
//! for their tests).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::Entry;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{
    Category, CourseCode, EventId, LearnerId, LocalAccount, RegionCode, SiteId, SiteLevel, SiteStatus,
};
use xuefen_core::plan::{Head, Lookups};
use xuefen_core::rule::CreditRule;

use crate::{Course, NewLearner, ServiceStore, Site, Store};

pub mod credited_once;
pub mod log;
pub mod log_index;
pub mod names;
pub mod notes;
pub mod pseudonyms;
pub mod scenarios;
pub mod witness;
pub mod xapi_documents;
pub mod xapi_erasure;
pub mod xapi_related;

/// Which SQL a backend speaks, for the scenarios that go around the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// One test database, as the suite needs it.
#[async_trait]
pub trait Backend: Send + Sync + Sized + 'static {
    /// A new database of its own, migrated and empty. Panics when the
    /// database cannot be had: a missing database is a failed test, never a
    /// skipped one.
    async fn fresh() -> Self;

    /// The store under test, on this database.
    fn store(&self) -> Arc<dyn ServiceStore>;

    fn dialect(&self) -> Dialect;

    /// Runs raw SQL (one or several statements) outside the store, as an
    /// operator with direct database access would; returns the rows
    /// affected.
    async fn execute(&self, sql: &str) -> Result<u64, String>;

    /// Runs a query whose first row's first column is an integer.
    async fn query_i64(&self, sql: &str) -> Result<i64, String>;

    /// Runs a query whose first row's first column is text.
    async fn query_text(&self, sql: &str) -> Result<String, String>;

    /// A new database with only the migrations up to `version` (inclusive)
    /// applied, and the store opened on it without migrating: a deployment
    /// as it was before an upgrade, for the scenarios of a migration over
    /// rows that already exist.
    async fn fresh_at_version(version: i64) -> Self;

    /// Applies the migrations not yet applied, as `xuefen migrate` does on
    /// an upgrade; the store keeps working on the database.
    async fn migrate(&self);

    /// Releases the database (PostgreSQL drops it). Called after a scenario
    /// passes; a failed one leaves its database behind for inspection.
    async fn close(self);
}

/// Generates one `#[tokio::test]` per scenario of
/// [`scenarios`](crate::conformance::scenarios) for a [`Backend`]:
/// a fresh database, the scenario, then [`Backend::close`].
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty) => {
        use $crate::conformance_test as __xuefen_conformance_test;
        $crate::conformance_scenarios!(__xuefen_conformance_test, [$backend]);
    };
}

/// Invokes `$callback!([Backend] scenario)` once per scenario: the one list
/// of scenarios. [`conformance_tests!`](crate::conformance_tests) uses it
/// with [`conformance_test!`](crate::conformance_test); a backend that must
/// mark a scenario `#[ignore]` (a bug it cannot fix yet, with the reason)
/// passes its own callback:
///
/// ```ignore
/// macro_rules! pg_test {
///     ([$b:ty] some_scenario) => {
///         xuefen_store::conformance_test!([$b] some_scenario #[ignore = "why, and where it is tracked"]);
///     };
///     ([$b:ty] $scenario:ident) => {
///         xuefen_store::conformance_test!([$b] $scenario);
///     };
/// }
/// xuefen_store::conformance_scenarios!(pg_test, [Pg]);
/// ```
#[macro_export]
macro_rules! conformance_scenarios {
    ($callback:ident, $backend:tt) => {
        $crate::__conformance_apply!($callback $backend migrations_give_empty_chains_and_a_ready_schema,
            a_fresh_database_has_the_course_history_index_ending_with_kind_and_instant,
            migrating_a_ledger_with_entries_from_0011_rebuilds_the_index_and_keeps_every_entry,
            sites_and_keys_round_trip,
            registering_the_same_person_twice_finds_one_learner,
            concurrent_registrations_of_one_person_make_one_learner,
            an_account_links_to_one_learner_only,
            a_course_rule_version_grows_only_when_its_terms_change,
            a_batch_is_stored_exactly_as_planned,
            the_same_events_twice_write_nothing_and_answer_the_same,
            a_conflict_names_the_first_differing_field_and_writes_nothing,
            rejected_items_write_nothing_and_a_corrected_retry_is_judged_afresh,
            concurrent_identical_single_events_are_written_once,
            concurrent_overlapping_batches_write_each_key_once_without_gaps,
            concurrent_revocations_of_one_award_reverse_it_once,
            concurrent_conflicting_events_write_one_and_name_the_field,
            a_batch_whose_insert_fails_midway_writes_nothing,
            a_batch_whose_head_update_fails_writes_nothing,
            a_large_batch_is_written_whole,
            a_batch_cancelled_at_any_instant_is_all_or_nothing,
            entries_hold_no_personal_data,
            the_ledger_refuses_update_and_delete,
            verify_names_an_entry_altered_by_direct_sql,
            verify_names_a_deleted_middle_entry,
            verify_names_a_deleted_last_entry,
            verify_names_the_first_of_two_swapped_entries,
            verify_names_a_chain_head_moved_by_direct_sql,
            verify_names_rows_appended_behind_the_head,
            verify_while_batches_commit_reports_no_fault,
            verify_names_a_row_forged_far_behind_the_head,
            heads_follow_the_last_entry_of_every_chain,
            learner_entries_are_that_learners_own_in_sequence_order,
            entries_are_found_by_their_own_sites_key_only,
            random_streams_in_random_batchings_give_the_planned_ledger,
            xapi_statements_are_stored_once_and_other_content_under_an_id_conflicts,
            xapi_concurrent_identical_statements_are_stored_once,
            xapi_the_query_filters_pages_and_leaves_voided_statements_out,
            xapi_links_name_one_account_and_one_course,
            xapi_entries_by_events_are_the_sites_own,
            xapi_documents_honour_preconditions_and_merge,
            xapi_documents_keep_size_limits_per_document_and_per_site,
            xapi_concurrent_document_writes_keep_the_site_limit,
            xapi_documents_are_each_sites_own_and_outside_the_ledger,
            xapi_activity_objects_unite_the_statements_about_them,
            xapi_related_agents_and_activities_match_beyond_actor_and_object,
            migrating_statements_from_0014_reindexes_their_context_agents_once,
            xapi_statements_fold_their_activity_objects_in_their_transaction,
        );
        $crate::__conformance_apply!($callback $backend
            sealing_gives_log_indexes_tiles_and_a_signed_checkpoint,
            an_entry_altered_before_it_is_sealed_is_never_sealed,
            verify_catches_an_altered_or_missing_tile,
            verify_catches_a_log_cut_short_behind_a_held_checkpoint,
            verify_catches_entries_in_unknown_chains_and_missing_or_extra_heads,
            cosignatures_are_kept_per_checkpoint_and_witness_and_served_with_the_note,
        );
        $crate::__conformance_apply!($callback $backend
            pseudonyms_resolve_only_for_the_audience_they_were_handed_to,
            erasure_keeps_the_ledger_valid_and_removes_the_learner_everywhere,
            an_sso_subject_is_bound_to_its_first_learner_only,
        );
        $crate::__conformance_apply!($callback $backend
            log_indexes_are_those_of_the_segments_and_only_of_sealed_entries,
            sealed_names_are_checked_resealed_and_old_keys_dropped,
            a_name_is_replaced_only_over_the_value_read,
            erasure_deletes_the_learner_key_so_a_saved_sealed_name_stays_shut,
            credited_once_reads_see_reversals_year_bounds_and_resent_completions,
            notes_are_sealed_under_the_learners_key_and_still_compared,
            notes_written_in_clear_before_0018_are_sealed_at_start,
        );
        $crate::__conformance_apply!($callback $backend
            xapi_erasure_deletes_every_statement_that_names_the_learner_and_nothing_else,
            xapi_erasure_deletes_the_learners_documents_and_takes_them_off_the_usage,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_apply {
    ($callback:ident $backend:tt $($scenario:ident),+ $(,)?) => {
        $( $callback!($backend $scenario); )+
    };
}

/// One scenario as a `#[tokio::test]` on `Backend`, with optional extra
/// attributes.
#[macro_export]
macro_rules! conformance_test {
    ([$backend:ty] $scenario:ident $(#[$attr:meta])*) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn $scenario() {
            let db = <$backend as $crate::conformance::Backend>::fresh().await;
            $crate::conformance::scenarios::$scenario(&db).await;
            $crate::conformance::Backend::close(db).await;
        }
    };
}

// ---------------------------------------------------------------------------
// Fixtures shared by the scenarios
// ---------------------------------------------------------------------------

/// The recording time of every batch (positions and hashes do not depend on
/// the wall clock, so expected ledgers can be computed).
pub const NOW: Millis = Millis(1_760_000_000_000);
/// The number of chains both schemas create.
pub const CHAINS: u32 = 64;

pub fn site_id() -> SiteId {
    parse(SiteId::parse("xihu"))
}

pub fn other_site_id() -> SiteId {
    parse(SiteId::parse("binjiang"))
}

pub fn site(id: SiteId) -> Site {
    Site {
        id,
        name: "Xihu community college".into(),
        level: SiteLevel::County,
        region_code: parse(RegionCode::parse("330106")),
        status: SiteStatus::Active,
        agreement_starts_at: None,
        agreement_ends_at: None,
    }
}

/// The act of the test's admin, for site changes.
pub fn act(reason: &str) -> crate::SiteAct {
    crate::SiteAct {
        actor: "conformance".into(),
        reason: parse(Reason::parse(reason, "reason")),
        at: NOW,
    }
}

/// `c1`: one credit per 5 hours, at most 4; no pass mark.
pub fn hours_course(site: SiteId) -> Course {
    Course {
        site,
        code: code("c1"),
        title: "Tea culture".into(),
        category: parse(Category::parse("community")),
        rule: CreditRule::PerHours {
            hours_per_credit: Hours::from_cents(5_00),
            cap: Credits::from_cents(4_00),
        },
        pass_mark: None,
        rule_version: 1,
        recognition_group: None,
        offered_from: None,
        repeat: Default::default(),
    }
}

/// `c2`: 1.50 credits for a score of at least 60.
pub fn scored_course(site: SiteId) -> Course {
    Course {
        site,
        code: code("c2"),
        title: "Calligraphy".into(),
        category: parse(Category::parse("arts")),
        rule: CreditRule::Fixed {
            credits: Credits::from_cents(1_50),
        },
        pass_mark: Some(Score::from_cents(60_00)),
        rule_version: 1,
        recognition_group: None,
        offered_from: None,
        repeat: Default::default(),
    }
}

pub fn code(c: &str) -> CourseCode {
    parse(CourseCode::parse(c))
}

pub fn event_id(id: &str) -> EventId {
    parse(EventId::parse(id))
}

pub fn account(a: &str) -> LocalAccount {
    parse(LocalAccount::parse(a))
}

/// Person `n`: a fixed learner id and document hash, so that chains and
/// hashes are the same on every run and every backend.
pub fn person(n: u8) -> NewLearner {
    NewLearner {
        candidate: LearnerId::from_random([n; 16]),
        document_kind: DocumentKind::Passport,
        document_hash: [n; 32],
        name: format!("Learner {n}"),
        secret: [n.wrapping_add(0x80); 32],
        wrapped_key: None,
    }
}

fn parse<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("fixture value does not parse: {e:?}"),
    }
}

/// A completion of `c1` with `hours_cents` hours.
pub fn completion(site: &SiteId, id: &str, learner: LearnerRef, hours_cents: i64) -> Event {
    Event {
        site: site.clone(),
        id: event_id(id),
        body: EventBody::Completion(Completion {
            course: code("c1"),
            learner,
            completed_at: Millis(NOW.0 - 60_000),
            score: None,
            hours: Some(Hours::from_cents(hours_cents)),
        }),
    }
}

/// A completion of `c2` with a score.
pub fn scored(site: &SiteId, id: &str, learner: LearnerRef, score_cents: i64) -> Event {
    Event {
        site: site.clone(),
        id: event_id(id),
        body: EventBody::Completion(Completion {
            course: code("c2"),
            learner,
            completed_at: Millis(NOW.0 - 60_000),
            score: Some(Score::from_cents(score_cents)),
            hours: None,
        }),
    }
}

pub fn revocation(site: &SiteId, id: &str, target: &str) -> Event {
    Event {
        site: site.clone(),
        id: event_id(id),
        body: EventBody::Revocation(Revocation {
            target: event_id(target),
            code: parse(Reason::code("entered_in_error", "reason_code")),
            reason: parse(Reason::parse("entered in error", "reason")),
        }),
    }
}

/// A site with both courses, `n` registered learners (persons `1..=n`),
/// each linked to the site's account `u-<i>` (`i` from 0).
pub struct World {
    pub site: SiteId,
    pub learners: Vec<LearnerId>,
    pub accounts: Vec<LocalAccount>,
    pub courses: Vec<Course>,
}

impl World {
    pub async fn build(store: &dyn Store, site_id: SiteId, n: u8) -> Self {
        store
            .create_site(&site(site_id.clone()), &act("joined"))
            .await
            .expect("create site");
        let courses = vec![hours_course(site_id.clone()), scored_course(site_id.clone())];
        for c in &courses {
            store.put_course(c).await.expect("put course");
        }
        let mut learners = Vec::new();
        let mut accounts = Vec::new();
        for i in 0..n {
            let (id, _) = store.register_learner(&person(i + 1)).await.expect("register learner");
            let acct = account(&format!("u-{i}"));
            store
                .link_account(&site_id, &acct, &id, None)
                .await
                .expect("link account");
            learners.push(id);
            accounts.push(acct);
        }
        Self {
            site: site_id,
            learners,
            accounts,
            courses,
        }
    }

    pub fn by_id(&self, i: usize) -> LearnerRef {
        LearnerRef::Id(self.learners[i].clone())
    }

    pub fn by_account(&self, i: usize) -> LearnerRef {
        LearnerRef::Account(self.accounts[i].clone())
    }

    pub fn chain(&self, i: usize) -> u32 {
        self.learners[i].chain(CHAINS)
    }

    /// What a store looks up for this world on an empty ledger: the
    /// planner's input for the expected outcome of a batch.
    pub fn lookups(&self) -> Lookups {
        let mut l = Lookups::default();
        for (i, (id, acct)) in self.learners.iter().zip(&self.accounts).enumerate() {
            l.learner_chains.insert(id.clone(), id.chain(CHAINS));
            let n = u8::try_from(i + 1).unwrap_or(u8::MAX);
            l.learner_secrets.insert(id.clone(), person(n).secret);
            l.accounts.insert((self.site.clone(), acct.clone()), id.clone());
        }
        for c in &self.courses {
            l.courses.insert((c.site.clone(), c.code.clone()), c.terms());
        }
        l
    }
}

/// Every entry of the ledger, chain by chain in sequence order.
pub async fn all_entries(store: &dyn Store) -> Vec<Entry> {
    let mut all = Vec::new();
    for (chain, _) in store.heads().await.expect("heads") {
        let mut entries: Vec<Entry> = store.chain_entries(chain).try_collect().await.expect("chain entries");
        all.append(&mut entries);
    }
    all
}

/// The heads that differ from an empty chain.
pub async fn moved_heads(store: &dyn Store) -> BTreeMap<u32, Head> {
    store
        .heads()
        .await
        .expect("heads")
        .into_iter()
        .filter(|(_, h)| *h != Head::EMPTY)
        .collect()
}

/// The number of rows of `ledger_entries`, counted by SQL.
pub async fn entry_count<B: Backend>(db: &B) -> i64 {
    db.query_i64("select count(*) from ledger_entries")
        .await
        .expect("count ledger entries")
}
