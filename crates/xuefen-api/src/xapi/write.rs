//! Writing statements: `PUT` one under its id, `POST` one or many; the
//! ledger events they mean go to the group committer first.

use super::auth::XapiSite;
use super::auth::authority;
use super::auth::home_page;
use super::bad;
use super::bad_request;
use super::documents;
use super::headers::version_of;
use super::read::get_statements;
use super::read::query_pairs;
use crate::AppState;
use crate::body::read_body;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use crate::wire::now;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha1::Digest as _;
use std::collections::{HashMap, HashSet};
use xuefen_core::amount::Score;
use xuefen_core::entry::Entry;
use xuefen_core::event::{Completion, Event, EventBody, LearnerRef, Reason, Revocation};
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};
use xuefen_core::limits::SCORE_MAX_CENTS;
use xuefen_core::plan::Outcome;
use xuefen_core::xapi::{self as core, Ifi, Prepared, StatementError, Version};
use xuefen_store::{NewStatement, StoreError, Written};

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

/// The statements' JSON of a request, and its attachment parts: the body
/// itself for `application/json`, the first part and the others for
/// `multipart/mixed` (each part's hash checked). Other multipart types are
/// refused.
pub(super) async fn statement_body(
    state: &AppState,
    headers: &HeaderMap,
    req: Request,
) -> ApiResult<(Vec<u8>, Vec<core::attachments::Part>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Ok((read_body(req, state).await?.to_vec(), Vec::new()));
    }
    let boundary = core::attachments::boundary(&content_type).ok_or_else(|| {
        bad_request(
            ProblemCode::MultipartTypeUnsupported,
            "Content-Type",
            "statements with attachments are multipart/mixed with a boundary",
        )
    })?;
    let bytes = documents::read_document_body(req, state).await?;
    core::attachments::parse(&bytes, &boundary).map_err(bad)
}

/// Checks the statements' attachments against the parts (every attachment
/// without `fileUrl` has its part, every part its attachment, signatures
/// are JWS of their statement), then stores the parts' bytes.
pub(super) async fn check_attachments(
    state: &AppState,
    site: &SiteId,
    items: &[&RawValue],
    parts: &[core::attachments::Part],
) -> ApiResult<()> {
    if parts.is_empty() && !items.iter().any(|i| i.get().contains("\"attachments\"")) {
        return Ok(());
    }
    let values: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::from_str(i.get()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad_request(ProblemCode::MalformedJson, "/", format!("the body is not JSON: {e}")))?;
    core::attachments::check(&values, parts).map_err(bad)?;
    // Stored first and by hash: a statement refused later leaves bytes no
    // statement names, never a statement without its bytes.
    state.store.put_attachments(site, parts).await?;
    Ok(())
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
    let limit = state.limits.batch_events_max;
    if items.len() > limit {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::BatchTooLong,
            format!(
                "the request has {} statements; at most {limit} are allowed (batch_events_max)",
                items.len()
            ),
        )
        .into());
    }
    if items.is_empty() {
        return Err(bad_request(
            ProblemCode::BatchEmpty,
            "/",
            "the request has no statements",
        ));
    }
    let home = home_page(state, site).await?;
    let authority = authority(&home, site);
    let stored = now();
    let many = put_id.is_none() && items.len() > 1;
    let at = |i: usize, e: StatementError| if many { e.within(&i.to_string()) } else { e };
    let mut prepared = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fresh = put_id.map_or_else(new_uuid, str::to_owned);
        let stamp = core::Stamp {
            version,
            authority: &authority,
            stored,
            id_if_absent: &fresh,
        };
        let p = core::prepare(item.get(), &stamp).map_err(|e| bad(at(i, e)))?;
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
    check_stored(state, site, &prepared, &at).await?;
    let ledger = ledger_entries(state, site, &prepared).await?;
    let events = ledger_events(state, site, &home, &prepared, &ledger).await?;
    if !events.is_empty() {
        check_ledger(&prepared, &events, &ledger, &at)?;
        submit(state, &prepared, events, &at).await?;
    }
    let rows: Vec<NewStatement> = prepared
        .iter()
        .map(|p| {
            let (related_agents, related_activities) = serde_json::from_str(&p.json)
                .map(|v| core::related::related(&v))
                .unwrap_or_default();
            (p, related_agents, related_activities)
        })
        .map(|(p, related_agents, related_activities)| NewStatement {
            id: p.id.clone(),
            json: p.json.clone(),
            fingerprint: p.fingerprint.clone(),
            verb: p.verb.clone(),
            activity: p.activity.clone(),
            agent: p.agent_key(),
            registration: p.registration.clone(),
            voids: p.voids.clone(),
            stored,
            related_agents,
            related_activities,
        })
        .collect();
    let written = state.store.insert_statements(site, &rows).await.map_err(|e| match e {
        StoreError::Conflict(id) => conflict(&prepared, &id, &at),
        e => e.into(),
    })?;
    let activities: Vec<(String, String)> = prepared
        .iter()
        .zip(&written)
        .filter(|(_, w)| **w == Written::Created)
        .filter_map(|(p, _)| activity_object(&p.json))
        .collect();
    state.store.merge_activities(site, &activities).await?;
    Ok(prepared.into_iter().map(|p| p.id).zip(written).collect())
}

