//! Scenarios of learner registration and of the site accounts linked to learners.

use super::*;

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
