//! The scenarios of the conformance suite, each an `async fn` over a fresh
//! database of a [`Backend`]. [`conformance_tests!`](crate::conformance_tests)
//! lists every one of them; a scenario missing from that list does not run.

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

// ---------------------------------------------------------------------------
// Schema, sites, keys, learners, accounts, courses
// ---------------------------------------------------------------------------

/// A migrated database has 64 empty chains, a current schema and an empty
/// ledger that verifies.
pub async fn migrations_give_empty_chains_and_a_ready_schema<B: Backend>(db: &B) {
    let store = db.store();
    store.ready().await.expect("schema is current");
    let heads = store.heads().await.expect("heads");
    assert_eq!(heads.len(), CHAINS as usize);
    for (i, (chain, head)) in heads.iter().enumerate() {
        assert_eq!((*chain, *head), (i as u32, Head::EMPTY), "chain {i} starts empty");
    }
    let report = verify_ledger(store.as_ref(), |_| {})
        .await
        .expect("empty ledger verifies");
    assert_eq!((report.chains, report.entries), (u64::from(CHAINS), 0));
    assert_eq!(entry_count(db).await, 0);
}

pub async fn sites_and_keys_round_trip<B: Backend>(db: &B) {
    let store = db.store();
    let xihu = site(site_id());
    store.create_site(&xihu, &act("joined")).await.expect("site");
    assert!(
        matches!(
            store.create_site(&xihu, &act("joined")).await,
            Err(StoreError::Conflict(_))
        ),
        "a site id is unique"
    );
    // A site joins under an agreement of three years from the act by default.
    let with_agreement = |s: crate::Site| crate::Site {
        agreement_starts_at: Some(NOW),
        agreement_ends_at: Some(Millis(NOW.0 + xuefen_core::site_log::AGREEMENT_DEFAULT_MS)),
        ..s
    };
    let xihu = with_agreement(xihu);
    assert_eq!(store.site(&site_id()).await.expect("site"), Some(xihu.clone()));
    assert_eq!(store.site(&other_site_id()).await.expect("site"), None);
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
    let other = with_agreement(site(other_site_id()));
    assert_eq!(
        store.sites().await.expect("sites"),
        vec![other, xihu],
        "sites in id order"
    );
    let suspended = store
        .set_site_status(&site_id(), SiteStatus::Suspended, None, &act("stale"))
        .await
        .expect("status");
    assert_eq!(suspended.0.status, SiteStatus::Suspended);
    let nowhere = xuefen_core::ids::SiteId::parse("nowhere").expect("id");
    assert!(matches!(
        store
            .set_site_status(&nowhere, SiteStatus::Active, None, &act("revived"))
            .await,
        Err(StoreError::NotFound)
    ));

    assert!(!store.admin_key_exists().await.expect("admin?"));
    let admin = NewKey {
        id: "k_admin".into(),
        principal: Principal::Admin,
        secret_hash: [1; 32],
    };
    let site_key = NewKey {
        id: "k_site".into(),
        principal: Principal::Site(site_id()),
        secret_hash: [2; 32],
    };
    store.create_key(&admin).await.expect("admin key");
    store.create_key(&site_key).await.expect("site key");
    assert!(
        matches!(store.create_key(&site_key).await, Err(StoreError::Conflict(_))),
        "a key id and a secret are unique"
    );
    assert!(store.admin_key_exists().await.expect("admin?"));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup").expect("found");
    assert_eq!(found.principal, Principal::Site(site_id()));
    assert_eq!(found.site_status, Some(SiteStatus::Suspended));
    assert!(!found.revoked);
    store.revoke_key("k_site").await.expect("revoke");
    store
        .revoke_key("k_site")
        .await
        .expect("revoking again is not an error");
    assert!(matches!(store.revoke_key("k_none").await, Err(StoreError::NotFound)));
    let found = store.key_by_hash(&[2; 32]).await.expect("lookup");
    assert!(found.is_some_and(|k| k.revoked));
    let admin_found = store.key_by_hash(&[1; 32]).await.expect("lookup");
    assert!(admin_found.is_some_and(|k| k.principal == Principal::Admin && k.site_status.is_none()));
    assert!(store.key_by_hash(&[3; 32]).await.expect("lookup").is_none());
}

/// One real person is one learner: the document hash decides, whatever
/// candidate id a second registration brings.
pub async fn registering_the_same_person_twice_finds_one_learner<B: Backend>(db: &B) {
    let store = db.store();
    let first = person(1);
    let (id, written) = store.register_learner(&first).await.expect("register");
    assert_eq!((&id, written), (&first.candidate, Written::Created));
    let again = NewLearner {
        candidate: xuefen_core::ids::LearnerId::from_random([0xee; 16]),
        name: "Another spelling".into(),
        ..first.clone()
    };
    let (found, written) = store.register_learner(&again).await.expect("register again");
    assert_eq!((&found, written), (&id, Written::Existing));
    assert!(store.learner_exists(&id).await.expect("exists"));
    assert!(
        !store.learner_exists(&again.candidate).await.expect("exists"),
        "the second candidate id was not used"
    );
    let (other, written) = store.register_learner(&person(2)).await.expect("register");
    assert_ne!(other, id);
    assert_eq!(written, Written::Created);
    assert_eq!(db.query_i64("select count(*) from learners").await.expect("count"), 2);
}

/// Sixteen sites registering the same person at once reach one learner.
pub async fn concurrent_registrations_of_one_person_make_one_learner<B: Backend>(db: &B) {
    let store = db.store();
    let mut tasks = Vec::new();
    for n in 0..16u8 {
        let store = Arc::clone(&store);
        let attempt = NewLearner {
            candidate: xuefen_core::ids::LearnerId::from_random([0x40 + n; 16]),
            ..person(7)
        };
        tasks.push(tokio::spawn(async move { store.register_learner(&attempt).await }));
    }
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (id, written) = t.await.expect("task").expect("register");
        ids.insert(id);
        created += usize::from(written == Written::Created);
    }
    assert_eq!(ids.len(), 1, "one learner id for one person: {ids:?}");
    assert_eq!(created, 1, "exactly one registration created the learner");
    assert_eq!(db.query_i64("select count(*) from learners").await.expect("count"), 1);
}

pub async fn an_account_links_to_one_learner_only<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
    let (a, _) = store.register_learner(&person(1)).await.expect("register");
    let (b, _) = store.register_learner(&person(2)).await.expect("register");
    let u1 = account("u-1");

    assert!(!store.site_knows_learner(&site_id(), &a).await.expect("knows"));
    assert_eq!(
        store.link_account(&site_id(), &u1, &a, None).await.expect("link"),
        Written::Created
    );
    assert_eq!(
        store.link_account(&site_id(), &u1, &a, None).await.expect("link again"),
        Written::Existing
    );
    assert!(
        matches!(
            store.link_account(&site_id(), &u1, &b, None).await,
            Err(StoreError::Conflict(_))
        ),
        "an account cannot move to another learner"
    );
    // The same account name at another site is another account.
    assert_eq!(
        store.link_account(&other_site_id(), &u1, &b, None).await.expect("link"),
        Written::Created
    );
    // A learner may have accounts at several sites, and several at one.
    assert_eq!(
        store
            .link_account(&site_id(), &account("u-1-bis"), &a, None)
            .await
            .expect("link"),
        Written::Created
    );
    assert!(store.site_knows_learner(&site_id(), &a).await.expect("knows"));
    assert!(!store.site_knows_learner(&site_id(), &b).await.expect("knows"));
    assert!(store.site_knows_learner(&other_site_id(), &b).await.expect("knows"));
    assert_eq!(
        db.query_i64("select count(*) from learner_accounts")
            .await
            .expect("count"),
        3,
        "the refused link wrote nothing"
    );

    // A site that posted for a learner knows them too.
    store.put_course(&hours_course(other_site_id())).await.expect("course");
    let out = store
        .ingest(
            &[completion(&other_site_id(), "e1", LearnerRef::Id(a.clone()), 10_00)],
            NOW,
        )
        .await
        .expect("ingest");
    assert!(matches!(out[0], Outcome::Accepted { .. }), "{out:?}");
    assert!(store.site_knows_learner(&other_site_id(), &a).await.expect("knows"));
}

