//! Learners: real-name registration, linking a site's local account,
//! erasure.

use crate::AppState;
use crate::auth::Caller;
use crate::body::ApiJson;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::problem_code::ProblemCode;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use xuefen_core::FieldError;
use xuefen_core::identity::{Document, DocumentKind};
use xuefen_core::ids::{LearnerId, LocalAccount};
use xuefen_store::{NewLearner, Principal, Written};

use crate::problem::PositionOut;
use crate::wire::*;

/// `registered_at` of a registration or account link: RFC 3339, from
/// 2000-01-01 up to now (plus the usual clock skew).
fn parse_registered_at(value: Option<&str>) -> ApiResult<Option<xuefen_core::event::Millis>> {
    let Some(value) = value else { return Ok(None) };
    let at = xuefen_core::event::Millis::parse_rfc3339(value, "registered_at").map_err(|e| Problem::invalid(&e))?;
    let late = now().0.saturating_add(xuefen_core::limits::COMPLETED_AT_FUTURE_SKEW_MS);
    if at.0 < xuefen_core::limits::COMPLETED_AT_MIN_MS || at.0 > late {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "registered_at",
            "must be between 2000-01-01 and now",
        ))
        .into());
    }
    Ok(Some(at))
}

/// Registers a real-name learner, or finds the one already registered with
/// the same document (by any site). The document number is kept only as a
/// keyed hash. With `local_account`, links the site's account too.
///
/// The answer's `learner_id` is the caller's own id of the learner: the
/// unified id for the admin, the caller's pseudonym (`psn_…`) for a site.
/// The credit bank sends a holder's real-name data (no `local_account`) to
/// learn its pseudonym of the holder, the one its deposits carry: it
/// registers nobody (an unknown person is 404, a wrong name 409).
///
/// Roles: admin; site; credit bank (match only).
#[utoipa::path(post, path = "/v1/learners", operation_id = "register_learner", tag = "learners",
    security(("api_key" = [])), request_body = LearnerIn,
    responses((status = 201, body = LearnerOut), (status = 200, body = LearnerOut),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn register_learner(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<LearnerIn>,
) -> ApiResult<Response> {
    let parsed = input.parse()?;
    let registered_at = parse_registered_at(input.registered_at.as_deref())?;
    if registered_at.is_some() && parsed.local_account.is_none() {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "registered_at",
            "dates a site's registration, so it needs `local_account`",
        ))
        .into());
    }
    let site = match (&caller.principal, &parsed.local_account) {
        (Principal::Site(site), _) => Some(site.clone()),
        (Principal::Admin, None) => None,
        (Principal::Bank, Some(_)) => {
            return Err(Problem::invalid(&xuefen_core::FieldError::new(
                "local_account",
                "only a site links its own accounts",
            ))
            .into());
        }
        (Principal::Bank, None) => {
            // Match only: the bank learns its pseudonym of a holder the
            // alliance knows, and registers nobody.
            let id = same_person(&state, &parsed.document.keyed_hash(&state.identity_key), &parsed.name).await?;
            let out = LearnerOut {
                learner_id: crate::pseudonyms::show(&state, &caller.principal, &id).await?,
                created: false,
            };
            return Ok((StatusCode::OK, Json(out)).into_response());
        }
        (Principal::Admin, Some(_)) => {
            return Err(Problem::invalid(&xuefen_core::FieldError::new(
                "local_account",
                "only a site links its own accounts",
            ))
            .into());
        }
    };
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let document_hash = parsed.document.keyed_hash(&state.identity_key);
    let candidate = LearnerId::from_random(bytes);
    // The name sealed under the learner's own key, written with it (used
    // only if the person is new).
    let (name, wrapped_key) = crate::names::seal_under_new_key(&state, &candidate, &document_hash, &parsed.name);
    let new = NewLearner {
        secret,
        candidate,
        document_kind: parsed.document.kind(),
        name,
        wrapped_key: Some(wrapped_key),
        document_hash,
    };
    let (id, written) = state.learner_store().register_learner(&new).await?;
    if written == Written::Existing {
        same_person(&state, &new.document_hash, &parsed.name).await?;
    }
    if let (Some(site), Some(account)) = (site, parsed.local_account) {
        state
            .store
            .link_account(&site, &account, &id, registered_at)
            .await
            .map_err(account_conflict)?;
    }
    let out = LearnerOut {
        learner_id: crate::pseudonyms::show(&state, &caller.principal, &id).await?,
        created: written == Written::Created,
    };
    Ok((status_for(written), Json(out)).into_response())
}

