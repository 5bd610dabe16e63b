//! Property test of the alliance statistics: for random ledgers built
//! through a real store (PostgreSQL and SQLite), every site's figures for a
//! year equal a brute-force recount over the chain entries and the account
//! links the test made.

#[path = "support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use proptest::prelude::*;
use xuefen_core::amount::Credits;
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{
    Category, CourseCode, EventId, LearnerId, LocalAccount, RegionCode, SiteId, SiteLevel, SiteStatus,
};
use xuefen_core::rule::CreditRule;
use xuefen_store::{Course, NewLearner, Site, SiteAct, SiteYearStats, StatsRule, Store};
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

const SITES: usize = 3;
const LEARNERS: usize = 6;
/// Credits of the two courses of every site.
const COURSE_CENTS: [i64; 2] = [5_00, 7_50];
const RULE: StatsRule = StatsRule {
    credits_each: Credits::from_cents(20_00),
    star_credits: Credits::from_cents(30_00),
};

fn site_id(n: usize) -> SiteId {
    SiteId::parse(format!("site-{n}")).expect("site id")
}
fn learner(n: usize) -> LearnerId {
    LearnerId::from_random([n as u8 + 1; 16])
}
fn now() -> Millis {
    Millis::from_datetime(time::OffsetDateTime::now_utc())
}

#[derive(Debug, Clone)]
enum Op {
    Complete {
        learner: usize,
        site: usize,
        course: usize,
        year: i32,
        day: i64,
    },
    Revoke {
        index: usize,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..LEARNERS, 0..SITES, 0..2usize, 2025..=2026i32, 0..365i64)
            .prop_map(|(learner, site, course, year, day)| Op::Complete { learner, site, course, year, day }),
        1 => any::<usize>().prop_map(|index| Op::Revoke { index }),
    ]
}

fn events_of(ops: &[Op]) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let event = match op {
            Op::Complete {
                learner: who,
                site,
                course,
                year,
                day,
            } => {
                let (start, _) = Millis::cst_year_bounds(*year);
                Event {
                    site: site_id(*site),
                    id: EventId::parse(format!("e{i}")).expect("id"),
                    body: EventBody::Completion(Completion {
                        course: CourseCode::parse(format!("C{course}")).expect("code"),
                        learner: LearnerRef::Id(learner(*who)),
                        completed_at: Millis(start.0 + day * 86_400_000 + 3_600_000),
                        score: None,
                        hours: None,
                    }),
                }
            }
            Op::Revoke { index } if !events.is_empty() => {
                let target = &events[index % events.len()];
                Event {
                    site: target.site.clone(),
                    id: EventId::parse(format!("r{i}")).expect("id"),
                    body: EventBody::Revocation(Revocation {
                        target: target.id.clone(),
                        code: Reason::code("recount", "reason_code").expect("code"),
                        reason: Reason::parse("recount", "reason").expect("reason"),
                    }),
                }
            }
            Op::Revoke { .. } => continue,
        };
        events.push(event);
    }
    events
}

/// Builds the ledger; returns the links made and the CST year they were made in.
async fn build(store: &dyn Store, links: &[(usize, usize)], events: &[Event]) -> (BTreeSet<(usize, usize)>, i32) {
    let act = SiteAct {
        actor: "cli".into(),
        reason: Reason::parse("test", "reason").expect("reason"),
        at: now(),
    };
    for s in 0..SITES {
        let site = Site {
            id: site_id(s),
            name: format!("site {s}"),
            level: SiteLevel::County,
            region_code: RegionCode::parse("330106").expect("region"),
            status: SiteStatus::Active,
            agreement_starts_at: None,
            agreement_ends_at: None,
        };
        store.create_site(&site, &act).await.expect("site");
        for (c, cents) in COURSE_CENTS.iter().enumerate() {
            let course = Course {
                site: site_id(s),
                code: CourseCode::parse(format!("C{c}")).expect("code"),
                title: "t".into(),
                category: Category::parse(if c == 0 { "community" } else { "vocational" }).expect("category"),
                rule: CreditRule::Fixed {
                    credits: Credits::from_cents(*cents),
                },
                pass_mark: None,
                rule_version: 1,
                recognition_group: None,
                offered_from: None,
                repeat: Default::default(),
            };
            store.put_course(&course).await.expect("course");
        }
    }
    for l in 0..LEARNERS {
        let new = NewLearner {
            candidate: learner(l),
            document_kind: DocumentKind::Passport,
            document_hash: [l as u8 + 1; 32],
            name: format!("learner {l}"),
            secret: [l as u8; 32],
            wrapped_key: None,
        };
        store.register_learner(&new).await.expect("learner");
    }
    let before = now().year_cst();
    let mut made = BTreeSet::new();
    for (s, l) in links {
        let account = LocalAccount::parse(format!("acct-{l}")).expect("account");
        store
            .link_account(&site_id(*s), &account, &learner(*l), None)
            .await
            .expect("link");
        made.insert((*s, *l));
    }
    assert_eq!(before, now().year_cst(), "the links straddle a new year; run again");
    for chunk in events.chunks(7) {
        store.ingest(chunk, now()).await.expect("ingest");
    }
    (made, before)
}

