//! Signet's CA core: keys, CSR intake, issuance policy, and certificate signing.
//!
//! This crate knows nothing of HTTP or SQL. Callers (the API, the CLI) hand it a CSR, a
//! profile, a lifetime and the [`Policy`] that applies to the requester; it answers with a
//! signed certificate or a typed [`CaError`] saying exactly why not.
//!
//! The flow of one issuance:
//! 1. [`Csr::from_pem_or_der`] parses the request, verifies its self-signature with ring and
//!    checks the key type (RSA 2048-8192, ECDSA P-256/P-384, Ed25519).
//! 2. [`IssuingCa::issue`] asks the [`Policy`] to approve the profile, the lifetime and every
//!    requested name, then builds the certificate from policy alone: nothing in the CSR other
//!    than its public key and approved names reaches the certificate.
//!
//! Revocation: a [`CrlSigner`] (the CA's name, key identifier and key, and nothing else)
//! signs CRLs for the CA's publisher ([`build_crl`] with the whole CA); the OCSP responder, which
//! never holds the CA key, answers [`parse_ocsp_request`]ed requests with [`build_response`]
//! signed by an [`OcspSigner`] whose certificate comes from [`IssuingCa::issue_ocsp_signer`].
#![forbid(unsafe_code)]

mod crl;
mod csr;
mod error;
pub mod files;
mod init;
mod inspect;
mod issue;
mod keys;
mod names;
mod ocsp;
mod policy;
mod profile;

pub use crl::{CrlSigner, RevokedEntry, SubordinateCa, build_crl};
pub use csr::{Csr, CsrKeyType, PublicKey};
pub use error::CaError;
pub use files::{write_atomic, write_new};
pub use init::{CaBundle, ImportedCa, InitOptions, NewIssuingCa, generate_ca, import_ca};
pub use inspect::{
    AuthorityInfoAccessView, BasicConstraintsView, CertificateInfo, CertificateView, CrlEntryView,
    CrlView, CsrView, ExtensionView, FingerprintsView, Inspected, MAX_INSPECT_LEN,
    OcspResponseView, OcspSingleView, PublicKeyView, describe_certificate, describe_crl,
    describe_csr, describe_ocsp_response, inspect, rfc3339,
};
pub use issue::{
    IssuanceUrls, IssuedCertificate, IssuingCa, OCSP_SIGNER_MAX_LIFETIME, OcspSignerCertificate,
    PreviousIssuer, certificate_signed_by, sha256_fingerprint,
};
pub use keys::{
    KeyType, LeafKeyType, decode_private_key, encode_private_key, read_private_key_file,
    write_private_key_file,
};
pub use names::{DnsName, SubjectName};
pub use ocsp::{
    CertIdHash, CertStatusKind, MAX_OCSP_CERT_IDS, MAX_OCSP_REQUEST_LEN, OCSP_NONCE_LEN,
    OcspCertId, OcspErrorStatus, OcspIssuerIds, OcspSigner, ParsedOcspRequest, build_response,
    error_response, parse_ocsp_request,
};
pub use ocsp::{
    OCSP_CLOCK_SKEW, OcspCheckError, OcspRequestFor, OcspResponseSigner, VerifiedOcspResponse,
    build_ocsp_request, ocsp_responder_urls, verify_ocsp_response,
};
pub use policy::{DnsPattern, Policy};
pub use profile::{Lifetime, Profile, ProfileLimits, format_duration, parse_duration};
/// Serials and revocation reasons live in `signet-pkix` (one rule, one table for the whole
/// workspace); re-exported so `signet_ca::Serial` keeps working for the CA core's callers.
pub use signet_pkix::{
    Pkcs8Key, PkixError, RevocationReason, Serial, SignatureAlgorithm, SigningError, SigningKey,
    pem,
};

/// Re-exported so callers can name certificate times without depending on `time` directly.
pub use time::OffsetDateTime;
