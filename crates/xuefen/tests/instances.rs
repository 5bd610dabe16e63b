//! Three `xuefen serve` processes on one PostgreSQL database, driven at
//! once with overlapping and duplicate events (the same event ids sent to
//! different instances, single PUTs and batches mixed). Afterwards every
//! event id is in the ledger exactly once, every chain is gap-free and
//! matches its head, `xuefen verify` passes, and transcript totals equal a
//! recount from SQL and from the events themselves.
//!
//! Needs `XUEFEN_TEST_PG_ADMIN_URL` (scripts/test.sh and
//! scripts/with-postgres.sh set it) and fails without it.

#[path = "support/pg.rs"]
mod pg;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;

const XUEFEN: &str = env!("CARGO_BIN_EXE_xuefen");
const INSTANCES: usize = 3;
const LEARNERS: usize = 24;
const EVENTS: usize = 1_500;
/// Every `REVOKE_EVERY`-th event is revoked (by all instances at once).
const REVOKE_EVERY: usize = 7;
const BATCH: usize = 100;
const SINGLE_TASKS: usize = 6;
const SITE: &str = "multi";
const COURSE: &str = "multi-hours";

/// The children, killed and reaped when the test ends, however it ends.
struct Instances {
    children: Vec<Child>,
}

impl Drop for Instances {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `xuefen serve` on a free loopback port; returns the child, its
/// base URL and the admin key when it printed one.
fn start(db_url: &str, data_dir: &Path, n: usize) -> (Child, String, Option<String>) {
    let log = std::fs::File::create(data_dir.join(format!("server-{n}.log"))).expect("log file");
    let mut child = Command::new(XUEFEN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("DATABASE_URL", db_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start xuefen serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut admin = None;
    let base = loop {
        let line = lines
            .next()
            .expect("xuefen serve exited during startup (see its log)")
            .expect("read stdout");
        if let Some(k) = line.strip_prefix("bootstrap admin key (shown once): ") {
            admin = Some(k.trim().to_owned());
        } else if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_owned();
        }
    };
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "instance {n} must listen on loopback, got {base}"
    );
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, base, admin)
}

/// What every instance is told about event `i`: the same content
/// whichever instance receives it.
fn completion(i: usize, with_id: bool) -> Value {
    let quarters = 4 + (i * 37) % 157; // 1..40 hours in quarter hours
    let mut v = json!({
        "kind": "completion",
        "course": COURSE,
        "learner": {"local_account": format!("acct-{}", i % LEARNERS)},
        "completed_at": format!("2024-0{}-1{}T0{}:{:02}:00+08:00", 1 + i % 9, i % 10, i % 10, i % 60),
        "hours": format!("{}.{:02}", quarters * 25 / 100, quarters * 25 % 100),
    });
    if with_id {
        v["event_id"] = json!(format!("e-{i}"));
    }
    v
}

/// Credits of event `i` under the course (1 credit per 8 h, at most 4), in hundredths.
fn expected_cents(i: usize) -> i64 {
    let hours_cents = ((4 + (i * 37) % 157) * 25) as i64;
    (hours_cents * 100 / 800).min(400)
}

fn revocation(i: usize, with_id: bool) -> Value {
    let mut v = json!({"kind": "revocation", "target_event_id": format!("e-{i}"), "reason": "entered twice"});
    if with_id {
        v["event_id"] = json!(format!("r-{i}"));
    }
    v
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    accepted: usize,
    duplicate: usize,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.accepted += o.accepted;
        self.duplicate += o.duplicate;
    }
}

