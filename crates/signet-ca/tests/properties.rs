//! Property tests for Signet's encoders: what Signet writes, it and independent readers read
//! back the same.
//!
//! - Certificates for arbitrary sets of valid DNS (wildcards included), IP, URI and email
//!   names, profiles, key types and lifetimes parse with x509-cert with exactly the names,
//!   key, lifetime and CA:FALSE asked for; the first cases are also read by
//!   `openssl x509 -text` and chain-checked by `openssl verify`.
//! - OCSP responses for arbitrary serials, statuses, reasons, times and nonces, answering
//!   requests Signet parsed itself, parse with x509-ocsp with the CertID echoed and the
//!   serial, status, reason and times unchanged; the first cases are also read by
//!   `openssl ocsp -resp_text`.
//! - CRLs with arbitrary entry sets, numbers and times parse with x509-cert with the same
//!   entries in the same order; the first cases are also verified by `openssl crl`.
//!
//! OpenSSL is spawned for a bounded number of cases per property ([`OPENSSL_CASES`]) so the
//! suite stays quick.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use der::{Decode, Encode};
use proptest::prelude::*;
use rcgen::PublicKeyData;
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair};
use signet_ca::{
    CertStatusKind, Csr, InitOptions, IssuanceUrls, IssuingCa, KeyType, OcspIssuerIds, OcspSigner,
    OffsetDateTime, Policy, Profile, ProfileLimits, RevokedEntry, Serial, SubjectName,
    build_response, generate_ca, parse_ocsp_request,
};
use x509_cert::ext::pkix::name::GeneralName;

/// How many cases of each property are also checked with the openssl CLI.
const OPENSSL_CASES: usize = 32;

const KEY_TYPES: [KeyType; 3] = [KeyType::P256, KeyType::P384, KeyType::Ed25519];

/// One CA per key type, made once per test process.
struct Ca {
    ca: IssuingCa,
    root_pem: String,
    issuing_pem: String,
    signer: OcspSigner,
    ids: OcspIssuerIds,
}

fn cas() -> &'static [Ca] {
    static CAS: OnceLock<Vec<Ca>> = OnceLock::new();
    CAS.get_or_init(|| {
        KEY_TYPES
            .iter()
            .map(|&key_type| {
                let mut opts = InitOptions::new("Property CA");
                opts.key_type = key_type;
                let now = OffsetDateTime::now_utc();
                let bundle = generate_ca(&opts, now).unwrap();
                let ca = IssuingCa::new(
                    &bundle.issuing_cert_pem,
                    &bundle.root_cert_pem,
                    bundle.issuing_key,
                    IssuanceUrls {
                        ocsp: Some("http://ocsp.test/ocsp".into()),
                        ca_issuers: Some("http://ocsp.test/ca.crt".into()),
                        crl: Some("http://ocsp.test/crl".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
                let rng = SystemRandom::new();
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                        .unwrap();
                let spki = rcgen::KeyPair::try_from(pkcs8.as_ref())
                    .unwrap()
                    .subject_public_key_info();
                let signer_cert = ca
                    .issue_ocsp_signer(&spki, Duration::from_secs(86_400), now)
                    .unwrap();
                let signer = OcspSigner::new(pkcs8.as_ref(), &signer_cert.der).unwrap();
                let ids = OcspIssuerIds::from_cert_der(ca.cert_der()).unwrap();
                Ca {
                    ca,
                    root_pem: bundle.root_cert_pem,
                    issuing_pem: bundle.issuing_cert_pem,
                    signer,
                    ids,
                }
            })
            .collect()
    })
}

/// Requester keys, one per algorithm rcgen can make (RSA CSRs are covered by the openssl
/// CSRs of `tests/issuance.rs`).
fn requester_keys() -> &'static [rcgen::KeyPair] {
    static KEYS: OnceLock<Vec<rcgen::KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ]
        .iter()
        .map(|alg| rcgen::KeyPair::generate_for(alg).unwrap())
        .collect()
    })
}

