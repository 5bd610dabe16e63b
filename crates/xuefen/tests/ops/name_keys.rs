//! Key rotation of sealed names with the real binary, on both backends:
//! `name_keys` with a wrong, missing or malformed key stops `xuefen serve`
//! at start with a message naming the key (exit 2, no panic); every name
//! is sealed under its learner's own key, wrapped by the service's key; a
//! name written in clear before sealing existed is moved under a learner
//! key at start; `xuefen names reseal` re-wraps every learner key under the
//! first key, after which the old key can be dropped and the service still
//! matches names.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Backend, XUEFEN, backends};

const K1: &str = "k1:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const K1_WRONG: &str = "k1:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
const K2: &str = "k2:a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
const IDENTITY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// One database and data directory, used by several runs of the binary.
struct Place {
    dir: std::path::PathBuf,
    database_url: String,
}

impl Place {
    async fn new(backend: Backend) -> Self {
        let dir = std::env::temp_dir().join(format!("xuefen-names-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("xuefen.db").display()),
            Backend::Postgres => crate::pg::create_database().await.1,
        };
        Self { dir, database_url }
    }

    fn command(&self, keys: &str) -> Command {
        let mut cmd = Command::new(XUEFEN);
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .env("DATABASE_URL", &self.database_url)
            .env("XUEFEN_IDENTITY_KEY", IDENTITY)
            .env("XUEFEN_NAME_KEYS", keys)
            .env_remove("XUEFEN_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        cmd
    }

    /// `xuefen names …` under `keys`.
    fn names(&self, keys: &str, sub: &str) -> Output {
        self.command(keys)
            .args(["names", sub])
            .output()
            .expect("run xuefen names")
    }

    /// `xuefen serve` under `keys`: the running server and its admin key
    /// (on a fresh database), or the exit output when it stops at start.
    fn serve(&self, keys: &str) -> Result<Running, Output> {
        let mut child = self
            .command(keys)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xuefen serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(Some(line));
            }
            let _ = tx.send(None);
        });
        let mut admin = None;
        loop {
            match rx
                .recv_timeout(Duration::from_secs(60))
                .expect("xuefen serve said nothing for 60 s")
            {
                Some(line) => {
                    if let Some(k) = line.strip_prefix("bootstrap admin key (shown once): ") {
                        admin = Some(k.trim().to_owned());
                    } else if let Some(addr) = line.strip_prefix("listening on ") {
                        return Ok(Running {
                            child,
                            base: addr.trim().to_owned(),
                            admin,
                        });
                    }
                }
                None => return Err(child.wait_with_output().expect("exit output")),
            }
        }
    }

    /// The learners' stored names, as the database holds them.
    async fn stored_names(&self) -> Vec<String> {
        self.texts("select name from learners order by id").await
    }

    /// The learners' wrapped keys, as the database holds them.
    async fn stored_keys(&self) -> Vec<String> {
        self.texts("select wrapped from learner_keys order by learner_id").await
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        if self.database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.expect("open");
            let names = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("names");
            pool.close().await;
            names
        } else {
            let pool = sqlx::PgPool::connect(&self.database_url).await.expect("connect");
            let names = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("names");
            pool.close().await;
            names
        }
    }

    /// Writes one learner's name in clear, with no learner key, as a
    /// service before sealing did.
    async fn unseal_one(&self, name: &str) {
        let sqls = [
            "delete from learner_keys where learner_id = (select min(id) from learners)",
            "update learners set name = $1 where id = (select min(id) from learners)",
        ];
        if self.database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.expect("open");
            sqlx::query(sqls[0]).execute(&pool).await.expect("delete");
            sqlx::query(sqls[1]).bind(name).execute(&pool).await.expect("update");
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.database_url).await.expect("connect");
            sqlx::query(sqls[0]).execute(&pool).await.expect("delete");
            sqlx::query(sqls[1]).bind(name).execute(&pool).await.expect("update");
            pool.close().await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Running {
    child: Child,
    base: String,
    admin: Option<String>,
}

