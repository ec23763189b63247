//! The responder's router driven in-process, on SQLite and PostgreSQL: OCSP over POST and
//! GET (good, revoked, unknown, unauthorized, malformed, tryLater), nonces, RFC 5019 caching
//! headers, revocation flipping a cached answer, CRL and CA certificate downloads with
//! ETags, and the database hand-off of the signer certificate.
//!
//! Requests are built with x509-ocsp and responses parsed with it; every signed response's
//! signature is checked with ring against the signer certificate it carries, and that
//! certificate against the CA. (`crates/signet/tests/responder.rs` checks the same against
//! the openssl CLI and a real `signet serve`.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use der::{Decode, Encode};
use http_body_util::BodyExt;
use signet_ca::{
    Csr, InitOptions, IssuanceUrls, IssuedCertificate, IssuingCa, OcspSignerCertificate,
    OffsetDateTime, Policy, Profile, ProfileLimits, RevocationReason, RevokedEntry, Serial,
    generate_ca,
};
use signet_responder::{
    CertifySigner, IssuerCertificate, Responder, ResponderConfig, ResponderError, StoreCertifier,
    app,
};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, NewCertificate, NewCrl, Store};
use signet_testkit::TestDb;
use tower::ServiceExt;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};

fn new_ca() -> Arc<IssuingCa> {
    let bundle = generate_ca(
        &InitOptions::new("Responder Test"),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    Arc::new(
        IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls::default(),
        )
        .unwrap(),
    )
}

