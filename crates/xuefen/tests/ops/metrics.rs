//! `/metrics` after real traffic: every count moves by exactly what was sent.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Server, backends, completion, sample, sum_of};

const PUT_ROUTE: &str = "route=\"/v1/events/{event_id}\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_outcomes_commits_heads_and_the_pool() {
    for backend in backends() {
        let app = Server::start(backend, &[], &["--pool-connections-max", "5"]).await;
        let site = app.fixture().await;
        let before = app.scrape().await;

        // Three accepted, one duplicate, one conflict over single PUTs.
        for (id, hours) in [("e1", "5"), ("e2", "10"), ("e3", "15"), ("e1", "5"), ("e2", "11")] {
            app.call(
                Method::PUT,
                &format!("/v1/events/{id}"),
                Some(&site),
                Some(completion(hours)),
            )
            .await;
        }
        // A batch: one accepted, one rejected by the ledger (unknown course),
        // one rejected before it (no such event kind).
        let mut unknown = completion("5");
        unknown["course"] = json!("NOPE");
        unknown["event_id"] = json!("b2");
        let mut good = completion("5");
        good["event_id"] = json!("b1");
        let unparsed = json!({"event_id": "b3", "kind": "attendance"});
        let (s, body) = app
            .call(
                Method::POST,
                "/v1/events",
                Some(&site),
                Some(json!([good, unknown, unparsed])),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            (body["accepted"].as_u64(), body["rejected"].as_u64()),
            (Some(1), Some(2)),
            "{body}"
        );
        // A route that does not exist is counted as `unmatched`, not by its path.
        app.call(Method::GET, "/no/such/path/42", None, None).await;

        let after = app.scrape().await;
        let delta = |series: &str| sample(&after, series) - sample(&before, series);
        let put = |status: u16| format!("method=\"PUT\",{PUT_ROUTE},status=\"{status}\"");
        assert_eq!(
            delta(&format!("xuefen_http_requests_total{{{}}}", put(201))),
            3.0,
            "{backend:?}\n{after}"
        );
        assert_eq!(delta(&format!("xuefen_http_requests_total{{{}}}", put(200))), 1.0);
        assert_eq!(delta(&format!("xuefen_http_requests_total{{{}}}", put(409))), 1.0);
        assert_eq!(
            delta(&format!("xuefen_http_request_duration_seconds_count{{{}}}", put(201))),
            3.0
        );
        assert_eq!(
            delta("xuefen_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
            1.0
        );
        assert!(!after.contains("/no/such/path"), "raw paths never become labels");

        assert_eq!(delta("xuefen_events_total{outcome=\"accepted\"}"), 4.0, "{after}");
        assert_eq!(delta("xuefen_events_total{outcome=\"duplicate\"}"), 1.0);
        assert_eq!(delta("xuefen_events_total{outcome=\"conflict\"}"), 1.0);
        assert_eq!(delta("xuefen_events_total{outcome=\"rejected\"}"), 2.0);

        // Six group commits (five PUTs and the batch) wrote seven events; the
        // unparsed item never reached a commit.
        assert_eq!(delta("xuefen_commit_batch_events_count"), 6.0);
        assert_eq!(delta("xuefen_commit_batch_events_sum"), 7.0);
        assert_eq!(delta("xuefen_commit_batch_requests_sum"), 6.0);
        assert_eq!(delta("xuefen_commit_duration_seconds_count{result=\"ok\"}"), 6.0);
        assert!(delta("xuefen_commit_duration_seconds_sum{result=\"ok\"}") > 0.0);

        // A fresh ledger: the chain heads add up to the entries written.
        assert_eq!(sum_of(&after, "xuefen_chain_head_seq"), 4.0, "{after}");
        assert_eq!(sample(&after, "xuefen_db_pool_connections_max"), 5.0);
        let open = sum_of(&after, "xuefen_db_pool_connections");
        assert!((1.0..=5.0).contains(&open), "{open} connections open");
        assert_eq!(
            sample(&after, "xuefen_http_requests_in_flight"),
            1.0,
            "the scrape itself is in flight"
        );
    }
}

/// The credit bank's lag behind the feed is `published - read`: the
/// deposits the latest checkpoint covers against the highest deposit the feed
/// has served; the checkpoint's number and age are there to alert on a
/// checkpointer that stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_deposit_feed_lag_and_the_checkpoint_age() {
    for backend in backends() {
        let app = Server::start(backend, &[], &["--set", "checkpoint_interval_ms=50"]).await;
        let site = app.fixture().await;
        for (id, hours) in [("e1", "5"), ("e2", "10"), ("e3", "15")] {
            let (s, body) = app
                .call(
                    Method::PUT,
                    &format!("/v1/events/{id}"),
                    Some(&site),
                    Some(completion(hours)),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut scrape = app.scrape().await;
        while sample(&scrape, "xuefen_deposits_published") < 3.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: no checkpoint\n{scrape}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            scrape = app.scrape().await;
        }
        assert_eq!(sample(&scrape, "xuefen_deposits_read"), 0.0, "nothing read yet");
        assert!(sample(&scrape, "xuefen_checkpoint_latest") >= 1.0);
        let age = sample(&scrape, "xuefen_checkpoint_age_seconds");
        assert!((0.0..20.0).contains(&age), "{age}");

        let (s, body) = app.call(Method::POST, "/v1/bank/keys", Some(&app.admin), None).await;
        assert!(s.is_success(), "{body}");
        let bank = body["secret"].as_str().expect("bank secret").to_owned();
        let (s, page) = app.call(Method::GET, "/v1/deposits?limit=2", Some(&bank), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(sample(&app.scrape().await, "xuefen_deposits_read"), 2.0);
        // Replaying the first page again does not lower the mark.
        app.call(Method::GET, "/v1/deposits?limit=1", Some(&bank), None).await;
        let scrape = app.scrape().await;
        assert_eq!(sample(&scrape, "xuefen_deposits_read"), 2.0, "{scrape}");
        assert_eq!(sample(&scrape, "xuefen_deposits_published"), 3.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_api_port() {
    let mut app = Server::start(
        crate::server::Backend::Sqlite,
        &[],
        &["--metrics-listen", "127.0.0.1:0"],
    )
    .await;
    let metrics_base = app
        .metrics_base
        .clone()
        .expect("the metrics listener's address is printed");
    let (status, _) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "/metrics is not on the API port");
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = app
        .client
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert_eq!(
        sample(
            &scrape,
            "xuefen_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"
        ),
        1.0,
        "API requests are counted on the metrics listener:\n{scrape}"
    );
    // SIGTERM stops both listeners.
    app.sigterm();
    let status = tokio::task::block_in_place(|| app.wait_exit(std::time::Duration::from_secs(15))).expect("exits");
    assert!(status.success(), "{status}");
}
