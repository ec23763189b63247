//! Hostile input against the running API: a real `signet serve` process (SQLite in its data
//! directory) and a table of bad requests, each of which must get a specific status and
//! problem `type`, and must leave the database as it was (the certificate count and the
//! revoked count, read through the admin listing, are checked after every case).
//!
//! The table covers credentials (missing, malformed, `alg: none`, HS256 keyed with the
//! public key, a foreign key, another audience, expired, too long-lived, wrong issuer,
//! replayed `jti`, bad `sans`), CSRs (bad signatures, weak or unknown keys and curves, SHA-1,
//! CA:TRUE and pathLen, 101 and 1,000 names, NUL and non-ASCII names, names outside policy,
//! trailing garbage, DER bombs), bodies (10 MiB, wrong content types, duplicate and unknown
//! JSON keys, deep nesting), and serials and query parameters carrying path traversal and
//! SQL metacharacters. Connection-level abuse (a stalled TLS handshake, headers sent a few
//! bytes at a time then stalled, a body that stops) runs alongside: the server must close
//! each within twice its configured timeout.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{Server, client_with, openssl, p, text};

/// The listener's default limits (`[server.limits]`, `serve/listener.rs`) and the API's
/// default request timeout (`signet_api::REQUEST_TIMEOUT`), which answers 408.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A rustls configuration trusting only `root`, offering `alpn`.
fn tls_config(root: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    common::tls_config(root, None, alpn)
}

fn client(root: &Path) -> reqwest::Client {
    client_with(root, None, Duration::from_secs(30))
}

/// A CSR made by `openssl req` with `key_args` (e.g. `-newkey rsa:1024`), subject `subj`
/// and extra `-addext` values; PEM.
fn openssl_csr(dir: &Path, tag: &str, key_args: &[&str], subj: &str, exts: &[&str]) -> String {
    let key = dir.join(format!("{tag}.key"));
    let csr = dir.join(format!("{tag}.csr"));
    let mut args = vec!["req", "-new", "-nodes", "-keyout", p(&key), "-out", p(&csr)];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["-subj", subj]);
    for e in exts {
        args.extend_from_slice(&["-addext", e]);
    }
    let o = openssl(&args);
    assert!(o.status.success(), "{tag}: {}", text(&o));
    fs::read_to_string(&csr).unwrap()
}

/// A CSR made by rcgen (for names openssl will not write, such as a NUL in a DNS name).
fn rcgen_csr(cn: Option<&str>, sans: Vec<rcgen::SanType>) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap().1
}

fn der_to_pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE REQUEST", pem_rfc7468::LineEnding::LF, der).unwrap()
}

fn der_header(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out
}

/// SEQUENCEs nested `depth` deep, every length exact.
fn nested_sequences(depth: usize) -> Vec<u8> {
    let mut inner = vec![0x05, 0x00];
    for _ in 0..depth {
        let mut outer = der_header(0x30, inner.len());
        outer.extend_from_slice(&inner);
        inner = outer;
    }
    inner
}

fn issue_body(csr: &str) -> Vec<u8> {
    json!({ "csr": csr }).to_string().into_bytes()
}

/// What one hostile request is.
enum Req {
    /// `POST /v1/certificates`.
    Issue {
        auth: Option<String>,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
    /// `GET /v1/certificates/{serial}` with `serial` already URL-encoded as needed.
    Get(String),
    /// `GET /v1/certificates?{query}`.
    List { auth: Option<String>, query: String },
    /// `POST /v1/certificates/{serial}/revoke`.
    Revoke {
        auth: Option<String>,
        serial: String,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    },
    /// `POST /v1/certificates/renew`.
    Renew { auth: Option<String> },
    /// Raw HTTP/1.1 bytes over TLS (for paths no HTTP client library would send).
    Raw(Vec<u8>),
}

struct Case {
    name: String,
    req: Req,
    status: u16,
    slug: &'static str,
}

fn case(name: impl Into<String>, req: Req, status: u16, slug: &'static str) -> Case {
    Case {
        name: name.into(),
        req,
        status,
        slug,
    }
}

struct Api {
    base: String,
    https: reqwest::Client,
    root: PathBuf,
    admin: String,
}

/// A response reduced to what the cases check.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Api {
    fn admin(&self) -> Option<String> {
        Some(format!("Bearer {}", self.admin))
    }

