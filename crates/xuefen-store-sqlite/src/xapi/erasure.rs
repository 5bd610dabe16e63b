//! Erasure of a learner's xAPI data on SQLite, in the erasure's
//! transaction (under its write lock), while the learner's account links
//! and mailbox links are still there to say who they are. What names the
//! learner is decided in `xuefen_store::xapi_erasure`; here it is found and
//! deleted:
//!
//! - every statement that names the learner (as its actor or a related
//!   agent, or, when the learner has registered mailbox hashes, as any
//!   agent of a statement that names someone by a clear `mbox`), on every
//!   site, with its related rows;
//! - the statements those voided, unless another statement still voids
//!   them: hidden from every query before, they stay hidden;
//! - attachment bytes no remaining statement of the site declares;
//! - the State and Agent Profile documents under the learner's agent keys,
//!   the site's document usage decremented by them.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Row, SqliteConnection};
use xuefen_store::Result;
use xuefen_store::xapi_erasure::{LearnerAgents, MBOX_KEY_PREFIX, attachment_hashes, home_page};

use crate::db;
use crate::rows::{PARAMS_PER_STATEMENT_MAX, REUSE_DYNAMIC_STATEMENTS, placeholders};

/// The upper bound of the `mbox|` keys in binary order (`}` follows `|`).
const MBOX_KEY_END: &str = "mbox}";

/// Values bound per `in (…)` list, beside the site.
const CHUNK: usize = PARAMS_PER_STATEMENT_MAX - 1;

