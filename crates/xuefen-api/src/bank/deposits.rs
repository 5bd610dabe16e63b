//! The deposit feed's handlers: the bank's key, pages of deposits after a
//! cursor (each with its inclusion proof), and acknowledgements one by one or
//! by the page.

use super::wire::{AckResult, AcksIn, AcksOut, DecisionIn, DepositPageOut, deposit_out};
use super::{PAGE_DEPOSITS_DEFAULT, PAGE_DEPOSITS_MAX};
use crate::AppState;
use crate::auth::{Caller, mint};
use crate::body::ApiJson;
use crate::keys::KeyOut;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xuefen_core::FieldError;
use xuefen_core::bank::Cursor;
use xuefen_core::event::Millis;
use xuefen_core::ids::Position;
use xuefen_store::Principal;
use xuefen_store::bank::{AckOutcome, AckRequest, deposit_page_at};
use xuefen_store::witness::served_head;

/// Creates a key for the credit bank (shown once). Admin only.
#[utoipa::path(post, path = "/v1/bank/keys", operation_id = "create_bank_key", tag = "bank",
    security(("api_key" = [])),
    responses((status = 201, body = KeyOut), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_bank_key(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_admin()?;
    let (key, secret) = mint(Principal::Bank);
    state.key_store().create_key(&key).await?;
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

pub(super) fn ack_result(deposit: Position, outcome: &AckOutcome) -> AckResult {
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
    let outcomes = state.bank_store().ack_deposits(&requests, now).await?;
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
