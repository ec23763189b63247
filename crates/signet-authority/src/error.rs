//! Why the authority did not issue: [`Refusal`].

use signet_ca::CaError;
use signet_store::StoreError;

/// Everything an issuance or renewal can end in other than a recorded certificate. The API
/// maps each to its problem+json (`type`, status, detail) one to one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The CA core refused (malformed CSR, invalid name, profile, lifetime...) or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store failed (or did not answer within the database timeout); nothing was
    /// recorded that the requester was told of.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Requested names that a rule of this request does not allow. `rule` says which (the
    /// token's `sans` claim, a Kubernetes workload's own names, whose policy).
    #[error("{rule}: {}", .names.join(", "))]
    NameDenied {
        /// Which rule refused them, as a sentence.
        rule: String,
        /// Every refused name, in `type:value` form.
        names: Vec<String>,
    },
    /// A Kubernetes workload that its provisioner's allow-lists do not admit.
    #[error("{0}")]
    ServiceAccountDenied(String),
    /// A renewal the current configuration or the records do not allow: the line's first
    /// provisioner is gone, or its lineage cannot be traced.
    #[error("{0}")]
    RenewalDenied(String),
    /// The single-use token presented with the request was already used: nothing recorded.
    #[error("this token has already been used")]
    TokenReplayed,
    /// A standalone responder's signer request that another process answered first:
    /// nothing recorded.
    #[error("the signer request was already answered")]
    AlreadyAnswered,
    /// A read-only credential (the auditor) asked for a certificate: nothing recorded.
    #[error("the auditor credential is read-only: it cannot request or change certificates")]
    ReadOnly,
    /// A bug or an inconsistency in the records (logged, answered without detail).
    #[error("{0}")]
    Internal(String),
}
