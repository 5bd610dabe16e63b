//! The same events give the same ledger, byte for byte, on PostgreSQL and on
//! SQLite: the same outcomes, the same chain heads and the same entries, and
//! a ledger written by one backend verifies when read through the other.
//!
//! Everything goes through the `Store` trait directly (no HTTP). Needs
//! `XUEFEN_TEST_PG_ADMIN_URL` (scripts/with-postgres.sh and scripts/test.sh
//! set it).

#[path = "support/pg.rs"]
mod pg;

use std::path::PathBuf;
use std::time::Duration;

use futures::TryStreamExt;
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::Entry;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{
    Category, CourseCode, EventId, LearnerId, LocalAccount, RegionCode, SiteId, SiteLevel, SiteStatus,
};
use xuefen_core::limits::{COMPLETED_AT_FUTURE_SKEW_MS, COMPLETED_AT_MIN_MS};
use xuefen_core::plan::{Head, Outcome};
use xuefen_core::rule::CreditRule;
use xuefen_core::verify::Fault;
use xuefen_store::records::EntryRecord;
use xuefen_store::verify::{VerifyFailure, VerifyReport, verify_ledger};
use xuefen_store::{
    Course, LedgerStore, NewLearner, Site, SiteAct, SiteStore, Store, StoreError, TranscriptStore, Written,
};
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

/// The number of chains both schemas create.
const CHAINS: u32 = 64;
/// The recording time of the first batch; later batches are a minute apart.
const T0: Millis = Millis(1_760_000_000_000);
const MINUTE_MS: i64 = 60_000;
/// Completions in the bulk batch (every seventh is revoked in the same batch).
const BULK: usize = 240;

// ---------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------

/// A freshly created and migrated PostgreSQL database of its own.
struct Pg {
    store: PgStore,
    name: String,
}

impl Pg {
    async fn fresh() -> Self {
        let (name, url) = pg::create_database().await;
        let settings = PgSettings {
            url,
            read_url: None,
            pool_connections_max: 4,
            acquire_timeout: Duration::from_secs(10),
        };
        let store = PgStore::connect(&settings, true)
            .await
            .expect("connect to and migrate the test database");
        Self { store, name }
    }

    /// Closes the pool and drops the database.
    async fn drop_database(self) {
        self.store.pool().close().await;
        let admin = sqlx::PgPool::connect(&pg::pg_admin_url())
            .await
            .expect("connect to the test cluster");
        sqlx::query(&format!("drop database if exists {}", self.name))
            .execute(&admin)
            .await
            .expect("drop database");
        admin.close().await;
    }
}

/// A SQLite database file of its own; the file and its WAL files are
/// removed on drop, also when the test fails.
struct Lite {
    store: SqliteStore,
    path: PathBuf,
}

impl Lite {
    async fn fresh() -> Self {
        let path = std::env::temp_dir().join(format!("xuefen-same-bytes-{}.db", uuid::Uuid::new_v4().simple()));
        let settings = SqliteSettings {
            url: format!("sqlite://{}", path.display()),
            pool_connections_max: 4,
        };
        let store = SqliteStore::connect(&settings, true)
            .await
            .expect("open and migrate SQLite");
        Self { store, path }
    }

