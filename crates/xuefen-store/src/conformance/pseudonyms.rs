//! Scenarios of pairwise pseudonyms ([`crate::pseudonyms`]) and of erasure:
//! a pseudonym resolves only for the audience it was handed to, and erasing
//! a learner leaves the ledger valid and nothing of the learner behind in
//! the tables the store reads.

use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::LearnerId;
use xuefen_core::pseudonym::{Audience, PseudonymKey};

use super::{Backend, NOW, World, completion, other_site_id, site, site_id};
use crate::pseudonyms::PseudonymRow;
use crate::verify::verify_ledger;

fn rows(key: &PseudonymKey, learner: &LearnerId, audiences: &[Audience]) -> Vec<PseudonymRow> {
    audiences
        .iter()
        .map(|audience| PseudonymRow {
            audience: audience.clone(),
            pseudonym: key.pseudonym(audience, learner),
            learner: learner.clone(),
        })
        .collect()
}

fn audiences() -> [Audience; 3] {
    [
        Audience::Site(site_id()),
        Audience::Site(other_site_id()),
        Audience::Bank,
    ]
}

/// Each audience resolves its own pseudonym of a learner and nobody
/// else's; writing a pseudonym again changes nothing; a pseudonym of a
/// learner who is not registered is not kept.
pub async fn pseudonyms_resolve_only_for_the_audience_they_were_handed_to<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 2).await;
    let key = PseudonymKey::derive(b"conformance identity key of 32 b");
    let all = audiences();
    for learner in &world.learners {
        store
            .remember_pseudonyms(&rows(&key, learner, &all))
            .await
            .expect("remember");
    }
    // Again, and with an unregistered learner among them: no error, no row.
    let stranger = LearnerId::from_random([0x5a; 16]);
    let mut again = rows(&key, &world.learners[0], &all);
    again.extend(rows(&key, &stranger, &all));
    store.remember_pseudonyms(&again).await.expect("remember again");
    store.remember_pseudonyms(&[]).await.expect("remember nothing");
    assert_eq!(
        db.query_i64("select count(*) from learner_pseudonyms")
            .await
            .expect("count"),
        6,
        "two learners, three audiences"
    );
    for learner in &world.learners {
        for shown in &all {
            let pseudonym = key.pseudonym(shown, learner);
            for asking in &all {
                let found = store
                    .learner_by_pseudonym(Some(asking), &pseudonym)
                    .await
                    .expect("resolve");
                let any = store.learner_by_pseudonym(None, &pseudonym).await.expect("resolve");
                assert_eq!(any.as_ref(), Some(learner), "the admin's view finds every audience's");
                if asking == shown {
                    assert_eq!(found.as_ref(), Some(learner), "{asking} resolves its own pseudonym");
                } else {
                    assert_eq!(found, None, "{asking} must not resolve the pseudonym of {shown}");
                }
            }
        }
    }
    let unknown = key.pseudonym(&Audience::Bank, &stranger);
    assert_eq!(
        store
            .learner_by_pseudonym(Some(&Audience::Bank), &unknown)
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(store.learner_by_pseudonym(None, &unknown).await.expect("resolve"), None);
}

