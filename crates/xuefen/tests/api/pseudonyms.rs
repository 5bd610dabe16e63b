//! Pairwise learner pseudonyms over HTTP, on both backends: each site and
//! the credit bank know a learner by their own `psn_…` id; no answer to
//! them holds the unified `lrn_…` id or another party's pseudonym; a
//! pseudonym given by the wrong party is the same 404 as an unknown one.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::harness::{TestApp, completion, resident_id};

backend_tests!(
    each_site_and_the_bank_know_a_learner_by_their_own_pseudonym,
    a_pseudonym_given_by_the_wrong_party_is_the_same_404_as_an_unknown_one,
    no_answer_to_a_site_or_the_bank_holds_the_global_id_or_another_partys_pseudonym,
);

fn person(n: u32, account: &str) -> Value {
    json!({"name": "测试", "document": {"kind": "resident_id", "number": resident_id(n)}, "local_account": account})
}

fn holder(n: u32) -> Value {
    json!({"name": "测试", "document": {"kind": "resident_id", "number": resident_id(n)}})
}

fn id_of(body: &Value) -> String {
    body["learner_id"].as_str().expect("learner_id").to_owned()
}

/// The unified id, as the admin sees it.
async fn global_id(app: &TestApp, n: u32) -> String {
    let (status, body) = app.post("/v1/learners", &app.admin, holder(n)).await;
    assert_eq!(status, StatusCode::OK, "the person is registered already: {body}");
    let id = id_of(&body);
    assert!(id.starts_with("lrn_"), "{id}");
    id
}