    /// Closes the pool, then the files go with `self`.
    async fn close(self) {
        self.store.pool().close().await;
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

fn site_id(s: &str) -> SiteId {
    SiteId::parse(s).expect("site id")
}
fn event_id(s: &str) -> EventId {
    EventId::parse(s).expect("event id")
}
fn course_code(s: &str) -> CourseCode {
    CourseCode::parse(s).expect("course code")
}
fn account(s: &str) -> LocalAccount {
    LocalAccount::parse(s).expect("local account")
}
fn learner(i: u8) -> LearnerId {
    LearnerId::from_random([i; 16])
}
fn by_id(i: u8) -> LearnerRef {
    LearnerRef::Id(learner(i))
}
fn by_account(s: &str) -> LearnerRef {
    LearnerRef::Account(account(s))
}

fn site(id: &str, name: &str, region: &str) -> Site {
    Site {
        id: site_id(id),
        name: name.into(),
        level: SiteLevel::County,
        region_code: RegionCode::parse(region).expect("region"),
        status: SiteStatus::Active,
        agreement_starts_at: None,
        agreement_ends_at: None,
    }
}

/// An admin act at a fixed time, so that site changes hash the same.
fn act(minutes: i64, reason: &str) -> SiteAct {
    SiteAct {
        actor: "key_0123456789ab".into(),
        reason: Reason::parse(reason, "reason").expect("reason"),
        at: Millis(T0.0 - 7 * 86_400_000 + minutes * 60_000),
    }
}

fn per_hours(site: &str, code: &str, category: &str, hours_per_credit: i64, cap: i64) -> Course {
    Course {
        site: site_id(site),
        code: course_code(code),
        title: format!("课程 {code}"),
        category: Category::parse(category).expect("category"),
        rule: CreditRule::PerHours {
            hours_per_credit: Hours::from_cents(hours_per_credit),
            cap: Credits::from_cents(cap),
        },
        pass_mark: None,
        rule_version: 1,
        recognition_group: None,
        offered_from: None,
        repeat: xuefen_core::rule::Repeat::EveryCompletion,
    }
}

fn fixed(site: &str, code: &str, category: &str, credits: i64, pass_mark: Option<i64>) -> Course {
    Course {
        site: site_id(site),
        code: course_code(code),
        title: format!("Course {code}"),
        category: Category::parse(category).expect("category"),
        rule: CreditRule::Fixed {
            credits: Credits::from_cents(credits),
        },
        pass_mark: pass_mark.map(Score::from_cents),
        rule_version: 1,
        recognition_group: None,
        offered_from: None,
        repeat: xuefen_core::rule::Repeat::EveryCompletion,
    }
}

/// The xihu course whose terms change between batches (cap 4 → 6).
fn c1(cap: i64) -> Course {
    per_hours("xihu", "c1", "community", 5_00, cap)
}

fn new_learner(i: u8, document: u8) -> NewLearner {
    NewLearner {
        candidate: learner(i),
        document_kind: DocumentKind::ALL[usize::from(i) % DocumentKind::ALL.len()],
        document_hash: [document; 32],
        name: format!("学员 {i}"),
        secret: [i.wrapping_add(0x80); 32],
        wrapped_key: None,
    }
}

fn completion(site: &str, id: &str, course: &str, who: LearnerRef, hours: Option<i64>, score: Option<i64>) -> Event {
    Event {
        site: site_id(site),
        id: event_id(id),
        body: EventBody::Completion(Completion {
            course: course_code(course),
            learner: who,
            completed_at: Millis(T0.0 - 86_400_000),
            score: score.map(Score::from_cents),
            hours: hours.map(Hours::from_cents),
        }),
    }
}

/// The event with another completion time.
fn at(mut event: Event, when: i64) -> Event {
    if let EventBody::Completion(c) = &mut event.body {
        c.completed_at = Millis(when);
    }
    event
}

fn revocation(site: &str, id: &str, target: &str, reason: &str) -> Event {
    Event {
        site: site_id(site),
        id: event_id(id),
        body: EventBody::Revocation(Revocation {
            target: event_id(target),
            code: Reason::code("entered_in_error", "reason_code").expect("code"),
            reason: Reason::parse(reason, "reason").expect("reason"),
        }),
    }
}

const LEARNERS: u8 = 10;

/// What the setup calls returned, to compare across backends.
#[derive(Debug, PartialEq)]
struct SetupResults {
    courses: Vec<(Course, Written)>,
    learners: Vec<(LearnerId, Written)>,
    links: Vec<Written>,
    relink_conflicts: bool,
}

/// Sites, courses, learners and accounts, the same on every backend.
async fn setup(store: &dyn Store) -> SetupResults {
    store
        .create_site(&site("xihu", "西湖区社区学院", "330106"), &act(0, "加入联盟"))
        .await
        .expect("site xihu");
    store
        .create_site(&site("gongshu", "Gongshu learning centre", "330105"), &act(1, "joined"))
        .await
        .expect("site gongshu");
    store
        .set_site_status(
            &site_id("gongshu"),
            SiteStatus::Suspended,
            None,
            &act(2, "stale for 90 days"),
        )
        .await
        .expect("suspend gongshu");
    store
        .set_site_status(
            &site_id("gongshu"),
            SiteStatus::Active,
            Some(Millis(T0.0 + 365 * 86_400_000)),
            &act(3, "content updated; agreement renewed"),
        )
        .await
        .expect("reactivate gongshu");
    let mut courses = Vec::new();
    for course in [
        c1(4_00),
        fixed("xihu", "c2", "vocational", 1_50, Some(60_00)),
        fixed("gongshu", "g1", "elderly", 2_00, None),
        // The same terms again: still version 1.
        fixed("gongshu", "g1", "elderly", 2_00, None),
    ] {
        courses.push(store.put_course(&course).await.expect("course"));
    }
    let mut learners = Vec::new();
    for i in 1..=LEARNERS {
        learners.push(
            store
                .register_learner(&new_learner(i, 0x40 + i))
                .await
                .expect("learner"),
        );
    }
    // Another candidate with learner 3's document finds learner 3.
    learners.push(
        store
            .register_learner(&new_learner(0x33, 0x43))
            .await
            .expect("learner again"),
    );
    let mut links = Vec::new();
    for i in 1..=5u8 {
        let acct = account(&format!("acct-{i}"));
        links.push(
            store
                .link_account(&site_id("xihu"), &acct, &learner(i), None)
                .await
                .expect("link"),
        );
    }
    for (acct, who) in [("g-1", 1), ("g.6@gongshu", 6), ("acct-1", 7)] {
        links.push(
            store
                .link_account(&site_id("gongshu"), &account(acct), &learner(who), None)
                .await
                .expect("link"),
        );
    }
    // Linking again to the same learner is fine; to another is a conflict.
    links.push(
        store
            .link_account(&site_id("xihu"), &account("acct-1"), &learner(1), None)
            .await
            .expect("relink"),
    );
    let relink_conflicts = matches!(
        store
            .link_account(&site_id("xihu"), &account("acct-1"), &learner(2), None)
            .await,
        Err(StoreError::Conflict(_))
    );
    SetupResults {
        courses,
        learners,
        links,
        relink_conflicts,
    }
}

/// One batch: its recording time and its events, each with the outcome it
/// is meant to have (see [`describe`]).
struct Batch {
    now: Millis,
    items: Vec<(&'static str, Event)>,
}

/// The batches of the scenario. Before the third batch (index 2) course
/// c1's cap changes (rule version 2).
fn batches() -> Vec<Batch> {
    let t = |minutes: i64| Millis(T0.0 + minutes * MINUTE_MS);
    let mut out = vec![
        Batch {
            now: t(0),
            items: vec![
                (
                    "accepted:awarded",
                    completion("xihu", "e1", "c1", by_id(1), Some(10_00), None),
                ),
                (
                    "accepted:awarded",
                    completion("xihu", "e2", "c1", by_account("acct-2"), Some(7_33), None),
                ),
                (
                    "accepted:not_passed",
                    completion("xihu", "e3", "c2", by_account("acct-3"), None, Some(59_99)),
                ),
                (
                    "accepted:awarded",
                    completion("xihu", "e4", "c2", by_id(4), None, Some(60_00)),
                ),
                (
                    "accepted:awarded",
                    completion("xihu", "e5", "c1", by_id(5), Some(100_00), None),
                ),
                (
                    "accepted:awarded",
                    completion("gongshu", "g1-1", "g1", by_account("g-1"), None, None),
                ),
                (
                    "accepted:awarded",
                    completion("gongshu", "g1-2", "g1", by_id(6), None, None),
                ),
                // The same account name at another site is another learner.
                (
                    "accepted:awarded",
                    completion("gongshu", "e1", "g1", by_account("acct-1"), None, None),
                ),
                // Ids that differ only in case are different events.
                (
                    "accepted:awarded",
                    completion("xihu", "case-A", "c1", by_id(7), Some(5_00), None),
                ),
                (
                    "accepted:awarded",
                    completion("xihu", "case-a", "c1", by_id(8), Some(5_01), None),
                ),
                // Both ends of the accepted completion times.
                (
                    "accepted:awarded",
                    at(
                        completion("xihu", "e6", "c1", by_id(9), Some(1), None),
                        COMPLETED_AT_MIN_MS,
                    ),
                ),
                (
                    "accepted:awarded",
                    at(
                        completion("xihu", "e7", "c1", by_id(10), Some(19_99), None),
                        T0.0 + COMPLETED_AT_FUTURE_SKEW_MS,
                    ),
                ),
                // Repeated within the batch: once the same, once different.
                ("duplicate", completion("xihu", "e1", "c1", by_id(1), Some(10_00), None)),
                (
                    "conflict:hours",
                    completion("xihu", "e1", "c1", by_id(1), Some(10_01), None),
                ),
            ],
        },
        Batch {
            now: t(1),
            items: vec![
                ("duplicate", completion("xihu", "e1", "c1", by_id(1), Some(10_00), None)),
                // The account names learner 2: the same event by id is a duplicate.
                ("duplicate", completion("xihu", "e2", "c1", by_id(2), Some(7_33), None)),
                (
                    "conflict:hours",
                    completion("xihu", "e2", "c1", by_account("acct-2"), Some(7_34), None),
                ),
                (
                    "conflict:course",
                    completion("xihu", "e4", "c1", by_id(4), None, Some(60_00)),
                ),
                (
                    "conflict:learner",
                    completion("xihu", "e5", "c1", by_id(4), Some(100_00), None),
                ),
                (
                    "conflict:completed_at",
                    at(completion("xihu", "e6", "c1", by_id(9), Some(1), None), T0.0),
                ),
                (
                    "conflict:score",
                    completion("xihu", "e3", "c2", by_account("acct-3"), None, Some(59_98)),
                ),
                (
                    "accepted:reversal",
                    revocation("xihu", "r1", "e1", "录入错误 (entered in error) ✓"),
                ),
                ("rejected:already_revoked", revocation("xihu", "r2", "e1", "again")),
                (
                    "rejected:target_not_revocable",
                    revocation("xihu", "r3", "r1", "revoking a revocation"),
                ),
                ("rejected:unknown_target", revocation("xihu", "r4", "nope", "")),
                // Revocations are scoped to the site: gongshu's e1 is its own.
                ("accepted:reversal", revocation("gongshu", "rg1", "g1-1", "")),
                (
                    "accepted:reversal",
                    revocation("gongshu", "rg2", "e1", "gongshu's own e1"),
                ),
                // A not-passed completion can be revoked too (zero credits).
                ("accepted:reversal", revocation("xihu", "r5", "e3", "wrong learner ")),
                (
                    "rejected:unknown_learner",
                    completion("xihu", "x1", "c1", by_id(0xee), Some(5_00), None),
                ),
                (
                    "rejected:unknown_learner",
                    completion("xihu", "x2", "c1", by_account("acct-99"), Some(5_00), None),
                ),
                (
                    "rejected:unknown_learner",
                    completion("xihu", "x3", "c1", by_account("g-1"), Some(5_00), None),
                ),
                (
                    "rejected:unknown_course",
                    completion("xihu", "x4", "g1", by_id(1), None, None),
                ),
                (
                    "rejected:rule_needs_field",
                    completion("xihu", "x5", "c1", by_id(1), None, None),
                ),
                (
                    "rejected:rule_needs_field",
                    completion("xihu", "x6", "c2", by_id(1), None, None),
                ),
                (
                    "rejected:completed_at_out_of_range",
                    at(
                        completion("xihu", "x7", "c1", by_id(1), Some(5_00), None),
                        t(1).0 + COMPLETED_AT_FUTURE_SKEW_MS + 1,
                    ),
                ),
                (
                    "rejected:completed_at_out_of_range",
                    at(
                        completion("xihu", "x8", "c1", by_id(1), Some(5_00), None),
                        COMPLETED_AT_MIN_MS - 1,
                    ),
                ),
            ],
        },
        // Course c1 now caps at 6 credits (rule version 2).
        Batch {
            now: t(2),
            items: vec![
                (
                    "rejected:already_revoked",
                    revocation("xihu", "r6", "e1", "a third time, in a later batch"),
                ),
                (
                    "duplicate",
                    revocation("xihu", "r1", "e1", "录入错误 (entered in error) ✓"),
                ),
                ("conflict:reason", revocation("xihu", "r1", "e1", "another reason")),
                (
                    "conflict:target_event_id",
                    revocation("xihu", "r1", "e2", "录入错误 (entered in error) ✓"),
                ),
                ("conflict:kind", revocation("xihu", "e1", "e2", "")),
                (
                    "conflict:kind",
                    completion("xihu", "r1", "c1", by_id(1), Some(10_00), None),
                ),
                (
                    "accepted:awarded",
                    completion("xihu", "e9", "c1", by_id(1), Some(30_00), None),
                ),
                // Written under version 1; the same content is still a duplicate.
                (
                    "duplicate",
                    completion("xihu", "e5", "c1", by_id(5), Some(100_00), None),
                ),
                ("accepted:reversal", revocation("xihu", "r7", "e5", "")),
                (
                    "rejected:unknown_learner",
                    completion("xihu", "x9", "c1", by_id(0x33), Some(5_00), None),
                ),
                // The learner registered twice is one learner.
                (
                    "accepted:awarded",
                    completion("xihu", "e10", "c1", by_id(3), Some(12_34), None),
                ),
            ],
        },
        // An empty batch changes nothing.
        Batch {
            now: t(3),
            items: Vec::new(),
        },
    ];

    // Many entries per chain, and revocations of events of the same batch.
    let mut bulk = Vec::new();
    for n in 0..BULK {
        let who = if n % 3 == 0 {
            by_account(&format!("acct-{}", n % 5 + 1))
        } else {
            by_id((n % usize::from(LEARNERS)) as u8 + 1)
        };
        let hours = 1_00 + (n as i64 * 37) % 19_00;
        let event = completion("xihu", &format!("bulk-{n:03}"), "c1", who, Some(hours), None);
        bulk.push(("accepted:awarded", at(event, T0.0 - n as i64 * 3_600_001)));
        if n % 7 == 0 {
            bulk.push((
                "accepted:reversal",
                revocation("xihu", &format!("bulk-rev-{n:03}"), &format!("bulk-{n:03}"), "bulk"),
            ));
        }
    }
    out.push(Batch { now: t(4), items: bulk });

    out.push(Batch {
        now: Millis(t(5).0 + 999),
        items: vec![
            (
                "rejected:already_revoked",
                revocation("xihu", "bulk-rev-again", "bulk-000", ""),
            ),
            ("duplicate", revocation("xihu", "bulk-rev-007", "bulk-007", "bulk")),
            (
                "accepted:reversal",
                revocation("xihu", "bulk-rev-001", "bulk-001", "late"),
            ),
            ("accepted:reversal", revocation("xihu", "r8", "e9", "")),
            (
                "accepted:awarded",
                completion("gongshu", "g1-3", "g1", by_account("g.6@gongshu"), None, None),
            ),
        ],
    });
    out
}

/// An outcome in a few words: `accepted:<kind>`, `duplicate`,
/// `conflict:<field>` or `rejected:<code>`.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted { kind, .. } => format!("accepted:{}", kind.as_str()),
        Outcome::Duplicate { .. } => "duplicate".into(),
        Outcome::Conflict { field, .. } => format!("conflict:{field}"),
        Outcome::Rejected(r) => format!("rejected:{}", r.code),
    }
}

/// What the scenario returned on one backend.
struct Transcript {
    setup: SetupResults,
    /// Rule version and written-ness of the course change between batches.
    course_change: (Course, Written),
    outcomes: Vec<Vec<Outcome>>,
}

/// Runs the whole scenario on `store`, checking each outcome against what
/// the scenario means it to be.
async fn run_scenario(store: &dyn Store, backend: &str) -> Transcript {
    let setup = setup(store).await;
    let mut course_change = None;
    let mut outcomes = Vec::new();
    for (b, batch) in batches().into_iter().enumerate() {
        if b == 2 {
            course_change = Some(store.put_course(&c1(6_00)).await.expect("change course"));
        }
        let (expected, events): (Vec<&str>, Vec<Event>) = batch.items.into_iter().unzip();
        let got = store.ingest(&events, batch.now).await.expect("ingest");
        assert_eq!(got.len(), events.len(), "{backend}: one outcome per event in batch {b}");
        for (i, (want, outcome)) in expected.iter().zip(&got).enumerate() {
            assert_eq!(
                describe(outcome),
                *want,
                "{backend}: batch {b} item {i} ({}): {outcome:?}",
                events[i].id
            );
        }
        outcomes.push(got);
    }
    Transcript {
        setup,
        course_change: course_change.expect("the course changed"),
        outcomes,
    }
}

/// Every chain's entries, streamed, in chain order.
async fn all_entries(store: &dyn Store) -> Vec<Vec<Entry>> {
    let mut chains = Vec::new();
    for chain in 0..CHAINS {
        let entries: Vec<Entry> = store
            .chain_entries(chain)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("entries of chain {chain}: {e}"));
        chains.push(entries);
    }
    chains
}

