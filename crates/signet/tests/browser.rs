//! The API page as a person sees it: Debian's Chromium, headless, opens `/docs` of a real
//! `signet serve` over HTTPS and must render Swagger UI with every operation of the served
//! OpenAPI document (`POST /v1/certificates` among them), not "No API definition provided.".
//!
//! Chromium is driven with `--dump-dom` and a virtual-time budget: the page's scripts run,
//! fetch `/openapi.json` and render, and the resulting DOM is printed. Chromium trusts only
//! the server's own key (`--ignore-certificate-errors-spki-list` with the SHA-256 of the
//! SubjectPublicKeyInfo of the certificate `openssl s_client` received), so the page is
//! loaded over the real TLS connection; a control run without the pin must not render it.
//! Needs `chromium` (`apt-get install -y chromium`); without it the test fails and says so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use der::{Decode, Encode};

mod common;
use common::{Server, p, text};

/// How long one Chromium run may take, wall clock, before it is killed.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);
/// Virtual time the page gets to load and render; Chromium does not advance it while a
/// fetch is outstanding, so this is not a race against the network.
const VIRTUAL_TIME_BUDGET_MS: u32 = 20_000;

/// The Chromium binary, or a failure that says how to install it (never a skip).
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file());
        if let Some(path) = found {
            return path;
        }
    }
    panic!("Chromium is needed to test the API page in a browser: apt-get install -y chromium");
}

/// The SubjectPublicKeyInfo SHA-256 (base64) of the certificate the server presents, as
/// `openssl s_client` receives it: what Chromium's `--ignore-certificate-errors-spki-list`
/// takes.
fn served_spki_sha256(port: u16) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    let out = wait_bounded(&mut child, Duration::from_secs(30), "openssl s_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pem_start = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client:\n{}", text(&out)));
    let pem_end = stdout[pem_start..]
        .find("-----END CERTIFICATE-----")
        .unwrap()
        + pem_start;
    let pem = &stdout[pem_start..pem_end + "-----END CERTIFICATE-----".len()];
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE");
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Wait for `child` at most `limit`, killing it past that; its collected output.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child_output(child);
            panic!("{what} did not finish within {limit:?}:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child_output(child)
}

fn child_output(child: &mut Child) -> Output {
    use std::io::Read;
    let status = child.wait().unwrap();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_end(&mut stdout).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_end(&mut stderr).unwrap();
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Load `url` in headless Chromium with a fresh profile; the DOM after the page's scripts
/// ran. `spki_pin` makes Chromium accept a certificate with that key.
fn dump_dom(chromium: &Path, profile: &Path, url: &str, spki_pin: Option<&str>) -> String {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        // Chromium refuses to run as root with its sandbox; the tests run as root in CI.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        // Nothing but the page: no update checks, sync or other traffic (the network is
        // closed anyway).
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ])
    .arg(format!("--user-data-dir={}", p(profile)))
    .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"));
    if let Some(pin) = spki_pin {
        // Honoured only together with --user-data-dir.
        cmd.arg(format!("--ignore-certificate-errors-spki-list={pin}"));
    }
    cmd.args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Read stdout while Chromium runs: a DOM bigger than the pipe buffer would block it.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).unwrap();
        buf
    });
    let out = wait_bounded(&mut child, BROWSER_DEADLINE, "chromium --dump-dom");
    let dom = reader.join().unwrap();
    assert!(
        out.status.success(),
        "chromium failed:\n{}\n{}",
        text(&out),
        String::from_utf8_lossy(&dom)
    );
    String::from_utf8(dom).unwrap()
}

/// Every (METHOD, path) of the served OpenAPI document, fetched with curl trusting the root.
fn operations(port: u16, root: &Path) -> Vec<(String, String)> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "30"])
        .args(["--cacert", p(root)])
        .arg(format!("https://127.0.0.1:{port}/openapi.json"))
        .output()
        .expect("curl must be installed (apt-get install curl)");
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops
}

#[test]
fn the_api_page_renders_signets_operations_in_chromium() {
    let chromium = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start_blocking(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--responder-listen", "off"],
    );
    let url = format!("https://127.0.0.1:{}/docs", server.port());
    let pin = served_spki_sha256(server.port());
    let ops = operations(server.port(), &data.join("root_ca.crt"));
    assert!(
        ops.contains(&("post".to_string(), "/v1/certificates".to_string())),
        "{ops:?}"
    );

    let dom = dump_dom(&chromium, &tmp.path().join("profile"), &url, Some(&pin));
    assert!(
        !dom.contains("No API definition provided"),
        "Swagger UI found no API definition:\n{dom}"
    );
    assert!(
        dom.contains("swagger-ui"),
        "not the Swagger UI page:\n{dom}"
    );
    // Swagger UI renders each operation as a block `opblock opblock-<method>` whose summary
    // carries `data-path="<path>"`.
    for (method, path) in &ops {
        let block = format!("opblock opblock-{method}");
        let found = dom.match_indices(&block).any(|(at, _)| {
            let rest = &dom[at..];
            let end = rest[1..]
                .find("opblock opblock-")
                .map_or(rest.len(), |e| e + 1);
            rest[..end].contains(&format!("data-path=\"{path}\""))
        });
        assert!(
            found,
            "{} {path} is not rendered:\n{dom}",
            method.to_uppercase()
        );
    }
    // The page names the API's own title from the document.
    assert!(dom.contains("Signet"), "{dom}");

    // Control: without the pin Chromium does not trust Signet's certificate, and the page
    // (so every operation on it) stays away. The pin, not an ignored error, let it in.
    let refused = dump_dom(&chromium, &tmp.path().join("profile-unpinned"), &url, None);
    assert!(
        !refused.contains("data-path=\"/v1/certificates\""),
        "an untrusted certificate was accepted:\n{refused}"
    );
    assert!(
        server.terminate_blocking().success(),
        "{}",
        server.log_tail()
    );
}
