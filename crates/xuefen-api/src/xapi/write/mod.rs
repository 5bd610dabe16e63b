//! Writing statements: `PUT` one under its id, `POST` one or many; the
//! ledger events they mean go to the group committer first. Reading a
//! request's body and its attachment parts is in `attachments`; the ledger
//! side of a request (its events, checked against the ledger and
//! submitted) in `ledger`.

use super::auth::XapiSite;
use super::auth::authority;
use super::auth::home_page;
use super::bad;
use super::bad_request;
use super::headers::version_of;
use super::read::get_statements;
use super::read::query_pairs;
use crate::AppState;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use crate::wire::now;
use attachments::{check_attachments, statement_body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::{check_ledger, ledger_entries, ledger_events, lookups, submit};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::{self as core, Prepared, StatementError, Version};
use xuefen_store::{NewStatement, StoreError, Written};

mod attachments;
mod ledger;

/// Stores one statement under `statementId`. 204 when stored, and for an
/// identical re-send (which writes nothing); 409 when another statement is
/// stored under the id.
#[utoipa::path(put, path = "/xapi/statements", operation_id = "put_xapi_statement", tag = "xapi",
    security(("basic" = [])),
    params(("statementId" = String, Query, description = "the statement's id (UUID)"),
           ("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
    request_body(content = Object, description = "one xAPI statement"),
    responses((status = 204, description = "stored, or already stored identically"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_statement(State(state): State<AppState>, auth: XapiSite, req: Request) -> ApiResult<Response> {
    let site = auth.caller.require_posting_site()?.clone();
    let params = query_pairs(req.uri())?;
    let version = version_of(req.extensions().get::<Version>());
    let mut statement_id = None;
    for (name, value) in params {
        match name.as_str() {
            "statementId" => statement_id = Some(value),
            other => {
                return Err(bad_request(
                    ProblemCode::UnknownParameter,
                    other,
                    "PUT /xapi/statements takes `statementId` only",
                ));
            }
        }
    }
    let statement_id = statement_id.ok_or_else(|| {
        bad_request(
            ProblemCode::StatementIdRequired,
            "statementId",
            "PUT needs `?statementId=`",
        )
    })?;
    let statement_id = core::check_uuid(&statement_id, "statementId").map_err(bad)?;
    let headers = req.headers().clone();
    let (bytes, parts) = statement_body(&state, &headers, req).await?;
    let raw: &RawValue = serde_json::from_slice(&bytes)
        .map_err(|e| bad_request(ProblemCode::MalformedJson, "/", format!("the body is not JSON: {e}")))?;
    if raw.get().trim_start().starts_with('[') {
        return Err(bad_request(
            ProblemCode::StatementNotObject,
            "/",
            "PUT takes one statement, not an array",
        ));
    }
    check_attachments(&state, &site, &[raw], &parts).await?;
    let written = write_statements(&state, &site, &version, &[raw], Some(&statement_id)).await?;
    tracing::info!(site.id = %site, statements = written.len(), "xAPI statement put");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Stores one statement or an array of them, all or nothing, and answers
/// their ids in order. Identical re-sends write nothing; a statement id
/// stored with other content is a 409, a repeated id within the request a
/// 400.
#[utoipa::path(post, path = "/xapi/statements", operation_id = "post_xapi_statements", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0")),
    request_body(content = Object, description = "one xAPI statement, or an array of them"),
    responses((status = 200, body = Vec<String>, description = "the statement ids, in order"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn post_statements(
    State(state): State<AppState>,
    auth: XapiSite,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    // The Alternate Request Syntax rewrote the method after routing.
    match req.method().clone() {
        axum::http::Method::POST => {}
        axum::http::Method::GET => {
            let uri = req.uri().clone();
            return get_statements(State(state), auth, headers, uri).await;
        }
        axum::http::Method::PUT => return put_statement(State(state), auth, req).await,
        _ => {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "the statements resource takes GET, PUT and POST",
            )
            .into());
        }
    }
    let site = auth.caller.require_posting_site()?.clone();
    let version = version_of(req.extensions().get::<Version>());
    let (json, parts) = statement_body(&state, &headers, req).await?;
    let text = std::str::from_utf8(&json)
        .map_err(|_| bad_request(ProblemCode::MalformedJson, "/", "the body is not UTF-8"))?;
    let items: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
            .map_err(|e| bad_request(ProblemCode::MalformedJson, "/", format!("the body is not JSON: {e}")))?
    } else {
        vec![
            serde_json::from_str(text)
                .map_err(|e| bad_request(ProblemCode::MalformedJson, "/", format!("the body is not JSON: {e}")))?,
        ]
    };
    check_attachments(&state, &site, &items, &parts).await?;
    let ids = write_statements(&state, &site, &version, &items, None).await?;
    tracing::info!(site.id = %site, statements = ids.len(), "xAPI statements posted");
    Ok(axum::Json(ids.into_iter().map(|(id, _)| id).collect::<Vec<String>>()).into_response())
}

/// A fresh random UUID (version 4) for a statement sent without an id.
pub(super) fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
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

/// Validates, credits and stores the statements of one request: all of
/// them, or none (see the module docs for the order of the writes).
pub(super) async fn write_statements(
    state: &AppState,
    site: &SiteId,
    version: &Version,
    items: &[&RawValue],
    put_id: Option<&str>,
) -> ApiResult<Vec<(String, Written)>> {
    check_count(state, items.len())?;
    let home = home_page(state, site).await?;
    let authority = authority(&home, site);
    let stored = now();
    let many = put_id.is_none() && items.len() > 1;
    let at = |i: usize, e: StatementError| if many { e.within(&i.to_string()) } else { e };
    let stamp = core::Stamp {
        version,
        authority: &authority,
        stored,
        id_if_absent: "",
    };
    let prepared = prepare_all(items, &stamp, put_id, &at)?;
    // The three pre-write reads are independent: run them together. The
    // request's own refusal (a conflict, voiding a voiding statement)
    // comes first when several fail.
    let (refused, ledger, lookups) = tokio::join!(
        check_stored(state, site, &prepared, &at),
        ledger_entries(state, site, &prepared),
        lookups(state, site, &prepared),
    );
    refused?;
    let (ledger, lookups) = (ledger?, lookups?);
    let events = ledger_events(site, &home, &prepared, &ledger, &lookups);
    if !events.is_empty() {
        check_ledger(&prepared, &events, &ledger, &at)?;
        submit(state, &prepared, events, &at).await?;
    }
    store_statements(state, site, prepared, core::agent_key(&authority).ok(), stored, &at).await
}

/// A request of no statements, or of more than `batch_events_max`, is
/// refused before anything is read.
fn check_count(state: &AppState, count: usize) -> ApiResult<()> {
    let limit = state.limits.batch_events_max;
    if count > limit {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::BatchTooLong,
            format!("the request has {count} statements; at most {limit} are allowed (batch_events_max)"),
        )
        .into());
    }
    if count == 0 {
        return Err(bad_request(
            ProblemCode::BatchEmpty,
            "/",
            "the request has no statements",
        ));
    }
    Ok(())
}

/// Validates every statement under `stamp` (each statement sent without an
/// id gets a fresh one, or the PUT's): a PUT's statement must carry the id it was put at,
/// and no id may appear twice in a request.
fn prepare_all(
    items: &[&RawValue],
    stamp: &core::Stamp<'_>,
    put_id: Option<&str>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<Vec<Prepared>> {
    let mut prepared = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fresh = put_id.map_or_else(new_uuid, str::to_owned);
        let p = core::prepare(
            item.get(),
            &core::Stamp {
                id_if_absent: &fresh,
                ..*stamp
            },
        )
        .map_err(|e| bad(at(i, e)))?;
        if let Some(id) = put_id
            && p.id != id
        {
            return Err(bad_request(
                ProblemCode::StatementIdMismatch,
                "id",
                "the statement's id differs from `statementId`",
            ));
        }
        prepared.push(p);
    }
    let mut seen = HashSet::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        if !seen.insert(p.id.as_str()) {
            return Err(bad(at(
                i,
                StatementError::new(
                    "duplicate_statement_id",
                    "id",
                    format!("the id {} appears twice in the request", p.id),
                ),
            )));
        }
    }
    Ok(prepared)
}

/// Stores the prepared statements (after their ledger events committed):
/// each id with whether it was written or already stored alike.
async fn store_statements(
    state: &AppState,
    site: &SiteId,
    prepared: Vec<Prepared>,
    authority_key: Option<String>,
    stored: Millis,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<Vec<(String, Written)>> {
    let ids: Vec<String> = prepared.iter().map(|p| p.id.clone()).collect();
    let mut objects = Vec::with_capacity(prepared.len());
    let rows: Vec<NewStatement> = prepared
        .into_iter()
        .map(|p| {
            let agent = p.agent_key();
            objects.push(p.activity_object);
            NewStatement {
                id: p.id,
                json: p.json,
                fingerprint: p.fingerprint,
                verb: p.verb,
                activity: p.activity,
                agent,
                authority: authority_key.clone(),
                registration: p.registration,
                voids: p.voids,
                stored,
                related_agents: p.related_agents,
                related_activities: p.related_activities,
            }
        })
        .collect();
    let written = state
        .store
        .insert_statements_folding(site, &rows, &objects)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(id) => conflict_at(&ids, &id, at),
            e => e.into(),
        })?;
    Ok(ids.into_iter().zip(written).collect())
}

pub(super) fn conflict(
    prepared: &[Prepared],
    id: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let ids: Vec<&str> = prepared.iter().map(|p| p.id.as_str()).collect();
    conflict_at(&ids, id, at)
}

/// The 409 of a statement id stored with other content, at its place in
/// the request (`ids`, in order).
pub(super) fn conflict_at(
    ids: &[impl AsRef<str>],
    id: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let i = ids.iter().position(|p| p.as_ref() == id).unwrap_or_default();
    let e = at(
        i,
        StatementError::new(
            "statement_conflict",
            "id",
            format!("another statement is stored under the id {id}"),
        ),
    );
    Problem::new(StatusCode::CONFLICT, ProblemCode::StatementRule(e.rule), e.detail)
        .with_field(e.field)
        .into()
}

/// Refuses the request before anything is written when a statement id is
/// stored with other content, or a voiding statement targets a voiding
/// statement.
pub(super) async fn check_stored(
    state: &AppState,
    site: &SiteId,
    prepared: &[Prepared],
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    let mut ids: Vec<String> = prepared.iter().map(|p| p.id.clone()).collect();
    ids.extend(prepared.iter().filter_map(|p| p.voids.clone()));
    let stored = state.xapi_store().statement_keys(site, &ids).await?;
    let by_id: HashMap<&str, &xuefen_store::StoredKey> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    let in_request: HashMap<&str, &Prepared> = prepared.iter().map(|p| (p.id.as_str(), p)).collect();
    for (i, p) in prepared.iter().enumerate() {
        if by_id.get(p.id.as_str()).is_some_and(|r| r.fingerprint != p.fingerprint) {
            return Err(conflict(prepared, &p.id, at));
        }
        if let Some(target) = &p.voids {
            let target_verb = by_id
                .get(target.as_str())
                .map(|r| r.verb.as_str())
                .or_else(|| in_request.get(target.as_str()).map(|t| t.verb.as_str()));
            if target_verb == Some(core::VERB_VOIDED) {
                return Err(bad(at(
                    i,
                    StatementError::new(
                        "voiding_a_voiding_statement",
                        "object/id",
                        "a voiding statement cannot void another voiding statement",
                    ),
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = new_uuid();
        assert_eq!(core::check_uuid(&id, "id").as_deref(), Ok(id.as_str()));
        assert_eq!(&id[14..15], "4");
        assert!(["8", "9", "a", "b"].contains(&&id[19..20]));
    }
}
