//! Reading certificates and other PKI objects back.
//!
//! - [`CertificateInfo`]: the parts of a certificate Signet issued that renewal and mTLS
//!   authentication act on.
//! - [`inspect`]: a readable description of any certificate, chain, CSR, CRL or OCSP
//!   response (PEM or DER, detected), for `signet inspect`. The input is untrusted: nothing
//!   in it can make this panic, a malformed part of an object is reported in its `problems`
//!   and the rest is still shown, and private keys are never decoded or shown.

use const_oid::db::rfc5280;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectAltName};

use crate::CaError;
use crate::names::SubjectName;
use signet_pkix::cert::find_extension;
use signet_pkix::{RevocationReason, Serial, rfc3339};

/// The parts of an issued certificate Signet acts on.
#[derive(Clone, Debug)]
pub struct CertificateInfo {
    /// Serial number.
    pub serial: Serial,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Names in the subjectAltName.
    pub names: Vec<SubjectName>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The authority key identifier (the issuer's key id), if present.
    pub authority_key_id: Option<Vec<u8>>,
}

impl CertificateInfo {
    /// Parse a DER certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, CaError> {
        let bad = |e: der::Error| CaError::CaCertificate(e.to_string());
        let cert = Certificate::from_der(der_bytes).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let serial = Serial::from_be_bytes(tbs.serial_number.as_bytes())?;
        let spki_der = tbs.subject_public_key_info.to_der().map_err(bad)?;
        let mut common_name = None;
        for rdn in tbs.subject.0.iter() {
            for atv in rdn.0.iter().filter(|a| a.oid == const_oid::db::rfc4519::CN) {
                if let Ok(s) = atv.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                    common_name = Some(s.as_str().to_string());
                } else if let Ok(s) = atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>() {
                    common_name = Some(s.as_str().to_string());
                }
            }
        }
        let mut names = Vec::new();
        if let Some(san) = find_extension::<SubjectAltName>(&cert, rfc5280::ID_CE_SUBJECT_ALT_NAME)?
        {
            for gn in &san.0 {
                names.push(crate::csr::general_name(gn)?);
            }
        }
        let aki = find_extension::<AuthorityKeyIdentifier>(
            &cert,
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        )?
        .and_then(|a| a.key_identifier.map(|k| k.as_bytes().to_vec()));
        let secs = |d: std::time::Duration| {
            i64::try_from(d.as_secs())
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(|| CaError::CaCertificate("validity out of range".into()))
        };
        Ok(CertificateInfo {
            serial,
            spki_der,
            common_name,
            names,
            not_before: secs(tbs.validity.not_before.to_unix_duration())?,
            not_after: secs(tbs.validity.not_after.to_unix_duration())?,
            authority_key_id: aki,
        })
    }
}

/// The largest input [`inspect`] reads: far more than any chain or CRL Signet makes.
pub const MAX_INSPECT_LEN: usize = 16 << 20;
/// The most objects [`inspect`] describes in one input.
const MAX_OBJECTS: usize = 1000;

/// One object found by [`inspect`], tagged by `kind` in JSON.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Inspected {
    /// An X.509 certificate (RFC 5280 section 4.1).
    Certificate(Box<CertificateView>),
    /// A PKCS#10 certificate signing request (RFC 2986).
    Csr(Box<CsrView>),
    /// An X.509 CRL (RFC 5280 section 5.1).
    Crl(Box<CrlView>),
    /// An OCSP response (RFC 6960 section 4.2).
    OcspResponse(Box<OcspResponseView>),
    /// A PEM block that is not one of the above (a private key is only named, never shown).
    Other {
        /// Its PEM label.
        label: String,
    },
}

/// A public key's type and size.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublicKeyView {
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `X25519`, `X448`, or the algorithm's OID.
    pub algorithm: String,
    /// The named curve of an EC key (`P-256`, `P-384`, `P-521`, or its OID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
    /// The key size in bits (RSA modulus, curve size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
}

/// basicConstraints (RFC 5280 section 4.2.1.9).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BasicConstraintsView {
    /// cA.
    pub ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u8>,
}

/// authorityInfoAccess (RFC 5280 section 4.2.2.1): the URIs by access method.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthorityInfoAccessView {
    /// id-ad-ocsp.
    pub ocsp: Vec<String>,
    /// id-ad-caIssuers.
    pub ca_issuers: Vec<String>,
}

/// One extension as listed in the object: its OID, name when known, and criticality.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExtensionView {
    /// Dotted OID.
    pub oid: String,
    /// Its usual name (`subjectAltName`), or empty when unknown.
    pub name: String,
    /// Whether it is marked critical.
    pub critical: bool,
}