/// Claim one of the bounded openssl runs of a property.
fn openssl_turn(counter: &AtomicUsize) -> bool {
    counter.fetch_add(1, Ordering::Relaxed) < OPENSSL_CASES
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

fn time(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

// ---- strategies ---------------------------------------------------------------------------

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A DNS label: 1 to 12 letters, digits and inner hyphens.
fn label() -> impl Strategy<Value = String> {
    (
        0..ALNUM.len(),
        proptest::collection::vec(0..ALNUM.len() + 1, 0..10),
        0..ALNUM.len(),
        any::<bool>(),
    )
        .prop_map(|(first, middle, last, single)| {
            let mut s = String::new();
            s.push(ALNUM[first] as char);
            if !single {
                for i in middle {
                    s.push(if i == ALNUM.len() {
                        '-'
                    } else {
                        ALNUM[i] as char
                    });
                }
                s.push(ALNUM[last] as char);
            }
            s
        })
}

/// A DNS name of 2 to 4 labels. The last starts with a letter: an all-numeric top-level
/// label is not a DNS name (RFC 3696 section 2), and "0.0.0.0" would be an IP address.
fn dns() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(label(), 1..=3),
        0..26usize,
        label(),
    )
        .prop_map(|(mut labels, letter, last)| {
            labels.push(format!("{}{last}", ALNUM[letter] as char));
            labels.join(".")
        })
}

/// Any name Signet issues, in the `type:value` form.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => dns().prop_map(|d| format!("dns:{d}")),
        1 => dns().prop_map(|d| format!("dns:*.{d}")),
        2 => any::<[u8; 4]>().prop_map(|b| format!("ip:{}", IpAddr::from(b))),
        2 => any::<[u8; 16]>().prop_map(|b| format!("ip:{}", IpAddr::from(b))),
        1 => (dns(), label(), label())
            .prop_map(|(d, ns, sa)| format!("uri:spiffe://{d}/ns/{ns}/sa/{sa}")),
        1 => (dns(), label()).prop_map(|(d, p)| format!("uri:https://{d}/{p}")),
        1 => (label(), dns()).prop_map(|(l, d)| format!("email:{l}@{d}")),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    prop_oneof![
        Just(Profile::Server),
        Just(Profile::Client),
        Just(Profile::Peer)
    ]
}

/// A positive serial of at most 20 DER octets, as unsigned big-endian bytes.
fn serial() -> impl Strategy<Value = Serial> {
    proptest::collection::vec(any::<u8>(), 1..=20)
        .prop_filter_map("not a valid serial", |b| Serial::from_be_bytes(&b).ok())
}

/// A CRLReason code Signet writes (None and 0 mean "no reason").
fn reason() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        Just(None),
        (0u8..=10)
            .prop_filter("7 is unused, 8 is removeFromCRL", |c| *c != 7 && *c != 8)
            .prop_map(Some),
    ]
}

/// Unix seconds from 1990 to 2200: both UTCTime and GeneralizedTime ranges of X.509.
fn unix_time() -> impl Strategy<Value = i64> {
    631_152_000i64..7_258_118_400i64
}

// ---- certificates -------------------------------------------------------------------------

fn san_type(name: &SubjectName) -> rcgen::SanType {
    match name {
        SubjectName::Dns(d) => rcgen::SanType::DnsName(d.as_str().try_into().unwrap()),
        SubjectName::Ip(ip) => rcgen::SanType::IpAddress(*ip),
        SubjectName::Uri(u) => rcgen::SanType::URI(u.as_str().try_into().unwrap()),
        SubjectName::Email(e) => rcgen::SanType::Rfc822Name(e.as_str().try_into().unwrap()),
    }
}

