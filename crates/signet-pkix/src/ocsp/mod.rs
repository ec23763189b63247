//! OCSP (RFC 6960) under the RFC 5019 lightweight profile: reading requests, recognising an
//! issuer in them, and writing responses signed by a delegated responder certificate; and,
//! in [`client`], the other side: building a request for a staple and verifying the answer.
//!
//! The responder never holds the issuing CA's key. It generates its own key in memory, has the
//! CA sign a short-lived certificate for it (`signet-ca`'s `IssuingCa::issue_ocsp_signer`), and
//! signs responses with an [`OcspSigner`] built from the two. Everything in a response that
//! does not change between calls (the signer certificate, the responder ID, the algorithm
//! identifier) is encoded once in [`OcspSigner::with_key`]; building a response is a few small
//! copies and one signature. Nothing here can sign a certificate: this module is what lets the
//! responder depend on `signet-pkix` and never on the CA core.
//!
//! Requests are parsed with x509-ocsp (strict DER) and then checked against what Signet
//! answers; responses are written by hand with the [`crate::der_writer`], each structure
//! quoted from RFC 6960 next to the code that writes it. Every failure is a [`PkixError`]:
//! [`PkixError::MalformedOcspRequest`] for what a client sent ([`PkixError::ocsp_status`]
//! turns it into the OCSP status to answer with), [`PkixError::OcspSigner`] for an unusable
//! signer, [`PkixError::SigningKey`] for a key that did not sign.

use der::{Decode, Encode, Tagged};
use ring::digest;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;

use crate::cert::{KeyAlgorithm, find_extension, raw_subject_and_key};
use crate::der_writer::{
    TAG_OCTET_STRING, TAG_SEQUENCE, header_len, push_bit_string, push_extension,
    push_generalized_time, push_header, push_tlv, whole_seconds,
};
use crate::{Pkcs8Key, PkixError, RevocationReason, Serial, SignatureAlgorithm, SigningKey};
use std::sync::Arc;

/// The largest OCSP request read. A request for ten CertIDs with a nonce is under 1 KiB; a
/// signed one with a certificate chain a few KiB.
pub const MAX_OCSP_REQUEST_LEN: usize = 16 * 1024;

/// The most CertIDs answered in one request (RFC 5019 clients send one).
pub const MAX_OCSP_CERT_IDS: usize = 10;

/// The nonce sizes accepted (RFC 8954 section 2.1: `Nonce ::= OCTET STRING(SIZE(1..32))`).
pub const OCSP_NONCE_LEN: std::ops::RangeInclusive<usize> = 1..=32;

/// id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2), RFC 6960 section 4.4.1.
const ID_PKIX_OCSP_NONCE: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-kp-OCSPSigning (1.3.6.1.5.5.7.3.9), RFC 5280 section 4.2.1.12.
const ID_KP_OCSP_SIGNING: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_SHA1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The non-successful OCSPResponseStatus values a responder sends (RFC 6960 section 4.2.1).
/// These responses carry no responseBytes and are not signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OcspErrorStatus {
    /// malformedRequest (1): the request did not parse or is not one we answer.
    MalformedRequest,
    /// internalError (2): the responder is in an inconsistent state.
    InternalError,
    /// tryLater (3): the responder cannot answer now (e.g. no status data yet).
    TryLater,
    /// unauthorized (6): the responder is not authoritative for the CertID (RFC 5019
    /// section 2.2.3: an issuer it does not serve).
    Unauthorized,
}

impl OcspErrorStatus {
    /// The ENUMERATED value.
    pub fn code(self) -> u8 {
        match self {
            OcspErrorStatus::MalformedRequest => 1,
            OcspErrorStatus::InternalError => 2,
            OcspErrorStatus::TryLater => 3,
            OcspErrorStatus::Unauthorized => 6,
        }
    }
}

/// An unsuccessful OCSPResponse: `SEQUENCE { responseStatus ENUMERATED }` with no
/// responseBytes (RFC 6960 section 4.2.1).
pub fn error_response(status: OcspErrorStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status.code()]
}

