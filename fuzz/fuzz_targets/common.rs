//! Fixtures shared by the fuzz targets: a CA generated once per process, and its delegated
//! OCSP signer. Everything here is built on first use and reused for every input.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use signet_ca::{
    InitOptions, IssuanceUrls, IssuingCa, OcspIssuerIds, OcspSigner, OffsetDateTime, generate_ca,
};

pub struct Fixture {
    pub ca: IssuingCa,
    pub signer: OcspSigner,
    pub issuer_ids: OcspIssuerIds,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        let bundle = generate_ca(&InitOptions::new("Fuzz CA"), now).expect("generate a CA");
        let ca = IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls {
                ocsp: Some("http://127.0.0.1:8080/ocsp".into()),
                ca_issuers: Some("http://127.0.0.1:8080/ca/issuing.crt".into()),
                crl: Some("http://127.0.0.1:8080/crl/issuing.crl".into()),
                ..IssuanceUrls::default()
            },
        )
        .expect("load the CA");
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("signer key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("signer key");
        let spki = p256_spki(ring::signature::KeyPair::public_key(&key).as_ref());
        let cert = ca
            .issue_ocsp_signer(&spki, Duration::from_secs(86_400), now)
            .expect("signer certificate");
        let signer = OcspSigner::new(pkcs8.as_ref(), &cert.der).expect("signer");
        let issuer_ids = OcspIssuerIds::from_cert_der(ca.cert_der()).expect("issuer ids");
        Fixture {
            ca,
            signer,
            issuer_ids,
        }
    })
}

/// SubjectPublicKeyInfo of an uncompressed P-256 point.
fn p256_spki(point: &[u8]) -> Vec<u8> {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 0x00, point } }
    let mut out = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    out.extend_from_slice(point);
    out
}
