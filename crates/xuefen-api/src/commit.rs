//! Group commit: many requests, one transaction per chain shard.
//!
//! Handlers hand their parsed events to the [`Committer`] and wait. The
//! ledger's chains are split into `shards` (chain `c` belongs to shard
//! `c % shards`). Each shard has a dispatcher that drains whatever has queued
//! for it while its previous transactions ran, up to `group_events_max`
//! events, and writes them with one `Store::ingest` call; up to
//! `commits_in_flight` such transactions run at once per shard. Under load
//! one fsync is shared by every request of a group; when idle a lone request
//! goes straight through, without waiting on a timer.
//!
//! Why shards: a group transaction locks the head row of every chain it
//! appends to. Groups that mix every chain serialise on those locks (one
//! group's insert and commit waits for the other's), while groups of disjoint
//! chains run side by side in PostgreSQL. Routing is only a hint: a store
//! takes its locks and checks its keys itself, so an event routed to the
//! "wrong" shard (an account linked a moment ago, another instance writing the
//! same chains) is still written correctly, only with more lock waiting.
//!
//! A request whose events fall into several shards is split; each part is
//! committed by its shard and the outcomes are put back in request order.
//! Events that share an idempotency key, and a revocation and the completion
//! it targets within one request, always go to the same shard, so the
//! planner sees them in request order. If one part fails the request fails;
//! parts that committed are durable and come back as duplicates on retry.

use crate::problem_code::ProblemCode;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use xuefen_core::event::{Event, EventBody, LearnerRef, Millis};
use xuefen_core::ids::{EventId, LearnerId, LocalAccount, SiteId};
use xuefen_core::plan::Outcome;
use xuefen_store::{Store, StoreError};

use crate::metrics::Metrics;
use crate::problem::{ApiError, Problem};

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
    /// Transactions in flight at once, per shard.
    pub commits_in_flight: usize,
    /// Chain shards, each with its own group committer. One for a backend
    /// that writes one transaction at a time.
    pub shards: usize,
    /// Requests waiting for a transaction, per shard, before new ones are
    /// pushed back.
    pub queue_requests_max: usize,
}

impl Default for CommitSettings {
    fn default() -> Self {
        Self {
            group_events_max: 4_000,
            commits_in_flight: 1,
            shards: 2,
            queue_requests_max: 16_384,
        }
    }
}

/// The handle handlers submit to. Cloning is cheap.
#[derive(Clone)]
pub struct Committer {
    shards: Arc<[mpsc::Sender<Job>]>,
    router: Arc<Router>,
}

/// Why a submission did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the committer has stopped")]
    Stopped,
    #[error(transparent)]
    Store(Arc<StoreError>),
}

/// The problem a handler answers when a submission did not commit.
pub(crate) fn commit_error(e: CommitError) -> ApiError {
    match e {
        CommitError::Stopped => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::ShuttingDown,
            "the service is stopping; retry",
        )
        .into(),
        CommitError::Store(e) => match &*e {
            xuefen_store::StoreError::Database(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::DatabaseUnavailable,
                "the database is unavailable; nothing was written, retry later",
            )
            .into(),
            _ => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ProblemCode::Internal,
                "internal error",
            )
            .into(),
        },
    }
}

impl Committer {
    /// Starts one dispatcher per shard on the current runtime.
    pub fn start(store: Arc<dyn Store>, settings: CommitSettings) -> Self {
        Self::start_with_metrics(store, settings, Arc::new(Metrics::new()))
    }