/// The hash algorithm of a CertID. SHA-1 is what RFC 5019 clients (and `openssl ocsp`) send
/// by default; SHA-256 is what newer ones may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    /// id-sha1 (1.3.14.3.2.26).
    Sha1,
    /// id-sha256 (2.16.840.1.101.3.4.2.1).
    Sha256,
}

impl CertIdHash {
    fn output_len(self) -> usize {
        match self {
            CertIdHash::Sha1 => 20,
            CertIdHash::Sha256 => 32,
        }
    }
}

/// One CertID as a client sent it, checked: a supported hash, hashes of the right length and
/// a positive serial of at most 20 octets.
///
/// ```text
/// CertID ::= SEQUENCE {
///     hashAlgorithm       AlgorithmIdentifier,
///     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
///     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
///     serialNumber        CertificateSerialNumber }
/// ```
/// (RFC 6960 section 4.1.1.) The DER as received is kept, because the response must echo
/// the CertID exactly as requested.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OcspCertId {
    hash: CertIdHash,
    issuer_name_hash: Vec<u8>,
    issuer_key_hash: Vec<u8>,
    serial: Serial,
    der: Vec<u8>,
}

impl OcspCertId {
    fn from_x509_ocsp(id: &x509_ocsp::CertId) -> Result<Self, PkixError> {
        let malformed = |why: &str| PkixError::MalformedOcspRequest(why.to_string());
        let hash = match id.hash_algorithm.oid {
            ID_SHA1 => CertIdHash::Sha1,
            ID_SHA256 => CertIdHash::Sha256,
            other => {
                return Err(PkixError::MalformedOcspRequest(format!(
                    "unsupported CertID hash algorithm {other}"
                )));
            }
        };
        // The parameters are NULL or absent for both hashes (RFC 5754 section 2).
        if let Some(params) = &id.hash_algorithm.parameters
            && params.tag() != der::Tag::Null
        {
            return Err(malformed("hash algorithm parameters are not NULL"));
        }
        let name_hash = id.issuer_name_hash.as_bytes();
        let key_hash = id.issuer_key_hash.as_bytes();
        if name_hash.len() != hash.output_len() || key_hash.len() != hash.output_len() {
            return Err(malformed("issuer hash length does not match the algorithm"));
        }
        let serial_content = id.serial_number.as_bytes();
        if serial_content.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(malformed("negative serial number"));
        }
        let serial = Serial::from_be_bytes(serial_content)
            .map_err(|e| PkixError::MalformedOcspRequest(e.to_string()))?;
        let der = id
            .to_der()
            .map_err(|e| PkixError::MalformedOcspRequest(e.to_string()))?;
        Ok(OcspCertId {
            hash,
            issuer_name_hash: name_hash.to_vec(),
            issuer_key_hash: key_hash.to_vec(),
            serial,
            der,
        })
    }

    /// The hash algorithm of the issuer hashes.
    pub fn hash_algorithm(&self) -> CertIdHash {
        self.hash
    }

    /// issuerNameHash: the hash of the issuer's DER-encoded subject.
    pub fn issuer_name_hash(&self) -> &[u8] {
        &self.issuer_name_hash
    }

    /// issuerKeyHash: the hash of the issuer's subjectPublicKey bits.
    pub fn issuer_key_hash(&self) -> &[u8] {
        &self.issuer_key_hash
    }

    /// The serial number asked about.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// The CertID DER as received, echoed in the response.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// A checked OCSP request: the CertIDs to answer and the nonce to echo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedOcspRequest {
    cert_ids: Vec<OcspCertId>,
    nonce: Option<Vec<u8>>,
}

impl ParsedOcspRequest {
    /// The CertIDs, in request order: 1 to [`MAX_OCSP_CERT_IDS`].
    pub fn cert_ids(&self) -> &[OcspCertId] {
        &self.cert_ids
    }

    /// The nonce (RFC 8954), 1 to 32 octets, when the client sent one.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }
}

