//! `xuefen bank pull`: the reference consumer of the deposit feed, acting
//! as the credit bank.
//!
//! It pulls pages after its cursor, checks every checkpoint a deposit refers
//! to (the Ed25519 signature under the pinned public key, and the RFC 9162
//! consistency proof of every chain from the checkpoint it verified before,
//! with the `prev_hash` link when they are consecutive), checks
//! every deposit (its canonical bytes hash to its entry hash, its fields are
//! the ones the bytes say, and its proof leads to the checkpoint's root),
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

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use xuefen_core::bank::{ChainState, Checkpoint, Decision, DepositProof, ProofFailure};
use xuefen_core::entry::{Entry, EntryBody};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;

/// Options of `xuefen bank pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
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
    /// Per deposit number: the decision posted.
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
    number: u64,
    created_at_ms: i64,
    prev_hash: String,
    deposits_end: u64,
    /// Per chain: `[size, head hex, root hex]`.
    chains: Vec<(u64, String, String)>,
}

impl SavedCheckpoint {
    fn from_checkpoint(c: &Checkpoint) -> Self {
        Self {
            number: c.number,
            created_at_ms: c.created_at.0,
            prev_hash: hex::encode(c.prev_hash),
            deposits_end: c.deposits_end,
            chains: c
                .chains
                .iter()
                .map(|s| (s.size, hex::encode(s.head), hex::encode(s.root)))
                .collect(),
        }
    }