/// Every deposit of the feed, once `n` are there.
async fn deposits(app: &TestApp, bank: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = app.get("/v1/deposits?limit=500", bank).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let all = page["deposits"].as_array().cloned().unwrap_or_default();
        if all.len() >= n {
            return all;
        }
        assert!(Instant::now() < deadline, "the feed did not reach {n} deposits: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two sites register the same person and get two pseudonyms, each stable
/// and each resolving for its own site: posting by it, reading the
/// transcript and the event by it. The bank registers the holder with the
/// real-name data and gets a third, which is how its deposits name the
/// learner.
async fn each_site_and_the_bank_know_a_learner_by_their_own_pseudonym(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let bank = app.bank().await;
    let (status, body) = app.post("/v1/learners", &a, person(1, "a-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let at_a = id_of(&body);
    let (status, body) = app.post("/v1/learners", &b, person(1, "b-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at_b = id_of(&body);
    let global = global_id(&app, 1).await;
    for p in [&at_a, &at_b] {
        assert!(p.starts_with("psn_") && p.len() == 36, "{p}");
        assert_ne!(p, &global);
    }
    assert_ne!(at_a, at_b, "two sites, two pseudonyms");
    // Stable: the same site asking again gets the same pseudonym.
    let (_, again) = app.post("/v1/learners", &a, person(1, "a-1")).await;
    assert_eq!(id_of(&again), at_a);

    // Each site posts by its own pseudonym and reads it back.
    for (key, site, own, course) in [(&a, "site-a", &at_a, "A1"), (&b, "site-b", &at_b, "B1")] {
        app.course(key, course, "community").await;
        let event = json!({"kind": "completion", "course": course, "learner": {"id": own},
                           "completed_at": "2026-03-01T10:00:00Z", "hours": "5"});
        let (status, body) = app.put(&format!("/v1/events/{site}-1"), key, event).await;
        assert_eq!(status, StatusCode::CREATED, "{site}: {body}");
        let (status, entry) = app.get(&format!("/v1/events/{site}-1"), key).await;
        assert_eq!(status, StatusCode::OK, "{entry}");
        assert_eq!(&id_of(&entry), own, "{site} reads its entry under its pseudonym");
        let (status, t) = app.get(&format!("/v1/learners/{own}/transcript"), key).await;
        assert_eq!(status, StatusCode::OK, "{site}: {t}");
        assert_eq!(&id_of(&t), own);
        for line in t["entries"].as_array().expect("entries") {
            assert_eq!(&id_of(line), own, "{line}");
        }
    }
    // By local account too: the same learner.
    let (status, body) = app.put("/v1/events/site-a-2", &a, completion("a-1", "A1", "5")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The bank matches its holder by the real-name data and gets its own.
    let (status, body) = app.post("/v1/learners", &bank, holder(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], json!(false));
    let at_bank = id_of(&body);
    assert!(at_bank.starts_with("psn_"), "{at_bank}");
    assert!(![&at_a, &at_b, &global].contains(&&at_bank));
    // A wrong name is a 409 naming it; an unknown person is a 404, and
    // the bank registers nobody.
    let (status, body) = app
        .post(
            "/v1/learners",
            &bank,
            json!({"name": "别人", "document": {"kind": "resident_id", "number": resident_id(1)}}),
        )
        .await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::CONFLICT, json!("name")),
        "{body}"
    );
    let (status, body) = app.post("/v1/learners", &bank, holder(2)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app.post("/v1/learners", &bank, person(3, "x")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the bank links no account: {body}"
    );
    assert_eq!(app.scalar("select count(*) from learners").await, 1);

    let feed = deposits(&app, &bank, 3).await;
    assert_eq!(feed.len(), 3);
    for d in &feed {
        assert_eq!(
            id_of(d),
            at_bank,
            "every deposit names the holder by the bank's pseudonym: {d}"
        );
        assert!(d.get("learner_real_name_hash").is_none(), "{d}");
    }
}

/// Site A's pseudonym given by site B, by the bank, or by a site that
/// never met the learner answers exactly what an unknown pseudonym
/// answers. A unified id is unknown to the bank and to a site that never
/// linked or credited the learner; a site that did may still use one it
/// kept from before pseudonyms (and is answered with its pseudonym).
async fn a_pseudonym_given_by_the_wrong_party_is_the_same_404_as_an_unknown_one(app: TestApp) {
    let a = app.site("site-a").await;
    let b = app.site("site-b").await;
    let c = app.site("site-c").await;
    let bank = app.bank().await;
    let (_, body) = app.post("/v1/learners", &a, person(1, "a-1")).await;
    let at_a = id_of(&body);
    let (_, body) = app.post("/v1/learners", &b, person(1, "b-1")).await;
    let at_b = id_of(&body);
    let global = global_id(&app, 1).await;
    let unknown = format!("psn_{}", "ab".repeat(16));

    let (status, reference) = app.get(&format!("/v1/learners/{unknown}/transcript"), &b).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reference}");
    assert_eq!(reference["code"], json!("unknown_learner"));
    assert_eq!(reference["field"], json!("learner_id"));
    for (who, key, id) in [
        ("site B with A's", &b, &at_a),
        ("site C with A's", &c, &at_a),
        ("site A with B's", &a, &at_b),
        ("site C with the global id", &c, &global),
    ] {
        let (status, body) = app.get(&format!("/v1/learners/{id}/transcript"), key).await;
        assert_eq!((status, &body), (StatusCode::NOT_FOUND, &reference), "{who}");
    }
    // Posting by a wrong pseudonym is the planner's unknown learner, as for
    // an unknown one.
    app.course(&b, "B1", "community").await;
    let mut answers = Vec::new();
    for (n, id) in [(1, &at_a), (2, &unknown), (3, &global)] {
        let event = json!({"kind": "completion", "course": "B1", "learner": {"id": id},
                           "completed_at": "2026-03-01T10:00:00Z", "hours": "5"});
        let (status, body) = app.put(&format!("/v1/events/b-{n}"), &b, event).await;
        answers.push((status, body["code"].clone(), body["field"].clone()));
    }
    // Site B linked the learner, so the global id it may have kept works.
    assert_eq!(answers[2].0, StatusCode::CREATED, "{answers:?}");
    assert_eq!(answers[0], answers[1], "a wrong pseudonym answers as an unknown one");
    assert_ne!(answers[0].0, StatusCode::CREATED, "{answers:?}");
    let (status, entry) = app.get("/v1/events/b-3", &b).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(id_of(&entry), at_b, "answered with B's pseudonym, not the id it sent");
    // The bank knows nobody by a site's pseudonym or the global id; a
    // malformed id is a 422 naming the field.
    let (status, body) = app.get(&format!("/v1/learners/{at_a}/transcript"), &bank).await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{body}"
    );
    let (status, body) = app.get("/v1/learners/zhangsan/transcript", &a).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("learner_id")),
        "{body}"
    );
}

/// Many learners, registered by random sites in random order, posted for by
/// pseudonym and by account, read back: no answer to a site contains a
/// unified id or a pseudonym that another party was given, and no deposit
/// answer to the bank contains a unified id or a site's pseudonym.
async fn no_answer_to_a_site_or_the_bank_holds_the_global_id_or_another_partys_pseudonym(app: TestApp) {
    const SITES: usize = 3;
    const PEOPLE: u32 = 6;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x005e_ed16);
    let mut keys = Vec::new();
    for s in 0..SITES {
        let key = app.site(&format!("site-{s}")).await;
        app.course(&key, "C1", "community").await;
        keys.push(key);
    }
    let bank = app.bank().await;
    // Everything each party was told, and the pseudonyms each was given.
    let mut told: Vec<Vec<String>> = vec![Vec::new(); SITES];
    let mut given: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); SITES];
    let mut events = 0;
    for n in 1..=PEOPLE {
        let mut who: Vec<usize> = (0..SITES).filter(|_| rng.gen_bool(0.6)).collect();
        if who.is_empty() {
            who.push(rng.gen_range(0..SITES));
        }
        for s in who {
            let (status, body) = app.post("/v1/learners", &keys[s], person(n, &format!("u-{n}"))).await;
            assert!(status.is_success(), "{body}");
            let pseudonym = id_of(&body);
            told[s].push(body.to_string());
            given[s].insert(pseudonym.clone());
            for round in 0..2 {
                let learner = if round == 0 {
                    json!({"id": pseudonym})
                } else {
                    json!({"local_account": format!("u-{n}")})
                };
                let event = json!({"kind": "completion", "course": "C1", "learner": learner,
                                   "completed_at": format!("2026-03-0{}T10:00:00Z", round + 1), "hours": "5"});
                let id = format!("e-{n}-{round}");
                let (status, body) = app.put(&format!("/v1/events/{id}"), &keys[s], event.clone()).await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                events += 1;
                told[s].push(body.to_string());
                let mut item = event;
                item["event_id"] = json!(id);
                let (_, body) = app.post("/v1/events", &keys[s], json!([item])).await;
                told[s].push(body.to_string());
                let (_, body) = app.get(&format!("/v1/events/{id}"), &keys[s]).await;
                told[s].push(body.to_string());
            }
            let (_, body) = app.get(&format!("/v1/learners/{pseudonym}/transcript"), &keys[s]).await;
            told[s].push(body.to_string());
        }
    }
    let mut globals = Vec::new();
    for n in 1..=PEOPLE {
        globals.push(global_id(&app, n).await);
    }
    let mut bank_given = std::collections::BTreeSet::new();
    for n in 1..=PEOPLE {
        let (status, body) = app.post("/v1/learners", &bank, holder(n)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        bank_given.insert(id_of(&body));
    }
    let feed = deposits(&app, &bank, events).await;
    let feed_text = Value::Array(feed.clone()).to_string();
    for d in &feed {
        assert!(bank_given.contains(&id_of(d)), "{d}");
    }
    for s in 0..SITES {
        let others: Vec<&String> = given
            .iter()
            .enumerate()
            .filter(|(o, _)| *o != s)
            .flat_map(|(_, set)| set.iter())
            .chain(&bank_given)
            .collect();
        for answer in &told[s] {
            for g in &globals {
                assert!(
                    !answer.contains(g.as_str()),
                    "site {s} was told the global id: {answer}"
                );
            }
            for p in &others {
                assert!(
                    !answer.contains(p.as_str()),
                    "site {s} was told another party's pseudonym: {answer}"
                );
            }
        }
        for p in &given[s] {
            assert!(
                !feed_text.contains(p.as_str()),
                "the bank was told site {s}'s pseudonym"
            );
        }
    }
    for g in &globals {
        assert!(!feed_text.contains(g.as_str()), "the bank's feed holds a global id");
    }
}