/// Parse and check an OCSP request (the body of a POST, or the base64-decoded path of a GET).
///
/// ```text
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
/// TBSRequest ::= SEQUENCE {
///     version             [0]     EXPLICIT Version DEFAULT v1,
///     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
///     requestList                 SEQUENCE OF Request,
///     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
/// Request ::= SEQUENCE {
///     reqCert                     CertID,
///     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
/// (RFC 6960 section 4.1.1.) A signature is allowed and ignored (RFC 6960 section 4.1.2
/// leaves checking it to the responder; RFC 5019 clients do not sign). Every failure is
/// [`PkixError::MalformedOcspRequest`]: input over [`MAX_OCSP_REQUEST_LEN`], anything not
/// strict DER or with trailing data, no CertID or more than [`MAX_OCSP_CERT_IDS`], a CertID
/// hash other than SHA-1 or SHA-256, and a nonce outside 1 to 32 octets or sent twice.
pub fn parse_ocsp_request(der: &[u8]) -> Result<ParsedOcspRequest, PkixError> {
    if der.len() > MAX_OCSP_REQUEST_LEN {
        return Err(PkixError::MalformedOcspRequest(format!(
            "request of {} bytes exceeds {MAX_OCSP_REQUEST_LEN}",
            der.len()
        )));
    }
    let req = x509_ocsp::OcspRequest::from_der(der)
        .map_err(|e| PkixError::MalformedOcspRequest(e.to_string()))?;
    let list = &req.tbs_request.request_list;
    if list.is_empty() {
        return Err(PkixError::MalformedOcspRequest(
            "no CertID in the request".into(),
        ));
    }
    if list.len() > MAX_OCSP_CERT_IDS {
        return Err(PkixError::MalformedOcspRequest(format!(
            "{} CertIDs in one request (at most {MAX_OCSP_CERT_IDS})",
            list.len()
        )));
    }
    let cert_ids = list
        .iter()
        .map(|r| OcspCertId::from_x509_ocsp(&r.req_cert))
        .collect::<Result<Vec<_>, _>>()?;

    let mut nonce = None;
    let nonces = req
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_PKIX_OCSP_NONCE);
    for ext in nonces {
        if nonce.is_some() {
            return Err(PkixError::MalformedOcspRequest(
                "the nonce extension appears twice".into(),
            ));
        }
        // extnValue holds the DER of `Nonce ::= OCTET STRING` (RFC 8954 section 2.1).
        let value = der::asn1::OctetStringRef::from_der(ext.extn_value.as_bytes())
            .map_err(|e| PkixError::MalformedOcspRequest(format!("nonce: {e}")))?;
        nonce = Some(checked_nonce(value.as_bytes())?.to_vec());
    }
    Ok(ParsedOcspRequest { cert_ids, nonce })
}

fn checked_nonce(nonce: &[u8]) -> Result<&[u8], PkixError> {
    if OCSP_NONCE_LEN.contains(&nonce.len()) {
        Ok(nonce)
    } else {
        Err(PkixError::MalformedOcspRequest(format!(
            "a nonce of {} octets (RFC 8954 allows 1 to 32)",
            nonce.len()
        )))
    }
}

/// What identifies one issuing CA inside CertIDs, computed once per CA: SHA-1 and SHA-256 of
/// its DER subject Name and of its subjectPublicKey bits (RFC 6960 section 4.1.1).
#[derive(Clone, PartialEq, Eq)]
pub struct OcspIssuerIds {
    sha1_name: [u8; 20],
    sha1_key: [u8; 20],
    sha256_name: [u8; 32],
    sha256_key: [u8; 32],
}

impl std::fmt::Debug for OcspIssuerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspIssuerIds")
            .field("sha1_key", &hex::encode(self.sha1_key))
            .field("sha256_key", &hex::encode(self.sha256_key))
            .finish_non_exhaustive()
    }
}

