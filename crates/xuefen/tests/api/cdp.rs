//! Headless Chromium driven over the DevTools protocol, for page tests that
//! need what a person does rather than a page load: typing into a form,
//! clicking, choosing a file, dragging one onto the page, a download.
//!
//! The protocol runs over `--remote-debugging-pipe` (JSON messages ended by
//! a NUL byte: commands on the browser's fd 3, answers and events on its fd
//! 4). The shell that starts the browser puts fd 3 on our pipe to its stdin
//! and fd 4 on our pipe from its stdout, so no socket is opened and nothing
//! but the browser can talk to it. Every wait is bounded.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// How long one command or one awaited event may take.
const STEP: Duration = Duration::from_secs(30);

pub(crate) struct Browser {
    child: Child,
    stdin: ChildStdin,
    from_browser: mpsc::UnboundedReceiver<Value>,
    /// Events read while waiting for something else, oldest first.
    events: VecDeque<Value>,
    next_id: u64,
    /// The page's session (flat mode).
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts `program` headless with a fresh profile and attaches to its page.
    pub(crate) async fn launch(program: &Path) -> Self {
        let profile = std::env::temp_dir().join(format!("xuefen-cdp-{}", uuid::Uuid::new_v4().simple()));
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 1>&2 </dev/null"#)
            .arg(program)
            .args(crate::browser::HEADLESS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stdin = child.stdin.take().expect("the browser's fd 3");
        let mut stdout = child.stdout.take().expect("the browser's fd 4");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match stdout.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&message[..end])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut browser = Self {
            child,
            stdin,
            from_browser: rx,
            events: VecDeque::new(),
            next_id: 0,
            session: String::new(),
            profile,
        };
        let created = browser
            .command(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target = created["targetId"].as_str().expect("a target").to_owned();
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().expect("a session").to_owned();
        for domain in ["Page.enable", "Runtime.enable", "DOM.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    async fn next_message(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.from_browser.recv()).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the browser went away while waiting for {what}"),
            Err(_) => panic!("no {what} from the browser within {STEP:?}"),
        }
    }

    /// Sends a command (to the page's session, or the browser's with
    /// `None`) and returns its result; events meanwhile are kept.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.stdin.write_all(&bytes).await.expect("write to the browser");
        self.stdin.flush().await.expect("flush");
        let deadline = Instant::now() + STEP;
        loop {
            let m = self.next_message(deadline, method).await;
            if m["id"].as_u64() == Some(id) {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            if m.get("method").is_some() {
                self.events.push_back(m);
            }
        }
    }

    /// A command to the page.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// A command to the browser itself.
    pub(crate) async fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.command(None, method, params).await
    }

    /// Waits for the next event `method` whose params satisfy `matches`
    /// (those already read included), and returns its params.
    pub(crate) async fn wait_event(&mut self, method: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .events
            .iter()
            .position(|e| e["method"] == method && matches(&e["params"]))
        {
            let e = self.events.remove(i).expect("present");
            return e["params"].clone();
        }
        let deadline = Instant::now() + STEP;
        loop {
            let m = self.next_message(deadline, method).await;
            if m["method"] == method && matches(&m["params"]) {
                return m["params"].clone();
            }
        }
    }

    /// Opens `url` and waits for its load event.
    pub(crate) async fn navigate(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_event("Page.loadEventFired", |_| true).await;
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; an exception fails the test.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page (bounded), e.g. until a
    /// check the page runs has shown its result.
    pub(crate) async fn wait_until(&mut self, expression: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let r = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await;
            if r["result"]["value"] == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "{expression} did not become true");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's HTML as it is now.
    pub(crate) async fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The centre of the element `selector` in the viewport, scrolled into view.
    pub(crate) async fn centre(&mut self, selector: &str) -> (f64, f64) {
        let v = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                sel = json!(selector)
            ))
            .await;
        (v[0].as_f64().expect("x"), v[1].as_f64().expect("y"))
    }

    /// A left click at the centre of `selector`, with the mouse.
    pub(crate) async fn click(&mut self, selector: &str) {
        let (x, y) = self.centre(selector).await;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Focuses `selector` and types `text` into it, as a keyboard would.
    pub(crate) async fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector).await;
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// The object id of the element `selector`.
    async fn node(&mut self, selector: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": format!("document.querySelector({})", json!(selector))}),
            )
            .await;
        let id = r["result"]["objectId"].clone();
        assert!(id.is_string(), "no element {selector}");
        id
    }

    /// Chooses `file` in the file input `selector`, as the file chooser
    /// would (the input fires `change`).
    pub(crate) async fn choose_file(&mut self, selector: &str, file: &Path) {
        let object = self.node(selector).await;
        self.call(
            "DOM.setFileInputFiles",
            json!({"objectId": object, "files": [file.display().to_string()]}),
        )
        .await;
    }

    /// Drags `file` from outside the browser onto the centre of `selector`
    /// and drops it there (drag enter, over, drop).
    pub(crate) async fn drop_file(&mut self, selector: &str, file: &Path) {
        let (x, y) = self.centre(selector).await;
        let data = json!({"items": [], "files": [file.display().to_string()], "dragOperationsMask": 1});
        for kind in ["dragEnter", "dragOver", "drop"] {
            self.call(
                "Input.dispatchDragEvent",
                json!({"type": kind, "x": x, "y": y, "data": data}),
            )
            .await;
        }
    }

    /// Saves what the page shows now as a PNG.
    pub(crate) async fn screenshot(&mut self, to: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let bytes = base64_decode(shot["data"].as_str().expect("PNG data"));
        std::fs::write(to, bytes).expect("write the screenshot");
    }

    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser_call("Browser.close", json!({}))).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (RFC 4648 section 4), as the protocol sends binary data.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = ((acc << 6) | u32::from(v)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
