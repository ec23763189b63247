//! Abuse of a real `signet serve` over HTTPS (SQLite in its data directory): issuance floods
//! against the per-provisioner and per-requester rate limits, and slow or greedy clients
//! against the connection limits of `[server.limits]` (connection cap, header sizes, the
//! request timeout over HTTP/1 and per HTTP/2 stream, HTTP/2 concurrent streams).
//!
//! Every server gets its own data directory, provisioners with P-256 keys made here, and
//! small limits so that each test runs in seconds. Bounds are generous: the machine may be
//! loaded.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{base_command, p};

/// How long a server may take to come up (it first creates a CA and a database).
const STARTUP: Duration = Duration::from_secs(90);
/// The name every test certificate is for (allowed by every provisioner here).
const NAME: &str = "svc.abuse.internal";
const RATE_LIMITED: &str = "urn:signet:problem:rate-limited";
const REQUEST_TIMEOUT_TYPE: &str = "urn:signet:problem:request-timeout";

// ---- the server --------------------------------------------------------------------------

struct Server {
    proc: common::Server,
    root: PathBuf,
    admin: String,
    /// Provisioner signing keys by name.
    keys: Vec<(String, EncodingKey)>,
}

/// A provisioner to configure: name and the extra TOML lines of its entry.
struct Prov {
    name: &'static str,
    extra: &'static str,
}

impl Server {
    /// `signet init`, then the provisioners and `[server.limits]` lines appended to
    /// `signet.toml`, then `signet serve` until `/readyz` answers.
    async fn start(tmp: &Path, provisioners: &[Prov], limits: &str) -> Server {
        let data = tmp.join("data");
        let out = base_command()
            .args(["init", "--dir", p(&data)])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {out:?}");
        fs::create_dir_all(data.join("provisioners")).unwrap();
        let mut toml = format!("\n[server.limits]\n{limits}\n");
        let mut keys = Vec::new();
        for prov in provisioners {
            let key = rcgen::KeyPair::generate().unwrap();
            let pub_file = data.join("provisioners").join(format!("{}.pub", prov.name));
            fs::write(&pub_file, key.public_key_pem()).unwrap();
            keys.push((
                prov.name.to_string(),
                EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
            ));
            toml.push_str(&format!(
                "\n[[provisioners]]\nname = \"{}\"\ntype = \"token\"\npublic_key_file = \"{}\"\n{}\n[provisioners.policy]\ndns = [\"*.internal\"]\n",
                prov.name,
                p(&pub_file),
                prov.extra
            ));
        }
        let config = data.join("signet.toml");
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str(&toml);
        fs::write(&config, text).unwrap();

        let proc =
            common::Server::start(tmp, &[], &["--dir", p(&data), "--responder-listen", "off"])
                .await;
        let mut server = Server {
            proc,
            root: data.join("root_ca.crt"),
            admin: String::new(),
            keys,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            server.alive();
            // A client that keeps no idle connection: the connection-cap test counts them.
            if server.root.exists()
                && let Ok(r) = server
                    .client()
                    .get(format!("{}/readyz", server.base()))
                    .send()
                    .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.admin = fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        server
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    fn alive(&mut self) {
        self.proc.alive();
    }

    fn base(&self) -> String {
        self.proc.base()
    }

    fn addr(&self) -> String {
        self.proc.addr()
    }

    /// An HTTPS client (h2 or HTTP/1.1 by ALPN) that keeps no idle connection.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&self.root, &[b"h2", b"http/1.1"]))
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// A one-time token of provisioner `prov` for subject `sub`, allowing [`NAME`].
    fn token(&self, prov: &str, sub: &str) -> String {
        let key = &self.keys.iter().find(|(n, _)| n == prov).unwrap().1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti).unwrap();
        let claims = json!({
            "iss": prov, "aud": self.base(), "sub": sub,
            "iat": now, "nbf": now, "exp": now + 240,
            "jti": hex::encode(jti), "sans": [NAME],
        });
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, key).unwrap()
    }

