//! Conformance scenarios of the xAPI document port
//! ([`crate::xapi_documents::XapiDocumentStore`]): preconditions, merge,
//! size limits, tenancy, and the canonical Activity Objects.

use xuefen_core::event::Millis;
use xuefen_core::xapi::documents::etag;

use super::{Backend, NOW, act, entry_count, other_site_id, site, site_id};
use crate::Written;
use crate::xapi_documents::{
    DocumentKind, DocumentLimits, DocumentRefusal, DocumentScope, DocumentWrite, Preconditions, TagMatch,
};

fn scope(kind: DocumentKind) -> DocumentScope {
    DocumentScope {
        kind,
        activity: "http://www.example.com/activityId/hashset".into(),
        agent: if kind == DocumentKind::ActivityProfile {
            String::new()
        } else {
            "account|http://www.example.com/agentId/1|Rick James".into()
        },
        registration: String::new(),
    }
}

fn write(kind: DocumentKind, id: &str, content_type: &str, body: &str) -> DocumentWrite {
    DocumentWrite {
        scope: scope(kind),
        id: id.into(),
        content_type: content_type.into(),
        body: body.as_bytes().to_vec(),
        merge: false,
        preconditions: Preconditions {
            required_to_overwrite: kind != DocumentKind::State,
            ..Preconditions::default()
        },
        limits: DocumentLimits::default(),
        now: NOW,
    }
}

fn if_match(w: DocumentWrite, tag: &str) -> DocumentWrite {
    DocumentWrite {
        preconditions: Preconditions {
            if_match: Some(TagMatch::Tags(vec![tag.into()])),
            ..w.preconditions
        },
        ..w
    }
}

fn at(w: DocumentWrite, ms: i64) -> DocumentWrite {
    DocumentWrite { now: Millis(ms), ..w }
}

async fn sites<B: Backend>(db: &B) {
    let store = db.store();
    store.create_site(&site(site_id()), &act("joined")).await.expect("site");
    store
        .create_site(&site(other_site_id()), &act("joined"))
        .await
        .expect("site");
}

