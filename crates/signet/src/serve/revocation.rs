//! What `signet serve` does for revocation with the CA key it holds (the responder itself
//! never holds it):
//!
//! - [`CrlPublisher`]: builds and signs a full CRL from the store on every revocation and on a
//!   schedule, and stores it under the next CRL number for every responder to serve;
//! - [`CaCertifier`]: signs the in-process responder's delegated OCSP certificate, recording
//!   it first like any other certificate (`signet_authority::Authority::certify_ocsp_signer`);
//! - [`answer_signer_requests`]: signs the certificates standalone `signet responder`
//!   processes ask for through the database (the same authority path, answering the
//!   request in the transaction that records the certificate).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use signet_authority::{Authority, Refusal};
use signet_ca::OffsetDateTime;
use signet_ca::{CrlSigner, RevokedEntry, Serial};
use signet_responder::{CertifySigner, Responder, ResponderError};
use signet_store::{NewCrl, Store};
use tokio::sync::Notify;

/// Revoked certificates read from the store per query while building a CRL.
const CRL_PAGE: u32 = 10_000;
/// How long to wait before retrying a failed publication.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// How often standalone responders' signer requests are looked for.
const SIGNER_REQUEST_POLL: Duration = Duration::from_secs(1);
/// Signer requests older than this are left unanswered: their responder has asked again.
const SIGNER_REQUEST_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Publishes CRLs: one per call of [`CrlPublisher::trigger`] (coalesced: revocations that
/// arrive during a build are covered by the next one) and one every `interval`. It holds the
/// CA's [`CrlSigner`], never the CA: it can sign CRLs and nothing else.
#[derive(Clone, Debug)]
pub struct CrlPublisher {
    signer: CrlSigner,
    store: Store,
    /// The in-process responder, told at once about each new CRL.
    responder: Option<Responder>,
    interval: Duration,
    validity: Duration,
    wake: Arc<Notify>,
}

impl CrlPublisher {
    pub fn new(
        signer: CrlSigner,
        store: Store,
        responder: Option<Responder>,
        interval: Duration,
        validity: Duration,
    ) -> Self {
        CrlPublisher {
            signer,
            store,
            responder,
            interval,
            validity,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Ask for a new CRL soon (after a revocation). Never blocks.
    pub fn trigger(&self) {
        self.wake.notify_one();
    }

    /// Publish now unless a still valid CRL of this CA is stored; returns when the next
    /// scheduled publication is due (zero when it is overdue).
    pub async fn publish_if_stale(&self) -> anyhow::Result<Duration> {
        let key_id = hex::encode(self.signer.key_id());
        let now = OffsetDateTime::now_utc();
        // Only the number and dates: the responder loads the DER itself (`watch_changes`,
        // or the first request), after the listeners are up, so a large CRL does not delay
        // the start.
        // A CRL that is due but still valid is replaced by `run` at once, in the background
        // (building one of a million entries takes seconds); only a missing or expired one
        // is published before serving.
        if let Some(latest) = self.store.latest_crl_info(&key_id).await?
            && latest.next_update > now
        {
            let due = latest.this_update + self.interval;
            return Ok((due - now).try_into().unwrap_or(Duration::ZERO));
        }
        self.publish().await?;
        Ok(self.interval)
    }

    /// Build, sign and store a CRL of every unexpired revoked certificate; returns its number.
    pub async fn publish(&self) -> anyhow::Result<u64> {
        let key_id = hex::encode(self.signer.key_id());
        let this_update = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .context("the time")?;
        let next_update = this_update + self.validity;
        // Taken before the entries are read, so that a larger number always covers at least
        // the revocations a smaller one does (see Store::next_crl_number).
        let number = self.store.next_crl_number(&key_id).await?;

        // The entries stream from the store a page at a time into the one buffer that
        // becomes the CRL, on a blocking thread since sign_crl reads a plain iterator.
        let started = std::time::Instant::now();
        let (signer, store, key) = (self.signer.clone(), self.store.clone(), key_id.clone());
        let handle = tokio::runtime::Handle::current();
        let (der, count) = tokio::task::spawn_blocking(move || {
            let mut entries = StoredEntries {
                store,
                handle,
                key_id: key,
                now: this_update,
                after: None,
                page: VecDeque::new(),
                done: false,
                count: 0,
                failure: None,
            };
            let der = signer.sign_crl(number, this_update, next_update, &mut entries)?;
            match entries.failure {
                Some(e) => Err(e.context("reading revoked certificates")),
                None => Ok((der, entries.count)),
            }
        })
        .await
        .context("the CRL builder stopped")??;

        let crl = NewCrl {
            issuer_key_id: key_id,
            number,
            this_update,
            next_update,
            der,
        };
        let built = started.elapsed();
        self.store
            .store_crl(&crl)
            .await
            .context("storing the CRL")?;
        tracing::info!(
            number,
            entries = count,
            bytes = crl.der.len(),
            build_ms = built.as_millis(),
            store_ms = (started.elapsed() - built).as_millis(),
            "published a CRL"
        );
        // Stored first, then served: the in-process responder takes the bytes just built
        // rather than reading them back (one copy of a large CRL in memory, not two).
        if let Some(r) = &self.responder {
            r.install_crl(number, this_update, next_update, crl.der);
        }
        Ok(number)
    }

    /// Publish on every trigger and every `interval`, until the task is dropped. `first_wait`
    /// is the time to the first scheduled publication.
    pub async fn run(self, first_wait: Duration) {
        let mut wait = first_wait;
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            wait = match self.publish().await {
                Ok(_) => self.interval,
                Err(e) => {
                    tracing::warn!(
                        error = crate::cmd::describe(&e),
                        "publishing a CRL failed; retrying"
                    );
                    RETRY_AFTER
                }
            };
        }
    }
}

/// A CRL's entries, read page by page from the store from inside `spawn_blocking`.
struct StoredEntries {
    store: Store,
    handle: tokio::runtime::Handle,
    key_id: String,
    now: OffsetDateTime,
    after: Option<String>,
    page: VecDeque<RevokedEntry>,
    done: bool,
    count: usize,
    /// Set when reading failed: the CRL built is then incomplete and is thrown away.
    failure: Option<anyhow::Error>,
}

impl Iterator for StoredEntries {
    type Item = RevokedEntry;

    fn next(&mut self) -> Option<RevokedEntry> {
        if self.page.is_empty() && !self.done {
            let page = self.handle.block_on(self.store.revoked_for_crl(
                &self.key_id,
                self.now,
                self.after.as_deref(),
                CRL_PAGE,
            ));
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    self.failure = Some(e.into());
                    self.done = true;
                    return None;
                }
            };
            self.done = page.len() < CRL_PAGE as usize;
            self.after = page.last().map(|r| r.serial.clone());
            for r in page {
                match Serial::from_hex(&r.serial) {
                    Ok(serial) => self.page.push_back(RevokedEntry {
                        serial,
                        revoked_at: r.revoked_at,
                        // removeFromCRL (8) belongs in delta CRLs only: list the entry as
                        // unspecified rather than fail the whole CRL.
                        reason: Some(r.reason).filter(|c| *c != 8),
                    }),
                    Err(e) => {
                        self.failure = Some(anyhow::Error::new(e).context(r.serial));
                        self.done = true;
                        self.page.clear();
                        return None;
                    }
                }
            }
        }
        let entry = self.page.pop_front()?;
        self.count += 1;
        Some(entry)
    }
}