fn audit(action: AuditAction, serial: &Serial) -> AuditEntry {
    AuditEntry {
        actor: "test".into(),
        action,
        serial: Some(serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

/// Signs signer certificates directly, as `signet serve` does, recording them first.
struct Direct {
    ca: Arc<IssuingCa>,
    store: Store,
}

fn signer_record(ca: &IssuingCa, c: &OcspSignerCertificate) -> NewCertificate {
    NewCertificate {
        serial: c.serial.clone(),
        issuer: ca.subject().to_string(),
        issuer_key_id: hex::encode(ca.key_id()),
        subject: c.subject.clone(),
        sans: vec![],
        profile: OcspSignerCertificate::PROFILE.into(),
        not_before: c.not_before,
        not_after: c.not_after,
        requester: "signet-responder".into(),
        der: c.der.clone(),
        crl_shard: None,
    }
}

impl CertifySigner for Direct {
    async fn certify(&self, spki_der: &[u8]) -> Result<Vec<u8>, ResponderError> {
        let c = self
            .ca
            .issue_ocsp_signer(
                spki_der,
                Duration::from_secs(86_400),
                OffsetDateTime::now_utc(),
            )
            .map_err(|e| ResponderError::Certifier(Box::new(e)))?;
        self.store
            .insert_certificate(
                &signer_record(&self.ca, &c),
                &audit(AuditAction::IssueOcspSigner, &c.serial),
            )
            .await?;
        Ok(c.der)
    }
}

struct Fixture {
    ca: Arc<IssuingCa>,
    store: Store,
    responder: Responder,
    router: Router,
    db: TestDb,
}

impl Fixture {
    async fn new(db: TestDb) -> Fixture {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let ca = new_ca();
        let responder = Responder::new(
            store.clone(),
            IssuerCertificate::from_der(ca.cert_der()).unwrap(),
            ResponderConfig::default(),
        )
        .unwrap();
        let router = app(responder.clone());
        Fixture {
            ca,
            store,
            responder,
            router,
            db,
        }
    }

    async fn install_signer(&self) {
        self.responder
            .rotate_signer(&Direct {
                ca: self.ca.clone(),
                store: self.store.clone(),
            })
            .await
            .unwrap();
    }

    /// A server certificate issued by the CA and recorded in the store.
    async fn leaf(&self, host: &str) -> IssuedCertificate {
        let cert = self.unrecorded_leaf(host);
        let record = NewCertificate {
            serial: cert.serial.clone(),
            issuer: self.ca.subject().to_string(),
            issuer_key_id: hex::encode(self.ca.key_id()),
            subject: cert.subject.clone(),
            sans: vec![format!("dns:{host}")],
            profile: "server".into(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            requester: "test".into(),
            der: cert.der.clone(),
            crl_shard: None,
        };
        self.store
            .insert_certificate(&record, &audit(AuditAction::Issue, &record.serial))
            .await
            .unwrap();
        cert
    }

    /// Signed by the CA but never recorded: the responder must not call it good.
    fn unrecorded_leaf(&self, host: &str) -> IssuedCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let csr = params.serialize_request(&key).unwrap();
        let csr = Csr::from_pem_or_der(csr.der()).unwrap();
        self.ca
            .issue(
                &csr,
                Profile::Server,
                &ProfileLimits::default(),
                None,
                &Policy::allow_all(),
                OffsetDateTime::now_utc(),
            )
            .unwrap()
    }

    async fn revoke(&self, serial: &Serial, reason: RevocationReason) {
        self.store
            .revoke(
                serial,
                OffsetDateTime::now_utc(),
                reason,
                &audit(AuditAction::Revoke, serial),
            )
            .await
            .unwrap();
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn post(&self, body: Vec<u8>) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.call(
            Request::post("/ocsp")
                .header(header::CONTENT_TYPE, "application/ocsp-request")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.call(req.body(Body::empty()).unwrap()).await
    }

    async fn get_ocsp(&self, der: &[u8]) -> (StatusCode, HeaderMap, Vec<u8>) {
        // RFC 6960 appendix A.1: base64, then URL-encoded.
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let encoded = b64
            .replace('%', "%25")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        self.get(&format!("/ocsp/{encoded}"), &[]).await
    }

    /// The CertID of `serial` under this CA, with SHA-1 or SHA-256.
    fn cert_id(&self, serial: &Serial, sha256: bool) -> x509_ocsp::CertId {
        let ca = x509_cert::Certificate::from_der(self.ca.cert_der()).unwrap();
        let name = ca.tbs_certificate.subject.to_der().unwrap();
        let key = ca
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        cert_id_with(serial, &name, key, sha256)
    }
}

fn cert_id_with(serial: &Serial, name: &[u8], key: &[u8], sha256: bool) -> x509_ocsp::CertId {
    let (alg, oid) = if sha256 {
        (&ring::digest::SHA256, "2.16.840.1.101.3.4.2.1")
    } else {
        (&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, "1.3.14.3.2.26")
    };
    let h = |data: &[u8]| {
        der::asn1::OctetString::new(ring::digest::digest(alg, data).as_ref().to_vec()).unwrap()
    };
    x509_ocsp::CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: oid.parse().unwrap(),
            parameters: Some(der::Any::encode_from(&der::asn1::Null).unwrap()),
        },
        issuer_name_hash: h(name),
        issuer_key_hash: h(key),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial.as_bytes()).unwrap(),
    }
}

fn request(ids: Vec<x509_ocsp::CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![x509_cert::ext::Extension {
            extn_id: "1.3.6.1.5.5.7.48.1.2".parse().unwrap(),
            critical: false,
            extn_value: der::asn1::OctetString::new(
                der::asn1::OctetString::new(n.to_vec())
                    .unwrap()
                    .to_der()
                    .unwrap(),
            )
            .unwrap(),
        }]
    });
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| x509_ocsp::Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

/// What a response says, after checking its signature.
#[derive(Debug)]
struct Answer {
    statuses: Vec<CertStatus>,
    cert_ids: Vec<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
}

/// The OCSPResponseStatus, and for a successful response the verified content.
fn parse(ca: &IssuingCa, der: &[u8]) -> (OcspResponseStatus, Option<Answer>) {
    let resp = OcspResponse::from_der(der).unwrap();
    let Some(bytes) = resp.response_bytes else {
        return (resp.response_status, None);
    };
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    // The signer certificate: delegated, issued by our CA, and the key that signed.
    let signer = &basic.certs.as_ref().unwrap()[0];
    assert_eq!(signer.tbs_certificate.issuer.to_der().unwrap(), {
        let ca = x509_cert::Certificate::from_der(ca.cert_der()).unwrap();
        ca.tbs_certificate.subject.to_der().unwrap()
    });
    let key = signer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let tbs = basic.tbs_response_data.to_der().unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(&tbs, basic.signature.raw_bytes())
        .expect("the response signature verifies");
    let data = &basic.tbs_response_data;
    let t = |g: &x509_ocsp::OcspGeneralizedTime| {
        OffsetDateTime::from_unix_timestamp(g.0.to_unix_duration().as_secs() as i64).unwrap()
    };
    let first = &data.responses[0];
    let answer = Answer {
        statuses: data.responses.iter().map(|r| r.cert_status).collect(),
        cert_ids: data
            .responses
            .iter()
            .map(|r| r.cert_id.to_der().unwrap())
            .collect(),
        nonce: data.nonce().map(|n| n.0.as_bytes().to_vec()),
        this_update: t(&first.this_update),
        next_update: t(first.next_update.as_ref().unwrap()),
    };
    (resp.response_status, Some(answer))
}

