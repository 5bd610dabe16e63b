//! The credit bank feed over HTTP, on both backends: pages and cursors,
//! proofs and checkpoints, acknowledgements, isolation, and the reference
//! consumer `xuefen bank pull` killed and resumed.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use xuefen_core::entry::{EntryBody, entry_hash};
use xuefen_core::ids::Position;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint, Tiles};

use crate::backend_tests;
use crate::harness::{TestApp, completion};

backend_tests!(
    deposits_come_in_pages_with_valid_proofs_and_a_cursor_always_gives_the_same_page,
    paging_during_concurrent_ingestion_never_skips_or_repeats_a_deposit,
    acks_are_idempotent_contradictions_are_409_and_the_transcript_shows_them,
    the_bank_reads_deposits_only_and_nobody_else_reads_them,
    the_checkpoint_and_tiles_are_served_as_c2sp_names_them,
    verify_checks_the_log_against_the_entries,
    sixteen_concurrent_identical_acks_write_one_entry,
    bank_pull_survives_kills_acks_each_deposit_once_and_stops_at_a_tampered_entry,
    bank_pull_decides_by_policy_and_skips_deposits_decided_through_the_api,
);

/// A site with a course and `learners` linked learners (`u0`, `u1`, …).
async fn setup(app: &TestApp, learners: u32) -> String {
    let key = app.site("xihu").await;
    app.course(&key, "C1", "community").await;
    for i in 0..learners {
        app.learner(&key, &format!("u{i}"), i).await;
    }
    key
}

/// Posts completions `e{from}`..`e{to}` in batches, spread over the learners.
async fn post_events(app: &TestApp, key: &str, from: u32, to: u32, learners: u32) {
    let ids: Vec<u32> = (from..to).collect();
    for chunk in ids.chunks(50) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut e = completion(&format!("u{}", i % learners), "C1", "5");
                e["event_id"] = json!(format!("e{i}"));
                e
            })
            .collect();
        let (status, out) = app.post("/v1/events", key, Value::Array(items)).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out["accepted"], chunk.len(), "{out}");
    }
}

/// The log's latest checkpoint note, if any.
async fn checkpoint_note(app: &TestApp) -> Option<String> {
    let resp = app
        .client
        .get(format!("{}/checkpoint", app.base))
        .send()
        .await
        .expect("GET /checkpoint");
    if resp.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    Some(resp.text().await.expect("text"))
}

fn body_of(note: &str) -> LogCheckpoint {
    let body = note
        .split_once("\n\n")
        .map(|(b, _)| format!("{b}\n"))
        .expect("a signed note");
    LogCheckpoint::parse_body(&body).expect("a checkpoint")
}