    /// Starts one dispatcher per shard on the current runtime, recording
    /// into `metrics`.
    pub fn start_with_metrics(store: Arc<dyn Store>, settings: CommitSettings, metrics: Arc<Metrics>) -> Self {
        let shards = if store.parallel_writes() {
            settings.shards.max(1)
        } else {
            1
        };
        let shards: Vec<_> = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(settings.queue_requests_max.max(1));
                tokio::spawn(dispatch(store.clone(), settings, rx, metrics.clone()));
                tx
            })
            .collect();
        let router = Router {
            chains: store.chain_count().max(1),
            store,
        };
        Self {
            shards: shards.into(),
            router: Arc::new(router),
        }
    }

    /// Writes `events` in the next groups and returns their outcomes, in
    /// the order of `events`.
    pub async fn submit(&self, events: Vec<Event>) -> Result<Vec<Outcome>, CommitError> {
        let n = self.shards.len();
        if n == 1 || events.is_empty() {
            return self.submit_to(0, events).await;
        }
        let routes = self.router.route(&events, n).await;
        if routes.iter().all(|s| *s == routes[0]) {
            return self.submit_to(routes[0], events).await;
        }
        let total = events.len();
        let mut parts: Vec<(Vec<usize>, Vec<Event>)> = (0..n).map(|_| (Vec::new(), Vec::new())).collect();
        for (i, (event, shard)) in events.into_iter().zip(routes).enumerate() {
            parts[shard].0.push(i);
            parts[shard].1.push(event);
        }
        let pending = parts
            .into_iter()
            .enumerate()
            .filter(|(_, (idx, _))| !idx.is_empty())
            .map(|(shard, (idx, part))| async move { (idx, self.submit_to(shard, part).await) });
        let mut slots: Vec<Option<Outcome>> = vec![None; total];
        for (idx, done) in futures::future::join_all(pending).await {
            for (i, outcome) in idx.into_iter().zip(done?) {
                slots[i] = Some(outcome);
            }
        }
        slots.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            CommitError::Store(Arc::new(StoreError::Database(
                "a shard returned too few outcomes".into(),
            )))
        })
    }

    async fn submit_to(&self, shard: usize, events: Vec<Event>) -> Result<Vec<Outcome>, CommitError> {
        let (reply, rx) = oneshot::channel();
        self.shards[shard]
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

/// Picks the shard of each event from the chain it will land on.
struct Router {
    store: Arc<dyn Store>,
    chains: u32,
}

impl Router {
    async fn route(&self, events: &[Event], shards: usize) -> Vec<usize> {
        let shard_of_chain = |chain: u32| chain as usize % shards;
        let mut accounts: Vec<(SiteId, LocalAccount)> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Completion(c) => match &c.learner {
                    LearnerRef::Account(a) => Some((e.site.clone(), a.clone())),
                    LearnerRef::Id(_) => None,
                },
                EventBody::Revocation(_) => None,
            })
            .collect();
        accounts.sort();
        accounts.dedup();
        let mut linked: HashMap<(SiteId, LocalAccount), LearnerId> = HashMap::new();
        if !accounts.is_empty() {
            match self.store.account_learners(&accounts).await {
                Ok(found) => linked.extend(found),
                Err(e) => tracing::warn!(error = %e, "routing lookup of accounts failed"),
            }
        }
        let in_request: std::collections::HashSet<(&SiteId, &EventId)> =
            events.iter().map(|e| (&e.site, &e.id)).collect();
        let outside: Vec<(SiteId, EventId)> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Revocation(r) if !in_request.contains(&(&e.site, &r.target)) => {
                    Some((e.site.clone(), r.target.clone()))
                }
                _ => None,
            })
            .collect();
        let mut target_chains: HashMap<(SiteId, EventId), u32> = HashMap::new();
        if !outside.is_empty() {
            match self.store.event_chains(&outside).await {
                Ok(found) => target_chains.extend(found),
                Err(e) => tracing::warn!(error = %e, "routing lookup of revocation targets failed"),
            }
        }
        let mut by_key: HashMap<(&SiteId, &EventId), usize> = HashMap::with_capacity(events.len());
        let mut routes = Vec::with_capacity(events.len());
        for e in events {
            let shard = by_key.get(&(&e.site, &e.id)).copied().unwrap_or_else(|| {
                let known = match &e.body {
                    EventBody::Completion(c) => match &c.learner {
                        LearnerRef::Id(l) => Some(shard_of_chain(l.chain(self.chains))),
                        LearnerRef::Account(a) => linked
                            .get(&(e.site.clone(), a.clone()))
                            .map(|l| shard_of_chain(l.chain(self.chains))),
                    },
                    EventBody::Revocation(r) => by_key.get(&(&e.site, &r.target)).copied().or_else(|| {
                        target_chains
                            .get(&(e.site.clone(), r.target.clone()))
                            .map(|c| shard_of_chain(*c))
                    }),
                };
                // Unknown learner or target: the event will most likely be
                // rejected; any shard will do, so spread them.
                known.unwrap_or_else(|| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (&e.site, &e.id).hash(&mut h);
                    h.finish() as usize % shards
                })
            });
            by_key.entry((&e.site, &e.id)).or_insert(shard);
            routes.push(shard);
        }
        routes
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
    let committed = match &result {
        Ok(outcomes) if outcomes.len() == events.len() => Some(outcomes.as_slice()),
        _ => None,
    };
    metrics.commit_done(requests, committed, events.len(), started.elapsed());
    match result {
        Ok(outcomes) if outcomes.len() == events.len() => {
            let mut rest = outcomes.into_iter();
            for (reply, n) in replies.into_iter().zip(sizes) {
                let _ = reply.send(Ok(rest.by_ref().take(n).collect()));
            }
        }
        Ok(outcomes) => {
            tracing::error!(
                events = events.len(),
                outcomes = outcomes.len(),
                "store returned the wrong number of outcomes"
            );
            let e = Arc::new(StoreError::Database(
                "the store returned the wrong number of outcomes".into(),
            ));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
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