fn tagged(gn: &GeneralName) -> String {
    match gn {
        GeneralName::DnsName(s) => format!("dns:{}", s.as_str()),
        GeneralName::UniformResourceIdentifier(s) => format!("uri:{}", s.as_str()),
        GeneralName::Rfc822Name(s) => format!("email:{}", s.as_str()),
        GeneralName::IpAddress(o) => match o.as_bytes().len() {
            4 => format!(
                "ip:{}",
                IpAddr::from(<[u8; 4]>::try_from(o.as_bytes()).unwrap())
            ),
            16 => format!(
                "ip:{}",
                IpAddr::from(<[u8; 16]>::try_from(o.as_bytes()).unwrap())
            ),
            n => panic!("an IP SAN of {n} octets"),
        },
        other => panic!("unexpected SAN {other:?}"),
    }
}

static CERT_OPENSSL: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn issued_certificates_read_back_with_the_names_key_and_lifetime_asked_for(
        first in dns(),
        more in proptest::collection::vec(name(), 0..40),
        with_cn in any::<bool>(),
        profile in profile(),
        ca_index in 0..KEY_TYPES.len(),
        key_index in 0..3usize,
        ttl_minutes in 1u64..=7 * 24 * 60,
    ) {
        let f = &cas()[ca_index];
        let key = &requester_keys()[key_index];
        let names: BTreeSet<SubjectName> = std::iter::once(format!("dns:{first}"))
            .chain(more)
            .map(|n| SubjectName::parse_tagged(&n).unwrap())
            .collect();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if with_cn {
            params.distinguished_name.push(rcgen::DnType::CommonName, first.as_str());
        }
        params.subject_alt_names = names.iter().map(san_type).collect();
        let csr_der = params.serialize_request(key).unwrap().der().to_vec();
        let csr = Csr::from_pem_or_der(&csr_der).unwrap();
        let want_names: Vec<SubjectName> = names.iter().cloned().collect();
        prop_assert_eq!(csr.names(), want_names.as_slice());

        let mut policy = Policy::allow_all();
        policy.allow_wildcard_names = true;
        let ttl = Duration::from_secs(ttl_minutes * 60);
        let now = OffsetDateTime::now_utc();
        let issued = f
            .ca
            .issue(
                &csr,
                profile,
                &ProfileLimits::default(),
                Some(signet_ca::Lifetime::new(ttl).unwrap()),
                &policy,
                now,
            )
            .unwrap();

        // x509-cert reads back exactly what was asked for.
        let cert = x509_cert::Certificate::from_der(&issued.der).unwrap();
        let tbs = &cert.tbs_certificate;
        prop_assert_eq!(
            tbs.subject_public_key_info.to_der().unwrap(),
            key.subject_public_key_info()
        );
        prop_assert_eq!(
            Serial::from_be_bytes(tbs.serial_number.as_bytes()).unwrap(),
            issued.serial.clone()
        );
        let not_before = tbs.validity.not_before.to_unix_duration();
        let not_after = tbs.validity.not_after.to_unix_duration();
        prop_assert_eq!(not_after - not_before, ttl + Duration::from_secs(60));
        let exts = tbs.extensions.as_ref().unwrap();
        let find = |oid: &str| {
            let oid = der::asn1::ObjectIdentifier::new_unwrap(oid);
            exts.iter().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes().to_vec())
        };
        let bc = x509_cert::ext::pkix::BasicConstraints::from_der(&find("2.5.29.19").unwrap())
            .unwrap();
        prop_assert!(!bc.ca && bc.path_len_constraint.is_none());
        let san = x509_cert::ext::pkix::SubjectAltName::from_der(&find("2.5.29.17").unwrap())
            .unwrap();
        let got: BTreeSet<String> = san.0.iter().map(tagged).collect();
        let want: BTreeSet<String> = names.iter().map(SubjectName::to_tagged).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(san.0.len(), names.len(), "no name twice");

        // OpenSSL reads it too, and it chains to the root for its purpose.
        if openssl_turn(&CERT_OPENSSL) {
            let dir = tempfile::tempdir().unwrap();
            let leaf = dir.path().join("leaf.pem");
            let root = dir.path().join("root.pem");
            let issuing = dir.path().join("issuing.pem");
            std::fs::write(&leaf, issued.pem()).unwrap();
            std::fs::write(&root, &f.root_pem).unwrap();
            std::fs::write(&issuing, &f.issuing_pem).unwrap();
            let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()]);
            prop_assert!(ok, "{}", text);
            prop_assert!(text.contains("CA:FALSE"), "{}", text);
            for n in &names {
                match n {
                    SubjectName::Dns(d) => {
                        prop_assert!(text.contains(&format!("DNS:{d}")), "{} in {}", d, text)
                    }
                    SubjectName::Uri(u) => {
                        prop_assert!(text.contains(&format!("URI:{u}")), "{} in {}", u, text)
                    }
                    SubjectName::Email(e) => {
                        prop_assert!(text.contains(&format!("email:{e}")), "{} in {}", e, text)
                    }
                    SubjectName::Ip(_) => {}
                }
            }
            let ips = names.iter().filter(|n| matches!(n, SubjectName::Ip(_))).count();
            prop_assert_eq!(text.matches("IP Address:").count(), ips, "{}", text);
            let purpose = if profile.server_auth() { "sslserver" } else { "sslclient" };
            let (ok, text) = openssl(&[
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                issuing.to_str().unwrap(),
                "-purpose",
                purpose,
                leaf.to_str().unwrap(),
            ]);
            prop_assert!(ok && text.contains(": OK"), "{}", text);
        }
    }
}

