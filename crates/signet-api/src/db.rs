//! The store as request handlers reach it: every database operation a request makes is
//! bounded by the database timeout ([`crate::AppState::with_database_timeout`], `[database]
//! timeout` in the server's configuration), so that a database that stops answering (a
//! frozen server or host, a lock held for ever, a pool with no free connection) is answered
//! 503 `database-unavailable` within that bound instead of holding the request until the
//! request timeout. Only the operations handlers use are here, each a thin bound around the
//! store's own; the authority bounds its own (recording a certificate, following a renewal's
//! lineage) by the same timeout.
//!
//! An operation cut off by the bound is abandoned, not undone: a write already handed to the
//! database may still commit once it answers again. The client was told 503, never success,
//! so nothing it was told is lost; what it may find is a certificate it was never given (with
//! its audit row, in the same transaction), or a revocation that did happen, which a retry
//! then reports as already done.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use signet_store::{
    AuditEntry, AuditFilter, AuditPage, CertificateFilter, CertificatePage, CertificateRecord,
    RateDecision, RevokeOutcome, Store, StoreError,
};
use time::OffsetDateTime;

/// The database timeout when none is set: the store's own wait for a pooled connection.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Bounded {
    store: Store,
    /// Set at most once before serving; [`DATABASE_TIMEOUT`] when unset.
    pub(crate) timeout: OnceLock<Duration>,
}

impl Bounded {
    pub(crate) fn new(store: Store) -> Bounded {
        Bounded {
            store,
            timeout: OnceLock::new(),
        }
    }

    /// The store itself, for an operation run through [`Bounded::bounded`].
    pub(crate) fn raw(&self) -> &Store {
        &self.store
    }

    /// Run `op` (an operation of [`Bounded::raw`]) within the bound.
    pub(crate) async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.bound(op).await
    }

    /// The bound in force.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout.get().copied().unwrap_or(DATABASE_TIMEOUT)
    }

    async fn bound<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.timeout();
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::timed_out(limit)),
        }
    }

    /// Readiness: the database answers and would accept a write (a read-only standby
    /// would not).
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.bound(self.store.ping_writable()).await
    }

    /// Whether rate limits are shared through the database: on PostgreSQL, where any
    /// number of replicas may share it. SQLite serves one process, whose own limiters
    /// already hold the whole budget.
    pub(crate) fn shares_rate_limits(&self) -> bool {
        self.store.backend() == signet_store::Backend::Postgres
    }

    pub(crate) async fn take_rate_token(
        &self,
        bucket: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<RateDecision, StoreError> {
        self.bound(self.store.take_rate_token(bucket, per_second, burst))
            .await
    }

    pub(crate) async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        self.bound(self.store.append_audit(audit)).await
    }

    pub(crate) async fn get_certificate(
        &self,
        serial: &signet_ca::Serial,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        self.bound(self.store.get_certificate(serial)).await
    }

    pub(crate) async fn revoke(
        &self,
        serial: &signet_ca::Serial,
        at: OffsetDateTime,
        reason: signet_ca::RevocationReason,
        audit: &AuditEntry,
    ) -> Result<RevokeOutcome, StoreError> {
        self.bound(self.store.revoke(serial, at, reason, audit))
            .await
    }

    pub(crate) async fn consume_token(
        &self,
        provisioner: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.bound(self.store.consume_token(provisioner, jti, expires_at))
            .await
    }

    pub(crate) async fn list_certificates(
        &self,
        filter: &CertificateFilter,
    ) -> Result<CertificatePage, StoreError> {
        self.bound(self.store.list_certificates(filter)).await
    }

    pub(crate) async fn list_audit_page(
        &self,
        filter: &AuditFilter,
    ) -> Result<AuditPage, StoreError> {
        self.bound(self.store.list_audit_page(filter)).await
    }
}
