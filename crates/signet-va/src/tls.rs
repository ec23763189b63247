//! TLS client settings for validation (rustls with ring). The server's certificate chain
//! is not checked against any root: tls-alpn-01's certificate is self-signed by design
//! (RFC 8737 section 3) and is checked by `tls_alpn01` instead, and an http-01 redirect to
//! https is followed without checking, as Let's Encrypt does. The handshake signature is
//! still verified against the presented key, so the peer does hold that certificate's key.

use std::sync::Arc;

use der::{Decode, Encode};
use rustls::CertificateError;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};

use crate::VaError;

/// A client configuration with one ALPN protocol that accepts any server certificate.
pub(crate) fn any_certificate_config(alpn: &[u8]) -> Result<Arc<rustls::ClientConfig>, VaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| VaError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    // Every validation is a fresh look: no session resumption across validations.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Accepts any certificate; verifies handshake signatures with ring's algorithms against
/// the certificate's key. The key is read with x509-cert, not webpki: webpki refuses a
/// certificate with an unknown critical extension, and tls-alpn-01's acmeIdentifier is one
/// (see `cert` for why not x509-cert's strict `Certificate` either).
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2: every algorithm of the scheme whose key type is the certificate's.
        let (alg_id, key) = public_key(cert)?;
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        for alg in candidates {
            if alg.public_key_alg_id().as_ref() == alg_id.as_slice() {
                return alg
                    .verify_signature(&key, message, dss.signature())
                    .map(|()| HandshakeSignatureValid::assertion())
                    .map_err(|_| CertificateError::BadSignature.into());
            }
        }
        Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = spki(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The certificate's SubjectPublicKeyInfo, DER.
fn spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>, rustls::Error> {
    crate::cert::Certificate::from_der(cert.as_ref())
        .ok()
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
        .ok_or_else(|| CertificateError::BadEncoding.into())
}

/// The certificate's key algorithm as webpki names it (the AlgorithmIdentifier's contents:
/// the OID, then the parameters if any) and the subjectPublicKey bits.
fn public_key(cert: &CertificateDer<'_>) -> Result<(Vec<u8>, Vec<u8>), rustls::Error> {
    let bad = || rustls::Error::from(CertificateError::BadEncoding);
    let cert = crate::cert::Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let spki = cert.tbs_certificate.subject_public_key_info;
    let mut alg_id = spki.algorithm.oid.to_der().map_err(|_| bad())?;
    if let Some(params) = &spki.algorithm.parameters {
        alg_id.extend(params.to_der().map_err(|_| bad())?);
    }
    let key = spki.subject_public_key.as_bytes().ok_or_else(bad)?.to_vec();
    Ok((alg_id, key))
}
