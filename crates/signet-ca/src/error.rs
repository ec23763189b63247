//! The one error type of the CA core.

use std::time::Duration;

/// Everything that can stop the CA core from doing what it was asked.
///
/// Variants caused by the requester's input carry enough detail to tell them what to fix;
/// none of them ever carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CSR is not PEM or DER of a PKCS#10 CertificationRequest, or has trailing data.
    #[error("malformed CSR: {0}")]
    MalformedCsr(String),

    /// The CSR's self-signature does not verify with the public key it carries.
    #[error("the CSR's signature does not verify with its public key")]
    CsrSignatureInvalid,

    /// The CSR was signed with an algorithm Signet does not accept (e.g. SHA-1, RSA-PSS).
    #[error("unsupported CSR signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(String),

    /// The CSR's public key is of a type or size Signet does not issue for.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),

    /// The CSR asks for a CA certificate (basicConstraints cA=TRUE or a path length).
    #[error(
        "the CSR requests a CA certificate (basicConstraints); Signet issues end-entity certificates only"
    )]
    CaRequested,

    /// A serial number is not a positive hex integer of at most 20 octets.
    #[error("invalid serial number: {0}")]
    InvalidSerial(String),

    /// A requested name is not syntactically valid for its type.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as requested (escaped when printed).
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The CSR asks for more names than a certificate may carry.
    #[error("too many names requested: {count} (maximum {max})")]
    TooManyNames {
        /// How many were requested.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// Policy does not allow one or more requested names.
    #[error("names not allowed by policy: {}", .names.join(", "))]
    NameDenied {
        /// Every denied name, in `type:value` form.
        names: Vec<String>,
    },

    /// The profile needs names the CSR does not carry.
    #[error("profile {profile} requires {requirement}")]
    MissingNames {
        /// The profile asked for.
        profile: String,
        /// What kind of name it needs.
        requirement: &'static str,
    },

    /// The profile name is not one Signet knows.
    #[error("unknown profile {0:?} (expected server, client or peer)")]
    UnknownProfile(String),

    /// The requester may not use this profile.
    #[error("profile {0} is not allowed for this requester")]
    ProfileDenied(String),

    /// The requested lifetime could not be parsed or is out of range.
    #[error("invalid lifetime {0:?}")]
    InvalidLifetime(String),

    /// The requested lifetime is longer than allowed.
    #[error("lifetime {} exceeds the maximum {}", crate::profile::fmt_span(*.requested), crate::profile::fmt_span(*.max))]
    LifetimeTooLong {
        /// What was asked for.
        requested: Duration,
        /// The largest lifetime allowed here.
        max: Duration,
    },

    /// The issuing CA has expired or is not yet valid.
    #[error("the issuing CA is not valid at this time (valid until {0})")]
    IssuerExpired(String),

    /// A private key could not be read, decrypted or used.
    #[error("private key: {0}")]
    Key(String),

    /// A private key file is readable by group or others.
    #[error(
        "private key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    KeyFilePermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },

    /// A CA certificate is unusable (not a CA, does not match its key, unparseable).
    #[error("CA certificate: {0}")]
    CaCertificate(String),

    /// A certificate given to be revoked by a CA was not issued by it.
    #[error("not a certificate this CA issued: {0}")]
    NotIssuedHere(String),

    /// An I/O error on a CA file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An OCSP request is not one Signet answers: not DER, too large, too many CertIDs, an
    /// unsupported hash algorithm, or a nonce outside 1 to 32 octets (RFC 8954). Answered
    /// with the OCSP status `malformedRequest`.
    #[error("malformed OCSP request: {0}")]
    MalformedOcspRequest(String),

    /// A revocation reason code that RFC 5280 section 5.3.1 does not define for a full CRL or
    /// an OCSP response (7 is unassigned, 8 removeFromCRL belongs to delta CRLs, above 10).
    #[error("invalid revocation reason code {0}")]
    InvalidRevocationReason(u8),

    /// The delegated OCSP signer (its key or certificate) is unusable: mismatched key and
    /// certificate, missing EKU OCSPSigning, or an unsupported key type.
    #[error("OCSP signer: {0}")]
    OcspSigner(String),

    /// A CA or OCSP signer key did not sign: unavailable (a token or KMS out of reach) or
    /// failing. Nothing was signed or returned.
    #[error("signing key: {0}")]
    SigningKey(signet_pkix::SigningError),

    /// An object given to [`crate::inspect`] is not a readable certificate, CSR, CRL or
    /// OCSP response.
    #[error("{0}")]
    Inspect(String),

    /// Encoding or signing failed inside the CA. Not caused by the requester.
    #[error("internal signing error: {0}")]
    Internal(String),
}

impl From<signet_pkix::PkixError> for CaError {
    fn from(e: signet_pkix::PkixError) -> Self {
        use signet_pkix::PkixError as P;
        match e {
            P::InvalidSerial(detail) => CaError::InvalidSerial(detail),
            P::InvalidRevocationReason(code) => CaError::InvalidRevocationReason(code),
            P::Certificate(detail) => CaError::CaCertificate(detail),
            P::UnsupportedKey(detail) => CaError::UnsupportedKey(detail),
            P::Encoding(detail) | P::InvalidResponse(detail) => CaError::Internal(detail),
            P::MalformedOcspRequest(detail) => CaError::MalformedOcspRequest(detail),
            P::OcspSigner(detail) => CaError::OcspSigner(detail),
            P::SigningKey(e) => CaError::SigningKey(e),
            // The random number generator failing; the CA core parses no reason names, so
            // an unknown one cannot come from its input.
            other => CaError::Internal(other.to_string()),
        }
    }
}

impl CaError {
    /// The OCSP status to answer with when handling a request failed with this error:
    /// `malformedRequest` for what the client sent, `internalError` for everything else
    /// (as [`signet_pkix::PkixError::ocsp_status`] says for the errors it returns).
    pub fn ocsp_status(&self) -> signet_pkix::ocsp::OcspErrorStatus {
        match self {
            CaError::MalformedOcspRequest(_) => {
                signet_pkix::ocsp::OcspErrorStatus::MalformedRequest
            }
            _ => signet_pkix::ocsp::OcspErrorStatus::InternalError,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CaError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        CaError::Internal(e.to_string())
    }

    /// A [`CaError::LifetimeTooLong`] restated against `max`, the maximum that applies to
    /// the request (a requested lifetime beyond [`crate::Lifetime::MAX`] does not parse, so
    /// the parser can only name that bound); any other error unchanged.
    pub fn against_max(self, max: crate::Lifetime) -> Self {
        match self {
            CaError::LifetimeTooLong { requested, .. } => CaError::LifetimeTooLong {
                requested,
                max: max.duration(),
            },
            other => other,
        }
    }

    /// True when the requester's input caused the error (a 4xx, not a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            CaError::IssuerExpired(_)
                | CaError::Key(_)
                | CaError::KeyFilePermissions { .. }
                | CaError::CaCertificate(_)
                | CaError::Io { .. }
                | CaError::OcspSigner(_)
                | CaError::SigningKey(_)
                | CaError::Internal(_)
        )
    }
}
