//! What `signet serve` and `signet responder` share between their checked settings and their
//! accept loops: the OCSP responder over the store, the SIGHUP handler (installed before the
//! socket listens, so a SIGHUP sent once the process says it listens never meets the default
//! action, exit), and stopping: the background tasks ended, the database closed within a
//! deadline, and "stopped" said.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use signet_responder::{IssuerCertificate, Responder, ResponderConfig};
use signet_store::Store;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::{AbortHandle, JoinHandle};

/// How long closing the database may take when stopping.
const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The responder for `issuer` (and the earlier issuing CAs in `previous`), answering from
/// `store`; with `root`, it also serves the root's CRL and `/crl/chain.pem`. `crl_url`
/// (`[urls] crl`) gives `/crl/index.json` its URLs.
pub fn responder(
    store: Store,
    issuer: IssuerCertificate,
    root: Option<IssuerCertificate>,
    previous: Vec<IssuerCertificate>,
    ocsp_validity: Duration,
    crl_url: Option<String>,
) -> anyhow::Result<Responder> {
    let responder = Responder::with_root(
        store,
        issuer,
        root,
        ResponderConfig {
            ocsp_validity,
            crl_url,
            ..Default::default()
        },
    )?;
    responder.set_previous_issuers(previous);
    Ok(responder)
}

/// The console's OCSP lookup (`signet_api::OcspLookup`): a DER OCSPRequest answered by
/// `responder`'s own answer path, the one `POST /ocsp` takes (same parsing, cache and
/// signer), so the console sees what a relying party gets. In process, so it answers
/// whether or not the responder listens on a socket (`--responder-listen off`).
pub fn ocsp_lookup(responder: &Responder) -> signet_api::OcspLookup {
    let responder = responder.clone();
    std::sync::Arc::new(move |request_der: Vec<u8>| {
        let responder = responder.clone();
        Box::pin(async move { Ok(responder.ocsp_response(&request_der).await.to_vec()) })
    })
}

/// The SIGHUP handler; from this call on, SIGHUP no longer ends the process.
pub fn hangup() -> anyhow::Result<Signal> {
    signal(SignalKind::hangup()).context("installing the SIGHUP handler")
}

/// The tasks that run beside the accept loop, ended together once it returns.
#[derive(Debug, Default)]
pub struct Background(Vec<AbortHandle>);

