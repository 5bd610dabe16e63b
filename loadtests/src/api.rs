//! HTTP side: setting up a site, its course and learners, and the request
//! loops of the scenarios. Every loop is bounded by a count and stops at
//! its deadline or when the global stop flag is raised.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde::Deserialize;
use xuefen_core::event::Millis;
use xuefen_core::ids::LearnerId;

use crate::ledger::{BenchCourse, Learner, decimal, event_terms};
use crate::stopped;

pub(crate) fn client(connections: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections.max(1))
        .timeout(Duration::from_secs(300))
        .build()
        .context("build HTTP client")
}

/// A site's view of a running service.
#[derive(Clone)]
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub admin_key: String,
    pub site_key: String,
}

#[derive(Deserialize)]
struct SiteCreated {
    key: KeyOut,
}

#[derive(Deserialize)]
struct KeyOut {
    secret: String,
}

#[derive(Deserialize)]
struct LearnerOut {
    learner_id: String,
}

/// The counts of a batch answer (the per-item results are skipped).
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct BatchCounts {
    pub accepted: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub rejected: u64,
}

async fn expect(resp: reqwest::Response, want: &[StatusCode], what: &str) -> Result<reqwest::Response> {
    let status = resp.status();
    if want.contains(&status) {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: HTTP {status}: {}", body.chars().take(500).collect::<String>())
}

impl Api {
    /// Creates the site `site` with the admin key and sets up `course`.
    pub(crate) async fn setup(
        http: reqwest::Client,
        base: &str,
        admin_key: &str,
        site: &str,
        course: &BenchCourse,
    ) -> Result<Self> {
        let resp = http
            .post(format!("{base}/v1/sites"))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({
                "id": site, "name": "Benchmark site", "level": "county", "region_code": "330106"
            }))
            .send()
            .await
            .context("POST /v1/sites")?;
        let created: SiteCreated = expect(resp, &[StatusCode::CREATED], "create site")
            .await?
            .json()
            .await?;
        let api = Self {
            http,
            base: base.to_owned(),
            admin_key: admin_key.to_owned(),
            site_key: created.key.secret,
        };
        let resp = api
            .http
            .put(format!("{}/v1/courses/{}", api.base, course.code))
            .bearer_auth(&api.site_key)
            .json(&course.json())
            .send()
            .await
            .context("PUT /v1/courses")?;
        expect(resp, &[StatusCode::CREATED, StatusCode::OK], "create course").await?;
        Ok(api)
    }

    /// Registers `n` learners with linked local accounts `{prefix}{i}`,
    /// `concurrency` at a time, in order.
    pub(crate) async fn register(
        &self,
        prefix: &str,
        n: usize,
        concurrency: usize,
        chains: u32,
    ) -> Result<Vec<Learner>> {
        self.register_from(prefix, 0, n, concurrency, chains).await
    }

    /// Registers `n` new people, numbered from `first` (their documents
    /// are their numbers, so ranges apart are different people), with
    /// linked local accounts `{prefix}{i}`, `concurrency` at a time, in order.
    pub(crate) async fn register_from(
        &self,
        prefix: &str,
        first: usize,
        n: usize,
        concurrency: usize,
        chains: u32,
    ) -> Result<Vec<Learner>> {
        stream::iter((0..n).map(move |i| (i, first + i)))
            .map(|(i, person)| {
                let account = format!("{prefix}{i}");
                async move {
                    let resp = self
                        .http
                        .post(format!("{}/v1/learners", self.base))
                        .bearer_auth(&self.site_key)
                        .json(&serde_json::json!({
                            "name": format!("Learner {person}"),
                            "document": {"kind": "passport", "number": format!("P{person:08}")},
                            "local_account": account,
                        }))
                        .send()
                        .await
                        .context("POST /v1/learners")?;
                    expect(resp, &[StatusCode::CREATED], "register learner").await?;
                    // The site is answered with its own pseudonym; the
                    // unified id (for the chain) is the admin's to read.
                    let resp = self
                        .http
                        .post(format!("{}/v1/learners", self.base))
                        .bearer_auth(&self.admin_key)
                        .json(&serde_json::json!({
                            "name": format!("Learner {person}"),
                            "document": {"kind": "passport", "number": format!("P{person:08}")},
                        }))
                        .send()
                        .await
                        .context("POST /v1/learners (admin)")?;
                    let out: LearnerOut = expect(resp, &[StatusCode::OK], "find learner").await?.json().await?;
                    let id = LearnerId::parse(out.learner_id)?;
                    let chain = id.chain(chains);
                    Ok::<_, anyhow::Error>(Learner { id, chain, account })
                }
            })
            .buffered(concurrency)
            .try_collect()
            .await
    }

    /// `POST /v1/events` of a pre-encoded JSON array.
    pub(crate) async fn post_batch(&self, body: Vec<u8>) -> Result<BatchCounts> {
        let resp = self
            .http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(&self.site_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("POST /v1/events")?;
        Ok(expect(resp, &[StatusCode::OK], "post batch").await?.json().await?)
    }

    /// `PUT /v1/events/{id}`; true when accepted (201), false when a duplicate (200).
    pub(crate) async fn put_event(&self, id: &str, body: Vec<u8>) -> Result<bool> {
        let resp = self
            .http
            .put(format!("{}/v1/events/{id}", self.base))
            .bearer_auth(&self.site_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("PUT /v1/events")?;
        let resp = expect(resp, &[StatusCode::CREATED, StatusCode::OK], "put event").await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Readies the site for the xAPI door: its LMS home page and a
    /// fixed-credit course carrying the activity IRI the statements name.
    pub(crate) async fn setup_xapi(&self, course_code: &str) -> Result<()> {
        let resp = self
            .http
            .put(format!("{}/v1/xapi/profile", self.base))
            .bearer_auth(&self.site_key)
            .json(&serde_json::json!({"home_page": XAPI_HOME_PAGE}))
            .send()
            .await
            .context("PUT /v1/xapi/profile")?;
        expect(resp, &[StatusCode::OK], "set the xAPI home page").await?;
        let resp = self
            .http
            .put(format!("{}/v1/courses/{course_code}", self.base))
            .bearer_auth(&self.site_key)
            .json(&serde_json::json!({
                "title": "Benchmark xAPI course", "category": "community",
                "rule": {"kind": "fixed", "credits": "1.50"}, "activity_id": XAPI_ACTIVITY,
            }))
            .send()
            .await
            .context("PUT /v1/courses (xAPI)")?;
        expect(resp, &[StatusCode::CREATED, StatusCode::OK], "create the xAPI course").await?;
        Ok(())
    }

    /// Writes xAPI document `i` (see [`run_documents`]); expects 204.
    pub(crate) async fn write_document(&self, site: &str, i: usize) -> Result<()> {
        let agent =
            serde_json::json!({"account": {"homePage": XAPI_HOME_PAGE, "name": format!("learner-{}", i % 997)}})
                .to_string();
        let agent: String = agent
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let body = serde_json::json!({
            "cmi.location": format!("page-{i}"), "cmi.suspend_data": "A1B2C3".repeat(30),
            "cmi.completion_status": "incomplete", "bookmark": {"chapter": i % 12, "offset": i},
        })
        .to_string();
        let (method, url) = if i % 2 == 0 {
            (
                reqwest::Method::PUT,
                format!(
                    "{}/xapi/activities/state?activityId=https%3A%2F%2Flms.example%2Fscorm%2F{}&agent={agent}&stateId=resume-{i}",
                    self.base,
                    i % 31
                ),
            )
        } else {
            (
                reqwest::Method::POST,
                format!("{}/xapi/agents/profile?agent={agent}&profileId=prefs-{i}", self.base),
            )
        };
        let resp = self
            .http
            .request(method, url)
            .basic_auth(site, Some(&self.site_key))
            .header("X-Experience-API-Version", "1.0.3")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("xAPI document write")?;
        expect(resp, &[StatusCode::NO_CONTENT], "write an xAPI document").await?;
        Ok(())
    }

    /// `POST /xapi/statements` of a pre-encoded JSON array, with the site's
    /// Basic credentials; returns how many ids came back.
    pub(crate) async fn post_statements(&self, site: &str, body: Vec<u8>) -> Result<u64> {
        let resp = self
            .http
            .post(format!("{}/xapi/statements", self.base))
            .basic_auth(site, Some(&self.site_key))
            .header("X-Experience-API-Version", "1.0.3")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("POST /xapi/statements")?;
        let ids: Vec<String> = expect(resp, &[StatusCode::OK], "post statements").await?.json().await?;
        Ok(ids.len() as u64)
    }

    /// Erases a learner with the admin key (`DELETE /v1/learners/{id}`).
    pub(crate) async fn erase(&self, learner: &Learner) -> Result<()> {
        let resp = self
            .http
            .delete(format!(
                "{}/v1/learners/{}?reason_code=pipl_art47",
                self.base, learner.id
            ))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .context("DELETE /v1/learners")?;
        expect(resp, &[StatusCode::OK], "erase learner").await?;
        Ok(())
    }

    /// The status of the first page of a learner's transcript (admin key).
    pub(crate) async fn transcript_status(&self, learner: &LearnerId) -> Result<StatusCode> {
        let resp = self
            .http
            .get(format!("{}/v1/learners/{learner}/transcript", self.base))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .context("GET transcript")?;
        Ok(resp.status())
    }

    /// The number of entries on a learner's transcript (read with the admin
    /// key, every page of the largest size in turn).
    pub(crate) async fn transcript_len(&self, learner: &LearnerId) -> Result<usize> {
        #[derive(Deserialize)]
        struct Transcript {
            entries: Vec<serde::de::IgnoredAny>,
            next_after: Option<String>,
        }
        let mut len = 0;
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/learners/{learner}/transcript?limit=500", self.base);
            if let Some(cursor) = &after {
                url.push_str(&format!("&after={cursor}"));
            }
            let resp = self
                .http
                .get(url)
                .bearer_auth(&self.admin_key)
                .send()
                .await
                .context("GET transcript")?;
            let t: Transcript = expect(resp, &[StatusCode::OK], "transcript").await?.json().await?;
            len += t.entries.len();
            match t.next_after {
                Some(next) => after = Some(next),
                None => return Ok(len),
            }
        }
    }
}

/// The JSON of completion event `i` of a run (`seed`), for a learner by
/// local account; `with_id` puts the id in the body (batches need it).
pub(crate) fn event_json(
    course: &BenchCourse,
    id: &str,
    account: &str,
    seed: u64,
    i: u64,
    with_id: bool,
) -> serde_json::Value {
    let (at, hours) = event_terms(seed, i);
    let mut v = serde_json::json!({
        "kind": "completion",
        "course": course.code.as_str(),
        "learner": {"local_account": account},
        "completed_at": at.to_rfc3339(),
        "hours": decimal(hours.cents()),
    });
    if with_id && let Some(o) = v.as_object_mut() {
        o.insert("event_id".into(), id.into());
    }
    v
}

/// The account home page of the benchmark site's LMS.
pub(crate) const XAPI_HOME_PAGE: &str = "https://lms.bench.example";
/// The activity IRI of the benchmark's xAPI course.
pub(crate) const XAPI_ACTIVITY: &str = "https://lms.bench.example/course/view.php?id=1";

/// Completion statement `i` of a run (`seed`) for a learner by local
/// account, shaped like an LMS plug-in's course completion.
pub(crate) fn statement_json(account: &str, seed: u64, i: u64) -> serde_json::Value {
    let (at, _) = event_terms(seed, i);
    serde_json::json!({
        "id": format!("00000000-0000-4000-8000-{i:012x}"),
        "actor": {"objectType": "Agent", "account": {"homePage": XAPI_HOME_PAGE, "name": account}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en": "completed"}},
        "object": {"objectType": "Activity", "id": XAPI_ACTIVITY,
                   "definition": {"type": "http://adlnet.gov/expapi/activities/course"}},
        "result": {"completion": true, "duration": "PT2H"},
        "context": {"platform": "Moodle"},
        "timestamp": at.to_rfc3339(),
    })
}

/// Posts `arrays` of statements (pre-encoded) from `clients` concurrent
/// clients until all are sent, `limit` passes or the stop flag is raised;
/// `accepted` counts the ids answered.
pub(crate) async fn run_statements(
    api: &Api,
    site: &str,
    arrays: Arc<Vec<Vec<u8>>>,
    clients: usize,
    limit: Duration,
) -> Result<LoopResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (api, arrays, next, site) = (api.clone(), arrays.clone(), next.clone(), site.to_owned());
            tokio::spawn(abort_on_error(async move {
                let mut lat = Vec::new();
                let mut counts = BatchCounts::default();
                let mut sent = 0;
                while !stopped() && started.elapsed() < limit {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = arrays.get(i) else { break };
                    let t = Instant::now();
                    counts.accepted += api.post_statements(&site, body.clone()).await?;
                    lat.push(t.elapsed());
                    sent += 1;
                }
                Ok::<_, anyhow::Error>((lat, counts, sent))
            }))
        })
        .collect();
    collect(tasks, started).await
}

