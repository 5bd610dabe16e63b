//! Erasure of a learner's xAPI data on PostgreSQL, in the erasure's
//! transaction, while the learner's account links and mailbox links are
//! still there to say who they are. What names the learner is decided in
//! `xuefen_store::xapi_erasure`; here it is found and deleted:
//!
//! - every statement that names the learner (as its actor or a related
//!   agent, or, when the learner has registered mailbox hashes, as any
//!   agent of a statement that names someone by a clear `mbox`), on every
//!   site, with its related rows;
//! - the statements those voided, unless another statement still voids
//!   them: hidden from every query before, they stay hidden;
//! - attachment bytes no remaining statement of the site declares;
//! - the State and Agent Profile documents under the learner's agent keys,
//!   taken off the site's usage in shard 0 of `xapi_document_usage_shards`
//!   (a shard may go below zero, the site's sum cannot). That shard is
//!   locked before any document row, as every document write does
//!   (`documents.rs`), so erasure and writes cannot deadlock.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgConnection;
use xuefen_store::Result;
use xuefen_store::xapi_erasure::{LearnerAgents, MBOX_KEY_PREFIX, attachment_hashes, home_page};

use crate::{Col, db};

/// Deletes the xAPI data of `learner` (see the module), in `conn`'s
/// transaction. The learner's keys are matched on every site that holds
/// xAPI data (an agent key is the same agent on every site); the clear
/// mailboxes are all read before anything is deleted, so that a mailbox
/// found on one site is erased on every other too.
pub(crate) async fn erase_learner_xapi(conn: &mut PgConnection, learner: &str) -> Result<()> {
    let mut agents = learner_agents(conn, learner).await?;
    if agents.is_empty() {
        return Ok(());
    }
    let sites: Vec<String> = sqlx::query_scalar(
        "select s.id from sites s
          where exists (select 1 from xapi_statements x where x.site_id = s.id)
             or exists (select 1 from xapi_documents d where d.site_id = s.id)
          order by s.id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let sums = agents.sums();
    let mut foreign: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut named: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for site in &sites {
        let theirs = foreign_sums(conn, site, learner, &sums).await?;
        let mut here = agents.on_site(&theirs);
        if here.has_sums() {
            named.insert(site, scan_clear_mailboxes(conn, site, &mut here).await?);
            agents.absorb(&here);
        }
        foreign.insert(site, theirs);
    }
    for site in &sites {
        let here = agents.on_site(foreign.get(site.as_str()).unwrap_or(&BTreeSet::new()));
        let doomed = named.remove(site.as_str()).unwrap_or_default();
        erase_on_site(conn, site, &here, doomed).await?;
    }
    Ok(())
}

/// Those of `sums` the site registered for an account that is not one of
/// the learner's (a mailbox two people share): there they name the other.
async fn foreign_sums(conn: &mut PgConnection, site: &str, learner: &str, sums: &[String]) -> Result<BTreeSet<String>> {
    if sums.is_empty() {
        return Ok(BTreeSet::new());
    }
    let found: Vec<String> = sqlx::query_scalar(
        "select m.mbox_sha1sum from xapi_mbox_links m
          where m.site_id = $1 and m.mbox_sha1sum = any($2)
            and not exists (select 1 from learner_accounts a
                             where a.site_id = m.site_id and a.local_account = m.local_account
                               and a.learner_id = $3)",
    )
    .bind(site)
    .bind(sums)
    .bind(learner)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    Ok(found.into_iter().map(|s| s.to_ascii_lowercase()).collect())
}

/// The learner's accounts (under each site's home page) and registered
/// mailbox hashes.
async fn learner_agents(conn: &mut PgConnection, learner: &str) -> Result<LearnerAgents> {
    let accounts = sqlx::query(
        "select a.site_id, a.local_account, p.home_page
           from learner_accounts a left join xapi_profiles p on p.site_id = a.site_id
          where a.learner_id = $1",
    )
    .bind(learner)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let sums: Vec<String> = sqlx::query_scalar(
        "select m.mbox_sha1sum
           from xapi_mbox_links m
           join learner_accounts a on a.site_id = m.site_id and a.local_account = m.local_account
          where a.learner_id = $1",
    )
    .bind(learner)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut agents = LearnerAgents::default();
    for row in &accounts {
        let site: String = row.col("site_id")?;
        let account: String = row.col("local_account")?;
        let declared: Option<String> = row.col("home_page")?;
        agents.add_account(&site, &home_page(&site, declared.as_deref()), &account);
    }
    for sum in &sums {
        agents.add_sum(sum);
    }
    Ok(agents)
}

/// Reads every statement of the site that names an agent by a clear
/// `mbox` (as actor or related agent) and every document `mbox` key, and
/// matches them by SHA-1 against the learner's sums; answers the ids of
/// the statements whose bodies name the learner.
async fn scan_clear_mailboxes(
    conn: &mut PgConnection,
    site: &str,
    agents: &mut LearnerAgents,
) -> Result<BTreeSet<String>> {
    // `starts_with`, not a range: the database's collation need not be C.
    let rows = sqlx::query(
        "select s.statement_id, s.body from xapi_statements s
          where s.site_id = $1
            and s.statement_id in (
                select statement_id from xapi_statements where site_id = $1 and starts_with(agent, $2)
                union
                select statement_id from xapi_statement_related
                 where site_id = $1 and kind = 'agent' and starts_with(value, $2))",
    )
    .bind(site)
    .bind(MBOX_KEY_PREFIX)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut named = BTreeSet::new();
    for row in &rows {
        let body: String = row.col("body")?;
        if agents.scan_body(&body) {
            named.insert(row.col::<String>("statement_id")?);
        }
    }
    let document_keys: Vec<String> =
        sqlx::query_scalar("select distinct agent from xapi_documents where site_id = $1 and starts_with(agent, $2)")
            .bind(site)
            .bind(MBOX_KEY_PREFIX)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    for key in &document_keys {
        agents.add_if_mbox_matches(key);
    }
    Ok(named)
}

async fn erase_on_site(
    conn: &mut PgConnection,
    site: &str,
    agents: &LearnerAgents,
    mut doomed: BTreeSet<String>,
) -> Result<()> {
    let actor_keys = agents.actor_keys();
    let found: Vec<String> = sqlx::query_scalar(
        "select statement_id from xapi_statements where site_id = $1 and agent = any($2)
         union
         select statement_id from xapi_statement_related where site_id = $1 and kind = 'agent' and value = any($3)",
    )
    .bind(site)
    .bind(&actor_keys)
    .bind(agents.related_keys())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    doomed.extend(found);
    let doomed: Vec<String> = doomed.into_iter().collect();
    let mut attachments = BTreeSet::new();
    let mut statements = 0;
    if !doomed.is_empty() {
        let targets: Vec<String> = sqlx::query_scalar(
            "select distinct voids from xapi_statements
              where site_id = $1 and voids is not null and statement_id = any($2) and not (voids = any($2))",
        )
        .bind(site)
        .bind(&doomed)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        statements += delete_statements(conn, site, &doomed, &mut attachments).await?;
        // Read after the delete: a target still voided by a statement left
        // stays, one voided by erased statements alone goes with them.
        let unvoided: Vec<String> = sqlx::query_scalar(
            "select u.t from unnest($2::text[]) as u(t)
              where not exists (select 1 from xapi_statements v where v.site_id = $1 and v.voids = u.t)",
        )
        .bind(site)
        .bind(&targets)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        statements += delete_statements(conn, site, &unvoided, &mut attachments).await?;
    }
    for sha2 in &attachments {
        let declared: bool = sqlx::query_scalar(
            "select exists (select 1 from xapi_statements
                             where site_id = $1 and (strpos(body, $2) > 0 or strpos(body, $3) > 0))",
        )
        .bind(site)
        .bind(sha2)
        .bind(sha2.to_ascii_uppercase())
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if !declared {
            sqlx::query("delete from xapi_attachments where site_id = $1 and sha2 = $2")
                .bind(site)
                .bind(sha2)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
    }
    let (documents, bytes) = delete_documents(conn, site, &actor_keys).await?;
    if statements + documents > 0 {
        tracing::info!(
            site,
            statements,
            documents,
            bytes,
            "an erased learner's xAPI data deleted"
        );
    }
    Ok(())
}

/// Deletes statements and then their related rows; collects the attachments
/// they declared; answers how many were deleted.
async fn delete_statements(
    conn: &mut PgConnection,
    site: &str,
    ids: &[String],
    attachments: &mut BTreeSet<String>,
) -> Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let bodies: Vec<String> =
        sqlx::query_scalar("delete from xapi_statements where site_id = $1 and statement_id = any($2) returning body")
            .bind(site)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    // The related rows after the statements: a re-indexing that holds a
    // statement's row (`finish_related_backfill`) has committed its rows by
    // the time this delete reads them.
    sqlx::query("delete from xapi_statement_related where site_id = $1 and statement_id = any($2)")
        .bind(site)
        .bind(ids)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    for body in &bodies {
        attachments.extend(attachment_hashes(body));
    }
    Ok(i64::try_from(bodies.len()).unwrap_or(i64::MAX))
}