/// SHA-256 and SHA-1 of an object's DER, lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FingerprintsView {
    /// SHA-256.
    pub sha256: String,
    /// SHA-1 (what many tools still print).
    pub sha1: String,
}

/// What a certificate says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertificateView {
    /// 1, 2 or 3.
    pub version: u8,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The signature algorithm's name (or OID).
    pub signature_algorithm: String,
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// The subject public key.
    pub public_key: PublicKeyView,
    /// subjectAltName entries, tagged: `dns:`, `ip:`, `uri:`, `email:`, `dirname:`,
    /// `othername:`, `rid:`.
    pub subject_alt_names: Vec<String>,
    /// keyUsage bits by RFC 5280 name.
    pub key_usage: Vec<String>,
    /// extendedKeyUsage purposes by name (`serverAuth`) or OID.
    pub extended_key_usage: Vec<String>,
    /// basicConstraints, if present.
    pub basic_constraints: Option<BasicConstraintsView>,
    /// authorityInfoAccess URIs.
    pub authority_info_access: AuthorityInfoAccessView,
    /// cRLDistributionPoints URIs.
    pub crl_distribution_points: Vec<String>,
    /// subjectKeyIdentifier, lowercase hex.
    pub subject_key_id: Option<String>,
    /// authorityKeyIdentifier keyIdentifier, lowercase hex.
    pub authority_key_id: Option<String>,
    /// Issuer and subject are the same and the certificate's own key verifies its signature.
    pub self_signed: bool,
    /// Every extension, in order.
    pub extensions: Vec<ExtensionView>,
    /// Fingerprints of the certificate's DER.
    pub fingerprints: FingerprintsView,
    /// Parts that could not be read (the rest is still shown).
    pub problems: Vec<String>,
}

/// What a CSR says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CsrView {
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// The public key.
    pub public_key: PublicKeyView,
    /// The signature algorithm's name (or OID).
    pub signature_algorithm: String,
    /// Whether the self-signature verifies with the CSR's key (algorithms Signet accepts).
    pub signature_valid: bool,
    /// Requested subjectAltName entries (tagged as for certificates).
    pub subject_alt_names: Vec<String>,
    /// Requested keyUsage.
    pub key_usage: Vec<String>,
    /// Requested extendedKeyUsage.
    pub extended_key_usage: Vec<String>,
    /// Requested basicConstraints.
    pub basic_constraints: Option<BasicConstraintsView>,
    /// Every requested extension.
    pub extensions: Vec<ExtensionView>,
    /// Parts that could not be read.
    pub problems: Vec<String>,
}

/// One revoked certificate on a CRL.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CrlEntryView {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// revocationDate, RFC 3339.
    pub revoked_at: String,
    /// The CRLReason (`keyCompromise`), when the entry carries one.
    pub reason: Option<String>,
}

/// What a CRL says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlView {
    /// 1 or 2.
    pub version: u8,
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// The signature algorithm's name (or OID).
    pub signature_algorithm: String,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: Option<String>,
    /// cRLNumber, decimal.
    pub crl_number: Option<String>,
    /// authorityKeyIdentifier keyIdentifier, lowercase hex.
    pub authority_key_id: Option<String>,
    /// The revoked certificates.
    pub revoked: Vec<CrlEntryView>,
    /// Every CRL extension.
    pub extensions: Vec<ExtensionView>,
    /// Fingerprints of the CRL's DER.
    pub fingerprints: FingerprintsView,
    /// Parts that could not be read.
    pub problems: Vec<String>,
}

/// One SingleResponse of an OCSP response.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OcspSingleView {
    /// The CertID's serial number, lowercase hex.
    pub serial: String,
    /// The CertID's hash algorithm (`SHA-1`, `SHA-256`, or OID).
    pub hash_algorithm: String,
    /// issuerNameHash, lowercase hex.
    pub issuer_name_hash: String,
    /// issuerKeyHash, lowercase hex.
    pub issuer_key_hash: String,
    /// `good`, `revoked` or `unknown`.
    pub status: String,
    /// revocationTime, RFC 3339.
    pub revoked_at: Option<String>,
    /// revocationReason.
    pub revocation_reason: Option<String>,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: Option<String>,
}

