//! A real, headless Chromium for the page tests: Debian's `chromium` driven through
//! its `chromedriver` (WebDriver), with axe-core (from npm, `tests/browser/`)
//! injected to check accessibility.
//!
//! Each browser has its own chromedriver on a free port, in a process group of its
//! own, and its own profile directory; dropping it kills the group (chromedriver and
//! the Chromium it started).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::support::{free_port, in_ci, wait_for_port};

pub const DESKTOP: (u32, u32) = (1280, 860);
pub const PHONE: (u32, u32) = (390, 844);

/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// axe-core's browser bundle, as `npm ci --prefix tests/browser` installs it.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js")
}

/// Fails under CI; otherwise says how to run the browser tests.
fn unavailable(test: &str, what: &str) {
    if in_ci() {
        panic!("{test}: {what}; CI=true requires the browser tests to run");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what}. To run it: `apt-get install chromium chromium-driver` (or set \
         PASSPORT_TEST_CHROMIUM and PASSPORT_TEST_CHROMEDRIVER), `npm ci --prefix tests/browser` for \
         axe-core, then `cargo test`; with CI=true a missing browser fails."
    );
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    // One browser at a time in this test binary: Chromium beside Chromium on two
    // cores makes every wait a race with the clock.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

static TURN: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> = std::sync::LazyLock::new(Default::default);

impl Browser {
    /// A headless Chromium at `size`, or None (after saying why) when this machine
    /// has no Chromium, chromedriver or axe-core.
    pub async fn start(test: &str, size: (u32, u32)) -> Option<Browser> {
        let chromium = tool("PASSPORT_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("PASSPORT_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        for (path, what) in [(&chromium, "Chromium"), (&chromedriver, "chromedriver")] {
            if !path.exists() {
                unavailable(test, &format!("{what} not found at {}", path.display()));
                return None;
            }
        }
        if !axe_path().exists() {
            unavailable(test, &format!("axe-core not found at {}", axe_path().display()));
            return None;
        }
        let turn = TURN.clone().lock_owned().await;
        let port = free_port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "chromedriver did not listen"
        );
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // Headless, as root, and quiet: this machine reaches no network, so
                // Chromium's own background connections are switched off.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", size.0, size.1),
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let browser = Browser {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        };
        // Every Content-Security-Policy violation, from the first byte of each page
        // on, is kept for `foreign_loads` (a script given to the browser itself runs
        // before the page's and is not subject to its policy).
        browser
            .client
            .issue_cmd(Cdp(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({"source": "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
                       (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"}),
            ))
            .await
            .unwrap();
        browser.resize(size).await;
        Some(browser)
    }

    /// Sets the viewport (not the window) to `size`, so screenshots have that size.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self.eval("return [window.innerWidth, window.innerHeight]").await;
        let (iw, ih) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
        if (iw, ih) != (width, height) {
            self.client
                .set_window_size(width + (width - iw.min(width)), height + (height - ih.min(height)))
                .await
                .unwrap();
        }
    }

    /// Opens `url` and waits for the script to have started.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.until(
            "document.documentElement.dataset.ready === 'true'",
            "the page's script to start",
        )
        .await;
    }

    /// How many times the page's script has finished loading a view's data.
    pub async fn loads(&self) -> u64 {
        self.eval("return Number(document.body.dataset.loads || 0)")
            .await
            .as_u64()
            .unwrap()
    }