/// ETags are the SHA-1 of the bytes; If-Match, If-None-Match and the
/// "no precondition over an existing profile" rule refuse a write without
/// changing anything; POST merges one level deep into a JSON object and
/// only into one; DELETE of one document checks If-Match, of a scope
/// removes them all; `since` lists documents updated after it.
pub async fn xapi_documents_honour_preconditions_and_merge<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let s = site_id();
    let kind = DocumentKind::AgentProfile;
    let first = write(kind, "p1", "application/json", r#"{"a":1,"b":{"c":2}}"#);
    assert_eq!(
        store.write_document(&s, &first).await.expect("put"),
        Ok(Written::Created)
    );
    let doc = store
        .document(&s, &scope(kind), "p1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(doc.etag, etag(br#"{"a":1,"b":{"c":2}}"#));
    assert_eq!(doc.body, br#"{"a":1,"b":{"c":2}}"#);
    assert_eq!(doc.content_type, "application/json");

    let strict = |w: DocumentWrite| DocumentWrite {
        preconditions: Preconditions {
            required_to_create: true,
            ..w.preconditions
        },
        ..w
    };
    assert_eq!(
        store
            .write_document(&s, &strict(write(kind, "p9", "application/json", "{}")))
            .await
            .expect("put"),
        Err(DocumentRefusal::PreconditionMissing),
        "at 1.0.x a profile PUT always carries a precondition"
    );
    assert_eq!(
        store
            .write_document(&s, &strict(write(kind, "p1", "application/json", "{}")))
            .await
            .expect("put"),
        Err(DocumentRefusal::PreconditionRequired)
    );
    let second = write(kind, "p1", "application/json", r#"{"z":0}"#);
    assert_eq!(
        store.write_document(&s, &second).await.expect("put"),
        Err(DocumentRefusal::PreconditionRequired)
    );
    assert_eq!(
        store
            .write_document(&s, &if_match(second.clone(), &"1".repeat(40)))
            .await
            .expect("put"),
        Err(DocumentRefusal::PreconditionFailed)
    );
    let none_match = DocumentWrite {
        preconditions: Preconditions {
            if_none_match: Some(TagMatch::Any),
            ..second.preconditions.clone()
        },
        ..second.clone()
    };
    assert_eq!(
        store.write_document(&s, &none_match).await.expect("put"),
        Err(DocumentRefusal::PreconditionFailed)
    );
    let unchanged = store
        .document(&s, &scope(kind), "p1")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(unchanged, doc, "a refused write changes nothing");
    assert_eq!(
        store
            .write_document(&s, &at(if_match(second, &doc.etag.to_uppercase()), NOW.0 + 10))
            .await
            .expect("put"),
        Ok(Written::Existing)
    );
    let merge = DocumentWrite {
        merge: true,
        ..at(
            write(kind, "p1", "application/json; charset=utf-8", r#"{"b":{"d":3},"e":4}"#),
            NOW.0 + 20,
        )
    };
    assert_eq!(
        store.write_document(&s, &merge).await.expect("post"),
        Ok(Written::Existing)
    );
    let merged = store
        .document(&s, &scope(kind), "p1")
        .await
        .expect("get")
        .expect("stored");
    let v: serde_json::Value = serde_json::from_slice(&merged.body).expect("json");
    assert_eq!(v, serde_json::json!({"z":0,"b":{"d":3},"e":4}));
    assert_eq!(merged.etag, etag(&merged.body));
    assert_eq!(merged.updated, Millis(NOW.0 + 20));

    let not_json = DocumentWrite {
        merge: true,
        ..write(kind, "p1", "text/plain", "abc")
    };
    assert!(matches!(
        store.write_document(&s, &not_json).await.expect("post"),
        Err(DocumentRefusal::NotMergeable(_))
    ));
    let octets = write(kind, "p2", "application/octet-stream", "/ asdf / undefined");
    store.write_document(&s, &octets).await.expect("put").expect("stored");
    let into_octets = DocumentWrite {
        merge: true,
        ..write(kind, "p2", "application/json", "{}")
    };
    assert!(matches!(
        store.write_document(&s, &into_octets).await.expect("post"),
        Err(DocumentRefusal::NotMergeable(_))
    ));
    let bad_json = DocumentWrite {
        merge: true,
        ..write(kind, "p3", "application/json", "{\"a\":1}{")
    };
    assert!(matches!(
        store.write_document(&s, &bad_json).await.expect("post"),
        Err(DocumentRefusal::NotMergeable(_))
    ));
    assert_eq!(store.document(&s, &scope(kind), "p3").await.expect("get"), None);

    assert_eq!(
        store.document_ids(&s, &scope(kind), None).await.expect("ids"),
        vec!["p1".to_owned(), "p2".to_owned()]
    );
    assert_eq!(
        store
            .document_ids(&s, &scope(kind), Some(Millis(NOW.0 + 5)))
            .await
            .expect("ids"),
        vec!["p1".to_owned()],
        "since: updated strictly after"
    );

    let wrong = Preconditions {
        if_match: Some(TagMatch::Tags(vec!["0".repeat(40)])),
        ..Preconditions::default()
    };
    assert_eq!(
        store
            .delete_documents(&s, &scope(kind), Some("p1"), &wrong)
            .await
            .expect("delete"),
        Err(DocumentRefusal::PreconditionFailed)
    );
    assert_eq!(
        store
            .delete_documents(&s, &scope(kind), None, &Preconditions::default())
            .await
            .expect("delete"),
        Ok(2)
    );
    assert!(
        store
            .document_ids(&s, &scope(kind), None)
            .await
            .expect("ids")
            .is_empty()
    );

    // The State resource before 2.0.0 overwrites without a precondition.
    let state = write(DocumentKind::State, "s1", "application/json", "{}");
    store.write_document(&s, &state).await.expect("put").expect("stored");
    assert_eq!(
        store
            .write_document(&s, &write(DocumentKind::State, "s1", "application/json", r#"{"x":1}"#))
            .await
            .expect("put"),
        Ok(Written::Existing)
    );
    // Registration scopes a state.
    let other_registration = DocumentScope {
        registration: "a1f0c1b6-5b4f-4b35-a3c0-9f5a8f1d2e00".into(),
        ..scope(DocumentKind::State)
    };
    assert_eq!(store.document(&s, &other_registration, "s1").await.expect("get"), None);
}

/// A document larger than the limit, or one that would take the site's
/// documents over theirs, is refused and nothing is written; replacing and
/// deleting give bytes back; the usage counts are exact.
pub async fn xapi_documents_keep_size_limits_per_document_and_per_site<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let s = site_id();
    let limits = DocumentLimits {
        document_bytes_max: 10,
        site_bytes_max: 25,
    };
    let put = |id: &str, body: &str| DocumentWrite {
        limits,
        ..write(DocumentKind::State, id, "text/plain", body)
    };
    assert_eq!(
        store.write_document(&s, &put("big", "12345678901")).await.expect("put"),
        Err(DocumentRefusal::DocumentTooLarge { bytes_max: 10 })
    );
    store
        .write_document(&s, &put("a", "1234567890"))
        .await
        .expect("put")
        .expect("a");
    store
        .write_document(&s, &put("b", "1234567890"))
        .await
        .expect("put")
        .expect("b");
    assert_eq!(
        store.write_document(&s, &put("c", "123456")).await.expect("put"),
        Err(DocumentRefusal::SiteLimitReached { bytes_max: 25 })
    );
    assert_eq!(
        store.document(&s, &scope(DocumentKind::State), "c").await.expect("get"),
        None
    );
    store
        .write_document(&s, &put("a", "1"))
        .await
        .expect("put")
        .expect("a smaller");
    store
        .write_document(&s, &put("c", "123456"))
        .await
        .expect("put")
        .expect("now it fits");
    let merge_over = DocumentWrite {
        merge: true,
        limits,
        ..write(DocumentKind::AgentProfile, "m", "application/json", r#"{"k":"12345"}"#)
    };
    assert!(matches!(
        store.write_document(&s, &merge_over).await.expect("post"),
        Err(DocumentRefusal::DocumentTooLarge { .. })
    ));
    let usage = store.document_usage(Some(&s)).await.expect("usage");
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].documents, usage[0].bytes), (3, 17));
    store
        .delete_documents(&s, &scope(DocumentKind::State), Some("b"), &Preconditions::default())
        .await
        .expect("delete")
        .expect("deleted");
    let usage = store.document_usage(Some(&s)).await.expect("usage");
    assert_eq!((usage[0].documents, usage[0].bytes), (2, 7));
    let actual = db
        .query_i64("select coalesce(sum(length(body)), 0) from xapi_documents")
        .await
        .expect("sum");
    assert_eq!(actual, 7);
}

/// Concurrent writes of new documents never take a site over its limit,
/// and the usage row equals what is stored.
pub async fn xapi_concurrent_document_writes_keep_the_site_limit<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let limits = DocumentLimits {
        document_bytes_max: 100,
        site_bytes_max: 100,
    };
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let w = DocumentWrite {
                limits,
                ..write(DocumentKind::State, &format!("d{i:02}"), "text/plain", &"x".repeat(30))
            };
            store.write_document(&site_id(), &w).await.expect("write")
        }));
    }
    let mut stored = 0;
    for t in tasks {
        if t.await.expect("task").is_ok() {
            stored += 1;
        }
    }
    assert_eq!(stored, 3, "three 30-byte documents fit under 100 bytes");
    let usage = store.document_usage(Some(&site_id())).await.expect("usage");
    assert_eq!((usage[0].documents, usage[0].bytes), (3, 90));
    let actual = db
        .query_i64("select coalesce(sum(length(body)), 0) from xapi_documents")
        .await
        .expect("sum");
    assert_eq!(actual, 90);
}

