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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use xuefen_core::tlog::LogCheckpoint;

mod checks;
mod client;
mod policy;
mod quorum;
mod state;

use self::checks::*;
use self::client::*;
use self::policy::*;
use self::quorum::*;
use self::state::*;

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

/// Why the consumer stopped without finishing: the feed failed a check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Untrusted(String);

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

/// Pulls, verifies and acknowledges pages until the feed is drained (or
/// forever, with `--follow`), saving the state after each page.
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
        let verified = page_checkpoint(client, key, quorum, &page, state).await?;
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
        verify_page(&items, &cp)?;
        let counts = acknowledge_page(client, args, policy, &items, state).await?;
        recorded += counts.recorded;
        duplicate += counts.duplicate;
        elsewhere += counts.elsewhere;
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

/// The checkpoint a page carries, verified against the pinned key and the
/// last verified checkpoint (and the witnesses' quorum, if any). A page
/// without one is refused once a checkpoint was verified: the log was
/// rolled back.
async fn page_checkpoint(
    client: &Client,
    key: &VerifyingKey,
    quorum: Option<&Quorum>,
    page: &Value,
    state: &PullState,
) -> anyhow::Result<Option<LogCheckpoint>> {
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
    Ok(verified)
}

/// Verifies every deposit of a page against its checkpoint, naming the
/// first that fails.
fn verify_page(items: &[Value], cp: &LogCheckpoint) -> anyhow::Result<()> {
    for d in items {
        let number = d["log_index"].as_u64().unwrap_or(0);
        let described = format!(
            "deposit at log index {number} (entry {}:{}, site {}, event {})",
            d["position"]["chain"], d["position"]["seq"], d["site_id"], d["event_id"]
        );
        verify_deposit(d, cp).with_context(|| described.clone())?;
    }
    Ok(())
}

/// What the service answered to the acknowledgements of one page.
struct PageCounts {
    recorded: u64,
    duplicate: u64,
    elsewhere: u64,
}

/// Acknowledges a page whose deposits all verified: decides them (or takes
/// the decisions saved before a kill), saves the decisions as pending, posts
/// them and files the service's answers into the state.
async fn acknowledge_page(
    client: &Client,
    args: &PullArgs,
    policy: &Policy,
    items: &[Value],
    state: &mut PullState,
) -> anyhow::Result<PageCounts> {
    // Every deposit of the page verified: decide them (or take the
    // decisions saved before a kill), save, then post.
    let (decisions, acks) = decide_page(policy, items, state).await?;
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
    let recorded = out["recorded"].as_u64().unwrap_or(0);
    let duplicate = out["duplicate"].as_u64().unwrap_or(0);
    let elsewhere = file_results(items, &acks, &results, &decisions, state)?;
    state.pending = None;
    Ok(PageCounts {
        recorded,
        duplicate,
        elsewhere,
    })
}

/// The decisions of a page whose deposits all verified: those saved before
/// a kill (same cursor), else the policy's; with the acknowledgements to post.
async fn decide_page(
    policy: &Policy,
    items: &[Value],
    state: &mut PullState,
) -> anyhow::Result<(std::collections::BTreeMap<u64, Value>, Vec<Value>)> {
    let mut decisions = match state.pending.take() {
        Some(p) if p.after == state.cursor => p.decisions,
        _ => std::collections::BTreeMap::new(),
    };
    let mut acks = Vec::with_capacity(items.len());
    for d in items {
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
    Ok((decisions, acks))
}

/// Files the service's answer to each acknowledgement of a page into the
/// state; returns how many deposits were decided elsewhere. A refusal of a
/// verified deposit stops the consumer: the feed contradicts itself.
fn file_results(
    items: &[Value],
    acks: &[Value],
    results: &[Value],
    decisions: &std::collections::BTreeMap<u64, Value>,
    state: &mut PullState,
) -> Result<u64, Untrusted> {
    let mut elsewhere = 0;
    for ((d, ack), r) in items.iter().zip(acks).zip(results) {
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
                )));
            }
        }
    }
    Ok(elsewhere)
}
