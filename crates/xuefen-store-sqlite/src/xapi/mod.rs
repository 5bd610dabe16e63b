//! The xAPI part of the SQLite store: statements written in one
//! `BEGIN IMMEDIATE` transaction with chunked multi-row inserts, the
//! statement query built from its filters.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use xuefen_core::entry::Entry;
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};
use xuefen_store::xapi::{
    NewStatement, PendingReindex, SqlValue, StatementQuery, StatementRow, StoredKey, XapiStore, statement_query,
};
use xuefen_store::xapi_documents::created_objects;
use xuefen_store::{ConflictKind, Result, StoreError, Written};

use crate::rows::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, placeholders, rows_in, tuples};
use crate::{SqliteStore, db, run_to_end};

mod documents;
pub(crate) mod erasure;

/// The columns of a [`StatementRow`], in its order.
/// Each is named (`as`): SQLite leaves the name of an unnamed result
/// column unspecified.
const ROW_COLUMNS: &str = "s.seq as seq, s.statement_id as statement_id, s.body as body,
    s.fingerprint as fingerprint, s.verb as verb,
    exists (select 1 from xapi_statements v where v.site_id = s.site_id and v.voids = s.statement_id) as voided";

/// Columns bound per statement row.
const STATEMENT_WIDTH: usize = 11;

/// The rows of `select <columns> where s.site_id = site and s.statement_id
/// in ids` (`columns` names the table as `s`), decoded by `decode`.
async fn rows_by_ids<T>(
    pool: &SqlitePool,
    columns: &str,
    site: &SiteId,
    ids: &[String],
    decode: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let head = format!("select {columns} where s.site_id = ? and s.statement_id in");
    rows_in(&mut conn, &head, site.as_str(), ids, decode).await
}

