//! A `xuefen serve` child process on 127.0.0.1, over a fresh database.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const XUEFEN: &str = env!("CARGO_BIN_EXE_xuefen");

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The backends available here: SQLite always, PostgreSQL when the test
/// cluster is configured.
pub(crate) fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if std::env::var_os("XUEFEN_TEST_PG_ADMIN_URL").is_some() {
        out.push(Backend::Postgres);
    } else {
        eprintln!("note: XUEFEN_TEST_PG_ADMIN_URL is unset; PostgreSQL scenarios skipped");
    }
    out
}

/// A running server; killed when dropped unless it already exited.
pub(crate) struct Server {
    child: Child,
    pub base: String,
    /// The metrics listener's base URL, when `metrics_listen` is set.
    pub metrics_base: Option<String>,
    pub admin: String,
    pub dir: PathBuf,
    pub database_url: String,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `xuefen serve` with `env` and `args` added, on a fresh
    /// database of `backend`, and waits until it listens.
    pub(crate) async fn start(backend: Backend, env: &[(&str, String)], args: &[&str]) -> Self {
        Self::start_under(&[], backend, env, args).await
    }

    /// As [`Server::start`], with the binary run under `wrapper` (a
    /// command and its arguments, such as `prlimit --nofile=256`).
    pub(crate) async fn start_under(wrapper: &[&str], backend: Backend, env: &[(&str, String)], args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("xuefen-ops-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("xuefen.db").display()),
            Backend::Postgres => crate::pg::create_database().await.1,
        };
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(XUEFEN);
                cmd
            }
            None => Command::new(XUEFEN),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(args)
            .env("DATABASE_URL", &database_url)
            .env_remove("XUEFEN_CONFIG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start xuefen serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Read stdout on a thread (and keep draining it) so the child never blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut admin = None;
        let mut metrics_base = None;
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("xuefen serve did not start; log: {}", log_of(&dir)));
            if let Some(k) = line.strip_prefix("bootstrap admin key (shown once): ") {
                admin = Some(k.trim().to_owned());
            } else if let Some(url) = line.strip_prefix("metrics on ") {
                metrics_base = url.trim().strip_suffix("/metrics").map(str::to_owned);
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
        };
        Self {
            child,
            base,
            metrics_base,
            admin: admin.expect("a fresh database prints the admin key"),
            dir,
            database_url,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's stderr so far.
    pub(crate) fn log(&self) -> String {
        log_of(&self.dir)
    }

    /// Sends SIGTERM (through `kill`, so the test needs no FFI).
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `bound` for the process to exit.
    pub(crate) fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
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
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a site, a course `C1` (1 credit per 5 hours, cap 4) and a
    /// learner linked as `u1`; returns the site's key.
    pub(crate) async fn fixture(&self) -> String {
        let (s, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/sites",
                Some(&self.admin),
                Some(json!({"id": "ops", "name": "运维学习网", "level": "county", "region_code": "330106"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let site = body["key"]["secret"].as_str().expect("secret").to_owned();
        let course = json!({"title": "课程", "category": "community", "rule": {"kind": "per_hours", "hours_per_credit": "5", "cap": "4"}, "repeat": "every_completion"});
        let (s, body) = self
            .call(reqwest::Method::PUT, "/v1/courses/C1", Some(&site), Some(course))
            .await;
        assert!(s.is_success(), "{body}");
        let learner = json!({"name": "测试", "document": {"kind": "resident_id", "number": "11010519491231002X"}, "local_account": "u1"});
        let (s, body) = self
            .call(reqwest::Method::POST, "/v1/learners", Some(&site), Some(learner))
            .await;
        assert!(s.is_success(), "{body}");
        site
    }

    /// Scrapes `/metrics`.
    pub(crate) async fn scrape(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("scrape");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.expect("metrics text")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn log_of(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// A completion of `C1` by `u1`.
pub(crate) fn completion(hours: &str) -> Value {
    json!({"kind": "completion", "course": "C1", "learner": {"local_account": "u1"},
           "completed_at": "2026-03-01T10:00:00Z", "hours": hours})
}

/// The value of the sample `name{labels}` in a scrape (labels in the
/// order the exposition writes them), 0 when absent.
pub(crate) fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse::<f64>().expect("numeric sample"))
        })
        .unwrap_or(0.0)
}

/// The sum of every sample of `name` (any labels).
pub(crate) fn sum_of(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let n = series.split('{').next()?;
            (n == name).then(|| value.parse::<f64>().expect("numeric sample"))
        })
        .sum()
}

/// The sample names (before any `{`) present in a scrape.
pub(crate) fn sample_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}
