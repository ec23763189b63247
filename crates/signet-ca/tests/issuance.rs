//! The CA core checked by independent implementations: CSRs made by the `openssl` CLI,
//! certificates verified by `openssl verify` and by rustls-webpki.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use signet_ca::{
    CaError, Csr, InitOptions, IssuanceUrls, IssuedCertificate, IssuingCa, KeyType, Lifetime,
    OffsetDateTime, Policy, Profile, ProfileLimits, generate_ca, import_ca,
};
use x509_cert::Certificate;

struct Fixture {
    dir: tempfile::TempDir,
    ca: IssuingCa,
    root_pem: String,
    issuing_pem: String,
}

fn urls() -> IssuanceUrls {
    IssuanceUrls {
        ocsp: Some("http://ocsp.test:8080/ocsp".into()),
        ca_issuers: Some("http://ocsp.test:8080/ca/issuing.crt".into()),
        crl: Some("http://ocsp.test:8080/crl/issuing.crl".into()),
        ..Default::default()
    }
}

fn fixture(key_type: KeyType) -> Fixture {
    let mut opts = InitOptions::new("Acme Internal CA");
    opts.key_type = key_type;
    let bundle = generate_ca(&opts, OffsetDateTime::now_utc()).unwrap();
    let ca = IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        urls(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), &bundle.root_cert_pem).unwrap();
    std::fs::write(dir.path().join("issuing.pem"), &bundle.issuing_cert_pem).unwrap();
    Fixture {
        dir,
        ca,
        root_pem: bundle.root_cert_pem,
        issuing_pem: bundle.issuing_cert_pem,
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

/// A CSR made the way teams make them today, with `openssl req`.
fn openssl_csr(dir: &Path, tag: &str, key_args: &[&str], subj: &str, san: Option<&str>) -> Vec<u8> {
    let key = dir.join(format!("{tag}.key"));
    let csr = dir.join(format!("{tag}.csr"));
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend_from_slice(key_args);
    let (key_s, csr_s) = (
        key.to_str().unwrap().to_string(),
        csr.to_str().unwrap().to_string(),
    );
    args.extend_from_slice(&["-keyout", &key_s, "-out", &csr_s, "-subj", subj]);
    let ext;
    if let Some(san) = san {
        ext = format!("subjectAltName={san}");
        args.extend_from_slice(&["-addext", &ext]);
    }
    let (ok, text) = openssl(&args);
    assert!(ok, "openssl req failed: {text}");
    std::fs::read(&csr).unwrap()
}

fn issue(f: &Fixture, csr: &[u8], profile: Profile) -> Result<IssuedCertificate, CaError> {
    let csr = Csr::from_pem_or_der(csr)?;
    f.ca.issue(
        &csr,
        profile,
        &ProfileLimits::default(),
        None,
        &Policy::allow_all(),
        OffsetDateTime::now_utc(),
    )
}

fn write_leaf(f: &Fixture, cert: &IssuedCertificate, tag: &str) -> PathBuf {
    let p = f.dir.path().join(format!("{tag}.crt"));
    std::fs::write(&p, cert.pem()).unwrap();
    p
}

fn openssl_verify(f: &Fixture, leaf: &Path, purpose: &str) -> (bool, String) {
    let root = f.dir.path().join("root.pem");
    let issuing = f.dir.path().join("issuing.pem");
    openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issuing.to_str().unwrap(),
        "-purpose",
        purpose,
        "-x509_strict",
        leaf.to_str().unwrap(),
    ])
}

fn webpki_verify(
    f: &Fixture,
    leaf: &IssuedCertificate,
    usage: webpki::KeyUsage,
    host: &str,
) -> Result<(), webpki::Error> {
    let root = pem_der(&f.root_pem);
    let issuing = CertificateDer::from(pem_der(&f.issuing_pem));
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root)?;
    let leaf_der = CertificateDer::from(leaf.der.clone());
    let ee = webpki::EndEntityCert::try_from(&leaf_der)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[issuing],
        UnixTime::now(),
        usage,
        None,
        None,
    )?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from(host).unwrap())
}

