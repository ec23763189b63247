//! Criterion benchmarks of the CA core: CSR intake, certificate signing per key type, OCSP
//! response signing and CRL encoding. Run with `cargo bench -p signet-ca` (a few minutes);
//! `cargo bench -p signet-ca -- crl` runs one group. Never part of the test suite.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rcgen::PublicKeyData;
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair};
use signet_ca::{
    CertIdHash, CertStatusKind, Csr, InitOptions, IssuanceUrls, IssuingCa, KeyType, OcspSigner,
    OffsetDateTime, Policy, Profile, ProfileLimits, RevokedEntry, Serial, build_ocsp_request,
    build_response, generate_ca, parse_ocsp_request,
};

fn issuing_ca(key_type: KeyType) -> IssuingCa {
    let mut opts = InitOptions::new("Bench CA");
    opts.key_type = key_type;
    let bundle = generate_ca(&opts, OffsetDateTime::now_utc()).unwrap();
    IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls {
            ocsp: Some("http://ocsp.bench/ocsp".into()),
            ca_issuers: Some("http://ocsp.bench/ca.crt".into()),
            crl: Some("http://ocsp.bench/ca.crl".into()),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A DER CSR for `svc.bench.internal` with a fresh key of `alg` (rcgen/ring).
fn csr_der(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["svc.bench.internal".into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "svc.bench.internal");
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// An RSA-2048 CSR from the openssl CLI (ring cannot generate RSA keys), if openssl runs.
fn rsa_csr_der() -> Option<Vec<u8>> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-subj",
            "/CN=svc.bench.internal",
            "-addext",
            "subjectAltName=DNS:svc.bench.internal",
            "-outform",
            "DER",
        ])
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

fn csr_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("p256", csr_der(&rcgen::PKCS_ECDSA_P256_SHA256)),
        ("p384", csr_der(&rcgen::PKCS_ECDSA_P384_SHA384)),
        ("ed25519", csr_der(&rcgen::PKCS_ED25519)),
    ];
    match rsa_csr_der() {
        Some(der) => v.push(("rsa2048", der)),
        None => eprintln!("openssl not found: skipping the RSA-2048 CSR"),
    }
    v
}

fn csr_parse_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("csr_parse_verify");
    for (name, der) in csr_inputs() {
        g.bench_function(name, |b| {
            b.iter(|| Csr::from_pem_or_der(black_box(&der)).unwrap())
        });
    }
    g.finish();
}

/// Build and sign a server certificate (P-256 issuing CA) for a CSR of each key type: the
/// CA's work per issuance, CSR already parsed.
fn cert_sign(c: &mut Criterion) {
    let ca = issuing_ca(KeyType::P256);
    let policy = Policy::allow_all();
    let limits = ProfileLimits::default();
    let mut g = c.benchmark_group("cert_build_sign");
    for (name, der) in csr_inputs() {
        let csr = Csr::from_pem_or_der(&der).unwrap();
        g.bench_function(format!("{name}_csr_p256_ca"), |b| {
            b.iter(|| {
                ca.issue(
                    black_box(&csr),
                    Profile::Server,
                    &limits,
                    None,
                    &policy,
                    OffsetDateTime::now_utc(),
                )
                .unwrap()
            })
        });
    }
    // The issuing key type matters more than the CSR's: sign with P-384 and Ed25519 CAs too.
    let csr = Csr::from_pem_or_der(&csr_der(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
    for (name, kt) in [("p384_ca", KeyType::P384), ("ed25519_ca", KeyType::Ed25519)] {
        let ca = issuing_ca(kt);
        g.bench_function(format!("p256_csr_{name}"), |b| {
            b.iter(|| {
                ca.issue(
                    black_box(&csr),
                    Profile::Server,
                    &limits,
                    None,
                    &policy,
                    OffsetDateTime::now_utc(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn ocsp(c: &mut Criterion) {
    let ca = issuing_ca(KeyType::P256);
    let now = OffsetDateTime::now_utc();
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let spki = rcgen::KeyPair::try_from(pkcs8.as_ref())
        .unwrap()
        .subject_public_key_info();
    let signer_cert = ca
        .issue_ocsp_signer(&spki, Duration::from_secs(7 * 86_400), now)
        .unwrap();
    let signer = OcspSigner::new(pkcs8.as_ref(), &signer_cert.der).unwrap();
    let csr = Csr::from_pem_or_der(&csr_der(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
    let leaf = ca
        .issue(
            &csr,
            Profile::Server,
            &ProfileLimits::default(),
            None,
            &Policy::allow_all(),
            now,
        )
        .unwrap();
    let plain = build_ocsp_request(&leaf.der, ca.cert_der(), CertIdHash::Sha1, None).unwrap();
    let nonce = [7u8; 16];
    let with_nonce =
        build_ocsp_request(&leaf.der, ca.cert_der(), CertIdHash::Sha1, Some(&nonce)).unwrap();
    let next = now + time::Duration::hours(1);

    let mut g = c.benchmark_group("ocsp");
    g.bench_function("parse_request", |b| {
        b.iter(|| parse_ocsp_request(black_box(&plain.der)).unwrap())
    });
    g.bench_function("build_sign_good", |b| {
        b.iter(|| {
            build_response(
                &signer,
                &[(&plain.cert_id, CertStatusKind::Good)],
                now,
                next,
                None,
            )
            .unwrap()
        })
    });
    g.bench_function("parse_build_sign_nonce", |b| {
        b.iter(|| {
            let req = parse_ocsp_request(black_box(&with_nonce.der)).unwrap();
            build_response(
                &signer,
                &[(&req.cert_ids()[0], CertStatusKind::Good)],
                now,
                next,
                req.nonce(),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn crl(c: &mut Criterion) {
    let signer = issuing_ca(KeyType::P256).crl_signer().unwrap();
    let now = OffsetDateTime::now_utc();
    let next = now + time::Duration::days(1);
    let mut g = c.benchmark_group("crl_build_sign");
    for n in [10_000usize, 100_000, 1_000_000] {
        let entries: Vec<RevokedEntry> = (0..n)
            .map(|i| RevokedEntry {
                serial: Serial::random().unwrap(),
                revoked_at: now - time::Duration::seconds(i as i64),
                reason: Some([0u8, 1, 4, 5][i % 4]),
            })
            .collect();
        if n >= 1_000_000 {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(15));
        } else {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(5));
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || entries.clone(),
                |e| signer.sign_crl(1, now, next, e).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = csr_parse_verify, cert_sign, ocsp, crl
}
criterion_main!(benches);
