//! OCSP (RFC 6960) under the RFC 5019 lightweight profile: reading requests, recognising our
//! issuer in them, and writing responses signed by a delegated responder certificate.
//!
//! The responder never holds the issuing CA's key. It generates its own key in memory, has the
//! CA sign a short-lived certificate for it with [`crate::IssuingCa::issue_ocsp_signer`], and
//! signs responses with an [`OcspSigner`] built from the two. Everything in a response that
//! does not change between calls (the signer certificate, the responder ID, the algorithm
//! identifier) is encoded once in [`OcspSigner::new`]; building a response is a few small
//! copies and one signature.
//!
//! Requests are parsed with x509-ocsp (strict DER) and then checked against what Signet
//! answers; responses are written by hand with `signet-pkix`'s small DER writer, each
//! structure quoted from RFC 6960 next to the code that writes it.

use der::{Decode, Encode, Tagged};
use ring::digest;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;

use crate::CaError;
use signet_pkix::cert::{KeyAlgorithm, find_extension, raw_subject_and_key, signature_verifies};
use signet_pkix::der_writer::{
    TAG_OCTET_STRING, TAG_SEQUENCE, header_len, push_bit_string, push_extension,
    push_generalized_time, push_header, push_tlv, whole_seconds,
};
use signet_pkix::{Pkcs8Key, RevocationReason, Serial, SignatureAlgorithm, SigningKey};
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

