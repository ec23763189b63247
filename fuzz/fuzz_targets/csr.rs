//! CSR intake and validation: `Csr::from_pem_or_der`, then policy and issuance for whatever
//! parses.
//!
//! Each input is tried twice:
//! 1. as sent (PEM or DER), which exercises the outer parsing and signature checks;
//! 2. re-signed: the first element of the outer SEQUENCE (the CertificationRequestInfo) is
//!    signed again with the fixed Ed25519 key in `fuzz/keys/csr-ed25519.key`. Seeds made
//!    with that key keep a valid signature under mutation, so the fuzzer reaches the name,
//!    extension and policy code behind the signature check.
//!
//! Invariants checked on every CSR that is accepted: the certificate issued for it parses,
//! carries exactly the CSR's SubjectPublicKeyInfo and is not a CA.
#![no_main]

#[path = "common.rs"]
mod common;

use der::{Decode, Encode, Reader, SliceReader};
use libfuzzer_sys::fuzz_target;
use signet_ca::{CaError, Csr, OffsetDateTime, Policy, Profile, ProfileLimits};

static CSR_KEY: &[u8] = include_bytes!("../keys/csr-ed25519.pk8.der");

fuzz_target!(|data: &[u8]| {
    check(Csr::from_pem_or_der(data));
    if let Some(resigned) = resign(data) {
        check(Csr::from_der(&resigned));
    }
});

fn check(parsed: Result<Csr, CaError>) {
    let Ok(csr) = parsed else { return };
    let f = common::fixture();
    let mut wildcards = Policy::allow_all();
    wildcards.allow_wildcard_names = true;
    let now = OffsetDateTime::now_utc();
    for profile in Profile::ALL {
        for policy in [&Policy::allow_all(), &wildcards] {
            let Ok(issued) =
                f.ca.issue(&csr, profile, &ProfileLimits::default(), None, policy, now)
            else {
                continue;
            };
            let cert = x509_cert::Certificate::from_der(&issued.der)
                .expect("an issued certificate parses");
            let spki = cert
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .expect("SPKI encodes");
            assert_eq!(
                spki,
                csr.spki_der(),
                "the certificate carries the CSR's key"
            );
            assert_eq!(
                issued.names,
                csr.names(),
                "the certificate carries the CSR's names"
            );
            let bc = cert
                .tbs_certificate
                .extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == const_oid_bc())
                .expect("basicConstraints present");
            let bc = x509_cert::ext::pkix::BasicConstraints::from_der(bc.extn_value.as_bytes())
                .expect("basicConstraints parses");
            assert!(!bc.ca, "never a CA certificate");
        }
    }
}

fn const_oid_bc() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19")
}

/// The CertificationRequestInfo of `data` (DER, or the DER inside PEM), signed again with
/// the fixed Ed25519 key.
fn resign(data: &[u8]) -> Option<Vec<u8>> {
    let der_bytes;
    let input = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(data).ok()?;
        der_bytes = pem_rfc7468_decode(text)?;
        &der_bytes[..]
    } else {
        data
    };
    let mut reader = SliceReader::new(input).ok()?;
    let tbs = reader.sequence(|r| r.tlv_bytes()).ok()?;
    let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(CSR_KEY).ok()?;
    let sig = key.sign(tbs);
    let alg: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    let mut bits = Vec::with_capacity(66);
    push_header(&mut bits, 0x03, sig.as_ref().len() + 1);
    bits.push(0);
    bits.extend_from_slice(sig.as_ref());
    let body_len = tbs.len() + alg.len() + bits.len();
    let mut out = Vec::with_capacity(body_len + 6);
    push_header(&mut out, 0x30, body_len);
    out.extend_from_slice(tbs);
    out.extend_from_slice(alg);
    out.extend_from_slice(&bits);
    Some(out)
}

fn pem_rfc7468_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}
