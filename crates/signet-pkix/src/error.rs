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
}
