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

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use signet_ca::{
    CertIdHash, CertStatusKind, OcspResponseSigner, OffsetDateTime, VerifiedOcspResponse,
    build_ocsp_request, ocsp_responder_urls, verify_ocsp_response,
};

use crate::client::parse_certificates;
use crate::error::{ExitWith, Refused, exit};
use crate::files::write_atomic;

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

/// What `signet staple` was asked: its flags.
#[derive(Debug, Clone)]
pub struct StapleOptions {
    /// The server certificate, PEM or DER. In a chain file the first certificate is the leaf.
    pub cert: PathBuf,
    /// The certificate of the CA that issued it, PEM or DER (default: the second certificate
    /// in --cert).
    pub issuer: Option<PathBuf>,
    /// Where to write the DER OCSP response (mode 0644, replaced atomically).
    pub out: PathBuf,
    /// The OCSP responder (default: the certificate's AIA OCSP URL). http:// only.
    pub url: Option<String>,
    /// Give up after this long, e.g. 10s (at most 5m).
    pub timeout: Duration,
}

/// `signet staple`: fetch, verify and write the staple; the exit code says the status
/// (see the binary's `--help`).
pub async fn run(args: StapleOptions) -> anyhow::Result<()> {
    if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
        return Err(Refused(format!(
            "--timeout must be between 1s and {} (the default is {})",
            humantime::format_duration(MAX_TIMEOUT),
            humantime::format_duration(DEFAULT_TIMEOUT)
        ))
        .into());
    }
    let chain = read_certificates(&args.cert)?;
    let leaf = chain
        .first()
        .with_context(|| format!("{} holds no certificate", args.cert.display()))?;
    let issuer = match &args.issuer {
        Some(path) => read_certificates(path)?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))?,
        None => chain.get(1).cloned().with_context(|| {
            format!(
                "{} holds only the leaf; give the issuing CA with --issuer",
                args.cert.display()
            )
        })?,
    };

    let staple = fetch_staple(leaf, &issuer, args.url.as_deref(), args.timeout).await?;
    let summary = describe(&staple);
    match staple.response.status {
        CertStatusKind::Good => {
            write_atomic(&args.out, &staple.der, 0o644)?;
            println!("{}: {summary}", args.out.display());
            Ok(())
        }
        CertStatusKind::Revoked { .. } => {
            write_atomic(&args.out, &staple.der, 0o644)?;
            println!("{}: {summary}", args.out.display());
            Err(ExitWith::error(
                exit::NOT_GOOD,
                format!(
                    "the certificate is REVOKED ({summary}); the revoked staple was written to {}",
                    args.out.display()
                ),
            ))
        }
        CertStatusKind::Unknown => Err(ExitWith::error(
            exit::NOT_GOOD,
            format!(
                "the responder does not know this certificate ({summary}); {} was not written \
                 (check --issuer and --url)",
                args.out.display()
            ),
        )),
    }
}

/// One line: the status, its validity, the signer and the responder.
fn describe(staple: &Staple) -> String {
    let r = &staple.response;
    let status = match r.status {
        CertStatusKind::Good => "good".to_string(),
        CertStatusKind::Unknown => "unknown".to_string(),
        CertStatusKind::Revoked { at, reason } => match reason.and_then(reason_name) {
            Some(name) => format!("revoked at {} ({name})", signet_ca::rfc3339(at)),
            None => format!("revoked at {}", signet_ca::rfc3339(at)),
        },
    };
    let next = r
        .next_update
        .map(signet_ca::rfc3339)
        .unwrap_or_else(|| "none".into());
    let signer = match &r.signer {
        OcspResponseSigner::Issuer => "the issuer".to_string(),
        OcspResponseSigner::Delegated { serial, .. } => format!("delegated responder {serial}"),
    };
    format!(
        "{status}; thisUpdate {}, nextUpdate {next}; signed by {signer}; from {}",
        signet_ca::rfc3339(r.this_update),
        staple.url
    )
}

/// RFC 5280 section 5.3.1 CRLReason names.
fn reason_name(code: u8) -> Option<&'static str> {
    signet_ca::RevocationReason::from_code(code)
        .ok()
        .map(signet_ca::RevocationReason::name)
}

/// Every certificate in a PEM file, or the one certificate of a DER file.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    let certs =
        parse_certificates(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}