pub async fn a_course_rule_version_grows_only_when_its_terms_change<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    let course = hours_course(site_id());
    let (stored, written) = store.put_course(&course).await.expect("course");
    assert_eq!((stored.rule_version, written), (1, Written::Created));
    let (again, written) = store.put_course(&course).await.expect("same course");
    assert_eq!((again.rule_version, written), (1, Written::Existing));
    let retitled = Course {
        title: "Tea culture, revised".into(),
        ..course.clone()
    };
    let (stored, written) = store.put_course(&retitled).await.expect("retitled");
    assert_eq!(
        (stored.rule_version, written),
        (1, Written::Existing),
        "a new title is not a new rule"
    );
    let with_pass_mark = Course {
        pass_mark: Some(Score::from_cents(60_00)),
        ..retitled.clone()
    };
    assert_eq!(
        store.put_course(&with_pass_mark).await.expect("course").0.rule_version,
        2
    );
    let fixed = Course {
        rule: CreditRule::Fixed {
            credits: Credits::from_cents(1_50),
        },
        ..with_pass_mark.clone()
    };
    assert_eq!(store.put_course(&fixed).await.expect("course").0.rule_version, 3);
    let recategorised = Course {
        category: xuefen_core::ids::Category::parse("arts").expect("category"),
        ..fixed.clone()
    };
    assert_eq!(
        store.put_course(&recategorised).await.expect("course").0.rule_version,
        4
    );
    let read = store
        .course(&site_id(), &course.code)
        .await
        .expect("course")
        .expect("found");
    assert_eq!(
        read,
        Course {
            rule_version: 4,
            ..recategorised
        }
    );
    assert_eq!(
        store.course(&site_id(), &super::code("nope")).await.expect("course"),
        None
    );

    // Awards record the version in force when they were made.
    let (learner, _) = store.register_learner(&person(1)).await.expect("register");
    let out = store
        .ingest(
            &[super::scored(&site_id(), "e1", LearnerRef::Id(learner.clone()), 70_00)],
            NOW,
        )
        .await
        .expect("ingest");
    assert!(
        matches!(out[0], Outcome::Rejected(ref r) if r.code == "unknown_course"),
        "{out:?}"
    );
    let mut event = super::scored(&site_id(), "e1", LearnerRef::Id(learner.clone()), 70_00);
    if let EventBody::Completion(c) = &mut event.body {
        c.course = super::code("c1");
    }
    store.ingest(&[event], NOW).await.expect("ingest");
    let entry = store
        .entry_by_event(&site_id(), &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(entry.body.rule_version, 4);
    assert_eq!(entry.body.category.as_str(), "arts");
    assert_eq!(entry.body.credits, Credits::from_cents(1_50));
}

// ---------------------------------------------------------------------------
// Ingestion and idempotency
// ---------------------------------------------------------------------------

/// A mixed batch (completions by id and by account, a repeat, a conflict,
/// a revocation, a below-pass-mark score) is stored entry for entry, byte
/// for byte, as the pure planner plans it.
pub async fn a_batch_is_stored_exactly_as_planned<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    let s = &w.site;
    let batch = [
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e2", w.by_account(1), 25_00),
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e1", w.by_id(0), 11_00),
        revocation(s, "r1", "e1"),
        completion(s, "e3", w.by_id(0), 5_00),
        scored(s, "e4", w.by_account(2), 59_99),
        scored(s, "e5", w.by_account(2), 60_00),
    ];
    let expected = plan::plan(&batch, NOW, &w.lookups());
    let outcomes = store.ingest(&batch, NOW).await.expect("ingest");
    assert_eq!(outcomes, expected.outcomes);

    let c0 = w.chain(0);
    assert!(matches!(
        outcomes[0],
        Outcome::Accepted { position: Position { chain, seq: 1 }, kind: EntryKind::Awarded, credits, .. }
            if chain == c0 && credits == Credits::from_cents(2_00)
    ));
    assert!(matches!(outcomes[1], Outcome::Accepted { credits, .. } if credits == Credits::from_cents(4_00)));
    assert!(matches!(outcomes[2], Outcome::Duplicate { .. }));
    assert!(matches!(outcomes[3], Outcome::Conflict { field: "hours", .. }));
    assert!(matches!(
        outcomes[4],
        Outcome::Accepted { kind: EntryKind::Reversal, credits, .. } if credits == Credits::from_cents(-2_00)
    ));
    assert!(matches!(
        outcomes[6],
        Outcome::Accepted { kind: EntryKind::NotPassed, credits, .. } if credits == Credits::ZERO
    ));
    assert!(matches!(
        outcomes[7],
        Outcome::Accepted { kind: EntryKind::Awarded, credits, .. } if credits == Credits::from_cents(1_50)
    ));

    let mut planned = expected.entries.clone();
    planned.sort_by_key(|e| e.position);
    assert_eq!(all_entries(store.as_ref()).await, planned, "entries round-trip exactly");
    assert_eq!(
        moved_heads(store.as_ref()).await,
        expected.heads,
        "heads are the planned ones"
    );
    for e in &expected.entries {
        let found = store
            .entry_by_event(&e.body.site, &e.body.event_id)
            .await
            .expect("entry by event");
        assert_eq!(found.as_ref(), Some(e));
    }
    let reversal = store
        .entry_by_event(s, &event_id("r1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(reversal.body.target_event, Some(event_id("e1")));
    assert_eq!(reversal.body.refers_to, Some(Position { chain: c0, seq: 1 }));
    assert_eq!(entry_count(db).await, expected.entries.len() as i64);
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, expected.entries.len() as u64);
}

/// Posting the same events again returns the original outcomes (same
/// positions) and writes nothing, in one batch or item by item.
pub async fn the_same_events_twice_write_nothing_and_answer_the_same<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    let batch = [
        completion(s, "e1", w.by_id(0), 10_00),
        completion(s, "e2", w.by_account(1), 12_50),
        scored(s, "e3", w.by_id(1), 40_00),
        revocation(s, "r1", "e1"),
    ];
    let first = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(first.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{first:?}");
    let count = entry_count(db).await;
    let heads = store.heads().await.expect("heads");
    let entries = all_entries(store.as_ref()).await;

    let as_duplicates: Vec<Outcome> = first
        .iter()
        .map(|o| match *o {
            Outcome::Accepted {
                position,
                kind,
                credits,
                ..
            } => Outcome::Duplicate {
                position,
                kind,
                credits,
            },
            ref other => other.clone(),
        })
        .collect();
    // Later, and recorded at another time: the original outcome stands.
    let later = Millis(NOW.0 + 3_600_000);
    assert_eq!(store.ingest(&batch, later).await.expect("again"), as_duplicates);
    for (event, expected) in batch.iter().zip(&as_duplicates) {
        let one = store.ingest(std::slice::from_ref(event), later).await.expect("one");
        assert_eq!(&one[0], expected, "event {} alone", event.id);
    }
    assert_eq!(entry_count(db).await, count);
    assert_eq!(store.heads().await.expect("heads"), heads);
    assert_eq!(all_entries(store.as_ref()).await, entries, "nothing rewritten");
    // An already-revoked award cannot be revoked again under a new key.
    let late = store.ingest(&[revocation(s, "r2", "e1")], later).await.expect("ingest");
    assert!(
        matches!(&late[0], Outcome::Rejected(r) if r.code == "already_revoked"),
        "{late:?}"
    );
    assert_eq!(entry_count(db).await, count);
}