// ---- OCSP ---------------------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// An OCSP request for `serials` under `f`'s issuer, written here (not by Signet).
fn ocsp_request(f: &Ca, serials: &[Serial], sha256: bool, nonce: Option<&[u8]>) -> Vec<u8> {
    let cert = x509_cert::Certificate::from_der(f.ca.cert_der()).unwrap();
    let name = cert.tbs_certificate.subject.to_der().unwrap();
    let key = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let (alg, oid): (&ring::digest::Algorithm, &[u8]) = if sha256 {
        (
            &ring::digest::SHA256,
            &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
            ],
        )
    } else {
        (
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a],
        )
    };
    let alg_id = tlv(0x30, &[oid, &[0x05, 0x00][..]].concat());
    let mut requests = Vec::new();
    for serial in serials {
        let mut int = serial.as_bytes().to_vec();
        if int[0] & 0x80 != 0 {
            int.insert(0, 0);
        }
        let cert_id = tlv(
            0x30,
            &[
                alg_id.clone(),
                tlv(0x04, ring::digest::digest(alg, &name).as_ref()),
                tlv(0x04, ring::digest::digest(alg, key).as_ref()),
                tlv(0x02, &int),
            ]
            .concat(),
        );
        requests.extend(tlv(0x30, &cert_id));
    }
    let mut tbs = tlv(0x30, &requests);
    if let Some(nonce) = nonce {
        let ext = tlv(
            0x30,
            &[
                &[0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 2][..],
                &tlv(0x04, &tlv(0x04, nonce)),
            ]
            .concat(),
        );
        tbs.extend(tlv(0xa2, &tlv(0x30, &ext)));
    }
    tlv(0x30, &tlv(0x30, &tbs))
}

#[derive(Clone, Debug)]
enum Status {
    Good,
    Unknown,
    Revoked(i64, Option<u8>),
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Good),
        Just(Status::Unknown),
        (unix_time(), reason()).prop_map(|(t, r)| Status::Revoked(t, r)),
    ]
}

