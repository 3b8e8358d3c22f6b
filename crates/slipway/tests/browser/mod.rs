//! A real headless Chromium driven over the Chrome DevTools Protocol (a WebSocket to
//! `--remote-debugging-port`): navigate, evaluate JavaScript, wait for conditions, take
//! screenshots. One page (target), one flattened session.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The browser binary: Debian's `chromium` (scripts/test installs it).
const CHROMIUM: &str = "chromium";

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Protocol events received while waiting for replies, oldest first.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// Whether Chromium is installed. Tests fail without it when `SLIPWAY_TEST_REQUIRE_TOOLS=1`
/// (as scripts/test sets); elsewhere they say so and return.
pub fn available() -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {CHROMIUM}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("SLIPWAY_TEST_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "`{CHROMIUM}` is not installed: the dashboard tests need it (scripts/test installs Debian's chromium)"
        );
        eprintln!("`{CHROMIUM}` is not installed: skipping (scripts/test installs it)");
    }
    found
}

impl Browser {
    /// Start a headless Chromium with a fresh profile, accepting the test server's
    /// self-signed certificate, with a `width`×`height` viewport.
    pub fn launch(width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium did not open its DevTools port in 30s");
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("ws:// URL")
            .to_string();
        let stream = TcpStream::connect(&host).expect("connect to DevTools");
        // A busy machine may take a while to answer the handshake; only afterwards do reads
        // wake up often (to interleave waiting for events with deadlines).
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let mut browser = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Send a command (to the page's session, or to the browser) and wait for its result.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no reply to {method} in 60s");
            let Some(reply) = self.receive() else {
                continue;
            };
            if reply["id"].as_u64() == Some(id) {
                if let Some(err) = reply.get("error") {
                    panic!("{method} failed: {err}");
                }
                return reply["result"].clone();
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// One message, or none within the socket's read timeout.
    fn receive(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(text)) => serde_json::from_str(text.as_str()).ok(),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Wait for the page's `load` event.
    fn wait_for_load(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|e| e["method"] == "Page.loadEventFired")
            {
                self.events.drain(..=i);
                return;
            }
            assert!(Instant::now() < deadline, "{what}: no load event in 30s");
            if let Some(msg) = self.receive()
                && msg.get("method").is_some()
            {
                self.events.push(msg);
            }
        }
    }

    /// Open `url` and wait until it has loaded.
    pub fn goto(&mut self, url: &str) {
        self.events.clear();
        let result = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = result.get("errorText") {
            panic!("navigating to {url}: {error}");
        }
        self.wait_for_load(url);
    }

    /// Run `action` (JavaScript that navigates, such as a form submission) and wait for the
    /// next page to load.
    pub fn navigate_by(&mut self, action: &str) {
        self.events.clear();
        self.eval(action);
        self.wait_for_load(action);
    }

    /// Evaluate `expression` in the page (promises awaited) and return its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// A string-valued expression (empty when it is not a string).
    pub fn text(&mut self, expression: &str) -> String {
        self.eval(expression)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Poll `expression` until it is `true`; panics with `what` and the value of `show` after
    /// `timeout`.
    pub fn wait_until(&mut self, what: &str, expression: &str, show: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(expression) == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let shown = self.eval(show);
                panic!("{what}: `{expression}` not true after {timeout:?}; {show} = {shown}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// A PNG of the whole page (the viewport grown to the document's height).
    pub fn screenshot(&mut self, path: &Path, width: u32) {
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .as_u64()
            .unwrap_or(900);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot["data"].as_str().expect("screenshot data"),
        )
        .expect("base64 PNG");
        std::fs::write(path, data).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.next_id += 1;
        let close = json!({"id": self.next_id, "method": "Browser.close"});
        let _ = self.ws.send(Message::text(close.to_string()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