/// The same key with other content is a conflict naming the first field
/// that differs, in the documented order, and writes nothing.
pub async fn a_conflict_names_the_first_differing_field_and_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    let original = scored(s, "e1", w.by_id(0), 70_00);
    let reversal = revocation(s, "r1", "e1");
    let target2 = completion(s, "e2", w.by_id(0), 10_00);
    let first = store
        .ingest(&[original.clone(), target2, reversal.clone()], NOW)
        .await
        .expect("ingest");
    assert!(first.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{first:?}");
    let Outcome::Accepted { position: at, .. } = first[0] else {
        unreachable!()
    };
    let Outcome::Accepted { position: r_at, .. } = first[2] else {
        unreachable!()
    };
    let count = entry_count(db).await;

    let edit = |f: &dyn Fn(&mut Completion)| {
        let mut e = original.clone();
        if let EventBody::Completion(c) = &mut e.body {
            f(c);
        }
        e
    };
    let edit_rev = |f: &dyn Fn(&mut Revocation)| {
        let mut e = reversal.clone();
        if let EventBody::Revocation(r) = &mut e.body {
            f(r);
        }
        e
    };
    let cases: Vec<(&str, Event, Position)> = vec![
        ("course", edit(&|c| c.course = super::code("c1")), at),
        // The same learner named by account instead of id is no difference.
        ("learner", edit(&|c| c.learner = w.by_id(1)), at),
        (
            "completed_at",
            edit(&|c| c.completed_at = Millis(c.completed_at.0 - 1)),
            at,
        ),
        ("score", edit(&|c| c.score = Some(Score::from_cents(70_01))), at),
        ("hours", edit(&|c| c.hours = Some(Hours::from_cents(1_00))), at),
        // Several differences: the first in order is named.
        (
            "course",
            edit(&|c| {
                c.course = super::code("c1");
                c.hours = Some(Hours::from_cents(1_00));
            }),
            at,
        ),
        (
            "completed_at",
            edit(&|c| {
                c.completed_at = Millis(c.completed_at.0 + 1);
                c.score = None;
            }),
            at,
        ),
        ("kind", revocation(s, "e1", "e2"), at),
        ("target_event_id", edit_rev(&|r| r.target = event_id("e2")), r_at),
        (
            "reason",
            edit_rev(&|r| r.reason = Reason::parse("another reason", "reason").expect("reason")),
            r_at,
        ),
        ("kind", completion(s, "r1", w.by_id(0), 10_00), r_at),
    ];
    for (field, event, position) in &cases {
        let out = store.ingest(std::slice::from_ref(event), NOW).await.expect("ingest");
        assert_eq!(
            out[0],
            Outcome::Conflict {
                field,
                position: *position
            },
            "{event:?}"
        );
    }
    // No difference at all when the learner is named by the linked account.
    let same = edit(&|c| c.learner = w.by_account(0));
    let out = store.ingest(&[same], NOW).await.expect("ingest");
    assert!(
        matches!(out[0], Outcome::Duplicate { position, .. } if position == at),
        "{out:?}"
    );

    // In a batch: the conflict is per item and the other items are written.
    let batch: Vec<Event> = cases
        .iter()
        .map(|(_, e, _)| e.clone())
        .chain([completion(s, "e9", w.by_id(1), 10_00)])
        .collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    for ((field, _, position), o) in cases.iter().zip(&out) {
        assert_eq!(
            *o,
            Outcome::Conflict {
                field,
                position: *position
            }
        );
    }
    assert!(matches!(out.last(), Some(Outcome::Accepted { .. })), "{out:?}");
    assert_eq!(entry_count(db).await, count + 1, "only the new event was written");
    let stored = store
        .entry_by_event(s, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(stored.body.score, Some(Score::from_cents(70_00)), "the original stands");
}

/// An item rejected by validation writes nothing, so the same key,
/// corrected, is judged afresh and accepted.
pub async fn rejected_items_write_nothing_and_a_corrected_retry_is_judged_afresh<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let s = &w.site;
    store
        .ingest(
            &[completion(s, "done", w.by_id(0), 10_00), revocation(s, "rev", "done")],
            NOW,
        )
        .await
        .expect("ingest");
    let count = entry_count(db).await;
    let heads = store.heads().await.expect("heads");

    let unlinked = account("u-new");
    let stranger = xuefen_core::ids::LearnerId::from_random([0x99; 16]);
    let mut unknown_course = completion(s, "e2", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut unknown_course.body {
        c.course = super::code("nope");
    }
    let mut future = completion(s, "e3", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut future.body {
        c.completed_at = Millis(NOW.0 + COMPLETED_AT_FUTURE_SKEW_MS + 1);
    }
    let mut old = completion(s, "e4", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut old.body {
        c.completed_at = Millis(0);
    }
    let mut no_hours = completion(s, "e5", w.by_id(0), 10_00);
    if let EventBody::Completion(c) = &mut no_hours.body {
        c.hours = None;
    }
    let mut no_score = scored(s, "e6", w.by_id(0), 70_00);
    if let EventBody::Completion(c) = &mut no_score.body {
        c.score = None;
    }
    let rejected = [
        (
            completion(s, "e0", LearnerRef::Account(unlinked.clone()), 10_00),
            "unknown_learner",
            "learner/local_account",
        ),
        (
            completion(s, "e1", LearnerRef::Id(stranger), 10_00),
            "unknown_learner",
            "learner/id",
        ),
        (unknown_course, "unknown_course", "course"),
        (future, "completed_at_out_of_range", "completed_at"),
        (old, "completed_at_out_of_range", "completed_at"),
        (no_hours, "rule_needs_field", "hours"),
        (no_score, "rule_needs_field", "score"),
        (revocation(s, "e7", "missing"), "unknown_target", "target_event_id"),
        (revocation(s, "e8", "rev"), "target_not_revocable", "target_event_id"),
        (revocation(s, "e9", "done"), "already_revoked", "target_event_id"),
    ];
    let batch: Vec<Event> = rejected.iter().map(|(e, _, _)| e.clone()).collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    for ((event, code, field), o) in rejected.iter().zip(&out) {
        match o {
            Outcome::Rejected(r) => {
                assert_eq!((r.code, r.error.field.as_ref()), (*code, *field), "{}", event.id);
            }
            other => panic!("{} should be rejected, got {other:?}", event.id),
        }
    }
    assert_eq!(entry_count(db).await, count, "rejections write nothing");
    assert_eq!(store.heads().await.expect("heads"), heads);
    for (event, _, _) in &rejected {
        assert!(
            store.entry_by_event(s, &event.id).await.expect("entry").is_none(),
            "no entry under {}",
            event.id
        );
    }

    // Corrected: the account gets linked, the course named rightly, the
    // date fixed. The same keys are now accepted.
    store
        .link_account(s, &unlinked, &w.learners[1], None)
        .await
        .expect("link");
    let corrected = [
        completion(s, "e0", LearnerRef::Account(unlinked), 10_00),
        completion(s, "e2", w.by_id(0), 10_00),
        completion(s, "e3", w.by_id(0), 10_00),
        completion(s, "e5", w.by_id(0), 10_00),
        revocation(s, "e7", "e2"),
    ];
    let out = store.ingest(&corrected, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })), "{out:?}");
    // Revoking e2, the paid completion of c1, promotes e3 (one entry more).
    assert_eq!(entry_count(db).await, count + corrected.len() as i64 + 1);
    verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
}

/// Sixteen identical single-event requests at once: one `Accepted`, the
/// rest `Duplicate` at the same position, one entry.
pub async fn concurrent_identical_single_events_are_written_once<B: Backend>(db: &B) {
    let store = db.store();
    let w = Arc::new(World::build(store.as_ref(), site_id(), 1).await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        // Half name the learner by id, half by account: the same event.
        let who = if i % 2 == 0 { w.by_id(0) } else { w.by_account(0) };
        let event = completion(&w.site, "same", who, 10_00);
        tasks.push(tokio::spawn(async move { store.ingest(&[event], NOW).await }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task").expect("ingest").remove(0));
    }
    let accepted: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Accepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 1, "{outcomes:?}");
    let Outcome::Accepted {
        position,
        kind,
        credits,
        ..
    } = *accepted[0]
    else {
        unreachable!()
    };
    for o in &outcomes {
        assert!(
            *o == Outcome::Duplicate {
                position,
                kind,
                credits
            } || matches!(o, Outcome::Accepted { .. }),
            "{o:?}"
        );
    }
    assert_eq!(
        position,
        Position {
            chain: w.chain(0),
            seq: 1
        }
    );
    assert_eq!(entry_count(db).await, 1);
}

/// A tiny deterministic generator for orders and batch sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.next(i + 1));
        }
    }
}

/// Runs each task's batches in order, all tasks at once; returns every
/// (event id, outcome) pair.
async fn race(store: &Arc<dyn ServiceStore>, tasks: Vec<Vec<Vec<Event>>>) -> Vec<(String, Outcome)> {
    let mut handles = Vec::new();
    for batches in tasks {
        let store = Arc::clone(store);
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for batch in batches {
                let out = store.ingest(&batch, NOW).await.expect("ingest");
                assert_eq!(out.len(), batch.len());
                seen.extend(batch.iter().map(|e| e.id.as_str().to_owned()).zip(out));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all
}

/// Checks that each key was accepted exactly once and every other answer
/// for it is a duplicate at the same position; returns the positions.
fn once_per_key(all: &[(String, Outcome)]) -> BTreeMap<String, Position> {
    let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for (k, o) in all {
        by_key.entry(k).or_default().push(o);
    }
    let mut positions = BTreeMap::new();
    for (key, outs) in by_key {
        let accepted: Vec<_> = outs
            .iter()
            .filter_map(|o| match **o {
                Outcome::Accepted {
                    position,
                    kind,
                    credits,
                    ..
                } => Some((position, kind, credits)),
                _ => None,
            })
            .collect();
        assert_eq!(accepted.len(), 1, "{key} accepted once: {outs:?}");
        let (position, kind, credits) = accepted[0];
        for o in &outs {
            let same = **o
                == Outcome::Duplicate {
                    position,
                    kind,
                    credits,
                };
            assert!(same || matches!(o, Outcome::Accepted { .. }), "{key}: {o:?}");
        }
        positions.insert(key.to_owned(), position);
    }
    positions
}

/// Asserts that the accepted positions fill every touched chain from 1
/// without gaps, and that the ledger verifies.
async fn gap_free(store: &dyn Store, positions: &BTreeMap<String, Position>) {
    let mut per_chain: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for p in positions.values() {
        per_chain.entry(p.chain).or_default().push(p.seq);
    }
    let heads: HashMap<u32, Head> = store.heads().await.expect("heads").into_iter().collect();
    for (chain, mut seqs) in per_chain {
        seqs.sort_unstable();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "chain {chain} is gap-free");
        assert_eq!(heads[&chain].seq, seqs.len() as u64, "chain {chain}'s head");
    }
    let report = verify_ledger(store, |_| {}).await.expect("verifies");
    assert_eq!(report.entries, positions.len() as u64);
}

/// Eight clients post overlapping sets of the same 60 events, each in its
/// own order and batching, all at once: every key is written once, every
/// answer for a key names the same position, chains are gap-free.
pub async fn concurrent_overlapping_batches_write_each_key_once_without_gaps<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 4).await;
    let events: Vec<Event> = (0..60)
        .map(|k| {
            let who = if k % 3 == 0 {
                w.by_account(k % 4)
            } else {
                w.by_id(k % 4)
            };
            completion(&w.site, &format!("e{k}"), who, 1_00 + 25 * k as i64)
        })
        .collect();
    let mut rng = Lcg(0x5eed);
    let tasks: Vec<Vec<Vec<Event>>> = (0..8)
        .map(|_| {
            let mut mine: Vec<Event> = events.iter().filter(|_| rng.next(3) != 0).cloned().collect();
            rng.shuffle(&mut mine);
            let mut batches = Vec::new();
            while !mine.is_empty() {
                let n = (1 + rng.next(9)).min(mine.len());
                batches.push(mine.drain(..n).collect());
            }
            batches
        })
        .collect();
    let sent: BTreeSet<String> = tasks
        .iter()
        .flatten()
        .flatten()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    let all = race(&store, tasks).await;
    let positions = once_per_key(&all);
    assert_eq!(positions.keys().cloned().collect::<BTreeSet<_>>(), sent);
    assert_eq!(entry_count(db).await, sent.len() as i64, "each key written once");
    gap_free(store.as_ref(), &positions).await;
}