static OCSP_OPENSSL: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn ocsp_responses_read_back_with_the_serials_statuses_and_reasons_given(
        entries in proptest::collection::vec((serial(), status()), 1..=signet_ca::MAX_OCSP_CERT_IDS),
        this_update in unix_time(),
        validity in 1i64..=30 * 86_400,
        sha256 in any::<bool>(),
        nonce in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=32)),
        ca_index in 0..KEY_TYPES.len(),
    ) {
        let f = &cas()[ca_index];
        let serials: Vec<Serial> = entries.iter().map(|(s, _)| s.clone()).collect();
        let req = parse_ocsp_request(&ocsp_request(f, &serials, sha256, nonce.as_deref())).unwrap();
        prop_assert_eq!(req.nonce(), nonce.as_deref());
        prop_assert_eq!(req.cert_ids().len(), entries.len());
        let answers: Vec<_> = req
            .cert_ids()
            .iter()
            .zip(&entries)
            .map(|(id, (serial, status))| {
                assert_eq!(id.serial(), serial);
                assert!(f.ids.matches(id), "our own issuer hashes");
                let kind = match status {
                    Status::Good => CertStatusKind::Good,
                    Status::Unknown => CertStatusKind::Unknown,
                    Status::Revoked(at, reason) => CertStatusKind::Revoked {
                        at: time(*at),
                        reason: *reason,
                    },
                };
                (id, kind)
            })
            .collect();
        let der = build_response(
            &f.signer,
            &answers,
            time(this_update),
            time(this_update + validity),
            req.nonce(),
        )
        .unwrap();

        let resp = x509_ocsp::OcspResponse::from_der(&der).unwrap();
        prop_assert_eq!(resp.response_status, x509_ocsp::OcspResponseStatus::Successful);
        let basic =
            x509_ocsp::BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes())
                .unwrap();
        let data = &basic.tbs_response_data;
        prop_assert_eq!(data.produced_at.0.to_unix_duration().as_secs() as i64, this_update);
        prop_assert_eq!(
            basic.nonce().map(|n| n.0.as_bytes().to_vec()),
            nonce.clone()
        );
        prop_assert_eq!(data.responses.len(), entries.len());
        for (single, ((serial, status), (id, _))) in
            data.responses.iter().zip(entries.iter().zip(&answers))
        {
            prop_assert_eq!(&single.cert_id.to_der().unwrap(), id.der());
            prop_assert_eq!(
                &Serial::from_be_bytes(single.cert_id.serial_number.as_bytes()).unwrap(),
                serial
            );
            prop_assert_eq!(single.this_update.0.to_unix_duration().as_secs() as i64, this_update);
            prop_assert_eq!(
                single.next_update.map(|t| t.0.to_unix_duration().as_secs() as i64),
                Some(this_update + validity)
            );
            match (status, &single.cert_status) {
                (Status::Good, x509_ocsp::CertStatus::Good(_))
                | (Status::Unknown, x509_ocsp::CertStatus::Unknown(_)) => {}
                (Status::Revoked(at, reason), x509_ocsp::CertStatus::Revoked(info)) => {
                    prop_assert_eq!(info.revocation_time.0.to_unix_duration().as_secs() as i64, *at);
                    let want = reason.filter(|r| *r != 0);
                    prop_assert_eq!(info.revocation_reason.map(|r| r as u8), want);
                }
                (want, got) => prop_assert!(false, "wanted {:?}, read {:?}", want, got),
            }
        }

        if openssl_turn(&OCSP_OPENSSL) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("resp.der");
            std::fs::write(&path, &der).unwrap();
            let (ok, text) =
                openssl(&["ocsp", "-respin", path.to_str().unwrap(), "-resp_text", "-noverify"]);
            prop_assert!(ok, "{}", text);
            for (label, want) in [
                ("Cert Status: good", entries.iter().filter(|(_, s)| matches!(s, Status::Good)).count()),
                ("Cert Status: unknown", entries.iter().filter(|(_, s)| matches!(s, Status::Unknown)).count()),
                ("Cert Status: revoked", entries.iter().filter(|(_, s)| matches!(s, Status::Revoked(..))).count()),
            ] {
                prop_assert_eq!(text.matches(label).count(), want, "{} in {}", label, text);
            }
            for (serial, _) in &entries {
                let hex = serial.to_hex().to_ascii_uppercase();
                let hex = hex.trim_start_matches('0');
                prop_assert!(text.contains(hex), "serial {} in {}", hex, text);
            }
        }
    }
}