/// Signs the in-process responder's signer certificates with the CA key directly.
#[derive(Debug)]
pub struct CaCertifier {
    authority: Arc<Authority>,
    lifetime: Duration,
}

impl CaCertifier {
    /// Certify through `authority` (which signs with its CA and records; it consults no
    /// policy or profile for OCSP signers); each certificate valid for `lifetime`.
    pub fn new(authority: Arc<Authority>, lifetime: Duration) -> CaCertifier {
        CaCertifier {
            authority,
            lifetime,
        }
    }
}

/// An authority refusal as the responder reports it.
fn responder_error(refusal: Refusal) -> ResponderError {
    match refusal {
        Refusal::Ca(e) => e.into(),
        Refusal::Store(e) => e.into(),
        other => ResponderError::Signer(other.to_string()),
    }
}

impl CertifySigner for CaCertifier {
    async fn certify(&self, spki_der: &[u8]) -> Result<Vec<u8>, ResponderError> {
        // Recorded (durably, with its audit row) before any response is signed with it.
        let cert = self
            .authority
            .certify_ocsp_signer(spki_der, self.lifetime, None)
            .await
            .map_err(responder_error)?;
        Ok(cert.der)
    }
}

/// Answer standalone responders' requests for signer certificates addressed to
/// `authority`'s CA (read from `store`), certifying through `authority`, until the task is
/// dropped. Every `signet serve` runs this; the store lets only one answer each request.
pub async fn answer_signer_requests(authority: Arc<Authority>, store: Store, lifetime: Duration) {
    let key_id = hex::encode(authority.ca().key_id());
    let mut refused = HashSet::new();
    let mut next_purge = tokio::time::Instant::now();
    loop {
        let now = OffsetDateTime::now_utc();
        match store
            .pending_ocsp_signer_requests(&key_id, now - SIGNER_REQUEST_MAX_AGE, 10)
            .await
        {
            Ok(requests) => {
                for req in requests {
                    if refused.contains(&req.id) {
                        continue;
                    }
                    match authority
                        .certify_ocsp_signer(&req.spki, lifetime, Some(req.id))
                        .await
                    {
                        Ok(cert) => tracing::info!(
                            request = req.id,
                            serial = %cert.serial,
                            "issued an OCSP signer certificate to a standalone responder"
                        ),
                        Err(Refusal::AlreadyAnswered) => {} // another process answered first
                        Err(Refusal::Ca(e)) => {
                            tracing::warn!(request = req.id, error = %e, "refused a signer request");
                            refused.insert(req.id);
                        }
                        Err(e) => {
                            tracing::warn!(request = req.id, error = %e, "answering a signer request failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading signer requests failed"),
        }
        if tokio::time::Instant::now() >= next_purge {
            next_purge += Duration::from_secs(3600);
            let before = now - Duration::from_secs(86_400);
            if let Err(e) = store.purge_ocsp_signer_requests(before).await {
                tracing::warn!(error = %e, "purging old signer requests failed");
            }
        }
        tokio::time::sleep(SIGNER_REQUEST_POLL).await;
    }
}
