//! The API driven through its real router (no sockets), on both backends: every request
//! and refusal a client can make, and what each leaves in the store. mTLS is simulated by
//! the `ClientCertificate` extension the TLS layer inserts; the binary's tests cover real
//! HTTPS.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use signet_api::{AdminCredential, ApiConfig, AppState, ClientCertificate, Provisioner, app};
use signet_ca::{
    InitOptions, IssuanceUrls, IssuingCa, KeyType, OffsetDateTime, Policy, Profile, ProfileLimits,
    generate_ca,
};
use signet_store::Store;
use signet_testkit::TestDb;
use tower::ServiceExt;

const CA_URL: &str = "https://ca.test:8443";
const ADMIN: &str = "sa_test-admin-token-0123456789abcdef";

struct Env {
    /// The database, when this Env made it (a second instance on it holds none).
    _db: Option<TestDb>,
    store: Store,
    state: AppState,
    router: axum::Router,
    prov_key: rcgen::KeyPair,
    ca: Arc<IssuingCa>,
}

async fn env_for(db: TestDb) -> Env {
    env_with(db, 1000).await
}

async fn env_with(db: TestDb, rate: u32) -> Env {
    let bundle = generate_ca(&InitOptions::new("Test CA"), OffsetDateTime::now_utc()).unwrap();
    let ca = IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap();
    env_from(db, rate, Arc::new(ca), Vec::new()).await
}

/// The API issuing with `ca`, accepting client certificates of the earlier issuing CAs
/// `previous` too.
async fn env_from(
    db: TestDb,
    rate: u32,
    ca: Arc<IssuingCa>,
    previous: Vec<signet_ca::PreviousIssuer>,
) -> Env {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let prov_key = KeyType::P256.generate().unwrap();
    let prov = provisioner("default", &prov_key, default_policy(), rate);
    let mut env = instance(store, ca, prov, prov_key, previous);
    env._db = Some(db);
    env
}

/// An API instance over `store` with the one provisioner `prov` (whose key is `prov_key`):
/// what one `signet serve` replica holds.
fn instance(
    store: Store,
    ca: Arc<IssuingCa>,
    prov: Provisioner,
    prov_key: rcgen::KeyPair,
    previous: Vec<signet_ca::PreviousIssuer>,
) -> Env {
    let profiles: BTreeMap<Profile, ProfileLimits> = Profile::ALL
        .iter()
        .map(|p| (*p, ProfileLimits::default()))
        .collect();
    let state = AppState::new(
        ca.clone(),
        store.clone(),
        vec![prov],
        AdminCredential::from_token(ADMIN),
        ApiConfig {
            ca_url: format!("{CA_URL}/"),
            profiles,
            admin_policy: Policy {
                dns: vec!["*.internal".parse().unwrap()],
                ..Policy::default()
            },
        },
    )
    .with_previous_issuers(previous);
    Env {
        _db: None,
        store,
        router: app(state.clone()),
        state,
        prov_key,
        ca,
    }
}

fn default_policy() -> Policy {
    Policy {
        dns: vec![
            "*.svc.cluster.local".parse().unwrap(),
            "*.internal".parse().unwrap(),
        ],
        ip: vec!["10.0.0.0/8".parse().unwrap()],
        uri_prefixes: vec!["spiffe://cluster.local/".into()],
        ..Policy::default()
    }
}

/// A token provisioner verifying with `key`'s public half.
fn provisioner(name: &str, key: &rcgen::KeyPair, policy: Policy, rate: u32) -> Provisioner {
    let dk = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).unwrap();
    Provisioner::new(name, dk, Algorithm::ES256, policy, rate, rate).unwrap()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn jti() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    let k = rcgen::KeyPair::generate().unwrap();
    let b = k.public_key_raw();
    u128::from_be_bytes(b[1..17].try_into().unwrap())
}

impl Env {
    fn token_with(&self, claims: Value) -> String {
        let key = EncodingKey::from_ec_pem(self.prov_key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }

    fn token(&self, sans: &[&str]) -> String {
        self.token_with(json!({"iss": "default", "aud": CA_URL, "sub": "svc", "sans": sans, "iat": now(), "nbf": now(), "exp": now() + 300, "jti": jti()}))
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        client: Option<&[u8]>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        if let Some(der) = client {
            req.extensions_mut().insert(ClientCertificate {
                der: Arc::from(der),
            });
        }
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value, headers)
    }

    async fn issue(
        &self,
        bearer: &str,
        csr: &str,
        profile: &str,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        self.call(
            "POST",
            "/v1/certificates",
            Some(bearer),
            Some(json!({"csr": csr, "profile": profile})),
            None,
        )
        .await
    }

    async fn count(&self) -> u64 {
        self.store.count_certificates().await.unwrap()
    }
}

