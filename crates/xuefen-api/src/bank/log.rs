//! The log's public face (C2SP tlog-tiles): the checkpoint signing key, the
//! latest checkpoint as a signed note, and the immutable tiles, which anyone
//! may fetch to check inclusion and consistency proofs.

use super::wire::PublicKeyOut;
use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use xuefen_core::tlog;
use xuefen_store::witness::served_head;

/// The Ed25519 public key that verifies checkpoint signatures, the log's
/// origin and its C2SP verifier key.
#[utoipa::path(get, path = "/v1/checkpoints/public-key", operation_id = "get_checkpoint_public_key", tag = "bank",
    security(("api_key" = [])), responses((status = 200, body = PublicKeyOut)))]
pub async fn get_public_key(State(state): State<AppState>, _caller: Caller) -> Json<PublicKeyOut> {
    let key = state.checkpoints.key.verifying_key();
    Json(PublicKeyOut {
        algorithm: "Ed25519".into(),
        public_key: hex::encode(key.as_bytes()),
        origin: state.checkpoints.origin.clone(),
        verifier_key: tlog::verifier_key(&state.checkpoints.origin, &key),
    })
}

/// Cache lifetime of a tile: any tile of a given width never changes.
pub(super) const TILE_CACHE: &str = "public, max-age=31536000, immutable";

pub(super) fn not_found(code: ProblemCode, detail: &str) -> Response {
    Problem::new(StatusCode::NOT_FOUND, code, detail.to_owned()).into_response()
}

/// The log's latest checkpoint, a C2SP signed note (`text/plain`), as
/// `tlog-tiles` names it, with the witnesses' cosignature lines the service
/// holds of it appended (C2SP tlog-cosignature). With witnesses configured
/// it is the latest checkpoint a witness cosigned (404 until one did).
/// Public: it holds only the log's size and root.
#[utoipa::path(get, path = "/checkpoint", operation_id = "get_log_checkpoint", tag = "log",
    responses((status = 200, body = String, content_type = "text/plain; charset=utf-8"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_log_checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(match served_head(&*state.store, state.checkpoints.witnessed).await? {
        Some(head) => (
            StatusCode::OK,
            [
                (axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (axum::http::header::CACHE_CONTROL, "no-cache"),
            ],
            head.note,
        )
            .into_response(),
        None => not_found(ProblemCode::NoCheckpoint, "no checkpoint yet: nothing is sealed"),
    })
}

/// A tile of the log's Merkle tree, `tile/<L>/<N>[.p/<W>]` as `tlog-tiles`
/// names it: the hashes, 32 bytes each. A full tile and a partial tile of a
/// given width never change, so both are served as immutable. Public: tiles
/// hold only hashes.
#[utoipa::path(get, path = "/tile/{path}", operation_id = "get_log_tile", tag = "log",
    params(("path" = String, Path, description = "`<L>/<N>` or `<L>/<N>.p/<W>`, N in groups of three digits, `x`-prefixed but the last")),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_tile(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let Some((id, width)) = tlog::parse_tile_path(&path) else {
        return Ok(not_found(ProblemCode::NoTile, "not a tile path (tile/<L>/<N>[.p/<W>])"));
    };
    let size = state.bank_store().log_head().await?.map_or(0, |h| h.size);
    let have = tlog::tile_width(id, size);
    // A tile is served at any width the log has reached: a partial tile is
    // a prefix of what the tile becomes.
    if have < width {
        return Ok(not_found(ProblemCode::NoTile, "the log has no such tile yet"));
    }
    let tiles = state.bank_store().log_tiles(&[id]).await?;
    let Some(hashes) = tiles.get(&id).filter(|h| h.len() as u64 >= width) else {
        return Ok(not_found(ProblemCode::NoTile, "the log has no such tile yet"));
    };
    Ok((
        StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream"),
            (axum::http::header::CACHE_CONTROL, TILE_CACHE),
        ],
        tlog::tile_bytes(&hashes[..width as usize]),
    )
        .into_response())
}