fn pem_der(pem: &str) -> Vec<u8> {
    pem_rfc7468::decode_vec(pem.as_bytes()).unwrap().1
}

#[test]
fn openssl_csrs_of_every_accepted_key_type_give_certificates_openssl_and_webpki_accept() {
    for ca_key in [KeyType::P256, KeyType::P384] {
        let f = fixture(ca_key);
        let cases: [(&str, &[&str]); 5] = [
            ("rsa2048", &["-newkey", "rsa:2048"]),
            ("rsa4096", &["-newkey", "rsa:4096", "-sha384"]),
            (
                "p256",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ),
            // P-384 signed with SHA-256: the case rcgen's own CSR reader gets wrong.
            (
                "p384",
                &[
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                    "-sha256",
                ],
            ),
            ("ed25519", &["-newkey", "ed25519"]),
        ];
        for (tag, key_args) in cases {
            let csr = openssl_csr(
                f.dir.path(),
                tag,
                key_args,
                "/CN=api.internal",
                Some("DNS:api.internal,IP:10.1.2.3"),
            );
            let cert = issue(&f, &csr, Profile::Server).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let leaf = write_leaf(&f, &cert, tag);
            let (ok, text) = openssl_verify(&f, &leaf, "sslserver");
            assert!(
                ok && text.contains(": OK"),
                "{ca_key:?}/{tag}: openssl verify: {text}"
            );
            webpki_verify(&f, &cert, webpki::KeyUsage::server_auth(), "api.internal")
                .unwrap_or_else(|e| panic!("{tag}: webpki: {e:?}"));
            webpki_verify(&f, &cert, webpki::KeyUsage::server_auth(), "10.1.2.3")
                .unwrap_or_else(|e| panic!("{tag}: webpki IP: {e:?}"));
            // A server certificate is not a client certificate.
            assert!(
                !openssl_verify(&f, &leaf, "sslclient").0,
                "{tag}: server cert must not pass as client"
            );
        }
    }
}

#[test]
fn client_and_peer_profiles_carry_the_right_usages() {
    let f = fixture(KeyType::P256);
    let csr = openssl_csr(
        f.dir.path(),
        "client",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=billing",
        Some("URI:spiffe://cluster.local/ns/prod/sa/billing,DNS:billing.prod.svc"),
    );
    let client = issue(&f, &csr, Profile::Client).unwrap();
    let leaf = write_leaf(&f, &client, "client");
    let (ok, text) = openssl_verify(&f, &leaf, "sslclient");
    assert!(ok, "client: {text}");
    assert!(!openssl_verify(&f, &leaf, "sslserver").0);
    webpki_verify(
        &f,
        &client,
        webpki::KeyUsage::client_auth(),
        "billing.prod.svc",
    )
    .unwrap();

    let peer = issue(&f, &csr, Profile::Peer).unwrap();
    let leaf = write_leaf(&f, &peer, "peer");
    assert!(openssl_verify(&f, &leaf, "sslclient").0);
    assert!(openssl_verify(&f, &leaf, "sslserver").0);
}

