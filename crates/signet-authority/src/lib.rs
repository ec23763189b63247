//! Signet's authority: the one place that turns "this requester asks for this CSR under this
//! profile" into a decision, a signature, a record and an audit row.
//!
//! This crate is being filled in by issue 15: issuance and renewal decisions move here from
//! the API crate and the binary, and revocation publishing becomes one component here.
#![forbid(unsafe_code)]
