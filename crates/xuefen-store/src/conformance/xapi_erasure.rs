//! Conformance scenarios of erasure in the xAPI door
//! ([`crate::xapi_erasure`]): erasing a learner deletes every stored
//! statement and document that names them — by account, by registered
//! `mbox_sha1sum`, by a clear `mbox` whose SHA-1 is such a sum, as actor,
//! related agent or any agent of the body — on every site, with what only
//! those statements kept alive (voided targets, attachment bytes), and
//! takes the documents off the site's usage; other people's statements
//! and documents stay as they were.

use serde_json::{Value, json};
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::{LearnerId, SiteId};
use xuefen_core::xapi::attachments::Part;
use xuefen_core::xapi::related::related;

use super::{Backend, NOW, World, account, act, other_site_id, site, site_id};
use crate::xapi::{NewStatement, StatementQuery};
use crate::xapi_documents::{DocumentKind, DocumentLimits, DocumentScope, DocumentWrite, Preconditions};
use crate::xapi_erasure::sha1_hex;
use crate::{ServiceStore, Written};

const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
const ATTENDED: &str = "http://adlnet.gov/expapi/verbs/attended";
/// The erased learner's mailbox, as their LMS writes it.
const GONE_MBOX: &str = "mailto:Gone.Person@example.com";
/// A mailbox two learners share, registered by each site for its own one.
const FAMILY_MBOX: &str = "mailto:family@example.com";
const TEACHER_MBOX: &str = "mailto:teacher@example.com";

fn sid(n: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{n:02}")
}

/// A statement as the door stores it: its id, the site's authority, and
/// the keys and activities the door indexes ([`related`]).
fn statement(site: &str, home: &str, n: u8, mut body: Value) -> NewStatement {
    let id = sid(n);
    body["id"] = id.clone().into();
    body["authority"] = json!({"objectType": "Agent", "name": site, "account": {"homePage": home, "name": site}});
    let (related_agents, related_activities) = related(&body);
    let agent = related(&json!({"actor": body["actor"].clone()})).0.into_iter().next();
    let object = &body["object"];
    let activity = match object.get("objectType").and_then(Value::as_str) {
        None | Some("Activity") => object["id"].as_str().map(str::to_owned),
        Some(_) => None,
    };
    let verb = body["verb"]["id"].as_str().unwrap_or_default().to_owned();
    let voids = (verb == VOIDED)
        .then(|| object["id"].as_str().map(str::to_owned))
        .flatten();
    NewStatement {
        id,
        json: body.to_string(),
        fingerprint: format!("fingerprint-{n}"),
        verb,
        activity,
        agent,
        authority: xuefen_core::xapi::agent_key(&body["authority"].to_string()).ok(),
        registration: None,
        voids,
        stored: NOW,
        related_agents,
        related_activities,
    }
}

fn by_account(home: &str, name: &str) -> Value {
    json!({"objectType": "Agent", "account": {"homePage": home, "name": name}})
}

fn by_mbox(mbox: &str, name: &str) -> Value {
    json!({"objectType": "Agent", "name": name, "mbox": mbox})
}

fn attended(actor: Value) -> Value {
    json!({"actor": actor, "verb": {"id": ATTENDED}, "object": {"id": "http://x.example/course"}})
}

fn voiding(actor: Value, target: u8) -> Value {
    json!({"actor": actor, "verb": {"id": VOIDED}, "object": {"objectType": "StatementRef", "id": sid(target)}})
}

fn with_attachments(mut body: Value, sha2s: &[&str]) -> Value {
    body["attachments"] = sha2s
        .iter()
        .map(|s| json!({"usageType": "http://x.example/cert", "display": {"en": "cert"}, "contentType": "text/plain", "length": 4, "sha2": s}))
        .collect();
    body
}

async fn erase(store: &dyn ServiceStore, learner: &LearnerId) {
    let reason = Reason::code("pipl_art47", "reason_code").expect("code");
    store
        .erase_learner(learner, &reason, Millis(NOW.0 + 1_000))
        .await
        .expect("erase");
}