/// The statement's object when it is an Activity: (id, the object's JSON),
/// what the Activities resource folds into its canonical Activity Object.
pub(super) fn activity_object(json: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Outer<'a> {
        #[serde(borrow)]
        object: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Object {
        #[serde(rename = "objectType")]
        object_type: Option<String>,
        id: Option<String>,
    }
    let outer: Outer<'_> = serde_json::from_str(json).ok()?;
    let object: Object = serde_json::from_str(outer.object.get()).ok()?;
    match object.object_type.as_deref() {
        None | Some("Activity") => Some((object.id?, outer.object.get().to_owned())),
        Some(_) => None,
    }
}

pub(super) fn conflict(
    prepared: &[Prepared],
    id: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let i = prepared.iter().position(|p| p.id == id).unwrap_or_default();
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
    let stored = state.store.statements_by_ids(site, &ids).await?;
    let by_id: HashMap<&str, &xuefen_store::StatementRow> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
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

/// The ledger entries, by event id, already under the request's statement
/// ids and under the targets of its voiding statements (one read): what
/// voiding reverses, and what the request must not contradict.
pub(super) async fn ledger_entries(
    state: &AppState,
    site: &SiteId,
    prepared: &[Prepared],
) -> ApiResult<HashMap<EventId, Entry>> {
    let ids: Vec<EventId> = prepared
        .iter()
        .flat_map(|p| std::iter::once(&p.id).chain(p.voids.as_ref()))
        .filter_map(|id| EventId::parse(id.clone()).ok())
        .collect();
    let entries = state.store.entries_by_events(site, &ids).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.body.kind.owns_key())
        .map(|e| (e.body.event_id.clone(), e))
        .collect())
}

/// The ledger events of the request: completions of linked learners on
/// courses with an activity IRI, and revocations of credited statements
/// that a statement voids.
pub(super) async fn ledger_events(
    state: &AppState,
    site: &SiteId,
    home: &str,
    prepared: &[Prepared],
    ledger: &HashMap<EventId, Entry>,
) -> ApiResult<Vec<(usize, Event)>> {
    let creditable: Vec<&Prepared> = prepared.iter().filter(|p| p.is_creditable_verb()).collect();
    let mut activities: Vec<String> = creditable.iter().filter_map(|p| p.activity.clone()).collect();
    activities.sort();
    activities.dedup();
    let courses: HashMap<String, CourseCode> = if activities.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .activity_courses(site, &activities)
            .await?
            .into_iter()
            .collect()
    };
    let mut sums: Vec<String> = creditable
        .iter()
        .filter(|p| p.activity.as_ref().is_some_and(|a| courses.contains_key(a)))
        .filter_map(|p| mbox_sha1sum(p.actor.as_ref()?))
        .collect();
    sums.sort();
    sums.dedup();
    let accounts: HashMap<String, LocalAccount> = if sums.is_empty() {
        HashMap::new()
    } else {
        state.store.mbox_accounts(site, &sums).await?.into_iter().collect()
    };
    let mut events = Vec::new();
    let mut credited: HashSet<&str> = HashSet::new();
    for (i, p) in prepared.iter().enumerate() {
        if let Some(event) = completion(site, home, p, &courses, &accounts) {
            credited.insert(p.id.as_str());
            events.push((i, event));
        }
    }
    for (i, p) in prepared.iter().enumerate() {
        let Some(target) = &p.voids else { continue };
        let Ok(target_id) = EventId::parse(target.clone()) else {
            continue;
        };
        if !credited.contains(target.as_str()) && !ledger.contains_key(&target_id) {
            continue;
        }
        let Ok(id) = EventId::parse(p.id.clone()) else { continue };
        let Ok(reason) = Reason::parse(format!("voided by xAPI statement {}", p.id), "reason") else {
            continue;
        };
        events.push((
            i,
            Event {
                site: site.clone(),
                id,
                body: EventBody::Revocation(Revocation {
                    target: target_id,
                    code: Reason::code("xapi_voided", "reason_code").unwrap_or_default(),
                    reason,
                }),
            },
        ));
    }
    Ok(events)
}

/// The `mbox_sha1sum` of an actor named by `mbox_sha1sum` or by `mbox`.
pub(super) fn mbox_sha1sum(actor: &Ifi) -> Option<String> {
    match actor {
        Ifi::MboxSha1(sum) => Some(sum.clone()),
        Ifi::Mbox(mbox) => Some(hex::encode(sha1::Sha1::digest(mbox.as_bytes()))),
        Ifi::OpenId(_) | Ifi::Account { .. } => None,
    }
}