    /// Certificates in the store (admin listing).
    async fn count(&self) -> usize {
        let https = self.client();
        let mut all = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut req = https
                .get(format!("{}/v1/certificates", self.base()))
                .bearer_auth(&self.admin)
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c.as_str())]);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let page: Value = resp.json().await.unwrap();
            all += page["items"].as_array().unwrap().len();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return all,
            }
        }
    }

    /// A TLS connection offering `alpn`.
    async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        tls_connect(self.addr(), &self.root, alpn).await
    }
}

fn tls_config(root: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tls
}

async fn tls_connect(
    addr: String,
    root: &Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(root, alpn)));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The body of an issuance request for [`NAME`] (a fresh P-256 key).
fn issue_body() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![NAME.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    json!({ "csr": csr }).to_string()
}

/// One answer: status, `Retry-After`, content type and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// Presents `token` until the rate limit lets it through (waiting what each 429's
/// `Retry-After` says, at most 10 s in all) and returns the first answer that is not 429:
/// a token refused with 429 was not burned if that answer is 201.
async fn once_refilled(server: &Server, token: &str, body: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = issue(&server.client(), &server.base(), token, body).await;
        if a.status != 429 {
            return a;
        }
        let wait: u64 = a
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a 429 without a Retry-After in seconds: {a:?}"));
        assert!(
            Instant::now() + Duration::from_secs(wait) < deadline,
            "the bucket did not refill within 10 s: {a:?}"
        );
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

async fn issue(https: &reqwest::Client, base: &str, bearer: &str, body: &str) -> Answer {
    let resp = https
        .post(format!("{base}/v1/certificates"))
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (retry_after, content_type) = (header("retry-after"), header("content-type"));
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        content_type,
        body,
    }
}

/// A 429 as the rate limits give it: problem+json, type rate-limited, `Retry-After` of at
/// least one second, the detail naming `who` and never carrying a token.
fn assert_rate_limited(a: &Answer, who: &str) {
    assert_eq!(a.status, 429, "{a:?}");
    assert_eq!(
        a.content_type.as_deref(),
        Some("application/problem+json"),
        "{a:?}"
    );
    assert_eq!(a.body["type"], RATE_LIMITED, "{a:?}");
    let secs: u64 = a.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{a:?}");
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(who), "{detail:?} should name {who:?}");
    assert!(!detail.contains("eyJ"), "a token leaked into {detail:?}");
}

// ---- rate limits --------------------------------------------------------------------------