impl Running {
    async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn person(n: u32) -> Value {
    let first17 = format!("33010619850202{:03}", n);
    let arr: [u8; 17] = first17.as_bytes().try_into().expect("17 digits");
    let number = format!("{first17}{}", xuefen_core::identity::resident_id_check_char(&arr));
    json!({"kind": "resident_id", "number": number})
}

const NAMES: [&str; 3] = ["东方既白", "上官婉儿", "司马相如"];

fn refuses(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in needles {
        assert!(err.contains(needle), "the error must name {needle}: {all}");
    }
    assert!(!err.contains("panicked"), "a panic instead of an error: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_keys_rotate_and_a_wrong_or_missing_key_stops_the_start() {
    for backend in backends() {
        rotation(backend).await;
    }
}

async fn rotation(backend: Backend) {
    let place = Place::new(backend).await;
    // First life: names sealed under k1.
    let server = place
        .serve(K1)
        .unwrap_or_else(|out| panic!("serve with k1: {}", text(&out)));
    let admin = server.admin.clone().expect("a fresh database prints the admin key");
    for (i, name) in NAMES.iter().enumerate() {
        let (status, body) = server
            .post(
                "/v1/learners",
                &admin,
                json!({"name": name, "document": person(i as u32 + 1)}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
    }
    server.stop();
    let stored = place.stored_names().await;
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|n| n.starts_with("xfl1:")), "{stored:?}");
    let keys = place.stored_keys().await;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.starts_with("xfn1:k1:")), "{keys:?}");

    // A name written in clear (before sealing existed) is sealed at start.
    place.unseal_one("复姓诸葛").await;
    let out = place.names(K1, "status");
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status.contains("(clear)\t1") && status.contains("k1\t2") && status.contains("1 of them not yet"),
        "{status}"
    );
    let server = place
        .serve(K1)
        .unwrap_or_else(|out| panic!("serve with k1: {}", text(&out)));
    server.stop();
    let stored = place.stored_names().await;
    assert!(stored.iter().all(|n| n.starts_with("xfl1:")), "{stored:?}");
    assert!(!stored.iter().any(|n| n.contains("诸葛")));
    let keys = place.stored_keys().await;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.starts_with("xfn1:k1:")), "{keys:?}");

    // Without k1, or with other bytes under its id, or malformed: no start.
    let out = place.serve(K2).err().expect("k2 alone cannot open k1's names");
    refuses(&out, &["name_keys", "`k1`", "3 learners"]);
    let out = place.serve(K1_WRONG).err().expect("other bytes under k1");
    refuses(&out, &["name_keys", "`k1`", "not the key they were sealed with"]);
    let out = place.serve("k1:00ff").err().expect("a short key");
    refuses(&out, &["name_keys", "exactly 32"]);
    let out = place.names(K2, "reseal");
    refuses(&out, &["name_keys", "`k1`"]);

    // Rotation: k2 first, k1 to open; then every name is under k2.
    let both = format!("{K2},{K1}");
    let out = place.names(&both, "reseal");
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains(
            "3 names read; 0 sealed from clear, 0 moved under learner keys and 3 learner keys re-wrapped under key k2"
        ),
        "{said}"
    );
    // The names stay as they were; only the learners' keys are re-wrapped.
    assert_eq!(place.stored_names().await, stored);
    let keys = place.stored_keys().await;
    assert!(keys.iter().all(|k| k.starts_with("xfn1:k2:")), "{keys:?}");
    let out = place.names(K2, "status");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "key\tnames\nk2\t3\n");

    // k1 dropped: the service starts and matches every name, and refuses
    // another name under the same document.
    let server = place
        .serve(K2)
        .unwrap_or_else(|out| panic!("serve with k2 alone: {}", text(&out)));
    // Which learner got the clear name depends on id order; try both names
    // for the first person.
    for (i, name) in NAMES.iter().enumerate() {
        let (status, body) = server
            .post(
                "/v1/learners",
                &admin,
                json!({"name": name, "document": person(i as u32 + 1)}),
            )
            .await;
        let (status, body) = if status == StatusCode::CONFLICT {
            server
                .post(
                    "/v1/learners",
                    &admin,
                    json!({"name": "复姓诸葛", "document": person(i as u32 + 1)}),
                )
                .await
        } else {
            (status, body)
        };
        assert_eq!(status, StatusCode::OK, "{backend:?} {name}: {body}");
        let (status, body) = server
            .post(
                "/v1/learners",
                &admin,
                json!({"name": "别人", "document": person(i as u32 + 1)}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["field"], "name", "{body}");
    }
    server.stop();
}