fn ok(ca: &IssuingCa, http: &(StatusCode, HeaderMap, Vec<u8>)) -> Answer {
    assert_eq!(http.0, StatusCode::OK);
    assert_eq!(http.1[header::CONTENT_TYPE], "application/ocsp-response");
    let (status, answer) = parse(ca, &http.2);
    assert_eq!(status, OcspResponseStatus::Successful);
    answer.unwrap()
}

fn error_status(http: &(StatusCode, HeaderMap, Vec<u8>)) -> OcspResponseStatus {
    assert_eq!(http.0, StatusCode::OK, "errors are HTTP 200");
    assert_eq!(http.1[header::CONTENT_TYPE], "application/ocsp-response");
    assert_eq!(http.1[header::CACHE_CONTROL], "no-store");
    let resp = OcspResponse::from_der(&http.2).unwrap();
    assert!(resp.response_bytes.is_none());
    resp.response_status
}

fn is_good(s: &CertStatus) -> bool {
    matches!(s, CertStatus::Good(_))
}

#[tokio::test]
async fn ocsp_answers_good_revoked_unknown_and_errors() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        let good = f.leaf("good.internal").await;
        let req = request(vec![f.cert_id(&good.serial, false)], None);

        // No signer yet: tryLater, and not ready.
        assert_eq!(
            error_status(&f.post(req.clone()).await),
            OcspResponseStatus::TryLater
        );
        assert_eq!(
            f.get("/readyz", &[]).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        f.install_signer().await;
        assert_eq!(f.get("/readyz", &[]).await.0, StatusCode::OK, "[{name}]");

        // Good, over POST with SHA-1 and GET with SHA-256; the CertID is echoed.
        let a = ok(&f.ca, &f.post(req.clone()).await);
        assert!(is_good(&a.statuses[0]), "[{name}] {a:?}");
        assert_eq!(
            a.cert_ids[0],
            f.cert_id(&good.serial, false).to_der().unwrap()
        );
        assert_eq!(a.nonce, None);
        assert_eq!(a.next_update - a.this_update, time::Duration::hours(4));
        let sha256 = f.cert_id(&good.serial, true);
        let a = ok(
            &f.ca,
            &f.get_ocsp(&request(vec![sha256.clone()], None)).await,
        );
        assert!(is_good(&a.statuses[0]), "[{name}]");
        assert_eq!(a.cert_ids[0], sha256.to_der().unwrap());

        // Revoked, with time and reason.
        let revoked = f.leaf("revoked.internal").await;
        f.revoke(&revoked.serial, RevocationReason::KeyCompromise)
            .await;
        let a = ok(
            &f.ca,
            &f.post(request(vec![f.cert_id(&revoked.serial, false)], None))
                .await,
        );
        match &a.statuses[0] {
            CertStatus::Revoked(info) => assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
                "[{name}]"
            ),
            other => panic!("[{name}] expected revoked, got {other:?}"),
        }

        // Never recorded: unknown, over both methods.
        let stranger = f.unrecorded_leaf("stranger.internal");
        let req_unknown = request(vec![f.cert_id(&stranger.serial, false)], None);
        for http in [
            f.post(req_unknown.clone()).await,
            f.get_ocsp(&req_unknown).await,
        ] {
            let a = ok(&f.ca, &http);
            assert!(matches!(a.statuses[0], CertStatus::Unknown(_)), "[{name}]");
        }

        // Several CertIDs: answered in order.
        let a = ok(
            &f.ca,
            &f.post(request(
                vec![
                    f.cert_id(&good.serial, false),
                    f.cert_id(&revoked.serial, true),
                    f.cert_id(&stranger.serial, false),
                ],
                None,
            ))
            .await,
        );
        assert!(is_good(&a.statuses[0]));
        assert!(matches!(a.statuses[1], CertStatus::Revoked(_)));
        assert!(matches!(a.statuses[2], CertStatus::Unknown(_)), "[{name}]");

        // Another issuer: unauthorized (also when mixed with ours).
        let other_ca = new_ca();
        let other = x509_cert::Certificate::from_der(other_ca.cert_der()).unwrap();
        let foreign = cert_id_with(
            &good.serial,
            &other.tbs_certificate.subject.to_der().unwrap(),
            other
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
            false,
        );
        for req in [
            request(vec![foreign.clone()], None),
            request(vec![f.cert_id(&good.serial, false), foreign], None),
        ] {
            assert_eq!(
                error_status(&f.post(req.clone()).await),
                OcspResponseStatus::Unauthorized
            );
            assert_eq!(
                error_status(&f.get_ocsp(&req).await),
                OcspResponseStatus::Unauthorized
            );
        }

        // Garbage of every kind: malformedRequest, HTTP 200, never a 500.
        let malformed = OcspResponseStatus::MalformedRequest;
        assert_eq!(error_status(&f.post(b"hello".to_vec()).await), malformed);
        assert_eq!(error_status(&f.post(vec![]).await), malformed);
        assert_eq!(error_status(&f.post(vec![0x30; 20_000]).await), malformed);
        let mut truncated = req.clone();
        truncated.pop();
        assert_eq!(error_status(&f.post(truncated).await), malformed);
        assert_eq!(
            error_status(&f.get("/ocsp/not%20base64!", &[]).await),
            malformed
        );
        assert_eq!(error_status(&f.get("/ocsp/%FF%FE", &[]).await), malformed);
        assert_eq!(error_status(&f.get("/ocsp/aGVsbG8=", &[]).await), malformed);
        // A nonce outside RFC 8954's 1 to 32 octets.
        let long_nonce = request(vec![f.cert_id(&good.serial, false)], Some(&[7; 33]));
        assert_eq!(
            error_status(&f.post(long_nonce).await),
            malformed,
            "[{name}]"
        );
    }
}