    async fn send(&self, req: &Req) -> Answer {
        let with = |b: reqwest::RequestBuilder, auth: &Option<String>, ct: Option<&str>| {
            let mut b = b;
            if let Some(a) = auth {
                b = b.header("authorization", a.as_bytes());
            }
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b
        };
        let builder = match req {
            Req::Issue {
                auth,
                content_type,
                body,
            } => with(
                self.https.post(format!("{}/v1/certificates", self.base)),
                auth,
                *content_type,
            )
            .body(body.clone()),
            Req::Get(serial) => self
                .https
                .get(format!("{}/v1/certificates/{serial}", self.base)),
            Req::List { auth, query } => with(
                self.https
                    .get(format!("{}/v1/certificates?{query}", self.base)),
                auth,
                None,
            ),
            Req::Revoke {
                auth,
                serial,
                content_type,
                body,
            } => with(
                self.https
                    .post(format!("{}/v1/certificates/{serial}/revoke", self.base)),
                auth,
                *content_type,
            )
            .body(body.clone()),
            Req::Renew { auth } => with(
                self.https
                    .post(format!("{}/v1/certificates/renew", self.base)),
                auth,
                None,
            ),
            Req::Raw(bytes) => return self.raw(bytes).await,
        };
        let resp = builder.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.text().await.unwrap();
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn tls(&self, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let addr = self.base.trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&self.root, alpn)));
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Send raw HTTP/1.1 and read the answer to the end (the request says
    /// `Connection: close`). Writing may fail once the server has answered and closed.
    async fn raw(&self, request: &[u8]) -> Answer {
        let stream = self.tls(&[b"http/1.1"]).await;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let request = request.to_vec();
        let writer = tokio::spawn(async move {
            for chunk in request.chunks(64 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    return;
                }
            }
            let _ = wr.flush().await;
            // Keep the write half open until the reader is done.
            tokio::time::sleep(Duration::from_secs(30)).await;
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
        assert!(read.is_ok(), "no complete answer within 30 s: {buf:?}");
        parse_http1(&buf)
    }

    /// Certificates in the store and how many of them are revoked (admin listing).
    async fn counts(&self) -> (usize, usize) {
        let mut all = 0;
        let mut revoked = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .https
                .get(format!("{}/v1/certificates", self.base))
                .bearer_auth(&self.admin)
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c.as_str())]);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let page: Value = resp.json().await.unwrap();
            for item in page["items"].as_array().unwrap() {
                all += 1;
                if item["status"] == "revoked" {
                    revoked += 1;
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (all, revoked),
            }
        }
    }
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

