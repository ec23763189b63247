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
//! Revocation: [`IssuingCa::crl_signer`] and [`root_crl_signer`] hand out a [`CrlSigner`]
//! (the CA's name, key identifier and key, and nothing else) for the CA's publisher, and
//! [`IssuingCa::issue_ocsp_signer`] certifies the OCSP responder's own key. CRL and OCSP
//! encoding live in `signet-pkix` (`signet_pkix::crl`, `signet_pkix::ocsp`), below this
//! crate, so that the responder can answer without depending on the CA core; they are
//! re-exported here so the CA core's callers name them as before.
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
mod policy;
mod profile;

pub use crl::{SubordinateCa, root_crl_signer, root_key_crl_signer};
pub use csr::{Csr, CsrKeyType, PublicKey};
pub use error::CaError;
pub use files::{write_atomic, write_new};
pub use init::{
    CaBundle, CaCertificates, ImportedCa, ImportedChain, InitOptions, IssuingCaCertificate,
    NewIssuingCa, certify_ca_keys, generate_ca, import_ca, import_ca_for_key, signing_key_of,
};
pub use inspect::{
    AuthorityInfoAccessView, BasicConstraintsView, CertificateInfo, CertificateView, CrlEntryView,
    CrlView, CsrView, ExtensionView, FingerprintsView, Inspected, MAX_INSPECT_LEN,
    OcspResponseView, OcspSingleView, PublicKeyView, describe_certificate, describe_crl,
    describe_csr, describe_ocsp_response, inspect,
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
pub use policy::{DnsPattern, Policy};
pub use profile::{Lifetime, Profile, ProfileLimits, format_duration, parse_duration};
/// CRL encoding and its narrow signing handle live in `signet-pkix`; re-exported for the CA
/// core's callers.
pub use signet_pkix::crl::{
    CrlScope, CrlSigner, RevokedEntry, delta_url, distribution_points_der, shard_of, shard_url,
};
/// OCSP (responder and client side) lives in `signet-pkix`; re-exported for the CA core's
/// callers. Its errors are [`PkixError`]s, which convert into [`CaError`].
pub use signet_pkix::ocsp::{
    CertIdHash, CertStatusKind, MAX_OCSP_CERT_IDS, MAX_OCSP_REQUEST_LEN, OCSP_CLOCK_SKEW,
    OCSP_NONCE_LEN, OcspCertId, OcspCheckError, OcspErrorStatus, OcspIssuerIds, OcspRequestFor,
    OcspResponseSigner, OcspSigner, ParsedOcspRequest, VerifiedOcspResponse, build_ocsp_request,
    build_response, error_response, ocsp_responder_urls, parse_ocsp_request, verify_ocsp_response,
};
/// Serials and revocation reasons live in `signet-pkix` (one rule, one table for the whole
/// workspace); re-exported so `signet_ca::Serial` keeps working for the CA core's callers.
pub use signet_pkix::{
    Pkcs8Key, PkixError, RevocationReason, Serial, SignatureAlgorithm, SigningError, SigningKey,
    pem, rfc3339,
};

/// Re-exported so callers can name certificate times without depending on `time` directly.
pub use time::OffsetDateTime;