/// Provisioner A (5/s, burst 5) is flooded by 32 concurrent clients for 3 s while B issues
/// at a modest pace: A gets at most its budget of 201s and 429s for the rest, B is never
/// refused, the store holds exactly the certificates answered 201, and a token refused with
/// 429 was not burned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooded_provisioner_gets_429s_within_its_budget_and_does_not_starve_another() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(
        Server::start(
            tmp.path(),
            &[
                Prov {
                    name: "flooded",
                    extra: "rate_limit_per_second = 5\nrate_limit_burst = 5",
                },
                Prov {
                    name: "calm",
                    extra: "",
                },
            ],
            "",
        )
        .await,
    );
    let before = server.count().await;
    let body = Arc::new(issue_body());
    const FLOOD: Duration = Duration::from_secs(3);

    let started = Instant::now();
    let mut flooders = Vec::new();
    for i in 0..32 {
        let (server, body) = (server.clone(), body.clone());
        flooders.push(tokio::spawn(async move {
            let https = server.client();
            let mut answers = Vec::new();
            let mut refused_token = None;
            while started.elapsed() < FLOOD {
                let token = server.token("flooded", &format!("flooder-{i}"));
                let a = issue(&https, &server.base(), &token, &body).await;
                if a.status == 429 && refused_token.is_none() {
                    refused_token = Some(token);
                }
                answers.push(a);
            }
            (answers, refused_token, Instant::now())
        }));
    }
    let calm = {
        let (server, body) = (server.clone(), body.clone());
        tokio::spawn(async move {
            let https = server.client();
            let mut answers = Vec::new();
            while started.elapsed() < FLOOD {
                let token = server.token("calm", "calm-client");
                answers.push(issue(&https, &server.base(), &token, &body).await);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            answers
        })
    };

    let mut flooded = Vec::new();
    let mut refused_tokens = Vec::new();
    let mut last_end = started;
    for f in flooders {
        let (answers, refused, end) = f.await.unwrap();
        flooded.extend(answers);
        refused_tokens.extend(refused);
        last_end = last_end.max(end);
    }
    let elapsed = last_end - started;
    let calm = calm.await.unwrap();

    let ok = flooded.iter().filter(|a| a.status == 201).count();
    let budget = 5.0 + 5.0 * elapsed.as_secs_f64();
    eprintln!(
        "flooded: {} requests in {elapsed:?}: {ok} issued (budget {budget:.1}); calm: {} requests",
        flooded.len(),
        calm.len()
    );
    for a in flooded.iter().filter(|a| a.status != 201) {
        assert_rate_limited(a, "provisioner flooded");
    }
    assert!(ok >= 5, "the burst was not served: {ok} issued");
    assert!(
        (ok as f64) <= budget + 2.0,
        "{ok} issued in {elapsed:?}, over the budget of {budget:.1}"
    );
    assert!(
        flooded.len() > ok + 32,
        "the flood was not a flood: {} requests",
        flooded.len()
    );
    assert!(calm.len() >= 5, "calm made only {} requests", calm.len());
    for a in &calm {
        assert_eq!(a.status, 201, "the calm provisioner was refused: {a:?}");
    }
    assert_eq!(server.count().await, before + ok + calm.len());

    // A refused token was not burned: it works once the bucket has refilled.
    assert!(!refused_tokens.is_empty());
    let a = once_refilled(&server, &refused_tokens[0], &body).await;
    assert_eq!(a.status, 201, "a token refused with 429 was burned: {a:?}");
    // And used now: a second use (past the rate limit, which is checked first) is a replay.
    let a = once_refilled(&server, &refused_tokens[0], &body).await;
    assert_eq!(a.body["type"], "urn:signet:problem:token-replayed", "{a:?}");
    assert_eq!(server.count().await, before + ok + calm.len() + 1);
}

/// Under one provisioner with a generous rate but 2/s (burst 2) per requester, a requester
/// that floods gets 429s naming it while another requester is served every time; the store
/// holds exactly the 201s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_requester_is_limited_without_touching_its_neighbours() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(
        Server::start(
            tmp.path(),
            &[Prov {
                name: "shared",
                extra: "rate_limit_per_second = 1000\nrate_limit_burst = 1000\nrate_limit_per_identity_per_second = 2\nrate_limit_per_identity_burst = 2",
            }],
            "",
        )
        .await,
    );
    let before = server.count().await;
    let body = Arc::new(issue_body());
    let started = Instant::now();
    let mut flood = Vec::new();
    let mut polite = Vec::new();
    let mut refused_token = None;
    for _ in 0..4 {
        let round = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (server, body) = (server.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let token = server.token("shared", "flooder");
                let a = issue(&server.client(), &server.base(), &token, &body).await;
                (a, token)
            }));
        }
        let token = server.token("shared", "polite");
        polite.push(issue(&server.client(), &server.base(), &token, &body).await);
        for t in tasks {
            let (a, token) = t.await.unwrap();
            if a.status == 429 && refused_token.is_none() {
                refused_token = Some(token);
            }
            flood.push(a);
        }
        // One polite request per second at most: well inside its own 2/s.
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(round.elapsed())).await;
    }
    let elapsed = started.elapsed();
    let ok = flood.iter().filter(|a| a.status == 201).count();
    eprintln!(
        "flooder: {ok} of {} issued in {elapsed:?}; polite: {} requests",
        flood.len(),
        polite.len()
    );
    for a in flood.iter().filter(|a| a.status != 201) {
        assert_rate_limited(a, "\"flooder\"");
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap()
                .contains("provisioner shared"),
            "{a:?}"
        );
    }
    assert!(ok >= 2, "the flooder's burst was not served");
    let budget = 2.0 + 2.0 * elapsed.as_secs_f64() + 1.0;
    assert!(
        (ok as f64) <= budget,
        "{ok} issued to the flooder in {elapsed:?} (budget {budget:.1})"
    );
    assert!(flood.len() - ok >= 10, "too few refusals: {flood:?}");
    for a in &polite {
        assert_eq!(a.status, 201, "the polite requester was refused: {a:?}");
    }
    assert_eq!(server.count().await, before + ok + polite.len());

    // The flooder's refused token was not burned: it works once its bucket has refilled.
    let a = once_refilled(&server, &refused_token.unwrap(), &body).await;
    assert_eq!(a.status, 201, "a token refused with 429 was burned: {a:?}");
    assert_eq!(server.count().await, before + ok + polite.len() + 1);
}

