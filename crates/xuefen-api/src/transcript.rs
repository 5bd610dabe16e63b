//! Learners' transcripts: totals and pages of entries, for a site, the
//! admin, or the signed-in learner.

use crate::AppState;
use crate::auth::{Caller, forbidden};
use crate::problem::{ApiResult, Problem};
use crate::problem_code::ProblemCode;
use crate::sso::SignedInLearner;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::entry::{Entry, EntryKind};
use xuefen_core::ids::{Category, CourseCode, LearnerId, SiteId};
use xuefen_core::transcript::{Filter, Totals, status_of, totals_from_rows};
use xuefen_store::Principal;

use crate::problem::PositionOut;

/// A learner's transcript: totals by year, category and site over the whole
/// history, and a page of entries with their status and ledger position.
/// For the admin and for sites that have linked or credited the learner.
/// `learner_id` is the caller's id of the learner: the unified id or any
/// party's pseudonym for the admin, the site's own pseudonym for a site
/// (another site's pseudonym is the same 404 as an unknown one); learners
/// are named in the answer the same way.
///
/// Roles: admin; site (learners it linked or credited). Not the credit bank.
#[utoipa::path(get, path = "/v1/learners/{learner_id}/transcript", operation_id = "get_transcript", tag = "learners",
    security(("api_key" = [])),
    params(("learner_id" = String, Path),
           ("after" = Option<String>, Query, description = "cursor: `next_after` of the previous page"),
           ("limit" = Option<u32>, Query, description = "lines per page, 1 to 500 (default 100)"),
           ("year" = Option<i32>, Query, description = "only the lines (and totals) of this calendar year, China Standard Time"),
           ("category" = Option<String>, Query, description = "only the lines (and totals) of this category"),
           ("site" = Option<String>, Query, description = "only the lines (and totals) of this site (its id)")),
    responses((status = 200, body = TranscriptOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_transcript(
    State(state): State<AppState>,
    caller: Caller,
    Path(learner): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<TranscriptOut>> {
    caller.refuse_bank()?;
    let learner = crate::pseudonyms::resolve(&state, &caller.principal, &learner, "learner_id").await?;
    let page = Page::parse(query.as_deref())?;
    if !state.learner_store().learner_exists(&learner).await? {
        return Err(crate::pseudonyms::unknown("learner_id"));
    }
    if let Principal::Site(site) = &caller.principal
        && !state.learner_store().site_knows_learner(site, &learner).await?
    {
        return Err(forbidden("a site reads only the transcripts of learners it has linked or credited").into());
    }
    let mut out = transcript_page(&state, &learner, page).await?;
    crate::pseudonyms::show_transcript(&state, &caller.principal, &mut out).await?;
    Ok(Json(out))
}

/// The signed-in learner's own transcript (bearer token of the province's
/// single sign-on), paged like the admin's view.
#[utoipa::path(get, path = "/v1/me/transcript", operation_id = "get_my_transcript", tag = "learners",
    security(("sso" = [])),
    params(("after" = Option<String>, Query, description = "cursor: `next_after` of the previous page"),
           ("limit" = Option<u32>, Query, description = "lines per page, 1 to 500 (default 100)"),
           ("year" = Option<i32>, Query, description = "only the lines (and totals) of this calendar year, China Standard Time"),
           ("category" = Option<String>, Query, description = "only the lines (and totals) of this category"),
           ("site" = Option<String>, Query, description = "only the lines (and totals) of this site (its id)")),
    responses((status = 200, body = TranscriptOut), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_my_transcript(
    State(state): State<AppState>,
    SignedInLearner(learner): SignedInLearner,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<TranscriptOut>> {
    let page = Page::parse(query.as_deref())?;
    if !state.learner_store().learner_exists(&learner).await? {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownLearner,
            "no learner is registered under the token's subject",
        )
        .into());
    }
    Ok(Json(transcript_page(&state, &learner, page).await?))
}

/// `?after=CHAIN:SEQ&limit=N&year=Y&category=C&site=S`, parsed.
pub(crate) struct Page {
    after_seq: u64,
    pub(crate) limit: usize,
    filter: Filter,
}

impl Page {
    pub(crate) fn parse(query: Option<&str>) -> ApiResult<Self> {
        let mut page = Page {
            after_seq: 0,
            limit: crate::PAGE_SIZE_DEFAULT,
            filter: Filter::default(),
        };
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace("%3A", ":").replace("%3a", ":");
            match name {
                "after" => {
                    let seq = value.split_once(':').and_then(|(chain, seq)| {
                        chain.parse::<u32>().ok()?;
                        seq.parse::<u64>().ok()
                    });
                    page.after_seq = seq.ok_or_else(|| {
                        Problem::invalid(&xuefen_core::FieldError::new(
                            "after",
                            "must be a ledger position `CHAIN:SEQ`, as `next_after` gives it",
                        ))
                    })?;
                }
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=crate::PAGE_SIZE_MAX).contains(n))
                        .ok_or_else(|| {
                            Problem::invalid(&xuefen_core::FieldError::new(
                                "limit",
                                format!("must be a whole number from 1 to {}", crate::PAGE_SIZE_MAX),
                            ))
                        })?;
                }
                "year" => {
                    let year = value.parse::<i32>().ok().filter(|y| (1900..=9999).contains(y));
                    page.filter.year = Some(year.ok_or_else(|| {
                        Problem::invalid(&xuefen_core::FieldError::new(
                            "year",
                            "must be a calendar year, four digits",
                        ))
                    })?);
                }
                "category" => {
                    let category = Category::parse_as(value, "category").map_err(|e| Problem::invalid(&e))?;
                    page.filter.category = Some(category.as_str().to_owned());
                }
                "site" => {
                    let site = SiteId::parse_as(value, "site").map_err(|e| Problem::invalid(&e))?;
                    page.filter.site = Some(site.as_str().to_owned());
                }
                other => {
                    return Err(Problem::invalid(&xuefen_core::FieldError::new(
                        other.to_owned(),
                        "is not a parameter of this operation (after, limit, year, category, site)",
                    ))
                    .into());
                }
            }
        }
        Ok(page)
    }
}