/// What an OCSP response says (its signature is not checked here: see
/// [`crate::verify_ocsp_response`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct OcspResponseView {
    /// responseStatus: `successful`, `malformedRequest`, `internalError`, `tryLater`,
    /// `sigRequired` or `unauthorized`.
    pub response_status: String,
    /// producedAt, RFC 3339.
    pub produced_at: Option<String>,
    /// The responder: `name:` + DN, or `key:` + SHA-1 key hash in hex.
    pub responder_id: Option<String>,
    /// The signature algorithm's name (or OID).
    pub signature_algorithm: Option<String>,
    /// The nonce extension's value, lowercase hex.
    pub nonce: Option<String>,
    /// One entry per certificate answered for.
    pub responses: Vec<OcspSingleView>,
    /// The certificates carried in `certs` (a delegated responder's).
    pub certificates: Vec<CertificateView>,
    /// Parts that could not be read.
    pub problems: Vec<String>,
}

/// Describe every object in `input`: PEM (any number of blocks) or one DER object, whose
/// type is detected. Errors only when nothing in the input is recognised.
pub fn inspect(input: &[u8]) -> Result<Vec<Inspected>, CaError> {
    if input.len() > MAX_INSPECT_LEN {
        return Err(inspect_error(format!(
            "the input is larger than {MAX_INSPECT_LEN} bytes"
        )));
    }
    let blocks = pem_blocks(input);
    if blocks.is_empty() {
        if input.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(inspect_error("no readable PEM block"));
        }
        return Ok(vec![inspect_der(input)?]);
    }
    let mut out = Vec::new();
    for block in blocks.into_iter().take(MAX_OBJECTS) {
        let (label, der) = block?;
        let obj = match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                Inspected::Certificate(Box::new(describe_certificate(&der)?))
            }
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                Inspected::Csr(Box::new(describe_csr(&der)?))
            }
            "X509 CRL" => Inspected::Crl(Box::new(describe_crl(&der)?)),
            "OCSP RESPONSE" => Inspected::OcspResponse(Box::new(describe_ocsp_response(&der)?)),
            _ => Inspected::Other { label },
        };
        out.push(obj);
    }
    Ok(out)
}

fn inspect_error(why: impl Into<String>) -> CaError {
    CaError::Inspect(why.into())
}

/// One DER object: a certificate, CSR, CRL or OCSP response, tried in that order.
fn inspect_der(der_bytes: &[u8]) -> Result<Inspected, CaError> {
    if Certificate::from_der(der_bytes).is_ok() {
        return describe_certificate(der_bytes).map(|v| Inspected::Certificate(Box::new(v)));
    }
    if x509_cert::request::CertReq::from_der(der_bytes).is_ok() {
        return describe_csr(der_bytes).map(|v| Inspected::Csr(Box::new(v)));
    }
    if x509_cert::crl::CertificateList::from_der(der_bytes).is_ok() {
        return describe_crl(der_bytes).map(|v| Inspected::Crl(Box::new(v)));
    }
    if x509_ocsp::OcspResponse::from_der(der_bytes).is_ok() {
        return describe_ocsp_response(der_bytes).map(|v| Inspected::OcspResponse(Box::new(v)));
    }
    Err(inspect_error(
        "not PEM, and not a DER certificate, CSR, CRL or OCSP response",
    ))
}

/// The PEM blocks of `input` with their labels, in order (text outside blocks is ignored,
/// as openssl does).
fn pem_blocks(input: &[u8]) -> Vec<Result<(String, Vec<u8>), CaError>> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            out.push(Err(inspect_error(format!(
                "the PEM block {:?} has no END line",
                label.chars().take(40).collect::<String>()
            ))));
            break;
        };
        let block_end = start + end + end_marker.len();
        let block = &rest[start..block_end];
        out.push(
            pem_rfc7468::decode_vec(block.as_bytes())
                .map(|(l, der)| (l.to_string(), der))
                .map_err(|e| inspect_error(format!("malformed PEM block {label:?}: {e}"))),
        );
        rest = &rest[block_end..];
    }
    out
}

/// Lowercase hex of a DER INTEGER's content without leading zero octets (one kept for zero).
fn serial_hex(bytes: &[u8]) -> String {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode(&bytes[first.min(bytes.len())..])
}

fn fingerprints(der_bytes: &[u8]) -> FingerprintsView {
    use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
    FingerprintsView {
        sha256: hex::encode(digest(&SHA256, der_bytes)),
        sha1: hex::encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der_bytes)),
    }
}

/// A DN as RFC 4514 text; never fails (an unprintable value is written as `#hex`).
fn dn(name: &x509_cert::name::Name) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if write!(s, "{name}").is_err() {
        s = "<unprintable name>".into();
    }
    s
}

fn x509_time(t: &x509_cert::time::Time) -> String {
    let d = t.to_unix_duration();
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map(rfc3339)
        .unwrap_or_else(|| "<out of range>".into())
}