    /// Waits until the view on screen has finished loading its data (after a click
    /// that shows or reloads a view).
    pub async fn loaded(&self) {
        self.until(
            "(() => { const v = document.querySelector('.view:not([hidden])'); \
               return v && document.body.dataset.loadedView === v.dataset.view; })()",
            "the view's data",
        )
        .await;
    }

    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits until the JavaScript expression `condition` is true.
    pub async fn until(&self, condition: &str, what: &str) {
        let started = Instant::now();
        let script = format!("return Boolean({condition});");
        loop {
            if self.client.execute(&script, vec![]).await.unwrap() == Value::Bool(true) {
                return;
            }
            if started.elapsed() > PATIENCE {
                panic!("waited {PATIENCE:?} for {what}; the page shows: {}", self.state().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page shows, for a failure's message.
    pub async fn state(&self) -> String {
        self.eval(
            "const shown = (s) => Array.from(document.querySelectorAll(s)).filter((e) => !e.hidden) \
               .map((e) => e.textContent.trim()); \
             return JSON.stringify({hash: location.hash, \
               view: shown('.view').map((t) => t.slice(0, 60)), notice: shown('#notice'), errors: shown('.error')});",
        )
        .await
        .to_string()
    }

    /// Waits for the view `name` (`#view-<name>`) to be the one shown.
    pub async fn view(&self, name: &str) {
        self.until(
            &format!("!document.querySelector('#view-{name}').hidden && location.hash === '#/{name}'"),
            &format!("the {name} view"),
        )
        .await;
    }

    /// Waits for `selector` to be shown with text containing `text`; returns its text.
    pub async fn text(&self, selector: &str, text: &str) -> String {
        let condition = format!(
            "(() => {{ const e = document.querySelector({sel}); \
               return e && !e.hidden && e.offsetParent !== null && e.textContent.includes({text}); }})()",
            sel = json!(selector),
            text = json!(text),
        );
        self.until(&condition, &format!("{selector} to show {text:?}")).await;
        self.find(selector).await.text().await.unwrap()
    }

    pub async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.client.find(Locator::Css(selector)).await.unwrap()
    }

    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.find(selector).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, selector: &str) {
        self.find(selector).await.click().await.unwrap();
    }

    /// The value of a form control.
    pub async fn value(&self, selector: &str) -> String {
        self.find(selector)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Presses keys on whatever has the focus, as a keyboard would.
    pub async fn keys(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// The id of the focused element.
    pub async fn focused(&self) -> String {
        self.eval("return document.activeElement ? document.activeElement.id : ''")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// axe-core's serious and critical violations on the page as it is now.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        if self.eval("return typeof window.axe").await != json!("object") {
            let axe = std::fs::read_to_string(axe_path()).unwrap();
            self.client.execute(&axe, vec![]).await.unwrap();
        }
        let results = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 axe.run(document, {resultTypes: ['violations']}) \
                   .then((r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, \
                      nodes: v.nodes.map((n) => n.target.join(' '))})))) \
                   .catch((e) => done([{id: 'axe-failed', impact: 'critical', help: String(e), nodes: []}]));",
                vec![],
            )
            .await
            .unwrap();
        results
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| format!("{} ({}): {} at {}", v["id"], v["impact"], v["help"], v["nodes"]))
            .collect()
    }

    /// Every URL the page has loaded or refers to that is not of its own origin, and
    /// every Content-Security-Policy violation seen since `open`.
    pub async fn foreign_loads(&self) -> Vec<String> {
        let found = self
            .eval(
                "const origin = location.origin; \
                 const loaded = performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')) \
                   .map((e) => e.name); \
                 const referred = Array.from(document.querySelectorAll('[src],[href],[action]')) \
                   .map((e) => e.src || e.href || e.action).filter((u) => typeof u === 'string'); \
                 const foreign = loaded.concat(referred).filter((u) => new URL(u, location.href).origin !== origin); \
                 return foreign.concat((window.cspViolations || []).map((v) => 'CSP: ' + v));",
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// A PNG of the viewport, kept under `target/screenshots/`, and written to
    /// `docs/src/screenshots/` too when PASSPORT_UPDATE_SCREENSHOTS=1 (how the book's
    /// pictures are made).
    pub async fn screenshot(&self, name: &str) {
        // The whole page, through Chromium's own protocol: WebDriver's screenshot
        // is of the viewport only.
        let size = self
            .eval("return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
            .await;
        let shot = self
            .client
            .issue_cmd(Cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}}),
            ))
            .await
            .unwrap();
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("target/screenshots")];
        if std::env::var("PASSPORT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            dirs.push(root.join("docs/src/screenshots"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        }
    }

    pub async fn close(self) {
        let Browser { client, .. } = &self;
        let _ = client.clone().close().await;
    }
}

/// A command of the Chrome DevTools Protocol, through chromedriver's endpoint for it.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": self.1});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let pid = self.driver.id() as i32;
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
