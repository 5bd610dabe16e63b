//! Learning events into the ledger (`/v1/events`): one under its id, a
//! batch, reading one back. Events go through the group committer.

use crate::AppState;
use crate::auth::Caller;
use crate::body::{ApiJson, BodyKind, body_kind, parse_json, read_body_unchecked};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::EntryKind;
use xuefen_core::event::Event;
use xuefen_core::event::{Completion, EventBody, LearnerRef, Millis, Reason, Revocation};
use xuefen_core::ids::{CourseCode, EventId, LearnerId, LocalAccount, Position, SiteId};
use xuefen_core::limits::{HOURS_MAX_CENTS, SCORE_MAX_CENTS};
use xuefen_core::plan::Outcome;

use crate::commit::commit_error;
use crate::event_status::EventStatus;
use crate::problem::PositionOut;
use crate::transcript::EntryOut;
use crate::wire::*;

/// Posts one event under its id. Idempotent: the same event again answers
/// 200 with the original position and writes nothing; the same id with
/// other content is a 409 naming the first differing field.
#[utoipa::path(put, path = "/v1/events/{event_id}", operation_id = "put_event", tag = "events",
    security(("api_key" = [])), params(("event_id" = String, Path)), request_body = EventIn,
    responses((status = 201, description = "accepted", body = EventResult), (status = 200, description = "duplicate", body = EventResult),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
    ApiJson(mut input): ApiJson<EventIn>,
) -> ApiResult<Response> {
    let site = caller.require_posting_site()?.clone();
    crate::pseudonyms::resolve_event_learner(&state, &caller.principal, &mut input).await?;
    let id = path_id(EventId::parse_input, event_id)?;
    if let Some(body_id) = &input.event_id
        && body_id != id.as_str()
    {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "event_id",
            "differs from the id in the path",
        ))
        .into());
    }
    let body = input.parse_body()?;
    let outcomes = state
        .committer
        .submit(vec![Event {
            site,
            id: id.clone(),
            body,
        }])
        .await
        .map_err(commit_error)?;
    let outcome = outcomes.into_iter().next().ok_or_else(|| {
        ApiError::from(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::Internal,
            "internal error",
        ))
    })?;
    let result = EventResult::from_outcome(id.as_str(), &outcome);
    Ok(match outcome {
        Outcome::Accepted { .. } => (StatusCode::CREATED, Json(result)).into_response(),
        Outcome::Duplicate { .. } => (StatusCode::OK, Json(result)).into_response(),
        Outcome::Conflict { .. } | Outcome::Rejected(_) => match result.problem {
            Some(p) => p.into_response(),
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    })
}

