//! Signet's validation authority (Boulder's VA): proves that an ACME client controls an
//! identifier by checking one challenge, and says why when it does not.
//!
//! - `http-01` (RFC 8555 section 8.3): GET `http://{host}:{http01_port}/.well-known/acme-challenge/{token}`;
//!   the body, trailing whitespace trimmed, must equal the key authorization. At most
//!   [`MAX_REDIRECTS`] redirects, each only to `http` on port 80 (or the configured
//!   `http01_port`) or `https` on port 443 (or the configured `tls_alpn01_port`); an HTTPS
//!   hop's certificate is not checked, as Let's Encrypt does not check it either.
//! - `dns-01` (RFC 8555 section 8.4): some TXT record at `_acme-challenge.{name}` (a wildcard's
//!   `*.` removed) must equal base64url(SHA-256(key authorization)).
//! - `tls-alpn-01` (RFC 8737): a TLS handshake with ALPN `acme-tls/1` and SNI the name (for an
//!   IP address, RFC 8738's reverse-mapping name); the self-signed certificate must name exactly
//!   the identifier in its subjectAltName and carry the critical acmeIdentifier extension
//!   holding SHA-256(key authorization). Any chain is accepted: the proof is the extension.
//!
//! Every lookup (A/AAAA for http-01 and tls-alpn-01, TXT for dns-01) goes through one
//! resolver, the configured one or the system's, with no cache, so a client that has just set
//! its record is seen at once. Every address is checked against the [`NetworkPolicy`] before
//! a connection is made to it, on every redirect too, so validation is not an open proxy
//! into the CA's own network. A validation is bounded in time as a whole
//! ([`VaConfig::timeout`]), the number running at once is capped
//! ([`VaConfig::max_concurrency`]; the rest wait their turn), and a response body larger
//! than [`MAX_BODY`] fails.
//!
//! The VA decides nothing about policy (which names an account may validate, whether a
//! wildcard is allowed): its caller, the ACME front end, does. It keeps no state.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

mod cert;
mod dial;
mod dns01;
mod error;
mod http01;
mod name;
mod policy;
mod resolve;
mod tls;
mod tls_alpn01;

pub use error::{FailureKind, VaError, ValidationFailure};
pub use policy::NetworkPolicy;

/// The most redirects an http-01 validation follows (Let's Encrypt's limit).
pub const MAX_REDIRECTS: usize = 10;

/// The largest http-01 response body read; a larger one fails the validation. A key
/// authorization is a token (43 characters from Signet) and a thumbprint (43): a few hundred
/// bytes leave room for servers that pad their answers.
pub const MAX_BODY: usize = 8 * 1024;

/// What is being validated (RFC 8555 section 9.7.7, RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// A DNS name. `*.example.com` is accepted only by dns-01 (the caller checks that
    /// wildcards come with dns-01), which looks up `_acme-challenge.example.com`.
    Dns(String),
    /// An IP address (RFC 8738): http-01 and tls-alpn-01 only.
    Ip(IpAddr),
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Dns(name) => f.write_str(name),
            Identifier::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The challenge types Signet validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// RFC 8555 section 8.3.
    Http01,
    /// RFC 8555 section 8.4.
    Dns01,
    /// RFC 8737.
    TlsAlpn01,
}

impl ChallengeKind {
    /// The challenge's `type` as ACME writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How validation reaches the outside world; one per ACME provisioner.
#[derive(Debug, Clone)]
pub struct VaConfig {
    /// The DNS server every lookup goes to (UDP, then TCP for truncated answers); `None`
    /// means the system's resolver (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// The port http-01 connects to (80 in RFC 8555; other values are for tests and
    /// private setups).
    pub http01_port: u16,
    /// The port tls-alpn-01 connects to (443 in RFC 8737).
    pub tls_alpn01_port: u16,
    /// The addresses validation may connect to.
    pub networks: NetworkPolicy,
    /// The bound on one validation as a whole: lookups, connections, redirects, reading.
    pub timeout: Duration,
    /// How many validations run at once; the rest wait for a turn (waiting does not count
    /// against `timeout`).
    pub max_concurrency: usize,
}

impl Default for VaConfig {
    fn default() -> Self {
        VaConfig {
            resolver: None,
            http01_port: 80,
            tls_alpn01_port: 443,
            networks: NetworkPolicy::default(),
            timeout: Duration::from_secs(10),
            max_concurrency: 64,
        }
    }
}

/// What a successful validation saw (RFC 8555 section 8's `validationRecord`, in
/// Boulder's shape): where it went, which addresses the name had and which one answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationRecord {
    /// The last URL fetched (http-01 only; after redirects, the one that answered).
    pub url: Option<String>,
    /// The name (or IP address) validated; for dns-01 the name without `*.`.
    pub hostname: String,
    /// The port connected to last (http-01 and tls-alpn-01).
    pub port: Option<u16>,
    /// The addresses the last hostname resolved to (empty for dns-01).
    pub addresses_resolved: Vec<IpAddr>,
    /// The address that answered (http-01 and tls-alpn-01).
    pub address_used: Option<IpAddr>,
}