/// Revocation reasons outside RFC 5280's table, written into the database directly (7,
/// unused; 11, past the end; 300 and -1, not even a byte): the certificate is still
/// answered revoked, with no reason (reason unknown), never good and never an error; a
/// normal keyCompromise next to them keeps its reason. Checked with x509-ocsp (signature
/// checked with ring) and with openssl.
#[tokio::test]
async fn odd_stored_reasons_answer_revoked_without_a_reason() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        f.install_signer().await;
        let known = f.leaf("known.internal").await;
        f.revoke(&known.serial, RevocationReason::KeyCompromise)
            .await;
        let mut odd = Vec::new();
        for (i, code) in [7, 11, 300, -1].into_iter().enumerate() {
            let cert = f.leaf(&format!("odd{i}.internal")).await;
            signet_testkit::execute(
                f.db.url(),
                &format!(
                    "UPDATE certificates SET revoked_at = {}, revocation_reason = {code} \
                     WHERE serial = '{}'",
                    OffsetDateTime::now_utc().unix_timestamp(),
                    cert.serial.to_hex()
                ),
            )
            .await;
            odd.push(cert.serial);
        }
        let ids: Vec<_> = std::iter::once(&known.serial)
            .chain(&odd)
            .map(|s| f.cert_id(s, false))
            .collect();
        let http = f.post(request(ids, None)).await;
        let a = ok(&f.ca, &http);
        assert_eq!(a.statuses.len(), 5, "[{name}]");
        match &a.statuses[0] {
            CertStatus::Revoked(info) => assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise),
                "[{name}]"
            ),
            other => panic!("[{name}] expected revoked, got {other:?}"),
        }
        for (serial, status) in odd.iter().zip(&a.statuses[1..]) {
            match status {
                CertStatus::Revoked(info) => {
                    assert_eq!(info.revocation_reason, None, "[{name}] {serial:?}");
                }
                other => panic!("[{name}] {serial:?}: expected revoked, got {other:?}"),
            }
        }

        // openssl reads the same: revoked, a reason only for the keyCompromise one.
        let dir = tempfile::tempdir().unwrap();
        let (resp, ca) = (dir.path().join("resp.der"), dir.path().join("ca.pem"));
        std::fs::write(&resp, &http.2).unwrap();
        std::fs::write(&ca, f.ca.chain_pem().concat()).unwrap();
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["ocsp", "-noverify", "-respin"])
            .arg(&resp)
            .arg("-issuer")
            .arg(&ca);
        for serial in std::iter::once(&known.serial).chain(&odd) {
            cmd.arg("-serial").arg(format!("0x{}", serial.to_hex()));
        }
        let out = cmd.output().expect("openssl (apt-get install -y openssl)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "[{name}] {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.matches(": revoked").count(), 5, "[{name}]\n{text}");
        assert_eq!(text.matches("Reason:").count(), 1, "[{name}]\n{text}");
        assert!(text.contains("Reason: keyCompromise"), "[{name}]\n{text}");
    }
}

