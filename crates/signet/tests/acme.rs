//! ACME (RFC 8555) end to end over real HTTPS: a real `signet serve` with an `acme`
//! provisioner added by `signet provisioner add acme`, driven by an independent client
//! (the `instant-acme` crate) for the whole flow (account, order, http-01 answered by a
//! small HTTP server in this test, finalize, download), the chain checked by `openssl
//! verify`; and by a hand-made JWS client (ring) for what a well-behaved client never sends:
//! a wrong `url`, a replayed or forged nonce, an unknown `kid`, the wrong media type, an
//! oversized body, unknown fields, a CSR whose names differ from the order's or that reuses
//! the account key. Every refusal is a problem document with the RFC's type, a fresh
//! `Replay-Nonce`, and changes nothing in the database.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy, RevocationReason,
    RevocationRequest,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{Server, openssl, p, signet_in, sqlite3, text};

/// http-01 answers, by token, served on a loopback port (the provisioner's http01_port).
#[derive(Clone, Default)]
struct Http01 {
    answers: Arc<Mutex<HashMap<String, String>>>,
}

impl Http01 {
    /// Serve GET /.well-known/acme-challenge/TOKEN on 127.0.0.1; returns the port.
    async fn serve(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut len = 0;
                    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf[..len]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let token = path
                        .strip_prefix("/.well-known/acme-challenge/")
                        .unwrap_or("");
                    let answer = answers.lock().unwrap().get(token).cloned();
                    let resp = match answer {
                        Some(body) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    };
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        port
    }

    fn answer(&self, token: &str, key_authorization: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_string(), key_authorization.to_string());
    }
}

/// A CA with the ACME provisioner `web` (http-01 on `http01_port`, validation allowed to
/// loopback), and `extra` flags for `provisioner add acme`.
fn ca_with_acme(tmp: &Path, name: &str, http01_port: u16, extra: &[&str]) -> (PathBuf, String) {
    let data = tmp.join("data");
    if !data.exists() {
        let o = signet_in(tmp, &[], &["init", "--dir", p(&data)], "");
        assert!(o.status.success(), "{}", text(&o));
    }
    let port = http01_port.to_string();
    let mut args = vec![
        "provisioner",
        "add",
        "acme",
        "--dir",
        p(&data),
        "--name",
        name,
        "--http01-port",
        port.as_str(),
        "--validation-networks",
        "127.0.0.0/8",
    ];
    args.extend_from_slice(extra);
    let o = signet_in(tmp, &[], &args, "");
    assert!(o.status.success(), "{}", text(&o));
    (data, String::from_utf8_lossy(&o.stdout).to_string())
}

/// A P-256 key and a DER CSR for `names` (rcgen), the key PEM.
fn csr_for(names: &[&str]) -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap();
    (csr.der().to_vec(), key.serialize_pem())
}

/// Obtain a certificate for `ip` through `account` with http-01 answered by `http`.
async fn obtain(account: &Account, http: &Http01, ip: IpAddr) -> (String, String) {
    let ids = [Identifier::Ip(ip)];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Pending);
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.unwrap();
        assert_eq!(authz.status, AuthorizationStatus::Pending);
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        let key_auth = challenge.key_authorization();
        http.answer(&challenge.token, key_auth.as_str());
        challenge.set_ready().await.unwrap();
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(50))
        .timeout(Duration::from_secs(20));
    let status = order.poll_ready(&retry).await.unwrap();
    assert_eq!(status, OrderStatus::Ready, "{:?}", order.state());
    let (csr, key) = csr_for(&[&ip.to_string()]);
    order.finalize_csr(&csr).await.unwrap();
    let chain = order.poll_certificate(&retry).await.unwrap();
    (chain, key)
}

/// `openssl verify` of the first certificate of `chain_pem` against the CA's root, for TLS
/// servers.
fn openssl_verifies(tmp: &Path, data: &Path, chain_pem: &str, tag: &str) {
    let certs: Vec<&str> = chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert!(
        certs.len() >= 2,
        "leaf and issuing CA expected: {chain_pem}"
    );
    let leaf = tmp.join(format!("{tag}.crt"));
    let untrusted = tmp.join(format!("{tag}.chain.pem"));
    std::fs::write(&leaf, certs[0]).unwrap();
    std::fs::write(&untrusted, certs[1..].concat()).unwrap();
    let root = data.join("root_ca.crt");
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&untrusted),
        "-purpose",
        "sslserver",
        p(&leaf),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A hand-made ACME client: a P-256 account key, JWS signing, nonces taken from answers.
struct RawClient {
    http: reqwest::Client,
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    jwk: Value,
    directory: Value,
    kid: Option<String>,
}