// ---- connection limits ----------------------------------------------------------------------

/// HTTP/1.1 GET over an established connection; returns the status line.
async fn http1_get<S>(s: &mut S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s.flush().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before answering: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if response_complete(&buf) {
            break;
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `buf` holds a whole HTTP/1.1 response with a Content-Length body.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| buf.len() >= end + 4 + len)
}

/// With `max_connections = 4`, four idle (TLS-established, served once) connections hold
/// every slot: a fifth is not served until one of them closes, then it is; the server is
/// healthy afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_a_fifth_connection_until_one_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        &[],
        "max_connections = 4\nheader_read_timeout = \"60s\"\nhandshake_timeout = \"60s\"",
    )
    .await;
    // The readiness client's connection is gone once the server has noticed: wait until
    // four connections can be established and served.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while held.len() < 4 {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = server.tls(&[b"http/1.1"]).await;
            let status = http1_get(&mut c, "/healthz").await;
            (c, status)
        })
        .await;
        match attempt {
            Ok((c, status)) => {
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                held.push(c);
            }
            Err(_) => assert!(
                Instant::now() < deadline,
                "could not open {} connections",
                held.len() + 1
            ),
        }
    }

    let (addr, root) = (server.addr(), server.root.clone());
    let fifth = tokio::spawn(async move {
        let started = Instant::now();
        let mut c = tls_connect(addr, &root, &[b"http/1.1"]).await;
        let status = http1_get(&mut c, "/healthz").await;
        (started.elapsed(), status)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !fifth.is_finished(),
        "a fifth connection was served while four were open"
    );
    // The held ones are still served meanwhile.
    let status = http1_get(&mut held[0], "/healthz").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    let mut closing = held.pop().unwrap();
    closing.shutdown().await.unwrap();
    drop(closing);
    let (took, status) = tokio::time::timeout(Duration::from_secs(20), fifth)
        .await
        .expect("the fifth connection was not served after one closed")
        .unwrap();
    eprintln!("fifth connection served after {took:?}: {status}");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(took >= Duration::from_secs(2));

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            server
                .client()
                .get(format!("{}/readyz", server.base()))
                .send(),
        )
        .await;
        if let Ok(Ok(r)) = r
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "unhealthy after the cap test");
    }
    assert!(server.count().await >= 1);
}

