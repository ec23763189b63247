//! Signet's workload agent: what runs next to a workload (an init container, a sidecar, a
//! cron job) to get, renew and staple its certificate, and the client side of Signet's REST
//! API that the `signet` binary's client commands use too.
//!
//! - [`bootstrap`]: `signet bootstrap`, a workload's first certificate with a bearer token
//!   (the Kubernetes init container).
//! - [`renew`]: `signet renew`, keeping that certificate (and an OCSP staple) fresh, over mTLS
//!   or with a renewal token (the sidecar, cron).
//! - [`client`]: the HTTPS client (rustls with ring, trusting only the Signet root given by
//!   file, by pinned fingerprint or by the saved context), credentials, problem documents.
//! - [`roots`]: the CA URL, a root fingerprint, certificates from PEM.
//! - [`context`]: the saved client context (`signet context`) in the user's configuration
//!   directory.
//! - [`workload`]: what `bootstrap` and `renew` share: the workload's files, keys and CSRs,
//!   chain verification with webpki, retries.
//! - [`renewal_token`]: the renewal token a certificate's own key signs.
//! - [`staple`]: `signet staple`, fetching and verifying an OCSP response for stapling.
//! - [`error`]: the typed markers in an error chain, the exit codes, and how an error is said.
//!
//! It talks to a Signet server only over HTTPS: it depends on the CA core (`signet-ca`) for
//! names, keys and certificate parsing, never on the API, the store or the responder. It
//! parses no command line: the binary turns its flags into the plain option structs here.
//! Errors are `anyhow` chains carrying the typed markers of [`error`], which decide the exit
//! code (the binary's `main` prints them with [`error::describe`]).
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod client;
pub mod context;
pub mod error;
pub mod files;
pub mod renew;
pub mod renewal_token;
pub mod roots;
pub mod staple;
pub mod workload;
