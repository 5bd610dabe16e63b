//! `xuefen import`: a site back-fills its history through the HTTP API.
//!
//! The input (NDJSON or CSV, see `docs/import.md`) holds learners, account
//! links and events. Learners and links go first (they register the people
//! the events name), then the events in batches of `--batch`, `--jobs`
//! requests at a time. Every request is idempotent (a learner is found by
//! their document, a link repeats, an event is keyed by its id), so a run
//! that was killed is resumed by running the same command again: the state
//! file lists the chunks already finished, which are skipped, and a chunk
//! that was in flight is sent again and answered as duplicates. No line is
//! written twice.
//!
//! Lines the service refuses (and lines that cannot be read) are listed
//! with their problems in the report file (NDJSON, one object per line).
//! The exit code is 0 when every line was accepted, 1 when some were
//! rejected (see the report), 2 when the run stopped on an error (the
//! service unreachable or failing): run it again to resume.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// Options of `xuefen import`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The file to import: NDJSON (`.ndjson`, `.jsonl`) or CSV (`.csv`).
    pub file: PathBuf,
    /// Base URL of the Xuefen service.
    #[arg(long, env = "XUEFEN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The importing site's API key.
    #[arg(long, env = "XUEFEN_SITE_KEY", hide_env_values = true)]
    pub key: String,
    /// `ndjson` or `csv`; by default from the file's extension.
    #[arg(long)]
    pub format: Option<String>,
    /// Events per `POST /v1/events` batch (and lines per chunk of learners).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Requests in flight at a time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// The state file that makes a killed run resumable. Default: the
    /// file's path with `.import-state.json` appended.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The report of rejected lines. Default: the file's path with
    /// `.rejected.ndjson` appended.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar (it is hidden anyway when standard error is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

/// A line of the input, parsed: its number (from 1) and its record.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    record: Record,
}

#[derive(Debug, Clone)]
enum Record {
    /// `POST /v1/learners` with this body.
    Learner(Value),
    /// `PUT /v1/accounts/{account}` with this body.
    Link { account: String, body: Value },
    /// One item of `POST /v1/events`.
    Event(Value),
}

/// A rejected line and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Rejected {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// `rejected`, `conflict` or `unreadable`.
    status: String,
    problem: Value,
}

/// What the state file keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// SHA-256 of the input: a state file belongs to one input.
    input_sha256: String,
    batch: usize,
    /// Chunks finished (`learners-N`, `events-N`).
    done: BTreeSet<String>,
    /// Rejections of the finished chunks, by chunk.
    rejected: BTreeMap<String, Vec<Rejected>>,
    /// Lines accepted (new or already there) in the finished chunks.
    accepted: u64,
}

