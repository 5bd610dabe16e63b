//! Credited once against the store's own course-history reads: every batch
//! below is posted on its own, so each decision rests on what the store
//! read back from the ledger (one probe per completion: the paying entry of
//! its period, and a completion at the same instant with its reversal), not
//! on the planner's history of the batch.

use xuefen_core::amount::Credits;
use xuefen_core::entry::EntryKind;
use xuefen_core::event::{Completion, Event, EventBody, Millis};
use xuefen_core::ids::{Category, EventId, Position};
use xuefen_core::plan::Outcome;
use xuefen_core::rule::{CreditRule, Repeat};

use super::{Backend, NOW, World, code, event_id, revocation, site_id};
use crate::Course;

fn course(w: &World, c: &str, repeat: Repeat) -> Course {
    Course {
        site: w.site.clone(),
        code: code(c),
        title: "Credited once".into(),
        category: Category::parse("community").expect("category"),
        rule: CreditRule::Fixed {
            credits: Credits::from_cents(1_00),
        },
        pass_mark: None,
        rule_version: 1,
        recognition_group: None,
        offered_from: None,
        repeat,
    }
}

fn done(w: &World, id: &str, c: &str, at: Millis) -> Event {
    Event {
        site: w.site.clone(),
        id: event_id(id),
        body: EventBody::Completion(Completion {
            course: code(c),
            learner: w.by_id(0),
            completed_at: at,
            score: None,
            hours: None,
        }),
    }
}

/// Posts one event alone; its kind, position and likely duplicate.
async fn one<B: Backend>(db: &B, event: Event) -> (EntryKind, Position, Option<EventId>) {
    let out = db.store().ingest(&[event], NOW).await.expect("ingest");
    match out.as_slice() {
        [
            Outcome::Accepted {
                kind,
                position,
                likely_duplicate_of,
                ..
            },
        ] => (*kind, *position, likely_duplicate_of.clone()),
        other => panic!("not accepted: {other:?}"),
    }
}

async fn refers_to<B: Backend>(db: &B, w: &World, id: &str) -> Option<Position> {
    let found = db
        .store()
        .entries_by_events(&w.site, &[event_id(id)])
        .await
        .expect("entries by events");
    let [entry] = found.as_slice() else {
        panic!("one entry for {id}: {found:?}");
    };
    entry.body.refers_to
}

/// A course credited once is paid again after its paid entry was reversed,
/// also by a re-sent completion at the reversed one's instant; a course
/// credited once per CST year counts the year's first and last
/// millisecond in it and nothing beyond; after a rule change from every
/// completion to once, a completion is recognised against the paid entry
/// that was not reversed, not the later one that was.
pub async fn credited_once_reads_see_reversals_year_bounds_and_resent_completions<B: Backend>(db: &B) {
    let store = db.store();
    let w = World::build(store.as_ref(), site_id(), 1).await;
    for (c, repeat) in [
        ("o1", Repeat::Once),
        ("y1", Repeat::PerYearCst),
        ("e1", Repeat::EveryCompletion),
    ] {
        store.put_course(&course(&w, c, repeat)).await.expect("put course");
    }
    let t0 = Millis(NOW.0 - 30 * 86_400_000);
    let t1 = Millis(NOW.0 - 20 * 86_400_000);

    // Once: paid, reversed, then paid again by a re-sent completion.
    let (kind, o1, _) = one(db, done(&w, "o-1", "o1", t0)).await;
    assert_eq!(kind, EntryKind::Awarded);
    let (kind, _, _) = one(db, revocation(&w.site, "o-r", "o-1")).await;
    assert_eq!(kind, EntryKind::Reversal);
    let (kind, o2, dup) = one(db, done(&w, "o-2", "o1", t0)).await;
    assert_eq!(
        (kind, dup),
        (EntryKind::Awarded, Some(event_id("o-1"))),
        "a reversed payment does not count; the re-send is still reported"
    );
    let (kind, _, dup) = one(db, done(&w, "o-3", "o1", t1)).await;
    assert_eq!((kind, dup), (EntryKind::Recognised, None));
    assert_eq!(refers_to(db, &w, "o-3").await, Some(o2), "the paying entry, not {o1:?}");

    // Per CST year: the bounds of each year are its own.
    let (y2024, y2025) = (Millis::cst_year_bounds(2024).0, Millis::cst_year_bounds(2025).0);
    let y2023 = Millis::cst_year_bounds(2023).0;
    let (kind, last_2023, _) = one(db, done(&w, "y-1", "y1", Millis(y2024.0 - 1))).await;
    assert_eq!(kind, EntryKind::Awarded);
    let (kind, first_2024, _) = one(db, done(&w, "y-2", "y1", y2024)).await;
    assert_eq!(kind, EntryKind::Awarded, "2024 starts unpaid");
    let (kind, _, _) = one(db, done(&w, "y-3", "y1", y2023)).await;
    assert_eq!(kind, EntryKind::Recognised, "2023's first millisecond is in 2023");
    assert_eq!(refers_to(db, &w, "y-3").await, Some(last_2023));
    let (kind, _, _) = one(db, done(&w, "y-4", "y1", Millis(y2025.0 - 1))).await;
    assert_eq!(kind, EntryKind::Recognised, "2024's last millisecond is in 2024");
    assert_eq!(refers_to(db, &w, "y-4").await, Some(first_2024));

    // Every completion, then once: two payments, the later one reversed.
    let (_, e1, _) = one(db, done(&w, "e-1", "e1", t0)).await;
    let (kind, _, _) = one(db, done(&w, "e-2", "e1", t1)).await;
    assert_eq!(kind, EntryKind::Awarded);
    one(db, revocation(&w.site, "e-r", "e-2")).await;
    store
        .put_course(&course(&w, "e1", Repeat::Once))
        .await
        .expect("course now once");
    let (kind, _, dup) = one(db, done(&w, "e-3", "e1", t1)).await;
    assert_eq!((kind, dup), (EntryKind::Recognised, Some(event_id("e-2"))));
    assert_eq!(refers_to(db, &w, "e-3").await, Some(e1), "the payment that stands");
}
