//! The service's side of C2SP `tlog-witness`: on a cadence of its own
//! (`witness_interval_seconds`, not the sealing interval) it sends the log's
//! latest checkpoint to each configured witness (`witnesses`) with a
//! consistency proof from the size that witness last cosigned, computed from
//! the tiles, and keeps the cosignature each returns once it verifies under
//! that witness's key (`log_cosignatures`).
//!
//! The size a witness last cosigned is read from the cosignatures kept (0
//! for a new witness); when the witness answers 409 with another size, the
//! request is made once more from that size. A witness that has seen a
//! larger log than this one (a log rolled back) or refuses the proof (a log
//! forked) is logged and never counted: its cosignature is simply missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use xuefen_core::tlog;
use xuefen_core::witness::{self, AddCheckpoint, Cosigner};
use xuefen_store::Store;
use xuefen_store::bank::LogHead;

/// A configured witness: who it is and where its `add-checkpoint` is.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub cosigner: Cosigner,
    /// The submission prefix (`…/add-checkpoint` is appended).
    pub url: String,
}

/// Parses the `witnesses` setting: comma-separated `NAME=KEY@URL`, KEY the
/// witness's hex Ed25519 public key or its verifier key.
pub(crate) fn parse_targets(setting: &str) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for spec in setting.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (who, url) = spec
            .split_once('@')
            .ok_or_else(|| format!("`{spec}` is not NAME=KEY@URL"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("the URL of `{spec}` must start with http:// or https://"));
        }
        let cosigner = Cosigner::parse(who)?;
        if out.iter().any(|t| t.cosigner.name == cosigner.name) {
            return Err(format!("the witness `{}` is named twice", cosigner.name));
        }
        out.push(Target {
            cosigner,
            url: url.trim_end_matches('/').to_owned(),
        });
    }
    Ok(out)
}

/// What one `add-checkpoint` call returned.
enum Answer {
    Cosigned(String),
    /// 409: the size the witness last cosigned.
    Conflict(u64),
}

async fn submit(http: &reqwest::Client, target: &Target, req: &AddCheckpoint) -> anyhow::Result<Answer> {
    let resp = http
        .post(format!("{}/add-checkpoint", target.url))
        .timeout(Duration::from_secs(30))
        .body(req.body())
        .send()
        .await
        .context("request failed")?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        200 => Ok(Answer::Cosigned(body)),
        409 => body
            .trim_end_matches('\n')
            .parse()
            .map(Answer::Conflict)
            .map_err(|_| anyhow!("409 without a size: {body:?}")),
        _ => bail!("{status}: {}", body.trim()),
    }
}

async fn proof(store: &dyn Store, old: u64, size: u64) -> anyhow::Result<Vec<[u8; 32]>> {
    if old == 0 || old >= size {
        return Ok(Vec::new());
    }
    let ids: Vec<tlog::TileId> = tlog::consistency_tiles(old, size).into_iter().map(|(t, _)| t).collect();
    let tiles = store.log_tiles(&ids).await?;
    tlog::consistency_proof(old, size, &tiles).map_err(|e| anyhow!("consistency proof {old} → {size}: {e}"))
}

/// Sends `head` to `target` and keeps its cosignature; the size the
/// witness holds afterwards.
async fn witness_one(
    http: &reqwest::Client,
    store: &dyn Store,
    target: &Target,
    head: &LogHead,
    known: u64,
) -> anyhow::Result<u64> {
    let (text, _) = witness::split_note(&head.note).ok_or_else(|| anyhow!("the stored checkpoint is not a note"))?;
    let mut old = known;
    for _ in 0..2 {
        if old > head.size {
            bail!(
                "the witness has cosigned a log of {old} entries, larger than this one of {} (rolled back?)",
                head.size
            );
        }
        let req = AddCheckpoint {
            old_size: old,
            proof: proof(store, old, head.size).await?,
            note: head.note.clone(),
        };
        match submit(http, target, &req).await? {
            Answer::Conflict(size) if size != old => old = size,
            Answer::Conflict(size) => bail!("the witness answered 409 with the size {size} it was sent"),
            Answer::Cosigned(lines) => {
                let found = witness::cosignatures(lines.lines(), std::slice::from_ref(&target.cosigner), &text);
                let Some(c) = found.into_iter().next() else {
                    bail!("the witness answered no cosignature that verifies under its key");
                };
                store.put_cosignature(head.size, &c).await?;
                return Ok(head.size);
            }
        }
    }
    bail!("the witness kept answering 409")
}

/// Runs until `stop` resolves: every `interval`, the latest checkpoint to
/// every witness that has not cosigned it yet.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    targets: Vec<Target>,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let http = reqwest::Client::new();
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let head = match store.log_head().await {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "witnessing: cannot read the latest checkpoint");
                continue;
            }
        };
        for t in &targets {
            let name = &t.cosigner.name;
            let have = match known.get(name) {
                Some(s) => *s,
                None => match store.cosigned_by(name).await {
                    Ok(s) => s.unwrap_or(0),
                    Err(e) => {
                        tracing::error!(error = %e, "witnessing: cannot read cosignatures");
                        continue;
                    }
                },
            };
            if have == head.size {
                continue;
            }
            match witness_one(&http, &*store, t, &head, have).await {
                Ok(size) => {
                    tracing::info!(witness = %name, log.size = size, "checkpoint cosigned");
                    known.insert(name.clone(), size);
                }
                Err(e) => {
                    // Forget what we knew: the next round asks from the stored size.
                    known.remove(name);
                    tracing::warn!(witness = %name, log.size = head.size, error = %format!("{e:#}"), "witness did not cosign");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_witnesses_setting_parses_and_bad_entries_are_named() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        let hex_key = hex::encode(key.as_bytes());
        let targets = parse_targets(&format!(
            "a.example/w={hex_key}@http://127.0.0.1:8090/, b.example/w={hex_key}@https://w.example"
        ))
        .expect("valid");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].url, "http://127.0.0.1:8090");
        assert_eq!(targets[1].cosigner.name, "b.example/w");
        assert!(parse_targets("").expect("empty").is_empty());
        for bad in [
            format!("a={hex_key}"),
            format!("a={hex_key}@ftp://x"),
            "a=00@http://x".to_owned(),
            format!("a={hex_key}@http://x,a={hex_key}@http://y"),
        ] {
            assert!(parse_targets(&bad).is_err(), "{bad}");
        }
    }
}
