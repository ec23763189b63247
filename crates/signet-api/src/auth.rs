//! Who is asking: the admin credential, and provisioners that vouch for requesters with
//! JWTs (verified with jsonwebtoken, algorithm pinned per key): one-time tokens signed by a
//! `token` provisioner's key, or a Kubernetes cluster's service-account tokens
//! (`kubernetes`, see [`crate::kubernetes`]).

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::digest;
use serde::{Deserialize, Serialize};
use signet_ca::{Policy, SubjectName};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use signet_authority::{KubernetesNames, Requester, SingleUse};

use crate::audience::Audience;
use crate::claims::{LEEWAY_SECS, MAX_TOKEN_LIFETIME_SECS};
use crate::error::{ApiError, ConfigError};
use crate::kubernetes::{KubernetesSettings, KubernetesVerifier};

/// Kinds of provisioner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionerKind {
    /// One-time JWTs signed with the provisioner's key.
    Token,
    /// Projected service-account tokens of a Kubernetes cluster, verified with its JWKS.
    Kubernetes,
    /// ACME clients (RFC 8555), served by signet-acme at `/acme/{name}/directory`, not by
    /// this API.
    Acme,
}

impl ProvisionerKind {
    /// The name used in `type = "..."`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionerKind::Token => "token",
            ProvisionerKind::Kubernetes => "kubernetes",
            ProvisionerKind::Acme => "acme",
        }
    }
}

fn default_rate() -> u32 {
    1000
}
fn default_burst() -> u32 {
    2000
}

/// A `[[provisioners]]` entry of `signet.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionerConfig {
    /// Unique name; a `token` provisioner's tokens carry it as `iss`.
    pub name: String,
    /// The kind of provisioner.
    #[serde(rename = "type")]
    pub kind: ProvisionerKind,
    /// `token`: the token-verification public key (SubjectPublicKeyInfo PEM), relative to
    /// the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// `kubernetes`: the cluster's service-account issuer (`iss` of its tokens, the API
    /// server's `--service-account-issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `kubernetes`: the audience tokens must be requested for (`aud`), e.g. `signet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `kubernetes`: the cluster's JWKS (from `/openid/v1/jwks`), relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// `kubernetes`: the cluster's JWKS inline, as JSON (instead of `jwks_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// `kubernetes`: namespaces allowed to request certificates (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// `kubernetes`: service accounts allowed, as `namespace/name` (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// `kubernetes`: the SPIFFE trust domain in `{trust_domain}` (default `cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// `kubernetes`: name templates over `{ns}`, `{sa}` and `{trust_domain}` (default
    /// `{sa}.{ns}.svc`, `{sa}.{ns}.svc.cluster.local`, `spiffe://{trust_domain}/ns/{ns}/sa/{sa}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// `kubernetes`: the oldest token (by `iat`) accepted (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_age: Option<signet_ca::Lifetime>,
    /// `acme`: whether new accounts need an external account binding (`signet acme eab
    /// create`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<bool>,
    /// `acme`: the identifier types accepted, `dns` and/or `ip` (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Vec<String>>,
    /// `acme`: the profile certificates are issued under (default `server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `acme`: the certificates' lifetime (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<signet_ca::Lifetime>,
    /// `acme`: the DNS server (IP:PORT) every validation lookup goes to (default the
    /// system's resolver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// `acme`: the port http-01 validation connects to (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01_port: Option<u16>,
    /// `acme`: the port tls-alpn-01 validation connects to (default 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_alpn01_port: Option<u16>,
    /// `acme`: the addresses validation may connect to, as CIDR blocks (default everything
    /// but loopback, link-local, unspecified and multicast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_networks: Option<Vec<String>>,
    /// What requesters vouched for by this provisioner may be issued. For `kubernetes`, the
    /// template names are always allowed; `policy` says which names beyond them may be, and
    /// which profiles.
    #[serde(default)]
    pub policy: Policy,
    /// Sustained issuance requests per second.
    #[serde(default = "default_rate")]
    pub rate_limit_per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    #[serde(default = "default_burst")]
    pub rate_limit_burst: u32,
    /// Sustained issuance requests per second from any one requester (a token's `sub`, a
    /// Kubernetes `namespace/serviceaccount`), on top of the provisioner's own limit. Unset:
    /// no per-requester limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_identity_per_second: Option<u32>,
    /// Requests one requester may make in a burst (default: twice its rate). Needs
    /// `rate_limit_per_identity_per_second`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_identity_burst: Option<u32>,
}

