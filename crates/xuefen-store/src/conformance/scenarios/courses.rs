//! Scenarios of the course catalogue: rule versions grow only when the terms change.

use super::*;

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
        store
            .course(&site_id(), &crate::conformance::code("nope"))
            .await
            .expect("course"),
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
        c.course = crate::conformance::code("c1");
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