/// Waits until the log holds at least `n` entries and every committed
/// entry is sealed (bounded: 30 s).
async fn wait_for_deposits(app: &TestApp, _key: &str, n: u64) -> LogCheckpoint {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(note) = checkpoint_note(app).await {
            let cp = body_of(&note);
            let committed = app.scalar("select count(*) from ledger_entries").await;
            if cp.size >= n && i64::try_from(cp.size).ok() == Some(committed) {
                return cp;
            }
        }
        assert!(Instant::now() < deadline, "the log did not reach {n} entries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().expect("hex"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

/// The log's public key and origin.
async fn public_key(app: &TestApp, key: &str) -> (VerifyingKey, String) {
    let (status, pk) = app.get("/v1/checkpoints/public-key", key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pk["algorithm"], "Ed25519");
    let origin = pk["origin"].as_str().expect("origin").to_owned();
    let vk = VerifyingKey::from_bytes(&h32(&pk["public_key"])).expect("key");
    assert_eq!(pk["verifier_key"], tlog::verifier_key(&origin, &vk));
    (vk, origin)
}

/// Checks a deposit's proof the way an outside consumer would.
fn check_deposit(d: &Value, cp: &LogCheckpoint) {
    let position = Position {
        chain: d["position"]["chain"].as_u64().expect("chain") as u32,
        seq: d["position"]["seq"].as_u64().expect("seq"),
    };
    let body =
        EntryBody::decode(&hex::decode(d["entry_bytes"].as_str().expect("bytes")).expect("hex")).expect("decode");
    assert_eq!(body.event_id.as_str(), d["event_id"]);
    // A version-2 entry names its learner by a commitment, not by the id.
    assert!(body.commitment.is_some(), "the service writes version 2");
    assert!(
        !hex::decode(d["entry_bytes"].as_str().expect("bytes"))
            .expect("hex")
            .windows(36)
            .any(|w| w == d["learner_id"].as_str().expect("learner").as_bytes()),
        "the entry's bytes do not hold the learner id"
    );
    let hash = h32(&d["entry_hash"]);
    assert_eq!(entry_hash(position, &h32(&d["prev_hash"]), &body.encode()), hash);
    let p = &d["proof"];
    assert_eq!(p["tree_size"].as_u64(), Some(cp.size));
    let path: Vec<[u8; 32]> = p["inclusion"].as_array().expect("path").iter().map(h32).collect();
    let index = d["log_index"].as_u64().expect("log index");
    assert!(
        merkle::verify_inclusion(index, cp.size, &tlog::leaf(&hash), &path, &cp.root),
        "the proof verifies"
    );
}

/// Fetches tiles over HTTP as any tlog-tiles client would.
async fn fetch_tiles(app: &TestApp, ids: &[(tlog::TileId, u64)]) -> Tiles {
    let mut tiles = Tiles::new();
    for (id, width) in ids {
        let resp = app
            .client
            .get(format!("{}/{}", app.base, tlog::tile_path(*id, *width)))
            .send()
            .await
            .expect("GET tile");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
        let bytes = resp.bytes().await.expect("bytes");
        let hashes = tlog::tile_from_bytes(&bytes).expect("whole hashes");
        assert_eq!(hashes.len() as u64, *width);
        tiles.insert(*id, hashes);
    }
    tiles
}

/// Reads the whole feed from `after` in pages of `limit`.
async fn read_feed(app: &TestApp, bank: &str, after: &str, limit: u32) -> (Vec<Value>, String) {
    let mut cursor = after.to_owned();
    let mut all = Vec::new();
    for _ in 0..1_000 {
        let (status, page) = app
            .get(&format!("/v1/deposits?after={cursor}&limit={limit}"), bank)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["deposits"].as_array().expect("deposits").clone();
        let next = page["next_cursor"].as_str().expect("cursor").to_owned();
        if items.is_empty() && next == cursor {
            break;
        }
        cursor = next;
        all.extend(items);
    }
    (all, cursor)
}

async fn deposits_come_in_pages_with_valid_proofs_and_a_cursor_always_gives_the_same_page(app: TestApp) {
    let key = setup(&app, 7).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, 30, 7).await;
    let (status, _) = app
        .put(
            "/v1/events/r1",
            &key,
            json!({"kind": "revocation", "target_event_id": "e3", "reason": "录入错误"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    wait_for_deposits(&app, &bank, 31).await;
    let (pk, origin) = public_key(&app, &bank).await;

    let (all, end) = read_feed(&app, &bank, "", 7).await;
    assert_eq!(all.len(), 31, "30 awards and 1 reversal");
    let numbers: Vec<u64> = all.iter().map(|d| d["log_index"].as_u64().expect("n")).collect();
    assert_eq!(numbers, (0..31).collect::<Vec<_>>());
    let reversal = all
        .iter()
        .find(|d| d["kind"] == "reversal")
        .expect("the reversal is a deposit");
    assert_eq!(reversal["credits"], "-1.00");
    assert!(all.iter().all(|d| d["recognition_group"].is_null()));
    assert!(
        all.iter()
            .all(|d| d["learner_id"].as_str().is_some_and(|h| h.starts_with("psn_"))
                && d.get("learner_real_name_hash").is_none())
    );

    // Each page carries the signed checkpoint its proofs lead to.
    let (_, page) = app.get("/v1/deposits?limit=500", &bank).await;
    let note = page["checkpoint"].as_str().expect("a checkpoint");
    let cp = LogCheckpoint::open(note, &origin, &pk).expect("signed by the log");
    assert_eq!(page["tree_size"], cp.size);
    for d in page["deposits"].as_array().expect("deposits") {
        check_deposit(d, &cp);
    }

    // The same cursor gives the same page; an old cursor replays.
    let cursor = all[9]["cursor"].as_str().expect("cursor");
    let (_, a) = app.get(&format!("/v1/deposits?after={cursor}&limit=5"), &bank).await;
    post_events(&app, &key, 30, 40, 7).await;
    wait_for_deposits(&app, &bank, 41).await;
    let (_, b) = app.get(&format!("/v1/deposits?after={cursor}&limit=5"), &bank).await;
    let strip = |v: &Value| -> Vec<Value> {
        v["deposits"]
            .as_array()
            .expect("deposits")
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d["proof"] = Value::Null;
                d
            })
            .collect()
    };
    assert_eq!(
        strip(&a),
        strip(&b),
        "the same deposits (proofs lead to the newer checkpoint)"
    );
    assert_eq!(a["deposits"][0]["log_index"], 10);
    let (rest, _) = read_feed(&app, &bank, &end, 50).await;
    assert_eq!(rest.len(), 10, "the feed continues after its old end");
    assert_eq!(rest[0]["log_index"], 31);
}

async fn paging_during_concurrent_ingestion_never_skips_or_repeats_a_deposit(app: TestApp) {
    let key = setup(&app, 20).await;
    let bank = app.bank().await;
    let app = std::sync::Arc::new(app);
    let writer = {
        let (app, key) = (app.clone(), key.clone());
        tokio::spawn(async move {
            for round in 0..8u32 {
                post_events(&app, &key, round * 25, round * 25 + 25, 20).await;
            }
        })
    };
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 200 {
        assert!(Instant::now() < deadline, "only {} of 200 deposits seen", seen.len());
        let (status, page) = app.get(&format!("/v1/deposits?after={cursor}&limit=7"), &bank).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
        seen.extend(page["deposits"].as_array().expect("deposits").iter().cloned());
    }
    writer.await.expect("writer");
    let numbers: Vec<u64> = seen.iter().map(|d| d["log_index"].as_u64().expect("n")).collect();
    assert_eq!(numbers, (0..200).collect::<Vec<_>>(), "contiguous, in order, no repeat");
    let events: HashSet<String> = seen
        .iter()
        .map(|d| d["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(events.len(), 200);
    let (_, page) = app.get(&format!("/v1/deposits?after={cursor}"), &bank).await;
    assert_eq!(page["deposits"], json!([]), "nothing more, nothing twice");
    // Each chain's entries come in sequence order.
    let mut last: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for d in &seen {
        let chain = d["position"]["chain"].as_u64().expect("chain");
        let seq = d["position"]["seq"].as_u64().expect("seq");
        assert!(last.insert(chain, seq).is_none_or(|before| before < seq));
    }
}

async fn acks_are_idempotent_contradictions_are_409_and_the_transcript_shows_them(app: TestApp) {
    let key = setup(&app, 2).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, 4, 2).await;
    wait_for_deposits(&app, &bank, 4).await;
    let (all, _) = read_feed(&app, &bank, "", 10).await;
    let pos = |i: usize| all[i]["position"].clone();
    let path = |i: usize| format!("/v1/deposits/{}/{}/ack", pos(i)["chain"], pos(i)["seq"]);

    let (status, first) = app.put(&path(0), &bank, json!({"outcome": "accepted"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = app.put(&path(0), &bank, json!({"outcome": "accepted"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["position"], first["position"], "the same ack answers as before");
    let (status, body) = app
        .put(
            &path(0),
            &bank,
            json!({"outcome": "rejected", "reason_code": "duplicate_record"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["field"], "outcome");
    assert_eq!(body["code"], "ack_exists_with_different_outcome");

    let reject =
        json!({"deposit": pos(1), "outcome": "rejected", "reason_code": "not_recognised", "reason": "课程未备案"});
    let batch = json!({"acks": [
        reject,
        {"deposit": pos(0), "outcome": "accepted"},
        {"deposit": {"chain": 63, "seq": 999}, "outcome": "accepted"},
        {"deposit": pos(2), "outcome": "accepted"},
    ]});
    let (status, out) = app.post("/v1/deposits/acks", &bank, batch).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        (out["recorded"].clone(), out["duplicate"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(out["results"][2]["problem"]["code"], "unknown_deposit");
    let again = json!({"acks": [{"deposit": pos(1), "outcome": "rejected", "reason_code": "not_recognised", "reason": "other text"}]});
    let (_, out) = app.post("/v1/deposits/acks", &bank, again).await;
    assert_eq!(out["results"][0]["status"], "conflict");
    assert_eq!(out["results"][0]["problem"]["field"], "reason");

    // Bad input names the field and writes nothing.
    let (status, body) = app
        .post(
            "/v1/deposits/acks",
            &bank,
            json!({"acks": [{"deposit": pos(3), "outcome": "rejected", "reason_code": "Bad Code"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "acks/0/reason_code");
    let (status, _) = app.post("/v1/deposits/acks", &bank, json!({"acks": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let acks = app
        .scalar("select count(*) from ledger_entries where kind in (10, 11)")
        .await;
    assert_eq!(acks, 3, "one entry per decided deposit, no more");
    // Acknowledgements are sealed like any entry, but are no deposits.
    // (Wait for the entry count itself: the checkpoint may already exist.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = match checkpoint_note(&app).await {
            Some(note) => body_of(&note).size,
            None => 0,
        };
        if size == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint sealed the acknowledgements: {size}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (again, _) = read_feed(&app, &bank, "", 10).await;
    assert_eq!(again.len(), 4, "7 entries in the log, 4 of them deposits");

    // The transcript shows the bank's decisions; totals do not move.
    let learner = all[0]["learner_id"].as_str().expect("learner");
    let (status, t) = app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let status_of = |p: &Value| {
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["position"] == *p)
            .map(|e| e["status"].clone())
    };
    assert_eq!(status_of(&pos(0)), Some(json!("deposited")));
    assert!(t["totals"]["by_site"].get("credit-bank").is_none());
    assert_eq!(t["totals"]["total"], "2.00");
    let other = all[1]["learner_id"].as_str().expect("learner");
    let (_, t) = app.get(&format!("/v1/learners/{other}/transcript"), &app.admin).await;
    let statuses: Vec<&str> = t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(statuses.contains(&"rejected_by_bank"), "{statuses:?}");
    assert!(!statuses.contains(&"bank_rejected"), "{statuses:?}");
    // The bank's decisions are statuses of the lines they decide, not lines.
    for t in [
        &t,
        &app.get(&format!("/v1/learners/{learner}/transcript"), &app.admin)
            .await
            .1,
    ] {
        for line in t["entries"].as_array().expect("entries") {
            assert_ne!(line["site_id"], "credit-bank", "{line}");
            assert_eq!(line["kind"], "awarded", "{line}");
        }
    }
    assert_eq!(t["entries"].as_array().expect("entries").len(), 2);
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "acks keep the chains valid: {out}");
}

async fn the_bank_reads_deposits_only_and_nobody_else_reads_them(app: TestApp) {
    let key = setup(&app, 1).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, 2, 1).await;
    wait_for_deposits(&app, &bank, 2).await;
    for who in [&key, &app.admin] {
        let (status, body) = app.get("/v1/deposits", who).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = app.post("/v1/deposits/acks", who, json!({"acks": []})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = app.put("/v1/events/x1", &bank, completion("u0", "C1", "5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.post("/v1/events", &bank, json!([])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/v1/sites", &bank).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/v1/sites/xihu", &bank).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.post("/v1/bank/keys", &bank, json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = app.get("/v1/deposits?limit=1", &bank).await;
    let learner = page["deposits"][0]["learner_id"].as_str().expect("learner").to_owned();
    let (status, _) = app.get(&format!("/v1/learners/{learner}/transcript"), &bank).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Limits and cursors are checked, naming the parameter.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("after=nope", "after"),
    ] {
        let (status, body) = app.get(&format!("/v1/deposits?{query}"), &bank).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["field"], field);
    }
    let (status, page) = app.get("/v1/deposits?limit=500", &bank).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["deposits"].as_array().map(Vec::len), Some(2));
    // The bank's site id cannot be taken by an alliance site.
    let (status, body) = app
        .post(
            "/v1/sites",
            &app.admin,
            json!({"id": "credit-bank", "name": "假银行", "level": "county", "region_code": "330106"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "id");
}

async fn the_checkpoint_and_tiles_are_served_as_c2sp_names_them(app: TestApp) {
    let key = setup(&app, 9).await;
    let bank = app.bank().await;
    let (pk, origin) = public_key(&app, &bank).await;
    assert!(checkpoint_note(&app).await.is_none(), "nothing sealed, no checkpoint");
    let mut prev: Option<LogCheckpoint> = None;
    // 150 entries a round: the log crosses a full tile of 256.
    for round in 0..4u32 {
        post_events(&app, &key, round * 150, round * 150 + 150, 9).await;
        wait_for_deposits(&app, &bank, u64::from(round * 150 + 150)).await;
        let note = checkpoint_note(&app).await.expect("a checkpoint");
        let cp = LogCheckpoint::open(&note, &origin, &pk).expect("signed by the log key");
        assert!(note.starts_with(&format!("{origin}\n{}\n", cp.size)), "{note}");
        let tiles = fetch_tiles(&app, &tlog::root_tiles(cp.size)).await;
        assert_eq!(tlog::root(cp.size, &tiles), Ok(cp.root), "the tiles give the root");
        if let Some(p) = &prev {
            let tiles = fetch_tiles(&app, &tlog::consistency_tiles(p.size, cp.size)).await;
            let proof = tlog::consistency_proof(p.size, cp.size, &tiles).expect("proof");
            assert!(merkle::verify_consistency(p.size, cp.size, &p.root, &cp.root, &proof));
            let mut forked = cp.root;
            forked[0] ^= 1;
            assert!(!merkle::verify_consistency(p.size, cp.size, &p.root, &forked, &proof));
        }
        prev = Some(cp);
    }
    let size = prev.as_ref().map_or(0, |p| p.size);
    assert!(size >= 600);
    // The full tile 0 and the partial one after it; nothing past the log's end.
    let get = |path: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/{path}", app.base))
                .send()
                .await
                .expect("GET")
                .status()
        }
    };
    assert_eq!(get("tile/0/000".into()).await, StatusCode::OK);
    assert_eq!(get(format!("tile/0/002.p/{}", size - 512)).await, StatusCode::OK);
    assert_eq!(get("tile/0/002".into()).await, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("tile/0/002.p/{}", size - 511)).await, StatusCode::NOT_FOUND);
    assert_eq!(get("tile/0/2".into()).await, StatusCode::NOT_FOUND, "not a C2SP path");
    assert_eq!(
        get("tile/0/000.p/256".into()).await,
        StatusCode::NOT_FOUND,
        "not a C2SP path"
    );
    // No new entries, no new checkpoint.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(body_of(&checkpoint_note(&app).await.expect("cp")).size, size);
}

async fn run_pull(app: &TestApp, bank: &str, state: &std::path::Path) -> tokio::process::Child {
    run_pull_with(app, bank, state, &[]).await
}

async fn run_pull_with(app: &TestApp, bank: &str, state: &std::path::Path, extra: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"))
        .args(["bank", "pull", "--limit", "9"])
        .args(extra)
        .arg("--url")
        .arg(&app.base)
        .arg("--state")
        .arg(state)
        .env("XUEFEN_BANK_KEY", bank)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn xuefen bank pull")
}

async fn bank_pull_survives_kills_acks_each_deposit_once_and_stops_at_a_tampered_entry(app: TestApp) {
    const N: u32 = 240;
    let key = setup(&app, 16).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, N, 16).await;
    wait_for_deposits(&app, &bank, u64::from(N)).await;
    let dir = std::env::temp_dir().join(format!("xuefen-pull-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("state.json");

    // Kill the consumer at random points, a bounded number of times.
    let mut rng = rand::thread_rng();
    let mut kills = Vec::new();
    for _ in 0..5 {
        let mut child = run_pull(&app, &bank, &state).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..1_500))).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().await.expect("kill");
            let saved: Value = std::fs::read(&state)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            kills.push(saved["deposits_acknowledged"].as_u64().unwrap_or(0));
        }
    }
    eprintln!("xuefen bank pull killed with {kills:?} deposits acknowledged");
    let out = run_pull(&app, &bank, &state)
        .await
        .wait_with_output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{N} in all")), "{stdout}");
    let acked = app.scalar("select count(*) from ledger_entries where kind = 10").await;
    let distinct = app
        .scalar("select count(*) from (select distinct refers_chain, refers_seq from ledger_entries where kind = 10) d")
        .await;
    assert_eq!(
        (acked, distinct),
        (i64::from(N), i64::from(N)),
        "each deposit acknowledged exactly once (killed at {kills:?})"
    );

    // A later deposit altered in the database stops the consumer, naming it.
    post_events(&app, &key, N, N + 5, 16).await;
    wait_for_deposits(&app, &bank, u64::from(N + 5)).await;
    let (chain, seq) = (
        app.scalar(&format!(
            "select cast(chain_id as bigint) from ledger_entries where event_id = 'e{}'",
            N + 2
        ))
        .await,
        app.scalar(&format!("select seq from ledger_entries where event_id = 'e{}'", N + 2))
            .await,
    );
    app.tamper(&format!(
        "update ledger_entries set credits_cents = 9900 where event_id = 'e{}'",
        N + 2
    ))
    .await;
    let out = run_pull(&app, &bank, &state)
        .await
        .wait_with_output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("entry {chain}:{seq}")), "{stdout}");
    assert!(stdout.contains("altered"), "{stdout}");
    let acked = app.scalar("select count(*) from ledger_entries where kind = 10").await;
    assert_eq!(acked, i64::from(N), "nothing of the tampered page is acknowledged");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn verify_checks_the_log_against_the_entries(app: TestApp) {
    let key = setup(&app, 3).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, 6, 3).await;
    wait_for_deposits(&app, &bank, 6).await;
    post_events(&app, &key, 6, 9, 3).await;
    wait_for_deposits(&app, &bank, 9).await;
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the log of 9 entries matches"), "{out}");
    // A tile removed behind the service's back.
    app.tamper("delete from log_tiles").await;
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tile/0/000.p/9"), "{out}");
}

async fn sixteen_concurrent_identical_acks_write_one_entry(app: TestApp) {
    let key = setup(&app, 1).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, 1, 1).await;
    wait_for_deposits(&app, &bank, 1).await;
    let (_, page) = app.get("/v1/deposits", &bank).await;
    let p = page["deposits"][0]["position"].clone();
    let path = format!("/v1/deposits/{}/{}/ack", p["chain"], p["seq"]);
    let body = json!({"outcome": "rejected", "reason_code": "not_recognised"});
    let calls = (0..16).map(|_| app.put(&path, &bank, body.clone()));
    let results = futures::future::join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let repeated = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, repeated), (1, 15), "{results:?}");
    let positions: HashSet<String> = results.iter().map(|(_, b)| b["position"].to_string()).collect();
    assert_eq!(positions.len(), 1, "every answer names the one entry");
    let acks = app.scalar("select count(*) from ledger_entries where kind = 11").await;
    assert_eq!(acks, 1);
    let (code, out) = app.verify_cli().await;
    assert_eq!(code, 0, "{out}");
}

/// Rejects events `e5` and `e11` with a reason code, accepts the rest;
/// slow enough (20 ms a deposit) that a kill lands in the middle of a run.
const DECIDE: &str = r#"sleep 0.02; case "$(cat)" in *'"event_id":"e5"'*|*'"event_id":"e11"'*) echo '{"outcome":"rejected","reason_code":"too_late","reason":"after the deadline"}';; *) echo '{"outcome":"accepted"}';; esac"#;

async fn bank_pull_decides_by_policy_and_skips_deposits_decided_through_the_api(app: TestApp) {
    const N: u32 = 60;
    let key = setup(&app, 4).await;
    let bank = app.bank().await;
    post_events(&app, &key, 0, N, 4).await;
    wait_for_deposits(&app, &bank, u64::from(N)).await;
    let (all, _) = read_feed(&app, &bank, "", 100).await;
    let by_event: BTreeMap<String, Value> = all
        .iter()
        .map(|d| {
            (
                d["event_id"].as_str().unwrap_or_default().to_owned(),
                d["position"].clone(),
            )
        })
        .collect();
    let path = |e: &str| format!("/v1/deposits/{}/{}/ack", by_event[e]["chain"], by_event[e]["seq"]);
    // Bank staff decide three deposits through the API first: e2 rejected
    // (the policy would accept it), e5 accepted (the policy would reject
    // it), e6 accepted (as the policy would).
    let (status, body) = app
        .put(
            &path("e2"),
            &bank,
            json!({"outcome": "rejected", "reason_code": "bank_staff"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for e in ["e5", "e6"] {
        let (status, body) = app.put(&path(e), &bank, json!({"outcome": "accepted"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let dir = std::env::temp_dir().join(format!("xuefen-policy-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("state.json");
    let policy = ["--decide-command", DECIDE];
    let mut rng = rand::thread_rng();
    let mut kills = 0;
    for _ in 0..3 {
        let mut child = run_pull_with(&app, &bank, &state, &policy).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..800))).await;
        if child.try_wait().expect("wait").is_none() {
            child.kill().await.expect("kill");
            kills += 1;
        }
    }
    assert!(kills > 0, "no run was killed midway");
    let out = run_pull_with(&app, &bank, &state, &policy)
        .await
        .wait_with_output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{N} in all (57 accepted, 1 rejected, 2 decided elsewhere)")),
        "{stdout}"
    );
    let acked = app
        .scalar("select count(*) from ledger_entries where kind in (10, 11)")
        .await;
    let distinct = app
        .scalar("select count(*) from (select distinct refers_chain, refers_seq from ledger_entries where kind in (10, 11)) d")
        .await;
    assert_eq!(
        (acked, distinct),
        (i64::from(N), i64::from(N)),
        "one decision per deposit"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("state json");
    let mut elsewhere: Vec<&str> = saved["decided_elsewhere"]
        .as_array()
        .expect("decided_elsewhere")
        .iter()
        .map(|d| d["event_id"].as_str().unwrap_or_default())
        .collect();
    elsewhere.sort_unstable();
    assert_eq!(elsewhere, ["e2", "e5"], "each reported once, across kills");
    assert_eq!(saved["decided_elsewhere"][0]["field"], "outcome");
    assert!(saved["pending"].is_null(), "{saved}");
    // The policy's rejection of e11 is what the service recorded.
    let (status, body) = app.put(&path("e11"), &bank, json!({"outcome": "accepted"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = app
        .put(
            &path("e11"),
            &bank,
            json!({"outcome": "rejected", "reason_code": "too_late", "reason": "after the deadline"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A rules file: the first matching rule decides, no match accepts.
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nevent_id = \"e62\"\noutcome = \"rejected\"\nreason_code = \"not_recognised\"\n",
    )
    .expect("rules");
    let rules_arg = rules.to_str().expect("utf-8 path");
    post_events(&app, &key, N, N + 5, 4).await;
    wait_for_deposits(&app, &bank, u64::from(N + 5)).await;
    let out = run_pull_with(&app, &bank, &state, &["--rules", rules_arg])
        .await
        .wait_with_output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{} in all (61 accepted, 2 rejected, 2 decided elsewhere)",
            N + 5
        )),
        "{stdout}"
    );

    // A bad rules file is refused before anything is pulled, naming the rule.
    std::fs::write(&rules, "[[rule]]\noutcome = \"rejected\"\nreason_code = \"Bad Code\"\n").expect("rules");
    let out = run_pull_with(&app, &bank, &state, &["--rules", rules_arg])
        .await
        .wait_with_output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("rule 1") && stderr.contains("reason_code"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
