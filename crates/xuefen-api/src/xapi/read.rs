//! Reading statements: one by id, or a page of a query with its `more`
//! link.

use super::auth::XapiSite;
use super::bad;
use super::bad_request;
use super::write::new_uuid;
use crate::AppState;
use crate::problem::{ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::{self as core};
use xuefen_store::{StatementQuery, StoreError};

/// One statement by `statementId` (not voided) or `voidedStatementId`, or a
/// page of the site's statements, newest first, voided ones left out, with
/// a `more` link to the next page.
#[utoipa::path(get, path = "/xapi/statements", operation_id = "get_xapi_statements", tag = "xapi",
    security(("basic" = [])),
    params(("X-Experience-API-Version" = String, Header, description = "1.0.x or 2.0.0"),
           ("statementId" = Option<String>, Query), ("voidedStatementId" = Option<String>, Query),
           ("agent" = Option<String>, Query, description = "an Agent as JSON: the statements it is the actor of"),
           ("verb" = Option<String>, Query), ("activity" = Option<String>, Query, description = "the object's activity IRI"),
           ("registration" = Option<String>, Query), ("since" = Option<String>, Query, description = "stored after"),
           ("until" = Option<String>, Query, description = "stored at or before"),
           ("limit" = Option<u32>, Query, description = "0 or absent: 100; at most 500"),
           ("ascending" = Option<bool>, Query), ("format" = Option<String>, Query, description = "exact (as stored), ids (identifiers only) or canonical (one language per map, by Accept-Language)"),
           ("related_agents" = Option<bool>, Query, description = "agent matches any agent the statement relates to"),
           ("related_activities" = Option<bool>, Query, description = "activity matches any activity the statement relates to"),
           ("attachments" = Option<bool>, Query), ("cursor" = Option<String>, Query, description = "opaque, from `more`")),
    responses((status = 200, body = StatementPageOut, description = "a statement, or a page of them"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_statements(
    State(state): State<AppState>,
    auth: XapiSite,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let site = auth.site;
    let params = query_pairs(&uri)?;
    let shape = answer_shape(&params, &headers)?;
    let mut seen = HashSet::new();
    for (name, _) in &params {
        if !seen.insert(name.as_str()) {
            return Err(bad_request(
                ProblemCode::RepeatedParameter,
                name,
                "a parameter may be given once",
            ));
        }
    }
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    for single in ["statementId", "voidedStatementId"] {
        if let Some(id) = get(single) {
            let others = params
                .iter()
                .find(|(n, _)| !["statementId", "voidedStatementId", "format", "attachments"].contains(&n.as_str()));
            if let Some((other, _)) = others.or_else(|| {
                params
                    .iter()
                    .find(|(n, _)| n != single && ["statementId", "voidedStatementId"].contains(&n.as_str()))
            }) {
                return Err(bad_request(
                    ProblemCode::ParameterNotAllowed,
                    other,
                    format!("`{single}` is given alone (with `format` and `attachments` at most)"),
                ));
            }
            return single_statement(&state, &site, id, single == "voidedStatementId", &shape).await;
        }
    }
    let query = parse_query(&params)?;
    // One more than asked tells whether another page follows.
    let fetch = StatementQuery {
        limit: query.limit + 1,
        ..query.clone()
    };
    let rows = state.xapi_store().query_statements(&site, &fetch).await?;
    let more = if rows.len() > query.limit {
        rows.get(query.limit - 1).map(|r| more_link(&params, r.seq))
    } else {
        None
    };
    let mut body = String::from("{\"statements\":[");
    for (i, row) in rows.iter().take(query.limit).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&shape.render(&row.json));
    }
    body.push_str("],\"more\":");
    body.push_str(&serde_json::Value::String(more.unwrap_or_default()).to_string());
    body.push('}');
    let modified = rows.iter().take(query.limit).filter_map(|r| stored_at(&r.json)).max();
    Ok(with_last_modified(answer(&state, &site, &shape, body).await?, modified))
}

/// The `stored` time of a stored statement's JSON.
pub(super) fn stored_at(json: &str) -> Option<time::OffsetDateTime> {
    #[derive(Deserialize)]
    struct Stored {
        stored: String,
    }
    let s: Stored = serde_json::from_str(json).ok()?;
    time::OffsetDateTime::parse(&s.stored, &time::format_description::well_known::Rfc3339).ok()
}

/// `Last-Modified` (an HTTP date, to the second) of a statement answer: the
/// `stored` time of the statement, or of the newest one of a page (xAPI
/// 2.0.0 §4.1.6.1).
pub(super) fn with_last_modified(mut resp: Response, modified: Option<time::OffsetDateTime>) -> Response {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    if let Some(value) = modified
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(format).ok())
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        resp.headers_mut().insert(header::LAST_MODIFIED, value);
    }
    resp
}

