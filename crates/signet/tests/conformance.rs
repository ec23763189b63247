//! Conformance with the RFCs and with what clients do, through a real `signet serve` over
//! real HTTPS, judged by independent clients (curl, `openssl s_client`, raw TCP) and by the
//! `sqlite3` CLI reading the database:
//!
//! - a JWS header with an unknown `crit` extension is refused (RFC 7515 section 4.1.11);
//! - an HTTP/1.1 request without a `Host` header gets 400 on both listeners (RFC 9112
//!   section 3.2), problem+json from the API; HTTP/1.0 without one is still served;
//! - a `ttl` in days beyond the profile's maximum is `ttl-too-long` naming that maximum;
//! - an mTLS client that sends only its leaf is accepted (the server completes the chain
//!   with its own issuing CAs, current and kept);
//! - a token's `aud` may name the CA under any of the server's names and its port
//!   (`--ca-url https://localhost:PORT` against a server on 127.0.0.1), and refusals say
//!   which rule refused (the token's `sans`, whose policy, a malformed bearer).
//!
//! Every refusal is checked for its status, problem type and message, and for having
//! stored nothing.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{base_command, p, sqlite3, text};

/// Bound on every client command.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// A running `signet serve --dir DATA` (through the shared harness: API and responder on
/// port 0, ready file), with what the tests need to reach it.
struct Server {
    server: common::Server,
    data: PathBuf,
}

impl Server {
    /// Start `signet serve --dir DATA` and wait until every socket is bound.
    fn start(data: &Path) -> Server {
        let log_dir = data.parent().unwrap();
        let server = common::Server::start_blocking(log_dir, &[], &["--dir", p(data)]);
        Server {
            server,
            data: data.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        self.server.log_tail()
    }

    /// The CA URL the server reported (the tokens' audience).
    fn url(&self) -> String {
        self.server.base()
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn responder_port(&self) -> u16 {
        self.server.ocsp_port()
    }

    fn root(&self) -> PathBuf {
        self.data.join("root_ca.crt")
    }

    fn db(&self) -> PathBuf {
        self.data.join("signet.db")
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    fn stop(mut self) {
        let status = self.server.terminate_blocking();
        assert!(status.success(), "{status}:\n{}", self.log());
    }

    /// A one-time token from `signet token` for `sans`, with audience `ca_url`.
    fn token_for(&self, ca_url: &str, sans: &[&str]) -> String {
        common::token(&self.data, ca_url, "conformance", sans)
    }

    fn token(&self, sans: &[&str]) -> String {
        self.token_for(&self.url(), sans)
    }

    /// Rows in the certificates table, read by the sqlite3 CLI.
    fn certificates(&self) -> u64 {
        sqlite3(&self.db(), "SELECT count(*) FROM certificates")[0]
            .parse()
            .unwrap()
    }

    /// Whether a token id was burned, read by the sqlite3 CLI.
    fn burned(&self, jti: &str) -> bool {
        let sql = format!("SELECT count(*) FROM used_tokens WHERE jti = '{jti}'");
        sqlite3(&self.db(), &sql)[0] != "0"
    }

    /// POST a JSON body to the API with curl, trusting the root; the status and the body.
    fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        let mut args: Vec<String> = vec![
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            body.to_string(),
        ];
        if let Some(b) = bearer {
            args.extend(["-H".into(), format!("Authorization: Bearer {b}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&self.root(), &format!("{}{path}", self.url()), &args)
    }
}

/// Run `cmd` to completion within [`CLIENT_DEADLINE`], killing it past that.
fn run_bounded(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut b = Vec::new();
            out.read_to_end(&mut b).unwrap();
            b
        }),
        std::thread::spawn(move || {
            let mut b = Vec::new();
            err.read_to_end(&mut b).unwrap();
            b
        }),
    );
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {CLIENT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    }
}

/// curl `url` with `args`, trusting `root`; the HTTP status and the body (JSON if it is).
fn curl(root: &Path, url: &str, args: &[&str]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "20"])
        .args(["--cacert", p(root)])
        .args(["--write-out", "\n%{http_code}"])
        .args(args)
        .arg(url);
    let out = run_bounded(cmd, "curl");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    let status: u16 = status.parse().unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.into()));
    (status, body)
}