/// Sends `items` (event index, JSON with id) to one instance: batches of
/// [`BATCH`] for the even positions, single PUTs for the others, all at once.
async fn drive(http: reqwest::Client, base: String, key: String, items: Vec<(String, Value)>) -> Tally {
    let (batched, singles): (Vec<_>, Vec<_>) = items.into_iter().enumerate().partition(|(n, _)| n % 2 == 0);
    let mut tasks = tokio::task::JoinSet::new();
    let batched: Vec<Value> = batched.into_iter().map(|(_, (_, v))| v).collect();
    for chunk in batched.chunks(BATCH) {
        let (http, base, key, body) = (http.clone(), base.clone(), key.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let resp = http
                .post(format!("{base}/v1/events"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("POST /v1/events");
            let status = resp.status();
            let out: Value = resp.json().await.expect("batch answer");
            assert_eq!(status, StatusCode::OK, "batch answer: {out}");
            for r in out["results"].as_array().expect("results") {
                let s = r["status"].as_str().unwrap_or_default();
                assert!(
                    s == "accepted" || s == "duplicate",
                    "unexpected batch result from {base}: {r}"
                );
            }
            let n = |f: &str| out[f].as_u64().expect("count") as usize;
            assert_eq!(n("conflict") + n("rejected"), 0, "{out}");
            Tally {
                accepted: n("accepted"),
                duplicate: n("duplicate"),
            }
        });
    }
    let singles: Arc<Vec<(String, Value)>> = Arc::new(singles.into_iter().map(|(_, x)| x).collect());
    for t in 0..SINGLE_TASKS {
        let (http, base, key, singles) = (http.clone(), base.clone(), key.clone(), singles.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            for (id, body) in singles.iter().skip(t).step_by(SINGLE_TASKS) {
                let mut body = body.clone();
                if let Some(o) = body.as_object_mut() {
                    o.remove("event_id");
                }
                let resp = http
                    .put(format!("{base}/v1/events/{id}"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .expect("PUT /v1/events");
                match resp.status() {
                    StatusCode::CREATED => tally.accepted += 1,
                    StatusCode::OK => tally.duplicate += 1,
                    s => panic!("PUT {id} on {base}: {s}: {}", resp.text().await.unwrap_or_default()),
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(t) = tasks.join_next().await {
        tally.add(t.expect("driver task"));
    }
    tally
}

/// Sends every event of `make(i)` for `indices` to two or three instances,
/// each in its own order, all instances at once.
async fn round(
    http: &reqwest::Client,
    bases: &[String],
    key: &str,
    indices: &[usize],
    copies: usize,
    make: fn(usize, bool) -> Value,
    id_of: fn(usize) -> String,
) -> Tally {
    let mut per_instance: Vec<Vec<(String, Value)>> = vec![Vec::new(); bases.len()];
    for &i in indices {
        for c in 0..copies {
            per_instance[(i + c) % bases.len()].push((id_of(i), make(i, true)));
        }
    }
    let mut drivers = tokio::task::JoinSet::new();
    for (k, mut items) in per_instance.into_iter().enumerate() {
        // A different order per instance, so that copies race rather than queue.
        let len = items.len().max(1);
        let mut stride = [1, 7, 13][k % 3];
        while gcd(stride, len) != 1 {
            stride += 1;
        }
        items = (0..items.len())
            .map(|j| items[(j * stride + k * 11) % len].clone())
            .collect();
        drivers.spawn(drive(http.clone(), bases[k].clone(), key.to_owned(), items));
    }
    let mut tally = Tally::default();
    while let Some(t) = drivers.join_next().await {
        tally.add(t.expect("driver"));
    }
    tally
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_write_one_consistent_ledger() {
    let (db, db_url) = pg::create_database().await;
    let data_dir: PathBuf = std::env::temp_dir().join(&db);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    eprintln!("instances: database {db}, logs in {}", data_dir.display());

    // The first instance creates the schema and the admin key; the others
    // start after it (their migrations find nothing to do) and share its
    // data directory, hence its identity key.
    let mut guard = Instances { children: Vec::new() };
    let (child, first, admin_key) = start(&db_url, &data_dir, 0);
    guard.children.push(child);
    let admin_key = admin_key.expect("the first instance prints the admin key");
    let mut bases = vec![first];
    for n in 1..INSTANCES {
        let (child, base, key) = start(&db_url, &data_dir, n);
        guard.children.push(child);
        assert!(key.is_none(), "only the first instance bootstraps a key");
        bases.push(base);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");

    // Site and course on one instance, learners registered across all of
    // them (each person twice, on two instances: one learner each).
    let resp = http
        .post(format!("{}/v1/sites", bases[0]))
        .bearer_auth(&admin_key)
        .json(&json!({"id": SITE, "name": "Multi", "level": "county", "region_code": "330106"}))
        .send()
        .await
        .expect("create site");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let site: Value = resp.json().await.expect("site");
    let key = site["key"]["secret"].as_str().expect("site key").to_owned();
    let resp = http
        .put(format!("{}/v1/courses/{COURSE}", bases[1]))
        .bearer_auth(&key)
        .json(&json!({"title": "Hours", "category": "community",
                      "rule": {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"},
                      // Every completion pays, so each event id is one entry
                      // (a recognised completion promoted later repeats its id).
                      "repeat": "every_completion"}))
        .send()
        .await
        .expect("create course");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut registrations = tokio::task::JoinSet::new();
    for l in 0..LEARNERS {
        for copy in 0..2 {
            let (http, base, key) = (http.clone(), bases[(l + copy) % INSTANCES].clone(), key.clone());
            registrations.spawn(async move {
                let resp = http
                    .post(format!("{base}/v1/learners"))
                    .bearer_auth(&key)
                    .json(&json!({"name": format!("Learner {l}"),
                                  "document": {"kind": "passport", "number": format!("M{l:07}")},
                                  "local_account": format!("acct-{l}")}))
                    .send()
                    .await
                    .expect("register");
                let status = resp.status();
                let out: Value = resp.json().await.expect("learner");
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::OK,
                    "{status}: {out}"
                );
                (l, out["learner_id"].as_str().expect("id").to_owned())
            });
        }
    }
    let mut learners: BTreeMap<usize, String> = BTreeMap::new();
    while let Some(r) = registrations.join_next().await {
        let (l, id) = r.expect("registration");
        if let Some(prev) = learners.insert(l, id.clone()) {
            assert_eq!(prev, id, "one person, one learner, whichever instance registered them");
        }
    }

    // Completions: every event to two instances; then revocations of every
    // REVOKE_EVERY-th event to all three.
    let started = Instant::now();
    let all: Vec<usize> = (0..EVENTS).collect();
    let t = round(&http, &bases, &key, &all, 2, completion, |i| format!("e-{i}")).await;
    assert_eq!(t.accepted, EVENTS, "each completion accepted exactly once: {t:?}");
    assert_eq!(t.duplicate, EVENTS, "the second copy of each is a duplicate: {t:?}");
    let revoked: Vec<usize> = (0..EVENTS).step_by(REVOKE_EVERY).collect();
    let t = round(&http, &bases, &key, &revoked, 3, revocation, |i| format!("r-{i}")).await;
    assert_eq!(
        t.accepted,
        revoked.len(),
        "each revocation accepted exactly once: {t:?}"
    );
    assert_eq!(t.duplicate, 2 * revoked.len(), "{t:?}");
    eprintln!("instances: driven in {:.1}s", started.elapsed().as_secs_f64());

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .expect("connect to the test database");

    // Each event id exactly once, and exactly the ids that were sent.
    let rows = sqlx::query("select event_id, count(*) from ledger_entries group by site_id, event_id")
        .fetch_all(&pool)
        .await
        .expect("count ids");
    assert_eq!(rows.len(), EVENTS + revoked.len(), "distinct event ids");
    for r in &rows {
        let (id, n): (String, i64) = (r.get(0), r.get(1));
        assert_eq!(n, 1, "event {id} is in the ledger {n} times");
        let ok = id
            .strip_prefix("e-")
            .or_else(|| id.strip_prefix("r-"))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < EVENTS);
        assert!(ok, "unexpected event id {id}");
    }

    // Gap-free chains that end at their heads.
    let chains = sqlx::query(
        "select h.chain_id, h.seq, coalesce(max(l.seq), 0), count(l.seq), coalesce(min(l.seq), 1)
           from chain_heads h left join ledger_entries l on l.chain_id = h.chain_id
          group by h.chain_id, h.seq order by h.chain_id",
    )
    .fetch_all(&pool)
    .await
    .expect("chain positions");
    assert!(!chains.is_empty());
    let mut in_chains = 0;
    for r in &chains {
        let (chain, head, max, count, min): (i32, i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        assert_eq!(min, 1, "chain {chain} does not start at 1");
        assert_eq!(max, count, "chain {chain} has gaps: max seq {max}, {count} entries");
        assert_eq!(head, count, "chain {chain}: head at {head}, {count} entries");
        in_chains += count;
    }
    assert_eq!(in_chains as usize, EVENTS + revoked.len());

    // The whole ledger verifies.
    let out = Command::new(XUEFEN)
        .arg("verify")
        .env("DATABASE_URL", &db_url)
        .output()
        .expect("run xuefen verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("ok: {} entries", EVENTS + revoked.len())),
        "{stdout}"
    );

    // Transcript totals (read from every instance in turn) equal the SQL
    // recount and the credits the events themselves earn.
    let sums: HashMap<String, (i64, i64)> =
        sqlx::query("select learner_id, sum(credits_cents)::bigint, count(*) from ledger_entries group by learner_id")
            .fetch_all(&pool)
            .await
            .expect("recount")
            .iter()
            .map(|r| (r.get::<String, _>(0), (r.get::<i64, _>(1), r.get::<i64, _>(2))))
            .collect();
    let mut expected: HashMap<usize, i64> = HashMap::new();
    for i in 0..EVENTS {
        if i % REVOKE_EVERY != 0 {
            *expected.entry(i % LEARNERS).or_default() += expected_cents(i);
        }
    }
    let mut grand = Decimal::ZERO;
    for (l, id) in &learners {
        let base = &bases[l % INSTANCES];
        let resp = http
            .get(format!("{base}/v1/learners/{id}/transcript"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("transcript");
        assert_eq!(resp.status(), StatusCode::OK);
        let t: Value = resp.json().await.expect("transcript body");
        let total: Decimal = t["totals"]["total"]
            .as_str()
            .expect("total")
            .parse()
            .expect("decimal total");
        // The site knows the learner by its pseudonym; the ledger by the
        // unified id.
        let global: String = sqlx::query_scalar("select learner_id from learner_pseudonyms where pseudonym = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the pseudonym handed to the site");
        let (cents, count) = sums.get(&global).copied().unwrap_or_default();
        assert_eq!(total, Decimal::new(cents, 2), "learner {l}: transcript vs SQL");
        assert_eq!(
            total,
            Decimal::new(expected.get(l).copied().unwrap_or_default(), 2),
            "learner {l}: transcript vs the events sent"
        );
        let entries = t["entries"].as_array().expect("entries").len();
        assert_eq!(entries as i64, count, "learner {l}: entries");
        grand += total;
    }
    let sql_total: i64 = sqlx::query_scalar("select coalesce(sum(credits_cents), 0)::bigint from ledger_entries")
        .fetch_one(&pool)
        .await
        .expect("grand total");
    assert_eq!(grand, Decimal::new(sql_total, 2));

    pool.close().await;
    drop(guard);
    pg::drop_database(&db).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