/// Deletes the site's documents under these agent keys and takes them off
/// the site's usage (shard 0, locked first); answers how many documents
/// and bytes.
async fn delete_documents(conn: &mut PgConnection, site: &str, keys: &[String]) -> Result<(i64, i64)> {
    let any: bool =
        sqlx::query_scalar("select exists (select 1 from xapi_documents where site_id = $1 and agent = any($2))")
            .bind(site)
            .bind(keys)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    if !any {
        return Ok((0, 0));
    }
    sqlx::query(
        "insert into xapi_document_usage_shards (site_id, shard, documents, bytes) values ($1, 0, 0, 0)
         on conflict (site_id, shard) do update set documents = xapi_document_usage_shards.documents",
    )
    .bind(site)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let lengths: Vec<i64> = sqlx::query_scalar(
        "delete from xapi_documents where site_id = $1 and agent = any($2) returning octet_length(body)::bigint",
    )
    .bind(site)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let documents = i64::try_from(lengths.len()).unwrap_or(i64::MAX);
    let bytes = lengths.iter().sum::<i64>();
    sqlx::query(
        "update xapi_document_usage_shards set documents = documents - $2, bytes = bytes - $3
          where site_id = $1 and shard = 0",
    )
    .bind(site)
    .bind(documents)
    .bind(bytes)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok((documents, bytes))
}
