//! `xuefen bank pull`: the reference consumer of the deposit feed, acting
//! as the credit bank.
//!
//! It pulls pages after its cursor, checks the checkpoint each page carries
//! (a C2SP signed note under the pinned public key and origin, and the RFC
//! 9162 consistency proof from the checkpoint it verified before, computed
//! from the log's tiles, so a log rolled back or forked is refused), checks
//! every deposit (its canonical bytes hash to its entry hash, its fields are
//! the ones the bytes say, and its inclusion proof leads to the checkpoint's root),
//! acknowledges the page, and only then saves its cursor. Killed at any
//! instant, it resumes from the last saved cursor: a page acknowledged but
//! not yet saved is pulled and acknowledged again, which the service answers
//! as a duplicate, so every deposit is acknowledged exactly once.
//!
//! Each deposit is decided by a policy: accept all (the default), a rules
//! file (`--rules`), or a command (`--decide-command`). The decisions of a
//! page are saved in the state file before they are posted, so a replayed
//! page posts the same decisions and the policy is asked once per deposit.
//! A deposit the bank already decided otherwise (through the API) is
//! answered as a per-item conflict: it is recorded as "decided elsewhere",
//! reported, and the cursor moves on; the consumer never stops on it.
//!
//! With `--witness NAME=KEY` (repeated) and `--quorum N`, every page's
//! checkpoint must also carry valid C2SP `cosignature/v1` lines of at least
//! N of the named witnesses (default: all), or the consumer stops (exit 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use xuefen_core::bank::Decision;
use xuefen_core::entry::{EntryBody, entry_hash};
use xuefen_core::ids::Position;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint, Tiles};
use xuefen_core::witness::{self, Cosigner};

/// Options of `xuefen bank pull`.
#[derive(clap::Args, Debug)]
pub(crate) struct PullArgs {
    /// Base URL of the Xuefen service.
    #[arg(long, env = "XUEFEN_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The credit bank's API key.
    #[arg(long, env = "XUEFEN_BANK_KEY", hide_env_values = true)]
    pub key: String,
    /// Where the consumer keeps its cursor, pinned public key and last verified checkpoint.
    #[arg(long, default_value = "bank-pull.json")]
    pub state: PathBuf,
    /// The service's checkpoint public key (hex). Without it, the key saved in
    /// the state file is used, or the service's is fetched and pinned on first use.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Deposits per page.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Keep polling for new deposits instead of stopping at the end of the feed.
    #[arg(long)]
    pub follow: bool,
    /// With --follow: milliseconds between polls of an exhausted feed.
    #[arg(long, default_value_t = 1_000)]
    pub poll_ms: u64,
    /// Decide by a TOML rules file: `[[rule]]` tables with optional matchers
    /// `site`, `course`, `kind`, `event_id` and a decision `outcome`
    /// (`accepted` or `rejected`, with `reason_code` and optional `reason`);
    /// the first matching rule decides, no match accepts.
    #[arg(long, conflicts_with = "decide_command")]
    pub rules: Option<PathBuf>,
    /// Decide by a command run with `sh -c` once per deposit: the deposit
    /// (JSON, as served) on its standard input, one JSON object
    /// `{"outcome": "accepted"}` or `{"outcome": "rejected", "reason_code": …,
    /// "reason": …}` on its standard output. A failing command stops the
    /// consumer with the cursor kept (exit 2), naming the deposit.
    #[arg(long)]
    pub decide_command: Option<String>,
    /// A witness whose cosignatures count, `NAME=KEY` (KEY its hex Ed25519
    /// public key or its verifier key); repeatable. With witnesses named,
    /// every page's checkpoint must carry a quorum of their valid
    /// cosignatures (C2SP tlog-cosignature) or the consumer stops.
    #[arg(long = "witness", value_name = "NAME=KEY")]
    pub witnesses: Vec<String>,
    /// How many of the named witnesses must have cosigned (default: all).
    #[arg(long, requires = "witnesses")]
    pub quorum: Option<usize>,
}

/// The witnesses whose cosignatures a checkpoint must carry, and how many.
struct Quorum {
    witnesses: Vec<Cosigner>,
    needed: usize,
}