/// xAPI document writes: `count` documents from `clients` concurrent
/// clients, even ones `PUT` to the State resource (a SCORM-style resume
/// document per learner and activity), odd ones `POST` (JSON merge) to the
/// Agent Profile resource, each a new document of about 300 bytes.
pub(crate) async fn run_documents(
    api: &Api,
    site: &str,
    count: usize,
    clients: usize,
    limit: Duration,
) -> Result<LoopResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (api, next, site) = (api.clone(), next.clone(), site.to_owned());
            tokio::spawn(abort_on_error(async move {
                let mut lat = Vec::new();
                let mut counts = BatchCounts::default();
                let mut sent = 0;
                while !stopped() && started.elapsed() < limit {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let t = Instant::now();
                    api.write_document(&site, i).await?;
                    counts.accepted += 1;
                    lat.push(t.elapsed());
                    sent += 1;
                }
                Ok::<_, anyhow::Error>((lat, counts, sent))
            }))
        })
        .collect();
    collect(tasks, started).await
}

/// The learner of generated event `i` (uniform over `n`).
pub(crate) fn learner_of(seed: u64, i: u64, n: usize) -> usize {
    (crate::ledger::mix(seed ^ 0x5eed, i) % n.max(1) as u64) as usize
}

/// Figures of a request loop.
pub(crate) struct LoopResult {
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub counts: BatchCounts,
    /// How many work items were sent (batches or single events).
    pub sent: usize,
}

