//! Revocation checked by an independent implementation: OCSP requests made by `openssl ocsp`,
//! responses and CRLs verified by `openssl ocsp`, `openssl crl` and `openssl verify`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use der::{Decode, Encode};
use rcgen::PublicKeyData;
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, Ed25519KeyPair};
use signet_ca::{
    CaError, CertIdHash, CertStatusKind, Csr, InitOptions, IssuanceUrls, IssuedCertificate,
    IssuingCa, KeyType, OCSP_SIGNER_MAX_LIFETIME, OcspErrorStatus, OcspIssuerIds, OcspSigner,
    OcspSignerCertificate, OffsetDateTime, PkixError, Policy, Profile, ProfileLimits, RevokedEntry,
    Serial, build_response, error_response, generate_ca, parse_ocsp_request,
};

struct Fixture {
    dir: tempfile::TempDir,
    ca: IssuingCa,
    root: PathBuf,
    issuing: PathBuf,
    /// Root and issuing CA in one file, for `-CAfile`.
    chain: PathBuf,
}

impl Fixture {
    fn new(key_type: KeyType) -> Self {
        let mut opts = InitOptions::new("Acme Internal CA");
        opts.key_type = key_type;
        let bundle = generate_ca(&opts, OffsetDateTime::now_utc()).unwrap();
        let ca = IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls {
                ocsp: Some("http://ocsp.test/ocsp".into()),
                ca_issuers: None,
                crl: Some("http://ocsp.test/crl".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.pem");
        let issuing = dir.path().join("issuing.pem");
        let chain = dir.path().join("chain.pem");
        std::fs::write(&root, &bundle.root_cert_pem).unwrap();
        std::fs::write(&issuing, &bundle.issuing_cert_pem).unwrap();
        std::fs::write(
            &chain,
            format!("{}{}", bundle.root_cert_pem, bundle.issuing_cert_pem),
        )
        .unwrap();
        Fixture {
            dir,
            ca,
            root,
            issuing,
            chain,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server leaf for `host`, written to `<host>.pem`.
    fn leaf(&self, host: &str) -> (IssuedCertificate, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let csr = params.serialize_request(&key).unwrap();
        let csr = Csr::from_pem_or_der(csr.der()).unwrap();
        let cert = self
            .ca
            .issue(
                &csr,
                Profile::Server,
                &ProfileLimits::default(),
                None,
                &Policy::allow_all(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let path = self.path(&format!("{host}.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        (cert, path)
    }

    /// A delegated OCSP signer of `key_type`, its key made in memory as the responder would.
    /// Writes `signer.pem` and `signer.key`.
    fn signer(&self, key_type: KeyType) -> (OcspSigner, OcspSignerCertificate) {
        let rng = SystemRandom::new();
        let pkcs8 = match key_type {
            KeyType::P256 => {
                EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
            KeyType::P384 => {
                EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
            }
            KeyType::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .unwrap();
        let spki = rcgen::KeyPair::try_from(pkcs8.as_ref())
            .unwrap()
            .subject_public_key_info();
        let cert = self
            .ca
            .issue_ocsp_signer(
                &spki,
                Duration::from_secs(7 * 86_400),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        std::fs::write(self.path("signer.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("signer.key"), pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        (OcspSigner::new(pkcs8.as_ref(), &cert.der).unwrap(), cert)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl ocsp -reqout` for `certs`, with `extra` options before the `-cert`s (a digest
/// option applies to the `-cert`s after it).
fn openssl_request(
    f: &Fixture,
    name: &str,
    issuer: &Path,
    certs: &[&Path],
    extra: &[&str],
) -> Vec<u8> {
    let out = f.path(name);
    let mut args = vec!["ocsp", "-issuer", s(issuer)];
    args.extend_from_slice(extra);
    for c in certs {
        args.extend_from_slice(&["-cert", s(c)]);
    }
    args.extend_from_slice(&["-reqout", s(&out)]);
    let (ok, text) = openssl(&args);
    assert!(ok, "openssl ocsp -reqout: {text}");
    std::fs::read(out).unwrap()
}

/// `openssl ocsp -respin` checked twice, as clients check it: against the request as sent
/// (`-reqin`: signature, signer authorisation and nonce), then against each certificate in
/// `certs` (the CertID computed by openssl with the `digest` options must be answered).
fn openssl_check_response(
    f: &Fixture,
    request: &Path,
    response: &[u8],
    certs: &[&Path],
    digest: &[&str],
) -> (bool, String) {
    let resp = f.path("resp.der");
    std::fs::write(&resp, response).unwrap();
    let common = [
        "-respin",
        s(&resp),
        "-issuer",
        s(&f.issuing),
        "-CAfile",
        s(&f.chain),
    ];
    let mut args = vec!["ocsp", "-reqin", s(request), "-resp_text"];
    args.extend_from_slice(&common);
    let (ok1, text1) = openssl(&args);
    let mut args = vec!["ocsp", "-no_nonce"];
    args.extend_from_slice(&common);
    args.extend_from_slice(digest);
    for c in certs {
        args.extend_from_slice(&["-cert", s(c)]);
    }
    let (ok2, text2) = openssl(&args);
    (ok1 && ok2, format!("{text1}\n---\n{text2}"))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn a_signer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OcspSigner>();
    assert_send_sync::<OcspIssuerIds>();
}

#[test]
fn delegated_signer_certificate_has_the_rfc6960_profile() {
    let f = Fixture::new(KeyType::P256);
    let (_, cert) = f.signer(KeyType::P256);
    let (ok, text) = openssl(&["x509", "-in", s(&f.path("signer.pem")), "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "Subject: CN = Acme Internal CA Issuing CA OCSP Responder\n",
        "X509v3 Extended Key Usage: \n                OCSP Signing\n",
        "X509v3 Key Usage: critical\n                Digital Signature\n",
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
        "OCSP No Check: \n",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for absent in ["Authority Information Access", "CRL Distribution Points"] {
        assert!(!text.contains(absent), "unexpected {absent:?} in:\n{text}");
    }
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        s(&f.root),
        "-untrusted",
        s(&f.issuing),
        "-purpose",
        "ocsphelper",
        s(&f.path("signer.pem")),
    ]);
    assert!(ok && text.contains(": OK"), "{text}");

    // The nocheck extension is exactly NULL and not critical.
    let parsed = x509_cert::Certificate::from_der(&cert.der).unwrap();
    let nocheck = parsed
        .tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.48.1.5")
        .unwrap();
    assert!(!nocheck.critical);
    assert_eq!(nocheck.extn_value.as_bytes(), [0x05, 0x00]);
    assert_eq!(OcspSignerCertificate::PROFILE, "ocsp-signer");

    let t = now().unix_timestamp();
    assert!((t - 61..=t - 59).contains(&cert.not_before.unix_timestamp()));
    assert!((t + 7 * 86_400 - 1..=t + 7 * 86_400 + 1).contains(&cert.not_after.unix_timestamp()));
}

#[test]
fn delegated_signer_issuance_refuses_what_it_cannot_serve() {
    let f = Fixture::new(KeyType::P256);
    let key = rcgen::KeyPair::generate().unwrap();
    let spki = key.subject_public_key_info();
    assert!(matches!(
        f.ca.issue_ocsp_signer(
            &spki,
            OCSP_SIGNER_MAX_LIFETIME + Duration::from_secs(1),
            now()
        ),
        Err(CaError::LifetimeTooLong { .. })
    ));
    assert!(matches!(
        f.ca.issue_ocsp_signer(&spki, Duration::ZERO, now()),
        Err(CaError::InvalidLifetime(_))
    ));
    // An RSA key (ring cannot generate one, so openssl does).
    let rsa_key = f.path("rsa.key");
    let rsa_spki = f.path("rsa.spki");
    let (ok, text) = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        s(&rsa_key),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "pkey",
        "-in",
        s(&rsa_key),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        s(&rsa_spki),
    ]);
    assert!(ok, "{text}");
    assert!(matches!(
        f.ca.issue_ocsp_signer(
            &std::fs::read(&rsa_spki).unwrap(),
            Duration::from_secs(3600),
            now()
        ),
        Err(CaError::UnsupportedKey(_))
    ));
    assert!(matches!(
        f.ca.issue_ocsp_signer(b"not a key", Duration::from_secs(3600), now()),
        Err(CaError::UnsupportedKey(_))
    ));
    // Never outlives the CA.
    let late = f.ca.not_after() - time::Duration::hours(1);
    let cert =
        f.ca.issue_ocsp_signer(&spki, Duration::from_secs(86_400), late)
            .unwrap();
    assert_eq!(cert.not_after, f.ca.not_after());

    // A signer must be built from a certificate with EKU OCSPSigning and its own key.
    let (leaf, _) = f.leaf("plain.internal");
    let pkcs8 = key.serialize_der();
    assert!(matches!(
        OcspSigner::new(&pkcs8, &leaf.der),
        Err(PkixError::OcspSigner(_))
    ));
    let (_, signer_cert) = f.signer(KeyType::P256);
    assert!(matches!(
        OcspSigner::new(&pkcs8, &signer_cert.der),
        Err(PkixError::OcspSigner(_))
    ));
}

#[test]
fn openssl_requests_are_answered_and_the_responses_verify() {
    for signer_type in [KeyType::P256, KeyType::P384, KeyType::Ed25519] {
        let f = Fixture::new(KeyType::P256);
        let ids = OcspIssuerIds::from_cert_der(f.ca.cert_der()).unwrap();
        let (signer, _) = f.signer(signer_type);
        let (good, good_pem) = f.leaf("good.internal");
        let (revoked, revoked_pem) = f.leaf("revoked.internal");
        let this_update = now();
        let next_update = this_update + time::Duration::hours(1);
        let revoked_at = this_update - time::Duration::minutes(5);

        for (digest, hash) in [
            (None, CertIdHash::Sha1),
            (Some("-sha256"), CertIdHash::Sha256),
        ] {
            let tag = format!("{signer_type:?}/{hash:?}");
            for (cert, path, status, expected) in [
                (&good, &good_pem, CertStatusKind::Good, ": good\n"),
                (
                    &revoked,
                    &revoked_pem,
                    CertStatusKind::Revoked {
                        at: revoked_at,
                        reason: Some(1),
                    },
                    ": revoked\n",
                ),
                (&good, &good_pem, CertStatusKind::Unknown, ": unknown\n"),
            ] {
                let req_path = f.path("req.der");
                let req_der =
                    openssl_request(&f, "req.der", &f.issuing, &[path], digest.as_slice());
                let req = parse_ocsp_request(&req_der).unwrap();
                assert_eq!(req.cert_ids().len(), 1, "{tag}");
                let id = &req.cert_ids()[0];
                assert_eq!(id.hash_algorithm(), hash, "{tag}");
                assert_eq!(id.serial(), &cert.serial, "{tag}");
                assert!(ids.matches(id), "{tag}: our issuer");
                assert_eq!(
                    req.nonce().map(<[u8]>::len),
                    Some(16),
                    "{tag}: openssl's nonce"
                );

                let resp = build_response(
                    &signer,
                    &[(id, status)],
                    this_update,
                    next_update,
                    req.nonce(),
                )
                .unwrap();
                let (ok, text) =
                    openssl_check_response(&f, &req_path, &resp, &[path], digest.as_slice());
                assert!(ok, "{tag}: {text}");
                assert_eq!(
                    text.matches("Response verify OK").count(),
                    2,
                    "{tag}: {text}"
                );
                let line = format!("{}{expected}", s(path));
                assert!(text.contains(&line), "{tag}: want {line:?} in {text}");
                assert!(!text.contains("WARNING"), "{tag}: {text}");
                assert!(text.contains("OCSP Nonce"), "{tag}: {text}");
                assert!(text.contains("Responder Id: "), "{tag}: {text}");
                if expected == ": revoked\n" {
                    assert!(text.contains("Reason: keyCompromise"), "{tag}: {text}");
                }
            }
        }

        // Several CertIDs in one request, each answered and echoed in order.
        let req_path = f.path("multi.der");
        let req_der = openssl_request(&f, "multi.der", &f.issuing, &[&good_pem, &revoked_pem], &[]);
        let req = parse_ocsp_request(&req_der).unwrap();
        assert_eq!(req.cert_ids().len(), 2);
        let answers = [
            (&req.cert_ids()[0], CertStatusKind::Good),
            (
                &req.cert_ids()[1],
                CertStatusKind::Revoked {
                    at: revoked_at,
                    reason: None,
                },
            ),
        ];
        let resp =
            build_response(&signer, &answers, this_update, next_update, req.nonce()).unwrap();
        let (ok, text) =
            openssl_check_response(&f, &req_path, &resp, &[&good_pem, &revoked_pem], &[]);
        assert!(ok && text.contains("Response verify OK"), "{text}");
        assert!(text.contains("good.internal.pem: good"), "{text}");
        assert!(text.contains("revoked.internal.pem: revoked"), "{text}");
        assert!(
            !text.contains("Reason:"),
            "unspecified writes no reason: {text}"
        );
    }
}

#[test]
fn response_without_nonce_and_request_without_nonce() {
    let f = Fixture::new(KeyType::P256);
    let (signer, _) = f.signer(KeyType::P256);
    let (_, good_pem) = f.leaf("good.internal");
    let req_der = openssl_request(&f, "req.der", &f.issuing, &[&good_pem], &["-no_nonce"]);
    let req = parse_ocsp_request(&req_der).unwrap();
    assert_eq!(req.nonce(), None);
    let t = now();
    let resp = build_response(
        &signer,
        &[(&req.cert_ids()[0], CertStatusKind::Good)],
        t,
        t + time::Duration::hours(1),
        None,
    )
    .unwrap();
    let (ok, text) = openssl_check_response(&f, &f.path("req.der"), &resp, &[&good_pem], &[]);
    assert!(
        ok && text.contains("Response verify OK") && text.contains(": good"),
        "{text}"
    );

    // openssl does compare nonces: a response without one, or with another, is flagged.
    let with_nonce_req = openssl_request(&f, "nonce.der", &f.issuing, &[&good_pem], &[]);
    let parsed = parse_ocsp_request(&with_nonce_req).unwrap();
    let answer = [(&parsed.cert_ids()[0], CertStatusKind::Good)];
    let next = t + time::Duration::hours(1);
    let resp = build_response(&signer, &answer, t, next, None).unwrap();
    let (_, text) = openssl_check_response(&f, &f.path("nonce.der"), &resp, &[], &[]);
    assert!(text.contains("WARNING: no nonce in response"), "{text}");
    let resp = build_response(&signer, &answer, t, next, Some(&[1; 16])).unwrap();
    let (ok, text) = openssl_check_response(&f, &f.path("nonce.der"), &resp, &[], &[]);
    assert!(!ok && text.contains("Nonce Verify error"), "{text}");

    // nextUpdate must follow thisUpdate; a nonce must be 1 to 32 octets.
    let id = (&req.cert_ids()[0], CertStatusKind::Good);
    assert!(build_response(&signer, &[id], t, t, None).is_err());
    assert!(build_response(&signer, &[], t, t + time::Duration::hours(1), None).is_err());
    assert!(
        build_response(
            &signer,
            &[id],
            t,
            t + time::Duration::hours(1),
            Some(&[0; 33])
        )
        .is_err()
    );
    let bad_reason = CertStatusKind::Revoked {
        at: t,
        reason: Some(7),
    };
    assert!(matches!(
        build_response(
            &signer,
            &[(id.0, bad_reason)],
            t,
            t + time::Duration::hours(1),
            None
        ),
        Err(PkixError::InvalidRevocationReason(7))
    ));
}

#[test]
fn error_responses_carry_only_a_status() {
    let f = Fixture::new(KeyType::P256);
    for (status, name) in [
        (OcspErrorStatus::MalformedRequest, "malformedrequest (1)"),
        (OcspErrorStatus::InternalError, "internalerror (2)"),
        (OcspErrorStatus::TryLater, "trylater (3)"),
        (OcspErrorStatus::Unauthorized, "unauthorized (6)"),
    ] {
        let path = f.path("err.der");
        std::fs::write(&path, error_response(status)).unwrap();
        let (_, text) = openssl(&["ocsp", "-respin", s(&path), "-resp_text", "-noverify"]);
        assert!(text.to_lowercase().contains(name), "{status:?}: {text}");
    }
}

/// Rewrite the nonce of an openssl request, as a hostile or broken client might send it.
fn with_nonce(req_der: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut req = x509_ocsp::OcspRequest::from_der(req_der).unwrap();
    let value = der::asn1::OctetString::new(nonce)
        .unwrap()
        .to_der()
        .unwrap();
    for ext in req.tbs_request.request_extensions.iter_mut().flatten() {
        ext.extn_value = der::asn1::OctetString::new(value.clone()).unwrap();
    }
    req.to_der().unwrap()
}

fn assert_malformed(what: &str, input: &[u8]) {
    match parse_ocsp_request(input) {
        Err(e @ PkixError::MalformedOcspRequest(_)) => {
            assert_eq!(e.ocsp_status(), OcspErrorStatus::MalformedRequest, "{what}");
            // The CA core's callers see it as the requester's fault too.
            assert!(CaError::from(e).is_client_error(), "{what}");
        }
        other => panic!("{what}: expected malformedRequest, got {other:?}"),
    }
}

#[test]
fn malformed_requests_are_refused_without_panicking() {
    let f = Fixture::new(KeyType::P256);
    let (_, good_pem) = f.leaf("good.internal");
    let req = openssl_request(&f, "req.der", &f.issuing, &[&good_pem], &[]);

    assert_malformed("empty", b"");
    assert_malformed("garbage", b"GET / HTTP/1.1\r\n\r\n");
    for len in 0..req.len() {
        assert_malformed(&format!("truncated to {len}"), &req[..len]);
    }
    let mut trailing = req.clone();
    trailing.push(0);
    assert_malformed("trailing data", &trailing);
    assert_malformed("over 16 KiB", &vec![0x30; 16 * 1024 + 1]);

    assert_malformed("33-octet nonce", &with_nonce(&req, &[7; 33]));
    assert_malformed("empty nonce", &with_nonce(&req, &[]));
    let ok = parse_ocsp_request(&with_nonce(&req, &[7; 32])).unwrap();
    assert_eq!(ok.nonce(), Some(&[7u8; 32][..]));
    let ok = parse_ocsp_request(&with_nonce(&req, &[7])).unwrap();
    assert_eq!(ok.nonce(), Some(&[7u8][..]));

    // A nonce extension whose value is not an OCTET STRING.
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    for ext in parsed.tbs_request.request_extensions.iter_mut().flatten() {
        ext.extn_value = der::asn1::OctetString::new(vec![0x02, 0x01, 0x05]).unwrap();
    }
    assert_malformed("nonce not an OCTET STRING", &parsed.to_der().unwrap());

    // Two nonces.
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    let exts = parsed.tbs_request.request_extensions.as_mut().unwrap();
    exts.push(exts[0].clone());
    assert_malformed("two nonces", &parsed.to_der().unwrap());

    // Too many CertIDs, and none.
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    let one = parsed.tbs_request.request_list[0].clone();
    parsed.tbs_request.request_list = vec![one.clone(); 11];
    assert_malformed("11 CertIDs", &parsed.to_der().unwrap());
    parsed.tbs_request.request_list = vec![one.clone(); 10];
    assert_eq!(
        parse_ocsp_request(&parsed.to_der().unwrap())
            .unwrap()
            .cert_ids()
            .len(),
        10
    );
    parsed.tbs_request.request_list = vec![];
    assert_malformed("no CertID", &parsed.to_der().unwrap());

    // An unsupported hash (SHA-384), and a SHA-1 CertID with a truncated hash.
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    parsed.tbs_request.request_list[0]
        .req_cert
        .hash_algorithm
        .oid = der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
    assert_malformed("SHA-384 CertID", &parsed.to_der().unwrap());
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    parsed.tbs_request.request_list[0].req_cert.issuer_key_hash =
        der::asn1::OctetString::new(vec![1; 19]).unwrap();
    assert_malformed("short key hash", &parsed.to_der().unwrap());

    // Serial zero.
    let mut parsed = x509_ocsp::OcspRequest::from_der(&req).unwrap();
    parsed.tbs_request.request_list[0].req_cert.serial_number =
        x509_cert::serial_number::SerialNumber::new(&[0]).unwrap();
    assert_malformed("serial zero", &parsed.to_der().unwrap());

    // Random corruption of a valid request never panics.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let mut mutated = req.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % mutated.len() as u64) as usize;
            mutated[i] = next() as u8;
        }
        if let Err(e) = parse_ocsp_request(&mutated) {
            assert_eq!(e.ocsp_status(), OcspErrorStatus::MalformedRequest);
        }
    }
}

#[test]
fn signed_requests_are_read_and_other_issuers_are_not_ours() {
    let f = Fixture::new(KeyType::P256);
    let ids = OcspIssuerIds::from_cert_der(f.ca.cert_der()).unwrap();
    let (_, good_pem) = f.leaf("good.internal");
    let _ = f.signer(KeyType::P256);
    let signed = openssl_request(
        &f,
        "signed.der",
        &f.issuing,
        &[&good_pem],
        &[
            "-signer",
            s(&f.path("signer.pem")),
            "-signkey",
            s(&f.path("signer.key")),
        ],
    );
    let req = parse_ocsp_request(&signed).unwrap();
    assert!(ids.matches(&req.cert_ids()[0]));
    assert_eq!(req.nonce().map(<[u8]>::len), Some(16));

    // Another CA's certificate: the request parses, but it is not for our issuer.
    let other = Fixture::new(KeyType::P256);
    let (_, other_pem) = other.leaf("elsewhere.internal");
    for digest in [&[][..], &["-sha256"][..]] {
        let req = openssl_request(&f, "other.der", &other.issuing, &[&other_pem], digest);
        let req = parse_ocsp_request(&req).unwrap();
        assert!(!ids.matches(&req.cert_ids()[0]), "{digest:?}");
        assert!(
            OcspIssuerIds::from_cert_der(other.ca.cert_der())
                .unwrap()
                .matches(&req.cert_ids()[0])
        );
    }
}

fn write_crl(f: &Fixture, der: &[u8]) -> (PathBuf, PathBuf) {
    let der_path = f.path("crl.der");
    let pem_path = f.path("crl.pem");
    std::fs::write(&der_path, der).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&der_path),
        "-outform",
        "PEM",
        "-out",
        s(&pem_path),
    ]);
    assert!(ok, "{text}");
    (der_path, pem_path)
}

fn openssl_crl_text(f: &Fixture, der_path: &Path) -> String {
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(der_path),
        "-CAfile",
        s(&f.chain),
        "-verify",
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    text
}

fn verify_with_crl(f: &Fixture, crl_pem: &Path, leaf: &Path) -> (bool, String) {
    openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        s(crl_pem),
        "-CAfile",
        s(&f.root),
        "-untrusted",
        s(&f.issuing),
        s(leaf),
    ])
}

#[test]
fn crls_verify_with_openssl_and_revoke_what_they_list() {
    for ca_key in [KeyType::P256, KeyType::P384, KeyType::Ed25519] {
        let f = Fixture::new(ca_key);
        let (good, good_pem) = f.leaf("good.internal");
        let (revoked, revoked_pem) = f.leaf("revoked.internal");
        let this_update = now();
        let entries = vec![
            RevokedEntry {
                serial: revoked.serial.clone(),
                revoked_at: this_update - time::Duration::hours(1),
                reason: Some(1),
            },
            RevokedEntry {
                serial: Serial::from_hex("ff00").unwrap(),
                revoked_at: this_update - time::Duration::hours(2),
                reason: None,
            },
            RevokedEntry {
                serial: Serial::from_hex("7f").unwrap(),
                revoked_at: this_update - time::Duration::hours(3),
                reason: Some(4),
            },
        ];
        let der =
            f.ca.crl_signer()
                .unwrap()
                .sign_crl(
                    42,
                    this_update,
                    this_update + time::Duration::days(1),
                    entries,
                )
                .unwrap();
        let (der_path, pem_path) = write_crl(&f, &der);
        let text = openssl_crl_text(&f, &der_path);
        for expected in [
            "Version 2 (0x1)",
            "X509v3 CRL Number: \n                42\n",
            "X509v3 Authority Key Identifier: \n",
            &hex::encode_upper(f.ca.key_id())[..2],
            "Key Compromise",
            "Superseded",
            "Serial Number: FF00\n",
            "Serial Number: 7F\n",
            "Issuer: O = Acme Internal CA, CN = Acme Internal CA Issuing CA\n",
        ] {
            assert!(
                text.contains(expected),
                "{ca_key:?}: missing {expected:?} in\n{text}"
            );
        }
        assert_eq!(
            text.matches("CRL Reason Code").count(),
            2,
            "{ca_key:?}: {text}"
        );

        let (ok, text) = verify_with_crl(&f, &pem_path, &revoked_pem);
        assert!(
            !ok && text.contains("certificate revoked"),
            "{ca_key:?}: {text}"
        );
        let (ok, text) = verify_with_crl(&f, &pem_path, &good_pem);
        assert!(ok && text.contains(": OK"), "{ca_key:?}: {text}");
        let _ = good;

        // An independent parser agrees: the AKI is the CA's SKI, the issuer is its subject.
        let crl = x509_cert::crl::CertificateList::from_der(&der).unwrap();
        let ca_cert = x509_cert::Certificate::from_der(f.ca.cert_der()).unwrap();
        assert_eq!(crl.tbs_cert_list.issuer, ca_cert.tbs_certificate.subject);
        assert_eq!(crl.tbs_cert_list.revoked_certificates.unwrap().len(), 3);
    }
}

#[test]
fn an_empty_crl_verifies_and_bad_input_is_refused() {
    let f = Fixture::new(KeyType::P256);
    let (_, good_pem) = f.leaf("good.internal");
    let t = now();
    let der =
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(0, t, t + time::Duration::days(1), Vec::new())
            .unwrap();
    let (der_path, pem_path) = write_crl(&f, &der);
    let text = openssl_crl_text(&f, &der_path);
    assert!(text.contains("No Revoked Certificates."), "{text}");
    assert!(verify_with_crl(&f, &pem_path, &good_pem).0);

    let entry = |reason| RevokedEntry {
        serial: Serial::from_hex("01").unwrap(),
        revoked_at: t,
        reason,
    };
    assert!(matches!(
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(1, t, t + time::Duration::days(1), [entry(Some(7))])
            .map_err(CaError::from),
        Err(CaError::InvalidRevocationReason(7))
    ));
    assert!(matches!(
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(1, t, t + time::Duration::days(1), [entry(Some(8))])
            .map_err(CaError::from),
        Err(CaError::InvalidRevocationReason(8))
    ));
    assert!(
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(1, t, t, [entry(None)])
            .is_err()
    );
    // Dates from 2050 on are GeneralizedTime (RFC 5280 section 5.1.2.4).
    let far = OffsetDateTime::from_unix_timestamp(2_600_000_000).unwrap();
    let der =
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(u64::MAX, t, far, [entry(Some(9))])
            .unwrap();
    let (der_path, _) = write_crl(&f, &der);
    let text = openssl_crl_text(&f, &der_path);
    assert!(
        text.contains("Next Update: May 22 14:13:20 2052 GMT"),
        "{text}"
    );
    assert!(text.contains("18446744073709551615"), "{text}");
}

#[test]
fn a_crl_of_100k_entries_builds_and_openssl_reads_it() {
    let f = Fixture::new(KeyType::P256);
    let t = now();
    let n = 100_000u32;
    let entries = (0..n).map(|i| {
        let mut bytes = [0x55u8; 16];
        bytes[12..].copy_from_slice(&i.to_be_bytes());
        RevokedEntry {
            serial: Serial::from_be_bytes(&bytes).unwrap(),
            revoked_at: t - time::Duration::seconds(i64::from(i)),
            reason: (i % 2 == 0).then_some(1),
        }
    });
    let der =
        f.ca.crl_signer()
            .unwrap()
            .sign_crl(7, t, t + time::Duration::days(1), entries)
            .unwrap();
    let (der_path, _) = write_crl(&f, &der);
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&der_path),
        "-CAfile",
        s(&f.chain),
        "-verify",
        "-noout",
        "-crlnumber",
    ]);
    assert!(
        ok && text.contains("verify OK") && text.contains("crlNumber=0x07"),
        "{text}"
    );
    let crl = x509_cert::crl::CertificateList::from_der(&der).unwrap();
    let revoked = crl.tbs_cert_list.revoked_certificates.unwrap();
    assert_eq!(revoked.len(), n as usize);
    assert_eq!(
        revoked[12_345].serial_number.as_bytes()[12..],
        12_345u32.to_be_bytes()
    );
}
