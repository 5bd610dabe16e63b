//! Hostile clients over real TCP against the real binary: slow-loris
//! headers, a stalled body, a request that outlives its timeout, a key over
//! its rate, and more idle connections than the process has descriptors.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::{Server, backends};

fn addr(app: &Server) -> String {
    app.base.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// A client that keeps no connection between requests, so a connection the
/// server shed is never reused.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Reads until the peer closes or `bound` passes; returns what was read
/// and whether the peer closed.
async fn read_until_close(stream: &mut TcpStream, bound: Duration) -> (String, bool) {
    let deadline = Instant::now() + bound;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Whether `stream` has been closed by the peer (checked without waiting long).
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn health_ok(app: &Server) -> Result<Duration, String> {
    let started = Instant::now();
    let resp = fresh_client()
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .map_err(|e| format!("healthz: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("healthz answered {}", resp.status()));
    }
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_silent_connections_are_closed_after_the_header_read_timeout() {
    for backend in backends() {
        let app = Server::start(backend, &[("XUEFEN_HEADER_READ_TIMEOUT_MS", "1000".into())], &[]).await;
        let mut silent = TcpStream::connect(addr(&app)).await.expect("connect");
        let mut loris = TcpStream::connect(addr(&app)).await.expect("connect");
        let started = Instant::now();
        loris
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("first header line");
        // One header line every 200 ms, never the blank line that ends them.
        let mut loris_closed_after = None;
        for i in 0..40 {
            if closed_by_peer(&mut loris).await
                || loris.write_all(format!("X-Drip-{i}: a\r\n").as_bytes()).await.is_err()
            {
                loris_closed_after = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let loris_closed_after = loris_closed_after.expect("the slow-loris connection was still open after 8 s");
        assert!(
            loris_closed_after >= Duration::from_millis(900) && loris_closed_after < Duration::from_secs(4),
            "{backend:?}: slow loris closed after {loris_closed_after:?}"
        );
        let (_, silent_closed) = read_until_close(&mut silent, Duration::from_secs(3)).await;
        assert!(
            silent_closed,
            "{backend:?}: a connection that sent nothing is still open"
        );
        // Everyone else is served meanwhile and after.
        health_ok(&app).await.expect("served after the loris");
    }
}

/// Sends the head of a `POST /v1/events` declaring `declared` bytes, then
/// `sent` bytes of it, and stops.
async fn stalled_post(app: &Server, key: &str, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr(app)).await.expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let mut part = vec![b' '; sent];
    part[0] = b'[';
    s.write_all(&part).await.expect("part of the body");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_a_408_problem_after_the_body_read_timeout() {
    for backend in backends() {
        let app = Server::start(backend, &[("XUEFEN_BODY_READ_TIMEOUT_MS", "1000".into())], &[]).await;
        let key = app.fixture().await;
        let started = Instant::now();
        let mut s = stalled_post(&app, &key, 1_000_000, 64 * 1024).await;
        let (answer, _) = read_until_close(&mut s, Duration::from_secs(6)).await;
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{backend:?}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "answered after {took:?}"
        );
        health_ok(&app).await.expect("served after the stalled body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_gets_a_503_problem_with_retry_after() {
    for backend in backends() {
        let app = Server::start(
            backend,
            &[
                ("XUEFEN_BODY_READ_TIMEOUT_MS", "30000".into()),
                ("XUEFEN_REQUEST_TIMEOUT_MS", "700".into()),
            ],
            &[],
        )
        .await;
        let key = app.fixture().await;
        let started = Instant::now();
        let mut s = stalled_post(&app, &key, 10_000, 100).await;
        let (answer, _) = read_until_close(&mut s, Duration::from_secs(6)).await;
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 503"), "{backend:?}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 1\r\n"), "{answer}");
        assert!(lower.contains("content-type: application/problem+json"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(4),
            "answered after {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    for backend in backends() {
        let app = Server::start(
            backend,
            &[
                ("XUEFEN_RATE_LIMIT_PER_SECOND", "1".into()),
                ("XUEFEN_RATE_LIMIT_BURST", "5".into()),
            ],
            &[],
        )
        .await;
        let site = app.fixture().await;
        let http = fresh_client();
        let mut limited = None;
        for i in 0..20 {
            let resp = http
                .get(format!("{}/v1/courses/C1", app.base))
                .bearer_auth(&site)
                .send()
                .await
                .expect("request");
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some((i, resp));
                break;
            }
            assert_eq!(resp.status(), StatusCode::OK, "{backend:?}");
        }
        let (i, resp) = limited.expect("20 requests at once never met the rate limit");
        assert!(i <= 6, "{backend:?}: the burst of 5 let {i} requests through");
        let retry: u64 = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let body: serde_json::Value = resp.json().await.expect("problem");
        assert_eq!(body["code"], "rate_limited", "{body}");
        // Another key has its own bucket.
        let (s, body) = app
            .call(reqwest::Method::GET, "/v1/sites", Some(&app.admin), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        // After Retry-After the key is served again.
        tokio::time::sleep(Duration::from_secs(retry)).await;
        let resp = http
            .get(format!("{}/v1/courses/C1", app.base))
            .bearer_auth(&site)
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{backend:?}: not served after Retry-After"
        );
    }
}

/// Idle connections beyond what the descriptor limit allows: with 256
/// descriptors, 600 idle clients connect and stay; a new client is still
/// served promptly (the oldest idle connections are shed), the server
/// keeps writing events, and the lowered bound is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_low_descriptor_limit_idle_connections_are_shed_and_new_clients_served() {
    if std::process::Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed; the descriptor-limit test did not run");
        return;
    }
    const IDLE: usize = 600;
    for backend in backends() {
        let app = Server::start_under(
            &["prlimit", "--nofile=256:256"],
            backend,
            &[("XUEFEN_HEADER_READ_TIMEOUT_MS", "120000".into())],
            &[],
        )
        .await;
        let key = app.fixture().await;
        let mut idle = Vec::with_capacity(IDLE);
        for _ in 0..IDLE {
            idle.push(TcpStream::connect(addr(&app)).await.expect("connect an idle client"));
        }
        // Give the accept loop a moment to take them all in.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for round in 0..5 {
            let took = health_ok(&app)
                .await
                .unwrap_or_else(|e| panic!("{backend:?} round {round}: {e}\n{}", app.log()));
            assert!(
                took < Duration::from_secs(3),
                "{backend:?}: a new client waited {took:?}"
            );
        }
        let (s, body) = app
            .call(
                reqwest::Method::PUT,
                "/v1/events/fd-1",
                Some(&key),
                Some(crate::server::completion("5")),
            )
            .await;
        assert!(
            s.is_success(),
            "{backend:?}: an event under descriptor pressure: {s} {body}"
        );
        let mut shed = 0;
        for s in &mut idle {
            if closed_by_peer(s).await {
                shed += 1;
            }
        }
        assert!(
            shed >= IDLE - 256,
            "{backend:?}: only {shed} of {IDLE} idle connections were closed with 256 descriptors"
        );
        let log = app.log();
        assert!(log.contains("connections_max lowered"), "{log}");
        eprintln!("{backend:?}: {shed} of {IDLE} idle connections shed, new clients served");
    }
}
