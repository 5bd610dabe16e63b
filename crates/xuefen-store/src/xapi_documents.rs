//! The storage port of the xAPI document resources, beside the statement
//! port ([`crate::xapi::XapiStore`]): State, Activity Profile and Agent
//! Profile documents, and the canonical Activity Objects of the Activities
//! resource.
//!
//! Every row is under its site: a site is its own LRS tenant and never sees
//! another's documents; only [`XapiDocumentStore::document_usage`] without a
//! site (the admin's view) spans sites. Documents are not credits and never
//! touch the ledger. Each write is one transaction that checks the request's
//! preconditions (`If-Match`, `If-None-Match`), merges a POST into the
//! stored JSON, and keeps the per-document and per-site size limits, so a
//! refused write changes nothing. The decision is [`decide`], shared by both
//! backends.

use async_trait::async_trait;
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::attachments::Part;
use xuefen_core::xapi::documents::{self as core, MergeError};

use crate::row::{Columns, ReadRow};
use crate::{Result, Written};

/// The three document resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    State,
    ActivityProfile,
    AgentProfile,
}

impl DocumentKind {
    /// The stored name (the `kind` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::ActivityProfile => "activity_profile",
            Self::AgentProfile => "agent_profile",
        }
    }
}

/// Which documents: the resource and the parameters that scope it. A
/// parameter the resource does not take is the empty string (`registration`
/// too when the request gave none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentScope {
    pub kind: DocumentKind,
    pub activity: String,
    /// The agent's key ([`xuefen_core::xapi::Ifi::key`]).
    pub agent: String,
    /// Lower-case UUID, or empty.
    pub registration: String,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Hex SHA-1 of `body`, unquoted.
    pub etag: String,
    pub updated: Millis,
}

impl Document {
    /// A row of `xapi_documents` (`document_id`, `content_type`, `body`,
    /// `etag`, `updated_ms`).
    pub fn read<R: ReadRow + ?Sized>(row: &R) -> Result<Self> {
        let c = Columns::of("xapi_documents", row);
        Ok(Self {
            id: c.get("document_id")?,
            content_type: c.get("content_type")?,
            body: c.get("body")?,
            etag: c.get("etag")?,
            updated: Millis(c.get("updated_ms")?),
        })
    }
}

/// An `If-Match` / `If-None-Match` header: `*` or a list of entity tags
/// (unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagMatch {
    Any,
    Tags(Vec<String>),
}

impl TagMatch {
    fn matches(&self, doc: Option<&Document>) -> bool {
        match (self, doc) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(d)) => tags.iter().any(|t| t.eq_ignore_ascii_case(&d.etag)),
        }
    }
}

/// The preconditions of a write or a delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preconditions {
    pub if_match: Option<TagMatch>,
    pub if_none_match: Option<TagMatch>,
    /// A PUT over an existing document without either header is refused
    /// (409): the Agent and Activity Profile resources always, the State
    /// resource from xAPI 2.0.0 on.
    pub required_to_overwrite: bool,
    /// A PUT without either header is refused even when no document
    /// exists (400): the profile resources at xAPI 1.0.x.
    pub required_to_create: bool,
}

/// The size limits a write is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    pub document_bytes_max: usize,
    pub site_bytes_max: u64,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            document_bytes_max: core::DOCUMENT_BYTES_MAX,
            site_bytes_max: core::SITE_DOCUMENT_BYTES_MAX,
        }
    }
}

/// One PUT (replace) or POST (merge) of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentWrite {
    pub scope: DocumentScope,
    pub id: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// POST: merge into a stored JSON object.
    pub merge: bool,
    pub preconditions: Preconditions,
    pub limits: DocumentLimits,
    pub now: Millis,
}

/// Why a write or a delete was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentRefusal {
    /// `If-Match` / `If-None-Match` did not hold (412).
    PreconditionFailed,
    /// A PUT over an existing document without a precondition (409).
    PreconditionRequired,
    /// A PUT of a new document without a precondition where one is always
    /// required (400).
    PreconditionMissing,
    /// A POST where the stored or the posted document is not a JSON object
    /// (400).
    NotMergeable(MergeError),
    /// The document (after a merge) is larger than the limit (413).
    DocumentTooLarge { bytes_max: usize },
    /// The site's documents would exceed its limit (413).
    SiteLimitReached { bytes_max: u64 },
}

/// What a write stores, decided from the stored document (if any) and the
/// bytes the site's documents hold now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub document: Document,
    /// The change of the site's document bytes.
    pub delta: i64,
    pub created: bool,
}

/// Checks the preconditions against the stored document; `Err` when they
/// fail.
pub fn check_preconditions(p: &Preconditions, stored: Option<&Document>) -> Result<(), DocumentRefusal> {
    if let Some(m) = &p.if_match
        && !m.matches(stored)
    {
        return Err(DocumentRefusal::PreconditionFailed);
    }
    if let Some(m) = &p.if_none_match
        && m.matches(stored)
    {
        return Err(DocumentRefusal::PreconditionFailed);
    }
    Ok(())
}