fn generalized_time(t: &der::asn1::GeneralizedTime) -> String {
    let d = t.to_unix_duration();
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map(rfc3339)
        .unwrap_or_else(|| "<out of range>".into())
}

/// Names of the algorithm OIDs Signet meets; others are shown as dotted OIDs.
fn oid_name(oid: &const_oid::ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.14.3.2.26" => "SHA-1",
        "2.16.840.1.101.3.4.2.1" => "SHA-256",
        "2.16.840.1.101.3.4.2.2" => "SHA-384",
        "2.16.840.1.101.3.4.2.3" => "SHA-512",
        other => return other.to_string(),
    };
    name.to_string()
}

fn extension_name(oid: &const_oid::ObjectIdentifier) -> &'static str {
    match oid.to_string().as_str() {
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.20" => "cRLNumber",
        "2.5.29.21" => "cRLReason",
        "2.5.29.27" => "deltaCRLIndicator",
        "2.5.29.28" => "issuingDistributionPoint",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "cRLDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.37" => "extendedKeyUsage",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.5.5.7.48.1.2" => "ocspNonce",
        "1.3.6.1.5.5.7.48.1.5" => "ocspNoCheck",
        "1.3.6.1.4.1.11129.2.4.2" => "ctPrecertificateSCTs",
        _ => "",
    }
}

fn eku_name(oid: &const_oid::ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.6.1.5.5.7.3.1" => "serverAuth".into(),
        "1.3.6.1.5.5.7.3.2" => "clientAuth".into(),
        "1.3.6.1.5.5.7.3.3" => "codeSigning".into(),
        "1.3.6.1.5.5.7.3.4" => "emailProtection".into(),
        "1.3.6.1.5.5.7.3.8" => "timeStamping".into(),
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning".into(),
        "2.5.29.37.0" => "anyExtendedKeyUsage".into(),
        other => other.to_string(),
    }
}

fn reason_name(r: x509_cert::ext::pkix::CrlReason) -> String {
    // x509-cert's CrlReason carries RFC 5280's codes as its discriminants.
    RevocationReason::from_code(r as u8)
        .map_or_else(|_| format!("reason {}", r as u8), |r| r.name().to_string())
}

fn public_key(spki: &spki::SubjectPublicKeyInfoOwned) -> PublicKeyView {
    let oid = spki.algorithm.oid.to_string();
    let mut view = PublicKeyView {
        algorithm: oid.clone(),
        ..PublicKeyView::default()
    };
    match oid.as_str() {
        "1.2.840.113549.1.1.1" => {
            view.algorithm = "RSA".into();
            view.bits = spki
                .subject_public_key
                .as_bytes()
                .and_then(rsa_modulus_bits);
        }
        "1.2.840.10045.2.1" => {
            view.algorithm = "EC".into();
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
            let (name, bits) = match curve.as_ref().map(ToString::to_string).as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256".to_string(), Some(256)),
                Some("1.3.132.0.34") => ("P-384".to_string(), Some(384)),
                Some("1.3.132.0.35") => ("P-521".to_string(), Some(521)),
                Some(other) => (other.to_string(), None),
                None => ("<no named curve>".to_string(), None),
            };
            view.curve = Some(name);
            view.bits = bits;
        }
        "1.3.101.112" => {
            view.algorithm = "Ed25519".into();
            view.bits = Some(256);
        }
        "1.3.101.113" => {
            view.algorithm = "Ed448".into();
            view.bits = Some(456);
        }
        "1.3.101.110" => {
            view.algorithm = "X25519".into();
            view.bits = Some(256);
        }
        "1.3.101.111" => {
            view.algorithm = "X448".into();
            view.bits = Some(448);
        }
        _ => {}
    }
    view
}

/// The modulus size of a PKCS#1 RSAPublicKey (RFC 8017 appendix A.1.1):
/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_modulus_bits(key: &[u8]) -> Option<u32> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        public_exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(key).ok()?;
    let _ = key.public_exponent;
    let n = key.modulus.as_bytes();
    let first = *n.first()?;
    let len = u32::try_from(n.len()).ok()?;
    Some(len.checked_mul(8)? - first.leading_zeros())
}