/// A P-256 key and CSR from `openssl req` for `names` (the first is the CN).
fn csr(dir: &Path, tag: &str, names: &[&str]) -> (String, PathBuf) {
    let key = dir.join(format!("{tag}.key"));
    let out = dir.join(format!("{tag}.csr"));
    let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-keyout", p(&key), "-out", p(&out)])
        .arg("-subj")
        .arg(format!("/CN={}", names[0]))
        .arg("-addext")
        .arg(format!("subjectAltName={}", sans.join(",")));
    let o = run_bounded(cmd, "openssl req");
    assert!(o.status.success(), "{}", text(&o));
    (std::fs::read_to_string(&out).unwrap(), key)
}

fn problem(body: &Value) -> (&str, &str) {
    (
        body["type"].as_str().unwrap_or_default(),
        body["detail"].as_str().unwrap_or_default(),
    )
}

/// The `jti` of a token (read without verification: the test made it).
fn jti_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

/// A provisioner token signed with the `default` provisioner's key, as `signet token` makes
/// them, with `header` as its JWS header.
fn token_with_header(server: &Server, header: jsonwebtoken::Header, sans: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let jti = format!("conformance-{now}-{}-{n}", std::process::id());
    let claims = json!({
        "iss": "default", "aud": server.url(), "sub": "conformance", "sans": sans,
        "jti": jti, "iat": now, "nbf": now, "exp": now + 120,
    });
    let pem = std::fs::read(server.data.join("provisioners/default.key")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[test]
fn a_token_with_an_unknown_critical_header_extension_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let (csr_pem, _) = csr(tmp.path(), "crit", &["crit.internal"]);
    let before = server.certificates();

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.crit = Some(vec!["urn:example:must-understand".into()]);
    header.extras.insert("urn:example:must-understand", true);
    let critical = token_with_header(&server, header, &["crit.internal"]);
    let (status, body) = server.post(
        "/v1/certificates",
        Some(&critical),
        &json!({"csr": csr_pem}),
    );
    let (kind, detail) = problem(&body);
    assert_eq!(
        (status, kind),
        (401, "urn:signet:problem:unauthorized"),
        "{body}"
    );
    assert!(
        detail.contains("critical") && detail.contains("urn:example:must-understand"),
        "{detail}"
    );
    assert!(detail.contains("RFC 7515"), "{detail}");
    assert_eq!(server.certificates(), before, "a certificate was stored");
    assert!(!server.burned(&jti_of(&critical)), "the token was burned");

    // The same token without `crit`, signed by the same key: issued.
    let plain = token_with_header(
        &server,
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &["crit.internal"],
    );
    let (status, body) = server.post("/v1/certificates", Some(&plain), &json!({"csr": csr_pem}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.certificates(), before + 1);
    server.stop();
}

/// Write `request` on a fresh TCP connection to the responder and read the answer to EOF.
fn raw_http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(CLIENT_DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Write `request` over TLS with `openssl s_client` (no ALPN: HTTP/1.1) and read the answer
/// until the server closes.
fn raw_https(server: &Server, request: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .args(["-servername", "localhost", "-CAfile", p(&server.root())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        out.read_to_end(&mut b).unwrap();
        b
    });
    let deadline = Instant::now() + CLIENT_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("openssl s_client did not finish within {CLIENT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
}

#[test]
fn http11_requests_without_host_get_400_on_both_listeners() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let rp = server.responder_port();

    // The responder (plain HTTP), by raw TCP.
    let answer = raw_http(rp, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("Host header"), "{answer}");
    let answer = raw_http(
        rp,
        "GET /crl/issuing.crl HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let two = "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n";
    assert!(raw_http(rp, two).starts_with("HTTP/1.1 400 "));
    let answer = raw_http(
        rp,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // HTTP/1.0 did not have Host: still served.
    let answer = raw_http(rp, "GET /healthz HTTP/1.0\r\n\r\n");
    assert!(answer.contains(" 200 OK"), "{answer}");

    // A standalone `signet responder` on the same data directory: the same rule.
    let mut standalone =
        common::Server::spawn_responder(tmp.path(), &[], &["--dir", p(&server.data)]);
    let sp = standalone.ready_blocking().responder.unwrap().port();
    let answer = raw_http(sp, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("Host header"), "{answer}");
    let answer = raw_http(sp, "GET /healthz HTTP/1.0\r\n\r\n");
    assert!(answer.contains(" 200 OK"), "{answer}");
    assert!(
        standalone.terminate_blocking().success(),
        "{}",
        standalone.log_tail()
    );

    // The API over TLS (openssl s_client, no ALPN so HTTP/1.1): problem+json.
    let answer = raw_https(
        &server,
        "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("urn:signet:problem:invalid-request"),
        "{answer}"
    );
    assert!(answer.contains("RFC 9112"), "{answer}");
    let answer = raw_https(&server, "GET /healthz HTTP/1.0\r\n\r\n");
    assert!(answer.contains(" 200 OK"), "{answer}");

    // An issuance without Host is refused before it is read: nothing is stored, and the
    // token is not used up (curl, which sends Host, then gets its certificate with it).
    let (csr_pem, _) = csr(tmp.path(), "host", &["host.internal"]);
    let token = server.token(&["host.internal"]);
    let before = server.certificates();
    let body = json!({"csr": csr_pem}).to_string();
    let request = format!(
        "POST /v1/certificates HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_https(&server, &request);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("urn:signet:problem:invalid-request"),
        "{answer}"
    );
    assert_eq!(server.certificates(), before);
    assert!(!server.burned(&jti_of(&token)));
    let (status, body) = server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
    assert_eq!(status, 201, "{body}");
    server.stop();
}

#[test]
fn a_ttl_in_days_beyond_the_maximum_is_ttl_too_long() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let (csr_pem, _) = csr(tmp.path(), "ttl", &["ttl.internal"]);
    let before = server.certificates();
    for (ttl, shown) in [
        ("100000d", "100000d"),
        ("8d", "8d"),
        ("99999999999999999999999d", "more than 2^64 seconds"),
    ] {
        let token = server.token(&["ttl.internal"]);
        let (status, body) = server.post(
            "/v1/certificates",
            Some(&token),
            &json!({"csr": csr_pem, "ttl": ttl}),
        );
        let (kind, detail) = problem(&body);
        assert_eq!(
            (status, kind),
            (400, "urn:signet:problem:ttl-too-long"),
            "{ttl}: {body}"
        );
        // The server profile's maximum (7 days by default), not a parser's bound.
        assert_eq!(
            detail,
            format!("lifetime {shown} exceeds the maximum 7d"),
            "{ttl}"
        );
        assert_eq!(
            server.certificates(),
            before,
            "{ttl}: a certificate was stored"
        );
    }

    // `signet issue` passes a too-long ttl to the server, which names its maximum.
    let csr_file = tmp.path().join("ttl.csr");
    let token = server.token(&["ttl.internal"]);
    let mut cmd = base_command();
    cmd.args([
        "issue",
        "--ca-url",
        &server.url(),
        "--ca-file",
        p(&server.root()),
    ])
    .args(["--csr", p(&csr_file), "--token", &token, "--ttl", "100000d"]);
    let out = run_bounded(cmd, "signet issue");
    // Refused by the CA: exit 3 (README, "Exit status").
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ttl-too-long"), "{}", text(&out));
    assert!(
        stderr.contains("lifetime 100000d exceeds the maximum 7d"),
        "{}",
        text(&out)
    );
    assert_eq!(server.certificates(), before);
    let data = server.data.clone();
    server.stop();

    // And `issue --local`, against the same profile maximum, offline.
    let mut cmd = base_command();
    cmd.args(["issue", "--local", "--dir", p(&data)]).args([
        "--csr",
        p(&csr_file),
        "--ttl",
        "100000d",
    ]);
    let out = run_bounded(cmd, "signet issue --local");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lifetime 100000d exceeds the maximum 7d"),
        "{}",
        text(&out)
    );
    let count = sqlite3(&data.join("signet.db"), "SELECT count(*) FROM certificates");
    assert_eq!(count, [before.to_string()]);
}

/// The leaf (first certificate) of a PEM chain, alone.
fn leaf_only(chain_pem: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let at = chain_pem.find(end).unwrap() + end.len();
    format!("{}\n", &chain_pem[..at])
}

/// `openssl s_client` with a client certificate file, sending one request: its whole
/// output (the handshake, then the answer if the connection survived it).
fn s_client_with_cert(server: &Server, cert: &Path, key: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .args(["-servername", "localhost", "-CAfile", p(&server.root())])
        .args(["-cert", p(cert), "-key", p(key), "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = {
        let deadline = Instant::now() + CLIENT_DEADLINE;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("openssl s_client did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_mtls_client_sending_only_its_leaf_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let (csr_pem, key) = csr(tmp.path(), "leaf", &["leaf.internal"]);
    let token = server.token(&["leaf.internal"]);
    let (status, issued) = server.post(
        "/v1/certificates",
        Some(&token),
        &json!({"csr": csr_pem, "profile": "peer"}),
    );
    assert_eq!(status, 201, "{issued}");
    let leaf = tmp.path().join("leaf.crt");
    std::fs::write(&leaf, leaf_only(issued["certificate"].as_str().unwrap())).unwrap();
    assert_eq!(
        std::fs::read_to_string(&leaf)
            .unwrap()
            .matches("BEGIN")
            .count(),
        1
    );

    // openssl sends only what the file holds: the leaf. The handshake completes.
    let seen = s_client_with_cert(&server, &leaf, &key);
    assert!(!seen.contains("unknown ca"), "{seen}");
    assert!(seen.contains("HTTP/1.1 200 OK"), "{seen}");

    // curl renews over mTLS with the leaf alone.
    let before = server.certificates();
    let renew_url = format!("{}/v1/certificates/renew", server.url());
    let mtls = ["--cert", p(&leaf), "--key", p(&key)];
    let json_post = [
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "{}",
    ];
    let args: Vec<&str> = mtls.iter().chain(json_post.iter()).copied().collect();
    let (status, body) = curl(&server.root(), &renew_url, &args);
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.certificates(), before + 1);

    // A certificate of another CA is still refused in the handshake, and stores nothing.
    let other_key = tmp.path().join("other.key");
    let other = tmp.path().join("other.crt");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-days", "1"])
        .args(["-keyout", p(&other_key), "-out", p(&other)])
        .args(["-subj", "/CN=leaf.internal"]);
    assert!(run_bounded(cmd, "openssl req -x509").status.success());
    let seen = s_client_with_cert(&server, &other, &other_key);
    assert!(seen.contains("SSL alert number"), "{seen}");
    assert!(!seen.contains("HTTP/1.1 200"), "{seen}");
    let mtls = ["--cert", p(&other), "--key", p(&other_key)];
    let args: Vec<&str> = mtls.iter().chain(json_post.iter()).copied().collect();
    let (status, _) = curl(&server.root(), &renew_url, &args);
    assert_eq!(status, 0, "a foreign client certificate got an HTTP answer");
    assert_eq!(server.certificates(), before + 1);
    server.stop();

    // After `ca new-issuing`, the old leaf (of the kept issuing CA) alone still renews:
    // the chain is completed with the kept CA, not only the current one.
    let mut cmd = base_command();
    cmd.args(["ca", "new-issuing", "--dir", p(&data)]);
    let out = run_bounded(cmd, "signet ca new-issuing");
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start(&data);
    let before = server.certificates();
    let renew_url = format!("{}/v1/certificates/renew", server.url());
    let mtls = ["--cert", p(&leaf), "--key", p(&key)];
    let args: Vec<&str> = mtls.iter().chain(json_post.iter()).copied().collect();
    let (status, body) = curl(&server.root(), &renew_url, &args);
    assert_eq!(status, 201, "{body}\n{}", server.log());
    assert_eq!(server.certificates(), before + 1);
    server.stop();
}

#[test]
fn tokens_name_the_ca_under_its_own_names_and_refusals_say_which_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = common::Server::start_blocking(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--hostname", "ca.internal"],
    );
    let server = Server { server, data };
    let port = server.port();
    let before = server.certificates();

    // The README's flow with the name the server's certificate has, not its listen address:
    // signet token and signet issue both given https://localhost:PORT.
    let localhost = format!("https://localhost:{port}");
    let _ = csr(tmp.path(), "local", &["local.internal"]);
    let token = server.token_for(&localhost, &["local.internal"]);
    let mut cmd = base_command();
    cmd.args([
        "issue",
        "--ca-url",
        &localhost,
        "--ca-file",
        p(&server.root()),
    ])
    .args(["--csr", p(&tmp.path().join("local.csr")), "--token", &token]);
    let out = run_bounded(cmd, "signet issue");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"));
    assert_eq!(server.certificates(), before + 1);

    // Any of its names with its port: ::1, the --hostname, sent to 127.0.0.1 by curl.
    let (csr_pem, _) = csr(tmp.path(), "names", &["names.internal"]);
    let mut issued = before + 1;
    for aud in [
        format!("https://[::1]:{port}"),
        format!("https://ca.internal:{port}/"),
    ] {
        let token = server.token_for(&aud, &["names.internal"]);
        let (status, body) =
            server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
        assert_eq!(status, 201, "{aud}: {body}");
        issued += 1;
        assert_eq!(server.certificates(), issued);
    }

    // Another port or another host is another CA: refused, saying what tokens must name;
    // nothing stored and the token not burned.
    for aud in [
        format!("https://localhost:{}", port.wrapping_add(1).max(1)),
        format!("https://elsewhere.internal:{port}"),
    ] {
        let token = server.token_for(&aud, &["names.internal"]);
        let (status, body) =
            server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
        let (kind, detail) = problem(&body);
        assert_eq!(
            (status, kind),
            (401, "urn:signet:problem:unauthorized"),
            "{aud}: {body}"
        );
        assert!(
            detail.contains(&format!("token audience \"{aud}\" is not this CA")),
            "{detail}"
        );
        assert!(
            detail.contains("localhost") && detail.contains("ca.internal"),
            "{detail}"
        );
        assert!(!server.burned(&jti_of(&token)), "{aud}");
    }
    assert_eq!(server.certificates(), issued);

    // A renewal token (signed by the certificate's key, x5c) from `signet renew` for a
    // server-profile certificate, with --ca-url https://localhost:PORT: its aud names the
    // renewal endpoint under that name, and it renews.
    let work = tmp.path().join("workload");
    std::fs::create_dir(&work).unwrap();
    let (csr_pem, key) = csr(tmp.path(), "renewed", &["renewed.internal"]);
    let token = server.token(&["renewed.internal"]);
    let (status, body) = server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
    assert_eq!(status, 201, "{body}");
    issued += 1;
    let mut chain = body["certificate"].as_str().unwrap().to_string();
    for ca in body["chain"].as_array().unwrap() {
        chain.push_str(ca.as_str().unwrap());
    }
    std::fs::write(work.join("tls.crt"), &chain).unwrap();
    std::fs::copy(&key, work.join("tls.key")).unwrap();
    std::fs::copy(server.root(), work.join("ca.crt")).unwrap();
    let mut cmd = base_command();
    cmd.args(["renew", "--once", "--force", "--ca-url", &localhost])
        .args(["--dir", p(&work)]);
    let out = run_bounded(cmd, "signet renew");
    assert!(out.status.success(), "{}", text(&out));
    issued += 1;
    assert_eq!(server.certificates(), issued);
    assert_ne!(
        std::fs::read_to_string(work.join("tls.crt")).unwrap(),
        chain
    );
    let renewals = sqlite3(
        &server.db(),
        "SELECT count(*) FROM audit_log WHERE action = 'renew' AND outcome = 'ok' AND actor LIKE 'x5c:%'",
    );
    assert_eq!(renewals, ["1"]);

    // A name outside the token's sans, though the CA's policy allows it: the sans refused.
    let (csr_pem, _) = csr(tmp.path(), "two", &["one.internal", "two.internal"]);
    let token = server.token(&["one.internal"]);
    let (status, body) = server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
    let (kind, detail) = problem(&body);
    assert_eq!(
        (status, kind),
        (403, "urn:signet:problem:name-denied"),
        "{body}"
    );
    assert!(
        detail.starts_with("names not in the token's sans claim"),
        "{detail}"
    );
    assert!(detail.ends_with(": dns:two.internal"), "{detail}");
    // Outside the provisioner's policy: that policy, by name.
    let (csr_pem, _) = csr(tmp.path(), "evil", &["evil.example.com"]);
    let token = server.token(&["evil.example.com"]);
    let (status, body) = server.post("/v1/certificates", Some(&token), &json!({"csr": csr_pem}));
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        problem(&body).1,
        "names not allowed by the policy of provisioner \"default\": dns:evil.example.com"
    );
    // A malformed bearer is called that, not an invalid admin token.
    let (status, body) = server.post(
        "/v1/certificates",
        Some("garbage"),
        &json!({"csr": csr_pem}),
    );
    assert_eq!(status, 401, "{body}");
    let detail = problem(&body).1;
    assert!(detail.starts_with("malformed bearer token"), "{detail}");
    assert!(!detail.contains("invalid admin token"), "{detail}");
    assert_eq!(server.certificates(), issued);
    server.stop();
}