/// A provisioner ready to verify tokens: how its tokens are verified and how fast it may be
/// used, around what the authority knows of it (name, policy, Kubernetes names), which
/// every requester it vouches for carries.
pub struct Provisioner {
    pub(crate) issuance: Arc<signet_authority::Provisioner>,
    pub(crate) verifier: Verifier,
    pub(crate) limiter: Arc<DefaultDirectRateLimiter>,
    rate: (u32, u32),
    /// One bucket per requester, if configured.
    pub(crate) identity_limiter: Option<Arc<IdentityLimiter>>,
}

/// Run [`IdentityLimiter`]'s sweep at least every this many checks (a power of two).
const IDENTITY_SWEEP_EVERY: u64 = 1024;
/// Above this many tracked requesters, sweep on every check (at most every
/// [`IDENTITY_SWEEP_INTERVAL_MS`]) and, if sweeping does not help, refuse requesters (see
/// [`IdentityLimiter::check`]).
const IDENTITY_MAX_TRACKED: usize = 100_000;
const IDENTITY_SWEEP_INTERVAL_MS: u64 = 100;

/// Token buckets per requester of one provisioner (governor, keyed). Keys are the SHA-256 of
/// the requester's name, so each costs the same whatever the length of a token's `sub`.
/// Memory stays bounded: buckets that have refilled (state equal to a fresh one) are dropped
/// by a periodic sweep (`retain_recent`), so only requesters seen within about
/// burst ÷ rate seconds are kept, and there are never many more than
/// [`IDENTITY_MAX_TRACKED`].
pub(crate) struct IdentityLimiter {
    limiter: DefaultKeyedRateLimiter<[u8; 32]>,
    rate: (u32, u32),
    checks: AtomicU64,
    /// Milliseconds since `epoch` of the last sweep.
    last_sweep_ms: AtomicU64,
    epoch: std::time::Instant,
}

impl std::fmt::Debug for IdentityLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityLimiter")
            .field("rate", &self.rate)
            .field("tracked", &self.limiter.len())
            .finish()
    }
}

