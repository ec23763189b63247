//! The key-custody seam: the issuing CA, its CRL signer and the OCSP signer sign through
//! `signet_pkix::SigningKey`, so a second implementation (here a test-only key that counts
//! its signatures and can be switched off, standing in for a PKCS#11 token) plugs in without
//! changing the CA. What it signs is checked by the openssl CLI; when it is unavailable, the
//! typed error comes back and nothing is produced.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair};
use signet_ca::{
    CaError, CertStatusKind, Csr, InitOptions, IssuanceUrls, IssuingCa, OcspSigner, Pkcs8Key,
    PkixError, Policy, Profile, ProfileLimits, RevokedEntry, SignatureAlgorithm, SigningError,
    SigningKey, build_response, generate_ca, parse_ocsp_request,
};
use time::OffsetDateTime;

/// A key kept "elsewhere": it forwards to an inner key while available, and answers
/// `KeyUnavailable` once switched off, as a removed token would.
struct RemoteKey {
    inner: Pkcs8Key,
    available: AtomicBool,
    signatures: AtomicUsize,
}

impl RemoteKey {
    fn new(inner: Pkcs8Key) -> Arc<Self> {
        Arc::new(RemoteKey {
            inner,
            available: AtomicBool::new(true),
            signatures: AtomicUsize::new(0),
        })
    }
}

impl SigningKey for RemoteKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }

    fn subject_public_key(&self) -> &[u8] {
        self.inner.subject_public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        if !self.available.load(Ordering::SeqCst) {
            return Err(SigningError::KeyUnavailable("token removed".into()));
        }
        self.signatures.fetch_add(1, Ordering::SeqCst);
        self.inner.sign(message)
    }
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn csr(host: &str) -> Csr {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    Csr::from_pem_or_der(params.serialize_request(&key).unwrap().der()).unwrap()
}

