//! Test harness: a fresh database per test, the real router on 127.0.0.1:0,
//! and small request helpers.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::pg;
use serde_json::{Value, json};
use xuefen_api::{AppState, CommitSettings, Limits};
use xuefen_store::{Principal, ServiceStore};
use xuefen_store_postgres::{PgSettings, PgStore};
use xuefen_store_sqlite::{SqliteSettings, SqliteStore};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

/// A direct handle on the test's database, for checks and tampering.
enum Db {
    Postgres(PgStore),
    Sqlite(SqliteStore, std::path::PathBuf),
}

/// A running service over a fresh database.
pub(crate) struct TestApp {
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub database_url: String,
    db: Db,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Limits small enough to test both sides of.
pub(crate) const TEST_LIMITS: Limits = Limits {
    batch_events_max: 50,
    body_bytes_max: 64 * 1024,
};

/// The single sign-on settings of every test server (the binary's defaults
/// for issuer and audience, and a fixed HS256 secret).
pub(crate) const SSO_ISSUER: &str = "xuefen-dev-sso";
pub(crate) const SSO_AUDIENCE: &str = "xuefen";
pub(crate) const SSO_SECRET: &[u8; 32] = b"test single sign-on secret 32 by";
/// The clock-skew leeway of every test server's token check.
pub(crate) const SSO_LEEWAY_SECONDS: u64 = 1;

/// A learner token as the province's single sign-on would issue it.
pub(crate) fn learner_token(learner: &str, issuer: &str, secret: &[u8], ttl_seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let learner = xuefen_core::ids::LearnerId::parse(learner).expect("learner id");
    // A negative TTL gives a token that expired that long ago.
    let (now, ttl) = if ttl_seconds < 0 {
        (now - ttl_seconds.unsigned_abs() * 2, ttl_seconds.unsigned_abs())
    } else {
        (now, ttl_seconds.unsigned_abs())
    };
    xuefen_api::sso::dev_token(secret, issuer, SSO_AUDIENCE, &learner, now, ttl).expect("sign")
}

impl TestApp {
    pub(crate) async fn spawn(backend: Backend) -> Self {
        Self::spawn_with_stats(backend, xuefen_api::StatsSettings::default()).await
    }

    /// A service whose statistics count with these settings.
    pub(crate) async fn spawn_with_stats(backend: Backend, stats: xuefen_api::StatsSettings) -> Self {
        Self::spawn_with(backend, stats, xuefen_api::sso::SsoSubject::default()).await
    }

    /// A service whose learner tokens name the person as `subject` says.
    pub(crate) async fn spawn_with_sso_subject(backend: Backend, subject: xuefen_api::sso::SsoSubject) -> Self {
        Self::spawn_with(backend, xuefen_api::StatsSettings::default(), subject).await
    }

    async fn spawn_with(
        backend: Backend,
        stats: xuefen_api::StatsSettings,
        subject: xuefen_api::sso::SsoSubject,
    ) -> Self {
        match backend {
            Backend::Postgres => Self::postgres(stats, subject).await,
            Backend::Sqlite => Self::sqlite(stats, subject).await,
        }
    }

    async fn postgres(stats: xuefen_api::StatsSettings, subject: xuefen_api::sso::SsoSubject) -> Self {
        let (_, url) = pg::create_database().await;
        let settings = PgSettings {
            url: url.clone(),
            read_url: None,
            pool_connections_max: 8,
            acquire_timeout: Duration::from_secs(10),
        };
        let store = PgStore::connect(&settings, true).await.expect("connect and migrate");
        Self::start(Arc::new(store.clone()), url, Db::Postgres(store), stats, subject).await
    }