/// Site and course reads of one page run at once, at most this many of each.
const LOOKUPS_AT_ONCE: usize = 4;

pub(crate) async fn transcript_page(state: &AppState, learner: &LearnerId, page: Page) -> ApiResult<TranscriptOut> {
    // The page and the sums over the whole history are independent reads:
    // on two connections at once, the answer waits for the longer only.
    let (mut entries, (rows, referred)) = tokio::try_join!(
        listed_lines(state, learner, &page),
        state.transcript_store().learner_summary(learner)
    )?;
    let more = entries.len() > page.limit;
    entries.truncate(page.limit);
    let rows: Vec<_> = rows.into_iter().filter(|r| page.filter.matches_row(r)).collect();
    let totals = totals_from_rows(&rows);
    let (site_names, titles) = names(state, &totals, &entries).await?;
    let s = |m: std::collections::BTreeMap<String, xuefen_core::amount::Credits>| {
        m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
    };
    Ok(TranscriptOut {
        learner_id: learner.to_string(),
        totals: TotalsOut {
            total: totals.total.to_string(),
            by_year: totals
                .by_year
                .into_iter()
                .map(|(y, c)| (y.to_string(), c.to_string()))
                .collect(),
            by_category: s(totals.by_category),
            by_site: s(totals.by_site),
        },
        next_after: if more {
            entries.last().map(|e| e.position.to_string())
        } else {
            None
        },
        entries: entries
            .iter()
            .map(|e| {
                let mut line = EntryOut::new(e, Some(status_of(e, &referred).as_str()));
                line.course_title = titles
                    .get(&(e.body.site.clone(), e.body.course.clone()))
                    .cloned()
                    .flatten();
                line.site_name = site_names.get(e.body.site.as_str()).cloned();
                line
            })
            .collect(),
        site_names,
    })
}

/// Reads the learner's entries in ledger order until one more listed line
/// than asked (which tells whether another page follows) or the end. The
/// bank's acknowledgements and lines outside the filter are skipped, so a
/// page may take more than one read; each read moves forward, so the loop
/// ends within the learner's history.
async fn listed_lines(
    state: &AppState,
    learner: &LearnerId,
    page: &Page,
) -> std::result::Result<Vec<Entry>, xuefen_store::StoreError> {
    let chunk = page.limit + 1;
    let mut entries: Vec<Entry> = Vec::with_capacity(chunk);
    let mut after = page.after_seq;
    loop {
        let read = state
            .transcript_store()
            .learner_entries_page(learner, after, chunk)
            .await?;
        let exhausted = read.len() < chunk;
        let Some(last) = read.last() else { break };
        after = last.position.seq;
        entries.extend(read.into_iter().filter(|e| page.filter.matches(e)));
        if exhausted || entries.len() > page.limit {
            break;
        }
    }
    Ok(entries)
}

/// A site's name by its id; a course's title (if it has one) by its site and code.
type Names = (
    std::collections::BTreeMap<String, String>,
    std::collections::HashMap<(SiteId, CourseCode), Option<String>>,
);

