//! Conformance scenario of the statement query's `related_agents` and
//! `related_activities`.

use super::{Backend, NOW, act, site, site_id};
use crate::StatementQuery;

/// The agent key of the authority the statements are stored under.
const AUTHORITY: &str = "account|https://lrs.example.org/|site-a";

/// `agent` with `related_agents` matches any agent the statement relates
/// to, its authority included, `activity` with `related_activities` any
/// activity; without them only the actor and the object match. The
/// authority is matched in the statement's row: it has no related row.
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
        authority: Some(AUTHORITY.into()),
        registration: None,
        voids: None,
        stored: NOW,
        related_agents: vec![
            "mbox|mailto:actor@example.com".into(),
            AUTHORITY.into(),
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
    let authority = Some(AUTHORITY.to_owned());
    assert!(
        ids(StatementQuery {
            agent: authority.clone(),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids(StatementQuery {
            agent: authority,
            related_agents: true,
            ..Default::default()
        })
        .await,
        one
    );
    assert_eq!(
        db.query_i64(&format!(
            "select count(*) from xapi_statement_related where value = '{AUTHORITY}'"
        ))
        .await
        .expect("authority rows"),
        0,
        "the authority is in the statement's row, not a related row"
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

/// Migration 0015 over statements stored by a release that did not count
/// the 2.0.0 context agents and groups as related agents: it lists the
/// statements that name either, and [`crate::xapi::backfill_related`]
/// gives each its related rows once; a statement without them is left out.
pub async fn migrating_statements_from_0014_reindexes_their_context_agents_once<B: Backend>(_fresh: &B) {
    let db = B::fresh_at_version(14).await;
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    let with_context = "00000000-0000-4000-8000-0000000000c1";
    let without = "00000000-0000-4000-8000-0000000000c2";
    // Written as the release at 0014 wrote them: the statement's row, and
    // no related row for its actor and object (matched in the row).
    let statement = |id: &str, context: &str| {
        let body = format!(
            r#"{{"id":"{id}","actor":{{"mbox":"mailto:actor@example.com"}},"verb":{{"id":"http://adlnet.gov/expapi/verbs/attended"}},"object":{{"id":"http://x.example/object"}}{context}}}"#
        );
        format!(
            "insert into xapi_statements
                 (site_id, statement_id, fingerprint, verb, activity, agent, stored_ms, body)
             values ('{site}', '{id}', 'f-{id}', 'http://adlnet.gov/expapi/verbs/attended',
                     'http://x.example/object', 'mbox|mailto:actor@example.com', {now}, '{body}')",
            site = site_id().as_str(),
            now = NOW.0,
        )
    };
    let context = r#","context":{"contextAgents":[{"objectType":"contextAgent","agent":{"mbox":"mailto:Coach@example.com"}}],"contextGroups":[{"objectType":"contextGroup","group":{"objectType":"Group","member":[{"mbox":"mailto:peer@example.com"}]}}]}"#;
    for sql in [statement(with_context, context), statement(without, "")] {
        db.execute(&sql).await.expect("statements under 0014");
    }
    let related = |agent: &'static str| {
        let store = store.clone();
        async move {
            store
                .query_statements(
                    &site_id(),
                    &StatementQuery {
                        agent: Some(agent.to_owned()),
                        related_agents: true,
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let coach_rows = "select count(*) from xapi_statement_related where value = 'mbox|mailto:coach@example.com'";
    assert_eq!(db.query_i64(coach_rows).await.expect("coach rows"), 0);

    db.migrate().await;
    store.ready().await.expect("schema is current");
    let listed = db
        .query_i64("select count(*) from xapi_related_backfill")
        .await
        .expect("listed");
    assert_eq!(listed, 1, "only the statement naming context agents is listed");
    assert_eq!(crate::xapi::backfill_related(&*store, 1).await.expect("backfill"), 1);
    for agent in ["mbox|mailto:coach@example.com", "mbox|mailto:peer@example.com"] {
        assert_eq!(related(agent).await, vec![with_context.to_owned()], "{agent}");
    }
    assert_eq!(
        db.query_i64(&format!(
            "select count(*) from xapi_statement_related where statement_id = '{with_context}'
              and value in ('mbox|mailto:actor@example.com', 'http://x.example/object')"
        ))
        .await
        .expect("actor and object rows"),
        0,
        "the rows a write makes now: the actor and the object are matched in the statement's own columns"
    );
    let mut both = related("mbox|mailto:actor@example.com").await;
    both.sort();
    assert_eq!(
        both,
        vec![with_context.to_owned(), without.to_owned()],
        "the actor still matches both"
    );
    assert_eq!(
        db.query_i64("select count(*) from xapi_related_backfill")
            .await
            .expect("left"),
        0
    );
    assert_eq!(
        crate::xapi::backfill_related(&*store, 1).await.expect("again"),
        0,
        "a second run finds nothing to do"
    );
}
