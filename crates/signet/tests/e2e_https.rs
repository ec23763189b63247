//! End-to-end proof of the certificate API over real HTTPS, on both storage backends: a real
//! `signet serve` process (SQLite in its data directory, or PostgreSQL through
//! `SIGNET_DATABASE_URL`), CSRs from `openssl req` (RSA 2048 and P-256), one-time tokens from
//! `signet token`, issued chains checked by `openssl verify`, refusals as problem+json that
//! leave the certificate count unchanged, and renewal over mutual TLS until the certificate
//! is revoked. Every test ends with SIGTERM and a clean exit.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use signet_testkit::TestDb;

mod common;
use common::{Server, client_with, openssl, p, text};

/// The API's body limit (`signet_api::MAX_BODY_BYTES`).
const MAX_BODY: usize = 64 * 1024;

/// A one-time token from `signet token` for `subject` and the one name `san`.
fn token(data: &Path, ca_url: &str, subject: &str, san: &str) -> String {
    common::token(data, ca_url, subject, &[san])
}

/// The key algorithm of a CSR made by `openssl req`.
#[derive(Clone, Copy)]
enum Alg {
    Rsa2048,
    P256,
}

/// A key and CSR for `name` (CN and the only DNS SAN) made by `openssl req`; the key is
/// written as PKCS#8 ("PRIVATE KEY").
fn csr(dir: &Path, tag: &str, alg: Alg, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{tag}.key"));
    let csr = dir.join(format!("{tag}.csr"));
    let subj = format!("/CN={name}");
    let san = format!("subjectAltName=DNS:{name}");
    let keyopts: &[&str] = match alg {
        Alg::Rsa2048 => &["-newkey", "rsa:2048"],
        Alg::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    };
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(keyopts);
    args.extend_from_slice(&[
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        &subj,
        "-addext",
        &san,
    ]);
    let o = openssl(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"),
        "openssl req -nodes should write PKCS#8"
    );
    (csr, key)
}

/// A client trusting only `root`, optionally presenting a client certificate (chain PEM
/// file, PKCS#8 key PEM file).
fn client(root: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    client_with(root, identity, Duration::from_secs(30))
}

/// The security headers every API response carries.
fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let headers = resp.headers();
    let hsts = headers
        .get("strict-transport-security")
        .unwrap_or_else(|| panic!("{what}: no strict-transport-security: {headers:?}"));
    assert!(
        hsts.to_str().unwrap().contains("max-age="),
        "{what}: {hsts:?}"
    );
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what}: {headers:?}"
    );
}

/// Read a problem response: security headers, `application/problem+json`, the expected
/// status and `urn:signet:problem:SLUG`; returns the `detail`.
async fn problem(resp: reqwest::Response, status: u16, slug: &str) -> String {
    let what = format!("{} {}", resp.url(), resp.status());
    assert_security_headers(&resp, &what);
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
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    v["detail"].as_str().unwrap().to_string()
}

/// A successful JSON response with the expected status and the security headers.
async fn success(resp: reqwest::Response, status: u16) -> Value {
    let what = format!("{} {}", resp.url(), resp.status());
    assert_security_headers(&resp, &what);
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{what}: {body}"
    );
    serde_json::from_str(&body).unwrap()
}