/// A site's documents and activities are invisible to another site; only
/// the usage of every site (the admin's view) spans sites; documents never
/// write a ledger entry.
pub async fn xapi_documents_are_each_sites_own_and_outside_the_ledger<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let before = entry_count(db).await;
    for kind in [
        DocumentKind::State,
        DocumentKind::ActivityProfile,
        DocumentKind::AgentProfile,
    ] {
        store
            .write_document(&site_id(), &write(kind, "mine", "application/json", r#"{"a":1}"#))
            .await
            .expect("write")
            .expect("stored");
        assert_eq!(
            store
                .document(&other_site_id(), &scope(kind), "mine")
                .await
                .expect("get"),
            None
        );
        assert!(
            store
                .document_ids(&other_site_id(), &scope(kind), None)
                .await
                .expect("ids")
                .is_empty()
        );
        assert_eq!(
            store
                .delete_documents(&other_site_id(), &scope(kind), None, &Preconditions::default())
                .await
                .expect("delete"),
            Ok(0)
        );
        assert!(
            store
                .document(&site_id(), &scope(kind), "mine")
                .await
                .expect("get")
                .is_some()
        );
    }
    store
        .write_document(
            &other_site_id(),
            &write(DocumentKind::State, "theirs", "text/plain", "abc"),
        )
        .await
        .expect("write")
        .expect("stored");
    let all = store.document_usage(None).await.expect("usage");
    let summary: Vec<(String, u64, u64)> = all.iter().map(|u| (u.site.to_string(), u.documents, u.bytes)).collect();
    assert_eq!(summary, vec![("binjiang".to_owned(), 1, 3), ("xihu".to_owned(), 3, 21)]);
    assert_eq!(
        store.document_usage(Some(&other_site_id())).await.expect("usage").len(),
        1
    );
    store
        .merge_activities(
            &site_id(),
            &[("http://x.example/a".into(), r#"{"id":"http://x.example/a"}"#.into())],
        )
        .await
        .expect("merge");
    assert_eq!(
        store
            .activity(&other_site_id(), "http://x.example/a")
            .await
            .expect("get"),
        None
    );
    assert_eq!(entry_count(db).await, before, "documents are not credits");
}

/// The canonical Activity Object unites the language maps of every
/// statement about the activity, the newer value winning.
pub async fn xapi_activity_objects_unite_the_statements_about_them<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let id = "http://www.example.com/verify/complete/34534100123".to_owned();
    let a = format!(
        r#"{{"objectType":"Activity","id":"{id}","definition":{{"name":{{"en-US":"example meeting"}},"type":"http://t.example/1"}}}}"#
    );
    let b = format!(r#"{{"objectType":"Activity","id":"{id}","definition":{{"name":{{"fr-FR":"réunion"}}}}}}"#);
    store
        .merge_activities(&site_id(), &[(id.clone(), a)])
        .await
        .expect("merge");
    store
        .merge_activities(&site_id(), &[(id.clone(), b.clone()), (id.clone(), b)])
        .await
        .expect("merge");
    let json = store.activity(&site_id(), &id).await.expect("get").expect("stored");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["definition"]["name"]["en-US"], "example meeting");
    assert_eq!(v["definition"]["name"]["fr-FR"], "réunion");
    assert_eq!(v["definition"]["type"], "http://t.example/1");
    assert_eq!(
        store.activity(&site_id(), "http://x.example/none").await.expect("get"),
        None
    );
}

/// Statements stored with their Activity Objects fold them into the
/// canonical ones in the same transaction: a created statement folds its
/// object, a re-sent (`Existing`) one folds nothing, and a request refused
/// for a conflicting id leaves the Activity Objects as they were.
pub async fn xapi_statements_fold_their_activity_objects_in_their_transaction<B: Backend>(db: &B) {
    sites(db).await;
    let store = db.store();
    let id = "http://x.example/course/1".to_owned();
    let statement = |n: u32, fp: &str| crate::NewStatement {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        json: format!(r#"{{"n":{n}}}"#),
        fingerprint: fp.to_owned(),
        verb: "http://adlnet.gov/expapi/verbs/completed".into(),
        activity: Some(id.clone()),
        agent: Some("mbox|mailto:a@example.com".into()),
        authority: None,
        registration: None,
        voids: None,
        stored: NOW,
        related_agents: vec!["mbox|mailto:a@example.com".into()],
        related_activities: vec![id.clone()],
    };
    let object = |lang: &str, name: &str| {
        Some(format!(
            r#"{{"objectType":"Activity","id":"{id}","definition":{{"name":{{"{lang}":"{name}"}}}}}}"#
        ))
    };
    let name = |lang: &str| {
        let store = db.store();
        let id = id.clone();
        let lang = lang.to_owned();
        async move {
            let json = store.activity(&site_id(), &id).await.expect("get")?;
            let v: serde_json::Value = serde_json::from_str(&json).expect("json");
            v["definition"]["name"][lang.as_str()].as_str().map(str::to_owned)
        }
    };
    let written = store
        .insert_statements_folding(
            &site_id(),
            &[statement(1, "f1"), statement(2, "f2")],
            &[object("en", "one"), object("de", "zwei")],
        )
        .await
        .expect("insert");
    assert_eq!(written, vec![Written::Created, Written::Created]);
    assert_eq!(name("en").await.as_deref(), Some("one"));
    assert_eq!(name("de").await.as_deref(), Some("zwei"));
    // Re-sent: stored already, its (changed) object is not folded.
    let written = store
        .insert_statements_folding(&site_id(), &[statement(1, "f1")], &[object("en", "changed")])
        .await
        .expect("insert");
    assert_eq!(written, vec![Written::Existing]);
    assert_eq!(name("en").await.as_deref(), Some("one"));
    // A conflicting id refuses the whole request: nothing is folded.
    let refused = store
        .insert_statements_folding(
            &site_id(),
            &[statement(3, "f3"), statement(2, "other")],
            &[object("fr", "trois"), object("en", "refused")],
        )
        .await;
    assert!(matches!(refused, Err(crate::StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(name("fr").await, None);
    assert_eq!(name("en").await.as_deref(), Some("one"));
    // Without objects nothing is folded; other sites never see them.
    store
        .insert_statements(&site_id(), &[statement(4, "f4")])
        .await
        .expect("insert");
    assert_eq!(store.activity(&other_site_id(), &id).await.expect("get"), None);
}