impl OcspIssuerIds {
    /// From the issuing CA certificate, DER.
    pub fn from_cert_der(cert_der: &[u8]) -> Result<Self, PkixError> {
        let (name, key) = raw_subject_and_key(cert_der)?;
        let hash = |alg, data: &[u8]| digest::digest(alg, data);
        let mut ids = OcspIssuerIds {
            sha1_name: [0; 20],
            sha1_key: [0; 20],
            sha256_name: [0; 32],
            sha256_key: [0; 32],
        };
        ids.sha1_name
            .copy_from_slice(hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, name).as_ref());
        ids.sha1_key
            .copy_from_slice(hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref());
        ids.sha256_name
            .copy_from_slice(hash(&digest::SHA256, name).as_ref());
        ids.sha256_key
            .copy_from_slice(hash(&digest::SHA256, key).as_ref());
        Ok(ids)
    }

    /// Whether `id` names this issuer (both hashes match under its algorithm).
    pub fn matches(&self, id: &OcspCertId) -> bool {
        let (name, key): (&[u8], &[u8]) = match id.hash {
            CertIdHash::Sha1 => (&self.sha1_name, &self.sha1_key),
            CertIdHash::Sha256 => (&self.sha256_name, &self.sha256_key),
        };
        id.issuer_name_hash == name && id.issuer_key_hash == key
    }

    /// SHA-1 of the issuer's subjectPublicKey bits: its OCSP KeyHash.
    pub fn sha1_key_hash(&self) -> &[u8; 20] {
        &self.sha1_key
    }
}

/// What a delegated OCSP signer with the key `spki_der` (a DER SubjectPublicKeyInfo) signs
/// with: ECDSA P-256 with SHA-256, P-384 with SHA-384, or Ed25519. Any other key is
/// [`PkixError::UnsupportedKey`]. The CA core checks this before it certifies a responder
/// key, so it never certifies a key [`OcspSigner`] would refuse.
pub fn signer_key_algorithm(spki_der: &[u8]) -> Result<SignatureAlgorithm, PkixError> {
    SignerAlg::from_spki_der(spki_der).map(SignerAlg::signature_algorithm)
}

/// The key types a delegated OCSP signer may have, and how each signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignerAlg {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl SignerAlg {
    pub(crate) fn from_spki_der(spki_der: &[u8]) -> Result<Self, PkixError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| PkixError::UnsupportedKey(format!("unreadable public key: {e}")))?;
        Self::from_spki(&spki)
    }

    fn from_spki(spki: &spki::SubjectPublicKeyInfoRef<'_>) -> Result<Self, PkixError> {
        let refuse = || {
            PkixError::UnsupportedKey(format!(
                "an OCSP signer key must be ECDSA P-256, P-384 or Ed25519, not {}",
                spki.algorithm.oid
            ))
        };
        match KeyAlgorithm::from_spki(spki) {
            Ok(KeyAlgorithm::EcdsaP256) => Ok(SignerAlg::EcdsaP256),
            Ok(KeyAlgorithm::EcdsaP384) => Ok(SignerAlg::EcdsaP384),
            Ok(KeyAlgorithm::Ed25519) => Ok(SignerAlg::Ed25519),
            _ => Err(refuse()),
        }
    }

    /// What a key of this type signs with.
    pub(crate) fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            SignerAlg::EcdsaP256 => SignatureAlgorithm::EcdsaP256Sha256,
            SignerAlg::EcdsaP384 => SignatureAlgorithm::EcdsaP384Sha384,
            SignerAlg::Ed25519 => SignatureAlgorithm::Ed25519,
        }
    }

    /// The DER AlgorithmIdentifier of the signatures: ecdsa-with-SHA256 / -SHA384 (RFC 5758
    /// section 3.2) or id-Ed25519 (RFC 8410 section 3), parameters absent.
    fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            SignerAlg::EcdsaP256 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
            SignerAlg::EcdsaP384 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
            ],
            SignerAlg::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        }
    }
}

/// A delegated OCSP responder: its private key (held only in the responder's memory, or
/// wherever its [`SigningKey`] keeps it) and its certificate, with every constant part of a
/// response encoded once.
pub struct OcspSigner {
    key: Arc<dyn SigningKey>,
    alg: SignerAlg,
    /// `[2] EXPLICIT KeyHash` (ResponderID byKey), ready to copy.
    responder_id: Vec<u8>,
    /// `[0] EXPLICIT SEQUENCE OF Certificate` holding the signer certificate, ready to copy.
    certs: Vec<u8>,
    serial: Serial,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for OcspSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspSigner")
            .field("alg", &self.alg)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The signer certificate, checked: readable, EKU id-kp-OCSPSigning, a key type a signer may
/// have; and its subjectPublicKey bits.
fn checked_signer_certificate(
    cert_der: &[u8],
) -> Result<(Certificate, SignerAlg, &[u8]), PkixError> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| PkixError::OcspSigner(format!("unreadable certificate: {e}")))?;
    let eku =
        find_extension::<ExtendedKeyUsage>(&cert, const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .map_err(|e| PkixError::OcspSigner(e.to_string()))?;
    if !eku.is_some_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(PkixError::OcspSigner(
            "the certificate lacks EKU id-kp-OCSPSigning".into(),
        ));
    }
    let (_, spk) =
        raw_subject_and_key(cert_der).map_err(|e| PkixError::OcspSigner(e.to_string()))?;
    let spki_der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| PkixError::OcspSigner(e.to_string()))?;
    let alg =
        SignerAlg::from_spki_der(&spki_der).map_err(|e| PkixError::OcspSigner(e.to_string()))?;
    Ok((cert, alg, spk))
}