/// The API driven by one test: the server's URL, a client trusting our root, the admin
/// credential and a scratch directory.
struct Api {
    base: String,
    https: reqwest::Client,
    admin: String,
    root: PathBuf,
    dir: PathBuf,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/certificates` with a bearer credential and a JSON body.
    async fn post_issue(&self, bearer: &str, body: &Value) -> reqwest::Response {
        self.https
            .post(self.url("/v1/certificates"))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// All certificates in the store, by the admin listing (every page).
    async fn certificates(&self) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self
                .https
                .get(self.url("/v1/certificates"))
                .bearer_auth(&self.admin)
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c.as_str())]);
            }
            let page = success(req.send().await.unwrap(), 200).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    async fn count(&self) -> usize {
        self.certificates().await.len()
    }

    /// `GET /v1/certificates/{serial}` (no credential needed).
    async fn get(&self, serial: &str) -> Value {
        let resp = self
            .https
            .get(self.url(&format!("/v1/certificates/{serial}")))
            .send()
            .await
            .unwrap();
        success(resp, 200).await
    }

    /// Write an issue/renew response as `TAG.pem` (certificate), `TAG.chain.pem` (the
    /// `chain`) and `TAG.full.pem` (both, for a TLS client identity); check it with
    /// `openssl verify` for `purposes`; return the serial.
    fn save_and_verify(&self, issued: &Value, tag: &str, purposes: &[&str]) -> (String, PathBuf) {
        let serial = issued["serial_number"].as_str().unwrap().to_string();
        assert!(
            !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_hexdigit()),
            "{serial}"
        );
        assert_eq!(serial, serial.to_ascii_lowercase());
        let cert = issued["certificate"].as_str().unwrap();
        assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 1, "{cert}");
        let chain: Vec<&str> = issued["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(!chain.is_empty(), "{issued}");
        let chain = chain.concat();
        assert!(
            !chain.contains(&fs::read_to_string(&self.root).unwrap()),
            "the chain must not contain the root"
        );
        let cert_file = self.dir.join(format!("{tag}.pem"));
        let chain_file = self.dir.join(format!("{tag}.chain.pem"));
        let full_file = self.dir.join(format!("{tag}.full.pem"));
        fs::write(&cert_file, cert).unwrap();
        fs::write(&chain_file, &chain).unwrap();
        fs::write(&full_file, format!("{cert}{chain}")).unwrap();
        for purpose in purposes {
            let o = openssl(&[
                "verify",
                "-CAfile",
                p(&self.root),
                "-untrusted",
                p(&chain_file),
                "-purpose",
                purpose,
                p(&cert_file),
            ]);
            assert!(o.status.success(), "{tag} {purpose}: {}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stdout).contains(": OK"),
                "{tag} {purpose}: {}",
                text(&o)
            );
        }
        // openssl reads the same serial out of the certificate.
        let o = openssl(&["x509", "-in", p(&cert_file), "-noout", "-serial"]);
        assert!(o.status.success(), "{}", text(&o));
        let from_openssl = String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        assert_eq!(
            from_openssl.trim_start_matches('0'),
            serial.trim_start_matches('0')
        );
        (serial, full_file)
    }

    /// The public-key algorithm openssl sees in an issued certificate.
    fn key_text(&self, tag: &str) -> String {
        let cert = self.dir.join(format!("{tag}.pem"));
        let o = openssl(&["x509", "-in", p(&cert), "-noout", "-text"]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Everything issue 3 asks for, against one server on one backend.
async fn scenario(backend: Backend) {
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDb::postgres().await),
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let env: Vec<(&str, &str)> = db
        .iter()
        .map(|db| ("SIGNET_DATABASE_URL", db.url()))
        .collect();
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let https = client(&root, None);
    let health = server.wait_for(&https, &server.url("/healthz")).await;
    assert_security_headers(&health, "/healthz");
    server.wait_for(&https, &server.url("/readyz")).await;

    // The server really uses the backend under test.
    let store_url = match (&db, backend) {
        (Some(db), Backend::Postgres) => {
            assert!(
                !data.join("signet.db").exists(),
                "SQLite was used instead of PostgreSQL:\n{}",
                server.log()
            );
            assert!(
                server.log().contains("database=\"postgres"),
                "{}",
                server.log()
            );
            db.url().to_string()
        }
        _ => {
            assert!(data.join("signet.db").exists(), "{}", server.log());
            format!("sqlite://{}", p(&data.join("signet.db")))
        }
    };

    let api = Api {
        base: server.base(),
        https,
        admin: fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string(),
        root: root.clone(),
        dir: work.clone(),
    };
    let ca_url = api.base.clone();
    // The server's own certificate is already recorded.
    let mut expected = api.count().await;
    assert!(expected >= 1, "the server's own certificate is listed");

    // 1. RSA 2048 CSR, default (server) profile, with a token from `signet token`.
    let (rsa_csr, _) = csr(&work, "rsa", Alg::Rsa2048, "api.internal");
    let rsa_token = token(&data, &ca_url, "billing-api", "api.internal");
    let rsa_body = json!({ "csr": fs::read_to_string(&rsa_csr).unwrap() });
    let resp = api.post_issue(&rsa_token, &rsa_body).await;
    let issued = success(resp, 201).await;
    let (rsa_serial, _) = api.save_and_verify(&issued, "rsa", &["sslserver"]);
    assert!(api.key_text("rsa").contains("rsaEncryption"));
    assert!(api.key_text("rsa").contains("2048 bit"));
    expected += 1;
    assert_eq!(api.count().await, expected, "[{backend:?}] after RSA issue");
    let rec = api.get(&rsa_serial).await;
    assert_eq!(rec["status"], "good", "{rec}");
    assert_eq!(rec["profile"], "server", "{rec}");
    assert_eq!(rec["sans"], json!(["dns:api.internal"]), "{rec}");
    assert_eq!(rec["certificate"], issued["certificate"], "{rec}");

    // 1. P-256 CSR, `peer` profile (server and client auth): the identity for renewal below.
    let (ec_csr, ec_key) = csr(&work, "ec", Alg::P256, "api.internal");
    let ec_token = token(&data, &ca_url, "billing-api", "api.internal");
    let resp = api
        .post_issue(
            &ec_token,
            &json!({ "csr": fs::read_to_string(&ec_csr).unwrap(), "profile": "peer" }),
        )
        .await;
    let issued = success(resp, 201).await;
    let (ec_serial, ec_full) = api.save_and_verify(&issued, "ec", &["sslserver", "sslclient"]);
    assert!(api.key_text("ec").contains("id-ecPublicKey"));
    assert!(api.key_text("ec").contains("prime256v1"));
    assert_ne!(ec_serial, rsa_serial);
    expected += 1;
    assert_eq!(
        api.count().await,
        expected,
        "[{backend:?}] after P-256 issue"
    );
    let ec_rec = api.get(&ec_serial).await;
    assert_eq!(ec_rec["status"], "good", "{ec_rec}");
    assert_eq!(ec_rec["profile"], "peer", "{ec_rec}");
    assert_eq!(ec_rec["sans"], json!(["dns:api.internal"]), "{ec_rec}");

    // 2. The RSA token a second time: replayed.
    let resp = api.post_issue(&rsa_token, &rsa_body).await;
    let detail = problem(resp, 401, "token-replayed").await;
    assert!(detail.contains("already been used"), "{detail}");
    assert_eq!(api.count().await, expected, "[{backend:?}] after replay");

    // 2. A token for another CA: wrong audience.
    let wrong = token(
        &data,
        "https://wrong.example:1",
        "billing-api",
        "api.internal",
    );
    let resp = api.post_issue(&wrong, &rsa_body).await;
    let detail = problem(resp, 401, "unauthorized").await;
    assert!(detail.contains("audience"), "{detail}");
    assert_eq!(
        api.count().await,
        expected,
        "[{backend:?}] after wrong audience"
    );

    // 2. A name outside the provisioner's policy, even though the token names it.
    let (evil_csr, _) = csr(&work, "evil", Alg::P256, "evil.example.com");
    let evil_token = token(&data, &ca_url, "mallory", "evil.example.com");
    let resp = api
        .post_issue(
            &evil_token,
            &json!({ "csr": fs::read_to_string(&evil_csr).unwrap() }),
        )
        .await;
    let detail = problem(resp, 403, "name-denied").await;
    assert!(detail.contains("evil.example.com"), "{detail}");
    assert_eq!(
        api.count().await,
        expected,
        "[{backend:?}] after name denied"
    );

    // 2. A body over 64 KiB, with an otherwise valid token.
    let big_token = token(&data, &ca_url, "billing-api", "api.internal");
    let big = json!({ "csr": "A".repeat(MAX_BODY + 1024) }).to_string();
    assert!(big.len() > MAX_BODY);
    let resp = api
        .https
        .post(api.url("/v1/certificates"))
        .bearer_auth(&big_token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let detail = problem(resp, 413, "body-too-large").await;
    assert!(detail.contains(&MAX_BODY.to_string()), "{detail}");
    assert_eq!(api.count().await, expected, "[{backend:?}] after big body");

    // 3. Renewal over mutual TLS with the P-256 peer certificate and its key.
    let mtls = client(&root, Some((&ec_full, &ec_key)));
    let renew_url = api.url("/v1/certificates/renew");
    let resp = mtls.post(&renew_url).send().await.unwrap();
    let renewed = success(resp, 201).await;
    let (new_serial, _) = api.save_and_verify(&renewed, "renewed", &["sslserver", "sslclient"]);
    assert_ne!(new_serial, ec_serial);
    expected += 1;
    assert_eq!(api.count().await, expected, "[{backend:?}] after renewal");
    let new_rec = api.get(&new_serial).await;
    assert_eq!(new_rec["status"], "good", "{new_rec}");
    assert_eq!(new_rec["profile"], "peer", "{new_rec}");
    assert_eq!(new_rec["sans"], ec_rec["sans"], "{new_rec}");
    assert_eq!(new_rec["subject"], ec_rec["subject"], "{new_rec}");

    // 3. The admin revokes the original; renewing with it is then forbidden.
    let resp = api
        .https
        .post(api.url(&format!("/v1/certificates/{ec_serial}/revoke")))
        .bearer_auth(&api.admin)
        .json(&json!({ "reason": "keyCompromise" }))
        .send()
        .await
        .unwrap();
    let revoked = success(resp, 200).await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["revocation_reason"], "keyCompromise", "{revoked}");
    assert_eq!(api.get(&ec_serial).await["status"], "revoked");
    let resp = mtls.post(&renew_url).send().await.unwrap();
    let detail = problem(resp, 403, "forbidden").await;
    assert!(detail.contains("revoked"), "{detail}");
    // A fresh connection with the revoked certificate fares no better.
    let fresh = client(&root, Some((&ec_full, &ec_key)));
    let resp = fresh.post(&renew_url).send().await.unwrap();
    let detail = problem(resp, 403, "forbidden").await;
    assert!(detail.contains("revoked"), "{detail}");
    assert_eq!(
        api.count().await,
        expected,
        "[{backend:?}] after refused renewal"
    );
    // The renewed certificate is unaffected.
    assert_eq!(api.get(&new_serial).await["status"], "good");

    // The store itself, opened on the same URL, agrees with the API.
    let listed: Vec<String> = api
        .certificates()
        .await
        .iter()
        .map(|c| c["serial_number"].as_str().unwrap().to_string())
        .collect();
    let store = signet_store::Store::connect(&store_url).await.unwrap();
    let page = store
        .list_certificates(&signet_store::CertificateFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    let mut in_store: Vec<String> = page.items.iter().map(|r| r.serial.to_hex()).collect();
    let mut listed_sorted = listed.clone();
    in_store.sort();
    listed_sorted.sort();
    assert_eq!(in_store, listed_sorted, "[{backend:?}] store vs API");
    for serial in [&rsa_serial, &ec_serial, &new_serial] {
        assert!(
            store.get_certificate(&sn(serial)).await.unwrap().is_some(),
            "[{backend:?}] {serial} not in the store"
        );
    }
    store.close().await;

    // Drop every client before stopping the server, so nothing is left in flight.
    drop((api, mtls, fresh));
    let (status, _) = server.terminate().await;
    assert_eq!(
        status.code(),
        Some(0),
        "[{backend:?}] {status}:\n{}",
        server.log()
    );
    drop(db);
}

#[tokio::test]
async fn issue_refuse_and_renew_over_https_with_sqlite() {
    scenario(Backend::Sqlite).await;
}

#[tokio::test]
async fn issue_refuse_and_renew_over_https_with_postgres() {
    scenario(Backend::Postgres).await;
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> signet_ca::Serial {
    signet_ca::Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}