#[test]
fn certificate_contents_follow_rfc5280() {
    let f = fixture(KeyType::P256);
    let csr = openssl_csr(
        f.dir.path(),
        "rsa",
        &["-newkey", "rsa:2048"],
        "/CN=api.internal/O=Ignored Org",
        Some("DNS:api.internal"),
    );
    let before = OffsetDateTime::now_utc();
    let cert = issue(&f, &csr, Profile::Server).unwrap();
    let leaf = write_leaf(&f, &cert, "rsa");
    let (ok, text) = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    for expected in [
        "Version: 3 (0x2)",
        "Signature Algorithm: ecdsa-with-SHA256",
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment",
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication",
        "X509v3 Subject Alternative Name: \n                DNS:api.internal",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "OCSP - URI:http://ocsp.test:8080/ocsp",
        "CA Issuers - URI:http://ocsp.test:8080/ca/issuing.crt",
        "URI:http://ocsp.test:8080/crl/issuing.crl",
        "Subject: CN = api.internal\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("Ignored Org"),
        "only the CN is taken from the CSR subject"
    );

    let parsed = Certificate::from_der(&cert.der).unwrap();
    let serial = parsed.tbs_certificate.serial_number.as_bytes();
    assert!(
        serial.len() <= 20 && serial[0] & 0x80 == 0,
        "positive, at most 20 octets"
    );
    assert_eq!(
        parsed.tbs_certificate.serial_number.as_bytes(),
        cert.serial.as_bytes()
    );
    let nb = parsed
        .tbs_certificate
        .validity
        .not_before
        .to_unix_duration()
        .as_secs() as i64;
    let na = parsed
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs() as i64;
    let t = before.unix_timestamp();
    assert!(
        (t - 61..=t - 59).contains(&nb),
        "notBefore backdated 60s: {nb} vs {t}"
    );
    assert!(
        (t + 86_399..=t + 86_401).contains(&na),
        "default lifetime 24h: {na} vs {t}"
    );
    let issuer_der = pem_der(&f.issuing_pem);
    let issuer = Certificate::from_der(&issuer_der).unwrap();
    assert_eq!(
        parsed.tbs_certificate.issuer.to_der().unwrap(),
        issuer.tbs_certificate.subject.to_der().unwrap(),
        "issuer name is byte-identical to the CA's subject"
    );

    // An EC key gets no keyEncipherment.
    let csr = openssl_csr(
        f.dir.path(),
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=api.internal",
        None,
    );
    let cert = issue(&f, &csr, Profile::Server).unwrap();
    let leaf = write_leaf(&f, &cert, "ec");
    let (_, text) = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
        "{text}"
    );
    assert!(
        text.contains("DNS:api.internal"),
        "the CN becomes a SAN: {text}"
    );
}

#[test]
fn empty_subject_makes_the_san_critical_and_serials_are_unique() {
    let f = fixture(KeyType::Ed25519);
    let csr = openssl_csr(
        f.dir.path(),
        "nosubj",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/",
        Some("DNS:a.internal"),
    );
    let mut serials = std::collections::HashSet::new();
    for _ in 0..50 {
        let cert = issue(&f, &csr, Profile::Server).unwrap();
        assert!(serials.insert(cert.serial.clone()));
        assert_eq!(cert.subject, "");
    }
    let cert = issue(&f, &csr, Profile::Server).unwrap();
    let leaf = write_leaf(&f, &cert, "nosubj");
    let (_, text) = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        text.contains("X509v3 Subject Alternative Name: critical"),
        "{text}"
    );
    assert!(
        text.contains("Signature Algorithm: ED25519"),
        "signature algorithm follows the CA key: {text}"
    );
    assert!(openssl_verify(&f, &leaf, "sslserver").0);
}

#[test]
fn lifetime_is_bounded_by_profile_policy_and_issuer() {
    let f = fixture(KeyType::P256);
    let csr = Csr::from_pem_or_der(&openssl_csr(
        f.dir.path(),
        "t",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.internal",
        None,
    ))
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let limits = ProfileLimits::default();
    let policy = Policy::allow_all();
    let week = Lifetime::from_hours(7 * 24);
    let cert =
        f.ca.issue(&csr, Profile::Server, &limits, Some(week), &policy, now)
            .unwrap();
    assert_eq!(
        (cert.not_after - cert.not_before).whole_seconds(),
        7 * 86_400 + 60
    );
    let err =
        f.ca.issue(
            &csr,
            Profile::Server,
            &limits,
            Some(Lifetime::from_hours(7 * 24 + 1)),
            &policy,
            now,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::LifetimeTooLong { .. }), "{err}");
    // Near the end of the issuing CA's life, certificates end with it.
    let late = f.ca.not_after() - time::Duration::hours(2);
    let cert =
        f.ca.issue(&csr, Profile::Server, &limits, None, &policy, late)
            .unwrap();
    assert_eq!(cert.not_after, f.ca.not_after());
    let err =
        f.ca.issue(
            &csr,
            Profile::Server,
            &limits,
            None,
            &policy,
            f.ca.not_after(),
        )
        .unwrap_err();
    assert!(matches!(err, CaError::IssuerExpired(_)));
}

