//! Fresh PostgreSQL databases for tests, on the cluster named by
//! `XUEFEN_TEST_PG_ADMIN_URL` (set by scripts/test.sh and scripts/with-postgres.sh).
//! Included by each test binary that needs it with `#[path]`.

/// The URL of the test cluster's maintenance database.
pub(crate) fn pg_admin_url() -> String {
    std::env::var("XUEFEN_TEST_PG_ADMIN_URL").unwrap_or_else(|_| {
        panic!(
            "XUEFEN_TEST_PG_ADMIN_URL is not set: run the tests with scripts/test.sh or scripts/with-postgres.sh, \
             which start a throwaway PostgreSQL"
        )
    })
}

/// `url` with its database name replaced by `database` (query string kept).
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority_end = head[scheme_end..].find('/').map_or(head.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &head[..authority_end])
}

/// Creates an empty database with a random name; returns its name and URL.
pub(crate) async fn create_database() -> (String, String) {
    let admin_url = pg_admin_url();
    let name = format!("xuefen_t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await
        .expect("create database");
    admin.close().await;
    let url = with_database(&admin_url, &name);
    (name, url)
}

/// Drops a database made by [`create_database`], closing what still uses it.
/// Not every test binary that includes this file drops its databases.
#[allow(dead_code)]
pub(crate) async fn drop_database(name: &str) {
    let admin = sqlx::PgPool::connect(&pg_admin_url())
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&admin)
        .await
        .expect("drop database");
    admin.close().await;
}
