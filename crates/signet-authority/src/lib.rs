//! Signet's authority (what Boulder calls the registration authority): the one place that
//! turns "this requester asks for this CSR under this profile" into a decision, a signature,
//! a record and an audit row.
//!
//! - [`Requester`]: who asks, typed (a provisioner's token holder or Kubernetes workload
//!   carrying its [`Provisioner`], the admin, the holder of a certificate renewing it, the
//!   CA key's local holder, the server itself, an OCSP responder), rendered in one place
//!   into the string the store records.
//! - [`Authority::issue`] and [`Authority::renew`] decide: a token's `sans` bound its names,
//!   a Kubernetes workload gets its template names ([`KubernetesNames`]), a renewal meets the
//!   current policy of whoever its line was first issued to (its lineage is followed back
//!   through the store), and profile and TTL limits apply. They return a [`Recorded`]
//!   certificate or a typed [`Refusal`], which the API maps to problem+json.
//! - [`Authority::record`] (and [`record`] for the root's signatures) is the one sign ->
//!   record -> audit path: every certificate a CA key signs (issued, renewed, the server's
//!   own, an OCSP signer's by [`Authority::certify_ocsp_signer`], an issuing CA's) is durably
//!   stored with its audit row, in one transaction, before anyone is given it.
//! - [`revocation`]: revocation publishing, one component: [`RevocationPublisher`] signs
//!   the CRLs of the current and the kept issuing CAs (on each revocation, through its typed
//!   hook [`RevocationPublisher::revoked`], and on a schedule) and the offline root's CRL,
//!   through the CA core's narrow `CrlSigner`, never the issuing CA itself.
//!
//! It depends on the CA core (signet-ca) and the store (signet-store), never on the HTTP
//! layer: authentication, rate limits and problem+json stay in signet-api.
#![forbid(unsafe_code)]

mod authority;
mod error;
mod provisioner;
mod requester;
pub mod revocation;

pub use authority::{
    AlsoCommit, Authority, IssueRequest, OCSP_SIGNER_ACTION, Recorded, RenewRequest,
    SERVER_CERT_ACTION, SingleUse, ToRecord, Ttl, record,
};
pub use error::Refusal;
pub use provisioner::{
    DEFAULT_NAME_TEMPLATES, DEFAULT_TRUST_DOMAIN, KubernetesNames, Provisioner, is_namespace,
    is_service_account,
};
pub use requester::{
    HolderProof, MalformedRequester, OCSP_SIGNER_REQUESTER, RecordedRequester, Requester,
};
pub use revocation::{
    CrlLayout, CrlSchedule, FirstWaits, PublishError, PublishedPartition, RevocationListener,
    RevocationPublisher, RootCrl,
};