#[test]
fn bad_csrs_are_refused_with_a_reason() {
    let f = fixture(KeyType::P256);
    let dir = f.dir.path();
    let good = openssl_csr(
        dir,
        "good",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.internal",
        None,
    );

    // A flipped bit in the signed part: the self-signature no longer verifies.
    let der = pem_der(std::str::from_utf8(&good).unwrap());
    let mut tampered = der.clone();
    let pos = tampered
        .windows(10)
        .position(|w| w == b"a.internal")
        .unwrap();
    tampered[pos] = b'b';
    assert!(matches!(
        issue(&f, &tampered, Profile::Server),
        Err(CaError::CsrSignatureInvalid)
    ));

    // Trailing garbage, after DER and after PEM.
    let mut trailing = der.clone();
    trailing.extend_from_slice(b"\x00\x01");
    assert!(matches!(
        issue(&f, &trailing, Profile::Server),
        Err(CaError::MalformedCsr(_))
    ));
    let mut pem_trailing = good.clone();
    pem_trailing.extend_from_slice(b"garbage\n");
    assert!(matches!(
        issue(&f, &pem_trailing, Profile::Server),
        Err(CaError::MalformedCsr(_))
    ));
    assert!(matches!(
        issue(&f, b"not a csr", Profile::Server),
        Err(CaError::MalformedCsr(_))
    ));
    assert!(matches!(
        issue(&f, &der[..der.len() / 2], Profile::Server),
        Err(CaError::MalformedCsr(_))
    ));

    // Keys of the wrong type or size.
    let rsa1024 = openssl_csr(
        dir,
        "rsa1024",
        &["-newkey", "rsa:1024"],
        "/CN=a.internal",
        None,
    );
    match issue(&f, &rsa1024, Profile::Server) {
        Err(CaError::UnsupportedKey(msg)) => assert!(msg.contains("1024"), "{msg}"),
        other => panic!("RSA 1024: {other:?}"),
    }
    let k1 = openssl_csr(
        dir,
        "k1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        "/CN=a.internal",
        None,
    );
    match issue(&f, &k1, Profile::Server) {
        Err(CaError::UnsupportedKey(msg)) => assert!(msg.contains("curve"), "{msg}"),
        other => panic!("secp256k1: {other:?}"),
    }
    let sha1 = openssl_csr(
        dir,
        "sha1",
        &["-newkey", "rsa:2048", "-sha1"],
        "/CN=a.internal",
        None,
    );
    assert!(matches!(
        issue(&f, &sha1, Profile::Server),
        Err(CaError::UnsupportedSignatureAlgorithm(_))
    ));

    // Asking to be a CA.
    let ca = openssl_csr_with_ext(dir, "ca", "basicConstraints=critical,CA:TRUE");
    assert!(matches!(
        issue(&f, &ca, Profile::Server),
        Err(CaError::CaRequested)
    ));

    // Extra extensions (EKU codeSigning, KU keyCertSign) are ignored, never copied.
    let eku = openssl_csr_with_ext(dir, "eku", "extendedKeyUsage=codeSigning,serverAuth");
    let cert = issue(&f, &eku, Profile::Server).unwrap();
    let leaf = write_leaf(&f, &cert, "eku");
    let (_, text) = openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"]);
    assert!(!text.contains("Code Signing"), "{text}");

    // Names that are not names.
    let bad_name = openssl_csr(
        dir,
        "badname",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.internal",
        Some("DNS:bad_name.internal"),
    );
    assert!(matches!(
        issue(&f, &bad_name, Profile::Server),
        Err(CaError::InvalidName { .. })
    ));
}

fn openssl_csr_with_ext(dir: &Path, tag: &str, ext: &str) -> Vec<u8> {
    let key = dir.join(format!("{tag}.key"));
    let csr = dir.join(format!("{tag}.csr"));
    let (ok, text) = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-subj",
        "/CN=a.internal",
        "-addext",
        ext,
    ]);
    assert!(ok, "{text}");
    std::fs::read(csr).unwrap()
}