async fn insert_locked(
    pool: SqlitePool,
    site: SiteId,
    statements: Vec<NewStatement>,
    objects: Vec<Option<String>>,
) -> Result<Vec<Written>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let mut inserted = std::collections::HashSet::new();
    for chunk in statements.chunks(PARAMS_PER_STATEMENT_MAX / STATEMENT_WIDTH) {
        // Dynamic: the number of rows varies with the request.
        let sql = format!(
            "insert into xapi_statements
                 (site_id, statement_id, fingerprint, verb, activity, agent, authority, registration, voids,
                  stored_ms, body)
             values {} on conflict (site_id, statement_id) do nothing returning statement_id",
            tuples(chunk.len(), STATEMENT_WIDTH)
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for s in chunk {
            q = q
                .bind(site.as_str())
                .bind(&s.id)
                .bind(&s.fingerprint)
                .bind(&s.verb)
                .bind(&s.activity)
                .bind(&s.agent)
                .bind(&s.authority)
                .bind(&s.registration)
                .bind(&s.voids)
                .bind(s.stored.0)
                .bind(&s.json);
        }
        inserted.extend(q.fetch_all(&mut *tx).await.map_err(db)?);
    }
    let related: Vec<(&str, &str, &str)> = statements
        .iter()
        .filter(|s| inserted.contains(&s.id))
        .flat_map(|s| s.related_rows().map(move |(kind, value)| (s.id.as_str(), kind, value)))
        .collect();
    for chunk in related.chunks(PARAMS_PER_STATEMENT_MAX / 4) {
        // Dynamic: the number of rows varies with the request.
        let sql = format!(
            "insert into xapi_statement_related (site_id, statement_id, kind, value) values {}
             on conflict do nothing",
            tuples(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for (id, kind, value) in chunk {
            q = q.bind(site.as_str()).bind(*id).bind(*kind).bind(*value);
        }
        q.execute(&mut *tx).await.map_err(db)?;
    }
    let existing: Vec<&NewStatement> = statements.iter().filter(|s| !inserted.contains(&s.id)).collect();
    for chunk in existing.chunks(PARAMS_PER_STATEMENT_MAX) {
        let sql = format!(
            "select statement_id, fingerprint from xapi_statements where site_id = ? and statement_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(site.as_str());
        for s in chunk {
            q = q.bind(&s.id);
        }
        for row in q.fetch_all(&mut *tx).await.map_err(db)? {
            let (id, fingerprint): (String, String) = (
                row.try_get("statement_id").map_err(db)?,
                row.try_get("fingerprint").map_err(db)?,
            );
            if chunk.iter().any(|s| s.id == id && s.fingerprint != fingerprint) {
                tx.rollback().await.map_err(db)?;
                return Err(StoreError::conflict(ConflictKind::StatementDiffers, id));
            }
        }
    }
    let created = created_objects(&statements, &objects, |id| inserted.contains(id));
    documents::fold_into(&mut tx, &site, &created).await?;
    tx.commit().await.map_err(db)?;
    Ok(statements
        .iter()
        .map(|s| {
            if inserted.contains(&s.id) {
                Written::Created
            } else {
                Written::Existing
            }
        })
        .collect())
}

#[async_trait]
impl XapiStore for SqliteStore {
    async fn insert_statements_folding(
        &self,
        site: &SiteId,
        statements: &[NewStatement],
        objects: &[Option<String>],
    ) -> Result<Vec<Written>> {
        run_to_end(insert_locked(
            self.pool.clone(),
            site.clone(),
            statements.to_vec(),
            objects.to_vec(),
        ))
        .await
    }

    async fn statements_by_ids(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StatementRow>> {
        rows_by_ids(
            &self.pool,
            &format!("{ROW_COLUMNS} from xapi_statements s"),
            site,
            ids,
            StatementRow::read,
        )
        .await
    }

    async fn statement_keys(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StoredKey>> {
        let key = |row: &SqliteRow| {
            Ok(StoredKey {
                id: row.try_get("statement_id").map_err(db)?,
                fingerprint: row.try_get("fingerprint").map_err(db)?,
                verb: row.try_get("verb").map_err(db)?,
            })
        };
        let columns = "s.statement_id as statement_id, s.fingerprint as fingerprint, s.verb as verb
            from xapi_statements s";
        rows_by_ids(&self.pool, columns, site, ids, key).await
    }

    async fn query_statements(&self, site: &SiteId, q: &StatementQuery) -> Result<Vec<StatementRow>> {
        // Dynamic: each filter adds a condition only when given.
        let built = statement_query(ROW_COLUMNS, site, q, |n| format!("?{n}"));
        let mut query = sqlx::query(&built.sql).persistent(REUSE_DYNAMIC_STATEMENTS);
        for value in built.values {
            query = match value {
                SqlValue::Text(v) => query.bind(v),
                SqlValue::Int(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(StatementRow::read).collect()
    }

    async fn set_xapi_home_page(&self, site: &SiteId, home_page: &str) -> Result<()> {
        sqlx::query(
            "insert into xapi_profiles (site_id, home_page) values (?1, ?2)
             on conflict (site_id) do update set home_page = excluded.home_page",
        )
        .bind(site.as_str())
        .bind(home_page)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn xapi_home_page(&self, site: &SiteId) -> Result<Option<String>> {
        sqlx::query_scalar("select home_page from xapi_profiles where site_id = ?1")
            .bind(site.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn link_mbox_sha1sum(&self, site: &SiteId, account: &LocalAccount, sha1sum: &str) -> Result<Written> {
        let inserted = sqlx::query(
            "insert into xapi_mbox_links (site_id, mbox_sha1sum, local_account) values (?1, ?2, ?3)
             on conflict (site_id, mbox_sha1sum) do nothing",
        )
        .bind(site.as_str())
        .bind(sha1sum)
        .bind(account.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if inserted.rows_affected() == 1 {
            return Ok(Written::Created);
        }
        let linked: String =
            sqlx::query_scalar("select local_account from xapi_mbox_links where site_id = ?1 and mbox_sha1sum = ?2")
                .bind(site.as_str())
                .bind(sha1sum)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        if linked == account.as_str() {
            Ok(Written::Existing)
        } else {
            Err(StoreError::conflict(
                ConflictKind::LinkedElsewhere,
                "the mbox_sha1sum is registered for another account",
            ))
        }
    }

    async fn mbox_accounts(&self, site: &SiteId, sha1sums: &[String]) -> Result<Vec<(String, LocalAccount)>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let head = "select mbox_sha1sum, local_account from xapi_mbox_links where site_id = ? and mbox_sha1sum in";
        rows_in(&mut conn, head, site.as_str(), sha1sums, |row| {
            let sum: String = row.try_get("mbox_sha1sum").map_err(db)?;
            let account: String = row.try_get("local_account").map_err(db)?;
            let account = LocalAccount::parse(account).map_err(|e| StoreError::Corrupt {
                at: format!("xapi_mbox_links {sum}"),
                detail: e.to_string(),
            })?;
            Ok((sum, account))
        })
        .await
    }

    async fn set_course_activity(&self, site: &SiteId, course: &CourseCode, activity: Option<&str>) -> Result<()> {
        match activity {
            None => {
                sqlx::query("delete from xapi_course_activities where site_id = ?1 and course_code = ?2")
                    .bind(site.as_str())
                    .bind(course.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            }
            Some(iri) => {
                sqlx::query(
                    "insert into xapi_course_activities (site_id, course_code, activity_id) values (?1, ?2, ?3)
                     on conflict (site_id, course_code) do update set activity_id = excluded.activity_id",
                )
                .bind(site.as_str())
                .bind(course.as_str())
                .bind(iri)
                .execute(&self.pool)
                .await
                .map_err(db)?;
            }
        }
        Ok(())
    }

    async fn course_activity(&self, site: &SiteId, course: &CourseCode) -> Result<Option<String>> {
        sqlx::query_scalar("select activity_id from xapi_course_activities where site_id = ?1 and course_code = ?2")
            .bind(site.as_str())
            .bind(course.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn activity_courses(&self, site: &SiteId, activities: &[String]) -> Result<Vec<(String, CourseCode)>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let head = "select activity_id, course_code from xapi_course_activities where site_id = ? and activity_id in";
        rows_in(&mut conn, head, site.as_str(), activities, |row| {
            let iri: String = row.try_get("activity_id").map_err(db)?;
            let code: String = row.try_get("course_code").map_err(db)?;
            let code = CourseCode::parse(code).map_err(|e| StoreError::Corrupt {
                at: format!("xapi_course_activities {iri}"),
                detail: e.to_string(),
            })?;
            Ok((iri, code))
        })
        .await
    }

    async fn entries_by_events(&self, site: &SiteId, ids: &[EventId]) -> Result<Vec<Entry>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(SiteId, EventId)> = ids.iter().map(|id| (site.clone(), id.clone())).collect();
        let mut conn = self.pool.acquire().await.map_err(db)?;
        crate::ledger::lookups::entries_by_keys(&mut conn, &keys).await
    }

    async fn related_backfill_page(&self, limit: u32) -> Result<Vec<PendingReindex>> {
        let rows = sqlx::query(
            "select b.site_id, b.statement_id, s.body, s.agent, s.activity from xapi_related_backfill b
               left join xapi_statements s on s.site_id = b.site_id and s.statement_id = b.statement_id
              order by b.site_id, b.statement_id limit ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                PendingReindex::from_row(
                    row.try_get("site_id").map_err(db)?,
                    row.try_get("statement_id").map_err(db)?,
                    row.try_get("body").map_err(db)?,
                    row.try_get("agent").map_err(db)?,
                    row.try_get("activity").map_err(db)?,
                )
            })
            .collect()
    }

    async fn finish_related_backfill(&self, site: &SiteId, id: &str, rows: &[(&'static str, String)]) -> Result<()> {
        // The write lock first: an erasure cannot delete the statement
        // between the check and the insert.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        for (kind, value) in rows {
            sqlx::query(
                "insert or ignore into xapi_statement_related (site_id, statement_id, kind, value)
                 select ?1, ?2, ?3, ?4 where exists
                   (select 1 from xapi_statements where site_id = ?1 and statement_id = ?2)",
            )
            .bind(site.as_str())
            .bind(id)
            .bind(*kind)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("delete from xapi_related_backfill where site_id = ?1 and statement_id = ?2")
            .bind(site.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}
