//! The batch contract of `POST /v1/events` (its OpenAPI description,
//! `crates/xuefen-api/src/batch_contract.rs`) under SIGKILL: the server is
//! killed while a batch of 1,000 events over 80 learners is in flight, then
//! restarted on the same database. Checked, as the contract says:
//! - each item is whole or absent (at most one entry per event id) and the
//!   chains verify (`xuefen verify`);
//! - on SQLite (one shard) the batch is all or nothing;
//! - retrying the whole batch answers `duplicate`, at the stored position,
//!   for exactly the items that were written, and `accepted` for the rest;
//!   afterwards every item is written once, and a third send writes nothing.
//!
//! On PostgreSQL the batch is split over 8 shards, so a kill can leave it
//! partly written; the rounds report how much was.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Backend, Server, XUEFEN, backends};

const ITEMS: usize = 1_000;
const LEARNERS: u32 = 80;

fn resident_id(person: u32) -> String {
    let first17 = format!("33010619900101{:03}", person % 1_000);
    let arr: [u8; 17] = first17.as_bytes().try_into().expect("17 digits");
    format!("{first17}{}", xuefen_core::identity::resident_id_check_char(&arr))
}

/// `xuefen serve` on an existing database and data directory.
fn restart(server: &Server, env: &[(&str, String)]) -> (Child, String) {
    let mut cmd = Command::new(XUEFEN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.dir)
        .env("DATABASE_URL", &server.database_url)
        .env_remove("XUEFEN_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("restart xuefen serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("the server printed its address").expect("line");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, base)
}

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL failed");
}

/// The entries of the round's events, by event id: (chain, seq) of each, or
/// a panic if an event id has more than one entry.
async fn entries(backend: Backend, url: &str, prefix: &str) -> BTreeMap<String, (i64, i64)> {
    let sql = "select event_id, chain_id, seq from ledger_entries where event_id like ";
    let rows: Vec<(String, i64, i64)> = match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let rows = sqlx::query_as(&format!("{sql} $1 || '%'"))
                .bind(prefix)
                .fetch_all(&pool)
                .await
                .expect("entries");
            pool.close().await;
            rows.into_iter()
                .map(|(e, c, s): (String, i32, i64)| (e, i64::from(c), s))
                .collect()
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            let rows = sqlx::query_as(&format!("{sql} ? || '%'"))
                .bind(prefix)
                .fetch_all(&pool)
                .await
                .expect("entries");
            pool.close().await;
            rows
        }
    };
    let mut out = BTreeMap::new();
    for (event, chain, seq) in rows {
        assert!(
            out.insert(event.clone(), (chain, seq)).is_none(),
            "event {event} has more than one entry: an item written in part or twice"
        );
    }
    out
}