    async fn sqlite(stats: xuefen_api::StatsSettings, subject: xuefen_api::sso::SsoSubject) -> Self {
        let path = std::env::temp_dir().join(format!("xuefen-test-{}.db", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        let settings = SqliteSettings {
            url: url.clone(),
            pool_connections_max: 4,
        };
        let store = SqliteStore::connect(&settings, true)
            .await
            .expect("open and migrate SQLite");
        Self::start(Arc::new(store.clone()), url, Db::Sqlite(store, path), stats, subject).await
    }

    async fn start(
        store: Arc<dyn ServiceStore>,
        database_url: String,
        db: Db,
        stats: xuefen_api::StatsSettings,
        subject: xuefen_api::sso::SsoSubject,
    ) -> Self {
        let (key, admin) = xuefen_api::auth::mint(Principal::Admin);
        store.create_key(&key).await.expect("admin key");
        let sso = xuefen_api::sso::SsoVerifier::new(&xuefen_api::sso::SsoSettings {
            issuer: SSO_ISSUER.into(),
            audience: SSO_AUDIENCE.into(),
            key: xuefen_api::sso::SsoKey::Hs256(SSO_SECRET.to_vec()),
            leeway_seconds: SSO_LEEWAY_SECONDS,
        })
        .expect("SSO verifier")
        .with_subject(subject);
        let mut state = AppState::new(
            store.clone(),
            TEST_LIMITS,
            CommitSettings::default(),
            b"test identity key".to_vec(),
        )
        .with_sso(sso)
        .with_stats(stats);
        // Checkpoints often, so that deposits are sealed soon after ingestion.
        state.checkpoints.interval = Duration::from_millis(50);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(xuefen_api::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            base,
            admin,
            client: reqwest::Client::new(),
            database_url,
            db,
            _shutdown: tx,
        }
    }

    /// Sends a request and returns the status and the JSON body (or Null).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let is_problem = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "application/problem+json");
        let text = resp.text().await.expect("body");
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            assert!(is_problem, "{status} must be application/problem+json, got {text}");
        }
        (status, value)
    }

