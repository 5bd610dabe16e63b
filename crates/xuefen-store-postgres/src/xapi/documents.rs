//! The xAPI document resources on PostgreSQL. A site's usage is kept in
//! [`SHARDS`] rows (`xapi_document_usage_shards`, migration 0014); each
//! write is one transaction that first locks the shard of its document's
//! scope, so that writes of one document (and of one scope) see no
//! concurrent change while writes of other scopes go on in parallel.
//!
//! The per-site byte limit stays exact: a writer holding one shard reads
//! the site's committed total after taking its lock, and goes ahead only
//! if the total, its own change and [`SHARDS`]` - 1` whole documents (at
//! most one uncommitted write per other shard) still fit. Otherwise it
//! starts again holding every shard of the site (taken in shard order),
//! when the total it reads is the exact one. Every writer takes shard
//! locks before document rows, and the writes of one document share a
//! shard, so the locks cannot deadlock.

use async_trait::async_trait;
use sqlx::PgConnection;
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::attachments::Part;
use xuefen_store::xapi_documents::{
    Document, DocumentRefusal, DocumentScope, DocumentUsage, DocumentWrite, Preconditions, XapiDocumentStore,
    check_preconditions, decide, fold_activities,
};
use xuefen_store::{Result, StoreError, Written};

use crate::{Col, PgStore, db};