/// A subjectAltName entry, tagged; every kind is shown (unlike [`crate::csr`], which only
/// accepts the four Signet issues).
fn general_name_text(gn: &x509_cert::ext::pkix::name::GeneralName) -> String {
    use x509_cert::ext::pkix::name::GeneralName as G;
    match gn {
        G::DnsName(s) => format!("dns:{}", s.as_str()),
        G::Rfc822Name(s) => format!("email:{}", s.as_str()),
        G::UniformResourceIdentifier(s) => format!("uri:{}", s.as_str()),
        G::IpAddress(o) => {
            let b = o.as_bytes();
            if let Ok(v4) = <[u8; 4]>::try_from(b) {
                format!("ip:{}", std::net::IpAddr::from(v4))
            } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                format!("ip:{}", std::net::IpAddr::from(v6))
            } else {
                format!("ip:<{} octets: {}>", b.len(), hex::encode(b))
            }
        }
        G::DirectoryName(n) => format!("dirname:{}", dn(n)),
        G::OtherName(o) => format!("othername:{}", o.type_id),
        G::RegisteredId(oid) => format!("rid:{oid}"),
        G::EdiPartyName(_) => "edipartyname".into(),
    }
}

fn uri_of(gn: &x509_cert::ext::pkix::name::GeneralName) -> Option<String> {
    match gn {
        x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
            Some(u.as_str().to_string())
        }
        _ => None,
    }
}

/// The decoded extensions common to certificates and CSRs.
#[derive(Default)]
struct Extensions {
    list: Vec<ExtensionView>,
    sans: Vec<String>,
    key_usage: Vec<String>,
    eku: Vec<String>,
    basic_constraints: Option<BasicConstraintsView>,
    aia: AuthorityInfoAccessView,
    cdp: Vec<String>,
    ski: Option<String>,
    aki: Option<String>,
    problems: Vec<String>,
}

fn read_extensions(exts: &[x509_cert::ext::Extension]) -> Extensions {
    use x509_cert::ext::pkix::{
        BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
        SubjectKeyIdentifier,
    };
    let mut out = Extensions::default();
    for ext in exts.iter().take(1000) {
        let name = extension_name(&ext.extn_id);
        out.list.push(ExtensionView {
            oid: ext.extn_id.to_string(),
            name: name.to_string(),
            critical: ext.critical,
        });
        let value = ext.extn_value.as_bytes();
        let mut problem = |e: der::Error| {
            out.problems
                .push(format!("{} ({}): {e}", name, ext.extn_id));
        };
        match ext.extn_id {
            rfc5280::ID_CE_SUBJECT_ALT_NAME => match SubjectAltName::from_der(value) {
                Ok(san) => out.sans = san.0.iter().map(general_name_text).collect(),
                Err(e) => problem(e),
            },
            rfc5280::ID_CE_KEY_USAGE => match KeyUsage::from_der(value) {
                Ok(ku) => {
                    let all = [
                        (KeyUsages::DigitalSignature, "digitalSignature"),
                        (KeyUsages::NonRepudiation, "nonRepudiation"),
                        (KeyUsages::KeyEncipherment, "keyEncipherment"),
                        (KeyUsages::DataEncipherment, "dataEncipherment"),
                        (KeyUsages::KeyAgreement, "keyAgreement"),
                        (KeyUsages::KeyCertSign, "keyCertSign"),
                        (KeyUsages::CRLSign, "cRLSign"),
                        (KeyUsages::EncipherOnly, "encipherOnly"),
                        (KeyUsages::DecipherOnly, "decipherOnly"),
                    ];
                    out.key_usage = all
                        .iter()
                        .filter(|(flag, _)| ku.0.contains(*flag))
                        .map(|(_, n)| n.to_string())
                        .collect();
                }
                Err(e) => problem(e),
            },
            rfc5280::ID_CE_EXT_KEY_USAGE => match ExtendedKeyUsage::from_der(value) {
                Ok(eku) => out.eku = eku.0.iter().map(eku_name).collect(),
                Err(e) => problem(e),
            },
            rfc5280::ID_CE_BASIC_CONSTRAINTS => match BasicConstraints::from_der(value) {
                Ok(bc) => {
                    out.basic_constraints = Some(BasicConstraintsView {
                        ca: bc.ca,
                        path_len: bc.path_len_constraint,
                    })
                }
                Err(e) => problem(e),
            },
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER => match SubjectKeyIdentifier::from_der(value) {
                Ok(ski) => out.ski = Some(hex::encode(ski.0.as_bytes())),
                Err(e) => problem(e),
            },
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                match AuthorityKeyIdentifier::from_der(value) {
                    Ok(aki) => {
                        out.aki = aki.key_identifier.map(|k| hex::encode(k.as_bytes()));
                    }
                    Err(e) => problem(e),
                }
            }
            rfc5280::ID_PE_AUTHORITY_INFO_ACCESS => {
                match x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(value) {
                    Ok(aia) => {
                        for ad in aia.0 {
                            let Some(uri) = uri_of(&ad.access_location) else {
                                continue;
                            };
                            match ad.access_method.to_string().as_str() {
                                "1.3.6.1.5.5.7.48.1" => out.aia.ocsp.push(uri),
                                "1.3.6.1.5.5.7.48.2" => out.aia.ca_issuers.push(uri),
                                _ => {}
                            }
                        }
                    }
                    Err(e) => problem(e),
                }
            }
            rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS => {
                match CrlDistributionPoints::from_der(value) {
                    Ok(cdp) => {
                        use x509_cert::ext::pkix::name::DistributionPointName;
                        for dp in cdp.0 {
                            if let Some(DistributionPointName::FullName(names)) =
                                dp.distribution_point
                            {
                                out.cdp.extend(names.iter().filter_map(uri_of));
                            }
                        }
                    }
                    Err(e) => problem(e),
                }
            }
            _ => {}
        }
    }
    out
}