/// Posts `batches` (pre-encoded) from `clients` concurrent clients until all
/// are sent, `limit` passes or the stop flag is raised.
pub(crate) async fn run_batches(
    api: &Api,
    batches: Arc<Vec<Vec<u8>>>,
    clients: usize,
    limit: Duration,
) -> Result<LoopResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (api, batches, next) = (api.clone(), batches.clone(), next.clone());
            tokio::spawn(abort_on_error(async move {
                let mut lat = Vec::new();
                let mut counts = BatchCounts::default();
                let mut sent = 0;
                while !stopped() && started.elapsed() < limit {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = batches.get(i) else { break };
                    let t = Instant::now();
                    let c = api.post_batch(body.clone()).await?;
                    lat.push(t.elapsed());
                    sent += 1;
                    counts.accepted += c.accepted;
                    counts.duplicate += c.duplicate;
                    counts.conflict += c.conflict;
                    counts.rejected += c.rejected;
                }
                Ok::<_, anyhow::Error>((lat, counts, sent))
            }))
        })
        .collect();
    collect(tasks, started).await
}

/// What single events are made of.
#[derive(Clone)]
pub(crate) struct Workload {
    pub course: Arc<BenchCourse>,
    pub learners: Arc<Vec<Learner>>,
    pub seed: u64,
}

