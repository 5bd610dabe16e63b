//! Building and signing the record: every transcript line but those not
//! passed, each with its ledger evidence (inclusion proof to the latest
//! checkpoint), in one OB3 credential.

use super::{ISSUER_NAME, READ_LIMIT, issuer_key, now_rfc3339};
use crate::AppState;
use crate::problem::{ApiResult, Problem};
use crate::problem_code::ProblemCode;
use crate::transcript::EntryOut;
use crate::transcript::{Page, transcript_page};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use xuefen_core::entry::Entry;
use xuefen_core::ids::{LearnerId, Position};
use xuefen_core::tlog::{self, TileId};
use xuefen_record::record::{self as rec, Issuer, Line, Sealed, Subject};

/// Builds and signs the learner's record: every transcript line but those
/// not passed, each with its evidence, up to the log's latest checkpoint.
pub(crate) async fn build_record(state: &AppState, learner: &LearnerId) -> ApiResult<Value> {
    build_record_with(state, learner, Vec::new()).await
}

/// The record, with the learner's OB3 identity objects in its subject.
pub(super) async fn build_record_with(
    state: &AppState,
    learner: &LearnerId,
    identifier: Vec<Value>,
) -> ApiResult<Value> {
    let transcript = passed_lines(state, learner).await?;
    let (lines, size, note) = with_evidence(state, learner, transcript).await?;
    let key = issuer_key(state);
    let origin = state.checkpoints.origin.clone();
    let log_key = state.checkpoints.key.verifying_key();
    let learner = learner.to_string();
    let id = format!("urn:uuid:{}", uuid_v4());
    let issued_at = now_rfc3339();
    // Canonicalisation is CPU work proportional to the lines.
    tokio::task::spawn_blocking(move || {
        let issuer = Issuer {
            key: &key,
            name: ISSUER_NAME,
            log_origin: &origin,
            log_key,
        };
        let subject = Subject {
            id: &id,
            learner: &learner,
            issued_at: &issued_at,
            identifier: &identifier,
        };
        rec::issue(&issuer, &subject, &lines, note.as_deref().map(|n| (n, size)))
    })
    .await
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::RecordFailed,
            e.to_string(),
        )
    })?
    .map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::RecordFailed,
            e.to_string(),
        )
        .into()
    })
}

/// Every line of the learner's transcript but those not passed, page by page.
async fn passed_lines(state: &AppState, learner: &LearnerId) -> ApiResult<Vec<EntryOut>> {
    let mut lines_out = Vec::new();
    let mut query = format!("limit={READ_LIMIT}");
    loop {
        let page = Page::parse(Some(&query))?;
        let t = transcript_page(state, learner, page).await?;
        lines_out.extend(t.entries);
        match t.next_after {
            Some(after) => query = format!("limit={READ_LIMIT}&after={after}"),
            None => break,
        }
    }
    lines_out.retain(|l| l.status.as_deref() != Some("not_passed"));
    Ok(lines_out)
}

/// Each line with its ledger entry and, when sealed under the log's latest
/// checkpoint, its log index and inclusion proof (from one read of the
/// tiles all the proofs need); with the checkpoint's size and note.
async fn with_evidence(
    state: &AppState,
    learner: &LearnerId,
    lines_out: Vec<EntryOut>,
) -> ApiResult<(Vec<Line>, u64, Option<String>)> {
    let entries = entries_by_position(state, learner).await?;
    let head = state.bank_store().log_head().await?;
    let size = head.as_ref().map_or(0, |h| h.size);
    let indexes = log_indexes(state, &lines_out, size).await?;
    let picked = pick_entries(lines_out, &entries, &indexes, size)?;
    let tiles = proof_tiles(state, &picked, size).await?;
    let lines = sealed_lines(picked, size, &tiles)?;
    Ok((lines, size, head.map(|h| h.note)))
}

/// A transcript line with its ledger entry and, when sealed, its log index.
type Picked = (EntryOut, Entry, Option<u64>);

/// The learner's ledger entries, by position.
async fn entries_by_position(state: &AppState, learner: &LearnerId) -> ApiResult<HashMap<Position, Entry>> {
    Ok(state
        .store
        .learner_entries(learner)
        .await?
        .into_iter()
        .map(|e| (e.position, e))
        .collect())
}

/// The log index of each line, by position (one probe of the log's
/// segments per line); none while the log is empty.
async fn log_indexes(state: &AppState, lines_out: &[EntryOut], size: u64) -> ApiResult<HashMap<Position, u64>> {
    let positions: Vec<Position> = lines_out
        .iter()
        .map(|l| Position {
            chain: l.position.chain,
            seq: l.position.seq,
        })
        .collect();
    Ok(if size > 0 {
        state.log_index_store().log_indexes(&positions).await?
    } else {
        HashMap::new()
    })
}

/// Each line with its entry and its log index when under the checkpoint;
/// a line without an entry is a corrupt store.
fn pick_entries(
    lines_out: Vec<EntryOut>,
    entries: &HashMap<Position, Entry>,
    indexes: &HashMap<Position, u64>,
    size: u64,
) -> ApiResult<Vec<Picked>> {
    // Only indexes under the checkpoint are sealed.
    let index_of = |p: Position| indexes.get(&p).copied().filter(|i| *i < size);
    let mut picked = Vec::new();
    for l in lines_out {
        let p = Position {
            chain: l.position.chain,
            seq: l.position.seq,
        };
        let Some(entry) = entries.get(&p) else {
            return Err(xuefen_store::StoreError::Corrupt {
                at: p.to_string(),
                detail: "a transcript line has no entry".into(),
            }
            .into());
        };
        picked.push((l, entry.clone(), index_of(p)));
    }
    Ok(picked)
}

/// The log tiles that the inclusion proofs of the sealed lines need, in one read.
async fn proof_tiles(state: &AppState, picked: &[Picked], size: u64) -> ApiResult<tlog::Tiles> {
    let ids: BTreeSet<TileId> = picked
        .iter()
        .filter_map(|(_, _, i)| *i)
        .flat_map(|i| tlog::inclusion_tiles(i, size).into_iter().map(|(t, _)| t))
        .collect();
    Ok(if ids.is_empty() {
        tlog::Tiles::new()
    } else {
        state
            .bank_store()
            .log_tiles(&ids.into_iter().collect::<Vec<_>>())
            .await?
    })
}

/// The record's lines, each sealed one with its inclusion proof.
fn sealed_lines(picked: Vec<Picked>, size: u64, tiles: &tlog::Tiles) -> ApiResult<Vec<Line>> {
    let mut lines = Vec::with_capacity(picked.len());
    for (out, entry, index) in picked {
        let sealed = match index {
            Some(index) => Some(Sealed {
                index,
                proof: tlog::inclusion_proof(index, size, tiles).map_err(|e| xuefen_store::StoreError::Corrupt {
                    at: format!("log index {index}"),
                    detail: e.to_string(),
                })?,
            }),
            None => None,
        };
        lines.push(Line {
            entry,
            status: out.status.unwrap_or_default(),
            course_title: out.course_title,
            site_name: out.site_name,
            sealed,
        });
    }
    Ok(lines)
}

pub(super) fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