/// A CSR for `names` with a fresh P-256 key; returns (CSR PEM, key).
fn csr(names: &[&str]) -> (String, rcgen::KeyPair) {
    let key = KeyType::P256.generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

fn problem_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or_default()
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn token_issuance_then_lookup_list_revoke_on_both_backends() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let (csr_pem, _) = csr(&["api.ns.svc.cluster.local", "10.1.2.3"]);
        let token = e.token(&["api.ns.svc.cluster.local", "10.1.2.3"]);
        let (status, body, headers) = e.issue(&token, &csr_pem, "server").await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        assert_eq!(headers["strict-transport-security"], "max-age=31536000");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let serial = body["serial_number"].as_str().unwrap().to_string();
        assert!(
            body["certificate"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(body["chain"].as_array().unwrap().len(), 1);
        assert!(
            OffsetDateTime::parse(
                body["not_after"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );

        // Stored, with the token's identity, before the 201.
        let rec = e
            .store
            .get_certificate(&sn(&serial))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.requester, "token:default:svc");
        assert_eq!(rec.der, pem_der(body["certificate"].as_str().unwrap()));

        // Anyone can look it up (upper case and colons accepted).
        let upper = serial.to_uppercase();
        let (status, got, _) = e
            .call(
                "GET",
                &format!("/v1/certificates/{upper}"),
                None,
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["status"], "good");
        assert_eq!(
            got["sans"],
            json!(["dns:api.ns.svc.cluster.local", "ip:10.1.2.3"])
        );
        assert!(got.get("requester").is_none(), "requester is for admins");

        // Listing is for admins only.
        let (status, list, _) = e
            .call(
                "GET",
                "/v1/certificates?status=good&name=api.ns.svc.cluster.local",
                Some(ADMIN),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0]["requester"], "token:default:svc");
        let (status, p, _) = e
            .call(
                "GET",
                "/v1/certificates",
                Some(&e.token(&["a.internal"])),
                None,
                None,
            )
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:forbidden")
        );
        let (status, p, _) = e
            .call(
                "GET",
                "/v1/certificates?status=bogus",
                Some(ADMIN),
                None,
                None,
            )
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (
                StatusCode::BAD_REQUEST,
                "urn:signet:problem:invalid-request"
            )
        );

        // Revoke as admin; again is a conflict; unknown serial is 404.
        let (status, r, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{serial}/revoke"),
                Some(ADMIN),
                Some(json!({"reason": "keyCompromise"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(
            (r["status"].as_str(), r["revocation_reason"].as_str()),
            (Some("revoked"), Some("keyCompromise"))
        );
        let (status, _, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{serial}/revoke"),
                Some(ADMIN),
                Some(json!({"reason": "keyCompromise"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, p, _) = e
            .call(
                "POST",
                "/v1/certificates/0123/revoke",
                Some(ADMIN),
                None,
                None,
            )
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::NOT_FOUND, "urn:signet:problem:not-found")
        );
        let (status, _, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{serial}/revoke"),
                Some(ADMIN),
                Some(json!({"reason": "certificateHold"})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "holds are not offered");

        let rec = e
            .store
            .get_certificate(&sn(&serial))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rec.revocation_reason,
            Some(signet_ca::RevocationReason::KeyCompromise)
        );
        let audit = e.store.list_audit(50).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.action == "revoke" && a.outcome == "ok" && a.actor == "admin"),
            "{name}: {audit:?}"
        );
        assert!(
            audit.iter().any(|a| a.action == "issue"
                && a.outcome == "ok"
                && a.actor == "token:default:svc")
        );
    }
}

/// The token's `jti` is burned in the transaction that records the certificate: of many
/// concurrent requests with one token, exactly one gets a certificate, the others
/// `token-replayed`, and exactly one certificate is stored. A token whose first use was
/// refused (a bad CSR) is used up all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_yields_one_certificate_under_concurrency() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = std::sync::Arc::new(env_for(db).await);
        let token = e.token(&["once.internal"]);
        let before = e.count().await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (e, token) = (e.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let (csr_pem, _) = csr(&["once.internal"]);
                let (status, p, _) = e.issue(&token, &csr_pem, "server").await;
                (status, problem_type(&p).to_string())
            }));
        }
        let mut created = 0;
        for t in tasks {
            let (status, kind) = t.await.unwrap();
            if status == StatusCode::CREATED {
                created += 1;
            } else {
                assert_eq!(
                    (status, kind.as_str()),
                    (
                        StatusCode::UNAUTHORIZED,
                        "urn:signet:problem:token-replayed"
                    ),
                    "{name}"
                );
            }
        }
        assert_eq!(created, 1, "{name}: one token, one certificate");
        assert_eq!(e.count().await, before + 1, "{name}");

        // Refused first use: the token is burned anyway.
        let token = e.token(&["twice.internal"]);
        let (status, p, _) = e.issue(&token, "not a csr", "server").await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::BAD_REQUEST, "urn:signet:problem:bad-csr"),
            "{name}"
        );
        let (csr_pem, _) = csr(&["twice.internal"]);
        let (status, p, _) = e.issue(&token, &csr_pem, "server").await;
        assert_eq!(
            (status, problem_type(&p)),
            (
                StatusCode::UNAUTHORIZED,
                "urn:signet:problem:token-replayed"
            ),
            "{name}"
        );
        assert_eq!(e.count().await, before + 1, "{name}");
    }
}