#[tokio::test]
async fn nonces_are_echoed_and_never_cached() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        f.install_signer().await;
        let cert = f.leaf("nonce.internal").await;
        let nonce = [0x5a; 16];
        let req = request(vec![f.cert_id(&cert.serial, false)], Some(&nonce));
        for http in [f.post(req.clone()).await, f.get_ocsp(&req).await] {
            assert_eq!(http.1[header::CACHE_CONTROL], "no-store");
            let a = ok(&f.ca, &http);
            assert_eq!(a.nonce.as_deref(), Some(&nonce[..]), "[{}]", f.db.name());
            assert!(is_good(&a.statuses[0]));
        }
        // Signed per request: two answers to one nonce differ (ECDSA is randomised).
        assert_ne!(f.post(req.clone()).await.2, f.post(req).await.2);
        assert_eq!(f.responder.cached_responses(), 0, "[{}]", f.db.name());
    }
}

#[tokio::test]
async fn nonce_less_gets_carry_rfc5019_caching_headers() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        f.install_signer().await;
        let cert = f.leaf("cached.internal").await;
        let req = request(vec![f.cert_id(&cert.serial, false)], None);
        let first = f.get_ocsp(&req).await;
        let a = ok(&f.ca, &first);
        let h = &first.1;
        let cc = h[header::CACHE_CONTROL].to_str().unwrap();
        assert!(
            cc.contains("public") && cc.contains("no-transform"),
            "[{name}] {cc}"
        );
        let max_age: i64 = cc
            .split(',')
            .find_map(|p| p.trim().strip_prefix("max-age="))
            .unwrap()
            .parse()
            .unwrap();
        let until_next = (a.next_update - OffsetDateTime::now_utc()).whole_seconds();
        assert!(
            max_age > 0 && max_age <= until_next,
            "[{name}] max-age {max_age}"
        );
        assert!(
            max_age <= 2 * 3600,
            "[{name}] re-signed at half-life: {max_age}"
        );
        for name in [header::LAST_MODIFIED, header::EXPIRES, header::ETAG] {
            assert!(h.contains_key(&name), "{name} missing: {h:?}");
        }
        assert!(h[header::EXPIRES].to_str().unwrap().ends_with(" GMT"));

        // Served from the cache: the same bytes (a new signature would differ).
        let second = f.get_ocsp(&req).await;
        assert_eq!(second.2, first.2, "[{name}]");
        assert_eq!(
            f.post(req.clone()).await.2,
            first.2,
            "[{name}] POST shares the cache"
        );
        assert_eq!(f.responder.cached_responses(), 1);

        // Conditional GET.
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&req);
        let path = format!("/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F"));
        let (status, headers, body) = f.get(&path, &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "[{name}]");
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag.as_str());
        // Unencoded base64 (with '/' and '+') is read as well.
        assert_eq!(
            f.get(&format!("/ocsp/{b64}"), &[]).await.2,
            first.2,
            "[{name}]"
        );
    }
}

