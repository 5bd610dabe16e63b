//! Sending the records: learners and links one request each, events in
//! batches; each answer sorted into accepted, duplicate and rejected, with the
//! line numbers the report names.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use indicatif::ProgressBar;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Chunk, Line, Record, Rejected, State, with_suffix};

pub(super) struct Ctx {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) key: String,
    pub(super) state: Mutex<State>,
    pub(super) state_path: PathBuf,
    pub(super) bar: ProgressBar,
}

impl Ctx {
    pub(super) async fn is_done(&self, id: &str) -> bool {
        self.state.lock().await.done.contains(id)
    }

    /// Records a finished chunk and saves the state (write, then rename).
    pub(super) async fn finish(&self, chunk: &Chunk, rejected: Vec<Rejected>) -> anyhow::Result<()> {
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

    pub(super) async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
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
    pub(super) async fn person(&self, line: &Line) -> anyhow::Result<Option<Rejected>> {
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
    pub(super) async fn events(&self, chunk: &Chunk) -> anyhow::Result<Vec<Rejected>> {
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

pub(super) fn event_id_of(r: &Record) -> Option<String> {
    match r {
        Record::Event(v) => v["event_id"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Percent-encodes a path segment (local accounts are `[A-Za-z0-9._@+-]`,
/// so only `@` and `+` need it; anything else is encoded too).
pub(super) fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