impl Quorum {
    fn from_args(args: &PullArgs) -> anyhow::Result<Option<Self>> {
        if args.witnesses.is_empty() {
            return Ok(None);
        }
        let mut witnesses: Vec<Cosigner> = Vec::new();
        for spec in &args.witnesses {
            let c = Cosigner::parse(spec).map_err(|m| anyhow!("--witness: {m}"))?;
            if witnesses.iter().any(|w| w.name == c.name) {
                bail!("--witness: `{}` is named twice", c.name);
            }
            witnesses.push(c);
        }
        let needed = args.quorum.unwrap_or(witnesses.len());
        if needed == 0 || needed > witnesses.len() {
            bail!("--quorum must be from 1 to the {} witnesses named", witnesses.len());
        }
        Ok(Some(Self { witnesses, needed }))
    }

    /// Checks that `note` carries cosignatures of at least `needed` of the
    /// named witnesses, none dated more than ten minutes ahead of this clock.
    fn check(&self, note: &str) -> Result<(), Untrusted> {
        let (text, lines) =
            witness::split_note(note).ok_or_else(|| Untrusted("the page's checkpoint is not a signed note".into()))?;
        let ahead = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64 + 600;
        let good: Vec<String> = witness::cosignatures(lines, &self.witnesses, &text)
            .into_iter()
            .filter(|c| c.timestamp <= ahead)
            .map(|c| c.witness)
            .collect();
        if good.len() < self.needed {
            let size = text.lines().nth(1).unwrap_or("?");
            return Err(Untrusted(format!(
                "the checkpoint of size {size} carries valid cosignatures of {} of the named witnesses ({}), {} are required",
                good.len(),
                if good.is_empty() {
                    "none".to_owned()
                } else {
                    good.join(", ")
                },
                self.needed
            )));
        }
        Ok(())
    }
}

/// One rule of a `--rules` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    site: Option<String>,
    course: Option<String>,
    kind: Option<String>,
    event_id: Option<String>,
    outcome: String,
    reason_code: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// How the consumer decides each deposit.
enum Policy {
    AcceptAll,
    Rules(Vec<(Rule, Value)>),
    Command(String),
}

/// A decision as posted: `{"outcome": …, "reason_code": …, "reason": …}`,
/// checked with the service's own rules so one bad decision cannot make a
/// whole page of acknowledgements refused.
fn decision_json(outcome: &str, code: Option<&str>, reason: Option<&str>) -> anyhow::Result<Value> {
    match (outcome, code) {
        ("accepted", None) => Ok(json!({"outcome": "accepted"})),
        ("accepted", Some(_)) => bail!("`reason_code` is only for a rejection"),
        ("rejected", Some(code)) => {
            let text = reason.unwrap_or("");
            Decision::rejected(code, text).map_err(|e| anyhow!("`{}` {}", e.field, e.detail))?;
            let mut d = json!({"outcome": "rejected", "reason_code": code});
            if !text.trim().is_empty() {
                d["reason"] = json!(text.trim());
            }
            Ok(d)
        }
        ("rejected", None) => bail!("`reason_code` is required for a rejection"),
        (other, _) => bail!("`outcome` must be `accepted` or `rejected`, not {other:?}"),
    }
}

impl Policy {
    fn from_args(args: &PullArgs) -> anyhow::Result<Self> {
        if let Some(cmd) = &args.decide_command {
            return Ok(Self::Command(cmd.clone()));
        }
        let Some(path) = &args.rules else {
            return Ok(Self::AcceptAll);
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("read rules {}", path.display()))?;
        let file: RulesFile = toml::from_str(&text).with_context(|| format!("rules {}", path.display()))?;
        let rules = file
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let d = decision_json(&r.outcome, r.reason_code.as_deref(), r.reason.as_deref())
                    .with_context(|| format!("rules {}: rule {}", path.display(), i + 1))?;
                Ok((r, d))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self::Rules(rules))
    }

    async fn decide(&self, d: &Value) -> anyhow::Result<Value> {
        match self {
            Self::AcceptAll => Ok(json!({"outcome": "accepted"})),
            Self::Rules(rules) => {
                let is = |want: &Option<String>, name: &str| want.as_ref().is_none_or(|w| d[name].as_str() == Some(w));
                Ok(rules
                    .iter()
                    .find(|(r, _)| {
                        is(&r.site, "site_id")
                            && is(&r.course, "course")
                            && is(&r.kind, "kind")
                            && is(&r.event_id, "event_id")
                    })
                    .map_or_else(|| json!({"outcome": "accepted"}), |(_, d)| d.clone()))
            }
            Self::Command(cmd) => run_decide_command(cmd, d).await,
        }
    }
}