/// Checks real-name data against the person registered with the document:
/// a different name under the same document is a 409 naming `name`, never a
/// silent match. Returns the learner.
async fn same_person(state: &AppState, document_hash: &[u8; 32], name: &str) -> ApiResult<LearnerId> {
    let Some((id, stored)) = crate::names::learner_by_document(state, document_hash).await? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownLearner,
            "no learner is registered with this document",
        )
        .with_field("document")
        .into());
    };
    if stored != name {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::NameMismatch,
            "the name does not match the one registered with this document",
        )
        .with_field("name")
        .into());
    }
    Ok(id)
}

/// The legal bases an erasure may name, recorded as its reason code.
pub(crate) const ERASURE_REASONS: &[&str] = &[
    // PIPL art. 47: the person asks for deletion, or the purpose is met.
    "pipl_art47",
    // GDPR art. 17: the right to erasure.
    "gdpr_art17",
    "consent_withdrawn",
    "court_order",
    "retention_expired",
];

/// Erases a learner's personal data: real name, document hash, account
/// links and the secret their entries' commitments are made under, so that
/// nothing ties the ledger to the person any more; every entry, checkpoint
/// and proof stays valid. Recorded in the ledger as an `erased` entry with
/// the legal reason code (`?reason_code=`, one of `pipl_art47`,
/// `gdpr_art17`, `consent_withdrawn`, `court_order`, `retention_expired`)
/// and nothing personal. Afterwards the learner's transcript is 404.
///
/// Roles: admin.
#[utoipa::path(delete, path = "/v1/learners/{learner_id}", operation_id = "erase_learner", tag = "learners",
    security(("api_key" = [])),
    params(("learner_id" = String, Path), ("reason_code" = String, Query, description = "the legal basis: pipl_art47, gdpr_art17, consent_withdrawn, court_order or retention_expired")),
    responses((status = 200, body = ErasureOut), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn erase_learner(
    State(state): State<AppState>,
    caller: Caller,
    Path(learner_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ErasureOut>> {
    caller.require_admin()?;
    let learner = crate::pseudonyms::resolve(&state, &caller.principal, &learner_id, "learner_id").await?;
    let code = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("reason_code="))
        .unwrap_or_default();
    if !ERASURE_REASONS.contains(&code) {
        return Err(Problem::invalid(&xuefen_core::FieldError::new(
            "reason_code",
            format!("must be one of {}", ERASURE_REASONS.join(", ")),
        ))
        .into());
    }
    let reason = xuefen_core::event::Reason::code(code, "reason_code")?;
    let position = state
        .store
        .erase_learner(&learner, &reason, now())
        .await
        .map_err(|e| match e {
            xuefen_store::StoreError::NotFound => ApiError::from(
                Problem::new(
                    StatusCode::NOT_FOUND,
                    ProblemCode::UnknownLearner,
                    "no learner has this id (or it was erased)",
                )
                .with_field("learner_id"),
            ),
            e => e.into(),
        })?;
    tracing::info!(%position, reason_code = code, "learner erased");
    Ok(Json(ErasureOut {
        erased: true,
        position: position.into(),
        reason_code: code.to_owned(),
    }))
}

fn account_conflict(e: xuefen_store::StoreError) -> ApiError {
    match e {
        xuefen_store::StoreError::Conflict(_) => Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::AccountLinkedElsewhere,
            "this local account is already linked to another learner",
        )
        .with_field("local_account")
        .into(),
        e => e.into(),
    }
}

/// Links the calling site's local account to a learner, given proof that
/// the site knows the person: the full real-name data matching what is
/// stored (a name mismatch is a 409 naming `name`), or the learner's
/// consent through their single sign-on token.
///
/// Roles: site.
#[utoipa::path(put, path = "/v1/accounts/{local_account}", operation_id = "link_account", tag = "learners",
    security(("api_key" = [])), params(("local_account" = String, Path)), request_body = AccountLinkIn,
    responses((status = 201, body = AccountLinkOut), (status = 200, body = AccountLinkOut),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn link_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    ApiJson(input): ApiJson<AccountLinkIn>,
) -> ApiResult<Response> {
    let site = caller.require_site()?.clone();
    let account = path_id(LocalAccount::parse_input, account)?;
    let registered_at = parse_registered_at(input.registered_at.as_deref())?;
    let learner = match input.parse()? {
        AccountLinkParsed::RealName { name, document } => {
            same_person(&state, &document.keyed_hash(&state.identity_key), &name).await?
        }
        AccountLinkParsed::Consent { learner, token } => {
            crate::pseudonyms::consenting_learner(&state, &caller.principal, &token, learner.as_deref()).await?
        }
    };
    let written = state
        .store
        .link_account(&site, &account, &learner, registered_at)
        .await
        .map_err(account_conflict)?;
    let out = AccountLinkOut {
        local_account: account.to_string(),
        learner_id: crate::pseudonyms::show(&state, &caller.principal, &learner).await?,
        created: written == Written::Created,
    };
    Ok((status_for(written), Json(out)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentIn {
    /// `resident_id` (18 characters, MOD 11-2 check digit), `passport`,
    /// `hk_macao_permit`, `taiwan_permit` or `foreign_permanent_resident`.
    pub kind: String,
    pub number: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LearnerIn {
    /// Real name; kept out of the ledger.
    pub name: String,
    pub document: DocumentIn,
    /// The registering site's own account id, linked to the learner.
    pub local_account: Option<String>,
    /// RFC 3339: when the learner registered on the site, for a
    /// registration older than this request (a back-fill). The statistics
    /// count the registration in that year; the service still records when
    /// it was told. Needs `local_account`. Absent: now.
    pub registered_at: Option<String>,
}

pub(crate) struct LearnerParsed {
    pub name: String,
    pub document: Document,
    pub local_account: Option<LocalAccount>,
}

impl LearnerIn {
    pub(crate) fn parse(&self) -> Result<LearnerParsed, FieldError> {
        let kind = DocumentKind::parse(&self.document.kind)?;
        Ok(LearnerParsed {
            name: text(&self.name, "name")?,
            document: Document::parse(kind, &self.document.number)?,
            local_account: self.local_account.clone().map(LocalAccount::parse_input).transpose()?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct LearnerOut {
    /// The caller's id of the learner: the unified id (`lrn_…`) for the
    /// admin, the caller's own pseudonym (`psn_…`) for a site or the bank.
    pub learner_id: String,
    /// False when the person was already registered (by any site).
    pub created: bool,
}

/// The record of an erasure: where its ledger entry is, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ErasureOut {
    pub erased: bool,
    /// The `erased` entry in the learner's former chain.
    pub position: PositionOut,
    pub reason_code: String,
}

/// What links a local account to a learner: proof that the site knows the
/// person. Either the full real-name data (`name` and `document`, which
/// must match what is stored), or `consent_token`, the learner's own single
/// sign-on token, which names them; `learner_id`, if sent with it, must be
/// the site's own id of that learner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountLinkIn {
    pub learner_id: Option<String>,
    /// The learner's single sign-on token: their consent to the link.
    pub consent_token: Option<String>,
    /// Real name, with `document`: the full real-name data of the person.
    pub name: Option<String>,
    pub document: Option<DocumentIn>,
    /// RFC 3339: when the learner registered on the site, for a link older
    /// than this request (a back-fill); counted in that year's statistics.
    pub registered_at: Option<String>,
}

/// An account link request, checked for its shape.
pub(crate) enum AccountLinkParsed {
    /// The learner's consent through their token.
    Consent { learner: Option<String>, token: String },
    /// The person's full real-name data.
    RealName { name: String, document: Document },
}

impl AccountLinkIn {
    pub(crate) fn parse(&self) -> Result<AccountLinkParsed, FieldError> {
        match (&self.name, &self.document) {
            (Some(name), Some(doc)) => {
                if self.learner_id.is_some() || self.consent_token.is_some() {
                    return Err(FieldError::new(
                        "learner_id",
                        "send either the real-name data (name, document) or learner_id with consent_token, not both",
                    ));
                }
                let kind = DocumentKind::parse(&doc.kind)?;
                Ok(AccountLinkParsed::RealName {
                    name: text(name, "name")?,
                    document: Document::parse(kind, &doc.number)?,
                })
            }
            (Some(_), None) => Err(FieldError::new("document", "is required with name")),
            (None, Some(_)) => Err(FieldError::new("name", "is required with document")),
            (None, None) => {
                let token = required(&self.consent_token, "consent_token").map_err(|_| {
                    FieldError::new(
                        "consent_token",
                        "linking without the real-name data needs the learner's consent: their single sign-on token",
                    )
                })?;
                Ok(AccountLinkParsed::Consent {
                    learner: self.learner_id.clone(),
                    token,
                })
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AccountLinkOut {
    pub local_account: String,
    /// The site's own pseudonym of the learner.
    pub learner_id: String,
    pub created: bool,
}
