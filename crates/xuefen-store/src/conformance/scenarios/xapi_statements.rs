//! Scenarios of the xAPI door's statements and links: stored once per (site, id), queried
//! and paged without voided statements, linked to one account and one course.

use super::*;

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
        authority: None,
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
    let c2 = crate::conformance::scored_course(site_id());
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
