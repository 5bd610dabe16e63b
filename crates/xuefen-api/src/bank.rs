//! The credit bank's side of the API: the deposit feed with proofs,
//! acknowledgements, the log's checkpoint and tiles (C2SP tlog-tiles), and
//! the background sealer.
//!
//! Only entries sealed into the log are served, in log order; a cursor is a
//! log index, so the same cursor always returns the same deposits and an
//! entry committed later can never appear before a cursor already handed out.

use crate::problem_code::ProblemCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::bank::{Cursor, Decision};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_core::tlog;
use xuefen_store::bank::{AckOutcome, AckRequest, CheckpointLimits, DepositRecord, deposit_page_at, make_checkpoint};
use xuefen_store::witness::served_head;
use xuefen_store::{Principal, Store};

use crate::AppState;
use crate::auth::{Caller, mint};
use crate::body::ApiJson;
use crate::keys::KeyOut;
use crate::problem::PositionOut;
use crate::problem::{ApiError, ApiResult, Problem};

/// Deposits per page when the caller does not say.
pub const PAGE_DEPOSITS_DEFAULT: u32 = 100;
/// Most deposits per page.
pub const PAGE_DEPOSITS_MAX: u32 = 500;

/// The log's origin when the settings name none.
pub const DEFAULT_ORIGIN: &str = "xuefen.invalid/ledger";

/// How checkpoints are made and signed.
#[derive(Clone)]
pub struct CheckpointSettings {
    pub key: Arc<SigningKey>,
    /// The log's origin: the first line of its checkpoints and the name of its key.
    pub origin: String,
    /// How often the checkpointer looks for moved chain heads.
    pub interval: Duration,
    pub limits: CheckpointLimits,
    /// Witnesses are configured: `GET /checkpoint` and the deposit feed
    /// serve the latest checkpoint a witness cosigned, with its cosignatures.
    pub witnessed: bool,
}

impl std::fmt::Debug for CheckpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSettings")
            .field("public_key", &hex::encode(self.key.verifying_key().as_bytes()))
            .field("origin", &self.origin)
            .field("interval", &self.interval)
            .field("limits", &self.limits)
            .field("witnessed", &self.witnessed)
            .finish()
    }
}

impl CheckpointSettings {
    /// Settings with a key that lives only as long as the process (tests,
    /// trials); a service keeps its key (see the binary's settings).
    pub fn ephemeral() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
        Self {
            key: Arc::new(SigningKey::from_bytes(&secret)),
            origin: DEFAULT_ORIGIN.into(),
            interval: Duration::from_millis(1_000),
            limits: CheckpointLimits::default(),
            witnessed: false,
        }
    }
}

/// The route `routes!` cannot declare: a tile path is an axum wildcard
/// (`{*path}`), spelled `{path}` in the annotation. The bank's other
/// endpoints are in `routes.rs`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/tile/{*path}", get(get_tile))
}

/// The checkpointer running in the background of a server.
pub struct Checkpointer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts [`run_checkpointer`] over the state's store and settings.
    pub fn start(state: &AppState) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_checkpointer(
            state.store.clone(),
            state.checkpoints.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop, task }
    }

    /// Stops it after the checkpoint in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "checkpointer task ended abnormally");
        }
    }
}

/// Runs the checkpointer until `stop` resolves: every `interval`, a new
/// signed checkpoint if any chain head moved. Errors are logged and retried
/// on the next tick; a ledger that fails verification is never sealed.
pub async fn run_checkpointer(store: Arc<dyn Store>, settings: CheckpointSettings, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
        match make_checkpoint(&*store, &settings.key, &settings.origin, now, settings.limits).await {
            Ok(Some(size)) => tracing::debug!(log.size = size, "entries sealed, checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
    }
}

// ------------------------------------------------------------------ wire types

/// The proof that a deposit's entry is in the log under the page's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProofOut {
    /// The size of the log under the page's checkpoint.
    pub tree_size: u64,
    /// RFC 9162 inclusion path of the leaf `SHA-256(0x00 ‖ entry hash)` at
    /// `log_index` in the tree of `tree_size` leaves, leaf side first (hex).
    pub inclusion: Vec<String>,
}

