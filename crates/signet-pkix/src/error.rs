//! The one error type of the PKIX layer.

/// Everything `signet-pkix` can refuse. Callers above it (the CA core, the store, the API)
/// map these into their own errors; the messages are written for the person who gave the
/// input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkixError {
    /// A serial number is not a positive hex integer whose DER encoding fits 20 octets.
    #[error("invalid serial number: {0}")]
    InvalidSerial(String),

    /// A CRLReason code that RFC 5280 section 5.3.1 does not define (7 is unassigned; codes
    /// above 10 do not exist), or one that does not belong where it was given (8,
    /// removeFromCRL, belongs to delta CRLs only).
    #[error("invalid revocation reason code {0}")]
    InvalidRevocationReason(u8),

    /// A revocation reason name that is not one of RFC 5280's CRLReason names.
    #[error("unknown revocation reason {0:?}")]
    UnknownRevocationReason(String),

    /// A certificate could not be read where its bytes were needed (subject, key,
    /// extensions). Worded as the CA core words an unusable CA certificate, which is what
    /// its callers read with it.
    #[error("CA certificate: {0}")]
    Certificate(String),

    /// A public key of a type Signet does not handle here.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),

    /// Something could not be DER-encoded (a time outside what X.509 can say).
    #[error("{0}")]
    Encoding(String),

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// An OCSP request is not one Signet answers: not DER, too large, too many CertIDs, an
    /// unsupported hash algorithm, or a nonce outside 1 to 32 octets (RFC 8954). Answered
    /// with the OCSP status `malformedRequest` ([`PkixError::ocsp_status`]).
    #[error("malformed OCSP request: {0}")]
    MalformedOcspRequest(String),

    /// The delegated OCSP signer (its key or certificate) is unusable: mismatched key and
    /// certificate, missing EKU OCSPSigning, or an unsupported key type.
    #[error("OCSP signer: {0}")]
    OcspSigner(String),

    /// A key did not sign a CRL or an OCSP response: unavailable (a token or KMS out of
    /// reach) or failing. Nothing was signed or returned.
    #[error("signing key: {0}")]
    SigningKey(crate::SigningError),

    /// A CRL or OCSP response was asked for with times it cannot carry: a nextUpdate not
    /// after its thisUpdate, or no status to answer with. A fault of the caller, not of
    /// whoever sent a request.
    #[error("{0}")]
    InvalidResponse(String),
}

impl PkixError {
    /// The OCSP status to answer with when handling a request failed with this error:
    /// `malformedRequest` for what the client sent, `internalError` for everything else.
    pub fn ocsp_status(&self) -> crate::ocsp::OcspErrorStatus {
        match self {
            PkixError::MalformedOcspRequest(_) => crate::ocsp::OcspErrorStatus::MalformedRequest,
            _ => crate::ocsp::OcspErrorStatus::InternalError,
        }
    }

    /// Prefix a certificate error with which certificate it is about.
    pub(crate) fn with(self, which: &str) -> PkixError {
        match self {
            PkixError::Certificate(why) => PkixError::Certificate(format!("{which}: {why}")),
            other => other,
        }
    }
}