    fn to_checkpoint(&self) -> anyhow::Result<Checkpoint> {
        Ok(Checkpoint {
            number: self.number,
            created_at: Millis(self.created_at_ms),
            prev_hash: hash32(&self.prev_hash, "prev_hash")?,
            deposits_end: self.deposits_end,
            chains: self
                .chains
                .iter()
                .enumerate()
                .map(|(i, (size, head, root))| {
                    Ok(ChainState {
                        chain: u32::try_from(i)?,
                        size: *size,
                        head: hash32(head, "head")?,
                        root: hash32(root, "root")?,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
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
pub struct Untrusted(String);

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

/// A checkpoint as served: the checkpoint, its signature, and the
/// consistency proof of each chain from the previous checkpoint.
type ServedCheckpoint = (Checkpoint, [u8; 64], Vec<Vec<[u8; 32]>>);

fn checkpoint_from(v: &Value) -> anyhow::Result<ServedCheckpoint> {
    let chains = v["chains"]
        .as_array()
        .ok_or_else(|| anyhow!("`chains` is missing"))?
        .iter()
        .map(|c| {
            Ok(ChainState {
                chain: u32::try_from(c["chain"].as_u64().unwrap_or(u64::MAX))?,
                size: c["size"].as_u64().ok_or_else(|| anyhow!("chain size missing"))?,
                head: hash32(field(c, "head")?, "head")?,
                root: hash32(field(c, "root")?, "root")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let checkpoint = Checkpoint {
        number: v["number"].as_u64().ok_or_else(|| anyhow!("`number` is missing"))?,
        created_at: Millis(
            v["created_at_ms"]
                .as_i64()
                .ok_or_else(|| anyhow!("`created_at_ms` is missing"))?,
        ),
        prev_hash: hash32(field(v, "prev_hash")?, "prev_hash")?,
        chains,
        deposits_end: v["deposits_end"]
            .as_u64()
            .ok_or_else(|| anyhow!("`deposits_end` is missing"))?,
    };
    let sig = hex::decode(field(v, "signature")?)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| anyhow!("signature is not 64 bytes"))?;
    let consistency = v["consistency"]
        .as_array()
        .ok_or_else(|| anyhow!("`consistency` is missing"))?
        .iter()
        .map(hashes)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((checkpoint, sig, consistency))
}

/// Fetches and verifies the checkpoints `needed` (ascending, all after
/// `from`), each with consistency proofs from the one before it, so that
/// checkpoints no deposit refers to are never fetched.
async fn verify_checkpoints(
    client: &Client,
    key: &VerifyingKey,
    from: Option<&Checkpoint>,
    needed: &[u64],
    verified: &mut std::collections::BTreeMap<u64, Checkpoint>,
) -> anyhow::Result<()> {
    let mut prev = from.cloned();
    for &number in needed {
        let path = match &prev {
            Some(p) => format!("/v1/checkpoints/{number}?from={}", p.number),
            None => format!("/v1/checkpoints/{number}"),
        };
        let v = client.get(&path).await?;
        let (cp, sig, consistency) =
            checkpoint_from(&v).with_context(|| format!("checkpoint {number} is malformed"))?;
        let untrusted = |e: ProofFailure| anyhow::Error::new(Untrusted(e.to_string()));
        if cp.number != number {
            return Err(Untrusted(format!("asked for checkpoint {number}, got {}", cp.number)).into());
        }
        cp.verify_signature(key, &sig).map_err(untrusted)?;
        match &prev {
            Some(p) => cp.verify_extends_from(p, &consistency).map_err(untrusted)?,
            // The first checkpoint this consumer meets: signed, and if it is
            // the very first, with no predecessor.
            None if cp.number == 1 && cp.prev_hash != [0; 32] => {
                return Err(Untrusted("checkpoint 1 names a predecessor".into()).into());
            }
            None => {}
        }
        verified.insert(number, cp.clone());
        prev = Some(cp);
    }
    Ok(())
}

/// Checks one deposit of a page against its (verified) checkpoint.
fn verify_deposit(d: &Value, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    let position = Position {
        chain: u32::try_from(d["position"]["chain"].as_u64().unwrap_or(u64::MAX))?,
        seq: d["position"]["seq"]
            .as_u64()
            .ok_or_else(|| anyhow!("position missing"))?,
    };
    let bytes = hex::decode(field(d, "entry_bytes")?)?;
    let body = EntryBody::decode(&bytes).map_err(|e| anyhow!("entry bytes do not decode: {e}"))?;
    // A version-2 entry names its learner by a commitment, not the id the
    // feed shows (docs/ledger-format.md, section 3c): only a version-1
    // entry's learner can be compared with its bytes.
    let learner = body
        .commitment
        .is_none()
        .then(|| ("learner_id", body.learner.as_str().to_owned()));
    let shown = learner.into_iter().chain([
        ("site_id", body.site.as_str().to_owned()),
        ("event_id", body.event_id.as_str().to_owned()),
        ("course", body.course.as_str().to_owned()),
        ("credits", body.credits.to_string()),
        ("completed_at", body.occurred_at.to_rfc3339()),
    ]);
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
    let entry = Entry {
        position,
        prev_hash: hash32(field(d, "prev_hash")?, "prev_hash")?,
        hash: hash32(field(d, "entry_hash")?, "entry_hash")?,
        body,
    };
    let p = &d["proof"];
    let proof = DepositProof {
        checkpoint: p["checkpoint"]
            .as_u64()
            .ok_or_else(|| anyhow!("proof checkpoint missing"))?,
        chain: ChainState {
            chain: position.chain,
            size: p["chain_size"].as_u64().ok_or_else(|| anyhow!("chain_size missing"))?,
            head: hash32(field(p, "chain_head")?, "chain_head")?,
            root: hash32(field(p, "chain_root")?, "chain_root")?,
        },
        entry_path: hashes(&p["entry_path"])?,
        chain_path: hashes(&p["chain_path"])?,
    };
    proof
        .verify(&entry, checkpoint)
        .map_err(|e| anyhow::Error::new(Untrusted(e.to_string())))
}

/// Runs the consumer; exit 0 when the feed is drained (or never, with
/// `--follow`), 1 when the feed fails a check, naming what failed.
pub async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    if !(1..=500).contains(&args.limit) {
        bail!("--limit must be from 1 to 500");
    }
    let policy = Policy::from_args(&args)?;
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
    match run(&client, &args, &policy, &key, &mut state).await {
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
    key: &VerifyingKey,
    state: &mut PullState,
) -> anyhow::Result<()> {
    let (mut pages, mut deposits, mut recorded, mut duplicate, mut elsewhere) = (0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let page = client
            .get(&format!("/v1/deposits?after={}&limit={}", state.cursor, args.limit))
            .await?;
        let items = page["deposits"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            if args.follow {
                tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
                continue;
            }
            break;
        }
        let mut verified = std::collections::BTreeMap::new();
        let last = state
            .checkpoint
            .as_ref()
            .map(SavedCheckpoint::to_checkpoint)
            .transpose()?;
        if let Some(l) = &last {
            verified.insert(l.number, l.clone());
        }
        let mut needed: Vec<u64> = items
            .iter()
            .filter_map(|d| d["proof"]["checkpoint"].as_u64())
            .filter(|n| last.as_ref().is_none_or(|l| *n > l.number))
            .collect();
        needed.sort_unstable();
        needed.dedup();
        verify_checkpoints(client, key, last.as_ref(), &needed, &mut verified).await?;
        for d in &items {
            let number = d["number"].as_u64().unwrap_or(0);
            let n = d["proof"]["checkpoint"].as_u64().unwrap_or(0);
            let described = format!(
                "deposit #{number} (entry {}:{}, site {}, event {})",
                d["position"]["chain"], d["position"]["seq"], d["site_id"], d["event_id"]
            );
            let Some(cp) = verified.get(&n) else {
                return Err(Untrusted(format!(
                    "{described}: its checkpoint {n} is older than one already verified"
                ))
                .into());
            };
            verify_deposit(d, cp).with_context(|| described.clone())?;
        }
        // Every deposit of the page verified: decide them (or take the
        // decisions saved before a kill), save, then post.
        let mut decisions = match state.pending.take() {
            Some(p) if p.after == state.cursor => p.decisions,
            _ => std::collections::BTreeMap::new(),
        };
        let mut acks = Vec::with_capacity(items.len());
        for d in &items {
            let number = d["number"].as_u64().unwrap_or(0);
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
            let number = d["number"].as_u64().unwrap_or(0);
            match r["status"].as_str() {
                Some("recorded" | "duplicate") if ack["outcome"] == "rejected" => state.rejected += 1,
                Some("recorded" | "duplicate") => state.accepted += 1,
                Some("conflict") => {
                    println!(
                        "decided elsewhere: deposit #{number} (entry {}:{}, site {}, event {}): {}",
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
                        "deposit #{number} (entry {}:{}): the service refused its acknowledgement: {}",
                        d["position"]["chain"], d["position"]["seq"], r["problem"]
                    ))
                    .into());
                }
            }
        }
        state.pending = None;
        // Saved only after the acknowledgements committed: a crash before
        // this line replays the page, which the service answers as duplicates.
        let last_checkpoint = items
            .last()
            .and_then(|d| d["proof"]["checkpoint"].as_u64())
            .and_then(|n| verified.get(&n));
        state.checkpoint = last_checkpoint.map(SavedCheckpoint::from_checkpoint);
        state.cursor = field(&page, "next_cursor")?.to_owned();
        // The feed numbers deposits 1, 2, 3, … so the last one acknowledged
        // counts them all, however many times a page was replayed.
        state.deposits_acknowledged = items.last().and_then(|d| d["number"].as_u64()).unwrap_or(0);
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
