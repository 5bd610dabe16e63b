//! Conformance scenario of the statement query's `related_agents` and
//! `related_activities`.

use super::{Backend, NOW, act, site, site_id};
use crate::StatementQuery;

/// `agent` with `related_agents` matches any agent the statement relates
/// to, `activity` with `related_activities` any activity; without them
/// only the actor and the object match.
pub async fn xapi_related_agents_and_activities_match_beyond_actor_and_object<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    let mut s = crate::NewStatement {
        id: "00000000-0000-4000-8000-000000000001".into(),
        json: "{}".into(),
        fingerprint: "f1".into(),
        verb: "http://adlnet.gov/expapi/verbs/attended".into(),
        activity: Some("http://x.example/object".into()),
        agent: Some("mbox|mailto:actor@example.com".into()),
        registration: None,
        voids: None,
        stored: NOW,
        related_agents: vec![
            "mbox|mailto:actor@example.com".into(),
            "mbox|mailto:instructor@example.com".into(),
        ],
        related_activities: vec!["http://x.example/object".into(), "http://x.example/parent".into()],
    };
    store.insert_statements(&site_id(), &[s.clone()]).await.expect("insert");
    s.related_agents.push("mbox|mailto:other@example.com".into());
    store
        .insert_statements(&site_id(), &[s])
        .await
        .expect("an identical re-send");
    let ids = |q: StatementQuery| {
        let store = store.clone();
        async move {
            store
                .query_statements(&site_id(), &StatementQuery { limit: 10, ..q })
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let one = vec!["00000000-0000-4000-8000-000000000001".to_owned()];
    let instructor = Some("mbox|mailto:instructor@example.com".to_owned());
    assert!(
        ids(StatementQuery {
            agent: instructor.clone(),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(StatementQuery {
            agent: instructor,
            related_agents: true,
            ..Default::default()
        })
        .await,
        one
    );
    let parent = Some("http://x.example/parent".to_owned());
    assert!(
        ids(StatementQuery {
            activity: parent.clone(),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(StatementQuery {
            activity: parent,
            related_activities: true,
            ..Default::default()
        })
        .await,
        one
    );
    assert!(
        ids(StatementQuery {
            agent: Some("mbox|mailto:other@example.com".into()),
            related_agents: true,
            ..Default::default()
        })
        .await
        .is_empty(),
        "a re-send writes nothing, its related rows neither"
    );
}
