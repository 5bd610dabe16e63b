//! The credit bank's side of the API: the deposit feed with proofs,
//! acknowledgements, signed checkpoints, and the background checkpointer.
//!
//! Only entries under a signed checkpoint are served, in the order the
//! checkpoints first covered them; a cursor is a deposit number, so the same
//! cursor always returns the same page and a deposit committed later can
//! never appear before a cursor already handed out.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::bank::{Checkpoint, Cursor, Decision, DepositProof};
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_store::bank::{
    AckOutcome, AckRequest, CheckpointLimits, DepositRecord, StoredCheckpoint, consistency_proofs, deposit_page,
    make_checkpoint,
};
use xuefen_store::{Principal, Store};

use crate::AppState;
use crate::auth::{Caller, mint};
use crate::body::ApiJson;
use crate::dto::{KeyOut, PositionOut};
use crate::problem::{ApiError, ApiResult, Problem};

/// Deposits per page when the caller does not say.
pub const PAGE_DEPOSITS_DEFAULT: u32 = 100;
/// Most deposits per page.
pub const PAGE_DEPOSITS_MAX: u32 = 500;

/// How checkpoints are made and signed.
#[derive(Clone)]
pub struct CheckpointSettings {
    pub key: Arc<SigningKey>,
    /// How often the checkpointer looks for moved chain heads.
    pub interval: Duration,
    pub limits: CheckpointLimits,
}

impl std::fmt::Debug for CheckpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSettings")
            .field("public_key", &hex::encode(self.key.verifying_key().as_bytes()))
            .field("interval", &self.interval)
            .field("limits", &self.limits)
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
            interval: Duration::from_millis(1_000),
            limits: CheckpointLimits::default(),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bank/keys", post(create_bank_key))
        .route("/v1/deposits", get(list_deposits))
        .route("/v1/deposits/acks", post(post_acks))
        .route("/v1/deposits/{chain}/{seq}/ack", put(put_ack))
        .route("/v1/checkpoints/public-key", get(get_public_key))
        .route("/v1/checkpoints/latest", get(get_latest_checkpoint))
        .route("/v1/checkpoints/{number}", get(get_checkpoint))
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
        match make_checkpoint(&*store, &settings.key, now, settings.limits).await {
            Ok(Some(number)) => tracing::debug!(checkpoint.number = number, "checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
    }
}

// ------------------------------------------------------------------ wire types

/// The proof that a deposit's entry is in the ledger under a signed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProofOut {
    /// The checkpoint the proof leads to.
    pub checkpoint: u64,
    /// The entry's chain as the checkpoint binds it: size, head hash and Merkle root (hex).
    pub chain_size: u64,
    pub chain_head: String,
    pub chain_root: String,
    /// Inclusion path of the entry's leaf (index `seq - 1`) in its chain's tree, leaf side first (hex).
    pub entry_path: Vec<String>,
    /// Inclusion path of the chain's leaf in the checkpoint's tree of chains (hex).
    pub chain_path: Vec<String>,
}

/// A deposit: an award, or the reversal of an award, handed to the credit bank.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositOut {
    /// The cursor that resumes the feed after this deposit.
    pub cursor: String,
    /// Its place in the feed.
    pub number: u64,
    /// `awarded`, `capped`, `promoted` (an entry that pays credits) or
    /// `reversal` (of one).
    pub kind: String,
    pub learner_id: String,
    /// The learner's keyed real-name hash (HMAC-SHA256 of the identity document, hex).
    pub learner_real_name_hash: Option<String>,
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
    /// Pass as `after` for the next page; the same as `after` when the page is empty.
    pub next_cursor: String,
    /// The checkpoints the proofs lead to (fetch each from `/v1/checkpoints/{number}`).
    pub checkpoints: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainOut {
    pub chain: u32,
    pub size: u64,
    pub head: String,
    pub root: String,
}

/// A signed checkpoint (docs/ledger-format.md, section 8).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointOut {
    pub number: u64,
    pub created_at: String,
    /// Unix milliseconds of `created_at`, as signed.
    pub created_at_ms: i64,
    pub prev_hash: String,
    pub entries: u64,
    pub deposits_end: u64,
    pub root: String,
    pub hash: String,
    /// Ed25519 signature of the signed bytes (hex).
    pub signature: String,
    pub chains: Vec<ChainOut>,
    /// The checkpoint the consistency proofs start from (the previous one unless `from` was given).
    pub consistency_from: u64,
    /// Per chain, the RFC 9162 consistency proof from checkpoint
    /// `consistency_from`'s tree to this one (empty when the chain did not move).
    pub consistency: Vec<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublicKeyOut {
    /// `Ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
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

fn deposit_out(r: &DepositRecord, proof: &DepositProof) -> DepositOut {
    let e = &r.entry;
    let b = &e.body;
    DepositOut {
        cursor: Cursor(r.number).encode(),
        number: r.number,
        kind: b.kind.as_str().to_owned(),
        learner_id: b.learner.to_string(),
        learner_real_name_hash: r.learner_hash.map(hex::encode),
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
            checkpoint: proof.checkpoint,
            chain_size: proof.chain.size,
            chain_head: hex::encode(proof.chain.head),
            chain_root: hex::encode(proof.chain.root),
            entry_path: hexes(&proof.entry_path),
            chain_path: hexes(&proof.chain_path),
        },
    }
}