/// The validation authority. Cheap to clone: clones share the resolver, TLS settings and
/// the concurrency cap.
#[derive(Clone)]
pub struct Va {
    inner: Arc<Inner>,
}

impl fmt::Debug for Va {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Va")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: VaConfig,
    resolver: resolve::Resolver,
    /// ALPN `acme-tls/1`, any certificate accepted (checked by `tls_alpn01` instead).
    alpn_tls: Arc<rustls::ClientConfig>,
    /// For http-01 redirects to https: ALPN `http/1.1`, any certificate accepted.
    redirect_tls: Arc<rustls::ClientConfig>,
    turns: Semaphore,
}

impl Va {
    /// Builds a VA. Fails on a configuration that cannot work (no concurrency, a zero
    /// timeout, an unreadable system resolver configuration), never later.
    pub fn new(cfg: VaConfig) -> Result<Self, VaError> {
        if cfg.max_concurrency == 0 {
            return Err(VaError::InvalidConfig(
                "max_concurrency must be at least 1".into(),
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(VaError::InvalidConfig(
                "the validation timeout must be longer than zero".into(),
            ));
        }
        if cfg.http01_port == 0 || cfg.tls_alpn01_port == 0 {
            return Err(VaError::InvalidConfig(
                "the http-01 and tls-alpn-01 ports must not be 0".into(),
            ));
        }
        let resolver = resolve::Resolver::new(cfg.resolver, cfg.timeout)?;
        let alpn_tls = tls::any_certificate_config(tls_alpn01::ALPN)?;
        let redirect_tls = tls::any_certificate_config(b"http/1.1")?;
        let turns = Semaphore::new(cfg.max_concurrency.min(Semaphore::MAX_PERMITS));
        Ok(Va {
            inner: Arc::new(Inner {
                cfg,
                resolver,
                alpn_tls,
                redirect_tls,
                turns,
            }),
        })
    }

    /// The configuration this VA was built with.
    pub fn config(&self) -> &VaConfig {
        &self.inner.cfg
    }

    /// Validates one challenge for `id`. `token` is the challenge's token and
    /// `key_authorization` is `token || "." || base64url(JWK thumbprint)` (RFC 8555 section
    /// 8.1), computed by the caller from the account key.
    pub async fn validate(
        &self,
        kind: ChallengeKind,
        id: &Identifier,
        token: &str,
        key_authorization: &str,
    ) -> Result<ValidationRecord, ValidationFailure> {
        // The semaphore is never closed, so acquiring fails only if it were.
        let _turn = self.inner.turns.acquire().await.map_err(|_| {
            ValidationFailure::new(
                FailureKind::ServerInternal,
                "the validation authority is stopping",
            )
        })?;
        let timeout = self.inner.cfg.timeout;
        let work = self.validate_now(kind, id, token, key_authorization);
        let outcome = match tokio::time::timeout(timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ValidationFailure::new(
                match kind {
                    ChallengeKind::Dns01 => FailureKind::Dns,
                    ChallengeKind::Http01 | ChallengeKind::TlsAlpn01 => FailureKind::Connection,
                },
                format!(
                    "{kind} validation of {id} timed out after {} ms",
                    timeout.as_millis()
                ),
            )),
        };
        match &outcome {
            Ok(record) => tracing::debug!(%kind, %id, address = ?record.address_used, "validated"),
            Err(failure) => {
                tracing::info!(%kind, %id, problem = failure.kind.acme_type(), detail = %failure.detail, "validation failed")
            }
        }
        outcome
    }

    async fn validate_now(
        &self,
        kind: ChallengeKind,
        id: &Identifier,
        token: &str,
        key_authorization: &str,
    ) -> Result<ValidationRecord, ValidationFailure> {
        let target = name::Target::for_challenge(kind, id)?;
        if let name::Target::Ip(ip) = target
            && !self.inner.cfg.networks.allows(ip)
        {
            return Err(ValidationFailure::new(
                FailureKind::RejectedIdentifier,
                format!("{ip} is outside the validation networks"),
            ));
        }
        match kind {
            ChallengeKind::Http01 => {
                if !name::is_token(token) {
                    return Err(ValidationFailure::new(
                        FailureKind::ServerInternal,
                        "the challenge token is not base64url",
                    ));
                }
                http01::validate(&self.inner, &target, token, key_authorization).await
            }
            ChallengeKind::Dns01 => dns01::validate(&self.inner, &target, key_authorization).await,
            ChallengeKind::TlsAlpn01 => {
                tls_alpn01::validate(&self.inner, &target, key_authorization).await
            }
        }
    }
}

/// base64url without padding (RFC 8555 section 6.1, RFC 4648 section 5).
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The dns-01 TXT value for a key authorization: base64url(SHA-256(key authorization)).
pub fn dns01_txt_value(key_authorization: &str) -> String {
    b64url(&sha256(key_authorization.as_bytes()))
}