/// A chunk of lines of one phase.
struct Chunk {
    id: String,
    lines: Vec<Line>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 || args.batch > 10_000 {
        bail!("--batch must be between 1 and 10000");
    }
    let jobs = args.jobs.clamp(1, 64);
    let bytes = std::fs::read(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let format = match args.format.as_deref() {
        Some(f) => f.to_owned(),
        None => match args.file.extension().and_then(|e| e.to_str()) {
            Some("csv") => "csv".into(),
            _ => "ndjson".into(),
        },
    };
    let (lines, unreadable) = match format.as_str() {
        "ndjson" => parse_ndjson(&bytes),
        "csv" => parse_csv(&bytes)?,
        other => bail!("--format `{other}` is not one of ndjson, csv"),
    };
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".import-state.json"));
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".rejected.ndjson"));
    let mut state = match std::fs::read(&state_path) {
        Ok(b) => {
            let s: State = serde_json::from_slice(&b).with_context(|| format!("read {}", state_path.display()))?;
            if s.input_sha256 != sha || s.batch != args.batch {
                bail!(
                    "{} belongs to another input or --batch; remove it to start over",
                    state_path.display()
                );
            }
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
            input_sha256: sha,
            batch: args.batch,
            ..State::default()
        },
        Err(e) => return Err(e).with_context(|| format!("read {}", state_path.display())),
    };
    state.rejected.insert("unreadable".into(), unreadable);

    let (people, events): (Vec<Line>, Vec<Line>) =
        lines.into_iter().partition(|l| !matches!(l.record, Record::Event(_)));
    let chunks = |prefix: &str, lines: Vec<Line>| -> Vec<Chunk> {
        lines
            .chunks(args.batch)
            .enumerate()
            .map(|(i, c)| Chunk {
                id: format!("{prefix}-{i}"),
                lines: c.to_vec(),
            })
            .collect()
    };
    let people = chunks("learners", people);
    let events = chunks("events", events);
    let total: u64 = people.iter().chain(&events).map(|c| c.lines.len() as u64).sum();
    let finished: u64 = people
        .iter()
        .chain(&events)
        .filter(|c| state.done.contains(&c.id))
        .map(|c| c.lines.len() as u64)
        .sum();

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} lines {per_sec} ETA {eta}")
            .map_err(|e| anyhow!("progress bar: {e}"))?,
    );
    bar.set_position(finished);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("build the HTTP client")?;
    let ctx = Arc::new(Ctx {
        client,
        url: args.url.trim_end_matches('/').to_owned(),
        key: args.key.clone(),
        state: Mutex::new(state),
        state_path: state_path.clone(),
        bar: bar.clone(),
    });
    let started = Instant::now();
    let sent_before = finished;

    // Learners and links first: the events name them. Each chunk's
    // requests run `jobs` at a time.
    bar.set_prefix("learners");
    for chunk in people {
        if ctx.is_done(&chunk.id).await {
            continue;
        }
        let results: Vec<anyhow::Result<Option<Rejected>>> = futures::stream::iter(chunk.lines.iter())
            .map(|line| ctx.person(line))
            .buffered(jobs)
            .collect()
            .await;
        let mut rejected = Vec::new();
        for r in results {
            if let Some(rej) = r? {
                rejected.push(rej);
            }
        }
        ctx.finish(&chunk, rejected).await?;
    }
    // Events: `jobs` batches at a time.
    bar.set_prefix("events");
    let pending: Vec<&Chunk> = {
        let mut v = Vec::new();
        for c in &events {
            if !ctx.is_done(&c.id).await {
                v.push(c);
            }
        }
        v
    };
    let mut stream = futures::stream::iter(pending)
        .map(|chunk| {
            let ctx = ctx.clone();
            async move {
                let rejected = ctx.events(chunk).await?;
                ctx.finish(chunk, rejected).await
            }
        })
        .buffer_unordered(jobs);
    while let Some(r) = stream.next().await {
        r?;
    }
    drop(stream);
    bar.finish_and_clear();

    let state = ctx.state.lock().await;
    let rejected: Vec<&Rejected> = {
        let mut v: Vec<&Rejected> = state.rejected.values().flatten().collect();
        v.sort_by_key(|r| r.line);
        v
    };
    let mut report = String::new();
    for r in &rejected {
        report.push_str(&serde_json::to_string(r)?);
        report.push('\n');
    }
    std::fs::write(&report_path, report).with_context(|| format!("write {}", report_path.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let sent = total.saturating_sub(sent_before);
    println!(
        "{total} lines: {} accepted, {} rejected (report: {}); this run sent {sent} lines in {secs:.1} s ({:.0} lines/s)",
        state.accepted,
        rejected.len(),
        report_path.display(),
        if secs > 0.0 { sent as f64 / secs } else { 0.0 }
    );
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Ctx {
    client: reqwest::Client,
    url: String,
    key: String,
    state: Mutex<State>,
    state_path: PathBuf,
    bar: ProgressBar,
}

impl Ctx {
    async fn is_done(&self, id: &str) -> bool {
        self.state.lock().await.done.contains(id)
    }

    /// Records a finished chunk and saves the state (write, then rename).
    async fn finish(&self, chunk: &Chunk, rejected: Vec<Rejected>) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        state.accepted += (chunk.lines.len() - rejected.len()) as u64;
        if !rejected.is_empty() {
            state.rejected.insert(chunk.id.clone(), rejected);
        }
        state.done.insert(chunk.id.clone());
        let unreadable = state.rejected.remove("unreadable");
        let bytes = serde_json::to_vec(&*state)?;
        if let Some(u) = unreadable {
            state.rejected.insert("unreadable".into(), u);
        }
        let tmp = with_suffix(&self.state_path, ".tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.state_path).with_context(|| format!("save {}", self.state_path.display()))?;
        self.bar.inc(chunk.lines.len() as u64);
        Ok(())
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .with_context(|| format!("send {path}"))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 500 || status == 401 || status == 403 || status == 429 || status == 413 {
            bail!("{path}: the service answered {status}: {body}; run the import again to resume");
        }
        Ok((status, body))
    }

    /// A learner or a link: `None` when accepted.
    async fn person(&self, line: &Line) -> anyhow::Result<Option<Rejected>> {
        let (status, body) = match &line.record {
            Record::Learner(b) => self.send(reqwest::Method::POST, "/v1/learners", b).await?,
            Record::Link { account, body } => {
                let path = format!("/v1/accounts/{}", encode_segment(account));
                self.send(reqwest::Method::PUT, &path, body).await?
            }
            Record::Event(_) => unreachable!("events are sent in batches"),
        };
        Ok((!(200..300).contains(&status)).then(|| Rejected {
            line: line.number,
            event_id: None,
            status: "rejected".into(),
            problem: body,
        }))
    }

    /// One batch of events: the rejected and conflicting items.
    async fn events(&self, chunk: &Chunk) -> anyhow::Result<Vec<Rejected>> {
        let items: Vec<Value> = chunk
            .lines
            .iter()
            .map(|l| match &l.record {
                Record::Event(v) => v.clone(),
                _ => Value::Null,
            })
            .collect();
        let (status, body) = self
            .send(reqwest::Method::POST, "/v1/events", &Value::Array(items))
            .await?;
        if status != 200 {
            // The whole batch was refused (its shape): every line gets the problem.
            return Ok(chunk
                .lines
                .iter()
                .map(|l| Rejected {
                    line: l.number,
                    event_id: event_id_of(&l.record),
                    status: "rejected".into(),
                    problem: body.clone(),
                })
                .collect());
        }
        let results = body["results"]
            .as_array()
            .filter(|r| r.len() == chunk.lines.len())
            .ok_or_else(|| anyhow!("the service answered a batch of {} with {body}", chunk.lines.len()))?;
        Ok(chunk
            .lines
            .iter()
            .zip(results)
            .enumerate()
            .filter(|(_, (_, r))| matches!(r["status"].as_str(), Some("rejected" | "conflict")))
            .map(|(i, (l, r))| {
                // The service names the field within the batch (`7/course`);
                // the report names it within the line.
                let mut problem = r["problem"].clone();
                if let Some(field) = problem["field"].as_str()
                    && let Some(rest) = field.strip_prefix(&format!("{i}/"))
                {
                    problem["field"] = Value::String(rest.to_owned());
                }
                Rejected {
                    line: l.number,
                    event_id: event_id_of(&l.record),
                    status: r["status"].as_str().unwrap_or_default().to_owned(),
                    problem,
                }
            })
            .collect())
    }
}

fn event_id_of(r: &Record) -> Option<String> {
    match r {
        Record::Event(v) => v["event_id"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Percent-encodes a path segment (local accounts are `[A-Za-z0-9._@+-]`,
/// so only `@` and `+` need it; anything else is encoded too).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unreadable(number: usize, detail: impl Into<String>) -> Rejected {
    Rejected {
        line: number,
        event_id: None,
        status: "unreadable".into(),
        problem: json!({"detail": detail.into()}),
    }
}

/// A record from one JSON object with a `type`.
fn record_of(mut obj: Map<String, Value>) -> Result<Record, String> {
    let kind = match obj.remove("type") {
        Some(Value::String(t)) => t,
        _ => return Err("`type` must be one of learner, link, event".into()),
    };
    match kind.as_str() {
        "learner" => Ok(Record::Learner(Value::Object(obj))),
        "link" => {
            let account = match obj.remove("local_account") {
                Some(Value::String(a)) if !a.is_empty() => a,
                _ => return Err("a link needs `local_account`".into()),
            };
            Ok(Record::Link {
                account,
                body: Value::Object(obj),
            })
        }
        "event" => match obj.get("event_id") {
            Some(Value::String(_)) => Ok(Record::Event(Value::Object(obj))),
            _ => Err("an event needs `event_id`".into()),
        },
        other => Err(format!("`type` `{other}` is not one of learner, link, event")),
    }
}

fn parse_ndjson(bytes: &[u8]) -> (Vec<Line>, Vec<Rejected>) {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(obj)) => match record_of(obj) {
                Ok(record) => lines.push(Line { number, record }),
                Err(e) => bad.push(unreadable(number, e)),
            },
            Ok(_) => bad.push(unreadable(number, "is not a JSON object")),
            Err(e) => bad.push(unreadable(number, format!("is not JSON: {e}"))),
        }
    }
    (lines, bad)
}

/// The CSV columns, all optional but `type` (see `docs/import.md`).
const CSV_COLUMNS: [&str; 15] = [
    "type",
    "local_account",
    "name",
    "document_kind",
    "document_number",
    "registered_at",
    "learner_id",
    "event_id",
    "kind",
    "course",
    "completed_at",
    "score",
    "hours",
    "target_event_id",
    "reason",
];

fn parse_csv(bytes: &[u8]) -> anyhow::Result<(Vec<Line>, Vec<Rejected>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader.headers().context("read the CSV header")?.clone();
    if let Some(h) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        bail!("CSV column `{h}` is not one of {}", CSV_COLUMNS.join(", "));
    }
    if !headers.iter().any(|h| h == "type") {
        bail!("the CSV header has no `type` column");
    }
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (i, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let number = row
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| p.line() as usize);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                bad.push(unreadable(number, format!("is not a CSV row: {e}")));
                continue;
            }
        };
        let cell = |name: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| row.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut obj = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                obj.insert(k.to_owned(), Value::String(v));
            }
        };
        let kind = cell("type");
        put("type", kind.clone());
        match kind.as_deref() {
            Some("learner") => {
                put("name", cell("name"));
                put("local_account", cell("local_account"));
                put("registered_at", cell("registered_at"));
                obj.insert(
                    "document".into(),
                    json!({"kind": cell("document_kind"), "number": cell("document_number")}),
                );
            }
            Some("link") => {
                put("local_account", cell("local_account"));
                put("learner_id", cell("learner_id"));
                put("registered_at", cell("registered_at"));
            }
            Some("event") => {
                for k in [
                    "event_id",
                    "kind",
                    "course",
                    "completed_at",
                    "target_event_id",
                    "reason",
                ] {
                    put(k, cell(k));
                }
                // Amounts stay strings: the API takes exact decimals as strings.
                put("score", cell("score"));
                put("hours", cell("hours"));
                match (cell("local_account"), cell("learner_id")) {
                    (Some(a), _) => {
                        obj.insert("learner".into(), json!({"local_account": a}));
                    }
                    (None, Some(id)) => {
                        obj.insert("learner".into(), json!({"id": id}));
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
        match record_of(obj) {
            Ok(record) => lines.push(Line { number, record }),
            Err(e) => bad.push(unreadable(number, e)),
        }
    }
    Ok((lines, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_and_csv_give_the_same_records() {
        let nd = br#"{"type":"learner","name":"N","document":{"kind":"resident_id","number":"X"},"local_account":"u1","registered_at":"2019-05-01T00:00:00Z"}
{"type":"event","event_id":"e1","kind":"completion","course":"C1","learner":{"local_account":"u1"},"completed_at":"2019-06-01T00:00:00Z","hours":"10"}
not json
"#;
        let csv = b"type,local_account,name,document_kind,document_number,registered_at,event_id,kind,course,completed_at,hours
learner,u1,N,resident_id,X,2019-05-01T00:00:00Z,,,,,
event,u1,,,,,e1,completion,C1,2019-06-01T00:00:00Z,10
";
        let (a, bad) = parse_ndjson(nd);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 3);
        let (b, bad) = parse_csv(csv).expect("csv");
        assert!(bad.is_empty());
        let body = |r: &Record| match r {
            Record::Learner(v) | Record::Event(v) => v.clone(),
            Record::Link { body, .. } => body.clone(),
        };
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(body(&x.record), body(&y.record));
        }
        assert_eq!(b[1].number, 3);
    }
}