async fn all_entries(store: &dyn Store) -> Vec<Entry> {
    let mut out = Vec::new();
    for (chain, _) in store.heads().await.expect("heads") {
        let entries: Vec<Entry> = store.chain_entries(chain).try_collect().await.expect("entries");
        out.extend(entries);
    }
    out
}

/// The figures recounted by brute force.
fn recount(entries: &[Entry], links: &BTreeSet<(usize, usize)>, links_year: i32, year: i32) -> Vec<SiteYearStats> {
    let in_year: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.body.occurred_at.year_cst() == year)
        .collect();
    let mut learner_year: HashMap<LearnerId, i64> = HashMap::new();
    for e in &in_year {
        *learner_year.entry(e.body.learner.clone()).or_default() += e.body.credits.cents();
    }
    (0..SITES)
        .map(|s| {
            let site = site_id(s);
            let mut per: BTreeMap<LearnerId, (i64, bool)> = BTreeMap::new();
            for e in in_year.iter().filter(|e| e.body.site == site) {
                let slot = per.entry(e.body.learner.clone()).or_default();
                slot.0 += e.body.credits.cents();
                slot.1 |= e.body.kind != EntryKind::Reversal;
            }
            let regs: Vec<LearnerId> = if year == links_year {
                links
                    .iter()
                    .filter(|(ls, _)| *ls == s)
                    .map(|(_, l)| learner(*l))
                    .collect()
            } else {
                Vec::new()
            };
            let each = RULE.credits_each.cents();
            SiteYearStats {
                site,
                registrations: regs.len() as u64,
                registrations_with_credits: regs
                    .iter()
                    .filter(|l| learner_year.get(*l).copied().unwrap_or(0) >= each)
                    .count() as u64,
                learners_active: per.values().filter(|(_, active)| *active).count() as u64,
                learners_with_credits: per.values().filter(|(c, _)| *c >= each).count() as u64,
                credits: Credits::from_cents(per.values().map(|(c, _)| c).sum()),
                learning_stars: per.values().filter(|(c, _)| *c >= RULE.star_credits.cents()).count() as u64,
            }
        })
        .collect()
}

async fn check(store: Arc<dyn Store>, links: Vec<(usize, usize)>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let events = events_of(&ops);
    let (made, links_year) = build(&*store, &links, &events).await;
    let entries = all_entries(&*store).await;
    for year in [2025, 2026, links_year] {
        let got = store.site_year_stats(None, year, RULE).await.expect("stats");
        prop_assert_eq!(&got, &recount(&entries, &made, links_year, year), "year {}", year);
        let one = store
            .site_year_stats(Some(&site_id(1)), year, RULE)
            .await
            .expect("stats");
        prop_assert_eq!(one.as_slice(), &got[1..2]);
    }
    Ok(())
}

fn arb_case() -> impl Strategy<Value = (Vec<(usize, usize)>, Vec<Op>)> {
    (
        proptest::collection::btree_set((0..SITES, 0..LEARNERS), 0..10).prop_map(|s| s.into_iter().collect()),
        proptest::collection::vec(arb_op(), 0..60),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// On SQLite, every figure of every site and year equals a brute-force
    /// recount from the ledger and the links.
    #[test]
    fn sqlite_statistics_equal_a_recount_of_the_ledger((links, ops) in arb_case()) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let path = std::env::temp_dir().join(format!("xuefen-stats-{}.db", uuid::Uuid::new_v4().simple()));
            let settings = SqliteSettings { url: format!("sqlite://{}", path.display()), pool_connections_max: 2 };
            let store = SqliteStore::connect(&settings, true).await.expect("open SQLite");
            let result = check(Arc::new(store.clone()), links, ops).await;
            store.pool().close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            result
        })?;
    }

    /// On PostgreSQL, likewise.
    #[test]
    fn postgres_statistics_equal_a_recount_of_the_ledger((links, ops) in arb_case()) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let (name, url) = pg::create_database().await;
            let settings = PgSettings { url, read_url: None, pool_connections_max: 2, acquire_timeout: Duration::from_secs(10) };
            let store = PgStore::connect(&settings, true).await.expect("connect");
            let result = check(Arc::new(store.clone()), links, ops).await;
            store.pool().close().await;
            let admin = sqlx::PgPool::connect(&pg::pg_admin_url()).await.expect("admin");
            sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&admin).await.expect("drop");
            admin.close().await;
            result
        })?;
    }
}