/// Revocations racing for the same awards: under one key each is written
/// once; under two keys for one award, one reverses it and the other is
/// rejected as already revoked.
pub async fn concurrent_revocations_of_one_award_reverse_it_once<B: Backend>(db: &B) {
    let store = db.store();
    // One learner per award: a course is paid once per learner, so awards
    // of one learner would promote each other as they are revoked.
    let w = World::build(store.as_ref(), site_id(), 12).await;
    let awards: Vec<Event> = (0..12)
        .map(|k| completion(&w.site, &format!("e{k}"), w.by_id(k), 10_00))
        .collect();
    let out = store.ingest(&awards, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    let mut rng = Lcg(7);
    let tasks: Vec<Vec<Vec<Event>>> = (0..6)
        .map(|t| {
            let mut mine: Vec<Event> = (0..12)
                .map(|k| {
                    // Tasks 0..3 send `r<k>`; tasks 3..6 send `x<k>`.
                    let prefix = if t < 3 { "r" } else { "x" };
                    revocation(&w.site, &format!("{prefix}{k}"), &format!("e{k}"))
                })
                .collect();
            rng.shuffle(&mut mine);
            mine.chunks(1 + t % 3).map(<[Event]>::to_vec).collect()
        })
        .collect();
    let all = race(&store, tasks).await;
    let mut accepted_per_award: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for (k, o) in &all {
        by_key.entry(k).or_default().push(o);
        if matches!(o, Outcome::Accepted { .. }) {
            *accepted_per_award.entry(k[1..].to_owned()).or_default() += 1;
        }
    }
    for k in 0..12 {
        assert_eq!(
            accepted_per_award.get(&k.to_string()),
            Some(&1),
            "award e{k} reversed once: {all:?}"
        );
        let (r, x) = (&by_key[format!("r{k}").as_str()], &by_key[format!("x{k}").as_str()]);
        // The losing key is rejected every time it is posted; the winning
        // key is accepted once and then a duplicate.
        let (winner, loser) = if r.iter().any(|o| matches!(o, Outcome::Accepted { .. })) {
            (r, x)
        } else {
            (x, r)
        };
        assert!(
            loser
                .iter()
                .all(|o| matches!(o, Outcome::Rejected(rej) if rej.code == "already_revoked")),
            "e{k}: {loser:?}"
        );
        assert!(
            winner.iter().all(|o| matches!(
                o,
                Outcome::Accepted {
                    kind: EntryKind::Reversal,
                    ..
                } | Outcome::Duplicate {
                    kind: EntryKind::Reversal,
                    ..
                }
            )),
            "e{k}: {winner:?}"
        );
    }
    assert_eq!(entry_count(db).await, 24);
    let positions: BTreeMap<String, Position> = all_entries(store.as_ref())
        .await
        .into_iter()
        .map(|e| (e.body.event_id.as_str().to_owned(), e.position))
        .collect();
    gap_free(store.as_ref(), &positions).await;
}

/// Two versions of one key posted at once, for the same learner (same
/// chain) and for two learners (two chains): one is written, the other is a
/// conflict naming the field, whichever wins.
pub async fn concurrent_conflicting_events_write_one_and_name_the_field<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 4).await;
    // Two learners on different chains, for the cross-chain race.
    let (a, b) = (0..4)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .find(|&(i, j)| w.chain(i) != w.chain(j))
        .expect("two of four learners on different chains");
    for round in 0..8 {
        let hours_key = format!("h{round}");
        let learner_key = format!("l{round}");
        let variants = [
            (completion(&w.site, &hours_key, w.by_id(a), 10_00), "hours"),
            (completion(&w.site, &hours_key, w.by_id(a), 20_00), "hours"),
            (completion(&w.site, &learner_key, w.by_id(a), 10_00), "learner"),
            (completion(&w.site, &learner_key, w.by_id(b), 10_00), "learner"),
        ];
        let tasks: Vec<Vec<Vec<Event>>> = variants.iter().map(|(e, _)| vec![vec![e.clone()]]).collect();
        let all = race(&store, tasks).await;
        for pair in [&all[0..2], &all[2..4]] {
            let field = variants[if pair[0].0.starts_with('h') { 0 } else { 2 }].1;
            let accepted: Vec<Position> = pair
                .iter()
                .filter_map(|(_, o)| match o {
                    Outcome::Accepted { position, .. } => Some(*position),
                    _ => None,
                })
                .collect();
            assert_eq!(accepted.len(), 1, "one version written: {pair:?}");
            assert!(
                pair.iter().any(|(_, o)| *o
                    == Outcome::Conflict {
                        field,
                        position: accepted[0]
                    }),
                "the other is a conflict on {field} at the winner's position: {pair:?}"
            );
        }
    }
    assert_eq!(entry_count(db).await, 16);
    let positions: BTreeMap<String, Position> = all_entries(store.as_ref())
        .await
        .into_iter()
        .map(|e| (e.body.event_id.as_str().to_owned(), e.position))
        .collect();
    gap_free(store.as_ref(), &positions).await;
}

// ---------------------------------------------------------------------------
// Atomic batches
// ---------------------------------------------------------------------------

/// Installs (or removes) a trigger that makes the database refuse one of
/// the store's writes, as a full disk or a lost connection would.
async fn refuse<B: Backend>(db: &B, table: &str, when: &str) {
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            let event = if table == "ledger_entries" { "insert" } else { "update" };
            format!(
                "create trigger conformance_refuse before {event} on {table} when {when}
                 begin select raise(abort, 'conformance: write refused'); end"
            )
        }
        Dialect::Postgres => {
            let event = if table == "ledger_entries" { "insert" } else { "update" };
            format!(
                "create function conformance_refuse() returns trigger language plpgsql as $$
                 begin raise exception 'conformance: write refused'; end $$;
                 create trigger conformance_refuse before {event} on {table}
                 for each row when ({when}) execute function conformance_refuse();"
            )
        }
    };
    db.execute(&sql).await.expect("install the refusing trigger");
}

async fn stop_refusing<B: Backend>(db: &B, table: &str) {
    let sql = match db.dialect() {
        Dialect::Sqlite => "drop trigger conformance_refuse".to_owned(),
        Dialect::Postgres => {
            format!("drop trigger conformance_refuse on {table}; drop function conformance_refuse();")
        }
    };
    db.execute(&sql).await.expect("remove the refusing trigger");
}

/// After a failed batch: nothing of it is in the ledger, the heads did not
/// move, and the same batch then goes through whole.
async fn nothing_then_whole<B: Backend>(db: &B, w: &World, batch: &[Event], table: &str) {
    let store = db.store();
    let before_count = entry_count(db).await;
    let before_heads = store.heads().await.expect("heads");
    let failed = store.ingest(batch, NOW).await;
    assert!(
        matches!(failed, Err(StoreError::Database(_))),
        "the refused write fails the batch: {failed:?}"
    );
    assert_eq!(entry_count(db).await, before_count, "a failed batch leaves no entry");
    assert_eq!(store.heads().await.expect("heads"), before_heads, "nor a moved head");
    for e in batch {
        assert!(store.entry_by_event(&w.site, &e.id).await.expect("entry").is_none());
    }
    verify_ledger(store.as_ref(), |_| {}).await.expect("still verifies");

    stop_refusing(db, table).await;
    let mut lookups = w.lookups();
    for (chain, head) in &before_heads {
        lookups.heads.insert(*chain, *head);
    }
    for e in all_entries(store.as_ref()).await {
        remember(&mut lookups, std::slice::from_ref(&e));
        lookups
            .entries
            .insert((e.body.site.clone(), e.body.event_id.clone()), e);
    }
    let expected = plan::plan(batch, NOW, &lookups);
    let out = store.ingest(batch, NOW).await.expect("the retry goes through");
    assert_eq!(out, expected.outcomes, "the retry is judged afresh");
    assert_eq!(entry_count(db).await, before_count + expected.entries.len() as i64);
    verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
}

/// A batch of 1 200 events whose very last entry the database refuses
/// (after the first statements of the batch went through, on stores that
/// write in several statements) leaves nothing behind.
pub async fn a_batch_whose_insert_fails_midway_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 5).await;
    store
        .ingest(&[completion(&w.site, "before", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let mut batch: Vec<Event> = (0..1_199)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 5), 10_00))
        .collect();
    batch.push(completion(&w.site, "poison", w.by_id(0), 10_00));
    refuse(db, "ledger_entries", "new.event_id = 'poison'").await;
    nothing_then_whole(db, &w, &batch, "ledger_entries").await;
}

/// A batch whose entries are all inserted but whose chain-head update is
/// refused leaves nothing behind either.
pub async fn a_batch_whose_head_update_fails_writes_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    store
        .ingest(&[completion(&w.site, "before", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let batch: Vec<Event> = (0..30)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 3), 10_00))
        .chain([revocation(&w.site, "r-before", "before")])
        .collect();
    let last_chain = w.chain(2);
    refuse(db, "chain_heads", &format!("new.chain_id = {last_chain}")).await;
    nothing_then_whole(db, &w, &batch, "chain_heads").await;
}

