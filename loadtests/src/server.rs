//! The real `xuefen` binary as a child process, and fresh databases for it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `url` with its database name replaced by `database` (query kept).
pub(crate) fn with_database(url: &str, database: &str) -> Result<String> {
    let scheme_end = url.find("://").context("DATABASE_URL has no scheme")? + 3;
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_end = head[scheme_end..].find('/').map_or(head.len(), |i| scheme_end + i);
    Ok(format!("{}/{database}{query}", &head[..authority_end]))
}

/// The cluster behind `DATABASE_URL`: creates and drops scratch databases.
pub(crate) struct Cluster {
    url: String,
    admin: PgPool,
    tag: String,
    created: Vec<String>,
}

impl Cluster {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let options: PgConnectOptions = with_database(url, "postgres")?.parse().context("parse DATABASE_URL")?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .context("connect to the `postgres` database of DATABASE_URL's server")?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Ok(Self {
            url: url.to_owned(),
            admin,
            tag: format!("{}_{secs}", std::process::id()),
            created: Vec::new(),
        })
    }

    /// Creates `bench_<name>_<tag>` and returns its URL.
    pub(crate) async fn create(&mut self, name: &str) -> Result<String> {
        let db = format!("bench_{name}_{}", self.tag);
        if !db
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("bad database name {db}");
        }
        sqlx::query(&format!("create database {db}"))
            .execute(&self.admin)
            .await
            .with_context(|| format!("create database {db}"))?;
        self.created.push(db.clone());
        with_database(&self.url, &db)
    }

    pub(crate) async fn version(&self) -> Result<String> {
        Ok(sqlx::query_scalar("show server_version").fetch_one(&self.admin).await?)
    }

    /// Drops every database this run created.
    pub(crate) async fn drop_all(&mut self) {
        for db in std::mem::take(&mut self.created) {
            if let Err(e) = sqlx::query(&format!("drop database if exists {db} with (force)"))
                .execute(&self.admin)
                .await
            {
                eprintln!("note: could not drop {db}: {e}");
            }
        }
    }
}

/// A pool on one scratch database.
pub(crate) async fn pool(url: &str, connections: u32) -> Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("parse database URL")?;
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options)
        .await
        .context("connect to the scratch database")
}

/// Runs `xuefen migrate` against `url`.
pub(crate) async fn migrate(bin: &Path, url: &str) -> Result<()> {
    let out = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .output()
        .await
        .with_context(|| format!("run {} migrate", bin.display()))?;
    if !out.status.success() {
        bail!("xuefen migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A running `xuefen serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    pub admin_key: String,
}

impl Server {
    /// Starts `xuefen serve` on 127.0.0.1 (a free port chosen by the
    /// kernel) against `url`, and waits until it listens.
    pub(crate) async fn start(bin: &Path, url: &str, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("server.log")).context("create server.log")?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("DATABASE_URL", url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} serve", bin.display()))?;
        let pid = child.id().context("server has no pid")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut admin_key = None;
        let started = Instant::now();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .context("xuefen serve printed nothing for 60 s")??;
            let Some(line) = line else {
                bail!(
                    "xuefen serve exited during startup; see {}",
                    dir.join("server.log").display()
                );
            };
            if let Some(key) = line.strip_prefix("bootstrap admin key (shown once): ") {
                admin_key = Some(key.trim().to_owned());
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_owned();
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("xuefen serve did not start in 120 s");
            }
        };
        // Keep draining stdout so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let admin_key = admin_key.context("xuefen serve printed no admin key (database not fresh?)")?;
        Ok(Self {
            child,
            pid,
            base,
            admin_key,
        })
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// What `xuefen verify` reported.
pub(crate) struct VerifyRun {
    pub entries: u64,
    pub entries_per_s: f64,
    pub elapsed: Duration,
    pub peak_rss_kb: Option<u64>,
}

/// Runs `xuefen verify` against `url`, under `/usr/bin/time -v` when it
/// exists (for the peak RSS); otherwise polls `VmHWM` while it runs.
pub(crate) async fn verify(bin: &Path, url: &str) -> Result<VerifyRun> {
    let time = PathBuf::from("/usr/bin/time");
    let timed = time.exists();
    let mut cmd = if timed {
        let mut c = Command::new(&time);
        c.arg("-v").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("verify")
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().context("start xuefen verify")?;
    let pid = child.id();
    let poller = (!timed).then(|| {
        tokio::spawn(async move {
            let mut peak = None;
            while let Some(kb) = pid.and_then(crate::stats::vm_hwm_kb) {
                peak = Some(kb);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    });
    let out = child.wait_with_output().await.context("wait for verify")?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("xuefen verify failed ({}): {stdout}{stderr}", out.status);
    }
    // "ok: N entries in C chains verified in S s (R entries/s)"
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ok: "))
        .with_context(|| format!("unexpected verify output: {stdout}"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let entries: u64 = words
        .get(1)
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("no entry count in `{line}`"))?;
    let entries_per_s: f64 = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .with_context(|| format!("no entries/s in `{line}`"))?;
    let peak_rss_kb = match poller {
        Some(p) => p.await.ok().flatten(),
        None => stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok()),
    };
    Ok(VerifyRun {
        entries,
        entries_per_s,
        elapsed,
        peak_rss_kb,
    })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/xuefen", "postgres").ok(),
            Some("postgres://u@127.0.0.1:5432/postgres".to_owned())
        );
        assert_eq!(
            with_database("postgres://h:1/x?sslmode=disable", "b").ok(),
            Some("postgres://h:1/b?sslmode=disable".to_owned())
        );
        assert_eq!(
            with_database("postgres://h:1", "b").ok(),
            Some("postgres://h:1/b".to_owned())
        );
    }
}
