//! Signet's workload agent: what runs next to a workload (an init container, a sidecar) to get,
//! renew and staple its certificate, and the client side of Signet's REST API.
//!
//! This crate is being filled in by issue 15: the agent moves here out of the `signet` binary.
#![forbid(unsafe_code)]