/// A deposit: an entry that pays credits (awarded, capped, promoted), or
/// the reversal of one, handed to the credit bank.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositOut {
    /// The cursor that resumes the feed after this deposit.
    pub cursor: String,
    /// Its index in the log.
    pub log_index: u64,
    /// `awarded`, `capped`, `promoted` (an entry that pays credits) or
    /// `reversal` (of one).
    pub kind: String,
    /// The credit bank's own pseudonym of the learner (`psn_…`): the one
    /// `POST /v1/learners` answers it for the holder's real-name data.
    pub learner_id: String,
    pub site_id: String,
    pub event_id: String,
    pub course: String,
    pub category: String,
    /// The recognition group the entry was credited under, if any.
    pub recognition_group: Option<String>,
    #[schema(value_type = String)]
    pub credits: String,
    pub rule_version: u32,
    pub completed_at: String,
    pub recorded_at: String,
    /// For a reversal: the deposit it cancels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<PositionOut>,
    /// Ledger position of the entry.
    pub position: PositionOut,
    /// The entry's hash, its predecessor's hash and its canonical bytes (hex),
    /// so that the hash can be recomputed (docs/ledger-format.md, section 4).
    pub entry_hash: String,
    pub prev_hash: String,
    pub entry_bytes: String,
    pub proof: ProofOut,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositPageOut {
    pub deposits: Vec<DepositOut>,
    /// Pass as `after` for the next page.
    pub next_cursor: String,
    /// The signed checkpoint (C2SP signed note) every proof of the page
    /// leads to, with the witnesses' cosignature lines (C2SP
    /// tlog-cosignature) the service holds of it appended; absent before
    /// anything is sealed. With witnesses configured it is the latest
    /// checkpoint a witness cosigned, so the page holds only entries below
    /// that size.
    pub checkpoint: Option<String>,
    /// The log size that checkpoint names.
    pub tree_size: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicKeyOut {
    /// `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// The log's origin, the first line of every checkpoint.
    pub origin: String,
    /// The C2SP signed-note verifier key: `origin+keyid+base64(0x01 ‖ key)`.
    pub verifier_key: String,
}

/// The bank's decision on one deposit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// For a rejection: `[a-z0-9_]`, 1 to 32 bytes.
    pub reason_code: Option<String>,
    /// For a rejection: free text.
    pub reason: Option<String>,
}

