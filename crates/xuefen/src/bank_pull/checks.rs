//! What the consumer checks before it trusts a page: the checkpoint under the
//! pinned key (and consistent with the one verified before, through the log's
//! tiles), and each deposit (its bytes, its fields, its inclusion proof).

use std::time::Duration;

use anyhow::{Context, anyhow};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use xuefen_core::entry::{EntryBody, entry_hash};
use xuefen_core::ids::Position;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint, Tiles};

use super::{Client, Untrusted, hash32};

pub(super) fn field<'a>(v: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    v[name].as_str().ok_or_else(|| anyhow!("`{name}` is missing"))
}

pub(super) fn hashes(v: &Value) -> anyhow::Result<Vec<[u8; 32]>> {
    v.as_array()
        .ok_or_else(|| anyhow!("a path is not an array"))?
        .iter()
        .map(|h| hash32(h.as_str().unwrap_or_default(), "path hash"))
        .collect()
}

/// Fetches the tiles `ids` of the log (untrusted: whatever they hold, a
/// proof computed from them either verifies against the signed roots or
/// the log is refused).
pub(super) async fn fetch_tiles(client: &Client, ids: &[(tlog::TileId, u64)]) -> anyhow::Result<Tiles> {
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
pub(super) async fn verify_checkpoint(
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
pub(super) fn verify_deposit(d: &Value, checkpoint: &LogCheckpoint) -> anyhow::Result<()> {
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