#[test]
fn a_second_signing_key_implementation_signs_certificates_crls_and_ocsp() {
    let now = OffsetDateTime::now_utc();
    let bundle = generate_ca(&InitOptions::new("Seam CA"), now).unwrap();
    let issuing_pkcs8 = bundle.issuing_key.serialize_der();
    let key = RemoteKey::new(
        Pkcs8Key::from_pkcs8_der(&issuing_pkcs8, SignatureAlgorithm::EcdsaP256Sha256).unwrap(),
    );
    let ca = IssuingCa::with_signing_key(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        key.clone(),
        IssuanceUrls::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("root.pem"), &bundle.root_cert_pem).unwrap();
    std::fs::write(path("issuing.pem"), &bundle.issuing_cert_pem).unwrap();
    std::fs::write(
        path("chain.pem"),
        format!("{}{}", bundle.root_cert_pem, bundle.issuing_cert_pem),
    )
    .unwrap();

    // A certificate, signed through the trait, verified by openssl.
    let issue = |host: &str| {
        ca.issue(
            &csr(host),
            Profile::Server,
            &ProfileLimits::default(),
            None,
            &Policy::allow_all(),
            now,
        )
    };
    let leaf = issue("seam.test").unwrap();
    assert_eq!(key.signatures.load(Ordering::SeqCst), 1);
    std::fs::write(path("leaf.pem"), leaf.pem()).unwrap();
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        s(&path("root.pem")),
        "-untrusted",
        s(&path("issuing.pem")),
        s(&path("leaf.pem")),
    ]);
    assert!(ok && text.contains("OK"), "{text}");

    // A CRL through the CA's narrow CRL-signing handle, verified by openssl.
    let crl = ca
        .crl_signer()
        .unwrap()
        .sign_crl(
            3,
            now,
            now + time::Duration::days(1),
            [RevokedEntry {
                serial: leaf.serial.clone(),
                revoked_at: now,
                reason: Some(1),
            }],
        )
        .unwrap();
    assert_eq!(key.signatures.load(Ordering::SeqCst), 2);
    std::fs::write(path("crl.der"), &crl).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&path("crl.der")),
        "-CAfile",
        s(&path("chain.pem")),
        "-noout",
        "-verify",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // An OCSP response signed by a delegated signer whose key is also behind the trait.
    let rng = SystemRandom::new();
    let signer_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let signer_key = RemoteKey::new(
        Pkcs8Key::from_pkcs8_der(signer_pkcs8.as_ref(), SignatureAlgorithm::EcdsaP256Sha256)
            .unwrap(),
    );
    let signer_cert = ca
        .issue_ocsp_signer(&signer_key.spki_der(), Duration::from_secs(86_400), now)
        .unwrap();
    let signer = OcspSigner::with_key(signer_key.clone(), &signer_cert.der).unwrap();
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        s(&path("issuing.pem")),
        "-cert",
        s(&path("leaf.pem")),
        "-no_nonce",
        "-reqout",
        s(&path("req.der")),
    ]);
    assert!(ok, "{text}");
    let request = parse_ocsp_request(&std::fs::read(path("req.der")).unwrap()).unwrap();
    let id = &request.cert_ids()[0];
    let answer = |signer: &OcspSigner| {
        build_response(
            signer,
            &[(id, CertStatusKind::Good)],
            now,
            now + time::Duration::hours(1),
            None,
        )
    };
    std::fs::write(path("resp.der"), answer(&signer).unwrap()).unwrap();
    assert_eq!(signer_key.signatures.load(Ordering::SeqCst), 1);
    let (ok, text) = openssl(&[
        "ocsp",
        "-respin",
        s(&path("resp.der")),
        "-issuer",
        s(&path("issuing.pem")),
        "-CAfile",
        s(&path("chain.pem")),
        "-no_nonce",
        "-cert",
        s(&path("leaf.pem")),
    ]);
    assert!(
        ok && text.contains("Response verify OK") && text.contains(": good"),
        "{text}"
    );

    // The keys become unavailable: each signing path returns the typed error, signs nothing.
    key.available.store(false, Ordering::SeqCst);
    signer_key.available.store(false, Ordering::SeqCst);
    let unavailable = |r: Result<_, CaError>| match r {
        Err(CaError::SigningKey(SigningError::KeyUnavailable(why))) => why,
        Err(other) => panic!("expected KeyUnavailable, got {other}"),
        Ok(_) => panic!("expected KeyUnavailable, got a signature"),
    };
    // CRLs and OCSP responses are signed in signet-pkix, whose error says the same.
    let unavailable_pkix = |r: Result<_, PkixError>| match r {
        Err(PkixError::SigningKey(SigningError::KeyUnavailable(why))) => why,
        Err(other) => panic!("expected KeyUnavailable, got {other}"),
        Ok(_) => panic!("expected KeyUnavailable, got a signature"),
    };
    assert_eq!(unavailable(issue("down.test").map(|_| ())), "token removed");
    assert_eq!(
        unavailable_pkix(
            ca.crl_signer()
                .unwrap()
                .sign_crl(4, now, now + time::Duration::days(1), [])
                .map(|_| ())
        ),
        "token removed"
    );
    assert_eq!(
        unavailable_pkix(answer(&signer).map(|_| ())),
        "token removed"
    );
    // The leaf, the CRL and the OCSP signer's certificate; nothing since.
    assert_eq!(key.signatures.load(Ordering::SeqCst), 3);
    assert_eq!(signer_key.signatures.load(Ordering::SeqCst), 1);
    // The error is a server-side failure, not the requester's.
    assert!(!CaError::SigningKey(SigningError::KeyUnavailable("x".into())).is_client_error());
}

#[test]
fn an_ocsp_signer_key_must_match_its_certificate() {
    let now = OffsetDateTime::now_utc();
    let bundle = generate_ca(&InitOptions::new("Seam CA"), now).unwrap();
    let ca = IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap();
    let rng = SystemRandom::new();
    let gen_key = || {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Arc::new(
            Pkcs8Key::from_pkcs8_der(pkcs8.as_ref(), SignatureAlgorithm::EcdsaP256Sha256).unwrap(),
        )
    };
    let (a, b) = (gen_key(), gen_key());
    let cert = ca
        .issue_ocsp_signer(&a.spki_der(), Duration::from_secs(86_400), now)
        .unwrap();
    assert!(OcspSigner::with_key(a, &cert.der).is_ok());
    assert!(matches!(
        OcspSigner::with_key(b, &cert.der),
        Err(PkixError::OcspSigner(why)) if why.contains("does not match")
    ));
}