/// The names of the sites in the totals and on the page, and the titles of
/// the page's courses: one read per site and per course, a few at once so
/// that a page of many courses does not take the pool.
async fn names(state: &AppState, totals: &Totals, entries: &[Entry]) -> ApiResult<Names> {
    let sites = totals
        .by_site
        .keys()
        .cloned()
        .chain(entries.iter().map(|e| e.body.site.as_str().to_owned()))
        .collect::<std::collections::BTreeSet<_>>();
    let courses = entries
        .iter()
        .map(|e| (e.body.site.clone(), e.body.course.clone()))
        .collect::<std::collections::BTreeSet<_>>();
    let site_reads = sites.into_iter().map(|id| async move {
        let site = SiteId::parse(id.clone()).map_err(|e| Problem::invalid(&e))?;
        let name = state.site_store().site(&site).await?.map(|s| s.name);
        Ok::<_, crate::problem::ApiError>(name.map(|n| (id, n)))
    });
    let course_reads = courses.into_iter().map(|key| async move {
        let title = state.course_store().course(&key.0, &key.1).await?.map(|c| c.title);
        Ok::<_, crate::problem::ApiError>((key, title))
    });
    let (site_names, titles): (Vec<_>, std::collections::HashMap<_, _>) = tokio::try_join!(
        futures::stream::iter(site_reads)
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .try_collect(),
        futures::stream::iter(course_reads)
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .try_collect()
    )?;
    Ok((site_names.into_iter().flatten().collect(), titles))
}

/// An entry as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryOut {
    pub position: PositionOut,
    pub event_id: String,
    pub site_id: String,
    /// `awarded`, `not_passed`, `reversal`, `recognised`, `capped` or `promoted`.
    pub kind: String,
    /// On a transcript: `awarded`, `not_passed`, `reversal`, `recognised`
    /// (credited already through another course of its recognition group),
    /// `capped`, `promoted`, `reversed` (cancelled by a later reversal),
    /// `deposited` (accepted by the credit bank) or `rejected_by_bank`. The
    /// bank's decisions are the status of the line they decide, never
    /// lines of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// On a transcript: the course's title, as its site declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_title: Option<String>,
    /// On a transcript: the name of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    pub learner_id: String,
    pub course: String,
    pub category: String,
    #[schema(value_type = String)]
    pub credits: String,
    pub occurred_at: String,
    pub recorded_at: String,
    pub rule_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<PositionOut>,
    /// For a recognised entry: the group's paid entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_by: Option<PositionOut>,
    /// For a promotion: the recognised entry it promotes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotes: Option<PositionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognition_group: Option<String>,
    /// Recognised and capped entries: the credits the rule gave that were not paid.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    /// SHA-256 of the entry, hex.
    pub hash: String,
}

impl EntryOut {
    pub fn new(e: &Entry, status: Option<&str>) -> Self {
        let b = &e.body;
        Self {
            position: e.position.into(),
            event_id: b.event_id.to_string(),
            site_id: b.site.to_string(),
            kind: b.kind.as_str().to_owned(),
            status: status.map(str::to_owned),
            course_title: None,
            site_name: None,
            learner_id: b.learner.to_string(),
            course: b.course.to_string(),
            category: b.category.to_string(),
            credits: b.credits.to_string(),
            occurred_at: b.occurred_at.to_rfc3339(),
            recorded_at: b.recorded_at.to_rfc3339(),
            rule_version: b.rule_version,
            reverses: b.refers_to.filter(|_| b.kind == EntryKind::Reversal).map(Into::into),
            paid_by: b.refers_to.filter(|_| b.kind == EntryKind::Recognised).map(Into::into),
            promotes: b.refers_to.filter(|_| b.kind == EntryKind::Promoted).map(Into::into),
            recognition_group: b.recognition_group.as_ref().map(ToString::to_string),
            withheld: b.withheld.map(|w| w.to_string()),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TotalsOut {
    #[schema(value_type = String)]
    pub total: String,
    /// Credits by calendar year (China Standard Time).
    #[schema(value_type = Object)]
    pub by_year: std::collections::BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub by_category: std::collections::BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub by_site: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TranscriptOut {
    pub learner_id: String,
    /// Totals over the learner's whole history (within `?year=`,
    /// `?category=` and `?site=` when given), whatever the page.
    pub totals: TotalsOut,
    /// One page of lines, in ledger order (within the filters when given).
    pub entries: Vec<EntryOut>,
    /// The name of every site in the totals and on the page, by site id.
    #[schema(value_type = Object)]
    pub site_names: std::collections::BTreeMap<String, String>,
    /// The cursor of the next page (`?after=`): the ledger position of this
    /// page's last line. Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}
