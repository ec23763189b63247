//! The `kubernetes` provisioner through the real router, on both backends: projected
//! service-account tokens shaped exactly as a Kubernetes API server writes them, signed by an
//! RSA key and a P-256 key standing in for the cluster's service-account signing keys, with
//! the cluster's JWKS built from them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use signet_api::{
    AdminCredential, ApiConfig, AppState, ClientCertificate, Provisioner, ProvisionerConfig,
    ProvisionerKind, app,
};
use signet_ca::{
    InitOptions, IssuanceUrls, IssuingCa, KeyType, OffsetDateTime, Policy, Profile, ProfileLimits,
    generate_ca,
};
use signet_store::Store;
use signet_testkit::TestDb;
use tower::ServiceExt;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "signet";
const ADMIN: &str = "sa_test-admin-token-0123456789abcdef";

/// The stand-in cluster: its signing keys (PEM) and its JWKS.
struct Cluster {
    rsa_key_pem: String,
    rsa_pub_pem: String,
    ec_key_pem: String,
    jwks: String,
    _dir: tempfile::TempDir,
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed by these tests (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.key",
            ],
        );
        let rsa_key_pem = std::fs::read_to_string(dir.path().join("rsa.key")).unwrap();
        let rsa_pub_pem = openssl(dir.path(), &["pkey", "-in", "rsa.key", "-pubout"]);
        let modulus = openssl(dir.path(), &["rsa", "-in", "rsa.key", "-noout", "-modulus"]);
        let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        let ec = KeyType::P256.generate().unwrap();
        let point = ec.public_key_raw();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        // As a cluster publishes them at /openid/v1/jwks.
        let jwks = json!({"keys": [
            {"use": "sig", "kty": "RSA", "kid": "rsa-kid-1", "alg": "RS256", "n": B64.encode(&n), "e": "AQAB"},
            {"use": "sig", "kty": "EC", "crv": "P-256", "kid": "ec-kid-1", "alg": "ES256",
             "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])},
        ]});
        Cluster {
            rsa_key_pem,
            rsa_pub_pem,
            ec_key_pem: ec.serialize_pem(),
            jwks: jwks.to_string(),
            _dir: dir,
        }
    })
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Claims exactly as a current API server writes them for a projected token.
fn claims(ns: &str, sa: &str) -> Value {
    let t = now();
    json!({
        "aud": [AUDIENCE],
        "exp": t + 3600,
        "iat": t,
        "iss": ISSUER,
        "jti": "4f3b2c1d-7e8a-4b9c-a1d2-e3f4a5b6c7d8",
        "kubernetes.io": {
            "namespace": ns,
            "node": {"name": "node-1", "uid": "0a1b2c3d-0000-4000-8000-000000000001"},
            "pod": {"name": format!("{sa}-7d9f8b6c5-x2x4z"), "uid": "0a1b2c3d-0000-4000-8000-000000000002"},
            "serviceaccount": {"name": sa, "uid": "0a1b2c3d-0000-4000-8000-000000000003"}
        },
        "nbf": t,
        "sub": format!("system:serviceaccount:{ns}:{sa}")
    })
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    h
}

fn rsa_token(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(cluster().rsa_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header(Algorithm::RS256, "rsa-kid-1"), claims, &key).unwrap()
}

fn ec_token(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(cluster().ec_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header(Algorithm::ES256, "ec-kid-1"), claims, &key).unwrap()
}

struct Env {
    _db: TestDb,
    store: Store,
    state: AppState,
    router: axum::Router,
}

fn k8s_provisioner() -> Provisioner {
    k8s_provisioner_with(&["prod", "staging"], &["*.extra.internal"])
}

