//! Following the database: revocations made by any process, and CRLs published by any
//! (the issuing CA's, and the root CA's signed offline).
//!
//! Polling is the guarantee: every `poll_interval` (200 ms by default) the responder asks
//! for revocations past the last one it saw (an indexed range scan that is almost always
//! empty) and drops their cached answers, and checks whether a newer CRL was stored. On
//! PostgreSQL a `LISTEN` connection wakes it as soon as a revocation or a CRL commits, so the
//! usual delay is a few milliseconds; when that connection is lost, polling carries on.

use std::future::pending;
use std::time::Duration;

use signet_store::{ChangeListener, StoreError};
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
        let mut listener = listen(&self).await;
        let mut listen_retry = Instant::now() + RELISTEN_AFTER;
        loop {
            if let Err(e) = self.poll(&mut cursor).await {
                tracing::warn!(error = %e, "polling for revocations failed");
            }
            if let Err(e) = self.refresh_crl().await {
                tracing::warn!(error = %e, "checking for a new CRL failed");
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
            if listener.is_none() && Instant::now() >= listen_retry {
                listener = listen(&self).await;
                listen_retry = Instant::now() + RELISTEN_AFTER;
            }
        }
    }

    /// Drops the cached answers of every certificate revoked after `cursor`, advancing it.
    async fn poll(&self, cursor: &mut i64) -> Result<(), StoreError> {
        loop {
            let events = self.inner.store.revocations_since(*cursor, PAGE).await?;
            for event in &events {
                tracing::debug!(serial = %event.serial, "revocation seen");
                match signet_pkix::Serial::from_hex(&event.serial) {
                    Ok(serial) => self.inner.cache.invalidate(&serial),
                    Err(_) => self.inner.cache.clear(),
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
