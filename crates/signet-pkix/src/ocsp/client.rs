//! The client side of OCSP: the request a TLS server sends to fetch a staple for its
//! certificate, and the checks a TLS client makes of the response (RFC 6960 sections 3.2
//! and 4.2.2.2), run before the response is stapled (`signet staple`, `signet renew`).

use der::{Decode, Encode};
use ring::digest;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;

use super::{
    CertIdHash, CertStatusKind, ID_KP_OCSP_SIGNING, ID_PKIX_OCSP_NONCE, OcspCertId, OcspIssuerIds,
    checked_nonce, parse_ocsp_request,
};
use crate::PkixError;
use crate::Serial;
use crate::cert::{find_extension, raw_subject_and_key, signature_verifies};
use crate::der_writer::{TAG_OCTET_STRING, TAG_SEQUENCE, push_extension, push_tlv};

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
    let cert_err = |e: PkixError| OcspCheckError::Certificate(e.to_string());
    let nonce = nonce
        .map(checked_nonce)
        .transpose()
        .map_err(|e| OcspCheckError::Certificate(e.to_string()))?;
    let leaf = RawCertificate::parse(leaf_der).map_err(|e| cert_err(e.with("the leaf")))?;
    let (issuer_name, issuer_key) =
        raw_subject_and_key(issuer_der).map_err(|e| cert_err(e.with("the issuer")))?;
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

    let issuer_err = |e: PkixError| OcspCheckError::Certificate(e.with("the issuer").to_string());
    let issuer_ids = OcspIssuerIds::from_cert_der(issuer_der).map_err(issuer_err)?;
    if !issuer_ids.matches(&request.cert_id) {
        return Err(OcspCheckError::Certificate(
            "the request's CertID names another issuer".into(),
        ));
    }
    let (issuer_name, issuer_key) = raw_subject_and_key(issuer_der).map_err(issuer_err)?;
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
                OcspCheckError::Malformed(e.with("a responder certificate").to_string())
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
fn spki_der_of(cert_der: &[u8]) -> Result<Vec<u8>, PkixError> {
    Certificate::from_der(cert_der)
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der())
        .map_err(|e| PkixError::Certificate(format!("unreadable certificate: {e}")))
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
    fn parse(der_bytes: &'a [u8]) -> Result<Self, PkixError> {
        use der::{Header, Reader, SliceReader, Tag};
        let bad = |e: der::Error| PkixError::Certificate(format!("unreadable certificate: {e}"));
        let mut outer = SliceReader::new(der_bytes).map_err(bad)?;
        Header::decode(&mut outer)
            .and_then(|h| h.tag.assert_eq(Tag::Sequence))
            .map_err(bad)?;
        let tbs = outer.tlv_bytes().map_err(bad)?;
        let signature_algorithm = outer.tlv_bytes().map_err(bad)?;
        let signature = der::asn1::BitStringRef::from_der(outer.tlv_bytes().map_err(bad)?)
            .map_err(bad)?
            .as_bytes()
            .ok_or_else(|| PkixError::Certificate("the signature has unused bits".into()))?;
        if !outer.is_finished() {
            return Err(PkixError::Certificate(
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

    use der::{Decode, Encode, Tagged};
    use ring::rand::SystemRandom;
    use ring::signature::{self as ring_sig, EcdsaKeyPair};

    use super::super::{ID_SHA1, OcspErrorStatus, OcspSigner, build_response, error_response};
    use super::*;
    use crate::der_writer::whole_seconds;
    use crate::{Pkcs8Key, SignatureAlgorithm, SigningKey};

    const OCSP_URL: &str = "http://127.0.0.1:9/ocsp";

    /// A CA made with rcgen (an implementation independent of the code under test): its
    /// certificate and its key, as rcgen and as a [`Pkcs8Key`] for signing by hand.
    struct TestCa {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        key: Pkcs8Key,
        der: Vec<u8>,
    }

    impl TestCa {
        fn cert_der(&self) -> &[u8] {
            &self.der
        }
    }

    fn ca(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let pkcs8 =
            Pkcs8Key::from_pkcs8_der(&key.serialize_der(), SignatureAlgorithm::EcdsaP256Sha256)
                .unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            key: pkcs8,
            der,
        }
    }

    /// A server certificate for `host` whose AIA names [`OCSP_URL`] as its responder.
    fn leaf(ca: &TestCa, host: &str) -> Vec<u8> {
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial).unwrap();
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(OCSP_URL).unwrap(),
            ),
        }]);
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                aia.to_der().unwrap(),
            ));
        params.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
    }

    /// A delegated responder: a P-256 key and a certificate for it with EKU OCSPSigning,
    /// signed by `ca`.
    fn signer(ca: &TestCa) -> OcspSigner {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "OCSP responder");
        params.not_before = OffsetDateTime::now_utc() - Duration::from_secs(60);
        params.not_after = OffsetDateTime::now_utc() + Duration::from_secs(86_400);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        OcspSigner::new(pkcs8.as_ref(), cert.der()).unwrap()
    }

    struct Setup {
        ca: TestCa,
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
        let leaf = Certificate::from_der(&s.leaf).unwrap();
        let serial = Serial::from_be_bytes(leaf.tbs_certificate.serial_number.as_bytes()).unwrap();
        assert_eq!(id.serial(), &serial);
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
            basic.signature_algorithm = spki::AlgorithmIdentifierOwned::from_der(
                s.ca.key.algorithm().algorithm_identifier(),
            )
            .unwrap();
            basic.signature =
                der::asn1::BitString::from_bytes(&s.ca.key.sign(&tbs).unwrap()).unwrap();
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