impl IdentityLimiter {
    fn new(per_second: u32, burst: u32) -> Result<IdentityLimiter, String> {
        let rate = NonZeroU32::new(per_second)
            .ok_or("rate_limit_per_identity_per_second must be at least 1")?;
        let burst_n = NonZeroU32::new(burst.max(per_second))
            .ok_or("rate_limit_per_identity_burst must be at least 1")?;
        Ok(IdentityLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst_n)),
            rate: (per_second, burst),
            checks: AtomicU64::new(0),
            last_sweep_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        })
    }

    /// Take one request from `identity`'s bucket; when it is empty, how long until it is not.
    pub(crate) fn check(&self, identity: &str) -> Result<(), Duration> {
        let n = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        let crowded = self.limiter.len() >= IDENTITY_MAX_TRACKED;
        if n & (IDENTITY_SWEEP_EVERY - 1) == 0 || crowded {
            self.sweep(crowded);
        }
        if crowded && self.limiter.len() >= IDENTITY_MAX_TRACKED {
            // Every tracked requester is still inside its window: refuse rather than grow.
            return Err(Duration::from_secs(1));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, identity.as_bytes()).as_ref());
        self.limiter.check_key(&key).map_err(|not_until| {
            let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
            not_until.wait_time_from(now)
        })
    }

    /// Drop the buckets that have refilled. When `throttled`, at most once per
    /// [`IDENTITY_SWEEP_INTERVAL_MS`] (a sweep walks every key).
    fn sweep(&self, throttled: bool) {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if throttled && now_ms.saturating_sub(last) < IDENTITY_SWEEP_INTERVAL_MS {
            return;
        }
        if self
            .last_sweep_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
            && throttled
        {
            return; // another request is sweeping
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The (rate per second, burst) of each requester's bucket.
    pub(crate) fn rate(&self) -> (u32, u32) {
        self.rate
    }

    /// Requesters tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The name of a provisioner's bucket shared through the database (see
/// `signet_store::Store::take_rate_token`).
pub(crate) fn provisioner_bucket(provisioner: &str) -> String {
    format!("p/{provisioner}")
}

/// The name of one requester's shared bucket: the SHA-256 of its name, so that every
/// bucket name is short whatever the length of a token's `sub`.
pub(crate) fn requester_bucket(provisioner: &str, requester: &str) -> String {
    let hash = digest::digest(&digest::SHA256, requester.as_bytes());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("i/{provisioner}/{hex}")
}

/// How a provisioner's tokens are verified.
pub(crate) enum Verifier {
    /// One key, one pinned algorithm; tokens are single-use.
    Token {
        key: DecodingKey,
        algorithm: Algorithm,
    },
    /// A cluster's JWKS; tokens are reusable within their bounded age.
    Kubernetes(Box<KubernetesVerifier>),
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Provisioner");
        d.field("name", &self.name());
        match &self.verifier {
            Verifier::Token { algorithm, .. } => d.field("algorithm", algorithm),
            Verifier::Kubernetes(k) => d.field("kubernetes", k),
        };
        d.finish_non_exhaustive()
    }
}

impl Provisioner {
    /// Build from config, reading the key file relative to `base_dir`.
    pub fn from_config(
        cfg: &ProvisionerConfig,
        base_dir: &Path,
    ) -> Result<Provisioner, ConfigError> {
        let err = |reason: String| ConfigError::Provisioner {
            name: cfg.name.clone(),
            reason,
        };
        if cfg.name.is_empty()
            || cfg.name.len() > 64
            || !cfg
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(err(
                "names are 1-64 characters of letters, digits, '-', '_' and '.'".into(),
            ));
        }
        let identity_rate = match (
            cfg.rate_limit_per_identity_per_second,
            cfg.rate_limit_per_identity_burst,
        ) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(err(
                    "rate_limit_per_identity_burst needs rate_limit_per_identity_per_second".into(),
                ));
            }
            (Some(rate), burst) => Some((rate, burst.unwrap_or(rate.saturating_mul(2)))),
        };
        let acme_only = [
            ("eab", cfg.eab.is_some()),
            ("identifiers", cfg.identifiers.is_some()),
            ("profile", cfg.profile.is_some()),
            ("lifetime", cfg.lifetime.is_some()),
            ("resolver", cfg.resolver.is_some()),
            ("http01_port", cfg.http01_port.is_some()),
            ("tls_alpn01_port", cfg.tls_alpn01_port.is_some()),
            ("validation_networks", cfg.validation_networks.is_some()),
        ];
        if cfg.kind != ProvisionerKind::Acme
            && let Some((key, _)) = acme_only.iter().find(|(_, set)| *set)
        {
            return Err(err(format!(
                "{key} is a setting of type = \"acme\", not \"{}\"",
                cfg.kind.as_str()
            )));
        }
        let (verifier, issuance) = match cfg.kind {
            ProvisionerKind::Acme => {
                return Err(err(
                    "type = \"acme\" is served by the ACME server (/acme/NAME/directory), not the API".into(),
                ));
            }
            ProvisionerKind::Token => {
                let k8s_only = [
                    ("issuer", cfg.issuer.is_some()),
                    ("audience", cfg.audience.is_some()),
                    ("jwks_file", cfg.jwks_file.is_some()),
                    ("jwks", cfg.jwks.is_some()),
                    ("namespaces", !cfg.namespaces.is_empty()),
                    ("service_accounts", !cfg.service_accounts.is_empty()),
                    ("trust_domain", cfg.trust_domain.is_some()),
                    ("names", cfg.names.is_some()),
                    ("max_token_age", cfg.max_token_age.is_some()),
                ];
                if let Some((key, _)) = k8s_only.iter().find(|(_, set)| *set) {
                    return Err(err(format!(
                        "{key} is a setting of type = \"kubernetes\", not \"token\""
                    )));
                }
                let file = cfg.public_key_file.as_ref().ok_or_else(|| {
                    err("public_key_file is required for type = \"token\"".into())
                })?;
                let path = if file.is_relative() {
                    base_dir.join(file)
                } else {
                    file.clone()
                };
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| err(format!("{}: {e}", path.display())))?;
                let (key, algorithm) =
                    decoding_key(&pem).map_err(|e| err(format!("{}: {e}", path.display())))?;
                (
                    Verifier::Token { key, algorithm },
                    signet_authority::Provisioner::token(&cfg.name, cfg.policy.clone()),
                )
            }
            ProvisionerKind::Kubernetes => {
                if cfg.public_key_file.is_some() {
                    return Err(err(
                        "public_key_file is a setting of type = \"token\"; a kubernetes provisioner uses jwks_file or jwks".into(),
                    ));
                }
                let jwks_json = match (&cfg.jwks_file, &cfg.jwks) {
                    (Some(file), None) => crate::kubernetes::read_jwks_file(file, base_dir)
                        .map_err(|e| err(format!("jwks_file {e}")))?,
                    (None, Some(inline)) => inline.clone(),
                    _ => {
                        return Err(err(
                            "type = \"kubernetes\" needs exactly one of jwks_file and jwks".into(),
                        ));
                    }
                };
                let issuer = cfg
                    .issuer
                    .as_deref()
                    .ok_or_else(|| err("issuer is required for type = \"kubernetes\"".into()))?;
                let audience = cfg
                    .audience
                    .as_deref()
                    .ok_or_else(|| err("audience is required for type = \"kubernetes\"".into()))?;
                let verifier = KubernetesVerifier::new(&KubernetesSettings {
                    issuer,
                    audience,
                    jwks_json: &jwks_json,
                    max_token_age: cfg.max_token_age,
                })
                .map_err(err)?;
                let names = KubernetesNames::new(
                    &cfg.namespaces,
                    &cfg.service_accounts,
                    cfg.trust_domain.as_deref(),
                    cfg.names.as_deref(),
                )
                .map_err(err)?;
                (
                    Verifier::Kubernetes(Box::new(verifier)),
                    signet_authority::Provisioner::kubernetes(&cfg.name, cfg.policy.clone(), names),
                )
            }
        };
        let p = Provisioner::build(
            Arc::new(issuance),
            verifier,
            cfg.rate_limit_per_second,
            cfg.rate_limit_burst,
        )
        .map_err(err)?;
        match identity_rate {
            None => Ok(p),
            Some((rate, burst)) => p.with_identity_limit(rate, burst).map_err(err),
        }
    }

    /// Build directly (tests, embedding).
    pub fn new(
        name: &str,
        key: DecodingKey,
        algorithm: Algorithm,
        policy: Policy,
        per_second: u32,
        burst: u32,
    ) -> Result<Provisioner, String> {
        Provisioner::build(
            Arc::new(signet_authority::Provisioner::token(name, policy)),
            Verifier::Token { key, algorithm },
            per_second,
            burst,
        )
    }

    fn build(
        issuance: Arc<signet_authority::Provisioner>,
        verifier: Verifier,
        per_second: u32,
        burst: u32,
    ) -> Result<Provisioner, String> {
        let rate = NonZeroU32::new(per_second).ok_or("rate_limit_per_second must be at least 1")?;
        let burst_n =
            NonZeroU32::new(burst.max(per_second)).ok_or("rate_limit_burst must be at least 1")?;
        let limiter = Arc::new(RateLimiter::direct(
            Quota::per_second(rate).allow_burst(burst_n),
        ));
        Ok(Provisioner {
            issuance,
            verifier,
            limiter,
            rate: (per_second, burst),
            identity_limiter: None,
        })
    }

    /// Also limit each requester (a token's `sub`, a Kubernetes `namespace/serviceaccount`)
    /// to `per_second` issuance requests per second with bursts of `burst`.
    pub fn with_identity_limit(
        mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<Provisioner, String> {
        self.identity_limiter = Some(Arc::new(IdentityLimiter::new(per_second, burst)?));
        Ok(self)
    }

    /// The provisioner's name.
    pub fn name(&self) -> &str {
        self.issuance.name()
    }

    /// Its rate limit: tokens per second and burst.
    pub(crate) fn rate(&self) -> (u32, u32) {
        self.rate
    }

    /// Its per-requester rate limit, if configured: tokens per second and burst.
    pub(crate) fn per_requester_rate(&self) -> Option<(u32, u32)> {
        self.identity_limiter.as_ref().map(|l| l.rate())
    }

    /// The provisioner's kind.
    pub fn kind(&self) -> ProvisionerKind {
        match self.verifier {
            Verifier::Token { .. } => ProvisionerKind::Token,
            Verifier::Kubernetes(_) => ProvisionerKind::Kubernetes,
        }
    }

    /// The `iss` that selects this provisioner: its name for `token`, the cluster's issuer
    /// for `kubernetes`.
    pub fn token_issuer(&self) -> &str {
        match &self.verifier {
            Verifier::Token { .. } => self.name(),
            Verifier::Kubernetes(k) => &k.issuer,
        }
    }

    /// Keep the rate-limit state of `old` when it is the same provisioner with the same limits
    /// (a configuration reload does not refill buckets). The provisioner's bucket and the
    /// per-requester buckets carry over each on its own, when its own limits are unchanged.
    pub(crate) fn inherit_limiter(&mut self, old: &Provisioner) {
        if old.name() != self.name() {
            return;
        }
        if old.rate == self.rate {
            self.limiter = old.limiter.clone();
        }
        if let (Some(new), Some(prev)) = (&self.identity_limiter, &old.identity_limiter)
            && new.rate == prev.rate
        {
            self.identity_limiter = Some(prev.clone());
        }
    }
}