/// The completion a statement is worth, if any: a creditable verb, an
/// actor that is one of the site's local accounts, an object that is one of
/// its courses. Credits then come from the course's rule alone.
pub(super) fn completion(
    site: &SiteId,
    home: &str,
    p: &Prepared,
    courses: &HashMap<String, CourseCode>,
    accounts: &HashMap<String, LocalAccount>,
) -> Option<Event> {
    if !p.is_creditable_verb() {
        return None;
    }
    let course = courses.get(p.activity.as_ref()?)?.clone();
    let account = match p.actor.as_ref()? {
        Ifi::Account { home_page, name } if home_page.trim_end_matches('/') == home.trim_end_matches('/') => {
            LocalAccount::parse(name.clone()).ok()?
        }
        ifi => accounts.get(&mbox_sha1sum(ifi)?)?.clone(),
    };
    Some(Event {
        site: site.clone(),
        id: EventId::parse(p.id.clone()).ok()?,
        body: EventBody::Completion(Completion {
            course,
            learner: LearnerRef::Account(account),
            completed_at: p.timestamp,
            score: p
                .score_percent
                .and_then(|s| Score::parse(s, 0, SCORE_MAX_CENTS, "result/score").ok()),
            hours: None,
        }),
    })
}

/// Writes the ledger events as one submission. A statement whose event
/// the ledger rejects (an unlinked account, a date before the course was
/// offered, no score for a course with a pass mark) is still stored and
/// earns nothing; one whose id the ledger holds with other content (the
/// site used the id for a native event) fails the request with a 409.
pub(super) async fn submit(
    state: &AppState,
    prepared: &[Prepared],
    events: Vec<(usize, Event)>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    let (slots, events): (Vec<usize>, Vec<Event>) = events.into_iter().unzip();
    let outcomes = state
        .committer
        .submit(events)
        .await
        .map_err(crate::commit::commit_error)?;
    for (slot, outcome) in slots.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted { .. } | Outcome::Duplicate { .. } => {}
            Outcome::Rejected(r) => {
                tracing::debug!(statement.id = %prepared[slot].id, reason = ?r, "statement earns nothing");
            }
            Outcome::Conflict { field, .. } => return Err(ledger_conflict(prepared, slot, field, at)),
        }
    }
    Ok(())
}

/// Refuses the request before anything is written when one of its events
/// is already in the ledger with other content (the site used the id for a
/// native event), so that the POST fails whole. The learner is compared by
/// the committer, which answers the same 409; only a concurrent native
/// event under the same id, or one differing in its learner alone, is
/// left to it, and then completions of the request that the ledger
/// accepted stay (their statements are stored by a corrected re-send).
pub(super) fn check_ledger(
    prepared: &[Prepared],
    events: &[(usize, Event)],
    ledger: &HashMap<EventId, Entry>,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiResult<()> {
    for (slot, event) in events {
        if let Some(entry) = ledger.get(&event.id)
            && let Some(field) = xuefen_core::plan::first_difference(event, &entry.body, |_| true)
        {
            return Err(ledger_conflict(prepared, *slot, field, at));
        }
    }
    Ok(())
}

pub(super) fn ledger_conflict(
    prepared: &[Prepared],
    slot: usize,
    field: &str,
    at: &(dyn Fn(usize, StatementError) -> StatementError + Sync),
) -> ApiError {
    let e = at(
        slot,
        StatementError::new(
            "statement_conflicts_with_ledger_event",
            "id",
            format!(
                "the ledger holds another event of this site under the id {} (it differs in `{field}`)",
                prepared[slot].id
            ),
        ),
    );
    Problem::new(StatusCode::CONFLICT, ProblemCode::StatementRule(e.rule), e.detail)
        .with_field(e.field)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xuefen_core::xapi::Ifi;

    #[test]
    fn an_mbox_is_matched_by_its_sha1() {
        let sum = mbox_sha1sum(&Ifi::Mbox("mailto:xapi@adlnet.gov".into()));
        assert_eq!(sum.as_deref(), Some("cd9b00a5611f94eaa7b1661edab976068e364975"));
        assert_eq!(
            mbox_sha1sum(&Ifi::MboxSha1("ab".repeat(20))).as_deref(),
            Some("abababababababababababababababababababab")
        );
        assert_eq!(mbox_sha1sum(&Ifi::OpenId("https://id.example/u".into())), None);
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = new_uuid();
        assert_eq!(core::check_uuid(&id, "id").as_deref(), Ok(id.as_str()));
        assert_eq!(&id[14..15], "4");
        assert!(["8", "9", "a", "b"].contains(&&id[19..20]));
    }
}