async fn run_decide_command(cmd: &str, d: &Value) -> anyhow::Result<Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start the decide command {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(serde_json::to_string(d)?.as_bytes()).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| anyhow!("the decide command took longer than 60 s"))?
        .context("the decide command")?;
    if !out.status.success() {
        bail!("the decide command exited with {}", out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the decide command printed {:?}, not a JSON decision",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    })?;
    let text = |name: &str| v[name].as_str();
    let outcome = text("outcome").ok_or_else(|| anyhow!("the decide command printed no `outcome`: {v}"))?;
    decision_json(outcome, text("reason_code"), text("reason")).context("the decide command's decision")
}

/// The consumer's saved state. Written atomically (temporary file, then rename).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PullState {
    cursor: String,
    public_key: Option<String>,
    /// The checkpoint of the last acknowledged deposit, fully verified.
    checkpoint: Option<SavedCheckpoint>,
    deposits_acknowledged: u64,
    /// Of those, accepted and rejected by this consumer's policy.
    #[serde(default)]
    accepted: u64,
    #[serde(default)]
    rejected: u64,
    /// Deposits the bank had already decided otherwise (through the API):
    /// skipped, reported, never retried.
    #[serde(default)]
    decided_elsewhere: Vec<DecidedElsewhere>,
    /// The decisions of the page after `cursor`, saved before they are
    /// posted; a replay of that page posts them again instead of asking the
    /// policy anew.
    #[serde(default)]
    pending: Option<PendingPage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingPage {
    after: String,
    /// Per deposit log index: the decision posted.
    decisions: std::collections::BTreeMap<u64, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DecidedElsewhere {
    number: u64,
    deposit: Value,
    site_id: Value,
    event_id: Value,
    /// What this consumer would have decided.
    ours: Value,
    /// The field the recorded decision differs in, and its ack entry.
    field: Value,
    ack_entry: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedCheckpoint {
    origin: String,
    size: u64,
    /// The root, hex.
    root: String,
}

impl SavedCheckpoint {
    fn from_checkpoint(c: &LogCheckpoint) -> Self {
        Self {
            origin: c.origin.clone(),
            size: c.size,
            root: hex::encode(c.root),
        }
    }

    fn to_checkpoint(&self) -> anyhow::Result<LogCheckpoint> {
        Ok(LogCheckpoint {
            origin: self.origin.clone(),
            size: self.size,
            root: hash32(&self.root, "root")?,
        })
    }
}

fn hash32(hex_str: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_str).with_context(|| format!("{what} is not hex"))?;
    bytes.try_into().map_err(|_| anyhow!("{what} is not 32 bytes"))
}

fn load_state(path: &Path) -> anyhow::Result<PullState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("read state {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PullState::default()),
        Err(e) => Err(e).with_context(|| format!("read state {}", path.display())),
    }
}

/// Saves the state so that a crash leaves either the old or the new file.
fn save_state(path: &Path, state: &PullState) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let resp = req
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("{what}: request failed"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{what}: {status}: {}", body["detail"].as_str().unwrap_or("no detail"));
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)), &format!("GET {path}"))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(body),
            &format!("POST {path}"),
        )
        .await
    }
}

/// Why the consumer stopped without finishing: the feed failed a check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Untrusted(String);

fn field<'a>(v: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    v[name].as_str().ok_or_else(|| anyhow!("`{name}` is missing"))
}

fn hashes(v: &Value) -> anyhow::Result<Vec<[u8; 32]>> {
    v.as_array()
        .ok_or_else(|| anyhow!("a path is not an array"))?
        .iter()
        .map(|h| hash32(h.as_str().unwrap_or_default(), "path hash"))
        .collect()
}

