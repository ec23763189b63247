//! Clients and credentials for the end-to-end tests: the openssl CLI, HTTPS clients trusting
//! only the test CA's root, one-time tokens (from `signet token`, or minted in process the
//! same way), CSRs made by `openssl req`, and problem+json answers.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use super::{base_command, p, text};

/// The openssl CLI with `args`, stdin closed.
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration trusting only the certificates in `root`, presenting
/// `identity` (chain PEM, key PEM) if given, offering `alpn`.
pub fn tls_config(
    root: &Path,
    identity: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((chain, key)) => {
            let chain = CertificateDer::pem_file_iter(chain)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tls
}

/// An HTTPS client (h2 or HTTP/1.1 by ALPN) trusting only `root`, presenting `identity` if
/// given, each request bounded by `timeout`.
pub fn client_with(
    root: &Path,
    identity: Option<(&Path, &Path)>,
    timeout: Duration,
) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(root, identity, &[b"h2", b"http/1.1"]))
        .timeout(timeout)
        .build()
        .unwrap()
}

/// An HTTPS client trusting only `root`, each request bounded by 60 s.
pub fn client(root: &Path) -> reqwest::Client {
    client_with(root, None, Duration::from_secs(60))
}

/// The admin token of a data directory.
pub fn admin_token(data: &Path) -> String {
    fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// A one-time token from `signet token`, signed by the data directory's `default`
/// provisioner, for `subject` and the DNS names `sans`.
pub fn token(data: &Path, ca_url: &str, subject: &str, sans: &[&str]) -> String {
    let mut cmd = base_command();
    cmd.args(["token", "--dir", p(data), "--ca-url", ca_url])
        .args(["--subject", subject]);
    for san in sans {
        cmd.args(["--san", san]);
    }
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let jwt = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    jwt
}

/// Mints one-time tokens in process, as `signet token` does: ES256 with the data directory's
/// `default` provisioner key, `kid` and `iss` "default", a 5-minute lifetime, a random `jti`.
pub struct Minter {
    key: jsonwebtoken::EncodingKey,
    aud: String,
}

impl Minter {
    pub fn new(data: &Path, ca_url: &str) -> Minter {
        let pem = fs::read(data.join("provisioners/default.key")).unwrap();
        assert!(
            pem.starts_with(b"-----BEGIN PRIVATE KEY-----"),
            "the default provisioner key is expected as unencrypted PKCS#8"
        );
        Minter {
            key: jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
            aud: ca_url.to_string(),
        }
    }

    /// A token for subject `load` and the name `load.internal`.
    pub fn token(&self) -> String {
        self.token_for("load", &["load.internal"])
    }

    /// A token for `sub` and the DNS names `sans`.
    pub fn token_for(&self, sub: &str, sans: &[&str]) -> String {
        use ring::rand::SecureRandom;
        let mut jti = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut jti).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": "default",
            "aud": self.aud,
            "sub": sub,
            "sans": sans,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": hex::encode(jti),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("default".into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

/// A P-256 key and CSR for `name` (CN and the only DNS SAN) made by `openssl req`, written
/// to `dir/NAME.key` and `dir/NAME.csr`; returns the CSR PEM.
pub fn csr(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let o = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        &format!("subjectAltName=DNS:{name}"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    fs::read_to_string(csr).unwrap()
}

/// `POST /v1/certificates` with a bearer token and a CSR, timed.
pub async fn post_issue(
    https: &reqwest::Client,
    base: &str,
    bearer: &str,
    csr: &str,
) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let resp = https
        .post(format!("{base}/v1/certificates"))
        .bearer_auth(bearer)
        .json(&json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    (resp, started.elapsed())
}

/// Reads a problem response: the expected status, `application/problem+json` and
/// `urn:signet:problem:SLUG`, the `status` member equal to the HTTP status. Returns the body.
pub async fn problem(resp: reqwest::Response, status: u16, slug: &str) -> String {
    let what = format!("{} {}", resp.url(), resp.status());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let got = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{what}: {body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], format!("urn:signet:problem:{slug}"), "{body}");
    assert_eq!(v["status"], status, "{body}");
    body
}

/// All certificate serials in the store, by the admin listing (every page).
pub async fn serials(https: &reqwest::Client, base: &str, admin: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = https
            .get(format!("{base}/v1/certificates"))
            .bearer_auth(admin)
            .query(&[("limit", "500")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            items.push(item["serial_number"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}