/// 1 300 completions and 200 revocations in one batch: all written once,
/// and all duplicates the second time.
pub async fn a_large_batch_is_written_whole<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 40).await;
    let mut batch: Vec<Event> = (0..1_300)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(i % 40), 10_00))
        .collect();
    batch.extend((0..200).map(|i| revocation(&w.site, &format!("r{i}"), &format!("e{i}"))));
    let expected = plan::plan(&batch, NOW, &w.lookups());
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    assert_eq!(out, expected.outcomes);
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    // 1 500 events, and a promotion for each revocation: e0..e199 are the
    // first five c1 completions of each of the 40 learners, revoked in
    // order, so each reverses the paid one and promotes the next.
    assert_eq!(expected.entries.len(), 1_700);
    assert_eq!(entry_count(db).await, 1_700);
    let again = store.ingest(&batch, NOW).await.expect("again");
    assert!(again.iter().all(|o| matches!(o, Outcome::Duplicate { .. })));
    assert_eq!(entry_count(db).await, 1_700);
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 1_700);
}

/// A batch abandoned at any instant (the caller gone, the process
/// stopping) is in the ledger whole or not at all, the chain still
/// verifies, and the store keeps working.
pub async fn a_batch_cancelled_at_any_instant_is_all_or_nothing<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 8).await;
    let batch_of = |round: usize| -> Vec<Event> {
        (0..400)
            .map(|i| completion(&w.site, &format!("c{round}-{i}"), w.by_id(i % 8), 10_00))
            .collect()
    };
    // How long one such batch takes here, to abandon the next ones at
    // instants spread over their whole run, the commit included.
    let started = std::time::Instant::now();
    store.ingest(&batch_of(0), NOW).await.expect("ingest");
    let full = started.elapsed();
    let mut written = 400i64;
    let mut seen = BTreeSet::new();
    for round in 1..=30u32 {
        let batch = batch_of(round as usize);
        let wait = full * (round - 1) / 20;
        let attempt = tokio::time::timeout(wait, store.ingest(&batch, NOW)).await;
        // Whatever happened, the batch is whole or absent, right away and
        // once a commit already on its way to the database has had time to
        // finish (abandoning the caller does not stop the database).
        let whole_or_nothing = |landed: i64, when: &str| {
            assert!(
                landed == 0 || landed == batch.len() as i64,
                "abandoned after {wait:?}, {when}: {landed} of {} entries are in the ledger",
                batch.len()
            );
        };
        whole_or_nothing(entry_count(db).await - written, "at once");
        // A store that finishes abandoned work does so in the background;
        // on a busy machine that can take far longer than the batch did, so
        // wait for it (bounded) rather than for a fixed time.
        let settle_until = std::time::Instant::now() + (full * 20).max(std::time::Duration::from_secs(3));
        let mut landed = entry_count(db).await - written;
        while landed == 0 && std::time::Instant::now() < settle_until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            landed = entry_count(db).await - written;
            whole_or_nothing(landed, "settling");
        }
        whole_or_nothing(landed, "settled");
        if let Ok(done) = &attempt {
            assert_eq!(
                landed,
                batch.len() as i64,
                "an acknowledged batch is in the ledger: {done:?}"
            );
        }
        seen.insert(match (&attempt, landed) {
            (Ok(_), _) => "committed",
            (Err(_), 0) => "nothing landed",
            (Err(_), _) => "landed, answer lost",
        });
        verify_ledger(store.as_ref(), |_| {})
            .await
            .expect("verifies after a cancelled batch");
        // ...and posting it again completes it, judged against what landed.
        let out = store.ingest(&batch, NOW).await.expect("the store still works");
        let fresh = out.iter().filter(|o| matches!(o, Outcome::Accepted { .. })).count() as i64;
        let repeats = out.iter().filter(|o| matches!(o, Outcome::Duplicate { .. })).count() as i64;
        let expected = if landed == 0 {
            (batch.len() as i64, 0)
        } else {
            (0, landed)
        };
        assert_eq!((fresh, repeats), expected);
        written += batch.len() as i64;
        assert_eq!(entry_count(db).await, written);
    }
    eprintln!("a batch takes {full:?}; abandoned batches: {seen:?}");
    // A store may finish an abandoned batch on its own (both do now) or
    // roll it back; either way some batches must have been abandoned before
    // they answered.
    assert!(
        seen.contains("nothing landed") || seen.contains("landed, answer lost"),
        "no batch was abandoned midway: {seen:?}"
    );
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, written as u64);
}

/// No personal data enters the ledger: a learner's name and identity
/// document (even its keyed hash) appear nowhere in the stored rows or the
/// hashed bytes, only the unified learner id does.
pub async fn entries_hold_no_personal_data<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let out = store
        .ingest(
            &[
                completion(&w.site, "e1", w.by_id(0), 10_00),
                scored(&w.site, "e2", w.by_account(1), 80_00),
                revocation(&w.site, "r1", "e1"),
            ],
            NOW,
        )
        .await
        .expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    for (i, e) in all_entries(store.as_ref()).await.iter().enumerate() {
        let p = person(if e.body.learner == w.learners[0] { 1 } else { 2 });
        let bytes = e.body.encode();
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        // Version 2: the learner is a commitment under their secret, at
        // this position; neither the id nor the secret is in the bytes.
        assert_eq!(
            e.body.commitment,
            Some(xuefen_core::entry::learner_commitment(&p.secret, e.position)),
            "entry {i} names its learner by a commitment"
        );
        assert!(
            !holds(e.body.learner.as_str().as_bytes()),
            "entry {i} holds the learner id"
        );
        assert!(!holds(&p.secret), "entry {i} holds the learner's secret");
        assert!(!holds(p.name.as_bytes()), "entry {i} holds the learner's name");
        assert!(!holds(&p.document_hash), "entry {i} holds the document hash");
        assert!(
            !holds(&p.document_hash[..8]),
            "entry {i} holds part of the document hash"
        );
    }
    let named = db
        .query_i64(
            "select count(*) from ledger_entries l join learners p on p.id = l.learner_id
              where l.reason like '%' || p.name || '%' or l.event_id like '%' || p.name || '%'",
        )
        .await
        .expect("search names");
    assert_eq!(named, 0);
}

// ---------------------------------------------------------------------------
// Append-only and the hash chain
// ---------------------------------------------------------------------------

/// A small ledger on learner 0's chain: entries 1..=5.
async fn five_on_one_chain<B: Backend>(db: &B) -> (World, u32) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let batch: Vec<Event> = (0..5)
        .map(|i| completion(&w.site, &format!("e{i}"), w.by_id(0), 5_00 * (i + 1)))
        .chain([completion(&w.site, "other", w.by_id(1), 10_00)])
        .collect();
    let out = store.ingest(&batch, NOW).await.expect("ingest");
    assert!(out.iter().all(|o| matches!(o, Outcome::Accepted { .. })));
    verify_ledger(store.as_ref(), |_| {})
        .await
        .expect("verifies before tampering");
    let chain = w.chain(0);
    (w, chain)
}

/// Removes the append-only guard, as someone with direct database access
/// could; verification must still catch what they do next.
async fn allow_tampering<B: Backend>(db: &B) {
    let sql = match db.dialect() {
        Dialect::Postgres => "alter table ledger_entries disable trigger user",
        Dialect::Sqlite => {
            "drop trigger ledger_entries_append_only_update; drop trigger ledger_entries_append_only_delete"
        }
    };
    db.execute(sql).await.expect("disable the append-only triggers");
}

async fn expect_fault(store: &dyn Store, position: Position, fault: Fault) {
    match verify_ledger(store, |_| {}).await {
        Err(VerifyFailure::Chain(e)) => {
            assert_eq!((e.position, &e.fault), (position, &fault), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("chain {} position {}", position.chain, position.seq)),
                "the message names the position: {e}"
            );
        }
        other => panic!("expected {fault:?} at {position}, got {other:?}"),
    }
}

pub async fn the_ledger_refuses_update_and_delete<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    let statements = [
        "update ledger_entries set credits_cents = 0".to_owned(),
        format!("update ledger_entries set reason = 'x' where chain_id = {chain} and seq = 2"),
        format!("delete from ledger_entries where chain_id = {chain} and seq = 5"),
        "delete from ledger_entries".to_owned(),
    ];
    for sql in &statements {
        match db.execute(sql).await {
            Err(e) => assert!(e.contains("append-only"), "{sql}: {e}"),
            Ok(n) => panic!("{sql} was allowed ({n} rows)"),
        }
    }
    if db.dialect() == Dialect::Postgres {
        let e = db
            .execute("truncate ledger_entries")
            .await
            .expect_err("truncate is refused");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(entry_count(db).await, 6);
    verify_ledger(db.store().as_ref(), |_| {}).await.expect("untouched");
}

pub async fn verify_names_an_entry_altered_by_direct_sql<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    let n = db
        .execute(&format!(
            "update ledger_entries set credits_cents = credits_cents + 1 where chain_id = {chain} and seq = 3"
        ))
        .await
        .expect("tamper");
    assert_eq!(n, 1);
    expect_fault(db.store().as_ref(), Position { chain, seq: 3 }, Fault::HashMismatch).await;
}

