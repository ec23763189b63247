//! Signet's PKIX formats, below the CA core: what both the CA (which holds keys and decides)
//! and the revocation publishers (the OCSP responder and the CRL endpoints, which must never
//! reach an issuing key) need to speak X.509.
//!
//! It owns:
//! - [`Serial`]: certificate serial numbers with Signet's one length rule (RFC 5280 section
//!   4.1.2.2: at most 20 octets of DER content, the sign octet included);
//! - [`RevocationReason`]: RFC 5280's CRLReason, the one table of reason codes and names;
//! - [`der_writer`]: the small DER writer CRLs and OCSP responses are written with;
//! - [`pem`]: the one PEM encoder;
//! - [`cert`]: reading a certificate's subject, key and extensions as signed, and verifying
//!   signatures with ring.
//! - [`SigningKey`]: the key-custody seam (sign bytes, say the algorithm and public key),
//!   with [`Pkcs8Key`], the in-memory ring implementation;
//! - [`crl`]: CRL encoding, signed by a [`crl::CrlSigner`] (a CA's name, key identifier and
//!   key, and nothing else);
//! - [`ocsp`]: OCSP request parsing, response building with a delegated [`ocsp::OcspSigner`],
//!   and the client side (requests for a staple, verifying responses);
//! - [`rfc3339`]: how every Signet output writes a time.
//!
//! It never makes or loads a CA: everything here signs only with a key it is handed, which
//! is why the OCSP responder can depend on it and not on `signet-ca`.
#![forbid(unsafe_code)]

pub mod cert;
pub mod crl;
pub mod der_writer;
mod error;
pub mod ocsp;
pub mod pem;
mod reason;
mod serial;
mod signing;
mod times;

pub use error::PkixError;
pub use reason::RevocationReason;
pub use serial::Serial;
pub use signing::{Pkcs8Key, SignatureAlgorithm, SigningError, SigningKey};
pub use times::rfc3339;