/// Every statement that names the erased learner goes: by the clear
/// mailbox as written (matched by its SHA-1 against the registered sum) as
/// actor, instructor or 2.0.0 context agent, by its lower-case key, by the
/// registered sum, by the learner's accounts (the home page with or without
/// its trailing slash; an account spelled like the site, which is also the
/// site's authority, as actor only), on every site; with it the statement
/// it alone voided and the attachment bytes it alone declared. A voided
/// statement still voided by another, the statements of the other learner,
/// of a teacher and of a stranger, and a shared mailbox another site
/// registered for its own learner all stay, and no stored row holds the
/// erased person's mailbox, name or sum any more.
pub async fn xapi_erasure_deletes_every_statement_that_names_the_learner_and_nothing_else<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 2).await;
    let (xihu, binjiang) = (world.site.clone(), other_site_id());
    store
        .create_site(&site(binjiang.clone()), &act("joined"))
        .await
        .expect("other site");
    let (gone, kept) = (&world.learners[0], &world.learners[1]);
    // Xihu's LMS declares its home page with a trailing slash and writes it
    // without one; Binjiang declared none (the default home page).
    let home = "https://lms.example";
    store
        .set_xapi_home_page(&xihu, "https://lms.example/")
        .await
        .expect("home page");
    let default_home = format!("{}{binjiang}", crate::xapi_erasure::DEFAULT_HOME_PAGE_PREFIX);
    for (s, acct, learner) in [
        (&xihu, "xihu", gone),
        (&binjiang, "g-0", gone),
        (&binjiang, "u-0", kept),
    ] {
        store
            .link_account(s, &account(acct), learner, None)
            .await
            .expect("link");
    }
    let sum = sha1_hex(GONE_MBOX.as_bytes());
    let family = sha1_hex(FAMILY_MBOX.as_bytes());
    for (s, acct, sum) in [
        (&xihu, "u-0", &sum),
        (&xihu, "u-0", &family),
        (&binjiang, "u-0", &family),
    ] {
        assert_eq!(
            store
                .link_mbox_sha1sum(s, &account(acct), sum)
                .await
                .expect("mbox link"),
            Written::Created
        );
    }
    let (a, b) = (sha1_hex(b"only the erased"), sha1_hex(b"shared"));
    let (a, b) = (a.repeat(2)[..64].to_owned(), b.repeat(2)[..64].to_owned());
    store
        .put_attachments(
            &xihu,
            &[
                Part {
                    sha2: a.clone(),
                    content_type: "text/plain".into(),
                    body: b"Gone Person's certificate".to_vec(),
                },
                Part {
                    sha2: b.clone(),
                    content_type: "text/plain".into(),
                    body: b"a shared form".to_vec(),
                },
            ],
        )
        .await
        .expect("attachments");
    let teacher = by_mbox(TEACHER_MBOX, "Teacher Wang");
    let gone_lower = by_mbox(&GONE_MBOX.to_ascii_lowercase(), "Gone Person");
    let x = |n: u8, body: Value| statement("xihu", "https://lms.example/", n, body);
    let xihu_statements = vec![
        x(1, attended(by_mbox(GONE_MBOX, "Gone Person"))),
        x(2, {
            let mut s = attended(teacher.clone());
            s["context"] = json!({"instructor": gone_lower});
            s
        }),
        x(3, {
            let mut s = attended(teacher.clone());
            s["context"] =
                json!({"contextAgents": [{"objectType": "contextAgent", "agent": by_mbox(GONE_MBOX, "Gone Person")}]});
            s
        }),
        x(4, attended(by_account(home, "u-0"))),
        x(5, attended(json!({"objectType": "Agent", "mbox_sha1sum": sum}))),
        x(6, with_attachments(attended(by_account(home, "u-1")), &[&b])),
        x(7, with_attachments(attended(by_account(home, "u-0")), &[&a, &b])),
        x(8, attended(by_account(home, "u-1"))),
        x(9, voiding(by_mbox(GONE_MBOX, "Gone Person"), 8)),
        x(10, attended(by_account(home, "u-1"))),
        x(11, voiding(teacher.clone(), 10)),
        x(12, voiding(by_account(home, "u-0"), 10)),
        x(13, attended(by_account(home, "xihu"))),
        x(14, attended(teacher.clone())),
        x(15, {
            let mut s = attended(by_mbox("mailto:someone@example.com", "Someone"));
            s["object"] = by_account(home, "u-1");
            s
        }),
        x(16, attended(by_account(home, "u-0"))),
        x(17, voiding(teacher.clone(), 16)),
        x(18, attended(by_mbox(FAMILY_MBOX, "Family"))),
    ];
    let y = |n: u8, body: Value| statement("binjiang", &default_home, n, body);
    let binjiang_statements = vec![
        y(21, attended(by_account(&default_home, "g-0"))),
        y(22, attended(by_account(&default_home, "u-0"))),
        y(23, attended(by_account(home, "u-0"))),
        y(24, attended(by_mbox(GONE_MBOX, "Gone Person"))),
        y(25, attended(by_mbox(FAMILY_MBOX, "Family"))),
    ];
    store
        .insert_statements(&xihu, &xihu_statements)
        .await
        .expect("statements");
    store
        .insert_statements(&binjiang, &binjiang_statements)
        .await
        .expect("statements");
    let count = |sql: String| async move { db.query_i64(&sql).await.expect(&sql) };
    assert!(
        count(format!(
            "select count(*) from xapi_statements where body like '%{GONE_MBOX}%'"
        ))
        .await
            > 0
    );

    erase(store.as_ref(), gone).await;

    let left = |site: SiteId, ids: Vec<String>| {
        let store = store.clone();
        async move {
            let mut rows = store.statements_by_ids(&site, &ids).await.expect("statements");
            rows.sort_by(|p, q| p.id.cmp(&q.id));
            rows.into_iter().map(|r| (r.id, r.voided)).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        left(xihu.clone(), (1..=18).map(sid).collect()).await,
        vec![
            (sid(6), false),
            (sid(10), true),
            (sid(11), false),
            (sid(14), false),
            (sid(15), false),
            (sid(17), false),
        ],
        "on Xihu only the statements that do not name the erased learner stay; 10 is still voided by 11"
    );
    assert_eq!(
        left(binjiang.clone(), (21..=25).map(sid).collect()).await,
        vec![(sid(22), false), (sid(25), false)],
        "on Binjiang its own u-0 and the shared mailbox it registered for its learner stay"
    );
    for agent in [
        format!("mbox|{}", GONE_MBOX.to_ascii_lowercase()),
        format!("mbox_sha1sum|{sum}"),
        format!("account|{home}|u-0"),
    ] {
        let query = StatementQuery {
            agent: Some(agent.clone()),
            related_agents: true,
            limit: 100,
            ..StatementQuery::default()
        };
        for s in [&xihu, &binjiang] {
            assert!(
                store.query_statements(s, &query).await.expect("query").is_empty(),
                "{s}: {agent}"
            );
        }
    }
    let kept_query = StatementQuery {
        agent: Some(format!("account|{home}|u-1")),
        related_agents: true,
        limit: 100,
        ..StatementQuery::default()
    };
    let kept_ids: Vec<String> = store
        .query_statements(&xihu, &kept_query)
        .await
        .expect("query")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        kept_ids,
        vec![sid(15), sid(11), sid(6)],
        "the other learner's statements answer as before (11 through the statement it voids)"
    );
    let sums = store
        .attachments(&xihu, &[a.clone(), b.clone()])
        .await
        .expect("attachments");
    assert_eq!(
        sums.into_iter().map(|p| p.sha2).collect::<Vec<_>>(),
        vec![b.clone()],
        "the bytes only the erased statement declared are gone"
    );
    let lower = GONE_MBOX.to_ascii_lowercase();
    for (table, column) in [
        ("xapi_statements", "lower(body)"),
        ("xapi_statements", "agent"),
        ("xapi_statement_related", "value"),
        ("xapi_mbox_links", "mbox_sha1sum"),
    ] {
        for needle in [
            lower.as_str(),
            "gone person",
            sum.as_str(),
            "lms.example|u-0",
            "|g-0",
            "lms.example|xihu",
        ] {
            let sql = format!("select count(*) from {table} where {column} like '%{needle}%'");
            assert_eq!(count(sql.clone()).await, 0, "{sql}");
        }
    }
    assert_eq!(
        count(format!(
            "select count(*) from xapi_statements where body like '%{FAMILY_MBOX}%'"
        ))
        .await,
        1,
        "the shared mailbox stays where it names the other learner"
    );
    assert_eq!(
        count(format!("select count(*) from xapi_attachments where sha2 = '{a}'")).await,
        0
    );
    // The other learner is still matched and credited as before.
    assert!(store.learner_exists(kept).await.expect("exists"));
}