pub async fn verify_names_a_deleted_middle_entry<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    db.execute(&format!(
        "delete from ledger_entries where chain_id = {chain} and seq = 2"
    ))
    .await
    .expect("tamper");
    expect_fault(db.store().as_ref(), Position { chain, seq: 2 }, Fault::Gap { found: 3 }).await;
}

pub async fn verify_names_a_deleted_last_entry<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    db.execute(&format!(
        "delete from ledger_entries where chain_id = {chain} and seq = 5"
    ))
    .await
    .expect("tamper");
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 5 },
        Fault::HeadMismatch { head_seq: 5 },
    )
    .await;
}

pub async fn verify_names_the_first_of_two_swapped_entries<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    allow_tampering(db).await;
    // Three steps, so that no step collides on the primary key.
    for (from, to) in [(2, -1), (4, 2), (-1, 4)] {
        let n = db
            .execute(&format!(
                "update ledger_entries set seq = {to} where chain_id = {chain} and seq = {from}"
            ))
            .await
            .expect("swap");
        assert_eq!(n, 1);
    }
    expect_fault(db.store().as_ref(), Position { chain, seq: 2 }, Fault::BrokenLink).await;
}

pub async fn verify_names_a_chain_head_moved_by_direct_sql<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    // The heads are not append-only (the store moves them); rewinding one
    // hides the last entry from appends and must be caught.
    let hash_of_4 = format!(
        "update chain_heads set seq = 4, hash = (select hash from ledger_entries
           where chain_id = {chain} and seq = 4) where chain_id = {chain}"
    );
    db.execute(&hash_of_4).await.expect("rewind head");
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 4 },
        Fault::HeadMismatch { head_seq: 4 },
    )
    .await;
}

/// A row appended after a chain's last entry without moving its head (a
/// write behind the service's back) fails the chain at its head.
pub async fn verify_names_rows_appended_behind_the_head<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    let n = db
        .execute(&format!(
            "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason)
             select chain_id, seq + 1, hash, hash, kind, site_id, event_id || '-forged', learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason
               from ledger_entries where chain_id = {chain} and seq = 5"
        ))
        .await
        .expect("forge a row");
    assert_eq!(n, 1);
    expect_fault(
        db.store().as_ref(),
        Position { chain, seq: 5 },
        Fault::HeadMismatch { head_seq: 5 },
    )
    .await;
}

/// Verification while the service writes reports no fault: every chain is
/// checked up to the head it read, and later commits are not mistaken for
/// tampering.
pub async fn verify_while_batches_commit_reports_no_fault<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 8).await;
    let writer = {
        let store = Arc::clone(&store);
        let batches: Vec<Vec<Event>> = (0..40)
            .map(|b| {
                (0..50)
                    .map(|i| completion(&w.site, &format!("v{b}-{i}"), w.by_id(i % 8), 10_00))
                    .collect()
            })
            .collect();
        tokio::spawn(async move {
            for batch in batches {
                store.ingest(&batch, NOW).await.expect("ingest");
            }
        })
    };
    let mut runs = 0;
    let mut last = 0;
    while !writer.is_finished() {
        let report = verify_ledger(store.as_ref(), |_| {})
            .await
            .expect("a live ledger verifies");
        assert!(report.entries >= last, "entries only grow");
        last = report.entries;
        runs += 1;
    }
    writer.await.expect("writer");
    let report = verify_ledger(store.as_ref(), |_| {}).await.expect("verifies");
    assert_eq!(report.entries, 2_000);
    assert!(runs > 0, "verification ran while batches committed");
}

/// After several batches over several learners, every chain's head is its
/// last entry, and untouched chains stay empty.
pub async fn heads_follow_the_last_entry_of_every_chain<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 6).await;
    let mut lookups = w.lookups();
    for round in 0..4 {
        let batch: Vec<Event> = (0..12)
            .map(|i| {
                completion(
                    &w.site,
                    &format!("e{round}-{i}"),
                    w.by_id((i + round) % 6),
                    3_00 * (i as i64 + 1),
                )
            })
            .collect();
        let keys = plan::course_keys(&batch, &lookups);
        for (l, s, c, _) in keys {
            lookups.course_entries.entry((l, s, c)).or_default();
        }
        let expected = plan::plan(&batch, NOW, &lookups);
        assert_eq!(store.ingest(&batch, NOW).await.expect("ingest"), expected.outcomes);
        lookups.heads.extend(expected.heads.iter().map(|(c, h)| (*c, *h)));
        remember(&mut lookups, &expected.entries);
    }
    let heads = store.heads().await.expect("heads");
    let touched: BTreeSet<u32> = (0..6).map(|i| w.chain(i)).collect();
    for (chain, head) in heads {
        let entries = all_entries(store.as_ref())
            .await
            .into_iter()
            .filter(|e| e.position.chain == chain)
            .collect::<Vec<_>>();
        match entries.last() {
            Some(last) => {
                assert!(touched.contains(&chain));
                assert_eq!(
                    head,
                    Head {
                        seq: last.position.seq,
                        hash: last.hash
                    }
                );
                assert_eq!(lookups.heads.get(&chain), Some(&head), "chain {chain}");
            }
            None => assert_eq!(head, Head::EMPTY, "chain {chain} untouched"),
        }
    }
}

/// A learner's entries are exactly theirs, in sequence order, across
/// batches and kinds; a learner with none gets an empty list.
pub async fn learner_entries_are_that_learners_own_in_sequence_order<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 3).await;
    for round in 0..3 {
        let mut batch: Vec<Event> = (0..10)
            .map(|i| completion(&w.site, &format!("e{round}-{i}"), w.by_id(i % 2), 2_00 * (i as i64 + 1)))
            .collect();
        batch.push(scored(&w.site, &format!("s{round}"), w.by_account(0), 50_00));
        batch.push(revocation(&w.site, &format!("r{round}"), &format!("e{round}-0")));
        store.ingest(&batch, NOW).await.expect("ingest");
    }
    let all = all_entries(store.as_ref()).await;
    for i in 0..2 {
        let mine = store.learner_entries(&w.learners[i]).await.expect("entries");
        let expected: Vec<_> = {
            let mut v: Vec<_> = all
                .iter()
                .filter(|e| e.body.learner == w.learners[i])
                .cloned()
                .collect();
            v.sort_by_key(|e| e.position.seq);
            v
        };
        assert!(!mine.is_empty());
        assert_eq!(mine, expected, "learner {i}");
        assert!(mine.windows(2).all(|p| p[0].position.seq < p[1].position.seq));
    }
    assert!(store.learner_entries(&w.learners[2]).await.expect("entries").is_empty());
    let kinds: BTreeSet<&str> = store
        .learner_entries(&w.learners[0])
        .await
        .expect("entries")
        .iter()
        .map(|e| e.body.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["awarded", "not_passed", "promoted", "recognised", "reversal"])
    );
}

/// The idempotency key is `(site, event_id)`: the same event id at two
/// sites is two events, and each site's entry is found under its own key.
pub async fn entries_are_found_by_their_own_sites_key_only<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 1).await;
    let other = other_site_id();
    store
        .create_site(&site(other.clone()), &act("joined"))
        .await
        .expect("site");
    store.put_course(&hours_course(other.clone())).await.expect("course");
    let a = store
        .ingest(&[completion(&w.site, "e1", w.by_id(0), 10_00)], NOW)
        .await
        .expect("ingest");
    let b = store
        .ingest(&[completion(&other, "e1", w.by_id(0), 20_00)], NOW)
        .await
        .expect("ingest");
    assert!(matches!(a[0], Outcome::Accepted { .. }) && matches!(b[0], Outcome::Accepted { .. }));
    let mine = store
        .entry_by_event(&w.site, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    let theirs = store
        .entry_by_event(&other, &event_id("e1"))
        .await
        .expect("entry")
        .expect("found");
    assert_eq!(mine.body.site, w.site);
    assert_eq!(theirs.body.site, other);
    assert_ne!(mine.body.credits, theirs.body.credits);
    let nowhere = SiteId::parse("nowhere").expect("id");
    assert!(
        store
            .entry_by_event(&nowhere, &event_id("e1"))
            .await
            .expect("entry")
            .is_none()
    );
    assert!(
        store
            .entry_by_event(&w.site, &event_id("e2"))
            .await
            .expect("entry")
            .is_none()
    );
    // Another site cannot revoke this site's event.
    let out = store
        .ingest(&[revocation(&other, "r1", "e1")], NOW)
        .await
        .expect("ingest");
    assert!(matches!(out[0], Outcome::Accepted { .. }), "revokes its own e1");
    assert_eq!(
        store
            .entry_by_event(&other, &event_id("r1"))
            .await
            .expect("entry")
            .and_then(|e| e.body.refers_to),
        Some(theirs.position)
    );
}

// ---------------------------------------------------------------------------
// Property: batching does not change the ledger
// ---------------------------------------------------------------------------

pub use self::property::random_streams_in_random_batchings_give_the_planned_ledger;

mod property {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    use super::*;

