//! What the page and record tests share to look at the service as a person
//! does: where their files go, finding headless Chromium (or saying loudly
//! that a part was skipped), and a helper page on another port of 127.0.0.1
//! that submits a form to the service, as a person's browser would.
//!
//! `pages.rs`, `record.rs` and `record_browser.rs` use it; `cdp.rs` drives
//! the browser this module finds when a test needs more than a page load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Backend;

/// `target/tmp/<test>/<backend>/`, created, for the files a test leaves to
/// look at (screenshots, records).
pub(crate) fn output_dir(test: &str, backend: Backend) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(test)
        .join(format!("{backend:?}").to_lowercase());
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// [`output_dir`], emptied first (for a test that waits for files to appear).
pub(crate) fn fresh_output_dir(test: &str, backend: Backend) -> PathBuf {
    let dir = output_dir(test, backend);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("output directory");
    dir
}

/// A screenshot worth looking at: a blank or failed one is a few hundred
/// bytes, a rendered page well over ten thousand.
pub(crate) fn assert_screenshot(path: &Path) {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "{} is {len} bytes", path.display());
}

/// Reports a part of a test that cannot run here, on stdout and stderr so
/// that it shows with and without `--nocapture`; fails instead when
/// `require` (an environment variable) is set, as CI sets it.
pub(crate) fn skipped(msg: &str, require: &str) {
    assert!(std::env::var_os(require).is_none(), "{msg}, and {require} is set");
    println!("{msg}");
    eprintln!("{msg}");
}

/// Headless Chromium, or `None` after reporting `what` as skipped
/// (`XUEFEN_REQUIRE_BROWSER` makes a missing browser a failure).
pub(crate) fn chromium_or_skip(what: &str) -> Option<Chromium> {
    let found = find_chromium();
    if found.is_none() {
        skipped(
            &format!("SKIPPED: {what}: no chromium found (install Debian's `chromium` or set XUEFEN_CHROMIUM)"),
            "XUEFEN_REQUIRE_BROWSER",
        );
    }
    found
}

/// The flags of every headless Chromium the tests start (here and in
/// `cdp.rs`): no sandbox, GPU, extensions or background traffic; Chinese.
pub(crate) const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--lang=zh-CN",
];

/// The browser's executable, found on `XUEFEN_CHROMIUM` or the `PATH`.
pub(crate) struct Chromium {
    program: PathBuf,
}

fn find_chromium() -> Option<Chromium> {
    if let Some(p) = std::env::var_os("XUEFEN_CHROMIUM") {
        return Some(Chromium { program: p.into() });
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .map(|program| Chromium { program })
        })
}

impl Chromium {
    /// The browser's executable.
    pub(crate) fn program(&self) -> &Path {
        &self.program
    }

    /// Runs headless Chromium on `url` with a fresh profile, bounded in time.
    pub(crate) async fn run(&self, url: &str, extra: &[String]) -> String {
        let profile = std::env::temp_dir().join(format!("xuefen-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(HEADLESS)
            .arg("--virtual-time-budget=8000")
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .expect("chromium finished within 90 s")
            .expect("run chromium");
        let _ = std::fs::remove_dir_all(&profile);
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The page's DOM after its scripts ran (and forms it submits landed).
    pub(crate) async fn dump_dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".into()]).await
    }

    /// A screenshot of the page, 1280 pixels wide.
    pub(crate) async fn screenshot(&self, url: &str, to: &Path) {
        self.run(
            url,
            &[
                format!("--screenshot={}", to.display()),
                "--window-size=1280,1400".into(),
                "--hide-scrollbars".into(),
            ],
        )
        .await;
    }
}

/// A page on another port of 127.0.0.1 (the same site as the service) that
/// posts a hidden form to the service as soon as it loads, as a person
/// submitting it would: `form(path)` gives, for each path asked, the action
/// (a path of the service) and the form's fields. Stops when dropped.
pub(crate) struct FormPages {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FormPages {
    pub(crate) async fn start(
        service: &str,
        form: impl Fn(&str) -> (&'static str, Vec<(String, String)>) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let service = service.to_owned();
        let form = Arc::new(form);
        tokio::spawn(async move {
            loop {
                let mut conn = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok((c, _)) => c, Err(_) => return },
                    _ = &mut rx => return,
                };
                let mut buf = vec![0u8; 8192];
                let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let (action, fields) = form(&path);
                let inputs: String = fields
                    .iter()
                    .map(|(name, value)| format!("<textarea name={name}>{}</textarea>", html_escape(value)))
                    .collect();
                let body = format!(
                    "<!doctype html><meta charset=utf-8><body><form method=post action=\"{service}{action}\">{inputs}</form><script>document.forms[0].submit()</script>"
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            }
        });
        Self { base, _stop: tx }
    }

    /// The address of this helper's page at `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `s` as HTML text or an attribute value.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
