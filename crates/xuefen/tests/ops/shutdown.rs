//! SIGTERM under load: the listener closes, requests in flight and their
//! group commits finish, the process exits 0 within the grace bound, every
//! event answered 2xx is in the ledger, and the ledger verifies.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Server, XUEFEN, backends, completion};

/// Concurrent clients; each sends at most `REQUESTS_MAX` requests and stops
/// after `LOAD_BOUND` whatever happens.
const CLIENTS: usize = 8;
const REQUESTS_MAX: usize = 400;
const LOAD_BOUND: Duration = Duration::from_secs(20);
const GRACE_SECONDS: u64 = 10;
const BATCH: usize = 10;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Event ids answered 2xx.
    acknowledged: BTreeSet<String>,
    /// Answers that were neither 2xx nor a `503` problem (should be none).
    unexpected: Vec<String>,
    /// Requests that failed at the connection level (refused or closed).
    refused: usize,
}

async fn client(app_base: String, key: String, n: usize, seen: Arc<Mutex<Seen>>) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..REQUESTS_MAX {
        if started.elapsed() > LOAD_BOUND {
            break;
        }
        // Alternate single PUTs and batches, so both paths are in flight.
        let (ids, req) = if i % 2 == 0 {
            let id = format!("c{n}-s{i}");
            let req = http
                .put(format!("{app_base}/v1/events/{id}"))
                .bearer_auth(&key)
                .json(&completion("5"));
            (vec![id], req)
        } else {
            let ids: Vec<String> = (0..BATCH).map(|j| format!("c{n}-b{i}-{j}")).collect();
            let items: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let mut e = completion("5");
                    e["event_id"] = json!(id);
                    e
                })
                .collect();
            let req = http
                .post(format!("{app_base}/v1/events"))
                .bearer_auth(&key)
                .json(&items);
            (ids, req)
        };
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let mut seen = seen.lock().expect("lock");
                if status.is_success() {
                    seen.acknowledged.extend(ids);
                } else if status != StatusCode::SERVICE_UNAVAILABLE {
                    seen.unexpected.push(format!("{status}: {body}"));
                }
            }
            Err(_) => {
                // Refused or closed: the server has stopped taking work.
                seen.lock().expect("lock").refused += 1;
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_in_flight_work_and_exits_zero() {
    for backend in backends() {
        let grace = GRACE_SECONDS.to_string();
        let mut app = Server::start(backend, &[], &["--shutdown-grace-seconds", &grace]).await;
        let key = app.fixture().await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| tokio::spawn(client(app.base.clone(), key.clone(), n, seen.clone())))
            .collect();
        // Let the load build up, then stop the server mid-way.
        let started = Instant::now();
        while seen.lock().expect("lock").acknowledged.len() < 200 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before_term = seen.lock().expect("lock").acknowledged.len();
        assert!(before_term > 0, "no load reached the server:\n{}", app.log());
        app.sigterm();
        let signalled = Instant::now();

        // New connections are refused once the listener is closed (polled:
        // a loaded machine may take a moment to deliver the signal).
        let mut refused = false;
        while !refused && signalled.elapsed() < Duration::from_secs(GRACE_SECONDS) {
            let late = reqwest::Client::new()
                .get(format!("{}/healthz", app.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            refused = late.is_err();
            if !refused {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(refused, "new connections were still served after SIGTERM");

        let status = tokio::task::block_in_place(|| app.wait_exit(Duration::from_secs(GRACE_SECONDS + 5)))
            .unwrap_or_else(|| panic!("no exit within the grace bound:\n{}", app.log()));
        assert!(status.success(), "exit status {status}:\n{}", app.log());
        assert!(
            signalled.elapsed() < Duration::from_secs(GRACE_SECONDS),
            "took {:?}",
            signalled.elapsed()
        );
        for c in clients {
            c.await.expect("client task");
        }
        let seen = std::mem::take(&mut *seen.lock().expect("lock"));
        assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
        assert!(seen.refused > 0, "the clients were still being served after exit");
        // Eight clients keep requests in flight: some are answered after the
        // signal, which is the drain at work.
        assert!(
            seen.acknowledged.len() > before_term,
            "nothing in flight was finished after SIGTERM ({before_term} before)"
        );

        // Every acknowledged event is in the ledger; nothing half-written.
        let in_ledger = ledger_event_ids(&app.database_url).await;
        let missing: Vec<_> = seen.acknowledged.difference(&in_ledger).take(5).collect();
        assert!(
            missing.is_empty(),
            "{backend:?}: acknowledged but not in the ledger: {missing:?}"
        );
        let out = std::process::Command::new(XUEFEN)
            .arg("verify")
            .env("DATABASE_URL", &app.database_url)
            .output()
            .expect("run xuefen verify");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        eprintln!(
            "{backend:?}: {} events acknowledged ({} before SIGTERM), {} in the ledger, exit after {:?}",
            seen.acknowledged.len(),
            before_term,
            in_ledger.len(),
            signalled.elapsed()
        );
    }
}

/// Every event id in the ledger, read straight from the database.
async fn ledger_event_ids(url: &str) -> BTreeSet<String> {
    let sql = "select event_id from ledger_entries";
    let ids: Vec<String> = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
        let ids = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("read ledger");
        pool.close().await;
        ids
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let ids = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("read ledger");
        pool.close().await;
        ids
    };
    ids.into_iter().collect()
}
