//! What `signet serve` does for revocation with the CA key it holds (the responder itself
//! never holds it). CRLs are published by `signet_authority::RevocationPublisher`, which
//! holds only the CAs' CRL signers; [`ResponderListener`] tells the in-process responder
//! what it does. Here:
//!
//! - [`CaCertifier`]: signs the in-process responder's delegated OCSP certificate, recording
//!   it first like any other certificate (`signet_authority::Authority::certify_ocsp_signer`);
//! - [`answer_signer_requests`]: signs the certificates standalone `signet responder`
//!   processes ask for through the database (the same authority path, answering the
//!   request in the transaction that records the certificate).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use signet_authority::{Authority, PublishedPartition, Refusal, RevocationListener};
use signet_ca::{OffsetDateTime, Serial};
use signet_responder::{CertifySigner, Responder, ResponderError};
use signet_store::Store;

/// How often standalone responders' signer requests are looked for.
const SIGNER_REQUEST_POLL: Duration = Duration::from_secs(1);
/// Signer requests older than this are left unanswered: their responder has asked again.
const SIGNER_REQUEST_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The in-process responder, told by the revocation publisher of each revocation (its cached
/// answer for the serial is dropped) and of each new CRL of the current issuing CA (served
/// from the bytes just stored, not read back).
#[derive(Debug)]
pub struct ResponderListener(pub Responder);

impl RevocationListener for ResponderListener {
    fn certificate_revoked(&self, serial: &Serial) {
        self.0.certificate_revoked(serial);
    }

    fn crl_published(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    ) {
        self.0.install_crl(number, this_update, next_update, der);
    }

    fn partition_published(&self, p: PublishedPartition) {
        self.0.install_partition_crl(
            p.shard,
            p.delta_base.is_some(),
            p.number,
            p.this_update,
            p.next_update,
            p.der,
        );
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
        Refusal::Ca(e) => ResponderError::Certifier(Box::new(e)),
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
