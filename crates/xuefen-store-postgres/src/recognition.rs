//! Recognition on PostgreSQL: groups, their declaration's reversals, and caps.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};
use xuefen_core::amount::Credits;
use xuefen_core::entry::Entry;
use xuefen_core::event::Millis;
use xuefen_core::ids::{Category, GroupId};
use xuefen_core::plan::{self, Lookups};
use xuefen_store::recognition::{
    CAP_COLUMNS, CapRecord, GROUP_COLUMNS, MEMBER_COLUMNS, MemberRecord, declaration_histories,
};
use xuefen_store::{Group, RecognitionStore, Result, Written};

use crate::ledger::ingest::heads::{learner_secrets, lock_heads};
use crate::ledger::ingest::write::{insert_entries, update_heads};
use crate::{Col, PgStore, db};
use xuefen_store::records::EntryRecord;

/// Writes what declaring `group` plans ([`plan::plan_declaration`]) inside
/// the caller's transaction, after its members were stored: the reversals
/// of earlier double payments among its courses. The chains involved are
/// locked, then their entries read again under the locks.
async fn declare_group(
    tx: &mut Transaction<'_, Postgres>,
    group: &GroupId,
    now: Millis,
) -> std::result::Result<Vec<Entry>, sqlx::Error> {
    const HISTORY: &str = concat!(
        "select ",
        entry_columns!(),
        " from ledger_entries l
         where (site_id, course_code) in
               (select site_id, course_code from recognition_members where group_id = $1)
         order by chain_id, seq"
    );
    let chains: BTreeSet<u32> = sqlx::query_scalar::<_, i32>(
        "select distinct l.chain_id from recognition_members m
           join ledger_entries l on l.site_id = m.site_id and l.course_code = m.course_code
          where m.group_id = $1",
    )
    .bind(group.as_str())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .filter_map(|c| u32::try_from(c).ok())
    .collect();
    if chains.is_empty() {
        return Ok(Vec::new());
    }
    let mut locked = Lookups::default();
    lock_heads(tx, &chains, &mut locked).await?;
    let rows = sqlx::query(HISTORY).bind(group.as_str()).fetch_all(&mut **tx).await?;
    let entries = rows
        .iter()
        .map(|row| EntryRecord::read(row).and_then(Entry::try_from))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    // Entries of chains that gained a member-course entry between the two
    // reads are left out: their chains are not locked.
    let histories = declaration_histories(entries, |chain| locked.heads.contains_key(&chain));
    let per_year: bool = sqlx::query_scalar(
        "select not exists (select 1 from recognition_members m
                              join courses c on c.site_id = m.site_id and c.code = m.course_code
                             where m.group_id = $1 and c.credit_repeat <> 'per_year')",
    )
    .bind(group.as_str())
    .fetch_one(&mut **tx)
    .await?;
    for (learner, chain, _) in &histories {
        locked.learner_chains.insert(learner.clone(), *chain);
    }
    let secrets = learner_secrets(tx, &locked).await?;
    let planned = plan::plan_declaration(group, per_year, &histories, &locked.heads, &secrets, now);
    if !planned.entries.is_empty() {
        let inserted = insert_entries(tx, &planned.entries).await?;
        if inserted != planned.entries.len() as u64 {
            return Err(sqlx::Error::Protocol(
                "a declaration reversal's event id is taken".into(),
            ));
        }
        update_heads(tx, &planned.heads).await?;
    }
    Ok(planned.entries)
}

#[async_trait]
impl RecognitionStore for PgStore {
    async fn put_group(&self, group: &Group, now: Millis) -> Result<(Written, Vec<Entry>)> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Serialises group changes, so that two admins cannot both claim a
        // course (a transaction-scoped advisory lock; groups change rarely).
        sqlx::query("select pg_advisory_xact_lock(hashtext('xuefen.recognition_groups'))")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let (sites, codes): (Vec<&str>, Vec<&str>) =
            group.courses.iter().map(|(s, c)| (s.as_str(), c.as_str())).unzip();
        let taken = sqlx::query(&format!(
            "select {MEMBER_COLUMNS}
               from recognition_members m
               join unnest($1::text[], $2::text[]) as k(k_site, k_code)
                 on m.site_id = k.k_site and m.course_code = k.k_code
              where m.group_id <> $3
              limit 1"
        ))
        .bind(&sites)
        .bind(&codes)
        .bind(group.id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(row) = taken {
            return Err(MemberRecord::read(&row)?.in_another_group());
        }
        let created: bool = sqlx::query_scalar(&format!(
            "insert into recognition_groups ({GROUP_COLUMNS}) values ($1, $2)
             on conflict (id) do update set title = excluded.title, updated_at = now()
             returning (xmax = 0)"
        ))
        .bind(group.id.as_str())
        .bind(&group.title)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("delete from recognition_members where group_id = $1")
            .bind(group.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(&format!(
            "insert into recognition_members ({MEMBER_COLUMNS})
             select k.site_id, k.code, $3 from unnest($1::text[], $2::text[]) as k(site_id, code)"
        ))
        .bind(&sites)
        .bind(&codes)
        .bind(group.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let declared = declare_group(&mut tx, &group.id, now).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        let written = if created { Written::Created } else { Written::Existing };
        Ok((written, declared))
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        let title: Option<String> = sqlx::query_scalar("select title from recognition_groups where id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(title) = title else { return Ok(None) };
        let rows = sqlx::query(&format!(
            "select {MEMBER_COLUMNS} from recognition_members where group_id = $1 order by site_id, course_code"
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
                    "insert into category_caps ({CAP_COLUMNS}) values ($1, $2)
                     on conflict (category) do update set annual_cap_cents = excluded.annual_cap_cents,
                         updated_at = now()"
                );
                sqlx::query(&upsert).bind(category.as_str()).bind(cap.cents())
            }
            None => sqlx::query("delete from category_caps where category = $1").bind(category.as_str()),
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
            .map(|r| {
                CapRecord {
                    category: r.col("category")?,
                    annual_cap_cents: r.col("annual_cap_cents")?,
                }
                .try_into()
            })
            .collect()
    }
}
