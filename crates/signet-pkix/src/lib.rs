//! Signet's PKIX formats, below the CA core: what both the CA (which holds keys and decides)
//! and the revocation publishers (the OCSP responder and the CRL endpoints, which must never
//! reach an issuing key) need to speak X.509.
//!
//! This crate is being filled in by issue 15 (the authority layer and the key-custody seam):
//! serials, the one table of revocation reasons, the DER writer and PEM encoder, CRL and OCSP
//! encoding, and the signing-key trait move here from `signet-ca`.
#![forbid(unsafe_code)]