/// The stored outcome of one of the calling site's events.
#[utoipa::path(get, path = "/v1/events/{event_id}", operation_id = "get_event", tag = "events",
    security(("api_key" = [])), params(("event_id" = String, Path)),
    responses((status = 200, body = EntryOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
) -> ApiResult<Json<EntryOut>> {
    let site = caller.require_site()?;
    let id = path_id(EventId::parse, event_id)?;
    let entry = state
        .ledger_store()
        .entry_by_event(site, &id)
        .await?
        .ok_or(xuefen_store::StoreError::NotFound)?;
    let mut out = EntryOut::new(&entry, None);
    crate::pseudonyms::show_entry(&state, &caller.principal, &mut out).await?;
    Ok(Json(out))
}

/// Posts a batch of events: a JSON array, or NDJSON with
/// `Content-Type: application/x-ndjson`. Each item gets its own result; a
/// rejected item never blocks the others. Not one transaction: the items
/// commit per chain shard, each whole or absent after a crash, and a retry
/// of the whole batch is idempotent (the contract the OpenAPI document
/// states is `crate::batch_contract`).
#[utoipa::path(post, path = "/v1/events", operation_id = "post_events", tag = "events",
    security(("api_key" = [])), request_body = Vec<EventIn>,
    responses((status = 200, body = BatchOut), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<BatchOut>> {
    let site = caller.require_posting_site()?.clone();
    let ndjson = body_kind(&headers, true)? == BodyKind::Ndjson;
    // U+0000 is checked per item (in `parse_item`): one item holding it is
    // rejected on its own, like any other invalid item.
    let bytes = read_body_unchecked(req, &state).await?;
    // Items stay raw until each is parsed on its own: one bad item gets its
    // own result instead of failing the batch, and no intermediate
    // `serde_json::Value` tree is built.
    let items = split_batch(&bytes, ndjson)?;
    let limit = state.limits.batch_events_max;
    if items.len() > limit {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::BatchTooLong,
            format!(
                "the batch has {} events; at most {limit} are allowed (batch_events_max)",
                items.len()
            ),
        )
        .with_field("/")
        .into());
    }
    if items.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::BatchEmpty,
            "the batch has no events",
        )
        .with_field("/")
        .into());
    }
    // Parse every item; invalid ones get a result now and never reach the ledger.
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let parsed = match parse_item_input(item) {
            Ok(mut input) => {
                crate::pseudonyms::resolve_event_learner(&state, &caller.principal, &mut input).await?;
                finish_item(&site, &input)
            }
            Err(rejected) => Err(rejected),
        };
        match parsed {
            Ok(event) => {
                slots.push(i);
                events.push(event);
                results.push(None);
            }
            Err(rejected) => {
                let (event_id, problem) = *rejected;
                let problem = match problem.field.clone() {
                    Some(f) => problem.with_field(format!("{i}/{f}")),
                    None => problem.with_field(format!("{i}")),
                };
                results.push(Some(EventResult::rejected(&event_id, problem)));
            }
        }
    }
    state.metrics.events_rejected_unparsed(results.len() - events.len());
    if !events.is_empty() {
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let outcomes = state.committer.submit(events).await.map_err(commit_error)?;
        for ((slot, id), outcome) in slots.into_iter().zip(ids).zip(outcomes) {
            let mut r = EventResult::from_outcome(&id, &outcome);
            if let Some(p) = r.problem.as_mut() {
                p.field = p.field.take().map(|f| format!("{slot}/{f}"));
            }
            results[slot] = Some(r);
        }
    }
    let results: Vec<EventResult> = results.into_iter().flatten().collect();
    let count = |s: EventStatus| results.iter().filter(|r| r.status == s).count();
    Ok(Json(BatchOut {
        accepted: count(EventStatus::Accepted),
        duplicate: count(EventStatus::Duplicate),
        conflict: count(EventStatus::Conflict),
        rejected: count(EventStatus::Rejected),
        results,
    }))
}

/// An item that could not be parsed: its raw event id and the problem.
type ItemRejection = Box<(String, Problem)>;

/// The items of a batch body, each still raw: a JSON array, or one JSON
/// value per non-blank NDJSON line.
pub(crate) fn split_batch(bytes: &[u8], ndjson: bool) -> Result<Vec<&RawValue>, Box<Problem>> {
    if ndjson {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                ProblemCode::MalformedJson,
                "the body is not UTF-8",
            )
        })?;
        let lines = text.lines().filter(|l| !l.trim().is_empty());
        lines
            .enumerate()
            .map(|(i, line)| parse_json(line.as_bytes()).map_err(|p| Box::new(p.with_field(format!("{i}")))))
            .collect()
    } else {
        parse_json(bytes)
    }
}

pub(crate) fn parse_item(site: &SiteId, item: &RawValue) -> Result<Event, ItemRejection> {
    finish_item(site, &parse_item_input(item)?)
}

