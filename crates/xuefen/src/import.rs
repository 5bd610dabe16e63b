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
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

mod parse;
mod send;

use self::parse::*;
use self::send::*;

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
    let (lines, unreadable, sha) = read_input(&args)?;
    let (state_path, report_path) = output_paths(&args);
    let mut state = open_state(&state_path, sha, args.batch)?;
    state.rejected.insert("unreadable".into(), unreadable);

    let (people, events) = into_chunks(lines, args.batch);
    let total = line_count(people.iter().chain(&events));
    let finished = line_count(people.iter().chain(&events).filter(|c| state.done.contains(&c.id)));

    let bar = progress_bar(args.quiet, total, finished)?;
    let ctx = Arc::new(Ctx {
        client: http_client()?,
        url: args.url.trim_end_matches('/').to_owned(),
        key: args.key.clone(),
        state: Mutex::new(state),
        state_path: state_path.clone(),
        bar: bar.clone(),
    });
    let started = Instant::now();
    let sent_before = finished;

    send(&ctx, people, &events, jobs).await?;
    bar.finish_and_clear();

    let state = ctx.state.lock().await;
    let rejected = sorted_rejections(&state);
    write_report(&report_path, &rejected)?;
    let sent = total.saturating_sub(sent_before);
    print_summary(total, sent, started, &state, &rejected, &report_path);
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The state file's and the report's paths: `--state` and `--report`, or
/// the input's path with a suffix.
fn output_paths(args: &ImportArgs) -> (PathBuf, PathBuf) {
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".import-state.json"));
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".rejected.ndjson"));
    (state_path, report_path)
}

/// Splits the lines into chunks of `batch`: learners and links, then events.
fn into_chunks(lines: Vec<Line>, batch: usize) -> (Vec<Chunk>, Vec<Chunk>) {
    let (people, events): (Vec<Line>, Vec<Line>) =
        lines.into_iter().partition(|l| !matches!(l.record, Record::Event(_)));
    (
        chunks_of("learners", &people, batch),
        chunks_of("events", &events, batch),
    )
}

/// The lines in chunks of `batch`, numbered `{prefix}-0`, `{prefix}-1`, ….
fn chunks_of(prefix: &str, lines: &[Line], batch: usize) -> Vec<Chunk> {
    lines
        .chunks(batch)
        .enumerate()
        .map(|(i, c)| Chunk {
            id: format!("{prefix}-{i}"),
            lines: c.to_vec(),
        })
        .collect()
}

/// How many lines these chunks hold.
fn line_count<'a>(chunks: impl Iterator<Item = &'a Chunk>) -> u64 {
    chunks.map(|c| c.lines.len() as u64).sum()
}

/// The progress bar (hidden with `--quiet`), already at the lines finished before.
fn progress_bar(quiet: bool, total: u64, finished: u64) -> anyhow::Result<ProgressBar> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} lines {per_sec} ETA {eta}")
            .map_err(|e| anyhow!("progress bar: {e}"))?,
    );
    bar.set_position(finished);
    Ok(bar)
}

/// The HTTP client the requests go through.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("build the HTTP client")
}

/// Every rejection of the run and the earlier ones, by line.
fn sorted_rejections(state: &State) -> Vec<&Rejected> {
    let mut v: Vec<&Rejected> = state.rejected.values().flatten().collect();
    v.sort_by_key(|r| r.line);
    v
}

/// Writes the rejections to the report file, one JSON object a line.
fn write_report(report_path: &Path, rejected: &[&Rejected]) -> anyhow::Result<()> {
    let mut report = String::new();
    for r in rejected {
        report.push_str(&serde_json::to_string(r)?);
        report.push('\n');
    }
    std::fs::write(report_path, report).with_context(|| format!("write {}", report_path.display()))?;
    Ok(())
}

/// Prints the totals of the input and the speed of this run.
fn print_summary(total: u64, sent: u64, started: Instant, state: &State, rejected: &[&Rejected], report_path: &Path) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{total} lines: {} accepted, {} rejected (report: {}); this run sent {sent} lines in {secs:.1} s ({:.0} lines/s)",
        state.accepted,
        rejected.len(),
        report_path.display(),
        if secs > 0.0 { sent as f64 / secs } else { 0.0 }
    );
}

/// The input's lines (and the lines that cannot be read) in the format of
/// `--format` or the file's extension, with the SHA-256 of its bytes.
fn read_input(args: &ImportArgs) -> anyhow::Result<(Vec<Line>, Vec<Rejected>, String)> {
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
    Ok((lines, unreadable, sha))
}

/// The state of an earlier run on the same input and `--batch`, or a new
/// one; a state file of another input is refused rather than mixed in.
fn open_state(state_path: &Path, sha: String, batch: usize) -> anyhow::Result<State> {
    match std::fs::read(state_path) {
        Ok(b) => {
            let s: State = serde_json::from_slice(&b).with_context(|| format!("read {}", state_path.display()))?;
            if s.input_sha256 != sha || s.batch != batch {
                bail!(
                    "{} belongs to another input or --batch; remove it to start over",
                    state_path.display()
                );
            }
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            input_sha256: sha,
            batch,
            ..State::default()
        }),
        Err(e) => Err(e).with_context(|| format!("read {}", state_path.display())),
    }
}

/// Sends learners and links first (the events name them), each chunk's
/// requests `jobs` at a time, then the events, `jobs` batches at a time;
/// chunks finished by an earlier run are skipped.
async fn send(ctx: &Arc<Ctx>, people: Vec<Chunk>, events: &[Chunk], jobs: usize) -> anyhow::Result<()> {
    ctx.bar.set_prefix("learners");
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
    ctx.bar.set_prefix("events");
    let pending: Vec<&Chunk> = {
        let mut v = Vec::new();
        for c in events {
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
    Ok(())
}
