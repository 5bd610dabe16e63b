//! Courses on SQLite.

use async_trait::async_trait;
use sqlx::SqlitePool;
use xuefen_core::ids::{CourseCode, SiteId};
use xuefen_store::records::CourseRecord;
use xuefen_store::{Course, CourseStore, Result, Written};

use crate::{SqliteStore, db, run_to_end};

async fn put_course_locked(pool: &SqlitePool, course: &Course) -> Result<(Course, Written)> {
    // BEGIN IMMEDIATE takes the write lock before the read, as
    // `for update` does on PostgreSQL: two concurrent updates cannot both
    // derive their rule version from the same old row.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let row = sqlx::query(concat!(
        "select ",
        course_columns!(),
        course_from!(),
        " where c.site_id = ?1 and c.code = ?2"
    ))
    .bind(course.site.as_str())
    .bind(course.code.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let existing = row
        .as_ref()
        .map(|r| CourseRecord::read(r).and_then(Course::try_from))
        .transpose()?;
    let (version, written) = match &existing {
        None => (1, Written::Created),
        Some(old) if old.terms_differ(course) => (old.rule_version + 1, Written::Existing),
        Some(old) => (old.rule_version, Written::Existing),
    };
    let stored = Course {
        rule_version: version,
        recognition_group: existing.as_ref().and_then(|c| c.recognition_group.clone()),
        ..course.clone()
    };
    let r = CourseRecord::from(&stored);
    sqlx::query(concat!(
        "insert into courses (site_id, code, title, category, rule_kind, credits_cents,
                hours_per_credit_cents, cap_cents, pass_mark_cents, rule_version, offered_from_ms,
                credit_repeat)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         on conflict (site_id, code) do update set title = excluded.title,
             category = excluded.category, rule_kind = excluded.rule_kind,
             credits_cents = excluded.credits_cents,
             hours_per_credit_cents = excluded.hours_per_credit_cents,
             cap_cents = excluded.cap_cents, pass_mark_cents = excluded.pass_mark_cents,
             rule_version = excluded.rule_version, offered_from_ms = excluded.offered_from_ms,
             credit_repeat = excluded.credit_repeat, updated_at = ",
        now_sql!()
    ))
    .bind(&r.site_id)
    .bind(&r.code)
    .bind(&r.title)
    .bind(&r.category)
    .bind(&r.rule_kind)
    .bind(r.credits_cents)
    .bind(r.hours_per_credit_cents)
    .bind(r.cap_cents)
    .bind(r.pass_mark_cents)
    .bind(r.rule_version)
    .bind(r.offered_from_ms)
    .bind(&r.credit_repeat)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok((stored, written))
}

#[async_trait]
impl CourseStore for SqliteStore {
    async fn put_course(&self, course: &Course) -> Result<(Course, Written)> {
        let pool = self.pool.clone();
        let course = course.clone();
        run_to_end(async move { put_course_locked(&pool, &course).await }).await
    }

    async fn course(&self, site: &SiteId, code: &CourseCode) -> Result<Option<Course>> {
        let row = sqlx::query(concat!(
            "select ",
            course_columns!(),
            course_from!(),
            " where c.site_id = ?1 and c.code = ?2"
        ))
        .bind(site.as_str())
        .bind(code.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(|r| CourseRecord::read(r).and_then(Course::try_from))
            .transpose()
    }
}