/// An item read as an event's wire form, before its fields are checked.
pub(crate) fn parse_item_input(item: &RawValue) -> Result<EventIn, ItemRejection> {
    if let Err(problem) = crate::body::check_no_nul(item.get().as_bytes()) {
        let raw_id = serde_json::from_str::<serde_json::Value>(item.get())
            .ok()
            .and_then(|v| v.get("event_id").and_then(|id| id.as_str()).map(str::to_owned))
            .unwrap_or_default();
        return Err(Box::new((raw_id, *problem)));
    }
    // The fast path parses without tracking where it is; only a failure is
    // parsed again to name the offending field.
    let input: EventIn = match serde_json::from_str(item.get()) {
        Ok(input) => input,
        Err(_) => {
            let raw_id = serde_json::from_str::<serde_json::Value>(item.get())
                .ok()
                .and_then(|v| v.get("event_id").and_then(|id| id.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let de = &mut serde_json::Deserializer::from_str(item.get());
            let e = match serde_path_to_error::deserialize::<_, EventIn>(de) {
                Ok(_) => {
                    return Err(Box::new((
                        raw_id,
                        Problem::new(
                            StatusCode::BAD_REQUEST,
                            ProblemCode::MalformedJson,
                            "the item is not a valid event",
                        ),
                    )));
                }
                Err(e) => e,
            };
            let path = e.path().to_string().replace('.', "/");
            return Err(Box::new((
                raw_id,
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    ProblemCode::MalformedJson,
                    e.into_inner().to_string(),
                )
                .with_field(path),
            )));
        }
    };
    Ok(input)
}

/// An item's event, once its learner id is the unified one
/// ([`crate::pseudonyms::resolve_event_learner`]).
pub(crate) fn finish_item(site: &SiteId, input: &EventIn) -> Result<Event, ItemRejection> {
    let raw_id = input.event_id.clone().unwrap_or_default();
    let id = input
        .event_id
        .clone()
        .ok_or_else(|| xuefen_core::FieldError::new("event_id", "is required in a batch"))
        .and_then(EventId::parse_input)
        .map_err(|e| Box::new((raw_id.clone(), Problem::invalid(&e))))?;
    let body = input
        .parse_body()
        .map_err(|e| Box::new((raw_id.clone(), Problem::invalid(&e))))?;
    Ok(Event {
        site: site.clone(),
        id,
        body,
    })
}

/// How an event names its learner: exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnerRefIn {
    pub id: Option<String>,
    pub local_account: Option<String>,
}

/// An event. `kind` is `completion` (with `course`, `learner`,
/// `completed_at` and `score` and/or `hours` as the course's rule needs) or
/// `revocation` (with `target_event_id`, and `reason_code` and/or `reason`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Required in a batch; taken from the path by `PUT /v1/events/{event_id}`.
    pub event_id: Option<String>,
    /// `completion` or `revocation`.
    pub kind: String,
    pub course: Option<String>,
    pub learner: Option<LearnerRefIn>,
    /// RFC 3339.
    pub completed_at: Option<String>,
    #[schema(value_type = Option<String>, example = "86.5")]
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub score: Option<Decimal>,
    #[schema(value_type = Option<String>, example = "12")]
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub hours: Option<Decimal>,
    pub target_event_id: Option<String>,
    /// For a revocation: why, as a code (`[a-z0-9_]`, at most 32 bytes, e.g.
    /// `entered_in_error`); the ledger hashes this. Default `unspecified`.
    pub reason_code: Option<String>,
    /// For a revocation: free text with the code. Kept beside the entry as
    /// its note, never hashed, removed when the learner is erased.
    pub reason: Option<String>,
}

impl EventIn {
    pub fn parse_body(&self) -> Result<EventBody, FieldError> {
        match self.kind.as_str() {
            "completion" => {
                let learner = match &self.learner {
                    Some(LearnerRefIn {
                        id: Some(id),
                        local_account: None,
                    }) => LearnerRef::Id(LearnerId::parse_as(id.clone(), "learner/id")?),
                    Some(LearnerRefIn {
                        id: None,
                        local_account: Some(a),
                    }) => LearnerRef::Account(LocalAccount::parse_input_as(a.clone(), "learner/local_account")?),
                    _ => {
                        return Err(FieldError::new(
                            "learner",
                            "give exactly one of `id` and `local_account`",
                        ));
                    }
                };
                Ok(EventBody::Completion(Completion {
                    course: CourseCode::parse_as(required(&self.course, "course")?, "course")?,
                    learner,
                    completed_at: Millis::parse_rfc3339(
                        &required(&self.completed_at, "completed_at")?,
                        "completed_at",
                    )?,
                    score: self
                        .score
                        .map(|s| Score::parse(s, 0, SCORE_MAX_CENTS, "score"))
                        .transpose()?,
                    hours: self
                        .hours
                        .map(|h| Hours::parse(h, 0, HOURS_MAX_CENTS, "hours"))
                        .transpose()?,
                }))
            }
            "revocation" => {
                let reason = self.reason.as_deref().map(str::trim).unwrap_or_default();
                let code = match self.reason_code.as_deref() {
                    Some("") => return Err(FieldError::new("reason_code", "must not be empty")),
                    Some(code) => code,
                    None if reason.is_empty() => {
                        return Err(FieldError::new("reason_code", "is required (or a reason text)"));
                    }
                    None => xuefen_core::event::REASON_CODE_UNSPECIFIED,
                };
                Ok(EventBody::Revocation(Revocation {
                    target: EventId::parse_as(required(&self.target_event_id, "target_event_id")?, "target_event_id")?,
                    code: Reason::code(code, "reason_code")?,
                    reason: Reason::parse(reason, "reason")?,
                }))
            }
            other => Err(FieldError::new(
                "kind",
                format!("`{other}` is not one of completion, revocation"),
            )),
        }
    }
}

