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
//!   with [`Pkcs8Key`], the in-memory ring implementation.
//!
//! Issue 15 moves CRL and OCSP encoding here from `signet-ca` next.
#![forbid(unsafe_code)]

pub mod cert;
pub mod der_writer;
mod error;
pub mod pem;
mod reason;
mod serial;
mod signing;

pub use error::PkixError;
pub use reason::RevocationReason;
pub use serial::Serial;
pub use signing::{Pkcs8Key, SignatureAlgorithm, SigningError, SigningKey};