const SCOPE: &str = "site_id = $1 and kind = $2 and activity_id = $3 and agent = $4 and registration = $5";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn read_document(
    conn: &mut PgConnection,
    site: &SiteId,
    scope: &DocumentScope,
    id: &str,
    lock: bool,
) -> Result<Option<Document>> {
    let sql = format!(
        "select document_id, content_type, body, etag, updated_ms from xapi_documents where {SCOPE} and document_id = $6{}",
        if lock { " for update" } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(site.as_str())
        .bind(scope.kind.as_str())
        .bind(&scope.activity)
        .bind(&scope.agent)
        .bind(&scope.registration)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref().map(Document::read).transpose()
}

/// The usage shards of a site (`xapi_document_usage_shards.shard` is
/// `0..SHARDS`).
const SHARDS: i16 = 16;

/// The usage shard of a document scope (FNV-1a of its parts): every
/// document of a scope counts in one shard.
fn shard_of(scope: &DocumentScope) -> i16 {
    let mut h: u32 = 0x811c_9dc5;
    for part in [
        scope.kind.as_str(),
        scope.activity.as_str(),
        scope.agent.as_str(),
        scope.registration.as_str(),
    ] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    i16::try_from(h % SHARDS.unsigned_abs() as u32).unwrap_or(0)
}

/// Locks one usage shard of the site (creating it).
async fn lock_shard(conn: &mut PgConnection, site: &SiteId, shard: i16) -> Result<()> {
    sqlx::query(
        "insert into xapi_document_usage_shards (site_id, shard, documents, bytes) values ($1, $2, 0, 0)
         on conflict (site_id, shard) do update set documents = xapi_document_usage_shards.documents",
    )
    .bind(site.as_str())
    .bind(shard)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Locks every usage shard of the site, in shard order (creating them).
async fn lock_all_shards(conn: &mut PgConnection, site: &SiteId) -> Result<()> {
    sqlx::query(
        "insert into xapi_document_usage_shards (site_id, shard, documents, bytes)
         select $1, g::smallint, 0, 0 from generate_series(0, $2 - 1) as g order by g
         on conflict (site_id, shard) do update set documents = xapi_document_usage_shards.documents",
    )
    .bind(site.as_str())
    .bind(i32::from(SHARDS))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The site's committed bytes (every shard), read after the caller's
/// shard lock.
async fn site_bytes(conn: &mut PgConnection, site: &SiteId) -> Result<u64> {
    let bytes: i64 =
        sqlx::query_scalar("select coalesce(sum(bytes), 0)::bigint from xapi_document_usage_shards where site_id = $1")
            .bind(site.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    Ok(count(bytes))
}

async fn add_usage(conn: &mut PgConnection, site: &SiteId, shard: i16, documents: i64, bytes: i64) -> Result<()> {
    sqlx::query(
        "update xapi_document_usage_shards set documents = documents + $3, bytes = bytes + $4
         where site_id = $1 and shard = $2",
    )
    .bind(site.as_str())
    .bind(shard)
    .bind(documents)
    .bind(bytes)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// One attempt at a write: holding the scope's shard only (`exact` false:
/// refused with `SiteLimitReached` unless it fits with room for a whole
/// document per other shard), or holding every shard (`exact`).
async fn try_write(
    store: &PgStore,
    site: &SiteId,
    w: &DocumentWrite,
    exact: bool,
) -> Result<Result<Written, DocumentRefusal>> {
    let shard = shard_of(&w.scope);
    let mut tx = store.pool.begin().await.map_err(db)?;
    if exact {
        lock_all_shards(&mut tx, site).await?;
    } else {
        lock_shard(&mut tx, site, shard).await?;
    }
    let used = site_bytes(&mut tx, site).await?;
    let others = if exact {
        0
    } else {
        u64::try_from(w.limits.document_bytes_max)
            .unwrap_or(u64::MAX)
            .saturating_mul(SHARDS.unsigned_abs() as u64 - 1)
    };
    let stored = read_document(&mut tx, site, &w.scope, &w.id, true).await?;
    let decision = match decide(w, stored.as_ref(), used.saturating_add(others)) {
        Ok(d) => d,
        Err(refusal) => {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(refusal));
        }
    };
    let d = &decision.document;
    sqlx::query(
        "insert into xapi_documents
             (site_id, kind, activity_id, agent, registration, document_id, content_type, body, etag, updated_ms)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (site_id, kind, activity_id, agent, registration, document_id) do update set
             content_type = excluded.content_type, body = excluded.body, etag = excluded.etag,
             updated_ms = excluded.updated_ms",
    )
    .bind(site.as_str())
    .bind(w.scope.kind.as_str())
    .bind(&w.scope.activity)
    .bind(&w.scope.agent)
    .bind(&w.scope.registration)
    .bind(&d.id)
    .bind(&d.content_type)
    .bind(&d.body)
    .bind(&d.etag)
    .bind(d.updated.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    add_usage(&mut tx, site, shard, i64::from(decision.created), decision.delta).await?;
    tx.commit().await.map_err(db)?;
    Ok(Ok(if decision.created {
        Written::Created
    } else {
        Written::Existing
    }))
}

async fn stored_activities(conn: &mut PgConnection, site: &SiteId, ids: &[&str]) -> Result<Vec<(String, String)>> {
    let rows =
        sqlx::query("select activity_id, object from xapi_activities where site_id = $1 and activity_id = any($2)")
            .bind(site.as_str())
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    rows.iter()
        .map(|r| Ok((r.col("activity_id")?, r.col("object")?)))
        .collect()
}

/// Folds Activity Objects (id, JSON) into the stored canonical ones, in
/// the caller's transaction. One read; when the fold changes nothing (the
/// usual case: statements about a known activity), nothing is locked or
/// written. Otherwise the changed activities are locked in id order (one
/// statement), read again and folded again, and only the rows that change
/// are written (one statement), so concurrent writers about one activity
/// fold one after the other.
pub(super) async fn fold_into(conn: &mut PgConnection, site: &SiteId, incoming: &[(String, String)]) -> Result<()> {
    if incoming.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = incoming.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let stored = stored_activities(conn, site, &ids).await?;
    let changed = fold_activities(&stored, incoming);
    if changed.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = changed.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    sqlx::query(
        "select count(pg_advisory_xact_lock(hashtextextended($1 || '|' || x, 19)))
           from (select x from unnest($2::text[]) as x order by x) as ordered",
    )
    .bind(site.as_str())
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let stored = stored_activities(conn, site, &ids).await?;
    let incoming: Vec<(String, String)> = incoming
        .iter()
        .filter(|(id, _)| ids.binary_search(&id.as_str()).is_ok())
        .cloned()
        .collect();
    let (ids, objects): (Vec<String>, Vec<String>) = fold_activities(&stored, &incoming).into_iter().unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into xapi_activities (site_id, activity_id, object)
         select $1, i.id, i.object from unnest($2::text[], $3::text[]) as i(id, object)
         on conflict (site_id, activity_id) do update set object = excluded.object",
    )
    .bind(site.as_str())
    .bind(&ids)
    .bind(&objects)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl XapiDocumentStore for PgStore {
    async fn write_document(&self, site: &SiteId, w: &DocumentWrite) -> Result<Result<Written, DocumentRefusal>> {
        match try_write(self, site, w, false).await? {
            Err(DocumentRefusal::SiteLimitReached { .. }) => try_write(self, site, w, true).await,
            done => Ok(done),
        }
    }

    async fn document(&self, site: &SiteId, scope: &DocumentScope, id: &str) -> Result<Option<Document>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        read_document(&mut conn, site, scope, id, false).await
    }

    async fn document_ids(&self, site: &SiteId, scope: &DocumentScope, since: Option<Millis>) -> Result<Vec<String>> {
        let sql = format!(
            "select document_id from xapi_documents where {SCOPE} and ($6::bigint is null or updated_ms > $6)
             order by document_id"
        );
        sqlx::query_scalar(&sql)
            .bind(site.as_str())
            .bind(scope.kind.as_str())
            .bind(&scope.activity)
            .bind(&scope.agent)
            .bind(&scope.registration)
            .bind(since.map(|m| m.0))
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn delete_documents(
        &self,
        site: &SiteId,
        scope: &DocumentScope,
        id: Option<&str>,
        preconditions: &Preconditions,
    ) -> Result<Result<u64, DocumentRefusal>> {
        let shard = shard_of(scope);
        let mut tx = self.pool.begin().await.map_err(db)?;
        lock_shard(&mut tx, site, shard).await?;
        if let Some(id) = id {
            let stored = read_document(&mut tx, site, scope, id, true).await?;
            if let Err(refusal) = check_preconditions(preconditions, stored.as_ref()) {
                tx.rollback().await.map_err(db)?;
                return Ok(Err(refusal));
            }
        }
        let sql = format!(
            "delete from xapi_documents where {SCOPE} and ($6::text is null or document_id = $6)
             returning length(body)::bigint"
        );
        let lengths: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(site.as_str())
            .bind(scope.kind.as_str())
            .bind(&scope.activity)
            .bind(&scope.agent)
            .bind(&scope.registration)
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let n = i64::try_from(lengths.len()).unwrap_or(i64::MAX);
        if n > 0 {
            add_usage(&mut tx, site, shard, -n, -lengths.iter().sum::<i64>()).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Ok(count(n)))
    }

    async fn document_usage(&self, site: Option<&SiteId>) -> Result<Vec<DocumentUsage>> {
        let rows = sqlx::query(
            "select site_id, documents, bytes from xapi_document_usage where $1::text is null or site_id = $1
             order by site_id",
        )
        .bind(site.map(SiteId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let id: String = row.col("site_id")?;
                let site = SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                    at: format!("xapi_document_usage {id}"),
                    detail: e.to_string(),
                })?;
                Ok(DocumentUsage {
                    site,
                    documents: count(row.col("documents")?),
                    bytes: count(row.col("bytes")?),
                })
            })
            .collect()
    }

    async fn merge_activities(&self, site: &SiteId, activities: &[(String, String)]) -> Result<()> {
        if activities.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        fold_into(&mut tx, site, activities).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn activity(&self, site: &SiteId, id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("select object from xapi_activities where site_id = $1 and activity_id = $2")
            .bind(site.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn put_attachments(&self, site: &SiteId, parts: &[Part]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        for p in parts {
            sqlx::query(
                "insert into xapi_attachments (site_id, sha2, content_type, body) values ($1, $2, $3, $4)
                 on conflict (site_id, sha2) do nothing",
            )
            .bind(site.as_str())
            .bind(&p.sha2)
            .bind(&p.content_type)
            .bind(&p.body)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn attachments(&self, site: &SiteId, sha2s: &[String]) -> Result<Vec<Part>> {
        if sha2s.is_empty() {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query("select sha2, content_type, body from xapi_attachments where site_id = $1 and sha2 = any($2)")
                .bind(site.as_str())
                .bind(sha2s)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(Part {
                    sha2: row.col("sha2")?,
                    content_type: row.col("content_type")?,
                    body: row.col("body")?,
                })
            })
            .collect()
    }
}
