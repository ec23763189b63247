//! The operator console (`/ui`) as an operator uses it: Debian's Chromium, headless, driven
//! through WebDriver (`chromedriver`, the `fantoccini` client) against a real `signet serve`
//! over HTTPS, trusting only the server's own key (`--ignore-certificate-errors-spki-list`
//! with the SHA-256 of the SubjectPublicKeyInfo `openssl s_client` received).
//!
//! Chromium's network is closed to everything but loopback: every host name resolves to
//! nothing (`--host-resolver-rules`) and any other traffic goes to a proxy that refuses, so
//! a page that needed a CDN, a font or a script from elsewhere would break, and the test
//! also checks every resource the pages loaded came from the server's own origin.
//!
//! Each step of the issue's proof is an assertion of its own: sign in, search a certificate
//! by name, open it (its live OCSP status, asked of Signet's own responder, good and
//! verified), revoke it with a reason (the live status revoked, with that reason), see it
//! revoked in the list and in `openssl ocsp`; a cross-site form post refused (from a page of another origin in the
//! browser, and by `Origin` with a valid session and CSRF token); sign out and the old
//! session cookie refused when replayed with a raw HTTPS client; the auditor sees but has no
//! revoke button, and a forged revoke POST of the auditor's session is refused 403.
//!
//! With `SIGNET_SCREENSHOTS=DIR` set (`scripts/screenshots.sh`), it also writes a PNG of
//! each page at desktop (1280x900) and phone (390x844) widths into DIR.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`);
//! without them the test fails and says so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use der::{Decode, Encode};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

mod common;
use common::{Server, admin_token, csr, free_port, openssl, p, post_issue, signet_in, text};

/// The whole test's bound: past it the test fails (nextest's own bound is longer).
const DEADLINE: Duration = Duration::from_secs(240);

/// A program on PATH, or a failure that says how to install it (never a skip).
fn program(names: &[&str], package: &str) -> PathBuf {
    for name in names {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file());
        if let Some(path) = found {
            return path;
        }
    }
    panic!(
        "{} is needed to test the console: apt-get install -y {package}",
        names[0]
    );
}