/// Fetches the tiles `ids` of the log (untrusted: whatever they hold, a
/// proof computed from them either verifies against the signed roots or
/// the log is refused).
async fn fetch_tiles(client: &Client, ids: &[(tlog::TileId, u64)]) -> anyhow::Result<Tiles> {
    let mut tiles = Tiles::new();
    for (id, width) in ids {
        let path = tlog::tile_path(*id, *width);
        let resp = client
            .http
            .get(format!("{}/{path}", client.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("GET /{path}: request failed"))?;
        if !resp.status().is_success() {
            return Err(Untrusted(format!(
                "GET /{path}: {}: the log does not serve a tile its checkpoint needs",
                resp.status()
            ))
            .into());
        }
        let bytes = resp.bytes().await.with_context(|| format!("GET /{path}"))?;
        let hashes = tlog::tile_from_bytes(&bytes)
            .filter(|h| h.len() as u64 == *width)
            .ok_or_else(|| Untrusted(format!("/{path} is not {width} hashes")))?;
        tiles.insert(*id, hashes);
    }
    Ok(tiles)
}

/// Opens the page's checkpoint with the pinned key and checks that it
/// extends the one verified before (same origin; a consistency proof from
/// the tiles when it grew; the same root when it did not).
async fn verify_checkpoint(
    client: &Client,
    key: &VerifyingKey,
    note: &str,
    before: Option<&LogCheckpoint>,
) -> anyhow::Result<LogCheckpoint> {
    let body = note
        .split_once("\n\n")
        .map(|(b, _)| format!("{b}\n"))
        .unwrap_or_default();
    let claimed = LogCheckpoint::parse_body(&body)
        .ok_or_else(|| Untrusted("the page's checkpoint is not a checkpoint note".into()))?;
    let origin = before.map_or(claimed.origin.as_str(), |b| b.origin.as_str());
    let cp = LogCheckpoint::open(note, origin, key).map_err(|e| Untrusted(e.to_string()))?;
    let Some(before) = before else {
        return Ok(cp);
    };
    if cp.size < before.size {
        return Err(Untrusted(format!(
            "the log went back from {} to {} entries (rolled back)",
            before.size, cp.size
        ))
        .into());
    }
    if cp.size == before.size {
        if cp.root != before.root {
            return Err(Untrusted(format!("the log of {} entries changed its root (forked)", cp.size)).into());
        }
        return Ok(cp);
    }
    let tiles = fetch_tiles(client, &tlog::consistency_tiles(before.size, cp.size)).await?;
    let proof = tlog::consistency_proof(before.size, cp.size, &tiles)
        .map_err(|e| Untrusted(format!("consistency proof {} → {}: {e}", before.size, cp.size)))?;
    if !merkle::verify_consistency(before.size, cp.size, &before.root, &cp.root, &proof) {
        return Err(Untrusted(format!(
            "the log of {} entries does not extend the one of {} verified before (forked or rewritten)",
            cp.size, before.size
        ))
        .into());
    }
    Ok(cp)
}

/// Checks one deposit of a page against its (verified) checkpoint.
fn verify_deposit(d: &Value, checkpoint: &LogCheckpoint) -> anyhow::Result<()> {
    let position = Position {
        chain: u32::try_from(d["position"]["chain"].as_u64().unwrap_or(u64::MAX))?,
        seq: d["position"]["seq"]
            .as_u64()
            .ok_or_else(|| anyhow!("position missing"))?,
    };
    let bytes = hex::decode(field(d, "entry_bytes")?)?;
    let body = EntryBody::decode(&bytes).map_err(|e| anyhow!("entry bytes do not decode: {e}"))?;
    // The feed names the learner by the bank's own pseudonym, which no
    // entry's bytes hold (a version-2 entry has a commitment, a version-1
    // entry the unified id): the learner is not compared.
    let shown = [
        ("site_id", body.site.as_str().to_owned()),
        ("event_id", body.event_id.as_str().to_owned()),
        ("course", body.course.as_str().to_owned()),
        ("credits", body.credits.to_string()),
        ("completed_at", body.occurred_at.to_rfc3339()),
    ];
    for (name, value) in shown {
        if field(d, name)? != value {
            return Err(Untrusted(format!("entry {position}: `{name}` is not what the entry's bytes say")).into());
        }
    }
    if d["rule_version"].as_u64() != Some(u64::from(body.rule_version)) {
        return Err(Untrusted(format!(
            "entry {position}: `rule_version` is not what the entry's bytes say"
        ))
        .into());
    }
    let prev = hash32(field(d, "prev_hash")?, "prev_hash")?;
    let hash = hash32(field(d, "entry_hash")?, "entry_hash")?;
    if entry_hash(position, &prev, &body.encode()) != hash {
        return Err(Untrusted(format!(
            "entry {position}: the entry's hash does not match its content (entry altered)"
        ))
        .into());
    }
    let index = d["log_index"].as_u64().ok_or_else(|| anyhow!("log_index missing"))?;
    let p = &d["proof"];
    if p["tree_size"].as_u64() != Some(checkpoint.size) {
        return Err(Untrusted(format!("entry {position}: the proof is not for the page's checkpoint")).into());
    }
    let path = hashes(&p["inclusion"])?;
    if !merkle::verify_inclusion(index, checkpoint.size, &tlog::leaf(&hash), &path, &checkpoint.root) {
        return Err(Untrusted(format!(
            "entry {position}: not in the log at index {index} under the checkpoint"
        ))
        .into());
    }
    Ok(())
}

/// Runs the consumer; exit 0 when the feed is drained (or never, with
/// `--follow`), 1 when the feed fails a check, naming what failed.
pub(crate) async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    if !(1..=500).contains(&args.limit) {
        bail!("--limit must be from 1 to 500");
    }
    let policy = Policy::from_args(&args)?;
    let quorum = Quorum::from_args(&args)?;
    let client = Client {
        http: reqwest::Client::new(),
        base: args.url.trim_end_matches('/').to_owned(),
        key: args.key.clone(),
    };
    let mut state = load_state(&args.state)?;
    let key_hex = match (&args.public_key, &state.public_key) {
        (Some(k), Some(saved)) if k != saved => bail!("--public-key differs from the key pinned in the state file"),
        (Some(k), _) => k.clone(),
        (None, Some(saved)) => saved.clone(),
        (None, None) => {
            let v = client.get("/v1/checkpoints/public-key").await?;
            let k = field(&v, "public_key")?.to_owned();
            eprintln!("pinned the service's checkpoint public key {k} (trust on first use)");
            k
        }
    };
    let key_bytes = hash32(&key_hex, "public key")?;
    let key = VerifyingKey::from_bytes(&key_bytes).context("the public key is not an Ed25519 key")?;
    state.public_key = Some(key_hex);
    save_state(&args.state, &state)?;
    match run(&client, &args, &policy, quorum.as_ref(), &key, &mut state).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.downcast_ref::<Untrusted>().is_some() || e.chain().any(|c| c.is::<Untrusted>()) => {
            println!("STOPPED: the feed failed verification: {e:#}");
            println!(
                "acknowledged {} deposits in all; cursor {:?} kept",
                state.deposits_acknowledged, state.cursor
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e),
    }
}