    /// An event of a small universe in which keys, learners, courses and
    /// targets collide often: duplicates, conflicts, rejections and
    /// reversals all happen.
    #[derive(Debug, Clone)]
    enum Ev {
        Completion {
            id: u8,
            learner: usize,
            by_account: bool,
            course: u8,
            at: i64,
            hours: Option<i64>,
            score: Option<i64>,
        },
        Revocation {
            id: u8,
            target: u8,
            reason: bool,
        },
    }

    fn arb_ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            3 => (0u8..12, 0usize..4, any::<bool>(), 0u8..3, 0i64..2,
                  prop::option::of(prop::sample::select(vec![2_50, 10_00, 33_33])),
                  prop::option::of(prop::sample::select(vec![40_00, 60_00, 95_50])))
                .prop_map(|(id, learner, by_account, course, at, hours, score)| Ev::Completion {
                    id, learner, by_account, course, at, hours, score
                }),
            1 => (0u8..12, 0u8..13, any::<bool>())
                .prop_map(|(id, target, reason)| Ev::Revocation { id, target, reason }),
        ]
    }

    /// Learners 0..3 are registered and linked; learner 3 is neither.
    fn to_event(w: &World, ev: &Ev) -> Event {
        match ev {
            Ev::Completion {
                id,
                learner,
                by_account,
                course,
                at,
                hours,
                score,
            } => {
                let who = match (learner, by_account) {
                    (3, false) => LearnerRef::Id(xuefen_core::ids::LearnerId::from_random([0x77; 16])),
                    (3, true) => LearnerRef::Account(account("unlinked")),
                    (i, false) => w.by_id(*i),
                    (i, true) => w.by_account(*i),
                };
                Event {
                    site: w.site.clone(),
                    id: event_id(&format!("k{id}")),
                    body: EventBody::Completion(Completion {
                        course: super::super::code(["c1", "c2", "c3"][usize::from(*course)]),
                        learner: who,
                        completed_at: Millis(NOW.0 - 86_400_000 * (1 + at)),
                        score: score.map(Score::from_cents),
                        hours: hours.map(Hours::from_cents),
                    }),
                }
            }
            Ev::Revocation { id, target, reason } => Event {
                site: w.site.clone(),
                id: event_id(&format!("k{id}")),
                body: EventBody::Revocation(Revocation {
                    target: event_id(&format!("k{target}")),
                    code: Reason::code("entered_in_error", "reason_code").expect("code"),
                    reason: Reason::parse(if *reason { "duplicate" } else { "error" }, "reason").expect("reason"),
                }),
            },
        }
    }

    /// One case: a fresh database, the stream posted in the given batch
    /// sizes; the result must be what the planner makes of the whole stream
    /// as one batch.
    async fn case<B: Backend>(evs: &[Ev], sizes: &[usize]) -> Result<(), String> {
        let db = B::fresh().await;
        let store = db.store();
        let w = World::build(store.as_ref(), site_id(), 3).await;
        let events: Vec<Event> = evs.iter().map(|e| to_event(&w, e)).collect();
        let expected = plan::plan(&events, NOW, &w.lookups());
        let mut outcomes = Vec::new();
        let mut rest = &events[..];
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            let (batch, tail) = rest.split_at(n);
            outcomes.extend(store.ingest(batch, NOW).await.map_err(|e| e.to_string())?);
            rest = tail;
        }
        if outcomes != expected.outcomes {
            return Err(format!(
                "outcomes differ from one-batch planning:\n got {outcomes:?}\nwant {:?}",
                expected.outcomes
            ));
        }
        let mut planned = expected.entries.clone();
        planned.sort_by_key(|e| e.position);
        let stored = all_entries(store.as_ref()).await;
        if stored != planned {
            return Err(format!("entries differ:\n got {stored:?}\nwant {planned:?}"));
        }
        if moved_heads(store.as_ref()).await != expected.heads {
            return Err("heads differ".into());
        }
        let report = verify_ledger(store.as_ref(), |_| {}).await.map_err(|e| e.to_string())?;
        if report.entries != planned.len() as u64 {
            return Err(format!("verify saw {} entries", report.entries));
        }
        db.close().await;
        Ok(())
    }

    /// Any stream of events, posted in any batching, gives the ledger (and
    /// the per-event outcomes) that the planner gives for the stream as one
    /// batch: positions, hashes and decisions do not depend on how a site
    /// groups its events. Cases: `PROPTEST_CASES`, default 16.
    pub async fn random_streams_in_random_batchings_give_the_planned_ledger<B: Backend>(probe: &B) {
        // The probe database only shows that databases can be had at all.
        probe.store().ready().await.expect("ready");
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(16);
        let handle = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut runner = TestRunner::new(Config {
                cases,
                failure_persistence: None,
                max_shrink_iters: 200,
                ..Config::default()
            });
            let strategy = (
                prop::collection::vec(arb_ev(), 1..40),
                prop::collection::vec(1usize..8, 1..6),
            );
            runner
                .run(&strategy, |(evs, sizes)| {
                    handle.block_on(case::<B>(&evs, &sizes)).map_err(TestCaseError::fail)
                })
                .map_err(|e| e.to_string())
        })
        .await
        .expect("property task");
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// The xAPI door's statements and links
// ---------------------------------------------------------------------------

/// A statement row as the door would prepare it; `n` makes the id and the
/// stored time, `fp` the content.
fn statement(n: u32, fp: &str, verb: &str, activity: Option<&str>, agent: Option<&str>) -> crate::NewStatement {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    crate::NewStatement {
        json: format!(r#"{{"id":"{id}","verb":{{"id":"{verb}"}},"n":{n}}}"#),
        id,
        fingerprint: fp.to_owned(),
        verb: verb.to_owned(),
        activity: activity.map(str::to_owned),
        agent: agent.map(str::to_owned),
        registration: None,
        voids: None,
        stored: Millis(NOW.0 + i64::from(n) * 1_000),
        related_agents: agent.map(str::to_owned).into_iter().collect(),
        related_activities: activity.map(str::to_owned).into_iter().collect(),
    }
}

const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// A statement is stored once under (site, id): the same content again is
/// `Existing` and writes nothing; other content under a stored id fails the
/// whole call with a conflict naming the id, and nothing of the call is
/// written. The same id at another site is another statement.
pub async fn xapi_statements_are_stored_once_and_other_content_under_an_id_conflicts<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
    let s1 = statement(
        1,
        "aa",
        COMPLETED,
        Some("https://lms.example/c/1"),
        Some("account|h|u1"),
    );
    let s2 = statement(2, "bb", COMPLETED, None, None);
    assert_eq!(
        store
            .insert_statements(&site_id(), &[s1.clone(), s2.clone()])
            .await
            .expect("insert"),
        vec![Written::Created, Written::Created]
    );
    assert_eq!(
        store
            .insert_statements(&site_id(), std::slice::from_ref(&s1))
            .await
            .expect("again"),
        vec![Written::Existing]
    );
    let s3 = statement(3, "cc", COMPLETED, None, None);
    let mut other = s2.clone();
    other.fingerprint = "zz".into();
    match store.insert_statements(&site_id(), &[s3.clone(), other]).await {
        Err(StoreError::Conflict(id)) => assert_eq!(id.detail, s2.id),
        r => panic!("expected a conflict, got {r:?}"),
    }
    let found = store
        .statements_by_ids(&site_id(), &[s1.id.clone(), s2.id.clone(), s3.id.clone()])
        .await
        .expect("read");
    assert_eq!(
        found.len(),
        2,
        "the conflicting call wrote nothing, not even its new statement"
    );
    let first = found.iter().find(|r| r.id == s1.id).expect("s1");
    assert_eq!(first.json, s1.json, "returned byte for byte");
    assert_eq!(first.fingerprint, "aa");
    assert!(!first.voided);
    assert_eq!(
        store
            .insert_statements(&other_site_id(), std::slice::from_ref(&s1))
            .await
            .expect("other site"),
        vec![Written::Created]
    );
    assert!(
        store
            .statements_by_ids(&other_site_id(), std::slice::from_ref(&s2.id))
            .await
            .expect("read")
            .is_empty(),
        "a site sees only its own statements"
    );
    assert_eq!(
        db.query_i64("select count(*) from xapi_statements")
            .await
            .expect("count"),
        3
    );
}

/// Concurrent identical posts of one statement store it once, and every
/// one of them succeeds.
pub async fn xapi_concurrent_identical_statements_are_stored_once<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    let s = statement(7, "ff", COMPLETED, None, None);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let s = s.clone();
            tokio::spawn(async move { store.insert_statements(&site_id(), &[s]).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task").expect("insert")[0] {
            Written::Created => created += 1,
            Written::Existing => {}
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        db.query_i64("select count(*) from xapi_statements")
            .await
            .expect("count"),
        1
    );
}

