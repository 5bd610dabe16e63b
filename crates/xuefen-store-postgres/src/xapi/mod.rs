//! The xAPI part of the PostgreSQL store: statements written with one
//! `UNNEST` insert per call, the statement query built from its filters.

use async_trait::async_trait;
use xuefen_core::entry::Entry;
use xuefen_core::ids::{CourseCode, EventId, LocalAccount, SiteId};
use xuefen_store::xapi::{
    NewStatement, PendingReindex, SqlValue, StatementQuery, StatementRow, StoredKey, XapiStore, statement_query,
};
use xuefen_store::xapi_documents::created_objects;
use xuefen_store::{ConflictKind, Result, StoreError, Written};

use crate::{Col, PgStore, db};

mod documents;
pub(crate) mod erasure;

/// The columns of a [`StatementRow`], in its order.
const ROW_COLUMNS: &str = "s.seq, s.statement_id, s.body, s.fingerprint, s.verb,
    exists (select 1 from xapi_statements v where v.site_id = s.site_id and v.voids = s.statement_id) as voided";

#[async_trait]
impl XapiStore for PgStore {
    async fn insert_statements_folding(
        &self,
        site: &SiteId,
        statements: &[NewStatement],
        objects: &[Option<String>],
    ) -> Result<Vec<Written>> {
        let col = |f: fn(&NewStatement) -> String| statements.iter().map(f).collect::<Vec<String>>();
        let opt = |f: fn(&NewStatement) -> Option<String>| statements.iter().map(f).collect::<Vec<Option<String>>>();
        let ids = col(|s| s.id.clone());
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Rows come out of `unnest` in array order, so `seq` follows the
        // order of the request.
        let inserted: Vec<String> = sqlx::query_scalar(
            "insert into xapi_statements
                 (site_id, statement_id, fingerprint, verb, activity, agent, authority, registration, voids,
                  stored_ms, body)
             select $1, i.id, i.fp, i.verb, i.activity, i.agent, i.authority, i.registration, i.voids,
                    i.stored_ms, i.body
               from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                           $9::text[], $10::bigint[], $11::text[]) with ordinality
                    as i(id, fp, verb, activity, agent, authority, registration, voids, stored_ms, body, n)
             order by n
             on conflict (site_id, statement_id) do nothing
             returning statement_id",
        )
        .bind(site.as_str())
        .bind(&ids)
        .bind(col(|s| s.fingerprint.clone()))
        .bind(col(|s| s.verb.clone()))
        .bind(opt(|s| s.activity.clone()))
        .bind(opt(|s| s.agent.clone()))
        .bind(opt(|s| s.authority.clone()))
        .bind(opt(|s| s.registration.clone()))
        .bind(opt(|s| s.voids.clone()))
        .bind(statements.iter().map(|s| s.stored.0).collect::<Vec<i64>>())
        .bind(col(|s| s.json.clone()))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
        let mut related: (Vec<&str>, Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new(), Vec::new());
        for s in statements.iter().filter(|s| inserted.contains(&s.id)) {
            for (kind, value) in s.related_rows() {
                related.0.push(&s.id);
                related.1.push(kind);
                related.2.push(value);
            }
        }
        if !related.0.is_empty() {
            sqlx::query(
                "insert into xapi_statement_related (site_id, statement_id, kind, value)
                 select $1, i.id, i.kind, i.value from unnest($2::text[], $3::text[], $4::text[]) as i(id, kind, value)
                 on conflict do nothing",
            )
            .bind(site.as_str())
            .bind(&related.0)
            .bind(&related.1)
            .bind(&related.2)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let existing: Vec<String> = ids.iter().filter(|id| !inserted.contains(*id)).cloned().collect();
        if !existing.is_empty() {
            let rows = sqlx::query(
                "select statement_id, fingerprint from xapi_statements where site_id = $1 and statement_id = any($2)",
            )
            .bind(site.as_str())
            .bind(&existing)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for row in rows {
                let (id, fingerprint): (String, String) = (row.col("statement_id")?, row.col("fingerprint")?);
                let ours = statements.iter().find(|s| s.id == id);
                if ours.is_some_and(|s| s.fingerprint != fingerprint) {
                    tx.rollback().await.map_err(db)?;
                    return Err(StoreError::conflict(ConflictKind::StatementDiffers, id));
                }
            }
        }
        let created = created_objects(statements, objects, |id| inserted.contains(id));
        documents::fold_into(&mut tx, site, &created).await?;
        tx.commit().await.map_err(db)?;
        Ok(ids
            .iter()
            .map(|id| {
                if inserted.contains(id) {
                    Written::Created
                } else {
                    Written::Existing
                }
            })
            .collect())
    }

    async fn statements_by_ids(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StatementRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql =
            format!("select {ROW_COLUMNS} from xapi_statements s where s.site_id = $1 and s.statement_id = any($2)");
        let rows = sqlx::query(&sql)
            .bind(site.as_str())
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(StatementRow::read).collect()
    }