impl RawClient {
    async fn new(root: &Path, directory_url: &str) -> RawClient {
        let http = common::client(root);
        let directory: Value = http
            .get(directory_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        });
        RawClient {
            http,
            key,
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
            directory,
            kid: None,
        }
    }

    fn url(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_string()
    }

    async fn nonce(&self) -> String {
        let resp = self.http.head(self.url("newNonce")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        resp.headers()["replay-nonce"].to_str().unwrap().to_string()
    }

    /// A flattened JWS over `payload` (None: POST-as-GET) with `header` members added to
    /// alg, and jwk or kid.
    fn sign(&self, header: Value, payload: Option<&Value>) -> Value {
        let mut protected = header;
        protected["alg"] = json!("ES256");
        match &self.kid {
            Some(kid) if protected.get("jwk").is_none() => protected["kid"] = json!(kid),
            _ if protected.get("kid").is_none() => protected["jwk"] = self.jwk.clone(),
            _ => {}
        }
        let protected = B64.encode(protected.to_string());
        let payload = payload.map_or(String::new(), |p| B64.encode(p.to_string()));
        let sig = self
            .key
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{payload}").as_bytes(),
            )
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": B64.encode(sig.as_ref())})
    }

    async fn post_raw(&self, url: &str, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.http
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, url: &str, payload: Option<&Value>) -> reqwest::Response {
        let nonce = self.nonce().await;
        let jws = self.sign(json!({"nonce": nonce, "url": url}), payload);
        self.post_raw(url, jws.to_string().into_bytes(), "application/jose+json")
            .await
    }
}