#[tokio::test]
async fn a_revocation_flips_the_cached_answer() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        f.install_signer().await;
        tokio::spawn(f.responder.clone().watch_changes());

        // In this process: the revocation hook drops the cached answer at once.
        let a = f.leaf("a.internal").await;
        let req_a = request(vec![f.cert_id(&a.serial, false)], None);
        assert!(is_good(&ok(&f.ca, &f.get_ocsp(&req_a).await).statuses[0]));
        f.revoke(&a.serial, RevocationReason::Superseded).await;
        f.responder.certificate_revoked(&a.serial);
        let after = ok(&f.ca, &f.get_ocsp(&req_a).await);
        assert!(
            matches!(after.statuses[0], CertStatus::Revoked(_)),
            "[{name}]"
        );

        // In another process (a second pool, no hook): the watcher notices within a second.
        let b = f.leaf("b.internal").await;
        let req_b = request(vec![f.cert_id(&b.serial, false)], None);
        assert!(is_good(&ok(&f.ca, &f.get_ocsp(&req_b).await).statuses[0]));
        let other = Store::connect(f.db.url()).await.unwrap();
        other
            .revoke(
                &b.serial,
                OffsetDateTime::now_utc(),
                RevocationReason::KeyCompromise,
                &audit(AuditAction::Revoke, &b.serial),
            )
            .await
            .unwrap();
        let revoked_at = std::time::Instant::now();
        loop {
            let a = ok(&f.ca, &f.get_ocsp(&req_b).await);
            if matches!(a.statuses[0], CertStatus::Revoked(_)) {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "[{name}] still good a second after the revocation"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("[{name}] revoked answer after {:?}", revoked_at.elapsed());
    }
}