fn verify(server: &Server) {
    let out = Command::new(XUEFEN)
        .args(["verify", "--data-dir"])
        .arg(&server.dir)
        .env("DATABASE_URL", &server.database_url)
        .env_remove("XUEFEN_CONFIG")
        .output()
        .expect("run verify");
    assert!(
        out.status.success(),
        "the chains verify after the kill: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn post_batch(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    batch: &Value,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let resp = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(key)
        .json(batch)
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    let status = resp.status();
    let body = resp.json().await?;
    Ok((status, body))
}

#[tokio::test]
async fn a_batch_killed_mid_commit_is_whole_per_item_and_a_retry_completes_it_once() {
    for backend in backends() {
        scenario(backend).await;
    }
}

async fn scenario(backend: Backend) {
    let env = vec![("XUEFEN_COMMIT_SHARDS", "8".to_owned())];
    let mut server = Server::start(backend, &env, &[]).await;
    let site = server.fixture().await;
    for i in 0..LEARNERS {
        let learner = json!({"name": "测试", "document": {"kind": "resident_id", "number": resident_id(i)}, "local_account": format!("p{i}")});
        let (s, body) = server
            .call(Method::POST, "/v1/learners", Some(&site), Some(learner))
            .await;
        assert!(s.is_success(), "{body}");
    }
    let client = reqwest::Client::new();
    let mut base = server.base.clone();
    let mut child: Option<Child> = None;
    let mut killed_mid = 0;
    let mut partial = Vec::new();
    for (round, delay_ms) in [10u64, 60, 240, 480, 700, 1_000, 1_500].into_iter().enumerate() {
        let prefix = format!("k{round}-");
        let batch = Value::Array(
            (0..ITEMS)
                .map(|i| {
                    json!({"event_id": format!("{prefix}{i:04}"), "kind": "completion", "course": "C1",
                           "learner": {"local_account": format!("p{}", i as u32 % LEARNERS)},
                           "completed_at": "2026-03-01T10:00:00Z", "hours": "5"})
                })
                .collect(),
        );
        let pid = child.as_ref().map_or_else(|| server.pid(), Child::id);
        let send = {
            let (client, base, site, batch) = (client.clone(), base.clone(), site.clone(), batch.clone());
            tokio::spawn(async move { post_batch(&client, &base, &site, &batch).await })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        kill9(pid);
        let answered = matches!(send.await.expect("task"), Ok((StatusCode::OK, _)));
        if let Some(mut c) = child.take() {
            let _ = c.wait();
        } else {
            let _ = server.wait_exit(Duration::from_secs(10));
        }
        let before = entries(backend, &server.database_url, &prefix).await;
        if !answered {
            killed_mid += 1;
            if backend == Backend::Sqlite {
                assert!(
                    before.is_empty() || before.len() == ITEMS,
                    "SQLite commits a batch in one transaction, but {} of {ITEMS} items were written",
                    before.len()
                );
            }
            if !before.is_empty() && before.len() < ITEMS {
                partial.push(before.len());
            }
        } else {
            assert_eq!(before.len(), ITEMS, "a 200 answer means every item is durable");
        }
        verify(&server);

        // Restart on the same database and send the whole batch again.
        let (c, b) = restart(&server, &env);
        child = Some(c);
        base = b;
        let (s, out) = post_batch(&client, &base, &site, &batch).await.expect("retry");
        assert_eq!(s, StatusCode::OK, "{out}");
        let results = out["results"].as_array().expect("results");
        assert_eq!(results.len(), ITEMS);
        for r in results {
            let id = r["event_id"].as_str().expect("event id");
            match before.get(id) {
                Some((chain, seq)) => {
                    assert_eq!(r["status"], "duplicate", "{id} was written before the kill: {r}");
                    assert_eq!(r["position"]["chain"].as_i64(), Some(*chain), "{r}");
                    assert_eq!(r["position"]["seq"].as_i64(), Some(*seq), "{r}");
                }
                None => assert_eq!(r["status"], "accepted", "{id} was not written before the kill: {r}"),
            }
        }
        let after = entries(backend, &server.database_url, &prefix).await;
        assert_eq!(after.len(), ITEMS, "every item written once after the retry");
        for (id, at) in &before {
            assert_eq!(after.get(id), Some(at), "{id} kept its position");
        }
        let (s, again) = post_batch(&client, &base, &site, &batch).await.expect("third send");
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            again["duplicate"].as_u64(),
            Some(ITEMS as u64),
            "{}",
            again["duplicate"]
        );
        assert_eq!(entries(backend, &server.database_url, &prefix).await, after);
        eprintln!(
            "{backend:?} round {round}: killed after {delay_ms} ms, {}; {} of {ITEMS} items were written before the retry",
            if answered {
                "after the answer"
            } else {
                "before the answer"
            },
            before.len()
        );
        if !answered && !partial.is_empty() {
            break;
        }
    }
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(killed_mid > 0, "no round killed the server before it answered");
    eprintln!("{backend:?}: {killed_mid} rounds killed mid-batch; partly written batches: {partial:?}");
}
