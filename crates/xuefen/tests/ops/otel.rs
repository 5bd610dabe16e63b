//! OpenTelemetry export: a small OTLP/HTTP receiver on 127.0.0.1 collects
//! what `xuefen serve` sends, and the spans of a request and of its group
//! commit arrive linked parent to child, under the caller's `traceparent`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{Backend, Server, completion};

type Spans = Arc<Mutex<Vec<Span>>>;

async fn receive(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut all = spans.lock().expect("lock");
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            all.extend(scope.spans);
        }
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

/// Starts the receiver; returns its endpoint and what it collected.
async fn receiver() -> (String, Spans, tokio::sync::oneshot::Sender<()>) {
    let spans = Spans::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    (format!("http://{addr}"), spans, tx)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_group_commit_spans_reach_an_otlp_receiver() {
    let (endpoint, spans, _stop) = receiver().await;
    let mut app = Server::start(
        Backend::Sqlite,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("XUEFEN_LOG_FORMAT", "json".into()),
        ],
        &[],
    )
    .await;
    let site = app.fixture().await;

    // A caller that is itself traced: its trace continues in the service.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let resp = app
        .client
        .put(format!("{}/v1/events/traced-1", app.base))
        .bearer_auth(&site)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&completion("10"))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);

    // A problem response names its trace.
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/events/bad-1",
            Some(&site),
            Some(json!({"kind": "completion"})),
        )
        .await;
    assert!(status.is_client_error(), "{problem}");
    let problem_trace = problem["trace_id"]
        .as_str()
        .expect("trace_id in the problem")
        .to_owned();
    assert_eq!(problem_trace.len(), 32, "{problem}");
    // So does the answer to a path no route matches.
    let (status, missing) = app.call(Method::GET, "/no/such/path", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["code"], "not_found", "{missing}");
    assert_eq!(missing["trace_id"].as_str().map(str::len), Some(32), "{missing}");

    let wanted = |all: &[Span]| {
        all.iter()
            .any(|s| s.name == "group_commit" && hex(&s.trace_id) == trace_id)
            && all.iter().any(|s| hex(&s.trace_id) == problem_trace)
    };
    let started = Instant::now();
    while !wanted(&spans.lock().expect("lock")) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopping flushes whatever is still queued.
    app.sigterm();
    let status = app.wait_exit(Duration::from_secs(20)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    let all = spans.lock().expect("lock").clone();
    assert!(
        wanted(&all),
        "spans received: {:?}",
        all.iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    let request = all
        .iter()
        .find(|s| s.name == "PUT /v1/events/{event_id}" && hex(&s.trace_id) == trace_id)
        .expect("the request span, named by its route template, in the caller's trace");
    assert_eq!(hex(&request.parent_span_id), caller_span, "child of the caller's span");
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(attr(request, "http.route").as_deref(), Some("/v1/events/{event_id}"));
    assert_eq!(attr(request, "http.response.status_code").as_deref(), Some("201"));

    let commit = all
        .iter()
        .find(|s| s.name == "group_commit" && hex(&s.trace_id) == trace_id)
        .expect("the group commit span");
    // The group commit descends from the request span.
    let mut parent = commit.parent_span_id.clone();
    let mut hops = 0;
    while parent != request.span_id {
        let up = all
            .iter()
            .find(|s| s.span_id == parent)
            .unwrap_or_else(|| panic!("group_commit's ancestor {} was not exported", hex(&parent)));
        parent = up.parent_span_id.clone();
        hops += 1;
        assert!(hops < 10, "no path from group_commit to the request span");
    }
    assert_eq!(attr(commit, "batch.len").as_deref(), Some("1"));

    let failed = all
        .iter()
        .find(|s| hex(&s.trace_id) == problem_trace && s.name.starts_with("PUT "))
        .expect("the failed request's span carries the problem's trace id");
    assert!(attr(failed, "http.response.status_code").is_some_and(|c| c.starts_with('4')));

    // JSON log lines written inside a request carry its trace id.
    let log = app.log();
    let site_span = all
        .iter()
        .find(|s| s.name == "POST /v1/sites")
        .expect("the site creation span");
    let site_trace = hex(&site_span.trace_id);
    assert!(
        log.lines()
            .any(|l| l.contains("site created") && l.contains(&format!("\"trace_id\":\"{site_trace}\""))),
        "no JSON log line of the site creation carries trace {site_trace}:\n{log}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Without an endpoint nothing is exported, but problems still name their
/// trace, whatever the log filter; `OTEL_SDK_DISABLED=true` leaves
/// OpenTelemetry out entirely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_carry_trace_ids_without_export_unless_the_sdk_is_disabled() {
    for (env, expect_trace) in [
        (vec![("RUST_LOG", "error".to_owned())], true),
        (vec![("OTEL_SDK_DISABLED", "true".to_owned())], false),
    ] {
        let app = Server::start(Backend::Sqlite, &env, &[]).await;
        let (status, problem) = app.call(Method::GET, "/v1/sites", Some("xf_wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
        let trace = problem["trace_id"].as_str();
        assert_eq!(trace.is_some(), expect_trace, "{env:?}: {problem}");
        if let Some(trace) = trace {
            assert!(
                trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit()),
                "{trace}"
            );
        }
    }
}