impl CaError {
    /// The OCSP status to answer with when handling a request failed with this error:
    /// `malformedRequest` for what the client sent, `internalError` for everything else.
    pub fn ocsp_status(&self) -> OcspErrorStatus {
        match self {
            CaError::MalformedOcspRequest(_) => OcspErrorStatus::MalformedRequest,
            _ => OcspErrorStatus::InternalError,
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
    fn from_x509_ocsp(id: &x509_ocsp::CertId) -> Result<Self, CaError> {
        let malformed = |why: &str| CaError::MalformedOcspRequest(why.to_string());
        let hash = match id.hash_algorithm.oid {
            ID_SHA1 => CertIdHash::Sha1,
            ID_SHA256 => CertIdHash::Sha256,
            other => {
                return Err(CaError::MalformedOcspRequest(format!(
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
            .map_err(|e| CaError::MalformedOcspRequest(e.to_string()))?;
        let der = id
            .to_der()
            .map_err(|e| CaError::MalformedOcspRequest(e.to_string()))?;
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
/// [`CaError::MalformedOcspRequest`]: input over [`MAX_OCSP_REQUEST_LEN`], anything not
/// strict DER or with trailing data, no CertID or more than [`MAX_OCSP_CERT_IDS`], a CertID
/// hash other than SHA-1 or SHA-256, and a nonce outside 1 to 32 octets or sent twice.
pub fn parse_ocsp_request(der: &[u8]) -> Result<ParsedOcspRequest, CaError> {
    if der.len() > MAX_OCSP_REQUEST_LEN {
        return Err(CaError::MalformedOcspRequest(format!(
            "request of {} bytes exceeds {MAX_OCSP_REQUEST_LEN}",
            der.len()
        )));
    }
    let req = x509_ocsp::OcspRequest::from_der(der)
        .map_err(|e| CaError::MalformedOcspRequest(e.to_string()))?;
    let list = &req.tbs_request.request_list;
    if list.is_empty() {
        return Err(CaError::MalformedOcspRequest(
            "no CertID in the request".into(),
        ));
    }
    if list.len() > MAX_OCSP_CERT_IDS {
        return Err(CaError::MalformedOcspRequest(format!(
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
            return Err(CaError::MalformedOcspRequest(
                "the nonce extension appears twice".into(),
            ));
        }
        // extnValue holds the DER of `Nonce ::= OCTET STRING` (RFC 8954 section 2.1).
        let value = der::asn1::OctetStringRef::from_der(ext.extn_value.as_bytes())
            .map_err(|e| CaError::MalformedOcspRequest(format!("nonce: {e}")))?;
        nonce = Some(checked_nonce(value.as_bytes())?.to_vec());
    }
    Ok(ParsedOcspRequest { cert_ids, nonce })
}

fn checked_nonce(nonce: &[u8]) -> Result<&[u8], CaError> {
    if OCSP_NONCE_LEN.contains(&nonce.len()) {
        Ok(nonce)
    } else {
        Err(CaError::MalformedOcspRequest(format!(
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
    /// From the issuing CA certificate, DER (e.g. [`crate::IssuingCa::cert_der`]).
    pub fn from_cert_der(cert_der: &[u8]) -> Result<Self, CaError> {
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

/// The key types a delegated OCSP signer may have, and how each signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignerAlg {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl SignerAlg {
    pub(crate) fn from_spki_der(spki_der: &[u8]) -> Result<Self, CaError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| CaError::UnsupportedKey(format!("unreadable public key: {e}")))?;
        Self::from_spki(&spki)
    }

    fn from_spki(spki: &spki::SubjectPublicKeyInfoRef<'_>) -> Result<Self, CaError> {
        let refuse = || {
            CaError::UnsupportedKey(format!(
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
fn checked_signer_certificate(cert_der: &[u8]) -> Result<(Certificate, SignerAlg, &[u8]), CaError> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| CaError::OcspSigner(format!("unreadable certificate: {e}")))?;
    let eku =
        find_extension::<ExtendedKeyUsage>(&cert, const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .map_err(|e| CaError::OcspSigner(e.to_string()))?;
    if !eku.is_some_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(CaError::OcspSigner(
            "the certificate lacks EKU id-kp-OCSPSigning".into(),
        ));
    }
    let (_, spk) = raw_subject_and_key(cert_der).map_err(|e| CaError::OcspSigner(e.to_string()))?;
    let spki_der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(CaError::internal)?;
    let alg =
        SignerAlg::from_spki_der(&spki_der).map_err(|e| CaError::OcspSigner(e.to_string()))?;
    Ok((cert, alg, spk))
}

impl OcspSigner {
    /// From the responder's PKCS#8 private key and the certificate the CA issued for it: an
    /// in-memory [`Pkcs8Key`] given to [`OcspSigner::with_key`].
    ///
    /// Refuses a key that does not match the certificate, a key type other than ECDSA P-256,
    /// P-384 or Ed25519, and a certificate without EKU id-kp-OCSPSigning (RFC 6960 section
    /// 4.2.2.2), since clients would reject every response it signs.
    pub fn new(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, CaError> {
        let (_, alg, _) = checked_signer_certificate(cert_der)?;
        let key = Pkcs8Key::from_pkcs8_der(pkcs8_der, alg.signature_algorithm())
            .map_err(|e| CaError::OcspSigner(format!("key: {e}")))?;
        Self::with_key(Arc::new(key), cert_der)
    }

    /// From any [`SigningKey`] and the certificate the CA issued for it, with the checks of
    /// [`OcspSigner::new`]; the key must sign with the algorithm its certificate's key
    /// implies (ECDSA P-256 with SHA-256, P-384 with SHA-384, or Ed25519).
    pub fn with_key(key: Arc<dyn SigningKey>, cert_der: &[u8]) -> Result<Self, CaError> {
        let (cert, alg, spk) = checked_signer_certificate(cert_der)?;
        if key.algorithm() != alg.signature_algorithm() {
            return Err(CaError::OcspSigner(format!(
                "the key signs with {:?}, the certificate's key needs {:?}",
                key.algorithm(),
                alg.signature_algorithm()
            )));
        }
        if key.subject_public_key() != spk {
            return Err(CaError::OcspSigner(
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
            .map_err(|e| CaError::OcspSigner(e.to_string()))?;
        let not_after = OffsetDateTime::from_unix_timestamp(
            i64::try_from(
                cert.tbs_certificate
                    .validity
                    .not_after
                    .to_unix_duration()
                    .as_secs(),
            )
            .map_err(CaError::internal)?,
        )
        .map_err(CaError::internal)?;
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

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.key.sign(message).map_err(CaError::SigningKey)
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
) -> Result<Vec<u8>, CaError> {
    if responses.is_empty() {
        return Err(CaError::Internal("an OCSP response needs a status".into()));
    }
    if whole_seconds(next_update) <= whole_seconds(this_update) {
        return Err(CaError::Internal(
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
) -> Result<(), CaError> {
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

// ---- The client side: requests for a staple, and checking the responses -----------------

/// How far a response's thisUpdate (and a delegated signer's notBefore) may be ahead of the
/// local clock: the 5 minutes `openssl ocsp` allows by default (`-validity_period`).
pub const OCSP_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1), RFC 6960 section 4.2.1.
const ID_PKIX_OCSP_BASIC_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-ad-ocsp (1.3.6.1.5.5.7.48.1), RFC 5280 section 4.2.2.1.
const ID_AD_OCSP: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// Why an OCSP request could not be built for a certificate, or why a response was not
/// accepted ([`build_ocsp_request`], [`verify_ocsp_response`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcspCheckError {
    /// The leaf or the issuer certificate is unreadable, or the leaf was not issued (signed)
    /// by that issuer.
    #[error("certificate: {0}")]
    Certificate(String),

    /// The response is not a DER OCSPResponse with a BasicOCSPResponse, or a field in it is
    /// out of range.
    #[error("malformed OCSP response: {0}")]
    Malformed(String),

    /// The responder answered with an error status (RFC 6960 section 4.2.1) and no signed
    /// response: `malformedRequest`, `internalError`, `tryLater`, `sigRequired` or
    /// `unauthorized`.
    #[error("the OCSP responder answered {0}")]
    Unsuccessful(&'static str),

    /// The response's signature does not verify with the key of its signer.
    #[error("the OCSP response's signature does not verify")]
    BadSignature,

    /// The response is signed by neither the issuer nor a responder the issuer certified
    /// with EKU id-kp-OCSPSigning (RFC 6960 section 4.2.2.2), or that responder's
    /// certificate is not valid now.
    #[error("the OCSP response is not signed by an authorised responder: {0}")]
    UnauthorisedSigner(String),

    /// The response carries no status for the certificate asked about.
    #[error("the OCSP response does not answer for the certificate asked about (CertID mismatch)")]
    CertIdMismatch,

    /// A nonce was sent and the response does not echo it.
    #[error("the OCSP response does not echo the request's nonce")]
    NonceMismatch,

    /// thisUpdate is later than now plus [`OCSP_CLOCK_SKEW`].
    #[error("the OCSP response is not valid yet: thisUpdate {} is in the future", crate::rfc3339(*.0))]
    NotYetValid(OffsetDateTime),

    /// nextUpdate is not later than now: the response is stale.
    #[error("the OCSP response has expired: its nextUpdate {} has passed", crate::rfc3339(*.0))]
    Expired(OffsetDateTime),
}

/// An OCSP request for one certificate ([`build_ocsp_request`]): the DER to send, and the
/// CertID and nonce to check the response against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspRequestFor {
    /// The DER OCSPRequest (the body of a POST).
    pub der: Vec<u8>,
    /// The CertID asked about.
    pub cert_id: OcspCertId,
    /// The nonce sent, if any.
    pub nonce: Option<Vec<u8>>,
}

/// Build the OCSP request a TLS server sends to fetch a staple for `leaf_der` (DER), issued by
/// `issuer_der` (DER): one CertID with `hash` (nginx, HAProxy and `openssl ocsp` use SHA-1),
/// unsigned, and a nonce extension only when `nonce` is given. RFC 5019 responders cache and
/// pre-sign nonce-less answers, so staples are normally fetched without one.
///
/// The leaf must have been signed by the issuer's key: a CertID built from the wrong issuer
/// would only ever be answered `unauthorized` or `unknown`.
///
/// ```text
/// OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest }
/// TBSRequest  ::= SEQUENCE { requestList SEQUENCE OF Request,
///                            requestExtensions [2] EXPLICIT Extensions OPTIONAL }
/// Request     ::= SEQUENCE { reqCert CertID }
/// ```
/// (RFC 6960 section 4.1.1; version v1 is the DEFAULT and is left out.)
pub fn build_ocsp_request(
    leaf_der: &[u8],
    issuer_der: &[u8],
    hash: CertIdHash,
    nonce: Option<&[u8]>,
) -> Result<OcspRequestFor, OcspCheckError> {
    let cert_err = |e: CaError| OcspCheckError::Certificate(e.to_string());
    let nonce = nonce
        .map(checked_nonce)
        .transpose()
        .map_err(|e| OcspCheckError::Certificate(e.to_string()))?;
    let leaf = RawCertificate::parse(leaf_der).map_err(|e| cert_err(e.with("the leaf")))?;
    let (issuer_name, issuer_key) = raw_subject_and_key(issuer_der)
        .map_err(|e| cert_err(CaError::from(e).with("the issuer")))?;
    if leaf.issuer != issuer_name {
        return Err(OcspCheckError::Certificate(
            "the leaf's issuer name is not the issuer certificate's subject".into(),
        ));
    }
    let issuer_spki = spki_der_of(issuer_der).map_err(|e| cert_err(e.with("the issuer")))?;
    if !signature_verifies(
        &issuer_spki,
        leaf.signature_algorithm,
        leaf.tbs,
        leaf.signature,
    ) {
        return Err(OcspCheckError::Certificate(
            "the leaf's signature does not verify with the issuer's key".into(),
        ));
    }

    let (alg_id, algorithm): (&[u8], _) = match hash {
        // AlgorithmIdentifier { id-sha1, NULL } as openssl and nginx write it.
        CertIdHash::Sha1 => (
            &[
                0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
            ],
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
        ),
        // AlgorithmIdentifier { id-sha256, NULL }.
        CertIdHash::Sha256 => (
            &[
                0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                0x00,
            ],
            &digest::SHA256,
        ),
    };
    let mut cert_id = Vec::with_capacity(128);
    cert_id.extend_from_slice(alg_id);
    push_tlv(
        &mut cert_id,
        TAG_OCTET_STRING,
        digest::digest(algorithm, issuer_name).as_ref(),
    );
    push_tlv(
        &mut cert_id,
        TAG_OCTET_STRING,
        digest::digest(algorithm, issuer_key).as_ref(),
    );
    // The serial's INTEGER as it is in the certificate, leading zero included.
    cert_id.extend_from_slice(leaf.serial_tlv);
    let mut cert_id_seq = Vec::with_capacity(cert_id.len() + 4);
    push_tlv(&mut cert_id_seq, TAG_SEQUENCE, &cert_id);
    let mut request = Vec::with_capacity(cert_id_seq.len() + 4);
    push_tlv(&mut request, TAG_SEQUENCE, &cert_id_seq);
    let mut tbs = Vec::with_capacity(request.len() + 64);
    push_tlv(&mut tbs, TAG_SEQUENCE, &request); // requestList
    if let Some(nonce) = nonce {
        let mut value = Vec::with_capacity(nonce.len() + 2);
        push_tlv(&mut value, TAG_OCTET_STRING, nonce);
        let mut ext = Vec::with_capacity(value.len() + 16);
        push_extension(&mut ext, &[0x2b, 6, 1, 5, 5, 7, 0x30, 1, 2], &value);
        let mut seq = Vec::with_capacity(ext.len() + 2);
        push_tlv(&mut seq, TAG_SEQUENCE, &ext);
        push_tlv(&mut tbs, 0xa2, &seq);
    }
    let mut tbs_seq = Vec::with_capacity(tbs.len() + 4);
    push_tlv(&mut tbs_seq, TAG_SEQUENCE, &tbs);
    let mut der = Vec::with_capacity(tbs_seq.len() + 4);
    push_tlv(&mut der, TAG_SEQUENCE, &tbs_seq);

    // Read back with the responder's own parser: the CertID to match is exactly what a
    // responder sees.
    let parsed = parse_ocsp_request(&der).map_err(cert_err)?;
    let cert_id = parsed
        .cert_ids
        .into_iter()
        .next()
        .ok_or_else(|| OcspCheckError::Certificate("no CertID was written".into()))?;
    Ok(OcspRequestFor {
        der,
        cert_id,
        nonce: nonce.map(<[u8]>::to_vec),
    })
}

/// Who signed a verified OCSP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OcspResponseSigner {
    /// The issuing CA's own key.
    Issuer,
    /// A delegated responder certified by the issuer with EKU id-kp-OCSPSigning.
    Delegated {
        /// The responder certificate's serial number.
        serial: Serial,
        /// When the responder certificate expires.
        not_after: OffsetDateTime,
    },
}

/// An OCSP response that [`verify_ocsp_response`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedOcspResponse {
    /// The certificate's status: good, revoked (time and reason) or unknown.
    pub status: CertStatusKind,
    /// producedAt: when the response was signed.
    pub produced_at: OffsetDateTime,
    /// thisUpdate of the certificate's SingleResponse.
    pub this_update: OffsetDateTime,
    /// nextUpdate, when the responder gave one (RFC 5019 responders always do).
    pub next_update: Option<OffsetDateTime>,
    /// Who signed it.
    pub signer: OcspResponseSigner,
}

/// Check a DER OCSPResponse the way a TLS client checks a stapled one (RFC 6960 sections
/// 3.2 and 4.2.2.2), before it is stapled:
///
/// 1. responseStatus is successful and the response is a BasicOCSPResponse;
/// 2. the signature verifies with the issuer's key (ResponderID naming the issuer), or with a
///    certificate carried in `certs` that matches the ResponderID, was signed by the issuer,
///    names the issuer as its issuer, has EKU id-kp-OCSPSigning and is valid at `now`;
/// 3. one SingleResponse has the CertID of `request` (hash algorithm, both issuer hashes and
///    the serial);
/// 4. its thisUpdate is not after `now` + [`OCSP_CLOCK_SKEW`], and its nextUpdate (when
///    present) is after `now`;
/// 5. when `request` carried a nonce, the response echoes it.
///
/// Revoked and unknown are verified answers like good: the caller decides what they mean.
pub fn verify_ocsp_response(
    response_der: &[u8],
    request: &OcspRequestFor,
    issuer_der: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedOcspResponse, OcspCheckError> {
    let malformed = |e: der::Error| OcspCheckError::Malformed(e.to_string());
    let response = x509_ocsp::OcspResponse::from_der(response_der).map_err(malformed)?;
    use x509_ocsp::OcspResponseStatus as S;
    match response.response_status {
        S::Successful => {}
        S::MalformedRequest => return Err(OcspCheckError::Unsuccessful("malformedRequest")),
        S::InternalError => return Err(OcspCheckError::Unsuccessful("internalError")),
        S::TryLater => return Err(OcspCheckError::Unsuccessful("tryLater")),
        S::SigRequired => return Err(OcspCheckError::Unsuccessful("sigRequired")),
        S::Unauthorized => return Err(OcspCheckError::Unsuccessful("unauthorized")),
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| OcspCheckError::Malformed("a successful response without a body".into()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC_OID {
        return Err(OcspCheckError::Malformed(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = x509_ocsp::BasicOcspResponse::from_der(basic_der).map_err(malformed)?;
    let raw = RawBasicResponse::parse(basic_der).map_err(malformed)?;
    let data = &basic.tbs_response_data;

    let issuer_err = |e: CaError| OcspCheckError::Certificate(e.with("the issuer").to_string());
    let issuer_ids = OcspIssuerIds::from_cert_der(issuer_der).map_err(issuer_err)?;
    if !issuer_ids.matches(&request.cert_id) {
        return Err(OcspCheckError::Certificate(
            "the request's CertID names another issuer".into(),
        ));
    }
    let (issuer_name, issuer_key) =
        raw_subject_and_key(issuer_der).map_err(|e| issuer_err(e.into()))?;
    let issuer_spki = spki_der_of(issuer_der).map_err(issuer_err)?;

    // 2. The signer.
    let names = |name_der: &[u8], key_bits: &[u8]| match &data.responder_id {
        x509_ocsp::ResponderId::ByKey(hash) => {
            hash.as_bytes() == digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key_bits).as_ref()
        }
        x509_ocsp::ResponderId::ByName(name) => name.to_der().is_ok_and(|n| n == name_der),
    };
    let (signer_spki, signer) = if names(issuer_name, issuer_key) {
        (issuer_spki.clone(), OcspResponseSigner::Issuer)
    } else {
        let mut found = None;
        for cert_der in &raw.certs {
            let (name, key) = raw_subject_and_key(cert_der).map_err(|e| {
                OcspCheckError::Malformed(
                    CaError::from(e).with("a responder certificate").to_string(),
                )
            })?;
            if names(name, key) {
                found = Some(*cert_der);
                break;
            }
        }
        let cert_der = found.ok_or_else(|| {
            OcspCheckError::UnauthorisedSigner(
                "the responder ID is not the issuer's, and no certificate in the response \
                 matches it"
                    .into(),
            )
        })?;
        let signer = check_delegated_signer(cert_der, issuer_name, &issuer_spki, now)?;
        let spki = spki_der_of(cert_der).map_err(|e| {
            OcspCheckError::Malformed(e.with("the responder certificate").to_string())
        })?;
        (spki, signer)
    };
    let signature = basic
        .signature
        .as_bytes()
        .ok_or(OcspCheckError::BadSignature)?;
    if !signature_verifies(&signer_spki, raw.signature_algorithm, raw.tbs, signature) {
        return Err(OcspCheckError::BadSignature);
    }

    // 3. The certificate's answer.
    let want = &request.cert_id;
    let single = data
        .responses
        .iter()
        .find(|s| {
            OcspCertId::from_x509_ocsp(&s.cert_id).is_ok_and(|id| {
                id.hash == want.hash
                    && id.issuer_name_hash == want.issuer_name_hash
                    && id.issuer_key_hash == want.issuer_key_hash
                    && id.serial == want.serial
            })
        })
        .ok_or(OcspCheckError::CertIdMismatch)?;

    // 4. Times.
    let this_update = ocsp_time(&single.this_update)?;
    let next_update = single.next_update.as_ref().map(ocsp_time).transpose()?;
    let produced_at = ocsp_time(&data.produced_at)?;
    if this_update > now + OCSP_CLOCK_SKEW {
        return Err(OcspCheckError::NotYetValid(this_update));
    }
    if let Some(next) = next_update
        && next <= now
    {
        return Err(OcspCheckError::Expired(next));
    }

    // 5. The nonce.
    if let Some(sent) = &request.nonce {
        let echoed = data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
            .and_then(|e| der::asn1::OctetStringRef::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|n| n.as_bytes() == sent.as_slice());
        if !echoed {
            return Err(OcspCheckError::NonceMismatch);
        }
    }

    let status = match &single.cert_status {
        x509_ocsp::CertStatus::Good(_) => CertStatusKind::Good,
        x509_ocsp::CertStatus::Unknown(_) => CertStatusKind::Unknown,
        x509_ocsp::CertStatus::Revoked(info) => CertStatusKind::Revoked {
            at: ocsp_time(&info.revocation_time)?,
            reason: info.revocation_reason.map(|r| r as u8),
        },
    };
    Ok(VerifiedOcspResponse {
        status,
        produced_at,
        this_update,
        next_update,
        signer,
    })
}

/// The OCSP responder URLs (AIA id-ad-ocsp, uniformResourceIdentifier) of a DER
/// certificate, in the order listed.
pub fn ocsp_responder_urls(cert_der: &[u8]) -> Result<Vec<String>, OcspCheckError> {
    use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
    use x509_cert::ext::pkix::name::GeneralName;
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| OcspCheckError::Certificate(format!("unreadable certificate: {e}")))?;
    let aia = find_extension::<AuthorityInfoAccessSyntax>(
        &cert,
        const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
    )
    .map_err(|e| OcspCheckError::Certificate(e.to_string()))?;
    Ok(aia
        .into_iter()
        .flat_map(|aia| aia.0)
        .filter(|ad| ad.access_method == ID_AD_OCSP)
        .filter_map(|ad| match ad.access_location {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_string()),
            _ => None,
        })
        .collect())
}

/// RFC 6960 section 4.2.2.2: a delegated responder's certificate must be issued directly by
/// the CA (its issuer name and signature), carry EKU id-kp-OCSPSigning, and be valid now.
fn check_delegated_signer(
    cert_der: &[u8],
    issuer_name: &[u8],
    issuer_spki: &[u8],
    now: OffsetDateTime,
) -> Result<OcspResponseSigner, OcspCheckError> {
    let refused = |why: &str| OcspCheckError::UnauthorisedSigner(why.to_string());
    let raw = RawCertificate::parse(cert_der)
        .map_err(|e| OcspCheckError::Malformed(e.with("the responder certificate").to_string()))?;
    if raw.issuer != issuer_name {
        return Err(refused(
            "the responder certificate was issued by another CA",
        ));
    }
    if !signature_verifies(issuer_spki, raw.signature_algorithm, raw.tbs, raw.signature) {
        return Err(refused(
            "the responder certificate's signature does not verify with the issuer's key",
        ));
    }
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| OcspCheckError::Malformed(format!("responder certificate: {e}")))?;
    let eku =
        find_extension::<ExtendedKeyUsage>(&cert, const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .map_err(|e| OcspCheckError::Malformed(e.to_string()))?;
    if !eku.is_some_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(refused(
            "the responder certificate lacks EKU id-kp-OCSPSigning",
        ));
    }
    let validity = &cert.tbs_certificate.validity;
    let not_before = unix_time(validity.not_before.to_unix_duration())?;
    let not_after = unix_time(validity.not_after.to_unix_duration())?;
    if not_before > now + OCSP_CLOCK_SKEW || not_after <= now {
        return Err(refused(&format!(
            "the responder certificate is valid from {not_before} to {not_after}, not now"
        )));
    }
    let serial = Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| OcspCheckError::Malformed(format!("responder certificate: {e}")))?;
    Ok(OcspResponseSigner::Delegated { serial, not_after })
}

fn ocsp_time(t: &x509_ocsp::OcspGeneralizedTime) -> Result<OffsetDateTime, OcspCheckError> {
    unix_time(t.0.to_unix_duration())
}

fn unix_time(d: std::time::Duration) -> Result<OffsetDateTime, OcspCheckError> {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| OcspCheckError::Malformed("a time out of range".into()))
}

/// The SubjectPublicKeyInfo of a DER certificate, DER.
fn spki_der_of(cert_der: &[u8]) -> Result<Vec<u8>, CaError> {
    Certificate::from_der(cert_der)
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der())
        .map_err(|e| CaError::CaCertificate(format!("unreadable certificate: {e}")))
}

impl CaError {
    /// Prefix a certificate error with which certificate it is about.
    fn with(self, which: &str) -> CaError {
        match self {
            CaError::CaCertificate(why) => CaError::CaCertificate(format!("{which}: {why}")),
            other => other,
        }
    }
}

/// The parts of a signed certificate a signature check needs, sliced from the DER as signed.
///
/// ```text
/// Certificate ::= SEQUENCE { tbsCertificate TBSCertificate,
///      signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }
/// TBSCertificate ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
///      serialNumber CertificateSerialNumber, signature AlgorithmIdentifier, issuer Name, ... }
/// ```
struct RawCertificate<'a> {
    tbs: &'a [u8],
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    serial_tlv: &'a [u8],
    issuer: &'a [u8],
}

impl<'a> RawCertificate<'a> {
    fn parse(der_bytes: &'a [u8]) -> Result<Self, CaError> {
        use der::{Header, Reader, SliceReader, Tag};
        let bad = |e: der::Error| CaError::CaCertificate(format!("unreadable certificate: {e}"));
        let mut outer = SliceReader::new(der_bytes).map_err(bad)?;
        Header::decode(&mut outer)
            .and_then(|h| h.tag.assert_eq(Tag::Sequence))
            .map_err(bad)?;
        let tbs = outer.tlv_bytes().map_err(bad)?;
        let signature_algorithm = outer.tlv_bytes().map_err(bad)?;
        let signature = der::asn1::BitStringRef::from_der(outer.tlv_bytes().map_err(bad)?)
            .map_err(bad)?
            .as_bytes()
            .ok_or_else(|| CaError::CaCertificate("the signature has unused bits".into()))?;
        if !outer.is_finished() {
            return Err(CaError::CaCertificate(
                "trailing data in the certificate".into(),
            ));
        }
        let mut inner = SliceReader::new(tbs).map_err(bad)?;
        Header::decode(&mut inner)
            .and_then(|h| h.tag.assert_eq(Tag::Sequence))
            .map_err(bad)?;
        let version_tag = Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        };
        if inner.peek_tag().map_err(bad)? == version_tag {
            inner.tlv_bytes().map_err(bad)?;
        }
        let serial_tlv = inner.tlv_bytes().map_err(bad)?;
        inner.tlv_bytes().map_err(bad)?; // signature
        let issuer = inner.tlv_bytes().map_err(bad)?;
        Ok(RawCertificate {
            tbs,
            signature_algorithm,
            signature,
            serial_tlv,
            issuer,
        })
    }
}

/// A BasicOCSPResponse sliced as signed: the ResponseData bytes, the signature algorithm
/// and the certificates in `certs`.
///
/// ```text
/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
///    signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
///    certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
struct RawBasicResponse<'a> {
    tbs: &'a [u8],
    signature_algorithm: &'a [u8],
    certs: Vec<&'a [u8]>,
}

impl<'a> RawBasicResponse<'a> {
    fn parse(der_bytes: &'a [u8]) -> Result<Self, der::Error> {
        use der::{Header, Reader, SliceReader, Tag};
        let mut outer = SliceReader::new(der_bytes)?;
        Header::decode(&mut outer)?.tag.assert_eq(Tag::Sequence)?;
        let tbs = outer.tlv_bytes()?;
        let signature_algorithm = outer.tlv_bytes()?;
        outer.tlv_bytes()?; // signature
        let mut certs = Vec::new();
        if !outer.is_finished() {
            let explicit = outer.tlv_bytes()?;
            let mut explicit = SliceReader::new(explicit)?;
            Header::decode(&mut explicit)?;
            let seq = explicit.tlv_bytes()?;
            let mut seq = SliceReader::new(seq)?;
            Header::decode(&mut seq)?.tag.assert_eq(Tag::Sequence)?;
            while !seq.is_finished() {
                certs.push(seq.tlv_bytes()?);
            }
        }
        Ok(RawBasicResponse {
            tbs,
            signature_algorithm,
            certs,
        })
    }
}

#[cfg(test)]
mod client_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use der::{Decode, Encode};
    use rcgen::PublicKeyData;
    use ring::rand::SystemRandom;
    use ring::signature::{self as ring_sig, EcdsaKeyPair};

    use super::*;
    use crate::{
        Csr, InitOptions, IssuanceUrls, IssuingCa, Policy, Profile, ProfileLimits, generate_ca,
    };

    const OCSP_URL: &str = "http://127.0.0.1:9/ocsp";

    fn ca(name: &str) -> IssuingCa {
        let bundle = generate_ca(&InitOptions::new(name), OffsetDateTime::now_utc()).unwrap();
        IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls {
                ocsp: Some(OCSP_URL.into()),
                ca_issuers: None,
                crl: None,
            },
        )
        .unwrap()
    }

    fn leaf(ca: &IssuingCa, host: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let csr = params.serialize_request(&key).unwrap();
        let csr = Csr::from_pem_or_der(csr.der()).unwrap();
        ca.issue(
            &csr,
            Profile::Server,
            &ProfileLimits::default(),
            None,
            &Policy::allow_all(),
            OffsetDateTime::now_utc(),
        )
        .unwrap()
        .der
    }

    fn signer(ca: &IssuingCa) -> OcspSigner {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let spki = rcgen::KeyPair::try_from(pkcs8.as_ref())
            .unwrap()
            .subject_public_key_info();
        let cert = ca
            .issue_ocsp_signer(
                &spki,
                Duration::from_secs(86_400),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        OcspSigner::new(pkcs8.as_ref(), &cert.der).unwrap()
    }

    struct Setup {
        ca: IssuingCa,
        signer: OcspSigner,
        leaf: Vec<u8>,
        request: OcspRequestFor,
        now: OffsetDateTime,
    }

    fn setup() -> Setup {
        let ca = ca("Staple Test CA");
        let signer = signer(&ca);
        let leaf = leaf(&ca, "web.internal");
        let request = build_ocsp_request(&leaf, ca.cert_der(), CertIdHash::Sha1, None).unwrap();
        Setup {
            ca,
            signer,
            leaf,
            request,
            now: OffsetDateTime::now_utc(),
        }
    }

    impl Setup {
        fn respond(&self, id: &OcspCertId, status: CertStatusKind) -> Vec<u8> {
            build_response(
                &self.signer,
                &[(id, status)],
                self.now,
                self.now + Duration::from_secs(3600),
                None,
            )
            .unwrap()
        }

        fn verify(&self, response: &[u8]) -> Result<VerifiedOcspResponse, OcspCheckError> {
            verify_ocsp_response(response, &self.request, self.ca.cert_der(), self.now)
        }
    }

    /// Take a response apart, let `edit` change the BasicOCSPResponse, and put it back.
    fn edit_basic(
        response: &[u8],
        edit: impl FnOnce(&mut x509_ocsp::BasicOcspResponse),
    ) -> Vec<u8> {
        let mut outer = x509_ocsp::OcspResponse::from_der(response).unwrap();
        let bytes = outer.response_bytes.as_mut().unwrap();
        let mut basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
        edit(&mut basic);
        bytes.response = der::asn1::OctetString::new(basic.to_der().unwrap()).unwrap();
        outer.to_der().unwrap()
    }

    #[test]
    fn the_request_is_what_openssl_and_nginx_send() {
        let s = setup();
        let parsed = parse_ocsp_request(&s.request.der).unwrap();
        assert_eq!(parsed.cert_ids(), std::slice::from_ref(&s.request.cert_id));
        assert_eq!(parsed.nonce(), None);
        let id = &s.request.cert_id;
        assert_eq!(id.hash_algorithm(), CertIdHash::Sha1);
        assert!(
            OcspIssuerIds::from_cert_der(s.ca.cert_der())
                .unwrap()
                .matches(id)
        );
        let info = crate::CertificateInfo::from_der(&s.leaf).unwrap();
        assert_eq!(id.serial(), &info.serial);
        // id-sha1 with NULL parameters, as `openssl ocsp` writes it.
        let x = x509_ocsp::OcspRequest::from_der(&s.request.der).unwrap();
        let alg = &x.tbs_request.request_list[0].req_cert.hash_algorithm;
        assert_eq!(alg.oid, ID_SHA1);
        assert_eq!(
            alg.parameters.as_ref().map(|p| p.tag()),
            Some(der::Tag::Null)
        );

        let with_nonce =
            build_ocsp_request(&s.leaf, s.ca.cert_der(), CertIdHash::Sha256, Some(&[7; 16]))
                .unwrap();
        let parsed = parse_ocsp_request(&with_nonce.der).unwrap();
        assert_eq!(parsed.nonce(), Some(&[7u8; 16][..]));
        assert_eq!(parsed.cert_ids()[0].hash_algorithm(), CertIdHash::Sha256);
    }

    #[test]
    fn a_request_needs_the_leafs_real_issuer() {
        let s = setup();
        let other = ca("Staple Test CA");
        let err =
            build_ocsp_request(&s.leaf, other.cert_der(), CertIdHash::Sha1, None).unwrap_err();
        assert!(
            matches!(&err, OcspCheckError::Certificate(m) if m.contains("signature")),
            "{err}"
        );
        let err = build_ocsp_request(&s.leaf, &s.leaf, CertIdHash::Sha1, None).unwrap_err();
        assert!(matches!(err, OcspCheckError::Certificate(_)), "{err}");
        let err = build_ocsp_request(b"junk", s.ca.cert_der(), CertIdHash::Sha1, None).unwrap_err();
        assert!(matches!(err, OcspCheckError::Certificate(_)), "{err}");
    }

    #[test]
    fn good_and_revoked_from_a_delegated_signer_verify() {
        let s = setup();
        let ok = s
            .verify(&s.respond(&s.request.cert_id, CertStatusKind::Good))
            .unwrap();
        assert_eq!(ok.status, CertStatusKind::Good);
        assert!(matches!(ok.signer, OcspResponseSigner::Delegated { .. }));
        assert_eq!(ok.this_update, whole_seconds(s.now));
        assert_eq!(
            ok.next_update,
            Some(whole_seconds(s.now + Duration::from_secs(3600)))
        );

        let at = whole_seconds(s.now - Duration::from_secs(60));
        let revoked = CertStatusKind::Revoked {
            at,
            reason: Some(1),
        };
        let ok = s.verify(&s.respond(&s.request.cert_id, revoked)).unwrap();
        assert_eq!(ok.status, revoked);
        let ok = s
            .verify(&s.respond(&s.request.cert_id, CertStatusKind::Unknown))
            .unwrap();
        assert_eq!(ok.status, CertStatusKind::Unknown);
    }

    #[test]
    fn a_response_signed_by_the_issuer_itself_verifies() {
        let s = setup();
        let delegated = s.respond(&s.request.cert_id, CertStatusKind::Good);
        let (_, key) = raw_subject_and_key(s.ca.cert_der()).unwrap();
        let key_hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key);
        let issuer_signed = edit_basic(&delegated, |basic| {
            basic.tbs_response_data.responder_id = x509_ocsp::ResponderId::ByKey(
                der::asn1::OctetString::new(key_hash.as_ref()).unwrap(),
            );
            basic.certs = None;
            let tbs = basic.tbs_response_data.to_der().unwrap();
            basic.signature_algorithm =
                spki::AlgorithmIdentifierOwned::from_der(s.ca.signature_algorithm_der().unwrap())
                    .unwrap();
            basic.signature =
                der::asn1::BitString::from_bytes(&s.ca.sign_raw(&tbs).unwrap()).unwrap();
        });
        let ok = s.verify(&issuer_signed).unwrap();
        assert_eq!(ok.signer, OcspResponseSigner::Issuer);
        assert_eq!(ok.status, CertStatusKind::Good);
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let s = setup();
        let good = s.respond(&s.request.cert_id, CertStatusKind::Good);
        let tampered = edit_basic(&good, |basic| {
            let mut sig = basic.signature.raw_bytes().to_vec();
            let last = sig.len() - 1;
            sig[last] ^= 0x01;
            basic.signature = der::asn1::BitString::from_bytes(&sig).unwrap();
        });
        assert!(matches!(
            s.verify(&tampered),
            Err(OcspCheckError::BadSignature)
        ));
        // The status changed after signing: the signature no longer covers it.
        let flipped = edit_basic(&good, |basic| {
            basic.tbs_response_data.responses[0].cert_status =
                x509_ocsp::CertStatus::Unknown(der::asn1::Null);
        });
        assert!(matches!(
            s.verify(&flipped),
            Err(OcspCheckError::BadSignature)
        ));
    }

    #[test]
    fn a_signer_certified_by_another_ca_is_refused() {
        let s = setup();
        let other = ca("Staple Test CA");
        let stranger = Setup {
            signer: signer(&other),
            ..setup()
        };
        // Same CertID, but signed by a responder the leaf's issuer never certified.
        let response = build_response(
            &stranger.signer,
            &[(&s.request.cert_id, CertStatusKind::Good)],
            s.now,
            s.now + Duration::from_secs(3600),
            None,
        )
        .unwrap();
        let err = s.verify(&response).unwrap_err();
        assert!(
            matches!(err, OcspCheckError::UnauthorisedSigner(_)),
            "{err}"
        );
    }

    #[test]
    fn a_response_for_another_certificate_is_refused() {
        let s = setup();
        let other_leaf = leaf(&s.ca, "other.internal");
        let other =
            build_ocsp_request(&other_leaf, s.ca.cert_der(), CertIdHash::Sha1, None).unwrap();
        let response = s.respond(&other.cert_id, CertStatusKind::Good);
        assert!(matches!(
            s.verify(&response),
            Err(OcspCheckError::CertIdMismatch)
        ));
        // The same certificate under a SHA-256 CertID is not the SHA-1 one asked about.
        let sha256 =
            build_ocsp_request(&s.leaf, s.ca.cert_der(), CertIdHash::Sha256, None).unwrap();
        let response = s.respond(&sha256.cert_id, CertStatusKind::Good);
        assert!(matches!(
            s.verify(&response),
            Err(OcspCheckError::CertIdMismatch)
        ));
    }

    #[test]
    fn expired_and_future_responses_are_refused() {
        let s = setup();
        let response = s.respond(&s.request.cert_id, CertStatusKind::Good);
        let later = s.now + Duration::from_secs(3601);
        let err = verify_ocsp_response(&response, &s.request, s.ca.cert_der(), later).unwrap_err();
        assert!(matches!(err, OcspCheckError::Expired(_)), "{err}");
        let earlier = s.now - OCSP_CLOCK_SKEW - Duration::from_secs(2);
        let err =
            verify_ocsp_response(&response, &s.request, s.ca.cert_der(), earlier).unwrap_err();
        assert!(matches!(err, OcspCheckError::NotYetValid(_)), "{err}");
        // A small clock skew is tolerated.
        let skewed = s.now - Duration::from_secs(30);
        verify_ocsp_response(&response, &s.request, s.ca.cert_der(), skewed).unwrap();
    }

    #[test]
    fn error_statuses_and_junk_are_refused() {
        let s = setup();
        let err = s
            .verify(&error_response(OcspErrorStatus::TryLater))
            .unwrap_err();
        assert!(
            matches!(err, OcspCheckError::Unsuccessful("tryLater")),
            "{err}"
        );
        let err = s
            .verify(&error_response(OcspErrorStatus::Unauthorized))
            .unwrap_err();
        assert!(
            matches!(err, OcspCheckError::Unsuccessful("unauthorized")),
            "{err}"
        );
        assert!(matches!(
            s.verify(b"\x30\x03junk"),
            Err(OcspCheckError::Malformed(_))
        ));
    }

    #[test]
    fn a_nonce_sent_must_come_back() {
        let s = setup();
        let request =
            build_ocsp_request(&s.leaf, s.ca.cert_der(), CertIdHash::Sha1, Some(&[9; 16])).unwrap();
        let without = s.respond(&request.cert_id, CertStatusKind::Good);
        let err = verify_ocsp_response(&without, &request, s.ca.cert_der(), s.now).unwrap_err();
        assert!(matches!(err, OcspCheckError::NonceMismatch), "{err}");
        let with = build_response(
            &s.signer,
            &[(&request.cert_id, CertStatusKind::Good)],
            s.now,
            s.now + Duration::from_secs(3600),
            Some(&[9; 16]),
        )
        .unwrap();
        verify_ocsp_response(&with, &request, s.ca.cert_der(), s.now).unwrap();
    }

    #[test]
    fn the_responder_url_comes_from_the_aia() {
        let s = setup();
        assert_eq!(ocsp_responder_urls(&s.leaf).unwrap(), vec![OCSP_URL]);
        assert!(ocsp_responder_urls(s.ca.cert_der()).unwrap().is_empty());
    }
}