#[tokio::test]
async fn token_abuse_is_refused_with_the_reason_and_nothing_is_stored() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let (csr_pem, _) = csr(&["a.internal"]);
        let base = json!({"iss": "default", "aud": CA_URL, "sub": "svc", "sans": ["a.internal"], "iat": now(), "exp": now() + 300});
        let with = |patch: Value| {
            let mut c = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            if c.get("jti").is_none() {
                c["jti"] = json!(jti());
            }
            c
        };

        // Replay: the same token twice.
        let token = e.token(&["a.internal"]);
        assert_eq!(
            e.issue(&token, &csr_pem, "server").await.0,
            StatusCode::CREATED
        );
        let (status, p, headers) = e.issue(&token, &csr_pem, "server").await;
        assert_eq!(
            (status, problem_type(&p)),
            (
                StatusCode::UNAUTHORIZED,
                "urn:signet:problem:token-replayed"
            ),
            "{name}"
        );
        assert_eq!(headers["www-authenticate"], "Bearer");

        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &with(json!({})),
            &EncodingKey::from_secret(e.prov_key.public_key_pem().as_bytes()),
        )
        .unwrap();
        let none = {
            use base64::Engine;
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b.encode(serde_json::to_vec(&with(json!({}))).unwrap())
            )
        };
        let other_key = KeyType::P256.generate().unwrap();
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &with(json!({})),
            &EncodingKey::from_ec_pem(other_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        // RFC 7515 section 4.1.11: a critical extension the server does not understand.
        let mut critical = Header::new(Algorithm::ES256);
        critical.crit = Some(vec!["urn:example:must-understand".into()]);
        critical.extras.insert("urn:example:must-understand", true);
        let critical = jsonwebtoken::encode(
            &critical,
            &with(json!({})),
            &EncodingKey::from_ec_pem(e.prov_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "unknown critical header extension",
                critical,
                "critical that this server does not understand: \"urn:example:must-understand\"",
            ),
            (
                "wrong audience",
                e.token_with(with(json!({"aud": "https://other-ca:8443"}))),
                "audience",
            ),
            (
                "expired",
                e.token_with(with(json!({"exp": now() - 120}))),
                "expired",
            ),
            (
                "too long-lived",
                e.token_with(with(json!({"exp": now() + 3600}))),
                "5 minutes",
            ),
            (
                "not yet valid",
                e.token_with(with(json!({"nbf": now() + 600}))),
                "not yet valid",
            ),
            (
                "unknown provisioner",
                e.token_with(with(json!({"iss": "nobody"}))),
                "unknown provisioner",
            ),
            ("HS256 with the public key", hs256, "algorithm"),
            ("alg none", none, "token"),
            ("signed by another key", forged, "signature"),
            ("garbage", "not.a.jwt".to_string(), "malformed"),
            ("bad admin token", "sa_wrong".to_string(), "admin"),
        ];
        for (what, token, reason) in &cases {
            let (status, p, _) = e.issue(token, &csr_pem, "server").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} {what}: {p}");
            assert_eq!(
                problem_type(&p),
                "urn:signet:problem:unauthorized",
                "{name} {what}"
            );
            assert!(
                p["detail"].as_str().unwrap().contains(reason),
                "{name} {what}: {p}"
            );
        }
        let (status, _, _) = e
            .call(
                "POST",
                "/v1/certificates",
                None,
                Some(json!({"csr": csr_pem})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.count().await,
            1,
            "{name}: only the first, legitimate request stored anything"
        );
        let refusals = e
            .store
            .list_audit(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.outcome == "refused")
            .count();
        assert_eq!(refusals, cases.len() + 2, "{name}: every refusal audited");
    }
}