fn scope(kind: DocumentKind, agent: &str, registration: &str) -> DocumentScope {
    DocumentScope {
        kind,
        activity: if kind == DocumentKind::AgentProfile {
            String::new()
        } else {
            "http://x.example/course".into()
        },
        agent: if kind == DocumentKind::ActivityProfile {
            String::new()
        } else {
            agent.into()
        },
        registration: registration.into(),
    }
}

/// A document to write: its site, scope, id and body.
type Doc<'a> = (&'a SiteId, DocumentScope, &'a str, &'a str);

/// The bytes of the documents of `site` among `docs`.
fn bytes_of(site: &SiteId, docs: &[Doc<'_>]) -> u64 {
    docs.iter()
        .filter(|(s, ..)| *s == site)
        .map(|(.., body)| body.len() as u64)
        .sum()
}

fn document(scope: DocumentScope, id: &str, body: &str) -> DocumentWrite {
    DocumentWrite {
        scope,
        id: id.into(),
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
        merge: false,
        preconditions: Preconditions::default(),
        limits: DocumentLimits::default(),
        now: NOW,
    }
}

/// The erased learner's State and Agent Profile documents go — under their
/// account (on every site), under their registered sum, and under a clear
/// mailbox whose SHA-1 is that sum — and each site's usage goes down by
/// exactly those documents and bytes; the other learner's documents, the
/// Activity Profile and another site's own account of the same name stay,
/// and the usage still counts what is stored through later writes.
pub async fn xapi_erasure_deletes_the_learners_documents_and_takes_them_off_the_usage<B: Backend>(db: &B) {
    let store = db.store();
    let world = World::build(store.as_ref(), site_id(), 2).await;
    let (xihu, binjiang) = (world.site.clone(), other_site_id());
    store
        .create_site(&site(binjiang.clone()), &act("joined"))
        .await
        .expect("other site");
    let home = "https://lms.example";
    store.set_xapi_home_page(&xihu, home).await.expect("home page");
    let mailbox = "mailto:gone@example.com";
    let sum = sha1_hex(mailbox.as_bytes());
    store
        .link_mbox_sha1sum(&xihu, &account("u-0"), &sum)
        .await
        .expect("mbox link");
    let (gone_account, kept_account) = (format!("account|{home}|u-0"), format!("account|{home}|u-1"));
    let binjiang_own = format!(
        "account|{}{binjiang}|u-0",
        crate::xapi_erasure::DEFAULT_HOME_PAGE_PREFIX
    );
    let registration = "0a1b2c3d-0000-4000-8000-000000000001";
    let gone_docs: [Doc<'_>; 5] = [
        (
            &xihu,
            scope(DocumentKind::State, &gone_account, ""),
            "bookmark",
            r#"{"page":3,"who":"Gone Person"}"#,
        ),
        (
            &xihu,
            scope(DocumentKind::State, &gone_account, registration),
            "progress",
            r#"{"done":0.5}"#,
        ),
        (
            &xihu,
            scope(DocumentKind::AgentProfile, &format!("mbox|{mailbox}"), ""),
            "resume",
            r#"{"name":"Gone Person"}"#,
        ),
        (
            &xihu,
            scope(DocumentKind::AgentProfile, &format!("mbox_sha1sum|{sum}"), ""),
            "prefs",
            r#"{"lang":"zh"}"#,
        ),
        (
            &binjiang,
            scope(DocumentKind::State, &gone_account, ""),
            "bookmark",
            r#"{"page":9}"#,
        ),
    ];
    let kept_docs: [Doc<'_>; 4] = [
        (
            &xihu,
            scope(DocumentKind::State, &kept_account, ""),
            "bookmark",
            r#"{"page":1}"#,
        ),
        (
            &xihu,
            scope(DocumentKind::ActivityProfile, "", ""),
            "syllabus",
            r#"{"weeks":4}"#,
        ),
        (
            &xihu,
            scope(DocumentKind::State, "mbox|mailto:someone@example.com", ""),
            "bookmark",
            r#"{"p":2}"#,
        ),
        (
            &binjiang,
            scope(DocumentKind::State, &binjiang_own, ""),
            "bookmark",
            r#"{"page":7}"#,
        ),
    ];
    for (s, scope, id, body) in gone_docs.iter().chain(kept_docs.iter()) {
        let written = store
            .write_document(s, &document(scope.clone(), id, body))
            .await
            .expect("write");
        assert_eq!(written, Ok(Written::Created), "{scope:?} {id}");
    }
    let usage = |s: SiteId| {
        let store = store.clone();
        async move {
            let u = store.document_usage(Some(&s)).await.expect("usage");
            u.first().map_or((0, 0), |u| (u.documents, u.bytes))
        }
    };
    let all: Vec<_> = gone_docs.iter().chain(kept_docs.iter()).cloned().collect();
    assert_eq!(usage(xihu.clone()).await, (7, bytes_of(&xihu, &all)));
    assert_eq!(usage(binjiang.clone()).await, (2, bytes_of(&binjiang, &all)));

    erase(store.as_ref(), &world.learners[0]).await;

    for (s, scope, id, _) in &gone_docs {
        assert_eq!(
            store.document(s, scope, id).await.expect("read"),
            None,
            "{s} {scope:?} {id}"
        );
    }
    for (s, scope, id, body) in &kept_docs {
        let doc = store.document(s, scope, id).await.expect("read");
        assert_eq!(
            doc.map(|d| d.body),
            Some(body.as_bytes().to_vec()),
            "{s} {scope:?} {id}"
        );
    }
    assert_eq!(usage(xihu.clone()).await, (3, bytes_of(&xihu, &kept_docs[..])));
    assert_eq!(usage(binjiang.clone()).await, (1, bytes_of(&binjiang, &kept_docs[..])));
    let count = |sql: &str| {
        let sql = sql.to_owned();
        async move { db.query_i64(&sql).await.expect(&sql) }
    };
    assert_eq!(
        count("select count(*) from xapi_documents where agent like '%|u-0' and agent like '%lms.example%'").await,
        0
    );
    assert_eq!(
        count("select count(*) from xapi_documents where agent like '%gone%'").await,
        0
    );
    assert_eq!(
        count(&format!(
            "select count(*) from xapi_documents where agent like '%{sum}%'"
        ))
        .await,
        0
    );
    // Later writes and deletes keep the usage equal to what is stored.
    let more = document(scope(DocumentKind::State, &kept_account, ""), "notes", r#"{"n":"x"}"#);
    assert_eq!(
        store.write_document(&xihu, &more).await.expect("write"),
        Ok(Written::Created)
    );
    let kept_scope = scope(DocumentKind::State, &kept_account, "");
    assert_eq!(
        store
            .delete_documents(&xihu, &kept_scope, Some("bookmark"), &Preconditions::default())
            .await
            .expect("delete"),
        Ok(1)
    );
    let stored = count("select count(*) from xapi_documents where site_id = 'xihu'").await;
    let stored_bytes = count("select coalesce(sum(length(body)), 0) from xapi_documents where site_id = 'xihu'").await;
    let (documents, bytes) = usage(xihu.clone()).await;
    assert_eq!((documents as i64, bytes as i64), (stored, stored_bytes));
    assert_eq!(documents, 3);
}