/// Check that a set of provisioners can serve together: unique names, and no two selected
/// by the same token `iss` (a `kubernetes` provisioner's issuer against every `token`
/// provisioner's name and every other issuer).
pub fn check_provisioners(provisioners: &[Provisioner]) -> Result<(), ConfigError> {
    let mut names = BTreeSet::new();
    let mut issuers = BTreeSet::new();
    for p in provisioners {
        if !names.insert(p.name()) {
            return Err(ConfigError::Provisioner {
                name: p.name().to_string(),
                reason: "the name is used twice".into(),
            });
        }
        if !issuers.insert(p.token_issuer()) {
            return Err(ConfigError::Provisioner {
                name: p.name().to_string(),
                reason: format!(
                    "another provisioner is already selected by tokens with iss {:?}",
                    p.token_issuer()
                ),
            });
        }
    }
    Ok(())
}

/// The verification key and its one algorithm, from a SubjectPublicKeyInfo PEM: P-256 keys
/// verify ES256 only, Ed25519 EdDSA only, RSA RS256 only. Pinning the algorithm to the key
/// is what defeats `alg: none` and HS256-with-the-public-key confusion.
fn decoding_key(pem: &str) -> Result<(DecodingKey, Algorithm), String> {
    let (label, der) = pem_label(pem)?;
    if label != "PUBLIC KEY" {
        return Err(format!("expected a PUBLIC KEY PEM, found {label}"));
    }
    // Algorithm OIDs inside the SPKI, as DER bytes.
    const EC_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    let (key, alg) = if has(EC_P256) {
        (DecodingKey::from_ec_pem(pem.as_bytes()), Algorithm::ES256)
    } else if has(ED25519) {
        (DecodingKey::from_ed_pem(pem.as_bytes()), Algorithm::EdDSA)
    } else if has(RSA) {
        (DecodingKey::from_rsa_pem(pem.as_bytes()), Algorithm::RS256)
    } else {
        return Err("unsupported key type (use P-256, Ed25519 or RSA)".into());
    };
    Ok((key.map_err(|e| e.to_string())?, alg))
}