/// The problem document of `resp`, which must have `status`, type `acme_type` and a fresh
/// nonce.
async fn problem(resp: reqwest::Response, status: u16, acme_type: &str) -> Value {
    assert_eq!(resp.status(), status, "{resp:?}");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().contains_key("replay-nonce"), "{resp:?}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("urn:ietf:params:acme:error:{acme_type}"),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_acme_obtains_and_openssl_verifies_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let http = Http01::default();
    let port = http.serve().await;
    let (data, _) = ca_with_acme(tmp.path(), "web", port, &[]);
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let directory = server.url("/acme/web/directory");

    let root = data.join("root_ca.crt");
    let (account, _credentials) = Account::builder_with_root(&root)
        .unwrap()
        .create(
            &NewAccount {
                contact: &["mailto:ops@example.com"],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.clone(),
            None,
        )
        .await
        .unwrap();
    let (chain, _key) = obtain(&account, &http, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    openssl_verifies(tmp.path(), &data, &chain, "leaf");

    // Recorded and audited as the account under its provisioner, 24 h by default.
    let db = data.join("signet.db");
    let account_id = account.id().rsplit('/').next().unwrap().to_string();
    let rows = sqlite3(
        &db,
        "SELECT requester, not_after - not_before, sans FROM certificates WHERE requester LIKE 'acme:%'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with(&format!("acme:web:{account_id}|")),
        "{rows:?}"
    );
    assert!(
        rows[0].contains("|86460|"),
        "24h plus the 60 s backdate: {rows:?}"
    );
    let actions = sqlite3(
        &db,
        &format!("SELECT action FROM audit_log WHERE actor = 'acme:web:{account_id}' ORDER BY id"),
    );
    assert_eq!(
        actions,
        [
            "acme-new-account",
            "acme-new-order",
            "acme-validate",
            "issue"
        ],
        "every ACME action is audited as the account"
    );

    // ARI: the window is the middle third of the validity; a replacing order names it.
    let leaf_der = pem_der(&chain);
    let cert_id = CertificateIdentifier::try_from(&leaf_der).unwrap();
    let (info, retry) = account.renewal_info(&cert_id).await.unwrap();
    let window = info.suggested_window;
    let lifetime = window.end - window.start;
    assert!(
        (lifetime.whole_seconds() - 86460 / 3).abs() <= 2,
        "{window:?}"
    );
    assert!(retry > Duration::from_secs(60), "{retry:?}");
    let ids = [Identifier::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let mut replacing = account
        .new_order(&NewOrder::new(&ids).replaces(cert_id.clone()))
        .await
        .unwrap();
    assert_eq!(replacing.state().status, OrderStatus::Pending);
    let err = account
        .new_order(&NewOrder::new(&ids).replaces(cert_id.clone()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("alreadyReplaced"), "{err}");

    // Revocation by the account: OCSP says revoked (openssl asks the responder).
    account
        .revoke(&RevocationRequest {
            certificate: &leaf_der,
            reason: Some(RevocationReason::KeyCompromise),
        })
        .await
        .unwrap();
    let revoked = sqlite3(
        &db,
        "SELECT revocation_reason FROM certificates WHERE requester LIKE 'acme:%'",
    );
    assert_eq!(revoked, ["1"]);
    let err = account
        .revoke(&RevocationRequest {
            certificate: &leaf_der,
            reason: None,
        })
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("alreadyRevoked"), "{err}");

    // Contacts, key rollover (the old key no longer works), deactivation.
    account
        .update_contacts(&["mailto:new@example.com"])
        .await
        .unwrap();
    let contact = sqlite3(&db, "SELECT contact FROM acme_accounts");
    assert_eq!(contact, [r#"["mailto:new@example.com"]"#]);
    let old = account.clone();
    let mut account = account;
    let before_key = sqlite3(&db, "SELECT thumbprint FROM acme_accounts");
    let _credentials = account.update_key().await.unwrap();
    assert_ne!(
        sqlite3(&db, "SELECT thumbprint FROM acme_accounts"),
        before_key
    );
    assert!(
        old.new_order(&NewOrder::new(&ids)).await.is_err(),
        "the old key is refused"
    );
    account.new_order(&NewOrder::new(&ids)).await.unwrap();
    account.clone().deactivate().await.unwrap();
    let err = account.new_order(&NewOrder::new(&ids)).await.err().unwrap();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    assert_eq!(
        sqlite3(&db, "SELECT status FROM acme_accounts"),
        ["deactivated"]
    );
    server.terminate().await;
}

/// The first certificate of a PEM chain, DER.
fn pem_der(chain: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap()
}

/// Follows the database across refusals: each refusal must add exactly one audit row
/// (outcome `refused`, the action and actor expected, the problem type first in its
/// detail) and change nothing else that ACME or issuance keeps (accounts and their keys
/// and contacts, orders, authorizations and challenges with their states, certificates,
/// revocations, EAB keys).
struct Watch {
    db: PathBuf,
    state: Vec<String>,
    audit_rows: usize,
}

impl Watch {
    fn new(db: &Path) -> Watch {
        let mut w = Watch {
            db: db.to_path_buf(),
            state: Vec::new(),
            audit_rows: 0,
        };
        w.rebase();
        w
    }

    fn state(&self) -> Vec<String> {
        sqlite3(
            &self.db,
            "SELECT (SELECT count(*) FROM acme_accounts), \
             (SELECT group_concat(id || status || contact || thumbprint, ',') FROM acme_accounts), \
             (SELECT group_concat(id || status || coalesce(certificate_serial, ''), ',') FROM acme_orders), \
             (SELECT group_concat(id || status, ',') FROM acme_authorizations), \
             (SELECT group_concat(id || status, ',') FROM acme_challenges), \
             (SELECT count(*) FROM certificates), \
             (SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL), \
             (SELECT group_concat(kid || coalesce(account_id, '') || coalesce(revoked_at, ''), ',') FROM acme_eab_keys)",
        )
    }

    fn audit_count(&self) -> usize {
        sqlite3(&self.db, "SELECT count(*) FROM audit_log")[0]
            .parse()
            .unwrap()
    }

    /// Accept what a successful request changed.
    fn rebase(&mut self) {
        self.state = self.state();
        self.audit_rows = self.audit_count();
    }

    /// The refusal just answered: one audit row `action`, `refused`, by `actor`, its detail
    /// starting with the problem type `acme_type`; nothing else changed. Returns the detail.
    #[track_caller]
    fn refused(&mut self, action: &str, actor: &str, acme_type: &str) -> String {
        assert_eq!(self.state(), self.state, "a refusal changed nothing");
        assert_eq!(
            self.audit_count(),
            self.audit_rows + 1,
            "one audit row for the refusal ({action} {acme_type})"
        );
        self.audit_rows += 1;
        let row = sqlite3(
            &self.db,
            "SELECT action || '|' || outcome || '|' || actor || '|' || coalesce(serial, '') || '|' || detail \
             FROM audit_log ORDER BY id DESC LIMIT 1",
        )
        .join("\n");
        let fields: Vec<&str> = row.splitn(5, '|').collect();
        assert_eq!(fields[..3], [action, "refused", actor], "{row}");
        assert!(
            fields[4].starts_with(&format!("{acme_type}: ")),
            "the detail names {acme_type}: {row}"
        );
        fields[4].to_string()
    }
}

/// The account id at the end of a `kid` URL.
fn account_id(kid: &str) -> String {
    kid.rsplit('/').next().unwrap().to_string()
}

/// Append `lines` to the `[[provisioners]]` entry `name` of `data`'s signet.toml.
fn set_provisioner_keys(data: &Path, name: &str, keys: &[(&str, i64)]) {
    let path = data.join("signet.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let provisioners = doc["provisioners"].as_array_of_tables_mut().unwrap();
    let entry = provisioners
        .iter_mut()
        .find(|t| t["name"].as_str() == Some(name))
        .unwrap();
    for (key, value) in keys {
        entry[key] = toml_edit::value(*value);
    }
    std::fs::write(&path, doc.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_problems_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let http = Http01::default();
    let port = http.serve().await;
    let (data, _) = ca_with_acme(tmp.path(), "web", port, &[]);
    // A second provisioner whose accounts may place one order a second (burst 1).
    ca_with_acme(tmp.path(), "slow", port, &[]);
    set_provisioner_keys(
        &data,
        "slow",
        &[
            ("rate_limit_per_identity_per_second", 1),
            ("rate_limit_per_identity_burst", 1),
        ],
    );
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let db = data.join("signet.db");
    let mut c = RawClient::new(&root, &server.url("/acme/web/directory")).await;
    let new_account = c.url("newAccount");
    const ANON: &str = "acme:web:anonymous";

    // An unknown provisioner's directory (a lookup: not audited), and a POST to it.
    let resp = c
        .http
        .get(server.url("/acme/nope/directory"))
        .send()
        .await
        .unwrap();
    problem(resp, 404, "malformed").await;
    let mut w = Watch::new(&db);
    let nope = server.url("/acme/nope/new-account");
    let resp = c.post(&nope, Some(&json!({}))).await;
    problem(resp, 404, "malformed").await;
    w.refused("acme-new-account", "anonymous", "malformed");

    // The wrong media type.
    let jws = c.sign(
        json!({"nonce": c.nonce().await, "url": new_account}),
        Some(&json!({})),
    );
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/json",
        )
        .await;
    problem(resp, 415, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    // A url that is not the request's.
    let other = c.url("newOrder");
    let jws = c.sign(
        json!({"nonce": c.nonce().await, "url": other}),
        Some(&json!({})),
    );
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    problem(resp, 403, "unauthorized").await;
    w.refused("acme-new-account", ANON, "unauthorized");
    // A forged nonce, a missing one, a replayed one. The signature verified, so the
    // refusal names the key.
    let jws = c.sign(
        json!({"nonce": B64.encode([7u8; 32]), "url": new_account}),
        Some(&json!({})),
    );
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    problem(resp, 400, "badNonce").await;
    let detail = w.refused("acme-new-account", ANON, "badNonce");
    assert!(detail.contains("(key "), "{detail}");
    let jws = c.sign(json!({"url": new_account}), Some(&json!({})));
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    problem(resp, 400, "badNonce").await;
    w.refused("acme-new-account", ANON, "badNonce");
    // A signature that does not verify; an unknown header member; an unprotected header.
    let mut jws = c.sign(
        json!({"nonce": c.nonce().await, "url": new_account}),
        Some(&json!({})),
    );
    jws["signature"] = json!(B64.encode([1u8; 64]));
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    problem(resp, 400, "malformed").await;
    let detail = w.refused("acme-new-account", ANON, "malformed");
    assert!(
        !detail.contains("(key "),
        "an unverified key is not named: {detail}"
    );
    let jws = c.sign(
        json!({"nonce": c.nonce().await, "url": new_account, "crit": ["exp"]}),
        Some(&json!({})),
    );
    let resp = c
        .post_raw(
            &new_account,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    // Unknown payload members, a bad contact, an oversized body, not JSON at all.
    let resp = c
        .post(
            &new_account,
            Some(&json!({"termsOfServiceAgreed": true, "admin": true})),
        )
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    let resp = c
        .post(&new_account, Some(&json!({"contact": ["tel:+1555"]})))
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    let resp = c
        .post_raw(&new_account, vec![b' '; 70 * 1024], "application/jose+json")
        .await;
    problem(resp, 413, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    let resp = c
        .post_raw(&new_account, b"{not json".to_vec(), "application/jose+json")
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-new-account", ANON, "malformed");
    // onlyReturnExisting for a key without an account.
    let resp = c
        .post(&new_account, Some(&json!({"onlyReturnExisting": true})))
        .await;
    problem(resp, 400, "accountDoesNotExist").await;
    w.refused("acme-new-account", ANON, "accountDoesNotExist");
    // An unknown kid.
    c.kid = Some(server.url("/acme/web/account/AAAAAAAAAAAAAAAAAAAAAA"));
    let resp = c
        .post(&c.url("newOrder"), Some(&json!({"identifiers": []})))
        .await;
    problem(resp, 400, "accountDoesNotExist").await;
    w.refused("acme-new-order", ANON, "accountDoesNotExist");
    c.kid = None;

    // A nonce is good once, across requests. The members of the account and order objects
    // that only the server sets are ignored when a client sends them back, as acmez
    // (Caddy's client) does: `status` in newAccount; `status` and a zero `expires` in
    // newOrder.
    let resp = c
        .post(
            &new_account,
            Some(&json!({"contact": ["mailto:a@example.com"], "status": "valid"})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let kid = resp.headers()["location"].to_str().unwrap().to_string();
    let me = format!("acme:web:{}", account_id(&kid));
    c.kid = Some(kid.clone());
    let nonce = c.nonce().await;
    let url = c.url("newOrder");
    let payload = json!({
        "status": "",
        "expires": "0001-01-01T00:00:00Z",
        "identifiers": [{"type": "ip", "value": "127.0.0.1"}],
    });
    let jws = c.sign(json!({"nonce": nonce, "url": url}), Some(&payload));
    let resp = c
        .post_raw(&url, jws.to_string().into_bytes(), "application/jose+json")
        .await;
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    w.rebase();
    let resp = c
        .post_raw(&url, jws.to_string().into_bytes(), "application/jose+json")
        .await;
    problem(resp, 400, "badNonce").await;
    w.refused("acme-new-order", &me, "badNonce");
    // Identifiers outside the policy, of an unknown type, not canonical, notAfter.
    for (payload, acme_type) in [
        (
            json!({"identifiers": [{"type": "dns", "value": "example.com"}]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "email", "value": "a@b.c"}]}),
            "unsupportedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "dns", "value": "LOCALHOST"}]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}], "notAfter": "2030-01-01T00:00:00Z"}),
            "malformed",
        ),
        (json!({"identifiers": []}), "malformed"),
    ] {
        let resp = c.post(&url, Some(&payload)).await;
        problem(resp, 400, acme_type).await;
        w.refused("acme-new-order", &me, acme_type);
    }
    // Another account's URL, an unknown order (POST-as-GET reads), a bad authorization
    // update.
    let resp = c
        .post(
            &server.url("/acme/web/account/AAAAAAAAAAAAAAAAAAAAAA"),
            None,
        )
        .await;
    problem(resp, 403, "unauthorized").await;
    w.refused("acme-read", &me, "unauthorized");
    let resp = c
        .post(&server.url("/acme/web/order/AAAAAAAAAAAAAAAAAAAAAA"), None)
        .await;
    problem(resp, 404, "malformed").await;
    w.refused("acme-read", &me, "malformed");
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let resp = c.post(authz_url, Some(&json!({"status": "valid"}))).await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-deactivate-authz", &me, "malformed");
    // Finalizing before the challenge is done.
    let finalize = order["finalize"].as_str().unwrap();
    let (csr, _) = csr_for(&["127.0.0.1"]);
    let resp = c
        .post(finalize, Some(&json!({"csr": B64.encode(&csr)})))
        .await;
    problem(resp, 403, "orderNotReady").await;
    w.refused("issue", &me, "orderNotReady");

    // Validate, then finalize with a CSR whose names differ, and one with the account key.
    let authz: Value = c.post(authz_url, None).await.json().await.unwrap();
    let chall = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["type"] == "http-01")
        .unwrap()
        .clone();
    let thumb = {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            c.jwk["x"].as_str().unwrap(),
            c.jwk["y"].as_str().unwrap()
        );
        B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    };
    let token = chall["token"].as_str().unwrap();
    // A challenge answered with something other than an object.
    let resp = c
        .post(chall["url"].as_str().unwrap(), Some(&json!([])))
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("acme-validate", &me, "malformed");
    http.answer(token, &format!("{token}.{thumb}"));
    let resp = c
        .post(chall["url"].as_str().unwrap(), Some(&json!({})))
        .await;
    assert_eq!(resp.status(), 200);
    // While it is validated, the client is asked to poll again in a second (unless the
    // validation already ended).
    let retry_after = resp.headers().get("retry-after").cloned();
    let answered: Value = resp.json().await.unwrap();
    if answered["status"] == "processing" {
        assert_eq!(retry_after.unwrap(), "1");
    } else {
        assert_eq!(answered["status"], "valid", "{answered}");
    }
    let mut ready = false;
    for _ in 0..100 {
        let o: Value = c.post(&order_url(&order), None).await.json().await.unwrap();
        if o["status"] == "ready" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the order became ready");
    w.rebase();
    let (csr, _) = csr_for(&["127.0.0.2"]);
    let resp = c
        .post(finalize, Some(&json!({"csr": B64.encode(&csr)})))
        .await;
    problem(resp, 400, "badCSR").await;
    w.refused("issue", &me, "badCSR");
    let account_key_csr = {
        // The account key as a CSR's key: rcgen over the same PKCS#8.
        let pkcs8 = c.pkcs8.clone();
        let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.serialize_request(&key).unwrap().der().to_vec()
    };
    let resp = c
        .post(
            finalize,
            Some(&json!({"csr": B64.encode(&account_key_csr)})),
        )
        .await;
    let body = problem(resp, 400, "badCSR").await;
    assert!(
        body["detail"].as_str().unwrap().contains("account key"),
        "{body}"
    );
    w.refused("issue", &me, "badCSR");
    let resp = c.post(finalize, Some(&json!({"csr": "!!"}))).await;
    problem(resp, 400, "malformed").await;
    w.refused("issue", &me, "malformed");
    let certs = sqlite3(
        &db,
        "SELECT count(*) FROM certificates WHERE requester LIKE 'acme:%'",
    );
    assert_eq!(certs, ["0"], "no certificate for a refused CSR");
    // Revoking a certificate this account was not issued (the server's own), with a
    // reason a certificate cannot be revoked for, and a certificate that does not parse.
    let server_cert = sqlite3(
        &db,
        "SELECT hex(der), serial FROM certificates WHERE profile = 'server' LIMIT 1",
    );
    let (der_hex, serial) = server_cert[0].split_once('|').unwrap();
    let der = hex::decode(der_hex).unwrap();
    let revoke = c.url("revokeCert");
    let resp = c
        .post(&revoke, Some(&json!({"certificate": B64.encode(&der)})))
        .await;
    problem(resp, 403, "unauthorized").await;
    w.refused("revoke", &me, "unauthorized");
    let row = sqlite3(&db, "SELECT serial FROM audit_log ORDER BY id DESC LIMIT 1");
    assert_eq!(row, [serial], "the refusal names the certificate");
    let resp = c
        .post(
            &revoke,
            Some(&json!({"certificate": B64.encode(&der), "reason": 8})),
        )
        .await;
    problem(resp, 400, "badRevocationReason").await;
    w.refused("revoke", &me, "badRevocationReason");
    let resp = c
        .post(&revoke, Some(&json!({"certificate": B64.encode(b"junk")})))
        .await;
    problem(resp, 400, "malformed").await;
    w.refused("revoke", &me, "malformed");
    // Another account cannot read this account's order.
    let mut other = RawClient::new(&root, &server.url("/acme/web/directory")).await;
    let resp = other.post(&new_account, Some(&json!({}))).await;
    let other_kid = resp.headers()["location"].to_str().unwrap().to_string();
    other.kid = Some(other_kid.clone());
    w.rebase();
    let resp = other.post(&order_url(&order), None).await;
    problem(resp, 404, "malformed").await;
    w.refused(
        "acme-read",
        &format!("acme:web:{}", account_id(&other_kid)),
        "malformed",
    );

    // A rate limit: an account of `slow` may place one order a second. Orders placed
    // back to back are refused within a few with `rateLimited` and Retry-After.
    let mut s = RawClient::new(&root, &server.url("/acme/slow/directory")).await;
    let resp = s.post(&s.url("newAccount"), Some(&json!({}))).await;
    assert_eq!(resp.status(), 201);
    let slow_kid = resp.headers()["location"].to_str().unwrap().to_string();
    s.kid = Some(slow_kid.clone());
    let slow_order = s.url("newOrder");
    let mut limited = false;
    for _ in 0..10 {
        w.rebase();
        let resp = s
            .post(
                &slow_order,
                Some(&json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})),
            )
            .await;
        if resp.status() == 201 {
            continue;
        }
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        problem(resp, 429, "rateLimited").await;
        w.refused(
            "acme-new-order",
            &format!("acme:slow:{}", account_id(&slow_kid)),
            "rateLimited",
        );
        limited = true;
        break;
    }
    assert!(
        limited,
        "ten orders back to back were not rate-limited at 1/s"
    );
    server.terminate().await;
}

/// The order's own URL (its finalize URL without `/finalize`).
fn order_url(order: &Value) -> String {
    order["finalize"]
        .as_str()
        .unwrap()
        .trim_end_matches("/finalize")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding_is_required_and_single_use() {
    let tmp = tempfile::tempdir().unwrap();
    let http = Http01::default();
    let port = http.serve().await;
    let (data, printed) = ca_with_acme(tmp.path(), "bound", port, &["--eab"]);
    let field = |label: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("external account binding: {label} ")))
            .unwrap_or_else(|| panic!("{label} in {printed}"))
            .to_string()
    };
    let (kid, hmac) = (field("kid"), field("hmac_key"));
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let directory = server.url("/acme/bound/directory");
    let root = data.join("root_ca.crt");
    let meta: Value = common::client(&root)
        .get(&directory)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["meta"]["externalAccountRequired"], true);
    let new = NewAccount {
        contact: &[],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    // Refused without a binding, and with a wrong HMAC key.
    let err = Account::builder_with_root(&root)
        .unwrap()
        .create(&new, directory.clone(), None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("externalAccountRequired"), "{err}");
    let wrong = ExternalAccountKey::new(kid.clone(), &[0u8; 32]);
    let err = Account::builder_with_root(&root)
        .unwrap()
        .create(&new, directory.clone(), Some(&wrong))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    // Accepted with it, once.
    let eab = ExternalAccountKey::new(kid.clone(), &B64.decode(&hmac).unwrap());
    let (account, _) = Account::builder_with_root(&root)
        .unwrap()
        .create(&new, directory.clone(), Some(&eab))
        .await
        .unwrap();
    let (chain, _) = obtain(&account, &http, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    openssl_verifies(tmp.path(), &data, &chain, "bound");
    let err = Account::builder_with_root(&root)
        .unwrap()
        .create(&new, directory.clone(), Some(&eab))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    // The CLI lists it as used, and a fresh key can be revoked.
    let o = signet_in(
        tmp.path(),
        &[],
        &["acme", "eab", "list", "--dir", p(&data)],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(listed.contains(&kid) && listed.contains("used"), "{listed}");
    assert!(!listed.contains(&hmac), "the HMAC key is never listed");
    let o = signet_in(
        tmp.path(),
        &[],
        &[
            "acme",
            "eab",
            "create",
            "--dir",
            p(&data),
            "--provisioner",
            "bound",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let kid2 = out
        .lines()
        .find_map(|l| l.strip_prefix("kid: "))
        .unwrap()
        .to_string();
    let hmac2 = out
        .lines()
        .find_map(|l| l.strip_prefix("hmac_key: "))
        .unwrap()
        .to_string();
    let o = signet_in(
        tmp.path(),
        &[],
        &["acme", "eab", "revoke", "--dir", p(&data), &kid2],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let revoked = ExternalAccountKey::new(kid2, &B64.decode(&hmac2).unwrap());
    let err = Account::builder_with_root(&root)
        .unwrap()
        .create(&new, directory.clone(), Some(&revoked))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    server.terminate().await;
}

/// An instant-acme HTTP client that sends each request to the other of two replicas than
/// the last one (HTTP/1.1, a new connection each time), keeping the `Host` the client
/// addressed, as a round-robin load balancer in front of them would; and each newOrder to
/// the other replica than the last newOrder, so that successive orders take every step on
/// both. It records which replica answered each request.
struct Alternating {
    http: reqwest::Client,
    replicas: [u16; 2],
    next: std::sync::atomic::AtomicUsize,
    new_orders: std::sync::atomic::AtomicUsize,
    log: Arc<Mutex<Vec<(usize, String, String)>>>,
}

impl instant_acme::HttpClient for Alternating {
    fn request(
        &self,
        req: axum::http::Request<instant_acme::BodyWrapper<axum::body::Bytes>>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                > + Send,
        >,
    > {
        use axum::body::HttpBody;
        use std::sync::atomic::Ordering::Relaxed;
        let n = if req.uri().path().ends_with("/new-order") {
            let n = self.new_orders.fetch_add(1, Relaxed) % 2;
            self.next.store(n + 1, Relaxed);
            n
        } else {
            self.next.fetch_add(1, Relaxed) % 2
        };
        let port = self.replicas[n];
        let http = self.http.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
            let (parts, mut wrapped) = req.into_parts();
            let mut body = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut wrapped).poll_frame(cx)).await
            {
                let frame = frame.map_err(|e| other(Box::new(e)))?;
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            let host = parts
                .uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let path = parts.uri.path().to_string();
            log.lock()
                .unwrap()
                .push((n, parts.method.to_string(), path.clone()));
            let url = format!(
                "https://127.0.0.1:{port}{}",
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let resp = http
                .request(parts.method, url)
                .headers(parts.headers)
                .header(axum::http::header::HOST, host)
                .body(body)
                .send()
                .await
                .map_err(|e| other(Box::new(e)))?;
            let mut answer = axum::http::Response::builder().status(resp.status());
            for (name, value) in resp.headers() {
                answer = answer.header(name, value);
            }
            let bytes = resp.bytes().await.map_err(|e| other(Box::new(e)))?;
            let answer = answer
                .body(axum::body::Body::from(bytes))
                .map_err(|e| other(Box::new(e)))?;
            Ok(instant_acme::BytesResponse::from(answer))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_alternating_between_two_replicas_on_postgresql_completes_orders() {
    let db = signet_testkit::TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let http = Http01::default();
    let port = http.serve().await;
    let env = [("SIGNET_DATABASE_URL", db.url())];
    let data = tmp.path().join("data");
    let o = signet_in(tmp.path(), &env, &["init", "--dir", p(&data)], "");
    assert!(o.status.success(), "{}", text(&o));
    let (data, _) = ca_with_acme(tmp.path(), "web", port, &[]);
    // Two replicas: the same CA (a copy of the directory: one server per directory) on one
    // PostgreSQL database.
    let copy = tmp.path().join("copy");
    let o = std::process::Command::new("cp")
        .args(["-a", p(&data), p(&copy)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut first = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let mut second = Server::start(tmp.path(), &env, &["--dir", p(&copy)]).await;
    assert!(
        !data.join("signet.db").exists(),
        "SQLite was used instead of PostgreSQL"
    );
    let root = data.join("root_ca.crt");
    let log = Arc::new(Mutex::new(Vec::new()));
    let client = Alternating {
        http: reqwest::Client::builder()
            .use_preconfigured_tls(common::tls_config(&root, None, &[b"http/1.1"]))
            .http1_only()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        replicas: [first.port(), second.port()],
        next: Default::default(),
        new_orders: Default::default(),
        log: log.clone(),
    };
    // The client knows the CA by the first replica's address; each request goes to the
    // other replica than the last one, so the nonce it carries was issued by the other
    // replica.
    let (account, _) = Account::builder_with_http(Box::new(client))
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            first.url("/acme/web/directory"),
            None,
        )
        .await
        .unwrap();
    for n in 0..2 {
        let (chain, _) = obtain(&account, &http, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
        openssl_verifies(tmp.path(), &data, &chain, &format!("replicas-{n}"));
    }
    let log = log.lock().unwrap().clone();
    // Each replica created an order and took a challenge response (the other replica then
    // answered the polls that saw it valid), and answered other POSTs too.
    for replica in 0..2 {
        let posts: Vec<&str> = log
            .iter()
            .filter(|(r, method, _)| *r == replica && method == "POST")
            .map(|(_, _, path)| path.as_str())
            .collect();
        assert!(posts.len() >= 5, "replica {replica} answered {log:?}");
        for step in ["/new-order", "/chall/"] {
            assert!(
                posts.iter().any(|p| p.contains(step)),
                "replica {replica}, {step}: {log:?}"
            );
        }
    }
    let issued = common::db::psql(
        db.url(),
        "SELECT count(*) FROM certificates WHERE requester LIKE 'acme:web:%'",
    );
    assert_eq!(issued, ["2"]);
    for server in [&mut first, &mut second] {
        let (status, _) = server.terminate().await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
}

/// The REST API's outer layers cover the ACME routes (one stack for both, in
/// `signet_api::app_with`): HSTS and nosniff on every ACME answer, problems included;
/// ACME requests and refusals in the metrics by route; an oversized body answered 413
/// with an ACME `malformed` document; a client whose body stalls answered 408 with an
/// ACME problem document, a fresh nonce and `Connection: close` within twice the
/// configured `request_timeout`, then disconnected, nothing stored but its count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_layers_cover_the_acme_routes() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = ca_with_acme(tmp.path(), "web", 9, &[]);
    let path = data.join("signet.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    doc["server"]["limits"]["request_timeout"] = toml_edit::value("2s");
    std::fs::write(&path, doc.to_string()).unwrap();
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let db = data.join("signet.db");
    let c = RawClient::new(&root, &server.url("/acme/web/directory")).await;
    let security_headers = |resp: &reqwest::Response| {
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=31536000",
            "{resp:?}"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    };
    let resp = c
        .http
        .get(server.url("/acme/web/directory"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    security_headers(&resp);
    let resp = c.http.head(c.url("newNonce")).send().await.unwrap();
    security_headers(&resp);
    let new_account = c.url("newAccount");
    let resp = c
        .post_raw(&new_account, vec![b' '; 70 * 1024], "application/jose+json")
        .await;
    security_headers(&resp);
    problem(resp, 413, "malformed").await;
    let resp = c.post(&new_account, Some(&json!({}))).await;
    assert_eq!(resp.status(), 201);
    security_headers(&resp);

    // A stalled body on an ACME route.
    let w = Watch::new(&db);
    let addr = server.addr();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(common::tls_config(&root, None, &[b"http/1.1"])));
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let head = "POST /acme/web/new-order HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jose+json\r\nContent-Length: 1000\r\n\r\n{\"protected\": \"";
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
    assert!(closed.is_ok(), "the connection stayed open: {said:?}");
    assert!(
        took >= TIMEOUT - Duration::from_millis(100) && took <= 2 * TIMEOUT,
        "answered after {took:?}"
    );
    assert!(said.starts_with("HTTP/1.1 408 "), "{said:?}");
    let end = said.find("\r\n\r\n").unwrap();
    let head = said[..end].to_ascii_lowercase();
    for line in [
        "content-type: application/problem+json",
        "connection: close",
        "replay-nonce: ",
        "strict-transport-security: max-age=31536000",
    ] {
        assert!(head.contains(&format!("\r\n{line}")), "{line} in {head}");
    }
    let body: Value = serde_json::from_str(&said[end + 4..]).unwrap();
    assert_eq!(
        body["type"], "urn:ietf:params:acme:error:malformed",
        "{body}"
    );
    assert_eq!(body["status"], 408);
    // Not audited (its sender is unknown), and nothing else stored.
    assert_eq!(w.state(), w.state);
    assert_eq!(w.audit_count(), w.audit_rows);

    // The metrics count ACME requests by route and status, and ACME refusals by type.
    let metrics = c
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |needle: &[&str]| {
        metrics
            .lines()
            .any(|l| needle.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&[
            "signet_http_request_duration_seconds_count{",
            "route=\"/acme/{p}/new-account\"",
            "status=\"201\""
        ]),
        "{metrics}"
    );
    assert!(
        has(&[
            "signet_http_request_duration_seconds_count{",
            "route=\"/acme/{p}/new-account\"",
            "status=\"413\""
        ]),
        "{metrics}"
    );
    assert!(
        has(&[
            "signet_http_request_duration_seconds_count{",
            "route=\"/acme/{p}/directory\""
        ]),
        "{metrics}"
    );
    assert!(
        has(&["signet_refusals_total{", "acme:malformed"]),
        "{metrics}"
    );
    assert!(
        has(&["signet_refusals_total{", "acme:requestTimeout"]),
        "{metrics}"
    );
    server.terminate().await;
}