impl DecisionIn {
    fn parse(&self) -> Result<Decision, FieldError> {
        match self.outcome.as_str() {
            "accepted" if self.reason_code.is_none() => Ok(Decision::Accepted),
            "accepted" => Err(FieldError::new("reason_code", "is only for a rejection")),
            "rejected" => {
                let code = self
                    .reason_code
                    .as_deref()
                    .ok_or_else(|| FieldError::new("reason_code", "is required for a rejection"))?;
                Decision::rejected(code, self.reason.as_deref().unwrap_or(""))
            }
            _ => Err(FieldError::new("outcome", "must be `accepted` or `rejected`")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckIn {
    /// The deposit's ledger position.
    pub deposit: PositionOut,
    /// `accepted` or `rejected`.
    pub outcome: String,
    /// For a rejection: `[a-z0-9_]`, 1 to 32 bytes.
    pub reason_code: Option<String>,
    /// For a rejection: free text.
    pub reason: Option<String>,
}

impl AckIn {
    fn decision(&self) -> DecisionIn {
        DecisionIn {
            outcome: self.outcome.clone(),
            reason_code: self.reason_code.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcksIn {
    pub acks: Vec<AckIn>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AckResult {
    pub deposit: PositionOut,
    /// `recorded`, `duplicate`, `conflict` or `rejected`.
    pub status: String,
    /// The acknowledgement's own ledger entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcksOut {
    pub recorded: usize,
    pub duplicate: usize,
    pub conflict: usize,
    pub rejected: usize,
    /// One result per acknowledgement, in the order posted.
    pub results: Vec<AckResult>,
}

fn hexes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

fn deposit_out(r: &DepositRecord, size: u64, path: &[[u8; 32]]) -> DepositOut {
    let e = &r.entry;
    let b = &e.body;
    DepositOut {
        cursor: Cursor(r.index + 1).encode(),
        log_index: r.index,
        kind: b.kind.as_str().to_owned(),
        learner_id: b.learner.to_string(),
        site_id: b.site.to_string(),
        event_id: b.event_id.to_string(),
        course: b.course.to_string(),
        category: b.category.to_string(),
        recognition_group: b.recognition_group.as_ref().map(ToString::to_string),
        credits: b.credits.to_string(),
        rule_version: b.rule_version,
        completed_at: b.occurred_at.to_rfc3339(),
        recorded_at: b.recorded_at.to_rfc3339(),
        reverses: b.refers_to.map(Into::into),
        position: e.position.into(),
        entry_hash: hex::encode(e.hash),
        prev_hash: hex::encode(e.prev_hash),
        entry_bytes: hex::encode(b.encode()),
        proof: ProofOut {
            tree_size: size,
            inclusion: hexes(path),
        },
    }
}

// ------------------------------------------------------------------ handlers

/// Creates a key for the credit bank (shown once). Admin only.
#[utoipa::path(post, path = "/v1/bank/keys", operation_id = "create_bank_key", tag = "bank",
    security(("api_key" = [])),
    responses((status = 201, body = KeyOut), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_bank_key(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_admin()?;
    let (key, secret) = mint(Principal::Bank);
    state.store.create_key(&key).await?;
    tracing::info!(key.id = %key.id, "credit bank key created");
    Ok((StatusCode::CREATED, Json(KeyOut { key_id: key.id, secret })).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// A cursor from an earlier page (`next_cursor` or a deposit's `cursor`); the start when absent.
    pub after: Option<String>,
    /// Deposits per page, 1 to 500 (default 100).
    pub limit: Option<String>,
}

/// The next page of deposits after a cursor, each with its proof. The same
/// cursor always returns the same page; any past cursor replays. Credit bank only.
#[utoipa::path(get, path = "/v1/deposits", operation_id = "list_deposits", tag = "bank",
    security(("api_key" = [])), params(PageQuery),
    responses((status = 200, body = DepositPageOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_deposits(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<DepositPageOut>> {
    caller.require_bank()?;
    let after = match query.after.as_deref() {
        None | Some("") => Cursor(0),
        Some(c) => Cursor::parse(c)?,
    };
    let limit = match query.limit.as_deref() {
        None => PAGE_DEPOSITS_DEFAULT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=PAGE_DEPOSITS_MAX).contains(n))
            .ok_or_else(|| FieldError::new("limit", format!("must be an integer from 1 to {PAGE_DEPOSITS_MAX}")))?,
    };
    let head = served_head(&*state.store, state.checkpoints.witnessed).await?;
    let page = deposit_page_at(&*state.store, head, after.0, limit).await?;
    state.metrics.deposits_served(page.next);
    let size = page.head.as_ref().map_or(0, |h| h.size);
    // The bank knows each learner by its own pseudonym: the one
    // `POST /v1/learners` gives it for a holder's real-name data.
    let shown = crate::pseudonyms::Shown::new(
        &state,
        &caller.principal,
        page.deposits.iter().map(|(r, _)| &r.entry.body.learner),
    )
    .await?;
    Ok(Json(DepositPageOut {
        deposits: page
            .deposits
            .iter()
            .map(|(r, p)| {
                let mut d = deposit_out(r, size, p);
                d.learner_id = shown.id(&r.entry.body.learner);
                d
            })
            .collect(),
        next_cursor: Cursor(page.next).encode(),
        checkpoint: page.head.map(|h| h.note),
        tree_size: size,
    }))
}

fn ack_result(deposit: Position, outcome: &AckOutcome) -> AckResult {
    let base = |status: &str, position: Option<Position>, problem: Option<Problem>| AckResult {
        deposit: deposit.into(),
        status: status.to_owned(),
        position: position.map(Into::into),
        problem,
    };
    match outcome {
        AckOutcome::Recorded { position } => base("recorded", Some(*position), None),
        AckOutcome::Duplicate { position } => base("duplicate", Some(*position), None),
        AckOutcome::Conflict { field, position } => {
            let mut p = Problem::new(
                StatusCode::CONFLICT,
                ProblemCode::AckExistsWithDifferent(field),
                format!("deposit {deposit} was already acknowledged (entry {position}) with a different `{field}`"),
            )
            .with_field(*field);
            p.position = Some((*position).into());
            base("conflict", Some(*position), Some(p))
        }
        AckOutcome::UnknownDeposit => base(
            "rejected",
            None,
            Some(
                Problem::new(
                    StatusCode::NOT_FOUND,
                    ProblemCode::UnknownDeposit,
                    format!("no deposit under a checkpoint is at {deposit}"),
                )
                .with_field("deposit"),
            ),
        ),
    }
}

/// Records the bank's decisions on deposits, each as a ledger entry in the
/// learner's chain. Idempotent: the same decision again is a `duplicate`;
/// another decision on the same deposit is a `conflict` naming the field.
/// Credit bank only.
#[utoipa::path(post, path = "/v1/deposits/acks", operation_id = "post_deposit_acks", tag = "bank",
    security(("api_key" = [])), request_body = AcksIn,
    responses((status = 200, body = AcksOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn post_acks(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<AcksIn>,
) -> ApiResult<Json<AcksOut>> {
    caller.require_bank()?;
    let limit = state.limits.batch_events_max;
    if input.acks.is_empty() || input.acks.len() > limit {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::BatchLength,
            format!(
                "the batch has {} acknowledgements; 1 to {limit} are allowed",
                input.acks.len()
            ),
        )
        .with_field("acks")
        .into());
    }
    let mut requests = Vec::with_capacity(input.acks.len());
    for (i, a) in input.acks.iter().enumerate() {
        let decision = a
            .decision()
            .parse()
            .map_err(|e| ApiError::from(Problem::invalid(&e).with_field(format!("acks/{i}/{}", e.field))))?;
        requests.push(AckRequest {
            deposit: Position {
                chain: a.deposit.chain,
                seq: a.deposit.seq,
            },
            decision,
        });
    }
    let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
    let outcomes = state.store.ack_deposits(&requests, now).await?;
    let results: Vec<AckResult> = requests
        .iter()
        .zip(&outcomes)
        .map(|(r, o)| ack_result(r.deposit, o))
        .collect();
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    Ok(Json(AcksOut {
        recorded: count("recorded"),
        duplicate: count("duplicate"),
        conflict: count("conflict"),
        rejected: count("rejected"),
        results,
    }))
}

/// Records the bank's decision on one deposit: 201 when recorded, 200 when
/// the same decision was already recorded, 409 naming the field when another
/// was. Credit bank only.
#[utoipa::path(put, path = "/v1/deposits/{chain}/{seq}/ack", operation_id = "put_deposit_ack", tag = "bank",
    security(("api_key" = [])), params(("chain" = u32, Path), ("seq" = u64, Path)), request_body = DecisionIn,
    responses((status = 201, body = AckResult), (status = 200, body = AckResult),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_ack(
    State(state): State<AppState>,
    caller: Caller,
    Path((chain, seq)): Path<(String, String)>,
    ApiJson(input): ApiJson<DecisionIn>,
) -> ApiResult<Response> {
    caller.require_bank()?;
    let chain: u32 = chain
        .parse()
        .map_err(|_| FieldError::new("chain", "must be a chain number"))?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| FieldError::new("seq", "must be a sequence number"))?;
    let request = AckRequest {
        deposit: Position { chain, seq },
        decision: input.parse()?,
    };
    let now = Millis::from_datetime(time::OffsetDateTime::now_utc());
    let outcome = state
        .store
        .ack_deposits(std::slice::from_ref(&request), now)
        .await?
        .into_iter()
        .next()
        .unwrap_or(AckOutcome::UnknownDeposit);
    let mut result = ack_result(request.deposit, &outcome);
    Ok(match (&outcome, result.problem.take()) {
        (AckOutcome::Recorded { .. }, _) => (StatusCode::CREATED, Json(result)).into_response(),
        (AckOutcome::Duplicate { .. }, _) => (StatusCode::OK, Json(result)).into_response(),
        (_, Some(problem)) => problem.into_response(),
        (_, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    })
}

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
const TILE_CACHE: &str = "public, max-age=31536000, immutable";

fn not_found(code: ProblemCode, detail: &str) -> Response {
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
    let size = state.store.log_head().await?.map_or(0, |h| h.size);
    let have = tlog::tile_width(id, size);
    // A tile is served at any width the log has reached: a partial tile is
    // a prefix of what the tile becomes.
    if have < width {
        return Ok(not_found(ProblemCode::NoTile, "the log has no such tile yet"));
    }
    let tiles = state.store.log_tiles(&[id]).await?;
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