/// Erasing a learner keeps every chain valid, removes the learner's
/// pseudonyms, secret, name, document hash and account links, gives each
/// of their version-2 entries a learner id of its own, and leaves another
/// learner untouched.
pub async fn erasure_keeps_the_ledger_valid_and_removes_the_learner_everywhere<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 2).await;
    store
        .create_site(&site(other_site_id()), &super::act("joined"))
        .await
        .expect("other site");
    let events = [
        completion(&world.site, "e-1", world.by_account(0), 5_00),
        completion(&world.site, "e-2", world.by_id(0), 10_00),
        completion(&world.site, "e-3", world.by_account(1), 5_00),
    ];
    store.ingest(&events, NOW).await.expect("ingest");
    let key = PseudonymKey::derive(b"conformance identity key of 32 b");
    for learner in &world.learners {
        store
            .remember_pseudonyms(&rows(&key, learner, &audiences()))
            .await
            .expect("remember");
    }
    // xAPI statements: one by each learner's account, one by a third agent
    // that relates to the erased learner (as its instructor, say).
    store
        .set_xapi_home_page(&world.site, "https://lms.example")
        .await
        .expect("home page");
    let statement = |n: u8, actor: &str, related: &[&str]| crate::NewStatement {
        id: format!("00000000-0000-4000-8000-00000000000{n}"),
        json: format!("{{\"n\": {n}}}"),
        fingerprint: format!("f{n}"),
        verb: "http://adlnet.gov/expapi/verbs/attended".into(),
        activity: Some("http://x.example/object".into()),
        agent: Some(actor.into()),
        authority: None,
        registration: None,
        voids: None,
        stored: NOW,
        related_agents: related.iter().map(|a| (*a).to_owned()).collect(),
        related_activities: vec!["http://x.example/object".into()],
    };
    let (u0, u1) = ("account|https://lms.example|u-0", "account|https://lms.example|u-1");
    let third = "mbox|mailto:teacher@example.com";
    store
        .insert_statements(
            &world.site,
            &[
                statement(1, u0, &[u0]),
                statement(2, u1, &[u1]),
                statement(3, third, &[third, u0]),
            ],
        )
        .await
        .expect("statements");
    let (gone, kept) = (&world.learners[0], &world.learners[1]);
    store.bind_sso_subject(&[1; 32], gone).await.expect("bind");
    store.bind_sso_subject(&[2; 32], kept).await.expect("bind");
    let before = store.learner_entries(gone).await.expect("entries").len();
    assert_eq!(before, 2);
    let reason = Reason::code("pipl_art47", "reason_code").expect("code");
    let at = Millis(NOW.0 + 1_000);
    let erased = store.erase_learner(gone, &reason, at).await.expect("erase");
    assert_eq!(erased.chain, gone.chain(super::CHAINS));
    verify_ledger(store.as_ref(), |_| {})
        .await
        .expect("the ledger verifies after the erasure");

    assert!(!store.learner_exists(gone).await.expect("exists"));
    assert!(store.learner_entries(gone).await.expect("entries").is_empty());
    for audience in &audiences() {
        let p = key.pseudonym(audience, gone);
        assert_eq!(
            store.learner_by_pseudonym(Some(audience), &p).await.expect("resolve"),
            None
        );
        assert_eq!(store.learner_by_pseudonym(None, &p).await.expect("resolve"), None);
        let q = key.pseudonym(audience, kept);
        assert_eq!(
            store
                .learner_by_pseudonym(Some(audience), &q)
                .await
                .expect("resolve")
                .as_ref(),
            Some(kept)
        );
    }
    let ids: Vec<String> = (1..=3)
        .map(|n| format!("00000000-0000-4000-8000-00000000000{n}"))
        .collect();
    let left: Vec<String> = store
        .statements_by_ids(&world.site, &ids)
        .await
        .expect("statements")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        left,
        vec![ids[1].clone()],
        "the erased learner's statements are gone, the other's stay"
    );
    assert_eq!(
        db.query_i64("select count(*) from xapi_statement_related where value like '%|u-0'")
            .await
            .expect("count"),
        0
    );
    assert_eq!(store.learner_by_sso_subject(&[1; 32]).await.expect("find"), None);
    assert_eq!(
        store.learner_by_sso_subject(&[2; 32]).await.expect("find").as_ref(),
        Some(kept)
    );
    let count = |sql: String| async move { db.query_i64(&sql).await.expect("count") };
    let id = gone.as_str();
    for table in [
        "learners where id",
        "learner_secrets where learner_id",
        "learner_accounts where learner_id",
        "learner_pseudonyms where learner_id",
        "learner_sso_bindings where learner_id",
        "ledger_entries where learner_id",
    ] {
        assert_eq!(
            count(format!("select count(*) from {table} = '{id}'")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        count("select count(*) from learner_pseudonyms".into()).await,
        3,
        "the other learner's stay"
    );
    assert_eq!(
        count(format!(
            "select count(*) from ledger_entries where learner_id = '{}'",
            kept.as_str()
        ))
        .await,
        1
    );
    // Erasing again is not found; the other learner is still served.
    assert!(matches!(
        store.erase_learner(gone, &reason, at).await,
        Err(crate::StoreError::NotFound)
    ));
    assert_eq!(store.learner_entries(kept).await.expect("entries").len(), 1);
}

/// A single sign-on subject is bound to one learner: the first binding
/// stays, a binding to an unregistered learner binds nothing.
pub async fn an_sso_subject_is_bound_to_its_first_learner_only<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 2).await;
    let (first, second) = (&world.learners[0], &world.learners[1]);
    assert_eq!(store.learner_by_sso_subject(&[7; 32]).await.expect("find"), None);
    store.bind_sso_subject(&[7; 32], first).await.expect("bind");
    store.bind_sso_subject(&[7; 32], first).await.expect("bind again");
    store.bind_sso_subject(&[7; 32], second).await.expect("bind to another");
    assert_eq!(
        store.learner_by_sso_subject(&[7; 32]).await.expect("find").as_ref(),
        Some(first)
    );
    store
        .bind_sso_subject(&[8; 32], &LearnerId::from_random([0x5a; 16]))
        .await
        .expect("bind nobody");
    assert_eq!(store.learner_by_sso_subject(&[8; 32]).await.expect("find"), None);
    assert_eq!(
        db.query_i64("select count(*) from learner_sso_bindings")
            .await
            .expect("count"),
        1
    );
}