fn k8s_provisioner_with(namespaces: &[&str], policy_dns: &[&str]) -> Provisioner {
    // As `[[provisioners]]` would say it; inline JWKS, so no file is needed.
    let cfg: ProvisionerConfig = serde_json::from_value(json!({
        "name": "k8s",
        "type": "kubernetes",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks": cluster().jwks,
        "namespaces": namespaces,
        "service_accounts": ["prod/api", "prod/web", "staging/api"],
        "policy": {"dns": policy_dns, "profiles": ["peer", "client"]},
    }))
    .unwrap();
    assert_eq!(cfg.kind, ProvisionerKind::Kubernetes);
    let dir = tempfile::tempdir().unwrap();
    Provisioner::from_config(&cfg, dir.path()).unwrap()
}

async fn env_for(db: TestDb) -> Env {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let bundle = generate_ca(&InitOptions::new("Test CA"), OffsetDateTime::now_utc()).unwrap();
    let ca = IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap();
    let prov = k8s_provisioner();
    let profiles: BTreeMap<Profile, ProfileLimits> = Profile::ALL
        .iter()
        .map(|p| (*p, ProfileLimits::default()))
        .collect();
    let state = AppState::new(
        Arc::new(ca),
        store.clone(),
        vec![prov],
        AdminCredential::from_token(ADMIN),
        ApiConfig {
            ca_url: "https://ca.test:8443".into(),
            profiles,
            admin_policy: Policy::default(),
        },
    );
    Env {
        _db: db,
        store,
        router: app(state.clone()),
        state,
    }
}

impl Env {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn issue(&self, bearer: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method("POST")
            .uri("/v1/certificates")
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        self.send(req).await
    }

    async fn count(&self) -> u64 {
        self.store.count_certificates().await.unwrap()
    }

    /// `POST /v1/certificates/renew` over (simulated) mTLS with `cert_pem`.
    async fn renew(&self, cert_pem: &str) -> (StatusCode, Value) {
        let b64: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/certificates/renew")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ClientCertificate {
            der: Arc::from(der),
        });
        self.send(req).await
    }
}

