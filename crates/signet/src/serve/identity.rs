//! The server's own TLS certificate. It comes from the CA it serves, like any other: a fresh
//! P-256 key held only in memory, a CSR, and the authority's issuance
//! (`signet_authority::Authority::issue_csr` for `Requester::Server`) under the `server`
//! profile, which records it in the store (with its audit entry) before it is used. A
//! background task renews it at two thirds of its lifetime; rustls picks up the new one
//! through [`CertResolver`] on the next handshake.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use signet_authority::{Authority, Requester, Ttl};
use signet_ca::{Csr, KeyType, OffsetDateTime, Profile, ProfileLimits};
use zeroize::Zeroizing;

/// The names every server certificate carries, before the configured ones.
pub const BUILT_IN_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Everything needed to issue (and re-issue) the server's certificate.
#[derive(Debug)]
pub struct ServerIdentity {
    authority: Arc<Authority>,
    names: Vec<String>,
    limits: ProfileLimits,
    provider: Arc<CryptoProvider>,
}

/// One issued server certificate, ready for rustls.
#[derive(Debug)]
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    pub serial: signet_ca::Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Issued {
    /// Two thirds into the lifetime: when to renew.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

impl ServerIdentity {
    /// Issued through `authority` (the one the API issues through) under its `server`
    /// profile's limits; `hostnames` come after the built-in names; duplicates are dropped.
    pub fn new(
        authority: Arc<Authority>,
        hostnames: &[String],
        provider: Arc<CryptoProvider>,
    ) -> ServerIdentity {
        let mut names: Vec<String> = Vec::new();
        for name in BUILT_IN_NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(hostnames.iter().map(|n| n.to_ascii_lowercase()))
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        // The server's requests name only itself: the authority issues them under the
        // server profile's limits, whatever the CA-wide policy (which it does not consult
        // for `Requester::Server`).
        let limits = authority.limits(Profile::Server);
        ServerIdentity {
            authority,
            names,
            limits,
            provider,
        }
    }

    /// The names the certificate carries.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Issue a new certificate for a new key and record it. Lifetime: the server profile's
    /// `default_ttl` (capped by the issuing CA's own expiry).
    pub async fn issue(&self) -> anyhow::Result<Issued> {
        let key = KeyType::P256.generate()?;
        let mut params = rcgen::CertificateParams::new(self.names.clone())
            .context("building the server certificate request")?;
        // rcgen's default subject is "CN=rcgen self signed cert", which policy would read as
        // a requested (and invalid) name: use the first configured hostname, else localhost.
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cn = self
            .names
            .iter()
            .find(|n| !BUILT_IN_NAMES.contains(&n.as_str()))
            .map_or(BUILT_IN_NAMES[0], |n| n.as_str());
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let request = params
            .serialize_request(&key)
            .context("signing the server certificate request")?;
        let csr = Csr::from_der(request.der())?;
        // Signed, then recorded (durably, with its audit row) before any client sees it.
        let recorded = self
            .authority
            .issue_csr(
                csr,
                Profile::Server,
                Ttl::Requested(self.limits.default_ttl),
                &Requester::Server,
                None,
            )
            .await
            .context("issuing and recording the server certificate")?;
        let cert = recorded.certificate;

        let mut chain = vec![CertificateDer::from(cert.der)];
        for pem in self.authority.ca().chain_pem() {
            chain.push(
                CertificateDer::from_pem_slice(pem.as_bytes())
                    .context("reading the issuing CA chain")?,
            );
        }
        let key_der = Zeroizing::new(key.serialize_der());
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec()));
        let certified = CertifiedKey::from_der(chain, key_der, &self.provider)
            .context("loading the server certificate into rustls")?;
        Ok(Issued {
            key: Arc::new(certified),
            serial: recorded.serial,
            not_before: cert.not_before,
            not_after: cert.not_after,
        })
    }

    /// Renew `current` at two thirds of its lifetime, forever. Failures (say, the database
    /// is down) are logged and retried while the current certificate is still valid.
    pub async fn renew_forever(self: Arc<Self>, resolver: Arc<CertResolver>, current: Issued) {
        let mut renew_at = current.renew_at();
        let mut not_after = current.not_after;
        loop {
            tokio::time::sleep(until(renew_at)).await;
            match self.issue().await {
                Ok(next) => {
                    tracing::info!(
                        serial = %next.serial,
                        not_after = %signet_ca::rfc3339(next.not_after),
                        "renewed the server certificate"
                    );
                    renew_at = next.renew_at();
                    not_after = next.not_after;
                    resolver.set(next.key);
                }
                Err(e) => {
                    let left = until(not_after);
                    let retry = (left / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
                    tracing::error!(
                        error = crate::cmd::describe(&e),
                        expires_in_s = left.as_secs(),
                        retry_in_s = retry.as_secs(),
                        "renewing the server certificate failed"
                    );
                    renew_at = OffsetDateTime::now_utc() + retry;
                }
            }
        }
    }
}