fn pem_label(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem.find("-----BEGIN ").ok_or("not PEM")?;
    let rest = &pem[begin + 11..];
    let label = rest.split("-----").next().ok_or("not PEM")?.to_string();
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| e.to_string())?;
    Ok((label, der))
}

/// The admin credential: an opaque bearer token, kept only as its SHA-256.
pub struct AdminCredential {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminCredential([redacted])")
    }
}

impl AdminCredential {
    /// From the token itself.
    pub fn from_token(token: &str) -> Self {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(
            ring::digest::digest(&digest::SHA256, token.trim().as_bytes()).as_ref(),
        );
        AdminCredential { digest }
    }

    /// From a file readable only by its owner.
    pub fn from_token_file(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::AdminToken {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "mode {mode:o}: it must not be readable by group or others (chmod 600)"
            )));
        }
        let token = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        if token.trim().len() < 20 {
            return Err(err("token too short".into()));
        }
        Ok(Self::from_token(&token))
    }

    pub(crate) fn matches(&self, token: &str) -> bool {
        let presented = ring::digest::digest(&digest::SHA256, token.as_bytes());
        // Comparing digests, not the secret: timing reveals nothing useful about the token.
        presented
            .as_ref()
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The authenticated caller of one request: the requester the authority is asked for (which
/// carries its provisioner), and that provisioner's rate limits.
#[derive(Clone, Debug)]
pub struct Identity {
    requester: Requester,
    limits: Option<RateLimits>,
}

/// A provisioner's buckets, as one request found them.
#[derive(Clone, Debug)]
pub(crate) struct RateLimits {
    pub(crate) provisioner: Arc<DefaultDirectRateLimiter>,
    pub(crate) per_requester: Option<Arc<IdentityLimiter>>,
    /// The provisioner's (rate per second, burst), for the bucket shared through the
    /// database.
    pub(crate) rate: (u32, u32),
}

impl Identity {
    /// The admin credential.
    fn admin() -> Identity {
        Identity {
            requester: Requester::Admin,
            limits: None,
        }
    }

    /// A requester vouched for by `provisioner`.
    fn vouched(provisioner: &Provisioner, requester: Requester) -> Identity {
        Identity {
            requester,
            limits: Some(RateLimits {
                provisioner: provisioner.limiter.clone(),
                per_requester: provisioner.identity_limiter.clone(),
                rate: provisioner.rate,
            }),
        }
    }

    /// Who is asking, as the authority reads it.
    pub fn requester(&self) -> &Requester {
        &self.requester
    }

    /// The read-only auditor credential.
    fn auditor() -> Identity {
        Identity {
            requester: Requester::Auditor,
            limits: None,
        }
    }

    /// Whether this is the admin credential.
    pub fn is_admin(&self) -> bool {
        matches!(self.requester, Requester::Admin)
    }

    /// Whether this credential may read what only operators read (listings, the audit
    /// log): the admin's or the auditor's.
    pub fn may_read(&self) -> bool {
        matches!(self.requester, Requester::Admin | Requester::Auditor)
    }

    /// The rate limits the request counts against, if a provisioner vouched for it.
    pub(crate) fn limits(&self) -> Option<&RateLimits> {
        self.limits.as_ref()
    }

    /// How the caller appears in the audit log and the certificate record.
    pub fn audit_name(&self) -> String {
        self.requester.to_string()
    }
}

/// Claims of a provisioner token.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    aud: OneOrMany,
    sub: String,
    exp: i64,
    jti: String,
    #[serde(default)]
    sans: Vec<String>,
}

/// `aud`: one string or an array of them (RFC 7519 section 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
struct IssuerOnly {
    iss: String,
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "expected `Authorization: Bearer <token>`".into(),
        ));
    }
    Ok(Some(token.trim()))
}