// ---- CRLs ---------------------------------------------------------------------------------

static CRL_OPENSSL: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn crls_read_back_with_exactly_the_entries_given(
        entries in proptest::collection::btree_map(serial(), (unix_time(), reason()), 0..60),
        number in any::<u64>(),
        this_update in unix_time(),
        validity in 1i64..=30 * 86_400,
        ca_index in 0..KEY_TYPES.len(),
    ) {
        let f = &cas()[ca_index];
        let list: Vec<RevokedEntry> = entries
            .iter()
            .map(|(serial, (at, reason))| RevokedEntry {
                serial: serial.clone(),
                revoked_at: time(*at),
                reason: *reason,
            })
            .collect();
        let der = f.ca.crl_signer().unwrap().sign_crl(number,
            time(this_update),
            time(this_update + validity),
            list.clone(),
        )
        .unwrap();

        let crl = x509_cert::crl::CertificateList::from_der(&der).unwrap();
        let tbs = &crl.tbs_cert_list;
        prop_assert_eq!(tbs.this_update.to_unix_duration().as_secs() as i64, this_update);
        prop_assert_eq!(
            tbs.next_update.map(|t| t.to_unix_duration().as_secs() as i64),
            Some(this_update + validity)
        );
        let read: Vec<_> = tbs.revoked_certificates.iter().flatten().collect();
        prop_assert_eq!(read.len(), list.len());
        prop_assert_eq!(tbs.revoked_certificates.is_none(), list.is_empty(), "an empty list is absent");
        let reason_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");
        for (got, want) in read.iter().zip(&list) {
            prop_assert_eq!(
                &Serial::from_be_bytes(got.serial_number.as_bytes()).unwrap(),
                &want.serial
            );
            prop_assert_eq!(
                got.revocation_date.to_unix_duration().as_secs() as i64,
                want.revoked_at.unix_timestamp()
            );
            let reason = got
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == reason_oid)
                .map(|e| x509_cert::ext::pkix::CrlReason::from_der(e.extn_value.as_bytes()).unwrap() as u8);
            prop_assert_eq!(reason, want.reason.filter(|r| *r != 0));
        }
        let number_oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");
        let crl_number = tbs
            .crl_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == number_oid)
            .map(|e| x509_cert::ext::pkix::CrlNumber::from_der(e.extn_value.as_bytes()).unwrap())
            .unwrap();
        let bytes = crl_number.0.as_bytes();
        prop_assert!(bytes.len() <= 9);
        let value = bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        prop_assert_eq!(value, u128::from(number));

        if openssl_turn(&CRL_OPENSSL) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crl.der");
            let issuing = dir.path().join("issuing.pem");
            std::fs::write(&path, &der).unwrap();
            std::fs::write(&issuing, &f.issuing_pem).unwrap();
            let (ok, text) = openssl(&[
                "crl",
                "-inform",
                "DER",
                "-in",
                path.to_str().unwrap(),
                "-CAfile",
                issuing.to_str().unwrap(),
                "-noout",
                "-text",
            ]);
            prop_assert!(ok && text.contains("verify OK"), "{}", text);
            prop_assert_eq!(text.matches("Serial Number:").count(), list.len(), "{}", text);
            let with_reason = list.iter().filter(|e| e.reason.is_some_and(|r| r != 0)).count();
            prop_assert_eq!(text.matches("X509v3 CRL Reason Code").count(), with_reason, "{}", text);
        }
    }
}
