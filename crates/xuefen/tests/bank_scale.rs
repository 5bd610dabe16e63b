//! How long a page of deposits with proofs takes on a large ledger
//! (PostgreSQL). Ignored by default: it writes a million entries.
//!
//! ```sh
//! scripts/with-postgres.sh cargo test -p xuefen --test bank_scale -- --ignored --nocapture
//! ```
//!
//! `XUEFEN_BANK_SCALE_ENTRIES` sets the ledger size (default 1 000 000).

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use xuefen_core::amount::{Credits, Hours};
use xuefen_core::bank::Cursor;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Millis};
use xuefen_core::identity::DocumentKind;
use xuefen_core::ids::{Category, CourseCode, EventId, LearnerId, RegionCode, SiteId, SiteLevel, SiteStatus};
use xuefen_core::rule::CreditRule;
use xuefen_store::bank::{CheckpointLimits, deposit_page, make_checkpoint};
use xuefen_store::prelude::*;
use xuefen_store::{Course, NewLearner, Principal, Site};
use xuefen_store_postgres::{PgSettings, PgStore};

const LEARNERS: u32 = 2_000;
const BATCH: usize = 4_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a million entries; run on demand"]
async fn a_page_of_100_deposits_with_proofs_on_a_large_ledger() {
    let entries: u64 = std::env::var("XUEFEN_BANK_SCALE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (_, url) = pg::create_database().await;
    let settings = PgSettings {
        url,
        read_url: None,
        pool_connections_max: 8,
        acquire_timeout: Duration::from_secs(30),
    };
    let store = Arc::new(PgStore::connect(&settings, true).await.expect("connect"));
    let site = SiteId::parse("xihu").expect("site");
    store
        .create_site(
            &Site {
                id: site.clone(),
                name: "西湖".into(),
                level: SiteLevel::County,
                region_code: RegionCode::parse("330106").expect("region"),
                status: SiteStatus::Active,
                agreement_starts_at: None,
                agreement_ends_at: None,
            },
            &xuefen_store::SiteAct {
                actor: "scale-test".into(),
                reason: xuefen_core::event::Reason::parse("joined", "reason").expect("reason"),
                at: xuefen_core::event::Millis::from_datetime(time::OffsetDateTime::now_utc()),
            },
        )
        .await
        .expect("site");
    let course = CourseCode::parse("C1").expect("course");
    store
        .put_course(&Course {
            site: site.clone(),
            code: course.clone(),
            title: "课程".into(),
            category: Category::parse("community").expect("category"),
            rule: CreditRule::Fixed {
                credits: Credits::from_cents(1_00),
            },
            pass_mark: None,
            rule_version: 1,
            recognition_group: None,
            offered_from: None,
            repeat: Default::default(),
        })
        .await
        .expect("course");
    let mut learners = Vec::new();
    for i in 0..LEARNERS {
        let mut random = [0u8; 16];
        random[..4].copy_from_slice(&i.to_be_bytes());
        random[15] = 1;
        let (id, _) = store
            .register_learner(&NewLearner {
                candidate: LearnerId::from_random(random),
                document_kind: DocumentKind::Passport,
                document_hash: sha2_of(i),
                name: "测试".into(),
                secret: sha2_of(i),
                wrapped_key: None,
            })
            .await
            .expect("learner");
        learners.push(id);
    }
    let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
    let started = Instant::now();
    let mut written = 0u64;
    while written < entries {
        let n = BATCH.min((entries - written) as usize);
        let events: Vec<Event> = (0..n as u64)
            .map(|k| {
                let i = written + k;
                Event {
                    site: site.clone(),
                    id: EventId::parse(format!("e{i}")).expect("id"),
                    body: EventBody::Completion(Completion {
                        course: course.clone(),
                        learner: LearnerRef::Id(learners[(i % u64::from(LEARNERS)) as usize].clone()),
                        completed_at: Millis(now.0 - 60_000),
                        score: None,
                        hours: Some(Hours::from_cents(1_00)),
                    }),
                }
            })
            .collect();
        store.ingest(&events, now).await.expect("ingest");
        written += n as u64;
    }
    let ingest_s = started.elapsed().as_secs_f64();

    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let started = Instant::now();
    let limits = CheckpointLimits {
        chain_entries_max: 20_000,
    };
    let mut checkpoints = 0;
    while make_checkpoint(&*store, &key, "scale.example/log", now, limits)
        .await
        .expect("checkpoint")
        .is_some()
    {
        checkpoints += 1;
    }
    let checkpoint_s = started.elapsed().as_secs_f64();
    let nodes: i64 = sqlx::query_scalar("select count(*) from log_tiles")
        .fetch_one(store.pool())
        .await
        .expect("count");

    // Store level: what the handler calls.
    let mut store_ms = Vec::new();
    for after in [0, entries / 2, entries - 200, entries / 3, entries / 5 * 4] {
        for _ in 0..5 {
            let t = Instant::now();
            let page = deposit_page(&*store, after, 100).await.expect("page");
            store_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(page.deposits.len(), 100);
        }
    }

    // Over HTTP, as the bank sees it.
    let (bank_key, secret) = xuefen_api::auth::mint(Principal::Bank);
    store.create_key(&bank_key).await.expect("bank key");
    let state = xuefen_api::AppState::new(
        store.clone(),
        xuefen_api::Limits::default(),
        xuefen_api::CommitSettings::default(),
        b"scale".to_vec(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(xuefen_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let mut http_ms = Vec::new();
    let mut bytes = 0;
    for after in [0, entries / 2, entries - 200, entries / 3, entries / 5 * 4] {
        for _ in 0..5 {
            let t = Instant::now();
            let body = client
                .get(format!("{base}/v1/deposits?after={}&limit=100", Cursor(after).encode()))
                .bearer_auth(&secret)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            http_ms.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = body.len();
        }
    }
    let _ = stop.send(());
    println!(
        "bank-scale entries={entries} ingest_s={ingest_s:.1} checkpoints={checkpoints} checkpoint_s={checkpoint_s:.1} \
         log_tiles={nodes} page100_store_ms_median={:.1} page100_store_ms_max={:.1} \
         page100_http_ms_median={:.1} page100_http_ms_max={:.1} page100_bytes={bytes}",
        median(store_ms.clone()),
        store_ms.iter().copied().fold(0.0, f64::max),
        median(http_ms.clone()),
        http_ms.iter().copied().fold(0.0, f64::max),
    );
}

fn sha2_of(i: u32) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(i.to_be_bytes()).into()
}