/// Refuse a JWS whose protected header has a `crit` parameter (RFC 7515 section 4.1.11):
/// `crit` lists extensions the recipient MUST understand and process, or reject the JWS.
/// Signet implements no JWS extension, so any list is refused, and so is a `crit` that is
/// empty or not a list of names, which the RFC forbids producers to send. jsonwebtoken
/// parses the parameter but does not act on it, so this runs before it, for every JWT the
/// server reads: provisioner tokens and Kubernetes service-account tokens alike.
pub(crate) fn reject_critical_extensions(token: &str) -> Result<(), ApiError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "malformed token: its header is not base64url-encoded JSON (a JWT is header.payload.signature)".into(),
            )
        })?;
    let Some(crit) = header.get("crit") else {
        return Ok(());
    };
    let listed = match crit.as_array() {
        Some(names) if !names.is_empty() && names.iter().all(serde_json::Value::is_string) => names
            .iter()
            .filter_map(serde_json::Value::as_str)
            .take(8)
            .map(|n| format!("{:?}", n.chars().take(64).collect::<String>()))
            .collect::<Vec<_>>()
            .join(", "),
        _ => {
            return Err(ApiError::Unauthorized(
                "token header has a malformed crit parameter (RFC 7515 section 4.1.11: a non-empty list of extension names)".into(),
            ));
        }
    };
    Err(ApiError::Unauthorized(format!(
        "token header marks extensions as critical that this server does not understand: {listed} (RFC 7515 section 4.1.11 requires refusing the token)"
    )))
}

