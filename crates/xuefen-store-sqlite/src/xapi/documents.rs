//! The xAPI document resources on SQLite: each write is one `BEGIN
//! IMMEDIATE` transaction (the database's single write lock), so the
//! precondition check, the merge and the site's byte count see no
//! concurrent change.

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use xuefen_core::event::Millis;
use xuefen_core::ids::SiteId;
use xuefen_core::xapi::attachments::Part;
use xuefen_store::xapi_documents::{
    Document, DocumentRefusal, DocumentScope, DocumentUsage, DocumentWrite, Preconditions, XapiDocumentStore,
    check_preconditions, decide, fold_activities,
};
use xuefen_store::{Result, StoreError, Written};

use crate::rows::rows_in;
use crate::{SqliteStore, db, run_to_end};

const SCOPE: &str = "site_id = ?1 and kind = ?2 and activity_id = ?3 and agent = ?4 and registration = ?5";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn read_document(
    conn: &mut sqlx::SqliteConnection,
    site: &SiteId,
    scope: &DocumentScope,
    id: &str,
) -> Result<Option<Document>> {
    let sql = format!(
        "select document_id, content_type, body, etag, updated_ms from xapi_documents where {SCOPE} and document_id = ?6"
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

async fn site_bytes(conn: &mut sqlx::SqliteConnection, site: &SiteId) -> Result<u64> {
    let bytes: Option<i64> = sqlx::query_scalar("select bytes from xapi_document_usage where site_id = ?1")
        .bind(site.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(count(bytes.unwrap_or(0)))
}

async fn add_usage(conn: &mut sqlx::SqliteConnection, site: &SiteId, documents: i64, bytes: i64) -> Result<()> {
    // Created on a site's first write (with zero), then only updated: a
    // negative change never goes through the insert's checks.
    sqlx::query("insert into xapi_document_usage (site_id, documents, bytes) values (?1, 0, 0) on conflict (site_id) do nothing")
        .bind(site.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query("update xapi_document_usage set documents = documents + ?2, bytes = bytes + ?3 where site_id = ?1")
        .bind(site.as_str())
        .bind(documents)
        .bind(bytes)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

async fn write_locked(pool: SqlitePool, site: SiteId, w: DocumentWrite) -> Result<Result<Written, DocumentRefusal>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let stored = read_document(&mut tx, &site, &w.scope, &w.id).await?;
    let used = site_bytes(&mut tx, &site).await?;
    let decision = match decide(&w, stored.as_ref(), used) {
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
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
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
    add_usage(&mut tx, &site, i64::from(decision.created), decision.delta).await?;
    tx.commit().await.map_err(db)?;
    Ok(Ok(if decision.created {
        Written::Created
    } else {
        Written::Existing
    }))
}

async fn delete_locked(
    pool: SqlitePool,
    site: SiteId,
    scope: DocumentScope,
    id: Option<String>,
    p: Preconditions,
) -> Result<Result<u64, DocumentRefusal>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if let Some(id) = &id {
        let stored = read_document(&mut tx, &site, &scope, id).await?;
        if let Err(refusal) = check_preconditions(&p, stored.as_ref()) {
            tx.rollback().await.map_err(db)?;
            return Ok(Err(refusal));
        }
    }
    let sql =
        format!("delete from xapi_documents where {SCOPE} and (?6 is null or document_id = ?6) returning length(body)");
    let lengths: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(site.as_str())
        .bind(scope.kind.as_str())
        .bind(&scope.activity)
        .bind(&scope.agent)
        .bind(&scope.registration)
        .bind(id.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let n = i64::try_from(lengths.len()).unwrap_or(i64::MAX);
    if n > 0 {
        add_usage(&mut tx, &site, -n, -lengths.iter().sum::<i64>()).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(Ok(count(n)))
}

async fn merge_activities_locked(pool: SqlitePool, site: SiteId, incoming: Vec<(String, String)>) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    fold_into(&mut tx, &site, &incoming).await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Folds Activity Objects (id, JSON) into the stored canonical ones, in
/// the caller's `BEGIN IMMEDIATE` transaction (no concurrent writer): the
/// stored ones read in chunks, only the rows the fold changes written.
pub(super) async fn fold_into(
    conn: &mut sqlx::SqliteConnection,
    site: &SiteId,
    incoming: &[(String, String)],
) -> Result<()> {
    if incoming.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = incoming.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let head = "select activity_id, object from xapi_activities where site_id = ? and activity_id in";
    let stored: Vec<(String, String)> = rows_in(&mut *conn, head, site.as_str(), &ids, |row| {
        Ok((
            row.try_get("activity_id").map_err(db)?,
            row.try_get("object").map_err(db)?,
        ))
    })
    .await?;
    for (id, json) in fold_activities(&stored, incoming) {
        sqlx::query(
            "insert into xapi_activities (site_id, activity_id, object) values (?1, ?2, ?3)
             on conflict (site_id, activity_id) do update set object = excluded.object",
        )
        .bind(site.as_str())
        .bind(&id)
        .bind(&json)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

#[async_trait]
impl XapiDocumentStore for SqliteStore {
    async fn write_document(&self, site: &SiteId, w: &DocumentWrite) -> Result<Result<Written, DocumentRefusal>> {
        run_to_end(write_locked(self.pool.clone(), site.clone(), w.clone())).await
    }

    async fn document(&self, site: &SiteId, scope: &DocumentScope, id: &str) -> Result<Option<Document>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        read_document(&mut conn, site, scope, id).await
    }

    async fn document_ids(&self, site: &SiteId, scope: &DocumentScope, since: Option<Millis>) -> Result<Vec<String>> {
        let sql = format!(
            "select document_id from xapi_documents where {SCOPE} and (?6 is null or updated_ms > ?6)
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
        run_to_end(delete_locked(
            self.pool.clone(),
            site.clone(),
            scope.clone(),
            id.map(str::to_owned),
            preconditions.clone(),
        ))
        .await
    }

    async fn document_usage(&self, site: Option<&SiteId>) -> Result<Vec<DocumentUsage>> {
        let rows = sqlx::query(
            "select site_id, documents, bytes from xapi_document_usage where ?1 is null or site_id = ?1
             order by site_id",
        )
        .bind(site.map(SiteId::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("site_id").map_err(db)?;
                let site = SiteId::parse(id.clone()).map_err(|e| StoreError::Corrupt {
                    at: format!("xapi_document_usage {id}"),
                    detail: e.to_string(),
                })?;
                Ok(DocumentUsage {
                    site,
                    documents: count(row.try_get("documents").map_err(db)?),
                    bytes: count(row.try_get("bytes").map_err(db)?),
                })
            })
            .collect()
    }

    async fn merge_activities(&self, site: &SiteId, activities: &[(String, String)]) -> Result<()> {
        if activities.is_empty() {
            return Ok(());
        }
        run_to_end(merge_activities_locked(
            self.pool.clone(),
            site.clone(),
            activities.to_vec(),
        ))
        .await
    }

    async fn activity(&self, site: &SiteId, id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("select object from xapi_activities where site_id = ?1 and activity_id = ?2")
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
                "insert into xapi_attachments (site_id, sha2, content_type, body) values (?1, ?2, ?3, ?4)
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
        let mut out = Vec::new();
        for sha2 in sha2s {
            let row =
                sqlx::query("select sha2, content_type, body from xapi_attachments where site_id = ?1 and sha2 = ?2")
                    .bind(site.as_str())
                    .bind(sha2)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
            if let Some(row) = row {
                out.push(Part {
                    sha2: row.try_get("sha2").map_err(db)?,
                    content_type: row.try_get("content_type").map_err(db)?,
                    body: row.try_get("body").map_err(db)?,
                });
            }
        }
        Ok(out)
    }
}