async fn heads(store: &dyn Store) -> Vec<(u32, Head)> {
    let heads = store.heads().await.expect("heads");
    assert_eq!(
        heads.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        (0..CHAINS).collect::<Vec<_>>(),
        "one head per chain, in chain order"
    );
    heads
}

/// Asserts that two backends hold the same ledger, entry for entry.
fn assert_same_ledger(a: (&str, &[Vec<Entry>]), b: (&str, &[Vec<Entry>])) {
    for (chain, (xs, ys)) in a.1.iter().zip(b.1).enumerate() {
        assert_eq!(
            xs.len(),
            ys.len(),
            "chain {chain}: {} has {} entries, {} has {}",
            a.0,
            xs.len(),
            b.0,
            ys.len()
        );
        for (x, y) in xs.iter().zip(ys) {
            assert_eq!(
                x, y,
                "chain {chain} position {}: {} and {} differ",
                x.position.seq, a.0, b.0
            );
        }
    }
    assert_eq!(a.1.len(), b.1.len());
}

async fn verified(store: &dyn Store, backend: &str) -> VerifyReport {
    verify_ledger(store, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{backend}: the ledger does not verify: {e}"))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_stream_yields_the_same_chain_heads_on_both_backends() {
    let pg = Pg::fresh().await;
    let lite = Lite::fresh().await;

    let on_pg = run_scenario(&pg.store, "postgres").await;
    let on_lite = run_scenario(&lite.store, "sqlite").await;

    assert_eq!(on_pg.setup, on_lite.setup, "setup results differ");
    assert_eq!(
        on_lite.setup.learners[LEARNERS as usize],
        (learner(3), Written::Existing)
    );
    assert!(on_lite.setup.relink_conflicts && on_pg.setup.relink_conflicts);
    assert_eq!(on_pg.course_change, on_lite.course_change, "the course change differs");
    assert_eq!(on_lite.course_change.0.rule_version, 2);
    assert_eq!(on_pg.outcomes.len(), on_lite.outcomes.len());
    for (b, (p, l)) in on_pg.outcomes.iter().zip(&on_lite.outcomes).enumerate() {
        assert_eq!(p, l, "batch {b}: outcomes differ (left postgres, right sqlite)");
    }

    let (pg_heads, lite_heads) = (heads(&pg.store).await, heads(&lite.store).await);
    for ((chain, p), (_, l)) in pg_heads.iter().zip(&lite_heads) {
        assert_eq!(
            p,
            l,
            "chain {chain}: heads differ (postgres seq {} {}, sqlite seq {} {})",
            p.seq,
            hex::encode(p.hash),
            l.seq,
            hex::encode(l.hash)
        );
    }

    let (pg_entries, lite_entries) = (all_entries(&pg.store).await, all_entries(&lite.store).await);
    assert_same_ledger(("postgres", &pg_entries), ("sqlite", &lite_entries));
    let total: usize = lite_entries.iter().map(Vec::len).sum();
    let accepted = on_lite
        .outcomes
        .iter()
        .flatten()
        .filter(|o| matches!(o, Outcome::Accepted { .. }))
        .count();
    assert_eq!(total, accepted, "one entry per accepted event");
    let used = lite_heads.iter().filter(|(_, h)| h.seq > 0).count();
    assert!(used >= 5, "the scenario spreads over several chains, got {used}");

    // Entries read by key and by learner agree too.
    for batch in batches() {
        for (_, event) in batch.items {
            let p = pg
                .store
                .entry_by_event(&event.site, &event.id)
                .await
                .expect("entry by event");
            let l = lite
                .store
                .entry_by_event(&event.site, &event.id)
                .await
                .expect("entry by event");
            assert_eq!(p, l, "entry of {}/{} differs", event.site, event.id);
        }
    }
    for i in 1..=LEARNERS {
        let p = pg.store.learner_entries(&learner(i)).await.expect("learner entries");
        let l = lite.store.learner_entries(&learner(i)).await.expect("learner entries");
        assert_eq!(p, l, "entries of learner {i} differ");
    }

    let (pg_report, lite_report) = (
        verified(&pg.store, "postgres").await,
        verified(&lite.store, "sqlite").await,
    );
    assert_eq!(pg_report, lite_report);
    // The alliance chain: two creations, a suspension and a reactivation.
    let (pg_alliance, lite_alliance) = (
        pg.store.alliance_head().await.expect("alliance head"),
        lite.store.alliance_head().await.expect("alliance head"),
    );
    assert_eq!(pg_alliance, lite_alliance, "alliance chain heads differ");
    assert_eq!(lite_alliance.seq, 4);
    let changes = lite.store.site_changes(&site_id("gongshu")).await.expect("changes");
    assert_eq!(
        changes,
        pg.store.site_changes(&site_id("gongshu")).await.expect("changes")
    );
    assert_eq!(
        lite_report,
        VerifyReport {
            chains: u64::from(CHAINS),
            entries: total as u64,
            site_changes: 4,
        }
    );

    lite.close().await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_exported_from_one_backend_verifies_from_the_other() {
    let lite = Lite::fresh().await;
    run_scenario(&lite.store, "sqlite").await;
    let lite_heads = heads(&lite.store).await;
    let lite_entries = all_entries(&lite.store).await;
    let lite_report = verified(&lite.store, "sqlite").await;

    // Copy the ledger row by row into an empty PostgreSQL ledger.
    let pg = Pg::fresh().await;
    let mut tx = pg.store.pool().begin().await.expect("begin");
    for entry in lite_entries.iter().flatten() {
        let r = EntryRecord::from(entry);
        let small = |v: i64, what: &str| i32::try_from(v).unwrap_or_else(|_| panic!("{what} {v} out of range"));
        sqlx::query(
            "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason, recognition_group,
                    withheld_cents, learner_commitment, reason_note)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                    $21, $22, $23, $24)",
        )
        .bind(small(r.chain_id, "chain_id"))
        .bind(r.seq)
        .bind(r.prev_hash)
        .bind(r.hash)
        .bind(i16::try_from(r.kind).expect("kind fits smallint"))
        .bind(r.site_id)
        .bind(r.event_id)
        .bind(r.learner_id)
        .bind(r.course_code)
        .bind(r.category)
        .bind(r.credits_cents)
        .bind(r.occurred_at_ms)
        .bind(r.recorded_at_ms)
        .bind(r.score_cents)
        .bind(r.hours_cents)
        .bind(small(r.rule_version, "rule_version"))
        .bind(r.refers_chain.map(|c| small(c, "refers_chain")))
        .bind(r.refers_seq)
        .bind(r.target_event)
        .bind(r.reason)
        .bind(r.recognition_group)
        .bind(r.withheld_cents)
        .bind(r.learner_commitment)
        .bind(r.reason_note)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("insert entry {}: {e}", entry.position));
    }
    // The alliance chain: its sites, its site changes and its head.
    for site in lite.store.sites().await.expect("sites") {
        sqlx::query(
            "insert into sites (id, name, level, region_code, status, agreement_starts_at_ms, agreement_ends_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(site.id.as_str())
        .bind(&site.name)
        .bind(site.level.as_str())
        .bind(site.region_code.as_str())
        .bind(site.status.as_str())
        .bind(site.agreement_starts_at.map(|m| m.0))
        .bind(site.agreement_ends_at.map(|m| m.0))
        .execute(&mut *tx)
        .await
        .expect("insert site");
    }
    let changes: Vec<_> = lite.store.alliance_entries().try_collect().await.expect("site changes");
    assert_eq!(changes.len(), 4);
    for change in &changes {
        let r = xuefen_store::records::SiteChangeRecord::from(change);
        sqlx::query(
            "insert into site_changes (seq, prev_hash, hash, site_id, from_status, to_status, actor, reason, at_ms,
                    agreement_starts_at_ms, agreement_ends_at_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(r.seq)
        .bind(r.prev_hash)
        .bind(r.hash)
        .bind(r.site_id)
        .bind(r.from_status)
        .bind(r.to_status)
        .bind(r.actor)
        .bind(r.reason)
        .bind(r.at_ms)
        .bind(r.agreement_starts_at_ms)
        .bind(r.agreement_ends_at_ms)
        .execute(&mut *tx)
        .await
        .expect("insert site change");
    }
    let alliance = lite.store.alliance_head().await.expect("alliance head");
    sqlx::query("update alliance_head set seq = $1, hash = $2")
        .bind(i64::try_from(alliance.seq).expect("seq"))
        .bind(alliance.hash.to_vec())
        .execute(&mut *tx)
        .await
        .expect("update alliance head");
    for (chain, head) in &lite_heads {
        let done = sqlx::query("update chain_heads set seq = $2, hash = $3 where chain_id = $1")
            .bind(i32::try_from(*chain).expect("chain id"))
            .bind(i64::try_from(head.seq).expect("seq"))
            .bind(head.hash.to_vec())
            .execute(&mut *tx)
            .await
            .expect("update chain head");
        assert_eq!(done.rows_affected(), 1, "chain {chain} has a head row");
    }
    tx.commit().await.expect("commit");

    // Read back through the PostgreSQL store: the same ledger, and it verifies.
    assert_eq!(heads(&pg.store).await, lite_heads);
    assert_same_ledger(("sqlite", &lite_entries), ("postgres", &all_entries(&pg.store).await));
    assert_eq!(verified(&pg.store, "postgres (imported)").await, lite_report);

    // Alter one credits value in the middle of the longest chain.
    let (chain, entries) = lite_entries
        .iter()
        .enumerate()
        .max_by_key(|(_, e)| e.len())
        .expect("chains");
    assert!(entries.len() >= 3, "the longest chain has {} entries", entries.len());
    let target = entries[entries.len() / 2].position;
    let chain = u32::try_from(chain).expect("chain");
    assert_eq!(target.chain, chain);
    let mut conn = pg.store.pool().acquire().await.expect("connection");
    let alter = "update ledger_entries set credits_cents = credits_cents + 1 where chain_id = $1 and seq = $2";
    let refused = sqlx::query(alter)
        .bind(chain as i32)
        .bind(target.seq as i64)
        .execute(&mut *conn)
        .await
        .expect_err("the append-only trigger refuses updates");
    assert!(refused.to_string().contains("append-only"), "{refused}");
    sqlx::query("set session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .expect("bypass the trigger");
    let done = sqlx::query(alter)
        .bind(chain as i32)
        .bind(target.seq as i64)
        .execute(&mut *conn)
        .await
        .expect("alter an entry");
    assert_eq!(done.rows_affected(), 1);
    sqlx::query("set session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .expect("restore the trigger");
    drop(conn);

    match verify_ledger(&pg.store, |_| {}).await {
        Err(VerifyFailure::Chain(e)) => {
            assert_eq!(e.position, target, "{e}");
            assert_eq!(e.fault, Fault::HashMismatch, "{e}");
            let message = e.to_string();
            assert!(
                message.contains(&format!("chain {} position {}", target.chain, target.seq)),
                "{message}"
            );
        }
        other => panic!("verification must fail at {target}, got {other:?}"),
    }
    // The SQLite original is untouched and still verifies.
    assert_eq!(verified(&lite.store, "sqlite").await, lite_report);

    lite.close().await;
    pg.drop_database().await;
}