/// Send raw bytes over `stream` and read until the server closes or a whole response is in;
/// `None` if the connection ended with nothing read. Writing may fail once the server has
/// answered and closed.
async fn raw_exchange<S>(stream: S, request: Vec<u8>) -> Option<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        for chunk in request.chunks(4096) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if response_complete(&buf) {
                break;
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no answer and no close within 30 s: {buf:?}");
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

/// 64 KiB of headers: HTTP/1 gets 431 from hyper, HTTP/2 gets 431 from h2 for that stream;
/// nothing is stored, and the same request with small headers is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_over_http1_and_http2_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[], "max_header_bytes = 16384").await;
    let before = server.count().await;
    let body = issue_body();
    let padding: Vec<(String, String)> = (0..64)
        .map(|i| (format!("x-pad-{i}"), "a".repeat(1000)))
        .collect();

    // HTTP/1.1.
    let mut head = format!(
        "POST /v1/certificates HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        server.admin,
        body.len()
    );
    for (k, v) in &padding {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let request = format!("{head}\r\n{body}").into_bytes();
    let answer = raw_exchange(server.tls(&[b"http/1.1"]).await, request).await;
    eprintln!("HTTP/1.1 with 64 KiB of headers: {answer:?}");
    let answer = answer.expect("no answer to 64 KiB of headers");
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "64 KiB of headers got {answer:?}"
    );
    assert_eq!(server.count().await, before);

    // HTTP/2, 64 KiB of headers: the header block spans CONTINUATION frames beyond the
    // limit, which h2 treats as a connection error: GOAWAY with COMPRESSION_ERROR.
    let (mut send, conn) = h2_connect(&server).await;
    let mut req = post_certificates(&server);
    for (k, v) in &padding {
        req = req.header(k.as_str(), v.as_str());
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false).unwrap();
    let _ = stream.send_data(Bytes::from(body.clone()), true);
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .expect("no HTTP/2 answer to 64 KiB of headers");
    eprintln!("HTTP/2 with 64 KiB of headers: {resp:?}");
    let err = resp.unwrap_err();
    assert!(err.is_go_away() && err.is_remote(), "{err:?}");
    assert_eq!(err.reason(), Some(h2::Reason::COMPRESSION_ERROR), "{err:?}");
    let ended = tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .expect("the connection was not closed after GOAWAY")
        .unwrap();
    assert!(ended.is_err(), "{ended:?}");
    assert_eq!(server.count().await, before);

    // HTTP/2, a header list over the limit in one frame (400 small headers: about 7 KiB on
    // the wire, 19 KiB as a header list): 431 for that stream; the connection lives on.
    let (mut send, _conn) = h2_connect(&server).await;
    let mut req = post_certificates(&server);
    for i in 0..400 {
        req = req.header(format!("x-p{i}").as_str(), "0123456789");
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false).unwrap();
    let _ = stream.send_data(Bytes::from(body.clone()), true);
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .expect("no HTTP/2 answer to a 19 KiB header list");
    eprintln!("HTTP/2 with a 19 KiB header list: {resp:?}");
    assert_eq!(resp.unwrap().status(), 431);
    assert_eq!(server.count().await, before);
    // The same connection then serves an ordinary request.
    let mut send = send.ready().await.unwrap();
    let (resp, mut stream) = send
        .send_request(post_certificates(&server).body(()).unwrap(), false)
        .unwrap();
    stream.send_data(Bytes::from(body.clone()), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 201);

    // And the same request with ordinary headers over HTTP/1.1 too.
    let https = server.client();
    let a = issue(&https, &server.base(), &server.admin, &body).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(server.count().await, before + 2);
}