/// The decision of a write (the same on every backend).
pub fn decide(w: &DocumentWrite, stored: Option<&Document>, site_bytes: u64) -> Result<Decision, DocumentRefusal> {
    check_preconditions(&w.preconditions, stored)?;
    let p = &w.preconditions;
    if !w.merge && p.if_match.is_none() && p.if_none_match.is_none() {
        if stored.is_some() && (p.required_to_overwrite || p.required_to_create) {
            return Err(DocumentRefusal::PreconditionRequired);
        }
        if stored.is_none() && p.required_to_create {
            return Err(DocumentRefusal::PreconditionMissing);
        }
    }
    let (content_type, body) = match stored {
        Some(s) if w.merge => {
            if !core::is_json_type(&s.content_type) {
                return Err(DocumentRefusal::NotMergeable(MergeError::StoredNotJsonObject));
            }
            if !core::is_json_type(&w.content_type) {
                return Err(DocumentRefusal::NotMergeable(MergeError::PostedNotJsonObject));
            }
            (
                s.content_type.clone(),
                core::merge(&s.body, &w.body).map_err(DocumentRefusal::NotMergeable)?,
            )
        }
        _ => {
            if w.merge && core::is_json_type(&w.content_type) && core::json_object(&w.body).is_none() {
                return Err(DocumentRefusal::NotMergeable(MergeError::PostedNotJsonObject));
            }
            (w.content_type.clone(), w.body.clone())
        }
    };
    if body.len() > w.limits.document_bytes_max {
        return Err(DocumentRefusal::DocumentTooLarge {
            bytes_max: w.limits.document_bytes_max,
        });
    }
    let old = stored.map_or(0, |s| s.body.len());
    let delta = i64::try_from(body.len()).unwrap_or(i64::MAX) - i64::try_from(old).unwrap_or(i64::MAX);
    let after = i128::from(site_bytes) + i128::from(delta);
    if delta > 0 && after > i128::from(w.limits.site_bytes_max) {
        return Err(DocumentRefusal::SiteLimitReached {
            bytes_max: w.limits.site_bytes_max,
        });
    }
    Ok(Decision {
        document: Document {
            id: w.id.clone(),
            content_type,
            etag: core::etag(&body),
            body,
            updated: w.now,
        },
        delta,
        created: stored.is_none(),
    })
}

/// How much one site stores (the admin's view spans every site).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUsage {
    pub site: SiteId,
    pub documents: u64,
    pub bytes: u64,
}

/// The document part of the storage port. Every method but
/// `document_usage(None)` is scoped to one site.
#[async_trait]
pub trait XapiDocumentStore: Send + Sync {
    /// Stores (PUT) or merges (POST) one document in one transaction, or
    /// changes nothing and says why.
    async fn write_document(&self, site: &SiteId, w: &DocumentWrite) -> Result<Result<Written, DocumentRefusal>>;
    async fn document(&self, site: &SiteId, scope: &DocumentScope, id: &str) -> Result<Option<Document>>;
    /// The ids of the scope's documents updated strictly after `since`
    /// (all without it), in id order.
    async fn document_ids(&self, site: &SiteId, scope: &DocumentScope, since: Option<Millis>) -> Result<Vec<String>>;
    /// Deletes one document (`id`) or every document of the scope; the
    /// preconditions are checked against the one document. Answers how many
    /// were deleted.
    async fn delete_documents(
        &self,
        site: &SiteId,
        scope: &DocumentScope,
        id: Option<&str>,
        preconditions: &Preconditions,
    ) -> Result<Result<u64, DocumentRefusal>>;
    /// Documents and bytes per site: one site's, or every site's (`None`).
    async fn document_usage(&self, site: Option<&SiteId>) -> Result<Vec<DocumentUsage>>;

    /// Folds Activity Objects (id, JSON) from statements into the stored
    /// canonical ones ([`core::merge_activity`]), in order.
    async fn merge_activities(&self, site: &SiteId, activities: &[(String, String)]) -> Result<()>;
    /// The canonical Activity Object (JSON) of an activity id.
    async fn activity(&self, site: &SiteId, id: &str) -> Result<Option<String>>;

    /// Stores attachment bytes by their SHA-256 (the same hash is the same
    /// bytes, so a stored one is left as it is).
    async fn put_attachments(&self, site: &SiteId, parts: &[Part]) -> Result<()>;
    /// The stored attachments among these hashes (lower-case hex), in no
    /// particular order.
    async fn attachments(&self, site: &SiteId, sha2s: &[String]) -> Result<Vec<Part>>;
}

/// The merged Activity Objects to store: `stored` (id, JSON) folded with
/// `incoming` in order, only those new or changed by the fold (the same on
/// every backend).
pub fn fold_activities(stored: &[(String, String)], incoming: &[(String, String)]) -> Vec<(String, String)> {
    // (id, the stored object if any, the folded one)
    let mut out: Vec<(String, Option<serde_json::Value>, serde_json::Value)> = stored
        .iter()
        .filter_map(|(id, json)| {
            serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .map(|v| (id.clone(), Some(v.clone()), v))
        })
        .collect();
    for (id, json) in incoming {
        let Ok(new) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        match out.iter_mut().find(|(i, _, _)| i == id) {
            Some((_, _, old)) => *old = core::merge_activity(old, &new),
            None => out.push((id.clone(), None, new)),
        }
    }
    out.into_iter()
        .filter(|(_, before, after)| before.as_ref() != Some(after))
        .map(|(id, _, v)| (id, v.to_string()))
        .collect()
}

/// The (id, Activity Object) pairs of the created statements among
/// `statements`, in order: what [`crate::xapi::XapiStore::insert_statements_folding`]
/// folds (`objects` runs parallel to `statements`).
pub fn created_objects(
    statements: &[crate::xapi::NewStatement],
    objects: &[Option<String>],
    created: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    statements
        .iter()
        .zip(objects)
        .filter(|(s, _)| created(&s.id))
        .filter_map(|(s, o)| Some((s.activity.clone()?, o.clone()?)))
        .collect()
}