    async fn statement_keys(&self, site: &SiteId, ids: &[String]) -> Result<Vec<StoredKey>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "select statement_id, fingerprint, verb from xapi_statements where site_id = $1 and statement_id = any($2)",
        )
        .bind(site.as_str())
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    id: row.col("statement_id")?,
                    fingerprint: row.col("fingerprint")?,
                    verb: row.col("verb")?,
                })
            })
            .collect()
    }

    async fn query_statements(&self, site: &SiteId, q: &StatementQuery) -> Result<Vec<StatementRow>> {
        // Dynamic: each filter adds a condition only when given.
        let built = statement_query(ROW_COLUMNS, site, q, |n| format!("${n}"));
        let mut query = sqlx::query(&built.sql);
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
            "insert into xapi_profiles (site_id, home_page) values ($1, $2)
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
        sqlx::query_scalar("select home_page from xapi_profiles where site_id = $1")
            .bind(site.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn link_mbox_sha1sum(&self, site: &SiteId, account: &LocalAccount, sha1sum: &str) -> Result<Written> {
        let inserted = sqlx::query(
            "insert into xapi_mbox_links (site_id, mbox_sha1sum, local_account) values ($1, $2, $3)
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
            sqlx::query_scalar("select local_account from xapi_mbox_links where site_id = $1 and mbox_sha1sum = $2")
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
        if sha1sums.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "select mbox_sha1sum, local_account from xapi_mbox_links where site_id = $1 and mbox_sha1sum = any($2)",
        )
        .bind(site.as_str())
        .bind(sha1sums)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let sum: String = row.col("mbox_sha1sum")?;
                let account: String = row.col("local_account")?;
                let account = LocalAccount::parse(account).map_err(|e| StoreError::Corrupt {
                    at: format!("xapi_mbox_links {sum}"),
                    detail: e.to_string(),
                })?;
                Ok((sum, account))
            })
            .collect()
    }

    async fn set_course_activity(&self, site: &SiteId, course: &CourseCode, activity: Option<&str>) -> Result<()> {
        match activity {
            None => {
                sqlx::query("delete from xapi_course_activities where site_id = $1 and course_code = $2")
                    .bind(site.as_str())
                    .bind(course.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            }
            Some(iri) => {
                sqlx::query(
                    "insert into xapi_course_activities (site_id, course_code, activity_id) values ($1, $2, $3)
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
        sqlx::query_scalar("select activity_id from xapi_course_activities where site_id = $1 and course_code = $2")
            .bind(site.as_str())
            .bind(course.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn activity_courses(&self, site: &SiteId, activities: &[String]) -> Result<Vec<(String, CourseCode)>> {
        if activities.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "select activity_id, course_code from xapi_course_activities where site_id = $1 and activity_id = any($2)",
        )
        .bind(site.as_str())
        .bind(activities)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let iri: String = row.col("activity_id")?;
                let code: String = row.col("course_code")?;
                let code = CourseCode::parse(code).map_err(|e| StoreError::Corrupt {
                    at: format!("xapi_course_activities {iri}"),
                    detail: e.to_string(),
                })?;
                Ok((iri, code))
            })
            .collect()
    }

    async fn entries_by_events(&self, site: &SiteId, ids: &[EventId]) -> Result<Vec<Entry>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(SiteId, EventId)> = ids.iter().map(|id| (site.clone(), id.clone())).collect();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let entries = crate::ledger::lookups::entries_by_keys(&mut tx, &keys)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(entries)
    }

    async fn related_backfill_page(&self, limit: u32) -> Result<Vec<PendingReindex>> {
        let rows = sqlx::query(
            "select b.site_id, b.statement_id, s.body, s.agent, s.activity from xapi_related_backfill b
               left join xapi_statements s on s.site_id = b.site_id and s.statement_id = b.statement_id
              order by b.site_id, b.statement_id limit $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                PendingReindex::from_row(
                    row.col("site_id")?,
                    row.col("statement_id")?,
                    row.col("body")?,
                    row.col("agent")?,
                    row.col("activity")?,
                )
            })
            .collect()
    }

    async fn finish_related_backfill(&self, site: &SiteId, id: &str, rows: &[(&'static str, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The statement's row locked first: an erasure deleting it waits for
        // this transaction, or has already deleted it and nothing is added.
        let stored: Option<i32> =
            sqlx::query_scalar("select 1 from xapi_statements where site_id = $1 and statement_id = $2 for update")
                .bind(site.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
        if stored.is_some() && !rows.is_empty() {
            let kinds: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
            let values: Vec<&str> = rows.iter().map(|(_, v)| v.as_str()).collect();
            sqlx::query(
                "insert into xapi_statement_related (site_id, statement_id, kind, value)
                 select $1, $2, i.kind, i.value from unnest($3::text[], $4::text[]) as i(kind, value)
                 on conflict do nothing",
            )
            .bind(site.as_str())
            .bind(id)
            .bind(&kinds)
            .bind(&values)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        sqlx::query("delete from xapi_related_backfill where site_id = $1 and statement_id = $2")
            .bind(site.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }
}