/// Deletes the xAPI data of `learner` (see the module), in `conn`'s
/// transaction. The learner's keys are matched on every site that holds
/// xAPI data (an agent key is the same agent on every site); the clear
/// mailboxes are all read before anything is deleted, so that a mailbox
/// found on one site is erased on every other too.
pub(crate) async fn erase_learner_xapi(conn: &mut SqliteConnection, learner: &str) -> Result<()> {
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
async fn foreign_sums(
    conn: &mut SqliteConnection,
    site: &str,
    learner: &str,
    sums: &[String],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for chunk in sums.chunks(CHUNK - 1) {
        // Dynamic: the number of sums varies.
        let sql = format!(
            "select m.mbox_sha1sum from xapi_mbox_links m
              where m.site_id = ? and m.mbox_sha1sum in ({})
                and not exists (select 1 from learner_accounts a
                                 where a.site_id = m.site_id and a.local_account = m.local_account
                                   and a.learner_id = ?)",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(site);
        for sum in chunk {
            q = q.bind(sum);
        }
        let found = q.bind(learner).fetch_all(&mut *conn).await.map_err(db)?;
        out.extend(found.into_iter().map(|s| s.to_ascii_lowercase()));
    }
    Ok(out)
}

/// The learner's accounts (under each site's home page) and registered
/// mailbox hashes.
async fn learner_agents(conn: &mut SqliteConnection, learner: &str) -> Result<LearnerAgents> {
    let accounts = sqlx::query(
        "select a.site_id, a.local_account, p.home_page
           from learner_accounts a left join xapi_profiles p on p.site_id = a.site_id
          where a.learner_id = ?1",
    )
    .bind(learner)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let sums: Vec<String> = sqlx::query_scalar(
        "select m.mbox_sha1sum
           from xapi_mbox_links m
           join learner_accounts a on a.site_id = m.site_id and a.local_account = m.local_account
          where a.learner_id = ?1",
    )
    .bind(learner)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut agents = LearnerAgents::default();
    for row in &accounts {
        let site: String = row.try_get("site_id").map_err(db)?;
        let account: String = row.try_get("local_account").map_err(db)?;
        let declared: Option<String> = row.try_get("home_page").map_err(db)?;
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
    conn: &mut SqliteConnection,
    site: &str,
    agents: &mut LearnerAgents,
) -> Result<BTreeSet<String>> {
    let mut ids: BTreeSet<String> = sqlx::query_scalar(
        "select statement_id from xapi_statements where site_id = ?1 and agent >= ?2 and agent < ?3",
    )
    .bind(site)
    .bind(MBOX_KEY_PREFIX)
    .bind(MBOX_KEY_END)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?
    .into_iter()
    .collect();
    let related: Vec<String> = sqlx::query_scalar(
        "select statement_id from xapi_statement_related
          where site_id = ?1 and kind = 'agent' and value >= ?2 and value < ?3",
    )
    .bind(site)
    .bind(MBOX_KEY_PREFIX)
    .bind(MBOX_KEY_END)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    ids.extend(related);
    let ids: Vec<String> = ids.into_iter().collect();
    let mut named = BTreeSet::new();
    for chunk in ids.chunks(CHUNK) {
        // Dynamic: the number of ids varies.
        let sql = format!(
            "select statement_id, body from xapi_statements where site_id = ? and statement_id in ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS).bind(site);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *conn).await.map_err(db)? {
            let body: String = row.try_get("body").map_err(db)?;
            if agents.scan_body(&body) {
                named.insert(row.try_get("statement_id").map_err(db)?);
            }
        }
    }
    let document_keys: Vec<String> = sqlx::query_scalar(
        "select distinct agent from xapi_documents where site_id = ?1 and agent >= ?2 and agent < ?3",
    )
    .bind(site)
    .bind(MBOX_KEY_PREFIX)
    .bind(MBOX_KEY_END)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for key in &document_keys {
        agents.add_if_mbox_matches(key);
    }
    Ok(named)
}

/// The ids of the site's statements among `column = any of values`.
async fn ids_where(conn: &mut SqliteConnection, sql_head: &str, site: &str, values: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for chunk in values.chunks(CHUNK) {
        // Dynamic: the number of values varies.
        let sql = format!("{sql_head} ({})", placeholders(chunk.len()));
        let mut q = sqlx::query_scalar::<_, Option<String>>(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(site);
        for v in chunk {
            q = q.bind(v);
        }
        out.extend(q.fetch_all(&mut *conn).await.map_err(db)?.into_iter().flatten());
    }
    Ok(out)
}

async fn erase_on_site(
    conn: &mut SqliteConnection,
    site: &str,
    agents: &LearnerAgents,
    mut doomed: BTreeSet<String>,
) -> Result<()> {
    let actor_keys = agents.actor_keys();
    doomed.extend(
        ids_where(
            conn,
            "select statement_id from xapi_statements where site_id = ? and agent in",
            site,
            &actor_keys,
        )
        .await?,
    );
    doomed.extend(
        ids_where(
            conn,
            "select statement_id from xapi_statement_related where site_id = ? and kind = 'agent' and value in",
            site,
            &agents.related_keys(),
        )
        .await?,
    );
    let doomed: Vec<String> = doomed.into_iter().collect();
    let targets: BTreeSet<String> = ids_where(
        conn,
        "select voids from xapi_statements where site_id = ? and voids is not null and statement_id in",
        site,
        &doomed,
    )
    .await?
    .into_iter()
    .filter(|t| doomed.binary_search(t).is_err())
    .collect();
    let mut attachments = BTreeSet::new();
    let mut statements = delete_statements(conn, site, &doomed, &mut attachments).await?;
    let mut unvoided = Vec::new();
    for target in targets {
        let voided: bool =
            sqlx::query_scalar("select exists (select 1 from xapi_statements where site_id = ?1 and voids = ?2)")
                .bind(site)
                .bind(&target)
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
        if !voided {
            unvoided.push(target);
        }
    }
    statements += delete_statements(conn, site, &unvoided, &mut attachments).await?;
    for sha2 in &attachments {
        let declared: bool = sqlx::query_scalar(
            "select exists (select 1 from xapi_statements
                             where site_id = ?1 and (instr(body, ?2) > 0 or instr(body, ?3) > 0))",
        )
        .bind(site)
        .bind(sha2)
        .bind(sha2.to_ascii_uppercase())
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if !declared {
            sqlx::query("delete from xapi_attachments where site_id = ?1 and sha2 = ?2")
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

/// Deletes statements and their related rows; collects the attachments
/// they declared; answers how many were deleted.
async fn delete_statements(
    conn: &mut SqliteConnection,
    site: &str,
    ids: &[String],
    attachments: &mut BTreeSet<String>,
) -> Result<i64> {
    let mut deleted = 0;
    for chunk in ids.chunks(CHUNK) {
        let list = placeholders(chunk.len());
        // Dynamic: the number of ids varies.
        let sql = format!("delete from xapi_statement_related where site_id = ? and statement_id in ({list})");
        let mut q = sqlx::query(&sql).persistent(REUSE_DYNAMIC_STATEMENTS).bind(site);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *conn).await.map_err(db)?;
        // Dynamic: the number of ids varies.
        let sql = format!("delete from xapi_statements where site_id = ? and statement_id in ({list}) returning body");
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(site);
        for id in chunk {
            q = q.bind(id);
        }
        let bodies = q.fetch_all(&mut *conn).await.map_err(db)?;
        for body in &bodies {
            attachments.extend(attachment_hashes(body));
        }
        deleted += i64::try_from(bodies.len()).unwrap_or(i64::MAX);
    }
    Ok(deleted)
}

/// Deletes the site's documents under these agent keys and takes them off
/// the site's usage; answers how many documents and bytes.
async fn delete_documents(conn: &mut SqliteConnection, site: &str, keys: &[String]) -> Result<(i64, i64)> {
    let (mut documents, mut bytes) = (0i64, 0i64);
    for chunk in keys.chunks(CHUNK) {
        // Dynamic: the number of keys varies.
        let sql = format!(
            "delete from xapi_documents where site_id = ? and agent in ({}) returning length(body)",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql)
            .persistent(REUSE_DYNAMIC_STATEMENTS)
            .bind(site);
        for k in chunk {
            q = q.bind(k);
        }
        let lengths = q.fetch_all(&mut *conn).await.map_err(db)?;
        documents += i64::try_from(lengths.len()).unwrap_or(i64::MAX);
        bytes += lengths.iter().sum::<i64>();
    }
    if documents > 0 {
        sqlx::query("update xapi_document_usage set documents = documents - ?2, bytes = bytes - ?3 where site_id = ?1")
            .bind(site)
            .bind(documents)
            .bind(bytes)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok((documents, bytes))
}