#[tokio::test]
async fn bad_requests_get_specific_problems_and_store_nothing() {
    let e = env_for(TestDb::sqlite().await).await;
    let (good, _) = csr(&["a.internal"]);
    let (outside_token, _) = csr(&["a.internal", "b.internal"]);
    let (outside_policy, _) = csr(&["evil.example.com"]);
    let cases: Vec<(&str, Value, &[&str], StatusCode, &str)> = vec![
        (
            "malformed CSR",
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "bad-csr",
        ),
        (
            "name not in token",
            json!({"csr": outside_token}),
            &["a.internal"],
            StatusCode::FORBIDDEN,
            "name-denied",
        ),
        (
            "name outside policy",
            json!({"csr": outside_policy}),
            &["evil.example.com"],
            StatusCode::FORBIDDEN,
            "name-denied",
        ),
        (
            "unknown profile",
            json!({"csr": good, "profile": "ca"}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "unknown-profile",
        ),
        (
            "ttl too long",
            json!({"csr": good, "ttl": "30d"}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "ttl-too-long",
        ),
        (
            "bad ttl",
            json!({"csr": good, "ttl": "soon"}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "invalid-ttl",
        ),
        (
            "unknown field",
            json!({"csr": good, "is_ca": true}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
        (
            "missing csr",
            json!({"profile": "server"}),
            &["a.internal"],
            StatusCode::BAD_REQUEST,
            "invalid-request",
        ),
    ];
    for (what, body, sans, status, slug) in cases {
        let (got, p, headers) = e
            .call(
                "POST",
                "/v1/certificates",
                Some(&e.token(sans)),
                Some(body),
                None,
            )
            .await;
        assert_eq!(got, status, "{what}: {p}");
        assert_eq!(
            problem_type(&p),
            format!("urn:signet:problem:{slug}"),
            "{what}: {p}"
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        assert!(!p["detail"].as_str().unwrap().is_empty());
    }
    // The denied name is reported by name.
    let (_, p, _) = e
        .call(
            "POST",
            "/v1/certificates",
            Some(&e.token(&["a.internal"])),
            Some(json!({"csr": outside_token})),
            None,
        )
        .await;
    assert!(
        p["detail"].as_str().unwrap().contains("dns:b.internal"),
        "{p}"
    );

    // Oversized, duplicate keys, not JSON, wrong content type.
    let big = "x".repeat(70 * 1024);
    let (status, p, _) = e
        .call(
            "POST",
            "/v1/certificates",
            Some(&e.token(&["a.internal"])),
            Some(json!({"csr": big})),
            None,
        )
        .await;
    assert_eq!(
        (status, problem_type(&p)),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:signet:problem:body-too-large"
        )
    );
    let dup = format!(r#"{{"csr": {}, "csr": {}}}"#, json!(good), json!(good));
    let req = Request::post("/v1/certificates")
        .header(
            "authorization",
            format!("Bearer {}", e.token(&["a.internal"])),
        )
        .header("content-type", "application/json")
        .body(Body::from(dup))
        .unwrap();
    let (status, p, _) = e.send(req).await;
    assert_eq!(
        (status, problem_type(&p)),
        (
            StatusCode::BAD_REQUEST,
            "urn:signet:problem:invalid-request"
        ),
        "{p}"
    );
    let req = Request::post("/v1/certificates")
        .header(
            "authorization",
            format!("Bearer {}", e.token(&["a.internal"])),
        )
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(e.send(req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let req = Request::post("/v1/certificates")
        .header(
            "authorization",
            format!("Bearer {}", e.token(&["a.internal"])),
        )
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(e.send(req).await.0, StatusCode::BAD_REQUEST);

    // Serials with SQL and path metacharacters.
    for bad in [
        "zz",
        "'%3B%20DROP%20TABLE%20certificates%3B--",
        "..%2F..%2Fetc%2Fpasswd",
        &"ab".repeat(40),
    ] {
        let (status, p, _) = e
            .call("GET", &format!("/v1/certificates/{bad}"), None, None, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }
    assert_eq!(e.count().await, 0, "nothing stored");
}

#[tokio::test]
async fn token_audiences_name_the_ca_under_any_of_its_names_and_ports() {
    let e = env_for(TestDb::sqlite().await).await;
    // As `signet serve` sets it: its certificate's names and the port it listens on.
    let _ = e.state.clone().with_server_names(
        &[
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
            "ca.internal".into(),
        ],
        &[9443],
    );
    let claims = |aud: Value| json!({"iss": "default", "aud": aud, "sub": "svc", "sans": ["a.internal"], "iat": now(), "nbf": now(), "exp": now() + 300, "jti": jti()});
    let (csr_pem, _) = csr(&["a.internal"]);
    let mut issued = 0;
    for aud in [
        json!(CA_URL),
        json!(format!("{CA_URL}/")),
        json!("https://CA.TEST:8443"),
        json!("https://localhost:8443"),
        json!("https://127.0.0.1:9443"),
        json!("https://[::1]:8443"),
        json!("https://ca.internal:9443/"),
        json!(["https://someone-else.example", "https://localhost:9443"]),
    ] {
        let (status, p, _) = e
            .issue(&e.token_with(claims(aud.clone())), &csr_pem, "server")
            .await;
        assert_eq!(status, StatusCode::CREATED, "{aud}: {p}");
        issued += 1;
    }
    for aud in [
        json!("https://localhost:1"),
        json!("https://localhost"),
        json!("http://localhost:8443"),
        json!("https://evil.example:8443"),
        json!("https://localhost:8443/v1"),
        json!("https://user@localhost:8443"),
        json!("localhost:8443"),
        json!(["https://someone-else.example"]),
    ] {
        let (status, p, _) = e
            .issue(&e.token_with(claims(aud.clone())), &csr_pem, "server")
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::UNAUTHORIZED, "urn:signet:problem:unauthorized"),
            "{aud}"
        );
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("token audience ") && detail.contains("is not this CA"),
            "{aud}: {detail}"
        );
        assert!(
            detail.contains("https://ca.test:8443, or the same CA under any of its names (")
                && detail.contains("[::1]")
                && detail.contains("8443, 9443"),
            "{aud}: {detail}"
        );
    }
    // A token without aud is refused as lacking it.
    let mut no_aud = claims(json!(CA_URL));
    no_aud.as_object_mut().unwrap().remove("aud");
    let (status, p, _) = e.issue(&e.token_with(no_aud), &csr_pem, "server").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(p["detail"].as_str().unwrap().contains("aud"), "{p}");
    assert_eq!(e.count().await, issued);
}

#[tokio::test]
async fn refusals_say_which_rule_refused() {
    let e = env_for(TestDb::sqlite().await).await;
    // A name outside the token's sans, though the policy allows it.
    let (csr_pem, _) = csr(&["a.internal", "b.internal"]);
    let (status, p, _) = e.issue(&e.token(&["a.internal"]), &csr_pem, "server").await;
    assert_eq!(
        (status, problem_type(&p)),
        (StatusCode::FORBIDDEN, "urn:signet:problem:name-denied")
    );
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("names not in the token's sans claim"),
        "{detail}"
    );
    assert!(
        detail.ends_with(": dns:b.internal") && !detail.contains("policy"),
        "{detail}"
    );
    // A name in the sans but outside the provisioner's policy: the policy, and whose.
    let (csr_pem, _) = csr(&["evil.example.com"]);
    let (status, p, _) = e
        .issue(&e.token(&["evil.example.com"]), &csr_pem, "server")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        p["detail"],
        "names not allowed by the policy of provisioner \"default\": dns:evil.example.com"
    );
    // The admin is held to the CA-wide policy.
    let (status, p, _) = e.issue(ADMIN, &csr_pem, "server").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        p["detail"],
        "names not allowed by the CA-wide [policy]: dns:evil.example.com"
    );
    // A bearer that is neither a JWT nor the admin token is not called an admin token.
    for (bearer, says) in [
        ("not-a-token-at-all", "malformed bearer token"),
        ("sa_not-the-admin-token", "invalid admin token"),
        ("a.b.c", "malformed token"),
    ] {
        let (status, p, _) = e.issue(bearer, &csr_pem, "server").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bearer}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.starts_with(says), "{bearer}: {detail}");
        if bearer != "sa_not-the-admin-token" {
            assert!(
                !detail.contains("invalid admin token"),
                "{bearer}: {detail}"
            );
        }
    }
    assert_eq!(e.count().await, 0);
}

#[tokio::test]
async fn a_ttl_beyond_the_maximum_names_the_maximum_that_applies() {
    let e = env_for(TestDb::sqlite().await).await;
    let (csr_pem, _) = csr(&["a.internal"]);
    for (bearer, ttl, detail) in [
        (
            e.token(&["a.internal"]),
            "100000d",
            "lifetime 100000d exceeds the maximum 7d",
        ),
        (
            ADMIN.to_string(),
            "100000d",
            "lifetime 100000d exceeds the maximum 7d",
        ),
        (
            e.token(&["a.internal"]),
            "8d",
            "lifetime 8d exceeds the maximum 7d",
        ),
        (
            e.token(&["a.internal"]),
            "99999999999999999999999d",
            "lifetime more than 2^64 seconds exceeds the maximum 7d",
        ),
    ] {
        let (status, p, _) = e
            .call(
                "POST",
                "/v1/certificates",
                Some(&bearer),
                Some(json!({"csr": csr_pem, "ttl": ttl})),
                None,
            )
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::BAD_REQUEST, "urn:signet:problem:ttl-too-long"),
            "{ttl}: {p}"
        );
        assert_eq!(p["detail"], detail, "{ttl}");
    }
    assert_eq!(e.count().await, 0);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let e = env_with(TestDb::sqlite().await, 2).await;
    let (good, _) = csr(&["a.internal"]);
    let mut statuses = vec![];
    for _ in 0..5 {
        let (status, _, headers) = e.issue(&e.token(&["a.internal"]), &good, "server").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        3
    );
    // The admin is not subject to provisioner limits, but is to the CA-wide name policy.
    assert_eq!(e.issue(ADMIN, &good, "server").await.0, StatusCode::CREATED);
    let (outside, _) = csr(&["a.svc.cluster.local"]);
    let (status, p, _) = e.issue(ADMIN, &outside, "client").await;
    assert_eq!(
        (status, problem_type(&p)),
        (StatusCode::FORBIDDEN, "urn:signet:problem:name-denied"),
        "{p}"
    );
}