/// A page of statements (the statements are returned exactly as stored).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct StatementPageOut {
    #[schema(value_type = Vec<Object>)]
    pub statements: Vec<serde_json::Value>,
    /// The relative URL of the next page, or empty when there is none.
    pub more: String,
}

/// The query string's pairs, percent-decoded; a malformed one is a 400
/// problem like every other error.
pub(super) fn query_pairs(uri: &axum::http::Uri) -> ApiResult<Vec<(String, String)>> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| bad_request(ProblemCode::MalformedQuery, "?", e.body_text()))
}

pub(super) fn json_response(body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// How statements are answered: `format` and the languages of
/// `Accept-Language` (for `canonical`).
pub(super) struct AnswerShape {
    format: core::format::Format,
    languages: Vec<String>,
    /// `attachments=true`: a multipart/mixed answer with the bytes of the
    /// statements' attachments.
    attachments: bool,
}

/// The answer of a statement GET: the JSON, or with `attachments=true` a
/// `multipart/mixed` body of the JSON and then each stored attachment the
/// answered statements name.
pub(super) async fn answer(state: &AppState, site: &SiteId, shape: &AnswerShape, body: String) -> ApiResult<Response> {
    if !shape.attachments {
        return Ok(json_response(body));
    }
    fn hashes(v: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(list) = v.get("attachments").and_then(serde_json::Value::as_array) {
            for a in list {
                if let Some(h) = a.get("sha2").and_then(serde_json::Value::as_str) {
                    let h = h.to_ascii_lowercase();
                    if !out.contains(&h) {
                        out.push(h);
                    }
                }
            }
        }
    }
    let mut sha2s = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        match v.get("statements").and_then(serde_json::Value::as_array) {
            Some(list) => list.iter().for_each(|s| hashes(s, &mut sha2s)),
            None => hashes(&v, &mut sha2s),
        }
    }
    let parts = state.xapi_document_store().attachments(site, &sha2s).await?;
    let boundary = format!("xuefen-{}", new_uuid());
    let mut resp = Response::new(Body::from(core::attachments::render(&body, &parts, &boundary)));
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

impl AnswerShape {
    /// The stored JSON in the requested format (`exact`: as stored).
    fn render(&self, json: &str) -> String {
        if self.format == core::format::Format::Exact {
            return json.to_owned();
        }
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(mut v) => {
                core::format::apply(&mut v, self.format, &self.languages);
                v.to_string()
            }
            Err(_) => json.to_owned(),
        }
    }
}

pub(super) fn answer_shape(params: &[(String, String)], headers: &HeaderMap) -> ApiResult<AnswerShape> {
    let format = match params.iter().find(|(n, _)| n == "format") {
        Some((_, v)) => core::format::Format::parse(v).ok_or_else(|| {
            bad_request(
                ProblemCode::ParameterInvalid,
                "format",
                "must be exact, ids or canonical",
            )
        })?,
        None => core::format::Format::Exact,
    };
    let languages = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(core::format::accepted_languages)
        .unwrap_or_default();
    let attachments = match params.iter().find(|(n, _)| n == "attachments") {
        Some((_, v)) if v == "true" => true,
        Some((_, v)) if v == "false" => false,
        Some(_) => {
            return Err(bad_request(
                ProblemCode::ParameterInvalid,
                "attachments",
                "must be true or false",
            ));
        }
        None => false,
    };
    Ok(AnswerShape {
        format,
        languages,
        attachments,
    })
}

pub(super) async fn single_statement(
    state: &AppState,
    site: &SiteId,
    id: &str,
    voided: bool,
    shape: &AnswerShape,
) -> ApiResult<Response> {
    let field = if voided { "voidedStatementId" } else { "statementId" };
    let id = core::check_uuid(id, field).map_err(bad)?;
    let rows = state
        .xapi_store()
        .statements_by_ids(site, std::slice::from_ref(&id))
        .await?;
    match rows.into_iter().next() {
        Some(row) if row.voided == voided => {
            let modified = stored_at(&row.json);
            let body = shape.render(&row.json);
            Ok(with_last_modified(answer(state, site, shape, body).await?, modified))
        }
        Some(_) if voided => Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::NotVoided,
            "the statement is not voided; fetch it by `statementId`",
        )
        .into()),
        Some(_) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::StatementVoided,
            "the statement is voided; fetch it by `voidedStatementId`",
        )
        .into()),
        None => Err(StoreError::NotFound.into()),
    }
}