#[tokio::test]
async fn crls_and_the_ca_certificate_are_served_with_etags() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        assert_eq!(
            f.get("/crl/issuing.crl", &[]).await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "[{name}] nothing published yet"
        );
        let cert = f.leaf("crl.internal").await;
        f.revoke(&cert.serial, RevocationReason::KeyCompromise)
            .await;

        // Publish as `signet serve` does.
        let key_id = hex::encode(f.ca.key_id());
        let now = OffsetDateTime::now_utc();
        let entries = f
            .store
            .revoked_for_crl(&key_id, now, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| RevokedEntry {
                serial: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason.map(RevocationReason::code),
            });
        let number = f.store.next_crl_number(&key_id).await.unwrap();
        let der =
            f.ca.crl_signer()
                .unwrap()
                .sign_crl(number, now, now + Duration::from_secs(86_400), entries)
                .unwrap();
        f.store
            .store_crl(&NewCrl {
                issuer_key_id: key_id.clone(),
                number,
                this_update: now,
                next_update: now + Duration::from_secs(86_400),
                der: der.clone(),
            })
            .await
            .unwrap();

        let (status, h, body) = f.get("/crl/issuing.crl", &[]).await;
        assert_eq!(status, StatusCode::OK, "[{name}]");
        assert_eq!(h[header::CONTENT_TYPE], "application/pkix-crl");
        assert_eq!(body, der, "[{name}]");
        let crl = x509_cert::crl::CertificateList::from_der(&body).unwrap();
        let listed = crl.tbs_cert_list.revoked_certificates.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].serial_number.as_bytes(), cert.serial.as_bytes());
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        assert!(h.contains_key(header::LAST_MODIFIED));
        let cc = h[header::CACHE_CONTROL].to_str().unwrap();
        assert!(cc.starts_with("max-age="), "{cc}");
        let (status, _, body) = f.get("/crl/issuing.crl", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "[{name}]");
        assert!(body.is_empty());

        let (status, h, pem) = f.get("/crl/issuing.pem", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(h[header::ETAG], etag.as_str());
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"), "{pem}");
        assert_eq!(f.get("/crl/other.crl", &[]).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            f.get("/crl/issuing.txt", &[]).await.0,
            StatusCode::NOT_FOUND
        );

        // A newer CRL replaces it, and the old ETag no longer matches.
        let n2 = f.store.next_crl_number(&key_id).await.unwrap();
        let der2 =
            f.ca.crl_signer()
                .unwrap()
                .sign_crl(n2, now, now + Duration::from_secs(86_400), [])
                .unwrap();
        f.store
            .store_crl(&NewCrl {
                issuer_key_id: key_id.clone(),
                number: n2,
                this_update: now,
                next_update: now + Duration::from_secs(86_400),
                der: der2.clone(),
            })
            .await
            .unwrap();
        assert_eq!(f.responder.refresh_crl().await.unwrap(), Some(n2));
        let (status, _, body) = f.get("/crl/issuing.crl", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::OK, "[{name}]");
        assert_eq!(body, der2);

        // AIA caIssuers: the issuing CA certificate, DER.
        let (status, h, body) = f.get("/ca/issuing.crt", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/pkix-cert");
        assert_eq!(body, f.ca.cert_der(), "[{name}]");
        assert_eq!(f.get("/ca/root.crt", &[]).await.0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_standalone_responder_gets_its_signer_through_the_database() {
    for db in TestDb::all().await {
        let f = Fixture::new(db).await;
        let name = f.db.name();
        let key_id = hex::encode(f.ca.key_id());
        // What every `signet serve` runs: answer pending requests for its CA.
        let (ca, store) = (f.ca.clone(), f.store.clone());
        let fulfiller = tokio::spawn(async move {
            loop {
                let since = OffsetDateTime::now_utc() - Duration::from_secs(300);
                for req in store
                    .pending_ocsp_signer_requests(&hex::encode(ca.key_id()), since, 10)
                    .await
                    .unwrap()
                {
                    let c = ca
                        .issue_ocsp_signer(
                            &req.spki,
                            Duration::from_secs(3600),
                            OffsetDateTime::now_utc(),
                        )
                        .unwrap();
                    store
                        .fulfil_ocsp_signer_request(
                            req.id,
                            &signer_record(&ca, &c),
                            &audit(AuditAction::IssueOcspSigner, &c.serial),
                        )
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut certifier = StoreCertifier::new(f.store.clone(), &key_id);
        certifier.poll = Duration::from_millis(20);
        f.responder.rotate_signer(&certifier).await.unwrap();
        fulfiller.abort();
        let cert = f.leaf("standalone.internal").await;
        let a = ok(
            &f.ca,
            &f.post(request(vec![f.cert_id(&cert.serial, false)], None))
                .await,
        );
        assert!(is_good(&a.statuses[0]), "[{name}]");
        // The signer certificate was recorded like any other.
        let signers = f
            .store
            .list_certificates(&signet_store::CertificateFilter {
                profile: Some("ocsp-signer".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(signers.items.len(), 1, "[{name}]");
        assert_eq!(signers.items[0].requester, "signet-responder");

        // Nobody answers: the certifier gives up with a clear error.
        let mut lonely = StoreCertifier::new(f.store.clone(), &key_id);
        lonely.timeout = Duration::from_millis(200);
        lonely.poll = Duration::from_millis(20);
        let err = f.responder.rotate_signer(&lonely).await.unwrap_err();
        assert!(err.to_string().contains("signet serve"), "{err}");
    }
}

#[tokio::test]
async fn a_signer_certificate_from_another_ca_is_refused() {
    let f = Fixture::new(TestDb::sqlite().await).await;
    let other = new_ca();
    let err = f
        .responder
        .rotate_signer(&Direct {
            ca: other,
            store: f.store.clone(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not issued by"), "{err}");
    assert!(!f.responder.is_ready());
}

/// The value of the one sample of `series` (name and labels exactly) in OpenMetrics `text`.
fn sample(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// `/metrics` reports the deadlines an operator alerts on, as they are when scraped: the
/// CA certificate's notAfter at once; the CRL's nextUpdate and number, and the signer's
/// notAfter, once there are some.
#[tokio::test]
async fn metrics_report_crl_signer_and_ca_deadlines() {
    let f = Fixture::new(TestDb::sqlite().await).await;
    let ca_not_after = signet_ca::CertificateInfo::from_der(f.ca.cert_der())
        .unwrap()
        .not_after
        .unix_timestamp();
    let scrape = || async {
        let (status, h, body) = f.get("/metrics", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
            "{h:?}"
        );
        let text = String::from_utf8(body).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        text
    };

    let before = scrape().await;
    assert_eq!(
        sample(
            &before,
            r#"signet_responder_ca_not_after_timestamp_seconds{ca="issuing"}"#
        ),
        Some(ca_not_after),
        "{before}"
    );
    assert_eq!(
        sample(&before, "signet_responder_ocsp_cached_responses"),
        Some(0)
    );
    assert!(
        !before.contains("crl_next_update_timestamp_seconds{"),
        "{before}"
    );
    assert!(
        !before.contains("ocsp_signer_not_after_timestamp_seconds "),
        "{before}"
    );

    f.install_signer().await;
    let key_id = hex::encode(f.ca.key_id());
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let next_update = now + Duration::from_secs(7 * 86_400);
    let number = f.store.next_crl_number(&key_id).await.unwrap();
    let der =
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(number, now, next_update, std::iter::empty())
            .unwrap();
    f.store
        .store_crl(&NewCrl {
            issuer_key_id: key_id,
            number,
            this_update: now,
            next_update,
            der,
        })
        .await
        .unwrap();
    assert_eq!(f.responder.refresh_crl().await.unwrap(), Some(number));
    let leaf = f.leaf("metrics.internal").await;
    let (status, _, _) = f
        .post(request(vec![f.cert_id(&leaf.serial, false)], None))
        .await;
    assert_eq!(status, StatusCode::OK);

    let after = scrape().await;
    assert_eq!(
        sample(
            &after,
            r#"signet_responder_crl_next_update_timestamp_seconds{crl="issuing"}"#
        ),
        Some(next_update.unix_timestamp()),
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"signet_responder_crl_number{crl="issuing"}"#),
        Some(i64::try_from(number).unwrap()),
        "{after}"
    );
    assert!(
        !after.contains(r#"{crl="root"}"#),
        "no root configured: {after}"
    );
    let signer = sample(
        &after,
        "signet_responder_ocsp_signer_not_after_timestamp_seconds",
    )
    .expect("a signer is installed");
    let lifetime = signet_ca::OCSP_SIGNER_MAX_LIFETIME.as_secs() as i64;
    assert!(
        signer > now.unix_timestamp() && signer <= now.unix_timestamp() + lifetime + 60,
        "{after}"
    );
    assert_eq!(
        sample(&after, "signet_responder_ocsp_cached_responses"),
        Some(1),
        "{after}"
    );
}

/// `Responder::ocsp_response` (the operator console's in-process lookup) answers exactly
/// what `POST /ocsp` answers: the same error statuses before a signer and for what does not
/// parse or is too long, and the same signed bytes, revoked included.
#[tokio::test]
async fn the_in_process_answer_is_the_post_answer() {
    let f = Fixture::new(TestDb::sqlite().await).await;
    let leaf = f.leaf("console.internal").await;
    let req = request(vec![f.cert_id(&leaf.serial, false)], None);
    let direct = f.responder.ocsp_response(&req).await;
    assert_eq!(direct.as_ref(), f.post(req.clone()).await.2.as_slice());
    assert_eq!(parse(&f.ca, &direct).0, OcspResponseStatus::TryLater);
    let garbage = f.responder.ocsp_response(b"not an OCSP request").await;
    assert_eq!(
        parse(&f.ca, &garbage).0,
        OcspResponseStatus::MalformedRequest
    );
    let long = vec![0x30; signet_ca::MAX_OCSP_REQUEST_LEN + 1];
    let too_long = f.responder.ocsp_response(&long).await;
    assert_eq!(too_long.as_ref(), f.post(long).await.2.as_slice());
    assert_eq!(
        parse(&f.ca, &too_long).0,
        OcspResponseStatus::MalformedRequest
    );

    f.install_signer().await;
    let direct = f.responder.ocsp_response(&req).await;
    let (status, answer) = parse(&f.ca, &direct);
    assert_eq!(status, OcspResponseStatus::Successful);
    assert!(is_good(&answer.unwrap().statuses[0]));
    assert_eq!(direct.as_ref(), f.post(req.clone()).await.2.as_slice());

    f.revoke(&leaf.serial, RevocationReason::KeyCompromise)
        .await;
    f.responder.certificate_revoked(&leaf.serial);
    let direct = f.responder.ocsp_response(&req).await;
    let over_http = f.post(req.clone()).await.2;
    assert_eq!(direct.as_ref(), over_http.as_slice());
    let (_, a) = parse(&f.ca, &over_http);
    let a = a.unwrap();
    assert!(matches!(a.statuses[0], CertStatus::Revoked(_)), "{a:?}");
}