/// Verify a bearer credential. Returns the identity and, for tokens, the `jti` and `exp`
/// the caller must consume (single use) before acting.
pub(crate) fn verify(
    token: &str,
    admin: &AdminCredential,
    auditor: Option<&AdminCredential>,
    provisioners: &[Provisioner],
    audience: &Audience,
) -> Result<(Identity, Option<SingleUse>), ApiError> {
    if !token.contains('.') {
        return if admin.matches(token) {
            Ok((Identity::admin(), None))
        } else if auditor.is_some_and(|a| a.matches(token)) {
            Ok((Identity::auditor(), None))
        } else if token.starts_with("sa_") {
            Err(ApiError::Unauthorized("invalid admin token".into()))
        } else if token.starts_with("sr_") {
            Err(ApiError::Unauthorized("invalid auditor token".into()))
        } else {
            // Not every credential without a dot is an attempt at the admin token.
            Err(ApiError::Unauthorized(
                "malformed bearer token: neither a JWT (header.payload.signature, from signet token) nor the admin token".into(),
            ))
        };
    }
    reject_critical_extensions(token)?;
    // Which provisioner? Read `iss` without trusting it, then verify with that provisioner's
    // key and pinned algorithm, which re-checks `iss`.
    let unverified: IssuerOnly = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|e| ApiError::Unauthorized(format!("malformed token: {e}")))?;
    let prov = provisioners
        .iter()
        .find(|p| p.token_issuer() == unverified.iss)
        .ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "unknown provisioner {:?}",
                unverified.iss.chars().take(64).collect::<String>()
            ))
        })?;
    let (key, algorithm) = match &prov.verifier {
        Verifier::Token { key, algorithm } => (key, *algorithm),
        Verifier::Kubernetes(k8s) => {
            // Reusable until it ages out: no single-use obligation.
            let workload = k8s.verify(token)?;
            let names = match prov.issuance.kubernetes_names() {
                Some(names) => names.names_for(&workload.namespace, &workload.service_account)?,
                None => {
                    return Err(ApiError::Internal(
                        "a kubernetes verifier without names".into(),
                    ));
                }
            };
            let requester = Requester::Kubernetes {
                provisioner: prov.issuance.clone(),
                namespace: workload.namespace,
                service_account: workload.service_account,
                names,
            };
            return Ok((Identity::vouched(prov, requester), None));
        }
    };
    let mut v = Validation::new(algorithm);
    // `aud` is required (below) but compared here as a URL, under any of the CA's names.
    v.validate_aud = false;
    v.set_issuer(&[prov.name()]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    let data = jsonwebtoken::decode::<TokenClaims>(token, key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        let reason = match e.kind() {
            K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                format!("token algorithm not accepted (this provisioner signs with {algorithm:?})")
            }
            K::InvalidSignature => "token signature does not verify".to_string(),
            K::ExpiredSignature => "token expired".to_string(),
            K::ImmatureSignature => "token not yet valid (nbf)".to_string(),
            K::InvalidIssuer => "token issuer mismatch".to_string(),
            K::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
            _ => format!("invalid token: {e}"),
        };
        ApiError::Unauthorized(reason)
    })?;
    let claims = data.claims;
    if !claims.aud.values().iter().any(|a| audience.accepts(a)) {
        let named: Vec<String> = claims
            .aud
            .values()
            .iter()
            .take(4)
            .map(|a| format!("{:?}", a.chars().take(128).collect::<String>()))
            .collect();
        return Err(ApiError::Unauthorized(format!(
            "token audience {} is not this CA: tokens for it name {}",
            named.join(", "),
            audience.describe()
        )));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if claims.exp - now > MAX_TOKEN_LIFETIME_SECS + LEEWAY_SECS as i64 {
        return Err(ApiError::Unauthorized(
            "token lifetime exceeds 5 minutes".into(),
        ));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ApiError::Unauthorized(
            "token needs a jti of 1 to 256 characters".into(),
        ));
    }
    let sans = claims
        .sans
        .iter()
        .map(|s| SubjectName::parse_loose(s))
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| ApiError::Unauthorized(format!("token sans: {e}")))?;
    let exp = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|_| ApiError::Unauthorized("token exp out of range".into()))?;
    let requester = Requester::Token {
        provisioner: prov.issuance.clone(),
        subject: claims.sub,
        sans,
    };
    let single_use = SingleUse {
        namespace: prov.name().to_string(),
        jti: claims.jti,
        expires_at: exp,
    };
    Ok((Identity::vouched(prov, requester), Some(single_use)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn provisioner(rate: u32, per_identity: Option<(u32, u32)>) -> Provisioner {
        let p = Provisioner::new(
            "p",
            DecodingKey::from_secret(b"unused"),
            Algorithm::HS256,
            Policy::default(),
            rate,
            rate,
        )
        .unwrap();
        match per_identity {
            Some((r, b)) => p.with_identity_limit(r, b).unwrap(),
            None => p,
        }
    }

    #[test]
    fn each_requester_has_its_own_bucket() {
        let p = provisioner(1000, Some((1, 3)));
        let limiter = p.identity_limiter.as_ref().unwrap();
        for _ in 0..3 {
            assert!(limiter.check("alice").is_ok());
        }
        let wait = limiter.check("alice").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check("bob").is_ok());
        // The key is a digest: a huge subject costs no more than a short one.
        assert!(limiter.check(&"x".repeat(100_000)).is_ok());
    }

    #[test]
    fn refilled_requesters_are_forgotten() {
        let p = provisioner(1000, Some((1000, 1)));
        let limiter = p.identity_limiter.as_ref().unwrap();
        for i in 0..5000 {
            assert!(limiter.check(&format!("subject-{i}")).is_ok());
        }
        // Sweeps ran every IDENTITY_SWEEP_EVERY checks; those since the last are all kept.
        assert!(limiter.tracked() >= 5000 % IDENTITY_SWEEP_EVERY as usize);
        // A bucket of burst 1 at 1000/s is full again after 1 ms.
        std::thread::sleep(Duration::from_millis(50));
        // The next sweep comes at the next multiple of IDENTITY_SWEEP_EVERY checks.
        for _ in 5000..(5000 / IDENTITY_SWEEP_EVERY + 1) * IDENTITY_SWEEP_EVERY {
            let _ = limiter.check("steady");
        }
        assert!(
            limiter.tracked() <= 1,
            "{} still tracked",
            limiter.tracked()
        );
    }

    #[test]
    fn a_reload_keeps_buckets_whose_limits_are_unchanged() {
        let old = provisioner(1000, Some((1, 1)));
        assert!(
            old.identity_limiter
                .as_ref()
                .unwrap()
                .check("alice")
                .is_ok()
        );
        let mut same = provisioner(1000, Some((1, 1)));
        same.inherit_limiter(&old);
        assert!(
            same.identity_limiter
                .as_ref()
                .unwrap()
                .check("alice")
                .is_err()
        );
        let mut changed = provisioner(1000, Some((2, 2)));
        changed.inherit_limiter(&old);
        assert!(
            changed
                .identity_limiter
                .as_ref()
                .unwrap()
                .check("alice")
                .is_ok()
        );
        let mut dropped = provisioner(1000, None);
        dropped.inherit_limiter(&old);
        assert!(dropped.identity_limiter.is_none());
    }

    #[test]
    fn per_identity_settings_are_checked() {
        let cfg = |rate: Option<u32>, burst: Option<u32>| -> ProvisionerConfig {
            let mut c: ProvisionerConfig = serde_json::from_value(serde_json::json!({
                "name": "p", "type": "token", "public_key_file": "/nonexistent.pub",
            }))
            .unwrap();
            c.rate_limit_per_identity_per_second = rate;
            c.rate_limit_per_identity_burst = burst;
            c
        };
        assert!(IdentityLimiter::new(0, 1).is_err());
        assert!(IdentityLimiter::new(1, 0).is_ok()); // burst is at least the rate
        // Key file missing: the error is about the key, so the limits themselves passed.
        let err = Provisioner::from_config(&cfg(Some(10), None), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("nonexistent"), "{err}");
        let err = Provisioner::from_config(&cfg(None, Some(5)), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("needs"), "{err}");
    }
}