/// A CSR with a fresh P-256 key for `names` (URIs when they have `://`; none: no SAN and an
/// empty subject).
fn csr(names: &[&str]) -> String {
    let key = KeyType::P256.generate().unwrap();
    let (uris, hosts): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| n.contains("://"));
    let mut params =
        rcgen::CertificateParams::new(hosts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    for uri in uris {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn openssl_text(cert_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaf.pem"), cert_pem).unwrap();
    openssl(dir.path(), &["x509", "-in", "leaf.pem", "-noout", "-text"])
}

#[tokio::test]
async fn service_account_tokens_get_their_template_names_on_both_backends() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;

        // RSA-signed token, CSR without names: the certificate gets the template names.
        let token = rsa_token(&claims("prod", "api"));
        let (status, body) = e.issue(&token, json!({"csr": csr(&[])})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        let text = openssl_text(body["certificate"].as_str().unwrap());
        assert!(
            text.contains("URI:spiffe://cluster.local/ns/prod/sa/api"),
            "{name}: {text}"
        );
        assert!(text.contains("DNS:api.prod.svc"), "{name}: {text}");
        assert!(
            text.contains("DNS:api.prod.svc.cluster.local"),
            "{name}: {text}"
        );
        // The default profile is peer: both TLS usages.
        assert!(
            text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{name}: {text}"
        );

        // Kubernetes tokens are reused by the kubelet: the same token works again.
        let (status, body) = e.issue(&token, json!({"csr": csr(&[])})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: reuse: {body}");

        // P-256-signed token; the CSR names one template name and an extra the policy
        // allows; the client profile is allowed too.
        let token = ec_token(&claims("staging", "api"));
        let (status, body) = e
            .issue(
                &token,
                json!({"csr": csr(&["api.staging.svc", "cache.extra.internal"]), "profile": "client"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        let text = openssl_text(body["certificate"].as_str().unwrap());
        assert!(text.contains("DNS:api.staging.svc"), "{name}: {text}");
        assert!(text.contains("DNS:cache.extra.internal"), "{name}: {text}");
        assert!(!text.contains("spiffe://"), "only what was asked: {text}");
        // The provisioner restricts profiles.
        let (status, body) = e
            .issue(&token, json!({"csr": csr(&[]), "profile": "server"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
        assert_eq!(body["type"], "urn:signet:problem:profile-denied");
        assert_eq!(e.count().await, 3, "{name}");

        // The audit names the provisioner and ns/sa, never the token.
        let audit = e.store.list_audit(100).await.unwrap();
        let issued: Vec<_> = audit.iter().filter(|a| a.outcome == "ok").collect();
        assert_eq!(issued.len(), 3, "{name}: {audit:?}");
        assert!(
            issued.iter().any(|a| a.actor == "k8s:k8s:prod/api"),
            "{name}: {audit:?}"
        );
        assert!(
            issued.iter().any(|a| a.actor == "k8s:k8s:staging/api"),
            "{name}: {audit:?}"
        );
        let sig = token.rsplit('.').next().unwrap();
        assert!(
            audit
                .iter()
                .all(|a| !a.detail.contains(sig) && !a.actor.contains(sig)),
            "{name}: a token leaked into the audit"
        );

        // Metrics name the provisioner and the service account.
        let (status, metrics) = e
            .send(
                Request::builder()
                    .uri("/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        assert!(
            metrics.contains(
                r#"signet_kubernetes_certificates_issued_total{provisioner="k8s",namespace="prod",service_account="api"} 2"#
            ),
            "{name}: {metrics}"
        );
    }
}

/// Re-encode a token's payload (the signature no longer matches).
/// A workload's renewal is held to its provisioner as configured now: the template names
/// for its namespace and service account, the allow-lists and the policy. Narrowing them
/// stops renewals that no longer fit.
#[tokio::test]
async fn renewals_follow_the_kubernetes_provisioner_as_configured_now() {
    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        let (status, prod) = e
            .issue(&ec_token(&claims("prod", "api")), json!({"csr": csr(&[])}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {prod}");
        let (status, staging) = e
            .issue(
                &ec_token(&claims("staging", "api")),
                json!({"csr": csr(&["api.staging.svc", "cache.extra.internal"])}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {staging}");
        let prod = prod["certificate"].as_str().unwrap().to_string();
        let staging = staging["certificate"].as_str().unwrap().to_string();

        // Renewal with no token: the names and the requester carry over.
        let (status, renewed) = e.renew(&prod).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {renewed}");
        let rec = e
            .store
            .get_certificate(&sn(renewed["serial_number"].as_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.requester, "k8s:k8s:prod/api", "{name}");
        assert!(
            rec.sans
                .contains(&"uri:spiffe://cluster.local/ns/prod/sa/api".to_string()),
            "{name}: {:?}",
            rec.sans
        );
        let (status, body) = e.renew(&staging).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        let before = e.count().await;

        // The policy no longer allows *.extra.internal: the staging certificate, which has
        // one such name, cannot renew; prod's template names still can.
        e.state
            .replace_provisioners(vec![k8s_provisioner_with(&["prod", "staging"], &[])])
            .unwrap();
        let (status, body) = e.renew(&staging).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("urn:signet:problem:name-denied")
            ),
            "{name}: {body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("cache.extra.internal"),
            "{body}"
        );
        let (status, body) = e.renew(&prod).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");

        // prod is dropped from the namespaces: its workloads cannot renew either.
        e.state
            .replace_provisioners(vec![k8s_provisioner_with(&["staging"], &[])])
            .unwrap();
        let (status, body) = e.renew(&prod).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("urn:signet:problem:service-account-denied")
            ),
            "{name}: {body}"
        );
        assert_eq!(
            e.count().await,
            before + 1,
            "{name}: refusals record nothing"
        );
    }
}

fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = B64.encode(serde_json::to_vec(claims).unwrap());
    parts.join(".")
}

#[tokio::test]
async fn bad_service_account_tokens_are_refused_and_nothing_is_stored_on_both_backends() {
    let good = claims("prod", "api");
    let mut cases: Vec<(&str, String, StatusCode, &str, Option<&str>)> = Vec::new();
    let mut c = good.clone();
    c["exp"] = json!(now() - 120);
    c["iat"] = json!(now() - 900);
    c["nbf"] = json!(now() - 900);
    cases.push((
        "expired",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("expired"),
    ));
    let mut c = good.clone();
    c["iat"] = json!(now() - 2 * 3600);
    c["nbf"] = json!(now() - 2 * 3600);
    c["exp"] = json!(now() + 3600);
    cases.push((
        "older than max_token_age",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("older than"),
    ));
    let mut c = good.clone();
    c["aud"] = json!(["https://kubernetes.default.svc"]);
    cases.push((
        "wrong audience",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("audience"),
    ));
    let mut c = good.clone();
    c["iss"] = json!("https://other-cluster.example");
    cases.push((
        "wrong issuer",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("unknown provisioner"),
    ));
    cases.push((
        "namespace outside the allow-list",
        ec_token(&claims("dev", "api")),
        StatusCode::FORBIDDEN,
        "service-account-denied",
        Some("namespace \"dev\""),
    ));
    cases.push((
        "service account outside the allow-list",
        ec_token(&claims("prod", "db")),
        StatusCode::FORBIDDEN,
        "service-account-denied",
        Some("prod/db"),
    ));
    cases.push((
        "tampered signature",
        with_payload(&rsa_token(&claims("prod", "db")), &claims("prod", "api")),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("signature"),
    ));
    let key = EncodingKey::from_rsa_pem(cluster().rsa_key_pem.as_bytes()).unwrap();
    cases.push((
        "unknown kid",
        jsonwebtoken::encode(&header(Algorithm::RS256, "rotated-away"), &good, &key).unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("rotated-away"),
    ));
    cases.push((
        "no kid",
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &key).unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("kid"),
    ));
    // RFC 7515 section 4.1.11: an extension the server does not understand, marked critical.
    let mut critical = header(Algorithm::RS256, "rsa-kid-1");
    critical.crit = Some(vec!["urn:example:bound-pod".into()]);
    critical
        .extras
        .insert("urn:example:bound-pod", "api-7d9f8b6c5-x2x4z");
    cases.push((
        "unknown critical header extension",
        jsonwebtoken::encode(&critical, &good, &key).unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("critical that this server does not understand: \"urn:example:bound-pod\""),
    ));
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa-kid-1"}"#);
    let payload = B64.encode(serde_json::to_vec(&good).unwrap());
    cases.push((
        "alg none",
        format!("{none_header}.{payload}."),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    ));
    cases.push((
        "HS256 with the public key as secret",
        jsonwebtoken::encode(
            &header(Algorithm::HS256, "rsa-kid-1"),
            &good,
            &EncodingKey::from_secret(cluster().rsa_pub_pem.as_bytes()),
        )
        .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("algorithm"),
    ));
    cases.push((
        "RS256 token under the EC key's kid",
        jsonwebtoken::encode(&header(Algorithm::RS256, "ec-kid-1"), &good, &key).unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("algorithm"),
    ));
    let mut c = good.clone();
    c["sub"] = json!("system:serviceaccount:prod:web");
    cases.push((
        "sub and kubernetes.io disagree",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("sub"),
    ));
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("kubernetes.io");
    c["sub"] = json!("system:serviceaccount:prod:api");
    cases.push((
        "legacy token without kubernetes.io",
        rsa_token(&c),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some("kubernetes.io"),
    ));

    for db in TestDb::all().await {
        let name = db.name();
        let e = env_for(db).await;
        for (what, token, status, slug, detail) in &cases {
            let (got, body) = e.issue(token, json!({"csr": csr(&[])})).await;
            assert_eq!(got, *status, "{name}: {what}: {body}");
            assert_eq!(
                body["type"],
                format!("urn:signet:problem:{slug}"),
                "{name}: {what}: {body}"
            );
            if let Some(d) = detail {
                assert!(
                    body["detail"].as_str().unwrap_or_default().contains(d),
                    "{name}: {what}: {body}"
                );
            }
            assert_eq!(e.count().await, 0, "{name}: {what}: nothing stored");
        }

        // A CSR asking for a name that is neither the workload's nor allowed by policy:
        // refused, and the problem names it.
        let token = rsa_token(&good);
        let (got, body) = e
            .issue(
                &token,
                json!({"csr": csr(&["api.prod.svc", "web.prod.svc", "evil.example.com"])}),
            )
            .await;
        assert_eq!(got, StatusCode::FORBIDDEN, "{name}: {body}");
        assert_eq!(body["type"], "urn:signet:problem:name-denied");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("dns:web.prod.svc") && detail.contains("dns:evil.example.com"),
            "{name}: {detail}"
        );
        assert!(!detail.contains("dns:api.prod.svc"), "{name}: {detail}");
        // Another workload's SPIFFE ID is foreign too.
        let (got, body) = e
            .issue(
                &token,
                json!({"csr": csr(&["api.prod.svc", "spiffe://cluster.local/ns/prod/sa/web"])}),
            )
            .await;
        assert_eq!(got, StatusCode::FORBIDDEN, "{name}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("uri:spiffe://cluster.local/ns/prod/sa/web"),
            "{name}: {body}"
        );
        assert_eq!(e.count().await, 0, "{name}: nothing stored");

        // Refusals after authentication are audited under the workload, not the token.
        let audit = e.store.list_audit(200).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.actor == "k8s:k8s:prod/db" && a.outcome == "refused"),
            "{name}: {audit:?}"
        );
        let sig = token.rsplit('.').next().unwrap();
        assert!(audit.iter().all(|a| !a.detail.contains(sig)), "{name}");
    }
}

#[test]
fn misconfigured_kubernetes_provisioners_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = json!({
        "name": "k8s", "type": "kubernetes", "issuer": ISSUER, "audience": AUDIENCE,
        "jwks": cluster().jwks,
    });
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let load = |v: Value| {
        let cfg: ProvisionerConfig = serde_json::from_value(v).unwrap();
        Provisioner::from_config(&cfg, dir.path())
    };
    load(base.clone()).unwrap();
    for (what, cfg) in [
        ("no issuer", without("issuer")),
        ("no audience", without("audience")),
        ("no JWKS", without("jwks")),
        ("both JWKS forms", with("jwks_file", json!("x.json"))),
        ("a token setting", with("public_key_file", json!("x.pub"))),
        (
            "symmetric key",
            with(
                "jwks",
                json!(r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#),
            ),
        ),
        ("bad namespace", with("namespaces", json!(["Prod"]))),
        (
            "bad service account",
            with("service_accounts", json!(["api"])),
        ),
        ("bad template", with("names", json!(["{pod}.svc"]))),
        ("bad trust domain", with("trust_domain", json!("a b"))),
    ] {
        assert!(load(cfg).is_err(), "{what} should be refused");
    }
    // Kubernetes settings on a token provisioner are refused too.
    let token: ProvisionerConfig = serde_json::from_value(json!({
        "name": "t", "type": "token", "public_key_file": "x.pub", "audience": "signet"
    }))
    .unwrap();
    assert!(Provisioner::from_config(&token, dir.path()).is_err());
}

#[tokio::test]
async fn provisioners_are_replaced_whole_or_not_at_all() {
    let e = env_for(TestDb::sqlite().await).await;
    let token = rsa_token(&claims("prod", "api"));
    // Two provisioners selected by the same issuer cannot serve together: nothing changes.
    assert!(
        e.state
            .replace_provisioners(vec![k8s_provisioner(), k8s_provisioner()])
            .is_err()
    );
    let (status, body) = e.issue(&token, json!({"csr": csr(&[])})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // An empty set: the cluster's tokens are refused at once.
    e.state.replace_provisioners(vec![]).unwrap();
    let (status, body) = e.issue(&token, json!({"csr": csr(&[])})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    e.state
        .replace_provisioners(vec![k8s_provisioner()])
        .unwrap();
    let (status, body) = e.issue(&token, json!({"csr": csr(&[])})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(e.state.provisioner_names().len(), 1);
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> signet_ca::Serial {
    signet_ca::Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}
