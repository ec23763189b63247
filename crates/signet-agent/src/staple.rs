//! Fetching an OCSP staple for a TLS server certificate: what `signet staple` does, and what
//! `signet renew --staple-file` calls after a renewal.
//!
//! The request is the one nginx, HAProxy and `openssl ocsp` send: one SHA-1 CertID, no
//! nonce (so an RFC 5019 responder can answer from its cache), POSTed over plain HTTP to the
//! URL in the certificate's AIA (RFC 6960 appendix A.1). The answer is verified with
//! [`signet_ca::verify_ocsp_response`] before anyone may staple it: a successful status, a
//! signature by the issuer or by a responder the issuer certified for OCSP signing, the
//! CertID asked about, and thisUpdate/nextUpdate around now.
//!
//! Trust: the issuer certificate passed in is the anchor. The leaf must be signed by it, and
//! the response must be signed by it or by a responder it certified. Pass the issuer from a
//! trusted place (the chain the CA handed out), never from the responder.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use signet_ca::{
    CertIdHash, OffsetDateTime, VerifiedOcspResponse, build_ocsp_request, ocsp_responder_urls,
    verify_ocsp_response,
};

/// How long one fetch may take by default (connecting and reading the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout accepted: a staple fetch runs from cron or a renewal, and must not hang.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest OCSP response read. A response with a delegated signer certificate is about
/// 1 KiB; RFC 6066 caps a stapled one at 2^24 bytes, which no sane responder approaches.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

/// A verified OCSP response, ready to be written where the TLS server reads its staple.
#[derive(Debug)]
pub struct Staple {
    /// The OCSPResponse, DER, exactly as the responder sent it.
    pub der: Vec<u8>,
    /// The responder it came from.
    pub url: String,
    /// What it says, verified.
    pub response: VerifiedOcspResponse,
}

/// Fetch and verify an OCSP response for `leaf_der` (DER), issued by `issuer_der` (DER).
///
/// The responder is `url_override`, else each OCSP URL of the leaf's AIA in turn until one
/// gives a verified answer. Only `http://` URLs are used (OCSP is plain HTTP; the response is
/// signed). `timeout` bounds each attempt, connection included, and is capped at
/// [`MAX_TIMEOUT`].
///
/// A verified "revoked" or "unknown" answer is returned like "good": the caller decides.
pub async fn fetch_staple(
    leaf_der: &[u8],
    issuer_der: &[u8],
    url_override: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Staple> {
    let timeout = timeout.min(MAX_TIMEOUT);
    let request = build_ocsp_request(leaf_der, issuer_der, CertIdHash::Sha1, None)
        .context("building the OCSP request")?;
    let urls = match url_override {
        Some(url) => vec![url.to_string()],
        None => {
            let urls = ocsp_responder_urls(leaf_der).context("reading the certificate's AIA")?;
            if urls.is_empty() {
                bail!(
                    "the certificate names no OCSP responder (no AIA OCSP URL); give one with --url"
                );
            }
            urls
        }
    };
    let http = http_client(timeout)?;
    let mut failures = Vec::new();
    for url in &urls {
        let attempt = async {
            let der = post(&http, url, &request.der).await?;
            let response =
                verify_ocsp_response(&der, &request, issuer_der, OffsetDateTime::now_utc())
                    .context("the OCSP response failed verification")?;
            anyhow::Ok(Staple {
                der,
                url: url.clone(),
                response,
            })
        };
        match attempt.await {
            Ok(staple) => return Ok(staple),
            Err(e) => failures.push(format!("{url}: {}", crate::error::describe(&e))),
        }
    }
    Err(anyhow!("no OCSP staple: {}", failures.join("; ")))
}

/// POST the DER request and read the DER answer (RFC 6960 appendix A.1).
async fn post(http: &reqwest::Client, url: &str, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid OCSP URL {url:?}"))?;
    if parsed.scheme() != "http" {
        bail!(
            "only http:// OCSP URLs are supported, not {:?} (OCSP responses are signed and \
             served over plain HTTP)",
            parsed.scheme()
        );
    }
    let mut resp = http
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
        .header(reqwest::header::ACCEPT, "application/ocsp-response")
        .body(request.to_vec())
        .send()
        .await
        .context("sending the OCSP request")?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        bail!("the responder answered HTTP {status}");
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_LEN as u64)
    {
        bail!("the OCSP response is larger than {MAX_RESPONSE_LEN} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the OCSP response")? {
        if body.len() + chunk.len() > MAX_RESPONSE_LEN {
            bail!("the OCSP response is larger than {MAX_RESPONSE_LEN} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // Only plain HTTP is used, but reqwest wants a TLS configuration; give it one with the
    // ring provider and no trusted roots, so it never reaches for a process default.
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS configuration")?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}
