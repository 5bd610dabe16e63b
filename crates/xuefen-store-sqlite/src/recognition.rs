//! Recognition on SQLite: groups, their declaration's reversals, and caps.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, GroupId};
use xuefen_core::plan::{self, Lookups};
use xuefen_store::recognition::{
    CAP_COLUMNS, CapRecord, GROUP_COLUMNS, MEMBER_COLUMNS, MemberRecord, declaration_histories,
};
use xuefen_store::{Group, RecognitionStore, Result, Written};

use crate::ledger::ingest::{heads_of, insert_entries, learner_secrets, update_heads};
use crate::rows::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, entry_from_row, tuples};
use crate::{SqliteStore, db, unreadable};

/// Writes what declaring `group` plans ([`plan::plan_declaration`]) inside
/// the caller's write transaction, after its members were stored: the
/// reversals of earlier double payments among its courses.
async fn declare_group(conn: &mut SqliteConnection, group: &GroupId, now: Millis) -> Result<Vec<Entry>> {
    let rows = sqlx::query(concat!(
        "select ",
        entry_columns!(),
        " from ledger_entries l
         where (site_id, course_code) in
               (select site_id, course_code from recognition_members where group_id = ?1)
         order by chain_id, seq"
    ))
    .bind(group.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let entries = rows.iter().map(entry_from_row).collect::<Result<Vec<_>>>()?;
    // Under the write lock: every chain is as read.
    let histories = declaration_histories(entries, |_| true);
    if histories.is_empty() {
        return Ok(Vec::new());
    }
    let per_year: bool = sqlx::query_scalar(
        "select not exists (select 1 from recognition_members m
                              join courses c on c.site_id = m.site_id and c.code = m.course_code
                             where m.group_id = ?1 and c.credit_repeat <> 'per_year')",
    )
    .bind(group.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let chains: BTreeSet<u32> = histories.iter().map(|(_, c, _)| *c).collect();
    let heads = heads_of(conn, &chains).await?;
    let mut named = Lookups::default();
    for (learner, chain, _) in &histories {
        named.learner_chains.insert(learner.clone(), *chain);
    }
    let secrets = learner_secrets(conn, &named).await?;
    let planned = plan::plan_declaration(group, per_year, &histories, &heads, &secrets, now);
    insert_entries(conn, &planned.entries).await?;
    update_heads(conn, &planned.heads).await?;
    Ok(planned.entries)
}

#[async_trait]
impl RecognitionStore for SqliteStore {
    async fn put_group(&self, group: &Group, now: Millis) -> Result<(Written, Vec<Entry>)> {
        // Under the write lock, so that two admins cannot both claim a course.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let existed: bool = sqlx::query_scalar("select exists (select 1 from recognition_groups where id = ?1)")
            .bind(group.id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        for chunk in group.courses.chunks(PARAMS_PER_STATEMENT_MAX / 2) {
            let sql = format!(
                "select {MEMBER_COLUMNS}
                   from (values {}) as k
                   join recognition_members m on m.site_id = k.column1 and m.course_code = k.column2
                  where m.group_id <> ?",
                tuples(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
            for (site, code) in chunk {
                q = q.bind(site.as_str()).bind(code.as_str());
            }
            if let Some(row) = q.bind(group.id.as_str()).fetch_optional(&mut *tx).await.map_err(db)? {
                return Err(MemberRecord::read(&row)?.in_another_group());
            }
        }
        sqlx::query(&format!(
            concat!(
                "insert into recognition_groups ({cols}) values (?1, ?2)
                 on conflict (id) do update set title = excluded.title, updated_at = ",
                now_sql!()
            ),
            cols = GROUP_COLUMNS
        ))
        .bind(group.id.as_str())
        .bind(&group.title)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("delete from recognition_members where group_id = ?1")
            .bind(group.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for chunk in group.courses.chunks(PARAMS_PER_STATEMENT_MAX / 3) {
            let sql = format!(
                "insert into recognition_members ({MEMBER_COLUMNS}) values {}",
                tuples(chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS);
            for (site, code) in chunk {
                q = q.bind(site.as_str()).bind(code.as_str()).bind(group.id.as_str());
            }
            q.execute(&mut *tx).await.map_err(db)?;
        }
        let declared = declare_group(&mut tx, &group.id, now).await?;
        tx.commit().await.map_err(db)?;
        let written = if existed { Written::Existing } else { Written::Created };
        Ok((written, declared))
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        let title: Option<String> = sqlx::query_scalar("select title from recognition_groups where id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(title) = title else { return Ok(None) };
        let rows = sqlx::query(&format!(
            "select {MEMBER_COLUMNS} from recognition_members where group_id = ?1 order by site_id, course_code"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let courses = rows
            .iter()
            .map(|row| MemberRecord::read(row)?.course())
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Group {
            id: id.clone(),
            title,
            courses,
        }))
    }

    async fn set_cap(&self, category: &Category, annual: Option<Credits>) -> Result<()> {
        let upsert;
        match annual {
            Some(cap) => {
                upsert = format!(
                    concat!(
                        "insert into category_caps ({cols}) values (?1, ?2)
                         on conflict (category) do update set annual_cap_cents = excluded.annual_cap_cents,
                             updated_at = ",
                        now_sql!()
                    ),
                    cols = CAP_COLUMNS
                );
                sqlx::query(&upsert).bind(category.as_str()).bind(cap.cents())
            }
            None => sqlx::query("delete from category_caps where category = ?1").bind(category.as_str()),
        }
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn caps(&self) -> Result<Vec<(Category, Credits)>> {
        let rows = sqlx::query(&format!("select {CAP_COLUMNS} from category_caps order by category"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| {
                let read = |e| unreadable("category_caps", e);
                CapRecord {
                    category: row.try_get("category").map_err(read)?,
                    annual_cap_cents: row.try_get("annual_cap_cents").map_err(read)?,
                }
                .try_into()
            })
            .collect()
    }
}