/// The outcome of one event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct EventResult {
    pub event_id: String,
    /// `accepted`, `duplicate`, `conflict` or `rejected`.
    #[schema(value_type = String)]
    pub status: EventStatus,
    /// Where the event's entry is (for `conflict`: the existing entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<PositionOut>,
    /// The entry kind: `awarded`, `not_passed`, `reversal`, `recognised`
    /// (credited already through its recognition group) or `capped` (over
    /// the learner's annual cap for the category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// For an accepted completion: the event id under which the site
    /// already sent a completion of the same learner, course and
    /// `completed_at`. The new event is recorded (with zero credits when
    /// the course is paid already); the site should check whether it sent
    /// one completion twice under two ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likely_duplicate_of: Option<String>,
}

impl EventResult {
    pub(crate) fn from_outcome(event_id: &str, outcome: &Outcome) -> Self {
        let base = |status: EventStatus, position: Position, kind: EntryKind, credits: Credits| Self {
            event_id: event_id.to_owned(),
            status,
            position: Some(position.into()),
            entry: Some(kind.as_str().to_owned()),
            credits: Some(credits.to_string()),
            problem: None,
            likely_duplicate_of: None,
        };
        match outcome {
            Outcome::Accepted {
                position,
                kind,
                credits,
                likely_duplicate_of,
            } => Self {
                likely_duplicate_of: likely_duplicate_of.as_ref().map(ToString::to_string),
                ..base(EventStatus::Accepted, *position, *kind, *credits)
            },
            Outcome::Duplicate {
                position,
                kind,
                credits,
            } => base(EventStatus::Duplicate, *position, *kind, *credits),
            Outcome::Conflict { field, position } => Self {
                event_id: event_id.to_owned(),
                status: EventStatus::Conflict,
                position: Some((*position).into()),
                entry: None,
                credits: None,
                problem: Some(conflict_problem(field, *position)),
                likely_duplicate_of: None,
            },
            Outcome::Rejected(r) => Self::rejected(
                event_id,
                Problem::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::Rejected(r.code),
                    r.error.detail.clone(),
                )
                .with_field(r.error.field.to_string()),
            ),
        }
    }

    pub(crate) fn rejected(event_id: &str, problem: Problem) -> Self {
        Self {
            event_id: event_id.to_owned(),
            status: EventStatus::Rejected,
            position: None,
            entry: None,
            credits: None,
            problem: Some(problem),
            likely_duplicate_of: None,
        }
    }
}

pub(crate) fn conflict_problem(field: &'static str, position: Position) -> Problem {
    let mut p = Problem::new(
        axum::http::StatusCode::CONFLICT,
        ProblemCode::ExistsWithDifferent(field),
        format!("an event with this id exists at {position} with a different `{field}`"),
    )
    .with_field(field);
    p.position = Some(position.into());
    p
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct BatchOut {
    pub accepted: usize,
    pub duplicate: usize,
    pub conflict: usize,
    pub rejected: usize,
    /// One result per item, in the order posted.
    pub results: Vec<EventResult>,
}