fn checkpoint_out(s: &StoredCheckpoint, from: u64, consistency: &[Vec<[u8; 32]>]) -> CheckpointOut {
    let c: &Checkpoint = &s.checkpoint;
    CheckpointOut {
        number: c.number,
        created_at: c.created_at.to_rfc3339(),
        created_at_ms: c.created_at.0,
        prev_hash: hex::encode(c.prev_hash),
        entries: c.entries(),
        deposits_end: c.deposits_end,
        root: hex::encode(c.root()),
        hash: hex::encode(c.hash()),
        signature: hex::encode(s.signature),
        chains: c
            .chains
            .iter()
            .map(|ch| ChainOut {
                chain: ch.chain,
                size: ch.size,
                head: hex::encode(ch.head),
                root: hex::encode(ch.root),
            })
            .collect(),
        consistency_from: from,
        consistency: consistency.iter().map(|p| hexes(p)).collect(),
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
    let page = deposit_page(&*state.store, after.0, limit).await?;
    state.metrics.deposits_served(page.last);
    Ok(Json(DepositPageOut {
        deposits: page.deposits.iter().map(|(r, p)| deposit_out(r, p)).collect(),
        next_cursor: Cursor(page.last).encode(),
        checkpoints: page.checkpoints.keys().copied().collect(),
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
                &format!("ack_exists_with_different_{field}"),
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
                    "unknown_deposit",
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
            "batch_length",
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

/// The Ed25519 public key that verifies checkpoint signatures.
#[utoipa::path(get, path = "/v1/checkpoints/public-key", operation_id = "get_checkpoint_public_key", tag = "bank",
    security(("api_key" = [])), responses((status = 200, body = PublicKeyOut)))]
pub async fn get_public_key(State(state): State<AppState>, _caller: Caller) -> Json<PublicKeyOut> {
    Json(PublicKeyOut {
        algorithm: "Ed25519".into(),
        public_key: hex::encode(state.checkpoints.key.verifying_key().as_bytes()),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CheckpointQuery {
    /// The consistency proofs lead from this earlier checkpoint (default: the previous one).
    pub from: Option<String>,
}

impl CheckpointQuery {
    fn start(&self) -> Result<Option<u64>, FieldError> {
        self.from
            .as_deref()
            .map(|f| {
                f.parse::<u64>()
                    .map_err(|_| FieldError::new("from", "must be a checkpoint number"))
            })
            .transpose()
    }
}

async fn checkpoint_response(
    state: &AppState,
    stored: Option<StoredCheckpoint>,
    from: Option<u64>,
) -> ApiResult<Json<CheckpointOut>> {
    let stored = stored.ok_or_else(|| {
        ApiError::from(Problem::new(
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            "no such checkpoint (none is made until the ledger has entries)",
        ))
    })?;
    if let Some(from) = from
        && from >= stored.checkpoint.number
    {
        return Err(Problem::invalid(&FieldError::new("from", "must be an earlier checkpoint")).into());
    }
    let consistency = consistency_proofs(&*state.store, &stored.checkpoint, from).await?;
    let from = from.unwrap_or(stored.checkpoint.number.saturating_sub(1));
    Ok(Json(checkpoint_out(&stored, from, &consistency)))
}

/// The latest signed checkpoint, with consistency proofs from its
/// predecessor or from the checkpoint `from`.
#[utoipa::path(get, path = "/v1/checkpoints/latest", operation_id = "get_latest_checkpoint", tag = "bank",
    security(("api_key" = [])), params(CheckpointQuery),
    responses((status = 200, body = CheckpointOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_latest_checkpoint(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<CheckpointQuery>,
) -> ApiResult<Json<CheckpointOut>> {
    let from = query.start()?;
    let stored = state.store.latest_checkpoint().await?;
    checkpoint_response(&state, stored, from).await
}

/// A signed checkpoint by number, with consistency proofs from its
/// predecessor or from the checkpoint `from`.
#[utoipa::path(get, path = "/v1/checkpoints/{number}", operation_id = "get_checkpoint", tag = "bank",
    security(("api_key" = [])), params(("number" = u64, Path), CheckpointQuery),
    responses((status = 200, body = CheckpointOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_checkpoint(
    State(state): State<AppState>,
    _caller: Caller,
    Path(number): Path<String>,
    Query(query): Query<CheckpointQuery>,
) -> ApiResult<Json<CheckpointOut>> {
    let number: u64 = number
        .parse()
        .map_err(|_| FieldError::new("number", "must be a checkpoint number"))?;
    let from = query.start()?;
    let stored = state.store.checkpoint(number).await?;
    checkpoint_response(&state, stored, from).await
}
