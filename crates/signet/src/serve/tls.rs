//! The rustls server configuration: ring only (no aws-lc-rs, see CRATES.md), TLS 1.3 and 1.2
//! only, ALPN h2 then http/1.1, the certificate from [`CertResolver`], and client
//! certificates that are optional but, when presented, must chain to our root.

use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::identity::CertResolver;

/// The one crypto provider the server uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration. `root_der` is the root client certificates must chain to.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    root_der: &[u8],
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
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