/// The statement query filters by verb, activity, agent, registration and
/// stored time, pages newest first (or oldest first) by its cursor, and
/// leaves voided statements out while returning a voiding statement whose
/// target matches the filters; a voided statement is still found by id,
/// marked voided, even when its voiding statement came first.
pub async fn xapi_the_query_filters_pages_and_leaves_voided_statements_out<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    let c1 = Some("https://lms.example/c/1");
    let mut all: Vec<crate::NewStatement> = (1..=6)
        .map(|n| {
            let agent = if n % 2 == 0 { "account|h|even" } else { "account|h|odd" };
            statement(
                n,
                &format!("f{n}"),
                COMPLETED,
                if n <= 3 { c1 } else { None },
                Some(agent),
            )
        })
        .collect();
    all[4].registration = Some("11111111-1111-4111-8111-111111111111".into());
    // Statement 8 voids statement 9, which arrives later.
    let mut voiding = statement(8, "f8", VOIDED, None, Some("account|h|admin"));
    voiding.voids = Some(format!("00000000-0000-4000-8000-{:012}", 1));
    all.push(voiding);
    store.insert_statements(&site_id(), &all).await.expect("insert");
    let late = statement(9, "f9", COMPLETED, c1, Some("account|h|odd"));
    let mut voids_late = statement(10, "f10", VOIDED, None, None);
    voids_late.voids = Some(late.id.clone());
    store
        .insert_statements(&site_id(), &[voids_late])
        .await
        .expect("insert");
    store
        .insert_statements(&site_id(), std::slice::from_ref(&late))
        .await
        .expect("insert");

    let q = |edit: &dyn Fn(&mut crate::StatementQuery)| {
        let mut q = crate::StatementQuery {
            limit: 100,
            ..Default::default()
        };
        edit(&mut q);
        q
    };
    let numbers = |rows: Vec<crate::StatementRow>| -> Vec<u32> {
        rows.iter()
            .map(|r| r.id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0))
            .collect()
    };
    let run = |query: crate::StatementQuery| {
        let store = store.clone();
        async move { store.query_statements(&site_id(), &query).await.expect("query") }
    };
    assert_eq!(
        numbers(run(q(&|_| {})).await),
        vec![10, 8, 6, 5, 4, 3, 2],
        "newest first, voided left out"
    );
    assert_eq!(
        numbers(run(q(&|q| q.verb = Some(COMPLETED.into()))).await),
        vec![10, 8, 6, 5, 4, 3, 2],
        "a voiding statement is returned when the statement it voids matches"
    );
    assert_eq!(
        numbers(run(q(&|q| q.activity = c1.map(str::to_owned))).await),
        vec![10, 8, 3, 2]
    );
    assert_eq!(
        numbers(run(q(&|q| q.agent = Some("account|h|odd".into()))).await),
        vec![10, 8, 5, 3]
    );
    assert_eq!(
        numbers(
            run(q(
                &|q| q.registration = Some("11111111-1111-4111-8111-111111111111".into())
            ))
            .await
        ),
        vec![5]
    );
    assert_eq!(
        numbers(
            run(q(&|q| {
                q.since = Some(Millis(NOW.0 + 2_000));
                q.until = Some(Millis(NOW.0 + 5_000));
            }))
            .await
        ),
        vec![5, 4, 3],
        "since is exclusive, until inclusive"
    );
    // Paging: two at a time, newest first, then oldest first.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = run(q(&|q| {
            q.limit = 2;
            q.cursor = cursor;
        }))
        .await;
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|r| r.seq);
        seen.extend(numbers(page));
    }
    assert_eq!(seen, vec![10, 8, 6, 5, 4, 3, 2]);
    let first_two = run(q(&|q| {
        q.ascending = true;
        q.limit = 2;
    }))
    .await;
    let after = first_two.last().map(|r| r.seq);
    assert_eq!(numbers(first_two), vec![2, 3]);
    assert_eq!(
        numbers(
            run(q(&|q| {
                q.ascending = true;
                q.limit = 2;
                q.cursor = after;
            }))
            .await
        ),
        vec![4, 5]
    );
    let by_id = store
        .statements_by_ids(&site_id(), &[all[0].id.clone(), late.id.clone(), all[1].id.clone()])
        .await
        .expect("by id");
    let voided: BTreeSet<&str> = by_id.iter().filter(|r| r.voided).map(|r| r.id.as_str()).collect();
    assert_eq!(voided, BTreeSet::from([all[0].id.as_str(), late.id.as_str()]));
}

/// The links of the xAPI door: a site's home page (set, then changed), an
/// mbox_sha1sum names one local account of a site, and an activity IRI
/// names at most one course of a site (set, moved, removed).
pub async fn xapi_links_name_one_account_and_one_course<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
    assert_eq!(store.xapi_home_page(&site_id()).await.expect("read"), None);
    store
        .set_xapi_home_page(&site_id(), "https://lms.example")
        .await
        .expect("set");
    store
        .set_xapi_home_page(&site_id(), "https://moodle.example")
        .await
        .expect("change");
    assert_eq!(
        store.xapi_home_page(&site_id()).await.expect("read").as_deref(),
        Some("https://moodle.example")
    );
    assert_eq!(store.xapi_home_page(&other_site_id()).await.expect("read"), None);

    let sum = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        store
            .link_mbox_sha1sum(&site_id(), &account("u-1"), sum)
            .await
            .expect("link"),
        Written::Created
    );
    assert_eq!(
        store
            .link_mbox_sha1sum(&site_id(), &account("u-1"), sum)
            .await
            .expect("again"),
        Written::Existing
    );
    assert!(matches!(
        store.link_mbox_sha1sum(&site_id(), &account("u-2"), sum).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .mbox_accounts(&site_id(), &[sum.to_owned(), "f".repeat(40)])
            .await
            .expect("read"),
        vec![(sum.to_owned(), account("u-1"))]
    );
    assert!(
        store
            .mbox_accounts(&other_site_id(), &[sum.to_owned()])
            .await
            .expect("read")
            .is_empty()
    );

    let c1 = super::hours_course(site_id());
    let c2 = super::scored_course(site_id());
    store.put_course(&c1).await.expect("course");
    store.put_course(&c2).await.expect("course");
    let iri = "https://lms.example/course/view.php?id=7";
    store
        .set_course_activity(&site_id(), &c1.code, Some(iri))
        .await
        .expect("set");
    assert!(
        matches!(
            store.set_course_activity(&site_id(), &c2.code, Some(iri)).await,
            Err(StoreError::Conflict(_))
        ),
        "an IRI names one course of a site"
    );
    assert_eq!(
        store
            .activity_courses(&site_id(), &[iri.to_owned()])
            .await
            .expect("read"),
        vec![(iri.to_owned(), c1.code.clone())]
    );
    store
        .set_course_activity(&site_id(), &c1.code, None)
        .await
        .expect("remove");
    store
        .set_course_activity(&site_id(), &c2.code, Some(iri))
        .await
        .expect("move");
    assert_eq!(store.course_activity(&site_id(), &c1.code).await.expect("read"), None);
    assert_eq!(
        store
            .course_activity(&site_id(), &c2.code)
            .await
            .expect("read")
            .as_deref(),
        Some(iri)
    );
    assert!(
        store
            .activity_courses(&other_site_id(), &[iri.to_owned()])
            .await
            .expect("read")
            .is_empty()
    );
}

/// The ledger entries under event ids, as the xAPI door reads them before
/// it writes: every entry of the site under those ids, none of another
/// site's, nothing for unknown ids.
pub async fn xapi_entries_by_events_are_the_sites_own<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 2).await;
    let batch = vec![
        completion(&w.site, "e1", w.by_id(0), 10_00),
        completion(&w.site, "e2", w.by_id(1), 10_00),
        revocation(&w.site, "r1", "e1"),
    ];
    store.ingest(&batch, NOW).await.expect("ingest");
    let id = |s: &str| xuefen_core::ids::EventId::parse(s.to_owned()).expect("event id");
    let mut found: Vec<(String, EntryKind)> = store
        .entries_by_events(&site_id(), &[id("e1"), id("r1"), id("nope")])
        .await
        .expect("entries")
        .into_iter()
        .map(|e| (e.body.event_id.to_string(), e.body.kind))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        vec![
            ("e1".to_owned(), EntryKind::Awarded),
            ("r1".to_owned(), EntryKind::Reversal)
        ]
    );
    assert!(
        store
            .entries_by_events(&other_site_id(), &[id("e1"), id("e2")])
            .await
            .expect("entries")
            .is_empty(),
        "another site's ids name none of this site's entries"
    );
    assert!(
        store
            .entries_by_events(&site_id(), &[])
            .await
            .expect("empty")
            .is_empty()
    );
}

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
pub use super::pseudonyms::*;
pub use super::witness::*;

/// A row forged far behind a chain's head (a gap of a billion sequence
/// numbers) is found, and soon: a reader that steps through the chain by
/// ranges of sequence numbers must jump the gap, not walk it.
pub async fn verify_names_a_row_forged_far_behind_the_head<B: Backend>(db: &B) {
    let (_, chain) = five_on_one_chain(db).await;
    let n = db
        .execute(&format!(
            "insert into ledger_entries (chain_id, seq, prev_hash, hash, kind, site_id, event_id, learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason)
             select chain_id, seq + 1000000000, hash, hash, kind, site_id, event_id || '-far', learner_id,
                    course_code, category, credits_cents, occurred_at_ms, recorded_at_ms, score_cents,
                    hours_cents, rule_version, refers_chain, refers_seq, target_event, reason
               from ledger_entries where chain_id = {chain} and seq = 5"
        ))
        .await
        .expect("forge a row");
    assert_eq!(n, 1);
    let store = db.store();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        expect_fault(
            store.as_ref(),
            Position { chain, seq: 5 },
            Fault::HeadMismatch { head_seq: 5 },
        ),
    )
    .await
    .expect("verify finds the far row within a minute");
}