    pub(crate) async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }
    pub(crate) async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(key), Some(body)).await
    }
    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// Creates an active site and returns its key.
    pub(crate) async fn site(&self, id: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/sites",
                &self.admin,
                json!({"id": id, "name": format!("{id} 学习网"), "level": "county", "region_code": "330106"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"]["secret"].as_str().expect("secret").to_owned()
    }

    /// A per-hours course: 1 credit per 5 hours, capped at 4, crediting
    /// every completion (sessions: the scenarios using it test the feed,
    /// paging and batching, not crediting once; tests/api/credited_once.rs
    /// does that).
    pub(crate) async fn course(&self, key: &str, code: &str, category: &str) {
        let body = json!({"title": "课程", "category": category, "rule": {"kind": "per_hours", "hours_per_credit": "5", "cap": "4"}, "repeat": "every_completion"});
        let (status, body) = self.put(&format!("/v1/courses/{code}"), key, body).await;
        assert!(status.is_success(), "{body}");
    }

    /// Registers a learner (from a synthetic resident ID) linked to
    /// `account`, and returns the unified id (`lrn_…`) as the admin and the
    /// learner's single sign-on know it. (The site itself is answered with
    /// its own pseudonym; a site may still name a learner it linked by the
    /// unified id: tests/api/pseudonyms.rs.)
    pub(crate) async fn learner(&self, key: &str, account: &str, person: u32) -> String {
        let document = json!({"kind": "resident_id", "number": resident_id(person)});
        let body = json!({"name": "测试", "document": document, "local_account": account});
        let (status, body) = self.post("/v1/learners", key, body).await;
        assert!(status.is_success(), "{body}");
        let (status, body) = self
            .post(
                "/v1/learners",
                &self.admin,
                json!({"name": "测试", "document": document}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        body["learner_id"].as_str().expect("learner id").to_owned()
    }

    /// Creates a credit bank key and returns its secret.
    pub(crate) async fn bank(&self) -> String {
        let (status, body) = self.post("/v1/bank/keys", &self.admin, json!(null)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["secret"].as_str().expect("secret").to_owned()
    }

    /// Runs SQL directly on the database, bypassing the append-only guard.
    pub(crate) async fn tamper(&self, sql: &str) {
        match &self.db {
            Db::Postgres(pg) => {
                let mut conn = pg.pool().acquire().await.expect("connection");
                sqlx::query("set session_replication_role = replica")
                    .execute(&mut *conn)
                    .await
                    .expect("bypass");
                sqlx::query(sql).execute(&mut *conn).await.expect("tamper");
                sqlx::query("set session_replication_role = origin")
                    .execute(&mut *conn)
                    .await
                    .expect("restore");
            }
            Db::Sqlite(lite, _) => {
                for trigger in [
                    "ledger_entries_append_only_update",
                    "ledger_entries_append_only_delete",
                    "site_changes_append_only_update",
                    "site_changes_append_only_delete",
                    "log_tiles_grow_only",
                    "log_tiles_no_delete",
                    "log_segments_append_only_update",
                    "log_segments_append_only_delete",
                    "log_checkpoints_append_only_update",
                    "log_checkpoints_append_only_delete",
                ] {
                    sqlx::query(&format!("drop trigger if exists {trigger}"))
                        .execute(lite.pool())
                        .await
                        .expect("drop");
                }
                sqlx::query(sql).execute(lite.pool()).await.expect("tamper");
            }
        }
    }

    /// Runs SQL as the service would, returning the database's error text.
    pub(crate) async fn exec(&self, sql: &str) -> Result<(), String> {
        let done = match &self.db {
            Db::Postgres(pg) => sqlx::query(sql).execute(pg.pool()).await.map(drop),
            Db::Sqlite(lite, _) => sqlx::query(sql).execute(lite.pool()).await.map(drop),
        };
        done.map_err(|e| e.to_string())
    }

    /// Runs a SQL query returning one integer.
    pub(crate) async fn scalar(&self, sql: &str) -> i64 {
        match &self.db {
            Db::Postgres(pg) => sqlx::query_scalar(sql).fetch_one(pg.pool()).await.expect("scalar"),
            Db::Sqlite(lite, _) => sqlx::query_scalar(sql).fetch_one(lite.pool()).await.expect("scalar"),
        }
    }

    /// Every byte of the database as it lies on disk: the SQLite file and
    /// its WAL, or a `pg_dump` of the PostgreSQL database.
    pub(crate) async fn raw_database_bytes(&self) -> Vec<u8> {
        match &self.db {
            Db::Sqlite(_, path) => {
                // Read by another process: closing a descriptor of the file
                // in this one would drop every POSIX lock this process
                // holds on it, SQLite's included, and another process could
                // then truncate the `-shm` file the pool has mapped (SIGBUS).
                let read = |file: String| {
                    let out = std::process::Command::new("cat")
                        .arg(&file)
                        .stderr(std::process::Stdio::null())
                        .output()
                        .expect("run cat");
                    out.status.success().then_some(out.stdout)
                };
                let mut bytes = read(path.display().to_string()).expect("read the database file");
                for suffix in ["-wal", "-shm"] {
                    if let Some(more) = read(format!("{}{suffix}", path.display())) {
                        bytes.extend(more);
                    }
                }
                bytes
            }
            Db::Postgres(_) => {
                let out = tokio::process::Command::new("pg_dump")
                    .arg("--dbname")
                    .arg(&self.database_url)
                    .output()
                    .await
                    .expect("run pg_dump");
                assert!(
                    out.status.success(),
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }

    /// Runs `xuefen verify` on this database and returns (exit code, stdout).
    pub(crate) async fn verify_cli(&self) -> (i32, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"))
            .arg("verify")
            .env("DATABASE_URL", &self.database_url)
            .output()
            .await
            .expect("run xuefen verify");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Db::Sqlite(_, path) = &self.db {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// The body of `PUT /v1/accounts/{local}` linking to `learner` (a unified
/// id) with the learner's consent: their single sign-on token, which names
/// them (a site that never met the learner has no id of its own for them).
pub(crate) fn consent(learner: &str) -> Value {
    json!({"consent_token": learner_token(learner, SSO_ISSUER, SSO_SECRET, 300)})
}

/// A synthetic 18-character resident ID with a correct check digit.
pub(crate) fn resident_id(person: u32) -> String {
    let first17 = format!("33010619900101{:03}", person % 1_000);
    let arr: [u8; 17] = first17.as_bytes().try_into().expect("17 digits");
    format!("{first17}{}", xuefen_core::identity::resident_id_check_char(&arr))
}

/// A completion of `course` by `account`, `hours` hours, in March 2026.
pub(crate) fn completion(account: &str, course: &str, hours: &str) -> Value {
    json!({"kind": "completion", "course": course, "learner": {"local_account": account},
           "completed_at": "2026-03-01T10:00:00Z", "hours": hours})
}

/// Declares each scenario once and runs it on every backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::harness::TestApp::spawn($crate::harness::Backend::Postgres).await;
                    super::$name(app).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::harness::TestApp::spawn($crate::harness::Backend::Sqlite).await;
                    super::$name(app).await;
                }
            )*
        }
    };
}