impl OcspSigner {
    /// From the responder's PKCS#8 private key and the certificate the CA issued for it: an
    /// in-memory [`Pkcs8Key`] given to [`OcspSigner::with_key`].
    ///
    /// Refuses a key that does not match the certificate, a key type other than ECDSA P-256,
    /// P-384 or Ed25519, and a certificate without EKU id-kp-OCSPSigning (RFC 6960 section
    /// 4.2.2.2), since clients would reject every response it signs.
    pub fn new(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, PkixError> {
        let (_, alg, _) = checked_signer_certificate(cert_der)?;
        let key = Pkcs8Key::from_pkcs8_der(pkcs8_der, alg.signature_algorithm())
            .map_err(|e| PkixError::OcspSigner(format!("key: {e}")))?;
        Self::with_key(Arc::new(key), cert_der)
    }

    /// From any [`SigningKey`] and the certificate the CA issued for it, with the checks of
    /// [`OcspSigner::new`]; the key must sign with the algorithm its certificate's key
    /// implies (ECDSA P-256 with SHA-256, P-384 with SHA-384, or Ed25519).
    pub fn with_key(key: Arc<dyn SigningKey>, cert_der: &[u8]) -> Result<Self, PkixError> {
        let (cert, alg, spk) = checked_signer_certificate(cert_der)?;
        if key.algorithm() != alg.signature_algorithm() {
            return Err(PkixError::OcspSigner(format!(
                "the key signs with {:?}, the certificate's key needs {:?}",
                key.algorithm(),
                alg.signature_algorithm()
            )));
        }
        if key.subject_public_key() != spk {
            return Err(PkixError::OcspSigner(
                "the private key does not match the certificate".into(),
            ));
        }

        // ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }, explicitly tagged;
        // KeyHash ::= OCTET STRING -- SHA-1 of the subjectPublicKey bits (RFC 6960 4.2.1).
        let key_hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spk);
        let mut inner = Vec::with_capacity(22);
        push_tlv(&mut inner, TAG_OCTET_STRING, key_hash.as_ref());
        let mut responder_id = Vec::with_capacity(24);
        push_tlv(&mut responder_id, 0xa2, &inner);

        // certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL (RFC 6960 section 4.2.1).
        let mut seq = Vec::with_capacity(cert_der.len() + 8);
        push_tlv(&mut seq, TAG_SEQUENCE, cert_der);
        let mut certs = Vec::with_capacity(seq.len() + 8);
        push_tlv(&mut certs, 0xa0, &seq);

        let serial_content = cert.tbs_certificate.serial_number.as_bytes();
        let serial = Serial::from_be_bytes(serial_content)
            .map_err(|e| PkixError::OcspSigner(e.to_string()))?;
        let not_after = OffsetDateTime::from_unix_timestamp(
            i64::try_from(
                cert.tbs_certificate
                    .validity
                    .not_after
                    .to_unix_duration()
                    .as_secs(),
            )
            .map_err(|e| PkixError::OcspSigner(e.to_string()))?,
        )
        .map_err(|e| PkixError::OcspSigner(e.to_string()))?;
        Ok(OcspSigner {
            key,
            alg,
            responder_id,
            certs,
            serial,
            not_after,
        })
    }

    /// The signer certificate's serial number.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// When the signer certificate expires: rotate before this.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkixError> {
        self.key.sign(message).map_err(PkixError::SigningKey)
    }
}