async fn run(
    client: &Client,
    args: &PullArgs,
    policy: &Policy,
    quorum: Option<&Quorum>,
    key: &VerifyingKey,
    state: &mut PullState,
) -> anyhow::Result<()> {
    let (mut pages, mut deposits, mut recorded, mut duplicate, mut elsewhere) = (0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let page = client
            .get(&format!("/v1/deposits?after={}&limit={}", state.cursor, args.limit))
            .await?;
        let items = page["deposits"].as_array().cloned().unwrap_or_default();
        let next_cursor = field(&page, "next_cursor")?.to_owned();
        let last = state
            .checkpoint
            .as_ref()
            .map(SavedCheckpoint::to_checkpoint)
            .transpose()?;
        let verified = match page["checkpoint"].as_str() {
            Some(note) => {
                let cp = verify_checkpoint(client, key, note, last.as_ref()).await?;
                if let Some(q) = quorum {
                    q.check(note)?;
                }
                Some(cp)
            }
            None if last.is_some() => {
                return Err(Untrusted("the log has no checkpoint any more (rolled back)".into()).into());
            }
            None => None,
        };
        if items.is_empty() {
            if let Some(cp) = &verified {
                state.checkpoint = Some(SavedCheckpoint::from_checkpoint(cp));
            }
            if next_cursor != state.cursor {
                state.cursor = next_cursor;
                save_state(&args.state, state)?;
                continue;
            }
            save_state(&args.state, state)?;
            if args.follow {
                tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
                continue;
            }
            break;
        }
        let Some(cp) = verified else {
            return Err(Untrusted("a page of deposits without a checkpoint".into()).into());
        };
        for d in &items {
            let number = d["log_index"].as_u64().unwrap_or(0);
            let described = format!(
                "deposit at log index {number} (entry {}:{}, site {}, event {})",
                d["position"]["chain"], d["position"]["seq"], d["site_id"], d["event_id"]
            );
            verify_deposit(d, &cp).with_context(|| described.clone())?;
        }
        // Every deposit of the page verified: decide them (or take the
        // decisions saved before a kill), save, then post.
        let mut decisions = match state.pending.take() {
            Some(p) if p.after == state.cursor => p.decisions,
            _ => std::collections::BTreeMap::new(),
        };
        let mut acks = Vec::with_capacity(items.len());
        for d in &items {
            let number = d["log_index"].as_u64().unwrap_or(0);
            let decision = match decisions.get(&number) {
                Some(saved) => saved.clone(),
                None => policy.decide(d).await.with_context(|| {
                    format!(
                        "deciding deposit #{number} (site {}, event {}); cursor {:?} kept",
                        d["site_id"], d["event_id"], state.cursor
                    )
                })?,
            };
            decisions.insert(number, decision.clone());
            let mut ack = decision;
            ack["deposit"] = d["position"].clone();
            acks.push(ack);
        }
        state.pending = Some(PendingPage {
            after: state.cursor.clone(),
            decisions: decisions.clone(),
        });
        save_state(&args.state, state)?;
        let out = client.post("/v1/deposits/acks", &json!({"acks": acks})).await?;
        let results = out["results"].as_array().cloned().unwrap_or_default();
        if results.len() != items.len() {
            bail!(
                "the service answered {} results for {} acknowledgements",
                results.len(),
                items.len()
            );
        }
        recorded += out["recorded"].as_u64().unwrap_or(0);
        duplicate += out["duplicate"].as_u64().unwrap_or(0);
        for ((d, ack), r) in items.iter().zip(&acks).zip(&results) {
            let number = d["log_index"].as_u64().unwrap_or(0);
            match r["status"].as_str() {
                Some("recorded" | "duplicate") if ack["outcome"] == "rejected" => state.rejected += 1,
                Some("recorded" | "duplicate") => state.accepted += 1,
                Some("conflict") => {
                    println!(
                        "decided elsewhere: deposit at log index {number} (entry {}:{}, site {}, event {}): {}",
                        d["position"]["chain"],
                        d["position"]["seq"],
                        d["site_id"],
                        d["event_id"],
                        r["problem"]["detail"].as_str().unwrap_or("already decided otherwise")
                    );
                    elsewhere += 1;
                    state.decided_elsewhere.push(DecidedElsewhere {
                        number,
                        deposit: d["position"].clone(),
                        site_id: d["site_id"].clone(),
                        event_id: d["event_id"].clone(),
                        ours: decisions.get(&number).cloned().unwrap_or(Value::Null),
                        field: r["problem"]["field"].clone(),
                        ack_entry: r["position"].clone(),
                    });
                }
                // A verified deposit the service says it does not know: the
                // feed contradicts itself.
                _ => {
                    return Err(Untrusted(format!(
                        "deposit at log index {number} (entry {}:{}): the service refused its acknowledgement: {}",
                        d["position"]["chain"], d["position"]["seq"], r["problem"]
                    ))
                    .into());
                }
            }
        }
        state.pending = None;
        // Saved only after the acknowledgements committed: a crash before
        // this line replays the page, which the service answers as duplicates.
        state.checkpoint = Some(SavedCheckpoint::from_checkpoint(&cp));
        state.cursor = next_cursor;
        // Counted with the cursor: a page replayed after a kill was not saved,
        // so it is counted once.
        state.deposits_acknowledged += items.len() as u64;
        save_state(&args.state, state)?;
        pages += 1;
        deposits += items.len() as u64;
    }
    println!(
        "done: {pages} pages, {deposits} deposits verified and acknowledged ({recorded} recorded, {duplicate} already recorded, {elsewhere} decided elsewhere); {} in all ({} accepted, {} rejected, {} decided elsewhere); cursor {}",
        state.deposits_acknowledged,
        state.accepted,
        state.rejected,
        state.decided_elsewhere.len(),
        state.cursor
    );
    Ok(())
}
