//! Following the database: revocations made by any process, and CRLs published by any
//! (the issuing CA's, and the root CA's signed offline).
//!
//! Polling is the guarantee: every `poll_interval` (200 ms by default) the responder asks
//! for revocations past the last one it saw (an indexed range scan that is almost always
//! empty) and drops their cached answers, and checks whether a newer CRL was stored. On
//! PostgreSQL a `LISTEN` connection wakes it as soon as a revocation or a CRL commits, so the
//! usual delay is a few milliseconds; when that connection is lost, polling carries on.
//!
//! On a read-only hot standby (PostgreSQL streaming replication) there is no `LISTEN`: the
//! standby refuses it. The responder asks the server's role with every poll
//! ([`Store::role`](signet_store::Store::role)) and, on a standby, polls only: a revocation
//! is seen within one poll interval after the standby has replayed it (the replication
//! lag). It writes nothing there. Each poll that succeeds on a primary, or on a standby
//! whose WAL receiver is streaming, marks the view fresh; `/readyz` reports whether it still
//! is ([`Responder::is_ready`]).

use std::future::pending;
use std::time::Duration;

use signet_store::{ChangeListener, DatabaseRole, StoreError};
use tokio::time::Instant;

use crate::Responder;

/// Revocations read per query.
const PAGE: u32 = 1000;
/// How long to wait before reconnecting a lost `LISTEN` connection.
const RELISTEN_AFTER: Duration = Duration::from_secs(10);

impl Responder {
    /// Follow revocations and CRLs in the database until the task is dropped. Spawn it once
    /// per responder.
    pub async fn watch_changes(self) {
        let store = self.inner.store.clone();
        let mut cursor = loop {
            match store.revocation_cursor().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the revocation sequence failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // Anything cached before the cursor was read could predate a revocation the cursor
        // already covers: start clean.
        self.inner.cache.clear();
        self.inner.view.start_watching();
        let mut role = self.role_changed(None).await;
        let mut listener = match role {
            Some(DatabaseRole::Standby { .. }) => None,
            _ => listen(&self).await,
        };
        let mut listen_retry = Instant::now() + RELISTEN_AFTER;
        loop {
            let now_role = self.role_changed(role).await;
            if now_role.is_some() {
                role = now_role;
            }
            match self.poll(&mut cursor).await {
                Ok(()) => {
                    // Fresh only if the server itself is up to date: a primary, or a standby
                    // streaming from one.
                    if matches!(
                        now_role,
                        Some(DatabaseRole::Primary | DatabaseRole::Standby { streaming: true })
                    ) {
                        self.inner.view.seen_fresh();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "polling for revocations failed"),
            }
            if let Err(e) = self.refresh_crl().await {
                tracing::warn!(error = %e, "checking for a new CRL failed");
            }
            if let Err(e) = self.refresh_partition_crls().await {
                tracing::warn!(error = %e, "checking for new shard or delta CRLs failed");
            }
            if let Err(e) = self.refresh_root_crl().await {
                tracing::warn!(error = %e, "checking for a new root CRL failed");
            }
            if let Err(e) = self.refresh_previous_crls().await {
                tracing::warn!(error = %e, "checking for new CRLs of earlier issuing CAs failed");
            }
            self.check_root_crl_expiry(time::OffsetDateTime::now_utc());
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
                res = recv(&mut listener) => {
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "lost the database change listener; polling only");
                        listener = None;
                        listen_retry = Instant::now() + RELISTEN_AFTER;
                    }
                }
            }
            if listener.is_none()
                && Instant::now() >= listen_retry
                && !matches!(role, Some(DatabaseRole::Standby { .. }))
            {
                listener = listen(&self).await;
                listen_retry = Instant::now() + RELISTEN_AFTER;
            }
        }
    }

    /// The database server's role now (`None` if it cannot be asked), logging a change from
    /// `before`: a standby found (polling only from now on), promoted, or cut off from its
    /// primary.
    async fn role_changed(&self, before: Option<DatabaseRole>) -> Option<DatabaseRole> {
        let role = match self.inner.store.role().await {
            Ok(role) => role,
            Err(e) => {
                tracing::debug!(error = %e, "cannot ask the database server's role");
                return None;
            }
        };
        if before != Some(role) {
            match role {
                DatabaseRole::Standby { streaming } => tracing::info!(
                    streaming,
                    poll_ms = self.inner.config.poll_interval.as_millis(),
                    "the database is a read-only hot standby: following revocations by \
                     polling (no LISTEN); answers are as fresh as its replay of the primary"
                ),
                DatabaseRole::Primary if before.is_some() => tracing::info!(
                    "the database now accepts writes (a promoted standby): listening for \
                     changes again"
                ),
                _ => {}
            }
        }
        Some(role)
    }

    /// Drops the cached answers of every certificate revoked after `cursor`, advancing it.
    async fn poll(&self, cursor: &mut i64) -> Result<(), StoreError> {
        loop {
            let events = self.inner.store.revocations_since(*cursor, PAGE).await?;
            for event in &events {
                tracing::debug!(serial = ?event.serial, "revocation seen");
                match &event.serial {
                    Some(serial) => self.inner.cache.invalidate(serial),
                    // A serial the store does not spell: drop everything rather than miss it.
                    None => self.inner.cache.clear(),
                }
                *cursor = (*cursor).max(event.seq);
            }
            if events.len() < PAGE as usize {
                return Ok(());
            }
        }
    }
}

async fn listen(r: &Responder) -> Option<ChangeListener> {
    match r.inner.store.change_listener().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for database changes; polling only");
            None
        }
    }
}

async fn recv(listener: &mut Option<ChangeListener>) -> Result<(), StoreError> {
    match listener {
        Some(l) => l.recv().await,
        None => pending().await,
    }
}