/// The status of one certificate in a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatusKind {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `at`, with an RFC 5280 CRLReason code (`None` and `Some(0)`, unspecified,
    /// write no reason).
    Revoked {
        /// When it was revoked.
        at: OffsetDateTime,
        /// The CRLReason code.
        reason: Option<u8>,
    },
    /// Not a certificate this CA issued (RFC 6960 section 2.2: answer "unknown", never
    /// "good", for serials with no issuance record).
    Unknown,
}

/// Build a successful, signed OCSPResponse (DER) answering each CertID in `responses`.
///
/// Each CertID is echoed exactly as requested. thisUpdate and nextUpdate are written as given
/// (whole seconds); producedAt is `this_update`, since the response is signed when its
/// status is taken. `nonce`, when given, is echoed in a response extension (RFC 8954). The
/// response carries the signer certificate in `certs` and identifies the responder by key
/// hash, as RFC 5019 section 2.2.2 asks.
///
/// ```text
/// OCSPResponse ::= SEQUENCE {
///    responseStatus         OCSPResponseStatus,      -- successful (0)
///    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
/// ResponseBytes ::= SEQUENCE {
///    responseType   OBJECT IDENTIFIER,               -- id-pkix-ocsp-basic
///    response       OCTET STRING }                   -- DER of BasicOCSPResponse
/// BasicOCSPResponse ::= SEQUENCE {
///    tbsResponseData      ResponseData,
///    signatureAlgorithm   AlgorithmIdentifier,
///    signature            BIT STRING,
///    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ResponseData ::= SEQUENCE {
///    version              [0] EXPLICIT Version DEFAULT v1,
///    responderID              ResponderID,
///    producedAt               GeneralizedTime,
///    responses                SEQUENCE OF SingleResponse,
///    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
/// ```
/// (RFC 6960 section 4.2.1, <https://www.rfc-editor.org/rfc/rfc6960#section-4.2.1>.)
pub fn build_response(
    signer: &OcspSigner,
    responses: &[(&OcspCertId, CertStatusKind)],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkixError> {
    if responses.is_empty() {
        return Err(PkixError::InvalidResponse(
            "an OCSP response needs a status".into(),
        ));
    }
    if whole_seconds(next_update) <= whole_seconds(this_update) {
        return Err(PkixError::InvalidResponse(
            "an OCSP response's nextUpdate must be after its thisUpdate".into(),
        ));
    }
    let nonce = nonce.map(checked_nonce).transpose()?;
    let mut this_time = Vec::with_capacity(17);
    push_generalized_time(&mut this_time, this_update)?;
    let mut next_time = Vec::with_capacity(17);
    push_generalized_time(&mut next_time, next_update)?;

    // responses SEQUENCE OF SingleResponse
    let mut singles = Vec::with_capacity(responses.len() * 128);
    for (id, status) in responses {
        push_single_response(&mut singles, id, status, &this_time, &next_time)?;
    }

    // ResponseData, version omitted (v1 is the DEFAULT).
    let mut extensions = Vec::new();
    if let Some(nonce) = nonce {
        // responseExtensions [1] EXPLICIT Extensions, holding the nonce extension whose
        // extnValue is the DER of `Nonce ::= OCTET STRING` (RFC 8954 section 2.1).
        let mut value = Vec::with_capacity(nonce.len() + 2);
        push_tlv(&mut value, TAG_OCTET_STRING, nonce);
        let mut ext = Vec::with_capacity(value.len() + 16);
        push_extension(&mut ext, &[0x2b, 6, 1, 5, 5, 7, 0x30, 1, 2], &value);
        let mut seq = Vec::with_capacity(ext.len() + 2);
        push_tlv(&mut seq, TAG_SEQUENCE, &ext);
        push_tlv(&mut extensions, 0xa1, &seq);
    }
    let data_len = signer.responder_id.len()
        + this_time.len()
        + header_len(singles.len())
        + singles.len()
        + extensions.len();
    let mut tbs = Vec::with_capacity(header_len(data_len) + data_len);
    push_header(&mut tbs, TAG_SEQUENCE, data_len);
    tbs.extend_from_slice(&signer.responder_id);
    tbs.extend_from_slice(&this_time); // producedAt
    push_tlv(&mut tbs, TAG_SEQUENCE, &singles);
    tbs.extend_from_slice(&extensions);

    let signature = signer.sign(&tbs)?;
    let alg = signer.alg.algorithm_identifier();
    let sig_field_len = header_len(signature.len() + 1) + signature.len() + 1;
    let basic_len = tbs.len() + alg.len() + sig_field_len + signer.certs.len();
    let basic_tlv_len = header_len(basic_len) + basic_len;
    // id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1)
    const ID_PKIX_OCSP_BASIC: &[u8] = &[0x06, 0x09, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 1];
    let bytes_len = ID_PKIX_OCSP_BASIC.len() + header_len(basic_tlv_len) + basic_tlv_len;
    let bytes_tlv_len = header_len(bytes_len) + bytes_len;
    let total_len = 3 + header_len(bytes_tlv_len) + bytes_tlv_len;

    let mut out = Vec::with_capacity(header_len(total_len) + total_len);
    push_header(&mut out, TAG_SEQUENCE, total_len);
    out.extend_from_slice(&[0x0a, 0x01, 0x00]); // responseStatus: successful (0)
    push_header(&mut out, 0xa0, bytes_tlv_len); // responseBytes [0] EXPLICIT
    push_header(&mut out, TAG_SEQUENCE, bytes_len); // ResponseBytes
    out.extend_from_slice(ID_PKIX_OCSP_BASIC);
    push_header(&mut out, TAG_OCTET_STRING, basic_tlv_len);
    push_header(&mut out, TAG_SEQUENCE, basic_len); // BasicOCSPResponse
    out.extend_from_slice(&tbs);
    out.extend_from_slice(alg);
    push_bit_string(&mut out, &signature);
    out.extend_from_slice(&signer.certs);
    debug_assert_eq!(out.len(), header_len(total_len) + total_len);
    Ok(out)
}

/// One SingleResponse (RFC 6960 section 4.2.1; the module's tags are EXPLICIT except where
/// marked IMPLICIT):
///
/// ```text
/// SingleResponse ::= SEQUENCE {
///    certID                       CertID,
///    certStatus                   CertStatus,
///    thisUpdate                   GeneralizedTime,
///    nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
///    singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
/// CertStatus ::= CHOICE {
///     good        [0]     IMPLICIT NULL,
///     revoked     [1]     IMPLICIT RevokedInfo,
///     unknown     [2]     IMPLICIT UnknownInfo }   -- UnknownInfo ::= NULL
/// RevokedInfo ::= SEQUENCE {
///     revocationTime              GeneralizedTime,
///     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
/// ```
fn push_single_response(
    out: &mut Vec<u8>,
    id: &OcspCertId,
    status: &CertStatusKind,
    this_time: &[u8],
    next_time: &[u8],
) -> Result<(), PkixError> {
    let mut cert_status = Vec::with_capacity(24);
    match status {
        CertStatusKind::Good => cert_status.extend_from_slice(&[0x80, 0x00]),
        CertStatusKind::Unknown => cert_status.extend_from_slice(&[0x82, 0x00]),
        CertStatusKind::Revoked { at, reason } => {
            let reason = RevocationReason::for_full_status(*reason)?.map(RevocationReason::code);
            let mut info = Vec::with_capacity(22);
            push_generalized_time(&mut info, *at)?;
            if let Some(code) = reason {
                info.extend_from_slice(&[0xa0, 0x03, 0x0a, 0x01, code]);
            }
            push_tlv(&mut cert_status, 0xa1, &info);
        }
    }
    let len = id.der.len()
        + cert_status.len()
        + this_time.len()
        + header_len(next_time.len())
        + next_time.len();
    push_header(out, TAG_SEQUENCE, len);
    out.extend_from_slice(&id.der);
    out.extend_from_slice(&cert_status);
    out.extend_from_slice(this_time);
    push_tlv(out, 0xa0, next_time);
    Ok(())
}

pub mod client;
pub use client::{
    OCSP_CLOCK_SKEW, OcspCheckError, OcspRequestFor, OcspResponseSigner, VerifiedOcspResponse,
    build_ocsp_request, ocsp_responder_urls, verify_ocsp_response,
};