/// `PUT`s events `0..total` (ids `{prefix}{i}`) over `conns` concurrent
/// connections.
pub(crate) async fn run_single(
    api: &Api,
    work: &Workload,
    prefix: &str,
    total: usize,
    conns: usize,
    limit: Duration,
) -> Result<LoopResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns.max(1))
        .map(|_| {
            let (api, next, work) = (api.clone(), next.clone(), work.clone());
            let prefix = prefix.to_owned();
            tokio::spawn(abort_on_error(async move {
                let mut lat = Vec::new();
                let mut counts = BatchCounts::default();
                let mut sent = 0;
                while !stopped() && started.elapsed() < limit {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let id = format!("{prefix}{i}");
                    let learner = work
                        .learners
                        .get(learner_of(work.seed, i as u64, work.learners.len()))
                        .context("no learners")?;
                    let json = event_json(&work.course, &id, &learner.account, work.seed, i as u64, false);
                    let body = serde_json::to_vec(&json)?;
                    let t = Instant::now();
                    let accepted = api.put_event(&id, body).await?;
                    lat.push(t.elapsed());
                    sent += 1;
                    if accepted {
                        counts.accepted += 1;
                    } else {
                        counts.duplicate += 1;
                    }
                }
                Ok::<_, anyhow::Error>((lat, counts, sent))
            }))
        })
        .collect();
    collect(tasks, started).await
}

type TaskOut = Result<(Vec<Duration>, BatchCounts, usize)>;

/// Raises the stop flag when a request loop fails, so that its siblings stop too.
async fn abort_on_error(f: impl std::future::Future<Output = TaskOut>) -> TaskOut {
    let out = f.await;
    if out.is_err() {
        crate::raise_stop();
    }
    out
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<TaskOut>>, started: Instant) -> Result<LoopResult> {
    let mut out = LoopResult {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        counts: BatchCounts::default(),
        sent: 0,
    };
    let mut first_error = None;
    for t in tasks {
        match t.await.context("request task panicked")? {
            Ok((lat, c, sent)) => {
                out.latencies.extend(lat);
                out.counts.accepted += c.accepted;
                out.counts.duplicate += c.duplicate;
                out.counts.conflict += c.conflict;
                out.counts.rejected += c.rejected;
                out.sent += sent;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    out.elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Millis of now.
pub(crate) fn now_ms() -> Millis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    Millis(ms)
}