/// The three parts of any SIGNED{} structure (certificate, CSR, CRL) as signed:
/// `SEQUENCE { tbs, signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }`.
fn signed_parts(der_bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    use der::{Header, Reader, SliceReader, Tag};
    let mut outer = SliceReader::new(der_bytes).ok()?;
    Header::decode(&mut outer)
        .ok()?
        .tag
        .assert_eq(Tag::Sequence)
        .ok()?;
    let tbs = outer.tlv_bytes().ok()?;
    let alg = outer.tlv_bytes().ok()?;
    let sig = der::asn1::BitStringRef::from_der(outer.tlv_bytes().ok()?).ok()?;
    Some((tbs, alg, sig.as_bytes()?))
}

/// Describe a DER certificate.
pub fn describe_certificate(der_bytes: &[u8]) -> Result<CertificateView, CaError> {
    let cert = Certificate::from_der(der_bytes)
        .map_err(|e| inspect_error(format!("malformed certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let ext = read_extensions(tbs.extensions.as_deref().unwrap_or(&[]));
    let self_signed = tbs.issuer == tbs.subject
        && tbs.subject_public_key_info.to_der().is_ok_and(|spki| {
            signed_parts(der_bytes).is_some_and(|(t, alg, sig)| {
                signet_pkix::cert::signature_verifies(&spki, alg, t, sig)
            })
        });
    Ok(CertificateView {
        version: match tbs.version {
            x509_cert::Version::V1 => 1,
            x509_cert::Version::V2 => 2,
            x509_cert::Version::V3 => 3,
        },
        serial: serial_hex(tbs.serial_number.as_bytes()),
        signature_algorithm: oid_name(&cert.signature_algorithm.oid),
        issuer: dn(&tbs.issuer),
        subject: dn(&tbs.subject),
        not_before: x509_time(&tbs.validity.not_before),
        not_after: x509_time(&tbs.validity.not_after),
        public_key: public_key(&tbs.subject_public_key_info),
        subject_alt_names: ext.sans,
        key_usage: ext.key_usage,
        extended_key_usage: ext.eku,
        basic_constraints: ext.basic_constraints,
        authority_info_access: ext.aia,
        crl_distribution_points: ext.cdp,
        subject_key_id: ext.ski,
        authority_key_id: ext.aki,
        self_signed,
        extensions: ext.list,
        fingerprints: fingerprints(der_bytes),
        problems: ext.problems,
    })
}

/// Describe a DER CSR.
pub fn describe_csr(der_bytes: &[u8]) -> Result<CsrView, CaError> {
    let req = x509_cert::request::CertReq::from_der(der_bytes)
        .map_err(|e| inspect_error(format!("malformed CSR: {e}")))?;
    let mut problems = Vec::new();
    let mut requested = Vec::new();
    for attr in req.info.attributes.iter() {
        // extensionRequest (PKCS#9, RFC 2985 section 5.4.2).
        if attr.oid != const_oid::db::rfc5912::ID_EXTENSION_REQ {
            continue;
        }
        for value in attr.values.iter() {
            match value.decode_as::<x509_cert::request::ExtensionReq>() {
                Ok(req) => requested.extend(req.0),
                Err(e) => problems.push(format!("extensionRequest: {e}")),
            }
        }
    }
    let ext = read_extensions(&requested);
    problems.extend(ext.problems);
    let signature_valid = req.info.public_key.to_der().is_ok_and(|spki| {
        signed_parts(der_bytes)
            .is_some_and(|(t, alg, sig)| signet_pkix::cert::signature_verifies(&spki, alg, t, sig))
    });
    Ok(CsrView {
        subject: dn(&req.info.subject),
        public_key: public_key(&req.info.public_key),
        signature_algorithm: oid_name(&req.algorithm.oid),
        signature_valid,
        subject_alt_names: ext.sans,
        key_usage: ext.key_usage,
        extended_key_usage: ext.eku,
        basic_constraints: ext.basic_constraints,
        extensions: ext.list,
        problems,
    })
}

/// Describe a DER CRL.
pub fn describe_crl(der_bytes: &[u8]) -> Result<CrlView, CaError> {
    let crl = x509_cert::crl::CertificateList::from_der(der_bytes)
        .map_err(|e| inspect_error(format!("malformed CRL: {e}")))?;
    let tbs = &crl.tbs_cert_list;
    let mut problems = Vec::new();
    let mut extensions = Vec::new();
    let mut crl_number = None;
    let mut authority_key_id = None;
    for ext in tbs.crl_extensions.iter().flatten() {
        let name = extension_name(&ext.extn_id);
        extensions.push(ExtensionView {
            oid: ext.extn_id.to_string(),
            name: name.to_string(),
            critical: ext.critical,
        });
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            rfc5280::ID_CE_CRL_NUMBER => match der::asn1::UintRef::from_der(value) {
                Ok(n) => crl_number = Some(decimal(n.as_bytes())),
                Err(e) => problems.push(format!("cRLNumber: {e}")),
            },
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                match AuthorityKeyIdentifier::from_der(value) {
                    Ok(aki) => {
                        authority_key_id = aki.key_identifier.map(|k| hex::encode(k.as_bytes()))
                    }
                    Err(e) => problems.push(format!("authorityKeyIdentifier: {e}")),
                }
            }
            _ => {}
        }
    }
    let mut revoked = Vec::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let mut reason = None;
        for ext in entry.crl_entry_extensions.iter().flatten() {
            if ext.extn_id == rfc5280::ID_CE_CRL_REASONS {
                match x509_cert::ext::pkix::CrlReason::from_der(ext.extn_value.as_bytes()) {
                    Ok(r) => reason = Some(reason_name(r)),
                    Err(e) => problems.push(format!(
                        "the reason of entry {}: {e}",
                        serial_hex(entry.serial_number.as_bytes())
                    )),
                }
            }
        }
        revoked.push(CrlEntryView {
            serial: serial_hex(entry.serial_number.as_bytes()),
            revoked_at: x509_time(&entry.revocation_date),
            reason,
        });
    }
    Ok(CrlView {
        version: match tbs.version {
            x509_cert::Version::V1 => 1,
            x509_cert::Version::V2 => 2,
            x509_cert::Version::V3 => 3,
        },
        issuer: dn(&tbs.issuer),
        signature_algorithm: oid_name(&crl.signature_algorithm.oid),
        this_update: x509_time(&tbs.this_update),
        next_update: tbs.next_update.as_ref().map(x509_time),
        crl_number,
        authority_key_id,
        revoked,
        extensions,
        fingerprints: fingerprints(der_bytes),
        problems,
    })
}