impl Background {
    /// Run `task` until [`Background::stop`].
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task).abort_handle());
    }

    /// End `task` too at [`Background::stop`].
    pub fn adopt<T>(&mut self, task: &JoinHandle<T>) {
        self.0.push(task.abort_handle());
    }

    /// End every task, close the database (waiting at most 5 s: a stuck database must not
    /// keep a stopping process alive) and say so.
    pub async fn stop(self, store: &Store) {
        for task in self.0 {
            task.abort();
        }
        if tokio::time::timeout(STORE_CLOSE_TIMEOUT, store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not close in time");
        }
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use signet_api::{LiveOcsp, live_ocsp_status};
    use signet_authority::Authority;
    use signet_ca::{
        CertStatusKind, InitOptions, IssuanceUrls, IssuingCa, Lifetime, OcspResponseSigner,
        OffsetDateTime, Policy, Profile, ProfileLimits, RevocationReason, generate_ca,
    };
    use signet_store::{AuditAction, AuditEntry, AuditOutcome};

    use super::*;
    use crate::serve::identity::ServerIdentity;
    use crate::serve::revocation::CaCertifier;

    /// The lookup the console is given asks the in-process responder with a real request
    /// and verifies its real answer: good, then revoked with the time and reason once the
    /// store has the revocation and the responder has heard of it; and every way of not
    /// getting a verified answer is reported, never a status.
    #[tokio::test]
    async fn the_console_lookup_gets_the_responders_verified_answer() {
        let bundle = generate_ca(
            &InitOptions::new("Lookup Test CA"),
            OffsetDateTime::now_utc(),
        )
        .expect("CA");
        let ca = Arc::new(
            IssuingCa::new(
                &bundle.issuing_cert_pem,
                &bundle.root_cert_pem,
                bundle.issuing_key,
                IssuanceUrls::default(),
            )
            .expect("issuing CA"),
        );
        let db = signet_testkit::TestDb::sqlite().await;
        let store = crate::cmd::open_store(db.url()).await.expect("store");
        let limits = ProfileLimits {
            default_ttl: Lifetime::from_hours(3),
            max_ttl: Lifetime::from_hours(24),
        };
        let profiles: BTreeMap<_, _> = [(Profile::Server, limits)].into_iter().collect();
        let authority = Arc::new(Authority::new(
            ca.clone(),
            store.clone(),
            Policy::default(),
            profiles,
        ));
        // A recorded leaf: the server's own certificate, issued as `serve` issues it.
        let identity = ServerIdentity::new(
            authority.clone(),
            &["leaf.test".to_string()],
            super::super::tls::provider(),
        );
        let issued = identity.issue().await.expect("leaf");
        let leaf = issued.key.cert[0].as_ref().to_vec();

        let responder = responder(
            store.clone(),
            IssuerCertificate::from_der(ca.cert_der()).expect("issuer"),
            None,
            vec![],
            Duration::from_secs(3600),
            None,
        )
        .expect("responder");
        let lookup = ocsp_lookup(&responder);

        // Before a signer is installed the responder answers tryLater.
        let now = OffsetDateTime::now_utc();
        let live = live_ocsp_status(Some(&lookup), &leaf, Some(ca.cert_der()), now).await;
        assert_eq!(live, LiveOcsp::Unsuccessful("tryLater"));

        responder
            .rotate_signer(&CaCertifier::new(
                authority.clone(),
                Duration::from_secs(86_400),
            ))
            .await
            .expect("signer");
        let now = OffsetDateTime::now_utc();
        let LiveOcsp::Verified(good) =
            live_ocsp_status(Some(&lookup), &leaf, Some(ca.cert_der()), now).await
        else {
            panic!("no verified answer");
        };
        assert_eq!(good.status, CertStatusKind::Good);
        assert!(good.this_update <= now + Duration::from_secs(1));
        let next = good.next_update.expect("nextUpdate");
        assert!(next > now && next <= now + Duration::from_secs(3601));
        assert!(matches!(good.signer, OcspResponseSigner::Delegated { .. }));

        let revoked_at = OffsetDateTime::now_utc();
        store
            .revoke(
                &issued.serial,
                revoked_at,
                RevocationReason::KeyCompromise,
                &AuditEntry {
                    actor: "test".into(),
                    action: AuditAction::Revoke,
                    serial: Some(issued.serial.clone()),
                    outcome: AuditOutcome::Ok,
                    detail: String::new(),
                },
            )
            .await
            .expect("revoke");
        responder.certificate_revoked(&issued.serial);
        let now = OffsetDateTime::now_utc();
        let LiveOcsp::Verified(revoked) =
            live_ocsp_status(Some(&lookup), &leaf, Some(ca.cert_der()), now).await
        else {
            panic!("no verified answer after revoking");
        };
        match revoked.status {
            CertStatusKind::Revoked { at, reason } => {
                assert_eq!(reason, Some(RevocationReason::KeyCompromise.code()));
                assert!((at - revoked_at).abs() < Duration::from_secs(2));
            }
            other => panic!("expected revoked, got {other:?}"),
        }

        // The root is not this certificate's issuer: no request is made.
        let live = live_ocsp_status(Some(&lookup), &leaf, Some(ca.root_der()), now).await;
        assert!(matches!(live, LiveOcsp::NotAsked(_)), "{live:?}");
        assert!(matches!(
            live_ocsp_status(Some(&lookup), &leaf, None, now).await,
            LiveOcsp::NotAsked(_)
        ));
        // No responder, a responder that fails, one that answers garbage, and an answer
        // checked at a time past its nextUpdate.
        assert_eq!(
            live_ocsp_status(None, &leaf, Some(ca.cert_der()), now).await,
            LiveOcsp::NoResponder
        );
        let failing: signet_api::OcspLookup =
            Arc::new(|_| Box::pin(async { Err("connection refused".to_string()) }));
        assert_eq!(
            live_ocsp_status(Some(&failing), &leaf, Some(ca.cert_der()), now).await,
            LiveOcsp::NoAnswer("connection refused".into())
        );
        let garbage: signet_api::OcspLookup =
            Arc::new(|_| Box::pin(async { Ok(b"not DER".to_vec()) }));
        assert!(matches!(
            live_ocsp_status(Some(&garbage), &leaf, Some(ca.cert_der()), now).await,
            LiveOcsp::Rejected(_)
        ));
        let later = now + Duration::from_secs(2 * 3600);
        let live = live_ocsp_status(Some(&lookup), &leaf, Some(ca.cert_der()), later).await;
        assert!(matches!(live, LiveOcsp::Rejected(_)), "{live:?}");
        store.close().await;
    }
}