/// How long from now until `t`; zero if it has passed.
fn until(t: OffsetDateTime) -> Duration {
    (t - OffsetDateTime::now_utc())
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// Hands rustls the current server certificate; [`CertResolver::set`] swaps it.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> CertResolver {
        CertResolver {
            current: RwLock::new(key),
        }
    }

    /// Serve `key` from the next handshake on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc, which
        // cannot leave it half-written: carry on with the value it holds.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_ca::{InitOptions, IssuanceUrls, IssuingCa, Lifetime, Policy, generate_ca};
    use signet_store::Store;

    /// Who the store records as having asked for the server's certificates.
    const REQUESTER: &str = signet_store::SERVER_REQUESTER;

    async fn identity(hostnames: &[String]) -> (ServerIdentity, Store, signet_testkit::TestDb) {
        let bundle = generate_ca(
            &InitOptions::new("Serve Test CA"),
            OffsetDateTime::now_utc(),
        )
        .expect("CA");
        let ca = IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls::default(),
        )
        .expect("issuing CA");
        let db = signet_testkit::TestDb::sqlite().await;
        let store = crate::cmd::open_store(db.url()).await.expect("store");
        let limits = ProfileLimits {
            default_ttl: Lifetime::from_hours(3),
            max_ttl: Lifetime::from_hours(24),
        };
        // The server profile's limits; the authority consults no policy for the server.
        let profiles = [(Profile::Server, limits)].into_iter().collect();
        let authority = Authority::new(Arc::new(ca), store.clone(), Policy::default(), profiles);
        let identity = ServerIdentity::new(
            Arc::new(authority),
            hostnames,
            super::super::tls::provider(),
        );
        (identity, store, db)
    }

    #[tokio::test]
    async fn each_issue_is_a_new_recorded_certificate_renewed_at_two_thirds() {
        let hostnames = vec!["CA.Internal".to_string(), "localhost".to_string()];
        let (identity, store, _db) = identity(&hostnames).await;
        assert_eq!(
            identity.names(),
            ["localhost", "127.0.0.1", "::1", "ca.internal"]
        );
        let first = identity.issue().await.expect("first");
        let second = identity.issue().await.expect("second");
        assert_ne!(first.serial, second.serial);
        let lifetime = (first.not_after - first.not_before).whole_seconds();
        assert_eq!(
            lifetime,
            3 * 3600 + 60,
            "the profile's default_ttl, plus the 60 s backdate"
        );
        assert_eq!(
            (first.renew_at() - first.not_before).whole_seconds(),
            lifetime * 2 / 3
        );
        for issued in [&first, &second] {
            let rec = store
                .get_certificate(&issued.serial)
                .await
                .expect("lookup")
                .expect("recorded before use");
            assert_eq!(rec.requester, REQUESTER);
            assert_eq!(rec.profile, "server");
            assert_eq!(
                rec.sans,
                ["dns:ca.internal", "dns:localhost", "ip:127.0.0.1", "ip:::1"]
            );
            assert_eq!(rec.subject, "CN=ca.internal");
            // The chain rustls serves: the leaf, then the issuing CA.
            assert_eq!(issued.key.cert.len(), 2);
            assert_eq!(issued.key.cert[0].as_ref(), rec.der.as_slice());
        }
        let resolver = CertResolver::new(first.key.clone());
        resolver.set(second.key.clone());
        assert!(Arc::ptr_eq(&resolver.current(), &second.key));
    }
}