/// The filters of the query; unknown parameters and unsupported ones are
/// refused rather than ignored, so a client never reads a wrong answer.
pub(super) fn parse_query(params: &[(String, String)]) -> ApiResult<StatementQuery> {
    let mut q = StatementQuery {
        limit: crate::PAGE_SIZE_DEFAULT,
        ..Default::default()
    };
    let boolean = |name: &str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_request(
            ProblemCode::ParameterInvalid,
            name,
            "must be true or false",
        )),
    };
    let time = |name: &str, v: &str| {
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(Millis::from_datetime)
            .map_err(|e| {
                bad_request(
                    ProblemCode::ParameterInvalid,
                    name,
                    format!("is not an ISO 8601 timestamp: {e}"),
                )
            })
    };
    for (name, v) in params {
        let n = name.as_str();
        match n {
            "agent" => q.agent = Some(core::agent_key(v).map_err(bad)?),
            "verb" => {
                core::check_iri(v, "verb").map_err(bad)?;
                q.verb = Some(v.clone());
            }
            "activity" => {
                core::check_iri(v, "activity").map_err(bad)?;
                q.activity = Some(v.clone());
            }
            "registration" => q.registration = Some(core::check_uuid(v, "registration").map_err(bad)?),
            "since" => q.since = Some(time(n, v)?),
            "until" => q.until = Some(time(n, v)?),
            "ascending" => q.ascending = boolean(n, v)?,
            "attachments" => {
                boolean(n, v)?;
            }
            "related_agents" => q.related_agents = boolean(n, v)?,
            "related_activities" => q.related_activities = boolean(n, v)?,
            // Checked by `answer_shape`.
            "format" => {}
            "limit" => {
                let limit: usize = v
                    .parse()
                    .map_err(|_| bad_request(ProblemCode::ParameterInvalid, n, "must be a whole number"))?;
                q.limit = match limit {
                    0 => crate::PAGE_SIZE_DEFAULT,
                    l => l.min(crate::PAGE_SIZE_MAX),
                };
            }
            "cursor" => q.cursor = Some(decode_cursor(v)?),
            other => {
                return Err(bad_request(
                    ProblemCode::UnknownParameter,
                    other,
                    "is not a parameter of the statement query",
                ));
            }
        }
    }
    Ok(q)
}

pub(super) fn decode_cursor(v: &str) -> ApiResult<i64> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            bad_request(
                ProblemCode::ParameterInvalid,
                "cursor",
                "is not a cursor this LRS gave in `more`",
            )
        })
}

/// The next page: the same query, continuing after the last statement.
pub(super) fn more_link(params: &[(String, String)], last_seq: i64) -> String {
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("seq:{last_seq}"));
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|(n, _)| n != "cursor")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    pairs.push(("cursor", &cursor));
    let query: Vec<String> = pairs
        .into_iter()
        .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
        .collect();
    format!("/xapi/statements?{}", query.join("&"))
}

pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_more_link_carries_the_query_and_a_cursor_that_decodes_back() {
        let params = vec![
            ("verb".to_owned(), "http://adlnet.gov/expapi/verbs/completed".to_owned()),
            ("cursor".to_owned(), "old".to_owned()),
            ("limit".to_owned(), "3".to_owned()),
        ];
        let link = more_link(&params, 42);
        assert!(
            link.starts_with(
                "/xapi/statements?verb=http%3A%2F%2Fadlnet.gov%2Fexpapi%2Fverbs%2Fcompleted&limit=3&cursor="
            )
        );
        let uri: axum::http::Uri = link.parse().expect("uri");
        let pairs = query_pairs(&uri).expect("pairs");
        assert_eq!(pairs[0].1, "http://adlnet.gov/expapi/verbs/completed");
        let cursor = pairs
            .iter()
            .find(|(n, _)| n == "cursor")
            .map(|(_, v)| v.as_str())
            .expect("cursor");
        assert_eq!(decode_cursor(cursor).expect("decodes"), 42);
        assert!(decode_cursor("42").is_err(), "a cursor is only what `more` gave");
    }
}