/// Two API instances on one PostgreSQL (two replicas: each its own pool and in-process
/// limiters), the provisioner limiting each requester to 2/s with a burst of 2: one
/// requester's requests, alternating between the instances, are granted at most
/// 2 + 2 x elapsed together (per-process buckets would grant twice that), the rest refused
/// with 429 naming the requester; another requester is served all the while.
#[tokio::test]
async fn per_requester_limits_hold_across_two_instances_on_postgres() {
    let db = TestDb::postgres().await;
    let bundle = generate_ca(&InitOptions::new("Test CA"), OffsetDateTime::now_utc()).unwrap();
    let ca = Arc::new(
        IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls::default(),
        )
        .unwrap(),
    );
    let key_pem = KeyType::P256.generate().unwrap().serialize_pem();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let prov = provisioner("default", &key, default_policy(), 1000)
            .with_identity_limit(2, 2)
            .unwrap();
        instances.push(instance(store, ca.clone(), prov, key, Vec::new()));
    }
    let (good, _) = csr(&["a.internal"]);
    let token = |e: &Env, sub: &str| {
        e.token_with(
            json!({"iss": "default", "aud": CA_URL, "sub": sub, "sans": ["a.internal"],
            "iat": now(), "nbf": now(), "exp": now() + 300, "jti": jti()}),
        )
    };
    let started = std::time::Instant::now();
    let (mut granted, mut refused, mut calm) = (0u32, 0u32, 0u32);
    let (mut i, mut last_calm) = (0, None);
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let e = &instances[i % 2];
        i += 1;
        let (status, p, headers) = e.issue(&token(e, "flooder"), &good, "server").await;
        match status {
            StatusCode::CREATED => granted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(problem_type(&p), "urn:signet:problem:rate-limited", "{p}");
                assert!(p["detail"].as_str().unwrap().contains("\"flooder\""), "{p}");
                assert_eq!(headers["retry-after"], "1");
                refused += 1;
            }
            other => panic!("{other}: {p}"),
        }
        // Within its own 2/s: never refused, whatever the flooder does.
        if last_calm.is_none_or(|at: std::time::Instant| at.elapsed().as_millis() >= 600) {
            let (status, p, _) = e.issue(&token(e, "calm"), &good, "server").await;
            assert_eq!(status, StatusCode::CREATED, "{p}");
            calm += 1;
            last_calm = Some(std::time::Instant::now());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let budget = 2.0 + 2.0 * elapsed;
    eprintln!(
        "flooder: {granted} granted, {refused} refused in {elapsed:.2} s (budget {budget:.1}); calm: {calm}"
    );
    assert!(
        f64::from(granted) <= budget,
        "{granted} granted to one requester through two instances in {elapsed:.2} s, over \
         its budget {budget:.1}"
    );
    assert!(granted >= 2, "{granted}");
    assert!(refused > 4 * granted, "{refused} refused");
    assert!(calm >= 2, "{calm}");
    assert_eq!(
        instances[0].count().await,
        u64::from(granted + calm),
        "the store holds exactly the 201s"
    );
}