/// The SubjectPublicKeyInfo SHA-256 (base64) of the certificate the server presents, as
/// `openssl s_client` receives it.
fn served_spki_sha256(port: u16) -> String {
    let out = Command::new("timeout")
        .args(["30", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client:\n{}", text(&out)));
    let end = stdout[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    let pem = &stdout[start..end + "-----END CERTIFICATE-----".len()];
    let (_, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// `chromedriver` on a loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(log: &Path) -> Driver {
        let bin = program(&["chromedriver"], "chromium-driver");
        let port = free_port();
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, port }
    }

    /// A fresh headless Chromium with its own profile, trusting only `pin`, the network
    /// limited to loopback.
    async fn browser(&self, profile: &Path, pin: &str) -> Client {
        let chromium = program(&["chromium", "chromium-browser"], "chromium");
        let refusing_proxy = free_port();
        let args = vec![
            "--headless=new".to_string(),
            // Chromium refuses to run as root with its sandbox; the tests run as root in CI.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", p(profile)),
            // Honoured only together with --user-data-dir.
            format!("--ignore-certificate-errors-spki-list={pin}"),
            // No request leaves the machine: names resolve to nothing, and whatever is not
            // loopback goes to a port where nothing listens.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1".into(),
            format!("--proxy-server=http://127.0.0.1:{refusing_proxy}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": p(&chromium), "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap()
    }
}

/// Waits (at most 20 s) until the current page's path is `path` (a navigation started by
/// a click or a key has committed and loaded).
async fn wait_path(c: &Client, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap();
        let ready = c
            .execute("return document.readyState;", vec![])
            .await
            .unwrap();
        if url.path() == path && ready == json!("complete") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still at {url}, waiting for {path}:\n{}",
            page_text(c).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 20 s) until the element `css` has the text `want`.
async fn wait_text(c: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && t == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never said {want:?}:\n{}",
            page_text(c).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element with id `id`.
async fn element_text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// The text of the page's `<h1>`.
async fn heading(c: &Client) -> String {
    c.find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The whole page's visible text.
async fn page_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Every URL the current page loaded (the document and each resource), as the browser's
/// resource timing saw them, and the page's origin.
async fn loaded_urls(c: &Client) -> (String, Vec<String>) {
    let v = c
        .execute(
            "return [location.origin, performance.getEntriesByType('navigation').map(e => e.name)\
             .concat(performance.getEntriesByType('resource').map(e => e.name))];",
            vec![],
        )
        .await
        .unwrap();
    let origin = v[0].as_str().unwrap().to_string();
    let urls = v[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    (origin, urls)
}

/// Asserts the page loaded its stylesheet (applied under the CSP) and nothing from
/// anywhere but `origin`.
async fn assert_only_own_origin(c: &Client, origin: &str) {
    let (page_origin, urls) = loaded_urls(c).await;
    assert_eq!(page_origin, origin);
    assert!(
        urls.iter().any(|u| u.ends_with("/ui/static/console.css")),
        "the stylesheet was not loaded: {urls:?}"
    );
    for u in &urls {
        assert!(
            u.starts_with(&format!("{origin}/")),
            "{u} is not of {origin}"
        );
    }
    // The stylesheet applied: the header has its colour (CSP allowed style-src 'self').
    let bg = c
        .execute(
            "return getComputedStyle(document.querySelector('header.top')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bg, json!("rgb(16, 42, 67)"));
}

/// Where screenshots go, if asked for.
fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("SIGNET_SCREENSHOTS").map(PathBuf::from)
}

/// What the current page gets wrong for keyboards, assistive technology and phones, at
/// this window size: form controls without a label (`<label for>` or `aria-label`), a
/// control that acts without being a `<button>` or a link (`input type=submit/button`, an
/// element with `onclick`, a positive `tabindex` that reorders the keyboard's path), and
/// content wider than the window (the page scrolling sideways; wide tables scroll in their
/// own box instead).
async fn page_problems(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "const out = [];\
             for (const el of document.querySelectorAll('input, select, textarea')) {\
               if (el.type === 'hidden') continue;\
               if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label'))\
                 out.push('unlabelled ' + el.outerHTML.slice(0, 80));\
             }\
             for (const el of document.querySelectorAll('input[type=submit], input[type=button], [onclick]'))\
               out.push('not a button: ' + el.outerHTML.slice(0, 80));\
             for (const el of document.querySelectorAll('[tabindex]'))\
               if (el.tabIndex > 0) out.push('positive tabindex: ' + el.outerHTML.slice(0, 80));\
             const w = document.documentElement.scrollWidth, vw = window.innerWidth;\
             if (w > vw) {\
               const wide = [...document.querySelectorAll('body *')]\
                 .filter(e => e.getBoundingClientRect().right > vw)\
                 .slice(0, 3).map(e => e.outerHTML.slice(0, 80));\
               out.push('wider than the window: ' + w + ' > ' + vw + ': ' + wide.join(' | '));\
             }\
             return out;",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// Checks the current page at desktop and phone widths ([`page_problems`]) and takes
/// screenshots at both, if asked for.
async fn screenshots(c: &Client, shots: bool, name: &str) {
    let dir = screenshot_dir().filter(|_| shots);
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (suffix, w, h) in [("desktop", 1280u32, 900u32), ("phone", 390, 844)] {
        c.set_window_size(w, h).await.unwrap();
        let problems = page_problems(c).await;
        assert!(problems.is_empty(), "{name} page at {w}x{h}: {problems:#?}");
        if let Some(dir) = &dir {
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
        }
    }
    c.set_window_size(1280, 900).await.unwrap();
}

/// The session cookie the browser holds, with its attributes.
async fn session_cookie(c: &Client) -> fantoccini::cookies::Cookie<'static> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == "__Host-signet_session")
        .expect("no session cookie after signing in")
}

/// The CSRF token in a console page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in:\n{html}"))
        + "name=\"csrf\" value=\"".len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// An HTTPS client trusting only the test root, following no redirects.
fn raw_client(root: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(common::tls_config(root, None, &[b"http/1.1"]))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The status of `serial` by the public API.
async fn api_status(https: &reqwest::Client, base: &str, serial: &str) -> String {
    let v: serde_json::Value = https
        .get(format!("{base}/v1/certificates/{serial}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap().to_string()
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui")).await.unwrap();
    // Not signed in: the console sends the browser to its sign-in page.
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/ui/sign-in",
        "an unauthenticated visit was not sent to sign in"
    );
    let field = c.find(Locator::Id("token")).await.unwrap();
    assert_eq!(
        field.attr("type").await.unwrap().as_deref(),
        Some("password"),
        "the token field must be a password field"
    );
    let label = c
        .find(Locator::Css("label[for=token]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!label.is_empty(), "the token field has no label");
    field.send_keys(token).await.unwrap();
    c.find(Locator::Css("form.signin button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(c, "/ui").await;
}

/// The whole walk-through, on the database `env` names (SQLite in the data directory when
/// empty); screenshots (if asked for) on SQLite only.
async fn run(tmp: &Path, env: &[(&str, &str)]) {
    let shots = env.is_empty();
    // A CA with an auditor token configured.
    let data = tmp.join("data");
    let init = signet_in(tmp, env, &["init", "--dir", p(&data)], "");
    assert!(init.status.success(), "{}", text(&init));
    let config = data.join("signet.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let toml = toml.replacen(
        "admin_token_file = \"admin.token\"",
        "admin_token_file = \"admin.token\"\nauditor_token_file = \"auditor.token\"",
        1,
    );
    std::fs::write(&config, toml).unwrap();
    let mut server = Server::start(tmp, env, &["--dir", p(&data)]).await;
    assert_eq!(
        data.join("signet.db").exists(),
        env.is_empty(),
        "the wrong database was used"
    );
    let base = server.base();
    let origin = base.clone();
    let root = data.join("root_ca.crt");
    let https = common::client(&root);
    let admin = admin_token(&data);
    let auditor = std::fs::read_to_string(data.join("auditor.token"))
        .unwrap()
        .trim()
        .to_string();
    assert!(auditor.starts_with("sr_"), "{auditor}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("auditor.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the auditor token must be 0600");
    }

    // Two certificates, issued through the API.
    let mut serials = Vec::new();
    for name in ["web.console.internal", "api.console.internal"] {
        let csr = csr(tmp, name);
        let (resp, _) = post_issue(&https, &base, &admin, &csr).await;
        assert_eq!(resp.status(), 201);
        let v: serde_json::Value = resp.json().await.unwrap();
        std::fs::write(
            tmp.join(format!("{name}.crt")),
            v["certificate"].as_str().unwrap(),
        )
        .unwrap();
        serials.push(v["serial_number"].as_str().unwrap().to_string());
    }
    let (web, api) = (serials[0].clone(), serials[1].clone());

    // The auditor token reads the admin API's listing but cannot revoke.
    let listed = https
        .get(format!("{base}/v1/certificates"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "the auditor reads the listing");
    let refused = https
        .post(format!("{base}/v1/certificates/{api}/revoke"))
        .bearer_auth(&auditor)
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "the auditor revoked through the API");

    let pin = served_spki_sha256(server.port());
    let driver = Driver::start(&tmp.join("chromedriver.log")).await;
    let c = driver.browser(&tmp.join("profile-admin"), &pin).await;

    // Sign in with the admin token.
    c.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    screenshots(&c, shots, "sign-in").await;
    sign_in(&c, &base, &admin).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/ui");
    assert_eq!(heading(&c).await, "Overview");
    let cookie = session_cookie(&c).await;
    assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
    assert_eq!(cookie.secure(), Some(true), "{cookie:?}");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "{cookie:?}"
    );
    let old_cookie = format!("__Host-signet_session={}", cookie.value());
    let overview = page_text(&c).await;
    assert!(overview.contains("Valid now"), "{overview}");
    assert!(
        overview.contains("Issuing CA certificate expires"),
        "{overview}"
    );
    assert!(overview.contains("Root CRL: nextUpdate"), "{overview}");
    assert!(
        overview.contains("OCSP signer certificate expires"),
        "{overview}"
    );
    // The charts are inline SVG drawn by the server.
    let bars = c
        .find_all(Locator::Css("svg.chart-svg rect.bar-issued"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 72, "one bar per hour of the last 72");
    assert_only_own_origin(&c, &origin).await;
    screenshots(&c, shots, "overview").await;

    // Search a certificate by name, submitted with Enter.
    c.find(Locator::LinkText("Certificates"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let search = c.find(Locator::Id("q")).await.unwrap();
    assert_eq!(
        search.attr("type").await.unwrap().as_deref(),
        Some("search")
    );
    search
        .send_keys("web.console.internal\u{E007}")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c
        .current_url()
        .await
        .unwrap()
        .query()
        .is_some_and(|q| q.contains("q=web.console.internal"))
    {
        assert!(Instant::now() < deadline, "Enter did not submit the search");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_path(&c, "/ui/certificates").await;
    let results = page_text(&c).await;
    assert!(
        results.contains(&web),
        "the search did not find {web}:\n{results}"
    );
    assert!(
        !results.contains(&api),
        "the search found {api} too:\n{results}"
    );
    assert_only_own_origin(&c, &origin).await;
    screenshots(&c, shots, "certificates").await;

    // Open it.
    c.find(Locator::LinkText(&web))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "h1", &format!("Certificate {web}")).await;
    let detail = page_text(&c).await;
    assert!(detail.contains("dns:web.console.internal"), "{detail}");
    assert!(detail.contains("serverAuth"), "EKUs are shown:\n{detail}");
    assert!(
        detail.contains("token") || detail.contains("admin"),
        "{detail}"
    );
    assert_eq!(
        c.find(Locator::Id("status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Valid"
    );
    // The live OCSP status, asked of Signet's own responder: good, with a verified answer.
    assert_eq!(element_text(&c, "ocsp-status").await, "good");
    let signature = element_text(&c, "ocsp-signature").await;
    assert!(
        signature.starts_with("verified: signed by the delegated responder"),
        "{signature}"
    );
    assert!(detail.contains("This update"), "{detail}");
    assert!(detail.contains("Next update"), "{detail}");
    // The audit trail shows its issuance.
    let trail = c
        .find(Locator::Css("#trail + .scroll table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(trail.contains("issue"), "{trail}");
    screenshots(&c, shots, "certificate").await;

    // Revoke it with a reason, confirming explicitly.
    c.find(Locator::Css("#reason option[value=keyCompromise]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("confirm"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("form.revoke button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#status", "Revoked").await;
    assert_eq!(heading(&c).await, format!("Certificate {web}"));
    let detail = page_text(&c).await;
    assert!(detail.contains("keyCompromise"), "{detail}");
    assert_eq!(api_status(&https, &base, &web).await, "revoked");
    // The responder's live answer flipped too, with the reason and a verified signature.
    assert_eq!(element_text(&c, "ocsp-status").await, "revoked");
    assert_eq!(element_text(&c, "ocsp-reason").await, "keyCompromise");
    assert!(
        element_text(&c, "ocsp-signature")
            .await
            .starts_with("verified:"),
        "{detail}"
    );
    assert!(detail.contains("Revoked at"), "{detail}");

    // Revoked in the list.
    c.goto(&format!("{base}/ui/certificates?status=revoked"))
        .await
        .unwrap();
    let rows = c
        .find(Locator::Css("table.certs tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rows.contains(&web) && rows.contains("Revoked"), "{rows}");
    assert!(!rows.contains(&api), "{rows}");

    // Revoked in `openssl ocsp`, from Signet's own responder.
    let ocsp = openssl(&[
        "ocsp",
        "-issuer",
        p(&data.join("issuing_ca.crt")),
        "-cert",
        p(&tmp.join("web.console.internal.crt")),
        "-url",
        &server.ocsp_url("/ocsp"),
        "-CAfile",
        p(&root),
        "-resp_text",
    ]);
    let ocsp_text = text(&ocsp);
    assert!(ocsp.status.success(), "{ocsp_text}");
    assert!(ocsp_text.contains("Response verify OK"), "{ocsp_text}");
    assert!(ocsp_text.contains(": revoked"), "{ocsp_text}");
    assert!(
        ocsp_text.contains("Revocation Reason: keyCompromise"),
        "{ocsp_text}"
    );

    // The audit log names the console's actor, refusals included.
    c.goto(&format!(
        "{base}/ui/audit?actor=console%3Aadmin&action=revoke"
    ))
    .await
    .unwrap();
    let audit = page_text(&c).await;
    assert!(
        audit.contains(&web) && audit.contains("reason=keyCompromise"),
        "{audit}"
    );
    assert_only_own_origin(&c, &origin).await;
    c.goto(&format!("{base}/ui/audit")).await.unwrap();
    screenshots(&c, shots, "audit").await;
    c.goto(&format!("{base}/ui/provisioners")).await.unwrap();
    let provisioners = page_text(&c).await;
    assert!(
        provisioners.contains("default") && provisioners.contains("Rate limit"),
        "{provisioners}"
    );
    screenshots(&c, shots, "provisioners").await;

    // A cross-site form post: a page of another origin (a data: URL) posts a revocation to
    // the console. The SameSite=Strict cookie is not sent and the request is refused.
    let action = format!("{base}/ui/certificates/{api}/revoke");
    let attack = format!(
        "data:text/html,<form method=post action=\"{action}\"><input name=reason value=keyCompromise>\
         <input name=confirm value=yes><input name=csrf value=guess></form>\
         <script>document.forms[0].submit()</script>"
    );
    c.goto(&attack).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.current_url().await.unwrap().scheme() == "data" {
        assert!(Instant::now() < deadline, "the attacking page did not post");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_path(&c, &format!("/ui/certificates/{api}/revoke")).await;
    let answer = page_text(&c).await;
    assert!(
        answer.contains("sign in") || answer.contains("refused"),
        "the cross-site post was not refused:\n{answer}"
    );
    assert_eq!(
        api_status(&https, &base, &api).await,
        "good",
        "a cross-site form post revoked a certificate"
    );
    // The same post with the session cookie and its CSRF token, but from another origin,
    // by a raw client: refused 403 by the Origin check.
    let raw = raw_client(&root);
    let page = raw
        .get(format!("{base}/ui/certificates/{api}"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    let form = [
        ("reason", "keyCompromise"),
        ("confirm", "yes"),
        ("csrf", csrf.as_str()),
    ];
    let cross = raw
        .post(&action)
        .header("cookie", &old_cookie)
        .header("origin", "https://attacker.example")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "a cross-origin POST was not refused");
    // And without the CSRF token, from the right origin: refused too.
    let no_token = raw
        .post(&action)
        .header("cookie", &old_cookie)
        .header("origin", &origin)
        .form(&[("reason", "keyCompromise"), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_token.status(),
        403,
        "a POST without the CSRF token was not refused"
    );
    assert_eq!(api_status(&https, &base, &api).await, "good");

    // Sign out; the old cookie, replayed by a raw HTTPS client, is refused.
    c.goto(&format!("{base}/ui")).await.unwrap();
    c.find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_path(&c, "/ui/sign-in").await;
    let replay = raw
        .get(format!("{base}/ui"))
        .header("cookie", &old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        303,
        "the old session still opened the console"
    );
    assert_eq!(
        replay.headers()["location"].to_str().unwrap(),
        "/ui/sign-in"
    );
    let replay_post = raw
        .post(&action)
        .header("cookie", &old_cookie)
        .header("origin", &origin)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay_post.status(),
        401,
        "the old session could still revoke"
    );
    assert_eq!(api_status(&https, &base, &api).await, "good");
    c.close().await.unwrap();

    // The auditor: sees everything, has no revoke button, and a forged revoke is refused.
    let c = driver.browser(&tmp.join("profile-auditor"), &pin).await;
    sign_in(&c, &base, &auditor).await;
    assert_eq!(heading(&c).await, "Overview");
    assert!(page_text(&c).await.contains("Signed in as auditor"));
    c.goto(&format!("{base}/ui/certificates/{api}"))
        .await
        .unwrap();
    assert_eq!(heading(&c).await, format!("Certificate {api}"));
    assert!(
        c.find_all(Locator::Css("form.revoke"))
            .await
            .unwrap()
            .is_empty(),
        "the auditor is offered a revoke form"
    );
    let buttons = c.find_all(Locator::Css("main button")).await.unwrap();
    for b in buttons {
        assert_ne!(
            b.text().await.unwrap(),
            "Revoke",
            "the auditor has a Revoke button"
        );
    }
    let cookie = session_cookie(&c).await;
    let auditor_cookie = format!("__Host-signet_session={}", cookie.value());
    let page = raw
        .get(format!("{base}/ui/certificates/{api}"))
        .header("cookie", &auditor_cookie)
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let forged = raw
        .post(&action)
        .header("cookie", &auditor_cookie)
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "the auditor's forged revoke was not refused"
    );
    assert_eq!(api_status(&https, &base, &api).await, "good");
    // The refusal is in the audit log, under the auditor's console actor.
    c.goto(&format!(
        "{base}/ui/audit?actor=console%3Aauditor&outcome=refused"
    ))
    .await
    .unwrap();
    let audit = page_text(&c).await;
    assert!(audit.contains("the auditor may not revoke"), "{audit}");
    c.close().await.unwrap();

    assert!(
        server.terminate().await.0.success(),
        "{}",
        server.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_console_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    tokio::time::timeout(DEADLINE, run(tmp.path(), &[]))
        .await
        .unwrap_or_else(|_| panic!("the console test did not finish within {DEADLINE:?}"));
}

/// The same on PostgreSQL (a throwaway cluster): sessions, searches, the certificate page's
/// live OCSP status (good, then revoked with its reason, from the in-process responder over
/// PostgreSQL), revocation, sign-out and the auditor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_console_on_postgresql() {
    let db = signet_testkit::TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let env = [("SIGNET_DATABASE_URL", db.url())];
    tokio::time::timeout(DEADLINE, run(tmp.path(), &env))
        .await
        .unwrap_or_else(|_| panic!("the console test did not finish within {DEADLINE:?}"));
}