/// An h2 connection (TLS, ALPN h2) ready to send, and its connection task.
async fn h2_connect(
    server: &Server,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tls = server.tls(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let conn = tokio::spawn(conn);
    (send.ready().await.unwrap(), conn)
}

/// `POST /v1/certificates` with the admin credential, JSON, headers only.
fn post_certificates(server: &Server) -> hyper::http::request::Builder {
    hyper::Request::post(format!("{}/v1/certificates", server.base()))
        .header("authorization", format!("Bearer {}", server.admin))
        .header("content-type", "application/json")
}

/// Read an h2 response: status, content type and body as JSON.
async fn h2_answer(
    resp: h2::client::ResponseFuture,
) -> Result<(u16, Option<String>, Value), h2::Error> {
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Ok((
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Slow-loris over HTTP/2: one connection opens more streams than
/// `http2_max_concurrent_streams = 4`, each sending its headers and part of a body, then
/// nothing. The server advertises the limit and h2 holds the streams beyond it back until
/// earlier ones end; each stream gets 408 problem+json `request-timeout` within about twice
/// `request_timeout = 2s` of being opened; a client on another connection is served all
/// along; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http2_streams_get_408_and_are_capped_per_connection() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(
        Server::start(
            tmp.path(),
            &[],
            "request_timeout = \"2s\"\nhttp2_max_concurrent_streams = 4",
        )
        .await,
    );
    let before = server.count().await;
    let (mut send, _conn) = h2_connect(&server).await;
    // One request first, so that the server's SETTINGS have been read.
    let req = hyper::Request::get(format!("{}/healthz", server.base()))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    assert_eq!(h2_answer(resp).await.unwrap().0, 200);
    assert_eq!(
        send.current_max_send_streams(),
        4,
        "the server does not advertise SETTINGS_MAX_CONCURRENT_STREAMS = 4"
    );

    // A normal client on another connection, issuing all along.
    let normal = {
        let server = server.clone();
        tokio::spawn(async move {
            let https = server.client();
            let body = issue_body();
            let mut statuses = Vec::new();
            let started = Instant::now();
            while started.elapsed() < 3 * TIMEOUT {
                let a = issue(&https, &server.base(), &server.admin, &body).await;
                statuses.push((a.status, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            statuses
        })
    };

    let started = Instant::now();
    let mut streams = Vec::new();
    let mut held = Vec::new();
    for _ in 0..6 {
        let req = post_certificates(&server)
            .header("content-length", "1000")
            .body(())
            .unwrap();
        send = send.ready().await.unwrap();
        let (resp, mut body) = send.send_request(req, false).unwrap();
        body.send_data(Bytes::from_static(b"{\"csr\": \""), false)
            .unwrap();
        held.push(body); // never finished
        streams.push(tokio::spawn(async move {
            let answer = h2_answer(resp).await;
            (answer, started.elapsed())
        }));
    }
    let mut done = Vec::new();
    for s in streams {
        let (answer, took) = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("a stalled stream was never answered")
            .unwrap();
        let (status, content_type, body) = answer.expect("a stalled stream was reset");
        eprintln!("stalled stream answered {status} after {took:?}");
        assert_eq!(status, 408, "{body}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(body["type"], REQUEST_TIMEOUT_TYPE, "{body}");
        assert_eq!(body["status"], 408);
        done.push(took);
    }
    // The first four were open at once: each answered within twice the timeout.
    for took in &done[..4] {
        assert!(
            *took >= TIMEOUT - Duration::from_millis(100) && *took <= 2 * TIMEOUT,
            "first streams answered after {done:?}"
        );
    }
    // The last two could only open when earlier ones ended: not before a second timeout.
    for took in &done[4..] {
        assert!(
            *took >= 2 * TIMEOUT - Duration::from_millis(200) && *took <= 4 * TIMEOUT,
            "streams beyond the limit answered after {done:?}"
        );
    }
    drop(held);

    let normal = normal.await.unwrap();
    eprintln!("normal client meanwhile: {normal:?}");
    assert!(normal.len() >= 3, "{normal:?}");
    for (status, _) in &normal {
        assert_eq!(*status, 201, "the normal client was not served: {normal:?}");
    }
    assert_eq!(server.count().await, before + normal.len());
}

/// An HTTP/1.1 request whose body stops: 408 problem+json `request-timeout` with
/// `Connection: close` within twice `request_timeout`, then the connection is closed;
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http1_body_gets_408_problem_json() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[], "request_timeout = \"2s\"").await;
    let before = server.count().await;
    let mut tls = server.tls(&[b"http/1.1"]).await;
    let started = Instant::now();
    let head = format!(
        "POST /v1/certificates HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"csr\": \"",
        server.admin
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(4 * TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&buf).into_owned();
    eprintln!("stalled body: closed after {took:?}: {said:?}");
    assert!(closed.is_ok(), "the connection stayed open: {said:?}");
    assert!(
        took >= TIMEOUT - Duration::from_millis(100) && took <= 2 * TIMEOUT,
        "answered after {took:?}"
    );
    assert!(said.starts_with("HTTP/1.1 408 "), "{said:?}");
    let end = find(&buf, b"\r\n\r\n").unwrap();
    let head = said[..end].to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close"), "{head}");
    let problem: Value = serde_json::from_slice(&buf[end + 4..]).unwrap();
    assert_eq!(problem["type"], REQUEST_TIMEOUT_TYPE, "{problem}");
    assert_eq!(problem["status"], 408);
    assert_eq!(server.count().await, before);

    // Counted with the other refusals.
    let metrics = server
        .client()
        .get(format!("{}/metrics", server.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("signet_refusals_total{") && l.contains("request-timeout")),
        "no request-timeout refusal in the metrics:\n{metrics}"
    );
}

/// One HTTP/2 frame: type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK "literal header field without indexing, new name", no Huffman coding (names and
/// values under 127 bytes).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    out.push(0x00);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS (raw frames over TLS with ALPN
/// h2): with the limit at 4, it opens 6 issuance streams whose bodies never come. The
/// server refuses the 5th and 6th at once with RST_STREAM REFUSED_STREAM (h2's enforcement
/// of its own limit), and answers the first four only when the request timeout ends them
/// (then resets each with NO_ERROR, as it does not want the rest of the body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_over_the_stream_limit_gets_refused_stream() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const REFUSED_STREAM: u32 = 0x7;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        &[],
        "request_timeout = \"2s\"\nhttp2_max_concurrent_streams = 4",
    )
    .await;
    let tls = server.tls(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut rd, mut wr) = tokio::io::split(tls);

    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(SETTINGS, 0, 0, &[]));
    let ids = [1u32, 3, 5, 7, 9, 11];
    for id in ids {
        // :method POST (static 3), :scheme https (static 7), then literals.
        let mut block = vec![0x83, 0x87];
        hpack_literal(&mut block, ":path", "/v1/certificates");
        hpack_literal(&mut block, ":authority", "localhost");
        hpack_literal(
            &mut block,
            "authorization",
            &format!("Bearer {}", server.admin),
        );
        hpack_literal(&mut block, "content-type", "application/json");
        hpack_literal(&mut block, "content-length", "1000");
        out.extend(h2_frame(HEADERS, 0x4, id, &block)); // END_HEADERS, no END_STREAM
    }
    let started = Instant::now();
    wr.write_all(&out).await.unwrap();
    wr.flush().await.unwrap();

    // Read frames (ACKing the server's SETTINGS) until every stream has an answer.
    let mut refused = Vec::new();
    let mut answered = Vec::new();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 16 * 1024];
        while refused.len() + answered.len() < ids.len() {
            // After answering 408, hyper resets the stream with NO_ERROR (the body it no
            // longer wants); only refusals count here.
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match kind {
                    SETTINGS if flags & 0x1 == 0 => {
                        wr.write_all(&h2_frame(SETTINGS, 0x1, 0, &[]))
                            .await
                            .unwrap();
                        wr.flush().await.unwrap();
                    }
                    RST_STREAM => {
                        let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                        if code != 0 {
                            refused.push((stream, code, started.elapsed()));
                        }
                    }
                    HEADERS => answered.push((stream, started.elapsed())),
                    GOAWAY => panic!("GOAWAY: {payload:?}"),
                    _ => {}
                }
            }
            if refused.len() + answered.len() == ids.len() {
                break;
            }
            let n = rd.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    eprintln!("refused: {refused:?}; answered: {answered:?}");
    assert!(read.is_ok(), "refused {refused:?}, answered {answered:?}");
    let mut refused_ids: Vec<u32> = refused.iter().map(|r| r.0).collect();
    refused_ids.sort_unstable();
    assert_eq!(refused_ids, [9, 11], "{refused:?}");
    for (_, code, at) in &refused {
        assert_eq!(*code, REFUSED_STREAM, "{refused:?}");
        assert!(*at < TIMEOUT, "refused only after {at:?}");
    }
    let mut answered_ids: Vec<u32> = answered.iter().map(|a| a.0).collect();
    answered_ids.sort_unstable();
    assert_eq!(answered_ids, [1, 3, 5, 7], "{answered:?}");
    for (_, at) in &answered {
        assert!(
            *at >= TIMEOUT - Duration::from_millis(100) && *at <= 2 * TIMEOUT,
            "{answered:?}"
        );
    }
    // The server is fine afterwards.
    let r = server
        .client()
        .get(format!("{}/readyz", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