#[tokio::test]
async fn renewal_and_self_revocation_over_mtls() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let (csr_pem, _) = csr(&["peer.internal"]);
        let (status, issued, _) = e
            .issue(&e.token(&["peer.internal"]), &csr_pem, "peer")
            .await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        let der = pem_der(issued["certificate"].as_str().unwrap());

        // No client certificate: 401.
        let (status, p, _) = e
            .call("POST", "/v1/certificates/renew", None, None, None)
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::UNAUTHORIZED, "urn:signet:problem:unauthorized")
        );

        // Renew with the same key, then rekey with a CSR whose names are ignored.
        let (status, renewed, _) = e
            .call("POST", "/v1/certificates/renew", None, None, Some(&der))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {renewed}");
        let new = e
            .store
            .get_certificate(&sn(renewed["serial_number"].as_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (new.profile.as_str(), new.sans.clone()),
            ("peer", vec!["dns:peer.internal".to_string()])
        );
        let old_info = signet_ca::CertificateInfo::from_der(&der).unwrap();
        let new_info = signet_ca::CertificateInfo::from_der(&new.der).unwrap();
        assert_eq!(old_info.spki_der, new_info.spki_der, "same key");
        let (rekey_csr, _) = csr(&["other.internal"]);
        let (status, rekeyed, _) = e
            .call(
                "POST",
                "/v1/certificates/renew",
                None,
                Some(json!({"csr": rekey_csr})),
                Some(&der),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rekeyed}");
        let rekeyed_rec = e
            .store
            .get_certificate(&sn(rekeyed["serial_number"].as_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            rekeyed_rec.sans,
            vec!["dns:peer.internal"],
            "renewal keeps the names"
        );
        assert_ne!(
            signet_ca::CertificateInfo::from_der(&rekeyed_rec.der)
                .unwrap()
                .spki_der,
            old_info.spki_der
        );

        // A certificate may revoke itself, not another.
        let other = renewed["serial_number"].as_str().unwrap();
        let (status, _, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{other}/revoke"),
                None,
                None,
                Some(&der),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let serial = issued["serial_number"].as_str().unwrap();
        let (status, r, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{serial}/revoke"),
                None,
                Some(json!({"reason": "superseded"})),
                Some(&der),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");

        // A revoked certificate cannot renew.
        let (status, p, _) = e
            .call("POST", "/v1/certificates/renew", None, None, Some(&der))
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:forbidden"),
            "{name}: {p}"
        );
        assert!(p["detail"].as_str().unwrap().contains("revoked"));

        // A certificate from another CA is not a credential.
        let stranger =
            generate_ca(&InitOptions::new("Stranger"), OffsetDateTime::now_utc()).unwrap();
        let s_ca = IssuingCa::new(
            &stranger.issuing_cert_pem,
            &stranger.root_cert_pem,
            stranger.issuing_key,
            IssuanceUrls::default(),
        )
        .unwrap();
        let s_cert = peer_leaf(&s_ca);
        let (status, _, _) = e
            .call(
                "POST",
                "/v1/certificates/renew",
                None,
                None,
                Some(&s_cert.der),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// A `peer.internal` certificate signed by `ca` directly (not through the API).
fn peer_leaf(ca: &IssuingCa) -> signet_ca::IssuedCertificate {
    let (pem, _) = csr(&["peer.internal"]);
    ca.issue(
        &signet_ca::Csr::from_pem(&pem).unwrap(),
        Profile::Peer,
        &ProfileLimits::default(),
        None,
        &Policy::allow_all(),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

/// A `peer.internal` certificate signed by `ca` and recorded in `e`'s store with
/// `requester`, as earlier versions or an earlier issuing CA left them; its DER.
async fn record_leaf(e: &Env, ca: &IssuingCa, requester: String) -> Vec<u8> {
    let cert = peer_leaf(ca);
    let record = signet_store::NewCertificate {
        serial: cert.serial.clone(),
        issuer: ca.subject().to_string(),
        issuer_key_id: hex::encode(ca.key_id()),
        subject: cert.subject.clone(),
        sans: vec!["dns:peer.internal".into()],
        profile: "peer".into(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        requester,
        der: cert.der.clone(),
        crl_shard: None,
    };
    let audit = signet_store::AuditEntry {
        actor: record.requester.clone(),
        action: signet_store::AuditAction::Issue,
        serial: Some(record.serial.clone()),
        outcome: signet_store::AuditOutcome::Ok,
        detail: String::new(),
    };
    e.store.insert_certificate(&record, &audit).await.unwrap();
    cert.der
}

/// Renewal keeps a certificate's names, but they must still be allowed to whoever its line
/// was first issued to, as configured now: a tightened policy or a removed provisioner takes
/// effect at the next renewal. Renewals record that origin as their requester; records from
/// before (requester `mtls:<serial>`) are followed back to it.
#[tokio::test]
async fn renewal_meets_the_first_issuers_current_policy() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let renew = |der: Vec<u8>| {
            let e = &e;
            async move {
                e.call("POST", "/v1/certificates/renew", None, None, Some(&der))
                    .await
            }
        };
        let (csr_pem, _) = csr(&["peer.internal"]);
        let (status, issued, _) = e
            .issue(&e.token(&["peer.internal"]), &csr_pem, "peer")
            .await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        let first = pem_der(issued["certificate"].as_str().unwrap());
        let first_serial = issued["serial_number"].as_str().unwrap().to_string();

        // A renewal of a renewal: each records the line's origin as its requester, and the
        // audit row's actor is the certificate that asked.
        let (status, second, _) = renew(first.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {second}");
        let second_serial = second["serial_number"].as_str().unwrap().to_string();
        let second = pem_der(second["certificate"].as_str().unwrap());
        let (status, third, _) = renew(second.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {third}");
        let third_serial = third["serial_number"].as_str().unwrap().to_string();
        for serial in [&second_serial, &third_serial] {
            let rec = e.store.get_certificate(&sn(serial)).await.unwrap().unwrap();
            assert_eq!(rec.requester, "token:default:svc", "{name}");
        }
        let audit = e.store.list_audit(10).await.unwrap();
        assert!(
            audit.iter().any(|a| a.action == "renew"
                && a.outcome == "ok"
                && a.actor == format!("mtls:{second_serial}")
                && a.serial.as_deref() == Some(third_serial.as_str())),
            "{name}: {audit:?}"
        );

        // Records written before renewals recorded their origin name the certificate that
        // renewed them; the chain is followed back to the token.
        let legacy = |requester: String| record_leaf(&e, &e.ca, requester);
        let old_style = legacy(format!("mtls:{first_serial}")).await;
        let (status, renewed, _) = renew(old_style).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {renewed}");
        let rec = e
            .store
            .get_certificate(&sn(renewed["serial_number"].as_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.requester, "token:default:svc", "{name}");
        let orphan = legacy("mtls:7e57".into()).await;
        let (status, p, _) = renew(orphan).await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:forbidden"),
            "{name}: {p}"
        );
        assert!(p["detail"].as_str().unwrap().contains("7e57"), "{p}");

        // A certificate first issued with the admin credential meets the CA-wide policy.
        let (adm_csr, _) = csr(&["adm.internal"]);
        let (status, adm, _) = e.issue(ADMIN, &adm_csr, "server").await;
        assert_eq!(status, StatusCode::CREATED, "{adm}");
        let adm = pem_der(adm["certificate"].as_str().unwrap());

        // The provisioner's policy no longer allows *.internal: renewal is refused and
        // records nothing.
        let before = e.count().await;
        let narrow = Policy {
            dns: vec!["*.svc.cluster.local".parse().unwrap()],
            ..Policy::default()
        };
        e.state
            .replace_provisioners(vec![provisioner("default", &e.prov_key, narrow, 1000)])
            .unwrap();
        let (status, p, _) = renew(second.clone()).await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:name-denied"),
            "{name}: {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains("peer.internal"),
            "{p}"
        );
        assert_eq!(
            e.count().await,
            before,
            "{name}: a refused renewal records nothing"
        );

        // The provisioner is gone: its certificates cannot renew; the admin's still can.
        e.state
            .replace_provisioners(vec![provisioner(
                "other",
                &e.prov_key,
                default_policy(),
                1000,
            )])
            .unwrap();
        let (status, p, _) = renew(second).await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:forbidden"),
            "{name}: {p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("no longer configured"),
            "{p}"
        );
        assert_eq!(e.count().await, before, "{name}");
        let (status, r, _) = renew(adm).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {r}");
        let rec = e
            .store
            .get_certificate(&sn(r["serial_number"].as_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.requester, "admin", "{name}");
        let refusals = e
            .store
            .list_audit(20)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.action == "renew" && a.outcome != "ok")
            .count();
        assert_eq!(refusals, 3, "{name}: every refused renewal is audited");
    }
}

/// After `signet ca new-issuing`, certificates of the earlier issuing CA still
/// authenticate: they renew onto the current CA (new AKI, same names and requester) and can
/// revoke themselves. Once the root revokes the earlier CA they are refused, and a CA the
/// server was not told about never counts.
#[tokio::test]
async fn certificates_of_an_earlier_issuing_ca_renew_onto_the_current_one() {
    for db in TestDb::all().await {
        let name = db.name();
        let now = OffsetDateTime::now_utc();
        let bundle = generate_ca(&InitOptions::new("Test CA"), now).unwrap();
        let root = IssuingCa::root_for_crls(&bundle.root_cert_pem, bundle.root_key).unwrap();
        let old = IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls::default(),
        )
        .unwrap();
        let year = std::time::Duration::from_secs(365 * 86_400);
        let new = root
            .sign_issuing_ca("Test CA", "Test CA Issuing 2", KeyType::P256, year, now)
            .unwrap();
        let current = Arc::new(
            IssuingCa::new(
                &new.cert_pem,
                &bundle.root_cert_pem,
                new.key,
                IssuanceUrls::default(),
            )
            .unwrap(),
        );
        let previous = current.previous_issuer(old.cert_der()).unwrap();
        let e = env_from(db, 1000, current.clone(), vec![previous]).await;

        let leaf = record_leaf(&e, &old, "token:default:svc".into()).await;
        let (status, renewed, _) = e
            .call("POST", "/v1/certificates/renew", None, None, Some(&leaf))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {renewed}");
        let der = pem_der(renewed["certificate"].as_str().unwrap());
        let info = signet_ca::CertificateInfo::from_der(&der).unwrap();
        assert_eq!(info.authority_key_id.as_deref(), Some(current.key_id()));
        assert_eq!(
            renewed["chain"],
            json!(current.chain_pem()),
            "{name}: the new chain"
        );
        let rec = e
            .store
            .get_certificate(&info.serial)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.requester, "token:default:svc", "{name}");

        // It may revoke itself.
        let second = record_leaf(&e, &old, "token:default:svc".into()).await;
        let serial = signet_ca::CertificateInfo::from_der(&second)
            .unwrap()
            .serial
            .to_hex();
        let (status, r, _) = e
            .call(
                "POST",
                &format!("/v1/certificates/{serial}/revoke"),
                None,
                Some(json!({"reason": "keyCompromise"})),
                Some(&second),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {r}");

        // The root revokes the earlier CA: its certificates no longer authenticate.
        let ca_serial = signet_ca::CertificateInfo::from_der(old.cert_der())
            .unwrap()
            .serial;
        let ca_record = signet_store::NewCertificate {
            serial: ca_serial.clone(),
            issuer: root.subject().to_string(),
            issuer_key_id: hex::encode(root.key_id()),
            subject: old.subject().to_string(),
            sans: vec![],
            profile: "ca".into(),
            not_before: now,
            not_after: old.not_after(),
            requester: "local:test".into(),
            der: old.cert_der().to_vec(),
            crl_shard: None,
        };
        let audit = |action| signet_store::AuditEntry {
            actor: "local:test".into(),
            action,
            serial: Some(ca_serial.clone()),
            outcome: signet_store::AuditOutcome::Ok,
            detail: String::new(),
        };
        e.store
            .insert_certificate(
                &ca_record,
                &audit(signet_store::AuditAction::RecordCaCertificate),
            )
            .await
            .unwrap();
        e.store
            .revoke(
                &ca_serial,
                now,
                signet_ca::RevocationReason::CaCompromise,
                &audit(signet_store::AuditAction::Revoke),
            )
            .await
            .unwrap();
        let before = e.count().await;
        let (status, p, _) = e
            .call("POST", "/v1/certificates/renew", None, None, Some(&leaf))
            .await;
        assert_eq!(
            (status, problem_type(&p)),
            (StatusCode::FORBIDDEN, "urn:signet:problem:forbidden"),
            "{name}: {p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("revoked by the root"),
            "{p}"
        );
        assert_eq!(e.count().await, before, "{name}");

        // Another issuing CA of the same root that the server was not told about.
        let other = root
            .sign_issuing_ca("Test CA", "Test CA Issuing 3", KeyType::P256, year, now)
            .unwrap();
        let other = IssuingCa::new(
            &other.cert_pem,
            &bundle.root_cert_pem,
            other.key,
            IssuanceUrls::default(),
        )
        .unwrap();
        let stray = record_leaf(&e, &other, "token:default:svc".into()).await;
        let (status, _, _) = e
            .call("POST", "/v1/certificates/renew", None, None, Some(&stray))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
    }
}

/// `GET /v1/audit`: the admin reads issuances and refusals, newest first, filtered and page
/// by page; nobody else may; bad filters are 400s.
#[tokio::test]
async fn the_admin_reads_the_audit_log() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let mut serials = Vec::new();
        for _ in 0..3 {
            let (csr_pem, _) = csr(&["peer.internal"]);
            let (status, issued, _) = e
                .issue(&e.token(&["peer.internal"]), &csr_pem, "peer")
                .await;
            assert_eq!(status, StatusCode::CREATED, "{issued}");
            serials.push(issued["serial_number"].as_str().unwrap().to_string());
        }
        // A refusal: a name outside the token.
        let (csr_pem, _) = csr(&["other.internal"]);
        let (status, _, _) = e
            .issue(&e.token(&["peer.internal"]), &csr_pem, "peer")
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let get = |query: &str| {
            let e = &e;
            let uri = format!("/v1/audit{query}");
            async move { e.call("GET", &uri, Some(ADMIN), None, None).await }
        };
        let (status, all, _) = get("").await;
        assert_eq!(status, StatusCode::OK, "{name}: {all}");
        let items = all["items"].as_array().unwrap();
        assert_eq!(items.len(), 4, "{name}: {all}");
        assert_eq!(items[0]["outcome"], "refused", "newest first: {all}");
        assert!(
            items[0]["detail"]
                .as_str()
                .unwrap()
                .starts_with("name-denied"),
            "{all}"
        );
        assert_eq!(items[1]["serial"], json!(serials[2]), "{all}");
        assert_eq!(items[1]["actor"], "token:default:svc");
        assert!(items[1]["at"].as_str().unwrap().ends_with('Z'), "{all}");
        assert!(all["next_cursor"].is_null());

        // Filters, and pages of one.
        let (_, one, _) = get(&format!("?serial={}", serials[0].to_uppercase())).await;
        assert_eq!(one["items"].as_array().unwrap().len(), 1, "{name}: {one}");
        assert_eq!(one["items"][0]["action"], "issue");
        let (_, refused, _) = get("?outcome=refused").await;
        assert_eq!(refused["items"].as_array().unwrap().len(), 1, "{refused}");
        let mut seen = Vec::new();
        let mut query = "?outcome=ok&action=issue&limit=1".to_string();
        loop {
            let (status, page, _) = get(&query).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.push(page["items"][0]["serial"].as_str().unwrap().to_string());
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?outcome=ok&action=issue&limit=1&cursor={c}"),
                None => break,
            }
        }
        serials.reverse();
        assert_eq!(seen, serials, "{name}");

        // Nobody else; bad filters.
        let (status, _, _) = e.call("GET", "/v1/audit", None, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = e
            .call("GET", "/v1/audit", Some(&e.token(&[])), None, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for (query, problem) in [
            ("?outcome=maybe", "urn:signet:problem:invalid-request"),
            ("?cursor=abc", "urn:signet:problem:invalid-request"),
            ("?cursor=-1", "urn:signet:problem:invalid-request"),
            ("?serial=zz", "urn:signet:problem:invalid-serial"),
            ("?bogus=1", "urn:signet:problem:invalid-request"),
        ] {
            let (status, p, _) = get(query).await;
            assert_eq!(
                (status, problem_type(&p)),
                (StatusCode::BAD_REQUEST, problem),
                "{name}: {query}: {p}"
            );
        }
    }
}

#[tokio::test]
async fn ca_profiles_health_metrics_and_docs() {
    let e = env_for(TestDb::sqlite().await).await;
    let (status, root, headers) = e.call("GET", "/v1/ca/root", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-pem-file");
    assert_eq!(
        root.as_str().unwrap().matches("BEGIN CERTIFICATE").count(),
        1
    );
    let (_, chain, _) = e.call("GET", "/v1/ca/chain", None, None, None).await;
    assert_eq!(
        chain.as_str().unwrap().matches("BEGIN CERTIFICATE").count(),
        2
    );
    let (_, profiles, _) = e.call("GET", "/v1/profiles", None, None, None).await;
    assert_eq!(profiles[2]["name"], "peer");
    assert_eq!(
        profiles[2]["extended_key_usage"],
        json!(["serverAuth", "clientAuth"])
    );
    assert_eq!(
        e.call("GET", "/healthz", None, None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        e.call("GET", "/readyz", None, None, None).await.0,
        StatusCode::OK
    );

    let (good, _) = csr(&["a.internal"]);
    assert_eq!(
        e.issue(&e.token(&["a.internal"]), &good, "server").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        e.issue(&e.token(&["a.internal"]), "junk", "server").await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, metrics, _) = e.call("GET", "/metrics", None, None, None).await;
    let m = metrics.as_str().unwrap();
    assert!(m.contains(r#"signet_certificates_issued_total{profile="server",provisioner="default",operation="issue"} 1"#), "{m}");
    assert!(
        m.contains(r#"signet_refusals_total{type="bad-csr"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("signet_http_request_duration_seconds_bucket"),
        "{m}"
    );

    let (status, doc, _) = e.call("GET", "/openapi.json", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/certificates"]["post"].is_object());
    let (status, html, _) = e.call("GET", "/docs/", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.as_str().unwrap().contains("swagger"),
        "the docs page is served from the binary"
    );
    // The page's initializer names the document to load; without it Swagger UI shows
    // "No API definition provided." (crates/signet/tests/browser.rs opens it in Chromium).
    let (status, init, _) = e
        .call("GET", "/docs/swagger-initializer.js", None, None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let init = init.as_str().unwrap();
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");

    // The database going away makes readiness fail.
    e.store.close().await;
    let (status, p, _) = e.call("GET", "/readyz", None, None, None).await;
    assert_eq!(
        (status, problem_type(&p)),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:signet:problem:database-unavailable"
        )
    );
}

/// `openapi/signet.json` is the committed copy of the generated document. Regenerate with
/// `SIGNET_UPDATE_OPENAPI=1 cargo test -p signet-api --test api openapi`.
#[test]
fn openapi_document_matches_the_committed_copy() {
    let generated = serde_json::to_string_pretty(&signet_api::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/signet.json");
    if std::env::var_os("SIGNET_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/signet.json is out of date: run SIGNET_UPDATE_OPENAPI=1 cargo test -p signet-api --test api openapi"
    );
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> signet_ca::Serial {
    signet_ca::Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}
