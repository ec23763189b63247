//! The rustls server configuration: ring only (no aws-lc-rs, see CRATES.md), TLS 1.3 and 1.2
//! only, ALPN h2 then http/1.1, the certificate from [`CertResolver`], and client
//! certificates that are optional but, when presented, must chain to our root. A client
//! that presents only its leaf is accepted too: the server completes the chain with its
//! own issuing CAs ([`CompletingVerifier`]).

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use super::identity::CertResolver;

/// The one crypto provider the server uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration. `root_der` is the root client certificates must chain to;
/// `issuers_der` are this CA's own certificates below it (the issuing CA with any further
/// intermediates, and earlier issuing CAs still kept), which complete the chain of a client
/// that sends only its leaf.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    root_der: &[u8],
    issuers_der: Vec<Vec<u8>>,
    resolver: Arc<CertResolver>,
) -> anyhow::Result<ServerConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(root_der.to_vec()))
        .context("adding the root certificate to the client certificate trust store")?;
    // Unauthenticated clients are let through: most API calls authenticate with a bearer
    // token. A client certificate that is presented must verify, or the handshake fails.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let verifier = Arc::new(CompletingVerifier {
        inner: verifier,
        issuers: issuers_der.into_iter().map(CertificateDer::from).collect(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// webpki client verification with this CA's own intermediates always available for path
/// building, after whatever the client sent. RFC 8446 section 4.4.2 lets a peer omit
/// certificates the other side is known to have, and TLS clients often send only their
/// leaf (curl or openssl given a certificate file without the chain, Java key stores); the
/// server knows its issuing CAs, so it completes the chain itself. Trust is unchanged:
/// the path must still end at the root, and the extra certificates are CA certificates the
/// root itself signed, which any client could have sent.
#[derive(Debug)]
struct CompletingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    issuers: Vec<CertificateDer<'static>>,
}

impl ClientCertVerifier for CompletingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let all: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_ref()))
            .chain(
                self.issuers
                    .iter()
                    .map(|c| CertificateDer::from(c.as_ref())),
            )
            .collect();
        self.inner.verify_client_cert(end_entity, &all, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