/// An unsigned big-endian integer in decimal (any length: CRL numbers go up to 20 octets).
fn decimal(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0];
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// Describe a DER OCSP response.
pub fn describe_ocsp_response(der_bytes: &[u8]) -> Result<OcspResponseView, CaError> {
    use x509_ocsp::OcspResponseStatus as S;
    let resp = x509_ocsp::OcspResponse::from_der(der_bytes)
        .map_err(|e| inspect_error(format!("malformed OCSP response: {e}")))?;
    let mut view = OcspResponseView {
        response_status: match resp.response_status {
            S::Successful => "successful",
            S::MalformedRequest => "malformedRequest",
            S::InternalError => "internalError",
            S::TryLater => "tryLater",
            S::SigRequired => "sigRequired",
            S::Unauthorized => "unauthorized",
        }
        .to_string(),
        produced_at: None,
        responder_id: None,
        signature_algorithm: None,
        nonce: None,
        responses: Vec::new(),
        certificates: Vec::new(),
        problems: Vec::new(),
    };
    let Some(bytes) = resp.response_bytes else {
        return Ok(view);
    };
    if bytes.response_type.to_string() != "1.3.6.1.5.5.7.48.1.1" {
        view.problems.push(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        ));
        return Ok(view);
    }
    let basic = match x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            view.problems.push(format!("BasicOCSPResponse: {e}"));
            return Ok(view);
        }
    };
    let data = &basic.tbs_response_data;
    view.produced_at = Some(generalized_time(&data.produced_at.0));
    view.responder_id = Some(match &data.responder_id {
        x509_ocsp::ResponderId::ByName(n) => format!("name:{}", dn(n)),
        x509_ocsp::ResponderId::ByKey(k) => format!("key:{}", hex::encode(k.as_bytes())),
    });
    view.signature_algorithm = Some(oid_name(&basic.signature_algorithm.oid));
    for ext in data.response_extensions.iter().flatten() {
        if ext.extn_id.to_string() == "1.3.6.1.5.5.7.48.1.2" {
            // RFC 8954: the nonce is an OCTET STRING inside extnValue; some responders put
            // the raw bytes there instead.
            let value = ext.extn_value.as_bytes();
            let nonce = der::asn1::OctetStringRef::from_der(value)
                .map(|o| o.as_bytes())
                .unwrap_or(value);
            view.nonce = Some(hex::encode(nonce));
        }
    }
    for single in data.responses.iter().take(MAX_OBJECTS) {
        let id = &single.cert_id;
        let (status, revoked_at, reason) = match &single.cert_status {
            x509_ocsp::CertStatus::Good(_) => ("good", None, None),
            x509_ocsp::CertStatus::Unknown(_) => ("unknown", None, None),
            x509_ocsp::CertStatus::Revoked(info) => (
                "revoked",
                Some(generalized_time(&info.revocation_time.0)),
                info.revocation_reason.map(reason_name),
            ),
        };
        view.responses.push(OcspSingleView {
            serial: serial_hex(id.serial_number.as_bytes()),
            hash_algorithm: oid_name(&id.hash_algorithm.oid),
            issuer_name_hash: hex::encode(id.issuer_name_hash.as_bytes()),
            issuer_key_hash: hex::encode(id.issuer_key_hash.as_bytes()),
            status: status.to_string(),
            revoked_at,
            revocation_reason: reason,
            this_update: generalized_time(&single.this_update.0),
            next_update: single.next_update.as_ref().map(|t| generalized_time(&t.0)),
        });
    }
    for cert in basic.certs.iter().flatten().take(MAX_OBJECTS) {
        match cert.to_der() {
            Ok(der_cert) => match describe_certificate(&der_cert) {
                Ok(c) => view.certificates.push(c),
                Err(e) => view.problems.push(e.to_string()),
            },
            Err(e) => view.problems.push(format!("a responder certificate: {e}")),
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_der() -> Vec<u8> {
        let bundle = crate::generate_ca(
            &crate::InitOptions::new("Inspect Test"),
            OffsetDateTime::now_utc(),
        )
        .expect("ca");
        pem_rfc7468::decode_vec(bundle.root_cert_pem.as_bytes())
            .expect("pem")
            .1
    }

    #[test]
    fn a_root_reads_back() {
        let der = root_der();
        let objects = inspect(&der).expect("DER certificate");
        let [Inspected::Certificate(c)] = objects.as_slice() else {
            panic!("{objects:?}");
        };
        assert!(c.self_signed);
        assert_eq!(c.basic_constraints.as_ref().map(|b| b.ca), Some(true));
        assert!(c.key_usage.contains(&"keyCertSign".to_string()));
        assert_eq!(c.public_key.curve.as_deref(), Some("P-256"));
        assert!(
            c.not_after.ends_with('Z') && c.not_after.len() == 20,
            "{}",
            c.not_after
        );
        assert_eq!(c.fingerprints.sha256.len(), 64);
    }

    /// Truncations, bit flips and garbage never panic; whatever still parses encodes as JSON.
    #[test]
    fn hostile_input_never_panics() {
        let der = root_der();
        let pem = pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &der)
            .expect("pem");
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for cut in 0..der.len() {
            inputs.push(der[..cut].to_vec());
        }
        for i in 0..der.len() {
            for bit in [0x01u8, 0x80] {
                let mut v = der.clone();
                v[i] ^= bit;
                inputs.push(v);
            }
        }
        for cut in (0..pem.len()).step_by(7) {
            inputs.push(pem.as_bytes()[..cut].to_vec());
        }
        inputs.push(b"-----BEGIN CERTIFICATE-----".to_vec());
        inputs.push(b"-----BEGIN -----\n-----END -----\n".to_vec());
        inputs.push(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".to_vec());
        inputs.push(vec![0x30, 0x80, 0x00, 0x00]);
        inputs.push(vec![0xff; 64]);
        for input in inputs {
            if let Ok(objects) = inspect(&input) {
                assert!(!objects.is_empty());
                serde_json::to_string(&objects).expect("JSON");
            }
        }
    }

    #[test]
    fn integers_print_in_decimal_and_hex() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0x10, 0x00]), "4096");
        assert_eq!(
            decimal(&[0xff; 16]),
            u128::MAX.to_string(),
            "any length, beyond u64"
        );
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(serial_hex(&[]), "");
    }
}
