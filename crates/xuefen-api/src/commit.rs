//! Group commit: many requests, one transaction.
//!
//! Handlers hand their parsed events to the [`Committer`] and wait. A single
//! dispatcher drains whatever has queued while the previous transactions
//! ran, up to `group_events_max` events, and writes them with one
//! `Store::ingest` call; up to `commits_in_flight` such transactions run at
//! once. Under load one fsync is shared by every request of the group; when
//! idle a lone request goes straight through, without waiting on a timer.
//! A request's events always stay together in one transaction.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use xuefen_core::event::{Event, Millis};
use xuefen_core::plan::Outcome;
use xuefen_store::{Store, StoreError};

use crate::metrics::Metrics;

type Reply = oneshot::Sender<Result<Vec<Outcome>, Arc<StoreError>>>;

struct Job {
    events: Vec<Event>,
    reply: Reply,
    /// The submitting request's span: the group's span is a child of the
    /// first one and links to the others.
    span: tracing::Span,
}

/// Settings of the group committer.
#[derive(Debug, Clone, Copy)]
pub struct CommitSettings {
    /// Most events written by one transaction (a single request may exceed it).
    pub group_events_max: usize,
    /// Transactions in flight at once.
    pub commits_in_flight: usize,
    /// Requests waiting for a transaction before new ones are pushed back.
    pub queue_requests_max: usize,
}

impl Default for CommitSettings {
    fn default() -> Self {
        Self {
            group_events_max: 4_000,
            commits_in_flight: 2,
            queue_requests_max: 16_384,
        }
    }
}

/// The handle handlers submit to. Cloning is cheap.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

/// Why a submission did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the committer has stopped")]
    Stopped,
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl Committer {
    /// Starts the dispatcher on the current runtime.
    pub fn start(store: Arc<dyn Store>, settings: CommitSettings) -> Self {
        Self::start_with_metrics(store, settings, Arc::new(Metrics::new()))
    }

    /// Starts the dispatcher on the current runtime, recording into `metrics`.
    pub fn start_with_metrics(store: Arc<dyn Store>, settings: CommitSettings, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue_requests_max.max(1));
        tokio::spawn(dispatch(store, settings, rx, metrics));
        Self { tx }
    }

    /// Writes `events` in the next group and returns their outcomes.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<Outcome>, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                events,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| CommitError::Stopped)?;
        rx.await.map_err(|_| CommitError::Stopped)?.map_err(CommitError::Store)
    }
}

async fn dispatch(store: Arc<dyn Store>, settings: CommitSettings, mut rx: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(settings.commits_in_flight.max(1)));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: while every slot is busy, requests keep
        // queueing and the next group grows.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut jobs = vec![first];
        let mut len = jobs[0].events.len();
        while len < settings.group_events_max {
            match rx.try_recv() {
                Ok(job) => {
                    len += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let span = group_span(&jobs, len);
            commit_group(&*store, jobs, len, &metrics).instrument(span).await;
            drop(permit);
        });
    }
    // Let in-flight groups finish before the dispatcher ends.
    let _ = slots.acquire_many(settings.commits_in_flight.max(1) as u32).await;
}

/// The span of one group commit. One transaction serves many requests, so
/// the span is a child of the first request's span (its trace shows the
/// commit) and links to every other request's span.
fn group_span(jobs: &[Job], len: usize) -> tracing::Span {
    let span = tracing::info_span!(parent: &jobs[0].span, "group_commit", batch.requests = jobs.len(), batch.len = len);
    for job in &jobs[1..] {
        span.add_link(job.span.context().span().span_context().clone());
    }
    span
}

async fn commit_group(store: &dyn Store, jobs: Vec<Job>, len: usize, metrics: &Metrics) {
    let requests = jobs.len();
    let mut events = Vec::with_capacity(len);
    let mut sizes = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        sizes.push(job.events.len());
        events.extend(job.events);
        replies.push(job.reply);
    }
    let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
    let started = Instant::now();
    let result = store.ingest(&events, now).await;
    let outcomes = result.as_ref().ok().map(Vec::as_slice);
    metrics.commit_done(requests, outcomes, events.len(), started.elapsed());
    match result {
        Ok(outcomes) => {
            assert_eq!(outcomes.len(), events.len(), "one outcome per event");
            let mut rest = outcomes.into_iter();
            for (reply, n) in replies.into_iter().zip(sizes) {
                let _ = reply.send(Ok(rest.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