fn parse_http1(buf: &[u8]) -> Answer {
    let end = find(buf, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut body = buf[end + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(line_end) = find(rest, b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        body = out;
    }
    Answer {
        status,
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Tokens signed like `signet token` does (ES256 with the provisioner's key), with any
/// claims; and the other ways of making a token that must not work.
struct Minter {
    key: EncodingKey,
    public_pem: Vec<u8>,
    audience: String,
}

impl Minter {
    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims(&self, sans: &[&str]) -> Value {
        let now = Self::now();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti).unwrap();
        json!({
            "iss": "default",
            "aud": self.audience,
            "sub": "hostile",
            "iat": now,
            "nbf": now,
            "exp": now + 120,
            "jti": hex::encode(jti),
            "sans": sans,
        })
    }

    fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.key).unwrap()
    }

    fn bearer(&self, claims: &Value) -> Option<String> {
        Some(format!("Bearer {}", self.sign(claims)))
    }

    fn with(
        &self,
        sans: &[&str],
        f: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Option<String> {
        let mut claims = self.claims(sans);
        f(claims.as_object_mut().unwrap());
        self.bearer(&claims)
    }

    /// `header.claims.signature` with the given raw header and signature function.
    fn forged(
        &self,
        header: Value,
        claims: &Value,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Option<String> {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = sign(input.as_bytes());
        Some(format!("Bearer {input}.{}", B64.encode(sig)))
    }
}

/// Connection-level abuse, run alongside the table: each returns how long the server took
/// to end the connection, and what it said if anything.
async fn stalled_handshake(addr: String) -> (Duration, String) {
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A ClientHello's first bytes, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(4 * HANDSHAKE_TIMEOUT, tcp.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "the server kept a stalled handshake open for {:?}",
        4 * HANDSHAKE_TIMEOUT
    );
    (started.elapsed(), format!("{} bytes", buf.len()))
}

async fn slow_headers(api: &Api) -> (Duration, String) {
    let mut tls = api.tls(&[b"http/1.1"]).await;
    let started = Instant::now();
    // Headers trickled a few bytes at a time, then never finished.
    for piece in [
        &b"POST /v1/cert"[..],
        b"ificates HTTP/1.1\r\n",
        b"Host: local",
        b"host\r\nX-Slow: ",
    ] {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    read_until_closed(&mut tls, started, 4 * HEADER_TIMEOUT).await
}

async fn slow_body(api: &Api) -> (Duration, String) {
    let mut tls = api.tls(&[b"http/1.1"]).await;
    let started = Instant::now();
    let head = format!(
        "POST /v1/certificates HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"csr\": \"",
        api.admin
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    read_until_closed(&mut tls, started, 4 * REQUEST_TIMEOUT).await
}

async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    started: Instant,
    limit: Duration,
) -> (Duration, String) {
    let mut buf = Vec::new();
    let r = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
    (
        started.elapsed(),
        String::from_utf8_lossy(&buf).into_owned(),
    )
}

/// A fresh server on SQLite: its scratch directory (data in `data/`, scratch files in
/// `work/`), the process and an API client.
async fn setup() -> (tempfile::TempDir, Server, Arc<Api>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(tmp.path().join("work")).unwrap();
    let mut server = Server::start(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--responder-listen", "off"],
    )
    .await;
    let root = data.join("root_ca.crt");
    let https = client(&root);
    server.wait_ready(&https).await;
    let api = Arc::new(Api {
        base: server.base(),
        https,
        root: root.clone(),
        admin: fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string(),
    });
    (tmp, server, api)
}

/// A JSON array where the body must be an object. serde's derived `Deserialize` reads a
/// struct from a sequence too (fields by position), so `["<csr>"]` is an issue request and
/// `["keyCompromise"]` a revocation, bypassing the duplicate- and unknown-key checks, which
/// only look at objects. The README promises 400 `invalid-request` for malformed bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_in_place_of_objects_are_refused_and_change_nothing() {
    let (tmp, mut server, api) = setup().await;
    let work = tmp.path().join("work");
    let good = openssl_csr(
        &work,
        "good",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=api.internal",
        &["subjectAltName=DNS:api.internal"],
    );
    let a = api
        .send(&Req::Issue {
            auth: api.admin(),
            content_type: Some("application/json"),
            body: issue_body(&good),
        })
        .await;
    assert_eq!(a.status, 201, "positive control: {}", a.body);
    let serial = serde_json::from_str::<Value>(&a.body).unwrap()["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    let before = api.counts().await;
    let mut failures = Vec::new();
    for (name, req) in [
        (
            "issue body as an array",
            Req::Issue {
                auth: api.admin(),
                content_type: Some("application/json"),
                body: json!([good]).to_string().into_bytes(),
            },
        ),
        (
            "revoke body as an array",
            Req::Revoke {
                auth: api.admin(),
                serial: serial.clone(),
                content_type: Some("application/json"),
                body: br#"["keyCompromise"]"#.to_vec(),
            },
        ),
    ] {
        let a = api.send(&req).await;
        let kind = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string));
        let after = api.counts().await;
        if a.status != 400
            || kind.as_deref() != Some("urn:signet:problem:invalid-request")
            || after != before
        {
            failures.push(format!(
                "{name}: status {}, type {kind:?}, store {before:?} -> {after:?}",
                a.status
            ));
        }
    }
    server.alive();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_the_right_problem_and_store_nothing() {
    let (tmp, mut server, api) = setup().await;
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    let addr = api.base.trim_start_matches("https://").to_string();

    // Connection-level abuse runs in the background while the table runs.
    let handshake = tokio::spawn(stalled_handshake(addr.clone()));
    let headers = tokio::spawn({
        let api = api.clone();
        async move { slow_headers(&api).await }
    });
    let body = tokio::spawn({
        let api = api.clone();
        async move { slow_body(&api).await }
    });

    let provisioner_key = fs::read(data.join("provisioners/default.key")).unwrap();
    let m = Minter {
        key: EncodingKey::from_ec_pem(&provisioner_key).unwrap(),
        public_pem: fs::read(data.join("provisioners/default.pub")).unwrap(),
        audience: api.base.clone(),
    };
    let attacker = rcgen::KeyPair::generate().unwrap();
    let attacker_key = EncodingKey::from_ec_pem(attacker.serialize_pem().as_bytes()).unwrap();

    // Positive controls: the setup does issue, for the admin and for a token, so every
    // refusal below is the input's doing.
    let good = openssl_csr(
        &work,
        "good",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=api.internal",
        &["subjectAltName=DNS:api.internal"],
    );
    let (before, _) = api.counts().await;
    for auth in [api.admin(), m.bearer(&m.claims(&["api.internal"]))] {
        let a = api
            .send(&Req::Issue {
                auth,
                content_type: Some("application/json"),
                body: issue_body(&good),
            })
            .await;
        assert_eq!(a.status, 201, "positive control: {}", a.body);
    }
    let (after, revoked_after) = api.counts().await;
    assert_eq!(after, before + 2, "positive controls are stored");
    let issued_serial = {
        let a = api
            .send(&Req::List {
                auth: api.admin(),
                query: "limit=1".into(),
            })
            .await;
        let v: Value = serde_json::from_str(&a.body).unwrap();
        v["items"][0]["serial_number"].as_str().unwrap().to_string()
    };

    // ---- CSRs ------------------------------------------------------------------------
    let ec = |tag: &str, curve: &str, subj: &str, exts: &[&str]| {
        let opt = format!("ec_paramgen_curve:{curve}");
        openssl_csr(&work, tag, &["-newkey", "ec", "-pkeyopt", &opt], subj, exts)
    };
    let tampered_sig = {
        let mut der = pem_to_der(&good);
        let n = der.len();
        der[n - 5] ^= 0x55;
        der_to_pem(&der)
    };
    let tampered_tbs = {
        let mut der = pem_to_der(&good);
        let at = find(&der, b"api.internal").unwrap();
        der[at] = b'e';
        der_to_pem(&der)
    };
    let rsa1024 = openssl_csr(
        &work,
        "rsa1024",
        &["-newkey", "rsa:1024"],
        "/CN=api.internal",
        &[],
    );
    let rsa_sha1 = openssl_csr(
        &work,
        "rsa-sha1",
        &["-newkey", "rsa:2048", "-sha1"],
        "/CN=api.internal",
        &[],
    );
    let rsa_pss = openssl_csr(
        &work,
        "rsa-pss",
        &["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"],
        "/CN=api.internal",
        &[],
    );
    let secp256k1 = ec("k1", "secp256k1", "/CN=api.internal", &[]);
    let brainpool = ec("bp", "brainpoolP256r1", "/CN=api.internal", &[]);
    let p521 = ec("p521", "P-521", "/CN=api.internal", &[]);
    let ca_true = ec(
        "ca",
        "P-256",
        "/CN=api.internal",
        &["basicConstraints=critical,CA:TRUE"],
    );
    let path_len = ec(
        "pathlen",
        "P-256",
        "/CN=api.internal",
        &["basicConstraints=CA:FALSE,pathlen:0"],
    );
    let sans = |n: usize| {
        (0..n)
            .map(|i| format!("DNS:n{i}.internal"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let many_101 = ec(
        "s101",
        "P-256",
        "/CN=api.internal",
        &[&format!("subjectAltName={}", sans(101))],
    );
    let many_1000 = ec(
        "s1000",
        "P-256",
        "/CN=api.internal",
        &[&format!("subjectAltName={}", sans(1000))],
    );
    let wildcard = ec(
        "wild",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=DNS:*.api.internal"],
    );
    let public_ip = ec(
        "ip4",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=IP:8.8.8.8"],
    );
    let public_ip6 = ec(
        "ip6",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=IP:2001:db8::1"],
    );
    let foreign_dns = ec("evil", "P-256", "/CN=evil.example.com", &[]);
    let foreign_uri = ec(
        "uri",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=URI:spiffe://evil.example/ns/a/sa/b"],
    );
    let email = ec(
        "mail",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=email:ops@example.com"],
    );
    let other_name = ec(
        "other",
        "P-256",
        "/CN=api.internal",
        &["subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:a@b"],
    );
    let utf8_cn = openssl_csr(
        &work,
        "utf8",
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-utf8",
        ],
        "/CN=bücher.internal",
        &[],
    );
    let two_cns = ec("twocn", "P-256", "/CN=a.internal/CN=b.internal", &[]);
    let underscore = ec("us", "P-256", "/CN=a_b.internal", &[]);
    let nul_san = rcgen_csr(
        None,
        vec![rcgen::SanType::DnsName(
            "api\0.internal".try_into().unwrap(),
        )],
    );
    let nul_cn = rcgen_csr(Some("api.internal\0.evil.com"), vec![]);
    let no_names = ec("nonames", "P-256", "/O=Acme", &[]);
    let trailing = format!("{good}garbage after the PEM\n");
    let two_blocks = format!("{good}{good}");
    let wrong_label = good.replace("CERTIFICATE REQUEST", "CERTIFICATE");
    let bad_base64 = "-----BEGIN CERTIFICATE REQUEST-----\n!!!!not base64!!!!\n-----END CERTIFICATE REQUEST-----\n".to_string();
    let trailing_der = {
        let mut der = pem_to_der(&good);
        der.push(0);
        der_to_pem(&der)
    };
    let deep = der_to_pem(&nested_sequences(7_000));
    let huge_len = der_to_pem(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xf0, 0x30, 0x00]);
    let nine_byte_len = der_to_pem(&[0x30, 0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]);
    let indefinite = der_to_pem(&[0x30, 0x80, 0x30, 0x80, 0x00, 0x00, 0x00, 0x00]);
    let oversized = der_to_pem(&vec![0u8; 40 * 1024]);

    let admin_issue = |csr: &str| Req::Issue {
        auth: api.admin(),
        content_type: Some("application/json"),
        body: issue_body(csr),
    };
    let json_issue = |auth: Option<String>, body: Value| Req::Issue {
        auth,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
    };
    let raw_issue = |auth: Option<String>, ct: Option<&'static str>, body: &[u8]| Req::Issue {
        auth,
        content_type: ct,
        body: body.to_vec(),
    };
    let good_body = issue_body(&good);
    let replayed = m.bearer(&m.claims(&["api.internal"]));

    let mut cases = vec![
        // ---- credentials ----
        case("no Authorization header", raw_issue(None, Some("application/json"), &good_body), 401, "unauthorized"),
        case("Basic auth", raw_issue(Some("Basic YWRtaW46YWRtaW4=".into()), Some("application/json"), &good_body), 401, "unauthorized"),
        case("Bearer with nothing", raw_issue(Some("Bearer    ".into()), Some("application/json"), &good_body), 401, "unauthorized"),
        case("wrong admin token", raw_issue(Some("Bearer sa_not-the-admin-token-at-all-0000000".into()), Some("application/json"), &good_body), 401, "unauthorized"),
        case("admin token with a suffix", raw_issue(Some(format!("Bearer {}x", api.admin)), Some("application/json"), &good_body), 401, "unauthorized"),
        case("non-ASCII Authorization", Req::Issue { auth: Some("Bearer sa_\u{e9}t\u{e9}".into()), content_type: Some("application/json"), body: good_body.clone() }, 401, "unauthorized"),
        case("three dots of garbage", raw_issue(Some("Bearer a.b.c".into()), Some("application/json"), &good_body), 401, "unauthorized"),
        case("alg none", json_issue(m.forged(json!({"alg": "none", "typ": "JWT"}), &m.claims(&["api.internal"]), |_| Vec::new()), json!({"csr": good})), 401, "unauthorized"),
        case("HS256 keyed with the public key", json_issue(m.forged(json!({"alg": "HS256", "typ": "JWT"}), &m.claims(&["api.internal"]), |input| {
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &m.public_pem), input).as_ref().to_vec()
        }), json!({"csr": good})), 401, "unauthorized"),
        case("ES256 by a foreign key", json_issue(Some(format!("Bearer {}", jsonwebtoken::encode(&Header::new(Algorithm::ES256), &m.claims(&["api.internal"]), &attacker_key).unwrap())), json!({"csr": good})), 401, "unauthorized"),
        case("header says ES384", json_issue(m.forged(json!({"alg": "ES384"}), &m.claims(&["api.internal"]), |_| vec![0; 96]), json!({"csr": good})), 401, "unauthorized"),
        case("token for another audience", json_issue(m.with(&["api.internal"], |c| { c.insert("aud".into(), json!("https://other-ca.internal:8443")); }), json!({"csr": good})), 401, "unauthorized"),
        case("expired token", json_issue(m.with(&["api.internal"], |c| { let now = Minter::now(); c.insert("exp".into(), json!(now - 600)); c.insert("nbf".into(), json!(now - 900)); c.insert("iat".into(), json!(now - 900)); }), json!({"csr": good})), 401, "unauthorized"),
        case("token living an hour", json_issue(m.with(&["api.internal"], |c| { c.insert("exp".into(), json!(Minter::now() + 3600)); }), json!({"csr": good})), 401, "unauthorized"),
        case("token not yet valid", json_issue(m.with(&["api.internal"], |c| { c.insert("nbf".into(), json!(Minter::now() + 200)); }), json!({"csr": good})), 401, "unauthorized"),
        case("wrong issuer", json_issue(m.with(&["api.internal"], |c| { c.insert("iss".into(), json!("evil")); }), json!({"csr": good})), 401, "unauthorized"),
        case("no sub", json_issue(m.with(&["api.internal"], |c| { c.remove("sub"); }), json!({"csr": good})), 401, "unauthorized"),
        case("no jti", json_issue(m.with(&["api.internal"], |c| { c.remove("jti"); }), json!({"csr": good})), 401, "unauthorized"),
        case("jti of 300 characters", json_issue(m.with(&["api.internal"], |c| { c.insert("jti".into(), json!("j".repeat(300))); }), json!({"csr": good})), 401, "unauthorized"),
        case("malformed sans claim", json_issue(m.with(&["api internal"], |_| {}), json!({"csr": good})), 401, "unauthorized"),
        // The token is burned by the first use even though that request is refused...
        case("token with a bad CSR (burns the jti)", json_issue(replayed.clone(), json!({"csr": "not a csr"})), 400, "bad-csr"),
        // ...so a second use is a replay.
        case("replayed jti", json_issue(replayed.clone(), json!({"csr": good})), 401, "token-replayed"),
        case("CSR name outside the token's sans", json_issue(m.bearer(&m.claims(&["other.internal"])), json!({"csr": good})), 403, "name-denied"),
        case("token on the admin listing", Req::List { auth: m.bearer(&m.claims(&["api.internal"])), query: String::new() }, 403, "forbidden"),
        case("token on revoke", Req::Revoke { auth: m.bearer(&m.claims(&["api.internal"])), serial: issued_serial.clone(), content_type: Some("application/json"), body: b"{}".to_vec() }, 403, "forbidden"),
        case("listing without credentials", Req::List { auth: None, query: String::new() }, 401, "unauthorized"),
        case("revoke without credentials", Req::Revoke { auth: None, serial: issued_serial.clone(), content_type: Some("application/json"), body: b"{}".to_vec() }, 401, "unauthorized"),
        case("renew without a client certificate", Req::Renew { auth: api.admin() }, 401, "unauthorized"),
        // ---- CSRs ----
        case("CSR signature tampered", admin_issue(&tampered_sig), 400, "bad-csr-signature"),
        case("CSR name tampered after signing", admin_issue(&tampered_tbs), 400, "bad-csr-signature"),
        case("RSA 1024", admin_issue(&rsa1024), 400, "unsupported-key"),
        case("RSA-PSS key", admin_issue(&rsa_pss), 400, "unsupported-key"),
        case("secp256k1", admin_issue(&secp256k1), 400, "unsupported-key"),
        case("brainpoolP256r1", admin_issue(&brainpool), 400, "unsupported-key"),
        case("P-521", admin_issue(&p521), 400, "unsupported-key"),
        case("RSA signed with SHA-1", admin_issue(&rsa_sha1), 400, "unsupported-signature-algorithm"),
        case("CA:TRUE", admin_issue(&ca_true), 400, "ca-requested"),
        case("pathLen", admin_issue(&path_len), 400, "ca-requested"),
        case("101 SANs", admin_issue(&many_101), 400, "too-many-names"),
        case("1,000 SANs", admin_issue(&many_1000), 400, "too-many-names"),
        case("NUL in a DNS SAN", admin_issue(&nul_san), 400, "invalid-name"),
        case("NUL in the CN", admin_issue(&nul_cn), 400, "invalid-name"),
        case("non-ASCII CN", admin_issue(&utf8_cn), 400, "invalid-name"),
        case("underscore in a name", admin_issue(&underscore), 400, "invalid-name"),
        case("otherName SAN", admin_issue(&other_name), 400, "invalid-name"),
        case("two CNs", admin_issue(&two_cns), 400, "bad-csr"),
        case("no names for a server", admin_issue(&no_names), 400, "missing-names"),
        case("wildcard where policy forbids", admin_issue(&wildcard), 403, "name-denied"),
        case("public IPv4 SAN", admin_issue(&public_ip), 403, "name-denied"),
        case("IPv6 SAN outside the ranges", admin_issue(&public_ip6), 403, "name-denied"),
        case("DNS name outside policy", admin_issue(&foreign_dns), 403, "name-denied"),
        case("URI outside policy", admin_issue(&foreign_uri), 403, "name-denied"),
        case("email where policy has none", admin_issue(&email), 403, "name-denied"),
        case("trailing garbage after the PEM", admin_issue(&trailing), 400, "bad-csr"),
        case("two PEM blocks", admin_issue(&two_blocks), 400, "bad-csr"),
        case("CERTIFICATE label", admin_issue(&wrong_label), 400, "bad-csr"),
        case("bad base64 in PEM", admin_issue(&bad_base64), 400, "bad-csr"),
        case("trailing byte after the DER", admin_issue(&trailing_der), 400, "bad-csr"),
        case("DER bomb: 7,000 nested SEQUENCEs", admin_issue(&deep), 400, "bad-csr"),
        case("DER bomb: 4 GiB length", admin_issue(&huge_len), 400, "bad-csr"),
        case("DER bomb: 9-octet length", admin_issue(&nine_byte_len), 400, "bad-csr"),
        case("BER indefinite lengths", admin_issue(&indefinite), 400, "bad-csr"),
        case("40 KiB of zeros as DER", admin_issue(&oversized), 400, "bad-csr"),
        case("empty CSR", admin_issue(""), 400, "bad-csr"),
        case("raw bytes that are not PEM", json_issue(api.admin(), json!({"csr": "\u{1}\u{2}\u{3}0\u{80}"})), 400, "bad-csr"),
        // ---- bodies ----
        case("10 MiB body", raw_issue(api.admin(), Some("application/json"), &vec![b' '; 10 << 20]), 413, "body-too-large"),
        case("text/plain", raw_issue(api.admin(), Some("text/plain"), &good_body), 415, "unsupported-media-type"),
        case("no Content-Type", raw_issue(api.admin(), None, &good_body), 415, "unsupported-media-type"),
        case("application/jsonx", raw_issue(api.admin(), Some("application/jsonx"), &good_body), 415, "unsupported-media-type"),
        case("form-encoded", raw_issue(api.admin(), Some("application/x-www-form-urlencoded"), b"csr=abc"), 415, "unsupported-media-type"),
        case("invalid JSON", raw_issue(api.admin(), Some("application/json"), b"{\"csr\": "), 400, "invalid-request"),
        case("duplicate csr key", raw_issue(api.admin(), Some("application/json"), format!("{{\"csr\": {}, \"csr\": {}}}", json!(good), json!(foreign_dns)).as_bytes()), 400, "invalid-request"),
        case("duplicate profile key", raw_issue(api.admin(), Some("application/json"), format!("{{\"csr\": {}, \"profile\": \"client\", \"profile\": \"server\"}}", json!(good)).as_bytes()), 400, "invalid-request"),
        case("unknown key", json_issue(api.admin(), json!({"csr": good, "is_ca": true})), 400, "invalid-request"),
        case("JSON string", json_issue(api.admin(), json!(good)), 400, "invalid-request"),
        case("JSON number", raw_issue(api.admin(), Some("application/json"), b"1e999"), 400, "invalid-request"),
        case("JSON null", raw_issue(api.admin(), Some("application/json"), b"null"), 400, "invalid-request"),
        case("csr is a number", json_issue(api.admin(), json!({"csr": 42})), 400, "invalid-request"),
        case("no csr", json_issue(api.admin(), json!({"profile": "server"})), 400, "invalid-request"),
        case("nested 10,000 deep", raw_issue(api.admin(), Some("application/json"), format!("{{\"csr\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000)).as_bytes()), 400, "invalid-request"),
        case("lone surrogate escape", raw_issue(api.admin(), Some("application/json"), b"{\"csr\": \"\\ud800\"}"), 400, "invalid-request"),
        case("UTF-8 BOM before the JSON", raw_issue(api.admin(), Some("application/json"), &[&b"\xef\xbb\xbf"[..], &good_body].concat()), 400, "invalid-request"),
        case("unknown profile", json_issue(api.admin(), json!({"csr": good, "profile": "ca"})), 400, "unknown-profile"),
        case("profile in capitals", json_issue(api.admin(), json!({"csr": good, "profile": "SERVER"})), 400, "unknown-profile"),
        case("ttl forever", json_issue(api.admin(), json!({"csr": good, "ttl": "forever"})), 400, "invalid-ttl"),
        case("ttl 10s", json_issue(api.admin(), json!({"csr": good, "ttl": "10s"})), 400, "invalid-ttl"),
        case("ttl negative", json_issue(api.admin(), json!({"csr": good, "ttl": "-1h"})), 400, "invalid-ttl"),
        case("ttl 1000 days", json_issue(api.admin(), json!({"csr": good, "ttl": "1000d"})), 400, "ttl-too-long"),
        // ---- serials in paths ----
        case("lookup: not hex", Req::Get("zz".into()), 400, "invalid-serial"),
        case("lookup: encoded path traversal", Req::Get("..%2F..%2Fetc%2Fpasswd".into()), 400, "invalid-serial"),
        case("lookup: SQL quote", Req::Get("1'%20OR%20'1'%3D'1".into()), 400, "invalid-serial"),
        case("lookup: SQL comment", Req::Get("01%3B--".into()), 400, "invalid-serial"),
        case("lookup: NUL", Req::Get("01%00".into()), 400, "invalid-serial"),
        case("lookup: zero", Req::Get("00".into()), 400, "invalid-serial"),
        case("lookup: 21 octets", Req::Get("ff".repeat(21)), 400, "invalid-serial"),
        case("lookup: 65 characters", Req::Get("1".repeat(65)), 400, "invalid-serial"),
        case("lookup: unknown serial", Req::Get("7f0102030405".into()), 404, "not-found"),
        case("lookup: raw ../ in the path", Req::Raw(b"GET /v1/certificates/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec()), 400, "invalid-serial"),
        case("revoke: SQL in the serial", Req::Revoke { auth: api.admin(), serial: "1%3BDROP%20TABLE%20certificates".into(), content_type: Some("application/json"), body: b"{}".to_vec() }, 400, "invalid-serial"),
        case("revoke: traversal in the serial", Req::Revoke { auth: api.admin(), serial: "..%2F..%2Fadmin.token".into(), content_type: Some("application/json"), body: b"{}".to_vec() }, 400, "invalid-serial"),
        case("revoke: unknown serial", Req::Revoke { auth: api.admin(), serial: "7f0102030405".into(), content_type: Some("application/json"), body: b"{}".to_vec() }, 404, "not-found"),
        case("revoke: unknown reason", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("application/json"), body: br#"{"reason": "because"}"#.to_vec() }, 400, "invalid-request"),
        case("revoke: reason removeFromCRL", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("application/json"), body: br#"{"reason": "removeFromCRL"}"#.to_vec() }, 400, "invalid-request"),
        case("revoke: numeric reason", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("application/json"), body: br#"{"reason": 1}"#.to_vec() }, 400, "invalid-request"),
        case("revoke: unknown key", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("application/json"), body: br#"{"reason": "superseded", "serial": "01"}"#.to_vec() }, 400, "invalid-request"),
        case("revoke: duplicate reason", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("application/json"), body: br#"{"reason": "superseded", "reason": "keyCompromise"}"#.to_vec() }, 400, "invalid-request"),
        case("revoke: text/plain body", Req::Revoke { auth: api.admin(), serial: issued_serial.clone(), content_type: Some("text/plain"), body: br#"{"reason": "superseded"}"#.to_vec() }, 415, "unsupported-media-type"),
        // ---- listing query parameters ----
        case("list: unknown status", Req::List { auth: api.admin(), query: "status=bogus".into() }, 400, "invalid-request"),
        case("list: SQL in status", Req::List { auth: api.admin(), query: "status=good'%20OR%201%3D1--".into() }, 400, "invalid-request"),
        case("list: unknown profile", Req::List { auth: api.admin(), query: "profile=root".into() }, 400, "unknown-profile"),
        case("list: SQL in profile", Req::List { auth: api.admin(), query: "profile=server'%3BDROP%20TABLE%20certificates--".into() }, 400, "unknown-profile"),
        case("list: negative limit", Req::List { auth: api.admin(), query: "limit=-1".into() }, 400, "invalid-request"),
        case("list: limit not a number", Req::List { auth: api.admin(), query: "limit=ten".into() }, 400, "invalid-request"),
        case("list: limit over u32", Req::List { auth: api.admin(), query: "limit=99999999999".into() }, 400, "invalid-request"),
        case("list: unknown parameter", Req::List { auth: api.admin(), query: "order=serial%3BDROP".into() }, 400, "invalid-request"),
        case("list: status twice", Req::List { auth: api.admin(), query: "status=good&status=revoked".into() }, 400, "invalid-request"),
        case("list: SQL in name", Req::List { auth: api.admin(), query: "name=x'%20OR%20'1'%3D'1".into() }, 400, "invalid-name"),
        case("list: traversal in name", Req::List { auth: api.admin(), query: "name=..%2F..%2Fetc%2Fpasswd".into() }, 400, "invalid-name"),
        case("list: bad expiring_within", Req::List { auth: api.admin(), query: "expiring_within=soon".into() }, 400, "invalid-request"),
        case("list: garbage cursor", Req::List { auth: api.admin(), query: "cursor=not-a-cursor".into() }, 400, "invalid-request"),
        case("list: SQL in cursor", Req::List { auth: api.admin(), query: "cursor=1'%20OR%201%3D1--".into() }, 400, "invalid-request"),
    ];

    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
    }

    let (mut count, mut revoked) = (after, revoked_after);
    let mut failures = Vec::new();
    for c in cases.drain(..) {
        let a = api.send(&c.req).await;
        server.alive();
        let mut problems = Vec::new();
        if a.status != c.status {
            problems.push(format!("status {} (wanted {})", a.status, c.status));
        }
        if a.content_type.as_deref() != Some("application/problem+json") {
            problems.push(format!("content-type {:?}", a.content_type));
        }
        let kind = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string));
        let want = format!("urn:signet:problem:{}", c.slug);
        if kind.as_deref() != Some(want.as_str()) {
            problems.push(format!("type {kind:?} (wanted {want})"));
        }
        let (now_count, now_revoked) = api.counts().await;
        if (now_count, now_revoked) != (count, revoked) {
            problems.push(format!(
                "the store changed: {count} certificates ({revoked} revoked) became {now_count} ({now_revoked})"
            ));
            (count, revoked) = (now_count, now_revoked);
        }
        if !problems.is_empty() {
            let body: String = a.body.chars().take(300).collect();
            failures.push(format!(
                "{}: {}\n    body: {body}",
                c.name,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} hostile case(s) misbehaved:\n  {}\n--- server log:\n{}",
        failures.len(),
        failures.join("\n  "),
        server.log()
    );

    // Connection-level abuse: each connection was ended within twice its timeout.
    let (took, said) = handshake.await.unwrap();
    eprintln!("stalled handshake: closed after {took:?} ({said})");
    assert!(
        took <= 2 * HANDSHAKE_TIMEOUT,
        "stalled handshake closed after {took:?}"
    );
    let (took, said) = headers.await.unwrap();
    eprintln!("slow headers: closed after {took:?}, answer {said:?}");
    assert!(
        took <= 2 * HEADER_TIMEOUT,
        "slow headers closed after {took:?}: {said}"
    );
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 408"),
        "slow headers got {said:?}"
    );
    let (took, said) = body.await.unwrap();
    eprintln!("stalled body: closed after {took:?}, answer {said:?}");
    assert!(
        took <= 2 * REQUEST_TIMEOUT,
        "stalled body closed after {took:?}: {said}"
    );
    // A stalled body is the client's fault: 408 with a problem document (it was an empty
    // 503 from tower-http's TimeoutLayer until SECURITY.md finding 2 was fixed).
    let lower = said.to_ascii_lowercase();
    assert!(
        said.starts_with("HTTP/1.1 408 ")
            && lower.contains("content-type: application/problem+json")
            && said.contains("urn:signet:problem:request-timeout"),
        "stalled body got {said:?}"
    );
    server.alive();
    assert_eq!(api.counts().await, (count, revoked));
}
