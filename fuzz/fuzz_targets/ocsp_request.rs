//! OCSP request parsing (`parse_ocsp_request`, what `POST /ocsp` and `GET /ocsp/{base64}`
//! feed the responder), then issuer matching and signing a response for whatever parses.
//!
//! Invariants on every accepted request: 1 to MAX_OCSP_CERT_IDS CertIDs, a nonce (if any)
//! of 1 to 32 octets, and a signed response that x509-ocsp reads back with each CertID
//! echoed byte for byte, in order, with the status given.
#![no_main]

#[path = "common.rs"]
mod common;

use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use signet_ca::{
    CertStatusKind, MAX_OCSP_CERT_IDS, OCSP_NONCE_LEN, OffsetDateTime, build_response,
    parse_ocsp_request,
};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_ocsp_request(data) else {
        return;
    };
    let ids = req.cert_ids();
    assert!(!ids.is_empty() && ids.len() <= MAX_OCSP_CERT_IDS);
    if let Some(nonce) = req.nonce() {
        assert!(OCSP_NONCE_LEN.contains(&nonce.len()));
    }
    let f = common::fixture();
    let now = OffsetDateTime::now_utc();
    let statuses: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let _ = f.issuer_ids.matches(id);
            let status = match (i + id.serial().as_bytes().len()) % 3 {
                0 => CertStatusKind::Good,
                1 => CertStatusKind::Revoked {
                    at: now,
                    reason: Some(1),
                },
                _ => CertStatusKind::Unknown,
            };
            (id, status)
        })
        .collect();
    let der = build_response(
        &f.signer,
        &statuses,
        now,
        now + std::time::Duration::from_secs(3600),
        req.nonce(),
    )
    .expect("a parsed request can always be answered");
    let resp = x509_ocsp::OcspResponse::from_der(&der).expect("our response parses");
    let bytes = resp.response_bytes.expect("responseBytes");
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes())
        .expect("BasicOCSPResponse parses");
    let singles = &basic.tbs_response_data.responses;
    assert_eq!(singles.len(), ids.len());
    for (single, (id, status)) in singles.iter().zip(&statuses) {
        assert_eq!(single.cert_id.to_der().expect("CertID encodes"), id.der());
        let got = match &single.cert_status {
            x509_ocsp::CertStatus::Good(_) => 0,
            x509_ocsp::CertStatus::Revoked(_) => 1,
            x509_ocsp::CertStatus::Unknown(_) => 2,
        };
        let want = match status {
            CertStatusKind::Good => 0,
            CertStatusKind::Revoked { .. } => 1,
            CertStatusKind::Unknown => 2,
        };
        assert_eq!(got, want);
    }
});
