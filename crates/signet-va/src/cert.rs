//! A lenient reading of the one certificate validation looks into: the tls-alpn-01
//! server's self-signed certificate, for its key and its extensions.
//!
//! x509-cert's `Certificate` holds every field to RFC 5280, which real responders do not:
//! Go's `crypto/tls` responders (Let's Encrypt's own pebble-challtestsrv among them) write a
//! validity of `00010101000000Z` as GeneralizedTime, which RFC 5280 section 4.1.2.5 says
//! must be UTCTime, so x509-cert refuses the whole certificate. Nothing here depends on
//! the validity, names or serial of a challenge certificate (RFC 8737 section 3 proves
//! control through the key authorization, not the dates), so those fields are read as
//! opaque DER and only the key and the extensions are decoded.

use der::Sequence;
use der::asn1::{Any, BitString, ObjectIdentifier, OctetString};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// RFC 5280 section 4.1:
///
/// ```text
/// Certificate  ::=  SEQUENCE  {
///      tbsCertificate       TBSCertificate,
///      signatureAlgorithm   AlgorithmIdentifier,
///      signatureValue       BIT STRING  }
/// ```
#[derive(Debug, Sequence)]
pub(crate) struct Certificate {
    pub(crate) tbs_certificate: TbsCertificate,
    signature_algorithm: Any,
    signature_value: Any,
}

/// RFC 5280 section 4.1, with the fields validation does not look at left undecoded:
///
/// ```text
/// TBSCertificate  ::=  SEQUENCE  {
///      version         [0]  EXPLICIT Version DEFAULT v1,
///      serialNumber         CertificateSerialNumber,
///      signature            AlgorithmIdentifier,
///      issuer               Name,
///      validity             Validity,
///      subject              Name,
///      subjectPublicKeyInfo SubjectPublicKeyInfo,
///      issuerUniqueID  [1]  IMPLICIT UniqueIdentifier OPTIONAL,
///      subjectUniqueID [2]  IMPLICIT UniqueIdentifier OPTIONAL,
///      extensions      [3]  EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(Debug, Sequence)]
pub(crate) struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<Any>,
    serial_number: Any,
    signature: Any,
    issuer: Any,
    validity: Any,
    subject: Any,
    pub(crate) subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<BitString>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<BitString>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) extensions: Option<Vec<Extension>>,
}

/// RFC 5280 section 4.1, with `critical` read as written, so an explicitly encoded FALSE
/// (not DER, but seen) is accepted too:
///
/// ```text
/// Extension  ::=  SEQUENCE  {
///      extnID      OBJECT IDENTIFIER,
///      critical    BOOLEAN DEFAULT FALSE,
///      extnValue   OCTET STRING }
/// ```
#[derive(Debug, Sequence)]
pub(crate) struct Extension {
    pub(crate) extn_id: ObjectIdentifier,
    pub(crate) critical: Option<bool>,
    pub(crate) extn_value: OctetString,
}

impl Extension {
    pub(crate) fn is_critical(&self) -> bool {
        self.critical.unwrap_or(false)
    }
}
