//! Tests of the planner.

use super::*;
use crate::amount::{Credits, Hours};
use crate::ids::Category;
use crate::rule::CourseTerms;
use crate::rule::CreditRule;
use crate::verify::ChainVerifier;

const NOW: Millis = Millis(1_760_000_000_000);

fn site() -> SiteId {
    SiteId::parse("xihu").expect("id")
}
fn learner(n: u8) -> LearnerId {
    LearnerId::from_random([n; 16])
}
fn completion(id: &str, who: u8, course: &str) -> Event {
    Event {
        site: site(),
        id: EventId::parse(id).expect("id"),
        body: EventBody::Completion(Completion {
            course: CourseCode::parse(course).expect("code"),
            learner: LearnerRef::Id(learner(who)),
            completed_at: Millis(NOW.0 - 1000),
            score: None,
            hours: Some(Hours::from_cents(10_00)),
        }),
    }
}
fn revocation(id: &str, target: &str) -> Event {
    Event {
        site: site(),
        id: EventId::parse(id).expect("id"),
        body: EventBody::Revocation(Revocation {
            target: EventId::parse(target).expect("id"),
            code: Reason::parse("entered_in_error", "reason_code").expect("code"),
            reason: Reason::parse("entered in error", "reason").expect("reason"),
        }),
    }
}
fn lookups() -> Lookups {
    let mut l = Lookups::default();
    l.learner_chains.insert(learner(1), 0);
    l.learner_chains.insert(learner(2), 1);
    l.learner_secrets.insert(learner(1), [1; 32]);
    l.learner_secrets.insert(learner(2), [2; 32]);
    l.courses.insert(
        (site(), CourseCode::parse("c1").expect("code")),
        CourseTerms {
            category: Category::parse("community").expect("cat"),
            rule: CreditRule::PerHours {
                hours_per_credit: Hours::from_cents(5_00),
                cap: Credits::from_cents(4_00),
            },
            pass_mark: None,
            rule_version: 1,
            recognition_group: None,
            offered_from: None,
            repeat: crate::rule::Repeat::Once,
        },
    );
    l
}

#[test]
fn a_batch_with_a_repeat_writes_once_and_reports_a_duplicate() {
    let batch = [
        completion("e1", 1, "c1"),
        completion("e1", 1, "c1"),
        completion("e2", 2, "c1"),
    ];
    let p = plan(&batch, NOW, &lookups());
    assert_eq!(p.entries.len(), 2);
    assert!(matches!(p.outcomes[0], Outcome::Accepted { credits, .. } if credits == Credits::from_cents(2_00)));
    assert_eq!(
        p.outcomes[1],
        Outcome::Duplicate {
            position: Position { chain: 0, seq: 1 },
            kind: EntryKind::Awarded,
            credits: Credits::from_cents(2_00)
        }
    );
}

#[test]
fn the_same_key_with_other_content_is_a_conflict_naming_the_field() {
    let mut changed = completion("e1", 1, "c1");
    if let EventBody::Completion(c) = &mut changed.body {
        c.hours = Some(Hours::from_cents(11_00));
    }
    let p = plan(&[completion("e1", 1, "c1"), changed], NOW, &lookups());
    assert_eq!(
        p.outcomes[1],
        Outcome::Conflict {
            field: "hours",
            position: Position { chain: 0, seq: 1 }
        }
    );
}

#[test]
fn a_rejected_item_does_not_block_the_others() {
    let batch = [
        completion("e1", 9, "c1"),
        completion("e2", 1, "nope"),
        completion("e3", 1, "c1"),
    ];
    let p = plan(&batch, NOW, &lookups());
    assert!(matches!(&p.outcomes[0], Outcome::Rejected(r) if r.code == "unknown_learner"));
    assert!(matches!(&p.outcomes[1], Outcome::Rejected(r) if r.error.field == "course"));
    assert!(matches!(
        p.outcomes[2],
        Outcome::Accepted {
            position: Position { chain: 0, seq: 1 },
            ..
        }
    ));
}

#[test]
fn a_revocation_reverses_once_and_chains_continue() {
    let batch = [
        completion("e1", 1, "c1"),
        revocation("r1", "e1"),
        revocation("r2", "e1"),
        revocation("r3", "r1"),
    ];
    let p = plan(&batch, NOW, &lookups());
    assert!(
        matches!(p.outcomes[1], Outcome::Accepted { kind: EntryKind::Reversal, credits, .. } if credits == Credits::from_cents(-2_00))
    );
    assert!(matches!(&p.outcomes[2], Outcome::Rejected(r) if r.code == "already_revoked"));
    assert!(matches!(&p.outcomes[3], Outcome::Rejected(r) if r.code == "target_not_revocable"));
    let mut v = ChainVerifier::new(0);
    for e in &p.entries {
        v.push(e).expect("chain verifies");
    }
    let head = p.heads[&0];
    assert_eq!(v.finish(head.seq, &head.hash), Ok(2));
}

#[test]
fn a_completion_before_the_course_was_offered_is_rejected_naming_completed_at() {
    let mut l = lookups();
    let key = (site(), CourseCode::parse("c1").expect("code"));
    if let Some(t) = l.courses.get_mut(&key) {
        t.offered_from = Some(Millis(NOW.0 - 500));
    }
    let p = plan(&[completion("e1", 1, "c1")], NOW, &l);
    assert!(matches!(&p.outcomes[0], Outcome::Rejected(r)
        if r.code == "completed_before_course_offered" && r.error.field == "completed_at"));
    assert!(p.entries.is_empty());
}

#[test]
fn completions_in_the_future_or_before_2000_are_rejected() {
    let mut future = completion("e1", 1, "c1");
    let mut old = completion("e2", 1, "c1");
    if let EventBody::Completion(c) = &mut future.body {
        c.completed_at = Millis(NOW.0 + COMPLETED_AT_FUTURE_SKEW_MS + 1);
    }
    if let EventBody::Completion(c) = &mut old.body {
        c.completed_at = Millis(COMPLETED_AT_MIN_MS - 1);
    }
    let p = plan(&[future, old], NOW, &lookups());
    assert!(
        p.outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Rejected(r) if r.error.field == "completed_at"))
    );
    assert!(p.entries.is_empty());
}