#[test]
fn policy_denials_name_every_denied_name() {
    let f = fixture(KeyType::P256);
    let csr = Csr::from_pem_or_der(&openssl_csr(
        f.dir.path(),
        "p",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=a.svc.cluster.local",
        Some("DNS:evil.example.com,IP:8.8.8.8"),
    ))
    .unwrap();
    let policy: Policy = Policy {
        dns: vec!["*.svc.cluster.local".parse().unwrap()],
        ip: vec!["10.0.0.0/8".parse().unwrap()],
        ..Policy::allow_all()
    };
    match f.ca.issue(
        &csr,
        Profile::Server,
        &ProfileLimits::default(),
        None,
        &policy,
        OffsetDateTime::now_utc(),
    ) {
        Err(e @ CaError::NameDenied { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("dns:evil.example.com")
                    && msg.contains("ip:8.8.8.8")
                    && !msg.contains("a.svc"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_existing_openssl_ca_can_be_imported_and_issues_verifiable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(d("root.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n").unwrap();
    std::fs::write(d("int.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &d("root.key"),
            "-out",
            &d("root.pem"),
            "-subj",
            "/C=DE/O=Legacy Corp/CN=Legacy Root",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        vec![
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "rsa:3072",
            "-keyout",
            &d("int.key"),
            "-out",
            &d("int.csr"),
            "-subj",
            "/C=DE/O=Legacy Corp/OU=PKI/CN=Legacy Issuing CA",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &d("int.csr"),
            "-CA",
            &d("root.pem"),
            "-CAkey",
            &d("root.key"),
            "-CAcreateserial",
            "-days",
            "1000",
            "-extfile",
            &d("int.ext"),
            "-out",
            &d("int.pem"),
        ],
    ] {
        let (ok, text) = openssl(&args);
        assert!(ok, "{args:?}: {text}");
    }
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(d("int.pem")).unwrap(),
        std::fs::read_to_string(d("root.pem")).unwrap()
    );
    let key = signet_ca::decode_private_key(&std::fs::read_to_string(d("int.key")).unwrap(), None)
        .unwrap();

    // A key that doesn't match is refused.
    let other = KeyType::P256.generate().unwrap();
    assert!(matches!(
        import_ca(&chain, other),
        Err(CaError::CaCertificate(_))
    ));
    // A chain without its root is refused.
    let key2 = signet_ca::decode_private_key(&std::fs::read_to_string(d("int.key")).unwrap(), None)
        .unwrap();
    assert!(matches!(
        import_ca(&std::fs::read_to_string(d("int.pem")).unwrap(), key2),
        Err(CaError::CaCertificate(_))
    ));

    let imported = import_ca(&chain, key).unwrap();
    let ca = IssuingCa::new(
        &imported.chain_pem,
        &imported.root_pem,
        imported.key,
        urls(),
    )
    .unwrap();
    let csr = Csr::from_pem_or_der(&openssl_csr(
        dir.path(),
        "leaf",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=legacy.internal",
        None,
    ))
    .unwrap();
    let cert = ca
        .issue(
            &csr,
            Profile::Server,
            &ProfileLimits::default(),
            None,
            &Policy::allow_all(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    std::fs::write(d("leaf.pem"), cert.pem()).unwrap();
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        &d("root.pem"),
        "-untrusted",
        &d("int.pem"),
        "-purpose",
        "sslserver",
        &d("leaf.pem"),
    ]);
    assert!(ok, "{text}");
    let (_, text) = openssl(&["x509", "-in", &d("leaf.pem"), "-noout", "-text"]);
    assert!(
        text.contains("Signature Algorithm: sha256WithRSAEncryption"),
        "{text}"
    );

    let f = Fixture {
        root_pem: std::fs::read_to_string(d("root.pem")).unwrap(),
        issuing_pem: std::fs::read_to_string(d("int.pem")).unwrap(),
        ca,
        dir,
    };
    webpki_verify(
        &f,
        &cert,
        webpki::KeyUsage::server_auth(),
        "legacy.internal",
    )
    .unwrap();
}
